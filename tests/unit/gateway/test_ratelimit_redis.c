/* Unit tests for src/gateway/ratelimit_redis.c against real redis-server processes on loopback. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "core/log.h"
#include "core/loop.h"
#include "gateway/ratelimit.h"
#include "gateway/ratelimit_redis.h"
#include "core/banned.h"

/*
 * Each test talks to a redis-server started here (REDIS_SERVER), on a free loopback port, with
 * no persistence, in a temporary directory. Durations only make things happen (a timeout, a
 * refill, a reconnection); nothing asserts on how long anything took. Every wait on the loop
 * is bounded by GUARD_MS, so a decision that never comes fails the test instead of hanging.
 * Decisions that must come from Redis use a generous timeout (REAL_TIMEOUT_MS) so that a slow
 * machine does not turn them into fallbacks.
 */
#define REDIS_SERVER "/usr/bin/redis-server"
enum { GUARD_MS = 30000, REAL_TIMEOUT_MS = 5000, START_WAIT_MS = 10000, MAX_SERVERS = 8 };

static char tmpdir[64];
static int log_fd = -1;

/* ---- redis-server processes ---- */

struct server {
    pid_t pid;
    int port;
};

static struct server servers[MAX_SERVERS]; /* started and not yet stopped; killed at teardown */
static struct server main_server;          /* the group's shared server */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static bool port_accepts(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts redis-server on port (0: a free one), with an optional extra option and value. */
static struct server server_start(int port, const char *opt, const char *value)
{
    if (port == 0)
        port = free_port();
    char port_s[16], log_path[128];
    snprintf(port_s, sizeof port_s, "%d", port);
    snprintf(log_path, sizeof log_path, "%s/redis-%d.log", tmpdir, port);
    const char *argv[] = {"redis-server", "--port", port_s,  "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no",     "--dir", tmpdir,   "--logfile", log_path, opt,
                          value,          NULL};
    if (!opt)
        argv[13] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        execv(REDIS_SERVER, (char *const *)argv);
        _exit(127);
    }
    struct server s = {pid, port};
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (servers[i].pid == 0) {
            servers[i] = s;
            break;
        }
    }
    for (int waited = 0; !port_accepts(port); waited += 10) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            fail_msg("redis-server on port %d exited (status %d)", port, status);
        if (waited > START_WAIT_MS)
            fail_msg("redis-server on port %d does not accept connections", port);
        sleep_ms(10);
    }
    return s;
}

static void server_kill(struct server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    for (int i = 0; i < MAX_SERVERS; i++)
        if (servers[i].pid == s->pid)
            servers[i].pid = 0;
    s->pid = 0;
}

/*
 * A blocking command on a connection of its own (after AUTH password and SELECT db when given);
 * returns the reply (free it) or fails the test.
 */
static redisReply *server_command(int port, const char *password, int db, const char *fmt, ...)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisSetTimeout(c, tv);
    if (password) {
        redisReply *auth = redisCommand(c, "AUTH %s", password);
        assert_non_null(auth);
        freeReplyObject(auth);
    }
    if (db) {
        redisReply *select = redisCommand(c, "SELECT %d", db);
        assert_non_null(select);
        freeReplyObject(select);
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *reply = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(reply);
    redisFree(c);
    return reply;
}

