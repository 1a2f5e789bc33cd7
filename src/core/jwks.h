/* JWK Sets (RFC 7517): parsed once into immutable, reference-counted sets of public keys. */
#ifndef AG_JWKS_H
#define AG_JWKS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

/*
 * A set of public signature keys. Immutable once parsed, so any number of threads may verify
 * with it at once; each holder keeps a reference (ag_jwks_ref / ag_jwks_unref, atomic), which
 * is how a background thread swaps in a new set while workers still use the old one.
 */
struct ag_jwks;

/* One key of a set; lives as long as its set. */
struct ag_jwk;

enum {
    AG_JWKS_MAX_BYTES = 1024 * 1024, /* longest document ag_jwks_parse accepts */
    AG_JWKS_MAX_KEYS = 100,          /* most entries in "keys", usable or not */
    AG_JWK_KID_MAX = 256,            /* longest "kid" kept; a key with a longer one is skipped */
};

/*
 * Parses a JWK Set document: a JSON object (duplicate member names refused) with a "keys"
 * array. Usable keys, in document order:
 *   - kty "EC", crv "P-256" (ES256) or "P-384" (ES384): x and y of exactly the field size and
 *     a point on the curve;
 *   - kty "RSA": n of 2048 to 8192 bits, both n and e odd, e > 1 (RS256, RS384, RS512, PS256);
 *   - kty "OKP", crv "Ed25519": x of 32 bytes (EdDSA).
 * A key's "alg", when present, restricts it to that algorithm; "use", when present, must be
 * "sig"; "key_ops", when present, must contain "verify"; "kid" is optional (a string of at
 * most AG_JWK_KID_MAX bytes). Private members ("d", "p"...) and certificates are ignored.
 * Any other entry (kty "oct" among them: symmetric keys are never usable; an alg that does not
 * fit the key; a bad encoding; a point off the curve; a short modulus) is skipped and counted,
 * not an error: ag_jwks_skipped and ag_jwks_skip_reason tell about it.
 *
 * Returns 0 and *out (one reference, for the caller; the set may hold zero usable keys);
 * AG_ERANGE for a document over AG_JWKS_MAX_BYTES or with more than AG_JWKS_MAX_KEYS entries;
 * AG_EINVAL for text that is not JSON, a top level that is not an object, or a "keys" member
 * that is missing or not an array; AG_ENOMEM. err, when not NULL, says which.
 */
int ag_jwks_parse(const char *json, size_t len, struct ag_jwks **out, struct ag_err *err);

/* Takes one more reference on set (NULL allowed) and returns set. Safe from any thread. */
struct ag_jwks *ag_jwks_ref(struct ag_jwks *set);

/* Drops one reference (NULL allowed); the last one frees the set. Safe from any thread. */
void ag_jwks_unref(struct ag_jwks *set);

/* Usable keys in set (0 for NULL). */
size_t ag_jwks_count(const struct ag_jwks *set);

/* Entries of "keys" that were skipped as unusable (0 for NULL). */
size_t ag_jwks_skipped(const struct ag_jwks *set);

/*
 * Why the first skipped entry was skipped ("key 2: RSA modulus under 2048 bits"), for logs; ""
 * when none was. Valid while set is.
 */
const char *ag_jwks_skip_reason(const struct ag_jwks *set);

/* The usable key at index i < ag_jwks_count(set). */
const struct ag_jwk *ag_jwks_key(const struct ag_jwks *set, size_t i);

/* The key's "kid", or a slice with p == NULL when it has none. */
struct ag_str ag_jwk_kid(const struct ag_jwk *key);

/* The AG_JWT_* algorithm bits (see jwt.h) this key can verify; never 0. */
unsigned ag_jwk_algorithms(const struct ag_jwk *key);

/*
 * True when sig is a valid signature of signing_input under key with the one algorithm alg
 * (an AG_JWT_* bit). False when alg is not one bit of ag_jwk_algorithms(key), when sig is not
 * of the exact length the algorithm gives (ES256: 64-byte r||s, ES384: 96 bytes, RSA: the
 * modulus size, EdDSA: 64 bytes), or when it does not verify. Safe from any thread.
 */
bool ag_jwk_verify(const struct ag_jwk *key, unsigned alg, struct ag_str signing_input,
                   const unsigned char *sig, size_t sig_len);

#endif
