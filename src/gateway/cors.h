/* Per-route CORS policy answered at the gateway: preflights, and headers for actual requests. */
#ifndef GW_CORS_H
#define GW_CORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/http_parse.h"

/*
 * Semantics follow the Fetch standard (https://fetch.spec.whatwg.org/#http-cors-protocol).
 *
 * A request is CORS when it has an Origin header. It is a preflight when it is also OPTIONS
 * with Access-Control-Request-Method; the gateway answers a preflight itself and never proxies
 * it. Any other request with an Origin is an actual request: it is proxied, and the response
 * gets the headers gw_cors_evaluate fills.
 *
 * Origins compare ignoring ASCII case (scheme and host are case-insensitive). With "*" and no
 * credentials the answer is "Access-Control-Allow-Origin: *"; otherwise the request's origin is
 * echoed, with "Vary: Origin". "*" with credentials therefore allows every origin to read
 * credentialed responses: only for deliberately public APIs. The opaque origin "null"
 * (sandboxed documents, file: URLs, some redirects) is never echoed: it cannot be listed, and
 * "*" with credentials refuses it.
 *
 * Methods: GET, HEAD and POST are always allowed (CORS-safelisted); others must be listed,
 * compared case-sensitively as browsers do. Request headers must each be listed, compared
 * ignoring case. A "*" in methods or headers allows any (but, as in Fetch, a "*" in headers
 * does not cover Authorization, which must be listed by name). A preflight answer echoes the
 * requested method and headers rather than the whole lists.
 */
struct gw_cors_policy {
    char **origins; /* "https://shop.example", "http://localhost:3000", or "*" alone */
    size_t origin_count;
    char **methods; /* allowed methods beyond GET, HEAD, POST; "*" for any */
    size_t method_count;
    char **headers; /* allowed request header names; "*" for any but Authorization */
    size_t header_count;
    char **expose; /* Access-Control-Expose-Headers; may be empty */
    size_t expose_count;
    uint64_t max_age_s; /* Access-Control-Max-Age on preflights; 0 omits it (browsers: 5 s) */
    bool credentials;   /* Access-Control-Allow-Credentials: true (cookies, client certs, auth) */
};

/* Longest joined Access-Control-Expose-Headers value gw_cors_policy_check accepts. */
enum { GW_CORS_EXPOSE_MAX = 400, GW_CORS_MAX_AGE_MAX = 86400 };

enum gw_cors_outcome {
    GW_CORS_NOT_CORS,          /* no Origin: proxy as usual */
    GW_CORS_PREFLIGHT,         /* answer 204 with out's headers; do not proxy */
    GW_CORS_PREFLIGHT_REFUSED, /* answer 403 (a problem response) with out's headers */
    GW_CORS_ALLOWED,           /* proxy; add out's headers to the response */
    /*
     * An actual request from an origin the policy does not allow: proxy it anyway, with out's
     * headers (no Access-Control-Allow-Origin), so the browser withholds the response from
     * the page. CORS guards reading responses, not sending requests, so a 403 here would
     * protect nothing the browser does not; and it would break same-origin POSTs, which carry
     * an Origin too. A gateway that still wants to refuse may: the outcome says so.
     */
    GW_CORS_ORIGIN_REFUSED,
};

/*
 * Headers for the response. Names are static strings; values point into scratch, into the
 * policy or into the request, so out is valid while both are. Whatever the outcome, add all
 * count headers to the response the request gets (merging Vary with the upstream's): even a
 * response without CORS headers may carry "Vary: Origin", so that a cache does not serve it to
 * an origin that would have been allowed.
 */
struct gw_cors_headers {
    struct ag_http_header h[8];
    size_t count;
    char scratch[512];
};

/*
 * Decides what to do with req under policy (which should have passed gw_cors_policy_check)
 * and fills out. Does not allocate and does not modify policy or req; safe from many threads.
 * Preflights are refused when the origin is not allowed, when Access-Control-Request-Method is
 * not a token or not allowed, or when an Access-Control-Request-Headers element is not a token
 * or not allowed (empty elements of the list are skipped). Returns the outcome.
 */
enum gw_cors_outcome gw_cors_evaluate(const struct gw_cors_policy *policy,
                                      const struct ag_http_request *req,
                                      struct gw_cors_headers *out);

/*
 * Validates a policy from configuration. Refuses with AG_EINVAL, err saying which entry and
 * why: no origins; an origin that is not "*" or scheme "://" host [":" port] (no path, no
 * trailing '/', no userinfo, port 1..65535), or is "null"; "*" together with other origins; a
 * method or header name that is not a token (or "*"); an expose name that is not a token, or
 * "*" with credentials (where Fetch reads it as a header literally named "*"); expose names
 * longer than GW_CORS_EXPOSE_MAX bytes joined; max_age_s over GW_CORS_MAX_AGE_MAX (browsers
 * cap it lower anyway); a count > 0 with a NULL array or a NULL entry. Returns 0 or AG_EINVAL.
 */
int gw_cors_policy_check(const struct gw_cors_policy *policy, struct ag_err *err);

#endif
