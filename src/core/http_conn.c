/* The HTTP/1.1 server connection: reads heads and bodies, runs exchanges, writes responses. */
#include "core/http_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/http_body.h"
#include "core/http_fields.h"
#include "core/json.h"
#include "core/net.h"
#include "core/banned.h"

enum {
    BUF_BLOCK = 16384,          /* pooled buffer size for input and output */
    BUF_POOL_MAX = 256,         /* pooled buffers kept per worker */
    EXCHANGE_CACHE_MAX = 64,    /* freed exchanges kept per worker */
    HIGH_WATER = 64 * 1024,     /* queued output over this: stop reading, writers wait */
    LOW_WATER = 16 * 1024,      /* queued output under this again: on_drain */
    OUT_MAX = 64 * 1024 * 1024, /* hard bound on queued output */
    BODY_SPACE_MIN = 4096,      /* free input space guaranteed while a body is read */
    DISCARD_MAX = 1024 * 1024,  /* unread request body dropped before closing instead */
};

struct ag_http_conn {
    struct ag_io io;
    struct ag_http_worker *w;
    struct ag_http_conn *prev, *next;
    struct ag_timer timer;
    uint64_t activity_ms;     /* last read or write progress */
    uint64_t head_started_ms; /* first byte of the head being read */
    struct ag_buf in, out;
    struct ag_http_exchange *ex;
    /* Open: a run after a handler acted from outside the connection. Closed: the free, once
     * the callbacks are over. One node serves both: a close cancels the pending run. */
    struct ag_deferred deferred;
    bool can_read, can_write, closing, closed, in_run;
    uint8_t peer_family;                  /* AF_INET or AF_INET6, 0 when unknown */
    uint8_t peer[16];                     /* the client's address, network order */
    uint8_t peer_text_len;                /* 0 until peer_text is made, on first use */
    char peer_text[INET6_ADDRSTRLEN + 1]; /* the address as text, NUL-terminated */
};

struct ag_http_exchange {
    struct ag_http_conn *conn;
    struct ag_http_exchange *next_free;
    void *data;
    struct ag_http_parser parser;
    struct ag_http_body_reader body;
    int64_t declared; /* Content-Length of the response, or -1 */
    uint64_t written;
    uint64_t discarded;
    size_t continue_at; /* where a 100 Continue goes if on_request started the response */
    bool dispatched;    /* the head is done with: handled or refused */
    bool handler_saw;   /* on_request ran, so on_close is owed */
    bool in_on_request, continue_pending;
    bool body_done, discarding, continue_sent;
    bool started, ended, congested, keep_alive, chunked, drop_body, body_paused, aborted;
    struct ag_http_request req; /* last: the large header array */
};

static void conn_run(struct ag_http_conn *c);
static void conn_close(struct ag_http_conn *c);

/* ---- worker caches ---- */

static int buf_acquire(struct ag_http_worker *w, struct ag_buf *b)
{
    if (b->data)
        return 0;
    char *block = w->buf_pool_len ? w->buf_pool[--w->buf_pool_len] : malloc(BUF_BLOCK);
    if (!block)
        return AG_ENOMEM;
    b->data = block;
    b->cap = BUF_BLOCK;
    b->off = b->len = 0;
    return 0;
}

static void buf_return(struct ag_http_worker *w, struct ag_buf *b)
{
    if (!b->data)
        return;
    if (b->cap == BUF_BLOCK && w->buf_pool_len < BUF_POOL_MAX) {
        if (!w->buf_pool)
            w->buf_pool = malloc(BUF_POOL_MAX * sizeof *w->buf_pool);
        if (w->buf_pool) {
            w->buf_pool[w->buf_pool_len++] = b->data;
            b->data = NULL;
        }
    }
    ag_buf_release(b);
}

void ag_http_worker_release_caches(struct ag_http_worker *w)
{
    while (w->buf_pool_len)
        free(w->buf_pool[--w->buf_pool_len]);
    free(w->buf_pool);
    w->buf_pool = NULL;
    while (w->free_exchanges) {
        struct ag_http_exchange *ex = w->free_exchanges;
        w->free_exchanges = ex->next_free;
        free(ex);
    }
    w->free_exchange_count = 0;
}

