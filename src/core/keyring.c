/* The JWK Sets of the configured token issuers, kept fresh by one background thread. */
#include "core/keyring.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/http_client.h"
#include "core/jwks.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/banned.h"

enum {
    FETCH_CONNECT_TIMEOUT_MS = 5000,
    FETCH_RESPONSE_TIMEOUT_MS = 15000,
    MAX_BACKOFF_SHIFT = 10,
};

struct issuer {
    struct ag_keyring *kr;
    size_t index;
    char *name;
    char *file;    /* jwks_file, or NULL */
    char *uri;     /* jwks_uri as given, for logs, or NULL */
    char *address; /* "host:port" to connect to */
    char *host;    /* the Host field: the URI's authority */
    char *path;    /* origin-form target */
    char **audiences;
    uint64_t refresh_ms, min_refresh_ms;

    struct ag_jwks *current; /* guarded by kr->lock; the keyring holds one reference */

    /* Loop thread only. */
    struct ag_timer timer;
    struct ag_http_call *call;
    struct ag_buf body;
    bool fetching;
    bool initial; /* the first fetch, which ag_keyring_start waits for */
    unsigned failures;

    /* Any thread. */
    atomic_uint_fast64_t last_fetch_ms; /* monotonic start of the last fetch; 0: never */
    atomic_uint_fast64_t fetches_ok, fetches_failed, refetch_requests;
    atomic_int_fast64_t last_ok_unix_s;
    atomic_size_t keys;
};

struct ag_keyring {
    size_t count;
    struct issuer *issuers;
    struct ag_jwt_policy *policies;
    pthread_mutex_t lock;
    struct ag_loop *loop;
    struct ag_http_client *client;
    pthread_t thread;
    atomic_bool running; /* the background thread was started */
    size_t initial_left;
    bool initial_wait; /* ag_keyring_start runs the loop until the first fetches end */
    struct ag_timer initial_timer;
    atomic_size_t with_keys;
};

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- configuration ---- */

static char *dup_str(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

/* Splits "http://host[:port]/path" into is->address, is->host and is->path. */
static int parse_uri(struct issuer *is, const char *uri, struct ag_err *err)
{
    struct ag_str s = ag_str_from_cstr(uri);
    if (ag_str_has_prefix(s, AG_STR("https://")) ||
        (s.len >= 8 && ag_str_eq_nocase((struct ag_str){s.p, 8}, AG_STR("https://"))))
        return ag_err_set(err, AG_EINVAL,
                          "issuer %s: jwks_uri %s: TLS to the JWKS endpoint is not supported yet; "
                          "use http:// (a local proxy) or jwks_file",
                          is->name, uri);
    if (s.len < 7 || !ag_str_eq_nocase((struct ag_str){s.p, 7}, AG_STR("http://")))
        return ag_err_set(err, AG_EINVAL, "issuer %s: jwks_uri %s is not an http:// URI", is->name,
                          uri);
    struct ag_str rest = {s.p + 7, s.len - 7};
    size_t alen = 0;
    while (alen < rest.len && rest.p[alen] != '/' && rest.p[alen] != '?')
        alen++;
    struct ag_str authority = {rest.p, alen}, target = {rest.p + alen, rest.len - alen};
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c <= 0x20 || c >= 0x7f || c == '#' || (i >= 7 && i < 7 + alen && c == '@'))
            return ag_err_set(err, AG_EINVAL,
                              "issuer %s: jwks_uri %s: spaces, controls, '#' and user info are "
                              "not allowed",
                              is->name, uri);
    }
    /* The port follows the last ':' unless that one is inside an IPv6 literal's brackets. */
    const char *colon = NULL;
    for (size_t i = 0; i < authority.len; i++)
        if (authority.p[i] == ':')
            colon = authority.p + i;
        else if (authority.p[i] == ']')
            colon = NULL;
    struct ag_str host = authority, port = AG_STR("80");
    if (colon) {
        host.len = (size_t)(colon - authority.p);
        port = (struct ag_str){colon + 1, authority.len - host.len - 1};
    }
    uint64_t port_num;
    if (host.len == 0 || ag_str_to_u64(port, 65535, &port_num) < 0 || port_num == 0)
        return ag_err_set(err, AG_EINVAL, "issuer %s: jwks_uri %s: bad host or port", is->name,
                          uri);
    size_t addr_cap = host.len + 8, path_cap = target.len + 2;
    is->address = malloc(addr_cap);
    is->host = dup_str(authority.p, authority.len);
    is->path = malloc(path_cap);
    if (!is->address || !is->host || !is->path)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    snprintf(is->address, addr_cap, "%.*s:%u", (int)host.len, host.p, (unsigned)port_num);
    /* An empty path is "/", also before a query ("http://h?x" asks for "/?x"). */
    bool slash = target.len == 0 || target.p[0] == '?';
    snprintf(is->path, path_cap, "%s%.*s", slash ? "/" : "", (int)target.len, target.p);
    return 0;
}

