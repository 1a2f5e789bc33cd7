/*
 * Internals of the RabbitMQ bus driver, shared by its subscriber (bus_amqp.c) and publisher
 * (bus_amqp_pub.c): one AMQP 0-9-1 connection (bus_amqp_conn.c: URL parsing, connect with
 * bounded timeouts, librabbitmq's errors as AG_EUNAVAIL, log lines of connects and losses with
 * passwords redacted), and the publisher's entry points. Internal to the kit.
 */
#ifndef KIT_BUS_AMQP_CONN_H
#define KIT_BUS_AMQP_CONN_H

#include <amqp.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/time.h>

#include "core/err.h"
#include "kit/bus_driver.h"

#define BUS_AMQP_EXCHANGE      "agora.events"      /* topic: every event, key = its type */
#define BUS_AMQP_DEAD_EXCHANGE "agora.events.dead" /* direct: rejected events, key = group */

enum {
    BUS_AMQP_CHANNEL = 1,               /* a connection's first channel */
    BUS_AMQP_HEARTBEAT_S = 10,          /* negotiated heartbeat */
    BUS_AMQP_CONNECT_TIMEOUT_MS = 5000, /* TCP connect, login, and each RPC (declare, bind) */
    BUS_AMQP_FRAME_MAX = 131072,
};

/* The parts of amqp://user:password@host:port/vhost, each decoded and NUL-terminated. */
struct bus_amqp_url {
    char *user;     /* default "guest" */
    char *password; /* default "guest"; wiped on release */
    char *host;
    int port;       /* default 5672 */
    char *vhost;    /* percent-decoded; default "/" */
    char *redacted; /* "amqp://user:***@host:port/vhost", for logs and errors */
};

/*
 * Parses url. Accepts amqp://[user[:password]@]host[:port][/vhost], user, password and vhost
 * percent-decoded; an IPv6 host in brackets. Rejects (AG_EINVAL, err says why, never with the
 * password): another scheme (amqps:// is refused: TLS is not supported yet), an empty host, a
 * port outside 1..65535, a bad %-escape, a query or fragment. AG_ENOMEM. On failure u holds
 * nothing to release.
 */
int bus_amqp_url_parse(const char *url, struct bus_amqp_url *u, struct ag_err *err);
void bus_amqp_url_release(struct bus_amqp_url *u); /* wipes the password; idempotent */

/*
 * A connection that may be down. `state` is NULL while down; `generation` counts successful
 * connects, so that delivery tags of an earlier connection are never used on a later one.
 */
struct bus_amqp_conn {
    struct bus_amqp_url url;
    const char *role; /* "publisher", "subscriber": for log lines */
    amqp_connection_state_t state;
    amqp_channel_t channel; /* the one channel in use (bus_amqp_channel_cycle moves it on) */
    uint64_t generation;
    bool failing; /* the last connect failed: log the next failures at debug level */
};

/*
 * Opens the TCP connection (at most BUS_AMQP_CONNECT_TIMEOUT_MS), logs in with a heartbeat of
 * BUS_AMQP_HEARTBEAT_S, opens channel BUS_AMQP_CHANNEL and sets the RPC timeout. Returns 0;
 * AG_EUNAVAIL (err says why: refused, timeout, bad credentials, unknown vhost) with the
 * connection down; AG_ENOMEM. Logs the connect, and the first failure of a series.
 */
int bus_amqp_connect(struct bus_amqp_conn *c, struct ag_err *err);

/*
 * Closes the channel in use (the broker requeues its unacknowledged deliveries before it
 * answers) and opens the next channel number, so that frames still in flight for the old one
 * can be told apart and dropped. Returns 0, or AG_EUNAVAIL with the connection down.
 */
int bus_amqp_channel_cycle(struct bus_amqp_conn *c, struct ag_err *err);

/*
 * Closes the connection when it is up (without waiting for the broker: the socket may be dead)
 * and marks it down. reason: NULL for a deliberate close, otherwise why it was lost (logged).
 */
void bus_amqp_disconnect(struct bus_amqp_conn *c, const char *reason);

/* Marks the connection down without a word to the broker or the log (the caller logs). */
void bus_amqp_drop(struct bus_amqp_conn *c);

/*
 * Checks the reply of a synchronous call (what: "queue.declare agora.x"). Returns 0 for a normal
 * reply; otherwise sets err (AG_EUNAVAIL, with the broker's or the library's reason),
 * disconnects (a channel or connection exception leaves nothing usable) and returns AG_EUNAVAIL.
 */
int bus_amqp_check_reply(struct bus_amqp_conn *c, amqp_rpc_reply_t reply, const char *what,
                         struct ag_err *err);

/*
 * For a librabbitmq status code (negative) from a call that is not an RPC: sets err
 * (AG_EUNAVAIL, "what: reason"), disconnects, returns AG_EUNAVAIL.
 */
int bus_amqp_fail(struct bus_amqp_conn *c, int amqp_status, const char *what, struct ag_err *err);

/*
 * The reason in a connection.close or channel.close method from the broker ("320
 * CONNECTION_FORCED - broker forced connection closure..."), into out (cap bytes).
 */
void bus_amqp_close_reason(const amqp_method_t *m, char *out, size_t cap);

/* Declares the two durable exchanges on c's channel. Returns 0 or AG_EUNAVAIL (c is down). */
int bus_amqp_declare_exchanges(struct bus_amqp_conn *c, struct ag_err *err);

struct timeval bus_amqp_timeval(int64_t ms); /* a timeout of ms (0 when negative) */

/* The publisher (bus_amqp_pub.c): kit_bus_amqp's pub_open, publish, pub_close. */
int bus_amqp_pub_open(const char *url, struct kit_bus_pub **out, struct ag_err *err);
int bus_amqp_publish(struct kit_bus_pub *pub, const struct kit_bus_out *events, size_t n,
                     struct ag_err *err);
void bus_amqp_pub_close(struct kit_bus_pub *pub);

#endif
