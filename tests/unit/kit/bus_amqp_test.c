/* Unit tests for src/kit/bus_amqp.c against a real RabbitMQ: run through ./with_rabbitmq, which
 * sets AGORA_TEST_AMQP_URL and AGORA_TEST_AMQP_RESTART (and fails when rabbitmq-server is not
 * installed). Without the URL the run fails: these tests never skip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "kit/bus_amqp_conn.h"
#include "kit/bus_driver.h"

enum {
    WAIT_MS = 10000, /* a fetch that gets nothing in this long fails the test */
    BODY_MAX = 256,
};

static const char *amqp_url;
static unsigned test_seq; /* makes every test's group and types unique on the shared broker */

#define assert_contains(haystack, needle)                                                          \
    do {                                                                                           \
        const char *h_ = (haystack), *n_ = (needle);                                               \
        if (!h_ || !strstr(h_, n_)) {                                                              \
            print_error("\"%s\" does not contain \"%s\"\n", h_ ? h_ : "(null)", n_);               \
            fail();                                                                                \
        }                                                                                          \
    } while (0)
#define assert_not_contains(haystack, needle)                                                      \
    do {                                                                                           \
        const char *h_ = (haystack), *n_ = (needle);                                               \
        if (strstr(h_, n_)) {                                                                      \
            print_error("\"%s\" contains \"%s\"\n", h_, n_);                                       \
            fail();                                                                                \
        }                                                                                          \
    } while (0)
#define assert_ok(call, err)                                                                       \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ < 0)                                                                               \
            print_error("%s: %s (%s)\n", #call, (err).msg, ag_err_name(rc_));                      \
        assert_int_equal(rc_, 0);                                                                  \
    } while (0)

/* A test's names: group "t<pid>-<n>", event types "t<pid>-<n>.<entity>.<action>". */
struct names {
    char group[32];
    char prefix[32];
};

static void names_new(struct names *n)
{
    snprintf(n->prefix, sizeof n->prefix, "t%ld-%u", (long)getpid(), ++test_seq);
    snprintf(n->group, sizeof n->group, "%s", n->prefix);
}

/* An event to publish, owning its strings. */
struct test_event {
    char id[64];
    char type[96];
    char body[BODY_MAX];
    struct kit_bus_out out;
};

static void event_make(struct test_event *e, const struct names *n, const char *entity_action,
                       unsigned i)
{
    snprintf(e->id, sizeof e->id, "%s-id-%05u", n->prefix, i);
    snprintf(e->type, sizeof e->type, "%s.%s", n->prefix, entity_action);
    snprintf(e->body, sizeof e->body, "{\"id\":\"%s\",\"type\":\"%s\"}", e->id, e->type);
    e->out = (struct kit_bus_out){
        .id = e->id, .type = e->type, .envelope = e->body, .len = strlen(e->body)};
}

static void publish(struct kit_bus_pub *pub, struct test_event *ev, size_t n)
{
    struct kit_bus_out out[128];
    struct ag_err err = {0};
    assert_true(n <= 128);
    for (size_t i = 0; i < n; i++)
        out[i] = ev[i].out;
    assert_ok(kit_bus_amqp.publish(pub, out, n, &err), err);
}

static struct kit_bus_pub *pub_open(void)
{
    struct kit_bus_pub *pub = NULL;
    struct ag_err err = {0};
    assert_ok(kit_bus_amqp.pub_open(amqp_url, &pub, &err), err);
    return pub;
}

static struct kit_bus_sub *sub_open(const char *group, const char *const *patterns, size_t n,
                                    unsigned prefetch)
{
    struct kit_bus_sub *sub = NULL;
    struct ag_err err = {0};
    struct kit_bus_sub_config cfg = {
        .group = group, .patterns = patterns, .pattern_count = n, .prefetch = prefetch};
    assert_ok(kit_bus_amqp.sub_open(amqp_url, &cfg, NULL, &sub, &err), err);
    return sub;
}

