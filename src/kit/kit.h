/* libagora-kit: a service as a table (routes, migrations, hooks) and the helpers its handlers use.
 */
#ifndef KIT_H
#define KIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/jwt.h"

struct kit_app;          /* the running service: configuration, database pool, service data */
struct kit_req;          /* one request, handled on a kit worker thread */
struct kit_db;           /* one database connection (kit/db.h) */
struct kit_subscription; /* an event pattern and its handler (kit/bus.h) */

/* ---- the service table ---- */

/* Who may call a route. The kit answers 401 (no or bad token) and 403 (no listed role). */
enum kit_access_kind {
    KIT_ACCESS_PUBLIC,        /* anyone; a valid token is still read (identity may be set) */
    KIT_ACCESS_AUTHENTICATED, /* any valid token */
    KIT_ACCESS_ROLES,         /* a valid token holding one of the listed roles */
};
struct kit_access {
    enum kit_access_kind kind;
    const char *roles; /* KIT_ACCESS_ROLES: "admin" or "admin,support" (any one suffices) */
};
#define KIT_PUBLIC                                                                                 \
    {                                                                                              \
        KIT_ACCESS_PUBLIC, NULL                                                                    \
    }
#define KIT_AUTHENTICATED                                                                          \
    {                                                                                              \
        KIT_ACCESS_AUTHENTICATED, NULL                                                             \
    }
#define KIT_ROLE(list)                                                                             \
    {                                                                                              \
        KIT_ACCESS_ROLES, (list)                                                                   \
    }

/*
 * A handler runs on a kit worker thread and may block on its database connection
 * (kit_req_db). It answers with one kit_resp_* call. Returns 0; a negative AG_E* code when it
 * failed: if it answered before failing (the kit_req_* checks answer 400/404/422 themselves
 * and then return AG_EINVAL), that answer stands; otherwise the kit answers 500 (503 for
 * AG_EUNAVAIL) and logs the code. A handler that returns 0 without answering gets a 500 too.
 */
typedef int (*kit_handler_fn)(struct kit_req *req);

/*
 * method: "GET", "POST", "PUT", "PATCH", "DELETE" (HEAD is served by GET routes).
 * path: a template, "/api/v1/auth/users/{id}"; a {name} matches one non-empty segment.
 * Literal segments win over parameters at the same depth, so "/users/me" and "/users/{id}"
 * can coexist. A path that matches no route is 404; a path that matches with another method
 * is 405 with Allow.
 */
struct kit_route {
    const char *method;
    const char *path;
    kit_handler_fn handler;
    struct kit_access access;
    /*
     * Optional: an answer from memory, tried on the I/O thread before the request is handed to
     * a worker thread (the hand-off and its wake-ups are most of the cost of a small read). The
     * kit calls it only for a request with no body and no Authorization field (anonymous, so
     * the identity is the default tenant's with no roles and nothing to verify), with no
     * database (kit_req_db is NULL). It must not block: no database, no I/O, no long lock. It
     * answers (any kit_resp_*), or leaves the request unanswered and the handler runs as usual.
     */
    kit_handler_fn quick;
};

/* One SQL migration, embedded at build time (see agora_service() in CMakeLists.txt). */
struct kit_migration {
    uint32_t version;     /* from the file name: 001_users.sql → 1; strictly increasing */
    const char *name;     /* "001_users" */
    const char *sql;      /* for every driver, unless the driver's own text below is set */
    const char *sqlite;   /* 001_users.sqlite.sql, or NULL */
    const char *postgres; /* 001_users.postgres.sql, or NULL */
};

/*
 * Defined by the build for each service executable: its migrations/ folder, embedded
 * (agora_service() in CMakeLists.txt; cmake/embed_migrations.cmake), in version order.
 */
extern const struct kit_migration kit_embedded_migrations[];
extern const size_t kit_embedded_migration_count;

/* A service-specific environment variable, listed by --help. */
struct kit_setting {
    const char *env;           /* "AGORA_AUTH_TOKEN_TTL" */
    const char *default_value; /* shown by --help; NULL: none */
    const char *help;
};

