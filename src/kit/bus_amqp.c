/* The RabbitMQ bus driver: its table, and the subscriber (a durable queue per group, manual acks).
 */

/*
 * Topology (declared again on every connect, so a fresh broker needs no setup):
 *   exchange agora.events       topic, durable: every event, routing key = its type
 *   exchange agora.events.dead  direct, durable: what a group rejects, routing key = the group
 *   queue agora.G               durable, bound to agora.events with each of G's patterns,
 *                               dead-lettering to agora.events.dead with key G
 *   queue agora.G.dead          durable, bound to agora.events.dead with key G
 * An ephemeral subscriber (group NULL) gets a server-named exclusive auto-delete queue.
 *
 * Publisher (bus_amqp_pub.c): one channel in confirm mode; a batch returns once the broker
 * confirmed every message of it.
 *
 * Subscriber: basic.consume with manual acks and basic.qos = prefetch. Settle acks (one
 * multiple-ack per run of consecutive tags) and rejects dead deliveries without requeue, so the
 * broker dead-letters them. Rewind closes the channel, which makes the broker requeue every
 * unacknowledged delivery in queue order before it answers, and consumes again on a new channel
 * number: deliveries still in flight for the old channel are recognised by it and dropped.
 *
 * Any socket or protocol error drops the connection; the next call reconnects (and returns
 * AG_EUNAVAIL while it cannot), so the kit's relay and consumer back off and retry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "core/log.h"
#include "kit/bus_amqp_conn.h"
#include "kit/kit.h"
#include "kit/bus_driver.h"
#include "core/banned.h"

enum {
    GROUP_MAX = 200,      /* bytes of a group name (queue names are at most 255) */
    PREFETCH_MAX = 65535, /* basic.qos prefetch-count is 16 bits */
};

/* ---- subscriber ---- */

struct kit_bus_sub {
    struct bus_amqp_conn conn;
    char *group; /* NULL: ephemeral */
    char *queue; /* "agora.<group>", or the broker-named queue of this connection */
    char **patterns;
    size_t pattern_count;
    uint16_t prefetch;
    bool consuming;        /* basic.consume is active on conn.channel */
    amqp_envelope_t *held; /* the last fetch's messages: the deliveries point into them */
    size_t held_count, held_cap;
    uint64_t fetch_generation; /* the connection and channel the held deliveries came on */
    amqp_channel_t fetch_channel;
    uint64_t settled_upto; /* every delivery tag up to this one on the channel is settled */
};

static void release_held(struct kit_bus_sub *sub)
{
    for (size_t i = 0; i < sub->held_count; i++)
        amqp_destroy_envelope(&sub->held[i]);
    sub->held_count = 0;
}

/* The group's queues: agora.G (dead-lettering to agora.events.dead, key G) and agora.G.dead. */
static int declare_group_queues(struct kit_bus_sub *sub, struct ag_err *err)
{
    struct bus_amqp_conn *c = &sub->conn;
    char dead[GROUP_MAX + 16];
    snprintf(dead, sizeof dead, "%s.dead", sub->queue);
    amqp_queue_declare(c->state, c->channel, amqp_cstring_bytes(dead), 0, 1, 0, 0,
                       amqp_empty_table);
    int rc = bus_amqp_check_reply(c, amqp_get_rpc_reply(c->state), "queue.declare (dead)", err);
    if (rc < 0)
        return rc;
    amqp_queue_bind(c->state, c->channel, amqp_cstring_bytes(dead),
                    amqp_cstring_bytes(BUS_AMQP_DEAD_EXCHANGE), amqp_cstring_bytes(sub->group),
                    amqp_empty_table);
    if ((rc = bus_amqp_check_reply(c, amqp_get_rpc_reply(c->state), "queue.bind (dead)", err)) < 0)
        return rc;
    amqp_table_entry_t args[] = {
        {.key = amqp_cstring_bytes("x-dead-letter-exchange"),
         .value = {.kind = AMQP_FIELD_KIND_UTF8,
                   .value.bytes = amqp_cstring_bytes(BUS_AMQP_DEAD_EXCHANGE)}},
        {.key = amqp_cstring_bytes("x-dead-letter-routing-key"),
         .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(sub->group)}},
    };
    amqp_queue_declare(c->state, c->channel, amqp_cstring_bytes(sub->queue), 0, 1, 0, 0,
                       (amqp_table_t){.num_entries = 2, .entries = args});
    /* A queue declared earlier with other arguments is refused here (406 PRECONDITION_FAILED),
     * with the broker's reason in err. */
    return bus_amqp_check_reply(c, amqp_get_rpc_reply(c->state), "queue.declare", err);
}

