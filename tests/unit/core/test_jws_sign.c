/* Unit tests for src/core/jws_sign.c: ES256 tokens it signs verify with core/jwt.c, and only those.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64url.h"
#include "core/jwks.h"
#include "core/jws_sign.h"
#include "core/jwt.h"
#include "../jwk_fixture.h"
#include "core/banned.h"

#define ISS     "https://issuer.test"
#define PAYLOAD "{\"iss\":\"" ISS "\",\"sub\":\"user-1\",\"exp\":1700000600,\"jti\":\"id-1\"}"
enum { NOW = 1700000000 };

static EVP_PKEY *k_p256, *k_other, *k_p384, *k_rsa;

static int group_setup(void **state)
{
    (void)state;
    k_p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    k_other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    k_p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    k_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    return k_p256 && k_other && k_p384 && k_rsa ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(k_p256);
    EVP_PKEY_free(k_other);
    EVP_PKEY_free(k_p384);
    EVP_PKEY_free(k_rsa);
    return 0;
}

/* A JWK Set holding k's public key under kid. */
static struct ag_jwks *jwks_of(EVP_PKEY *k, const char *kid)
{
    json_t *doc = json_pack("{s:[o]}", "keys", test_jwk_of(k, kid, NULL));
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    assert_non_null(text);
    struct ag_jwks *set = NULL;
    struct ag_err err = {0};
    if (ag_jwks_parse(text, strlen(text), &set, &err) != 0)
        fail_msg("ag_jwks_parse: %s", err.msg);
    free(text);
    assert_int_equal(ag_jwks_count(set), 1);
    return set;
}

/* Verifies token against set as issuer ISS allowing ES256 only; claims may be NULL. */
static enum ag_jwt_status verify(const char *token, size_t len, const struct ag_jwks *set,
                                 struct ag_jwt_claims *claims)
{
    struct ag_jwt_policy policy = {.issuer = ISS, .algorithms = AG_JWT_ES256};
    const struct ag_jwks *keys[] = {set};
    return ag_jwt_verify((struct ag_str){token, len}, &policy, keys, 1, NOW, claims, NULL);
}

/* Signs PAYLOAD with k into out (cleared first); fails the test on an error. */
static void sign_ok(EVP_PKEY *k, const char *kid, const char *typ, struct ag_buf *out)
{
    struct ag_err err = {0};
    ag_buf_clear(out);
    int rc = ag_jws_sign_es256(k, kid, typ, PAYLOAD, strlen(PAYLOAD), out, &err);
    if (rc != 0)
        fail_msg("ag_jws_sign_es256: %s (%s)", err.msg, ag_err_name(rc));
}

/* Decodes the base64url part [from, to) of token into out (NUL-terminated); returns its length. */
static size_t part_decode(const char *from, const char *to, unsigned char *out, size_t cap)
{
    size_t n = 0;
    assert_int_equal(
        ag_base64url_decode((struct ag_str){from, (size_t)(to - from)}, out, cap - 1, &n), 0);
    out[n] = '\0';
    return n;
}

static void test_signature_verifies(void **state)
{
    (void)state;
    struct ag_buf token;
    ag_buf_init(&token, 4096);
    struct ag_jwks *set = jwks_of(k_p256, "k1");
    struct ag_jwt_claims claims;
    sign_ok(k_p256, "k1", "at+jwt", &token);
    assert_int_equal(verify(token.data, token.len, set, &claims), AG_JWT_OK);
    assert_string_equal(claims.sub, "user-1");
    assert_string_equal(claims.jti, "id-1");
    /* Without kid and typ: the one key of the set is tried. */
    sign_ok(k_p256, NULL, NULL, &token);
    assert_int_equal(verify(token.data, token.len, set, NULL), AG_JWT_OK);
    /* Appends: what out held before stays in front of the token. */
    ag_buf_clear(&token);
    assert_int_equal(ag_buf_append_str(&token, AG_STR("Bearer ")), 0);
    assert_int_equal(ag_jws_sign_es256(k_p256, "k1", "JWT", PAYLOAD, strlen(PAYLOAD), &token, NULL),
                     0);
    assert_memory_equal(token.data, "Bearer ", 7);
    assert_int_equal(verify(token.data + 7, token.len - 7, set, NULL), AG_JWT_OK);
    ag_jwks_unref(set);
    ag_buf_release(&token);
}

static void test_header_and_parts(void **state)
{
    (void)state;
    struct ag_buf token;
    ag_buf_init(&token, 4096);
    unsigned char part[1024];
    sign_ok(k_p256, "k1", "at+jwt", &token);
    const char *t = token.data, *end = token.data + token.len;
    const char *dot1 = memchr(t, '.', token.len);
    assert_non_null(dot1);
    const char *dot2 = memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1));
    assert_non_null(dot2);
    assert_null(memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)));
    part_decode(t, dot1, part, sizeof part);
    assert_string_equal((char *)part, "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"k1\"}");
    part_decode(dot1 + 1, dot2, part, sizeof part);
    assert_string_equal((char *)part, PAYLOAD);
    assert_int_equal(part_decode(dot2 + 1, end, part, sizeof part), 64); /* r||s, not DER */

    sign_ok(k_p256, NULL, NULL, &token);
    dot1 = memchr(token.data, '.', token.len);
    assert_non_null(dot1);
    part_decode(token.data, dot1, part, sizeof part);
    assert_string_equal((char *)part, "{\"alg\":\"ES256\"}");

    /* A kid that needs escaping is escaped, not pasted. */
    sign_ok(k_p256, "a\"b", NULL, &token);
    dot1 = memchr(token.data, '.', token.len);
    assert_non_null(dot1);
    part_decode(token.data, dot1, part, sizeof part);
    assert_string_equal((char *)part, "{\"alg\":\"ES256\",\"kid\":\"a\\\"b\"}");
    ag_buf_release(&token);
}

