/* agora-hello: a tiny server on libagora-core for tests, benchmarks and `make run`. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/http_server.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/net.h"
#include "core/banned.h"

#define HELLO_BODY "{\"hello\":\"world\"}"

enum {
    BYTES_MAX = 1024 * 1024 * 1024, /* GET /bytes/N: N at most 1 GiB */
    DELAY_MAX_MS = 60 * 1000,       /* GET /delay/MS: at most a minute */
    BYTES_PIECE = 64 * 1024,        /* /bytes is written in pieces of this size */
};

/* Per-exchange state of the streaming and deferred routes. */
struct hello_state {
    struct ag_http_exchange *ex;
    enum { ROUTE_ECHO, ROUTE_BYTES, ROUTE_DELAY } route;
    uint64_t bytes_left;   /* /bytes */
    struct ag_timer timer; /* /delay */
};

static const char filler[BYTES_PIECE] = {0};

static struct hello_state *state_new(struct ag_http_exchange *ex, int route)
{
    struct hello_state *st = calloc(1, sizeof *st);
    if (st) {
        st->ex = ex;
        st->route = route;
        ag_http_exchange_set_data(ex, st);
    }
    return st;
}

/* Writes /bytes pieces until the output is congested; on_drain calls it again. */
static void bytes_pump(struct hello_state *st)
{
    while (st->bytes_left > 0 && !ag_http_response_congested(st->ex)) {
        size_t n = st->bytes_left < BYTES_PIECE ? (size_t)st->bytes_left : BYTES_PIECE;
        if (ag_http_response_write(st->ex, filler, n) < 0)
            return;
        st->bytes_left -= n;
    }
    if (st->bytes_left == 0)
        ag_http_response_end(st->ex);
}

static void delay_done(struct ag_timer *t)
{
    struct hello_state *st = AG_CONTAINER_OF(t, struct hello_state, timer);
    ag_http_respond(st->ex, 200, "application/json", HELLO_BODY, sizeof HELLO_BODY - 1);
}

/* Parses the number after a route prefix: digits only, at most max. */
static int path_number(struct ag_str path, struct ag_str prefix, uint64_t max, uint64_t *out)
{
    struct ag_str digits = {path.p + prefix.len, path.len - prefix.len};
    return ag_str_to_u64(digits, max, out);
}

static void method_not_allowed(struct ag_http_exchange *ex, const char *allow)
{
    struct ag_http_header h = {AG_STR("Allow"), ag_str_from_cstr(allow)};
    ag_http_respond_problem_with(ex, 405, NULL, &h, 1); /* 405 must name what is allowed */
}

