/* JWS signing (RFC 7515 compact form) with ES256: the issuing side of core/jwt.c. */
#include "core/jws_sign.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64url.h"
#include "core/banned.h"

enum {
    P256_FIELD = 32,    /* bytes of r and of s */
    ES256_SIG = 64,     /* the JOSE signature: r||s, each left-padded to P256_FIELD */
    ES256_DER_MAX = 80, /* OpenSSL's DER ECDSA-Sig-Value for P-256 is at most 72 bytes */
};

/* Appends base64url(data) to b. Returns 0, AG_ERANGE, AG_ENOMEM; b unchanged on failure. */
static int append_b64(struct ag_buf *b, const void *data, size_t len)
{
    size_t n = ag_base64url_encoded_len(len);
    int rc = ag_buf_reserve(b, n + 1);
    if (rc < 0)
        return rc;
    ag_base64url_encode(data, len, ag_buf_tail(b));
    ag_buf_commit(b, n);
    return 0;
}

/* The protected header as compact JSON (malloc'd, for the caller to free): alg, typ, kid. */
static int header_json(const char *kid, const char *typ, char **out, struct ag_err *err)
{
    int rc = 0;
    json_t *header = json_object();
    if (!header)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    if (json_object_set_new(header, "alg", json_string("ES256")) != 0 ||
        (typ && json_object_set_new(header, "typ", json_string(typ)) != 0) ||
        (kid && json_object_set_new(header, "kid", json_string(kid)) != 0)) {
        rc = ag_err_set(err, AG_EINVAL, "the JWS kid or typ is not valid UTF-8");
        goto out;
    }
    *out = json_dumps(header, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!*out)
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
out:
    json_decref(header);
    return rc;
}

/* True for an EC key on P-256 (prime256v1) itself, not merely some 256-bit curve. */
static bool key_is_p256(EVP_PKEY *key)
{
    char group[32] = "";
    size_t glen = 0;
    bool ok = key && EVP_PKEY_is_a(key, "EC") &&
              EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                             &glen) == 1 &&
              strcmp(group, "prime256v1") == 0;
    if (!ok)
        ERR_clear_error();
    return ok;
}

/* Signs input with key (ES256) into the JOSE form r||s (OpenSSL gives DER). */
static int es256_sign(EVP_PKEY *key, const char *input, size_t len, unsigned char sig[ES256_SIG],
                      struct ag_err *err)
{
    int rc = 0;
    unsigned char der[ES256_DER_MAX];
    size_t der_len = sizeof(der);
    const unsigned char *p = der;
    ECDSA_SIG *es = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, der, &der_len, (const unsigned char *)input, len) != 1) {
        rc = ag_err_set(err, AG_ESYS, "the ES256 signature failed");
        goto out;
    }
    es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    const BIGNUM *r = NULL, *s = NULL;
    if (es)
        ECDSA_SIG_get0(es, &r, &s);
    if (!es || BN_bn2binpad(r, sig, P256_FIELD) != P256_FIELD ||
        BN_bn2binpad(s, sig + P256_FIELD, P256_FIELD) != P256_FIELD) {
        rc = ag_err_set(err, AG_ESYS, "the ES256 signature could not be converted");
        goto out;
    }
out:
    if (rc < 0)
        ERR_clear_error();
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(md);
    return rc;
}

int ag_jws_sign_es256(EVP_PKEY *key, const char *kid, const char *typ, const char *payload_json,
                      size_t len, struct ag_buf *out, struct ag_err *err)
{
    int rc = 0;
    char *header_text = NULL;
    struct ag_buf input;
    unsigned char sig[ES256_SIG];
    size_t out_len0 = out->len;
    ag_buf_init(&input, AG_JWS_MAX_SIGNING_INPUT);

    if (!key_is_p256(key)) {
        rc = ag_err_set(err, AG_EINVAL, "ES256 needs an EC P-256 key");
        goto out;
    }
    if ((rc = header_json(kid, typ, &header_text, err)) < 0)
        goto out;
    if ((rc = append_b64(&input, header_text, strlen(header_text))) < 0 ||
        (rc = ag_buf_append_str(&input, AG_STR("."))) < 0 ||
        (rc = append_b64(&input, payload_json, len)) < 0) {
        rc = ag_err_set(err, rc, "the token is too large");
        goto out;
    }
    if ((rc = es256_sign(key, input.data + input.off, input.len, sig, err)) < 0)
        goto out;
    if ((rc = ag_buf_append(out, input.data + input.off, input.len)) < 0 ||
        (rc = ag_buf_append_str(out, AG_STR("."))) < 0 ||
        (rc = append_b64(out, sig, sizeof(sig))) < 0) {
        out->len = out_len0;
        rc = ag_err_set(err, rc, "the token does not fit the output buffer");
        goto out;
    }
out:
    free(header_text);
    ag_buf_release(&input);
    return rc;
}
