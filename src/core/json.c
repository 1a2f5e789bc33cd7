/* JSON text output helpers shared by the logger, problem responses and metrics. */
#include "core/json.h"

#include <stdbool.h>
#include <stdint.h>

#include "core/banned.h"

size_t ag_utf8_sequence_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* over U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

int ag_json_append_string(struct ag_buf *b, struct ag_str s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s.p;
    int rc = ag_buf_append(b, "\"", 1);
    size_t run = 0; /* bytes that need no escaping, copied in one go */
    for (size_t i = 0; rc == 0 && i < s.len;) {
        unsigned char c = p[i];
        size_t n =
            (c >= 0x20 && c != '"' && c != '\\') ? ag_utf8_sequence_len(p + i, s.len - i) : 0;
        if (n > 0) {
            run += n;
            i += n;
            continue;
        }
        rc = ag_buf_append(b, p + i - run, run);
        run = 0;
        if (rc < 0)
            break;
        char esc[6] = {'\\', 0};
        switch (c) {
        case '"':
            esc[1] = '"';
            rc = ag_buf_append(b, esc, 2);
            break;
        case '\\':
            esc[1] = '\\';
            rc = ag_buf_append(b, esc, 2);
            break;
        case '\n':
            esc[1] = 'n';
            rc = ag_buf_append(b, esc, 2);
            break;
        case '\r':
            esc[1] = 'r';
            rc = ag_buf_append(b, esc, 2);
            break;
        case '\t':
            esc[1] = 't';
            rc = ag_buf_append(b, esc, 2);
            break;
        default:
            if (c < 0x20) {
                esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hex[c >> 4],
                esc[5] = hex[c & 15];
                rc = ag_buf_append(b, esc, 6);
            } else {
                rc = ag_buf_append(b, "\\ufffd", 6); /* not well-formed UTF-8 */
            }
        }
        i++;
    }
    if (rc == 0 && run > 0)
        rc = ag_buf_append(b, p + s.len - run, run);
    if (rc == 0)
        rc = ag_buf_append(b, "\"", 1);
    return rc;
}