static struct ag_http_exchange *exchange_new(struct ag_http_conn *c)
{
    struct ag_http_worker *w = c->w;
    struct ag_http_exchange *ex = w->free_exchanges;
    if (ex) {
        w->free_exchanges = ex->next_free;
        w->free_exchange_count--;
    } else {
        ex = malloc(sizeof *ex);
        if (!ex)
            return NULL;
    }
    /* Everything before the request; the parser resets the request's own fields. */
    memset(ex, 0, offsetof(struct ag_http_exchange, req));
    ex->conn = c;
    ex->declared = -1;
    ag_http_parser_init(&ex->parser, &w->cfg->limits);
    return ex;
}

static void exchange_free(struct ag_http_worker *w, struct ag_http_exchange *ex)
{
    if (w->free_exchange_count < EXCHANGE_CACHE_MAX) {
        ex->next_free = w->free_exchanges;
        w->free_exchanges = ex;
        w->free_exchange_count++;
    } else {
        free(ex);
    }
}

/* ---- output ---- */

static void kick_cb(struct ag_deferred *d)
{
    conn_run(AG_CONTAINER_OF(d, struct ag_http_conn, deferred));
}

/* Makes the connection act on what a handler just did, never inside the handler's own call. */
static void conn_kick(struct ag_http_conn *c)
{
    if (!c->in_run && !c->closed)
        ag_loop_defer_node(c->w->loop, &c->deferred);
}

static int conn_flush(struct ag_http_conn *c)
{
    while (c->out.len > 0) {
        ssize_t n = send(c->io.fd, c->out.data + c->out.off, c->out.len, MSG_NOSIGNAL);
        if (n > 0) {
            ag_buf_consume(&c->out, (size_t)n);
            c->activity_ms = ag_loop_now(c->w->loop);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->can_write = false;
            return 0;
        }
        return AG_ECLOSED;
    }
    return 0;
}

static const char *date_field(struct ag_http_worker *w)
{
    time_t now = time(NULL);
    if (now != w->date_second) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(w->date, sizeof w->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        w->date_second = now;
    }
    return w->date;
}

#define APPEND_LIT(b, lit) ag_buf_append((b), (lit), sizeof(lit) - 1)

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* Queues the interim 100 response, before the final head if on_request already queued one. */
static int send_continue(struct ag_http_conn *c, struct ag_http_exchange *ex)
{
    size_t n = sizeof continue_line - 1;
    int rc = ag_buf_reserve(&c->out, n);
    if (rc < 0)
        return rc;
    ex->continue_sent = true;
    if (!ex->continue_pending)
        return APPEND_LIT(&c->out, continue_line);
    ex->continue_pending = false;
    char *at = c->out.data + c->out.off + ex->continue_at;
    memmove(at + n, at, c->out.len - ex->continue_at);
    memcpy(at, continue_line, n);
    c->out.len += n;
    return 0;
}