/* Copies spec into is and its policy. */
static int issuer_init(struct ag_keyring *kr, size_t i, const struct ag_issuer_spec *spec,
                       struct ag_err *err)
{
    struct issuer *is = &kr->issuers[i];
    struct ag_jwt_policy *p = &kr->policies[i];
    is->kr = kr;
    is->index = i;
    ag_buf_init(&is->body, AG_KEYRING_MAX_JWKS_BYTES + 1);
    *p = (struct ag_jwt_policy){.issuer = spec->issuer,
                                .audiences = spec->audiences,
                                .audience_count = spec->audience_count,
                                .algorithms = spec->algorithms,
                                .clock_skew_s = spec->clock_skew_s,
                                .max_token_bytes = spec->max_token_bytes};
    int rc = ag_jwt_policy_check(p, err);
    if (rc < 0)
        return rc;
    is->name = dup_str(spec->issuer, strlen(spec->issuer));
    is->audiences = calloc(spec->audience_count + 1, sizeof is->audiences[0]);
    if (!is->name || !is->audiences)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    for (size_t a = 0; a < spec->audience_count; a++)
        if (!(is->audiences[a] = dup_str(spec->audiences[a], strlen(spec->audiences[a]))))
            return ag_err_set(err, AG_ENOMEM, "out of memory");
    p->issuer = is->name;
    p->audiences = (const char *const *)is->audiences;
    for (size_t j = 0; j < i; j++)
        if (strcmp(kr->issuers[j].name, is->name) == 0)
            return ag_err_set(err, AG_EINVAL, "issuer %s is configured twice", is->name);
    if (!spec->jwks_uri == !spec->jwks_file)
        return ag_err_set(err, AG_EINVAL, "issuer %s: give exactly one of jwks_uri and jwks_file",
                          is->name);
    is->refresh_ms =
        spec->refresh_interval_ms ? spec->refresh_interval_ms : AG_KEYRING_DEFAULT_REFRESH_MS;
    is->min_refresh_ms = spec->min_refresh_interval_ms ? spec->min_refresh_interval_ms
                                                       : AG_KEYRING_DEFAULT_MIN_REFRESH_MS;
    if (!spec->min_refresh_interval_ms && is->min_refresh_ms > is->refresh_ms)
        is->min_refresh_ms = is->refresh_ms;
    if (is->min_refresh_ms > is->refresh_ms)
        return ag_err_set(err, AG_EINVAL,
                          "issuer %s: min_refresh_interval_ms is over refresh_interval_ms",
                          is->name);
    if (spec->jwks_file) {
        is->file = dup_str(spec->jwks_file, strlen(spec->jwks_file));
        return is->file ? 0 : ag_err_set(err, AG_ENOMEM, "out of memory");
    }
    is->uri = dup_str(spec->jwks_uri, strlen(spec->jwks_uri));
    if (!is->uri)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    return parse_uri(is, spec->jwks_uri, err);
}

int ag_keyring_new(const struct ag_issuer_spec *specs, size_t count, struct ag_keyring **out,
                   struct ag_err *err)
{
    int rc = 0;
    *out = NULL;
    if (count == 0 || count > AG_KEYRING_MAX_ISSUERS)
        return ag_err_set(err, AG_EINVAL, "a keyring needs 1 to %d issuers, not %zu",
                          AG_KEYRING_MAX_ISSUERS, count);
    struct ag_keyring *kr = calloc(1, sizeof *kr);
    if (!kr)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    pthread_mutex_init(&kr->lock, NULL);
    kr->issuers = calloc(count, sizeof kr->issuers[0]);
    kr->policies = calloc(count, sizeof kr->policies[0]);
    if (!kr->issuers || !kr->policies) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < count && rc == 0; i++) {
        kr->count = i + 1;
        rc = issuer_init(kr, i, &specs[i], err);
    }
