/* The SQLite driver: open with the platform's PRAGMAs, $N binding by name, a statement LRU. */
#include "kit/db_sqlite.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "kit/db_rows.h"

#include "core/banned.h"

enum {
    STMT_CACHE_SIZE = 64,    /* prepared statements kept per connection */
    BUSY_TIMEOUT_MS = 5000,  /* how long a writer waits for the lock before AG_EUNAVAIL */
    PATH_MAX_LEN = PATH_MAX, /* longest database path accepted */
};

/* One cached statement, keyed by its SQL text. */
struct stmt_entry {
    sqlite3_stmt *stmt; /* NULL: free slot */
    char *sql;          /* a copy of the text it was prepared from */
    size_t len;
    uint64_t used; /* tick of the last use, for LRU eviction */
};

struct kit_db_sqlite {
    sqlite3 *conn;
    uint64_t tick;
    struct stmt_entry cache[STMT_CACHE_SIZE];
};

/* Maps an SQLite result code to AG_E* and fills err with the connection's message. */
static int sqlite_fail(struct kit_db_sqlite *db, int src, const char *what, struct ag_err *err)
{
    int code;
    switch (src & 0xff) {
    case SQLITE_CONSTRAINT:
        code = AG_ECONFLICT;
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        code = AG_EUNAVAIL;
        break;
    case SQLITE_NOMEM:
        code = AG_ENOMEM;
        break;
    default:
        code = AG_EINVAL;
        break;
    }
    return ag_err_set(err, code, "sqlite: %s: %s", what,
                      db && db->conn ? sqlite3_errmsg(db->conn) : sqlite3_errstr(src));
}

/* Creates every parent directory of path (mkdir -p of its dirname). */
static int make_parents(const char *path, struct ag_err *err)
{
    char dir[PATH_MAX_LEN];
    size_t len = strlen(path);
    if (len >= sizeof dir)
        return ag_err_set(err, AG_EINVAL, "sqlite: the database path is too long");
    memcpy(dir, path, len + 1);
    for (size_t i = 1; i < len; i++) {
        if (dir[i] != '/')
            continue;
        dir[i] = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            ag_err_set(err, AG_EUNAVAIL, "sqlite: cannot create the directory %s: %s", dir,
                       strerror(e));
            return AG_EUNAVAIL;
        }
        dir[i] = '/';
    }
    return 0;
}

/* Runs a PRAGMA or other parameterless statement during open. */
static int open_pragma(struct kit_db_sqlite *db, const char *sql, struct ag_err *err)
{
    int src = sqlite3_exec(db->conn, sql, NULL, NULL, NULL);
    if (src != SQLITE_OK) {
        sqlite_fail(db, src, sql, err);
        return AG_EUNAVAIL;
    }
    return 0;
}

int kit_db_sqlite_open(const char *path, struct kit_db_sqlite **out, struct ag_err *err)
{
    int rc = 0;
    bool memory = strcmp(path, ":memory:") == 0;
    struct kit_db_sqlite *db = calloc(1, sizeof *db);
    *out = NULL;
    if (!db)
        return ag_err_set(err, AG_ENOMEM, "sqlite: out of memory");
    if (!memory && (rc = make_parents(path, err)) < 0)
        goto out;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int src = sqlite3_open_v2(path, &db->conn, flags, NULL);
    if (src != SQLITE_OK) {
        if (src == SQLITE_NOMEM || !db->conn) {
            rc = ag_err_set(err, AG_ENOMEM, "sqlite: out of memory opening %s", path);
        } else {
            rc = ag_err_set(err, AG_EUNAVAIL, "sqlite: cannot open %s: %s", path,
                            sqlite3_errmsg(db->conn));
        }
        goto out;
    }
    sqlite3_extended_result_codes(db->conn, 1);
    /* busy_timeout first: switching to WAL takes a lock another opener may hold. */
    if ((rc = open_pragma(db, "PRAGMA busy_timeout=5000", err)) < 0 ||
        (!memory && (rc = open_pragma(db, "PRAGMA journal_mode=WAL", err)) < 0) ||
        (rc = open_pragma(db, "PRAGMA synchronous=FULL", err)) < 0 ||
        (rc = open_pragma(db, "PRAGMA foreign_keys=ON", err)) < 0 ||
        /* 32 MiB of page cache per connection (the default is 2 MiB): a catalog's hot pages
         * (a search walks thousands of rows) stay in the process instead of the kernel's. */
        (rc = open_pragma(db, "PRAGMA cache_size=-32768", err)) < 0)
        goto out;
    *out = db;
    db = NULL;
out:
    kit_db_sqlite_close(db);
    return rc;
}

static void cache_entry_clear(struct stmt_entry *e)
{
    sqlite3_finalize(e->stmt);
    free(e->sql);
    *e = (struct stmt_entry){0};
}

