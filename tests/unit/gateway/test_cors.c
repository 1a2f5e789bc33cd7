/* Unit tests for src/gateway/cors.c: preflights, actual requests, and policy validation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/http_parse.h"
#include "gateway/cors.h"

static char *shop_origins[] = {"https://shop.example", "http://localhost:3000"};
static char *star[] = {"*"};
static char *put_patch[] = {"PUT", "PATCH"};
static char *api_headers[] = {"Content-Type", "X-Api-Key", "Authorization"};
static char *exposed[] = {"X-Request-Id", "ETag"};

static const struct gw_cors_policy shop = {
    .origins = shop_origins,
    .origin_count = 2,
    .methods = put_patch,
    .method_count = 2,
    .headers = api_headers,
    .header_count = 3,
    .expose = exposed,
    .expose_count = 2,
    .max_age_s = 600,
    .credentials = true,
};

/* A request head: method, then "Name", "value" pairs; NULL ends the list. */
static struct ag_http_request *request(const char *method, ...)
{
    static struct ag_http_request req;
    memset(&req, 0, sizeof req);
    req.method = ag_str_from_cstr(method);
    req.path = AG_STR("/api/x");
    va_list ap;
    va_start(ap, method);
    for (const char *name; (name = va_arg(ap, const char *)) != NULL;) {
        const char *value = va_arg(ap, const char *);
        req.headers[req.header_count++] =
            (struct ag_http_header){ag_str_from_cstr(name), ag_str_from_cstr(value)};
    }
    va_end(ap);
    return &req;
}

/* The value of header name in out as a C string (static), or NULL. Asserts it occurs once. */
static const char *header(const struct gw_cors_headers *out, const char *name)
{
    static char value[600];
    const char *found = NULL;
    assert_true(out->count <= sizeof out->h / sizeof out->h[0]);
    for (size_t i = 0; i < out->count; i++) {
        if (!ag_str_eq(out->h[i].name, ag_str_from_cstr(name)))
            continue;
        assert_null(found);
        assert_true(out->h[i].value.len < sizeof value);
        memcpy(value, out->h[i].value.p, out->h[i].value.len);
        value[out->h[i].value.len] = '\0';
        found = value;
    }
    return found;
}

#define assert_header(out, name, want)                                                             \
    do {                                                                                           \
        const char *got_ = header((out), (name));                                                  \
        assert_non_null(got_);                                                                     \
        assert_string_equal(got_, (want));                                                         \
    } while (0)

static void not_cors_without_origin(void **state)
{
    (void)state;
    struct gw_cors_headers out;
    assert_int_equal(gw_cors_evaluate(&shop, request("GET", NULL), &out), GW_CORS_NOT_CORS);
    assert_int_equal(out.count, 1); /* the response still varies by Origin */
    assert_header(&out, "Vary", "Origin");

    struct gw_cors_policy open = {.origins = star, .origin_count = 1};
    assert_int_equal(gw_cors_evaluate(&open, request("GET", "Host", "a", NULL), &out),
                     GW_CORS_NOT_CORS);
    assert_int_equal(out.count, 0);
    /* Access-Control-Request-Method alone does not make a preflight. */
    assert_int_equal(
        gw_cors_evaluate(&open, request("OPTIONS", "Access-Control-Request-Method", "PUT", NULL),
                         &out),
        GW_CORS_NOT_CORS);
}

