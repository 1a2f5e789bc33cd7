/* One loaded configuration, ready to serve: routes, upstreams, keys, checks; shared, counted. */
#include "gateway/snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/net.h"
#include "gateway/health.h"
#include "core/keyring.h"
#include "gateway/router.h"
#include "core/banned.h"

enum {
    KEYS_INITIAL_TIMEOUT_MS = 3000, /* a reload waits this long at most for each provider */
    ROUTE_SERIES_MAX = 4200,        /* routes (4096) plus "unmatched" and friends */
};

static const char *const class_names[GW_STATUS_CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

struct gw_snapshot *gw_snapshot_ref(struct gw_snapshot *snap)
{
    atomic_fetch_add_explicit(&snap->refs, 1, memory_order_relaxed);
    return snap;
}

static void snapshot_free(struct gw_snapshot *snap)
{
    gw_health_free(snap->health); /* first: it reads the pools */
    ag_keyring_free(snap->keyring);
    gw_router_free(snap->router);
    for (size_t i = 0; snap->upstreams && i < snap->upstream_count; i++) {
        gw_pool_free(snap->upstreams[i].pool);
        free(snap->upstreams[i].target_healthy);
    }
    free(snap->upstreams);
    free(snap->routes);
    gw_config_release(&snap->cfg);
    free(snap->config_path);
    free(snap);
}

void gw_snapshot_unref(struct gw_snapshot *snap)
{
    if (snap && atomic_fetch_sub_explicit(&snap->refs, 1, memory_order_acq_rel) == 1)
        snapshot_free(snap);
}

/* "localhost:9001" → "127.0.0.1:9001": names resolve once, here, never on a worker. */
static int resolve_target(const char *address, char **out, struct ag_err *err)
{
    struct ag_addr addr;
    int rc = ag_addr_parse(address, &addr, err);
    if (rc < 0)
        return rc;
    char text[80];
    ag_addr_format(&addr, text, sizeof text);
    *out = strdup(text);
    return *out ? 0 : ag_err_set(err, AG_ENOMEM, "out of memory");
}

static int series(struct ag_metric *m, const char *const *values, struct ag_series **out)
{
    return m ? ag_metric_series(m, values, out) : 0;
}

struct families {
    struct ag_metric *requests, *duration, *rl, *up_duration, *retries, *breaker, *healthy;
};

static int register_families(struct ag_metrics *reg, struct families *f, struct ag_err *err)
{
    static const char *const route_class[] = {"route", "status_class"};
    static const char *const route[] = {"route"};
    static const char *const route_decision[] = {"route", "decision"};
    static const char *const upstream[] = {"upstream"};
    static const char *const upstream_target[] = {"upstream", "target"};
    int rc;
    if ((rc = ag_metrics_counter(reg, "agora_gateway_requests_total",
                                 "Requests answered, by route and status class.", route_class, 2,
                                 ROUTE_SERIES_MAX, &f->requests, err)) < 0 ||
        (rc = ag_metrics_histogram(reg, "agora_gateway_request_duration_seconds",
                                   "Time from the request head to the end of the response.", route,
                                   1, ROUTE_SERIES_MAX, NULL, 0, &f->duration, err)) < 0 ||
        (rc = ag_metrics_counter(reg, "agora_gateway_rate_limit_decisions_total",
                                 "Rate limit decisions: allowed, limited, degraded (store down).",
                                 route_decision, 2, ROUTE_SERIES_MAX, &f->rl, err)) < 0 ||
        (rc = ag_metrics_histogram(reg, "agora_gateway_upstream_duration_seconds",
                                   "Time from sending upstream to the end of its response.",
                                   upstream, 1, 1100, NULL, 0, &f->up_duration, err)) < 0 ||
        (rc = ag_metrics_counter(reg, "agora_gateway_retries_total",
                                 "Requests sent again to another target.", upstream, 1, 1100,
                                 &f->retries, err)) < 0 ||
        (rc = ag_metrics_gauge(reg, "agora_gateway_breaker_state",
                               "Circuit breaker: 0 closed, 1 open, 2 half-open.", upstream, 1, 1100,
                               &f->breaker, err)) < 0 ||
        (rc = ag_metrics_gauge(reg, "agora_gateway_upstream_healthy",
                               "1 when the target takes requests, 0 when it is out.",
                               upstream_target, 2, 10000, &f->healthy, err)) < 0)
        return rc;
    return 0;
}

static int build_upstream(struct gw_upstream *up, const struct gw_upstream_conf *uc,
                          const struct families *fam, struct ag_err *err)
{
    struct gw_target_spec specs[GW_POOL_MAX_TARGETS];
    char *resolved[GW_POOL_MAX_TARGETS] = {0};
    int rc = 0;
    for (size_t t = 0; t < uc->target_count; t++) {
        rc = resolve_target(uc->targets[t].address, &resolved[t], err);
        if (rc < 0) {
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err->msg);
            rc = ag_err_set(err, rc, "upstreams.%s.targets[%zu].address: %s", uc->name, t, why);
            goto out;
        }
        specs[t] = (struct gw_target_spec){resolved[t], (unsigned)uc->targets[t].weight};
    }
    struct gw_passive_cfg passive = {(unsigned)uc->passive.consecutive_failures,
                                     uc->passive.eject_ms};
    rc = gw_pool_new(uc->name, specs, uc->target_count, (enum gw_balance_policy)uc->balance,
                     &passive, &up->pool, err);
    if (rc < 0)
        goto out;
    up->has_breaker = uc->breaker.enabled;
    if (up->has_breaker) {
        struct gw_breaker_config bc = {uc->breaker.window_ms, (uint32_t)uc->breaker.min_requests,
                                       uc->breaker.failure_ratio, uc->breaker.open_ms};
        rc = gw_breaker_init(&up->breaker, &bc, err);
        if (rc < 0)
            goto out;
    }
    const char *name[] = {uc->name};
    series(fam->up_duration, name, &up->duration);
    series(fam->retries, name, &up->retries);
    series(fam->breaker, name, &up->breaker_gauge);
    up->target_healthy = calloc(uc->target_count, sizeof *up->target_healthy);
    if (!up->target_healthy) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t t = 0; t < uc->target_count; t++) {
        const char *labels[] = {uc->name, uc->targets[t].address};
        series(fam->healthy, labels, &up->target_healthy[t]);
    }