struct kit_service {
    const char *name;    /* "auth": log "service", metric labels, default database file */
    const char *summary; /* one line for --help */
    const struct kit_route *routes;
    size_t route_count;
    const struct kit_migration *migrations;
    size_t migration_count;
    const struct kit_setting *settings;
    size_t setting_count;
    /*
     * Optional. Runs once after the migrations, before the port opens, on the main thread, with
     * a database connection of its own (kit_app_db). Sets service data with kit_app_set_data.
     * A negative return stops the start (err says why; the process exits 1).
     */
    int (*on_start)(struct kit_app *app, struct ag_err *err);
    /* Optional. Runs after the last request ended, before the connections close. */
    void (*on_stop)(struct kit_app *app);
    /*
     * Optional. Called after a commit that emitted events (kit_event_emit), on the thread that
     * committed, on every connection the kit made (workers, the consumer, kit_app_db_open):
     * a cache of the service's own data can drop what the commit changed. Must be cheap.
     */
    void (*on_events_committed)(struct kit_app *app);
    /*
     * Optional: the events this service consumes (kit/bus.h). With any, the kit runs a
     * consumer thread that delivers each matching event once, in a transaction, to its handler.
     */
    const struct kit_subscription *subscriptions;
    size_t subscription_count;
};

/*
 * Runs a service: parses argv (--help, --config FILE, --check) and the environment, opens the
 * database, applies pending migrations, runs on_start, serves until SIGTERM/SIGINT, drains.
 * Returns the process exit status: 0 after a clean stop, 1 when it could not start, 2 for a
 * usage or configuration error. Call it from main(): `return kit_main(&service, argc, argv);`
 */
int kit_main(const struct kit_service *svc, int argc, char **argv);

/* ---- the running service ---- */

const struct kit_service *kit_app_service(const struct kit_app *app);
/* The main thread's own connection: valid in on_start and on_stop only. */
struct kit_db *kit_app_db(struct kit_app *app);
void kit_app_set_data(struct kit_app *app, void *data);
void *kit_app_data(const struct kit_app *app);
/*
 * A new connection to the service's database for a thread of the service's own (a sweeper):
 * its events carry the service's source, and its commits wake the relay and call
 * on_events_committed, like the kit's connections. Close it with kit_db_close.
 */
int kit_app_db_open(struct kit_app *app, struct kit_db **out, struct ag_err *err);
/* The configured database URL ("sqlite:var/data/auth.db", "postgres://..."). */
const char *kit_app_db_url(const struct kit_app *app);
/*
 * The value of a service setting: the environment variable, else the YAML file's
 * settings.<ENV> key, else the setting's default (NULL when none). The string lives as long as
 * the app.
 */
const char *kit_app_setting(const struct kit_app *app, const char *env);
/* True when AGORA_ENV is "development" (the default; "production" turns dev conveniences off). */
bool kit_app_is_dev(const struct kit_app *app);

/* ---- requests ---- */

struct kit_app *kit_req_app(struct kit_req *req);
/* The worker's database connection; the handler may block on it. */
struct kit_db *kit_req_db(struct kit_req *req);
/* "GET", "POST"... (HEAD reads "GET"). */
const char *kit_req_method(const struct kit_req *req);
/* The path without the query, as received. */
struct ag_str kit_req_path(const struct kit_req *req);
/* The request id: X-Request-Id as the gateway sent it when well formed, else one made here. */
const char *kit_req_id(const struct kit_req *req);

/* A path parameter by name, percent-decoded and NUL-terminated; NULL when the route has none. */
const char *kit_req_param(const struct kit_req *req, const char *name);
/*
 * The path parameter name as an id (kit_id_valid). Returns 0 and *out; otherwise answers 404
 * ("no such <name>", since an id that cannot exist names nothing) and returns AG_EINVAL.
 */
int kit_req_param_id(struct kit_req *req, const char *name, const char **out);

