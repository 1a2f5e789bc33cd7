/* HTTP/1.1 server: worker threads with SO_REUSEPORT listeners, signals and graceful drain. */
#include "core/http_server.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/http_conn.h"
#include "core/log.h"
#include "core/net.h"
#include "core/banned.h"

enum {
    LISTEN_BACKLOG = 4096,
    ACCEPTS_PER_WAKEUP = 64, /* then let the loop serve the connections it has */
    ACCEPT_RETRY_MS = 100,   /* out of fds: pause accepting this long */
    MAX_WORKERS = 256,
};

struct ag_http_server {
    struct ag_http_server_config cfg;
    struct ag_addr addr;
    unsigned worker_count;
    struct ag_http_worker *workers;
    struct ag_loop *control; /* the thread in ag_http_server_run: signals and shutdown */
    struct ag_signal sigterm, sigint;
    atomic_bool shutting_down;
    atomic_bool worker_failed;
    unsigned started; /* worker threads running (ag_http_server_start) */
};

void ag_http_server_config_defaults(struct ag_http_server_config *cfg)
{
    *cfg = (struct ag_http_server_config){
        .listen = "127.0.0.1:8080",
        .workers = 0,
        .limits = ag_http_default_limits,
        .header_timeout_ms = 10000,
        .body_timeout_ms = 30000,
        .idle_timeout_ms = 60000,
        .write_timeout_ms = 30000,
        .drain_timeout_ms = 10000,
    };
}

/* ---- accepting ---- */

static void worker_on_accept(struct ag_io *io, unsigned events);

static void accept_resume(struct ag_timer *t)
{
    struct ag_http_worker *w = AG_CONTAINER_OF(t, struct ag_http_worker, accept_retry);
    if (!w->draining && w->listen_io.fd >= 0)
        ag_loop_io_modify(w->loop, &w->listen_io, AG_IO_READ);
}

static void worker_on_accept(struct ag_io *io, unsigned events)
{
    (void)events;
    struct ag_http_worker *w = AG_CONTAINER_OF(io, struct ag_http_worker, listen_io);
    for (int i = 0; i < ACCEPTS_PER_WAKEUP && !w->draining; i++) {
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof peer;
        int fd = accept4(io->fd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            ag_http_conn_accept(w, fd, (const struct sockaddr *)&peer);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* Level-triggered: stop watching for a moment rather than spin on the error. */
            ag_log_warn("accept paused: out of file descriptors or memory",
                        AG_F_STR("error", strerror(errno)), AG_F_UINT("worker", w->index),
                        AG_F_UINT("connections", w->conn_count),
                        AG_F_UINT("retry_ms", ACCEPT_RETRY_MS));
            ag_loop_io_modify(w->loop, io, 0);
            ag_timer_start(w->loop, &w->accept_retry, ACCEPT_RETRY_MS);
        }
        return;
    }
}

/* ---- draining ---- */

static void worker_drain_deadline(struct ag_timer *t)
{
    struct ag_http_worker *w = AG_CONTAINER_OF(t, struct ag_http_worker, drain_deadline);
    ag_http_conn_close_all(w);
    ag_loop_stop(w->loop);
}

static void worker_drain(void *arg)
{
    struct ag_http_worker *w = arg;
    if (w->draining)
        return;
    w->draining = true;
    if (w->listen_io.fd >= 0) {
        ag_loop_io_remove(w->loop, &w->listen_io);
        close(w->listen_io.fd);
        w->listen_io.fd = -1;
    }
    ag_timer_stop(w->loop, &w->accept_retry);
    ag_timer_start(w->loop, &w->drain_deadline, w->cfg->drain_timeout_ms);
    ag_http_conn_drain_all(w);
}

void ag_http_server_shutdown(struct ag_http_server *srv)
{
    if (atomic_exchange(&srv->shutting_down, true))
        return;
    for (unsigned i = 0; i < srv->worker_count; i++)
        ag_loop_post(srv->workers[i].loop, worker_drain, &srv->workers[i]);
    if (srv->control)
        ag_loop_stop(srv->control);
}

static void on_stop_signal(struct ag_signal *sig, int signo)
{
    (void)signo;
    struct ag_http_server *srv = signo == SIGTERM
                                     ? AG_CONTAINER_OF(sig, struct ag_http_server, sigterm)
                                     : AG_CONTAINER_OF(sig, struct ag_http_server, sigint);
    ag_http_server_shutdown(srv);
}

/* ---- setup ---- */

static unsigned online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

static int check_config(const struct ag_http_server_config *cfg, struct ag_err *err)
{
    if (!cfg->handler || !cfg->handler->on_request)
        return ag_err_set(err, AG_EINVAL, "the server needs a handler with on_request");
    if (cfg->workers > MAX_WORKERS)
        return ag_err_set(err, AG_EINVAL, "workers must be 0 (one per CPU) to %d", MAX_WORKERS);
    int rc = ag_http_limits_check(&cfg->limits, err);
    if (rc < 0)
        return rc;
    if (cfg->refusal_header_count > 8)
        return ag_err_set(err, AG_EINVAL, "at most 8 refusal headers");
    if (!cfg->header_timeout_ms || !cfg->body_timeout_ms || !cfg->idle_timeout_ms ||
        !cfg->write_timeout_ms)
        return ag_err_set(err, AG_EINVAL, "timeouts must be at least 1 ms");
    return 0;
}

