/* Passwords: Argon2id (libsodium), the change, and the reset by a single-use token. */
#include "passwords.h"

#include <string.h>

#include "audit.h"
#include "events.h"
#include "sessions.h"
#include "tokens.h"
#include "validate.h"
#include "core/log.h"
#include "core/banned.h"

int auth_password_hash(const struct auth_ctx *ctx, const char *password,
                       char out[crypto_pwhash_STRBYTES])
{
    if (crypto_pwhash_str(out, password, strlen(password), ctx->argon2_ops, ctx->argon2_mem) != 0)
        return AG_ENOMEM;
    return 0;
}

bool auth_password_verify(const char *hash, const char *password)
{
    return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

bool auth_password_needs_rehash(const struct auth_ctx *ctx, const char *hash)
{
    return crypto_pwhash_str_needs_rehash(hash, ctx->argon2_ops, ctx->argon2_mem) != 0;
}

/* Sets the password of user_id, revokes every refresh family, audits; one transaction. */
static int password_store(struct kit_db *db, const char *tenant, const char *actor,
                          const char *user_id, const char *hash, const char *action,
                          const char *clear_email, struct ag_err *err)
{
    static const char sql_update[] =
        "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3";
    static const char sql_failures[] =
        "DELETE FROM login_failures WHERE tenant = $1 AND email_normalized = $2";
    int64_t now = kit_now_ms();
    int rc =
        kit_db_exec(db, sql_update,
                    KIT_DB_PARAMS(AUTH_DB_STR(hash), KIT_DB_INT(now), KIT_DB_TEXT(user_id)), err);
    if (rc >= 0)
        rc = auth_sessions_revoke_user(db, user_id, err);
    if (rc >= 0 && clear_email)
        rc = kit_db_exec(db, sql_failures,
                         KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(clear_email)), err);
    if (rc >= 0)
        rc = auth_audit(db, tenant, actor, action, user_id, NULL, err);
    static const char *const changed[] = {"password"};
    if (rc >= 0)
        rc = auth_event_user(db, "updated", tenant, user_id, changed, 1, err);
    return rc < 0 ? rc : 0;
}

int auth_password_change(struct kit_req *req)
{
    static const struct kit_field fields[] = {
        {"current_password", JSON_STRING, true, 0, 0, 0, 0},
        {"new_password", JSON_STRING, true, 0, 0, 0, 0},
    };
    static const char sql_user[] = "SELECT email, password_hash, disabled FROM users "
                                   "WHERE id = $1 AND tenant = $2";
    struct auth_ctx *ctx = auth_ctx_of(req);
    struct kit_db *db = kit_req_db(req);
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    const char *tenant = kit_req_tenant(req), *subject = kit_req_subject(req), *problem;
    char hash[crypto_pwhash_STRBYTES] = "";
    json_t *body = NULL;

    int rc = kit_req_json(req, &body);
    if (rc < 0)
        return rc;
    kit_req_fields(req, body, fields, sizeof fields / sizeof fields[0]);
    if (kit_req_invalid_count(req) > 0)
        return kit_resp_invalid(req);
    const char *current = json_string_value(json_object_get(body, "current_password"));
    const char *fresh = json_string_value(json_object_get(body, "new_password"));

    if (!subject || !kit_id_valid(subject)) {
        rc = auth_resp_unauthorized(req, "the token's subject is not a user of this service");
        goto out;
    }
    rc = kit_db_query(db, sql_user, KIT_DB_PARAMS(KIT_DB_TEXT(subject), KIT_DB_TEXT(tenant)), 1,
                      &rows, &err);
    if (rc < 0)
        goto db_fail;
    if (rc == 0 || kit_db_rows_int(rows, 0, 2) != 0) {
        rc = auth_resp_unauthorized(req, "the token's user does not exist or is disabled");
        goto out;
    }
    problem = auth_password_problem(fresh, kit_db_rows_text(rows, 0, 0, NULL));
    if (problem) {
        kit_req_invalid(req, "new_password", problem);
        rc = kit_resp_invalid(req);
        goto out;
    }
    if (!auth_password_verify(kit_db_rows_text(rows, 0, 1, NULL), current)) {
        rc = kit_resp_problem(req, 403, "the current password is wrong");
        goto out;
    }
    rc = auth_password_hash(ctx, fresh, hash);
    if (rc < 0)
        goto out;
    rc = kit_db_begin(db, &err);
    if (rc >= 0)
        rc =
            password_store(db, tenant, subject, subject, hash, "user.password_changed", NULL, &err);
    if (rc >= 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0)
        goto db_fail;
    rc = kit_resp_status(req, 204);
    goto out;
db_fail:
    rc = kit_req_db_fail(req, rc, &err);
out:
    kit_db_rows_free(rows);
    sodium_memzero(hash, sizeof hash);
    return rc;
}

