/* Unit tests for src/core/jwks.c and src/core/base64url.c: strict decoding and JWK Set parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64url.h"
#include "core/jwks.h"
#include "core/jwt.h"
#include "../jwk_fixture.h"
#include "core/banned.h"

static EVP_PKEY *k_p256, *k_p384, *k_rsa, *k_rsa1024, *k_ed;

/* ---- helpers: keys as JWK objects ---- */

/* Parses {"keys": [keys...]} (takes the objects); asserts success. */
static struct ag_jwks *parse_keys(json_t **keys, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, keys[i]);
    json_t *doc = json_pack("{s:o}", "keys", arr);
    char *text = json_dumps(doc, JSON_COMPACT);
    struct ag_jwks *set = NULL;
    struct ag_err err = {0};
    int rc = ag_jwks_parse(text, strlen(text), &set, &err);
    if (rc != 0)
        fail_msg("ag_jwks_parse: %s", err.msg);
    free(text);
    json_decref(doc);
    return set;
}

static int parse_text(const char *text, struct ag_jwks **set, struct ag_err *err)
{
    return ag_jwks_parse(text, strlen(text), set, err);
}

static int group_setup(void **state)
{
    (void)state;
    k_p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    k_p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    k_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    k_rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    k_ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    return k_p256 && k_p384 && k_rsa && k_rsa1024 && k_ed ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(k_p256);
    EVP_PKEY_free(k_p384);
    EVP_PKEY_free(k_rsa);
    EVP_PKEY_free(k_rsa1024);
    EVP_PKEY_free(k_ed);
    return 0;
}

/* ---- base64url ---- */

static int decode(const char *text, unsigned char *out, size_t cap, size_t *len)
{
    return ag_base64url_decode(ag_str_from_cstr(text), out, cap, len);
}

static void test_base64url_round_trip(void **state)
{
    (void)state;
    unsigned char data[64], back[64];
    char text[100];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 37 + 250);
    for (size_t n = 0; n <= sizeof data; n++) {
        size_t tlen = ag_base64url_encode(data, n, text), blen;
        assert_int_equal(tlen, ag_base64url_encoded_len(n));
        assert_int_equal(strlen(text), tlen);
        assert_null(strchr(text, '='));
        assert_int_equal(decode(text, back, sizeof back, &blen), 0);
        assert_int_equal(blen, n);
        assert_memory_equal(back, data, n);
    }
    size_t len;
    assert_int_equal(decode("_-8", back, sizeof back, &len), 0); /* 0xff 0xef: URL alphabet */
    assert_int_equal(len, 2);
    assert_int_equal(back[0], 0xff);
    assert_int_equal(back[1], 0xef);
}

