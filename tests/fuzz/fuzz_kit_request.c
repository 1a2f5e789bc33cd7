/* libFuzzer target: a query string and a JSON body through the kit's request helpers. */
#include "fuzz_support.h"

#include <jansson.h>

#include "kit/kit_req.h"
#include "core/banned.h"

/*
 * Input: one control byte, then the query string, a '\n', and the body (the rest, any bytes).
 *
 * Control bits 0-1 pick the Content-Type: application/json, "Application/JSON ; charset=utf-8",
 * text/plain, or none. Bit 2 limits the body to 64 bytes (kit_req_body_append must refuse the
 * rest with AG_ERANGE).
 *
 * Checks, each on a request of its own:
 *   - kit_req_init keeps at most KIT_REQ_QUERY_MAX parameters, exactly those an independent
 *     reading of the query finds, with the same decoded names and values; kit_req_query gives
 *     the first occurrence;
 *   - kit_req_query_int, _enum and kit_req_page return a value inside their bounds (or the
 *     default) exactly when an independent reading says the parameter is well-formed, and
 *     otherwise answer one 400 problem naming the parameter;
 *   - kit_req_json accepts only an application/json body that is a JSON object (answering 415
 *     or 400 otherwise), and returns the same object on a second call;
 *   - kit_req_fields against a fixed closed schema reports at most one violation per member and
 *     per field, each an errors[] entry with a field and a message, and kit_resp_invalid answers
 *     422 with all of them.
 * Every answer is a problem+json document whose status is the one answered. Nothing leaks.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { SMALL_BODY = 64, LARGE_BODY = 1 << 20 };

static const char *const content_types[] = {"application/json", "Application/JSON ; charset=utf-8",
                                            "text/plain", NULL};

static const char *const sort_values[] = {"asc", "desc", "relevance", NULL};

static const struct kit_field schema[] = {
    {"name", JSON_STRING, true, 1, 16, 0, 0},   {"email", JSON_STRING, false, 0, 0, 0, 0},
    {"age", JSON_INTEGER, false, 0, 0, 0, 150}, {"count", JSON_INTEGER, false, 0, 0, 0, 0},
    {"admin", JSON_TRUE, false, 0, 0, 0, 0},    {"tags", JSON_ARRAY, false, 0, 0, 0, 0},
    {"meta", JSON_OBJECT, false, 0, 0, 0, 0},   {"score", JSON_REAL, false, 0, 0, 0, 0},
};
enum { SCHEMA_COUNT = sizeof schema / sizeof schema[0] };

struct input {
    struct ag_str query, body;
    const char *content_type;
    size_t max_body;
};

/* ---- an independent reading of the query ---- */

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes in ('+' is a space) into a new string; NULL when an escape is bad or decodes to NUL. */
static char *ref_decode(struct ag_str in)
{
    char *out = malloc(in.len + 1);
    CHECK(out != NULL);
    size_t o = 0;
    for (size_t i = 0; i < in.len; i++) {
        char c = in.p[i];
        if (c == '%') {
            if (in.len - i < 3 || hex_digit(in.p[i + 1]) < 0 || hex_digit(in.p[i + 2]) < 0)
                goto bad;
            c = (char)(hex_digit(in.p[i + 1]) * 16 + hex_digit(in.p[i + 2]));
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (c == '\0')
            goto bad;
        out[o++] = c;
    }
    out[o] = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

struct ref_param {
    char *name;  /* never NULL */
    char *value; /* NULL: a bad escape */
};

/* The parameters kit_req_init must keep: the first KIT_REQ_QUERY_MAX with a non-empty name. */
static size_t ref_query(struct ag_str q, struct ref_param *out)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= q.len && n < KIT_REQ_QUERY_MAX; i++) {
        if (i < q.len && q.p[i] != '&')
            continue;
        struct ag_str item = {q.p + start, i - start};
        start = i + 1;
        const char *eq = item.len ? memchr(item.p, '=', item.len) : NULL;
        struct ag_str key = eq ? (struct ag_str){item.p, (size_t)(eq - item.p)} : item;
        struct ag_str value = eq ? (struct ag_str){eq + 1, item.len - key.len - 1} : AG_STR("");
        char *name = ref_decode(key);
        if (!name || !name[0]) {
            free(name);
            continue;
        }
        out[n++] = (struct ref_param){name, ref_decode(value)};
    }
    return n;
}

static void ref_free(struct ref_param *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].name);
        free(p[i].value);
    }
}

/* How often name occurs; *value gets the first one's value. */
static size_t ref_count(const struct ref_param *p, size_t n, const char *name, const char **value)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(p[i].name, name) == 0 && c++ == 0)
            *value = p[i].value;
    return c;
}

/* Whether s is an optional '-' and 1..19 digits (leading zeros count) whose value lies in
 * [min, max]; *out gets it. */
