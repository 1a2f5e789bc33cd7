/* JSON-lines logger: one JSON object per line, written whole with one write(2), from any thread. */
#ifndef AG_LOG_H
#define AG_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/buf.h"

/* Severities, lowest first; a line is written when its level is at least the minimum. */
enum ag_log_level {
    AG_LOG_DEBUG = 0,
    AG_LOG_INFO = 1,
    AG_LOG_WARN = 2,
    AG_LOG_ERROR = 3,
};

enum {
    AG_LOG_LINE_MAX = 16384, /* longest line written, newline included; longer ones are cut */
    AG_LOG_SERVICE_MAX = 64, /* bytes of the service name kept by ag_log_setup */
    AG_LOG_TS_LEN = 24,      /* strlen("2026-11-21T11:38:00.123Z") */
};

/* The type of a field's value; pick it through the AG_F_* constructors below. */
enum ag_log_type {
    AG_LOG_T_END = 0, /* terminator appended by the ag_log macros; never written */
    AG_LOG_T_STR,     /* NUL-terminated string; NULL is written as null */
    AG_LOG_T_SLICE,   /* struct ag_str; a slice with p == NULL is written as null */
    AG_LOG_T_INT,     /* int64_t */
    AG_LOG_T_UINT,    /* uint64_t */
    AG_LOG_T_BOOL,    /* bool */
    AG_LOG_T_DOUBLE,  /* double; NaN and infinities are written as null */
};

/* One key/value pair of a log line. The key and any string are borrowed for the call only. */
struct ag_log_field {
    const char *key; /* a field with a NULL key is skipped */
    enum ag_log_type type;
    union {
        const char *s;
        struct ag_str slice;
        int64_t i;
        uint64_t u;
        bool b;
        double d;
    } v;
};

/*
 * Field constructors. Each one initialises a typed member, so a value of the wrong kind (an int
 * for AG_F_STR, a pointer for AG_F_INT, a double for AG_F_INT) fails to compile under -Werror.
 */
#define AG_F_STR(k, val) ((struct ag_log_field){.key = (k), .type = AG_LOG_T_STR, .v.s = (val)})
#define AG_F_SLICE(k, val)                                                                         \
    ((struct ag_log_field){.key = (k), .type = AG_LOG_T_SLICE, .v.slice = (val)})
#define AG_F_INT(k, val)  ((struct ag_log_field){.key = (k), .type = AG_LOG_T_INT, .v.i = (val)})
#define AG_F_UINT(k, val) ((struct ag_log_field){.key = (k), .type = AG_LOG_T_UINT, .v.u = (val)})
#define AG_F_BOOL(k, val) ((struct ag_log_field){.key = (k), .type = AG_LOG_T_BOOL, .v.b = (val)})
#define AG_F_DOUBLE(k, val)                                                                        \
    ((struct ag_log_field){.key = (k), .type = AG_LOG_T_DOUBLE, .v.d = (val)})

/*
 * ag_log(level, msg, fields...) writes one line: ag_log(AG_LOG_INFO, "request done",
 * AG_F_STR("path", path), AG_F_INT("status", 200)). Zero or more AG_F_* fields may follow msg.
 * When the level is filtered out, the field arguments are not evaluated; level is evaluated
 * twice.
 */
#define ag_log(level, ...) AG_LOG_EMIT_((level), __VA_ARGS__, AG_LOG_END_)
#define ag_log_debug(...)  ag_log(AG_LOG_DEBUG, __VA_ARGS__)
#define ag_log_info(...)   ag_log(AG_LOG_INFO, __VA_ARGS__)
#define ag_log_warn(...)   ag_log(AG_LOG_WARN, __VA_ARGS__)
#define ag_log_error(...)  ag_log(AG_LOG_ERROR, __VA_ARGS__)

/* Implementation of ag_log: the END field makes an empty field list a valid array. */
#define AG_LOG_END_              ((struct ag_log_field){.key = NULL, .type = AG_LOG_T_END})
#define AG_LOG_FIELD_ARRAY_(...) ((const struct ag_log_field[]){__VA_ARGS__})
#define AG_LOG_FIELD_COUNT_(...)                                                                   \
    (sizeof AG_LOG_FIELD_ARRAY_(__VA_ARGS__) / sizeof(struct ag_log_field) - 1)
#define AG_LOG_EMIT_(level, msg, ...)                                                              \
    do {                                                                                           \
        if (ag_log_enabled(level))                                                                 \
            ag_log_fields((level), (msg), AG_LOG_FIELD_ARRAY_(__VA_ARGS__),                        \
                          AG_LOG_FIELD_COUNT_(__VA_ARGS__));                                       \
    } while (0)

/*
 * Configures the process-wide logger: lines go to fd (which stays owned by the caller; a
 * negative fd discards every line), lines below min_level are dropped, and service (may be
 * NULL or empty for none; copied, at most AG_LOG_SERVICE_MAX bytes kept) is added to each line.
 * Until it is called the logger writes to fd 1 at AG_LOG_INFO without a service. Call it before
 * starting threads: it must not race with logging. Levels out of range are clamped.
 */
void ag_log_setup(const char *service, enum ag_log_level min_level, int fd);

/* Changes the minimum level; safe from any thread at any time. */
void ag_log_set_level(enum ag_log_level min_level);

/* True when a line at level would be written (cheap: one relaxed atomic load). */
bool ag_log_enabled(enum ag_log_level level);

/*
 * Parses a level name: "debug", "info", "warn" (or "warning"), "error", in any ASCII case.
 * Returns 0 with *out set, or AG_EINVAL for NULL or any other name (*out is then unchanged).
 */
int ag_log_level_parse(const char *name, enum ag_log_level *out);

/* The name written for level ("debug" .. "error"); levels out of range give "error". */
const char *ag_log_level_name(enum ag_log_level level);

/*
 * Writes one line {"ts":..,"level":..,"msg":..,"service":..,fields..} when level is enabled.
 * msg may be NULL (written as null); fields is an array of n_fields (may be NULL when 0).
 * Strings are JSON-escaped: control characters become \u00XX and every byte that is not part
 * of valid UTF-8 becomes \ufffd, so each line is valid JSON. A line never exceeds
 * AG_LOG_LINE_MAX bytes: a string that does not fit is cut at a character boundary and ends
 * in "...", fields after it are dropped, and the line gets "truncated":true. Nothing is
 * allocated; errno is preserved. Lines that cannot be written (write error, EAGAIN) are counted
 * by ag_log_dropped. Keys are not checked for duplicates.
 */
void ag_log_fields(enum ag_log_level level, const char *msg, const struct ag_log_field *fields,
                   size_t n_fields);

/* Lines lost because write(2) failed, since the process started. */
uint64_t ag_log_dropped(void);

/*
 * Formats ts as RFC 3339 UTC with milliseconds ("2026-11-21T11:38:00.123Z") into out, which
 * gets AG_LOG_TS_LEN characters and a NUL. Years outside 0..9999 are clamped.
 */
void ag_log_format_ts(const struct timespec *ts, char out[AG_LOG_TS_LEN + 1]);

#endif
