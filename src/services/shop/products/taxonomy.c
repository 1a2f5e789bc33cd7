/*
 * agora-products: categories, brands, types, catalogs and VAT rates — one CRUD driven by a
 * table of resource descriptions; the category tree's own rules live in categories.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "taxonomy.h"
#include "core/buf.h"
#include "core/banned.h"

enum {
    DESCRIPTION_MAX = 2000, /* characters of a description */
    POSITION_MAX = 1000000, /* a category's place among its siblings */
    RATE_BP_MAX = 10000,    /* basis points: 100 % */
};

static const struct taxonomy_kind kind_categories = {
    .table = "categories",
    .noun = "category",
    .path = "/api/v1/categories",
    .columns = "id, parent_id, name, slug, description, position, created_at, updated_at",
    .scope = PRODUCTS_SCOPE_CATEGORY,
    .name_max = 100,
    .slugged = true,
    .tree = true,
    .link_table = "product_categories",
    .link_column = "category_id",
};
static const struct taxonomy_kind kind_brands = {
    .table = "brands",
    .noun = "brand",
    .path = "/api/v1/brands",
    .columns = "id, name, slug, description, created_at, updated_at",
    .scope = PRODUCTS_SCOPE_BRAND,
    .name_max = 100,
    .slugged = true,
    .names_products = true,
    .product_column = "brand_id",
};
static const struct taxonomy_kind kind_types = {
    .table = "types",
    .noun = "type",
    .path = "/api/v1/types",
    .columns = "id, name, slug, description, created_at, updated_at",
    .scope = PRODUCTS_SCOPE_TYPE,
    .name_max = 100,
    .slugged = true,
    .product_column = "type_id",
};
static const struct taxonomy_kind kind_catalogs = {
    .table = "catalogs",
    .noun = "catalog",
    .path = "/api/v1/catalogs",
    .columns = "id, name, slug, description, created_at, updated_at",
    .scope = PRODUCTS_SCOPE_CATALOG,
    .name_max = 100,
    .slugged = true,
    .link_table = "product_catalogs",
    .link_column = "catalog_id",
};
static const struct taxonomy_kind kind_vat_rates = {
    .table = "vat_rates",
    .noun = "VAT rate",
    .path = "/api/v1/vat-rates",
    .columns = "id, name, rate_bp, created_at, updated_at",
    .scope = PRODUCTS_SCOPE_VAT_RATE,
    .name_max = 64,
    .rated = true,
    .product_column = "vat_rate_id",
};

/* ---- SQL text and rows ---- */

/*
 * Composes a statement into sql from fmt and the kind's identifiers (fixed strings of this
 * file, never request values: those are always $N parameters). Returns 0, or AG_ERANGE when
 * it does not fit (a bug: every statement here is far shorter).
 */
__attribute__((format(printf, 2, 3))) int taxonomy_sql_format(char sql[TAXONOMY_SQL_MAX],
                                                              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sql, TAXONOMY_SQL_MAX, fmt, ap);
    va_end(ap);
    return n < 0 || n >= TAXONOMY_SQL_MAX ? AG_ERANGE : 0;
}

/* "FROM ... WHERE ..." selecting the products (alias p) of tenant $1 that use the object $2. */
static int usage_from(const struct taxonomy_kind *k, char out[TAXONOMY_SQL_MAX])
{
    if (k->product_column)
        return taxonomy_sql_format(out, "FROM products p WHERE p.tenant = $1 AND p.%s = $2",
                                   k->product_column);
    return taxonomy_sql_format(out,
                               "FROM products p JOIN %s l ON l.product_id = p.id "
                               "WHERE p.tenant = $1 AND l.%s = $2",
                               k->link_table, k->link_column);
}

static size_t column_index(const struct kit_db_rows *rows, const char *name)
{
    for (size_t c = 0; c < kit_db_rows_columns(rows); c++)
        if (strcmp(kit_db_rows_name(rows, c), name) == 0)
            return c;
    return (size_t)-1;
}

