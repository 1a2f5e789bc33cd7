/* Ids and clocks for services: UUIDv7 (time-ordered, monotonic per process), RFC 3339 times. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "kit/kit.h"
#include "core/banned.h"

/*
 * The last id made in this process: its millisecond and its 74 "random" bits (rand_a: 12 bits,
 * rand_b: 62 bits). A new id in the same or an earlier millisecond (the clock stepped back)
 * takes last + 1 instead of fresh random bits (RFC 9562 §6.2, method 3), so ids made by one
 * process are strictly increasing, whatever the clock does.
 */
static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t id_last_ms;
static uint64_t id_last_hi; /* 12 bits */
static uint64_t id_last_lo; /* 62 bits */

static void random_bytes(unsigned char *out, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(out + got, n - got, 0);
        if (r > 0)
            got += (size_t)r;
        /* getrandom on Linux ≥ 3.17 only fails with EINTR once the pool is initialised */
    }
}

int64_t kit_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t kit_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kit_id_new(char out[KIT_ID_LEN + 1])
{
    unsigned char rnd[10];
    random_bytes(rnd, sizeof rnd);
    uint64_t hi = ((uint64_t)rnd[0] << 8 | rnd[1]) & 0xfffu;
    uint64_t lo = 0;
    for (int i = 2; i < 10; i++)
        lo = lo << 8 | rnd[i];
    lo &= (UINT64_C(1) << 62) - 1;
    int64_t now = kit_now_ms();
    uint64_t ms = now > 0 ? (uint64_t)now & ((UINT64_C(1) << 48) - 1) : 0;

    pthread_mutex_lock(&id_lock);
    if (ms <= id_last_ms) {
        ms = id_last_ms;
        hi = id_last_hi;
        lo = id_last_lo + 1;
        if (lo >> 62) {
            lo = 0;
            if (++hi > 0xfffu) {
                hi = 0;
                ms++;
            }
        }
    }
    id_last_ms = ms;
    id_last_hi = hi;
    id_last_lo = lo;
    pthread_mutex_unlock(&id_lock);

    unsigned char b[16];
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70u | (hi >> 8));
    b[7] = (unsigned char)(hi & 0xffu);
    b[8] = (unsigned char)(0x80u | (lo >> 56));
    for (int i = 9; i < 16; i++)
        b[i] = (unsigned char)(lo >> (8 * (15 - i)));

    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0xf];
    }
    out[o] = '\0';
}

bool kit_id_valid(const char *s)
{
    if (!s)
        return false;
    for (size_t i = 0; i < KIT_ID_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false; /* also stops at a NUL before the end */
        }
    }
    return s[KIT_ID_LEN] == '\0';
}

void kit_time_rfc3339(int64_t ms, char out[32])
{
    int64_t sec = ms / 1000, rem = ms % 1000;
    if (rem < 0) {
        rem += 1000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(out, 32, "1970-01-01T00:00:00.000Z");
        return;
    }
    int year = tm.tm_year + 1900;
    year = year < 0 ? 0 : year > 9999 ? 9999 : year;
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", year, (tm.tm_mon + 1) % 100,
             tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100, (int)rem % 1000);
}

void kit_now_rfc3339(char out[32])
{
    kit_time_rfc3339(kit_now_ms(), out);
}
