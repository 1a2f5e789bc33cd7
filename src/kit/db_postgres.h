/* The PostgreSQL driver of the database port (kit/db.h): one libpq connection, cached statements.
 */
#ifndef KIT_DB_POSTGRES_H
#define KIT_DB_POSTGRES_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "kit/db.h"

struct kit_db_pg;

/*
 * Connects with conninfo, a postgres:// URL (passed to libpq as given, so every libpq URL
 * parameter works); connect_timeout=5 and client_encoding=UTF8 are added when absent.
 * secret (may be NULL) is the URL's password: it is scrubbed from every message put in err.
 * Returns 0 and *out, AG_EINVAL for a URL libpq cannot parse, AG_EUNAVAIL when the server
 * cannot be reached or refuses the login, AG_ENOMEM.
 */
int kit_db_pg_open(const char *conninfo, const char *secret, struct kit_db_pg **out,
                   struct ag_err *err);

/* Rolls back an open transaction, closes the connection, frees. NULL allowed. */
void kit_db_pg_close(struct kit_db_pg *db);

/*
 * Runs one statement (kit_db_exec/kit_db_query's contract): each SQL text is prepared once per
 * connection as a named statement (an LRU of 64), then executed with text parameters. With
 * rows NULL returns the rows changed, else reads up to max_rows rows into *rows and returns
 * their number. Codes: AG_ECONFLICT (SQLSTATE class 23), AG_EUNAVAIL (40001, 40P01, 55P03,
 * class 57, class 08, connection lost; lost outside a transaction, the next call reconnects),
 * AG_ERANGE (too many rows), AG_EINVAL (any other SQL error, $N not given or given and unused,
 * a text parameter with a NUL byte), AG_ENOMEM.
 */
int kit_db_pg_run(struct kit_db_pg *db, const char *sql, const struct kit_db_value *params,
                  size_t count, size_t max_rows, struct kit_db_rows **rows, struct ag_err *err);

/* Runs text holding any number of statements, without parameters (migrations). Codes as run. */
int kit_db_pg_script(struct kit_db_pg *db, const char *sql, struct ag_err *err);

/* BEGIN; AG_EINVAL when a transaction is open. Codes as run. */
int kit_db_pg_begin(struct kit_db_pg *db, struct ag_err *err);
/*
 * COMMIT. A transaction in which a statement failed is rolled back and AG_EINVAL returned
 * (PostgreSQL would answer COMMIT with ROLLBACK). The transaction is over afterwards, whatever
 * the outcome. Codes as run.
 */
int kit_db_pg_commit(struct kit_db_pg *db, struct ag_err *err);
/* ROLLBACK when a transaction is open (or was lost with the connection); 0 or a code of run. */
int kit_db_pg_rollback(struct kit_db_pg *db);
/* True while a transaction is open, or was open when the connection was lost. */
bool kit_db_pg_in_transaction(const struct kit_db_pg *db);
/* True when a statement failed in the open transaction (only a rollback is accepted now). */
bool kit_db_pg_tx_failed(const struct kit_db_pg *db);

#endif
