/*
 * core/tessera.h: Tessera's only public header.
 *
 * Includes only <stddef.h> <stdint.h> <stdbool.h> and exposes no SIMD,
 * pthread or hwloc types. Resource owners are opaque handles created with
 * ts_x_create(&out, &opts, &err) and freed with ts_x_destroy(x) (NULL ok).
 * Every fallible call returns ts_status; 0 (TS_OK) means success everywhere.
 */
#ifndef TESSERA_H
#define TESSERA_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef enum {
    TS_OK = 0,
    TS_E_IO,
    TS_E_FORMAT,
    TS_E_NOMEM,
    TS_E_UNSUPPORTED,
    TS_E_ARG,
    TS_E_STATE
} ts_status;

/* Optional error context: a one-line message naming the field and value. */
typedef struct {
    ts_status status;
    char msg[256];
} ts_err;

const char *ts_status_str(ts_status st);

#endif
