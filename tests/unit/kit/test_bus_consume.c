/* End to end in one process: outbox → relay → local log → consumer → handlers (bus_*.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "bus_fixture.h"
#include "core/metrics.h"
#include "kit/bus_internal.h"
#include "kit/db.h"
#include "kit/kit.h"

enum {
    EVENTS = 1000,
    SUBJECTS = 10,
    WAIT_MS = 15000, /* a bound on waits, so a broken bus fails the test instead of hanging */
};

struct fx {
    char dir[64];
    char pub_url[128], con_url[128], bus_url[128];
    struct kit_bus_settings settings;
    struct kit_db *pub_db, *con_db, *check_db;
    struct kit_bus *pub_bus, *con_bus;
};

/* The handlers' switches, read on the consumer thread. */
static atomic_bool poison_fixed;
static atomic_int attempts_seen;

/*
 * Records each delivery in the consumer's database (effects) and checks the per-subject order
 * (last_n). data.fail_first: fail attempts ≤ that; data.poison: fail until fixed.
 */
static int on_event(struct kit_app *app, struct kit_db *tx, const struct kit_event *ev,
                    struct ag_err *err)
{
    (void)app;
    atomic_fetch_add(&attempts_seen, 1);
    json_int_t n = json_integer_value(json_object_get(ev->data, "n"));
    /* written before a failure on purpose: a failed attempt must leave nothing behind */
    int rc = kit_db_exec(
        tx, "INSERT INTO effects (event_id, subject, n) VALUES ($1, $2, $3)",
        KIT_DB_PARAMS(KIT_DB_TEXT(ev->id), KIT_DB_TEXT(ev->subject), KIT_DB_INT(n)), err);
    if (rc < 0)
        return rc;
    json_int_t fail_first = json_integer_value(json_object_get(ev->data, "fail_first"));
    if ((json_int_t)ev->attempt <= fail_first)
        return ag_err_set(err, AG_EINVAL, "failing attempt %u on purpose", ev->attempt);
    if (json_is_true(json_object_get(ev->data, "poison")) && !atomic_load(&poison_fixed))
        return ag_err_set(err, AG_EINVAL, "poisoned event %lld", (long long)n);
    int64_t last = -1;
    rc = kit_db_query_int(tx, "SELECT COALESCE(MAX(n), -1) FROM last_n WHERE subject = $1",
                          KIT_DB_PARAMS(KIT_DB_TEXT(ev->subject)), &last, err);
    if (rc < 0)
        return rc;
    if (last >= n && !json_is_true(json_object_get(ev->data, "poison")))
        return ag_err_set(err, AG_EINVAL, "out of order: %lld after %lld", (long long)n,
                          (long long)last);
    rc = kit_db_exec(tx,
                     "INSERT INTO last_n (subject, n) VALUES ($1, $2) "
                     "ON CONFLICT (subject) DO UPDATE SET n = excluded.n",
                     KIT_DB_PARAMS(KIT_DB_TEXT(ev->subject), KIT_DB_INT(n)), err);
    /* what a handler emits carries the delivered event's tenant */
    if (rc >= 0 && json_is_true(json_object_get(ev->data, "echo"))) {
        json_t *data = json_pack("{s:s}", "of", ev->id);
        rc = kit_event_emit(tx, "con.echo.sent", ev->id, data, err);
        json_decref(data);
    }
    return rc < 0 ? rc : 0;
}

static const struct kit_subscription subs[] = {
    {"pub.thing.*", on_event},
};

