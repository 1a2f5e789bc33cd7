/* JSON text output helpers shared by the logger, problem responses and metrics. */
#ifndef AG_JSON_H
#define AG_JSON_H

#include "core/buf.h"

/*
 * Appends s as a JSON string literal with its quotes: '"' and '\' escaped, control bytes as
 * \n, \t... or \u00XX, and every byte that is not part of well-formed UTF-8 replaced by
 * U+FFFD, so the output is always valid JSON. Returns 0, AG_ERANGE or AG_ENOMEM (the buffer's
 * own limits); on failure the buffer may hold part of the literal.
 */
int ag_json_append_string(struct ag_buf *b, struct ag_str s);

/*
 * Length of the well-formed UTF-8 sequence at s[0] (n >= 1 bytes available): 1 to 4, or 0
 * when the bytes there are not one (a stray continuation byte, an overlong form, a surrogate,
 * a code point over U+10FFFF, or a sequence cut short by the end of the input).
 */
size_t ag_utf8_sequence_len(const unsigned char *s, size_t n);

#endif
