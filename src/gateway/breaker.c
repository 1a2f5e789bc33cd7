/* Circuit breaker of one upstream: one atomic state word and a rolling window of atomic buckets. */
#include "gateway/breaker.h"

#include <stddef.h>

#include "core/banned.h"

/*
 * The state word: bits 0-1 the state, bit 2 set while the half-open probe is out, bits 3-63
 * the deadline of the open state (kept in half-open, where it is unused). Closed is always the
 * word 0. Every change is one compare-exchange, so state, deadline and probe slot move
 * together and two threads cannot both win a transition.
 */
#define WORD_STATE_MASK   UINT64_C(3)
#define WORD_PROBE        UINT64_C(4)
#define WORD_DEADLINE_MAX (UINT64_MAX >> 3)

/*
 * A bucket word: bits 48-63 the low 16 bits of the bucket number (now_ms / bucket_ms) it
 * counts, bits 24-47 outcomes, bits 0-23 failures. A bucket whose number is not one of the
 * window's is stale and is reset by the first outcome that lands in its slot. Counts stop at
 * BUCKET_COUNT_MAX outcomes per bucket (16.7 million; further outcomes of that bucket are not
 * counted, which keeps the ratio of those that were). Only 16 bits of the number are kept, so
 * a slot left untouched for about 65536 buckets (18 hours of 1-second buckets) may be misread
 * once: as current (its old counts join the window) or as ahead (a few buckets' outcomes of
 * that slot are dropped). Either way the error is one bucket's worth, once, after a long idle.
 */
#define BUCKET_TAG_SHIFT   48
#define BUCKET_TAG_MASK    UINT64_C(0xffff)
#define BUCKET_COUNT_SHIFT 24
#define BUCKET_COUNT_MAX   UINT64_C(0xffffff)

/*
 * A bucket of the same slot up to this many numbers ahead of the caller's was set by a worker
 * whose clock reads later (possible only with tiny buckets): the caller's outcome joins it
 * instead of resetting it.
 */
#define BUCKET_SKEW_MAX (2 * GW_BREAKER_BUCKETS)

enum {
    WINDOW_MS_MIN = 10,
    LIMIT_MS_MAX = 86400000, /* one day */
    MIN_REQUESTS_MAX = 1000000,
};

static uint64_t word_make(enum gw_breaker_state state, bool probe, uint64_t deadline)
{
    if (deadline > WORD_DEADLINE_MAX)
        deadline = WORD_DEADLINE_MAX;
    return deadline << 3 | (probe ? WORD_PROBE : 0) | (uint64_t)state;
}

static enum gw_breaker_state word_state(uint64_t word)
{
    return (enum gw_breaker_state)(word & WORD_STATE_MASK);
}

static uint64_t word_deadline(uint64_t word)
{
    return word >> 3;
}

void gw_breaker_config_defaults(struct gw_breaker_config *cfg)
{
    cfg->window_ms = 10000;
    cfg->min_requests = 20;
    cfg->failure_ratio = 0.5;
    cfg->open_ms = 5000;
}

int gw_breaker_config_check(const struct gw_breaker_config *cfg, struct ag_err *err)
{
    if (cfg->window_ms < WINDOW_MS_MIN || cfg->window_ms > LIMIT_MS_MAX)
        return ag_err_set(err, AG_EINVAL, "breaker window_ms must be %d to %d, not %llu",
                          WINDOW_MS_MIN, LIMIT_MS_MAX, (unsigned long long)cfg->window_ms);
    if (cfg->min_requests < 1 || cfg->min_requests > MIN_REQUESTS_MAX)
        return ag_err_set(err, AG_EINVAL, "breaker min_requests must be 1 to %d, not %u",
                          MIN_REQUESTS_MAX, (unsigned)cfg->min_requests);
    if (!(cfg->failure_ratio > 0.0 && cfg->failure_ratio <= 1.0))
        return ag_err_set(err, AG_EINVAL, "breaker failure_ratio must be in (0, 1], not %g",
                          cfg->failure_ratio);
    if (cfg->open_ms < 1 || cfg->open_ms > LIMIT_MS_MAX)
        return ag_err_set(err, AG_EINVAL, "breaker open_ms must be 1 to %d, not %llu", LIMIT_MS_MAX,
                          (unsigned long long)cfg->open_ms);
    return 0;
}

