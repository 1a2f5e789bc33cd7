/* The public port's handler: route, check, limit, then stream the exchange to an upstream. */
#include "gateway/proxy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/http_client.h"
#include "core/json.h"
#include "core/jwt_cache.h"
#include "core/log.h"
#include "gateway/gateway.h"
#include "core/keyring.h"
#include "gateway/proxy_headers.h"
#include "gateway/ratelimit.h"
#include "gateway/request_id.h"
#include "gateway/router.h"
#include "core/banned.h"

enum {
    REQ_CACHE_MAX = 256,      /* freed request states kept per worker */
    RETRY_BUDGET_CAP = 100,   /* retries saved up at most, per upstream and worker */
    RETRY_BUDGET_PER_S = 10,  /* retries a quiet upstream may always get per second */
    PATH_MAX_REWRITE = 16384, /* longest rewritten target */
};

struct gw_req {
    struct gw_req *next_free;
    struct gw_worker *w;
    struct gw_wsnap *ws;
    struct ag_http_exchange *ex;
    const struct gw_route *route;
    struct gw_upstream *up;
    struct ag_http_call *call;
    struct gw_rl_pending *rl_pending;
    int target;            /* index in the upstream's pool, -1 before a pick */
    uint64_t tried;        /* targets tried, one bit each */
    unsigned attempts;     /* sends so far */
    bool probe;            /* this request is the breaker's half-open probe */
    bool outcome_recorded; /* breaker and passive health told about the current send */
    bool responded;        /* the client's response has started */
    bool body_ended;       /* the client's body ended (last piece seen) */
    bool call_body;        /* the call streams a body */
    bool authed;           /* claims hold a verified token */
    bool has_rl;
    int status;
    uint64_t start_ns, upstream_ns;
    double upstream_ms;
    uint64_t bytes_in, bytes_out;
    size_t request_id_len, client_ip_len;
    struct ag_str authorization; /* the request's field, if any */
    unsigned authorizations;     /* Authorization fields in the request */
    bool has_cors_headers;
    char *target_buf;   /* a rewritten path, when the route rewrites */
    struct ag_str host; /* the request's host: the Host field, or an absolute target's authority */
    bool absolute;      /* the target was in absolute form: send its origin form upstream */
    /* Not zeroed for each request: written before read (ids at the start, rl when has_rl,
     * cors when has_cors_headers, claims when authed). */
    char request_id[GW_REQUEST_ID_MAX + 1];
    char traceparent[GW_TRACEPARENT_LEN + 1];
    char client_ip[48];
    struct gw_rl_decision rl;
    struct gw_cors_headers cors;
    struct ag_jwt_claims claims;
};

/* ---- time and small helpers ---- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool method_is(const struct ag_http_request *req, const char *m)
{
    return ag_str_eq(req->method, ag_str_from_cstr(m));
}

/* ---- request states ---- */

static struct gw_req *req_new(struct gw_worker *w)
{
    struct gw_req *r = w->free_reqs;
    if (r) {
        w->free_reqs = r->next_free;
        w->free_req_count--;
    } else {
        r = malloc(sizeof *r);
        if (!r)
            return NULL;
    }
    memset(r, 0, offsetof(struct gw_req, request_id)); /* the rest is written before read */
    r->w = w;
    r->target = -1;
    return r;
}

static void req_free(struct gw_req *r)
{
    struct gw_worker *w = r->w;
    free(r->target_buf);
    if (w->free_req_count < REQ_CACHE_MAX) {
        r->next_free = w->free_reqs;
        w->free_reqs = r;
        w->free_req_count++;
    } else {
        free(r);
    }
}

void gw_proxy_worker_release(struct gw_worker *w)
{
    while (w->free_reqs) {
        struct gw_req *r = w->free_reqs;
        w->free_reqs = r->next_free;
        free(r);
    }
    w->free_req_count = 0;
}

/* ---- responses made by the gateway ---- */

struct hdrs {
    struct ag_http_header h[GW_EXTRA_HEADERS + 8];
    size_t n;
    char hsts[40];
    char rl[3][24];
};

static void hdrs_put(struct hdrs *h, struct ag_http_header field)
{
    if (h->n < sizeof h->h / sizeof h->h[0] && field.value.len > 0)
        h->h[h->n++] = field;
}

static void hdrs_add(struct hdrs *h, const char *name, struct ag_str value)
{
    hdrs_put(h, (struct ag_http_header){ag_str_from_cstr(name), value});
}

