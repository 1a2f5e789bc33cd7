/* Unit tests for src/gateway/balance.c: weights, least connections, ejection, masks, threads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "gateway/balance.h"
#include "core/banned.h"

/* The log goes to this file, so that tests can count the lines a transition wrote. */
static FILE *log_file;

static int group_setup(void **state)
{
    (void)state;
    log_file = tmpfile();
    assert_non_null(log_file);
    ag_log_setup("test_balance", AG_LOG_INFO, fileno(log_file));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    ag_log_setup(NULL, AG_LOG_INFO, 1);
    fclose(log_file);
    return 0;
}

/* Lines logged since the last call that contain every one of the given strings. */
static int log_lines_since(const char *a, const char *b)
{
    static long read_upto;
    char line[4096];
    int n = 0;
    fflush(log_file);
    fseek(log_file, read_upto, SEEK_SET);
    while (fgets(line, sizeof line, log_file))
        n += strstr(line, a) && (!b || strstr(line, b));
    read_upto = ftell(log_file);
    fseek(log_file, 0, SEEK_END);
    return n;
}

static struct gw_pool *pool_make(const struct gw_target_spec *targets, size_t count,
                                 enum gw_balance_policy policy,
                                 const struct gw_passive_cfg *passive)
{
    struct gw_pool *pool = NULL;
    struct ag_err err = {0};
    if (gw_pool_new("users", targets, count, policy, passive, &pool, &err) != 0)
        fail_msg("gw_pool_new: %s", err.msg);
    return pool;
}

static struct gw_picker *picker_make(const struct gw_pool *pool, uint64_t seed)
{
    struct gw_picker *picker = NULL;
    assert_int_equal(gw_picker_new(pool, seed, &picker), 0);
    return picker;
}

static void test_pool_validation(void **state)
{
    (void)state;
    struct gw_pool *pool = NULL;
    struct ag_err err = {0};
    struct gw_target_spec many[GW_POOL_MAX_TARGETS + 1];
    char addresses[GW_POOL_MAX_TARGETS + 1][24];
    for (size_t i = 0; i <= GW_POOL_MAX_TARGETS; i++) {
        snprintf(addresses[i], sizeof addresses[i], "10.0.0.%zu:80", i);
        many[i] = (struct gw_target_spec){addresses[i], 1};
    }
    struct gw_passive_cfg passive;
    gw_passive_cfg_defaults(&passive);
    assert_int_equal(passive.consecutive_failures, 5);
    assert_int_equal(passive.eject_ms, 10000);

    assert_int_equal(gw_pool_new("u", many, 0, GW_BALANCE_ROUND_ROBIN, NULL, &pool, &err),
                     AG_EINVAL);
    assert_int_equal(
        gw_pool_new("u", many, GW_POOL_MAX_TARGETS + 1, GW_BALANCE_ROUND_ROBIN, NULL, &pool, &err),
        AG_EINVAL);
    assert_non_null(strstr(err.msg, "1 to 64 targets"));
    assert_int_equal(gw_pool_new("", many, 1, GW_BALANCE_ROUND_ROBIN, NULL, &pool, &err),
                     AG_EINVAL);
    struct gw_target_spec bad[] = {{"a:1", 1}, {"b:1", 0}};
    assert_int_equal(gw_pool_new("u", bad, 2, GW_BALANCE_ROUND_ROBIN, NULL, &pool, &err),
                     AG_EINVAL);
    assert_non_null(strstr(err.msg, "b:1 weight"));
    bad[1].weight = GW_TARGET_WEIGHT_MAX + 1;
    assert_int_equal(gw_pool_new("u", bad, 2, GW_BALANCE_ROUND_ROBIN, NULL, &pool, &err),
                     AG_EINVAL);
    bad[1] = (struct gw_target_spec){"", 1};
    assert_int_equal(gw_pool_new("u", bad, 2, GW_BALANCE_ROUND_ROBIN, NULL, &pool, &err),
                     AG_EINVAL);
    assert_non_null(strstr(err.msg, "no address"));
    assert_int_equal(gw_pool_new("u", many, 1, (enum gw_balance_policy)7, NULL, &pool, &err),
                     AG_EINVAL);
    passive.eject_ms = 0;
    assert_int_equal(gw_pool_new("u", many, 1, GW_BALANCE_ROUND_ROBIN, &passive, &pool, &err),
                     AG_EINVAL);
    assert_non_null(strstr(err.msg, "eject_ms"));
    assert_null(pool);

    /* 64 targets is the most, and fine; everything is copied. */
    pool = pool_make(many, GW_POOL_MAX_TARGETS, GW_BALANCE_LEAST_CONN, NULL);
    addresses[63][0] = 'X';
    assert_int_equal(gw_pool_size(pool), 64);
    assert_string_equal(gw_pool_name(pool), "users");
    assert_int_equal(gw_pool_policy(pool), GW_BALANCE_LEAST_CONN);
    assert_string_equal(gw_target_address(pool, 63), "10.0.0.63:80");
    assert_int_equal(gw_target_weight(pool, 63), 1);
    struct gw_picker *picker = picker_make(pool, 0);
    uint64_t seen = 0;
    for (int i = 0; i < 64; i++)
        seen |= UINT64_C(1) << gw_pick(picker, 0, 0);
    assert_true(seen == UINT64_MAX); /* idle and equal: round robin over all 64 */
    assert_int_equal(gw_pick(picker, 0, UINT64_MAX), -1);
    gw_picker_free(picker);
    gw_pool_free(pool);
    gw_pool_free(NULL);
    gw_picker_free(NULL);
}