static void test_base64url_strict(void **state)
{
    (void)state;
    unsigned char out[16];
    size_t len;
    assert_int_equal(decode("YQ==", out, sizeof out, &len), AG_EINVAL); /* padding */
    assert_int_equal(decode("Y", out, sizeof out, &len), AG_EINVAL);    /* 4n+1 */
    assert_int_equal(decode("YR", out, sizeof out, &len), AG_EINVAL);   /* nonzero spare bits */
    assert_int_equal(decode("YWJ", out, sizeof out, &len), AG_EINVAL);
    assert_int_equal(decode("Y+E", out, sizeof out, &len), AG_EINVAL); /* standard alphabet */
    assert_int_equal(decode("Y/E", out, sizeof out, &len), AG_EINVAL);
    assert_int_equal(decode("YW E", out, sizeof out, &len), AG_EINVAL);
    assert_int_equal(decode("YWE\n", out, sizeof out, &len), AG_EINVAL);
    assert_int_equal(decode("YWJjZA", out, 3, &len), AG_ERANGE);
    assert_int_equal(decode("", out, 0, &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(decode("YWI", out, sizeof out, &len), 0);
    assert_int_equal(len, 2);
    assert_memory_equal(out, "ab", 2);
}

/* ---- JWK Sets ---- */

static void test_parse_every_key_type(void **state)
{
    (void)state;
    json_t *keys[] = {test_jwk_of(k_p256, "ec256", NULL), test_jwk_of(k_p384, "ec384", NULL),
                      test_jwk_of(k_rsa, "rsa", NULL), test_jwk_of(k_ed, NULL, NULL)};
    struct ag_jwks *set = parse_keys(keys, 4);
    assert_int_equal(ag_jwks_count(set), 4);
    assert_int_equal(ag_jwks_skipped(set), 0);
    assert_string_equal(ag_jwks_skip_reason(set), "");
    assert_int_equal(ag_jwk_algorithms(ag_jwks_key(set, 0)), AG_JWT_ES256);
    assert_int_equal(ag_jwk_algorithms(ag_jwks_key(set, 1)), AG_JWT_ES384);
    assert_int_equal(ag_jwk_algorithms(ag_jwks_key(set, 2)),
                     AG_JWT_RS256 | AG_JWT_RS384 | AG_JWT_RS512 | AG_JWT_PS256);
    assert_int_equal(ag_jwk_algorithms(ag_jwks_key(set, 3)), AG_JWT_EDDSA);
    assert_true(ag_str_eq(ag_jwk_kid(ag_jwks_key(set, 1)), AG_STR("ec384")));
    assert_null(ag_jwk_kid(ag_jwks_key(set, 3)).p);
    /* References: the set lives until the last one goes. */
    assert_ptr_equal(ag_jwks_ref(set), set);
    ag_jwks_unref(set);
    assert_int_equal(ag_jwks_count(set), 4);
    ag_jwks_unref(set);
    ag_jwks_unref(NULL);
    assert_int_equal(ag_jwks_count(NULL), 0);
}

/* Parses one modified key and expects it skipped, with reason containing why. */
static void expect_skipped(json_t *key, const char *why)
{
    struct ag_jwks *set = parse_keys(&key, 1);
    assert_int_equal(ag_jwks_count(set), 0);
    assert_int_equal(ag_jwks_skipped(set), 1);
    if (!strstr(ag_jwks_skip_reason(set), why))
        fail_msg("reason \"%s\" lacks \"%s\"", ag_jwks_skip_reason(set), why);
    ag_jwks_unref(set);
}

static void test_unusable_keys_skipped(void **state)
{
    (void)state;
    json_t *k;
    expect_skipped(json_pack("{s:s,s:s}", "kty", "oct", "k", "c2VjcmV0"), "symmetric");
    expect_skipped(test_jwk_of(k_rsa1024, "small", NULL), "under 2048");
    unsigned char big[1025];
    memset(big, 0xff, sizeof big);
    k = test_jwk_of(k_rsa, "big", NULL);
    test_jwk_set_b64(k, "n", big, sizeof big);
    expect_skipped(k, "over 8192");
    k = test_jwk_of(k_rsa, "even-e", NULL);
    json_object_set_new(k, "e", json_string("AQAA"));
    expect_skipped(k, "even");
    k = test_jwk_of(k_rsa, "no-e", NULL);
    json_object_del(k, "e");
    expect_skipped(k, "missing");
    k = test_jwk_of(k_rsa, "enc", NULL);
    json_object_set_new(k, "use", json_string("enc"));
    expect_skipped(k, "use");
    k = test_jwk_of(k_rsa, "ops", NULL);
    json_object_set_new(k, "key_ops", json_pack("[s]", "encrypt"));
    expect_skipped(k, "key_ops");
    k = test_jwk_of(k_p256, "wrong-alg", NULL);
    json_object_set_new(k, "alg", json_string("RS256"));
    expect_skipped(k, "alg does not fit");
    k = test_jwk_of(k_rsa, "hs", NULL);
    json_object_set_new(k, "alg", json_string("HS256"));
    expect_skipped(k, "alg not supported");
    k = test_jwk_of(k_p256, "curve", NULL);
    json_object_set_new(k, "crv", json_string("P-521"));
    expect_skipped(k, "curve");
    k = test_jwk_of(k_p256, "short-x", NULL);
    json_object_set_new(k, "x", json_string("AAAA"));
    expect_skipped(k, "size");
    k = test_jwk_of(k_p256, "padded-x", NULL);
    json_object_set_new(k, "x", json_string("AAAA=="));
    expect_skipped(k, "base64url");
    /* A point off the curve: y + 1. */
    k = test_jwk_of(k_p256, "off-curve", NULL);
    unsigned char y[48];
    size_t ylen;
    json_t *yv = json_object_get(k, "y");
    assert_int_equal(
        ag_base64url_decode((struct ag_str){json_string_value(yv), json_string_length(yv)}, y,
                            sizeof y, &ylen),
        0);
    y[ylen - 1] ^= 1;
    test_jwk_set_b64(k, "y", y, ylen);
    expect_skipped(k, "curve");
    k = test_jwk_of(k_ed, NULL, NULL);
    json_object_set_new(k, "crv", json_string("Ed448"));
    expect_skipped(k, "OKP");
    expect_skipped(json_pack("{s:s}", "kty", "XYZ"), "kty");
    expect_skipped(json_string("not an object"), "object");
    char long_kid[AG_JWK_KID_MAX + 2];
    memset(long_kid, 'k', sizeof long_kid - 1);
    long_kid[sizeof long_kid - 1] = '\0';
    expect_skipped(test_jwk_of(k_ed, long_kid, NULL), "kid");
    long_kid[AG_JWK_KID_MAX] = '\0'; /* exactly the limit: kept */
    json_t *ok = test_jwk_of(k_ed, long_kid, NULL);
    struct ag_jwks *set = parse_keys(&ok, 1);
    assert_int_equal(ag_jwks_count(set), 1);
    assert_int_equal(ag_jwk_kid(ag_jwks_key(set, 0)).len, AG_JWK_KID_MAX);
    ag_jwks_unref(set);
}

static void test_key_options_kept(void **state)
{
    (void)state;
    json_t *keys[3];
    keys[0] = test_jwk_of(k_rsa, "ps", NULL);
    json_object_set_new(keys[0], "alg", json_string("PS256"));
    json_object_set_new(keys[0], "use", json_string("sig"));
    keys[1] = test_jwk_of(k_p256, "private-ignored", NULL);
    json_object_set_new(keys[1], "d", json_string("AAAA"));
    json_object_set_new(keys[1], "key_ops", json_pack("[s,s]", "sign", "verify"));
    keys[2] = json_pack("{s:s,s:s}", "kty", "oct", "k", "c2VjcmV0");
    struct ag_jwks *set = parse_keys(keys, 3);
    assert_int_equal(ag_jwks_count(set), 2);
    assert_int_equal(ag_jwks_skipped(set), 1);
    assert_string_equal(ag_jwks_skip_reason(set), "key 2: symmetric (oct) keys are never used");
    assert_int_equal(ag_jwk_algorithms(ag_jwks_key(set, 0)), AG_JWT_PS256);
    assert_int_equal(ag_jwk_algorithms(ag_jwks_key(set, 1)), AG_JWT_ES256);
    ag_jwks_unref(set);
}

static void test_document_errors(void **state)
{
    (void)state;
    struct ag_jwks *set = (struct ag_jwks *)1;
    struct ag_err err = {0};
    assert_int_equal(parse_text("", &set, &err), AG_EINVAL);
    assert_null(set);
    assert_int_equal(parse_text("{\"keys\":", &set, &err), AG_EINVAL);
    assert_int_equal(parse_text("[]", &set, &err), AG_EINVAL);
    assert_int_equal(parse_text("{}", &set, &err), AG_EINVAL);
    assert_int_equal(parse_text("{\"keys\":{}}", &set, &err), AG_EINVAL);
    assert_int_equal(parse_text("{\"keys\":[],\"keys\":[]}", &set, &err), AG_EINVAL);
    assert_non_null(strstr(err.msg, "JSON"));

    struct ag_buf b;
    ag_buf_init(&b, 4 * 1024 * 1024);
    assert_int_equal(ag_buf_append_str(&b, AG_STR("{\"keys\":[")), 0);
    for (int i = 0; i <= AG_JWKS_MAX_KEYS; i++)
        assert_int_equal(ag_buf_append_str(&b, i ? AG_STR(",{}") : AG_STR("{}")), 0);
    assert_int_equal(ag_buf_append_str(&b, AG_STR("]}")), 0);
    struct ag_str s = ag_buf_str(&b);
    assert_int_equal(ag_jwks_parse(s.p, s.len, &set, &err), AG_ERANGE);
    assert_non_null(strstr(err.msg, "101 keys"));

    ag_buf_clear(&b);
    assert_int_equal(ag_buf_append_str(&b, AG_STR("{\"keys\":[],\"pad\":\"")), 0);
    while (ag_buf_str(&b).len < AG_JWKS_MAX_BYTES)
        assert_int_equal(ag_buf_append_str(&b, AG_STR("xxxxxxxxxxxxxxxx")), 0);
    assert_int_equal(ag_buf_append_str(&b, AG_STR("\"}")), 0);
    s = ag_buf_str(&b);
    assert_int_equal(ag_jwks_parse(s.p, s.len, &set, &err), AG_ERANGE);
    ag_buf_release(&b);

    assert_int_equal(parse_text("{\"keys\":[]}", &set, &err), 0);
    assert_int_equal(ag_jwks_count(set), 0);
    ag_jwks_unref(set);
}

static void test_verify_checks_alg_and_length(void **state)
{
    (void)state;
    json_t *keys[] = {test_jwk_of(k_p256, "ec", NULL), test_jwk_of(k_rsa, "rsa", NULL),
                      test_jwk_of(k_ed, "ed", NULL)};
    struct ag_jwks *set = parse_keys(keys, 3);
    unsigned char sig[512] = {0};
    struct ag_str in = AG_STR("a.b");
    assert_false(ag_jwk_verify(ag_jwks_key(set, 0), AG_JWT_ES256 | AG_JWT_ES384, in, sig, 64));
    assert_false(ag_jwk_verify(ag_jwks_key(set, 0), AG_JWT_RS256, in, sig, 256));
    assert_false(ag_jwk_verify(ag_jwks_key(set, 0), AG_JWT_ES256, in, sig, 64));
    assert_false(ag_jwk_verify(ag_jwks_key(set, 0), AG_JWT_ES256, in, sig, 72));
    assert_false(ag_jwk_verify(ag_jwks_key(set, 1), AG_JWT_RS256, in, sig, 255));
    assert_false(ag_jwk_verify(ag_jwks_key(set, 2), AG_JWT_EDDSA, in, sig, 63));
    assert_false(ag_jwk_verify(ag_jwks_key(set, 2), 0, in, sig, 64));

    /* A real Ed25519 signature verifies, and only over the same bytes. */
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t len = 64;
    assert_int_equal(EVP_DigestSignInit_ex(ctx, NULL, NULL, NULL, NULL, k_ed, NULL), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &len, (const unsigned char *)in.p, in.len), 1);
    EVP_MD_CTX_free(ctx);
    assert_true(ag_jwk_verify(ag_jwks_key(set, 2), AG_JWT_EDDSA, in, sig, len));
    assert_false(ag_jwk_verify(ag_jwks_key(set, 2), AG_JWT_EDDSA, AG_STR("a.c"), sig, len));
    ag_jwks_unref(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64url_round_trip),
        cmocka_unit_test(test_base64url_strict),
        cmocka_unit_test(test_parse_every_key_type),
        cmocka_unit_test(test_unusable_keys_skipped),
        cmocka_unit_test(test_key_options_kept),
        cmocka_unit_test(test_document_errors),
        cmocka_unit_test(test_verify_checks_alg_and_length),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
