/*
 * tests/test_kernels.c: the kernel table, every level the host has.
 *
 * Oracle chain (STYLE §11): quant/ dequantize + double dot is the truth for
 * the scalar level; every other level is checked against scalar (tolerance)
 * and, within a level, every tiling / NY / MR variant against the one-call
 * result with memcmp (the determinism invariant). Quantizers must match the
 * scalar one and quant/'s reference byte for byte. Outputs are NaN-poisoned.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "tolerances.h"
/* TS_TEST_SIMD_ONLY: defined only by `make check-arm`, whose static aarch64
 * test binary links simd/ + quant/ and no core/ or sched/ (no pool). */
#ifndef TS_TEST_SIMD_ONLY
#include "../core/ktune.h"
#include "../core/matmul.h"
#endif
#include "../quant/quant.h"
#include "../simd/kernels.h"
#include "levels.h"
#include "../simd/repack.h"

static const uint32_t gemm_types[] = {
    TS_QTYPE_F32,  TS_QTYPE_F16,  TS_QTYPE_BF16, TS_QTYPE_Q4_0, TS_QTYPE_Q4_1,
    TS_QTYPE_Q5_0, TS_QTYPE_Q5_1, TS_QTYPE_Q8_0, TS_QTYPE_Q2_K, TS_QTYPE_Q3_K,
    TS_QTYPE_Q4_K, TS_QTYPE_Q5_K, TS_QTYPE_Q6_K,
};
#define N_TYPES (sizeof(gemm_types) / sizeof(gemm_types[0]))
static const uint32_t act_types[TS_ACT_COUNT] = {TS_QTYPE_F32, TS_QTYPE_Q8_0, TS_QTYPE_Q8_1,
                                                 TS_QTYPE_Q8_K};

enum { DATA_RANDOM, DATA_MAX, DATA_ZERO, DATA_ALT, DATA_TINY, N_DATA };

static void fill(float *v, int64_t n, int kind, uint64_t *rng)
{
    for (int64_t i = 0; i < n; i++) {
        switch (kind) {
        case DATA_RANDOM: v[i] = ts_test_randf(rng); break;
        case DATA_MAX: v[i] = (ts_test_rand(rng) & 1) ? 1000.0f : -1000.0f; break;
        case DATA_ZERO: v[i] = 0.0f; break;
        case DATA_ALT: v[i] = (i & 1) ? -0.75f : 0.75f + 0.001f * (float)(i % 7); break;
        default: v[i] = ts_test_randf(rng) * 1e-5f; break;
        }
    }
}

static void *xalloc(size_t n)
{
    void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    if (!p)
        abort();
    return p;
}

/* Problem: rows x k weights of type, n_tok activation rows in the slot's format. */
typedef struct {
    uint32_t type;
    int64_t rows, k, n_tok;
    size_t w_stride, a_stride;
    void *w, *a;
    float *xf; /* (n_tok, k) the f32 activations */
} problem;

static void problem_make(problem *p, const ts_kernels *kt, uint32_t type, int64_t rows, int64_t k,
                         int64_t n_tok, int wkind, int akind, uint64_t *rng)
{
    p->type = type;
    p->rows = rows;
    p->k = k;
    p->n_tok = n_tok;
    p->w_stride = ts_qtype_row_bytes(type, (uint64_t)k);
    p->w = xalloc(p->w_stride * (size_t)rows);
    float *tmp = xalloc((size_t)k * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        fill(tmp, k, wkind, rng);
        ts_quantize_row(type, tmp, (char *)p->w + (size_t)r * p->w_stride, k);
    }
    free(tmp);
    p->xf = xalloc((size_t)(n_tok * k) * sizeof(float));
    fill(p->xf, n_tok * k, akind, rng);
    int act = kt->gemm[type].act;
    if (act == TS_ACT_F32) {
        p->a_stride = (size_t)k * sizeof(float);
        p->a = xalloc(p->a_stride * (size_t)n_tok);
        memcpy(p->a, p->xf, p->a_stride * (size_t)n_tok);
    } else {
        p->a_stride = ts_qtype_row_bytes(act_types[act], (uint64_t)k);
        p->a = xalloc(p->a_stride * (size_t)n_tok);
        for (int64_t t = 0; t < n_tok; t++)
            kt->quant_act[act](p->xf + t * k, (char *)p->a + (size_t)t * p->a_stride, k);
    }
}

static void problem_free(problem *p)
{
    free(p->w);
    free(p->a);
    free(p->xf);
}

/* Dequantized activation row (Q8_1 has no quant/ dequantizer: d * q). */
static void act_deq(const problem *p, int act, int64_t tok, float *out)
{
    const char *row = (const char *)p->a + (size_t)tok * p->a_stride;
    if (act == TS_ACT_Q8_1) {
        const ts_block_q8_1 *b = (const ts_block_q8_1 *)row;
        for (int64_t i = 0; i < p->k; i++)
            out[i] = ts_f16_to_f32(b[i / 32].d) * (float)b[i / 32].qs[i % 32];
    } else {
        ts_dequantize_row(act_types[act], row, out, p->k);
    }
}

