/* The bus's tables in a service's own database: outbox, inbox, dead_events, bus_positions. */
#include "kit/bus_schema.h"

#include "kit/db.h"
#include "core/banned.h"

/*
 * outbox.seq orders the relay's work: an autoincrement on SQLite (never reused, even after the
 * relay deletes old rows), a BIGSERIAL on PostgreSQL. Every other statement is shared.
 * The partial index makes "the pending rows, in seq order" cheap whatever the sent history.
 */
static const char outbox_sqlite[] =
    "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, subject TEXT NOT NULL, tenant TEXT NOT NULL, "
    "created_at BIGINT NOT NULL, envelope TEXT NOT NULL, sent_at BIGINT)";
static const char outbox_postgres[] =
    "CREATE TABLE IF NOT EXISTS outbox (seq BIGSERIAL PRIMARY KEY, "
    "id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, subject TEXT NOT NULL, tenant TEXT NOT NULL, "
    "created_at BIGINT NOT NULL, envelope TEXT NOT NULL, sent_at BIGINT)";

static const char positions_sql[] =
    "CREATE TABLE IF NOT EXISTS bus_positions (log TEXT PRIMARY KEY, seq BIGINT NOT NULL)";

static const char *const shared_sql[] = {
    "CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq) WHERE sent_at IS NULL",
    "CREATE INDEX IF NOT EXISTS outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS inbox (event_id TEXT PRIMARY KEY, type TEXT NOT NULL, "
    "source TEXT NOT NULL, received_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dead_events (event_id TEXT PRIMARY KEY, type TEXT NOT NULL, "
    "subject TEXT NOT NULL, source TEXT NOT NULL, tenant TEXT NOT NULL, envelope TEXT NOT NULL, "
    "attempts INTEGER NOT NULL, error TEXT NOT NULL, failed_at BIGINT NOT NULL, "
    "replay_requested INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS dead_events_replay ON dead_events (failed_at) "
    "WHERE replay_requested = 1",
    positions_sql,
};

/* An arbitrary constant naming the lock "the bus schema" among the advisory locks. */
enum { SCHEMA_LOCK_KEY = 0x61627573 /* "abus" */ };

int kit_bus_schema_create(struct kit_db *db, struct ag_err *err)
{
    int rc = kit_db_begin(db, err);
    if (rc < 0)
        return rc;
    bool pg = kit_db_driver(db) == KIT_DB_POSTGRES;
    if (pg) {
        /* two services starting at once would both try to create the same types */
        struct kit_db_rows *rows = NULL;
        rc = kit_db_query(db, "SELECT pg_advisory_xact_lock($1)",
                          KIT_DB_PARAMS(KIT_DB_INT(SCHEMA_LOCK_KEY)), 1, &rows, err);
        kit_db_rows_free(rows);
        if (rc < 0)
            goto out;
    }
    rc = kit_db_exec(db, pg ? outbox_postgres : outbox_sqlite, NULL, 0, err);
    for (size_t i = 0; rc >= 0 && i < sizeof shared_sql / sizeof shared_sql[0]; i++)
        rc = kit_db_exec(db, shared_sql[i], NULL, 0, err);
    if (rc >= 0)
        rc = kit_db_commit(db, err);
out:
    if (rc < 0)
        kit_db_rollback(db);
    return rc < 0 ? rc : 0;
}

int kit_bus_schema_positions(struct kit_db *db, struct ag_err *err)
{
    int rc = kit_db_exec(db, positions_sql, NULL, 0, err);
    return rc < 0 ? rc : 0;
}
