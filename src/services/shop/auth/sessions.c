/* Sessions: login with lockout, refresh-token rotation with family revocation, logout. */
#include "sessions.h"

#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "context.h"
#include "passwords.h"
#include "tokens.h"
#include "validate.h"
#include "core/buf.h"
#include "core/banned.h"

enum {
    ROLES_MAX = 64,          /* roles carried by one access token */
    ACCESS_TOKEN_MAX = 8192, /* the minted token's buffer limit */
};

#define LOGIN_REFUSED   "the e-mail address or the password is wrong"
#define REFRESH_REFUSED "the refresh token is unknown, expired, revoked or already used"

int auth_sessions_revoke_user(struct kit_db *db, const char *user_id, struct ag_err *err)
{
    static const char sql[] =
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL";
    int rc =
        kit_db_exec(db, sql, KIT_DB_PARAMS(KIT_DB_INT(kit_now_ms()), KIT_DB_TEXT(user_id)), err);
    return rc < 0 ? rc : 0;
}

/*
 * Mints an access token for user_id (its roles read now) into access, and stores a new refresh
 * token of family_id into refresh. Returns 0, the codes of kit_db_*, or kit_keys_mint's.
 */
static int session_issue(struct kit_db *db, struct auth_ctx *ctx, const char *user_id,
                         const char *tenant, const char *family_id, struct ag_buf *access,
                         char refresh[AUTH_TOKEN_LEN + 1], struct ag_err *err)
{
    static const char sql_roles[] = "SELECT r.name FROM user_roles ur JOIN roles r ON "
                                    "r.id = ur.role_id WHERE ur.user_id = $1 ORDER BY r.name";
    static const char sql_insert[] =
        "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, expires_at, spent_at, "
        "revoked_at, created_at) VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6)";
    struct kit_db_rows *rows = NULL;
    const char *roles[ROLES_MAX];
    char id[KIT_ID_LEN + 1], hash[AUTH_HASH_LEN + 1];
    int64_t now = kit_now_ms();
    size_t role_count = 0;

    int rc =
        kit_db_query(db, sql_roles, KIT_DB_PARAMS(KIT_DB_TEXT(user_id)), ROLES_MAX, &rows, err);
    if (rc < 0)
        goto out;
    role_count = (size_t)rc;
    for (size_t i = 0; i < role_count; i++)
        roles[i] = kit_db_rows_text(rows, i, 0, NULL);
    struct kit_token_claims claims = {
        .issuer = ctx->issuer,
        .audience = AUTH_AUDIENCE,
        .subject = user_id,
        .tenant = tenant,
        .roles = roles,
        .role_count = role_count,
        .ttl_s = ctx->access_ttl_s,
        .now_s = 0,
    };
    kit_keys_reload(ctx->keys, NULL); /* a rotation by `agora keys rotate` is picked up here */
    rc = kit_keys_mint(ctx->keys, &claims, access, NULL, err);
    if (rc < 0)
        goto out;
    auth_token_new(refresh);
    if ((rc = auth_token_hash(refresh, AUTH_TOKEN_LEN, hash)) < 0) /* never store an empty hash */
        goto out;
    kit_id_new(id);
    const char *family = family_id ? family_id : id; /* a login starts a family */
    rc = kit_db_exec(
        db, sql_insert,
        KIT_DB_PARAMS(AUTH_DB_STR(id), KIT_DB_TEXT(family), KIT_DB_TEXT(user_id), AUTH_DB_STR(hash),
                      KIT_DB_INT(now + (int64_t)ctx->refresh_ttl_s * 1000), KIT_DB_INT(now)),
        err);
    if (rc > 0)
        rc = 0;
out:
    kit_db_rows_free(rows);
    return rc;
}

/* 200 {"access_token","token_type","expires_in","refresh_token"}, never cached. */
static int session_respond(struct kit_req *req, const struct auth_ctx *ctx,
                           const struct ag_buf *access, const char *refresh)
{
    struct ag_str a = ag_buf_str(access);
    json_t *body =
        json_pack("{s:s%, s:s, s:I, s:s}", "access_token", a.p, a.len, "token_type", "Bearer",
                  "expires_in", (json_int_t)ctx->access_ttl_s, "refresh_token", refresh);
    kit_resp_header(req, "Cache-Control", "no-store");
    return kit_resp_json(req, 200, body);
}

/* One login attempt's claim on its e-mail's failure budget (see login_reserve). */
struct login_slot {
    int64_t at;      /* the failure row recorded for this attempt (unique for the e-mail) */
    int64_t retry_s; /* > 0: the e-mail is locked, nothing was recorded; else 0 */
    bool locks;      /* this attempt's failure is the one that locks the e-mail */
};

