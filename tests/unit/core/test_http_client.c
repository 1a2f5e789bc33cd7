/* Unit tests for src/core/http_client.c: real servers on loopback, and scripted misbehaviour. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/http_client.h"
#include "core/http_server.h"
#include "core/loop.h"
#include "core/banned.h"

/*
 * Durations below only make timeouts happen or give a peer time to act; nothing asserts on how
 * long anything took. GUARD_MS turns a hang into a failure.
 */
enum { GUARD_MS = 30000, SETTLE_MS = 50, PATTERN_MOD = 251 };

/* ---- the loop and the calls in flight ---- */

static struct ag_loop *loop;
static int pending; /* calls started and not yet ended */
static struct ag_timer guard_timer, stop_timer;
static bool guard_fired;

static void guard_cb(struct ag_timer *t)
{
    (void)t;
    guard_fired = true;
    ag_loop_stop(loop);
}

static void stop_cb(struct ag_timer *t)
{
    (void)t;
    ag_loop_stop(loop);
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(ag_loop_new(&loop, NULL), 0);
    ag_timer_init(&guard_timer, guard_cb);
    ag_timer_init(&stop_timer, stop_cb);
    pending = 0;
    guard_fired = false;
    return 0;
}

/* Runs the loop until every call started has ended. */
static void run_calls(void)
{
    if (pending == 0)
        return;
    ag_timer_start(loop, &guard_timer, GUARD_MS);
    ag_loop_run(loop);
    ag_timer_stop(loop, &guard_timer);
    assert_false(guard_fired);
    assert_int_equal(pending, 0);
}

/* Runs the loop for ms, so that a callback that should not come has its chance to. */
static void settle(uint64_t ms)
{
    ag_timer_start(loop, &stop_timer, ms);
    ag_loop_run(loop);
}

/* Runs the loop until the client has want idle connections. */
struct idle_wait {
    struct ag_timer timer;
    struct ag_http_client *client;
    size_t want;
};

static void idle_wait_cb(struct ag_timer *t)
{
    struct idle_wait *w = AG_CONTAINER_OF(t, struct idle_wait, timer);
    struct ag_http_client_stats s;
    ag_http_client_stats(w->client, &s);
    if (s.idle == w->want)
        ag_loop_stop(loop);
    else
        ag_timer_start(loop, t, 2);
}

static void run_until_idle(struct ag_http_client *client, size_t want)
{
    struct idle_wait w = {.client = client, .want = want};
    ag_timer_init(&w.timer, idle_wait_cb);
    ag_timer_start(loop, &w.timer, 0);
    ag_timer_start(loop, &guard_timer, GUARD_MS);
    ag_loop_run(loop);
    ag_timer_stop(loop, &guard_timer);
    ag_timer_stop(loop, &w.timer);
    assert_false(guard_fired);
}

/* ---- a recorder of one call's callbacks ---- */

struct rec {
    struct ag_http_call *call;
    int responses, pieces, lasts, errors, drains, ends;
    int status;
    uint64_t content_length;
    enum ag_http_body_kind body_kind;
    bool keep_alive;
    char echo_header[64];
    int code;
    char msg[256];
    bool started_at_error;
    uint64_t body_len;
    uint32_t body_hash;
    char body[256]; /* the first bytes, NUL-terminated */
    bool pattern_broken;
    /* behaviour */
    bool check_pattern, cancel_on_first_piece, stop_on_first_piece, pause_on_first_piece;
    bool paused;
    int pieces_while_paused;
    struct ag_timer resume_timer;
    void (*on_end)(struct rec *r);
    struct ag_http_client *client; /* for on_end chains */
    int chain_left;
    const char *address;
    /* a streamed request body */
    uint64_t to_send, sent, rng;
    uint32_t sent_hash;
    size_t piece;
};

static uint32_t fnv1a(uint32_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

#define FNV_START 2166136261u

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof *r);
    r->body_hash = r->sent_hash = FNV_START;
    r->rng = 0x9e3779b97f4a7c15u;
}

static void rec_end(struct rec *r)
{
    r->call = NULL;
    r->ends++;
    if (r->on_end)
        r->on_end(r);
    if (--pending == 0)
        ag_loop_stop(loop);
}

static void rec_on_response(struct ag_http_call *call, const struct ag_http_response *resp)
{
    struct rec *r = ag_http_call_ctx(call);
    r->responses++;
    r->status = resp->status;
    r->content_length = resp->content_length;
    r->body_kind = resp->body;
    r->keep_alive = resp->keep_alive;
    struct ag_str echo = ag_http_header_get(resp->headers, resp->header_count, AG_STR("x-echo"));
    if (echo.p && echo.len < sizeof r->echo_header) {
        memcpy(r->echo_header, echo.p, echo.len);
        r->echo_header[echo.len] = '\0';
    }
}

static void resume_cb(struct ag_timer *t)
{
    struct rec *r = AG_CONTAINER_OF(t, struct rec, resume_timer);
    r->paused = false;
    ag_http_call_pause(r->call, false);
}

static void rec_on_body(struct ag_http_call *call, struct ag_str data, bool last)
{
    struct rec *r = ag_http_call_ctx(call);
    if (data.len > 0)
        r->pieces++;
    if (r->paused)
        r->pieces_while_paused++;
    if (r->check_pattern)
        for (size_t i = 0; i < data.len; i++)
            if ((unsigned char)data.p[i] != (r->body_len + i) % PATTERN_MOD)
                r->pattern_broken = true;
    if (r->body_len < sizeof r->body - 1) {
        size_t n = sizeof r->body - 1 - (size_t)r->body_len;
        n = n < data.len ? n : data.len;
        memcpy(r->body + r->body_len, data.p, n);
        r->body[r->body_len + n] = '\0';
    }
    r->body_len += data.len;
    r->body_hash = fnv1a(r->body_hash, data.p, data.len);
    if (last) {
        r->lasts++;
        rec_end(r);
        return;
    }
    if (r->pieces == 1 && r->cancel_on_first_piece) {
        ag_http_call_cancel(call);
        rec_end(r);
    } else if (r->pieces == 1 && r->stop_on_first_piece) {
        ag_http_call_pause(call, true); /* else the run goes on reading */
        ag_loop_stop(loop);
    } else if (r->pieces == 1 && r->pause_on_first_piece) {
        ag_http_call_pause(call, true);
        r->paused = true;
        ag_timer_init(&r->resume_timer, resume_cb);
        ag_timer_start(loop, &r->resume_timer, 30);
    }
}

