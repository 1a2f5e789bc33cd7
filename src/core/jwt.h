/* JWT bearer verification: compact JWS only, algorithms pinned by policy, several issuers. */
#ifndef AG_JWT_H
#define AG_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/jwks.h"

/*
 * The JWS algorithms (RFC 7518 names) that can be allowed, as bits of a set. There is no HS*
 * (a shared secret would let any verifier mint tokens, and "HS256 keyed with the RSA public
 * key" is the classic confusion attack) and no "none".
 */
enum ag_jwt_alg {
    AG_JWT_ES256 = 1u << 0,
    AG_JWT_ES384 = 1u << 1,
    AG_JWT_RS256 = 1u << 2,
    AG_JWT_RS384 = 1u << 3,
    AG_JWT_RS512 = 1u << 4,
    AG_JWT_PS256 = 1u << 5,
    AG_JWT_EDDSA = 1u << 6,
};

#define AG_JWT_ALG_ALL 0x7fu

enum {
    AG_JWT_DEFAULT_MAX_TOKEN = 8192, /* max_token_bytes when a policy leaves it 0 */
    AG_JWT_MAX_TOKEN_LIMIT = 65536,  /* the highest max_token_bytes ag_jwt_policy_check allows */
};

/* 9999-12-31T23:59:59Z: an exp, nbf or iat beyond it (or below 0) is MALFORMED. */
#define AG_JWT_NUMERIC_DATE_MAX INT64_C(253402300799)

/*
 * For configuration: sets *bit to the algorithm named exactly name ("ES256", "EdDSA"; case
 * matters, as in RFC 7518). Returns 0, or AG_EINVAL for NULL, "none", any HS* name and any
 * other name (*bit is then unchanged); ag_jwt_alg_refusal says why.
 */
int ag_jwt_alg_parse(const char *name, unsigned *bit);

/*
 * Why ag_jwt_alg_parse refuses name, as one static sentence for a configuration error
 * ("HS* algorithms are refused: ..."), or NULL when it accepts it.
 */
const char *ag_jwt_alg_refusal(const char *name);

/* The RFC 7518 name of one algorithm bit ("ES256"); "?" for anything else. */
const char *ag_jwt_alg_name(unsigned bit);

/* The outcome of a verification. Every status but OK means "reject the request with 401". */
enum ag_jwt_status {
    AG_JWT_OK = 0,
    AG_JWT_MALFORMED,      /* not a compact JWS, bad base64url/JSON, bad or missing claim */
    AG_JWT_TOO_LARGE,      /* over max_token_bytes (checked before any decoding) */
    AG_JWT_ALG_REFUSED,    /* alg none, HS* or unknown; not allowed; fits no key */
    AG_JWT_UNKNOWN_ISSUER, /* "iss" missing, or no policy has it */
    AG_JWT_UNKNOWN_KID,    /* "kid" names no key of the issuer's set: refresh the set */
    AG_JWT_BAD_SIGNATURE,  /* no candidate key verifies the signature */
    AG_JWT_EXPIRED,        /* now > exp + skew */
    AG_JWT_NOT_YET_VALID,  /* now + skew < nbf, or iat > now + skew */
    AG_JWT_WRONG_AUDIENCE, /* the policy lists audiences and "aud" holds none of them */
    AG_JWT_NO_KEYS,        /* the issuer has no key set yet (or an empty one) */
    AG_JWT_STATUS_COUNT
};

/*
 * A static lower_snake name for s ("ok", "malformed", "too_large", "alg_refused",
 * "unknown_issuer", "unknown_kid", "bad_signature", "expired", "not_yet_valid",
 * "wrong_audience", "no_keys"), usable as a metrics label and in a WWW-Authenticate
 * error_description; "unknown" for values out of range.
 */
const char *ag_jwt_status_name(enum ag_jwt_status s);

/* What one issuer's tokens must satisfy. Borrowed by ag_jwt_verify for the call only. */
struct ag_jwt_policy {
    const char *issuer;           /* "iss" must equal it byte for byte */
    const char *const *audiences; /* "aud" must hold one of them; none listed: aud ignored */
    size_t audience_count;
    unsigned algorithms;    /* AG_JWT_* bits allowed for this issuer */
    uint32_t clock_skew_s;  /* leeway for exp, nbf and iat */
    size_t max_token_bytes; /* 0: AG_JWT_DEFAULT_MAX_TOKEN */
};