/*
 * Runs before the password is checked. In one transaction, serialised per e-mail (BEGIN
 * IMMEDIATE on SQLite, an advisory lock on PostgreSQL): prunes the failures that left the
 * window, counts the rest, and unless they already lock the e-mail records this attempt as a
 * failure. A check made before the Argon2id work and a failure written after it would let
 * concurrent guesses all pass the check: this way at most AUTH_LOCK_FAILURES passwords are
 * tried per window, whatever the concurrency. A login that succeeds takes its row back
 * (sql_release in auth_login). Returns 0 and *slot, or the codes of kit_db_*.
 */
static int login_reserve(struct kit_db *db, const char *tenant, const char *email,
                         struct login_slot *slot, struct ag_err *err)
{
    static const char sql_lock[] = "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))";
    static const char sql_prune[] =
        "DELETE FROM login_failures WHERE tenant = $1 AND email_normalized = $2 AND at <= $3";
    static const char sql_window[] = "SELECT at FROM login_failures WHERE tenant = $1 AND "
                                     "email_normalized = $2 ORDER BY at";
    static const char sql_insert[] =
        "INSERT INTO login_failures (tenant, email_normalized, at) VALUES ($1, $2, $3)";
    struct kit_db_rows *rows = NULL;
    int64_t now = kit_now_ms();

    *slot = (struct login_slot){0};
    int rc = kit_db_begin(db, err);
    if (rc >= 0 && kit_db_driver(db) == KIT_DB_POSTGRES) {
        rc = kit_db_query(db, sql_lock, KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(email)), 1,
                          &rows, err);
        kit_db_rows_free(rows);
        rows = NULL;
    }
    if (rc >= 0)
        rc = kit_db_exec(db, sql_prune,
                         KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(email),
                                       KIT_DB_INT(now - AUTH_LOCK_WINDOW_MS)),
                         err);
    if (rc >= 0)
        rc = kit_db_query(db, sql_window, KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(email)), 0,
                          &rows, err);
    if (rc >= AUTH_LOCK_FAILURES) {
        /* Unlocked once fewer than 5 remain: when the (n-4)th oldest leaves the window. */
        int64_t at = kit_db_rows_int(rows, (size_t)rc - AUTH_LOCK_FAILURES, 0);
        int64_t wait_ms = at + AUTH_LOCK_WINDOW_MS - now;
        slot->retry_s = wait_ms <= 0 ? 1 : (wait_ms + 999) / 1000;
    } else if (rc >= 0) {
        /* After the newest failure: the row (tenant, e-mail, at) is this attempt's alone. */
        int64_t last = rc > 0 ? kit_db_rows_int(rows, (size_t)rc - 1, 0) : now - 1;
        slot->at = now > last ? now : last + 1;
        slot->locks = rc == AUTH_LOCK_FAILURES - 1;
        rc = kit_db_exec(
            db, sql_insert,
            KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(email), KIT_DB_INT(slot->at)), err);
    }
    if (rc >= 0)
        rc = kit_db_commit(db, err);
    if (rc < 0)
        kit_db_rollback(db);
    kit_db_rows_free(rows);
    return rc < 0 ? rc : 0;
}

