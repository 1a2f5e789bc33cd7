/* Opaque tokens (refresh and password reset): made from the CSPRNG, kept only as hashes. */
#include "tokens.h"

#include <sodium.h>

#include "core/base64url.h"
#include "core/banned.h"

void auth_token_new(char out[AUTH_TOKEN_LEN + 1])
{
    unsigned char raw[32];
    randombytes_buf(raw, sizeof raw);
    ag_base64url_encode(raw, sizeof raw, out);
    sodium_memzero(raw, sizeof raw);
}

void auth_token_hash(const char *token, size_t len, char out[AUTH_HASH_LEN + 1])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)token, len);
    sodium_bin2hex(out, AUTH_HASH_LEN + 1, digest, sizeof digest);
}
