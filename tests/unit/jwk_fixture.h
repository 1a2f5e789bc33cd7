/* Test helper shared by the JWT, JWKS and keyring tests: an OpenSSL public key as a JWK. */
#ifndef AG_TEST_JWK_FIXTURE_H
#define AG_TEST_JWK_FIXTURE_H

/* Include after cmocka.h, jansson.h, openssl/bn.h, openssl/core_names.h, openssl/evp.h and
 * core/base64url.h. */

/* Sets o[name] to the base64url text of n bytes at p. */
static inline void test_jwk_set_b64(json_t *o, const char *name, const unsigned char *p, size_t n)
{
    char *text = malloc(ag_base64url_encoded_len(n) + 1);
    assert_non_null(text);
    ag_base64url_encode(p, n, text);
    json_object_set_new(o, name, json_string(text));
    free(text);
}

/* Sets o[name] to the big-endian bytes of k's param, left-padded to pad bytes (0: minimal). */
static inline void test_jwk_set_bn(json_t *o, const char *name, EVP_PKEY *k, const char *param,
                                   size_t pad)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    int n = pad ? BN_bn2binpad(bn, buf, (int)pad) : BN_bn2bin(bn, buf);
    assert_true(n > 0);
    test_jwk_set_b64(o, name, buf, (size_t)n);
    BN_free(bn);
}

/* The public JWK of k (EC P-256/P-384, RSA, Ed25519) as a new object; kid and alg when set. */
static inline json_t *test_jwk_of(EVP_PKEY *k, const char *kid, const char *alg)
{
    json_t *o = json_object();
    if (EVP_PKEY_is_a(k, "EC")) {
        size_t field = (size_t)(EVP_PKEY_get_bits(k) + 7) / 8;
        json_object_set_new(o, "kty", json_string("EC"));
        json_object_set_new(o, "crv", json_string(field == 32 ? "P-256" : "P-384"));
        test_jwk_set_bn(o, "x", k, OSSL_PKEY_PARAM_EC_PUB_X, field);
        test_jwk_set_bn(o, "y", k, OSSL_PKEY_PARAM_EC_PUB_Y, field);
    } else if (EVP_PKEY_is_a(k, "RSA")) {
        json_object_set_new(o, "kty", json_string("RSA"));
        test_jwk_set_bn(o, "n", k, OSSL_PKEY_PARAM_RSA_N, 0);
        test_jwk_set_bn(o, "e", k, OSSL_PKEY_PARAM_RSA_E, 0);
    } else {
        unsigned char raw[32];
        size_t len = sizeof raw;
        assert_int_equal(EVP_PKEY_get_raw_public_key(k, raw, &len), 1);
        json_object_set_new(o, "kty", json_string("OKP"));
        json_object_set_new(o, "crv", json_string("Ed25519"));
        test_jwk_set_b64(o, "x", raw, len);
    }
    if (kid)
        json_object_set_new(o, "kid", json_string(kid));
    if (alg)
        json_object_set_new(o, "alg", json_string(alg));
    return o;
}

#endif
