/* JWK Sets (RFC 7517): parsed once into immutable, reference-counted sets of public keys. */
#include "core/jwks.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64url.h"
#include "core/jwt.h"
#include "core/banned.h"

enum {
    RSA_MIN_BITS = 2048,
    RSA_MAX_BITS = 8192, /* larger keys are unheard of for JWTs and only cost more */
    RSA_MAX_E_BYTES = 8,
    EC_MAX_FIELD = 48, /* P-384 */
    ED25519_BYTES = 32,
    DECODE_MAX = RSA_MAX_BITS / 8 + 1, /* largest member decoded, a leading zero allowed */
};

enum key_kind { KIND_EC, KIND_RSA, KIND_ED25519 };

struct ag_jwk {
    EVP_PKEY *pkey;
    enum key_kind kind;
    unsigned algorithms;
    size_t field_bytes; /* EC: bytes of r and of s */
    size_t sig_bytes;   /* RSA: the modulus size */
    bool has_kid;
    size_t kid_len;
    char kid[AG_JWK_KID_MAX + 1];
};

struct ag_jwks {
    atomic_size_t refs;
    size_t count;
    size_t skipped;
    char skip_reason[160];
    struct ag_jwk keys[];
};

/* ---- building one key ---- */

/* Decodes the base64url string member name of obj into out (cap bytes); false when unusable. */
static bool member_bytes(json_t *obj, const char *name, unsigned char *out, size_t cap, size_t *len)
{
    json_t *v = json_object_get(obj, name);
    if (!json_is_string(v))
        return false;
    struct ag_str s = {json_string_value(v), json_string_length(v)};
    return ag_base64url_decode(s, out, cap, len) == 0;
}

/*
 * Creates a public key of type name from params; NULL on failure or, when check, a failed
 * public key check (EC: the point is on the curve and of the right order).
 */
static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld, bool check)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY_CTX *checker = NULL;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1 || !check)
        goto out;
    checker = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (!checker || EVP_PKEY_public_check(checker) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    EVP_PKEY_CTX_free(checker);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

/* Fills k from an EC JWK; returns NULL or why the key is unusable. */
static const char *build_ec(json_t *jwk, struct ag_jwk *k)
{
    json_t *crv = json_object_get(jwk, "crv");
    const char *group;
    if (!json_is_string(crv))
        return "EC key without crv";
    if (strcmp(json_string_value(crv), "P-256") == 0) {
        group = "P-256";
        k->field_bytes = 32;
        k->algorithms = AG_JWT_ES256;
    } else if (strcmp(json_string_value(crv), "P-384") == 0) {
        group = "P-384";
        k->field_bytes = 48;
        k->algorithms = AG_JWT_ES384;
    } else {
        return "EC curve not supported";
    }
    unsigned char point[1 + 2 * EC_MAX_FIELD];
    size_t xlen, ylen;
    point[0] = 0x04; /* uncompressed */
    if (!member_bytes(jwk, "x", point + 1, EC_MAX_FIELD, &xlen) ||
        !member_bytes(jwk, "y", point + 1 + k->field_bytes, EC_MAX_FIELD, &ylen) ||
        xlen != k->field_bytes || ylen != k->field_bytes)
        return "EC x or y missing, not base64url or not of the curve's size";
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
                                         1 + 2 * k->field_bytes) == 1)
        k->pkey = pkey_from_params("EC", bld, true);
    OSSL_PARAM_BLD_free(bld);
    return k->pkey ? NULL : "EC point not on the curve (or out of memory)";
}

/* Fills k from an RSA JWK; returns NULL or why the key is unusable. */
static const char *build_rsa(json_t *jwk, struct ag_jwk *k)
{
    const char *why = NULL;
    unsigned char *nbytes = malloc(DECODE_MAX);
    unsigned char ebytes[RSA_MAX_E_BYTES];
    size_t nlen, elen;
    BIGNUM *n = NULL, *e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    if (!nbytes) {
        why = "out of memory";
        goto out;
    }
    if (!member_bytes(jwk, "n", nbytes, DECODE_MAX, &nlen) ||
        !member_bytes(jwk, "e", ebytes, sizeof ebytes, &elen) || nlen == 0 || elen == 0) {
        why = "RSA n or e missing, not base64url or too long";
        goto out;
    }
    n = BN_bin2bn(nbytes, (int)nlen, NULL);
    e = BN_bin2bn(ebytes, (int)elen, NULL);
    if (!n || !e) {
        why = "out of memory";
        goto out;
    }
    int bits = BN_num_bits(n);
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
        why = bits < RSA_MIN_BITS ? "RSA modulus under 2048 bits" : "RSA modulus over 8192 bits";
        goto out;
    }
    /*
     * OpenSSL's full public check (SP 800-56B: a Miller-Rabin test of n among others) costs
     * 10 ms for 2048 bits and over half a second for 8192, per key and refresh; what matters
     * for verifying is an odd modulus and an odd exponent above 1.
     */
    if (!BN_is_odd(n) || !BN_is_odd(e) || BN_is_one(e)) {
        why = "RSA n or e is even, or e is 1";
        goto out;
    }
    k->sig_bytes = (size_t)(bits + 7) / 8;
    k->algorithms = AG_JWT_RS256 | AG_JWT_RS384 | AG_JWT_RS512 | AG_JWT_PS256;
    bld = OSSL_PARAM_BLD_new();
    if (bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1)
        k->pkey = pkey_from_params("RSA", bld, false);
    if (!k->pkey)
        why = "RSA key refused by OpenSSL (or out of memory)";
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    free(nbytes);
    return why;
}