/* Starts the response; check says whether the fields need checking (see ag_http_response_pass). */
static int response_head(struct ag_http_exchange *ex, int status,
                         const struct ag_http_header *headers, size_t count, bool check,
                         int64_t content_length)
{
    struct ag_http_conn *c = ex->conn;
    if (ex->started || !c || c->closed)
        return AG_ECLOSED;
    if (status < 200 || status > 599 || (check && !ag_http_fields_valid(headers, count)))
        return AG_EINVAL;
    if (c->w->draining)
        ex->keep_alive = false;

    bool bodiless_status = status == 204 || status == 304;
    ex->drop_body = bodiless_status || ag_str_eq(ex->req.method, AG_STR("HEAD"));
    if (!bodiless_status && content_length == AG_HTTP_LENGTH_UNKNOWN) {
        if (ex->req.version == 11)
            ex->chunked = true;
        else
            ex->keep_alive = false; /* HTTP/1.0: the close ends the body */
    } else if (!bodiless_status) {
        if (content_length < 0)
            return AG_EINVAL;
        ex->declared = content_length;
    }

    struct ag_buf *out = &c->out;
    if (buf_acquire(c->w, out) < 0)
        return AG_ENOMEM;
    if (!ex->body_done && ex->req.expect_continue && !ex->continue_sent) {
        if (ex->in_on_request) {
            /* Whether the body is wanted is known when on_request returns. */
            ex->continue_pending = true;
            ex->continue_at = out->len;
        } else if (send_continue(c, ex) < 0) {
            return AG_ENOMEM;
        }
    }
    static const char cl[] = "Content-Length: ", te[] = "Transfer-Encoding: chunked\r\n",
                      close[] = "Connection: close\r\n", ka[] = "Connection: keep-alive\r\n";
    char status_num[3], length_num[20]; /* the status is 200..599: three digits */
    status_num[0] = (char)('0' + status / 100);
    status_num[1] = (char)('0' + status / 10 % 10);
    status_num[2] = (char)('0' + status % 10);
    size_t length_len = 0;
    const char *reason = ag_http_reason(status);
    size_t reason_len = strlen(reason);
    size_t need = sizeof "HTTP/1.1 " - 1 + sizeof status_num + 1 + reason_len + 2 +
                  sizeof "Date: " - 1 + 29 + 2 + 2;
    if (ex->declared >= 0) {
        length_len = ag_u64_dec((uint64_t)ex->declared, length_num);
        need += sizeof cl - 1 + length_len + 2;
    } else if (ex->chunked) {
        need += sizeof te - 1;
    }
    const char *conn_field = NULL;
    size_t conn_len = 0;
    if (!ex->keep_alive) {
        conn_field = close;
        conn_len = sizeof close - 1;
    } else if (ex->req.version == 10) {
        conn_field = ka;
        conn_len = sizeof ka - 1;
    }
    need += conn_len + ag_http_fields_size(headers, count);
    int rc = ag_buf_reserve(out, need);
    if (rc < 0)
        return rc;
    char *at = ag_buf_tail(out);
    at = ag_http_put(at, "HTTP/1.1 ", sizeof "HTTP/1.1 " - 1);
    at = ag_http_put(at, status_num, sizeof status_num);
    *at++ = ' ';
    at = ag_http_put(at, reason, reason_len);
    at = ag_http_put(at, "\r\nDate: ", sizeof "\r\nDate: " - 1);
    at = ag_http_put(at, date_field(c->w), 29);
    *at++ = '\r';
    *at++ = '\n';
    if (ex->declared >= 0) {
        at = ag_http_put(at, cl, sizeof cl - 1);
        at = ag_http_put(at, length_num, length_len);
        *at++ = '\r';
        *at++ = '\n';
    } else if (ex->chunked) {
        at = ag_http_put(at, te, sizeof te - 1);
    }
    if (conn_len)
        at = ag_http_put(at, conn_field, conn_len);
    at = ag_http_fields_put(at, headers, count);
    *at++ = '\r';
    *at++ = '\n';
    ag_buf_commit(out, need);
    if (ex->drop_body)
        ex->chunked = false;
    ex->started = true;
    conn_kick(c);
    return 0;
}

int ag_http_response_start(struct ag_http_exchange *ex, int status,
                           const struct ag_http_header *headers, size_t count,
                           int64_t content_length)
{
    return response_head(ex, status, headers, count, true, content_length);
}

int ag_http_response_pass(struct ag_http_exchange *ex, int status,
                          const struct ag_http_header *headers, size_t count,
                          int64_t content_length)
{
    return response_head(ex, status, headers, count, false, content_length);
}

int ag_http_response_write(struct ag_http_exchange *ex, const void *data, size_t len)
{
    struct ag_http_conn *c = ex->conn;
    if (!ex->started || ex->ended || !c || c->closed)
        return AG_ECLOSED;
    if (ex->drop_body || len == 0)
        return 0;
    if (ex->declared >= 0 && (uint64_t)ex->declared - ex->written < len)
        return AG_ERANGE;
    if (c->out.len + len > OUT_MAX)
        return AG_ERANGE;
    int rc = 0;
    size_t old_len = c->out.len;
    if (ex->chunked) {
        char head[20];
        rc = ag_buf_append(&c->out, head, ag_http_chunk_header(head, len));
        rc = rc ? rc : ag_buf_append(&c->out, data, len);
        rc = rc ? rc : APPEND_LIT(&c->out, "\r\n");
    } else {
        rc = ag_buf_append(&c->out, data, len);
    }
    if (rc < 0) {
        c->out.len = old_len;
        return rc;
    }
    ex->written += len;
    if (c->out.len > HIGH_WATER)
        ex->congested = true;
    conn_kick(c);
    return 0;
}

