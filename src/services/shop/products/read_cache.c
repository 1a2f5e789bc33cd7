/*
 * The read cache: a 4-way set-associative table of (key, body) slots under one mutex. The key's
 * hash picks a set of WAYS slots; a new entry takes its key's slot, else an empty or invalid one,
 * else the one closest to expiry (a direct-mapped table made two keys of one slot evict each other
 * at every turn: 1 read in 9 missed with 1,000 hot products). Memory stays under the budget:
 * a body that would go over it is not kept. Validity: the entry's generation equals the cache's
 * (no commit since it was read) and its expiry is in the future.
 *
 * Refresh ahead: from half its life on, the first reader is still answered from the entry, and
 * told to refresh it (READ_CACHE_REFRESH: the products service re-runs the read in the
 * background, kit_req_rerun_later), while every other reader is answered as before. Nobody waits
 * for a refresh, and entries stored together (a warm-up) are read again one by one instead of
 * all expiring at once and making every reader wait for the database.
 */
#include "read_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/banned.h"

enum {
    SLOTS = 16384,         /* a power of two */
    WAYS = 4,              /* slots per set, a power of two */
    BODY_MAX = 256 * 1024, /* larger answers are not kept */
};

struct slot {
    char *key; /* key bytes then body bytes, one allocation */
    size_t key_len, body_len;
    uint64_t generation;
    int64_t expires_ms;
    bool refreshing; /* a reader has been told to refresh it (in the second half of its TTL) */
};

struct read_cache {
    pthread_mutex_t mu;
    _Atomic uint64_t generation;
    size_t budget, used;
    int64_t ttl_ms;
    struct ag_series *hits;      /* NULL: not counted */
    struct ag_series *refreshes; /* NULL: not counted */
    struct slot slots[SLOTS];
};

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t (*now_ms)(void) = monotonic_ms; /* the tests' clock replaces it */

/* The first slot of the key's set: FNV-1a over the key. */
static size_t set_of(struct ag_str key)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < key.len; i++)
        h = (h ^ (unsigned char)key.p[i]) * 1099511628211ULL;
    return (size_t)(h & (SLOTS - 1) & ~(size_t)(WAYS - 1));
}

static bool slot_holds(const struct slot *s, struct ag_str key)
{
    return s->key && s->key_len == key.len && memcmp(s->key, key.p, key.len) == 0;
}

static bool slot_valid(const struct slot *s, uint64_t generation, int64_t now)
{
    return s->generation == generation && s->expires_ms > now;
}

int read_cache_new(size_t budget_bytes, int64_t ttl_ms, struct read_cache **out)
{
    *out = NULL;
    if (budget_bytes == 0)
        return 0;
    struct read_cache *c = calloc(1, sizeof *c);
    if (!c)
        return AG_ENOMEM;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return AG_ENOMEM;
    }
    c->budget = budget_bytes;
    c->ttl_ms = ttl_ms;
    atomic_init(&c->generation, 1);
    *out = c;
    return 0;
}

static void slot_clear(struct read_cache *c, struct slot *s)
{
    if (s->key)
        c->used -= s->key_len + s->body_len;
    free(s->key);
    memset(s, 0, sizeof *s);
}

void read_cache_free(struct read_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < SLOTS; i++)
        slot_clear(c, &c->slots[i]);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void read_cache_invalidate(struct read_cache *c)
{
    if (c)
        atomic_fetch_add(&c->generation, 1);
}

uint64_t read_cache_generation(const struct read_cache *c)
{
    return c ? atomic_load(&((struct read_cache *)c)->generation) : 0;
}

void read_cache_count(struct read_cache *c, struct ag_series *hits, struct ag_series *refreshes)
{
    if (c) {
        c->hits = hits;
        c->refreshes = refreshes;
    }
}

enum read_cache_result read_cache_get(struct read_cache *c, struct ag_str key, struct ag_buf *out)
{
    if (!c)
        return READ_CACHE_MISS;
    enum read_cache_result result = READ_CACHE_MISS;
    struct slot *set = &c->slots[set_of(key)];
    int64_t now = now_ms();
    pthread_mutex_lock(&c->mu);
    for (size_t w = 0; w < WAYS; w++) {
        struct slot *s = &set[w];
        if (!slot_holds(s, key))
            continue;
        if (!slot_valid(s, atomic_load(&c->generation), now)) {
            slot_clear(c, s); /* stale: free its memory now */
            break;
        }
        if (ag_buf_append(out, s->key + s->key_len, s->body_len) < 0)
            break;
        result = READ_CACHE_HIT;
        if (now >= s->expires_ms - c->ttl_ms / 2 && !s->refreshing) {
            s->refreshing = true; /* this reader refreshes it */
            result = READ_CACHE_REFRESH;
        }
        break;
    }
    pthread_mutex_unlock(&c->mu);
    if (result != READ_CACHE_MISS)
        ag_counter_inc(c->hits);
    return result;
}

void read_cache_refresh_cancel(struct read_cache *c, struct ag_str key)
{
    if (!c)
        return;
    struct slot *set = &c->slots[set_of(key)];
    pthread_mutex_lock(&c->mu);
    for (size_t w = 0; w < WAYS; w++)
        if (slot_holds(&set[w], key))
            set[w].refreshing = false;
    pthread_mutex_unlock(&c->mu);
}

/* The slot of set for key: its own, else an empty or invalid one, else the closest to expiry. */
static struct slot *slot_for(struct slot *set, struct ag_str key, uint64_t generation, int64_t now)
{
    struct slot *unused = NULL, *oldest = &set[0];
    for (size_t w = 0; w < WAYS; w++) {
        struct slot *t = &set[w];
        if (slot_holds(t, key))
            return t;
        if (!unused && (!t->key || !slot_valid(t, generation, now)))
            unused = t;
        if (t->expires_ms < oldest->expires_ms)
            oldest = t;
    }
    return unused ? unused : oldest;
}

void read_cache_put(struct read_cache *c, struct ag_str key, uint64_t generation, const char *body,
                    size_t len)
{
    if (!c || len > BODY_MAX || generation != atomic_load(&c->generation))
        return;
    char *mem = malloc(key.len + len);
    if (!mem)
        return;
    memcpy(mem, key.p, key.len);
    memcpy(mem + key.len, body, len);
    int64_t now = now_ms();
    pthread_mutex_lock(&c->mu);
    uint64_t now_gen = atomic_load(&c->generation);
    struct slot *s = slot_for(&c->slots[set_of(key)], key, now_gen, now);
    bool refreshed = s->refreshing && slot_holds(s, key);
    slot_clear(c, s);
    if (c->used + key.len + len > c->budget) { /* make room: drop every entry no longer valid */
        for (size_t i = 0; i < SLOTS; i++)
            if (c->slots[i].key && !slot_valid(&c->slots[i], now_gen, now))
                slot_clear(c, &c->slots[i]);
    }
    if (c->used + key.len + len <= c->budget) {
        *s = (struct slot){mem, key.len, len, generation, now + c->ttl_ms, false};
        c->used += key.len + len;
        mem = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (refreshed && !mem)
        ag_counter_inc(c->refreshes);
    free(mem);
}
