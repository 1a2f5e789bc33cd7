/* Roles: list, create, read, replace, delete, add permissions; builtin roles keep their names. */
#include "roles.h"

#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "context.h"
#include "validate.h"
#include "core/banned.h"

enum { COL_ID, COL_NAME, COL_DESCRIPTION, COL_BUILTIN, COL_CREATED, COL_PERMISSION };

#define ROLE_COLUMNS "r.id, r.name, r.description, r.builtin, r.created_at, rp.permission"

/* Builds the role objects of rows (sorted by role then permission) into a new array. */
static json_t *roles_from_rows(const struct kit_db_rows *rows)
{
    json_t *items = json_array(), *role = NULL;
    const char *last_id = NULL;
    if (!items)
        return NULL;
    for (size_t r = 0; r < kit_db_rows_count(rows); r++) {
        const char *id = kit_db_rows_text(rows, r, COL_ID, NULL);
        if (!last_id || strcmp(id, last_id) != 0) {
            role = json_pack("{s:o, s:o, s:o, s:[], s:b, s:o}", "id",
                             kit_db_rows_json_text(rows, r, COL_ID), "name",
                             kit_db_rows_json_text(rows, r, COL_NAME), "description",
                             kit_db_rows_json_text(rows, r, COL_DESCRIPTION), "permissions",
                             "builtin", kit_db_rows_int(rows, r, COL_BUILTIN) != 0, "created_at",
                             kit_db_rows_json_time(rows, r, COL_CREATED));
            if (!role || json_array_append_new(items, role) < 0)
                goto fail;
            last_id = id;
        }
        if (!kit_db_rows_null(rows, r, COL_PERMISSION) &&
            json_array_append_new(json_object_get(role, "permissions"),
                                  kit_db_rows_json_text(rows, r, COL_PERMISSION)) < 0)
            goto fail;
    }
    return items;
fail:
    json_decref(items);
    return NULL;
}

/* Reads one role of tenant: 0 and *out (NULL when none), or a database code. */
static int role_load(struct kit_db *db, const char *tenant, const char *id, json_t **out,
                     struct ag_err *err)
{
    static const char sql[] = "SELECT " ROLE_COLUMNS " FROM roles r LEFT JOIN role_permissions "
                              "rp ON rp.role_id = r.id WHERE r.id = $1 AND r.tenant = $2 "
                              "ORDER BY rp.permission";
    struct kit_db_rows *rows = NULL;
    json_t *items = NULL;
    *out = NULL;
    int rc =
        kit_db_query(db, sql, KIT_DB_PARAMS(KIT_DB_TEXT(id), KIT_DB_TEXT(tenant)), 0, &rows, err);
    if (rc <= 0)
        goto out;
    items = roles_from_rows(rows);
    if (!items) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory building a role");
        goto out;
    }
    *out = json_incref(json_array_get(items, 0));
out:
    json_decref(items);
    kit_db_rows_free(rows);
    return rc < 0 ? rc : 0;
}

