/* Sessions: login (with lockout), refresh-token rotation with reuse detection, logout. */
#ifndef AUTH_SESSIONS_H
#define AUTH_SESSIONS_H

#include "core/err.h"
#include "kit/db.h"
#include "kit/kit.h"

/* POST /api/v1/auth/login */
int auth_login(struct kit_req *req);
/* POST /api/v1/auth/refresh */
int auth_refresh(struct kit_req *req);
/* POST /api/v1/auth/logout */
int auth_logout(struct kit_req *req);

/*
 * Revokes every refresh family of user_id (password change or reset, disabling). Run inside the
 * change's transaction. Returns 0 or the codes of kit_db_exec.
 */
int auth_sessions_revoke_user(struct kit_db *db, const char *user_id, struct ag_err *err);

#endif
