/* The relay: one thread per service process that publishes the outbox's pending rows in order. */

/*
 * Loop: SELECT the pending rows (sent_at IS NULL) ORDER BY seq LIMIT batch → publish (returns
 * once the bus holds them durably) → mark exactly those rows sent, in one statement → again at
 * once while batches come full; otherwise wait for a commit's wake-up or the poll interval.
 *
 * At-least-once: a publish that fails (or a crash between publish and the UPDATE) publishes the
 * same rows again later; the local log drops ids it holds, consumers' inboxes drop the rest.
 *
 * Order: seq is taken at INSERT, visibility comes at COMMIT. On PostgreSQL a transaction with a
 * smaller seq may commit after one with a larger seq was already published: its row is still
 * pending (sent_at IS NULL) and goes out with the next batch, later than its seq says. Only the
 * exact seqs published are marked sent, never a range, so no such row is ever skipped. Events
 * of one subject stay in order because the service serialises writes to one entity (a row lock
 * or SQLite's single writer): the second transaction cannot commit before the first.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "kit/bus_internal.h"
#include "kit/db.h"
#include "kit/kit.h"
#include "core/banned.h"

enum {
    PRUNE_EVERY_MS = 10000,    /* how often sent rows past their keep time are deleted */
    SEQ_LIST_MAX = 16 * 1024,  /* the JSON array of published seqs */
    RELAY_JOIN_TIMEOUT_S = 15, /* a stop waits this long for a publish in progress */
};

struct kit_bus_relay {
    const struct kit_bus_driver *drv;
    struct kit_bus_settings settings;
    char *url;
    struct kit_db *db;
    struct kit_bus_pub *pub;
    struct kit_bus_stop *stop;
    pthread_t thread;
    atomic_bool connected;
    unsigned backoff_ms;
    int64_t last_prune_ms;
    struct kit_bus_out *out; /* settings.batch slots */
};

/* After a failure: logs a state change once, waits the back-off (doubling). True: stop. */
static bool relay_back_off(struct kit_bus_relay *r, const char *what, const struct ag_err *err)
{
    if (atomic_exchange(&r->connected, false) || r->backoff_ms == 0)
        ag_log_warn("bus relay lost", AG_F_STR("what", what), AG_F_STR("error", err->msg),
                    AG_F_UINT("retry_in_ms", KIT_BUS_BACKOFF_FIRST_MS));
    r->backoff_ms = r->backoff_ms == 0 ? KIT_BUS_BACKOFF_FIRST_MS : r->backoff_ms * 2;
    if (r->backoff_ms > KIT_BUS_BACKOFF_MAX_MS)
        r->backoff_ms = KIT_BUS_BACKOFF_MAX_MS;
    /* The whole back-off, whatever commits poke meanwhile (a poke ends a wait early): under
     * write load a down bus would otherwise be reconnected to at every commit. */
    int64_t deadline = kit_monotonic_ms() + r->backoff_ms;
    for (int64_t left = r->backoff_ms; left > 0; left = deadline - kit_monotonic_ms())
        if (kit_bus_stop_wait(r->stop, (unsigned)left))
            return true;
    return false;
}

/* Marks exactly the published rows sent: their seqs as a JSON array, one statement. */
static int mark_sent(struct kit_bus_relay *r, const struct kit_db_rows *rows, size_t n,
                     struct ag_err *err)
{
    struct ag_buf list;
    ag_buf_init(&list, SEQ_LIST_MAX + (size_t)r->settings.batch * 24);
    int rc = ag_buf_append(&list, "[", 1);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = ag_buf_appendf(&list, "%s%lld", i ? "," : "", (long long)kit_db_rows_int(rows, i, 0));
    if (rc == 0)
        rc = ag_buf_append(&list, "]", 1);
    if (rc < 0) {
        ag_buf_release(&list);
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    }
    const char *sql = kit_db_driver(r->db) == KIT_DB_POSTGRES
                          ? "UPDATE outbox SET sent_at = $1 WHERE seq IN "
                            "(SELECT (jsonb_array_elements_text($2::jsonb))::bigint)"
                          : "UPDATE outbox SET sent_at = $1 WHERE seq IN "
                            "(SELECT value FROM json_each($2))";
    rc = kit_db_exec(
        r->db, sql,
        KIT_DB_PARAMS(KIT_DB_INT(kit_now_ms()), KIT_DB_TEXTN(list.data + list.off, list.len)), err);
    ag_buf_release(&list);
    return rc < 0 ? rc : 0;
}

/* The pending gauge and the age of the oldest pending row. */
static void relay_gauges(struct kit_bus_relay *r)
{
    const struct kit_bus_metrics *m = kit_bus_metrics();
    struct kit_db_rows *rows = NULL;
    if (kit_db_query(r->db, "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE sent_at IS NULL",
                     NULL, 0, 1, &rows, NULL) == 1) {
        int64_t pending = kit_db_rows_int(rows, 0, 0);
        ag_gauge_set(m->outbox_pending, (double)pending);
        double lag =
            pending > 0 ? (double)(kit_now_ms() - kit_db_rows_int(rows, 0, 1)) / 1000.0 : 0.0;
        ag_gauge_set(m->outbox_lag, lag > 0 ? lag : 0.0);
    }
    kit_db_rows_free(rows);
}