static void rec_on_error(struct ag_http_call *call, int code, const char *message)
{
    struct rec *r = ag_http_call_ctx(call);
    r->errors++;
    r->code = code;
    r->started_at_error = ag_http_call_response_started(call);
    snprintf(r->msg, sizeof r->msg, "%s", message);
    rec_end(r);
}

/* Writes pseudo-random pieces until the call is congested or the body is all written. */
static void pump(struct rec *r)
{
    unsigned char piece[10007]; /* an odd size: chunks never line up with blocks */
    while (r->sent < r->to_send && !ag_http_call_congested(r->call)) {
        size_t n =
            r->to_send - r->sent < sizeof piece ? (size_t)(r->to_send - r->sent) : sizeof piece;
        for (size_t i = 0; i < n; i++) {
            r->rng ^= r->rng << 13;
            r->rng ^= r->rng >> 7;
            r->rng ^= r->rng << 17;
            piece[i] = (unsigned char)r->rng;
        }
        assert_int_equal(ag_http_call_write(r->call, piece, n), 0);
        r->sent_hash = fnv1a(r->sent_hash, piece, n);
        r->sent += n;
    }
}

static void rec_on_drain(struct ag_http_call *call)
{
    struct rec *r = ag_http_call_ctx(call);
    r->drains++;
    pump(r);
    if (r->sent == r->to_send)
        ag_http_call_end(call); /* chunked: the last chunk; Content-Length: a check */
}

static const struct ag_http_call_ops rec_ops = {
    .on_response = rec_on_response,
    .on_body = rec_on_body,
    .on_drain = rec_on_drain,
    .on_error = rec_on_error,
};

static struct ag_http_client *client_new(const struct ag_http_client_config *cfg)
{
    struct ag_http_client_config defaults;
    ag_http_client_config_defaults(&defaults);
    struct ag_http_client *client = NULL;
    struct ag_err err = {0};
    assert_int_equal(ag_http_client_new(loop, cfg ? cfg : &defaults, &client, &err), 0);
    return client;
}

/* Starts req for r; the call must start. */
static void start(struct ag_http_client *client, struct rec *r,
                  const struct ag_http_client_request *req)
{
    struct ag_err err = {0};
    int rc = ag_http_client_request(client, req, &rec_ops, r, &r->call, &err);
    if (rc != 0)
        fail_msg("request: %s: %s", ag_err_name(rc), err.msg);
    pending++;
}

static void get(struct ag_http_client *client, struct rec *r, const char *address,
                const char *target)
{
    struct ag_http_client_request req = {
        .address = address, .method = AG_STR("GET"), .target = ag_str_from_cstr(target)};
    start(client, r, &req);
}

static void assert_stats(struct ag_http_client *client, size_t connections, size_t idle,
                         uint64_t connects, uint64_t reuses, uint64_t retries)
{
    struct ag_http_client_stats s;
    ag_http_client_stats(client, &s);
    assert_int_equal(s.connections, connections);
    assert_int_equal(s.idle, idle);
    assert_int_equal(s.connects, connects);
    assert_int_equal(s.reuses, reuses);
    assert_int_equal(s.retries, retries);
    assert_int_equal(s.calls, 0);
}

/* ---- the project's own server, with a few routes ---- */

struct route_state {
    struct ag_http_exchange *ex;
    bool echo;
    uint64_t left, off;
};

static void bytes_pump(struct route_state *st)
{
    unsigned char piece[8192];
    while (st->left > 0 && !ag_http_response_congested(st->ex)) {
        size_t n = st->left < sizeof piece ? (size_t)st->left : sizeof piece;
        for (size_t i = 0; i < n; i++)
            piece[i] = (unsigned char)((st->off + i) % PATTERN_MOD);
        if (ag_http_response_write(st->ex, piece, n) < 0)
            return;
        st->left -= n;
        st->off += n;
    }
    if (st->left == 0)
        ag_http_response_end(st->ex);
}

static void srv_on_request(struct ag_http_exchange *ex)
{
    const struct ag_http_request *req = ag_http_exchange_request(ex);
    struct ag_str path = req->path;
    if (ag_str_eq(path, AG_STR("/hello"))) {
        struct ag_str echo = ag_http_header_get(req->headers, req->header_count, AG_STR("x-test"));
        struct ag_http_header h[] = {{AG_STR("Content-Type"), AG_STR("text/plain")},
                                     {AG_STR("X-Echo"), echo.p ? echo : AG_STR("none")}};
        if (ag_http_response_start(ex, 200, h, 2, 11) == 0) {
            ag_http_response_write(ex, "hello world", 11);
            ag_http_response_end(ex);
        }
    } else if (ag_str_eq(path, AG_STR("/empty"))) {
        ag_http_respond(ex, 204, NULL, "", 0);
    } else if (ag_str_has_prefix(path, AG_STR("/bytes/"))) {
        uint64_t n = 0;
        struct ag_str digits = {path.p + 7, path.len - 7};
        struct route_state *st = calloc(1, sizeof *st);
        if (!st || ag_str_to_u64(digits, 1u << 30, &n) < 0) {
            free(st);
            ag_http_respond(ex, 400, NULL, "", 0);
            return;
        }
        st->ex = ex;
        st->left = n;
        ag_http_exchange_set_data(ex, st);
        if (ag_http_response_start(ex, 200, NULL, 0, (int64_t)n) == 0)
            bytes_pump(st);
    } else if (ag_str_eq(path, AG_STR("/echo"))) {
        struct route_state *st = calloc(1, sizeof *st);
        if (!st) {
            ag_http_respond(ex, 503, NULL, "", 0);
            return;
        }
        st->ex = ex;
        st->echo = true;
        ag_http_exchange_set_data(ex, st);
        ag_http_response_start(ex, 200, NULL, 0, AG_HTTP_LENGTH_UNKNOWN);
    } else {
        ag_http_respond(ex, 404, NULL, "", 0);
    }
}