/* Poisoned output: n_tok rows of (rows + 3) floats; the kernel writes rows. */
static float *y_poisoned(const problem *p, size_t *stride)
{
    *stride = (size_t)(p->rows + 3) * sizeof(float);
    float *y = xalloc(*stride * (size_t)p->n_tok);
    for (size_t i = 0; i < *stride * (size_t)p->n_tok / sizeof(float); i++)
        y[i] = NAN;
    return y;
}

static int check_poison(const problem *p, const float *y, size_t stride, const char *what)
{
    int bad = 0;
    for (int64_t t = 0; t < p->n_tok; t++)
        for (int64_t r = 0; r < p->rows + 3; r++) {
            float v = ((const float *)((const char *)y + (size_t)t * stride))[r];
            if ((r < p->rows) != !isnan(v) || (r < p->rows && !isfinite(v)))
                bad++;
        }
    TS_CHECK(bad == 0, "%s %s: %d outputs written wrong (poison)", what, ts_qtype_name(p->type),
             bad);
    return bad;
}

static double base_rtol(uint32_t type)
{
    if (type == TS_QTYPE_F32 || type == TS_QTYPE_F16 || type == TS_QTYPE_BF16)
        return TS_TOL_FDOT_RTOL;
    if (type == TS_QTYPE_Q4_1 || type == TS_QTYPE_Q5_1)
        return TS_TOL_Q8_1_RTOL;
    return TS_TOL_QDOT_RTOL;
}

static void run_slot(const ts_kernels *kt, const problem *p, float *y, size_t y_stride)
{
    kt->gemm[p->type].fn(p->k, p->rows, p->n_tok, p->w, p->w_stride, p->a, p->a_stride, y,
                         y_stride);
}

static size_t wblk_bytes(uint32_t type) { return ts_qtype_traits(type)->size; }
static int64_t blk_of(uint32_t type) { return (int64_t)ts_qtype_traits(type)->blck; }
static int64_t kblocks(uint32_t type, int64_t nb) { return nb * (blk_of(type) == 1 ? 32 : blk_of(type)); }

TS_TEST(test_kernels_table_complete)
{
    ts_isa lv[5];
    int n = ts_test_levels(lv);
    for (int i = 0; i < n; i++) {
        ts_kernels kt;
        ts_kernels_init(&kt, lv[i]);
        TS_CHECK(kt.isa == lv[i], "level %s built as %s", ts_isa_name(lv[i]), ts_isa_name(kt.isa));
        for (size_t t = 0; t < N_TYPES; t++)
            TS_CHECK(kt.gemm[gemm_types[t]].fn != NULL, "no kernel for %s",
                     ts_qtype_name(gemm_types[t]));
    }
    TS_CHECK(ts_isa_from_name("avx2") == TS_ISA_AVX2, "name parse");
    TS_CHECK(ts_isa_from_name("amx") == TS_ISA_AMX && !strcmp(ts_isa_name(TS_ISA_AMX), "amx"),
             "amx name");
    { /* TESSERA_ISA=avx512 caps below the amx level (AMX present or not). */
        const char *old = getenv("TESSERA_ISA");
        char *keep = old ? strdup(old) : NULL;
        setenv("TESSERA_ISA", "avx512", 1);
        TS_CHECK(ts_isa_from_env() <= TS_ISA_AVX512, "TESSERA_ISA=avx512 gave %s",
                 ts_isa_name(ts_isa_from_env()));
        if (keep)
            setenv("TESSERA_ISA", keep, 1);
        else
            unsetenv("TESSERA_ISA");
        free(keep);
    }
    if (ts_isa_detect() != TS_ISA_AMX && ts_isa_detect() < TS_ISA_NEON)
        fprintf(stderr, "  note: no usable AMX on this host: amx level not tested\n");
    TS_CHECK(ts_isa_from_env() <= ts_isa_detect() || ts_isa_detect() == TS_ISA_SCALAR, "cap");
    /* make check-arm sets this per qemu -cpu, so a detection slip cannot
     * silently leave a dispatch branch untested. */
    const char *want = getenv("TESSERA_EXPECT_ISA");
    if (want && *want)
        TS_CHECK(ts_isa_from_name(want) == (int)ts_isa_detect(), "detected %s, expected %s",
                 ts_isa_name(ts_isa_detect()), want);
}

