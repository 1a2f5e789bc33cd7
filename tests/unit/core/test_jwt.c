/* Unit tests for src/core/jwt.c: tokens signed here with every algorithm, and every refusal. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64url.h"
#include "core/jwks.h"
#include "core/jwt.h"
#include "../jwk_fixture.h"
#include "core/banned.h"

#define ISS "https://issuer.test"
enum { NOW = 1700000000, SKEW = 60 };

static EVP_PKEY *k_p256, *k_p384, *k_rsa, *k_rsa2, *k_ed;
static struct ag_jwks *set;
static const char *const audiences[] = {"api", "other"};
static struct ag_jwt_policy policy;
static struct ag_jwt_claims claims;
static size_t which;

/* Everything a test allocates, freed by its teardown. */
static void *allocated[512];
static size_t allocated_n;

static char *keep(char *p)
{
    assert_non_null(p);
    assert_true(allocated_n < sizeof allocated / sizeof allocated[0]);
    allocated[allocated_n++] = p;
    return p;
}

static char *b64(const void *p, size_t n)
{
    char *text = malloc(ag_base64url_encoded_len(n) + 1);
    assert_non_null(text);
    ag_base64url_encode(p, n, text);
    return text;
}

/* ---- keys and their JWKs ---- */

static int group_setup(void **state)
{
    (void)state;
    k_p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    k_p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    k_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    k_rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    k_ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    return k_p256 && k_p384 && k_rsa && k_rsa2 && k_ed ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(k_p256);
    EVP_PKEY_free(k_p384);
    EVP_PKEY_free(k_rsa);
    EVP_PKEY_free(k_rsa2);
    EVP_PKEY_free(k_ed);
    return 0;
}

/* The set every test starts with: one key per type, kids named after them; rsa-ps is PS256. */
static int setup(void **state)
{
    (void)state;
    json_t *keys =
        json_pack("[oooooo]", test_jwk_of(k_p256, "p256", NULL), test_jwk_of(k_p384, "p384", NULL),
                  test_jwk_of(k_rsa, "rsa", NULL), test_jwk_of(k_ed, "ed", NULL),
                  test_jwk_of(k_rsa2, "rsa-ps", "PS256"),
                  json_pack("{s:s,s:s,s:s}", "kty", "oct", "kid", "hmac", "k", "c2VjcmV0"));
    json_t *doc = json_pack("{s:o}", "keys", keys);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    struct ag_err err = {0};
    if (ag_jwks_parse(text, strlen(text), &set, &err) != 0)
        fail_msg("jwks: %s", err.msg);
    free(text);
    assert_int_equal(ag_jwks_count(set), 5);
    policy = (struct ag_jwt_policy){.issuer = ISS,
                                    .audiences = audiences,
                                    .audience_count = 2,
                                    .algorithms = AG_JWT_ALG_ALL,
                                    .clock_skew_s = SKEW};
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ag_jwks_unref(set);
    set = NULL;
    for (size_t i = 0; i < allocated_n; i++)
        free(allocated[i]);
    allocated_n = 0;
    return 0;
}

/* ---- signing ---- */

/* Signs input with k for alg; ES signatures as r||s unless der. Returns the length. */
static size_t sign(EVP_PKEY *k, const char *alg, const char *input, bool der, unsigned char *sig)
{
    size_t len = 1024, in_len = strlen(input);
    if (strncmp(alg, "HS", 2) == 0 || strcmp(alg, "none") == 0)
        return 0;
    const char *md = strcmp(alg, "EdDSA") == 0 ? NULL
                     : strstr(alg, "384")      ? "SHA384"
                     : strstr(alg, "512")      ? "SHA512"
                                               : "SHA256";
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    assert_int_equal(EVP_DigestSignInit_ex(ctx, &pctx, md, NULL, NULL, k, NULL), 1);
    if (alg[0] == 'P') {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
    }
    assert_int_equal(EVP_DigestSign(ctx, sig, &len, (const unsigned char *)input, in_len), 1);
    EVP_MD_CTX_free(ctx);
    if (EVP_PKEY_is_a(k, "EC") && !der) {
        size_t field = (size_t)(EVP_PKEY_get_bits(k) + 7) / 8;
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
        assert_non_null(es);
        BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, (int)field);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + field, (int)field);
        ECDSA_SIG_free(es);
        len = 2 * field;
    }
    return len;
}

/* header.payload.signature from JSON texts; sig_len (bytes at sig) replaces the signature. */
static char *assemble(const char *header, const char *payload, const unsigned char *sig,
                      size_t sig_len)
{
    char *h = b64(header, strlen(header)), *p = b64(payload, strlen(payload));
    char *s = b64(sig, sig_len);
    size_t cap = strlen(h) + strlen(p) + strlen(s) + 3;
    char *t = malloc(cap);
    assert_non_null(t);
    snprintf(t, cap, "%s.%s.%s", h, p, s);
    free(h);
    free(p);
    free(s);
    return keep(t);
}

