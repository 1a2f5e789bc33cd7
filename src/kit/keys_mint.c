/* Access token minting: claims checked and built here, signed with the directory's current key. */
#include "kit/keys.h"

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/base64url.h"
#include "core/jws_sign.h"
#include "kit/keys_internal.h"
#include "core/banned.h"

enum {
    JTI_BYTES = 16, /* a random 128-bit token id */
};

/* A role goes into a comma-separated list downstream: no comma, space or control byte. */
static bool role_valid(const char *role)
{
    if (!role || !*role)
        return false;
    for (const unsigned char *p = (const unsigned char *)role; *p; p++) {
        if (*p <= 0x20 || *p == 0x7f || *p == ',')
            return false;
    }
    return true;
}

/* Writes a fresh jti: JTI_BYTES random bytes, base64url, NUL-terminated. */
static int jti_generate(char out[40], struct ag_err *err)
{
    unsigned char raw[JTI_BYTES];
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        ERR_clear_error();
        return ag_err_set(err, AG_ESYS, "the random generator failed");
    }
    ag_base64url_encode(raw, sizeof(raw), out);
    return 0;
}

/* The roles as a JSON array of strings (*out, for the caller to decref). */
static int roles_json(const struct kit_token_claims *claims, json_t **out, struct ag_err *err)
{
    json_t *roles = json_array();
    if (!roles)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    for (size_t i = 0; i < claims->role_count; i++) {
        if (!role_valid(claims->roles[i])) {
            json_decref(roles);
            return ag_err_set(err, AG_EINVAL,
                              "role %zu is empty or holds a comma, space or control character", i);
        }
        if (json_array_append_new(roles, json_string(claims->roles[i])) != 0) {
            json_decref(roles);
            return ag_err_set(err, AG_EINVAL, "role %zu is not UTF-8", i);
        }
    }
    *out = roles;
    return 0;
}

int kit_keys_mint(struct kit_keys *keys, const struct kit_token_claims *claims, struct ag_buf *out,
                  char jti_out[40], struct ag_err *err)
{
    int rc = 0;
    char kid[64], jti[40];
    char *payload_text = NULL;
    json_t *payload = NULL, *roles = NULL;
    EVP_PKEY *pkey = NULL;

    if (!claims || !claims->issuer || !*claims->issuer || !claims->audience || !*claims->audience ||
        !claims->subject || !*claims->subject || claims->ttl_s == 0 ||
        (claims->role_count > 0 && !claims->roles)) {
        rc =
            ag_err_set(err, AG_EINVAL, "a token needs an issuer, an audience, a subject and a ttl");
        goto out;
    }
    if ((rc = roles_json(claims, &roles, err)) < 0)
        goto out;
    if ((rc = jti_generate(jti, err)) < 0)
        goto out;
    if ((rc = kit_keys_signing_key(keys, &pkey, kid, err)) < 0)
        goto out;

    int64_t iat = claims->now_s ? claims->now_s : (int64_t)time(NULL);
    payload =
        json_pack("{s:s, s:s, s:s, s:O, s:I, s:I, s:s}", "iss", claims->issuer, "aud",
                  claims->audience, "sub", claims->subject, "roles", roles, "iat", (json_int_t)iat,
                  "exp", (json_int_t)(iat + (int64_t)claims->ttl_s), "jti", jti);
    if (!payload) {
        rc = ag_err_set(err, AG_EINVAL, "a claim is not valid UTF-8");
        goto out;
    }
    if (claims->tenant &&
        json_object_set_new(payload, "tenant", json_string(claims->tenant)) != 0) {
        rc = ag_err_set(err, AG_EINVAL, "the tenant is not valid UTF-8");
        goto out;
    }
    payload_text = json_dumps(payload, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!payload_text) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    rc = ag_jws_sign_es256(pkey, kid, "at+jwt", payload_text, strlen(payload_text), out, err);
    if (rc < 0)
        goto out;
    if (jti_out)
        memcpy(jti_out, jti, strlen(jti) + 1);
out:
    EVP_PKEY_free(pkey);
    free(payload_text);
    json_decref(payload);
    json_decref(roles);
    return rc;
}
