/* Unit tests for src/gateway/breaker.c: thresholds, rolling window, probe slot, threads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "gateway/breaker.h"
#include "core/banned.h"

/* A breaker with the defaults but for what the test changes. */
static void breaker_init_with(struct gw_breaker *b, uint32_t min_requests, double ratio)
{
    struct gw_breaker_config cfg;
    gw_breaker_config_defaults(&cfg);
    cfg.min_requests = min_requests;
    cfg.failure_ratio = ratio;
    assert_int_equal(gw_breaker_init(b, &cfg, NULL), 0);
}

/* Records n outcomes at now_ms; returns how many of them changed the state. */
static int record_n(struct gw_breaker *b, uint64_t now_ms, int n, bool success)
{
    int changes = 0;
    for (int i = 0; i < n; i++)
        changes += gw_breaker_record(b, now_ms, success, false);
    return changes;
}

/* Opens b at now_ms with min_requests failures. */
static void open_at(struct gw_breaker *b, uint64_t now_ms)
{
    assert_int_equal(record_n(b, now_ms, (int)b->cfg.min_requests, false), 1);
    assert_int_equal(gw_breaker_state(b, now_ms), GW_BREAKER_OPEN);
}

static void test_config_defaults_and_bounds(void **state)
{
    (void)state;
    struct gw_breaker_config cfg;
    struct gw_breaker b;
    struct ag_err err = {0};
    gw_breaker_config_defaults(&cfg);
    assert_int_equal(cfg.window_ms, 10000);
    assert_int_equal(cfg.min_requests, 20);
    assert_true(cfg.failure_ratio == 0.5);
    assert_int_equal(cfg.open_ms, 5000);
    assert_int_equal(gw_breaker_config_check(&cfg, &err), 0);

    struct gw_breaker_config bad = cfg;
    bad.window_ms = 9;
    assert_int_equal(gw_breaker_init(&b, &bad, &err), AG_EINVAL);
    assert_non_null(strstr(err.msg, "window_ms"));
    bad = cfg;
    bad.min_requests = 0;
    assert_int_equal(gw_breaker_config_check(&bad, &err), AG_EINVAL);
    assert_non_null(strstr(err.msg, "min_requests"));
    bad = cfg;
    bad.failure_ratio = 0.0;
    assert_int_equal(gw_breaker_config_check(&bad, &err), AG_EINVAL);
    bad.failure_ratio = 1.01;
    assert_int_equal(gw_breaker_config_check(&bad, &err), AG_EINVAL);
    assert_non_null(strstr(err.msg, "failure_ratio"));
    bad.failure_ratio = 1.0;
    assert_int_equal(gw_breaker_config_check(&bad, NULL), 0);
    bad = cfg;
    bad.open_ms = 0;
    assert_int_equal(gw_breaker_config_check(&bad, &err), AG_EINVAL);
    assert_non_null(strstr(err.msg, "open_ms"));

    assert_string_equal(gw_breaker_state_name(GW_BREAKER_CLOSED), "closed");
    assert_string_equal(gw_breaker_state_name(GW_BREAKER_OPEN), "open");
    assert_string_equal(gw_breaker_state_name(GW_BREAKER_HALF_OPEN), "half-open");
}

static void test_opens_at_min_requests_and_ratio(void **state)
{
    (void)state;
    struct gw_breaker b;
    breaker_init_with(&b, 20, 0.5);
    assert_int_equal(gw_breaker_admit(&b, 1000), GW_BREAKER_ALLOW);
    /* 19 failures: all of them, but too few to judge. */
    assert_int_equal(record_n(&b, 1000, 19, false), 0);
    assert_int_equal(gw_breaker_state(&b, 1000), GW_BREAKER_CLOSED);
    assert_int_equal(gw_breaker_admit(&b, 1000), GW_BREAKER_ALLOW);
    /* The 20th opens it, once. */
    assert_true(gw_breaker_record(&b, 1000, false, false));
    assert_int_equal(gw_breaker_state(&b, 1000), GW_BREAKER_OPEN);
    assert_int_equal(gw_breaker_transitions(&b), 1);
    assert_int_equal(gw_breaker_admit(&b, 1000), GW_BREAKER_REFUSE);

    /* 11 successes and 9 failures: 20 outcomes at 0.45, under the ratio. */
    breaker_init_with(&b, 20, 0.5);
    assert_int_equal(record_n(&b, 1000, 11, true), 0);
    assert_int_equal(record_n(&b, 1000, 9, false), 0);
    assert_int_equal(gw_breaker_state(&b, 1000), GW_BREAKER_CLOSED);
    /* One more failure: 10 of 21 is still under 0.5; the next makes 11 of 22 = 0.5. */
    assert_false(gw_breaker_record(&b, 1000, false, false));
    assert_true(gw_breaker_record(&b, 1000, false, false));
    assert_int_equal(gw_breaker_state(&b, 1000), GW_BREAKER_OPEN);

    /* Successes never open it, however many. */
    breaker_init_with(&b, 1, 0.01);
    assert_int_equal(record_n(&b, 1000, 1000, true), 0);
    assert_int_equal(gw_breaker_state(&b, 1000), GW_BREAKER_CLOSED);
    /* 10 failures in 1010 are under 0.01; 11 in 1011 are not. */
    assert_int_equal(record_n(&b, 1000, 10, false), 0);
    assert_true(gw_breaker_record(&b, 1000, false, false));
}

