/*
 * tools/bench_attn.h: `tessera bench --attn`, the attention kernel alone
 * against its instructions' peak (tools/bench_attn.c).
 */
#ifndef TS_BENCH_ATTN_H
#define TS_BENCH_ATTN_H

#define TS_BENCH_ATTN_REPS 1000 /* -r limit (bench's) */

typedef struct {
    int kt, vt;              /* KV types */
    long long reps;
    const long long *n_q;    /* -p list (NULL: 1, 64, 512) */
    int n_q_n;
    const long long *n_kv;   /* -d list (NULL: 4096, 16384, 32768) */
    int n_kv_n;
} ts_bench_attn_opts;

/* Prints the table; 0, or 1 with the error printed. */
int ts_bench_attn(const ts_bench_attn_opts *o);

#endif
