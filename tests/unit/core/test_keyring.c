/* Unit tests for src/gateway/keyring.c: JWK Sets from files and from a server on loopback. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/base64url.h"
#include "core/http_server.h"
#include "core/log.h"
#include "core/keyring.h"
#include "../jwk_fixture.h"
#include "core/banned.h"

#define ISS "https://issuer.test"
enum { WAIT_MS = 10000 };

static EVP_PKEY *key_a, *key_b;

/* ---- keys, sets and tokens (ES256 only) ---- */

/* A JWK Set text holding key A ("a"), and key B ("b") when with_b. Caller frees. */
static char *jwks_text(bool with_b)
{
    json_t *keys = json_pack("[o]", test_jwk_of(key_a, "a", NULL));
    if (with_b)
        json_array_append_new(keys, test_jwk_of(key_b, "b", NULL));
    json_t *doc = json_pack("{s:o}", "keys", keys);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

/* An ES256 token from issuer iss, signed by k with kid, valid for ten minutes. Caller frees. */
static char *token(EVP_PKEY *k, const char *kid, const char *iss)
{
    char header[96], payload[256], input[512], *h, *p;
    snprintf(header, sizeof header, "{\"alg\":\"ES256\",\"kid\":\"%s\"}", kid);
    snprintf(payload, sizeof payload,
             "{\"iss\":\"%s\",\"sub\":\"user-7\",\"aud\":\"api\",\"exp\":%lld}", iss,
             (long long)time(NULL) + 600);
    h = malloc(ag_base64url_encoded_len(strlen(header)) + 1);
    p = malloc(ag_base64url_encoded_len(strlen(payload)) + 1);
    ag_base64url_encode(header, strlen(header), h);
    ag_base64url_encode(payload, strlen(payload), p);
    snprintf(input, sizeof input, "%s.%s", h, p);
    free(h);
    free(p);
    unsigned char der[80], raw[64];
    size_t len = sizeof der;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, k, NULL), 1);
    assert_int_equal(EVP_DigestSign(ctx, der, &len, (unsigned char *)input, strlen(input)), 1);
    EVP_MD_CTX_free(ctx);
    const unsigned char *d = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &d, (long)len);
    BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32);
    ECDSA_SIG_free(sig);
    char s[100];
    ag_base64url_encode(raw, 64, s);
    char *t = malloc(strlen(input) + strlen(s) + 2);
    assert_non_null(t);
    snprintf(t, strlen(input) + strlen(s) + 2, "%s.%s", input, s);
    return t;
}

/* ---- a JWKS server on loopback ---- */

static pthread_mutex_t served_lock = PTHREAD_MUTEX_INITIALIZER;
static int served_status = 200;
static char *served_body;
static atomic_int served_requests;

static void serve(int status, char *body)
{
    pthread_mutex_lock(&served_lock);
    served_status = status;
    free(served_body);
    served_body = body;
    pthread_mutex_unlock(&served_lock);
}

static void srv_on_request(struct ag_http_exchange *ex)
{
    const struct ag_http_request *req = ag_http_exchange_request(ex);
    atomic_fetch_add(&served_requests, 1);
    if (!ag_str_eq(req->path, AG_STR("/jwks"))) {
        ag_http_respond(ex, 404, NULL, "", 0);
        return;
    }
    pthread_mutex_lock(&served_lock);
    const char *body = served_body ? served_body : "";
    ag_http_respond(ex, served_status, "application/json", body, strlen(body));
    pthread_mutex_unlock(&served_lock);
}

static const struct ag_http_handler srv_handler = {.on_request = srv_on_request};

static struct ag_http_server *server;
static pthread_t server_thread;
static char jwks_uri[64];

static void *srv_main(void *arg)
{
    (void)arg;
    ag_http_server_run(server, NULL);
    return NULL;
}

