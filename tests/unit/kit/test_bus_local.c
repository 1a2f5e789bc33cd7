/* Unit tests for src/kit/bus_local.c: the local log's publish, fetch, record, settle, rewind. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "bus_fixture.h"
#include "kit/bus_driver.h"
#include "kit/bus_internal.h"
#include "kit/db.h"
#include "kit/kit.h"

struct fx {
    char dir[64];
    char bus_url[128];
    char db_url[128];
    struct kit_bus_pub *pub;
    struct kit_db *db; /* the consuming service's database */
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    struct ag_err err = {0};
    if (!f || bus_fixture_dir(f->dir) < 0)
        return -1;
    snprintf(f->bus_url, sizeof f->bus_url, "local:%s/var/bus.db", f->dir);
    snprintf(f->db_url, sizeof f->db_url, "sqlite:%s/svc.db", f->dir);
    if (kit_bus_local.pub_open(f->bus_url, &f->pub, &err) < 0 ||
        kit_db_open(f->db_url, &f->db, &err) < 0) {
        print_error("setup: %s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    kit_bus_local.pub_close(f->pub);
    kit_db_close(f->db);
    bus_fixture_rmdir(f->dir);
    free(f);
    return 0;
}

/* An event as the relay hands it over: an envelope whose id and type are given. */
struct ev_buf {
    char id[48], type[64], env[256];
    struct kit_bus_out out;
};
static void make_event(struct ev_buf *e, const char *id, const char *type)
{
    snprintf(e->id, sizeof e->id, "%s", id);
    snprintf(e->type, sizeof e->type, "%s", type);
    int n = snprintf(e->env, sizeof e->env,
                     "{\"id\":\"%s\",\"type\":\"%s\",\"source\":\"agora/t\","
                     "\"time\":\"2026-01-01T00:00:00.000Z\"}",
                     id, type);
    e->out = (struct kit_bus_out){e->id, e->type, e->env, (size_t)n};
}

static void publish(struct fx *f, size_t n, const char *prefix, const char *type)
{
    struct ev_buf *evs = calloc(n, sizeof *evs);
    struct kit_bus_out *outs = calloc(n, sizeof *outs);
    for (size_t i = 0; i < n; i++) {
        char id[48];
        snprintf(id, sizeof id, "%s-%zu", prefix, i);
        make_event(&evs[i], id, type);
        outs[i] = evs[i].out;
    }
    struct ag_err err = {0};
    assert_int_equal(kit_bus_local.publish(f->pub, outs, n, &err), 0);
    free(outs);
    free(evs);
}

static struct kit_bus_sub *open_sub(struct fx *f, struct kit_db *db, const char *const *patterns,
                                    size_t count, unsigned prefetch, bool from_start)
{
    struct kit_bus_sub_config cfg = {.group = db ? "svc" : NULL,
                                     .patterns = patterns,
                                     .pattern_count = count,
                                     .prefetch = prefetch,
                                     .from_start = from_start};
    struct kit_bus_sub *sub = NULL;
    struct ag_err err = {0};
    if (kit_bus_local.sub_open(f->bus_url, &cfg, db, &sub, &err) < 0)
        fail_msg("sub_open: %s", err.msg);
    return sub;
}

/* The id member of a delivery's envelope, into out. */
static void delivery_id(const struct kit_bus_delivery *d, char out[48])
{
    json_t *root = json_loadb(d->envelope, d->len, 0, NULL);
    assert_non_null(root);
    snprintf(out, 48, "%s", json_string_value(json_object_get(root, "id")));
    json_decref(root);
}

/* Records the deliveries up to last inside a transaction on db, commits, settles. */
static void commit_through(struct fx *f, struct kit_bus_sub *sub, struct kit_bus_delivery *d,
                           size_t n)
{
    struct ag_err err = {0};
    assert_int_equal(kit_db_begin(f->db, &err), 0);
    assert_int_equal(kit_bus_local.record(sub, f->db, &d[n - 1], &err), 0);
    assert_int_equal(kit_db_commit(f->db, &err), 0);
    assert_int_equal(kit_bus_local.settle(sub, d, n, &err), 0);
}

static int64_t position(struct fx *f)
{
    int64_t pos = -1;
    assert_int_equal(kit_db_query_int(f->db, "SELECT COALESCE(MAX(seq), 0) FROM bus_positions",
                                      NULL, 0, &pos, NULL),
                     0);
    return pos;
}

static void local_publish_fetch_record(void **state)
{
    struct fx *f = *state;
    struct ag_err err = {0};
    static const char *const pats[] = {"shop.user.*"};
    struct kit_bus_sub *sub = open_sub(f, f->db, pats, 1, 8, false);
    struct kit_bus_delivery d[16];
    assert_int_equal(kit_bus_local.fetch(sub, d, 16, 0, &err), 0); /* empty log */

    publish(f, 5, "a", "shop.user.created");
    int n = kit_bus_local.fetch(sub, d, 16, 1000, &err);
    assert_int_equal(n, 5);
    for (int i = 0; i < n; i++) {
        char id[48], want[48];
        delivery_id(&d[i], id);
        snprintf(want, sizeof want, "a-%d", i);
        assert_string_equal(id, want);
        assert_false(d[i].redelivered);
        if (i > 0)
            assert_true(d[i].tag > d[i - 1].tag);
    }
    /* the first three done and committed; the rest come again after a rewind */
    commit_through(f, sub, d, 3);
    assert_int_equal(position(f), (int64_t)d[2].tag);
    kit_bus_local.rewind(sub);
    n = kit_bus_local.fetch(sub, d, 16, 1000, &err);
    assert_int_equal(n, 2);
    char id[48];
    delivery_id(&d[0], id);
    assert_string_equal(id, "a-3");

    /* a transaction that fails leaves the position: rewind brings the same events again */
    assert_int_equal(kit_db_begin(f->db, &err), 0);
    assert_int_equal(kit_bus_local.record(sub, f->db, &d[1], &err), 0);
    assert_int_equal(kit_db_rollback(f->db), 0);
    kit_bus_local.rewind(sub);
    n = kit_bus_local.fetch(sub, d, 16, 1000, &err);
    assert_int_equal(n, 2);
    delivery_id(&d[0], id);
    assert_string_equal(id, "a-3");
    commit_through(f, sub, d, 2);
    assert_int_equal(kit_bus_local.fetch(sub, d, 16, 10, &err), 0);
    kit_bus_local.sub_close(sub);
}

static void local_batches_and_filter(void **state)
{
    struct fx *f = *state;
    struct ag_err err = {0};
    static const char *const pats[] = {"shop.order.#"};
    struct kit_bus_sub *sub = open_sub(f, f->db, pats, 1, 4, false);
    publish(f, 3, "order", "shop.order.placed");
    publish(f, 10, "noise", "shop.user.created");
    struct kit_bus_delivery d[16];
    /* prefetch 4 bounds a batch, whatever max says */
    int n = kit_bus_local.fetch(sub, d, 16, 1000, &err);
    assert_int_equal(n, 3);
    commit_through(f, sub, d, 3);
    /* the record of the batch's final delivery also covers the non-matching row read after it */
    int64_t after_first = position(f);
    assert_true(after_first > (int64_t)d[2].tag);
    /* only noise follows: nothing is returned, the read position moves over all of it */
    assert_int_equal(kit_bus_local.fetch(sub, d, 16, 20, &err), 0);
    publish(f, 1, "order2", "shop.order.paid");
    n = kit_bus_local.fetch(sub, d, 16, 1000, &err);
    assert_int_equal(n, 1);
    char id[48];
    delivery_id(&d[0], id);
    assert_string_equal(id, "order2-0");
    commit_through(f, sub, d, 1);
    assert_int_equal(position(f), (int64_t)d[0].tag);
    kit_bus_local.sub_close(sub);
}

static void local_duplicates_not_appended(void **state)
{
    struct fx *f = *state;
    struct ag_err err = {0};
    publish(f, 4, "dup", "a.b.c");
    publish(f, 4, "dup", "a.b.c"); /* a relay publishing the same batch again */
    static const char *const pats[] = {"#"};
    struct kit_bus_sub *sub = open_sub(f, NULL, pats, 1, 64, true);
    struct kit_bus_delivery d[64];
    int n = kit_bus_local.fetch(sub, d, 64, 1000, &err);
    assert_int_equal(n, 4);
    kit_bus_local.sub_close(sub);
}

static void local_position_survives_reopen(void **state)
{
    struct fx *f = *state;
    struct ag_err err = {0};
    static const char *const pats[] = {"#"};
    publish(f, 6, "p", "a.b.c");
    struct kit_bus_sub *sub = open_sub(f, f->db, pats, 1, 64, false);
    struct kit_bus_delivery d[64];
    assert_int_equal(kit_bus_local.fetch(sub, d, 4, 1000, &err), 4);
    commit_through(f, sub, d, 4);
    kit_bus_local.sub_close(sub);
    kit_bus_local.pub_close(f->pub);
    kit_db_close(f->db);

    /* another process opening the same files, with another spelling of the log's path */
    assert_int_equal(kit_db_open(f->db_url, &f->db, &err), 0);
    char url[160];
    snprintf(url, sizeof url, "local:%s/var/../var/bus.db", f->dir);
    assert_int_equal(kit_bus_local.pub_open(url, &f->pub, &err), 0);
    struct kit_bus_sub_config cfg = {"svc", pats, 1, 64, false};
    assert_int_equal(kit_bus_local.sub_open(url, &cfg, f->db, &sub, &err), 0);
    int n = kit_bus_local.fetch(sub, d, 64, 1000, &err);
    assert_int_equal(n, 2);
    char id[48];
    delivery_id(&d[0], id);
    assert_string_equal(id, "p-4");
    kit_bus_local.sub_close(sub);
}

static void local_ephemeral_starts_at_end(void **state)
{
    struct fx *f = *state;
    struct ag_err err = {0};
    static const char *const pats[] = {"#"};
    publish(f, 3, "old", "a.b.c");
    struct kit_bus_sub *tail = open_sub(f, NULL, pats, 1, 64, false);
    struct kit_bus_sub *all = open_sub(f, NULL, pats, 1, 64, true);
    struct kit_bus_delivery d[64];
    assert_int_equal(kit_bus_local.fetch(tail, d, 64, 10, &err), 0);
    publish(f, 2, "new", "a.b.c");
    assert_int_equal(kit_bus_local.fetch(tail, d, 64, 1000, &err), 2);
    /* ephemeral record/settle keep the position in memory only */
    assert_int_equal(kit_bus_local.record(tail, NULL, &d[1], &err), 0);
    assert_int_equal(kit_bus_local.settle(tail, d, 2, &err), 0);
    assert_int_equal(kit_bus_local.fetch(tail, d, 64, 10, &err), 0);
    assert_int_equal(kit_bus_local.fetch(all, d, 64, 1000, &err), 5);
    kit_bus_local.sub_close(tail);
    kit_bus_local.sub_close(all);
}

static void local_bad_urls(void **state)
{
    (void)state;
    struct ag_err err = {0};
    struct kit_bus_pub *pub = NULL;
    assert_int_equal(kit_bus_local.pub_open("local:", &pub, &err), AG_EINVAL);
    assert_int_equal(kit_bus_local.pub_open("amqp://x", &pub, &err), AG_EINVAL);
    assert_int_equal(kit_bus_local.pub_open("local:/proc/nope/bus.db", &pub, &err), AG_EUNAVAIL);
    assert_null(kit_bus_driver_for("kafka://x", &err));
    assert_non_null(strstr(err.msg, "local:PATH"));
    assert_ptr_equal(kit_bus_driver_for("local:x", &err), &kit_bus_local);
    assert_ptr_equal(kit_bus_driver_for("amqp://h/", &err), &kit_bus_amqp);
    assert_ptr_equal(kit_bus_driver_for("amqp://u:p@h:5672/v", &err), &kit_bus_amqp);

    /* a known scheme is checked fully, so that a service refuses the URL at start */
    static const struct {
        const char *url, *why;
    } refused[] = {
        {"local:", "names no file"}, {"amqps://u:secret@h/", "TLS"},
        {"amqp://h:99999/", "port"}, {"amqp://h:0/", "port"},
        {"amqp:///", "no host"},     {"amqp://u:secret@h/%zz", "%-escape"},
        {"amqp://h/?x=1", "query"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        err = (struct ag_err){0};
        const struct kit_bus_driver *drv = kit_bus_driver_for(refused[i].url, &err);
        if (drv || err.code != AG_EINVAL || !strstr(err.msg, refused[i].why) ||
            strstr(err.msg, "secret"))
            fail_msg("%s: driver %p, code %d, message \"%s\"; want NULL, %d and \"%s\"",
                     refused[i].url, (const void *)drv, err.code, err.msg, AG_EINVAL,
                     refused[i].why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(local_publish_fetch_record, setup, teardown),
        cmocka_unit_test_setup_teardown(local_batches_and_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(local_duplicates_not_appended, setup, teardown),
        cmocka_unit_test_setup_teardown(local_position_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(local_ephemeral_starts_at_end, setup, teardown),
        cmocka_unit_test(local_bad_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
