/* The auth service's shared state: settings read and bounded once, database helpers. */
#include "context.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/banned.h"

/* Reads an unsigned setting within [min, max]; an unset setting keeps *out. */
static int setting_u64(struct kit_app *app, const char *env, uint64_t min, uint64_t max,
                       uint64_t *out, struct ag_err *err)
{
    const char *text = kit_app_setting(app, env);
    uint64_t v = 0;
    if (!text || !*text)
        return 0;
    if (ag_str_to_u64(ag_str_from_cstr(text), max, &v) < 0 || v < min)
        return ag_err_set(err, AG_EINVAL, "%s: expected an integer from %llu to %llu, got \"%s\"",
                          env, (unsigned long long)min, (unsigned long long)max, text);
    *out = v;
    return 0;
}

int auth_ctx_new(struct kit_app *app, struct auth_ctx **out, struct ag_err *err)
{
    int rc = 0;
    struct auth_ctx *ctx = calloc(1, sizeof *ctx);
    uint64_t access = 900, refresh = 30 * 24 * 3600;
    uint64_t ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
    uint64_t mem_kib = crypto_pwhash_MEMLIMIT_INTERACTIVE / 1024;

    if (!ctx)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    ctx->issuer = kit_app_setting(app, "AGORA_AUTH_ISSUER");
    if (!ctx->issuer || !*ctx->issuer)
        ctx->issuer = "http://127.0.0.1:8080";
    ctx->keys_dir = kit_app_setting(app, "AGORA_AUTH_KEYS_DIR");
    if (!ctx->keys_dir || !*ctx->keys_dir)
        ctx->keys_dir = "var/keys/auth";
    /* Access tokens: a minute to a day; refresh tokens: five minutes to a year. */
    rc = setting_u64(app, "AGORA_AUTH_ACCESS_TTL", 60, 86400, &access, err);
    if (rc == 0)
        rc = setting_u64(app, "AGORA_AUTH_REFRESH_TTL", 300, 366u * 86400, &refresh, err);
    /* OWASP's floor for Argon2id is m = 19 MiB, t = 2; the ceiling keeps a typo from hanging. */
    if (rc == 0)
        rc = setting_u64(app, "AGORA_AUTH_ARGON2_OPS", 2, 64, &ops, err);
    if (rc == 0)
        rc = setting_u64(app, "AGORA_AUTH_ARGON2_MEM_KIB", 19 * 1024, 4u * 1024 * 1024, &mem_kib,
                         err);
    if (rc < 0)
        goto out;
    ctx->access_ttl_s = (uint32_t)access;
    ctx->refresh_ttl_s = (uint32_t)refresh;
    ctx->argon2_ops = ops;
    ctx->argon2_mem = (size_t)mem_kib * 1024;
    ctx->dev = kit_app_is_dev(app);
out:
    if (rc < 0) {
        free(ctx);
        ctx = NULL;
    }
    *out = ctx;
    return rc;
}

void auth_ctx_free(struct auth_ctx *ctx)
{
    if (!ctx)
        return;
    kit_keys_free(ctx->keys);
    free(ctx);
}

struct auth_ctx *auth_ctx_of(struct kit_req *req)
{
    return kit_app_data(kit_req_app(req));
}

int auth_resp_unauthorized(struct kit_req *req, const char *detail)
{
    kit_resp_header(req, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
    return kit_resp_problem(req, 401, "%s", detail);
}

void auth_wipe_member(json_t *obj, const char *key)
{
    json_t *s = json_object_get(obj, key);
    if (json_is_string(s))
        sodium_memzero((char *)(uintptr_t)json_string_value(s), json_string_length(s));
}
