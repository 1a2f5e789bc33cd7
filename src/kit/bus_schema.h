/* The bus's tables in a service's own database: outbox, inbox, dead_events, bus_positions. */
#ifndef KIT_BUS_SCHEMA_H
#define KIT_BUS_SCHEMA_H

#include "core/err.h"

struct kit_db;

/*
 * Creates the bus tables and indexes when missing (CREATE ... IF NOT EXISTS), in one
 * transaction on db, which must not be in one. Concurrent starts of several processes on one
 * PostgreSQL database are serialised by an advisory lock. Returns 0 or the codes of
 * kit_db_exec (err says which statement failed).
 */
int kit_bus_schema_create(struct kit_db *db, struct ag_err *err);

/*
 * Creates only bus_positions when missing (the local driver's positions), outside any
 * transaction or inside the caller's. Returns 0 or the codes of kit_db_exec.
 */
int kit_bus_schema_positions(struct kit_db *db, struct ag_err *err);

#endif
