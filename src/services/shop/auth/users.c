/* Users: the user object read in one query, registration and GET /me. */
#include "users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "context.h"
#include "events.h"
#include "passwords.h"
#include "validate.h"
#include "core/banned.h"

enum { COL_ID, COL_EMAIL, COL_NAME, COL_DISABLED, COL_CREATED, COL_UPDATED, COL_ROLE, COL_PERM };

static json_t *user_object(const struct kit_db_rows *rows, size_t r)
{
    return json_pack("{s:o, s:o, s:o, s:[], s:b, s:o, s:o}", "id",
                     kit_db_rows_json_text(rows, r, COL_ID), "email",
                     kit_db_rows_json_text(rows, r, COL_EMAIL), "name",
                     kit_db_rows_json_text(rows, r, COL_NAME), "roles", "disabled",
                     kit_db_rows_int(rows, r, COL_DISABLED) != 0, "created_at",
                     kit_db_rows_json_time(rows, r, COL_CREATED), "updated_at",
                     kit_db_rows_json_time(rows, r, COL_UPDATED));
}

/* Appends row r's role to user unless it is NULL or the one appended last (rows are sorted). */
static int user_add_role(json_t *user, const struct kit_db_rows *rows, size_t r)
{
    json_t *roles = json_object_get(user, "roles");
    size_t n = json_array_size(roles);
    const char *role = kit_db_rows_text(rows, r, COL_ROLE, NULL);
    if (kit_db_rows_null(rows, r, COL_ROLE))
        return 0;
    if (n > 0 && strcmp(json_string_value(json_array_get(roles, n - 1)), role) == 0)
        return 0;
    return json_array_append_new(roles, json_string(role)) == 0 ? 0 : AG_ENOMEM;
}

json_t *auth_users_from_rows(const struct kit_db_rows *rows)
{
    json_t *items = json_array();
    json_t *user = NULL;
    const char *last_id = NULL;
    if (!items)
        return NULL;
    for (size_t r = 0; r < kit_db_rows_count(rows); r++) {
        const char *id = kit_db_rows_text(rows, r, COL_ID, NULL);
        if (!last_id || strcmp(last_id, id) != 0) {
            user = user_object(rows, r);
            if (!user || json_array_append_new(items, user) < 0)
                goto fail;
            last_id = id;
        }
        if (user_add_role(user, rows, r) < 0)
            goto fail;
    }
    return items;
fail:
    json_decref(items);
    return NULL;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Adds the sorted, unique permissions of rows to user. */
static int user_add_permissions(json_t *user, const struct kit_db_rows *rows)
{
    size_t n = kit_db_rows_count(rows), count = 0;
    const char **list = calloc(n ? n : 1, sizeof *list);
    json_t *perms = json_array();
    int rc = 0;
    if (!list || !perms) {
        rc = AG_ENOMEM;
        goto out;
    }
    for (size_t r = 0; r < n; r++)
        if (!kit_db_rows_null(rows, r, COL_PERM))
            list[count++] = kit_db_rows_text(rows, r, COL_PERM, NULL);
    qsort(list, count, sizeof *list, compare_strings);
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && strcmp(list[i - 1], list[i]) == 0)
            continue;
        if (json_array_append_new(perms, json_string(list[i])) < 0) {
            rc = AG_ENOMEM;
            goto out;
        }
    }
    rc = json_object_set_new(user, "permissions", perms) == 0 ? 0 : AG_ENOMEM;
    perms = NULL;
out:
    json_decref(perms);
    free(list);
    return rc;
}

int auth_user_load(struct kit_db *db, const char *tenant, const char *id, bool with_permissions,
                   json_t **out, struct ag_err *err)
{
    static const char sql_roles[] =
        "SELECT u.id, u.email, u.name, u.disabled, u.created_at, u.updated_at, r.name "
        "FROM users u LEFT JOIN user_roles ur ON ur.user_id = u.id "
        "LEFT JOIN roles r ON r.id = ur.role_id "
        "WHERE u.id = $1 AND u.tenant = $2 ORDER BY r.name";
    static const char sql_permissions[] =
        "SELECT u.id, u.email, u.name, u.disabled, u.created_at, u.updated_at, r.name, "
        "rp.permission FROM users u LEFT JOIN user_roles ur ON ur.user_id = u.id "
        "LEFT JOIN roles r ON r.id = ur.role_id "
        "LEFT JOIN role_permissions rp ON rp.role_id = r.id "
        "WHERE u.id = $1 AND u.tenant = $2 ORDER BY r.name, rp.permission";
    struct kit_db_rows *rows = NULL;
    json_t *user = NULL;
    int rc = kit_db_query(db, with_permissions ? sql_permissions : sql_roles,
                          KIT_DB_PARAMS(AUTH_DB_STR(id), KIT_DB_TEXT(tenant)), 0, &rows, err);
    if (rc <= 0)
        goto out;
    rc = AG_ENOMEM;
    user = user_object(rows, 0);
    if (!user)
        goto out;
    for (size_t r = 0; r < kit_db_rows_count(rows); r++)
        if (user_add_role(user, rows, r) < 0)
            goto out;
    if (with_permissions && user_add_permissions(user, rows) < 0)
        goto out;
    rc = 0;
out:
    kit_db_rows_free(rows);
    if (rc < 0) {
        json_decref(user);
        user = NULL;
        if (rc == AG_ENOMEM)
            ag_err_set(err, rc, "out of memory building a user");
    }
    *out = user;
    return rc < 0 ? rc : 0;
}

