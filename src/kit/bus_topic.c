/* AMQP topic matching of event types against subscription patterns ('*' one word, '#' any). */
#include <stdbool.h>
#include <string.h>

#include "kit/bus.h"
#include "core/banned.h"

enum { TOPIC_WORDS_MAX = 64 }; /* words of a pattern or a type; longer never match */

struct word {
    const char *p;
    size_t len;
};

/* Splits s at '.' into at most TOPIC_WORDS_MAX words; returns their count, or -1 when over. */
static int split_words(const char *s, struct word *out)
{
    int n = 0;
    for (;;) {
        if (n == TOPIC_WORDS_MAX)
            return -1;
        size_t len = strcspn(s, ".");
        out[n++] = (struct word){s, len};
        if (s[len] == '\0')
            return n;
        s += len + 1;
    }
}

static bool word_is(struct word w, const char *lit)
{
    return w.len == strlen(lit) && memcmp(w.p, lit, w.len) == 0;
}

bool kit_topic_match(const char *pattern, const char *type)
{
    struct word pw[TOPIC_WORDS_MAX], tw[TOPIC_WORDS_MAX];
    if (!pattern || !type)
        return false;
    int np = split_words(pattern, pw), nt = split_words(type, tw);
    if (np < 0 || nt < 0)
        return false;
    /*
     * Dynamic programming instead of backtracking, so that "#.#.#..." costs O(np * nt), not
     * an exponential search: row[j] is true when the pattern's first i words match the
     * type's first j words.
     */
    bool row[TOPIC_WORDS_MAX + 1], next[TOPIC_WORDS_MAX + 1];
    row[0] = true;
    for (int j = 1; j <= nt; j++)
        row[j] = false;
    for (int i = 0; i < np; i++) {
        bool hash = word_is(pw[i], "#"), star = word_is(pw[i], "*");
        next[0] = hash && row[0];
        for (int j = 1; j <= nt; j++) {
            if (hash)
                next[j] = row[j] || next[j - 1]; /* '#' takes no word, or one more */
            else
                next[j] = row[j - 1] && (star || (pw[i].len == tw[j - 1].len &&
                                                  memcmp(pw[i].p, tw[j - 1].p, pw[i].len) == 0));
        }
        memcpy(row, next, sizeof row);
    }
    return row[nt];
}
