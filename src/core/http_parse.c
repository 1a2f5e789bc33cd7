/* Incremental, in-place HTTP/1.1 message-head parser (RFC 9110/9112), strict by design. */
#include "core/http_parse.h"

#include <string.h>

#include "core/err.h"
#include "core/banned.h"

const struct ag_http_limits ag_http_default_limits = {
    .max_request_line = 8192,
    .max_header_bytes = 32768,
    .max_headers = 100,
    .max_body = 10u * 1024 * 1024,
};

enum {
    S_METHOD, /* request line, still inside the method: refuse junk early */
    S_LINE,   /* request or status line */
    S_FIELDS, /* field lines */
    S_DONE,
};

enum { MAX_LEADING_EMPTY_LINES = 4 };

/* Byte classes, one bit each. */
enum {
    C_TCHAR = 1 << 0,  /* token: RFC 9110 §5.6.2 */
    C_TARGET = 1 << 1, /* request-target: RFC 3986 pchar, '/', '?', '%' and brackets */
    C_VALUE = 1 << 2,  /* field-value: VCHAR, obs-text, SP, HTAB */
    C_HOST = 1 << 3,   /* Host: reg-name, IP-literal and port characters */
    C_HEX = 1 << 4,
};

/* Class membership as constant expressions, so the table below is built by the compiler. */
#define IS_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_UNRESERVED(c)                                                                           \
    (IS_ALPHA(c) || IS_DIGIT(c) || (c) == '-' || (c) == '.' || (c) == '_' || (c) == '~')
#define IS_SUB_DELIM(c)                                                                            \
    ((c) == '!' || (c) == '$' || (c) == '&' || (c) == '\'' || (c) == '(' || (c) == ')' ||          \
     (c) == '*' || (c) == '+' || (c) == ',' || (c) == ';' || (c) == '=')
