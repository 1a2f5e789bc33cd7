/* The gateway's configuration: the YAML schema, its checks across keys, and where each key is. */
#include "gateway/gw_config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/config_yaml.h"
#include "core/http_parse.h"
#include "core/jwt.h"
#include "gateway/ratelimit.h"
#include "gateway/ratelimit_redis.h"
#include "core/banned.h"

#define FIELD(s, m)   .offset = offsetof(struct s, m)
#define LIST(s, m, n) .offset = offsetof(struct s, m), .count_offset = offsetof(struct s, n)

static const char *const balance_names[] = {"round_robin", "least_conn", "random", NULL};
static const char *const auth_names[] = {"none", "optional", "required", NULL};
static const char *const fail_names[] = {"open", "closed", NULL};
static const char *const level_names[] = {"debug", "info", "warn", "error", NULL};

/* ---- upstreams ---- */

static const struct ag_config_field target_fields[] = {
    {.key = "address",
     .type = AG_CONFIG_ADDR,
     FIELD(gw_target_conf, address),
     .required = true,
     .help = "host:port of the target (a name is resolved once, when the configuration loads)."},
    {.key = "weight",
     .type = AG_CONFIG_UINT,
     FIELD(gw_target_conf, weight),
     .umin = 1,
     .umax = 1000,
     .def = "1",
     .help = "Share of the requests relative to the other targets."},
    {0},
};
static const struct ag_config_schema target_schema = {"target", sizeof(struct gw_target_conf),
                                                      target_fields};

static const struct ag_config_field health_fields[] = {
    {.key = "path",
     .type = AG_CONFIG_STRING,
     FIELD(gw_health_conf, path),
     .umin = 1,
     .umax = 1024,
     .help = "Path probed with GET on every target; absent: no active checks."},
    {.key = "interval_ms",
     .type = AG_CONFIG_DURATION,
     FIELD(gw_health_conf, interval_ms),
     .umin = 100,
     .umax = 3600000,
     .def = "1s",
     .help = "Time between two checks of a target."},
    {.key = "timeout_ms",
     .type = AG_CONFIG_DURATION,
     FIELD(gw_health_conf, timeout_ms),
     .umin = 10,
     .umax = 60000,
     .def = "1s",
     .help = "A check answering later fails."},
    {.key = "unhealthy_after",
     .type = AG_CONFIG_UINT,
     FIELD(gw_health_conf, unhealthy_after),
     .umin = 1,
     .umax = 100,
     .def = "3",
     .help = "Failed checks in a row that take a target out."},
    {.key = "healthy_after",
     .type = AG_CONFIG_UINT,
     FIELD(gw_health_conf, healthy_after),
     .umin = 1,
     .umax = 100,
     .def = "2",
     .help = "Passed checks in a row that bring it back."},
    {0},
};
static const struct ag_config_schema health_schema = {"health", sizeof(struct gw_health_conf),
                                                      health_fields};

static const struct ag_config_field passive_fields[] = {
    {.key = "consecutive_failures",
     .type = AG_CONFIG_UINT,
     FIELD(gw_passive_conf, consecutive_failures),
     .umax = 1000,
     .def = "5",
     .help = "Connect errors, timeouts or 5xx in a row that eject a target; 0 never ejects."},
    {.key = "eject_ms",
     .type = AG_CONFIG_DURATION,
     FIELD(gw_passive_conf, eject_ms),
     .umin = 100,
     .umax = 3600000,
     .def = "10s",
     .help = "How long an ejected target stays out (active checks may bring it back sooner)."},
    {0},
};
static const struct ag_config_schema passive_schema = {"passive", sizeof(struct gw_passive_conf),
                                                       passive_fields};

static const struct ag_config_field breaker_fields[] = {
    {.key = "enabled",
     .type = AG_CONFIG_BOOL,
     FIELD(gw_breaker_conf, enabled),
     .def = "true",
     .help = "Whether the upstream has a circuit breaker."},
    {.key = "window_ms",
     .type = AG_CONFIG_DURATION,
     FIELD(gw_breaker_conf, window_ms),
     .umin = 100,
     .umax = 3600000,
     .def = "10s",
     .help = "Rolling window of outcomes."},
    {.key = "min_requests",
     .type = AG_CONFIG_UINT,
     FIELD(gw_breaker_conf, min_requests),
     .umin = 1,
     .umax = 1000000,
     .def = "20",
     .help = "Requests in the window before the breaker may open."},
    {.key = "failure_ratio",
     .type = AG_CONFIG_DOUBLE,
     FIELD(gw_breaker_conf, failure_ratio),
     .dmin = 0.01,
     .dmax = 1.0,
     .def = "0.5",
     .help = "Share of failures in the window that opens the breaker."},
    {.key = "open_ms",
     .type = AG_CONFIG_DURATION,
     FIELD(gw_breaker_conf, open_ms),
     .umin = 100,
     .umax = 3600000,
     .def = "5s",
     .help = "How long the breaker stays open before one probe request is let through."},
    {0},
};
static const struct ag_config_schema breaker_schema = {"breaker", sizeof(struct gw_breaker_conf),
                                                       breaker_fields};