/* Fills k from an OKP JWK; returns NULL or why the key is unusable. */
static const char *build_okp(json_t *jwk, struct ag_jwk *k)
{
    json_t *crv = json_object_get(jwk, "crv");
    if (!json_is_string(crv) || strcmp(json_string_value(crv), "Ed25519") != 0)
        return "OKP curve not supported";
    unsigned char x[ED25519_BYTES];
    size_t xlen;
    if (!member_bytes(jwk, "x", x, sizeof x, &xlen) || xlen != ED25519_BYTES)
        return "Ed25519 x missing, not base64url or not 32 bytes";
    k->algorithms = AG_JWT_EDDSA;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld && OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, x, xlen) == 1)
        k->pkey = pkey_from_params("ED25519", bld, true);
    OSSL_PARAM_BLD_free(bld);
    return k->pkey ? NULL : "Ed25519 key refused (or out of memory)";
}

/* True when "key_ops" is absent, or an array that holds "verify". */
static bool key_ops_allow_verify(json_t *jwk)
{
    json_t *ops = json_object_get(jwk, "key_ops");
    if (!ops)
        return true;
    if (!json_is_array(ops))
        return false;
    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op)
    {
        if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0)
            return true;
    }
    return false;
}

/* Fills k from one entry of "keys"; returns NULL, or why the entry is skipped. */
static const char *build_key(json_t *jwk, struct ag_jwk *k)
{
    if (!json_is_object(jwk))
        return "not an object";
    json_t *kty = json_object_get(jwk, "kty");
    if (!json_is_string(kty))
        return "no kty";
    json_t *use = json_object_get(jwk, "use");
    if (use && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0))
        return "use is not sig";
    if (!key_ops_allow_verify(jwk))
        return "key_ops without verify";
    json_t *kid = json_object_get(jwk, "kid");
    if (kid) {
        if (!json_is_string(kid) || json_string_length(kid) > AG_JWK_KID_MAX)
            return "kid not a string of at most 256 bytes";
        k->has_kid = true;
        k->kid_len = json_string_length(kid);
        memcpy(k->kid, json_string_value(kid), k->kid_len);
        k->kid[k->kid_len] = '\0';
    }
    unsigned alg_bit = AG_JWT_ALG_ALL;
    json_t *alg = json_object_get(jwk, "alg");
    if (alg && (!json_is_string(alg) || ag_jwt_alg_parse(json_string_value(alg), &alg_bit)))
        return "alg not supported";

    const char *type = json_string_value(kty);
    const char *why;
    if (strcmp(type, "EC") == 0) {
        k->kind = KIND_EC;
        why = build_ec(jwk, k);
    } else if (strcmp(type, "RSA") == 0) {
        k->kind = KIND_RSA;
        why = build_rsa(jwk, k);
    } else if (strcmp(type, "OKP") == 0) {
        k->kind = KIND_ED25519;
        why = build_okp(jwk, k);
    } else if (strcmp(type, "oct") == 0) {
        why = "symmetric (oct) keys are never used";
    } else {
        why = "kty not supported";
    }
    if (!why && !(k->algorithms & alg_bit))
        why = "alg does not fit the key type";
    k->algorithms &= alg_bit;
    if (why) {
        EVP_PKEY_free(k->pkey);
        k->pkey = NULL;
    }
    return why;
}

/* ---- the set ---- */

static void jwks_free(struct ag_jwks *set)
{
    for (size_t i = 0; i < set->count; i++)
        EVP_PKEY_free(set->keys[i].pkey);
    free(set);
}

int ag_jwks_parse(const char *json, size_t len, struct ag_jwks **out, struct ag_err *err)
{
    int rc = 0;
    json_t *root = NULL;
    struct ag_jwks *set = NULL;
    *out = NULL;
    if (len > AG_JWKS_MAX_BYTES) {
        rc = ag_err_set(err, AG_ERANGE, "JWK Set of %zu bytes is over the %d-byte limit", len,
                        AG_JWKS_MAX_BYTES);
        goto out;
    }
    json_error_t jerr;
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        rc = ag_err_set(err, AG_EINVAL, "JWK Set is not JSON: %s at line %d", jerr.text, jerr.line);
        goto out;
    }
    json_t *keys = json_object_get(root, "keys");
    if (!json_is_object(root) || !json_is_array(keys)) {
        rc = ag_err_set(err, AG_EINVAL, "JWK Set is not an object with a \"keys\" array");
        goto out;
    }
    size_t n = json_array_size(keys);
    if (n > AG_JWKS_MAX_KEYS) {
        rc = ag_err_set(err, AG_ERANGE, "JWK Set has %zu keys, over the limit of %d", n,
                        AG_JWKS_MAX_KEYS);
        goto out;
    }
    set = calloc(1, sizeof *set + n * sizeof set->keys[0]);
    if (!set) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory for a JWK Set of %zu keys", n);
        goto out;
    }
    atomic_init(&set->refs, 1);
    for (size_t i = 0; i < n; i++) {
        struct ag_jwk *k = &set->keys[set->count];
        const char *why = build_key(json_array_get(keys, i), k);
        if (!why) {
            set->count++;
            continue;
        }
        memset(k, 0, sizeof *k);
        if (set->skipped++ == 0)
            snprintf(set->skip_reason, sizeof set->skip_reason, "key %zu: %s", i, why);
    }
    ERR_clear_error(); /* refused keys leave OpenSSL errors on this thread's queue */
    *out = set;
    set = NULL;
