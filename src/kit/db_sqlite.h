/* The SQLite driver of the database port (kit/db.h): one sqlite3 connection and its statements. */
#ifndef KIT_DB_SQLITE_H
#define KIT_DB_SQLITE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "kit/db.h"

struct kit_db_sqlite;

/*
 * Opens path (":memory:" for a private in-memory database), creating its parent directories
 * (mode 0700) and the file. Sets WAL, synchronous=FULL, busy_timeout 5000 ms, foreign_keys=ON.
 * The connection is opened without SQLite's mutex: one thread uses it at a time.
 * Returns 0 and *out, AG_EUNAVAIL when the directory or file cannot be made or opened, AG_ENOMEM.
 */
int kit_db_sqlite_open(const char *path, struct kit_db_sqlite **out, struct ag_err *err);

/* Rolls back an open transaction, finalises every cached statement and closes. NULL allowed. */
void kit_db_sqlite_close(struct kit_db_sqlite *db);

/*
 * Runs one statement with params bound to its $N names (kit_db_exec/kit_db_query's contract).
 * With rows NULL the result rows are stepped over and the number of rows changed is returned;
 * otherwise up to max_rows rows (> 0) are read into *rows and their number returned.
 * Returns AG_EINVAL for an SQL error, several statements, a $N not given, a parameter given but
 * never named, a name that is not $N or a text parameter holding a NUL byte; AG_ECONFLICT for a
 * constraint violation; AG_EUNAVAIL for SQLITE_BUSY/LOCKED; AG_ERANGE for too many rows;
 * AG_ENOMEM.
 */
int kit_db_sqlite_run(struct kit_db_sqlite *db, const char *sql, const struct kit_db_value *params,
                      size_t count, size_t max_rows, struct kit_db_rows **rows, struct ag_err *err);

/* Runs text holding any number of statements, without parameters (migrations). Codes as run. */
int kit_db_sqlite_script(struct kit_db_sqlite *db, const char *sql, struct ag_err *err);

/* True while a transaction is open (SQLite's own view: a failed COMMIT may leave it open). */
bool kit_db_sqlite_in_transaction(const struct kit_db_sqlite *db);

#endif