/* The fields every response carries: request id, CORS, rate limit state. */
static void hdrs_common(struct gw_req *r, struct hdrs *h)
{
    hdrs_put(h, (struct ag_http_header){AG_STR("X-Request-Id"),
                                        (struct ag_str){r->request_id, r->request_id_len}});
    if (r->has_cors_headers)
        for (size_t i = 0; i < r->cors.count; i++)
            hdrs_put(h, r->cors.h[i]);
    if (r->has_rl && !r->rl.degraded) {
        hdrs_add(h, "RateLimit-Limit",
                 (struct ag_str){h->rl[0], ag_u64_dec(r->rl.limit, h->rl[0])});
        hdrs_add(h, "RateLimit-Remaining",
                 (struct ag_str){h->rl[1], ag_u64_dec(r->rl.remaining, h->rl[1])});
        hdrs_add(h, "RateLimit-Reset",
                 (struct ag_str){h->rl[2], ag_u64_dec(r->rl.reset_s, h->rl[2])});
    }
}

static const struct gw_security_conf *security(struct gw_req *r)
{
    return &r->ws->snap->cfg.security_headers;
}

/*
 * Answers with an RFC 9457 problem carrying the request id, plus extra fields (Allow,
 * WWW-Authenticate, Retry-After...). Nothing is sent if the response already started.
 */
static void respond_problem(struct gw_req *r, int status, const char *detail,
                            const struct ag_http_header *extra, size_t extra_count)
{
    if (r->responded)
        return;
    struct hdrs h;
    h.n = 0;
    hdrs_add(&h, "Content-Type", AG_STR("application/problem+json"));
    hdrs_common(r, &h);
    for (size_t i = 0; i < extra_count; i++)
        hdrs_put(&h, extra[i]);
    gw_security_headers(security(r), NULL, 0, false, h.h, &h.n, sizeof h.h / sizeof h.h[0], h.hsts);
    struct ag_buf b;
    ag_buf_init(&b, 4096);
    const char *title = ag_http_reason(status);
    ag_buf_appendf(&b, "{\"type\":\"about:blank\",\"title\":\"%s\",\"status\":%d", title, status);
    if (detail) {
        ag_buf_appendf(&b, ",\"detail\":");
        ag_json_append_string(&b, ag_str_from_cstr(detail));
    }
    ag_buf_appendf(&b, ",\"request_id\":\"%s\"}", r->request_id);
    r->responded = true;
    r->status = status;
    r->bytes_out = b.len;
    if (ag_http_response_start(r->ex, status, h.h, h.n, (int64_t)b.len) == 0) {
        ag_http_response_write(r->ex, b.data + b.off, b.len);
        ag_http_response_end(r->ex);
    }
    ag_buf_release(&b);
}

static void respond_simple(struct gw_req *r, int status, const char *detail)
{
    respond_problem(r, status, detail, NULL, 0);
}

/* ---- the upstream call ---- */

static void send_upstream(struct gw_req *r);

static void call_on_response(struct ag_http_call *call, const struct ag_http_response *resp);
static void call_on_body(struct ag_http_call *call, struct ag_str data, bool last);
static void call_on_drain(struct ag_http_call *call);
static void call_on_error(struct ag_http_call *call, int code, const char *message);

static const struct ag_http_call_ops call_ops = {
    .on_response = call_on_response,
    .on_body = call_on_body,
    .on_drain = call_on_drain,
    .on_error = call_on_error,
};

/* Tells the breaker and the target's passive health how the current send went, once. */
static void record_outcome(struct gw_req *r, bool failure)
{
    if (r->outcome_recorded || r->target < 0)
        return;
    r->outcome_recorded = true;
    uint64_t now = ag_loop_now(r->w->loop);
    gw_target_end(r->up->pool, r->target, now, failure);
    if (r->up->has_breaker) {
        gw_breaker_record(&r->up->breaker, now, !failure, r->probe);
        r->probe = false;
    }
    r->upstream_ms = (double)(now_ns() - r->upstream_ns) / 1e6;
    ag_histogram_observe(r->up->duration, r->upstream_ms / 1000.0);
}

/* A retry to another target, when the method, the body, the policy and the budget allow. */
static bool retry_allowed(struct gw_req *r)
{
    const struct gw_upstream_conf *uc = r->up->conf;
    const struct ag_http_request *req = ag_http_exchange_request(r->ex);
    if (r->attempts >= uc->retries.attempts || r->responded ||
        !ag_http_method_idempotent(req->method) || req->body != AG_HTTP_BODY_NONE)
        return false;
    struct gw_retry_budget *b = &r->ws->budgets[r->up->index];
    uint64_t now = ag_loop_now(r->w->loop);
    if (now > b->refilled_ms) {
        b->tokens += (double)(now - b->refilled_ms) * RETRY_BUDGET_PER_S / 1000.0;
        b->refilled_ms = now;
    }
    if (b->tokens > RETRY_BUDGET_CAP)
        b->tokens = RETRY_BUDGET_CAP;
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    ag_counter_inc(r->up->retries);
    return true;
}