static const struct ag_config_field retries_fields[] = {
    {.key = "attempts",
     .type = AG_CONFIG_UINT,
     FIELD(gw_retries_conf, attempts),
     .umin = 1,
     .umax = 10,
     .def = "2",
     .help = "Tries in all, the first included, for idempotent methods (GET, HEAD, OPTIONS, PUT, "
             "DELETE, TRACE) without a request body; others are tried once. A retry goes to a "
             "target not tried yet when there is one."},
    {.key = "on",
     .type = AG_CONFIG_STRINGS,
     LIST(gw_retries_conf, on, on_count),
     .umax = 8,
     .help = "When to retry: connect_error, timeout, \"500\" to \"505\"; empty: connect_error."},
    {.key = "budget_ratio",
     .type = AG_CONFIG_DOUBLE,
     FIELD(gw_retries_conf, budget_ratio),
     .dmin = 0.0,
     .dmax = 1.0,
     .def = "0.2",
     .help = "Retries earned per request sent (per worker and upstream), on top of 10 per second "
             "and at most 100 saved, so that retries cannot multiply the load on a failing "
             "upstream."},
    {0},
};
static const struct ag_config_schema retries_schema = {"retries", sizeof(struct gw_retries_conf),
                                                       retries_fields};

static const struct ag_config_field upstream_fields[] = {
    {.key = "targets",
     .type = AG_CONFIG_LIST,
     LIST(gw_upstream_conf, targets, target_count),
     .umin = 1,
     .umax = 64,
     .schema = &target_schema,
     .help = "Where the requests go."},
    {.key = "balance",
     .type = AG_CONFIG_ENUM,
     FIELD(gw_upstream_conf, balance),
     .names = balance_names,
     .def = "round_robin",
     .help = "How a target is picked; weights apply to all three."},
    {.key = "keepalive",
     .type = AG_CONFIG_UINT,
     FIELD(gw_upstream_conf, keepalive),
     .umax = 10000,
     .def = "64",
     .help = "Idle connections kept per worker and target."},
    {.key = "connect_timeout_ms",
     .type = AG_CONFIG_DURATION,
     FIELD(gw_upstream_conf, connect_timeout_ms),
     .umin = 1,
     .umax = 60000,
     .def = "1s",
     .help = "TCP connect to a target; past it the target counts as failed."},
    {.key = "timeout_ms",
     .type = AG_CONFIG_DURATION,
     FIELD(gw_upstream_conf, timeout_ms),
     .umin = 1,
     .umax = 3600000,
     .def = "30s",
     .help = "The whole response; past it the client gets 504."},
    {.key = "host",
     .type = AG_CONFIG_STRING,
     FIELD(gw_upstream_conf, host),
     .umin = 1,
     .umax = 255,
     .help = "Host header sent upstream; absent: the client's Host is passed on."},
    {.key = "health",
     .type = AG_CONFIG_STRUCT,
     FIELD(gw_upstream_conf, health),
     .schema = &health_schema,
     .help = "Active health checks."},
    {.key = "passive",
     .type = AG_CONFIG_STRUCT,
     FIELD(gw_upstream_conf, passive),
     .schema = &passive_schema,
     .help = "Passive ejection of failing targets."},
    {.key = "breaker",
     .type = AG_CONFIG_STRUCT,
     FIELD(gw_upstream_conf, breaker),
     .schema = &breaker_schema,
     .help = "Circuit breaker over the whole upstream."},
    {.key = "retries",
     .type = AG_CONFIG_STRUCT,
     FIELD(gw_upstream_conf, retries),
     .schema = &retries_schema,
     .help = "Retries on another target."},
    {0},
};
static const struct ag_config_schema upstream_schema = {"upstream", sizeof(struct gw_upstream_conf),
                                                        upstream_fields};

/* ---- auth ---- */