/* The standard claims, with overrides merged in (a null override removes the claim). */
static char *payload_with(const char *overrides)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:I,s:[s,s],s:s,s:s}", "iss", ISS, "sub", "user-1",
                          "aud", "api", "exp", (json_int_t)NOW + 600, "iat", (json_int_t)NOW - 10,
                          "roles", "reader", "writer", "tenant", "acme", "jti", "id-1");
    if (overrides) {
        json_t *over = json_loads(overrides, 0, NULL);
        assert_non_null(over);
        const char *key;
        json_t *v;
        json_object_foreach(over, key, v)
        {
            if (json_is_null(v))
                json_object_del(o, key);
            else
                json_object_set(o, key, v);
        }
        json_decref(over);
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return keep(text);
}

/* A token from raw header and payload JSON texts, signed with k as alg says. */
static char *token_raw(EVP_PKEY *k, const char *alg, const char *header, const char *payload)
{
    char *h = b64(header, strlen(header)), *p = b64(payload, strlen(payload));
    size_t cap = strlen(h) + strlen(p) + 2;
    char *input = malloc(cap);
    assert_non_null(input);
    snprintf(input, cap, "%s.%s", h, p);
    unsigned char sig[1024];
    size_t n = sign(k, alg, input, false, sig);
    char *t = assemble(header, payload, sig, n);
    free(h);
    free(p);
    free(input);
    return t;
}

/* A token with header {"alg":alg,"kid":kid} (kid NULL: none) and payload_with(overrides). */
static char *token(EVP_PKEY *k, const char *alg, const char *kid, const char *overrides)
{
    char header[256];
    if (kid)
        snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg,
                 kid);
    else
        snprintf(header, sizeof header, "{\"alg\":\"%s\"}", alg);
    return token_raw(k, alg, header, payload_with(overrides));
}

static enum ag_jwt_status verify_at(const char *tok, int64_t now)
{
    const struct ag_jwks *sets[] = {set};
    return ag_jwt_verify(ag_str_from_cstr(tok), &policy, sets, 1, now, &claims, &which);
}

static enum ag_jwt_status verify(const char *tok)
{
    return verify_at(tok, NOW);
}

#define assert_status(expr, want)                                                                  \
    do {                                                                                           \
        enum ag_jwt_status got_ = (expr);                                                          \
        if (got_ != (want))                                                                        \
            fail_msg("%s: got %s, want %s", #expr, ag_jwt_status_name(got_),                       \
                     ag_jwt_status_name(want));                                                    \
    } while (0)

/* ---- tests: acceptance ---- */

static void test_every_algorithm_verifies(void **state)
{
    (void)state;
    struct {
        EVP_PKEY **k;
        const char *alg, *kid;
    } cases[] = {
        {&k_p256, "ES256", "p256"}, {&k_p384, "ES384", "p384"}, {&k_rsa, "RS256", "rsa"},
        {&k_rsa, "RS384", "rsa"},   {&k_rsa, "RS512", "rsa"},   {&k_rsa2, "PS256", "rsa-ps"},
        {&k_ed, "EdDSA", "ed"},     {&k_ed, "EdDSA", NULL},     {&k_rsa2, "PS256", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_status(verify(token(*cases[i].k, cases[i].alg, cases[i].kid, NULL)), AG_JWT_OK);
        assert_string_equal(claims.sub, "user-1");
        assert_string_equal(claims.iss, ISS);
        assert_int_equal(which, 0);
    }
    assert_string_equal(claims.tenant, "acme");
    assert_string_equal(claims.roles, "reader,writer");
    assert_int_equal(claims.role_count, 2);
    assert_string_equal(claims.jti, "id-1");
    assert_int_equal(claims.exp, NOW + 600);
    assert_int_equal(claims.iat, NOW - 10);
    assert_int_equal(claims.nbf, 0);
    assert_true(ag_jwt_claims_has_role(&claims, AG_STR("writer")));
    assert_false(ag_jwt_claims_has_role(&claims, AG_STR("write")));
    assert_false(ag_jwt_claims_has_role(&claims, AG_STR("reader,writer")));
}

static void test_header_typ_variants(void **state)
{
    (void)state;
    const char *ok[] = {"JWT", "jwt", "at+jwt", "application/at+JWT", "APPLICATION/jwt"};
    char header[128];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        snprintf(header, sizeof header, "{\"alg\":\"EdDSA\",\"typ\":\"%s\"}", ok[i]);
        assert_status(verify(token_raw(k_ed, "EdDSA", header, payload_with(NULL))), AG_JWT_OK);
    }
    const char *bad[] = {"{\"alg\":\"EdDSA\",\"typ\":\"JOSE\"}",
                         "{\"alg\":\"EdDSA\",\"typ\":1}",
                         "{\"alg\":\"EdDSA\",\"typ\":\"application/\"}",
                         "{\"alg\":\"EdDSA\",\"crit\":[\"exp\"]}",
                         "{\"alg\":\"EdDSA\",\"kid\":7}",
                         "{\"kid\":\"ed\"}",
                         "{\"alg\":5}",
                         "{\"alg\":\"EdDSA\",\"alg\":\"EdDSA\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_status(verify(token_raw(k_ed, "EdDSA", bad[i], payload_with(NULL))),
                      AG_JWT_MALFORMED);
    /* Keys never come from the token: an embedded jwk of another key is ignored. */
    assert_status(verify(token_raw(k_p256, "ES256",
                                   "{\"alg\":\"ES256\",\"kid\":\"p256\","
                                   "\"jku\":\"http://evil\",\"jwk\":{}}",
                                   payload_with(NULL))),
                  AG_JWT_OK);
}

