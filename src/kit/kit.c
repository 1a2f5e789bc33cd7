/* kit_main and the running app: settings, start order, the HTTP front, handler jobs, shutdown. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/http_server.h"
#include "core/jwt_cache.h"
#include "core/keyring.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "kit/bus_internal.h"
#include "kit/db.h"
#include "kit/kit.h"
#include "kit/kit_config.h"
#include "kit/kit_identity.h"
#include "kit/kit_pool.h"
#include "kit/kit_req.h"
#include "kit/kit_router.h"
#include "core/banned.h"

enum {
    KIT_QUEUE_MAX = 1024,       /* jobs waiting for a handler thread; beyond: 503 */
    KIT_KEYRING_WAIT_MS = 2000, /* first JWKS fetches at start */
    KIT_METRIC_SERIES = 1000,   /* label combinations per kit metric family */
};

struct kit_app {
    const struct kit_service *svc;
    struct kit_settings settings;
    struct kit_db *main_db;
    void *data;
    struct kit_router *router;
    struct kit_pool *pool;
    struct ag_keyring *keyring;
    struct ag_metric *requests_total;
    struct ag_metric *request_duration;
    struct ag_series *jobs_queued;
    struct kit_bus *bus;    /* the outbox relay and the consumer (kit/bus_internal.h) */
    atomic_bool rerun_busy; /* a kit_req_rerun_later copy is queued or running */
};

/* One I/O loop's side of the handoff: finished jobs wait here for the loop to write them. */
struct kit_io {
    struct kit_app *app;
    struct ag_loop *loop;
    pthread_mutex_t lock;
    pthread_cond_t idle;  /* in_pool reached 0 */
    struct kit_job *done; /* finished jobs, newest first */
    size_t in_pool;       /* jobs handed to the pool and not yet in done */
    bool post_pending;    /* an io_deliver is posted and has not taken the list yet */
};

/* One handler thread's own state. */
struct kit_worker {
    struct kit_db *db;
    struct ag_jwt_cache *cache;
};

/* A request on its way: made on the loop, run on a handler thread, written on the loop. */
struct kit_job {
    struct kit_pool_job pool_job;
    struct kit_req req;
    struct kit_io *io;
    struct ag_http_exchange *ex;
    struct kit_job *done_next;
    struct timespec started;
    const char *route_label;
    bool in_pool;          /* loop thread only: between submit and io_deliver */
    bool closed;           /* loop thread only: on_close ran while in the pool */
    atomic_bool abandoned; /* a hint for the handler thread: nobody waits for the answer */
};

/* ---- the app ---- */

const struct kit_service *kit_app_service(const struct kit_app *app)
{
    return app->svc;
}

struct kit_db *kit_app_db(struct kit_app *app)
{
    return app->main_db;
}

void kit_app_set_data(struct kit_app *app, void *data)
{
    app->data = data;
}

void *kit_app_data(const struct kit_app *app)
{
    return app->data;
}

const char *kit_app_db_url(const struct kit_app *app)
{
    return app->settings.db;
}

int kit_app_db_open(struct kit_app *app, struct kit_db **out, struct ag_err *err)
{
    struct kit_db *db = NULL;
    int rc = kit_db_open(app->settings.db, &db, err);
    if (rc == 0 && (rc = kit_bus_attach(app->bus, db)) == 0)
        rc = kit_db_event_context(db, app->settings.default_tenant, NULL);
    if (rc < 0 && db) {
        kit_db_close(db);
        db = NULL;
        ag_err_set(err, rc, "%s setting up a database connection for the bus",
                   rc == AG_ENOMEM ? "out of memory" : "failed");
    }
    *out = db;
    return rc;
}

const char *kit_app_setting(const struct kit_app *app, const char *env)
{
    for (size_t i = 0; env && i < app->svc->setting_count; i++)
        if (strcmp(app->svc->settings[i].env, env) == 0)
            return app->settings.service_values[i];
    return NULL;
}