static const struct ag_config_field issuer_fields[] = {
    {.key = "issuer",
     .type = AG_CONFIG_STRING,
     FIELD(gw_issuer_conf, issuer),
     .required = true,
     .umin = 1,
     .umax = 512,
     .help = "The exact `iss` claim of this issuer's tokens."},
    {.key = "jwks_uri",
     .type = AG_CONFIG_STRING,
     FIELD(gw_issuer_conf, jwks_uri),
     .umin = 8,
     .umax = 2048,
     .help = "http:// URL of the issuer's JWK Set (or jwks_file)."},
    {.key = "jwks_file",
     .type = AG_CONFIG_STRING,
     FIELD(gw_issuer_conf, jwks_file),
     .umin = 1,
     .umax = 4096,
     .help = "Path of a JWK Set file (or jwks_uri)."},
    {.key = "audiences",
     .type = AG_CONFIG_STRINGS,
     LIST(gw_issuer_conf, audiences, audience_count),
     .umax = 32,
     .help = "Accepted `aud` values; empty: any audience."},
    {.key = "algorithms",
     .type = AG_CONFIG_STRINGS,
     LIST(gw_issuer_conf, algorithms, algorithm_count),
     .umin = 1,
     .umax = 8,
     .help = "Signature algorithms accepted (ES256, ES384, RS256, RS384, RS512, PS256, EdDSA); "
             "the token's own `alg` is only checked against this list."},
    {.key = "clock_skew_s",
     .type = AG_CONFIG_UINT,
     FIELD(gw_issuer_conf, clock_skew_s),
     .umax = 600,
     .def = "30",
     .help = "Leeway for exp, nbf and iat, in seconds."},
    {.key = "refresh_interval_ms",
     .type = AG_CONFIG_DURATION,
     FIELD(gw_issuer_conf, refresh_interval_ms),
     .umin = 1000,
     .umax = 86400000,
     .def = "5m",
     .help = "How often the JWK Set is fetched again."},
    {0},
};
static const struct ag_config_schema issuer_schema = {"issuer", sizeof(struct gw_issuer_conf),
                                                      issuer_fields};

static const struct ag_config_field auth_fields[] = {
    {.key = "issuers",
     .type = AG_CONFIG_LIST,
     LIST(gw_auth_conf, issuers, issuer_count),
     .umax = 16,
     .schema = &issuer_schema,
     .help = "Token issuers (OIDC providers) trusted by the gateway."},
    {.key = "max_token_bytes",
     .type = AG_CONFIG_SIZE,
     FIELD(gw_auth_conf, max_token_bytes),
     .umin = 256,
     .umax = 65536,
     .def = "8KiB",
     .help = "Longer bearer tokens get 401."},
    {.key = "cache_entries",
     .type = AG_CONFIG_UINT,
     FIELD(gw_auth_conf, cache_entries),
     .umin = 1,
     .umax = 1000000,
     .def = "4096",
     .help = "Verified tokens remembered per worker."},
    {0},
};
static const struct ag_config_schema auth_schema = {"auth", sizeof(struct gw_auth_conf),
                                                    auth_fields};

/* ---- routes ---- */

static const struct ag_config_field match_fields[] = {
    {.key = "host",
     .type = AG_CONFIG_STRING,
     FIELD(gw_match_conf, host),
     .umin = 1,
     .umax = 255,
     .def = "*",
     .help = "\"*\", an exact host, or \"*.suffix\" for its subdomains."},
    {.key = "path",
     .type = AG_CONFIG_STRING,
     FIELD(gw_match_conf, path),
     .required = true,
     .umin = 1,
     .umax = 2048,
     .help = "Exact path or template with {param} segments."},
    {.key = "prefix",
     .type = AG_CONFIG_BOOL,
     FIELD(gw_match_conf, prefix),
     .def = "false",
     .help = "Also match deeper paths (on a segment boundary)."},
    {.key = "methods",
     .type = AG_CONFIG_STRINGS,
     LIST(gw_match_conf, methods, method_count),
     .umax = 16,
     .help = "Methods accepted; empty: any. HEAD goes with GET."},
    {0},
};
static const struct ag_config_schema match_schema = {"match", sizeof(struct gw_match_conf),
                                                     match_fields};

static const struct ag_config_field rate_fields[] = {
    {.key = "key",
     .type = AG_CONFIG_STRING,
     FIELD(gw_rate_conf, key),
     .umin = 2,
     .umax = 128,
     .def = "ip",
     .help = "One bucket per: ip, user (the token's sub), route, or header:NAME."},
    {.key = "rate",
     .type = AG_CONFIG_UINT,
     FIELD(gw_rate_conf, rate),
     .umax = 100000000,
     .help = "Tokens added per `per`; 0 or absent: no limit."},
    {.key = "per",
     .type = AG_CONFIG_DURATION,
     FIELD(gw_rate_conf, per_ms),
     .umin = 1,
     .umax = 86400000,
     .def = "1s",
     .help = "The period of `rate`."},
    {.key = "burst",
     .type = AG_CONFIG_UINT,
     FIELD(gw_rate_conf, burst),
     .umax = 100000000,
     .help = "Bucket size; 0 or absent: equal to rate."},
    {0},
};
static const struct ag_config_schema rate_schema = {"rate_limit", sizeof(struct gw_rate_conf),
                                                    rate_fields};

