/* agora-products: the shop's catalog — products, their classification, images and inventory. */
#include <stdio.h>
#include <stdlib.h>

#include "catalog.h"
#include "search_rank.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/banned.h"

#define ADMIN   KIT_ROLE("admin")
#define SERVICE KIT_ROLE("admin,service")

#define TAXONOMY_ROUTES(path, res)                                                                 \
    {"GET", "/api/v1/" path, res##_list, KIT_PUBLIC, NULL},                                        \
        {"POST", "/api/v1/" path, res##_create, ADMIN, NULL},                                      \
        {"GET", "/api/v1/" path "/{id}", res##_get, KIT_PUBLIC, NULL},                             \
        {"PUT", "/api/v1/" path "/{id}", res##_replace, ADMIN, NULL},                              \
        {"PATCH", "/api/v1/" path "/{id}", res##_patch, ADMIN, NULL},                              \
        {"DELETE", "/api/v1/" path "/{id}", res##_delete, ADMIN, NULL},                            \
    {                                                                                              \
        "GET", "/api/v1/" path "/{id}/products", res##_products, KIT_PUBLIC, NULL                  \
    }

static const struct kit_route routes[] = {
    {"GET", "/api/v1/products", products_list, KIT_PUBLIC, products_list_quick},
    {"POST", "/api/v1/products", products_create, ADMIN, NULL},
    {"GET", "/api/v1/products/{id}", products_get, KIT_PUBLIC, products_get_quick},
    {"PUT", "/api/v1/products/{id}", products_replace, ADMIN, NULL},
    {"PATCH", "/api/v1/products/{id}", products_patch, ADMIN, NULL},
    {"DELETE", "/api/v1/products/{id}", products_delete, ADMIN, NULL},
    {"POST", "/api/v1/products/{id}/stock", inventory_stock, ADMIN, NULL},
    {"POST", "/api/v1/products/{id}/images", images_upload, ADMIN, NULL},
    {"GET", "/api/v1/products/{id}/images/{image_id}", images_get, KIT_PUBLIC, NULL},
    {"DELETE", "/api/v1/products/{id}/images/{image_id}", images_delete, ADMIN, NULL},
    {"POST", "/api/v1/inventory/reservations", reservations_create, SERVICE, NULL},
    {"GET", "/api/v1/inventory/reservations/{id}", reservations_get, SERVICE, NULL},
    {"POST", "/api/v1/inventory/reservations/{id}/commit", reservations_commit, SERVICE, NULL},
    {"DELETE", "/api/v1/inventory/reservations/{id}", reservations_release, SERVICE, NULL},
    TAXONOMY_ROUTES("categories", categories),
    TAXONOMY_ROUTES("brands", brands),
    TAXONOMY_ROUTES("types", types),
    TAXONOMY_ROUTES("catalogs", catalogs),
    TAXONOMY_ROUTES("vat-rates", vat_rates),
};

static const struct kit_setting settings[] = {
    {"AGORA_BLOBS", "file:var/blobs", "where product images are stored (file:PATH)"},
    {"AGORA_PRODUCTS_LOW_STOCK", "5",
     "a new product's low-stock threshold (products.inventory.low), 0..1000000000"},
    {"AGORA_PRODUCTS_CACHE_MB", "64",
     "memory for cached public reads (a product, a list or search page), 0..4096; 0: no cache"},
    {"AGORA_PRODUCTS_CACHE_TTL_MS", "10000",
     "how long a cached read lives (1..60000): bounds how long another replica's change is "
     "unseen; this process's own changes drop the cache at once; from half of it on, the next "
     "read is answered from the cache and run again in the background to refresh it"},
};

/* Reads an integer setting in [min, max] into *out (unset: keeps *out). */
static int setting_int(struct kit_app *app, const char *env, int64_t min, int64_t max, int64_t *out,
                       struct ag_err *err)
{
    const char *text = kit_app_setting(app, env);
    char *end = NULL;
    if (!text || !*text)
        return 0;
    long long v = strtoll(text, &end, 10);
    if (*end || v < min || v > max)
        return ag_err_set(err, AG_EINVAL, "%s: expected an integer from %lld to %lld, got \"%s\"",
                          env, (long long)min, (long long)max, text);
    *out = v;
    return 0;
}

/*
 * agora_products_cache_hits_total: the public reads answered from the read cache;
 * agora_products_cache_refreshes_total: its entries read again ahead of their expiry.
 */
static int cache_counters_register(struct read_cache *cache, struct ag_err *err)
{
    static const struct {
        const char *name, *help;
    } counters[2] = {
        {"agora_products_cache_hits_total", "Public catalog reads answered from the read cache."},
        {"agora_products_cache_refreshes_total",
         "Read cache entries read again from the database ahead of their expiry."},
    };
    struct ag_series *series[2] = {NULL, NULL};
    for (size_t i = 0; i < 2; i++) {
        struct ag_metric *metric = NULL;
        int rc = ag_metrics_counter(ag_metrics_default(), counters[i].name, counters[i].help, NULL,
                                    0, 0, &metric, err);
        if (rc == 0 && (rc = ag_metric_series(metric, NULL, &series[i])) < 0)
            rc = ag_err_set(err, rc, "cannot create the series of %s", counters[i].name);
        if (rc < 0)
            return rc;
    }
    read_cache_count(cache, series[0], series[1]);
    return 0;
}

static int catalog_start(struct kit_app *app, struct ag_err *err)
{
    struct catalog_ctx *ctx = calloc(1, sizeof *ctx);
    const char *blobs = kit_app_setting(app, "AGORA_BLOBS");
    int64_t cache_mb = 64, ttl_ms = 10000;
    int rc;

    if (!ctx)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    ctx->default_low_threshold = 5;
    rc = setting_int(app, "AGORA_PRODUCTS_LOW_STOCK", 0, CATALOG_QUANTITY_MAX,
                     &ctx->default_low_threshold, err);
    if (rc == 0)
        rc = setting_int(app, "AGORA_PRODUCTS_CACHE_MB", 0, 4096, &cache_mb, err);
    if (rc == 0)
        rc = setting_int(app, "AGORA_PRODUCTS_CACHE_TTL_MS", 1, 60000, &ttl_ms, err);
    if (rc == 0 && read_cache_new((size_t)cache_mb << 20, ttl_ms, &ctx->cache) < 0)
        rc = ag_err_set(err, AG_ENOMEM, "out of memory for the read cache");
    if (rc == 0)
        rc = cache_counters_register(ctx->cache, err);
    if (rc == 0)
        rc = kit_blob_open(blobs && *blobs ? blobs : "file:var/blobs", &ctx->blobs, err);
    if (rc == 0)
        rc = reservations_expiry_start(app, ctx, err);
    if (rc < 0) {
        kit_blob_close(ctx->blobs);
        read_cache_free(ctx->cache);
        free(ctx);
        return rc;
    }
    ag_log_info("products ready", AG_F_STR("blobs", blobs ? blobs : "file:var/blobs"),
                AG_F_INT("low_stock_default", ctx->default_low_threshold),
                AG_F_INT("cache_mb", cache_mb), AG_F_INT("cache_ttl_ms", ttl_ms));
    kit_app_set_data(app, ctx);
    return 0;
}

/* A commit that changed the catalog (it emitted an event): cached reads may be stale. */
static void catalog_events_committed(struct kit_app *app)
{
    struct catalog_ctx *ctx = kit_app_data(app);
    if (ctx)
        read_cache_invalidate(ctx->cache);
}

static void catalog_stop(struct kit_app *app)
{
    struct catalog_ctx *ctx = kit_app_data(app);

    if (!ctx)
        return;
    reservations_expiry_stop(ctx);
    kit_blob_close(ctx->blobs);
    read_cache_free(ctx->cache);
    free(ctx);
    kit_app_set_data(app, NULL);
}

static const struct kit_service service = {
    .name = "products",
    .summary = "Agora catalog: products, categories, brands, types, catalogs, VAT rates, images "
               "and inventory",
    .routes = routes,
    .route_count = sizeof routes / sizeof routes[0],
    .migrations = kit_embedded_migrations,
    .migration_count = 0, /* set in main: the count is a link-time constant, not a C constant */
    .settings = settings,
    .setting_count = sizeof settings / sizeof settings[0],
    .on_start = catalog_start,
    .on_stop = catalog_stop,
    .on_events_committed = catalog_events_committed,
};

int main(int argc, char **argv)
{
    struct kit_service svc = service;
    svc.migration_count = kit_embedded_migration_count;
    /* before any connection opens: the SQLite search ranks with products_rank */
    if (search_rank_register() < 0) {
        fprintf(stderr, "agora-products: out of memory registering products_rank\n");
        return 1;
    }
    return kit_main(&svc, argc, argv);
}
