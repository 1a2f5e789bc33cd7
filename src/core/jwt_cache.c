/* Per-thread cache of verified JWTs: a repeat of a token costs one hash lookup, no crypto. */
#include "core/jwt_cache.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/banned.h"

/* The string claims kept in an entry, in this order after the token bytes. */
enum { CLAIM_SUB, CLAIM_TENANT, CLAIM_ROLES, CLAIM_JTI, CLAIM_SCOPE, CLAIM_ISS, CLAIM_COUNT };

/* One cached token: the token bytes and the claims' strings packed into data. */
struct entry {
    int64_t valid_until;
    int64_t exp, nbf, iat;
    size_t role_count;
    size_t which_issuer;
    uint32_t token_len;
    uint16_t claim_len[CLAIM_COUNT];
    char data[];
};

/* Open addressing with linear probing; hash is kept to skip most full comparisons. */
struct slot {
    uint64_t hash;
    struct entry *e; /* NULL: empty */
};

struct ag_jwt_cache {
    struct slot *slots;
    size_t mask; /* slot count - 1; the count is a power of two at least twice max_entries */
    size_t count, max_entries;
    uint32_t max_age_s;
    uint64_t seed, rng;
    int64_t earliest_until; /* no entry expires before this: skip sweeps that would find none */
    struct ag_jwt_cache_stats stats;
};

/* ---- hashing ---- */

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/*
 * A seeded 64-bit hash of the token bytes. Not cryptographic, and it need not be: entries
 * are compared in full, and only verified tokens are put, so a caller cannot fill the table
 * with colliding keys; the per-cache random seed keeps the layout unpredictable anyway.
 */
static uint64_t token_hash(uint64_t seed, struct ag_str t)
{
    uint64_t h = seed ^ (t.len * 0x9e3779b97f4a7c15ull);
    size_t i = 0;
    for (; i + 8 <= t.len; i += 8) {
        uint64_t w;
        memcpy(&w, t.p + i, 8);
        h ^= w * 0x9e3779b97f4a7c15ull;
        h = (h << 31 | h >> 33) * 0xbf58476d1ce4e5b9ull;
    }
    uint64_t w = 0;
    memcpy(&w, t.p + i, t.len - i);
    h ^= w * 0x9e3779b97f4a7c15ull;
    return mix64(h);
}

static uint64_t next_random(struct ag_jwt_cache *c)
{
    /* xorshift64*: for picking eviction victims, nothing more. */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 0x2545f4914f6cdd1dull;
}

/* ---- the table ---- */

int ag_jwt_cache_new(size_t max_entries, uint32_t max_age_s, struct ag_jwt_cache **out,
                     struct ag_err *err)
{
    *out = NULL;
    if (max_entries == 0)
        max_entries = AG_JWT_CACHE_DEFAULT_ENTRIES;
    if (max_entries > AG_JWT_CACHE_MAX_ENTRIES)
        return ag_err_set(err, AG_EINVAL, "JWT cache of %zu entries is over the limit of %d",
                          max_entries, AG_JWT_CACHE_MAX_ENTRIES);
    size_t slots = 16;
    while (slots < 2 * max_entries)
        slots *= 2;
    struct ag_jwt_cache *c = calloc(1, sizeof *c);
    if (c)
        c->slots = calloc(slots, sizeof c->slots[0]);
    if (!c || !c->slots) {
        free(c);
        return ag_err_set(err, AG_ENOMEM, "out of memory for a JWT cache");
    }
    c->mask = slots - 1;
    c->max_entries = max_entries;
    c->max_age_s = max_age_s;
    if (getrandom(&c->seed, sizeof c->seed, GRND_NONBLOCK) != (ssize_t)sizeof c->seed)
        c->seed = mix64((uint64_t)(uintptr_t)c ^ (uint64_t)time(NULL));
    c->rng = c->seed | 1;
    c->earliest_until = INT64_MAX;
    *out = c;
    return 0;
}

void ag_jwt_cache_clear(struct ag_jwt_cache *c)
{
    for (size_t i = 0; i <= c->mask; i++) {
        free(c->slots[i].e);
        c->slots[i] = (struct slot){0};
    }
    c->count = 0;
    c->earliest_until = INT64_MAX;
}

void ag_jwt_cache_free(struct ag_jwt_cache *c)
{
    if (!c)
        return;
    ag_jwt_cache_clear(c);
    free(c->slots);
    free(c);
}

/* Empties slot i and moves later members of its cluster back, so that probes stay unbroken. */
static void slot_delete(struct ag_jwt_cache *c, size_t i)
{
    free(c->slots[i].e);
    c->slots[i] = (struct slot){0};
    c->count--;
    size_t hole = i;
    for (size_t j = (i + 1) & c->mask; c->slots[j].e; j = (j + 1) & c->mask) {
        size_t home = c->slots[j].hash & c->mask;
        /* The member at j may move to the hole unless its home lies cyclically in (hole, j]. */
        bool home_after_hole = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!home_after_hole) {
            c->slots[hole] = c->slots[j];
            c->slots[j] = (struct slot){0};
            hole = j;
        }
    }
}

