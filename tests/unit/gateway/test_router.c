/* Unit tests for src/gateway/router.c: route validation, specificity, methods, path checks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/err.h"
#include "gateway/router.h"

static const char *const GET[] = {"GET"};
static const char *const POST[] = {"POST"};
static const char *const GET_POST[] = {"GET", "POST"};
static const char *const PUT_DELETE[] = {"PUT", "DELETE"};

#define METHODS(list) (list), (sizeof(list) / sizeof((list)[0]))

/* Builds a table that must be valid; each route's data is its name. */
static struct gw_router *build(const struct gw_route_spec *specs, size_t count)
{
    struct gw_router *r = NULL;
    struct ag_err err = {0};
    int rc = gw_router_new(specs, count, &r, &err);
    if (rc != 0)
        fprintf(stderr, "gw_router_new: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(r);
    return r;
}

/* Matches and returns the route name (the data), or "404" / "405". */
static const char *route_for(const struct gw_router *r, const char *host, const char *method,
                             const char *path, struct gw_match *m)
{
    static struct gw_match local;
    if (!m)
        m = &local;
    enum gw_match_result res = gw_router_match(r, ag_str_from_cstr(host), ag_str_from_cstr(method),
                                               ag_str_from_cstr(path), m);
    switch (res) {
    case GW_MATCH_FOUND:
        assert_non_null(m->data);
        assert_string_equal(m->allow, "");
        return m->data;
    case GW_MATCH_NOT_FOUND:
        assert_null(m->data);
        assert_int_equal(m->param_count, 0);
        return "404";
    case GW_MATCH_METHOD_NOT_ALLOWED:
        assert_non_null(m->data);
        assert_true(m->allow[0] != '\0');
        return "405";
    }
    fail();
    return NULL;
}

#define ROUTE(n, h, p, pre)                                                                        \
    {                                                                                              \
        .name = (n), .host = (h), .path = (p), .prefix = (pre), .data = (n)                        \
    }
#define ROUTE_M(n, h, p, pre, m)                                                                   \
    {                                                                                              \
        .name = (n), .host = (h), .path = (p), .prefix = (pre), .methods = (m),                    \
        .method_count = sizeof(m) / sizeof((m)[0]), .data = (n)                                    \
    }

static void expect_route(const struct gw_router *r, const char *host, const char *method,
                         const char *path, const char *want)
{
    const char *got = route_for(r, host, method, path, NULL);
    if (strcmp(got, want) != 0)
        fprintf(stderr, "%s %s (Host: %s): got %s, want %s\n", method, path, host, got, want);
    assert_string_equal(got, want);
}

/* ---- gw_path_check ---- */

static void path_check(void **state)
{
    (void)state;
    static const char *const good[] = {
        "/",
        "/a",
        "/a/b/",
        "/a.b",
        "/.a",
        "/a..",
        "/...",
        "/a/.../b",
        "/a;b",
        "/a/b;.",
        "/a?b" /* not ours to see */,
        "/%25",
        "/~user/",
        "/a:b@c!$&'()*+,=",
        "/{id}",
    };
    static const char *const bad[] = {
        "",
        "a",
        "*",
        "?/",
        "/..",
        "/.",
        "/../a",
        "/a/..",
        "/a/../b",
        "/a/./b",
        "/a/.",
        "/%2e",
        "/%2E",
        "/%2e%2E",
        "/.%2e",
        "/%2e.",
        "/a/%2e%2e/b",
        "/..;/a",
        "/.;x/a",
        "/%2e;/",
        "/a\\b",
        "/a%5cb",
        "/a%5C",
        "/a%2fb",
        "/a%2F",
        "/a%00",
        "/%00b",
        "/a#b",
        "/a b",
        "/a\tb",
        "/a\x7f",
        "/a\x01",
        "/%",
        "/%2",
        "/%zz",
        "/%2g",
        "/a%",
        /* merged or decoded differently upstream than by the router */
        "//a",
        "/a//b",
        "/%61dmin",
        "/%41%7e",
        "/%2e%2e%2e",
        "/.%2e.",
        "/%2e%2ex",
        "/x.%2e",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int rc = gw_path_check(ag_str_from_cstr(good[i]));
        if (rc != 0)
            fprintf(stderr, "refused: \"%s\"\n", good[i]);
        assert_int_equal(rc, 0);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = gw_path_check(ag_str_from_cstr(bad[i]));
        if (rc != AG_EINVAL)
            fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
        assert_int_equal(rc, AG_EINVAL);
    }
    assert_int_equal(gw_path_check(AG_STR("/a\0b")), AG_EINVAL);
    assert_int_equal(gw_path_check(AG_STR_NULL), AG_EINVAL);
}

/* ---- building ---- */

static void refuse(const struct gw_route_spec *specs, size_t count, const char *needle)
{
    struct gw_router *r = (struct gw_router *)1;
    struct ag_err err = {0};
    int rc = gw_router_new(specs, count, &r, &err);
    if (rc != AG_EINVAL || !strstr(err.msg, needle))
        fprintf(stderr, "rc %d, msg \"%s\", want \"%s\"\n", rc, err.msg, needle);
    assert_int_equal(rc, AG_EINVAL);
    assert_int_equal(err.code, AG_EINVAL);
    assert_null(r);
    assert_non_null(strstr(err.msg, needle));
}

static void refuses_bad_paths(void **state)
{
    (void)state;
    static const struct {
        const char *path, *needle;
    } cases[] = {
        {"api", "must start with '/'"},
        {"", "must start with '/'"},
        {"/a/{id", "'{' must enclose a whole segment"},
        {"/a/{id}x", "'{' must enclose a whole segment"},
        {"/a/x{id}", "'{' and '}' must enclose"},
        {"/a/id}", "'{' and '}' must enclose"},
        {"/a/{}", "needs a name"},
        {"/a/{i-d}", "name holds only"},
        {"/a/{{id}}", "name holds only"},
        {"/{id}/{id}", "\"id\" is used twice"},
        {"/a b", "not allowed in a URI path"},
        {"/a?b", "not allowed in a URI path"},
        {"/a#b", "not allowed in a URI path"},
        {"/a\\b", "not allowed in a URI path"},
        {"/caf\xc3\xa9", "not allowed in a URI path"},
        {"/a%2", "%-escape"},
        {"/a%zz", "%-escape"},
        {"/a/../b", "dot segment"},
        {"/a/%2E", "dot segment"},
        {"/a%2Fb", "dot segment, %2F"},
        {"/a%00", "dot segment, %2F, %5C or %00"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct gw_route_spec spec = ROUTE("bad", "*", cases[i].path, false);
        refuse(&spec, 1, cases[i].needle);
    }
    struct gw_route_spec null_path = ROUTE("bad", "*", NULL, false);
    refuse(&null_path, 1, "must start with '/'");

    /* 16 params are fine, 17 are not. */
    char path[256] = "";
    for (int i = 0; i < GW_ROUTE_MAX_PARAMS; i++)
        snprintf(path + strlen(path), sizeof path - strlen(path), "/{p%d}", i);
    struct gw_route_spec spec = ROUTE("many", "*", path, false);
    struct gw_router *r = build(&spec, 1);
    struct gw_match m;
    assert_string_equal(route_for(r, "h", "GET", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p", &m), "many");
    assert_int_equal(m.param_count, GW_ROUTE_MAX_PARAMS);
    assert_memory_equal(m.params[15].name.p, "p15", 3);
    assert_memory_equal(m.params[15].value.p, "p", 1);
    gw_router_free(r);
    snprintf(path + strlen(path), sizeof path - strlen(path), "/{q}");
    refuse(&spec, 1, "more than 16 {params}");
}

static void refuses_bad_hosts(void **state)
{
    (void)state;
    static const struct {
        const char *host, *needle;
    } cases[] = {
        {"", "the host is empty"},
        {"*x.com", "'*' is allowed only"},
        {"a.*.com", "'*' is allowed only"},
        {"*.*.com", "'*' is allowed only"},
        {"**", "'*' is allowed only"},
        {"a*", "'*' is allowed only"},
        {"*.", "no empty labels"},
        {"example.com.", "no empty labels"},
        {"a..b", "no empty labels"},
        {".a", "no empty labels"},
        {"example.com:8080", "has no port"},
        {"exa mple.com", "only letters, digits"},
        {"exa/mple", "only letters, digits"},
        {"[::1]:80", "without a port"},
        {"[]", "without a port"},
        {"[::g]", "only hex digits"},
        {"*.[::1]", "only letters, digits"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct gw_route_spec spec = ROUTE("bad", cases[i].host, "/", false);
        refuse(&spec, 1, cases[i].needle);
    }
    struct gw_route_spec spec = ROUTE("bad", NULL, "/", false);
    refuse(&spec, 1, "host \"(null)\": the host is empty");
}

static void refuses_bad_methods(void **state)
{
    (void)state;
    static const char *const bad1[] = {"GET", "GE T"};
    static const char *const bad2[] = {""};
    static const char *const bad3[] = {NULL};
    static const char *const bad4[] = {"GET\r\n"};
    struct gw_route_spec specs[] = {
        ROUTE_M("m1", "*", "/", false, bad1),
        ROUTE_M("m2", "*", "/", false, bad2),
        ROUTE_M("m3", "*", "/", false, bad3),
        ROUTE_M("m4", "*", "/", false, bad4),
    };
    refuse(&specs[0], 1, "route \"m1\" (#0): method \"GE T\" is not an HTTP token");
    refuse(&specs[1], 1, "method \"\" is not");
    refuse(&specs[2], 1, "method \"(null)\" is not");
    refuse(&specs[3], 1, "is not an HTTP token");
    struct gw_route_spec null_list = {.host = "*", .path = "/", .method_count = 1};
    refuse(&null_list, 1, "route #0: method_count is 1 but methods is NULL");

    /* Too many distinct methods for an Allow value: refused when built, never truncated. */
    enum { N = 40 };
    static char names[N][16];
    const char *list[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "EXTENSION%02d", i);
        list[i] = names[i];
    }
    struct gw_route_spec many = {.host = "*", .path = "/", .methods = list, .method_count = N};
    refuse(&many, 1, "do not fit in an Allow value");
    many.method_count = 15; /* 9 standard + 15 x 11 bytes + separators fit */
    gw_router_free(build(&many, 1));
}

static void refuses_ambiguous_routes(void **state)
{
    (void)state;
    struct gw_route_spec cases[][2] = {
        {ROUTE("a", "*", "/x", false), ROUTE("b", "*", "/x", false)},
        {ROUTE("a", "Example.com", "/x", true), ROUTE("b", "example.COM", "/x", true)},
        {ROUTE("a", "*.e.com", "/u/{id}", false), ROUTE("b", "*.E.com", "/u/{name}", false)},
        {ROUTE_M("a", "*", "/x", false, GET), ROUTE("b", "*", "/x", false)},
        {ROUTE_M("a", "*", "/x", false, GET_POST), ROUTE_M("b", "*", "/x", false, POST)},
        {ROUTE("a", "*", "/{a}/x/{b}", true), ROUTE("b", "*", "/{c}/x/{d}", true)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        refuse(cases[i], 2, "route \"b\" (#1): same host, path");
    static const char *const head[] = {"HEAD"};
    struct gw_route_spec get_head[] = {ROUTE_M("a", "*", "/x", false, GET),
                                       ROUTE_M("b", "*", "/x", false, head)};
    refuse(get_head, 2, "as route #0: ambiguous");

    /* Differing in host, prefix flag, param position or methods is fine. */
    struct gw_route_spec fine[] = {
        ROUTE("a", "*", "/x", false),         ROUTE("b", "*", "/x", true),
        ROUTE("c", "e.com", "/x", false),     ROUTE("d", "*.e.com", "/x", false),
        ROUTE("e", "*", "/{a}/x", false),     ROUTE("f", "*", "/x/{a}", false),
        ROUTE("g", "*", "/x/", false),        ROUTE_M("h", "*", "/y", false, GET),
        ROUTE_M("i", "*", "/y", false, POST), ROUTE_M("j", "*", "/y", false, PUT_DELETE),
    };
    gw_router_free(build(fine, sizeof fine / sizeof fine[0]));
}

static void empty_table(void **state)
{
    (void)state;
    struct gw_router *r = build(NULL, 0);
    assert_int_equal(gw_router_count(r), 0);
    expect_route(r, "a", "GET", "/", "404");
    gw_router_free(r);
    gw_router_free(NULL);
    struct gw_router *out = NULL;
    struct ag_err err = {0};
    assert_int_equal(gw_router_new(NULL, 2, &out, &err), AG_EINVAL);
    assert_null(out);
}

/* ---- matching ---- */

static void host_matching(void **state)
{
    (void)state;
    struct gw_route_spec specs[] = {
        ROUTE("any", "*", "/", true),
        ROUTE("suffix", "*.example.com", "/", true),
        ROUTE("longer", "*.api.example.com", "/", true),
        ROUTE("exact", "Shop.Example.com", "/", true),
        ROUTE("v6", "[::1]", "/", true),
        ROUTE("v4", "127.0.0.1", "/", true),
    };
    struct gw_router *r = build(specs, sizeof specs / sizeof specs[0]);
    assert_int_equal(gw_router_count(r), 6);
    expect_route(r, "shop.example.com", "GET", "/", "exact");
    expect_route(r, "SHOP.EXAMPLE.COM:8080", "GET", "/a", "exact");
    expect_route(r, "shop.example.com.", "GET", "/", "exact");
    expect_route(r, "shop.example.com.:443", "GET", "/", "exact");
    expect_route(r, "a.example.com", "GET", "/", "suffix");
    expect_route(r, "a.b.example.com", "GET", "/", "suffix");
    expect_route(r, "x.api.example.com", "GET", "/", "longer");
    expect_route(r, "x.y.API.example.com:1", "GET", "/", "longer");
    expect_route(r, "api.example.com", "GET", "/", "suffix"); /* not the apex of *.api */
    expect_route(r, "example.com", "GET", "/", "any");
    expect_route(r, ".example.com", "GET", "/", "any"); /* no label before the suffix */
    expect_route(r, "xexample.com", "GET", "/", "any");
    expect_route(r, "example.com.evil", "GET", "/", "any");
    expect_route(r, "[::1]:8080", "GET", "/", "v6");
    expect_route(r, "[::1]", "GET", "/", "v6");
    expect_route(r, "[::2]:8080", "GET", "/", "any");
    expect_route(r, "127.0.0.1:80", "GET", "/", "v4");
    expect_route(r, "", "GET", "/", "any");
    gw_router_free(r);

    /* Without a "*" route, unknown hosts find nothing; an empty Host only matches "*". */
    struct gw_route_spec only[] = {ROUTE("exact", "example.com", "/", true)};
    r = build(only, 1);
    expect_route(r, "example.com", "GET", "/x", "exact");
    expect_route(r, "", "GET", "/x", "404");
    expect_route(r, "other.com", "GET", "/x", "404");
    expect_route(r, "example.com.example.com", "GET", "/x", "404");
    gw_router_free(r);
}

static void host_decides_before_path(void **state)
{
    (void)state;
    struct gw_route_spec specs[] = {
        ROUTE("any-exact", "*", "/api/users", false),
        ROUTE("host-prefix", "api.example.com", "/", true),
        ROUTE("suffix-template", "*.example.com", "/api/{x}", false),
    };
    struct gw_router *r = build(specs, 3);
    expect_route(r, "api.example.com", "GET", "/api/users", "host-prefix");
    expect_route(r, "www.example.com", "GET", "/api/users", "suffix-template");
    expect_route(r, "www.example.com", "GET", "/api/users/1", "404");
    expect_route(r, "other", "GET", "/api/users", "any-exact");
    gw_router_free(r);
}

static void path_specificity(void **state)
{
    (void)state;
    struct gw_route_spec specs[] = {
        ROUTE("root-prefix", "*", "/", true),
        ROUTE("api-prefix", "*", "/api", true),
        ROUTE("api-slash-prefix", "*", "/api/", true),
        ROUTE("v1-prefix", "*", "/api/v1", true),
        ROUTE("hello-prefix", "*", "/api/v1/hello", true),
        ROUTE("product", "*", "/api/v1/products/{id}", false),
        ROUTE("product-new", "*", "/api/v1/products/new", false),
        ROUTE("image", "*", "/api/v1/products/{id}/images/{image_id}", false),
        ROUTE("any-images", "*", "/api/v1/{kind}/{id}/images/{image_id}", false),
        ROUTE("lit-images", "*", "/api/v1/products/{id}/images/main", false),
        ROUTE("tenant-prefix", "*", "/t/{tenant}/files", true),
        ROUTE("tenant-deep", "*", "/t/{tenant}/files/{name}", true),
        ROUTE("tenant-acme", "*", "/t/acme", true),
        ROUTE("exact-root", "*", "/", false),
        ROUTE("hello-exact", "*", "/api/v1/hello", false),
        ROUTE("trailing", "*", "/api/v1/hello/", false),
    };
    struct gw_router *r = build(specs, sizeof specs / sizeof specs[0]);
    expect_route(r, "h", "GET", "/", "exact-root");
    expect_route(r, "h", "GET", "/x", "root-prefix");
    expect_route(r, "h", "GET", "//", "root-prefix");
    expect_route(r, "h", "GET", "/api", "api-prefix");
    expect_route(r, "h", "GET", "/api/", "api-slash-prefix");
    expect_route(r, "h", "GET", "/api/x", "api-slash-prefix");
    expect_route(r, "h", "GET", "/apix", "root-prefix");
    expect_route(r, "h", "GET", "/api/v1", "v1-prefix");
    expect_route(r, "h", "GET", "/api/v1/", "v1-prefix");
    expect_route(r, "h", "GET", "/api/v1x", "api-slash-prefix");
    expect_route(r, "h", "GET", "/api/v1/hello", "hello-exact");
    expect_route(r, "h", "GET", "/api/v1/hello/", "trailing");
    expect_route(r, "h", "GET", "/api/v1/hello/x", "hello-prefix");
    expect_route(r, "h", "GET", "/api/v1/hello//", "hello-prefix");
    expect_route(r, "h", "GET", "/api/v1/helloworld", "v1-prefix");
    expect_route(r, "h", "GET", "/api/v1/products/new", "product-new");
    expect_route(r, "h", "GET", "/api/v1/products/42", "product");
    expect_route(r, "h", "GET", "/api/v1/products/", "v1-prefix"); /* {id} is never empty */
    expect_route(r, "h", "GET", "/api/v1/products/42/", "v1-prefix");
    expect_route(r, "h", "GET", "/api/v1/products/42/images/7", "image");
    expect_route(r, "h", "GET", "/api/v1/products/42/images/main", "lit-images");
    expect_route(r, "h", "GET", "/api/v1/orders/42/images/7", "any-images");
    expect_route(r, "h", "GET", "/api/v1/products/42/images/7/x", "v1-prefix");
    expect_route(r, "h", "GET", "/t/acme", "tenant-acme");
    expect_route(r, "h", "GET", "/t/acme/files", "tenant-prefix"); /* longer prefix wins */
    expect_route(r, "h", "GET", "/t/acme/files/a", "tenant-deep");
    expect_route(r, "h", "GET", "/t/acme/files/a/b/c", "tenant-deep");
    expect_route(r, "h", "GET", "/t/acme/filesx", "tenant-acme");
    expect_route(r, "h", "GET", "/t/other/files/", "tenant-prefix");
    expect_route(r, "h", "GET", "/t/other/x", "root-prefix");
    expect_route(r, "h", "GET", "/t//files", "root-prefix");
    expect_route(r, "h", "GET", "*", "404");
    expect_route(r, "h", "CONNECT", "", "404");
    gw_router_free(r);
}

static void templates_rank_by_first_literal(void **state)
{
    (void)state;
    struct gw_route_spec specs[] = {
        ROUTE("p-p", "*", "/{a}/{b}", false),     ROUTE("p-l", "*", "/{a}/x", false),
        ROUTE("l-p", "*", "/x/{b}", false),       ROUTE("deep-rest", "*", "/x/", true),
        ROUTE("deep-param", "*", "/x/{b}", true),
    };
    struct gw_router *r = build(specs, sizeof specs / sizeof specs[0]);
    expect_route(r, "h", "GET", "/x/x", "l-p"); /* literal first beats {a} first */
    expect_route(r, "h", "GET", "/y/x", "p-l");
    expect_route(r, "h", "GET", "/y/z", "p-p");
    expect_route(r, "h", "GET", "/x/y/z", "deep-param"); /* {b} beats a trailing "/" */
    expect_route(r, "h", "GET", "/x//z", "deep-rest");
    expect_route(r, "h", "GET", "/x/", "deep-rest");
    expect_route(r, "h", "GET", "/x", "404");
    gw_router_free(r);
}

static void params_point_into_the_path(void **state)
{
    (void)state;
    struct gw_route_spec specs[] = {
        ROUTE("image", "*", "/products/{id}/images/{image_id}", false),
        ROUTE("files", "*", "/files/{bucket}", true),
    };
    struct gw_router *r = build(specs, 2);
    const char *path = "/products/a%20b/images/7;v=1";
    struct gw_match m;
    assert_string_equal(route_for(r, "h", "GET", path, &m), "image");
    assert_int_equal(m.index, 0);
    assert_int_equal(m.param_count, 2);
    assert_true(ag_str_eq(m.params[0].name, AG_STR("id")));
    assert_true(ag_str_eq(m.params[0].value, AG_STR("a%20b")));
    assert_ptr_equal(m.params[0].value.p, path + 10);
    assert_true(ag_str_eq(m.params[1].name, AG_STR("image_id")));
    assert_true(ag_str_eq(m.params[1].value, AG_STR("7;v=1")));
    assert_string_equal(route_for(r, "h", "GET", "/files/b1/x/y", &m), "files");
    assert_int_equal(m.index, 1);
    assert_int_equal(m.param_count, 1);
    assert_true(ag_str_eq(m.params[0].value, AG_STR("b1")));
    gw_router_free(r);
}

static void methods_fall_back_to_less_specific(void **state)
{
    (void)state;
    struct gw_route_spec specs[] = {
        ROUTE_M("x-get", "*", "/x", false, GET),
        ROUTE("catch-all", "*", "/", true),
    };
    struct gw_router *r = build(specs, 2);
    expect_route(r, "h", "GET", "/x", "x-get");
    expect_route(r, "h", "HEAD", "/x", "x-get");
    expect_route(r, "h", "POST", "/x", "catch-all");
    expect_route(r, "h", "get", "/x", "catch-all"); /* methods are case-sensitive */
    gw_router_free(r);

    /* Across hosts too: a GET-only exact host does not hide "*" for a POST. */
    struct gw_route_spec hosts[] = {
        ROUTE_M("host-get", "example.com", "/", true, GET),
        ROUTE_M("any-post", "*", "/", true, POST),
    };
    r = build(hosts, 2);
    expect_route(r, "example.com", "GET", "/a", "host-get");
    expect_route(r, "example.com", "POST", "/a", "any-post");
    struct gw_match m;
    assert_string_equal(route_for(r, "example.com", "PUT", "/a", &m), "405");
    assert_string_equal(m.data, "host-get");
    assert_string_equal(m.allow, "GET, HEAD, POST");
    gw_router_free(r);
}

static void method_not_allowed(void **state)
{
    (void)state;
    static const char *const purge[] = {"PURGE", "GET"};
    static const char *const report[] = {"REPORT", "DELETE", "PURGE"};
    struct gw_route_spec specs[] = {
        ROUTE_M("item-read", "*", "/items/{id}", false, GET),
        ROUTE_M("item-write", "*", "/items/{id}", false, PUT_DELETE),
        ROUTE_M("items-ext", "*", "/items", true, purge),
        ROUTE_M("other", "*", "/other", false, report),
        ROUTE_M("post", "*", "/items/new", false, POST),
    };
    struct gw_router *r = build(specs, sizeof specs / sizeof specs[0]);
    struct gw_match m;
    expect_route(r, "h", "DELETE", "/items/1", "item-write");
    expect_route(r, "h", "PURGE", "/items/1", "items-ext");
    assert_string_equal(route_for(r, "h", "POST", "/items/1", &m), "405");
    assert_string_equal(m.data, "item-read"); /* the most specific, then config order */
    assert_int_equal(m.index, 0);
    assert_int_equal(m.param_count, 1);
    assert_true(ag_str_eq(m.params[0].value, AG_STR("1")));
    assert_string_equal(m.allow, "GET, HEAD, PUT, DELETE, PURGE");
    assert_string_equal(route_for(r, "h", "OPTIONS", "/items/new", &m), "405");
    assert_string_equal(m.data, "post");
    assert_int_equal(m.param_count, 0);
    assert_string_equal(m.allow, "GET, HEAD, POST, PUT, DELETE, PURGE");
    assert_string_equal(route_for(r, "h", "BREW", "/other", &m), "405");
    assert_string_equal(m.allow, "DELETE, PURGE, REPORT");
    assert_string_equal(route_for(r, "h", "GET", "/nothing", &m), "404");
    assert_string_equal(m.allow, "");
    /* A FOUND after a path match that refused the method carries the later route's params. */
    expect_route(r, "h", "PUT", "/items/9", "item-write");
    assert_string_equal(route_for(r, "h", "PUT", "/items/9", &m), "item-write");
    assert_int_equal(m.param_count, 1);
    assert_true(ag_str_eq(m.params[0].value, AG_STR("9")));
    assert_string_equal(route_for(r, "h", "PURGE", "/items/new", &m), "items-ext");
    assert_int_equal(m.param_count, 0);
    gw_router_free(r);
}

static void spec_strings_are_copied(void **state)
{
    (void)state;
    char host[] = "Example.com", path[] = "/a/{id}", name[] = "copied", method[] = "GET";
    const char *methods[] = {method};
    struct gw_route_spec spec = {.name = name,
                                 .host = host,
                                 .path = path,
                                 .methods = methods,
                                 .method_count = 1,
                                 .data = &spec};
    struct gw_router *r = build(&spec, 1);
    memset(host, 'x', sizeof host - 1);
    memset(path, 'x', sizeof path - 1);
    memset(method, 'x', sizeof method - 1);
    struct gw_match m;
    assert_int_equal(gw_router_match(r, AG_STR("example.com"), AG_STR("GET"), AG_STR("/a/1"), &m),
                     GW_MATCH_FOUND);
    assert_ptr_equal(m.data, &spec);
    assert_true(ag_str_eq(m.params[0].name, AG_STR("id")));
    gw_router_free(r);
}

/* Many routes and hosts: the first-segment index must give what a plain scan would. */
static void big_table(void **state)
{
    (void)state;
    enum { N = 300 };
    static char paths[N][48], hosts[N][32], names[N][16];
    struct gw_route_spec specs[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "r%d", i);
        snprintf(hosts[i], sizeof hosts[i], "%s",
                 i % 3 == 0   ? "*"
                 : i % 3 == 1 ? "*.e.com"
                              : "a.e.com");
        switch (i % 5) {
        case 0:
            snprintf(paths[i], sizeof paths[i], "/s%d/items", i);
            break;
        case 1:
            snprintf(paths[i], sizeof paths[i], "/s%d/items/{id}", i);
            break;
        case 2:
            snprintf(paths[i], sizeof paths[i], "/{x}/n%d", i);
            break;
        case 3:
            snprintf(paths[i], sizeof paths[i], "/s%d", i);
            break;
        default:
            snprintf(paths[i], sizeof paths[i], "/s%d/items/{id}/sub", i);
            break;
        }
        specs[i] = (struct gw_route_spec){.name = names[i],
                                          .host = hosts[i],
                                          .path = paths[i],
                                          .prefix = i % 5 == 3,
                                          .data = names[i]};
    }
    struct gw_router *r = build(specs, N);
    char path[64];
    for (int i = 0; i < N; i++) {
        const char *host = i % 3 == 0 ? "zzz" : i % 3 == 1 ? "b.e.com" : "A.E.COM";
        switch (i % 5) {
        case 0:
            snprintf(path, sizeof path, "/s%d/items", i);
            break;
        case 1:
            snprintf(path, sizeof path, "/s%d/items/7", i);
            break;
        case 2:
            snprintf(path, sizeof path, "/anything/n%d", i);
            break;
        case 3:
            snprintf(path, sizeof path, "/s%d/deeper/still", i);
            break;
        default:
            snprintf(path, sizeof path, "/s%d/items/7/sub", i);
            break;
        }
        expect_route(r, host, "GET", path, names[i]);
    }
    expect_route(r, "zzz", "GET", "/s1/items", "404");
    expect_route(r, "zzz", "GET", "/nothing", "404");
    gw_router_free(r);
}

static double ns_per_match(const struct gw_router *r, const char *host, const char *method,
                           const char *path)
{
    enum { ROUNDS = 200000 };
    struct gw_match m;
    struct ag_str h = ag_str_from_cstr(host), me = ag_str_from_cstr(method),
                  p = ag_str_from_cstr(path);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    volatile size_t sink = 0;
    for (int i = 0; i < ROUNDS; i++)
        sink += (size_t)gw_router_match(r, h, me, p, &m) + m.param_count;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    (void)sink;
    return ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / ROUNDS;
}

/* Prints the cost of a match on a 50-route table; no assertion (machines differ). */
static void match_speed(void **state)
{
    (void)state;
    enum { N = 50 };
    static char paths[N][48], names[N][16];
    struct gw_route_spec specs[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "r%d", i);
        if (i % 2)
            snprintf(paths[i], sizeof paths[i], "/api/v1/svc%d/{id}/items/{item}", i);
        else
            snprintf(paths[i], sizeof paths[i], "/svc%d/v1/hello", i);
        specs[i] = (struct gw_route_spec){.name = names[i],
                                          .host = i < 10 ? "shop.example" : "*",
                                          .path = paths[i],
                                          .prefix = i % 4 == 0,
                                          .methods = i % 3 ? GET_POST : NULL,
                                          .method_count = i % 3 ? 2 : 0,
                                          .data = names[i]};
    }
    struct gw_router *r = build(specs, N);
    expect_route(r, "x", "GET", "/api/v1/svc49/1/items/2", "r49");
    printf("router, 50 routes: exact %.0f ns, template %.0f ns, prefix %.0f ns, 404 %.0f ns, "
           "405 %.0f ns per match\n",
           ns_per_match(r, "x.example:8080", "GET", "/svc48/v1/hello"),
           ns_per_match(r, "shop.example", "GET", "/api/v1/svc49/123/items/456"),
           ns_per_match(r, "shop.example", "GET", "/svc4/v1/hello/deeper/path"),
           ns_per_match(r, "x", "GET", "/nowhere/at/all"),
           ns_per_match(r, "x", "DELETE", "/api/v1/svc47/1/items/2"));
    gw_router_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(path_check),
        cmocka_unit_test(refuses_bad_paths),
        cmocka_unit_test(refuses_bad_hosts),
        cmocka_unit_test(refuses_bad_methods),
        cmocka_unit_test(refuses_ambiguous_routes),
        cmocka_unit_test(empty_table),
        cmocka_unit_test(host_matching),
        cmocka_unit_test(host_decides_before_path),
        cmocka_unit_test(path_specificity),
        cmocka_unit_test(templates_rank_by_first_literal),
        cmocka_unit_test(params_point_into_the_path),
        cmocka_unit_test(methods_fall_back_to_less_specific),
        cmocka_unit_test(method_not_allowed),
        cmocka_unit_test(spec_strings_are_copied),
        cmocka_unit_test(big_table),
        cmocka_unit_test(match_speed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
