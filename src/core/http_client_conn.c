/* The HTTP client's connections: connect, send a call's request, read its response, pool, retry. */
#include "core/http_client_conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/banned.h"

enum { READ_MORE = 0, READ_PROGRESS = 1 };

static void conn_run(struct ag_hc_conn *c);

/* ---- buffers ---- */

int ag_hc_buf_acquire(struct ag_http_client *client, struct ag_buf *b)
{
    if (b->data)
        return 0;
    char *block = client->block_count ? client->blocks[--client->block_count] : malloc(AG_HC_BLOCK);
    if (!block)
        return AG_ENOMEM;
    b->data = block;
    b->cap = AG_HC_BLOCK;
    b->off = b->len = 0;
    return 0;
}

void ag_hc_buf_return(struct ag_http_client *client, struct ag_buf *b)
{
    if (b->data && b->cap == AG_HC_BLOCK && client->block_count < AG_HC_BLOCK_CACHE) {
        client->blocks[client->block_count++] = b->data;
        b->data = NULL;
    }
    ag_buf_release(b);
}

size_t ag_hc_call_unsent(const struct ag_http_call *call)
{
    return call->out.len - call->retained;
}

void ag_hc_call_free(struct ag_http_call *call)
{
    struct ag_http_client *client = call->client;
    ag_hc_buf_return(client, &call->out);
    client->stats.calls--;
    ag_hc_pool_unref(client, call->pool);
    free(call);
}

