/* The HTTP client's API: configuration, address pools, request heads, and the call operations. */
#include "core/http_client.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/http_client_conn.h"
#include "core/http_fields.h"
#include "core/banned.h"

#define APPEND_LIT(b, lit) ag_buf_append((b), (lit), sizeof(lit) - 1)

const char *ag_http_client_err_name(int code)
{
    switch (code) {
    case AG_HTTP_ECONNECT:
        return "AG_HTTP_ECONNECT";
    case AG_HTTP_ECONNECT_TIMEOUT:
        return "AG_HTTP_ECONNECT_TIMEOUT";
    }
    return ag_err_name(code);
}

void ag_http_client_config_defaults(struct ag_http_client_config *cfg)
{
    *cfg = (struct ag_http_client_config){
        .max_idle_per_host = 32,
        .connect_timeout_ms = 5000,
        .first_byte_timeout_ms = 0,
        .response_timeout_ms = 60000,
        .idle_timeout_ms = 30000,
        .limits = ag_http_default_limits,
    };
}

static int check_config(const struct ag_http_client_config *cfg, struct ag_err *err)
{
    if (!cfg->connect_timeout_ms || !cfg->idle_timeout_ms)
        return ag_err_set(err, AG_EINVAL, "connect and idle timeouts must be at least 1 ms");
    return ag_http_limits_check(&cfg->limits, err);
}

int ag_http_client_new(struct ag_loop *loop, const struct ag_http_client_config *cfg,
                       struct ag_http_client **out, struct ag_err *err)
{
    int rc = check_config(cfg, err);
    if (rc < 0)
        return rc;
    struct ag_http_client *client = calloc(1, sizeof *client);
    if (!client)
        return ag_err_set(err, AG_ENOMEM, "out of memory creating an HTTP client");
    client->loop = loop;
    client->cfg = *cfg;
    *out = client;
    return 0;
}

static void pool_free(struct ag_http_client *client, struct ag_hc_pool *pool)
{
    for (struct ag_hc_pool **p = &client->pools; *p; p = &(*p)->next) {
        if (*p == pool) {
            *p = pool->next;
            client->pool_count--;
            break;
        }
    }
    free(pool->address);
    free(pool);
}

void ag_http_client_free(struct ag_http_client *client)
{
    if (!client)
        return;
    while (client->conns)
        ag_hc_conn_close(client->conns); /* drops its call, if any, without a callback */
    while (client->pools)
        pool_free(client, client->pools);
    while (client->block_count)
        free(client->blocks[--client->block_count]);
    free(client);
}

void ag_http_client_stats(const struct ag_http_client *client, struct ag_http_client_stats *out)
{
    *out = client->stats;
}

/* ---- pools ---- */

void ag_hc_pool_unref(struct ag_http_client *client, struct ag_hc_pool *pool)
{
    if (!pool)
        return;
    pool->refs--;
    if (pool->refs == 0 && client->pool_count > AG_HC_POOLS_KEPT)
        pool_free(client, pool);
}

/* Drops unused pools beyond the number kept, sparing keep. */
static void pools_trim(struct ag_http_client *client, const struct ag_hc_pool *keep)
{
    struct ag_hc_pool *pool = client->pools;
    while (pool && client->pool_count > AG_HC_POOLS_KEPT) {
        struct ag_hc_pool *next = pool->next;
        if (pool != keep && pool->refs == 0)
            pool_free(client, pool);
        pool = next;
    }
}

/*
 * The pool for address, made (and the address resolved) on first use. Returns 0 and *out,
 * AG_EINVAL when the address does not parse or resolve, AG_ENOMEM.
 */
