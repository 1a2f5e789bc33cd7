/* Unit tests for src/gateway/ratelimit.c: bucket arithmetic, the memory store, the store call. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/loop.h"
#include "gateway/ratelimit.h"
#include "core/banned.h"

/* Times here are made up (the functions take the clock as an argument): nothing waits. */

static struct gw_rl_decision take_at(struct gw_rl_bucket *b, const struct gw_rl_policy *p,
                                     uint64_t now_ms)
{
    struct gw_rl_decision d;
    gw_rl_bucket_take(b, p, now_ms, &d);
    assert_false(d.degraded);
    assert_int_equal(d.limit, p->burst);
    if (d.allowed)
        assert_int_equal(d.retry_after_s, 0);
    else
        assert_true(d.retry_after_s >= 1);
    return d;
}

/* Takes n times at now_ms; returns how many were allowed. */
static uint64_t take_n(struct gw_rl_bucket *b, const struct gw_rl_policy *p, uint64_t now_ms,
                       uint64_t n)
{
    uint64_t allowed = 0;
    for (uint64_t i = 0; i < n; i++)
        allowed += take_at(b, p, now_ms).allowed;
    return allowed;
}

/* ---- policy ---- */

static void policy_check_bounds(void **state)
{
    (void)state;
    struct ag_err err = {0};
    assert_int_equal(gw_rl_policy_check(&(struct gw_rl_policy){100, 1000, 100}, &err), 0);
    assert_int_equal(gw_rl_policy_check(&(struct gw_rl_policy){0, 1000, 100}, &err), AG_EINVAL);
    assert_int_equal(gw_rl_policy_check(&(struct gw_rl_policy){1, 0, 100}, &err), AG_EINVAL);
    assert_int_equal(gw_rl_policy_check(&(struct gw_rl_policy){1, 1000, 0}, &err), AG_EINVAL);
    assert_int_equal(gw_rl_policy_check(NULL, &err), AG_EINVAL);
    assert_int_equal(gw_rl_policy_check(&(struct gw_rl_policy){1, GW_RL_PER_MS_MAX, 1}, &err), 0);
    assert_int_equal(gw_rl_policy_check(&(struct gw_rl_policy){1, GW_RL_PER_MS_MAX + 1, 1}, &err),
                     AG_ERANGE);
    assert_int_equal(gw_rl_policy_check(&(struct gw_rl_policy){GW_RL_UNITS_MAX, 1, 1}, &err), 0);
    assert_int_equal(gw_rl_policy_check(&(struct gw_rl_policy){GW_RL_UNITS_MAX + 1, 1, 1}, &err),
                     AG_ERANGE);
    /* burst * per_ms: exactly 2^52 is fine, one more burst is not. */
    assert_int_equal(
        gw_rl_policy_check(&(struct gw_rl_policy){1, 1024, GW_RL_UNITS_MAX / 1024}, &err), 0);
    assert_int_equal(
        gw_rl_policy_check(&(struct gw_rl_policy){1, 1024, GW_RL_UNITS_MAX / 1024 + 1}, &err),
        AG_ERANGE);
    assert_true(strlen(err.msg) > 0);
    assert_int_equal(gw_rl_policy_check(&(struct gw_rl_policy){1, 1000, UINT64_MAX}, NULL),
                     AG_ERANGE);
}

/* ---- bucket ---- */

static void burst_then_refused(void **state)
{
    (void)state;
    const struct gw_rl_policy p = {100, 1000, 100}; /* 100/s, burst 100: a token every 10 ms */
    struct gw_rl_bucket b;
    gw_rl_bucket_init(&b, &p, 5000);
    for (uint64_t i = 0; i < 100; i++) {
        struct gw_rl_decision d = take_at(&b, &p, 5000);
        assert_true(d.allowed);
        assert_int_equal(d.remaining, 99 - i);
        assert_int_equal(d.reset_s, 1); /* (i + 1) * 10 ms to refill, rounded up */
    }
    struct gw_rl_decision d = take_at(&b, &p, 5000);
    assert_false(d.allowed);
    assert_int_equal(d.remaining, 0);
    assert_int_equal(d.retry_after_s, 1); /* 10 ms, rounded up */
    assert_int_equal(d.reset_s, 1);       /* 1000 ms */
}

