/* Identity for kit services: AGORA_ISSUERS parsing, the keyring, and each route's access rule. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kit/kit_identity.h"
#include "kit/kit_req.h"
#include "core/banned.h"

void kit_issuers_release(struct kit_issuers *issuers)
{
    for (size_t i = 0; i < issuers->count; i++) {
        free(issuers->items[i].issuer);
        free(issuers->items[i].jwks_uri);
        free(issuers->items[i].jwks_file);
    }
    free(issuers->items);
    issuers->items = NULL;
    issuers->count = 0;
}

static bool is_sep(char c)
{
    return c == ';' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The first occurrence of needle in s, or NULL. */
static const char *find(struct ag_str s, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= s.len; i++)
        if (memcmp(s.p + i, needle, n) == 0)
            return s.p + i;
    return NULL;
}

static int parse_entry(struct ag_str e, struct kit_issuer *out, struct ag_err *err)
{
    const char *h = find(e, "=http://"), *f = find(e, "=file:");
    const char *at = h && (!f || h < f) ? h : f;
    if (!at) {
        if (find(e, "=https://"))
            return ag_err_set(err, AG_EINVAL,
                              "AGORA_ISSUERS: %.*s: https:// JWKS URIs are not supported (use "
                              "http:// on a trusted network, or file:PATH)",
                              (int)e.len, e.p);
        return ag_err_set(err, AG_EINVAL,
                          "AGORA_ISSUERS: %.*s: an entry is ISSUER=http://HOST/PATH or "
                          "ISSUER=file:PATH",
                          (int)e.len, e.p);
    }
    size_t ilen = (size_t)(at - e.p);
    const char *v = at + 1;
    size_t vlen = e.len - ilen - 1;
    if (ilen == 0)
        return ag_err_set(err, AG_EINVAL, "AGORA_ISSUERS: %.*s: the issuer is empty", (int)e.len,
                          e.p);
    bool file = at == f;
    size_t prefix = file ? strlen("file:") : strlen("http://");
    if (vlen <= prefix || (!file && (v[prefix] == '/' || v[prefix] == ':')))
        return ag_err_set(err, AG_EINVAL, "AGORA_ISSUERS: %.*s: the %s is empty", (int)e.len, e.p,
                          file ? "file path" : "URI host");
    out->issuer = strndup(e.p, ilen);
    char *value = strndup(file ? v + prefix : v, file ? vlen - prefix : vlen);
    if (file)
        out->jwks_file = value;
    else
        out->jwks_uri = value;
    if (!out->issuer || !value)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    return 0;
}

int kit_issuers_parse(const char *text, struct kit_issuers *out, struct ag_err *err)
{
    int rc = 0;
    memset(out, 0, sizeof *out);
    size_t len = text ? strlen(text) : 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && is_sep(text[i]))
            i++;
        size_t start = i;
        while (i < len && !is_sep(text[i]))
            i++;
        if (i == start)
            continue;
        if (out->count == AG_KEYRING_MAX_ISSUERS) {
            rc = ag_err_set(err, AG_EINVAL, "AGORA_ISSUERS: over %d issuers",
                            AG_KEYRING_MAX_ISSUERS);
            goto out;
        }
        struct kit_issuer *items = realloc(out->items, (out->count + 1) * sizeof *items);
        if (!items) {
            rc = ag_err_set(err, AG_ENOMEM, "out of memory");
            goto out;
        }
        out->items = items;
        struct kit_issuer *it = &out->items[out->count++];
        memset(it, 0, sizeof *it);
        rc = parse_entry((struct ag_str){text + start, i - start}, it, err);
        if (rc < 0)
            goto out;
        for (size_t k = 0; k + 1 < out->count; k++) {
            if (strcmp(out->items[k].issuer, it->issuer) == 0) {
                rc = ag_err_set(err, AG_EINVAL, "AGORA_ISSUERS: the issuer %s is given twice",
                                it->issuer);
                goto out;
            }
        }
    }
out:
    if (rc < 0)
        kit_issuers_release(out);
    return rc;
}

