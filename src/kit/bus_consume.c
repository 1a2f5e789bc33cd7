/* The consumer: one thread per subscribing service that delivers events to handlers, once each. */

/*
 * Per fetch (≤ batch events, bus order):
 *   one transaction; per event a SAVEPOINT: the inbox row first (INSERT ... ON CONFLICT DO
 *   NOTHING: no row inserted means a duplicate, skipped), then the handler; success releases
 *   the savepoint, failure rolls back to it and ends the batch there. The driver records the
 *   last event done inside the same transaction (local: its position), the transaction
 *   commits, and the events done are settled (amqp: acknowledged).
 * The failed event is then retried alone, each attempt in its own transaction, after a delay
 * (AGORA_BUS_RETRY_MS doubling, at most 30 s), until AGORA_BUS_MAX_ATTEMPTS attempts; then it
 * is parked in dead_events, and its id put in the inbox so that a redelivery is skipped, in one
 * transaction with the driver's record, and settled as dead (amqp: to the dead-letter queue).
 * Attempts are counted in memory: a crash starts them again (docs/events.md).
 *
 * A malformed envelope is parked at once. A handler whose statement failed on PostgreSQL
 * leaves the transaction aborted; ROLLBACK TO SAVEPOINT (which the database port accepts there)
 * clears that. Only when the savepoint cannot be rolled back to (the handler ended the
 * transaction, or the connection broke) is the whole transaction rolled back, and the events
 * before the failed one run again in a new one (their first effects were rolled back with it).
 *
 * Dead events with replay_requested = 1 are delivered again from their stored envelope, with
 * fresh attempts; success deletes the row, failure parks it again.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "kit/bus_internal.h"
#include "kit/db.h"
#include "kit/kit.h"
#include "core/banned.h"

enum {
    REPLAY_BATCH = 16,     /* dead events replayed per check */
    REPLAY_CHECK_MS = 250, /* how often dead_events is looked at for replays */
    STOPPED = 1,           /* an internal outcome: a stop was requested while waiting */
};

struct kit_bus_consumer {
    const struct kit_bus_driver *drv;
    struct kit_bus_settings settings;
    char *url, *group;
    const struct kit_subscription *subs;
    size_t sub_count;
    const char **patterns;
    struct kit_app *app;
    struct kit_db *db;
    struct kit_bus_sub *sub;
    struct kit_bus_stop *stop;
    pthread_t thread;
    atomic_bool connected;
    unsigned backoff_ms;
    int64_t last_replay_ms;
    struct kit_bus_delivery *deliveries; /* settings.batch slots */
    int64_t *times;                      /* the events' times, for the latency histogram */
    unsigned char *outcome;              /* per delivery of a batch */
};

enum outcome { O_NONE, O_DONE, O_DUPLICATE };

/* A copy of s[0..len) as valid UTF-8 without NUL bytes (both refused by PostgreSQL), at most
 * max bytes of input; NULL on ENOMEM. */
static char *clean_text(const char *s, size_t len, size_t max)
{
    struct ag_buf b;
    ag_buf_init(&b, max * 3 + 1);
    if (len > max)
        len = max;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < len;) {
        size_t n = ag_utf8_sequence_len((const unsigned char *)s + i, len - i);
        if (n == 0 || s[i] == '\0') {
            rc = ag_buf_append(&b, "\xEF\xBF\xBD", 3);
            i++;
        } else {
            rc = ag_buf_append(&b, s + i, n);
            i += n;
        }
    }
    if (rc == 0)
        rc = ag_buf_append(&b, "", 1);
    if (rc < 0) {
        ag_buf_release(&b);
        return NULL;
    }
    return b.data;
}

/* ---- one event ---- */

static const struct kit_subscription *subscription_for(const struct kit_bus_consumer *c,
                                                       const char *type)
{
    for (size_t i = 0; i < c->sub_count; i++)
        if (kit_topic_match(c->subs[i].pattern, type))
            return &c->subs[i];
    return NULL;
}

/*
 * Runs the handler of ev on c->db (in a transaction). inbox: insert the inbox row first and
 * report a duplicate. Returns O_DONE, O_DUPLICATE, or a negative code (herr says why).
 */
