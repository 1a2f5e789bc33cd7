/* The bus inside the kit: envelopes, the relay and consumer threads, metrics, the start glue. */
#ifndef KIT_BUS_INTERNAL_H
#define KIT_BUS_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "kit/bus.h"
#include "kit/bus_driver.h"

struct kit_req;
struct kit_route;

/* The AGORA_BUS_* settings (kit_config.c reads them; defaults in docs/events.md). */
struct kit_bus_settings {
    const char *url;         /* AGORA_BUS: "local:var/bus.db", "amqp://..." */
    unsigned batch;          /* AGORA_BUS_BATCH: rows per publish, events per fetch */
    unsigned poll_ms;        /* AGORA_BUS_POLL_MS: the relay's poll when nobody wakes it */
    unsigned retry_ms;       /* AGORA_BUS_RETRY_MS: the first retry delay of a failed handler */
    unsigned max_attempts;   /* AGORA_BUS_MAX_ATTEMPTS: deliveries before an event is dead */
    uint64_t outbox_keep_ms; /* AGORA_BUS_OUTBOX_KEEP_S, in ms: how long sent rows stay */
};

enum {
    KIT_BUS_TRACEPARENT_LEN = 55, /* "00-" 32 hex "-" 16 hex "-" 2 hex */
    KIT_BUS_FETCH_TIMEOUT_MS = 200,
    KIT_BUS_RETRY_MAX_MS = 30000,   /* a failing handler's longest wait */
    KIT_BUS_BACKOFF_FIRST_MS = 100, /* a lost bus: first wait before reconnecting */
    KIT_BUS_BACKOFF_MAX_MS = 5000,  /* ... doubling up to this */
    KIT_BUS_ERROR_MAX = 1000,       /* bytes of a dead event's error kept */
};

/* ---- envelopes (bus_emit.c) ---- */

/* True for "<word>.<word>.<word>", each word 1+ of [a-z0-9_-], at most KIT_EVENT_TYPE_MAX. */
bool kit_event_type_valid(const char *type);
/* True for a W3C trace context traceparent we propagate: version 00 form, ids not all zero. */
bool kit_traceparent_valid(const char *s);
/* A new traceparent (random trace and parent ids, sampled), NUL-terminated. */
void kit_traceparent_new(char out[KIT_BUS_TRACEPARENT_LEN + 1]);

/* A parsed envelope: ev's strings point into root. */
struct kit_bus_envelope {
    json_t *root;
    struct kit_event ev;
};
/*
 * Parses and checks a serialized envelope (specversion 1.0, id, source, a valid type, subject,
 * time in RFC 3339, tenant, optional traceparent, data an object). Returns 0 and *out
 * (release it); AG_EINVAL with err saying what is wrong; AG_ENOMEM.
 */
int kit_bus_envelope_parse(const char *text, size_t len, struct kit_bus_envelope *out,
                           struct ag_err *err);
void kit_bus_envelope_release(struct kit_bus_envelope *e);
/* Milliseconds since the epoch of an RFC 3339 time ("2026-01-02T03:04:05.678Z", offsets too). */
int kit_bus_time_parse(const char *s, int64_t *out_ms);

/* ---- metrics (bus.c) ---- */

struct kit_bus_metrics {
    struct ag_series *published, *delivered, *duplicates, *retried, *dead;
    struct ag_series *outbox_pending, *outbox_lag, *delivery_seconds;
};
/* The process's bus metrics, registered on first use (never NULL; series may be NULL). */
const struct kit_bus_metrics *kit_bus_metrics(void);

/* ---- waiting that a stop interrupts (bus.c) ---- */

