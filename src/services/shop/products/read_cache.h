/*
 * The catalog's read cache: answered public reads (a product by id, a list or a search page) as
 * the bytes sent, keyed by tenant and request. Any change in this process drops it all at once
 * (a generation number, bumped after every commit that changed the catalog); entries also expire
 * after a TTL, which bounds how long another replica's change stays unseen, and are refreshed
 * ahead of it, in the background, while every reader is still answered. Thread-safe.
 */
#ifndef PRODUCTS_READ_CACHE_H
#define PRODUCTS_READ_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/metrics.h"

struct read_cache;

/* budget_bytes 0: no cache (every call below is a no-op or a miss). */
int read_cache_new(size_t budget_bytes, int64_t ttl_ms, struct read_cache **out);
void read_cache_free(struct read_cache *c); /* NULL allowed */

/* Drops every entry (cheap: bumps the generation). NULL allowed. */
void read_cache_invalidate(struct read_cache *c);
/* The generation now: take it before reading the database, give it to read_cache_put. */
uint64_t read_cache_generation(const struct read_cache *c);

/*
 * Counts every hit from now on in hits, and every entry refreshed ahead of its expiry in
 * refreshes (lock-free counter series of core/metrics.h, owned by their registry; NULL: not
 * counted). Call before the cache is shared: the pointers themselves are not synchronised.
 * c NULL: nothing.
 */
void read_cache_count(struct read_cache *c, struct ag_series *hits, struct ag_series *refreshes);

enum read_cache_result {
    READ_CACHE_MISS,    /* not held (or no longer valid): read the database, then put */
    READ_CACHE_HIT,     /* the body was appended to out */
    READ_CACHE_REFRESH, /* appended too, and this caller is to refresh the entry (below) */
};

/*
 * Appends the cached body of key to out and counts a hit, or misses. Refresh ahead: the first
 * reader of an entry in the second half of its TTL is answered READ_CACHE_REFRESH. It is
 * expected to read the database later, off the reader's path, and put the new body; or, when it
 * cannot start that, to call read_cache_refresh_cancel so that a later reader is asked instead.
 * Every other reader is answered from the entry until it expires.
 */
enum read_cache_result read_cache_get(struct read_cache *c, struct ag_str key, struct ag_buf *out);
/* The refresh asked of a READ_CACHE_REFRESH reader of key did not start. c NULL: nothing. */
void read_cache_refresh_cancel(struct read_cache *c, struct ag_str key);
/*
 * Stores body under key, unless the catalog changed since generation was taken (the body may
 * be older than that change) or the body does not fit the budget.
 */
void read_cache_put(struct read_cache *c, struct ag_str key, uint64_t generation, const char *body,
                    size_t len);

#endif
