/* Route matching for the kit: path checks, percent-decoding, templates with {params}. */
#ifndef KIT_ROUTER_H
#define KIT_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"
#include "kit/kit.h"

enum {
    KIT_ROUTER_MAX_SEGMENTS = 32, /* segments in a template; a longer path matches nothing */
    KIT_ROUTER_MAX_PARAMS = 8,    /* {params} in one template */
    KIT_ROUTER_ALLOW_MAX = 64,    /* "GET, HEAD, POST, PUT, PATCH, DELETE" fits */
};

struct kit_router;

/* One path parameter of a match: its name in the template and its raw (encoded) value. */
struct kit_route_param {
    struct ag_str name;
    struct ag_str raw;
};

/* What kit_router_match found. */
struct kit_match {
    const struct kit_route *route; /* on 200 */
    size_t param_count;
    struct kit_route_param params[KIT_ROUTER_MAX_PARAMS];
    char allow[KIT_ROUTER_ALLOW_MAX]; /* on 405: "GET, HEAD, POST" (HEAD listed with GET) */
};

/*
 * Checks a request path (without the query) before matching. Accepts "/" and "/a/b" and
 * "/a/b/" (a trailing slash is a distinct path: it matches no template, so 404). Rejects
 * (AG_EINVAL, *why set to a static sentence): a path not starting with '/', an empty segment
 * ("//"), a dot segment ("." or "..", also %2e-encoded), a bad %-escape, an encoded or raw NUL,
 * an encoded '/' (%2F: a decoded {param} never holds a '/'), any byte below 0x20 or 0x7f.
 */
int kit_path_check(struct ag_str path, const char **why);

/*
 * Percent-decodes in into out (cap bytes, NUL-terminated). plus_space: '+' becomes ' ' (query
 * strings). Returns the decoded length, AG_EINVAL for a bad escape or a decoded NUL, AG_ERANGE
 * when out is too small.
 */
int kit_pct_decode(struct ag_str in, bool plus_space, char *out, size_t cap);

/* Makes an empty router. Returns 0 and *out, or AG_ENOMEM. */
int kit_router_new(struct kit_router **out);
void kit_router_free(struct kit_router *r); /* NULL allowed */

/*
 * Adds route (borrowed: it must outlive the router). Rejects (AG_EINVAL, err says why): a
 * method other than GET, POST, PUT, PATCH, DELETE; a template that does not start with '/',
 * has an empty segment (but "/" itself), a '{' that is not a whole "{name}" segment, a name
 * that is not [A-Za-z_][A-Za-z0-9_]*, a name twice, over KIT_ROUTER_MAX_SEGMENTS segments or
 * KIT_ROUTER_MAX_PARAMS params; a NULL handler; KIT_ACCESS_ROLES without roles; the same method
 * on a template of the same shape as an earlier route ("/a/{x}" and "/a/{y}" collide).
 * Returns 0, AG_EINVAL or AG_ENOMEM.
 */
int kit_router_add(struct kit_router *r, const struct kit_route *route, struct ag_err *err);

/*
 * Matches method ("GET", "HEAD"...) and a path that passed kit_path_check. Of the templates
 * that match the path and have the method (HEAD uses GET routes), the most specific wins: the
 * one with a literal at the first depth where they differ. Returns 200 with m->route and the
 * params; 405 when templates match the path but none has the method (m->allow lists the
 * methods of all of them); 404 when none matches.
 */
int kit_router_match(const struct kit_router *r, struct ag_str method, struct ag_str path,
                     struct kit_match *m);

#endif