out:
    if (rc < 0)
        ag_keyring_free(kr);
    else
        *out = kr;
    return rc;
}

/* ---- fetching (loop thread) ---- */

/* Installs set as the issuer's current one (taking the caller's reference). */
static void install(struct issuer *is, struct ag_jwks *set)
{
    struct ag_keyring *kr = is->kr;
    pthread_mutex_lock(&kr->lock);
    struct ag_jwks *old = is->current;
    is->current = set;
    pthread_mutex_unlock(&kr->lock);
    ag_jwks_unref(old);
    if (!old)
        atomic_fetch_add(&kr->with_keys, 1);
    atomic_store(&is->keys, ag_jwks_count(set));
    atomic_fetch_add(&is->fetches_ok, 1);
    atomic_store(&is->last_ok_unix_s, (int_fast64_t)time(NULL));
}

static void schedule_next(struct issuer *is)
{
    uint64_t delay = is->refresh_ms;
    if (is->failures > 0) {
        unsigned shift =
            is->failures - 1 < MAX_BACKOFF_SHIFT ? is->failures - 1 : MAX_BACKOFF_SHIFT;
        uint64_t backoff = is->min_refresh_ms << shift;
        if (backoff < delay)
            delay = backoff;
    }
    ag_timer_start(is->kr->loop, &is->timer, delay);
}

/* Ends a fetch: installs the set parsed from body, or logs why it failed (error != NULL). */
static void fetch_done(struct issuer *is, struct ag_str body, const char *error)
{
    struct ag_err perr = {0};
    struct ag_jwks *set = NULL;
    const char *source = is->file ? is->file : is->uri;
    if (!error && ag_jwks_parse(body.p, body.len, &set, &perr) < 0)
        error = perr.msg;
    if (!error && ag_jwks_count(set) == 0) {
        const char *reason = ag_jwks_skip_reason(set);
        snprintf(perr.msg, sizeof perr.msg, "the JWK Set has no usable key%s%s%s",
                 reason[0] ? " (" : "", reason, reason[0] ? ")" : "");
        error = perr.msg;
        ag_jwks_unref(set);
        set = NULL;
    }
    if (error) {
        is->failures++;
        atomic_fetch_add(&is->fetches_failed, 1);
        ag_log_warn("jwks fetch failed", AG_F_STR("issuer", is->name), AG_F_STR("source", source),
                    AG_F_STR("error", error), AG_F_BOOL("has_keys", is->current != NULL));
    } else {
        is->failures = 0;
        ag_log_info("jwks fetched", AG_F_STR("issuer", is->name), AG_F_STR("source", source),
                    AG_F_UINT("keys", ag_jwks_count(set)),
                    AG_F_UINT("skipped", ag_jwks_skipped(set)),
                    AG_F_STR("skip_reason", ag_jwks_skip_reason(set)));
        install(is, set);
    }
    is->call = NULL;
    is->fetching = false;
    ag_buf_release(&is->body);
    schedule_next(is);
    if (is->initial) {
        is->initial = false;
        if (--is->kr->initial_left == 0 && is->kr->initial_wait)
            ag_loop_stop(is->kr->loop);
    }
}

/* Reads the issuer's file into is->body; returns NULL or why it failed. */
static const char *read_file(struct issuer *is, char *why, size_t cap)
{
    int fd = open(is->file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, cap, "cannot open: %s", strerror(errno));
        return why;
    }
    const char *result = NULL;
    for (;;) {
        /* The buffer holds one byte over the limit, so that a file over it is seen as such. */
        size_t left = is->body.max - is->body.len;
        if (left == 0) {
            result = "file over 1 MiB";
            break;
        }
        if (ag_buf_reserve(&is->body, left < 16384 ? left : 16384) < 0) {
            result = "out of memory";
            break;
        }
        ssize_t n = read(fd, ag_buf_tail(&is->body), ag_buf_space(&is->body));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(why, cap, "cannot read: %s", strerror(errno));
            result = why;
            break;
        }
        if (n == 0)
            break;
        ag_buf_commit(&is->body, (size_t)n);
    }
    close(fd);
    return result;
}

