/* The gateway's route table: validation, specificity order, and lock-free matching. */
#include "gateway/router.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/http_parse.h"
#include "core/banned.h"

/* Listed from most to least specific; the numeric order is the ranking. */
enum host_kind { HOST_EXACT, HOST_SUFFIX, HOST_ANY };
enum path_kind { PATH_EXACT, PATH_TEMPLATE, PATH_PREFIX };
/* SEG_REST: a prefix pattern's trailing empty segment ("/api/"), which matches any segment. */
enum seg_kind { SEG_LITERAL, SEG_PARAM, SEG_REST };

struct route_seg {
    const char *text; /* the literal bytes, or the param name; points into route.path */
    size_t len;
    enum seg_kind kind;
};

struct route {
    char *path; /* NUL-terminated copy */
    size_t path_len;
    struct route_seg *segs;
    size_t seg_count;
    size_t param_count;
    size_t head_len;     /* bytes before the first {param} (the whole path without one) */
    size_t head_segs;    /* segments within head_len */
    size_t literal_segs; /* leading SEG_LITERAL segments, which the trie indexes */
    enum path_kind kind;
    bool prefix;
    enum host_kind host_kind;
    char *host; /* lower case; ".example.com" for "*.example.com"; "" for "*" */
    size_t host_len;
    bool any_method;
    uint64_t methods; /* bit i: gw_router.method_names[i] */
    void *data;
    size_t index;
};

/*
 * A host group's index is a trie of leading literal segments: an edge (parent node, segment)
 * leads to a child node. Matching walks down as far as the path's segments lead, then scans
 * only the stopping node's candidates: the routes, in specificity order, that can match a path
 * that starts with the node's segments and does not continue into one of its children.
 */
struct trie_edge {
    const char *key;
    size_t len;
    uint64_t hash; /* of parent and key */
    size_t parent, child;
    bool used;
};

struct trie_node {
    const struct route *origin; /* a route whose first depth segments spell this node */
    size_t depth;
    size_t off, count; /* candidates in host_group.cands */
};

/* The routes sharing one host pattern. */
struct host_group {
    enum host_kind kind;
    const char *host; /* the first route's copy */
    size_t host_len;
    size_t first_index;
    struct trie_edge *edges; /* open addressing, at most half full */
    size_t edge_mask;
    struct trie_node *nodes; /* nodes[0] is the root */
    size_t node_count;
    const struct route **cands;
};

enum { METHODS_MAX = 64, METHODS_STANDARD = 9, METHOD_GET = 0, METHOD_HEAD = 1 };

struct gw_router {
    struct route *routes; /* in spec order */
    size_t route_count;
    struct host_group *groups; /* in host specificity order */
    size_t group_count;
    struct ag_str method_names[METHODS_MAX]; /* the standard ones, then copies */
    size_t method_count;
};

/* The standard methods, in the order an Allow value lists them. */
static const struct ag_str standard_methods[METHODS_STANDARD] = {
    AG_STR("GET"),    AG_STR("HEAD"),    AG_STR("POST"),  AG_STR("PUT"),     AG_STR("PATCH"),
    AG_STR("DELETE"), AG_STR("OPTIONS"), AG_STR("TRACE"), AG_STR("CONNECT"),
};

static const char *const out_of_memory = "out of memory building the route table";

static inline char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

static inline bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static uint64_t edge_hash(size_t parent, const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u ^ ((uint64_t)parent * 0x9e3779b97f4a7c15u); /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3u;
    return h;
}

static char *copy_cstr(const char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (c) {
        memcpy(c, s, n);
        c[n] = '\0';
    }
    return c;
}

/* ---- gw_path_check ---- */

/* True for ".", "..", their %2e spellings, and either before a ';' path parameter. */
static bool is_dot_segment(const char *s, size_t n)
{
    const char *semi = n ? memchr(s, ';', n) : NULL;
    if (semi)
        n = (size_t)(semi - s);
    size_t dots = 0;
    for (size_t i = 0; i < n; dots++) {
        if (s[i] == '.')
            i++;
        else if (s[i] == '%' && n - i >= 3 && s[i + 1] == '2' && lower(s[i + 2]) == 'e')
            i += 3;
        else
            return false;
    }
    return dots == 1 || dots == 2;
}

