/* Unit tests for src/core/jwt_cache.c: hits, validity, eviction, and a model-checked workout. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jwt_cache.h"
#include "core/banned.h"

enum { NOW = 1700000000 };

static struct ag_jwt_claims claims_for(const char *sub, int64_t exp)
{
    struct ag_jwt_claims c;
    memset(&c, 0, sizeof c);
    snprintf(c.sub, sizeof c.sub, "%s", sub);
    snprintf(c.tenant, sizeof c.tenant, "tenant-%s", sub);
    snprintf(c.roles, sizeof c.roles, "a,b");
    c.role_count = 2;
    snprintf(c.jti, sizeof c.jti, "jti");
    snprintf(c.scope, sizeof c.scope, "read write");
    snprintf(c.iss, sizeof c.iss, "https://issuer.test");
    c.exp = exp;
    c.nbf = NOW - 5;
    c.iat = NOW - 10;
    return c;
}

static void test_hit_returns_the_claims(void **state)
{
    (void)state;
    struct ag_jwt_cache *cache;
    assert_int_equal(ag_jwt_cache_new(0, 0, &cache, NULL), 0);
    struct ag_jwt_claims in = claims_for("alice", NOW + 100), out;
    size_t which = 0;
    assert_false(ag_jwt_cache_get(cache, AG_STR("aaa.bbb.ccc"), NOW, &out, &which));
    assert_int_equal(ag_jwt_cache_put(cache, AG_STR("aaa.bbb.ccc"), &in, 3, NOW), 0);
    memset(&out, 0x55, sizeof out);
    assert_true(ag_jwt_cache_get(cache, AG_STR("aaa.bbb.ccc"), NOW, &out, &which));
    assert_memory_equal(&out, &in, sizeof in); /* every byte, padding of the strings included */
    assert_int_equal(which, 3);
    assert_true(ag_jwt_cache_get(cache, AG_STR("aaa.bbb.ccc"), NOW, NULL, NULL));
    /* Only the exact bytes hit: a prefix, an extension, one byte changed. */
    assert_false(ag_jwt_cache_get(cache, AG_STR("aaa.bbb.cc"), NOW, &out, &which));
    assert_false(ag_jwt_cache_get(cache, AG_STR("aaa.bbb.cccd"), NOW, &out, &which));
    assert_false(ag_jwt_cache_get(cache, AG_STR("aaa.bbb.ccd"), NOW, &out, &which));
    assert_false(ag_jwt_cache_get(cache, AG_STR_NULL, NOW, &out, &which));
    /* A second put of the same token replaces the entry. */
    struct ag_jwt_claims again = claims_for("alice2", NOW + 50);
    assert_int_equal(ag_jwt_cache_put(cache, AG_STR("aaa.bbb.ccc"), &again, 4, NOW), 0);
    assert_true(ag_jwt_cache_get(cache, AG_STR("aaa.bbb.ccc"), NOW, &out, &which));
    assert_string_equal(out.sub, "alice2");
    assert_int_equal(which, 4);
    struct ag_jwt_cache_stats st;
    ag_jwt_cache_stats(cache, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.hits, 3);
    assert_int_equal(st.misses, 5);
    ag_jwt_cache_clear(cache);
    assert_false(ag_jwt_cache_get(cache, AG_STR("aaa.bbb.ccc"), NOW, &out, &which));
    ag_jwt_cache_free(cache);
    ag_jwt_cache_free(NULL);
}

static void test_validity_until_exp_and_max_age(void **state)
{
    (void)state;
    struct ag_jwt_cache *cache;
    assert_int_equal(ag_jwt_cache_new(8, 30, &cache, NULL), 0);
    struct ag_jwt_claims c = claims_for("bob", NOW + 100);
    assert_int_equal(ag_jwt_cache_put(cache, AG_STR("t1"), &c, 0, NOW), 0);
    assert_true(ag_jwt_cache_get(cache, AG_STR("t1"), NOW + 30, NULL, NULL));
    assert_false(ag_jwt_cache_get(cache, AG_STR("t1"), NOW + 31, NULL, NULL)); /* max age */
    assert_false(ag_jwt_cache_get(cache, AG_STR("t1"), NOW, NULL, NULL)); /* dropped when seen */
    c.exp = NOW + 10;
    assert_int_equal(ag_jwt_cache_put(cache, AG_STR("t2"), &c, 0, NOW), 0);
    assert_true(ag_jwt_cache_get(cache, AG_STR("t2"), NOW + 10, NULL, NULL));
    assert_false(ag_jwt_cache_get(cache, AG_STR("t2"), NOW + 11, NULL, NULL)); /* exp */
    c.exp = NOW - 1; /* verified inside the skew: not worth keeping */
    assert_int_equal(ag_jwt_cache_put(cache, AG_STR("t3"), &c, 0, NOW), 0);
    assert_false(ag_jwt_cache_get(cache, AG_STR("t3"), NOW, NULL, NULL));
    struct ag_jwt_cache_stats st;
    ag_jwt_cache_stats(cache, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.expired, 2);
    char *huge = calloc(1, AG_JWT_MAX_TOKEN_LIMIT + 1);
    assert_non_null(huge);
    c.exp = NOW + 10;
    assert_int_equal(
        ag_jwt_cache_put(cache, (struct ag_str){huge, AG_JWT_MAX_TOKEN_LIMIT + 1}, &c, 0, NOW),
        AG_ERANGE);
    free(huge);
    ag_jwt_cache_free(cache);
    assert_int_equal(ag_jwt_cache_new(AG_JWT_CACHE_MAX_ENTRIES + 1, 0, &cache, NULL), AG_EINVAL);
}