static void uninitialised_bucket_starts_full(void **state)
{
    (void)state;
    const struct gw_rl_policy p = {1, 1000, 5};
    struct gw_rl_bucket b = {0};
    struct gw_rl_decision d = take_at(&b, &p, 123456);
    assert_true(d.allowed);
    assert_int_equal(d.remaining, 4);
    assert_int_equal(b.last_ms, 123456);
}

static void refill_exact_boundaries(void **state)
{
    (void)state;
    const struct gw_rl_policy p = {1, 1000, 1}; /* one per second */
    struct gw_rl_bucket b;
    gw_rl_bucket_init(&b, &p, 0);
    assert_true(take_at(&b, &p, 0).allowed);
    struct gw_rl_decision d = take_at(&b, &p, 999);
    assert_false(d.allowed);
    assert_int_equal(d.retry_after_s, 1); /* 1 ms left */
    assert_true(take_at(&b, &p, 1000).allowed);
    assert_false(take_at(&b, &p, 1000).allowed);
    assert_false(take_at(&b, &p, 1999).allowed);
    assert_true(take_at(&b, &p, 2000).allowed);
}

static void fractional_rate_does_not_drift(void **state)
{
    (void)state;
    /* 3 per second: a token every 333.33 ms, which no whole number of ms expresses. */
    const struct gw_rl_policy p = {3, 1000, 3};
    struct gw_rl_bucket b;
    gw_rl_bucket_init(&b, &p, 0);
    assert_int_equal(take_n(&b, &p, 0, 3), 3);
    struct gw_rl_decision d = take_at(&b, &p, 333);
    assert_false(d.allowed); /* 999 of 1000 units */
    assert_int_equal(d.retry_after_s, 1);
    assert_true(take_at(&b, &p, 334).allowed);  /* 1002 units; 2 left */
    assert_true(take_at(&b, &p, 667).allowed);  /* 2 + 999 = 1001; 1 left */
    assert_true(take_at(&b, &p, 1000).allowed); /* 1 + 999 = 1000; 0 left */
    assert_false(take_at(&b, &p, 1000).allowed);

    /* A request every ms for five minutes: exactly 3 per second get through, no more, no less. */
    gw_rl_bucket_init(&b, &p, 0);
    uint64_t allowed = 0;
    for (uint64_t t = 0; t <= 300000; t++)
        allowed += take_at(&b, &p, t).allowed;
    assert_int_equal(allowed, 3 + 3 * 300);
}

static void retry_after_and_reset_rounding(void **state)
{
    (void)state;
    const struct gw_rl_policy p = {1, 60000, 5}; /* one a minute, burst 5 */
    struct gw_rl_bucket b;
    gw_rl_bucket_init(&b, &p, 0);
    assert_int_equal(take_n(&b, &p, 0, 5), 5);
    struct gw_rl_decision d = take_at(&b, &p, 0);
    assert_false(d.allowed);
    assert_int_equal(d.retry_after_s, 60);
    assert_int_equal(d.reset_s, 300);
    d = take_at(&b, &p, 1);
    assert_int_equal(d.retry_after_s, 60); /* 59.999 s */
    assert_int_equal(d.reset_s, 300);      /* 299.999 s */
    d = take_at(&b, &p, 58999);
    assert_int_equal(d.retry_after_s, 2); /* 1.001 s */
    d = take_at(&b, &p, 59000);
    assert_int_equal(d.retry_after_s, 1); /* 1.000 s */
    assert_int_equal(d.reset_s, 241);     /* 241.000 s */
    d = take_at(&b, &p, 59001);
    assert_int_equal(d.retry_after_s, 1); /* 0.999 s */
    assert_int_equal(d.reset_s, 241);     /* 240.999 s */
    d = take_at(&b, &p, 60000);
    assert_true(d.allowed);
    assert_int_equal(d.remaining, 0);
    assert_int_equal(d.reset_s, 300);

    /* A full bucket resets in 0 s; one token short of full, in the time of one token. */
    gw_rl_bucket_init(&b, &p, 0);
    d = take_at(&b, &p, 0);
    assert_int_equal(d.remaining, 4);
    assert_int_equal(d.reset_s, 60);
    assert_true(gw_rl_bucket_full_at(&b, &p, 60000));
    assert_false(gw_rl_bucket_full_at(&b, &p, 59999));
}

