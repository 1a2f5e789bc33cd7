/* JSON-lines logger: builds each line on the stack, bounded, and writes it with one write(2). */
#include "core/log.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/json.h"
#include "core/banned.h"

/*
 * A line is built in a stack buffer of AG_LOG_LINE_MAX bytes. Content may use the first
 * LINE_LIMIT of them; the rest is kept for what closes a line in every case: the cut marker
 * `..."`, `,"truncated":true`, `}` and the newline.
 */
#define CUT_MARK       "...\""
#define TRUNCATED_FLAG ",\"truncated\":true"
enum {
    CUT_MARK_LEN = sizeof CUT_MARK - 1,
    LINE_TAIL_RESERVE = 32,
    LINE_LIMIT = AG_LOG_LINE_MAX - LINE_TAIL_RESERVE,
    SERVICE_FIELD_MAX = 512, /* `,"service":"..."`: AG_LOG_SERVICE_MAX bytes escaped, at most 6x */
};
_Static_assert(CUT_MARK_LEN + sizeof TRUNCATED_FLAG - 1 + 2 <= LINE_TAIL_RESERVE,
               "the tail reserve holds the cut marker, the truncated flag and `}\\n`");

static atomic_int log_min_level = AG_LOG_INFO;
static atomic_int log_fd = 1;
static atomic_uint_fast64_t log_dropped_lines;
static pthread_mutex_t log_write_lock = PTHREAD_MUTEX_INITIALIZER;

/* The pre-rendered service field, set by ag_log_setup before threads start. */
static char service_field[SERVICE_FIELD_MAX];
static size_t service_field_len;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static enum ag_log_level clamp_level(enum ag_log_level level)
{
    return (unsigned)level > AG_LOG_ERROR ? AG_LOG_ERROR : level;
}

/*
 * Writes the JSON-escaped form of s (no quotes) into dst, at most cap bytes, never splitting an
 * escape or a UTF-8 sequence. Returns the bytes written; *consumed gets the input bytes covered.
 */
static size_t json_escape(char *dst, size_t cap, struct ag_str s, size_t *consumed)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *in = (const unsigned char *)s.p;
    size_t i = 0, w = 0;
    while (i < s.len) {
        unsigned char c = in[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            if (w == cap)
                break;
            dst[w++] = (char)c;
            i++;
            continue;
        }
        char esc[6];
        const char *out = esc;
        size_t out_len = 2, in_len = 1;
        esc[0] = '\\';
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            if (c < 0x20) {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 0xF];
                out_len = 6;
            } else if ((in_len = ag_utf8_sequence_len(in + i, s.len - i)) > 0) {
                out = (const char *)in + i;
                out_len = in_len;
            } else {
                in_len = 1;
                out = "\\ufffd";
                out_len = 6;
            }
        }
        if (out_len > cap - w)
            break;
        memcpy(dst + w, out, out_len);
        w += out_len;
        i += in_len;
    }
    *consumed = i;
    return w;
}

static void put_digits(char *p, unsigned value, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + value % 10);
        value /= 10;
    }
}

void ag_log_format_ts(const struct timespec *ts, char out[AG_LOG_TS_LEN + 1])
{
    struct tm tm;
    time_t sec = ts->tv_sec;
    long nsec = ts->tv_nsec;
    if (!gmtime_r(&sec, &tm))
        memset(&tm, 0, sizeof tm);
    int year = tm.tm_year + 1900;
    year = year < 0 ? 0 : year > 9999 ? 9999 : year;
    nsec = nsec < 0 ? 0 : nsec > 999999999 ? 999999999 : nsec;
    memcpy(out, "0000-00-00T00:00:00.000Z", AG_LOG_TS_LEN + 1);
    put_digits(out, (unsigned)year, 4);
    put_digits(out + 5, (unsigned)tm.tm_mon + 1, 2);
    put_digits(out + 8, (unsigned)tm.tm_mday, 2);
    put_digits(out + 11, (unsigned)tm.tm_hour, 2);
    put_digits(out + 14, (unsigned)tm.tm_min, 2);
    put_digits(out + 17, (unsigned)tm.tm_sec, 2);
    put_digits(out + 20, (unsigned)(nsec / 1000000), 3);
}

