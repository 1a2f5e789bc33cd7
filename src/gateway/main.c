/* agora-gateway: the API gateway — routes, balances, authenticates, limits and logs. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/http_server.h"
#include "core/log.h"
#include "core/loop.h"
#include "gateway/admin.h"
#include "gateway/gateway.h"
#include "gateway/gw_config.h"
#include "gateway/proxy_headers.h"
#include "gateway/ratelimit.h"
#include "gateway/reload.h"
#include "core/banned.h"

enum { EXIT_USAGE = 2 };

static void usage(FILE *out)
{
    fputs("usage: agora-gateway -c FILE.yaml [--check]\n"
          "\n"
          "The Agora API gateway: routes requests to upstreams, balances, checks health, breaks\n"
          "circuits, verifies bearer tokens, limits rates, answers CORS, logs and counts.\n"
          "\n"
          "  -c, --config FILE   the configuration (YAML); see docs/gateway.md\n"
          "      --check         load and check the configuration, print it, and exit\n"
          "      --help-config   describe every configuration key and exit\n"
          "  -h, --help          this text\n"
          "\n"
          "Signals: SIGHUP reloads the configuration (as POST /reload on the admin port);\n"
          "SIGTERM or SIGINT drains in-flight requests and exits 0.\n"
          "Exit status: 0 after a drain, 1 when the gateway cannot run (a port is taken),\n"
          "2 for a usage or configuration error (the message names file, line and key).\n",
          out);
}

struct control {
    struct gw_gateway *gw;
    struct ag_loop *loop;
    struct ag_signal term, intr, hup;
};

static void on_stop(struct ag_signal *sig, int signo)
{
    struct control *c = signo == SIGTERM ? AG_CONTAINER_OF(sig, struct control, term)
                                         : AG_CONTAINER_OF(sig, struct control, intr);
    ag_log_info("draining", AG_F_STR("signal", signo == SIGTERM ? "SIGTERM" : "SIGINT"));
    ag_http_server_shutdown(c->gw->server);
    ag_http_server_shutdown(c->gw->admin);
    ag_loop_stop(c->loop);
}

static void on_hup(struct ag_signal *sig, int signo)
{
    (void)signo;
    struct control *c = AG_CONTAINER_OF(sig, struct control, hup);
    struct ag_err err = {0};
    gw_reload(c->gw, &err); /* logs its own outcome */
}

