/* One loaded configuration, ready to serve: routes, upstreams, keys, checks; shared, counted. */
#ifndef GW_SNAPSHOT_H
#define GW_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/metrics.h"
#include "gateway/balance.h"
#include "gateway/breaker.h"
#include "gateway/cors.h"
#include "gateway/gw_config.h"

struct gw_router;
struct ag_keyring;
struct gw_health;

struct gw_upstream {
    const struct gw_upstream_conf *conf;
    size_t index;
    struct gw_pool *pool;
    struct gw_breaker breaker;
    bool has_breaker;
    struct ag_series *duration;        /* agora_gateway_upstream_duration_seconds{upstream} */
    struct ag_series *retries;         /* agora_gateway_retries_total{upstream} */
    struct ag_series *breaker_gauge;   /* agora_gateway_breaker_state{upstream} */
    struct ag_series **target_healthy; /* agora_gateway_upstream_healthy{upstream,target} */
};

/* Status classes counted per route: 1xx..5xx. */
enum { GW_STATUS_CLASSES = 5 };

struct gw_route {
    const struct gw_route_conf *conf;
    size_t index;
    struct gw_upstream *upstream;
    struct gw_cors_policy cors;
    bool has_cors;
    uint64_t max_body;   /* effective request body limit */
    uint64_t timeout_ms; /* effective whole-response timeout */
    struct ag_str strip, add;
    struct ag_series *requests[GW_STATUS_CLASSES]; /* agora_gateway_requests_total */
    struct ag_series *duration;                    /* agora_gateway_request_duration_seconds */
    struct ag_series *rl_allowed, *rl_limited, *rl_degraded;
};

struct gw_snapshot {
    atomic_uint refs;
    uint64_t generation;
    struct gw_config cfg; /* owned */
    struct gw_router *router;
    struct gw_route *routes;
    size_t route_count;
    struct gw_upstream *upstreams;
    size_t upstream_count;
    struct ag_keyring *keyring; /* NULL without issuers */
    struct gw_health *health;   /* NULL without active checks */
    char *config_path;
};

/*
 * Builds a snapshot from a loaded configuration (taken over: cfg is zeroed), registering its
 * metric series in reg: resolves every target address, builds the router, pools and breakers,
 * fetches the issuers' key sets (up to a few seconds; an unreachable provider is logged, not
 * fatal) and starts the health checks. Returns 0 and *out with one reference, or a negative
 * code with err saying what (cfg is then released).
 */
int gw_snapshot_new(struct gw_config *cfg, const char *config_path, uint64_t generation,
                    struct ag_metrics *reg, struct gw_snapshot **out, struct ag_err *err);

/* Takes a reference (any thread). */
struct gw_snapshot *gw_snapshot_ref(struct gw_snapshot *snap);

/* Drops a reference; the last one stops the snapshot's threads and frees it. NULL is allowed. */
void gw_snapshot_unref(struct gw_snapshot *snap);

/* True when every issuer has keys (the gateway is ready for authenticated routes). */
bool gw_snapshot_ready(const struct gw_snapshot *snap);

/* Refreshes the health and breaker gauges (before a scrape). */
void gw_snapshot_update_gauges(const struct gw_snapshot *snap, uint64_t now_ms);

#endif