int gw_path_check(struct ag_str path)
{
    if (!path.p || path.len == 0 || path.p[0] != '/')
        return AG_EINVAL;
    size_t seg_start = 1;
    for (size_t i = 1; i <= path.len; i++) {
        if (i == path.len || path.p[i] == '/') {
            if (is_dot_segment(path.p + seg_start, i - seg_start))
                return AG_EINVAL;
            if (i < path.len && i == seg_start)
                return AG_EINVAL; /* "//": many upstreams merge it, the router would not */
            seg_start = i + 1;
            continue;
        }
        unsigned char c = (unsigned char)path.p[i];
        if (c <= 0x20 || c == 0x7f || c == '\\' || c == '#')
            return AG_EINVAL;
        if (c == '%') {
            int hi = i + 2 < path.len ? ag_hex_value((unsigned char)path.p[i + 1]) : -1;
            int lo = hi >= 0 ? ag_hex_value((unsigned char)path.p[i + 2]) : -1;
            int v = hi * 16 + lo;
            if (lo < 0 || v == 0 || v == '/' || v == '\\')
                return AG_EINVAL;
            /* An encoded unreserved character ("/%61dmin") means the same as the plain one to
             * an upstream that decodes, but not to the router: refuse rather than normalise. */
            if ((v >= 'a' && v <= 'z') || (v >= 'A' && v <= 'Z') || (v >= '0' && v <= '9') ||
                v == '-' || v == '.' || v == '_' || v == '~')
                return AG_EINVAL;
            i += 2;
        }
    }
    return 0;
}

/* ---- building ---- */