static const struct ag_config_field cors_fields[] = {
    {.key = "origins",
     .type = AG_CONFIG_STRINGS,
     LIST(gw_cors_conf, origins, origin_count),
     .umax = 64,
     .help = "Allowed origins (scheme://host[:port]) or \"*\"; empty: no CORS."},
    {.key = "methods",
     .type = AG_CONFIG_STRINGS,
     LIST(gw_cors_conf, methods, method_count),
     .umax = 16,
     .help = "Methods a preflight may ask for."},
    {.key = "headers",
     .type = AG_CONFIG_STRINGS,
     LIST(gw_cors_conf, headers, header_count),
     .umax = 64,
     .help = "Request headers a preflight may ask for."},
    {.key = "expose",
     .type = AG_CONFIG_STRINGS,
     LIST(gw_cors_conf, expose, expose_count),
     .umax = 64,
     .help = "Response headers scripts may read."},
    {.key = "max_age_s",
     .type = AG_CONFIG_UINT,
     FIELD(gw_cors_conf, max_age_s),
     .umax = 86400,
     .def = "600",
     .help = "How long a browser may cache a preflight answer."},
    {.key = "credentials",
     .type = AG_CONFIG_BOOL,
     FIELD(gw_cors_conf, credentials),
     .def = "false",
     .help = "Allow cookies and Authorization on cross-origin requests."},
    {0},
};
static const struct ag_config_schema cors_schema = {"cors", sizeof(struct gw_cors_conf),
                                                    cors_fields};

static const struct ag_config_field route_fields[] = {
    {.key = "name",
     .type = AG_CONFIG_STRING,
     FIELD(gw_route_conf, name),
     .required = true,
     .umin = 1,
     .umax = 64,
     .help = "Names the route in logs and metrics; unique."},
    {.key = "match",
     .type = AG_CONFIG_STRUCT,
     FIELD(gw_route_conf, match),
     .required = true,
     .schema = &match_schema,
     .help = "Which requests the route takes."},
    {.key = "upstream",
     .type = AG_CONFIG_STRING,
     FIELD(gw_route_conf, upstream),
     .required = true,
     .umin = 1,
     .umax = 64,
     .help = "Name of the upstream that serves it."},
    {.key = "strip_prefix",
     .type = AG_CONFIG_STRING,
     FIELD(gw_route_conf, strip_prefix),
     .umin = 1,
     .umax = 1024,
     .help = "Removed from the start of the path before proxying."},
    {.key = "add_prefix",
     .type = AG_CONFIG_STRING,
     FIELD(gw_route_conf, add_prefix),
     .umin = 1,
     .umax = 1024,
     .help = "Put before the path (after strip_prefix) before proxying."},
    {.key = "auth",
     .type = AG_CONFIG_ENUM,
     FIELD(gw_route_conf, auth),
     .names = auth_names,
     .def = "none",
     .help = "none: tokens ignored; optional: a token, if sent, must be valid; required."},
    {.key = "roles",
     .type = AG_CONFIG_STRINGS,
     LIST(gw_route_conf, roles, role_count),
     .umax = 32,
     .help = "The token must carry one of these roles (any-of); empty: any."},
    {.key = "rate_limit",
     .type = AG_CONFIG_STRUCT,
     FIELD(gw_route_conf, rate_limit),
     .schema = &rate_schema,
     .help = "Token bucket per key."},
    {.key = "cors",
     .type = AG_CONFIG_STRUCT,
     FIELD(gw_route_conf, cors),
     .schema = &cors_schema,
     .help = "Cross-origin policy, answered at the gateway."},
    {.key = "max_body_bytes",
     .type = AG_CONFIG_SIZE,
     FIELD(gw_route_conf, max_body_bytes),
     .umax = 1ULL << 40,
     .help = "Largest request body, at most limits.max_body_bytes; 0 or absent: that limit."},
    {.key = "timeout_ms",
     .type = AG_CONFIG_DURATION,
     FIELD(gw_route_conf, timeout_ms),
     .umax = 3600000,
     .help = "Whole-response timeout; 0 or absent: the upstream's."},
    {0},
};
static const struct ag_config_schema route_schema = {"route", sizeof(struct gw_route_conf),
                                                     route_fields};

/* ---- top level ---- */

