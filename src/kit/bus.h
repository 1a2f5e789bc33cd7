/*
 * The event bus, as a service sees it: emit events inside a database transaction (outbox), and
 * receive the events it subscribed to, each exactly once in effect (inbox). See docs/events.md.
 *
 * Envelope: CloudEvents 1.0, JSON structured mode:
 *   {"specversion":"1.0","id":UUIDv7,"source":"agora/<service>","type":"<service>.<entity>.<action>",
 *    "subject":"<entity id>","time":RFC 3339,"datacontenttype":"application/json",
 *    "tenant":"...","traceparent":"00-...","data":{...}}
 *
 * The bus URL (AGORA_BUS, default "local:var/bus.db") picks the driver:
 *   local:PATH       an append-only SQLite log shared by the processes of one machine
 *   amqp://user:pass@host:port/vhost   RabbitMQ (one topic exchange "agora.events")
 */
#ifndef KIT_BUS_H
#define KIT_BUS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct kit_db;
struct kit_app;

enum {
    KIT_EVENT_TYPE_MAX = 128,         /* bytes of a type */
    KIT_EVENT_SUBJECT_MAX = 256,      /* bytes of a subject */
    KIT_EVENT_MAX_BYTES = 256 * 1024, /* an envelope's serialized size */
};

/*
 * Writes an event into the service's outbox table, on the connection tx, which must be inside a
 * transaction (kit_db_begin): the event is published if and only if that transaction commits.
 * type: "<service>.<entity>.<action>", lowercase letters, digits, '_' and '-' in each of
 * exactly three dot-separated words. subject: the entity's id (non-empty). data: a JSON object;
 * borrowed (not stolen).
 * The envelope's source, tenant and traceparent come from the connection's event context,
 * which the kit sets before each handler runs (the request's tenant and traceparent, or the
 * delivered event's) and which kit_db_event_context overrides.
 * Returns 0; AG_EINVAL when tx is not in a transaction, for a malformed type or subject, when
 * data is not an object or the envelope exceeds KIT_EVENT_MAX_BYTES (err says which); the
 * codes of kit_db_exec. Thread-safe as far as tx is (one thread per connection).
 */
int kit_event_emit(struct kit_db *tx, const char *type, const char *subject, const json_t *data,
                   struct ag_err *err);

/*
 * Sets the event context of a connection: the tenant and traceparent of the events it emits
 * (the source is the service's, fixed at start). NULL leaves a value as it is. Strings are
 * copied. Used by the kit before each handler, and by code that emits outside a request
 * (on_start, seeding) with another tenant than the default.
 */
int kit_db_event_context(struct kit_db *db, const char *tenant, const char *traceparent);

/* ---- receiving ---- */

/* A delivered event, valid during the handler call. */
struct kit_event {
    const char *id;
    const char *type;
    const char *source;
    const char *subject;
    const char *tenant;
    const char *traceparent; /* "" when absent */
    int64_t time_ms;         /* the envelope's time */
    const json_t *data;      /* the data member (an object) */
    const json_t *envelope;  /* the whole envelope */
    unsigned attempt;        /* 1 on the first delivery, 2... on retries */
};

/*
 * A subscription handler. It runs on the service's consumer thread with tx inside a transaction
 * that the kit opened; the kit records the event id in the inbox table in the same transaction
 * and commits after the handler returns 0. The handler must not commit or roll back tx.
 * Events emitted on tx (kit_event_emit) carry the delivered event's tenant and traceparent.
 * A negative return (or a rolled-back transaction) rolls back the handler's writes and the
 * delivery is retried with back-off (AGORA_BUS_RETRY_MS doubling, at most 30 s); after
 * AGORA_BUS_MAX_ATTEMPTS attempts the event is parked as dead (table dead_events, see
 * `agora events dead` / `agora events replay`). err's message is logged and kept with a
 * dead event.
 */
typedef int (*kit_event_fn)(struct kit_app *app, struct kit_db *tx, const struct kit_event *ev,
                            struct ag_err *err);

/*
 * pattern: an AMQP topic pattern over the type's dot-separated words: "auth.user.created",
 * "products.*.updated", "products.#", "#". Events are delivered in the order the bus holds
 * them (per publishing service, in the order of their outbox), one at a time.
 */
struct kit_subscription {
    const char *pattern;
    kit_event_fn handler;
};

/* True when type matches the topic pattern (AMQP rules: '*' one word, '#' zero or more). */
bool kit_topic_match(const char *pattern, const char *type);

#endif
