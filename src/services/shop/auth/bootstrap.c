/* First start: builtin roles (with their permissions) and the first admin account. */
#include "bootstrap.h"

#include <string.h>

#include "audit.h"
#include "events.h"
#include "passwords.h"
#include "validate.h"
#include "core/log.h"
#include "core/banned.h"

#define DEV_ADMIN_EMAIL    "admin@agora.local"
#define DEV_ADMIN_PASSWORD "agora-admin-dev-password"

struct builtin_role {
    const char *name;
    const char *description;
    const char *permissions[8]; /* NULL-terminated */
};

/* Documented in docs/api/auth.yaml (info.description). */
static const struct builtin_role builtin_roles[] = {
    {"admin",
     "Administers accounts and roles",
     {"auth:users:read", "auth:users:write", "auth:roles:read", "auth:roles:write",
      "auth:audit:read", NULL}},
    {"support",
     "Helps customers: tickets, read access to accounts and orders",
     {"support:tickets", "auth:users:read", "shop:orders:read", NULL}},
    {"customer",
     "Shops: orders, cart, own profile",
     {"shop:orders", "shop:cart", "auth:self", NULL}},
};

static int roles_ensure(struct kit_db *db, struct ag_err *err)
{
    static const char sql_find[] = "SELECT id FROM roles WHERE tenant = $1 AND name = $2";
    static const char sql_role[] =
        "INSERT INTO roles (id, tenant, name, description, builtin, created_at, updated_at) "
        "VALUES ($1, $2, $3, $4, 1, $5, $5)";
    static const char sql_permission[] =
        "INSERT INTO role_permissions (role_id, permission) VALUES ($1, $2)";
    static const char sql_mark[] = "UPDATE roles SET builtin = 1 WHERE id = $1";
    int rc = 0;
    for (size_t i = 0; rc >= 0 && i < sizeof builtin_roles / sizeof builtin_roles[0]; i++) {
        const struct builtin_role *b = &builtin_roles[i];
        struct kit_db_rows *rows = NULL;
        char id[KIT_ID_LEN + 1];
        rc = kit_db_query(db, sql_find,
                          KIT_DB_PARAMS(KIT_DB_TEXT(AUTH_DEFAULT_TENANT), KIT_DB_TEXT(b->name)), 1,
                          &rows, err);
        if (rc > 0)
            rc = kit_db_exec(db, sql_mark,
                             KIT_DB_PARAMS(KIT_DB_TEXT(kit_db_rows_text(rows, 0, 0, NULL))), err);
        else if (rc == 0) {
            kit_id_new(id);
            rc = kit_db_exec(db, sql_role,
                             KIT_DB_PARAMS(AUTH_DB_STR(id), KIT_DB_TEXT(AUTH_DEFAULT_TENANT),
                                           KIT_DB_TEXT(b->name), KIT_DB_TEXT(b->description),
                                           KIT_DB_INT(kit_now_ms())),
                             err);
            for (size_t p = 0; rc >= 0 && b->permissions[p]; p++)
                rc = kit_db_exec(db, sql_permission,
                                 KIT_DB_PARAMS(AUTH_DB_STR(id), KIT_DB_TEXT(b->permissions[p])),
                                 err);
        }
        kit_db_rows_free(rows);
    }
    return rc < 0 ? rc : 0;
}

