/* Rate limiting: the token bucket, the in-process store, and one call for either store. */
#ifndef GW_RATELIMIT_H
#define GW_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/loop.h"

/*
 * The token bucket. A key's bucket holds at most `burst` tokens and gains `rate` tokens every
 * `per_ms` milliseconds; a request takes one token, and is refused when less than one is left.
 * A key seen for the first time (or forgotten) starts with a full bucket.
 *
 * Precision: the arithmetic is on integers, with no rounding anywhere that could drift. Tokens
 * are counted in units of 1/per_ms token, so that one millisecond adds exactly `rate` units and
 * a request costs `per_ms` units; time is in whole milliseconds. The limits of
 * gw_rl_policy_check keep every quantity below 2^53, so the Redis script (Lua doubles) computes
 * exactly the same numbers as this file.
 *
 * Time: callers pass a monotonic clock in milliseconds. A time earlier than the bucket's last
 * update (another thread's slightly older cached clock, a clock stepped back) refills nothing
 * and does not move the bucket's clock back, so no interval is ever credited twice.
 */

enum {
    GW_RL_KEY_MAX = 512,                /* longest key, in bytes */
    GW_RL_MEMORY_DEFAULT_KEYS = 100000, /* gw_rl_memory_new's max_keys when given 0 */
    GW_RL_MEMORY_MAX_KEYS = 100000000,  /* largest max_keys accepted */
};

#define GW_RL_PER_MS_MAX UINT64_C(2678400000) /* 31 days */
#define GW_RL_UNITS_MAX  (UINT64_C(1) << 52)  /* bound on burst * per_ms and on rate */

/* A route's limit: `rate` tokens every `per_ms` ms, at most `burst` tokens saved up. */
struct gw_rl_policy {
    uint64_t rate;   /* 1 .. GW_RL_UNITS_MAX */
    uint64_t per_ms; /* 1 .. GW_RL_PER_MS_MAX */
    uint64_t burst;  /* >= 1, and burst * per_ms <= GW_RL_UNITS_MAX */
};

/*
 * The answer for one request, ready for `429` + `Retry-After` and the RateLimit-Limit,
 * RateLimit-Remaining and RateLimit-Reset headers.
 *
 * When degraded is true the store could not be asked (unreachable, too slow, script error) and
 * the configured fallback was applied: allowed is the fail-open choice, limit is burst,
 * remaining and reset_s are 0, retry_after_s is 1 when refused. Those RateLimit numbers are not
 * measurements, so a gateway should leave the RateLimit-* headers out of a degraded answer.
 */
struct gw_rl_decision {
    bool allowed;
    bool degraded;          /* the store was unavailable: the fail-open/closed fallback */
    uint64_t limit;         /* burst */
    uint64_t remaining;     /* whole tokens left after this request */
    uint64_t reset_s;       /* seconds until the bucket is full again, rounded up; 0 if full */
    uint64_t retry_after_s; /* refused: seconds until one token is there, rounded up, >= 1;
                               allowed: 0 */
};

/*
 * Returns 0 when p is a usable policy, else AG_EINVAL (a zero rate, per_ms or burst) or
 * AG_ERANGE (per_ms over GW_RL_PER_MS_MAX, rate or burst * per_ms over GW_RL_UNITS_MAX), with
 * err (may be NULL) saying which. Configuration loaders call it; the take functions below
 * refuse (AG_EINVAL) a policy that fails it.
 */
int gw_rl_policy_check(const struct gw_rl_policy *p, struct ag_err *err);

/* One key's bucket; plain data, no locking (the stores lock around it). */
struct gw_rl_bucket {
    uint64_t tokens;  /* in units of 1/per_ms token */
    uint64_t last_ms; /* the latest time it was brought up to date */
    uint64_t per_ms;  /* the per_ms its tokens are counted in; 0: not initialised */
};

/* Fills b as a full bucket for policy p (checked) at now_ms. */
void gw_rl_bucket_init(struct gw_rl_bucket *b, const struct gw_rl_policy *p, uint64_t now_ms);

/*
 * The pure token-bucket step for one request at now_ms with policy p (checked by
 * gw_rl_policy_check; the result is unspecified for a policy that fails it). Refills b for the
 * time since its last update, takes one token if there is one, and fills *out (degraded is
 * false). A bucket made under another policy is carried over: whole tokens are kept, at most
 * burst; a bucket never initialised (per_ms 0) starts full. Never overflows, whatever the gap
 * in time.
 */
void gw_rl_bucket_take(struct gw_rl_bucket *b, const struct gw_rl_policy *p, uint64_t now_ms,
                       struct gw_rl_decision *out);

/*
 * True when b, brought up to now_ms under policy p, would be full: forgetting it then loses
 * nothing, because an unknown key starts full. Does not change b.
 */
bool gw_rl_bucket_full_at(const struct gw_rl_bucket *b, const struct gw_rl_policy *p,
                          uint64_t now_ms);

/* ---- in-process store ---- */

