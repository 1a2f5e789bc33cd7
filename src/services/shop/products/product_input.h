/*
 * agora-products: a product's request body (POST, PUT, PATCH) read into its writable fields and
 * checked (product_input.c), for products.c to store.
 */
#ifndef PRODUCTS_PRODUCT_INPUT_H
#define PRODUCTS_PRODUCT_INPUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog.h"

enum {
    PRODUCT_INPUT_NAME_MAX = 200, /* characters of a product's name */
};

/* A product's writable fields, checked. Strings are borrowed from the document read. */
struct product_input {
    const char *sku, *name, *description, *currency;
    const char *vat_rate_id, *brand_id, *type_id; /* NULL: none */
    char slug[121];
    int64_t amount, on_hand, low_threshold;
    bool active;
    char *category_ids, *catalog_ids; /* JSON arrays of ids as text (owned) */
    size_t category_count, catalog_count;
    char *attributes; /* a JSON object as text (owned) */
    char brand_name[PRODUCT_INPUT_NAME_MAX * 4 + 1];
};

/* Reads doc into in (zeroed); violations become errors[] entries. Returns 0 or AG_ENOMEM. */
int product_input_read(struct kit_req *req, const json_t *doc, bool with_stock,
                       struct product_input *in);

/* Checks in's ids against the tenant inside db's transaction. Returns 0 or a database code. */
int product_input_check_refs(struct kit_req *req, struct kit_db *db, struct product_input *in,
                             struct ag_err *err);

/* Frees what in owns, whatever product_input_read returned. */
void product_input_release(struct product_input *in);

#endif
