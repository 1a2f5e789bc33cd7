/* Unit tests for src/kit/kit_router.c: path checks, percent-decoding, template matching. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kit/kit_router.h"

static int h_dummy(struct kit_req *req)
{
    (void)req;
    return 0;
}

static const struct kit_route routes[] = {
    {"GET", "/users/me", h_dummy, KIT_AUTHENTICATED, NULL},
    {"GET", "/users/{id}", h_dummy, KIT_PUBLIC, NULL},
    {"DELETE", "/users/{id}", h_dummy, KIT_ROLE("admin"), NULL},
    {"PATCH", "/users/{id}", h_dummy, KIT_ROLE("admin"), NULL},
    {"GET", "/users", h_dummy, KIT_PUBLIC, NULL},
    {"POST", "/users", h_dummy, KIT_PUBLIC, NULL},
    {"DELETE", "/users/{id}/roles/{role}", h_dummy, KIT_ROLE("admin"), NULL},
    {"GET", "/{a}/x", h_dummy, KIT_PUBLIC, NULL},
    {"GET", "/y/{b}", h_dummy, KIT_PUBLIC, NULL},
    {"GET", "/", h_dummy, KIT_PUBLIC, NULL},
};

static struct kit_router *make_router(void)
{
    struct kit_router *r = NULL;
    assert_int_equal(kit_router_new(&r), 0);
    struct ag_err err = {0};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        int rc = kit_router_add(r, &routes[i], &err);
        if (rc != 0)
            fail_msg("route %zu: %s", i, err.msg);
    }
    return r;
}

static int match(struct kit_router *r, const char *method, const char *path, struct kit_match *m)
{
    return kit_router_match(r, ag_str_from_cstr(method), ag_str_from_cstr(path), m);
}

static void literal_beats_param(void **state)
{
    (void)state;
    struct kit_router *r = make_router();
    struct kit_match m;
    assert_int_equal(match(r, "GET", "/users/me", &m), 200);
    assert_ptr_equal(m.route, &routes[0]);
    assert_int_equal(m.param_count, 0);
    assert_int_equal(match(r, "GET", "/users/42", &m), 200);
    assert_ptr_equal(m.route, &routes[1]);
    assert_int_equal(m.param_count, 1);
    assert_int_equal(m.params[0].name.len, 2);
    assert_memory_equal(m.params[0].name.p, "id", 2);
    assert_int_equal(m.params[0].raw.len, 2);
    assert_memory_equal(m.params[0].raw.p, "42", 2);
    /* DELETE /users/me has no literal route: the {id} route takes it */
    assert_int_equal(match(r, "DELETE", "/users/me", &m), 200);
    assert_ptr_equal(m.route, &routes[2]);
    /* the first depth where templates differ decides: /y/x matches /{a}/x and /y/{b} */
    assert_int_equal(match(r, "GET", "/y/x", &m), 200);
    assert_ptr_equal(m.route, &routes[8]);
    assert_int_equal(match(r, "GET", "/", &m), 200);
    assert_ptr_equal(m.route, &routes[9]);
    kit_router_free(r);
}

static void not_found_and_method(void **state)
{
    (void)state;
    struct kit_router *r = make_router();
    struct kit_match m;
    assert_int_equal(match(r, "GET", "/nothing", &m), 404);
    assert_int_equal(match(r, "GET", "/users/1/2", &m), 404);
    assert_int_equal(match(r, "PUT", "/users", &m), 405);
    assert_string_equal(m.allow, "GET, HEAD, POST");
    assert_int_equal(match(r, "POST", "/users/42", &m), 405);
    assert_string_equal(m.allow, "GET, HEAD, PATCH, DELETE");
    assert_int_equal(match(r, "OPTIONS", "/users", &m), 405);
    assert_int_equal(match(r, "GET", "/users/1/roles/admin", &m), 405);
    assert_string_equal(m.allow, "DELETE");
    kit_router_free(r);
}

static void head_is_get(void **state)
{
    (void)state;
    struct kit_router *r = make_router();
    struct kit_match m;
    assert_int_equal(match(r, "HEAD", "/users", &m), 200);
    assert_ptr_equal(m.route, &routes[4]);
    assert_int_equal(match(r, "HEAD", "/users/1/roles/x", &m), 405);
    kit_router_free(r);
}

static void trailing_slash(void **state)
{
    (void)state;
    struct kit_router *r = make_router();
    struct kit_match m;
    const char *why = NULL;
    assert_int_equal(kit_path_check(AG_STR("/users/"), &why), 0);
    assert_int_equal(match(r, "GET", "/users/", &m), 404);
    assert_int_equal(match(r, "GET", "/users/me/", &m), 404);
    kit_router_free(r);
}

