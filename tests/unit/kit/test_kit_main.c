/* Process test of src/kit/kit.c: kit_main serving a small service on SQLite, then SIGTERM. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kit/db.h"
#include "kit/kit.h"

static int h_item_get(struct kit_req *req)
{
    return kit_resp_json(req, 200, json_pack("{s:s}", "id", kit_req_param(req, "id")));
}

static int h_item_post(struct kit_req *req)
{
    static const struct kit_field fields[] = {{"name", JSON_STRING, true, 1, 10, 0, 0}};
    json_t *body = NULL;
    int rc = kit_req_json(req, &body);
    if (rc < 0)
        return rc;
    if (kit_req_fields(req, body, fields, 1) > 0)
        return kit_resp_invalid(req);
    char id[KIT_ID_LEN + 1];
    kit_id_new(id);
    struct ag_err err;
    rc = kit_db_exec(kit_req_db(req), "INSERT INTO items (id, name) VALUES ($1, $2)",
                     KIT_DB_PARAMS(KIT_DB_TEXTN(id, strlen(id)),
                                   KIT_DB_TEXT(json_string_value(json_object_get(body, "name")))),
                     &err);
    if (rc < 0)
        return rc;
    char location[64];
    snprintf(location, sizeof location, "/items/%s", id);
    return kit_resp_created(req, location, json_pack("{s:s}", "id", id));
}

static int h_private(struct kit_req *req)
{
    return kit_resp_json(req, 200, json_pack("{s:s}", "sub", kit_req_subject(req)));
}

static int h_fail(struct kit_req *req)
{
    (void)req;
    return AG_EUNAVAIL;
}

/* A buggy handler: writes inside a transaction it never commits, then claims success. */
static int h_open_tx(struct kit_req *req)
{
    struct kit_db *db = kit_req_db(req);
    int rc = kit_db_begin(db, NULL);
    if (rc >= 0)
        rc = kit_db_exec(db, "INSERT INTO items (id, name) VALUES ($1, $2)",
                         KIT_DB_PARAMS(KIT_DB_TEXT("open-tx"), KIT_DB_TEXT("never committed")),
                         NULL);
    if (rc < 0)
        return rc;
    return kit_resp_status(req, 204);
}

static int h_open_tx_count(struct kit_req *req)
{
    struct kit_db_rows *rows = NULL;
    int rc = kit_db_query(kit_req_db(req), "SELECT COUNT(*) FROM items WHERE id = $1",
                          KIT_DB_PARAMS(KIT_DB_TEXT("open-tx")), 1, &rows, NULL);
    if (rc >= 0)
        rc = kit_resp_json(req, 200, json_pack("{s:I}", "count", kit_db_rows_int(rows, 0, 0)));
    kit_db_rows_free(rows);
    return rc;
}

/* The handler of /quick/{id}: says who answered, and whether it had a database. */
static int h_quick_slow(struct kit_req *req)
{
    return kit_resp_json(req, 200,
                         json_pack("{s:s, s:b}", "by", "handler", "db", kit_req_db(req) != NULL));
}

/* Its quick answer: only for ids starting with "hit" (a cache hit), never with a database. */
static int h_quick(struct kit_req *req)
{
    const char *id = kit_req_param(req, "id");
    if (strncmp(id, "hit", 3) != 0)
        return 0;
    return kit_resp_json(req, 200,
                         json_pack("{s:s, s:b, s:s}", "by", "loop", "db", kit_req_db(req) != NULL,
                                   "tenant", kit_req_tenant(req)));
}

/*
 * /rerun/{id}: the quick answer (ids starting with "hit") answers at once and asks for a re-run,
 * saying what kit_req_rerun_later returned; the handler, in a re-run, records it in items as
 * "rerun-<id>", named after what a re-run's own kit_req_rerun_later returns (AG_EINVAL).
 */
static int h_rerun_quick(struct kit_req *req)
{
    const char *id = kit_req_param(req, "id");
    if (strncmp(id, "hit", 3) != 0)
        return 0;
    int rc = kit_req_rerun_later(req);
    return kit_resp_json(req, 200, json_pack("{s:s, s:i}", "by", "loop", "rerun", rc));
}

static int h_rerun(struct kit_req *req)
{
    char id[80], name[16];
    if (!kit_req_is_rerun(req)) /* a handler may ask too: "again" asks from here */
        return kit_resp_json(req, 200,
                             json_pack("{s:s, s:i}", "by", "handler", "rerun",
                                       strcmp(kit_req_param(req, "id"), "again") == 0
                                           ? kit_req_rerun_later(req)
                                           : 1));
    snprintf(id, sizeof id, "rerun-%s", kit_req_param(req, "id"));
    snprintf(name, sizeof name, "%d", kit_req_rerun_later(req));
    int rc = kit_db_exec(kit_req_db(req), "INSERT INTO items (id, name) VALUES ($1, $2)",
                         KIT_DB_PARAMS(KIT_DB_TEXT(id), KIT_DB_TEXT(name)), NULL);
    if (rc < 0)
        return rc;
    return kit_resp_status(req, 204); /* goes nowhere */
}