static void srv_on_body(struct ag_http_exchange *ex, struct ag_str data, bool last)
{
    struct route_state *st = ag_http_exchange_data(ex);
    if (!st || !st->echo)
        return;
    ag_http_response_write(ex, data.p, data.len);
    if (last)
        ag_http_response_end(ex);
}

static void srv_on_drain(struct ag_http_exchange *ex)
{
    struct route_state *st = ag_http_exchange_data(ex);
    if (st && !st->echo)
        bytes_pump(st);
}

static void srv_on_close(struct ag_http_exchange *ex, bool completed)
{
    (void)completed;
    free(ag_http_exchange_data(ex));
    ag_http_exchange_set_data(ex, NULL);
}

static const struct ag_http_handler srv_handler = {
    .on_request = srv_on_request,
    .on_body = srv_on_body,
    .on_drain = srv_on_drain,
    .on_close = srv_on_close,
};

struct srv {
    struct ag_http_server *server;
    pthread_t thread;
    char address[32];
};

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    ag_http_server_run(s->server, NULL);
    return NULL;
}

/* One server at a time, in static storage so that teardown can stop it after a failure. */
static struct srv srv_slot;
static bool srv_running;

static struct srv *srv_start(void)
{
    struct srv *s = &srv_slot;
    struct ag_http_server_config cfg;
    struct ag_err err = {0};
    ag_http_server_config_defaults(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.workers = 1;
    cfg.handler = &srv_handler;
    if (ag_http_server_new(&cfg, &s->server, &err) != 0)
        fail_msg("server: %s", err.msg);
    snprintf(s->address, sizeof s->address, "127.0.0.1:%u", ag_http_server_port(s->server));
    assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
    srv_running = true;
    return s;
}

static void srv_stop(struct srv *s)
{
    if (!srv_running)
        return;
    srv_running = false;
    ag_http_server_shutdown(s->server);
    pthread_join(s->thread, NULL);
    ag_http_server_free(s->server);
}

/* ---- scripted raw servers: one blocking thread each ---- */

struct raw {
    int lfd;
    char address[32];
    pthread_t thread;
    void (*script)(struct raw *r);
    atomic_int accepted;
    atomic_bool stop;
};

static void *raw_main(void *arg)
{
    struct raw *r = arg;
    r->script(r);
    return NULL;
}

/* Raw servers live in static slots, so that teardown can stop them after a failure. */
static struct raw raw_slots[2];
static bool raw_in_use[2];

/*
 * Listens on a free loopback port (backlog < 0: bound only, so connections are refused; 0 and
 * no script: nobody accepts).
 */
static struct raw *raw_listen(int backlog)
{
    size_t slot = 0;
    while (raw_in_use[slot])
        slot++;
    assert_true(slot < 2);
    raw_in_use[slot] = true;
    struct raw *r = &raw_slots[slot];
    memset(r, 0, sizeof *r);
    r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(r->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(r->lfd, (struct sockaddr *)&a, sizeof a), 0);
    if (backlog >= 0)
        assert_int_equal(listen(r->lfd, backlog), 0);
    assert_int_equal(getsockname(r->lfd, (struct sockaddr *)&a, &len), 0);
    snprintf(r->address, sizeof r->address, "127.0.0.1:%u", ntohs(a.sin_port));
    return r;
}

static struct raw *raw_start(void (*script)(struct raw *r))
{
    struct raw *r = raw_listen(16);
    r->script = script;
    assert_int_equal(pthread_create(&r->thread, NULL, raw_main, r), 0);
    return r;
}

static void raw_stop(struct raw *r)
{
    if (!raw_in_use[r - raw_slots])
        return;
    raw_in_use[r - raw_slots] = false;
    atomic_store(&r->stop, true);
    if (r->script)
        pthread_join(r->thread, NULL);
    close(r->lfd);
}

/* The next connection, or -1 once the test stops the server (or after the guard time). */
static int raw_accept(struct raw *r)
{
    for (int waited = 0; !atomic_load(&r->stop) && waited < GUARD_MS; waited += 10) {
        struct pollfd p = {.fd = r->lfd, .events = POLLIN};
        if (poll(&p, 1, 10) != 1)
            continue;
        int fd = accept(r->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        struct timeval tv = {.tv_sec = GUARD_MS / 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        atomic_fetch_add(&r->accepted, 1);
        return fd;
    }
    return -1;
}

struct rconn {
    int fd;
    size_t len;
    char buf[1 << 16];
};

/* Reads one request (its head, and its body when it has a Content-Length) and drops it. */
static int raw_read_request(struct rconn *c)
{
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end) {
            size_t head = (size_t)(end + 4 - c->buf);
            size_t body = 0;
            char *cl = memmem(c->buf, head, "\r\nContent-Length: ", 18);
            if (cl)
                body = (size_t)strtoull(cl + 18, NULL, 10);
            if (c->len >= head + body) {
                memmove(c->buf, c->buf + head + body, c->len - head - body);
                c->len -= head + body;
                return 0;
            }
        }
        if (c->len == sizeof c->buf)
            return -1;
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (n <= 0)
            return -1;
        c->len += (size_t)n;
    }
}

static void raw_send(int fd, const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        s += n;
        len -= (size_t)n;
    }
}

