/* Unit tests for src/kit/bus_emit.c: kit_event_emit's envelope and refusals, envelope parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kit/bus_internal.h"
#include "kit/bus_schema.h"
#include "kit/db.h"
#include "kit/kit.h"

static int setup(void **state)
{
    struct kit_db *db = NULL;
    struct ag_err err = {0};
    if (kit_db_open("sqlite::memory:", &db, &err) < 0 || kit_bus_schema_create(db, &err) < 0) {
        print_error("setup: %s\n", err.msg);
        kit_db_close(db);
        return -1;
    }
    *state = db;
    return 0;
}

static int teardown(void **state)
{
    kit_db_close(*state);
    return 0;
}

static int64_t outbox_count(struct kit_db *db)
{
    int64_t n = -1;
    assert_int_equal(kit_db_query_int(db, "SELECT COUNT(*) FROM outbox", NULL, 0, &n, NULL), 0);
    return n;
}

/* The envelope of the outbox row with the largest seq, parsed. */
static json_t *last_envelope(struct kit_db *db)
{
    struct kit_db_rows *rows = NULL;
    assert_int_equal(kit_db_query(db, "SELECT envelope FROM outbox ORDER BY seq DESC LIMIT 1", NULL,
                                  0, 1, &rows, NULL),
                     1);
    json_t *env = json_loads(kit_db_rows_text(rows, 0, 0, NULL), 0, NULL);
    kit_db_rows_free(rows);
    assert_non_null(env);
    return env;
}

static int commits_seen;
static void on_commit(void *ctx)
{
    (void)ctx;
    commits_seen++;
}