static void test_round_robin_weights_exact(void **state)
{
    (void)state;
    const struct gw_target_spec targets[] = {{"a:1", 1}, {"b:1", 9}};
    struct gw_pool *pool = pool_make(targets, 2, GW_BALANCE_ROUND_ROBIN, NULL);
    struct gw_picker *picker = picker_make(pool, 12345);
    int counts[2] = {0, 0}, in_ten = 0;
    for (int i = 0; i < 10000; i++) {
        int index = gw_pick(picker, 0, 0);
        assert_true(index == 0 || index == 1);
        counts[index]++;
        in_ten += index == 0;
        /* Smooth: the light target comes exactly once in every run of ten picks. */
        if (i % 10 == 9) {
            assert_int_equal(in_ten, 1);
            in_ten = 0;
        }
    }
    assert_int_equal(counts[0], 1000);
    assert_int_equal(counts[1], 9000);
    gw_picker_free(picker);
    gw_pool_free(pool);
}

static void test_round_robin_spread_and_seed(void **state)
{
    (void)state;
    const struct gw_target_spec targets[] = {{"a:1", 1}, {"b:1", 1}, {"c:1", 1}};
    struct gw_pool *pool = pool_make(targets, 3, GW_BALANCE_ROUND_ROBIN, NULL);
    struct gw_picker *p0 = picker_make(pool, 0), *p1 = picker_make(pool, 1);
    /* Equal weights: a plain rotation, starting where the seed says. */
    for (int i = 0; i < 9; i++) {
        assert_int_equal(gw_pick(p0, 0, 0), i % 3);
        assert_int_equal(gw_pick(p1, 0, 0), (i + 1) % 3);
    }
    gw_picker_free(p0);
    gw_picker_free(p1);
    gw_pool_free(pool);

    /* 5, 1, 1: nginx's sequence a a b a c a a, spread rather than a a a a a b c. */
    const struct gw_target_spec weighted[] = {{"a:1", 5}, {"b:1", 1}, {"c:1", 1}};
    pool = pool_make(weighted, 3, GW_BALANCE_ROUND_ROBIN, NULL);
    p0 = picker_make(pool, 0);
    const int expected[] = {0, 0, 1, 0, 2, 0, 0};
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
            assert_int_equal(gw_pick(p0, 0, 0), expected[i]);
    gw_picker_free(p0);
    gw_pool_free(pool);
}