bool kit_app_is_dev(const struct kit_app *app)
{
    return app->settings.env == KIT_ENV_DEVELOPMENT;
}

/* ---- built-in routes ---- */

static int builtin_healthz(struct kit_req *req)
{
    return kit_resp_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

/*
 * Ready when the database is: the bus is reported but does not decide, because the outbox
 * absorbs a broker outage (writes still commit; the relay publishes them once it is back).
 */
static int builtin_readyz(struct kit_req *req)
{
    const struct kit_service *svc = req->app->svc;
    if (!req->db || !kit_db_ping(req->db))
        return kit_resp_problem(req, 503, "the database is not reachable");
    if (!kit_db_migrated(req->db, svc->migrations, svc->migration_count))
        return kit_resp_problem(req, 503, "the database migrations are not all applied");
    const char *bus = kit_bus_reachable(req->app->bus) ? "reachable" : "unreachable";
    return kit_resp_json(req, 200, json_pack("{s:s, s:s}", "status", "ready", "bus", bus));
}

static int builtin_metrics(struct kit_req *req)
{
    struct ag_buf b;
    ag_buf_init(&b, 16u << 20);
    int rc = ag_metrics_render(ag_metrics_default(), &b);
    if (rc == 0)
        rc = kit_resp_raw(req, 200, "text/plain; version=0.0.4; charset=utf-8",
                          b.data ? b.data + b.off : "", b.len);
    ag_buf_release(&b);
    return rc;
}

static const struct kit_route builtin_routes[] = {
    {"GET", "/healthz", builtin_healthz, KIT_PUBLIC, NULL},
    {"GET", "/readyz", builtin_readyz, KIT_PUBLIC, NULL},
    {"GET", "/metrics", builtin_metrics, KIT_PUBLIC, NULL},
    {"GET", "/_kit/events/dead", kit_bus_route_dead, KIT_ROLE("admin"), NULL},
    {"POST", "/_kit/events/replay", kit_bus_route_replay, KIT_ROLE("admin"), NULL},
};

/* ---- jobs on the loop ---- */

static void job_free(struct kit_job *job)
{
    kit_req_release(&job->req);
    free(job);
}

static double job_seconds(const struct kit_job *job)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - job->started.tv_sec) +
           (double)(now.tv_nsec - job->started.tv_nsec) / 1e9;
}

/* The request log line and the metrics of one answered (or dropped) request. */
static void job_account(struct kit_job *job, int status, bool dropped)
{
    struct kit_app *app = job->io->app;
    double secs = job_seconds(job);
    char status_text[8];
    snprintf(status_text, sizeof status_text, "%d", status);
    const char *method = job->req.head ? "HEAD" : job->req.method;
    const char *labels[3] = {job->route_label, method, status_text};
    struct ag_series *s = NULL;
    if (ag_metric_series(app->requests_total, labels, &s) == 0)
        ag_counter_inc(s);
    if (ag_metric_series(app->request_duration, labels, &s) == 0)
        ag_histogram_observe(s, secs);
    ag_log_info("request", AG_F_STR("request_id", job->req.request_id), AG_F_STR("method", method),
                AG_F_STR("route", job->route_label), AG_F_SLICE("path", job->req.path),
                AG_F_INT("status", status), AG_F_DOUBLE("duration_ms", secs * 1000.0),
                AG_F_STR("sub", kit_req_subject(&job->req)), AG_F_STR("peer", job->req.peer),
                dropped ? AG_F_BOOL("dropped", true) : AG_F_STR(NULL, NULL));
}

