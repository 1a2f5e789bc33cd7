/* Per-route CORS: preflight answers, headers for actual requests, and policy validation. */
#include "gateway/cors.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/banned.h"

static const struct ag_str safelisted_methods[] = {AG_STR("GET"), AG_STR("HEAD"), AG_STR("POST")};

static bool is_star(const char *s)
{
    return s && s[0] == '*' && s[1] == '\0';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Whether list[0..n) holds s, exactly or ignoring ASCII case. */
static bool list_has(char *const *list, size_t n, struct ag_str s, bool nocase)
{
    for (size_t i = 0; i < n; i++) {
        struct ag_str item = ag_str_from_cstr(list[i]);
        if (nocase ? ag_str_eq_nocase(item, s) : ag_str_eq(item, s))
            return true;
    }
    return false;
}

static bool list_has_star(char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (is_star(list[i]))
            return true;
    return false;
}

/* Why s is not a serialized origin, scheme "://" host [":" port], or NULL when it is one. */
static const char *origin_problem(struct ag_str s)
{
    size_t i = 0;
    while (i < s.len && (is_alpha(s.p[i]) || (i > 0 && (is_digit(s.p[i]) || s.p[i] == '+' ||
                                                        s.p[i] == '-' || s.p[i] == '.'))))
        i++;
    if (i == 0 || s.len - i < 3 || memcmp(s.p + i, "://", 3) != 0)
        return "an origin is scheme://host[:port]";
    i += 3;
    size_t host = i;
    if (i < s.len && s.p[i] == '[') {
        while (++i < s.len && (is_hex(s.p[i]) || s.p[i] == ':' || s.p[i] == '.'))
            ;
        if (i == s.len || s.p[i] != ']' || i == host + 1)
            return "an IPv6 host is [hex digits, ':' and '.']";
        i++;
    } else {
        while (i < s.len && (is_alpha(s.p[i]) || is_digit(s.p[i]) || s.p[i] == '-' ||
                             s.p[i] == '.' || s.p[i] == '_' || s.p[i] == '~'))
            i++;
        if (i == host)
            return "an origin needs a host";
    }
    if (i < s.len && s.p[i] == ':') {
        size_t digits = ++i;
        uint64_t port = 0;
        while (i < s.len && is_digit(s.p[i]) && port <= 65535)
            port = port * 10 + (uint64_t)(s.p[i++] - '0');
        if (i == digits || port == 0 || port > 65535)
            return "a port is 1..65535";
    }
    if (i < s.len)
        return s.p[i] == '/' ? "an origin has no path (not even a trailing '/')"
                             : "an origin is scheme://host[:port], without userinfo or path";
    return NULL;
}

/* Appends header name: value to out (there is always room: at most 6 are added). */
static void add(struct gw_cors_headers *out, const char *name, struct ag_str value)
{
    out->h[out->count++] = (struct ag_http_header){ag_str_from_cstr(name), value};
}

static struct ag_str field(const struct ag_http_request *req, const char *name)
{
    return ag_http_header_get(req->headers, req->header_count, ag_str_from_cstr(name));
}

static bool method_allowed(const struct gw_cors_policy *policy, struct ag_str method)
{
    if (!ag_http_is_token(method))
        return false;
    for (size_t i = 0; i < sizeof safelisted_methods / sizeof safelisted_methods[0]; i++)
        if (ag_str_eq(method, safelisted_methods[i]))
            return true;
    return list_has_star(policy->methods, policy->method_count) ||
           list_has(policy->methods, policy->method_count, method, false);
}

/* Whether every element of an Access-Control-Request-Headers list is allowed. */
static bool headers_allowed(const struct gw_cors_policy *policy, struct ag_str list)
{
    bool star = list_has_star(policy->headers, policy->header_count);
    while (list.p) {
        struct ag_str name;
        list = ag_str_split(list, ',', &name);
        name = ag_str_trim_ows(name);
        if (name.len == 0)
            continue;
        if (!ag_http_is_token(name))
            return false;
        if (!(star && !ag_str_eq_nocase(name, AG_STR("authorization"))) &&
            !list_has(policy->headers, policy->header_count, name, true))
            return false;
    }
    return true;
}

/* Whether origin may read responses under policy (with "*", whether it may be echoed). */
static bool origin_allowed(const struct gw_cors_policy *policy, struct ag_str origin, bool star)
{
    if (star)
        return !policy->credentials || origin_problem(origin) == NULL;
    return list_has(policy->origins, policy->origin_count, origin, true);
}

/* Joins the expose list into scratch; an empty slice when it is empty or does not fit. */
static struct ag_str expose_join(const struct gw_cors_policy *policy, char *buf, size_t cap)
{
    size_t len = 0;
    for (size_t i = 0; i < policy->expose_count; i++) {
        size_t n = strlen(policy->expose[i]), sep = len ? 2 : 0;
        if (len + sep + n > cap)
            return AG_STR_NULL;
        memcpy(buf + len, ", ", sep);
        memcpy(buf + len + sep, policy->expose[i], n);
        len += sep + n;
    }
    return len ? (struct ag_str){buf, len} : AG_STR_NULL;
}

enum gw_cors_outcome gw_cors_evaluate(const struct gw_cors_policy *policy,
                                      const struct ag_http_request *req,
                                      struct gw_cors_headers *out)
{
    out->count = 0;
    bool star = list_has_star(policy->origins, policy->origin_count);
    bool echo = !star || policy->credentials;
    struct ag_str origin = field(req, "Origin");
    if (!origin.p) {
        if (echo)
            add(out, "Vary", AG_STR("Origin"));
        return GW_CORS_NOT_CORS;
    }
    bool allowed = origin_allowed(policy, origin, star);
    struct ag_str allow_origin = echo ? origin : AG_STR("*");
    struct ag_str request_method = field(req, "Access-Control-Request-Method");

    if (ag_str_eq(req->method, AG_STR("OPTIONS")) && request_method.p) {
        /* The answer depends on the requested method and headers, which it echoes. */
        struct ag_str vary =
            echo ? AG_STR("Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
                 : AG_STR("Access-Control-Request-Method, Access-Control-Request-Headers");
        struct ag_str request_headers =
            ag_str_trim_ows(field(req, "Access-Control-Request-Headers"));
        if (!allowed || !method_allowed(policy, request_method) ||
            !headers_allowed(policy, request_headers)) {
            add(out, "Vary", vary);
            return GW_CORS_PREFLIGHT_REFUSED;
        }
        add(out, "Access-Control-Allow-Origin", allow_origin);
        if (policy->credentials)
            add(out, "Access-Control-Allow-Credentials", AG_STR("true"));
        add(out, "Access-Control-Allow-Methods", request_method);
        if (request_headers.len > 0)
            add(out, "Access-Control-Allow-Headers", request_headers);
        if (policy->max_age_s > 0) {
            int n = snprintf(out->scratch, sizeof out->scratch, "%" PRIu64, policy->max_age_s);
            add(out, "Access-Control-Max-Age", (struct ag_str){out->scratch, (size_t)n});
        }
        add(out, "Vary", vary);
        return GW_CORS_PREFLIGHT;
    }

    if (!allowed) {
        if (echo)
            add(out, "Vary", AG_STR("Origin"));
        return GW_CORS_ORIGIN_REFUSED;
    }
    add(out, "Access-Control-Allow-Origin", allow_origin);
    if (policy->credentials)
        add(out, "Access-Control-Allow-Credentials", AG_STR("true"));
    struct ag_str expose = expose_join(policy, out->scratch, sizeof out->scratch);
    if (expose.len > 0)
        add(out, "Access-Control-Expose-Headers", expose);
    if (echo)
        add(out, "Vary", AG_STR("Origin"));
    return GW_CORS_ALLOWED;
}

/* Checks list[0..n) of names: tokens, or "*" when star_ok. Returns 0 or AG_EINVAL. */
static int names_check(char *const *list, size_t n, const char *what, bool star_ok,
                       struct ag_err *err)
{
    if (n > 0 && !list)
        return ag_err_set(err, AG_EINVAL, "cors: %zu %s but no list", n, what);
    for (size_t i = 0; i < n; i++) {
        if (!list[i])
            return ag_err_set(err, AG_EINVAL, "cors: %s #%zu is NULL", what, i);
        if (is_star(list[i]) && !star_ok)
            return ag_err_set(err, AG_EINVAL,
                              "cors: %s \"*\" with credentials would name a header \"*\"; "
                              "list the names",
                              what);
        if (!ag_http_is_token(ag_str_from_cstr(list[i])))
            return ag_err_set(err, AG_EINVAL, "cors: %s \"%s\" is not an HTTP token", what,
                              list[i]);
    }
    return 0;
}

int gw_cors_policy_check(const struct gw_cors_policy *policy, struct ag_err *err)
{
    int rc = 0;
    if (policy->origin_count == 0 || !policy->origins)
        return ag_err_set(err, AG_EINVAL, "cors: no origins (\"*\" allows any)");
    for (size_t i = 0; i < policy->origin_count; i++) {
        const char *o = policy->origins[i];
        if (!o)
            return ag_err_set(err, AG_EINVAL, "cors: origin #%zu is NULL", i);
        if (is_star(o)) {
            if (policy->origin_count > 1)
                return ag_err_set(err, AG_EINVAL, "cors: \"*\" must be the only origin");
            continue;
        }
        if (ag_str_eq_nocase(ag_str_from_cstr(o), AG_STR("null")))
            return ag_err_set(err, AG_EINVAL,
                              "cors: origin \"null\" would let any sandboxed document or local "
                              "file in; list real origins");
        const char *why = origin_problem(ag_str_from_cstr(o));
        if (why)
            return ag_err_set(err, AG_EINVAL, "cors: origin \"%s\": %s", o, why);
    }
    if ((rc = names_check(policy->methods, policy->method_count, "method", true, err)) < 0 ||
        (rc = names_check(policy->headers, policy->header_count, "header", true, err)) < 0 ||
        (rc = names_check(policy->expose, policy->expose_count, "expose header",
                          !policy->credentials, err)) < 0)
        return rc;
    size_t joined = 0;
    for (size_t i = 0; i < policy->expose_count; i++)
        joined += strlen(policy->expose[i]) + (i ? 2 : 0);
    if (joined > GW_CORS_EXPOSE_MAX)
        return ag_err_set(err, AG_EINVAL, "cors: expose headers take %zu bytes joined, over %d",
                          joined, GW_CORS_EXPOSE_MAX);
    if (policy->max_age_s > GW_CORS_MAX_AGE_MAX)
        return ag_err_set(err, AG_EINVAL, "cors: max_age %" PRIu64 " s is over %d s",
                          policy->max_age_s, GW_CORS_MAX_AGE_MAX);
    return 0;
}