int auth_login(struct kit_req *req)
{
    static const struct kit_field fields[] = {
        {"email", JSON_STRING, true, 1, 320, 0, 0},
        {"password", JSON_STRING, true, 1, 1024, 0, 0},
    };
    static const char sql_user[] = "SELECT id, password_hash, disabled FROM users "
                                   "WHERE tenant = $1 AND email_normalized = $2";
    static const char sql_rehash[] = "UPDATE users SET password_hash = $1 WHERE id = $2";
    static const char sql_release[] = "DELETE FROM login_failures WHERE tenant = $1 AND "
                                      "email_normalized = $2 AND at = $3";
    struct auth_ctx *ctx = auth_ctx_of(req);
    struct kit_db *db = kit_req_db(req);
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    struct ag_buf access;
    struct login_slot slot;
    const char *tenant = AUTH_DEFAULT_TENANT;
    char normalized[AUTH_EMAIL_MAX + 1], refresh[AUTH_TOKEN_LEN + 1] = "";
    char hash[crypto_pwhash_STRBYTES] = "", retry[24];
    json_t *body = NULL;
    bool ok;

    ag_buf_init(&access, ACCESS_TOKEN_MAX);
    int rc = kit_req_json(req, &body);
    if (rc < 0)
        return rc;
    kit_req_fields(req, body, fields, sizeof fields / sizeof fields[0]);
    if (kit_req_invalid_count(req) > 0) {
        rc = kit_resp_invalid(req);
        goto out;
    }
    const char *email = json_string_value(json_object_get(body, "email"));
    const char *password = json_string_value(json_object_get(body, "password"));
    auth_email_normalize(email, normalized);

    rc = login_reserve(db, tenant, normalized, &slot, &err);
    if (rc < 0)
        goto db_fail;
    if (slot.retry_s > 0) {
        snprintf(retry, sizeof retry, "%lld", (long long)slot.retry_s);
        kit_resp_header(req, "Retry-After", retry);
        rc = kit_resp_problem(req, 429,
                              "too many failed logins for this e-mail address; retry in %lld s",
                              (long long)slot.retry_s);
        goto out;
    }
    rc = kit_db_query(db, sql_user, KIT_DB_PARAMS(KIT_DB_TEXT(tenant), AUTH_DB_STR(normalized)), 1,
                      &rows, &err);
    if (rc < 0)
        goto db_fail;
    if (rc == 0) {
        /* The same Argon2id work as for a known account, so timing does not tell them apart. */
        auth_password_verify(ctx->dummy_hash, password);
        ok = false;
    } else {
        /* A disabled account is refused like a wrong password, and its attempt counts too. */
        ok = auth_password_verify(kit_db_rows_text(rows, 0, 1, NULL), password) &&
             kit_db_rows_int(rows, 0, 2) == 0;
    }
    if (!ok) {
        /* The attempt's failure row stays; the one that locks the e-mail is audited. */
        if (slot.locks) {
            rc = auth_audit(db, tenant, NULL, "login.locked", normalized, NULL, &err);
            if (rc < 0)
                goto db_fail;
        }
        rc = kit_resp_problem(req, 401, LOGIN_REFUSED);
        goto out;
    }
    const char *user_id = kit_db_rows_text(rows, 0, 0, NULL);
    const char *stored = kit_db_rows_text(rows, 0, 1, NULL);
    bool rehash = auth_password_needs_rehash(ctx, stored);
    if (rehash) {
        rc = auth_password_hash(ctx, password, hash);
        if (rc < 0)
            goto db_fail;
    }
    /* One transaction: the attempt's failure row goes, the rehash and the session come. */
    rc = kit_db_begin(db, &err);
    if (rc >= 0)
        rc = kit_db_exec(
            db, sql_release,
            KIT_DB_PARAMS(KIT_DB_TEXT(tenant), AUTH_DB_STR(normalized), KIT_DB_INT(slot.at)), &err);
    if (rc >= 0 && rehash)
        rc = kit_db_exec(db, sql_rehash, KIT_DB_PARAMS(AUTH_DB_STR(hash), KIT_DB_TEXT(user_id)),
                         &err);
    if (rc >= 0)
        rc = session_issue(db, ctx, user_id, tenant, NULL, &access, refresh, &err);
    if (rc >= 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0)
        goto db_fail;
    rc = session_respond(req, ctx, &access, refresh);
    goto out;
db_fail:
    rc = kit_req_db_fail(req, rc, &err);
out:
    auth_wipe_member(body, "password");
    sodium_memzero(hash, sizeof hash);
    sodium_memzero(refresh, sizeof refresh);
    kit_db_rows_free(rows);
    ag_buf_release(&access);
    return rc;
}