static void on_request(struct ag_http_exchange *ex)
{
    const struct ag_http_request *req = ag_http_exchange_request(ex);
    struct ag_str path = req->path;
    bool get = ag_str_eq(req->method, AG_STR("GET")) || ag_str_eq(req->method, AG_STR("HEAD"));
    static const struct ag_str bytes_prefix = AG_STR("/bytes/");
    static const struct ag_str delay_prefix = AG_STR("/delay/");

    if (ag_str_eq(path, AG_STR("/"))) {
        if (!get)
            return method_not_allowed(ex, "GET, HEAD");
        ag_http_respond(ex, 200, "application/json", HELLO_BODY, sizeof HELLO_BODY - 1);
    } else if (ag_str_eq(path, AG_STR("/healthz"))) {
        if (!get)
            return method_not_allowed(ex, "GET, HEAD");
        ag_http_respond(ex, 200, "application/json", "{\"status\":\"ok\"}", 15);
    } else if (ag_str_eq(path, AG_STR("/echo"))) {
        if (!ag_str_eq(req->method, AG_STR("POST")))
            return method_not_allowed(ex, "POST");
        struct ag_str type =
            ag_http_header_get(req->headers, req->header_count, AG_STR("Content-Type"));
        struct ag_http_header h = {AG_STR("Content-Type"),
                                   type.p ? type : AG_STR("application/octet-stream")};
        int64_t length = req->body == AG_HTTP_BODY_CHUNKED  ? AG_HTTP_LENGTH_UNKNOWN
                         : req->body == AG_HTTP_BODY_LENGTH ? (int64_t)req->content_length
                                                            : 0;
        if (!state_new(ex, ROUTE_ECHO) || ag_http_response_start(ex, 200, &h, 1, length) < 0)
            return (void)ag_http_respond_problem(ex, 500, "could not start the echo");
        if (req->body == AG_HTTP_BODY_NONE)
            ag_http_response_end(ex);
    } else if (ag_str_has_prefix(path, bytes_prefix)) {
        uint64_t n;
        if (!get)
            return method_not_allowed(ex, "GET, HEAD");
        if (path_number(path, bytes_prefix, BYTES_MAX, &n) < 0)
            return (void)ag_http_respond_problem(ex, 400,
                                                 "N must be a whole number of bytes "
                                                 "from 0 to 1073741824");
        struct hello_state *st = state_new(ex, ROUTE_BYTES);
        struct ag_http_header h = {AG_STR("Content-Type"), AG_STR("application/octet-stream")};
        if (!st || ag_http_response_start(ex, 200, &h, 1, (int64_t)n) < 0)
            return (void)ag_http_respond_problem(ex, 500, "could not start the response");
        st->bytes_left = ag_str_eq(req->method, AG_STR("HEAD")) ? 0 : n;
        bytes_pump(st);
    } else if (ag_str_has_prefix(path, delay_prefix)) {
        uint64_t ms;
        if (!get)
            return method_not_allowed(ex, "GET, HEAD");
        if (path_number(path, delay_prefix, DELAY_MAX_MS, &ms) < 0)
            return (void)ag_http_respond_problem(ex, 400,
                                                 "MS must be a whole number of "
                                                 "milliseconds from 0 to 60000");
        struct hello_state *st = state_new(ex, ROUTE_DELAY);
        if (!st)
            return (void)ag_http_respond_problem(ex, 503, "out of memory");
        ag_timer_init(&st->timer, delay_done);
        if (ag_timer_start(ag_http_exchange_loop(ex), &st->timer, ms) < 0)
            ag_http_respond_problem(ex, 503, "out of memory");
    } else {
        ag_http_respond_problem(ex, 404, "no such resource");
    }
}

static void on_body(struct ag_http_exchange *ex, struct ag_str data, bool last)
{
    struct hello_state *st = ag_http_exchange_data(ex);
    if (!st || st->route != ROUTE_ECHO)
        return; /* other routes ignore bodies */
    if (data.len > 0)
        ag_http_response_write(ex, data.p, data.len);
    if (last)
        ag_http_response_end(ex);
}

static void on_drain(struct ag_http_exchange *ex)
{
    struct hello_state *st = ag_http_exchange_data(ex);
    if (st && st->route == ROUTE_BYTES)
        bytes_pump(st);
}

static void on_close(struct ag_http_exchange *ex, bool completed)
{
    (void)completed;
    struct hello_state *st = ag_http_exchange_data(ex);
    if (!st)
        return;
    if (st->route == ROUTE_DELAY)
        ag_timer_stop(ag_http_exchange_loop(ex), &st->timer);
    free(st);
}

static const struct ag_http_handler hello_handler = {
    .on_request = on_request,
    .on_body = on_body,
    .on_drain = on_drain,
    .on_close = on_close,
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: agora-hello [--listen HOST:PORT] [--workers N] [options]\n"
                 "\n"
                 "A small HTTP/1.1 server on libagora-core, for tests and benchmarks.\n"
                 "\n"
                 "Routes:\n"
                 "  GET  /          200 {\"hello\":\"world\"}\n"
                 "  POST /echo      streams the request body back with its Content-Type\n"
                 "  GET  /bytes/N   N bytes (N <= 1 GiB), streamed in constant memory\n"
                 "  GET  /delay/MS  answers after MS milliseconds (<= 60000), not blocking others\n"
                 "  GET  /healthz   200 {\"status\":\"ok\"}\n"
                 "  anything else   404 application/problem+json\n"
                 "\n"
                 "Options:\n"
                 "  -l, --listen HOST:PORT      address to listen on (default 127.0.0.1:8080;\n"
                 "                              port 0 picks a free one, printed at start)\n"
                 "  -w, --workers N             worker threads (default: one per CPU)\n"
                 "      --max-body BYTES        largest request body (default 10485760)\n"
                 "      --header-timeout-ms MS  time allowed for a request head (default 10000)\n"
                 "      --body-timeout-ms MS    time allowed between body pieces (default 30000)\n"
                 "      --idle-timeout-ms MS    keep-alive idle time (default 60000)\n"
                 "      --drain-timeout-ms MS   on SIGTERM, time for in-flight requests (default "
                 "10000)\n"
                 "      --log-level LEVEL       debug, info, warn or error (default info)\n"
                 "  -h, --help                  this text\n"
                 "\n"
                 "Logs are JSON lines on standard output. SIGTERM or SIGINT drains and exits 0.\n");
}

