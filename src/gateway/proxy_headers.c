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

/* True when name equals one of the names (compared by length first: this runs per field). */
static bool name_in(struct ag_str name, const struct ag_str *names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (names[i].len == name.len && ag_str_eq_nocase(name, names[i]))
            return true;
    return false;
}

static const struct ag_str hop_names[] = {
    AG_STR("Connection"),
    AG_STR("Keep-Alive"),
    AG_STR("Proxy-Connection"),
    AG_STR("TE"),
    AG_STR("Trailer"),
    AG_STR("Transfer-Encoding"),
    AG_STR("Upgrade"),
    AG_STR("Proxy-Authenticate"),
    AG_STR("Proxy-Authorization"),
};

bool gw_header_hop_by_hop(struct ag_str name, struct ag_str connection)
{
    if (name_in(name, hop_names, sizeof hop_names / sizeof hop_names[0]))
        return true;
    return connection.len > 0 && list_names(connection, name);
}

/* Fields the gateway owns on the way up: replaced, or refused because a client could forge them. */
static bool gateway_owned(struct ag_str name)
{
    static const struct ag_str exact[] = {
        AG_STR("Host"),      AG_STR("Content-Length"), AG_STR("Expect"),      AG_STR("Forwarded"),
        AG_STR("X-Real-IP"), AG_STR("X-Request-Id"),   AG_STR("traceparent"), AG_STR("X-Roles"),
    };
    if (name_in(name, exact, sizeof exact / sizeof exact[0]))
        return true;
    if (name.len < 2 || (name.p[0] | 0x20) != 'x' || name.p[1] != '-')
        return false;
    return name_has_prefix(name, AG_STR("X-Forwarded-")) ||
           name_has_prefix(name, AG_STR("X-User-")) || name_has_prefix(name, AG_STR("X-Tenant-")) ||
           name_has_prefix(name, AG_STR("X-Auth-"));
}

static void add(struct ag_http_header *out, size_t *n, struct ag_str name, struct ag_str value)
{
    if (value.len == 0)
        return;
    out[(*n)++] = (struct ag_http_header){name, value};
}

size_t gw_upstream_headers(const struct ag_http_request *req, const struct gw_forward *fwd,
                           struct ag_http_header *out)
{
    size_t n = 0;
    for (size_t i = 0; i < req->header_count && n < AG_HTTP_HEADERS_CAP; i++) {
        struct ag_str name = req->headers[i].name;
        if (gw_header_hop_by_hop(name, fwd->connection) || gateway_owned(name))
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
        if (name.len == 12 && ag_str_eq_nocase(name, AG_STR("Content-Type"))) {
            struct ag_str ct = resp[i].value;
            html = html ||
                   (ct.len >= 9 && ag_str_eq_nocase((struct ag_str){ct.p, 9}, AG_STR("text/html")));
            continue;
        }
        for (size_t k = 0; k < SEC_COUNT; k++)
            if (ag_str_eq_nocase(name, security_names[k]))
                present[k] = true;
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
    struct ag_str connection = ag_http_header_get(resp, resp_count, AG_STR("Connection"));
    size_t n = 0;
    for (size_t i = 0; i < resp_count && n < AG_HTTP_HEADERS_CAP; i++) {
        struct ag_str name = resp[i].name;
        static const struct ag_str own[] = {AG_STR("Content-Length"), AG_STR("Date"),
                                            AG_STR("X-Request-Id")};
        if (gw_header_hop_by_hop(name, connection) || name_in(name, own, 3) ||
            (rate_limited && name_has_prefix(name, AG_STR("RateLimit-"))) ||
            (cors && name_has_prefix(name, AG_STR("Access-Control-"))))
            continue;
        out[n++] = resp[i];
    }
    return n;
}
