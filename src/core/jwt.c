/* JWT bearer verification: compact JWS only, algorithms pinned by policy, several issuers. */
#include "core/jwt.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64url.h"
#include "core/banned.h"

enum {
    /*
     * Without a "kid", at most this many keys that fit the algorithm are tried: each try is a
     * signature check, and a forged token must not buy a hundred of them.
     */
    KEYS_TRIED_WITHOUT_KID = 10,
    MAX_CLOCK_SKEW_S = 3600,
};

static const struct {
    const char *name;
    unsigned bit;
} alg_names[] = {
    {"ES256", AG_JWT_ES256}, {"ES384", AG_JWT_ES384}, {"RS256", AG_JWT_RS256},
    {"RS384", AG_JWT_RS384}, {"RS512", AG_JWT_RS512}, {"PS256", AG_JWT_PS256},
    {"EdDSA", AG_JWT_EDDSA},
};

int ag_jwt_alg_parse(const char *name, unsigned *bit)
{
    for (size_t i = 0; name && i < sizeof alg_names / sizeof alg_names[0]; i++) {
        if (strcmp(name, alg_names[i].name) == 0) {
            *bit = alg_names[i].bit;
            return 0;
        }
    }
    return AG_EINVAL;
}

const char *ag_jwt_alg_refusal(const char *name)
{
    unsigned bit;
    if (ag_jwt_alg_parse(name, &bit) == 0)
        return NULL;
    if (!name)
        return "no JWS algorithm named";
    if (strncmp(name, "HS", 2) == 0)
        return "HS* algorithms are refused: HMAC needs a shared secret, with which every "
               "verifier could mint tokens";
    if (strcmp(name, "none") == 0)
        return "alg \"none\" is refused: tokens must be signed";
    return "unknown JWS algorithm (supported: ES256, ES384, RS256, RS384, RS512, PS256, EdDSA)";
}

const char *ag_jwt_alg_name(unsigned bit)
{
    for (size_t i = 0; i < sizeof alg_names / sizeof alg_names[0]; i++)
        if (alg_names[i].bit == bit)
            return alg_names[i].name;
    return "?";
}

static const char *const status_names[AG_JWT_STATUS_COUNT] = {
    [AG_JWT_OK] = "ok",
    [AG_JWT_MALFORMED] = "malformed",
    [AG_JWT_TOO_LARGE] = "too_large",
    [AG_JWT_ALG_REFUSED] = "alg_refused",
    [AG_JWT_UNKNOWN_ISSUER] = "unknown_issuer",
    [AG_JWT_UNKNOWN_KID] = "unknown_kid",
    [AG_JWT_BAD_SIGNATURE] = "bad_signature",
    [AG_JWT_EXPIRED] = "expired",
    [AG_JWT_NOT_YET_VALID] = "not_yet_valid",
    [AG_JWT_WRONG_AUDIENCE] = "wrong_audience",
    [AG_JWT_NO_KEYS] = "no_keys",
};

const char *ag_jwt_status_name(enum ag_jwt_status s)
{
    return (unsigned)s < AG_JWT_STATUS_COUNT ? status_names[s] : "unknown";
}

static size_t max_token_of(const struct ag_jwt_policy *p)
{
    return p->max_token_bytes ? p->max_token_bytes : AG_JWT_DEFAULT_MAX_TOKEN;
}