static void on_response(struct ag_http_call *call, const struct ag_http_response *resp)
{
    struct issuer *is = ag_http_call_ctx(call);
    if (resp->status != 200) {
        char why[64];
        snprintf(why, sizeof why, "HTTP status %d", resp->status);
        ag_http_call_cancel(call);
        fetch_done(is, AG_STR_NULL, why);
    }
}

static void on_body(struct ag_http_call *call, struct ag_str data, bool last)
{
    struct issuer *is = ag_http_call_ctx(call);
    if (ag_buf_append_str(&is->body, data) < 0) {
        ag_http_call_cancel(call);
        fetch_done(is, AG_STR_NULL, "body over 1 MiB (or out of memory)");
        return;
    }
    if (last)
        fetch_done(is, ag_buf_str(&is->body), NULL);
}

static void on_error(struct ag_http_call *call, int code, const char *message)
{
    struct issuer *is = ag_http_call_ctx(call);
    char why[320];
    snprintf(why, sizeof why, "%s: %s", ag_http_client_err_name(code), message);
    fetch_done(is, AG_STR_NULL, why);
}

static const struct ag_http_call_ops fetch_ops = {
    .on_response = on_response,
    .on_body = on_body,
    .on_error = on_error,
};

/* Starts a fetch of the issuer's set unless one is running. */
static void fetch_start(struct issuer *is)
{
    if (is->fetching)
        return;
    is->fetching = true;
    ag_timer_stop(is->kr->loop, &is->timer);
    atomic_store(&is->last_fetch_ms, monotonic_ms());
    ag_buf_clear(&is->body);
    char why[320];
    if (is->file) {
        const char *error = read_file(is, why, sizeof why);
        fetch_done(is, ag_buf_str(&is->body), error);
        return;
    }
    struct ag_http_header accept = {AG_STR("Accept"),
                                    AG_STR("application/jwk-set+json, application/json")};
    struct ag_http_client_request req = {
        .address = is->address,
        .method = AG_STR("GET"),
        .target = ag_str_from_cstr(is->path),
        .host = ag_str_from_cstr(is->host),
        .headers = &accept,
        .header_count = 1,
    };
    struct ag_err err = {0};
    if (ag_http_client_request(is->kr->client, &req, &fetch_ops, is, &is->call, &err) < 0) {
        snprintf(why, sizeof why, "request not sent: %s", err.msg);
        fetch_done(is, AG_STR_NULL, why);
    }
}

static void refresh_timer_cb(struct ag_timer *t)
{
    fetch_start(AG_CONTAINER_OF(t, struct issuer, timer));
}

static void refetch_posted(void *arg)
{
    fetch_start(arg);
}

static void initial_timeout_cb(struct ag_timer *t)
{
    struct ag_keyring *kr = AG_CONTAINER_OF(t, struct ag_keyring, initial_timer);
    ag_loop_stop(kr->loop);
}

static void *keyring_thread(void *arg)
{
    struct ag_keyring *kr = arg;
    ag_loop_run(kr->loop);
    return NULL;
}

int ag_keyring_start(struct ag_keyring *kr, uint32_t initial_timeout_ms, struct ag_err *err)
{
    int rc = ag_loop_new(&kr->loop, err);
    if (rc < 0)
        return rc;
    struct ag_http_client_config cfg;
    ag_http_client_config_defaults(&cfg);
    cfg.max_idle_per_host = 1;
    cfg.connect_timeout_ms = FETCH_CONNECT_TIMEOUT_MS;
    cfg.response_timeout_ms = FETCH_RESPONSE_TIMEOUT_MS;
    cfg.limits.max_body = AG_KEYRING_MAX_JWKS_BYTES;
    rc = ag_http_client_new(kr->loop, &cfg, &kr->client, err);
    if (rc < 0)
        return rc;
    ag_timer_init(&kr->initial_timer, initial_timeout_cb);
    kr->initial_left = kr->count;
    for (size_t i = 0; i < kr->count; i++) {
        ag_timer_init(&kr->issuers[i].timer, refresh_timer_cb);
        kr->issuers[i].initial = true;
    }
    for (size_t i = 0; i < kr->count; i++)
        fetch_start(&kr->issuers[i]);
    if (kr->initial_left > 0 && initial_timeout_ms > 0) {
        ag_timer_start(kr->loop, &kr->initial_timer, initial_timeout_ms);
        kr->initial_wait = true;
        ag_loop_run(kr->loop);
        kr->initial_wait = false;
        ag_timer_stop(kr->loop, &kr->initial_timer);
    }
    for (size_t i = 0; i < kr->count; i++) {
        if (kr->issuers[i].initial && kr->issuers[i].fetching)
            ag_log_warn("jwks not fetched in time; going on without it",
                        AG_F_STR("issuer", kr->issuers[i].name),
                        AG_F_UINT("timeout_ms", initial_timeout_ms));
    }
    atomic_store(&kr->running, true);
    int prc = pthread_create(&kr->thread, NULL, keyring_thread, kr);
    if (prc != 0) {
        atomic_store(&kr->running, false);
        errno = prc;
        return ag_err_sys(err, "cannot start the keyring thread");
    }
    return 0;
}

