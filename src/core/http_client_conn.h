/* Internal to the HTTP client: its structures and the connection state machine's entry points. */
#ifndef AG_HTTP_CLIENT_CONN_H
#define AG_HTTP_CLIENT_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/http_body.h"
#include "core/http_client.h"
#include "core/net.h"

enum {
    AG_HC_BLOCK = 16384,              /* pooled buffer size for input and output */
    AG_HC_BLOCK_CACHE = 64,           /* free blocks kept per client */
    AG_HC_HIGH_WATER = 64 * 1024,     /* unsent request bytes over this: congested */
    AG_HC_LOW_WATER = 16 * 1024,      /* unsent request bytes under this again: on_drain */
    AG_HC_OUT_MAX = 64 * 1024 * 1024, /* hard bound on a call's queued request bytes */
    AG_HC_REPLAY_MAX = 64 * 1024,     /* sent bytes kept for a retry while no answer came */
    AG_HC_POOLS_KEPT = 64,            /* address pools kept once they hold no connection */
};

/* The connections to one address, and its resolution (done once). */
struct ag_hc_pool {
    struct ag_hc_pool *next;
    char *address; /* the key: the address string as the caller gave it */
    struct ag_addr addr;
    struct ag_hc_conn *idle; /* most recently parked first */
    size_t idle_count;
    size_t refs; /* connections using this pool */
};

struct ag_http_client {
    struct ag_loop *loop;
    struct ag_http_client_config cfg;
    struct ag_hc_pool *pools;
    size_t pool_count;
    struct ag_hc_conn *conns; /* every connection, for ag_http_client_free */
    char *blocks[AG_HC_BLOCK_CACHE];
    size_t block_count;
    struct ag_http_client_stats stats;
};

/* A connection: connecting, busy with one call, or idle in its pool. */
struct ag_hc_conn {
    struct ag_io io;
    struct ag_http_client *client;
    struct ag_hc_pool *pool;
    struct ag_hc_conn *prev, *next;           /* in client->conns */
    struct ag_hc_conn *idle_prev, *idle_next; /* in pool->idle while idle */
    struct ag_timer timer;
    struct ag_buf in; /* response bytes */
    struct ag_http_call *call;
    uint64_t connect_started_ms, idle_since_ms;
    int pending_error; /* a failure to report on the next run (connect failed, timeout) */
    char pending_msg[200];
    unsigned calls_done; /* calls completed on it: > 0 means reused */
    bool connecting, idle, can_read, can_write, write_failed;
    struct ag_deferred kick; /* a run after the caller acted (write, end, pause, cancel) */
    bool closed, in_run;
};

struct ag_http_call {
    struct ag_http_client *client;
    struct ag_hc_pool *pool;
    struct ag_hc_conn *conn;
    const struct ag_http_call_ops *ops;
    void *ctx;
    /* Request bytes: out[0..retained) were sent and are kept for a retry; the rest are unsent. */
    struct ag_buf out;
    size_t retained;
    size_t head_len;     /* bytes of the request head */
    uint64_t bytes_sent; /* on the current connection */
    int64_t body_length; /* > 0 Content-Length, AG_HTTP_LENGTH_UNKNOWN chunked, 0 none */
    uint64_t body_written;
    uint32_t first_byte_timeout_ms, response_timeout_ms;
    uint64_t send_started_ms;
    bool is_head, idempotent, chunked, body_open, keep_replay;
    bool congested, paused, cancelled, done, retried, response_started, head_done;
    struct ag_err err;
    struct ag_http_parser parser;
    struct ag_http_body_reader reader;
    struct ag_http_response resp; /* last: the large header array */
};

/* A 16 KiB block for b from the client's cache (or malloc). Returns 0 or AG_ENOMEM. */
int ag_hc_buf_acquire(struct ag_http_client *client, struct ag_buf *b);
/* Gives b's storage back to the cache when it is a block, else frees it. */
void ag_hc_buf_return(struct ag_http_client *client, struct ag_buf *b);

/* Unsent request bytes of call. */
size_t ag_hc_call_unsent(const struct ag_http_call *call);
/* Frees a call that no connection references any more. */
void ag_hc_call_free(struct ag_http_call *call);

/*
 * Opens a new connection to pool for call and attaches it. A failure to start connecting is
 * kept and reported as on_error from the loop. Returns 0 or AG_ENOMEM (nothing attached).
 */
int ag_hc_conn_open(struct ag_http_client *client, struct ag_hc_pool *pool,
                    struct ag_http_call *call);

/* Attaches call to an idle connection taken from its pool and starts sending. */
void ag_hc_conn_attach(struct ag_hc_conn *c, struct ag_http_call *call);

/* A live idle connection of pool, taken out of it, or NULL; dead ones found are closed. */
struct ag_hc_conn *ag_hc_pool_take(struct ag_hc_pool *pool);

/* Makes the connection act on what the caller just did, from the loop (never right now). */
void ag_hc_conn_kick(struct ag_hc_conn *c);

/*
 * Ends a cancelled call on c: parks c when nothing of the call went through it, else closes
 * it; then frees the call. Not while c runs (the run does it when the callback returns).
 */
void ag_hc_conn_cancel_call(struct ag_hc_conn *c);

/* Closes c (dropping any call silently); its memory goes once nothing on the loop needs it. */
void ag_hc_conn_close(struct ag_hc_conn *c);

/* Drops a pool with no connection when more than AG_HC_POOLS_KEPT pools exist. */
void ag_hc_pool_unref(struct ag_http_client *client, struct ag_hc_pool *pool);

#endif