/* Waits until the client closes (or the guard time passes). */
static void raw_wait_close(int fd)
{
    char buf[4096];
    while (recv(fd, buf, sizeof buf, 0) > 0) {
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#define OK_RESPONSE "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

/* Answers every request on every connection with a keep-alive "ok". */
static void script_keep_alive(struct raw *r)
{
    int fd;
    while ((fd = raw_accept(r)) >= 0) {
        struct rconn *c = calloc(1, sizeof *c);
        c->fd = fd;
        while (raw_read_request(c) == 0)
            raw_send(fd, OK_RESPONSE);
        free(c);
        close(fd);
    }
}

/* Sends canned after each request's head, then waits for the client to leave. */
static void script_canned(struct raw *r, const char *canned, bool close_at_once)
{
    int fd;
    while ((fd = raw_accept(r)) >= 0) {
        struct rconn *c = calloc(1, sizeof *c);
        c->fd = fd;
        if (raw_read_request(c) == 0 && canned)
            raw_send(fd, canned);
        if (!close_at_once)
            raw_wait_close(fd);
        free(c);
        close(fd);
    }
}

static void script_silent(struct raw *r)
{
    script_canned(r, NULL, false);
}

static void script_head_then_silence(struct raw *r)
{
    script_canned(r, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc", false);
}

static void script_garbage(struct raw *r)
{
    script_canned(r, "SSH-2.0-OpenSSH_9.2\r\n\r\n", false);
}

static void script_truncated(struct raw *r)
{
    script_canned(r, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", true);
}

static void script_bad_chunk(struct raw *r)
{
    script_canned(r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
                  false);
}

static void script_big_body(struct raw *r)
{
    script_canned(r, "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", false);
}

static void script_close_delimited(struct raw *r)
{
    script_canned(r, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", true);
}

/* Interim responses first, then the answer; keeps the connection for more. */
static void script_interim(struct raw *r)
{
    int fd;
    while ((fd = raw_accept(r)) >= 0) {
        struct rconn *c = calloc(1, sizeof *c);
        c->fd = fd;
        while (raw_read_request(c) == 0)
            raw_send(fd,
                     "HTTP/1.1 100 Continue\r\n\r\n"
                     "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" OK_RESPONSE);
        free(c);
        close(fd);
    }
}

/* A chunked response in small, late pieces (sizes split from their data); keep-alive. */
static void script_slow_chunked(struct raw *r)
{
    int fd;
    while ((fd = raw_accept(r)) >= 0) {
        struct rconn *c = calloc(1, sizeof *c);
        c->fd = fd;
        while (raw_read_request(c) == 0) {
            raw_send(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            for (int i = 0; i < 5; i++) {
                char piece[32];
                raw_send(fd, "6");
                sleep_ms(5);
                raw_send(fd, "\r\npie");
                sleep_ms(5);
                snprintf(piece, sizeof piece, "ce%d\r\n", i);
                raw_send(fd, piece);
            }
            raw_send(fd, "0\r\n");
            sleep_ms(5);
            raw_send(fd, "\r\n");
        }
        free(c);
        close(fd);
    }
}

/* Answers once with keep-alive, then closes the connection at once. */
static void script_close_after_answer(struct raw *r)
{
    script_canned(r, OK_RESPONSE, true);
}

/*
 * The race a pool must survive: answers the first request with keep-alive, reads the second
 * and closes without answering (as a server whose idle timeout fired). Later connections get
 * one answer and a close.
 */
static void script_stale(struct raw *r)
{
    int fd = raw_accept(r);
    if (fd < 0)
        return;
    struct rconn *c = calloc(1, sizeof *c);
    c->fd = fd;
    if (raw_read_request(c) == 0) {
        raw_send(fd, OK_RESPONSE);
        raw_read_request(c);
    }
    close(fd);
    while ((fd = raw_accept(r)) >= 0) {
        c->fd = fd;
        c->len = 0;
        if (raw_read_request(c) == 0)
            raw_send(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nretry");
        close(fd);
    }
    free(c);
}

static int teardown(void **state)
{
    (void)state;
    srv_stop(&srv_slot); /* left running by a failed test */
    for (size_t i = 0; i < 2; i++)
        raw_stop(&raw_slots[i]);
    ag_loop_free(loop);
    loop = NULL;
    return 0;
}

/* ---- tests: the project's server ---- */

static void test_get_whole_response(void **state)
{
    (void)state;
    struct srv *s = srv_start();

    struct ag_http_client *client = client_new(NULL);
    struct rec r;
    rec_init(&r);
    const struct ag_http_header h[] = {{AG_STR("X-Test"), AG_STR("from the client")}};
    struct ag_http_client_request req = {.address = s->address,
                                         .method = AG_STR("GET"),
                                         .target = AG_STR("/hello"),
                                         .headers = h,
                                         .header_count = 1};
    start(client, &r, &req);
    run_calls();
    assert_int_equal(r.responses, 1);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_kind, AG_HTTP_BODY_LENGTH);
    assert_int_equal(r.content_length, 11);
    assert_true(r.keep_alive);
    assert_string_equal(r.echo_header, "from the client");
    assert_string_equal(r.body, "hello world");
    assert_int_equal(r.lasts, 1);
    assert_int_equal(r.errors, 0);
    assert_stats(client, 1, 1, 1, 0, 0);
    ag_http_client_free(client);
    srv_stop(s);
}

/* Each call's end starts the next one, from inside its last callback. */
static void chain_next(struct rec *r)
{
    if (r->lasts == 0 || --r->chain_left == 0)
        return;
    get(r->client, r, r->address, "/");
}

static void test_keep_alive_reuse(void **state)
{
    (void)state;
    struct raw *raw = raw_start(script_keep_alive);
    struct ag_http_client *client = client_new(NULL);
    struct rec r;
    rec_init(&r);
    r.on_end = chain_next;
    r.client = client;
    r.address = raw->address;
    r.chain_left = 10;
    get(client, &r, raw->address, "/");
    run_calls();
    assert_int_equal(r.lasts, 10);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.body_len, 20);
    assert_stats(client, 1, 1, 1, 9, 0);
    ag_http_client_free(client);
    raw_stop(raw);
    assert_int_equal(atomic_load(&raw->accepted), 1);
}

static void test_pool_bound(void **state)
{
    (void)state;
    struct srv *s = srv_start();

    struct ag_http_client_config cfg;
    ag_http_client_config_defaults(&cfg);
    cfg.max_idle_per_host = 2;
    struct ag_http_client *client = client_new(&cfg);
    struct rec r[5];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 5; i++) {
            rec_init(&r[i]);
            get(client, &r[i], s->address, "/hello");
        }
        run_calls();
        for (int i = 0; i < 5; i++) {
            assert_int_equal(r[i].lasts, 1);
            assert_string_equal(r[i].body, "hello world");
        }
    }
    /* Round one: five connections, two kept. Round two: two reused, three new, two kept. */
    assert_stats(client, 2, 2, 8, 2, 0);
    ag_http_client_free(client);
    srv_stop(s);
}

static void test_post_whole_body(void **state)
{
    (void)state;
    struct srv *s = srv_start();

    struct ag_http_client *client = client_new(NULL);
    size_t len = 100 * 1000;
    char *body = malloc(len);
    for (size_t i = 0; i < len; i++)
        body[i] = (char)('a' + i % 26);
    struct rec r;
    rec_init(&r);
    struct ag_http_client_request req = {.address = s->address,
                                         .method = AG_STR("POST"),
                                         .target = AG_STR("/echo"),
                                         .body = {body, len}};
    start(client, &r, &req);
    free(body); /* copied by the request */
    run_calls();
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_kind, AG_HTTP_BODY_CHUNKED);
    assert_int_equal(r.body_len, len);
    assert_int_equal(strncmp(r.body, "abcdefghijklmnopqrstuvwxyzabc", 29), 0);
    assert_int_equal(r.lasts, 1);
    assert_stats(client, 1, 1, 1, 0, 0);
    ag_http_client_free(client);
    srv_stop(s);
}

/* Streams size bytes to /echo with back-pressure (chunked, or Content-Length) and compares. */
static void echo_streamed(uint64_t size, bool chunked)
{
    struct srv *s = srv_start();

    struct ag_http_client *client = client_new(NULL);
    struct rec r;
    rec_init(&r);
    r.to_send = size;
    struct ag_http_client_request req = {.address = s->address,
                                         .method = AG_STR("POST"),
                                         .target = AG_STR("/echo"),
                                         .body_length =
                                             chunked ? AG_HTTP_LENGTH_UNKNOWN : (int64_t)size};
    start(client, &r, &req);
    pump(&r); /* writes until congested: the rest goes from on_drain */
    assert_true(ag_http_call_congested(r.call));
    run_calls();
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.lasts, 1);
    assert_int_equal(r.sent, size);
    assert_int_equal(r.body_len, size);
    assert_int_equal(r.body_hash, r.sent_hash);
    assert_true(r.drains > 0);
    assert_stats(client, 1, 1, 1, 0, 0);
    ag_http_client_free(client);
    srv_stop(s);
}

static void test_post_streamed_chunked_8mib(void **state)
{
    (void)state;
    echo_streamed(8u << 20, true);
}

static void test_post_streamed_content_length(void **state)
{
    (void)state;
    echo_streamed(1u << 20, false);
}

static void test_head_and_204_keep_the_connection(void **state)
{
    (void)state;
    struct srv *s = srv_start();

    struct ag_http_client *client = client_new(NULL);
    struct rec head, empty, after;
    rec_init(&head);
    rec_init(&empty);
    rec_init(&after);
    struct ag_http_client_request req = {
        .address = s->address, .method = AG_STR("HEAD"), .target = AG_STR("/hello")};
    start(client, &head, &req);
    run_calls();
    assert_int_equal(head.status, 200);
    assert_int_equal(head.content_length, 11);
    assert_int_equal(head.body_kind, AG_HTTP_BODY_NONE);
    assert_int_equal(head.body_len, 0);
    assert_int_equal(head.lasts, 1);

    get(client, &empty, s->address, "/empty");
    run_calls();
    assert_int_equal(empty.status, 204);
    assert_int_equal(empty.body_kind, AG_HTTP_BODY_NONE);
    assert_true(empty.keep_alive);
    assert_int_equal(empty.lasts, 1);

    get(client, &after, s->address, "/hello");
    run_calls();
    assert_string_equal(after.body, "hello world");
    assert_stats(client, 1, 1, 1, 2, 0);
    ag_http_client_free(client);
    srv_stop(s);
}

static void test_pause_and_resume(void **state)
{
    (void)state;
    struct srv *s = srv_start();

    struct ag_http_client *client = client_new(NULL);
    struct rec r;
    rec_init(&r);
    r.pause_on_first_piece = true;
    r.check_pattern = true;
    get(client, &r, s->address, "/bytes/1048576");
    run_calls();
    assert_int_equal(r.pieces_while_paused, 0);
    assert_true(r.pieces > 1);
    assert_int_equal(r.body_len, 1048576);
    assert_false(r.pattern_broken);
    assert_int_equal(r.lasts, 1);
    assert_int_equal(r.errors, 0);
    ag_http_client_free(client);
    srv_stop(s);
}

static void test_cancel(void **state)
{
    (void)state;
    struct srv *s = srv_start();

    struct ag_http_client *client = client_new(NULL);
    struct rec mid, before, warm, untouched;
    rec_init(&mid);
    rec_init(&before);
    rec_init(&warm);
    rec_init(&untouched);

    /* In the middle of a body, from on_body: the connection cannot be reused. */
    mid.cancel_on_first_piece = true;
    get(client, &mid, s->address, "/bytes/8388608");
    run_calls();
    settle(SETTLE_MS);
    assert_int_equal(mid.pieces, 1);
    assert_int_equal(mid.lasts + mid.errors, 0);
    assert_stats(client, 0, 0, 1, 0, 0);

    /* Before anything happened, while connecting: no callback at all. */
    get(client, &before, s->address, "/hello");
    ag_http_call_cancel(before.call);
    pending--;
    settle(SETTLE_MS);
    assert_int_equal(before.responses + before.pieces + before.lasts + before.errors, 0);
    assert_stats(client, 0, 0, 2, 0, 0);

    /* On a pooled connection nothing was sent on: it goes back to the pool. */
    get(client, &warm, s->address, "/hello");
    run_calls();
    get(client, &untouched, s->address, "/hello");
    ag_http_call_cancel(untouched.call);
    pending--;
    assert_stats(client, 1, 1, 3, 1, 0);
    settle(SETTLE_MS);
    assert_int_equal(untouched.responses + untouched.lasts + untouched.errors, 0);
    rec_init(&untouched);
    get(client, &untouched, s->address, "/hello");
    run_calls();
    assert_string_equal(untouched.body, "hello world");
    assert_stats(client, 1, 1, 3, 2, 0);
    ag_http_client_free(client);
    srv_stop(s);
}

static void test_free_with_calls_in_flight(void **state)
{
    (void)state;
    struct srv *s = srv_start();
    struct raw *silent;

    silent = raw_start(script_silent);
    struct ag_http_client *client = client_new(NULL);
    struct rec big, quiet, connecting;
    rec_init(&big);
    rec_init(&quiet);
    rec_init(&connecting);
    big.stop_on_first_piece = true;
    big.check_pattern = true;
    get(client, &quiet, silent->address, "/");
    get(client, &big, s->address, "/bytes/8388608");
    ag_timer_start(loop, &guard_timer, GUARD_MS);
    ag_loop_run(loop); /* until the big body's first piece */
    ag_timer_stop(loop, &guard_timer);
    assert_false(guard_fired);
    get(client, &connecting, s->address, "/hello");
    ag_http_client_free(client);
    settle(SETTLE_MS);
    assert_int_equal(big.pieces, 1);
    assert_int_equal(big.lasts + big.errors + quiet.responses + quiet.errors, 0);
    assert_int_equal(connecting.responses + connecting.errors, 0);
    raw_stop(silent);
    srv_stop(s);
}

static void test_idle_timeout_closes(void **state)
{
    (void)state;
    struct srv *s = srv_start();
    struct ag_http_client_config cfg;
    ag_http_client_config_defaults(&cfg);
    cfg.idle_timeout_ms = 50;
    struct ag_http_client *client = client_new(&cfg);
    struct rec r;
    rec_init(&r);
    get(client, &r, s->address, "/hello");
    run_calls();
    assert_int_equal(r.lasts, 1);
    run_until_idle(client, 0); /* the server keeps it for a minute: the client closes it */
    assert_stats(client, 0, 0, 1, 0, 0);
    ag_http_client_free(client);
    srv_stop(s);
}

/* What writes and ends answer, on calls that stay open against a server that never answers. */
static void test_body_writing_contract(void **state)
{
    (void)state;
    struct raw *silent = raw_start(script_silent);
    struct ag_http_client *client = client_new(NULL);
    struct rec none, fixed, chunked;
    rec_init(&none);
    rec_init(&fixed);
    rec_init(&chunked);
    struct ag_http_client_request req = {
        .address = silent->address, .method = AG_STR("GET"), .target = AG_STR("/")};
    start(client, &none, &req);
    assert_int_equal(ag_http_call_write(none.call, "x", 1), AG_ECLOSED);
    assert_int_equal(ag_http_call_end(none.call), AG_ECLOSED);

    req.method = AG_STR("PUT");
    req.body_length = 10;
    start(client, &fixed, &req);
    assert_int_equal(ag_http_call_write(fixed.call, "1234", 4), 0);
    assert_int_equal(ag_http_call_end(fixed.call), AG_ERANGE); /* short: the call goes on */
    assert_int_equal(ag_http_call_write(fixed.call, "5678901", 7), AG_ERANGE);
    assert_int_equal(ag_http_call_write(fixed.call, "567890", 6), 0);
    assert_int_equal(ag_http_call_end(fixed.call), 0);
    assert_int_equal(ag_http_call_write(fixed.call, "x", 1), AG_ECLOSED);
    assert_false(ag_http_call_congested(fixed.call));

    req.method = AG_STR("POST");
    req.body_length = AG_HTTP_LENGTH_UNKNOWN;
    start(client, &chunked, &req);
    assert_int_equal(ag_http_call_write(chunked.call, "", 0), 0); /* not a last chunk */
    assert_int_equal(ag_http_call_write(chunked.call, "abc", 3), 0);
    assert_int_equal(ag_http_call_end(chunked.call), 0);
    assert_int_equal(ag_http_call_end(chunked.call), AG_ECLOSED);
    assert_ptr_equal(ag_http_call_ctx(chunked.call), &chunked);

    settle(SETTLE_MS); /* the requests go out; nothing comes back */
    assert_false(ag_http_call_response_started(chunked.call));
    ag_http_call_cancel(none.call);
    ag_http_call_cancel(fixed.call);
    ag_http_call_cancel(chunked.call);
    pending -= 3;
    assert_stats(client, 0, 0, 3, 0, 0);
    settle(SETTLE_MS);
    assert_int_equal(none.ends + fixed.ends + chunked.ends, 0);
    ag_http_client_free(client);
    raw_stop(silent);
}

static void test_invalid_requests(void **state)
{
    (void)state;
    struct ag_http_client *client = client_new(NULL);
    struct ag_http_call *call = NULL;
    struct ag_err err = {0};
    struct rec r;
    rec_init(&r);
    const struct ag_http_header bad_name[] = {{AG_STR("Bad Name"), AG_STR("v")}};
    const struct ag_http_header bad_value[] = {{AG_STR("X-Ok"), AG_STR("a\r\nInjected: yes")}};
    const struct ag_http_header nul_value[] = {{AG_STR("X-Ok"), {"a\0b", 3}}};
    const struct ag_http_header owned[] = {{AG_STR("content-length"), AG_STR("5")}};
    const struct ag_http_header host[] = {{AG_STR("Host"), AG_STR("example.com")}};
    struct ag_http_client_request base = {
        .address = "127.0.0.1:9", .method = AG_STR("GET"), .target = AG_STR("/")};
    enum { CASES = 14 };
    struct ag_http_client_request cases[CASES];
    for (size_t i = 0; i < CASES; i++)
        cases[i] = base;
    cases[0].headers = bad_name;
    cases[0].header_count = 1;
    cases[1].headers = bad_value;
    cases[1].header_count = 1;
    cases[2].headers = nul_value;
    cases[2].header_count = 1;
    cases[3].headers = owned;
    cases[3].header_count = 1;
    cases[4].headers = host;
    cases[4].header_count = 1;
    cases[5].method = AG_STR("GE T");
    cases[6].target = AG_STR("/a b");
    cases[7].target = AG_STR("");
    cases[8].address = "no-port";
    cases[9].body_length = -5;
    cases[10].host = AG_STR("evil\r\nX: y");
    /* Fields the caller vouches for are not checked again, but stay out of the client's own. */
    cases[11].headers = owned;
    cases[11].header_count = 1;
    cases[11].checked_headers = 1;
    cases[12].headers = host;
    cases[12].header_count = 1;
    cases[12].checked_headers = 1;
    cases[13].headers = host;
    cases[13].header_count = 1;
    cases[13].checked_headers = 2; /* more than there are */
    for (size_t i = 0; i < CASES; i++) {
        int rc = ag_http_client_request(client, &cases[i], &rec_ops, &r, &call, &err);
        if (rc != AG_EINVAL)
            fail_msg("case %zu: %s, want AG_EINVAL", i, ag_err_name(rc));
    }
    const struct ag_http_call_ops no_error = {.on_response = rec_on_response,
                                              .on_body = rec_on_body};
    assert_int_equal(ag_http_client_request(client, &base, &no_error, &r, &call, &err), AG_EINVAL);
    settle(SETTLE_MS);
    assert_int_equal(r.responses + r.errors, 0);
    assert_stats(client, 0, 0, 0, 0, 0);
    ag_http_client_free(client);
}

/* ---- tests: scripted servers ---- */

/* Runs one GET against a scripted server and leaves time for a stray callback. */
static void scripted_get(void (*script)(struct raw *r), const struct ag_http_client_config *cfg,
                         struct rec *r, struct ag_http_client_stats *stats)
{
    struct raw *raw = raw_start(script);
    struct ag_http_client *client = client_new(cfg);
    rec_init(r);
    get(client, r, raw->address, "/");
    run_calls();
    settle(SETTLE_MS);
    assert_int_equal(r->ends, 1);
    ag_http_client_stats(client, stats);
    ag_http_client_free(client);
    raw_stop(raw);
}

static void test_connect_refused(void **state)
{
    (void)state;
    struct raw *closed = raw_listen(-1); /* bound, never listening: connections are refused */
    struct ag_http_client *client = client_new(NULL);
    struct rec r;
    rec_init(&r);
    get(client, &r, closed->address, "/");
    run_calls();
    settle(SETTLE_MS);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.code, AG_HTTP_ECONNECT);
    assert_false(r.started_at_error);
    assert_int_equal(r.responses + r.lasts, 0);
    assert_non_null(strstr(r.msg, "refused"));
    assert_stats(client, 0, 0, 1, 0, 0);
    ag_http_client_free(client);
    raw_stop(closed);
}

