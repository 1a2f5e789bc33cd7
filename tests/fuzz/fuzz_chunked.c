/* libFuzzer target: chunked decoding whole, split and byte by byte; decoded data re-encoded. */
#include "fuzz_support.h"

/*
 * Input: one control byte, then a chunked body (maybe followed by other bytes). Control bit 7
 * picks a small max (64 bytes) instead of 1 MiB; bits 0-6 pick a split point. The body is
 * decoded whole, as two pieces and one byte per call, every piece from its own exact-size copy;
 * all three must give the same result, bytes consumed and decoded bytes (for a refusal, the same
 * status). A complete body is then re-encoded with ag_http_chunk_header in chunks whose size
 * comes from the control byte, and decoding that must give the same bytes back.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct decoded {
    int rc;
    int status;
    size_t consumed;
    size_t len;
    char *bytes; /* capacity: the input size */
};

/* Decodes in[0..n) fed as the pieces ending at cuts[0..ncuts), each from its own copy. */
static void decode(const uint8_t *in, size_t n, const size_t *cuts, size_t ncuts, uint64_t max,
                   struct decoded *out)
{
    struct ag_http_body_reader r;
    ag_http_body_reader_init(&r, AG_HTTP_BODY_CHUNKED, 0, max);
    out->rc = 0;
    out->status = 0;
    out->consumed = 0;
    out->len = 0;
    size_t start = 0;
    for (size_t i = 0; i < ncuts && out->rc == 0; i++) {
        size_t plen = cuts[i] - start;
        char *piece = malloc(plen ? plen : 1);
        CHECK(piece != NULL);
        if (plen)
            memcpy(piece, in + start, plen);
        size_t off = 0;
        while (off < plen) {
            size_t used;
            struct ag_str d;
            out->rc = ag_http_body_read(&r, piece + off, plen - off, &used, &d);
            if (out->rc < 0)
                break;
            CHECK(used <= plen - off && d.len <= used);
            CHECK(d.len == 0 || (d.p >= piece + off && d.p + d.len <= piece + off + used));
            CHECK(out->len + d.len <= n);
            memcpy(out->bytes + out->len, d.p, d.len);
            out->len += d.len;
            off += used;
            out->consumed += used;
            if (out->rc == 1)
                break;
            CHECK(used > 0);
        }
        free(piece);
        start = cuts[i];
    }
    CHECK(out->rc == 0 || out->rc == 1 || out->rc == AG_EPROTO);
    if (out->rc == AG_EPROTO) {
        CHECK(r.status == 400 || r.status == 413);
        CHECK(r.detail != NULL);
        out->status = r.status;
        size_t used;
        struct ag_str d;
        CHECK(ag_http_body_read(&r, "0\r\n\r\n", 5, &used, &d) == AG_EPROTO);
    } else {
        CHECK(r.total == out->len && r.total <= max);
        CHECK(ag_http_body_done(&r) == (out->rc == 1));
    }
}

static void same_decoding(const struct decoded *a, const struct decoded *b)
{
    CHECK(a->rc == b->rc);
    if (a->rc == AG_EPROTO) {
        CHECK(a->status == b->status);
        return;
    }
    CHECK(a->consumed == b->consumed);
    CHECK(a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0);
}

/* Re-encodes body[0..len) in chunks of chunk bytes and checks it decodes back to the same. */
static void round_trip(const char *body, size_t len, size_t chunk, uint64_t max)
{
    size_t cap = len + (len / chunk + 1) * 22 + 5;
    uint8_t *enc = malloc(cap);
    CHECK(enc != NULL);
    size_t n = 0;
    for (size_t at = 0; at < len; at += chunk) {
        size_t piece = len - at < chunk ? len - at : chunk;
        char head[20];
        size_t hlen = ag_http_chunk_header(head, piece);
        CHECK(hlen >= 3 && hlen <= 18 && head[hlen - 2] == '\r' && head[hlen - 1] == '\n');
        memcpy(enc + n, head, hlen);
        n += hlen;
        memcpy(enc + n, body + at, piece);
        n += piece;
        memcpy(enc + n, "\r\n", 2);
        n += 2;
    }
    memcpy(enc + n, AG_HTTP_LAST_CHUNK, 5);
    n += 5;
    CHECK(n <= cap);
    struct decoded back = {.bytes = malloc(n)};
    CHECK(back.bytes != NULL);
    size_t cuts[1] = {n};
    decode(enc, n, cuts, 1, max, &back);
    CHECK(back.rc == 1 && back.consumed == n);
    CHECK(back.len == len && memcmp(back.bytes, body, len) == 0);
    free(back.bytes);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint64_t max = data[0] & 0x80 ? 64 : 1024 * 1024;
    unsigned split = data[0] & 0x7f;
    data++;
    size--;

    struct decoded whole = {.bytes = malloc(size ? size : 1)};
    struct decoded parts = {.bytes = malloc(size ? size : 1)};
    struct decoded bytes = {.bytes = malloc(size ? size : 1)};
    size_t *each = malloc((size ? size : 1) * sizeof *each);
    CHECK(whole.bytes && parts.bytes && bytes.bytes && each);

    size_t cuts[2] = {size * split / 127, size};
    decode(data, size, cuts + 1, 1, max, &whole);
    decode(data, size, cuts, 2, max, &parts);
    for (size_t i = 0; i < size; i++)
        each[i] = i + 1;
    decode(data, size, each, size, max, &bytes);
    same_decoding(&parts, &whole);
    same_decoding(&bytes, &whole);

    if (whole.rc == 1)
        round_trip(whole.bytes, whole.len, (size_t)split + 1, max);

    free(each);
    free(whole.bytes);
    free(parts.bytes);
    free(bytes.bytes);
    return 0;
}