TS_TEST(test_kernels_quant_act_bitexact)
{
    ts_isa lv[5];
    int n_lv = ts_test_levels(lv);
    ts_kernels ref;
    ts_kernels_init(&ref, TS_ISA_SCALAR);
    uint64_t rng = 42;
    const int64_t k = 512;
    float *x = xalloc(k * sizeof(float));
    uint8_t *q0 = xalloc(k * 2), *q1 = xalloc(k * 2);
    for (int kind = 0; kind < N_DATA; kind++) {
        fill(x, k, kind, &rng);
        if (kind == DATA_RANDOM) { /* exact .5 ties after scaling, and a -amax first */
            x[0] = -1.0f;
            x[1] = 1.0f;
            for (int i = 2; i < 32; i++)
                x[i] = (float)(i - 16) / 127.0f * 2.0f + 1.0f / 254.0f;
        }
        for (int act = TS_ACT_Q8_0; act < TS_ACT_COUNT; act++) {
            size_t bytes = ts_qtype_row_bytes(act_types[act], (uint64_t)k);
            memset(q0, 0xA5, bytes);
            ref.quant_act[act](x, q0, k);
            memset(q1, 0xA5, bytes);
            ts_quantize_row(act_types[act], x, q1, k);
            TS_CHECK(memcmp(q0, q1, bytes) == 0, "scalar %s != quant/ reference (data %d)",
                     ref.quant_act_name[act], kind);
            for (int l = 1; l < n_lv; l++) {
                ts_kernels kt;
                ts_kernels_init(&kt, lv[l]);
                memset(q1, 0xA5, bytes);
                kt.quant_act[act](x, q1, k);
                TS_CHECK(memcmp(q0, q1, bytes) == 0, "%s != scalar (data %d)",
                         kt.quant_act_name[act], kind);
            }
        }
    }
    free(x);
    free(q0);
    free(q1);
}

/* Q4_1/Q5_1 x Q8_1 as the format defines it: sum (w - m) * a over the block
 * plus m * s, with the activation's stored s = f16(d * sum(q)) (it differs
 * from sum(d16 * q) by f16 rounding, large when d is an f16 subnormal). Both
 * weight blocks start with f16 d, m. */
static double q8_1_truth(const problem *p, int64_t r, int64_t t, const float *wd, const float *ad)
{
    size_t wblk = wblk_bytes(p->type);
    const char *wr = (const char *)p->w + (size_t)r * p->w_stride;
    const ts_block_q8_1 *ab = (const ts_block_q8_1 *)((const char *)p->a + (size_t)t * p->a_stride);
    double dot = 0;
    for (int64_t b = 0; b < p->k / 32; b++) {
        ts_f16 m;
        memcpy(&m, wr + (size_t)b * wblk + 2, 2);
        double mf = ts_f16_to_f32(m);
        for (int64_t i = 32 * b; i < 32 * b + 32; i++)
            dot += ((double)wd[i] - mf) * ad[i];
        dot += mf * ts_f16_to_f32(ab[b].s);
    }
    return dot;
}

/* Scalar level vs truth (dequantize + double dot). */
TS_TEST(test_kernels_scalar_vs_reference)
{
    ts_kernels kt;
    ts_kernels_init(&kt, TS_ISA_SCALAR);
    uint64_t rng = 7;
    const int64_t nbs[] = {1, 2, 3, 9};
    const int64_t rows_set[] = {1, 3, 5};
    for (size_t ti = 0; ti < N_TYPES; ti++)
        for (size_t bi = 0; bi < 4; bi++)
            for (int kind = 0; kind < N_DATA; kind++) {
                uint32_t type = gemm_types[ti];
                problem p;
                problem_make(&p, &kt, type, rows_set[bi % 3], kblocks(type, nbs[bi]),
                             1 + (int64_t)(bi * 2), kind, (kind + 1) % N_DATA, &rng);
                size_t ys;
                float *y = y_poisoned(&p, &ys);
                run_slot(&kt, &p, y, ys);
                check_poison(&p, y, ys, "scalar");
                float *wd = xalloc((size_t)p.k * sizeof(float)), *ad = xalloc((size_t)p.k * 4);
                int bad = 0;
                double rtol = ts_tol_rtol(base_rtol(type), p.k / blk_of(type));
                for (int64_t r = 0; r < p.rows; r++) {
                    ts_dequantize_row(type, (char *)p.w + (size_t)r * p.w_stride, wd, p.k);
                    for (int64_t t = 0; t < p.n_tok; t++) {
                        act_deq(&p, kt.gemm[type].act, t, ad);
                        double dot = 0, abs_sum = 0;
                        for (int64_t i = 0; i < p.k; i++) {
                            dot += (double)wd[i] * ad[i];
                            abs_sum += fabs((double)wd[i] * ad[i]);
                        }
                        if (kt.gemm[type].act == TS_ACT_Q8_1)
                            dot = q8_1_truth(&p, r, t, wd, ad);
                        float got = ((float *)((char *)y + (size_t)t * ys))[r];
                        if (!(fabs(got - dot) <= TS_TOL_ATOL + rtol * abs_sum) && bad++ < 3)
                            TS_CHECK(0, "%s k=%lld data=%d r=%lld t=%lld: %.9g vs %.9g (abs %g)",
                                     ts_qtype_name(type), (long long)p.k, kind, (long long)r,
                                     (long long)t, got, dot, abs_sum);
                    }
                }
                free(wd);
                free(ad);
                free(y);
                problem_free(&p);
            }
}