int auth_register(struct kit_req *req)
{
    static const struct kit_field fields[] = {
        {"email", JSON_STRING, true, 0, 0, 0, 0},
        {"password", JSON_STRING, true, 0, 0, 0, 0},
        {"name", JSON_STRING, true, 0, 0, 0, 0},
    };
    static const char sql_taken[] =
        "SELECT COUNT(*) FROM users WHERE tenant = $1 AND email_normalized = $2";
    static const char sql_insert[] =
        "INSERT INTO users (id, tenant, email, email_normalized, password_hash, name, disabled, "
        "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7)";
    static const char sql_customer[] = "INSERT INTO user_roles (user_id, role_id) "
                                       "SELECT $1, id FROM roles WHERE tenant = $2 AND name = $3";
    struct auth_ctx *ctx = auth_ctx_of(req);
    struct kit_db *db = kit_req_db(req);
    struct ag_err err = {0};
    const char *tenant = AUTH_DEFAULT_TENANT;
    char normalized[AUTH_EMAIL_MAX + 1], hash[crypto_pwhash_STRBYTES] = "";
    char id[KIT_ID_LEN + 1], location[64];
    json_t *body = NULL, *user = NULL;
    int64_t taken = 0, now = kit_now_ms();
    const char *problem;

    int rc = kit_req_json(req, &body);
    if (rc < 0)
        return rc;
    kit_req_fields(req, body, fields, sizeof fields / sizeof fields[0]);
    const char *email = json_string_value(json_object_get(body, "email"));
    const char *password = json_string_value(json_object_get(body, "password"));
    const char *name = json_string_value(json_object_get(body, "name"));
    if (email && (problem = auth_email_problem(email)) != NULL)
        kit_req_invalid(req, "email", problem);
    if (password && (problem = auth_password_problem(password, email)) != NULL)
        kit_req_invalid(req, "password", problem);
    if (name && (problem = auth_name_problem(name)) != NULL)
        kit_req_invalid(req, "name", problem);
    if (kit_req_invalid_count(req) > 0)
        return kit_resp_invalid(req);

    auth_email_normalize(email, normalized);
    rc = kit_db_query_int(
        db, sql_taken, KIT_DB_PARAMS(KIT_DB_TEXT(tenant), AUTH_DB_STR(normalized)), &taken, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    if (taken)
        return kit_resp_problem(req, 409, "an account with this e-mail address already exists");

    rc = auth_password_hash(ctx, password, hash);
    if (rc < 0)
        goto out;
    kit_id_new(id);
    rc = kit_db_begin(db, &err);
    if (rc < 0)
        goto db_fail;
    rc = kit_db_exec(db, sql_insert,
                     KIT_DB_PARAMS(AUTH_DB_STR(id), KIT_DB_TEXT(tenant), KIT_DB_TEXT(email),
                                   AUTH_DB_STR(normalized), AUTH_DB_STR(hash), KIT_DB_TEXT(name),
                                   KIT_DB_INT(now)),
                     &err);
    if (rc == AG_ECONFLICT) {
        kit_db_rollback(db);
        rc = kit_resp_problem(req, 409, "an account with this e-mail address already exists");
        goto out;
    }
    if (rc >= 0)
        rc = kit_db_exec(
            db, sql_customer,
            KIT_DB_PARAMS(AUTH_DB_STR(id), KIT_DB_TEXT(tenant), KIT_DB_TEXT("customer")), &err);
    if (rc >= 0)
        rc = auth_audit(db, tenant, id, "user.registered", id, NULL, &err);
    if (rc >= 0)
        rc = auth_event_user(db, "created", tenant, id, NULL, 0, &err);
    if (rc >= 0)
        rc = kit_db_commit(db, &err);
    if (rc >= 0)
        rc = auth_user_load(db, tenant, id, false, &user, &err);
    if (rc < 0)
        goto db_fail;
    if (!user) {
        rc = AG_ENOTFOUND;
        goto out;
    }
    snprintf(location, sizeof location, "/api/v1/auth/users/%s", id);
    rc = kit_resp_created(req, location, user);
    goto out;
db_fail:
    rc = kit_req_db_fail(req, rc, &err);
out:
    sodium_memzero(hash, sizeof hash);
    return rc;
}

int auth_me(struct kit_req *req)
{
    struct ag_err err = {0};
    json_t *user = NULL;
    const char *tenant = kit_req_tenant(req);
    const char *subject = kit_req_subject(req);
    int rc;

    if (!subject || !kit_id_valid(subject))
        return kit_resp_problem(req, 401, "the token's subject is not a user of this service");
    rc = auth_user_load(kit_req_db(req), tenant, subject, true, &user, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    if (!user || json_is_true(json_object_get(user, "disabled"))) {
        json_decref(user);
        return kit_resp_problem(req, 401, "the token's user does not exist or is disabled");
    }
    json_object_set_new(user, "tenant", json_string(tenant));
    return kit_resp_json(req, 200, user);
}
