/* Unit tests for src/core/metrics.c: exact Prometheus text, label bounds, validation, threads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/metrics.h"

/* Renders reg and compares the whole text with expected. */
static void assert_render(struct ag_metrics *reg, const char *expected)
{
    struct ag_buf b;
    ag_buf_init(&b, 1 << 20);
    assert_int_equal(ag_metrics_render(reg, &b), 0);
    assert_int_equal(ag_buf_append(&b, "", 1), 0); /* NUL for the string comparison */
    assert_string_equal(ag_buf_str(&b).p, expected);
    ag_buf_release(&b);
}

static struct ag_series *series_of(struct ag_metric *m, const char *const values[])
{
    struct ag_series *s = NULL;
    assert_int_equal(ag_metric_series(m, values, &s), 0);
    assert_non_null(s);
    return s;
}

static void test_counter_and_gauges(void **state)
{
    (void)state;
    struct ag_metrics *reg;
    struct ag_metric *requests, *inflight, *temp, *unused;
    struct ag_err err = {0};
    const char *const labels[] = {"method", "code"};
    assert_int_equal(ag_metrics_new(&reg), 0);
    assert_int_equal(ag_metrics_counter(reg, "http_requests_total", "Requests handled.", labels, 2,
                                        0, &requests, &err),
                     0);
    assert_int_equal(
        ag_metrics_gauge(reg, "inflight", "Requests in progress.", NULL, 0, 0, &inflight, &err), 0);
    assert_int_equal(ag_metrics_gauge(reg, "temp_celsius", NULL, NULL, 0, 0, &temp, &err), 0);
    /* A labelled family without series is left out of the output. */
    assert_int_equal(
        ag_metrics_counter(reg, "unused_total", "Never used.", labels, 2, 0, &unused, &err), 0);

    struct ag_series *get_200 = series_of(requests, (const char *const[]){"GET", "200"});
    struct ag_series *post_500 = series_of(requests, (const char *const[]){"POST", "500"});
    assert_ptr_equal(series_of(requests, (const char *const[]){"GET", "200"}), get_200);
    ag_counter_add(get_200, 2);
    ag_counter_inc(get_200);
    ag_counter_inc(post_500);
    assert_int_equal(ag_counter_value(get_200), 3);

    struct ag_series *g = series_of(inflight, NULL);
    ag_gauge_set(g, 2.5);
    ag_gauge_add(g, -1);
    assert_true(ag_gauge_value(g) == 1.5);
    ag_gauge_set(series_of(temp, NULL), -INFINITY);

    assert_render(reg, "# HELP http_requests_total Requests handled.\n"
                       "# TYPE http_requests_total counter\n"
                       "http_requests_total{method=\"GET\",code=\"200\"} 3\n"
                       "http_requests_total{method=\"POST\",code=\"500\"} 1\n"
                       "# HELP inflight Requests in progress.\n"
                       "# TYPE inflight gauge\n"
                       "inflight 1.5\n"
                       "# TYPE temp_celsius gauge\n"
                       "temp_celsius -Inf\n");

    ag_gauge_set(g, NAN);
    ag_gauge_set(series_of(temp, NULL), 0.1);
    assert_render(reg, "# HELP http_requests_total Requests handled.\n"
                       "# TYPE http_requests_total counter\n"
                       "http_requests_total{method=\"GET\",code=\"200\"} 3\n"
                       "http_requests_total{method=\"POST\",code=\"500\"} 1\n"
                       "# HELP inflight Requests in progress.\n"
                       "# TYPE inflight gauge\n"
                       "inflight NaN\n"
                       "# TYPE temp_celsius gauge\n"
                       "temp_celsius 0.1\n");
    ag_metrics_free(reg);
}

