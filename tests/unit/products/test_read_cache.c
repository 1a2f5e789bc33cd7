/* Unit tests for src/services/shop/products/read_cache.c: sets, eviction, generations, budget,
 * expiry and refresh ahead. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The module is compiled into the test: the products service is an executable, not a library. */
#include "services/shop/products/read_cache.c"

static bool has(struct read_cache *c, const char *key, const char *body)
{
    struct ag_buf out;
    ag_buf_init(&out, 1 << 20);
    bool hit = read_cache_get(c, ag_str_from_cstr(key), &out) != READ_CACHE_MISS;
    bool same = hit && out.len == strlen(body) && memcmp(out.data + out.off, body, out.len) == 0;
    ag_buf_release(&out);
    if (hit && !same)
        fail_msg("%s: another body", key);
    return hit;
}

static void put(struct read_cache *c, const char *key, const char *body)
{
    read_cache_put(c, ag_str_from_cstr(key), read_cache_generation(c), body, strlen(body));
}

/* Keys k0.. whose hashes fall in one set: n of them into keys[n][16]. */
static void same_set_keys(char keys[][16], size_t n)
{
    size_t found = 0, set = 0;
    for (unsigned i = 0; found < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%u", i);
        size_t s = set_of(ag_str_from_cstr(k));
        if (found == 0)
            set = s;
        if (s == set)
            memcpy(keys[found++], k, sizeof k);
    }
}

static void a_set_holds_four_keys(void **state)
{
    (void)state;
    struct read_cache *c = NULL;
    char keys[5][16];
    assert_int_equal(read_cache_new(1 << 20, 60000, &c), 0);
    same_set_keys(keys, 5);
    for (size_t i = 0; i < 4; i++)
        put(c, keys[i], keys[i]);
    for (size_t i = 0; i < 4; i++) /* a direct-mapped table would hold one of them */
        assert_true(has(c, keys[i], keys[i]));
    put(c, keys[4], keys[4]); /* a fifth: the entry closest to expiry (the first) goes */
    assert_true(has(c, keys[4], keys[4]));
    assert_false(has(c, keys[0], keys[0]));
    for (size_t i = 1; i < 4; i++)
        assert_true(has(c, keys[i], keys[i]));
    put(c, keys[2], "new"); /* a key put again replaces its own entry */
    assert_true(has(c, keys[2], "new"));
    assert_true(has(c, keys[1], keys[1]) && has(c, keys[3], keys[3]) && has(c, keys[4], keys[4]));
    read_cache_free(c);
}

static void many_keys_all_kept(void **state)
{
    (void)state;
    struct read_cache *c = NULL;
    char key[32];
    size_t hits = 0;
    assert_int_equal(read_cache_new(64u << 20, 60000, &c), 0);
    for (unsigned i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "p\ndefault\n%u", i);
        put(c, key, key);
    }
    for (unsigned i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "p\ndefault\n%u", i);
        hits += has(c, key, key);
    }
    assert_int_equal(hits, 2000); /* 2,000 keys in 4,096 sets of 4: none overflows */
    read_cache_free(c);
}

static void generations_and_budget(void **state)
{
    (void)state;
    struct read_cache *c = NULL;
    assert_int_equal(read_cache_new(64, 60000, &c), 0);
    uint64_t before = read_cache_generation(c);
    put(c, "a", "body a");
    assert_true(has(c, "a", "body a"));
    read_cache_invalidate(c); /* a commit: nothing older is served */
    assert_false(has(c, "a", "body a"));
    /* read before the commit, stored after it: refused */
    read_cache_put(c, ag_str_from_cstr("b"), before, "old", 3);
    assert_false(has(c, "b", "old"));
    char big[80];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    put(c, "big", big); /* over the 64-byte budget: not kept */
    assert_false(has(c, "big", big));
    read_cache_free(c);
    assert_int_equal(read_cache_new(0, 60000, &c), 0); /* no budget: no cache */
    assert_null(c);
    put(c, "a", "b");
    assert_false(has(c, "a", "b"));
}

static void expiry(void **state)
{
    (void)state;
    struct read_cache *c = NULL;
    assert_int_equal(read_cache_new(1 << 20, 1, &c), 0);
    put(c, "a", "b");
    struct timespec pause = {0, 5 * 1000 * 1000};
    nanosleep(&pause, NULL); /* a TTL of 1 ms has passed */
    assert_false(has(c, "a", "b"));
    read_cache_free(c);
}

