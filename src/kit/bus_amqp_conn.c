/* One AMQP connection of the RabbitMQ bus driver: URL, bounded connect, errors, log lines. */
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"
#include "kit/bus_amqp_conn.h"
#include "kit/kit_router.h"
#include "core/banned.h"

enum {
    URL_MAX = 2048, /* a longer bus URL is a mistake */
    REASON_MAX = 200,
};

/* A percent-decoded copy of in, or NULL with err set (AG_EINVAL / AG_ENOMEM in *rc). */
static char *decode_part(struct ag_str in, const char *what, int *rc, struct ag_err *err)
{
    char *out = malloc(in.len + 1);
    if (!out) {
        *rc = ag_err_set(err, AG_ENOMEM, "out of memory parsing the bus URL");
        return NULL;
    }
    if (kit_pct_decode(in, false, out, in.len + 1) < 0) {
        free(out);
        *rc = ag_err_set(err, AG_EINVAL, "the bus URL's %s has a bad %%-escape", what);
        return NULL;
    }
    return out;
}

static char *copy_str(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (out) {
        memcpy(out, s, n);
        out[n] = '\0';
    }
    return out;
}

/* The URL with the password replaced by "***" (the rest as written). */
static char *redact(const char *url, struct ag_str userinfo)
{
    struct ag_str user;
    struct ag_str password = ag_str_split(userinfo, ':', &user);
    if (!password.p)
        return copy_str(url, strlen(url));
    const char *after = userinfo.p + userinfo.len; /* the '@' */
    size_t head = (size_t)(user.p + user.len - url), tail = strlen(after);
    char *out = malloc(head + 4 + tail + 1);
    if (out) {
        memcpy(out, url, head);
        memcpy(out + head, ":***", 4);
        memcpy(out + head + 4, after, tail + 1);
    }
    return out;
}

void bus_amqp_url_release(struct bus_amqp_url *u)
{
    if (u->password)
        explicit_bzero(u->password, strlen(u->password));
    free(u->user);
    free(u->password);
    free(u->host);
    free(u->vhost);
    free(u->redacted);
    memset(u, 0, sizeof *u);
}

int bus_amqp_url_parse(const char *url, struct bus_amqp_url *u, struct ag_err *err)
{
    int rc = 0;
    memset(u, 0, sizeof *u);
    if (!url || strncmp(url, "amqps://", 8) == 0)
        return ag_err_set(err, AG_EINVAL,
                          "amqps:// (TLS) is not supported yet: use amqp:// on a trusted network");
    if (strncmp(url, "amqp://", 7) != 0)
        return ag_err_set(err, AG_EINVAL,
                          "a RabbitMQ bus URL is amqp://user:password@host:port/vhost");
    if (strlen(url) > URL_MAX)
        return ag_err_set(err, AG_EINVAL, "the bus URL is longer than %d bytes", URL_MAX);
    if (strpbrk(url, "?#"))
        return ag_err_set(err, AG_EINVAL, "the bus URL may have no query or fragment");

    const char *rest = url + 7;
    size_t auth_len = strcspn(rest, "/");
    struct ag_str auth = {rest, auth_len}, userinfo = AG_STR_NULL, hostport = auth;
    const char *at = memrchr(rest, '@', auth_len);
    if (at) {
        userinfo = (struct ag_str){rest, (size_t)(at - rest)};
        hostport = (struct ag_str){at + 1, auth_len - (size_t)(at + 1 - rest)};
    }
    if (!(u->redacted = redact(url, userinfo))) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory parsing the bus URL");
        goto out;
    }

    /* user and password (RabbitMQ's default account when absent) */
    struct ag_str user = AG_STR("guest"), password = AG_STR("guest");
    if (at) {
        password = ag_str_split(userinfo, ':', &user);
        if (!password.p)
            password = AG_STR("");
    }
    if (!(u->user = decode_part(user, "user", &rc, err)) ||
        !(u->password = decode_part(password, "password", &rc, err)))
        goto out;

    /* host, [v6 host], port */
    struct ag_str host = hostport, port = AG_STR_NULL;
    if (hostport.len > 0 && hostport.p[0] == '[') {
        const char *close = memchr(hostport.p, ']', hostport.len);
        if (!close) {
            rc = ag_err_set(err, AG_EINVAL, "the bus URL's IPv6 host lacks its ']' (%s)",
                            u->redacted);
            goto out;
        }
        host = (struct ag_str){hostport.p + 1, (size_t)(close - hostport.p - 1)};
        struct ag_str after = {close + 1, hostport.len - (size_t)(close + 1 - hostport.p)};
        if (after.len > 0 && after.p[0] != ':') {
            rc =
                ag_err_set(err, AG_EINVAL, "the bus URL has junk after its host (%s)", u->redacted);
            goto out;
        }
        if (after.len > 0)
            port = (struct ag_str){after.p + 1, after.len - 1};
    } else {
        struct ag_str p = ag_str_split(hostport, ':', &host);
        if (p.p)
            port = p;
    }
    if (host.len == 0) {
        rc = ag_err_set(err, AG_EINVAL, "the bus URL names no host (%s)", u->redacted);
        goto out;
    }
    u->port = 5672;
    if (port.p) {
        uint64_t n;
        if (ag_str_to_u64(port, 65535, &n) < 0 || n == 0) {
            rc = ag_err_set(err, AG_EINVAL, "the bus URL's port is not 1..65535 (%s)", u->redacted);
            goto out;
        }
        u->port = (int)n;
    }
    if (!(u->host = decode_part(host, "host", &rc, err)))
        goto out;

    /* vhost: "/" for none and for "amqp://host/"; "/%2F" is "/" too */
    struct ag_str vhost = {rest + auth_len, strlen(rest + auth_len)};
    if (vhost.len > 0) {
        vhost.p++;
        vhost.len--;
    }
    if (vhost.len == 0)
        vhost = AG_STR("/");
    if (!(u->vhost = decode_part(vhost, "vhost", &rc, err)))
        goto out;