/* A server-named, exclusive, auto-delete queue for an ephemeral subscriber. */
static int declare_ephemeral_queue(struct kit_bus_sub *sub, struct ag_err *err)
{
    struct bus_amqp_conn *c = &sub->conn;
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(c->state, c->channel, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    int rc = bus_amqp_check_reply(c, amqp_get_rpc_reply(c->state), "queue.declare", err);
    if (rc < 0)
        return rc;
    char *name = malloc(ok->queue.len + 1);
    if (!name)
        return ag_err_set(err, AG_ENOMEM, "out of memory declaring a queue");
    memcpy(name, ok->queue.bytes, ok->queue.len);
    name[ok->queue.len] = '\0';
    free(sub->queue);
    sub->queue = name;
    return 0;
}

/* Connects when down (declaring everything again), and consumes when not consuming. */
static int sub_ready(struct kit_bus_sub *sub, struct ag_err *err)
{
    struct bus_amqp_conn *c = &sub->conn;
    int rc = 0;
    if (!c->state) {
        sub->consuming = false;
        if ((rc = bus_amqp_connect(c, err)) < 0 || (rc = bus_amqp_declare_exchanges(c, err)) < 0)
            return rc;
        rc = sub->group ? declare_group_queues(sub, err) : declare_ephemeral_queue(sub, err);
        for (size_t i = 0; rc == 0 && i < sub->pattern_count; i++) {
            amqp_queue_bind(c->state, c->channel, amqp_cstring_bytes(sub->queue),
                            amqp_cstring_bytes(BUS_AMQP_EXCHANGE),
                            amqp_cstring_bytes(sub->patterns[i]), amqp_empty_table);
            rc = bus_amqp_check_reply(c, amqp_get_rpc_reply(c->state), "queue.bind", err);
        }
        if (rc < 0) {
            bus_amqp_disconnect(c, NULL); /* AG_ENOMEM leaves it up */
            return rc;
        }
    }
    if (!sub->consuming) {
        amqp_basic_qos(c->state, c->channel, 0, sub->prefetch, 0);
        if ((rc = bus_amqp_check_reply(c, amqp_get_rpc_reply(c->state), "basic.qos", err)) < 0)
            return rc;
        amqp_basic_consume(c->state, c->channel, amqp_cstring_bytes(sub->queue), amqp_empty_bytes,
                           0, 0, 0, amqp_empty_table);
        if ((rc = bus_amqp_check_reply(c, amqp_get_rpc_reply(c->state), "basic.consume", err)) < 0)
            return rc;
        sub->consuming = true;
        sub->settled_upto = 0; /* delivery tags start again at 1 on a new channel */
    }
    return 0;
}

static void amqp_sub_close(struct kit_bus_sub *sub)
{
    if (!sub)
        return;
    release_held(sub);
    free(sub->held);
    /* a clean close: the broker requeues what was not acknowledged */
    bus_amqp_disconnect(&sub->conn, NULL);
    bus_amqp_url_release(&sub->conn.url);
    for (size_t i = 0; i < sub->pattern_count; i++)
        free(sub->patterns[i]);
    free(sub->patterns);
    free(sub->group);
    free(sub->queue);
    free(sub);
}

/* True for a group name usable in queue names: [a-z0-9_-] words separated by dots. */
static bool group_valid(const char *g)
{
    size_t n = strlen(g);
    if (n == 0 || n > GROUP_MAX || g[0] == '.' || g[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = g[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
              ch == '.'))
            return false;
    }
    return true;
}

static int amqp_sub_open(const char *url, const struct kit_bus_sub_config *cfg, struct kit_db *db,
                         struct kit_bus_sub **out, struct ag_err *err)
{
    (void)db; /* the broker keeps the position: acknowledgements */
    *out = NULL;
    if (cfg->group && !group_valid(cfg->group))
        return ag_err_set(err, AG_EINVAL,
                          "bus group \"%.64s\" is not 1..%d of [a-z0-9_.-] (a queue name part)",
                          cfg->group, GROUP_MAX);
    if (cfg->pattern_count > 0 && !cfg->patterns)
        return ag_err_set(err, AG_EINVAL, "bus subscriber without its patterns");
    for (size_t i = 0; i < cfg->pattern_count; i++)
        if (!cfg->patterns[i] || !*cfg->patterns[i] || strlen(cfg->patterns[i]) > 255)
            return ag_err_set(err, AG_EINVAL, "bus pattern %zu is empty or over 255 bytes", i);
    struct kit_bus_sub *sub = calloc(1, sizeof *sub);
    if (!sub)
        return ag_err_set(err, AG_ENOMEM, "out of memory opening the bus subscriber");
    sub->conn.role = "subscriber";
    sub->prefetch = (uint16_t)(cfg->prefetch == 0             ? 1
                               : cfg->prefetch > PREFETCH_MAX ? PREFETCH_MAX
                                                              : cfg->prefetch);
    int rc = bus_amqp_url_parse(url, &sub->conn.url, err);
    if (rc < 0)
        goto out;
    if (cfg->group) {
        size_t n = strlen(cfg->group) + sizeof "agora.";
        if (!(sub->group = strdup(cfg->group)) || !(sub->queue = malloc(n))) {
            rc = ag_err_set(err, AG_ENOMEM, "out of memory opening the bus subscriber");
            goto out;
        }
        snprintf(sub->queue, n, "agora.%s", cfg->group);
    }
    if (cfg->pattern_count > 0 && !(sub->patterns = calloc(cfg->pattern_count, sizeof(char *)))) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory opening the bus subscriber");
        goto out;
    }
    for (; sub->pattern_count < cfg->pattern_count; sub->pattern_count++)
        if (!(sub->patterns[sub->pattern_count] = strdup(cfg->patterns[sub->pattern_count]))) {
            rc = ag_err_set(err, AG_ENOMEM, "out of memory opening the bus subscriber");
            goto out;
        }
    rc = sub_ready(sub, err);
out:
    if (rc < 0) {
        amqp_sub_close(sub);
        return rc;
    }
    *out = sub;
    return 0;
}