void kit_db_sqlite_close(struct kit_db_sqlite *db)
{
    if (!db)
        return;
    for (size_t i = 0; i < STMT_CACHE_SIZE; i++)
        cache_entry_clear(&db->cache[i]);
    if (db->conn) {
        if (!sqlite3_get_autocommit(db->conn))
            sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close_v2(db->conn);
    }
    free(db);
}

bool kit_db_sqlite_in_transaction(const struct kit_db_sqlite *db)
{
    return db && db->conn && !sqlite3_get_autocommit(db->conn);
}

/* True when text holds nothing but whitespace and comments. */
static bool only_comments(struct kit_db_sqlite *db, const char *text)
{
    sqlite3_stmt *stmt = NULL;
    const char *tail = NULL;
    int src = sqlite3_prepare_v2(db->conn, text, -1, &stmt, &tail);
    bool empty = src == SQLITE_OK && stmt == NULL;
    sqlite3_finalize(stmt);
    return empty;
}

/*
 * Finds sql's prepared statement in the cache or prepares and caches it, evicting the least
 * recently used one when full. The statement returned is reset, without bindings.
 */
static int stmt_get(struct kit_db_sqlite *db, const char *sql, sqlite3_stmt **out,
                    struct ag_err *err)
{
    size_t len = strlen(sql);
    struct stmt_entry *victim = &db->cache[0];
    db->tick++;
    for (size_t i = 0; i < STMT_CACHE_SIZE; i++) {
        struct stmt_entry *e = &db->cache[i];
        if (e->stmt && e->len == len && (e->sql == sql || memcmp(e->sql, sql, len) == 0)) {
            e->used = db->tick;
            *out = e->stmt;
            return 0;
        }
        if (!e->stmt)
            victim = e;
        else if (victim->stmt && e->used < victim->used)
            victim = e;
    }
    if (len > INT_MAX - 1)
        return ag_err_set(err, AG_EINVAL, "sqlite: the statement is too long");
    sqlite3_stmt *stmt = NULL;
    const char *tail = NULL;
    int src =
        sqlite3_prepare_v3(db->conn, sql, (int)len + 1, SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
    if (src != SQLITE_OK)
        return sqlite_fail(db, src, "prepare", err);
    if (!stmt)
        return ag_err_set(err, AG_EINVAL, "sqlite: the statement is empty");
    if (tail && *tail && !only_comments(db, tail)) {
        sqlite3_finalize(stmt);
        return ag_err_set(err, AG_EINVAL,
                          "sqlite: the text holds more than one statement (one per call)");
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        sqlite3_finalize(stmt);
        return ag_err_set(err, AG_ENOMEM, "sqlite: out of memory");
    }
    memcpy(copy, sql, len + 1);
    cache_entry_clear(victim);
    *victim = (struct stmt_entry){.stmt = stmt, .sql = copy, .len = len, .used = db->tick};
    *out = stmt;
    return 0;
}

/* Parses a parameter name "$N" (N from 1, no leading zero); 0 when it is not one. */
static size_t param_number(const char *name)
{
    if (!name || name[0] != '$' || name[1] < '1' || name[1] > '9')
        return 0;
    uint64_t n = 0;
    if (ag_str_to_u64(ag_str_from_cstr(name + 1), 1000000, &n) < 0)
        return 0;
    return (size_t)n;
}

/* Binds params to stmt by their $N names; every name must be given and every param used. */
static int bind_params(struct kit_db_sqlite *db, sqlite3_stmt *stmt,
                       const struct kit_db_value *params, size_t count, struct ag_err *err)
{
    int n = sqlite3_bind_parameter_count(stmt);
    uint64_t used_bits[4] = {0}; /* which of the first 256 params were named */
    for (int i = 1; i <= n; i++) {
        const char *name = sqlite3_bind_parameter_name(stmt, i);
        size_t k = param_number(name);
        if (k == 0)
            return ag_err_set(err, AG_EINVAL,
                              "sqlite: parameter %s is not named $N (use $1, $2...)",
                              name ? name : "?");
        if (k > count)
            return ag_err_set(err, AG_EINVAL,
                              "sqlite: the statement names $%zu but %zu parameter%s given", k,
                              count, count == 1 ? " was" : "s were");
        if (k <= 256)
            used_bits[(k - 1) / 64] |= UINT64_C(1) << ((k - 1) % 64);
        const struct kit_db_value *v = &params[k - 1];
        int src = SQLITE_OK;
        switch (v->type) {
        case KIT_DB_T_NULL:
            src = sqlite3_bind_null(stmt, i);
            break;
        case KIT_DB_T_INT:
            src = sqlite3_bind_int64(stmt, i, v->i);
            break;
        case KIT_DB_T_DOUBLE:
            src = sqlite3_bind_double(stmt, i, v->d);
            break;
        case KIT_DB_T_TEXT:
            if (v->len > 0 && memchr(v->s, '\0', v->len))
                return ag_err_set(err, AG_EINVAL, "sqlite: text parameter $%zu holds a NUL byte",
                                  k);
            /* STATIC: the caller's bytes outlive the step; bindings are cleared after it. */
            src = sqlite3_bind_text64(stmt, i, v->len ? v->s : "", v->len, SQLITE_STATIC,
                                      SQLITE_UTF8);
            break;
        default:
            return ag_err_set(err, AG_EINVAL, "sqlite: parameter $%zu has an unknown type", k);
        }
        if (src != SQLITE_OK)
            return sqlite_fail(db, src, "bind", err);
    }
    for (size_t k = 1; k <= count && k <= 256; k++) {
        if (!(used_bits[(k - 1) / 64] & (UINT64_C(1) << ((k - 1) % 64))))
            return ag_err_set(err, AG_EINVAL,
                              "sqlite: parameter $%zu was given but the statement does not use it",
                              k);
    }
    return 0;
}

/*
 * Writes v with the fewest digits (15 to 17) that read back as exactly v, as PostgreSQL does;
 * SQLite's own text keeps 15 digits and may lose the last bits. Returns the length.
 */
static size_t format_double(double v, char *out, size_t size)
{
    int n = 0;
    for (int digits = 15; digits <= 17; digits++) {
        n = snprintf(out, size, "%.*g", digits, v);
        if (strtod(out, NULL) == v)
            break;
    }
    return n > 0 ? (size_t)n : 0;
}

/* Appends the current row of stmt to b. */
static int read_row(sqlite3_stmt *stmt, int cols, struct kit_db_rows_builder *b)
{
    for (int c = 0; c < cols; c++) {
        int type = sqlite3_column_type(stmt, c);
        int rc;
        if (type == SQLITE_NULL) {
            rc = kit_db_rows_builder_add(b, NULL, 0, true, 0);
        } else if (type == SQLITE_FLOAT) {
            char text[40];
            size_t n = format_double(sqlite3_column_double(stmt, c), text, sizeof text);
            rc = kit_db_rows_builder_add(b, text, n, false, 0);
        } else {
            const char *p = type == SQLITE_BLOB ? sqlite3_column_blob(stmt, c)
                                                : (const char *)sqlite3_column_text(stmt, c);
            int len = sqlite3_column_bytes(stmt, c);
            if (!p && len > 0)
                return AG_ENOMEM;
            rc = kit_db_rows_builder_add(b, p, (size_t)len, false, 0);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

int kit_db_sqlite_run(struct kit_db_sqlite *db, const char *sql, const struct kit_db_value *params,
                      size_t count, size_t max_rows, struct kit_db_rows **rows, struct ag_err *err)
{
    int rc = 0;
    sqlite3_stmt *stmt = NULL;
    struct kit_db_rows_builder b;
    int cols = 0;
    bool building = false;
    if (rows)
        *rows = NULL;
    if ((rc = stmt_get(db, sql, &stmt, err)) < 0)
        return rc;
    if ((rc = bind_params(db, stmt, params, count, err)) < 0)
        goto out;
    if (rows) {
        cols = sqlite3_column_count(stmt);
        kit_db_rows_builder_init(&b, (size_t)cols, max_rows);
        building = true;
        for (int c = 0; c < cols; c++) {
            const char *name = sqlite3_column_name(stmt, c);
            if (!name || (rc = kit_db_rows_builder_add(&b, name, strlen(name), false, 0)) < 0) {
                rc = ag_err_set(err, AG_ENOMEM, "sqlite: out of memory");
                goto out;
            }
        }
    }
    sqlite3_int64 before = sqlite3_total_changes64(db->conn);
    int src;
    while ((src = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (!rows)
            continue;
        if ((rc = read_row(stmt, cols, &b)) < 0) {
            if (rc == AG_ERANGE)
                ag_err_set(err, rc, "sqlite: the query returned more than %zu rows", max_rows);
            else
                ag_err_set(err, rc, "sqlite: out of memory reading rows");
            goto out;
        }
    }
    if (src != SQLITE_DONE) {
        rc = sqlite_fail(db, src, "step", err);
        goto out;
    }
    if (rows) {
        building = false;
        if ((rc = kit_db_rows_builder_finish(&b, rows)) < 0) {
            ag_err_set(err, rc, "sqlite: out of memory reading rows");
            goto out;
        }
        rc = (int)kit_db_rows_count(*rows);
    } else if (!sqlite3_stmt_readonly(stmt) && sqlite3_total_changes64(db->conn) != before) {
        sqlite3_int64 changed = sqlite3_changes64(db->conn);
        rc = changed > INT_MAX ? INT_MAX : (int)changed;
    }
out:
    if (building)
        kit_db_rows_builder_release(&b);
    sqlite3_reset(stmt); /* ends the statement's read, so it never pins a snapshot */
    sqlite3_clear_bindings(stmt);
    return rc;
}

int kit_db_sqlite_script(struct kit_db_sqlite *db, const char *sql, struct ag_err *err)
{
    int src = sqlite3_exec(db->conn, sql, NULL, NULL, NULL);
    if (src != SQLITE_OK)
        return sqlite_fail(db, src, "exec", err);
    return 0;
}
