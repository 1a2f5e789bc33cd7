/* The access log: one JSON line per request, buffered per worker, written whole. */
#ifndef GW_ACCESS_LOG_H
#define GW_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/loop.h"

/* One worker's buffer; lines reach the fd within FLUSH_MS or when 32 KiB are waiting. */
struct gw_access_log {
    int fd; /* -1: off */
    struct ag_loop *loop;
    struct ag_buf buf;
    struct ag_timer flush_timer;
};

/* What one line says. Slices may be empty; user_id and upstream may be NULL. */
struct gw_access_entry {
    struct ag_str request_id, method, path, route, upstream, client_ip, user_id;
    int status;
    uint64_t bytes_in, bytes_out;
    double duration_ms, upstream_ms; /* upstream_ms < 0: no upstream was asked */
    bool completed;                  /* false: the connection was cut before the end */
};

/* Prepares log for fd (-1: off) on loop. */
void gw_access_log_init(struct gw_access_log *log, int fd, struct ag_loop *loop);

/* Appends one line (dropped, never blocking, if the buffer is at its 1 MiB bound). */
void gw_access_log_write(struct gw_access_log *log, const struct gw_access_entry *e);

/* Writes what is buffered now. */
void gw_access_log_flush(struct gw_access_log *log);

/* Flushes, stops the timer, frees the buffer. */
void gw_access_log_release(struct gw_access_log *log);

#endif