/* One fetch that must bring at least one delivery. */
static size_t fetch_some(struct kit_bus_sub *sub, struct kit_bus_delivery *d, size_t max)
{
    struct ag_err err = {0};
    int got = kit_bus_amqp.fetch(sub, d, max, WAIT_MS, &err);
    if (got <= 0)
        print_error("fetch: %d %s\n", got, err.msg);
    assert_true(got > 0);
    return (size_t)got;
}

/* Asserts that delivery d holds event e. */
static void assert_delivery(const struct kit_bus_delivery *d, const struct test_event *e)
{
    char body[BODY_MAX + 1];
    assert_true(d->len <= BODY_MAX);
    memcpy(body, d->envelope, d->len);
    body[d->len] = '\0';
    assert_string_equal(body, e->body);
}

static void settle(struct kit_bus_sub *sub, const struct kit_bus_delivery *d, size_t n)
{
    struct ag_err err = {0};
    assert_ok(kit_bus_amqp.settle(sub, d, n, &err), err);
}

/*
 * Proves that nothing earlier is still queued for sub: publishes a marker event (type
 * "<prefix>.marker.sent", which sub's patterns must match) and asserts it is the very next
 * delivery, then settles it.
 */
static void assert_nothing_before_marker(struct kit_bus_sub *sub, const struct names *n)
{
    struct test_event marker;
    event_make(&marker, n, "marker.sent", 99999);
    struct kit_bus_pub *pub = pub_open();
    publish(pub, &marker, 1);
    kit_bus_amqp.pub_close(pub);
    struct kit_bus_delivery d[4];
    size_t got = fetch_some(sub, d, 1);
    assert_int_equal(got, 1);
    assert_delivery(&d[0], &marker);
    settle(sub, d, 1);
}

/* ---- URLs and connection failures ---- */

static void test_url_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *url, *says;
    } cases[] = {
        {"amqps://guest:guest@127.0.0.1/", "TLS"},
        {"http://127.0.0.1/", "amqp://"},
        {"amqp://guest:s3cret@/", "no host"},
        {"amqp://guest:s3cret@127.0.0.1:0/", "port"},
        {"amqp://guest:s3cret@127.0.0.1:65536/", "port"},
        {"amqp://guest:s3cret@127.0.0.1:56x/", "port"},
        {"amqp://guest:s3cret@127.0.0.1/vhost?x=1", "query"},
        {"amqp://guest:s3cret@127.0.0.1/%zz", "%-escape"},
        {"amqp://guest:s3cret@[::1/", "]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        static char sentinel;
        struct kit_bus_pub *pub = (struct kit_bus_pub *)&sentinel; /* must become NULL */
        struct ag_err err = {0};
        assert_int_equal(kit_bus_amqp.pub_open(cases[i].url, &pub, &err), AG_EINVAL);
        assert_null(pub);
        assert_contains(err.msg, cases[i].says);
        assert_not_contains(err.msg, "s3cret");
    }
    /* a bad group name is refused before any connect */
    struct kit_bus_sub *sub = NULL;
    struct ag_err err = {0};
    const char *pattern = "#";
    struct kit_bus_sub_config cfg = {
        .group = "Bad Group", .patterns = &pattern, .pattern_count = 1, .prefetch = 1};
    assert_int_equal(kit_bus_amqp.sub_open(amqp_url, &cfg, NULL, &sub, &err), AG_EINVAL);
    assert_null(sub);
}