int ag_http_response_end(struct ag_http_exchange *ex)
{
    struct ag_http_conn *c = ex->conn;
    if (!ex->started || ex->ended || !c || c->closed)
        return AG_ECLOSED;
    if (ex->chunked && APPEND_LIT(&c->out, AG_HTTP_LAST_CHUNK) < 0)
        ex->keep_alive = false;
    if (!ex->drop_body && ex->declared >= 0 && ex->written < (uint64_t)ex->declared)
        ex->keep_alive = false; /* short of its Content-Length: only a close can end it */
    ex->ended = true;
    if (!ex->body_done) {
        if (ex->req.expect_continue && !ex->continue_sent) {
            ex->body_done = true; /* the client waits for 100: never read its body */
            ex->keep_alive = false;
        } else {
            ex->discarding = true;
        }
    }
    conn_kick(c);
    return 0;
}

int ag_http_response_abort(struct ag_http_exchange *ex)
{
    struct ag_http_conn *c = ex->conn;
    if (ex->ended || !c || c->closed)
        return AG_ECLOSED;
    ex->aborted = true;
    ex->ended = true;
    ex->keep_alive = false;
    ex->body_done = true; /* nothing more is read: the connection ends after the output */
    ex->continue_pending = false;
    c->closing = true;
    conn_kick(c);
    return 0;
}

bool ag_http_response_congested(const struct ag_http_exchange *ex)
{
    return ex->conn && ex->conn->out.len > HIGH_WATER;
}

int ag_http_respond(struct ag_http_exchange *ex, int status, const char *content_type,
                    const void *body, size_t len)
{
    struct ag_http_header h = {AG_STR("Content-Type"), ag_str_from_cstr(content_type)};
    int rc = ag_http_response_start(ex, status, &h, content_type ? 1 : 0, (int64_t)len);
    rc = rc ? rc : ag_http_response_write(ex, body, len);
    return rc ? rc : ag_http_response_end(ex);
}

int ag_http_respond_problem(struct ag_http_exchange *ex, int status, const char *detail)
{
    return ag_http_respond_problem_with(ex, status, detail, NULL, 0);
}

int ag_http_respond_problem_with(struct ag_http_exchange *ex, int status, const char *detail,
                                 const struct ag_http_header *headers, size_t count)
{
    enum { EXTRA_MAX = 8 };
    if (count > EXTRA_MAX)
        return AG_EINVAL;
    struct ag_http_header fields[EXTRA_MAX + 1] = {
        {AG_STR("Content-Type"), AG_STR("application/problem+json")}};
    for (size_t i = 0; i < count; i++)
        fields[i + 1] = headers[i];
    struct ag_buf body;
    ag_buf_init(&body, 8192);
    const char *title = ag_http_reason(status);
    int rc = ag_buf_appendf(&body, "{\"type\":\"about:blank\",\"title\":\"%s\",\"status\":%d",
                            title, status);
    if (rc == 0 && detail) {
        rc = APPEND_LIT(&body, ",\"detail\":");
        rc = rc ? rc : ag_json_append_string(&body, ag_str_from_cstr(detail));
    }
    rc = rc ? rc : APPEND_LIT(&body, "}");
    rc = rc ? rc : ag_http_response_start(ex, status, fields, count + 1, (int64_t)body.len);
    rc = rc ? rc : ag_http_response_write(ex, body.data, body.len);
    rc = rc ? rc : ag_http_response_end(ex);
    ag_buf_release(&body);
    return rc;
}

/* ---- exchanges ---- */

const struct ag_http_request *ag_http_exchange_request(const struct ag_http_exchange *ex)
{
    return &ex->req;
}

struct ag_loop *ag_http_exchange_loop(const struct ag_http_exchange *ex)
{
    return ex->conn->w->loop;
}

void *ag_http_exchange_worker(const struct ag_http_exchange *ex)
{
    return ex->conn->w->data;
}

