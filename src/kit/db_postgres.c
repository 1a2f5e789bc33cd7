/* The PostgreSQL driver: libpq, named prepared statements cached per connection, reconnection. */
#include "kit/db_postgres.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "kit/db_rows.h"

#include "core/banned.h"

enum {
    STMT_CACHE_SIZE = 64,     /* named prepared statements kept per connection */
    SCRATCH_MAX = 256u << 20, /* parameter text of one call */
    PG_BOOLOID = 16,          /* pg_type.oid of boolean */
    SECRET_MAX = 512,         /* longest password scrubbed from messages */
};

/* One server-side prepared statement, keyed by its SQL text. */
struct pg_stmt {
    char *sql; /* NULL: free slot */
    size_t len;
    char name[32];
    int nparams;
    uint64_t used; /* tick of the last use, for LRU eviction */
};

struct kit_db_pg {
    PGconn *conn;
    char secret[SECRET_MAX];         /* the password as written in the URL; "" when none */
    char secret_decoded[SECRET_MAX]; /* and percent-decoded, as libpq may print it */
    bool lost_in_tx; /* the connection died inside a transaction: refuse until rollback */
    uint64_t tick;
    uint64_t next_id;
    struct pg_stmt cache[STMT_CACHE_SIZE];
    struct ag_buf scratch; /* parameter texts of the current call */
    const char **values;   /* parameter pointers of the current call */
    size_t values_cap;
};

/* Replaces every occurrence of secret in msg (size bytes) with "***". */
static void scrub(char *msg, size_t size, const char *secret)
{
    size_t slen = strlen(secret), o = 0;
    char out[sizeof(((struct ag_err *)0)->msg)];
    if (slen == 0)
        return;
    for (const char *p = msg; *p && o + 1 < sizeof out;) {
        if (strncmp(p, secret, slen) == 0) {
            for (size_t i = 0; i < 3 && o + 1 < sizeof out; i++)
                out[o++] = '*';
            p += slen;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    if (o + 1 > size)
        o = size - 1;
    memcpy(msg, out, o);
    msg[o] = '\0';
}

/* Fills err with "postgres: " + text (trailing newlines cut), scrubbed of the password. */
static int pg_error(struct kit_db_pg *db, struct ag_err *err, int code, const char *what,
                    const char *text, const char *sqlstate)
{
    if (!err)
        return code;
    size_t n = text ? strlen(text) : 0;
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' '))
        n--;
    int shown = n > 200 ? 200 : (int)n;
    if (sqlstate && *sqlstate)
        ag_err_set(err, code, "postgres: %s: %.*s (SQLSTATE %s)", what, shown, text, sqlstate);
    else
        ag_err_set(err, code, "postgres: %s: %.*s", what, shown, text ? text : "");
    if (db) {
        scrub(err->msg, sizeof err->msg, db->secret);
        scrub(err->msg, sizeof err->msg, db->secret_decoded);
    }
    return code;
}

/* The AG_E* code for an SQLSTATE. */
static int sqlstate_code(const char *state)
{
    if (!state || strlen(state) != 5)
        return AG_EINVAL;
    if (strncmp(state, "23", 2) == 0)
        return AG_ECONFLICT;
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0 ||
        strncmp(state, "57", 2) == 0 || strncmp(state, "08", 2) == 0 || strcmp(state, "53300") == 0)
        return AG_EUNAVAIL;
    if (strcmp(state, "53200") == 0)
        return AG_ENOMEM;
    return AG_EINVAL;
}