static void test_rolling_window(void **state)
{
    (void)state;
    struct gw_breaker b;
    /* Window 10000 ms in buckets of 1000 ms. */
    breaker_init_with(&b, 20, 0.5);
    assert_int_equal(record_n(&b, 500, 15, false), 0);
    /* At 10000 the bucket of 500 has left the window: 15 new failures are not 20. */
    assert_int_equal(record_n(&b, 10000, 15, false), 0);
    assert_int_equal(gw_breaker_state(&b, 10000), GW_BREAKER_CLOSED);
    /* At 19999 the bucket of 10000 is still in (buckets 10..19): 5 more make 20. */
    assert_int_equal(record_n(&b, 19999, 4, false), 0);
    assert_true(gw_breaker_record(&b, 19999, false, false));

    /* Outcomes spread over the window add up. */
    breaker_init_with(&b, 20, 0.5);
    for (uint64_t t = 0; t < 10; t++)
        assert_int_equal(record_n(&b, 50000 + t * 1000, 2, t == 9), 0);
    /* 18 failures and 2 successes in 20: opens at the next failure (19 of 21). */
    assert_true(gw_breaker_record(&b, 59000, false, false));

    /* Successes age out too: old successes do not dilute new failures. */
    breaker_init_with(&b, 20, 0.5);
    assert_int_equal(record_n(&b, 0, 100, true), 0);
    assert_int_equal(record_n(&b, 30000, 19, false), 0);
    assert_true(gw_breaker_record(&b, 30000, false, false));
}

static void test_skewed_clocks_count(void **state)
{
    (void)state;
    struct gw_breaker b;
    /* One worker's clock reads 2000, another's still 1999: both outcomes count. */
    breaker_init_with(&b, 2, 1.0);
    assert_false(gw_breaker_record(&b, 2000, false, false));
    assert_true(gw_breaker_record(&b, 1999, false, false));
    /* Time 0 and the first buckets (no bucket before 0) work. */
    breaker_init_with(&b, 2, 1.0);
    assert_false(gw_breaker_record(&b, 0, false, false));
    assert_true(gw_breaker_record(&b, 1, false, false));
}

static void test_open_half_open_probe(void **state)
{
    (void)state;
    struct gw_breaker b;
    breaker_init_with(&b, 20, 0.5);
    open_at(&b, 1000);
    /* Open: refused until open_ms (5000) has passed. */
    assert_int_equal(gw_breaker_admit(&b, 5999), GW_BREAKER_REFUSE);
    assert_int_equal(gw_breaker_state(&b, 5999), GW_BREAKER_OPEN);
    assert_int_equal(gw_breaker_state(&b, 6000), GW_BREAKER_HALF_OPEN);
    /* Half-open: one probe, everyone else refused. */
    assert_int_equal(gw_breaker_admit(&b, 6000), GW_BREAKER_PROBE);
    assert_int_equal(gw_breaker_transitions(&b), 2);
    assert_int_equal(gw_breaker_admit(&b, 6000), GW_BREAKER_REFUSE);
    assert_int_equal(gw_breaker_admit(&b, 9000), GW_BREAKER_REFUSE);
    assert_int_equal(gw_breaker_state(&b, 9000), GW_BREAKER_HALF_OPEN);
    /* Outcomes of requests admitted before it opened are ignored now. */
    assert_int_equal(record_n(&b, 6000, 50, false), 0);
    assert_int_equal(record_n(&b, 6000, 50, true), 0);
    /* The probe fails: open again for open_ms from then. */
    assert_true(gw_breaker_record(&b, 7000, false, true));
    assert_int_equal(gw_breaker_transitions(&b), 3);
    assert_int_equal(gw_breaker_state(&b, 7000), GW_BREAKER_OPEN);
    assert_int_equal(gw_breaker_admit(&b, 11999), GW_BREAKER_REFUSE);
    /* A second record of the same probe is ignored. */
    assert_false(gw_breaker_record(&b, 7001, true, true));
    assert_int_equal(gw_breaker_state(&b, 7001), GW_BREAKER_OPEN);
    /* Next probe succeeds: closed, with an empty window. */
    assert_int_equal(gw_breaker_admit(&b, 12000), GW_BREAKER_PROBE);
    assert_true(gw_breaker_record(&b, 12001, true, true));
    assert_int_equal(gw_breaker_state(&b, 12001), GW_BREAKER_CLOSED);
    assert_int_equal(gw_breaker_transitions(&b), 5);
    assert_int_equal(gw_breaker_admit(&b, 12001), GW_BREAKER_ALLOW);
    /* The failures from before the opening (same window) were cleared: 19 new ones don't open. */
    assert_int_equal(record_n(&b, 12002, 19, false), 0);
    assert_int_equal(gw_breaker_state(&b, 12002), GW_BREAKER_CLOSED);
    assert_true(gw_breaker_record(&b, 12002, false, false));
    assert_int_equal(gw_breaker_transitions(&b), 6);
}

