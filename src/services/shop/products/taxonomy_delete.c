/*
 * agora-products: DELETE of a category, brand, type, catalog or VAT rate — refused while in use,
 * or with ?reassign_to= its products (and a category's children) moved to another object first.
 */
#include <stdio.h>
#include <string.h>

#include "taxonomy.h"
#include "core/banned.h"

/*
 * Moves the products of the object id to target (target_name: its name, for brand_name),
 * stamping them updated at now: a column set to target, or link rows moved with the duplicates
 * (products linked to both) merged. Returns 0 or the database codes.
 */
static int usage_move(struct kit_db *db, const struct taxonomy_kind *k, const char *tenant,
                      const char *id, const char *target, const char *target_name, int64_t now,
                      struct ag_err *err)
{
    char sql[TAXONOMY_SQL_MAX];
    int rc;

    if (k->product_column && k->names_products) {
        rc = taxonomy_sql_format(sql,
                                 "UPDATE products SET %s = $1, updated_at = $2, brand_name = $5 "
                                 "WHERE tenant = $3 AND %s = $4",
                                 k->product_column, k->product_column);
        if (rc == 0)
            rc =
                kit_db_exec(db, sql,
                            KIT_DB_PARAMS(KIT_DB_TEXT(target), KIT_DB_INT(now), KIT_DB_TEXT(tenant),
                                          KIT_DB_TEXT(id), KIT_DB_TEXT(target_name)),
                            err);
        return rc < 0 ? rc : 0;
    }
    if (k->product_column) {
        rc = taxonomy_sql_format(sql,
                                 "UPDATE products SET %s = $1, updated_at = $2 "
                                 "WHERE tenant = $3 AND %s = $4",
                                 k->product_column, k->product_column);
        if (rc == 0)
            rc = kit_db_exec(db, sql,
                             KIT_DB_PARAMS(KIT_DB_TEXT(target), KIT_DB_INT(now),
                                           KIT_DB_TEXT(tenant), KIT_DB_TEXT(id)),
                             err);
        return rc < 0 ? rc : 0;
    }
    rc = taxonomy_sql_format(sql,
                             "UPDATE products SET updated_at = $1 WHERE tenant = $2 AND id IN "
                             "(SELECT product_id FROM %s WHERE %s = $3)",
                             k->link_table, k->link_column);
    if (rc == 0)
        rc = kit_db_exec(db, sql,
                         KIT_DB_PARAMS(KIT_DB_INT(now), KIT_DB_TEXT(tenant), KIT_DB_TEXT(id)), err);
    /* The WHERE also keeps SQLite's parser from reading ON CONFLICT as a join constraint. */
    if (rc >= 0)
        rc = taxonomy_sql_format(sql,
                                 "INSERT INTO %s (product_id, %s) SELECT product_id, $1 FROM %s "
                                 "WHERE %s = $2 ON CONFLICT DO NOTHING",
                                 k->link_table, k->link_column, k->link_table, k->link_column);
    if (rc >= 0)
        rc = kit_db_exec(db, sql, KIT_DB_PARAMS(KIT_DB_TEXT(target), KIT_DB_TEXT(id)), err);
    if (rc >= 0)
        rc =
            taxonomy_sql_format(sql, "DELETE FROM %s WHERE %s = $1", k->link_table, k->link_column);
    if (rc >= 0)
        rc = kit_db_exec(db, sql, KIT_DB_PARAMS(KIT_DB_TEXT(id)), err);
    return rc < 0 ? rc : 0;
}

/*
 * Locks the object id and the reassignment target (NULL: none) in id order, so two deletes
 * reassigning to each other cannot deadlock. Returns the rows (id, name) found, or db codes.
 */
static int delete_lock(struct kit_db *db, const struct taxonomy_kind *k, const char *tenant,
                       const char *id, const char *target, struct kit_db_rows **rows,
                       struct ag_err *err)
{
    char sql[TAXONOMY_SQL_MAX];
    int rc =
        taxonomy_sql_format(sql,
                            "SELECT id, name FROM %s WHERE tenant = $1 AND id IN ($2, $3) "
                            "ORDER BY id%s",
                            k->table, kit_db_driver(db) == KIT_DB_POSTGRES ? " FOR UPDATE" : "");
    if (rc == 0)
        rc = kit_db_query(
            db, sql,
            KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(id), KIT_DB_TEXT(target ? target : id)),
            2, rows, err);
    return rc;
}

/*
 * DELETE /{id}[?reassign_to=other]: refused with 409 while products (or, for a category,
 * children) use the object, unless reassign_to names another object of the same resource to
 * take them over; all in one transaction.
 */