static void emit_envelope_shape(void **state)
{
    struct kit_db *db = *state;
    struct ag_err err = {0};
    assert_int_equal(kit_db_event_source(db, "agora/shop"), 0);
    kit_db_on_event_commit(db, on_commit, NULL);
    commits_seen = 0;
    json_t *data = json_pack("{s:s, s:i}", "email", "a@b.c", "n", 7);
    int64_t before = kit_now_ms();
    assert_int_equal(kit_db_begin(db, &err), 0);
    assert_int_equal(kit_event_emit(db, "shop.user.created", "u-1", data, &err), 0);
    assert_int_equal(kit_db_commit(db, &err), 0);
    assert_int_equal(commits_seen, 1);
    assert_int_equal(json_object_get(data, "n") != NULL, 1); /* data borrowed, still ours */
    assert_int_equal(data->refcount, 1);

    json_t *env = last_envelope(db);
    /* the members in the documented order, nothing else: no traceparent without one set */
    static const char *const keys[] = {"specversion", "id",   "source",          "type",
                                       "subject",     "time", "datacontenttype", "tenant",
                                       "data"};
    assert_int_equal(json_object_size(env), sizeof keys / sizeof keys[0]);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!json_object_get(env, keys[i]))
            fail_msg("member %s missing", keys[i]);
    assert_string_equal(json_string_value(json_object_get(env, "specversion")), "1.0");
    assert_true(kit_id_valid(json_string_value(json_object_get(env, "id"))));
    assert_string_equal(json_string_value(json_object_get(env, "source")), "agora/shop");
    assert_string_equal(json_string_value(json_object_get(env, "type")), "shop.user.created");
    assert_string_equal(json_string_value(json_object_get(env, "subject")), "u-1");
    assert_string_equal(json_string_value(json_object_get(env, "datacontenttype")),
                        "application/json");
    assert_string_equal(json_string_value(json_object_get(env, "tenant")), "default");
    assert_true(json_equal(json_object_get(env, "data"), data));
    int64_t t = 0;
    assert_int_equal(kit_bus_time_parse(json_string_value(json_object_get(env, "time")), &t), 0);
    assert_true(t >= before && t <= kit_now_ms());

    /* the outbox row's own columns agree with the envelope */
    struct kit_db_rows *rows = NULL;
    assert_int_equal(kit_db_query(db,
                                  "SELECT id, type, subject, tenant, sent_at IS NULL FROM outbox "
                                  "ORDER BY seq DESC LIMIT 1",
                                  NULL, 0, 1, &rows, NULL),
                     1);
    assert_string_equal(kit_db_rows_text(rows, 0, 0, NULL),
                        json_string_value(json_object_get(env, "id")));
    assert_string_equal(kit_db_rows_text(rows, 0, 1, NULL), "shop.user.created");
    assert_string_equal(kit_db_rows_text(rows, 0, 2, NULL), "u-1");
    assert_string_equal(kit_db_rows_text(rows, 0, 3, NULL), "default");
    assert_int_equal(kit_db_rows_int(rows, 0, 4), 1);
    kit_db_rows_free(rows);
    json_decref(env);

    /* a context: tenant and traceparent go into the next envelope */
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_int_equal(kit_db_event_context(db, "acme", tp), 0);
    assert_int_equal(kit_db_begin(db, &err), 0);
    assert_int_equal(kit_event_emit(db, "shop.user.updated", "u-1", data, &err), 0);
    assert_int_equal(kit_db_commit(db, &err), 0);
    env = last_envelope(db);
    assert_string_equal(json_string_value(json_object_get(env, "tenant")), "acme");
    assert_string_equal(json_string_value(json_object_get(env, "traceparent")), tp);
    json_decref(env);

    /* NULL leaves a value, "" clears the traceparent; an empty tenant is refused */
    assert_int_equal(kit_db_event_context(db, NULL, ""), 0);
    assert_int_equal(kit_db_event_context(db, "", NULL), AG_EINVAL);
    struct kit_db_event_ctx ctx;
    kit_db_event_context_get(db, &ctx);
    assert_string_equal(ctx.tenant, "acme");
    assert_string_equal(ctx.traceparent, "");

    /* a rolled-back emit leaves nothing and wakes nobody */
    int64_t n = outbox_count(db);
    assert_int_equal(kit_db_begin(db, &err), 0);
    assert_int_equal(kit_event_emit(db, "shop.user.deleted", "u-1", data, &err), 0);
    assert_int_equal(kit_db_rollback(db), 0);
    assert_int_equal(outbox_count(db), n);
    assert_int_equal(commits_seen, 2);
    /* a transaction without events does not wake the relay either */
    assert_int_equal(kit_db_begin(db, &err), 0);
    assert_int_equal(kit_db_commit(db, &err), 0);
    assert_int_equal(commits_seen, 2);
    json_decref(data);
}

