/* libFuzzer target: the bus's envelope parser and topic patterns hold on any bytes. */
#include "fuzz_support.h"

#include <jansson.h>

#include "kit/bus.h"
#include "kit/bus_internal.h"
#include "kit/kit.h"
#include "core/banned.h"

/*
 * Input: the bytes of an envelope as a consumer would receive them. For every input:
 *   - kit_bus_envelope_parse never crashes, and an accepted envelope has a non-empty id, a type
 *     of three dot-separated words, an object as data, and a time that formats back to an RFC
 *     3339 string kit_bus_time_parse reads as the same millisecond;
 *   - the input split at its first newline is a (pattern, type) pair: kit_topic_match agrees
 *     with an independent recursive matcher (for up to 12 words each, so it stays fast).
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { WORDS_MAX = 12 };

/* A NUL-terminated copy (copy_of's is not terminated). */
static char *cstr_of(const uint8_t *p, size_t n)
{
    char *c = malloc(n + 1);
    CHECK(c != NULL);
    memcpy(c, p, n);
    c[n] = '\0';
    return c;
}

static size_t split_words(const char *s, size_t len, const char *word[], size_t wlen[])
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (n == WORDS_MAX)
                return WORDS_MAX + 1;
            word[n] = s + start;
            wlen[n++] = i - start;
            start = i + 1;
        }
    }
    return n;
}

static bool word_is(const char *w, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(w, lit, len) == 0;
}

/* AMQP topic rules: '*' one word, '#' zero or more. */
static bool ref_match(const char *const *pw, const size_t *pl, size_t pn, const char *const *tw,
                      const size_t *tl, size_t tn)
{
    if (pn == 0)
        return tn == 0;
    if (word_is(pw[0], pl[0], "#")) {
        for (size_t skip = 0; skip <= tn; skip++)
            if (ref_match(pw + 1, pl + 1, pn - 1, tw + skip, tl + skip, tn - skip))
                return true;
        return false;
    }
    if (tn == 0)
        return false;
    if (!word_is(pw[0], pl[0], "*") && (pl[0] != tl[0] || memcmp(pw[0], tw[0], pl[0]) != 0))
        return false;
    return ref_match(pw + 1, pl + 1, pn - 1, tw + 1, tl + 1, tn - 1);
}

static void check_topics(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl || memchr(data, '\0', size))
        return;
    size_t plen = (size_t)(nl - data), tlen = size - plen - 1;
    char *pattern = cstr_of(data, plen), *type = cstr_of(nl + 1, tlen);
    const char *pw[WORDS_MAX], *tw[WORDS_MAX];
    size_t pl[WORDS_MAX], tl[WORDS_MAX];
    size_t pn = split_words(pattern, plen, pw, pl), tn = split_words(type, tlen, tw, tl);
    bool got = kit_topic_match(pattern, type);
    if (pn <= WORDS_MAX && tn <= WORDS_MAX)
        CHECK(got == ref_match(pw, pl, pn, tw, tl, tn));
    free(pattern);
    free(type);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kit_bus_envelope env;
    struct ag_err err = {0};
    if (kit_bus_envelope_parse((const char *)data, size, &env, &err) == 0) {
        CHECK(env.ev.id && env.ev.id[0]);
        CHECK(env.ev.type && strchr(env.ev.type, '.') && strchr(strchr(env.ev.type, '.') + 1, '.'));
        CHECK(json_is_object(env.ev.data));
        char ts[32];
        int64_t back = 0;
        kit_time_rfc3339(env.ev.time_ms, ts);
        CHECK(kit_bus_time_parse(ts, &back) == 0 && back == env.ev.time_ms);
        kit_bus_envelope_release(&env);
    } else {
        CHECK(err.msg[0] != '\0');
    }
    check_topics(data, size);
    return 0;
}
