/* Non-blocking HTTP/1.1 client on an ag_loop: keep-alive pools, timeouts, streaming both ways. */
#ifndef AG_HTTP_CLIENT_H
#define AG_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/http_parse.h"
#include "core/http_body.h"
#include "core/loop.h"

/*
 * A client belongs to one loop and is used only from that loop's thread (one per worker; no
 * locks). It keeps, per "HOST:PORT" address, a bounded pool of idle keep-alive connections;
 * an idle connection the server closed (or wrote to) is dropped, never used, and one idle
 * longer than idle_timeout_ms is closed. A connection goes back to its pool only when both
 * messages ended cleanly and the response keeps it alive (not Connection: close, not a body
 * delimited by the close).
 *
 * A call is one request and its response on one connection at a time. Its callbacks run on
 * the loop's thread, never inside one of the caller's own calls into this API (work the caller
 * starts is deferred to the loop), and never concurrently. Every call ends exactly once, with
 *   - on_body(last = true) after on_response: the response arrived whole, or
 *   - on_error: the call failed, possibly after on_response and some body pieces, or
 *   - ag_http_call_cancel: silently.
 * After that end no callback fires for it and the client frees it: the call pointer is invalid
 * once that last callback returns (or once ag_http_call_cancel returns). A caller streaming a
 * request body must stop writing then, even if its body was not finished (a server may answer
 * early).
 *
 * Retry: a call whose pooled (reused) connection fails before any response byte arrived,
 * because the server closed or reset it, is resent once on a fresh connection, transparently,
 * when resending cannot repeat an effect: its method is idempotent (GET, HEAD, OPTIONS, TRACE,
 * PUT, DELETE) or none of its body had been sent, and at most 64 KiB of it had been sent (the
 * bytes kept to resend). Otherwise, and on a fresh connection, it fails with AG_ECLOSED.
 */
struct ag_http_client;
struct ag_http_call;

/*
 * Failure codes delivered to on_error beyond those of err.h (the client's own, numbered far
 * from err.h's range). The others it delivers: AG_ETIMEDOUT (first-byte or response timeout),
 * AG_EPROTO (malformed response, or one over the configured limits), AG_ECLOSED (the connection
 * was closed or reset after it was made and before the response ended), AG_ENOMEM.
 */
enum {
    AG_HTTP_ECONNECT = -100,         /* the connection could not be made (refused, unreachable) */
    AG_HTTP_ECONNECT_TIMEOUT = -101, /* the connection was not made within connect_timeout_ms */
};

/* A static name for a code on_error may deliver ("AG_HTTP_ECONNECT", else ag_err_name's). */
const char *ag_http_client_err_name(int code);

/*
 * Timeouts count from the start of sending (after the connect, or when a pooled connection is
 * taken); 0 disables the first-byte and response bounds.
 */
struct ag_http_client_config {
    size_t max_idle_per_host;       /* idle keep-alive connections kept per address; 0: none */
    uint32_t connect_timeout_ms;    /* TCP connect; at least 1 */
    uint32_t first_byte_timeout_ms; /* until the first response byte; 0: none */
    uint32_t response_timeout_ms;   /* until the last response byte, paused or not; 0: none */
    uint32_t idle_timeout_ms;       /* a pooled connection idle this long is closed; >= 1 */
    struct ag_http_limits limits;   /* response head limits; max_body bounds the decoded body */
};

/*
 * The defaults: 32 idle connections per host, connect 5 s, no first-byte bound, response 60 s,
 * idle 30 s (below the usual server keep-alive timeouts, so that the client closes first), and
 * ag_http_default_limits.
 */
void ag_http_client_config_defaults(struct ag_http_client_config *cfg);

/*
 * Creates a client that runs on loop (which must outlive it). cfg is copied. Returns 0 and
 * *out; AG_EINVAL (err says which setting) for a zero connect or idle timeout or limits out of
 * range (max_headers 1 to AG_HTTP_HEADERS_CAP, max_request_line 16 B to 1 MiB, max_header_bytes
 * 64 B to 1 MiB); AG_ENOMEM.
 */
int ag_http_client_new(struct ag_loop *loop, const struct ag_http_client_config *cfg,
                       struct ag_http_client **out, struct ag_err *err);

/*
 * Cancels every call in flight (their callbacks never fire), closes every connection and frees
 * the client. Call it from the loop's thread, but not from inside one of this client's
 * callbacks. A connection with a deferred task still queued on the loop is released when the
 * loop runs its defers (ag_loop_run or ag_loop_free), so free the client before the loop.
 * NULL is allowed.
 */
void ag_http_client_free(struct ag_http_client *client);

/* Counters of a client, for metrics and tests. */
struct ag_http_client_stats {
    size_t connections; /* open or opening connections, idle ones included */
    size_t idle;        /* connections waiting in the pools */
    size_t calls;       /* calls in flight */
    uint64_t connects;  /* connections started since the client was made */
    uint64_t reuses;    /* calls sent on a pooled connection */
    uint64_t retries;   /* calls resent on a fresh connection after a pooled one failed */
};

/* Fills *out with the client's counters. */
void ag_http_client_stats(const struct ag_http_client *client, struct ag_http_client_stats *out);

