/* The admin API over users; every change is one transaction with its audit row. */
#include "admin_users.h"

#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "context.h"
#include "events.h"
#include "sessions.h"
#include "users.h"
#include "validate.h"
#include "core/buf.h"
#include "core/banned.h"

enum { QUERY_MAX = 200 }; /* bytes of ?q= */

/* Answers 200 with the user id as stored now (404 when gone). */
static int user_respond(struct kit_req *req, const char *id)
{
    struct ag_err err = {0};
    json_t *user = NULL;
    int rc = auth_user_load(kit_req_db(req), kit_req_tenant(req), id, false, &user, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    if (!user)
        return kit_resp_problem(req, 404, "no such user");
    return kit_resp_json(req, 200, user);
}

/* Writes q as a LIKE pattern "%q%" with \, % and _ escaped and ASCII lowercased. */
static int like_pattern(const char *q, struct ag_buf *out)
{
    int rc = ag_buf_append(out, "%", 1);
    for (const char *p = q; rc == 0 && *p; p++) {
        char c = *p;
        if (c == '\\' || c == '%' || c == '_')
            rc = ag_buf_append(out, "\\", 1);
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (rc == 0)
            rc = ag_buf_append(out, &c, 1);
    }
    if (rc == 0)
        rc = ag_buf_append(out, "%", 1);
    return rc;
}

int auth_users_list(struct kit_req *req)
{
    static const char sql_count[] =
        "SELECT COUNT(*) FROM users WHERE tenant = $1 AND (email_normalized LIKE $2 ESCAPE '\\' "
        "OR LOWER(name) LIKE $2 ESCAPE '\\')";
    static const char sql_page[] =
        "SELECT u.id, u.email, u.name, u.disabled, u.created_at, u.updated_at, r.name FROM "
        "(SELECT * FROM users WHERE tenant = $1 AND (email_normalized LIKE $2 ESCAPE '\\' "
        "OR LOWER(name) LIKE $2 ESCAPE '\\') ORDER BY created_at, id LIMIT $3 OFFSET $4) u "
        "LEFT JOIN user_roles ur ON ur.user_id = u.id LEFT JOIN roles r ON r.id = ur.role_id "
        "ORDER BY u.created_at, u.id, r.name";
    struct kit_db *db = kit_req_db(req);
    struct kit_db_rows *rows = NULL;
    struct kit_page page;
    struct ag_err err = {0};
    struct ag_buf pattern;
    const char *tenant = kit_req_tenant(req), *q = kit_req_query(req, "q");
    int64_t total = 0;
    json_t *items = NULL;

    ag_buf_init(&pattern, 2 * QUERY_MAX + 3);
    int rc = kit_req_page(req, &page);
    if (rc < 0)
        goto out;
    if (q && (strlen(q) > QUERY_MAX || auth_utf8_count(q, strlen(q)) == (size_t)-1)) {
        rc = kit_resp_problem(req, 400, "q must be valid UTF-8 of at most %d bytes", QUERY_MAX);
        goto out;
    }
    rc = like_pattern(q ? q : "", &pattern);
    if (rc < 0)
        goto out;
    struct ag_str p = ag_buf_str(&pattern);
    rc = kit_db_query_int(
        db, sql_count, KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXTN(p.p, p.len)), &total, &err);
    if (rc >= 0)
        rc = kit_db_query(db, sql_page,
                          KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXTN(p.p, p.len),
                                        KIT_DB_INT(page.per_page), KIT_DB_INT(page.offset)),
                          0, &rows, &err);
    if (rc < 0) {
        rc = kit_req_db_fail(req, rc, &err);
        goto out;
    }
    items = auth_users_from_rows(rows);
    if (!items) {
        rc = AG_ENOMEM;
        goto out;
    }
    rc = kit_resp_page(req, items, &page, total);
out:
    kit_db_rows_free(rows);
    ag_buf_release(&pattern);
    return rc;
}

int auth_user_get(struct kit_req *req)
{
    const char *id;
    int rc = kit_req_param_id(req, "id", &id);
    if (rc < 0)
        return rc;
    return user_respond(req, id);
}

/*
 * Starts a transaction and reads the user id of the request's tenant (row-locked on
 * PostgreSQL). Returns 1 with *rows (email, name, disabled); 0 after answering 404 (rolled
 * back); or a database code.
 */
