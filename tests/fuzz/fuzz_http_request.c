/* libFuzzer target: request heads parsed whole and split must agree; bodies read by framing. */
#include "fuzz_support.h"

/*
 * Input: one control byte, then the bytes of a connection (requests, maybe pipelined, with
 * bodies). Control bit 7 picks small limits, so that the limit refusals are reachable with short
 * inputs; bits 0-6 pick where to split: each head is parsed whole, and again as its first k
 * bytes then all of them, with the second call on a fresh copy of the bytes (the parser must
 * rebase its slices). Both must agree exactly. A complete head must also satisfy what
 * http_parse.h promises about it. The body that follows is read with the parsed framing, whole
 * and in two pieces, which must agree too; when it completes, the next request is parsed from
 * the bytes after it.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The path may also be the static "/" of an absolute-form target without one (http_parse.h). */
static bool same_path(struct ag_str a, const char *abuf, struct ag_str b, const char *bbuf,
                      size_t len)
{
    uintptr_t ap = (uintptr_t)a.p, bp = (uintptr_t)b.p;
    bool a_static = a.p && (ap < (uintptr_t)abuf || ap > (uintptr_t)abuf + len);
    bool b_static = b.p && (bp < (uintptr_t)bbuf || bp > (uintptr_t)bbuf + len);
    if (a_static || b_static) {
        CHECK(!a_static || (a.len == 1 && a.p[0] == '/'));
        CHECK(!b_static || (b.len == 1 && b.p[0] == '/'));
        return a_static && b_static;
    }
    return same_slice(a, abuf, b, bbuf, len);
}

static bool is_tchar_run(struct ag_str s)
{
    for (size_t i = 0; i < s.len; i++)
        if (!ag_http_is_tchar((unsigned char)s.p[i]))
            return false;
    return s.len > 0;
}

/* What http_parse.h promises about a complete request head. */
static void check_request(const struct ag_http_request *r, const char *buf, size_t len, int rc,
                          const struct ag_http_limits *lim)
{
    CHECK(rc >= 4 && (size_t)rc <= len && r->head_len == (size_t)rc);
    CHECK(memcmp(buf + rc - 4, "\r\n\r\n", 4) == 0);
    CHECK(is_tchar_run(r->method));
    CHECK(r->version == 10 || r->version == 11);
    CHECK(r->target.len > 0 && r->target.len <= lim->max_request_line);
    CHECK(!memchr(r->target.p, '#', r->target.len) && !memchr(r->target.p, ' ', r->target.len));
    if (r->version == 11)
        CHECK(r->host.p != NULL);
    CHECK(r->header_count <= lim->max_headers && r->header_count <= AG_HTTP_HEADERS_CAP);
    for (size_t i = 0; i < r->header_count; i++) {
        struct ag_str v = r->headers[i].value;
        CHECK(is_tchar_run(r->headers[i].name));
        for (size_t j = 0; j < v.len; j++) {
            unsigned char c = (unsigned char)v.p[j];
            CHECK(c >= 0x20 || c == '\t');
            CHECK(c != 0x7f);
        }
        CHECK(v.len == 0 ||
              (v.p[0] != ' ' && v.p[0] != '\t' && v.p[v.len - 1] != ' ' && v.p[v.len - 1] != '\t'));
    }
    if (r->body == AG_HTTP_BODY_LENGTH)
        CHECK(r->content_length > 0 && r->content_length <= lim->max_body);
    CHECK(r->body != AG_HTTP_BODY_UNTIL_CLOSE);
    if (r->body == AG_HTTP_BODY_CHUNKED)
        CHECK(r->version == 11);
    if (r->expect_continue)
        CHECK(r->version == 11);
}

