/*
 * agora-products: products — the Product read in one query, the list (search.c builds it), and
 * the admin writes, each one transaction with its products.product.* event.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "product_input.h"
#include "search.h"
#include "core/log.h"
#include "core/banned.h"

/* ---- reading ---- */

/*
 * The Product's columns over the alias p; the category and catalog ids and the images come from
 * subselects (one row per product, whatever it links to). Per driver: the aggregates differ.
 */
#define PRODUCT_COLUMNS                                                                            \
    "p.id, p.sku, p.name, p.slug, p.description, p.price_amount, p.currency, p.vat_rate_id, "      \
    "p.brand_id, p.type_id, p.attributes, p.on_hand, p.reserved, p.low_stock_threshold, "          \
    "p.active, p.created_at, p.updated_at, "
static const char columns_sqlite[] = PRODUCT_COLUMNS
    "(SELECT group_concat(category_id, ',') FROM (SELECT category_id FROM product_categories "
    "WHERE product_id = p.id ORDER BY category_id)), "
    "(SELECT group_concat(catalog_id, ',') FROM (SELECT catalog_id FROM product_catalogs "
    "WHERE product_id = p.id ORDER BY catalog_id)), "
    "(SELECT json_group_array(json_object('id', id, 'content_type', content_type, 'size', size, "
    "'created_at', created_at)) FROM (SELECT * FROM product_images WHERE product_id = p.id "
    "ORDER BY position, id))";
static const char columns_postgres[] = PRODUCT_COLUMNS
    "(SELECT string_agg(category_id, ',' ORDER BY category_id) FROM product_categories "
    "WHERE product_id = p.id), "
    "(SELECT string_agg(catalog_id, ',' ORDER BY catalog_id) FROM product_catalogs "
    "WHERE product_id = p.id), "
    "(SELECT json_agg(json_build_object('id', id, 'content_type', content_type, 'size', size, "
    "'created_at', created_at) ORDER BY position, id) FROM product_images WHERE product_id = p.id)";
enum {
    COL_ID,
    COL_SKU,
    COL_NAME,
    COL_SLUG,
    COL_DESCRIPTION,
    COL_AMOUNT,
    COL_CURRENCY,
    COL_VAT_RATE,
    COL_BRAND,
    COL_TYPE,
    COL_ATTRIBUTES,
    COL_ON_HAND,
    COL_RESERVED,
    COL_LOW,
    COL_ACTIVE,
    COL_CREATED,
    COL_UPDATED,
    COL_CATEGORIES,
    COL_CATALOGS,
    COL_IMAGES,
};

static const char *product_columns(const struct kit_db *db)
{
    return kit_db_driver(db) == KIT_DB_SQLITE ? columns_sqlite : columns_postgres;
}

static json_t *nullable_id(const struct kit_db_rows *rows, size_t r, size_t col)
{
    return kit_db_rows_null(rows, r, col) ? json_null() : kit_db_rows_json_text(rows, r, col);
}

