/* Identity for kit services: AGORA_ISSUERS parsing, the keyring, and each route's access rule. */
#ifndef KIT_IDENTITY_H
#define KIT_IDENTITY_H

#include <stddef.h>

#include "core/err.h"
#include "core/jwt_cache.h"
#include "core/keyring.h"
#include "kit/kit.h"

struct kit_req;

/* One trusted issuer: exactly one of jwks_uri and jwks_file is set. */
struct kit_issuer {
    char *issuer;
    char *jwks_uri;  /* "http://host[:port]/path" */
    char *jwks_file; /* a JWK Set file, reread at each refresh */
};

struct kit_issuers {
    struct kit_issuer *items;
    size_t count;
};

/*
 * Parses AGORA_ISSUERS: entries separated by ';' or whitespace (empty entries skipped), each
 * ISSUER=JWKS split at the first "=http://" or "=file:", JWKS being "http://..." (jwks_uri) or
 * "file:PATH" (jwks_file). NULL or blank text gives no issuers. Rejects (AG_EINVAL, err names
 * the entry): an entry with neither separator (https:// is named: TLS to a JWKS endpoint is not
 * supported), an empty issuer, an empty URI host or file path, an issuer given twice, over
 * AG_KEYRING_MAX_ISSUERS entries. Returns 0 (release with kit_issuers_release), AG_EINVAL,
 * AG_ENOMEM.
 */
int kit_issuers_parse(const char *text, struct kit_issuers *out, struct ag_err *err);
void kit_issuers_release(struct kit_issuers *issuers);

/*
 * Parses AGORA_ISSUER_ALGORITHMS: a comma list of RFC 7518 names ("ES256,RS256"; spaces
 * around names allowed). Returns 0 and *bits; AG_EINVAL for an empty list or a refused name
 * (none, HS*, unknown), err saying why.
 */
int kit_algorithms_parse(const char *text, unsigned *bits, struct ag_err *err);

/*
 * Makes the keyring for issuers with audience and algorithms (not started). Returns 0 and *out
 * (NULL when there are no issuers), or the codes of ag_keyring_new.
 */
int kit_identity_keyring(const struct kit_issuers *issuers, const char *audience,
                         unsigned algorithms, struct ag_keyring **out, struct ag_err *err);

/*
 * Applies access to req on a handler thread: reads the bearer token (when the request has an
 * Authorization field), verifies it through cache (may be NULL) and keyring (may be NULL: no
 * issuers), and fills req's identity. Returns 0 when the handler may run; otherwise answers
 * 401 (no token on a protected route: WWW-Authenticate: Bearer; a token that does not verify,
 * on any route: error="invalid_token"; an Authorization that is not Bearer: error=
 * "invalid_request") or 403 (no listed role) and returns AG_EINVAL.
 */
int kit_identity_check(struct kit_req *req, const struct kit_access *access,
                       struct ag_keyring *keyring, struct ag_jwt_cache *cache);

#endif