/*
 * Reads the frame that made amqp_consume_message stop (not a delivery). The broker cancelling
 * the consumer or closing the channel or connection drops the connection (AG_EUNAVAIL); other
 * frames are ignored. Returns 0 or AG_EUNAVAIL.
 */
static int other_frame(struct kit_bus_sub *sub, struct ag_err *err)
{
    struct bus_amqp_conn *c = &sub->conn;
    amqp_frame_t frame;
    struct timeval zero = {0, 0};
    int status = amqp_simple_wait_frame_noblock(c->state, &frame, &zero);
    if (status == AMQP_STATUS_TIMEOUT)
        return 0;
    if (status != AMQP_STATUS_OK)
        return bus_amqp_fail(c, status, "reading from the bus", err);
    if (frame.frame_type != AMQP_FRAME_METHOD)
        return 0;
    const amqp_method_t *m = &frame.payload.method;
    char reason[300];
    if (m->id == AMQP_BASIC_CANCEL_METHOD && frame.channel == c->channel)
        snprintf(reason, sizeof reason, "the broker cancelled the consumer (queue %s deleted?)",
                 sub->queue);
    else if (m->id == AMQP_CONNECTION_CLOSE_METHOD ||
             (m->id == AMQP_CHANNEL_CLOSE_METHOD && frame.channel == c->channel))
        bus_amqp_close_reason(m, reason, sizeof reason);
    else
        return 0;
    ag_err_set(err, AG_EUNAVAIL, "consuming from the bus %s: %s", c->url.redacted, reason);
    bus_amqp_disconnect(c, err ? err->msg : reason);
    return AG_EUNAVAIL;
}