static void srv_start(void)
{
    struct ag_http_server_config cfg;
    struct ag_err err = {0};
    ag_http_server_config_defaults(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.workers = 1;
    cfg.handler = &srv_handler;
    if (ag_http_server_new(&cfg, &server, &err) != 0)
        fail_msg("server: %s", err.msg);
    snprintf(jwks_uri, sizeof jwks_uri, "http://127.0.0.1:%u/jwks", ag_http_server_port(server));
    assert_int_equal(pthread_create(&server_thread, NULL, srv_main, NULL), 0);
}

static int setup(void **state)
{
    (void)state;
    atomic_store(&served_requests, 0);
    serve(200, jwks_text(false));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    serve(200, NULL);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    ag_log_setup(NULL, AG_LOG_INFO, -1); /* fetch outcomes are logged; keep the output clean */
    key_a = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    key_b = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    srv_start();
    return key_a && key_b ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    ag_http_server_shutdown(server);
    pthread_join(server_thread, NULL);
    ag_http_server_free(server);
    EVP_PKEY_free(key_a);
    EVP_PKEY_free(key_b);
    return 0;
}

/* ---- helpers ---- */

static const char *const audiences[] = {"api"};

static struct ag_issuer_spec spec_for(const char *uri, const char *file)
{
    return (struct ag_issuer_spec){.issuer = ISS,
                                   .jwks_uri = uri,
                                   .jwks_file = file,
                                   .audiences = audiences,
                                   .audience_count = 1,
                                   .algorithms = AG_JWT_ES256,
                                   .clock_skew_s = 30,
                                   .refresh_interval_ms = 60000,
                                   .min_refresh_interval_ms = 20};
}

static struct ag_keyring *start(const struct ag_issuer_spec *specs, size_t n, uint32_t timeout_ms)
{
    struct ag_keyring *kr = NULL;
    struct ag_err err = {0};
    if (ag_keyring_new(specs, n, &kr, &err) != 0)
        fail_msg("ag_keyring_new: %s", err.msg);
    if (ag_keyring_start(kr, timeout_ms, &err) != 0)
        fail_msg("ag_keyring_start: %s", err.msg);
    return kr;
}

static enum ag_jwt_status verify(struct ag_keyring *kr, const char *tok)
{
    struct ag_jwt_claims claims;
    return ag_keyring_verify(kr, ag_str_from_cstr(tok), (int64_t)time(NULL), &claims);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Verifies tok every 5 ms until the answer is want; fails after WAIT_MS. */
static void verify_until(struct ag_keyring *kr, const char *tok, enum ag_jwt_status want)
{
    enum ag_jwt_status st = AG_JWT_STATUS_COUNT;
    for (int waited = 0; waited < WAIT_MS; waited += 5) {
        st = verify(kr, tok);
        if (st == want)
            return;
        sleep_ms(5);
    }
    fail_msg("still %s, want %s", ag_jwt_status_name(st), ag_jwt_status_name(want));
}

/* ---- tests ---- */

static void test_new_refuses_bad_specs(void **state)
{
    (void)state;
    struct {
        const char *uri, *file, *why;
    } bad[] = {
        {"https://idp.example/jwks", NULL, "TLS"},
        {"HTTPS://idp.example/jwks", NULL, "TLS"},
        {"ftp://idp.example/jwks", NULL, "http://"},
        {"http://user@idp.example/jwks", NULL, "user info"},
        {"http:///jwks", NULL, "host"},
        {"http://idp:0/jwks", NULL, "port"},
        {"http://idp:65536/jwks", NULL, "port"},
        {"http://idp:80x/jwks", NULL, "port"},
        {"http://idp/jw ks", NULL, "spaces"},
        {"http://idp/jwks", "/etc/jwks.json", "exactly one"},
        {NULL, NULL, "exactly one"},
    };
    struct ag_keyring *kr;
    struct ag_err err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ag_issuer_spec s = spec_for(bad[i].uri, bad[i].file);
        memset(&err, 0, sizeof err);
        assert_int_equal(ag_keyring_new(&s, 1, &kr, &err), AG_EINVAL);
        assert_null(kr);
        if (!strstr(err.msg, bad[i].why))
            fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].uri, err.msg, bad[i].why);
    }
    struct ag_issuer_spec two[2] = {spec_for(jwks_uri, NULL), spec_for(jwks_uri, NULL)};
    assert_int_equal(ag_keyring_new(two, 2, &kr, &err), AG_EINVAL);
    assert_non_null(strstr(err.msg, "twice"));
    assert_int_equal(ag_keyring_new(two, 0, &kr, &err), AG_EINVAL);
    two[0].algorithms = 0;
    assert_int_equal(ag_keyring_new(two, 1, &kr, &err), AG_EINVAL);
    two[0] = spec_for(jwks_uri, NULL);
    two[0].min_refresh_interval_ms = two[0].refresh_interval_ms + 1;
    assert_int_equal(ag_keyring_new(two, 1, &kr, &err), AG_EINVAL);
    /* Accepted forms: default port, query without a path, IPv6 literal; nothing fetched. */
    const char *good[] = {"http://idp.example", "http://idp.example?x=1", "http://[::1]:8080/j"};
    for (size_t i = 0; i < 3; i++) {
        two[0] = spec_for(good[i], NULL);
        assert_int_equal(ag_keyring_new(two, 1, &kr, &err), 0);
        assert_false(ag_keyring_ready(kr));
        assert_int_equal(ag_keyring_count(kr), 1);
        assert_string_equal(ag_keyring_issuer(kr, 0), ISS);
        ag_keyring_free(kr);
    }
    ag_keyring_free(NULL);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_file_source_and_unknown_kid(void **state)
{
    (void)state;
    char path[] = "/tmp/agora-keyring-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char *text = jwks_text(false);
    write_file(path, text);
    free(text);
    struct ag_issuer_spec s = spec_for(NULL, path);
    struct ag_keyring *kr = start(&s, 1, 1000);
    assert_true(ag_keyring_ready(kr));
    char *ta = token(key_a, "a", ISS), *tb = token(key_b, "b", ISS);
    struct ag_jwt_claims claims;
    assert_int_equal(ag_keyring_verify(kr, ag_str_from_cstr(ta), time(NULL), &claims), AG_JWT_OK);
    assert_string_equal(claims.sub, "user-7");
    assert_int_equal(verify(kr, tb), AG_JWT_UNKNOWN_KID);
    /* The issuer rotates: B appears in the file; an unknown kid makes the keyring look. */
    text = jwks_text(true);
    write_file(path, text);
    free(text);
    verify_until(kr, tb, AG_JWT_OK);
    assert_int_equal(verify(kr, ta), AG_JWT_OK);
    struct ag_keyring_stats st;
    ag_keyring_stats(kr, 0, &st);
    assert_true(st.has_keys);
    assert_int_equal(st.keys, 2);
    assert_true(st.refetch_requests >= 1);
    assert_true(st.fetches_ok >= 2);
    assert_true(st.last_ok_unix_s > 0);
    /* A file that goes bad keeps the last good set. */
    write_file(path, "{\"keys\": not json");
    uint64_t failed = st.fetches_failed;
    char *tc = token(key_b, "c", ISS);
    for (int i = 0; i < 2000 && st.fetches_failed == failed; i++) {
        assert_int_equal(verify(kr, tc), AG_JWT_UNKNOWN_KID);
        sleep_ms(5);
        ag_keyring_stats(kr, 0, &st);
    }
    assert_true(st.fetches_failed > failed);
    assert_int_equal(verify(kr, tb), AG_JWT_OK);
    ag_keyring_free(kr);
    unlink(path);
    free(ta);
    free(tb);
    free(tc);
}

