/* Unit tests for src/core/http_body.c: Content-Length, until-close and chunked bodies in pieces. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/http_body.h"

/*
 * Each case is a body (maybe followed by the next message) and what reading it must give: the
 * decoded bytes and where the body ends, or that more input is needed, or a refusal status. It
 * is fed whole, as in[0..k) then in[k..n) for every k, and one byte per piece; every piece is a
 * fresh exact-size copy freed once read, so reading past a piece is an ASan error. The decoded
 * bytes, the bytes consumed and the result must be the same every way (for a refusal, the
 * status: how much body came out before it may differ).
 */

static int failures;

#define CASE_FAIL(...)                                                                             \
    do {                                                                                           \
        print_error(__VA_ARGS__);                                                                  \
        failures++;                                                                                \
    } while (0)

enum { INCOMPLETE = -1 };

struct body_case {
    const char *name;
    const char *raw;
    size_t raw_len;
    int status; /* 0: complete; INCOMPLETE: all consumed, more needed; else the refusal */
    const char *decoded;
    size_t decoded_len;
    size_t rest; /* bytes after the body, left unconsumed */
    enum ag_http_body_kind kind;
    uint64_t content_length;
    uint64_t max; /* 0: 1 MiB */
};

#define RAW(lit) .raw = (lit), .raw_len = sizeof(lit) - 1
#define DEC(lit) .decoded = (lit), .decoded_len = sizeof(lit) - 1

struct body_outcome {
    int rc;
    int status;
    size_t consumed;
    size_t out_len;
    char out[16384];
};

/* Reads the pieces raw[cuts[i-1]..cuts[i]) in turn, each from its own exact-size copy. */
static void read_pieces(const struct body_case *c, const size_t *cuts, size_t ncuts,
                        struct body_outcome *o)
{
    struct ag_http_body_reader r;
    ag_http_body_reader_init(&r, c->kind, c->content_length, c->max ? c->max : 1024 * 1024);
    o->rc = 0;
    o->status = 0;
    o->consumed = 0;
    o->out_len = 0;
    size_t start = 0;
    for (size_t i = 0; i < ncuts && o->rc == 0; i++) {
        size_t plen = cuts[i] - start;
        char *piece = malloc(plen ? plen : 1);
        assert_non_null(piece);
        memcpy(piece, c->raw + start, plen);
        size_t off = 0;
        while (off < plen) {
            size_t used = 99;
            struct ag_str data = {NULL, 99};
            o->rc = ag_http_body_read(&r, piece + off, plen - off, &used, &data);
            if (o->rc < 0)
                break;
            if (used > plen - off || data.len > used ||
                (data.len && (data.p < piece + off || data.p + data.len > piece + off + used))) {
                CASE_FAIL("case \"%s\": consumed %zu of %zu, data of %zu outside the input\n",
                          c->name, used, plen - off, data.len);
                o->rc = -100;
                break;
            }
            if (o->out_len + data.len <= sizeof o->out)
                memcpy(o->out + o->out_len, data.p, data.len);
            o->out_len += data.len;
            off += used;
            o->consumed += used;
            if (o->rc == 1)
                break;
            if (used == 0) {
                CASE_FAIL("case \"%s\": returned 0 without consuming anything\n", c->name);
                o->rc = -100;
                break;
            }
        }
        free(piece);
        start = cuts[i];
    }
    if (o->rc == AG_EPROTO) {
        o->status = r.status;
        if (!r.detail)
            CASE_FAIL("case \"%s\": refused without a detail\n", c->name);
        /* A refused reader stays refused. */
        size_t used;
        struct ag_str data;
        if (ag_http_body_read(&r, "0\r\n\r\n", 5, &used, &data) != AG_EPROTO)
            CASE_FAIL("case \"%s\": a refused reader read on\n", c->name);
    }
    if (o->rc == 1 && !ag_http_body_done(&r))
        CASE_FAIL("case \"%s\": complete but not done\n", c->name);
}

static bool same_body(const struct body_outcome *a, const struct body_outcome *b)
{
    if (a->rc != b->rc)
        return false;
    if (a->rc == AG_EPROTO)
        return a->status == b->status;
    return a->consumed == b->consumed && a->out_len == b->out_len &&
           memcmp(a->out, b->out, a->out_len < sizeof a->out ? a->out_len : sizeof a->out) == 0;
}

