/* Rate limiting: the token bucket, the in-process store, and one call for either store. */
#include "gateway/ratelimit.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "gateway/ratelimit_redis.h"
#include "core/banned.h"

/* ---- the bucket ---- */

static uint64_t div_ceil(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

int gw_rl_policy_check(const struct gw_rl_policy *p, struct ag_err *err)
{
    if (!p || !p->rate || !p->per_ms || !p->burst)
        return ag_err_set(err, AG_EINVAL, "rate limit rate, period and burst must be at least 1");
    if (p->per_ms > GW_RL_PER_MS_MAX)
        return ag_err_set(err, AG_ERANGE, "rate limit period of %llu ms is over 31 days",
                          (unsigned long long)p->per_ms);
    if (p->rate > GW_RL_UNITS_MAX)
        return ag_err_set(err, AG_ERANGE, "rate limit rate of %llu is over 2^52",
                          (unsigned long long)p->rate);
    if (p->burst > GW_RL_UNITS_MAX / p->per_ms)
        return ag_err_set(err, AG_ERANGE,
                          "rate limit burst of %llu is too large for a period of %llu ms "
                          "(burst times period must stay under 2^52)",
                          (unsigned long long)p->burst, (unsigned long long)p->per_ms);
    return 0;
}

void gw_rl_bucket_init(struct gw_rl_bucket *b, const struct gw_rl_policy *p, uint64_t now_ms)
{
    *b = (struct gw_rl_bucket){
        .tokens = p->burst * p->per_ms, .last_ms = now_ms, .per_ms = p->per_ms};
}

/* Brings b up to now_ms under p: converts its units if the policy changed, then refills. */
static void bucket_refill(struct gw_rl_bucket *b, const struct gw_rl_policy *p, uint64_t now_ms)
{
    uint64_t cap = p->burst * p->per_ms;
    if (b->per_ms == 0) {
        gw_rl_bucket_init(b, p, now_ms);
        return;
    }
    if (b->per_ms != p->per_ms) {
        uint64_t whole = b->tokens / b->per_ms;
        b->tokens = whole >= p->burst ? cap : whole * p->per_ms;
        b->per_ms = p->per_ms;
    }
    if (b->tokens > cap)
        b->tokens = cap;
    if (now_ms <= b->last_ms)
        return; /* same instant, or a clock behind ours: no refill, and our clock stays */
    uint64_t elapsed = now_ms - b->last_ms;
    uint64_t need = cap - b->tokens;
    /* Below the time to fill up, elapsed * rate < need: the product cannot overflow. */
    if (elapsed >= div_ceil(need, p->rate))
        b->tokens = cap;
    else
        b->tokens += elapsed * p->rate;
    b->last_ms = now_ms;
}

void gw_rl_bucket_take(struct gw_rl_bucket *b, const struct gw_rl_policy *p, uint64_t now_ms,
                       struct gw_rl_decision *out)
{
    bucket_refill(b, p, now_ms);
    uint64_t cap = p->burst * p->per_ms;
    bool allowed = b->tokens >= p->per_ms;
    if (allowed)
        b->tokens -= p->per_ms;
    *out = (struct gw_rl_decision){
        .allowed = allowed,
        .limit = p->burst,
        .remaining = b->tokens / p->per_ms,
        .reset_s = div_ceil(div_ceil(cap - b->tokens, p->rate), 1000),
        .retry_after_s = allowed ? 0 : div_ceil(div_ceil(p->per_ms - b->tokens, p->rate), 1000),
    };
}

bool gw_rl_bucket_full_at(const struct gw_rl_bucket *b, const struct gw_rl_policy *p,
                          uint64_t now_ms)
{
    struct gw_rl_bucket copy = *b;
    bucket_refill(&copy, p, now_ms);
    return copy.tokens == p->burst * p->per_ms;
}

/* ---- keyed hash (SipHash-1-3) ---- */

static uint64_t rotl64(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

#define SIP_ROUND(v0, v1, v2, v3)                                                                  \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl64(v1, 13);                                                                       \
        v1 ^= v0;                                                                                  \
        v0 = rotl64(v0, 32);                                                                       \
        v2 += v3;                                                                                  \
        v3 = rotl64(v3, 16);                                                                       \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl64(v3, 21);                                                                       \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl64(v1, 17);                                                                       \
        v1 ^= v2;                                                                                  \
        v2 = rotl64(v2, 32);                                                                       \
    } while (0)

static uint64_t load_le64(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t siphash13(const uint64_t key[2], const void *data, size_t len)
{
    const unsigned char *in = data;
    uint64_t v0 = UINT64_C(0x736f6d6570736575) ^ key[0];
    uint64_t v1 = UINT64_C(0x646f72616e646f6d) ^ key[1];
    uint64_t v2 = UINT64_C(0x6c7967656e657261) ^ key[0];
    uint64_t v3 = UINT64_C(0x7465646279746573) ^ key[1];
    size_t whole = len - len % 8;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(in + i, 8);
        v3 ^= m;
        SIP_ROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    uint64_t last = ((uint64_t)len << 56) | load_le64(in + whole, len % 8);
    v3 ^= last;
    SIP_ROUND(v0, v1, v2, v3);
    v0 ^= last;
    v2 ^= 0xff;
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the memory store ---- */

enum {
    CACHE_LINE = 64,
    MAX_SHARDS = 64,
    MIN_KEYS_PER_SHARD = 64,
    RECLAIM_SCAN = 4, /* least recently used buckets looked at before each new key */
};

/* One tracked key. */
struct rl_entry {
    struct rl_entry *chain;         /* next in its hash slot */
    struct rl_entry *newer, *older; /* the shard's use order */
    uint64_t hash;
    struct gw_rl_bucket bucket;
    struct gw_rl_policy policy; /* of its latest take: tells when the bucket is full again */
    size_t key_len;
    char key[];
};

/* A share of the keys under one lock, on cache lines of its own. */
struct rl_shard {
    alignas(CACHE_LINE) pthread_mutex_t lock;
    struct rl_entry **slots;
    size_t slot_mask;
    struct rl_entry *newest, *oldest;
    size_t count, cap;
    struct gw_rl_bucket overflow; /* shared by keys this shard cannot track */
    uint64_t forgotten, overflowed;
};

struct gw_rl_memory {
    uint64_t hash_key[2];
    size_t shard_count; /* a power of two */
    struct rl_shard *shards;
};

static void lru_unlink(struct rl_shard *s, struct rl_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        s->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        s->oldest = e->newer;
}

static void lru_push_newest(struct rl_shard *s, struct rl_entry *e)
{
    e->newer = NULL;
    e->older = s->newest;
    if (s->newest)
        s->newest->newer = e;
    else
        s->oldest = e;
    s->newest = e;
}

static struct rl_entry *shard_find(struct rl_shard *s, uint64_t hash, struct ag_str key)
{
    for (struct rl_entry *e = s->slots[hash & s->slot_mask]; e; e = e->chain)
        if (e->hash == hash && e->key_len == key.len && memcmp(e->key, key.p, key.len) == 0)
            return e;
    return NULL;
}

static void shard_forget(struct rl_shard *s, struct rl_entry *e)
{
    struct rl_entry **link = &s->slots[e->hash & s->slot_mask];
    while (*link != e)
        link = &(*link)->chain;
    *link = e->chain;
    lru_unlink(s, e);
    s->count--;
    s->forgotten++;
    free(e);
}

/*
 * Starts tracking key with a full bucket, first forgetting full buckets among the least
 * recently used. Returns the entry, or NULL when the shard is full of live buckets or memory
 * is short (the caller then uses the overflow bucket).
 */
static struct rl_entry *shard_track(struct rl_shard *s, uint64_t hash, struct ag_str key,
                                    const struct gw_rl_policy *p, uint64_t now_ms)
{
    struct rl_entry *e = s->oldest;
    for (int i = 0; e && i < RECLAIM_SCAN; i++) {
        struct rl_entry *newer = e->newer;
        if (gw_rl_bucket_full_at(&e->bucket, &e->policy, now_ms))
            shard_forget(s, e);
        e = newer;
    }
    if (s->count >= s->cap)
        return NULL;
    e = malloc(sizeof *e + key.len);
    if (!e)
        return NULL;
    e->hash = hash;
    e->policy = *p;
    gw_rl_bucket_init(&e->bucket, p, now_ms);
    e->key_len = key.len;
    if (key.len)
        memcpy(e->key, key.p, key.len);
    struct rl_entry **slot = &s->slots[hash & s->slot_mask];
    e->chain = *slot;
    *slot = e;
    lru_push_newest(s, e);
    s->count++;
    return e;
}

static size_t pow2_at_least(size_t n)
{
    size_t p = 1;
    while (p < n)
        p *= 2;
    return p;
}

int gw_rl_memory_new(size_t max_keys, struct gw_rl_memory **out, struct ag_err *err)
{
    int rc = 0;
    if (max_keys == 0)
        max_keys = GW_RL_MEMORY_DEFAULT_KEYS;
    if (max_keys > GW_RL_MEMORY_MAX_KEYS)
        return ag_err_set(err, AG_ERANGE, "rate limit max_keys %zu is over %d", max_keys,
                          GW_RL_MEMORY_MAX_KEYS);
    struct gw_rl_memory *m = calloc(1, sizeof *m);
    if (!m)
        return ag_err_set(err, AG_ENOMEM, "out of memory creating the rate limit store");
    size_t n = MAX_SHARDS;
    while (n > 1 && max_keys / n < MIN_KEYS_PER_SHARD)
        n /= 2;
    m->shards = aligned_alloc(CACHE_LINE, n * sizeof *m->shards);
    if (!m->shards) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory creating the rate limit store");
        goto out;
    }
    memset(m->shards, 0, n * sizeof *m->shards);
    for (size_t i = 0; i < n; i++) {
        struct rl_shard *s = &m->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        m->shard_count = i + 1; /* so that a failure below frees exactly what was made */
        s->cap = max_keys / n + (i < max_keys % n);
        size_t slots = pow2_at_least(s->cap);
        s->slots = calloc(slots, sizeof *s->slots);
        if (!s->slots) {
            rc = ag_err_set(err, AG_ENOMEM, "out of memory creating the rate limit store");
            goto out;
        }
        s->slot_mask = slots - 1;
    }
    if (getrandom(m->hash_key, sizeof m->hash_key, 0) != (ssize_t)sizeof m->hash_key) {
        rc = ag_err_sys(err, "getrandom for the rate limit hash key");
        goto out;
    }
out:
    if (rc < 0) {
        gw_rl_memory_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

static bool key_ok(struct ag_str key)
{
    return key.len <= GW_RL_KEY_MAX && (key.p || key.len == 0);
}

int gw_rl_memory_take(struct gw_rl_memory *m, struct ag_str key, const struct gw_rl_policy *p,
                      uint64_t now_ms, struct gw_rl_decision *out)
{
    if (!key_ok(key) || gw_rl_policy_check(p, NULL) < 0)
        return AG_EINVAL;
    uint64_t hash = siphash13(m->hash_key, key.p ? key.p : "", key.len);
    struct rl_shard *s = &m->shards[(hash >> 32) & (m->shard_count - 1)];
    pthread_mutex_lock(&s->lock);
    struct rl_entry *e = shard_find(s, hash, key);
    if (e) {
        lru_unlink(s, e);
        lru_push_newest(s, e);
    } else {
        e = shard_track(s, hash, key, p, now_ms);
    }
    if (e) {
        e->policy = *p;
        gw_rl_bucket_take(&e->bucket, p, now_ms, out);
    } else {
        s->overflowed++;
        gw_rl_bucket_take(&s->overflow, p, now_ms, out);
    }
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void gw_rl_memory_stats(struct gw_rl_memory *m, struct gw_rl_memory_stats *out)
{
    *out = (struct gw_rl_memory_stats){0};
    for (size_t i = 0; i < m->shard_count; i++) {
        struct rl_shard *s = &m->shards[i];
        pthread_mutex_lock(&s->lock);
        out->keys += s->count;
        out->forgotten += s->forgotten;
        out->overflowed += s->overflowed;
        pthread_mutex_unlock(&s->lock);
    }
}

void gw_rl_memory_free(struct gw_rl_memory *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->shard_count; i++) {
        struct rl_shard *s = &m->shards[i];
        struct rl_entry *e = s->newest;
        while (e) {
            struct rl_entry *older = e->older;
            free(e);
            e = older;
        }
        free(s->slots);
        pthread_mutex_destroy(&s->lock);
    }
    free(m->shards);
    free(m);
}

/* ---- either store ---- */

void gw_rl_store_init_memory(struct gw_rl_store *s, struct gw_rl_memory *memory,
                             struct ag_loop *loop)
{
    *s = (struct gw_rl_store){.memory = memory, .loop = loop};
}

void gw_rl_store_init_redis(struct gw_rl_store *s, struct gw_rl_redis *redis)
{
    *s = (struct gw_rl_store){.redis = redis};
}

int gw_rl_store_take(const struct gw_rl_store *s, struct ag_str key, const struct gw_rl_policy *p,
                     struct gw_rl_decision *out, gw_rl_done_cb cb, void *ctx,
                     struct gw_rl_pending **pending)
{
    if (s->memory)
        return gw_rl_memory_take(s->memory, key, p, ag_loop_now(s->loop), out);
    int rc = gw_rl_redis_take(s->redis, key, p, cb, ctx, pending);
    return rc < 0 ? rc : AG_EAGAIN;
}

void gw_rl_store_cancel(struct gw_rl_pending *pending)
{
    gw_rl_redis_cancel(pending);
}
