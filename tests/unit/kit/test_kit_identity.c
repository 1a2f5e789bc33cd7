/* Unit tests for src/kit/kit_identity.c: AGORA_ISSUERS, algorithms, access rules. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/base64url.h"
#include "core/jws_sign.h"
#include "kit/kit_identity.h"
#include "kit/kit_req.h"
#include "../jwk_fixture.h"

static void issuers_good(void **state)
{
    (void)state;
    struct kit_issuers iss;
    struct ag_err err = {0};
    assert_int_equal(kit_issuers_parse("http://auth=http://127.0.0.1:9000/.well-known/jwks.json;"
                                       " other=file:/tmp/k.json\n\tthird=x=http://h/j",
                                       &iss, &err),
                     0);
    assert_int_equal(iss.count, 3);
    assert_string_equal(iss.items[0].issuer, "http://auth");
    assert_string_equal(iss.items[0].jwks_uri, "http://127.0.0.1:9000/.well-known/jwks.json");
    assert_null(iss.items[0].jwks_file);
    assert_string_equal(iss.items[1].issuer, "other");
    assert_string_equal(iss.items[1].jwks_file, "/tmp/k.json");
    assert_null(iss.items[1].jwks_uri);
    assert_string_equal(iss.items[2].issuer, "third=x");
    assert_string_equal(iss.items[2].jwks_uri, "http://h/j");
    kit_issuers_release(&iss);
    assert_int_equal(kit_issuers_parse("", &iss, &err), 0);
    assert_int_equal(iss.count, 0);
    assert_int_equal(kit_issuers_parse(NULL, &iss, &err), 0);
    assert_int_equal(kit_issuers_parse(" ; ;", &iss, &err), 0);
    assert_int_equal(iss.count, 0);
}

static void issuers_bad(void **state)
{
    (void)state;
    struct {
        const char *text, *part;
    } cases[] = {
        {"auth", "ISSUER=http"},
        {"auth=https://h/j", "https"},
        {"=http://h/j", "issuer is empty"},
        {"a=file:", "file path is empty"},
        {"a=http://", "URI host is empty"},
        {"a=http:///x", "URI host is empty"},
        {"a=ftp://h/j", "ISSUER=http"},
        {"a=http://h/j;a=file:/x", "twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct kit_issuers iss;
        struct ag_err err = {0};
        int rc = kit_issuers_parse(cases[i].text, &iss, &err);
        if (rc != AG_EINVAL || !strstr(err.msg, cases[i].part) || !strstr(err.msg, "AGORA_ISSUERS"))
            fail_msg("%s: rc %d msg \"%s\", want %d and \"%s\"", cases[i].text, rc, err.msg,
                     AG_EINVAL, cases[i].part);
        assert_int_equal(iss.count, 0);
        assert_null(iss.items);
    }
    char many[65 * 16 + 1] = "";
    size_t o = 0;
    for (int i = 0; i < 65; i++)
        o += (size_t)snprintf(many + o, sizeof many - o, "i%d=file:/k ", i);
    struct kit_issuers iss;
    struct ag_err err = {0};
    assert_int_equal(kit_issuers_parse(many, &iss, &err), AG_EINVAL);
    assert_non_null(strstr(err.msg, "over 64"));
}

static void algorithms(void **state)
{
    (void)state;
    unsigned bits = 0;
    struct ag_err err = {0};
    assert_int_equal(kit_algorithms_parse("ES256", &bits, &err), 0);
    assert_int_equal(bits, AG_JWT_ES256);
    assert_int_equal(kit_algorithms_parse("ES256, RS256", &bits, &err), 0);
    assert_int_equal(bits, AG_JWT_ES256 | AG_JWT_RS256);
    static const char *const bad[] = {"", "HS256", "none", "ES256,", "es256", "ES256,,RS256"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = kit_algorithms_parse(bad[i], &bits, &err);
        if (rc != AG_EINVAL || !strstr(err.msg, "AGORA_ISSUER_ALGORITHMS"))
            fail_msg("\"%s\": rc %d msg %s", bad[i], rc, err.msg);
    }
}

/* A request with an optional Authorization field. */
static void make(struct kit_req *req, const char *authorization)
{
    struct ag_http_header h[2] = {{AG_STR("Host"), AG_STR("x")},
                                  {AG_STR("Authorization"), ag_str_from_cstr(authorization)}};
    assert_int_equal(
        kit_req_init(req, AG_STR("GET"), AG_STR("/"), AG_STR(""), h, authorization ? 2 : 1, 10), 0);
}

static void access_without_issuers(void **state)
{
    (void)state;
    static const struct kit_access pub = KIT_PUBLIC, authed = KIT_AUTHENTICATED,
                                   admin = KIT_ROLE("admin");
    struct kit_req req;
    make(&req, NULL);
    assert_int_equal(kit_identity_check(&req, &pub, NULL, NULL), 0);
    assert_int_equal(req.status, 0);
    assert_null(kit_req_claims(&req));
    kit_req_release(&req);

    make(&req, NULL);
    assert_int_equal(kit_identity_check(&req, &authed, NULL, NULL), AG_EINVAL);
    assert_int_equal(req.status, 401);
    assert_string_equal(req.resp_fields[0].name, "WWW-Authenticate");
    assert_string_equal(req.resp_fields[0].value, "Bearer");
    kit_req_release(&req);

    /* a token that was sent must verify, even on a public route */
    make(&req, "Bearer a.b.c");
    assert_int_equal(kit_identity_check(&req, &pub, NULL, NULL), AG_EINVAL);
    assert_int_equal(req.status, 401);
    assert_non_null(strstr(req.resp_fields[0].value, "error=\"invalid_token\""));
    kit_req_release(&req);

    make(&req, "Basic dXNlcjpwYXNz");
    assert_int_equal(kit_identity_check(&req, &admin, NULL, NULL), AG_EINVAL);
    assert_int_equal(req.status, 401);
    assert_non_null(strstr(req.resp_fields[0].value, "error=\"invalid_request\""));
    kit_req_release(&req);
}