static const struct ag_config_field limits_fields[] = {
    {.key = "max_request_line",
     .type = AG_CONFIG_SIZE,
     FIELD(gw_limits_conf, max_request_line),
     .umin = 64,
     .umax = 1 << 20,
     .def = "8KiB",
     .help = "Longer request lines get 414."},
    {.key = "max_header_bytes",
     .type = AG_CONFIG_SIZE,
     FIELD(gw_limits_conf, max_header_bytes),
     .umin = 1024,
     .umax = 1 << 20,
     .def = "32KiB",
     .help = "Larger header sections get 431."},
    {.key = "max_headers",
     .type = AG_CONFIG_UINT,
     FIELD(gw_limits_conf, max_headers),
     .umin = 8,
     .umax = 256,
     .def = "100",
     .help = "More header fields get 431."},
    {.key = "max_body_bytes",
     .type = AG_CONFIG_SIZE,
     FIELD(gw_limits_conf, max_body_bytes),
     .umax = 1ULL << 40,
     .def = "10MiB",
     .help = "Larger request bodies get 413."},
    {.key = "header_timeout_ms",
     .type = AG_CONFIG_DURATION,
     FIELD(gw_limits_conf, header_timeout_ms),
     .umin = 100,
     .umax = 600000,
     .def = "10s",
     .help = "The whole request head must arrive within this (slowloris), else 408."},
    {.key = "body_timeout_ms",
     .type = AG_CONFIG_DURATION,
     FIELD(gw_limits_conf, body_timeout_ms),
     .umin = 100,
     .umax = 3600000,
     .def = "30s",
     .help = "Longest pause inside a request body."},
    {.key = "idle_timeout_ms",
     .type = AG_CONFIG_DURATION,
     FIELD(gw_limits_conf, idle_timeout_ms),
     .umin = 100,
     .umax = 3600000,
     .def = "60s",
     .help = "Idle keep-alive connections close."},
    {.key = "write_timeout_ms",
     .type = AG_CONFIG_DURATION,
     FIELD(gw_limits_conf, write_timeout_ms),
     .umin = 100,
     .umax = 3600000,
     .def = "30s",
     .help = "A client that reads nothing this long is cut."},
    {.key = "drain_timeout_ms",
     .type = AG_CONFIG_DURATION,
     FIELD(gw_limits_conf, drain_timeout_ms),
     .umin = 0,
     .umax = 600000,
     .def = "10s",
     .help = "After SIGTERM, in-flight requests get this long."},
    {0},
};
static const struct ag_config_schema limits_schema = {"limits", sizeof(struct gw_limits_conf),
                                                      limits_fields};

static const struct ag_config_field security_fields[] = {
    {.key = "content_type_options",
     .type = AG_CONFIG_STRING,
     FIELD(gw_security_conf, content_type_options),
     .umax = 64,
     .def = "nosniff",
     .help = "X-Content-Type-Options on every response; empty: not sent."},
    {.key = "frame_options",
     .type = AG_CONFIG_STRING,
     FIELD(gw_security_conf, frame_options),
     .umax = 64,
     .def = "DENY",
     .help = "X-Frame-Options on every response; empty: not sent."},
    {.key = "referrer_policy",
     .type = AG_CONFIG_STRING,
     FIELD(gw_security_conf, referrer_policy),
     .umax = 64,
     .def = "no-referrer",
     .help = "Referrer-Policy on every response."},
    {.key = "content_security_policy",
     .type = AG_CONFIG_STRING,
     FIELD(gw_security_conf, content_security_policy),
     .umax = 2048,
     .def = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
     .help = "Content-Security-Policy on HTML responses that carry none."},
    {.key = "hsts_max_age_s",
     .type = AG_CONFIG_UINT,
     FIELD(gw_security_conf, hsts_max_age_s),
     .umax = 100000000,
     .def = "31536000",
     .help = "Strict-Transport-Security max-age on responses to requests that came over TLS."},
    {0},
};
static const struct ag_config_schema security_schema = {
    "security_headers", sizeof(struct gw_security_conf), security_fields};

