/* Base64url (RFC 4648 §5) without padding, strict, as used by JOSE (JWS, JWK). */
#include "core/base64url.h"

#include <stdint.h>

#include "core/err.h"
#include "core/banned.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The 6-bit value of c, or -1 for a byte outside the alphabet. */
static int sextet(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

size_t ag_base64url_decoded_max(size_t n)
{
    return n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
}

size_t ag_base64url_encoded_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

int ag_base64url_decode(struct ag_str in, unsigned char *out, size_t cap, size_t *out_len)
{
    *out_len = 0;
    if (in.len % 4 == 1)
        return AG_EINVAL;
    size_t need = ag_base64url_decoded_max(in.len);
    if (need > cap)
        return AG_ERANGE;
    const unsigned char *s = (const unsigned char *)in.p;
    size_t o = 0, i = 0;
    for (; i + 4 <= in.len; i += 4) {
        int a = sextet(s[i]), b = sextet(s[i + 1]), c = sextet(s[i + 2]), d = sextet(s[i + 3]);
        if ((a | b | c | d) < 0)
            return AG_EINVAL;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (unsigned char)(v >> 16);
        out[o++] = (unsigned char)(v >> 8);
        out[o++] = (unsigned char)v;
    }
    size_t rest = in.len - i;
    if (rest > 0) {
        int a = sextet(s[i]), b = sextet(s[i + 1]), c = rest == 3 ? sextet(s[i + 2]) : 0;
        if ((a | b | c) < 0)
            return AG_EINVAL;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        /* The bits after the last whole byte must be zero: one encoding per byte string. */
        if (rest == 2 ? (v & 0xffffu) != 0 : (v & 0xffu) != 0)
            return AG_EINVAL;
        out[o++] = (unsigned char)(v >> 16);
        if (rest == 3)
            out[o++] = (unsigned char)(v >> 8);
    }
    *out_len = o;
    return 0;
}

size_t ag_base64url_encode(const void *in, size_t n, char *out)
{
    const unsigned char *s = in;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i > 0) {
        uint32_t v = (uint32_t)s[i] << 16 | (n - i == 2 ? (uint32_t)s[i + 1] << 8 : 0);
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        if (n - i == 2)
            out[o++] = alphabet[v >> 6 & 63];
    }
    out[o] = '\0';
    return o;
}