/* The query string as received (after '?', not decoded; empty when none). */
struct ag_str kit_req_query_string(const struct kit_req *req);
/* A query parameter by name, percent-decoded ('+' is a space); NULL when absent. The first
 * occurrence wins; a parameter given twice is answered 400 by the typed getters below. */
const char *kit_req_query(const struct kit_req *req, const char *name);
/*
 * A query parameter as an integer in [min, max]; def when absent. On a malformed or
 * out-of-range value answers 400 with errors[] naming the parameter and returns AG_EINVAL.
 */
int kit_req_query_int(struct kit_req *req, const char *name, int64_t def, int64_t min, int64_t max,
                      int64_t *out);
/*
 * A query parameter that may appear at most once: 0 and *out (NULL when absent); given twice,
 * or once with a malformed %-escape, answers 400 with errors[] naming it and returns AG_EINVAL
 * (*out NULL).
 */
int kit_req_query_once(struct kit_req *req, const char *name, const char **out);
/* Answers 400 with errors[] = [{"field": name, "message": message}]; returns AG_EINVAL. */
int kit_resp_query_invalid(struct kit_req *req, const char *name, const char *message);
/* A query parameter that must be one of values (NULL-terminated); def when absent. As above. */
int kit_req_query_enum(struct kit_req *req, const char *name, const char *const *values,
                       const char *def, const char **out);

/* Pagination from ?page= (≥ 1, default 1) and ?per_page= (1..100, default 20). */
struct kit_page {
    int64_t page, per_page, offset;
};
int kit_req_page(struct kit_req *req, struct kit_page *out);

/* A request header field's value (the first), NUL-terminated; NULL when absent. */
const char *kit_req_header(const struct kit_req *req, const char *name);

/*
 * The body as a JSON object. Answers 415 when Content-Type is not application/json (charset
 * parameters allowed), 400 for invalid JSON (with the line and column), duplicate keys or a
 * top level that is not an object, and returns AG_EINVAL. The body size limit
 * (AGORA_MAX_BODY) is enforced before the handler runs (413). *out is borrowed: valid until
 * the request ends.
 */
int kit_req_json(struct kit_req *req, json_t **out);
/* The raw body (may be empty). */
struct ag_str kit_req_body(const struct kit_req *req);

/*
 * A closed object's expected members, for kit_req_fields. type is a jansson type
 * (JSON_STRING, JSON_INTEGER, JSON_TRUE for any boolean, JSON_ARRAY, JSON_OBJECT).
 * For strings: min_len/max_len count characters (UTF-8 code points; 0/0: no bound);
 * for integers: min/max (both 0: no bound).
 */
struct kit_field {
    const char *name;
    json_type type;
    bool required;
    size_t min_len, max_len;
    int64_t min, max;
};
/*
 * Checks obj against fields: every required member present, each member's type and bounds,
 * no member outside the list (a closed schema), strings valid UTF-8 without control
 * characters. Each violation becomes an errors[] entry (kit_req_invalid). Returns the number of
 * violations (0: valid). Answers nothing: the handler adds its own checks, then calls
 * kit_resp_invalid when kit_req_invalid_count is not 0.
 */
size_t kit_req_fields(struct kit_req *req, const json_t *obj, const struct kit_field *fields,
                      size_t count);
/* Adds {"field": field, "message": message} to the request's validation errors (copied). */
void kit_req_invalid(struct kit_req *req, const char *field, const char *message);
size_t kit_req_invalid_count(const struct kit_req *req);

/*
 * For a handler whose database call failed with rc: rolls back an open transaction on the
 * request's connection, logs err's message with the request id, and returns rc, so the kit
 * answers 500 (503 for AG_EUNAVAIL). `return kit_req_db_fail(req, rc, &err);`
 */
int kit_req_db_fail(struct kit_req *req, int rc, const struct ag_err *err);

/* ---- identity (verified by the kit against the configured issuers, see docs/kit.md) ---- */

