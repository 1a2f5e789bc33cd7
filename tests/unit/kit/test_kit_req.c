/* Unit tests for src/kit/kit_req.c: query parsing, headers, the JSON body, field checks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kit/kit_req.h"

/* A request with a query, optional Content-Type and body. */
static void make(struct kit_req *req, const char *query, const char *content_type, const char *body)
{
    struct ag_http_header h[3];
    size_t n = 0;
    h[n++] = (struct ag_http_header){AG_STR("Host"), AG_STR("x")};
    if (content_type)
        h[n++] = (struct ag_http_header){AG_STR("Content-Type"), ag_str_from_cstr(content_type)};
    assert_int_equal(
        kit_req_init(req, AG_STR("POST"), AG_STR("/p"), ag_str_from_cstr(query), h, n, 1024), 0);
    if (body)
        assert_int_equal(kit_req_body_append(req, body, strlen(body)), 0);
}

/* The answer's body as JSON (the test owns it). */
static json_t *answer_json(const struct kit_req *req)
{
    json_error_t e;
    json_t *v = json_loadb(req->resp_body, req->resp_len, 0, &e);
    if (!v)
        fail_msg("answer is not JSON: %.*s", (int)req->resp_len, req->resp_body);
    return v;
}

static void query_basic(void **state)
{
    (void)state;
    struct kit_req req;
    make(&req, "a=1&b=x+y&c=%41%42&d&e=&a=2&%zz=3&f=%zz", NULL, NULL);
    assert_string_equal(kit_req_query(&req, "a"), "1");
    assert_string_equal(kit_req_query(&req, "b"), "x y");
    assert_string_equal(kit_req_query(&req, "c"), "AB");
    assert_string_equal(kit_req_query(&req, "d"), "");
    assert_string_equal(kit_req_query(&req, "e"), "");
    assert_null(kit_req_query(&req, "f")); /* a bad escape reads as absent... */
    assert_null(kit_req_query(&req, "zz"));
    assert_null(kit_req_query(&req, "missing"));
    int64_t v = 0;
    /* ...and the typed getters refuse it */
    assert_int_equal(kit_req_query_int(&req, "f", 0, 0, 10, &v), AG_EINVAL);
    assert_int_equal(req.status, 400);
    kit_req_release(&req);
}

static void query_int(void **state)
{
    (void)state;
    struct kit_req req;
    make(&req, "n=42&neg=-5&big=99999999999999999999&x=4x&r=2&r=3&e=", NULL, NULL);
    int64_t v = 0;
    assert_int_equal(kit_req_query_int(&req, "n", 1, 0, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(kit_req_query_int(&req, "absent", 7, 0, 100, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(kit_req_query_int(&req, "neg", 0, -10, 10, &v), 0);
    assert_int_equal(v, -5);
    assert_int_equal(req.status, 0);
    assert_int_equal(kit_req_query_int(&req, "n", 0, 0, 41, &v), AG_EINVAL);
    assert_int_equal(req.status, 400);
    json_t *p = answer_json(&req);
    assert_string_equal(json_string_value(json_object_get(p, "title")), "Bad Request");
    json_t *errors = json_object_get(p, "errors");
    assert_int_equal(json_array_size(errors), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 0), "field")),
                        "n");
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(errors, 0), "message")),
                           "0 to 41"));
    json_decref(p);
    kit_req_release(&req);

    static const char *const bad[] = {"big", "x", "r", "e"};
    for (size_t i = 0; i < 4; i++) {
        make(&req, "n=42&neg=-5&big=99999999999999999999&x=4x&r=2&r=3&e=", NULL, NULL);
        int rc = kit_req_query_int(&req, bad[i], 0, INT64_MIN, INT64_MAX, &v);
        if (rc != AG_EINVAL || req.status != 400)
            fail_msg("%s: rc %d status %d, want %d and 400", bad[i], rc, req.status, AG_EINVAL);
        kit_req_release(&req);
    }
}

