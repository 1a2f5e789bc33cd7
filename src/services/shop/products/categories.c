/* agora-products: the category tree's rules — no cycles, at most 32 levels, moves serialised. */
#include <string.h>

#include "taxonomy.h"
#include "core/banned.h"

int categories_tree_lock(struct kit_db *db, const char *tenant, struct ag_err *err)
{
    /* The key is per tenant; a hash collision between two tenants only serialises them. */
    static const char sql[] =
        "SELECT pg_advisory_xact_lock(hashtext(CAST($1 AS TEXT) || CAST($2 AS TEXT)))";
    struct kit_db_rows *rows = NULL;

    if (kit_db_driver(db) != KIT_DB_POSTGRES)
        return 0;
    int rc = kit_db_query(
        db, sql, KIT_DB_PARAMS(KIT_DB_TEXT("agora-products:categories:"), KIT_DB_TEXT(tenant)), 1,
        &rows, err);
    kit_db_rows_free(rows);
    return rc < 0 ? rc : 0;
}

/*
 * The ancestors of id in tenant, id first and the root last, at most TAXONOMY_DEPTH_MAX + 1 of
 * them (the walk stops there: deeper than the bound is refused anyway, and a corrupt cycle in
 * the data cannot make it loop). Returns the number of rows (0: no such category) and *out.
 */
static int category_ancestors(struct kit_db *db, const char *tenant, const char *id,
                              struct kit_db_rows **out, struct ag_err *err)
{
    static const char sql[] =
        "WITH RECURSIVE up (id, parent_id, depth) AS ("
        " SELECT id, parent_id, 1 FROM categories WHERE tenant = $1 AND id = $2"
        " UNION ALL"
        " SELECT c.id, c.parent_id, up.depth + 1 FROM categories c JOIN up ON c.id = up.parent_id"
        " WHERE c.tenant = $1 AND up.depth <= $3)"
        " SELECT id FROM up ORDER BY depth";
    return kit_db_query(
        db, sql,
        KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(id), KIT_DB_INT(TAXONOMY_DEPTH_MAX)),
        TAXONOMY_DEPTH_MAX + 1, out, err);
}

/* The levels of the subtree under id, id included (1: a leaf), bounded as above. */
static int category_height(struct kit_db *db, const char *tenant, const char *id, int64_t *out,
                           struct ag_err *err)
{
    static const char sql[] =
        "WITH RECURSIVE down (id, depth) AS ("
        " SELECT id, 1 FROM categories WHERE tenant = $1 AND id = $2"
        " UNION ALL"
        " SELECT c.id, down.depth + 1 FROM categories c JOIN down ON c.parent_id = down.id"
        " WHERE c.tenant = $1 AND down.depth <= $3)"
        " SELECT COALESCE(MAX(depth), 0) FROM down";
    return kit_db_query_int(
        db, sql,
        KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(id), KIT_DB_INT(TAXONOMY_DEPTH_MAX)), out,
        err);
}

int categories_move_check(struct kit_db *db, const char *tenant, const char *moved_id,
                          const char *parent_id, bool children_only, const char **problem,
                          struct ag_err *err)
{
    struct kit_db_rows *chain = NULL;
    int64_t height = 1;

    *problem = NULL;
    int rc = category_ancestors(db, tenant, parent_id, &chain, err);
    if (rc < 0)
        goto out;
    if (rc == 0) {
        *problem = "no such category";
        goto out;
    }
    for (size_t i = 0; moved_id && i < kit_db_rows_count(chain); i++) {
        if (strcmp(kit_db_rows_text(chain, i, 0, NULL), moved_id) != 0)
            continue;
        if (i == 0)
            *problem = "must not be the category itself";
        else
            *problem = "must not be a descendant of the category (that would make a cycle)";
        goto out;
    }
    if (moved_id) {
        rc = category_height(db, tenant, moved_id, &height, err);
        if (rc < 0)
            goto out;
    }
    /* Moving only the children puts them one level higher than they were below moved_id. */
    if ((int64_t)kit_db_rows_count(chain) + height - (children_only ? 1 : 0) > TAXONOMY_DEPTH_MAX)
        *problem = "the category tree would be deeper than 32 levels";
    rc = 0;
out:
    kit_db_rows_free(chain);
    return rc < 0 ? rc : 0;
}

int categories_children_count(struct kit_db *db, const char *tenant, const char *id, int64_t *out,
                              struct ag_err *err)
{
    static const char sql[] =
        "SELECT COUNT(*) FROM categories WHERE tenant = $1 AND parent_id = $2";
    return kit_db_query_int(db, sql, KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(id)), out, err);
}

int categories_reparent_children(struct kit_db *db, const char *tenant, const char *id,
                                 const char *new_parent, int64_t now_ms, struct ag_err *err)
{
    static const char sql[] = "UPDATE categories SET parent_id = $1, updated_at = $2 "
                              "WHERE tenant = $3 AND parent_id = $4";
    return kit_db_exec(db, sql,
                       KIT_DB_PARAMS(KIT_DB_TEXT(new_parent), KIT_DB_INT(now_ms),
                                     KIT_DB_TEXT(tenant), KIT_DB_TEXT(id)),
                       err);
}
