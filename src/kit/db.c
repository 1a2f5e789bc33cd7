/* The database port: URL parsing, dispatch to the SQLite and PostgreSQL drivers, metrics. */

/*
 * Portable SQL: one statement text serves both drivers when it keeps to these conventions.
 *
 *  - Parameters are $1, $2... (SQLite binds "$N" by name, so $2 may come before $1 and a
 *    number may repeat). Every $N up to the count given must be used: PostgreSQL cannot infer
 *    the type of a parameter the text never names, so the SQLite driver refuses it too.
 *    Values are never spliced into the text.
 *  - Ids are TEXT (UUIDs made by the application), not serial/autoincrement columns.
 *  - Times are BIGINT milliseconds since the epoch, or TEXT in RFC 3339 (UTC, "Z").
 *  - Flags are SMALLINT/INTEGER 0/1, not BOOLEAN: an integer parameter binds to them on both
 *    drivers. (A PostgreSQL BOOLEAN column still reads back 1/0 through kit_db_rows_int.)
 *  - RETURNING and INSERT ... ON CONFLICT work on both (SQLite >= 3.35; Debian 12 has 3.40).
 *  - Text parameters may not hold NUL bytes (PostgreSQL cannot store them).
 *  - One statement per kit_db_exec/kit_db_query call; kit_db_exec_script (migrations) runs
 *    several, without parameters. Migration text must not BEGIN or COMMIT itself.
 *  - kit_db_commit always ends the transaction: when COMMIT fails, it is rolled back (on SQLite
 *    too, where a failed COMMIT would otherwise leave it open), so both drivers behave alike.
 */
#include "kit/db.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/metrics.h"
#include "kit/bus.h"
#include "kit/db_postgres.h"
#include "kit/db_sqlite.h"

#include "core/banned.h"

enum {
    DEFAULT_MAX_ROWS = 100000, /* kit_db_query's max_rows when 0 is given */
    URL_MAX = 4096,            /* longest database URL accepted */
};

struct kit_db {
    enum kit_db_driver driver;
    struct kit_db_sqlite *sqlite; /* KIT_DB_SQLITE */
    struct kit_db_pg *pg;         /* KIT_DB_POSTGRES */
    char *redacted;               /* the URL with its password replaced by "***" */

    /* The event context (kit/bus.h): what kit_event_emit puts into envelopes. */
    char *event_tenant;                 /* NULL: "default" */
    char *event_traceparent;            /* NULL: none */
    char *event_source;                 /* "agora/<service>"; NULL: "agora" */
    bool event_pending;                 /* an event was emitted in the open transaction */
    void (*on_event_commit)(void *ctx); /* wakes the relay after such a commit */
    void *on_event_commit_ctx;
};

/* kit_db_query_seconds{driver,kind}: looked up once, observed on every call. */
enum metric_kind { KIND_EXEC, KIND_QUERY, KIND_BEGIN, KIND_COMMIT, KIND_ROLLBACK, KIND_COUNT };
static const char *const kind_names[KIND_COUNT] = {"exec", "query", "begin", "commit", "rollback"};
static const char *const driver_names[2] = {"sqlite", "postgres"};
static struct ag_series *query_seconds[2][KIND_COUNT];
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void metrics_register(void)
{
    static const char *const labels[] = {"driver", "kind"};
    /* Queries are mostly sub-millisecond: finer buckets than the default latency ones. */
    static const double bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5};
    struct ag_metric *m = NULL;
    if (ag_metrics_histogram(ag_metrics_default(), "kit_db_query_seconds",
                             "Time spent in database calls, by driver and kind of call.", labels, 2,
                             0, bounds, sizeof bounds / sizeof bounds[0], &m, NULL) < 0)
        return; /* a name clash leaves the handles NULL: observing them is a no-op */
    for (size_t d = 0; d < 2; d++)
        for (size_t k = 0; k < KIND_COUNT; k++)
            ag_metric_series(m, (const char *const[]){driver_names[d], kind_names[k]},
                             &query_seconds[d][k]);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void observe(const struct kit_db *db, enum metric_kind kind, double started)
{
    ag_histogram_observe(query_seconds[db->driver == KIT_DB_POSTGRES][kind],
                         now_seconds() - started);
}

/* Where the password of a postgres:// URL is: [*start, *start + *len); false when none. */
static bool url_password(const char *url, size_t *start, size_t *len)
{
    const char *auth = strstr(url, "://");
    if (!auth)
        return false;
    auth += 3;
    size_t auth_len = strcspn(auth, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < auth_len; i++)
        if (auth[i] == '@')
            at = auth + i; /* the last '@' ends the user information */
    if (!at)
        return false;
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    if (!colon)
        return false;
    *start = (size_t)(colon + 1 - url);
    *len = (size_t)(at - colon - 1);
    return true;
}