/* Each non-scalar level vs scalar, with the token and row edge sets. */
TS_TEST(test_kernels_levels_vs_scalar)
{
    ts_isa lv[5];
    int n_lv = ts_test_levels(lv);
    if (n_lv == 1) {
        ts_test_skip("host has only the scalar level");
        return;
    }
    ts_kernels ref;
    ts_kernels_init(&ref, TS_ISA_SCALAR);
    uint64_t rng = 11;
    const int64_t toks[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 31, 32, 33, 63, 64, 65, 127, 128, 129};
    const int64_t rows_set[] = {1, 3, 4, 5, 13};
    long n_exact = 0, n_total = 0;
    for (int l = 1; l < n_lv; l++) {
        ts_kernels kt;
        ts_kernels_init(&kt, lv[l]);
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            uint32_t type = gemm_types[ti];
            if (kt.gemm[type].fn == ref.gemm[type].fn)
                continue; /* inherited from scalar */
            for (size_t si = 0; si < sizeof(toks) / sizeof(toks[0]); si++) {
                int64_t nb = toks[si] > 32 ? 1 : (si % 4 == 3 ? 17 : 1 + (int64_t)(si % 3));
                int kind = (int)(si % N_DATA);
                problem p;
                problem_make(&p, &ref, type, rows_set[si % 5], kblocks(type, nb), toks[si], kind,
                             (kind + 2) % N_DATA, &rng);
                size_t ys;
                float *y0 = y_poisoned(&p, &ys), *y1 = y_poisoned(&p, &ys);
                run_slot(&ref, &p, y0, ys);
                run_slot(&kt, &p, y1, ys);
                check_poison(&p, y1, ys, ts_isa_name(lv[l]));
                double rtol = ts_tol_rtol(base_rtol(type), p.k / blk_of(type));
                float *wd = xalloc((size_t)p.k * 4), *ad = xalloc((size_t)p.k * 4);
                int bad = 0;
                for (int64_t r = 0; r < p.rows; r++) {
                    ts_dequantize_row(type, (char *)p.w + (size_t)r * p.w_stride, wd, p.k);
                    for (int64_t t = 0; t < p.n_tok; t++) {
                        float a0 = ((float *)((char *)y0 + (size_t)t * ys))[r];
                        float a1 = ((float *)((char *)y1 + (size_t)t * ys))[r];
                        n_total++;
                        if (memcmp(&a0, &a1, 4) == 0) {
                            n_exact++;
                            continue;
                        }
                        act_deq(&p, kt.gemm[type].act, t, ad);
                        double abs_sum = 0;
                        for (int64_t i = 0; i < p.k; i++)
                            abs_sum += fabs((double)wd[i] * ad[i]);
                        if (!(fabs((double)a1 - a0) <= TS_TOL_ATOL + rtol * abs_sum) && bad++ < 3)
                            TS_CHECK(0, "%s %s rows=%lld toks=%lld r=%lld t=%lld: %.9g vs %.9g",
                                     kt.gemm[type].name, ts_qtype_name(type), (long long)p.rows,
                                     (long long)p.n_tok, (long long)r, (long long)t, a1, a0);
                    }
                }
                free(wd);
                free(ad);
                free(y0);
                free(y1);
                problem_free(&p);
            }
        }
    }
    /* Same canonical order on x86 and arm: expected bit-identical to scalar. */
    TS_CHECK(n_exact == n_total, "%ld of %ld outputs differ from scalar (allowed, unexpected)",
             n_total - n_exact, n_total);
}

/* Within a level: any tiling (row/token splits, NY = 1, MR tails) is memcmp-equal. */
TS_TEST(test_kernels_tiling_deterministic)
{
    ts_isa lv[5];
    int n_lv = ts_test_levels(lv);
    uint64_t rng = 99;
    for (int l = 0; l < n_lv; l++) {
        ts_kernels kt;
        ts_kernels_init(&kt, lv[l]);
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            uint32_t type = gemm_types[ti];
            problem p;
            problem_make(&p, &kt, type, 13, kblocks(type, 3), 11, DATA_RANDOM, DATA_RANDOM, &rng);
            size_t ys;
            float *y0 = y_poisoned(&p, &ys), *y1 = y_poisoned(&p, &ys);
            run_slot(&kt, &p, y0, ys);
            const int64_t rsplit[] = {1, 2, 3, 4, 5, 7}, tsplit[] = {1, 2, 3, 4, 5, 6};
            for (int s = 0; s < 6; s++) {
                for (int64_t r0 = 0; r0 < p.rows; r0 += rsplit[s])
                    for (int64_t t0 = 0; t0 < p.n_tok; t0 += tsplit[(s + 2) % 6]) {
                        int64_t rn = p.rows - r0 < rsplit[s] ? p.rows - r0 : rsplit[s];
                        int64_t tn = p.n_tok - t0 < tsplit[(s + 2) % 6] ? p.n_tok - t0
                                                                        : tsplit[(s + 2) % 6];
                        kt.gemm[type].fn(p.k, rn, tn, (char *)p.w + (size_t)r0 * p.w_stride,
                                         p.w_stride, (char *)p.a + (size_t)t0 * p.a_stride,
                                         p.a_stride, (float *)((char *)y1 + (size_t)t0 * ys) + r0,
                                         ys);
                    }
                TS_CHECK(memcmp(y0, y1, ys * (size_t)p.n_tok) == 0,
                         "%s: split rows by %lld toks by %lld differs", kt.gemm[type].name,
                         (long long)rsplit[s], (long long)tsplit[(s + 2) % 6]);
            }
            free(y0);
            free(y1);
            problem_free(&p);
        }
    }
}