/* The verified token's claims, or NULL for an anonymous request on a public route. */
const struct ag_jwt_claims *kit_req_claims(const struct kit_req *req);
/* The subject ("sub"), or NULL when anonymous. */
const char *kit_req_subject(const struct kit_req *req);
/* The token's tenant, else AGORA_DEFAULT_TENANT ("default"). Never NULL. */
const char *kit_req_tenant(const struct kit_req *req);
bool kit_req_has_role(const struct kit_req *req, const char *role);
/* The raw bearer token, or an empty slice. */
struct ag_str kit_req_token(const struct kit_req *req);
/* The client address: the peer's IP (the gateway's when proxied). */
const char *kit_req_peer(const struct kit_req *req);

/* ---- re-runs ---- */

/*
 * Runs req's route again later on a handler thread, as a copy of this request (method, path,
 * query, headers; no body) whose answer goes nowhere; kit_req_is_rerun tells its handler. For a
 * read answered from a cache entry that is due for a refresh: the reader has its answer at once
 * and the refresh makes nobody wait. Callable from a quick answer (the I/O thread) or a handler.
 * At most one re-run is under way per process, so refreshes never hold more than one handler
 * thread and one database connection. Returns 0; AG_EAGAIN when one is under way or the handler
 * queue is full (try again on a later read); AG_EINVAL for a request with a body, a re-run, or a
 * request the kit did not make; AG_ENOMEM.
 */
int kit_req_rerun_later(struct kit_req *req);
bool kit_req_is_rerun(const struct kit_req *req);

/* ---- responses (one per request; a second is refused with AG_ECLOSED) ---- */

/* Adds a response header field (copied) before the answer; AG_EINVAL for a bad name or value. */
int kit_resp_header(struct kit_req *req, const char *name, const char *value);
/* status with body as application/json. Takes body's reference (NULL: answers 500). */
int kit_resp_json(struct kit_req *req, int status, json_t *body);
/* 201 with Location (location is a path, "/api/v1/auth/users/ID") and body. Takes body. */
int kit_resp_created(struct kit_req *req, const char *location, json_t *body);
/* An empty answer: 202, 204... */
int kit_resp_status(struct kit_req *req, int status);
/* Raw bytes with a content type (copied). */
int kit_resp_raw(struct kit_req *req, int status, const char *content_type, const void *data,
                 size_t len);
/*
 * RFC 9457 problem+json: {"type","title","status","detail"} with detail from a printf format
 * (JSON-escaped). type is "about:blank" and title the status's reason phrase.
 */
int kit_resp_problem(struct kit_req *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 422 problem+json whose errors[] holds every kit_req_invalid entry. */
int kit_resp_invalid(struct kit_req *req);
/* 200 {"items": items, "page", "per_page", "total"}. Takes items. */
int kit_resp_page(struct kit_req *req, json_t *items, const struct kit_page *page, int64_t total);

/* ---- small helpers ---- */

enum { KIT_ID_LEN = 36 };
/* A new UUIDv7 (time-ordered, 74 random bits), lowercase, NUL-terminated. Thread-safe. */
void kit_id_new(char out[KIT_ID_LEN + 1]);
/* True when s is a lowercase or uppercase canonical UUID (8-4-4-4-12 hex). */
bool kit_id_valid(const char *s);
/* The time now as RFC 3339 UTC with milliseconds, "2026-11-21T10:00:00.123Z". */
void kit_now_rfc3339(char out[32]);
/* Milliseconds since the epoch. */
int64_t kit_now_ms(void);
/* Milliseconds on a clock that never jumps (CLOCK_MONOTONIC): for timeouts and intervals. */
int64_t kit_monotonic_ms(void);
/* Formats ms since the epoch as RFC 3339 UTC with milliseconds. */
void kit_time_rfc3339(int64_t ms, char out[32]);
/*
 * The number of code points in s[0..len) when it is text a person may type on one line:
 * well-formed UTF-8 without a control character (C0 U+0000..U+001F, DEL, C1 U+0080..U+009F) and
 * without the line and paragraph separators U+2028/U+2029 (they end lines in JavaScript and in
 * logs). SIZE_MAX otherwise. s need not be NUL-terminated.
 */
size_t kit_text_chars(const char *s, size_t len);

#endif