/* Where the value of a "password=" query parameter is; false when none. */
static bool url_query_password(const char *url, size_t *start, size_t *len)
{
    const char *q = strchr(url, '?');
    while (q) {
        q++;
        if (strncmp(q, "password=", 9) == 0) {
            *start = (size_t)(q + 9 - url);
            *len = strcspn(q + 9, "&#");
            return true;
        }
        q = strchr(q, '&');
    }
    return false;
}

/* A copy of url with [start, start+len) replaced by "***"; NULL on ENOMEM. */
static char *replace_span(const char *url, size_t start, size_t len)
{
    size_t total = strlen(url) - len + 3;
    char *out = malloc(total + 1);
    if (!out)
        return NULL;
    memcpy(out, url, start);
    memcpy(out + start, "***", 3);
    memcpy(out + start + 3, url + start + len, total - start - 3 + 1);
    return out;
}

/* The redacted form of url (both password places). NULL on ENOMEM. */
static char *redact_url(const char *url)
{
    size_t start, len;
    char *out = NULL, *next;
    size_t n = strlen(url);
    if (!(out = malloc(n + 1)))
        return NULL;
    memcpy(out, url, n + 1);
    if (url_password(out, &start, &len) && len > 0) {
        next = replace_span(out, start, len);
        free(out);
        if (!(out = next))
            return NULL;
    }
    if (url_query_password(out, &start, &len) && len > 0) {
        next = replace_span(out, start, len);
        free(out);
        out = next;
    }
    return out;
}

/*
 * Checks the ports of a postgres:// URL's hosts ("h1:5432,[::1]:5433"), which libpq would only
 * refuse when connecting, as if the server were down. Returns 0 or AG_EINVAL with err set.
 */
static int check_ports(const char *url, struct ag_err *err)
{
    const char *auth = strstr(url, "://") + 3;
    size_t auth_len = strcspn(auth, "/?#");
    const char *hosts = auth;
    for (size_t i = 0; i < auth_len; i++)
        if (auth[i] == '@')
            hosts = auth + i + 1;
    const char *end = auth + auth_len;
    while (hosts < end) {
        const char *comma = memchr(hosts, ',', (size_t)(end - hosts));
        const char *stop = comma ? comma : end;
        const char *port = NULL;
        if (*hosts == '[') {
            const char *close = memchr(hosts, ']', (size_t)(stop - hosts));
            if (close && close + 1 < stop && close[1] == ':')
                port = close + 2;
        } else {
            for (const char *p = stop; p > hosts; p--)
                if (p[-1] == ':') {
                    port = p;
                    break;
                }
        }
        if (port) {
            uint64_t n = 0;
            struct ag_str digits = {port, (size_t)(stop - port)};
            if (ag_str_to_u64(digits, 65535, &n) < 0 || n == 0)
                return ag_err_set(err, AG_EINVAL,
                                  "the database URL has an invalid port \"%.*s\" (1-65535)",
                                  (int)(digits.len > 16 ? 16 : digits.len), digits.p);
        }
        hosts = comma ? comma + 1 : end;
    }
    return 0;
}

/* The password in url (userinfo, else query), copied into buf; "" when none. */
static void url_secret(const char *url, char *buf, size_t size)
{
    size_t start, len;
    buf[0] = '\0';
    if ((url_password(url, &start, &len) || url_query_password(url, &start, &len)) && len > 0 &&
        len < size) {
        memcpy(buf, url + start, len);
        buf[len] = '\0';
    }
}

