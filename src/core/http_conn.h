/* Internal to the HTTP server: the worker and the connection state machine it drives. */
#ifndef AG_HTTP_CONN_H
#define AG_HTTP_CONN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/http_server.h"
#include "core/loop.h"

struct ag_http_conn;

/* One worker thread: its loop, its listener and the connections it accepted. */
struct ag_http_worker {
    struct ag_http_server *srv;
    const struct ag_http_server_config *cfg;
    unsigned index;
    pthread_t thread;
    struct ag_loop *loop;
    struct ag_io listen_io;
    struct ag_timer accept_retry;
    struct ag_timer drain_deadline;
    struct ag_http_conn *conns; /* doubly linked, for drain */
    _Atomic size_t conn_count;  /* read by other threads for metrics */
    bool draining;
    void *data; /* from on_worker_start */
    /* Caches that keep the hot path free of malloc: 16 KiB buffers and exchanges. */
    char **buf_pool;
    size_t buf_pool_len;
    struct ag_http_exchange *free_exchanges;
    size_t free_exchange_count;
    /* The Date field, rebuilt once a second. */
    time_t date_second;
    char date[40];
};

struct sockaddr;

/* Takes ownership of an accepted, non-blocking socket from peer. Closes it on failure. */
void ag_http_conn_accept(struct ag_http_worker *w, int fd, const struct sockaddr *peer);

/* Starts the drain on this worker: idle connections close, busy ones close when done. */
void ag_http_conn_drain_all(struct ag_http_worker *w);

/* Cuts every remaining connection (the drain deadline passed). */
void ag_http_conn_close_all(struct ag_http_worker *w);

/* Frees the worker's buffer and exchange caches. */
void ag_http_worker_release_caches(struct ag_http_worker *w);

#endif
