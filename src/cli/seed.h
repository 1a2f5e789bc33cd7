/* `agora seed`: loads a demo catalog through the gateway's public API (data in seed_data.c). */
#ifndef CLI_SEED_H
#define CLI_SEED_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/platform.h"
#include "core/err.h"

/* ---- the demo catalog (seed_data.c) ---- */

/* The classifications a product refers to, in the order they are created. */
enum seed_kind {
    SEED_VAT_RATE,
    SEED_BRAND,
    SEED_TYPE,
    SEED_CATALOG,
    SEED_CATEGORY,
    SEED_KIND_COUNT,
};

enum {
    SEED_TAXA_MAX = 32, /* objects of one kind */
    SEED_ID_SIZE = 64,  /* room for an id the service returns (a UUID is 36 bytes) */
    SEED_PRODUCTS_MAX = 1000000,
    SEED_DEFAULT_PRODUCTS = 240, /* agora seed, and agora up --seed */
    SEED_DEFAULT_CONCURRENCY = 4,
};

/* One classification object to create (or find). */
struct seed_taxon {
    const char *name;
    const char *slug;        /* NULL for VAT rates, which are found by name */
    const char *description; /* NULL for VAT rates */
    int parent;              /* categories: index of the parent in the same table, -1 for a root */
    int rate_bp;             /* VAT rates: basis points (2000 = 20 %) */
};

/* The objects of one kind and where the API keeps them. */
struct seed_resource {
    const char *path;  /* "/api/v1/categories" */
    const char *label; /* "categories", for messages */
    const struct seed_taxon *items;
    size_t count;
};

/* The resource of each kind (kind < SEED_KIND_COUNT). */
const struct seed_resource *seed_resource(enum seed_kind kind);

/* The ids the service gave each object: ids[kind][index], "" when not known yet. */
struct seed_ids {
    char id[SEED_KIND_COUNT][SEED_TAXA_MAX][SEED_ID_SIZE];
};

/*
 * The body of POST /api/v1/products for product number index (0-based): a SKU "DEMO-000001"
 * (index + 1), a generated name, description, EUR price, brand, type, VAT rate, category,
 * catalogs, attributes and stock. The same index always gives the same product (a PRNG seeded
 * by the index). Returns a new reference, or NULL when out of memory.
 */
json_t *seed_product_json(uint64_t index, const struct seed_ids *ids);

/* ---- running a seed (seed.c) ---- */

struct seed_options {
    const char *url;      /* the gateway: "http://host:port" */
    const char *token;    /* an admin token of the tenant to seed */
    uint64_t products;    /* products to create: 1..SEED_PRODUCTS_MAX */
    unsigned concurrency; /* product creations in flight at once: 1..64 */
    bool only_if_empty;   /* do nothing when the tenant has a product already (agora up --seed) */
    bool progress;        /* a line on stderr about every 2 s while products are created */
    atomic_bool *cancel;  /* when it turns true the seed stops early with AG_ECLOSED; may be NULL */
};

struct seed_result {
    uint64_t created[SEED_KIND_COUNT]; /* objects created, by kind */
    uint64_t found[SEED_KIND_COUNT];   /* objects already there, reused */
    uint64_t products_created;
    uint64_t products_found; /* 409: a product with that SKU was there already */
    uint64_t existing_total; /* only_if_empty: the products the tenant had (then nothing ran) */
    bool skipped;            /* only_if_empty and the catalog was not empty */
    double seconds;          /* the whole run */
    double product_seconds;  /* creating the products, for the rate */
};

/*
 * Creates the demo catalog through the API at opt->url, idempotently: classification objects
 * already there (by slug, VAT rates by name) are reused, products whose SKU exists (409) are
 * counted as found. Fills *res as it goes (also on failure). Returns 0; AG_EUNAVAIL when the
 * gateway cannot be reached, AG_EPROTO when a call is refused or answers nonsense (err holds
 * the call and the problem's detail), AG_ECLOSED when cancelled, AG_EINVAL for a bad option.
 */
int seed_run(const struct seed_options *opt, struct seed_result *res, struct ag_err *err);

/* The one-line summary of a run ("seeded 240 products (0 already there), ..."). */
void seed_summary(const struct seed_result *res, char *out, size_t size);

/*
 * agora seed [--config FILE] [--url URL] [--products N] [--tenant T] [--concurrency C]: mints
 * an admin token the way agora token does and runs seed_run. Returns 0, 1 on failure, 2 for
 * usage.
 */
int cmd_seed(int argc, char **argv);
/* The gateway's URL: the platform's `gateway` process url, else http://127.0.0.1:8080. */
const char *seed_gateway_url(const struct platform *p);

void cmd_seed_help(void);

#endif