struct kit_bus_stop;
int kit_bus_stop_new(struct kit_bus_stop **out);
void kit_bus_stop_free(struct kit_bus_stop *s);
/* Asks every waiter to stop; wakes them. */
void kit_bus_stop_request(struct kit_bus_stop *s);
bool kit_bus_stop_requested(struct kit_bus_stop *s);
/* Wakes a waiter early without stopping it (the relay after an outbox commit). */
void kit_bus_stop_poke(struct kit_bus_stop *s);
/*
 * Waits up to ms, or until a stop or a poke. Returns true when a stop was requested. A poke
 * that came while nobody waited ends the next wait at once.
 */
bool kit_bus_stop_wait(struct kit_bus_stop *s, unsigned ms);

/* ---- the relay: outbox → bus (bus_relay.c) ---- */

struct kit_bus_relay;
/*
 * Starts the relay thread: its own connection to db_url, a publisher on drv/bus_url (opened
 * and reopened with back-off by the thread, so an unreachable bus is not an error here).
 * Returns 0 and *out; AG_EUNAVAIL/AG_EINVAL when the database cannot be opened; AG_ESYS;
 * AG_ENOMEM.
 */
int kit_bus_relay_start(const struct kit_bus_driver *drv, const struct kit_bus_settings *s,
                        const char *db_url, struct kit_bus_relay **out, struct ag_err *err);
/* The on-commit hook (kit_db_on_event_commit): ctx is the relay. Cheap, any thread. */
void kit_bus_relay_wake(void *relay);
/* True while the publisher is open and its last call succeeded. */
bool kit_bus_relay_connected(const struct kit_bus_relay *r);
/* Stops the thread (after its current batch), closes everything, frees. NULL allowed. */
void kit_bus_relay_stop(struct kit_bus_relay *r);

/* ---- the consumer: bus → handlers (bus_consume.c) ---- */

struct kit_bus;
struct kit_bus_consumer;
struct kit_bus_consumer_config {
    const struct kit_bus_driver *drv;
    const struct kit_bus_settings *settings;
    const char *db_url;
    const char *group; /* the service name */
    const struct kit_subscription *subs;
    size_t sub_count;
    struct kit_app *app; /* passed to handlers (may be NULL in tests) */
    /* the consumer's connection is attached to it (kit_bus_attach): the source of the events
     * its handlers emit, and the relay's wake-up when they commit */
    struct kit_bus *bus;
};
/* Starts the consumer thread. Codes as kit_bus_relay_start. */
int kit_bus_consumer_start(const struct kit_bus_consumer_config *cfg, struct kit_bus_consumer **out,
                           struct ag_err *err);
bool kit_bus_consumer_connected(const struct kit_bus_consumer *c);
void kit_bus_consumer_stop(struct kit_bus_consumer *c); /* NULL allowed */

/* ---- the kit's glue (bus.c) ---- */

/*
 * Picks the driver for s->url, creates the bus tables on db (the main connection, which also
 * gets the event source "agora/<service>"), keeps subs (borrowed, as app). No thread yet.
 * Returns 0 and *out; AG_EINVAL for an unknown bus URL scheme or a subscription without
 * pattern or handler; the codes of the schema creation.
 */
int kit_bus_new(const struct kit_bus_settings *s, const char *service, const char *db_url,
                struct kit_db *db, const struct kit_subscription *subs, size_t sub_count,
                struct kit_app *app, struct kit_bus **out, struct ag_err *err);
/* Starts the relay, and the consumer when there are subscriptions. Codes of their starts. */
int kit_bus_run(struct kit_bus *bus, struct ag_err *err);
/* Gives a connection the service's event source and the relay's wake-up. */
int kit_bus_attach(struct kit_bus *bus, struct kit_db *db);
/* For /readyz: the relay's (and consumer's) last view of the bus. */
bool kit_bus_reachable(const struct kit_bus *bus);
void kit_bus_stop(struct kit_bus *bus); /* NULL allowed */

/* The builtin routes GET /_kit/events/dead and POST /_kit/events/replay (role admin). */
int kit_bus_route_dead(struct kit_req *req);
int kit_bus_route_replay(struct kit_req *req);

#endif
