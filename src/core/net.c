/* Socket helpers: HOST:PORT parsing, listeners with SO_REUSEPORT, non-blocking connects. */
#include "core/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/banned.h"

int ag_addr_parse(const char *hostport, struct ag_addr *addr, struct ag_err *err)
{
    char host[256];
    struct ag_str s = ag_str_from_cstr(hostport);
    const char *colon = s.len ? memrchr(s.p, ':', s.len) : NULL;
    if (!colon)
        return ag_err_set(err, AG_EINVAL, "address \"%s\" is not HOST:PORT", hostport);
    struct ag_str h = {s.p, (size_t)(colon - s.p)};
    struct ag_str port_s = {colon + 1, s.len - h.len - 1};
    if (h.len >= 2 && h.p[0] == '[' && h.p[h.len - 1] == ']') {
        h.p++;
        h.len -= 2;
    }
    uint64_t port;
    if (ag_str_to_u64(port_s, 65535, &port) < 0)
        return ag_err_set(err, AG_EINVAL, "address \"%s\": port must be 0 to 65535", hostport);
    if (h.len == 0 || h.len >= sizeof host)
        return ag_err_set(err, AG_EINVAL, "address \"%s\": missing or overlong host", hostport);
    memcpy(host, h.p, h.len);
    host[h.len] = '\0';

    memset(addr, 0, sizeof *addr);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&addr->ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr->ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        addr->len = sizeof *v4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        addr->len = sizeof *v6;
        return 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, NULL, &hints, &res);
    if (gai != 0 || !res)
        return ag_err_set(err, AG_EINVAL, "address \"%s\": cannot resolve host: %s", hostport,
                          gai_strerror(gai));
    memcpy(&addr->ss, res->ai_addr, res->ai_addrlen);
    addr->len = res->ai_addrlen;
    freeaddrinfo(res);
    if (addr->ss.ss_family == AF_INET)
        v4->sin_port = htons((uint16_t)port);
    else
        v6->sin6_port = htons((uint16_t)port);
    return 0;
}

void ag_addr_format(const struct ag_addr *addr, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (addr->ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)&addr->ss)->sin_addr, host, sizeof host);
        snprintf(out, size, "%s:%u", host, ag_addr_port(addr));
    } else {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&addr->ss)->sin6_addr, host,
                  sizeof host);
        snprintf(out, size, "[%s]:%u", host, ag_addr_port(addr));
    }
}

uint16_t ag_addr_port(const struct ag_addr *addr)
{
    if (addr->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&addr->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&addr->ss)->sin6_port);
}

int ag_net_listen(const struct ag_addr *addr, int backlog, struct ag_err *err)
{
    char name[64];
    ag_addr_format(addr, name, sizeof name);
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ag_err_sys(err, "listen on %s: socket", name);
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        ag_err_sys(err, "listen on %s: setsockopt", name);
        goto fail;
    }
    if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0) {
        ag_err_sys(err, "listen on %s: bind", name);
        goto fail;
    }
    if (listen(fd, backlog) < 0) {
        ag_err_sys(err, "listen on %s: listen", name);
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return AG_ESYS;
}

int ag_net_connect(const struct ag_addr *addr, struct ag_err *err)
{
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ag_err_sys(err, "socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0 && errno != EINPROGRESS) {
        char name[64];
        ag_addr_format(addr, name, sizeof name);
        ag_err_sys(err, "connect to %s", name);
        close(fd);
        return AG_ESYS;
    }
    return fd;
}

int ag_net_connect_result(int fd)
{
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) < 0)
        return -errno;
    return -so_error;
}

ssize_t ag_net_read(int fd, struct ag_buf *b)
{
    for (;;) {
        ssize_t n = read(fd, ag_buf_tail(b), ag_buf_space(b));
        if (n > 0) {
            ag_buf_commit(b, (size_t)n);
            return n;
        }
        if (n == 0)
            return AG_ECLOSED;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? AG_EAGAIN : AG_ESYS;
    }
}

long ag_net_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (long)rl.rlim_cur;
}
