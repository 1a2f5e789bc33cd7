/* libFuzzer target: the kit's path check, %-decoding and route matching keep kit_router.h's word.
 */
#include "fuzz_support.h"

#include "kit/kit_req.h"
#include "kit/kit_router.h"
#include "core/banned.h"

/*
 * Input: one control byte, then a path (the bytes as they are; NUL and '?' included).
 *
 * The control byte's low 3 bits pick the method (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS,
 * "get"). For every input:
 *   - kit_pct_decode, with and without plus_space, agrees with an independent decoder, and a
 *     result that fits is refused with AG_ERANGE one byte short of room;
 *   - kit_path_check agrees with an independent reading of its rules (it refuses %2F, so that a
 *     decoded param never holds a '/': this target's first finding);
 * and for a path that passes the check:
 *   - kit_router_match on a fixed table agrees with an independent matcher (status, route,
 *     Allow), on the table built in reverse order too, and twice on another copy of the path;
 *   - a matched route's params lie inside the path, are whole segments, and go through
 *     kit_req_set_match to decoded values without NUL or '/'.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int handler_unused(struct kit_req *req)
{
    (void)req;
    return 0;
}

#define ROUTE(m, p)                                                                                \
    {                                                                                              \
        m, p, handler_unused, KIT_PUBLIC, NULL                                                     \
    }
static const struct kit_route fixed_routes[] = {
    ROUTE("GET", "/"),
    ROUTE("GET", "/users"),
    ROUTE("POST", "/users"),
    ROUTE("GET", "/users/me"),
    ROUTE("GET", "/users/{id}"),
    ROUTE("PATCH", "/users/{id}"),
    ROUTE("DELETE", "/users/{id}"),
    ROUTE("DELETE", "/users/{id}/roles/{role}"),
    ROUTE("GET", "/{a}/x"),
    ROUTE("GET", "/y/{b}"),
    ROUTE("PUT", "/y/{b}"),
    ROUTE("POST", "/a.b/{x}"),
    ROUTE("GET", "/api/v1/orders/{order_id}/items/{item_id}"),
    ROUTE("GET", "/m/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}"),
    /* KIT_ROUTER_MAX_SEGMENTS segments: one more in a path matches nothing */
    ROUTE("GET", "/d/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17/18/19/20/21/22/23/24/25/26/27/28/"
                 "29/30/{p}"),
};
enum { ROUTE_COUNT = sizeof fixed_routes / sizeof fixed_routes[0] };

static const char *const methods[] = {"GET",   "HEAD",   "POST",    "PUT",
                                      "PATCH", "DELETE", "OPTIONS", "get"};