#ifndef TS_TEST_SIMD_ONLY
/* Pools of 1, 2 and 3 threads; false (and a failed check) if one fails. */
static bool make_pools(ts_pool *pools[3])
{
    for (int i = 0; i < 3; i++) {
        ts_err err;
        if (ts_pool_create(&pools[i], &(ts_pool_opts){.n_threads = i + 1}, &err) != TS_OK) {
            TS_CHECK(false, "pool %d: %s", i + 1, err.msg);
            return false;
        }
    }
    return true;
}

/* Through ts_mm_run: pools of 1, 2, 3 threads, no pool, and chunked n_tok. */
TS_TEST(test_kernels_mm_threads_deterministic)
{
    const uint32_t types[] = {TS_QTYPE_Q4_0, TS_QTYPE_Q8_0, TS_QTYPE_Q4_K, TS_QTYPE_Q6_K,
                              TS_QTYPE_Q5_K, TS_QTYPE_F16};
    const int64_t rows = 37, n_tok = 70, k = 512;
    uint64_t rng = 5;
    ts_pool *pools[3] = {NULL, NULL, NULL};
    TS_REQUIRE(make_pools(pools), "pool create");
    ts_kernels kt;
    ts_kernels_init(&kt, TS_ISA_SCALAR);
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        problem p;
        problem_make(&p, &kt, types[ti], rows, k, n_tok, DATA_RANDOM, DATA_RANDOM, &rng);
        ts_qview w = {p.w, types[ti], rows, k, p.w_stride, NULL}, wr;
        void *owned = NULL; /* chunks 1 and 3 below run the prepared (maybe _R16) view */
        TS_REQUIRE(ts_mm_prepare(&w, &wr, &owned, NULL) == TS_OK, "prepare");
        size_t ys;
        float *y0 = y_poisoned(&p, &ys), *y1 = y_poisoned(&p, &ys);
        ts_mm *mm = NULL;
        TS_REQUIRE(ts_mm_create(&mm, NULL, n_tok, k, NULL) == TS_OK, "mm create");
        ts_mm_run(mm, &w, p.xf, (size_t)k * 4, n_tok, y0, ys);
        ts_mm_destroy(mm);
        check_poison(&p, y0, ys, "ts_mm_run");
        for (int i = 0; i < 3; i++) {
            TS_REQUIRE(ts_mm_create(&mm, pools[i], n_tok, k, NULL) == TS_OK, "mm create");
            const int64_t chunks[] = {n_tok, 1, 5, 64};
            for (int c = 0; c < 4; c++) {
                memset(y1, 0xff, ys * (size_t)n_tok);
                for (int64_t t0 = 0; t0 < n_tok; t0 += chunks[c]) {
                    int64_t tn = n_tok - t0 < chunks[c] ? n_tok - t0 : chunks[c];
                    ts_mm_run(mm, c % 2 ? &wr : &w, p.xf + t0 * k, (size_t)k * 4, tn,
                              (float *)((char *)y1 + (size_t)t0 * ys), ys);
                }
                for (int64_t t = 0; t < n_tok; t++)
                    TS_CHECK(memcmp((char *)y0 + (size_t)t * ys, (char *)y1 + (size_t)t * ys,
                                    (size_t)rows * 4) == 0,
                             "%s threads=%d chunk=%lld tok %lld differs",
                             ts_qtype_name(types[ti]), i + 1, (long long)chunks[c], (long long)t);
            }
            ts_mm_destroy(mm);
        }
        ts_mm_release(owned);
        free(y0);
        free(y1);
        problem_free(&p);
    }
    for (int i = 0; i < 3; i++)
        ts_pool_destroy(pools[i]);
}

/* ts_mm_run_glu_quantized (gate, up, SwiGLU and down's quantization in one
 * grid) against the unfused steps: ts_mm_run_multi, a SwiGLU pass, ts_mm_run
 * of down. The a rows and down's output are memcmp-equal for pools of 1-3
 * threads, chunked n_tok and repacked views; pairs include gate/up and down
 * reading the same activation format (Q8_K, Q8_0: the fused tiles write the
 * spare buffer while gate/up still read the current one) and f32 gate/up. */