int ag_jwt_policy_check(const struct ag_jwt_policy *p, struct ag_err *err)
{
    size_t iss_cap = sizeof((struct ag_jwt_claims *)0)->iss;
    if (!p->issuer || !p->issuer[0] || strlen(p->issuer) >= iss_cap)
        return ag_err_set(err, AG_EINVAL, "issuer must be a non-empty string under %zu bytes",
                          iss_cap);
    if (p->algorithms == 0 || (p->algorithms & ~AG_JWT_ALG_ALL) != 0)
        return ag_err_set(err, AG_EINVAL, "issuer %s: algorithms must be a non-empty set",
                          p->issuer);
    if (p->audience_count > 0 && !p->audiences)
        return ag_err_set(err, AG_EINVAL, "issuer %s: audiences missing", p->issuer);
    for (size_t i = 0; i < p->audience_count; i++)
        if (!p->audiences[i] || !p->audiences[i][0])
            return ag_err_set(err, AG_EINVAL, "issuer %s: audience %zu is empty", p->issuer, i);
    if (p->max_token_bytes > AG_JWT_MAX_TOKEN_LIMIT)
        return ag_err_set(err, AG_EINVAL, "issuer %s: max_token_bytes over %d", p->issuer,
                          AG_JWT_MAX_TOKEN_LIMIT);
    if (p->clock_skew_s > MAX_CLOCK_SKEW_S)
        return ag_err_set(err, AG_EINVAL, "issuer %s: clock_skew_s over %d", p->issuer,
                          MAX_CLOCK_SKEW_S);
    return 0;
}

bool ag_jwt_claims_has_role(const struct ag_jwt_claims *c, struct ag_str role)
{
    struct ag_str rest = {c->roles, strlen(c->roles)};
    while (rest.p && rest.len > 0) {
        struct ag_str one;
        rest = ag_str_split(rest, ',', &one);
        if (ag_str_eq(one, role))
            return true;
    }
    return false;
}

/* ---- the token's parts ---- */

struct jws {
    struct ag_str parts[3];      /* header, payload, signature: base64url text */
    struct ag_str signing_input; /* header.payload */
    unsigned char *buf;          /* decoded header, payload and signature */
    json_t *header, *payload;
    const unsigned char *sig;
    size_t sig_len;
    unsigned alg;
    struct ag_str kid; /* p == NULL: no kid */
};

static bool is_b64url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Splits token into its three parts; false unless it is three base64url runs joined by dots. */
static bool split_compact(struct ag_str token, struct jws *j)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i < token.len; i++) {
        unsigned char c = (unsigned char)token.p[i];
        if (c == '.') {
            if (n == 2)
                return false; /* a JWE has five parts; anything past three is refused */
            j->parts[n++] = (struct ag_str){token.p + start, i - start};
            start = i + 1;
        } else if (!is_b64url_char(c)) {
            return false;
        }
    }
    if (n != 2)
        return false;
    j->parts[2] = (struct ag_str){token.p + start, token.len - start};
    j->signing_input = (struct ag_str){token.p, j->parts[0].len + 1 + j->parts[1].len};
    return j->parts[0].len > 0 && j->parts[1].len > 0;
}

