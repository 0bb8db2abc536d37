/*
 * tools/bench_ctx.h: `tessera bench --sweep-ctx A:B:S`, speed and memory
 * against context depth (tools/bench_ctx.c).
 */
#ifndef TS_BENCH_CTX_H
#define TS_BENCH_CTX_H

#include <stdbool.h>

#include "tessera.h"

#define TS_CTX_SWEEP_MAX 64   /* depths in one sweep */
#define TS_CTX_SWEEP_REPS 1000 /* -r limit (bench's) */

typedef struct {
    const char *model, *name; /* path, and its file name for the report */
    long long from, to, step; /* depths from, from + step, .. <= to */
    long long pp, tg, reps;
    int threads, chunk;       /* 0: the engine's / session's defaults */
    int kt, vt;               /* KV cache types */
    int numa;
    const char *cpu_range, *csv, *svg;
    int threads_used;         /* out: the engine's thread count */
} ts_ctx_sweep_opts;

/* "A:B:S" with 0 <= A <= B, S >= 1 and at most TS_CTX_SWEEP_MAX depths. */
bool ts_ctx_sweep_parse(const char *s, long long *a, long long *b, long long *step);
/* Runs the sweep and prints / writes the report; 0, or 1 with the error printed. */
int ts_ctx_sweep_run(ts_ctx_sweep_opts *o);

#endif
