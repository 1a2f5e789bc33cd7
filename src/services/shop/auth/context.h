/* The auth service's shared state (settings, signing keys, the dummy hash) and small helpers. */
#ifndef AUTH_CONTEXT_H
#define AUTH_CONTEXT_H

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/err.h"
#include "kit/db.h"
#include "kit/keys.h"
#include "kit/kit.h"

enum {
    AUTH_RESET_TTL_MS = 30 * 60 * 1000,   /* a password reset token lives 30 minutes */
    AUTH_LOCK_WINDOW_MS = 15 * 60 * 1000, /* failures count for 15 minutes */
    AUTH_LOCK_FAILURES = 5,               /* this many failures lock the e-mail */
};

#define AUTH_DEFAULT_TENANT "default"
#define AUTH_AUDIENCE       "agora"

/* A TEXT parameter from a char array (KIT_DB_TEXT's NULL test would warn: -Waddress). */
#define AUTH_DB_STR(a) KIT_DB_TEXTN((a), strlen(a))

/* Built once by on_start, read-only afterwards (shared by every worker). */
struct auth_ctx {
    struct kit_keys *keys;
    const char *issuer;     /* AGORA_AUTH_ISSUER (lives as long as the app) */
    const char *keys_dir;   /* AGORA_AUTH_KEYS_DIR */
    uint32_t access_ttl_s;  /* AGORA_AUTH_ACCESS_TTL */
    uint32_t refresh_ttl_s; /* AGORA_AUTH_REFRESH_TTL */
    unsigned long long argon2_ops;
    size_t argon2_mem;                       /* bytes */
    bool dev;                                /* AGORA_ENV is development */
    char dummy_hash[crypto_pwhash_STRBYTES]; /* verified against for unknown e-mails */
};

/*
 * Reads the settings into a new context (keys not opened yet). Returns 0 and *out, AG_EINVAL
 * with err naming the setting that is out of bounds, AG_ENOMEM.
 */
int auth_ctx_new(struct kit_app *app, struct auth_ctx **out, struct ag_err *err);
/* Frees the context and its keys; NULL allowed. */
void auth_ctx_free(struct auth_ctx *ctx);
/* The context of the running service, from a request. */
struct auth_ctx *auth_ctx_of(struct kit_req *req);

/* A 401 problem with WWW-Authenticate: Bearer error="invalid_token" (a token-bearing call). */
int auth_resp_unauthorized(struct kit_req *req, const char *detail);

/* Overwrites the bytes of obj's string member key (a password the request carried); no-op
 * when it is absent or not a string. */
void auth_wipe_member(json_t *obj, const char *key);

#endif