static void huge_gaps_fill_without_overflow(void **state)
{
    (void)state;
    const struct gw_rl_policy p = {7, 1000, 10};
    struct gw_rl_bucket b;
    gw_rl_bucket_init(&b, &p, 0);
    assert_int_equal(take_n(&b, &p, 0, 11), 10);
    struct gw_rl_decision d = take_at(&b, &p, UINT64_MAX);
    assert_true(d.allowed);
    assert_int_equal(d.remaining, 9);
    assert_int_equal(b.last_ms, UINT64_MAX);
    d = take_at(&b, &p, UINT64_MAX); /* and nothing wraps at the top of the clock */
    assert_int_equal(d.remaining, 8);

    /* The largest policies: every product stays in range. */
    const struct gw_rl_policy big_rate = {GW_RL_UNITS_MAX, 1, GW_RL_UNITS_MAX};
    assert_int_equal(gw_rl_policy_check(&big_rate, NULL), 0);
    gw_rl_bucket_init(&b, &big_rate, 0);
    d = take_at(&b, &big_rate, 0);
    assert_int_equal(d.remaining, GW_RL_UNITS_MAX - 1);
    assert_int_equal(d.reset_s, 1); /* 1 unit at 2^52 units per ms: one ms */
    d = take_at(&b, &big_rate, UINT64_MAX / 2);
    assert_int_equal(d.remaining, GW_RL_UNITS_MAX - 1);

    const struct gw_rl_policy slow = {1, GW_RL_PER_MS_MAX, GW_RL_UNITS_MAX / GW_RL_PER_MS_MAX};
    assert_int_equal(gw_rl_policy_check(&slow, NULL), 0);
    gw_rl_bucket_init(&b, &slow, 0);
    assert_int_equal(take_n(&b, &slow, 0, slow.burst), slow.burst);
    d = take_at(&b, &slow, 0);
    assert_false(d.allowed);
    assert_int_equal(d.retry_after_s, GW_RL_PER_MS_MAX / 1000);
    assert_int_equal(d.reset_s, slow.burst * GW_RL_PER_MS_MAX / 1000);
    d = take_at(&b, &slow, UINT64_MAX - 1);
    assert_true(d.allowed);
    assert_int_equal(d.remaining, slow.burst - 1);
}

static void clock_going_backwards_refills_nothing(void **state)
{
    (void)state;
    const struct gw_rl_policy p = {1, 100, 10}; /* a token every 100 ms */
    struct gw_rl_bucket b;
    gw_rl_bucket_init(&b, &p, 1000);
    assert_int_equal(take_n(&b, &p, 1000, 10), 10);
    struct gw_rl_decision d = take_at(&b, &p, 500);
    assert_false(d.allowed);
    assert_int_equal(b.last_ms, 1000); /* the bucket's clock does not go back */
    assert_int_equal(take_n(&b, &p, 0, 3), 0);
    /* 100 ms after the latest time seen: exactly one token, not six. */
    assert_int_equal(take_n(&b, &p, 1100, 10), 1);
}

static void rate_over_burst(void **state)
{
    (void)state;
    const struct gw_rl_policy p = {1000, 1000, 10}; /* a token per ms, burst 10 */
    struct gw_rl_bucket b;
    gw_rl_bucket_init(&b, &p, 0);
    assert_int_equal(take_n(&b, &p, 0, 20), 10);
    struct gw_rl_decision d = take_at(&b, &p, 0);
    assert_int_equal(d.retry_after_s, 1);
    assert_int_equal(d.reset_s, 1); /* 10 ms */
    assert_int_equal(take_n(&b, &p, 1, 5), 1);
    assert_int_equal(take_n(&b, &p, 100, 100), 10); /* capped at burst, not 99 */
}