/* An ES256 token signed by k with kid "k1" carrying payload (JSON text). Caller frees. */
static char *token(EVP_PKEY *k, const char *payload)
{
    struct ag_buf out;
    ag_buf_init(&out, 4096);
    assert_int_equal(ag_jws_sign_es256(k, "k1", NULL, payload, strlen(payload), &out, NULL), 0);
    char *t = strndup(ag_buf_str(&out).p, out.len);
    ag_buf_release(&out);
    assert_non_null(t);
    return t;
}

/* Checks access for a request bearing tok; returns the status answered (0: allowed). */
static int run_check(const char *tok, const struct kit_access *access, struct ag_keyring *kr,
                     struct ag_jwt_cache *cache, char *sub_out)
{
    char field[2048];
    snprintf(field, sizeof field, "Bearer %s", tok);
    struct kit_req req;
    struct ag_http_header h[2] = {{AG_STR("Host"), AG_STR("x")},
                                  {AG_STR("Authorization"), ag_str_from_cstr(field)}};
    assert_int_equal(kit_req_init(&req, AG_STR("GET"), AG_STR("/"), AG_STR(""), h, 2, 10), 0);
    int rc = kit_identity_check(&req, access, kr, cache);
    int status = req.status;
    assert_true(rc == 0 ? status == 0 : status != 0);
    if (sub_out)
        snprintf(sub_out, 64, "%s|%s", kit_req_subject(&req) ? kit_req_subject(&req) : "-",
                 kit_req_tenant(&req));
    kit_req_release(&req);
    return status;
}

static void access_with_tokens(void **state)
{
    (void)state;
    EVP_PKEY *key = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
    assert_non_null(key);
    char path[] = "/tmp/kit_jwks_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    json_t *doc = json_pack("{s:[o]}", "keys", test_jwk_of(key, "k1", NULL));
    char *text = json_dumps(doc, JSON_COMPACT);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    free(text);
    json_decref(doc);

    char spec[128];
    snprintf(spec, sizeof spec, "agora-auth=file:%s", path);
    struct kit_issuers iss;
    struct ag_err err = {0};
    assert_int_equal(kit_issuers_parse(spec, &iss, &err), 0);
    struct ag_keyring *kr = NULL;
    assert_int_equal(kit_identity_keyring(&iss, "agora", AG_JWT_ES256, &kr, &err), 0);
    assert_int_equal(ag_keyring_start(kr, 5000, &err), 0);
    assert_true(ag_keyring_ready(kr));
    struct ag_jwt_cache *cache = NULL;
    assert_int_equal(ag_jwt_cache_new(0, 0, &cache, &err), 0);

    long long exp = (long long)time(NULL) + 600;
    char payload[512];
    snprintf(payload, sizeof payload,
             "{\"iss\":\"agora-auth\",\"sub\":\"u1\",\"aud\":\"agora\",\"exp\":%lld,"
             "\"roles\":[\"support\"],\"tenant\":\"t9\"}",
             exp);
    char *good = token(key, payload);
    char *forged = token(other, payload);
    snprintf(payload, sizeof payload,
             "{\"iss\":\"agora-auth\",\"sub\":\"u1\",\"aud\":\"elsewhere\",\"exp\":%lld}", exp);
    char *wrong_aud = token(key, payload);
    snprintf(payload, sizeof payload,
             "{\"iss\":\"agora-auth\",\"sub\":\"u1\",\"aud\":\"agora\",\"exp\":%lld}",
             (long long)time(NULL) - 3600);
    char *expired = token(key, payload);

    static const struct kit_access pub = KIT_PUBLIC, authed = KIT_AUTHENTICATED,
                                   admin = KIT_ROLE("admin"), staff = KIT_ROLE("admin, support");
    char who[64];
    assert_int_equal(run_check(good, &authed, kr, cache, who), 0);
    assert_string_equal(who, "u1|t9");
    assert_int_equal(run_check(good, &authed, kr, cache, who), 0); /* from the cache */
    assert_int_equal(run_check(good, &pub, kr, cache, who), 0);
    assert_string_equal(who, "u1|t9");
    assert_int_equal(run_check(good, &staff, kr, cache, NULL), 0);
    assert_int_equal(run_check(good, &admin, kr, cache, NULL), 403);
    assert_int_equal(run_check(forged, &authed, kr, cache, NULL), 401);
    assert_int_equal(run_check(forged, &pub, kr, cache, NULL), 401);
    assert_int_equal(run_check(wrong_aud, &authed, kr, cache, NULL), 401);
    assert_int_equal(run_check(expired, &authed, kr, NULL, NULL), 401);
    struct ag_jwt_cache_stats st;
    ag_jwt_cache_stats(cache, &st);
    assert_true(st.hits >= 3);

    free(good);
    free(forged);
    free(wrong_aud);
    free(expired);
    ag_jwt_cache_free(cache);
    ag_keyring_free(kr);
    kit_issuers_release(&iss);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(issuers_good),       cmocka_unit_test(issuers_bad),
        cmocka_unit_test(algorithms),         cmocka_unit_test(access_without_issuers),
        cmocka_unit_test(access_with_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