int auth_refresh(struct kit_req *req)
{
    static const struct kit_field fields[] = {
        {"refresh_token", JSON_STRING, true, 1, AUTH_TOKEN_INPUT_MAX, 0, 0},
    };
    static const char sql_read[] =
        "SELECT rt.family_id, rt.user_id, rt.expires_at, rt.spent_at, rt.revoked_at, u.tenant, "
        "u.disabled, rt.id FROM refresh_tokens rt JOIN users u ON u.id = rt.user_id "
        "WHERE rt.token_hash = $1";
    /* PostgreSQL: the row lock makes a concurrent presentation of the same token wait, then
     * read it spent. SQLite's BEGIN IMMEDIATE already serialises writers. */
    static const char sql_read_locked[] =
        "SELECT rt.family_id, rt.user_id, rt.expires_at, rt.spent_at, rt.revoked_at, u.tenant, "
        "u.disabled, rt.id FROM refresh_tokens rt JOIN users u ON u.id = rt.user_id "
        "WHERE rt.token_hash = $1 FOR UPDATE OF rt";
    static const char sql_revoke_family[] =
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL";
    static const char sql_spend[] = "UPDATE refresh_tokens SET spent_at = $1 WHERE id = $2";
    struct auth_ctx *ctx = auth_ctx_of(req);
    struct kit_db *db = kit_req_db(req);
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    struct ag_buf access;
    char hash[AUTH_HASH_LEN + 1], refresh[AUTH_TOKEN_LEN + 1] = "";
    json_t *body = NULL;
    int64_t now = kit_now_ms();

    ag_buf_init(&access, ACCESS_TOKEN_MAX);
    int rc = kit_req_json(req, &body);
    if (rc < 0)
        return rc;
    kit_req_fields(req, body, fields, sizeof fields / sizeof fields[0]);
    if (kit_req_invalid_count(req) > 0) {
        rc = kit_resp_invalid(req);
        goto out;
    }
    const char *presented = json_string_value(json_object_get(body, "refresh_token"));
    auth_token_hash(presented, strlen(presented), hash);

    rc = kit_db_begin(db, &err);
    if (rc < 0)
        goto db_fail;
    rc = kit_db_query(db, kit_db_driver(db) == KIT_DB_POSTGRES ? sql_read_locked : sql_read,
                      KIT_DB_PARAMS(AUTH_DB_STR(hash)), 1, &rows, &err);
    if (rc < 0)
        goto db_fail;
    if (rc == 0 || !kit_db_rows_null(rows, 0, 4) || kit_db_rows_int(rows, 0, 2) <= now ||
        kit_db_rows_int(rows, 0, 6) != 0) {
        kit_db_rollback(db);
        rc = kit_resp_problem(req, 401, REFRESH_REFUSED);
        goto out;
    }
    const char *family = kit_db_rows_text(rows, 0, 0, NULL);
    const char *user_id = kit_db_rows_text(rows, 0, 1, NULL);
    const char *tenant = kit_db_rows_text(rows, 0, 5, NULL);
    if (!kit_db_rows_null(rows, 0, 3)) {
        /* Reuse of a spent token: someone holds a copy. The whole family goes. */
        rc = kit_db_exec(db, sql_revoke_family, KIT_DB_PARAMS(KIT_DB_INT(now), KIT_DB_TEXT(family)),
                         &err);
        if (rc >= 0)
            rc = auth_audit(db, tenant, user_id, "session.reuse_detected", user_id, NULL, &err);
        if (rc >= 0)
            rc = kit_db_commit(db, &err);
        if (rc < 0)
            goto db_fail;
        rc = kit_resp_problem(req, 401, REFRESH_REFUSED);
        goto out;
    }
    rc = kit_db_exec(
        db, sql_spend,
        KIT_DB_PARAMS(KIT_DB_INT(now), KIT_DB_TEXT(kit_db_rows_text(rows, 0, 7, NULL))), &err);
    if (rc >= 0)
        rc = session_issue(db, ctx, user_id, tenant, family, &access, refresh, &err);
    if (rc >= 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0)
        goto db_fail;
    rc = session_respond(req, ctx, &access, refresh);
    goto out;
db_fail:
    rc = kit_req_db_fail(req, rc, &err);
out:
    sodium_memzero(refresh, sizeof refresh);
    kit_db_rows_free(rows);
    ag_buf_release(&access);
    return rc;
}

int auth_logout(struct kit_req *req)
{
    static const struct kit_field fields[] = {
        {"refresh_token", JSON_STRING, true, 1, AUTH_TOKEN_INPUT_MAX, 0, 0},
    };
    static const char sql[] = "UPDATE refresh_tokens SET revoked_at = $1 WHERE revoked_at IS NULL "
                              "AND family_id IN (SELECT family_id FROM refresh_tokens "
                              "WHERE token_hash = $2)";
    struct ag_err err = {0};
    char hash[AUTH_HASH_LEN + 1];
    json_t *body = NULL;

    int rc = kit_req_json(req, &body);
    if (rc < 0)
        return rc;
    kit_req_fields(req, body, fields, sizeof fields / sizeof fields[0]);
    if (kit_req_invalid_count(req) > 0)
        return kit_resp_invalid(req);
    const char *presented = json_string_value(json_object_get(body, "refresh_token"));
    auth_token_hash(presented, strlen(presented), hash);
    rc = kit_db_exec(kit_req_db(req), sql,
                     KIT_DB_PARAMS(KIT_DB_INT(kit_now_ms()), AUTH_DB_STR(hash)), &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    return kit_resp_status(req, 204);
}