static void call_on_response(struct ag_http_call *call, const struct ag_http_response *resp)
{
    struct gw_req *r = ag_http_call_ctx(call);
    const struct gw_retries_conf *rc = &r->up->conf->retries;
    bool failure = resp->status >= 500 && resp->status != 501;
    if (resp->status >= 500 && resp->status <= 505 && rc->on_status[resp->status - 500] &&
        retry_allowed(r)) {
        record_outcome(r, true);
        ag_http_call_cancel(call);
        r->call = NULL;
        send_upstream(r);
        return;
    }
    const struct ag_http_request *req = ag_http_exchange_request(r->ex);
    struct ag_http_header out[GW_HEADERS_OUT_CAP];
    size_t n =
        gw_response_headers(resp->headers, resp->header_count, r->has_rl, r->route->has_cors, out);
    struct hdrs h;
    h.n = 0;
    hdrs_common(r, &h);
    gw_security_headers(security(r), resp->headers, resp->header_count, false, h.h, &h.n,
                        sizeof h.h / sizeof h.h[0], h.hsts);
    for (size_t i = 0; i < h.n && n < GW_HEADERS_OUT_CAP; i++)
        out[n++] = h.h[i];
    int64_t length;
    if (resp->status == 204 || resp->status == 304 || (resp->status >= 100 && resp->status < 200))
        length = 0;
    else if (method_is(req, "HEAD"))
        length = ag_http_header_get(resp->headers, resp->header_count, AG_STR("Content-Length")).p
                     ? (int64_t)resp->content_length
                     : AG_HTTP_LENGTH_UNKNOWN;
    else if (resp->body == AG_HTTP_BODY_LENGTH)
        length = (int64_t)resp->content_length;
    else if (resp->body == AG_HTTP_BODY_NONE)
        length = 0;
    else
        length = AG_HTTP_LENGTH_UNKNOWN;
    r->status = resp->status;
    if (failure)
        record_outcome(r, true);
    /* All sendable: the upstream's were parsed; the gateway's own come from checked parts
     * (request ids, parsed Origin, configuration values checked at load). */
    if (ag_http_response_pass(r->ex, resp->status, out, n, length) < 0) {
        /* Out of memory, or the client is gone: the upstream's answer cannot be passed on. */
        record_outcome(r, true);
        ag_http_call_cancel(call);
        r->call = NULL;
        respond_simple(r, 502, "the upstream sent a response that cannot be passed on");
        return;
    }
    r->responded = true;
}

static void call_on_body(struct ag_http_call *call, struct ag_str data, bool last)
{
    struct gw_req *r = ag_http_call_ctx(call);
    if (data.len > 0) {
        r->bytes_out += data.len;
        if (ag_http_response_write(r->ex, data.p, data.len) < 0) {
            ag_http_call_cancel(call);
            r->call = NULL;
            record_outcome(r, false);
            ag_http_response_abort(r->ex);
            return;
        }
        if (!last && ag_http_response_congested(r->ex))
            ag_http_call_pause(call, true); /* resumed by the client's on_drain */
    }
    if (last) {
        r->call = NULL;
        record_outcome(r, false);
        ag_http_response_end(r->ex);
    }
}

static void call_on_drain(struct ag_http_call *call)
{
    struct gw_req *r = ag_http_call_ctx(call);
    ag_http_exchange_pause_body(r->ex, false);
}

static void call_on_error(struct ag_http_call *call, int code, const char *message)
{
    struct gw_req *r = ag_http_call_ctx(call);
    r->call = NULL;
    bool connect = code == AG_HTTP_ECONNECT || code == AG_HTTP_ECONNECT_TIMEOUT;
    bool timeout = code == AG_ETIMEDOUT || code == AG_HTTP_ECONNECT_TIMEOUT;
    record_outcome(r, true);
    if (r->responded) {
        /* Mid-body: the client must see the truncation, never a response framed as whole. */
        ag_log_warn("upstream failed during the response", AG_F_STR("request_id", r->request_id),
                    AG_F_STR("upstream", r->up->conf->name), AG_F_STR("error", message));
        ag_http_response_abort(r->ex);
        return;
    }
    const struct gw_retries_conf *rc = &r->up->conf->retries;
    bool retryable = !ag_http_call_response_started(call) &&
                     ((connect && rc->on_connect_error) || (timeout && rc->on_timeout));
    if (retryable && retry_allowed(r)) {
        send_upstream(r);
        return;
    }
    int status = timeout ? 504 : 502;
    char detail[320];
    snprintf(detail, sizeof detail, "upstream %s: %s", r->up->conf->name, message);
    respond_simple(r, status, detail);
}

