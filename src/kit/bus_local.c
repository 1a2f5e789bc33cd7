/* The local bus driver: an append-only SQLite log shared by the processes of one machine. */

/*
 * The log (local:PATH) is one table, events(seq, id, type, source, time_ms, envelope), in a WAL
 * database with synchronous=FULL (kit_db's SQLite settings): a publish is one BEGIN IMMEDIATE
 * transaction, so a batch is durable when it returns, and ON CONFLICT(id) DO NOTHING keeps a
 * relay that publishes a batch again (after a lost answer) from appending it twice.
 *
 * A subscriber reads rows after its position in seq order and filters them by pattern in C. Its
 * position lives in the service's own database (bus_positions, keyed by the log file's real
 * path) and is written by record() inside the kit's transaction, the one that also holds the
 * handler's writes and the inbox rows: the position and the effects commit together, so local
 * delivery is exactly-once even without the inbox.
 *
 * Positions: `recorded` is what the service's database holds (after settle), `read` is where the
 * next fetch starts, `scan_end` is the seq of the last row the last fetch read, matching or not,
 * so that a record of the fetch's final delivery also steps over the rows that matched nothing.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kit/bus_driver.h"
#include "kit/bus_internal.h"
#include "kit/bus_schema.h"
#include "kit/db.h"
#include "kit/kit.h"
#include "core/log.h"
#include "core/banned.h"

enum {
    LOCAL_IDLE_FIRST_MS = 2, /* first sleep when nothing is new */
    LOCAL_IDLE_MAX_MS = 50,  /* ... growing to this */
    LOCAL_PATH_MAX = 4096,
};

static const char events_sql[] =
    "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, source TEXT NOT NULL, "
    "time_ms BIGINT NOT NULL, envelope TEXT NOT NULL)";

struct kit_bus_pub {
    struct kit_db *log;
};

struct kit_bus_sub {
    struct kit_db *log;
    struct kit_db *db; /* the service's connection (positions), or NULL: ephemeral */
    char *key;         /* the log's real path: bus_positions.log */
    char **patterns;
    size_t pattern_count;
    unsigned max_batch;
    int64_t recorded, read, scan_end, pending;
    uint64_t final_tag;       /* the tag of the last fetch's final delivery */
    struct kit_db_rows *rows; /* the last fetch's rows: the deliveries point into them */
};

/* The PATH of "local:PATH", or NULL with err set. */
static const char *local_path(const char *url, struct ag_err *err)
{
    if (!url || strncmp(url, "local:", 6) != 0) {
        ag_err_set(err, AG_EINVAL, "a local bus URL is local:PATH");
        return NULL;
    }
    const char *path = url + 6;
    if (!*path || strlen(path) > LOCAL_PATH_MAX) {
        ag_err_set(err, AG_EINVAL, "the local bus URL names no file (local:PATH)");
        return NULL;
    }
    return path;
}

static int local_url_check(const char *url, struct ag_err *err)
{
    return local_path(url, err) ? 0 : AG_EINVAL;
}

/* Opens the log file and makes sure its table exists. */
static int log_open(const char *url, struct kit_db **out, struct ag_err *err)
{
    const char *path = local_path(url, err);
    if (!path)
        return AG_EINVAL;
    size_t n = strlen(path) + 8;
    char *db_url = malloc(n);
    if (!db_url)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    snprintf(db_url, n, "sqlite:%s", path);
    int rc = kit_db_open(db_url, out, err);
    free(db_url);
    if (rc < 0)
        return rc == AG_EINVAL ? rc : AG_EUNAVAIL;
    rc = kit_db_exec(*out, events_sql, NULL, 0, err);
    if (rc < 0) {
        kit_db_close(*out);
        *out = NULL;
        return rc == AG_ENOMEM ? rc : AG_EUNAVAIL;
    }
    return 0;
}

/* ---- publishing ---- */

static int local_pub_open(const char *url, struct kit_bus_pub **out, struct ag_err *err)
{
    struct kit_bus_pub *pub = calloc(1, sizeof *pub);
    if (!pub)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    int rc = log_open(url, &pub->log, err);
    if (rc < 0) {
        free(pub);
        return rc;
    }
    *out = pub;
    return 0;
}

/* The source and time of an envelope, for the log's columns ("" and 0 when it has none). */
static void envelope_meta(const struct kit_bus_out *e, char *source, size_t size, int64_t *time_ms)
{
    source[0] = '\0';
    *time_ms = 0;
    json_t *root = json_loadb(e->envelope, e->len, 0, NULL);
    const char *s = json_string_value(json_object_get(root, "source"));
    if (s)
        snprintf(source, size, "%s", s);
    const char *t = json_string_value(json_object_get(root, "time"));
    if (t)
        kit_bus_time_parse(t, time_ms);
    json_decref(root);
}

