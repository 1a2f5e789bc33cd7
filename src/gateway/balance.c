/* Load balancing: smooth weighted round robin, least connections, weighted random, ejection. */
#include "gateway/balance.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/banned.h"

enum {
    CACHE_LINE = 64,
    EJECT_MS_MAX = 86400000, /* one day */
    CONSECUTIVE_FAILURES_MAX = 1000000,
};

/*
 * One target. The atomics change on every request (active, consecutive_failures) or on health
 * changes; each target sits on its own cache line so that workers busy with different targets
 * do not contend. address and weight never change after gw_pool_new.
 */
struct pool_target {
    alignas(CACHE_LINE) _Atomic unsigned active;
    _Atomic unsigned consecutive_failures;
    _Atomic bool marked_down;     /* by active checks */
    _Atomic uint64_t eject_until; /* end of the passive ejection; 0: not ejected */
    _Atomic uint64_t ejections;   /* passive ejections so far */
    char *address;
    unsigned weight;
};

struct gw_pool {
    char *name;
    enum gw_balance_policy policy;
    struct gw_passive_cfg passive;
    size_t count;
    struct pool_target *targets; /* count entries, cache-line aligned */
};

struct gw_picker {
    const struct gw_pool *pool;
    uint64_t rng;      /* splitmix64 state */
    size_t start;      /* where scans begin: ties go to the first target from here */
    int64_t current[]; /* smooth weighted round robin: current weight per target */
};

void gw_passive_cfg_defaults(struct gw_passive_cfg *cfg)
{
    cfg->consecutive_failures = 5;
    cfg->eject_ms = 10000;
}

static char *copy_cstr(const char *s)
{
    size_t len = strlen(s) + 1;
    char *copy = malloc(len);
    if (copy)
        memcpy(copy, s, len);
    return copy;
}

void gw_pool_free(struct gw_pool *pool)
{
    if (!pool)
        return;
    if (pool->targets) {
        for (size_t i = 0; i < pool->count; i++)
            free(pool->targets[i].address);
        free(pool->targets);
    }
    free(pool->name);
    free(pool);
}

static int pool_check(const char *name, const struct gw_target_spec *targets, size_t count,
                      enum gw_balance_policy policy, const struct gw_passive_cfg *passive,
                      struct ag_err *err)
{
    if (!name || !*name)
        return ag_err_set(err, AG_EINVAL, "upstream name is empty");
    if (count < 1 || count > GW_POOL_MAX_TARGETS)
        return ag_err_set(err, AG_EINVAL, "upstream %s must have 1 to %d targets, not %zu", name,
                          GW_POOL_MAX_TARGETS, count);
    for (size_t i = 0; i < count; i++) {
        if (!targets[i].address || !*targets[i].address)
            return ag_err_set(err, AG_EINVAL, "upstream %s: target %zu has no address", name, i);
        if (targets[i].weight < 1 || targets[i].weight > GW_TARGET_WEIGHT_MAX)
            return ag_err_set(err, AG_EINVAL,
                              "upstream %s: target %s weight must be 1 to %d, not %u", name,
                              targets[i].address, GW_TARGET_WEIGHT_MAX, targets[i].weight);
    }
    if (policy != GW_BALANCE_ROUND_ROBIN && policy != GW_BALANCE_LEAST_CONN &&
        policy != GW_BALANCE_RANDOM)
        return ag_err_set(err, AG_EINVAL, "upstream %s: unknown balance policy %d", name,
                          (int)policy);
    if (passive->consecutive_failures > CONSECUTIVE_FAILURES_MAX)
        return ag_err_set(err, AG_EINVAL,
                          "upstream %s: consecutive_failures must be 0 to %d, not %u", name,
                          CONSECUTIVE_FAILURES_MAX, passive->consecutive_failures);
    if (passive->eject_ms < 1 || passive->eject_ms > EJECT_MS_MAX)
        return ag_err_set(err, AG_EINVAL, "upstream %s: eject_ms must be 1 to %d, not %llu", name,
                          EJECT_MS_MAX, (unsigned long long)passive->eject_ms);
    return 0;
}