/* The path sent upstream: strip_prefix removed, add_prefix put in front, the query kept. */
static struct ag_str upstream_target(struct gw_req *r, const struct ag_http_request *req)
{
    const struct gw_route *rt = r->route;
    if (!rt->strip.len && !rt->add.len && !r->absolute)
        return req->target;
    struct ag_str path = req->path;
    if (rt->strip.len && ag_str_has_prefix(path, rt->strip)) {
        path.p += rt->strip.len;
        path.len -= rt->strip.len;
    }
    size_t need = rt->add.len + path.len + 2 + req->query.len;
    if (need > PATH_MAX_REWRITE)
        return AG_STR_NULL;
    free(r->target_buf);
    r->target_buf = malloc(need + 1);
    if (!r->target_buf)
        return AG_STR_NULL;
    size_t n = 0;
    memcpy(r->target_buf, rt->add.p ? rt->add.p : "", rt->add.len);
    n += rt->add.len;
    /* "/api/v1" stripped from "/api/v1" leaves nothing: the upstream gets "/". */
    if (path.len == 0 || path.p[0] != '/') {
        if (n == 0 || r->target_buf[n - 1] != '/')
            r->target_buf[n++] = '/';
    } else if (n > 0 && r->target_buf[n - 1] == '/') {
        path.p++;
        path.len--;
    }
    memcpy(r->target_buf + n, path.p, path.len);
    n += path.len;
    if (req->query.len) {
        r->target_buf[n++] = '?';
        memcpy(r->target_buf + n, req->query.p, req->query.len);
        n += req->query.len;
    }
    r->target_buf[n] = '\0';
    return (struct ag_str){r->target_buf, n};
}

static void send_upstream(struct gw_req *r)
{
    struct gw_upstream *up = r->up;
    const struct ag_http_request *req = ag_http_exchange_request(r->ex);
    uint64_t now = ag_loop_now(r->w->loop);
    if (up->has_breaker && !r->probe) {
        enum gw_breaker_admit a = gw_breaker_admit(&up->breaker, now);
        if (a == GW_BREAKER_REFUSE) {
            static const struct ag_http_header retry = {AG_STR("Retry-After"), AG_STR("1")};
            respond_problem(r, 503, "the upstream's circuit breaker is open", &retry, 1);
            return;
        }
        r->probe = a == GW_BREAKER_PROBE;
    }
    int target = gw_pick(r->ws->pickers[up->index], now, r->tried);
    if (target < 0 && r->tried)
        target = gw_pick(r->ws->pickers[up->index], now, 0); /* all tried: any healthy one */
    if (target < 0) {
        if (r->probe) {
            gw_breaker_abandon_probe(&up->breaker);
            r->probe = false;
        }
        respond_simple(r, 503, "no healthy target in the upstream");
        return;
    }
    if (r->attempts == 0) {
        /* Each first send earns a share of a retry, so retries stay a fraction of the load. */
        struct gw_retry_budget *b = &r->ws->budgets[up->index];
        b->tokens += up->conf->retries.budget_ratio;
    }
    r->target = target;
    r->tried |= 1ULL << target;
    r->attempts++;
    r->outcome_recorded = false;
    gw_target_begin(up->pool, target);

    struct ag_str target_path = upstream_target(r, req);
    if (!target_path.p) {
        r->outcome_recorded = true;
        gw_target_end(up->pool, target, now, false);
        respond_simple(r, 414, "the rewritten request target is too long");
        return;
    }
    struct ag_str roles = AG_STR_NULL, sub = AG_STR_NULL, tenant = AG_STR_NULL;
    if (r->authed) {
        sub = ag_str_from_cstr(r->claims.sub);
        roles = ag_str_from_cstr(r->claims.roles);
        tenant = ag_str_from_cstr(r->claims.tenant);
    }
    struct gw_forward fwd = {
        .client_ip = {r->client_ip, r->client_ip_len},
        .host = r->host,
        .request_id = {r->request_id, r->request_id_len},
        .traceparent = {r->traceparent, GW_TRACEPARENT_LEN},
        .user_id = sub,
        .user_roles = roles,
        .tenant_id = tenant,
    };
    struct ag_http_header headers[GW_HEADERS_OUT_CAP];
    size_t count = gw_upstream_headers(req, &fwd, headers);
    int64_t body_length = 0;
    if (req->body == AG_HTTP_BODY_LENGTH)
        body_length = (int64_t)req->content_length;
    else if (req->body == AG_HTTP_BODY_CHUNKED)
        body_length = AG_HTTP_LENGTH_UNKNOWN;
    const char *host = up->conf->host;
    struct ag_http_client_request creq = {
        .address = gw_target_address(up->pool, target),
        .method = req->method,
        .target = target_path,
        .host = host ? ag_str_from_cstr(host) : r->host,
        .headers = headers,
        .header_count = count,
        .checked_headers = count, /* parsed, or made by the gateway from checked parts */
        .body_length = body_length,
        .response_timeout_ms = (uint32_t)r->route->timeout_ms,
    };
    r->upstream_ns = now_ns();
    struct ag_err err;
    int rc = ag_http_client_request(r->ws->clients[up->index], &creq, &call_ops, r, &r->call, &err);
    if (rc < 0) {
        r->call = NULL;
        record_outcome(r, false);
        ag_log_warn("upstream request refused", AG_F_STR("request_id", r->request_id),
                    AG_F_STR("error", err.msg));
        respond_simple(r, rc == AG_ENOMEM ? 503 : 400, err.msg);
        return;
    }
    r->call_body = body_length != 0;
    if (r->call_body)
        ag_http_exchange_pause_body(r->ex, false);
}

