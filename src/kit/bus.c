/* The bus in the kit: driver choice, start/stop of the relay and consumer, metrics, dead events. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/metrics.h"
#include "kit/bus_internal.h"
#include "kit/bus_schema.h"
#include "kit/db.h"
#include "kit/kit.h"
#include "core/banned.h"

enum {
    REPLAY_IDS_MAX = 1000, /* ids in one replay request */
    SOURCE_MAX = 160,
};

const struct kit_bus_driver *kit_bus_driver_for(const char *url, struct ag_err *err)
{
    const struct kit_bus_driver *drv = NULL;
    if (url && strncmp(url, "local:", 6) == 0)
        drv = &kit_bus_local;
    else if (url && (strncmp(url, "amqp://", 7) == 0 || strncmp(url, "amqps://", 8) == 0))
        drv = &kit_bus_amqp;
    if (drv)
        return drv->url_check(url, err) < 0 ? NULL : drv;
    const char *colon = url ? strchr(url, ':') : NULL;
    int scheme_len = colon && colon - url < 32 ? (int)(colon - url) : 0;
    ag_err_set(err, AG_EINVAL,
               "unknown bus URL scheme \"%.*s\" (local:PATH or amqp://user:password@host/vhost)",
               scheme_len, url ? url : "");
    return NULL;
}

/* ---- metrics ---- */

static struct kit_bus_metrics metrics;
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

/* A family without labels and its one series; NULL on a name clash (updates become no-ops). */
static struct ag_series *counter(const char *name, const char *help)
{
    struct ag_metric *m = NULL;
    struct ag_series *s = NULL;
    if (ag_metrics_counter(ag_metrics_default(), name, help, NULL, 0, 0, &m, NULL) == 0)
        ag_metric_series(m, NULL, &s);
    return s;
}

static struct ag_series *gauge(const char *name, const char *help)
{
    struct ag_metric *m = NULL;
    struct ag_series *s = NULL;
    if (ag_metrics_gauge(ag_metrics_default(), name, help, NULL, 0, 0, &m, NULL) == 0)
        ag_metric_series(m, NULL, &s);
    return s;
}

static void metrics_register(void)
{
    metrics.published = counter("agora_bus_published_total",
                                "Outbox events the bus confirmed holding (a retried batch counts "
                                "again).");
    metrics.delivered =
        counter("agora_bus_delivered_total", "Events whose handler succeeded and committed.");
    metrics.duplicates = counter("agora_bus_duplicates_total",
                                 "Deliveries skipped because the inbox already held their id.");
    metrics.retried = counter("agora_bus_retried_total", "Handler attempts after a failure.");
    metrics.dead = counter("agora_bus_dead_total", "Events parked in dead_events.");
    metrics.outbox_pending = gauge("agora_bus_outbox_pending", "Outbox rows not yet published.");
    metrics.outbox_lag = gauge("agora_bus_outbox_lag_seconds",
                               "Age of the oldest unpublished outbox row (0 when none).");
    static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                    0.25,  0.5,    1,     2.5,  5,     10,   30};
    struct ag_metric *m = NULL;
    if (ag_metrics_histogram(ag_metrics_default(), "agora_bus_delivery_seconds",
                             "From an event's time to the commit of its handler's transaction.",
                             NULL, 0, 0, bounds, sizeof bounds / sizeof bounds[0], &m, NULL) == 0)
        ag_metric_series(m, NULL, &metrics.delivery_seconds);
}

const struct kit_bus_metrics *kit_bus_metrics(void)
{
    pthread_once(&metrics_once, metrics_register);
    return &metrics;
}

/* ---- interruptible waits ---- */

struct kit_bus_stop {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop, poked;
};

int kit_bus_stop_new(struct kit_bus_stop **out)
{
    struct kit_bus_stop *s = calloc(1, sizeof *s);
    if (!s)
        return AG_ENOMEM;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, &attr);
    pthread_condattr_destroy(&attr);
    *out = s;
    return 0;
}

