/*
 * core/err.c: status strings and error formatting. Owns nothing else.
 */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

ts_status ts_err_set(ts_err *err, ts_status st, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        err->status = st;
    }
    return st;
}

const char *ts_status_str(ts_status st)
{
    switch (st) {
    case TS_OK: return "ok";
    case TS_E_IO: return "i/o error";
    case TS_E_FORMAT: return "format error";
    case TS_E_NOMEM: return "out of memory";
    case TS_E_UNSUPPORTED: return "unsupported";
    case TS_E_ARG: return "bad argument";
    case TS_E_STATE: return "bad state";
    }
    return "unknown status";
}

int ts_env_flag_parse(const char *s)
{
    if (!s || !*s || !strcmp(s, "0"))
        return 0;
    return strcmp(s, "1") ? -1 : 1;
}