static const struct ag_config_field config_fields[] = {
    {.key = "listen",
     .type = AG_CONFIG_ADDR,
     FIELD(gw_config, listen),
     .def = "127.0.0.1:8080",
     .help = "Public address (port 0: any free port, printed in the first log line)."},
    {.key = "admin_listen",
     .type = AG_CONFIG_ADDR,
     FIELD(gw_config, admin_listen),
     .def = "127.0.0.1:9900",
     .help = "Admin address: /healthz /readyz /metrics /routes /reload; keep it private."},
    {.key = "workers",
     .type = AG_CONFIG_UINT,
     FIELD(gw_config, workers),
     .umax = 256,
     .def = "0",
     .help = "Worker threads; 0: one per CPU. A reload cannot change it."},
    {.key = "limits",
     .type = AG_CONFIG_STRUCT,
     FIELD(gw_config, limits),
     .schema = &limits_schema,
     .help = "Request limits and timeouts (a reload cannot change them)."},
    {.key = "access_log",
     .type = AG_CONFIG_STRING,
     FIELD(gw_config, access_log),
     .umin = 1,
     .umax = 4096,
     .def = "stdout",
     .help = "stdout, off, or a file path (appended to)."},
    {.key = "log_level",
     .type = AG_CONFIG_ENUM,
     FIELD(gw_config, log_level),
     .names = level_names,
     .def = "info",
     .help = "Least severe log line written."},
    {.key = "upstreams",
     .type = AG_CONFIG_MAP,
     LIST(gw_config, upstreams, upstream_count),
     .name_offset = offsetof(struct gw_upstream_conf, name),
     .umax = 1024,
     .schema = &upstream_schema,
     .help = "Named groups of targets."},
    {.key = "auth",
     .type = AG_CONFIG_STRUCT,
     FIELD(gw_config, auth),
     .schema = &auth_schema,
     .help = "Bearer token verification."},
    {.key = "rate_limit_store",
     .type = AG_CONFIG_STRING,
     FIELD(gw_config, rate_limit_store),
     .umin = 1,
     .umax = 1024,
     .def = "memory",
     .secret = true,
     .help = "memory (per gateway) or redis://[[user]:password@]host[:port][/db] (shared; port "
             "6379 by default; a host name must resolve without blocking, so give an address)."},
    {.key = "rate_limit_fail",
     .type = AG_CONFIG_ENUM,
     FIELD(gw_config, rate_limit_fail),
     .names = fail_names,
     .def = "open",
     .help = "When Redis cannot answer: open admits, closed refuses with 429."},
    {.key = "rate_limit_timeout_ms",
     .type = AG_CONFIG_DURATION,
     FIELD(gw_config, rate_limit_timeout_ms),
     .umin = 1,
     .umax = 10000,
     .def = "50ms",
     .help = "Longest wait for Redis per decision."},
    {.key = "rate_limit_max_keys",
     .type = AG_CONFIG_UINT,
     FIELD(gw_config, rate_limit_max_keys),
     .umin = 16,
     .umax = 100000000,
     .def = "100000",
     .help = "Buckets kept by the memory store."},
    {.key = "routes",
     .type = AG_CONFIG_LIST,
     LIST(gw_config, routes, route_count),
     .umax = 4096,
     .schema = &route_schema,
     .help = "What goes where, most specific match first."},
    {.key = "security_headers",
     .type = AG_CONFIG_STRUCT,
     FIELD(gw_config, security_headers),
     .schema = &security_schema,
     .help = "Headers added to every response."},
    {0},
};
const struct ag_config_schema gw_config_schema = {"gateway", sizeof(struct gw_config),
                                                  config_fields};

/* ---- checks across keys ---- */

/* Where a key is: the line of doc.root[k1][i][k2]... (0 when absent). */
static size_t node_line(const struct ag_config_doc *doc, const char *k1, size_t i, const char *k2,
                        const char *k3)
{
    const struct ag_config_node *n = ag_config_node_get(doc->root, k1);
    if (n && n->kind == AG_CONFIG_NODE_SEQ && i < n->count)
        n = n->items[i];
    else if (n && n->kind == AG_CONFIG_NODE_MAP && i < n->count)
        n = n->items[i];
    const struct ag_config_node *deeper = k2 ? ag_config_node_get(n, k2) : n;
    if (deeper)
        n = deeper;
    deeper = k3 ? ag_config_node_get(n, k3) : n;
    if (deeper)
        n = deeper;
    return n ? n->line : 0;
}

