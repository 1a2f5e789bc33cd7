/* Header fields across the gateway: what goes upstream, what comes back, what is never passed. */
#include "gateway/proxy_headers.h"

#include <stdio.h>
#include <string.h>

#include "core/banned.h"

static bool name_is(struct ag_str name, const char *lit)
{
    return ag_str_eq_nocase(name, ag_str_from_cstr(lit));
}

static bool name_has_prefix(struct ag_str name, const char *prefix)
{
    size_t n = strlen(prefix);
    return name.len >= n && ag_str_eq_nocase((struct ag_str){name.p, n}, (struct ag_str){prefix, n});
}

/* True when the comma-separated list names name. */
static bool list_names(struct ag_str list, struct ag_str name)
{
    while (list.len > 0) {
        struct ag_str item;
        list = ag_str_split(list, ',', &item);
        if (ag_str_eq_nocase(ag_str_trim_ows(item), name))
            return true;
    }
    return false;
}

bool gw_header_hop_by_hop(struct ag_str name, struct ag_str connection)
{
    static const char *const hop[] = {
        "Connection", "Keep-Alive",         "Proxy-Connection",    "TE", "Trailer",
        "Transfer-Encoding", "Upgrade", "Proxy-Authenticate", "Proxy-Authorization",
    };
    for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
        if (name_is(name, hop[i]))
            return true;
    return connection.len > 0 && list_names(connection, name);
}

/* Fields the gateway owns on the way up: replaced, or refused because a client could forge them. */
static bool gateway_owned(struct ag_str name)
{
    static const char *const exact[] = {
        "Host", "Content-Length", "Expect", "Forwarded", "X-Real-IP", "X-Request-Id",
        "traceparent", "X-Roles",
    };
    static const char *const prefixes[] = {"X-Forwarded-", "X-User-", "X-Tenant-", "X-Auth-"};
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (name_is(name, exact[i]))
            return true;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (name_has_prefix(name, prefixes[i]))
            return true;
    return false;
}

static void add(struct ag_http_header *out, size_t *n, const char *name, struct ag_str value)
{
    if (value.len == 0)
        return;
    out[(*n)++] = (struct ag_http_header){ag_str_from_cstr(name), value};
}

size_t gw_upstream_headers(const struct ag_http_request *req, const struct gw_forward *fwd,
                           struct ag_http_header *out)
{
    struct ag_str connection = ag_http_header_get(req->headers, req->header_count,
                                                  AG_STR("Connection"));
    size_t n = 0;
    for (size_t i = 0; i < req->header_count && n < AG_HTTP_HEADERS_CAP; i++) {
        struct ag_str name = req->headers[i].name;
        if (gw_header_hop_by_hop(name, connection) || gateway_owned(name))
            continue;
        out[n++] = req->headers[i];
    }
    add(out, &n, "X-Forwarded-For", fwd->client_ip);
    add(out, &n, "X-Forwarded-Proto", fwd->tls ? AG_STR("https") : AG_STR("http"));
    add(out, &n, "X-Forwarded-Host", fwd->host);
    add(out, &n, "X-Request-Id", fwd->request_id);
    add(out, &n, "traceparent", fwd->traceparent);
    add(out, &n, "X-User-Id", fwd->user_id);
    add(out, &n, "X-User-Roles", fwd->user_roles);
    add(out, &n, "X-Tenant-Id", fwd->tenant_id);
    return n;
}

static bool has_field(const struct ag_http_header *h, size_t count, const char *name)
{
    return h && ag_http_header_get(h, count, ag_str_from_cstr(name)).p != NULL;
}

static bool is_html(const struct ag_http_header *h, size_t count)
{
    if (!h)
        return false;
    struct ag_str ct = ag_http_header_get(h, count, AG_STR("Content-Type"));
    return ct.len >= 9 && ag_str_eq_nocase((struct ag_str){ct.p, 9}, AG_STR("text/html"));
}

static void add_security(struct ag_http_header *out, size_t *count, size_t cap, const char *name,
                         const char *value, const struct ag_http_header *resp, size_t resp_count)
{
    if (*count >= cap || !value || !value[0] || has_field(resp, resp_count, name))
        return;
    out[(*count)++] = (struct ag_http_header){ag_str_from_cstr(name), ag_str_from_cstr(value)};
}

void gw_security_headers(const struct gw_security_conf *sec, const struct ag_http_header *resp,
                         size_t resp_count, bool tls, struct ag_http_header *out, size_t *count,
                         size_t cap, char *hsts)
{
    add_security(out, count, cap, "X-Content-Type-Options", sec->content_type_options, resp,
                 resp_count);
    add_security(out, count, cap, "X-Frame-Options", sec->frame_options, resp, resp_count);
    add_security(out, count, cap, "Referrer-Policy", sec->referrer_policy, resp, resp_count);
    if (is_html(resp, resp_count))
        add_security(out, count, cap, "Content-Security-Policy", sec->content_security_policy,
                     resp, resp_count);
    if (tls && sec->hsts_max_age_s) {
        snprintf(hsts, 40, "max-age=%llu", (unsigned long long)sec->hsts_max_age_s);
        add_security(out, count, cap, "Strict-Transport-Security", hsts, resp, resp_count);
    }
}

size_t gw_response_headers(const struct ag_http_header *resp, size_t resp_count,
                           bool rate_limited, bool cors, struct ag_http_header *out)
{
    struct ag_str connection = ag_http_header_get(resp, resp_count, AG_STR("Connection"));
    size_t n = 0;
    for (size_t i = 0; i < resp_count && n < AG_HTTP_HEADERS_CAP; i++) {
        struct ag_str name = resp[i].name;
        if (gw_header_hop_by_hop(name, connection) || name_is(name, "Content-Length") ||
            name_is(name, "Date") || name_is(name, "X-Request-Id") ||
            (rate_limited && name_has_prefix(name, "RateLimit-")) ||
            (cors && name_has_prefix(name, "Access-Control-")))
            continue;
        out[n++] = resp[i];
    }
    return n;
}
