/*
 * The catalog's read cache: answered public reads (a product by id, a list or a search page) as
 * the bytes sent, keyed by tenant and request. Any change in this process drops it all at once
 * (a generation number, bumped after every commit that changed the catalog); entries also expire
 * after a TTL, which bounds how long another replica's change stays unseen, and are refreshed
 * ahead of it by one reader while the others are still answered. Thread-safe.
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
 * Counts every hit from now on in hits (a lock-free counter series of core/metrics.h, owned by
 * its registry; NULL stops counting). Call before the cache is shared: the pointer itself is
 * not synchronised. c NULL: nothing.
 */
void read_cache_count_hits(struct read_cache *c, struct ag_series *hits);

/*
 * On a hit, appends the cached body to out, adds 1 to the hit counter and returns true.
 * Refresh ahead: an entry in the last quarter of its TTL is a miss for the first caller with
 * may_refresh, who is expected to read the database and put the new body, and for callers
 * without it (the I/O thread, which has no database) until such a caller came; other callers
 * are answered from it until it expires.
 */
bool read_cache_get(struct read_cache *c, struct ag_str key, bool may_refresh, struct ag_buf *out);
/*
 * Stores body under key, unless the catalog changed since generation was taken (the body may
 * be older than that change) or the body does not fit the budget.
 */
void read_cache_put(struct read_cache *c, struct ag_str key, uint64_t generation, const char *body,
                    size_t len);

#endif
