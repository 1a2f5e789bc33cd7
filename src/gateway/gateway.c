/* The running gateway: process-wide state, per-worker state, and the snapshot each one serves. */
#include "gateway/gateway.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/jwt_cache.h"
#include "core/log.h"
#include "gateway/balance.h"
#include "gateway/ratelimit_redis.h"
#include "gateway/request_id.h"
#include "core/banned.h"

struct gw_snapshot *gw_gateway_snapshot(struct gw_gateway *gw)
{
    pthread_mutex_lock(&gw->lock);
    struct gw_snapshot *snap = gw_snapshot_ref(gw->current);
    pthread_mutex_unlock(&gw->lock);
    return snap;
}

/* ---- a worker's view of a snapshot ---- */

void gw_wsnap_free(struct gw_wsnap *ws)
{
    if (!ws)
        return;
    for (size_t i = 0; i < ws->snap->upstream_count; i++) {
        if (ws->pickers)
            gw_picker_free(ws->pickers[i]);
        if (ws->clients)
            ag_http_client_free(ws->clients[i]);
    }
    free(ws->pickers);
    free(ws->clients);
    free(ws->budgets);
    gw_snapshot_unref(ws->snap);
    free(ws);
}

static struct gw_wsnap *wsnap_new(struct gw_worker *w, struct gw_snapshot *snap)
{
    struct gw_wsnap *ws = calloc(1, sizeof *ws);
    if (!ws) {
        gw_snapshot_unref(snap);
        return NULL;
    }
    ws->snap = snap;
    ws->worker = w;
    size_t n = snap->upstream_count;
    ws->pickers = calloc(n + 1, sizeof *ws->pickers);
    ws->clients = calloc(n + 1, sizeof *ws->clients);
    ws->budgets = calloc(n + 1, sizeof *ws->budgets);
    if (!ws->pickers || !ws->clients || !ws->budgets)
        goto fail;
    const struct gw_config *cfg = &snap->cfg;
    for (size_t i = 0; i < n; i++) {
        const struct gw_upstream_conf *uc = &cfg->upstreams[i];
        uint64_t seed;
        gw_random_bytes(&seed, sizeof seed);
        if (gw_picker_new(snap->upstreams[i].pool, seed, &ws->pickers[i]) < 0)
            goto fail;
        struct ag_http_client_config cc;
        ag_http_client_config_defaults(&cc);
        cc.max_idle_per_host = uc->keepalive;
        cc.connect_timeout_ms = (uint32_t)uc->connect_timeout_ms;
        cc.response_timeout_ms = (uint32_t)uc->timeout_ms;
        /* Upstream heads may be as large as the gateway accepts from clients. */
        cc.limits.max_header_bytes = cfg->limits.max_header_bytes;
        cc.limits.max_headers = cfg->limits.max_headers;
        cc.limits.max_body = UINT64_MAX; /* response bodies stream through: no bound here */
        struct ag_err err;
        if (ag_http_client_new(w->loop, &cc, &ws->clients[i], &err) < 0) {
            ag_log_error("upstream client could not be made", AG_F_STR("upstream", uc->name),
                         AG_F_STR("error", err.msg));
            goto fail;
        }
        ws->budgets[i].tokens = 10.0;
        ws->budgets[i].refilled_ms = ag_loop_now(w->loop);
    }
    return ws;
fail:
    gw_wsnap_free(ws);
    return NULL;
}

/* Switches the worker to the published snapshot; the old view goes when its requests end. */
static void worker_adopt(void *arg)
{
    struct gw_worker *w = arg;
    struct gw_snapshot *snap = gw_gateway_snapshot(w->gw);
    if (w->current && w->current->snap == snap) {
        gw_snapshot_unref(snap);
        return;
    }
    struct gw_wsnap *ws = wsnap_new(w, snap);
    if (!ws) {
        ag_log_error("worker kept the previous configuration: out of memory",
                     AG_F_UINT("worker", w->index));
        return;
    }
    struct gw_wsnap *old = w->current;
    w->current = ws;
    ag_jwt_cache_clear(w->jwt_cache); /* issuers or their keys may have changed */
    if (old) {
        old->retired = true;
        if (old->inflight == 0)
            gw_wsnap_free(old);
    }
}

void gw_gateway_publish(struct gw_gateway *gw, struct gw_snapshot *snap)
{
    pthread_mutex_lock(&gw->lock);
    struct gw_snapshot *old = gw->current;
    gw->current = snap;
    pthread_mutex_unlock(&gw->lock);
    gw_snapshot_unref(old);
    for (unsigned i = 0; i < gw->worker_count; i++) {
        struct gw_worker *w = __atomic_load_n(&gw->workers[i], __ATOMIC_ACQUIRE);
        if (w)
            ag_loop_post(w->loop, worker_adopt, w);
    }
}