static int handle_event(struct kit_bus_consumer *c, struct kit_event *ev, bool inbox,
                        struct ag_err *herr)
{
    int rc;
    if (inbox) {
        rc = kit_db_exec(c->db,
                         "INSERT INTO inbox (event_id, type, source, received_at) "
                         "VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING",
                         KIT_DB_PARAMS(KIT_DB_TEXT(ev->id), KIT_DB_TEXT(ev->type),
                                       KIT_DB_TEXT(ev->source), KIT_DB_INT(kit_now_ms())),
                         herr);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return O_DUPLICATE;
    }
    const struct kit_subscription *s = subscription_for(c, ev->type);
    if (!s)
        return O_DONE; /* a broker binding wider than the patterns: nothing to do */
    if ((rc = kit_db_event_context(c->db, ev->tenant, ev->traceparent)) < 0)
        return ag_err_set(herr, rc, "out of memory setting the event context");
    herr->msg[0] = '\0';
    rc = s->handler(c->app, c->db, ev, herr);
    if (!kit_db_in_transaction(c->db))
        return ag_err_set(herr, AG_EINVAL, "the handler ended the kit's transaction");
    if (rc >= 0 && kit_db_tx_failed(c->db)) /* PostgreSQL would refuse the rest of the batch */
        return ag_err_set(herr, AG_EINVAL,
                          "the handler returned success after a failed SQL statement");
    if (rc < 0) {
        if (!herr->msg[0])
            ag_err_set(herr, rc, "the handler failed with %s", ag_err_name(rc));
        return rc;
    }
    return O_DONE;
}

/* After a commit: counts the batch's outcomes and observes the delivery latencies. */
static void account(struct kit_bus_consumer *c, size_t from, size_t to)
{
    const struct kit_bus_metrics *m = kit_bus_metrics();
    int64_t now = kit_now_ms();
    for (size_t i = from; i < to; i++) {
        if (c->outcome[i] == O_DUPLICATE) {
            ag_counter_inc(m->duplicates);
        } else if (c->outcome[i] == O_DONE) {
            ag_counter_inc(m->delivered);
            ag_histogram_observe(m->delivery_seconds, (double)(now - c->times[i]) / 1000.0);
        }
    }
}

/* ---- dead events ---- */

/*
 * Parks a delivery as dead in an open transaction: the dead_events row (from what can be read
 * of the envelope, sanitised so that any bytes can be stored) and the inbox row.
 */
static int park_dead(struct kit_bus_consumer *c, const struct kit_bus_delivery *d,
                     unsigned attempts, const char *error, bool malformed, struct ag_err *err)
{
    int rc = AG_ENOMEM;
    json_t *root = json_loadb(d->envelope, d->len, 0, NULL);
    const char *id = json_string_value(json_object_get(root, "id"));
    char made_id[KIT_ID_LEN + 1];
    /* A malformed envelope's id is not trusted: under it, a later genuine event with that id
     * would be skipped (inbox) or overwrite this row. It gets an id of its own, no inbox row. */
    if (malformed || !id || !*id || strlen(id) > 128) {
        kit_id_new(made_id); /* an envelope without a usable id still needs a row */
        id = made_id;
    }
    const char *fields[4] = {"type", "subject", "source", "tenant"};
    char *vals[4] = {NULL, NULL, NULL, NULL};
    char *clean_env = clean_text(d->envelope, d->len, KIT_EVENT_MAX_BYTES);
    char *clean_err = clean_text(error, strlen(error), KIT_BUS_ERROR_MAX);
    char *clean_id = clean_text(id, strlen(id), 128);
    for (size_t i = 0; i < 4; i++) {
        const char *v = json_string_value(json_object_get(root, fields[i]));
        if (!v)
            v = i == 3 ? "default" : "";
        vals[i] = clean_text(v, strlen(v), 256);
    }
    if (!clean_env || !clean_err || !clean_id || !vals[0] || !vals[1] || !vals[2] || !vals[3]) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory parking a dead event");
        goto out;
    }
    rc = kit_db_exec(c->db,
                     "INSERT INTO dead_events (event_id, type, subject, source, tenant, envelope, "
                     "attempts, error, failed_at, replay_requested) "
                     "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0) ON CONFLICT (event_id) DO "
                     "UPDATE SET attempts = excluded.attempts, error = excluded.error, "
                     "failed_at = excluded.failed_at, replay_requested = 0",
                     KIT_DB_PARAMS(KIT_DB_TEXT(clean_id), KIT_DB_TEXT(vals[0]),
                                   KIT_DB_TEXT(vals[1]), KIT_DB_TEXT(vals[2]), KIT_DB_TEXT(vals[3]),
                                   KIT_DB_TEXT(clean_env), KIT_DB_INT(attempts),
                                   KIT_DB_TEXT(clean_err), KIT_DB_INT(kit_now_ms())),
                     err);
    if (rc >= 0 && !malformed)
        rc = kit_db_exec(c->db,
                         "INSERT INTO inbox (event_id, type, source, received_at) "
                         "VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING",
                         KIT_DB_PARAMS(KIT_DB_TEXT(clean_id), KIT_DB_TEXT(vals[0]),
                                       KIT_DB_TEXT(vals[2]), KIT_DB_INT(kit_now_ms())),
                         err);
    if (rc >= 0) {
        ag_log_error("event parked as dead", AG_F_STR("event_id", clean_id),
                     AG_F_STR("type", vals[0]), AG_F_UINT("attempts", attempts),
                     AG_F_STR("error", clean_err));
        rc = 0;
    }