out:
    for (size_t t = 0; t < uc->target_count; t++)
        free(resolved[t]);
    return rc;
}

static void build_cors(struct gw_route *r)
{
    const struct gw_cors_conf *c = &r->conf->cors;
    r->has_cors = c->origin_count > 0;
    r->cors = (struct gw_cors_policy){
        .origins = c->origins,
        .origin_count = c->origin_count,
        .methods = c->methods,
        .method_count = c->method_count,
        .headers = c->headers,
        .header_count = c->header_count,
        .expose = c->expose,
        .expose_count = c->expose_count,
        .max_age_s = c->max_age_s,
        .credentials = c->credentials,
    };
}

static int build_routes(struct gw_snapshot *snap, const struct families *fam, struct ag_err *err)
{
    const struct gw_config *cfg = &snap->cfg;
    struct gw_route_spec *specs = calloc(cfg->route_count + 1, sizeof *specs);
    snap->routes = calloc(cfg->route_count + 1, sizeof *snap->routes);
    if (!specs || !snap->routes) {
        free(specs);
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    }
    snap->route_count = cfg->route_count;
    int rc = 0;
    for (size_t i = 0; i < cfg->route_count; i++) {
        const struct gw_route_conf *rc_conf = &cfg->routes[i];
        struct gw_route *r = &snap->routes[i];
        r->conf = rc_conf;
        r->index = i;
        r->upstream = &snap->upstreams[rc_conf->upstream_index];
        r->max_body =
            rc_conf->max_body_bytes && rc_conf->max_body_bytes < cfg->limits.max_body_bytes
                ? rc_conf->max_body_bytes
                : cfg->limits.max_body_bytes;
        r->timeout_ms = rc_conf->timeout_ms ? rc_conf->timeout_ms : r->upstream->conf->timeout_ms;
        r->strip = rc_conf->strip_prefix ? ag_str_from_cstr(rc_conf->strip_prefix) : AG_STR_NULL;
        r->add = rc_conf->add_prefix ? ag_str_from_cstr(rc_conf->add_prefix) : AG_STR_NULL;
        build_cors(r);
        if (r->has_cors && (rc = gw_cors_policy_check(&r->cors, err)) < 0) {
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err->msg);
            rc = ag_err_set(err, rc, "routes[%zu].cors: %s", i, why);
            goto out;
        }
        for (int c = 0; c < GW_STATUS_CLASSES; c++) {
            const char *labels[] = {rc_conf->name, class_names[c]};
            series(fam->requests, labels, &r->requests[c]);
        }
        const char *name[] = {rc_conf->name};
        series(fam->duration, name, &r->duration);
        const char *allowed[] = {rc_conf->name, "allowed"}, *limited[] = {rc_conf->name, "limited"},
                   *degraded[] = {rc_conf->name, "degraded"};
        series(fam->rl, allowed, &r->rl_allowed);
        series(fam->rl, limited, &r->rl_limited);
        series(fam->rl, degraded, &r->rl_degraded);
        specs[i] = (struct gw_route_spec){
            .name = rc_conf->name,
            .host = rc_conf->match.host,
            .path = rc_conf->match.path,
            .prefix = rc_conf->match.prefix,
            .methods = (const char *const *)rc_conf->match.methods,
            .method_count = rc_conf->match.method_count,
            .data = r,
        };
    }
    rc = gw_router_new(specs, cfg->route_count, &snap->router, err);