static void test_connect_timeout(void **state)
{
    (void)state;
    /* A listener whose accept queue is full drops further SYNs: the connect hangs. */
    struct raw *full = raw_listen(0);
    int filler = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    getsockname(full->lfd, (struct sockaddr *)&a, &len);
    assert_int_equal(connect(filler, (struct sockaddr *)&a, sizeof a), 0);
    int filler2 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    connect(filler2, (struct sockaddr *)&a, sizeof a);

    struct ag_http_client_config cfg;
    ag_http_client_config_defaults(&cfg);
    cfg.connect_timeout_ms = 100;
    struct ag_http_client *client = client_new(&cfg);
    struct rec r;
    rec_init(&r);
    get(client, &r, full->address, "/");
    run_calls();
    settle(SETTLE_MS);
    assert_int_equal(r.errors, 1);
    if (r.code != AG_HTTP_ECONNECT_TIMEOUT)
        fail_msg("got %s: %s", ag_http_client_err_name(r.code), r.msg);
    assert_false(r.started_at_error);
    assert_stats(client, 0, 0, 1, 0, 0);
    ag_http_client_free(client);
    close(filler);
    close(filler2);
    raw_stop(full);
}

static void test_first_byte_timeout(void **state)
{
    (void)state;
    struct ag_http_client_config cfg;
    ag_http_client_config_defaults(&cfg);
    cfg.first_byte_timeout_ms = 100;
    struct rec r;
    struct ag_http_client_stats st;
    scripted_get(script_silent, &cfg, &r, &st);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.code, AG_ETIMEDOUT);
    assert_false(r.started_at_error);
    assert_non_null(strstr(r.msg, "no response"));
    assert_int_equal(st.connections, 0);
}