static void test_url_parts(void **state)
{
    (void)state;
    static const struct {
        const char *url, *user, *password, *host, *vhost, *redacted;
        int port;
    } cases[] = {
        {"amqp://guest:guest@127.0.0.1:5673/", "guest", "guest", "127.0.0.1", "/",
         "amqp://guest:***@127.0.0.1:5673/", 5673},
        {"amqp://broker", "guest", "guest", "broker", "/", "amqp://broker", 5672},
        {"amqp://ag%40ora:p%3Ass@mq.example/shop", "ag@ora", "p:ss", "mq.example", "shop",
         "amqp://ag%40ora:***@mq.example/shop", 5672},
        {"amqp://u:@[::1]:15672/%2F", "u", "", "::1", "/", "amqp://u:***@[::1]:15672/%2F", 15672},
        {"amqp://only-user@h/v%2Fx", "only-user", "", "h", "v/x", "amqp://only-user@h/v%2Fx", 5672},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct bus_amqp_url u;
        struct ag_err err = {0};
        assert_ok(bus_amqp_url_parse(cases[i].url, &u, &err), err);
        assert_string_equal(u.user, cases[i].user);
        assert_string_equal(u.password, cases[i].password);
        assert_string_equal(u.host, cases[i].host);
        assert_string_equal(u.vhost, cases[i].vhost);
        assert_string_equal(u.redacted, cases[i].redacted);
        assert_int_equal(u.port, cases[i].port);
        bus_amqp_url_release(&u);
        bus_amqp_url_release(&u); /* idempotent */
    }
}

/* amqp_url with its user:password replaced by userinfo. */
static void url_with_userinfo(const char *userinfo, char *out, size_t cap)
{
    const char *at = strchr(amqp_url, '@');
    assert_non_null(at);
    snprintf(out, cap, "amqp://%s%s", userinfo, at);
}

static void test_unreachable_and_refused_login(void **state)
{
    (void)state;
    struct kit_bus_pub *pub = NULL;
    struct ag_err err = {0};
    /* a port nobody listens on: bind one, close it, use it */
    char url[512];
    snprintf(url, sizeof url, "amqp://guest:s3cret@127.0.0.1:1/");
    assert_int_equal(kit_bus_amqp.pub_open(url, &pub, &err), AG_EUNAVAIL);
    assert_null(pub);
    assert_contains(err.msg, "127.0.0.1:1");
    assert_contains(err.msg, ":***@");
    assert_not_contains(err.msg, "s3cret");

    url_with_userinfo("guest:s3cret", url, sizeof url);
    assert_int_equal(kit_bus_amqp.pub_open(url, &pub, &err), AG_EUNAVAIL);
    assert_contains(err.msg, "log in");
    assert_not_contains(err.msg, "s3cret");

    /* an unknown vhost */
    snprintf(url, sizeof url, "%sagora-no-such-vhost", amqp_url);
    struct kit_bus_sub *sub = NULL;
    const char *pattern = "#";
    struct kit_bus_sub_config cfg = {
        .group = NULL, .patterns = &pattern, .pattern_count = 1, .prefetch = 1};
    assert_int_equal(kit_bus_amqp.sub_open(url, &cfg, NULL, &sub, &err), AG_EUNAVAIL);
    assert_null(sub);
    assert_contains(err.msg, "agora-no-such-vhost");
}

/* ---- publish and fetch ---- */

static void test_publish_then_fetch_in_order(void **state)
{
    (void)state;
    struct names n;
    names_new(&n);
    char pattern[96];
    snprintf(pattern, sizeof pattern, "%s.#", n.prefix);
    const char *patterns[] = {pattern};
    struct kit_bus_sub *sub = sub_open(n.group, patterns, 1, 50);
    struct kit_bus_pub *pub = pub_open();
    struct test_event ev[20];
    for (unsigned i = 0; i < 20; i++)
        event_make(&ev[i], &n, "thing.created", i);
    publish(pub, ev, 20);
    /* an empty batch is a no-op */
    struct ag_err err = {0};
    assert_ok(kit_bus_amqp.publish(pub, NULL, 0, &err), err);

    struct kit_bus_delivery d[20];
    size_t seen = 0;
    while (seen < 20) {
        size_t got = fetch_some(sub, d, 20 - seen);
        for (size_t i = 0; i < got; i++) {
            assert_delivery(&d[i], &ev[seen + i]);
            assert_false(d[i].redelivered);
        }
        settle(sub, d, got);
        seen += got;
    }
    assert_nothing_before_marker(sub, &n);
    kit_bus_amqp.pub_close(pub);
    kit_bus_amqp.sub_close(sub);
}

