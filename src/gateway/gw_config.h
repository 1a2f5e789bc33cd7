/* The gateway's configuration: the YAML schema, its checks across keys, and where each key is. */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"

enum gw_balance_kind { GW_BAL_ROUND_ROBIN, GW_BAL_LEAST_CONN, GW_BAL_RANDOM };
enum gw_auth_mode { GW_AUTH_NONE, GW_AUTH_OPTIONAL, GW_AUTH_REQUIRED };

struct gw_target_conf {
    char *address;
    uint64_t weight;
};

struct gw_health_conf {
    char *path; /* NULL: no active checks */
    uint64_t interval_ms, timeout_ms, unhealthy_after, healthy_after;
};

struct gw_passive_conf {
    uint64_t consecutive_failures; /* 0: never eject */
    uint64_t eject_ms;
};

struct gw_breaker_conf {
    bool enabled;
    uint64_t window_ms, min_requests, open_ms;
    double failure_ratio;
};

struct gw_retries_conf {
    uint64_t attempts; /* tries in all, the first included */
    char **on;
    size_t on_count;
    double budget_ratio;
    /* Derived by gw_config_load: */
    bool on_connect_error, on_timeout;
    uint8_t on_status[6]; /* bit (status - 500) for 500..505 */
};

struct gw_upstream_conf {
    char *name;
    struct gw_target_conf *targets;
    size_t target_count;
    int balance; /* enum gw_balance_kind */
    uint64_t keepalive;
    uint64_t connect_timeout_ms, timeout_ms;
    char *host; /* Host sent upstream; NULL: the client's */
    struct gw_health_conf health;
    struct gw_passive_conf passive;
    struct gw_breaker_conf breaker;
    struct gw_retries_conf retries;
};

struct gw_issuer_conf {
    char *issuer;
    char *jwks_uri, *jwks_file;
    char **audiences;
    size_t audience_count;
    char **algorithms;
    size_t algorithm_count;
    uint64_t clock_skew_s;
    uint64_t refresh_interval_ms;
    unsigned algorithm_mask; /* derived */
};

struct gw_auth_conf {
    struct gw_issuer_conf *issuers;
    size_t issuer_count;
    uint64_t max_token_bytes;
    uint64_t cache_entries;
};

struct gw_match_conf {
    char *host, *path;
    bool prefix;
    char **methods;
    size_t method_count;
};

enum gw_rate_key_kind { GW_RATE_KEY_IP, GW_RATE_KEY_USER, GW_RATE_KEY_ROUTE, GW_RATE_KEY_HEADER };

struct gw_rate_conf {
    char *key;
    uint64_t rate, per_ms, burst; /* rate 0: no limit */
    int key_kind;                 /* derived: enum gw_rate_key_kind */
    const char *key_header;       /* derived: points into key for header:NAME */
};

struct gw_cors_conf {
    char **origins;
    size_t origin_count; /* 0: no CORS handling */
    char **methods;
    size_t method_count;
    char **headers;
    size_t header_count;
    char **expose;
    size_t expose_count;
    uint64_t max_age_s;
    bool credentials;
};

struct gw_route_conf {
    char *name;
    struct gw_match_conf match;
    char *upstream;
    char *strip_prefix, *add_prefix;
    int auth; /* enum gw_auth_mode */
    char **roles;
    size_t role_count;
    struct gw_rate_conf rate_limit;
    struct gw_cors_conf cors;
    uint64_t max_body_bytes; /* 0: limits.max_body_bytes */
    uint64_t timeout_ms;     /* 0: the upstream's */
    size_t upstream_index;   /* derived */
};

struct gw_limits_conf {
    uint64_t max_request_line, max_header_bytes, max_headers, max_body_bytes;
    uint64_t header_timeout_ms, body_timeout_ms, idle_timeout_ms, write_timeout_ms;
    uint64_t drain_timeout_ms;
};

struct gw_security_conf {
    char *content_type_options, *frame_options, *referrer_policy, *content_security_policy;
    uint64_t hsts_max_age_s;
};

struct gw_config {
    char *listen, *admin_listen;
    uint64_t workers;
    struct gw_limits_conf limits;
    char *access_log; /* "stdout", "off" or a path */
    int log_level;
    struct gw_upstream_conf *upstreams;
    size_t upstream_count;
    struct gw_auth_conf auth;
    char *rate_limit_store; /* "memory" or redis://... */
    int rate_limit_fail;    /* 0 open, 1 closed */
    uint64_t rate_limit_timeout_ms;
    uint64_t rate_limit_max_keys;
    struct gw_route_conf *routes;
    size_t route_count;
    struct gw_security_conf security_headers;
};

/* The schema, for documentation (agora-gateway --help-config) and the unit tests. */
extern const struct ag_config_schema gw_config_schema;

/*
 * Reads and checks the configuration at path: the schema (types, bounds, unknown keys), then the
 * rules across keys: a route's upstream exists, strip_prefix begins its path, roles or a
 * user-keyed rate limit need auth, a required auth needs an issuer, algorithm names are known
 * and never HS* or none, retry conditions are known, an issuer has exactly one of jwks_uri and
 * jwks_file, route names are unique. Every message starts "file:line: key.path: ". Returns 0
 * (release with gw_config_release), or AG_EINVAL / AG_ERANGE / AG_ENOTFOUND / AG_ESYS /
 * AG_ENOMEM with err filled and cfg zeroed.
 */
int gw_config_load(struct gw_config *cfg, const char *path, struct ag_err *err);

/* As gw_config_load, for text in memory; name stands for the file in messages. */
int gw_config_load_string(struct gw_config *cfg, const char *name, const char *text, size_t len,
                          struct ag_err *err);

/* Frees everything gw_config_load put in cfg. */
void gw_config_release(struct gw_config *cfg);

#endif