static int fail_at(struct ag_err *err, const struct ag_config_doc *doc, size_t line,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail_at(struct ag_err *err, const struct ag_config_doc *doc, size_t line,
                   const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return ag_err_set(err, AG_EINVAL, "%s:%zu: %s", doc->name, line, what);
}

static bool method_token(const char *m)
{
    return ag_http_is_token(ag_str_from_cstr(m));
}

static int check_upstreams(struct gw_config *cfg, const struct ag_config_doc *doc,
                           struct ag_err *err)
{
    for (size_t u = 0; u < cfg->upstream_count; u++) {
        struct gw_upstream_conf *up = &cfg->upstreams[u];
        struct gw_retries_conf *r = &up->retries;
        if (up->health.path && up->health.path[0] != '/')
            return fail_at(err, doc, node_line(doc, "upstreams", u, "health", "path"),
                           "upstreams.%s.health.path: must start with '/'", up->name);
        if (r->on_count == 0)
            r->on_connect_error = true;
        for (size_t i = 0; i < r->on_count; i++) {
            const char *on = r->on[i];
            if (strcmp(on, "connect_error") == 0)
                r->on_connect_error = true;
            else if (strcmp(on, "timeout") == 0)
                r->on_timeout = true;
            else if (strlen(on) == 3 && on[0] == '5' && on[1] == '0' && on[2] >= '0' &&
                     on[2] <= '5')
                r->on_status[on[2] - '0'] = 1;
            else
                return fail_at(err, doc, node_line(doc, "upstreams", u, "retries", "on"),
                               "upstreams.%s.retries.on[%zu]: \"%s\" is not connect_error, "
                               "timeout or a status from \"500\" to \"505\"",
                               up->name, i, on);
        }
    }
    return 0;
}

static int check_issuers(struct gw_config *cfg, const struct ag_config_doc *doc, struct ag_err *err)
{
    const struct ag_config_node *auth = ag_config_node_get(doc->root, "auth");
    const struct ag_config_node *list = ag_config_node_get(auth, "issuers");
    for (size_t i = 0; i < cfg->auth.issuer_count; i++) {
        struct gw_issuer_conf *is = &cfg->auth.issuers[i];
        const struct ag_config_node *node =
            list && list->kind == AG_CONFIG_NODE_SEQ && i < list->count ? list->items[i] : auth;
        size_t line = node ? node->line : 0;
        if (!is->jwks_uri == !is->jwks_file)
            return fail_at(err, doc, line,
                           "auth.issuers[%zu]: give exactly one of jwks_uri and jwks_file", i);
        if (is->jwks_uri && strncmp(is->jwks_uri, "http://", 7) != 0)
            return fail_at(err, doc, line,
                           "auth.issuers[%zu].jwks_uri: only http:// is supported (no TLS client "
                           "yet); use jwks_file or a local http endpoint",
                           i);
        for (size_t a = 0; a < is->algorithm_count; a++) {
            unsigned bit = 0;
            const struct ag_config_node *algs = ag_config_node_get(node, "algorithms");
            if (ag_jwt_alg_parse(is->algorithms[a], &bit) < 0)
                return fail_at(err, doc,
                               algs && algs->kind == AG_CONFIG_NODE_SEQ && a < algs->count
                                   ? algs->items[a]->line
                                   : line,
                               "auth.issuers[%zu].algorithms[%zu]: \"%s\" is not accepted "
                               "(ES256, ES384, RS256, RS384, RS512, PS256, EdDSA; never HS* or "
                               "none: the gateway holds public keys only)",
                               i, a, is->algorithms[a]);
            is->algorithm_mask |= bit;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->auth.issuers[j].issuer, is->issuer) == 0)
                return fail_at(err, doc, line, "auth.issuers[%zu].issuer: \"%s\" is listed twice",
                               i, is->issuer);
    }
    return 0;
}

static int check_rate(struct gw_route_conf *rt, size_t i, const struct ag_config_doc *doc,
                      struct ag_err *err)
{
    struct gw_rate_conf *rl = &rt->rate_limit;
    if (rl->burst == 0)
        rl->burst = rl->rate;
    if (rl->rate) {
        struct gw_rl_policy p = {rl->rate, rl->per_ms, rl->burst};
        struct ag_err why = {0};
        if (gw_rl_policy_check(&p, &why) < 0)
            return fail_at(err, doc, node_line(doc, "routes", i, "rate_limit", NULL),
                           "routes[%zu].rate_limit: %s", i, why.msg);
    }
    size_t line = node_line(doc, "routes", i, "rate_limit", "key");
    if (strcmp(rl->key, "ip") == 0) {
        rl->key_kind = GW_RATE_KEY_IP;
    } else if (strcmp(rl->key, "user") == 0) {
        rl->key_kind = GW_RATE_KEY_USER;
        if (rl->rate && rt->auth == GW_AUTH_NONE)
            return fail_at(err, doc, line,
                           "routes[%zu].rate_limit.key: \"user\" needs auth: optional or "
                           "required on the route",
                           i);
    } else if (strcmp(rl->key, "route") == 0) {
        rl->key_kind = GW_RATE_KEY_ROUTE;
    } else if (strncmp(rl->key, "header:", 7) == 0 && method_token(rl->key + 7)) {
        rl->key_kind = GW_RATE_KEY_HEADER;
        rl->key_header = rl->key + 7;
    } else {
        return fail_at(err, doc, line,
                       "routes[%zu].rate_limit.key: \"%s\" is not ip, user, route or header:NAME",
                       i, rl->key);
    }
    return 0;
}