/* Decodes part i at out and parses it as a JSON object; NULL when it is not one. */
static json_t *decode_object(struct ag_str part, unsigned char *out, size_t cap)
{
    size_t len;
    if (ag_base64url_decode(part, out, cap, &len) < 0)
        return NULL;
    json_t *v = json_loadb((const char *)out, len, JSON_REJECT_DUPLICATES, NULL);
    if (v && !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

/* True when s (len bytes) is "jwt" or "at+jwt", any case, after an optional "application/". */
static bool typ_acceptable(const char *s, size_t len)
{
    struct ag_str t = {s, len};
    struct ag_str app = AG_STR("application/");
    if (t.len >= app.len && ag_str_eq_nocase((struct ag_str){t.p, app.len}, app)) {
        t.p += app.len;
        t.len -= app.len;
    }
    return ag_str_eq_nocase(t, AG_STR("jwt")) || ag_str_eq_nocase(t, AG_STR("at+jwt"));
}

/* Step 3: alg, kid, typ and crit of the header. */
static enum ag_jwt_status check_header(struct jws *j)
{
    json_t *alg = json_object_get(j->header, "alg");
    if (!json_is_string(alg))
        return AG_JWT_MALFORMED;
    if (ag_jwt_alg_parse(json_string_value(alg), &j->alg) < 0)
        return AG_JWT_ALG_REFUSED;
    if (json_object_get(j->header, "crit"))
        return AG_JWT_MALFORMED;
    json_t *typ = json_object_get(j->header, "typ");
    if (typ &&
        (!json_is_string(typ) || !typ_acceptable(json_string_value(typ), json_string_length(typ))))
        return AG_JWT_MALFORMED;
    json_t *kid = json_object_get(j->header, "kid");
    if (kid) {
        if (!json_is_string(kid) || json_string_length(kid) > AG_JWK_KID_MAX)
            return AG_JWT_MALFORMED;
        j->kid = (struct ag_str){json_string_value(kid), json_string_length(kid)};
    }
    return AG_JWT_OK;
}

/* Step 4: the policy whose issuer equals "iss", or SIZE_MAX. */
static size_t find_issuer(json_t *payload, const struct ag_jwt_policy *policies, size_t count)
{
    json_t *iss = json_object_get(payload, "iss");
    if (!json_is_string(iss))
        return SIZE_MAX;
    struct ag_str s = {json_string_value(iss), json_string_length(iss)};
    for (size_t i = 0; i < count; i++)
        if (policies[i].issuer && ag_str_eq(s, ag_str_from_cstr(policies[i].issuer)))
            return i;
    return SIZE_MAX;
}

/* Step 5: picks the candidate keys and checks the signature. */
static enum ag_jwt_status check_signature(const struct jws *j, const struct ag_jwks *set)
{
    size_t count = ag_jwks_count(set);
    if (count == 0)
        return AG_JWT_NO_KEYS;
    bool kid_found = false;
    size_t tried = 0;
    for (size_t i = 0; i < count; i++) {
        const struct ag_jwk *k = ag_jwks_key(set, i);
        if (j->kid.p) {
            struct ag_str kid = ag_jwk_kid(k);
            if (!kid.p || !ag_str_eq(kid, j->kid))
                continue;
            kid_found = true;
        }
        if (!(ag_jwk_algorithms(k) & j->alg))
            continue;
        if (!j->kid.p && tried == KEYS_TRIED_WITHOUT_KID)
            break;
        tried++;
        if (ag_jwk_verify(k, j->alg, j->signing_input, j->sig, j->sig_len))
            return AG_JWT_OK;
    }
    if (j->kid.p && !kid_found)
        return AG_JWT_UNKNOWN_KID;
    return tried == 0 ? AG_JWT_ALG_REFUSED : AG_JWT_BAD_SIGNATURE;
}

/* ---- claims ---- */

/*
 * A NumericDate at v into *out: an integer or a finite real within 0..AG_JWT_NUMERIC_DATE_MAX,
 * a real rounded down (round_up false) or up. False for anything else.
 */
static bool numeric_date(json_t *v, bool round_up, int64_t *out)
{
    double d;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0 || i > AG_JWT_NUMERIC_DATE_MAX)
            return false;
        *out = (int64_t)i;
        return true;
    }
    if (!json_is_real(v))
        return false;
    d = json_real_value(v);
    if (!isfinite(d) || d < 0 || d > (double)AG_JWT_NUMERIC_DATE_MAX)
        return false;
    *out = (int64_t)(round_up ? ceil(d) : floor(d));
    return true;
}

/* Step 6: exp, nbf and iat against now. */
static enum ag_jwt_status check_times(json_t *payload, const struct ag_jwt_policy *p, int64_t now,
                                      struct ag_jwt_claims *c)
{
    json_t *nbf = json_object_get(payload, "nbf"), *iat = json_object_get(payload, "iat");
    if (!numeric_date(json_object_get(payload, "exp"), false, &c->exp) ||
        (nbf && !numeric_date(nbf, true, &c->nbf)) || (iat && !numeric_date(iat, true, &c->iat)))
        return AG_JWT_MALFORMED;
    int64_t skew = (int64_t)p->clock_skew_s;
    if (now > c->exp + skew)
        return AG_JWT_EXPIRED;
    if ((nbf && now + skew < c->nbf) || (iat && c->iat > now + skew))
        return AG_JWT_NOT_YET_VALID;
    return AG_JWT_OK;
}

