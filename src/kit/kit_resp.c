/* Response helpers for handlers: JSON, empty and raw answers, problem+json (RFC 9457), pages. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/log.h"
#include "kit/db.h"
#include "kit/kit_req.h"
#include "core/banned.h"

char *kit_utf8_sanitize(const char *s, size_t len)
{
    char *out = malloc(len * 3 + 1); /* each bad byte becomes 3 bytes (EF BF BD) at most */
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t l = ag_utf8_sequence_len((const unsigned char *)s + i, len - i);
        if (l == 0 || (l == 1 && s[i] == '\0')) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, s + i, l);
            o += l;
            i += l;
        }
    }
    out[o] = '\0';
    return out;
}

/* Stores the answer; takes body (malloc'd, may be NULL with len 0). */
static int answer(struct kit_req *req, int status, const char *content_type, char *body, size_t len)
{
    if (req->status != 0) {
        free(body);
        return AG_ECLOSED;
    }
    char *ct = NULL;
    if (content_type && !(ct = strdup(content_type))) {
        free(body);
        return AG_ENOMEM;
    }
    req->status = status;
    req->resp_type = ct;
    req->resp_body = body;
    req->resp_len = len;
    return 0;
}

int kit_resp_header(struct kit_req *req, const char *name, const char *value)
{
    if (req->status != 0)
        return AG_ECLOSED;
    if (!name || !value || !ag_http_is_token(ag_str_from_cstr(name)) ||
        !ag_http_field_value_safe(ag_str_from_cstr(value)))
        return AG_EINVAL;
    if (req->resp_field_count == KIT_RESP_HEADERS_MAX)
        return AG_ERANGE;
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return AG_ENOMEM;
    }
    req->resp_fields[req->resp_field_count++] = (struct kit_resp_field){n, v};
    return 0;
}

/* Answers a bare 500 problem when something went wrong building the real answer. */
static int answer_500(struct kit_req *req, const char *detail)
{
    return kit_resp_problem_ext(req, 500, NULL, NULL, 0, detail);
}

int kit_resp_json(struct kit_req *req, int status, json_t *body)
{
    if (req->status != 0) {
        json_decref(body);
        return AG_ECLOSED;
    }
    if (!body)
        return answer_500(req, "the handler gave no response body");
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    if (!text)
        return answer_500(req, "the response body could not be encoded");
    return answer(req, status, "application/json", text, strlen(text));
}

int kit_resp_created(struct kit_req *req, const char *location, json_t *body)
{
    if (req->status != 0) {
        json_decref(body);
        return AG_ECLOSED;
    }
    if (!location || location[0] != '/') {
        json_decref(body);
        return answer_500(req, "the Location of a created resource must be a path");
    }
    int rc = kit_resp_header(req, "Location", location);
    if (rc < 0) {
        json_decref(body);
        return answer_500(req, "the Location of a created resource is not a valid field");
    }
    return kit_resp_json(req, 201, body);
}

int kit_resp_status(struct kit_req *req, int status)
{
    return answer(req, status, NULL, NULL, 0);
}

int kit_resp_raw(struct kit_req *req, int status, const char *content_type, const void *data,
                 size_t len)
{
    if (req->status != 0)
        return AG_ECLOSED;
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return AG_ENOMEM;
    if (len)
        memcpy(copy, data, len);
    return answer(req, status, content_type, copy, len);
}

int kit_resp_problem_ext(struct kit_req *req, int status, json_t *errors,
                         const struct ag_http_header *headers, size_t count, const char *detail)
{
    int rc = 0;
    char *text = NULL;
    char *safe = NULL;
    json_t *obj = NULL;
    if (req->status != 0) {
        rc = AG_ECLOSED;
        goto out;
    }
    if (status < 100 || status > 599)
        status = 500;
    safe = detail ? kit_utf8_sanitize(detail, strlen(detail)) : NULL;
    obj = json_pack("{s:s, s:s, s:i}", "type", "about:blank", "title", ag_http_reason(status),
                    "status", status);
    if (!obj || (detail && !safe)) {
        rc = AG_ENOMEM;
        goto out;
    }
    if (safe)
        json_object_set_new(obj, "detail", json_string(safe));
    if (errors) {
        json_object_set(obj, "errors", errors);
    }
    /* As the gateway's own refusals do: the id that finds the request's log lines. */
    if (req->request_id[0])
        json_object_set_new(obj, "request_id", json_string(req->request_id));
    text = json_dumps(obj, JSON_COMPACT);
    if (!text) {
        rc = AG_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < count && i < 4; i++) {
        char name[64], value[512];
        snprintf(name, sizeof name, "%.*s", (int)headers[i].name.len, headers[i].name.p);
        snprintf(value, sizeof value, "%.*s", (int)headers[i].value.len, headers[i].value.p);
        kit_resp_header(req, name, value);
    }
    rc = answer(req, status, "application/problem+json", text, strlen(text));
    text = NULL;
out:
    if (rc == AG_ENOMEM && req->status == 0) {
        /* a fixed answer that needs no allocation but the copy */
        static const char fallback[] = "{\"type\":\"about:blank\",\"title\":\"Internal Server "
                                       "Error\",\"status\":500}";
        char *copy = strdup(fallback);
        if (copy && answer(req, 500, "application/problem+json", copy, sizeof fallback - 1) < 0)
            copy = NULL;
    }
    free(text);
    free(safe);
    json_decref(obj);
    json_decref(errors);
    return rc;
}

int kit_resp_problem(struct kit_req *req, int status, const char *fmt, ...)
{
    char detail[KIT_PROBLEM_DETAIL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return kit_resp_problem_ext(req, status, NULL, NULL, 0, detail);
}

int kit_resp_invalid(struct kit_req *req)
{
    json_t *errors = req->errors ? json_incref(req->errors) : json_array();
    size_t n = json_array_size(errors);
    char detail[96];
    snprintf(detail, sizeof detail, "the request has %zu invalid field%s", n, n == 1 ? "" : "s");
    return kit_resp_problem_ext(req, 422, errors, NULL, 0, detail);
}

int kit_resp_page(struct kit_req *req, json_t *items, const struct kit_page *page, int64_t total)
{
    if (req->status != 0) {
        json_decref(items);
        return AG_ECLOSED;
    }
    if (!items || !page)
        return answer_500(req, "the handler gave no page");
    json_t *obj = json_pack("{s:o, s:I, s:I, s:I}", "items", items, "page", (json_int_t)page->page,
                            "per_page", (json_int_t)page->per_page, "total", (json_int_t)total);
    if (!obj)
        return answer_500(req, "out of memory");
    return kit_resp_json(req, 200, obj);
}

int kit_req_db_fail(struct kit_req *req, int rc, const struct ag_err *err)
{
    struct kit_db *db = kit_req_db(req);

    if (kit_db_in_transaction(db))
        kit_db_rollback(db);
    ag_log_error("database call failed", AG_F_STR("request_id", kit_req_id(req)),
                 AG_F_STR("code", ag_err_name(rc)), AG_F_STR("error", err ? err->msg : ""));
    return rc;
}