static void test_random_weights(void **state)
{
    (void)state;
    const struct gw_target_spec targets[] = {{"a:1", 1}, {"b:1", 9}};
    struct gw_pool *pool = pool_make(targets, 2, GW_BALANCE_RANDOM, NULL);
    for (uint64_t seed = 1; seed <= 3; seed++) {
        struct gw_picker *picker = picker_make(pool, seed * 0x1234567);
        int first = 0;
        for (int i = 0; i < 10000; i++) {
            int index = gw_pick(picker, 0, 0);
            assert_true(index == 0 || index == 1);
            first += index == 0;
        }
        /* 10 % +- 2 %: the bound is over 6 standard deviations wide. */
        assert_in_range(first, 800, 1200);
        /* Excluding the heavy one leaves the light one, always. */
        for (int i = 0; i < 100; i++)
            assert_int_equal(gw_pick(picker, 0, UINT64_C(1) << 1), 0);
        gw_picker_free(picker);
    }
    gw_pool_free(pool);
}

static void test_least_conn(void **state)
{
    (void)state;
    const struct gw_target_spec targets[] = {{"a:1", 1}, {"b:1", 1}, {"c:1", 1}};
    struct gw_pool *pool = pool_make(targets, 3, GW_BALANCE_LEAST_CONN, NULL);
    struct gw_picker *picker = picker_make(pool, 0);
    gw_target_begin(pool, 0);
    gw_target_begin(pool, 0);
    gw_target_begin(pool, 1);
    assert_int_equal(gw_target_active(pool, 0), 2);
    /* c is idle: it wins every time while the others are busy. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(gw_pick(picker, 0, 0), 2);
    /* Retried elsewhere: the least loaded of the rest. */
    assert_int_equal(gw_pick(picker, 0, UINT64_C(1) << 2), 1);
    gw_target_begin(pool, 2);
    gw_target_begin(pool, 2);
    assert_int_equal(gw_pick(picker, 0, 0), 1); /* 2, 1, 2 */
    gw_target_end(pool, 0, 0, false);
    gw_target_end(pool, 0, 0, false);
    gw_target_end(pool, 1, 0, false);
    gw_target_end(pool, 2, 0, false);
    gw_target_end(pool, 2, 0, false);
    for (int i = 0; i < 3; i++)
        assert_int_equal(gw_target_active(pool, i), 0);
    /* All idle: ties go round. */
    int counts[3] = {0, 0, 0};
    for (int i = 0; i < 30; i++)
        counts[gw_pick(picker, 0, 0)]++;
    assert_int_equal(counts[0], 10);
    assert_int_equal(counts[1], 10);
    assert_int_equal(counts[2], 10);
    gw_picker_free(picker);
    gw_pool_free(pool);

    /* Weighted: 1 in flight on weight 1 (1.0) loses to 2 in flight on weight 3 (0.67). */
    const struct gw_target_spec weighted[] = {{"a:1", 1}, {"b:1", 3}};
    pool = pool_make(weighted, 2, GW_BALANCE_LEAST_CONN, NULL);
    picker = picker_make(pool, 0);
    gw_target_begin(pool, 0);
    gw_target_begin(pool, 1);
    gw_target_begin(pool, 1);
    assert_int_equal(gw_pick(picker, 0, 0), 1);
    gw_target_begin(pool, 1); /* 3/3 = 1/1: a tie, broken by weighted round robin */
    int ties[2] = {0, 0};
    for (int i = 0; i < 40; i++)
        ties[gw_pick(picker, 0, 0)]++;
    assert_int_equal(ties[0], 10);
    assert_int_equal(ties[1], 30);
    gw_picker_free(picker);
    gw_pool_free(pool);
}

