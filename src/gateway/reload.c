/* Configuration reloads: load, check what may change, build the snapshot, publish it. */
#include "gateway/reload.h"

#include <pthread.h>
#include <string.h>

#include "core/log.h"
#include "core/banned.h"

static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;

static bool str_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Names the first setting bound at start that differs, or NULL. */
static const char *fixed_setting_changed(const struct gw_config *old, const struct gw_config *new)
{
    if (!str_same(old->listen, new->listen))
        return "listen";
    if (!str_same(old->admin_listen, new->admin_listen))
        return "admin_listen";
    if (old->workers != new->workers)
        return "workers";
    if (memcmp(&old->limits, &new->limits, sizeof old->limits) != 0)
        return "limits";
    if (!str_same(old->access_log, new->access_log))
        return "access_log";
    if (!str_same(old->rate_limit_store, new->rate_limit_store))
        return "rate_limit_store";
    if (old->rate_limit_fail != new->rate_limit_fail)
        return "rate_limit_fail";
    if (old->rate_limit_timeout_ms != new->rate_limit_timeout_ms)
        return "rate_limit_timeout_ms";
    if (old->rate_limit_max_keys != new->rate_limit_max_keys)
        return "rate_limit_max_keys";
    if (old->auth.cache_entries != new->auth.cache_entries)
        return "auth.cache_entries";
    return NULL;
}

static int reload_locked(struct gw_gateway *gw, struct ag_err *err)
{
    struct gw_config cfg;
    int rc = gw_config_load(&cfg, gw->config_path, err);
    if (rc < 0)
        return rc;
    struct gw_snapshot *old = gw_gateway_snapshot(gw);
    const char *changed = fixed_setting_changed(&old->cfg, &cfg);
    uint64_t generation = old->generation + 1;
    gw_snapshot_unref(old);
    if (changed) {
        gw_config_release(&cfg);
        return ag_err_set(err, AG_EINVAL,
                          "%s: %s cannot change on reload; restart the gateway to change it",
                          gw->config_path, changed);
    }
    struct gw_snapshot *snap;
    rc = gw_snapshot_new(&cfg, gw->config_path, generation, gw->metrics, &snap, err);
    if (rc < 0)
        return rc;
    gw_gateway_publish(gw, snap);
    ag_log_set_level((enum ag_log_level)snap->cfg.log_level);
    ag_log_info("configuration reloaded", AG_F_STR("config", gw->config_path),
                AG_F_UINT("generation", generation), AG_F_UINT("routes", snap->route_count),
                AG_F_UINT("upstreams", snap->upstream_count));
    return 0;
}

int gw_reload(struct gw_gateway *gw, struct ag_err *err)
{
    pthread_mutex_lock(&reload_lock);
    int rc = reload_locked(gw, err);
    pthread_mutex_unlock(&reload_lock);
    if (rc < 0) {
        ag_counter_inc(gw->reloads_failed);
        ag_log_error("configuration reload failed; the previous one keeps serving",
                     AG_F_STR("config", gw->config_path), AG_F_STR("error", err->msg));
    } else {
        ag_counter_inc(gw->reloads_ok);
    }
    return rc;
}
