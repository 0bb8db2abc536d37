/*
 * tools/bench_sweep.h: `tessera bench --sweep`: the thread-scaling report.
 */
#ifndef TS_BENCH_SWEEP_H
#define TS_BENCH_SWEEP_H

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

#endif