/* Fills call->err and returns code, for the error paths of the run. */
static int call_error(struct ag_http_call *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int call_error(struct ag_http_call *call, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(call->err.msg, sizeof call->err.msg, fmt, ap);
    va_end(ap);
    call->err.code = code;
    call->err.sys_errno = 0;
    return code;
}

/* ---- connection lifecycle ---- */

/* Frees c once it is closed and neither a run nor a deferred kick can reach it. */
static void conn_release_if_unused(struct ag_hc_conn *c)
{
    if (c->closed && !c->in_run && !ag_deferred_queued(&c->kick))
        free(c);
}

static void conn_drop_buffers(struct ag_hc_conn *c)
{
    ag_hc_buf_return(c->client, &c->in);
    c->in.max = AG_HC_BLOCK;
}

static void idle_unlink(struct ag_hc_conn *c)
{
    if (!c->idle)
        return;
    struct ag_hc_pool *pool = c->pool;
    if (c->idle_prev)
        c->idle_prev->idle_next = c->idle_next;
    else
        pool->idle = c->idle_next;
    if (c->idle_next)
        c->idle_next->idle_prev = c->idle_prev;
    c->idle_prev = c->idle_next = NULL;
    c->idle = false;
    pool->idle_count--;
    c->client->stats.idle--;
}

void ag_hc_conn_close(struct ag_hc_conn *c)
{
    if (c->closed)
        return;
    struct ag_http_client *client = c->client;
    c->closed = true;
    if (c->call) {
        struct ag_http_call *call = c->call;
        c->call = NULL;
        call->conn = NULL;
        ag_hc_call_free(call);
    }
    idle_unlink(c);
    if (c->io.fd >= 0) {
        ag_loop_io_remove(client->loop, &c->io);
        close(c->io.fd);
        c->io.fd = -1;
    }
    ag_timer_stop(client->loop, &c->timer);
    if (c->prev)
        c->prev->next = c->next;
    else
        client->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    client->stats.connections--;
    ag_hc_pool_unref(client, c->pool);
    c->pool = NULL;
    if (!c->in_run)
        conn_drop_buffers(c); /* inside a run, a callback may still hold a slice of them */
    ag_loop_defer_cancel(client->loop, &c->kick); /* nothing is left for a run to do */
    conn_release_if_unused(c);
}

static void kick_cb(struct ag_deferred *d)
{
    struct ag_hc_conn *c = AG_CONTAINER_OF(d, struct ag_hc_conn, kick);
    if (c->closed)
        conn_release_if_unused(c);
    else
        conn_run(c);
}

void ag_hc_conn_kick(struct ag_hc_conn *c)
{
    if (c->in_run || c->closed)
        return; /* a run in progress sees the change when the callback returns */
    ag_loop_defer_node(c->client->loop, &c->kick);
}

/* ---- timers ---- */

/* When the connection's current wait must end, or 0 when nothing bounds it. */
static uint64_t conn_deadline(const struct ag_hc_conn *c)
{
    const struct ag_http_client_config *cfg = &c->client->cfg;
    const struct ag_http_call *call = c->call;
    if (!call)
        return c->idle ? c->idle_since_ms + cfg->idle_timeout_ms : 0;
    if (c->pending_error)
        return 0;
    if (c->connecting)
        return c->connect_started_ms + cfg->connect_timeout_ms;
    uint64_t deadline = 0;
    if (!call->response_started && call->first_byte_timeout_ms)
        deadline = call->send_started_ms + call->first_byte_timeout_ms;
    if (call->response_timeout_ms) {
        uint64_t whole = call->send_started_ms + call->response_timeout_ms;
        if (deadline == 0 || whole < deadline)
            deadline = whole;
    }
    return deadline;
}

static void conn_arm_timer(struct ag_hc_conn *c)
{
    if (c->closed)
        return;
    uint64_t deadline = conn_deadline(c);
    if (deadline == 0)
        return;
    if (ag_timer_active(&c->timer) && c->timer.deadline_ms <= deadline)
        return; /* it fires early, finds the later deadline and re-arms */
    uint64_t now = ag_loop_now(c->client->loop);
    ag_timer_start(c->client->loop, &c->timer, deadline > now ? deadline - now : 0);
}

static void conn_on_timer(struct ag_timer *t)
{
    struct ag_hc_conn *c = AG_CONTAINER_OF(t, struct ag_hc_conn, timer);
    struct ag_loop *loop = c->client->loop;
    uint64_t deadline = conn_deadline(c);
    uint64_t now = ag_loop_now(loop);
    if (deadline == 0)
        return;
    if (deadline > now) {
        ag_timer_start(loop, t, deadline - now);
        return;
    }
    struct ag_http_call *call = c->call;
    if (!call) {
        ag_hc_conn_close(c); /* idle too long */
        return;
    }
    const char *address = c->pool->address;
    if (c->connecting)
        c->pending_error =
            call_error(call, AG_HTTP_ECONNECT_TIMEOUT, "connect to %s timed out after %u ms",
                       address, c->client->cfg.connect_timeout_ms);
    else if (!call->response_started && call->first_byte_timeout_ms &&
             call->send_started_ms + call->first_byte_timeout_ms <= now)
        c->pending_error = call_error(call, AG_ETIMEDOUT, "%s sent no response within %u ms",
                                      address, call->first_byte_timeout_ms);
    else
        c->pending_error =
            call_error(call, AG_ETIMEDOUT, "the response from %s did not end within %u ms", address,
                       call->response_timeout_ms);
    conn_run(c);
}

/* ---- pooling ---- */

/*
 * True when an idle connection is still usable: nothing to read, no end of stream, no error.
 * Bytes from the server while no request is out can only be garbage or a goodbye.
 */
static bool conn_idle_alive(struct ag_hc_conn *c)
{
    char byte;
    for (;;) {
        ssize_t n = recv(c->io.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->can_read = false;
            return true;
        }
        return false;
    }
}

/* Puts a connection whose call ended cleanly into its pool, or closes it. */
static void conn_park(struct ag_hc_conn *c)
{
    struct ag_http_client *client = c->client;
    struct ag_hc_pool *pool = c->pool;
    if (pool->idle_count >= client->cfg.max_idle_per_host || c->io.fd < 0 || !conn_idle_alive(c)) {
        ag_hc_conn_close(c);
        return;
    }
    c->idle = true;
    c->idle_prev = NULL;
    c->idle_next = pool->idle;
    if (pool->idle)
        pool->idle->idle_prev = c;
    pool->idle = c;
    pool->idle_count++;
    client->stats.idle++;
    c->idle_since_ms = ag_loop_now(client->loop);
    conn_arm_timer(c);
}

struct ag_hc_conn *ag_hc_pool_take(struct ag_hc_pool *pool)
{
    while (pool->idle) {
        struct ag_hc_conn *c = pool->idle;
        struct ag_http_client *client = c->client;
        idle_unlink(c);
        uint64_t now = ag_loop_now(client->loop);
        if (now - c->idle_since_ms < client->cfg.idle_timeout_ms && conn_idle_alive(c))
            return c;
        ag_hc_conn_close(c);
    }
    return NULL;
}

void ag_hc_conn_attach(struct ag_hc_conn *c, struct ag_http_call *call)
{
    struct ag_http_client *client = c->client;
    c->call = call;
    call->conn = c;
    call->keep_replay = true; /* a pooled connection may turn out dead: keep bytes to resend */
    call->retained = 0;
    call->bytes_sent = 0;
    call->send_started_ms = ag_loop_now(client->loop);
    client->stats.reuses++;
    conn_arm_timer(c);
    ag_hc_conn_kick(c);
}

static void conn_on_io(struct ag_io *io, unsigned events);

int ag_hc_conn_open(struct ag_http_client *client, struct ag_hc_pool *pool,
                    struct ag_http_call *call)
{
    struct ag_hc_conn *c = calloc(1, sizeof *c);
    if (!c)
        return AG_ENOMEM;
    c->client = client;
    c->pool = pool;
    pool->refs++;
    c->io.fd = -1;
    ag_buf_init(&c->in, AG_HC_BLOCK);
    ag_timer_init(&c->timer, conn_on_timer);
    ag_deferred_init(&c->kick, kick_cb);
    c->next = client->conns;
    if (client->conns)
        client->conns->prev = c;
    client->conns = c;
    client->stats.connections++;
    client->stats.connects++;

    c->call = call;
    call->conn = c;
    call->keep_replay = false; /* a fresh connection is not retried */
    call->retained = 0;
    call->bytes_sent = 0;
    c->connecting = true;
    c->connect_started_ms = ag_loop_now(client->loop);

    struct ag_err err = {0};
    int fd = ag_net_connect(&pool->addr, &err);
    if (fd < 0) {
        c->pending_error = call_error(call, AG_HTTP_ECONNECT, "%s", err.msg);
    } else if (ag_loop_io_add(client->loop, &c->io, fd, AG_IO_READ | AG_IO_WRITE | AG_IO_EDGE,
                              conn_on_io) < 0) {
        c->pending_error = call_error(call, AG_HTTP_ECONNECT, "connect to %s: epoll_ctl: %s",
                                      pool->address, strerror(errno));
        close(fd);
        c->io.fd = -1;
    }
    if (c->pending_error)
        ag_hc_conn_kick(c); /* reported from the loop, like any connect failure */
    else
        conn_arm_timer(c);
    return 0;
}

/* ---- ending calls ---- */

void ag_hc_conn_cancel_call(struct ag_hc_conn *c)
{
    struct ag_http_call *call = c->call;
    bool untouched = !c->connecting && !c->pending_error && !c->write_failed &&
                     call->bytes_sent == 0 && !call->response_started && c->in.len == 0;
    c->call = NULL;
    c->pending_error = 0;
    call->conn = NULL;
    call->done = true;
    ag_hc_call_free(call);
    if (untouched)
        conn_park(c);
    else
        ag_hc_conn_close(c);
}

/*
 * The response ended: the connection goes back to the pool when both messages are complete
 * and the server keeps it alive, then the caller gets the last piece and the call is freed.
 * data may point into c->in, which stays intact until the run ends.
 */
static void call_complete(struct ag_hc_conn *c, struct ag_http_call *call, struct ag_str data)
{
    bool reusable = call->resp.keep_alive && !call->body_open && ag_hc_call_unsent(call) == 0 &&
                    !c->write_failed && c->in.len == 0;
    call->done = true;
    c->call = NULL;
    call->conn = NULL;
    c->calls_done++;
    if (reusable)
        conn_park(c); /* before on_body: a request made from it may take this connection */
    else
        ag_hc_conn_close(c);
    call->ops->on_body(call, data, true);
    ag_hc_call_free(call);
}

/*
 * A call may be resent once on a fresh connection when a pooled one failed before any
 * response byte (the server closed it as we reused it), if resending cannot repeat an effect
 * the server acted on: the method is idempotent or no body byte was sent.
 */
static bool call_can_retry(const struct ag_hc_conn *c, const struct ag_http_call *call)
{
    return c->calls_done > 0 && !call->retried && !call->response_started && call->keep_replay &&
           (call->idempotent || call->bytes_sent <= call->head_len);
}

static void call_fail(struct ag_http_call *call, int code)
{
    call->done = true;
    if (!call->cancelled)
        call->ops->on_error(call, code, call->err.msg);
    ag_hc_call_free(call);
}

static void call_retry(struct ag_hc_conn *c, struct ag_http_call *call)
{
    struct ag_http_client *client = c->client;
    c->call = NULL;
    c->pending_error = 0;
    call->conn = NULL;
    ag_hc_conn_close(c);
    call->retried = true;
    ag_http_parser_init(&call->parser, &client->cfg.limits);
    client->stats.retries++;
    /* The kept bytes (call->retained) become unsent again: ag_hc_conn_open resets it. */
    if (ag_hc_conn_open(client, call->pool, call) < 0)
        call_fail(call, call_error(call, AG_ENOMEM, "out of memory reconnecting"));
}

/* The run failed with code (call->err says why): retry, or end the call with on_error. */
static void conn_fail(struct ag_hc_conn *c, int code)
{
    struct ag_http_call *call = c->call;
    if (!call) {
        ag_hc_conn_close(c);
        return;
    }
    if (code == AG_ECLOSED && !call->cancelled && call_can_retry(c, call)) {
        call_retry(c, call);
        return;
    }
    c->call = NULL;
    c->pending_error = 0;
    call->conn = NULL;
    ag_hc_conn_close(c);
    call_fail(call, code);
}

/* ---- output ---- */

static void conn_flush(struct ag_hc_conn *c, struct ag_http_call *call)
{
    while (ag_hc_call_unsent(call) > 0) {
        ssize_t n = send(c->io.fd, call->out.data + call->out.off + call->retained,
                         ag_hc_call_unsent(call), MSG_NOSIGNAL);
        if (n > 0) {
            call->bytes_sent += (size_t)n;
            if (call->keep_replay && call->retained + (size_t)n <= AG_HC_REPLAY_MAX) {
                call->retained += (size_t)n;
            } else {
                ag_buf_consume(&call->out, call->retained + (size_t)n);
                call->retained = 0;
                call->keep_replay = false;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->can_write = false;
            return;
        }
        /* Closed or reset: an early answer may still be readable, so the read side decides. */
        c->write_failed = true;
        c->can_read = true;
        return;
    }
}

/* ---- input ---- */

/* The first response byte arrived: what was kept for a retry is no longer needed. */
static void response_byte_arrived(struct ag_http_call *call)
{
    if (call->response_started)
        return;
    call->response_started = true;
    ag_buf_consume(&call->out, call->retained);
    call->retained = 0;
    call->keep_replay = false;
}

/*
 * Reads once into the free input space. Returns bytes read, 0 at EAGAIN, AG_ECLOSED at the end
 * of the stream (*sys_errno 0) or on an error (*sys_errno set).
 */
static ssize_t conn_read(struct ag_hc_conn *c, int *sys_errno)
{
    ssize_t n = ag_net_read(c->io.fd, &c->in);
    *sys_errno = n == AG_ESYS ? errno : 0;
    if (n > 0)
        return n;
    if (n == AG_EAGAIN) {
        c->can_read = false;
        return 0;
    }
    return AG_ECLOSED;
}

/* A complete head of head_len bytes is parsed: skip an interim one, else deliver it. */
static int call_take_head(struct ag_hc_conn *c, struct ag_http_call *call, size_t head_len)
{
    struct ag_http_response *resp = &call->resp;
    const struct ag_http_limits *limits = &c->client->cfg.limits;
    if (resp->status < 200) {
        if (resp->status == 101)
            return call_error(call, AG_EPROTO, "%s switched protocols (101) unasked",
                              c->pool->address);
        ag_buf_consume(&c->in, head_len); /* 100 Continue, 103 Early Hints ... */
        ag_http_parser_init(&call->parser, limits);
        return READ_PROGRESS;
    }
    enum ag_http_body_kind kind =
        ag_http_response_body(resp, call->is_head ? AG_STR("HEAD") : AG_STR("GET"));
    if (kind == AG_HTTP_BODY_LENGTH && resp->content_length > limits->max_body)
        return call_error(call, AG_EPROTO, "the response from %s is over the body limit (%llu)",
                          c->pool->address, (unsigned long long)limits->max_body);
    /* The parser judged Connection and version; only a close-delimited body adds a close. */
    resp->keep_alive = kind != AG_HTTP_BODY_UNTIL_CLOSE && resp->keep_alive;
    resp->body = kind;
    ag_http_body_reader_init(&call->reader, kind, resp->content_length, limits->max_body);
    call->head_done = true;
    call->ops->on_response(call, resp);
    ag_buf_consume(&c->in, head_len);
    return READ_PROGRESS;
}

static int conn_read_head(struct ag_hc_conn *c, struct ag_http_call *call)
{
    const struct ag_http_limits *limits = &c->client->cfg.limits;
    for (;;) {
        if (c->in.len > 0) {
            int rc = ag_http_parse_response(&call->parser, &call->resp, c->in.data + c->in.off,
                                            c->in.len);
            if (rc > 0)
                return call_take_head(c, call, (size_t)rc);
            if (rc != AG_EAGAIN)
                return call_error(call, AG_EPROTO, "malformed response from %s: %s",
                                  c->pool->address, call->parser.detail);
        }
        if (!c->can_read)
            return READ_MORE;
        if (ag_hc_buf_acquire(c->client, &c->in) < 0)
            return call_error(call, AG_ENOMEM, "out of memory reading a response");
        if (ag_buf_space(&c->in) < 1024) {
            /* A head larger than a block: grow up to what the limits allow. */
            c->in.max = limits->max_request_line + limits->max_header_bytes + AG_HC_BLOCK;
            int rc = ag_buf_reserve(&c->in, c->in.cap);
            if (rc == AG_ERANGE && c->in.len < c->in.max)
                rc = ag_buf_reserve(&c->in, c->in.max - c->in.len);
            if (rc == AG_ENOMEM)
                return call_error(call, AG_ENOMEM, "out of memory reading a response");
            if (rc < 0 || ag_buf_space(&c->in) == 0)
                return call_error(call, AG_EPROTO, "the response head from %s is over its limit",
                                  c->pool->address);
        }
        int sys_errno;
        ssize_t n = conn_read(c, &sys_errno);
        if (n == 0)
            return READ_MORE;
        if (n < 0)
            return call_error(call, AG_ECLOSED, "%s %s %s", c->pool->address,
                              sys_errno ? "reset the connection" : "closed the connection",
                              call->response_started ? "in the response head"
                                                     : "before responding");
        response_byte_arrived(call);
    }
}

static int conn_read_body(struct ag_hc_conn *c, struct ag_http_call *call)
{
    for (;;) {
        if (c->in.len > 0 || ag_http_body_done(&call->reader)) {
            const char *in = c->in.data ? c->in.data + c->in.off : "";
            size_t used;
            struct ag_str data;
            int rc = ag_http_body_read(&call->reader, in, c->in.len, &used, &data);
            if (rc < 0)
                return call_error(call, AG_EPROTO, "malformed response body from %s: %s",
                                  c->pool->address, call->reader.detail);
            ag_buf_consume(&c->in, used); /* the bytes stay in place until the next read */
            if (rc == 1) {
                call_complete(c, call, data);
                return READ_PROGRESS;
            }
            if (data.len > 0)
                call->ops->on_body(call, data, false);
            if (used > 0)
                return READ_PROGRESS; /* look at cancel and pause again */
        }
        if (!c->can_read)
            return READ_MORE;
        if (ag_hc_buf_acquire(c->client, &c->in) < 0)
            return call_error(call, AG_ENOMEM, "out of memory reading a response");
        int sys_errno;
        ssize_t n = conn_read(c, &sys_errno);
        if (n == 0)
            return READ_MORE;
        if (n < 0) {
            if (call->reader.kind == AG_HTTP_BODY_UNTIL_CLOSE && sys_errno == 0) {
                call_complete(c, call, (struct ag_str){"", 0}); /* the close ends this body */
                return READ_PROGRESS;
            }
            return call_error(call, AG_ECLOSED, "%s %s before the response body ended",
                              c->pool->address,
                              sys_errno ? "reset the connection" : "closed the connection");
        }
    }
}

/* ---- the run ---- */

/* An idle connection became readable: the server closed it, or sent what nobody asked for. */
static int conn_check_idle(struct ag_hc_conn *c)
{
    if (!c->idle || (c->can_read && !conn_idle_alive(c)))
        ag_hc_conn_close(c);
    return 0;
}

/* Moves the connection and its call as far as they can go; a negative result fails the call. */
static int conn_advance(struct ag_hc_conn *c)
{
    for (;;) {
        if (c->closed)
            return 0;
        struct ag_http_call *call = c->call;
        if (!call)
            return conn_check_idle(c);
        if (call->cancelled) {
            ag_hc_conn_cancel_call(c);
            continue;
        }
        if (c->pending_error)
            return c->pending_error;
        if (c->connecting) {
            if (!c->can_write)
                return 0;
            int result = ag_net_connect_result(c->io.fd);
            if (result < 0)
                return call_error(call, AG_HTTP_ECONNECT, "connect to %s: %s", c->pool->address,
                                  strerror(-result));
            c->connecting = false;
            call->send_started_ms = ag_loop_now(c->client->loop);
        }
        if (c->can_write && !c->write_failed && ag_hc_call_unsent(call) > 0)
            conn_flush(c, call);
        if (call->congested && !c->write_failed && ag_hc_call_unsent(call) <= AG_HC_LOW_WATER) {
            call->congested = false;
            if (call->ops->on_drain) {
                call->ops->on_drain(call);
                continue;
            }
        }
        if (call->paused)
            return 0;
        int rc = call->head_done ? conn_read_body(c, call) : conn_read_head(c, call);
        if (rc <= 0)
            return rc;
    }
}

static void conn_run(struct ag_hc_conn *c)
{
    if (c->in_run || c->closed)
        return;
    c->in_run = true;
    int rc = conn_advance(c);
    if (rc < 0 && !c->closed)
        conn_fail(c, rc);
    c->in_run = false;
    if (c->closed) {
        conn_drop_buffers(c);
        conn_release_if_unused(c);
        return;
    }
    if (c->in.len == 0 && c->in.data)
        conn_drop_buffers(c); /* an idle or waiting connection holds no block */
    if (c->call && c->call->out.len == 0 && c->call->out.data)
        ag_hc_buf_return(c->client, &c->call->out);
    conn_arm_timer(c);
}

static void conn_on_io(struct ag_io *io, unsigned events)
{
    struct ag_hc_conn *c = AG_CONTAINER_OF(io, struct ag_hc_conn, io);
    if (events & AG_IO_READ)
        c->can_read = true;
    if (events & AG_IO_WRITE)
        c->can_write = true;
    conn_run(c);
}