static void test_patterns_route_only_matching_types(void **state)
{
    (void)state;
    struct names n;
    names_new(&n);
    char p1[96], p2[96], p3[96];
    snprintf(p1, sizeof p1, "%s.user.created", n.prefix);
    snprintf(p2, sizeof p2, "%s.*.deleted", n.prefix);
    snprintf(p3, sizeof p3, "%s.marker.sent", n.prefix);
    const char *patterns[] = {p1, p2, p3};
    struct kit_bus_sub *sub = sub_open(n.group, patterns, 3, 10);
    struct kit_bus_pub *pub = pub_open();
    struct test_event ev[5];
    event_make(&ev[0], &n, "user.created", 0);
    event_make(&ev[1], &n, "user.updated", 1); /* no match */
    event_make(&ev[2], &n, "item.deleted", 2);
    event_make(&ev[3], &n, "item.deleted.late", 3); /* '*' is one word: no match */
    event_make(&ev[4], &n, "user.created", 4);
    publish(pub, ev, 5);
    const struct test_event *want[] = {&ev[0], &ev[2], &ev[4]};
    struct kit_bus_delivery d[8];
    size_t seen = 0;
    while (seen < 3) {
        size_t got = fetch_some(sub, d, 3 - seen);
        for (size_t i = 0; i < got; i++)
            assert_delivery(&d[i], want[seen + i]);
        settle(sub, d, got);
        seen += got;
    }
    assert_nothing_before_marker(sub, &n);
    /* an ephemeral subscriber sees what is published after it exists */
    struct kit_bus_sub *tail = sub_open(NULL, patterns, 1, 10);
    publish(pub, &ev[0], 1);
    size_t got = fetch_some(tail, d, 8);
    assert_int_equal(got, 1);
    assert_delivery(&d[0], &ev[0]);
    settle(tail, d, 1);
    kit_bus_amqp.sub_close(tail);
    /* drain the group's copy */
    got = fetch_some(sub, d, 8);
    assert_int_equal(got, 1);
    settle(sub, d, 1);
    kit_bus_amqp.pub_close(pub);
    kit_bus_amqp.sub_close(sub);
}

static void test_settled_are_not_redelivered_unsettled_are(void **state)
{
    (void)state;
    struct names n;
    names_new(&n);
    char pattern[96];
    snprintf(pattern, sizeof pattern, "%s.#", n.prefix);
    const char *patterns[] = {pattern};
    struct kit_bus_sub *sub = sub_open(n.group, patterns, 1, 10);
    struct kit_bus_pub *pub = pub_open();
    struct test_event ev[4];
    for (unsigned i = 0; i < 4; i++)
        event_make(&ev[i], &n, "thing.created", i);
    publish(pub, ev, 4);
    kit_bus_amqp.pub_close(pub);
    /* settle the first two, close with the other two unsettled */
    struct kit_bus_delivery d[4];
    size_t seen = 0;
    while (seen < 4)
        seen += fetch_some(sub, d + seen, 4 - seen);
    settle(sub, d, 2);
    kit_bus_amqp.sub_close(sub);

    sub = sub_open(n.group, patterns, 1, 10);
    seen = 0;
    while (seen < 2) {
        size_t got = fetch_some(sub, d, 2 - seen);
        for (size_t i = 0; i < got; i++) {
            assert_delivery(&d[i], &ev[2 + seen + i]);
            assert_true(d[i].redelivered);
        }
        settle(sub, d, got);
        seen += got;
    }
    assert_nothing_before_marker(sub, &n);
    kit_bus_amqp.sub_close(sub);
}

