/* Header fields across the gateway: what goes upstream, what comes back, what is never passed. */
#ifndef GW_PROXY_HEADERS_H
#define GW_PROXY_HEADERS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/http_parse.h"
#include "gateway/gw_config.h"

/* Room for the gateway's own fields on top of the ones passed on. */
enum { GW_EXTRA_HEADERS = 24, GW_HEADERS_OUT_CAP = AG_HTTP_HEADERS_CAP + GW_EXTRA_HEADERS };

/* What the gateway says about a request to the upstream. Slices may be empty (then left out). */
struct gw_forward {
    struct ag_str client_ip, host, request_id, traceparent;
    struct ag_str user_id, user_roles, tenant_id; /* from a verified token only */
    bool tls;                                     /* the client came over TLS */
};

/*
 * True for a field of a message (fields[0..count)) that a proxy must never pass on, in either
 * direction: the hop-by-hop fields of RFC 9110 §7.6.1 (Connection, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-Authenticate,
 * Proxy-Authorization) and any field named by any of the message's Connection fields (repeated
 * lines form one list, RFC 9110 §5.3). gw_upstream_headers and gw_response_headers apply it.
 */
bool gw_header_hop_by_hop(struct ag_str name, const struct ag_http_header *fields, size_t count);

/*
 * Fills out (GW_HEADERS_OUT_CAP entries) with the request fields for the upstream: the client's
 * fields minus hop-by-hop ones, Host and Content-Length (the client sets them), Expect (the
 * gateway answers 100-continue itself), the forwarding and tracing fields it replaces
 * (X-Forwarded-*, Forwarded, X-Real-IP, X-Request-Id, traceparent) and every identity field a
 * client could forge (X-User-*, X-Tenant-*, X-Auth-*, X-Roles), then the gateway's own:
 * X-Forwarded-For (the client address only: no proxy in front is trusted), X-Forwarded-Proto,
 * X-Forwarded-Host, X-Request-Id, traceparent and, from a verified token, X-User-Id,
 * X-User-Roles, X-Tenant-Id. Returns the count. Every field is sendable (see
 * ag_http_client_request's checked_headers): the client's were parsed, and fwd's slices must hold
 * no CR, LF or NUL (they come from parsed fields, verified claims or the gateway itself).
 */
size_t gw_upstream_headers(const struct ag_http_request *req, const struct gw_forward *fwd,
                           struct ag_http_header *out);

/*
 * Appends the security fields of sec to out (at *count, up to cap) unless the response already
 * has them (resp_headers, may be NULL): X-Content-Type-Options, X-Frame-Options,
 * Referrer-Policy, Content-Security-Policy when the Content-Type is HTML, and
 * Strict-Transport-Security when tls is true. hsts must hold 40 bytes (the value is built in).
 */
void gw_security_headers(const struct gw_security_conf *sec, const struct ag_http_header *resp,
                         size_t resp_count, bool tls, struct ag_http_header *out, size_t *count,
                         size_t cap, char *hsts);

/*
 * Fills out (GW_HEADERS_OUT_CAP entries) with the upstream response's fields minus hop-by-hop
 * ones, Content-Length, Transfer-Encoding and Date (the server frames and dates the response
 * itself), and minus the fields the gateway sets itself so that none arrives twice:
 * X-Request-Id, RateLimit-* when rate_limited, Access-Control-* when cors. Returns the count.
 */
size_t gw_response_headers(const struct ag_http_header *resp, size_t resp_count, bool rate_limited,
                           bool cors, struct ag_http_header *out);

#endif
