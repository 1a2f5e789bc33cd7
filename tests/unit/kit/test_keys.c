/* Unit tests for src/kit/keys.c: key directories, rotation, JWKS output, minting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/base64url.h"
#include "core/jwks.h"
#include "core/jwt.h"
#include "kit/keys.h"
#include "core/banned.h"

struct fixture {
    char root[64]; /* a temporary directory */
    char dir[128]; /* root/keys: the key directory under test */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->root, sizeof(f->root), "/tmp/agora-test-keys-XXXXXX");
    if (!mkdtemp(f->root)) {
        free(f);
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "%s/keys", f->root);
    *state = f;
    return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    nftw(f->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ---- helpers ---- */

static struct kit_keys *open_ok(const char *dir, const char *pass, bool create)
{
    struct kit_keys *keys = NULL;
    struct ag_err err = {0};
    int rc = kit_keys_open(dir, pass, create, &keys, &err);
    if (rc != 0)
        fail_msg("kit_keys_open(%s): %s (%s)", dir, err.msg, ag_err_name(rc));
    return keys;
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("cannot open %s", path);
    char *data = calloc(1, 65536);
    size_t n = fread(data, 1, 65535, fp);
    data[n] = '\0';
    fclose(fp);
    return data;
}

static struct ag_jwks *jwks_of_file(const char *dir)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/jwks.json", dir);
    char *text = slurp(path);
    struct ag_jwks *set = NULL;
    struct ag_err err = {0};
    int rc = ag_jwks_parse(text, strlen(text), &set, &err);
    if (rc != 0)
        fail_msg("ag_jwks_parse(%s): %s", path, err.msg);
    assert_int_equal(ag_jwks_skipped(set), 0);
    free(text);
    return set;
}

static bool jwks_has_kid(const struct ag_jwks *set, const char *kid)
{
    for (size_t i = 0; i < ag_jwks_count(set); i++) {
        if (ag_str_eq(ag_jwk_kid(ag_jwks_key(set, i)), ag_str_from_cstr(kid)))
            return true;
    }
    return false;
}

static mode_t mode_of(const char *dir, const char *name)
{
    char path[256];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (stat(path, &sb) != 0)
        fail_msg("cannot stat %s", path);
    return sb.st_mode & 07777;
}