static void policy_change_keeps_whole_tokens(void **state)
{
    (void)state;
    const struct gw_rl_policy a = {10, 1000, 10};
    const struct gw_rl_policy b_policy = {1, 60000, 3};
    struct gw_rl_bucket b;
    gw_rl_bucket_init(&b, &a, 0);
    assert_int_equal(take_n(&b, &a, 0, 5), 5);
    struct gw_rl_decision d = take_at(&b, &b_policy, 0); /* 5 whole tokens, capped at 3 */
    assert_true(d.allowed);
    assert_int_equal(d.remaining, 2);
    assert_int_equal(b.per_ms, 60000);
    d = take_at(&b, &a, 0); /* and back: 2 tokens */
    assert_int_equal(d.remaining, 1);
}

/* ---- memory store ---- */

static void memory_basic(void **state)
{
    (void)state;
    struct gw_rl_memory *m;
    struct ag_err err = {0};
    assert_int_equal(gw_rl_memory_new(0, &m, &err), 0);
    const struct gw_rl_policy p = {100, 1000, 100};
    struct gw_rl_decision d;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(gw_rl_memory_take(m, AG_STR("r|ip|203.0.113.9"), &p, 0, &d), 0);
        assert_true(d.allowed);
    }
    assert_int_equal(gw_rl_memory_take(m, AG_STR("r|ip|203.0.113.9"), &p, 0, &d), 0);
    assert_false(d.allowed);
    assert_int_equal(d.retry_after_s, 1);
    assert_int_equal(gw_rl_memory_take(m, AG_STR("r|ip|203.0.113.10"), &p, 0, &d), 0);
    assert_true(d.allowed);
    assert_int_equal(d.remaining, 99);
    assert_int_equal(gw_rl_memory_take(m, AG_STR("r|ip|203.0.113.9"), &p, 10, &d), 0);
    assert_true(d.allowed);
    assert_int_equal(gw_rl_memory_take(m, AG_STR_NULL, &p, 0, &d), 0); /* empty key is a key */
    assert_int_equal(d.remaining, 99);

    char key[GW_RL_KEY_MAX + 1];
    memset(key, 'k', sizeof key);
    assert_int_equal(gw_rl_memory_take(m, (struct ag_str){key, GW_RL_KEY_MAX}, &p, 0, &d), 0);
    d.allowed = false;
    assert_int_equal(gw_rl_memory_take(m, (struct ag_str){key, sizeof key}, &p, 0, &d), AG_EINVAL);
    assert_false(d.allowed); /* untouched */
    assert_int_equal(gw_rl_memory_take(m, AG_STR("k"), &(struct gw_rl_policy){0, 1, 1}, 0, &d),
                     AG_EINVAL);
    struct gw_rl_memory_stats st;
    gw_rl_memory_stats(m, &st);
    assert_int_equal(st.keys, 4);
    assert_int_equal(st.overflowed, 0);
    gw_rl_memory_free(m);

    assert_int_equal(gw_rl_memory_new(GW_RL_MEMORY_MAX_KEYS + 1, &m, &err), AG_ERANGE);
    gw_rl_memory_free(NULL);
}

enum { HAMMER_THREADS = 2 };

struct hammer {
    struct gw_rl_memory *m;
    struct gw_rl_policy policy;
    bool advance; /* false: always now 0; true: now goes 0..9999, 3 takes per ms */
    uint64_t allowed;
};

static void *hammer_thread(void *arg)
{
    struct hammer *h = arg;
    struct gw_rl_decision d;
    if (h->advance) {
        for (uint64_t t = 0; t < 10000; t++)
            for (int i = 0; i < 3; i++) {
                gw_rl_memory_take(h->m, AG_STR("route|ip|198.51.100.7"), &h->policy, t, &d);
                h->allowed += d.allowed;
            }
    } else {
        for (int i = 0; i < 50000; i++) {
            gw_rl_memory_take(h->m, AG_STR("route|ip|198.51.100.7"), &h->policy, 0, &d);
            h->allowed += d.allowed;
        }
    }
    return NULL;
}