static int route_error(struct ag_err *err, const struct gw_route_spec *s, size_t i, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

static int route_error(struct ag_err *err, const struct gw_route_spec *s, size_t i, const char *fmt,
                       ...)
{
    char why[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (s->name)
        return ag_err_set(err, AG_EINVAL, "route \"%s\" (#%zu): %s", s->name, i, why);
    return ag_err_set(err, AG_EINVAL, "route #%zu: %s", i, why);
}

/* Why host is not a host pattern, or NULL with *kind set. */
static const char *host_problem(const char *host, enum host_kind *kind)
{
    if (!host || !*host)
        return "the host is empty";
    *kind = HOST_ANY;
    if (strcmp(host, "*") == 0)
        return NULL;
    *kind = host[0] == '*' && host[1] == '.' ? HOST_SUFFIX : HOST_EXACT;
    const char *name = *kind == HOST_SUFFIX ? host + 2 : host;
    if (name[0] == '[' && *kind == HOST_EXACT) {
        size_t n = strlen(name);
        if (n < 3 || name[n - 1] != ']')
            return "an IPv6 host must be written \"[address]\", without a port";
        for (size_t i = 1; i < n - 1; i++)
            if (ag_hex_value((unsigned char)name[i]) < 0 && name[i] != ':' && name[i] != '.')
                return "an IPv6 host holds only hex digits, ':' and '.'";
        return NULL;
    }
    for (size_t label = 0;; name++) {
        if (*name == '.' || *name == '\0') {
            if (label == 0)
                return "a host has no empty labels (and no trailing dot)";
            if (*name == '\0')
                return NULL;
            label = 0;
        } else if (*name == '*') {
            return "'*' is allowed only alone or as the whole first label (\"*.example.com\")";
        } else if (*name == ':') {
            return "a host pattern has no port";
        } else if (!is_alnum(*name) && *name != '-' && *name != '_') {
            return "a host holds only letters, digits, '-', '_' and '.'";
        } else {
            label++;
        }
    }
}

/* Why segment s[0..n) of a pattern is malformed, or NULL with seg filled. */
static const char *segment_parse(const char *s, size_t n, struct route_seg *seg)
{
    *seg = (struct route_seg){s, n, SEG_LITERAL};
    if (n > 0 && s[0] == '{') {
        if (n < 2 || s[n - 1] != '}')
            return "a '{' must enclose a whole segment (\"/{name}/\")";
        if (n == 2)
            return "a {param} needs a name";
        for (size_t i = 1; i < n - 1; i++)
            if (!is_alnum(s[i]) && s[i] != '_')
                return "a {param} name holds only letters, digits and '_'";
        *seg = (struct route_seg){s + 1, n - 2, SEG_PARAM};
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '{' || s[i] == '}')
            return "'{' and '}' must enclose a whole segment (\"/{name}/\")";
        if (s[i] == '%') {
            if (n - i < 3 || ag_hex_value((unsigned char)s[i + 1]) < 0 ||
                ag_hex_value((unsigned char)s[i + 2]) < 0)
                return "a '%' must start a %-escape of two hex digits";
            i += 2;
        } else if (!is_alnum(s[i]) && !(s[i] && strchr("-._~!$&'()*+,;=:@", s[i]))) {
            return "the path holds a byte that is not allowed in a URI path";
        }
    }
    return NULL;
}

/* Fills r's path fields from s; returns 0, or the code of the error set in err. */
static int route_parse_path(struct route *r, const struct gw_route_spec *s, size_t i,
                            struct ag_err *err)
{
    if (!s->path || s->path[0] != '/')
        return route_error(err, s, i, "the path must start with '/'");
    r->path_len = strlen(s->path);
    r->path = copy_cstr(s->path, r->path_len);
    size_t slashes = 0;
    for (size_t k = 0; k < r->path_len; k++)
        slashes += s->path[k] == '/';
    r->segs = calloc(slashes, sizeof *r->segs);
    if (!r->path || !r->segs)
        return ag_err_set(err, AG_ENOMEM, "%s", out_of_memory);

    const char *end = r->path + r->path_len;
    for (const char *seg = r->path + 1; seg <= end; r->seg_count++) {
        const char *slash = memchr(seg, '/', (size_t)(end - seg));
        const char *seg_end = slash ? slash : end;
        struct route_seg *sg = &r->segs[r->seg_count];
        const char *why = segment_parse(seg, (size_t)(seg_end - seg), sg);
        if (why)
            return route_error(err, s, i, "%s", why);
        if (sg->kind == SEG_PARAM && ++r->param_count > GW_ROUTE_MAX_PARAMS)
            return route_error(err, s, i, "more than %d {params}", GW_ROUTE_MAX_PARAMS);
        for (size_t k = 0; sg->kind == SEG_PARAM && k < r->seg_count; k++)
            if (r->segs[k].kind == SEG_PARAM && r->segs[k].len == sg->len &&
                memcmp(r->segs[k].text, sg->text, sg->len) == 0)
                return route_error(err, s, i, "the {param} name \"%.*s\" is used twice",
                                   (int)sg->len, sg->text);
        seg = seg_end + 1;
    }
    if (gw_path_check((struct ag_str){r->path, r->path_len}) < 0)
        return route_error(err, s, i,
                           "the path has a dot segment, %%2F, %%5C or %%00, which "
                           "the gateway refuses in requests");
    r->prefix = s->prefix;
    struct route_seg *last = &r->segs[r->seg_count - 1];
    if (r->prefix && last->kind == SEG_LITERAL && last->len == 0)
        last->kind = SEG_REST;
    r->kind = r->prefix ? PATH_PREFIX : r->param_count ? PATH_TEMPLATE : PATH_EXACT;
    while (r->literal_segs < r->seg_count && r->segs[r->literal_segs].kind == SEG_LITERAL)
        r->literal_segs++;
    r->head_len = r->path_len;
    for (r->head_segs = 0; r->head_segs < r->seg_count; r->head_segs++) {
        if (r->segs[r->head_segs].kind == SEG_PARAM) {
            r->head_len = (size_t)(r->segs[r->head_segs].text - 1 - r->path); /* to its '{' */
            break;
        }
    }
    return 0;
}

/* The bit of method in router, or -1 when the table does not know it. */
static int method_id(const struct gw_router *router, struct ag_str method)
{
    for (size_t i = 0; i < router->method_count; i++)
        if (router->method_names[i].len == method.len &&
            memcmp(router->method_names[i].p, method.p, method.len) == 0)
            return (int)i;
    return -1;
}

static int route_parse_methods(struct gw_router *router, struct route *r,
                               const struct gw_route_spec *s, size_t i, struct ag_err *err)
{
    r->any_method = s->method_count == 0;
    if (s->method_count > 0 && !s->methods)
        return route_error(err, s, i, "method_count is %zu but methods is NULL", s->method_count);
    for (size_t k = 0; k < s->method_count; k++) {
        struct ag_str m = ag_str_from_cstr(s->methods[k]);
        if (!ag_http_is_token(m))
            return route_error(err, s, i, "method \"%s\" is not an HTTP token",
                               s->methods[k] ? s->methods[k] : "(null)");
        int id = method_id(router, m);
        if (id < 0 && router->method_count == METHODS_MAX)
            return route_error(err, s, i, "the table has more than %d distinct methods",
                               METHODS_MAX);
        if (id < 0) {
            char *copy = copy_cstr(m.p, m.len);
            if (!copy)
                return ag_err_set(err, AG_ENOMEM, "%s", out_of_memory);
            id = (int)router->method_count++;
            router->method_names[id] = (struct ag_str){copy, m.len};
        }
        r->methods |= UINT64_C(1) << id;
    }
    if (r->methods & (UINT64_C(1) << METHOD_GET))
        r->methods |= UINT64_C(1) << METHOD_HEAD;
    return 0;
}

/* Writes the methods of mask as "GET, HEAD"; returns false when they do not fit in cap. */
static bool allow_format(const struct gw_router *router, uint64_t mask, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < router->method_count; i++) {
        if (!(mask & (UINT64_C(1) << i)))
            continue;
        struct ag_str m = router->method_names[i];
        size_t sep = len ? 2 : 0;
        if (len + sep + m.len + 1 > cap)
            return false;
        memcpy(buf + len, ", ", sep);
        memcpy(buf + len + sep, m.p, m.len);
        len += sep + m.len;
        buf[len] = '\0';
    }
    return true;
}

