/* The access log: one JSON line per request, buffered per worker, written whole. */
#include "gateway/access_log.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "core/json.h"
#include "core/log.h"
#include "core/banned.h"

enum {
    FLUSH_MS = 100,
    FLUSH_BYTES = 32 * 1024,
    BUF_MAX = 1024 * 1024,
};

static void flush_cb(struct ag_timer *t)
{
    gw_access_log_flush(AG_CONTAINER_OF(t, struct gw_access_log, flush_timer));
}

void gw_access_log_init(struct gw_access_log *log, int fd, struct ag_loop *loop)
{
    log->fd = fd;
    log->loop = loop;
    ag_buf_init(&log->buf, BUF_MAX);
    ag_timer_init(&log->flush_timer, flush_cb);
}

void gw_access_log_flush(struct gw_access_log *log)
{
    /* Whole lines only, so that workers sharing the fd never interleave inside a line. */
    while (log->buf.len > 0) {
        ssize_t n = write(log->fd, log->buf.data + log->buf.off, log->buf.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* a full pipe or disk: the lines are dropped rather than block the worker */
        ag_buf_consume(&log->buf, (size_t)n);
    }
    ag_buf_clear(&log->buf);
}

static void add_field(struct ag_buf *b, const char *key, struct ag_str value)
{
    ag_buf_appendf(b, ",\"%s\":", key);
    if (value.p)
        ag_json_append_string(b, value);
    else
        ag_buf_append(b, "null", 4);
}

void gw_access_log_write(struct gw_access_log *log, const struct gw_access_entry *e)
{
    if (log->fd < 0)
        return;
    struct ag_buf *b = &log->buf;
    if (b->len + 16384 > BUF_MAX)
        gw_access_log_flush(log);
    size_t mark = b->len;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char ts[AG_LOG_TS_LEN + 1];
    ag_log_format_ts(&now, ts);
    ag_buf_appendf(b, "{\"ts\":\"%s\",\"msg\":\"access\"", ts);
    add_field(b, "request_id", e->request_id);
    add_field(b, "method", e->method);
    add_field(b, "path", e->path);
    add_field(b, "route", e->route);
    ag_buf_appendf(b, ",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration_ms\":%.3f",
                   e->status, (unsigned long long)e->bytes_in, (unsigned long long)e->bytes_out,
                   e->duration_ms);
    add_field(b, "upstream", e->upstream);
    if (e->upstream_ms >= 0)
        ag_buf_appendf(b, ",\"upstream_ms\":%.3f", e->upstream_ms);
    else
        ag_buf_appendf(b, ",\"upstream_ms\":null");
    add_field(b, "client_ip", e->client_ip);
    add_field(b, "user_id", e->user_id);
    if (!e->completed)
        ag_buf_appendf(b, ",\"completed\":false");
    int rc = ag_buf_append(b, "}\n", 2);
    if (rc < 0) {
        b->len = mark; /* a line that does not fit whole is not written at all */
        return;
    }
    if (b->len >= FLUSH_BYTES)
        gw_access_log_flush(log);
    else if (!ag_timer_active(&log->flush_timer))
        ag_timer_start(log->loop, &log->flush_timer, FLUSH_MS);
}

void gw_access_log_release(struct gw_access_log *log)
{
    if (log->fd >= 0)
        gw_access_log_flush(log);
    if (log->loop)
        ag_timer_stop(log->loop, &log->flush_timer);
    ag_buf_release(&log->buf);
}
