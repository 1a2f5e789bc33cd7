/* HTTP/1.1 server: worker threads with SO_REUSEPORT listeners, streaming exchanges, drain. */
#ifndef AG_HTTP_SERVER_H
#define AG_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/http_body.h"
#include "core/http_parse.h"
#include "core/loop.h"

struct ag_http_server;

/* One request and its response on a connection. Valid from on_request until on_close. */
struct ag_http_exchange;

/*
 * What the application does with requests. Callbacks run on the worker thread that owns the
 * connection, never concurrently for one exchange.
 */
struct ag_http_handler {
    /* The head is parsed. Respond now, or later from any callback on the same loop. */
    void (*on_request)(struct ag_http_exchange *ex);
    /*
     * A piece of the request body, in order; last is true once (data may then be empty). The
     * bytes are valid during the call only. Optional: without it the body is read and dropped.
     */
    void (*on_body)(struct ag_http_exchange *ex, struct ag_str data, bool last);
    /* The response output went back under the low watermark: a streaming writer goes on. */
    void (*on_drain)(struct ag_http_exchange *ex);
    /*
     * The exchange is over: completed is true when the response was fully handed to the kernel,
     * false when the connection was lost or cut first. Free per-exchange state here; ex is
     * invalid afterwards. Optional.
     */
    void (*on_close)(struct ag_http_exchange *ex, bool completed);
};

struct ag_http_server_config {
    const char *listen; /* "HOST:PORT"; port 0 picks a free port (see ag_http_server_port) */
    unsigned workers;   /* worker threads; 0 means the number of online CPUs */
    struct ag_http_limits limits;
    uint32_t header_timeout_ms; /* whole head, from its first byte; then 408 and close */
    uint32_t body_timeout_ms;   /* between two pieces of a request body */
    uint32_t idle_timeout_ms;   /* keep-alive connection with nothing to do */
    uint32_t write_timeout_ms;  /* output pending with no progress */
    uint32_t drain_timeout_ms;  /* after SIGTERM: in-flight requests get this long */
    const struct ag_http_handler *handler;
    void *ctx; /* returned by ag_http_exchange_ctx */
    /*
     * Optional fields (at most 8, borrowed for the server's life) added to the responses the
     * server makes itself when it refuses a request (400, 408, 413, 414, 431...): a gateway's
     * security headers belong on those too.
     */
    const struct ag_http_header *refusal_headers;
    size_t refusal_header_count;
    /*
     * Optional: runs on each worker thread before it serves, to make per-thread state (a
     * client on the worker's loop, caches). Returns 0 and sets *worker_data (returned by
     * ag_http_exchange_worker), or a negative code: the server then shuts down and
     * ag_http_server_run or ag_http_server_join returns AG_EINVAL.
     */
    int (*on_worker_start)(struct ag_loop *loop, unsigned index, void *ctx, void **worker_data);
    /* Optional: runs on the worker thread after its last connection closed. */
    void (*on_worker_stop)(struct ag_loop *loop, unsigned index, void *ctx, void *worker_data);
};

/* The defaults: limits as ag_http_default_limits, timeouts 10 s / 30 s / 60 s / 30 s / 10 s. */
void ag_http_server_config_defaults(struct ag_http_server_config *cfg);

/*
 * Binds one listener per worker (so that a busy port is reported here, before any thread
 * starts). Returns 0 and *out, AG_EINVAL for a bad address or configuration, AG_ESYS, AG_ENOMEM;
 * err says which.
 */
int ag_http_server_new(const struct ag_http_server_config *cfg, struct ag_http_server **out,
                       struct ag_err *err);

/* The bound port (useful after listening on port 0). */
uint16_t ag_http_server_port(const struct ag_http_server *srv);

/* Open client connections over all workers (a snapshot, from any thread). */
size_t ag_http_server_connections(const struct ag_http_server *srv);

/* The number of worker threads (cfg.workers, or the CPU count when that was 0). */
unsigned ag_http_server_worker_count(const struct ag_http_server *srv);

/*
 * Runs the workers until SIGTERM or SIGINT, then drains: listeners close, idle connections
 * close, in-flight exchanges get drain_timeout_ms to finish (their responses say
 * Connection: close), then the rest are cut. Blocks SIGTERM, SIGINT and SIGPIPE in the process
 * (call it from main before starting other threads). Returns 0 after a drain, or AG_ESYS.
 */
int ag_http_server_run(struct ag_http_server *srv, struct ag_err *err);

/*
 * For a process that runs several servers or handles signals itself: starts the worker threads
 * and returns. The caller must block SIGPIPE (and the signals it handles) before, and calls
 * ag_http_server_shutdown then ag_http_server_join. Returns 0 or AG_ESYS (no thread left
 * running).
 */
int ag_http_server_start(struct ag_http_server *srv, struct ag_err *err);

/*
 * Waits for the workers started by ag_http_server_start to end (after a shutdown). Returns 0,
 * or AG_EINVAL when a worker's on_worker_start failed.
 */
