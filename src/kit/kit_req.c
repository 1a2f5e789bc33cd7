/* Request helpers for handlers: path and query parameters, headers, the JSON body, identity. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "kit/kit_req.h"
#include "core/banned.h"

bool kit_request_id_valid(struct ag_str s)
{
    if (s.len == 0 || s.len > KIT_REQ_ID_MAX)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Copies s into the arena at *pos, NUL-terminated; returns the copy as a slice. */
static struct ag_str arena_put(char *arena, size_t *pos, struct ag_str s)
{
    char *dst = arena + *pos;
    if (s.len)
        memcpy(dst, s.p, s.len);
    dst[s.len] = '\0';
    *pos += s.len + 1;
    return (struct ag_str){dst, s.len};
}

/* Decodes one query parameter k[=v] into the arena's tail; false when the name is bad. */
static void query_decode(struct kit_req *req, char *space, size_t *pos)
{
    struct ag_str rest = req->query;
    while (rest.p && rest.len > 0 && req->query_count < KIT_REQ_QUERY_MAX) {
        struct ag_str item;
        rest = ag_str_split(rest, '&', &item);
        if (item.len == 0)
            continue;
        struct ag_str key;
        struct ag_str value = ag_str_split(item, '=', &key);
        char *kout = space + *pos;
        int kl = kit_pct_decode(key, true, kout, key.len + 1);
        if (kl < 0 || kl == 0)
            continue; /* a name that does not decode names nothing a handler asks for */
        *pos += (size_t)kl + 1;
        struct kit_query_param *qp = &req->query_params[req->query_count++];
        qp->name = kout;
        char *vout = space + *pos;
        struct ag_str v = value.p ? value : AG_STR("");
        int vl = kit_pct_decode(v, true, vout, v.len + 1);
        if (vl < 0) {
            qp->value = NULL;
        } else {
            qp->value = vout;
            *pos += (size_t)vl + 1;
        }
    }
}

int kit_req_init(struct kit_req *req, struct ag_str method, struct ag_str path, struct ag_str query,
                 const struct ag_http_header *headers, size_t count, size_t max_body)
{
    memset(req, 0, sizeof *req);
    ag_buf_init(&req->body, max_body);
    /* the copies, then the decoded query (never longer than the query itself, per parameter
     * name and value with their NULs: at most query.len + 2 per item, bounded by 2 * len + 2) */
    size_t need = method.len + 1 + path.len + 1 + query.len + 1 + 2 * query.len + 2;
    for (size_t i = 0; i < count; i++)
        need += headers[i].name.len + headers[i].value.len + 2;
    req->arena = malloc(need);
    req->headers = calloc(count ? count : 1, sizeof *req->headers);
    if (!req->arena || !req->headers) {
        kit_req_release(req);
        return AG_ENOMEM;
    }
    size_t pos = 0;
    req->head = ag_str_eq(method, AG_STR("HEAD"));
    struct ag_str m = arena_put(req->arena, &pos, req->head ? AG_STR("GET") : method);
    req->method = m.p;
    req->path = arena_put(req->arena, &pos, path);
    req->query = arena_put(req->arena, &pos, query);
    for (size_t i = 0; i < count; i++) {
        req->headers[i].name = arena_put(req->arena, &pos, headers[i].name);
        req->headers[i].value = arena_put(req->arena, &pos, headers[i].value);
    }
    req->header_count = count;
    query_decode(req, req->arena, &pos);

    struct ag_str rid = ag_http_header_get(req->headers, count, AG_STR("X-Request-Id"));
    if (rid.p && kit_request_id_valid(rid)) {
        memcpy(req->request_id, rid.p, rid.len);
        req->request_id[rid.len] = '\0';
    } else {
        kit_id_new(req->request_id);
    }
    struct ag_str auth = ag_http_header_get(req->headers, count, AG_STR("Authorization"));
    if (auth.p && auth.len > 7 && ag_str_eq_nocase((struct ag_str){auth.p, 7}, AG_STR("Bearer ")))
        req->token = ag_str_trim_ows((struct ag_str){auth.p + 7, auth.len - 7});
    return 0;
}