/* GET /items/{id} of the database (h_item_get only echoes): the name, or 404. */
static int h_item_name(struct kit_req *req)
{
    struct kit_db_rows *rows = NULL;
    int rc = kit_db_query(kit_req_db(req), "SELECT name FROM items WHERE id = $1",
                          KIT_DB_PARAMS(KIT_DB_TEXT(kit_req_param(req, "id"))), 1, &rows, NULL);
    if (rc == 0)
        rc = kit_resp_problem(req, 404, "no such item");
    else if (rc > 0)
        rc =
            kit_resp_json(req, 200, json_pack("{s:s}", "name", kit_db_rows_text(rows, 0, 0, NULL)));
    kit_db_rows_free(rows);
    return rc;
}

static const struct kit_route routes[] = {
    {"GET", "/quick/{id}", h_quick_slow, KIT_PUBLIC, h_quick},
    {"GET", "/rerun/{id}", h_rerun, KIT_PUBLIC, h_rerun_quick},
    {"GET", "/stored/{id}", h_item_name, KIT_PUBLIC, NULL},
    {"GET", "/items/{id}", h_item_get, KIT_PUBLIC, NULL},
    {"POST", "/items", h_item_post, KIT_PUBLIC, NULL},
    {"GET", "/private", h_private, KIT_AUTHENTICATED, NULL},
    {"GET", "/fail", h_fail, KIT_PUBLIC, NULL},
    {"POST", "/open-tx", h_open_tx, KIT_PUBLIC, NULL},
    {"GET", "/open-tx", h_open_tx_count, KIT_PUBLIC, NULL},
};

static const struct kit_migration migrations[] = {
    {1, "001_items", "CREATE TABLE items (id TEXT PRIMARY KEY, name TEXT NOT NULL)", NULL, NULL},
};

static bool on_start_called;

static int on_start(struct kit_app *app, struct ag_err *err)
{
    (void)err;
    on_start_called = kit_app_db(app) != NULL;
    return 0;
}

static const struct kit_setting settings[] = {
    {"AGORA_TEST_COLOUR", "blue", "A colour for the test."},
};

static const struct kit_service service = {
    .name = "kittest",
    .summary = "a service for the kit's tests",
    .routes = routes,
    .route_count = sizeof routes / sizeof routes[0],
    .migrations = migrations,
    .migration_count = 1,
    .settings = settings,
    .setting_count = 1,
    .on_start = on_start,
};

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kittest.XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Runs kit_main in a child with argv; its stdout goes to *out_fd. Returns the pid. */
/* The service process a test runs; killed by the teardown if the test failed before its end. */
static pid_t running_child;

static int kill_running_child(void **state)
{
    (void)state;
    if (running_child > 0) {
        kill(running_child, SIGKILL);
        waitpid(running_child, NULL, 0);
        running_child = 0;
    }
    return 0;
}

static pid_t spawn(char **argv, int argc, int *out_fd)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        /* exit, not _exit: LeakSanitizer checks the child at exit (a leak fails it) */
        exit(kit_main(&service, argc, argv));
    }
    close(p[1]);
    *out_fd = p[0];
    running_child = pid;
    return pid;
}

static int wait_exit(pid_t pid)
{
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (pid == running_child)
        running_child = 0;
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* Reads lines until the one with "listening" and returns its port. */
static int read_port(int fd)
{
    char buf[16384];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            fail_msg("the service ended before listening: %.*s", (int)len, buf);
        len += (size_t)n;
        buf[len] = '\0';
        char *l = strstr(buf, "\"msg\":\"listening\"");
        if (l && strchr(l, '\n')) {
            char *port = strstr(l, "\"port\":");
            assert_non_null(port);
            return (int)strtol(port + 7, NULL, 10);
        }
    }
}

struct response {
    int status;
    char head[4096];
    char body[8192];
};