static void test_passive_ejection(void **state)
{
    (void)state;
    const struct gw_target_spec targets[] = {{"10.1.1.1:80", 1}, {"10.1.1.2:80", 1}};
    const struct gw_passive_cfg passive = {.consecutive_failures = 3, .eject_ms = 1000};
    struct gw_pool *pool = pool_make(targets, 2, GW_BALANCE_ROUND_ROBIN, &passive);
    struct gw_picker *picker = picker_make(pool, 0);
    log_lines_since("", NULL);

    /* Two failures, a success, two failures: never three in a row. */
    for (int i = 0; i < 5; i++) {
        gw_target_begin(pool, 0);
        gw_target_end(pool, 0, 100, i != 2);
    }
    assert_true(gw_target_healthy(pool, 0, 100));
    assert_int_equal(gw_target_ejections(pool, 0), 0);
    /* The third in a row ejects it, logged once. */
    gw_target_begin(pool, 0);
    gw_target_end(pool, 0, 200, true);
    assert_false(gw_target_healthy(pool, 0, 200));
    assert_int_equal(gw_target_ejections(pool, 0), 1);
    assert_false(gw_target_marked_down(pool, 0));
    assert_int_equal(log_lines_since("upstream target ejected", "\"target\":\"10.1.1.1:80\""), 1);
    for (int i = 0; i < 10; i++)
        assert_int_equal(gw_pick(picker, 500, 0), 1);
    assert_int_equal(gw_pick(picker, 500, UINT64_C(1) << 1), -1);
    /* Failures of requests that end while it is out neither extend nor repeat the ejection. */
    for (int i = 0; i < 10; i++) {
        gw_target_begin(pool, 0);
        gw_target_end(pool, 0, 900, true);
    }
    assert_int_equal(gw_target_ejections(pool, 0), 1);
    assert_false(gw_target_healthy(pool, 0, 1199));
    assert_int_equal(log_lines_since("ejected", NULL), 0);
    /* Back after eject_ms, logged once. */
    assert_true(gw_target_healthy(pool, 0, 1200));
    assert_true(gw_target_healthy(pool, 0, 1201));
    assert_int_equal(
        log_lines_since("upstream target back in rotation", "\"reason\":\"ejection time over\""),
        1);
    int counts[2] = {0, 0};
    for (int i = 0; i < 10; i++)
        counts[gw_pick(picker, 1300, 0)]++;
    assert_int_equal(counts[0], 5);
    /* The run starts again from zero: two failures are not enough to eject again. */
    for (int i = 0; i < 2; i++) {
        gw_target_begin(pool, 0);
        gw_target_end(pool, 0, 1400, true);
    }
    assert_true(gw_target_healthy(pool, 0, 1400));
    gw_target_begin(pool, 0);
    gw_target_end(pool, 0, 1400, true);
    assert_false(gw_target_healthy(pool, 0, 1400));
    assert_int_equal(gw_target_ejections(pool, 0), 2);
    /* Active checks passing end an ejection early. */
    gw_target_set_health(pool, 0, true);
    assert_true(gw_target_healthy(pool, 0, 1401));
    assert_int_equal(log_lines_since("upstream target back in rotation",
                                     "\"reason\":\"active health checks passed\""),
                     1);
    assert_int_equal(gw_target_active(pool, 0), 0);
    gw_picker_free(picker);
    gw_pool_free(pool);

    /* consecutive_failures 0 never ejects. */
    const struct gw_passive_cfg off = {.consecutive_failures = 0, .eject_ms = 1000};
    pool = pool_make(targets, 2, GW_BALANCE_ROUND_ROBIN, &off);
    for (int i = 0; i < 1000; i++) {
        gw_target_begin(pool, 1);
        gw_target_end(pool, 1, 0, true);
    }
    assert_true(gw_target_healthy(pool, 1, 0));
    assert_int_equal(gw_target_ejections(pool, 1), 0);
    gw_pool_free(pool);
}

static void test_exclude_mask_and_all_unhealthy(void **state)
{
    (void)state;
    const struct gw_target_spec targets[] = {{"a:1", 1}, {"b:1", 2}, {"c:1", 3}};
    const enum gw_balance_policy policies[] = {GW_BALANCE_ROUND_ROBIN, GW_BALANCE_LEAST_CONN,
                                               GW_BALANCE_RANDOM};
    for (size_t p = 0; p < 3; p++) {
        struct gw_pool *pool = pool_make(targets, 3, policies[p], NULL);
        struct gw_picker *picker = picker_make(pool, p);
        for (int i = 0; i < 20; i++) {
            assert_int_equal(gw_pick(picker, 0, 0x3), 2);
            assert_int_equal(gw_pick(picker, 0, 0x5), 1);
            assert_int_equal(gw_pick(picker, 0, 0x6), 0);
            int index = gw_pick(picker, 0, 0x1);
            assert_true(index == 1 || index == 2);
        }
        assert_int_equal(gw_pick(picker, 0, 0x7), -1);
        /* Bits past the pool's size are ignored. */
        assert_int_equal(gw_pick(picker, 0, 0x3 | UINT64_C(1) << 63), 2);

        /* Marked down by active checks: skipped; all down: -1; up again: back. */
        gw_target_set_health(pool, 2, false);
        assert_true(gw_target_marked_down(pool, 2));
        assert_false(gw_target_healthy(pool, 2, 0));
        assert_int_equal(gw_pick(picker, 0, 0x3), -1);
        gw_target_set_health(pool, 0, false);
        gw_target_set_health(pool, 1, false);
        for (int i = 0; i < 10; i++)
            assert_int_equal(gw_pick(picker, 0, 0), -1);
        gw_target_set_health(pool, 1, true);
        for (int i = 0; i < 10; i++)
            assert_int_equal(gw_pick(picker, 0, 0), 1);
        gw_picker_free(picker);
        gw_pool_free(pool);
    }
}

