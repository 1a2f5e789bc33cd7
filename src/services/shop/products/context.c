/* agora-products: the shared context, ISO 4217 currencies and URL slugs. */
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "core/json.h"
#include "core/banned.h"

struct catalog_ctx *catalog_ctx_of(struct kit_req *req)
{
    return kit_app_data(kit_req_app(req));
}

/*
 * The ISO 4217 alphabetic codes in use (list one, 2025) with their minor units, sorted for
 * bsearch. Codes without minor units (precious metals, XDR, XTS, XXX) are left out: a price
 * cannot be written in them.
 */
struct currency {
    char code[4];
    int exponent;
};
static const struct currency currencies[] = {
    {"AED", 2}, {"AFN", 2}, {"ALL", 2}, {"AMD", 2}, {"ANG", 2}, {"AOA", 2}, {"ARS", 2}, {"AUD", 2},
    {"AWG", 2}, {"AZN", 2}, {"BAM", 2}, {"BBD", 2}, {"BDT", 2}, {"BGN", 2}, {"BHD", 3}, {"BIF", 0},
    {"BMD", 2}, {"BND", 2}, {"BOB", 2}, {"BOV", 2}, {"BRL", 2}, {"BSD", 2}, {"BTN", 2}, {"BWP", 2},
    {"BYN", 2}, {"BZD", 2}, {"CAD", 2}, {"CDF", 2}, {"CHE", 2}, {"CHF", 2}, {"CHW", 2}, {"CLF", 4},
    {"CLP", 0}, {"CNY", 2}, {"COP", 2}, {"COU", 2}, {"CRC", 2}, {"CUP", 2}, {"CVE", 2}, {"CZK", 2},
    {"DJF", 0}, {"DKK", 2}, {"DOP", 2}, {"DZD", 2}, {"EGP", 2}, {"ERN", 2}, {"ETB", 2}, {"EUR", 2},
    {"FJD", 2}, {"FKP", 2}, {"GBP", 2}, {"GEL", 2}, {"GHS", 2}, {"GIP", 2}, {"GMD", 2}, {"GNF", 0},
    {"GTQ", 2}, {"GYD", 2}, {"HKD", 2}, {"HNL", 2}, {"HTG", 2}, {"HUF", 2}, {"IDR", 2}, {"ILS", 2},
    {"INR", 2}, {"IQD", 3}, {"IRR", 2}, {"ISK", 0}, {"JMD", 2}, {"JOD", 3}, {"JPY", 0}, {"KES", 2},
    {"KGS", 2}, {"KHR", 2}, {"KMF", 0}, {"KPW", 2}, {"KRW", 0}, {"KWD", 3}, {"KYD", 2}, {"KZT", 2},
    {"LAK", 2}, {"LBP", 2}, {"LKR", 2}, {"LRD", 2}, {"LSL", 2}, {"LYD", 3}, {"MAD", 2}, {"MDL", 2},
    {"MGA", 2}, {"MKD", 2}, {"MMK", 2}, {"MNT", 2}, {"MOP", 2}, {"MRU", 2}, {"MUR", 2}, {"MVR", 2},
    {"MWK", 2}, {"MXN", 2}, {"MXV", 2}, {"MYR", 2}, {"MZN", 2}, {"NAD", 2}, {"NGN", 2}, {"NIO", 2},
    {"NOK", 2}, {"NPR", 2}, {"NZD", 2}, {"OMR", 3}, {"PAB", 2}, {"PEN", 2}, {"PGK", 2}, {"PHP", 2},
    {"PKR", 2}, {"PLN", 2}, {"PYG", 0}, {"QAR", 2}, {"RON", 2}, {"RSD", 2}, {"RUB", 2}, {"RWF", 0},
    {"SAR", 2}, {"SBD", 2}, {"SCR", 2}, {"SDG", 2}, {"SEK", 2}, {"SGD", 2}, {"SHP", 2}, {"SLE", 2},
    {"SOS", 2}, {"SRD", 2}, {"SSP", 2}, {"STN", 2}, {"SVC", 2}, {"SYP", 2}, {"SZL", 2}, {"THB", 2},
    {"TJS", 2}, {"TMT", 2}, {"TND", 3}, {"TOP", 2}, {"TRY", 2}, {"TTD", 2}, {"TWD", 2}, {"TZS", 2},
    {"UAH", 2}, {"UGX", 0}, {"USD", 2}, {"USN", 2}, {"UYI", 0}, {"UYU", 2}, {"UYW", 4}, {"UZS", 2},
    {"VED", 2}, {"VES", 2}, {"VND", 0}, {"VUV", 0}, {"WST", 2}, {"XAF", 0}, {"XCD", 2}, {"XCG", 2},
    {"XOF", 0}, {"XPF", 0}, {"YER", 2}, {"ZAR", 2}, {"ZMW", 2}, {"ZWG", 2},
};