static void test_response_timeout(void **state)
{
    (void)state;
    /* The per-request bound replaces the client's; the first byte comes, the rest never. */
    struct raw *raw = raw_start(script_head_then_silence);
    struct ag_http_client *client = client_new(NULL);
    struct rec r;
    rec_init(&r);
    struct ag_http_client_request req = {.address = raw->address,
                                         .method = AG_STR("GET"),
                                         .target = AG_STR("/"),
                                         .first_byte_timeout_ms = 5000,
                                         .response_timeout_ms = 150};
    start(client, &r, &req);
    run_calls();
    settle(SETTLE_MS);
    assert_int_equal(r.responses, 1);
    assert_string_equal(r.body, "abc");
    assert_int_equal(r.lasts, 0);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.code, AG_ETIMEDOUT);
    assert_true(r.started_at_error);
    assert_non_null(strstr(r.msg, "did not end"));
    assert_stats(client, 0, 0, 1, 0, 0);
    ag_http_client_free(client);
    raw_stop(raw);
}

static void test_malformed_head(void **state)
{
    (void)state;
    struct rec r;
    struct ag_http_client_stats st;
    scripted_get(script_garbage, NULL, &r, &st);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.code, AG_EPROTO);
    assert_true(r.started_at_error);
    assert_int_equal(r.responses, 0);
    assert_int_equal(st.connections, 0);
}