int gw_pool_new(const char *name, const struct gw_target_spec *targets, size_t count,
                enum gw_balance_policy policy, const struct gw_passive_cfg *passive,
                struct gw_pool **out, struct ag_err *err)
{
    int rc = 0;
    struct gw_passive_cfg defaults;
    struct gw_pool *pool = NULL;
    if (!passive) {
        gw_passive_cfg_defaults(&defaults);
        passive = &defaults;
    }
    rc = pool_check(name, targets, count, policy, passive, err);
    if (rc < 0)
        goto out;
    pool = calloc(1, sizeof *pool);
    if (!pool)
        goto nomem;
    pool->policy = policy;
    pool->passive = *passive;
    pool->name = copy_cstr(name);
    pool->targets = aligned_alloc(CACHE_LINE, count * sizeof *pool->targets);
    if (!pool->name || !pool->targets)
        goto nomem;
    memset(pool->targets, 0, count * sizeof *pool->targets);
    pool->count = count; /* from here gw_pool_free frees the addresses */
    for (size_t i = 0; i < count; i++) {
        struct pool_target *t = &pool->targets[i];
        atomic_init(&t->active, 0);
        atomic_init(&t->consecutive_failures, 0);
        atomic_init(&t->marked_down, false);
        atomic_init(&t->eject_until, 0);
        atomic_init(&t->ejections, 0);
        t->weight = targets[i].weight;
        t->address = copy_cstr(targets[i].address);
        if (!t->address)
            goto nomem;
    }
    *out = pool;
    pool = NULL;
    goto out;
nomem:
    rc = ag_err_set(err, AG_ENOMEM, "out of memory creating upstream %s", name);
out:
    gw_pool_free(pool);
    return rc;
}

const char *gw_pool_name(const struct gw_pool *pool)
{
    return pool->name;
}

size_t gw_pool_size(const struct gw_pool *pool)
{
    return pool->count;
}

enum gw_balance_policy gw_pool_policy(const struct gw_pool *pool)
{
    return pool->policy;
}

/*
 * The pool's targets for changing their atomics. The functions that take a const pool
 * (gw_target_healthy ends an ejection whose time is over) still change them: the atomics are
 * the shared, mutable part of a pool that is otherwise read-only, and every pool is allocated
 * mutable by gw_pool_new.
 */
static struct pool_target *target_of(const struct gw_pool *pool, int index)
{
    return (struct pool_target *)&pool->targets[index];
}

static void log_return(const struct gw_pool *pool, const struct pool_target *t, const char *reason)
{
    ag_log_info("upstream target back in rotation", AG_F_STR("upstream", pool->name),
                AG_F_STR("target", t->address), AG_F_STR("reason", reason));
}

/*
 * Ends the ejection of t if it is over at now_ms (logging the return once, by the thread that
 * ends it). Returns true when t is not ejected at now_ms.
 */
static bool ejection_over(const struct gw_pool *pool, struct pool_target *t, uint64_t now_ms)
{
    uint64_t until = atomic_load_explicit(&t->eject_until, memory_order_acquire);
    if (until == 0)
        return true;
    if (now_ms < until)
        return false;
    if (atomic_compare_exchange_strong(&t->eject_until, &until, 0))
        log_return(pool, t, "ejection time over");
    return true;
}

bool gw_target_healthy(const struct gw_pool *pool, int index, uint64_t now_ms)
{
    struct pool_target *t = target_of(pool, index);
    if (atomic_load_explicit(&t->marked_down, memory_order_relaxed))
        return false;
    return ejection_over(pool, t, now_ms);
}

bool gw_target_marked_down(const struct gw_pool *pool, int index)
{
    return atomic_load_explicit(&target_of(pool, index)->marked_down, memory_order_relaxed);
}

uint64_t gw_target_ejections(const struct gw_pool *pool, int index)
{
    return atomic_load_explicit(&target_of(pool, index)->ejections, memory_order_acquire);
}

unsigned gw_target_active(const struct gw_pool *pool, int index)
{
    return atomic_load_explicit(&target_of(pool, index)->active, memory_order_relaxed);
}

const char *gw_target_address(const struct gw_pool *pool, int index)
{
    return pool->targets[index].address;
}

unsigned gw_target_weight(const struct gw_pool *pool, int index)
{
    return pool->targets[index].weight;
}

void gw_target_begin(struct gw_pool *pool, int index)
{
    atomic_fetch_add_explicit(&pool->targets[index].active, 1, memory_order_relaxed);
}

void gw_target_end(struct gw_pool *pool, int index, uint64_t now_ms, bool failure)
{
    struct pool_target *t = &pool->targets[index];
    atomic_fetch_sub_explicit(&t->active, 1, memory_order_relaxed);
    if (!failure || !ejection_over(pool, t, now_ms)) {
        atomic_store_explicit(&t->consecutive_failures, 0, memory_order_relaxed);
        return;
    }
    unsigned run = atomic_fetch_add_explicit(&t->consecutive_failures, 1, memory_order_relaxed) + 1;
    unsigned threshold = pool->passive.consecutive_failures;
    if (threshold == 0 || run < threshold)
        return;
    /* Only the thread that moves the deadline from "not ejected" ejects and logs. */
    uint64_t not_ejected = 0;
    if (!atomic_compare_exchange_strong(&t->eject_until, &not_ejected,
                                        now_ms + pool->passive.eject_ms))
        return;
    atomic_store_explicit(&t->consecutive_failures, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->ejections, 1, memory_order_release);
    ag_log_warn("upstream target ejected", AG_F_STR("upstream", pool->name),
                AG_F_STR("target", t->address), AG_F_STR("reason", "consecutive failures"),
                AG_F_UINT("consecutive_failures", run),
                AG_F_UINT("eject_ms", pool->passive.eject_ms));
}