static uint64_t hammer(bool advance, struct gw_rl_policy policy)
{
    struct gw_rl_memory *m;
    assert_int_equal(gw_rl_memory_new(0, &m, NULL), 0);
    struct hammer h[HAMMER_THREADS];
    pthread_t threads[HAMMER_THREADS];
    for (int i = 0; i < HAMMER_THREADS; i++) {
        h[i] = (struct hammer){.m = m, .policy = policy, .advance = advance};
        assert_int_equal(pthread_create(&threads[i], NULL, hammer_thread, &h[i]), 0);
    }
    uint64_t allowed = 0;
    for (int i = 0; i < HAMMER_THREADS; i++) {
        pthread_join(threads[i], NULL);
        allowed += h[i].allowed;
    }
    gw_rl_memory_free(m);
    return allowed;
}

static void memory_two_threads_one_key(void **state)
{
    (void)state;
    /* No time passes: exactly the burst gets through, however the threads interleave. */
    assert_int_equal(hammer(false, (struct gw_rl_policy){1, 1000, 1000}), 1000);
    /*
     * A token per ms over 9999 ms, demand 3 per ms per thread: every token made is taken. The
     * threads' clocks differ (one runs ahead), which refills nothing twice and loses nothing,
     * so the burst plus one token per ms get through.
     */
    uint64_t allowed = hammer(true, (struct gw_rl_policy){1, 1, 100});
    assert_true(allowed <= 100 + 9999);
    assert_true(allowed >= 100 + 9999 - 1); /* within one refill */
}

static void memory_full_table_never_evicts_live_buckets(void **state)
{
    (void)state;
    struct gw_rl_memory *m;
    assert_int_equal(gw_rl_memory_new(4, &m, NULL), 0); /* one shard of 4 */
    const struct gw_rl_policy p = {1, 1000, 2};
    struct gw_rl_decision d;
    static const char *const keys[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(gw_rl_memory_take(m, ag_str_from_cstr(keys[i]), &p, 0, &d), 0);
        assert_int_equal(d.remaining, 1);
    }
    /* Full of live buckets: new keys share the overflow bucket (burst 2). */
    assert_int_equal(gw_rl_memory_take(m, AG_STR("e"), &p, 0, &d), 0);
    assert_true(d.allowed);
    assert_int_equal(d.remaining, 1);
    assert_int_equal(gw_rl_memory_take(m, AG_STR("f"), &p, 0, &d), 0);
    assert_true(d.allowed);
    assert_int_equal(gw_rl_memory_take(m, AG_STR("g"), &p, 0, &d), 0);
    assert_false(d.allowed);
    assert_int_equal(gw_rl_memory_take(m, AG_STR("e"), &p, 0, &d), 0);
    assert_false(d.allowed);
    /* ... and no flood of new keys gave "a" a fresh bucket. */
    assert_int_equal(gw_rl_memory_take(m, AG_STR("a"), &p, 0, &d), 0);
    assert_true(d.allowed);
    assert_int_equal(d.remaining, 0);
    assert_int_equal(gw_rl_memory_take(m, AG_STR("a"), &p, 0, &d), 0);
    assert_false(d.allowed);
    struct gw_rl_memory_stats st;
    gw_rl_memory_stats(m, &st);
    assert_int_equal(st.keys, 4);
    assert_int_equal(st.overflowed, 4);
    assert_int_equal(st.forgotten, 0);

    /* A second later b, c, d are full again (a is not): a new key reclaims them. */
    assert_int_equal(gw_rl_memory_take(m, AG_STR("h"), &p, 1000, &d), 0);
    assert_true(d.allowed);
    assert_int_equal(d.remaining, 1);
    gw_rl_memory_stats(m, &st);
    assert_int_equal(st.keys, 2);
    assert_int_equal(st.forgotten, 3);
    assert_int_equal(st.overflowed, 4);
    assert_int_equal(gw_rl_memory_take(m, AG_STR("a"), &p, 1000, &d), 0);
    assert_true(d.allowed);
    assert_int_equal(d.remaining, 0); /* its own bucket: 1 token refilled, taken */
    gw_rl_memory_free(m);
}