out:
    if (rc < 0)
        bus_amqp_url_release(u);
    return rc;
}

void bus_amqp_close_reason(const amqp_method_t *m, char *out, size_t cap)
{
    unsigned code = 0;
    amqp_bytes_t text = {0, NULL};
    if (m->id == AMQP_CONNECTION_CLOSE_METHOD && m->decoded) {
        const amqp_connection_close_t *c = m->decoded;
        code = c->reply_code;
        text = c->reply_text;
    } else if (m->id == AMQP_CHANNEL_CLOSE_METHOD && m->decoded) {
        const amqp_channel_close_t *c = m->decoded;
        code = c->reply_code;
        text = c->reply_text;
    } else {
        snprintf(out, cap, "unexpected method 0x%08x from the broker", (unsigned)m->id);
        return;
    }
    int len = text.len > REASON_MAX ? REASON_MAX : (int)text.len;
    snprintf(out, cap, "%s closed by the broker: %u %.*s",
             m->id == AMQP_CONNECTION_CLOSE_METHOD ? "connection" : "channel", code, len,
             text.bytes ? (const char *)text.bytes : "");
}

void bus_amqp_disconnect(struct bus_amqp_conn *c, const char *reason)
{
    if (!c->state)
        return;
    if (reason)
        ag_log_warn("bus connection lost", AG_F_STR("role", c->role),
                    AG_F_STR("url", c->url.redacted), AG_F_STR("error", reason));
    else /* a deliberate close: tell the broker, bounded by the RPC timeout */
        amqp_connection_close(c->state, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c->state);
    c->state = NULL;
}

void bus_amqp_drop(struct bus_amqp_conn *c)
{
    if (c->state)
        amqp_destroy_connection(c->state);
    c->state = NULL;
}

int bus_amqp_fail(struct bus_amqp_conn *c, int amqp_status, const char *what, struct ag_err *err)
{
    ag_err_set(err, AG_EUNAVAIL, "%s on the bus %s: %s", what, c->url.redacted,
               amqp_error_string2(amqp_status));
    bus_amqp_disconnect(c, err ? err->msg : what);
    return AG_EUNAVAIL;
}

/* Why a synchronous call failed, into out (cap bytes). */
static void reply_reason(amqp_rpc_reply_t reply, char *out, size_t cap)
{
    if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION)
        bus_amqp_close_reason(&reply.reply, out, cap);
    else if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
        snprintf(out, cap, "%s", amqp_error_string2(reply.library_error));
    else
        snprintf(out, cap, "no reply");
}