static void server_command_ok(int port, const char *fmt, const char *arg)
{
    redisReply *reply = server_command(port, NULL, 0, fmt, arg);
    if (reply->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s", fmt, reply->str);
    freeReplyObject(reply);
}

/* ---- the loop ---- */

static struct ag_loop *loop;

struct guard {
    struct ag_timer timer;
    struct ag_loop *loop;
    bool fired;
};

static void on_guard(struct ag_timer *t)
{
    struct guard *g = AG_CONTAINER_OF(t, struct guard, timer);
    g->fired = true;
    ag_loop_stop(g->loop);
}

/* Runs lp until *flag is set (by a callback that also stops lp) or GUARD_MS pass. */
static bool run_until(struct ag_loop *lp, const bool *flag)
{
    struct guard g = {.loop = lp};
    ag_timer_init(&g.timer, on_guard);
    ag_loop_update_time(lp);
    if (ag_timer_start(lp, &g.timer, GUARD_MS) != 0)
        return false;
    while (!*flag && !g.fired)
        ag_loop_run(lp);
    ag_timer_stop(lp, &g.timer);
    return *flag;
}

struct nap {
    struct ag_timer timer;
    struct ag_loop *loop;
    bool over;
};

static void on_nap(struct ag_timer *t)
{
    struct nap *n = AG_CONTAINER_OF(t, struct nap, timer);
    n->over = true;
    ag_loop_stop(n->loop);
}

/* Runs lp for about ms (callbacks keep running meanwhile). */
static void loop_sleep(struct ag_loop *lp, uint64_t ms)
{
    struct nap n = {.loop = lp};
    ag_timer_init(&n.timer, on_nap);
    ag_loop_update_time(lp);
    assert_int_equal(ag_timer_start(lp, &n.timer, ms), 0);
    assert_true(run_until(lp, &n.over));
}

/* ---- decisions ---- */

struct waiter {
    struct ag_loop *loop;
    int calls;
    bool done;
    struct gw_rl_decision d;
    struct gw_rl_redis *free_client; /* freed from the callback when set */
};

static void on_decision(void *ctx, const struct gw_rl_decision *d)
{
    struct waiter *w = ctx;
    w->calls++;
    w->d = *d;
    w->done = true;
    if (w->free_client) {
        gw_rl_redis_free(w->free_client);
        w->free_client = NULL;
    }
    ag_loop_stop(w->loop);
}

/*
 * Asks r on lp and waits for the answer. Returns 0 and *out, or -1 when the call failed, the
 * callback ran inside it, or no answer came within GUARD_MS (threads cannot use cmocka's
 * asserts, so they get the -1).
 */
static int take_on(struct ag_loop *lp, struct gw_rl_redis *r, const char *key,
                   const struct gw_rl_policy *p, struct gw_rl_decision *out)
{
    struct waiter w = {.loop = lp};
    struct gw_rl_pending *pending = NULL;
    ag_loop_update_time(lp);
    if (gw_rl_redis_take(r, ag_str_from_cstr(key), p, on_decision, &w, &pending) != 0 || !pending ||
        w.calls != 0)
        return -1;
    if (!run_until(lp, &w.done) || w.calls != 1)
        return -1;
    *out = w.d;
    return 0;
}

static struct gw_rl_decision take(struct gw_rl_redis *r, const char *key,
                                  const struct gw_rl_policy *p)
{
    struct gw_rl_decision d;
    assert_int_equal(take_on(loop, r, key, p, &d), 0);
    assert_int_equal(d.limit, p->burst);
    if (d.allowed)
        assert_int_equal(d.retry_after_s, 0);
    else
        assert_true(d.retry_after_s >= 1);
    return d;
}

/* Waits (bounded) until r has its connection and script; returns false if it never does. */
static bool wait_up_on(struct ag_loop *lp, struct gw_rl_redis *r)
{
    for (int waited = 0; waited < GUARD_MS; waited += 20) {
        if (gw_rl_redis_up(r))
            return true;
        struct nap n = {.loop = lp};
        ag_timer_init(&n.timer, on_nap);
        ag_loop_update_time(lp);
        if (ag_timer_start(lp, &n.timer, 20) != 0 || !run_until(lp, &n.over))
            return false;
    }
    return gw_rl_redis_up(r);
}

static struct gw_rl_redis *client_new(int port, const char *userinfo, uint32_t timeout_ms,
                                      bool fail_open)
{
    char url[256];
    snprintf(url, sizeof url, "redis://%s127.0.0.1:%d", userinfo ? userinfo : "", port);
    struct gw_rl_redis_config cfg;
    gw_rl_redis_config_defaults(&cfg);
    cfg.url = url;
    cfg.timeout_ms = timeout_ms;
    cfg.connect_timeout_ms = 500;
    cfg.fail_open = fail_open;
    struct gw_rl_redis *r = NULL;
    struct ag_err err = {0};
    if (gw_rl_redis_new(loop, &cfg, &r, &err) != 0)
        fail_msg("gw_rl_redis_new: %s", err.msg);
    return r;
}

/* How many times text was logged since offset of the log file. */
static int log_count(off_t since, const char *text)
{
    char buf[65536];
    ssize_t n = pread(log_fd, buf, sizeof buf - 1, since);
    assert_true(n >= 0);
    buf[n] = '\0';
    int count = 0;
    for (const char *p = buf; (p = strstr(p, text)); p++)
        count++;
    return count;
}

static off_t log_offset(void)
{
    return lseek(log_fd, 0, SEEK_END);
}

static void expect_fallback(const struct gw_rl_decision *d, bool fail_open)
{
    assert_true(d->degraded);
    assert_int_equal(d->allowed, fail_open);
    assert_int_equal(d->retry_after_s, fail_open ? 0 : 1);
}

/* ---- fixtures ---- */

static int group_setup(void **state)
{
    (void)state;
    main_server = server_start(0, NULL, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    server_kill(&main_server);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    return ag_loop_new(&loop, NULL);
}

static int teardown(void **state)
{
    (void)state;
    ag_loop_free(loop);
    loop = NULL;
    for (int i = 0; i < MAX_SERVERS; i++) /* those a failed test left running */
        if (servers[i].pid > 0 && servers[i].pid != main_server.pid)
            server_kill(&servers[i]);
    return 0;
}

/* ---- tests ---- */

static void url_rejected(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "http://127.0.0.1:6379", "redis://",     "redis://:6379",  "redis://127.0.0.1:0",
        "redis://h:65536",       "redis://h:x",  "redis://h:",     "redis://h/abc",
        "redis://h?db=1",        "rediss://h",   "redis://user@h", "redis://:@h",
        "redis://:p%4@h",        "redis://[::1", "redis://[::1]x", "redis://::1:6379",
        "redis://h h",
    };
    struct gw_rl_redis_config cfg;
    gw_rl_redis_config_defaults(&cfg);
    assert_int_equal(cfg.timeout_ms, 50);
    assert_true(cfg.fail_open);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ag_err err = {0};
        struct gw_rl_redis *r = NULL;
        cfg.url = bad[i];
        if (gw_rl_redis_new(loop, &cfg, &r, &err) != AG_EINVAL)
            fail_msg("%s was accepted", bad[i]);
        assert_null(r);
        assert_true(strlen(err.msg) > 0);
    }
    cfg.url = "redis://127.0.0.1";
    cfg.timeout_ms = 0;
    struct gw_rl_redis *r = NULL;
    assert_int_equal(gw_rl_redis_new(loop, &cfg, &r, NULL), AG_EINVAL);

    /* Well-formed ones (nothing listens on port 1, which is fine). */
    static const char *const good[] = {
        "redis://127.0.0.1:1",         "redis://localhost:1/0",          "redis://[::1]:1/3",
        "redis://:p%40ss@127.0.0.1:1", "redis://user:pw@localhost:1/15",
    };
    gw_rl_redis_config_defaults(&cfg);
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct ag_err err = {0};
        cfg.url = good[i];
        if (gw_rl_redis_new(loop, &cfg, &r, &err) != 0)
            fail_msg("%s was refused: %s", good[i], err.msg);
        gw_rl_redis_free(r);
    }
    gw_rl_redis_free(NULL);
}