/* True when a and b have the same pattern: equal segments, {params} equal whatever the name. */
static bool same_pattern(const struct route *a, const struct route *b)
{
    if (a->prefix != b->prefix || a->seg_count != b->seg_count)
        return false;
    for (size_t k = 0; k < a->seg_count; k++) {
        const struct route_seg *x = &a->segs[k], *y = &b->segs[k];
        if (x->kind != y->kind ||
            (x->kind == SEG_LITERAL && (x->len != y->len || memcmp(x->text, y->text, x->len))))
            return false;
    }
    return true;
}

/* Orders routes of one host from most to least specific (see router.h), then by index. */
static int route_compare(const void *pa, const void *pb)
{
    const struct route *a = *(const struct route *const *)pa;
    const struct route *b = *(const struct route *const *)pb;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    if (a->kind == PATH_PREFIX && a->seg_count != b->seg_count)
        return a->seg_count > b->seg_count ? -1 : 1;
    for (size_t k = 0; k < a->seg_count && k < b->seg_count; k++)
        if (a->segs[k].kind != b->segs[k].kind)
            return a->segs[k].kind < b->segs[k].kind ? -1 : 1;
    if (a->seg_count != b->seg_count)
        return a->seg_count > b->seg_count ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

/* Orders host groups: exact, then suffixes longest first, then "*"; ties by first route. */
static int group_compare(const void *pa, const void *pb)
{
    const struct host_group *a = pa, *b = pb;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    if (a->kind == HOST_SUFFIX && a->host_len != b->host_len)
        return a->host_len > b->host_len ? -1 : 1;
    return a->first_index < b->first_index ? -1 : a->first_index > b->first_index;
}

/* The edge for (parent, key), or the empty slot where it would go. */
static struct trie_edge *edge_find(const struct host_group *g, size_t parent, const char *key,
                                   size_t len, uint64_t hash)
{
    for (size_t i = hash & g->edge_mask;; i = (i + 1) & g->edge_mask) {
        struct trie_edge *e = &g->edges[i];
        if (!e->used || (e->hash == hash && e->parent == parent && e->len == len &&
                         memcmp(e->key, key, len) == 0))
            return e;
    }
}

/*
 * Whether r can match a path that starts with node's segments and does not continue into one
 * of node's children. A route that spells node's segments and then a literal one made that
 * literal a child, so it is left out.
 */
static bool node_candidate(const struct trie_node *node, const struct route *r)
{
    size_t d = node->depth;
    for (size_t k = 0; k < d && k < r->seg_count; k++) {
        const struct route_seg *rs = &r->segs[k], *lit = &node->origin->segs[k];
        if (rs->kind == SEG_REST)
            return true;
        if (rs->kind == SEG_PARAM ? lit->len == 0
                                  : rs->len != lit->len || memcmp(rs->text, lit->text, lit->len))
            return false;
    }
    if (r->seg_count < d)
        return r->prefix;
    return r->literal_segs <= d;
}

/* Builds g's trie over its routes sorted[0..n), most specific first. */
static int group_index(struct host_group *g, const struct route **sorted, size_t n)
{
    size_t max_nodes = 1, slots = 4;
    for (size_t k = 0; k < n; k++)
        max_nodes += sorted[k]->literal_segs;
    while (slots < 2 * max_nodes)
        slots <<= 1;
    g->edges = calloc(slots, sizeof *g->edges);
    g->nodes = calloc(max_nodes, sizeof *g->nodes);
    if (!g->edges || !g->nodes)
        return AG_ENOMEM;
    g->edge_mask = slots - 1;
    g->node_count = 1;
    for (size_t k = 0; k < n; k++) {
        size_t node = 0;
        for (size_t i = 0; i < sorted[k]->literal_segs; i++) {
            const struct route_seg *s = &sorted[k]->segs[i];
            uint64_t h = edge_hash(node, s->text, s->len);
            struct trie_edge *e = edge_find(g, node, s->text, s->len, h);
            if (!e->used) {
                g->nodes[g->node_count] = (struct trie_node){.origin = sorted[k], .depth = i + 1};
                *e = (struct trie_edge){s->text, s->len, h, node, g->node_count++, true};
            }
            node = e->child;
        }
    }
    size_t total = 0;
    for (size_t i = 0; i < g->node_count; i++)
        for (size_t k = 0; k < n; k++)
            total += node_candidate(&g->nodes[i], sorted[k]);
    g->cands = calloc(total + 1, sizeof *g->cands);
    if (!g->cands)
        return AG_ENOMEM;
    total = 0;
    for (size_t i = 0; i < g->node_count; i++) {
        g->nodes[i].off = total;
        for (size_t k = 0; k < n; k++)
            if (node_candidate(&g->nodes[i], sorted[k]))
                g->cands[total++] = sorted[k];
        g->nodes[i].count = total - g->nodes[i].off;
    }
    return 0;
}

/* Groups the routes by host pattern, refuses ambiguous pairs, sorts and indexes each group. */
static int router_index(struct gw_router *router, const struct gw_route_spec *specs,
                        struct ag_err *err)
{
    int rc = 0;
    size_t n = router->route_count;
    const struct route **sorted = calloc(n + 1, sizeof *sorted);
    router->groups = calloc(n + 1, sizeof *router->groups);
    if (!sorted || !router->groups) {
        rc = ag_err_set(err, AG_ENOMEM, "%s", out_of_memory);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct route *r = &router->routes[i];
        size_t g = 0;
        while (g < router->group_count && (router->groups[g].kind != r->host_kind ||
                                           strcmp(router->groups[g].host, r->host) != 0))
            g++;
        if (g == router->group_count)
            router->groups[router->group_count++] = (struct host_group){
                .kind = r->host_kind, .host = r->host, .host_len = r->host_len, .first_index = i};
    }
    qsort(router->groups, router->group_count, sizeof *router->groups, group_compare);

    for (size_t g = 0; g < router->group_count; g++) {
        struct host_group *grp = &router->groups[g];
        size_t count = 0;
        for (size_t i = 0; i < n; i++) {
            const struct route *r = &router->routes[i];
            if (r->host_kind != grp->kind || strcmp(r->host, grp->host) != 0)
                continue;
            for (size_t k = 0; k < count; k++) {
                const struct route *o = sorted[k];
                if (same_pattern(o, r) &&
                    (o->any_method || r->any_method || (o->methods & r->methods))) {
                    rc = route_error(err, &specs[i], i,
                                     "same host, path%s and methods as route #%zu: ambiguous",
                                     r->prefix ? " prefix" : "", o->index);
                    goto out;
                }
            }
            sorted[count++] = r;
        }
        qsort(sorted, count, sizeof *sorted, route_compare);
        if (group_index(grp, sorted, count) < 0) {
            rc = ag_err_set(err, AG_ENOMEM, "%s", out_of_memory);
            goto out;
        }
    }
out:
    free(sorted);
    return rc;
}

int gw_router_new(const struct gw_route_spec *specs, size_t count, struct gw_router **out,
                  struct ag_err *err)
{
    int rc = 0;
    *out = NULL;
    if (count && !specs)
        return ag_err_set(err, AG_EINVAL, "%zu routes but no specs", count);
    struct gw_router *router = calloc(1, sizeof *router);
    if (!router)
        return ag_err_set(err, AG_ENOMEM, "%s", out_of_memory);
    memcpy(router->method_names, standard_methods, sizeof standard_methods);
    router->method_count = METHODS_STANDARD;
    router->routes = calloc(count + 1, sizeof *router->routes);
    if (!router->routes) {
        rc = ag_err_set(err, AG_ENOMEM, "%s", out_of_memory);
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        const struct gw_route_spec *s = &specs[i];
        struct route *r = &router->routes[router->route_count++];
        r->index = i;
        r->data = s->data;
        const char *why = host_problem(s->host, &r->host_kind);
        if (why) {
            rc = route_error(err, s, i, "host \"%s\": %s", s->host ? s->host : "(null)", why);
            goto out;
        }
        const char *h = r->host_kind == HOST_ANY ? "" : s->host + (r->host_kind == HOST_SUFFIX);
        r->host_len = strlen(h);
        r->host = copy_cstr(h, r->host_len);
        if (!r->host) {
            rc = ag_err_set(err, AG_ENOMEM, "%s", out_of_memory);
            goto out;
        }
        for (size_t k = 0; k < r->host_len; k++)
            r->host[k] = lower(r->host[k]);
        if ((rc = route_parse_path(r, s, i, err)) < 0 ||
            (rc = route_parse_methods(router, r, s, i, err)) < 0)
            goto out;
    }
    char allow[GW_ROUTE_ALLOW_MAX];
    if (!allow_format(router, ~UINT64_C(0), allow, sizeof allow)) {
        rc = ag_err_set(err, AG_EINVAL,
                        "the routes' methods do not fit in an Allow value of %d "
                        "bytes",
                        GW_ROUTE_ALLOW_MAX - 1);
        goto out;
    }
    rc = router_index(router, specs, err);
out:
    if (rc < 0)
        gw_router_free(router);
    else
        *out = router;
    return rc;
}

void gw_router_free(struct gw_router *router)
{
    if (!router)
        return;
    for (size_t i = 0; i < router->route_count; i++) {
        free(router->routes[i].path);
        free(router->routes[i].segs);
        free(router->routes[i].host);
    }
    for (size_t g = 0; g < router->group_count; g++) {
        free(router->groups[g].edges);
        free(router->groups[g].nodes);
        free(router->groups[g].cands);
    }
    for (size_t m = METHODS_STANDARD; m < router->method_count; m++)
        free((char *)router->method_names[m].p);
    free(router->groups);
    free(router->routes);
    free(router);
}

size_t gw_router_count(const struct gw_router *router)
{
    return router->route_count;
}

/* ---- matching ---- */

/* The host without port and trailing dot: "A.example.:80" -> "A.example", "[::1]:80" -> "[::1]". */
static struct ag_str host_only(struct ag_str h)
{
    if (h.len == 0)
        return h;
    if (h.p[0] == '[') {
        const char *close = memchr(h.p, ']', h.len);
        if (close)
            h.len = (size_t)(close - h.p) + 1;
        return h;
    }
    const char *colon = memchr(h.p, ':', h.len);
    if (colon)
        h.len = (size_t)(colon - h.p);
    if (h.len > 0 && h.p[h.len - 1] == '.')
        h.len--;
    return h;
}

/* Whether host[0..n) equals the lower-case pattern[0..n), ignoring ASCII case. */
static inline bool host_eq(const char *host, const char *pattern, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower(host[i]) != pattern[i])
            return false;
    return true;
}

