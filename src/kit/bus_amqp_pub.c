/* The publisher half of the RabbitMQ bus driver: persistent messages and publisher confirms. */

/*
 * One channel in confirm mode; a batch is published, then the driver waits for the broker's
 * acks of every message of it (persistent messages on durable queues are acked once written).
 * A nack, a close or CONFIRM_TIMEOUT_MS without all acks fail the batch (the relay sends it
 * again: the consumers' inbox drops the duplicates).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/log.h"
#include "kit/bus_amqp_conn.h"
#include "kit/kit.h"
#include "core/banned.h"

#define CONTENT_TYPE "application/cloudevents+json"

enum {
    CONFIRM_TIMEOUT_MS = 10000, /* for the broker's acks of a published batch */
};

struct kit_bus_pub {
    struct bus_amqp_conn conn;
    uint64_t next_seq; /* the confirm sequence number of the next message on this channel */
    int64_t last_used_ms;
};

/*
 * After a pause: reads what the broker sent meanwhile, without waiting. librabbitmq answers
 * heartbeats only inside our calls, so a publisher idle for two heartbeats has been closed by
 * the broker; finding that out here lets this call reconnect instead of failing its batch.
 */
static void pub_check_idle(struct kit_bus_pub *pub)
{
    struct bus_amqp_conn *c = &pub->conn;
    int64_t now = kit_monotonic_ms();
    bool idle = now - pub->last_used_ms > BUS_AMQP_HEARTBEAT_S * 1000 / 2;
    pub->last_used_ms = now;
    if (!c->state || !idle)
        return;
    for (;;) {
        amqp_frame_t frame;
        struct timeval zero = {0, 0};
        int status = amqp_simple_wait_frame_noblock(c->state, &frame, &zero);
        if (status == AMQP_STATUS_TIMEOUT)
            return; /* nothing more: the connection looks alive */
        if (status != AMQP_STATUS_OK || (frame.frame_type == AMQP_FRAME_METHOD &&
                                         (frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD ||
                                          frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD))) {
            ag_log_info("bus connection closed while idle: reconnecting", AG_F_STR("role", c->role),
                        AG_F_STR("url", c->url.redacted));
            bus_amqp_drop(c);
            return;
        }
    }
}

/* Connects when down: channel in confirm mode, exchanges declared. */
static int pub_ready(struct kit_bus_pub *pub, struct ag_err *err)
{
    pub_check_idle(pub);
    if (pub->conn.state)
        return 0;
    int rc = bus_amqp_connect(&pub->conn, err);
    if (rc < 0)
        return rc;
    if ((rc = bus_amqp_declare_exchanges(&pub->conn, err)) < 0)
        return rc;
    amqp_confirm_select(pub->conn.state, pub->conn.channel);
    if ((rc = bus_amqp_check_reply(&pub->conn, amqp_get_rpc_reply(pub->conn.state),
                                   "confirm.select", err)) < 0)
        return rc;
    pub->next_seq = 1;
    return 0;
}

void bus_amqp_pub_close(struct kit_bus_pub *pub)
{
    if (!pub)
        return;
    bus_amqp_disconnect(&pub->conn, NULL);
    bus_amqp_url_release(&pub->conn.url);
    free(pub);
}

int bus_amqp_pub_open(const char *url, struct kit_bus_pub **out, struct ag_err *err)
{
    *out = NULL;
    struct kit_bus_pub *pub = calloc(1, sizeof *pub);
    if (!pub)
        return ag_err_set(err, AG_ENOMEM, "out of memory opening the bus publisher");
    pub->conn.role = "publisher";
    int rc = bus_amqp_url_parse(url, &pub->conn.url, err);
    if (rc == 0)
        rc = pub_ready(pub, err);
    if (rc < 0) {
        bus_amqp_pub_close(pub);
        return rc;
    }
    *out = pub;
    return 0;
}

/*
 * Marks the messages of the batch [first, first + n) that an ack or a nack covers (tag, or every
 * tag up to it when multiple). Returns how many were newly marked.
 */
static size_t mark_confirmed(bool *confirmed, uint64_t first, size_t n, uint64_t tag, bool multiple)
{
    if (tag < first || (!multiple && tag - first >= n))
        return 0; /* an earlier, failed batch's late answer; or not one of ours */
    size_t last = tag - first < n ? (size_t)(tag - first) : n - 1;
    size_t marked = 0;
    for (size_t i = multiple ? 0 : last; i <= last; i++)
        if (!confirmed[i]) {
            confirmed[i] = true;
            marked++;
        }
    return marked;
}