/* ---- threads ---- */

enum { THREAD_ROUNDS = 100000 };

struct worker {
    struct gw_pool *pool;
    uint64_t seed;
    int picks[4], misses;
};

/* One worker's traffic: pick, begin, end (every seventh a failure), now and then a toggle. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct gw_picker *picker;
    if (gw_picker_new(w->pool, w->seed, &picker) != 0)
        return NULL;
    for (uint64_t i = 0; i < THREAD_ROUNDS; i++) {
        uint64_t now = i / 10;
        int index = gw_pick(picker, now, 0);
        if (index < 0) {
            w->misses++;
            continue;
        }
        w->picks[index]++;
        gw_target_begin(w->pool, index);
        gw_target_end(w->pool, index, now, (i + w->seed) % 7 == 0);
        if (i % 1000 == 0)
            gw_target_set_health(w->pool, (int)(i / 1000 % 4), (i / 1000) % 3 != 0);
    }
    gw_picker_free(picker);
    return NULL;
}

static void test_threads_smoke(void **state)
{
    (void)state;
    const struct gw_target_spec targets[] = {{"a:1", 1}, {"b:1", 2}, {"c:1", 3}, {"d:1", 4}};
    const struct gw_passive_cfg passive = {.consecutive_failures = 2, .eject_ms = 50};
    ag_log_set_level(AG_LOG_ERROR); /* thousands of ejections */
    for (int policy = 0; policy < 3; policy++) {
        struct gw_pool *pool = pool_make(targets, 4, (enum gw_balance_policy)policy, &passive);
        struct worker workers[2] = {{.pool = pool, .seed = 1}, {.pool = pool, .seed = 2}};
        pthread_t threads[2];
        for (int t = 0; t < 2; t++)
            assert_int_equal(pthread_create(&threads[t], NULL, worker_main, &workers[t]), 0);
        for (int t = 0; t < 2; t++)
            pthread_join(threads[t], NULL);
        int total = 0, picked = 0;
        for (int t = 0; t < 2; t++) {
            total += workers[t].misses;
            for (int i = 0; i < 4; i++) {
                total += workers[t].picks[i];
                picked += workers[t].picks[i];
            }
        }
        assert_int_equal(total, 2 * THREAD_ROUNDS);
        /*
         * Which targets get picks depends on how the two threads' ejections and health toggles
         * interleave (a target can stay ejected or unhealthy through a whole run: that made a
         * per-target check fail about one run in seven); the spread itself is checked by the
         * single-threaded tests above. Here: the counts add up, the pool served, and every
         * begin was ended.
         */
        assert_true(picked > 0);
        for (int i = 0; i < 4; i++)
            assert_int_equal(gw_target_active(pool, i), 0);
        gw_pool_free(pool);
    }
    ag_log_set_level(AG_LOG_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_validation),
        cmocka_unit_test(test_round_robin_weights_exact),
        cmocka_unit_test(test_round_robin_spread_and_seed),
        cmocka_unit_test(test_random_weights),
        cmocka_unit_test(test_least_conn),
        cmocka_unit_test(test_passive_ejection),
        cmocka_unit_test(test_exclude_mask_and_all_unhealthy),
        cmocka_unit_test(test_threads_smoke),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