static void test_claim_forms(void **state)
{
    (void)state;
    assert_status(verify(token(k_ed, "EdDSA", "ed", "{\"roles\":\"a b,c,, d\"}")), AG_JWT_OK);
    assert_string_equal(claims.roles, "a,b,c,d");
    assert_int_equal(claims.role_count, 4);
    assert_status(verify(token(k_ed, "EdDSA", "ed",
                               "{\"roles\":null,\"realm_access\":{\"roles\":[\"kc\"]},"
                               "\"tenant\":null,\"tenant_id\":\"t-9\",\"scope\":\"read write\"}")),
                  AG_JWT_OK);
    assert_string_equal(claims.roles, "kc");
    assert_string_equal(claims.tenant, "t-9");
    assert_string_equal(claims.scope, "read write");
    assert_status(verify(token(k_ed, "EdDSA", "ed",
                               "{\"roles\":null,\"tenant\":null,"
                               "\"jti\":null,\"iat\":null}")),
                  AG_JWT_OK);
    assert_string_equal(claims.roles, "");
    assert_int_equal(claims.role_count, 0);
    assert_string_equal(claims.tenant, "");
    assert_int_equal(claims.iat, 0);
    /* Fractional dates: exp rounded down, nbf rounded up. */
    assert_status(verify(token(k_ed, "EdDSA", "ed", "{\"exp\":1700000100.9,\"nbf\":1699999000.1}")),
                  AG_JWT_OK);
    assert_int_equal(claims.exp, 1700000100);
    assert_int_equal(claims.nbf, 1699999001);
    /* aud as an array holding one of ours; no audiences configured: aud is not looked at. */
    assert_status(verify(token(k_ed, "EdDSA", "ed", "{\"aud\":[\"x\",\"other\"]}")), AG_JWT_OK);
    policy.audience_count = 0;
    assert_status(verify(token(k_ed, "EdDSA", "ed", "{\"aud\":\"elsewhere\"}")), AG_JWT_OK);
    assert_status(verify(token(k_ed, "EdDSA", "ed", "{\"aud\":null}")), AG_JWT_OK);
}

/* ---- tests: refusals ---- */

static void test_alg_none_and_hmac_refused(void **state)
{
    (void)state;
    char *payload = payload_with(NULL);
    assert_status(verify(assemble("{\"alg\":\"none\"}", payload, NULL, 0)), AG_JWT_ALG_REFUSED);
    assert_status(verify(assemble("{\"alg\":\"None\",\"kid\":\"rsa\"}", payload, NULL, 0)),
                  AG_JWT_ALG_REFUSED);

    /* HS256 keyed with the RSA public key (PEM, as the classic attack does) and with "n". */
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, k_rsa), 1);
    char *pem;
    long pem_len = BIO_get_mem_data(bio, &pem);
    char *h = b64("{\"alg\":\"HS256\",\"kid\":\"rsa\"}", 28), *p = b64(payload, strlen(payload));
    char input[2048];
    snprintf(input, sizeof input, "%s.%s", h, p);
    unsigned char mac[64];
    size_t mac_len = 0;
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, pem, (size_t)pem_len,
                              (const unsigned char *)input, strlen(input), mac, sizeof mac,
                              &mac_len));
    assert_status(verify(assemble("{\"alg\":\"HS256\",\"kid\":\"rsa\"}", payload, mac, mac_len)),
                  AG_JWT_ALG_REFUSED);
    assert_status(verify(assemble("{\"alg\":\"HS256\",\"kid\":\"hmac\"}", payload, mac, mac_len)),
                  AG_JWT_ALG_REFUSED);
    BIO_free(bio);
    free(h);
    free(p);
    assert_status(verify(token(k_p256, "ES512", "p256", NULL)), AG_JWT_ALG_REFUSED);
}