static void decisions_match_memory_store(void **state)
{
    (void)state;
    struct gw_rl_redis *r = client_new(main_server.port, NULL, REAL_TIMEOUT_MS, true);
    assert_true(wait_up_on(loop, r));
    struct gw_rl_memory *m;
    assert_int_equal(gw_rl_memory_new(16, &m, NULL), 0);

    /* A token a day: nothing refills during the test, so both stores must agree exactly ... */
    const struct gw_rl_policy p = {1, 86400000, 3};
    for (int i = 0; i < 6; i++) {
        struct gw_rl_decision got = take(r, "match|ip|192.0.2.1", &p), want;
        assert_int_equal(gw_rl_memory_take(m, AG_STR("match"), &p, 0, &want), 0);
        assert_false(got.degraded);
        assert_int_equal(got.allowed, want.allowed);
        assert_int_equal(got.remaining, want.remaining);
        /* ... but for the time Redis's clock moved meanwhile (allowed: up to a minute). */
        assert_in_range(got.reset_s, want.reset_s - 60, want.reset_s);
        assert_in_range(got.retry_after_s, want.retry_after_s ? want.retry_after_s - 60 : 0,
                        want.retry_after_s);
    }
    /* The bucket is a hash with an expiry, so that idle keys go away. */
    redisReply *ttl = server_command(main_server.port, NULL, 0, "PTTL agora:rl:match|ip|192.0.2.1");
    assert_int_equal(ttl->type, REDIS_REPLY_INTEGER);
    assert_in_range(ttl->integer, 1, 3LL * 86400000);
    freeReplyObject(ttl);

    /* A refill, through Redis's clock: 1/s, burst 2. */
    const struct gw_rl_policy slow = {1, 1000, 2};
    assert_true(take(r, "refill", &slow).allowed);
    assert_true(take(r, "refill", &slow).allowed);
    struct gw_rl_decision d = take(r, "refill", &slow);
    assert_false(d.allowed);
    assert_false(d.degraded);
    assert_int_equal(d.retry_after_s, 1); /* under a token's worth of ms */
    assert_int_equal(d.reset_s, 2);       /* over one token short: 1..2 s */
    loop_sleep(loop, 1100);
    d = take(r, "refill", &slow);
    assert_true(d.allowed);
    assert_false(d.degraded);

    struct gw_rl_redis_stats st;
    gw_rl_redis_stats(r, &st);
    assert_true(st.up);
    assert_int_equal(st.fallbacks, 0);
    assert_int_equal(st.decisions, 10);
    gw_rl_memory_free(m);
    gw_rl_redis_free(r);
}