static bool host_matches(const struct host_group *g, struct ag_str host)
{
    switch (g->kind) {
    case HOST_EXACT:
        return host.len == g->host_len && host_eq(host.p, g->host, host.len);
    case HOST_SUFFIX:
        return host.len > g->host_len &&
               host_eq(host.p + host.len - g->host_len, g->host, g->host_len);
    case HOST_ANY:
        break;
    }
    return true;
}

/* The deepest node of g that path's leading segments spell. */
static const struct trie_node *trie_walk(const struct host_group *g, struct ag_str path)
{
    size_t node = 0;
    for (size_t pos = 1;;) {
        const char *slash = memchr(path.p + pos, '/', path.len - pos);
        size_t len = (slash ? (size_t)(slash - path.p) : path.len) - pos;
        const struct trie_edge *e =
            edge_find(g, node, path.p + pos, len, edge_hash(node, path.p + pos, len));
        if (!e->used)
            break;
        node = e->child;
        if (!slash)
            break;
        pos += len + 1;
    }
    return &g->nodes[node];
}

/*
 * Whether r's pattern matches path (which starts with '/'); captures go to params. The literal
 * head before the first {param} is one memcmp.
 */
static bool path_matches(const struct route *r, struct ag_str path, struct gw_route_param *params,
                         size_t *param_count)
{
    size_t head = r->head_len, pos = head, n = 0;
    *param_count = 0;
    if (path.len < head || memcmp(path.p, r->path, head) != 0)
        return false;
    if (r->param_count == 0)
        return path.len == head || (r->prefix && (r->path[head - 1] == '/' || path.p[head] == '/'));
    for (size_t k = r->head_segs; k < r->seg_count; k++) {
        const struct route_seg *s = &r->segs[k];
        if (s->kind == SEG_REST)
            break; /* a '/' led here, so a segment (maybe empty) exists */
        size_t end = pos;
        if (s->kind == SEG_LITERAL) {
            end += s->len;
            if (end > path.len || memcmp(path.p + pos, s->text, s->len) != 0 ||
                (end < path.len && path.p[end] != '/'))
                return false;
        } else {
            while (end < path.len && path.p[end] != '/')
                end++;
            if (end == pos)
                return false;
            params[n++] = (struct gw_route_param){{s->text, s->len}, {path.p + pos, end - pos}};
        }
        if (k + 1 < r->seg_count) {
            if (end == path.len)
                return false;
            pos = end + 1;
        } else if (end < path.len && !r->prefix) {
            return false;
        }
    }
    *param_count = n;
    return true;
}