static void describe(const char *name, const char *how, const struct body_outcome *o,
                     const struct body_outcome *whole)
{
    CASE_FAIL("case \"%s\" %s: rc %d status %d consumed %zu decoded %zu; whole: rc %d status %d "
              "consumed %zu decoded %zu\n",
              name, how, o->rc, o->status, o->consumed, o->out_len, whole->rc, whole->status,
              whole->consumed, whole->out_len);
}

static void check_body_case(const struct body_case *c)
{
    static struct body_outcome whole, other;
    size_t n = c->raw_len;
    size_t cuts[2] = {n, n};
    read_pieces(c, cuts, 1, &whole);
    for (size_t k = 0; k <= n; k++) {
        cuts[0] = k;
        read_pieces(c, cuts, 2, &other);
        if (!same_body(&other, &whole)) {
            char how[64];
            snprintf(how, sizeof how, "split at %zu", k);
            describe(c->name, how, &other, &whole);
            return;
        }
    }
    size_t *each = malloc((n ? n : 1) * sizeof *each);
    assert_non_null(each);
    for (size_t k = 0; k < n; k++)
        each[k] = k + 1;
    read_pieces(c, each, n, &other);
    free(each);
    if (!same_body(&other, &whole)) {
        describe(c->name, "byte by byte", &other, &whole);
        return;
    }

    if (c->status > 0) {
        if (whole.rc != AG_EPROTO || whole.status != c->status)
            CASE_FAIL("case \"%s\": rc %d status %d, want a refusal with %d\n", c->name, whole.rc,
                      whole.status, c->status);
        return;
    }
    int want_rc = c->status == INCOMPLETE ? 0 : 1;
    size_t want_end = c->status == INCOMPLETE ? n : n - c->rest;
    if (whole.rc != want_rc)
        CASE_FAIL("case \"%s\": rc %d (status %d), want %d\n", c->name, whole.rc, whole.status,
                  want_rc);
    else if (whole.consumed != want_end)
        CASE_FAIL("case \"%s\": consumed %zu, want %zu\n", c->name, whole.consumed, want_end);
    else if (whole.out_len != c->decoded_len || memcmp(whole.out, c->decoded, c->decoded_len) != 0)
        CASE_FAIL("case \"%s\": decoded %zu bytes \"%.*s\", want %zu \"%.*s\"\n", c->name,
                  whole.out_len, (int)(whole.out_len < 200 ? whole.out_len : 200), whole.out,
                  c->decoded_len, (int)c->decoded_len, c->decoded);
}

#define CHUNKED   .kind = AG_HTTP_BODY_CHUNKED
#define NEXT      "GET / HTTP/1.1\r\n"
#define THEN_NEXT .rest = sizeof(NEXT) - 1