static void window_clear(struct gw_breaker *b)
{
    for (size_t i = 0; i < GW_BREAKER_BUCKETS; i++)
        atomic_store_explicit(&b->buckets[i], 0, memory_order_relaxed);
}

int gw_breaker_init(struct gw_breaker *b, const struct gw_breaker_config *cfg, struct ag_err *err)
{
    int rc = gw_breaker_config_check(cfg, err);
    if (rc < 0)
        return rc;
    b->cfg = *cfg;
    b->bucket_ms = cfg->window_ms / GW_BREAKER_BUCKETS;
    atomic_init(&b->word, word_make(GW_BREAKER_CLOSED, false, 0));
    for (size_t i = 0; i < GW_BREAKER_BUCKETS; i++)
        atomic_init(&b->buckets[i], 0);
    atomic_init(&b->transitions, 0);
    return 0;
}

/* Counts one outcome in the bucket of now_ms. */
static void window_add(struct gw_breaker *b, uint64_t now_ms, bool failure)
{
    uint64_t number = now_ms / b->bucket_ms;
    uint64_t tag = number & BUCKET_TAG_MASK;
    _Atomic uint64_t *slot = &b->buckets[number % GW_BREAKER_BUCKETS];
    uint64_t old = atomic_load_explicit(slot, memory_order_relaxed);
    uint64_t next;
    do {
        uint64_t old_tag = old >> BUCKET_TAG_SHIFT;
        uint64_t ahead = (old_tag - tag) & BUCKET_TAG_MASK;
        if (old_tag == tag || ahead <= BUCKET_SKEW_MAX) {
            if (((old >> BUCKET_COUNT_SHIFT) & BUCKET_COUNT_MAX) == BUCKET_COUNT_MAX)
                return;
            next = old + (UINT64_C(1) << BUCKET_COUNT_SHIFT) + (failure ? 1 : 0);
        } else {
            next = tag << BUCKET_TAG_SHIFT | UINT64_C(1) << BUCKET_COUNT_SHIFT | (failure ? 1 : 0);
        }
    } while (!atomic_compare_exchange_weak_explicit(slot, &old, next, memory_order_relaxed,
                                                    memory_order_relaxed));
}

/*
 * Sums the outcomes and failures of the window that ends in the bucket of now_ms, plus the
 * bucket after it: a worker whose clock reads a little earlier than another's still sees the
 * outcomes the other just counted.
 */
static void window_sum(const struct gw_breaker *b, uint64_t now_ms, uint64_t *outcomes,
                       uint64_t *failures)
{
    uint64_t number = now_ms / b->bucket_ms;
    *outcomes = *failures = 0;
    for (size_t i = 0; i < GW_BREAKER_BUCKETS; i++) {
        uint64_t word = atomic_load_explicit(&b->buckets[i], memory_order_relaxed);
        uint64_t age = (number - (word >> BUCKET_TAG_SHIFT)) & BUCKET_TAG_MASK;
        if (age >= GW_BREAKER_BUCKETS && age != BUCKET_TAG_MASK)
            continue; /* stale; BUCKET_TAG_MASK is age -1, the bucket after now's */
        *outcomes += (word >> BUCKET_COUNT_SHIFT) & BUCKET_COUNT_MAX;
        *failures += word & BUCKET_COUNT_MAX;
    }
}

