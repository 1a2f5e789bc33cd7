/* Opaque tokens (refresh and password reset): 32 random bytes in base64url, stored as SHA-256. */
#ifndef AUTH_TOKENS_H
#define AUTH_TOKENS_H

#include <stddef.h>

enum {
    AUTH_TOKEN_LEN = 43,        /* base64url of 32 bytes, no padding */
    AUTH_HASH_LEN = 64,         /* SHA-256 in lowercase hex */
    AUTH_TOKEN_INPUT_MAX = 512, /* a presented token longer than this is refused unread */
};

/* Writes a new token (AUTH_TOKEN_LEN characters and a NUL) from libsodium's CSPRNG. */
void auth_token_new(char out[AUTH_TOKEN_LEN + 1]);

/*
 * Writes the SHA-256 of the len bytes of token as lowercase hex and a NUL. Returns 0, or
 * AG_ENOMEM when the digest could not run; out is then "" (it matches no stored hash).
 */
int auth_token_hash(const char *token, size_t len, char out[AUTH_HASH_LEN + 1]);

#endif
