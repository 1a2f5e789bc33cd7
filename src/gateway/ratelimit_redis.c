/* Rate limiting shared through Redis: one non-blocking hiredis client per worker loop. */
#include "gateway/ratelimit_redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "core/log.h"
#include "core/banned.h"

/*
 * The decision, in Redis. Mirrors gw_rl_bucket_take: tokens in units of 1/per token, rate
 * units added per ms, all integers under 2^53 (exact in Lua's doubles; fdiv and cdiv correct
 * the rare rounding of a quotient). Numbers are written with %.0f so that no exponent form
 * reaches the hash. Returns {allowed, remaining, ms until full, ms until one token}.
 */
const char gw_rl_redis_script[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local rate, per, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local function fdiv(a, b)\n"
    "  local q = math.floor(a / b)\n"
    "  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end\n"
    "  return q\n"
    "end\n"
    "local function cdiv(a, b)\n"
    "  local q = fdiv(a, b)\n"
    "  if q * b < a then q = q + 1 end\n"
    "  return q\n"
    "end\n"
    "local function int(x) return string.format('%.0f', x) end\n"
    "local cap = burst * per\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local h = redis.call('HMGET', KEYS[1], 'tokens', 'last', 'per')\n"
    "local tokens, last, old = tonumber(h[1]), tonumber(h[2]), tonumber(h[3])\n"
    "if not (tokens and last and old) or tokens < 0 or last < 0 or old < 1 then\n"
    "  tokens, last = cap, now\n"
    "elseif old ~= per then\n"
    "  tokens = math.min(fdiv(tokens, old) * per, cap)\n"
    "end\n"
    "if tokens > cap then tokens = cap end\n"
    "if now > last then\n"
    "  if now - last >= cdiv(cap - tokens, rate) then\n"
    "    tokens = cap\n"
    "  else\n"
    "    tokens = tokens + (now - last) * rate\n"
    "  end\n"
    "  last = now\n"
    "end\n"
    "local allowed, retry = 0, 0\n"
    "if tokens >= per then\n"
    "  tokens = tokens - per\n"
    "  allowed = 1\n"
    "else\n"
    "  retry = cdiv(per - tokens, rate)\n"
    "end\n"
    "local full = cdiv(cap - tokens, rate)\n"
    "redis.call('HSET', KEYS[1], 'tokens', int(tokens), 'last', int(last), 'per', int(per))\n"
    "redis.call('PEXPIRE', KEYS[1], int(full))\n"
    "return {allowed, fdiv(tokens, per), full, retry}\n";

static const char key_prefix[] = "agora:rl:";

enum {
    BACKOFF_FIRST_MS = 100,
    BACKOFF_MAX_MS = 5000,
    HOST_MAX = 255,
    CRED_MAX = 255,
    SHA1_HEX = 40,
    REASON_MAX = 200,
};

/* The connection, by what the connection timer does. */
enum conn_state {
    CONN_WAITING,   /* no connection; the timer is the back-off before the next attempt */
    CONN_HANDSHAKE, /* connecting and loading the script; the timer is its deadline */
    CONN_UP,        /* script loaded; the timer checks that replies keep coming */
};

struct gw_rl_redis {
    struct ag_loop *loop;
    struct gw_rl_redis_config cfg; /* url set to NULL: the caller's string is not kept */
    char host[HOST_MAX + 1];
    int port;
    uint32_t db;
    char user[CRED_MAX + 1], password[CRED_MAX + 1];
    size_t user_len, password_len;
    char address[HOST_MAX + 16]; /* host:port, for the logs (never the password) */
    char sha[SHA1_HEX + 1];

    redisAsyncContext *ac; /* NULL while there is no connection */
    enum conn_state state;
    bool down;           /* failed since last up: decisions fall back at once until up again */
    bool script_failing; /* an error reply to the script was logged; a good reply resets it */
    uint32_t backoff_ms; /* the wait before the next connection attempt */
    struct ag_timer conn_timer;
    struct ag_io io;
    int fd;
    unsigned io_bits; /* AG_IO_* bits watched on fd; 0: not in the loop */

    uint32_t inflight;              /* decisions whose reply callback hiredis still owes */
    uint64_t progress_ms;           /* the latest reply, or when inflight last left 0 */
    struct gw_rl_pending *pendings; /* every live handle */
    struct gw_rl_redis_stats stats;
};

/*
 * One decision. Owned by the client; its memory lives while either side still needs it: the
 * caller (until its callback starts, or it cancels: then done) and hiredis (which calls
 * on_reply exactly once for each command it accepted: then in_hiredis is false).
 */
struct gw_rl_pending {
    struct gw_rl_redis *r;
    struct gw_rl_pending *prev, *next;
    struct ag_timer deadline;
    struct ag_deferred deliver;
    gw_rl_done_cb cb;
    void *ctx;
    struct gw_rl_policy policy;
    struct gw_rl_decision decision;
    bool in_hiredis; /* a command of ours holds it as privdata */
    bool decided;    /* decision set and delivery queued */
    bool done;       /* delivered or cancelled: nothing more for the caller */
    bool retried;    /* sent again with EVAL after NOSCRIPT */
    size_t key_len;
    char key[]; /* key_prefix + the caller's key */
};

static uint64_t div_ceil(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

void gw_rl_redis_config_defaults(struct gw_rl_redis_config *cfg)
{
    *cfg = (struct gw_rl_redis_config){
        .timeout_ms = 50,
        .connect_timeout_ms = 1000,
        .max_pending = 10000,
        .fail_open = true,
    };
}

/* ---- URL ---- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* %-decodes in into out (CRED_MAX bytes and a NUL). Returns 0, or -1 if bad or too long. */
static int decode_credential(struct ag_str in, char *out, size_t *out_len)
{
    size_t n = 0;
    for (size_t i = 0; i < in.len; i++) {
        char c = in.p[i];
        if (c == '%') {
            int hi = i + 2 < in.len ? hex_value(in.p[i + 1]) : -1;
            int lo = hi >= 0 ? hex_value(in.p[i + 2]) : -1;
            if (lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (n == CRED_MAX)
            return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    *out_len = n;
    return 0;
}

static bool host_ok(struct ag_str host)
{
    if (host.len == 0 || host.len > HOST_MAX)
        return false;
    for (size_t i = 0; i < host.len; i++)
        if (host.p[i] <= ' ' || host.p[i] > '~' || host.p[i] == '@' || host.p[i] == '[' ||
            host.p[i] == ']')
            return false;
    return true;
}

/* Parses redis://[[user]:password@]host[:port][/db] into r. Returns 0 or AG_EINVAL. */
static int parse_url(struct gw_rl_redis *r, const char *url, struct ag_err *err)
{
    struct ag_str s = ag_str_from_cstr(url);
    if (!ag_str_has_prefix(s, AG_STR("redis://")))
        return ag_err_set(err, AG_EINVAL, "the rate limit store URL must start with redis://");
    s.p += 8;
    s.len -= 8;
    if (memchr(s.p, '?', s.len) || memchr(s.p, '#', s.len))
        return ag_err_set(err, AG_EINVAL, "the rate limit store URL cannot have a query");
    struct ag_str authority;
    struct ag_str path = ag_str_split(s, '/', &authority);

    size_t at = authority.len;
    while (at > 0 && authority.p[at - 1] != '@')
        at--;
    struct ag_str hostport = authority;
    if (at > 0) {
        struct ag_str userinfo = {authority.p, at - 1}, user;
        struct ag_str password = ag_str_split(userinfo, ':', &user);
        if (!password.p)
            return ag_err_set(err, AG_EINVAL,
                              "the rate limit store URL has a user but no password");
        if (decode_credential(user, r->user, &r->user_len) < 0 ||
            decode_credential(password, r->password, &r->password_len) < 0 || r->password_len == 0)
            return ag_err_set(err, AG_EINVAL,
                              "the rate limit store URL has a bad, empty or too long password");
        hostport = (struct ag_str){authority.p + at, authority.len - at};
    }

    struct ag_str host, port = AG_STR_NULL;
    bool bracketed = hostport.len > 0 && hostport.p[0] == '[';
    if (bracketed) {
        const char *close = memchr(hostport.p, ']', hostport.len);
        if (!close)
            return ag_err_set(err, AG_EINVAL, "the rate limit store URL has no ] after [");
        host = (struct ag_str){hostport.p + 1, (size_t)(close - hostport.p) - 1};
        struct ag_str rest = {close + 1, hostport.len - (size_t)(close - hostport.p) - 1};
        if (rest.len > 0 && rest.p[0] != ':')
            return ag_err_set(err, AG_EINVAL, "the rate limit store URL has junk after ]");
        if (rest.len > 0)
            port = (struct ag_str){rest.p + 1, rest.len - 1};
    } else {
        port = ag_str_split(hostport, ':', &host);
    }
    if (!host_ok(host))
        return ag_err_set(err, AG_EINVAL, "the rate limit store URL has no valid host");
    memcpy(r->host, host.p, host.len);
    r->host[host.len] = '\0';

    uint64_t v = 6379;
    if (port.p && (ag_str_to_u64(port, 65535, &v) < 0 || v == 0))
        return ag_err_set(err, AG_EINVAL, "the rate limit store URL has a bad port");
    r->port = (int)v;

    v = 0;
    if (path.p && path.len > 0 && ag_str_to_u64(path, INT32_MAX, &v) < 0)
        return ag_err_set(err, AG_EINVAL, "the rate limit store URL has a bad database number");
    r->db = (uint32_t)v;

    snprintf(r->address, sizeof r->address, bracketed ? "[%s]:%d" : "%s:%d", r->host, r->port);
    return 0;
}

/* ---- decisions ---- */

static void fallback(const struct gw_rl_redis *r, const struct gw_rl_policy *p,
                     struct gw_rl_decision *out)
{
    *out = (struct gw_rl_decision){
        .allowed = r->cfg.fail_open,
        .degraded = true,
        .limit = p->burst,
        .retry_after_s = r->cfg.fail_open ? 0 : 1,
    };
}

static void pending_release(struct gw_rl_pending *pd)
{
    struct gw_rl_redis *r = pd->r;
    if (pd->prev)
        pd->prev->next = pd->next;
    else
        r->pendings = pd->next;
    if (pd->next)
        pd->next->prev = pd->prev;
    free(pd);
}

/* Sets pd's decision (the first one wins) and queues its delivery. */
static void decide(struct gw_rl_pending *pd, const struct gw_rl_decision *d)
{
    struct gw_rl_redis *r = pd->r;
    if (pd->decided || pd->done)
        return;
    pd->decision = *d;
    pd->decided = true;
    if (d->degraded)
        r->stats.fallbacks++;
    ag_timer_stop(r->loop, &pd->deadline);
    ag_loop_defer_node(r->loop, &pd->deliver);
}

static void decide_fallback(struct gw_rl_pending *pd)
{
    struct gw_rl_decision d;
    fallback(pd->r, &pd->policy, &d);
    decide(pd, &d);
}

static void on_deliver(struct ag_deferred *node)
{
    struct gw_rl_pending *pd = AG_CONTAINER_OF(node, struct gw_rl_pending, deliver);
    gw_rl_done_cb cb = pd->cb;
    void *ctx = pd->ctx;
    struct gw_rl_decision d = pd->decision;
    pd->done = true;
    if (!pd->in_hiredis)
        pending_release(pd);
    cb(ctx, &d); /* last: it may free the client */
}

static void on_deadline(struct ag_timer *t)
{
    struct gw_rl_pending *pd = AG_CONTAINER_OF(t, struct gw_rl_pending, deadline);
    pd->r->stats.timeouts++;
    decide_fallback(pd);
}

/*
 * Reads the script's reply {allowed, remaining, ms to full, ms to one token} into *out.
 * Returns 0, or -1 for anything else (an error reply included).
 */
static int parse_decision(const redisReply *rep, const struct gw_rl_policy *p,
                          struct gw_rl_decision *out)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 4)
        return -1;
    for (size_t i = 0; i < 4; i++)
        if (rep->element[i]->type != REDIS_REPLY_INTEGER || rep->element[i]->integer < 0)
            return -1;
    long long allowed = rep->element[0]->integer;
    uint64_t remaining = (uint64_t)rep->element[1]->integer;
    if (allowed > 1 || remaining > p->burst)
        return -1;
    uint64_t retry_ms = (uint64_t)rep->element[3]->integer;
    *out = (struct gw_rl_decision){
        .allowed = allowed == 1,
        .limit = p->burst,
        .remaining = remaining,
        .reset_s = div_ceil((uint64_t)rep->element[2]->integer, 1000),
        .retry_after_s = allowed == 1 ? 0 : (retry_ms > 1000 ? div_ceil(retry_ms, 1000) : 1),
    };
    return 0;
}

static void arm_stall_check(struct gw_rl_redis *r)
{
    if (r->state == CONN_UP && !ag_timer_active(&r->conn_timer))
        (void)ag_timer_start(r->loop, &r->conn_timer, r->cfg.connect_timeout_ms);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* Queues the script for pd (by hash, or whole). Returns 0, or AG_ECLOSED if hiredis refused. */
static int send_script(struct gw_rl_redis *r, struct gw_rl_pending *pd, bool by_sha)
{
    char rate[24], per[24], burst[24];
    snprintf(rate, sizeof rate, "%" PRIu64, pd->policy.rate);
    snprintf(per, sizeof per, "%" PRIu64, pd->policy.per_ms);
    snprintf(burst, sizeof burst, "%" PRIu64, pd->policy.burst);
    const char *argv[] = {by_sha ? "EVALSHA" : "EVAL",
                          by_sha ? r->sha : gw_rl_redis_script,
                          "1",
                          pd->key,
                          rate,
                          per,
                          burst};
    size_t lens[] = {strlen(argv[0]), strlen(argv[1]), 1, pd->key_len, strlen(rate),
                     strlen(per),     strlen(burst)};
    if (redisAsyncCommandArgv(r->ac, on_reply, pd, 7, argv, lens) != REDIS_OK)
        return AG_ECLOSED;
    pd->in_hiredis = true;
    if (r->inflight++ == 0)
        r->progress_ms = ag_loop_now(r->loop);
    arm_stall_check(r);
    return 0;
}

static bool is_noscript(const redisReply *rep)
{
    return rep->type == REDIS_REPLY_ERROR && rep->len >= 8 && memcmp(rep->str, "NOSCRIPT", 8) == 0;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct gw_rl_pending *pd = privdata;
    struct gw_rl_redis *r = pd->r;
    const redisReply *rep = reply;
    pd->in_hiredis = false;
    r->inflight--;
    if (rep && ac == r->ac)
        r->progress_ms = ag_loop_now(r->loop);
    if (pd->done) {
        pending_release(pd);
        return;
    }
    if (pd->decided)
        return; /* its delivery is queued and frees it */
    if (!rep) {
        decide_fallback(pd); /* the connection is going away */
        return;
    }
    if (is_noscript(rep) && !pd->retried && ac == r->ac) {
        pd->retried = true; /* script cache flushed: send it whole (which caches it again) */
        if (send_script(r, pd, false) == 0)
            return;
    }
    struct gw_rl_decision d;
    if (parse_decision(rep, &pd->policy, &d) == 0) {
        r->script_failing = false;
        decide(pd, &d);
        return;
    }
    r->stats.script_errors++;
    if (!r->script_failing) {
        r->script_failing = true;
        struct ag_str text = rep->type == REDIS_REPLY_ERROR ? (struct ag_str){rep->str, rep->len}
                                                            : AG_STR("unexpected reply");
        ag_log_warn("rate limit script failed", AG_F_STR("store", r->address),
                    AG_F_SLICE("reply", text));
    }
    decide_fallback(pd);
}

/* ---- the connection ---- */

static void connection_lost(struct gw_rl_redis *r, const char *reason)
{
    r->state = CONN_WAITING;
    if (!r->down) {
        r->down = true;
        ag_log_warn("rate limit store unreachable", AG_F_STR("store", r->address),
                    AG_F_STR("reason", reason));
    }
    /* A timer that cannot start (no memory) is started again by the next decision. */
    (void)ag_timer_start(r->loop, &r->conn_timer, r->backoff_ms);
    r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
}

/*
 * Closes the connection on our side. From inside a hiredis callback the context is freed when
 * the callback returns; either way the replies still owed are delivered as NULL to on_reply,
 * which falls back.
 */
static void drop_connection(struct gw_rl_redis *r, const char *reason)
{
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    connection_lost(r, reason);
    redisAsyncFree(ac);
}

static void became_up(struct gw_rl_redis *r)
{
    r->state = CONN_UP;
    ag_timer_stop(r->loop, &r->conn_timer);
    r->backoff_ms = BACKOFF_FIRST_MS;
    r->progress_ms = ag_loop_now(r->loop);
    if (r->down) {
        r->down = false;
        r->stats.reconnects++;
        ag_log_info("rate limit store reconnected", AG_F_STR("store", r->address));
    }
    if (r->inflight)
        arm_stall_check(r);
}

static void on_handshake_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct gw_rl_redis *r = privdata;
    const redisReply *rep = reply;
    if (ac != r->ac || !rep || rep->type != REDIS_REPLY_ERROR)
        return; /* a NULL reply: the connection is closing, and its callbacks say why */
    char reason[REASON_MAX];
    snprintf(reason, sizeof reason, "handshake refused: %.*s",
             (int)(rep->len < 150 ? rep->len : 150), rep->str);
    drop_connection(r, reason);
}

static void on_script_loaded(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct gw_rl_redis *r = privdata;
    const redisReply *rep = reply;
    if (ac != r->ac || !rep)
        return;
    if (rep->type == REDIS_REPLY_STRING && rep->len == SHA1_HEX &&
        memcmp(rep->str, r->sha, SHA1_HEX) == 0) {
        became_up(r);
        return;
    }
    char reason[REASON_MAX];
    snprintf(reason, sizeof reason, "SCRIPT LOAD failed: %.*s",
             rep->type == REDIS_REPLY_ERROR ? (int)(rep->len < 150 ? rep->len : 150) : 0,
             rep->type == REDIS_REPLY_ERROR ? rep->str : "");
    drop_connection(r, reason);
}

/* Queues AUTH, SELECT and SCRIPT LOAD as needed. Returns 0, or -1 if hiredis refused one. */
static int send_handshake(struct gw_rl_redis *r)
{
    if (r->password_len) {
        const char *argv[3] = {"AUTH"};
        size_t lens[3] = {4};
        int argc = 1;
        if (r->user_len) {
            argv[argc] = r->user;
            lens[argc++] = r->user_len;
        }
        argv[argc] = r->password;
        lens[argc++] = r->password_len;
        if (redisAsyncCommandArgv(r->ac, on_handshake_reply, r, argc, argv, lens) != REDIS_OK)
            return -1;
    }
    if (r->db && redisAsyncCommand(r->ac, on_handshake_reply, r, "SELECT %u", r->db) != REDIS_OK)
        return -1;
    const char *argv[] = {"SCRIPT", "LOAD", gw_rl_redis_script};
    size_t lens[] = {6, 4, sizeof gw_rl_redis_script - 1};
    return redisAsyncCommandArgv(r->ac, on_script_loaded, r, 3, argv, lens) == REDIS_OK ? 0 : -1;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct gw_rl_redis *r = ac->data;
    if (ac != r->ac || status == REDIS_OK)
        return; /* up once SCRIPT LOAD is answered */
    char reason[REASON_MAX];
    snprintf(reason, sizeof reason, "connect failed: %s", ac->errstr ? ac->errstr : "?");
    r->ac = NULL; /* hiredis frees it when this returns */
    connection_lost(r, reason);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct gw_rl_redis *r = ac->data;
    if (ac != r->ac)
        return; /* we dropped it ourselves */
    char reason[REASON_MAX];
    snprintf(reason, sizeof reason, "%s",
             status == REDIS_OK || !ac->errstr ? "connection closed" : ac->errstr);
    r->ac = NULL;
    connection_lost(r, reason);
}

/* ---- hiredis event hooks on the ag_loop ---- */

static void on_io(struct ag_io *io, unsigned events)
{
    struct gw_rl_redis *r = AG_CONTAINER_OF(io, struct gw_rl_redis, io);
    redisAsyncContext *ac = r->ac;
    if (ac && (events & AG_IO_READ) && (r->io_bits & AG_IO_READ))
        redisAsyncHandleRead(ac);
    /* The read may have closed the connection (r->ac is then NULL) */
    if (ac && r->ac == ac && (events & AG_IO_WRITE) && (r->io_bits & AG_IO_WRITE))
        redisAsyncHandleWrite(ac);
}

/*
 * Watches the connection's fd for bits. A failure leaves hiredis waiting for an event that
 * will not come: the connection then makes no progress, and the handshake deadline or the
 * stall check drops it.
 */
static void io_watch(struct gw_rl_redis *r, unsigned bits)
{
    if (bits == r->io_bits)
        return;
    if (bits == 0) {
        ag_loop_io_remove(r->loop, &r->io);
        r->io_bits = 0;
        return;
    }
    int rc = r->io_bits ? ag_loop_io_modify(r->loop, &r->io, bits)
                        : ag_loop_io_add(r->loop, &r->io, r->fd, bits, on_io);
    if (rc == 0)
        r->io_bits = bits;
}

static void ev_add_read(void *data)
{
    struct gw_rl_redis *r = data;
    io_watch(r, r->io_bits | AG_IO_READ);
}

static void ev_del_read(void *data)
{
    struct gw_rl_redis *r = data;
    io_watch(r, r->io_bits & ~(unsigned)AG_IO_READ);
}

static void ev_add_write(void *data)
{
    struct gw_rl_redis *r = data;
    io_watch(r, r->io_bits | AG_IO_WRITE);
}

static void ev_del_write(void *data)
{
    struct gw_rl_redis *r = data;
    io_watch(r, r->io_bits & ~(unsigned)AG_IO_WRITE);
}

static void ev_cleanup(void *data)
{
    io_watch(data, 0); /* before hiredis closes the fd */
}

static void connect_start(struct gw_rl_redis *r)
{
    char reason[REASON_MAX];
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac) {
        connection_lost(r, "connect failed: out of memory");
        return;
    }
    if (ac->err) {
        snprintf(reason, sizeof reason, "connect failed: %s", ac->errstr);
        redisAsyncFree(ac);
        connection_lost(r, reason);
        return;
    }
    r->ac = ac;
    r->fd = ac->c.fd;
    r->io_bits = 0;
    r->state = CONN_HANDSHAKE;
    ac->data = r;
    ac->ev.data = r;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (send_handshake(r) < 0) {
        drop_connection(r, "connect failed: the handshake could not be queued");
        return;
    }
    (void)ag_timer_start(r->loop, &r->conn_timer, r->cfg.connect_timeout_ms);
}

static void on_conn_timer(struct ag_timer *t)
{
    struct gw_rl_redis *r = AG_CONTAINER_OF(t, struct gw_rl_redis, conn_timer);
    char reason[REASON_MAX];
    switch (r->state) {
    case CONN_WAITING:
        connect_start(r);
        return;
    case CONN_HANDSHAKE:
        snprintf(reason, sizeof reason, "no answer to the handshake within %" PRIu32 " ms",
                 r->cfg.connect_timeout_ms);
        drop_connection(r, reason);
        return;
    case CONN_UP:
        break;
    }
    if (r->inflight == 0)
        return;
    uint64_t quiet = ag_loop_now(r->loop) - r->progress_ms;
    if (quiet < r->cfg.connect_timeout_ms) {
        (void)ag_timer_start(r->loop, t, r->cfg.connect_timeout_ms - quiet);
        return;
    }
    snprintf(reason, sizeof reason, "no reply within %" PRIu32 " ms", r->cfg.connect_timeout_ms);
    drop_connection(r, reason);
}

/* ---- the API ---- */

static int script_sha1(char out[SHA1_HEX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_Digest(gw_rl_redis_script, sizeof gw_rl_redis_script - 1, md, &len, EVP_sha1(),
                    NULL) ||
        len * 2 != SHA1_HEX)
        return -1;
    static const char hex[] = "0123456789abcdef";
    for (unsigned int i = 0; i < len; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[SHA1_HEX] = '\0';
    return 0;
}

int gw_rl_redis_new(struct ag_loop *loop, const struct gw_rl_redis_config *cfg,
                    struct gw_rl_redis **out, struct ag_err *err)
{
    int rc = 0;
    if (!cfg->url)
        return ag_err_set(err, AG_EINVAL, "the rate limit store needs a URL");
    if (!cfg->timeout_ms || !cfg->connect_timeout_ms || !cfg->max_pending)
        return ag_err_set(err, AG_EINVAL,
                          "rate limit store timeouts and max_pending must be at least 1");
    struct gw_rl_redis *r = calloc(1, sizeof *r);
    if (!r)
        return ag_err_set(err, AG_ENOMEM, "out of memory creating the rate limit store");
    r->loop = loop;
    r->cfg = *cfg;
    r->cfg.url = NULL;
    r->backoff_ms = BACKOFF_FIRST_MS;
    r->io.fd = -1;
    r->fd = -1;
    ag_timer_init(&r->conn_timer, on_conn_timer);
    rc = parse_url(r, cfg->url, err);
    if (rc < 0)
        goto out;
    if (script_sha1(r->sha) < 0) {
        rc = ag_err_set(err, AG_ENOMEM, "SHA-1 of the rate limit script failed");
        goto out;
    }
    connect_start(r);
out:
    if (rc < 0) {
        gw_rl_redis_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int gw_rl_redis_take(struct gw_rl_redis *r, struct ag_str key, const struct gw_rl_policy *p,
                     gw_rl_done_cb cb, void *ctx, struct gw_rl_pending **out)
{
    if (!cb || key.len > GW_RL_KEY_MAX || (!key.p && key.len) || gw_rl_policy_check(p, NULL) < 0)
        return AG_EINVAL;
    size_t key_len = sizeof key_prefix - 1 + key.len;
    struct gw_rl_pending *pd = malloc(sizeof *pd + key_len);
    if (!pd)
        return AG_ENOMEM;
    *pd = (struct gw_rl_pending){.r = r, .cb = cb, .ctx = ctx, .policy = *p, .key_len = key_len};
    memcpy(pd->key, key_prefix, sizeof key_prefix - 1);
    if (key.len)
        memcpy(pd->key + sizeof key_prefix - 1, key.p, key.len);
    ag_timer_init(&pd->deadline, on_deadline);
    ag_deferred_init(&pd->deliver, on_deliver);
    pd->next = r->pendings;
    if (r->pendings)
        r->pendings->prev = pd;
    r->pendings = pd;
    r->stats.decisions++;

    if (r->state == CONN_WAITING && !ag_timer_active(&r->conn_timer))
        (void)ag_timer_start(r->loop, &r->conn_timer, r->backoff_ms);
    bool sent = false;
    if (r->ac && !r->down && r->inflight < r->cfg.max_pending &&
        ag_timer_start(r->loop, &pd->deadline, r->cfg.timeout_ms) == 0) {
        sent = send_script(r, pd, true) == 0;
        if (!sent)
            ag_timer_stop(r->loop, &pd->deadline);
    }
    if (!sent)
        decide_fallback(pd); /* delivered from the loop, not from here */
    *out = pd;
    return 0;
}

void gw_rl_redis_cancel(struct gw_rl_pending *pd)
{
    if (!pd)
        return;
    struct gw_rl_redis *r = pd->r;
    pd->done = true;
    ag_timer_stop(r->loop, &pd->deadline);
    ag_loop_defer_cancel(r->loop, &pd->deliver);
    if (!pd->in_hiredis)
        pending_release(pd); /* else on_reply frees it */
}

bool gw_rl_redis_up(const struct gw_rl_redis *r)
{
    return r->state == CONN_UP;
}

void gw_rl_redis_stats(const struct gw_rl_redis *r, struct gw_rl_redis_stats *out)
{
    *out = r->stats;
    out->up = r->state == CONN_UP;
}

void gw_rl_redis_free(struct gw_rl_redis *r)
{
    if (!r)
        return;
    for (struct gw_rl_pending *pd = r->pendings; pd; pd = pd->next) {
        pd->done = true;
        ag_timer_stop(r->loop, &pd->deadline);
        ag_loop_defer_cancel(r->loop, &pd->deliver);
    }
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac); /* on_reply (NULL) frees each handle hiredis held */
    }
    while (r->pendings)
        pending_release(r->pendings);
    ag_timer_stop(r->loop, &r->conn_timer);
    explicit_bzero(r->password, sizeof r->password);
    explicit_bzero(r->user, sizeof r->user);
    free(r);
}

int gw_rl_redis_url_check(const char *url, struct ag_err *err)
{
    struct gw_rl_redis *r = calloc(1, sizeof *r);
    if (!r)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    int rc = parse_url(r, url, err);
    explicit_bzero(r, sizeof *r); /* it may hold a password */
    free(r);
    return rc;
}
