/* Active health checks: one background thread probing every target of the checked upstreams. */
#ifndef GW_HEALTH_H
#define GW_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "gateway/balance.h"

/*
 * A checker owns a thread with its own ag_loop and ag_http_client. Every interval_ms it sends
 * GET path (with the configured Host) to each target of each upstream; a check passes on a
 * 2xx or 3xx status within timeout_ms (connect, send and head included), and fails on anything
 * else: connect error, timeout, another status, a malformed response. The body is read and
 * dropped, so that the connection can be kept alive for the next check (one idle connection
 * per target; a target that closes it gets a fresh one).
 *
 * Targets start healthy (a new snapshot does not wait for checks before serving). After
 * unhealthy_after failed checks in a row the checker calls gw_target_set_health(false); after
 * healthy_after passed checks in a row, true. Each change is logged with the reason of the
 * last check. healthy_after passes in a row counted after a passive ejection also end that
 * ejection (gw_target_set_health(true)); passes of checks started before the ejection do not
 * count.
 */
struct gw_health;

struct gw_health_config {
    const char *path;         /* request target, "/..." of visible ASCII; default "/healthz" */
    uint32_t interval_ms;     /* from the start of one check to the next, 10 .. 3600000; 1000 */
    uint32_t timeout_ms;      /* 0: min(interval_ms, 2000); else 1 .. 600000 */
    unsigned unhealthy_after; /* failed checks in a row to mark down, 1 .. 1000; default 3 */
    unsigned healthy_after;   /* passed checks in a row to mark up, 1 .. 1000; default 2 */
};

/* One upstream to check. */
struct gw_health_upstream {
    struct gw_pool *pool;          /* its targets; must outlive the checker */
    const char *host;              /* Host field sent; NULL or "": each target's address */
    struct gw_health_config check; /* copied */
};

/* Fills cfg with the defaults: "/healthz", 1000 ms, timeout 0 (auto), 3 failed, 2 passed. */
void gw_health_config_defaults(struct gw_health_config *cfg);

/*
 * Creates a checker for n upstreams (n may be 0: a checker with nothing to do); copies every
 * string. Nothing runs until gw_health_start. Returns 0 and *out (free with gw_health_free);
 * AG_EINVAL with err saying which upstream and setting for a NULL pool, a bad path or host,
 * or a setting out of range; AG_ESYS (the loop); AG_ENOMEM.
 */
int gw_health_new(const struct gw_health_upstream *ups, size_t n, struct gw_health **out,
                  struct ag_err *err);

/*
 * Starts the thread: the first check of every target goes out at once, then every
 * interval_ms. Call it once. Returns 0; AG_EINVAL when already started; AG_ENOMEM or AG_ESYS
 * (pthread_create), err saying which, and then nothing runs (gw_health_free still applies).
 */
int gw_health_start(struct gw_health *health, struct ag_err *err);

/*
 * Stops the thread (checks in flight are cancelled, their connections closed), joins it, and
 * frees everything. Returns promptly: within one loop iteration, except while the thread is
 * resolving a target's host name for the first time (getaddrinfo blocks; IP addresses do
 * not). Health flags keep their last values. Call it from any thread but the checker's; NULL
 * is allowed.
 */
void gw_health_free(struct gw_health *health);

#endif
