/* Passwords: Argon2id hashing and verification, change, reset by single-use token. */
#ifndef AUTH_PASSWORDS_H
#define AUTH_PASSWORDS_H

#include <sodium.h>
#include <stdbool.h>

#include "context.h"

/*
 * Hashes password with Argon2id at the context's parameters into out (a NUL-terminated
 * PHC string). Returns 0, or AG_ENOMEM when libsodium could not get the memory.
 */
int auth_password_hash(const struct auth_ctx *ctx, const char *password,
                       char out[crypto_pwhash_STRBYTES]);
/* True when password matches hash (an Argon2id PHC string; anything else never matches). */
bool auth_password_verify(const char *hash, const char *password);
/* True when hash was made with other parameters than the context's (rehash after login). */
bool auth_password_needs_rehash(const struct auth_ctx *ctx, const char *hash);

/* PUT /api/v1/auth/password */
int auth_password_change(struct kit_req *req);
/* POST /api/v1/auth/password-reset */
int auth_password_reset(struct kit_req *req);
/* POST /api/v1/auth/password-reset/confirm */
int auth_password_reset_confirm(struct kit_req *req);

#endif