/* A column of row 0 by name: its text, NULL when SQL NULL (or no such column). */
static const char *row_text(const struct kit_db_rows *rows, const char *name)
{
    size_t c = column_index(rows, name);
    if (c == (size_t)-1 || kit_db_rows_null(rows, 0, c))
        return NULL;
    return kit_db_rows_text(rows, 0, c, NULL);
}

static int64_t row_int(const struct kit_db_rows *rows, const char *name)
{
    size_t c = column_index(rows, name);
    return c == (size_t)-1 ? 0 : kit_db_rows_int(rows, 0, c);
}

/* Row r of a select of k->columns as the object's JSON representation (NULL: out of memory). */
static json_t *row_json(const struct kit_db_rows *rows, size_t r)
{
    json_t *obj = json_object();
    for (size_t c = 0; obj && c < kit_db_rows_columns(rows); c++) {
        const char *col = kit_db_rows_name(rows, c);
        json_t *v;
        if (strcmp(col, "created_at") == 0 || strcmp(col, "updated_at") == 0)
            v = kit_db_rows_json_time(rows, r, c);
        else if (strcmp(col, "position") == 0 || strcmp(col, "rate_bp") == 0)
            v = json_integer(kit_db_rows_int(rows, r, c));
        else if (kit_db_rows_null(rows, r, c))
            v = json_null();
        else
            v = kit_db_rows_json_text(rows, r, c);
        if (!v || json_object_set_new(obj, col, v) < 0) {
            json_decref(obj);
            obj = NULL;
        }
    }
    return obj;
}

/*
 * Reads the object id of tenant into *rows (k->columns; row-locked on PostgreSQL when lock,
 * which needs an open transaction). Returns 1, 0 when there is none, or the database codes.
 */
static int object_read(struct kit_db *db, const struct taxonomy_kind *k, const char *tenant,
                       const char *id, bool lock, struct kit_db_rows **rows, struct ag_err *err)
{
    char sql[TAXONOMY_SQL_MAX];
    int rc = taxonomy_sql_format(sql, "SELECT %s FROM %s WHERE tenant = $1 AND id = $2%s",
                                 k->columns, k->table,
                                 lock && kit_db_driver(db) == KIT_DB_POSTGRES ? " FOR UPDATE" : "");
    if (rc == 0)
        rc = kit_db_query(db, sql, KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(id)), 1, rows,
                          err);
    return rc;
}

/* Answers the object id as stored now: 200, or 201 with Location when created; 404 if gone. */
static int object_respond(struct kit_req *req, const struct taxonomy_kind *k, const char *id,
                          bool created)
{
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    char location[128];
    int rc = object_read(kit_req_db(req), k, kit_req_tenant(req), id, false, &rows, &err);
    if (rc < 0) {
        rc = kit_req_db_fail(req, rc, &err);
    } else if (rc == 0) {
        rc = kit_resp_problem(req, 404, "no such %s", k->noun);
    } else if (created) {
        snprintf(location, sizeof location, "%s/%s", k->path, id);
        rc = kit_resp_created(req, location, row_json(rows, 0));
    } else {
        rc = kit_resp_json(req, 200, row_json(rows, 0));
    }
    kit_db_rows_free(rows);
    return rc;
}

/* ---- reads ---- */

