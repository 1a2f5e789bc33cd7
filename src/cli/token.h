/* `agora token` and `agora keys rotate`: development tokens and signing-key rotation. */
#ifndef CLI_TOKEN_H
#define CLI_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "cli/platform.h"
#include "core/buf.h"
#include "core/err.h"

/* Where a token's signing keys and fixed claims come from. Strings are borrowed. */
struct token_source {
    const char *keys_dir;   /* the auth service's key directory */
    const char *issuer;     /* iss */
    const char *audience;   /* aud */
    const char *passphrase; /* decrypts the keys; NULL when they are not encrypted */
};

/*
 * Fills the NULL fields of src from the auth process of p (AGORA_AUTH_KEYS_DIR,
 * AGORA_AUTH_ISSUER, AGORA_AUDIENCE, AGORA_AUTH_KEYS_PASSPHRASE; p may be NULL): audience
 * defaults to "agora", the passphrase comes from the environment first. The strings stay p's.
 * Returns 0, or AG_EINVAL when no key directory or no issuer is known (err says which option
 * gives it).
 */
int token_source_defaults(struct token_source *src, const struct platform *p, struct ag_err *err);

/*
 * Mints an access token (the current key of src->keys_dir, created when the directory is
 * empty) for user with roles[0..role_count), tenant (NULL: no claim) and a lifetime of ttl_s,
 * and appends it to out. Returns 0, or the codes of kit_keys_open / kit_keys_mint.
 */
int token_mint(const struct token_source *src, const char *user, const char *const *roles,
               size_t role_count, const char *tenant, uint32_t ttl_s, struct ag_buf *out,
               struct ag_err *err);

/*
 * The token the agora commands call the services with: role admin for user, tenant (may be
 * NULL), keys and claims from p's auth process. *out is a malloc'd string (free it). Returns 0
 * or the codes above.
 */
int token_mint_admin(const struct platform *p, const char *user, const char *tenant, uint32_t ttl_s,
                     char **out, struct ag_err *err);

/*
 * agora token --user ID [--roles a,b] [--tenant T] [--ttl 15m] [--keys DIR] [--issuer URL]
 * [--audience A] [--config FILE]: mints an access token with the auth service's signing keys
 * and prints it alone on stdout. Defaults come from the auth process of the platform file
 * (AGORA_AUTH_KEYS_DIR, AGORA_AUTH_ISSUER, AGORA_AUDIENCE, AGORA_AUTH_KEYS_PASSPHRASE).
 * Returns 0, 1 on failure, 2 for usage.
 */
int cmd_token(int argc, char **argv);
void cmd_token_help(void);

#endif
