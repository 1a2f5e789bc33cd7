/* libFuzzer target: route tables and matches must keep router.h's promises, in any order. */
#include "fuzz_support.h"

#include <ctype.h>

#include "gateway/router.h"

/*
 * Input: one control byte, then text.
 *
 * Control bit 0 clear: the text is "host\nmethod\npath" (missing parts are empty), matched
 * against a fixed table and against the same table built in reverse order, which must agree
 * on the outcome, the route found and the Allow value. Results must satisfy router.h: params
 * inside the path, non-empty and without '/'; a 405 never lists the method; the host's case, a
 * port and a trailing dot change nothing. gw_path_check's verdict is checked against an
 * independent reading of its rules.
 *
 * Control bit 0 set: the text starts with up to 8 route lines "host\tpath\tflags\tmethods"
 * (flags: 'p' for prefix; methods comma-separated), ended by a line "--", then a query as
 * above. The table must either build or be refused with AG_EINVAL and a message; a table that
 * builds is queried the same way.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const get_only[] = {"GET"};
static const char *const writes[] = {"PUT", "DELETE", "PURGE"};
static const char *const post_only[] = {"POST"};

#define SPEC(h, p, pre, m, n, i)                                                                   \
    {                                                                                              \
#i, h, p, pre, m, n, (void *)(uintptr_t)(i + 1)                                            \
    }
static const struct gw_route_spec fixed_table[] = {
    SPEC("*", "/", true, NULL, 0, 0),
    SPEC("*", "/", false, get_only, 1, 1),
    SPEC("*", "/api/v1/hello", false, get_only, 1, 2),
    SPEC("*", "/api/v1/hello", true, writes, 3, 3),
    SPEC("*", "/api/v1/products/{id}", false, get_only, 1, 4),
    SPEC("*", "/api/v1/products/{id}", false, writes, 3, 5),
    SPEC("*", "/api/v1/products/{id}/images/{image_id}", false, NULL, 0, 6),
    SPEC("*", "/api/v1/{kind}/{id}", true, post_only, 1, 7),
    SPEC("*", "/api/", true, get_only, 1, 8),
    SPEC("*.example.com", "/", true, writes, 3, 9),
    SPEC("*.example.com", "/x/{a}/y/{b}", false, get_only, 1, 10),
    SPEC("*.api.example.com", "/{a}", true, NULL, 0, 11),
    SPEC("shop.example.com", "/cart", false, post_only, 1, 12),
    SPEC("shop.example.com", "/cart/", true, get_only, 1, 13),
    SPEC("[::1]", "/%20", false, NULL, 0, 14), /* an escape the router keeps (not unreserved) */
};
enum { FIXED_COUNT = sizeof fixed_table / sizeof fixed_table[0] };

/* The next sep-terminated part of *rest as a NUL-terminated copy (free it). */
static char *cstr_part(struct ag_str *rest, char sep)
{
    struct ag_str head;
    *rest = ag_str_split(*rest, sep, &head);
    char *c = malloc(head.len + 1);
    CHECK(c != NULL);
    if (head.len)
        memcpy(c, head.p, head.len);
    c[head.len] = '\0';
    return c;
}

static bool allow_lists(const char *allow, struct ag_str method);