/* The slot holding token, or the empty slot where it would go. */
static size_t slot_find(const struct ag_jwt_cache *c, struct ag_str token, uint64_t hash)
{
    size_t i = hash & c->mask;
    for (; c->slots[i].e; i = (i + 1) & c->mask) {
        const struct entry *e = c->slots[i].e;
        if (c->slots[i].hash == hash && e->token_len == token.len &&
            memcmp(e->data, token.p, token.len) == 0)
            break;
    }
    return i;
}

bool ag_jwt_cache_get(struct ag_jwt_cache *c, struct ag_str token, int64_t now_s,
                      struct ag_jwt_claims *claims, size_t *which_issuer)
{
    if (!token.p || token.len > AG_JWT_MAX_TOKEN_LIMIT) {
        c->stats.misses++;
        return false;
    }
    size_t i = slot_find(c, token, token_hash(c->seed, token));
    const struct entry *e = c->slots[i].e;
    if (!e) {
        c->stats.misses++;
        return false;
    }
    if (now_s > e->valid_until) {
        slot_delete(c, i);
        c->stats.expired++;
        c->stats.misses++;
        return false;
    }
    if (claims) {
        memset(claims, 0, sizeof *claims);
        char *const dst[CLAIM_COUNT] = {claims->sub, claims->tenant, claims->roles,
                                        claims->jti, claims->scope,  claims->iss};
        const char *p = e->data + e->token_len;
        for (int k = 0; k < CLAIM_COUNT; k++) {
            memcpy(dst[k], p, e->claim_len[k]);
            p += e->claim_len[k];
        }
        claims->role_count = e->role_count;
        claims->exp = e->exp;
        claims->nbf = e->nbf;
        claims->iat = e->iat;
    }
    if (which_issuer)
        *which_issuer = e->which_issuer;
    c->stats.hits++;
    return true;
}

/* Drops every expired entry (at most one pass over the table). */
static void sweep_expired(struct ag_jwt_cache *c, int64_t now_s)
{
    int64_t earliest = INT64_MAX;
    for (size_t i = 0; i <= c->mask;) {
        const struct entry *e = c->slots[i].e;
        if (e && now_s > e->valid_until) {
            slot_delete(c, i); /* a later member may have moved into i: look again */
            c->stats.expired++;
            continue;
        }
        if (e && e->valid_until < earliest)
            earliest = e->valid_until;
        i++;
    }
    c->earliest_until = earliest;
}

/* Makes room for one entry: expired ones go first, else one chosen at random. */
static void make_room(struct ag_jwt_cache *c, int64_t now_s)
{
    if (now_s > c->earliest_until)
        sweep_expired(c, now_s);
    if (c->count < c->max_entries)
        return;
    size_t i = next_random(c) & c->mask;
    while (!c->slots[i].e)
        i = (i + 1) & c->mask;
    slot_delete(c, i);
    c->stats.evicted++;
}

int ag_jwt_cache_put(struct ag_jwt_cache *c, struct ag_str token,
                     const struct ag_jwt_claims *claims, size_t which_issuer, int64_t now_s)
{
    if (!token.p || token.len > AG_JWT_MAX_TOKEN_LIMIT)
        return AG_ERANGE;
    int64_t until = claims->exp;
    if (c->max_age_s && now_s <= INT64_MAX - c->max_age_s && now_s + c->max_age_s < until)
        until = now_s + c->max_age_s;
    if (now_s > until)
        return 0;

    const char *const src[CLAIM_COUNT] = {claims->sub, claims->tenant, claims->roles,
                                          claims->jti, claims->scope,  claims->iss};
    const size_t caps[CLAIM_COUNT] = {sizeof claims->sub,   sizeof claims->tenant,
                                      sizeof claims->roles, sizeof claims->jti,
                                      sizeof claims->scope, sizeof claims->iss};
    size_t lens[CLAIM_COUNT], total = token.len;
    for (int k = 0; k < CLAIM_COUNT; k++) {
        lens[k] = strnlen(src[k], caps[k] - 1);
        total += lens[k];
    }
    struct entry *e = malloc(sizeof *e + total);
    if (!e)
        return AG_ENOMEM;
    *e = (struct entry){.valid_until = until,
                        .exp = claims->exp,
                        .nbf = claims->nbf,
                        .iat = claims->iat,
                        .role_count = claims->role_count,
                        .which_issuer = which_issuer,
                        .token_len = (uint32_t)token.len};
    memcpy(e->data, token.p, token.len);
    char *p = e->data + token.len;
    for (int k = 0; k < CLAIM_COUNT; k++) {
        e->claim_len[k] = (uint16_t)lens[k];
        memcpy(p, src[k], lens[k]);
        p += lens[k];
    }

    uint64_t hash = token_hash(c->seed, token);
    size_t i = slot_find(c, token, hash);
    if (c->slots[i].e) {
        free(c->slots[i].e); /* the same token again: the newer claims win */
        c->count--;
    } else if (c->count >= c->max_entries) {
        make_room(c, now_s);
        i = slot_find(c, token, hash); /* deletions moved members around */
    }
    c->slots[i] = (struct slot){hash, e};
    c->count++;
    if (until < c->earliest_until)
        c->earliest_until = until;
    return 0;
}

void ag_jwt_cache_stats(const struct ag_jwt_cache *c, struct ag_jwt_cache_stats *out)
{
    *out = c->stats;
    out->entries = c->count;
}
