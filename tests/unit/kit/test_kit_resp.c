/* Unit tests for src/kit/kit_resp.c and kit_id.c: answers, problem+json, UUIDv7, times. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kit/kit_req.h"

static void make(struct kit_req *req)
{
    struct ag_http_header h = {AG_STR("Host"), AG_STR("x")};
    assert_int_equal(kit_req_init(req, AG_STR("GET"), AG_STR("/"), AG_STR(""), &h, 1, 100), 0);
}

static json_t *answer_json(const struct kit_req *req)
{
    json_error_t e;
    json_t *v = json_loadb(req->resp_body, req->resp_len, 0, &e);
    if (!v)
        fail_msg("answer is not JSON: %.*s", (int)req->resp_len, req->resp_body);
    return v;
}

static void problem_shape(void **state)
{
    (void)state;
    struct kit_req req;
    make(&req);
    assert_int_equal(kit_resp_problem(&req, 409, "e-mail %s is \"taken\"\n", "a@x.io"), 0);
    assert_int_equal(req.status, 409);
    assert_string_equal(req.resp_type, "application/problem+json");
    json_t *p = answer_json(&req);
    assert_int_equal(json_object_size(p), 5);
    assert_string_equal(json_string_value(json_object_get(p, "request_id")), req.request_id);
    assert_string_equal(json_string_value(json_object_get(p, "type")), "about:blank");
    assert_string_equal(json_string_value(json_object_get(p, "title")), "Conflict");
    assert_int_equal(json_integer_value(json_object_get(p, "status")), 409);
    assert_string_equal(json_string_value(json_object_get(p, "detail")),
                        "e-mail a@x.io is \"taken\"\n");
    json_decref(p);
    /* one answer per request */
    assert_int_equal(kit_resp_status(&req, 204), AG_ECLOSED);
    assert_int_equal(kit_resp_json(&req, 200, json_object()), AG_ECLOSED);
    assert_int_equal(kit_resp_header(&req, "X-A", "b"), AG_ECLOSED);
    assert_int_equal(req.status, 409);
    kit_req_release(&req);

    /* invalid UTF-8 in a detail becomes U+FFFD, so the body stays valid JSON */
    make(&req);
    assert_int_equal(kit_resp_problem(&req, 400, "bad \xff\xfe name"), 0);
    p = answer_json(&req);
    assert_string_equal(json_string_value(json_object_get(p, "detail")),
                        "bad \xef\xbf\xbd\xef\xbf\xbd name");
    json_decref(p);
    kit_req_release(&req);
}

static void problem_errors(void **state)
{
    (void)state;
    struct kit_req req;
    make(&req);
    kit_req_invalid(&req, "email", "is not an e-mail address");
    kit_req_invalid(&req, "pass\xffword", "is too short");
    assert_int_equal(kit_req_invalid_count(&req), 2);
    assert_int_equal(kit_resp_invalid(&req), 0);
    assert_int_equal(req.status, 422);
    json_t *p = answer_json(&req);
    assert_string_equal(json_string_value(json_object_get(p, "title")), "Unprocessable Content");
    json_t *errors = json_object_get(p, "errors");
    assert_int_equal(json_array_size(errors), 2);
    json_t *e0 = json_array_get(errors, 0);
    assert_string_equal(json_string_value(json_object_get(e0, "field")), "email");
    assert_string_equal(json_string_value(json_object_get(e0, "message")),
                        "is not an e-mail address");
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 1), "field")),
                        "pass\xef\xbf\xbdword");
    json_decref(p);
    kit_req_release(&req);
}