static void params_decoding(void **state)
{
    (void)state;
    struct kit_router *r = make_router();
    struct kit_match m;
    assert_int_equal(match(r, "DELETE", "/users/a%20b/roles/r%2Bx", &m), 200);
    assert_int_equal(m.param_count, 2);
    char out[32];
    assert_int_equal(kit_pct_decode(m.params[0].raw, false, out, sizeof out), 3);
    assert_string_equal(out, "a b");
    assert_int_equal(kit_pct_decode(m.params[1].raw, false, out, sizeof out), 3);
    assert_string_equal(out, "r+x");
    /* '+' is a space in queries only */
    assert_int_equal(kit_pct_decode(AG_STR("a+b"), true, out, sizeof out), 3);
    assert_string_equal(out, "a b");
    assert_int_equal(kit_pct_decode(AG_STR("a+b"), false, out, sizeof out), 3);
    assert_string_equal(out, "a+b");
    assert_int_equal(kit_pct_decode(AG_STR("%e2%82%ac"), false, out, sizeof out), 3);
    assert_string_equal(out, "\xe2\x82\xac");
    assert_int_equal(kit_pct_decode(AG_STR("%zz"), false, out, sizeof out), AG_EINVAL);
    assert_int_equal(kit_pct_decode(AG_STR("%4"), false, out, sizeof out), AG_EINVAL);
    assert_int_equal(kit_pct_decode(AG_STR("%"), false, out, sizeof out), AG_EINVAL);
    assert_int_equal(kit_pct_decode(AG_STR("a%00b"), false, out, sizeof out), AG_EINVAL);
    assert_int_equal(kit_pct_decode(AG_STR("abcd"), false, out, 4), AG_ERANGE);
    assert_int_equal(kit_pct_decode(AG_STR("abc"), false, out, 4), 3);
    kit_router_free(r);
}

static void bad_paths(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",        "users",  "//",    "/a//b", "/..", "/a/../b", "/a/./b", "/a/.",   "/%2e%2e/x",
        "/%2E./x", "/a/%2e", "/a%zz", "/a%4",  "/a%", "/a%00b",  "/a\x01", "/a\x7f",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        int rc = kit_path_check(ag_str_from_cstr(bad[i]), &why);
        if (rc != AG_EINVAL || !why)
            fail_msg("path \"%s\": got %d, want %d", bad[i], rc, AG_EINVAL);
    }
    struct ag_str with_nul = {"/a\0b", 4};
    assert_int_equal(kit_path_check(with_nul, NULL), AG_EINVAL);
    static const char *const good[] = {"/", "/a", "/a/b", "/a/b/", "/a.b", "/...", "/a%20b", "/.x"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        const char *why = NULL;
        int rc = kit_path_check(ag_str_from_cstr(good[i]), &why);
        if (rc != 0)
            fail_msg("path \"%s\": got %d (%s), want 0", good[i], rc, why);
    }
}

static void bad_templates(void **state)
{
    (void)state;
    static const struct kit_route bad[] = {
        {"GET", "users", h_dummy, KIT_PUBLIC, NULL},
        {"GET", "/a//b", h_dummy, KIT_PUBLIC, NULL},
        {"GET", "/a/{}", h_dummy, KIT_PUBLIC, NULL},
        {"GET", "/a/x{id}", h_dummy, KIT_PUBLIC, NULL},
        {"GET", "/a/{1d}", h_dummy, KIT_PUBLIC, NULL},
        {"GET", "/{x}/{x}", h_dummy, KIT_PUBLIC, NULL},
        {"HEAD", "/a", h_dummy, KIT_PUBLIC, NULL},
        {"get", "/a", h_dummy, KIT_PUBLIC, NULL},
        {"GET", "/a", NULL, KIT_PUBLIC, NULL},
        {"GET", "/a", h_dummy, KIT_ROLE(NULL), NULL},
        {"GET", "/a/../b", h_dummy, KIT_PUBLIC, NULL},
        {"GET", "/a b", h_dummy, KIT_PUBLIC, NULL},
        {"GET", NULL, h_dummy, KIT_PUBLIC, NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct kit_router *r = NULL;
        assert_int_equal(kit_router_new(&r), 0);
        struct ag_err err = {0};
        int rc = kit_router_add(r, &bad[i], &err);
        if (rc != AG_EINVAL || err.msg[0] == '\0')
            fail_msg("template %zu (%s): got %d, want %d", i, bad[i].path ? bad[i].path : "NULL",
                     rc, AG_EINVAL);
        kit_router_free(r);
    }
    /* same method and shape: a collision */
    struct kit_router *r = NULL;
    assert_int_equal(kit_router_new(&r), 0);
    struct ag_err err = {0};
    static const struct kit_route a = {"GET", "/a/{x}", h_dummy, KIT_PUBLIC, NULL};
    static const struct kit_route b = {"GET", "/a/{y}", h_dummy, KIT_PUBLIC, NULL};
    static const struct kit_route c = {"POST", "/a/{y}", h_dummy, KIT_PUBLIC, NULL};
    assert_int_equal(kit_router_add(r, &a, &err), 0);
    assert_int_equal(kit_router_add(r, &b, &err), AG_EINVAL);
    assert_non_null(strstr(err.msg, "collides"));
    assert_int_equal(kit_router_add(r, &c, &err), 0);
    kit_router_free(r);
}

/* Found by fuzz_kit_path: "/anyt%2Fg/x" matched "/{a}/x" and the param decoded to "anyt/g". */
static void encoded_slash_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"/a%2Fb/x", "/users/a%2fb", "/%2F", "/users/%2F/roles/r"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        int rc = kit_path_check(ag_str_from_cstr(bad[i]), &why);
        if (rc != AG_EINVAL || !why)
            fail_msg("path \"%s\": got %d, want %d", bad[i], rc, AG_EINVAL);
    }
    /* other escapes of '2' still pass */
    assert_int_equal(kit_path_check(AG_STR("/users/a%2Bb%20c"), NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(literal_beats_param), cmocka_unit_test(not_found_and_method),
        cmocka_unit_test(head_is_get),         cmocka_unit_test(trailing_slash),
        cmocka_unit_test(params_decoding),     cmocka_unit_test(bad_paths),
        cmocka_unit_test(bad_templates),       cmocka_unit_test(encoded_slash_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