/* Writes the job's answer on the loop thread. */
static void job_respond(struct kit_job *job)
{
    struct kit_req *req = &job->req;
    if (req->status == 0)
        kit_resp_problem(req, 500, "no answer was made");
    struct ag_http_header h[KIT_RESP_HEADERS_MAX + 2];
    size_t n = 0;
    for (size_t i = 0; i < req->resp_field_count; i++)
        h[n++] = (struct ag_http_header){ag_str_from_cstr(req->resp_fields[i].name),
                                         ag_str_from_cstr(req->resp_fields[i].value)};
    if (req->resp_type)
        h[n++] = (struct ag_http_header){AG_STR("Content-Type"), ag_str_from_cstr(req->resp_type)};
    h[n++] = (struct ag_http_header){AG_STR("X-Request-Id"), ag_str_from_cstr(req->request_id)};
    int rc = ag_http_response_start(job->ex, req->status, h, n, (int64_t)req->resp_len);
    if (rc == AG_EINVAL) {
        /* a bad status or field from a handler: never send it */
        ag_log_error("handler answer refused", AG_F_STR("request_id", req->request_id),
                     AG_F_INT("status", req->status));
        ag_http_respond_problem(job->ex, 500, "the handler's answer could not be sent");
        job_account(job, 500, false);
        return;
    }
    if (rc == 0 && req->resp_len)
        rc = ag_http_response_write(job->ex, req->resp_body, req->resp_len);
    if (rc == 0)
        ag_http_response_end(job->ex);
    job_account(job, req->status, false);
}

/* Runs on the loop: takes every finished job of io and writes or drops it. */
static void io_deliver(void *arg)
{
    struct kit_io *io = arg;
    pthread_mutex_lock(&io->lock);
    struct kit_job *list = io->done;
    io->done = NULL;
    io->post_pending = false;
    pthread_mutex_unlock(&io->lock);
    /* newest first: reverse, so answers go out in the order they were made */
    struct kit_job *ordered = NULL;
    while (list) {
        struct kit_job *next = list->done_next;
        list->done_next = ordered;
        ordered = list;
        list = next;
    }
    while (ordered) {
        struct kit_job *job = ordered;
        ordered = job->done_next;
        job->in_pool = false;
        if (job->closed) {
            if (!job->req.rerun) /* a re-run was never a client's request */
                job_account(job, job->req.status ? job->req.status : 499, true);
            job_free(job);
        } else {
            job_respond(job);
        }
    }
}

/* ---- jobs on a handler thread ---- */

/*
 * The event context of the request's connection: events its handler emits carry the request's
 * tenant and its W3C traceparent (a new trace when the client sent none, or a malformed one).
 */
static void job_event_context(struct kit_req *req)
{
    char fresh[KIT_BUS_TRACEPARENT_LEN + 1];
    const char *trace = kit_req_header(req, "traceparent");
    if (!kit_traceparent_valid(trace)) {
        kit_traceparent_new(fresh);
        trace = fresh;
    }
    if (kit_db_event_context(req->db, kit_req_tenant(req), trace) < 0)
        ag_log_warn("the event context could not be set", AG_F_STR("request_id", req->request_id));
}

