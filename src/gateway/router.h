/* The gateway's route table: host + path + method to a route, immutable and lock-free to read. */
#ifndef GW_ROUTER_H
#define GW_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

/*
 * How a request finds its route
 * -----------------------------
 * A table is built once per configuration snapshot (gw_router_new) and then only read: any
 * number of threads may call gw_router_match on it at once without locks, because matching
 * writes only into the caller's struct gw_match.
 *
 * Host. The Host value is compared without its port ("shop.example:8080", "[::1]:8080") and
 * without one trailing dot, ignoring ASCII case. Patterns: "*" (any host, also an empty one),
 * "example.com" (that host), "*.example.com" (any name below it, at any depth, but not
 * "example.com" itself), or an IPv6 literal "[::1]".
 *
 * Path. Matched byte for byte against the request path (the target up to '?'), with no
 * percent-decoding: a route "/caf%C3%A9" is written as it is sent. A path is a list of
 * '/'-separated segments; "/a/" has two, "a" and "". A pattern segment "{name}" matches one
 * non-empty segment and captures it. Without prefix a pattern matches paths with exactly its
 * segments; with prefix it also matches deeper paths on a segment boundary: "/api" matches
 * "/api", "/api/" and "/api/x", never "/apix"; "/api/" matches "/api/" and deeper, not "/api";
 * "/" matches every path.
 *
 * Specificity. The host decides first: an exact host, then "*.suffix" patterns longest suffix
 * first, then "*". Then the path: exact (no {param}, no prefix), then templates (no prefix),
 * then prefixes. Templates rank by their first differing segment, a literal before a {param};
 * prefixes rank by segment count (longer first), then the same way, with a trailing "/" (which
 * matches any segment) after a {param}. Equal patterns keep configuration order.
 *
 * Method. The most specific route that matches host and path and allows the method wins, so a
 * route limited to GET at "/x" does not hide a catch-all prefix "/" for a POST to "/x". Only
 * when routes match host and path but none allows the method is the answer 405, with Allow
 * listing their methods. HEAD is allowed wherever GET is. Methods compare case-sensitively.
 */

/* Input for one route; gw_router_new copies what it keeps (data is kept as a pointer). */
struct gw_route_spec {
    const char *name; /* for error messages; may be NULL */
    const char *host; /* "*", "example.com", "*.example.com" or "[v6]" */
    const char *path; /* "/api/v1/hello" or a template "/api/v1/products/{id}/images/{image}" */
    bool prefix;      /* also match deeper paths, on a segment boundary */
    const char *const *methods; /* method_count tokens ("GET"); 0 = any method */
    size_t method_count;
    void *data; /* returned on a match; owned by the caller */
};

/* Captures per route, and the longest method list a 405 can carry (with its NUL). */
enum { GW_ROUTE_MAX_PARAMS = 16, GW_ROUTE_ALLOW_MAX = 256 };

struct gw_router;

/*
 * Builds a table from specs[0..count) (count may be 0: every match is then NOT_FOUND). Nothing
 * of specs is referenced afterwards but each data pointer.
 *
 * Refuses with AG_EINVAL, err naming the route ("route \"users\" (#3): ..."):
 *  - a host that is NULL, empty, has a port, a '*' other than a whole leading "*." label, an
 *    empty label, or a byte outside letters, digits, '-', '_' and '.' ("[v6]" aside);
 *  - a path that does not start with '/', has a byte outside RFC 3986 pchar (or '/'), a bad
 *    %-escape, or a segment gw_path_check would refuse (dot segments, %2F, %00...);
 *  - a '{' or '}' that is not a whole-segment "{name}" with name of letters, digits and '_';
 *    a name used twice in one route; more than GW_ROUTE_MAX_PARAMS params;
 *  - a method that is not a token, or methods NULL with method_count > 0;
 *  - two routes with the same host pattern (ignoring case), the same path pattern (templates
 *    compared ignoring param names), the same prefix flag and a method in common (a route with
 *    no methods has all of them; GET brings HEAD): which one wins would be arbitrary;
 *  - more distinct methods in the table than fit in an Allow value (GW_ROUTE_ALLOW_MAX), or
 *    more than 64 of them.
 * Returns 0 with *out set (free with gw_router_free), AG_EINVAL, or AG_ENOMEM; on failure *out
 * is NULL.
 */
int gw_router_new(const struct gw_route_spec *specs, size_t count, struct gw_router **out,
                  struct ag_err *err);

/* Frees router (NULL is fine); no match may be running on it. */
void gw_router_free(struct gw_router *router);

/* How many routes router holds. */
size_t gw_router_count(const struct gw_router *router);

enum gw_match_result {
    GW_MATCH_FOUND,              /* data, index and params are the route's */
    GW_MATCH_NOT_FOUND,          /* no route matches host and path: 404 */
    GW_MATCH_METHOD_NOT_ALLOWED, /* 405 with allow; data/index: the most specific of them */
};

/* One {name} capture; name points into the router, value into the matched path. */
struct gw_route_param {
    struct ag_str name;
    struct ag_str value; /* raw bytes of the segment, not percent-decoded */
};

struct gw_match {
    void *data;   /* the route's spec data (NULL for NOT_FOUND) */
    size_t index; /* the route's index in specs */
    struct gw_route_param params[GW_ROUTE_MAX_PARAMS];
    size_t param_count;
    /* METHOD_NOT_ALLOWED: "GET, HEAD, POST", the union of the methods of every route that
       matches host and path, standard methods first in a fixed order, then others in table
       order. Empty otherwise. */
    char allow[GW_ROUTE_ALLOW_MAX];
};

/*
 * Finds the route for a request. host is the Host value as received (may be empty), method
 * the request method, path the target up to '?' (a path that does not start with '/', such as
 * "*" or CONNECT's empty one, matches nothing). Does not allocate and does not modify router;
 * safe from many threads at once. Slices in out point into router and path, so they stay valid
 * while both do. Returns one of enum gw_match_result; out is always filled.
 */
enum gw_match_result gw_router_match(const struct gw_router *router, struct ag_str host,
                                     struct ag_str method, struct ag_str path,
                                     struct gw_match *out);

/*
 * Whether the gateway may route path at all. The gateway and the upstream must agree on what a
 * path means, or a route meant to guard "/admin" can be stepped around: the gateway matches one
 * path while the upstream, after decoding or normalizing, serves another. So refused are paths
 * that some upstream would rewrite:
 *  - not starting with '/';
 *  - dot segments "." and "..", also written with %2e in any case ("/%2e%2E/"), and also before
 *    a ';' ("/..;/", which servlet containers read as "/../");
 *  - "%2F"/"%2f" (an encoded slash that an upstream may decode into a separator) and "%5C"/"%5c"
 *    and a raw '\' (which some servers treat as '/');
 *  - "%00" (ends strings early in C and PHP upstreams), a malformed %-escape, '#', and any
 *    control byte, space or DEL.
 * Returns 0 when path may be routed, AG_EINVAL when it should be answered with 400.
 */
int gw_path_check(struct ag_str path);

#endif