#define IS_TCHAR(c)                                                                                \
    (IS_ALPHA(c) || IS_DIGIT(c) || (c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' ||         \
     (c) == '&' || (c) == '\'' || (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' ||          \
     (c) == '^' || (c) == '_' || (c) == '`' || (c) == '|' || (c) == '~')
#define IS_TARGET(c)                                                                               \
    (IS_UNRESERVED(c) || IS_SUB_DELIM(c) || (c) == ':' || (c) == '@' || (c) == '/' ||              \
     (c) == '?' || (c) == '%' || (c) == '[' || (c) == ']')
#define IS_VALUE(c) (((c) >= 0x21 && (c) <= 0x7e) || (c) >= 0x80 || (c) == ' ' || (c) == '\t')
#define IS_HOST(c)                                                                                 \
    (IS_UNRESERVED(c) || IS_SUB_DELIM(c) || (c) == ':' || (c) == '[' || (c) == ']' || (c) == '%')
#define IS_HEX(c) (IS_DIGIT(c) || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))
#define CLASS(c)                                                                                   \
    ((IS_TCHAR(c) ? C_TCHAR : 0) | (IS_TARGET(c) ? C_TARGET : 0) | (IS_VALUE(c) ? C_VALUE : 0) |   \
     (IS_HOST(c) ? C_HOST : 0) | (IS_HEX(c) ? C_HEX : 0))
#define CLASS4(c)  CLASS(c), CLASS((c) + 1), CLASS((c) + 2), CLASS((c) + 3)
#define CLASS16(c) CLASS4(c), CLASS4((c) + 4), CLASS4((c) + 8), CLASS4((c) + 12)
#define CLASS64(c) CLASS16(c), CLASS16((c) + 16), CLASS16((c) + 32), CLASS16((c) + 48)

static const unsigned char byte_class[256] = {CLASS64(0), CLASS64(64), CLASS64(128), CLASS64(192)};

bool ag_http_is_token(struct ag_str s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!(byte_class[(unsigned char)s.p[i]] & C_TCHAR))
            return false;
    return true;
}

#define ONES  0x0101010101010101ULL /* a byte of 1 in each lane */
#define HIGHS 0x8080808080808080ULL /* each lane's high bit */

/* Nonzero when one of the 8 bytes of x equals b (SWAR; exact as a yes or no). */
static inline uint64_t has_byte(uint64_t x, uint64_t b)
{
    uint64_t y = x ^ (ONES * b);
    return (y - ONES) & ~y & HIGHS;
}

/* Nonzero when one of the 8 bytes of x is below n, for n <= 128 (SWAR; exact as a yes or no). */
static inline uint64_t has_less(uint64_t x, uint64_t n)
{
    return (x - ONES * n) & ~x & HIGHS;
}

bool ag_http_field_value_safe(struct ag_str v)
{
    size_t i = 0;
    for (; i + 8 <= v.len; i += 8) {
        uint64_t x;
        memcpy(&x, v.p + i, 8);
        if (has_byte(x, '\r') | has_byte(x, '\n') | has_byte(x, 0))
            return false;
    }
    for (; i < v.len; i++)
        if (v.p[i] == '\r' || v.p[i] == '\n' || v.p[i] == '\0')
            return false;
    return true;
}

int ag_http_limits_check(const struct ag_http_limits *l, struct ag_err *err)
{
    if (l->max_headers == 0 || l->max_headers > AG_HTTP_HEADERS_CAP)
        return ag_err_set(err, AG_EINVAL, "max_headers must be 1 to %d", AG_HTTP_HEADERS_CAP);
    if (l->max_request_line < 16 || l->max_request_line > 1024 * 1024)
        return ag_err_set(err, AG_EINVAL, "max_request_line must be 16 bytes to 1 MiB");
    if (l->max_header_bytes < 64 || l->max_header_bytes > 1024 * 1024)
        return ag_err_set(err, AG_EINVAL, "max_header_bytes must be 64 bytes to 1 MiB");
    return 0;
}

bool ag_http_method_idempotent(struct ag_str m)
{
    static const struct ag_str idempotent[] = {AG_STR("GET"),   AG_STR("HEAD"), AG_STR("OPTIONS"),
                                               AG_STR("TRACE"), AG_STR("PUT"),  AG_STR("DELETE")};
    for (size_t i = 0; i < sizeof idempotent / sizeof idempotent[0]; i++)
        if (ag_str_eq(m, idempotent[i]))
            return true;
    return false;
}

bool ag_http_is_tchar(unsigned char c)
{
    return byte_class[c] & C_TCHAR;
}

static int refuse(struct ag_http_parser *p, int status, const char *detail)
{
    p->status = status;
    p->detail = detail;
    p->state = S_DONE;
    return AG_EPROTO;
}

void ag_http_parser_init(struct ag_http_parser *p, const struct ag_http_limits *limits)
{
    *p = (struct ag_http_parser){.limits = limits, .state = S_METHOD};
}

/* Moves a slice that pointed into the previous buffer (old[0..len)) to the same place in buf. */
static void rebase(struct ag_str *s, const char *old, size_t len, const char *buf)
{
    uintptr_t at = (uintptr_t)s->p, start = (uintptr_t)old;
    if (s->p && at >= start && at <= start + len)
        s->p = buf + (at - start);
}

static void rebase_headers(struct ag_http_header *h, size_t count, const char *old, size_t len,
                           const char *buf)
{
    for (size_t i = 0; i < count; i++) {
        rebase(&h[i].name, old, len, buf);
        rebase(&h[i].value, old, len, buf);
    }
}

/* "HTTP/x.y": 0 with *version = 10 or 11; AG_EPROTO with 400 (syntax) or 505 (other). */
static int parse_version(struct ag_http_parser *p, const char *v, size_t len, int *version)
{
    if (len != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
        v[7] < '0' || v[7] > '9')
        return refuse(p, 400, "malformed HTTP version");
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return refuse(p, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
    *version = 10 + (v[7] - '0');
    return 0;
}

/* Checks a request-target's bytes and %-escapes. */
static bool target_valid(const char *t, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (!(byte_class[c] & C_TARGET))
            return false;
        if (c == '%') {
            if (len - i < 3 || !(byte_class[(unsigned char)t[i + 1]] & C_HEX) ||
                !(byte_class[(unsigned char)t[i + 2]] & C_HEX))
                return false;
            i += 2;
        }
    }
    return true;
}

static bool scheme_valid(struct ag_str s)
{
    if (s.len == 0 || !((s.p[0] | 0x20) >= 'a' && (s.p[0] | 0x20) <= 'z'))
        return false;
    for (size_t i = 1; i < s.len; i++) {
        char c = s.p[i];
        bool ok = ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                  c == '-' || c == '.';
        if (!ok)
            return false;
    }
    return true;
}

/* Splits an origin-form or absolute-form target into path and query. */
static int split_target(struct ag_http_parser *p, struct ag_http_request *req)
{
    struct ag_str t = req->target;
    struct ag_str path = t;
    if (t.len == 1 && t.p[0] == '*') {
        if (!ag_str_eq(req->method, AG_STR("OPTIONS")))
            return refuse(p, 400, "asterisk-form target is only for OPTIONS");
        req->path = t;
        req->query = (struct ag_str){t.p + t.len, 0};
        return 0;
    }
    if (ag_str_eq(req->method, AG_STR("CONNECT"))) {
        if (t.p[0] == '/' || memchr(t.p, '/', t.len) || !memchr(t.p, ':', t.len))
            return refuse(p, 400, "CONNECT needs an authority-form target (host:port)");
        req->path = AG_STR_NULL;
        req->query = AG_STR_NULL;
        return 0;
    }
    if (t.p[0] != '/') {
        /* absolute-form: scheme "://" authority path-abempty [ "?" query ] */
        struct ag_str scheme;
        struct ag_str rest = ag_str_split(t, ':', &scheme);
        if (!rest.p || !scheme_valid(scheme) || rest.len < 2 || rest.p[0] != '/' ||
            rest.p[1] != '/')
            return refuse(p, 400, "request target is neither origin-form nor absolute-form");
        rest.p += 2;
        rest.len -= 2;
        size_t i = 0;
        while (i < rest.len && rest.p[i] != '/' && rest.p[i] != '?')
            i++;
        if (i == 0)
            return refuse(p, 400, "absolute-form target without a host");
        path = (struct ag_str){rest.p + i, rest.len - i};
    }
    struct ag_str query = ag_str_split(path, '?', &req->path);
    req->query = query.p ? query : (struct ag_str){path.p + path.len, 0};
    if (req->path.len == 0)
        req->path = AG_STR("/"); /* absolute-form without a path (RFC 9110 §4.2.3) */
    return 0;
}

static int parse_request_line(struct ag_http_parser *p, struct ag_http_request *req,
                              const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && (byte_class[(unsigned char)line[i]] & C_TCHAR))
        i++;
    if (i == 0 || i == len || line[i] != ' ')
        return refuse(p, 400, "the method must be a token followed by one space");
    req->method = (struct ag_str){line, i};
    size_t t0 = ++i;
    while (i < len && line[i] != ' ')
        i++;
    if (i == t0 || i == len)
        return refuse(p, 400, "the request line must be: method SP target SP version");
    req->target = (struct ag_str){line + t0, i - t0};
    if (!target_valid(req->target.p, req->target.len))
        return refuse(p, 400, "the request target has a byte outside RFC 3986 or a bad %-escape");
    i++;
    int rc = parse_version(p, line + i, len - i, &req->version);
    if (rc < 0)
        return rc;
    return split_target(p, req);
}

static int parse_status_line(struct ag_http_parser *p, struct ag_http_response *resp,
                             const char *line, size_t len)
{
    if (len < 12 || line[8] != ' ')
        return refuse(p, 400, "malformed status line");
    int rc = parse_version(p, line, 8, &resp->version);
    if (rc < 0)
        return rc;
    int status = 0;
    for (size_t i = 9; i < 12; i++) {
        if (line[i] < '0' || line[i] > '9')
            return refuse(p, 400, "the status code must be three digits");
        status = status * 10 + (line[i] - '0');
    }
    if (status < 100 || status > 599)
        return refuse(p, 400, "status code out of range");
    resp->status = status;
    if (len == 12) {
        resp->reason = (struct ag_str){line + 12, 0};
        return 0;
    }
    if (line[12] != ' ')
        return refuse(p, 400, "malformed status line");
    for (size_t i = 13; i < len; i++)
        if (!(byte_class[(unsigned char)line[i]] & C_VALUE))
            return refuse(p, 400, "control byte in the reason phrase");
    resp->reason = (struct ag_str){line + 13, len - 13};
    return 0;
}

/* line[len] is the CR of the line's CRLF: it ends the scans below that do not check len. */
static int parse_field_line(struct ag_http_parser *p, const char *line, size_t len,
                            struct ag_http_header *h)
{
    if (line[0] == ' ' || line[0] == '\t')
        return refuse(p, 400, "obsolete line folding is not accepted");
    size_t i = 0;
    while (byte_class[(unsigned char)line[i]] & C_TCHAR) /* stops at the CR at the latest */
        i++;
    if (i == len)
        return refuse(p, 400, "field line without a colon");
    if (line[i] != ':') {
        if (line[i] == ' ' || line[i] == '\t')
            return refuse(p, 400, "whitespace between field name and colon");
        return refuse(p, 400, "invalid byte in field name");
    }
    if (i == 0)
        return refuse(p, 400, "empty field name");
    h->name = (struct ag_str){line, i};
    i++;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    size_t v0 = i;
    for (; i + 8 <= len; i += 8) { /* 8 plain bytes at a time: no control byte, no DEL */
        uint64_t x;
        memcpy(&x, line + i, 8);
        if (has_less(x, 0x20) | has_byte(x, 0x7f))
            break;
    }
    for (; i < len; i++) {
        if (!(byte_class[(unsigned char)line[i]] & C_VALUE))
            return refuse(p, 400,
                          line[i] == '\r' ? "bare CR in a field value"
                                          : "control byte in a field value");
    }
    size_t v1 = len;
    while (v1 > v0 && (line[v1 - 1] == ' ' || line[v1 - 1] == '\t'))
        v1--;
    h->value = (struct ag_str){line + v0, v1 - v0};
    return 0;
}

/*
 * Examines new bytes line by line. Calls first_line on the start line and stores field lines
 * into headers. Returns the head length when the empty line ending the head has arrived,
 * AG_EAGAIN, or AG_EPROTO.
 */
typedef int (*first_line_fn)(struct ag_http_parser *p, void *msg, const char *line, size_t len);

/*
 * Checks the bytes of the current line that arrived before end (its LF, or the end of the
 * input), in the same order whether or not the LF is here yet, so that a refusal's status never
 * depends on how the bytes were split: first the method bytes of a request line, then the
 * line's length (the CR of a well-formed line counts one byte). The earliest offending byte
 * decides: the method check stops where the length limit is passed, and a CR just before end
 * is left to the syntax checks, since it may turn out to end the line. Sets *scanned to where
 * the method check stopped.
 */
static int check_line_prefix(struct ag_http_parser *p, const char *buf, size_t end,
                             int line_too_long_status, size_t *scanned)
{
    const struct ag_http_limits *lim = p->limits;
    size_t method_end = end > p->line_start && buf[end - 1] == '\r' ? end - 1 : end;
    if (method_end > p->line_start + lim->max_request_line + 1)
        method_end = p->line_start + lim->max_request_line + 1;
    size_t i = p->pos;
    for (; p->state == S_METHOD && i < method_end; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == ' ')
            p->state = S_LINE;
        else if (!(byte_class[c] & C_TCHAR))
            return refuse(p, 400, "the method must be a token followed by one space");
    }
    *scanned = p->state == S_METHOD ? i : end;
    size_t partial = end - p->line_start;
    if (p->state != S_FIELDS && partial > lim->max_request_line + 1)
        return refuse(p, line_too_long_status, "the start line is over its limit");
    if (p->state == S_FIELDS && p->header_bytes + partial > lim->max_header_bytes)
        return refuse(p, 431, "the header section is over its size limit");
    return 0;
}

static int parse_head(struct ag_http_parser *p, const char *buf, size_t len, void *msg,
                      first_line_fn first_line, struct ag_http_header *headers, size_t *count,
                      int line_too_long_status)
{
    const struct ag_http_limits *lim = p->limits;
    size_t max_headers =
        lim->max_headers < AG_HTTP_HEADERS_CAP ? lim->max_headers : AG_HTTP_HEADERS_CAP;
    if (p->state == S_DONE)
        return refuse(p, p->status ? p->status : 400, p->detail ? p->detail : "parser reused");
    while (p->pos < len) {
        const char *lf = memchr(buf + p->pos, '\n', len - p->pos);
        size_t end = lf ? (size_t)(lf - buf) : len, scanned;
        int rc = check_line_prefix(p, buf, end, line_too_long_status, &scanned);
        if (rc < 0)
            return rc;
        if (!lf) {
            p->pos = scanned; /* a CR at the very end is looked at again with what follows */
            return AG_EAGAIN;
        }
        size_t lf_at = end;
        if (lf_at == p->line_start || buf[lf_at - 1] != '\r')
            return refuse(p, 400, "bare LF: lines must end with CRLF");
        const char *line = buf + p->line_start;
        size_t line_len = lf_at - 1 - p->line_start;
        /* A field line's bytes are all checked by class below, so a CR is refused there. */
        if (p->state != S_FIELDS && memchr(line, '\r', line_len))
            return refuse(p, 400, "bare CR inside a line");
        size_t next = lf_at + 1;
        if (p->state != S_FIELDS) {
            if (line_len == 0) {
                if (++p->header_bytes > MAX_LEADING_EMPTY_LINES)
                    return refuse(p, 400, "too many empty lines before the request");
            } else {
                rc = first_line(p, msg, line, line_len);
                if (rc < 0)
                    return rc;
                p->state = S_FIELDS;
                p->header_bytes = 0;
            }
        } else {
            p->header_bytes += line_len + 2;
            if (p->header_bytes > lim->max_header_bytes)
                return refuse(p, 431, "the header section is over its size limit");
            if (line_len == 0) {
                p->state = S_DONE;
                p->pos = p->line_start = next;
                return (int)next;
            }
            if (*count >= max_headers)
                return refuse(p, 431, "too many header fields");
            rc = parse_field_line(p, line, line_len, &headers[*count]);
            if (rc < 0)
                return rc;
            (*count)++;
        }
        p->pos = p->line_start = next;
    }
    return AG_EAGAIN;
}

/* Classifies the fields that frame a message. Shared by requests and responses. */
struct framing {
    bool close, keep_alive, chunked, has_length, has_te, te_other;
    uint64_t length;
};

static bool name_is(struct ag_str name, const char *lower, size_t len)
{
    return name.len == len && ag_str_eq_nocase(name, (struct ag_str){lower, len});
}
#define NAME_IS(name, lit) name_is((name), (lit), sizeof(lit) - 1)

/* Walks a comma-separated list value, calling fn on each non-empty trimmed element. */
static int for_each_element(struct ag_str v,
                            int (*fn)(struct ag_http_parser *, struct framing *, struct ag_str),
                            struct ag_http_parser *p, struct framing *f)
{
    while (v.p) {
        struct ag_str item;
        v = ag_str_split(v, ',', &item);
        item = ag_str_trim_ows(item);
        if (item.len == 0)
            continue;
        int rc = fn(p, f, item);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int on_connection_option(struct ag_http_parser *p, struct framing *f, struct ag_str opt)
{
    (void)p;
    if (ag_str_eq_nocase(opt, AG_STR("close")))
        f->close = true;
    else if (ag_str_eq_nocase(opt, AG_STR("keep-alive")))
        f->keep_alive = true;
    return 0;
}

static int on_transfer_coding(struct ag_http_parser *p, struct framing *f, struct ag_str coding)
{
    struct ag_str name;
    ag_str_split(coding, ';', &name);
    name = ag_str_trim_ows(name);
    if (!ag_http_is_token(name))
        return refuse(p, 400, "malformed Transfer-Encoding");
    if (f->chunked)
        return refuse(p, 400, "chunked must be the last transfer coding, applied once");
    if (ag_str_eq_nocase(name, AG_STR("chunked")))
        f->chunked = true;
    else
        f->te_other = true;
    return 0;
}

/* Reads the framing fields; refuses duplicates and conflicts common to both directions. */
static int read_framing(struct ag_http_parser *p, const struct ag_http_header *h, size_t count,
                        struct framing *f)
{
    for (size_t i = 0; i < count; i++) {
        struct ag_str name = h[i].name, value = h[i].value;
        int rc = 0;
        if (name.len != 14 && name.len != 17 && name.len != 10)
            continue; /* none of the three: most fields are rejected on length alone */
        if (NAME_IS(name, "content-length")) {
            if (f->has_length)
                return refuse(p, 400, "more than one Content-Length");
            f->has_length = true;
            rc = ag_str_to_u64(value, UINT64_MAX, &f->length);
            if (rc == AG_ERANGE)
                return refuse(p, 413, "Content-Length is over the body size limit");
            if (rc < 0)
                return refuse(p, 400, "Content-Length must be a single decimal number");
        } else if (NAME_IS(name, "transfer-encoding")) {
            f->has_te = true;
            rc = for_each_element(value, on_transfer_coding, p, f);
        } else if (NAME_IS(name, "connection")) {
            rc = for_each_element(value, on_connection_option, p, f);
        }
        if (rc < 0)
            return rc;
    }
    if (f->has_te && f->has_length)
        return refuse(p, 400, "Content-Length together with Transfer-Encoding");
    return 0;
}

static int request_first_line(struct ag_http_parser *p, void *msg, const char *line, size_t len)
{
    return parse_request_line(p, msg, line, len);
}

static int finish_request(struct ag_http_parser *p, struct ag_http_request *req)
{
    struct framing f = {0};
    int rc = read_framing(p, req->headers, req->header_count, &f);
    if (rc < 0)
        return rc;
    bool seen_host = false;
    for (size_t i = 0; i < req->header_count; i++) {
        const struct ag_http_header *h = &req->headers[i];
        if (NAME_IS(h->name, "host")) {
            if (seen_host)
                return refuse(p, 400, "more than one Host");
            seen_host = true;
            for (size_t j = 0; j < h->value.len; j++)
                if (!(byte_class[(unsigned char)h->value.p[j]] & C_HOST))
                    return refuse(p, 400, "invalid Host");
            req->host = h->value;
        } else if (NAME_IS(h->name, "expect") && req->version == 11) {
            if (!ag_str_eq_nocase(h->value, AG_STR("100-continue")))
                return refuse(p, 417, "the only expectation supported is 100-continue");
            req->expect_continue = true;
        }
    }
    if (!seen_host && req->version == 11)
        return refuse(p, 400, "HTTP/1.1 requests need a Host");
    if (f.has_te) {
        if (req->version == 10)
            return refuse(p, 400, "Transfer-Encoding is not allowed in HTTP/1.0");
        if (!f.chunked)
            return refuse(p, 400, "the last transfer coding must be chunked");
        if (f.te_other)
            return refuse(p, 501, "transfer codings other than chunked are not implemented");
        req->body = AG_HTTP_BODY_CHUNKED;
    } else if (f.has_length) {
        if (f.length > p->limits->max_body)
            return refuse(p, 413, "Content-Length is over the body size limit");
        req->content_length = f.length;
        req->body = f.length ? AG_HTTP_BODY_LENGTH : AG_HTTP_BODY_NONE;
    } else {
        req->body = AG_HTTP_BODY_NONE;
    }
    req->keep_alive = req->version == 11 ? !f.close : (f.keep_alive && !f.close);
    return 0;
}

int ag_http_parse_request(struct ag_http_parser *p, struct ag_http_request *req, const char *buf,
                          size_t len)
{
    if (p->pos == 0 && p->state == S_METHOD) {
        req->header_count = 0;
        req->host = AG_STR_NULL;
        req->expect_continue = false;
        req->content_length = 0;
    } else if (p->base && p->base != buf) {
        rebase(&req->method, p->base, p->pos, buf);
        rebase(&req->target, p->base, p->pos, buf);
        rebase(&req->path, p->base, p->pos, buf);
        rebase(&req->query, p->base, p->pos, buf);
        rebase_headers(req->headers, req->header_count, p->base, p->pos, buf);
    }
    p->base = buf;
    int rc =
        parse_head(p, buf, len, req, request_first_line, req->headers, &req->header_count, 414);
    if (rc < 0)
        return rc;
    req->head_len = (size_t)rc;
    int frc = finish_request(p, req);
    return frc < 0 ? frc : rc;
}

static int response_first_line(struct ag_http_parser *p, void *msg, const char *line, size_t len)
{
    return parse_status_line(p, msg, line, len);
}

int ag_http_parse_response(struct ag_http_parser *p, struct ag_http_response *resp, const char *buf,
                           size_t len)
{
    if (p->pos == 0 && p->state == S_METHOD) {
        p->state = S_LINE; /* no method to check early */
        resp->header_count = 0;
        resp->content_length = 0;
    } else if (p->base && p->base != buf) {
        rebase(&resp->reason, p->base, p->pos, buf);
        rebase_headers(resp->headers, resp->header_count, p->base, p->pos, buf);
    }
    p->base = buf;
    int rc =
        parse_head(p, buf, len, resp, response_first_line, resp->headers, &resp->header_count, 400);
    if (rc < 0)
        return rc;
    resp->head_len = (size_t)rc;
    struct framing f = {0};
    int frc = read_framing(p, resp->headers, resp->header_count, &f);
    if (frc < 0)
        return frc;
    if (f.has_te)
        resp->body = f.chunked ? AG_HTTP_BODY_CHUNKED : AG_HTTP_BODY_UNTIL_CLOSE;
    else if (f.has_length)
        resp->body = AG_HTTP_BODY_LENGTH;
    else
        resp->body = AG_HTTP_BODY_UNTIL_CLOSE;
    resp->content_length = f.length;
    /* Framing is the caller's to combine (ag_http_response_body): a 204 needs none. */
    resp->keep_alive = resp->version == 11 ? !f.close : (f.keep_alive && !f.close);
    return rc;
}

enum ag_http_body_kind ag_http_response_body(const struct ag_http_response *resp,
                                             struct ag_str method)
{
    if (ag_str_eq(method, AG_STR("HEAD")) || resp->status < 200 || resp->status == 204 ||
        resp->status == 304)
        return AG_HTTP_BODY_NONE;
    if (resp->body == AG_HTTP_BODY_LENGTH && resp->content_length == 0)
        return AG_HTTP_BODY_NONE;
    return resp->body;
}

struct ag_str ag_http_header_get(const struct ag_http_header *headers, size_t count,
                                 struct ag_str name)
{
    for (size_t i = 0; i < count; i++)
        if (ag_str_eq_nocase(headers[i].name, name))
            return headers[i].value;
    return AG_STR_NULL;
}

const char *ag_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 425:
        return "Too Early";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    }
    return "Unknown";
}