TS_TEST(test_kernels_mm_glu_fused)
{
    const uint32_t pairs[][2] = {{TS_QTYPE_Q4_K, TS_QTYPE_Q6_K}, {TS_QTYPE_Q8_0, TS_QTYPE_Q8_0},
                                 {TS_QTYPE_Q5_0, TS_QTYPE_Q4_K}, {TS_QTYPE_F16, TS_QTYPE_Q8_0},
                                 {TS_QTYPE_Q4_0, TS_QTYPE_F16}};
    const int64_t k = 256, width = 768, n_out = 37, n_tok = 70;
    uint64_t rng = 11;
    ts_pool *pools[3] = {NULL, NULL, NULL};
    TS_REQUIRE(make_pools(pools), "pool create");
    ts_kernels kt;
    ts_kernels_init(&kt, TS_ISA_SCALAR);
    const ts_swiglu_fn swiglu = ts_mm_kernels()->ops.swiglu;
    for (size_t pi = 0; pi < sizeof(pairs) / sizeof(pairs[0]); pi++) {
        problem pg, pu, pd;
        problem_make(&pg, &kt, pairs[pi][0], width, k, n_tok, DATA_RANDOM, DATA_RANDOM, &rng);
        problem_make(&pu, &kt, pairs[pi][0], width, k, 1, DATA_RANDOM, DATA_RANDOM, &rng);
        problem_make(&pd, &kt, pairs[pi][1], n_out, width, 1, DATA_RANDOM, DATA_RANDOM, &rng);
        ts_qview w[3] = {{pg.w, pg.type, width, k, pg.w_stride, NULL},
                         {pu.w, pu.type, width, k, pu.w_stride, NULL},
                         {pd.w, pd.type, n_out, width, pd.w_stride, NULL}};
        ts_qview wr[3];
        void *owned[3];
        for (int i = 0; i < 3; i++)
            TS_REQUIRE(ts_mm_prepare(&w[i], &wr[i], &owned[i], NULL) == TS_OK, "prepare");
        const size_t as = (size_t)width * 4, ys = (size_t)n_out * 4, xs = (size_t)k * 4;
        float *a0 = xalloc(as * n_tok), *b0 = xalloc(as * n_tok), *y0 = xalloc(ys * n_tok);
        float *a1 = xalloc(as * n_tok), *b1 = xalloc(as * n_tok), *y1 = xalloc(ys * n_tok);
        ts_mm *mm = NULL;
        TS_REQUIRE(ts_mm_create(&mm, NULL, n_tok, width, NULL) == TS_OK, "mm create");
        const ts_qview *gu[2] = {&w[0], &w[1]};
        float *const yab[2] = {a0, b0};
        const size_t sab[2] = {as, as};
        ts_mm_run_multi(mm, gu, yab, sab, 2, pg.xf, xs, n_tok);
        for (int64_t t = 0; t < n_tok; t++)
            swiglu(a0 + t * width, b0 + t * width, width);
        ts_mm_run(mm, &w[2], a0, as, n_tok, y0, ys);
        ts_mm_destroy(mm);
        for (int i = 0; i < 3; i++) {
            TS_REQUIRE(ts_mm_create(&mm, pools[i], n_tok, width, NULL) == TS_OK, "mm create");
            const int64_t chunks[] = {n_tok, 1, 33, 64};
            for (int c = 0; c < 4; c++) {
                const ts_qview *v = c % 2 ? wr : w;
                const ts_qview *g2[2] = {&v[0], &v[1]};
                const ts_qview *dn = &v[2];
                memset(a1, 0xff, as * n_tok);
                memset(y1, 0xff, ys * n_tok);
                for (int64_t t0 = 0; t0 < n_tok; t0 += chunks[c]) {
                    const int64_t tn = n_tok - t0 < chunks[c] ? n_tok - t0 : chunks[c];
                    const float *x = pg.xf + t0 * k;
                    ts_mm_quantize_rows(mm, g2, 2, x, xs, 0, tn);
                    ts_mm_run_glu_quantized(mm, &v[0], &v[1], x, xs, tn, a1 + t0 * width,
                                            b1 + t0 * width, as, swiglu, dn);
                    ts_mm_run_multi_quantized(mm, &dn, &(float *){y1 + t0 * n_out}, &ys, 1,
                                              a1 + t0 * width, as, tn);
                }
                TS_CHECK(memcmp(a0, a1, as * n_tok) == 0, "%s/%s threads=%d chunk=%lld: a differs",
                         ts_qtype_name(pairs[pi][0]), ts_qtype_name(pairs[pi][1]), i + 1,
                         (long long)chunks[c]);
                TS_CHECK(memcmp(y0, y1, ys * n_tok) == 0, "%s/%s threads=%d chunk=%lld: down differs",
                         ts_qtype_name(pairs[pi][0]), ts_qtype_name(pairs[pi][1]), i + 1,
                         (long long)chunks[c]);
            }
            ts_mm_destroy(mm);
        }
        for (int i = 0; i < 3; i++)
            ts_mm_release(owned[i]);
        free(a0);
        free(b0);
        free(y0);
        free(a1);
        free(b1);
        free(y1);
        problem_free(&pg);
        problem_free(&pu);
        problem_free(&pd);
    }
    for (int i = 0; i < 3; i++)
        ts_pool_destroy(pools[i]);
}
#endif /* TS_TEST_SIMD_ONLY */

/* _R16 repacked layouts: the repack is lossless (per-block inverse), and at
 * every level the _R16 kernel equals the plain scalar kernel bit for bit, on
 * row tails (1, 15..17, 31, prime), token edges and K chunk crossings; any
 * split of rows at multiples of 16 and of tokens is memcmp-equal too. */
