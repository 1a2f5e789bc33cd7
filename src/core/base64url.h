/* Base64url (RFC 4648 §5) without padding, strict, as used by JOSE (JWS, JWK). */
#ifndef AG_BASE64URL_H
#define AG_BASE64URL_H

#include <stddef.h>

#include "core/buf.h"

/* The most bytes that decoding n characters can give (an upper bound; exact for valid input). */
size_t ag_base64url_decoded_max(size_t n);

/* The characters that encoding n bytes gives (no padding). */
size_t ag_base64url_encoded_len(size_t n);

/*
 * Decodes in into out (cap bytes) and sets *out_len. Accepts only the alphabet A-Z a-z 0-9 - _
 * with no padding, no whitespace and no other byte, a length that is not 1 more than a multiple
 * of 4, and unused trailing bits that are zero (so every byte string has exactly one encoding).
 * The empty input decodes to zero bytes. Returns 0; AG_EINVAL for input that breaks a rule
 * above; AG_ERANGE when the result would not fit in cap. On failure out may hold garbage.
 */
int ag_base64url_decode(struct ag_str in, unsigned char *out, size_t cap, size_t *out_len);

/*
 * Encodes n bytes of in into out, which must hold ag_base64url_encoded_len(n) + 1 bytes; the
 * text is NUL-terminated. Returns the text length (without the NUL).
 */
size_t ag_base64url_encode(const void *in, size_t n, char *out);

#endif