void kit_req_unanswer(struct kit_req *req)
{
    for (size_t i = 0; i < req->resp_field_count; i++) {
        free(req->resp_fields[i].name);
        free(req->resp_fields[i].value);
    }
    req->resp_field_count = 0;
    free(req->resp_type);
    free(req->resp_body);
    req->resp_type = NULL;
    req->resp_body = NULL;
    req->resp_len = 0;
    req->status = 0;
}

void kit_req_release(struct kit_req *req)
{
    free(req->arena);
    free(req->headers);
    free(req->param_block);
    ag_buf_release(&req->body);
    json_decref(req->json);
    json_decref(req->errors);
    for (size_t i = 0; i < req->resp_field_count; i++) {
        free(req->resp_fields[i].name);
        free(req->resp_fields[i].value);
    }
    free(req->resp_type);
    free(req->resp_body);
    explicit_bzero(&req->claims, sizeof req->claims);
    memset(req, 0, sizeof *req);
}

int kit_req_body_append(struct kit_req *req, const void *data, size_t len)
{
    return len ? ag_buf_append(&req->body, data, len) : 0;
}

int kit_req_set_match(struct kit_req *req, const struct kit_match *m)
{
    req->route = m->route;
    size_t need = 0;
    for (size_t i = 0; i < m->param_count; i++)
        need += m->params[i].name.len + m->params[i].raw.len + 2;
    free(req->param_block);
    req->param_block = NULL;
    req->param_count = 0;
    if (need == 0)
        return 0;
    req->param_block = malloc(need);
    if (!req->param_block)
        return AG_ENOMEM;
    size_t pos = 0;
    for (size_t i = 0; i < m->param_count; i++) {
        struct ag_str name = arena_put(req->param_block, &pos, m->params[i].name);
        char *v = req->param_block + pos;
        int n = kit_pct_decode(m->params[i].raw, false, v, m->params[i].raw.len + 1);
        if (n < 0)
            return AG_EINVAL;
        pos += (size_t)n + 1;
        req->params[req->param_count++] = (struct kit_param){name.p, v};
    }
    return 0;
}

/* ---- accessors ---- */

struct kit_app *kit_req_app(struct kit_req *req)
{
    return req->app;
}

struct kit_db *kit_req_db(struct kit_req *req)
{
    return req->db;
}

const char *kit_req_method(const struct kit_req *req)
{
    return req->method;
}

struct ag_str kit_req_path(const struct kit_req *req)
{
    return req->path;
}

const char *kit_req_id(const struct kit_req *req)
{
    return req->request_id;
}

const char *kit_req_param(const struct kit_req *req, const char *name)
{
    for (size_t i = 0; i < req->param_count; i++)
        if (strcmp(req->params[i].name, name) == 0)
            return req->params[i].value;
    return NULL;
}

int kit_req_param_id(struct kit_req *req, const char *name, const char **out)
{
    const char *v = kit_req_param(req, name);
    if (!v || !kit_id_valid(v)) {
        kit_resp_problem(req, 404, "no such %s", name);
        return AG_EINVAL;
    }
    *out = v;
    return 0;
}

const char *kit_req_query(const struct kit_req *req, const char *name)
{
    for (size_t i = 0; i < req->query_count; i++)
        if (strcmp(req->query_params[i].name, name) == 0)
            return req->query_params[i].value;
    return NULL;
}

/* How often name occurs in the query; *value gets the first one's value (NULL: bad escape). */
static size_t query_occurrences(const struct kit_req *req, const char *name, const char **value)
{
    size_t n = 0;
    for (size_t i = 0; i < req->query_count; i++) {
        if (strcmp(req->query_params[i].name, name) != 0)
            continue;
        if (n++ == 0)
            *value = req->query_params[i].value;
    }
    return n;
}

