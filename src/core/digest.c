/* SHA-256 in hex, with OpenSSL's one-shot digest. */
#include "core/digest.h"

#include <openssl/evp.h>

#include "core/err.h"
#include "core/banned.h"

int ag_sha256_hex(const void *data, size_t len, char out[AG_SHA256_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32)
        return AG_ENOMEM;
    for (unsigned i = 0; i < md_len; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[AG_SHA256_HEX_LEN] = '\0';
    return 0;
}
