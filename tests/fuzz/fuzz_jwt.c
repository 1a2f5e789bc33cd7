/* libFuzzer target: JWK Sets, tokens, and tokens the target signs itself, under their contracts. */
#include "fuzz_support.h"

#include <openssl/evp.h>

#include "core/base64url.h"
#include "core/jwks.h"
#include "core/jwt.h"
#include "core/jwt_cache.h"

/*
 * Input: one mode byte, then:
 *   mode % 4 == 0: a JWK Set document for ag_jwks_parse; a set that parses is then used to
 *                  verify a fixed token (key matching over arbitrary sets);
 *   mode % 4 == 1: a token for ag_jwt_verify against a fixed set (P-256, RSA 2048, Ed25519)
 *                  and two issuers;
 *   mode % 4 == 2: header JSON, a 0xff byte, payload JSON: the target signs them with its
 *                  Ed25519 key (kid "ed") so that claim checking past the signature is reached;
 *   mode % 4 == 3: base64url text: a decode that succeeds must encode back to the same text.
 * Whatever the status, a verified token's claims must hold what jwt.h promises, and a cache
 * round trip must give them back unchanged.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { NOW = 1700000000 };

/* A P-256 key made for this target and RFC 7517's example RSA key; the Ed25519 one is added. */
static const char fixed_keys[] =
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"ec\","
    "\"x\":\"reD-xT4XA7kjxAcT_H-V00CSy4693k0v46tiM1nSXR0\","
    "\"y\":\"RKrArJrEjCICyQcT_cZGhTBEORXzIP1VD33AdPoVzBI\"},"
    "{\"kty\":\"RSA\",\"kid\":\"2011-04-29\",\"e\":\"AQAB\",\"n\":\"0vx7agoebGcQSuuPiLJXZptN9nndrQ"
    "mbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64t"
    "Z_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7"
    "d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_"
    "xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw\"}";

static EVP_PKEY *ed_key;
static struct ag_jwks *fixed_set;
static char fixed_token[512];
static struct ag_jwt_cache *cache;
static const char *const audiences[] = {"api"};
static const struct ag_jwt_policy policies[2] = {
    {.issuer = "https://a",
     .audiences = audiences,
     .audience_count = 1,
     .algorithms = AG_JWT_ALG_ALL,
     .clock_skew_s = 60},
    {.issuer = "https://b", .algorithms = AG_JWT_EDDSA | AG_JWT_ES256, .max_token_bytes = 2048},
};

/* header.payload.signature with the target's Ed25519 key, into out (cap bytes); 0 if too big. */
static size_t sign_ed(const uint8_t *h, size_t hlen, const uint8_t *p, size_t plen, char *out,
                      size_t cap)
{
    size_t need = ag_base64url_encoded_len(hlen) + ag_base64url_encoded_len(plen) + 90;
    if (need > cap)
        return 0;
    size_t n = ag_base64url_encode(h, hlen, out);
    out[n++] = '.';
    n += ag_base64url_encode(p, plen, out + n);
    unsigned char sig[64];
    size_t sig_len = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    CHECK(ctx && EVP_DigestSignInit_ex(ctx, NULL, NULL, NULL, NULL, ed_key, NULL) == 1);
    CHECK(EVP_DigestSign(ctx, sig, &sig_len, (unsigned char *)out, n) == 1);
    EVP_MD_CTX_free(ctx);
    out[n++] = '.';
    n += ag_base64url_encode(sig, sig_len, out + n);
    return n;
}

