/* Unit tests for src/kit/db_postgres.c against a real server: run through ./with_postgres, which
 * sets AGORA_TEST_POSTGRES_URL (without it every test fails). The SQLite cases, plus what only
 * PostgreSQL has: booleans, lost connections, lock errors, advisory-locked migrations. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "db_cases.h"

static struct db_env pg_env = {.kind = ENV_POSTGRES};

static void test_booleans_and_types(void **state)
{
    struct kit_db *db = env_open(*state);
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    assert_int_equal(kit_db_driver(db), KIT_DB_POSTGRES);
    assert_int_equal(kit_db_query(db,
                                  "SELECT true AS yes, false AS no, NULL::boolean AS unknown, "
                                  "$1::bigint + 1 AS big, $2::double precision AS d",
                                  KIT_DB_PARAMS(KIT_DB_INT(41), KIT_DB_DOUBLE(0.1)), 0, &rows,
                                  &err),
                     1);
    assert_int_equal(kit_db_rows_int(rows, 0, 0), 1);
    assert_string_equal(kit_db_rows_text(rows, 0, 0, NULL), "t");
    assert_int_equal(kit_db_rows_int(rows, 0, 1), 0);
    assert_true(kit_db_rows_null(rows, 0, 2));
    assert_int_equal(kit_db_rows_int(rows, 0, 2), 0);
    assert_int_equal(kit_db_rows_int(rows, 0, 3), 42);
    assert_string_equal(kit_db_rows_text(rows, 0, 4, NULL), "0.1");
    assert_string_equal(kit_db_rows_name(rows, 3), "big");
    kit_db_rows_free(rows);
    kit_db_close(db);
}

/* The URL with a password after the user: trust authentication ignores it. */
static void url_with_password(const struct db_env *env, char *out, size_t size)
{
    const char *at = strchr(env->url, '@');
    assert_non_null(at);
    snprintf(out, size, "%.*s:pa55-w0rd%s", (int)(at - env->url), env->url, at);
}

static void test_url_redacted(void **state)
{
    char url[1100];
    struct kit_db *db = NULL;
    struct ag_err err = {0};
    url_with_password(*state, url, sizeof url);
    assert_int_equal(kit_db_open(url, &db, &err), 0);
    assert_contains(kit_db_url_redacted(db), ":***@");
    assert_not_contains(kit_db_url_redacted(db), "pa55-w0rd");
    /* an SQL error does not echo the URL either */
    assert_int_equal(kit_db_exec(db, "SELECT nothing FROM nowhere", NULL, 0, &err), AG_EINVAL);
    assert_not_contains(err.msg, "pa55-w0rd");
    kit_db_close(db);
    /* a database that does not exist: AG_EUNAVAIL, no password */
    char *slash = strrchr(url, '/');
    snprintf(slash, sizeof url - (size_t)(slash - url), "/agora_no_such_db");
    assert_int_equal(kit_db_open(url, &db, &err), AG_EUNAVAIL);
    assert_contains(err.msg, "agora_no_such_db");
    assert_not_contains(err.msg, "pa55-w0rd");
}

/* Terminates db's server session from another connection. */
static void kill_session(const struct db_env *env, struct kit_db *db)
{
    int64_t pid = query_int(db, "SELECT pg_backend_pid()", NULL, 0);
    struct kit_db *killer = env_open(env);
    struct ag_err err = {0};
    struct kit_db_rows *rows = NULL;
    assert_int_equal(kit_db_query(killer, "SELECT pg_terminate_backend($1)",
                                  KIT_DB_PARAMS(KIT_DB_INT(pid)), 0, &rows, &err),
                     1);
    assert_int_equal(kit_db_rows_int(rows, 0, 0), 1);
    kit_db_rows_free(rows);
    /* wait until the session is gone, so the next call surely finds it dead */
    for (int i = 0; i < 500; i++) {
        if (query_int(killer, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                      KIT_DB_PARAMS(KIT_DB_INT(pid))) == 0)
            break;
        usleep(10000);
    }
    kit_db_close(killer);
}

