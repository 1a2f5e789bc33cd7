/*
 * The bus port's drivers (internal to the kit and the agora CLI). A driver moves serialized
 * CloudEvents envelopes; the kit owns the outbox, the inbox, retries and dead events
 * (bus_relay.c, bus_consume.c). Drivers: local (bus_local.c), amqp (bus_amqp.c).
 *
 * Threads: a publisher and a subscriber are each used by one thread at a time (the relay
 * thread, the consumer thread). Every call blocks at most the time it is given (or a few
 * seconds for connects). Drivers never log secrets (passwords in URLs are redacted).
 */
#ifndef KIT_BUS_DRIVER_H
#define KIT_BUS_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct kit_db;

/* An event to publish: the outbox row. */
struct kit_bus_out {
    const char *id;       /* the envelope id (UUIDv7) */
    const char *type;     /* the routing key */
    const char *envelope; /* serialized JSON */
    size_t len;
};

/* A received event. The driver owns the memory until the next fetch or close. */
struct kit_bus_delivery {
    const char *envelope;
    size_t len;
    uint64_t tag;     /* local: the log's seq; amqp: the delivery tag */
    bool redelivered; /* amqp: the broker's flag; local: false */
    bool dead;        /* set by the kit before settle: this delivery was parked as dead */
};

struct kit_bus_sub_config {
    /*
     * The consumer group: the service name ("products"). Local: the position is kept in the
     * service's database under this name. AMQP: the durable queue "agora.<group>" (and its
     * dead-letter queue "agora.<group>.dead"). NULL: an ephemeral subscriber (agora events
     * tail): local starts at the end of the log, amqp uses an exclusive auto-delete queue.
     */
    const char *group;
    const char *const *patterns; /* topic patterns, as in struct kit_subscription */
    size_t pattern_count;
    unsigned prefetch; /* amqp basic.qos; local: the largest batch read (≥ 1) */
    /*
     * Ephemeral subscribers only (group NULL): start at the beginning of what the bus still
     * holds instead of its end (agora events tail --from-start). local: seq 0; amqp: ignored
     * (a new queue only sees what is published after it exists).
     */
    bool from_start;
};

struct kit_bus_pub;
struct kit_bus_sub;

struct kit_bus_driver {
    const char *scheme; /* "local", "amqp" */

    /*
     * Checks url fully without touching the bus, so that a bad URL stops the service at start
     * (exit 2) rather than in the relay's back-off loop. Returns 0, or AG_EINVAL with err saying
     * what is wrong (never with the password; amqp refuses amqps:// here), or AG_ENOMEM.
     */
    int (*url_check)(const char *url, struct ag_err *err);

    /*
     * Opens a publisher. Returns 0 and *out; AG_EINVAL for a malformed URL (err says what);
     * AG_EUNAVAIL when the bus cannot be reached now (the caller retries with back-off).
     */
    int (*pub_open)(const char *url, struct kit_bus_pub **out, struct ag_err *err);
    /*
     * Publishes n events, in order, and returns 0 only when the bus holds every one durably
     * (local: committed to the log; amqp: persistent messages confirmed by the broker).
     * An event whose id the log already holds is not appended twice (local); amqp may hold
     * duplicates after a retry (the inbox drops them). A negative code (AG_EUNAVAIL: the
     * connection is lost; the publisher reconnects on the next call) means any subset may
     * have been published: the caller publishes them all again later.
     */
    int (*publish)(struct kit_bus_pub *pub, const struct kit_bus_out *events, size_t n,
                   struct ag_err *err);
    void (*pub_close)(struct kit_bus_pub *pub); /* NULL allowed */

    /*
     * Opens a subscriber; db is the service's own connection for the consumer thread (local
     * keeps its position there, in table bus_positions, created if missing), NULL for an
     * ephemeral one. Codes as pub_open.
     */
    int (*sub_open)(const char *url, const struct kit_bus_sub_config *cfg, struct kit_db *db,
                    struct kit_bus_sub **out, struct ag_err *err);
    /*
     * Waits up to timeout_ms for events matching the patterns and returns how many were put
     * in out (≤ max; 0 on timeout), in bus order. Events that match no pattern are never
     * returned (local skips them and advances its position with the next record). Negative:
     * AG_EUNAVAIL (connection lost: the driver reconnects on the next call, and every
     * delivery not settled will come again).
     */
    int (*fetch)(struct kit_bus_sub *sub, struct kit_bus_delivery *out, size_t max, int timeout_ms,
                 struct ag_err *err);
    /*
     * Inside the kit's transaction on db (the one that wrote the inbox rows): records that
     * every delivery up to and including last is done. Local: writes the position; amqp: 0.
     */
    int (*record)(struct kit_bus_sub *sub, struct kit_db *tx, const struct kit_bus_delivery *last,
                  struct ag_err *err);
    /*
     * After that transaction committed: settles the n deliveries of the last fetch, in
     * order. amqp: a delivery marked dead is rejected without requeue (to the dead-letter
     * exchange), the others acknowledged. Local: moves the in-memory position.
     */
    int (*settle)(struct kit_bus_sub *sub, const struct kit_bus_delivery *d, size_t n,
                  struct ag_err *err);
    /*
     * After that transaction failed: the deliveries not settled must come again, in order,
     * from the next fetch (local: back to the recorded position; amqp: nack with requeue, or
     * a reconnect).
     */
    void (*rewind)(struct kit_bus_sub *sub);
    void (*sub_close)(struct kit_bus_sub *sub); /* NULL allowed */
};

extern const struct kit_bus_driver kit_bus_local;
extern const struct kit_bus_driver kit_bus_amqp;

/*
 * The driver for url ("local:PATH" or "amqp://...") when that driver's url_check accepts it;
 * otherwise NULL with err naming the accepted schemes (an unknown scheme) or saying what is
 * wrong with the URL (amqps://, a bad port, local: without a path...).
 */
const struct kit_bus_driver *kit_bus_driver_for(const char *url, struct ag_err *err);

#endif