static void memory_flood_of_keys_is_bounded(void **state)
{
    (void)state;
    struct gw_rl_memory *m;
    assert_int_equal(gw_rl_memory_new(0, &m, NULL), 0);
    const struct gw_rl_policy p = {100, 1000, 100};
    struct gw_rl_decision d;
    char key[64];
    enum { FLOOD = 2 * GW_RL_MEMORY_DEFAULT_KEYS };
    for (int i = 0; i < FLOOD; i++) {
        int n = snprintf(key, sizeof key, "route|ip|10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        assert_int_equal(gw_rl_memory_take(m, (struct ag_str){key, (size_t)n}, &p, 0, &d), 0);
    }
    struct gw_rl_memory_stats st;
    gw_rl_memory_stats(m, &st);
    /* 64 shards of 1562 or 1563; each gets ~3125 of the keys, so every shard fills. */
    assert_int_equal(st.keys, GW_RL_MEMORY_DEFAULT_KEYS);
    assert_int_equal(st.keys + st.overflowed, FLOOD);
    assert_int_equal(st.forgotten, 0);

    /* Once the flood's buckets are full again, new keys are tracked in their place. */
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof key, "route|ip|192.0.2.%d|%d", i & 255, i);
        assert_int_equal(gw_rl_memory_take(m, (struct ag_str){key, (size_t)n}, &p, 5000, &d), 0);
        assert_true(d.allowed);
        assert_int_equal(d.remaining, 99);
    }
    struct gw_rl_memory_stats after;
    gw_rl_memory_stats(m, &after);
    assert_int_equal(after.overflowed, st.overflowed);
    assert_true(after.keys <= GW_RL_MEMORY_DEFAULT_KEYS);
    assert_true(after.forgotten >= 1000);
    gw_rl_memory_free(m);
}

/* ---- either store ---- */

static void never_called(void *ctx, const struct gw_rl_decision *d)
{
    (void)ctx;
    (void)d;
    fail_msg("a memory store decision must not use the callback");
}

static void store_memory_decides_at_once(void **state)
{
    (void)state;
    struct ag_loop *loop;
    struct gw_rl_memory *m;
    assert_int_equal(ag_loop_new(&loop, NULL), 0);
    assert_int_equal(gw_rl_memory_new(16, &m, NULL), 0);
    struct gw_rl_store s;
    gw_rl_store_init_memory(&s, m, loop);
    const struct gw_rl_policy p = {1, 1000, 2};
    struct gw_rl_decision d;
    struct gw_rl_pending *pending = NULL;
    assert_int_equal(gw_rl_store_take(&s, AG_STR("k"), &p, &d, never_called, NULL, &pending), 0);
    assert_true(d.allowed);
    assert_int_equal(d.remaining, 1);
    assert_null(pending);
    assert_int_equal(gw_rl_store_take(&s, AG_STR("k"), &(struct gw_rl_policy){1, 0, 1}, &d,
                                      never_called, NULL, &pending),
                     AG_EINVAL);
    gw_rl_memory_free(m);
    ag_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(policy_check_bounds),
        cmocka_unit_test(burst_then_refused),
        cmocka_unit_test(uninitialised_bucket_starts_full),
        cmocka_unit_test(refill_exact_boundaries),
        cmocka_unit_test(fractional_rate_does_not_drift),
        cmocka_unit_test(retry_after_and_reset_rounding),
        cmocka_unit_test(huge_gaps_fill_without_overflow),
        cmocka_unit_test(clock_going_backwards_refills_nothing),
        cmocka_unit_test(rate_over_burst),
        cmocka_unit_test(policy_change_keeps_whole_tokens),
        cmocka_unit_test(memory_basic),
        cmocka_unit_test(memory_two_threads_one_key),
        cmocka_unit_test(memory_full_table_never_evicts_live_buckets),
        cmocka_unit_test(memory_flood_of_keys_is_bounded),
        cmocka_unit_test(store_memory_decides_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