static void emit_refusals(void **state)
{
    struct kit_db *db = *state;
    struct ag_err err = {0};
    json_t *data = json_object();

    /* not in a transaction: the event could not commit with a change */
    assert_int_equal(kit_event_emit(db, "a.b.c", "s", data, &err), AG_EINVAL);
    assert_non_null(strstr(err.msg, "transaction"));

    assert_int_equal(kit_db_begin(db, &err), 0);
    static const char *const bad_types[] = {
        "",     "a",      "a.b",     "a.b.c.d", "A.b.c", "a..c",  ".b.c",
        "a.b.", "a.b.c ", "a.b.c\n", "a.b.ç",   "a.b/c", "a.*.c", "a.#.c",
    };
    for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++)
        if (kit_event_emit(db, bad_types[i], "s", data, &err) != AG_EINVAL)
            fail_msg("type \"%s\" was accepted", bad_types[i]);
    assert_int_equal(kit_event_emit(db, NULL, "s", data, &err), AG_EINVAL);
    char long_type[KIT_EVENT_TYPE_MAX + 8];
    memset(long_type, 'a', sizeof long_type);
    long_type[1] = '.';
    long_type[3] = '.';
    long_type[sizeof long_type - 1] = '\0';
    assert_int_equal(kit_event_emit(db, long_type, "s", data, &err), AG_EINVAL);

    static const char *const bad_subjects[] = {"", "a\nb", "a\x01", "\xff\xfe", "a\x7f"};
    for (size_t i = 0; i < sizeof bad_subjects / sizeof bad_subjects[0]; i++)
        if (kit_event_emit(db, "a.b.c", bad_subjects[i], data, &err) != AG_EINVAL)
            fail_msg("subject %zu was accepted", i);
    assert_int_equal(kit_event_emit(db, "a.b.c", NULL, data, &err), AG_EINVAL);
    char long_subject[KIT_EVENT_SUBJECT_MAX + 2];
    memset(long_subject, 's', sizeof long_subject - 1);
    long_subject[sizeof long_subject - 1] = '\0';
    assert_int_equal(kit_event_emit(db, "a.b.c", long_subject, data, &err), AG_EINVAL);

    json_t *arr = json_array(), *str = json_string("x");
    assert_int_equal(kit_event_emit(db, "a.b.c", "s", arr, &err), AG_EINVAL);
    assert_int_equal(kit_event_emit(db, "a.b.c", "s", str, &err), AG_EINVAL);
    assert_int_equal(kit_event_emit(db, "a.b.c", "s", NULL, &err), AG_EINVAL);
    json_decref(arr);
    json_decref(str);

    /* huge data: refused with the size in the message, nothing written */
    char *big = malloc(KIT_EVENT_MAX_BYTES);
    memset(big, 'x', KIT_EVENT_MAX_BYTES - 1);
    big[KIT_EVENT_MAX_BYTES - 1] = '\0';
    json_t *huge = json_pack("{s:s}", "blob", big);
    free(big);
    assert_int_equal(kit_event_emit(db, "a.b.c", "s", huge, &err), AG_EINVAL);
    assert_non_null(strstr(err.msg, "bytes"));
    json_decref(huge);

    /* at the limit's edge an event is fine: the subject at its maximum, data just under */
    long_subject[KIT_EVENT_SUBJECT_MAX] = '\0';
    assert_int_equal(kit_event_emit(db, "a-1.b_2.c3", long_subject, data, &err), 0);
    assert_int_equal(kit_db_commit(db, &err), 0);
    assert_int_equal(outbox_count(db), 1);
    json_decref(data);
}