/* ---- the checks before proxying ---- */

static void continue_after_rate_limit(struct gw_req *r)
{
    ag_counter_inc(r->rl.degraded  ? r->route->rl_degraded
                   : r->rl.allowed ? r->route->rl_allowed
                                   : r->route->rl_limited);
    if (!r->rl.allowed) {
        char retry[24];
        snprintf(retry, sizeof retry, "%" PRIu64, r->rl.retry_after_s ? r->rl.retry_after_s : 1);
        struct ag_http_header h = {AG_STR("Retry-After"), ag_str_from_cstr(retry)};
        respond_problem(
            r, 429, r->rl.degraded ? "the rate limit store is unavailable" : "rate limit exceeded",
            &h, 1);
        return;
    }
    send_upstream(r);
}

static void on_rate_decision(void *ctx, const struct gw_rl_decision *d)
{
    struct gw_req *r = ctx;
    r->rl_pending = NULL;
    r->rl = *d;
    continue_after_rate_limit(r);
}

/* Builds the bucket key "route|kind|value" and asks the store; the answer may come later. */
static void rate_limit(struct gw_req *r)
{
    const struct gw_rate_conf *rc = &r->route->conf->rate_limit;
    const struct ag_http_request *req = ag_http_exchange_request(r->ex);
    struct ag_str value = {r->client_ip, r->client_ip_len};
    const char *kind = "ip";
    if (rc->key_kind == GW_RATE_KEY_USER && r->authed) {
        value = ag_str_from_cstr(r->claims.sub);
        kind = "user";
    } else if (rc->key_kind == GW_RATE_KEY_ROUTE) {
        value = AG_STR("*");
        kind = "route";
    } else if (rc->key_kind == GW_RATE_KEY_HEADER) {
        struct ag_str hv =
            ag_http_header_get(req->headers, req->header_count, ag_str_from_cstr(rc->key_header));
        if (hv.p && hv.len > 0 && hv.len <= 256) {
            value = hv;
            kind = "header";
        }
    }
    /* "route|kind|value", cut to the key's room like the snprintf it replaces would. */
    char key[GW_RL_KEY_MAX];
    struct ag_str parts[] = {ag_str_from_cstr(r->route->conf->name), AG_STR("|"),
                             ag_str_from_cstr(kind), AG_STR("|"), value};
    size_t n = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        size_t take = parts[i].len < sizeof key - 1 - n ? parts[i].len : sizeof key - 1 - n;
        if (take)
            memcpy(key + n, parts[i].p, take);
        n += take;
    }
    struct gw_rl_policy policy = {rc->rate, rc->per_ms, rc->burst};
    r->has_rl = true;
    r->rl = (struct gw_rl_decision){0}; /* read by responses made while the answer is pending */
    int result = gw_rl_store_take(&r->w->rl_store, (struct ag_str){key, n}, &policy, &r->rl,
                                  on_rate_decision, r, &r->rl_pending);
    if (result == AG_EAGAIN)
        return; /* on_rate_decision continues */
    if (result < 0) {
        r->has_rl = false;
        r->rl = (struct gw_rl_decision){.allowed = true, .degraded = true};
    }
    continue_after_rate_limit(r);
}

