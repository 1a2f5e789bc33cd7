/* Unit tests for src/services/shop/products/context.c: ISO 4217 codes and URL slugs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

/* The module is compiled into the test: the products service is an executable, not a library. */
#include "services/shop/products/context.c"

static void currency_codes(void **state)
{
    (void)state;
    const char *valid[] = {"EUR", "USD", "JPY", "KWD", "CHF", "GBP", "AED", "ZWG", "XOF"};
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        assert_true(catalog_currency_valid(valid[i]));
    const char *invalid[] = {"",    "EU",  "EURO", "eur", "Eur",  "XXX",
                             "XAU", "ABC", "DEM",  "E R", "EUR\n"};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        if (catalog_currency_valid(invalid[i]))
            fail_msg("\"%s\" accepted as a currency", invalid[i]);
    }
    assert_false(catalog_currency_valid(NULL));
}

static void currency_table_sorted(void **state)
{
    (void)state;
    /* bsearch needs the table in strcmp order; a code out of place would be unfindable */
    for (size_t i = 1; i < sizeof currencies / sizeof currencies[0]; i++) {
        if (strcmp(currencies[i - 1], currencies[i]) >= 0)
            fail_msg("%s before %s", currencies[i - 1], currencies[i]);
        assert_true(catalog_currency_valid(currencies[i]));
    }
}

static void slugify_cases(void **state)
{
    (void)state;
    static const struct {
        const char *name, *slug;
    } cases[] = {
        {"Hello World", "hello-world"},
        {"  --Hello,   World!!  ", "hello-world"},
        {"Crème Brûlée", "creme-brulee"},
        {"Straße", "strasse"},
        {"Ærø Øl", "aero-ol"},
        {"Þing", "thing"},
        {"Size 10 × 20", "size-10-20"},
        {"日本語 tea", "tea"},
        {"USB-C 3.1", "usb-c-3-1"},
        {"a\xff\xfe"
         "b",
         "a-b"},
        {"ÀÉÎÕÜÇÑÝ", "aeioucny"},
    };
    char out[121];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_true(catalog_slugify(cases[i].name, out));
        assert_string_equal(out, cases[i].slug);
        assert_true(catalog_slug_valid(out));
    }
}

static void slugify_nothing_left(void **state)
{
    (void)state;
    char out[121] = "x";
    assert_false(catalog_slugify("", out));
    assert_string_equal(out, "");
    assert_false(catalog_slugify("!!! ---", out));
    assert_false(catalog_slugify("日本語", out));
    assert_false(catalog_slugify("×÷", out));
    assert_false(catalog_slugify(NULL, out));
}

static void slugify_caps_at_120(void **state)
{
    (void)state;
    char name[400], out[121];
    memset(name, 'a', 300);
    name[300] = '\0';
    assert_true(catalog_slugify(name, out));
    assert_int_equal(strlen(out), 120);
    /* words: the cut never leaves a trailing '-' */
    for (size_t i = 0; i < 396; i += 4)
        memcpy(name + i, "abc ", 4);
    name[396] = '\0';
    assert_true(catalog_slugify(name, out));
    assert_true(strlen(out) <= 120);
    assert_true(out[strlen(out) - 1] != '-');
    assert_true(catalog_slug_valid(out));
    /* a two-letter transliteration that does not fit is left out whole */
    memset(name, 'a', 119);
    memcpy(name + 119, "æ", 3);
    name[122] = '\0';
    assert_true(catalog_slugify(name, out));
    assert_int_equal(strlen(out), 119);
}

static void slug_valid_cases(void **state)
{
    (void)state;
    const char *good[] = {"a", "abc", "a-b", "a1-2b-c3", "0"};
    const char *bad[] = {"", "-a", "a-", "a--b", "A", "a b", "a_b", "é", "a.b"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(catalog_slug_valid(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (catalog_slug_valid(bad[i]))
            fail_msg("\"%s\" accepted as a slug", bad[i]);
    }
    char long_slug[122];
    memset(long_slug, 'a', 121);
    long_slug[121] = '\0';
    assert_false(catalog_slug_valid(long_slug));
    long_slug[120] = '\0';
    assert_true(catalog_slug_valid(long_slug));
    assert_false(catalog_slug_valid(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(currency_codes),      cmocka_unit_test(currency_table_sorted),
        cmocka_unit_test(slugify_cases),       cmocka_unit_test(slugify_nothing_left),
        cmocka_unit_test(slugify_caps_at_120), cmocka_unit_test(slug_valid_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