/* Waits for the broker's acks of the batch [first, first + n). */
static int wait_confirms(struct kit_bus_pub *pub, uint64_t first, size_t n, bool *confirmed,
                         struct ag_err *err)
{
    struct bus_amqp_conn *c = &pub->conn;
    int64_t deadline = kit_monotonic_ms() + CONFIRM_TIMEOUT_MS;
    size_t pending = n;
    while (pending > 0) {
        struct timeval tv = bus_amqp_timeval(deadline - kit_monotonic_ms());
        amqp_frame_t frame;
        int status = amqp_simple_wait_frame_noblock(c->state, &frame, &tv);
        if (status == AMQP_STATUS_TIMEOUT) {
            ag_err_set(err, AG_EUNAVAIL, "the bus %s confirmed %zu of %zu events within %d ms",
                       c->url.redacted, n - pending, n, CONFIRM_TIMEOUT_MS);
            bus_amqp_disconnect(c, err ? err->msg : "confirm timeout");
            return AG_EUNAVAIL;
        }
        if (status != AMQP_STATUS_OK)
            return bus_amqp_fail(c, status, "waiting for publisher confirms", err);
        if (frame.frame_type != AMQP_FRAME_METHOD)
            continue; /* the header and body of a basic.return: nothing to do */
        const amqp_method_t *m = &frame.payload.method;
        if (m->id == AMQP_BASIC_ACK_METHOD) {
            const amqp_basic_ack_t *ack = m->decoded;
            pending -= mark_confirmed(confirmed, first, n, ack->delivery_tag, ack->multiple);
        } else if (m->id == AMQP_BASIC_NACK_METHOD) {
            /* the broker could not take a message (an internal error in a queue) */
            ag_err_set(err, AG_EUNAVAIL, "the bus %s refused (nack) an event", c->url.redacted);
            bus_amqp_disconnect(c, err ? err->msg : "nack");
            return AG_EUNAVAIL;
        } else if (m->id == AMQP_CHANNEL_CLOSE_METHOD || m->id == AMQP_CONNECTION_CLOSE_METHOD) {
            char reason[300];
            bus_amqp_close_reason(m, reason, sizeof reason);
            ag_err_set(err, AG_EUNAVAIL, "publishing on the bus %s: %s", c->url.redacted, reason);
            bus_amqp_disconnect(c, err ? err->msg : reason);
            return AG_EUNAVAIL;
        }
        amqp_maybe_release_buffers(c->state);
    }
    return 0;
}

int bus_amqp_publish(struct kit_bus_pub *pub, const struct kit_bus_out *events, size_t n,
                     struct ag_err *err)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) /* AMQP short strings; refused before anything is sent */
        if (!events[i].id || !events[i].type || strlen(events[i].id) > 255 ||
            strlen(events[i].type) > 255 || !events[i].envelope)
            return ag_err_set(err, AG_EINVAL,
                              "event %zu has no id, type or envelope, or one "
                              "over 255 bytes",
                              i);
    int rc = pub_ready(pub, err);
    if (rc < 0)
        return rc;
    bool *confirmed = calloc(n, sizeof *confirmed);
    if (!confirmed)
        return ag_err_set(err, AG_ENOMEM, "out of memory publishing %zu events", n);
    uint64_t first = pub->next_seq;
    for (size_t i = 0; i < n; i++) {
        const struct kit_bus_out *ev = &events[i];
        amqp_basic_properties_t props = {
            ._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                      AMQP_BASIC_MESSAGE_ID_FLAG,
            .content_type = amqp_cstring_bytes(CONTENT_TYPE),
            .delivery_mode = AMQP_DELIVERY_PERSISTENT,
            .message_id = amqp_cstring_bytes(ev->id),
        };
        int status = amqp_basic_publish(
            pub->conn.state, pub->conn.channel, amqp_cstring_bytes(BUS_AMQP_EXCHANGE),
            amqp_cstring_bytes(ev->type), 0, 0, &props,
            (amqp_bytes_t){.len = ev->len, .bytes = (void *)ev->envelope});
        if (status != AMQP_STATUS_OK) {
            rc = bus_amqp_fail(&pub->conn, status, "publishing", err);
            goto out;
        }
        pub->next_seq++;
    }
    rc = wait_confirms(pub, first, n, confirmed, err);
out:
    free(confirmed);
    return rc;
}