/* Deletes sent rows older than the keep time, now and then. */
static void relay_prune(struct kit_bus_relay *r)
{
    int64_t now = kit_monotonic_ms();
    if (r->last_prune_ms != 0 && now - r->last_prune_ms < PRUNE_EVERY_MS)
        return;
    r->last_prune_ms = now;
    struct ag_err err = {0};
    int64_t before = kit_now_ms() - (int64_t)r->settings.outbox_keep_ms;
    if (kit_db_exec(r->db, "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1",
                    KIT_DB_PARAMS(KIT_DB_INT(before)), &err) < 0)
        ag_log_warn("bus relay could not prune the outbox", AG_F_STR("error", err.msg));
}

/*
 * One round on the open publisher r->pub: publishes up to a batch. Returns the rows published (≥
 * 0), or a negative code after which the caller backs off (err says why, *what which side failed).
 */
static int relay_round(struct kit_bus_relay *r, const char **what, struct ag_err *err)
{
    struct kit_db_rows *rows = NULL;
    *what = "database";
    int rc =
        kit_db_query(r->db,
                     "SELECT seq, id, type, envelope FROM outbox WHERE sent_at IS NULL "
                     "ORDER BY seq LIMIT $1",
                     KIT_DB_PARAMS(KIT_DB_INT(r->settings.batch)), r->settings.batch, &rows, err);
    if (rc <= 0)
        goto out;
    size_t n = (size_t)rc;
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *env = kit_db_rows_text(rows, i, 3, &len);
        r->out[i] = (struct kit_bus_out){.id = kit_db_rows_text(rows, i, 1, NULL),
                                         .type = kit_db_rows_text(rows, i, 2, NULL),
                                         .envelope = env,
                                         .len = len};
    }
    *what = "bus";
    if ((rc = r->drv->publish(r->pub, r->out, n, err)) < 0) {
        /* the publisher reconnects on its next call; a fresh one is simpler to reason about */
        r->drv->pub_close(r->pub);
        r->pub = NULL;
        goto out;
    }
    ag_counter_add(kit_bus_metrics()->published, n);
    *what = "database";
    if ((rc = mark_sent(r, rows, n, err)) < 0)
        goto out;
    rc = (int)n;
out:
    kit_db_rows_free(rows);
    return rc;
}

static void *relay_main(void *arg)
{
    struct kit_bus_relay *r = arg;
    while (!kit_bus_stop_requested(r->stop)) {
        struct ag_err err = {0};
        const char *what = "bus";
        if (!r->pub && r->drv->pub_open(r->url, &r->pub, &err) < 0) {
            r->pub = NULL;
            if (relay_back_off(r, what, &err))
                break;
            continue;
        }
        int rc = relay_round(r, &what, &err);
        if (rc < 0) {
            if (relay_back_off(r, what, &err))
                break;
            continue;
        }
        if (!atomic_exchange(&r->connected, true))
            ag_log_info("bus relay connected", AG_F_STR("driver", r->drv->scheme));
        r->backoff_ms = 0;
        if ((unsigned)rc == r->settings.batch)
            continue; /* more may be waiting */
        relay_gauges(r);
        relay_prune(r);
        if (kit_bus_stop_wait(r->stop, r->settings.poll_ms))
            break;
    }
    return NULL;
}

static void relay_free(struct kit_bus_relay *r)
{
    if (!r)
        return;
    if (r->drv && r->pub)
        r->drv->pub_close(r->pub);
    kit_db_close(r->db);
    kit_bus_stop_free(r->stop);
    free(r->out);
    free(r->url);
    free(r);
}

int kit_bus_relay_start(const struct kit_bus_driver *drv, const struct kit_bus_settings *s,
                        const char *db_url, struct kit_bus_relay **out, struct ag_err *err)
{
    int rc = 0;
    struct kit_bus_relay *r = calloc(1, sizeof *r);
    if (!r)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    r->drv = drv;
    r->settings = *s;
    if (r->settings.batch == 0)
        r->settings.batch = 1;
    r->url = strdup(s->url);
    r->out = calloc(r->settings.batch, sizeof *r->out);
    if (!r->url || !r->out || kit_bus_stop_new(&r->stop) < 0) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    r->settings.url = r->url;
    if ((rc = kit_db_open(db_url, &r->db, err)) < 0)
        goto out;
    if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        rc = ag_err_sys(err, "the bus relay thread could not start");
        goto out;
    }
    *out = r;
    r = NULL;
out:
    relay_free(r);
    return rc;
}

void kit_bus_relay_wake(void *relay)
{
    struct kit_bus_relay *r = relay;
    kit_bus_stop_poke(r->stop);
}

bool kit_bus_relay_connected(const struct kit_bus_relay *r)
{
    return r && atomic_load(&((struct kit_bus_relay *)r)->connected);
}

void kit_bus_relay_stop(struct kit_bus_relay *r)
{
    if (!r)
        return;
    kit_bus_stop_request(r->stop);
    /*
     * Bounded: librabbitmq writes a publish with no deadline, so a broker that stopped reading
     * (a memory or disk alarm) can hold the relay in a send for ever. Then the process stops
     * without it: what it was publishing is still pending in the outbox, published again at
     * the next start.
     */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += RELAY_JOIN_TIMEOUT_S;
    if (pthread_timedjoin_np(r->thread, NULL, &deadline) != 0) {
        ag_log_error("bus relay did not stop: it is blocked publishing; leaving it behind",
                     AG_F_UINT("waited_s", RELAY_JOIN_TIMEOUT_S));
        return; /* the thread still uses r: not freed, the process is ending */
    }
    relay_free(r);
}