/*
 * Checks a policy for use: a non-empty issuer, algorithms a non-empty subset of AG_JWT_ALG_ALL,
 * audiences non-NULL and non-empty strings, max_token_bytes at most AG_JWT_MAX_TOKEN_LIMIT,
 * clock_skew_s at most 3600. Returns 0, or AG_EINVAL with err naming the setting.
 */
int ag_jwt_policy_check(const struct ag_jwt_policy *policy, struct ag_err *err);

/*
 * The verified claims, NUL-terminated. A claim longer than its field, or holding a control
 * character (bytes below 0x20 and 0x7f: they would allow header injection when passed on),
 * makes the token MALFORMED rather than being cut.
 */
struct ag_jwt_claims {
    char sub[256];    /* "sub": required, a non-empty string */
    char tenant[128]; /* "tenant", else "tenant_id": a string; "" when absent */
    /*
     * "roles": an array of strings, or one string of roles separated by spaces or commas;
     * else "realm_access"."roles" (Keycloak). Stored comma-separated without empties; a role
     * holding a comma or a space inside an array is MALFORMED (it would split into two).
     */
    char roles[1024];
    size_t role_count;
    char jti[128];    /* "jti": a string; "" when absent */
    char scope[1024]; /* "scope": a string of space-separated scopes; "" when absent */
    char iss[512];    /* "iss", equal to the matching policy's issuer */
    int64_t exp;      /* seconds since the epoch (fractions rounded down) */
    int64_t nbf, iat; /* 0 when absent (fractions rounded up) */
};

/* True when role is one of c's roles (exact bytes). */
bool ag_jwt_claims_has_role(const struct ag_jwt_claims *c, struct ag_str role);

/*
 * Verifies a compact JWS token (the bytes after "Bearer ") at time now_s (seconds since the
 * epoch) against issuer_count issuers: policies[i] and keys[i], the issuer's current key set
 * (NULL when it has none yet). Checks, in this order:
 *   1. size: over the largest max_token_bytes of the policies → TOO_LARGE (no decoding yet);
 *   2. form: exactly three base64url parts (no padding, whitespace, or a fifth JWE part), a
 *      header and a payload that are JSON objects without duplicate names → MALFORMED;
 *   3. header: "alg" a supported algorithm (none, HS* → ALG_REFUSED); "kid" absent or a string
 *      of at most AG_JWK_KID_MAX bytes; "typ" absent or "JWT"/"at+jwt" in any case with an
 *      optional "application/" prefix; no "crit" (no extension is understood) → MALFORMED;
 *      "jku", "jwk", "x5u" and "x5c" are ignored: keys never come from the token;
 *   4. issuer: the policy whose issuer equals "iss" → else UNKNOWN_ISSUER; then that
 *      policy's own max_token_bytes → TOO_LARGE, and its algorithms → ALG_REFUSED;
 *   5. keys: keys[i] NULL or empty → NO_KEYS. With a "kid", the keys having that kid (none →
 *      UNKNOWN_KID); without, every key; of those, the ones that can verify alg (none →
 *      ALG_REFUSED) are tried in order → BAD_SIGNATURE when none verifies;
 *   6. time: "exp" required, a number (else MALFORMED); now > exp + skew → EXPIRED;
 *      "nbf" present and now + skew < nbf, or "iat" present and iat > now + skew →
 *      NOT_YET_VALID; numbers outside 0..AG_JWT_NUMERIC_DATE_MAX → MALFORMED;
 *   7. audience: when the policy lists audiences, "aud" (a string or an array of strings)
 *      must hold one → WRONG_AUDIENCE (a missing aud included; an aud of another type →
 *      MALFORMED);
 *   8. claims: as struct ag_jwt_claims says → MALFORMED.
 * The algorithm is never chosen by the token: the header's alg must be allowed by the policy
 * and fit the key (its type and curve, and its own "alg").
 *
 * claims (may be NULL) is filled only on AG_JWT_OK (it is cleared first in any case).
 * which_issuer (may be NULL) gets the issuer's index once step 4 found it, else SIZE_MAX.
 * Never allocates more than a few times the token size; safe from any thread.
 */
enum ag_jwt_status ag_jwt_verify(struct ag_str token, const struct ag_jwt_policy *policies,
                                 const struct ag_jwks *const *keys, size_t issuer_count,
                                 int64_t now_s, struct ag_jwt_claims *claims, size_t *which_issuer);

#endif