static int user_lock(struct kit_req *req, const char *id, struct kit_db_rows **rows,
                     struct ag_err *err)
{
    static const char sql[] = "SELECT email, name, disabled FROM users WHERE id = $1 AND "
                              "tenant = $2";
    static const char sql_locked[] = "SELECT email, name, disabled FROM users WHERE id = $1 AND "
                                     "tenant = $2 FOR UPDATE";
    struct kit_db *db = kit_req_db(req);
    int rc = kit_db_begin(db, err);
    if (rc < 0)
        return rc;
    rc = kit_db_query(db, kit_db_driver(db) == KIT_DB_POSTGRES ? sql_locked : sql,
                      KIT_DB_PARAMS(KIT_DB_TEXT(id), KIT_DB_TEXT(kit_req_tenant(req))), 1, rows,
                      err);
    if (rc <= 0) {
        kit_db_rows_free(*rows);
        *rows = NULL;
    }
    if (rc == 0) {
        kit_db_rollback(db);
        kit_resp_problem(req, 404, "no such user");
    }
    return rc > 0 ? 1 : rc;
}

/*
 * Inside a transaction: whether user_id is the tenant's only enabled admin (a disabled admin
 * cannot log in, so it does not count: disabling, deleting or demoting the last one that can
 * would leave the tenant without an admin, and the first-start bootstrap only helps a tenant
 * where nobody holds the role). On PostgreSQL the admin role's row is locked first, so two
 * removals of two admins cannot both see "one left".
 */
static int user_is_last_admin(struct kit_db *db, const char *tenant, const char *user_id,
                              bool *last, struct ag_err *err)
{
    static const char sql_lock[] =
        "SELECT id FROM roles WHERE tenant = $1 AND name = 'admin' FOR UPDATE";
    static const char sql_admins[] =
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN ur.user_id = $2 THEN 1 ELSE 0 END), 0) "
        "FROM user_roles ur JOIN roles r ON r.id = ur.role_id JOIN users u ON u.id = ur.user_id "
        "WHERE r.tenant = $1 AND r.name = 'admin' AND u.disabled = 0";
    struct kit_db_rows *rows = NULL;
    int rc = 0;
    *last = false;
    if (kit_db_driver(db) == KIT_DB_POSTGRES) {
        rc = kit_db_query(db, sql_lock, KIT_DB_PARAMS(KIT_DB_TEXT(tenant)), 1, &rows, err);
        kit_db_rows_free(rows);
        rows = NULL;
        if (rc < 0)
            return rc;
    }
    rc = kit_db_query(db, sql_admins, KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(user_id)), 1,
                      &rows, err);
    if (rc > 0)
        *last = kit_db_rows_int(rows, 0, 0) == 1 && kit_db_rows_int(rows, 0, 1) == 1;
    kit_db_rows_free(rows);
    return rc < 0 ? rc : 0;
}