int kit_algorithms_parse(const char *text, unsigned *bits, struct ag_err *err)
{
    unsigned set = 0;
    struct ag_str rest = ag_str_from_cstr(text);
    while (rest.p) {
        struct ag_str item;
        rest = ag_str_split(rest, ',', &item);
        item = ag_str_trim_ows(item);
        char name[32];
        if (item.len == 0 || item.len >= sizeof name)
            return ag_err_set(err, AG_EINVAL,
                              "AGORA_ISSUER_ALGORITHMS: an empty or over-long algorithm name");
        memcpy(name, item.p, item.len);
        name[item.len] = '\0';
        unsigned bit;
        if (ag_jwt_alg_parse(name, &bit) < 0) {
            const char *why = ag_jwt_alg_refusal(name);
            return ag_err_set(err, AG_EINVAL, "AGORA_ISSUER_ALGORITHMS: %s: %s", name,
                              why ? why : "unknown algorithm");
        }
        set |= bit;
    }
    if (!set)
        return ag_err_set(err, AG_EINVAL, "AGORA_ISSUER_ALGORITHMS: no algorithm listed");
    *bits = set;
    return 0;
}

int kit_identity_keyring(const struct kit_issuers *issuers, const char *audience,
                         unsigned algorithms, struct ag_keyring **out, struct ag_err *err)
{
    *out = NULL;
    if (issuers->count == 0)
        return 0;
    struct ag_issuer_spec specs[AG_KEYRING_MAX_ISSUERS];
    const char *const audiences[1] = {audience};
    for (size_t i = 0; i < issuers->count; i++) {
        specs[i] = (struct ag_issuer_spec){
            .issuer = issuers->items[i].issuer,
            .jwks_uri = issuers->items[i].jwks_uri,
            .jwks_file = issuers->items[i].jwks_file,
            .audiences = audiences,
            .audience_count = 1,
            .algorithms = algorithms,
            .clock_skew_s = 60,
        };
    }
    return ag_keyring_new(specs, issuers->count, out, err);
}

/* Answers 401 with the WWW-Authenticate challenge; error may be NULL (no token given). */
static int refuse_401(struct kit_req *req, const char *error, const char *description)
{
    char challenge[160];
    if (error)
        snprintf(challenge, sizeof challenge, "Bearer error=\"%s\", error_description=\"%s\"",
                 error, description);
    else
        snprintf(challenge, sizeof challenge, "Bearer");
    struct ag_http_header h = {AG_STR("WWW-Authenticate"), ag_str_from_cstr(challenge)};
    const char *detail = !error ? "this route needs a bearer token"
                         : strcmp(error, "invalid_request") == 0
                             ? "the Authorization field is not a bearer token"
                             : "the bearer token is not valid";
    kit_resp_problem_ext(req, 401, NULL, &h, 1, detail);
    return AG_EINVAL;
}

/* True when one of the comma-separated roles in list is among the token's roles. */
static bool has_any_role(const struct kit_req *req, const char *list)
{
    struct ag_str rest = ag_str_from_cstr(list);
    while (rest.p) {
        struct ag_str role;
        rest = ag_str_split(rest, ',', &role);
        role = ag_str_trim_ows(role);
        if (role.len && ag_jwt_claims_has_role(&req->claims, role))
            return true;
    }
    return false;
}

int kit_identity_check(struct kit_req *req, const struct kit_access *access,
                       struct ag_keyring *keyring, struct ag_jwt_cache *cache)
{
    bool protected_route = access->kind != KIT_ACCESS_PUBLIC;
    bool has_field = kit_req_header(req, "Authorization") != NULL;
    req->authenticated = false;
    if (has_field && req->token.len == 0)
        return refuse_401(req, "invalid_request", "not_bearer");
    if (req->token.len > 0) {
        int64_t now_s = (int64_t)time(NULL);
        size_t which = 0;
        if (!cache || !ag_jwt_cache_get(cache, req->token, now_s, &req->claims, &which)) {
            enum ag_jwt_status st =
                keyring ? ag_keyring_verify(keyring, req->token, now_s, &req->claims)
                        : AG_JWT_UNKNOWN_ISSUER;
            if (st != AG_JWT_OK)
                return refuse_401(req, "invalid_token", ag_jwt_status_name(st));
            if (cache)
                ag_jwt_cache_put(cache, req->token, &req->claims, 0, now_s);
        }
        req->authenticated = true;
    }
    if (!protected_route)
        return 0;
    if (!req->authenticated)
        return refuse_401(req, NULL, NULL);
    if (access->kind == KIT_ACCESS_ROLES && !has_any_role(req, access->roles)) {
        kit_resp_problem(req, 403, "this route needs one of the roles: %s", access->roles);
        return AG_EINVAL;
    }
    return 0;
}