enum gw_match_result gw_router_match(const struct gw_router *router, struct ag_str host,
                                     struct ag_str method, struct ag_str path, struct gw_match *out)
{
    out->data = NULL;
    out->index = 0;
    out->param_count = 0;
    out->allow[0] = '\0';
    if (!path.p || path.len == 0 || path.p[0] != '/')
        return GW_MATCH_NOT_FOUND;
    host = host_only(host);
    int id = method_id(router, method);
    uint64_t bit = id >= 0 ? UINT64_C(1) << id : 0;

    const struct route *best = NULL; /* the most specific route matching host and path */
    uint64_t allowed = 0;
    struct gw_route_param scratch[GW_ROUTE_MAX_PARAMS];
    for (size_t g = 0; g < router->group_count; g++) {
        const struct host_group *grp = &router->groups[g];
        if (!host_matches(grp, host))
            continue;
        const struct trie_node *node = trie_walk(grp, path);
        for (size_t k = 0; k < node->count; k++) {
            const struct route *r = grp->cands[node->off + k];
            struct gw_route_param *params = best ? scratch : out->params;
            size_t param_count;
            if (!path_matches(r, path, params, &param_count))
                continue;
            if (r->any_method || (r->methods & bit)) {
                if (params != out->params)
                    memcpy(out->params, params, param_count * sizeof *params);
                out->data = r->data;
                out->index = r->index;
                out->param_count = param_count;
                return GW_MATCH_FOUND;
            }
            if (!best) {
                best = r;
                out->data = r->data;
                out->index = r->index;
                out->param_count = param_count;
            }
            allowed |= r->methods;
        }
    }
    if (!best)
        return GW_MATCH_NOT_FOUND;
    allow_format(router, allowed, out->allow, sizeof out->allow); /* fits: checked when built */
    return GW_MATCH_METHOD_NOT_ALLOWED;
}