out:
    for (size_t i = 0; i < 4; i++)
        free(vals[i]);
    free(clean_env);
    free(clean_err);
    free(clean_id);
    json_decref(root);
    return rc;
}

/* The wait before attempt (≥ 2): retry_ms doubling, at most KIT_BUS_RETRY_MAX_MS. */
static unsigned retry_delay(const struct kit_bus_consumer *c, unsigned attempt)
{
    uint64_t ms = c->settings.retry_ms ? c->settings.retry_ms : 1;
    for (unsigned a = 2; a < attempt && ms < KIT_BUS_RETRY_MAX_MS; a++)
        ms *= 2;
    return ms > KIT_BUS_RETRY_MAX_MS ? KIT_BUS_RETRY_MAX_MS : (unsigned)ms;
}

/*
 * The delivery d failed its first attempt (error) or is malformed: retries it alone, then parks
 * it. Settles it either way. Returns 0, STOPPED, or a negative code of the database or the bus
 * (the caller rewinds).
 */
static int retry_alone(struct kit_bus_consumer *c, struct kit_bus_delivery *d, bool malformed,
                       const char *first_error, struct ag_err *err)
{
    const struct kit_bus_metrics *m = kit_bus_metrics();
    char last_error[sizeof err->msg];
    snprintf(last_error, sizeof last_error, "%s", first_error);
    unsigned attempts = 1;
    int rc;
    struct kit_bus_envelope env = {0};
    if (!malformed && kit_bus_envelope_parse(d->envelope, d->len, &env, err) < 0)
        malformed = true;
    for (unsigned a = 2; !malformed && a <= c->settings.max_attempts; a++) {
        if (kit_bus_stop_wait(c->stop, retry_delay(c, a))) {
            kit_bus_envelope_release(&env);
            return STOPPED;
        }
        ag_counter_inc(m->retried);
        attempts = a;
        env.ev.attempt = a;
        struct ag_err herr = {0};
        if ((rc = kit_db_begin(c->db, err)) < 0)
            goto out;
        rc = handle_event(c, &env.ev, true, &herr);
        if (rc >= 0) {
            int outcome = rc; /* O_DONE or O_DUPLICATE: record and commit overwrite rc */
            if ((rc = c->drv->record(c->sub, c->db, d, err)) < 0 ||
                (rc = kit_db_commit(c->db, err)) < 0)
                goto out;
            if (outcome == O_DONE) {
                ag_counter_inc(m->delivered);
                ag_histogram_observe(m->delivery_seconds,
                                     (double)(kit_now_ms() - env.ev.time_ms) / 1000.0);
            } else {
                ag_counter_inc(m->duplicates);
            }
            rc = c->drv->settle(c->sub, d, 1, err);
            goto out;
        }
        kit_db_rollback(c->db);
        snprintf(last_error, sizeof last_error, "%s", herr.msg);
        if (rc == AG_EUNAVAIL && !kit_db_ping(c->db)) {
            /* the database itself is gone: that is no fault of the event's */
            rc = ag_err_set(err, AG_EUNAVAIL, "%s", herr.msg);
            goto out;
        }
    }
    if ((rc = kit_db_begin(c->db, err)) < 0)
        goto out;
    d->dead = true;
    if ((rc = park_dead(c, d, attempts, last_error, malformed, err)) < 0 ||
        (rc = c->drv->record(c->sub, c->db, d, err)) < 0 || (rc = kit_db_commit(c->db, err)) < 0) {
        d->dead = false;
        goto out;
    }
    ag_counter_inc(m->dead);
    rc = c->drv->settle(c->sub, d, 1, err);
out:
    if (rc < 0)
        kit_db_rollback(c->db);
    kit_bus_envelope_release(&env);
    return rc < 0 ? rc : 0;
}

