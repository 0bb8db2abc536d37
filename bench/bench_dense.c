/*
 * bench/bench_dense.c: dense float layers, our tile path vs cblas_sgemm.
 *
 * Shapes are chunk shapes (tokens x rows x k): 512x2048x2048, 512x896x4864,
 * 1x2048x2048. Ops (CSV as STYLE §12, m = rows, n = tokens):
 *   dense_tile      ts_mm_run on the pool, F32/F16/BF16 weights, this level's kernels
 *   sgemm_threaded  ts_mm_run with BLAS mode THREADED (cblas_sgemm from the
 *                   caller, OpenBLAS threads = pool size, our workers asleep)
 *   sgemm_tile      ts_mm_run with BLAS mode TILE (single-threaded cblas_sgemm
 *                   per row tile on our workers)
 *   sgemm_conv      F16/BF16 weights widened to f32 on the pool each call, then
 *                   THREADED sgemm (is converting for BLAS worth it?)
 *   sgemm_raw       cblas_sgemm called directly (THREADED), for every n: what
 *                   BLAS would give where ts_dense_accepts() declines (decode)
 *   kernel_1t       the level's tile kernel on one thread (64-token blocks);
 *                   scalar only for 1-token shapes (it is a libm-fmaf oracle)
 * Every variant is validated before timing: kernels memcmp against scalar on
 * a corner of the problem, BLAS rows by NMSE against the tile path.
 * Usage: bench_dense [--reps R] [--threads T]   (TESSERA_ISA caps the level)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/dense.h"
#include "../core/matmul.h"
#include "../quant/quant.h"
#include "../simd/kernels.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    ts_mm *mm;
    ts_pool *pool;
    const ts_qview *w;
    const ts_qview *w32; /* f32 copy of w (sgemm_conv target) */
    const float *x;
    float *y;
    int64_t n;
    const ts_kernels *kt; /* kernel_1t */
} run_arg;

typedef enum { OP_TILE, OP_SG_THR, OP_SG_TILE, OP_SG_CONV, OP_SG_RAW, OP_K1T } op_kind;
static const char *op_names[] = {"dense_tile", "sgemm_threaded", "sgemm_tile", "sgemm_conv",
                                 "sgemm_raw", "kernel_1t"};

static void conv_rows(void *ctx, uint32_t i0, uint32_t i1, ts_scratch *s)
{
    const run_arg *r = ctx;
    (void)s;
    for (uint32_t row = i0; row < i1; row++)
        ts_dequantize_row(r->w->qtype, (const char *)r->w->data + (size_t)row * r->w->row_stride,
                          (float *)((char *)(uintptr_t)r->w32->data +
                                    (size_t)row * r->w32->row_stride),
                          r->w->cols);
}

static void run_once(op_kind op, const run_arg *r)
{
    const ts_qview *w = r->w;
    size_t xs = (size_t)w->cols * 4, ys = (size_t)w->rows * 4;
    switch (op) {
    case OP_TILE: case OP_SG_THR: case OP_SG_TILE:
        ts_mm_run(r->mm, w, r->x, xs, r->n, r->y, ys);
        break;
    case OP_SG_CONV:
        ts_pool_for_grain(r->pool, (uint32_t)w->rows, 16, conv_rows, (void *)r);
        ts_mm_run(r->mm, r->w32, r->x, xs, r->n, r->y, ys);
        break;
    case OP_SG_RAW:
        ts_dense_sgemm(w->rows, r->n, w->cols, w->data, w->row_stride, r->x, xs, r->y, ys);
        break;
    case OP_K1T:
        for (int64_t t0 = 0; t0 < r->n; t0 += 64) {
            int64_t tn = r->n - t0 < 64 ? r->n - t0 : 64;
            r->kt->gemm[w->qtype].fn(w->cols, w->rows, tn, w->data, w->row_stride,
                                     r->x + t0 * w->cols, xs, r->y + t0 * w->rows, ys);
        }
        break;
    }
}

static double nmse(const float *a, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? num / den : num;
}