static int admin_create(struct kit_db *db, const char *email, const char *hash, struct ag_err *err)
{
    static const char sql_user[] =
        "INSERT INTO users (id, tenant, email, email_normalized, password_hash, name, disabled, "
        "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7)";
    static const char sql_roles[] =
        "INSERT INTO user_roles (user_id, role_id) SELECT $1, id FROM roles "
        "WHERE tenant = $2 AND name IN ('admin', 'customer')";
    char id[KIT_ID_LEN + 1], normalized[AUTH_EMAIL_MAX + 1];
    kit_id_new(id);
    auth_email_normalize(email, normalized);
    int rc =
        kit_db_exec(db, sql_user,
                    KIT_DB_PARAMS(AUTH_DB_STR(id), KIT_DB_TEXT(AUTH_DEFAULT_TENANT),
                                  KIT_DB_TEXT(email), AUTH_DB_STR(normalized), KIT_DB_TEXT(hash),
                                  KIT_DB_TEXT("Administrator"), KIT_DB_INT(kit_now_ms())),
                    err);
    if (rc == AG_ECONFLICT)
        return ag_err_set(err, AG_EINVAL,
                          "AGORA_ADMIN_EMAIL: an account %s exists but is no admin; grant it the "
                          "admin role or choose another address",
                          normalized);
    if (rc >= 0)
        rc = kit_db_exec(db, sql_roles,
                         KIT_DB_PARAMS(AUTH_DB_STR(id), KIT_DB_TEXT(AUTH_DEFAULT_TENANT)), err);
    if (rc >= 0)
        rc = auth_audit(db, AUTH_DEFAULT_TENANT, NULL, "user.registered", id,
                        "{\"first_admin\":true}", err);
    if (rc >= 0)
        rc = auth_event_user(db, "created", AUTH_DEFAULT_TENANT, id, NULL, 0, err);
    if (rc >= 0)
        ag_log_info("first admin created", AG_F_STR("email", normalized), AG_F_STR("id", id));
    return rc < 0 ? rc : 0;
}

int auth_bootstrap(struct kit_app *app, const struct auth_ctx *ctx, struct ag_err *err)
{
    static const char sql_admins[] =
        "SELECT COUNT(*) FROM user_roles ur JOIN roles r ON r.id = ur.role_id "
        "WHERE r.tenant = $1 AND r.name = 'admin'";
    struct kit_db *db = kit_app_db(app);
    const char *email = kit_app_setting(app, "AGORA_ADMIN_EMAIL");
    const char *password = kit_app_setting(app, "AGORA_ADMIN_PASSWORD");
    const char *problem;
    char hash[crypto_pwhash_STRBYTES] = "";
    int64_t admins = 0;

    int rc = kit_db_begin(db, err);
    if (rc >= 0)
        rc = roles_ensure(db, err);
    if (rc >= 0)
        rc = kit_db_query_int(db, sql_admins, KIT_DB_PARAMS(KIT_DB_TEXT(AUTH_DEFAULT_TENANT)),
                              &admins, err);
    if (rc < 0 || admins > 0)
        goto out;
    if ((!email || !*email) && ctx->dev)
        email = DEV_ADMIN_EMAIL;
    if ((!password || !*password) && ctx->dev)
        password = DEV_ADMIN_PASSWORD;
    if (!email || !*email || !password || !*password) {
        ag_log_warn("no admin account exists and AGORA_ADMIN_EMAIL / AGORA_ADMIN_PASSWORD are "
                    "not set: the admin API is unusable until one is configured");
        goto out;
    }
    if ((problem = auth_email_problem(email)) != NULL) {
        rc = ag_err_set(err, AG_EINVAL, "AGORA_ADMIN_EMAIL %s", problem);
        goto out;
    }
    size_t length = auth_utf8_count(password, strlen(password));
    if (length == (size_t)-1 || length < AUTH_PASSWORD_MIN) {
        rc = ag_err_set(err, AG_EINVAL, "AGORA_ADMIN_PASSWORD must be at least 10 characters");
        goto out;
    }
    rc = auth_password_hash(ctx, password, hash);
    if (rc < 0) {
        ag_err_set(err, rc, "hashing the admin password failed (out of memory)");
        goto out;
    }
    rc = admin_create(db, email, hash, err);
out:
    if (rc >= 0)
        rc = kit_db_commit(db, err);
    if (rc < 0)
        kit_db_rollback(db);
    sodium_memzero(hash, sizeof hash);
    return rc < 0 ? rc : 0;
}
