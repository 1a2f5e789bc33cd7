/* Unit tests for src/gateway/health.c: a real server, a refusing port and a silent one. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/http_server.h"
#include "core/log.h"
#include "gateway/balance.h"
#include "gateway/health.h"
#include "core/banned.h"

/* Waits poll for a condition at most this long; nothing asserts on how long anything took. */
enum { WAIT_MS = 10000, POLL_MS = 5 };

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the log, in a file, so that tests can count transitions ---- */

static FILE *log_file;

/* Lines logged so far that contain both strings. */
static int log_lines(const char *a, const char *b)
{
    char line[4096];
    int n = 0;
    fflush(log_file);
    rewind(log_file);
    while (fgets(line, sizeof line, log_file))
        n += strstr(line, a) && strstr(line, b);
    fseek(log_file, 0, SEEK_END);
    return n;
}

/* ---- a target: the project's server, whose /healthz answers 200 or 500 ---- */

static atomic_bool healthz_ok;
static atomic_int healthz_hits;
static atomic_bool host_seen_ok; /* every check carried the configured Host */

static void srv_on_request(struct ag_http_exchange *ex)
{
    const struct ag_http_request *req = ag_http_exchange_request(ex);
    if (!ag_str_eq(req->path, AG_STR("/healthz"))) {
        ag_http_respond(ex, 404, NULL, "", 0);
        return;
    }
    struct ag_str host = ag_http_header_get(req->headers, req->header_count, AG_STR("host"));
    if (!ag_str_eq(host, AG_STR("health.test")))
        atomic_store(&host_seen_ok, false);
    atomic_fetch_add(&healthz_hits, 1);
    if (atomic_load(&healthz_ok))
        ag_http_respond(ex, 200, "text/plain", "ok", 2);
    else
        ag_http_respond(ex, 500, "text/plain", "sick", 4);
}

static const struct ag_http_handler srv_handler = {.on_request = srv_on_request};

static struct ag_http_server *server;
static pthread_t server_thread;
static char server_address[32];

static void *server_main(void *arg)
{
    (void)arg;
    ag_http_server_run(server, NULL);
    return NULL;
}

/* ---- ports that refuse connections, or accept them and never answer ---- */

/* A loopback socket: bound only (connections refused), or listening and never accepting. */
static int port_open(bool listening, char address[32])
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    if (listening)
        assert_int_equal(listen(fd, 64), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    snprintf(address, 32, "127.0.0.1:%u", ntohs(a.sin_port));
    return fd;
}

