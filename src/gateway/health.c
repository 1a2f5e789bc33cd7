/* Active health checks: a thread with its own loop and HTTP client, thresholds, transitions. */
#include "gateway/health.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/http_client.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/banned.h"

enum {
    INTERVAL_MS_MIN = 10,
    INTERVAL_MS_MAX = 3600000,
    TIMEOUT_MS_MAX = 600000,
    TIMEOUT_MS_AUTO_MAX = 2000, /* timeout 0: min(interval, this) */
    THRESHOLD_MAX = 1000,
    PATH_MAX_LEN = 2048,
    REASON_MAX = 200,
};

struct check_upstream {
    struct gw_pool *pool;
    char *path;
    char *host;                  /* NULL: each target's address */
    struct gw_health_config cfg; /* timeout_ms resolved; path points to the copy */
};

/* One target's checks. At most one call per target exists at a time. */
struct check_target {
    struct gw_health *health;
    struct check_upstream *up;
    int index;
    struct ag_timer next_timer;     /* the next check */
    struct ag_timer deadline_timer; /* the running check's timeout */
    struct ag_http_call *call;      /* checking, or reading the rest of a body once decided */
    bool decided;                   /* the running call's result was counted */
    uint64_t started_ms;
    uint64_t ejections_at_start; /* gw_target_ejections when the check started */
    uint64_t ejections_seen;     /* the passes run restarts when this changes */
    unsigned passes, failures;   /* runs of consecutive results, capped at the thresholds */
    bool healthy;                /* what this checker last told the pool */
};

struct gw_health {
    struct ag_loop *loop;
    struct ag_http_client *client;
    struct check_upstream *ups;
    size_t n_ups;
    struct check_target *targets;
    size_t n_targets;
    pthread_t thread;
    bool started;
};

void gw_health_config_defaults(struct gw_health_config *cfg)
{
    cfg->path = "/healthz";
    cfg->interval_ms = 1000;
    cfg->timeout_ms = 0;
    cfg->unhealthy_after = 3;
    cfg->healthy_after = 2;
}

