/*
 * bench/bench_kernels.c: GEMM tile kernels per weight type and ISA level.
 *
 * For each (type, level): validates the level's kernel against the scalar one
 * on a small shape (memcmp, then the tests' tolerance if not identical), then
 * times one m x n x k GEMM (the tile kernel called on the whole problem,
 * single thread, activations pre-quantized), median of --reps runs after one
 * warm-up. CSV as STYLE §12:
 *   commit,machine,isa,threads,nodes,op,qtype,m,n,k,ns_median,gflops,weight_gbps
 * Usage: bench_kernels [--op gemm_<qtype>|all] [--isa scalar|avx2|avx512|amx|all]
 *                      [--m M] [--n N] [--k K] [--reps R]
 * Defaults: 512 tokens x 2048 x 2048, 10 reps (scalar: 3 reps, slow).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../quant/quant.h"
#include "../simd/kernels.h"
#include "../simd/repack.h"

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

static const uint32_t act_qt[TS_ACT_COUNT] = {TS_QTYPE_F32, TS_QTYPE_Q8_0, TS_QTYPE_Q8_1,
                                              TS_QTYPE_Q8_K};

typedef struct {
    void *w, *a;
    size_t w_stride, a_stride;
    int64_t m, n, k;
} prob;

static void prob_make(prob *p, const ts_kernels *ref, uint32_t type, int64_t m, int64_t n,
                      int64_t k, uint64_t seed)
{
    p->m = m;
    p->n = n;
    p->k = k;
    p->w_stride = ts_qtype_row_bytes(type, (uint64_t)k);
    p->w = malloc(p->w_stride * (size_t)m);
    float *x = malloc((size_t)k * sizeof(float));
    for (int64_t r = 0; r < m; r++) {
        for (int64_t i = 0; i < k; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            x[i] = (float)((int64_t)(seed >> 40) - (1 << 23)) / (float)(1 << 23);
        }
        if (type == TS_QTYPE_IQ2_XXS) { /* no quantizer: random block bytes, sane d */
            ts_block_iq2_xxs *bw = (ts_block_iq2_xxs *)((char *)p->w + (size_t)r * p->w_stride);
            for (int64_t blk = 0; blk < k / TS_QK_K; blk++) {
                for (int j = 0; j < TS_QK_K / 8; j++) {
                    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                    bw[blk].qs[j] = (uint16_t)(seed >> 40);
                }
                bw[blk].d = ts_f32_to_f16(0.01f * x[blk % k]);
            }
            continue;
        }
        ts_quantize_row(type, x, (char *)p->w + (size_t)r * p->w_stride, k);
    }
    int act = ref->gemm[type].act;
    p->a_stride = act == TS_ACT_F32 ? (size_t)k * 4 : ts_qtype_row_bytes(act_qt[act], (uint64_t)k);
    p->a = malloc(p->a_stride * (size_t)n);
    for (int64_t t = 0; t < n; t++) {
        for (int64_t i = 0; i < k; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            x[i] = (float)((int64_t)(seed >> 40) - (1 << 23)) / (float)(1 << 23);
        }
        if (act == TS_ACT_F32)
            memcpy((char *)p->a + (size_t)t * p->a_stride, x, (size_t)k * 4);
        else
            ref->quant_act[act](x, (char *)p->a + (size_t)t * p->a_stride, k);
    }
    free(x);
}

static void prob_free(prob *p)
{
    free(p->w);
    free(p->a);
}

static void run(const ts_kernels *kt, uint32_t type, const prob *p, float *y)
{
    kt->gemm[type].fn(p->k, p->m, p->n, p->w, p->w_stride, p->a, p->a_stride, y,
                      (size_t)p->m * sizeof(float));
}

/* Repacks p's weights in place into rtype's _R16 layout (simd/repack.h). */
static void prob_repack(prob *p, uint32_t rtype)
{
    void *rw = malloc(ts_repack_bytes(rtype, p->m, p->k));
    ts_repack_rows(rtype, p->w, p->w_stride, p->m, p->k, rw);
    free(p->w);
    p->w = rw;
    p->w_stride = ts_repack_row_stride(rtype, p->k);
}

/* Small-shape check against scalar; returns 0 when valid. */
static int validate(const ts_kernels *kt, const ts_kernels *ref, uint32_t type)
{
    const ts_qtraits *tr = ts_qtype_traits(ts_repack_base(type));
    const int64_t blk = tr->blck == 1 ? 32 : tr->blck;
    prob p;
    const uint32_t base = ts_repack_base(type);
    prob_make(&p, ref, base, 13, 11, 3 * blk, 1234);
    float *y0 = malloc(13 * 11 * sizeof(float)), *y1 = malloc(13 * 11 * sizeof(float));
    run(ref, base, &p, y0);
    if (base != type)
        prob_repack(&p, type);
    run(kt, type, &p, y1);
    int bad = 0;
    for (int i = 0; i < 13 * 11; i++)
        if (!(fabsf(y0[i] - y1[i]) <= 1e-5f * (1.0f + fabsf(y0[i]))))
            bad++;
    free(y0);
    free(y1);
    prob_free(&p);
    return bad;
}