/* gw_path_check's rules, read independently: returns whether path should be accepted. */
static bool path_ok(struct ag_str path)
{
    if (path.len == 0 || path.p[0] != '/')
        return false;
    for (size_t i = 0; i < path.len; i++) {
        unsigned char c = (unsigned char)path.p[i];
        if (c <= 0x20 || c == 0x7f || c == '\\' || c == '#')
            return false;
        if (c == '%') {
            if (i + 2 >= path.len || !isxdigit((unsigned char)path.p[i + 1]) ||
                !isxdigit((unsigned char)path.p[i + 2]))
                return false;
            char hex[3] = {path.p[i + 1], path.p[i + 2], 0};
            long v = strtol(hex, NULL, 16);
            if (v == 0 || v == '/' || v == '\\')
                return false;
            if (isalnum((int)v) || v == '-' || v == '.' || v == '_' || v == '~')
                return false; /* an encoded unreserved character */
        }
        if (c == '/' && i + 1 < path.len && path.p[i + 1] == '/')
            return false; /* an empty segment */
    }
    /* Dot segments: "." and "..", with %2e for a dot, before any ';'. */
    size_t start = 1;
    for (size_t i = 1; i <= path.len; i++) {
        if (i < path.len && path.p[i] != '/')
            continue;
        size_t dots = 0;
        bool other = false;
        for (size_t j = start; j < i && path.p[j] != ';' && !other; j++) {
            if (path.p[j] == '%' && j + 2 < i && path.p[j + 1] == '2' &&
                tolower((unsigned char)path.p[j + 2]) == 'e')
                j += 2;
            else if (path.p[j] != '.')
                other = true;
            dots++;
        }
        if (!other && (dots == 1 || dots == 2))
            return false;
        start = i + 1;
    }
    return true;
}

/* Whether every element of Allow value a is in Allow value b. */
static bool allow_subset(const char *a, const char *b)
{
    struct ag_str rest = ag_str_from_cstr(a);
    while (rest.p) {
        struct ag_str item;
        rest = ag_str_split(rest, ',', &item);
        if (!allow_lists(b, ag_str_trim_ows(item)))
            return false;
    }
    return true;
}

/* Whether method occurs as a whole element of the Allow value allow. */
static bool allow_lists(const char *allow, struct ag_str method)
{
    struct ag_str rest = ag_str_from_cstr(allow);
    while (rest.p) {
        struct ag_str item;
        rest = ag_str_split(rest, ',', &item);
        if (ag_str_eq(ag_str_trim_ows(item), method))
            return true;
    }
    return false;
}

static void check_match(const struct gw_router *r, size_t count, struct ag_str host,
                        struct ag_str method, struct ag_str path, enum gw_match_result res,
                        const struct gw_match *m)
{
    CHECK(m->param_count <= GW_ROUTE_MAX_PARAMS);
    CHECK(strlen(m->allow) < sizeof m->allow);
    switch (res) {
    case GW_MATCH_FOUND:
        CHECK(m->index < count && m->allow[0] == '\0');
        break;
    case GW_MATCH_NOT_FOUND:
        CHECK(m->data == NULL && m->param_count == 0 && m->allow[0] == '\0');
        break;
    case GW_MATCH_METHOD_NOT_ALLOWED:
        CHECK(m->index < count && m->allow[0] != '\0');
        CHECK(!allow_lists(m->allow, method));
        break;
    default:
        CHECK(false);
    }
    for (size_t i = 0; i < m->param_count; i++) {
        struct ag_str v = m->params[i].value;
        CHECK(v.len > 0 && v.p >= path.p && v.p + v.len <= path.p + path.len);
        CHECK(!memchr(v.p, '/', v.len));
        CHECK(v.p[-1] == '/');
        CHECK(m->params[i].name.len > 0);
    }
    (void)r;
    (void)host;
}

/* Matches one query "host\nmethod\npath" on r, and on its reverse twin when given. */
static void query(const struct gw_router *r, const struct gw_router *twin, size_t count,
                  struct ag_str rest)
{
    struct ag_str h, me;
    rest = ag_str_split(rest, '\n', &h);
    rest = ag_str_split(rest, '\n', &me);
    struct ag_str p = rest.p ? rest : AG_STR("");

    int pc = gw_path_check(p);
    CHECK(pc == 0 || pc == AG_EINVAL);
    CHECK((pc == 0) == path_ok(p));

    static struct gw_match m, again;
    enum gw_match_result res = gw_router_match(r, h, me, p, &m);
    check_match(r, count, h, me, p, res, &m);
    CHECK(gw_router_match(r, h, me, p, &again) == res && again.data == m.data &&
          again.param_count == m.param_count && strcmp(again.allow, m.allow) == 0);