static int pool_get(struct ag_http_client *client, const char *address, struct ag_hc_pool **out,
                    struct ag_err *err)
{
    for (struct ag_hc_pool *pool = client->pools; pool; pool = pool->next) {
        if (strcmp(pool->address, address) == 0) {
            *out = pool;
            return 0;
        }
    }
    struct ag_addr addr;
    int rc = ag_addr_parse(address, &addr, err);
    if (rc < 0)
        return rc;
    struct ag_hc_pool *pool = calloc(1, sizeof *pool);
    char *copy = strdup(address);
    if (!pool || !copy) {
        free(pool);
        free(copy);
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    }
    pool->address = copy;
    pool->addr = addr;
    pool->next = client->pools;
    client->pools = pool;
    client->pool_count++;
    pools_trim(client, pool);
    *out = pool;
    return 0;
}

/* ---- requests ---- */

/* Visible ASCII only: what a target or a Host may hold. */
static bool is_visible(struct ag_str s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (s.p[i] < 0x21 || s.p[i] > 0x7e)
            return false;
    return true;
}

/* Fields that frame the message or manage the connection: the client writes those itself. */
static bool field_reserved(struct ag_str name)
{
    switch (name.len) { /* by length first: this runs for every field of every request */
    case 4:
        return ag_str_eq_nocase(name, AG_STR("host"));
    case 7:
        return ag_str_eq_nocase(name, AG_STR("upgrade"));
    case 10:
        return ag_str_eq_nocase(name, AG_STR("connection"));
    case 14:
        return ag_str_eq_nocase(name, AG_STR("content-length"));
    case 17:
        return ag_str_eq_nocase(name, AG_STR("transfer-encoding"));
    }
    return false;
}

static bool method_is(struct ag_str method, const char *name)
{
    return ag_str_eq(method, ag_str_from_cstr(name));
}

static int request_check(const struct ag_http_client_request *req,
                         const struct ag_http_call_ops *ops, struct ag_err *err)
{
    if (!ops || !ops->on_response || !ops->on_body || !ops->on_error)
        return ag_err_set(err, AG_EINVAL, "on_response, on_body and on_error are required");
    if (!req->address)
        return ag_err_set(err, AG_EINVAL, "the request has no address");
    if (!ag_http_is_token(req->method))
        return ag_err_set(err, AG_EINVAL, "the method must be a token");
    if (!is_visible(req->target))
        return ag_err_set(err, AG_EINVAL, "the target must be visible ASCII without spaces");
    if (req->host.len > 0 && !is_visible(req->host))
        return ag_err_set(err, AG_EINVAL, "the host must be visible ASCII without spaces");
    if (req->header_count > 0 && !req->headers)
        return ag_err_set(err, AG_EINVAL, "header_count without headers");
    if (req->checked_headers > req->header_count)
        return ag_err_set(err, AG_EINVAL, "checked_headers is over header_count");
    for (size_t i = 0; i < req->header_count; i++) {
        const struct ag_http_header *h = &req->headers[i];
        if (i >= req->checked_headers && !ag_http_is_token(h->name))
            return ag_err_set(err, AG_EINVAL, "field %zu: the name must be a token", i);
        if (i >= req->checked_headers && !ag_http_field_value_safe(h->value))
            return ag_err_set(err, AG_EINVAL, "field %zu: CR, LF or NUL in the value", i);
        if (field_reserved(h->name))
            return ag_err_set(err, AG_EINVAL, "field %.*s is written by the client",
                              (int)h->name.len, h->name.p);
    }
    if (!req->body.p && req->body_length < 0 && req->body_length != AG_HTTP_LENGTH_UNKNOWN)
        return ag_err_set(err, AG_EINVAL, "body_length must be >= 0 or AG_HTTP_LENGTH_UNKNOWN");
    return 0;
}