static void query_once(void **state)
{
    (void)state;
    struct kit_req req;
    make(&req, "q=a%20b&r=1&r=2&bad=%zz", NULL, NULL);
    const char *v = "stale";
    assert_int_equal(kit_req_query_once(&req, "q", &v), 0);
    assert_string_equal(v, "a b");
    v = "stale";
    assert_int_equal(kit_req_query_once(&req, "absent", &v), 0);
    assert_null(v);
    assert_int_equal(req.status, 0);
    kit_req_release(&req);

    static const char *const bad[] = {"r", "bad"};
    static const char *const why[] = {"given more than once", "malformed percent-escape"};
    for (size_t i = 0; i < 2; i++) {
        make(&req, "q=a%20b&r=1&r=2&bad=%zz", NULL, NULL);
        v = "stale";
        int rc = kit_req_query_once(&req, bad[i], &v);
        if (rc != AG_EINVAL || req.status != 400 || v)
            fail_msg("%s: rc %d status %d value %s, want %d, 400 and NULL", bad[i], rc, req.status,
                     v ? v : "(null)", AG_EINVAL);
        json_t *p = answer_json(&req);
        json_t *e = json_array_get(json_object_get(p, "errors"), 0);
        assert_string_equal(json_string_value(json_object_get(e, "field")), bad[i]);
        const char *message = json_string_value(json_object_get(e, "message"));
        if (!message || !strstr(message, why[i]))
            fail_msg("%s: message %s, want it to say %s", bad[i], message ? message : "(null)",
                     why[i]);
        json_decref(p);
        kit_req_release(&req);
    }
}

static void text_chars_counts(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len, want;
    } cases[] = {
        {"", 0, 0},
        {"abc", 3, 3},
        {"h\xc3\xa9\xe2\x82\xac\xf0\x9f\x99\x82", 10, 4}, /* hé€🙂 */
        {"a\0b", 3, SIZE_MAX},                            /* NUL inside the length */
        {"a\nb", 3, SIZE_MAX},
        {"\x7f", 1, SIZE_MAX},
        {"\xc2\x85", 2, SIZE_MAX},     /* C1 NEL */
        {"\xc2\xa0", 2, 1},            /* NBSP is text */
        {"\xe2\x80\xa8", 3, SIZE_MAX}, /* U+2028 */
        {"\xe2\x80\xa9", 3, SIZE_MAX}, /* U+2029 */
        {"\xc3", 1, SIZE_MAX},         /* truncated */
        {"\xc0\xaf", 2, SIZE_MAX},     /* overlong */
        {"\xed\xa0\x80", 3, SIZE_MAX}, /* a surrogate */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = kit_text_chars(cases[i].s, cases[i].len);
        if (n != cases[i].want)
            fail_msg("case %zu: %zu code points, want %zu", i, n, cases[i].want);
    }
}

static void query_enum_and_page(void **state)
{
    (void)state;
    static const char *const sorts[] = {"name", "created", NULL};
    struct kit_req req;
    make(&req, "sort=created&page=3&per_page=50", NULL, NULL);
    const char *s = NULL;
    assert_int_equal(kit_req_query_enum(&req, "sort", sorts, "name", &s), 0);
    assert_ptr_equal(s, sorts[1]);
    assert_int_equal(kit_req_query_enum(&req, "order", sorts, "name", &s), 0);
    assert_string_equal(s, "name");
    struct kit_page pg;
    assert_int_equal(kit_req_page(&req, &pg), 0);
    assert_int_equal(pg.page, 3);
    assert_int_equal(pg.per_page, 50);
    assert_int_equal(pg.offset, 100);
    kit_req_release(&req);

    make(&req, "sort=size", NULL, NULL);
    assert_int_equal(kit_req_query_enum(&req, "sort", sorts, "name", &s), AG_EINVAL);
    assert_int_equal(req.status, 400);
    assert_non_null(strstr(req.resp_body, "must be one of name, created"));
    kit_req_release(&req);

    make(&req, "", NULL, NULL);
    assert_int_equal(kit_req_page(&req, &pg), 0);
    assert_int_equal(pg.page, 1);
    assert_int_equal(pg.per_page, 20);
    assert_int_equal(pg.offset, 0);
    kit_req_release(&req);

    static const char *const bad[] = {"per_page=101", "per_page=0", "page=0", "page=-1",
                                      "page=1&page=2"};
    for (size_t i = 0; i < 5; i++) {
        make(&req, bad[i], NULL, NULL);
        int rc = kit_req_page(&req, &pg);
        if (rc != AG_EINVAL || req.status != 400)
            fail_msg("%s: rc %d status %d", bad[i], rc, req.status);
        kit_req_release(&req);
    }
}