static void job_run(struct kit_pool_job *pj, void *thread_data)
{
    struct kit_job *job = AG_CONTAINER_OF(pj, struct kit_job, pool_job);
    struct kit_worker *w = thread_data;
    struct kit_req *req = &job->req;
    struct kit_io *io = job->io;
    if (!atomic_load(&job->abandoned)) {
        req->db = w->db;
        const struct kit_route *route = req->route;
        if (kit_identity_check(req, &route->access, io->app->keyring, w->cache) == 0) {
            if (w->db)
                job_event_context(req);
            int rc = route->handler(req);
            if (req->status == 0) {
                ag_log_error("handler failed without answering",
                             AG_F_STR("request_id", req->request_id),
                             AG_F_STR("route", route->path), AG_F_STR("code", ag_err_name(rc)));
                if (rc == AG_EUNAVAIL)
                    kit_resp_problem(req, 503, "a backend is unavailable; try again later");
                else
                    kit_resp_problem(req, 500, "the request could not be handled");
            } else if (rc < 0 && rc != AG_EINVAL) {
                ag_log_warn("handler failed after answering",
                            AG_F_STR("request_id", req->request_id), AG_F_STR("route", route->path),
                            AG_F_STR("code", ag_err_name(rc)));
            }
        }
        /*
         * A handler that returns inside a transaction is a bug: its writes are not committed,
         * so an answer that says they were would lie, and the open transaction would hold the
         * connection (and SQLite's write lock) for the next request. Roll back and say 500.
         */
        if (w->db && kit_db_in_transaction(w->db)) {
            kit_db_rollback(w->db);
            ag_log_error("handler left a transaction open: rolled back",
                         AG_F_STR("request_id", req->request_id),
                         AG_F_STR("route", req->route->path));
            if (req->status < 400) {
                kit_req_unanswer(req);
                kit_resp_problem(req, 500, "the request could not be handled");
            }
        }
        req->db = NULL;
    }
    if (req->rerun) {
        ag_log_debug("re-run done", AG_F_STR("route", req->route->path),
                     AG_F_SLICE("path", req->path), AG_F_INT("status", req->status));
        atomic_store(&io->app->rerun_busy, false);
    }
    pthread_mutex_lock(&io->lock);
    job->done_next = io->done;
    io->done = job;
    if (!io->post_pending && ag_loop_post(io->loop, io_deliver, io) == 0)
        io->post_pending = true;
    if (--io->in_pool == 0)
        pthread_cond_broadcast(&io->idle);
    pthread_mutex_unlock(&io->lock);
}

static int worker_start(unsigned index, void *ctx, void **data, struct ag_err *err)
{
    (void)index;
    struct kit_app *app = ctx;
    struct kit_worker *w = calloc(1, sizeof *w);
    if (!w)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    int rc = kit_app_db_open(app, &w->db, err);
    if (rc == 0)
        rc = ag_jwt_cache_new(0, 0, &w->cache, err);
    if (rc < 0) {
        kit_db_close(w->db);
        free(w);
        return rc;
    }
    *data = w;
    return 0;
}

static void worker_stop(unsigned index, void *ctx, void *data)
{
    (void)index;
    (void)ctx;
    struct kit_worker *w = data;
    ag_jwt_cache_free(w->cache);
    kit_db_close(w->db);
    free(w);
}

static void on_queued(size_t queued, void *ctx)
{
    struct kit_app *app = ctx;
    ag_gauge_set(app->jobs_queued, (double)queued);
}

/* ---- the HTTP front ---- */

/* Answers on the loop at once (refusals before any handler runs). */
static void job_answer_now(struct kit_job *job)
{
    job_respond(job);
}

/*
 * Hands job to the pool, counted in its loop's in_pool until io_deliver takes it back. Returns
 * 0, or kit_pool_submit's code (AG_ERANGE: the queue is full) with the job still the caller's.
 */
static int job_pool_submit(struct kit_job *job)
{
    struct kit_io *io = job->io;
    pthread_mutex_lock(&io->lock);
    io->in_pool++;
    pthread_mutex_unlock(&io->lock);
    job->in_pool = true;
    int rc = kit_pool_submit(io->app->pool, &job->pool_job);
    if (rc == 0)
        return 0;
    pthread_mutex_lock(&io->lock);
    if (--io->in_pool == 0)
        pthread_cond_broadcast(&io->idle);
    pthread_mutex_unlock(&io->lock);
    job->in_pool = false;
    return rc;
}

static void job_submit(struct kit_job *job)
{
    int rc = job_pool_submit(job);
    if (rc == 0)
        return;
    struct ag_http_header retry = {AG_STR("Retry-After"), AG_STR("1")};
    kit_resp_problem_ext(&job->req, 503, NULL, &retry, 1,
                         rc == AG_ERANGE ? "the service is overloaded; try again shortly"
                                         : "the service is stopping");
    job_answer_now(job);
}