int main(int argc, char **argv)
{
    int reps = 10, threads = 0;
    for (int i = 1; i < argc; i += 2) {
        char *end = NULL;
        long v = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : -1;
        bool ok = i + 1 < argc && *argv[i + 1] && !*end;
        if (!strcmp(argv[i], "--reps") && ok && v >= 1 && v <= 1000)
            reps = (int)v;
        else if (!strcmp(argv[i], "--threads") && ok && v >= 0 && v <= 1024)
            threads = (int)v;
        else {
            fprintf(stderr, "bench_dense: bad or incomplete option '%s'\n"
                            "usage: bench_dense [--reps 1..1000] [--threads N]\n", argv[i]);
            return 2;
        }
    }
    const char *commit = getenv("TESSERA_COMMIT") ? getenv("TESSERA_COMMIT") : "dev";
    const char *machine = getenv("TESSERA_MACHINE") ? getenv("TESSERA_MACHINE") : "local";
    ts_pool *pool = NULL;
    ts_err err;
    if (ts_pool_create(&pool, &(ts_pool_opts){.n_threads = threads}, &err) != TS_OK) {
        fprintf(stderr, "pool: %s\n", err.msg);
        return 1;
    }
    int nth = (int)ts_pool_n_workers(pool);
    ts_isa isa = ts_isa_from_env();
    ts_kernels kt, ks;
    ts_kernels_init(&kt, isa);
    ts_kernels_init(&ks, TS_ISA_SCALAR);
    fprintf(stderr, "blas: %s\n", ts_dense_blas_info());
    printf("commit,machine,isa,threads,nodes,op,qtype,m,n,k,ns_median,gflops,weight_gbps\n");
    const int64_t shapes[][3] = {{512, 2048, 2048}, {512, 896, 4864}, {1, 2048, 2048}};
    const uint32_t types[] = {TS_QTYPE_F32, TS_QTYPE_F16, TS_QTYPE_BF16};
    for (size_t si = 0; si < 3; si++) {
        int64_t n = shapes[si][0], m = shapes[si][1], k = shapes[si][2];
        float *x = aligned_alloc(64, (size_t)(n * k) * 4), *wf = aligned_alloc(64, (size_t)(m * k) * 4);
        float *y = aligned_alloc(64, (size_t)(n * m) * 4), *yref = aligned_alloc(64, (size_t)(n * m) * 4);
        uint64_t seed = 12345;
        for (int64_t i = 0; i < n * k; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            x[i] = (float)((int64_t)(seed >> 40) - (1 << 23)) / (float)(1 << 23);
        }
        for (int64_t i = 0; i < m * k; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            wf[i] = (float)((int64_t)(seed >> 40) - (1 << 23)) / (float)(1 << 26);
        }
        ts_mm *mm = NULL;
        if (ts_mm_create(&mm, pool, n, k, &err) != TS_OK) {
            fprintf(stderr, "mm: %s\n", err.msg);
            return 1;
        }
        for (size_t ti = 0; ti < 3; ti++) {
            uint32_t type = types[ti];
            size_t ws = ts_qtype_row_bytes(type, (uint64_t)k);
            void *wq = aligned_alloc(64, ws * (size_t)m);
            for (int64_t r = 0; r < m; r++)
                ts_quantize_row(type, wf + r * k, (char *)wq + (size_t)r * ws, k);
            float *w32 = aligned_alloc(64, (size_t)(m * k) * 4);
            ts_qview w = {wq, type, m, k, ws, NULL}, v32 = {w32, TS_QTYPE_F32, m, k, (size_t)k * 4, NULL};
            run_arg ra = {mm, pool, &w, &v32, x, y, n, &kt};
            /* Reference: this level's tile path (validated against scalar below). */
            ts_mm_set_blas(mm, TS_DENSE_BLAS_OFF);
            run_once(OP_TILE, &ra);
            memcpy(yref, y, (size_t)(n * m) * 4);
            {
                int64_t cr = m < 7 ? m : 7, cn = n < 5 ? n : 5, ck = k;
                float ys[35];
                ks.gemm[type].fn(ck, cr, cn, wq, ws, x, (size_t)k * 4, ys, (size_t)cr * 4);
                for (int64_t t = 0; t < cn; t++)
                    if (memcmp(ys + t * cr, yref + t * m, (size_t)cr * 4) != 0) {
                        fprintf(stderr, "%s: tile path != scalar, not timed\n",
                                ts_qtype_name(type));
                        return 1;
                    }
            }
            for (int op = OP_TILE; op <= OP_K1T; op++) {
                ts_dense_blas_mode mode = op == OP_SG_THR || op == OP_SG_CONV || op == OP_SG_RAW
                                              ? TS_DENSE_BLAS_THREADED
                                          : op == OP_SG_TILE                  ? TS_DENSE_BLAS_TILE
                                                                              : TS_DENSE_BLAS_OFF;
                if ((op == OP_SG_THR || op == OP_SG_TILE || op == OP_SG_RAW) &&
                    type != TS_QTYPE_F32)
                    continue;
                if (op == OP_SG_CONV && type == TS_QTYPE_F32)
                    continue;
                if ((op == OP_SG_THR || op == OP_SG_TILE || op == OP_SG_CONV) &&
                    !ts_dense_accepts(mode, &v32, n))
                    continue; /* the engine would not take BLAS for this n */
                int n_lv = op == OP_K1T ? (n == 1 ? 2 : 1) : 1;
                for (int lv = 0; lv < n_lv; lv++) {
                    ra.kt = lv ? &ks : &kt;
                    ts_mm_set_blas(mm, mode);
                    memset(y, 0xff, (size_t)(n * m) * 4);
                    run_once((op_kind)op, &ra); /* warm-up and validation */
                    double e = nmse(y, yref, (size_t)(n * m));
                    if (!(e <= 1e-10)) {
                        fprintf(stderr, "%s %s: NMSE %g vs tile path, not timed\n",
                                op_names[op], ts_qtype_name(type), e);
                        continue;
                    }
                    int r_used = lv ? 3 : reps;
                    double t[1000];
                    for (int rep = 0; rep < r_used; rep++) {
                        double t0 = now_ns();
                        run_once((op_kind)op, &ra);
                        t[rep] = now_ns() - t0;
                    }
                    qsort(t, (size_t)r_used, sizeof(double), cmp_d);
                    double med = t[r_used / 2];
                    double flops = 2.0 * (double)m * (double)n * (double)k;
                    printf("%s,%s,%s,%d,1,%s,%s,%lld,%lld,%lld,%.0f,%.2f,%.2f\n", commit,
                           machine, lv ? "scalar" : ts_isa_name(isa),
                           op == OP_K1T ? 1 : nth, op_names[op], ts_qtype_name(type),
                           (long long)m, (long long)n, (long long)k, med, flops / med,
                           (double)ws * (double)m / med);
                    fflush(stdout);
                }
            }
            ts_mm_set_blas(mm, TS_DENSE_BLAS_OFF);
            free(wq);
            free(w32);
        }
        ts_mm_destroy(mm);
        free(x);
        free(wf);
        free(y);
        free(yref);
    }
    ts_pool_destroy(pool);
    return 0;
}