out:
    free(specs);
    return rc;
}

static int build_keyring(struct gw_snapshot *snap, struct ag_err *err)
{
    const struct gw_auth_conf *auth = &snap->cfg.auth;
    if (auth->issuer_count == 0)
        return 0;
    struct ag_issuer_spec *specs = calloc(auth->issuer_count, sizeof *specs);
    if (!specs)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    for (size_t i = 0; i < auth->issuer_count; i++) {
        const struct gw_issuer_conf *is = &auth->issuers[i];
        specs[i] = (struct ag_issuer_spec){
            .issuer = is->issuer,
            .jwks_uri = is->jwks_uri,
            .jwks_file = is->jwks_file,
            .audiences = (const char *const *)is->audiences,
            .audience_count = is->audience_count,
            .algorithms = is->algorithm_mask,
            .clock_skew_s = (uint32_t)is->clock_skew_s,
            .max_token_bytes = auth->max_token_bytes,
            .refresh_interval_ms = is->refresh_interval_ms,
        };
    }
    int rc = ag_keyring_new(specs, auth->issuer_count, &snap->keyring, err);
    free(specs);
    if (rc == 0)
        rc = ag_keyring_start(snap->keyring, KEYS_INITIAL_TIMEOUT_MS, err);
    return rc;
}

static int build_health(struct gw_snapshot *snap, struct ag_err *err)
{
    struct gw_health_upstream *ups = calloc(snap->upstream_count + 1, sizeof *ups);
    if (!ups)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < snap->upstream_count; i++) {
        const struct gw_upstream_conf *uc = snap->upstreams[i].conf;
        if (!uc->health.path)
            continue;
        ups[n].pool = snap->upstreams[i].pool;
        ups[n].host = uc->host;
        ups[n].check = (struct gw_health_config){
            .path = uc->health.path,
            .interval_ms = (uint32_t)uc->health.interval_ms,
            .timeout_ms = (uint32_t)uc->health.timeout_ms,
            .unhealthy_after = (unsigned)uc->health.unhealthy_after,
            .healthy_after = (unsigned)uc->health.healthy_after,
        };
        n++;
    }
    int rc = 0;
    if (n > 0) {
        rc = gw_health_new(ups, n, &snap->health, err);
        if (rc == 0)
            rc = gw_health_start(snap->health, err);
    }
    free(ups);
    return rc;
}

int gw_snapshot_new(struct gw_config *cfg, const char *config_path, uint64_t generation,
                    struct ag_metrics *reg, struct gw_snapshot **out, struct ag_err *err)
{
    struct gw_snapshot *snap = calloc(1, sizeof *snap);
    if (!snap) {
        gw_config_release(cfg);
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    }
    atomic_init(&snap->refs, 1);
    snap->generation = generation;
    snap->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    snap->config_path = strdup(config_path ? config_path : "");
    struct families fam = {0};
    int rc = register_families(reg, &fam, err);
    if (rc < 0)
        goto out;
    snap->upstream_count = snap->cfg.upstream_count;
    snap->upstreams = calloc(snap->upstream_count + 1, sizeof *snap->upstreams);
    if (!snap->upstreams || !snap->config_path) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < snap->upstream_count; i++) {
        snap->upstreams[i].conf = &snap->cfg.upstreams[i];
        snap->upstreams[i].index = i;
        if ((rc = build_upstream(&snap->upstreams[i], &snap->cfg.upstreams[i], &fam, err)) < 0)
            goto out;
    }
    if ((rc = build_routes(snap, &fam, err)) < 0 || (rc = build_keyring(snap, err)) < 0 ||
        (rc = build_health(snap, err)) < 0)
        goto out;
out:
    if (rc < 0) {
        /* Messages from the router, pools and keyring name the route or key, not the file. */
        if (config_path && strncmp(err->msg, config_path, strlen(config_path)) != 0) {
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err->msg);
            ag_err_set(err, rc, "%s: %s", config_path, why);
        }
        snapshot_free(snap);
        return rc;
    }
    *out = snap;
    return 0;
}

bool gw_snapshot_ready(const struct gw_snapshot *snap)
{
    return !snap->keyring || ag_keyring_ready(snap->keyring);
}

void gw_snapshot_update_gauges(const struct gw_snapshot *snap, uint64_t now_ms)
{
    for (size_t i = 0; i < snap->upstream_count; i++) {
        const struct gw_upstream *up = &snap->upstreams[i];
        if (up->has_breaker)
            ag_gauge_set(up->breaker_gauge, (double)gw_breaker_state(&up->breaker, now_ms));
        for (size_t t = 0; t < up->conf->target_count; t++)
            ag_gauge_set(up->target_healthy[t],
                         gw_target_healthy(up->pool, (int)t, now_ms) ? 1.0 : 0.0);
    }
}