int kit_resp_query_invalid(struct kit_req *req, const char *name, const char *message)
{
    json_t *errors = json_array();
    char *field = kit_utf8_sanitize(name, strlen(name));
    if (errors && field)
        json_array_append_new(errors, json_pack("{s:s, s:s}", "field", field, "message", message));
    char detail[256];
    snprintf(detail, sizeof detail, "the query parameter %s is invalid", field ? field : "?");
    kit_resp_problem_ext(req, 400, errors, NULL, 0, detail);
    free(field);
    return AG_EINVAL;
}

struct ag_str kit_req_query_string(const struct kit_req *req)
{
    return req->query;
}

int kit_req_query_once(struct kit_req *req, const char *name, const char **out)
{
    const char *v = NULL;
    size_t n = query_occurrences(req, name, &v);
    *out = NULL;
    if (n > 1)
        return kit_resp_query_invalid(req, name, "given more than once");
    if (n == 1 && !v)
        return kit_resp_query_invalid(req, name, "has a malformed percent-escape");
    *out = v;
    return 0;
}

/* Parses an optional '-' and 1..19 digits into *out. */
static int parse_i64(const char *s, int64_t *out)
{
    bool neg = s[0] == '-';
    uint64_t mag;
    int rc =
        ag_str_to_u64(ag_str_from_cstr(s + neg), neg ? (uint64_t)INT64_MAX + 1 : INT64_MAX, &mag);
    if (rc < 0)
        return rc;
    *out = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
    return 0;
}

int kit_req_query_int(struct kit_req *req, const char *name, int64_t def, int64_t min, int64_t max,
                      int64_t *out)
{
    const char *v = NULL;
    size_t n = query_occurrences(req, name, &v);
    if (n == 0) {
        *out = def;
        return 0;
    }
    if (n > 1)
        return kit_resp_query_invalid(req, name, "given more than once");
    int64_t x = 0;
    int rc = v ? parse_i64(v, &x) : AG_EINVAL;
    if (rc == AG_EINVAL)
        return kit_resp_query_invalid(req, name, "must be an integer");
    char msg[96];
    snprintf(msg, sizeof msg, "must be an integer from %lld to %lld", (long long)min,
             (long long)max);
    if (rc < 0 || x < min || x > max)
        return kit_resp_query_invalid(req, name, msg);
    *out = x;
    return 0;
}

int kit_req_query_enum(struct kit_req *req, const char *name, const char *const *values,
                       const char *def, const char **out)
{
    const char *v = NULL;
    size_t n = query_occurrences(req, name, &v);
    if (n == 0) {
        *out = def;
        return 0;
    }
    if (n > 1)
        return kit_resp_query_invalid(req, name, "given more than once");
    for (size_t i = 0; v && values[i]; i++) {
        if (strcmp(values[i], v) == 0) {
            *out = values[i];
            return 0;
        }
    }
    struct ag_buf msg;
    ag_buf_init(&msg, 1024);
    ag_buf_appendf(&msg, "must be one of");
    for (size_t i = 0; values[i]; i++)
        ag_buf_appendf(&msg, "%s %s", i ? "," : "", values[i]);
    ag_buf_append(&msg, "", 1);
    int rc =
        kit_resp_query_invalid(req, name, msg.data ? msg.data : "must be one of the listed values");
    ag_buf_release(&msg);
    return rc;
}

int kit_req_page(struct kit_req *req, struct kit_page *out)
{
    int64_t page, per_page;
    int rc = kit_req_query_int(req, "page", 1, 1, 1000000000, &page);
    if (rc == 0)
        rc = kit_req_query_int(req, "per_page", 20, 1, 100, &per_page);
    if (rc < 0)
        return rc;
    out->page = page;
    out->per_page = per_page;
    out->offset = (page - 1) * per_page;
    return 0;
}

