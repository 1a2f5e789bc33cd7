/* Roles: the admin API over roles and their permissions (per tenant; three are builtin). */
#ifndef AUTH_ROLES_H
#define AUTH_ROLES_H

#include "kit/kit.h"

/* GET /api/v1/auth/roles */
int auth_roles_list(struct kit_req *req);
/* POST /api/v1/auth/roles */
int auth_role_create(struct kit_req *req);
/* GET /api/v1/auth/roles/{id} */
int auth_role_get(struct kit_req *req);
/* PUT /api/v1/auth/roles/{id} */
int auth_role_update(struct kit_req *req);
/* DELETE /api/v1/auth/roles/{id} */
int auth_role_delete(struct kit_req *req);
/* POST /api/v1/auth/roles/{id}/permissions */
int auth_role_add_permissions(struct kit_req *req);

#endif