static int open_access_log(struct gw_gateway *gw, const char *where)
{
    gw->access_fd = -1;
    if (strcmp(where, "off") == 0)
        return 0;
    if (strcmp(where, "stdout") == 0) {
        gw->access_fd = STDOUT_FILENO;
        return 0;
    }
    gw->access_fd = open(where, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (gw->access_fd < 0) {
        fprintf(stderr, "agora-gateway: access_log: cannot open %s: %s\n", where, strerror(errno));
        return -1;
    }
    gw->access_fd_owned = true;
    return 0;
}

static int make_servers(struct gw_gateway *gw, const struct gw_config *cfg, struct ag_err *err)
{
    struct ag_http_server_config sc;
    ag_http_server_config_defaults(&sc);
    sc.listen = cfg->listen;
    sc.workers = (unsigned)cfg->workers;
    sc.limits.max_request_line = cfg->limits.max_request_line;
    sc.limits.max_header_bytes = cfg->limits.max_header_bytes;
    sc.limits.max_headers = cfg->limits.max_headers;
    sc.limits.max_body = cfg->limits.max_body_bytes;
    sc.header_timeout_ms = (uint32_t)cfg->limits.header_timeout_ms;
    sc.body_timeout_ms = (uint32_t)cfg->limits.body_timeout_ms;
    sc.idle_timeout_ms = (uint32_t)cfg->limits.idle_timeout_ms;
    sc.write_timeout_ms = (uint32_t)cfg->limits.write_timeout_ms;
    sc.drain_timeout_ms = (uint32_t)cfg->limits.drain_timeout_ms;
    sc.handler = &gw_proxy_handler;
    sc.ctx = gw;
    sc.on_worker_start = gw_worker_start;
    sc.on_worker_stop = gw_worker_stop;
    /* The server's own refusals (400, 408, 414, 431...) carry the security headers too. */
    static struct ag_http_header refusal[8];
    static char hsts[40];
    size_t n = 0;
    gw_security_headers(&cfg->security_headers, NULL, 0, false, refusal, &n, 8, hsts);
    sc.refusal_headers = refusal;
    sc.refusal_header_count = n;
    int rc = ag_http_server_new(&sc, &gw->server, err);
    if (rc < 0)
        return rc;
    struct ag_http_server_config ac;
    ag_http_server_config_defaults(&ac);
    ac.listen = cfg->admin_listen;
    ac.workers = 1;
    ac.handler = &gw_admin_handler;
    ac.ctx = gw;
    ac.drain_timeout_ms = 1000;
    return ag_http_server_new(&ac, &gw->admin, err);
}

static int run(struct gw_gateway *gw, struct ag_err *err)
{
    struct control c = {.gw = gw};
    int rc;
    if ((rc = ag_loop_new(&c.loop, err)) < 0)
        return rc;
    if (ag_loop_signal(c.loop, &c.term, SIGTERM, on_stop) < 0 ||
        ag_loop_signal(c.loop, &c.intr, SIGINT, on_stop) < 0 ||
        ag_loop_signal(c.loop, &c.hup, SIGHUP, on_hup) < 0) {
        rc = ag_err_sys(err, "signalfd");
        goto out;
    }
    if ((rc = ag_http_server_start(gw->admin, err)) < 0)
        goto out;
    if ((rc = ag_http_server_start(gw->server, err)) < 0) {
        ag_http_server_shutdown(gw->admin);
        ag_http_server_join(gw->admin);
        goto out;
    }
    ag_loop_run(c.loop);
    ag_http_server_shutdown(gw->server);
    ag_http_server_shutdown(gw->admin);
    int joined = ag_http_server_join(gw->server);
    ag_http_server_join(gw->admin);
    if (joined < 0)
        rc = ag_err_set(err, AG_EINVAL, "a worker could not start (see the log)");
out:
    ag_loop_free(c.loop);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 'k'},
        {"help-config", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    bool check = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = true;
            break;
        case 'd': {
            struct ag_buf doc;
            ag_buf_init(&doc, 1 << 20);
            ag_config_document(&gw_config_schema, &doc);
            fwrite(doc.data + doc.off, 1, doc.len, stdout);
            ag_buf_release(&doc);
            return 0;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (!path || optind != argc) {
        fprintf(stderr, "agora-gateway: %s\n", path ? "unexpected arguments" : "-c FILE is needed");
        usage(stderr);
        return EXIT_USAGE;
    }

    struct ag_err err = {0};
    struct gw_config cfg;
    if (gw_config_load(&cfg, path, &err) < 0) {
        fprintf(stderr, "agora-gateway: %s\n", err.msg);
        return EXIT_USAGE;
    }
    if (check) {
        struct ag_buf dump;
        ag_buf_init(&dump, 4 << 20);
        ag_config_dump(&gw_config_schema, &cfg, &dump);
        fwrite(dump.data + dump.off, 1, dump.len, stdout);
        ag_buf_release(&dump);
        /* Build it too (routes, CORS policies, target addresses, issuers), as a start would. */
        ag_log_setup("gateway", AG_LOG_WARN, STDERR_FILENO);
        struct ag_metrics *scratch = NULL;
        struct gw_snapshot *snap = NULL;
        int rc = ag_metrics_new(&scratch);
        if (rc == 0)
            rc = gw_snapshot_new(&cfg, path, 1, scratch, &snap, &err);
        gw_snapshot_unref(snap);
        ag_metrics_free(scratch);
        gw_config_release(&cfg);
        if (rc < 0) {
            fprintf(stderr, "agora-gateway: %s\n", err.msg[0] ? err.msg : "out of memory");
            return EXIT_USAGE;
        }
        return 0;
    }
    ag_log_setup("gateway", (enum ag_log_level)cfg.log_level, STDOUT_FILENO);
    /* Before any thread starts, so that every thread inherits the mask and only the control
     * loop's signalfd sees these signals. */
    static const int blocked[] = {SIGTERM, SIGINT, SIGHUP, SIGPIPE};
    if (ag_signals_block(blocked, 4, &err) < 0) {
        fprintf(stderr, "agora-gateway: %s\n", err.msg);
        gw_config_release(&cfg);
        return 1;
    }

    static struct gw_gateway gw;
    pthread_mutex_init(&gw.lock, NULL);
    gw.config_path = (char *)path;
    gw.metrics = ag_metrics_default();
    int status = EXIT_USAGE;
    if (open_access_log(&gw, cfg.access_log) < 0 || gw_gateway_metrics_init(&gw, &err) < 0 ||
        gw_rl_memory_new(cfg.rate_limit_max_keys, &gw.rl_memory, &err) < 0) {
        if (err.msg[0])
            fprintf(stderr, "agora-gateway: %s\n", err.msg);
        gw_config_release(&cfg);
        return 1;
    }
    if (make_servers(&gw, &cfg, &err) < 0) {
        fprintf(stderr, "agora-gateway: %s\n", err.msg);
        status = 1;
        goto out;
    }
    gw.worker_count = ag_http_server_worker_count(gw.server);
    gw.workers = calloc(gw.worker_count, sizeof *gw.workers);
    ag_log_info("listening", AG_F_UINT("port", ag_http_server_port(gw.server)),
                AG_F_UINT("admin_port", ag_http_server_port(gw.admin)),
                AG_F_UINT("workers", gw.worker_count), AG_F_STR("config", path));
    size_t routes = cfg.route_count, upstreams = cfg.upstream_count;
    if (!gw.workers || gw_snapshot_new(&cfg, path, 1, gw.metrics, &gw.current, &err) < 0) {
        fprintf(stderr, "agora-gateway: %s\n", gw.workers ? err.msg : "out of memory");
        goto out;
    }
    ag_log_info("serving", AG_F_UINT("generation", 1), AG_F_UINT("routes", routes),
                AG_F_UINT("upstreams", upstreams),
                AG_F_BOOL("ready", gw_snapshot_ready(gw.current)));
    status = run(&gw, &err) < 0 ? 1 : 0;
    if (status)
        fprintf(stderr, "agora-gateway: %s\n", err.msg);
    else
        ag_log_info("stopped");
out:
    gw_config_release(&cfg);
    ag_http_server_free(gw.server);
    ag_http_server_free(gw.admin);
    gw_snapshot_unref(gw.current);
    gw_rl_memory_free(gw.rl_memory);
    free(gw.workers);
    if (gw.access_fd_owned)
        close(gw.access_fd);
    return status;
}