/* Sends raw (a whole request with Connection: close) and reads the answer. */
static void http(int port, const char *raw, struct response *r)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof a), 0);
    size_t len = strlen(raw);
    assert_int_equal(write(s, raw, len), (ssize_t)len);
    char buf[16384];
    size_t got = 0;
    ssize_t n;
    while ((n = read(s, buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    close(s);
    buf[got] = '\0';
    memset(r, 0, sizeof *r);
    char *end = strstr(buf, "\r\n\r\n");
    if (!end)
        fail_msg("no response head: %s", buf);
    snprintf(r->head, sizeof r->head, "%.*s", (int)(end - buf), buf);
    snprintf(r->body, sizeof r->body, "%s", end + 4);
    r->status = (int)strtol(buf + 9, NULL, 10);
}

static void expect(int port, const char *raw, int status, const char *head_part,
                   const char *body_part)
{
    struct response r;
    http(port, raw, &r);
    if (r.status != status || (head_part && !strstr(r.head, head_part)) ||
        (body_part && !strstr(r.body, body_part)))
        fail_msg("%s\n-> got %d, want %d with \"%s\" / \"%s\":\n%s\n\n%s", raw, r.status, status,
                 head_part ? head_part : "", body_part ? body_part : "", r.head, r.body);
}

/* Waits (up to 10 s) for GET /stored/{id} to answer 200 with body_part. */
static void wait_stored(int port, const char *id, const char *body_part)
{
    char raw[256];
    struct response r;
    snprintf(raw, sizeof raw, "GET /stored/%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
             id);
    for (int i = 0; i < 1000; i++) {
        http(port, raw, &r);
        if (r.status == 200)
            break;
        usleep(10 * 1000);
    }
    if (r.status != 200 || !strstr(r.body, body_part))
        fail_msg("%s: got %d %s, want 200 with %s", id, r.status, r.body, body_part);
}

static void serves_and_stops(void **state)
{
    (void)state;
    char db[128];
    snprintf(db, sizeof db, "sqlite:%s/kit.db", tmpdir);
    setenv("AGORA_DB", db, 1);
    setenv("AGORA_WORKERS", "2", 1);
    setenv("AGORA_MAX_BODY", "1KiB", 1);
    setenv("AGORA_LOG_LEVEL", "warn", 1);
    unsetenv("AGORA_ISSUERS");
    char *argv[] = {"kittest", NULL};
    int fd;
    setenv("AGORA_LOG_LEVEL", "info", 1);
    pid_t pid = spawn(argv, 1, &fd);
    int port = read_port(fd);
    assert_true(port > 0);

    expect(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200,
           "application/json", "{\"status\":\"ok\"}");
    expect(port, "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200, NULL,
           "ready");
    expect(port,
           "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc.123\r\nConnection: close\r\n\r\n",
           200, "X-Request-Id: abc.123", NULL);
    expect(port, "HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200,
           "Content-Length: 15", NULL);
    expect(port, "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404,
           "application/problem+json", "\"status\":404");
    expect(port,
           "PUT /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
           405, "Allow: GET, HEAD", "\"status\":405");
    expect(port, "GET /items//x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400,
           "application/problem+json", "empty segment");
    expect(port, "GET /items/%2e%2e HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400, NULL,
           "dot segment");
    expect(port, "GET /items/a%20b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200, NULL,
           "{\"id\":\"a b\"}");
    expect(port,
           "POST /items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: 14\r\nConnection: close\r\n\r\n{\"name\":\"box\"}",
           201, "Location: /items/", "\"id\":");
    expect(port,
           "POST /items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: 9\r\nConnection: close\r\n\r\n{\"nam\":1}",
           422, NULL, "\"errors\":[");
    expect(port,
           "POST /items HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
           "Content-Length: 2\r\nConnection: close\r\n\r\n{}",
           415, NULL, "application/json");
    expect(port,
           "POST /items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
           "5\r\n{\"nam\r\n0\r\n\r\n",
           400, NULL, "invalid JSON");
    char big[2200];
    int n = snprintf(big, sizeof big,
                     "POST /items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 2000\r\nConnection: close\r\n\r\n");
    memset(big + n, 'x', 2000);
    big[n + 2000] = '\0';
    expect(port, big, 413, "application/problem+json", "\"status\":413");
    expect(port, "GET /private HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 401,
           "WWW-Authenticate: Bearer", "\"status\":401");
    expect(port,
           "GET /items/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a.b.c\r\n"
           "Connection: close\r\n\r\n",
           401, "invalid_token", NULL);
    expect(port, "GET /fail HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 503, NULL,
           "unavailable");
    /* kit_route.quick: answers on the loop for anonymous requests it can serve; else the handler */
    expect(port, "GET /quick/hit1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200,
           "X-Request-Id: ", "{\"by\":\"loop\",\"db\":false,\"tenant\":\"default\"}");
    expect(port, "HEAD /quick/hit1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200,
           "Content-Length: 43", NULL);
    expect(port, "GET /quick/miss HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200, NULL,
           "{\"by\":\"handler\",\"db\":true}");
    expect(port,
           "GET /quick/hit1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a.b.c\r\n"
           "Connection: close\r\n\r\n",
           401, "invalid_token", NULL); /* a token is always checked: no quick answer */
    /* kit_req_rerun_later: the reader is answered at once; a copy runs later, answering nobody */
    expect(port, "GET /rerun/hit1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200, NULL,
           "{\"by\":\"loop\",\"rerun\":0}");
    wait_stored(port, "rerun-hit1", "{\"name\":\"-3\"}"); /* AG_EINVAL: a re-run's own */
    /* the first re-run's handler has stored its row, but may not have returned yet: until it
     * has, another is refused with AG_EAGAIN (-1), at most one being under way */
    struct response again;
    for (int i = 0; i < 1000; i++) {
        http(port, "GET /rerun/again HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &again);
        if (again.status != 200 || !strstr(again.body, "{\"by\":\"handler\",\"rerun\":-1}"))
            break;
        usleep(10 * 1000);
    }
    if (again.status != 200 || !strstr(again.body, "{\"by\":\"handler\",\"rerun\":0}"))
        fail_msg("GET /rerun/again: got %d %s", again.status, again.body);
    wait_stored(port, "rerun-again", "{\"name\":\"-3\"}");
    expect(port, "GET /stored/rerun-none HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404,
           NULL, NULL);
    /* a handler that left its transaction open: rolled back, answered 500, nothing written */
    expect(port,
           "POST /open-tx HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
           500, "application/problem+json", "could not be handled");
    expect(port,
           "POST /open-tx HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
           500, "application/problem+json", "could not be handled");
    expect(port, "GET /open-tx HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200, NULL,
           "{\"count\":0}");
    expect(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200, "text/plain",
           "kit_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"}");

    assert_int_equal(kill(pid, SIGTERM), 0);
    /* the rest of the output holds request lines; read it all so the child never blocks */
    size_t cap = 1 << 20, total = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    ssize_t got;
    while ((got = read(fd, out + total, cap - 1 - total)) > 0) {
        total += (size_t)got;
        if (total == cap - 1) {
            out = realloc(out, cap *= 2);
            assert_non_null(out);
        }
    }
    out[total] = '\0';
    close(fd);
    assert_true(total > 0);
    assert_non_null(strstr(out, "\"route\":\"/items/{id}\""));
    /* the re-runs answered nobody, so they are no request of the log (nor of the metrics) */
    assert_non_null(
        strstr(out, "\"route\":\"/rerun/{id}\",\"path\":\"/rerun/hit1\",\"status\":200"));
    assert_null(strstr(out, "\"status\":204"));
    free(out);
    assert_int_equal(wait_exit(pid), 0);
}

static void bad_settings_exit_2(void **state)
{
    (void)state;
    char *argv[] = {"kittest", NULL};
    int fd;
    setenv("AGORA_WORKERS", "many", 1);
    pid_t pid = spawn(argv, 1, &fd);
    close(fd);
    assert_int_equal(wait_exit(pid), 2);
    setenv("AGORA_WORKERS", "2", 1);

    setenv("AGORA_ISSUERS", "auth=https://x/jwks", 1);
    pid = spawn(argv, 1, &fd);
    close(fd);
    assert_int_equal(wait_exit(pid), 2);
    unsetenv("AGORA_ISSUERS");

    char *check[] = {"kittest", "--check", NULL};
    pid = spawn(check, 2, &fd);
    close(fd);
    assert_int_equal(wait_exit(pid), 0);

    char *unknown[] = {"kittest", "--frobnicate", NULL};
    pid = spawn(unknown, 2, &fd);
    close(fd);
    assert_int_equal(wait_exit(pid), 2);

    char path[128];
    snprintf(path, sizeof path, "%s/c.yaml", tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("listen: 127.0.0.1:0\nsettings:\n  AGORA_TEST_NOPE: 1\n", f);
    fclose(f);
    char *cfg[] = {"kittest", "--config", path, "--check", NULL};
    pid = spawn(cfg, 4, &fd);
    close(fd);
    assert_int_equal(wait_exit(pid), 2);

    char *help[] = {"kittest", "--help", NULL};
    pid = spawn(help, 2, &fd);
    char text[8192];
    size_t len = 0;
    ssize_t got;
    while ((got = read(fd, text + len, sizeof text - 1 - len)) > 0)
        len += (size_t)got;
    text[len] = '\0';
    close(fd);
    assert_int_equal(wait_exit(pid), 0);
    assert_non_null(strstr(text, "AGORA_MAX_BODY"));
    assert_non_null(strstr(text, "AGORA_TEST_COLOUR (default: blue)"));
    assert_non_null(strstr(text, "sqlite:var/data/kittest.db"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(serves_and_stops, kill_running_child),
        cmocka_unit_test_teardown(bad_settings_exit_2, kill_running_child),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