static void test_flipped_byte_fails(void **state)
{
    (void)state;
    struct ag_buf token;
    ag_buf_init(&token, 4096);
    struct ag_jwks *set = jwks_of(k_p256, "k1");
    sign_ok(k_p256, "k1", "at+jwt", &token);
    char *t = token.data;
    size_t len = token.len;
    /* Every character of the token replaced by another base64url one: never OK. */
    for (size_t i = 0; i < len; i++) {
        char was = t[i];
        if (was == '.')
            continue;
        t[i] = was == 'A' ? 'B' : 'A';
        enum ag_jwt_status s = verify(t, len, set, NULL);
        if (s == AG_JWT_OK)
            fail_msg("character %zu changed from '%c' to '%c' still verifies", i, was, t[i]);
        t[i] = was;
    }
    assert_int_equal(verify(t, len, set, NULL), AG_JWT_OK);

    /* One bit of the decoded signature flipped: a well-formed but wrong signature. */
    char *sig_b64 = (char *)memrchr(t, '.', len) + 1;
    size_t sig_b64_len = len - (size_t)(sig_b64 - t);
    unsigned char sig[64];
    size_t n = 0;
    assert_int_equal(
        ag_base64url_decode((struct ag_str){sig_b64, sig_b64_len}, sig, sizeof sig, &n), 0);
    assert_int_equal(n, 64);
    for (size_t i = 0; i < n; i += 21) {
        sig[i] ^= 0x01;
        char text[128];
        ag_base64url_encode(sig, n, text);
        memcpy(sig_b64, text, sig_b64_len);
        assert_int_equal(verify(t, len, set, NULL), AG_JWT_BAD_SIGNATURE);
        sig[i] ^= 0x01;
    }
    ag_jwks_unref(set);

    /* Another key under the same kid does not verify it. */
    sign_ok(k_p256, "k1", "at+jwt", &token);
    set = jwks_of(k_other, "k1");
    assert_int_equal(verify(token.data, token.len, set, NULL), AG_JWT_BAD_SIGNATURE);
    ag_jwks_unref(set);
    ag_buf_release(&token);
}

/* Expects code from signing PAYLOAD-like input, with out left exactly as it was. */
static void sign_refused(EVP_PKEY *k, const char *kid, const char *payload, size_t len,
                         size_t out_max, int code)
{
    struct ag_buf out;
    struct ag_err err = {0};
    ag_buf_init(&out, out_max);
    assert_int_equal(ag_buf_append_str(&out, AG_STR("keep")), 0);
    int rc = ag_jws_sign_es256(k, kid, "at+jwt", payload, len, &out, &err);
    if (rc != code)
        fail_msg("expected %s, got %s (%s)", ag_err_name(code), ag_err_name(rc), err.msg);
    assert_int_equal(err.code, code);
    assert_true(err.msg[0] != '\0');
    assert_int_equal(out.len, 4);
    assert_memory_equal(out.data + out.off, "keep", 4);
    ag_buf_release(&out);
}

static void test_refusals(void **state)
{
    (void)state;
    /* Keys other than EC P-256, and a P-256 public key without its private half. */
    sign_refused(NULL, "k1", PAYLOAD, strlen(PAYLOAD), 4096, AG_EINVAL);
    sign_refused(k_p384, "k1", PAYLOAD, strlen(PAYLOAD), 4096, AG_EINVAL);
    sign_refused(k_rsa, "k1", PAYLOAD, strlen(PAYLOAD), 4096, AG_EINVAL);
    unsigned char *der = NULL;
    int der_len = i2d_PUBKEY(k_p256, &der);
    assert_true(der_len > 0);
    const unsigned char *p = der;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, der_len);
    OPENSSL_free(der);
    assert_non_null(pub);
    sign_refused(pub, "k1", PAYLOAD, strlen(PAYLOAD), 4096, AG_ESYS);
    EVP_PKEY_free(pub);

    /* A kid that is not UTF-8. */
    sign_refused(k_p256, "\xff", PAYLOAD, strlen(PAYLOAD), 4096, AG_EINVAL);

    /* Too large: the signing input, then the output buffer. */
    size_t big = AG_JWS_MAX_SIGNING_INPUT;
    char *payload = malloc(big);
    assert_non_null(payload);
    memset(payload, ' ', big);
    sign_refused(k_p256, "k1", payload, big, 1024 * 1024, AG_ERANGE);
    free(payload);
    sign_refused(k_p256, "k1", PAYLOAD, strlen(PAYLOAD), 64, AG_ERANGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_verifies),
        cmocka_unit_test(test_header_and_parts),
        cmocka_unit_test(test_flipped_byte_fails),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