/* A job for a request on io's loop, holding copies of its parts; NULL when out of memory. */
static struct kit_job *job_new(struct kit_io *io, struct ag_str method, struct ag_str path,
                               struct ag_str query, const struct ag_http_header *headers,
                               size_t header_count, size_t max_body)
{
    struct kit_job *job = calloc(1, sizeof *job);
    if (!job || kit_req_init(&job->req, method, path, query, headers, header_count, max_body) < 0) {
        free(job);
        return NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &job->started);
    job->io = io;
    job->route_label = "unmatched";
    job->pool_job.run = job_run;
    job->req.app = io->app;
    job->req.default_tenant = io->app->settings.default_tenant;
    job->req.job = job;
    return job;
}

/* A copy of src's request for kit_req_rerun_later, or NULL (AG_ENOMEM, or no route). */
static struct kit_job *job_copy(const struct kit_job *src, int *rc)
{
    const struct kit_req *from = &src->req;
    struct kit_match m;
    struct kit_job *job = job_new(src->io, ag_str_from_cstr(from->method), from->path, from->query,
                                  from->headers, from->header_count, 0);
    *rc = AG_ENOMEM;
    if (!job)
        return NULL;
    if (kit_router_match(src->io->app->router, ag_str_from_cstr(from->method), job->req.path, &m) !=
            200 ||
        kit_req_set_match(&job->req, &m) < 0) {
        job_free(job);
        *rc = AG_EINVAL;
        return NULL;
    }
    job->closed = true; /* nobody waits: io_deliver frees it */
    job->route_label = m.route->path;
    job->req.rerun = true;
    memcpy(job->req.peer, from->peer, sizeof job->req.peer);
    *rc = 0;
    return job;
}

int kit_req_rerun_later(struct kit_req *req)
{
    struct kit_job *src = req->job;
    if (!src || req->rerun || req->body.len > 0)
        return AG_EINVAL;
    struct kit_app *app = src->io->app;
    if (atomic_exchange(&app->rerun_busy, true))
        return AG_EAGAIN;
    int rc;
    struct kit_job *job = job_copy(src, &rc); /* its io is alive: src is on its loop or pool */
    if (job && job_pool_submit(job) == 0)
        return 0;
    if (job) {
        job_free(job);
        rc = AG_EAGAIN; /* the queue is full, or the service is stopping */
    }
    atomic_store(&app->rerun_busy, false);
    return rc;
}

bool kit_req_is_rerun(const struct kit_req *req)
{
    return req->rerun;
}

static void on_request(struct ag_http_exchange *ex)
{
    struct kit_io *io = ag_http_exchange_worker(ex);
    struct kit_app *app = io->app;
    const struct ag_http_request *hr = ag_http_exchange_request(ex);
    struct kit_job *job = job_new(io, hr->method, hr->path, hr->query, hr->headers,
                                  hr->header_count, app->settings.max_body);
    if (!job) {
        ag_http_respond_problem(ex, 503, "out of memory");
        return;
    }
    job->ex = ex;
    if (ag_http_exchange_peer(ex, job->req.peer, sizeof job->req.peer) < 0)
        job->req.peer[0] = '\0';
    ag_http_exchange_set_data(ex, job);

    const char *why = NULL;
    if (kit_path_check(hr->path, &why) < 0) {
        kit_resp_problem(&job->req, 400, "%s", why);
        job_answer_now(job);
        return;
    }
    struct kit_match m;
    int status = kit_router_match(app->router, hr->method, hr->path, &m);
    if (status == 404) {
        kit_resp_problem(&job->req, 404, "no route matches this path");
        job_answer_now(job);
        return;
    }
    if (status == 405) {
        struct ag_http_header allow = {AG_STR("Allow"), ag_str_from_cstr(m.allow)};
        kit_resp_problem_ext(&job->req, 405, NULL, &allow, 1,
                             "this path does not accept this method");
        job_answer_now(job);
        return;
    }
    job->route_label = m.route->path;
    if (kit_req_set_match(&job->req, &m) < 0) {
        kit_resp_problem(&job->req, 400, "a path parameter does not decode");
        job_answer_now(job);
        return;
    }
    if (hr->body == AG_HTTP_BODY_LENGTH && hr->content_length > app->settings.max_body) {
        kit_resp_problem(&job->req, 413, "the body is over %llu bytes",
                         (unsigned long long)app->settings.max_body);
        job_answer_now(job);
        return;
    }
    if (hr->body != AG_HTTP_BODY_NONE)
        return; /* on_body submits it when the body is complete */
    if (m.route->quick && !kit_req_header(&job->req, "Authorization")) {
        m.route->quick(&job->req);
        if (job->req.status != 0) {
            job_answer_now(job);
            return;
        }
    }
    job_submit(job);
}