static void test_http_refetch_on_unknown_kid(void **state)
{
    (void)state;
    struct ag_issuer_spec s = spec_for(jwks_uri, NULL);
    struct ag_keyring *kr = start(&s, 1, 5000);
    assert_true(ag_keyring_ready(kr));
    char *ta = token(key_a, "a", ISS), *tb = token(key_b, "b", ISS);
    assert_int_equal(verify(kr, ta), AG_JWT_OK);
    assert_int_equal(verify(kr, tb), AG_JWT_UNKNOWN_KID);
    serve(200, jwks_text(true));
    verify_until(kr, tb, AG_JWT_OK);
    assert_int_equal(verify(kr, ta), AG_JWT_OK);
    /* Tokens of other issuers are not this keyring's business. */
    char *tx = token(key_a, "a", "https://someone.else");
    assert_int_equal(verify(kr, tx), AG_JWT_UNKNOWN_ISSUER);
    ag_keyring_free(kr);
    free(ta);
    free(tb);
    free(tx);
}

static void test_failed_refresh_keeps_last_good(void **state)
{
    (void)state;
    struct ag_issuer_spec s = spec_for(jwks_uri, NULL);
    s.refresh_interval_ms = 30;
    s.min_refresh_interval_ms = 10;
    struct ag_keyring *kr = start(&s, 1, 5000);
    char *ta = token(key_a, "a", ISS);
    assert_int_equal(verify(kr, ta), AG_JWT_OK);
    const struct {
        int status;
        const char *body;
    } failures[] = {{500, "{}"}, {200, "not json"}, {200, "{\"keys\":[]}"}, {404, ""}};
    for (size_t i = 0; i < sizeof failures / sizeof failures[0]; i++) {
        struct ag_keyring_stats st;
        ag_keyring_stats(kr, 0, &st);
        uint64_t failed = st.fetches_failed;
        char *body = strdup(failures[i].body);
        serve(failures[i].status, body);
        for (int w = 0; w < WAIT_MS && st.fetches_failed < failed + 2; w += 5) {
            sleep_ms(5);
            ag_keyring_stats(kr, 0, &st);
        }
        assert_true(st.fetches_failed >= failed + 2);
        assert_int_equal(verify(kr, ta), AG_JWT_OK);
        assert_true(ag_keyring_ready(kr));
    }
    ag_keyring_free(kr);
    free(ta);
}