static int object_list(struct kit_req *req, const struct taxonomy_kind *k)
{
    static const char *const sorts[] = {"name", "-created_at", NULL};
    static const char *const tree_sorts[] = {"name", "-created_at", "position", NULL};
    struct kit_db *db = kit_req_db(req);
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    struct kit_page page;
    const char *tenant = kit_req_tenant(req), *sort = NULL, *parent = NULL, *filter = "";
    const char *order;
    char sql_count[TAXONOMY_SQL_MAX], sql_page[TAXONOMY_SQL_MAX];
    int64_t total = 0;
    json_t *items = NULL;

    int rc = kit_req_page(req, &page);
    if (rc == 0)
        rc = kit_req_query_enum(req, "sort", k->tree ? tree_sorts : sorts, "name", &sort);
    if (rc == 0 && k->tree)
        rc = kit_req_query_once(req, "parent_id", &parent);
    if (rc < 0)
        return rc;
    if (parent) {
        if (strcmp(parent, "root") == 0) {
            filter = " AND parent_id IS NULL";
            parent = NULL;
        } else if (kit_id_valid(parent)) {
            filter = " AND parent_id = $2";
        } else {
            return kit_resp_query_invalid(req, "parent_id", "must be a category id or root");
        }
    }
    if (strcmp(sort, "-created_at") == 0)
        order = "created_at DESC, id DESC";
    else if (strcmp(sort, "position") == 0)
        order = "position, name, id";
    else
        order = "name, id";
    /* PostgreSQL wants every parameter passed to be used: LIMIT and OFFSET follow the filter's. */
    rc = taxonomy_sql_format(sql_count, "SELECT COUNT(*) FROM %s WHERE tenant = $1%s", k->table,
                             filter);
    if (rc == 0)
        rc = taxonomy_sql_format(
            sql_page, "SELECT %s FROM %s WHERE tenant = $1%s ORDER BY %s LIMIT $%d OFFSET $%d",
            k->columns, k->table, filter, order, parent ? 3 : 2, parent ? 4 : 3);
    if (rc < 0)
        return rc;
    if (parent)
        rc = kit_db_query_int(
            db, sql_count, KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(parent)), &total, &err);
    else
        rc = kit_db_query_int(db, sql_count, KIT_DB_PARAMS(KIT_DB_TEXT(tenant)), &total, &err);
    if (rc >= 0 && parent)
        rc = kit_db_query(db, sql_page,
                          KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(parent),
                                        KIT_DB_INT(page.per_page), KIT_DB_INT(page.offset)),
                          0, &rows, &err);
    else if (rc >= 0)
        rc = kit_db_query(
            db, sql_page,
            KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_INT(page.per_page), KIT_DB_INT(page.offset)),
            0, &rows, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    items = json_array();
    for (size_t r = 0; items && r < kit_db_rows_count(rows); r++) {
        json_t *item = row_json(rows, r);
        if (!item || json_array_append_new(items, item) < 0) {
            json_decref(items);
            items = NULL;
        }
    }
    kit_db_rows_free(rows);
    if (!items)
        return AG_ENOMEM;
    return kit_resp_page(req, items, &page, total);
}

static int object_get(struct kit_req *req, const struct taxonomy_kind *k)
{
    const char *id;
    int rc = kit_req_param_id(req, "id", &id);
    if (rc < 0)
        return rc;
    return object_respond(req, k, id, false);
}

static int object_products(struct kit_req *req, const struct taxonomy_kind *k)
{
    struct ag_err err = {0};
    const char *id;
    char sql[TAXONOMY_SQL_MAX];
    int64_t found = 0;

    int rc = kit_req_param_id(req, "id", &id);
    if (rc < 0)
        return rc;
    rc =
        taxonomy_sql_format(sql, "SELECT COUNT(*) FROM %s WHERE tenant = $1 AND id = $2", k->table);
    if (rc == 0)
        rc = kit_db_query_int(kit_req_db(req), sql,
                              KIT_DB_PARAMS(KIT_DB_TEXT(kit_req_tenant(req)), KIT_DB_TEXT(id)),
                              &found, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    if (found == 0)
        return kit_resp_problem(req, 404, "no such %s", k->noun);
    return products_list_scoped(req, k->scope, id);
}

/* ---- writes ---- */

enum write_mode { WRITE_CREATE, WRITE_REPLACE, WRITE_PATCH };

/* The writable fields of an object, from the body over the current row or the defaults. */
struct object_values {
    const char *name, *slug, *description, *parent_id; /* parent_id NULL: a root */
    int64_t position, rate_bp;
    char slug_made[121]; /* the slug made from the name when none is given */
};

static bool text_blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t')
            return false;
    return true;
}