static bool same_request(const struct ag_http_request *a, const char *abuf,
                         const struct ag_http_request *b, const char *bbuf, size_t len)
{
    if (!same_slice(a->method, abuf, b->method, bbuf, len) ||
        !same_slice(a->target, abuf, b->target, bbuf, len) ||
        !same_path(a->path, abuf, b->path, bbuf, len) ||
        !same_slice(a->query, abuf, b->query, bbuf, len) ||
        !same_slice(a->host, abuf, b->host, bbuf, len))
        return false;
    if (a->version != b->version || a->body != b->body || a->content_length != b->content_length ||
        a->keep_alive != b->keep_alive || a->expect_continue != b->expect_continue ||
        a->head_len != b->head_len || a->header_count != b->header_count)
        return false;
    for (size_t i = 0; i < a->header_count; i++)
        if (!same_slice(a->headers[i].name, abuf, b->headers[i].name, bbuf, len) ||
            !same_slice(a->headers[i].value, abuf, b->headers[i].value, bbuf, len))
            return false;
    return true;
}

/* Parses one head at data[0..size); returns the bytes it and its body took, 0 to stop. */
static size_t one_request(const uint8_t *data, size_t size, const struct ag_http_limits *lim,
                          unsigned split)
{
    static struct ag_http_request whole, parts;
    memset(&whole, 0, sizeof whole);
    memset(&parts, 0, sizeof parts);
    struct ag_http_parser pw, ps;

    char *wbuf = copy_of(data, size);
    ag_http_parser_init(&pw, lim);
    int wrc = ag_http_parse_request(&pw, &whole, wbuf, size);

    size_t k = size * split / 127;
    char *first = copy_of(data, k);
    ag_http_parser_init(&ps, lim);
    int src = ag_http_parse_request(&ps, &parts, first, k);
    char *sbuf = first;
    size_t slen = k;
    if (src == AG_EAGAIN) {
        sbuf = copy_of(data, size);
        slen = size;
        src = ag_http_parse_request(&ps, &parts, sbuf, size);
        free(first); /* after the call that had to rebase away from it */
    }

    size_t taken = 0;
    if (wrc > 0 && src > 0) {
        CHECK(wrc == src);
        check_request(&whole, wbuf, size, wrc, lim);
        CHECK(same_request(&whole, wbuf, &parts, sbuf, slen));
        taken = (size_t)wrc;
    } else if (wrc == AG_EPROTO && src == AG_EPROTO) {
        CHECK(pw.detail != NULL && ps.detail != NULL);
        CHECK(pw.status == ps.status);
        CHECK(pw.status == 400 || pw.status == 413 || pw.status == 414 || pw.status == 417 ||
              pw.status == 431 || pw.status == 501 || pw.status == 505);
    } else if (src == AG_EPROTO && wrc > 0) {
        CHECK(false); /* a valid head refused because of where it was split */
    } else {
        CHECK(wrc == src); /* both need more */
    }
    free(sbuf);

    if (taken) {
        size_t rest = size - taken;
        char *out_a = malloc(rest ? rest : 1), *out_b = malloc(rest ? rest : 1);
        CHECK(out_a != NULL && out_b != NULL);
        struct body_result a, b;
        read_body(whole.body, whole.content_length, lim->max_body, data + taken, rest, rest, out_a,
                  &a);
        read_body(whole.body, whole.content_length, lim->max_body, data + taken, rest,
                  rest * split / 127 / 2, out_b, &b);
        CHECK(a.rc == b.rc);
        if (a.rc == AG_EPROTO)
            CHECK(a.status == b.status);
        else
            CHECK(a.consumed == b.consumed && a.out_len == b.out_len &&
                  memcmp(out_a, out_b, a.out_len) == 0);
        free(out_a);
        free(out_b);
        taken = a.rc == 1 ? taken + a.consumed : 0;
    }
    free(wbuf);
    return taken;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const struct ag_http_limits *lim = data[0] & 0x80 ? &small_limits : &ag_http_default_limits;
    unsigned split = data[0] & 0x7f;
    data++;
    size--;
    for (int message = 0; message < 8 && size > 0; message++) {
        size_t taken = one_request(data, size, lim, split);
        if (taken == 0)
            break;
        data += taken;
        size -= taken;
    }
    return 0;
}