static int64_t query_int(struct kit_db *db, const char *sql)
{
    int64_t v = -1;
    struct ag_err err = {0};
    if (kit_db_query_int(db, sql, NULL, 0, &v, &err) < 0)
        fail_msg("%s: %s", sql, err.msg);
    return v;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Waits until sql (on the consumer's database) yields want; fails after WAIT_MS. */
static void wait_for(struct fx *f, const char *sql, int64_t want)
{
    int64_t got = -1;
    for (int waited = 0; waited < WAIT_MS; waited += 5) {
        got = query_int(f->check_db, sql);
        if (got == want)
            return;
        sleep_ms(5);
    }
    fail_msg("%s: waited for %lld, have %lld", sql, (long long)want, (long long)got);
}

static void start_consumer(struct fx *f)
{
    struct ag_err err = {0};
    if (kit_bus_new(&f->settings, "con", f->con_url, f->con_db, subs, 1, NULL, &f->con_bus, &err) <
            0 ||
        kit_bus_run(f->con_bus, &err) < 0)
        fail_msg("consumer: %s", err.msg);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    struct ag_err err = {0};
    if (!f || bus_fixture_dir(f->dir) < 0)
        return -1;
    snprintf(f->pub_url, sizeof f->pub_url, "sqlite:%s/pub.db", f->dir);
    snprintf(f->con_url, sizeof f->con_url, "sqlite:%s/con.db", f->dir);
    snprintf(f->bus_url, sizeof f->bus_url, "local:%s/bus.db", f->dir);
    f->settings = (struct kit_bus_settings){.url = f->bus_url,
                                            .batch = 64,
                                            .poll_ms = 50,
                                            .retry_ms = 1,
                                            .max_attempts = 4,
                                            .outbox_keep_ms = 86400000};
    if (kit_db_open(f->pub_url, &f->pub_db, &err) < 0 ||
        kit_db_open(f->con_url, &f->con_db, &err) < 0 ||
        kit_db_open(f->con_url, &f->check_db, &err) < 0 ||
        kit_db_exec(f->con_db, "CREATE TABLE effects (event_id TEXT, subject TEXT, n BIGINT)", NULL,
                    0, &err) < 0 ||
        kit_db_exec(f->con_db, "CREATE TABLE last_n (subject TEXT PRIMARY KEY, n BIGINT)", NULL, 0,
                    &err) < 0 ||
        kit_bus_new(&f->settings, "pub", f->pub_url, f->pub_db, NULL, 0, NULL, &f->pub_bus, &err) <
            0 ||
        kit_bus_run(f->pub_bus, &err) < 0) {
        print_error("setup: %s\n", err.msg);
        return -1;
    }
    start_consumer(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    kit_bus_stop(f->con_bus);
    kit_bus_stop(f->pub_bus);
    kit_db_close(f->pub_db);
    kit_db_close(f->con_db);
    kit_db_close(f->check_db);
    bus_fixture_rmdir(f->dir);
    free(f);
    return 0;
}

/* Emits events [from, to) from the publisher, ten per transaction. */
static void emit_range(struct fx *f, int from, int to, int poison_at)
{
    struct ag_err err = {0};
    for (int i = from; i < to; i += 10) {
        assert_int_equal(kit_db_begin(f->pub_db, &err), 0);
        for (int k = i; k < to && k < i + 10; k++) {
            char subject[16];
            snprintf(subject, sizeof subject, "s%d", k == poison_at ? 99 : k % SUBJECTS);
            json_t *data =
                json_pack("{s:i, s:i, s:b, s:b}", "n", k, "fail_first", k % 97 == 5 ? 2 : 0,
                          "poison", k == poison_at, "echo", k % 250 == 0);
            if (kit_event_emit(f->pub_db, k % 2 ? "pub.thing.made" : "pub.thing.changed", subject,
                               data, &err) < 0)
                fail_msg("emit: %s", err.msg);
            json_decref(data);
        }
        assert_int_equal(kit_db_commit(f->pub_db, &err), 0);
    }
}

static void bus_end_to_end(void **state)
{
    struct fx *f = *state;
    const struct kit_bus_metrics *m = kit_bus_metrics();
    uint64_t retried0 = ag_counter_value(m->retried), dead0 = ag_counter_value(m->dead);
    atomic_store(&poison_fixed, false);
    const int poison = 500;

    /* events nobody subscribes to travel too, and are skipped by the consumer */
    struct ag_err err = {0};
    json_t *empty = json_object();
    assert_int_equal(kit_db_begin(f->pub_db, &err), 0);
    assert_int_equal(kit_event_emit(f->pub_db, "pub.other.made", "x", empty, &err), 0);
    assert_int_equal(kit_db_commit(f->pub_db, &err), 0);
    json_decref(empty);

    emit_range(f, 0, EVENTS, poison);

    /* every event but the poisoned one is handled exactly once, in order per subject */
    wait_for(f, "SELECT COUNT(*) FROM effects", EVENTS - 1);
    wait_for(f, "SELECT COUNT(*) FROM dead_events", 1);
    assert_int_equal(query_int(f->check_db, "SELECT COUNT(DISTINCT event_id) FROM effects"),
                     EVENTS - 1);
    assert_int_equal(query_int(f->check_db, "SELECT COUNT(*) FROM effects WHERE n = 500"), 0);
    assert_int_equal(query_int(f->check_db, "SELECT COUNT(*) FROM inbox"), EVENTS);
    /* the relay marked everything sent */
    int64_t pending = 1;
    for (int waited = 0; pending != 0 && waited < WAIT_MS; waited += 5) {
        pending = query_int(f->pub_db, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL");
        sleep_ms(5);
    }
    assert_int_equal(pending, 0);

    /* the dead event: its attempts, its error, its envelope */
    struct kit_db_rows *rows = NULL;
    assert_int_equal(kit_db_query(f->check_db,
                                  "SELECT type, subject, source, tenant, attempts, error, "
                                  "replay_requested, envelope FROM dead_events",
                                  NULL, 0, 1, &rows, &err),
                     1);
    assert_string_equal(kit_db_rows_text(rows, 0, 1, NULL), "s99");
    assert_string_equal(kit_db_rows_text(rows, 0, 2, NULL), "agora/pub");
    assert_string_equal(kit_db_rows_text(rows, 0, 3, NULL), "default");
    assert_int_equal(kit_db_rows_int(rows, 0, 4), 4);
    assert_string_equal(kit_db_rows_text(rows, 0, 5, NULL), "poisoned event 500");
    assert_int_equal(kit_db_rows_int(rows, 0, 6), 0);
    kit_db_rows_free(rows);
    /* 10 events fail twice (k % 97 == 5), the poisoned one 3 more times than its first */
    assert_int_equal(ag_counter_value(m->retried) - retried0, 11 * 2 + 3);
    assert_int_equal(ag_counter_value(m->dead) - dead0, 1);

    /* the handler's own events (n = 0, 250, 750; 500 is poisoned) went out from its outbox */
    wait_for(f, "SELECT COUNT(*) FROM outbox WHERE type = 'con.echo.sent' AND sent_at IS NOT NULL",
             3);

    /* fixed: a replay delivers it and removes the dead row */
    atomic_store(&poison_fixed, true);
    assert_int_equal(
        kit_db_exec(f->check_db, "UPDATE dead_events SET replay_requested = 1", NULL, 0, &err), 1);
    wait_for(f, "SELECT COUNT(*) FROM dead_events", 0);
    wait_for(f, "SELECT COUNT(*) FROM effects WHERE n = 500", 1);
    wait_for(f, "SELECT COUNT(*) FROM outbox WHERE type = 'con.echo.sent' AND sent_at IS NOT NULL",
             4);

    /*
     * Duplicates: the position is lost (a restored backup, a broker redelivering everything):
     * the inbox skips every event already done, the handler does not run again.
     */
    kit_bus_stop(f->con_bus);
    f->con_bus = NULL;
    uint64_t dups0 = ag_counter_value(m->duplicates);
    assert_int_equal(kit_db_exec(f->check_db, "UPDATE bus_positions SET seq = 0", NULL, 0, &err),
                     1);
    int attempts_before = atomic_load(&attempts_seen);
    start_consumer(f);
    emit_range(f, EVENTS, EVENTS + 1, -1);
    wait_for(f, "SELECT COUNT(*) FROM effects", EVENTS + 1);
    assert_int_equal(query_int(f->check_db, "SELECT COUNT(DISTINCT event_id) FROM effects"),
                     EVENTS + 1);
    assert_int_equal(ag_counter_value(m->duplicates) - dups0, EVENTS);
    assert_int_equal(atomic_load(&attempts_seen) - attempts_before, 1);
}

static void bus_malformed_parked(void **state)
{
    struct fx *f = *state;
    struct ag_err err = {0};
    /* a foreign publisher wrote junk into the log: parked at once, the stream goes on */
    struct kit_bus_pub *pub = NULL;
    assert_int_equal(kit_bus_local.pub_open(f->bus_url, &pub, &err), 0);
    static const char junk[] = "{\"id\":\"junk-1\",\"type\":\"pub.thing.made\",\"data\":\x01}";
    struct kit_bus_out out = {"junk-1", "pub.thing.made", junk, sizeof junk - 1};
    assert_int_equal(kit_bus_local.publish(pub, &out, 1, &err), 0);
    kit_bus_local.pub_close(pub);
    emit_range(f, 0, 10, -1);
    wait_for(f, "SELECT COUNT(*) FROM effects", 10);
    /* not JSON: no id can be read, the row gets one of its own and keeps the bytes */
    wait_for(f,
             "SELECT COUNT(*) FROM dead_events WHERE envelope LIKE '%junk-1%' AND attempts = 1 "
             "AND error LIKE '%not JSON%'",
             1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(bus_end_to_end, setup, teardown),
        cmocka_unit_test_setup_teardown(bus_malformed_parked, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