int ag_http_server_join(struct ag_http_server *srv);

/* Starts a drain as SIGTERM would; safe from any thread. */
void ag_http_server_shutdown(struct ag_http_server *srv);

/* Closes the listeners and frees the server (after ag_http_server_run returned). */
void ag_http_server_free(struct ag_http_server *srv);

/* ---- exchanges ---- */

const struct ag_http_request *ag_http_exchange_request(const struct ag_http_exchange *ex);
struct ag_loop *ag_http_exchange_loop(const struct ag_http_exchange *ex);
/* The worker_data set by on_worker_start for the worker serving ex (NULL without the hook). */
void *ag_http_exchange_worker(const struct ag_http_exchange *ex);
/*
 * Writes the client's IP address as text ("203.0.113.9", "2001:db8::1"; an IPv4-mapped IPv6
 * address as IPv4) into out, NUL-terminated. Returns its length, or AG_ERANGE when len is too
 * small (46 bytes always suffice).
 */
int ag_http_exchange_peer(const struct ag_http_exchange *ex, char *out, size_t len);
/*
 * Stops (true) or resumes (false) reading the request body: while paused no on_body fires, the
 * client is held back by TCP flow control, and the body timeout does not run (the handler
 * bounds the wait). A proxy pauses while its upstream is congested. Harmless once the body
 * ended.
 */
void ag_http_exchange_pause_body(struct ag_http_exchange *ex, bool paused);
void *ag_http_exchange_ctx(const struct ag_http_exchange *ex);
/* Per-exchange pointer for the handler, NULL until set. */
void ag_http_exchange_set_data(struct ag_http_exchange *ex, void *data);
void *ag_http_exchange_data(const struct ag_http_exchange *ex);

/*
 * Starts the response: status 200..599, extra header fields (the server adds Date,
 * Content-Length or Transfer-Encoding, and Connection), and the body length or
 * AG_HTTP_LENGTH_UNKNOWN. Body bytes written for HEAD, 204 and 304 are dropped.
 * Returns 0; AG_EINVAL for a status out of range, a field name that is not a token or a value
 * with CR, LF or NUL (nothing is sent); AG_ECLOSED when a response was already started or the
 * connection is gone.
 */
int ag_http_response_start(struct ag_http_exchange *ex, int status,
                           const struct ag_http_header *headers, size_t count,
                           int64_t content_length);

/*
 * ag_http_response_start without the field check, for a proxy whose fields are sendable by
 * construction: taken unchanged from a message that ag_http_parse_request or
 * ag_http_parse_response accepted (names are tokens, values hold no CR, LF or NUL), or built by
 * the caller from parts it checked. A field that breaks that contract corrupts the response:
 * when in doubt, use ag_http_response_start.
 */
int ag_http_response_pass(struct ag_http_exchange *ex, int status,
                          const struct ag_http_header *headers, size_t count,
                          int64_t content_length);

/*
 * Queues body bytes (copied). Returns 0; AG_ERANGE past the declared Content-Length or the
 * output buffer's hard maximum; AG_ECLOSED before start, after end, or when the connection is
 * gone. Check ag_http_response_congested and wait for on_drain before writing much more.
 */
int ag_http_response_write(struct ag_http_exchange *ex, const void *data, size_t len);

/*
 * Ends the response. A Content-Length response that is short of its length cannot be framed:
 * the connection closes after what was written. Returns 0 or AG_ECLOSED.
 */
int ag_http_response_end(struct ag_http_exchange *ex);

/*
 * Gives up on the response (a proxy whose upstream failed mid-body): what is queued is still
 * sent, then the connection closes without the response being framed as complete (no last
 * chunk, or short of its Content-Length), so the client sees the truncation. on_close then
 * reports completed = false. Before the start it just closes the connection. Returns 0, or
 * AG_ECLOSED after the end or when the connection is gone.
 */
int ag_http_response_abort(struct ag_http_exchange *ex);

/* True while queued output is over the high watermark (64 KiB). */
bool ag_http_response_congested(const struct ag_http_exchange *ex);

/* A whole response in one call: status, Content-Type (may be NULL) and body. As above. */
int ag_http_respond(struct ag_http_exchange *ex, int status, const char *content_type,
                    const void *body, size_t len);

/*
 * An RFC 9457 application/problem+json response: {"type":"about:blank","title":<reason>,
 * "status":N,"detail":detail}. detail is JSON-escaped; NULL leaves it out.
 */
int ag_http_respond_problem(struct ag_http_exchange *ex, int status, const char *detail);

/*
 * As ag_http_respond_problem with up to 8 extra header fields (Allow for a 405,
 * WWW-Authenticate for a 401, Retry-After for a 429...). AG_EINVAL for more than 8.
 */
int ag_http_respond_problem_with(struct ag_http_exchange *ex, int status, const char *detail,
                                 const struct ag_http_header *headers, size_t count);

#endif
