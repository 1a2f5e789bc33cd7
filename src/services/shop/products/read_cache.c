/*
 * The read cache: a direct-mapped table of (key, body) slots under one mutex. A slot is found by
 * the key's hash; a new entry replaces whatever the slot held. Memory stays under the budget:
 * a body that would go over it is not kept. Validity: the entry's generation equals the cache's
 * (no commit since it was read) and its expiry is in the future.
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
    SLOTS = 8192,          /* a power of two */
    BODY_MAX = 256 * 1024, /* larger answers are not kept */
};

struct slot {
    char *key; /* key bytes then body bytes, one allocation */
    size_t key_len, body_len;
    uint64_t generation;
    int64_t expires_ms;
};

struct read_cache {
    pthread_mutex_t mu;
    _Atomic uint64_t generation;
    size_t budget, used;
    int64_t ttl_ms;
    struct ag_series *hits; /* NULL: not counted */
    struct slot slots[SLOTS];
};

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* FNV-1a over the key. */
static size_t slot_of(struct ag_str key)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < key.len; i++)
        h = (h ^ (unsigned char)key.p[i]) * 1099511628211ULL;
    return (size_t)(h & (SLOTS - 1));
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

void read_cache_count_hits(struct read_cache *c, struct ag_series *hits)
{
    if (c)
        c->hits = hits;
}

bool read_cache_get(struct read_cache *c, struct ag_str key, struct ag_buf *out)
{
    if (!c)
        return false;
    bool hit = false;
    struct slot *s = &c->slots[slot_of(key)];
    pthread_mutex_lock(&c->mu);
    if (s->key && s->key_len == key.len && memcmp(s->key, key.p, key.len) == 0) {
        if (s->generation == atomic_load(&c->generation) && s->expires_ms > monotonic_ms())
            hit = ag_buf_append(out, s->key + s->key_len, s->body_len) == 0;
        else
            slot_clear(c, s); /* stale: free its memory now */
    }
    pthread_mutex_unlock(&c->mu);
    if (hit)
        ag_counter_inc(c->hits);
    return hit;
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
    struct slot *s = &c->slots[slot_of(key)];
    pthread_mutex_lock(&c->mu);
    slot_clear(c, s);
    if (c->used + key.len + len > c->budget) { /* make room: drop every entry no longer valid */
        uint64_t now_gen = atomic_load(&c->generation);
        int64_t now = monotonic_ms();
        for (size_t i = 0; i < SLOTS; i++)
            if (c->slots[i].key &&
                (c->slots[i].generation != now_gen || c->slots[i].expires_ms <= now))
                slot_clear(c, &c->slots[i]);
    }
    if (c->used + key.len + len <= c->budget) {
        *s = (struct slot){mem, key.len, len, generation, monotonic_ms() + c->ttl_ms};
        c->used += key.len + len;
        mem = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    free(mem);
}