static const struct body_case chunked_cases[] = {
    /* ---- accepted ---- */
    {"one chunk", RAW("5\r\nhello\r\n0\r\n\r\n"), DEC("hello"), CHUNKED},
    {"three chunks", RAW("3\r\nabc\r\n4\r\ndefg\r\n1\r\nh\r\n0\r\n\r\n"), DEC("abcdefgh"), CHUNKED},
    {"uppercase hex", RAW("A\r\n0123456789\r\nF\r\nabcdefghijklmno\r\n0\r\n\r\n"),
     DEC("0123456789abcdefghijklmno"), CHUNKED},
    {"lowercase and mixed hex",
     RAW("1a\r\nabcdefghijklmnopqrstuvwxyz\r\nb\r\n0123456789!\r\n0\r\n\r\n"),
     DEC("abcdefghijklmnopqrstuvwxyz0123456789!"), CHUNKED},
    {"leading zeros", RAW("0005\r\nhello\r\n0000\r\n\r\n"), DEC("hello"), CHUNKED},
    {"sixteen hex digits", RAW("000000000000000a\r\n0123456789\r\n0\r\n\r\n"), DEC("0123456789"),
     CHUNKED},
    {"extensions", RAW("5;name=value\r\nhello\r\n6;a;b=c\r\n world\r\n0;last\r\n\r\n"),
     DEC("hello world"), CHUNKED},
    {"extension with a quoted string and obs-text",
     RAW("5;a=\"b c;d\";e=\xe9\xff\r\nhello\r\n0\r\n\r\n"), DEC("hello"), CHUNKED},
    {"whitespace before the extension", RAW("5 ;x\r\nhello\r\n0\t \t;y\r\n\r\n"), DEC("hello"),
     CHUNKED},
    {"trailers", RAW("5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\nZ:\t\xff v\r\n\r\n"), DEC("hello"),
     CHUNKED},
    {"empty body", RAW("0\r\n\r\n"), DEC(""), CHUNKED},
    {"the next message is not consumed", RAW("3\r\nabc\r\n0\r\n\r\n" NEXT), DEC("abc"), THEN_NEXT,
     CHUNKED},
    {"data holding CRLFs", RAW("4\r\n\r\n\r\n\r\n0\r\n\r\n"), DEC("\r\n\r\n"), CHUNKED},
    {"data holding NUL and 0xff", RAW("3\r\na\0\xff\r\n0\r\n\r\n"), DEC("a\0\xff"), CHUNKED},
    {"data that looks like a chunk", RAW("5\r\n0\r\n\r\n\r\n0\r\n\r\n"), DEC("0\r\n\r\n"), CHUNKED},
    {"chunk of exactly max", RAW("a\r\n0123456789\r\n0\r\n\r\n"), DEC("0123456789"), CHUNKED,
     .max = 10},
    {"chunks adding up to max", RAW("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n"), DEC("helloworld"),
     CHUNKED, .max = 10},
    {"empty body under the largest max", RAW("0\r\n\r\n"), DEC(""), CHUNKED, .max = UINT64_MAX},

    /* ---- more input needed ---- */
    {"inside the chunk data", RAW("5\r\nhel"), .status = INCOMPLETE, DEC("hel"), CHUNKED},
    {"inside the size line", RAW("5\r\nhello\r\n1f;ext"), .status = INCOMPLETE, DEC("hello"),
     CHUNKED},
    {"before the final CRLF", RAW("5\r\nhello\r\n0\r\n"), .status = INCOMPLETE, DEC("hello"),
     CHUNKED},
    {"inside a trailer", RAW("0\r\nX: y\r"), .status = INCOMPLETE, DEC(""), CHUNKED},

    /* ---- refused: the size ---- */
    {"missing hex digit", RAW("\r\nhello\r\n0\r\n\r\n"), .status = 400, CHUNKED},
    {"extension without a size", RAW(";x\r\nhello\r\n0\r\n\r\n"), .status = 400, CHUNKED},
    {"space before the size", RAW(" 5\r\nhello\r\n0\r\n\r\n"), .status = 400, CHUNKED},
    {"non-hex size", RAW("g\r\n"), .status = 400, CHUNKED},
    {"non-hex after the size", RAW("5g\r\nhello\r\n0\r\n\r\n"), .status = 400, CHUNKED},
    {"0x prefix", RAW("0x5\r\nhello\r\n0\r\n\r\n"), .status = 400, CHUNKED},
    {"negative size", RAW("-5\r\n"), .status = 400, CHUNKED},
    {"17 hex digits", RAW("00000000000000001\r\nx\r\n0\r\n\r\n"), .status = 400, CHUNKED},
    {"size of 2^63 - 1 over max", RAW("7fffffffffffffff\r\n"), .status = 413, CHUNKED},
    {"size over max", RAW("b\r\n0123456789a\r\n0\r\n\r\n"), .status = 413, CHUNKED, .max = 10},
    {"sizes adding up over max", RAW("6\r\nabcdef\r\n5\r\nabcde\r\n0\r\n\r\n"), .status = 413,
     CHUNKED, .max = 10},

    /* ---- refused: line endings and data ---- */
    {"data longer than the size", RAW("3\r\nabcd\r\n0\r\n\r\n"), .status = 400, CHUNKED},
    {"missing CRLF after the data", RAW("3\r\nabc0\r\n\r\n"), .status = 400, CHUNKED},
    {"CR without LF after the data", RAW("3\r\nabc\rX0\r\n\r\n"), .status = 400, CHUNKED},
    {"LF without CR after the data", RAW("3\r\nabc\n0\r\n\r\n"), .status = 400, CHUNKED},
    {"bare LF after the size", RAW("5\nhello\r\n0\r\n\r\n"), .status = 400, CHUNKED},
    {"bare CR after the size", RAW("5\rhello\r\n0\r\n\r\n"), .status = 400, CHUNKED},
    {"bare LF after an extension", RAW("5;x\nhello\r\n0\r\n\r\n"), .status = 400, CHUNKED},
    {"bare CR after an extension", RAW("5;x\rhello\r\n0\r\n\r\n"), .status = 400, CHUNKED},
    {"whitespace and no extension", RAW("5 \r\nhello\r\n0\r\n\r\n"), .status = 400, CHUNKED},
    {"junk after whitespace", RAW("5\tx\r\nhello\r\n0\r\n\r\n"), .status = 400, CHUNKED},
    {"bare LF after the last chunk", RAW("0\n\r\n"), .status = 400, CHUNKED},

    /* ---- refused: control bytes ---- */
    {"control byte in an extension",
     RAW("5;a\x01"
         "b\r\nhello\r\n0\r\n\r\n"),
     .status = 400, CHUNKED},
    {"DEL in an extension", RAW("5;a\x7f\r\nhello\r\n0\r\n\r\n"), .status = 400, CHUNKED},
    {"NUL in an extension", RAW("5;a\0\r\nhello\r\n0\r\n\r\n"), .status = 400, CHUNKED},
    {"control byte in a trailer value", RAW("0\r\nX: a\x01\r\n\r\n"), .status = 400, CHUNKED},
    {"DEL in a trailer value", RAW("0\r\nX: a\x7f\r\n\r\n"), .status = 400, CHUNKED},
    {"NUL in a trailer name", RAW("0\r\nX\0: a\r\n\r\n"), .status = 400, CHUNKED},
    {"space in a trailer name", RAW("0\r\nX Y: a\r\n\r\n"), .status = 400, CHUNKED},
    {"empty trailer name", RAW("0\r\n: a\r\n\r\n"), .status = 400, CHUNKED},
    {"trailer without a colon", RAW("0\r\nXY\r\n\r\n"), .status = 400, CHUNKED},
    {"obs-fold in the trailers", RAW("0\r\nX: a\r\n b\r\n\r\n"), .status = 400, CHUNKED},
    {"bare LF after a trailer", RAW("0\r\nX: a\n\r\n"), .status = 400, CHUNKED},
    {"bare LF ends the trailers", RAW("0\r\n\n"), .status = 400, CHUNKED},
    {"bare CR ends the trailers", RAW("0\r\n\rX"), .status = 400, CHUNKED},

    /* ---- Content-Length, until close, none ---- */
    {"Content-Length body then the next message", RAW("0123456789" NEXT), DEC("0123456789"),
     THEN_NEXT, .kind = AG_HTTP_BODY_LENGTH, .content_length = 10},
    {"Content-Length of one byte", RAW("xyz"), DEC("x"), .rest = 2, .kind = AG_HTTP_BODY_LENGTH,
     .content_length = 1},
    {"Content-Length body still arriving", RAW("01234"), .status = INCOMPLETE, DEC("01234"),
     .kind = AG_HTTP_BODY_LENGTH, .content_length = 1000000},
    {"Content-Length of zero", RAW("GET"), DEC(""), .rest = 3, .kind = AG_HTTP_BODY_LENGTH,
     .content_length = 0},
    {"no body", RAW("GET"), DEC(""), .rest = 3, .kind = AG_HTTP_BODY_NONE},
    {"until close never completes", RAW("0\r\n\r\nanything"), .status = INCOMPLETE,
     DEC("0\r\n\r\nanything"), .kind = AG_HTTP_BODY_UNTIL_CLOSE},
    {"until close up to max", RAW("0123456789"), .status = INCOMPLETE, DEC("0123456789"),
     .kind = AG_HTTP_BODY_UNTIL_CLOSE, .max = 10},
    {"until close over max", RAW("0123456789a"), .status = 413, .kind = AG_HTTP_BODY_UNTIL_CLOSE,
     .max = 10},
    {"Content-Length equal to max", RAW("0123456789"), DEC("0123456789"),
     .kind = AG_HTTP_BODY_LENGTH, .content_length = 10, .max = 10},
    {"Content-Length over max", RAW("0123456789a"), .status = 413, .kind = AG_HTTP_BODY_LENGTH,
     .content_length = 11, .max = 10},
};