int kit_db_open(const char *url, struct kit_db **out, struct ag_err *err)
{
    int rc = 0;
    struct kit_db *db = NULL;
    char secret[512];
    secret[0] = '\0';
    if (!out)
        return ag_err_set(err, AG_EINVAL, "kit_db_open: out is NULL");
    *out = NULL;
    if (!url || !*url)
        return ag_err_set(err, AG_EINVAL, "the database URL is empty");
    if (strlen(url) > URL_MAX)
        return ag_err_set(err, AG_EINVAL, "the database URL is longer than %d bytes", URL_MAX);
    pthread_once(&metrics_once, metrics_register);
    if (!(db = calloc(1, sizeof *db)))
        return ag_err_set(err, AG_ENOMEM, "out of memory opening the database");
    if (!(db->redacted = redact_url(url))) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory opening the database");
        goto out;
    }
    if (strncmp(url, "sqlite:", 7) == 0) {
        db->driver = KIT_DB_SQLITE;
        const char *path = url + 7;
        if (!*path) {
            rc = ag_err_set(err, AG_EINVAL,
                            "the database URL \"sqlite:\" names no file (sqlite:PATH or "
                            "sqlite::memory:)");
            goto out;
        }
        rc = kit_db_sqlite_open(path, &db->sqlite, err);
    } else if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0) {
        db->driver = KIT_DB_POSTGRES;
        url_secret(url, secret, sizeof secret);
        if ((rc = check_ports(url, err)) < 0)
            goto out;
        rc = kit_db_pg_open(url, secret[0] ? secret : NULL, &db->pg, err);
    } else {
        const char *colon = strchr(url, ':');
        int scheme_len = colon && colon - url < 32 ? (int)(colon - url) : 0;
        rc = ag_err_set(err, AG_EINVAL,
                        "unknown database URL scheme \"%.*s\" (sqlite:PATH, sqlite::memory: or "
                        "postgres://...)",
                        scheme_len, url);
    }
    if (rc < 0)
        goto out;
    *out = db;
    db = NULL;
out:
    kit_db_close(db);
    return rc;
}

void kit_db_close(struct kit_db *db)
{
    if (!db)
        return;
    kit_db_sqlite_close(db->sqlite);
    kit_db_pg_close(db->pg);
    free(db->redacted);
    free(db->event_tenant);
    free(db->event_traceparent);
    free(db->event_source);
    free(db);
}

enum kit_db_driver kit_db_driver(const struct kit_db *db)
{
    return db->driver;
}

const char *kit_db_url_redacted(const struct kit_db *db)
{
    return db && db->redacted ? db->redacted : "";
}

/* Checks the arguments every statement call shares. */
static int check_call(const struct kit_db *db, const char *sql, const struct kit_db_value *params,
                      size_t count, struct ag_err *err)
{
    if (!db || !sql)
        return ag_err_set(err, AG_EINVAL, "no database connection or no SQL text");
    if (count > 0 && !params)
        return ag_err_set(err, AG_EINVAL, "%zu parameters announced but none given", count);
    if (count > 65535)
        return ag_err_set(err, AG_EINVAL, "%zu parameters: at most 65535", count);
    return 0;
}

int kit_db_exec(struct kit_db *db, const char *sql, const struct kit_db_value *params, size_t count,
                struct ag_err *err)
{
    int rc = check_call(db, sql, params, count, err);
    if (rc < 0)
        return rc;
    double started = now_seconds();
    if (db->driver == KIT_DB_SQLITE)
        rc = kit_db_sqlite_run(db->sqlite, sql, params, count, 0, NULL, err);
    else
        rc = kit_db_pg_run(db->pg, sql, params, count, 0, NULL, err);
    observe(db, KIND_EXEC, started);
    return rc;
}

int kit_db_query(struct kit_db *db, const char *sql, const struct kit_db_value *params,
                 size_t count, size_t max_rows, struct kit_db_rows **out, struct ag_err *err)
{
    int rc;
    if (!out)
        return ag_err_set(err, AG_EINVAL, "kit_db_query: out is NULL");
    *out = NULL;
    if ((rc = check_call(db, sql, params, count, err)) < 0)
        return rc;
    if (max_rows == 0)
        max_rows = DEFAULT_MAX_ROWS;
    double started = now_seconds();
    if (db->driver == KIT_DB_SQLITE)
        rc = kit_db_sqlite_run(db->sqlite, sql, params, count, max_rows, out, err);
    else
        rc = kit_db_pg_run(db->pg, sql, params, count, max_rows, out, err);
    observe(db, KIND_QUERY, started);
    return rc;
}

int kit_db_exec_script(struct kit_db *db, const char *sql, struct ag_err *err)
{
    int rc = check_call(db, sql, NULL, 0, err);
    if (rc < 0)
        return rc;
    double started = now_seconds();
    if (db->driver == KIT_DB_SQLITE)
        rc = kit_db_sqlite_script(db->sqlite, sql, err);
    else
        rc = kit_db_pg_script(db->pg, sql, err);
    observe(db, KIND_EXEC, started);
    return rc;
}

bool kit_db_in_transaction(const struct kit_db *db)
{
    if (!db)
        return false;
    return db->driver == KIT_DB_SQLITE ? kit_db_sqlite_in_transaction(db->sqlite)
                                       : kit_db_pg_in_transaction(db->pg);
}

bool kit_db_tx_failed(const struct kit_db *db)
{
    return db && db->driver == KIT_DB_POSTGRES && kit_db_pg_tx_failed(db->pg);
}

