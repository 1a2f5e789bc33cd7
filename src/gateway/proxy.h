/* The public port's handler: route, check, limit, then stream the exchange to an upstream. */
#ifndef GW_PROXY_H
#define GW_PROXY_H

#include "gateway/gateway.h"

#endif