/* Writes the request head, and the whole body when given, into call->out, in one reservation. */
static int request_write(struct ag_http_call *call, const struct ag_http_client_request *req,
                         struct ag_str host)
{
    struct ag_buf *out = &call->out;
    int rc = ag_hc_buf_acquire(call->client, out);
    if (rc < 0)
        return rc;
    static const char cl[] = "Content-Length: ", chunked[] = "Transfer-Encoding: chunked\r\n",
                      empty[] = "Content-Length: 0\r\n";
    char length[sizeof cl - 1 + 20 + 2];
    size_t length_len = 0;
    if (req->body.p || req->body_length > 0) {
        uint64_t v = req->body.p ? req->body.len : (uint64_t)req->body_length;
        memcpy(length, cl, sizeof cl - 1);
        length_len = sizeof cl - 1 + ag_u64_dec(v, length + sizeof cl - 1);
        length[length_len++] = '\r';
        length[length_len++] = '\n';
    }
    const char *framing = length;
    if (!req->body.p && req->body_length == AG_HTTP_LENGTH_UNKNOWN) {
        framing = chunked;
        length_len = sizeof chunked - 1;
    } else if (!req->body.p && req->body_length == 0 &&
               (method_is(req->method, "POST") || method_is(req->method, "PUT") ||
                method_is(req->method, "PATCH"))) {
        framing = empty;
        length_len = sizeof empty - 1;
    }
    static const char version[] = " HTTP/1.1\r\nHost: ";
    size_t head = req->method.len + 1 + req->target.len + sizeof version - 1 + host.len + 2 +
                  ag_http_fields_size(req->headers, req->header_count) + length_len + 2;
    size_t body = req->body.p ? req->body.len : 0;
    rc = ag_buf_reserve(out, head + body);
    if (rc < 0)
        return rc;
    char *at = ag_buf_tail(out);
    at = ag_http_put(at, req->method.p, req->method.len);
    *at++ = ' ';
    at = ag_http_put(at, req->target.p, req->target.len);
    at = ag_http_put(at, version, sizeof version - 1);
    at = ag_http_put(at, host.p, host.len);
    *at++ = '\r';
    *at++ = '\n';
    at = ag_http_fields_put(at, req->headers, req->header_count);
    if (length_len)
        at = ag_http_put(at, framing, length_len);
    *at++ = '\r';
    *at++ = '\n';
    if (body)
        ag_http_put(at, req->body.p, body);
    ag_buf_commit(out, head + body);
    call->head_len = out->len - body;
    return 0;
}

int ag_http_client_request(struct ag_http_client *client, const struct ag_http_client_request *req,
                           const struct ag_http_call_ops *ops, void *ctx, struct ag_http_call **out,
                           struct ag_err *err)
{
    struct ag_hc_pool *pool = NULL;
    struct ag_http_call *call = NULL;
    int rc = request_check(req, ops, err);
    if (rc < 0)
        goto out;
    rc = pool_get(client, req->address, &pool, err);
    if (rc < 0)
        goto out;
    /* Not calloc: the response's header array (most of the call) is written by the parser
     * before anything reads it, and zeroing it cost more than the rest of a proxied request. */
    call = malloc(sizeof *call);
    if (call)
        memset(call, 0,
               offsetof(struct ag_http_call, resp) + offsetof(struct ag_http_response, headers));
    if (!call) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory starting a call");
        pools_trim(client, NULL);
        goto out;
    }
    const struct ag_http_client_config *cfg = &client->cfg;
    call->client = client;
    call->pool = pool;
    pool->refs++;
    client->stats.calls++;
    call->ops = ops;
    call->ctx = ctx;
    call->is_head = method_is(req->method, "HEAD");
    call->idempotent = ag_http_method_idempotent(req->method);
    call->body_length = req->body.p ? 0 : req->body_length;
    call->chunked = call->body_length == AG_HTTP_LENGTH_UNKNOWN;
    call->body_open = call->body_length != 0;
    call->first_byte_timeout_ms =
        req->first_byte_timeout_ms ? req->first_byte_timeout_ms : cfg->first_byte_timeout_ms;
    call->response_timeout_ms =
        req->response_timeout_ms ? req->response_timeout_ms : cfg->response_timeout_ms;
    ag_buf_init(&call->out, AG_HC_OUT_MAX);
    ag_http_parser_init(&call->parser, &cfg->limits);
    rc = request_write(call, req, req->host.len ? req->host : ag_str_from_cstr(pool->address));
    if (rc < 0) {
        ag_err_set(err, rc, rc == AG_ERANGE ? "the request is over 64 MiB" : "out of memory");
        goto out;
    }
    struct ag_hc_conn *c = ag_hc_pool_take(pool);
    if (c) {
        ag_hc_conn_attach(c, call);
    } else {
        rc = ag_hc_conn_open(client, pool, call);
        if (rc < 0)
            ag_err_set(err, rc, "out of memory opening a connection");
    }
