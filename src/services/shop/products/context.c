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
 * The ISO 4217 alphabetic codes in use (list one, 2025), sorted for bsearch. Codes without minor
 * units (precious metals, XDR, XTS, XXX) are left out: a price cannot be written in them.
 */
static const char currencies[][4] = {
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
    "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE",
    "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL",
    "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR",
    "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD",
    "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK",
    "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO",
    "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON",
    "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD",
    "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD",
    "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV",
    "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
};

static int currency_compare(const void *key, const void *elem)
{
    return strcmp(key, elem);
}

bool catalog_currency_valid(const char *code)
{
    if (!code || strlen(code) != 3)
        return false;
    return bsearch(code, currencies, sizeof currencies / sizeof currencies[0], sizeof currencies[0],
                   currency_compare) != NULL;
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