static void refuse_token(struct gw_req *r, const char *error, const char *description)
{
    char value[256];
    if (error)
        snprintf(value, sizeof value,
                 "Bearer realm=\"agora\", error=\"%s\", error_description=\"%s\"", error,
                 description);
    else
        snprintf(value, sizeof value, "Bearer realm=\"agora\"");
    struct ag_http_header h = {AG_STR("WWW-Authenticate"), ag_str_from_cstr(value)};
    char detail[160];
    snprintf(detail, sizeof detail, "%s%s", error ? "the bearer token is refused: " : "",
             error ? description : "this route needs a bearer token");
    respond_problem(r, 401, detail, &h, 1);
}

/* Returns true when the request may go on (possibly anonymous on an optional route). */
static bool authenticate(struct gw_req *r)
{
    const struct gw_route_conf *rc = r->route->conf;
    if (rc->auth == GW_AUTH_NONE)
        return true;
    struct ag_str auth = r->authorization;
    if (!auth.p) {
        if (rc->auth == GW_AUTH_OPTIONAL)
            return true;
        refuse_token(r, NULL, NULL);
        return false;
    }
    if (auth.len < 7 || !ag_str_eq_nocase((struct ag_str){auth.p, 7}, AG_STR("Bearer "))) {
        ag_counter_inc(r->w->gw->jwt_failures[AG_JWT_MALFORMED]);
        refuse_token(r, "invalid_request", "the Authorization scheme is not Bearer");
        return false;
    }
    struct ag_str token = ag_str_trim_ows((struct ag_str){auth.p + 7, auth.len - 7});
    struct gw_snapshot *snap = r->ws->snap;
    int64_t now_s = (int64_t)time(NULL);
    size_t which = 0;
    if (!ag_jwt_cache_get(r->w->jwt_cache, token, now_s, &r->claims, &which)) {
        enum ag_jwt_status st = ag_keyring_verify(snap->keyring, token, now_s, &r->claims);
        if (st != AG_JWT_OK) {
            ag_counter_inc(r->w->gw->jwt_failures[st]);
            refuse_token(r, "invalid_token", ag_jwt_status_name(st));
            return false;
        }
        ag_jwt_cache_put(r->w->jwt_cache, token, &r->claims, which, now_s);
    }
    r->authed = true;
    if (rc->role_count == 0)
        return true;
    for (size_t i = 0; i < rc->role_count; i++)
        if (ag_jwt_claims_has_role(&r->claims, ag_str_from_cstr(rc->roles[i])))
            return true;
    respond_simple(r, 403, "the token carries none of the roles this route needs");
    return false;
}

static bool is_preflight(const struct ag_http_request *req)
{
    return method_is(req, "OPTIONS") &&
           ag_http_header_get(req->headers, req->header_count, AG_STR("Origin")).p &&
           ag_http_header_get(req->headers, req->header_count,
                              AG_STR("Access-Control-Request-Method"))
               .p;
}

/* Returns true when the request goes on to the upstream; false when CORS answered it. */
static bool apply_cors(struct gw_req *r, const struct ag_http_request *req)
{
    if (!r->route->has_cors)
        return true;
    enum gw_cors_outcome o = gw_cors_evaluate(&r->route->cors, req, &r->cors);
    r->has_cors_headers = true; /* even without Origin: Vary: Origin keeps caches honest */
    if (o == GW_CORS_PREFLIGHT) {
        struct hdrs h;
        h.n = 0;
        hdrs_common(r, &h);
        gw_security_headers(security(r), NULL, 0, false, h.h, &h.n, sizeof h.h / sizeof h.h[0],
                            h.hsts);
        r->responded = true;
        r->status = 204;
        ag_http_response_start(r->ex, 204, h.h, h.n, 0);
        ag_http_response_end(r->ex);
        return false;
    }
    if (o == GW_CORS_PREFLIGHT_REFUSED) {
        respond_simple(r, 403, "the cross-origin request is not allowed by this route's policy");
        return false;
    }
    return true;
}