/* ---- a batch ---- */

/*
 * Runs deliveries [from, to) in one transaction and commits the ones done. *failed: the index
 * of the first event that failed or is malformed (to when none), with *malformed and herr.
 * Returns 0; 1 when a savepoint could not be rolled back to (nothing committed: run
 * [from, *failed) again); a negative code of the database or the driver (nothing committed).
 */
static int run_batch(struct kit_bus_consumer *c, size_t from, size_t to, size_t *failed,
                     bool *malformed, struct ag_err *herr, struct ag_err *err)
{
    int rc = 0;
    size_t i = from;
    *malformed = false;
    if ((rc = kit_db_begin(c->db, err)) < 0)
        return rc;
    for (; i < to; i++) {
        struct kit_bus_envelope env;
        if (kit_bus_envelope_parse(c->deliveries[i].envelope, c->deliveries[i].len, &env, herr) <
            0) {
            *malformed = true;
            break;
        }
        env.ev.attempt = 1;
        c->times[i] = env.ev.time_ms;
        if ((rc = kit_db_exec(c->db, "SAVEPOINT kit_event", NULL, 0, err)) < 0) {
            kit_bus_envelope_release(&env);
            goto out;
        }
        rc = handle_event(c, &env.ev, true, herr);
        kit_bus_envelope_release(&env);
        if (rc >= 0) {
            c->outcome[i] = (unsigned char)rc;
            if ((rc = kit_db_exec(c->db, "RELEASE SAVEPOINT kit_event", NULL, 0, err)) < 0)
                goto out;
            continue;
        }
        if (!kit_db_in_transaction(c->db) ||
            kit_db_exec(c->db, "ROLLBACK TO SAVEPOINT kit_event", NULL, 0, NULL) < 0) {
            *failed = i;
            kit_db_rollback(c->db);
            return 1;
        }
        break;
    }
    *failed = i;
    if (i > from) {
        if ((rc = c->drv->record(c->sub, c->db, &c->deliveries[i - 1], err)) < 0)
            goto out;
        if ((rc = kit_db_commit(c->db, err)) < 0)
            goto out;
    } else {
        kit_db_rollback(c->db);
    }
    rc = 0;
out:
    if (rc < 0)
        kit_db_rollback(c->db);
    return rc;
}

/* Delivers the n deliveries of a fetch. Returns 0, STOPPED, or a negative code (rewind). */
static int deliver_fetch(struct kit_bus_consumer *c, size_t n, struct ag_err *err)
{
    size_t i = 0;
    while (i < n) {
        size_t failed = n, limit = n;
        bool malformed = false;
        struct ag_err herr = {0};
        memset(c->outcome + i, O_NONE, n - i);
        int rc;
        char why[sizeof herr.msg] = "";
        /*
         * A broken savepoint shortens the batch to the events before the failed one; why keeps
         * that failure's message (the shortened run's handlers overwrite herr).
         */
        while ((rc = run_batch(c, i, limit, &failed, &malformed, &herr, err)) == 1) {
            snprintf(why, sizeof why, "%s", herr.msg[0] ? herr.msg : "the handler failed");
            limit = failed;
        }
        if (rc < 0)
            return rc;
        if (failed > i) {
            if ((rc = c->drv->settle(c->sub, c->deliveries + i, failed - i, err)) < 0)
                return rc;
            account(c, i, failed);
        }
        if (failed >= n)
            break;
        const char *reason = herr.msg;
        if (limit < n && failed == limit) {
            reason = why; /* the shortened run ended where the broken one failed */
            malformed = false;
        }
        if ((rc = retry_alone(c, &c->deliveries[failed], malformed, reason, err)) != 0)
            return rc;
        i = failed + 1;
    }
    return 0;
}

/* ---- replays ---- */

