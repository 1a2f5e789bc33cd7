/* Error codes and the caller-supplied error detail shared by every core module. */
#ifndef AG_ERR_H
#define AG_ERR_H

#include <stddef.h>

/*
 * Functions return 0 (or a non-negative count) on success and one of these negative codes on
 * failure. AG_EAGAIN means "not yet": more input is needed, or the operation would block.
 */
enum {
    AG_OK = 0,
    AG_EAGAIN = -1,     /* need more input / would block; try again later */
    AG_ENOMEM = -2,     /* allocation failed */
    AG_EINVAL = -3,     /* invalid argument or malformed input */
    AG_ERANGE = -4,     /* a value or size is over its limit */
    AG_ESYS = -5,       /* a system call failed; errno is in struct ag_err.sys_errno */
    AG_ECLOSED = -6,    /* the peer or the object is closed */
    AG_ETIMEDOUT = -7,  /* a deadline passed */
    AG_ENOTFOUND = -8,  /* a named thing does not exist */
    AG_EPROTO = -9,     /* the peer broke the protocol */
    AG_ECONFLICT = -10, /* a uniqueness or other constraint refused a change */
    AG_EUNAVAIL = -11,  /* a backend (database, broker) is down, locked or unreachable */
};

/* Human detail for a failure; filled by the callee, owned by the caller (no allocation). */
struct ag_err {
    int code;      /* the AG_E* code returned */
    int sys_errno; /* errno when code == AG_ESYS, else 0 */
    char msg[256]; /* one sentence for a human, never with a trailing newline */
};

/*
 * Fills err (when not NULL) with code and a printf-style message, and returns code so that
 * callers can write `return ag_err_set(err, AG_EINVAL, "bad port %s", s);`.
 */
int ag_err_set(struct ag_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* As ag_err_set, with code AG_ESYS and errno captured and appended as ": strerror". */
int ag_err_sys(struct ag_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A static name for an AG_E* code ("AG_EINVAL"); "AG_E?" for unknown codes. */
const char *ag_err_name(int code);

#endif
