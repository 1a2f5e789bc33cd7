/* Message digests as the services store and send them (hex text). */
#ifndef AG_DIGEST_H
#define AG_DIGEST_H

#include <stddef.h>

enum { AG_SHA256_HEX_LEN = 64 };

/* The lowercase hex SHA-256 of data into out (65 bytes with the NUL). Returns 0, or AG_ENOMEM
 * when OpenSSL could not run the digest. */
int ag_sha256_hex(const void *data, size_t len, char out[AG_SHA256_HEX_LEN + 1]);

#endif
