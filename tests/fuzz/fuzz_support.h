/* What the HTTP fuzz targets share: CHECK, copies, slice comparison, a body read in two pieces. */
#ifndef AG_FUZZ_SUPPORT_H
#define AG_FUZZ_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/http_body.h"
#include "core/http_parse.h"

static const struct ag_http_limits small_limits = {64, 512, 8, 256};

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

static inline char *copy_of(const uint8_t *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    CHECK(c != NULL);
    if (n)
        memcpy(c, p, n);
    return c;
}

static inline long long offset_in(struct ag_str s, const char *buf, size_t len)
{
    if (!s.p)
        return -1;
    uintptr_t p = (uintptr_t)s.p, b = (uintptr_t)buf;
    CHECK(p >= b && p - b <= len && s.len <= len - (p - b));
    return (long long)(p - b);
}

static inline bool same_slice(struct ag_str a, const char *abuf, struct ag_str b, const char *bbuf,
                              size_t len)
{
    return offset_in(a, abuf, len) == offset_in(b, bbuf, len) && a.len == b.len;
}

struct body_result {
    int rc;
    int status;
    size_t consumed;
    size_t out_len;
};

/* Reads in[0..n) as pieces [0..k) and [k..n), each from its own copy; decoded bytes into out. */
static inline void read_body(enum ag_http_body_kind kind, uint64_t length, uint64_t max,
                             const uint8_t *in, size_t n, size_t k, char *out,
                             struct body_result *res)
{
    struct ag_http_body_reader r;
    ag_http_body_reader_init(&r, kind, length, max);
    *res = (struct body_result){0};
    size_t cuts[2] = {k, n};
    size_t start = 0;
    for (int i = 0; i < 2 && res->rc == 0; i++) {
        size_t plen = cuts[i] - start;
        char *piece = copy_of(in + start, plen);
        size_t off = 0;
        while (off < plen) {
            size_t used;
            struct ag_str d;
            res->rc = ag_http_body_read(&r, piece + off, plen - off, &used, &d);
            if (res->rc < 0)
                break;
            CHECK(used <= plen - off && d.len <= used);
            CHECK(d.len == 0 || (d.p >= piece + off && d.p + d.len <= piece + off + used));
            memcpy(out + res->out_len, d.p, d.len);
            res->out_len += d.len;
            off += used;
            res->consumed += used;
            if (res->rc == 1)
                break;
            CHECK(used > 0);
        }
        free(piece);
        start = cuts[i];
    }
    CHECK(res->rc == 0 || res->rc == 1 || res->rc == AG_EPROTO);
    if (res->rc == AG_EPROTO) {
        CHECK(r.status == 400 || r.status == 413);
        CHECK(r.detail != NULL);
        res->status = r.status;
    } else {
        CHECK(r.total == res->out_len);
        CHECK(r.total <= max);
        if (kind == AG_HTTP_BODY_LENGTH)
            CHECK(res->rc == 1 ? res->out_len == length : res->out_len < length);
        if (kind == AG_HTTP_BODY_UNTIL_CLOSE)
            CHECK(res->rc == 0);
    }
}

#endif