/* One worker thread: its own loop and client, ten decisions. */
struct worker {
    int port;
    const char *key;
    struct gw_rl_policy policy;
    int allowed, degraded, errors;
};

static void *worker_thread(void *arg)
{
    struct worker *w = arg;
    struct ag_loop *lp = NULL;
    struct gw_rl_redis *r = NULL;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", w->port);
    struct gw_rl_redis_config cfg;
    gw_rl_redis_config_defaults(&cfg);
    cfg.url = url;
    cfg.timeout_ms = REAL_TIMEOUT_MS;
    if (ag_loop_new(&lp, NULL) != 0 || gw_rl_redis_new(lp, &cfg, &r, NULL) != 0 ||
        !wait_up_on(lp, r)) {
        w->errors++;
        goto out;
    }
    for (int i = 0; i < 10; i++) {
        struct gw_rl_decision d;
        if (take_on(lp, r, w->key, &w->policy, &d) != 0) {
            w->errors++;
            continue;
        }
        w->allowed += d.allowed;
        w->degraded += d.degraded;
    }
out:
    gw_rl_redis_free(r);
    ag_loop_free(lp);
    return NULL;
}

static void two_clients_share_one_budget(void **state)
{
    (void)state;
    /* Burst 10 and a token a month: exactly 10 of the 20 requests get through, in all. */
    const struct gw_rl_policy p = {1, GW_RL_PER_MS_MAX, 10};
    struct worker w[2];
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        w[i] =
            (struct worker){.port = main_server.port, .key = "shared|ip|198.51.100.1", .policy = p};
        assert_int_equal(pthread_create(&threads[i], NULL, worker_thread, &w[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(w[i].errors, 0);
        assert_int_equal(w[i].degraded, 0);
    }
    assert_int_equal(w[0].allowed + w[1].allowed, 10);
}

static void redis_down_falls_back_then_reconnects(void **state)
{
    (void)state;
    struct server s = server_start(0, NULL, NULL);
    off_t log_start = log_offset();
    struct gw_rl_redis *open_client = client_new(s.port, NULL, REAL_TIMEOUT_MS, true);
    struct gw_rl_redis *closed_client = client_new(s.port, NULL, REAL_TIMEOUT_MS, false);
    assert_true(wait_up_on(loop, open_client));
    assert_true(wait_up_on(loop, closed_client));
    const struct gw_rl_policy p = {100, 1000, 100};
    struct gw_rl_decision d = take(open_client, "down", &p);
    assert_false(d.degraded);
    assert_int_equal(d.remaining, 99);
    d = take(closed_client, "down", &p);
    assert_false(d.degraded);
    assert_int_equal(d.remaining, 98);

    /* Killed: the next decisions are fallbacks, and they come (the take helper is bounded). */
    server_kill(&s);
    for (int i = 0; i < 5; i++) {
        d = take(open_client, "down", &p);
        expect_fallback(&d, true);
        assert_int_equal(d.limit, 100);
        d = take(closed_client, "down", &p);
        expect_fallback(&d, false);
    }
    assert_false(gw_rl_redis_up(open_client));
    loop_sleep(loop, 400); /* a few failed reconnection attempts */
    d = take(closed_client, "down", &p);
    expect_fallback(&d, false);
    assert_int_equal(log_count(log_start, "rate limit store unreachable"), 2); /* once each */

    /* Back on the same port: both clients reconnect and decide for real again. */
    s = server_start(s.port, NULL, NULL);
    assert_true(wait_up_on(loop, open_client));
    assert_true(wait_up_on(loop, closed_client));
    d = take(open_client, "down", &p); /* a new server: a new, full bucket */
    assert_false(d.degraded);
    assert_int_equal(d.remaining, 99);
    d = take(closed_client, "down", &p);
    assert_false(d.degraded);
    assert_int_equal(d.remaining, 98);
    assert_int_equal(log_count(log_start, "rate limit store unreachable"), 2);
    assert_int_equal(log_count(log_start, "rate limit store reconnected"), 2);
    struct gw_rl_redis_stats st;
    gw_rl_redis_stats(open_client, &st);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(st.fallbacks, 5);
    gw_rl_redis_free(open_client);
    gw_rl_redis_free(closed_client);
    server_kill(&s);
}

/* A listening socket that never accepts: connections open, and nothing ever answers. */
static int black_hole(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 16), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void black_hole_times_out(void **state)
{
    (void)state;
    int port;
    int fd = black_hole(&port);
    off_t log_start = log_offset();
    struct gw_rl_redis *open_client = client_new(port, NULL, 50, true);
    struct gw_rl_redis *closed_client = client_new(port, NULL, 50, false);
    const struct gw_rl_policy p = {100, 1000, 100};
    struct gw_rl_decision d = take(open_client, "hole", &p);
    expect_fallback(&d, true);
    d = take(closed_client, "hole", &p);
    expect_fallback(&d, false);
    struct gw_rl_redis_stats st;
    gw_rl_redis_stats(open_client, &st);
    assert_int_equal(st.timeouts, 1); /* the first waited for its deadline */
    assert_false(st.up);

    /* After the handshake deadline the store counts as down: fallbacks come at once. */
    loop_sleep(loop, 700);
    for (int i = 0; i < 3; i++) {
        d = take(open_client, "hole", &p);
        expect_fallback(&d, true);
    }
    gw_rl_redis_stats(open_client, &st);
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.fallbacks, 4);
    assert_int_equal(log_count(log_start, "rate limit store unreachable"), 2);
    gw_rl_redis_free(open_client);
    gw_rl_redis_free(closed_client);
    close(fd);
}

static void max_pending_bounds_waiting_requests(void **state)
{
    (void)state;
    int port;
    int fd = black_hole(&port);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    struct gw_rl_redis_config cfg;
    gw_rl_redis_config_defaults(&cfg);
    cfg.url = url;
    cfg.max_pending = 2;
    cfg.timeout_ms = 100;
    struct gw_rl_redis *r;
    assert_int_equal(gw_rl_redis_new(loop, &cfg, &r, NULL), 0);
    const struct gw_rl_policy p = {100, 1000, 100};
    struct waiter w[4];
    struct gw_rl_pending *pending;
    for (int i = 0; i < 4; i++) {
        w[i] = (struct waiter){.loop = loop};
        assert_int_equal(gw_rl_redis_take(r, AG_STR("k"), &p, on_decision, &w[i], &pending), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_true(run_until(loop, &w[i].done));
        expect_fallback(&w[i].d, true);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(w[i].calls, 1);
    struct gw_rl_redis_stats st;
    gw_rl_redis_stats(r, &st);
    assert_int_equal(st.timeouts, 2); /* two waited; the two beyond max_pending did not */
    assert_int_equal(st.fallbacks, 4);
    gw_rl_redis_free(r);
    close(fd);
}

static void script_error_falls_back_and_noscript_reloads(void **state)
{
    (void)state;
    struct gw_rl_redis *r = client_new(main_server.port, NULL, REAL_TIMEOUT_MS, false);
    assert_true(wait_up_on(loop, r));
    const struct gw_rl_policy p = {100, 1000, 100};
    off_t log_start = log_offset();

    /* A key of the wrong type makes the script fail: fallback, the connection stays. */
    server_command_ok(main_server.port, "SET agora:rl:%s x", "wrongtype");
    for (int i = 0; i < 3; i++) {
        struct gw_rl_decision d = take(r, "wrongtype", &p);
        expect_fallback(&d, false);
    }
    assert_int_equal(log_count(log_start, "rate limit script failed"), 1);
    server_command_ok(main_server.port, "DEL agora:rl:%s", "wrongtype");
    struct gw_rl_decision d = take(r, "wrongtype", &p);
    assert_false(d.degraded);
    assert_int_equal(d.remaining, 99);

    /* The script cache flushed: EVALSHA gets NOSCRIPT, and EVAL still decides for real. */
    server_command_ok(main_server.port, "SCRIPT %s", "FLUSH");
    d = take(r, "wrongtype", &p);
    assert_false(d.degraded);
    assert_int_equal(d.remaining, 98);
    redisReply *info = server_command(main_server.port, NULL, 0, "INFO commandstats");
    assert_non_null(strstr(info->str, "cmdstat_eval:calls=1,")); /* it did go through EVAL */
    freeReplyObject(info);
    d = take(r, "wrongtype", &p); /* EVAL cached it again */
    assert_false(d.degraded);
    assert_int_equal(d.remaining, 97);

    struct gw_rl_redis_stats st;
    gw_rl_redis_stats(r, &st);
    assert_int_equal(st.script_errors, 3);
    assert_int_equal(st.fallbacks, 3);
    assert_int_equal(st.reconnects, 0);
    assert_true(st.up);
    gw_rl_redis_free(r);
}

static void stalled_server_falls_back_and_recovers(void **state)
{
    (void)state;
    struct server s = server_start(0, NULL, NULL);
    struct gw_rl_redis *r = client_new(s.port, NULL, 100, true);
    assert_true(wait_up_on(loop, r));
    const struct gw_rl_policy p = {100, 1000, 100};
    assert_false(take(r, "stall", &p).degraded);

    /* Every client paused for 1.5 s: the decision is a fallback at its deadline. */
    redisReply *reply = server_command(s.port, NULL, 0, "CLIENT PAUSE 1500");
    freeReplyObject(reply);
    struct gw_rl_decision d = take(r, "stall", &p);
    expect_fallback(&d, true);

    /* And decisions are real again once the server answers (reconnecting if need be). */
    bool real = false;
    for (int i = 0; i < 200 && !real; i++) {
        loop_sleep(loop, 50);
        real = !take(r, "stall", &p).degraded;
    }
    assert_true(real);
    gw_rl_redis_free(r);
    server_kill(&s);
}

static void password_and_database(void **state)
{
    (void)state;
    struct server s = server_start(0, "--requirepass", "s3cret");
    struct gw_rl_redis *r = client_new(s.port, ":s3cret@", REAL_TIMEOUT_MS, true);
    assert_true(wait_up_on(loop, r));
    const struct gw_rl_policy p = {100, 1000, 100};
    assert_false(take(r, "auth", &p).degraded);
    gw_rl_redis_free(r);

    char url[128];
    snprintf(url, sizeof url, "redis://default:s%%33cret@127.0.0.1:%d/2", s.port);
    struct gw_rl_redis_config cfg;
    gw_rl_redis_config_defaults(&cfg);
    cfg.url = url;
    cfg.timeout_ms = REAL_TIMEOUT_MS;
    assert_int_equal(gw_rl_redis_new(loop, &cfg, &r, NULL), 0);
    assert_true(wait_up_on(loop, r));
    struct gw_rl_decision d = take(r, "db2", &p);
    assert_false(d.degraded);
    gw_rl_redis_free(r);
    redisReply *exists = server_command(s.port, "s3cret", 0, "EXISTS agora:rl:db2");
    assert_int_equal(exists->integer, 0); /* not in db 0 ... */
    freeReplyObject(exists);
    exists = server_command(s.port, "s3cret", 2, "EXISTS agora:rl:db2");
    assert_int_equal(exists->integer, 1); /* ... but in db 2 */
    freeReplyObject(exists);

    /* A wrong password never comes up; decisions fall back (and come). */
    r = client_new(s.port, ":wrong@", 200, false);
    d = take(r, "auth", &p);
    expect_fallback(&d, false);
    assert_false(gw_rl_redis_up(r));
    gw_rl_redis_free(r);
    server_kill(&s);
}

static void cancelled_decisions_never_call_back(void **state)
{
    (void)state;
    struct gw_rl_redis *r = client_new(main_server.port, NULL, REAL_TIMEOUT_MS, true);
    assert_true(wait_up_on(loop, r));
    const struct gw_rl_policy p = {100, 1000, 100};
    struct waiter w = {.loop = loop}, last = {.loop = loop};
    struct gw_rl_pending *pending;
    assert_int_equal(gw_rl_redis_take(r, AG_STR("cancel"), &p, on_decision, &w, &pending), 0);
    gw_rl_redis_cancel(pending); /* sent to Redis: its reply is dropped */
    assert_int_equal(gw_rl_redis_take(r, AG_STR("cancel"), &p, on_decision, &last, &pending), 0);
    assert_true(run_until(loop, &last.done));
    assert_int_equal(w.calls, 0);
    assert_false(last.d.degraded);
    gw_rl_redis_cancel(NULL);
    gw_rl_redis_free(r);

    /* Nothing listening: the fallback is deferred, and cancelling drops it. */
    int port = free_port();
    r = client_new(port, NULL, 50, true);
    loop_sleep(loop, 50);
    w = (struct waiter){.loop = loop};
    assert_int_equal(gw_rl_redis_take(r, AG_STR("cancel"), &p, on_decision, &w, &pending), 0);
    gw_rl_redis_cancel(pending);
    loop_sleep(loop, 100);
    assert_int_equal(w.calls, 0);
    gw_rl_redis_free(r);
}

static void free_drops_pending_decisions(void **state)
{
    (void)state;
    struct gw_rl_redis *r = client_new(main_server.port, NULL, REAL_TIMEOUT_MS, true);
    assert_true(wait_up_on(loop, r));
    const struct gw_rl_policy p = {100, 1000, 100};
    struct waiter w[3];
    struct gw_rl_pending *pending;
    for (int i = 0; i < 3; i++) {
        w[i] = (struct waiter){.loop = loop};
        assert_int_equal(gw_rl_redis_take(r, AG_STR("free"), &p, on_decision, &w[i], &pending), 0);
    }
    gw_rl_redis_free(r);
    loop_sleep(loop, 100);
    for (int i = 0; i < 3; i++)
        assert_int_equal(w[i].calls, 0);

    /* Freed from inside a callback: the other decisions are dropped, no callback runs. */
    r = client_new(main_server.port, NULL, REAL_TIMEOUT_MS, true);
    assert_true(wait_up_on(loop, r));
    for (int i = 0; i < 3; i++) {
        w[i] = (struct waiter){.loop = loop, .free_client = r};
        assert_int_equal(gw_rl_redis_take(r, AG_STR("free"), &p, on_decision, &w[i], &pending), 0);
    }
    assert_true(run_until(loop, &w[0].done));
    loop_sleep(loop, 100);
    assert_int_equal(w[0].calls, 1);
    assert_int_equal(w[1].calls + w[2].calls, 0);

    /* The same while down: the first deferred fallback frees the client. */
    r = client_new(free_port(), NULL, 50, true);
    loop_sleep(loop, 50);
    for (int i = 0; i < 3; i++) {
        w[i] = (struct waiter){.loop = loop, .free_client = r};
        assert_int_equal(gw_rl_redis_take(r, AG_STR("free"), &p, on_decision, &w[i], &pending), 0);
    }
    assert_true(run_until(loop, &w[0].done));
    loop_sleep(loop, 100);
    assert_int_equal(w[0].calls, 1);
    assert_int_equal(w[1].calls + w[2].calls, 0);
}

static void bad_arguments_refused(void **state)
{
    (void)state;
    struct gw_rl_redis *r = client_new(main_server.port, NULL, REAL_TIMEOUT_MS, true);
    struct gw_rl_pending *pending = NULL;
    struct waiter w = {.loop = loop};
    char key[GW_RL_KEY_MAX + 1];
    memset(key, 'k', sizeof key);
    const struct gw_rl_policy p = {100, 1000, 100};
    assert_int_equal(
        gw_rl_redis_take(r, (struct ag_str){key, sizeof key}, &p, on_decision, &w, &pending),
        AG_EINVAL);
    assert_int_equal(gw_rl_redis_take(r, AG_STR("k"), &(struct gw_rl_policy){1, 1000, 0},
                                      on_decision, &w, &pending),
                     AG_EINVAL);
    assert_int_equal(gw_rl_redis_take(r, AG_STR("k"), &p, NULL, &w, &pending), AG_EINVAL);
    assert_null(pending);

    /* A key of the largest size works, and through the store-agnostic call too. */
    assert_true(wait_up_on(loop, r));
    struct gw_rl_store s;
    gw_rl_store_init_redis(&s, r);
    struct gw_rl_decision d = {0};
    assert_int_equal(gw_rl_store_take(&s, (struct ag_str){key, GW_RL_KEY_MAX}, &p, &d, on_decision,
                                      &w, &pending),
                     AG_EAGAIN);
    assert_true(run_until(loop, &w.done));
    assert_false(w.d.degraded);
    assert_int_equal(w.d.remaining, 99);
    assert_int_equal(
        gw_rl_store_take(&s, (struct ag_str){key, sizeof key}, &p, &d, on_decision, &w, &pending),
        AG_EINVAL);
    w = (struct waiter){.loop = loop};
    assert_int_equal(gw_rl_store_take(&s, AG_STR("k"), &p, &d, on_decision, &w, &pending),
                     AG_EAGAIN);
    gw_rl_store_cancel(pending);
    gw_rl_redis_free(r);
    assert_int_equal(w.calls, 0);
}

static void remove_tmpdir(void)
{
    DIR *dir = opendir(tmpdir);
    if (dir) {
        struct dirent *e;
        char path[512];
        while ((e = readdir(dir))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
            unlink(path);
        }
        closedir(dir);
    }
    rmdir(tmpdir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* hiredis writes with write(2) */
    if (access(REDIS_SERVER, X_OK) != 0) {
        fprintf(stderr, "%s is not installed\n", REDIS_SERVER);
        return 1;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/agora-rl-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    /* The client's log lines go to a file, so that tests can count them. */
    char log_path[128];
    snprintf(log_path, sizeof log_path, "%s/gateway.log", tmpdir);
    log_fd = open(log_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0) {
        perror("open");
        return 1;
    }
    ag_log_setup("test", AG_LOG_INFO, log_fd);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(url_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(decisions_match_memory_store, setup, teardown),
        cmocka_unit_test_setup_teardown(two_clients_share_one_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(redis_down_falls_back_then_reconnects, setup, teardown),
        cmocka_unit_test_setup_teardown(black_hole_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(max_pending_bounds_waiting_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(script_error_falls_back_and_noscript_reloads, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(stalled_server_falls_back_and_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(password_and_database, setup, teardown),
        cmocka_unit_test_setup_teardown(cancelled_decisions_never_call_back, setup, teardown),
        cmocka_unit_test_setup_teardown(free_drops_pending_decisions, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_arguments_refused, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    ag_log_setup(NULL, AG_LOG_INFO, 1);
    close(log_fd);
    remove_tmpdir();
    return failed;
}
