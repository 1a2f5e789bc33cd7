/* auth's events on the bus (docs/events.md), each emitted inside the change's transaction. */
#include "events.h"

#include <stdio.h>

#include "kit/bus.h"
#include "kit/kit.h"
#include "users.h"
#include "core/banned.h"

int auth_event_user(struct kit_db *db, const char *action, const char *tenant, const char *user_id,
                    const char *const *changed, size_t n, struct ag_err *err)
{
    json_t *user = NULL;
    char type[64];
    int rc = auth_user_load(db, tenant, user_id, false, &user, err);
    if (rc < 0)
        return rc;
    if (!user)
        return ag_err_set(err, AG_ENOTFOUND, "user %s vanished inside its transaction", user_id);
    if (changed) {
        json_t *list = json_array();
        for (size_t i = 0; list && i < n; i++)
            json_array_append_new(list, json_string(changed[i]));
        if (!list || json_object_set_new(user, "changed", list) < 0) {
            json_decref(user);
            return ag_err_set(err, AG_ENOMEM, "out of memory building an event");
        }
    }
    snprintf(type, sizeof type, "auth.user.%s", action);
    /* the row's tenant, whatever the caller's context says */
    rc = kit_db_event_context(db, tenant, NULL);
    if (rc == 0)
        rc = kit_event_emit(db, type, user_id, user, err);
    else
        ag_err_set(err, rc, "out of memory setting the event context");
    json_decref(user);
    return rc;
}

int auth_event_password_reset(struct kit_db *db, const char *tenant, const char *user_id,
                              const char *email, int64_t expires_at_ms, struct ag_err *err)
{
    char expires[32];
    kit_time_rfc3339(expires_at_ms, expires);
    json_t *data =
        json_pack("{s:s, s:s, s:s}", "user_id", user_id, "email", email, "expires_at", expires);
    if (!data)
        return ag_err_set(err, AG_ENOMEM, "out of memory building an event");
    int rc = kit_db_event_context(db, tenant, NULL);
    if (rc == 0)
        rc = kit_event_emit(db, "auth.password_reset.requested", user_id, data, err);
    else
        ag_err_set(err, rc, "out of memory setting the event context");
    json_decref(data);
    return rc;
}