/* Formats the peer address into c->peer_text, once per connection. */
static void peer_format(struct ag_http_conn *c)
{
    char *text = c->peer_text;
    const char *r = NULL;
    if (c->peer_family == AF_INET) {
        /* By hand: inet_ntop costs more than the rest of a proxied request's bookkeeping. */
        size_t n = 0;
        for (int i = 0; i < 4; i++) {
            unsigned v = c->peer[i];
            if (v >= 100)
                text[n++] = (char)('0' + v / 100);
            if (v >= 10)
                text[n++] = (char)('0' + v / 10 % 10);
            text[n++] = (char)('0' + v % 10);
            text[n++] = i < 3 ? '.' : '\0';
        }
        r = text;
    } else if (c->peer_family == AF_INET6) {
        r = inet_ntop(AF_INET6, c->peer, text, INET6_ADDRSTRLEN);
    }
    if (!r)
        memcpy(text, "unknown", sizeof "unknown");
    c->peer_text_len = (uint8_t)strlen(text);
}

int ag_http_exchange_peer(const struct ag_http_exchange *ex, char *out, size_t len)
{
    struct ag_http_conn *c = ex->conn;
    if (c->peer_text_len == 0)
        peer_format(c);
    size_t n = c->peer_text_len;
    if (n + 1 > len)
        return AG_ERANGE;
    memcpy(out, c->peer_text, n + 1);
    return (int)n;
}

void ag_http_exchange_pause_body(struct ag_http_exchange *ex, bool paused)
{
    if (ex->body_paused == paused)
        return;
    ex->body_paused = paused;
    if (!paused)
        conn_kick(ex->conn);
}

void *ag_http_exchange_ctx(const struct ag_http_exchange *ex)
{
    return ex->conn->w->cfg->ctx;
}

void ag_http_exchange_set_data(struct ag_http_exchange *ex, void *data)
{
    ex->data = data;
}

void *ag_http_exchange_data(const struct ag_http_exchange *ex)
{
    return ex->data;
}

/* Ends the exchange; its head bytes leave the input so the next request starts there. */
static void exchange_finish(struct ag_http_conn *c, bool completed)
{
    struct ag_http_exchange *ex = c->ex;
    const struct ag_http_handler *h = c->w->cfg->handler;
    c->ex = NULL;
    if (ex->handler_saw && h->on_close)
        h->on_close(ex, completed);
    if (ex->dispatched && ex->keep_alive && !c->w->draining)
        ag_buf_consume(&c->in, ex->req.head_len);
    else
        c->closing = true;
    c->head_started_ms = 0;
    exchange_free(c->w, ex);
}

/*
 * Answers a request that cannot be handled (bad head, body refused, timeout) with a problem
 * response and a close. The exchange becomes a dispatched one that reads nothing more.
 */
static void exchange_refuse(struct ag_http_conn *c, int status, const char *detail)
{
    struct ag_http_exchange *ex = c->ex;
    ex->keep_alive = false;
    ex->body_done = true;
    ex->continue_pending = false; /* never invite a body that will not be read */
    if (!ex->started) {
        if (!ex->dispatched) {
            /* The head may be half parsed: answer as HTTP/1.1 to a method we do not trust. */
            ex->req.method = AG_STR_NULL;
            ex->req.version = 11;
        }
        const struct ag_http_server_config *cfg = c->w->cfg;
        ag_http_respond_problem_with(ex, status, detail, cfg->refusal_headers,
                                     cfg->refusal_header_count);
    }
    ex->ended = true;
    ex->dispatched = true;
    c->closing = true;
}

/* ---- input ---- */

enum { READ_MORE = 0, READ_PROGRESS = 1 };

/* Reads once into the free input space. Returns bytes read, 0 at EAGAIN, AG_ECLOSED at EOF. */
static ssize_t conn_read(struct ag_http_conn *c)
{
    ssize_t n = ag_net_read(c->io.fd, &c->in);
    if (n > 0) {
        c->activity_ms = ag_loop_now(c->w->loop);
        return n;
    }
    if (n == AG_EAGAIN) {
        c->can_read = false;
        return 0;
    }
    return AG_ECLOSED;
}

