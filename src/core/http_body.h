/* HTTP/1.1 message-body framing: Content-Length, chunked decoding (in place) and encoding. */
#ifndef AG_HTTP_BODY_H
#define AG_HTTP_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/http_parse.h"

/* Bytes a chunk-size line (digits and extensions) or the trailer section may take. */
#define AG_HTTP_CHUNK_LINE_MAX 4096
#define AG_HTTP_TRAILERS_MAX   8192

struct ag_http_body_reader {
    enum ag_http_body_kind kind;
    uint64_t remaining; /* LENGTH: bytes left in the body; CHUNKED: bytes left in this chunk */
    uint64_t total;     /* body bytes delivered so far */
    uint64_t max;       /* limit on total */
    size_t line_bytes;  /* bytes of the current chunk-size line or trailer section */
    unsigned state;
    unsigned digits;
    int status;         /* after a refusal: 400 or 413 */
    const char *detail; /* after a refusal: why, a static sentence */
};

/*
 * Prepares r for a body framed as kind (content_length for AG_HTTP_BODY_LENGTH) whose decoded
 * size may not pass max.
 */
void ag_http_body_reader_init(struct ag_http_body_reader *r, enum ag_http_body_kind kind,
                              uint64_t content_length, uint64_t max);

/*
 * Decodes the body bytes in in[0..len). Sets *consumed to the input bytes used and *data to the
 * next piece of body: a slice of in (decoding is in place), possibly empty. Call again with
 * in + *consumed while input remains and the result is 0.
 *
 * Returns 1 when the body is complete (bytes after its end are not consumed), 0 when more may
 * follow, AG_EPROTO when the input is refused: r->status is 400 (a malformed chunk size, line,
 * extension or trailer, or a chunk size of more than 16 hex digits) or 413 (the body passes
 * max, which for a Content-Length body is known before any byte).
 * AG_HTTP_BODY_UNTIL_CLOSE never completes here; its end is the peer closing.
 */
int ag_http_body_read(struct ag_http_body_reader *r, const char *in, size_t len, size_t *consumed,
                      struct ag_str *data);

/* True once the body is complete. */
bool ag_http_body_done(const struct ag_http_body_reader *r);

/* Writes the chunk header for n data bytes ("1f4\r\n") into out; returns its length. */
size_t ag_http_chunk_header(char out[20], uint64_t n);

/* A body length that is not known in advance: chunked (or close-delimited for HTTP/1.0). */
#define AG_HTTP_LENGTH_UNKNOWN INT64_MIN

/* The chunk that ends a chunked body, with an empty trailer section. */
#define AG_HTTP_LAST_CHUNK "0\r\n\r\n"

#endif