static void test_alg_pinned_by_policy_and_key(void **state)
{
    (void)state;
    policy.algorithms = AG_JWT_ES256;
    assert_status(verify(token(k_rsa, "RS256", "rsa", NULL)), AG_JWT_ALG_REFUSED);
    assert_status(verify(token(k_p256, "ES256", "p256", NULL)), AG_JWT_OK);
    policy.algorithms = AG_JWT_ALG_ALL;
    /* The header's alg must fit the key named by kid. */
    assert_status(verify(token(k_p256, "ES384", "p256", NULL)), AG_JWT_ALG_REFUSED);
    assert_status(verify(token(k_p256, "ES256", "rsa", NULL)), AG_JWT_ALG_REFUSED);
    assert_status(verify(token(k_rsa, "RS256", "ed", NULL)), AG_JWT_ALG_REFUSED);
    assert_status(verify(token(k_ed, "EdDSA", "p256", NULL)), AG_JWT_ALG_REFUSED);
    /* A key's own alg restricts it: rsa-ps is PS256 only. */
    assert_status(verify(token(k_rsa2, "RS256", "rsa-ps", NULL)), AG_JWT_ALG_REFUSED);
    /* The oct key is never usable; its kid is as if unknown. */
    assert_status(verify(token(k_rsa, "RS256", "hmac", NULL)), AG_JWT_UNKNOWN_KID);
    /* Without kid only keys fitting alg are tried: here the P-256 one, which fails. */
    assert_status(verify(token(k_p384, "ES256", NULL, NULL)), AG_JWT_BAD_SIGNATURE);
}

static void test_unknown_kid_and_no_keys(void **state)
{
    (void)state;
    char *t = token(k_p256, "ES256", "rotated", NULL);
    assert_status(verify(t), AG_JWT_UNKNOWN_KID);
    assert_int_equal(which, 0);
    const struct ag_jwks *none[] = {NULL};
    assert_status(ag_jwt_verify(ag_str_from_cstr(t), &policy, none, 1, NOW, &claims, &which),
                  AG_JWT_NO_KEYS);
    assert_int_equal(which, 0);
    assert_status(ag_jwt_verify(ag_str_from_cstr(t), &policy, NULL, 1, NOW, NULL, NULL),
                  AG_JWT_NO_KEYS);
    struct ag_jwks *empty;
    assert_int_equal(ag_jwks_parse("{\"keys\":[]}", 11, &empty, NULL), 0);
    const struct ag_jwks *sets[] = {empty};
    assert_status(ag_jwt_verify(ag_str_from_cstr(t), &policy, sets, 1, NOW, &claims, &which),
                  AG_JWT_NO_KEYS);
    ag_jwks_unref(empty);
}

/* Re-encodes t with one bit of part (0 header, 1 payload, 2 signature) flipped. */
static char *flip_bit(const char *t, int part, size_t byte)
{
    unsigned char buf[3][2048];
    size_t len[3];
    const char *start = t;
    for (int i = 0; i < 3; i++) {
        const char *end = i < 2 ? strchr(start, '.') : start + strlen(start);
        assert_int_equal(ag_base64url_decode((struct ag_str){start, (size_t)(end - start)}, buf[i],
                                             2048, &len[i]),
                         0);
        start = end + 1;
    }
    buf[part][byte % len[part]] ^= 0x01;
    buf[0][len[0]] = buf[1][len[1]] = '\0';
    return assemble((char *)buf[0], (char *)buf[1], buf[2], len[2]);
}

static void test_bad_signatures(void **state)
{
    (void)state;
    const char *algs[] = {"ES256", "ES384", "RS256", "PS256", "EdDSA"};
    EVP_PKEY *keys[] = {k_p256, k_p384, k_rsa, k_rsa2, k_ed};
    const char *kids[] = {"p256", "p384", "rsa", "rsa-ps", "ed"};
    for (size_t i = 0; i < 5; i++) {
        char *t = token(keys[i], algs[i], kids[i], NULL);
        assert_status(verify(t), AG_JWT_OK);
        assert_status(verify(flip_bit(t, 2, 5)), AG_JWT_BAD_SIGNATURE);
        assert_status(verify(flip_bit(t, 2, 1000)), AG_JWT_BAD_SIGNATURE);
    }
    char *t = token(k_p256, "ES256", "p256", "{\"sub\":\"user-1\"}");
    const char *payload_b64 = strchr(t, '.') + 1;
    size_t plen = (size_t)(strchr(payload_b64, '.') - payload_b64);
    unsigned char payload[1024];
    size_t n;
    assert_int_equal(
        ag_base64url_decode((struct ag_str){payload_b64, plen}, payload, sizeof payload, &n), 0);
    /* "sub":"user-1" becomes "user-2": still valid JSON, so only the signature can fail. */
    char *u = memchr(payload, '1', n);
    assert_non_null(u);
    *u = '2';
    char *forged = b64(payload, n), *sig = strrchr(t, '.');
    char *header_end = strchr(t, '.');
    char out[4096];
    snprintf(out, sizeof out, "%.*s.%s%s", (int)(header_end - t), t, forged, sig);
    free(forged);
    assert_status(verify(out), AG_JWT_BAD_SIGNATURE);
    /* No kid: every fitting key is tried and none verifies. */
    assert_status(verify(flip_bit(token(k_rsa, "RS256", NULL, NULL), 2, 9)), AG_JWT_BAD_SIGNATURE);
}