out:
    if (rc < 0) {
        if (call)
            ag_hc_call_free(call);
        return rc;
    }
    *out = call;
    return 0;
}

/* ---- calls ---- */

int ag_http_call_write(struct ag_http_call *call, const void *data, size_t len)
{
    if (call->done || call->cancelled || !call->body_open)
        return AG_ECLOSED;
    if (len == 0)
        return 0; /* an empty chunk would end a chunked body */
    if (!call->chunked && (uint64_t)call->body_length - call->body_written < len)
        return AG_ERANGE;
    char chunk_head[20];
    size_t head_len = call->chunked ? ag_http_chunk_header(chunk_head, len) : 0;
    size_t tail_len = call->chunked ? 2 : 0;
    if (len > AG_HC_OUT_MAX)
        return AG_ERANGE;
    int rc = ag_hc_buf_acquire(call->client, &call->out);
    rc = rc ? rc : ag_buf_reserve(&call->out, head_len + len + tail_len);
    if (rc < 0)
        return rc;
    /* Reserved: these cannot fail, so a chunk is never left half-framed. */
    ag_buf_append(&call->out, chunk_head, head_len);
    ag_buf_append(&call->out, data, len);
    ag_buf_append(&call->out, "\r\n", tail_len);
    call->body_written += len;
    if (!call->chunked && call->body_written == (uint64_t)call->body_length)
        call->body_open = false;
    if (ag_hc_call_unsent(call) > AG_HC_HIGH_WATER)
        call->congested = true;
    ag_hc_conn_kick(call->conn);
    return 0;
}

int ag_http_call_end(struct ag_http_call *call)
{
    if (call->done || call->cancelled || call->body_length == 0)
        return AG_ECLOSED;
    if (!call->chunked)
        return call->body_written == (uint64_t)call->body_length ? 0 : AG_ERANGE;
    if (!call->body_open)
        return AG_ECLOSED;
    int rc = ag_hc_buf_acquire(call->client, &call->out);
    rc = rc ? rc : APPEND_LIT(&call->out, AG_HTTP_LAST_CHUNK);
    if (rc < 0)
        return rc;
    call->body_open = false;
    ag_hc_conn_kick(call->conn);
    return 0;
}

bool ag_http_call_congested(const struct ag_http_call *call)
{
    return ag_hc_call_unsent(call) > AG_HC_HIGH_WATER;
}

void ag_http_call_pause(struct ag_http_call *call, bool paused)
{
    if (call->done)
        return;
    call->paused = paused;
    if (!paused && call->conn)
        ag_hc_conn_kick(call->conn);
}

void ag_http_call_cancel(struct ag_http_call *call)
{
    if (call->done || call->cancelled)
        return;
    call->cancelled = true;
    struct ag_hc_conn *c = call->conn;
    if (c && !c->in_run)
        ag_hc_conn_cancel_call(c); /* else the run ends it when the current callback returns */
}

void *ag_http_call_ctx(const struct ag_http_call *call)
{
    return call->ctx;
}

bool ag_http_call_response_started(const struct ag_http_call *call)
{
    return call->response_started;
}