static bool tx_open_now(const struct kit_db_pg *db)
{
    if (PQstatus(db->conn) != CONNECTION_OK)
        return false;
    PGTransactionStatusType t = PQtransactionStatus(db->conn);
    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

/* Forgets every cached statement (the server dropped them with the session). */
static void cache_forget(struct kit_db_pg *db)
{
    for (size_t i = 0; i < STMT_CACHE_SIZE; i++) {
        free(db->cache[i].sql);
        db->cache[i] = (struct pg_stmt){0};
    }
}

/*
 * Turns a failed result (res may be NULL) into a code and err. A connection found dead while a
 * transaction was open (tx_before) is remembered, so nothing runs until the caller rolls back.
 */
static int pg_fail(struct kit_db_pg *db, PGresult *res, bool tx_before, const char *what,
                   struct ag_err *err)
{
    if (PQstatus(db->conn) == CONNECTION_BAD) {
        cache_forget(db);
        if (tx_before)
            db->lost_in_tx = true;
        const char *msg = res ? PQresultErrorMessage(res) : "";
        if (!msg || !*msg)
            msg = PQerrorMessage(db->conn);
        return pg_error(db, err, AG_EUNAVAIL, "connection lost", msg, NULL);
    }
    if (!res)
        return pg_error(db, err, AG_ENOMEM, what, PQerrorMessage(db->conn), NULL);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (!primary)
        primary = PQresultErrorMessage(res);
    return pg_error(db, err, sqlstate_code(state), what, primary, state);
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* NOTICEs ("relation exists, skipping") are not errors: keep stderr clean */
}

/* Percent-decodes src into dst (size bytes); copies verbatim what is not a valid escape. */
static void percent_decode(const char *src, char *dst, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; src[i] && o + 1 < size; i++) {
        unsigned v;
        if (src[i] == '%' && src[i + 1] && src[i + 2] && sscanf(src + i + 1, "%2x", &v) == 1) {
            dst[o++] = (char)v;
            i += 2;
        } else {
            dst[o++] = src[i];
        }
    }
    dst[o] = '\0';
}

/* True when the URL's query names option (as "option="). */
static bool url_has_option(const char *url, const char *option)
{
    const char *q = strchr(url, '?');
    size_t n = strlen(option);
    while (q) {
        q++;
        if (strncmp(q, option, n) == 0 && q[n] == '=')
            return true;
        q = strchr(q, '&');
    }
    return false;
}

int kit_db_pg_open(const char *conninfo, const char *secret, struct kit_db_pg **out,
                   struct ag_err *err)
{
    int rc = 0;
    char *url = NULL, *parse_error = NULL;
    PQconninfoOption *options = NULL;
    struct kit_db_pg *db = calloc(1, sizeof *db);
    *out = NULL;
    if (!db)
        return ag_err_set(err, AG_ENOMEM, "postgres: out of memory");
    ag_buf_init(&db->scratch, SCRATCH_MAX);
    if (secret && strlen(secret) < sizeof db->secret) {
        memcpy(db->secret, secret, strlen(secret) + 1);
        percent_decode(secret, db->secret_decoded, sizeof db->secret_decoded);
    }
    size_t len = strlen(conninfo);
    if (!(url = malloc(len + 64))) {
        rc = ag_err_set(err, AG_ENOMEM, "postgres: out of memory");
        goto out;
    }
    memcpy(url, conninfo, len + 1);
    if (!url_has_option(url, "connect_timeout")) {
        memcpy(url + len, strchr(url, '?') ? "&" : "?", 2);
        len++;
        memcpy(url + len, "connect_timeout=5", sizeof "connect_timeout=5");
        len += sizeof "connect_timeout=5" - 1;
    }
    if (!url_has_option(url, "client_encoding")) {
        memcpy(url + len, "&client_encoding=UTF8", sizeof "&client_encoding=UTF8");
        len += sizeof "&client_encoding=UTF8" - 1;
    }
    if (!(options = PQconninfoParse(url, &parse_error))) {
        rc = pg_error(db, err, parse_error ? AG_EINVAL : AG_ENOMEM, "malformed database URL",
                      parse_error ? parse_error : "out of memory", NULL);
        goto out;
    }
    if (!(db->conn = PQconnectdb(url))) {
        rc = ag_err_set(err, AG_ENOMEM, "postgres: out of memory connecting");
        goto out;
    }
    if (PQstatus(db->conn) != CONNECTION_OK) {
        rc = pg_error(db, err, AG_EUNAVAIL, "cannot connect", PQerrorMessage(db->conn), NULL);
        goto out;
    }
    PQsetNoticeProcessor(db->conn, ignore_notice, NULL);
    *out = db;
    db = NULL;
out:
    if (parse_error)
        PQfreemem(parse_error);
    PQconninfoFree(options);
    free(url);
    kit_db_pg_close(db);
    return rc;
}

void kit_db_pg_close(struct kit_db_pg *db)
{
    if (!db)
        return;
    if (db->conn) {
        if (tx_open_now(db))
            PQclear(PQexec(db->conn, "ROLLBACK"));
        PQfinish(db->conn);
    }
    cache_forget(db);
    ag_buf_release(&db->scratch);
    free(db->values);
    free(db);
}

bool kit_db_pg_in_transaction(const struct kit_db_pg *db)
{
    return db && (db->lost_in_tx || tx_open_now(db));
}