/* True when s is non-empty visible ASCII (what the client accepts in a target or Host). */
static bool visible_ascii(const char *s, size_t max)
{
    size_t len = strnlen(s, max + 1);
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

static int upstream_check(const struct gw_health_upstream *u, size_t i, struct ag_err *err)
{
    const struct gw_health_config *c = &u->check;
    if (!u->pool)
        return ag_err_set(err, AG_EINVAL, "health check %zu has no upstream pool", i);
    const char *name = gw_pool_name(u->pool);
    if (!c->path || c->path[0] != '/' || !visible_ascii(c->path, PATH_MAX_LEN))
        return ag_err_set(err, AG_EINVAL,
                          "upstream %s: health path must start with / and be visible ASCII", name);
    if (u->host && *u->host && !visible_ascii(u->host, PATH_MAX_LEN))
        return ag_err_set(err, AG_EINVAL, "upstream %s: health host must be visible ASCII", name);
    if (c->interval_ms < INTERVAL_MS_MIN || c->interval_ms > INTERVAL_MS_MAX)
        return ag_err_set(err, AG_EINVAL,
                          "upstream %s: health interval_ms must be %d to %d, not %u", name,
                          INTERVAL_MS_MIN, INTERVAL_MS_MAX, (unsigned)c->interval_ms);
    if (c->timeout_ms > TIMEOUT_MS_MAX)
        return ag_err_set(err, AG_EINVAL, "upstream %s: health timeout_ms must be 0 to %d, not %u",
                          name, TIMEOUT_MS_MAX, (unsigned)c->timeout_ms);
    if (c->unhealthy_after < 1 || c->unhealthy_after > THRESHOLD_MAX)
        return ag_err_set(err, AG_EINVAL,
                          "upstream %s: health unhealthy_after must be 1 to %d, not %u", name,
                          THRESHOLD_MAX, c->unhealthy_after);
    if (c->healthy_after < 1 || c->healthy_after > THRESHOLD_MAX)
        return ag_err_set(err, AG_EINVAL,
                          "upstream %s: health healthy_after must be 1 to %d, not %u", name,
                          THRESHOLD_MAX, c->healthy_after);
    return 0;
}

static char *copy_cstr(const char *s)
{
    size_t len = strlen(s) + 1;
    char *copy = malloc(len);
    if (copy)
        memcpy(copy, s, len);
    return copy;
}

void gw_health_free(struct gw_health *health)
{
    if (!health)
        return;
    if (health->started) {
        ag_loop_stop(health->loop);
        pthread_join(health->thread, NULL); /* the thread freed the client */
    } else {
        ag_http_client_free(health->client);
    }
    ag_loop_free(health->loop); /* runs the client's last deferred releases */
    for (size_t i = 0; i < health->n_ups; i++) {
        free(health->ups[i].path);
        free(health->ups[i].host);
    }
    free(health->ups);
    free(health->targets);
    free(health);
}

static void next_cb(struct ag_timer *timer);
static void deadline_cb(struct ag_timer *timer);

int gw_health_new(const struct gw_health_upstream *ups, size_t n, struct gw_health **out,
                  struct ag_err *err)
{
    int rc = 0;
    size_t n_targets = 0;
    uint32_t longest_timeout = 1;
    struct gw_health *health = NULL;
    for (size_t i = 0; i < n; i++) {
        rc = upstream_check(&ups[i], i, err);
        if (rc < 0)
            goto out;
        n_targets += gw_pool_size(ups[i].pool);
    }
    health = calloc(1, sizeof *health);
    if (!health)
        goto nomem;
    rc = ag_loop_new(&health->loop, err);
    if (rc < 0)
        goto out;
    health->ups = calloc(n ? n : 1, sizeof *health->ups);
    health->targets = calloc(n_targets ? n_targets : 1, sizeof *health->targets);
    if (!health->ups || !health->targets)
        goto nomem;
    health->n_ups = n;
    for (size_t i = 0; i < n; i++) {
        struct check_upstream *cu = &health->ups[i];
        cu->pool = ups[i].pool;
        cu->cfg = ups[i].check;
        if (cu->cfg.timeout_ms == 0)
            cu->cfg.timeout_ms = cu->cfg.interval_ms < TIMEOUT_MS_AUTO_MAX ? cu->cfg.interval_ms
                                                                           : TIMEOUT_MS_AUTO_MAX;
        if (cu->cfg.timeout_ms > longest_timeout)
            longest_timeout = cu->cfg.timeout_ms;
        cu->path = copy_cstr(ups[i].check.path);
        if (!cu->path)
            goto nomem;
        cu->cfg.path = cu->path;
        if (ups[i].host && *ups[i].host) {
            cu->host = copy_cstr(ups[i].host);
            if (!cu->host)
                goto nomem;
        }
        for (size_t t = 0; t < gw_pool_size(cu->pool); t++) {
            struct check_target *ct = &health->targets[health->n_targets++];
            ct->health = health;
            ct->up = cu;
            ct->index = (int)t;
            ct->healthy = true;
            ag_timer_init(&ct->next_timer, next_cb);
            ag_timer_init(&ct->deadline_timer, deadline_cb);
        }
    }
    struct ag_http_client_config ccfg;
    ag_http_client_config_defaults(&ccfg);
    ccfg.max_idle_per_host = 1;
    ccfg.connect_timeout_ms = longest_timeout; /* each check's own deadline cuts it shorter */
    rc = ag_http_client_new(health->loop, &ccfg, &health->client, err);
    if (rc < 0)
        goto out;
    *out = health;
    health = NULL;
    goto out;
nomem:
    rc = ag_err_set(err, AG_ENOMEM, "out of memory creating the health checker");
out:
    gw_health_free(health);
    return rc;
}

/* ---- one check ---- */

static void log_transition(const struct check_target *ct, bool healthy, unsigned run,
                           const char *reason)
{
    struct gw_pool *pool = ct->up->pool;
    ag_log(healthy ? AG_LOG_INFO : AG_LOG_WARN,
           healthy ? "upstream target passed health checks"
                   : "upstream target failed health checks",
           AG_F_STR("upstream", gw_pool_name(pool)),
           AG_F_STR("target", gw_target_address(pool, ct->index)), AG_F_STR("reason", reason),
           AG_F_UINT("checks_in_a_row", run));
}

/* Counts the result of the running check and schedules the next one. */
static void check_done(struct check_target *ct, bool passed, const char *reason)
{
    struct gw_health *health = ct->health;
    struct gw_pool *pool = ct->up->pool;
    const struct gw_health_config *cfg = &ct->up->cfg;
    ct->decided = true;
    ag_timer_stop(health->loop, &ct->deadline_timer);

    uint64_t ejections = gw_target_ejections(pool, ct->index);
    if (ejections != ct->ejections_seen) {
        ct->ejections_seen = ejections; /* a passive ejection restarts the run of passes */
        ct->passes = 0;
    }
    if (passed) {
        ct->failures = 0;
        /* A check that started before the last ejection says nothing about after it. */
        if (ct->ejections_at_start == ejections && ct->passes < cfg->healthy_after &&
            ++ct->passes == cfg->healthy_after) {
            gw_target_set_health(pool, ct->index, true);
            if (!ct->healthy) {
                ct->healthy = true;
                log_transition(ct, true, ct->passes, reason);
            }
        }
    } else {
        ct->passes = 0;
        if (ct->failures < cfg->unhealthy_after && ++ct->failures == cfg->unhealthy_after) {
            gw_target_set_health(pool, ct->index, false);
            if (ct->healthy) {
                ct->healthy = false;
                log_transition(ct, false, ct->failures, reason);
            }
        }
    }

    uint64_t now = ag_loop_now(health->loop);
    uint64_t next = ct->started_ms + cfg->interval_ms;
    if (ag_timer_start(health->loop, &ct->next_timer, next > now ? next - now : 0) < 0) {
        /* Not expected: the heap held this timer before it fired, so it has room for it. */
        ag_log_error("health check not rescheduled: out of memory",
                     AG_F_STR("upstream", gw_pool_name(pool)),
                     AG_F_STR("target", gw_target_address(pool, ct->index)));
    }
}

static void call_on_response(struct ag_http_call *call, const struct ag_http_response *resp)
{
    struct check_target *ct = ag_http_call_ctx(call);
    if (ct->decided)
        return;
    char reason[REASON_MAX];
    snprintf(reason, sizeof reason, "status %d", resp->status);
    check_done(ct, resp->status >= 200 && resp->status < 400, reason);
}

static void call_on_body(struct ag_http_call *call, struct ag_str data, bool last)
{
    struct check_target *ct = ag_http_call_ctx(call);
    (void)data;
    if (last)
        ct->call = NULL; /* the client frees it when this returns */
}

static void call_on_error(struct ag_http_call *call, int code, const char *message)
{
    struct check_target *ct = ag_http_call_ctx(call);
    ct->call = NULL;
    if (ct->decided)
        return; /* the status was counted; the body just did not arrive whole */
    char reason[REASON_MAX];
    snprintf(reason, sizeof reason, "%s: %s", ag_http_client_err_name(code), message);
    check_done(ct, false, reason);
}

static const struct ag_http_call_ops call_ops = {
    .on_response = call_on_response,
    .on_body = call_on_body,
    .on_error = call_on_error,
};

static void deadline_cb(struct ag_timer *timer)
{
    struct check_target *ct = AG_CONTAINER_OF(timer, struct check_target, deadline_timer);
    if (ct->call) {
        ag_http_call_cancel(ct->call);
        ct->call = NULL;
    }
    char reason[REASON_MAX];
    snprintf(reason, sizeof reason, "no response within %u ms", (unsigned)ct->up->cfg.timeout_ms);
    check_done(ct, false, reason);
}

static void next_cb(struct ag_timer *timer)
{
    struct check_target *ct = AG_CONTAINER_OF(timer, struct check_target, next_timer);
    struct gw_health *health = ct->health;
    struct check_upstream *cu = ct->up;
    if (ct->call) {
        /* Still reading the previous check's body: drop it (and its connection). */
        ag_http_call_cancel(ct->call);
        ct->call = NULL;
    }
    ct->decided = false;
    ct->started_ms = ag_loop_now(health->loop);
    ct->ejections_at_start = gw_target_ejections(cu->pool, ct->index);
    static const struct ag_http_header headers[] = {
        {AG_STR("User-Agent"), AG_STR("agora-gateway-health-check")},
    };
    struct ag_http_client_request req = {
        .address = gw_target_address(cu->pool, ct->index),
        .method = AG_STR("GET"),
        .target = ag_str_from_cstr(cu->path),
        .host = ag_str_from_cstr(cu->host),
        .headers = headers,
        .header_count = sizeof headers / sizeof headers[0],
    };
    struct ag_err err = {0};
    int rc = ag_http_client_request(health->client, &req, &call_ops, ct, &ct->call, &err);
    if (rc < 0) {
        ct->call = NULL;
        check_done(ct, false, err.msg[0] ? err.msg : ag_err_name(rc));
        return;
    }
    if (ag_timer_start(health->loop, &ct->deadline_timer, cu->cfg.timeout_ms) < 0) {
        /* No deadline of our own: the client's connect and response timeouts still end it. */
        ag_log_error("health check deadline not set: out of memory",
                     AG_F_STR("upstream", gw_pool_name(cu->pool)), AG_F_STR("target", req.address));
    }
}

/* ---- the thread ---- */

static void *health_main(void *arg)
{
    struct gw_health *health = arg;
    int rc = ag_loop_run(health->loop);
    if (rc < 0)
        ag_log_error("health check loop failed", AG_F_STR("error", ag_err_name(rc)));
    /* Cancels the calls in flight and closes every connection, on the loop's own thread. */
    ag_http_client_free(health->client);
    health->client = NULL;
    return NULL;
}

int gw_health_start(struct gw_health *health, struct ag_err *err)
{
    if (health->started)
        return ag_err_set(err, AG_EINVAL, "the health checker is already started");
    ag_loop_update_time(health->loop);
    for (size_t i = 0; i < health->n_targets; i++) {
        struct check_target *ct = &health->targets[i];
        ct->ejections_seen = gw_target_ejections(ct->up->pool, ct->index);
        if (ag_timer_start(health->loop, &ct->next_timer, 0) < 0) {
            for (size_t j = 0; j <= i; j++)
                ag_timer_stop(health->loop, &health->targets[j].next_timer);
            return ag_err_set(err, AG_ENOMEM, "out of memory starting the health checks");
        }
    }
    int e = pthread_create(&health->thread, NULL, health_main, health);
    if (e != 0) {
        for (size_t i = 0; i < health->n_targets; i++)
            ag_timer_stop(health->loop, &health->targets[i].next_timer);
        errno = e;
        return ag_err_sys(err, "cannot start the health check thread");
    }
    health->started = true;
    return 0;
}
