/*
 * agora-products: the service's shared state and helpers (context.c), and every handler, by
 * module: products.c (+ product_input.c, search.c), taxonomy.c (+ taxonomy_delete.c), images.c,
 * inventory.c (+ reservations.c).
 */
#ifndef PRODUCTS_CATALOG_H
#define PRODUCTS_CATALOG_H

#include <jansson.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>

#include "core/err.h"
#include "kit/blob.h"
#include "kit/bus.h"
#include "kit/db.h"
#include "kit/kit.h"
#include "read_cache.h"

enum {
    CATALOG_PRICE_MAX = 100000000000LL, /* minor units: a billion in a two-decimal currency */
    CATALOG_QUANTITY_MAX = 1000000000,  /* units of one product, in stock or in one request */
    CATALOG_IMAGE_MAX = 5 * 1024 * 1024,
    CATALOG_RESERVATION_TTL_MAX = 86400, /* expires_in_s: at most a day */
};

/* Built once by on_start, read-only afterwards (shared by every worker). */
struct catalog_ctx {
    struct kit_blob_store *blobs;  /* AGORA_BLOBS, default file:var/blobs */
    struct read_cache *cache;      /* public reads (read_cache.h); NULL when disabled */
    int64_t default_low_threshold; /* AGORA_PRODUCTS_LOW_STOCK: low-stock threshold by default */
    pthread_t expiry_thread;       /* releases expired reservations (inventory.c) */
    bool expiry_running;
};

struct catalog_ctx *catalog_ctx_of(struct kit_req *req);

/* True when code is an ISO 4217 alphabetic code in use ("EUR", "USD", "JPY"...). */
bool catalog_currency_valid(const char *code);
/*
 * A URL slug from a name: lowercase ASCII letters and digits, '-' between words, at most 120
 * bytes; non-ASCII letters lose their accents where Latin-1 has them, other bytes separate
 * words. out has room for 121 bytes. Returns false when nothing is left (the caller refuses).
 */
bool catalog_slugify(const char *name, char out[121]);
/* True for a client-given slug: [a-z0-9]+(-[a-z0-9]+)*, 1..120 bytes. */
bool catalog_slug_valid(const char *slug);

/* ---- products.c, search.c ---- */
int products_list(struct kit_req *req);
int products_get(struct kit_req *req);
/* kit_route.quick of the two above: an anonymous read answered from the read cache, on the
 * I/O thread; a miss (or no cache) leaves the request to the handler. */
int products_list_quick(struct kit_req *req);
int products_get_quick(struct kit_req *req);
int products_create(struct kit_req *req);
int products_replace(struct kit_req *req); /* PUT: every writable field */
int products_patch(struct kit_req *req);   /* PATCH: the fields given (JSON merge patch rules) */
int products_delete(struct kit_req *req);

/* What a product list is narrowed to by the path (GET /categories/{id}/products...). */
enum products_scope {
    PRODUCTS_SCOPE_NONE,
    PRODUCTS_SCOPE_CATEGORY, /* the category and its descendants */
    PRODUCTS_SCOPE_BRAND,
    PRODUCTS_SCOPE_TYPE,
    PRODUCTS_SCOPE_CATALOG,
    PRODUCTS_SCOPE_VAT_RATE,
};
/*
 * GET /products with every query parameter, narrowed to scope_id (already checked to exist in
 * the request's tenant by the caller) when scope is not NONE. Answers the page.
 */
int products_list_scoped(struct kit_req *req, enum products_scope scope, const char *scope_id);

/*
 * The product row id of the request's tenant as its JSON representation (with stock, images,
 * category and catalog ids). *out NULL when there is no such product. Used after writes.
 */
int products_load(struct kit_db *db, const char *tenant, const char *id, json_t **out,
                  struct ag_err *err);

/*
 * Inside tx: loads the product id of tenant and emits event (products.product.created /
 * .updated) with it as its data. Returns 0 with *out the product (a new reference the caller
 * owns) when out is not NULL; AG_ENOTFOUND ("vanished inside its transaction") when the row is
 * gone; or a database / event code (*out left alone).
 */
int products_emit(struct kit_db *tx, const char *tenant, const char *id, const char *event,
                  json_t **out, struct ag_err *err);

/* ---- taxonomy.c: categories, brands, types, catalogs, vat-rates ---- */
#define CATALOG_TAXONOMY_HANDLERS(res)                                                             \
    int res##_list(struct kit_req *req);                                                           \
    int res##_get(struct kit_req *req);                                                            \
    int res##_products(struct kit_req *req);                                                       \
    int res##_create(struct kit_req *req);                                                         \
    int res##_replace(struct kit_req *req);                                                        \
    int res##_patch(struct kit_req *req);                                                          \
    int res##_delete(struct kit_req *req);
CATALOG_TAXONOMY_HANDLERS(categories)
CATALOG_TAXONOMY_HANDLERS(brands)
CATALOG_TAXONOMY_HANDLERS(types)
CATALOG_TAXONOMY_HANDLERS(catalogs)
CATALOG_TAXONOMY_HANDLERS(vat_rates)

/* ---- images.c ---- */
int images_upload(struct kit_req *req);
int images_get(struct kit_req *req);
int images_delete(struct kit_req *req);

/* ---- inventory.c, reservations.c ---- */
int inventory_stock(struct kit_req *req);
int reservations_create(struct kit_req *req);
int reservations_get(struct kit_req *req);
int reservations_commit(struct kit_req *req);
int reservations_release(struct kit_req *req);
/* Starts / stops the thread that releases expired reservations (own database connection). */
int reservations_expiry_start(struct kit_app *app, struct catalog_ctx *ctx, struct ag_err *err);
void reservations_expiry_stop(struct catalog_ctx *ctx);

/*
 * Emits products.inventory.updated for the product row (and products.inventory.low when
 * available went from above its threshold to at or below it), inside tx. sku is the row's, as
 * read or returned by the caller's own statement (no extra query here).
 */
int inventory_emit(struct kit_db *tx, const char *product_id, const char *sku, int64_t on_hand,
                   int64_t reserved, int64_t available_before, int64_t low_threshold,
                   struct ag_err *err);

#endif