static void test_es256_der_signature_refused(void **state)
{
    (void)state;
    const char *header = "{\"alg\":\"ES256\",\"kid\":\"p256\"}";
    char *payload = payload_with(NULL);
    char *h = b64(header, strlen(header)), *p = b64(payload, strlen(payload));
    char input[2048];
    snprintf(input, sizeof input, "%s.%s", h, p);
    unsigned char der[128];
    size_t n = sign(k_p256, "ES256", input, true, der);
    assert_true(n >= 8 && n <= 72 && der[0] == 0x30);
    assert_status(verify(assemble(header, payload, der, n)), AG_JWT_BAD_SIGNATURE);
    /* r||s padded or cut by a byte is refused as well. */
    unsigned char raw[128];
    n = sign(k_p256, "ES256", input, false, raw);
    assert_int_equal(n, 64);
    assert_status(verify(assemble(header, payload, raw, 64)), AG_JWT_OK);
    assert_status(verify(assemble(header, payload, raw, 63)), AG_JWT_BAD_SIGNATURE);
    raw[64] = 0;
    assert_status(verify(assemble(header, payload, raw, 65)), AG_JWT_BAD_SIGNATURE);
    free(h);
    free(p);
}

static void test_time_claims(void **state)
{
    (void)state;
    char over[128];
    snprintf(over, sizeof over, "{\"exp\":%d}", NOW - SKEW);
    assert_status(verify(token(k_ed, "EdDSA", "ed", over)), AG_JWT_OK); /* now == exp + skew */
    snprintf(over, sizeof over, "{\"exp\":%d}", NOW - SKEW - 1);
    assert_status(verify(token(k_ed, "EdDSA", "ed", over)), AG_JWT_EXPIRED);
    assert_status(verify_at(token(k_ed, "EdDSA", "ed", NULL), NOW + 600 + SKEW + 1),
                  AG_JWT_EXPIRED);
    snprintf(over, sizeof over, "{\"nbf\":%d}", NOW + SKEW);
    assert_status(verify(token(k_ed, "EdDSA", "ed", over)), AG_JWT_OK);
    snprintf(over, sizeof over, "{\"nbf\":%d}", NOW + SKEW + 1);
    assert_status(verify(token(k_ed, "EdDSA", "ed", over)), AG_JWT_NOT_YET_VALID);
    snprintf(over, sizeof over, "{\"iat\":%d}", NOW + SKEW);
    assert_status(verify(token(k_ed, "EdDSA", "ed", over)), AG_JWT_OK);
    snprintf(over, sizeof over, "{\"iat\":%d}", NOW + SKEW + 1);
    assert_status(verify(token(k_ed, "EdDSA", "ed", over)), AG_JWT_NOT_YET_VALID);
    policy.clock_skew_s = 0;
    snprintf(over, sizeof over, "{\"exp\":%d}", NOW);
    assert_status(verify(token(k_ed, "EdDSA", "ed", over)), AG_JWT_OK);
    snprintf(over, sizeof over, "{\"exp\":%d}", NOW - 1);
    assert_status(verify(token(k_ed, "EdDSA", "ed", over)), AG_JWT_EXPIRED);

    const char *malformed[] = {
        "{\"exp\":null}",         "{\"exp\":\"1700000600\"}",
        "{\"exp\":-1}",           "{\"exp\":1e300}",
        "{\"exp\":253402300800}", "{\"exp\":true}",
        "{\"nbf\":\"soon\"}",     "{\"iat\":[1]}",
        "{\"nbf\":-5}",           "{\"exp\":9223372036854775807}",
    };
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++)
        assert_status(verify(token(k_ed, "EdDSA", "ed", malformed[i])), AG_JWT_MALFORMED);
    /* An integer past 64 bits does not parse at all. */
    char *big = token_raw(k_ed, "EdDSA", "{\"alg\":\"EdDSA\"}",
                          "{\"iss\":\"" ISS "\",\"sub\":\"u\",\"aud\":\"api\","
                          "\"exp\":99999999999999999999999}");
    assert_status(verify(big), AG_JWT_MALFORMED);
    /* Far-away clocks do not overflow. */
    assert_status(verify_at(token(k_ed, "EdDSA", "ed", NULL), INT64_MAX), AG_JWT_EXPIRED);
    assert_status(verify_at(token(k_ed, "EdDSA", "ed", NULL), INT64_MIN), AG_JWT_NOT_YET_VALID);
}

