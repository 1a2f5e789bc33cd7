/*
 * agora-bus-probe: a test consumer of the event bus. It subscribes to AGORA_PROBE_PATTERN and
 * records every delivery it applies in probe_effects, in the kit's delivery transaction, so the
 * bus tests can check that each event took effect exactly once (effects vs. inbox vs. the
 * publisher's outbox). While the file AGORA_PROBE_FAIL_FILE exists, every delivery fails (to
 * test retries, dead events and `agora events replay`). POST /probe/emit {"count", "batch"}
 * publishes count events of type probe.bench.emitted, batch per transaction (bench/bus.py).
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "kit/bus.h"
#include "kit/db.h"
#include "kit/kit.h"
#include "core/banned.h"

static const char *fail_file;

static int on_event(struct kit_app *app, struct kit_db *tx, const struct kit_event *ev,
                    struct ag_err *err)
{
    (void)app;
    if (fail_file && *fail_file && access(fail_file, F_OK) == 0)
        return ag_err_set(err, AG_EINVAL, "the probe was asked to fail (%s exists)", fail_file);
    int rc = kit_db_exec(tx,
                         "INSERT INTO probe_effects (event_id, type, subject, tenant, event_ms, "
                         "applied_at) VALUES ($1, $2, $3, $4, $5, $6)",
                         KIT_DB_PARAMS(KIT_DB_TEXT(ev->id), KIT_DB_TEXT(ev->type),
                                       KIT_DB_TEXT(ev->subject), KIT_DB_TEXT(ev->tenant),
                                       KIT_DB_INT(ev->time_ms), KIT_DB_INT(kit_now_ms())),
                         err);
    return rc < 0 ? rc : 0;
}

/* POST /probe/emit {"count": 1..1000000, "batch": 1..10000}: emits count events, batch each. */
static int probe_emit(struct kit_req *req)
{
    static const struct kit_field fields[] = {
        {"count", JSON_INTEGER, true, 0, 0, 1, 1000000},
        {"batch", JSON_INTEGER, false, 0, 0, 1, 10000},
    };
    struct kit_db *db = kit_req_db(req);
    struct ag_err err = {0};
    json_t *body = NULL;
    int rc = kit_req_json(req, &body);

    if (rc < 0)
        return rc;
    if (kit_req_fields(req, body, fields, sizeof fields / sizeof fields[0]) > 0)
        return kit_resp_invalid(req);
    json_int_t count = json_integer_value(json_object_get(body, "count"));
    json_t *batch_json = json_object_get(body, "batch");
    json_int_t batch = batch_json ? json_integer_value(batch_json) : 100;
    for (json_int_t done = 0; done < count;) {
        rc = kit_db_begin(db, &err);
        for (json_int_t i = 0; rc == 0 && i < batch && done < count; i++, done++) {
            char subject[32];
            snprintf(subject, sizeof subject, "%lld", (long long)done);
            json_t *data = json_pack("{sI}", "n", (json_int_t)done);
            rc = data ? kit_event_emit(db, "probe.bench.emitted", subject, data, &err) : AG_ENOMEM;
            json_decref(data);
        }
        if (rc == 0)
            rc = kit_db_commit(db, &err);
        if (rc < 0)
            return kit_req_db_fail(req, rc, &err);
    }
    return kit_resp_json(req, 200, json_pack("{sI}", "emitted", count));
}

static const struct kit_route routes[] = {
    {"POST", "/probe/emit", probe_emit, KIT_ROLE("admin"), NULL},
};

static const struct kit_setting settings[] = {
    {"AGORA_PROBE_PATTERN", "#", "the topic pattern subscribed to"},
    {"AGORA_PROBE_FAIL_FILE", NULL, "every delivery fails while this file exists"},
};

static struct kit_subscription subscriptions[] = {
    {"#", on_event},
};

static const struct kit_service service = {
    .name = "bus-probe",
    .summary = "Agora test consumer: records each event it applies (bus tests)",
    .routes = routes,
    .route_count = sizeof routes / sizeof routes[0],
    .migrations = kit_embedded_migrations,
    .settings = settings,
    .setting_count = sizeof settings / sizeof settings[0],
    .subscriptions = subscriptions,
    .subscription_count = sizeof subscriptions / sizeof subscriptions[0],
};

int main(int argc, char **argv)
{
    struct kit_service svc = service;
    const char *pattern = getenv("AGORA_PROBE_PATTERN");

    svc.migration_count = kit_embedded_migration_count;
    if (pattern && *pattern)
        subscriptions[0].pattern = pattern;
    fail_file = getenv("AGORA_PROBE_FAIL_FILE");
    return kit_main(&svc, argc, argv);
}
