/* libFuzzer target: response heads parsed whole and split must agree; bodies read by framing. */
#include "fuzz_support.h"

/*
 * Input: one control byte, then the bytes a client receives (responses, maybe several, with
 * bodies). Control bit 7 picks small limits; bit 6 says the request was HEAD rather than GET;
 * bits 0-5 pick where to split. Each head is parsed whole, and again as its first k bytes then
 * all of them from a fresh copy; both must agree exactly and satisfy http_parse.h. The body the
 * framing implies (ag_http_response_body) is read whole and in two pieces, which must agree;
 * when it completes, the next response is parsed from the bytes after it.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What http_parse.h promises about a complete response head. */
static void check_response(const struct ag_http_response *r, const char *buf, size_t len, int rc,
                           const struct ag_http_limits *lim)
{
    CHECK(rc >= 4 && (size_t)rc <= len && r->head_len == (size_t)rc);
    CHECK(memcmp(buf + rc - 4, "\r\n\r\n", 4) == 0);
    CHECK(r->version == 10 || r->version == 11);
    CHECK(r->status >= 100 && r->status <= 599);
    offset_in(r->reason, buf, len);
    for (size_t i = 0; i < r->reason.len; i++) {
        unsigned char c = (unsigned char)r->reason.p[i];
        CHECK((c >= 0x20 && c != 0x7f) || c == '\t');
    }
    CHECK(r->header_count <= lim->max_headers && r->header_count <= AG_HTTP_HEADERS_CAP);
    for (size_t i = 0; i < r->header_count; i++) {
        struct ag_str n = r->headers[i].name, v = r->headers[i].value;
        CHECK(n.len > 0);
        for (size_t j = 0; j < n.len; j++)
            CHECK(ag_http_is_tchar((unsigned char)n.p[j]));
        for (size_t j = 0; j < v.len; j++) {
            unsigned char c = (unsigned char)v.p[j];
            CHECK((c >= 0x20 && c != 0x7f) || c == '\t');
        }
    }
    if (r->version == 10 &&
        !ag_http_header_get(r->headers, r->header_count, AG_STR("connection")).p)
        CHECK(!r->keep_alive);
    if (r->body != AG_HTTP_BODY_LENGTH)
        CHECK(r->content_length == 0);
    struct ag_str cl = ag_http_header_get(r->headers, r->header_count, AG_STR("content-length"));
    if (r->body == AG_HTTP_BODY_LENGTH)
        CHECK(cl.p != NULL);
}

static bool same_response(const struct ag_http_response *a, const char *abuf,
                          const struct ag_http_response *b, const char *bbuf, size_t len)
{
    if (!same_slice(a->reason, abuf, b->reason, bbuf, len))
        return false;
    if (a->version != b->version || a->status != b->status || a->body != b->body ||
        a->content_length != b->content_length || a->keep_alive != b->keep_alive ||
        a->head_len != b->head_len || a->header_count != b->header_count)
        return false;
    for (size_t i = 0; i < a->header_count; i++)
        if (!same_slice(a->headers[i].name, abuf, b->headers[i].name, bbuf, len) ||
            !same_slice(a->headers[i].value, abuf, b->headers[i].value, bbuf, len))
            return false;
    return true;
}

static size_t one_response(const uint8_t *data, size_t size, const struct ag_http_limits *lim,
                           unsigned split, struct ag_str method)
{
    static struct ag_http_response whole, parts;
    memset(&whole, 0, sizeof whole);
    memset(&parts, 0, sizeof parts);
    struct ag_http_parser pw, ps;

    char *wbuf = copy_of(data, size);
    ag_http_parser_init(&pw, lim);
    int wrc = ag_http_parse_response(&pw, &whole, wbuf, size);

    size_t k = size * split / 63;
    char *first = copy_of(data, k);
    ag_http_parser_init(&ps, lim);
    int src = ag_http_parse_response(&ps, &parts, first, k);
    char *sbuf = first;
    size_t slen = k;
    if (src == AG_EAGAIN) {
        sbuf = copy_of(data, size);
        slen = size;
        src = ag_http_parse_response(&ps, &parts, sbuf, size);
        free(first); /* after the call that had to rebase away from it */
    }

    size_t taken = 0;
    if (wrc > 0 && src > 0) {
        CHECK(wrc == src);
        check_response(&whole, wbuf, size, wrc, lim);
        CHECK(same_response(&whole, wbuf, &parts, sbuf, slen));
        taken = (size_t)wrc;
    } else if (wrc == AG_EPROTO && src == AG_EPROTO) {
        CHECK(pw.detail != NULL && ps.detail != NULL);
        CHECK(pw.status == ps.status);
        CHECK(pw.status == 400 || pw.status == 413 || pw.status == 431 || pw.status == 505);
    } else {
        CHECK(wrc == src);
    }
    free(sbuf);

    if (taken) {
        enum ag_http_body_kind kind = ag_http_response_body(&whole, method);
        if (ag_str_eq(method, AG_STR("HEAD")) || whole.status < 200 || whole.status == 204 ||
            whole.status == 304)
            CHECK(kind == AG_HTTP_BODY_NONE);
        size_t rest = size - taken;
        char *out_a = malloc(rest ? rest : 1), *out_b = malloc(rest ? rest : 1);
        CHECK(out_a != NULL && out_b != NULL);
        struct body_result a, b;
        read_body(kind, whole.content_length, lim->max_body, data + taken, rest, rest, out_a, &a);
        read_body(kind, whole.content_length, lim->max_body, data + taken, rest,
                  rest * split / 63 / 2, out_b, &b);
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
    struct ag_str method = data[0] & 0x40 ? AG_STR("HEAD") : AG_STR("GET");
    unsigned split = data[0] & 0x3f;
    data++;
    size--;
    for (int message = 0; message < 8 && size > 0; message++) {
        size_t taken = one_response(data, size, lim, split, method);
        if (taken == 0)
            break;
        data += taken;
        size -= taken;
    }
    return 0;
}