enum gw_breaker_admit gw_breaker_admit(struct gw_breaker *b, uint64_t now_ms)
{
    uint64_t word = atomic_load(&b->word);
    for (;;) {
        uint64_t next;
        switch (word_state(word)) {
        case GW_BREAKER_CLOSED:
            return GW_BREAKER_ALLOW;
        case GW_BREAKER_OPEN:
            if (now_ms < word_deadline(word))
                return GW_BREAKER_REFUSE;
            /* Turn half-open and take the probe slot in the same exchange. */
            next = word_make(GW_BREAKER_HALF_OPEN, true, word_deadline(word));
            if (atomic_compare_exchange_weak(&b->word, &word, next)) {
                atomic_fetch_add_explicit(&b->transitions, 1, memory_order_relaxed);
                return GW_BREAKER_PROBE;
            }
            break;
        case GW_BREAKER_HALF_OPEN:
            if (word & WORD_PROBE)
                return GW_BREAKER_REFUSE;
            if (atomic_compare_exchange_weak(&b->word, &word, word | WORD_PROBE))
                return GW_BREAKER_PROBE;
            break;
        default:
            return GW_BREAKER_REFUSE; /* not reached: the state bits never hold 3 */
        }
    }
}

/* Ends the probe held by the caller: closed on success, open for open_ms on failure. */
static bool probe_done(struct gw_breaker *b, uint64_t now_ms, bool success)
{
    uint64_t word = atomic_load(&b->word);
    if (word_state(word) != GW_BREAKER_HALF_OPEN || !(word & WORD_PROBE))
        return false; /* no probe out: a second record for the same probe */
    uint64_t next;
    if (success) {
        /* Cleared before closing: outcomes recorded while half-open are ignored anyway. */
        window_clear(b);
        next = word_make(GW_BREAKER_CLOSED, false, 0);
    } else {
        next = word_make(GW_BREAKER_OPEN, false, now_ms + b->cfg.open_ms);
    }
    /* Only the probe's holder changes a word with the probe bit set, so this cannot lose. */
    if (!atomic_compare_exchange_strong(&b->word, &word, next))
        return false;
    atomic_fetch_add_explicit(&b->transitions, 1, memory_order_relaxed);
    return true;
}

bool gw_breaker_record(struct gw_breaker *b, uint64_t now_ms, bool success, bool was_probe)
{
    if (was_probe)
        return probe_done(b, now_ms, success);
    if (word_state(atomic_load(&b->word)) != GW_BREAKER_CLOSED)
        return false;
    window_add(b, now_ms, !success);
    if (success)
        return false;
    uint64_t outcomes, failures;
    window_sum(b, now_ms, &outcomes, &failures);
    if (outcomes < b->cfg.min_requests ||
        (double)failures < b->cfg.failure_ratio * (double)outcomes)
        return false;
    uint64_t closed = word_make(GW_BREAKER_CLOSED, false, 0);
    uint64_t open = word_make(GW_BREAKER_OPEN, false, now_ms + b->cfg.open_ms);
    if (!atomic_compare_exchange_strong(&b->word, &closed, open))
        return false; /* another failure opened it first */
    atomic_fetch_add_explicit(&b->transitions, 1, memory_order_relaxed);
    return true;
}

void gw_breaker_abandon_probe(struct gw_breaker *b)
{
    uint64_t word = atomic_load(&b->word);
    while (word_state(word) == GW_BREAKER_HALF_OPEN && (word & WORD_PROBE)) {
        if (atomic_compare_exchange_weak(&b->word, &word, word & ~WORD_PROBE))
            return;
    }
}

enum gw_breaker_state gw_breaker_state(const struct gw_breaker *b, uint64_t now_ms)
{
    uint64_t word = atomic_load(&b->word);
    enum gw_breaker_state state = word_state(word);
    if (state == GW_BREAKER_OPEN && now_ms >= word_deadline(word))
        return GW_BREAKER_HALF_OPEN;
    return state;
}

uint64_t gw_breaker_transitions(const struct gw_breaker *b)
{
    return atomic_load_explicit(&b->transitions, memory_order_relaxed);
}

const char *gw_breaker_state_name(enum gw_breaker_state state)
{
    switch (state) {
    case GW_BREAKER_CLOSED:
        return "closed";
    case GW_BREAKER_OPEN:
        return "open";
    case GW_BREAKER_HALF_OPEN:
        return "half-open";
    }
    return "?";
}