/* ---- workers ---- */

/* Asks the background thread to fetch issuer i now, unless a fetch started recently. */
static void request_refetch(struct ag_keyring *kr, size_t i)
{
    struct issuer *is = &kr->issuers[i];
    if (!atomic_load(&kr->running))
        return;
    uint64_t now = monotonic_ms();
    uint_fast64_t last = atomic_load(&is->last_fetch_ms);
    if (last != 0 && now - last < is->min_refresh_ms)
        return;
    if (!atomic_compare_exchange_strong(&is->last_fetch_ms, &last, now))
        return; /* another worker asked at the same time */
    atomic_fetch_add(&is->refetch_requests, 1);
    ag_loop_post(kr->loop, refetch_posted, is);
}

enum ag_jwt_status ag_keyring_verify(struct ag_keyring *kr, struct ag_str token, int64_t now_s,
                                     struct ag_jwt_claims *claims)
{
    struct ag_jwks *sets[AG_KEYRING_MAX_ISSUERS];
    pthread_mutex_lock(&kr->lock);
    for (size_t i = 0; i < kr->count; i++)
        sets[i] = ag_jwks_ref(kr->issuers[i].current);
    pthread_mutex_unlock(&kr->lock);
    size_t which;
    enum ag_jwt_status st = ag_jwt_verify(token, kr->policies, (const struct ag_jwks *const *)sets,
                                          kr->count, now_s, claims, &which);
    for (size_t i = 0; i < kr->count; i++)
        ag_jwks_unref(sets[i]);
    if ((st == AG_JWT_UNKNOWN_KID || st == AG_JWT_NO_KEYS) && which < kr->count)
        request_refetch(kr, which);
    return st;
}

bool ag_keyring_ready(const struct ag_keyring *kr)
{
    return atomic_load(&((struct ag_keyring *)kr)->with_keys) == kr->count;
}

size_t ag_keyring_count(const struct ag_keyring *kr)
{
    return kr->count;
}

const char *ag_keyring_issuer(const struct ag_keyring *kr, size_t i)
{
    return kr->issuers[i].name;
}

void ag_keyring_stats(struct ag_keyring *kr, size_t i, struct ag_keyring_stats *out)
{
    struct issuer *is = &kr->issuers[i];
    *out = (struct ag_keyring_stats){
        .keys = atomic_load(&is->keys),
        .fetches_ok = atomic_load(&is->fetches_ok),
        .fetches_failed = atomic_load(&is->fetches_failed),
        .refetch_requests = atomic_load(&is->refetch_requests),
        .last_ok_unix_s = atomic_load(&is->last_ok_unix_s),
    };
    out->has_keys = out->keys > 0;
}

void ag_keyring_free(struct ag_keyring *kr)
{
    if (!kr)
        return;
    if (atomic_load(&kr->running)) {
        ag_loop_stop(kr->loop);
        pthread_join(kr->thread, NULL);
    }
    ag_http_client_free(kr->client); /* cancels fetches in flight: no callback fires */
    for (size_t i = 0; i < kr->count; i++) {
        struct issuer *is = &kr->issuers[i];
        if (kr->loop)
            ag_timer_stop(kr->loop, &is->timer);
        ag_buf_release(&is->body);
        ag_jwks_unref(is->current);
        for (size_t a = 0; is->audiences && is->audiences[a]; a++)
            free(is->audiences[a]);
        free(is->audiences);
        free(is->name);
        free(is->file);
        free(is->uri);
        free(is->address);
        free(is->host);
        free(is->path);
    }
    if (kr->loop)
        ag_loop_free(kr->loop);
    pthread_mutex_destroy(&kr->lock);
    free(kr->issuers);
    free(kr->policies);
    free(kr);
}
