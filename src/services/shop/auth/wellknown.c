/* Discovery: the JWK Set (current, next and retired keys) and the configuration document. */
#include "wellknown.h"

#include <stdio.h>

#include "context.h"
#include "core/buf.h"
#include "core/banned.h"

enum { JWKS_MAX = 64 * 1024 };

int auth_jwks(struct kit_req *req)
{
    struct auth_ctx *ctx = auth_ctx_of(req);
    struct ag_buf out;
    ag_buf_init(&out, JWKS_MAX);
    kit_keys_reload(ctx->keys, NULL); /* the loaded keys stay in use when the reread fails */
    int rc = kit_keys_jwks(ctx->keys, &out);
    if (rc == 0) {
        struct ag_str s = ag_buf_str(&out);
        kit_resp_header(req, "Cache-Control", "public, max-age=300");
        rc = kit_resp_raw(req, 200, "application/json", s.p, s.len);
    }
    ag_buf_release(&out);
    return rc;
}

int auth_openid_configuration(struct kit_req *req)
{
    struct auth_ctx *ctx = auth_ctx_of(req);
    char jwks_uri[512], token_endpoint[512];
    snprintf(jwks_uri, sizeof jwks_uri, "%s/.well-known/jwks.json", ctx->issuer);
    snprintf(token_endpoint, sizeof token_endpoint, "%s/api/v1/auth/login", ctx->issuer);
    json_t *doc =
        json_pack("{s:s, s:s, s:s, s:[s,s], s:[s], s:[s], s:[s]}", "issuer", ctx->issuer,
                  "jwks_uri", jwks_uri, "token_endpoint", token_endpoint, "grant_types_supported",
                  "password", "refresh_token", "id_token_signing_alg_values_supported", "ES256",
                  "response_types_supported", "token", "subject_types_supported", "public");
    kit_resp_header(req, "Cache-Control", "public, max-age=300");
    return kit_resp_json(req, 200, doc);
}