/* ---- worker threads ---- */

static int worker_rate_store(struct gw_worker *w, const struct gw_config *cfg)
{
    if (strcmp(cfg->rate_limit_store, "memory") == 0) {
        gw_rl_store_init_memory(&w->rl_store, w->gw->rl_memory, w->loop);
        return 0;
    }
    struct gw_rl_redis_config rc;
    gw_rl_redis_config_defaults(&rc);
    rc.url = cfg->rate_limit_store;
    rc.timeout_ms = (uint32_t)cfg->rate_limit_timeout_ms;
    rc.fail_open = cfg->rate_limit_fail == 0;
    struct ag_err err;
    if (gw_rl_redis_new(w->loop, &rc, &w->redis, &err) < 0) {
        ag_log_error("rate limit store could not be set up", AG_F_STR("error", err.msg));
        return AG_EINVAL;
    }
    gw_rl_store_init_redis(&w->rl_store, w->redis);
    return 0;
}

int gw_worker_start(struct ag_loop *loop, unsigned index, void *ctx, void **worker_data)
{
    struct gw_gateway *gw = ctx;
    struct gw_worker *w = calloc(1, sizeof *w);
    if (!w)
        return AG_ENOMEM;
    w->gw = gw;
    w->loop = loop;
    w->index = index;
    struct gw_snapshot *snap = gw_gateway_snapshot(gw);
    struct ag_err err;
    int rc = ag_jwt_cache_new(snap->cfg.auth.cache_entries, 0, &w->jwt_cache, &err);
    if (rc == 0)
        rc = worker_rate_store(w, &snap->cfg);
    gw_access_log_init(&w->alog, gw->access_fd, loop);
    if (rc == 0) {
        w->current = wsnap_new(w, snap);
        snap = NULL;
        if (!w->current)
            rc = AG_ENOMEM;
    }
    gw_snapshot_unref(snap);
    if (rc < 0) {
        gw_worker_stop(loop, index, ctx, w);
        /* The server shuts down; the control thread must hear it too and exit non-zero. */
        kill(getpid(), SIGTERM);
        return rc;
    }
    __atomic_store_n(&gw->workers[index], w, __ATOMIC_RELEASE);
    /* A reload may have been published while this worker started. */
    worker_adopt(w);
    *worker_data = w;
    return 0;
}

void gw_worker_stop(struct ag_loop *loop, unsigned index, void *ctx, void *worker_data)
{
    (void)loop;
    struct gw_gateway *gw = ctx;
    struct gw_worker *w = worker_data;
    if (!w)
        return;
    __atomic_store_n(&gw->workers[index], NULL, __ATOMIC_RELEASE);
    gw_wsnap_free(w->current); /* every request has ended: the server closed them all */
    gw_rl_redis_free(w->redis);
    ag_jwt_cache_free(w->jwt_cache);
    gw_access_log_release(&w->alog);
    gw_proxy_worker_release(w);
    free(w);
}

/* ---- metrics ---- */

int gw_gateway_metrics_init(struct gw_gateway *gw, struct ag_err *err)
{
    static const char *const reason[] = {"reason"};
    static const char *const route_class[] = {"route", "status_class"};
    static const char *const result[] = {"result"};
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    struct ag_metric *jwt, *requests, *reloads, *conns;
    int rc;
    if ((rc = ag_metrics_counter(gw->metrics, "agora_gateway_jwt_failures_total",
                                 "Bearer tokens refused, by reason.", reason, 1, 32, &jwt, err)) <
            0 ||
        (rc = ag_metrics_counter(gw->metrics, "agora_gateway_requests_total",
                                 "Requests answered, by route and status class.", route_class, 2,
                                 4200, &requests, err)) < 0 ||
        (rc = ag_metrics_counter(gw->metrics, "agora_gateway_reloads_total",
                                 "Configuration reloads, by result.", result, 1, 4, &reloads,
                                 err)) < 0 ||
        (rc = ag_metrics_gauge(gw->metrics, "agora_gateway_open_connections",
                               "Client connections open on the public port.", NULL, 0, 0, &conns,
                               err)) < 0)
        return rc;
    for (int s = 1; s < AG_JWT_STATUS_COUNT; s++) {
        const char *v[] = {ag_jwt_status_name((enum ag_jwt_status)s)};
        ag_metric_series(jwt, v, &gw->jwt_failures[s]);
    }
    for (int c = 0; c < 5; c++) {
        const char *v[] = {"(none)", classes[c]};
        ag_metric_series(requests, v, &gw->unmatched[c]);
    }
    const char *ok[] = {"ok"}, *failed[] = {"failed"};
    ag_metric_series(reloads, ok, &gw->reloads_ok);
    ag_metric_series(reloads, failed, &gw->reloads_failed);
    ag_metric_series(conns, NULL, &gw->connections);
    return 0;
}