static void headers_and_ids(void **state)
{
    (void)state;
    struct ag_http_header h[] = {
        {AG_STR("Host"), AG_STR("x")},
        {AG_STR("x-request-id"), AG_STR("abc-123_x.y")},
        {AG_STR("Authorization"), AG_STR("bearer  tok.en.sig ")},
        {AG_STR("X-Two"), AG_STR("first")},
        {AG_STR("X-Two"), AG_STR("second")},
    };
    struct kit_req req;
    assert_int_equal(kit_req_init(&req, AG_STR("HEAD"), AG_STR("/x"), AG_STR(""), h, 5, 10), 0);
    assert_string_equal(kit_req_method(&req), "GET");
    assert_true(req.head);
    assert_string_equal(kit_req_id(&req), "abc-123_x.y");
    assert_string_equal(kit_req_header(&req, "x-two"), "first");
    assert_null(kit_req_header(&req, "x-three"));
    struct ag_str tok = kit_req_token(&req);
    assert_int_equal(tok.len, 10); /* the scheme is case-insensitive; spaces are trimmed */
    assert_memory_equal(tok.p, "tok.en.sig", 10);
    assert_string_equal(kit_req_tenant(&req), "default");
    assert_null(kit_req_subject(&req));
    assert_false(kit_req_has_role(&req, "admin"));
    /* the body limit */
    assert_int_equal(kit_req_body_append(&req, "0123456789", 10), 0);
    assert_int_equal(kit_req_body_append(&req, "x", 1), AG_ERANGE);
    kit_req_release(&req);

    h[1].value = AG_STR("bad id with spaces");
    assert_int_equal(kit_req_init(&req, AG_STR("GET"), AG_STR("/x"), AG_STR(""), h, 2, 10), 0);
    assert_true(kit_id_valid(kit_req_id(&req)));
    kit_req_release(&req);
    char long_id[200];
    memset(long_id, 'a', sizeof long_id);
    assert_false(kit_request_id_valid((struct ag_str){long_id, 129}));
    assert_true(kit_request_id_valid((struct ag_str){long_id, 128}));
    assert_false(kit_request_id_valid(AG_STR("")));
}