/*
 * Checks the body's members, their types and the rules that need no database; each violation
 * becomes a kit_req_invalid entry. PUT and POST need every required member; PATCH none.
 */
static void body_check(struct kit_req *req, const struct taxonomy_kind *k, const json_t *body,
                       enum write_mode mode)
{
    bool full = mode != WRITE_PATCH;
    struct kit_field fields[6];
    size_t n = 0;

    fields[n++] = (struct kit_field){"name", JSON_STRING, full, 1, k->name_max, 0, 0};
    if (k->slugged) {
        /* no length here: catalog_slug_valid says everything about a slug in one message */
        fields[n++] = (struct kit_field){"slug", JSON_STRING, false, 0, 0, 0, 0};
        fields[n++] =
            (struct kit_field){"description", JSON_STRING, false, 0, DESCRIPTION_MAX, 0, 0};
    }
    if (k->tree) {
        /* parent_id is an id or null (a root): the type expected follows the value given */
        json_type parent =
            json_is_null(json_object_get(body, "parent_id")) ? JSON_NULL : JSON_STRING;
        fields[n++] = (struct kit_field){"parent_id", parent, false, 0, 0, 0, 0};
        fields[n++] = (struct kit_field){"position", JSON_INTEGER, false, 0, 0, 0, POSITION_MAX};
    }
    if (k->rated)
        fields[n++] = (struct kit_field){"rate_bp", JSON_INTEGER, full, 0, 0, 0, RATE_BP_MAX};
    kit_req_fields(req, body, fields, n);

    const char *name = json_string_value(json_object_get(body, "name"));
    const char *slug = json_string_value(json_object_get(body, "slug"));
    const char *parent = json_string_value(json_object_get(body, "parent_id"));
    if (name && *name && text_blank(name))
        kit_req_invalid(req, "name", "must not be blank");
    if (k->slugged && slug && !catalog_slug_valid(slug))
        kit_req_invalid(req, "slug",
                        "must be 1 to 120 lowercase letters and digits, in words joined by '-'");
    if (k->tree && parent && !kit_id_valid(parent))
        kit_req_invalid(req, "parent_id", "must be a category id or null");
}

/*
 * Fills v from body (checked) over current (PATCH: the row being changed) or the defaults
 * (POST, PUT: absent members take their default; an absent slug is made from the name).
 * Strings point into body or current. Records a kit_req_invalid entry when no slug can be
 * made from the name.
 */
static void values_merge(struct kit_req *req, const struct taxonomy_kind *k, const json_t *body,
                         const struct kit_db_rows *current, struct object_values *v)
{
    json_t *m;

    memset(v, 0, sizeof *v);
    v->description = "";
    if (current) {
        v->name = row_text(current, "name");
        v->slug = row_text(current, "slug");
        v->description = k->slugged ? row_text(current, "description") : "";
        v->parent_id = row_text(current, "parent_id");
        v->position = row_int(current, "position");
        v->rate_bp = row_int(current, "rate_bp");
    }
    if ((m = json_object_get(body, "name")) != NULL)
        v->name = json_string_value(m);
    if ((m = json_object_get(body, "slug")) != NULL)
        v->slug = json_string_value(m);
    if ((m = json_object_get(body, "description")) != NULL)
        v->description = json_string_value(m);
    if ((m = json_object_get(body, "parent_id")) != NULL)
        v->parent_id = json_string_value(m); /* NULL for null: a root */
    if ((m = json_object_get(body, "position")) != NULL)
        v->position = json_integer_value(m);
    if ((m = json_object_get(body, "rate_bp")) != NULL)
        v->rate_bp = json_integer_value(m);
    if (k->slugged && !v->slug) {
        if (catalog_slugify(v->name, v->slug_made))
            v->slug = v->slug_made;
        else
            kit_req_invalid(req, "name",
                            "holds no letter or digit to make a slug from: give a slug");
    }
}

