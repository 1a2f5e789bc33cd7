/* JWS signing (RFC 7515 compact form) with ES256: the issuing side of core/jwt.c. */
#ifndef AG_JWS_SIGN_H
#define AG_JWS_SIGN_H

#include <openssl/types.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

enum {
    AG_JWS_MAX_SIGNING_INPUT = 64 * 1024, /* longest base64url(header) "." base64url(payload) */
};

/*
 * Signs payload_json (len bytes, not parsed: the caller vouches that it is a JSON object) with
 * key, which must be a P-256 EC private key, and appends the compact JWS
 * base64url(header) "." base64url(payload) "." base64url(r||s) to out. The header is
 * {"alg":"ES256","typ":typ,"kid":kid} in that order, typ and kid left out when NULL. The key is
 * borrowed for the call; safe from any thread (OpenSSL permitting concurrent use of one key).
 *
 * Returns 0; AG_EINVAL for a key that is not EC P-256, or a kid or typ that is not UTF-8;
 * AG_ERANGE when the signing input exceeds AG_JWS_MAX_SIGNING_INPUT or the token does not fit
 * out's maximum; AG_ENOMEM; AG_ESYS when OpenSSL cannot sign (a public key without its private
 * half among the causes). On failure out is as it was; err, when not NULL, says why.
 */
int ag_jws_sign_es256(EVP_PKEY *key, const char *kid, const char *typ, const char *payload_json,
                      size_t len, struct ag_buf *out, struct ag_err *err);

#endif