static void test_histograms(void **state)
{
    (void)state;
    struct ag_metrics *reg;
    struct ag_metric *size, *latency;
    const char *const labels[] = {"route"};
    const double bounds[] = {0.25, 0.5, 1};
    assert_int_equal(ag_metrics_new(&reg), 0);
    assert_int_equal(
        ag_metrics_histogram(reg, "body_size", "Body sizes.", labels, 1, 0, bounds, 3, &size, NULL),
        0);
    assert_int_equal(ag_metrics_histogram(reg, "latency_seconds", "Latency.", NULL, 0, 0, NULL, 0,
                                          &latency, NULL),
                     0);

    struct ag_series *users = series_of(size, (const char *const[]){"/users"});
    const double observed[] = {0.125, 0.25, 0.375, 2, 8, NAN}; /* NaN is ignored */
    for (size_t i = 0; i < sizeof observed / sizeof observed[0]; i++)
        ag_histogram_observe(users, observed[i]);
    series_of(size, (const char *const[]){"/"});
    ag_histogram_observe(series_of(latency, NULL), 0.003);

    assert_render(reg, "# HELP body_size Body sizes.\n"
                       "# TYPE body_size histogram\n"
                       "body_size_bucket{route=\"/users\",le=\"0.25\"} 2\n"
                       "body_size_bucket{route=\"/users\",le=\"0.5\"} 3\n"
                       "body_size_bucket{route=\"/users\",le=\"1\"} 3\n"
                       "body_size_bucket{route=\"/users\",le=\"+Inf\"} 5\n"
                       "body_size_sum{route=\"/users\"} 10.75\n"
                       "body_size_count{route=\"/users\"} 5\n"
                       "body_size_bucket{route=\"/\",le=\"0.25\"} 0\n"
                       "body_size_bucket{route=\"/\",le=\"0.5\"} 0\n"
                       "body_size_bucket{route=\"/\",le=\"1\"} 0\n"
                       "body_size_bucket{route=\"/\",le=\"+Inf\"} 0\n"
                       "body_size_sum{route=\"/\"} 0\n"
                       "body_size_count{route=\"/\"} 0\n"
                       "# HELP latency_seconds Latency.\n"
                       "# TYPE latency_seconds histogram\n"
                       "latency_seconds_bucket{le=\"0.005\"} 1\n"
                       "latency_seconds_bucket{le=\"0.01\"} 1\n"
                       "latency_seconds_bucket{le=\"0.025\"} 1\n"
                       "latency_seconds_bucket{le=\"0.05\"} 1\n"
                       "latency_seconds_bucket{le=\"0.1\"} 1\n"
                       "latency_seconds_bucket{le=\"0.25\"} 1\n"
                       "latency_seconds_bucket{le=\"0.5\"} 1\n"
                       "latency_seconds_bucket{le=\"1\"} 1\n"
                       "latency_seconds_bucket{le=\"2.5\"} 1\n"
                       "latency_seconds_bucket{le=\"5\"} 1\n"
                       "latency_seconds_bucket{le=\"10\"} 1\n"
                       "latency_seconds_bucket{le=\"+Inf\"} 1\n"
                       "latency_seconds_sum 0.003\n"
                       "latency_seconds_count 1\n");
    ag_metrics_free(reg);
}

static void test_escaping(void **state)
{
    (void)state;
    struct ag_metrics *reg;
    struct ag_metric *m;
    const char *const labels[] = {"path"};
    assert_int_equal(ag_metrics_new(&reg), 0);
    assert_int_equal(ag_metrics_counter(reg, "odd:name_total", "Line one\nback\\slash \"quoted\"",
                                        labels, 1, 0, &m, NULL),
                     0);
    ag_counter_inc(series_of(m, (const char *const[]){"a\\b\"c\nd"}));
    ag_counter_inc(series_of(m, (const char *const[]){""}));
    ag_counter_inc(series_of(m, (const char *const[]){"caf\xc3\xa9"}));
    assert_render(reg, "# HELP odd:name_total Line one\\nback\\\\slash \"quoted\"\n"
                       "# TYPE odd:name_total counter\n"
                       "odd:name_total{path=\"a\\\\b\\\"c\\nd\"} 1\n"
                       "odd:name_total{path=\"\"} 1\n"
                       "odd:name_total{path=\"caf\xc3\xa9\"} 1\n");
    ag_metrics_free(reg);
}