/*
 * Inserts (create) or updates the object id of tenant with v. Parameters $1 id, $2 tenant,
 * $3 now, then the writable columns from $4. Returns the rows changed or the database codes
 * (AG_ECONFLICT: the slug, or a VAT rate's name, is taken).
 */
static int object_store(struct kit_db *db, const struct taxonomy_kind *k, bool create,
                        const char *tenant, const char *id, int64_t now,
                        const struct object_values *v, struct ag_err *err)
{
    const char *names[6];
    struct kit_db_value params[3 + 6];
    size_t n = 0;
    struct ag_buf sql;
    int rc = 0;

    names[n] = "name";
    params[3 + n++] = KIT_DB_TEXT(v->name);
    if (k->slugged) {
        names[n] = "slug";
        params[3 + n++] = KIT_DB_TEXT(v->slug);
        names[n] = "description";
        params[3 + n++] = KIT_DB_TEXT(v->description);
    }
    if (k->tree) {
        names[n] = "parent_id";
        params[3 + n++] = KIT_DB_TEXT(v->parent_id);
        names[n] = "position";
        params[3 + n++] = KIT_DB_INT(v->position);
    }
    if (k->rated) {
        names[n] = "rate_bp";
        params[3 + n++] = KIT_DB_INT(v->rate_bp);
    }
    params[0] = KIT_DB_TEXT(id);
    params[1] = KIT_DB_TEXT(tenant);
    params[2] = KIT_DB_INT(now);

    ag_buf_init(&sql, TAXONOMY_SQL_MAX);
    if (create) {
        rc = ag_buf_appendf(&sql, "INSERT INTO %s (id, tenant, created_at, updated_at", k->table);
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = ag_buf_appendf(&sql, ", %s", names[i]);
        if (rc == 0)
            rc = ag_buf_appendf(&sql, ") VALUES ($1, $2, $3, $3");
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = ag_buf_appendf(&sql, ", $%zu", 4 + i);
        if (rc == 0)
            rc = ag_buf_appendf(&sql, ")");
    } else {
        rc = ag_buf_appendf(&sql, "UPDATE %s SET updated_at = $3", k->table);
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = ag_buf_appendf(&sql, ", %s = $%zu", names[i], 4 + i);
        if (rc == 0)
            rc = ag_buf_appendf(&sql, " WHERE id = $1 AND tenant = $2");
    }
    if (rc == 0)
        rc = ag_buf_append(&sql, "", 1); /* the NUL */
    if (rc == 0)
        rc = kit_db_exec(db, sql.data, params, 3 + n, err);
    ag_buf_release(&sql);
    return rc;
}

/* The 409 for a taken slug (or VAT rate name). */
static int answer_taken(struct kit_req *req, const struct taxonomy_kind *k,
                        const struct object_values *v)
{
    if (k->slugged)
        return kit_resp_problem(req, 409, "another %s has the slug \"%s\"", k->noun, v->slug);
    return kit_resp_problem(req, 409, "another %s is named \"%s\"", k->noun, v->name);
}

/* The number of the tenant's products that use the object id into *out. */
int taxonomy_usage_count(struct kit_db *db, const struct taxonomy_kind *k, const char *tenant,
                         const char *id, int64_t *out, struct ag_err *err)
{
    char from[TAXONOMY_SQL_MAX], sql[TAXONOMY_SQL_MAX];
    int rc = usage_from(k, from);
    if (rc == 0)
        rc = taxonomy_sql_format(sql, "SELECT COUNT(*) %s", from);
    if (rc == 0)
        rc = kit_db_query_int(db, sql, KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(id)), out,
                              err);
    return rc;
}