int bus_amqp_check_reply(struct bus_amqp_conn *c, amqp_rpc_reply_t reply, const char *what,
                         struct ag_err *err)
{
    if (reply.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    char reason[REASON_MAX + 64];
    reply_reason(reply, reason, sizeof reason);
    ag_err_set(err, AG_EUNAVAIL, "%s on the bus %s: %s", what, c->url.redacted, reason);
    bus_amqp_disconnect(c, err ? err->msg : what);
    return AG_EUNAVAIL;
}

/* The first failure of a series is a warning; the retries that follow are debug lines. */
static int connect_failed(struct bus_amqp_conn *c, struct ag_err *err, int rc)
{
    if (!c->failing)
        ag_log_warn("bus cannot connect", AG_F_STR("role", c->role),
                    AG_F_STR("url", c->url.redacted), AG_F_STR("error", err ? err->msg : ""));
    else
        ag_log_debug("bus cannot connect", AG_F_STR("role", c->role),
                     AG_F_STR("url", c->url.redacted), AG_F_STR("error", err ? err->msg : ""));
    c->failing = true;
    return rc;
}

int bus_amqp_connect(struct bus_amqp_conn *c, struct ag_err *err)
{
    struct ag_err local = {0};
    if (!err)
        err = &local; /* connect_failed logs the reason */
    bus_amqp_disconnect(c, NULL);
    amqp_connection_state_t state = amqp_new_connection();
    if (!state)
        return ag_err_set(err, AG_ENOMEM, "out of memory opening the bus connection");
    c->state = state;
    const struct timeval timeout = {.tv_sec = BUS_AMQP_CONNECT_TIMEOUT_MS / 1000,
                                    .tv_usec = (BUS_AMQP_CONNECT_TIMEOUT_MS % 1000) * 1000};
    amqp_socket_t *socket = amqp_tcp_socket_new(state);
    if (!socket) {
        amqp_destroy_connection(state);
        c->state = NULL;
        return ag_err_set(err, AG_ENOMEM, "out of memory opening the bus connection");
    }
    int status = amqp_socket_open_noblock(socket, c->url.host, c->url.port, &timeout);
    if (status != AMQP_STATUS_OK) {
        ag_err_set(err, AG_EUNAVAIL, "cannot reach the bus %s: %s", c->url.redacted,
                   amqp_error_string2(status));
        amqp_destroy_connection(state);
        c->state = NULL;
        return connect_failed(c, err, AG_EUNAVAIL);
    }
    /* Without these, a broker that accepts TCP but never answers would block us for ever. */
    amqp_set_handshake_timeout(state, &timeout);
    amqp_set_rpc_timeout(state, &timeout);
    amqp_rpc_reply_t reply =
        amqp_login(state, c->url.vhost, 0, BUS_AMQP_FRAME_MAX, BUS_AMQP_HEARTBEAT_S,
                   AMQP_SASL_METHOD_PLAIN, c->url.user, c->url.password);
    char reason[REASON_MAX + 64];
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
        reply_reason(reply, reason, sizeof reason);
        /* RabbitMQ closes the socket on bad credentials unless the client asked for the reason */
        bool closed = reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
                      (reply.library_error == AMQP_STATUS_CONNECTION_CLOSED ||
                       reply.library_error == AMQP_STATUS_SOCKET_CLOSED);
        ag_err_set(err, AG_EUNAVAIL, "cannot log in to the bus %s as %s: %s%s", c->url.redacted,
                   c->url.user, reason, closed ? " (wrong user or password?)" : "");
        amqp_destroy_connection(state);
        c->state = NULL;
        return connect_failed(c, err, AG_EUNAVAIL);
    }
    amqp_channel_open(state, BUS_AMQP_CHANNEL);
    reply = amqp_get_rpc_reply(state);
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
        reply_reason(reply, reason, sizeof reason);
        ag_err_set(err, AG_EUNAVAIL, "cannot open a channel on the bus %s: %s", c->url.redacted,
                   reason);
        amqp_destroy_connection(state);
        c->state = NULL;
        return connect_failed(c, err, AG_EUNAVAIL);
    }
    c->channel = BUS_AMQP_CHANNEL;
    c->generation++;
    c->failing = false;
    ag_log_info("bus connected", AG_F_STR("role", c->role), AG_F_STR("url", c->url.redacted),
                AG_F_INT("heartbeat_s", amqp_get_heartbeat(state)));
    return 0;
}

int bus_amqp_channel_cycle(struct bus_amqp_conn *c, struct ag_err *err)
{
    int max = amqp_get_channel_max(c->state);
    if (max == 0 || max > 65535)
        max = 65535;
    if (c->channel >= max) /* used them all: a new connection starts again at 1 */
        return bus_amqp_connect(c, err);
    int rc = bus_amqp_check_reply(c, amqp_channel_close(c->state, c->channel, AMQP_REPLY_SUCCESS),
                                  "channel.close", err);
    if (rc < 0)
        return rc;
    c->channel++;
    amqp_channel_open(c->state, c->channel);
    return bus_amqp_check_reply(c, amqp_get_rpc_reply(c->state), "channel.open", err);
}

struct timeval bus_amqp_timeval(int64_t ms)
{
    if (ms < 0)
        ms = 0;
    return (struct timeval){.tv_sec = (time_t)(ms / 1000),
                            .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

int bus_amqp_declare_exchanges(struct bus_amqp_conn *c, struct ag_err *err)
{
    amqp_exchange_declare(c->state, c->channel, amqp_cstring_bytes(BUS_AMQP_EXCHANGE),
                          amqp_cstring_bytes("topic"), 0, 1, 0, 0, amqp_empty_table);
    int rc = bus_amqp_check_reply(c, amqp_get_rpc_reply(c->state),
                                  "exchange.declare " BUS_AMQP_EXCHANGE, err);
    if (rc < 0)
        return rc;
    amqp_exchange_declare(c->state, c->channel, amqp_cstring_bytes(BUS_AMQP_DEAD_EXCHANGE),
                          amqp_cstring_bytes("direct"), 0, 1, 0, 0, amqp_empty_table);
    return bus_amqp_check_reply(c, amqp_get_rpc_reply(c->state),
                                "exchange.declare " BUS_AMQP_DEAD_EXCHANGE, err);
}
