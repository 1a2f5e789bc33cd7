/* Byte buffers with a hard maximum size, and string slices. */
#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/banned.h"

bool ag_str_has_prefix(struct ag_str s, struct ag_str prefix)
{
    return s.len >= prefix.len && (prefix.len == 0 || memcmp(s.p, prefix.p, prefix.len) == 0);
}

struct ag_str ag_str_trim_ows(struct ag_str s)
{
    while (s.len > 0 && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.len--;
    }
    while (s.len > 0 && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
        s.len--;
    return s;
}

struct ag_str ag_str_split(struct ag_str s, char sep, struct ag_str *head)
{
    const char *hit = s.len ? memchr(s.p, sep, s.len) : NULL;
    if (!hit) {
        *head = s;
        return AG_STR_NULL;
    }
    *head = (struct ag_str){s.p, (size_t)(hit - s.p)};
    return (struct ag_str){hit + 1, s.len - (size_t)(hit - s.p) - 1};
}

int ag_str_to_u64(struct ag_str s, uint64_t max, uint64_t *out)
{
    if (s.len == 0)
        return AG_EINVAL;
    for (size_t i = 0; i < s.len; i++)
        if (s.p[i] < '0' || s.p[i] > '9')
            return AG_EINVAL;
    if (s.len > 19)
        return AG_ERANGE;
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++)
        v = v * 10 + (uint64_t)(s.p[i] - '0'); /* 19 digits cannot overflow 64 bits */
    if (v > max)
        return AG_ERANGE;
    *out = v;
    return 0;
}

size_t ag_u64_dec(uint64_t v, char out[20])
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

void ag_buf_init(struct ag_buf *b, size_t max)
{
    *b = (struct ag_buf){.max = max};
}

void ag_buf_release(struct ag_buf *b)
{
    free(b->data);
    ag_buf_init(b, b->max);
}

struct ag_str ag_buf_str(const struct ag_buf *b)
{
    return (struct ag_str){b->data ? b->data + b->off : NULL, b->len};
}

char *ag_buf_tail(struct ag_buf *b)
{
    return b->data + b->off + b->len;
}

size_t ag_buf_space(const struct ag_buf *b)
{
    return b->cap - b->off - b->len;
}

int ag_buf_reserve(struct ag_buf *b, size_t n)
{
    if (b->cap - b->off - b->len >= n)
        return 0;
    if (n > b->max || b->len > b->max - n)
        return AG_ERANGE;
    if (b->off > 0 && b->cap - b->len >= n) {
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
        return 0;
    }
    size_t need = b->len + n;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > b->max / 2 ? b->max : cap * 2;
    if (cap > b->max)
        cap = b->max;
    if (b->off > 0) {
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
    }
    char *data = realloc(b->data, cap);
    if (!data)
        return AG_ENOMEM;
    b->data = data;
    b->cap = cap;
    return 0;
}

void ag_buf_commit(struct ag_buf *b, size_t n)
{
    b->len += n;
}

int ag_buf_append(struct ag_buf *b, const void *data, size_t n)
{
    if (n == 0)
        return 0;
    int rc = ag_buf_reserve(b, n);
    if (rc < 0)
        return rc;
    memcpy(ag_buf_tail(b), data, n);
    b->len += n;
    return 0;
}

int ag_buf_append_str(struct ag_buf *b, struct ag_str s)
{
    return ag_buf_append(b, s.p, s.len);
}

int ag_buf_appendf(struct ag_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return AG_EINVAL;
    if ((size_t)n < sizeof small)
        return ag_buf_append(b, small, (size_t)n);
    /* Formatted where the NUL has room, so output that exactly fills the buffer still fits. */
    char *text = malloc((size_t)n + 1);
    if (!text)
        return AG_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(text, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = ag_buf_append(b, text, (size_t)n);
    free(text);
    return rc;
}

void ag_buf_consume(struct ag_buf *b, size_t n)
{
    b->off += n;
    b->len -= n;
    if (b->len == 0)
        b->off = 0;
}

void ag_buf_clear(struct ag_buf *b)
{
    b->off = 0;
    b->len = 0;
}