static int check_routes(struct gw_config *cfg, const struct ag_config_doc *doc, struct ag_err *err)
{
    for (size_t i = 0; i < cfg->route_count; i++) {
        struct gw_route_conf *rt = &cfg->routes[i];
        size_t u = 0;
        while (u < cfg->upstream_count && strcmp(cfg->upstreams[u].name, rt->upstream) != 0)
            u++;
        if (u == cfg->upstream_count)
            return fail_at(err, doc, node_line(doc, "routes", i, "upstream", NULL),
                           "routes[%zu].upstream: no upstream is named \"%s\"", i, rt->upstream);
        rt->upstream_index = u;
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->routes[j].name, rt->name) == 0)
                return fail_at(err, doc, node_line(doc, "routes", i, "name", NULL),
                               "routes[%zu].name: \"%s\" is used by routes[%zu] too", i, rt->name,
                               j);
        if (rt->strip_prefix &&
            strncmp(rt->match.path, rt->strip_prefix, strlen(rt->strip_prefix)) != 0)
            return fail_at(err, doc, node_line(doc, "routes", i, "strip_prefix", NULL),
                           "routes[%zu].strip_prefix: \"%s\" does not begin match.path \"%s\"", i,
                           rt->strip_prefix, rt->match.path);
        if (rt->add_prefix && rt->add_prefix[0] != '/')
            return fail_at(err, doc, node_line(doc, "routes", i, "add_prefix", NULL),
                           "routes[%zu].add_prefix: must start with '/'", i);
        for (size_t m = 0; m < rt->match.method_count; m++)
            if (!method_token(rt->match.methods[m]))
                return fail_at(err, doc, node_line(doc, "routes", i, "match", "methods"),
                               "routes[%zu].match.methods[%zu]: \"%s\" is not a method", i, m,
                               rt->match.methods[m]);
        if (rt->role_count && rt->auth == GW_AUTH_NONE)
            return fail_at(err, doc, node_line(doc, "routes", i, "roles", NULL),
                           "routes[%zu].roles: roles need auth: required (or optional)", i);
        if (rt->auth != GW_AUTH_NONE && cfg->auth.issuer_count == 0)
            return fail_at(err, doc, node_line(doc, "routes", i, "auth", NULL),
                           "routes[%zu].auth: no auth.issuers are configured to verify tokens", i);
        int rc = check_rate(rt, i, doc, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int check_store(struct gw_config *cfg, const struct ag_config_doc *doc, struct ag_err *err)
{
    const char *s = cfg->rate_limit_store;
    if (strcmp(s, "memory") == 0)
        return 0;
    size_t line = node_line(doc, "rate_limit_store", 0, NULL, NULL);
    if (strncmp(s, "redis://", 8) != 0)
        return fail_at(err, doc, line, "rate_limit_store: not memory or redis://host:port");
    struct ag_err why = {0};
    if (gw_rl_redis_url_check(s, &why) < 0)
        return fail_at(err, doc, line, "rate_limit_store: %s", why.msg);
    return 0;
}

/* The security header values are sent on every response as they are: printable ASCII only. */
static int check_security(struct gw_config *cfg, const struct ag_config_doc *doc,
                          struct ag_err *err)
{
    const struct gw_security_conf *sec = &cfg->security_headers;
    const struct {
        const char *key, *value;
    } values[] = {
        {"content_type_options", sec->content_type_options},
        {"frame_options", sec->frame_options},
        {"referrer_policy", sec->referrer_policy},
        {"content_security_policy", sec->content_security_policy},
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        const char *v = values[i].value;
        for (size_t k = 0; v && v[k]; k++) {
            unsigned char c = (unsigned char)v[k];
            if ((c < 0x20 && c != '\t') || c > 0x7e)
                return fail_at(err, doc,
                               node_line(doc, "security_headers", SIZE_MAX, values[i].key, NULL),
                               "security_headers.%s: byte 0x%02x at offset %zu; a header value "
                               "must be printable ASCII",
                               values[i].key, c, k);
        }
    }
    return 0;
}

static int load_doc(struct gw_config *cfg, struct ag_config_doc *doc, struct ag_err *err)
{
    int rc = ag_config_bind(&gw_config_schema, cfg, doc, NULL, err);
    if (rc < 0)
        return rc;
    if ((rc = check_upstreams(cfg, doc, err)) < 0 || (rc = check_issuers(cfg, doc, err)) < 0 ||
        (rc = check_routes(cfg, doc, err)) < 0 || (rc = check_store(cfg, doc, err)) < 0 ||
        (rc = check_security(cfg, doc, err)) < 0)
        gw_config_release(cfg);
    return rc;
}

int gw_config_load(struct gw_config *cfg, const char *path, struct ag_err *err)
{
    struct ag_config_doc doc = {0};
    memset(cfg, 0, sizeof *cfg);
    int rc = ag_config_doc_load(&doc, path, err);
    if (rc == 0)
        rc = load_doc(cfg, &doc, err);
    ag_config_doc_release(&doc);
    return rc;
}

int gw_config_load_string(struct gw_config *cfg, const char *name, const char *text, size_t len,
                          struct ag_err *err)
{
    struct ag_config_doc doc = {0};
    memset(cfg, 0, sizeof *cfg);
    int rc = ag_config_doc_parse(&doc, name, text, len, err);
    if (rc == 0)
        rc = load_doc(cfg, &doc, err);
    ag_config_doc_release(&doc);
    return rc;
}

void gw_config_release(struct gw_config *cfg)
{
    ag_config_release(&gw_config_schema, cfg);
    memset(cfg, 0, sizeof *cfg);
}