static void test_reconnect_outside_transaction(void **state)
{
    struct kit_db *db = env_open(*state);
    struct ag_err err = {0};
    EXEC_OK(db, create_t);
    const char *ins = "INSERT INTO t (id) VALUES ($1)";
    assert_int_equal(kit_db_exec(db, ins, KIT_DB_PARAMS(KIT_DB_TEXT("a")), &err), 1);
    kill_session(*state, db);
    assert_int_equal(kit_db_exec(db, ins, KIT_DB_PARAMS(KIT_DB_TEXT("b")), &err), AG_EUNAVAIL);
    assert_contains(err.msg, "postgres");
    assert_false(kit_db_in_transaction(db));
    /* the next call reconnects; the statement cache starts again */
    assert_int_equal(kit_db_exec(db, ins, KIT_DB_PARAMS(KIT_DB_TEXT("c")), &err), 1);
    assert_int_equal(kit_db_exec(db, ins, KIT_DB_PARAMS(KIT_DB_TEXT("d")), &err), 1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM t", NULL, 0), 3);
    /* ping reconnects by itself */
    kill_session(*state, db);
    assert_true(kit_db_ping(db));
    kit_db_close(db);
}

static void test_connection_lost_in_transaction(void **state)
{
    struct kit_db *db = env_open(*state);
    struct ag_err err = {0};
    EXEC_OK(db, create_t);
    const char *ins = "INSERT INTO t (id) VALUES ($1)";
    assert_int_equal(kit_db_begin(db, &err), 0);
    assert_int_equal(kit_db_exec(db, ins, KIT_DB_PARAMS(KIT_DB_TEXT("a")), &err), 1);
    kill_session(*state, db);
    assert_int_equal(kit_db_exec(db, ins, KIT_DB_PARAMS(KIT_DB_TEXT("b")), &err), AG_EUNAVAIL);
    /* still "in a transaction" until the caller rolls back: no silent autocommit */
    assert_true(kit_db_in_transaction(db));
    assert_int_equal(kit_db_exec(db, ins, KIT_DB_PARAMS(KIT_DB_TEXT("c")), &err), AG_EUNAVAIL);
    assert_contains(err.msg, "roll");
    assert_int_equal(kit_db_begin(db, &err), AG_EINVAL);
    assert_int_equal(kit_db_rollback(db), 0);
    assert_false(kit_db_in_transaction(db));
    assert_int_equal(query_int(db, "SELECT count(*) FROM t", NULL, 0), 0);
    /* the same with commit as the caller's next step */
    assert_int_equal(kit_db_begin(db, &err), 0);
    assert_int_equal(kit_db_exec(db, ins, KIT_DB_PARAMS(KIT_DB_TEXT("e")), &err), 1);
    kill_session(*state, db);
    assert_int_equal(kit_db_exec(db, ins, KIT_DB_PARAMS(KIT_DB_TEXT("f")), &err), AG_EUNAVAIL);
    assert_int_equal(kit_db_commit(db, &err), AG_EUNAVAIL);
    assert_false(kit_db_in_transaction(db));
    assert_int_equal(query_int(db, "SELECT count(*) FROM t", NULL, 0), 0);
    kit_db_close(db);
}

static void test_failed_transaction_commit(void **state)
{
    struct kit_db *db = env_open(*state);
    struct ag_err err = {0};
    EXEC_OK(db, create_t);
    assert_int_equal(kit_db_begin(db, &err), 0);
    assert_int_equal(
        kit_db_exec(db, "INSERT INTO t (id) VALUES ($1)", KIT_DB_PARAMS(KIT_DB_TEXT("a")), &err),
        1);
    assert_int_equal(kit_db_exec(db, "SELEKT", NULL, 0, &err), AG_EINVAL);
    /* later statements are refused until the end of the transaction */
    assert_int_equal(kit_db_exec(db, "SELECT 1", NULL, 0, &err), AG_EINVAL);
    assert_contains(err.msg, "roll");
    /* COMMIT of a failed transaction is a failure, not a silent rollback */
    assert_int_equal(kit_db_commit(db, &err), AG_EINVAL);
    assert_false(kit_db_in_transaction(db));
    assert_int_equal(query_int(db, "SELECT count(*) FROM t", NULL, 0), 0);
    /* a deferred constraint failing at COMMIT: AG_ECONFLICT, nothing kept */
    EXEC_OK(db, "CREATE TABLE p (id TEXT PRIMARY KEY)");
    EXEC_OK(db, "CREATE TABLE c (id TEXT PRIMARY KEY, p TEXT REFERENCES p (id) DEFERRABLE "
                "INITIALLY DEFERRED)");
    assert_int_equal(kit_db_begin(db, &err), 0);
    assert_int_equal(kit_db_exec(db, "INSERT INTO c (id, p) VALUES ($1, $2)",
                                 KIT_DB_PARAMS(KIT_DB_TEXT("c1"), KIT_DB_TEXT("none")), &err),
                     1);
    assert_int_equal(kit_db_commit(db, &err), AG_ECONFLICT);
    assert_false(kit_db_in_transaction(db));
    assert_int_equal(query_int(db, "SELECT count(*) FROM c", NULL, 0), 0);
    kit_db_close(db);
}

/* After a failed statement only a rollback is accepted: to a savepoint too (the bus consumer
 * undoes one event's handler that way), and kit_db_tx_failed says so meanwhile. */
static void test_rollback_to_savepoint_after_failure(void **state)
{
    struct kit_db *db = env_open(*state);
    struct ag_err err = {0};
    EXEC_OK(db, create_t);
    assert_int_equal(kit_db_begin(db, &err), 0);
    assert_int_equal(
        kit_db_exec(db, "INSERT INTO t (id) VALUES ($1)", KIT_DB_PARAMS(KIT_DB_TEXT("kept")), &err),
        1);
    assert_int_equal(kit_db_exec(db, "SAVEPOINT one", NULL, 0, &err), 0);
    assert_false(kit_db_tx_failed(db));
    assert_int_equal(
        kit_db_exec(db, "INSERT INTO t (id) VALUES ($1)", KIT_DB_PARAMS(KIT_DB_TEXT("kept")), &err),
        AG_ECONFLICT);
    assert_true(kit_db_tx_failed(db));
    assert_int_equal(kit_db_exec(db, "SELECT 1", NULL, 0, &err), AG_EINVAL);
    assert_int_equal(kit_db_exec(db, "ROLLBACK TO SAVEPOINT one", NULL, 0, &err), 0);
    assert_false(kit_db_tx_failed(db));
    assert_int_equal(
        kit_db_exec(db, "INSERT INTO t (id) VALUES ($1)", KIT_DB_PARAMS(KIT_DB_TEXT("also")), &err),
        1);
    assert_int_equal(kit_db_commit(db, &err), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM t", NULL, 0), 2);
    kit_db_close(db);
}

static void test_lock_not_available(void **state)
{
    struct kit_db *a = env_open(*state), *b = env_open(*state);
    struct ag_err err = {0};
    EXEC_OK(a, create_t);
    EXEC_OK(a, "INSERT INTO t (id) VALUES ('x')");
    assert_int_equal(kit_db_begin(a, &err), 0);
    assert_int_equal(kit_db_exec(a, "SELECT id FROM t WHERE id = $1 FOR UPDATE",
                                 KIT_DB_PARAMS(KIT_DB_TEXT("x")), &err),
                     0);
    assert_int_equal(kit_db_exec(b, "SELECT id FROM t WHERE id = $1 FOR UPDATE NOWAIT",
                                 KIT_DB_PARAMS(KIT_DB_TEXT("x")), &err),
                     AG_EUNAVAIL);
    assert_contains(err.msg, "55P03");
    assert_int_equal(kit_db_commit(a, &err), 0);
    assert_int_equal(kit_db_exec(b, "SELECT id FROM t WHERE id = $1 FOR UPDATE NOWAIT",
                                 KIT_DB_PARAMS(KIT_DB_TEXT("x")), &err),
                     0);
    kit_db_close(a);
    kit_db_close(b);
}

/* A serialization failure (40001) is AG_EUNAVAIL: the caller may retry the transaction. */
static void test_serialization_failure(void **state)
{
    struct kit_db *a = env_open(*state), *b = env_open(*state);
    struct ag_err err = {0};
    EXEC_OK(a, create_t);
    EXEC_OK(a, "INSERT INTO t (id, n) VALUES ('x', 1)");
    assert_int_equal(kit_db_begin(a, &err), 0);
    EXEC_OK(a, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    assert_int_equal(query_int(a, "SELECT n FROM t WHERE id = $1", KIT_DB_PARAMS(KIT_DB_TEXT("x"))),
                     1);
    assert_int_equal(kit_db_exec(b, "UPDATE t SET n = $1 WHERE id = $2",
                                 KIT_DB_PARAMS(KIT_DB_INT(2), KIT_DB_TEXT("x")), &err),
                     1);
    assert_int_equal(kit_db_exec(a, "UPDATE t SET n = $1 WHERE id = $2",
                                 KIT_DB_PARAMS(KIT_DB_INT(3), KIT_DB_TEXT("x")), &err),
                     AG_EUNAVAIL);
    assert_contains(err.msg, "40001");
    assert_int_equal(kit_db_rollback(a), 0);
    assert_int_equal(query_int(a, "SELECT n FROM t WHERE id = $1", KIT_DB_PARAMS(KIT_DB_TEXT("x"))),
                     2);
    kit_db_close(a);
    kit_db_close(b);
}

/* A schema change under a cached statement: the next call prepares it anew. */
static void test_schema_change_under_cache(void **state)
{
    struct kit_db *db = env_open(*state);
    struct ag_err err = {0};
    struct kit_db_rows *rows = NULL;
    EXEC_OK(db, "CREATE TABLE s (a BIGINT)");
    EXEC_OK(db, "INSERT INTO s VALUES (1)");
    assert_int_equal(kit_db_query(db, "SELECT * FROM s", NULL, 0, 0, &rows, &err), 1);
    kit_db_rows_free(rows);
    EXEC_OK(db, "ALTER TABLE s ADD COLUMN b TEXT");
    int rc = kit_db_query(db, "SELECT * FROM s", NULL, 0, 0, &rows, &err);
    if (rc < 0) { /* "cached plan must not change result type" once, then fine */
        assert_int_equal(rc, AG_EINVAL);
        rc = kit_db_query(db, "SELECT * FROM s", NULL, 0, 0, &rows, &err);
    }
    assert_int_equal(rc, 1);
    assert_int_equal(kit_db_rows_columns(rows), 2);
    kit_db_rows_free(rows);
    kit_db_close(db);
}

#define PG(fn) cmocka_unit_test_prestate_setup_teardown(fn, env_setup, env_teardown, &pg_env)

int main(void)
{
    const struct CMUnitTest tests[] = {
        PG(test_booleans_and_types),
        PG(test_url_redacted),
        PG(test_reconnect_outside_transaction),
        PG(test_connection_lost_in_transaction),
        PG(test_failed_transaction_commit),
        PG(test_rollback_to_savepoint_after_failure),
        PG(test_lock_not_available),
        PG(test_serialization_failure),
        PG(test_schema_change_under_cache),
        PG(case_params_every_type),
        PG(case_params_by_name),
        PG(case_nulls),
        PG(case_conflicts),
        PG(case_transactions),
        PG(case_rows_api),
        PG(case_metacharacters),
        PG(case_statement_cache),
        PG(case_metrics),
        PG(case_two_connections),
        PG(case_migrate_in_order),
        PG(case_migrate_one_by_one),
        PG(case_migrate_failure_rolls_back),
        PG(case_migrate_refusals),
        PG(case_migrate_driver_text),
        PG(case_migrate_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