static void actual_request_allowed(void **state)
{
    (void)state;
    struct gw_cors_headers out;
    assert_int_equal(
        gw_cors_evaluate(&shop, request("POST", "origin", "https://shop.example", NULL), &out),
        GW_CORS_ALLOWED);
    assert_int_equal(out.count, 4);
    assert_header(&out, "Access-Control-Allow-Origin", "https://shop.example");
    assert_header(&out, "Access-Control-Allow-Credentials", "true");
    assert_header(&out, "Access-Control-Expose-Headers", "X-Request-Id, ETag");
    assert_header(&out, "Vary", "Origin");
    assert_null(header(&out, "Access-Control-Allow-Methods"));
    assert_null(header(&out, "Access-Control-Max-Age"));

    /* Origins compare ignoring case; the request's spelling is echoed. */
    assert_int_equal(
        gw_cors_evaluate(&shop, request("GET", "Origin", "HTTP://LocalHost:3000", NULL), &out),
        GW_CORS_ALLOWED);
    assert_header(&out, "Access-Control-Allow-Origin", "HTTP://LocalHost:3000");

    /* OPTIONS without Access-Control-Request-Method is an actual request. */
    assert_int_equal(
        gw_cors_evaluate(&shop, request("OPTIONS", "Origin", "https://shop.example", NULL), &out),
        GW_CORS_ALLOWED);
}

static void actual_request_refused(void **state)
{
    (void)state;
    static const char *const others[] = {
        "https://evil.example",
        "https://shop.example.evil",
        "http://shop.example",
        "https://shop.example:443",
        "https://shop.example/",
        "null",
        "",
        "https://shop.examplex",
    };
    struct gw_cors_headers out;
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        assert_int_equal(gw_cors_evaluate(&shop, request("GET", "Origin", others[i], NULL), &out),
                         GW_CORS_ORIGIN_REFUSED);
        assert_int_equal(out.count, 1);
        assert_header(&out, "Vary", "Origin");
    }
}

static void star_origin(void **state)
{
    (void)state;
    struct gw_cors_policy open = {
        .origins = star, .origin_count = 1, .expose = exposed, .expose_count = 1};
    struct gw_cors_headers out;
    assert_int_equal(
        gw_cors_evaluate(&open, request("GET", "Origin", "https://a.example", NULL), &out),
        GW_CORS_ALLOWED);
    assert_int_equal(out.count, 2);
    assert_header(&out, "Access-Control-Allow-Origin", "*");
    assert_header(&out, "Access-Control-Expose-Headers", "X-Request-Id");
    assert_null(header(&out, "Vary"));
    assert_null(header(&out, "Access-Control-Allow-Credentials"));
    /* Without credentials, even the opaque origin may read a public response. */
    assert_int_equal(gw_cors_evaluate(&open, request("GET", "Origin", "null", NULL), &out),
                     GW_CORS_ALLOWED);
    assert_header(&out, "Access-Control-Allow-Origin", "*");

    /* With credentials "*" cannot be sent: the origin is echoed, never "null" or garbage. */
    open.credentials = true;
    assert_int_equal(
        gw_cors_evaluate(&open, request("GET", "Origin", "https://a.example", NULL), &out),
        GW_CORS_ALLOWED);
    assert_header(&out, "Access-Control-Allow-Origin", "https://a.example");
    assert_header(&out, "Access-Control-Allow-Credentials", "true");
    assert_header(&out, "Vary", "Origin");
    static const char *const unechoable[] = {"null", "", "https://a.example/path",
                                             "https://a.example, https://b.example", "a.example"};
    for (size_t i = 0; i < sizeof unechoable / sizeof unechoable[0]; i++) {
        assert_int_equal(
            gw_cors_evaluate(&open, request("GET", "Origin", unechoable[i], NULL), &out),
            GW_CORS_ORIGIN_REFUSED);
        assert_null(header(&out, "Access-Control-Allow-Origin"));
        assert_header(&out, "Vary", "Origin");
    }
}