static int64_t fake_now;
static int64_t fake_clock(void)
{
    return fake_now;
}

/* What read_cache_get says of key (its body, when answered, must be body). */
static enum read_cache_result get(struct read_cache *c, const char *key, const char *body)
{
    struct ag_buf out;
    ag_buf_init(&out, 1 << 20);
    enum read_cache_result r = read_cache_get(c, ag_str_from_cstr(key), &out);
    if (r != READ_CACHE_MISS &&
        (out.len != strlen(body) || memcmp(out.data + out.off, body, out.len)))
        fail_msg("%s: another body", key);
    if (r == READ_CACHE_MISS && out.len != 0)
        fail_msg("%s: a miss appended bytes", key);
    ag_buf_release(&out);
    return r;
}

static struct ag_metrics *registry;

/* The value of test_refreshes_total, as rendered. */
static int64_t counted(void)
{
    struct ag_buf text;
    ag_buf_init(&text, 1 << 16);
    int64_t n = 0;
    assert_int_equal(ag_metrics_render(registry, &text), 0);
    assert_int_equal(ag_buf_append(&text, "", 1), 0); /* a C string for strstr */
    const char *line = strstr(ag_buf_str(&text).p, "\ntest_refreshes_total "); /* not # HELP */
    assert_non_null(line);
    n = atoll(line + strlen("\ntest_refreshes_total "));
    ag_buf_release(&text);
    return n;
}

static void refresh_ahead(void **state)
{
    (void)state;
    struct read_cache *c = NULL;
    struct ag_metric *m = NULL;
    struct ag_series *refreshes = NULL;
    now_ms = fake_clock;
    fake_now = 1000;
    assert_int_equal(read_cache_new(1 << 20, 400, &c), 0);
    assert_int_equal(ag_metrics_new(&registry), 0);
    assert_int_equal(
        ag_metrics_counter(registry, "test_refreshes_total", "t", NULL, 0, 0, &m, NULL), 0);
    assert_int_equal(ag_metric_series(m, NULL, &refreshes), 0);
    read_cache_count(c, NULL, refreshes);
    put(c, "a", "b");
    fake_now = 1199; /* before half its life: every reader is answered */
    assert_int_equal(get(c, "a", "b"), READ_CACHE_HIT);
    fake_now = 1200; /* the first reader from then on is answered and asked to refresh it */
    assert_int_equal(get(c, "a", "b"), READ_CACHE_REFRESH);
    assert_int_equal(get(c, "a", "b"), READ_CACHE_HIT);  /* the others: answered, nothing asked */
    read_cache_refresh_cancel(c, ag_str_from_cstr("a")); /* it could not start: the next is asked */
    assert_int_equal(get(c, "a", "b"), READ_CACHE_REFRESH);
    assert_int_equal(get(c, "a", "b"), READ_CACHE_HIT);
    assert_int_equal(counted(), 0);
    fake_now = 1300;
    put(c, "a", "c"); /* the refresh: a new life, from 1300 to 1700 */
    assert_int_equal(counted(), 1);
    assert_int_equal(get(c, "a", "c"), READ_CACHE_HIT);
    fake_now = 1500;
    assert_int_equal(get(c, "a", "c"), READ_CACHE_REFRESH);
    fake_now = 1700; /* never refreshed: gone at its expiry, for every reader */
    assert_int_equal(get(c, "a", "c"), READ_CACHE_MISS);
    assert_int_equal(get(c, "a", "c"), READ_CACHE_MISS);
    put(c, "a", "d"); /* stored after a miss: not a refresh */
    assert_int_equal(counted(), 1);
    read_cache_refresh_cancel(c, ag_str_from_cstr("nothing")); /* a key not held: nothing */
    read_cache_refresh_cancel(NULL, ag_str_from_cstr("a"));
    read_cache_free(c);
    ag_metrics_free(registry);
    registry = NULL;
    now_ms = monotonic_ms;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_set_holds_four_keys),  cmocka_unit_test(many_keys_all_kept),
        cmocka_unit_test(generations_and_budget), cmocka_unit_test(expiry),
        cmocka_unit_test(refresh_ahead),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
