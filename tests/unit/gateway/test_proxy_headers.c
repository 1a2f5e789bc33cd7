/* Unit tests for src/gateway/proxy_headers.c: hop-by-hop names, fields up, fields down, security.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/http_parse.h"
#include "gateway/gw_config.h"
#include "gateway/proxy_headers.h"
#include "core/banned.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* A field of a test table, and whether the function under test must pass it on. */
struct field_case {
    const char *name, *value;
    bool kept;
};

/* Appends "Name: value\n" to text (of size cap) at *len. */
static void append_line(char *text, size_t cap, size_t *len, struct ag_str name,
                        struct ag_str value)
{
    int w = snprintf(text + *len, cap - *len, "%.*s: %.*s\n", (int)name.len, name.p, (int)value.len,
                     value.p);
    assert_true(w >= 0 && (size_t)w < cap - *len);
    *len += (size_t)w;
}

/* The fields h[0..n) as "Name: value\n" lines, so a mismatch prints both lists whole. */
static const char *render(const struct ag_http_header *h, size_t n)
{
    static char text[16384];
    size_t len = 0;
    text[0] = '\0';
    for (size_t i = 0; i < n; i++)
        append_line(text, sizeof text, &len, h[i].name, h[i].value);
    return text;
}

/* The fields of cases[0..n) the function must keep, rendered as render() does, then tail. */
static const char *render_kept(const struct field_case *cases, size_t n, const char *tail)
{
    static char text[16384];
    size_t len = 0;
    text[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (cases[i].kept)
            append_line(text, sizeof text, &len, ag_str_from_cstr(cases[i].name),
                        ag_str_from_cstr(cases[i].value));
    int w = snprintf(text + len, sizeof text - len, "%s", tail);
    assert_true(w >= 0 && (size_t)w < sizeof text - len);
    return text;
}

/* Fills h with the fields of cases[0..n); returns n. */
static size_t fields_from(const struct field_case *cases, size_t n, struct ag_http_header *h)
{
    for (size_t i = 0; i < n; i++)
        h[i] = (struct ag_http_header){ag_str_from_cstr(cases[i].name),
                                       ag_str_from_cstr(cases[i].value)};
    return n;
}

static void assert_hop(const char *name, const char *connection, bool want)
{
    const struct ag_http_header message[] = {{AG_STR("Connection"), ag_str_from_cstr(connection)}};
    bool got = gw_header_hop_by_hop(ag_str_from_cstr(name), message, 1);
    if (got != want)
        fprintf(stderr, "\"%s\" with Connection \"%s\": got %d, want %d\n", name, connection, got,
                want);
    assert_int_equal(got, want);
}

static void hop_by_hop_fixed_names(void **state)
{
    (void)state;
    static const char *const names[] = {
        "Connection",
        "connection",
        "CONNECTION",
        "cOnNeCtIoN",
        "Keep-Alive",
        "keep-alive",
        "KEEP-ALIVE",
        "kEEP-aLIVE",
        "Proxy-Connection",
        "proxy-connection",
        "PROXY-CONNECTION",
        "pRoXy-cOnNeCtIoN",
        "TE",
        "te",
        "Te",
        "tE",
        "Trailer",
        "trailer",
        "TRAILER",
        "tRaIlEr",
        "Transfer-Encoding",
        "transfer-encoding",
        "TRANSFER-ENCODING",
        "tRANSFER-eNCODING",
        "Upgrade",
        "upgrade",
        "UPGRADE",
        "uPgRaDe",
        "Proxy-Authenticate",
        "proxy-authenticate",
        "PROXY-AUTHENTICATE",
        "Proxy-AuthentiCATE",
        "Proxy-Authorization",
        "proxy-authorization",
        "PROXY-AUTHORIZATION",
        "pROXY-aUTHORIZATION",
    };
    for (size_t i = 0; i < COUNT(names); i++) {
        assert_hop(names[i], "", true);
        assert_hop(names[i], "close", true);
        assert_true(gw_header_hop_by_hop(ag_str_from_cstr(names[i]), NULL, 0));
    }
}

static void hop_by_hop_decoys(void **state)
{
    (void)state;
    /* Each fixed name's length, and the lengths around it, with names that are not hop-by-hop. */
    static const char *const names[] = {
        "",
        "T",
        "TX",
        "XE",
        "T-",
        "TEE",
        "Trailed",
        "Trailers",
        "Upgrad3",
        "Upgrades",
        "Accept-",
        "Connectio1",
        "Connectio",
        "Connections",
        "Keep-Alivf",
        "Keep_Alive",
        "Keep\rAlive", /* '-' and '\r' differ only in the case bit: not letters, not equal */
        "Keep-Alive ",
        "Set-Cookie",
        "Proxy-Connectioo",
        "Proxy-Connectio",
        "Transfer-Encodinh",
        "Transfer\rEncoding",
        "Transfer-Encodings",
        "Content-Encoding!",
        "Proxy-Authenticatf",
        "Proxy-Authorizatioo",
        "Proxy-Authorizations",
        "Accept-Encoding",
        "Authorization",
        "Content-Length",
        "Host",
    };
    for (size_t i = 0; i < COUNT(names); i++) {
        assert_hop(names[i], "", false);
        assert_hop(names[i], "close, keep-alive", false);
    }
}

static void hop_by_hop_connection_listed(void **state)
{
    (void)state;
    static const struct {
        const char *name, *connection;
        bool want;
    } cases[] = {
        {"X-Foo", "close, X-Foo", true},
        {"x-foo", "close, X-Foo", true},
        {"X-FOO", "close,x-foo", true},
        {"close", "close, X-Foo", true},
        {"X-Fo", "close, X-Foo", false},
        {"X-Foo2", "close, X-Foo", false},
        {"X-Foo", "close, X-Foo2", false},
        {"X-Foo", "close, X-Fo", false},
        {"X-Foo", "", false},
        {"X-Foo", "X-Foo", true},
        {"X-Foo", "  X-Foo\t", true},
        {"X-Bar", " ,\tX-Bar\t, ,X-Baz ,", true},
        {"X-BAZ", " ,\tX-Bar\t, ,X-Baz ,", true},
        {"X-Qux", " ,\tX-Bar\t, ,X-Baz ,", false},
        {"X-Bar", ",,,X-Bar", true},
        {"X-Bar", "X-Bar,,,", true},
        {"X-Bar", ",,,", false},
        {"A", "a", true}, /* the shortest list */
        {"A", "b", false},
        {"X-A", "X-A B", false}, /* inner space: one element "X-A B" */
        {"X-A", "X-A;q=1", false},
        {"X-A", "X-B, X-C, X-D, X-E, X-F, X-G, X-A", true},
        {"Authorization", "authorization", true}, /* whatever the list names, even end-to-end */
    };
    for (size_t i = 0; i < COUNT(cases); i++)
        assert_hop(cases[i].name, cases[i].connection, cases[i].want);
}

/* A request whose fields are cases[0..n). */
static const struct ag_http_request *request_with(const struct field_case *cases, size_t n)
{
    static struct ag_http_request req;
    memset(&req, 0, sizeof req);
    req.method = AG_STR("GET");
    req.target = req.path = AG_STR("/items");
    req.version = 11;
    assert_true(n <= AG_HTTP_HEADERS_CAP);
    req.header_count = fields_from(cases, n, req.headers);
    return &req;
}

/* All the gateway's own fields set. */
static const struct gw_forward full_forward = {
    .client_ip = AG_STR("203.0.113.7"),
    .host = AG_STR("api.example"),
    .request_id = AG_STR("req-1"),
    .traceparent = AG_STR("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    .user_id = AG_STR("alice"),
    .user_roles = AG_STR("admin,ops"),
    .tenant_id = AG_STR("acme"),
};

static const char full_forward_fields[] =
    "X-Forwarded-For: 203.0.113.7\n"
    "X-Forwarded-Proto: http\n"
    "X-Forwarded-Host: api.example\n"
    "X-Request-Id: req-1\n"
    "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n"
    "X-User-Id: alice\n"
    "X-User-Roles: admin,ops\n"
    "X-Tenant-Id: acme\n";

static void upstream_strips_client_fields(void **state)
{
    (void)state;
    /* Grouped by name length, so a length switch that misses a case shows up. */
    static const struct field_case cases[] = {
        {"Accept", "*/*", true},
        {"Connection", "keep-alive, X-Secret , ,x-other-hop", false},
        {"Keep-Alive", "timeout=5", false},
        {"te", "trailers", false},
        {"TRAILER", "X-Sum", false},
        {"Transfer-Encoding", "chunked", false},
        {"upgrade", "websocket", false},
        {"Proxy-Connection", "keep-alive", false},
        {"Proxy-Authenticate", "Basic", false},
        {"proxy-authorization", "Basic eDp5", false},
        {"User-Agent", "test/1", true},
        {"X-Secret", "listed in Connection", false},
        {"X-OTHER-HOP", "listed in Connection", false},
        {"X-Secrets", "not listed", true},
        /* 4 */
        {"host", "client.example", false},
        {"HOST", "again.example", false},
        {"Hose", "4 bytes", true},
        /* 5 */
        {"Hosts", "5 bytes", true},
        /* 6 */
        {"expect", "100-continue", false},
        {"Cookie", "a=1", true},
        {"X-User", "no dash", true},
        {"X-Auth", "no dash", true},
        /* 7 */
        {"X-Roles", "admin", false},
        {"x-roles", "admin", false},
        {"X-Auth-", "7 bytes", false},
        {"X-USER-", "7 bytes", false},
        {"X-Userx", "7 bytes", true},
        {"X-Rolez", "7 bytes", true},
        {"Expects", "7 bytes", true},
        /* 8 */
        {"X-Tenant", "no dash", true},
        {"X-Rolesx", "8 bytes", true},
        {"X-User-1", "8 bytes", false},
        /* 9 */
        {"Forwarded", "for=1.2.3.4", false},
        {"x-real-ip", "1.2.3.4", false},
        {"x-user-id", "mallory", false},
        {"x-tenant-", "9 bytes", false},
        {"X-Auth-Id", "9 bytes", false},
        {"X-Forward", "9 bytes", true},
        {"X-Real-IQ", "9 bytes", true},
        /* 10 */
        {"X-Real-IPs", "10 bytes", true},
        {"tracestate", "k=v", true},
        /* 11 */
        {"TraceParent", "00-forged", false},
        {"X-User-Name", "Mallory", false},
        {"X-Tenant-Id", "evil", false},
        {"X-Forwarded", "no dash", true},
        {"traceparens", "11 bytes", true},
        /* 12 */
        {"X-Request-Id", "forged", false},
        {"X-User-Roles", "admin", false},
        {"X-Forwarded-", "12 bytes", false},
        {"X-Request-Ix", "12 bytes", true},
        {"traceparents", "12 bytes", true},
        /* 13 and up */
        {"X-Request-Ids", "13 bytes", true},
        {"Authorization", "Bearer abc", true},
        {"Content-Length", "5", false},
        {"Content-Lengtx", "14 bytes", true},
        {"X-Auth-Session", "14 bytes", false},
        {"X-Forwarded-Ip", "14 bytes", false},
        {"X-Forwarded-For", "6.6.6.6", false},
        {"x-forwarded-proto", "https", false},
        {"X-FORWARDED-HOST", "evil.example", false},
        {"Forwarded-For", "6.6.6.6", true},
        {"Content-Lengths", "15 bytes", true},
        {"X-Authorization", "not X-Auth-", true},
        {"XX-User-Id", "not X-", true},
        {"X_User_Id", "not X-", true},
        {"Y-User-Id", "not X-", true},
        {"Content-Type", "application/json", true},
        {"Accept", "text/plain", true}, /* repeated fields stay, in order */
    };
    struct ag_http_header out[GW_HEADERS_OUT_CAP];
    size_t n = gw_upstream_headers(request_with(cases, COUNT(cases)), &full_forward, out);
    assert_string_equal(render(out, n), render_kept(cases, COUNT(cases), full_forward_fields));
}

static void upstream_gateway_fields(void **state)
{
    (void)state;
    static const struct field_case one[] = {{"Accept", "*/*", true}};
    const struct ag_http_request *req = request_with(one, COUNT(one));
    struct ag_http_header out[GW_HEADERS_OUT_CAP];

    size_t n = gw_upstream_headers(req, &full_forward, out);
    assert_int_equal(n, 9);
    assert_string_equal(render(out, n), render_kept(one, 1, full_forward_fields));

    struct gw_forward fwd = full_forward;
    fwd.tls = true;
    n = gw_upstream_headers(req, &fwd, out);
    assert_string_equal(render(out, n), "Accept: */*\n"
                                        "X-Forwarded-For: 203.0.113.7\n"
                                        "X-Forwarded-Proto: https\n"
                                        "X-Forwarded-Host: api.example\n"
                                        "X-Request-Id: req-1\n"
                                        "traceparent: "
                                        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n"
                                        "X-User-Id: alice\n"
                                        "X-User-Roles: admin,ops\n"
                                        "X-Tenant-Id: acme\n");

    /* Empty slices are left out, whether NULL or not; the protocol is always said. */
    struct gw_forward bare = {.client_ip = AG_STR_NULL, .host = AG_STR("")};
    n = gw_upstream_headers(req, &bare, out);
    assert_string_equal(render(out, n), "Accept: */*\nX-Forwarded-Proto: http\n");

    /* An anonymous request: no identity fields at all. */
    fwd = full_forward;
    fwd.user_id = fwd.user_roles = fwd.tenant_id = AG_STR_NULL;
    n = gw_upstream_headers(req, &fwd, out);
    assert_string_equal(render(out, n),
                        "Accept: */*\n"
                        "X-Forwarded-For: 203.0.113.7\n"
                        "X-Forwarded-Proto: http\n"
                        "X-Forwarded-Host: api.example\n"
                        "X-Request-Id: req-1\n"
                        "traceparent: "
                        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n");

    /* Each slice alone. */
    static const struct {
        size_t offset;
        const char *line;
    } single[] = {
        {offsetof(struct gw_forward, client_ip), "X-Forwarded-For: v\n"},
        {offsetof(struct gw_forward, host), "X-Forwarded-Host: v\n"},
        {offsetof(struct gw_forward, request_id), "X-Request-Id: v\n"},
        {offsetof(struct gw_forward, traceparent), "traceparent: v\n"},
        {offsetof(struct gw_forward, user_id), "X-User-Id: v\n"},
        {offsetof(struct gw_forward, user_roles), "X-User-Roles: v\n"},
        {offsetof(struct gw_forward, tenant_id), "X-Tenant-Id: v\n"},
    };
    for (size_t i = 0; i < COUNT(single); i++) {
        memset(&fwd, 0, sizeof fwd);
        *(struct ag_str *)((char *)&fwd + single[i].offset) = AG_STR("v");
        n = gw_upstream_headers(request_with(NULL, 0), &fwd, out);
        char want[64];
        /* X-Forwarded-Proto comes after For and before Host. */
        if (single[i].offset == offsetof(struct gw_forward, client_ip))
            snprintf(want, sizeof want, "%sX-Forwarded-Proto: http\n", single[i].line);
        else
            snprintf(want, sizeof want, "X-Forwarded-Proto: http\n%s", single[i].line);
        assert_string_equal(render(out, n), want);
    }
}

/* A request at the field cap, all kept, plus every gateway field still fits the output. */
static void upstream_full_request(void **state)
{
    (void)state;
    static struct field_case cases[AG_HTTP_HEADERS_CAP];
    static char names[AG_HTTP_HEADERS_CAP][16];
    for (size_t i = 0; i < AG_HTTP_HEADERS_CAP; i++) {
        snprintf(names[i], sizeof names[i], "X-Field-%zu", i);
        cases[i] = (struct field_case){names[i], "v", true};
    }
    struct ag_http_header out[GW_HEADERS_OUT_CAP];
    size_t n = gw_upstream_headers(request_with(cases, COUNT(cases)), &full_forward, out);
    assert_int_equal(n, AG_HTTP_HEADERS_CAP + 8);
    assert_string_equal(render(out, n), render_kept(cases, COUNT(cases), full_forward_fields));
}

/* Repeated Connection lines form one list (RFC 9110 §5.3): a name in any of them is hop-by-hop,
 * before or after the line that names it, in both directions. */
static void every_connection_field_counts(void **state)
{
    (void)state;
    static const struct field_case cases[] = {
        {"X-Early", "named by the second Connection line", false},
        {"Connection", "close", false},
        {"Accept", "*/*", true},
        {"connection", "X-Early, X-Late", false},
        {"X-Late", "named by the same line", false},
        {"X-Kept", "named by none", true},
    };
    const struct gw_forward none = {0};
    struct ag_http_header out[GW_HEADERS_OUT_CAP];
    size_t n = gw_upstream_headers(request_with(cases, COUNT(cases)), &none, out);
    assert_string_equal(render(out, n),
                        render_kept(cases, COUNT(cases), "X-Forwarded-Proto: http\n"));
    struct ag_http_header resp[COUNT(cases)];
    size_t resp_count = fields_from(cases, COUNT(cases), resp);
    n = gw_response_headers(resp, resp_count, false, false, out);
    assert_string_equal(render(out, n), render_kept(cases, COUNT(cases), ""));
}

static void response_drops_owned_and_hop_fields(void **state)
{
    (void)state;
    /* kept: what survives with rate_limited and cors both false. */
    static const struct field_case cases[] = {
        {"Content-Type", "application/json", true},
        {"connection", "close, X-Hop ,, x-other-hop", false},
        {"X-Hop", "listed", false},
        {"X-OTHER-HOP", "listed", false},
        {"X-Hops", "not listed", true},
        {"Keep-Alive", "timeout=5", false},
        {"Transfer-Encoding", "chunked", false},
        {"Upgrade", "h2c", false},
        {"Trailer", "X-Sum", false},
        {"Date", "Mon, 01 Jan 2024 00:00:00 GMT", false},
        {"date", "again", false},
        {"Dates", "5 bytes", true},
        {"Datf", "4 bytes", true},
        {"Content-Length", "42", false},
        {"CONTENT-LENGTH", "42", false},
        {"Content-Lengths", "15 bytes", true},
        {"X-Request-Id", "upstream-id", false},
        {"x-request-id", "upstream-id", false},
        {"X-Request-Ids", "13 bytes", true},
        {"X-Request-Ix", "12 bytes", true},
        {"Set-Cookie", "a=1", true},
        {"ETag", "\"v1\"", true},
        {"Set-Cookie", "b=2", true},
        {"X-User-Id", "the gateway does not own it on the way down", true},
    };
    struct ag_http_header resp[COUNT(cases)];
    size_t resp_count = fields_from(cases, COUNT(cases), resp);
    struct ag_http_header out[GW_HEADERS_OUT_CAP];
    size_t n = gw_response_headers(resp, resp_count, false, false, out);
    assert_string_equal(render(out, n), render_kept(cases, COUNT(cases), ""));
    n = gw_response_headers(resp, resp_count, true, true, out);
    assert_string_equal(render(out, n), render_kept(cases, COUNT(cases), ""));

    /* Without the Connection field, the names it listed pass. */
    n = gw_response_headers(resp + 2, 3, false, false, out);
    assert_string_equal(render(out, n), "X-Hop: listed\nX-OTHER-HOP: listed\nX-Hops: not listed\n");

    assert_int_equal(gw_response_headers(resp, 0, true, true, out), 0);
}

static void response_rate_limit_and_cors(void **state)
{
    (void)state;
    static const struct ag_http_header resp[] = {
        {AG_STR("Content-Type"), AG_STR("text/plain")},
        {AG_STR("RateLimit-Limit"), AG_STR("10")},
        {AG_STR("ratelimit-remaining"), AG_STR("9")},
        {AG_STR("RATELIMIT-"), AG_STR("prefix only")},
        {AG_STR("RateLimit"), AG_STR("no dash")},
        {AG_STR("X-RateLimit-Limit"), AG_STR("not a prefix")},
        {AG_STR("Access-Control-Allow-Origin"), AG_STR("*")},
        {AG_STR("access-control-expose-headers"), AG_STR("ETag")},
        {AG_STR("Access-Control-"), AG_STR("prefix only")},
        {AG_STR("Access-Control"), AG_STR("no dash")},
        {AG_STR("Vary"), AG_STR("Origin")},
    };
    static const struct {
        bool rate_limited, cors;
        const char *want;
    } cases[] = {
        {false, false,
         "Content-Type: text/plain\n"
         "RateLimit-Limit: 10\n"
         "ratelimit-remaining: 9\n"
         "RATELIMIT-: prefix only\n"
         "RateLimit: no dash\n"
         "X-RateLimit-Limit: not a prefix\n"
         "Access-Control-Allow-Origin: *\n"
         "access-control-expose-headers: ETag\n"
         "Access-Control-: prefix only\n"
         "Access-Control: no dash\n"
         "Vary: Origin\n"},
        {true, false,
         "Content-Type: text/plain\n"
         "RateLimit: no dash\n"
         "X-RateLimit-Limit: not a prefix\n"
         "Access-Control-Allow-Origin: *\n"
         "access-control-expose-headers: ETag\n"
         "Access-Control-: prefix only\n"
         "Access-Control: no dash\n"
         "Vary: Origin\n"},
        {false, true,
         "Content-Type: text/plain\n"
         "RateLimit-Limit: 10\n"
         "ratelimit-remaining: 9\n"
         "RATELIMIT-: prefix only\n"
         "RateLimit: no dash\n"
         "X-RateLimit-Limit: not a prefix\n"
         "Access-Control: no dash\n"
         "Vary: Origin\n"},
        {true, true,
         "Content-Type: text/plain\n"
         "RateLimit: no dash\n"
         "X-RateLimit-Limit: not a prefix\n"
         "Access-Control: no dash\n"
         "Vary: Origin\n"},
    };
    struct ag_http_header out[GW_HEADERS_OUT_CAP];
    for (size_t i = 0; i < COUNT(cases); i++) {
        size_t n =
            gw_response_headers(resp, COUNT(resp), cases[i].rate_limited, cases[i].cors, out);
        assert_string_equal(render(out, n), cases[i].want);
    }
}

/* A response at the field cap, all kept. */
static void response_full(void **state)
{
    (void)state;
    static struct field_case cases[AG_HTTP_HEADERS_CAP];
    static char names[AG_HTTP_HEADERS_CAP][16];
    for (size_t i = 0; i < AG_HTTP_HEADERS_CAP; i++) {
        snprintf(names[i], sizeof names[i], "X-Field-%zu", i);
        cases[i] = (struct field_case){names[i], "v", true};
    }
    struct ag_http_header resp[AG_HTTP_HEADERS_CAP];
    size_t resp_count = fields_from(cases, COUNT(cases), resp);
    struct ag_http_header out[GW_HEADERS_OUT_CAP];
    size_t n = gw_response_headers(resp, resp_count, true, true, out);
    assert_int_equal(n, AG_HTTP_HEADERS_CAP);
    assert_string_equal(render(out, n), render_kept(cases, COUNT(cases), ""));
}

static char nosniff[] = "nosniff", deny[] = "DENY", no_referrer[] = "no-referrer",
            csp[] = "default-src 'self'", empty[] = "";

static const struct gw_security_conf all_security = {
    .content_type_options = nosniff,
    .frame_options = deny,
    .referrer_policy = no_referrer,
    .content_security_policy = csp,
    .hsts_max_age_s = 31536000,
};

/* gw_security_headers into a fresh list; returns it rendered. */
static const char *security(const struct gw_security_conf *sec, const struct ag_http_header *resp,
                            size_t resp_count, bool tls)
{
    static struct ag_http_header out[GW_HEADERS_OUT_CAP];
    static char hsts[40];
    size_t count = 0;
    gw_security_headers(sec, resp, resp_count, tls, out, &count, COUNT(out), hsts);
    return render(out, count);
}

static void security_basic_fields(void **state)
{
    (void)state;
    static const char basic[] = "X-Content-Type-Options: nosniff\n"
                                "X-Frame-Options: DENY\n"
                                "Referrer-Policy: no-referrer\n";
    /* No response, or one without a Content-Type: not HTML, so no CSP; no TLS, so no HSTS. */
    assert_string_equal(security(&all_security, NULL, 0, false), basic);
    assert_string_equal(security(&all_security, NULL, 5, false), basic);
    static const struct ag_http_header json[] = {
        {AG_STR("Content-Type"), AG_STR("application/json")}};
    assert_string_equal(security(&all_security, json, 1, false), basic);

    /* Nothing configured, nothing added. */
    struct gw_security_conf none = {0};
    assert_string_equal(security(&none, NULL, 0, true), "");
    /* Empty values are never sent. */
    struct gw_security_conf empties = {
        .content_type_options = empty,
        .frame_options = NULL,
        .referrer_policy = no_referrer,
        .content_security_policy = empty,
    };
    static const struct ag_http_header html[] = {{AG_STR("Content-Type"), AG_STR("text/html")}};
    assert_string_equal(security(&empties, html, 1, true), "Referrer-Policy: no-referrer\n");
}

static void security_csp_only_for_html(void **state)
{
    (void)state;
    static const struct {
        const char *content_type;
        bool html;
    } cases[] = {
        {"text/html", true},
        {"text/html; charset=utf-8", true},
        {"TEXT/HTML", true},
        {"Text/Html;charset=UTF-8", true},
        {"text/htm", false},
        {"text/plain", false},
        {"application/xhtml+xml", false},
        {"application/json", false},
        {"", false},
        {"html", false},
        {"text/xhtml", false},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        struct ag_http_header resp[] = {
            {AG_STR("ETag"), AG_STR("\"1\"")},
            {AG_STR("content-type"), ag_str_from_cstr(cases[i].content_type)},
        };
        const char *got = security(&all_security, resp, COUNT(resp), false);
        if ((strstr(got, "Content-Security-Policy: default-src 'self'\n") != NULL) != cases[i].html)
            fprintf(stderr, "Content-Type \"%s\" gave:\n%s", cases[i].content_type, got);
        assert_int_equal(strstr(got, "Content-Security-Policy: default-src 'self'\n") != NULL,
                         cases[i].html);
    }
    /* A Content-Type past resp_count is not looked at. */
    static const struct ag_http_header resp[] = {
        {AG_STR("ETag"), AG_STR("\"1\"")},
        {AG_STR("Content-Type"), AG_STR("text/html")},
    };
    assert_null(strstr(security(&all_security, resp, 1, false), "Content-Security-Policy"));
    assert_string_equal(security(&all_security, resp, 2, false),
                        "X-Content-Type-Options: nosniff\n"
                        "X-Frame-Options: DENY\n"
                        "Referrer-Policy: no-referrer\n"
                        "Content-Security-Policy: default-src 'self'\n");
}

static void security_hsts(void **state)
{
    (void)state;
    static const char basic[] = "X-Content-Type-Options: nosniff\n"
                                "X-Frame-Options: DENY\n"
                                "Referrer-Policy: no-referrer\n";
    assert_string_equal(security(&all_security, NULL, 0, true),
                        "X-Content-Type-Options: nosniff\n"
                        "X-Frame-Options: DENY\n"
                        "Referrer-Policy: no-referrer\n"
                        "Strict-Transport-Security: max-age=31536000\n");
    assert_string_equal(security(&all_security, NULL, 0, false), basic);

    struct gw_security_conf sec = all_security;
    sec.hsts_max_age_s = 0;
    assert_string_equal(security(&sec, NULL, 0, true), basic);
    sec.hsts_max_age_s = 1;
    assert_non_null(
        strstr(security(&sec, NULL, 0, true), "\nStrict-Transport-Security: max-age=1\n"));
    /* The largest value fits the 40-byte buffer. */
    sec.hsts_max_age_s = UINT64_MAX;
    assert_non_null(strstr(security(&sec, NULL, 0, true),
                           "\nStrict-Transport-Security: max-age=18446744073709551615\n"));

    /* HTML over TLS: all five, in order. */
    static const struct ag_http_header html[] = {{AG_STR("Content-Type"), AG_STR("text/html")}};
    assert_string_equal(security(&all_security, html, 1, true),
                        "X-Content-Type-Options: nosniff\n"
                        "X-Frame-Options: DENY\n"
                        "Referrer-Policy: no-referrer\n"
                        "Content-Security-Policy: default-src 'self'\n"
                        "Strict-Transport-Security: max-age=31536000\n");
}

static void security_never_overrides_the_response(void **state)
{
    (void)state;
    static const struct ag_http_header resp[] = {
        {AG_STR("Content-Type"), AG_STR("text/html; charset=utf-8")},
        {AG_STR("x-frame-options"), AG_STR("SAMEORIGIN")},
        {AG_STR("CONTENT-SECURITY-POLICY"), AG_STR("default-src *")},
        {AG_STR("Strict-Transport-Security"), AG_STR("max-age=1")},
    };
    assert_string_equal(security(&all_security, resp, COUNT(resp), true),
                        "X-Content-Type-Options: nosniff\n"
                        "Referrer-Policy: no-referrer\n");

    static const struct ag_http_header all[] = {
        {AG_STR("X-Content-Type-Options"), AG_STR("nosniff")},
        {AG_STR("x-frame-options"), AG_STR("DENY")},
        {AG_STR("REFERRER-POLICY"), AG_STR("origin")},
        {AG_STR("Content-Security-Policy"), AG_STR("default-src *")},
        {AG_STR("strict-transport-security"), AG_STR("max-age=1")},
        {AG_STR("Content-Type"), AG_STR("TEXT/HTML")},
    };
    assert_string_equal(security(&all_security, all, COUNT(all), true), "");

    /* Names that only look like them do not count. */
    static const struct ag_http_header decoys[] = {
        {AG_STR("X-Content-Type-Option"), AG_STR("nosniff")},
        {AG_STR("X-Frame-Options-X"), AG_STR("DENY")},
        {AG_STR("Referrer"), AG_STR("origin")},
    };
    assert_string_equal(security(&all_security, decoys, COUNT(decoys), false),
                        "X-Content-Type-Options: nosniff\n"
                        "X-Frame-Options: DENY\n"
                        "Referrer-Policy: no-referrer\n");
}

static void security_respects_cap(void **state)
{
    (void)state;
    static const struct ag_http_header html[] = {{AG_STR("Content-Type"), AG_STR("text/html")}};
    struct ag_http_header out[8];
    char hsts[40];
    const struct ag_http_header before = {AG_STR("Vary"), AG_STR("Origin")};

    /* From 2 with room for 4: two are added, the first two untouched, out[4..] never written. */
    for (size_t i = 0; i < COUNT(out); i++)
        out[i] = before;
    size_t count = 2;
    gw_security_headers(&all_security, html, 1, true, out, &count, 4, hsts);
    assert_int_equal(count, 4);
    assert_string_equal(render(out, COUNT(out)), "Vary: Origin\n"
                                                 "Vary: Origin\n"
                                                 "X-Content-Type-Options: nosniff\n"
                                                 "X-Frame-Options: DENY\n"
                                                 "Vary: Origin\n"
                                                 "Vary: Origin\n"
                                                 "Vary: Origin\n"
                                                 "Vary: Origin\n");

    /* Already full: nothing added. */
    for (size_t i = 0; i < COUNT(out); i++)
        out[i] = before;
    count = 3;
    gw_security_headers(&all_security, html, 1, true, out, &count, 3, hsts);
    assert_int_equal(count, 3);
    assert_string_equal(render(out, COUNT(out)), "Vary: Origin\nVary: Origin\nVary: Origin\n"
                                                 "Vary: Origin\nVary: Origin\nVary: Origin\n"
                                                 "Vary: Origin\nVary: Origin\n");
    count = 0;
    gw_security_headers(&all_security, html, 1, true, out, &count, 0, hsts);
    assert_int_equal(count, 0);

    /* Room for exactly all five, starting from 3. */
    count = 3;
    gw_security_headers(&all_security, html, 1, true, out, &count, 8, hsts);
    assert_int_equal(count, 8);
    assert_string_equal(render(out + 3, 5), "X-Content-Type-Options: nosniff\n"
                                            "X-Frame-Options: DENY\n"
                                            "Referrer-Policy: no-referrer\n"
                                            "Content-Security-Policy: default-src 'self'\n"
                                            "Strict-Transport-Security: max-age=31536000\n");

    /* Skipped fields do not use up room: with two already present, the cap goes to the next. */
    static const struct ag_http_header some[] = {
        {AG_STR("Content-Type"), AG_STR("text/html")},
        {AG_STR("X-Content-Type-Options"), AG_STR("nosniff")},
        {AG_STR("X-Frame-Options"), AG_STR("DENY")},
    };
    count = 0;
    gw_security_headers(&all_security, some, COUNT(some), true, out, &count, 2, hsts);
    assert_int_equal(count, 2);
    assert_string_equal(render(out, count), "Referrer-Policy: no-referrer\n"
                                            "Content-Security-Policy: default-src 'self'\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hop_by_hop_fixed_names),
        cmocka_unit_test(hop_by_hop_decoys),
        cmocka_unit_test(hop_by_hop_connection_listed),
        cmocka_unit_test(upstream_strips_client_fields),
        cmocka_unit_test(upstream_gateway_fields),
        cmocka_unit_test(upstream_full_request),
        cmocka_unit_test(every_connection_field_counts),
        cmocka_unit_test(response_drops_owned_and_hop_fields),
        cmocka_unit_test(response_rate_limit_and_cors),
        cmocka_unit_test(response_full),
        cmocka_unit_test(security_basic_fields),
        cmocka_unit_test(security_csp_only_for_html),
        cmocka_unit_test(security_hsts),
        cmocka_unit_test(security_never_overrides_the_response),
        cmocka_unit_test(security_respects_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