static void init_once(void)
{
    static const unsigned char seed[32] = "agora-fuzz-ed25519-fixed-seed-00";
    ed_key = EVP_PKEY_new_raw_private_key_ex(NULL, "ED25519", NULL, seed, sizeof seed);
    CHECK(ed_key != NULL);
    unsigned char pub[32];
    size_t pub_len = sizeof pub;
    CHECK(EVP_PKEY_get_raw_public_key(ed_key, pub, &pub_len) == 1);
    char x[64], doc[2048];
    ag_base64url_encode(pub, pub_len, x);
    int n = snprintf(
        doc, sizeof doc,
        "{\"keys\":[%s,{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ed\",\"x\":\"%s\"}]}",
        fixed_keys, x);
    CHECK(n > 0 && (size_t)n < sizeof doc);
    CHECK(ag_jwks_parse(doc, (size_t)n, &fixed_set, NULL) == 0);
    CHECK(ag_jwks_count(fixed_set) == 3);
    static const char h[] = "{\"alg\":\"EdDSA\",\"kid\":\"ed\"}";
    static const char p[] =
        "{\"iss\":\"https://a\",\"sub\":\"s\",\"aud\":\"api\",\"exp\":1700000600}";
    CHECK(sign_ed((const uint8_t *)h, sizeof h - 1, (const uint8_t *)p, sizeof p - 1, fixed_token,
                  sizeof fixed_token) > 0);
    CHECK(ag_jwt_cache_new(64, 0, &cache, NULL) == 0);
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* What jwt.h promises about a verification's outcome. */
static void check_outcome(enum ag_jwt_status st, const struct ag_jwt_claims *c, size_t which,
                          struct ag_str token, size_t issuers)
{
    CHECK((unsigned)st < AG_JWT_STATUS_COUNT);
    CHECK(ag_jwt_status_name(st)[0] != '\0');
    if (st == AG_JWT_MALFORMED || st == AG_JWT_TOO_LARGE || st == AG_JWT_UNKNOWN_ISSUER ||
        st == AG_JWT_ALG_REFUSED) {
        CHECK(c->sub[0] == '\0');
        return;
    }
    CHECK(which < issuers);
    if (st != AG_JWT_OK) {
        CHECK(c->sub[0] == '\0' && c->roles[0] == '\0');
        return;
    }
    const struct ag_jwt_policy *p = &policies[which];
    CHECK(strcmp(c->iss, p->issuer) == 0);
    CHECK(c->sub[0] != '\0' && printable(c->sub) && printable(c->tenant) && printable(c->roles));
    CHECK(printable(c->jti) && printable(c->scope));
    CHECK(!strchr(c->roles, ' '));
    size_t commas = 0;
    for (const char *r = c->roles; *r; r++)
        commas += *r == ',';
    CHECK(c->role_count == (c->roles[0] ? commas + 1 : 0));
    CHECK(NOW <= c->exp + (int64_t)p->clock_skew_s);
    CHECK(c->nbf <= NOW + (int64_t)p->clock_skew_s && c->iat <= NOW + (int64_t)p->clock_skew_s);
    /* A cache round trip gives the same claims back. */
    struct ag_jwt_claims back;
    size_t back_which;
    CHECK(ag_jwt_cache_put(cache, token, c, which, NOW) == 0);
    if (c->exp >= NOW) {
        CHECK(ag_jwt_cache_get(cache, token, NOW, &back, &back_which));
        CHECK(back_which == which && memcmp(&back, c, sizeof back) == 0);
    }
}

static void verify_fixed(struct ag_str token)
{
    const struct ag_jwks *sets[2] = {fixed_set, fixed_set};
    struct ag_jwt_claims c;
    size_t which;
    enum ag_jwt_status st = ag_jwt_verify(token, policies, sets, 2, NOW, &c, &which);
    check_outcome(st, &c, which, token, 2);
}

static void fuzz_jwks(const uint8_t *data, size_t size)
{
    char *doc = copy_of(data, size);
    struct ag_jwks *set = NULL;
    struct ag_err err = {0};
    int rc = ag_jwks_parse(doc, size, &set, &err);
    if (rc == 0) {
        CHECK(set != NULL && ag_jwks_count(set) <= AG_JWKS_MAX_KEYS);
        for (size_t i = 0; i < ag_jwks_count(set); i++) {
            const struct ag_jwk *k = ag_jwks_key(set, i);
            unsigned algs = ag_jwk_algorithms(k);
            CHECK(algs != 0 && (algs & ~AG_JWT_ALG_ALL) == 0);
            CHECK(ag_jwk_kid(k).len <= AG_JWK_KID_MAX);
        }
        const struct ag_jwks *sets[2] = {set, set};
        struct ag_jwt_claims c;
        size_t which;
        struct ag_str t = ag_str_from_cstr(fixed_token);
        enum ag_jwt_status st = ag_jwt_verify(t, policies, sets, 2, NOW, &c, &which);
        check_outcome(st, &c, which, t, 2);
        ag_jwks_unref(set);
    } else {
        CHECK(set == NULL && (rc == AG_EINVAL || rc == AG_ERANGE || rc == AG_ENOMEM));
        CHECK(err.msg[0] != '\0');
    }
    free(doc);
}

static void fuzz_signed(const uint8_t *data, size_t size)
{
    const uint8_t *cut = memchr(data, 0xff, size);
    if (!cut)
        return;
    size_t hlen = (size_t)(cut - data);
    static char token[3 * 8192];
    size_t n = sign_ed(data, hlen, cut + 1, size - hlen - 1, token, sizeof token);
    if (n > 0)
        verify_fixed((struct ag_str){token, n});
}

static void fuzz_base64url(const uint8_t *data, size_t size)
{
    char *text = copy_of(data, size);
    size_t cap = ag_base64url_decoded_max(size), len;
    unsigned char *bytes = malloc(cap + 1);
    CHECK(bytes != NULL);
    if (ag_base64url_decode((struct ag_str){text, size}, bytes, cap, &len) == 0) {
        char *again = malloc(ag_base64url_encoded_len(len) + 1);
        CHECK(again != NULL);
        CHECK(ag_base64url_encode(bytes, len, again) == size);
        CHECK(memcmp(again, text, size) == 0);
        free(again);
    }
    free(bytes);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        init_once();
        ready = true;
    }
    if (size < 1)
        return 0;
    unsigned mode = data[0] % 4;
    data++;
    size--;
    if (mode == 0) {
        fuzz_jwks(data, size);
    } else if (mode == 1) {
        char *token = copy_of(data, size); /* its own allocation: reads past it are caught */
        verify_fixed((struct ag_str){token, size});
        free(token);
    } else if (mode == 2) {
        fuzz_signed(data, size);
    } else {
        fuzz_base64url(data, size);
    }
    return 0;
}
