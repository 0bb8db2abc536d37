/*
 * core/err.h: the one status type and the error-context struct.
 * Every fallible function returns ts_status (0 = success everywhere) and may
 * fill an optional ts_err with a one-line message naming the field and value.
 */
#ifndef TS_ERR_H
#define TS_ERR_H

#include "tessera.h"

/* Formats msg into err (if non-NULL) and returns st, so callers can write
 * `return ts_err_set(err, TS_E_FORMAT, "tensor '%s': ...", name);`. */
ts_status ts_err_set(ts_err *err, ts_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* An on/off TESSERA_* variable: NULL or "" -> 0 (unset), "0" -> 0, "1" -> 1,
 * anything else -1 (the engine refuses it at creation, naming the variable). */
int ts_env_flag_parse(const char *s);

#endif
