/* auth's events on the bus (docs/events.md), each emitted inside the change's transaction. */
#ifndef AUTH_EVENTS_H
#define AUTH_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "kit/db.h"

/*
 * Emits auth.user.<action> ("created" or "updated") for user_id of tenant, on db inside a
 * transaction, after the change: data is the user as the API shows it (id, email, name,
 * roles, disabled, created_at, updated_at), plus "changed" (the names in changed[0..n)) when
 * changed is not NULL ("updated"). Never a password or its hash. Returns 0, AG_ENOTFOUND when the
 * user is not there, or the codes of kit_event_emit.
 */
int auth_event_user(struct kit_db *db, const char *action, const char *tenant, const char *user_id,
                    const char *const *changed, size_t n, struct ag_err *err);

/*
 * Emits auth.password_reset.requested: user_id, email, expires_at (RFC 3339). Never the token:
 * a consumer that mails it gets it from auth, not from a log every service reads.
 */
int auth_event_password_reset(struct kit_db *db, const char *tenant, const char *user_id,
                              const char *email, int64_t expires_at_ms, struct ag_err *err);

#endif