static int local_publish(struct kit_bus_pub *pub, const struct kit_bus_out *events, size_t n,
                         struct ag_err *err)
{
    int rc = kit_db_begin(pub->log, err);
    for (size_t i = 0; rc >= 0 && i < n; i++) {
        char source[257];
        int64_t time_ms;
        envelope_meta(&events[i], source, sizeof source, &time_ms);
        rc = kit_db_exec(pub->log,
                         "INSERT INTO events (id, type, source, time_ms, envelope) "
                         "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                         KIT_DB_PARAMS(KIT_DB_TEXT(events[i].id), KIT_DB_TEXT(events[i].type),
                                       KIT_DB_TEXT(source), KIT_DB_INT(time_ms),
                                       KIT_DB_TEXTN(events[i].envelope, events[i].len)),
                         err);
    }
    if (rc >= 0)
        rc = kit_db_commit(pub->log, err);
    if (rc < 0) {
        kit_db_rollback(pub->log);
        /* a full disk or a lock held past the busy timeout: the relay tries again later */
        return rc == AG_ENOMEM || rc == AG_EINVAL ? rc : AG_EUNAVAIL;
    }
    return 0;
}

static void local_pub_close(struct kit_bus_pub *pub)
{
    if (!pub)
        return;
    kit_db_close(pub->log);
    free(pub);
}

/* ---- subscribing ---- */

static void sub_free(struct kit_bus_sub *sub)
{
    if (!sub)
        return;
    kit_db_rows_free(sub->rows);
    kit_db_close(sub->log);
    for (size_t i = 0; i < sub->pattern_count; i++)
        free(sub->patterns[i]);
    free(sub->patterns);
    free(sub->key);
    free(sub);
}

static int local_sub_open(const char *url, const struct kit_bus_sub_config *cfg, struct kit_db *db,
                          struct kit_bus_sub **out, struct ag_err *err)
{
    int rc = 0;
    struct kit_bus_sub *sub = calloc(1, sizeof *sub);
    if (!sub)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    if (!cfg || (cfg->pattern_count > 0 && !cfg->patterns)) {
        rc = ag_err_set(err, AG_EINVAL, "a subscriber needs its patterns");
        goto out;
    }
    sub->db = db;
    sub->max_batch = cfg->prefetch ? cfg->prefetch : 1;
    if (!(sub->patterns = calloc(cfg->pattern_count ? cfg->pattern_count : 1, sizeof(char *)))) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    for (; sub->pattern_count < cfg->pattern_count; sub->pattern_count++)
        if (!(sub->patterns[sub->pattern_count] = strdup(cfg->patterns[sub->pattern_count]))) {
            rc = ag_err_set(err, AG_ENOMEM, "out of memory");
            goto out;
        }
    if ((rc = log_open(url, &sub->log, err)) < 0)
        goto out;
    /* the file exists now: its real path names it whatever relative spelling was used */
    char real[PATH_MAX];
    const char *path = url + 6;
    if (strcmp(path, ":memory:") != 0 && realpath(path, real))
        path = real;
    if (!(sub->key = strdup(path))) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    int64_t start = 0;
    if (db) {
        if ((rc = kit_bus_schema_positions(db, err)) < 0)
            goto out;
        rc = kit_db_query_int(db, "SELECT seq FROM bus_positions WHERE log = $1",
                              KIT_DB_PARAMS(KIT_DB_TEXT(sub->key)), &start, err);
        int64_t end = 0;
        if (rc == 0 && start > 0)
            rc = kit_db_query_int(sub->log, "SELECT COALESCE(MAX(seq), 0) FROM events", NULL, 0,
                                  &end, err);
        if (rc == 0 && start > end) {
            /* A log that ends before our position was replaced (deleted and made again): its
             * seqs start over, so read it from the start; the inbox drops what was handled. */
            ag_log_warn("bus log is behind this service's position: reading it from the start",
                        AG_F_STR("log", sub->key), AG_F_INT("position", start),
                        AG_F_INT("log_end", end));
            start = 0;
        }
    } else if (!cfg->from_start) {
        rc = kit_db_query_int(sub->log, "SELECT COALESCE(MAX(seq), 0) FROM events", NULL, 0, &start,
                              err);
    }
    if (rc < 0) {
        rc = rc == AG_ENOMEM ? rc : AG_EUNAVAIL;
        goto out;
    }
    sub->recorded = sub->read = sub->scan_end = sub->pending = start;
    *out = sub;
    sub = NULL;
out:
    sub_free(sub);
    return rc < 0 ? rc : 0;
}