/* Delivers the dead events an operator asked to replay. Returns 0, STOPPED or a negative code. */
static int replay_requested(struct kit_bus_consumer *c, struct ag_err *err)
{
    const struct kit_bus_metrics *m = kit_bus_metrics();
    struct kit_db_rows *rows = NULL;
    int rc = kit_db_query(c->db,
                          "SELECT event_id, envelope FROM dead_events WHERE replay_requested = 1 "
                          "ORDER BY failed_at, event_id LIMIT $1",
                          KIT_DB_PARAMS(KIT_DB_INT(REPLAY_BATCH)), REPLAY_BATCH, &rows, err);
    size_t n = rc > 0 ? (size_t)rc : 0;
    for (size_t r = 0; rc >= 0 && r < n; r++) {
        const char *id = kit_db_rows_text(rows, r, 0, NULL);
        size_t len = 0;
        const char *text = kit_db_rows_text(rows, r, 1, &len);
        struct kit_bus_envelope env;
        struct ag_err herr = {0};
        bool done = false;
        unsigned attempts = 0;
        if (kit_bus_envelope_parse(text, len, &env, &herr) == 0) {
            for (unsigned a = 1; !done && a <= c->settings.max_attempts; a++) {
                if (a > 1 && kit_bus_stop_wait(c->stop, retry_delay(c, a))) {
                    kit_bus_envelope_release(&env);
                    rc = STOPPED;
                    goto out;
                }
                if (a > 1)
                    ag_counter_inc(m->retried);
                attempts = a;
                env.ev.attempt = a;
                if ((rc = kit_db_begin(c->db, err)) < 0)
                    break;
                /* Claim the row first: another process of this service sharing the database
                 * may be replaying it too (the row lock on PostgreSQL, the write lock on
                 * SQLite); 0 rows means it was taken, so it is not applied twice. */
                rc = kit_db_exec(c->db,
                                 "DELETE FROM dead_events WHERE event_id = $1 "
                                 "AND replay_requested = 1",
                                 KIT_DB_PARAMS(KIT_DB_TEXT(id)), err);
                if (rc == 0) {
                    kit_db_rollback(c->db);
                    kit_bus_envelope_release(&env);
                    goto next;
                }
                if (rc > 0)
                    rc = handle_event(c, &env.ev, false, &herr);
                if (rc >= 0 && (rc = kit_db_commit(c->db, err)) == 0) {
                    done = true;
                    ag_counter_inc(m->delivered);
                    ag_log_info("dead event replayed", AG_F_STR("event_id", id),
                                AG_F_STR("type", env.ev.type));
                }
                kit_db_rollback(c->db);
                rc = 0;
            }
            kit_bus_envelope_release(&env);
        }
        if (rc < 0 || done)
            continue;
        char *clean_err = clean_text(herr.msg, strlen(herr.msg), KIT_BUS_ERROR_MAX);
        rc = kit_db_exec(c->db,
                         "UPDATE dead_events SET replay_requested = 0, attempts = $2, error = $3, "
                         "failed_at = $4 WHERE event_id = $1",
                         KIT_DB_PARAMS(KIT_DB_TEXT(id), KIT_DB_INT(attempts ? attempts : 1),
                                       KIT_DB_TEXT(clean_err ? clean_err : "replay failed"),
                                       KIT_DB_INT(kit_now_ms())),
                         err);
        free(clean_err);
        if (rc >= 0) {
            ag_counter_inc(m->dead);
            ag_log_error("event parked as dead again", AG_F_STR("event_id", id),
                         AG_F_UINT("attempts", attempts), AG_F_STR("error", herr.msg));
        }
    next:;
    }
out:
    kit_db_rows_free(rows);
    return rc < 0 ? rc : rc == STOPPED ? STOPPED : 0;
}

/* ---- the thread ---- */

/* After a failure: logs a state change once, waits the back-off (doubling). True: stop. */
static bool consumer_back_off(struct kit_bus_consumer *c, const struct ag_err *err)
{
    if (atomic_exchange(&c->connected, false) || c->backoff_ms == 0)
        ag_log_warn("bus consumer lost", AG_F_STR("group", c->group), AG_F_STR("error", err->msg),
                    AG_F_UINT("retry_in_ms", KIT_BUS_BACKOFF_FIRST_MS));
    c->backoff_ms = c->backoff_ms == 0 ? KIT_BUS_BACKOFF_FIRST_MS : c->backoff_ms * 2;
    if (c->backoff_ms > KIT_BUS_BACKOFF_MAX_MS)
        c->backoff_ms = KIT_BUS_BACKOFF_MAX_MS;
    return kit_bus_stop_wait(c->stop, c->backoff_ms);
}