static bool audience_listed(const struct ag_jwt_policy *p, json_t *v)
{
    struct ag_str s = {json_string_value(v), json_string_length(v)};
    for (size_t i = 0; i < p->audience_count; i++)
        if (ag_str_eq(s, ag_str_from_cstr(p->audiences[i])))
            return true;
    return false;
}

/* Step 7: "aud" against the policy's audiences. */
static enum ag_jwt_status check_audience(json_t *payload, const struct ag_jwt_policy *p)
{
    json_t *aud = json_object_get(payload, "aud");
    bool found = false;
    if (json_is_string(aud)) {
        found = audience_listed(p, aud);
    } else if (json_is_array(aud)) {
        size_t i;
        json_t *one;
        json_array_foreach(aud, i, one)
        {
            if (!json_is_string(one))
                return AG_JWT_MALFORMED;
            found = found || audience_listed(p, one);
        }
    } else if (aud) {
        return AG_JWT_MALFORMED;
    }
    return p->audience_count == 0 || found ? AG_JWT_OK : AG_JWT_WRONG_AUDIENCE;
}

/* True when s holds no byte that may not go into an HTTP field value or a log line. */
static bool printable(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            return false;
    }
    return true;
}

/* Copies string claim v (NULL: absent) into dst[cap]; false when it does not fit the rules. */
static bool copy_claim(json_t *v, char *dst, size_t cap, bool required)
{
    if (!v)
        return !required;
    if (!json_is_string(v))
        return false;
    size_t len = json_string_length(v);
    if (len >= cap || (required && len == 0) || !printable(json_string_value(v), len))
        return false;
    memcpy(dst, json_string_value(v), len);
    dst[len] = '\0';
    return true;
}

/* Appends one role to c->roles; false when it does not fit or holds a forbidden byte. */
static bool add_role(struct ag_jwt_claims *c, size_t *used, const char *role, size_t len)
{
    if (len == 0)
        return true;
    if (!printable(role, len) || memchr(role, ',', len) || memchr(role, ' ', len))
        return false;
    size_t need = len + (*used ? 1 : 0);
    if (need >= sizeof c->roles - *used)
        return false;
    if (*used)
        c->roles[(*used)++] = ',';
    memcpy(c->roles + *used, role, len);
    *used += len;
    c->roles[*used] = '\0';
    c->role_count++;
    return true;
}

/* "roles" (or realm_access.roles) into c->roles. */
static bool copy_roles(json_t *payload, struct ag_jwt_claims *c)
{
    json_t *roles = json_object_get(payload, "roles");
    if (!roles) {
        json_t *realm = json_object_get(payload, "realm_access");
        roles = json_is_object(realm) ? json_object_get(realm, "roles") : NULL;
    }
    size_t used = 0;
    if (!roles)
        return true;
    if (json_is_string(roles)) {
        const char *s = json_string_value(roles);
        size_t len = json_string_length(roles), start = 0;
        for (size_t i = 0; i <= len; i++) {
            if (i == len || s[i] == ' ' || s[i] == ',') {
                if (!add_role(c, &used, s + start, i - start))
                    return false;
                start = i + 1;
            }
        }
        return true;
    }
    if (!json_is_array(roles))
        return false;
    size_t i;
    json_t *one;
    json_array_foreach(roles, i, one)
    {
        if (!json_is_string(one) ||
            !add_role(c, &used, json_string_value(one), json_string_length(one)))
            return false;
    }
    return true;
}

/* Step 8: the claims passed on. */
static enum ag_jwt_status copy_claims(json_t *payload, struct ag_jwt_claims *c)
{
    json_t *tenant = json_object_get(payload, "tenant");
    if (!tenant)
        tenant = json_object_get(payload, "tenant_id");
    if (!copy_claim(json_object_get(payload, "sub"), c->sub, sizeof c->sub, true) ||
        !copy_claim(json_object_get(payload, "iss"), c->iss, sizeof c->iss, true) ||
        !copy_claim(tenant, c->tenant, sizeof c->tenant, false) ||
        !copy_claim(json_object_get(payload, "jti"), c->jti, sizeof c->jti, false) ||
        !copy_claim(json_object_get(payload, "scope"), c->scope, sizeof c->scope, false) ||
        !copy_roles(payload, c))
        return AG_JWT_MALFORMED;
    return AG_JWT_OK;
}