static void test_series_bound_folds_into_other(void **state)
{
    (void)state;
    struct ag_metrics *reg;
    struct ag_metric *m, *n;
    const char *const labels[] = {"user", "kind"};
    assert_int_equal(ag_metrics_new(&reg), 0);
    assert_int_equal(ag_metrics_counter(reg, "logins_total", NULL, labels, 2, 2, &m, NULL), 0);

    struct ag_series *a = series_of(m, (const char *const[]){"a", "x"});
    struct ag_series *b = series_of(m, (const char *const[]){"b", "x"});
    struct ag_series *c = series_of(m, (const char *const[]){"c", "x"});
    struct ag_series *d = series_of(m, (const char *const[]){"d", "y"});
    assert_ptr_not_equal(a, b);
    assert_ptr_not_equal(c, a);
    assert_ptr_not_equal(c, b);
    assert_ptr_equal(c, d); /* both past the bound: one overflow series */
    assert_ptr_equal(series_of(m, (const char *const[]){"a", "x"}), a); /* known ones stay */
    assert_ptr_equal(series_of(m, (const char *const[]){"other", "other"}), c);
    ag_counter_inc(a);
    ag_counter_add(b, 2);
    ag_counter_add(c, 3);
    ag_counter_add(d, 4);
    for (int i = 0; i < 1000; i++) {
        char user[16];
        snprintf(user, sizeof user, "u%d", i);
        ag_counter_inc(series_of(m, (const char *const[]){user, "z"}));
    }
    assert_render(reg, "# TYPE logins_total counter\n"
                       "logins_total{user=\"a\",kind=\"x\"} 1\n"
                       "logins_total{user=\"b\",kind=\"x\"} 2\n"
                       "logins_total{user=\"other\",kind=\"other\"} 1007\n");

    /* When "other" is a real value inside the bound, the overflow reuses it: no duplicate. */
    assert_int_equal(ag_metrics_gauge(reg, "queue_depth", NULL, labels, 2, 2, &n, NULL), 0);
    struct ag_series *other = series_of(n, (const char *const[]){"other", "other"});
    series_of(n, (const char *const[]){"q", "r"});
    assert_ptr_equal(series_of(n, (const char *const[]){"s", "t"}), other);
    /* Values too long or not UTF-8 fold too, even below the bound. */
    assert_int_equal(ag_metrics_counter(reg, "bytes_total", NULL, labels, 2, 8, &m, NULL), 0);
    char long_value[AG_METRICS_LABEL_VALUE_MAX + 2];
    memset(long_value, 'v', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    struct ag_series *folded = series_of(m, (const char *const[]){long_value, "k"});
    assert_ptr_equal(series_of(m, (const char *const[]){"k", "\xff"}), folded);
    assert_ptr_equal(series_of(m, (const char *const[]){"\xed\xa0\x80", "k"}), folded);
    long_value[AG_METRICS_LABEL_VALUE_MAX] = '\0'; /* exactly the maximum is kept */
    assert_ptr_not_equal(series_of(m, (const char *const[]){long_value, "k"}), folded);
    ag_metrics_free(reg);
}

static void test_invalid_registrations(void **state)
{
    (void)state;
    struct ag_metrics *reg;
    struct ag_metric *m = NULL, *again = NULL;
    struct ag_err err = {0};
    const char *const one[] = {"route"};
    assert_int_equal(ag_metrics_new(&reg), 0);

    const char *bad_names[] = {NULL, "", "1abc", "a-b", "a b", "caf\xc3\xa9", "x{y}"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
        assert_int_equal(ag_metrics_counter(reg, bad_names[i], "h", NULL, 0, 0, &m, &err),
                         AG_EINVAL);
    assert_int_equal(err.code, AG_EINVAL);
    assert_non_null(strstr(err.msg, "x{y}"));

    const char *bad_labels[] = {NULL, "", "1a", "a:b", "__reserved", "a-b"};
    for (size_t i = 0; i < sizeof bad_labels / sizeof bad_labels[0]; i++)
        assert_int_equal(ag_metrics_counter(reg, "ok_total", "h",
                                            (const char *const[]){bad_labels[i]}, 1, 0, &m, &err),
                         AG_EINVAL);
    assert_int_equal(
        ag_metrics_counter(reg, "ok_total", "h", (const char *const[]){"a", "a"}, 2, 0, &m, &err),
        AG_EINVAL);
    assert_int_equal(ag_metrics_counter(reg, "ok_total", "h", NULL, 1, 0, &m, &err), AG_EINVAL);
    const char *const nine[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
    assert_int_equal(ag_metrics_counter(reg, "ok_total", "h", nine, 9, 0, &m, &err), AG_ERANGE);
    assert_int_equal(
        ag_metrics_counter(reg, "ok_total", "h", one, 1, AG_METRICS_MAX_SERIES_LIMIT + 1, &m, &err),
        AG_ERANGE);
    assert_int_equal(ag_metrics_histogram(reg, "h_seconds", "h", (const char *const[]){"le"}, 1, 0,
                                          NULL, 0, &m, &err),
                     AG_EINVAL);
    assert_int_equal(
        ag_metrics_histogram(reg, "h_seconds", "h", NULL, 0, 0, (double[]){1, 1}, 2, &m, &err),
        AG_EINVAL);
    assert_int_equal(
        ag_metrics_histogram(reg, "h_seconds", "h", NULL, 0, 0, (double[]){2, 1}, 2, &m, &err),
        AG_EINVAL);
    assert_int_equal(ag_metrics_histogram(reg, "h_seconds", "h", NULL, 0, 0,
                                          (double[]){1, INFINITY}, 2, &m, &err),
                     AG_EINVAL);
    assert_int_equal(
        ag_metrics_histogram(reg, "h_seconds", "h", NULL, 0, 0, (double[]){NAN}, 1, &m, &err),
        AG_EINVAL);
    assert_int_equal(
        ag_metrics_histogram(reg, "h_seconds", "h", NULL, 0, 0, (double[]){1}, 0, &m, &err),
        AG_ERANGE);
    assert_int_equal(ag_metrics_histogram(reg, "h_seconds", "h", NULL, 0, 0, NULL, 3, &m, &err),
                     AG_EINVAL);
    assert_int_equal(ag_metrics_counter(NULL, "ok_total", "h", NULL, 0, 0, &m, &err), AG_EINVAL);
    assert_int_equal(ag_metrics_counter(reg, "ok_total", "h", NULL, 0, 0, NULL, &err), AG_EINVAL);

    /* Registering the same shape again returns the same family; another shape is refused. */
    assert_int_equal(ag_metrics_counter(reg, "ok_total", "h", one, 1, 0, &m, &err), 0);
    assert_int_equal(ag_metrics_counter(reg, "ok_total", "other help", one, 1, 5, &again, &err), 0);
    assert_ptr_equal(again, m);
    assert_int_equal(ag_metrics_gauge(reg, "ok_total", "h", one, 1, 0, &again, &err), AG_EINVAL);
    assert_int_equal(ag_metrics_counter(reg, "ok_total", "h", NULL, 0, 0, &again, &err), AG_EINVAL);
    assert_int_equal(
        ag_metrics_counter(reg, "ok_total", "h", (const char *const[]){"path"}, 1, 0, &again, &err),
        AG_EINVAL);
    assert_int_equal(ag_metrics_histogram(reg, "lat", "h", NULL, 0, 0, NULL, 0, &m, &err), 0);
    assert_int_equal(ag_metrics_histogram(reg, "lat", "h", NULL, 0, 0, NULL, 0, &again, &err), 0);
    assert_ptr_equal(again, m);
    assert_int_equal(
        ag_metrics_histogram(reg, "lat", "h", NULL, 0, 0, (double[]){1}, 1, &again, &err),
        AG_EINVAL);
    /* Names that would collide with a histogram's samples. */
    assert_int_equal(ag_metrics_counter(reg, "lat_count", "h", NULL, 0, 0, &again, &err),
                     AG_EINVAL);
    assert_int_equal(ag_metrics_gauge(reg, "lat_bucket", "h", NULL, 0, 0, &again, &err), AG_EINVAL);
    assert_int_equal(ag_metrics_counter(reg, "q_sum", "h", NULL, 0, 0, &again, &err), 0);
    assert_int_equal(ag_metrics_histogram(reg, "q", "h", NULL, 0, 0, NULL, 0, &again, &err),
                     AG_EINVAL);

    /* Lookups with missing values are refused. */
    struct ag_series *s = NULL;
    assert_int_equal(ag_metrics_counter(reg, "ok_total", "h", one, 1, 0, &m, &err), 0);
    assert_int_equal(ag_metric_series(m, NULL, &s), AG_EINVAL);
    assert_int_equal(ag_metric_series(m, (const char *const[]){NULL}, &s), AG_EINVAL);
    assert_int_equal(ag_metric_series(NULL, one, &s), AG_EINVAL);
    assert_int_equal(ag_metric_series(m, one, NULL), AG_EINVAL);
    assert_null(s);
    ag_metrics_free(reg);
}

static void test_wrong_handles_are_ignored(void **state)
{
    (void)state;
    struct ag_metrics *reg;
    struct ag_metric *c, *g, *h;
    assert_int_equal(ag_metrics_new(&reg), 0);
    assert_int_equal(ag_metrics_counter(reg, "c_total", NULL, NULL, 0, 0, &c, NULL), 0);
    assert_int_equal(ag_metrics_gauge(reg, "g", NULL, NULL, 0, 0, &g, NULL), 0);
    assert_int_equal(ag_metrics_histogram(reg, "h", NULL, NULL, 0, 0, (double[]){1}, 1, &h, NULL),
                     0);
    struct ag_series *cs = series_of(c, NULL), *gs = series_of(g, NULL), *hs = series_of(h, NULL);
    ag_counter_add(gs, 5);
    ag_counter_add(hs, 5);
    ag_gauge_set(cs, 7);
    ag_gauge_add(hs, 7);
    ag_histogram_observe(cs, 1);
    ag_histogram_observe(gs, 1);
    ag_counter_add(NULL, 1);
    ag_gauge_set(NULL, 1);
    ag_gauge_add(NULL, 1);
    ag_histogram_observe(NULL, 1);
    assert_int_equal(ag_counter_value(NULL), 0);
    assert_true(ag_gauge_value(cs) == 0);
    assert_render(reg, "# TYPE c_total counter\nc_total 0\n"
                       "# TYPE g gauge\ng 0\n"
                       "# TYPE h histogram\n"
                       "h_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n");
    ag_metrics_free(reg);
    ag_metrics_free(NULL);
}

static void test_render_limits(void **state)
{
    (void)state;
    struct ag_metrics *reg;
    struct ag_metric *m;
    struct ag_buf b;
    assert_int_equal(ag_metrics_new(&reg), 0);
    assert_int_equal(
        ag_metrics_counter(reg, "some_long_metric_name_total", "Help text.", NULL, 0, 0, &m, NULL),
        0);
    ag_buf_init(&b, 32);
    assert_int_equal(ag_buf_append(&b, "kept", 4), 0);
    assert_int_equal(ag_metrics_render(reg, &b), AG_ERANGE);
    assert_int_equal(b.len, 4);
    assert_memory_equal(ag_buf_str(&b).p, "kept", 4);
    assert_int_equal(ag_metrics_render(NULL, &b), AG_EINVAL);
    ag_buf_release(&b);

    struct ag_metrics *empty;
    assert_int_equal(ag_metrics_new(&empty), 0);
    assert_render(empty, "");
    ag_metrics_free(empty);
    ag_metrics_free(reg);
}

static void test_default_registry(void **state)
{
    (void)state;
    struct ag_metrics *reg = ag_metrics_default();
    struct ag_metric *m;
    assert_non_null(reg);
    assert_ptr_equal(ag_metrics_default(), reg);
    assert_int_equal(
        ag_metrics_counter(reg, "process_starts_total", "Starts.", NULL, 0, 0, &m, NULL), 0);
    ag_counter_inc(series_of(m, NULL));
    ag_metrics_free(reg); /* a no-op for the default registry */
    assert_render(reg, "# HELP process_starts_total Starts.\n"
                       "# TYPE process_starts_total counter\n"
                       "process_starts_total 1\n");
}

enum { THREADS = 4, INCREMENTS = 100000 };

struct thread_ctx {
    struct ag_metric *counter, *gauge, *histogram;
    int thread_no;
};

static void *update_from_thread(void *arg)
{
    struct thread_ctx *ctx = arg;
    char own[16];
    snprintf(own, sizeof own, "t%d", ctx->thread_no);
    struct ag_series *shared = NULL, *mine = NULL, *g = NULL, *h = NULL;
    assert_int_equal(ag_metric_series(ctx->counter, (const char *const[]){"shared"}, &shared), 0);
    assert_int_equal(ag_metric_series(ctx->counter, (const char *const[]){own}, &mine), 0);
    assert_int_equal(ag_metric_series(ctx->gauge, NULL, &g), 0);
    assert_int_equal(ag_metric_series(ctx->histogram, NULL, &h), 0);
    for (int i = 0; i < INCREMENTS; i++) {
        ag_counter_inc(shared);
        ag_counter_add(mine, 2);
        ag_gauge_add(g, 1);
        ag_histogram_observe(h, (i & 1) ? 0.5 : 2);
        if (i % 10000 == 0) { /* lookups keep working while others update */
            struct ag_series *again = NULL;
            assert_int_equal(
                ag_metric_series(ctx->counter, (const char *const[]){"shared"}, &again), 0);
            assert_ptr_equal(again, shared);
        }
    }
    return NULL;
}

static void test_threads_count_exactly(void **state)
{
    (void)state;
    struct ag_metrics *reg;
    struct thread_ctx ctx[THREADS];
    pthread_t threads[THREADS];
    struct ag_metric *counter, *gauge, *histogram;
    assert_int_equal(ag_metrics_new(&reg), 0);
    assert_int_equal(ag_metrics_counter(reg, "work_total", NULL, (const char *const[]){"who"}, 1, 0,
                                        &counter, NULL),
                     0);
    assert_int_equal(ag_metrics_gauge(reg, "level", NULL, NULL, 0, 0, &gauge, NULL), 0);
    assert_int_equal(
        ag_metrics_histogram(reg, "sizes", NULL, NULL, 0, 0, (double[]){1}, 1, &histogram, NULL),
        0);
    for (int t = 0; t < THREADS; t++) {
        ctx[t] = (struct thread_ctx){counter, gauge, histogram, t};
        assert_int_equal(pthread_create(&threads[t], NULL, update_from_thread, &ctx[t]), 0);
    }
    struct ag_buf b; /* render while the threads update */
    ag_buf_init(&b, 1 << 20);
    for (int i = 0; i < 50; i++) {
        ag_buf_clear(&b);
        assert_int_equal(ag_metrics_render(reg, &b), 0);
    }
    ag_buf_release(&b);
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);

    assert_int_equal(ag_counter_value(series_of(counter, (const char *const[]){"shared"})),
                     THREADS * INCREMENTS);
    assert_int_equal(ag_counter_value(series_of(counter, (const char *const[]){"t3"})),
                     2 * INCREMENTS);
    assert_true(ag_gauge_value(series_of(gauge, NULL)) == THREADS * INCREMENTS);

    char expected[1024];
    snprintf(expected, sizeof expected,
             "# TYPE level gauge\nlevel %d\n"
             "# TYPE sizes histogram\n"
             "sizes_bucket{le=\"1\"} %d\nsizes_bucket{le=\"+Inf\"} %d\n"
             "sizes_sum %d\nsizes_count %d\n",
             THREADS * INCREMENTS, THREADS * INCREMENTS / 2, THREADS * INCREMENTS,
             THREADS * INCREMENTS / 2 * 5 / 2, THREADS * INCREMENTS);
    ag_buf_init(&b, 1 << 20);
    assert_int_equal(ag_metrics_render(reg, &b), 0);
    assert_int_equal(ag_buf_append(&b, "", 1), 0);
    const char *text = ag_buf_str(&b).p;
    assert_non_null(strstr(text, "work_total{who=\"shared\"} 400000\n"));
    assert_string_equal(strstr(text, "# TYPE level gauge"), expected);
    ag_buf_release(&b);
    ag_metrics_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_gauges),
        cmocka_unit_test(test_histograms),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_series_bound_folds_into_other),
        cmocka_unit_test(test_invalid_registrations),
        cmocka_unit_test(test_wrong_handles_are_ignored),
        cmocka_unit_test(test_render_limits),
        cmocka_unit_test(test_default_registry),
        cmocka_unit_test(test_threads_count_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