/* "a,b,c" (ids have no commas) as ["a","b","c"]; "" as []. */
static json_t *id_list(const struct kit_db_rows *rows, size_t r, size_t col)
{
    size_t len = 0;
    const char *text = kit_db_rows_text(rows, r, col, &len);
    json_t *list = json_array();
    struct ag_str rest = {text, len}, head;
    while (list && rest.p && rest.len > 0) {
        rest = ag_str_split(rest, ',', &head);
        if (json_array_append_new(list, json_stringn(head.p, head.len)) < 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

/* The aggregated images ([{id, content_type, size, created_at}] or NULL) as Image objects. */
static json_t *image_list(const struct kit_db_rows *rows, size_t r, const char *product_id)
{
    size_t len = 0;
    const char *text = kit_db_rows_text(rows, r, COL_IMAGES, &len);
    json_t *images = json_array(), *raw = NULL, *item;
    size_t i;
    if (!images || len == 0 || strcmp(text, "[]") == 0)
        return images;
    raw = json_loadb(text, len, 0, NULL);
    json_array_foreach(raw, i, item)
    {
        const char *id = json_string_value(json_object_get(item, "id"));
        char url[160], created[32];
        snprintf(url, sizeof url, "/api/v1/products/%s/images/%s", product_id, id ? id : "");
        kit_time_rfc3339(json_integer_value(json_object_get(item, "created_at")), created);
        if (json_array_append_new(images,
                                  json_pack("{s:s?, s:O?, s:O?, s:s, s:s}", "id", id,
                                            "content_type", json_object_get(item, "content_type"),
                                            "size", json_object_get(item, "size"), "url", url,
                                            "created_at", created)) < 0) {
            json_decref(images);
            images = NULL;
            break;
        }
    }
    json_decref(raw);
    return images;
}

/* Row r of a query over the product columns as a Product (NULL when out of memory). */
static json_t *product_from_row(const struct kit_db_rows *rows, size_t r)
{
    int64_t on_hand = kit_db_rows_int(rows, r, COL_ON_HAND);
    int64_t reserved = kit_db_rows_int(rows, r, COL_RESERVED);
    const char *id = kit_db_rows_text(rows, r, COL_ID, NULL);
    json_t *attributes = json_loads(kit_db_rows_text(rows, r, COL_ATTRIBUTES, NULL), 0, NULL);
    if (!json_is_object(attributes)) {
        json_decref(attributes);
        attributes = json_object();
    }
    return json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:{s:I, s:o}, s:o, s:o, s:o, s:o, s:o, s:o, "
        "s:{s:I, s:I, s:I, s:I}, s:o, s:b, s:o, s:o}",
        "id", kit_db_rows_json_text(rows, r, COL_ID), "sku",
        kit_db_rows_json_text(rows, r, COL_SKU), "name", kit_db_rows_json_text(rows, r, COL_NAME),
        "slug", kit_db_rows_json_text(rows, r, COL_SLUG), "description",
        kit_db_rows_json_text(rows, r, COL_DESCRIPTION), "price", "amount",
        (json_int_t)kit_db_rows_int(rows, r, COL_AMOUNT), "currency",
        kit_db_rows_json_text(rows, r, COL_CURRENCY), "vat_rate_id",
        nullable_id(rows, r, COL_VAT_RATE), "brand_id", nullable_id(rows, r, COL_BRAND), "type_id",
        nullable_id(rows, r, COL_TYPE), "category_ids", id_list(rows, r, COL_CATEGORIES),
        "catalog_ids", id_list(rows, r, COL_CATALOGS), "attributes", attributes, "stock", "on_hand",
        (json_int_t)on_hand, "reserved", (json_int_t)reserved, "available",
        (json_int_t)(on_hand - reserved), "low_threshold",
        (json_int_t)kit_db_rows_int(rows, r, COL_LOW), "images", image_list(rows, r, id), "active",
        kit_db_rows_int(rows, r, COL_ACTIVE) != 0, "created_at",
        kit_db_rows_json_time(rows, r, COL_CREATED), "updated_at",
        kit_db_rows_json_time(rows, r, COL_UPDATED));
}

int products_load(struct kit_db *db, const char *tenant, const char *id, json_t **out,
                  struct ag_err *err)
{
    char sql[sizeof columns_sqlite + sizeof columns_postgres + 96];
    struct kit_db_rows *rows = NULL;
    int rc;

    *out = NULL;
    snprintf(sql, sizeof sql, "SELECT %s FROM products p WHERE p.tenant = $1 AND p.id = $2",
             product_columns(db));
    rc = kit_db_query(db, sql, KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(id)), 1, &rows, err);
    if (rc > 0) {
        *out = product_from_row(rows, 0);
        rc = *out ? 0 : ag_err_set(err, AG_ENOMEM, "out of memory building a product");
    }
    kit_db_rows_free(rows);
    return rc < 0 ? rc : 0;
}

int products_emit(struct kit_db *tx, const char *tenant, const char *id, const char *event,
                  json_t **out, struct ag_err *err)
{
    json_t *product = NULL;
    int rc = products_load(tx, tenant, id, &product, err);
    if (rc == 0 && !product)
        rc = ag_err_set(err, AG_ENOTFOUND, "product %s vanished inside its transaction", id);
    if (rc == 0)
        rc = kit_event_emit(tx, event, id, product, err);
    if (rc == 0 && out) {
        *out = product;
        product = NULL;
    }
    json_decref(product);
    return rc < 0 ? rc : 0;
}

/* ---- the read cache (read_cache.h): public reads only, as the bytes answered ---- */

/* The cache to use for this request: NULL for admins and services, who see what the public
 * does not (inactive products), and when the cache is off. */
static struct read_cache *cache_for(struct kit_req *req)
{
    if (kit_req_has_role(req, "admin") || kit_req_has_role(req, "service"))
        return NULL;
    return catalog_ctx_of(req)->cache;
}

/*
 * Answers 200 from the cache when it holds key. True when it answered. An entry due for a
 * refresh (READ_CACHE_REFRESH) is still answered, and the read is run again in the background
 * (kit_req_rerun_later) to store a new body; that re-run itself never reads the cache.
 */
static bool cache_answer(struct kit_req *req, struct read_cache *cache, const struct ag_buf *key)
{
    struct ag_buf body;
    bool hit = false;
    if (!cache || kit_req_is_rerun(req))
        return false;
    ag_buf_init(&body, 1 << 20);
    enum read_cache_result r = read_cache_get(cache, ag_buf_str(key), &body);
    if (r == READ_CACHE_REFRESH && kit_req_rerun_later(req) < 0)
        read_cache_refresh_cancel(cache, ag_buf_str(key)); /* busy: a later reader starts it */
    if (r != READ_CACHE_MISS) {
        struct ag_str b = ag_buf_str(&body);
        hit = kit_resp_raw(req, 200, "application/json", b.p, b.len) == 0;
    }
    ag_buf_release(&body);
    return hit;
}

/* Answers 200 with body (taken), and keeps its bytes under key when cache is set. */
static int cache_respond(struct kit_req *req, struct read_cache *cache, const struct ag_buf *key,
                         uint64_t generation, json_t *body)
{
    if (!cache || !body)
        return kit_resp_json(req, 200, body);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return AG_ENOMEM;
    size_t len = strlen(text);
    read_cache_put(cache, ag_buf_str(key), generation, text, len);
    int rc = kit_resp_raw(req, 200, "application/json", text, len);
    free(text);
    return rc;
}

/* The cache key of a product: its tenant and id. */
static int key_product(struct ag_buf *key, const struct kit_req *req, const char *id)
{
    return ag_buf_appendf(key, "p\n%s\n%s", kit_req_tenant(req), id);
}

/*
 * The cache key of a list: what decides the answer — the tenant, the path's scope and the query
 * string as sent. A key is only ever stored for a query string that parsed, so a hit needs no
 * parse of its own.
 */
static int key_list(struct ag_buf *key, struct kit_req *req, enum products_scope scope,
                    const char *scope_id)
{
    struct ag_str query = kit_req_query_string(req);
    return ag_buf_appendf(key, "l\n%s\n%d\n%s\n%.*s", kit_req_tenant(req), (int)scope,
                          scope_id ? scope_id : "", (int)query.len, query.p);
}

int products_get_quick(struct kit_req *req)
{
    struct read_cache *cache = catalog_ctx_of(req)->cache;
    const char *id = kit_req_param(req, "id");
    struct ag_buf key;
    if (!cache || !id || !kit_id_valid(id))
        return 0; /* the handler answers (or refuses) it */
    ag_buf_init(&key, 4096);
    if (key_product(&key, req, id) == 0)
        cache_answer(req, cache, &key);
    ag_buf_release(&key);
    return 0;
}

int products_list_quick(struct kit_req *req)
{
    struct read_cache *cache = catalog_ctx_of(req)->cache;
    struct ag_buf key;
    if (!cache)
        return 0;
    ag_buf_init(&key, 8192);
    if (key_list(&key, req, PRODUCTS_SCOPE_NONE, NULL) == 0)
        cache_answer(req, cache, &key);
    ag_buf_release(&key);
    return 0;
}

int products_get(struct kit_req *req)
{
    struct ag_err err = {0};
    struct read_cache *cache = cache_for(req);
    struct ag_buf key;
    json_t *product = NULL;
    const char *id;
    int rc = kit_req_param_id(req, "id", &id);
    if (rc < 0)
        return rc;
    ag_buf_init(&key, 4096);
    if (cache && key_product(&key, req, id) < 0)
        cache = NULL;
    if (cache_answer(req, cache, &key)) {
        ag_buf_release(&key);
        return 0;
    }
    uint64_t generation = read_cache_generation(cache);
    rc = products_load(kit_req_db(req), kit_req_tenant(req), id, &product, &err);
    if (rc < 0) {
        ag_buf_release(&key);
        return kit_req_db_fail(req, rc, &err);
    }
    /* An inactive product is hidden from the shop; admins and services still see it. */
    if (product && !json_is_true(json_object_get(product, "active")) &&
        !kit_req_has_role(req, "admin") && !kit_req_has_role(req, "service")) {
        json_decref(product);
        product = NULL;
    }
    if (!product)
        rc = kit_resp_problem(req, 404, "no such product");
    else
        rc = cache_respond(req, cache, &key, generation, product);
    ag_buf_release(&key);
    return rc;
}

/* ---- the list ---- */

int products_list_scoped(struct kit_req *req, enum products_scope scope, const char *scope_id)
{
    struct kit_db *db = kit_req_db(req);
    struct search_filters filters;
    struct search_sql sql;
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    struct read_cache *cache = cache_for(req);
    struct ag_buf key;
    json_t *items = NULL;
    int64_t total = 0;
    int rc = search_filters_parse(req, scope, scope_id, &filters);
    if (rc < 0)
        return rc;
    ag_buf_init(&key, 8192);
    if (cache && key_list(&key, req, scope, scope_id) < 0)
        cache = NULL;
    if (cache_answer(req, cache, &key)) {
        ag_buf_release(&key);
        return 0;
    }
    uint64_t generation = read_cache_generation(cache);
    search_sql_init(&sql);
    rc = search_sql_build(&sql, &filters, kit_db_driver(db), kit_req_tenant(req),
                          product_columns(db));
    if (rc < 0)
        goto out;
    rc = kit_db_query(db, ag_buf_str(&sql.page_sql).p, sql.params, sql.page_params, 0, &rows, &err);
    /* The total: in the page's rows (page_total); else a short page that is not past the end
     * is the last one and gives it by itself; else the count. */
    if (rc > 0 && sql.page_total)
        total = kit_db_rows_int(rows, 0, kit_db_rows_columns(rows) - 1);
    else if (rc >= 0 && (size_t)rc < (size_t)filters.page.per_page &&
             (rc > 0 || filters.page.offset == 0))
        total = filters.page.offset + rc;
    else if (rc >= 0)
        rc = kit_db_query_int(db, ag_buf_str(&sql.count_sql).p, sql.params, sql.count_params,
                              &total, &err);
    if (rc < 0) {
        rc = kit_req_db_fail(req, rc, &err);
        goto out;
    }
    rc = AG_ENOMEM;
    items = json_array();
    for (size_t r = 0; items && r < kit_db_rows_count(rows); r++)
        if (json_array_append_new(items, product_from_row(rows, r)) < 0)
            goto out;
    if (items) {
        json_t *page =
            json_pack("{s:o, s:I, s:I, s:I}", "items", items, "page", (json_int_t)filters.page.page,
                      "per_page", (json_int_t)filters.page.per_page, "total", (json_int_t)total);
        rc = page ? cache_respond(req, cache, &key, generation, page) : AG_ENOMEM;
    }
    items = NULL;
out:
    json_decref(items);
    kit_db_rows_free(rows);
    search_sql_release(&sql);
    ag_buf_release(&key);
    return rc;
}

int products_list(struct kit_req *req)
{
    return products_list_scoped(req, PRODUCTS_SCOPE_NONE, NULL);
}

/* ---- writing ---- */

/* Replaces the product's category and catalog links with in's. */
static int links_write(struct kit_db *db, const char *id, const struct product_input *in,
                       bool replace, struct ag_err *err)
{
    static const char *const sql_delete[2] = {
        "DELETE FROM product_categories WHERE product_id = $1",
        "DELETE FROM product_catalogs WHERE product_id = $1",
    };
    static const char *const sql_sqlite[2] = {
        "INSERT INTO product_categories (product_id, category_id) "
        "SELECT $1, value FROM json_each($2)",
        "INSERT INTO product_catalogs (product_id, catalog_id) SELECT $1, value FROM json_each($2)",
    };
    static const char *const sql_postgres[2] = {
        "INSERT INTO product_categories (product_id, category_id) "
        "SELECT $1::text, json_array_elements_text($2::json)",
        "INSERT INTO product_catalogs (product_id, catalog_id) "
        "SELECT $1::text, json_array_elements_text($2::json)",
    };
    const char *lists[2] = {in->category_ids, in->catalog_ids};
    const size_t counts[2] = {in->category_count, in->catalog_count};
    const char *const *insert = kit_db_driver(db) == KIT_DB_SQLITE ? sql_sqlite : sql_postgres;
    int rc = 0;
    for (size_t i = 0; rc >= 0 && i < 2; i++) {
        if (replace)
            rc = kit_db_exec(db, sql_delete[i], KIT_DB_PARAMS(KIT_DB_TEXT(id)), err);
        if (rc >= 0 && counts[i] > 0)
            rc = kit_db_exec(db, insert[i], KIT_DB_PARAMS(KIT_DB_TEXT(id), KIT_DB_TEXT(lists[i])),
                             err);
    }
    return rc < 0 ? rc : 0;
}

static int product_insert(struct kit_req *req, struct kit_db *db, const char *id,
                          const struct product_input *in, struct ag_err *err)
{
    static const char sql[] =
        "INSERT INTO products (id, tenant, sku, name, slug, description, price_amount, currency, "
        "vat_rate_id, brand_id, brand_name, type_id, attributes, on_hand, reserved, "
        "low_stock_threshold, active, created_at, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 0, $15, $16, $17, "
        "$17)";
    int rc = kit_db_exec(
        db, sql,
        KIT_DB_PARAMS(
            KIT_DB_TEXT(id), KIT_DB_TEXT(kit_req_tenant(req)), KIT_DB_TEXT(in->sku),
            KIT_DB_TEXT(in->name), KIT_DB_TEXT(in->slug), KIT_DB_TEXT(in->description),
            KIT_DB_INT(in->amount), KIT_DB_TEXT(in->currency), KIT_DB_TEXT(in->vat_rate_id),
            KIT_DB_TEXT(in->brand_id), KIT_DB_TEXT(in->brand_name), KIT_DB_TEXT(in->type_id),
            KIT_DB_TEXT(in->attributes), KIT_DB_INT(in->on_hand), KIT_DB_INT(in->low_threshold),
            KIT_DB_INT(in->active), KIT_DB_INT(kit_now_ms())),
        err);
    if (rc >= 0)
        rc = links_write(db, id, in, false, err);
    return rc < 0 ? rc : 0;
}

static int product_update(struct kit_req *req, struct kit_db *db, const char *id,
                          const struct product_input *in, struct ag_err *err)
{
    static const char sql[] =
        "UPDATE products SET sku = $3, name = $4, slug = $5, description = $6, price_amount = $7, "
        "currency = $8, vat_rate_id = $9, brand_id = $10, brand_name = $11, type_id = $12, "
        "attributes = $13, low_stock_threshold = $14, active = $15, updated_at = $16 "
        "WHERE tenant = $1 AND id = $2";
    int rc = kit_db_exec(db, sql,
                         KIT_DB_PARAMS(KIT_DB_TEXT(kit_req_tenant(req)), KIT_DB_TEXT(id),
                                       KIT_DB_TEXT(in->sku), KIT_DB_TEXT(in->name),
                                       KIT_DB_TEXT(in->slug), KIT_DB_TEXT(in->description),
                                       KIT_DB_INT(in->amount), KIT_DB_TEXT(in->currency),
                                       KIT_DB_TEXT(in->vat_rate_id), KIT_DB_TEXT(in->brand_id),
                                       KIT_DB_TEXT(in->brand_name), KIT_DB_TEXT(in->type_id),
                                       KIT_DB_TEXT(in->attributes), KIT_DB_INT(in->low_threshold),
                                       KIT_DB_INT(in->active), KIT_DB_INT(kit_now_ms())),
                         err);
    if (rc >= 0)
        rc = links_write(db, id, in, true, err);
    return rc < 0 ? rc : 0;
}

/* 1 when another product of the tenant than id (NULL: any) has sku; 0; or a database code. */
static int sku_taken(struct kit_req *req, struct kit_db *db, const char *sku, const char *id,
                     struct ag_err *err)
{
    int64_t n = 0;
    int rc = kit_db_query_int(db,
                              "SELECT COUNT(*) FROM products WHERE tenant = $1 AND sku = $2 AND "
                              "id <> $3",
                              KIT_DB_PARAMS(KIT_DB_TEXT(kit_req_tenant(req)), KIT_DB_TEXT(sku),
                                            KIT_DB_TEXT(id ? id : "")),
                              &n, err);
    return rc < 0 ? rc : n > 0;
}

/*
 * Inside the open transaction: the product id as stored now, its event, the commit, and the
 * answer (201 with Location when location is not NULL, else 200).
 */
static int product_finish(struct kit_req *req, struct kit_db *db, const char *id, const char *event,
                          const char *location, struct ag_err *err)
{
    json_t *product = NULL;
    int rc = products_emit(db, kit_req_tenant(req), id, event, &product, err);
    if (rc == 0)
        rc = kit_db_commit(db, err);
    if (rc < 0) {
        json_decref(product);
        return kit_req_db_fail(req, rc, err);
    }
    return location ? kit_resp_created(req, location, product) : kit_resp_json(req, 200, product);
}

/*
 * The checks that need the database and the write, inside the open transaction: answers
 * 422 / 409 after rolling back, or finishes with the event and the answer.
 */
static int product_save(struct kit_req *req, struct kit_db *db, const char *id,
                        struct product_input *in, bool create)
{
    struct ag_err err = {0};
    char location[80];
    int rc = product_input_check_refs(req, db, in, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    if (kit_req_invalid_count(req) > 0) {
        kit_db_rollback(db);
        return kit_resp_invalid(req);
    }
    rc = sku_taken(req, db, in->sku, create ? NULL : id, &err);
    if (rc == 1) {
        kit_db_rollback(db);
        return kit_resp_problem(req, 409, "another product has the sku \"%s\"", in->sku);
    }
    if (rc == 0)
        rc = create ? product_insert(req, db, id, in, &err) : product_update(req, db, id, in, &err);
    if (rc == AG_ECONFLICT) { /* a concurrent write took the sku or removed a linked object */
        kit_db_rollback(db);
        return kit_resp_problem(req, 409, "the product conflicts with a concurrent change: %s",
                                err.msg);
    }
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    snprintf(location, sizeof location, "/api/v1/products/%s", id);
    return product_finish(req, db, id,
                          create ? "products.product.created" : "products.product.updated",
                          create ? location : NULL, &err);
}

int products_create(struct kit_req *req)
{
    struct kit_db *db = kit_req_db(req);
    struct product_input in = {0};
    struct ag_err err = {0};
    char id[KIT_ID_LEN + 1];
    json_t *body;
    int rc = kit_req_json(req, &body);
    if (rc < 0)
        return rc;
    rc = product_input_read(req, body, true, &in);
    if (rc == 0 && kit_req_invalid_count(req) > 0)
        rc = kit_resp_invalid(req);
    else if (rc == 0 && (rc = kit_db_begin(db, &err)) < 0)
        rc = kit_req_db_fail(req, rc, &err);
    else if (rc == 0) {
        kit_id_new(id);
        rc = product_save(req, db, id, &in, true);
    }
    product_input_release(&in);
    return rc;
}

/*
 * Opens the transaction and locks the product id of the tenant (FOR UPDATE on PostgreSQL;
 * SQLite's BEGIN IMMEDIATE already holds the write lock). Returns 1 when it exists, with *sku
 * its sku (owned by the caller) unless sku is NULL; 0 after answering 404; or a database code
 * after kit_req_db_fail; AG_ENOMEM (rolled back, nothing answered) when the sku cannot be copied.
 */
static int product_lock(struct kit_req *req, const char *id, char **sku)
{
    static const char sql_sqlite[] = "SELECT sku FROM products WHERE tenant = $1 AND id = $2";
    static const char sql_postgres[] =
        "SELECT sku FROM products WHERE tenant = $1 AND id = $2 FOR UPDATE";
    struct kit_db *db = kit_req_db(req);
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    int rc = kit_db_begin(db, &err);
    if (rc >= 0)
        rc = kit_db_query(db, kit_db_driver(db) == KIT_DB_SQLITE ? sql_sqlite : sql_postgres,
                          KIT_DB_PARAMS(KIT_DB_TEXT(kit_req_tenant(req)), KIT_DB_TEXT(id)), 1,
                          &rows, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    if (rc == 0) {
        kit_db_rows_free(rows);
        kit_db_rollback(db);
        rc = kit_resp_problem(req, 404, "no such product");
        return rc < 0 ? rc : 0;
    }
    if (sku)
        *sku = strdup(kit_db_rows_text(rows, 0, 0, NULL));
    kit_db_rows_free(rows);
    if (sku && !*sku) {
        kit_db_rollback(db);
        return AG_ENOMEM;
    }
    return 1;
}

/* PUT and PATCH once the new document is known: doc replaces every writable field. */
static int product_replace_with(struct kit_req *req, const char *id, const json_t *doc)
{
    struct product_input in = {0};
    int rc = product_input_read(req, doc, false, &in);
    if (rc == 0 && kit_req_invalid_count(req) > 0) {
        kit_db_rollback(kit_req_db(req));
        rc = kit_resp_invalid(req);
    } else if (rc == 0) {
        rc = product_save(req, kit_req_db(req), id, &in, false);
    } else {
        kit_db_rollback(kit_req_db(req));
    }
    product_input_release(&in);
    return rc;
}

int products_replace(struct kit_req *req)
{
    const char *id;
    json_t *body;
    int rc = kit_req_param_id(req, "id", &id);
    if (rc == 0)
        rc = kit_req_json(req, &body);
    if (rc == 0)
        rc = product_lock(req, id, NULL);
    if (rc == 1)
        rc = product_replace_with(req, id, body);
    return rc;
}

/* RFC 7396 JSON merge patch of patch into target (both objects): null removes a member. */
static int merge_patch(json_t *target, const json_t *patch)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)patch, key, v)
    {
        json_t *current = json_object_get(target, key);
        int rc;
        if (json_is_null(v))
            rc = (json_object_del(target, key), 0); /* absent already: nothing to remove */
        else if (json_is_object(v) && json_is_object(current))
            rc = merge_patch(current, v);
        else
            rc = json_object_set(target, key, v) == 0 ? 0 : AG_ENOMEM;
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The stored product's writable fields, as a PUT body would give them. */
static json_t *product_writable(const json_t *product)
{
    static const char *const members[] = {
        "sku",      "name",    "slug",         "description", "price",      "vat_rate_id",
        "brand_id", "type_id", "category_ids", "catalog_ids", "attributes", "active",
    };
    json_t *doc = json_object();
    for (size_t i = 0; doc && i < sizeof members / sizeof members[0]; i++)
        if (json_object_set_new(doc, members[i],
                                json_deep_copy(json_object_get(product, members[i]))) < 0) {
            json_decref(doc);
            return NULL;
        }
    if (doc &&
        json_object_set(doc, "low_threshold",
                        json_object_get(json_object_get(product, "stock"), "low_threshold")) < 0) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

int products_patch(struct kit_req *req)
{
    struct kit_db *db = kit_req_db(req);
    struct ag_err err = {0};
    json_t *body, *product = NULL, *doc = NULL;
    const char *id;
    int rc = kit_req_param_id(req, "id", &id);
    if (rc == 0)
        rc = kit_req_json(req, &body);
    if (rc == 0)
        rc = product_lock(req, id, NULL);
    if (rc != 1)
        goto out;
    rc = products_load(db, kit_req_tenant(req), id, &product, &err);
    if (rc < 0) {
        rc = kit_req_db_fail(req, rc, &err);
        goto out;
    }
    doc = product ? product_writable(product) : NULL;
    if (!doc || merge_patch(doc, body) < 0) {
        kit_db_rollback(db);
        rc = AG_ENOMEM;
        goto out;
    }
    rc = product_replace_with(req, id, doc);
out:
    json_decref(doc);
    json_decref(product);
    return rc;
}

int products_delete(struct kit_req *req)
{
    static const char sql_held[] =
        "SELECT COUNT(*) FROM reservation_items i JOIN reservations r ON r.tenant = i.tenant AND "
        "r.id = i.reservation_id WHERE i.tenant = $1 AND i.product_id = $2 AND r.state = 'held'";
    static const char sql_blobs[] =
        "SELECT blob_key FROM product_images WHERE tenant = $1 AND product_id = $2";
    static const char sql_delete[] = "DELETE FROM products WHERE tenant = $1 AND id = $2";
    struct kit_db *db = kit_req_db(req);
    struct kit_db_rows *blobs = NULL;
    struct ag_err err = {0};
    const char *id, *tenant = kit_req_tenant(req);
    char *sku = NULL;
    int64_t held = 0;
    json_t *data = NULL;
    int rc = kit_req_param_id(req, "id", &id);
    if (rc == 0)
        rc = product_lock(req, id, &sku);
    if (rc != 1)
        goto out;
    rc = kit_db_query_int(db, sql_held, KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(id)), &held,
                          &err);
    if (rc >= 0 && held > 0) {
        kit_db_rollback(db);
        rc = kit_resp_problem(req, 409, "the product has units held by open reservations");
        goto out;
    }
    if (rc >= 0)
        rc = kit_db_query(db, sql_blobs, KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(id)), 0,
                          &blobs, &err);
    /* the links and image rows go with the product (ON DELETE CASCADE) */
    if (rc >= 0)
        rc = kit_db_exec(db, sql_delete, KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(id)), &err);
    data = json_pack("{s:s, s:s}", "id", id, "sku", sku);
    if (rc >= 0 && !data)
        rc = ag_err_set(&err, AG_ENOMEM, "out of memory");
    if (rc >= 0)
        rc = kit_event_emit(db, "products.product.deleted", id, data, &err);
    if (rc >= 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0) {
        rc = kit_req_db_fail(req, rc, &err);
        goto out;
    }
    /* The rows are gone: a blob left behind by a failed remove is unreachable, only wasted. */
    for (size_t r = 0; r < kit_db_rows_count(blobs); r++) {
        const char *key = kit_db_rows_text(blobs, r, 0, NULL);
        if (kit_blob_remove(catalog_ctx_of(req)->blobs, key, &err) < 0)
            ag_log_warn("an image blob outlived its product", AG_F_STR("key", key),
                        AG_F_STR("error", err.msg), AG_F_STR("request_id", kit_req_id(req)));
    }
    rc = kit_resp_status(req, 204);
out:
    kit_db_rows_free(blobs);
    json_decref(data);
    free(sku);
    return rc;
}