static void body_table(void **state)
{
    (void)state;
    failures = 0;
    size_t count = sizeof chunked_cases / sizeof chunked_cases[0];
    for (size_t i = 0; i < count; i++)
        check_body_case(&chunked_cases[i]);
    print_message("%zu body cases\n", count);
    assert_int_equal(failures, 0);
}

/* ---- generated: line and trailer bounds ---- */

static char big[12000];

static size_t build_extension(size_t ext_len)
{
    memcpy(big, "5;", 2);
    memset(big + 2, 'e', ext_len);
    memcpy(big + 2 + ext_len, "\r\nhello\r\n0\r\n\r\n", 14);
    return 2 + ext_len + 14;
}

/* "0\r\n" then trailer lines of the given value lengths, then the final CRLF. */
static size_t build_trailers(const size_t *values, size_t count)
{
    size_t n = 3;
    memcpy(big, "0\r\n", 3);
    for (size_t i = 0; i < count; i++) {
        memcpy(big + n, "X: ", 3);
        memset(big + n + 3, 't', values[i]);
        memcpy(big + n + 3 + values[i], "\r\n", 2);
        n += values[i] + 5;
    }
    memcpy(big + n, "\r\n", 2);
    return n + 2;
}

static void body_bounds(void **state)
{
    (void)state;
    failures = 0;
    struct body_case c = {.kind = AG_HTTP_BODY_CHUNKED, .decoded = "hello", .decoded_len = 5};

    /* The size line may take 4096 bytes after the digits: ";", the extension and the CR. */
    c.name = "extension of 4094 bytes";
    c.raw = big;
    c.raw_len = build_extension(4094);
    check_body_case(&c);
    c.name = "extension of 4095 bytes";
    c.raw_len = build_extension(4095);
    c.status = 400;
    check_body_case(&c);
    c.name = "extension of 10000 bytes";
    c.raw_len = build_extension(10000);
    check_body_case(&c);

    /* The trailer section may take 8192 bytes: its field lines and the final CRLF. */
    c.decoded = "";
    c.decoded_len = 0;
    size_t one[] = {8185};
    c.name = "trailer section of 8192 bytes";
    c.raw_len = build_trailers(one, 1);
    c.status = 0;
    check_body_case(&c);
    one[0] = 8186;
    c.name = "trailer section of 8193 bytes";
    c.raw_len = build_trailers(one, 1);
    c.status = 400;
    check_body_case(&c);
    size_t many[] = {1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 200};
    c.name = "trailer section over 8192 bytes in nine lines";
    c.raw_len = build_trailers(many, 9);
    check_body_case(&c);
    assert_int_equal(failures, 0);
}

