/* Route matching for the kit: path checks, percent-decoding, templates with {params}. */
#include <stdlib.h>
#include <string.h>

#include "kit/kit_router.h"
#include "core/banned.h"

/* Methods a route may name, as bits; HEAD is served by GET routes. */
static const char *const method_names[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
enum { METHOD_COUNT = 5 };

struct route_segment {
    struct ag_str text; /* literal bytes, or the parameter's name without braces */
    bool param;
};

struct compiled_route {
    const struct kit_route *route;
    unsigned method; /* index into method_names */
    size_t segment_count;
    struct route_segment segments[KIT_ROUTER_MAX_SEGMENTS];
    uint32_t param_mask; /* bit (31 - depth) set for a parameter: smaller is more specific */
};

struct kit_router {
    struct compiled_route *routes;
    size_t count, cap;
};

int kit_pct_decode(struct ag_str in, bool plus_space, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < in.len; i++) {
        char c = in.p[i];
        if (c == '%') {
            if (i + 2 >= in.len)
                return AG_EINVAL;
            int h = ag_hex_value((unsigned char)in.p[i + 1]);
            int l = ag_hex_value((unsigned char)in.p[i + 2]);
            if (h < 0 || l < 0)
                return AG_EINVAL;
            c = (char)(h << 4 | l);
            if (c == '\0')
                return AG_EINVAL;
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        } else if (c == '\0') {
            return AG_EINVAL;
        }
        if (o + 1 >= cap)
            return AG_ERANGE;
        out[o++] = c;
    }
    if (o >= cap)
        return AG_ERANGE;
    out[o] = '\0';
    return (int)o;
}

/* True when the raw segment decodes to "." or ".." (either dot may be written %2e). */
static bool is_dot_segment(struct ag_str seg)
{
    size_t dots = 0, i = 0;
    while (i < seg.len) {
        if (seg.p[i] == '.') {
            i++;
        } else if (seg.p[i] == '%' && i + 2 < seg.len && seg.p[i + 1] == '2' &&
                   (seg.p[i + 2] == 'e' || seg.p[i + 2] == 'E')) {
            i += 3;
        } else {
            return false;
        }
        dots++;
    }
    return dots == 1 || dots == 2;
}

int kit_path_check(struct ag_str path, const char **why)
{
    const char *reason = NULL;
    if (path.len == 0 || path.p[0] != '/') {
        reason = "the path must start with '/'";
        goto out;
    }
    for (size_t i = 0; i < path.len; i++) {
        unsigned char c = (unsigned char)path.p[i];
        if (c < 0x20 || c == 0x7f) {
            reason = "the path holds a control character";
            goto out;
        }
        if (c == '%') {
            if (i + 2 >= path.len || ag_hex_value((unsigned char)path.p[i + 1]) < 0 ||
                ag_hex_value((unsigned char)path.p[i + 2]) < 0) {
                reason = "the path holds a malformed %-escape";
                goto out;
            }
            if (path.p[i + 1] == '0' && path.p[i + 2] == '0') {
                reason = "the path holds an encoded NUL";
                goto out;
            }
            if (path.p[i + 1] == '2' && (path.p[i + 2] == 'f' || path.p[i + 2] == 'F')) {
                /* it would decode into a {param} as a '/': one segment read as two */
                reason = "the path holds an encoded '/' (%2F)";
                goto out;
            }
        }
    }
    if (path.len == 1)
        goto out;
    size_t start = 1;
    for (size_t i = 1; i <= path.len; i++) {
        if (i < path.len && path.p[i] != '/')
            continue;
        struct ag_str seg = {path.p + start, i - start};
        if (seg.len == 0 && i < path.len) {
            reason = "the path holds an empty segment ('//')";
            goto out;
        }
        if (is_dot_segment(seg)) {
            reason = "the path holds a dot segment ('.' or '..')";
            goto out;
        }
        start = i + 1;
    }
out:
    if (why)
        *why = reason;
    return reason ? AG_EINVAL : 0;
}

