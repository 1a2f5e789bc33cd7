/* Error detail helpers: fill a caller's struct ag_err and hand the code back. */
#include "core/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/banned.h"

int ag_err_set(struct ag_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
        err->sys_errno = 0;
    }
    return code;
}

int ag_err_sys(struct ag_err *err, const char *fmt, ...)
{
    int saved = errno;
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < sizeof err->msg)
            snprintf(err->msg + n, sizeof err->msg - (size_t)n, ": %s", strerror(saved));
        err->code = AG_ESYS;
        err->sys_errno = saved;
    }
    errno = saved;
    return AG_ESYS;
}

const char *ag_err_name(int code)
{
    switch (code) {
    case AG_OK:
        return "AG_OK";
    case AG_EAGAIN:
        return "AG_EAGAIN";
    case AG_ENOMEM:
        return "AG_ENOMEM";
    case AG_EINVAL:
        return "AG_EINVAL";
    case AG_ERANGE:
        return "AG_ERANGE";
    case AG_ESYS:
        return "AG_ESYS";
    case AG_ECLOSED:
        return "AG_ECLOSED";
    case AG_ETIMEDOUT:
        return "AG_ETIMEDOUT";
    case AG_ENOTFOUND:
        return "AG_ENOTFOUND";
    case AG_EPROTO:
        return "AG_EPROTO";
    case AG_ECONFLICT:
        return "AG_ECONFLICT";
    case AG_EUNAVAIL:
        return "AG_EUNAVAIL";
    }
    return "AG_E?";
}
