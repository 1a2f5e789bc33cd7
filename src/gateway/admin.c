/* The admin port: health, readiness, metrics, the route table and reloads; never public. */
#include "gateway/admin.h"

#include <string.h>
#include <time.h>

#include "core/json.h"
#include "core/loop.h"
#include "gateway/gateway.h"
#include "gateway/reload.h"
#include "core/banned.h"

enum { ADMIN_BODY_MAX = 16 * 1024 * 1024 };

static bool is(const struct ag_http_request *req, const char *method, const char *path)
{
    return ag_str_eq(req->path, ag_str_from_cstr(path)) &&
           (ag_str_eq(req->method, ag_str_from_cstr(method)) ||
            (strcmp(method, "GET") == 0 && ag_str_eq(req->method, AG_STR("HEAD"))));
}

static void respond_buf(struct ag_http_exchange *ex, int status, const char *type, struct ag_buf *b)
{
    ag_http_respond(ex, status, type, b->data + b->off, b->len);
    ag_buf_release(b);
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void admin_metrics(struct ag_http_exchange *ex, struct gw_gateway *gw)
{
    struct gw_snapshot *snap = gw_gateway_snapshot(gw);
    gw_snapshot_update_gauges(snap, monotonic_ms());
    gw_snapshot_unref(snap);
    if (gw->server)
        ag_gauge_set(gw->connections, (double)ag_http_server_connections(gw->server));
    struct ag_buf b;
    ag_buf_init(&b, ADMIN_BODY_MAX);
    if (ag_metrics_render(gw->metrics, &b) < 0) {
        ag_buf_release(&b);
        ag_http_respond_problem(ex, 500, "the metrics could not be rendered");
        return;
    }
    respond_buf(ex, 200, "text/plain; version=0.0.4", &b);
}

static void append_strings(struct ag_buf *b, char **items, size_t n)
{
    ag_buf_append(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i)
            ag_buf_append(b, ",", 1);
        ag_json_append_string(b, ag_str_from_cstr(items[i]));
    }
    ag_buf_append(b, "]", 1);
}

static void admin_routes(struct ag_http_exchange *ex, struct gw_gateway *gw)
{
    static const char *const auth[] = {"none", "optional", "required"};
    struct gw_snapshot *snap = gw_gateway_snapshot(gw);
    struct ag_buf b;
    ag_buf_init(&b, ADMIN_BODY_MAX);
    ag_buf_appendf(&b, "{\"generation\":%llu,\"routes\":[", (unsigned long long)snap->generation);
    for (size_t i = 0; i < snap->route_count; i++) {
        const struct gw_route_conf *r = snap->routes[i].conf;
        ag_buf_appendf(&b, "%s{\"name\":", i ? "," : "");
        ag_json_append_string(&b, ag_str_from_cstr(r->name));
        ag_buf_appendf(&b, ",\"host\":");
        ag_json_append_string(&b, ag_str_from_cstr(r->match.host));
        ag_buf_appendf(&b, ",\"path\":");
        ag_json_append_string(&b, ag_str_from_cstr(r->match.path));
        ag_buf_appendf(&b, ",\"prefix\":%s,\"methods\":", r->match.prefix ? "true" : "false");
        append_strings(&b, r->match.methods, r->match.method_count);
        ag_buf_appendf(&b, ",\"upstream\":");
        ag_json_append_string(&b, ag_str_from_cstr(r->upstream));
        ag_buf_appendf(&b, ",\"auth\":\"%s\",\"roles\":", auth[r->auth]);
        append_strings(&b, r->roles, r->role_count);
        ag_buf_appendf(&b, ",\"rate_limited\":%s,\"cors\":%s}",
                       r->rate_limit.rate ? "true" : "false",
                       r->cors.origin_count ? "true" : "false");
    }
    ag_buf_appendf(&b, "]}");
    gw_snapshot_unref(snap);
    respond_buf(ex, 200, "application/json", &b);
}

static void admin_reload(struct ag_http_exchange *ex, struct gw_gateway *gw)
{
    struct ag_err err = {0};
    if (gw_reload(gw, &err) < 0) {
        ag_http_respond_problem(ex, 422, err.msg);
        return;
    }
    struct gw_snapshot *snap = gw_gateway_snapshot(gw);
    struct ag_buf b;
    ag_buf_init(&b, 4096);
    ag_buf_appendf(&b, "{\"status\":\"reloaded\",\"generation\":%llu,\"routes\":%zu}",
                   (unsigned long long)snap->generation, snap->route_count);
    gw_snapshot_unref(snap);
    respond_buf(ex, 200, "application/json", &b);
}

static void admin_on_request(struct ag_http_exchange *ex)
{
    struct gw_gateway *gw = ag_http_exchange_ctx(ex);
    const struct ag_http_request *req = ag_http_exchange_request(ex);
    static const char ok[] = "{\"status\":\"ok\"}";
    if (is(req, "GET", "/healthz")) {
        ag_http_respond(ex, 200, "application/json", ok, sizeof ok - 1);
    } else if (is(req, "GET", "/readyz")) {
        struct gw_snapshot *snap = gw_gateway_snapshot(gw);
        bool ready = gw_snapshot_ready(snap);
        gw_snapshot_unref(snap);
        if (ready)
            ag_http_respond(ex, 200, "application/json", ok, sizeof ok - 1);
        else
            ag_http_respond_problem(ex, 503, "an issuer's signing keys are not loaded yet");
    } else if (is(req, "GET", "/metrics")) {
        admin_metrics(ex, gw);
    } else if (is(req, "GET", "/routes")) {
        admin_routes(ex, gw);
    } else if (is(req, "POST", "/reload")) {
        admin_reload(ex, gw);
    } else {
        static const char *const paths[] = {"/healthz", "/readyz", "/metrics", "/routes",
                                            "/reload"};
        for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
            if (ag_str_eq(req->path, ag_str_from_cstr(paths[i]))) {
                struct ag_http_header allow = {AG_STR("Allow"),
                                               i == 4 ? AG_STR("POST") : AG_STR("GET, HEAD")};
                ag_http_respond_problem_with(
                    ex, 405, "the admin endpoint does not take this method", &allow, 1);
                return;
            }
        }
        ag_http_respond_problem(ex, 404,
                                "admin endpoints: /healthz /readyz /metrics /routes /reload");
    }
}

const struct ag_http_handler gw_admin_handler = {
    .on_request = admin_on_request,
};