static void json_body(void **state)
{
    (void)state;
    struct kit_req req;
    json_t *obj = NULL;
    make(&req, "", "application/json; charset=utf-8", "{\"a\":1}");
    assert_int_equal(kit_req_json(&req, &obj), 0);
    assert_int_equal(json_integer_value(json_object_get(obj, "a")), 1);
    json_t *again = NULL;
    assert_int_equal(kit_req_json(&req, &again), 0);
    assert_ptr_equal(obj, again);
    assert_int_equal(req.status, 0);
    kit_req_release(&req);

    struct {
        const char *ct, *body;
        int status;
        const char *detail_part;
    } cases[] = {
        {NULL, "{}", 415, "application/json"},
        {"text/plain", "{}", 415, "application/json"},
        {"application/jsonx", "{}", 415, "application/json"},
        {"application/json", "", 400, "empty"},
        {"application/json", "{\"a\":", 400, "line 1"},
        {"application/json", "{\"a\":1,\"a\":2}", 400, "duplicate"},
        {"application/json", "[1]", 400, "object"},
        {"application/json", "\"s\"", 400, "line"},
        {"application/json", "{\"a\":\"\xff\"}", 400, "line"},
        {"Application/JSON", "{\"a\":\"\xc3\xa9\"}", 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        make(&req, "", cases[i].ct, cases[i].body);
        int rc = kit_req_json(&req, &obj);
        if (req.status != cases[i].status || (cases[i].status ? rc != AG_EINVAL : rc != 0))
            fail_msg("case %zu: rc %d status %d, want status %d", i, rc, req.status,
                     cases[i].status);
        if (cases[i].detail_part) {
            json_t *p = answer_json(&req);
            const char *d = json_string_value(json_object_get(p, "detail"));
            if (!d || !strstr(d, cases[i].detail_part))
                fail_msg("case %zu: detail \"%s\" lacks \"%s\"", i, d ? d : "(none)",
                         cases[i].detail_part);
            assert_string_equal(req.resp_type, "application/problem+json");
            json_decref(p);
        }
        kit_req_release(&req);
    }
}

static const struct kit_field fields[] = {
    {"email", JSON_STRING, true, 3, 20, 0, 0},  {"name", JSON_STRING, false, 0, 4, 0, 0},
    {"age", JSON_INTEGER, false, 0, 0, 0, 150}, {"admin", JSON_TRUE, false, 0, 0, 0, 0},
    {"tags", JSON_ARRAY, false, 0, 0, 0, 0},
};

/* Runs kit_req_fields on text; returns the count and leaves the errors in req. */
static size_t check(struct kit_req *req, const char *text)
{
    make(req, "", NULL, NULL);
    json_error_t e;
    json_t *obj = json_loads(text, 0, &e);
    if (!obj)
        fail_msg("bad test JSON %s: %s", text, e.text);
    size_t n = kit_req_fields(req, obj, fields, sizeof fields / sizeof fields[0]);
    json_decref(obj);
    return n;
}

/* True when req holds an error for field whose message contains part. */
static bool has_error(const struct kit_req *req, const char *field, const char *part)
{
    for (size_t i = 0; i < json_array_size(req->errors); i++) {
        json_t *e = json_array_get(req->errors, i);
        if (strcmp(json_string_value(json_object_get(e, "field")), field) == 0 &&
            strstr(json_string_value(json_object_get(e, "message")), part))
            return true;
    }
    return false;
}

static void fields_check(void **state)
{
    (void)state;
    struct kit_req req;
    assert_int_equal(check(&req, "{\"email\":\"a@b.io\",\"age\":3,\"admin\":false,\"tags\":[]}"),
                     0);
    kit_req_release(&req);
    /* bounds count code points: "ééé" is 6 bytes, 3 characters */
    assert_int_equal(
        check(&req,
              "{\"email\":\"\\u00e9\\u00e9\\u00e9\",\"name\":\"\\u00e9\\u00e9\\u00e9\\u00e9\"}"),
        0);
    kit_req_release(&req);

    assert_int_equal(check(&req, "{}"), 1);
    assert_true(has_error(&req, "email", "required"));
    kit_req_release(&req);

    assert_int_equal(check(&req, "{\"email\":1,\"age\":\"3\",\"admin\":\"yes\",\"tags\":{}}"), 4);
    assert_true(has_error(&req, "email", "must be a string"));
    assert_true(has_error(&req, "age", "must be an integer"));
    assert_true(has_error(&req, "admin", "must be a boolean"));
    assert_true(has_error(&req, "tags", "must be an array"));
    kit_req_release(&req);

    assert_int_equal(check(&req, "{\"email\":\"ab\",\"name\":\"abcde\",\"age\":151,\"extra\":1}"),
                     4);
    assert_true(has_error(&req, "email", "3 to 20"));
    assert_true(has_error(&req, "name", "0 to 4"));
    assert_true(has_error(&req, "age", "0 to 150"));
    assert_true(has_error(&req, "extra", "not a known member"));
    kit_req_release(&req);

    static const char *const controls[] = {
        "{\"email\":\"a\\u0000bcd\"}", "{\"email\":\"ab\\ncd\"}",     "{\"email\":\"ab\\u007fcd\"}",
        "{\"email\":\"ab\\u0085cd\"}", "{\"email\":\"ab\\u2028cd\"}", "{\"email\":\"ab\\tcd\"}",
    };
    for (size_t i = 0; i < sizeof controls / sizeof controls[0]; i++) {
        make(&req, "", NULL, NULL);
        json_error_t e;
        json_t *obj = json_loads(controls[i], JSON_ALLOW_NUL, &e);
        assert_non_null(obj);
        size_t n = kit_req_fields(&req, obj, fields, 5);
        json_decref(obj);
        if (n != 1 || !has_error(&req, "email", "control"))
            fail_msg("%s: %zu errors, want 1 about control characters", controls[i], n);
        kit_req_release(&req);
    }

    /* kit_resp_invalid turns them into a 422 problem */
    assert_int_equal(check(&req, "{\"extra\":1}"), 2);
    assert_int_equal(kit_req_invalid_count(&req), 2);
    assert_int_equal(kit_resp_invalid(&req), 0);
    assert_int_equal(req.status, 422);
    json_t *p = answer_json(&req);
    assert_int_equal(json_array_size(json_object_get(p, "errors")), 2);
    assert_int_equal(json_integer_value(json_object_get(p, "status")), 422);
    json_decref(p);
    kit_req_release(&req);
}

static void param_id(void **state)
{
    (void)state;
    struct kit_req req;
    make(&req, "", NULL, NULL);
    struct kit_match m = {0};
    m.param_count = 2;
    m.params[0] =
        (struct kit_route_param){AG_STR("id"), AG_STR("0190b4a2-7c4e-7d1a-9f00-0123456789ab")};
    m.params[1] = (struct kit_route_param){AG_STR("name"), AG_STR("a%20b")};
    assert_int_equal(kit_req_set_match(&req, &m), 0);
    assert_string_equal(kit_req_param(&req, "name"), "a b");
    assert_null(kit_req_param(&req, "other"));
    const char *id = NULL;
    assert_int_equal(kit_req_param_id(&req, "id", &id), 0);
    assert_string_equal(id, "0190b4a2-7c4e-7d1a-9f00-0123456789ab");
    assert_int_equal(kit_req_param_id(&req, "name", &id), AG_EINVAL);
    assert_int_equal(req.status, 404);
    assert_non_null(strstr(req.resp_body, "no such name"));
    kit_req_release(&req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(query_basic),
        cmocka_unit_test(query_int),
        cmocka_unit_test(query_once),
        cmocka_unit_test(text_chars_counts),
        cmocka_unit_test(query_enum_and_page),
        cmocka_unit_test(headers_and_ids),
        cmocka_unit_test(json_body),
        cmocka_unit_test(fields_check),
        cmocka_unit_test(param_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