/* The order kit_router_match lists methods in Allow. */
static const char *const allow_order[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The reference decoder: returns the decoded length into out (len + 1 bytes), or -1. */
static long ref_decode(struct ag_str in, bool plus_space, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < in.len; i++) {
        char c = in.p[i];
        if (c == '%') {
            if (in.len - i < 3 || hex_digit(in.p[i + 1]) < 0 || hex_digit(in.p[i + 2]) < 0)
                return -1;
            c = (char)(hex_digit(in.p[i + 1]) * 16 + hex_digit(in.p[i + 2]));
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        if (c == '\0')
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

static void check_decode(struct ag_str in, bool plus_space)
{
    char *want = malloc(in.len + 1), *got = malloc(in.len + 1);
    CHECK(want && got);
    long n = ref_decode(in, plus_space, want);
    int rc = kit_pct_decode(in, plus_space, got, in.len + 1);
    if (n < 0) {
        CHECK(rc == AG_EINVAL);
    } else {
        CHECK(rc == n && memcmp(got, want, (size_t)n + 1) == 0);
        CHECK(kit_pct_decode(in, plus_space, got, (size_t)n) == AG_ERANGE);
        CHECK(kit_pct_decode(in, plus_space, got, (size_t)n + 1) == n);
    }
    free(want);
    free(got);
}

/* True when seg (raw) is "." or "..", any dot possibly written %2e or %2E. */
static bool ref_dot_segment(struct ag_str seg)
{
    size_t dots = 0;
    for (size_t i = 0; i < seg.len; dots++) {
        if (seg.p[i] == '.')
            i++;
        else if (seg.len - i >= 3 && seg.p[i] == '%' && seg.p[i + 1] == '2' &&
                 (seg.p[i + 2] | 0x20) == 'e')
            i += 3;
        else
            return false;
    }
    return dots == 1 || dots == 2;
}

/* kit_path_check's rules, read from kit_router.h: whether path is acceptable. */
static bool ref_path_ok(struct ag_str path)
{
    if (path.len == 0 || path.p[0] != '/')
        return false;
    for (size_t i = 0; i < path.len; i++) {
        unsigned char c = (unsigned char)path.p[i];
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c == '%' &&
            (path.len - i < 3 || hex_digit(path.p[i + 1]) < 0 || hex_digit(path.p[i + 2]) < 0 ||
             (path.p[i + 1] == '0' && path.p[i + 2] == '0') ||
             (path.p[i + 1] == '2' && (path.p[i + 2] | 0x20) == 'f')))
            return false;
    }
    size_t start = 1;
    for (size_t i = 1; i <= path.len; i++) {
        if (i < path.len && path.p[i] != '/')
            continue;
        struct ag_str seg = {path.p + start, i - start};
        if ((seg.len == 0 && i < path.len) || ref_dot_segment(seg))
            return false;
        start = i + 1;
    }
    return true;
}

/* The i-th '/'-separated segment of s after its leading '/' (s = "/a/b": 0 is "a"). */
static size_t segments_of(struct ag_str s, struct ag_str *out, size_t max)
{
    if (s.len <= 1)
        return 0;
    size_t n = 0;
    struct ag_str rest = {s.p + 1, s.len - 1};
    while (rest.p) {
        struct ag_str seg;
        rest = ag_str_split(rest, '/', &seg);
        if (n == max)
            return SIZE_MAX;
        out[n++] = seg;
    }
    return n;
}

static bool is_param(struct ag_str seg)
{
    return seg.len > 2 && seg.p[0] == '{';
}

/* Whether template t matches the raw path segments. */
static bool ref_route_matches(const char *t, const struct ag_str *segs, size_t n)
{
    struct ag_str tsegs[KIT_ROUTER_MAX_SEGMENTS];
    size_t tn = segments_of(ag_str_from_cstr(t), tsegs, KIT_ROUTER_MAX_SEGMENTS);
    if (tn != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (is_param(tsegs[i]) ? segs[i].len == 0 : !ag_str_eq(tsegs[i], segs[i]))
            return false;
    }
    return true;
}

/* True when template a is more specific than b: a literal at the first depth they differ. */
static bool more_specific(const char *a, const char *b)
{
    struct ag_str as[KIT_ROUTER_MAX_SEGMENTS], bs[KIT_ROUTER_MAX_SEGMENTS];
    size_t n = segments_of(ag_str_from_cstr(a), as, KIT_ROUTER_MAX_SEGMENTS);
    CHECK(segments_of(ag_str_from_cstr(b), bs, KIT_ROUTER_MAX_SEGMENTS) == n);
    for (size_t i = 0; i < n; i++)
        if (is_param(as[i]) != is_param(bs[i]))
            return !is_param(as[i]);
    return false;
}

struct ref_result {
    int status;
    const struct kit_route *route;
    char allow[KIT_ROUTER_ALLOW_MAX];
};

static void ref_match(const char *method, struct ag_str path, struct ref_result *res)
{
    memset(res, 0, sizeof *res);
    struct ag_str segs[KIT_ROUTER_MAX_SEGMENTS];
    size_t n = segments_of(path, segs, KIT_ROUTER_MAX_SEGMENTS);
    res->status = 404;
    if (n == SIZE_MAX)
        return;
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
    bool allowed[6] = {false};
    for (size_t i = 0; i < ROUTE_COUNT; i++) {
        const struct kit_route *r = &fixed_routes[i];
        if (!ref_route_matches(r->path, segs, n))
            continue;
        for (size_t k = 0; k < 6; k++)
            if (strcmp(allow_order[k], r->method) == 0)
                allowed[k] = true;
        allowed[1] = allowed[1] || strcmp(r->method, "GET") == 0;
        if (strcmp(r->method, want) == 0 &&
            (!res->route || more_specific(r->path, res->route->path)))
            res->route = r;
    }
    if (res->route) {
        res->status = 200;
        return;
    }
    size_t o = 0;
    for (size_t k = 0; k < 6; k++) {
        if (!allowed[k])
            continue;
        o += (size_t)snprintf(res->allow + o, sizeof res->allow - o, "%s%s", o ? ", " : "",
                              allow_order[k]);
        CHECK(o < sizeof res->allow);
    }
    if (o)
        res->status = 405;
}

/* The params of a 200 on path: whole non-empty segments, named as in the template. */
static void check_params(const struct kit_match *m, struct ag_str path)
{
    struct ag_str tsegs[KIT_ROUTER_MAX_SEGMENTS];
    size_t tn = segments_of(ag_str_from_cstr(m->route->path), tsegs, KIT_ROUTER_MAX_SEGMENTS);
    size_t want = 0;
    for (size_t i = 0; i < tn; i++)
        want += is_param(tsegs[i]);
    CHECK(m->param_count == want && want <= KIT_ROUTER_MAX_PARAMS);
    for (size_t i = 0; i < m->param_count; i++) {
        struct ag_str raw = m->params[i].raw;
        CHECK(raw.len > 0 && raw.p > path.p && raw.p + raw.len <= path.p + path.len);
        CHECK(raw.p[-1] == '/' && !memchr(raw.p, '/', raw.len));
        CHECK(raw.p + raw.len == path.p + path.len || raw.p[raw.len] == '/');
        CHECK(m->params[i].name.len > 0);
    }

    /* what a handler reads: decoded, NUL-terminated, no NUL inside, no '/' */
    struct kit_req req;
    CHECK(kit_req_init(&req, AG_STR("GET"), path, AG_STR(""), NULL, 0, 0) == 0);
    CHECK(kit_req_set_match(&req, m) == 0);
    CHECK(req.route == m->route && req.param_count == m->param_count);
    char *dec = malloc(path.len + 1);
    CHECK(dec != NULL);
    for (size_t i = 0; i < req.param_count; i++) {
        long n = ref_decode(m->params[i].raw, false, dec);
        const char *v = req.params[i].value;
        CHECK(n >= 0 && strlen(v) == (size_t)n && memcmp(v, dec, (size_t)n) == 0);
        CHECK(strchr(v, '/') == NULL);
        CHECK(ag_str_eq(ag_str_from_cstr(req.params[i].name), m->params[i].name));
        CHECK(kit_req_param(&req, req.params[i].name) == v);
    }
    free(dec);
    kit_req_release(&req);
}

static void check_match(const struct kit_router *r, const struct kit_router *reversed,
                        const char *method, struct ag_str path)
{
    static struct kit_match m, again;
    struct ref_result want;
    ref_match(method, path, &want);
    struct ag_str me = ag_str_from_cstr(method);
    int status = kit_router_match(r, me, path, &m);
    CHECK(status == want.status);
    CHECK(m.route == want.route);
    CHECK(strcmp(m.allow, want.allow) == 0);
    if (status == 200)
        check_params(&m, path);
    else
        CHECK(m.route == NULL && m.param_count == 0);

    /* the table's order and the path's address change nothing */
    char *copy = copy_of((const uint8_t *)path.p, path.len);
    struct ag_str other = {copy, path.len};
    CHECK(kit_router_match(reversed, me, other, &again) == status);
    CHECK(again.route == m.route && again.param_count == m.param_count);
    CHECK(strcmp(again.allow, m.allow) == 0);
    for (size_t i = 0; i < m.param_count; i++) {
        CHECK(again.params[i].raw.p - copy == m.params[i].raw.p - path.p);
        CHECK(again.params[i].raw.len == m.params[i].raw.len);
        CHECK(ag_str_eq(again.params[i].name, m.params[i].name));
    }
    free(copy);
}

static struct kit_router *build(bool reverse)
{
    struct kit_router *r = NULL;
    CHECK(kit_router_new(&r) == 0);
    for (size_t i = 0; i < ROUTE_COUNT; i++) {
        struct ag_err err = {0};
        CHECK(kit_router_add(r, &fixed_routes[reverse ? ROUTE_COUNT - 1 - i : i], &err) == 0);
    }
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct kit_router *router, *reversed;
    if (!router) {
        router = build(false);
        reversed = build(true);
    }
    if (size < 1)
        return 0;
    const char *method = methods[data[0] & 7];
    char *text = copy_of(data + 1, size - 1);
    struct ag_str path = {text, size - 1};

    check_decode(path, false);
    check_decode(path, true);

    const char *why = NULL;
    int rc = kit_path_check(path, &why);
    CHECK(rc == 0 || rc == AG_EINVAL);
    CHECK((rc == 0) == (why == NULL));
    CHECK((rc == 0) == ref_path_ok(path));
    if (rc == 0)
        check_match(router, reversed, method, path);
    free(text);
    return 0;
}
