/* Unit tests for src/gateway/gw_config.c: the schema, the issue's example, every refusal. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "gateway/gw_config.h"
#include "core/banned.h"

/* The configuration of the gateway issue, as written there. */
static const char example[] =
    "listen: 127.0.0.1:8080\n"
    "admin_listen: 127.0.0.1:9900\n"
    "workers: 2\n"
    "limits: { max_header_bytes: 32768, max_body_bytes: 10485760, header_timeout_ms: 10000, "
    "idle_timeout_ms: 60000 }\n"
    "access_log: stdout\n"
    "upstreams:\n"
    "  hello:\n"
    "    targets: [ { address: 127.0.0.1:9001, weight: 1 }, { address: 127.0.0.1:9002, weight: 1 "
    "} ]\n"
    "    balance: round_robin\n"
    "    keepalive: 64\n"
    "    connect_timeout_ms: 1000\n"
    "    timeout_ms: 30000\n"
    "    health: { path: /healthz, interval_ms: 1000, unhealthy_after: 3, healthy_after: 2 }\n"
    "    breaker: { window_ms: 10000, min_requests: 20, failure_ratio: 0.5, open_ms: 5000 }\n"
    "    retries: { attempts: 2, on: [connect_error, \"502\", \"503\"] }\n"
    "auth:\n"
    "  issuers:\n"
    "    - issuer: http://127.0.0.1:7101\n"
    "      jwks_uri: http://127.0.0.1:7101/.well-known/jwks.json\n"
    "      audiences: [agora]\n"
    "      algorithms: [ES256, RS256]\n"
    "      clock_skew_s: 30\n"
    "rate_limit_store: memory\n"
    "routes:\n"
    "  - name: hello\n"
    "    match: { host: \"*\", path: /api/v1/hello, prefix: true, methods: [GET, POST] }\n"
    "    upstream: hello\n"
    "    strip_prefix: /api/v1\n"
    "    auth: none\n"
    "    roles: []\n"
    "    rate_limit: { key: ip, rate: 100, per: 1s, burst: 100 }\n"
    "    cors: { origins: [\"https://shop.example\"], methods: [GET, POST], headers: "
    "[Authorization, Content-Type], max_age_s: 600 }\n"
    "    max_body_bytes: 1048576\n"
    "    timeout_ms: 5000\n";

static void test_schema_is_sound(void **state)
{
    (void)state;
    struct ag_err err = {0};
    int rc = ag_config_schema_check(&gw_config_schema, &err);
    if (rc != 0)
        fail_msg("schema check: %s", err.msg);
}

static void test_issue_example_loads(void **state)
{
    (void)state;
    struct gw_config cfg;
    struct ag_err err = {0};
    int rc = gw_config_load_string(&cfg, "gateway.yaml", example, strlen(example), &err);
    if (rc != 0)
        fail_msg("load: %s", err.msg);
    assert_int_equal(cfg.workers, 2);
    assert_int_equal(cfg.upstream_count, 1);
    const struct gw_upstream_conf *up = &cfg.upstreams[0];
    assert_string_equal(up->name, "hello");
    assert_int_equal(up->target_count, 2);
    assert_int_equal(up->keepalive, 64);
    assert_int_equal(up->connect_timeout_ms, 1000);
    assert_string_equal(up->health.path, "/healthz");
    assert_true(up->breaker.enabled);
    assert_true(up->retries.on_connect_error);
    assert_false(up->retries.on_timeout);
    assert_int_equal(up->retries.on_status[2], 1);
    assert_int_equal(up->retries.on_status[3], 1);
    assert_int_equal(up->retries.on_status[0], 0);
    assert_int_equal(cfg.auth.issuer_count, 1);
    assert_int_not_equal(cfg.auth.issuers[0].algorithm_mask, 0);
    assert_int_equal(cfg.auth.max_token_bytes, 8192);
    const struct gw_route_conf *rt = &cfg.routes[0];
    assert_int_equal(rt->upstream_index, 0);
    assert_int_equal(rt->rate_limit.rate, 100);
    assert_int_equal(rt->rate_limit.per_ms, 1000);
    assert_int_equal(rt->rate_limit.key_kind, GW_RATE_KEY_IP);
    assert_int_equal(rt->cors.origin_count, 1);
    assert_int_equal(rt->max_body_bytes, 1048576);
    assert_string_equal(cfg.security_headers.content_type_options, "nosniff");
    gw_config_release(&cfg);
}

static void test_defaults(void **state)
{
    (void)state;
    static const char text[] = "upstreams: { a: { targets: [ { address: 127.0.0.1:1 } ] } }\n"
                               "routes: [ { name: r, match: { path: / }, upstream: a } ]\n";
    struct gw_config cfg;
    struct ag_err err = {0};
    int rc = gw_config_load_string(&cfg, "d.yaml", text, strlen(text), &err);
    if (rc != 0)
        fail_msg("load: %s", err.msg);
    assert_string_equal(cfg.listen, "127.0.0.1:8080");
    assert_string_equal(cfg.access_log, "stdout");
    assert_string_equal(cfg.rate_limit_store, "memory");
    assert_int_equal(cfg.limits.max_body_bytes, 10u << 20);
    assert_int_equal(cfg.upstreams[0].targets[0].weight, 1);
    assert_int_equal(cfg.upstreams[0].retries.attempts, 2);
    assert_true(cfg.upstreams[0].retries.on_connect_error); /* empty `on` */
    assert_null(cfg.upstreams[0].health.path);
    assert_string_equal(cfg.routes[0].match.host, "*");
    assert_int_equal(cfg.routes[0].auth, GW_AUTH_NONE);
    assert_int_equal(cfg.routes[0].rate_limit.rate, 0);
    gw_config_release(&cfg);
}

