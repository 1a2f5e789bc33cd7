/* A non-blocking HTTP readiness probe: GET a URL, succeed on status 200, for a poll loop. */
#include "cli/probe.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/cli_util.h"
#include "core/buf.h"
#include "core/banned.h"

void probe_init(struct probe *pr)
{
    memset(pr, 0, sizeof(*pr));
    pr->fd = -1;
}

bool probe_running(const struct probe *pr)
{
    return pr->fd >= 0;
}

void probe_cancel(struct probe *pr)
{
    if (pr->fd >= 0)
        close(pr->fd);
    pr->fd = -1;
    pr->sent = false;
    pr->answer_len = 0;
}

int probe_start(struct probe *pr, const char *url, int64_t now_ms, uint32_t timeout_ms,
                struct ag_err *err)
{
    char host[256], port[8];
    const char *path;
    struct addrinfo hints, *res = NULL;
    int rc = 0;
    probe_cancel(pr);
    if (cli_url_split(url, host, sizeof(host), port, sizeof(port), &path) < 0)
        return ag_err_set(err, AG_EINVAL, "not an http://host:port/path URL: %s", url);
    int n = snprintf(pr->request, sizeof(pr->request),
                     "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: agora-up\r\n"
                     "Connection: close\r\n\r\n",
                     path, host, port);
    if (n < 0 || (size_t)n >= sizeof(pr->request))
        return ag_err_set(err, AG_EINVAL, "URL too long: %s", url);
    pr->request_len = (size_t)n;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0 || !res)
        return ag_err_set(err, AG_EINVAL, "cannot resolve %s: %s", host, gai_strerror(gai));
    pr->fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (pr->fd < 0) {
        rc = ag_err_sys(err, "socket");
        goto out;
    }
    if (connect(pr->fd, res->ai_addr, res->ai_addrlen) != 0 && errno != EINPROGRESS) {
        /* Refused at once (nothing listens yet): report it as a failed probe on the next step. */
        pr->deadline_ms = now_ms;
        pr->sent = true;
        goto out;
    }
    pr->deadline_ms = now_ms + timeout_ms;
out:
    freeaddrinfo(res);
    return rc;
}

short probe_events(const struct probe *pr)
{
    return pr->sent ? POLLIN : POLLOUT;
}

static enum probe_result finish(struct probe *pr, enum probe_result r)
{
    probe_cancel(pr);
    return r;
}

enum probe_result probe_step(struct probe *pr, short revents, int64_t now_ms)
{
    if (pr->fd < 0)
        return PROBE_FAILED;
    if (!pr->sent && (revents & (POLLOUT | POLLERR | POLLHUP))) {
        int so_error = 0;
        socklen_t len = sizeof(so_error);
        if (getsockopt(pr->fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0 || so_error != 0)
            return finish(pr, PROBE_FAILED);
        /* A fresh socket's send buffer takes a few hundred bytes at once. */
        ssize_t w = send(pr->fd, pr->request, pr->request_len, MSG_NOSIGNAL);
        if (w != (ssize_t)pr->request_len)
            return finish(pr, PROBE_FAILED);
        pr->sent = true;
        return PROBE_PENDING;
    }
    if (pr->sent && (revents & (POLLIN | POLLERR | POLLHUP))) {
        for (;;) {
            ssize_t r = recv(pr->fd, pr->answer + pr->answer_len,
                             sizeof(pr->answer) - 1 - pr->answer_len, 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            if (r <= 0)
                return finish(pr, PROBE_FAILED);
            pr->answer_len += (size_t)r;
            if (pr->answer_len >= 12) {
                pr->answer[pr->answer_len] = '\0';
                bool ok = strncmp(pr->answer, "HTTP/1.", 7) == 0 &&
                          memcmp(pr->answer + 8, " 200", 4) == 0;
                return finish(pr, ok ? PROBE_OK : PROBE_FAILED);
            }
        }
    }
    if (now_ms >= pr->deadline_ms)
        return finish(pr, PROBE_FAILED);
    return PROBE_PENDING;
}