/* Parses a whole decimal number in [min, max] for option name; exits 2 with a message. */
static uint64_t parse_number_option(const char *name, const char *value, uint64_t min, uint64_t max)
{
    uint64_t v;
    if (ag_str_to_u64(ag_str_from_cstr(value), max, &v) < 0 || v < min) {
        fprintf(stderr, "agora-hello: %s must be a whole number from %llu to %llu, got \"%s\"\n",
                name, (unsigned long long)min, (unsigned long long)max, value);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    enum { OPT_MAX_BODY = 256, OPT_HEADER_TO, OPT_BODY_TO, OPT_IDLE_TO, OPT_DRAIN_TO, OPT_LOG };
    static const struct option options[] = {
        {"listen", required_argument, NULL, 'l'},
        {"workers", required_argument, NULL, 'w'},
        {"max-body", required_argument, NULL, OPT_MAX_BODY},
        {"header-timeout-ms", required_argument, NULL, OPT_HEADER_TO},
        {"body-timeout-ms", required_argument, NULL, OPT_BODY_TO},
        {"idle-timeout-ms", required_argument, NULL, OPT_IDLE_TO},
        {"drain-timeout-ms", required_argument, NULL, OPT_DRAIN_TO},
        {"log-level", required_argument, NULL, OPT_LOG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct ag_http_server_config cfg;
    ag_http_server_config_defaults(&cfg);
    cfg.handler = &hello_handler;
    enum ag_log_level level = AG_LOG_INFO;
    int opt;
    while ((opt = getopt_long(argc, argv, "l:w:h", options, NULL)) != -1) {
        switch (opt) {
        case 'l':
            cfg.listen = optarg;
            break;
        case 'w':
            cfg.workers = (unsigned)parse_number_option("--workers", optarg, 1, 256);
            break;
        case OPT_MAX_BODY:
            cfg.limits.max_body = parse_number_option("--max-body", optarg, 0, UINT64_MAX >> 1);
            break;
        case OPT_HEADER_TO:
            cfg.header_timeout_ms =
                (uint32_t)parse_number_option("--header-timeout-ms", optarg, 1, 3600000);
            break;
        case OPT_BODY_TO:
            cfg.body_timeout_ms =
                (uint32_t)parse_number_option("--body-timeout-ms", optarg, 1, 3600000);
            break;
        case OPT_IDLE_TO:
            cfg.idle_timeout_ms =
                (uint32_t)parse_number_option("--idle-timeout-ms", optarg, 1, 3600000);
            break;
        case OPT_DRAIN_TO:
            cfg.drain_timeout_ms =
                (uint32_t)parse_number_option("--drain-timeout-ms", optarg, 0, 3600000);
            break;
        case OPT_LOG:
            if (ag_log_level_parse(optarg, &level) < 0) {
                fprintf(stderr, "agora-hello: --log-level must be debug, info, warn or error\n");
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "agora-hello: unexpected argument \"%s\" (see --help)\n", argv[optind]);
        return 2;
    }
    struct ag_err err = {0};
    struct ag_addr addr;
    if (ag_addr_parse(cfg.listen, &addr, &err) < 0) {
        fprintf(stderr, "agora-hello: --listen: %s\n", err.msg);
        return 2;
    }
    ag_log_setup("hello", level, 1);

    struct ag_http_server *srv = NULL;
    if (ag_http_server_new(&cfg, &srv, &err) < 0) {
        ag_log_error("cannot start", AG_F_STR("error", err.msg));
        return 1;
    }
    ag_log_info("listening", AG_F_STR("listen", cfg.listen),
                AG_F_UINT("port", ag_http_server_port(srv)),
                AG_F_UINT("workers", ag_http_server_worker_count(srv)));
    int rc = ag_http_server_run(srv, &err);
    if (rc < 0)
        ag_log_error("server failed", AG_F_STR("error", err.msg));
    else
        ag_log_info("stopped after draining");
    ag_http_server_free(srv);
    return rc < 0 ? 1 : 0;
}