/* Loads text (a valid base with one change) and expects a refusal mentioning want. */
static void expect_refusal(const char *text, const char *want)
{
    struct gw_config cfg;
    struct ag_err err = {0};
    int rc = gw_config_load_string(&cfg, "bad.yaml", text, strlen(text), &err);
    if (rc == 0) {
        gw_config_release(&cfg);
        fail_msg("accepted, expected a refusal with \"%s\":\n%s", want, text);
    }
    if (!strstr(err.msg, want))
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
    if (strncmp(err.msg, "bad.yaml:", 9) != 0)
        fail_msg("message \"%s\" does not start with the file name", err.msg);
}

#define UP  "upstreams: { a: { targets: [ { address: 127.0.0.1:1 } ] } }\n"
#define ISS "auth: { issuers: [ { issuer: x, jwks_file: /tmp/j.json, algorithms: [ES256] } ] }\n"

static void test_refusals(void **state)
{
    (void)state;
    expect_refusal(UP "routes: [ { name: r, match: { path: / }, upstream: b } ]\n",
                   "bad.yaml:2: routes[0].upstream: no upstream is named \"b\"");
    expect_refusal(UP "routes: [ { name: r, match: { path: / }, upstream: a, colour: red } ]\n",
                   "bad.yaml:2:");
    expect_refusal(UP "routes: [ { name: r, match: { path: / }, upstream: a, colour: red } ]\n",
                   "colour");
    expect_refusal(UP "workers: many\n", "bad.yaml:2: workers");
    expect_refusal(UP "listen: nowhere\n", "listen");
    expect_refusal(UP
                   "routes: [ { name: r, match: { path: /a }, upstream: a, strip_prefix: /b } ]\n",
                   "strip_prefix");
    expect_refusal(UP "routes: [ { name: r, match: { path: / }, upstream: a, roles: [admin] } ]\n",
                   "roles need auth");
    expect_refusal(UP "routes: [ { name: r, match: { path: / }, upstream: a, auth: required } ]\n",
                   "no auth.issuers");
    expect_refusal(UP "routes: [ { name: r, match: { path: / }, upstream: a, rate_limit: { key: "
                      "user, rate: 5 } } ]\n",
                   "needs auth");
    expect_refusal(UP "routes: [ { name: r, match: { path: / }, upstream: a, rate_limit: { key: "
                      "cookie, rate: 5 } } ]\n",
                   "rate_limit.key");
    expect_refusal(UP "routes: [ { name: r, match: { path: / }, upstream: a },"
                      " { name: r, match: { path: /x }, upstream: a } ]\n",
                   "routes[1].name");
    expect_refusal(UP
                   "routes: [ { name: r, match: { path: /, methods: [\"G T\"] }, upstream: a } ]\n",
                   "not a method");
    expect_refusal("upstreams: { a: { targets: [ { address: 127.0.0.1:1 } ], retries: { on: "
                   "[\"404\"] } } }\n",
                   "retries.on[0]");
    expect_refusal("upstreams: { a: { targets: [ { address: 127.0.0.1:1 } ], health: { path: "
                   "healthz } } }\n",
                   "health.path");
    expect_refusal("upstreams: { a: { targets: [] } }\n", "targets");
    expect_refusal("upstreams: { a: { targets: [ { address: 127.0.0.1:1, weight: 0 } ] } }\n",
                   "weight");
    expect_refusal(UP "auth: { issuers: [ { issuer: x, jwks_file: /j, algorithms: [HS256] } ] }\n",
                   "HS256");
    expect_refusal(UP "auth: { issuers: [ { issuer: x, jwks_file: /j, algorithms: [none] } ] }\n",
                   "never HS* or none");
    expect_refusal(UP "auth: { issuers: [ { issuer: x, algorithms: [ES256] } ] }\n",
                   "exactly one of jwks_uri and jwks_file");
    expect_refusal(UP "auth: { issuers: [ { issuer: x, jwks_uri: \"https://idp/jwks\", "
                      "algorithms: [ES256] } ] }\n",
                   "only http://");
    expect_refusal(UP ISS "auth2: 1\n", "auth2");
    expect_refusal(UP "rate_limit_store: memcached\n", "rate_limit_store");
    expect_refusal(UP "rate_limit_fail: maybe\n", "rate_limit_fail");
    expect_refusal(UP "limits: { max_body_bytes: lots }\n", "limits.max_body_bytes");
    expect_refusal(UP "routes: [ { name: r, upstream: a } ]\n", "match");
    /* A value with a line break would split every response's head. */
    expect_refusal(UP "security_headers:\n  frame_options: \"DENY\\r\\nSet-Cookie: a=b\"\n",
                   "bad.yaml:3: security_headers.frame_options: byte 0x0d at offset 4");
}

static void test_missing_file(void **state)
{
    (void)state;
    struct gw_config cfg;
    struct ag_err err = {0};
    assert_int_not_equal(gw_config_load(&cfg, "/nonexistent/gateway.yaml", &err), 0);
    assert_non_null(strstr(err.msg, "/nonexistent/gateway.yaml"));
}

static void test_development_config_loads(void **state)
{
    (void)state;
    struct gw_config cfg;
    struct ag_err err = {0};
    int rc = gw_config_load(&cfg, "config/gateway.yaml", &err);
    if (rc != 0)
        fail_msg("config/gateway.yaml: %s", err.msg);
    gw_config_release(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_is_sound), cmocka_unit_test(test_issue_example_loads),
        cmocka_unit_test(test_defaults),        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_missing_file),    cmocka_unit_test(test_development_config_loads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
