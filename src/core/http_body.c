/* HTTP/1.1 message-body framing: Content-Length, chunked decoding (in place) and encoding. */
#include "core/http_body.h"

#include <string.h>

#include "core/err.h"
#include "core/banned.h"

enum {
    B_DATA,          /* LENGTH or UNTIL_CLOSE body bytes, or chunk data */
    B_SIZE,          /* chunk-size hex digits */
    B_SIZE_WS,       /* whitespace after the size, before ';' or CR */
    B_EXT,           /* chunk extension, up to CR */
    B_SIZE_LF,       /* LF ending the chunk-size line */
    B_DATA_CR,       /* CR after chunk data */
    B_DATA_LF,       /* LF after chunk data */
    B_TRAILER_START, /* start of a trailer field line or the final CRLF */
    B_TRAILER_NAME,
    B_TRAILER_VALUE,
    B_TRAILER_LF,
    B_FINAL_LF,
    B_DONE,
    B_FAILED,
};

static int refuse(struct ag_http_body_reader *r, int status, const char *detail)
{
    r->status = status;
    r->detail = detail;
    r->state = B_FAILED;
    return AG_EPROTO;
}

void ag_http_body_reader_init(struct ag_http_body_reader *r, enum ag_http_body_kind kind,
                              uint64_t content_length, uint64_t max)
{
    *r = (struct ag_http_body_reader){.kind = kind, .max = max};
    switch (kind) {
    case AG_HTTP_BODY_NONE:
        r->state = B_DONE;
        break;
    case AG_HTTP_BODY_LENGTH:
        r->remaining = content_length;
        r->state = content_length ? B_DATA : B_DONE;
        if (content_length > max)
            refuse(r, 413, "the body is over its size limit");
        break;
    case AG_HTTP_BODY_CHUNKED:
        r->state = B_SIZE;
        break;
    case AG_HTTP_BODY_UNTIL_CLOSE:
        r->remaining = UINT64_MAX;
        r->state = B_DATA;
        break;
    }
}

bool ag_http_body_done(const struct ag_http_body_reader *r)
{
    return r->state == B_DONE;
}

static bool is_value_byte(unsigned char c)
{
    return (c >= 0x20 && c != 0x7f) || c == '\t';
}

/* Counts bytes of a size line or trailer section against its bound. */
static bool line_byte(struct ag_http_body_reader *r, size_t max)
{
    return ++r->line_bytes <= max;
}

static int take_data(struct ag_http_body_reader *r, const char *in, size_t len, size_t *consumed,
                     struct ag_str *data)
{
    size_t n = len;
    if (r->remaining < n)
        n = (size_t)r->remaining;
    if (r->kind == AG_HTTP_BODY_UNTIL_CLOSE && r->total + n > r->max)
        return refuse(r, 413, "the body is over its size limit");
    *data = (struct ag_str){in, n};
    *consumed = n;
    r->total += n;
    if (r->kind != AG_HTTP_BODY_UNTIL_CLOSE)
        r->remaining -= n;
    if (r->remaining == 0)
        r->state = r->kind == AG_HTTP_BODY_CHUNKED ? B_DATA_CR : B_DONE;
    return r->state == B_DONE ? 1 : 0;
}

int ag_http_body_read(struct ag_http_body_reader *r, const char *in, size_t len, size_t *consumed,
                      struct ag_str *data)
{
    *consumed = 0;
    *data = (struct ag_str){in, 0};
    if (r->state == B_DONE)
        return 1;
    if (r->state == B_FAILED)
        return AG_EPROTO;
    if (r->state == B_DATA)
        return len ? take_data(r, in, len, consumed, data) : 0;

    size_t i = 0;
    for (; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        switch (r->state) {
        case B_SIZE: {
            int v = ag_hex_value((unsigned char)c);
            if (v >= 0) {
                if (++r->digits > 16) /* 16 hex digits always fit in 64 bits */
                    return refuse(r, 400, "chunk size has more than 16 hex digits");
                r->remaining = (r->remaining << 4) | (uint64_t)v;
                break;
            }
            if (r->digits == 0)
                return refuse(r, 400, "chunk size must start with a hex digit");
            if (r->remaining > r->max - r->total)
                return refuse(r, 413, "the body is over its size limit");
            if (c == '\r')
                r->state = B_SIZE_LF;
            else if (c == ';')
                r->state = B_EXT;
            else if (c == ' ' || c == '\t')
                r->state = B_SIZE_WS;
            else
                return refuse(r, 400, "invalid byte after the chunk size");
            break;
        }
        case B_SIZE_WS:
            if (c == ';')
                r->state = B_EXT;
            else if (c != ' ' && c != '\t')
                return refuse(r, 400, "invalid byte after the chunk size");
            break;
        case B_EXT:
            if (c == '\r')
                r->state = B_SIZE_LF;
            else if (!is_value_byte(c))
                return refuse(r, 400, "control byte in a chunk extension");
            break;
        case B_SIZE_LF:
            if (c != '\n')
                return refuse(r, 400, "bare CR in a chunk-size line");
            r->digits = 0;
            r->line_bytes = 0;
            if (r->remaining == 0) {
                r->state = B_TRAILER_START;
                break;
            }
            r->state = B_DATA;
            *consumed = i + 1;
            return 0; /* the caller comes back with the data */
        case B_DATA_CR:
            if (c != '\r')
                return refuse(r, 400, "chunk data longer than its size");
            r->state = B_DATA_LF;
            break;
        case B_DATA_LF:
            if (c != '\n')
                return refuse(r, 400, "chunk data must end with CRLF");
            r->state = B_SIZE;
            r->remaining = 0;
            r->line_bytes = 0;
            break;
        case B_TRAILER_START:
            if (c == '\r')
                r->state = B_FINAL_LF;
            else if (ag_http_is_tchar(c))
                r->state = B_TRAILER_NAME;
            else
                return refuse(r, 400, "malformed trailer field");
            break;
        case B_TRAILER_NAME:
            if (c == ':')
                r->state = B_TRAILER_VALUE;
            else if (!ag_http_is_tchar(c))
                return refuse(r, 400, "malformed trailer field");
            break;
        case B_TRAILER_VALUE:
            if (c == '\r')
                r->state = B_TRAILER_LF;
            else if (!is_value_byte(c))
                return refuse(r, 400, "control byte in a trailer field");
            break;
        case B_TRAILER_LF:
            if (c != '\n')
                return refuse(r, 400, "bare CR in a trailer field");
            r->state = B_TRAILER_START;
            break;
        case B_FINAL_LF:
            if (c != '\n')
                return refuse(r, 400, "bare CR at the end of the chunked body");
            r->state = B_DONE;
            *consumed = i + 1;
            return 1;
        }
        size_t bound = r->state >= B_TRAILER_START ? AG_HTTP_TRAILERS_MAX : AG_HTTP_CHUNK_LINE_MAX;
        if (r->state != B_DATA_CR && r->state != B_DATA_LF && r->state != B_SIZE &&
            !line_byte(r, bound))
            return refuse(r, 400, "chunk-size line or trailer section too long");
    }
    *consumed = i;
    return 0;
}

size_t ag_http_chunk_header(char out[20], uint64_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t len = 0;
    do {
        tmp[len++] = hex[n & 0xf];
        n >>= 4;
    } while (n);
    for (size_t i = 0; i < len; i++)
        out[i] = tmp[len - 1 - i];
    out[len++] = '\r';
    out[len++] = '\n';
    return len;
}
