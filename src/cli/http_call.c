/* JSON calls to a service for the agora commands: one at a time or a few at once, on one thread. */
#include "cli/http_call.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "core/buf.h"
#include "core/http_client.h"
#include "core/loop.h"
#include "core/banned.h"

enum {
    ADDRESS_MAX = 300,
    REPLY_BODY_MAX = 16 * 1024 * 1024, /* the largest answer kept (a page of a list is far less) */
    CONNECT_TIMEOUT_MS = 5000,
};

struct http_session {
    struct ag_loop *loop;
    struct ag_http_client *client;
    char address[ADDRESS_MAX]; /* "host:port", also the Host field */
    char *authorization;       /* "Bearer <token>", or NULL */
    size_t in_flight;
    struct pending *calls; /* in flight, to free them when the session goes first */
};

/* One call in flight: what its callbacks fill. */
struct pending {
    struct pending *prev, *next;
    struct http_session *session;
    http_done_fn done;
    void *ctx;
    struct http_reply reply;
    struct ag_buf body;
};

void http_reply_release(struct http_reply *r)
{
    json_decref(r->json);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

void http_reply_describe(const struct http_reply *r, char *out, size_t size)
{
    if (r->status == 0) {
        snprintf(out, size, "%s", r->error[0] ? r->error : "no answer");
        return;
    }
    const char *detail = json_string_value(json_object_get(r->json, "detail"));
    if (!detail || !*detail)
        detail = json_string_value(json_object_get(r->json, "title"));
    if (detail && *detail) {
        snprintf(out, size, "HTTP %d: %s", r->status, detail);
        return;
    }
    /* Not a problem+json: the start of the body, on one line. */
    char excerpt[160];
    size_t n = 0;
    for (size_t i = 0; r->body && i < r->body_len && n < sizeof(excerpt) - 1; i++)
        excerpt[n++] = r->body[i] == '\n' || r->body[i] == '\r' ? ' ' : r->body[i];
    excerpt[n] = '\0';
    snprintf(out, size, "HTTP %d%s%s", r->status, n ? ": " : "", excerpt);
}

/*
 * "http://host[:port][/]" into "host:port" ("[v6]:port"). The path is refused: every command
 * names full paths, and a prefix would silently change them.
 */
static int base_url_address(const char *url, char *out, size_t size, struct ag_err *err)
{
    char host[256], port[8];
    const char *path;
    if (cli_url_split(url, host, sizeof host, port, sizeof port, &path) < 0 || strchr(host, '@'))
        return ag_err_set(err, AG_EINVAL, "%s: expected http://host[:port]", url);
    if (strcmp(path, "/") != 0)
        return ag_err_set(err, AG_EINVAL, "%s: expected http://host[:port] without a path", url);
    int n = snprintf(out, size, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
    if (n < 0 || (size_t)n >= size)
        return ag_err_set(err, AG_EINVAL, "%s: the host is too long", url);
    return 0;
}

int http_session_new(const char *base_url, const char *token, uint32_t timeout_ms,
                     struct http_session **out, struct ag_err *err)
{
    struct ag_http_client_config cfg;
    int rc = 0;
    struct http_session *s = calloc(1, sizeof(*s));
    *out = NULL;
    if (!s)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    if ((rc = base_url_address(base_url, s->address, sizeof(s->address), err)) < 0)
        goto out;
    if (token) {
        size_t len = strlen("Bearer ") + strlen(token) + 1;
        s->authorization = malloc(len);
        if (!s->authorization) {
            rc = ag_err_set(err, AG_ENOMEM, "out of memory");
            goto out;
        }
        snprintf(s->authorization, len, "Bearer %s", token);
    }
    if ((rc = ag_loop_new(&s->loop, err)) < 0)
        goto out;
    ag_http_client_config_defaults(&cfg);
    cfg.connect_timeout_ms = CONNECT_TIMEOUT_MS;
    cfg.response_timeout_ms = timeout_ms;
    cfg.limits.max_body = REPLY_BODY_MAX;
    rc = ag_http_client_new(s->loop, &cfg, &s->client, err);
out:
    if (rc < 0)
        http_session_free(s);
    else
        *out = s;
    return rc;
}

void http_session_free(struct http_session *s)
{
    if (!s)
        return;
    /* Freeing the client cancels its calls silently: their records are freed here. */
    ag_http_client_free(s->client);
    ag_loop_free(s->loop);
    while (s->calls) {
        struct pending *p = s->calls;
        s->calls = p->next;
        http_reply_release(&p->reply);
        ag_buf_release(&p->body);
        free(p);
    }
    free(s->authorization);
    free(s);
}

/*
 * Ends a call: hands the reply to its owner and frees the record. The loop stops after every
 * completion, so that a waiting caller can look at what it was waiting for.
 */
static void pending_finish(struct pending *p)
{
    struct http_session *s = p->session;
    if (p->prev)
        p->prev->next = p->next;
    else
        s->calls = p->next;
    if (p->next)
        p->next->prev = p->prev;
    if (!p->reply.body) {
        /* The body as a C string: its bytes plus a NUL (the empty string for no body). */
        p->reply.body = malloc(p->body.len + 1);
        if (p->reply.body) {
            if (p->body.len)
                memcpy(p->reply.body, p->body.data + p->body.off, p->body.len);
            p->reply.body[p->body.len] = '\0';
            p->reply.body_len = p->body.len;
        }
    }
    if (p->reply.status && p->reply.body_len)
        p->reply.json = json_loadb(p->reply.body, p->reply.body_len, JSON_DECODE_ANY, NULL);
    s->in_flight--;
    p->done(s, p->ctx, &p->reply);
    http_reply_release(&p->reply);
    ag_buf_release(&p->body);
    free(p);
    ag_loop_stop(s->loop);
}

static void on_response(struct ag_http_call *call, const struct ag_http_response *resp)
{
    struct pending *p = ag_http_call_ctx(call);
    p->reply.status = resp->status;
}

static void on_body(struct ag_http_call *call, struct ag_str data, bool last)
{
    struct pending *p = ag_http_call_ctx(call);
    if (data.len && ag_buf_append(&p->body, data.p, data.len) < 0 && !p->reply.error[0]) {
        /* the client's max_body keeps it under REPLY_BODY_MAX: only memory can run out */
        p->reply.status = 0;
        snprintf(p->reply.error, sizeof(p->reply.error), "out of memory reading the answer");
    }
    if (last)
        pending_finish(p);
}

static void on_error(struct ag_http_call *call, int code, const char *message)
{
    struct pending *p = ag_http_call_ctx(call);
    struct http_session *s = p->session;
    p->reply.status = 0;
    (void)code; /* the message says it in words */
    snprintf(p->reply.error, sizeof(p->reply.error), "http://%.100s: %.300s", s->address, message);
    pending_finish(p);
}

static const struct ag_http_call_ops CALL_OPS = {
    .on_response = on_response,
    .on_body = on_body,
    .on_error = on_error,
};

int http_session_start(struct http_session *s, const char *method, const char *path,
                       const json_t *body, http_done_fn done, void *ctx, struct ag_err *err)
{
    struct ag_http_header headers[3];
    size_t header_count = 0;
    char *text = NULL;
    struct ag_http_call *call = NULL;
    int rc = 0;
    struct pending *p = calloc(1, sizeof(*p));
    if (!p)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    p->session = s;
    p->done = done;
    p->ctx = ctx;
    ag_buf_init(&p->body, REPLY_BODY_MAX);
    headers[header_count++] = (struct ag_http_header){AG_STR("Accept"), AG_STR("application/json")};
    if (s->authorization)
        headers[header_count++] =
            (struct ag_http_header){AG_STR("Authorization"), ag_str_from_cstr(s->authorization)};
    struct ag_http_client_request req = {
        .address = s->address,
        .method = ag_str_from_cstr(method),
        .target = ag_str_from_cstr(path),
        .headers = headers,
    };
    if (body) {
        text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text) {
            rc = ag_err_set(err, AG_EINVAL, "cannot serialise the request body");
            goto out;
        }
        headers[header_count++] =
            (struct ag_http_header){AG_STR("Content-Type"), AG_STR("application/json")};
        req.body = ag_str_from_cstr(text);
    }
    req.header_count = header_count;
    if ((rc = ag_http_client_request(s->client, &req, &CALL_OPS, p, &call, err)) < 0)
        goto out;
    s->in_flight++;
    p->next = s->calls;
    if (s->calls)
        s->calls->prev = p;
    s->calls = p;
out:
    free(text);
    if (rc < 0) {
        ag_buf_release(&p->body);
        free(p);
    }
    return rc;
}

int http_session_wait(struct http_session *s)
{
    while (s->in_flight > 0) {
        int rc = ag_loop_run(s->loop);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The completion of a blocking call: moves the reply out to the waiting caller. */
static void call_done(struct http_session *s, void *ctx, struct http_reply *reply)
{
    (void)s;
    struct http_reply *out = ctx;
    *out = *reply;
    memset(reply, 0, sizeof(*reply));
}

int http_session_call(struct http_session *s, const char *method, const char *path,
                      const json_t *body, struct http_reply *reply, struct ag_err *err)
{
    memset(reply, 0, sizeof(*reply));
    reply->status = -1; /* not completed yet */
    int rc = http_session_start(s, method, path, body, call_done, reply, err);
    if (rc < 0) {
        reply->status = 0;
        return rc;
    }
    /* Other calls may be in flight and complete first: run until this one did. */
    while (reply->status < 0) {
        if ((rc = ag_loop_run(s->loop)) < 0)
            return ag_err_set(err, rc, "the event loop failed");
    }
    if (reply->status == 0) {
        /* Only the reason stays: nothing to release for a call that got no answer. */
        json_decref(reply->json);
        free(reply->body);
        reply->json = NULL;
        reply->body = NULL;
        reply->body_len = 0;
        return ag_err_set(err, AG_EUNAVAIL, "%s", reply->error);
    }
    return 0;
}
