/*
 * tools/bench_sweep.h: `tessera bench --sweep`: the thread-scaling report.
 */
#ifndef TS_BENCH_SWEEP_H
#define TS_BENCH_SWEEP_H

#include <stdio.h>

#include "fileio.h"

typedef struct {
    unsigned threads, n_nodes;
    int numa;               /* resolved ts_numa_mode */
    double pp, pp_sd;       /* prefill t/s (0 when not run) */
    double tg, tg_sd;       /* decode t/s (0 when not run) */
} ts_sweep_point;

/* Prints the scaling table (t/s, speedup and parallel efficiency against the
 * first point: eff = (tps / tps0) / (threads / threads0)) to stdout; writes it
 * as CSV to csv and as an SVG plot to svg (each may be NULL). Returns 0, or 1
 * with an error printed when a file cannot be written. */
int ts_sweep_report(const ts_sweep_point *pts, int n, const char *model, long long pp_n,
                    long long tg_n, const char *csv, const char *svg);

/* Shared by the bench reports (tools/bench_ctx.c too): a report file through
 * ts_safefile (replaced whole or not at all; never the model's path), NULL or
 * 1 with the error printed; and a "nice" axis maximum >= v (1, 2 or 5 times a
 * power of ten). */
FILE *ts_bench_open_out(ts_safefile *sf, const char *path, const char *model);
int ts_bench_commit_out(ts_safefile *sf);
double ts_bench_nice_max(double v);

#endif