static void exchange_dispatch(struct ag_http_conn *c, struct ag_http_exchange *ex)
{
    const struct ag_http_request *req = &ex->req;
    ex->dispatched = true;
    ex->keep_alive = req->keep_alive && !c->w->draining;
    ag_http_body_reader_init(&ex->body, req->body, req->content_length, c->w->cfg->limits.max_body);
    ex->body_done = req->body == AG_HTTP_BODY_NONE;
    if (!ex->body_done && ag_buf_space(&c->in) < BODY_SPACE_MIN) {
        /* The body is read behind the head, which must not move while the request lives. */
        const char *before = c->in.data + c->in.off;
        if (ag_buf_reserve(&c->in, BODY_SPACE_MIN) < 0) {
            exchange_refuse(c, 503, "out of memory");
            return;
        }
        if (c->in.data + c->in.off != before) {
            ag_http_parser_init(&ex->parser, &c->w->cfg->limits);
            ag_http_parse_request(&ex->parser, &ex->req, c->in.data + c->in.off, c->in.len);
        }
    }
    ex->handler_saw = true;
    ex->in_on_request = true;
    c->w->cfg->handler->on_request(ex);
    ex->in_on_request = false;
    if (ex->continue_pending) {
        if (ex->ended) /* refused without reading the body: no 100, and the body stays unread */
            ex->continue_pending = false;
        else if (send_continue(c, ex) < 0)
            ex->keep_alive = false;
    }
}

static int conn_read_head(struct ag_http_conn *c, struct ag_http_exchange *ex)
{
    for (;;) {
        if (c->in.len > 0) {
            if (c->head_started_ms == 0)
                c->head_started_ms = ag_loop_now(c->w->loop);
            int rc =
                ag_http_parse_request(&ex->parser, &ex->req, c->in.data + c->in.off, c->in.len);
            if (rc > 0) {
                exchange_dispatch(c, ex);
                return READ_PROGRESS;
            }
            if (rc != AG_EAGAIN) {
                exchange_refuse(c, ex->parser.status, ex->parser.detail);
                return READ_PROGRESS;
            }
        }
        if (!c->can_read)
            return READ_MORE;
        if (buf_acquire(c->w, &c->in) < 0)
            return AG_ENOMEM;
        if (ag_buf_space(&c->in) < 1024) {
            /* A head larger than the block: grow (doubling) up to what the limits allow. The
             * parser refuses an over-long head before this can fail; if it ever did, 431. */
            if (ag_buf_reserve(&c->in, 1024) < 0) {
                exchange_refuse(c, 431, "the request head is over its size limit");
                return READ_PROGRESS;
            }
        }
        ssize_t n = conn_read(c);
        if (n == 0)
            return READ_MORE;
        if (n < 0)
            return AG_ECLOSED; /* EOF between requests is the normal end of a connection */
    }
}

static int conn_read_body(struct ag_http_conn *c, struct ag_http_exchange *ex)
{
    const struct ag_http_handler *h = c->w->cfg->handler;
    for (;;) {
        char *body = c->in.data + c->in.off + ex->req.head_len;
        size_t avail = c->in.len - ex->req.head_len;
        if (avail > 0) {
            size_t used;
            struct ag_str data;
            int rc = ag_http_body_read(&ex->body, body, avail, &used, &data);
            if (rc < 0) {
                exchange_refuse(c, ex->body.status, ex->body.detail);
                return READ_PROGRESS;
            }
            if (data.len > 0 || rc == 1) {
                if (!ex->discarding && h->on_body) {
                    h->on_body(ex, data, rc == 1);
                } else if ((ex->discarded += data.len) > DISCARD_MAX) {
                    ex->keep_alive = false;
                    ex->body_done = true;
                    return READ_PROGRESS;
                }
            }
            if (used < avail)
                memmove(body, body + used, avail - used);
            c->in.len -= used;
            if (rc == 1)
                ex->body_done = true;
            if (rc == 1 || used > 0)
                return READ_PROGRESS;
        }
        if (ex->req.expect_continue && !ex->continue_sent && !ex->ended) {
            if (send_continue(c, ex) < 0)
                return AG_ENOMEM;
            return READ_PROGRESS;
        }
        if (!c->can_read)
            return READ_MORE;
        if (ag_buf_space(&c->in) == 0)
            return AG_ERANGE;
        ssize_t n = conn_read(c);
        if (n == 0)
            return READ_MORE;
        if (n < 0)
            return AG_ECLOSED; /* the client left before its body ended */
    }
}