/* The ids of the tenant's products that use the object id (at most TAXONOMY_PRODUCTS_MAX). */
int taxonomy_usage_ids(struct kit_db *db, const struct taxonomy_kind *k, const char *tenant,
                       const char *id, struct kit_db_rows **out, struct ag_err *err)
{
    char from[TAXONOMY_SQL_MAX], sql[TAXONOMY_SQL_MAX];
    int rc = usage_from(k, from);
    if (rc == 0)
        rc = taxonomy_sql_format(sql, "SELECT p.id %s ORDER BY p.id", from);
    if (rc == 0)
        rc = kit_db_query(db, sql, KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(id)),
                          TAXONOMY_PRODUCTS_MAX, out, err);
    return rc;
}

/* Emits products.product.updated, with the product as it is now, for each product of ids. */
int taxonomy_products_emit_updated(struct kit_db *db, const char *tenant,
                                   const struct kit_db_rows *ids, struct ag_err *err)
{
    int rc = 0;
    for (size_t r = 0; rc >= 0 && ids && r < kit_db_rows_count(ids); r++)
        rc = products_emit(db, tenant, kit_db_rows_text(ids, r, 0, NULL),
                           "products.product.updated", NULL, err);
    return rc < 0 ? rc : 0;
}

/*
 * A brand renamed: its products' copy of the name (searched in full text) follows, in the same
 * transaction, each product stamped and announced. Returns 0, 1 after answering 409 (too many
 * products: rolled back), or the database codes.
 */
static int brand_rename_products(struct kit_req *req, const char *id, const char *name, int64_t now,
                                 struct ag_err *err)
{
    static const char sql[] = "UPDATE products SET brand_name = $1, updated_at = $2 "
                              "WHERE tenant = $3 AND brand_id = $4";
    struct kit_db *db = kit_req_db(req);
    struct kit_db_rows *ids = NULL;
    const char *tenant = kit_req_tenant(req);
    int64_t count = 0;

    int rc = taxonomy_usage_count(db, &kind_brands, tenant, id, &count, err);
    if (rc >= 0 && count > TAXONOMY_PRODUCTS_MAX) {
        kit_db_rollback(db);
        kit_resp_problem(req, 409,
                         "the brand names %lld products: renaming updates at most %d at once",
                         (long long)count, TAXONOMY_PRODUCTS_MAX);
        return 1;
    }
    if (rc >= 0 && count > 0)
        rc = taxonomy_usage_ids(db, &kind_brands, tenant, id, &ids, err);
    if (rc >= 0 && count > 0)
        rc = kit_db_exec(
            db, sql,
            KIT_DB_PARAMS(KIT_DB_TEXT(name), KIT_DB_INT(now), KIT_DB_TEXT(tenant), KIT_DB_TEXT(id)),
            err);
    if (rc >= 0)
        rc = taxonomy_products_emit_updated(db, tenant, ids, err);
    kit_db_rows_free(ids);
    return rc < 0 ? rc : 0;
}

