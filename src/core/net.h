/* Socket helpers: HOST:PORT parsing, listeners with SO_REUSEPORT, non-blocking connects. */
#ifndef AG_NET_H
#define AG_NET_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "core/err.h"

struct ag_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/*
 * Resolves "HOST:PORT" ("127.0.0.1:8080", "[::1]:80", "localhost:9000") into addr; a numeric
 * host is used as is, a name through getaddrinfo (first IPv4 or IPv6 answer). Port 0 is allowed
 * for listeners. Returns 0, or AG_EINVAL with err naming the bad part.
 */
int ag_addr_parse(const char *hostport, struct ag_addr *addr, struct ag_err *err);

/* Writes addr as "HOST:PORT" ("[v6]:PORT" for IPv6) into out (NUL-terminated, truncated). */
void ag_addr_format(const struct ag_addr *addr, char *out, size_t size);

/* The port of addr in host order. */
uint16_t ag_addr_port(const struct ag_addr *addr);

/*
 * Creates a non-blocking, close-on-exec TCP listener bound to addr with SO_REUSEADDR and
 * SO_REUSEPORT (so that each worker may have its own listener on the same port). Returns the
 * fd, or AG_ESYS with err naming the address and the failing call.
 */
int ag_net_listen(const struct ag_addr *addr, int backlog, struct ag_err *err);

/*
 * Starts a non-blocking connect to addr with TCP_NODELAY. Returns the fd (the connection is
 * complete when it becomes writable and ag_net_connect_result says 0), or AG_ESYS.
 */
int ag_net_connect(const struct ag_addr *addr, struct ag_err *err);

/* After a connecting fd became writable: 0 when connected, else the negative errno. */
int ag_net_connect_result(int fd);

/*
 * Reads once from a non-blocking fd into b's free space (ag_buf_reserve first), retrying on
 * EINTR. Returns the bytes read (> 0), AG_EAGAIN when nothing is there yet, AG_ECLOSED at the
 * end of the stream, or AG_ESYS with errno set.
 */
ssize_t ag_net_read(int fd, struct ag_buf *b);

/* Raises RLIMIT_NOFILE's soft limit to its hard limit; returns the new soft limit. */
long ag_net_raise_fd_limit(void);

#endif