int kit_router_new(struct kit_router **out)
{
    struct kit_router *r = calloc(1, sizeof *r);
    if (!r)
        return AG_ENOMEM;
    *out = r;
    return 0;
}

void kit_router_free(struct kit_router *r)
{
    if (!r)
        return;
    free(r->routes);
    free(r);
}

static bool name_valid(struct ag_str s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

static bool same_shape(const struct compiled_route *a, const struct compiled_route *b)
{
    if (a->segment_count != b->segment_count || a->param_mask != b->param_mask)
        return false;
    for (size_t i = 0; i < a->segment_count; i++)
        if (!a->segments[i].param && !ag_str_eq(a->segments[i].text, b->segments[i].text))
            return false;
    return true;
}

static int compile(const struct kit_route *route, struct compiled_route *c, struct ag_err *err)
{
    memset(c, 0, sizeof *c);
    c->route = route;
    const char *m = route->method ? route->method : "";
    unsigned mi = 0;
    while (mi < METHOD_COUNT && strcmp(method_names[mi], m) != 0)
        mi++;
    if (mi == METHOD_COUNT)
        return ag_err_set(err, AG_EINVAL,
                          "route %s %s: method must be GET, POST, PUT, PATCH or DELETE", m,
                          route->path ? route->path : "(null)");
    c->method = mi;
    if (!route->handler)
        return ag_err_set(err, AG_EINVAL, "route %s %s: no handler", m, route->path);
    if (route->access.kind == KIT_ACCESS_ROLES && (!route->access.roles || !*route->access.roles))
        return ag_err_set(err, AG_EINVAL, "route %s %s: KIT_ROLE without roles", m, route->path);
    struct ag_str path = ag_str_from_cstr(route->path);
    if (path.len == 0 || path.p[0] != '/')
        return ag_err_set(err, AG_EINVAL, "route %s %s: the template must start with '/'", m,
                          route->path ? route->path : "(null)");
    if (path.len == 1)
        return 0;
    size_t start = 1, params = 0;
    for (size_t i = 1; i <= path.len; i++) {
        if (i < path.len && path.p[i] != '/')
            continue;
        struct ag_str seg = {path.p + start, i - start};
        start = i + 1;
        if (seg.len == 0)
            return ag_err_set(err, AG_EINVAL, "route %s %s: empty segment", m, route->path);
        if (c->segment_count == KIT_ROUTER_MAX_SEGMENTS)
            return ag_err_set(err, AG_EINVAL, "route %s %s: over %d segments", m, route->path,
                              KIT_ROUTER_MAX_SEGMENTS);
        struct route_segment *s = &c->segments[c->segment_count];
        bool open = memchr(seg.p, '{', seg.len) || memchr(seg.p, '}', seg.len);
        if (open) {
            struct ag_str name = {seg.p + 1, seg.len >= 2 ? seg.len - 2 : 0};
            if (seg.len < 3 || seg.p[0] != '{' || seg.p[seg.len - 1] != '}' || !name_valid(name))
                return ag_err_set(err, AG_EINVAL,
                                  "route %s %s: a parameter is a whole segment {name}, name "
                                  "[A-Za-z_][A-Za-z0-9_]*",
                                  m, route->path);
            for (size_t k = 0; k < c->segment_count; k++)
                if (c->segments[k].param && ag_str_eq(c->segments[k].text, name))
                    return ag_err_set(err, AG_EINVAL, "route %s %s: parameter {%.*s} twice", m,
                                      route->path, (int)name.len, name.p);
            if (++params > KIT_ROUTER_MAX_PARAMS)
                return ag_err_set(err, AG_EINVAL, "route %s %s: over %d parameters", m, route->path,
                                  KIT_ROUTER_MAX_PARAMS);
            s->param = true;
            s->text = name;
            c->param_mask |= UINT32_C(1) << (31 - c->segment_count);
        } else {
            const char *why = NULL;
            for (size_t k = 0; k < seg.len; k++) {
                unsigned char ch = (unsigned char)seg.p[k];
                if (ch <= 0x20 || ch >= 0x7f || ch == '%' || ch == '?' || ch == '#')
                    why = "a literal segment holds a byte that a path cannot";
            }
            if (why || is_dot_segment(seg))
                return ag_err_set(err, AG_EINVAL, "route %s %s: %s", m, route->path,
                                  why ? why : "dot segment");
            s->text = seg;
        }
        c->segment_count++;
    }
    return 0;
}

int kit_router_add(struct kit_router *r, const struct kit_route *route, struct ag_err *err)
{
    struct compiled_route c;
    int rc = compile(route, &c, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < r->count; i++)
        if (r->routes[i].method == c.method && same_shape(&r->routes[i], &c))
            return ag_err_set(err, AG_EINVAL, "route %s %s collides with %s %s", route->method,
                              route->path, r->routes[i].route->method, r->routes[i].route->path);
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct compiled_route *n = realloc(r->routes, cap * sizeof *n);
        if (!n)
            return ag_err_set(err, AG_ENOMEM, "out of memory");
        r->routes = n;
        r->cap = cap;
    }
    r->routes[r->count++] = c;
    return 0;
}