/* POST (create), PUT (replace) and PATCH of one object, in one transaction. */
static int object_write(struct kit_req *req, const struct taxonomy_kind *k, enum write_mode mode)
{
    struct kit_db *db = kit_req_db(req);
    struct kit_db_rows *current = NULL;
    struct ag_err err = {0};
    struct object_values v;
    const char *tenant = kit_req_tenant(req), *id = NULL, *problem = NULL;
    char new_id[KIT_ID_LEN + 1];
    json_t *body = NULL;
    int64_t now = kit_now_ms();
    int rc;

    if (mode == WRITE_CREATE) {
        kit_id_new(new_id);
        id = new_id;
    } else if ((rc = kit_req_param_id(req, "id", &id)) < 0) {
        return rc;
    }
    rc = kit_req_json(req, &body);
    if (rc < 0)
        return rc;
    body_check(req, k, body, mode);
    if (kit_req_invalid_count(req) > 0)
        return kit_resp_invalid(req);

    rc = kit_db_begin(db, &err);
    if (rc >= 0 && k->tree)
        rc = categories_tree_lock(db, tenant, &err);
    if (rc >= 0 && mode != WRITE_CREATE) {
        rc = object_read(db, k, tenant, id, true, &current, &err);
        if (rc == 0) {
            kit_db_rollback(db);
            rc = kit_resp_problem(req, 404, "no such %s", k->noun);
            goto out;
        }
    }
    if (rc < 0)
        goto db_fail;
    values_merge(req, k, body, mode == WRITE_PATCH ? current : NULL, &v);
    if (k->tree && v.parent_id && kit_req_invalid_count(req) == 0) {
        const char *before = current ? row_text(current, "parent_id") : NULL;
        if (!before || strcmp(before, v.parent_id) != 0)
            rc = categories_move_check(db, tenant, current ? id : NULL, v.parent_id, false,
                                       &problem, &err);
        if (rc < 0)
            goto db_fail;
        if (problem)
            kit_req_invalid(req, "parent_id", problem);
    }
    if (kit_req_invalid_count(req) > 0) {
        kit_db_rollback(db);
        rc = kit_resp_invalid(req);
        goto out;
    }
    rc = object_store(db, k, mode == WRITE_CREATE, tenant, id, now, &v, &err);
    if (rc == AG_ECONFLICT) {
        kit_db_rollback(db);
        rc = answer_taken(req, k, &v);
        goto out;
    }
    if (rc >= 0 && k->names_products && current && strcmp(v.name, row_text(current, "name")) != 0) {
        rc = brand_rename_products(req, id, v.name, now, &err);
        if (rc == 1) { /* answered */
            rc = AG_EINVAL;
            goto out;
        }
    }
    if (rc >= 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0)
        goto db_fail;
    /* a moved category changes the lists filtered by its ancestors, with no product event */
    read_cache_invalidate(catalog_ctx_of(req)->cache);
    rc = object_respond(req, k, id, mode == WRITE_CREATE);
    goto out;
db_fail:
    rc = kit_req_db_fail(req, rc, &err);
out:
    kit_db_rows_free(current);
    return rc;
}

/* ---- the handlers of catalog.h, one set per resource ---- */

#define TAXONOMY_HANDLERS(res, kind)                                                               \
    int res##_list(struct kit_req *req)                                                            \
    {                                                                                              \
        return object_list(req, &(kind));                                                          \
    }                                                                                              \
    int res##_get(struct kit_req *req)                                                             \
    {                                                                                              \
        return object_get(req, &(kind));                                                           \
    }                                                                                              \
    int res##_products(struct kit_req *req)                                                        \
    {                                                                                              \
        return object_products(req, &(kind));                                                      \
    }                                                                                              \
    int res##_create(struct kit_req *req)                                                          \
    {                                                                                              \
        return object_write(req, &(kind), WRITE_CREATE);                                           \
    }                                                                                              \
    int res##_replace(struct kit_req *req)                                                         \
    {                                                                                              \
        return object_write(req, &(kind), WRITE_REPLACE);                                          \
    }                                                                                              \
    int res##_patch(struct kit_req *req)                                                           \
    {                                                                                              \
        return object_write(req, &(kind), WRITE_PATCH);                                            \
    }                                                                                              \
    int res##_delete(struct kit_req *req)                                                          \
    {                                                                                              \
        return taxonomy_delete(req, &(kind));                                                      \
    }

TAXONOMY_HANDLERS(categories, kind_categories)
TAXONOMY_HANDLERS(brands, kind_brands)
TAXONOMY_HANDLERS(types, kind_types)
TAXONOMY_HANDLERS(catalogs, kind_catalogs)
TAXONOMY_HANDLERS(vat_rates, kind_vat_rates)