/* ---- verification ---- */

/* Steps 2 to 8 once the size is known to be acceptable. */
static enum ag_jwt_status verify_parsed(struct jws *j, const struct ag_jwt_policy *policies,
                                        const struct ag_jwks *const *keys, size_t count,
                                        int64_t now, struct ag_jwt_claims *c, size_t *which)
{
    size_t hcap = ag_base64url_decoded_max(j->parts[0].len);
    size_t pcap = ag_base64url_decoded_max(j->parts[1].len);
    size_t scap = ag_base64url_decoded_max(j->parts[2].len);
    j->buf = malloc(hcap + pcap + scap + 1);
    if (!j->buf)
        return AG_JWT_MALFORMED; /* nothing better to say; the request is refused either way */
    j->header = decode_object(j->parts[0], j->buf, hcap);
    j->payload = decode_object(j->parts[1], j->buf + hcap, pcap);
    if (!j->header || !j->payload)
        return AG_JWT_MALFORMED;
    enum ag_jwt_status st = check_header(j);
    if (st != AG_JWT_OK)
        return st;
    size_t idx = find_issuer(j->payload, policies, count);
    if (idx == SIZE_MAX)
        return AG_JWT_UNKNOWN_ISSUER;
    *which = idx;
    const struct ag_jwt_policy *p = &policies[idx];
    if (j->signing_input.len + 1 + j->parts[2].len > max_token_of(p))
        return AG_JWT_TOO_LARGE;
    if (!(p->algorithms & j->alg))
        return AG_JWT_ALG_REFUSED;
    unsigned char *sig = j->buf + hcap + pcap;
    if (ag_base64url_decode(j->parts[2], sig, scap, &j->sig_len) < 0)
        return AG_JWT_MALFORMED;
    j->sig = sig;
    st = check_signature(j, keys ? keys[idx] : NULL);
    if (st != AG_JWT_OK)
        return st;
    st = check_times(j->payload, p, now, c);
    if (st != AG_JWT_OK)
        return st;
    st = check_audience(j->payload, p);
    if (st != AG_JWT_OK)
        return st;
    return copy_claims(j->payload, c);
}

enum ag_jwt_status ag_jwt_verify(struct ag_str token, const struct ag_jwt_policy *policies,
                                 const struct ag_jwks *const *keys, size_t issuer_count,
                                 int64_t now_s, struct ag_jwt_claims *claims, size_t *which_issuer)
{
    struct ag_jwt_claims scratch;
    struct ag_jwt_claims *c = claims ? claims : &scratch;
    size_t which = SIZE_MAX;
    memset(c, 0, sizeof *c);

    size_t limit = issuer_count ? 0 : AG_JWT_DEFAULT_MAX_TOKEN;
    for (size_t i = 0; i < issuer_count; i++)
        if (max_token_of(&policies[i]) > limit)
            limit = max_token_of(&policies[i]);
    /* Far outside any NumericDate, so that now +- skew cannot overflow below. */
    const int64_t far = (int64_t)1 << 62;
    int64_t now = now_s < -far ? -far : now_s > far ? far : now_s;

    enum ag_jwt_status st;
    struct jws j = {0};
    if (!token.p || token.len > limit)
        st = token.p ? AG_JWT_TOO_LARGE : AG_JWT_MALFORMED;
    else if (!split_compact(token, &j))
        st = AG_JWT_MALFORMED;
    else
        st = verify_parsed(&j, policies, keys, issuer_count, now, c, &which);
    json_decref(j.header);
    json_decref(j.payload);
    free(j.buf);
    if (st != AG_JWT_OK)
        memset(c, 0, sizeof *c);
    if (which_issuer)
        *which_issuer = which;
    return st;
}
