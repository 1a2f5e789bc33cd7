/* The database port: one connection to SQLite or PostgreSQL, chosen by URL; parameterised SQL only.
 */
#ifndef KIT_DB_H
#define KIT_DB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/err.h"

struct kit_db;      /* one connection; used by one thread at a time */
struct kit_db_rows; /* a query's result, read into memory */
struct kit_migration;

enum kit_db_driver { KIT_DB_SQLITE, KIT_DB_POSTGRES };

/*
 * A parameter. SQL text names parameters $1, $2... on both drivers (the SQLite driver binds
 * "$N" by name), so one statement serves both. Values are never spliced into SQL text.
 */
enum kit_db_type { KIT_DB_T_NULL, KIT_DB_T_INT, KIT_DB_T_TEXT, KIT_DB_T_DOUBLE };
struct kit_db_value {
    enum kit_db_type type;
    int64_t i;
    double d;
    const char *s; /* TEXT: bytes, not necessarily NUL-terminated */
    size_t len;
};
#define KIT_DB_NULL        ((struct kit_db_value){.type = KIT_DB_T_NULL})
#define KIT_DB_INT(v)      ((struct kit_db_value){.type = KIT_DB_T_INT, .i = (int64_t)(v)})
#define KIT_DB_DOUBLE(v)   ((struct kit_db_value){.type = KIT_DB_T_DOUBLE, .d = (v)})
#define KIT_DB_TEXTN(p, n) ((struct kit_db_value){.type = KIT_DB_T_TEXT, .s = (p), .len = (n)})
/*
 * A NUL-terminated string; NULL becomes SQL NULL. (A function, not `(p) ? ... : ...`: the test
 * of a literal or an array against NULL is a -Werror warning on gcc and clang.)
 */
static inline struct kit_db_value kit_db_text_value(const char *p)
{
    return p ? KIT_DB_TEXTN(p, strlen(p)) : KIT_DB_NULL;
}
#define KIT_DB_TEXT(p) kit_db_text_value(p)
/* An array literal and its length, for the params/count arguments below. */
#define KIT_DB_PARAMS(...)                                                                         \
    (const struct kit_db_value[]){__VA_ARGS__},                                                    \
        sizeof((const struct kit_db_value[]){__VA_ARGS__}) / sizeof(struct kit_db_value)

/*
 * Opens a connection. url:
 *   sqlite:PATH (relative to the working directory; parent directories are created) — WAL,
 *     synchronous=FULL, busy_timeout 5 s, foreign_keys=ON;
 *   sqlite::memory: — a private in-memory database (tests);
 *   postgres://user[:password]@host[:port]/dbname[?params] or postgresql://… — libpq;
 *     connect_timeout 5 s unless the URL sets one.
 * Returns 0 and *out; AG_EINVAL for an unknown scheme or a malformed URL (err says which),
 * AG_EUNAVAIL when the server cannot be reached or the file cannot be opened, AG_ENOMEM.
 * The password never appears in err.
 */
int kit_db_open(const char *url, struct kit_db **out, struct ag_err *err);
void kit_db_close(struct kit_db *db); /* NULL allowed; rolls back an open transaction */
enum kit_db_driver kit_db_driver(const struct kit_db *db);
/* The URL with any password replaced by "***", for logs. */
const char *kit_db_url_redacted(const struct kit_db *db);

/*
 * Runs one statement that returns no rows we want. Returns the number of rows changed (≥ 0),
 * or: AG_ECONFLICT for a unique, primary key, foreign key or check constraint violation;
 * AG_EUNAVAIL when the database is locked past the busy timeout, or the connection is lost
 * (the next call reconnects when no transaction was open); AG_EINVAL for an SQL error (a
 * bug: err holds the driver's message); AG_ENOMEM.
 */
int kit_db_exec(struct kit_db *db, const char *sql, const struct kit_db_value *params, size_t count,
                struct ag_err *err);

/*
 * Runs one statement and reads every row into memory (at most max_rows: AG_ERANGE beyond;
 * 0 means 100,000). Returns the number of rows (≥ 0) and *out (free with kit_db_rows_free,
 * even with 0 rows), or the codes of kit_db_exec.
 */
int kit_db_query(struct kit_db *db, const char *sql, const struct kit_db_value *params,
                 size_t count, size_t max_rows, struct kit_db_rows **out, struct ag_err *err);