static void traceparent_rules(void **state)
{
    (void)state;
    assert_true(kit_traceparent_valid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    assert_true(kit_traceparent_valid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
    static const char *const bad[] = {
        NULL,
        "",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  /* zero parent id */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  /* uppercase */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* another version */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* too long */
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",   /* too short */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (kit_traceparent_valid(bad[i]))
            fail_msg("traceparent %zu was accepted", i);
    char a[KIT_BUS_TRACEPARENT_LEN + 1], b[KIT_BUS_TRACEPARENT_LEN + 1];
    kit_traceparent_new(a);
    kit_traceparent_new(b);
    assert_true(kit_traceparent_valid(a));
    assert_true(kit_traceparent_valid(b));
    assert_string_not_equal(a, b);
}

static void time_parse_rules(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_int_equal(kit_bus_time_parse("1970-01-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(kit_bus_time_parse("2026-11-21T10:00:00.123Z", &ms), 0);
    char back[32];
    kit_time_rfc3339(ms, back);
    assert_string_equal(back, "2026-11-21T10:00:00.123Z");
    int64_t off = 0;
    assert_int_equal(kit_bus_time_parse("2026-11-21T12:00:00.123+02:00", &off), 0);
    assert_int_equal(off, ms);
    assert_int_equal(kit_bus_time_parse("2026-11-21T10:00:00.1Z", &off), 0);
    assert_int_equal(off, ms - 23);
    static const char *const bad[] = {NULL,
                                      "",
                                      "2026-11-21",
                                      "2026-11-21T10:00:00",
                                      "2026-13-21T10:00:00Z",
                                      "2026-11-21T24:00:00Z",
                                      "2026-11-21T10:00:00.Z",
                                      "2026-11-21T10:00:00Zjunk",
                                      "2026-11-21T10:00:00+2:00",
                                      "x026-11-21T10:00:00Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (kit_bus_time_parse(bad[i], &ms) == 0)
            fail_msg("time %zu was accepted", i);
}

static void envelope_parse_checks(void **state)
{
    struct kit_db *db = *state;
    struct ag_err err = {0};
    /* what kit_event_emit writes parses back */
    json_t *data = json_pack("{s:b}", "ok", 1);
    assert_int_equal(kit_db_event_context(db, "t",
                                          "00-4bf92f3577b34da6a3ce929d0e0e4736-"
                                          "00f067aa0ba902b7-01"),
                     0);
    assert_int_equal(kit_db_begin(db, &err), 0);
    assert_int_equal(kit_event_emit(db, "x.y.z", "subj", data, &err), 0);
    assert_int_equal(kit_db_commit(db, &err), 0);
    json_t *env = last_envelope(db);
    char *text = json_dumps(env, JSON_COMPACT);
    struct kit_bus_envelope e;
    assert_int_equal(kit_bus_envelope_parse(text, strlen(text), &e, &err), 0);
    assert_string_equal(e.ev.type, "x.y.z");
    assert_string_equal(e.ev.subject, "subj");
    assert_string_equal(e.ev.tenant, "t");
    assert_string_equal(e.ev.source, "agora");
    assert_int_equal(strlen(e.ev.traceparent), KIT_BUS_TRACEPARENT_LEN);
    assert_true(json_equal((json_t *)e.ev.data, data));
    assert_true(e.ev.time_ms > 0);
    kit_bus_envelope_release(&e);
    free(text);

    /* each broken member is named; nothing leaks, nothing crashes */
    static const struct {
        const char *member;
        const char *value; /* JSON text; NULL: removed */
        const char *says;
    } breaks[] = {
        {"specversion", "\"0.3\"", "specversion"},
        {"id", NULL, "id"},
        {"id", "\"\"", "id"},
        {"type", "\"a.b\"", "type"},
        {"source", "1", "source"},
        {"subject", NULL, "subject"},
        {"tenant", "null", "tenant"},
        {"traceparent", "\"00-zz\"", "traceparent"},
        {"time", "\"yesterday\"", "time"},
        {"data", "[1]", "data"},
        {"data", NULL, "data"},
    };
    for (size_t i = 0; i < sizeof breaks / sizeof breaks[0]; i++) {
        json_t *copy = json_deep_copy(env);
        if (breaks[i].value)
            json_object_set_new(copy, breaks[i].member,
                                json_loads(breaks[i].value, JSON_DECODE_ANY, NULL));
        else
            json_object_del(copy, breaks[i].member);
        text = json_dumps(copy, JSON_COMPACT);
        if (kit_bus_envelope_parse(text, strlen(text), &e, &err) != AG_EINVAL)
            fail_msg("break %zu (%s) was accepted", i, breaks[i].member);
        if (!strstr(err.msg, breaks[i].says))
            fail_msg("break %zu: \"%s\" does not name %s", i, err.msg, breaks[i].says);
        assert_null(e.root);
        free(text);
        json_decref(copy);
    }
    static const char *const junk[] = {"", "[]", "{", "nul", "{\"a\":1,\"a\":2}", "\"x\""};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        assert_int_equal(kit_bus_envelope_parse(junk[i], strlen(junk[i]), &e, &err), AG_EINVAL);
    json_decref(env);
    json_decref(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(emit_envelope_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(emit_refusals, setup, teardown),
        cmocka_unit_test(traceparent_rules),
        cmocka_unit_test(time_parse_rules),
        cmocka_unit_test_setup_teardown(envelope_parse_checks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