static int group_setup(void **state)
{
    (void)state;
    log_file = tmpfile();
    assert_non_null(log_file);
    ag_log_setup("test_health", AG_LOG_INFO, fileno(log_file));

    struct ag_http_server_config cfg;
    struct ag_err err = {0};
    ag_http_server_config_defaults(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.workers = 1;
    cfg.handler = &srv_handler;
    if (ag_http_server_new(&cfg, &server, &err) != 0)
        fail_msg("server: %s", err.msg);
    snprintf(server_address, sizeof server_address, "127.0.0.1:%u", ag_http_server_port(server));
    assert_int_equal(pthread_create(&server_thread, NULL, server_main, NULL), 0);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    ag_http_server_shutdown(server);
    pthread_join(server_thread, NULL);
    ag_http_server_free(server);
    ag_log_setup(NULL, AG_LOG_INFO, 1);
    fclose(log_file);
    return 0;
}

/* ---- helpers ---- */

static struct gw_pool *pool_make(const char *name, const char *const *addresses, size_t count,
                                 const struct gw_passive_cfg *passive)
{
    struct gw_target_spec targets[4];
    for (size_t i = 0; i < count; i++)
        targets[i] = (struct gw_target_spec){addresses[i], 1};
    struct gw_pool *pool = NULL;
    struct ag_err err = {0};
    if (gw_pool_new(name, targets, count, GW_BALANCE_ROUND_ROBIN, passive, &pool, &err) != 0)
        fail_msg("gw_pool_new: %s", err.msg);
    return pool;
}

static struct gw_health *health_start(struct gw_pool *pool, uint32_t interval_ms,
                                      uint32_t timeout_ms)
{
    struct gw_health_upstream up = {.pool = pool, .host = "health.test"};
    gw_health_config_defaults(&up.check);
    up.check.interval_ms = interval_ms;
    up.check.timeout_ms = timeout_ms;
    struct gw_health *health = NULL;
    struct ag_err err = {0};
    if (gw_health_new(&up, 1, &health, &err) != 0)
        fail_msg("gw_health_new: %s", err.msg);
    if (gw_health_start(health, &err) != 0)
        fail_msg("gw_health_start: %s", err.msg);
    return health;
}

enum condition { MARKED_DOWN, MARKED_UP, HEALTHY_NOW };

/* Polls target index of pool until the condition holds; fails after WAIT_MS. */
static void wait_for(struct gw_pool *pool, int index, enum condition cond)
{
    uint64_t give_up = now_ms() + WAIT_MS;
    for (;;) {
        bool met = false;
        switch (cond) {
        case MARKED_DOWN:
            met = gw_target_marked_down(pool, index);
            break;
        case MARKED_UP:
            met = !gw_target_marked_down(pool, index);
            break;
        case HEALTHY_NOW:
            met = gw_target_healthy(pool, index, now_ms());
            break;
        }
        if (met)
            return;
        if (now_ms() > give_up)
            fail_msg("target %s: condition %d not met within %d ms", gw_target_address(pool, index),
                     (int)cond, WAIT_MS);
        sleep_ms(POLL_MS);
    }
}

/* Waits until the server has answered n more checks. */
static void wait_hits(int n)
{
    int target = atomic_load(&healthz_hits) + n;
    uint64_t give_up = now_ms() + WAIT_MS;
    while (atomic_load(&healthz_hits) < target) {
        if (now_ms() > give_up)
            fail_msg("the server got no checks within %d ms", WAIT_MS);
        sleep_ms(POLL_MS);
    }
}

/* ---- tests ---- */

static void test_validation_and_lifecycle(void **state)
{
    (void)state;
    const char *const addresses[] = {"127.0.0.1:9"};
    struct gw_pool *pool = pool_make("checked", addresses, 1, NULL);
    struct gw_health *health = NULL;
    struct ag_err err = {0};
    struct gw_health_upstream up = {.pool = pool};
    gw_health_config_defaults(&up.check);
    assert_string_equal(up.check.path, "/healthz");
    assert_int_equal(up.check.interval_ms, 1000);
    assert_int_equal(up.check.timeout_ms, 0);
    assert_int_equal(up.check.unhealthy_after, 3);
    assert_int_equal(up.check.healthy_after, 2);

    struct gw_health_upstream bad = up;
    bad.pool = NULL;
    assert_int_equal(gw_health_new(&bad, 1, &health, &err), AG_EINVAL);
    bad = up;
    bad.check.path = "healthz";
    assert_int_equal(gw_health_new(&bad, 1, &health, &err), AG_EINVAL);
    assert_non_null(strstr(err.msg, "checked"));
    bad.check.path = "/health z";
    assert_int_equal(gw_health_new(&bad, 1, &health, &err), AG_EINVAL);
    bad = up;
    bad.host = "a host";
    assert_int_equal(gw_health_new(&bad, 1, &health, &err), AG_EINVAL);
    bad = up;
    bad.check.interval_ms = 9;
    assert_int_equal(gw_health_new(&bad, 1, &health, &err), AG_EINVAL);
    assert_non_null(strstr(err.msg, "interval_ms"));
    bad = up;
    bad.check.timeout_ms = 600001;
    assert_int_equal(gw_health_new(&bad, 1, &health, &err), AG_EINVAL);
    bad = up;
    bad.check.unhealthy_after = 0;
    assert_int_equal(gw_health_new(&bad, 1, &health, &err), AG_EINVAL);
    bad = up;
    bad.check.healthy_after = 1001;
    assert_int_equal(gw_health_new(&bad, 1, &health, &err), AG_EINVAL);
    assert_non_null(strstr(err.msg, "healthy_after"));
    assert_null(health);

    /* Made and freed without starting; started twice; nothing to check. */
    assert_int_equal(gw_health_new(&up, 1, &health, &err), 0);
    gw_health_free(health);
    assert_int_equal(gw_health_new(NULL, 0, &health, &err), 0);
    assert_int_equal(gw_health_start(health, &err), 0);
    assert_int_equal(gw_health_start(health, &err), AG_EINVAL);
    gw_health_free(health);
    gw_health_free(NULL);
    gw_pool_free(pool);
}

static void test_transitions(void **state)
{
    (void)state;
    char closed_address[32];
    int closed_fd = port_open(false, closed_address);
    const char *const addresses[] = {server_address, closed_address};
    struct gw_pool *pool = pool_make("svc", addresses, 2, NULL);
    atomic_store(&healthz_ok, true);
    atomic_store(&host_seen_ok, true);
    struct gw_health *health = health_start(pool, 20, 2000);

    /* Targets start healthy; the refusing one is marked down after three failures. */
    wait_for(pool, 1, MARKED_DOWN);
    assert_false(gw_target_healthy(pool, 1, now_ms()));
    wait_hits(3);
    assert_false(gw_target_marked_down(pool, 0));

    /* The server starts answering 500: down; 200 again: up. */
    atomic_store(&healthz_ok, false);
    wait_for(pool, 0, MARKED_DOWN);
    assert_false(gw_target_healthy(pool, 0, now_ms()));
    atomic_store(&healthz_ok, true);
    wait_for(pool, 0, MARKED_UP);
    assert_true(gw_target_healthy(pool, 0, now_ms()));
    wait_hits(3);
    assert_true(gw_target_marked_down(pool, 1)); /* still refusing */
    gw_health_free(health);
    assert_true(atomic_load(&host_seen_ok));

    /* Each transition was logged once, with its reason. */
    assert_int_equal(log_lines("upstream target failed health checks", closed_address), 1);
    assert_int_equal(log_lines("AG_HTTP_ECONNECT", closed_address), 1);
    assert_int_equal(log_lines("upstream target passed health checks", closed_address), 0);
    assert_int_equal(log_lines("upstream target failed health checks", server_address), 1);
    assert_int_equal(log_lines("\"reason\":\"status 500\"", server_address), 1);
    assert_int_equal(log_lines("upstream target passed health checks", server_address), 1);
    gw_pool_free(pool);
    close(closed_fd);
}

static void test_timeout_and_prompt_free(void **state)
{
    (void)state;
    char silent_address[32];
    int silent_fd = port_open(true, silent_address);
    const char *const addresses[] = {silent_address};
    struct gw_pool *pool = pool_make("silent", addresses, 1, NULL);

    /* Connections are accepted by the kernel and never answered: each check times out. */
    struct gw_health *health = health_start(pool, 20, 50);
    wait_for(pool, 0, MARKED_DOWN);
    gw_health_free(health);
    assert_int_equal(log_lines("no response within 50 ms", silent_address), 1);

    /* A check in flight with a ten-minute timeout does not hold up the free. */
    gw_target_set_health(pool, 0, true);
    health = health_start(pool, 1000, 600000);
    sleep_ms(100);
    gw_health_free(health);
    assert_false(gw_target_marked_down(pool, 0));
    gw_pool_free(pool);
    close(silent_fd);
}

static void test_active_checks_end_ejection(void **state)
{
    (void)state;
    const char *const addresses[] = {server_address};
    const struct gw_passive_cfg passive = {.consecutive_failures = 1, .eject_ms = 3600000};
    struct gw_pool *pool = pool_make("ejected", addresses, 1, &passive);
    atomic_store(&healthz_ok, true);
    struct gw_health *health = health_start(pool, 20, 2000);
    wait_hits(2);

    /* A real request fails: ejected for an hour, but the checks pass twice after that. */
    gw_target_begin(pool, 0);
    gw_target_end(pool, 0, now_ms(), true);
    assert_int_equal(gw_target_ejections(pool, 0), 1);
    assert_false(gw_target_healthy(pool, 0, now_ms()));
    wait_for(pool, 0, HEALTHY_NOW);
    gw_health_free(health);
    assert_int_equal(log_lines("\"reason\":\"active health checks passed\"", server_address), 1);
    gw_pool_free(pool);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation_and_lifecycle),
        cmocka_unit_test(test_transitions),
        cmocka_unit_test(test_timeout_and_prompt_free),
        cmocka_unit_test(test_active_checks_end_ejection),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