static void route_request(struct gw_req *r, const struct ag_http_request *req)
{
    if (gw_path_check(req->path) < 0) {
        respond_simple(r, 400,
                       "the path has dot segments, encoded slashes or characters the gateway does "
                       "not route");
        return;
    }
    if (r->authorizations > 1) {
        /* The gateway and a service that reads the other one would disagree on the user. */
        respond_simple(r, 400, "more than one Authorization field");
        return;
    }
    struct gw_match m;
    enum gw_match_result res =
        gw_router_match(r->ws->snap->router, r->host, req->method, req->path, &m);
    if (res == GW_MATCH_NOT_FOUND) {
        respond_simple(r, 404, "no route matches this host and path");
        return;
    }
    r->route = m.data;
    r->up = r->route->upstream;
    if (res == GW_MATCH_METHOD_NOT_ALLOWED) {
        if (is_preflight(req) && r->route->has_cors && !apply_cors(r, req))
            return;
        struct ag_http_header h = {AG_STR("Allow"), ag_str_from_cstr(m.allow)};
        r->route = NULL; /* counted as unmatched */
        respond_problem(r, 405, "the route does not accept this method", &h, 1);
        return;
    }
    if (!apply_cors(r, req) || !authenticate(r))
        return;
    if (req->body == AG_HTTP_BODY_LENGTH && req->content_length > r->route->max_body) {
        respond_simple(r, 413, "the request body is larger than this route accepts");
        return;
    }
    if (r->route->conf->rate_limit.rate)
        rate_limit(r);
    else
        send_upstream(r);
}

/* ---- server callbacks ---- */

/* One pass over the request's fields for the ones the gateway reads (by length, then name). */
static void scan_fields(struct gw_req *r, const struct ag_http_request *req, struct ag_str *id,
                        struct ag_str *traceparent)
{
    for (size_t i = 0; i < req->header_count; i++) {
        const struct ag_http_header *h = &req->headers[i];
        switch (h->name.len) {
        case 11:
            if (ag_str_eq_nocase(h->name, AG_STR("traceparent")) && !traceparent->p)
                *traceparent = h->value;
            break;
        case 12:
            if (ag_str_eq_nocase(h->name, AG_STR("X-Request-Id")) && !id->p)
                *id = h->value;
            break;
        case 13:
            if (ag_str_eq_nocase(h->name, AG_STR("Authorization")) && r->authorizations++ == 0)
                r->authorization = h->value;
            break;
        }
    }
}

static void proxy_on_request(struct ag_http_exchange *ex)
{
    struct gw_worker *w = ag_http_exchange_worker(ex);
    struct gw_req *r = req_new(w);
    if (!r) {
        ag_http_respond_problem(ex, 503, "out of memory");
        return;
    }
    r->ex = ex;
    r->ws = w->current;
    r->ws->inflight++;
    r->start_ns = now_ns();
    ag_http_exchange_set_data(ex, r);
    /* The body waits until an upstream call can take it. */
    ag_http_exchange_pause_body(ex, true);
    const struct ag_http_request *req = ag_http_exchange_request(ex);
    struct ag_str id = AG_STR_NULL, traceparent = AG_STR_NULL;
    scan_fields(r, req, &id, &traceparent);
    bool trace_kept = gw_traceparent_next(traceparent, r->traceparent);
    if (id.p && gw_request_id_acceptable(id)) {
        memcpy(r->request_id, id.p, id.len);
        r->request_id[id.len] = '\0';
        r->request_id_len = id.len;
    } else if (!trace_kept) {
        /* A new trace: its random trace id is the request id too, so logs and traces meet. */
        memcpy(r->request_id, r->traceparent + GW_TRACE_ID_AT, GW_REQUEST_ID_LEN);
        r->request_id[GW_REQUEST_ID_LEN] = '\0';
        r->request_id_len = GW_REQUEST_ID_LEN;
    } else {
        gw_request_id_new(r->request_id);
        r->request_id_len = GW_REQUEST_ID_LEN;
    }
    int ip_len = ag_http_exchange_peer(ex, r->client_ip, sizeof r->client_ip);
    if (ip_len < 0) {
        memcpy(r->client_ip, "unknown", sizeof "unknown");
        ip_len = (int)sizeof "unknown" - 1;
    }
    r->client_ip_len = (size_t)ip_len;
    r->host = req->host;
    if (req->target.len > 0 && req->target.p[0] != '/') {
        /* Absolute form (RFC 9112 §3.2.2): the target's authority is the host, not the field. */
        struct ag_str t = req->target;
        const char *sep = memchr(t.p, ':', t.len);
        if (sep && (size_t)(t.p + t.len - sep) > 3 && sep[1] == '/' && sep[2] == '/') {
            const char *start = sep + 3, *end = start;
            while (end < t.p + t.len && *end != '/' && *end != '?')
                end++;
            r->host = (struct ag_str){start, (size_t)(end - start)};
            r->absolute = true;
        }
        if (!r->absolute || r->host.len == 0 || memchr(r->host.p, '@', r->host.len)) {
            respond_simple(r, 400, "the absolute request target has no usable authority");
            return;
        }
    }
    route_request(r, req);
}