/* Moves the connection as far as it can go; a negative result closes it. */
static int conn_advance(struct ag_http_conn *c)
{
    const struct ag_http_handler *h = c->w->cfg->handler;
    for (;;) {
        if (c->out.len > 0 && c->can_write) {
            int rc = conn_flush(c);
            if (rc < 0)
                return rc;
        }
        struct ag_http_exchange *ex = c->ex;
        if (!ex) {
            if (c->closing || c->out.len > HIGH_WATER || (c->in.len == 0 && !c->can_read))
                return 0;
            if (c->w->draining && c->in.len == 0) {
                c->closing = true;
                return 0;
            }
            if (c->in.len == 0) {
                /* Read before taking an exchange, so an idle connection holds none. */
                if (buf_acquire(c->w, &c->in) < 0)
                    return AG_ENOMEM;
                ssize_t n = conn_read(c);
                if (n <= 0)
                    return (int)n;
            }
            ex = c->ex = exchange_new(c);
            if (!ex)
                return AG_ENOMEM;
        }
        int rc;
        if (!ex->dispatched) {
            rc = conn_read_head(c, ex);
        } else if (ex->congested && c->out.len <= LOW_WATER) {
            ex->congested = false;
            if (h->on_drain)
                h->on_drain(ex);
            rc = READ_PROGRESS;
        } else if (!ex->body_done) {
            if (c->out.len > HIGH_WATER && !ex->discarding)
                return 0; /* the client reads slower than it sends: let it catch up */
            if (ex->body_paused && !ex->discarding)
                return 0; /* the handler cannot take more yet */
            rc = conn_read_body(c, ex);
        } else if (ex->ended) {
            exchange_finish(c, !ex->aborted);
            rc = READ_PROGRESS;
        } else {
            return 0; /* the handler is at work */
        }
        if (rc <= 0)
            return rc;
    }
}

/* ---- timers ---- */

/* When the connection's current wait must end, or 0 when nothing bounds it. */
static uint64_t conn_deadline(const struct ag_http_conn *c)
{
    const struct ag_http_server_config *cfg = c->w->cfg;
    const struct ag_http_exchange *ex = c->ex;
    if (c->out.len > 0 && !c->can_write)
        return c->activity_ms + cfg->write_timeout_ms;
    if (!ex && c->in.len == 0)
        return c->activity_ms + cfg->idle_timeout_ms;
    if (!ex || !ex->dispatched) /* a head is arriving, or waits in the buffer */
        return (c->head_started_ms ? c->head_started_ms : c->activity_ms) + cfg->header_timeout_ms;
    if (!ex->body_done && c->out.len <= HIGH_WATER && !ex->body_paused)
        return c->activity_ms + cfg->body_timeout_ms;
    return 0;
}

static void conn_on_timer(struct ag_timer *t)
{
    struct ag_http_conn *c = AG_CONTAINER_OF(t, struct ag_http_conn, timer);
    uint64_t deadline = conn_deadline(c);
    uint64_t now = ag_loop_now(c->w->loop);
    if (deadline == 0)
        return;
    if (deadline > now) {
        ag_timer_start(c->w->loop, t, deadline - now);
        return;
    }
    struct ag_http_exchange *ex = c->ex;
    bool waiting_on_client = ex && (!ex->dispatched || !ex->body_done) && !ex->started &&
                             !(c->out.len > 0 && !c->can_write);
    if (waiting_on_client && (ex->dispatched || c->in.len > 0)) {
        exchange_refuse(c, 408,
                        ex->dispatched ? "the request body stalled"
                                       : "the request head took too long to arrive");
        conn_run(c);
        if (!c->closed)
            conn_close(c); /* best effort: the 408 went out if the socket took it */
        return;
    }
    conn_close(c);
}