static void on_body(struct ag_http_exchange *ex, struct ag_str data, bool last)
{
    struct kit_job *job = ag_http_exchange_data(ex);
    if (!job || job->req.status != 0 || job->in_pool)
        return; /* already answered (a refusal): the rest is read and dropped */
    int rc = kit_req_body_append(&job->req, data.p, data.len);
    if (rc < 0) {
        if (rc == AG_ERANGE)
            kit_resp_problem(&job->req, 413, "the body is over %llu bytes",
                             (unsigned long long)job->io->app->settings.max_body);
        else
            kit_resp_problem(&job->req, 503, "out of memory");
        job_answer_now(job);
        return;
    }
    if (last)
        job_submit(job);
}

static void on_close(struct ag_http_exchange *ex, bool completed)
{
    (void)completed;
    struct kit_job *job = ag_http_exchange_data(ex);
    if (!job)
        return;
    ag_http_exchange_set_data(ex, NULL);
    if (job->in_pool) {
        job->closed = true; /* io_deliver frees it */
        atomic_store(&job->abandoned, true);
        return;
    }
    job_free(job);
}

static const struct ag_http_handler kit_handler = {
    .on_request = on_request,
    .on_body = on_body,
    .on_close = on_close,
};

static int io_start(struct ag_loop *loop, unsigned index, void *ctx, void **data)
{
    (void)index;
    struct kit_io *io = calloc(1, sizeof *io);
    if (!io)
        return AG_ENOMEM;
    io->app = ctx;
    io->loop = loop;
    pthread_mutex_init(&io->lock, NULL);
    pthread_cond_init(&io->idle, NULL);
    *data = io;
    return 0;
}

/*
 * The loop has stopped and every connection is closed (their jobs are marked closed). Waits
 * for the jobs still on handler threads, then frees every finished job: the posts that would
 * have delivered them are dropped with the loop.
 */
static void io_stop(struct ag_loop *loop, unsigned index, void *ctx, void *data)
{
    (void)loop;
    (void)index;
    (void)ctx;
    struct kit_io *io = data;
    pthread_mutex_lock(&io->lock);
    while (io->in_pool > 0)
        pthread_cond_wait(&io->idle, &io->lock);
    struct kit_job *list = io->done;
    io->done = NULL;
    pthread_mutex_unlock(&io->lock);
    while (list) {
        struct kit_job *next = list->done_next;
        job_free(list);
        list = next;
    }
    pthread_cond_destroy(&io->idle);
    pthread_mutex_destroy(&io->lock);
    free(io);
}

/* ---- kit_main ---- */

static int metrics_register(struct kit_app *app, struct ag_err *err)
{
    struct ag_metrics *reg = ag_metrics_default();
    static const char *const labels[] = {"route", "method", "status"};
    int rc = ag_metrics_counter(reg, "kit_requests_total", "Requests answered, by route template",
                                labels, 3, KIT_METRIC_SERIES, &app->requests_total, err);
    if (rc == 0)
        rc = ag_metrics_histogram(reg, "kit_request_duration_seconds",
                                  "Time from the request head to the answer", labels, 1,
                                  KIT_METRIC_SERIES, NULL, 0, &app->request_duration, err);
    struct ag_metric *queued = NULL;
    if (rc == 0)
        rc = ag_metrics_gauge(reg, "kit_jobs_queued", "Requests waiting for a handler thread", NULL,
                              0, 0, &queued, err);
    if (rc == 0)
        rc = ag_metric_series(queued, NULL, &app->jobs_queued);
    return rc;
}