static void proxy_on_body(struct ag_http_exchange *ex, struct ag_str data, bool last)
{
    struct gw_req *r = ag_http_exchange_data(ex);
    if (!r)
        return;
    r->bytes_in += data.len;
    if (last)
        r->body_ended = true;
    if (!r->call || !r->call_body)
        return; /* answered already (a refusal): the rest is dropped */
    if (r->route && r->bytes_in > r->route->max_body) {
        ag_http_call_cancel(r->call);
        r->call = NULL;
        record_outcome(r, false);
        if (r->responded)
            ag_http_response_abort(ex);
        else
            respond_simple(r, 413, "the request body is larger than this route accepts");
        return;
    }
    if (data.len > 0 && ag_http_call_write(r->call, data.p, data.len) < 0) {
        ag_http_call_cancel(r->call);
        r->call = NULL;
        record_outcome(r, true);
        respond_simple(r, 502, "the upstream stopped taking the request body");
        if (r->responded)
            ag_http_response_abort(ex);
        return;
    }
    if (last) {
        const struct ag_http_request *req = ag_http_exchange_request(ex);
        if (req->body == AG_HTTP_BODY_CHUNKED)
            ag_http_call_end(r->call);
    } else if (ag_http_call_congested(r->call)) {
        ag_http_exchange_pause_body(ex, true); /* resumed by the call's on_drain */
    }
}

static void proxy_on_drain(struct ag_http_exchange *ex)
{
    struct gw_req *r = ag_http_exchange_data(ex);
    if (r && r->call)
        ag_http_call_pause(r->call, false);
}

static void count_request(struct gw_req *r, double duration_ms)
{
    int cls = r->status >= 100 && r->status < 600 ? r->status / 100 - 1 : 4;
    if (r->route) {
        ag_counter_inc(r->route->requests[cls]);
        ag_histogram_observe(r->route->duration, duration_ms / 1000.0);
    } else {
        ag_counter_inc(r->w->gw->unmatched[cls]);
    }
}

static void access_log(struct gw_req *r, struct ag_http_exchange *ex, double duration_ms,
                       bool completed)
{
    const struct ag_http_request *req = ag_http_exchange_request(ex);
    struct gw_access_entry e = {
        .request_id = {r->request_id, r->request_id_len},
        .method = req->method,
        .path = req->path,
        .route = r->route ? ag_str_from_cstr(r->route->conf->name) : AG_STR_NULL,
        .upstream = r->target >= 0 ? ag_str_from_cstr(gw_target_address(r->up->pool, r->target))
                                   : AG_STR_NULL,
        .client_ip = {r->client_ip, r->client_ip_len},
        .user_id = r->authed ? ag_str_from_cstr(r->claims.sub) : AG_STR_NULL,
        .status = r->status,
        .bytes_in = r->bytes_in,
        .bytes_out = r->bytes_out,
        .duration_ms = duration_ms,
        .upstream_ms = r->target >= 0 ? r->upstream_ms : -1.0,
        .completed = completed,
    };
    gw_access_log_write(&r->w->alog, &e);
}

static void proxy_on_close(struct ag_http_exchange *ex, bool completed)
{
    struct gw_req *r = ag_http_exchange_data(ex);
    if (!r)
        return;
    if (r->rl_pending)
        gw_rl_store_cancel(r->rl_pending);
    if (r->call) {
        ag_http_call_cancel(r->call);
        r->call = NULL;
        /* The client left: not the upstream's fault, so it counts as no failure. */
        record_outcome(r, false);
    }
    if (r->probe) {
        gw_breaker_abandon_probe(&r->up->breaker);
        r->probe = false;
    }
    if (r->status == 0)
        r->status = 499; /* the client left before any response: nginx's name for it */
    double duration_ms = (double)(now_ns() - r->start_ns) / 1e6;
    count_request(r, duration_ms);
    if (r->w->alog.fd >= 0)
        access_log(r, ex, duration_ms, completed);
    struct gw_wsnap *ws = r->ws;
    req_free(r);
    ag_http_exchange_set_data(ex, NULL);
    ws->inflight--;
    if (ws->retired && ws->inflight == 0)
        gw_wsnap_free(ws);
}

const struct ag_http_handler gw_proxy_handler = {
    .on_request = proxy_on_request,
    .on_body = proxy_on_body,
    .on_drain = proxy_on_drain,
    .on_close = proxy_on_close,
};