out:
    json_decref(root);
    return rc;
}

struct ag_jwks *ag_jwks_ref(struct ag_jwks *set)
{
    if (set)
        atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
    return set;
}

void ag_jwks_unref(struct ag_jwks *set)
{
    if (!set)
        return;
    if (atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) == 1)
        jwks_free(set);
}

size_t ag_jwks_count(const struct ag_jwks *set)
{
    return set ? set->count : 0;
}

size_t ag_jwks_skipped(const struct ag_jwks *set)
{
    return set ? set->skipped : 0;
}

const char *ag_jwks_skip_reason(const struct ag_jwks *set)
{
    return set ? set->skip_reason : "";
}

const struct ag_jwk *ag_jwks_key(const struct ag_jwks *set, size_t i)
{
    return &set->keys[i];
}

struct ag_str ag_jwk_kid(const struct ag_jwk *key)
{
    return key->has_kid ? (struct ag_str){key->kid, key->kid_len} : AG_STR_NULL;
}

unsigned ag_jwk_algorithms(const struct ag_jwk *key)
{
    return key->algorithms;
}

/* ---- verification ---- */

/* Appends the DER INTEGER for the big-endian unsigned n bytes at v; returns the new end. */
static unsigned char *der_integer(unsigned char *p, const unsigned char *v, size_t n)
{
    while (n > 1 && v[0] == 0) {
        v++;
        n--;
    }
    bool pad = v[0] & 0x80;
    *p++ = 0x02;
    *p++ = (unsigned char)(n + pad);
    if (pad)
        *p++ = 0x00;
    memcpy(p, v, n);
    return p + n;
}

/*
 * Converts a JWS ECDSA signature (r||s, each field_bytes long: RFC 7518 §3.4) into the DER
 * ECDSA-Sig-Value OpenSSL verifies. At most 2 + 2 * (3 + 48) = 104 bytes: short-form lengths.
 */
static size_t ecdsa_raw_to_der(const unsigned char *sig, size_t field_bytes,
                               unsigned char der[8 + 2 * EC_MAX_FIELD])
{
    unsigned char *p = der + 2;
    p = der_integer(p, sig, field_bytes);
    p = der_integer(p, sig + field_bytes, field_bytes);
    der[0] = 0x30;
    der[1] = (unsigned char)(p - der - 2);
    return (size_t)(p - der);
}

static const char *digest_for(unsigned alg)
{
    switch (alg) {
    case AG_JWT_ES256:
    case AG_JWT_RS256:
    case AG_JWT_PS256:
        return "SHA256";
    case AG_JWT_ES384:
    case AG_JWT_RS384:
        return "SHA384";
    case AG_JWT_RS512:
        return "SHA512";
    default:
        return NULL; /* EdDSA hashes inside */
    }
}

bool ag_jwk_verify(const struct ag_jwk *key, unsigned alg, struct ag_str signing_input,
                   const unsigned char *sig, size_t sig_len)
{
    if (alg == 0 || (alg & (alg - 1)) != 0 || !(key->algorithms & alg))
        return false;
    unsigned char der[8 + 2 * EC_MAX_FIELD];
    switch (key->kind) {
    case KIND_EC:
        if (sig_len != 2 * key->field_bytes)
            return false;
        sig_len = ecdsa_raw_to_der(sig, key->field_bytes, der);
        sig = der;
        break;
    case KIND_RSA:
        if (sig_len != key->sig_bytes)
            return false;
        break;
    case KIND_ED25519:
        if (sig_len != 64)
            return false;
        break;
    }
    bool ok = false;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx ||
        EVP_DigestVerifyInit_ex(ctx, &pctx, digest_for(alg), NULL, NULL, key->pkey, NULL) != 1)
        goto out;
    if (alg == AG_JWT_PS256 &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
        goto out;
    if (alg != AG_JWT_PS256 && key->kind == KIND_RSA &&
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
        goto out;
    ok = EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)signing_input.p,
                          signing_input.len) == 1;
out:
    EVP_MD_CTX_free(ctx);
    if (!ok)
        ERR_clear_error();
    return ok;
}
