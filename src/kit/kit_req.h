/* The kit's request object: what a handler reads (a copy of the head, the body) and its answer. */
#ifndef KIT_REQ_H
#define KIT_REQ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/http_parse.h"
#include "core/jwt.h"
#include "kit/kit.h"
#include "kit/kit_router.h"

enum {
    KIT_REQ_ID_MAX = 128,          /* a request id is 1..128 of [A-Za-z0-9._-] */
    KIT_RESP_HEADERS_MAX = 16,     /* kit_resp_header fields per answer */
    KIT_REQ_QUERY_MAX = 64,        /* query parameters kept; later ones are ignored */
    KIT_REQ_PEER_MAX = 46,         /* an IPv6 address as text */
    KIT_PROBLEM_DETAIL_MAX = 1024, /* bytes of a problem detail (longer ones are cut) */
};

struct kit_query_param {
    const char *name;  /* decoded, NUL-terminated */
    const char *value; /* decoded; NULL when the value held a bad %-escape */
};

struct kit_param {
    const char *name;  /* as in the template */
    const char *value; /* percent-decoded */
};

struct kit_resp_field {
    char *name;
    char *value;
};

/*
 * One request. Everything the handler reads is copied out of the connection's buffers when the
 * request is made, so a handler thread never touches memory the I/O loop owns. The kit's job
 * (kit.c) embeds it; tests make one on the stack with kit_req_init.
 */
struct kit_req {
    struct kit_app *app;
    struct kit_db *db;
    const struct kit_route *route;
    const char *default_tenant; /* for kit_req_tenant; NULL reads "default" */
    void *job;                  /* the kit's job holding it (kit.c); NULL outside a server */
    bool rerun;                 /* a copy run by kit_req_rerun_later: its answer goes nowhere */

    char *arena; /* one block: method, path, query, header names and values, NUL-terminated */
    const char *method; /* "GET"... (HEAD reads "GET") */
    bool head;          /* the client sent HEAD */
    struct ag_str path, query;
    struct ag_http_header *headers;
    size_t header_count;
    struct kit_query_param query_params[KIT_REQ_QUERY_MAX];
    size_t query_count;
    struct kit_param params[KIT_ROUTER_MAX_PARAMS];
    size_t param_count;
    char *param_block; /* the decoded params */
    struct ag_buf body;
    json_t *json;   /* the decoded body, once kit_req_json ran */
    json_t *errors; /* kit_req_invalid entries, an array; NULL until the first */

    char request_id[KIT_REQ_ID_MAX + 1];
    char peer[KIT_REQ_PEER_MAX];
    struct ag_str token; /* the bearer token in the arena, or empty */
    bool authenticated;  /* claims hold a verified token */
    struct ag_jwt_claims claims;

    /* the answer */
    int status; /* 0 until answered */
    struct kit_resp_field resp_fields[KIT_RESP_HEADERS_MAX];
    size_t resp_field_count;
    char *resp_type; /* Content-Type, or NULL */
    char *resp_body;
    size_t resp_len;
};

/*
 * Fills req (caller memory, overwritten) with copies of method, path, query and headers, and
 * decodes the query (first KIT_REQ_QUERY_MAX parameters; '+' is a space). max_body bounds the
 * body (kit_req_body_append). The request id is taken from X-Request-Id when it is 1..128 of
 * [A-Za-z0-9._-], else a new UUIDv7. Returns 0, or AG_ENOMEM (req then holds nothing).
 */
int kit_req_init(struct kit_req *req, struct ag_str method, struct ag_str path, struct ag_str query,
                 const struct ag_http_header *headers, size_t count, size_t max_body);

/* Frees everything req holds; it may be initialised again. Safe on a zeroed struct. */
void kit_req_release(struct kit_req *req);

/* Appends body bytes. Returns 0, AG_ERANGE past max_body, AG_ENOMEM. */
int kit_req_body_append(struct kit_req *req, const void *data, size_t len);

/*
 * Sets the matched route and copies its params, percent-decoded. Returns 0, AG_EINVAL for a
 * param that does not decode (a bad escape, an encoded NUL), AG_ENOMEM.
 */
int kit_req_set_match(struct kit_req *req, const struct kit_match *m);

/* True when s (len bytes) is a well-formed request id: 1..128 of [A-Za-z0-9._-]. */
bool kit_request_id_valid(struct ag_str s);

/*
 * Forgets the answer set so far (fields, type, body, status), so that another can be given:
 * the kit replaces a handler's answer with a 500 when the handler left a transaction open.
 */
void kit_req_unanswer(struct kit_req *req);

/*
 * Answers a problem with extra fields: errors (may be NULL; taken) becomes errors[], headers
 * (count ≤ 4) are added. As kit_resp_problem otherwise.
 */
int kit_resp_problem_ext(struct kit_req *req, int status, json_t *errors,
                         const struct ag_http_header *headers, size_t count, const char *detail);

/* A copy of s (len bytes) where every byte that is not well-formed UTF-8 becomes U+FFFD. */
char *kit_utf8_sanitize(const char *s, size_t len);

#endif