static void test_malformed_chunk(void **state)
{
    (void)state;
    struct rec r;
    struct ag_http_client_stats st;
    scripted_get(script_bad_chunk, NULL, &r, &st);
    assert_int_equal(r.responses, 1);
    assert_string_equal(r.body, "hello");
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.code, AG_EPROTO);
    assert_int_equal(r.lasts, 0);
}

static void test_body_over_limit(void **state)
{
    (void)state;
    struct ag_http_client_config cfg;
    ag_http_client_config_defaults(&cfg);
    cfg.limits.max_body = 1024;
    struct rec r;
    struct ag_http_client_stats st;
    scripted_get(script_big_body, &cfg, &r, &st);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.code, AG_EPROTO);
    assert_int_equal(r.responses, 0);
}

static void test_truncated_body(void **state)
{
    (void)state;
    struct rec r;
    struct ag_http_client_stats st;
    scripted_get(script_truncated, NULL, &r, &st);
    assert_int_equal(r.responses, 1);
    assert_string_equal(r.body, "hello");
    assert_int_equal(r.lasts, 0);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.code, AG_ECLOSED);
    assert_true(r.started_at_error);
    assert_int_equal(st.retries, 0);
}

static void test_close_delimited_body(void **state)
{
    (void)state;
    struct rec r;
    struct ag_http_client_stats st;
    scripted_get(script_close_delimited, NULL, &r, &st);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.body_kind, AG_HTTP_BODY_UNTIL_CLOSE);
    assert_false(r.keep_alive);
    assert_string_equal(r.body, "until the end");
    assert_int_equal(r.lasts, 1);
    assert_int_equal(st.connections, 0); /* never pooled */
}