/* A line under construction; once cut is set nothing more is added but the closing tail. */
struct line {
    char *p;
    size_t len;
    size_t limit; /* content must end before this offset */
    bool cut;
};

/* Appends n bytes when they fit under the limit; otherwise marks the line cut, returns false. */
static bool line_put(struct line *l, const char *s, size_t n)
{
    if (l->cut || n > l->limit - l->len) {
        l->cut = true;
        return false;
    }
    memcpy(l->p + l->len, s, n);
    l->len += n;
    return true;
}

enum put_result { PUT_OK, PUT_CUT, PUT_NOFIT };

/*
 * Appends s as a JSON string (or null). When it does not fit and may_cut is set, as much as
 * fits is kept and closed with CUT_MARK (which uses the tail reserve): PUT_CUT. Otherwise
 * nothing is appended: PUT_NOFIT. Either way the line is then cut.
 */
static enum put_result line_string(struct line *l, struct ag_str s, bool may_cut)
{
    size_t start = l->len;
    if (!s.p)
        return line_put(l, "null", 4) ? PUT_OK : PUT_NOFIT;
    if (!line_put(l, "\"", 1))
        return PUT_NOFIT;
    if (l->len == l->limit) { /* no room for even the closing quote */
        l->len = start;
        l->cut = true;
        return PUT_NOFIT;
    }
    size_t used;
    l->len += json_escape(l->p + l->len, l->limit - l->len - 1, s, &used);
    if (used == s.len) {
        l->p[l->len++] = '"';
        return PUT_OK;
    }
    l->cut = true;
    if (!may_cut) {
        l->len = start;
        return PUT_NOFIT;
    }
    memcpy(l->p + l->len, CUT_MARK, CUT_MARK_LEN);
    l->len += CUT_MARK_LEN;
    return PUT_CUT;
}

/* Shortest of %.15g and %.17g that reads back as d; "null" for NaN and infinities. */
static size_t format_json_double(char out[32], double d)
{
    if (!isfinite(d)) {
        memcpy(out, "null", 5);
        return 4;
    }
    int n = snprintf(out, 32, "%.15g", d);
    if (strtod(out, NULL) != d)
        n = snprintf(out, 32, "%.17g", d);
    for (int i = 0; i < n; i++)
        if (out[i] == ',') /* a locale with a decimal comma */
            out[i] = '.';
    return n > 0 ? (size_t)n : 0;
}

/* Appends `,"key":value`. Returns false when the line is full (the field is cut or left out). */
static bool line_field(struct line *l, const struct ag_log_field *f)
{
    char num[32];
    size_t num_len = 0;
    size_t start = l->len;
    enum put_result res = PUT_OK;
    if (!f->key || f->type == AG_LOG_T_END)
        return true;
    if (!line_put(l, ",", 1) || line_string(l, ag_str_from_cstr(f->key), false) != PUT_OK ||
        !line_put(l, ":", 1)) {
        l->len = start;
        return false;
    }
    switch (f->type) {
    case AG_LOG_T_STR:
        res = line_string(l, ag_str_from_cstr(f->v.s), true);
        break;
    case AG_LOG_T_SLICE:
        res = line_string(l, f->v.slice, true);
        break;
    case AG_LOG_T_INT:
        num_len = (size_t)snprintf(num, sizeof num, "%" PRId64, f->v.i);
        break;
    case AG_LOG_T_UINT:
        num_len = (size_t)snprintf(num, sizeof num, "%" PRIu64, f->v.u);
        break;
    case AG_LOG_T_BOOL:
        num_len = f->v.b ? 4 : 5;
        memcpy(num, f->v.b ? "true" : "false", num_len);
        break;
    case AG_LOG_T_DOUBLE:
        num_len = format_json_double(num, f->v.d);
        break;
    default: /* an unknown type from a corrupted field: keep the line valid */
        num_len = 4;
        memcpy(num, "null", 4);
        break;
    }
    if (num_len > 0 && !line_put(l, num, num_len))
        res = PUT_NOFIT;
    if (res == PUT_NOFIT) {
        l->len = start;
        return false;
    }
    return res == PUT_OK;
}