static void conn_arm_timer(struct ag_http_conn *c)
{
    uint64_t deadline = conn_deadline(c);
    if (deadline == 0)
        return;
    if (ag_timer_active(&c->timer) && c->timer.deadline_ms <= deadline)
        return; /* it fires early, finds the later deadline and re-arms: no heap work now */
    uint64_t now = ag_loop_now(c->w->loop);
    ag_timer_start(c->w->loop, &c->timer, deadline > now ? deadline - now : 0);
}

/* ---- lifecycle ---- */

static void conn_run(struct ag_http_conn *c)
{
    if (c->in_run || c->closed)
        return;
    c->in_run = true;
    int rc = conn_advance(c);
    c->in_run = false;
    if (rc < 0 || (c->closing && c->out.len == 0)) {
        conn_close(c);
        return;
    }
    if (c->in.len == 0 && c->in.data && !c->ex)
        buf_return(c->w, &c->in);
    if (c->out.len == 0 && c->out.data)
        buf_return(c->w, &c->out);
    conn_arm_timer(c);
}

static void conn_on_io(struct ag_io *io, unsigned events)
{
    struct ag_http_conn *c = AG_CONTAINER_OF(io, struct ag_http_conn, io);
    if (events & AG_IO_READ)
        c->can_read = true;
    if (events & AG_IO_WRITE)
        c->can_write = true;
    conn_run(c);
}

static void conn_free(struct ag_deferred *d)
{
    free(AG_CONTAINER_OF(d, struct ag_http_conn, deferred));
}

static void conn_close(struct ag_http_conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    struct ag_http_worker *w = c->w;
    if (c->ex) {
        struct ag_http_exchange *ex = c->ex;
        c->ex = NULL;
        if (ex->handler_saw && w->cfg->handler->on_close)
            w->cfg->handler->on_close(ex, false);
        exchange_free(w, ex);
    }
    ag_loop_io_remove(w->loop, &c->io);
    close(c->io.fd);
    ag_timer_stop(w->loop, &c->timer);
    buf_return(w, &c->in);
    buf_return(w, &c->out);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->conn_count--;
    ag_loop_defer_cancel(w->loop, &c->deferred);
    ag_deferred_init(&c->deferred, conn_free);
    ag_loop_defer_node(w->loop, &c->deferred);
    if (w->draining && w->conn_count == 0)
        ag_loop_stop(w->loop);
}

static void conn_set_peer(struct ag_http_conn *c, const struct sockaddr *peer)
{
    if (!peer)
        return;
    if (peer->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)peer;
        memcpy(c->peer, &in4->sin_addr, 4);
        c->peer_family = AF_INET;
    } else if (peer->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)peer;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            memcpy(c->peer, &in6->sin6_addr.s6_addr[12], 4);
            c->peer_family = AF_INET;
        } else {
            memcpy(c->peer, &in6->sin6_addr, 16);
            c->peer_family = AF_INET6;
        }
    }
}

void ag_http_conn_accept(struct ag_http_worker *w, int fd, const struct sockaddr *peer)
{
    struct ag_http_conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->w = w;
    conn_set_peer(c, peer);
    /* Input grows past one block only for a head over 16 KiB, up to what the limits allow. */
    ag_buf_init(&c->in, w->cfg->limits.max_request_line + w->cfg->limits.max_header_bytes +
                            BODY_SPACE_MIN + 4096);
    ag_buf_init(&c->out, OUT_MAX);
    ag_timer_init(&c->timer, conn_on_timer);
    ag_deferred_init(&c->deferred, kick_cb);
    c->activity_ms = ag_loop_now(w->loop);
    if (ag_loop_io_add(w->loop, &c->io, fd, AG_IO_READ | AG_IO_WRITE | AG_IO_EDGE, conn_on_io) <
        0) {
        close(fd);
        free(c);
        return;
    }
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->conn_count++;
    conn_arm_timer(c);
}

void ag_http_conn_drain_all(struct ag_http_worker *w)
{
    for (struct ag_http_conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (!c->ex && c->in.len == 0)
            c->closing = true;
        else if (c->ex)
            c->ex->keep_alive = false;
        if (c->closing && c->out.len == 0)
            conn_close(c);
    }
    if (w->conn_count == 0)
        ag_loop_stop(w->loop);
}

void ag_http_conn_close_all(struct ag_http_worker *w)
{
    while (w->conns)
        conn_close(w->conns);
}