static int currency_compare(const void *key, const void *elem)
{
    return strcmp(key, ((const struct currency *)elem)->code);
}

static const struct currency *currency_find(const char *code)
{
    if (!code || strlen(code) != 3)
        return NULL;
    return bsearch(code, currencies, sizeof currencies / sizeof currencies[0], sizeof currencies[0],
                   currency_compare);
}

bool catalog_currency_valid(const char *code)
{
    return currency_find(code) != NULL;
}

int catalog_currency_exponent(const char *code)
{
    const struct currency *c = currency_find(code);
    return c ? c->exponent : 2;
}

/*
 * The ASCII letters of Latin-1's accented letters U+00C0..U+00FF, by code point - 0xC0; "" for
 * the two that are not letters (× and ÷), which separate words like any other symbol.
 */
static const char *const latin1_ascii[64] = {
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i",  "i",
    "d", "n", "o", "o", "o", "o", "o",  "",  "o", "u", "u", "u", "u", "y", "th", "ss",
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i",  "i",
    "d", "n", "o", "o", "o", "o", "o",  "",  "o", "u", "u", "u", "u", "y", "th", "y",
};

enum { SLUG_MAX = 120 };

bool catalog_slugify(const char *name, char out[121])
{
    const unsigned char *s = (const unsigned char *)name;
    size_t n = name ? strlen(name) : 0, len = 0;
    bool gap = false; /* a separator seen since the last letter written */

    for (size_t i = 0; i < n && len < SLUG_MAX;) {
        const char *piece = NULL;
        char one[2] = {0, 0};
        size_t step = 1;

        if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')) {
            one[0] = (char)s[i];
        } else if (s[i] >= 'A' && s[i] <= 'Z') {
            one[0] = (char)(s[i] - 'A' + 'a');
        } else if (s[i] >= 0x80) {
            step = ag_utf8_sequence_len(s + i, n - i);
            if (step == 0)
                step = 1;                         /* a malformed byte: a separator */
            else if (step == 2 && (s[i] == 0xC3)) /* U+00C0..U+00FF */
                piece = latin1_ascii[s[i + 1] - 0x80];
        }
        if (one[0])
            piece = one;
        i += step;
        if (!piece || !*piece) {
            gap = true;
            continue;
        }
        size_t plen = strlen(piece);
        if (len + (gap && len > 0) + plen > SLUG_MAX)
            break; /* the slug is full: it ends here, never with a '-' */
        if (gap && len > 0)
            out[len++] = '-';
        memcpy(out + len, piece, plen);
        len += plen;
        gap = false;
    }
    out[len] = '\0';
    return len > 0;
}

bool catalog_slug_valid(const char *slug)
{
    size_t n = slug ? strlen(slug) : 0;
    if (n == 0 || n > SLUG_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = slug[i];
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
            continue;
        /* '-' only between two letters or digits */
        if (c != '-' || i == 0 || i == n - 1 || slug[i + 1] == '-')
            return false;
    }
    return true;
}
