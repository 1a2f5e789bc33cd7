/* Per-thread cache of verified JWTs: a repeat of a token costs one hash lookup, no crypto. */
#ifndef AG_JWT_CACHE_H
#define AG_JWT_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/jwt.h"

/*
 * A bounded map from the exact token bytes to the claims ag_jwt_verify gave for them. Keys are
 * compared in full (a copy of each token is kept), never by hash alone, so a forged token can
 * never hit another token's entry. One cache per worker thread: no locks, not thread-safe.
 *
 * An entry is valid until the token's exp (no clock skew added: a token inside its skew after
 * exp is verified again, which answers the same) and, when max_age_s is set, no longer than
 * max_age_s after it was put. Caveats a caller must accept: a key removed from the issuer's
 * JWK Set does not evict tokens already cached (they live until exp or max_age_s), and the
 * issuer index stored refers to the configuration the token was verified under, so a new
 * configuration needs a new (or cleared) cache. Only verified tokens may be put.
 */
struct ag_jwt_cache;

enum { AG_JWT_CACHE_DEFAULT_ENTRIES = 4096, AG_JWT_CACHE_MAX_ENTRIES = 1 << 20 };

/*
 * Creates an empty cache of at most max_entries tokens (0: AG_JWT_CACHE_DEFAULT_ENTRIES).
 * max_age_s bounds an entry's life besides exp (0: exp only). Returns 0 and *out; AG_EINVAL
 * for max_entries over AG_JWT_CACHE_MAX_ENTRIES; AG_ENOMEM. err says which.
 */
int ag_jwt_cache_new(size_t max_entries, uint32_t max_age_s, struct ag_jwt_cache **out,
                     struct ag_err *err);

/* Frees the cache and every entry; NULL allowed. */
void ag_jwt_cache_free(struct ag_jwt_cache *cache);

/*
 * Looks token up at now_s. On a hit with a valid entry, fills claims (may be NULL) and
 * *which_issuer (may be NULL) as ag_jwt_verify did, and returns true. Returns false on a
 * miss; an entry found expired is dropped.
 */
bool ag_jwt_cache_get(struct ag_jwt_cache *cache, struct ag_str token, int64_t now_s,
                      struct ag_jwt_claims *claims, size_t *which_issuer);

/*
 * Remembers that token verified (ag_jwt_verify returned AG_JWT_OK) with claims and
 * which_issuer at now_s; replaces an entry of the same token. When the cache is full, expired
 * entries are dropped, or else one chosen at random. A token already past its exp is not kept
 * (returns 0). Returns 0; AG_ERANGE for a token over AG_JWT_MAX_TOKEN_LIMIT bytes (not kept);
 * AG_ENOMEM (the cache is unchanged).
 */
int ag_jwt_cache_put(struct ag_jwt_cache *cache, struct ag_str token,
                     const struct ag_jwt_claims *claims, size_t which_issuer, int64_t now_s);

/* Drops every entry (after a configuration change, say). */
void ag_jwt_cache_clear(struct ag_jwt_cache *cache);

/* Counters of a cache, for metrics and tests. */
struct ag_jwt_cache_stats {
    size_t entries;
    uint64_t hits, misses;
    uint64_t expired; /* entries dropped because they were past their validity */
    uint64_t evicted; /* valid entries dropped to make room */
};

/* Fills *out with the cache's counters. */
void ag_jwt_cache_stats(const struct ag_jwt_cache *cache, struct ag_jwt_cache_stats *out);

#endif