static void preflight_allowed(void **state)
{
    (void)state;
    struct gw_cors_headers out;
    struct ag_http_request *req =
        request("OPTIONS", "Origin", "https://shop.example", "Access-Control-Request-Method", "PUT",
                "Access-Control-Request-Headers", "content-type,x-api-key, AUTHORIZATION", NULL);
    assert_int_equal(gw_cors_evaluate(&shop, req, &out), GW_CORS_PREFLIGHT);
    assert_int_equal(out.count, 6);
    assert_header(&out, "Access-Control-Allow-Origin", "https://shop.example");
    assert_header(&out, "Access-Control-Allow-Credentials", "true");
    assert_header(&out, "Access-Control-Allow-Methods", "PUT");
    assert_header(&out, "Access-Control-Allow-Headers", "content-type,x-api-key, AUTHORIZATION");
    assert_header(&out, "Access-Control-Max-Age", "600");
    assert_header(&out, "Vary",
                  "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
    assert_null(header(&out, "Access-Control-Expose-Headers"));

    /* Safelisted methods need no listing; no requested headers, no Allow-Headers. */
    static const char *const safelisted[] = {"GET", "HEAD", "POST"};
    for (size_t i = 0; i < 3; i++) {
        req = request("OPTIONS", "Origin", "http://localhost:3000", "Access-Control-Request-Method",
                      safelisted[i], NULL);
        assert_int_equal(gw_cors_evaluate(&shop, req, &out), GW_CORS_PREFLIGHT);
        assert_header(&out, "Access-Control-Allow-Methods", safelisted[i]);
        assert_null(header(&out, "Access-Control-Allow-Headers"));
    }
    /* Empty list elements and OWS are skipped; an empty list is no list. */
    req = request("OPTIONS", "Origin", "https://shop.example", "Access-Control-Request-Method",
                  "PATCH", "Access-Control-Request-Headers", " , x-api-key ,,\t", NULL);
    assert_int_equal(gw_cors_evaluate(&shop, req, &out), GW_CORS_PREFLIGHT);
    req = request("OPTIONS", "Origin", "https://shop.example", "Access-Control-Request-Method",
                  "PATCH", "Access-Control-Request-Headers", "", NULL);
    assert_int_equal(gw_cors_evaluate(&shop, req, &out), GW_CORS_PREFLIGHT);
    assert_null(header(&out, "Access-Control-Allow-Headers"));

    /* "*" without credentials; no max-age gives no Max-Age. */
    struct gw_cors_policy open = {.origins = star, .origin_count = 1};
    req = request("OPTIONS", "Origin", "https://any.example", "Access-Control-Request-Method",
                  "GET", NULL);
    assert_int_equal(gw_cors_evaluate(&open, req, &out), GW_CORS_PREFLIGHT);
    assert_int_equal(out.count, 3);
    assert_header(&out, "Access-Control-Allow-Origin", "*");
    assert_header(&out, "Vary", "Access-Control-Request-Method, Access-Control-Request-Headers");
    assert_null(header(&out, "Access-Control-Max-Age"));
}

static void preflight_refused(void **state)
{
    (void)state;
    static const struct {
        const char *origin, *method, *headers;
    } cases[] = {
        {"https://evil.example", "GET", NULL},      /* origin */
        {"https://shop.example", "DELETE", NULL},   /* method not listed */
        {"https://shop.example", "put", NULL},      /* methods are case-sensitive */
        {"https://shop.example", "", NULL},         /* not a token */
        {"https://shop.example", "P UT", NULL},     /* not a token */
        {"https://shop.example", "PUT", "x-other"}, /* header not listed */
        {"https://shop.example", "PUT", "x-api-key,x-other"},
        {"https://shop.example", "PUT", "x api key"}, /* not a token */
        {"https://shop.example", "PUT", "content-type;x"},
    };
    struct gw_cors_headers out;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ag_http_request *req =
            cases[i].headers
                ? request("OPTIONS", "Origin", cases[i].origin, "Access-Control-Request-Method",
                          cases[i].method, "Access-Control-Request-Headers", cases[i].headers, NULL)
                : request("OPTIONS", "Origin", cases[i].origin, "Access-Control-Request-Method",
                          cases[i].method, NULL);
        assert_int_equal(gw_cors_evaluate(&shop, req, &out), GW_CORS_PREFLIGHT_REFUSED);
        assert_int_equal(out.count, 1);
        assert_null(header(&out, "Access-Control-Allow-Origin"));
        assert_non_null(header(&out, "Vary"));
    }
}