/* Two sequential GETs against a keep-alive script: both succeed on one connection. */
static void two_gets_one_connection(void (*script)(struct raw *r), const char *want_body)
{
    struct raw *raw = raw_start(script);
    struct ag_http_client *client = client_new(NULL);
    struct rec r[2];
    for (int i = 0; i < 2; i++) {
        rec_init(&r[i]);
        get(client, &r[i], raw->address, "/");
        run_calls();
        assert_int_equal(r[i].errors, 0);
        assert_int_equal(r[i].status, 200);
        assert_string_equal(r[i].body, want_body);
        assert_int_equal(r[i].lasts, 1);
    }
    assert_stats(client, 1, 1, 1, 1, 0);
    ag_http_client_free(client);
    raw_stop(raw);
    assert_int_equal(atomic_load(&raw->accepted), 1);
}

static void test_interim_responses_skipped(void **state)
{
    (void)state;
    two_gets_one_connection(script_interim, "ok");
}

static void test_slow_chunked_response(void **state)
{
    (void)state;
    two_gets_one_connection(script_slow_chunked, "piece0piece1piece2piece3piece4");
}

static void test_dead_pooled_connection_dropped(void **state)
{
    (void)state;
    struct raw *raw = raw_start(script_close_after_answer);
    struct ag_http_client *client = client_new(NULL);
    struct rec first, second;
    rec_init(&first);
    rec_init(&second);
    get(client, &first, raw->address, "/");
    run_calls();
    assert_int_equal(first.lasts, 1);
    run_until_idle(client, 0); /* the server's close is seen on the idle connection */
    assert_stats(client, 0, 0, 1, 0, 0);
    get(client, &second, raw->address, "/");
    run_calls();
    assert_int_equal(second.lasts, 1);
    assert_string_equal(second.body, "ok");
    struct ag_http_client_stats st;
    ag_http_client_stats(client, &st); /* the server closes this one too: not idle-checked */
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.reuses + st.retries, 0);
    ag_http_client_free(client);
    raw_stop(raw);
    assert_int_equal(atomic_load(&raw->accepted), 2);
}

/* A first GET leaves a pooled connection the script then closes under the second request. */
static void stale_second_request(const struct ag_http_client_request *second, struct rec *r,
                                 struct ag_http_client_stats *st, int *accepted)
{
    struct raw *raw = raw_start(script_stale);
    struct ag_http_client *client = client_new(NULL);
    struct rec first;
    rec_init(&first);
    get(client, &first, raw->address, "/");
    run_calls();
    assert_int_equal(first.lasts, 1);
    struct ag_http_client_request req = *second;
    req.address = raw->address;
    rec_init(r);
    start(client, r, &req);
    run_calls();
    settle(SETTLE_MS);
    ag_http_client_stats(client, st);
    ag_http_client_free(client);
    raw_stop(raw);
    *accepted = atomic_load(&raw->accepted);
}

static void test_stale_connection_retried(void **state)
{
    (void)state;
    struct rec r;
    struct ag_http_client_stats st;
    int accepted;
    struct ag_http_client_request req = {.method = AG_STR("GET"), .target = AG_STR("/again")};
    stale_second_request(&req, &r, &st, &accepted);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.lasts, 1);
    assert_string_equal(r.body, "retry");
    assert_int_equal(st.retries, 1);
    assert_int_equal(st.connects, 2);
    assert_int_equal(accepted, 2);
}

static void test_stale_connection_body_not_sent_retried(void **state)
{
    (void)state;
    struct rec r;
    struct ag_http_client_stats st;
    int accepted;
    /* POST is not idempotent, but nothing of its streamed body has been written yet. */
    struct ag_http_client_request req = {.method = AG_STR("POST"),
                                         .target = AG_STR("/upload"),
                                         .body_length = AG_HTTP_LENGTH_UNKNOWN};
    stale_second_request(&req, &r, &st, &accepted);
    assert_int_equal(r.errors, 0);
    assert_string_equal(r.body, "retry");
    assert_int_equal(st.retries, 1);
    assert_int_equal(accepted, 2);
}

static void test_stale_connection_post_not_retried(void **state)
{
    (void)state;
    struct rec r;
    struct ag_http_client_stats st;
    int accepted;
    struct ag_http_client_request req = {
        .method = AG_STR("POST"), .target = AG_STR("/order"), .body = AG_STR("buy one")};
    stale_second_request(&req, &r, &st, &accepted);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.code, AG_ECLOSED);
    assert_false(r.started_at_error);
    assert_int_equal(r.responses + r.lasts, 0);
    assert_int_equal(st.retries, 0);
    assert_int_equal(st.connects, 1);
    assert_int_equal(accepted, 1);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_whole_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_whole_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_streamed_chunked_8mib, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_streamed_content_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_and_204_keep_the_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_and_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_calls_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_writing_contract, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_byte_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_chunk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_over_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_delimited_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interim_responses_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_chunked_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_pooled_connection_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_connection_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_connection_body_not_sent_retried, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stale_connection_post_not_retried, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