bool kit_db_pg_tx_failed(const struct kit_db_pg *db)
{
    return db && (db->lost_in_tx || PQtransactionStatus(db->conn) == PQTRANS_INERROR);
}

/* Makes the connection usable: reconnects one lost outside a transaction. */
static int pg_ready(struct kit_db_pg *db, struct ag_err *err)
{
    if (PQstatus(db->conn) == CONNECTION_OK)
        return 0;
    if (db->lost_in_tx)
        return ag_err_set(err, AG_EUNAVAIL,
                          "postgres: the connection was lost during the transaction; roll it "
                          "back");
    cache_forget(db);
    PQreset(db->conn);
    if (PQstatus(db->conn) != CONNECTION_OK)
        return pg_error(db, err, AG_EUNAVAIL, "cannot reconnect", PQerrorMessage(db->conn), NULL);
    return 0;
}

/* Renders params as NUL-terminated text into db->scratch and points db->values at them. */
static int params_text(struct kit_db_pg *db, const struct kit_db_value *params, size_t count,
                       struct ag_err *err)
{
    int rc;
    ag_buf_clear(&db->scratch);
    if (count > db->values_cap) {
        const char **values = realloc(db->values, count * sizeof *values);
        if (!values)
            return ag_err_set(err, AG_ENOMEM, "postgres: out of memory");
        db->values = values;
        db->values_cap = count;
    }
    /* Offsets first: the scratch buffer may move while it grows. */
    size_t *offsets = (size_t *)db->values;
    _Static_assert(sizeof(size_t) == sizeof(const char *), "offsets share the pointer array");
    for (size_t k = 0; k < count; k++) {
        const struct kit_db_value *v = &params[k];
        offsets[k] = db->scratch.len;
        switch (v->type) {
        case KIT_DB_T_NULL:
            offsets[k] = SIZE_MAX;
            rc = 0;
            break;
        case KIT_DB_T_INT:
            rc = ag_buf_appendf(&db->scratch, "%" PRId64, v->i);
            break;
        case KIT_DB_T_DOUBLE:
            rc = ag_buf_appendf(&db->scratch, "%.17g", v->d);
            break;
        case KIT_DB_T_TEXT:
            if (v->len > 0 && memchr(v->s, '\0', v->len))
                return ag_err_set(err, AG_EINVAL, "postgres: text parameter $%zu holds a NUL byte",
                                  k + 1);
            rc = ag_buf_append(&db->scratch, v->len ? v->s : "", v->len);
            break;
        default:
            return ag_err_set(err, AG_EINVAL, "postgres: parameter $%zu has an unknown type",
                              k + 1);
        }
        if (rc == 0 && offsets[k] != SIZE_MAX)
            rc = ag_buf_append(&db->scratch, "", 1);
        if (rc < 0)
            return ag_err_set(err, rc == AG_ERANGE ? AG_ERANGE : AG_ENOMEM,
                              "postgres: the parameters are too large");
    }
    const char *base = ag_buf_str(&db->scratch).p;
    for (size_t k = 0; k < count; k++)
        db->values[k] = offsets[k] == SIZE_MAX ? NULL : base + offsets[k];
    return 0;
}

/*
 * Finds sql's prepared statement or prepares it (PQprepare, the server infers the types) and
 * learns its parameter count (PQdescribePrepared), evicting the least recently used one.
 */
static int stmt_get(struct kit_db_pg *db, const char *sql, bool tx_before, struct pg_stmt **out,
                    struct ag_err *err)
{
    int rc = 0;
    PGresult *res = NULL;
    size_t len = strlen(sql);
    struct pg_stmt *victim = &db->cache[0];
    db->tick++;
    for (size_t i = 0; i < STMT_CACHE_SIZE; i++) {
        struct pg_stmt *e = &db->cache[i];
        if (e->sql && e->len == len && memcmp(e->sql, sql, len) == 0) {
            e->used = db->tick;
            *out = e;
            return 0;
        }
        if (!e->sql)
            victim = e;
        else if (victim->sql && e->used < victim->used)
            victim = e;
    }
    if (victim->sql) {
        char dealloc[64];
        snprintf(dealloc, sizeof dealloc, "DEALLOCATE %s", victim->name);
        res = PQexec(db->conn, dealloc);
        free(victim->sql);
        *victim = (struct pg_stmt){0};
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            rc = pg_fail(db, res, tx_before, "DEALLOCATE", err);
            goto out;
        }
        PQclear(res);
        res = NULL;
    }
    char name[32];
    snprintf(name, sizeof name, "kit_%" PRIu64, ++db->next_id);
    res = PQprepare(db->conn, name, sql, 0, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = pg_fail(db, res, tx_before, "prepare", err);
        goto out;
    }
    PQclear(res);
    res = PQdescribePrepared(db->conn, name);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = pg_fail(db, res, tx_before, "describe", err);
        goto out;
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        rc = ag_err_set(err, AG_ENOMEM, "postgres: out of memory");
        goto out; /* the server keeps an unnamed-in-cache statement until the session ends */
    }
    memcpy(copy, sql, len + 1);
    *victim =
        (struct pg_stmt){.sql = copy, .len = len, .nparams = PQnparams(res), .used = db->tick};
    memcpy(victim->name, name, sizeof name);
    *out = victim;