static void test_no_keys_until_a_fetch_succeeds(void **state)
{
    (void)state;
    serve(503, strdup("down"));
    struct ag_issuer_spec s = spec_for(jwks_uri, NULL);
    s.refresh_interval_ms = 60000;
    s.min_refresh_interval_ms = 50;
    struct ag_keyring *kr = start(&s, 1, 5000); /* not fatal */
    assert_false(ag_keyring_ready(kr));
    char *ta = token(key_a, "a", ISS);
    assert_int_equal(verify(kr, ta), AG_JWT_NO_KEYS);
    serve(200, jwks_text(false));
    verify_until(kr, ta, AG_JWT_OK); /* a NO_KEYS answer asks for a fetch too */
    assert_true(ag_keyring_ready(kr));
    ag_keyring_free(kr);
    free(ta);
}

/* A port that accepts connections and never answers: the initial wait ends at its timeout. */
static void test_initial_timeout_and_unreachable(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(lfd, 8), 0);
    socklen_t sl = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    char silent[64], closed[64];
    snprintf(silent, sizeof silent, "http://127.0.0.1:%u/jwks", ntohs(sa.sin_port));
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in ca = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(cfd, (struct sockaddr *)&ca, sizeof ca), 0);
    sl = sizeof ca;
    getsockname(cfd, (struct sockaddr *)&ca, &sl);
    snprintf(closed, sizeof closed, "http://127.0.0.1:%u/jwks", ntohs(ca.sin_port));
    close(cfd); /* nothing listens there now */

    struct ag_issuer_spec specs[3] = {spec_for(silent, NULL), spec_for(closed, NULL),
                                      spec_for(jwks_uri, NULL)};
    specs[0].issuer = "https://silent";
    specs[1].issuer = "https://closed";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct ag_keyring *kr = start(specs, 3, 300);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long waited_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(waited_ms >= 250);
    assert_false(ag_keyring_ready(kr));
    char *ta = token(key_a, "a", ISS), *ts = token(key_a, "a", "https://silent");
    assert_int_equal(verify(kr, ta), AG_JWT_OK); /* the third issuer is served */
    assert_int_equal(verify(kr, ts), AG_JWT_NO_KEYS);
    struct ag_keyring_stats st;
    ag_keyring_stats(kr, 1, &st);
    assert_false(st.has_keys);
    assert_true(st.fetches_failed >= 1);
    ag_keyring_free(kr); /* with the silent fetch still in flight */
    close(lfd);
    free(ta);
    free(ts);
}

/* Workers verify while the background thread swaps sets as fast as it can. */
struct hammer {
    struct ag_keyring *kr;
    const char *tok;
    atomic_bool *stop;
    int bad;
    long runs;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    while (!atomic_load(h->stop)) {
        if (verify(h->kr, h->tok) != AG_JWT_OK)
            h->bad++;
        h->runs++;
    }
    return NULL;
}

static void test_concurrent_verify_during_swaps(void **state)
{
    (void)state;
    struct ag_issuer_spec s = spec_for(jwks_uri, NULL);
    s.refresh_interval_ms = 2;
    s.min_refresh_interval_ms = 1;
    struct ag_keyring *kr = start(&s, 1, 5000);
    char *ta = token(key_a, "a", ISS);
    atomic_bool stop = false;
    struct hammer h[3];
    pthread_t threads[3];
    for (int i = 0; i < 3; i++) {
        h[i] = (struct hammer){.kr = kr, .tok = ta, .stop = &stop};
        assert_int_equal(pthread_create(&threads[i], NULL, hammer_main, &h[i]), 0);
    }
    struct ag_keyring_stats st;
    ag_keyring_stats(kr, 0, &st);
    uint64_t ok0 = st.fetches_ok;
    for (int w = 0; w < WAIT_MS && st.fetches_ok < ok0 + 20; w += 5) {
        sleep_ms(5);
        ag_keyring_stats(kr, 0, &st);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 3; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(h[i].bad, 0);
        assert_true(h[i].runs > 0);
    }
    assert_true(st.fetches_ok >= ok0 + 20);
    ag_keyring_free(kr);
    free(ta);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        T(test_new_refuses_bad_specs),          T(test_file_source_and_unknown_kid),
        T(test_http_refetch_on_unknown_kid),    T(test_failed_refresh_keeps_last_good),
        T(test_no_keys_until_a_fetch_succeeds), T(test_initial_timeout_and_unreachable),
        T(test_concurrent_verify_during_swaps),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
