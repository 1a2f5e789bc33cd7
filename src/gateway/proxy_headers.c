/* Header fields across the gateway: what goes upstream, what comes back, what is never passed. */
#include "gateway/proxy_headers.h"

#include <stdio.h>
#include <string.h>

#include "core/banned.h"

static bool name_has_prefix(struct ag_str name, struct ag_str prefix)
{
    return name.len >= prefix.len && ag_str_eq_nocase((struct ag_str){name.p, prefix.len}, prefix);
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

#define IS(lit) ag_str_eq_nocase(name, AG_STR(lit))

/* The fixed hop-by-hop names of RFC 9110 §7.6.1, by length first: this runs for every field. */
static bool hop_name(struct ag_str name)
{
    switch (name.len) {
    case 2:
        return IS("TE");
    case 7:
        return IS("Trailer") || IS("Upgrade");
    case 10:
        return IS("Connection") || IS("Keep-Alive");
    case 16:
        return IS("Proxy-Connection");
    case 17:
        return IS("Transfer-Encoding");
    case 18:
        return IS("Proxy-Authenticate");
    case 19:
        return IS("Proxy-Authorization");
    }
    return false;
}

static bool is_connection(struct ag_str name)
{
    return name.len == 10 && ag_str_eq_nocase(name, AG_STR("Connection"));
}

/* True when the message has a Connection field: worked out once, not per field (most have none). */
static bool has_connection(const struct ag_http_header *h, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (is_connection(h[i].name))
            return true;
    return false;
}

/* True when one of the message's Connection fields names name: repeated lines form one list
 * (RFC 9110 §5.3). */
static bool connection_names(struct ag_str name, const struct ag_http_header *h, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (is_connection(h[i].name) && list_names(h[i].value, name))
            return true;
    return false;
}

bool gw_header_hop_by_hop(struct ag_str name, const struct ag_http_header *fields, size_t count)
{
    return hop_name(name) || connection_names(name, fields, count);
}

/* Fields the gateway owns on the way up: replaced, or refused because a client could forge them. */
static bool gateway_owned(struct ag_str name)
{
    switch (name.len) {
    case 4:
        return IS("Host");
    case 6:
        return IS("Expect");
    case 7:
        if (IS("X-Roles"))
            return true;
        break;
    case 9:
        if (IS("Forwarded") || IS("X-Real-IP"))
            return true;
        break;
    case 11:
        if (IS("traceparent"))
            return true;
        break;
    case 12:
        if (IS("X-Request-Id"))
            return true;
        break;
    case 14:
        if (IS("Content-Length"))
            return true;
        break;
    }
    if (name.len < 7 || (name.p[0] | 0x20) != 'x' || name.p[1] != '-')
        return false;
    return name_has_prefix(name, AG_STR("X-Forwarded-")) ||
           name_has_prefix(name, AG_STR("X-User-")) || name_has_prefix(name, AG_STR("X-Tenant-")) ||
           name_has_prefix(name, AG_STR("X-Auth-"));
}

/* Fields the gateway sets on the way down: the server frames and dates, the gateway ids. */
static bool response_owned(struct ag_str name)
{
    return (name.len == 4 && IS("Date")) || (name.len == 12 && IS("X-Request-Id")) ||
           (name.len == 14 && IS("Content-Length"));
}

#undef IS

static void add(struct ag_http_header *out, size_t *n, struct ag_str name, struct ag_str value)
{
    if (value.len == 0)
        return;
    out[(*n)++] = (struct ag_http_header){name, value};
}

size_t gw_upstream_headers(const struct ag_http_request *req, const struct gw_forward *fwd,
                           struct ag_http_header *out)
{
    bool connection = has_connection(req->headers, req->header_count);
    size_t n = 0;
    for (size_t i = 0; i < req->header_count && n < AG_HTTP_HEADERS_CAP; i++) {
        struct ag_str name = req->headers[i].name;
        if (hop_name(name) ||
            (connection && connection_names(name, req->headers, req->header_count)) ||
            gateway_owned(name))
            continue;
        out[n++] = req->headers[i];
    }
    add(out, &n, AG_STR("X-Forwarded-For"), fwd->client_ip);
    add(out, &n, AG_STR("X-Forwarded-Proto"), fwd->tls ? AG_STR("https") : AG_STR("http"));
    add(out, &n, AG_STR("X-Forwarded-Host"), fwd->host);
    add(out, &n, AG_STR("X-Request-Id"), fwd->request_id);
    add(out, &n, AG_STR("traceparent"), fwd->traceparent);
    add(out, &n, AG_STR("X-User-Id"), fwd->user_id);
    add(out, &n, AG_STR("X-User-Roles"), fwd->user_roles);
    add(out, &n, AG_STR("X-Tenant-Id"), fwd->tenant_id);
    return n;
}

enum { SEC_CTO, SEC_FRAME, SEC_REFERRER, SEC_CSP, SEC_HSTS, SEC_COUNT };

static const struct ag_str security_names[SEC_COUNT] = {
    AG_STR("X-Content-Type-Options"),    AG_STR("X-Frame-Options"),
    AG_STR("Referrer-Policy"),           AG_STR("Content-Security-Policy"),
    AG_STR("Strict-Transport-Security"),
};

void gw_security_headers(const struct gw_security_conf *sec, const struct ag_http_header *resp,
                         size_t resp_count, bool tls, struct ag_http_header *out, size_t *count,
                         size_t cap, char *hsts)
{
    /* One pass over the response: which security fields it sets, and whether it is HTML. */
    bool present[SEC_COUNT] = {false};
    bool html = false;
    for (size_t i = 0; resp && i < resp_count; i++) {
        struct ag_str name = resp[i].name;
        switch (name.len) { /* Content-Type's length, and those of security_names */
        case 12:
            if (ag_str_eq_nocase(name, AG_STR("Content-Type"))) {
                struct ag_str ct = resp[i].value;
                html = html || (ct.len >= 9 &&
                                ag_str_eq_nocase((struct ag_str){ct.p, 9}, AG_STR("text/html")));
            }
            break;
        case 15:
        case 22:
        case 23:
        case 25:
            for (size_t k = 0; k < SEC_COUNT; k++)
                if (ag_str_eq_nocase(name, security_names[k]))
                    present[k] = true;
            break;
        }
    }
    const char *values[SEC_COUNT] = {sec->content_type_options, sec->frame_options,
                                     sec->referrer_policy,
                                     html ? sec->content_security_policy : NULL, NULL};
    if (tls && sec->hsts_max_age_s) {
        snprintf(hsts, 40, "max-age=%llu", (unsigned long long)sec->hsts_max_age_s);
        values[SEC_HSTS] = hsts;
    }
    for (size_t k = 0; k < SEC_COUNT && *count < cap; k++)
        if (values[k] && values[k][0] && !present[k])
            out[(*count)++] =
                (struct ag_http_header){security_names[k], ag_str_from_cstr(values[k])};
}

size_t gw_response_headers(const struct ag_http_header *resp, size_t resp_count, bool rate_limited,
                           bool cors, struct ag_http_header *out)
{
    bool connection = has_connection(resp, resp_count);
    size_t n = 0;
    for (size_t i = 0; i < resp_count && n < AG_HTTP_HEADERS_CAP; i++) {
        struct ag_str name = resp[i].name;
        if (hop_name(name) || (connection && connection_names(name, resp, resp_count)) ||
            response_owned(name) || (rate_limited && name_has_prefix(name, AG_STR("RateLimit-"))) ||
            (cors && name_has_prefix(name, AG_STR("Access-Control-"))))
            continue;
        out[n++] = resp[i];
    }
    return n;
}