static void test_issuer_and_audience(void **state)
{
    (void)state;
    const char *wrong_iss[] = {"{\"iss\":\"https://issuer.test/\"}", "{\"iss\":\"https://evil\"}",
                               "{\"iss\":null}", "{\"iss\":7}",
                               "{\"iss\":\"HTTPS://ISSUER.TEST\"}"};
    for (size_t i = 0; i < sizeof wrong_iss / sizeof wrong_iss[0]; i++) {
        assert_status(verify(token(k_ed, "EdDSA", "ed", wrong_iss[i])), AG_JWT_UNKNOWN_ISSUER);
        assert_int_equal(which, SIZE_MAX);
    }
    assert_status(verify(token(k_ed, "EdDSA", "ed", "{\"aud\":\"apis\"}")), AG_JWT_WRONG_AUDIENCE);
    assert_status(verify(token(k_ed, "EdDSA", "ed", "{\"aud\":[\"a\",\"b\"]}")),
                  AG_JWT_WRONG_AUDIENCE);
    assert_status(verify(token(k_ed, "EdDSA", "ed", "{\"aud\":[]}")), AG_JWT_WRONG_AUDIENCE);
    assert_status(verify(token(k_ed, "EdDSA", "ed", "{\"aud\":null}")), AG_JWT_WRONG_AUDIENCE);
    assert_status(verify(token(k_ed, "EdDSA", "ed", "{\"aud\":7}")), AG_JWT_MALFORMED);
    assert_status(verify(token(k_ed, "EdDSA", "ed", "{\"aud\":[\"api\",7]}")), AG_JWT_MALFORMED);
}

static void test_claims_refused(void **state)
{
    (void)state;
    char long_sub[300], over[400];
    memset(long_sub, 's', 256);
    long_sub[256] = '\0';
    snprintf(over, sizeof over, "{\"sub\":\"%s\"}", long_sub);
    const char *bad[] = {
        "{\"sub\":null}",
        "{\"sub\":\"\"}",
        "{\"sub\":42}",
        over,
        "{\"sub\":\"user\\r\\nX-Admin: yes\"}",
        "{\"sub\":\"user\\n\"}",
        "{\"sub\":\"a\\u007fb\"}",
        "{\"tenant\":\"acme\\r\\nX: y\"}",
        "{\"tenant\":5}",
        "{\"tenant\":null,\"tenant_id\":\"t\\n\"}",
        "{\"roles\":[\"ok\",\"bad\\r\\nX: y\"]}",
        "{\"roles\":\"a\\nb\"}",
        "{\"roles\":[\"admin,root\"]}",
        "{\"roles\":[\"admin root\"]}",
        "{\"roles\":[1]}",
        "{\"roles\":{}}",
        "{\"roles\":null,\"realm_access\":{\"roles\":7}}",
        "{\"jti\":\"x\\ty\"}",
        "{\"scope\":[\"read\"]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum ag_jwt_status st = verify(token(k_ed, "EdDSA", "ed", bad[i]));
        if (st != AG_JWT_MALFORMED)
            fail_msg("claims %s: got %s", bad[i], ag_jwt_status_name(st));
        assert_string_equal(claims.sub, ""); /* nothing leaks out of a refusal */
    }
    /* Roles over the 1023 bytes kept. */
    json_t *roles = json_array();
    for (int i = 0; i < 120; i++) {
        char r[16];
        snprintf(r, sizeof r, "role-%03d", i);
        json_array_append_new(roles, json_string(r));
    }
    json_t *o = json_pack("{s:o}", "roles", roles);
    char *text = keep(json_dumps(o, JSON_COMPACT));
    json_decref(o);
    assert_status(verify(token(k_ed, "EdDSA", "ed", text)), AG_JWT_MALFORMED);
}