void kit_bus_stop_free(struct kit_bus_stop *s)
{
    if (!s)
        return;
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void kit_bus_stop_request(struct kit_bus_stop *s)
{
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

bool kit_bus_stop_requested(struct kit_bus_stop *s)
{
    pthread_mutex_lock(&s->lock);
    bool stop = s->stop;
    pthread_mutex_unlock(&s->lock);
    return stop;
}

void kit_bus_stop_poke(struct kit_bus_stop *s)
{
    pthread_mutex_lock(&s->lock);
    s->poked = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

bool kit_bus_stop_wait(struct kit_bus_stop *s, unsigned ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&s->lock);
    while (!s->stop && !s->poked)
        if (pthread_cond_timedwait(&s->cond, &s->lock, &until) != 0)
            break; /* timed out */
    s->poked = false;
    bool stop = s->stop;
    pthread_mutex_unlock(&s->lock);
    return stop;
}

/* ---- the kit's glue ---- */

struct kit_bus {
    struct kit_bus_settings settings;
    const struct kit_bus_driver *drv;
    char source[SOURCE_MAX];
    char *service;
    char *db_url;
    const struct kit_subscription *subs;
    size_t sub_count;
    struct kit_app *app;
    _Atomic(struct kit_bus_relay *) relay;
    struct kit_bus_consumer *consumer;
};

/* The on-commit hook of every connection: wakes the relay once it runs. */
static void bus_wake(void *ctx)
{
    struct kit_bus *bus = ctx;
    struct kit_bus_relay *r = atomic_load(&bus->relay);
    if (r)
        kit_bus_relay_wake(r);
    const struct kit_service *svc = bus->app ? kit_app_service(bus->app) : NULL;
    if (svc && svc->on_events_committed)
        svc->on_events_committed(bus->app);
}

int kit_bus_new(const struct kit_bus_settings *s, const char *service, const char *db_url,
                struct kit_db *db, const struct kit_subscription *subs, size_t sub_count,
                struct kit_app *app, struct kit_bus **out, struct ag_err *err)
{
    int rc = 0;
    const struct kit_bus_driver *drv = kit_bus_driver_for(s->url, err);
    if (!drv)
        return AG_EINVAL;
    for (size_t i = 0; i < sub_count; i++)
        if (!subs[i].pattern || !*subs[i].pattern || !subs[i].handler)
            return ag_err_set(err, AG_EINVAL, "subscription %zu has no pattern or no handler", i);
    struct kit_bus *bus = calloc(1, sizeof *bus);
    if (!bus)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    bus->settings = *s;
    bus->drv = drv;
    bus->subs = subs;
    bus->sub_count = sub_count;
    bus->app = app;
    snprintf(bus->source, sizeof bus->source, "agora/%s", service);
    bus->service = strdup(service);
    bus->db_url = strdup(db_url);
    char *url = strdup(s->url);
    bus->settings.url = url;
    if (!bus->service || !bus->db_url || !url) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = kit_bus_schema_create(db, err)) < 0)
        goto out;
    if ((rc = kit_bus_attach(bus, db)) < 0) {
        rc = ag_err_set(err, rc, "out of memory");
        goto out;
    }
    *out = bus;
    bus = NULL;
out:
    kit_bus_stop(bus);
    return rc;
}

int kit_bus_run(struct kit_bus *bus, struct ag_err *err)
{
    struct kit_bus_relay *relay = NULL;
    int rc = kit_bus_relay_start(bus->drv, &bus->settings, bus->db_url, &relay, err);
    if (rc < 0)
        return rc;
    atomic_store(&bus->relay, relay);
    if (bus->sub_count == 0)
        return 0;
    struct kit_bus_consumer_config cc = {
        .drv = bus->drv,
        .settings = &bus->settings,
        .db_url = bus->db_url,
        .group = bus->service,
        .subs = bus->subs,
        .sub_count = bus->sub_count,
        .app = bus->app,
        .bus = bus,
    };
    return kit_bus_consumer_start(&cc, &bus->consumer, err);
}

int kit_bus_attach(struct kit_bus *bus, struct kit_db *db)
{
    int rc = kit_db_event_source(db, bus->source);
    if (rc == 0)
        kit_db_on_event_commit(db, bus_wake, bus);
    return rc;
}

bool kit_bus_reachable(const struct kit_bus *bus)
{
    struct kit_bus_relay *r = bus ? atomic_load(&((struct kit_bus *)bus)->relay) : NULL;
    if (!r || !kit_bus_relay_connected(r))
        return false;
    return !bus->consumer || kit_bus_consumer_connected(bus->consumer);
}

void kit_bus_stop(struct kit_bus *bus)
{
    if (!bus)
        return;
    kit_bus_consumer_stop(bus->consumer);
    kit_bus_relay_stop(atomic_exchange(&bus->relay, NULL));
    free((char *)bus->settings.url);
    free(bus->service);
    free(bus->db_url);
    free(bus);
}