const char *kit_req_header(const struct kit_req *req, const char *name)
{
    struct ag_str v = ag_http_header_get(req->headers, req->header_count, ag_str_from_cstr(name));
    return v.p; /* every value in the arena is NUL-terminated */
}

struct ag_str kit_req_body(const struct kit_req *req)
{
    struct ag_str s = ag_buf_str(&req->body);
    return s.p ? s : AG_STR("");
}

/* True when the Content-Type's media type is application/json (parameters allowed). */
static bool content_type_json(const char *ct)
{
    if (!ct)
        return false;
    struct ag_str media;
    ag_str_split(ag_str_from_cstr(ct), ';', &media);
    return ag_str_eq_nocase(ag_str_trim_ows(media), AG_STR("application/json"));
}

/* Adds an errors[] entry for every number of v beyond int64 (read as a real), by member path. */
static void report_huge_numbers(struct kit_req *req, const json_t *v, const char *path, int depth)
{
    const char *key;
    json_t *member;
    size_t i;
    char sub[128];

    if (json_is_real(v) && fabs(json_real_value(v)) >= 9.2e18)
        kit_req_invalid(req, *path ? path : "(body)", "must be an integer in range");
    if (depth > 8 || kit_req_invalid_count(req) >= 16)
        return;
    json_object_foreach((json_t *)v, key, member)
    {
        snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", key);
        report_huge_numbers(req, member, sub, depth + 1);
    }
    json_array_foreach(v, i, member)
    {
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        report_huge_numbers(req, member, sub, depth + 1);
    }
}

int kit_req_json(struct kit_req *req, json_t **out)
{
    if (req->json) {
        *out = req->json;
        return 0;
    }
    if (!content_type_json(kit_req_header(req, "Content-Type"))) {
        kit_resp_problem(req, 415, "the body must be application/json");
        return AG_EINVAL;
    }
    struct ag_str body = kit_req_body(req);
    if (body.len == 0) {
        kit_resp_problem(req, 400, "the body is empty; a JSON object is expected");
        return AG_EINVAL;
    }
    json_error_t jerr;
    json_t *v = json_loadb(body.p, body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v && json_error_code(&jerr) == json_error_numeric_overflow) {
        /* Well-formed JSON whose integer is beyond 64 bits: a value out of range (422), not
         * malformed text. Read again with integers as reals to name the members. */
        v = json_loadb(body.p, body.len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
        report_huge_numbers(req, v, "", 0);
        if (kit_req_invalid_count(req) == 0) /* a real beyond a double: 1e400 */
            kit_req_invalid(req, "(body)", "holds a number out of range");
        json_decref(v);
        kit_resp_invalid(req);
        return AG_EINVAL;
    }
    if (!v) {
        kit_resp_problem(req, 400, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column,
                         jerr.text);
        return AG_EINVAL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        kit_resp_problem(req, 400, "the body must be a JSON object");
        return AG_EINVAL;
    }
    req->json = v;
    *out = v;
    return 0;
}

/* ---- validation ---- */

void kit_req_invalid(struct kit_req *req, const char *field, const char *message)
{
    if (!req->errors)
        req->errors = json_array();
    char *f = kit_utf8_sanitize(field ? field : "", field ? strlen(field) : 0);
    char *m = kit_utf8_sanitize(message ? message : "", message ? strlen(message) : 0);
    if (req->errors && f && m)
        json_array_append_new(req->errors, json_pack("{s:s, s:s}", "field", f, "message", m));
    free(f);
    free(m);
}

size_t kit_req_invalid_count(const struct kit_req *req)
{
    return req->errors ? json_array_size(req->errors) : 0;
}

size_t kit_text_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        const unsigned char *p = (const unsigned char *)s + i;
        size_t l = ag_utf8_sequence_len(p, len - i);
        if (l == 0)
            return SIZE_MAX;
        if (l == 1 && (p[0] < 0x20 || p[0] == 0x7f))
            return SIZE_MAX;
        if (l == 2 && p[0] == 0xc2 && p[1] < 0xa0)
            return SIZE_MAX;
        if (l == 3 && p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9))
            return SIZE_MAX;
        i += l;
        n++;
    }
    return n;
}

