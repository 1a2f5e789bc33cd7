/* Incremental, in-place HTTP/1.1 message-head parser (RFC 9110/9112), strict by design. */
#ifndef AG_HTTP_PARSE_H
#define AG_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

/* Field lines a parsed head can hold; the configurable limit may not exceed it. */
#define AG_HTTP_HEADERS_CAP 128

struct ag_http_limits {
    size_t max_request_line; /* request or status line without CRLF; default 8 KiB -> 414 */
    size_t max_header_bytes; /* all field lines with their CRLFs; default 32 KiB -> 431 */
    size_t max_headers;      /* field lines; default 100, at most AG_HTTP_HEADERS_CAP -> 431 */
    uint64_t max_body;       /* Content-Length or decoded chunked size; -> 413 */
};

/* The defaults named above, with a 10 MiB body limit. */
extern const struct ag_http_limits ag_http_default_limits;

/*
 * Checks limits for use: max_headers 1..AG_HTTP_HEADERS_CAP, max_request_line 16 B..1 MiB,
 * max_header_bytes 64 B..1 MiB. Returns 0, or AG_EINVAL with err naming the limit.
 */
int ag_http_limits_check(const struct ag_http_limits *limits, struct ag_err *err);

struct ag_http_header {
    struct ag_str name;  /* as received (case preserved); compare with ag_str_eq_nocase */
    struct ag_str value; /* without leading and trailing whitespace */
};

enum ag_http_body_kind {
    AG_HTTP_BODY_NONE,        /* no body */
    AG_HTTP_BODY_LENGTH,      /* exactly content_length bytes */
    AG_HTTP_BODY_CHUNKED,     /* chunked transfer coding */
    AG_HTTP_BODY_UNTIL_CLOSE, /* responses only: body ends when the connection closes */
};

/* A parsed request head. Slices point into the caller's buffer. */
struct ag_http_request {
    struct ag_str method;
    struct ag_str target; /* the whole request-target */
    struct ag_str path;   /* target up to '?' (origin-form) or the path of absolute-form ("/"
                             when it has none, a static string); empty for CONNECT */
    struct ag_str query;  /* after '?', without it; empty when absent */
    int version;          /* 10 or 11 */
    struct ag_str host;   /* the Host field value (may be empty) */
    enum ag_http_body_kind body;
    uint64_t content_length; /* for AG_HTTP_BODY_LENGTH */
    bool keep_alive;         /* version default adjusted by Connection */
    bool expect_continue;    /* Expect: 100-continue on HTTP/1.1 */
    size_t head_len;         /* bytes of the head including the final empty line */
    size_t header_count;
    struct ag_http_header headers[AG_HTTP_HEADERS_CAP];
};

/* A parsed response head (the client side). Slices point into the caller's buffer. */
struct ag_http_response {
    int version; /* 10 or 11 */
    int status;  /* 100..599 */
    struct ag_str reason;
    enum ag_http_body_kind body; /* as framed by the fields; see ag_http_response_body */
    uint64_t content_length;
    bool keep_alive; /* by version and Connection only; a close-delimited body also closes */
    size_t head_len;
    size_t header_count;
    struct ag_http_header headers[AG_HTTP_HEADERS_CAP];
};

/*
 * Parser state between calls. A refusal leaves status set to the HTTP status to answer
 * (400, 413, 414, 417, 431, 501 or 505) and detail to a static sentence saying why.
 */
struct ag_http_parser {
    const struct ag_http_limits *limits;
    const char *base;  /* buffer seen by the previous call, to rebase slices when it moved */
    size_t pos;        /* bytes examined so far */
    size_t line_start; /* start of the line being received */
    size_t header_bytes;
    unsigned state;
    bool seen_host, seen_length, seen_te, te_chunked_last;
    int status;
    const char *detail;
};

/* Prepares p for a new message under limits (which must outlive the parse). */
void ag_http_parser_init(struct ag_http_parser *p, const struct ag_http_limits *limits);

/*
 * Parses a request head from buf[0..len), where buf holds every byte received for this message
 * so far (call again with the same start and a larger len when more arrives; the buffer may
 * move between calls). Up to a few empty lines before the request line are skipped.
 *
 * Returns the head length (> 0) once the head is complete and valid: req is filled and its
 * slices point into buf. Returns AG_EAGAIN when more bytes are needed (req is partly filled
 * and not to be used). Returns AG_EPROTO on a refusal, with p->status and p->detail set; the
 * connection should then be answered with that status and closed.
 *
 * Refused: a method that is not a token; a target with a byte outside RFC 3986, a bad
 * %-escape, a fragment, or a form that does not fit the method; any space but the two single
 * separators; a malformed version (400) or one other than 1.0/1.1 (505); a bare CR or LF;
 * obs-fold; whitespace before a colon; a field name that is not a token; NUL or another control
 * byte in a value; an empty, non-numeric, repeated or listed Content-Length; Content-Length with
 * Transfer-Encoding; Transfer-Encoding in HTTP/1.0 or whose last coding is not chunked (400);
 * a coding other than chunked (501); chunked twice; a missing Host on HTTP/1.1 or a repeated
 * Host (400); an Expect other than 100-continue (417); a request line over the limit (414);
 * header bytes or count over the limit (431); a Content-Length over max_body (413).
 */
int ag_http_parse_request(struct ag_http_parser *p, struct ag_http_request *req, const char *buf,
                          size_t len);

/*
 * As ag_http_parse_request for a response head. resp->body is the framing the fields give;
 * the caller applies ag_http_response_body for HEAD requests and bodiless statuses.
 */
int ag_http_parse_response(struct ag_http_parser *p, struct ag_http_response *resp, const char *buf,
                           size_t len);

/*
 * The body framing of a response to a request with method, per RFC 9112 §6.3: none for HEAD,
 * 1xx, 204 and 304, otherwise what the fields say.
 */
enum ag_http_body_kind ag_http_response_body(const struct ag_http_response *resp,
                                             struct ag_str method);

/* RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE (repeating one is sending it once). */
bool ag_http_method_idempotent(struct ag_str method);

/* The value of the first field named name (case-insensitive), or a slice with p == NULL. */
struct ag_str ag_http_header_get(const struct ag_http_header *headers, size_t count,
                                 struct ag_str name);

/* The standard reason phrase for status ("Not Found"), or "Unknown". */
const char *ag_http_reason(int status);

/* True when c may appear in a token (RFC 9110 §5.6.2). */
bool ag_http_is_tchar(unsigned char c);

/* True when s is a non-empty token: a valid method or field name. */
bool ag_http_is_token(struct ag_str s);

/*
 * True when a field value to be sent holds no CR, LF or NUL, so that it cannot end its line
 * early (header injection, response splitting).
 */
bool ag_http_field_value_safe(struct ag_str v);

#endif