/*
 * The memory store: one per gateway process, shared by every worker thread. Keys are spread
 * over up to 64 shards by a keyed hash (SipHash with a random key, so that clients cannot aim
 * many keys at one chain); each shard has its own mutex, so two workers rarely contend, and a
 * fixed share of max_keys.
 *
 * Bounded memory: a shard never tracks more than its share of keys. Before a new key is added,
 * up to 4 of the shard's least recently used buckets that are full again are forgotten (a full
 * bucket is the same as no bucket, so this loses nothing). When the shard is still full, every
 * live bucket in it is in use, and forgetting one would hand its client a fresh burst: a flood
 * of new addresses could then reset the budgets of the clients it evicts. So live buckets are
 * never evicted; instead the new key is charged to the shard's overflow bucket, which every
 * untracked key of that shard shares, with the policy of the request at hand. During such a
 * flood, new clients are limited together (as if they were one client per shard), while
 * tracked clients keep their own buckets; when the flood stops, buckets fill up and are
 * forgotten, and new keys are tracked again. A key whose bucket cannot be allocated is treated
 * the same way.
 */
struct gw_rl_memory;

/* Counters of a memory store, summed over its shards. */
struct gw_rl_memory_stats {
    uint64_t keys;       /* buckets tracked now */
    uint64_t forgotten;  /* buckets dropped because they were full again */
    uint64_t overflowed; /* decisions made by an overflow bucket (shard full, or no memory) */
};

/*
 * Creates a memory store tracking at most max_keys keys (0: GW_RL_MEMORY_DEFAULT_KEYS). Stores
 * under 128 keys use one shard, larger ones up to 64 shards of at least 64 keys each. Returns 0
 * and *out (freed with gw_rl_memory_free), AG_ERANGE for max_keys over GW_RL_MEMORY_MAX_KEYS,
 * AG_ENOMEM, AG_ESYS (no random bytes for the hash key), with err (may be NULL) filled.
 */
int gw_rl_memory_new(size_t max_keys, struct gw_rl_memory **out, struct ag_err *err);

/*
 * Decides one request for key under policy p at now_ms (a monotonic clock; each worker may
 * pass its own loop's ag_loop_now). Safe from any thread. key is copied when it is tracked.
 * Returns 0 with *out filled (degraded is false), or AG_EINVAL when key is longer than
 * GW_RL_KEY_MAX or p fails gw_rl_policy_check (*out is then untouched).
 */
int gw_rl_memory_take(struct gw_rl_memory *m, struct ag_str key, const struct gw_rl_policy *p,
                      uint64_t now_ms, struct gw_rl_decision *out);

/* Fills *out with m's counters (each shard locked in turn, so not one instant). */
void gw_rl_memory_stats(struct gw_rl_memory *m, struct gw_rl_memory_stats *out);

/* Frees m and every bucket; no other thread may be using it. NULL is ignored. */
void gw_rl_memory_free(struct gw_rl_memory *m);

/* ---- either store ---- */

/* A decision that is not known yet (Redis store); see gw_rl_store_take. */
struct gw_rl_pending;

/* Receives a decision made later: on the loop's thread, never inside the call that asked. */
typedef void (*gw_rl_done_cb)(void *ctx, const struct gw_rl_decision *d);

struct gw_rl_redis; /* ratelimit_redis.h */

/*
 * What one worker asks for its decisions: the process's memory store, or its own Redis client
 * (which runs on that worker's loop). Fill it with gw_rl_store_init_memory or
 * gw_rl_store_init_redis; the fields are private. It borrows the store, frees nothing, and
 * needs no release.
 */
struct gw_rl_store {
    struct gw_rl_memory *memory;
    struct gw_rl_redis *redis;
    struct ag_loop *loop;
};

/* Makes s decide in memory, with loop's clock (ag_loop_now). memory and loop outlive s. */
void gw_rl_store_init_memory(struct gw_rl_store *s, struct gw_rl_memory *memory,
                             struct ag_loop *loop);

/* Makes s ask redis (a client of this worker's loop, which outlives s). */
void gw_rl_store_init_redis(struct gw_rl_store *s, struct gw_rl_redis *redis);

/*
 * Decides one request for key under policy p, on s's loop thread. Returns
 *   0          the decision is known now and is in *out; cb never fires (memory store);
 *   AG_EAGAIN  the decision will come through cb(ctx, d), exactly once, on the loop's thread,
 *              unless *pending is given to gw_rl_store_cancel first (Redis store);
 *   AG_EINVAL  key longer than GW_RL_KEY_MAX, a policy failing gw_rl_policy_check, or no cb;
 *   AG_ENOMEM  nothing could be started.
 * On a failure cb never fires; the caller picks its own fallback.
 */
int gw_rl_store_take(const struct gw_rl_store *s, struct ag_str key, const struct gw_rl_policy *p,
                     struct gw_rl_decision *out, gw_rl_done_cb cb, void *ctx,
                     struct gw_rl_pending **pending);

/* As gw_rl_redis_cancel: drops a decision still to come; its callback will not fire. */
void gw_rl_store_cancel(struct gw_rl_pending *pending);

#endif
