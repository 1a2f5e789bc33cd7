/* Versioned migrations: the pending ones of a service applied in one transaction at start. */
#include "kit/db.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "kit/kit.h"

#include "core/banned.h"

/* The advisory lock key serialising concurrent migrations on PostgreSQL ("agora-mi"). */
#define MIGRATE_LOCK_KEY "7449415849575417"

static const char create_table_sql[] =
    "CREATE TABLE IF NOT EXISTS kit_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, "
    "applied_at TEXT NOT NULL)";

/* The text of m for the connection's driver, or NULL when it has none. */
static const char *migration_text(const struct kit_db *db, const struct kit_migration *m)
{
    const char *own = kit_db_driver(db) == KIT_DB_SQLITE ? m->sqlite : m->postgres;
    return own ? own : m->sql;
}

/* Checks the list before anything touches the database. */
static int check_list(const struct kit_db *db, const struct kit_migration *migrations, size_t count,
                      struct ag_err *err)
{
    if (count > 0 && !migrations)
        return ag_err_set(err, AG_EINVAL, "migrations: %zu announced but none given", count);
    for (size_t i = 0; i < count; i++) {
        const struct kit_migration *m = &migrations[i];
        const char *name = m->name ? m->name : "(unnamed)";
        if (m->version == 0)
            return ag_err_set(err, AG_EINVAL, "migration %s: versions start at 1", name);
        if (i > 0 && m->version <= migrations[i - 1].version)
            return ag_err_set(err, AG_EINVAL,
                              "migration %s: version %" PRIu32 " does not follow %" PRIu32
                              " (versions must strictly increase)",
                              name, m->version, migrations[i - 1].version);
        if (!m->name || !migration_text(db, m))
            return ag_err_set(
                err, AG_EINVAL, "migration %s (version %" PRIu32 ") has no %s", name, m->version,
                m->name
                    ? (kit_db_driver(db) == KIT_DB_SQLITE ? "SQL for SQLite" : "SQL for PostgreSQL")
                    : "name");
    }
    return 0;
}

/* Index of version in migrations, or count when absent (the list is sorted). */
static size_t find_version(const struct kit_migration *migrations, size_t count, int64_t version)
{
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((int64_t)migrations[mid].version == version)
            return mid;
        if ((int64_t)migrations[mid].version < version)
            lo = mid + 1;
        else
            hi = mid;
    }
    return count;
}

int kit_db_migrate(struct kit_db *db, const struct kit_migration *migrations, size_t count,
                   struct ag_err *err)
{
    int rc = 0, applied = 0;
    bool began = false;
    struct kit_db_rows *rows = NULL;
    bool *done = NULL;
    if (!db)
        return ag_err_set(err, AG_EINVAL, "migrations: no database connection");
    if ((rc = check_list(db, migrations, count, err)) < 0)
        return rc;
    if (count > 0 && !(done = calloc(count, sizeof *done)))
        return ag_err_set(err, AG_ENOMEM, "migrations: out of memory");
    /* BEGIN IMMEDIATE on SQLite: a second starting process waits here for the first. */
    if ((rc = kit_db_begin(db, err)) < 0)
        goto out;
    began = true;
    if (kit_db_driver(db) == KIT_DB_POSTGRES &&
        (rc = kit_db_exec(db, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")", NULL, 0, err)) <
            0)
        goto out;
    if ((rc = kit_db_exec(db, create_table_sql, NULL, 0, err)) < 0)
        goto out;
    if ((rc = kit_db_query(db, "SELECT version FROM kit_migrations ORDER BY version", NULL, 0, 0,
                           &rows, err)) < 0)
        goto out;
    for (size_t r = 0; r < kit_db_rows_count(rows); r++) {
        int64_t version = kit_db_rows_int(rows, r, 0);
        size_t i = find_version(migrations, count, version);
        if (i == count) {
            rc = ag_err_set(err, AG_EINVAL,
                            "the database records migration version %" PRId64
                            ", which this binary does not know (a newer binary migrated it)",
                            version);
            goto out;
        }
        done[i] = true;
    }
    char applied_at[AG_LOG_TS_LEN + 1];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    ag_log_format_ts(&now, applied_at);
    for (size_t i = 0; i < count; i++) {
        const struct kit_migration *m = &migrations[i];
        if (done[i])
            continue;
        if ((rc = kit_db_exec_script(db, migration_text(db, m), err)) < 0) {
            if (err) {
                struct ag_err inner = *err;
                ag_err_set(err, rc, "migration %s failed, nothing was applied: %s", m->name,
                           inner.msg);
            }
            goto out;
        }
        if ((rc = kit_db_exec(db,
                              "INSERT INTO kit_migrations (version, name, applied_at) "
                              "VALUES ($1, $2, $3)",
                              KIT_DB_PARAMS(KIT_DB_INT(m->version), KIT_DB_TEXT(m->name),
                                            KIT_DB_TEXTN(applied_at, strlen(applied_at))),
                              err)) < 0)
            goto out;
        applied++;
    }
    if ((rc = kit_db_commit(db, err)) < 0)
        goto out;
    /* Logged after the commit, so a line never claims a migration that was rolled back. */
    for (size_t i = 0; i < count; i++)
        if (!done[i])
            ag_log_info("migration applied", AG_F_UINT("version", migrations[i].version),
                        AG_F_STR("name", migrations[i].name),
                        AG_F_STR("database", kit_db_url_redacted(db)));
    rc = applied;
out:
    if (rc < 0 && began)
        kit_db_rollback(db);
    kit_db_rows_free(rows);
    free(done);
    return rc;
}

bool kit_db_migrated(struct kit_db *db, const struct kit_migration *migrations, size_t count)
{
    struct kit_db_rows *rows = NULL;
    bool ok = false;
    if (!db || (count > 0 && !migrations))
        return false;
    if (kit_db_query(db, "SELECT version FROM kit_migrations ORDER BY version", NULL, 0, 0, &rows,
                     NULL) < 0)
        goto out; /* no table: nothing was ever migrated */
    size_t r = 0, n = kit_db_rows_count(rows);
    for (size_t i = 0; i < count; i++) {
        while (r < n && kit_db_rows_int(rows, r, 0) < (int64_t)migrations[i].version)
            r++;
        if (r == n || kit_db_rows_int(rows, r, 0) != (int64_t)migrations[i].version)
            goto out;
    }
    ok = true;
out:
    kit_db_rows_free(rows);
    return ok;
}
