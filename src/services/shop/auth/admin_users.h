/* The admin API over users: search, read, update, delete, grant and revoke roles. */
#ifndef AUTH_ADMIN_USERS_H
#define AUTH_ADMIN_USERS_H

#include "kit/kit.h"

/* GET /api/v1/auth/users?q=&page=&per_page= */
int auth_users_list(struct kit_req *req);
/* GET /api/v1/auth/users/{id} */
int auth_user_get(struct kit_req *req);
/* PATCH /api/v1/auth/users/{id} */
int auth_user_patch(struct kit_req *req);
/* DELETE /api/v1/auth/users/{id} */
int auth_user_delete(struct kit_req *req);
/* POST /api/v1/auth/users/{id}/roles */
int auth_user_role_add(struct kit_req *req);
/* DELETE /api/v1/auth/users/{id}/roles/{role} */
int auth_user_role_remove(struct kit_req *req);

#endif
