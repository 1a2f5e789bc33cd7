/* The JWK Sets of the configured token issuers, kept fresh by one background thread. */
#ifndef AG_KEYRING_H
#define AG_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/jwt.h"

/*
 * One keyring per configuration snapshot. Workers verify tokens against it from any thread;
 * one background thread (its own ag_loop and ag_http_client) refetches each issuer's JWK Set
 * every refresh_interval_ms, and sooner when a worker meets a token whose kid it does not know.
 * A set is swapped in whole (reference counted: verifications in progress keep the old one);
 * a failed or empty fetch keeps the last good set. Every fetch outcome is logged.
 */
struct ag_keyring;

enum {
    AG_KEYRING_MAX_ISSUERS = 64,
    AG_KEYRING_DEFAULT_REFRESH_MS = 300000,
    AG_KEYRING_DEFAULT_MIN_REFRESH_MS = 10000,
    AG_KEYRING_MAX_JWKS_BYTES = 1024 * 1024,
};

/* One issuer as configured. Everything is copied by ag_keyring_new. */
struct ag_issuer_spec {
    const char *issuer;    /* "iss" of its tokens, exactly */
    const char *jwks_uri;  /* "http://host[:port]/path" (port 80 by default), or NULL */
    const char *jwks_file; /* a file holding the JWK Set (reread at each refresh), or NULL */
    const char *const *audiences;
    size_t audience_count;
    unsigned algorithms; /* AG_JWT_* bits */
    uint32_t clock_skew_s;
    size_t max_token_bytes;           /* 0: AG_JWT_DEFAULT_MAX_TOKEN */
    uint64_t refresh_interval_ms;     /* 0: AG_KEYRING_DEFAULT_REFRESH_MS */
    uint64_t min_refresh_interval_ms; /* token-triggered fetches at most this often; 0: 10 s */
};

/*
 * Makes a keyring for count issuers (1 to AG_KEYRING_MAX_ISSUERS); nothing is fetched yet.
 * Returns 0 and *out; AG_EINVAL (err names the issuer and the setting) for a policy that
 * ag_jwt_policy_check refuses, an issuer given twice, not exactly one of jwks_uri and
 * jwks_file, a jwks_uri that is not http://host[:port]/path (https:// is refused: TLS to the
 * JWKS endpoint is not supported yet), a min_refresh_interval_ms given over
 * refresh_interval_ms (left 0, it is capped at refresh_interval_ms);
 * AG_ENOMEM.
 */
int ag_keyring_new(const struct ag_issuer_spec *specs, size_t count, struct ag_keyring **out,
                   struct ag_err *err);

/*
 * Fetches every issuer's set once (files read, URIs fetched) and waits up to
 * initial_timeout_ms for them, then starts the background thread, which finishes the fetches
 * still running and refreshes each issuer every refresh_interval_ms (after a failure: sooner,
 * from min_refresh_interval_ms doubling up to refresh_interval_ms). A fetch that fails is
 * logged and not fatal: that issuer has no keys until one succeeds (its tokens get
 * AG_JWT_NO_KEYS, which also asks for a fetch). Call once, from the thread that made the
 * keyring. Returns 0; AG_ESYS, AG_ENOMEM (nothing started).
 */
int ag_keyring_start(struct ag_keyring *kr, uint32_t initial_timeout_ms, struct ag_err *err);

/*
 * Verifies token at now_s (seconds since the epoch) with ag_jwt_verify against every issuer's
 * current set. Thread-safe and cheap besides the signature check itself (a mutex held only to
 * take references on the sets). On AG_JWT_UNKNOWN_KID or AG_JWT_NO_KEYS asks the background
 * thread to refetch that issuer, at most once per min_refresh_interval_ms. claims (may be
 * NULL) as for ag_jwt_verify; on AG_JWT_OK claims->iss names the issuer.
 */
enum ag_jwt_status ag_keyring_verify(struct ag_keyring *kr, struct ag_str token, int64_t now_s,
                                     struct ag_jwt_claims *claims);

/* True when every issuer has a set with at least one usable key. Thread-safe. */
bool ag_keyring_ready(const struct ag_keyring *kr);

/* Issuers in the keyring. */
size_t ag_keyring_count(const struct ag_keyring *kr);

/* The issuer ("iss") at index i < ag_keyring_count. */
const char *ag_keyring_issuer(const struct ag_keyring *kr, size_t i);

/* Counters of one issuer, for metrics and tests (read atomically, one by one). */
struct ag_keyring_stats {
    bool has_keys;
    size_t keys;               /* usable keys in the current set */
    uint64_t fetches_ok;       /* fetches that installed a set */
    uint64_t fetches_failed;   /* fetches that failed (the last good set was kept) */
    uint64_t refetch_requests; /* fetches asked for by tokens (unknown kid, no keys) */
    int64_t last_ok_unix_s;    /* when a set was last installed; 0: never */
};

/* Fills *out for issuer i < ag_keyring_count. Thread-safe. */
void ag_keyring_stats(struct ag_keyring *kr, size_t i, struct ag_keyring_stats *out);

/*
 * Stops the background thread (fetches in flight are cancelled) and frees everything. No
 * ag_keyring_verify may run or start on another thread. NULL allowed.
 */
void ag_keyring_free(struct ag_keyring *kr);

#endif