int taxonomy_delete(struct kit_req *req, const struct taxonomy_kind *k)
{
    struct kit_db *db = kit_req_db(req);
    struct kit_db_rows *locked = NULL, *ids = NULL;
    struct ag_err err = {0};
    const char *tenant = kit_req_tenant(req), *id, *problem = NULL, *target_name = NULL;
    const char *target = NULL;
    bool found = false, target_found = false;
    int64_t products = 0, children = 0, now = kit_now_ms();
    char sql[TAXONOMY_SQL_MAX], message[64];

    int rc = kit_req_param_id(req, "id", &id);
    if (rc == 0)
        rc = kit_req_query_once(req, "reassign_to", &target);
    if (rc < 0)
        return rc;
    if (target && !kit_id_valid(target))
        kit_req_invalid(req, "reassign_to", "must be the id of another object of this resource");
    else if (target && strcmp(target, id) == 0)
        kit_req_invalid(req, "reassign_to", "must not be the object being deleted");
    if (kit_req_invalid_count(req) > 0)
        return kit_resp_invalid(req);

    rc = kit_db_begin(db, &err);
    if (rc >= 0 && k->tree)
        rc = categories_tree_lock(db, tenant, &err);
    if (rc >= 0)
        rc = delete_lock(db, k, tenant, id, target, &locked, &err);
    if (rc < 0)
        goto db_fail;
    for (size_t r = 0; r < kit_db_rows_count(locked); r++) {
        if (strcmp(kit_db_rows_text(locked, r, 0, NULL), id) == 0) {
            found = true;
        } else {
            target_found = true;
            target_name = kit_db_rows_text(locked, r, 1, NULL);
        }
    }
    if (!found) {
        kit_db_rollback(db);
        rc = kit_resp_problem(req, 404, "no such %s", k->noun);
        goto out;
    }
    if (target && !target_found) {
        kit_db_rollback(db);
        snprintf(message, sizeof message, "no such %s", k->noun);
        kit_req_invalid(req, "reassign_to", message);
        rc = kit_resp_invalid(req);
        goto out;
    }
    rc = taxonomy_usage_count(db, k, tenant, id, &products, &err);
    if (rc >= 0 && k->tree)
        rc = categories_children_count(db, tenant, id, &children, &err);
    if (rc < 0)
        goto db_fail;
    if (!target && (products > 0 || children > 0)) {
        kit_db_rollback(db);
        if (k->tree)
            rc = kit_resp_problem(req, 409,
                                  "the category has %lld child categories and %lld products: "
                                  "delete with ?reassign_to=<another category's id> to move them",
                                  (long long)children, (long long)products);
        else
            rc = kit_resp_problem(req, 409,
                                  "the %s is used by %lld products: delete with "
                                  "?reassign_to=<another %s's id> to move them",
                                  k->noun, (long long)products, k->noun);
        goto out;
    }
    if (products > TAXONOMY_PRODUCTS_MAX) {
        kit_db_rollback(db);
        rc = kit_resp_problem(req, 409,
                              "the %s is used by %lld products: a reassignment moves at most %d",
                              k->noun, (long long)products, TAXONOMY_PRODUCTS_MAX);
        goto out;
    }
    if (children > 0) {
        rc = categories_move_check(db, tenant, id, target, true, &problem, &err);
        if (rc < 0)
            goto db_fail;
        if (problem) {
            kit_db_rollback(db);
            kit_req_invalid(req, "reassign_to", problem);
            rc = kit_resp_invalid(req);
            goto out;
        }
        rc = categories_reparent_children(db, tenant, id, target, now, &err);
    }
    if (rc >= 0 && products > 0)
        rc = taxonomy_usage_ids(db, k, tenant, id, &ids, &err);
    if (rc >= 0 && products > 0)
        rc = usage_move(db, k, tenant, id, target, target_name, now, &err);
    if (rc >= 0)
        rc = taxonomy_sql_format(sql, "DELETE FROM %s WHERE tenant = $1 AND id = $2", k->table);
    if (rc >= 0)
        rc = kit_db_exec(db, sql, KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(id)), &err);
    if (rc == AG_ECONFLICT) { /* a product took it up between the count and the delete */
        kit_db_rollback(db);
        rc = kit_resp_problem(req, 409, "the %s is still in use: try again", k->noun);
        goto out;
    }
    if (rc >= 0)
        rc = taxonomy_products_emit_updated(db, tenant, ids, &err);
    if (rc >= 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0)
        goto db_fail;
    read_cache_invalidate(catalog_ctx_of(req)->cache); /* lists scoped by what is gone */
    rc = kit_resp_status(req, 204);
    goto out;
db_fail:
    rc = kit_req_db_fail(req, rc, &err);
out:
    kit_db_rows_free(locked);
    kit_db_rows_free(ids);
    return rc;
}