int auth_user_patch(struct kit_req *req)
{
    static const struct kit_field fields[] = {
        {"name", JSON_STRING, false, 0, 0, 0, 0},
        {"email", JSON_STRING, false, 0, 0, 0, 0},
        {"disabled", JSON_TRUE, false, 0, 0, 0, 0},
    };
    static const char sql_update[] =
        "UPDATE users SET email = $1, email_normalized = $2, name = $3, disabled = $4, "
        "updated_at = $5 WHERE id = $6";
    struct kit_db *db = kit_req_db(req);
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    const char *id, *problem, *tenant = kit_req_tenant(req);
    char normalized[AUTH_EMAIL_MAX + 1], detail[128];
    json_t *body = NULL;

    int rc = kit_req_param_id(req, "id", &id);
    if (rc < 0)
        return rc;
    rc = kit_req_json(req, &body);
    if (rc < 0)
        return rc;
    kit_req_fields(req, body, fields, sizeof fields / sizeof fields[0]);
    const char *email = json_string_value(json_object_get(body, "email"));
    const char *name = json_string_value(json_object_get(body, "name"));
    json_t *disabled_v = json_object_get(body, "disabled");
    if (email && (problem = auth_email_problem(email)) != NULL)
        kit_req_invalid(req, "email", problem);
    if (name && (problem = auth_name_problem(name)) != NULL)
        kit_req_invalid(req, "name", problem);
    if (kit_req_invalid_count(req) > 0)
        return kit_resp_invalid(req);

    rc = user_lock(req, id, &rows, &err);
    if (rc == 0)
        return AG_EINVAL; /* answered 404 */
    if (rc < 0)
        goto db_fail;
    bool was_disabled = kit_db_rows_int(rows, 0, 2) != 0;
    bool disabled = json_is_boolean(disabled_v) ? json_is_true(disabled_v) : was_disabled;
    if (disabled && !was_disabled) {
        bool last = false;
        rc = user_is_last_admin(db, tenant, id, &last, &err);
        if (rc < 0)
            goto db_fail;
        if (last) {
            kit_db_rollback(db);
            rc = kit_resp_problem(req, 409, "this user is the last admin and cannot be disabled");
            goto out;
        }
    }
    if (!email)
        email = kit_db_rows_text(rows, 0, 0, NULL);
    if (!name)
        name = kit_db_rows_text(rows, 0, 1, NULL);
    auth_email_normalize(email, normalized);
    rc = kit_db_exec(db, sql_update,
                     KIT_DB_PARAMS(KIT_DB_TEXT(email), AUTH_DB_STR(normalized), KIT_DB_TEXT(name),
                                   KIT_DB_INT(disabled ? 1 : 0), KIT_DB_INT(kit_now_ms()),
                                   KIT_DB_TEXT(id)),
                     &err);
    if (rc == AG_ECONFLICT) {
        kit_db_rollback(db);
        rc = kit_resp_problem(req, 409, "another account has this e-mail address");
        goto out;
    }
    /* Disabling ends every session; the access tokens already out expire on their own. */
    if (rc >= 0 && disabled && !was_disabled)
        rc = auth_sessions_revoke_user(db, id, &err);
    snprintf(detail, sizeof detail, "{\"name\":%s,\"email\":%s,\"disabled\":%s}",
             json_object_get(body, "name") ? "true" : "false",
             json_object_get(body, "email") ? "true" : "false", disabled ? "true" : "false");
    if (rc >= 0)
        rc = auth_audit(db, tenant, kit_req_subject(req), "user.updated", id, detail, &err);
    const char *changed[3];
    size_t n_changed = 0;
    if (json_object_get(body, "name"))
        changed[n_changed++] = "name";
    if (json_object_get(body, "email"))
        changed[n_changed++] = "email";
    if (disabled != was_disabled)
        changed[n_changed++] = "disabled";
    if (rc >= 0)
        rc = auth_event_user(db, "updated", tenant, id, changed, n_changed, &err);
    if (rc >= 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0)
        goto db_fail;
    rc = user_respond(req, id);
    goto out;
db_fail:
    rc = kit_req_db_fail(req, rc, &err);
out:
    kit_db_rows_free(rows);
    return rc;
}