void gw_target_set_health(struct gw_pool *pool, int index, bool healthy)
{
    struct pool_target *t = &pool->targets[index];
    atomic_store_explicit(&t->marked_down, !healthy, memory_order_relaxed);
    if (!healthy)
        return;
    if (atomic_exchange(&t->eject_until, 0) != 0)
        log_return(pool, t, "active health checks passed");
}

int gw_picker_new(const struct gw_pool *pool, uint64_t seed, struct gw_picker **out)
{
    struct gw_picker *picker = calloc(1, sizeof *picker + pool->count * sizeof picker->current[0]);
    if (!picker)
        return AG_ENOMEM;
    picker->pool = pool;
    picker->rng = seed;
    picker->start = (size_t)(seed % pool->count);
    *out = picker;
    return 0;
}

void gw_picker_free(struct gw_picker *picker)
{
    free(picker);
}

/* splitmix64: fast, any seed (0 included) is fine, and every worker has its own state. */
static uint64_t picker_random(struct gw_picker *picker)
{
    uint64_t z = (picker->rng += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/*
 * One round of smooth weighted round robin over the targets whose bit is set in candidates:
 * each gains its weight, the largest current weight wins and loses the total. Over any run of
 * picks with the same candidates, each gets exactly its share of every total-weight picks, and
 * picks of one target are spread out rather than bunched.
 */
static int pick_smooth(struct gw_picker *picker, uint64_t candidates)
{
    const struct gw_pool *pool = picker->pool;
    int best = -1;
    int64_t total = 0;
    for (size_t k = 0; k < pool->count; k++) {
        size_t i = (picker->start + k) % pool->count;
        if (!(candidates & UINT64_C(1) << i))
            continue;
        picker->current[i] += pool->targets[i].weight;
        total += pool->targets[i].weight;
        if (best < 0 || picker->current[i] > picker->current[best])
            best = (int)i;
    }
    if (best >= 0)
        picker->current[best] -= total;
    return best;
}

static int pick_random(struct gw_picker *picker, uint64_t candidates)
{
    const struct gw_pool *pool = picker->pool;
    uint64_t total = 0;
    for (size_t i = 0; i < pool->count; i++)
        if (candidates & UINT64_C(1) << i)
            total += pool->targets[i].weight;
    if (total == 0)
        return -1;
    /* The top 32 random bits scaled to [0, total): total <= 64000, so the bias is < 2^-15. */
    uint64_t r = ((picker_random(picker) >> 32) * total) >> 32;
    for (size_t i = 0; i < pool->count; i++) {
        if (!(candidates & UINT64_C(1) << i))
            continue;
        if (r < pool->targets[i].weight)
            return (int)i;
        r -= pool->targets[i].weight;
    }
    return -1; /* not reached */
}

/* The candidates with the lowest in-flight / weight ratio, then smooth round robin among them. */
static int pick_least_conn(struct gw_picker *picker, uint64_t candidates)
{
    const struct gw_pool *pool = picker->pool;
    uint64_t active[GW_POOL_MAX_TARGETS]; /* read once, as other workers change them */
    int best = -1;
    for (size_t i = 0; i < pool->count; i++) {
        if (!(candidates & UINT64_C(1) << i))
            continue;
        active[i] = atomic_load_explicit(&pool->targets[i].active, memory_order_relaxed);
        /* a/w < b/v  <=>  a*v < b*w: exact, and it fits (2^32 * 1000) */
        if (best < 0 ||
            active[i] * pool->targets[best].weight < active[best] * pool->targets[i].weight)
            best = (int)i;
    }
    if (best < 0)
        return -1;
    uint64_t ties = 0;
    for (size_t i = 0; i < pool->count; i++) {
        if ((candidates & UINT64_C(1) << i) &&
            active[i] * pool->targets[best].weight == active[best] * pool->targets[i].weight)
            ties |= UINT64_C(1) << i;
    }
    return pick_smooth(picker, ties);
}

int gw_pick(struct gw_picker *picker, uint64_t now_ms, uint64_t exclude_mask)
{
    const struct gw_pool *pool = picker->pool;
    uint64_t candidates = 0;
    for (size_t i = 0; i < pool->count; i++) {
        if (!(exclude_mask & UINT64_C(1) << i) && gw_target_healthy(pool, (int)i, now_ms))
            candidates |= UINT64_C(1) << i;
    }
    if (candidates == 0)
        return -1;
    switch (pool->policy) {
    case GW_BALANCE_LEAST_CONN:
        return pick_least_conn(picker, candidates);
    case GW_BALANCE_RANDOM:
        return pick_random(picker, candidates);
    case GW_BALANCE_ROUND_ROBIN:
        break;
    }
    return pick_smooth(picker, candidates);
}