static void wildcard_methods_and_headers(void **state)
{
    (void)state;
    struct gw_cors_policy p = {.origins = star,
                               .origin_count = 1,
                               .methods = star,
                               .method_count = 1,
                               .headers = star,
                               .header_count = 1};
    struct gw_cors_headers out;
    struct ag_http_request *req =
        request("OPTIONS", "Origin", "https://a.example", "Access-Control-Request-Method", "PURGE",
                "Access-Control-Request-Headers", "x-anything,x-else", NULL);
    assert_int_equal(gw_cors_evaluate(&p, req, &out), GW_CORS_PREFLIGHT);
    assert_header(&out, "Access-Control-Allow-Methods", "PURGE");
    assert_header(&out, "Access-Control-Allow-Headers", "x-anything,x-else");
    /* "*" does not cover Authorization (as in Fetch); naming it does. */
    req = request("OPTIONS", "Origin", "https://a.example", "Access-Control-Request-Method", "GET",
                  "Access-Control-Request-Headers", "x-a,authorization", NULL);
    assert_int_equal(gw_cors_evaluate(&p, req, &out), GW_CORS_PREFLIGHT_REFUSED);
    char *with_auth[] = {"*", "authorization"};
    p.headers = with_auth;
    p.header_count = 2;
    assert_int_equal(gw_cors_evaluate(&p, req, &out), GW_CORS_PREFLIGHT);
}

