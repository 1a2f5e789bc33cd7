/* A non-blocking HTTP readiness probe: GET a URL, succeed on status 200, for a poll loop. */
#ifndef CLI_PROBE_H
#define CLI_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

enum probe_result {
    PROBE_PENDING, /* waiting for the socket: poll probe_fd() for probe_events() */
    PROBE_OK,      /* the answer's status was 200 */
    PROBE_FAILED,  /* refused, timed out, closed, or another status */
};

struct probe {
    int fd; /* -1 when idle */
    bool sent;
    int64_t deadline_ms;
    char request[512];
    size_t request_len;
    char answer[16]; /* "HTTP/1.1 200" is all that is read */
    size_t answer_len;
};

/* An idle probe. */
void probe_init(struct probe *pr);

/*
 * Starts a GET of url ("http://host[:port]/path"; host a name, an IPv4 address or [v6]) that
 * must answer within timeout_ms of now_ms (a monotonic time in ms). Returns 0 (PENDING; drive it
 * with probe_step), AG_EINVAL for a URL outside that syntax, or AG_ESYS (no socket). A probe
 * already running is cancelled first.
 */
int probe_start(struct probe *pr, const char *url, int64_t now_ms, uint32_t timeout_ms,
                struct ag_err *err);

/* True while a probe is running (its fd is to be polled). */
bool probe_running(const struct probe *pr);

/* The poll events the running probe waits for (POLLOUT or POLLIN). */
short probe_events(const struct probe *pr);

/*
 * Advances the probe after poll reported revents on its fd (0 to check the deadline only).
 * Returns PENDING, or OK / FAILED, after which the probe is idle again.
 */
enum probe_result probe_step(struct probe *pr, short revents, int64_t now_ms);

/* Stops a running probe (closes its socket); harmless on an idle one. */
void probe_cancel(struct probe *pr);

#endif