static bool ref_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    bool neg = s[0] == '-';
    const char *d = s + neg;
    if (!*d || strlen(d) > 19)
        return false;
    __int128 v = 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9')
            return false;
        v = v * 10 + (*d - '0');
        if (v > (__int128)1 << 64)
            return false;
    }
    if (neg)
        v = -v;
    if (v < min || v > max)
        return false;
    *out = (int64_t)v;
    return true;
}

/* ---- requests and answers ---- */

static void make(struct kit_req *req, const struct input *in)
{
    struct ag_http_header h[3];
    size_t n = 0;
    h[n++] = (struct ag_http_header){AG_STR("Host"), AG_STR("svc")};
    h[n++] = (struct ag_http_header){AG_STR("X-Request-Id"), AG_STR("fuzz-1")};
    if (in->content_type)
        h[n++] =
            (struct ag_http_header){AG_STR("Content-Type"), ag_str_from_cstr(in->content_type)};
    CHECK(kit_req_init(req, AG_STR("POST"), AG_STR("/p"), in->query, h, n, in->max_body) == 0);
    CHECK(strcmp(kit_req_id(req), "fuzz-1") == 0);
    CHECK(req->query_count <= KIT_REQ_QUERY_MAX);
    size_t half = in->body.len / 2;
    int rc = kit_req_body_append(req, in->body.p, half);
    if (rc == 0)
        rc = kit_req_body_append(req, in->body.p + half, in->body.len - half);
    CHECK(rc == (in->body.len <= in->max_body ? 0 : AG_ERANGE));
    struct ag_str body = kit_req_body(req);
    CHECK(body.len <= in->max_body && body.len <= in->body.len);
    CHECK(body.len == 0 || memcmp(body.p, in->body.p, body.len) == 0);
}

/* The answer is a problem+json document of status; returns its errors[] size. */
static size_t check_problem(const struct kit_req *req, int status)
{
    CHECK(req->status == status);
    CHECK(req->resp_type && strcmp(req->resp_type, "application/problem+json") == 0);
    json_error_t jerr;
    json_t *doc = json_loadb(req->resp_body, req->resp_len, JSON_REJECT_DUPLICATES, &jerr);
    CHECK(json_is_object(doc));
    CHECK(json_integer_value(json_object_get(doc, "status")) == status);
    CHECK(json_is_string(json_object_get(doc, "title")));
    const json_t *detail = json_object_get(doc, "detail");
    CHECK(!detail || (json_is_string(detail) && json_string_length(detail) < 4 * 1024));
    const json_t *errors = json_object_get(doc, "errors");
    size_t n = 0;
    if (errors) {
        CHECK(json_is_array(errors));
        n = json_array_size(errors);
        for (size_t i = 0; i < n; i++) {
            const json_t *e = json_array_get(errors, i);
            CHECK(json_is_string(json_object_get(e, "field")));
            CHECK(json_is_string(json_object_get(e, "message")));
        }
    }
    json_decref(doc);
    return n;
}

/* The request keeps the parameters the reference reading finds. */
static void check_query(const struct input *in, const struct ref_param *ref, size_t n)
{
    struct kit_req req;
    make(&req, in);
    CHECK(req.query_count == n);
    for (size_t i = 0; i < n; i++) {
        const struct kit_query_param *qp = &req.query_params[i];
        CHECK(strcmp(qp->name, ref[i].name) == 0);
        CHECK((qp->value == NULL) == (ref[i].value == NULL));
        CHECK(!qp->value || strcmp(qp->value, ref[i].value) == 0);
    }
    static const char *const names[] = {"a", "q", "n", "page", "sort", " "};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const char *want = NULL;
        ref_count(ref, n, names[k], &want);
        const char *got = kit_req_query(&req, names[k]);
        CHECK((got == NULL) == (want == NULL));
        CHECK(!got || strcmp(got, want) == 0);
    }
    CHECK(req.status == 0);
    kit_req_release(&req);
}

/* kit_req_query_int on name with [min, max] and a default, against the reference reading. */
static void check_int(const struct input *in, const struct ref_param *ref, size_t n,
                      const char *name, int64_t min, int64_t max)
{
    struct kit_req req;
    make(&req, in);
    const char *v = NULL;
    size_t c = ref_count(ref, n, name, &v);
    int64_t want = 7, got = -12345;
    bool ok = c == 0 || (c == 1 && v && ref_int(v, min, max, &want));
    int rc = kit_req_query_int(&req, name, 7, min, max, &got);
    if (ok) {
        CHECK(rc == 0 && got == want && req.status == 0);
    } else {
        CHECK(rc == AG_EINVAL && got == -12345);
        CHECK(check_problem(&req, 400) == 1);
    }
    kit_req_release(&req);
}

static void check_enum(const struct input *in, const struct ref_param *ref, size_t n)
{
    struct kit_req req;
    make(&req, in);
    const char *v = NULL, *got = NULL;
    size_t c = ref_count(ref, n, "sort", &v);
    int rc = kit_req_query_enum(&req, "sort", sort_values, "asc", &got);
    const char *const *want = c == 0 ? &sort_values[0] : NULL;
    for (size_t i = 0; c == 1 && v && sort_values[i] && !want; i++)
        if (strcmp(v, sort_values[i]) == 0)
            want = &sort_values[i];
    if (want) {
        CHECK(rc == 0 && req.status == 0 && got == *want);
    } else {
        CHECK(rc == AG_EINVAL && got == NULL);
        CHECK(check_problem(&req, 400) == 1);
    }
    kit_req_release(&req);
}