static int amqp_fetch(struct kit_bus_sub *sub, struct kit_bus_delivery *out, size_t max,
                      int timeout_ms, struct ag_err *err)
{
    release_held(sub);
    int rc = sub_ready(sub, err);
    if (rc < 0 || max == 0)
        return rc;
    if (max > sub->held_cap) {
        amqp_envelope_t *held = realloc(sub->held, max * sizeof *held);
        if (!held)
            return ag_err_set(err, AG_ENOMEM, "out of memory fetching %zu events", max);
        sub->held = held;
        sub->held_cap = max;
    }
    struct bus_amqp_conn *c = &sub->conn;
    int64_t deadline = kit_monotonic_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    while (sub->held_count < max) {
        /* Wait for the first delivery only; then take what has already arrived. */
        struct timeval tv =
            bus_amqp_timeval(sub->held_count == 0 ? deadline - kit_monotonic_ms() : 0);
        amqp_envelope_t env;
        amqp_maybe_release_buffers(c->state);
        amqp_rpc_reply_t reply = amqp_consume_message(c->state, &env, &tv, 0);
        if (reply.reply_type == AMQP_RESPONSE_NORMAL) {
            if (env.channel != c->channel) /* in flight before a rewind: requeued already */
                amqp_destroy_envelope(&env);
            else
                sub->held[sub->held_count++] = env;
            continue;
        }
        if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            reply.library_error == AMQP_STATUS_TIMEOUT)
            break;
        if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            reply.library_error == AMQP_STATUS_UNEXPECTED_STATE)
            rc = other_frame(sub, err);
        else
            rc = bus_amqp_check_reply(c, reply, "consuming", err);
        if (rc < 0) {
            /* what was received comes again: the broker requeues it with the connection */
            release_held(sub);
            return rc;
        }
    }
    for (size_t i = 0; i < sub->held_count; i++)
        out[i] = (struct kit_bus_delivery){
            .envelope = sub->held[i].message.body.bytes,
            .len = sub->held[i].message.body.len,
            .tag = sub->held[i].delivery_tag,
            .redelivered = sub->held[i].redelivered,
        };
    sub->fetch_generation = c->generation;
    sub->fetch_channel = c->channel;
    return (int)sub->held_count;
}

static int amqp_record(struct kit_bus_sub *sub, struct kit_db *tx,
                       const struct kit_bus_delivery *last, struct ag_err *err)
{
    (void)sub, (void)tx, (void)last, (void)err; /* the ack after the commit is the record */
    return 0;
}

static int amqp_settle(struct kit_bus_sub *sub, const struct kit_bus_delivery *d, size_t n,
                       struct ag_err *err)
{
    struct bus_amqp_conn *c = &sub->conn;
    if (n == 0)
        return 0;
    if (!c->state || sub->fetch_generation != c->generation || sub->fetch_channel != c->channel)
        return ag_err_set(err, AG_EUNAVAIL,
                          "the bus connection was lost since these deliveries were fetched: "
                          "they come again");
    for (size_t i = 0; i < n;) {
        int status;
        size_t j = i;
        if (d[i].dead) {
            status = amqp_basic_reject(c->state, c->channel, d[i].tag, 0);
        } else {
            while (j + 1 < n && !d[j + 1].dead && d[j + 1].tag == d[j].tag + 1)
                j++;
            if (d[i].tag == sub->settled_upto + 1) { /* nothing older outstanding */
                status = amqp_basic_ack(c->state, c->channel, d[j].tag, 1);
            } else {
                status = AMQP_STATUS_OK;
                for (size_t k = i; k <= j && status == AMQP_STATUS_OK; k++)
                    status = amqp_basic_ack(c->state, c->channel, d[k].tag, 0);
            }
        }
        if (status != AMQP_STATUS_OK)
            return bus_amqp_fail(c, status, "acknowledging", err);
        if (d[i].tag == sub->settled_upto + 1)
            sub->settled_upto = d[j].tag;
        i = j + 1;
    }
    return 0;
}

static void amqp_rewind(struct kit_bus_sub *sub)
{
    struct ag_err err = {0};
    if (!sub->conn.state || !sub->consuming)
        return;
    sub->consuming = false; /* the next fetch consumes again on the new channel */
    if (bus_amqp_channel_cycle(&sub->conn, &err) < 0)
        ag_log_debug("bus rewind dropped the connection", AG_F_STR("error", err.msg));
}

static int amqp_url_check(const char *url, struct ag_err *err)
{
    struct bus_amqp_url u;
    int rc = bus_amqp_url_parse(url, &u, err);
    if (rc == 0)
        bus_amqp_url_release(&u);
    return rc;
}

const struct kit_bus_driver kit_bus_amqp = {
    .scheme = "amqp",
    .url_check = amqp_url_check,
    .pub_open = bus_amqp_pub_open,
    .publish = bus_amqp_publish,
    .pub_close = bus_amqp_pub_close,
    .sub_open = amqp_sub_open,
    .fetch = amqp_fetch,
    .record = amqp_record,
    .settle = amqp_settle,
    .rewind = amqp_rewind,
    .sub_close = amqp_sub_close,
};