/* ---- chunks written by ag_http_chunk_header, read back ---- */

static void chunk_header_values(void **state)
{
    (void)state;
    static const struct {
        uint64_t n;
        const char *want;
    } cases[] = {
        {0, "0\r\n"},
        {1, "1\r\n"},
        {15, "f\r\n"},
        {16, "10\r\n"},
        {255, "ff\r\n"},
        {4096, "1000\r\n"},
        {0xffffffffu, "ffffffff\r\n"},
        {0x100000000u, "100000000\r\n"},
        {UINT64_MAX, "ffffffffffffffff\r\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[21];
        memset(out, '#', sizeof out);
        size_t len = ag_http_chunk_header(out, cases[i].n);
        assert_int_equal(len, strlen(cases[i].want));
        assert_true(len <= 20);
        assert_int_equal(out[len], '#'); /* nothing written past the header */
        out[len] = '\0';
        assert_string_equal(out, cases[i].want);
    }
    assert_int_equal(sizeof AG_HTTP_LAST_CHUNK - 1, 5);
    assert_memory_equal(AG_HTTP_LAST_CHUNK, "0\r\n\r\n", 5);
}

static void chunk_round_trip(void **state)
{
    (void)state;
    failures = 0;
    static char payload[3000], encoded[4000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (char)(i * 7 + 3);
    static const size_t sizes[] = {1, 15, 16, 17, 255, 256, 1000, 1440};
    size_t n = 0, at = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        n += ag_http_chunk_header(encoded + n, sizes[i]);
        memcpy(encoded + n, payload + at, sizes[i]);
        n += sizes[i];
        memcpy(encoded + n, "\r\n", 2);
        n += 2;
        at += sizes[i];
    }
    memcpy(encoded + n, AG_HTTP_LAST_CHUNK, 5);
    n += 5;
    assert_true(at <= sizeof payload);
    struct body_case c = {.name = "round trip",
                          .raw = encoded,
                          .raw_len = n,
                          .decoded = payload,
                          .decoded_len = at,
                          .kind = AG_HTTP_BODY_CHUNKED};
    check_body_case(&c);
    assert_int_equal(failures, 0);
}

/* ---- the reader's state ---- */

static void reader_states(void **state)
{
    (void)state;
    struct ag_http_body_reader r;
    size_t used;
    struct ag_str data;

    ag_http_body_reader_init(&r, AG_HTTP_BODY_NONE, 0, 100);
    assert_true(ag_http_body_done(&r));
    assert_int_equal(ag_http_body_read(&r, "abc", 3, &used, &data), 1);
    assert_int_equal(used, 0);
    assert_int_equal(data.len, 0);

    ag_http_body_reader_init(&r, AG_HTTP_BODY_LENGTH, 3, 100);
    assert_false(ag_http_body_done(&r));
    assert_int_equal(ag_http_body_read(&r, "", 0, &used, &data), 0);
    assert_int_equal(used, 0);
    assert_int_equal(ag_http_body_read(&r, "abcdef", 6, &used, &data), 1);
    assert_int_equal(used, 3);
    assert_int_equal(data.len, 3);
    assert_true(ag_http_body_done(&r));
    /* Complete stays complete and consumes nothing more. */
    assert_int_equal(ag_http_body_read(&r, "def", 3, &used, &data), 1);
    assert_int_equal(used, 0);
    assert_int_equal(data.len, 0);

    ag_http_body_reader_init(&r, AG_HTTP_BODY_UNTIL_CLOSE, 0, 5);
    assert_int_equal(ag_http_body_read(&r, "abc", 3, &used, &data), 0);
    assert_int_equal(ag_http_body_read(&r, "de", 2, &used, &data), 0);
    assert_false(ag_http_body_done(&r));
    assert_int_equal(ag_http_body_read(&r, "f", 1, &used, &data), AG_EPROTO);
    assert_int_equal(r.status, 413);
    assert_int_equal(r.total, 5);

    /* A chunked reader gives the size line back first, then the data. */
    ag_http_body_reader_init(&r, AG_HTTP_BODY_CHUNKED, 0, 100);
    static const char in[] = "3\r\nabc\r\n0\r\n\r\n";
    assert_int_equal(ag_http_body_read(&r, in, sizeof in - 1, &used, &data), 0);
    assert_int_equal(used, 3);
    assert_int_equal(data.len, 0);
    assert_int_equal(ag_http_body_read(&r, in + 3, sizeof in - 4, &used, &data), 0);
    assert_int_equal(used, 3);
    assert_ptr_equal(data.p, in + 3); /* in place */
    assert_int_equal(data.len, 3);
    assert_int_equal(ag_http_body_read(&r, in + 6, sizeof in - 7, &used, &data), 1);
    assert_int_equal(used, 7);
    assert_int_equal(r.total, 3);
}

/* A Content-Length body over max is refused before any byte of it is read. */
static void length_body_over_max(void **state)
{
    (void)state;
    struct ag_http_body_reader r;
    size_t used = 99;
    struct ag_str data;
    ag_http_body_reader_init(&r, AG_HTTP_BODY_LENGTH, 100, 10);
    assert_false(ag_http_body_done(&r));
    assert_int_equal(ag_http_body_read(&r, "", 0, &used, &data), AG_EPROTO);
    assert_int_equal(r.status, 413);
    assert_non_null(r.detail);
    assert_int_equal(ag_http_body_read(&r, "0123456789", 10, &used, &data), AG_EPROTO);
    assert_int_equal(used, 0);
    assert_int_equal(r.total, 0);
}

/* ---- known bugs: these tests fail until src/core/http_body.c is fixed ---- */

/*
 * Regression: a chunk size is refused with 400 only for more than 16 hex digits, and with 413
 * when it passes max; a 16-digit size of 2^63 or more was once refused with 400.
 */
static void sixteen_digit_sizes_over_2_63(void **state)
{
    (void)state;
    static const struct body_case cases[] = {
        {"size of 2^63, max 1 MiB", RAW("8000000000000000\r\n"), .status = 413, CHUNKED},
        {"size of 2^64 - 1, max 1 MiB", RAW("ffffffffffffffff\r\n"), .status = 413, CHUNKED},
        {"size of 2^63, max 2^64 - 1", RAW("8000000000000000\r\nx"), .status = INCOMPLETE, DEC("x"),
         CHUNKED, .max = UINT64_MAX},
    };
    failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_body_case(&cases[i]);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(body_table),
        cmocka_unit_test(body_bounds),
        cmocka_unit_test(chunk_header_values),
        cmocka_unit_test(chunk_round_trip),
        cmocka_unit_test(reader_states),
        cmocka_unit_test(length_body_over_max),
        cmocka_unit_test(sixteen_digit_sizes_over_2_63),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
