/* Request identity at the gateway: X-Request-Id and W3C traceparent, checked or made anew. */
#include "gateway/request_id.h"

#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/banned.h"

static _Thread_local uint64_t rng_state[4];
static _Thread_local bool rng_seeded;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static void rng_seed(void)
{
    if (getrandom(rng_state, sizeof rng_state, 0) != (ssize_t)sizeof rng_state) {
        /* No entropy source: mix the clock and the thread's address; ids stay unique enough. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uintptr_t)&ts;
        for (int i = 0; i < 4; i++) {
            seed += 0x9e3779b97f4a7c15ULL; /* splitmix64 */
            uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            rng_state[i] = z ^ (z >> 31);
        }
    }
    rng_seeded = true;
}

static uint64_t rng_next(void)
{
    if (!rng_seeded)
        rng_seed();
    uint64_t *s = rng_state;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void gw_random_bytes(void *out, size_t len)
{
    unsigned char *p = out;
    while (len > 0) {
        uint64_t r = rng_next();
        size_t n = len < sizeof r ? len : sizeof r;
        memcpy(p, &r, n);
        p += n;
        len -= n;
    }
}

/* Two lowercase hex digits per byte value, built by the compiler. */
#define HEX_DIGIT(n)  ((n) < 10 ? '0' + (n) : 'a' + (n)-10)
#define HEX_PAIR(b)   HEX_DIGIT((b) >> 4), HEX_DIGIT((b)&15)
#define HEX_PAIR4(b)  HEX_PAIR(b), HEX_PAIR((b) + 1), HEX_PAIR((b) + 2), HEX_PAIR((b) + 3)
#define HEX_PAIR16(b) HEX_PAIR4(b), HEX_PAIR4((b) + 4), HEX_PAIR4((b) + 8), HEX_PAIR4((b) + 12)
#define HEX_PAIR64(b)                                                                              \
    HEX_PAIR16(b), HEX_PAIR16((b) + 16), HEX_PAIR16((b) + 32), HEX_PAIR16((b) + 48)
static const char hex_pairs[512] = {HEX_PAIR64(0), HEX_PAIR64(64), HEX_PAIR64(128),
                                    HEX_PAIR64(192)};

/* Writes digits random lowercase hex digits (a multiple of 16), 16 per random number. */
static void hex_random(char *out, size_t digits)
{
    for (size_t i = 0; i < digits; i += 16) {
        uint64_t r = rng_next();
        for (size_t k = 0; k < 16; k += 2, r >>= 8)
            memcpy(out + i + k, hex_pairs + 2 * (r & 0xff), 2);
    }
}

bool gw_request_id_acceptable(struct ag_str id)
{
    if (id.len == 0 || id.len > GW_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < id.len; i++) {
        char c = id.p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("-_.:@/+=", c) != NULL;
        if (!ok || c == '\0')
            return false;
    }
    return true;
}

void gw_request_id_new(char *out)
{
    hex_random(out, GW_REQUEST_ID_LEN);
    out[GW_REQUEST_ID_LEN] = '\0';
}

static bool lower_hex(const char *p, size_t n, bool *all_zero)
{
    *all_zero = true;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        if (c != '0')
            *all_zero = false;
    }
    return true;
}

static bool traceparent_valid(struct ag_str tp)
{
    bool zero;
    if (tp.len != GW_TRACEPARENT_LEN || tp.p[0] != '0' || tp.p[1] != '0' || tp.p[2] != '-' ||
        tp.p[35] != '-' || tp.p[52] != '-')
        return false;
    if (!lower_hex(tp.p + 3, 32, &zero) || zero)
        return false;
    if (!lower_hex(tp.p + 36, 16, &zero) || zero)
        return false;
    return lower_hex(tp.p + 53, 2, &zero);
}

bool gw_traceparent_next(struct ag_str incoming, char *out)
{
    bool keep = traceparent_valid(incoming);
    memcpy(out, "00-", 3);
    if (keep)
        memcpy(out + 3, incoming.p + 3, 32);
    else
        hex_random(out + 3, 32);
    out[35] = '-';
    hex_random(out + 36, 16);
    out[52] = '-';
    if (keep) {
        out[53] = incoming.p[53];
        out[54] = incoming.p[54];
    } else {
        out[53] = '0';
        out[54] = '1';
    }
    out[55] = '\0';
    return keep;
}
