/* The admin port: health, readiness, metrics, the route table and reloads; never public. */
#ifndef GW_ADMIN_H
#define GW_ADMIN_H

#include "core/http_server.h"

/* The handler of the admin server; its ctx is the struct gw_gateway. */
extern const struct ag_http_handler gw_admin_handler;

#endif