static const char *type_name(json_type t)
{
    switch (t) {
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_ARRAY:
        return "an array";
    case JSON_OBJECT:
        return "an object";
    case JSON_REAL:
        return "a number";
    default:
        return "null";
    }
}

static bool type_fits(const json_t *v, json_type t)
{
    if (t == JSON_TRUE || t == JSON_FALSE)
        return json_is_boolean(v);
    if (t == JSON_REAL)
        return json_is_number(v);
    return json_typeof(v) == t;
}

static void field_check(struct kit_req *req, const struct kit_field *f, const json_t *v)
{
    char msg[160];
    if (!type_fits(v, f->type)) {
        snprintf(msg, sizeof msg, "must be %s", type_name(f->type));
        kit_req_invalid(req, f->name, msg);
        return;
    }
    if (f->type == JSON_STRING) {
        size_t n = kit_text_chars(json_string_value(v), json_string_length(v));
        if (n == SIZE_MAX) {
            kit_req_invalid(req, f->name, "must not hold control characters");
        } else if ((f->min_len && n < f->min_len) || (f->max_len && n > f->max_len)) {
            if (f->max_len)
                snprintf(msg, sizeof msg, "must be %zu to %zu characters long", f->min_len,
                         f->max_len);
            else
                snprintf(msg, sizeof msg, "must be at least %zu characters long", f->min_len);
            kit_req_invalid(req, f->name, msg);
        }
    } else if (f->type == JSON_INTEGER && (f->min || f->max)) {
        json_int_t x = json_integer_value(v);
        if (x < f->min || x > f->max) {
            snprintf(msg, sizeof msg, "must be from %lld to %lld", (long long)f->min,
                     (long long)f->max);
            kit_req_invalid(req, f->name, msg);
        }
    }
}

size_t kit_req_fields(struct kit_req *req, const json_t *obj, const struct kit_field *fields,
                      size_t count)
{
    size_t before = kit_req_invalid_count(req);
    if (!json_is_object(obj)) {
        kit_req_invalid(req, "", "must be an object");
        return kit_req_invalid_count(req) - before;
    }
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value)
    {
        bool known = false;
        for (size_t i = 0; i < count && !known; i++)
            known = strcmp(fields[i].name, key) == 0;
        if (!known)
            kit_req_invalid(req, key, "is not a known member");
    }
    for (size_t i = 0; i < count; i++) {
        const json_t *v = json_object_get(obj, fields[i].name);
        if (!v) {
            if (fields[i].required)
                kit_req_invalid(req, fields[i].name, "is required");
            continue;
        }
        field_check(req, &fields[i], v);
    }
    return kit_req_invalid_count(req) - before;
}

/* ---- identity ---- */

const struct ag_jwt_claims *kit_req_claims(const struct kit_req *req)
{
    return req->authenticated ? &req->claims : NULL;
}

const char *kit_req_subject(const struct kit_req *req)
{
    return req->authenticated ? req->claims.sub : NULL;
}

const char *kit_req_tenant(const struct kit_req *req)
{
    if (req->authenticated && req->claims.tenant[0])
        return req->claims.tenant;
    return req->default_tenant ? req->default_tenant : "default";
}

bool kit_req_has_role(const struct kit_req *req, const char *role)
{
    return req->authenticated && role &&
           ag_jwt_claims_has_role(&req->claims, ag_str_from_cstr(role));
}

struct ag_str kit_req_token(const struct kit_req *req)
{
    return req->token.p ? req->token : AG_STR("");
}

const char *kit_req_peer(const struct kit_req *req)
{
    return req->peer;
}