out:
    PQclear(res);
    return rc;
}

/* Parses PQcmdTuples ("" for statements that count nothing). */
static int changed_rows(PGresult *res)
{
    const char *status = PQcmdStatus(res);
    uint64_t n = 0;
    if (status && strncmp(status, "SELECT", 6) == 0)
        return 0; /* as on SQLite: reading changes nothing */
    if (ag_str_to_u64(ag_str_from_cstr(PQcmdTuples(res)), INT_MAX, &n) < 0)
        return 0;
    return (int)n;
}

/* Reads res's rows into *out (at most max_rows). */
static int read_rows(struct kit_db_pg *db, PGresult *res, size_t max_rows, struct kit_db_rows **out,
                     struct ag_err *err)
{
    int rc = 0;
    int nrows = PQntuples(res), cols = PQnfields(res);
    struct kit_db_rows_builder b;
    if ((size_t)nrows > max_rows)
        return pg_error(db, err, AG_ERANGE, "query", "the query returned too many rows", NULL);
    kit_db_rows_builder_init(&b, (size_t)cols, max_rows);
    for (int c = 0; c < cols && rc == 0; c++) {
        const char *name = PQfname(res, c);
        rc = kit_db_rows_builder_add(&b, name, strlen(name), false,
                                     PQftype(res, c) == PG_BOOLOID ? KIT_DB_COL_BOOL : 0);
    }
    for (int r = 0; r < nrows && rc == 0; r++)
        for (int c = 0; c < cols && rc == 0; c++)
            rc = kit_db_rows_builder_add(&b, PQgetvalue(res, r, c), (size_t)PQgetlength(res, r, c),
                                         PQgetisnull(res, r, c), 0);
    if (rc < 0) {
        kit_db_rows_builder_release(&b);
        return ag_err_set(err, AG_ENOMEM, "postgres: out of memory reading rows");
    }
    if (kit_db_rows_builder_finish(&b, out) < 0)
        return ag_err_set(err, AG_ENOMEM, "postgres: out of memory reading rows");
    return nrows;
}

static int pg_simple(struct kit_db_pg *db, const char *sql, const char *what, struct ag_err *err);

int kit_db_pg_run(struct kit_db_pg *db, const char *sql, const struct kit_db_value *params,
                  size_t count, size_t max_rows, struct kit_db_rows **rows, struct ag_err *err)
{
    int rc;
    PGresult *res = NULL;
    struct pg_stmt *stmt = NULL;
    if (rows)
        *rows = NULL;
    if ((rc = pg_ready(db, err)) < 0)
        return rc;
    bool tx_before = tx_open_now(db);
    if (PQtransactionStatus(db->conn) == PQTRANS_INERROR) {
        /* After a failed statement PostgreSQL accepts only a rollback: to a savepoint too. */
        if (count == 0 && strncasecmp(sql, "ROLLBACK TO SAVEPOINT ", 22) == 0)
            return pg_simple(db, sql, "ROLLBACK TO SAVEPOINT", err);
        return ag_err_set(err, AG_EINVAL,
                          "postgres: a statement failed earlier in this transaction; roll it "
                          "back");
    }
    if ((rc = params_text(db, params, count, err)) < 0)
        return rc;
    if ((rc = stmt_get(db, sql, tx_before, &stmt, err)) < 0)
        return rc;
    if ((size_t)stmt->nparams > count)
        return ag_err_set(err, AG_EINVAL,
                          "postgres: the statement names $%d but %zu parameter%s given",
                          stmt->nparams, count, count == 1 ? " was" : "s were");
    if ((size_t)stmt->nparams < count)
        return ag_err_set(err, AG_EINVAL,
                          "postgres: parameter $%zu was given but the statement does not use it",
                          (size_t)stmt->nparams + 1);
    res = PQexecPrepared(db->conn, stmt->name, (int)count, db->values, NULL, NULL, 0);
    ExecStatusType status = PQresultStatus(res);
    if (status == PGRES_TUPLES_OK && rows) {
        rc = read_rows(db, res, max_rows, rows, err);
    } else if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
        if (rows) /* a statement without a result set reads as zero rows of zero columns */
            rc = read_rows(db, res, max_rows, rows, err);
        else
            rc = changed_rows(res);
    } else {
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (state && strcmp(state, "0A000") == 0 && PQstatus(db->conn) == CONNECTION_OK) {
            /* "cached plan must not change result type" after a schema change: prepare anew
             * next time (the old server-side statement lives on until the session ends). */
            free(stmt->sql);
            *stmt = (struct pg_stmt){0};
        }
        rc = pg_fail(db, res, tx_before, "query", err);
    }
    PQclear(res);
    return rc;
}

