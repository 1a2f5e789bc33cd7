/* Users: the user object, registration and GET /me. */
#ifndef AUTH_USERS_H
#define AUTH_USERS_H

#include <jansson.h>
#include <stdbool.h>

#include "core/err.h"
#include "kit/db.h"
#include "kit/kit.h"

/*
 * Reads the user id of tenant as the API's user object {"id","email","name","roles",
 * "disabled","created_at","updated_at"} (roles sorted by name); with_permissions adds
 * "permissions" (sorted, unique, from every role). One query. Returns 0 and *out (a new
 * reference; NULL when there is no such user), or the codes of kit_db_query.
 */
int auth_user_load(struct kit_db *db, const char *tenant, const char *id, bool with_permissions,
                   json_t **out, struct ag_err *err);

/*
 * Builds an array of user objects from rows whose columns are id, email, name, disabled,
 * created_at, updated_at, role name (NULL when none), sorted by user then role name.
 * Returns a new array, or NULL when out of memory.
 */
json_t *auth_users_from_rows(const struct kit_db_rows *rows);

/* POST /api/v1/auth/register */
int auth_register(struct kit_req *req);
/* GET /api/v1/auth/me */
int auth_me(struct kit_req *req);

#endif