int auth_user_delete(struct kit_req *req)
{
    static const char *const sql_deletes[] = {
        "DELETE FROM refresh_tokens WHERE user_id = $1",
        "DELETE FROM password_resets WHERE user_id = $1",
        "DELETE FROM user_roles WHERE user_id = $1",
        "DELETE FROM users WHERE id = $1",
    };
    struct kit_db *db = kit_req_db(req);
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    const char *id, *tenant = kit_req_tenant(req);
    bool last = false;

    int rc = kit_req_param_id(req, "id", &id);
    if (rc < 0)
        return rc;
    rc = user_lock(req, id, &rows, &err);
    kit_db_rows_free(rows);
    if (rc == 0)
        return AG_EINVAL;
    if (rc >= 0)
        rc = user_is_last_admin(db, tenant, id, &last, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    if (last) {
        kit_db_rollback(db);
        return kit_resp_problem(req, 409, "this user is the last admin and cannot be deleted");
    }
    for (size_t i = 0; rc >= 0 && i < sizeof sql_deletes / sizeof sql_deletes[0]; i++)
        rc = kit_db_exec(db, sql_deletes[i], KIT_DB_PARAMS(KIT_DB_TEXT(id)), &err);
    if (rc >= 0)
        rc = auth_audit(db, tenant, kit_req_subject(req), "user.deleted", id, NULL, &err);
    if (rc >= 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    return kit_resp_status(req, 204);
}

/* The audit detail of a role change: {"added":"x"} or {"removed":"x"} (names are [a-z0-9_-]). */
static int roles_changed(struct kit_req *req, const char *id, const char *verb, const char *role,
                         struct ag_err *err)
{
    static const char sql_touch[] = "UPDATE users SET updated_at = $1 WHERE id = $2";
    char detail[96];
    snprintf(detail, sizeof detail, "{\"%s\":\"%s\"}", verb, role);
    int rc = kit_db_exec(kit_req_db(req), sql_touch,
                         KIT_DB_PARAMS(KIT_DB_INT(kit_now_ms()), KIT_DB_TEXT(id)), err);
    if (rc >= 0)
        rc = auth_audit(kit_req_db(req), kit_req_tenant(req), kit_req_subject(req),
                        "user.roles_changed", id, detail, err);
    static const char *const changed[] = {"roles"};
    if (rc >= 0)
        rc = auth_event_user(kit_req_db(req), "updated", kit_req_tenant(req), id, changed, 1, err);
    return rc < 0 ? rc : 0;
}

int auth_user_role_add(struct kit_req *req)
{
    static const struct kit_field fields[] = {
        {"role", JSON_STRING, true, 1, 32, 0, 0},
    };
    static const char sql_role[] = "SELECT id FROM roles WHERE tenant = $1 AND name = $2";
    static const char sql_grant[] = "INSERT INTO user_roles (user_id, role_id) VALUES ($1, $2) "
                                    "ON CONFLICT DO NOTHING";
    struct kit_db *db = kit_req_db(req);
    struct kit_db_rows *rows = NULL, *role_rows = NULL;
    struct ag_err err = {0};
    const char *id;
    json_t *body = NULL;

    int rc = kit_req_param_id(req, "id", &id);
    if (rc < 0)
        return rc;
    rc = kit_req_json(req, &body);
    if (rc < 0)
        return rc;
    kit_req_fields(req, body, fields, sizeof fields / sizeof fields[0]);
    if (kit_req_invalid_count(req) > 0)
        return kit_resp_invalid(req);
    const char *role = json_string_value(json_object_get(body, "role"));
    rc = user_lock(req, id, &rows, &err);
    if (rc == 0)
        return AG_EINVAL;
    if (rc < 0)
        goto db_fail;
    rc = kit_db_query(db, sql_role,
                      KIT_DB_PARAMS(KIT_DB_TEXT(kit_req_tenant(req)), KIT_DB_TEXT(role)), 1,
                      &role_rows, &err);
    if (rc < 0)
        goto db_fail;
    if (rc == 0) {
        kit_db_rollback(db);
        kit_req_invalid(req, "role", "no such role");
        rc = kit_resp_invalid(req);
        goto out;
    }
    rc = kit_db_exec(
        db, sql_grant,
        KIT_DB_PARAMS(KIT_DB_TEXT(id), KIT_DB_TEXT(kit_db_rows_text(role_rows, 0, 0, NULL))), &err);
    if (rc > 0)
        rc = roles_changed(req, id, "added", role, &err);
    if (rc >= 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0)
        goto db_fail;
    rc = user_respond(req, id);
    goto out;
db_fail:
    rc = kit_req_db_fail(req, rc, &err);
out:
    kit_db_rows_free(rows);
    kit_db_rows_free(role_rows);
    return rc;
}

int auth_user_role_remove(struct kit_req *req)
{
    static const char sql_held[] =
        "SELECT r.id FROM user_roles ur JOIN roles r ON r.id = ur.role_id "
        "WHERE ur.user_id = $1 AND r.name = $2";
    static const char sql_revoke[] = "DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2";
    struct kit_db *db = kit_req_db(req);
    struct kit_db_rows *rows = NULL, *held = NULL;
    struct ag_err err = {0};
    const char *id, *role = kit_req_param(req, "role"), *tenant = kit_req_tenant(req);
    bool last = false;

    int rc = kit_req_param_id(req, "id", &id);
    if (rc < 0)
        return rc;
    rc = user_lock(req, id, &rows, &err);
    if (rc == 0)
        return AG_EINVAL;
    if (rc < 0)
        goto db_fail;
    rc = kit_db_query(db, sql_held, KIT_DB_PARAMS(KIT_DB_TEXT(id), KIT_DB_TEXT(role)), 1, &held,
                      &err);
    if (rc < 0)
        goto db_fail;
    if (rc == 0) {
        kit_db_rollback(db);
        rc = kit_resp_problem(req, 404, "the user does not hold this role");
        goto out;
    }
    if (strcmp(role, "admin") == 0) {
        rc = user_is_last_admin(db, tenant, id, &last, &err);
        if (rc < 0)
            goto db_fail;
        if (last) {
            kit_db_rollback(db);
            rc = kit_resp_problem(req, 409, "this user is the last admin");
            goto out;
        }
    }
    rc = kit_db_exec(
        db, sql_revoke,
        KIT_DB_PARAMS(KIT_DB_TEXT(id), KIT_DB_TEXT(kit_db_rows_text(held, 0, 0, NULL))), &err);
    if (rc >= 0)
        rc = roles_changed(req, id, "removed", role, &err);
    if (rc >= 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0)
        goto db_fail;
    rc = user_respond(req, id);
    goto out;
db_fail:
    rc = kit_req_db_fail(req, rc, &err);
out:
    kit_db_rows_free(rows);
    kit_db_rows_free(held);
    return rc;
}