/* What to send. Everything is copied by ag_http_client_request; nothing is kept. */
struct ag_http_client_request {
    const char *address;  /* "HOST:PORT" to connect to; resolved once per client and cached */
    struct ag_str method; /* a token: "GET", "POST" ... */
    struct ag_str target; /* origin-form, "/items?id=3": visible ASCII (0x21-0x7e) only */
    struct ag_str host;   /* the Host field; empty: the address as given */
    const struct ag_http_header *headers; /* extra fields, sent in order */
    size_t header_count;
    /*
     * How many of the first fields are sendable by construction and need no check (a proxy):
     * taken unchanged from a message that ag_http_parse_* accepted, or built by the caller from
     * parts it checked. The others are checked: a token name, no CR, LF or NUL in the value.
     * Reserved fields (Host, Content-Length...) are refused either way.
     */
    size_t checked_headers;
    /*
     * The request body: 0 for none (POST, PUT and PATCH then send Content-Length: 0), a length
     * > 0 to be written with ag_http_call_write (Content-Length), or AG_HTTP_LENGTH_UNKNOWN to be
     * written and then ended with ag_http_call_end (chunked). Ignored when body.p is set.
     */
    int64_t body_length;
    struct ag_str body; /* when body.p != NULL: the whole body, sent with Content-Length */
    uint32_t first_byte_timeout_ms; /* 0: the client's setting */
    uint32_t response_timeout_ms;   /* 0: the client's setting */
};

/*
 * The caller's side of a call. on_response, on_body and on_error are required; on_drain is
 * optional. Each receives the call, whose ag_http_call_ctx is the ctx given to the request.
 */
struct ag_http_call_ops {
    /*
     * The final response head (1xx interim responses are skipped). resp->body is the effective
     * framing (AG_HTTP_BODY_NONE for HEAD, 204, 304) and resp->keep_alive says whether the
     * connection may be reused. resp and its slices are valid during the callback only.
     */
    void (*on_response)(struct ag_http_call *call, const struct ag_http_response *resp);
    /*
     * A piece of the decoded body, in order; last is true exactly once, at the end (data may
     * then be empty; a bodiless response gets one empty last piece). data is valid during the
     * callback only. After the last piece the call is freed.
     */
    void (*on_body)(struct ag_http_call *call, struct ag_str data, bool last);
    /*
     * The request bytes queued for sending went under the low watermark (16 KiB) after a write
     * left ag_http_call_congested true: write more. Optional.
     */
    void (*on_drain)(struct ag_http_call *call);
    /*
     * The call failed with code (see the codes above) and message (one sentence, valid during
     * the callback). ag_http_call_response_started tells whether any response byte had
     * arrived. After it returns the call is freed.
     */
    void (*on_error)(struct ag_http_call *call, int code, const char *message);
};

/*
 * Starts a call: picks a live idle connection for req->address or opens a new one, and sends
 * the head (Host, the caller's fields, then Content-Length or Transfer-Encoding) and the whole
 * body if given. Nothing fires before this returns; a failure to connect arrives as on_error.
 *
 * Returns 0 and *out (owned by the client, see the top of this file; ops and ctx stay the
 * caller's and must outlive the call). Returns, with no call made and no callback ever:
 * AG_EINVAL for a missing address or op, an address that does not parse or resolve (a name is
 * resolved with getaddrinfo, which blocks, on its first use only), a method that is not a
 * token, an empty target or host or one with a byte outside 0x21-0x7e, a field value with CR,
 * LF or NUL, a field name that is not a token, a field the client owns (Host,
 * Content-Length, Transfer-Encoding, Connection, Upgrade), a negative body_length other than
 * AG_HTTP_LENGTH_UNKNOWN; AG_ERANGE for a head or body over 64 MiB; AG_ENOMEM.
 * err, when not NULL, says which.
 */
int ag_http_client_request(struct ag_http_client *client, const struct ag_http_client_request *req,
                           const struct ag_http_call_ops *ops, void *ctx, struct ag_http_call **out,
                           struct ag_err *err);

/*
 * Queues len bytes of a streamed request body (copied; sent as one chunk when chunked). len 0
 * does nothing. With a Content-Length, the body is complete once that many bytes are written.
 * Returns 0; AG_ERANGE past the Content-Length or when the queue would pass 64 MiB (check
 * ag_http_call_congested and wait for on_drain instead); AG_ECLOSED when the call has no body
 * to stream, its body was ended, or it is ending (inside its last callback); AG_ENOMEM.
 */
int ag_http_call_write(struct ag_http_call *call, const void *data, size_t len);

/*
 * Ends a streamed body: the last chunk for a chunked body; for a Content-Length body, a check
 * that every byte was written. Returns 0; AG_ERANGE when a Content-Length body is short (the
 * call goes on; write the rest or cancel); AG_ECLOSED as for ag_http_call_write.
 */
int ag_http_call_end(struct ag_http_call *call);

/* True while more than 64 KiB of request bytes wait to be sent: stop writing until on_drain. */
bool ag_http_call_congested(const struct ag_http_call *call);

/*
 * Pauses (true) or resumes (false) the response: while paused no on_response or on_body fires
 * and the connection is not read, so the server is held back by TCP flow control. Timeouts
 * keep running. Harmless on an ending call.
 */
void ag_http_call_pause(struct ag_http_call *call, bool paused);

/*
 * Cancels the call: no callback fires for it afterwards and it is freed (after the current
 * callback when called from one of its own). Its connection goes back to the pool when that
 * is safe (nothing of the call was sent or received yet), else it is closed. Harmless inside
 * the call's last callback (on_error, or on_body with last).
 */
void ag_http_call_cancel(struct ag_http_call *call);

/* The ctx given to ag_http_client_request. */
void *ag_http_call_ctx(const struct ag_http_call *call);

/* True once any byte of the response has arrived (meaningful in on_error: 502 vs retry). */
bool ag_http_call_response_started(const struct ag_http_call *call);

#endif
