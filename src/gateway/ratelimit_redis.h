/* Rate limiting shared through Redis: one non-blocking hiredis client per worker loop. */
#ifndef GW_RATELIMIT_REDIS_H
#define GW_RATELIMIT_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/loop.h"
#include "gateway/ratelimit.h"

/*
 * Every decision is one atomic Lua script run by Redis (EVALSHA, and EVAL when the server
 * answers NOSCRIPT), with the same integer token bucket as gw_rl_bucket_take but on Redis's
 * clock (TIME), so that every gateway sharing the server shares one budget and one clock. A
 * bucket is a hash at "agora:rl:" + key ({tokens, last, per}) that expires when it would be
 * full again, so idle keys disappear. Needs Redis 5 or later.
 *
 * A client belongs to one loop and is used from that loop's thread only (one per worker, one
 * connection each). The connection is made without blocking (redisAsyncConnect; a host name
 * is resolved with getaddrinfo, which does block, so give an address or a name in /etc/hosts)
 * and then AUTH (when the URL has a password), SELECT (when it has a database) and SCRIPT LOAD
 * are sent; the store counts as up once SCRIPT LOAD is answered.
 *
 * Never hangs: each decision has a deadline of timeout_ms. A decision that cannot be had from
 * Redis in time (deadline passed, connection lost, script error, store down, too many
 * requests waiting) gets the fallback: allowed (fail_open) or refused with retry_after_s 1,
 * and degraded = true either way. A connection that makes no progress for connect_timeout_ms
 * (connect, handshake, or replies while requests wait) is dropped, and so is one that fails;
 * then the client reconnects in the background after 100 ms, doubling up to 5 s, and every
 * decision until the reconnection is an immediate fallback. Going down is logged once as a
 * warning ("rate limit store unreachable") and coming back once ("rate limit store
 * reconnected"), never per request.
 */
struct gw_rl_redis;

struct gw_rl_redis_config {
    /*
     * redis://[[user]:password@]host[:port][/db]; host a name, an IPv4 address or [IPv6];
     * port 6379 by default, db 0; user and password may be %-encoded. Borrowed for the call.
     */
    const char *url;
    uint32_t timeout_ms;         /* deadline of one decision; >= 1 */
    uint32_t connect_timeout_ms; /* connect + handshake, and longest wait without a reply */
    uint32_t max_pending;        /* requests waiting on Redis; beyond, immediate fallbacks */
    bool fail_open;              /* the fallback allows (true) or refuses (false) */
};

/* The defaults: timeout 50 ms, connect timeout 1 s, 10,000 pending, fail open; no URL. */
void gw_rl_redis_config_defaults(struct gw_rl_redis_config *cfg);

/* Counters of one client (read on its loop's thread). */
struct gw_rl_redis_stats {
    uint64_t decisions;     /* gw_rl_redis_take calls that returned 0 */
    uint64_t fallbacks;     /* decisions answered with the fallback (degraded) */
    uint64_t timeouts;      /* fallbacks because the deadline passed */
    uint64_t script_errors; /* error replies to the script */
    uint64_t reconnects;    /* connections made after a failure */
    bool up;                /* connected and the script loaded */
};

/*
 * Creates a client on loop (which must outlive it) and starts connecting; a server that is
 * down is no error here (decisions fall back until it is reachable). cfg is copied (the URL
 * parsed; a password is kept for reconnections and wiped when the client is freed). Returns 0
 * and *out, AG_EINVAL (err says why) for a malformed URL (not redis://, no host, a port not
 * in 1..65535, a db not a number, a user without a password, a query) or a zero timeout,
 * connect timeout or max_pending, AG_ENOMEM.
 */
int gw_rl_redis_new(struct ag_loop *loop, const struct gw_rl_redis_config *cfg,
                    struct gw_rl_redis **out, struct ag_err *err);

/*
 * Decides one request for key under policy p. Returns 0 and *out, a handle valid until the
 * callback starts or gw_rl_redis_cancel returns; cb(ctx, d) then fires exactly once, on the
 * loop's thread, never inside this call (a decision known at once, such as the fallback while
 * disconnected, is deferred to the loop), and no later than about timeout_ms from now. d is
 * valid during the callback only. Returns AG_EINVAL (key longer than GW_RL_KEY_MAX, p failing
 * gw_rl_policy_check, no cb) or AG_ENOMEM, and then cb never fires. The callback may call any
 * function here, gw_rl_redis_free included.
 */
int gw_rl_redis_take(struct gw_rl_redis *r, struct ag_str key, const struct gw_rl_policy *p,
                     gw_rl_done_cb cb, void *ctx, struct gw_rl_pending **out);

/*
 * Drops a decision still to come (its client went away): its callback will not fire. Only for
 * a handle whose callback has not started; NULL is ignored. The request may still reach Redis
 * and take its token.
 */
void gw_rl_redis_cancel(struct gw_rl_pending *pending);

/*
 * Checks a store URL as gw_rl_redis_new would, without connecting (for configuration checks).
 * Returns 0, or AG_EINVAL with err saying what is wrong.
 */
int gw_rl_redis_url_check(const char *url, struct ag_err *err);

/* True while connected with the script loaded: decisions are being made by Redis. */
bool gw_rl_redis_up(const struct gw_rl_redis *r);

/* Fills *out with r's counters. */
void gw_rl_redis_stats(const struct gw_rl_redis *r, struct gw_rl_redis_stats *out);

/*
 * Closes the connection and frees r, on its loop's thread (from one of its callbacks too).
 * Decisions still to come are dropped: their callbacks never fire. NULL is ignored.
 */
void gw_rl_redis_free(struct gw_rl_redis *r);

/* The Lua script run for each decision (for the documentation and the tests). */
extern const char gw_rl_redis_script[];

#endif