static int build_router(struct kit_app *app, struct ag_err *err)
{
    int rc = kit_router_new(&app->router);
    if (rc < 0)
        return ag_err_set(err, rc, "out of memory");
    for (size_t i = 0; i < sizeof builtin_routes / sizeof builtin_routes[0] && rc == 0; i++)
        rc = kit_router_add(app->router, &builtin_routes[i], err);
    for (size_t i = 0; i < app->svc->route_count && rc == 0; i++)
        rc = kit_router_add(app->router, &app->svc->routes[i], err);
    return rc;
}

/* Parses argv; returns -1 to go on, else an exit status. */
static int parse_args(const struct kit_service *svc, int argc, char **argv, const char **config,
                      bool *check)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            kit_settings_help(stdout, svc);
            fflush(stdout);
            return 0;
        } else if (strcmp(a, "--check") == 0) {
            *check = true;
        } else if (strcmp(a, "--config") == 0 && i + 1 < argc) {
            *config = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0 && a[9]) {
            *config = a + 9;
        } else {
            fprintf(stderr, "agora-%s: unknown or incomplete argument %s (try --help)\n", svc->name,
                    a);
            return 2;
        }
    }
    return -1;
}

int kit_main(const struct kit_service *svc, int argc, char **argv)
{
    int status = 1;
    struct ag_err err = {0};
    struct kit_app app;
    memset(&app, 0, sizeof app);
    app.svc = svc;
    struct kit_issuers issuers = {0};
    struct ag_http_server *server = NULL;
    bool on_start_ran = false;

    const char *config = NULL;
    bool check = false;
    int rc = parse_args(svc, argc, argv, &config, &check);
    if (rc >= 0)
        return rc;
    /* before any thread exists, so that only the server's signalfd ever sees these */
    static const int blocked[] = {SIGTERM, SIGINT, SIGPIPE};
    if (ag_signals_block(blocked, 3, &err) < 0) {
        fprintf(stderr, "agora-%s: %s\n", svc->name, err.msg);
        return 1;
    }
    if (kit_settings_load(&app.settings, svc, config, &err) < 0) {
        fprintf(stderr, "agora-%s: %s\n", svc->name, err.msg);
        return 2;
    }
    status = 2;
    if (build_router(&app, &err) < 0 ||
        kit_issuers_parse(app.settings.issuers, &issuers, &err) < 0 ||
        kit_identity_keyring(&issuers, app.settings.audience, app.settings.algorithms, &app.keyring,
                             &err) < 0) {
        fprintf(stderr, "agora-%s: %s\n", svc->name, err.msg);
        goto out;
    }
    if (check) {
        printf("agora-%s: configuration is valid\n", svc->name);
        fflush(stdout);
        status = 0;
        goto out;
    }
    status = 1;
    ag_log_setup(svc->name, app.settings.log_level, 1);
    if (metrics_register(&app, &err) < 0) {
        ag_log_error("metrics could not be registered", AG_F_STR("error", err.msg));
        goto out;
    }
    if (kit_db_open(app.settings.db, &app.main_db, &err) < 0) {
        ag_log_error("database could not be opened", AG_F_STR("error", err.msg));
        goto out;
    }
    rc = kit_db_migrate(app.main_db, svc->migrations, svc->migration_count, &err);
    if (rc < 0) {
        ag_log_error("migrations failed", AG_F_STR("error", err.msg));
        goto out;
    }
    ag_log_info("migrations applied", AG_F_INT("applied", rc),
                AG_F_UINT("known", svc->migration_count));
    struct kit_bus_settings bus_settings = {
        .url = app.settings.bus,
        .batch = (unsigned)app.settings.bus_batch,
        .poll_ms = (unsigned)app.settings.bus_poll_ms,
        .retry_ms = (unsigned)app.settings.bus_retry_ms,
        .max_attempts = (unsigned)app.settings.bus_max_attempts,
        .outbox_keep_ms = app.settings.bus_outbox_keep_s * 1000,
    };
    if (kit_bus_new(&bus_settings, svc->name, app.settings.db, app.main_db, svc->subscriptions,
                    svc->subscription_count, &app, &app.bus, &err) < 0 ||
        kit_db_event_context(app.main_db, app.settings.default_tenant, NULL) < 0) {
        ag_log_error("the event bus could not be set up", AG_F_STR("error", err.msg));
        goto out;
    }
    if (svc->on_start) {
        on_start_ran = true;
        if (svc->on_start(&app, &err) < 0) {
            on_start_ran = false;
            ag_log_error("service start failed", AG_F_STR("error", err.msg));
            goto out;
        }
    }
    /* after on_start: handlers may need the service's data; before the port opens */
    if (kit_bus_run(app.bus, &err) < 0) {
        ag_log_error("the event bus could not start", AG_F_STR("error", err.msg));
        goto out;
    }
    if (!app.keyring) {
        ag_log_warn("no token issuers configured (AGORA_ISSUERS): every protected route "
                    "answers 401");
    } else if (ag_keyring_start(app.keyring, KIT_KEYRING_WAIT_MS, &err) < 0) {
        ag_log_error("keyring could not start", AG_F_STR("error", err.msg));
        goto out;
    }
    struct kit_pool_config pc = {
        .threads = (unsigned)app.settings.workers,
        .max_queued = KIT_QUEUE_MAX,
        .thread_start = worker_start,
        .thread_stop = worker_stop,
        .ctx = &app,
        .on_queued = on_queued,
    };
    if (kit_pool_new(&pc, &app.pool, &err) < 0) {
        ag_log_error("handler threads could not start", AG_F_STR("error", err.msg));
        goto out;
    }
    struct ag_http_server_config sc;
    ag_http_server_config_defaults(&sc);
    sc.listen = app.settings.listen;
    sc.workers = (unsigned)app.settings.io_threads;
    sc.limits.max_body = app.settings.max_body;
    sc.handler = &kit_handler;
    sc.ctx = &app;
    sc.on_worker_start = io_start;
    sc.on_worker_stop = io_stop;
    if (ag_http_server_new(&sc, &server, &err) < 0) {
        ag_log_error("could not listen", AG_F_STR("listen", app.settings.listen),
                     AG_F_STR("error", err.msg));
        goto out;
    }
    ag_log_info("listening", AG_F_UINT("port", ag_http_server_port(server)),
                AG_F_STR("listen", app.settings.listen), AG_F_UINT("workers", app.settings.workers),
                AG_F_UINT("io_threads", app.settings.io_threads),
                AG_F_STR("db", kit_db_url_redacted(app.main_db)),
                AG_F_UINT("subscriptions", svc->subscription_count),
                AG_F_UINT("issuers", issuers.count),
                AG_F_STR("env", kit_app_is_dev(&app) ? "development" : "production"));
    if (ag_http_server_run(server, &err) < 0) {
        ag_log_error("server failed", AG_F_STR("error", err.msg));
        goto out;
    }
    status = 0;
out:
    /* every loop has stopped and waited for its jobs: the pool's queue is empty */
    kit_pool_free(app.pool);
    if (on_start_ran && svc->on_stop)
        svc->on_stop(&app);
    /* after on_stop, so that events it emitted may still go out with the relay's last round */
    kit_bus_stop(app.bus);
    ag_http_server_free(server);
    ag_keyring_free(app.keyring);
    kit_router_free(app.router);
    kit_db_close(app.main_db);
    kit_issuers_release(&issuers);
    kit_settings_release(&app.settings);
    if (status == 0)
        ag_log_info("stopped");
    return status;
}