static void test_rewind_redelivers_in_order(void **state)
{
    (void)state;
    struct names n;
    names_new(&n);
    char pattern[96];
    snprintf(pattern, sizeof pattern, "%s.#", n.prefix);
    const char *patterns[] = {pattern};
    struct kit_bus_sub *sub = sub_open(n.group, patterns, 1, 3);
    struct kit_bus_pub *pub = pub_open();
    struct test_event ev[6];
    for (unsigned i = 0; i < 6; i++)
        event_make(&ev[i], &n, "thing.created", i);
    publish(pub, ev, 6);
    kit_bus_amqp.pub_close(pub);

    /* one settled; then prefetch 3: the next fetch holds at most 3, more are in flight to us */
    struct kit_bus_delivery d[6];
    size_t got = fetch_some(sub, d, 1);
    assert_delivery(&d[0], &ev[0]);
    settle(sub, d, 1);
    got = fetch_some(sub, d, 6);
    assert_true(got <= 3);
    assert_delivery(&d[0], &ev[1]);
    /* the transaction of those "failed" */
    kit_bus_amqp.rewind(sub);
    /* a settle of rewound deliveries is refused: they come again */
    struct ag_err err = {0};
    assert_int_equal(kit_bus_amqp.settle(sub, d, got, &err), AG_EUNAVAIL);

    /* everything from ev[1] comes again, in order, however the fetches cut it */
    size_t seen = 1;
    while (seen < 6) {
        got = fetch_some(sub, d, 6 - seen);
        for (size_t i = 0; i < got; i++)
            assert_delivery(&d[i], &ev[seen + i]);
        settle(sub, d, got);
        seen += got;
    }
    assert_nothing_before_marker(sub, &n);
    kit_bus_amqp.sub_close(sub);
}

/* basic.get of one message from queue on a connection of its own; its body into out. */
static bool get_one(const char *queue, char *out, size_t cap)
{
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(conn);
    char url[512];
    snprintf(url, sizeof url, "%s", amqp_url);
    struct amqp_connection_info info;
    assert_int_equal(amqp_parse_url(url, &info), AMQP_STATUS_OK);
    assert_int_equal(amqp_socket_open(sock, info.host, info.port), AMQP_STATUS_OK);
    assert_int_equal(
        amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, info.user, info.password)
            .reply_type,
        AMQP_RESPONSE_NORMAL);
    amqp_channel_open(conn, 1);
    assert_int_equal(amqp_get_rpc_reply(conn).reply_type, AMQP_RESPONSE_NORMAL);
    amqp_rpc_reply_t r = amqp_basic_get(conn, 1, amqp_cstring_bytes(queue), 1);
    assert_int_equal(r.reply_type, AMQP_RESPONSE_NORMAL);
    bool found = r.reply.id == AMQP_BASIC_GET_OK_METHOD;
    if (found) {
        amqp_message_t msg;
        assert_int_equal(amqp_read_message(conn, 1, &msg, 0).reply_type, AMQP_RESPONSE_NORMAL);
        assert_true(msg.body.len < cap);
        memcpy(out, msg.body.bytes, msg.body.len);
        out[msg.body.len] = '\0';
        amqp_destroy_message(&msg);
    }
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
    return found;
}

static void test_dead_delivery_lands_in_dead_queue(void **state)
{
    (void)state;
    struct names n;
    names_new(&n);
    char pattern[96];
    snprintf(pattern, sizeof pattern, "%s.#", n.prefix);
    const char *patterns[] = {pattern};
    struct kit_bus_sub *sub = sub_open(n.group, patterns, 1, 10);
    struct kit_bus_pub *pub = pub_open();
    struct test_event ev[3];
    for (unsigned i = 0; i < 3; i++)
        event_make(&ev[i], &n, "thing.created", i);
    publish(pub, ev, 3);
    kit_bus_amqp.pub_close(pub);
    struct kit_bus_delivery d[3];
    size_t seen = 0;
    while (seen < 3)
        seen += fetch_some(sub, d + seen, 3 - seen);
    d[1].dead = true; /* the middle one: acks around a reject */
    settle(sub, d, 3);
    assert_nothing_before_marker(sub, &n);

    char queue[128], body[BODY_MAX + 1];
    snprintf(queue, sizeof queue, "agora.%s.dead", n.group);
    /* dead-lettering is asynchronous in the broker: poll for it */
    bool found = false;
    for (int i = 0; i < 500 && !(found = get_one(queue, body, sizeof body)); i++)
        usleep(10 * 1000);
    assert_true(found);
    assert_string_equal(body, ev[1].body);
    assert_false(get_one(queue, body, sizeof body)); /* only that one */
    kit_bus_amqp.sub_close(sub);
}