size_t kit_db_rows_count(const struct kit_db_rows *rows);
size_t kit_db_rows_columns(const struct kit_db_rows *rows);
/* A column's name. */
const char *kit_db_rows_name(const struct kit_db_rows *rows, size_t col);
bool kit_db_rows_null(const struct kit_db_rows *rows, size_t row, size_t col);
/* A value as NUL-terminated text (integers in decimal; "" for NULL); *len may be NULL. */
const char *kit_db_rows_text(const struct kit_db_rows *rows, size_t row, size_t col, size_t *len);
/* A value as an integer (0 for NULL or text that is not an integer). PostgreSQL booleans read 1/0.
 */
int64_t kit_db_rows_int(const struct kit_db_rows *rows, size_t row, size_t col);
void kit_db_rows_free(struct kit_db_rows *rows); /* NULL allowed */
/* A text column as a JSON string (a new reference; "" for NULL). */
json_t *kit_db_rows_json_text(const struct kit_db_rows *rows, size_t row, size_t col);
/* A column of milliseconds since the epoch as an RFC 3339 JSON string (a new reference). */
json_t *kit_db_rows_json_time(const struct kit_db_rows *rows, size_t row, size_t col);

/*
 * Runs a query that yields one integer (COUNT(*), a flag) into *out (0 when there is no row).
 * Returns 0 or the codes of kit_db_query.
 */
int kit_db_query_int(struct kit_db *db, const char *sql, const struct kit_db_value *params,
                     size_t count, int64_t *out, struct ag_err *err);

/*
 * Transactions. begin takes the write lock at once on SQLite (BEGIN IMMEDIATE, so two writers
 * never deadlock on an upgrade); BEGIN on PostgreSQL (READ COMMITTED; use SELECT ... FOR UPDATE
 * where a read decides a write). No nesting: begin inside a transaction is AG_EINVAL.
 * rollback is harmless without a transaction. Same codes as kit_db_exec.
 */
int kit_db_begin(struct kit_db *db, struct ag_err *err);
int kit_db_commit(struct kit_db *db, struct ag_err *err);
int kit_db_rollback(struct kit_db *db);
bool kit_db_in_transaction(const struct kit_db *db);
/*
 * True when a statement failed inside the open transaction and the database now refuses
 * everything but a rollback (PostgreSQL; SQLite carries on after a failed statement, so never
 * there). Code that carries on after an error it tolerated must check this.
 */
bool kit_db_tx_failed(const struct kit_db *db);

/* True when a trivial query succeeds now (for /readyz). */
bool kit_db_ping(struct kit_db *db);

/*
 * Applies the migrations not yet recorded in the table kit_migrations (version, name,
 * applied_at), in version order, all in one transaction: a failure rolls every one of them
 * back and nothing changes (err names the migration and the driver's message). Concurrent
 * starts are serialised (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL).
 * Refuses (AG_EINVAL) versions that are not strictly increasing, and a database that records a
 * version this binary does not know (a newer binary migrated it). Returns the number applied.
 */
int kit_db_migrate(struct kit_db *db, const struct kit_migration *migrations, size_t count,
                   struct ag_err *err);
/* True when every migration is recorded (for /readyz). */
bool kit_db_migrated(struct kit_db *db, const struct kit_migration *migrations, size_t count);

/*
 * Added by the database port (for kit_db_migrate): runs text holding any number of statements,
 * without parameters, so nothing can be spliced into it. SQLite: sqlite3_exec; PostgreSQL:
 * PQexec (simple protocol). The text must not BEGIN or COMMIT itself. Returns 0 or the codes
 * of kit_db_exec (err holds the driver's message for the statement that failed).
 */
int kit_db_exec_script(struct kit_db *db, const char *sql, struct ag_err *err);

/*
 * ---- the event context, kept on the connection for the bus (kit-internal; see kit/bus.h) ----
 * kit_db_event_context (declared in kit/bus.h) sets the tenant and traceparent.
 */
struct kit_db_event_ctx {
    const char *tenant;      /* "default" when never set */
    const char *traceparent; /* "" when none */
    const char *source;      /* "agora/<service>"; "agora" when never set */
};
/* Sets the source of the events emitted on db ("agora/auth"; copied). 0, AG_EINVAL, AG_ENOMEM. */
int kit_db_event_source(struct kit_db *db, const char *source);
/* The context now; the strings live until the next change of it. */
void kit_db_event_context_get(const struct kit_db *db, struct kit_db_event_ctx *out);
/* Marks the open transaction as having emitted an event (kit_event_emit). */
void kit_db_event_mark(struct kit_db *db);
/*
 * Registers fn, called (on the committing thread, so it must be cheap and not block) after a
 * commit of a transaction that emitted events: the bus wakes its relay. NULL fn unregisters.
 */
void kit_db_on_event_commit(struct kit_db *db, void (*fn)(void *ctx), void *ctx);

#endif