int kit_db_begin(struct kit_db *db, struct ag_err *err)
{
    int rc;
    if (!db)
        return ag_err_set(err, AG_EINVAL, "no database connection");
    if (kit_db_in_transaction(db))
        return ag_err_set(err, AG_EINVAL, "a transaction is already open (no nesting)");
    db->event_pending = false;
    double started = now_seconds();
    if (db->driver == KIT_DB_SQLITE)
        rc = kit_db_sqlite_run(db->sqlite, "BEGIN IMMEDIATE", NULL, 0, 0, NULL, err);
    else
        rc = kit_db_pg_begin(db->pg, err);
    observe(db, KIND_BEGIN, started);
    return rc < 0 ? rc : 0;
}

int kit_db_commit(struct kit_db *db, struct ag_err *err)
{
    int rc;
    if (!db)
        return ag_err_set(err, AG_EINVAL, "no database connection");
    if (!kit_db_in_transaction(db))
        return ag_err_set(err, AG_EINVAL, "no transaction is open");
    double started = now_seconds();
    if (db->driver == KIT_DB_SQLITE) {
        rc = kit_db_sqlite_run(db->sqlite, "COMMIT", NULL, 0, 0, NULL, err);
        if (rc < 0 && kit_db_sqlite_in_transaction(db->sqlite))
            kit_db_sqlite_run(db->sqlite, "ROLLBACK", NULL, 0, 0, NULL, NULL);
    } else {
        rc = kit_db_pg_commit(db->pg, err);
    }
    observe(db, KIND_COMMIT, started);
    /* The outbox got rows that are now visible: tell the relay instead of letting it poll. */
    if (rc >= 0 && db->event_pending && db->on_event_commit)
        db->on_event_commit(db->on_event_commit_ctx);
    db->event_pending = false;
    return rc < 0 ? rc : 0;
}

int kit_db_rollback(struct kit_db *db)
{
    int rc = 0;
    if (!db || !kit_db_in_transaction(db))
        return 0;
    db->event_pending = false;
    double started = now_seconds();
    if (db->driver == KIT_DB_SQLITE)
        rc = kit_db_sqlite_run(db->sqlite, "ROLLBACK", NULL, 0, 0, NULL, NULL);
    else
        rc = kit_db_pg_rollback(db->pg);
    observe(db, KIND_ROLLBACK, started);
    return rc < 0 ? rc : 0;
}

bool kit_db_ping(struct kit_db *db)
{
    struct kit_db_rows *rows = NULL;
    if (!db)
        return false;
    int rc = kit_db_query(db, "SELECT 1", NULL, 0, 1, &rows, NULL);
    kit_db_rows_free(rows);
    rows = NULL;
    if (rc == AG_EUNAVAIL && !kit_db_in_transaction(db)) {
        /* A connection found dead is reconnected by the next call: that is this one. */
        rc = kit_db_query(db, "SELECT 1", NULL, 0, 1, &rows, NULL);
        kit_db_rows_free(rows);
    }
    return rc == 1;
}

/* ---- the event context (kit/bus.h) ---- */

/* Replaces *slot with a copy of value ("" clears it). Returns 0 or AG_ENOMEM (*slot kept). */
static int replace_text(char **slot, const char *value)
{
    char *copy = NULL;
    if (*value && !(copy = strdup(value)))
        return AG_ENOMEM;
    free(*slot);
    *slot = copy;
    return 0;
}

int kit_db_event_context(struct kit_db *db, const char *tenant, const char *traceparent)
{
    if (!db || (tenant && !*tenant))
        return AG_EINVAL;
    int rc = 0;
    if (tenant)
        rc = replace_text(&db->event_tenant, tenant);
    if (rc == 0 && traceparent)
        rc = replace_text(&db->event_traceparent, traceparent);
    return rc;
}

int kit_db_event_source(struct kit_db *db, const char *source)
{
    if (!db || !source || !*source)
        return AG_EINVAL;
    return replace_text(&db->event_source, source);
}

void kit_db_event_context_get(const struct kit_db *db, struct kit_db_event_ctx *out)
{
    out->tenant = db->event_tenant ? db->event_tenant : "default";
    out->traceparent = db->event_traceparent ? db->event_traceparent : "";
    out->source = db->event_source ? db->event_source : "agora";
}

void kit_db_event_mark(struct kit_db *db)
{
    db->event_pending = true;
}

void kit_db_on_event_commit(struct kit_db *db, void (*fn)(void *ctx), void *ctx)
{
    db->on_event_commit = fn;
    db->on_event_commit_ctx = ctx;
}
