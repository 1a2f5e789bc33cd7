/* Opaque tokens (refresh and password reset): made from the CSPRNG, kept only as hashes. */
#include "tokens.h"

#include <sodium.h>

#include "core/base64url.h"
#include "core/digest.h"
#include "core/banned.h"

void auth_token_new(char out[AUTH_TOKEN_LEN + 1])
{
    unsigned char raw[32];
    randombytes_buf(raw, sizeof raw);
    ag_base64url_encode(raw, sizeof raw, out);
    sodium_memzero(raw, sizeof raw);
}

_Static_assert((int)AUTH_HASH_LEN == (int)AG_SHA256_HEX_LEN, "a token hash is a hex SHA-256");

int auth_token_hash(const char *token, size_t len, char out[AUTH_HASH_LEN + 1])
{
    int rc = ag_sha256_hex(token, len, out);
    if (rc < 0)
        out[0] = '\0'; /* matches no stored hash: a caller that does not check fails closed */
    return rc;
}