int auth_password_reset(struct kit_req *req)
{
    static const struct kit_field fields[] = {
        {"email", JSON_STRING, true, 1, 320, 0, 0},
    };
    static const char sql_user[] = "SELECT id, email FROM users WHERE tenant = $1 AND "
                                   "email_normalized = $2 AND disabled = 0";
    static const char sql_insert[] = "INSERT INTO password_resets (token_hash, user_id, "
                                     "expires_at, used_at, created_at) VALUES ($1, $2, $3, "
                                     "NULL, $4)";
    struct auth_ctx *ctx = auth_ctx_of(req);
    struct kit_db *db = kit_req_db(req);
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    char normalized[AUTH_EMAIL_MAX + 1], token[AUTH_TOKEN_LEN + 1], hash[AUTH_HASH_LEN + 1];
    json_t *body = NULL;
    int64_t now = kit_now_ms();

    int rc = kit_req_json(req, &body);
    if (rc < 0)
        return rc;
    kit_req_fields(req, body, fields, sizeof fields / sizeof fields[0]);
    if (kit_req_invalid_count(req) > 0)
        return kit_resp_invalid(req);
    const char *email = json_string_value(json_object_get(body, "email"));
    /* An address that cannot be valid names no account: the same 202, nothing stored. */
    if (auth_email_problem(email) != NULL)
        return kit_resp_status(req, 202);
    auth_email_normalize(email, normalized);
    rc = kit_db_query(db, sql_user,
                      KIT_DB_PARAMS(KIT_DB_TEXT(AUTH_DEFAULT_TENANT), AUTH_DB_STR(normalized)), 1,
                      &rows, &err);
    if (rc < 0)
        goto db_fail;
    if (rc == 0) {
        rc = kit_resp_status(req, 202);
        goto out;
    }
    auth_token_new(token);
    /* the reset and its event commit together: a mailer never hears of a reset that is not */
    rc = auth_token_hash(token, strlen(token), hash);
    if (rc >= 0)
        rc = kit_db_begin(db, &err);
    if (rc >= 0)
        rc = kit_db_exec(db, sql_insert,
                         KIT_DB_PARAMS(AUTH_DB_STR(hash),
                                       KIT_DB_TEXT(kit_db_rows_text(rows, 0, 0, NULL)),
                                       KIT_DB_INT(now + AUTH_RESET_TTL_MS), KIT_DB_INT(now)),
                         &err);
    if (rc >= 0)
        rc = auth_event_password_reset(db, AUTH_DEFAULT_TENANT, kit_db_rows_text(rows, 0, 0, NULL),
                                       kit_db_rows_text(rows, 0, 1, NULL), now + AUTH_RESET_TTL_MS,
                                       &err);
    if (rc >= 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0)
        goto db_fail;
    /* Until mail exists, development gets the token in the log; production never sees it. */
    if (ctx->dev)
        ag_log_info("password reset token", AG_F_STR("email", normalized),
                    AG_F_STR("token", token));
    rc = kit_resp_status(req, 202);
    goto out;
db_fail:
    rc = kit_req_db_fail(req, rc, &err);
out:
    sodium_memzero(token, sizeof token);
    kit_db_rows_free(rows);
    return rc;
}