int main(int argc, char **argv)
{
    const char *op = "all", *isa_arg = "all";
    int64_t m = 2048, n = 512, k = 2048;
    int reps = 10;
    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        long long x = v ? strtoll(v, &end, 10) : 0;
        bool num = v && *v && !*end;
        if (!strcmp(argv[i], "--op") && v) op = v;
        else if (!strcmp(argv[i], "--isa") && v) isa_arg = v;
        else if (!strcmp(argv[i], "--m") && num && x >= 1 && x <= (1 << 20)) m = x;
        else if (!strcmp(argv[i], "--n") && num && x >= 1 && x <= (1 << 16)) n = x;
        else if (!strcmp(argv[i], "--k") && num && x >= 1 && x <= (1 << 20)) k = x;
        else if (!strcmp(argv[i], "--reps") && num && x >= 1 && x <= 64) reps = (int)x;
        else {
            fprintf(stderr, "bench_kernels: bad or incomplete option '%s'\nusage: bench_kernels "
                            "[--op gemm_<type>[_r16]|all] [--isa scalar|avx2|avx512|amx|neon|"
                            "neon_dot|all] [--m ROWS] [--n TOKENS] [--k K] [--reps 1..64]\n",
                    argv[i]);
            return 2;
        }
    }
    if (strcmp(isa_arg, "all") && ts_isa_from_name(isa_arg) < 0) {
        fprintf(stderr, "bench_kernels: unknown --isa '%s'\n", isa_arg);
        return 2;
    }
    const char *commit = getenv("TESSERA_COMMIT") ? getenv("TESSERA_COMMIT") : "dev";
    const char *machine = getenv("TESSERA_MACHINE") ? getenv("TESSERA_MACHINE") : "local";
    static const uint32_t types[] = {TS_QTYPE_Q8_0, TS_QTYPE_Q4_0, TS_QTYPE_Q4_K, TS_QTYPE_Q6_K,
                                     TS_QTYPE_Q4_1, TS_QTYPE_Q5_0, TS_QTYPE_Q5_1, TS_QTYPE_Q2_K,
                                     TS_QTYPE_Q3_K, TS_QTYPE_Q5_K, TS_QTYPE_F32, TS_QTYPE_F16,
                                     TS_QTYPE_BF16, TS_QTYPE_IQ2_XXS};
    ts_kernels ref;
    ts_kernels_init(&ref, TS_ISA_SCALAR);
    ts_isa det = ts_isa_detect();
    printf("commit,machine,isa,threads,nodes,op,qtype,m,n,k,ns_median,gflops,weight_gbps\n");
    for (size_t vi = 0; vi < 2 * sizeof(types) / sizeof(types[0]); vi++) {
        /* Each type, then its _R16 repacked layout where it has one. */
        uint32_t type = types[vi / 2];
        if (vi % 2) {
            if (!ts_repack_type(type))
                continue;
            type = ts_repack_type(type);
        }
        const uint32_t base = ts_repack_base(type);
        char opname[64];
        snprintf(opname, sizeof(opname), "gemm_%s%s", ts_qtype_name(base),
                 base != type ? "_r16" : "");
        if (strcmp(op, "all") && strcasecmp(op, opname))
            continue;
        if (!ts_qtype_row_bytes(base, (uint64_t)k)) { /* k must hold whole blocks */
            fprintf(stderr, "%s: k %lld is not a multiple of %s's block, skipped\n", opname,
                    (long long)k, ts_qtype_name(base));
            continue;
        }
        for (int lv = TS_ISA_SCALAR; lv <= TS_ISA_AMX; lv++) {
            if ((ts_isa)lv > det || (strcmp(isa_arg, "all") && ts_isa_from_name(isa_arg) != lv))
                continue;
            ts_kernels kt;
            ts_kernels_init(&kt, (ts_isa)lv);
            /* A level that inherits the slot would only repeat the previous row. */
            if (lv > TS_ISA_SCALAR && kt.gemm[type].fn == ref.gemm[type].fn)
                continue;
            if (lv >= TS_ISA_AVX512) {
                ts_kernels prev;
                ts_kernels_init(&prev, (ts_isa)(lv - 1));
                if (kt.gemm[type].fn == prev.gemm[type].fn)
                    continue;
            }
            if (validate(&kt, &ref, type)) {
                fprintf(stderr, "%s: INVALID vs scalar, not timed\n", kt.gemm[type].name);
                continue;
            }
            prob p;
            prob_make(&p, &ref, base, m, n, k, 99);
            if (base != type)
                prob_repack(&p, type);
            float *y = malloc((size_t)(m * n) * sizeof(float));
            int r_n = lv == TS_ISA_SCALAR && reps > 3 ? 3 : reps;
            double t[64];
            if (r_n > 64) r_n = 64;
            run(&kt, type, &p, y); /* warm-up */
            for (int r = 0; r < r_n; r++) {
                double t0 = now_ns();
                run(&kt, type, &p, y);
                t[r] = now_ns() - t0;
            }
            qsort(t, (size_t)r_n, sizeof(double), cmp_d);
            double med = t[r_n / 2];
            double flops = 2.0 * (double)m * (double)n * (double)k;
            printf("%s,%s,%s,1,1,%s,%s,%lld,%lld,%lld,%.0f,%.2f,%.2f\n", commit, machine,
                   ts_isa_name((ts_isa)lv), opname, ts_qtype_name(base), (long long)m,
                   (long long)n, (long long)k, med, flops / med,
                   (double)(p.w_stride * (size_t)m) / med);
            fflush(stdout);
            free(y);
            prob_free(&p);
        }
    }
    return 0;
}