static void test_abandoned_probe(void **state)
{
    (void)state;
    struct gw_breaker b;
    breaker_init_with(&b, 20, 0.5);
    gw_breaker_abandon_probe(&b); /* harmless when closed */
    assert_int_equal(gw_breaker_state(&b, 0), GW_BREAKER_CLOSED);
    open_at(&b, 1000);
    gw_breaker_abandon_probe(&b); /* harmless when open */
    assert_int_equal(gw_breaker_admit(&b, 1000), GW_BREAKER_REFUSE);
    assert_int_equal(gw_breaker_admit(&b, 6000), GW_BREAKER_PROBE);
    assert_int_equal(gw_breaker_admit(&b, 6001), GW_BREAKER_REFUSE);
    /* The client went away: the slot is free again, and the breaker still half-open. */
    gw_breaker_abandon_probe(&b);
    assert_int_equal(gw_breaker_state(&b, 6002), GW_BREAKER_HALF_OPEN);
    assert_int_equal(gw_breaker_admit(&b, 6002), GW_BREAKER_PROBE);
    assert_int_equal(gw_breaker_admit(&b, 6003), GW_BREAKER_REFUSE);
    assert_true(gw_breaker_record(&b, 6004, true, true));
    assert_int_equal(gw_breaker_admit(&b, 6005), GW_BREAKER_ALLOW);
    /* Abandoning never counted as a transition. */
    assert_int_equal(gw_breaker_transitions(&b), 3);
}

/* ---- threads ---- */

enum { THREADS = 2, ROUNDS = 2000 };

struct race {
    struct gw_breaker *b;
    pthread_barrier_t *barrier;
    uint64_t now_ms;
    int probes, refusals, opens;
};

/* Every thread asks for the probe at once; exactly one may get it. */
static void *race_admit(void *arg)
{
    struct race *r = arg;
    pthread_barrier_wait(r->barrier);
    for (int i = 0; i < 100; i++) {
        enum gw_breaker_admit a = gw_breaker_admit(r->b, r->now_ms);
        r->probes += a == GW_BREAKER_PROBE;
        r->refusals += a == GW_BREAKER_REFUSE;
    }
    return NULL;
}

/* Every thread records failures at once; exactly one opens the breaker. */
static void *race_record(void *arg)
{
    struct race *r = arg;
    pthread_barrier_wait(r->barrier);
    for (int i = 0; i < 200; i++)
        r->opens += gw_breaker_record(r->b, r->now_ms, false, false);
    return NULL;
}

static void run_race(struct gw_breaker *b, uint64_t now_ms, void *(*fn)(void *),
                     struct race races[THREADS])
{
    pthread_t threads[THREADS];
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, THREADS);
    for (int t = 0; t < THREADS; t++) {
        races[t] = (struct race){.b = b, .barrier = &barrier, .now_ms = now_ms};
        assert_int_equal(pthread_create(&threads[t], NULL, fn, &races[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    pthread_barrier_destroy(&barrier);
}

static void test_threads_one_probe_one_opening(void **state)
{
    (void)state;
    struct gw_breaker b;
    struct race races[THREADS];
    for (int round = 0; round < ROUNDS / 20; round++) {
        uint64_t t0 = (uint64_t)round * 100000;
        breaker_init_with(&b, 100, 0.5);
        run_race(&b, t0, race_record, races);
        assert_int_equal(races[0].opens + races[1].opens, 1);
        assert_int_equal(gw_breaker_transitions(&b), 1);

        run_race(&b, t0 + 5000, race_admit, races);
        assert_int_equal(races[0].probes + races[1].probes, 1);
        assert_int_equal(races[0].refusals + races[1].refusals, 2 * 100 - 1);
        assert_int_equal(gw_breaker_transitions(&b), 2);
        assert_true(gw_breaker_record(&b, t0 + 5001, true, true));
        assert_int_equal(gw_breaker_state(&b, t0 + 5001), GW_BREAKER_CLOSED);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults_and_bounds),
        cmocka_unit_test(test_opens_at_min_requests_and_ratio),
        cmocka_unit_test(test_rolling_window),
        cmocka_unit_test(test_skewed_clocks_count),
        cmocka_unit_test(test_open_half_open_probe),
        cmocka_unit_test(test_abandoned_probe),
        cmocka_unit_test(test_threads_one_probe_one_opening),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