static void test_thousand_events_in_batches(void **state)
{
    (void)state;
    enum { TOTAL = 1000, BATCH = 100 };
    struct names n;
    names_new(&n);
    char pattern[96];
    snprintf(pattern, sizeof pattern, "%s.#", n.prefix);
    const char *patterns[] = {pattern};
    struct kit_bus_sub *sub = sub_open(n.group, patterns, 1, BATCH);
    struct kit_bus_pub *pub = pub_open();
    struct test_event *ev = calloc(TOTAL, sizeof *ev);
    assert_non_null(ev);
    for (unsigned i = 0; i < TOTAL; i++)
        event_make(&ev[i], &n, "thing.created", i);
    for (unsigned b = 0; b < TOTAL / BATCH; b++)
        publish(pub, ev + b * BATCH, BATCH);
    kit_bus_amqp.pub_close(pub);
    struct kit_bus_delivery d[BATCH];
    size_t seen = 0;
    while (seen < TOTAL) {
        size_t got = fetch_some(sub, d, BATCH);
        assert_true(seen + got <= TOTAL);
        for (size_t i = 0; i < got; i++)
            assert_delivery(&d[i], &ev[seen + i]);
        settle(sub, d, got);
        seen += got;
    }
    assert_nothing_before_marker(sub, &n);
    kit_bus_amqp.sub_close(sub);
    free(ev);
}

/* ---- broker restart ---- */

/* Milliseconds on the monotonic clock, for deadlines. */
static long long monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static atomic_int restart_status = -1;

static void *restart_broker(void *arg)
{
    atomic_store(&restart_status, system((const char *)arg));
    return NULL;
}

