/* JSON text output helpers shared by the logger, problem responses and metrics. */
#include "core/json.h"

#include <stdbool.h>
#include <stdint.h>

#include "core/banned.h"

/* Length of the well-formed UTF-8 sequence at s[0..len), or 0 when it is not one. */
static size_t utf8_sequence(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t min, cp;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) {
        n = 2, min = 0x80, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3, min = 0x800, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

int ag_json_append_string(struct ag_buf *b, struct ag_str s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s.p;
    int rc = ag_buf_append(b, "\"", 1);
    size_t run = 0; /* bytes that need no escaping, copied in one go */
    for (size_t i = 0; rc == 0 && i < s.len;) {
        unsigned char c = p[i];
        size_t n = (c >= 0x20 && c != '"' && c != '\\') ? utf8_sequence(p + i, s.len - i) : 0;
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