#if defined(__x86_64__) && !defined(TS_TEST_SIMD_ONLY)
void ts_test_amx_emul_register(ts_kernels *k); /* tests/amx_emul.c */
#define AMX_EMUL_AVAILABLE 1
#define AMX_EMUL_REGISTER(k) ts_test_amx_emul_register(k)
#else
#define AMX_EMUL_AVAILABLE 0
#define AMX_EMUL_REGISTER(k) ((void)(k))
#endif

TS_TEST(test_kernels_r16_vs_plain)
{
    static const uint32_t rtypes[] = {TS_QTYPE_Q8_0_R16, TS_QTYPE_Q4_0_R16, TS_QTYPE_Q4_K_R16,
                                      TS_QTYPE_Q6_K_R16, TS_QTYPE_Q5_0_R16, TS_QTYPE_Q5_K_R16,
                                      TS_QTYPE_Q3_K_R16, TS_QTYPE_Q2_K_R16, TS_QTYPE_Q4_1_R16,
                                      TS_QTYPE_Q5_1_R16};
    const int64_t toks[] = {1, 2, 3, 5, 7, 8, 9, 31, 33, 63, 65, 127, 129, 300};
    const int64_t rows_set[] = {1, 15, 16, 17, 31, 37};
    ts_isa lv[5];
    int n_lv = ts_test_levels(lv);
    /* Hosts with AVX-512 but no AMX also run the amx kernels on emulated
     * tiles (simd/x86/amx/tile.h), so their logic is checked on CI. */
    const int amx_emul = AMX_EMUL_AVAILABLE && ts_isa_detect() == TS_ISA_AVX512;
    ts_kernels ref;
    ts_kernels_init(&ref, TS_ISA_SCALAR);
    uint64_t rng = 77;
    for (size_t ri = 0; ri < sizeof(rtypes) / sizeof(rtypes[0]); ri++) {
        const uint32_t rt = rtypes[ri], base = ts_repack_base(rt);
        TS_CHECK(ts_repack_type(base) == rt, "repack id of %s", ts_qtype_name(base));
        for (size_t si = 0; si < sizeof(toks) / sizeof(toks[0]); si++) {
            /* 1, 3, 17 blocks; once past the kernels' K chunk (256 / 64 blocks). */
            int64_t nb = toks[si] > 32 ? 1 : (si % 3 == 2 ? 17 : 1 + 2 * (int64_t)(si % 2));
            if (si == 4)
                nb = blk_of(base) == 32 ? 300 : 70;
            int kind = (int)(si % N_DATA);
            problem p;
            problem_make(&p, &ref, base, rows_set[si % 6], kblocks(base, nb), toks[si],
                         kind == DATA_ZERO ? DATA_RANDOM : kind, (kind + 1) % N_DATA, &rng);
            const size_t rs = ts_repack_row_stride(rt, p.k);
            void *rw = xalloc(ts_repack_bytes(rt, p.rows, p.k));
            ts_repack_rows(rt, p.w, p.w_stride, p.rows, p.k, rw);
            int lossy = 0;
            uint8_t blkbuf[256];
            for (int64_t r = 0; r < p.rows; r++)
                for (int64_t b = 0; b < p.k / blk_of(base); b++) {
                    ts_repack_get_block(rt, rw, rs, p.k, r, b, blkbuf);
                    lossy += memcmp(blkbuf, (char *)p.w + (size_t)r * p.w_stride +
                                                (size_t)b * wblk_bytes(base),
                                    wblk_bytes(base)) != 0;
                }
            TS_CHECK(lossy == 0, "%s: %d blocks differ after repack", ts_qtype_name(base), lossy);
            size_t ys;
            float *y0 = y_poisoned(&p, &ys), *y1 = y_poisoned(&p, &ys);
            run_slot(&ref, &p, y0, ys);
            for (int l = 0; l < n_lv + amx_emul; l++) {
                ts_kernels kt;
                if (l < n_lv) {
                    ts_kernels_init(&kt, lv[l]);
                } else { /* the amx kernels on emulated tiles (tests/amx_emul.c) */
                    ts_kernels_init(&kt, TS_ISA_AVX512);
                    AMX_EMUL_REGISTER(&kt);
                }
                const ts_gemm_slot *sl = &kt.gemm[rt];
                TS_REQUIRE(sl->fn && sl->mr == TS_R16_ROWS, "no _R16 slot for %s",
                           ts_qtype_name(base));
                free(y1);
                y1 = y_poisoned(&p, &ys);
                /* The level's peak probe first: on AMX it loads its own tile
                 * palette on this thread, which the kernel must replace. */
                if (kt.peak_int8 && l < n_lv)
                    kt.peak_int8(4);
                sl->fn(p.k, p.rows, p.n_tok, rw, rs, p.a, p.a_stride, y1, ys);
                check_poison(&p, y1, ys, sl->name);
                int diff = 0;
                for (int64_t t = 0; t < p.n_tok; t++)
                    diff += memcmp((char *)y0 + (size_t)t * ys, (char *)y1 + (size_t)t * ys,
                                   (size_t)p.rows * 4) != 0;
                TS_CHECK(diff == 0, "%s rows=%lld k=%lld toks=%lld: %d token rows differ from "
                         "plain scalar", sl->name, (long long)p.rows, (long long)p.k,
                         (long long)p.n_tok, diff);
                /* Splits: rows by 16 or 32, tokens by 1, 3 or 8. */
                const int64_t rsp = si % 2 ? 16 : 32, tsp = si % 3 == 0 ? 1 : (si % 3 == 1 ? 3 : 8);
                float *y2 = y_poisoned(&p, &ys);
                for (int64_t r0 = 0; r0 < p.rows; r0 += rsp)
                    for (int64_t t0 = 0; t0 < p.n_tok; t0 += tsp) {
                        int64_t rn = p.rows - r0 < rsp ? p.rows - r0 : rsp;
                        int64_t tn = p.n_tok - t0 < tsp ? p.n_tok - t0 : tsp;
                        sl->fn(p.k, rn, tn, (char *)rw + (size_t)r0 * rs, rs,
                               (char *)p.a + (size_t)t0 * p.a_stride, p.a_stride,
                               (float *)((char *)y2 + (size_t)t0 * ys) + r0, ys);
                    }
                TS_CHECK(memcmp(y1, y2, ys * (size_t)p.n_tok) == 0,
                         "%s: split rows by %lld toks by %lld differs", sl->name, (long long)rsp,
                         (long long)tsp);
                free(y2);
            }
            free(y0);
            free(y1);
            free(rw);
            problem_free(&p);
        }
    }
}

