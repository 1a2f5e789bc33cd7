/* The audit trail: one audit_log row per change that matters, in the change's transaction. */
#ifndef AUTH_AUDIT_H
#define AUTH_AUDIT_H

#include "core/err.h"
#include "kit/db.h"

/*
 * Appends an audit row: tenant, actor (the acting user id; NULL for anonymous or the system),
 * action ("user.registered", "login.locked", ...), target (the user or role id, or the
 * normalised e-mail; may be NULL) and detail (a JSON text, may be NULL). Run it inside the
 * transaction of the change it records. Returns 0 or the codes of kit_db_exec.
 */
int auth_audit(struct kit_db *db, const char *tenant, const char *actor, const char *action,
               const char *target, const char *detail, struct ag_err *err);

#endif
