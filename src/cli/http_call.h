/* JSON calls to a service for the agora commands: one at a time or a few at once, on one thread. */
#ifndef CLI_HTTP_CALL_H
#define CLI_HTTP_CALL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/*
 * A session sends requests to one base URL over keep-alive connections (the core HTTP client on
 * a private event loop). Calls run only while the caller waits (http_session_wait or
 * http_session_call), so a session never needs a thread of its own.
 */
struct http_session;

/* An answer. Owned by the session during a completion callback; by the caller after a call. */
struct http_reply {
    int status;      /* the HTTP status; 0 when no answer came (error says why) */
    json_t *json;    /* the body parsed as JSON; NULL when empty or not JSON */
    char *body;      /* the raw body, NUL-terminated ("" when empty) */
    size_t body_len; /* bytes of body */
    char error[512]; /* status 0: the failure ("connection refused ..."); else "" */
};

/* Frees what a reply holds (safe on a zeroed one) and zeroes it. */
void http_reply_release(struct http_reply *r);

/*
 * One line saying why reply is not the expected answer: "HTTP 409: <detail of the
 * problem+json>" (the title when no detail, the start of the body when not JSON), or the
 * transport error. Writes a NUL-terminated string into out.
 */
void http_reply_describe(const struct http_reply *r, char *out, size_t size);

/*
 * Opens a session to base_url ("http://host[:port]" with an optional trailing '/'; host a name,
 * an IPv4 address or [v6]). token, when not NULL, is sent as "Authorization: Bearer <token>"
 * (copied). Each call must end within timeout_ms (connect 5 s). Nothing is connected yet.
 * Returns 0 and *out; AG_EINVAL for another URL form (err says so); AG_ENOMEM; AG_ESYS.
 */
int http_session_new(const char *base_url, const char *token, uint32_t timeout_ms,
                     struct http_session **out, struct ag_err *err);

/* Cancels what is in flight (no callback fires) and frees the session. NULL is allowed. */
void http_session_free(struct http_session *s);

/*
 * Completion of a started call: reply is valid during the callback (take reply->json by
 * setting it to NULL). The callback may start further calls on s.
 */
typedef void (*http_done_fn)(struct http_session *s, void *ctx, struct http_reply *reply);

/*
 * Starts method path ("/api/v1/..."; visible ASCII) with body (a JSON value sent as
 * application/json, or NULL for none); done(s, ctx, reply) runs during a later wait, once.
 * Returns 0; AG_EINVAL (a bad path, method or body), AG_ENOMEM: then done never runs.
 */
int http_session_start(struct http_session *s, const char *method, const char *path,
                       const json_t *body, http_done_fn done, void *ctx, struct ag_err *err);

/* Runs the session until no call is in flight. Returns 0, or AG_ESYS when the loop failed. */
int http_session_wait(struct http_session *s);

/*
 * A blocking call: starts it, waits until it completes and moves the answer into *reply
 * (release it). Other calls in flight progress meanwhile. Returns 0 when an answer came (any
 * status); AG_EUNAVAIL when none did (reply->error says why); the codes of http_session_start.
 */
int http_session_call(struct http_session *s, const char *method, const char *path,
                      const json_t *body, struct http_reply *reply, struct ag_err *err);

#endif