static void test_full_cache_drops_expired_first(void **state)
{
    (void)state;
    struct ag_jwt_cache *cache;
    assert_int_equal(ag_jwt_cache_new(4, 0, &cache, NULL), 0);
    char tok[32];
    for (int i = 0; i < 4; i++) {
        struct ag_jwt_claims c = claims_for("u", i < 2 ? NOW + 5 : NOW + 1000);
        snprintf(tok, sizeof tok, "token-%d", i);
        assert_int_equal(ag_jwt_cache_put(cache, ag_str_from_cstr(tok), &c, 0, NOW), 0);
    }
    struct ag_jwt_claims c = claims_for("u", NOW + 1000);
    assert_int_equal(ag_jwt_cache_put(cache, AG_STR("token-4"), &c, 0, NOW + 10), 0);
    struct ag_jwt_cache_stats st;
    ag_jwt_cache_stats(cache, &st);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.expired, 2);
    assert_int_equal(st.evicted, 0);
    for (int i = 2; i <= 4; i++) {
        snprintf(tok, sizeof tok, "token-%d", i);
        assert_true(ag_jwt_cache_get(cache, ag_str_from_cstr(tok), NOW + 10, NULL, NULL));
    }
    /* Full of valid entries: one goes at random, the new one is in. */
    assert_int_equal(ag_jwt_cache_put(cache, AG_STR("token-5"), &c, 0, NOW + 10), 0);
    assert_int_equal(ag_jwt_cache_put(cache, AG_STR("token-6"), &c, 0, NOW + 10), 0);
    ag_jwt_cache_stats(cache, &st);
    assert_int_equal(st.entries, 4);
    assert_int_equal(st.evicted, 1);
    assert_true(ag_jwt_cache_get(cache, AG_STR("token-6"), NOW + 10, NULL, NULL));
    ag_jwt_cache_free(cache);
}

/*
 * Random puts, gets and expiries against a plain array model: every hit must be a token put
 * and still valid, with its own claims; entries never pass the bound. Exercises the
 * backward-shift deletion on a small table where clusters wrap around.
 */
static void test_model_workout(void **state)
{
    (void)state;
    enum { TOKENS = 200, MAX = 32, ROUNDS = 20000 };
    struct ag_jwt_cache *cache;
    assert_int_equal(ag_jwt_cache_new(MAX, 0, &cache, NULL), 0);
    int64_t exp_of[TOKENS] = {0};
    bool put[TOKENS] = {false};
    uint64_t rng = 88172645463325252ull;
    int64_t now = NOW;
    for (int round = 0; round < ROUNDS; round++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        int t = (int)(rng % TOKENS);
        char tok[48];
        snprintf(tok, sizeof tok, "hdr.payload-%d.sig", t * 7919);
        if ((rng >> 20) % 3 == 0) {
            char sub[32];
            snprintf(sub, sizeof sub, "sub-%d", t);
            struct ag_jwt_claims c = claims_for(sub, now + (int64_t)((rng >> 32) % 50));
            assert_int_equal(ag_jwt_cache_put(cache, ag_str_from_cstr(tok), &c, (size_t)t, now), 0);
            exp_of[t] = c.exp;
            put[t] = true;
        } else {
            struct ag_jwt_claims out;
            size_t which;
            if (ag_jwt_cache_get(cache, ag_str_from_cstr(tok), now, &out, &which)) {
                char sub[32];
                snprintf(sub, sizeof sub, "sub-%d", t);
                assert_true(put[t]);
                assert_true(now <= exp_of[t]);
                assert_string_equal(out.sub, sub);
                assert_int_equal(which, t);
                assert_int_equal(out.exp, exp_of[t]);
            }
        }
        if (round % 97 == 0)
            now++;
        struct ag_jwt_cache_stats st;
        ag_jwt_cache_stats(cache, &st);
        assert_true(st.entries <= MAX);
        if (round % 1000 == 999) {
            /* Every entry is reachable: probing all tokens (which drops expired ones) finds
             * exactly as many as the cache holds. A deletion that broke a probe chain would
             * leave entries counted but lost. */
            size_t found = 0;
            for (int u = 0; u < TOKENS; u++) {
                snprintf(tok, sizeof tok, "hdr.payload-%d.sig", u * 7919);
                found += ag_jwt_cache_get(cache, ag_str_from_cstr(tok), now, NULL, NULL);
            }
            ag_jwt_cache_stats(cache, &st);
            assert_int_equal(found, st.entries);
        }
    }
    /* A fresh put is always found right after. */
    struct ag_jwt_claims c = claims_for("last", now + 100);
    assert_int_equal(ag_jwt_cache_put(cache, AG_STR("the.last.one"), &c, 1, now), 0);
    assert_true(ag_jwt_cache_get(cache, AG_STR("the.last.one"), now, NULL, NULL));
    struct ag_jwt_cache_stats st;
    ag_jwt_cache_stats(cache, &st);
    assert_true(st.hits > 1000);
    assert_true(st.evicted > 0 && st.expired > 0);
    ag_jwt_cache_free(cache);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_returns_the_claims),
        cmocka_unit_test(test_validity_until_exp_and_max_age),
        cmocka_unit_test(test_full_cache_drops_expired_first),
        cmocka_unit_test(test_model_workout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