int auth_password_reset_confirm(struct kit_req *req)
{
    static const struct kit_field fields[] = {
        {"token", JSON_STRING, true, 1, AUTH_TOKEN_INPUT_MAX, 0, 0},
        {"new_password", JSON_STRING, true, 0, 0, 0, 0},
    };
    static const char sql_token[] =
        "SELECT u.id, u.tenant, u.email, u.email_normalized FROM password_resets pr "
        "JOIN users u ON u.id = pr.user_id "
        "WHERE pr.token_hash = $1 AND pr.used_at IS NULL AND pr.expires_at > $2";
    /* The conditional update decides atomically: a token raced by two confirms is spent once. */
    static const char sql_spend[] = "UPDATE password_resets SET used_at = $1 "
                                    "WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1";
    static const char sql_spend_others[] =
        "UPDATE password_resets SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL";
    struct auth_ctx *ctx = auth_ctx_of(req);
    struct kit_db *db = kit_req_db(req);
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    char token_hash[AUTH_HASH_LEN + 1], hash[crypto_pwhash_STRBYTES] = "";
    json_t *body = NULL;
    const char *problem;

    int rc = kit_req_json(req, &body);
    if (rc < 0)
        return rc;
    kit_req_fields(req, body, fields, sizeof fields / sizeof fields[0]);
    if (kit_req_invalid_count(req) > 0)
        return kit_resp_invalid(req);
    const char *token = json_string_value(json_object_get(body, "token"));
    const char *fresh = json_string_value(json_object_get(body, "new_password"));

    auth_token_hash(token, strlen(token), token_hash);
    rc = kit_db_query(db, sql_token,
                      KIT_DB_PARAMS(AUTH_DB_STR(token_hash), KIT_DB_INT(kit_now_ms())), 1, &rows,
                      &err);
    if (rc < 0)
        goto db_fail;
    if (rc == 0) {
        rc = kit_resp_problem(req, 400, "the reset token is unknown, expired or already used");
        goto out;
    }
    const char *user_id = kit_db_rows_text(rows, 0, 0, NULL);
    const char *tenant = kit_db_rows_text(rows, 0, 1, NULL);
    problem = auth_password_problem(fresh, kit_db_rows_text(rows, 0, 2, NULL));
    if (problem) {
        kit_req_invalid(req, "new_password", problem);
        rc = kit_resp_invalid(req);
        goto out;
    }
    rc = auth_password_hash(ctx, fresh, hash);
    if (rc < 0)
        goto out;
    int64_t now = kit_now_ms();
    rc = kit_db_begin(db, &err);
    if (rc >= 0)
        rc = kit_db_exec(db, sql_spend, KIT_DB_PARAMS(KIT_DB_INT(now), AUTH_DB_STR(token_hash)),
                         &err);
    if (rc == 0) {
        kit_db_rollback(db);
        rc = kit_resp_problem(req, 400, "the reset token is unknown, expired or already used");
        goto out;
    }
    if (rc >= 0)
        rc = kit_db_exec(db, sql_spend_others, KIT_DB_PARAMS(KIT_DB_INT(now), KIT_DB_TEXT(user_id)),
                         &err);
    if (rc >= 0)
        rc = password_store(db, tenant, NULL, user_id, hash, "user.password_reset",
                            kit_db_rows_text(rows, 0, 3, NULL), &err);
    if (rc >= 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0)
        goto db_fail;
    rc = kit_resp_status(req, 204);
    goto out;
db_fail:
    rc = kit_req_db_fail(req, rc, &err);
out:
    kit_db_rows_free(rows);
    sodium_memzero(hash, sizeof hash);
    return rc;
}