/* ---- dead events over HTTP ---- */

int kit_bus_route_dead(struct kit_req *req)
{
    struct kit_page page;
    struct ag_err err = {0};
    int rc = kit_req_page(req, &page);
    if (rc < 0)
        return rc;
    struct kit_db *db = kit_req_db(req);
    const char *tenant = kit_req_tenant(req);
    int64_t total = 0;
    rc = kit_db_query_int(db, "SELECT COUNT(*) FROM dead_events WHERE tenant = $1",
                          KIT_DB_PARAMS(KIT_DB_TEXT(tenant)), &total, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    struct kit_db_rows *rows = NULL;
    rc = kit_db_query(
        db,
        "SELECT event_id, type, subject, source, tenant, attempts, error, "
        "failed_at, replay_requested FROM dead_events WHERE tenant = $1 "
        "ORDER BY failed_at DESC, event_id LIMIT $2 OFFSET $3",
        KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_INT(page.per_page), KIT_DB_INT(page.offset)),
        (size_t)page.per_page, &rows, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    json_t *items = json_array();
    for (size_t i = 0; items && i < (size_t)rc; i++) {
        json_t *item = json_pack(
            "{s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:b}", "event_id",
            kit_db_rows_json_text(rows, i, 0), "type", kit_db_rows_json_text(rows, i, 1), "subject",
            kit_db_rows_json_text(rows, i, 2), "source", kit_db_rows_json_text(rows, i, 3),
            "tenant", kit_db_rows_json_text(rows, i, 4), "attempts",
            (json_int_t)kit_db_rows_int(rows, i, 5), "error", kit_db_rows_json_text(rows, i, 6),
            "failed_at", kit_db_rows_json_time(rows, i, 7), "replay_requested",
            kit_db_rows_int(rows, i, 8) != 0);
        if (!item || json_array_append_new(items, item) < 0) {
            json_decref(items);
            items = NULL;
        }
    }
    kit_db_rows_free(rows);
    if (!items)
        return AG_ENOMEM;
    return kit_resp_page(req, items, &page, total);
}

int kit_bus_route_replay(struct kit_req *req)
{
    static const struct kit_field fields[] = {
        {"ids", JSON_ARRAY, .required = false},
        {"all", JSON_TRUE, .required = false},
    };
    json_t *body;
    struct ag_err err = {0};
    int rc = kit_req_json(req, &body);
    if (rc < 0)
        return rc;
    if (kit_req_fields(req, body, fields, 2) > 0)
        return kit_resp_invalid(req);
    json_t *ids = json_object_get(body, "ids");
    bool all = json_is_true(json_object_get(body, "all"));
    if (!ids == !all) {
        kit_req_invalid(req, "ids", "give either ids (an array of event ids) or all: true");
        return kit_resp_invalid(req);
    }
    size_t n = json_array_size(ids);
    if (ids && (n == 0 || n > REPLAY_IDS_MAX)) {
        kit_req_invalid(req, "ids", "must hold 1 to 1000 event ids");
        return kit_resp_invalid(req);
    }
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_array_get(ids, i));
        if (!id || !*id || strlen(id) > 128) {
            kit_req_invalid(req, "ids", "every id must be a string of 1 to 128 bytes");
            return kit_resp_invalid(req);
        }
    }
    struct kit_db *db = kit_req_db(req);
    const char *tenant = kit_req_tenant(req);
    int64_t requested = 0;
    if ((rc = kit_db_begin(db, &err)) < 0)
        return kit_req_db_fail(req, rc, &err);
    if (all) {
        rc = kit_db_exec(db,
                         "UPDATE dead_events SET replay_requested = 1 WHERE tenant = $1 "
                         "AND replay_requested = 0",
                         KIT_DB_PARAMS(KIT_DB_TEXT(tenant)), &err);
        requested = rc;
    }
    for (size_t i = 0; rc >= 0 && i < n; i++) {
        rc = kit_db_exec(db,
                         "UPDATE dead_events SET replay_requested = 1 WHERE event_id = $1 "
                         "AND tenant = $2 AND replay_requested = 0",
                         KIT_DB_PARAMS(KIT_DB_TEXT(json_string_value(json_array_get(ids, i))),
                                       KIT_DB_TEXT(tenant)),
                         &err);
        requested += rc > 0 ? rc : 0;
    }
    if (rc >= 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    return kit_resp_json(req, 202, json_pack("{s:I}", "requested", (json_int_t)requested));
}