static bool matches(const struct kit_bus_sub *sub, const char *type)
{
    for (size_t i = 0; i < sub->pattern_count; i++)
        if (kit_topic_match(sub->patterns[i], type))
            return true;
    return false;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int local_fetch(struct kit_bus_sub *sub, struct kit_bus_delivery *out, size_t max,
                       int timeout_ms, struct ag_err *err)
{
    if (max == 0)
        return 0;
    if (max > sub->max_batch)
        max = sub->max_batch;
    int64_t deadline = kit_monotonic_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int64_t idle = LOCAL_IDLE_FIRST_MS;
    kit_db_rows_free(sub->rows);
    sub->rows = NULL;
    for (;;) {
        /*
         * LIMIT max rows, matching or not: the deliveries then never exceed max, and the scan
         * end is exact. Rows that match nothing only move the read position.
         */
        int rc = kit_db_query(sub->log,
                              "SELECT seq, type, envelope FROM events WHERE seq > $1 "
                              "ORDER BY seq LIMIT $2",
                              KIT_DB_PARAMS(KIT_DB_INT(sub->read), KIT_DB_INT(max)), max,
                              &sub->rows, err);
        if (rc < 0) {
            kit_db_rows_free(sub->rows);
            sub->rows = NULL;
            return rc == AG_ENOMEM ? rc : AG_EUNAVAIL;
        }
        size_t count = (size_t)rc, got = 0;
        for (size_t r = 0; r < count; r++) {
            if (!matches(sub, kit_db_rows_text(sub->rows, r, 1, NULL)))
                continue;
            size_t len = 0;
            const char *env = kit_db_rows_text(sub->rows, r, 2, &len);
            out[got++] = (struct kit_bus_delivery){
                .envelope = env, .len = len, .tag = (uint64_t)kit_db_rows_int(sub->rows, r, 0)};
        }
        if (count > 0)
            sub->read = sub->scan_end = kit_db_rows_int(sub->rows, count - 1, 0);
        if (got > 0) {
            sub->final_tag = out[got - 1].tag;
            return (int)got;
        }
        kit_db_rows_free(sub->rows);
        sub->rows = NULL;
        int64_t left = deadline - kit_monotonic_ms();
        if (left <= 0)
            return 0;
        if (count > 0)
            continue; /* only rows for others: read on at once */
        sleep_ms(idle < left ? idle : left);
        idle = idle * 2 > LOCAL_IDLE_MAX_MS ? LOCAL_IDLE_MAX_MS : idle * 2;
    }
}

static int local_record(struct kit_bus_sub *sub, struct kit_db *tx,
                        const struct kit_bus_delivery *last, struct ag_err *err)
{
    if (!last)
        return ag_err_set(err, AG_EINVAL, "record needs the last delivery");
    /* the final delivery of the fetch also covers the non-matching rows read after it */
    int64_t pos = (int64_t)last->tag;
    if (sub->rows && last->tag == sub->final_tag)
        pos = sub->scan_end;
    if (!sub->db) {
        sub->pending = pos;
        return 0;
    }
    if (!tx)
        return ag_err_set(err, AG_EINVAL, "record needs the service's transaction");
    int rc = kit_db_exec(tx,
                         "INSERT INTO bus_positions (log, seq) VALUES ($1, $2) "
                         "ON CONFLICT (log) DO UPDATE SET seq = excluded.seq",
                         KIT_DB_PARAMS(KIT_DB_TEXT(sub->key), KIT_DB_INT(pos)), err);
    if (rc < 0)
        return rc;
    sub->pending = pos;
    return 0;
}

static int local_settle(struct kit_bus_sub *sub, const struct kit_bus_delivery *d, size_t n,
                        struct ag_err *err)
{
    (void)d;
    (void)n;
    (void)err;
    sub->recorded = sub->pending;
    return 0;
}

static void local_rewind(struct kit_bus_sub *sub)
{
    sub->pending = sub->recorded;
    sub->read = sub->scan_end = sub->recorded;
    /* the rows stay until the next fetch: the caller may still read its deliveries */
}

static void local_sub_close(struct kit_bus_sub *sub)
{
    sub_free(sub);
}

const struct kit_bus_driver kit_bus_local = {
    .scheme = "local",
    .url_check = local_url_check,
    .pub_open = local_pub_open,
    .publish = local_publish,
    .pub_close = local_pub_close,
    .sub_open = local_sub_open,
    .fetch = local_fetch,
    .record = local_record,
    .settle = local_settle,
    .rewind = local_rewind,
    .sub_close = local_sub_close,
};