static void *consumer_main(void *arg)
{
    struct kit_bus_consumer *c = arg;
    struct kit_bus_sub_config cfg = {
        .group = c->group,
        .patterns = c->patterns,
        .pattern_count = c->sub_count,
        .prefetch = c->settings.batch,
    };
    while (!kit_bus_stop_requested(c->stop)) {
        struct ag_err err = {0};
        if (!c->sub && c->drv->sub_open(c->url, &cfg, c->db, &c->sub, &err) < 0) {
            c->sub = NULL;
            if (consumer_back_off(c, &err))
                break;
            continue;
        }
        int64_t now = kit_monotonic_ms();
        int rc = 0;
        if (now - c->last_replay_ms >= REPLAY_CHECK_MS) {
            c->last_replay_ms = now;
            if ((rc = replay_requested(c, &err)) == STOPPED)
                break;
        }
        if (rc == 0)
            rc = c->drv->fetch(c->sub, c->deliveries, c->settings.batch, KIT_BUS_FETCH_TIMEOUT_MS,
                               &err);
        if (rc > 0) {
            rc = deliver_fetch(c, (size_t)rc, &err);
            if (rc == STOPPED) {
                c->drv->rewind(c->sub);
                break;
            }
            if (rc < 0)
                c->drv->rewind(c->sub);
        }
        if (rc < 0) {
            if (consumer_back_off(c, &err))
                break;
            continue;
        }
        if (!atomic_exchange(&c->connected, true))
            ag_log_info("bus consumer connected", AG_F_STR("group", c->group),
                        AG_F_STR("driver", c->drv->scheme));
        c->backoff_ms = 0;
    }
    return NULL;
}

static void consumer_free(struct kit_bus_consumer *c)
{
    if (!c)
        return;
    if (c->drv && c->sub)
        c->drv->sub_close(c->sub);
    kit_db_close(c->db);
    kit_bus_stop_free(c->stop);
    free(c->patterns);
    free(c->deliveries);
    free(c->times);
    free(c->outcome);
    free(c->url);
    free(c->group);
    free(c);
}

int kit_bus_consumer_start(const struct kit_bus_consumer_config *cfg, struct kit_bus_consumer **out,
                           struct ag_err *err)
{
    int rc = 0;
    struct kit_bus_consumer *c = calloc(1, sizeof *c);
    if (!c)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    c->drv = cfg->drv;
    c->settings = *cfg->settings;
    if (c->settings.batch == 0)
        c->settings.batch = 1;
    if (c->settings.max_attempts == 0)
        c->settings.max_attempts = 1;
    c->subs = cfg->subs;
    c->sub_count = cfg->sub_count;
    c->app = cfg->app;
    c->url = strdup(cfg->settings->url);
    c->group = strdup(cfg->group);
    c->patterns = calloc(cfg->sub_count ? cfg->sub_count : 1, sizeof *c->patterns);
    c->deliveries = calloc(c->settings.batch, sizeof *c->deliveries);
    c->times = calloc(c->settings.batch, sizeof *c->times);
    c->outcome = calloc(c->settings.batch, 1);
    if (!c->url || !c->group || !c->patterns || !c->deliveries || !c->times || !c->outcome ||
        kit_bus_stop_new(&c->stop) < 0) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    c->settings.url = c->url;
    for (size_t i = 0; i < cfg->sub_count; i++)
        c->patterns[i] = cfg->subs[i].pattern;
    if ((rc = kit_db_open(cfg->db_url, &c->db, err)) < 0)
        goto out;
    if ((rc = kit_bus_attach(cfg->bus, c->db)) < 0) {
        rc = ag_err_set(err, rc, "out of memory");
        goto out;
    }
    if (pthread_create(&c->thread, NULL, consumer_main, c) != 0) {
        rc = ag_err_sys(err, "the bus consumer thread could not start");
        goto out;
    }
    *out = c;
    c = NULL;
out:
    consumer_free(c);
    return rc;
}

bool kit_bus_consumer_connected(const struct kit_bus_consumer *c)
{
    return c && atomic_load(&((struct kit_bus_consumer *)c)->connected);
}

void kit_bus_consumer_stop(struct kit_bus_consumer *c)
{
    if (!c)
        return;
    kit_bus_stop_request(c->stop);
    pthread_join(c->thread, NULL);
    consumer_free(c);
}
