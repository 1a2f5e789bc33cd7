/* Database port cases shared by test_db.c, test_migrate.c and test_db_postgres.c: one behaviour,
 * every driver. Include after cmocka.h; each case takes a struct db_env as its state. */
#ifndef TEST_DB_CASES_H
#define TEST_DB_CASES_H

#pragma GCC diagnostic ignored "-Wunused-function" /* each test file runs a subset */

#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/metrics.h"
#include "kit/db.h"
#include "kit/kit.h"

/* Where a case's database lives. */
enum db_env_kind { ENV_MEMORY, ENV_FILE, ENV_POSTGRES };
struct db_env {
    enum db_env_kind kind;
    char dir[256]; /* ENV_FILE: the temp dir removed by teardown */
    char url[1024];
};

/* Fails the test, printing both texts, unless haystack contains needle. */
#define assert_contains(haystack, needle)                                                          \
    do {                                                                                           \
        const char *h_ = (haystack), *n_ = (needle);                                               \
        if (!h_ || !strstr(h_, n_)) {                                                              \
            print_error("\"%s\" does not contain \"%s\"\n", h_ ? h_ : "(null)", n_);               \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

#define assert_not_contains(haystack, needle)                                                      \
    do {                                                                                           \
        const char *h_ = (haystack), *n_ = (needle);                                               \
        if (strstr(h_, n_)) {                                                                      \
            print_error("\"%s\" contains \"%s\"\n", h_, n_);                                       \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* Runs sql (no parameters) and asserts it succeeds. */
#define EXEC_OK(db, sql)                                                                           \
    do {                                                                                           \
        struct ag_err e_ = {0};                                                                    \
        int rc_ = kit_db_exec((db), (sql), NULL, 0, &e_);                                          \
        if (rc_ < 0)                                                                               \
            print_error("%s: %s\n", (sql), e_.msg);                                                \
        assert_true(rc_ >= 0);                                                                     \
    } while (0)

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static struct kit_db *env_open(const struct db_env *env)
{
    struct kit_db *db = NULL;
    struct ag_err err = {0};
    int rc = kit_db_open(env->url, &db, &err);
    if (rc < 0)
        print_error("kit_db_open(%s): %s\n", env->url, err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(db);
    return db;
}

/* One integer from a one-row, one-column query. */
static int64_t query_int(struct kit_db *db, const char *sql, const struct kit_db_value *params,
                         size_t count)
{
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    int rc = kit_db_query(db, sql, params, count, 0, &rows, &err);
    if (rc < 0)
        print_error("%s: %s\n", sql, err.msg);
    assert_int_equal(rc, 1);
    int64_t v = kit_db_rows_int(rows, 0, 0);
    kit_db_rows_free(rows);
    return v;
}

/* True when a table of that name exists (either driver). */
static bool table_exists(struct kit_db *db, const char *name)
{
    const char *sql = kit_db_driver(db) == KIT_DB_SQLITE
                          ? "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1"
                          : "SELECT count(*) FROM information_schema.tables "
                            "WHERE table_schema = 'public' AND table_name = $1";
    return query_int(db, sql, KIT_DB_PARAMS(KIT_DB_TEXT(name))) == 1;
}

/* Setup: a fresh database for env->kind. state holds a struct db_env (prestate). */
static int env_setup(void **state)
{
    struct db_env *env = *state;
    if (env->kind == ENV_MEMORY) {
        snprintf(env->url, sizeof env->url, "sqlite::memory:");
    } else if (env->kind == ENV_FILE) {
        snprintf(env->dir, sizeof env->dir, "/tmp/agora-test-db-XXXXXX");
        if (!mkdtemp(env->dir))
            return -1;
        /* Two levels that do not exist yet: the driver creates them. */
        snprintf(env->url, sizeof env->url, "sqlite:%s/data/sub/test.db", env->dir);
    } else {
        const char *url = getenv("AGORA_TEST_POSTGRES_URL");
        if (!url || !*url) {
            print_error("AGORA_TEST_POSTGRES_URL is not set: run this test through "
                        "tests/unit/kit/with_postgres\n");
            return -1;
        }
        snprintf(env->url, sizeof env->url, "%s", url);
        struct kit_db *db = NULL;
        struct ag_err err = {0};
        if (kit_db_open(env->url, &db, &err) < 0) {
            print_error("cannot open %s: %s\n", env->url, err.msg);
            return -1;
        }
        int rc = kit_db_exec_script(db, "DROP SCHEMA public CASCADE; CREATE SCHEMA public", &err);
        if (rc < 0)
            print_error("resetting the schema: %s\n", err.msg);
        kit_db_close(db);
        return rc < 0 ? -1 : 0;
    }
    return 0;
}

static int env_teardown(void **state)
{
    struct db_env *env = *state;
    if (env->kind == ENV_FILE && env->dir[0]) {
        nftw(env->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        env->dir[0] = '\0';
    }
    return 0;
}

static const char create_t[] = "CREATE TABLE t (id TEXT PRIMARY KEY, n BIGINT, d DOUBLE PRECISION, "
                               "s TEXT, flag SMALLINT NOT NULL DEFAULT 0 CHECK (flag IN (0, 1)))";

/* ---- the port's cases ---- */

static void case_params_every_type(void **state)
{
    struct kit_db *db = env_open(*state);
    struct ag_err err = {0};
    EXEC_OK(db, create_t);
    const char slice[] = "slice-and-more";
    assert_int_equal(
        kit_db_exec(db, "INSERT INTO t (id, n, d, s, flag) VALUES ($1, $2, $3, $4, $5)",
                    KIT_DB_PARAMS(KIT_DB_TEXT("a"), KIT_DB_INT(INT64_MAX), KIT_DB_DOUBLE(1.0 / 3.0),
                                  KIT_DB_TEXTN(slice, 5), KIT_DB_INT(1)),
                    &err),
        1);
    assert_int_equal(kit_db_exec(db, "INSERT INTO t (id, n, d, s) VALUES ($1, $2, $3, $4)",
                                 KIT_DB_PARAMS(KIT_DB_TEXT("b"), KIT_DB_INT(INT64_MIN),
                                               KIT_DB_DOUBLE(-0.1), KIT_DB_TEXT("žluťoučký 🐎")),
                                 &err),
                     1);
    struct kit_db_rows *rows = NULL;
    assert_int_equal(
        kit_db_query(db, "SELECT id, n, d, s, flag FROM t ORDER BY id", NULL, 0, 0, &rows, &err),
        2);
    assert_int_equal(kit_db_rows_columns(rows), 5);
    assert_string_equal(kit_db_rows_text(rows, 0, 0, NULL), "a");
    assert_true(kit_db_rows_int(rows, 0, 1) == INT64_MAX);
    assert_string_equal(kit_db_rows_text(rows, 0, 1, NULL), "9223372036854775807");
    assert_true(strtod(kit_db_rows_text(rows, 0, 2, NULL), NULL) == 1.0 / 3.0);
    size_t len = 0;
    assert_string_equal(kit_db_rows_text(rows, 0, 3, &len), "slice");
    assert_int_equal(len, 5);
    assert_int_equal(kit_db_rows_int(rows, 0, 4), 1);
    assert_true(kit_db_rows_int(rows, 1, 1) == INT64_MIN);
    assert_string_equal(kit_db_rows_text(rows, 1, 2, NULL), "-0.1");
    assert_string_equal(kit_db_rows_text(rows, 1, 3, NULL), "žluťoučký 🐎");
    assert_int_equal(kit_db_rows_int(rows, 1, 4), 0);
    /* text that is not an integer reads 0 */
    assert_int_equal(kit_db_rows_int(rows, 0, 3), 0);
    kit_db_rows_free(rows);
    kit_db_close(db);
}

static void case_params_by_name(void **state)
{
    struct kit_db *db = env_open(*state);
    struct ag_err err = {0};
    EXEC_OK(db, create_t);
    /* $2 before $1, and $1 twice. */
    assert_int_equal(kit_db_exec(db, "INSERT INTO t (s, id, n) VALUES ($2, $1, length($1))",
                                 KIT_DB_PARAMS(KIT_DB_TEXT("abc"), KIT_DB_TEXT("second")), &err),
                     1);
    struct kit_db_rows *rows = NULL;
    assert_int_equal(kit_db_query(db, "SELECT id, s, n FROM t WHERE id = $1 OR s = $1",
                                  KIT_DB_PARAMS(KIT_DB_TEXT("abc")), 0, &rows, &err),
                     1);
    assert_string_equal(kit_db_rows_text(rows, 0, 0, NULL), "abc");
    assert_string_equal(kit_db_rows_text(rows, 0, 1, NULL), "second");
    assert_int_equal(kit_db_rows_int(rows, 0, 2), 3);
    kit_db_rows_free(rows);

    /* A $N that was not given. */
    rows = (struct kit_db_rows *)&err; /* must be reset to NULL on failure */
    assert_int_equal(kit_db_query(db, "SELECT id FROM t WHERE id = $1 AND s = $2",
                                  KIT_DB_PARAMS(KIT_DB_TEXT("abc")), 0, &rows, &err),
                     AG_EINVAL);
    assert_null(rows);
    assert_contains(err.msg, "$2");
    /* A parameter given that the text never names. */
    assert_int_equal(
        kit_db_exec(db, "UPDATE t SET n = $1", KIT_DB_PARAMS(KIT_DB_INT(1), KIT_DB_INT(2)), &err),
        AG_EINVAL);
    assert_contains(err.msg, "$2");
    /* No parameters given at all. */
    assert_int_equal(kit_db_exec(db, "UPDATE t SET n = $1", NULL, 0, &err), AG_EINVAL);
    assert_contains(err.msg, "$1");
    /* A text parameter with a NUL byte cannot be stored faithfully on PostgreSQL. */
    assert_int_equal(
        kit_db_exec(db, "UPDATE t SET s = $1", KIT_DB_PARAMS(KIT_DB_TEXTN("a\0b", 3)), &err),
        AG_EINVAL);
    assert_contains(err.msg, "NUL");
    /* Nothing changed through the refusals. */
    assert_int_equal(query_int(db, "SELECT n FROM t", NULL, 0), 3);
    kit_db_close(db);
}

static void case_nulls(void **state)
{
    struct kit_db *db = env_open(*state);
    struct ag_err err = {0};
    EXEC_OK(db, create_t);
    assert_int_equal(
        kit_db_exec(db, "INSERT INTO t (id, n, d, s) VALUES ($1, $2, $3, $4)",
                    KIT_DB_PARAMS(KIT_DB_TEXT("x"), KIT_DB_NULL, KIT_DB_NULL, KIT_DB_TEXT(NULL)),
                    &err),
        1);
    struct kit_db_rows *rows = NULL;
    assert_int_equal(kit_db_query(db, "SELECT n, d, s, id FROM t", NULL, 0, 0, &rows, &err), 1);
    for (size_t c = 0; c < 3; c++) {
        size_t len = 99;
        assert_true(kit_db_rows_null(rows, 0, c));
        assert_string_equal(kit_db_rows_text(rows, 0, c, &len), "");
        assert_int_equal(len, 0);
        assert_int_equal(kit_db_rows_int(rows, 0, c), 0);
    }
    assert_false(kit_db_rows_null(rows, 0, 3));
    kit_db_rows_free(rows);
    assert_int_equal(query_int(db, "SELECT count(*) FROM t WHERE s IS NULL AND n IS NULL", NULL, 0),
                     1);
    /* Empty text is not NULL. */
    assert_int_equal(kit_db_exec(db, "UPDATE t SET s = $1", KIT_DB_PARAMS(KIT_DB_TEXT("")), &err),
                     1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM t WHERE s IS NULL", NULL, 0), 0);
    kit_db_close(db);
}

static void case_conflicts(void **state)
{
    struct kit_db *db = env_open(*state);
    struct ag_err err = {0};
    EXEC_OK(db, create_t);
    EXEC_OK(db, "CREATE TABLE child (id TEXT PRIMARY KEY, parent TEXT NOT NULL REFERENCES t (id), "
                "email TEXT UNIQUE)");
    const char *ins = "INSERT INTO t (id, s) VALUES ($1, $2)";
    assert_int_equal(
        kit_db_exec(db, ins, KIT_DB_PARAMS(KIT_DB_TEXT("u1"), KIT_DB_TEXT("one")), &err), 1);
    /* primary key */
    assert_int_equal(
        kit_db_exec(db, ins, KIT_DB_PARAMS(KIT_DB_TEXT("u1"), KIT_DB_TEXT("two")), &err),
        AG_ECONFLICT);
    assert_true(strlen(err.msg) > 0);
    /* unique */
    const char *child = "INSERT INTO child (id, parent, email) VALUES ($1, $2, $3)";
    assert_int_equal(
        kit_db_exec(db, child,
                    KIT_DB_PARAMS(KIT_DB_TEXT("c1"), KIT_DB_TEXT("u1"), KIT_DB_TEXT("a@x.io")),
                    &err),
        1);
    assert_int_equal(
        kit_db_exec(db, child,
                    KIT_DB_PARAMS(KIT_DB_TEXT("c2"), KIT_DB_TEXT("u1"), KIT_DB_TEXT("a@x.io")),
                    &err),
        AG_ECONFLICT);
    assert_contains(err.msg, kit_db_driver(db) == KIT_DB_SQLITE ? "UNIQUE" : "unique");
    /* foreign key (foreign_keys=ON on SQLite) */
    assert_int_equal(
        kit_db_exec(db, child,
                    KIT_DB_PARAMS(KIT_DB_TEXT("c3"), KIT_DB_TEXT("nobody"), KIT_DB_TEXT("b@x.io")),
                    &err),
        AG_ECONFLICT);
    /* check and not null */
    assert_int_equal(kit_db_exec(db, "UPDATE t SET flag = $1", KIT_DB_PARAMS(KIT_DB_INT(2)), &err),
                     AG_ECONFLICT);
    assert_int_equal(kit_db_exec(db, "INSERT INTO child (id, parent) VALUES ($1, $2)",
                                 KIT_DB_PARAMS(KIT_DB_TEXT("c4"), KIT_DB_NULL), &err),
                     AG_ECONFLICT);
    assert_int_equal(query_int(db, "SELECT count(*) FROM child", NULL, 0), 1);
    /* a plain SQL error is AG_EINVAL with the driver's words */
    assert_int_equal(
        kit_db_exec(db, "INSERT INTO nowhere VALUES ($1)", KIT_DB_PARAMS(KIT_DB_INT(1)), &err),
        AG_EINVAL);
    assert_contains(err.msg, "nowhere");
    assert_int_equal(kit_db_exec(db, "SELEKT 1", NULL, 0, &err), AG_EINVAL);
    assert_contains(err.msg, kit_db_driver(db) == KIT_DB_SQLITE ? "sqlite" : "postgres");
    /* one statement per call */
    assert_int_equal(kit_db_exec(db, "DELETE FROM child; DELETE FROM t", NULL, 0, &err), AG_EINVAL);
    assert_int_equal(query_int(db, "SELECT count(*) FROM t", NULL, 0), 1);
    kit_db_close(db);
}

static void case_transactions(void **state)
{
    struct kit_db *db = env_open(*state);
    struct ag_err err = {0};
    EXEC_OK(db, create_t);
    assert_false(kit_db_in_transaction(db));
    assert_int_equal(kit_db_rollback(db), 0); /* harmless without a transaction */
    assert_int_equal(kit_db_commit(db, &err), AG_EINVAL);

    assert_int_equal(kit_db_begin(db, &err), 0);
    assert_true(kit_db_in_transaction(db));
    assert_int_equal(kit_db_begin(db, &err), AG_EINVAL); /* no nesting */
    assert_contains(err.msg, "already");
    assert_true(kit_db_in_transaction(db));
    assert_int_equal(
        kit_db_exec(db, "INSERT INTO t (id) VALUES ($1)", KIT_DB_PARAMS(KIT_DB_TEXT("r1")), &err),
        1);
    assert_int_equal(
        kit_db_exec(db, "INSERT INTO t (id) VALUES ($1)", KIT_DB_PARAMS(KIT_DB_TEXT("r2")), &err),
        1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM t", NULL, 0), 2);
    assert_int_equal(kit_db_rollback(db), 0);
    assert_false(kit_db_in_transaction(db));
    assert_int_equal(query_int(db, "SELECT count(*) FROM t", NULL, 0), 0);

    /* commit keeps */
    assert_int_equal(kit_db_begin(db, &err), 0);
    assert_int_equal(
        kit_db_exec(db, "INSERT INTO t (id) VALUES ($1)", KIT_DB_PARAMS(KIT_DB_TEXT("k1")), &err),
        1);
    assert_int_equal(kit_db_commit(db, &err), 0);
    assert_false(kit_db_in_transaction(db));
    assert_int_equal(query_int(db, "SELECT count(*) FROM t", NULL, 0), 1);

    /* a failed statement inside: the caller rolls back, nothing of it stays */
    assert_int_equal(kit_db_begin(db, &err), 0);
    assert_int_equal(
        kit_db_exec(db, "INSERT INTO t (id) VALUES ($1)", KIT_DB_PARAMS(KIT_DB_TEXT("k2")), &err),
        1);
    assert_int_equal(
        kit_db_exec(db, "INSERT INTO t (id) VALUES ($1)", KIT_DB_PARAMS(KIT_DB_TEXT("k1")), &err),
        AG_ECONFLICT);
    assert_true(kit_db_in_transaction(db));
    assert_int_equal(kit_db_rollback(db), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM t", NULL, 0), 1);

    /* close rolls back an open transaction */
    assert_int_equal(kit_db_begin(db, &err), 0);
    assert_int_equal(
        kit_db_exec(db, "INSERT INTO t (id) VALUES ($1)", KIT_DB_PARAMS(KIT_DB_TEXT("k3")), &err),
        1);
    kit_db_close(db);
    if (((struct db_env *)*state)->kind != ENV_MEMORY) {
        db = env_open(*state);
        assert_int_equal(query_int(db, "SELECT count(*) FROM t", NULL, 0), 1);
        kit_db_close(db);
    }
}

static void case_rows_api(void **state)
{
    struct kit_db *db = env_open(*state);
    struct ag_err err = {0};
    EXEC_OK(db, create_t);
    for (int i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof id, "id%d", i);
        assert_int_equal(
            kit_db_exec(db, "INSERT INTO t (id, n) VALUES ($1, $2)",
                        KIT_DB_PARAMS(KIT_DB_TEXTN(id, strlen(id)), KIT_DB_INT(i * 10)), &err),
            1);
    }
    struct kit_db_rows *rows = NULL;
    assert_int_equal(
        kit_db_query(db, "SELECT id AS ident, n AS num FROM t ORDER BY n", NULL, 0, 0, &rows, &err),
        5);
    assert_int_equal(kit_db_rows_count(rows), 5);
    assert_int_equal(kit_db_rows_columns(rows), 2);
    assert_string_equal(kit_db_rows_name(rows, 0), "ident");
    assert_string_equal(kit_db_rows_name(rows, 1), "num");
    assert_string_equal(kit_db_rows_name(rows, 2), ""); /* out of range */
    assert_string_equal(kit_db_rows_text(rows, 4, 0, NULL), "id4");
    assert_int_equal(kit_db_rows_int(rows, 4, 1), 40);
    assert_string_equal(kit_db_rows_text(rows, 4, 1, NULL), "40");
    assert_true(kit_db_rows_null(rows, 5, 0)); /* past the last row */
    assert_string_equal(kit_db_rows_text(rows, 5, 0, NULL), "");
    assert_int_equal(kit_db_rows_int(rows, 0, 9), 0);
    kit_db_rows_free(rows);

    /* zero rows still gives rows to free, with the columns */
    assert_int_equal(kit_db_query(db, "SELECT id, n FROM t WHERE n > $1",
                                  KIT_DB_PARAMS(KIT_DB_INT(1000)), 0, &rows, &err),
                     0);
    assert_non_null(rows);
    assert_int_equal(kit_db_rows_count(rows), 0);
    assert_int_equal(kit_db_rows_columns(rows), 2);
    assert_string_equal(kit_db_rows_name(rows, 1), "n");
    kit_db_rows_free(rows);
    kit_db_rows_free(NULL);

    /* max_rows */
    rows = NULL;
    assert_int_equal(kit_db_query(db, "SELECT id FROM t", NULL, 0, 4, &rows, &err), AG_ERANGE);
    assert_null(rows);
    assert_contains(err.msg, "rows");
    assert_int_equal(kit_db_query(db, "SELECT id FROM t", NULL, 0, 5, &rows, &err), 5);
    kit_db_rows_free(rows);

    /* exec counts changed rows; reads change none */
    assert_int_equal(kit_db_exec(db, "UPDATE t SET s = $1 WHERE n >= $2",
                                 KIT_DB_PARAMS(KIT_DB_TEXT("big"), KIT_DB_INT(20)), &err),
                     3);
    assert_int_equal(kit_db_exec(db, "SELECT id FROM t", NULL, 0, &err), 0);
    assert_int_equal(kit_db_exec(db, "CREATE TABLE other (x BIGINT)", NULL, 0, &err), 0);
    assert_int_equal(kit_db_exec(db, "DELETE FROM t WHERE s IS NULL", NULL, 0, &err), 2);
    /* RETURNING, through query */
    assert_int_equal(kit_db_query(db, "INSERT INTO t (id, n) VALUES ($1, $2) RETURNING id, n",
                                  KIT_DB_PARAMS(KIT_DB_TEXT("ret"), KIT_DB_INT(7)), 0, &rows, &err),
                     1);
    assert_string_equal(kit_db_rows_text(rows, 0, 0, NULL), "ret");
    assert_int_equal(kit_db_rows_int(rows, 0, 1), 7);
    kit_db_rows_free(rows);
    /* ON CONFLICT */
    assert_int_equal(kit_db_exec(db,
                                 "INSERT INTO t (id, n) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE "
                                 "SET n = excluded.n",
                                 KIT_DB_PARAMS(KIT_DB_TEXT("ret"), KIT_DB_INT(8)), &err),
                     1);
    assert_int_equal(
        query_int(db, "SELECT n FROM t WHERE id = $1", KIT_DB_PARAMS(KIT_DB_TEXT("ret"))), 8);
    assert_true(kit_db_ping(db));
    kit_db_close(db);
}

static void case_metacharacters(void **state)
{
    struct kit_db *db = env_open(*state);
    struct ag_err err = {0};
    EXEC_OK(db, create_t);
    const char *evil[] = {"'; DROP TABLE t; --", "\"); DELETE FROM t; --", "$1", "?", "%s%n",
                          "\\' OR '1'='1",       "x'||(SELECT 1)||'"};
    for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
        char id[8];
        snprintf(id, sizeof id, "e%zu", i);
        assert_int_equal(
            kit_db_exec(db, "INSERT INTO t (id, s) VALUES ($1, $2)",
                        KIT_DB_PARAMS(KIT_DB_TEXTN(id, strlen(id)), KIT_DB_TEXT(evil[i])), &err),
            1);
    }
    assert_true(table_exists(db, "t"));
    for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
        struct kit_db_rows *rows = NULL;
        assert_int_equal(kit_db_query(db, "SELECT s FROM t WHERE s = $1",
                                      KIT_DB_PARAMS(KIT_DB_TEXT(evil[i])), 0, &rows, &err),
                         1);
        assert_string_equal(kit_db_rows_text(rows, 0, 0, NULL), evil[i]);
        kit_db_rows_free(rows);
    }
    assert_int_equal(query_int(db, "SELECT count(*) FROM t", NULL, 0), 7);
    kit_db_close(db);
}

/* More distinct statements than the cache holds, each re-run, some from copied buffers. */
static void case_statement_cache(void **state)
{
    struct kit_db *db = env_open(*state);
    struct ag_err err = {0};
    EXEC_OK(db, create_t);
    assert_int_equal(kit_db_exec(db, "INSERT INTO t (id, n) VALUES ($1, $2)",
                                 KIT_DB_PARAMS(KIT_DB_TEXT("c"), KIT_DB_INT(1000)), &err),
                     1);
    for (int round = 0; round < 3; round++) {
        for (int k = 0; k < 150; k++) {
            char sql[96];
            snprintf(sql, sizeof sql, "SELECT n + %d FROM t WHERE id = $1", k);
            assert_int_equal(query_int(db, sql, KIT_DB_PARAMS(KIT_DB_TEXT("c"))), 1000 + k);
        }
    }
    /* The same buffer holding a different text is a different statement. */
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT n FROM t WHERE id = $1");
    assert_int_equal(query_int(db, sql, KIT_DB_PARAMS(KIT_DB_TEXT("c"))), 1000);
    snprintf(sql, sizeof sql, "SELECT n * 2 FROM t WHERE id = $1");
    assert_int_equal(query_int(db, sql, KIT_DB_PARAMS(KIT_DB_TEXT("c"))), 2000);
    kit_db_close(db);
}

static void case_metrics(void **state)
{
    struct kit_db *db = env_open(*state);
    struct ag_err err = {0};
    assert_int_equal(kit_db_begin(db, &err), 0);
    EXEC_OK(db, "CREATE TABLE m (x BIGINT)");
    assert_true(kit_db_ping(db));
    assert_int_equal(kit_db_commit(db, &err), 0);
    struct ag_buf b;
    ag_buf_init(&b, 1 << 22);
    assert_int_equal(ag_metrics_render(ag_metrics_default(), &b), 0);
    assert_int_equal(ag_buf_append(&b, "", 1), 0);
    const char *text = ag_buf_str(&b).p;
    const char *driver = kit_db_driver(db) == KIT_DB_SQLITE ? "sqlite" : "postgres";
    const char *kinds[] = {"exec", "query", "begin", "commit"};
    for (size_t i = 0; i < 4; i++) {
        char want[128];
        snprintf(want, sizeof want, "kit_db_query_seconds_count{driver=\"%s\",kind=\"%s\"} ",
                 driver, kinds[i]);
        assert_contains(text, want);
        /* and it counted something */
        const char *at = strstr(text, want) + strlen(want);
        assert_true(strtoull(at, NULL, 10) >= 1);
    }
    ag_buf_release(&b);
    kit_db_close(db);
}

/* Two connections to one database: one writes in a transaction while the other reads. */
static void case_two_connections(void **state)
{
    struct db_env *env = *state;
    struct kit_db *writer = env_open(env), *reader = NULL;
    struct ag_err err = {0};
    EXEC_OK(writer, create_t);
    EXEC_OK(writer, "INSERT INTO t (id, n) VALUES ('base', 1)");
    reader = env_open(env);
    assert_int_equal(kit_db_begin(writer, &err), 0);
    assert_int_equal(kit_db_exec(writer, "INSERT INTO t (id, n) VALUES ($1, $2)",
                                 KIT_DB_PARAMS(KIT_DB_TEXT("new"), KIT_DB_INT(2)), &err),
                     1);
    /* The reader is not blocked and does not see the uncommitted row. */
    assert_int_equal(query_int(reader, "SELECT count(*) FROM t", NULL, 0), 1);
    assert_int_equal(query_int(writer, "SELECT count(*) FROM t", NULL, 0), 2);
    if (env->kind == ENV_FILE) {
        /* A second writer waits for the busy timeout, then gives up: AG_EUNAVAIL. */
        assert_int_equal(kit_db_begin(reader, &err), AG_EUNAVAIL);
        assert_contains(err.msg, "locked");
        assert_false(kit_db_in_transaction(reader));
    }
    assert_int_equal(kit_db_commit(writer, &err), 0);
    assert_int_equal(query_int(reader, "SELECT count(*) FROM t", NULL, 0), 2);
    /* and now the reader may write */
    assert_int_equal(kit_db_begin(reader, &err), 0);
    assert_int_equal(kit_db_exec(reader, "DELETE FROM t WHERE id = $1",
                                 KIT_DB_PARAMS(KIT_DB_TEXT("base")), &err),
                     1);
    assert_int_equal(kit_db_commit(reader, &err), 0);
    assert_int_equal(query_int(writer, "SELECT count(*) FROM t", NULL, 0), 1);
    kit_db_close(reader);
    kit_db_close(writer);
}

/* ---- migrations ---- */

static const struct kit_migration three[] = {
    {1, "001_users", "CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE)", NULL,
     NULL},
    {2, "002_seed",
     "INSERT INTO users (id, email) VALUES ('u1', 'a@x.io');\n"
     "INSERT INTO users (id, email) VALUES ('u2', 'b@x.io');\n",
     NULL, NULL},
    {3, "003_roles",
     "CREATE TABLE roles (name TEXT PRIMARY KEY); INSERT INTO roles VALUES ('admin')", NULL, NULL},
};

static void case_migrate_in_order(void **state)
{
    struct kit_db *db = env_open(*state);
    struct ag_err err = {0};
    assert_false(kit_db_migrated(db, three, 3));
    int rc = kit_db_migrate(db, three, 3, &err);
    if (rc < 0)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, 3);
    assert_false(kit_db_in_transaction(db));
    assert_true(kit_db_migrated(db, three, 3));
    assert_int_equal(query_int(db, "SELECT count(*) FROM users", NULL, 0), 2);
    struct kit_db_rows *rows = NULL;
    assert_int_equal(kit_db_query(db,
                                  "SELECT version, name, applied_at FROM kit_migrations ORDER "
                                  "BY version",
                                  NULL, 0, 0, &rows, &err),
                     3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(kit_db_rows_int(rows, i, 0), three[i].version);
        assert_string_equal(kit_db_rows_text(rows, i, 1, NULL), three[i].name);
        size_t len = 0;
        const char *at = kit_db_rows_text(rows, i, 2, &len);
        assert_int_equal(len, 24); /* 2026-01-02T03:04:05.678Z */
        assert_int_equal(at[len - 1], 'Z');
    }
    kit_db_rows_free(rows);
    /* again: nothing to do */
    assert_int_equal(kit_db_migrate(db, three, 3, &err), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM users", NULL, 0), 2);
    /* a prefix is still "migrated"? no: the DB knows 3, the binary only 2 → refused */
    assert_int_equal(kit_db_migrate(db, three, 2, &err), AG_EINVAL);
    assert_contains(err.msg, "version 3");
    assert_false(kit_db_in_transaction(db));
    /* nothing to apply at all */
    assert_int_equal(kit_db_migrate(db, NULL, 0, &err), AG_EINVAL); /* records 1..3 unknown */
    kit_db_close(db);
}

static void case_migrate_one_by_one(void **state)
{
    struct kit_db *db = env_open(*state);
    struct ag_err err = {0};
    assert_int_equal(kit_db_migrate(db, three, 1, &err), 1);
    assert_true(kit_db_migrated(db, three, 1));
    assert_false(kit_db_migrated(db, three, 3));
    assert_int_equal(kit_db_migrate(db, three, 3, &err), 2);
    assert_true(kit_db_migrated(db, three, 3));
    kit_db_close(db);
}

static void case_migrate_failure_rolls_back(void **state)
{
    struct kit_db *db = env_open(*state);
    struct ag_err err = {0};
    struct kit_migration bad[3] = {
        three[0],
        three[1],
        {3, "003_broken", "CREATE TABLE roles (name TEXT); SELEKT 1", NULL, NULL}};
    assert_int_equal(kit_db_migrate(db, bad, 3, &err), AG_EINVAL);
    assert_contains(err.msg, "003_broken");
    assert_false(kit_db_in_transaction(db));
    /* not even the first two, nor the bookkeeping table */
    assert_false(table_exists(db, "users"));
    assert_false(table_exists(db, "roles"));
    assert_false(table_exists(db, "kit_migrations"));
    assert_false(kit_db_migrated(db, bad, 1));

    /* With 1 and 2 applied earlier, a failing 3 leaves them as they were. */
    assert_int_equal(kit_db_migrate(db, bad, 2, &err), 2);
    assert_int_equal(kit_db_migrate(db, bad, 3, &err), AG_EINVAL);
    assert_true(kit_db_migrated(db, bad, 2));
    assert_false(kit_db_migrated(db, bad, 3));
    assert_false(table_exists(db, "roles"));
    assert_int_equal(query_int(db, "SELECT count(*) FROM kit_migrations", NULL, 0), 2);
    /* A constraint failing inside a migration is a conflict, and rolls back too. */
    struct kit_migration dup[3] = {
        three[0],
        three[1],
        {3, "003_dup", "INSERT INTO users VALUES ('u9', 'a@x.io')", NULL, NULL}};
    assert_int_equal(kit_db_migrate(db, dup, 3, &err), AG_ECONFLICT);
    assert_contains(err.msg, "003_dup");
    assert_int_equal(query_int(db, "SELECT count(*) FROM users", NULL, 0), 2);
    kit_db_close(db);
}

static void case_migrate_refusals(void **state)
{
    struct kit_db *db = env_open(*state);
    struct ag_err err = {0};
    struct kit_migration same[2] = {three[0], {1, "001_again", "SELECT 1", NULL, NULL}};
    assert_int_equal(kit_db_migrate(db, same, 2, &err), AG_EINVAL);
    assert_contains(err.msg, "001_again");
    struct kit_migration down[2] = {{2, "002_b", "SELECT 1", NULL, NULL},
                                    {1, "001_a", "SELECT 1", NULL, NULL}};
    assert_int_equal(kit_db_migrate(db, down, 2, &err), AG_EINVAL);
    assert_contains(err.msg, "strictly");
    struct kit_migration zero[1] = {{0, "000_zero", "SELECT 1", NULL, NULL}};
    assert_int_equal(kit_db_migrate(db, zero, 1, &err), AG_EINVAL);
    struct kit_migration empty[1] = {{1, "001_none", NULL, NULL, NULL}};
    assert_int_equal(kit_db_migrate(db, empty, 1, &err), AG_EINVAL);
    assert_contains(err.msg, "001_none");
    /* refusals touch nothing */
    assert_false(table_exists(db, "kit_migrations"));

    /* A database recording a version this binary does not know (a newer binary ran). */
    assert_int_equal(kit_db_migrate(db, three, 3, &err), 3);
    struct kit_migration gap[2] = {three[0], three[2]}; /* knows 1 and 3, not 2 */
    assert_int_equal(kit_db_migrate(db, gap, 2, &err), AG_EINVAL);
    assert_contains(err.msg, "version 2");
    /* inside the caller's transaction: refused, the transaction left alone */
    assert_int_equal(kit_db_begin(db, &err), 0);
    assert_int_equal(kit_db_migrate(db, three, 3, &err), AG_EINVAL);
    assert_true(kit_db_in_transaction(db));
    assert_int_equal(kit_db_rollback(db), 0);
    kit_db_close(db);
}

static void case_migrate_driver_text(void **state)
{
    struct kit_db *db = env_open(*state);
    struct ag_err err = {0};
    const struct kit_migration m[2] = {
        {1, "001_pick", "CREATE TABLE generic (x BIGINT)", "CREATE TABLE lite (x BIGINT)",
         "CREATE TABLE pg (x BIGINT)"},
        {2, "002_only_own", NULL, "CREATE TABLE lite2 (x BIGINT)", "CREATE TABLE pg2 (x BIGINT)"},
    };
    assert_int_equal(kit_db_migrate(db, m, 2, &err), 2);
    bool lite = kit_db_driver(db) == KIT_DB_SQLITE;
    assert_false(table_exists(db, "generic"));
    assert_true(table_exists(db, lite ? "lite" : "pg"));
    assert_false(table_exists(db, lite ? "pg" : "lite"));
    assert_true(table_exists(db, lite ? "lite2" : "pg2"));
    /* one driver's text missing, no common text: refused for that driver only */
    const struct kit_migration other[1] = {
        {3, "003_other", NULL, lite ? NULL : "SELECT 1", lite ? "SELECT 1" : NULL}};
    struct kit_migration all[3] = {m[0], m[1], other[0]};
    assert_int_equal(kit_db_migrate(db, all, 3, &err), AG_EINVAL);
    assert_contains(err.msg, "003_other");
    kit_db_close(db);
}

/* Concurrent starts: every thread migrates the same file or database at once. */
struct migrate_thread {
    const struct db_env *env;
    int rc;
    char msg[256];
};

static void *migrate_thread_run(void *arg)
{
    struct migrate_thread *t = arg;
    struct kit_db *db = NULL;
    struct ag_err err = {0};
    t->rc = kit_db_open(t->env->url, &db, &err);
    if (t->rc == 0)
        t->rc = kit_db_migrate(db, three, 3, &err);
    memcpy(t->msg, err.msg, sizeof t->msg);
    kit_db_close(db);
    return NULL;
}

static void case_migrate_concurrent(void **state)
{
    struct migrate_thread t[4];
    pthread_t th[4];
    for (size_t i = 0; i < 4; i++) {
        t[i] = (struct migrate_thread){.env = *state};
        assert_int_equal(pthread_create(&th[i], NULL, migrate_thread_run, &t[i]), 0);
    }
    int total = 0;
    for (size_t i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        if (t[i].rc < 0)
            print_error("thread %zu: %s\n", i, t[i].msg);
        assert_true(t[i].rc >= 0);
        total += t[i].rc;
    }
    assert_int_equal(total, 3); /* applied exactly once */
    struct kit_db *db = env_open(*state);
    assert_int_equal(query_int(db, "SELECT count(*) FROM users", NULL, 0), 2);
    kit_db_close(db);
}

#endif