static void test_broker_restart(void **state)
{
    (void)state;
    const char *restart = getenv("AGORA_TEST_AMQP_RESTART");
    assert_non_null(restart);
    enum { BEFORE = 10, AFTER = 5 };
    struct names n;
    names_new(&n);
    char pattern[96];
    snprintf(pattern, sizeof pattern, "%s.#", n.prefix);
    const char *patterns[] = {pattern};
    struct kit_bus_sub *sub = sub_open(n.group, patterns, 1, 20);
    struct kit_bus_pub *pub = pub_open();
    struct test_event ev[BEFORE + AFTER];
    for (unsigned i = 0; i < BEFORE + AFTER; i++)
        event_make(&ev[i], &n, "thing.created", i);
    publish(pub, ev, BEFORE); /* confirmed: persistent on a durable queue */

    /* restart in the background; meanwhile both sides fail with AG_EUNAVAIL, nothing else */
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, restart_broker, (void *)restart), 0);
    int pub_unavail = 0, sub_unavail = 0;
    struct kit_bus_delivery d[BEFORE + AFTER];
    while (atomic_load(&restart_status) == -1) {
        struct ag_err err = {0};
        int rc = kit_bus_amqp.fetch(sub, d, 1, 200, &err);
        if (rc < 0) {
            assert_int_equal(rc, AG_EUNAVAIL);
            sub_unavail++;
        } else if (rc > 0) {
            kit_bus_amqp.rewind(sub); /* not before the restart is seen: keep them queued */
        }
        rc = kit_bus_amqp.publish(pub, NULL, 0, &err); /* a no-op: must not touch the broker */
        assert_int_equal(rc, 0);
        struct kit_bus_out probe = ev[0].out; /* a duplicate: allowed, the inbox drops it */
        rc = kit_bus_amqp.publish(pub, &probe, 1, &err);
        if (rc < 0) {
            assert_int_equal(rc, AG_EUNAVAIL);
            pub_unavail++;
        }
        usleep(100 * 1000);
    }
    pthread_join(thread, NULL);
    assert_int_equal(atomic_load(&restart_status), 0);
    assert_true(pub_unavail > 0);
    assert_true(sub_unavail > 0);

    /* after the restart both reconnect (the caller retries, as the relay does) */
    struct kit_bus_out out[AFTER];
    for (unsigned i = 0; i < AFTER; i++)
        out[i] = ev[BEFORE + i].out;
    int rc = AG_EUNAVAIL;
    struct ag_err err = {0};
    for (int attempt = 0; attempt < 100 && rc == AG_EUNAVAIL; attempt++)
        if ((rc = kit_bus_amqp.publish(pub, out, AFTER, &err)) < 0)
            usleep(100 * 1000);
    assert_ok(rc, err);

    /* every event arrives: the ones before the restart (kept by the broker) and after, in
     * publishing order once duplicates of the probe are dropped; nothing else arrives. The
     * subscriber may need a while to reconnect (AG_EUNAVAIL), but not past the deadline. */
    bool seen[BEFORE + AFTER] = {false};
    size_t distinct = 0;
    size_t next = 0; /* the index in ev of the next new event expected */
    const long long reconnect_deadline = monotonic_ms() + WAIT_MS;
    while (distinct < BEFORE + AFTER) {
        int got = kit_bus_amqp.fetch(sub, d, BEFORE + AFTER, WAIT_MS, &err);
        if (got == AG_EUNAVAIL) {
            if (monotonic_ms() >= reconnect_deadline)
                fail_msg(
                    "fetch still fails with AG_EUNAVAIL %d ms after the publisher reconnected: %s",
                    (int)WAIT_MS, err.msg);
            usleep(100 * 1000);
            continue;
        }
        if (got <= 0)
            print_error("fetch: %d %s\n", got, err.msg);
        assert_true(got > 0);
        for (int i = 0; i < got; i++) {
            char body[BODY_MAX + 1];
            assert_true(d[i].len <= BODY_MAX);
            memcpy(body, d[i].envelope, d[i].len);
            body[d[i].len] = '\0';
            size_t k = 0;
            while (k < BEFORE + AFTER && strcmp(body, ev[k].body) != 0)
                k++;
            if (k == BEFORE + AFTER)
                fail_msg("a delivery matches no event published: %s", body);
            if (!seen[k]) {
                assert_int_equal(k, next); /* new ones in order */
                seen[k] = true;
                distinct++;
                next++;
            }
        }
        settle(sub, d, (size_t)got);
    }
    /* the duplicates of ev[0] the probes made may still be queued: drain until the marker */
    struct test_event marker;
    event_make(&marker, &n, "marker.sent", 99999);
    publish(pub, &marker, 1);
    for (bool done = false; !done;) {
        size_t got = fetch_some(sub, d, BEFORE + AFTER);
        for (size_t i = 0; i < got; i++) {
            if (d[i].len == strlen(marker.body) &&
                memcmp(d[i].envelope, marker.body, d[i].len) == 0)
                done = true;
            else
                assert_delivery(&d[i], &ev[0]);
        }
        settle(sub, d, got);
    }
    kit_bus_amqp.pub_close(pub);
    kit_bus_amqp.sub_close(sub);
}

int main(void)
{
    ag_log_setup("test", AG_LOG_ERROR, 2);
    amqp_url = getenv("AGORA_TEST_AMQP_URL");
    if (!amqp_url || !*amqp_url) {
        fprintf(stderr, "test_bus_amqp: AGORA_TEST_AMQP_URL is not set: run it through "
                        "tests/unit/kit/with_rabbitmq (ctest does)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parts),
        cmocka_unit_test(test_url_refusals),
        cmocka_unit_test(test_unreachable_and_refused_login),
        cmocka_unit_test(test_publish_then_fetch_in_order),
        cmocka_unit_test(test_patterns_route_only_matching_types),
        cmocka_unit_test(test_settled_are_not_redelivered_unsettled_are),
        cmocka_unit_test(test_rewind_redelivers_in_order),
        cmocka_unit_test(test_dead_delivery_lands_in_dead_queue),
        cmocka_unit_test(test_thousand_events_in_batches),
        cmocka_unit_test(test_broker_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