static void write_line(int fd, const char *p, size_t n)
{
    pthread_mutex_lock(&log_write_lock);
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            atomic_fetch_add_explicit(&log_dropped_lines, 1, memory_order_relaxed);
            break;
        }
        p += w;
        n -= (size_t)w;
    }
    pthread_mutex_unlock(&log_write_lock);
}

void ag_log_fields(enum ag_log_level level, const char *msg, const struct ag_log_field *fields,
                   size_t n_fields)
{
    level = clamp_level(level);
    if (!ag_log_enabled(level))
        return;
    int fd = atomic_load_explicit(&log_fd, memory_order_relaxed);
    if (fd < 0)
        return;
    int saved_errno = errno;
    char buf[AG_LOG_LINE_MAX];
    struct line l = {.p = buf, .limit = LINE_LIMIT};

    struct timespec now;
    char ts[AG_LOG_TS_LEN + 1];
    clock_gettime(CLOCK_REALTIME, &now);
    ag_log_format_ts(&now, ts);
    const char *name = level_names[level];
    line_put(&l, "{\"ts\":\"", 7);
    line_put(&l, ts, AG_LOG_TS_LEN);
    line_put(&l, "\",\"level\":\"", 11);
    line_put(&l, name, strlen(name));
    line_put(&l, "\",\"msg\":", 8);

    /* The message may be cut, but the service field after it always fits. */
    l.limit = LINE_LIMIT - service_field_len - CUT_MARK_LEN;
    line_string(&l, ag_str_from_cstr(msg), true);
    memcpy(l.p + l.len, service_field, service_field_len);
    l.len += service_field_len;
    l.limit = LINE_LIMIT;

    for (size_t i = 0; i < n_fields && !l.cut; i++)
        line_field(&l, &fields[i]);
    if (l.cut) {
        memcpy(l.p + l.len, TRUNCATED_FLAG, sizeof TRUNCATED_FLAG - 1);
        l.len += sizeof TRUNCATED_FLAG - 1;
    }
    memcpy(l.p + l.len, "}\n", 2);
    l.len += 2;
    write_line(fd, l.p, l.len);
    errno = saved_errno;
}

void ag_log_setup(const char *service, enum ag_log_level min_level, int fd)
{
    struct ag_str name = ag_str_from_cstr(service);
    service_field_len = 0;
    if (name.len > 0) {
        size_t used;
        if (name.len > AG_LOG_SERVICE_MAX)
            name.len = AG_LOG_SERVICE_MAX;
        memcpy(service_field, ",\"service\":\"", 12);
        service_field_len = 12;
        service_field_len += json_escape(service_field + service_field_len,
                                         sizeof service_field - service_field_len - 1, name, &used);
        service_field[service_field_len++] = '"';
    }
    atomic_store(&log_fd, fd);
    ag_log_set_level(min_level);
}

void ag_log_set_level(enum ag_log_level min_level)
{
    atomic_store_explicit(&log_min_level, (int)clamp_level(min_level), memory_order_relaxed);
}

bool ag_log_enabled(enum ag_log_level level)
{
    return (int)level >= atomic_load_explicit(&log_min_level, memory_order_relaxed);
}

int ag_log_level_parse(const char *name, enum ag_log_level *out)
{
    static const struct {
        const char *name;
        enum ag_log_level level;
    } table[] = {
        {"debug", AG_LOG_DEBUG},  {"info", AG_LOG_INFO},   {"warn", AG_LOG_WARN},
        {"warning", AG_LOG_WARN}, {"error", AG_LOG_ERROR},
    };
    if (!name)
        return AG_EINVAL;
    struct ag_str s = ag_str_from_cstr(name);
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (ag_str_eq_nocase(s, ag_str_from_cstr(table[i].name))) {
            *out = table[i].level;
            return 0;
        }
    }
    return AG_EINVAL;
}

const char *ag_log_level_name(enum ag_log_level level)
{
    return level_names[clamp_level(level)];
}

uint64_t ag_log_dropped(void)
{
    return atomic_load_explicit(&log_dropped_lines, memory_order_relaxed);
}