/* Runs parameterless text with PQexec (several statements allowed); 0 or a code. */
static int pg_simple(struct kit_db_pg *db, const char *sql, const char *what, struct ag_err *err)
{
    bool tx_before = tx_open_now(db);
    PGresult *res = PQexec(db->conn, sql);
    ExecStatusType status = PQresultStatus(res);
    int rc = 0;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && status != PGRES_EMPTY_QUERY)
        rc = pg_fail(db, res, tx_before, what, err);
    else if (strcmp(what, "COMMIT") == 0 && strcmp(PQcmdStatus(res), "ROLLBACK") == 0)
        rc = ag_err_set(err, AG_EINVAL, "postgres: the transaction failed and was rolled back");
    PQclear(res);
    return rc;
}

int kit_db_pg_script(struct kit_db_pg *db, const char *sql, struct ag_err *err)
{
    int rc = pg_ready(db, err);
    if (rc < 0)
        return rc;
    if (PQtransactionStatus(db->conn) == PQTRANS_INERROR)
        return ag_err_set(err, AG_EINVAL,
                          "postgres: a statement failed earlier in this transaction; roll it "
                          "back");
    return pg_simple(db, sql, "script", err);
}

int kit_db_pg_begin(struct kit_db_pg *db, struct ag_err *err)
{
    int rc = pg_ready(db, err);
    if (rc < 0)
        return rc;
    if (tx_open_now(db))
        return ag_err_set(err, AG_EINVAL, "postgres: a transaction is already open");
    return pg_simple(db, "BEGIN", "BEGIN", err);
}

int kit_db_pg_commit(struct kit_db_pg *db, struct ag_err *err)
{
    int rc;
    if (db->lost_in_tx) {
        db->lost_in_tx = false; /* the server rolled it back when the session ended */
        return ag_err_set(err, AG_EUNAVAIL,
                          "postgres: the connection was lost during the transaction; nothing "
                          "was committed");
    }
    if (PQstatus(db->conn) != CONNECTION_OK)
        return ag_err_set(err, AG_EUNAVAIL, "postgres: the connection is lost");
    if (PQtransactionStatus(db->conn) == PQTRANS_INERROR) {
        PQclear(PQexec(db->conn, "ROLLBACK"));
        return ag_err_set(err, AG_EINVAL,
                          "postgres: a statement failed in the transaction; it was rolled back");
    }
    rc = pg_simple(db, "COMMIT", "COMMIT", err);
    if (db->lost_in_tx) {
        db->lost_in_tx = false; /* lost during COMMIT: the outcome is unknown, the tx is over */
        if (err)
            ag_err_set(err, AG_EUNAVAIL,
                       "postgres: the connection was lost during COMMIT; the outcome is unknown");
        return AG_EUNAVAIL;
    }
    if (rc < 0 && tx_open_now(db))
        PQclear(PQexec(db->conn, "ROLLBACK"));
    return rc;
}

int kit_db_pg_rollback(struct kit_db_pg *db)
{
    if (db->lost_in_tx) {
        db->lost_in_tx = false; /* the next call reconnects */
        return 0;
    }
    if (!tx_open_now(db))
        return 0;
    return pg_simple(db, "ROLLBACK", "ROLLBACK", NULL);
}
