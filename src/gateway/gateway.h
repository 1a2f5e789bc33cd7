/* The running gateway: process-wide state, per-worker state, and the snapshot each one serves. */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/http_client.h"
#include "core/http_server.h"
#include "core/jwt.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "gateway/access_log.h"
#include "gateway/ratelimit.h"
#include "gateway/snapshot.h"

struct gw_rl_memory;
struct gw_rl_redis;
struct ag_jwt_cache;
struct gw_req;

/* Retries allowed to one upstream from one worker: a token bucket fed by requests and time. */
struct gw_retry_budget {
    double tokens;
    uint64_t refilled_ms;
};

/* One worker's view of one snapshot: its pickers and clients; freed when retired and idle. */
struct gw_wsnap {
    struct gw_snapshot *snap;
    struct gw_worker *worker;
    struct gw_picker **pickers;      /* per upstream */
    struct ag_http_client **clients; /* per upstream: its connect timeout and keep-alive */
    struct gw_retry_budget *budgets; /* per upstream */
    size_t inflight;
    bool retired;
};

struct gw_worker {
    struct gw_gateway *gw;
    struct ag_loop *loop;
    unsigned index;
    struct gw_wsnap *current;
    struct ag_jwt_cache *jwt_cache;
    struct gw_rl_store rl_store;
    struct gw_rl_redis *redis; /* when the store is Redis */
    char *redis_url;           /* the store redis was made for */
    struct gw_access_log alog;
    struct gw_req *free_reqs;
    size_t free_req_count;
};

struct gw_gateway {
    pthread_mutex_t lock;        /* guards current and reloads */
    struct gw_snapshot *current; /* one reference held here */
    uint64_t generation;
    char *config_path;
    struct ag_http_server *server; /* the public port */
    struct ag_http_server *admin;
    unsigned worker_count;
    struct gw_worker **workers; /* set by each worker as it starts */
    struct gw_rl_memory *rl_memory;
    int access_fd; /* -1: access log off */
    bool access_fd_owned;
    struct ag_metrics *metrics;
    struct ag_series *jwt_failures[AG_JWT_STATUS_COUNT];
    struct ag_series *unmatched[5]; /* requests_total{route="(none)"} by status class */
    struct ag_series *reloads_ok, *reloads_failed;
    struct ag_series *connections;
};

/* The handler of the public port; its ctx is the struct gw_gateway. */
extern const struct ag_http_handler gw_proxy_handler;

/* on_worker_start / on_worker_stop of the public server (ctx: the struct gw_gateway). */
int gw_worker_start(struct ag_loop *loop, unsigned index, void *ctx, void **worker_data);
void gw_worker_stop(struct ag_loop *loop, unsigned index, void *ctx, void *worker_data);

/* Frees a retired worker snapshot once its last request ended (worker thread). */
void gw_wsnap_free(struct gw_wsnap *ws);

/* Frees the worker's cached request states (worker thread, at the end). */
void gw_proxy_worker_release(struct gw_worker *w);

/* Takes a reference on the snapshot being served now (any thread). */
struct gw_snapshot *gw_gateway_snapshot(struct gw_gateway *gw);

/*
 * Makes snap (whose reference is taken over) the one served: new requests use it as soon as
 * each worker has heard, requests in flight finish on the old one. Any thread.
 */
void gw_gateway_publish(struct gw_gateway *gw, struct gw_snapshot *snap);

/* Registers the process-wide metric series. Returns 0 or a negative code with err. */
int gw_gateway_metrics_init(struct gw_gateway *gw, struct ag_err *err);

#endif