#ifndef TS_TEST_SIMD_ONLY /* core/ktune.c is not in check-arm's simd-only binary */
/* core/ktune.c swaps a slot only for another level's kernel of the same
 * layout: the tuned table still gives the plain scalar bits for every _R16
 * layout, whichever kernel won. Pairs: amx (emulated where the host has
 * none, so the swap path runs) against avx512, else avx512 against avx2. */
TS_TEST(test_kernels_tune_keeps_bits)
{
    const ts_isa det = ts_isa_detect();
    if (det < TS_ISA_AVX512 || det >= TS_ISA_NEON) {
        ts_test_skip("needs avx512 (tuning pairs x86 levels)");
        return;
    }
    ts_kernels k, orig, alt, ref;
    if (det == TS_ISA_AMX || AMX_EMUL_AVAILABLE) {
        ts_kernels_init(&k, TS_ISA_AVX512);
        if (det == TS_ISA_AMX)
            ts_kernels_init(&k, TS_ISA_AMX);
        else
            AMX_EMUL_REGISTER(&k);
        ts_kernels_init(&alt, TS_ISA_AVX512);
    } else {
        ts_kernels_init(&k, TS_ISA_AVX512);
        ts_kernels_init(&alt, TS_ISA_AVX2);
    }
    ts_kernels_init(&ref, TS_ISA_SCALAR);
    orig = k;
    char report[512];
    ts_kernels_tune(&k, &alt, report, sizeof(report));
    int timed = 0;
    uint64_t rng = 5;
    for (uint32_t rt = TS_QTYPE_COUNT; rt < TS_GEMM_SLOTS; rt++) {
        const ts_gemm_slot *s = &k.gemm[rt], *o = &orig.gemm[rt], *a = &alt.gemm[rt];
        timed += o->fn && a->fn && o->fn != a->fn;
        TS_CHECK(s->fn == o->fn || s->fn == a->fn, "slot %u: a kernel of neither level", rt);
        TS_CHECK(s->act == o->act, "slot %u: activation format changed", rt);
        TS_CHECK(s->fn == o->fn ? k.gemm_tok_block[rt] == orig.gemm_tok_block[rt]
                                : k.gemm_tok_block[rt] == alt.gemm_tok_block[rt],
                 "slot %u: token block not the winner's", rt);
        if (!s->fn)
            continue;
        const uint32_t base = ts_repack_base(rt);
        problem p;
        problem_make(&p, &ref, base, 37, kblocks(base, 3), 33, DATA_RANDOM, DATA_RANDOM, &rng);
        const size_t rs = ts_repack_row_stride(rt, p.k);
        void *rw = xalloc(ts_repack_bytes(rt, p.rows, p.k));
        ts_repack_rows(rt, p.w, p.w_stride, p.rows, p.k, rw);
        size_t ys;
        float *y0 = y_poisoned(&p, &ys), *y1 = y_poisoned(&p, &ys);
        run_slot(&ref, &p, y0, ys);
        s->fn(p.k, p.rows, p.n_tok, rw, rs, p.a, p.a_stride, y1, ys);
        TS_CHECK(memcmp(y0, y1, ys * (size_t)p.n_tok) == 0, "%s (tuned): differs from scalar",
                 s->name);
        free(y0);
        free(y1);
        free(rw);
        problem_free(&p);
    }
    TS_CHECK(!timed == !report[0], "report '%s' with %d timed pairs", report, timed);
}
#endif /* TS_TEST_SIMD_ONLY */