/* Answers 200 (or 201 with Location) with the role id as stored now. */
static int role_respond(struct kit_req *req, const char *id, int status)
{
    struct ag_err err = {0};
    json_t *role = NULL;
    char location[80];
    int rc = role_load(kit_req_db(req), kit_req_tenant(req), id, &role, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    if (!role)
        return kit_resp_problem(req, 404, "no such role");
    if (status != 201)
        return kit_resp_json(req, status, role);
    snprintf(location, sizeof location, "/api/v1/auth/roles/%s", id);
    return kit_resp_created(req, location, role);
}

/* Checks the permissions array member of body (when present): strings matching the rule. */
static void permissions_check(struct kit_req *req, const json_t *body)
{
    const json_t *list = json_object_get(body, "permissions"), *item;
    size_t i;
    char field[40];
    if (!json_is_array(list))
        return; /* absent, or the wrong type (kit_req_fields said so) */
    if (json_array_size(list) > AUTH_PERMISSIONS_MAX)
        kit_req_invalid(req, "permissions", "must hold at most 100 permissions");
    json_array_foreach(list, i, item)
    {
        if (json_is_string(item) && auth_permission_valid(json_string_value(item)))
            continue;
        snprintf(field, sizeof field, "permissions[%zu]", i);
        kit_req_invalid(req, field, "must match ^[a-z][a-z0-9_.:-]{0,63}$");
    }
}

/* Adds every permission of body's list to role_id (duplicates are ignored). */
static int permissions_add(struct kit_db *db, const char *role_id, const json_t *body,
                           struct ag_err *err)
{
    static const char sql[] = "INSERT INTO role_permissions (role_id, permission) VALUES ($1, $2) "
                              "ON CONFLICT DO NOTHING";
    const json_t *list = json_object_get(body, "permissions"), *item;
    size_t i;
    json_array_foreach(list, i, item)
    {
        int rc = kit_db_exec(
            db, sql, KIT_DB_PARAMS(KIT_DB_TEXT(role_id), KIT_DB_TEXT(json_string_value(item))),
            err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Reads body's role members and checks them; 0 when valid, else the 422 was answered. */
static int role_body(struct kit_req *req, json_t **body)
{
    static const struct kit_field fields[] = {
        {"name", JSON_STRING, true, 0, 0, 0, 0},
        {"description", JSON_STRING, false, 0, AUTH_DESCRIPTION_MAX, 0, 0},
        {"permissions", JSON_ARRAY, false, 0, 0, 0, 0},
    };
    int rc = kit_req_json(req, body);
    if (rc < 0)
        return rc;
    kit_req_fields(req, *body, fields, sizeof fields / sizeof fields[0]);
    const char *name = json_string_value(json_object_get(*body, "name"));
    if (name && !auth_role_name_valid(name))
        kit_req_invalid(req, "name", "must match ^[a-z][a-z0-9_-]{1,31}$");
    permissions_check(req, *body);
    if (kit_req_invalid_count(req) > 0) {
        kit_resp_invalid(req);
        return AG_EINVAL;
    }
    return 0;
}

static const char *body_description(const json_t *body)
{
    const char *d = json_string_value(json_object_get(body, "description"));
    return d ? d : "";
}

int auth_roles_list(struct kit_req *req)
{
    static const char sql_count[] = "SELECT COUNT(*) FROM roles WHERE tenant = $1";
    static const char sql_page[] =
        "SELECT " ROLE_COLUMNS " FROM (SELECT * FROM roles WHERE tenant = $1 ORDER BY name "
        "LIMIT $2 OFFSET $3) r LEFT JOIN role_permissions rp ON rp.role_id = r.id "
        "ORDER BY r.name, rp.permission";
    struct kit_db *db = kit_req_db(req);
    struct kit_db_rows *rows = NULL;
    struct kit_page page;
    struct ag_err err = {0};
    const char *tenant = kit_req_tenant(req);
    int64_t total = 0;
    json_t *items;

    int rc = kit_req_page(req, &page);
    if (rc < 0)
        return rc;
    rc = kit_db_query_int(db, sql_count, KIT_DB_PARAMS(KIT_DB_TEXT(tenant)), &total, &err);
    if (rc >= 0)
        rc = kit_db_query(
            db, sql_page,
            KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_INT(page.per_page), KIT_DB_INT(page.offset)),
            0, &rows, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    items = roles_from_rows(rows);
    kit_db_rows_free(rows);
    if (!items)
        return AG_ENOMEM;
    return kit_resp_page(req, items, &page, total);
}

int auth_role_create(struct kit_req *req)
{
    static const char sql[] = "INSERT INTO roles (id, tenant, name, description, builtin, "
                              "created_at, updated_at) VALUES ($1, $2, $3, $4, 0, $5, $5)";
    struct kit_db *db = kit_req_db(req);
    struct ag_err err = {0};
    const char *tenant = kit_req_tenant(req);
    char id[KIT_ID_LEN + 1];
    json_t *body = NULL;

    int rc = role_body(req, &body);
    if (rc < 0)
        return rc;
    const char *name = json_string_value(json_object_get(body, "name"));
    kit_id_new(id);
    rc = kit_db_begin(db, &err);
    if (rc >= 0)
        rc = kit_db_exec(db, sql,
                         KIT_DB_PARAMS(AUTH_DB_STR(id), KIT_DB_TEXT(tenant), KIT_DB_TEXT(name),
                                       KIT_DB_TEXT(body_description(body)),
                                       KIT_DB_INT(kit_now_ms())),
                         &err);
    if (rc == AG_ECONFLICT) {
        kit_db_rollback(db);
        return kit_resp_problem(req, 409, "a role named \"%s\" already exists", name);
    }
    if (rc >= 0)
        rc = permissions_add(db, id, body, &err);
    if (rc >= 0)
        rc = auth_audit(db, tenant, kit_req_subject(req), "role.created", id, NULL, &err);
    if (rc >= 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    return role_respond(req, id, 201);
}

int auth_role_get(struct kit_req *req)
{
    const char *id;
    int rc = kit_req_param_id(req, "id", &id);
    if (rc < 0)
        return rc;
    return role_respond(req, id, 200);
}

/*
 * Starts a transaction and reads the role id of the request's tenant (locked on PostgreSQL).
 * Returns 1 and the role's name and builtin flag; 0 after answering 404 (rolled back); or a
 * database code.
 */
static int role_lock(struct kit_req *req, const char *id, char name[40], bool *builtin,
                     struct ag_err *err)
{
    static const char sql[] = "SELECT name, builtin FROM roles WHERE id = $1 AND tenant = $2";
    static const char sql_locked[] =
        "SELECT name, builtin FROM roles WHERE id = $1 AND tenant = $2 FOR UPDATE";
    struct kit_db *db = kit_req_db(req);
    struct kit_db_rows *rows = NULL;
    int rc = kit_db_begin(db, err);
    if (rc < 0)
        return rc;
    rc = kit_db_query(db, kit_db_driver(db) == KIT_DB_POSTGRES ? sql_locked : sql,
                      KIT_DB_PARAMS(KIT_DB_TEXT(id), KIT_DB_TEXT(kit_req_tenant(req))), 1, &rows,
                      err);
    if (rc == 0) {
        kit_db_rollback(db);
        kit_resp_problem(req, 404, "no such role");
    } else if (rc > 0) {
        snprintf(name, 40, "%s", kit_db_rows_text(rows, 0, 0, NULL));
        *builtin = kit_db_rows_int(rows, 0, 1) != 0;
        rc = 1;
    }
    kit_db_rows_free(rows);
    return rc;
}

int auth_role_update(struct kit_req *req)
{
    static const char sql_update[] =
        "UPDATE roles SET name = $1, description = $2, updated_at = $3 WHERE id = $4";
    static const char sql_clear[] = "DELETE FROM role_permissions WHERE role_id = $1";
    struct kit_db *db = kit_req_db(req);
    struct ag_err err = {0};
    const char *id;
    char old_name[40];
    bool builtin = false;
    json_t *body = NULL;

    int rc = kit_req_param_id(req, "id", &id);
    if (rc < 0)
        return rc;
    rc = role_body(req, &body);
    if (rc < 0)
        return rc;
    const char *name = json_string_value(json_object_get(body, "name"));
    rc = role_lock(req, id, old_name, &builtin, &err);
    if (rc == 0)
        return AG_EINVAL; /* answered 404 */
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    if (builtin && strcmp(old_name, name) != 0) {
        kit_db_rollback(db);
        return kit_resp_problem(req, 409, "the builtin role \"%s\" cannot be renamed", old_name);
    }
    rc = kit_db_exec(db, sql_update,
                     KIT_DB_PARAMS(KIT_DB_TEXT(name), KIT_DB_TEXT(body_description(body)),
                                   KIT_DB_INT(kit_now_ms()), KIT_DB_TEXT(id)),
                     &err);
    if (rc == AG_ECONFLICT) {
        kit_db_rollback(db);
        return kit_resp_problem(req, 409, "a role named \"%s\" already exists", name);
    }
    if (rc >= 0)
        rc = kit_db_exec(db, sql_clear, KIT_DB_PARAMS(KIT_DB_TEXT(id)), &err);
    if (rc >= 0)
        rc = permissions_add(db, id, body, &err);
    if (rc >= 0)
        rc = auth_audit(db, kit_req_tenant(req), kit_req_subject(req), "role.updated", id, NULL,
                        &err);
    if (rc >= 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    return role_respond(req, id, 200);
}

int auth_role_delete(struct kit_req *req)
{
    static const char sql_users[] = "DELETE FROM user_roles WHERE role_id = $1";
    static const char sql_permissions[] = "DELETE FROM role_permissions WHERE role_id = $1";
    static const char sql_role[] = "DELETE FROM roles WHERE id = $1";
    struct kit_db *db = kit_req_db(req);
    struct ag_err err = {0};
    const char *id;
    char name[40];
    bool builtin = false;

    int rc = kit_req_param_id(req, "id", &id);
    if (rc < 0)
        return rc;
    rc = role_lock(req, id, name, &builtin, &err);
    if (rc == 0)
        return AG_EINVAL;
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    if (builtin) {
        kit_db_rollback(db);
        return kit_resp_problem(req, 409, "the builtin role \"%s\" cannot be deleted", name);
    }
    rc = kit_db_exec(db, sql_users, KIT_DB_PARAMS(KIT_DB_TEXT(id)), &err);
    if (rc >= 0)
        rc = kit_db_exec(db, sql_permissions, KIT_DB_PARAMS(KIT_DB_TEXT(id)), &err);
    if (rc >= 0)
        rc = kit_db_exec(db, sql_role, KIT_DB_PARAMS(KIT_DB_TEXT(id)), &err);
    if (rc >= 0)
        rc = auth_audit(db, kit_req_tenant(req), kit_req_subject(req), "role.deleted", id, NULL,
                        &err);
    if (rc >= 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    return kit_resp_status(req, 204);
}

int auth_role_add_permissions(struct kit_req *req)
{
    static const struct kit_field fields[] = {
        {"permissions", JSON_ARRAY, true, 0, 0, 0, 0},
    };
    static const char sql_touch[] = "UPDATE roles SET updated_at = $1 WHERE id = $2";
    struct kit_db *db = kit_req_db(req);
    struct ag_err err = {0};
    const char *id;
    char name[40];
    bool builtin = false;
    json_t *body = NULL;

    int rc = kit_req_param_id(req, "id", &id);
    if (rc < 0)
        return rc;
    rc = kit_req_json(req, &body);
    if (rc < 0)
        return rc;
    kit_req_fields(req, body, fields, sizeof fields / sizeof fields[0]);
    permissions_check(req, body);
    if (kit_req_invalid_count(req) > 0)
        return kit_resp_invalid(req);
    rc = role_lock(req, id, name, &builtin, &err);
    if (rc == 0)
        return AG_EINVAL;
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    rc = permissions_add(db, id, body, &err);
    if (rc >= 0)
        rc = kit_db_exec(db, sql_touch, KIT_DB_PARAMS(KIT_DB_INT(kit_now_ms()), KIT_DB_TEXT(id)),
                         &err);
    if (rc >= 0)
        rc = auth_audit(db, kit_req_tenant(req), kit_req_subject(req), "role.updated", id, NULL,
                        &err);
    if (rc >= 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    return role_respond(req, id, 200);
}