static void json_and_created(void **state)
{
    (void)state;
    struct kit_req req;
    make(&req);
    assert_int_equal(kit_resp_header(&req, "X-Custom", "v"), 0);
    assert_int_equal(kit_resp_header(&req, "Bad Name", "v"), AG_EINVAL);
    assert_int_equal(kit_resp_header(&req, "X-Split", "a\r\nSet-Cookie: x"), AG_EINVAL);
    assert_int_equal(kit_resp_created(&req, "/users/1", json_pack("{s:s}", "id", "1")), 0);
    assert_int_equal(req.status, 201);
    assert_string_equal(req.resp_type, "application/json");
    assert_int_equal(req.resp_field_count, 2);
    assert_string_equal(req.resp_fields[1].name, "Location");
    assert_string_equal(req.resp_fields[1].value, "/users/1");
    assert_int_equal(req.resp_len, strlen("{\"id\":\"1\"}"));
    assert_memory_equal(req.resp_body, "{\"id\":\"1\"}", req.resp_len);
    kit_req_release(&req);

    make(&req);
    assert_int_equal(kit_resp_json(&req, 200, NULL), 0);
    assert_int_equal(req.status, 500);
    kit_req_release(&req);

    make(&req);
    assert_int_equal(kit_resp_created(&req, "http://evil/", json_object()), 0);
    assert_int_equal(req.status, 500);
    kit_req_release(&req);

    make(&req);
    assert_int_equal(kit_resp_raw(&req, 200, "text/plain", "abc", 3), 0);
    assert_int_equal(req.resp_len, 3);
    assert_string_equal(req.resp_type, "text/plain");
    kit_req_release(&req);

    make(&req);
    assert_int_equal(kit_resp_status(&req, 204), 0);
    assert_int_equal(req.status, 204);
    assert_int_equal(req.resp_len, 0);
    assert_null(req.resp_type);
    kit_req_release(&req);
}

static void page(void **state)
{
    (void)state;
    struct kit_req req;
    make(&req);
    struct kit_page pg = {.page = 2, .per_page = 10, .offset = 10};
    assert_int_equal(kit_resp_page(&req, json_pack("[i,i]", 1, 2), &pg, 12), 0);
    json_t *p = answer_json(&req);
    assert_int_equal(json_array_size(json_object_get(p, "items")), 2);
    assert_int_equal(json_integer_value(json_object_get(p, "page")), 2);
    assert_int_equal(json_integer_value(json_object_get(p, "per_page")), 10);
    assert_int_equal(json_integer_value(json_object_get(p, "total")), 12);
    json_decref(p);
    kit_req_release(&req);
}

static void uuid_v7(void **state)
{
    (void)state;
    char prev[KIT_ID_LEN + 1] = "";
    int64_t before = kit_now_ms();
    for (int i = 0; i < 10000; i++) {
        char id[KIT_ID_LEN + 1];
        kit_id_new(id);
        assert_int_equal(strlen(id), KIT_ID_LEN);
        assert_true(kit_id_valid(id));
        assert_int_equal(id[14], '7');           /* version */
        assert_non_null(strchr("89ab", id[19])); /* variant 10xx */
        for (const char *c = id; *c; c++)
            assert_true(*c == '-' || (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'));
        if (prev[0] && strcmp(prev, id) >= 0)
            fail_msg("ids not increasing: %s then %s", prev, id);
        memcpy(prev, id, sizeof id);
    }
    /* the first 48 bits are the time in ms */
    char id[KIT_ID_LEN + 1];
    kit_id_new(id);
    char hex[13];
    memcpy(hex, id, 8);
    memcpy(hex + 8, id + 9, 4);
    hex[12] = '\0';
    long long ms = strtoll(hex, NULL, 16);
    assert_true(ms >= before);
    assert_true(ms <= kit_now_ms() + 1000); /* monotonic bumps stay near now */

    assert_true(kit_id_valid("0190B4A2-7C4E-7D1A-9F00-0123456789AB"));
    assert_false(kit_id_valid("0190b4a2-7c4e-7d1a-9f00-0123456789a"));
    assert_false(kit_id_valid("0190b4a2-7c4e-7d1a-9f00-0123456789abc"));
    assert_false(kit_id_valid("0190b4a2x7c4e-7d1a-9f00-0123456789ab"));
    assert_false(kit_id_valid("0190b4a2-7c4e-7d1a-9f00-0123456789ag"));
    assert_false(kit_id_valid("me"));
    assert_false(kit_id_valid(""));
    assert_false(kit_id_valid(NULL));
}

static void times(void **state)
{
    (void)state;
    char out[32];
    kit_time_rfc3339(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
    kit_time_rfc3339(INT64_C(1795255200123), out);
    assert_string_equal(out, "2026-11-21T10:00:00.123Z");
    kit_time_rfc3339(-1, out);
    assert_string_equal(out, "1969-12-31T23:59:59.999Z");
    kit_now_rfc3339(out);
    assert_int_equal(strlen(out), 24);
    assert_int_equal(out[23], 'Z');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(problem_shape),    cmocka_unit_test(problem_errors),
        cmocka_unit_test(json_and_created), cmocka_unit_test(page),
        cmocka_unit_test(uuid_v7),          cmocka_unit_test(times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
