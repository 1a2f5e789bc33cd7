/* Unit tests for src/kit/bus_topic.c: AMQP topic patterns over event types. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "kit/bus.h"

struct topic_case {
    const char *pattern, *type;
    bool match;
};

static void topic_table(void **state)
{
    (void)state;
    static const struct topic_case cases[] = {
        {"auth.user.created", "auth.user.created", true},
        {"auth.user.created", "auth.user.updated", false},
        {"auth.user.created", "auth.user", false},
        {"auth.user", "auth.user.created", false},
        {"auth.*.created", "auth.user.created", true},
        {"auth.*.created", "auth.role.created", true},
        {"auth.*.created", "auth.user.updated", false},
        {"*.*.*", "products.product.created", true},
        {"*.*", "products.product.created", false},
        {"*", "products", true},
        {"*", "", true},
        {"products.#", "products.product.created", true},
        {"products.#", "products", true}, /* '#' may take zero words */
        {"products.#", "productsx.product.created", false},
        {"#", "products.inventory.low", true},
        {"#", "", true},
        {"#.created", "auth.user.created", true},
        {"#.created", "created", true},
        {"#.created", "auth.user.created.not", false},
        {"auth.#.created", "auth.created", true},
        {"auth.#.created", "auth.a.b.c.created", true},
        {"auth.#.created", "auth.a.b.c.updated", false},
        {"#.#.#.#.#.#.#.#.#.#.#.#.#.#.x", "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.y", false},
        {"#.*", "a", true},
        {"#.*", "", true},
        {"*.#.*", "a", false},
        {"*.#.*", "a.b", true},
        {"auth.user.*", "auth.user.", true}, /* an empty word is still a word */
        {"Auth.user.created", "auth.user.created", false},
        {"auth.user.created", "auth.user.createdx", false},
        {"auth.user.created", "auth.user.create", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool got = kit_topic_match(cases[i].pattern, cases[i].type);
        if (got != cases[i].match)
            fail_msg("pattern \"%s\" type \"%s\": expected %d, got %d", cases[i].pattern,
                     cases[i].type, cases[i].match, got);
    }
    assert_false(kit_topic_match(NULL, "a.b.c"));
    assert_false(kit_topic_match("#", NULL));
}

static void topic_too_many_words(void **state)
{
    (void)state;
    char type[400];
    size_t n = 0;
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(type + n, sizeof type - n, i ? ".a" : "a");
    assert_false(kit_topic_match("#", type)); /* over the word limit: never matches */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(topic_table),
        cmocka_unit_test(topic_too_many_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