static bool exists(const char *dir, const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static const char *const ROLES[] = {"admin", "customer"};

static void mint_ok(struct kit_keys *keys, struct ag_buf *token, char jti[40])
{
    struct kit_token_claims c = {.issuer = "https://issuer.test",
                                 .audience = "agora",
                                 .subject = "user-42",
                                 .tenant = "t1",
                                 .roles = ROLES,
                                 .role_count = 2,
                                 .ttl_s = 900};
    struct ag_err err = {0};
    int rc = kit_keys_mint(keys, &c, token, jti, &err);
    if (rc != 0)
        fail_msg("kit_keys_mint: %s", err.msg);
}

static enum ag_jwt_status verify(struct ag_str token, const struct ag_jwks *set,
                                 struct ag_jwt_claims *claims)
{
    static const char *const auds[] = {"agora"};
    struct ag_jwt_policy policy = {.issuer = "https://issuer.test",
                                   .audiences = auds,
                                   .audience_count = 1,
                                   .algorithms = AG_JWT_ES256,
                                   .clock_skew_s = 30};
    const struct ag_jwks *sets[] = {set};
    return ag_jwt_verify(token, &policy, sets, 1, (int64_t)time(NULL), claims, NULL);
}

/* The JSON header of a compact token. */
static json_t *token_header(struct ag_str token)
{
    struct ag_str head;
    ag_str_split(token, '.', &head);
    unsigned char raw[512];
    size_t len = 0;
    assert_int_equal(ag_base64url_decode(head, raw, sizeof(raw), &len), 0);
    json_t *h = json_loadb((const char *)raw, len, 0, NULL);
    assert_non_null(h);
    return h;
}

/* ---- tests ---- */

static void test_create_and_open(void **state)
{
    struct fixture *f = *state;
    struct kit_keys *keys = NULL;
    struct ag_err err = {0};
    assert_int_equal(kit_keys_open(f->dir, NULL, false, &keys, &err), AG_ENOTFOUND);
    assert_null(keys);

    keys = open_ok(f->dir, NULL, true);
    char kid[64];
    kit_keys_current_kid(keys, kid);
    assert_int_equal(strlen(kid), 22); /* 16 random bytes, base64url */
    assert_int_equal(mode_of(f->root, "keys"), 0700);
    assert_int_equal(mode_of(f->dir, "jwks.json"), 0644);
    char pem[80];
    snprintf(pem, sizeof(pem), "%s.pem", kid);
    assert_int_equal(mode_of(f->dir, pem), 0600);

    /* The state names a current and a next key, both published. */
    char path[256];
    snprintf(path, sizeof(path), "%s/state.json", f->dir);
    char *text = slurp(path);
    json_t *st = json_loads(text, 0, NULL);
    assert_non_null(st);
    assert_string_equal(json_string_value(json_object_get(st, "current")), kid);
    const char *next = json_string_value(json_object_get(st, "next"));
    assert_non_null(next);
    assert_string_not_equal(next, kid);
    assert_int_equal(json_array_size(json_object_get(st, "retired")), 0);
    struct ag_jwks *set = jwks_of_file(f->dir);
    assert_int_equal(ag_jwks_count(set), 2);
    assert_true(jwks_has_kid(set, kid));
    assert_true(jwks_has_kid(set, next));
    ag_jwks_unref(set);

    /* kit_keys_jwks gives the same set. */
    struct ag_buf b;
    ag_buf_init(&b, 65536);
    assert_int_equal(kit_keys_jwks(keys, &b), 0);
    set = NULL;
    assert_int_equal(ag_jwks_parse(b.data + b.off, b.len, &set, &err), 0);
    assert_int_equal(ag_jwks_count(set), 2);
    assert_true(jwks_has_kid(set, next));
    ag_jwks_unref(set);
    ag_buf_release(&b);

    /* Reopening (with or without create) keeps the keys. */
    struct kit_keys *again = open_ok(f->dir, NULL, true);
    char kid2[64];
    kit_keys_current_kid(again, kid2);
    assert_string_equal(kid2, kid);
    kit_keys_free(again);
    again = open_ok(f->dir, NULL, false);
    kit_keys_current_kid(again, kid2);
    assert_string_equal(kid2, kid);
    kit_keys_free(again);

    json_decref(st);
    free(text);
    kit_keys_free(keys);
}

static void test_minted_token_verifies(void **state)
{
    struct fixture *f = *state;
    struct kit_keys *keys = open_ok(f->dir, NULL, true);
    struct ag_buf token;
    ag_buf_init(&token, 8192);
    char jti[40], kid[64];
    mint_ok(keys, &token, jti);
    kit_keys_current_kid(keys, kid);

    json_t *h = token_header(ag_buf_str(&token));
    assert_string_equal(json_string_value(json_object_get(h, "alg")), "ES256");
    assert_string_equal(json_string_value(json_object_get(h, "typ")), "at+jwt");
    assert_string_equal(json_string_value(json_object_get(h, "kid")), kid);
    json_decref(h);

    struct ag_jwks *set = jwks_of_file(f->dir);
    struct ag_jwt_claims claims;
    assert_int_equal(verify(ag_buf_str(&token), set, &claims), AG_JWT_OK);
    assert_string_equal(claims.sub, "user-42");
    assert_string_equal(claims.tenant, "t1");
    assert_string_equal(claims.roles, "admin,customer");
    assert_int_equal(claims.role_count, 2);
    assert_string_equal(claims.jti, jti);
    assert_int_equal(strlen(jti), 22);
    assert_int_equal(claims.exp - claims.iat, 900);

    /* A flipped signature byte fails: the check above is not vacuous. */
    struct ag_buf bad;
    ag_buf_init(&bad, 8192);
    assert_int_equal(ag_buf_append_str(&bad, ag_buf_str(&token)), 0);
    char *last = bad.data + bad.off + bad.len - 5;
    *last = *last == 'A' ? 'B' : 'A';
    assert_int_equal(verify(ag_buf_str(&bad), set, &claims), AG_JWT_BAD_SIGNATURE);
    ag_buf_release(&bad);

    /* Two tokens never share a jti. */
    char jti2[40];
    ag_buf_clear(&token);
    mint_ok(keys, &token, jti2);
    assert_string_not_equal(jti, jti2);

    ag_jwks_unref(set);
    ag_buf_release(&token);
    kit_keys_free(keys);
}

static void test_mint_refuses_bad_claims(void **state)
{
    struct fixture *f = *state;
    struct kit_keys *keys = open_ok(f->dir, NULL, true);
    struct ag_buf token;
    ag_buf_init(&token, 8192);
    struct ag_err err = {0};
    struct kit_token_claims c = {
        .issuer = "https://issuer.test", .audience = "agora", .subject = NULL, .ttl_s = 60};
    assert_int_equal(kit_keys_mint(keys, &c, &token, NULL, &err), AG_EINVAL);
    c.subject = "u";
    c.ttl_s = 0;
    assert_int_equal(kit_keys_mint(keys, &c, &token, NULL, &err), AG_EINVAL);
    c.ttl_s = 60;
    static const char *const bad_roles[] = {"admin,root"};
    c.roles = bad_roles;
    c.role_count = 1;
    assert_int_equal(kit_keys_mint(keys, &c, &token, NULL, &err), AG_EINVAL);
    assert_int_equal(token.len, 0);
    c.role_count = 0; /* no roles and no tenant: fine */
    assert_int_equal(kit_keys_mint(keys, &c, &token, NULL, &err), 0);
    assert_true(token.len > 0);
    ag_buf_release(&token);
    kit_keys_free(keys);
}

static void test_rotate(void **state)
{
    struct fixture *f = *state;
    struct ag_err err = {0};
    char new_kid[64];
    assert_int_equal(kit_keys_rotate(f->dir, NULL, 60, new_kid, &err), AG_ENOTFOUND);

    struct kit_keys *keys = open_ok(f->dir, NULL, true);
    char a[64];
    kit_keys_current_kid(keys, a);
    struct ag_buf old_token;
    ag_buf_init(&old_token, 8192);
    mint_ok(keys, &old_token, NULL);
    kit_keys_free(keys);

    /* Rotation 1: A retired (published 1000 s more), B current, C next. */
    assert_int_equal(kit_keys_rotate(f->dir, NULL, 1000, new_kid, &err), 0);
    char b[64];
    memcpy(b, new_kid, sizeof(b));
    assert_string_not_equal(a, b);
    keys = open_ok(f->dir, NULL, false);
    char cur[64];
    kit_keys_current_kid(keys, cur);
    assert_string_equal(cur, b);
    kit_keys_free(keys);
    struct ag_jwks *set = jwks_of_file(f->dir);
    assert_int_equal(ag_jwks_count(set), 3);
    assert_true(jwks_has_kid(set, a));
    assert_true(jwks_has_kid(set, b));
    struct ag_jwt_claims claims;
    assert_int_equal(verify(ag_buf_str(&old_token), set, &claims), AG_JWT_OK);
    ag_jwks_unref(set);

    /* Rotation 2 with keep 0: B retired at once (no longer published), A still kept. */
    assert_int_equal(kit_keys_rotate(f->dir, NULL, 0, new_kid, &err), 0);
    set = jwks_of_file(f->dir);
    assert_int_equal(ag_jwks_count(set), 3);
    assert_true(jwks_has_kid(set, a));
    assert_false(jwks_has_kid(set, b));
    assert_true(jwks_has_kid(set, new_kid));
    ag_jwks_unref(set);
    char pem[80];
    snprintf(pem, sizeof(pem), "%s.pem", b);
    assert_true(exists(f->dir, pem));

    /* Rotation 3: B's time is over, so it is pruned: its file goes. */
    assert_int_equal(kit_keys_rotate(f->dir, NULL, 1000, new_kid, &err), 0);
    assert_false(exists(f->dir, pem));
    snprintf(pem, sizeof(pem), "%s.pem", a);
    assert_true(exists(f->dir, pem));
    char path[256];
    snprintf(path, sizeof(path), "%s/state.json", f->dir);
    char *text = slurp(path);
    json_t *st = json_loads(text, 0, NULL);
    json_t *retired = json_object_get(st, "retired");
    assert_int_equal(json_array_size(retired), 2); /* A and the key made current by rotation 2 */
    for (size_t i = 0; i < json_array_size(retired); i++)
        assert_string_not_equal(
            json_string_value(json_object_get(json_array_get(retired, i), "kid")), b);
    json_decref(st);
    free(text);
    ag_buf_release(&old_token);
}

static void test_passphrase(void **state)
{
    struct fixture *f = *state;
    struct kit_keys *keys = open_ok(f->dir, "correct horse", true);
    char kid[64], pem[256];
    kit_keys_current_kid(keys, kid);
    kit_keys_free(keys);
    snprintf(pem, sizeof(pem), "%s/%s.pem", f->dir, kid);
    char *text = slurp(pem);
    assert_non_null(strstr(text, "ENCRYPTED PRIVATE KEY"));
    free(text);

    struct ag_err err = {0};
    keys = NULL;
    assert_int_equal(kit_keys_open(f->dir, "wrong horse", false, &keys, &err), AG_EINVAL);
    assert_null(keys);
    assert_non_null(strstr(err.msg, "passphrase"));
    assert_int_equal(kit_keys_open(f->dir, NULL, false, &keys, &err), AG_EINVAL);
    assert_int_equal(kit_keys_rotate(f->dir, "wrong horse", 60, NULL, &err), AG_EINVAL);
    assert_int_equal(kit_keys_rotate(f->dir, "correct horse", 60, NULL, &err), 0);
    keys = open_ok(f->dir, "correct horse", false);
    kit_keys_free(keys);
}

static void test_bad_modes_refused(void **state)
{
    struct fixture *f = *state;
    struct kit_keys *keys = open_ok(f->dir, NULL, true);
    char kid[64], pem[80], path[256];
    kit_keys_current_kid(keys, kid);
    kit_keys_free(keys);
    struct ag_err err = {0};

    assert_int_equal(chmod(f->dir, 0755), 0);
    keys = NULL;
    assert_int_equal(kit_keys_open(f->dir, NULL, false, &keys, &err), AG_EINVAL);
    assert_non_null(strstr(err.msg, "0755"));
    assert_non_null(strstr(err.msg, f->dir));
    assert_int_equal(kit_keys_rotate(f->dir, NULL, 60, NULL, &err), AG_EINVAL);
    assert_int_equal(chmod(f->dir, 0700), 0);

    snprintf(pem, sizeof(pem), "%s.pem", kid);
    snprintf(path, sizeof(path), "%s/%s", f->dir, pem);
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(kit_keys_open(f->dir, NULL, false, &keys, &err), AG_EINVAL);
    assert_non_null(strstr(err.msg, pem));
    assert_non_null(strstr(err.msg, "0640"));
    assert_int_equal(chmod(path, 0600), 0);
    keys = open_ok(f->dir, NULL, false);
    kit_keys_free(keys);
}

static void test_malformed_state_refused(void **state)
{
    struct fixture *f = *state;
    struct kit_keys *keys = open_ok(f->dir, NULL, true);
    kit_keys_free(keys);
    keys = NULL;
    struct ag_err err = {0};
    static const char *const bad[] = {
        "{",
        "[]",
        "{\"current\":\"../../etc/x\",\"next\":\"abc\",\"retired\":[]}",
        "{\"current\":\"abc\",\"next\":\"abc\",\"retired\":[]}",
        "{\"current\":\"abc\",\"next\":\"def\",\"retired\":{}}",
        "{\"current\":\"abc\",\"next\":\"def\",\"retired\":[{\"kid\":\"x\"}]}",
        "{\"current\":\"abc\",\"next\":\"def\",\"retired\":[]}", /* key files missing */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_text(f->dir, "state.json", bad[i]);
        int rc = kit_keys_open(f->dir, NULL, false, &keys, &err);
        if (rc != AG_EINVAL)
            fail_msg("state %zu: expected AG_EINVAL, got %s", i, ag_err_name(rc));
        assert_null(keys);
    }
}

static void test_reload_notices_rotation(void **state)
{
    struct fixture *f = *state;
    struct kit_keys *keys = open_ok(f->dir, NULL, true);
    char before[64], now_kid[64], new_kid[64];
    kit_keys_current_kid(keys, before);
    struct ag_err err = {0};
    assert_int_equal(kit_keys_reload(keys, &err), 0); /* nothing changed */
    assert_int_equal(kit_keys_rotate(f->dir, NULL, 600, new_kid, &err), 0);

    /* Reload looks at most once a second: poll until it saw the change (or give up). */
    memcpy(now_kid, before, sizeof(now_kid));
    for (int i = 0; i < 100 && strcmp(now_kid, new_kid) != 0; i++) {
        assert_int_equal(kit_keys_reload(keys, &err), 0);
        kit_keys_current_kid(keys, now_kid);
        if (strcmp(now_kid, new_kid) != 0)
            usleep(50 * 1000);
    }
    assert_string_equal(now_kid, new_kid);

    /* Tokens now carry the new kid and verify against the rotated jwks.json. */
    struct ag_buf token;
    ag_buf_init(&token, 8192);
    mint_ok(keys, &token, NULL);
    json_t *h = token_header(ag_buf_str(&token));
    assert_string_equal(json_string_value(json_object_get(h, "kid")), new_kid);
    json_decref(h);
    struct ag_jwks *set = jwks_of_file(f->dir);
    assert_int_equal(verify(ag_buf_str(&token), set, NULL), AG_JWT_OK);
    ag_jwks_unref(set);
    ag_buf_release(&token);
    kit_keys_free(keys);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_create_and_open),
        T(test_minted_token_verifies),
        T(test_mint_refuses_bad_claims),
        T(test_rotate),
        T(test_passphrase),
        T(test_bad_modes_refused),
        T(test_malformed_state_refused),
        T(test_reload_notices_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