static void test_malformed_forms(void **state)
{
    (void)state;
    char *t = token(k_ed, "EdDSA", "ed", NULL);
    assert_status(verify(t), AG_JWT_OK);
    char buf[4096];
    size_t n = strlen(t);
    const char *dot1 = strchr(t, '.'), *dot2 = strrchr(t, '.');
    /* Two parts, four parts, five parts (a JWE), empty parts. */
    snprintf(buf, sizeof buf, "%.*s", (int)(dot2 - t), t);
    assert_status(verify(buf), AG_JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%s.AAAA", t);
    assert_status(verify(buf), AG_JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%s.AAAA.AAAA", t);
    assert_status(verify(buf), AG_JWT_MALFORMED);
    snprintf(buf, sizeof buf, ".%s", dot1 + 1);
    assert_status(verify(buf), AG_JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%.*s", (int)(dot2 - t + 1), t); /* no signature */
    assert_status(verify(buf), AG_JWT_BAD_SIGNATURE);
    /* Whitespace anywhere, padding, the standard alphabet. */
    snprintf(buf, sizeof buf, " %s", t);
    assert_status(verify(buf), AG_JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%s\n", t);
    assert_status(verify(buf), AG_JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%.*s %s", (int)(dot1 - t + 1), t, dot1 + 1);
    assert_status(verify(buf), AG_JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%s=", t);
    assert_status(verify(buf), AG_JWT_MALFORMED);
    memcpy(buf, t, n + 1);
    buf[dot1 - t + 3] = '+';
    assert_status(verify(buf), AG_JWT_MALFORMED);
    /* A signature that is not canonical base64url (spare bits set). */
    memcpy(buf, t, n + 1);
    buf[n - 1] = buf[n - 1] == 'A' ? 'B' : 'A'; /* 64 bytes → 86 chars: last char has spare bits */
    enum ag_jwt_status st = verify(buf);
    assert_true(st == AG_JWT_MALFORMED || st == AG_JWT_BAD_SIGNATURE);
    /* Header or payload that are not JSON objects. */
    const char *not_objects[] = {"[]", "\"x\"", "1", "null", "{", "{\"alg\":\"EdDSA\"}x", ""};
    for (size_t i = 0; i < sizeof not_objects / sizeof not_objects[0]; i++) {
        assert_status(verify(token_raw(k_ed, "EdDSA", not_objects[i], payload_with(NULL))),
                      AG_JWT_MALFORMED);
        assert_status(verify(token_raw(k_ed, "EdDSA", "{\"alg\":\"EdDSA\"}", not_objects[i])),
                      AG_JWT_MALFORMED);
    }
    /* Duplicate claims: which "sub" would be meant? */
    assert_status(verify(token_raw(k_ed, "EdDSA", "{\"alg\":\"EdDSA\"}",
                                   "{\"iss\":\"" ISS "\",\"sub\":\"a\",\"sub\":\"admin\","
                                   "\"aud\":\"api\",\"exp\":1700000600}")),
                  AG_JWT_MALFORMED);
    /* A NUL escaped inside a string is refused by the JSON parser. */
    assert_status(verify(token_raw(k_ed, "EdDSA", "{\"alg\":\"EdDSA\"}",
                                   "{\"iss\":\"" ISS "\",\"sub\":\"a\\u0000b\","
                                   "\"aud\":\"api\",\"exp\":1700000600}")),
                  AG_JWT_MALFORMED);
    assert_status(verify(""), AG_JWT_MALFORMED);
    assert_status(verify(".."), AG_JWT_MALFORMED);
    assert_status(ag_jwt_verify(AG_STR_NULL, &policy, NULL, 1, NOW, NULL, NULL), AG_JWT_MALFORMED);
}

static void test_size_limits(void **state)
{
    (void)state;
    char *pad = malloc(7000);
    assert_non_null(pad);
    memset(pad, 'p', 6000);
    snprintf(pad + 6000, 100, "\"}");
    char *over = keep(malloc(7100));
    snprintf(over, 7100, "{\"pad\":\"%s", pad);
    free(pad);
    char *t = token(k_ed, "EdDSA", "ed", over);
    assert_true(strlen(t) > 8192);
    assert_status(verify(t), AG_JWT_TOO_LARGE);
    policy.max_token_bytes = 16384;
    assert_status(verify(t), AG_JWT_OK);
    policy.max_token_bytes = strlen(t) - 1;
    assert_status(verify(t), AG_JWT_TOO_LARGE);
    policy.max_token_bytes = strlen(t);
    assert_status(verify(t), AG_JWT_OK);
    /* Over the limit, garbage is refused as too large before any decoding. */
    char *junk = keep(malloc(9000));
    memset(junk, '!', 8999);
    junk[8999] = '\0';
    policy.max_token_bytes = 0;
    assert_status(verify(junk), AG_JWT_TOO_LARGE);
    /* With two issuers, the larger limit applies until iss is known, then the issuer's own. */
    struct ag_jwt_policy two[2] = {policy, policy};
    two[0].issuer = "https://small";
    two[1].max_token_bytes = 4096;
    two[0].max_token_bytes = 16384;
    const struct ag_jwks *sets[] = {set, set};
    assert_status(ag_jwt_verify(ag_str_from_cstr(t), two, sets, 2, NOW, &claims, &which),
                  AG_JWT_TOO_LARGE);
    assert_int_equal(which, 1);
}

static void test_several_issuers(void **state)
{
    (void)state;
    struct ag_jwks *other;
    json_t *doc = json_pack("{s:[o]}", "keys", test_jwk_of(k_p256, "other-key", NULL));
    char *text = keep(json_dumps(doc, JSON_COMPACT));
    json_decref(doc);
    assert_int_equal(ag_jwks_parse(text, strlen(text), &other, NULL), 0);
    struct ag_jwt_policy two[2] = {policy, policy};
    two[1].issuer = "https://second";
    two[1].algorithms = AG_JWT_ES256;
    const struct ag_jwks *sets[] = {set, other};
    char *t2 = token(k_p256, "ES256", "other-key", "{\"iss\":\"https://second\"}");
    assert_status(ag_jwt_verify(ag_str_from_cstr(t2), two, sets, 2, NOW, &claims, &which),
                  AG_JWT_OK);
    assert_int_equal(which, 1);
    assert_string_equal(claims.iss, "https://second");
    /* The first issuer's key names mean nothing for the second issuer, and the reverse. */
    char *t = token(k_p256, "ES256", "p256", "{\"iss\":\"https://second\"}");
    assert_status(ag_jwt_verify(ag_str_from_cstr(t), two, sets, 2, NOW, &claims, &which),
                  AG_JWT_UNKNOWN_KID);
    assert_int_equal(which, 1);
    t = token(k_ed, "EdDSA", "ed", "{\"iss\":\"https://second\"}");
    assert_status(ag_jwt_verify(ag_str_from_cstr(t), two, sets, 2, NOW, &claims, &which),
                  AG_JWT_ALG_REFUSED);
    t = token(k_p256, "ES256", "other-key", NULL);
    assert_status(ag_jwt_verify(ag_str_from_cstr(t), two, sets, 2, NOW, &claims, &which),
                  AG_JWT_UNKNOWN_KID);
    assert_int_equal(which, 0);
    ag_jwks_unref(other);
    assert_status(ag_jwt_verify(ag_str_from_cstr(t), two, sets, 0, NOW, &claims, &which),
                  AG_JWT_UNKNOWN_ISSUER);
}

static void test_names_and_policy_check(void **state)
{
    (void)state;
    unsigned bit = 0;
    assert_int_equal(ag_jwt_alg_parse("ES256", &bit), 0);
    assert_int_equal(bit, AG_JWT_ES256);
    assert_int_equal(ag_jwt_alg_parse("EdDSA", &bit), 0);
    assert_int_equal(bit, AG_JWT_EDDSA);
    assert_null(ag_jwt_alg_refusal("PS256"));
    const char *refused[] = {"HS256", "HS512", "none", "es256", "ES512", "", NULL};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        bit = 99;
        assert_int_equal(ag_jwt_alg_parse(refused[i], &bit), AG_EINVAL);
        assert_int_equal(bit, 99);
        assert_non_null(ag_jwt_alg_refusal(refused[i]));
    }
    assert_non_null(strstr(ag_jwt_alg_refusal("HS256"), "HMAC"));
    assert_non_null(strstr(ag_jwt_alg_refusal("none"), "signed"));
    assert_string_equal(ag_jwt_alg_name(AG_JWT_PS256), "PS256");
    assert_string_equal(ag_jwt_alg_name(3), "?");
    assert_string_equal(ag_jwt_status_name(AG_JWT_OK), "ok");
    assert_string_equal(ag_jwt_status_name(AG_JWT_NOT_YET_VALID), "not_yet_valid");
    assert_string_equal(ag_jwt_status_name(AG_JWT_STATUS_COUNT), "unknown");
    for (int s = 0; s < AG_JWT_STATUS_COUNT; s++)
        assert_non_null(ag_jwt_status_name((enum ag_jwt_status)s));

    struct ag_err err;
    assert_int_equal(ag_jwt_policy_check(&policy, &err), 0);
    struct ag_jwt_policy p = policy;
    p.algorithms = 0;
    assert_int_equal(ag_jwt_policy_check(&p, &err), AG_EINVAL);
    p.algorithms = 1u << 9;
    assert_int_equal(ag_jwt_policy_check(&p, &err), AG_EINVAL);
    p = policy;
    p.issuer = "";
    assert_int_equal(ag_jwt_policy_check(&p, &err), AG_EINVAL);
    p = policy;
    p.max_token_bytes = AG_JWT_MAX_TOKEN_LIMIT + 1;
    assert_int_equal(ag_jwt_policy_check(&p, &err), AG_EINVAL);
    p = policy;
    const char *const empty_aud[] = {""};
    p.audiences = empty_aud;
    p.audience_count = 1;
    assert_int_equal(ag_jwt_policy_check(&p, &err), AG_EINVAL);
}

/* Without a kid, at most 10 fitting keys are tried: a forged token buys few signature checks. */
static void test_keys_tried_without_kid_bounded(void **state)
{
    (void)state;
    EVP_PKEY *eds[12];
    json_t *keys = json_array();
    for (int i = 0; i < 12; i++) {
        eds[i] = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        assert_non_null(eds[i]);
        json_t *k = test_jwk_of(eds[i], "x", NULL);
        json_object_del(k, "kid");
        json_array_append_new(keys, k);
    }
    json_t *doc = json_pack("{s:o}", "keys", keys);
    char *text = keep(json_dumps(doc, JSON_COMPACT));
    json_decref(doc);
    ag_jwks_unref(set);
    assert_int_equal(ag_jwks_parse(text, strlen(text), &set, NULL), 0);
    assert_status(verify(token(eds[9], "EdDSA", NULL, NULL)), AG_JWT_OK);
    assert_status(verify(token(eds[10], "EdDSA", NULL, NULL)), AG_JWT_BAD_SIGNATURE);
    for (int i = 0; i < 12; i++)
        EVP_PKEY_free(eds[i]);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_every_algorithm_verifies),
        T(test_header_typ_variants),
        T(test_claim_forms),
        T(test_alg_none_and_hmac_refused),
        T(test_alg_pinned_by_policy_and_key),
        T(test_unknown_kid_and_no_keys),
        T(test_bad_signatures),
        T(test_es256_der_signature_refused),
        T(test_time_claims),
        T(test_issuer_and_audience),
        T(test_claims_refused),
        T(test_malformed_forms),
        T(test_size_limits),
        T(test_several_issuers),
        T(test_names_and_policy_check),
        T(test_keys_tried_without_kid_bounded),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
