/* agora-auth: identity for Agora — accounts, sessions, roles and the token signing keys. */
#include <stdlib.h>

#include "admin_users.h"
#include "bootstrap.h"
#include "context.h"
#include "passwords.h"
#include "roles.h"
#include "sessions.h"
#include "users.h"
#include "wellknown.h"
#include "core/log.h"
#include "core/banned.h"

static const struct kit_route routes[] = {
    {"POST", "/api/v1/auth/register", auth_register, KIT_PUBLIC, NULL},
    {"POST", "/api/v1/auth/login", auth_login, KIT_PUBLIC, NULL},
    {"POST", "/api/v1/auth/refresh", auth_refresh, KIT_PUBLIC, NULL},
    {"POST", "/api/v1/auth/logout", auth_logout, KIT_PUBLIC, NULL},
    {"GET", "/api/v1/auth/me", auth_me, KIT_AUTHENTICATED, NULL},
    {"PUT", "/api/v1/auth/password", auth_password_change, KIT_AUTHENTICATED, NULL},
    {"POST", "/api/v1/auth/password-reset", auth_password_reset, KIT_PUBLIC, NULL},
    {"POST", "/api/v1/auth/password-reset/confirm", auth_password_reset_confirm, KIT_PUBLIC, NULL},
    {"GET", "/api/v1/auth/roles", auth_roles_list, KIT_ROLE("admin"), NULL},
    {"POST", "/api/v1/auth/roles", auth_role_create, KIT_ROLE("admin"), NULL},
    {"GET", "/api/v1/auth/roles/{id}", auth_role_get, KIT_ROLE("admin"), NULL},
    {"PUT", "/api/v1/auth/roles/{id}", auth_role_update, KIT_ROLE("admin"), NULL},
    {"DELETE", "/api/v1/auth/roles/{id}", auth_role_delete, KIT_ROLE("admin"), NULL},
    {"POST", "/api/v1/auth/roles/{id}/permissions", auth_role_add_permissions, KIT_ROLE("admin"),
     NULL},
    {"GET", "/api/v1/auth/users", auth_users_list, KIT_ROLE("admin"), NULL},
    {"GET", "/api/v1/auth/users/{id}", auth_user_get, KIT_ROLE("admin"), NULL},
    {"PATCH", "/api/v1/auth/users/{id}", auth_user_patch, KIT_ROLE("admin"), NULL},
    {"DELETE", "/api/v1/auth/users/{id}", auth_user_delete, KIT_ROLE("admin"), NULL},
    {"POST", "/api/v1/auth/users/{id}/roles", auth_user_role_add, KIT_ROLE("admin"), NULL},
    {"DELETE", "/api/v1/auth/users/{id}/roles/{role}", auth_user_role_remove, KIT_ROLE("admin"),
     NULL},
    {"GET", "/.well-known/jwks.json", auth_jwks, KIT_PUBLIC, NULL},
    {"GET", "/.well-known/openid-configuration", auth_openid_configuration, KIT_PUBLIC, NULL},
};

static const struct kit_setting settings[] = {
    {"AGORA_AUTH_ISSUER", "http://127.0.0.1:8080", "the iss of the access tokens minted here"},
    {"AGORA_AUTH_KEYS_DIR", "var/keys/auth",
     "the ES256 signing key directory (made at first start)"},
    {"AGORA_AUTH_KEYS_PASSPHRASE", NULL, "encrypts the private key files (AES-256) when set"},
    {"AGORA_AUTH_ACCESS_TTL", "900", "access token lifetime in seconds (60..86400)"},
    {"AGORA_AUTH_REFRESH_TTL", "2592000", "refresh token lifetime in seconds (300..31622400)"},
    {"AGORA_AUTH_ARGON2_OPS", "2", "Argon2id passes (opslimit, 2..64)"},
    {"AGORA_AUTH_ARGON2_MEM_KIB", "65536", "Argon2id memory in KiB (19456..4194304)"},
    {"AGORA_ADMIN_EMAIL", NULL,
     "first admin's e-mail, used when no admin exists (development: admin@agora.local)"},
    {"AGORA_ADMIN_PASSWORD", NULL,
     "first admin's password (development: agora-admin-dev-password)"},
};

static int auth_start(struct kit_app *app, struct ag_err *err)
{
    struct auth_ctx *ctx = NULL;
    char dummy_password[32];
    int rc;

    if (sodium_init() < 0)
        return ag_err_set(err, AG_ESYS, "libsodium could not initialise");
    rc = auth_ctx_new(app, &ctx, err);
    if (rc < 0)
        return rc;
    rc = kit_keys_open(ctx->keys_dir, kit_app_setting(app, "AGORA_AUTH_KEYS_PASSPHRASE"), true,
                       &ctx->keys, err);
    if (rc < 0)
        goto out;
    /* Unknown e-mails are verified against this, so a login costs one Argon2id either way. */
    randombytes_buf(dummy_password, sizeof dummy_password);
    if (crypto_pwhash_str(ctx->dummy_hash, dummy_password, sizeof dummy_password, ctx->argon2_ops,
                          ctx->argon2_mem) != 0) {
        rc = ag_err_set(err, AG_ENOMEM, "Argon2id could not get %zu bytes", ctx->argon2_mem);
        goto out;
    }
    rc = auth_bootstrap(app, ctx, err);
    if (rc < 0)
        goto out;
    ag_log_info("auth ready", AG_F_STR("issuer", ctx->issuer),
                AG_F_UINT("argon2_ops", ctx->argon2_ops),
                AG_F_UINT("argon2_mem_kib", ctx->argon2_mem / 1024),
                AG_F_UINT("access_ttl_s", ctx->access_ttl_s));
    kit_app_set_data(app, ctx);
    ctx = NULL;
out:
    sodium_memzero(dummy_password, sizeof dummy_password);
    auth_ctx_free(ctx);
    return rc;
}

static void auth_stop(struct kit_app *app)
{
    auth_ctx_free(kit_app_data(app));
    kit_app_set_data(app, NULL);
}

static const struct kit_service service = {
    .name = "auth",
    .summary = "Agora identity: accounts, sessions, roles, token signing keys",
    .routes = routes,
    .route_count = sizeof routes / sizeof routes[0],
    .migrations = kit_embedded_migrations,
    .migration_count = 0, /* set in main: the count is a link-time constant, not a C constant */
    .settings = settings,
    .setting_count = sizeof settings / sizeof settings[0],
    .on_start = auth_start,
    .on_stop = auth_stop,
};

int main(int argc, char **argv)
{
    struct kit_service svc = service;
    svc.migration_count = kit_embedded_migration_count;
    return kit_main(&svc, argc, argv);
}