static void check_page(const struct input *in, const struct ref_param *ref, size_t n)
{
    struct kit_req req;
    make(&req, in);
    const char *pv = NULL, *sv = NULL;
    size_t pc = ref_count(ref, n, "page", &pv), sc = ref_count(ref, n, "per_page", &sv);
    int64_t page = 1, per_page = 20;
    bool ok = (pc == 0 || (pc == 1 && pv && ref_int(pv, 1, 1000000000, &page))) &&
              (sc == 0 || (sc == 1 && sv && ref_int(sv, 1, 100, &per_page)));
    struct kit_page got;
    int rc = kit_req_page(&req, &got);
    if (ok) {
        CHECK(rc == 0 && req.status == 0);
        CHECK(got.page == page && got.per_page == per_page);
        CHECK(got.offset == (page - 1) * per_page && got.offset >= 0);
    } else {
        CHECK(rc == AG_EINVAL);
        CHECK(check_problem(&req, 400) == 1);
    }
    kit_req_release(&req);
}

/* kit_req_fields on obj, then kit_resp_invalid: bounded counts, every entry well-formed. */
static void check_fields(struct kit_req *req, const json_t *obj)
{
    size_t before = kit_req_invalid_count(req);
    size_t bound = 1;
    if (json_is_object(obj))
        bound = json_object_size(obj) + SCHEMA_COUNT;
    size_t n = kit_req_fields(req, obj, schema, SCHEMA_COUNT);
    CHECK(n <= bound);
    CHECK(kit_req_invalid_count(req) == before + n);
    if (json_is_object(obj)) {
        bool complete = json_object_size(obj) <= SCHEMA_COUNT;
        const char *key;
        json_t *value;
        json_object_foreach((json_t *)obj, key, value)
        {
            bool known = false;
            for (size_t i = 0; i < SCHEMA_COUNT && !known; i++)
                known = strcmp(schema[i].name, key) == 0;
            complete = complete && known;
        }
        if (!json_object_get(obj, "name") || !complete)
            CHECK(n > 0); /* a required member missing, or a member outside the schema */
    } else {
        CHECK(n == 1);
    }
}

static void check_body(const struct input *in)
{
    struct kit_req req;
    make(&req, in);
    json_t *obj = NULL;
    int rc = kit_req_json(&req, &obj);
    struct ag_str body = kit_req_body(&req);
    bool is_json = in->content_type && in->content_type != content_types[2];
    if (rc == 0) {
        CHECK(is_json && body.len > 0 && json_is_object(obj) && req.status == 0);
        json_t *again = NULL;
        CHECK(kit_req_json(&req, &again) == 0 && again == obj);

        check_fields(&req, obj);
        /* a nested member that is itself checked: objects and non-objects alike */
        const char *key;
        json_t *value;
        size_t nested = 0;
        json_object_foreach(obj, key, value)
        {
            if (nested++ == 4)
                break;
            check_fields(&req, value);
        }
        size_t total = kit_req_invalid_count(&req);
        CHECK(kit_resp_invalid(&req) == 0);
        CHECK(check_problem(&req, 422) == total);
    } else {
        CHECK(rc == AG_EINVAL && obj == NULL);
        check_problem(&req, is_json ? 400 : 415);
        /* the handler's own answer is refused now */
        CHECK(kit_resp_status(&req, 204) == AG_ECLOSED);
    }
    kit_req_release(&req);

    /* any JSON value the body holds, object or not, through the closed schema */
    json_error_t jerr;
    json_t *any = json_loadb(in->body.p, in->body.len, JSON_DECODE_ANY, &jerr);
    if (any) {
        make(&req, in);
        check_fields(&req, any);
        kit_req_release(&req);
        json_decref(any);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *text = copy_of(data + 1, size - 1);
    struct ag_str rest = {text, size - 1};
    struct input in = {
        .content_type = content_types[data[0] & 3],
        .max_body = (data[0] & 4) ? SMALL_BODY : LARGE_BODY,
    };
    rest = ag_str_split(rest, '\n', &in.query);
    in.body = rest.p ? rest : AG_STR("");
    if (in.body.len > in.max_body)
        in.body.len = in.max_body + 1; /* one byte over: the append is refused */

    struct ref_param ref[KIT_REQ_QUERY_MAX];
    size_t n = ref_query(in.query, ref);
    check_query(&in, ref, n);
    check_int(&in, ref, n, "n", -1000, 1000);
    check_int(&in, ref, n, "big", INT64_MIN, INT64_MAX);
    check_enum(&in, ref, n);
    check_page(&in, ref, n);
    check_body(&in);
    ref_free(ref, n);
    free(text);
    return 0;
}