    /* Host case, a port and one trailing dot change nothing (for hosts without them). */
    if (h.len > 0 && h.len < 200 && !memchr(h.p, ':', h.len) && h.p[0] != '[' &&
        h.p[h.len - 1] != '.') {
        char other[256];
        for (size_t i = 0; i < h.len; i++)
            other[i] = (char)((h.p[i] >= 'a' && h.p[i] <= 'z') ? h.p[i] - 32 : h.p[i]);
        memcpy(other + h.len, ".:8080", 6);
        CHECK(gw_router_match(r, (struct ag_str){other, h.len + 6}, me, p, &again) == res &&
              again.data == m.data && strcmp(again.allow, m.allow) == 0);
    }
    if (twin) {
        enum gw_match_result tres = gw_router_match(twin, h, me, p, &again);
        CHECK(tres == res);
        if (res == GW_MATCH_FOUND)
            CHECK(again.data == m.data && again.param_count == m.param_count);
        if (res == GW_MATCH_METHOD_NOT_ALLOWED) /* extension methods may come in another order */
            CHECK(allow_subset(again.allow, m.allow) && allow_subset(m.allow, again.allow));
    }
}

static struct gw_router *build(const struct gw_route_spec *specs, size_t n)
{
    struct gw_router *r = NULL;
    struct ag_err err = {0};
    int rc = gw_router_new(specs, n, &r, &err);
    CHECK((rc == 0) == (r != NULL));
    CHECK(rc == 0 || (rc == AG_EINVAL && err.code == AG_EINVAL && err.msg[0] != '\0'));
    return r;
}

/* Table mode: up to 8 route lines, "--", then a query. */
static void fuzz_table(struct ag_str rest)
{
    enum { MAX_ROUTES = 8, MAX_METHODS = 4 };
    struct gw_route_spec specs[MAX_ROUTES], reversed[MAX_ROUTES];
    char *owned[MAX_ROUTES * (3 + MAX_METHODS)];
    const char *methods[MAX_ROUTES][MAX_METHODS];
    size_t n = 0, owned_count = 0;
    while (rest.p && n < MAX_ROUTES) {
        struct ag_str line;
        rest = ag_str_split(rest, '\n', &line);
        if (ag_str_eq(line, AG_STR("--")))
            break;
        char *host = cstr_part(&line, '\t'), *path = cstr_part(&line, '\t');
        char *flags = cstr_part(&line, '\t');
        owned[owned_count++] = host;
        owned[owned_count++] = path;
        owned[owned_count++] = flags;
        size_t mc = 0;
        while (line.p && line.len && mc < MAX_METHODS) {
            methods[n][mc] = owned[owned_count++] = cstr_part(&line, ',');
            mc++;
        }
        specs[n] = (struct gw_route_spec){.name = flags,
                                          .host = host,
                                          .path = path,
                                          .prefix = strchr(flags, 'p') != NULL,
                                          .methods = methods[n],
                                          .method_count = mc,
                                          .data = (void *)(uintptr_t)(n + 1)};
        n++;
    }
    for (size_t i = 0; i < n; i++)
        reversed[i] = specs[n - 1 - i];
    struct gw_router *r = build(specs, n), *twin = build(reversed, n);
    CHECK((r == NULL) == (twin == NULL)); /* validity does not depend on order */
    if (r && rest.p)
        query(r, twin, n, rest);
    gw_router_free(r);
    gw_router_free(twin);
    for (size_t i = 0; i < owned_count; i++)
        free(owned[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct gw_router *fixed, *fixed_reversed;
    if (!fixed) {
        struct gw_route_spec reversed[FIXED_COUNT];
        for (size_t i = 0; i < FIXED_COUNT; i++)
            reversed[i] = fixed_table[FIXED_COUNT - 1 - i];
        fixed = build(fixed_table, FIXED_COUNT);
        fixed_reversed = build(reversed, FIXED_COUNT);
        CHECK(fixed && fixed_reversed);
    }
    if (size < 1)
        return 0;
    char *text = copy_of(data + 1, size - 1);
    struct ag_str rest = {text, size - 1};
    if (data[0] & 1)
        fuzz_table(rest);
    else
        query(fixed, fixed_reversed, FIXED_COUNT, rest);
    free(text);
    return 0;
}
