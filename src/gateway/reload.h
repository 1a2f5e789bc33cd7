/* Configuration reloads: load, check what may change, build the snapshot, publish it. */
#ifndef GW_RELOAD_H
#define GW_RELOAD_H

#include "core/err.h"
#include "gateway/gateway.h"

/*
 * Reads gw->config_path again and, when it loads and builds, publishes the new snapshot: new
 * requests use it, requests in flight end on the old one. Serialised (SIGHUP and POST /reload
 * may race). Settings bound at start (listen, admin_listen, workers, limits, access_log,
 * rate_limit_store, rate_limit_fail, rate_limit_timeout_ms, rate_limit_max_keys,
 * auth.cache_entries) must not change: that is refused with a message
 * naming the key. Returns 0, or a negative code with err saying why; the old configuration then
 * keeps serving.
 */
int gw_reload(struct gw_gateway *gw, struct ag_err *err);

#endif