int ag_http_server_new(const struct ag_http_server_config *cfg, struct ag_http_server **out,
                       struct ag_err *err)
{
    int rc = check_config(cfg, err);
    if (rc < 0)
        return rc;
    struct ag_http_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return ag_err_set(err, AG_ENOMEM, "out of memory creating the server");
    srv->cfg = *cfg;
    srv->worker_count = cfg->workers ? cfg->workers : online_cpus();
    srv->workers = calloc(srv->worker_count, sizeof *srv->workers);
    if (!srv->workers) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory creating the server");
        goto out;
    }
    for (unsigned i = 0; i < srv->worker_count; i++)
        srv->workers[i].listen_io.fd = -1;
    rc = ag_addr_parse(cfg->listen, &srv->addr, err);
    if (rc < 0)
        goto out;
    ag_net_raise_fd_limit();
    for (unsigned i = 0; i < srv->worker_count; i++) {
        struct ag_http_worker *w = &srv->workers[i];
        w->srv = srv;
        w->cfg = &srv->cfg;
        w->index = i;
        ag_timer_init(&w->accept_retry, accept_resume);
        ag_timer_init(&w->drain_deadline, worker_drain_deadline);
        rc = ag_loop_new(&w->loop, err);
        if (rc < 0)
            goto out;
        int fd = ag_net_listen(&srv->addr, LISTEN_BACKLOG, err);
        if (fd < 0) {
            rc = fd;
            goto out;
        }
        if (i == 0 && ag_addr_port(&srv->addr) == 0) {
            /* Port 0: every other worker joins the port the kernel picked for the first. */
            srv->addr.len = sizeof srv->addr.ss;
            getsockname(fd, (struct sockaddr *)&srv->addr.ss, &srv->addr.len);
        }
        if (ag_loop_io_add(w->loop, &w->listen_io, fd, AG_IO_READ, worker_on_accept) < 0) {
            close(fd);
            rc = ag_err_sys(err, "epoll_ctl(listener)");
            goto out;
        }
    }
out:
    if (rc < 0) {
        ag_http_server_free(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

uint16_t ag_http_server_port(const struct ag_http_server *srv)
{
    return ag_addr_port(&srv->addr);
}

size_t ag_http_server_connections(const struct ag_http_server *srv)
{
    size_t n = 0;
    for (unsigned i = 0; i < srv->worker_count; i++)
        n += atomic_load_explicit(&srv->workers[i].conn_count, memory_order_relaxed);
    return n;
}

unsigned ag_http_server_worker_count(const struct ag_http_server *srv)
{
    return srv->worker_count;
}

static void *worker_main(void *arg)
{
    struct ag_http_worker *w = arg;
    const struct ag_http_server_config *cfg = w->cfg;
    if (cfg->on_worker_start && cfg->on_worker_start(w->loop, w->index, cfg->ctx, &w->data) < 0) {
        ag_log_error("worker could not start", AG_F_UINT("worker", w->index));
        atomic_store(&w->srv->worker_failed, true);
        ag_http_server_shutdown(w->srv);
        return NULL;
    }
    ag_loop_run(w->loop);
    ag_http_conn_close_all(w);
    if (cfg->on_worker_stop)
        cfg->on_worker_stop(w->loop, w->index, cfg->ctx, w->data);
    return NULL;
}

int ag_http_server_start(struct ag_http_server *srv, struct ag_err *err)
{
    int rc = 0;
    for (; srv->started < srv->worker_count; srv->started++) {
        int e = pthread_create(&srv->workers[srv->started].thread, NULL, worker_main,
                               &srv->workers[srv->started]);
        if (e != 0) {
            errno = e;
            rc = ag_err_sys(err, "pthread_create");
            ag_http_server_shutdown(srv);
            ag_http_server_join(srv);
            break;
        }
    }
    return rc;
}

int ag_http_server_join(struct ag_http_server *srv)
{
    for (unsigned i = 0; i < srv->started; i++)
        pthread_join(srv->workers[i].thread, NULL);
    srv->started = 0;
    return atomic_load(&srv->worker_failed) ? AG_EINVAL : 0;
}

int ag_http_server_run(struct ag_http_server *srv, struct ag_err *err)
{
    static const int blocked[] = {SIGTERM, SIGINT, SIGPIPE};
    int rc = ag_signals_block(blocked, 3, err);
    if (rc < 0)
        return rc;
    rc = ag_loop_new(&srv->control, err);
    if (rc < 0)
        return rc;
    if (ag_loop_signal(srv->control, &srv->sigterm, SIGTERM, on_stop_signal) < 0 ||
        ag_loop_signal(srv->control, &srv->sigint, SIGINT, on_stop_signal) < 0) {
        rc = ag_err_sys(err, "signalfd");
        goto out;
    }
    rc = ag_http_server_start(srv, err);
    if (rc == 0 && !atomic_load(&srv->shutting_down))
        ag_loop_run(srv->control);
    ag_http_server_shutdown(srv);
    if (ag_http_server_join(srv) < 0 && rc == 0)
        rc = ag_err_set(err, AG_EINVAL, "a worker could not start");
out:
    ag_loop_free(srv->control);
    srv->control = NULL;
    return rc;
}

void ag_http_server_free(struct ag_http_server *srv)
{
    if (!srv)
        return;
    for (unsigned i = 0; srv->workers && i < srv->worker_count; i++) {
        struct ag_http_worker *w = &srv->workers[i];
        if (w->listen_io.fd >= 0)
            close(w->listen_io.fd);
        if (w->loop)
            ag_loop_free(w->loop);
        ag_http_worker_release_caches(w);
    }
    free(srv->workers);
    free(srv);
}
