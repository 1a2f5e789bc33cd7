/*
 * agora-products: what classifies a product (categories, brands, types, catalogs, VAT rates):
 * one table-driven CRUD for the five (taxonomy.c, its deletes in taxonomy_delete.c) and the
 * category tree's rules (categories.c).
 */
#ifndef PRODUCTS_TAXONOMY_H
#define PRODUCTS_TAXONOMY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog.h"

enum {
    TAXONOMY_DEPTH_MAX = 32,       /* levels of the category tree; a root is level 1 */
    TAXONOMY_PRODUCTS_MAX = 10000, /* products one write may touch (reassignment, brand rename) */
    TAXONOMY_SQL_MAX = 1024,       /* bytes of a statement composed by taxonomy_sql_format */
};

/*
 * One resource, described for the generic handlers. The strings are SQL identifiers and fixed
 * text of this module (never request values), so they may be pasted into SQL text.
 */
struct taxonomy_kind {
    const char *table;   /* "brands" */
    const char *noun;    /* in messages: "brand", "VAT rate" */
    const char *path;    /* "/api/v1/brands", for Location */
    const char *columns; /* the select list of its JSON representation */
    enum products_scope scope;
    size_t name_max;     /* characters of name */
    bool slugged;        /* slug (unique per tenant) and description: all but VAT rates */
    bool tree;           /* parent_id and position: categories */
    bool rated;          /* rate_bp; name unique per tenant: VAT rates */
    bool names_products; /* products keep a copy of its name (brand_name, full-text) */
    /* How products refer to it: a column of products, or a link table's column. */
    const char *product_column; /* "brand_id", or NULL */
    const char *link_table;     /* "product_categories", or NULL */
    const char *link_column;    /* "category_id" */
};

/* ---- taxonomy.c: shared with taxonomy_delete.c ---- */

/* Formats a statement of the kind's identifiers into sql. Returns 0, or AG_ERANGE if too long. */
__attribute__((format(printf, 2, 3))) int taxonomy_sql_format(char sql[TAXONOMY_SQL_MAX],
                                                              const char *fmt, ...);

/* The number of the tenant's products that use the object id into *out. Returns 0 or db codes. */
int taxonomy_usage_count(struct kit_db *db, const struct taxonomy_kind *k, const char *tenant,
                         const char *id, int64_t *out, struct ag_err *err);

/* The ids of the tenant's products that use the object id into *out. Returns ≥ 0 or db codes. */
int taxonomy_usage_ids(struct kit_db *db, const struct taxonomy_kind *k, const char *tenant,
                       const char *id, struct kit_db_rows **out, struct ag_err *err);

/*
 * Emits products.product.updated for each product of ids (may be NULL), inside the caller's
 * transaction. Returns 0, AG_ENOTFOUND when one vanished inside it, or db / event codes.
 */
int taxonomy_products_emit_updated(struct kit_db *db, const char *tenant,
                                   const struct kit_db_rows *ids, struct ag_err *err);

/* ---- taxonomy_delete.c ---- */

/* DELETE /{id}[?reassign_to=other] of an object of k: answers 204, 404, 409 or 422. */
int taxonomy_delete(struct kit_req *req, const struct taxonomy_kind *k);

/* ---- categories.c: the tree ---- */

/*
 * Serialises the category tree writes of tenant, inside db's open transaction, so that two
 * concurrent moves cannot both pass the cycle check: a transaction-scoped advisory lock on
 * PostgreSQL; nothing on SQLite, whose BEGIN IMMEDIATE already serialises writers.
 * Returns 0 or the codes of kit_db_query.
 */
int categories_tree_lock(struct kit_db *db, const char *tenant, struct ag_err *err);

/*
 * Whether the category moved_id (NULL: a new leaf) — or, with children_only, only its
 * children — may hang under parent_id in tenant: parent_id exists there, is neither moved_id
 * nor one of its descendants (no cycle), and the deepest node moved stays within
 * TAXONOMY_DEPTH_MAX levels. Call inside the write transaction after categories_tree_lock.
 * Returns 0 with *problem NULL when allowed, or set to a message for a 422; the codes of
 * kit_db_query.
 */
int categories_move_check(struct kit_db *db, const char *tenant, const char *moved_id,
                          const char *parent_id, bool children_only, const char **problem,
                          struct ag_err *err);

/* The number of direct children of category id in tenant into *out. Returns 0 or db codes. */
int categories_children_count(struct kit_db *db, const char *tenant, const char *id, int64_t *out,
                              struct ag_err *err);

/*
 * Hangs every child of category id under new_parent (already checked with
 * categories_move_check, children_only) and stamps them updated at now_ms.
 * Returns the number moved or the codes of kit_db_exec.
 */
int categories_reparent_children(struct kit_db *db, const char *tenant, const char *id,
                                 const char *new_parent, int64_t now_ms, struct ag_err *err);

#endif
