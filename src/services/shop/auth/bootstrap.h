/* First start: the builtin roles of the default tenant and the first admin account. */
#ifndef AUTH_BOOTSTRAP_H
#define AUTH_BOOTSTRAP_H

#include "context.h"

/*
 * Creates the builtin roles of the default tenant that are missing (admin, support, customer
 * with their permissions; existing ones are left as they are), then, when the default tenant
 * has no admin, the first admin (roles admin and customer) from AGORA_ADMIN_EMAIL and
 * AGORA_ADMIN_PASSWORD, which default to admin@agora.local / agora-admin-dev-password in
 * development only. Runs on the start connection. Returns 0; AG_EINVAL for a malformed admin
 * e-mail or a password under 10 characters (err says which); a database code.
 */
int auth_bootstrap(struct kit_app *app, const struct auth_ctx *ctx, struct ag_err *err);

#endif