/* Splits path into segments; returns the count, or SIZE_MAX when there are too many. */
static size_t split_path(struct ag_str path, struct ag_str segs[KIT_ROUTER_MAX_SEGMENTS])
{
    if (path.len <= 1)
        return 0;
    size_t n = 0, start = 1;
    for (size_t i = 1; i <= path.len; i++) {
        if (i < path.len && path.p[i] != '/')
            continue;
        if (n == KIT_ROUTER_MAX_SEGMENTS)
            return SIZE_MAX;
        segs[n++] = (struct ag_str){path.p + start, i - start};
        start = i + 1;
    }
    return n;
}

static bool route_matches(const struct compiled_route *c, const struct ag_str *segs, size_t n)
{
    if (c->segment_count != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (c->segments[i].param) {
            if (segs[i].len == 0)
                return false;
        } else if (!ag_str_eq(c->segments[i].text, segs[i])) {
            return false;
        }
    }
    return true;
}

int kit_router_match(const struct kit_router *r, struct ag_str method, struct ag_str path,
                     struct kit_match *m)
{
    memset(m, 0, sizeof *m);
    struct ag_str segs[KIT_ROUTER_MAX_SEGMENTS];
    size_t n = split_path(path, segs);
    if (n == SIZE_MAX)
        return 404;
    bool head = ag_str_eq(method, AG_STR("HEAD"));
    unsigned want = METHOD_COUNT;
    for (unsigned i = 0; i < METHOD_COUNT; i++)
        if (ag_str_eq(method, ag_str_from_cstr(method_names[i])) || (head && i == 0))
            want = i;
    const struct compiled_route *best = NULL;
    unsigned allowed = 0;
    for (size_t i = 0; i < r->count; i++) {
        const struct compiled_route *c = &r->routes[i];
        if (!route_matches(c, segs, n))
            continue;
        allowed |= 1u << c->method;
        if (c->method == want && (!best || c->param_mask < best->param_mask))
            best = c;
    }
    if (best) {
        m->route = best->route;
        for (size_t i = 0; i < n; i++) {
            if (!best->segments[i].param)
                continue;
            m->params[m->param_count++] = (struct kit_route_param){best->segments[i].text, segs[i]};
        }
        return 200;
    }
    if (!allowed)
        return 404;
    size_t o = 0;
    for (unsigned i = 0; i < METHOD_COUNT; i++) {
        if (!(allowed & (1u << i)))
            continue;
        const char *names[2] = {method_names[i], i == 0 ? "HEAD" : NULL};
        for (int k = 0; k < 2 && names[k]; k++) {
            size_t len = strlen(names[k]);
            if (o + len + 3 > sizeof m->allow)
                break;
            if (o) {
                memcpy(m->allow + o, ", ", 2);
                o += 2;
            }
            memcpy(m->allow + o, names[k], len);
            o += len;
        }
    }
    m->allow[o] = '\0';
    return 405;
}