static void policy_check(void **state)
{
    (void)state;
    struct ag_err err = {0};
    assert_int_equal(gw_cors_policy_check(&shop, &err), 0);
    char *fine_origins[] = {"https://a.example", "http://127.0.0.1:8080", "http://[::1]:3000",
                            "app+x-1.2://host_name~x", "HTTPS://A.EXAMPLE:65535"};
    struct gw_cors_policy fine = {.origins = fine_origins, .origin_count = 5};
    assert_int_equal(gw_cors_policy_check(&fine, &err), 0);
    struct gw_cors_policy open = {
        .origins = star, .origin_count = 1, .credentials = true, .max_age_s = GW_CORS_MAX_AGE_MAX};
    assert_int_equal(gw_cors_policy_check(&open, &err), 0);

    static const struct {
        const char *origin, *needle;
    } bad_origins[] = {
        {"null", "origin \"null\" would let"},
        {"NULL", "origin \"null\""},
        {"", "scheme://host"},
        {"shop.example", "scheme://host"},
        {"https:/shop.example", "scheme://host"},
        {"1http://a", "scheme://host"},
        {"https://", "needs a host"},
        {"https://a.example/", "no path"},
        {"https://a.example/x", "no path"},
        {"https://user@a.example", "without userinfo"},
        {"https://a.example?x", "without userinfo or path"},
        {"https://a.example:0", "port is 1..65535"},
        {"https://a.example:65536", "port is 1..65535"},
        {"https://a.example:99999999999999999999", "port is 1..65535"},
        {"https://a.example:", "port is 1..65535"},
        {"https://a.example:8x", "without userinfo"},
        {"https://[::1", "IPv6"},
        {"https://[]", "IPv6"},
        {"https://[::g]", "IPv6"},
        {"https://a b", "without userinfo"},
    };
    for (size_t i = 0; i < sizeof bad_origins / sizeof bad_origins[0]; i++) {
        char *list[] = {(char *)bad_origins[i].origin};
        struct gw_cors_policy p = {.origins = list, .origin_count = 1};
        memset(&err, 0, sizeof err);
        int rc = gw_cors_policy_check(&p, &err);
        if (rc != AG_EINVAL || !strstr(err.msg, bad_origins[i].needle))
            fprintf(stderr, "%s: rc %d \"%s\"\n", bad_origins[i].origin, rc, err.msg);
        assert_int_equal(rc, AG_EINVAL);
        assert_non_null(strstr(err.msg, bad_origins[i].needle));
    }

    char *star_and_more[] = {"*", "https://a.example"};
    char *bad_token[] = {"X Bad"};
    char *null_entry[] = {NULL};
    char *long_names[] = {
        "X-"
        "Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "X-"
        "Bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        "X-"
        "Cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
        "X-"
        "Dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
        "X-"
        "Eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
    };
    struct {
        struct gw_cors_policy policy;
        const char *needle;
    } bad[] = {
        {{.origin_count = 0}, "no origins"},
        {{.origin_count = 1}, "no origins"},
        {{.origins = star_and_more, .origin_count = 2}, "\"*\" must be the only origin"},
        {{.origins = null_entry, .origin_count = 1}, "origin #0 is NULL"},
        {{.origins = star, .origin_count = 1, .methods = bad_token, .method_count = 1},
         "method \"X Bad\" is not an HTTP token"},
        {{.origins = star, .origin_count = 1, .method_count = 1}, "1 method but no list"},
        {{.origins = star, .origin_count = 1, .headers = bad_token, .header_count = 1},
         "header \"X Bad\" is not"},
        {{.origins = star, .origin_count = 1, .headers = null_entry, .header_count = 1},
         "header #0 is NULL"},
        {{.origins = star, .origin_count = 1, .expose = bad_token, .expose_count = 1},
         "expose header \"X Bad\""},
        {{.origins = star,
          .origin_count = 1,
          .expose = star,
          .expose_count = 1,
          .credentials = true},
         "expose header \"*\" with credentials"},
        {{.origins = star, .origin_count = 1, .expose = long_names, .expose_count = 5},
         "expose headers take 458 bytes joined, over 400"},
        {{.origins = star, .origin_count = 1, .max_age_s = GW_CORS_MAX_AGE_MAX + 1},
         "max_age 86401 s is over 86400 s"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        int rc = gw_cors_policy_check(&bad[i].policy, &err);
        if (rc != AG_EINVAL || !strstr(err.msg, bad[i].needle))
            fprintf(stderr, "#%zu: rc %d \"%s\"\n", i, rc, err.msg);
        assert_int_equal(rc, AG_EINVAL);
        assert_non_null(strstr(err.msg, bad[i].needle));
    }
    /* "*" expose without credentials is Fetch's wildcard, and fine. */
    struct gw_cors_policy expose_star = {
        .origins = star, .origin_count = 1, .expose = star, .expose_count = 1};
    assert_int_equal(gw_cors_policy_check(&expose_star, &err), 0);
}

/* An unchecked policy whose expose list overflows scratch gets no Expose header, not a crash. */
static void unchecked_long_expose_is_dropped(void **state)
{
    (void)state;
    static char name[300];
    memset(name, 'x', sizeof name - 1);
    char *names[] = {name, name};
    struct gw_cors_policy p = {
        .origins = star, .origin_count = 1, .expose = names, .expose_count = 2};
    struct gw_cors_headers out;
    assert_int_equal(
        gw_cors_evaluate(&p, request("GET", "Origin", "https://a.example", NULL), &out),
        GW_CORS_ALLOWED);
    assert_null(header(&out, "Access-Control-Expose-Headers"));
    p.expose_count = 1;
    assert_int_equal(
        gw_cors_evaluate(&p, request("GET", "Origin", "https://a.example", NULL), &out),
        GW_CORS_ALLOWED);
    assert_header(&out, "Access-Control-Expose-Headers", name);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(not_cors_without_origin),
        cmocka_unit_test(actual_request_allowed),
        cmocka_unit_test(actual_request_refused),
        cmocka_unit_test(star_origin),
        cmocka_unit_test(preflight_allowed),
        cmocka_unit_test(preflight_refused),
        cmocka_unit_test(wildcard_methods_and_headers),
        cmocka_unit_test(policy_check),
        cmocka_unit_test(unchecked_long_expose_is_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
