/* Load balancing over an upstream's targets: shared pool state, per-worker pickers, ejection. */
#ifndef GW_BALANCE_H
#define GW_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/*
 * A pool is the shared part of one upstream for one configuration snapshot: its targets with
 * their weights (fixed), and per target the health flag set by active checks, the number of
 * requests in flight, the run of consecutive failures and the passive-ejection deadline (all
 * atomics, each target on its own cache line). Every gw_target_* call is safe from any thread.
 *
 * A picker is one worker's view of a pool: the smooth weighted round-robin weights and a PRNG
 * state, touched by that worker only, so picking shares nothing but reads of the atomics.
 *
 * A target is healthy when active checks have not marked it down and it is not passively
 * ejected (or its ejection deadline has passed). Targets start healthy. A passive ejection
 * ends at eject_ms after it began, or earlier when active checks pass healthy_after times in a
 * row after it began (gw_target_set_health(true), see health.h) — whichever comes first.
 * Ejections and returns are logged once each, with the upstream, target and reason.
 */
struct gw_pool;
struct gw_picker;

enum {
    GW_POOL_MAX_TARGETS = 64, /* one bit each in an exclude mask */
    GW_TARGET_WEIGHT_MAX = 1000,
};

struct gw_target_spec {
    const char *address; /* "HOST:PORT", copied */
    unsigned weight;     /* 1 .. GW_TARGET_WEIGHT_MAX */
};

enum gw_balance_policy {
    GW_BALANCE_ROUND_ROBIN, /* smooth weighted round robin (nginx's), per worker */
    GW_BALANCE_LEAST_CONN,  /* lowest in-flight / weight; ties by smooth weighted round robin */
    GW_BALANCE_RANDOM,      /* weighted random */
};

/* Passive health: ejection of a target after consecutive failures of real requests. */
struct gw_passive_cfg {
    unsigned consecutive_failures; /* eject after this many in a row; 0 disables; default 5 */
    uint64_t eject_ms;             /* ejection length, 1 ms .. 1 day; default 10000 */
};

/* Fills cfg with the defaults: 5 consecutive failures, 10000 ms. */
void gw_passive_cfg_defaults(struct gw_passive_cfg *cfg);

/*
 * Creates the pool of upstream `name` (copied; used in logs) with count targets (1 ..
 * GW_POOL_MAX_TARGETS; addresses and weights copied), the policy, and passive (copied; NULL
 * for the defaults). Returns 0 and *out (free with gw_pool_free); AG_EINVAL with err naming
 * the problem for a NULL or empty name or address, a count of 0 or over 64, a weight out of
 * range, an unknown policy, or eject_ms out of range; AG_ENOMEM.
 */
int gw_pool_new(const char *name, const struct gw_target_spec *targets, size_t count,
                enum gw_balance_policy policy, const struct gw_passive_cfg *passive,
                struct gw_pool **out, struct ag_err *err);

/* Frees the pool; every picker of it must be freed first, and no thread may use it. NULL ok. */
void gw_pool_free(struct gw_pool *pool);

/* The upstream name given to gw_pool_new. */
const char *gw_pool_name(const struct gw_pool *pool);

/* The number of targets. */
size_t gw_pool_size(const struct gw_pool *pool);

/* The policy given to gw_pool_new. */
enum gw_balance_policy gw_pool_policy(const struct gw_pool *pool);

/*
 * Creates a picker over pool for one worker thread (pool must outlive it). seed starts its
 * PRNG (give each worker a different one) and offsets its round-robin start, so that workers
 * do not all send their first request to the same target. Returns 0 and *out, or AG_ENOMEM.
 */
int gw_picker_new(const struct gw_pool *pool, uint64_t seed, struct gw_picker **out);

/* Frees a picker. NULL is allowed. */
void gw_picker_free(struct gw_picker *picker);

/*
 * Picks a target for one request at now_ms among those that are healthy and whose bit is not
 * set in exclude_mask (bit i: target i, already tried by this request). round_robin and random
 * honour the weights among the eligible targets; least_conn picks the lowest in-flight/weight
 * ratio. Returns the index, or -1 when no target is eligible. Only the picker's own worker may
 * call it. Does not count the request: call gw_target_begin when it is sent.
 */
int gw_pick(struct gw_picker *picker, uint64_t now_ms, uint64_t exclude_mask);

/* One more request in flight to target index (what least_conn balances). */
void gw_target_begin(struct gw_pool *pool, int index);

/*
 * The request begun on target index ended at now_ms; failure (connect error, timeout, 5xx: the
 * caller decides) adds one to the target's consecutive failures and, at the passive threshold,
 * ejects it for eject_ms (logged once; the run then starts again from 0); success sets the run
 * to 0. Outcomes of requests that end while the target is ejected only reset the run.
 * Each gw_target_begin must be matched by exactly one gw_target_end.
 */
void gw_target_end(struct gw_pool *pool, int index, uint64_t now_ms, bool failure);

/*
 * Active checks' verdict on target index: false marks it down until a later true. true marks
 * it up and also ends a passive ejection (logged), so call it when checks have passed
 * healthy_after times in a row since the last ejection (gw_target_ejections says when one
 * happened). Does not log the up/down change itself: the health checker does, with its reason.
 */
void gw_target_set_health(struct gw_pool *pool, int index, bool healthy);

/*
 * True when target index may take requests at now_ms: not marked down, and not ejected or its
 * ejection over (an ejection found over here is ended and its return logged, once).
 */
bool gw_target_healthy(const struct gw_pool *pool, int index, uint64_t now_ms);

/* True while active checks have target index marked down. */
bool gw_target_marked_down(const struct gw_pool *pool, int index);

/* Passive ejections of target index since the pool was made (changes when one begins). */
uint64_t gw_target_ejections(const struct gw_pool *pool, int index);

/* Requests in flight to target index (begun and not ended). */
unsigned gw_target_active(const struct gw_pool *pool, int index);

/* The "HOST:PORT" of target index. */
const char *gw_target_address(const struct gw_pool *pool, int index);

/* The weight of target index. */
unsigned gw_target_weight(const struct gw_pool *pool, int index);

#endif
