/* Unit tests for src/kit/db.c and the SQLite driver: every case on :memory: and on a WAL file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

#include "db_cases.h"

static struct db_env memory_env = {.kind = ENV_MEMORY};
static struct db_env file_env = {.kind = ENV_FILE};

/* The file database is in WAL mode with the platform's PRAGMAs, under created directories. */
static void test_file_pragmas(void **state)
{
    struct db_env *env = *state;
    struct kit_db *db = env_open(env);
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    assert_int_equal(kit_db_query(db, "PRAGMA journal_mode", NULL, 0, 0, &rows, &err), 1);
    assert_string_equal(kit_db_rows_text(rows, 0, 0, NULL), "wal");
    kit_db_rows_free(rows);
    assert_int_equal(query_int(db, "PRAGMA synchronous", NULL, 0), 2); /* FULL */
    assert_int_equal(query_int(db, "PRAGMA foreign_keys", NULL, 0), 1);
    assert_int_equal(query_int(db, "PRAGMA busy_timeout", NULL, 0), 5000);
    assert_int_equal(kit_db_driver(db), KIT_DB_SQLITE);
    assert_string_equal(kit_db_url_redacted(db), env->url);
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/data/sub/test.db", env->dir);
    assert_int_equal(stat(path, &st), 0);
    kit_db_close(db);
}

static void test_memory_pragmas(void **state)
{
    struct kit_db *db = env_open(*state);
    assert_int_equal(query_int(db, "PRAGMA foreign_keys", NULL, 0), 1);
    assert_int_equal(query_int(db, "PRAGMA busy_timeout", NULL, 0), 5000);
    kit_db_close(db);
    /* two in-memory connections are two databases */
    struct kit_db *a = env_open(*state), *b = env_open(*state);
    EXEC_OK(a, "CREATE TABLE only_a (x BIGINT)");
    assert_true(table_exists(a, "only_a"));
    assert_false(table_exists(b, "only_a"));
    kit_db_close(a);
    kit_db_close(b);
}

static void test_open_refusals(void **state)
{
    (void)state;
    struct kit_db *db = (struct kit_db *)&db;
    struct ag_err err = {0};
    assert_int_equal(kit_db_open("mysql://u:p@h/db", &db, &err), AG_EINVAL);
    assert_null(db);
    assert_contains(err.msg, "mysql");
    assert_not_contains(err.msg, ":p@");
    assert_int_equal(kit_db_open("", &db, &err), AG_EINVAL);
    assert_int_equal(kit_db_open(NULL, &db, &err), AG_EINVAL);
    assert_int_equal(kit_db_open("sqlite:", &db, &err), AG_EINVAL);
    assert_int_equal(kit_db_open("/var/data/x.db", &db, &err), AG_EINVAL);
    /* A directory that cannot be created. */
    assert_int_equal(kit_db_open("sqlite:/proc/agora-none/x.db", &db, &err), AG_EUNAVAIL);
    assert_null(db);
    assert_contains(err.msg, "/proc/agora-none");
    /* A file that is a directory. */
    assert_int_equal(kit_db_open("sqlite:/tmp", &db, &err), AG_EUNAVAIL);
    /* A server that is not there; the password never reaches err. */
    assert_int_equal(kit_db_open("postgres://agora:s3cr3t-pw@127.0.0.1:1/x", &db, &err),
                     AG_EUNAVAIL);
    assert_null(db);
    assert_contains(err.msg, "postgres");
    assert_not_contains(err.msg, "s3cr3t-pw");
    assert_int_equal(kit_db_open("postgresql://127.0.0.1:1/x?password=s3cr3t-pw&user=a", &db, &err),
                     AG_EUNAVAIL);
    assert_not_contains(err.msg, "s3cr3t-pw");
    /* A URL libpq cannot parse: AG_EINVAL, still without the password. */
    assert_int_equal(kit_db_open("postgres://agora:s3cr3t-pw@127.0.0.1:1/x?bogus=%zz", &db, &err),
                     AG_EINVAL);
    assert_not_contains(err.msg, "s3cr3t-pw");
    assert_int_equal(kit_db_open("postgres://agora:s3cr3t-pw@127.0.0.1:notaport/x", &db, &err),
                     AG_EINVAL);
    assert_not_contains(err.msg, "s3cr3t-pw");
    assert_int_equal(kit_db_open("postgres://agora:s3%zzt-pw@127.0.0.1:5432/x", &db, &err),
                     AG_EINVAL);
    assert_not_contains(err.msg, "s3%zzt-pw");
    assert_int_equal(kit_db_open("postgres://[::1]:99999/x", &db, &err), AG_EINVAL);
    kit_db_close(NULL);
}

#define BOTH(fn)                                                                                   \
    cmocka_unit_test_prestate_setup_teardown(fn, env_setup, env_teardown, &memory_env),            \
        cmocka_unit_test_prestate_setup_teardown(fn, env_setup, env_teardown, &file_env)
#define FILE_ONLY(fn)                                                                              \
    cmocka_unit_test_prestate_setup_teardown(fn, env_setup, env_teardown, &file_env)

int main(void)
{
    const struct CMUnitTest tests[] = {
        FILE_ONLY(test_file_pragmas),
        cmocka_unit_test_prestate_setup_teardown(test_memory_pragmas, env_setup, env_teardown,
                                                 &memory_env),
        cmocka_unit_test(test_open_refusals),
        BOTH(case_params_every_type),
        BOTH(case_params_by_name),
        BOTH(case_nulls),
        BOTH(case_conflicts),
        BOTH(case_transactions),
        BOTH(case_rows_api),
        BOTH(case_metacharacters),
        BOTH(case_statement_cache),
        BOTH(case_metrics),
        FILE_ONLY(case_two_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
