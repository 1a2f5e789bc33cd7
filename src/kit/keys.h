/* Token signing keys: an ES256 key directory (current, next, retired), rotation, JWKS, minting. */
#ifndef KIT_KEYS_H
#define KIT_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

/*
 * A key directory (mode 0700) holds one PEM file per key (<kid>.pem, mode 0600; encrypted with
 * AES-256 when a passphrase is given) and state.json, which names the current key (signs),
 * the next key (already published, signs after the next rotation) and the retired keys with
 * the time they stop being published. Files are replaced by write-to-temporary + rename, so a
 * reader never sees half a file. Publishing the next key ahead means a verifier that refreshed
 * its JWKS once already trusts the key the following rotation brings in.
 */
struct kit_keys;

/*
 * Opens dir. With create, an empty or missing directory gets a current and a next key.
 * passphrase (may be NULL) decrypts and encrypts the PEM files. Returns 0 and *out;
 * AG_ENOTFOUND (no keys, create false), AG_EINVAL (a malformed state file or key, a wrong
 * passphrase, a directory or key file readable by others than its owner), AG_ESYS, AG_ENOMEM.
 */
int kit_keys_open(const char *dir, const char *passphrase, bool create, struct kit_keys **out,
                  struct ag_err *err);
void kit_keys_free(struct kit_keys *keys);

/*
 * Rotates the keys in dir: the next key becomes current, a new next key is made, the old
 * current key is retired and stays published for keep_s seconds (the access token lifetime
 * plus clock skew), and retired keys past their time are deleted. Safe while services run:
 * an open kit_keys notices the new state (kit_keys_reload). Returns 0 and the new current kid
 * in new_kid (may be NULL); the codes of kit_keys_open.
 */
int kit_keys_rotate(const char *dir, const char *passphrase, uint32_t keep_s, char new_kid[64],
                    struct ag_err *err);

/*
 * Rereads dir when state.json changed since the last look (checked at most once a second,
 * so it is cheap to call before every signature). Thread-safe. Returns 0, or a code of
 * kit_keys_open (the keys already loaded stay in use).
 */
int kit_keys_reload(struct kit_keys *keys, struct ag_err *err);

/* The JWK Set of every published key (current, next, retired until their time), as JSON. */
int kit_keys_jwks(struct kit_keys *keys, struct ag_buf *out);

/* The kid of the signing key (valid until the next reload; copy it). */
void kit_keys_current_kid(struct kit_keys *keys, char out[64]);

/* What an access token says. */
struct kit_token_claims {
    const char *issuer;   /* iss */
    const char *audience; /* aud */
    const char *subject;  /* sub */
    const char *tenant;   /* tenant */
    const char *const *roles;
    size_t role_count;
    uint32_t ttl_s; /* exp = iat + ttl_s */
    int64_t now_s;  /* iat; 0: the current time */
};

/*
 * Mints an ES256 JWT signed by the current key (header alg, typ "at+jwt", kid; claims iss,
 * aud, sub, tenant, roles, iat, exp, jti — a random 128-bit id). Appends the compact token to
 * out and its jti (NUL-terminated) to jti_out when not NULL. Thread-safe. Returns 0, AG_EINVAL
 * (a missing claim), AG_ENOMEM, AG_ESYS (the signature failed).
 */
int kit_keys_mint(struct kit_keys *keys, const struct kit_token_claims *claims, struct ag_buf *out,
                  char jti_out[40], struct ag_err *err);

#endif
