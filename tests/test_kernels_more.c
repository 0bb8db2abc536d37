/*
 * tests/test_kernels_more.c: the GEMM kernels of simd/x86/gemm_x86_more.inc
 * (Q5_0, Q4_1, Q5_1, Q2_K, Q3_K, Q5_K, IQ2_XXS) and the scalar IQ2_XXS twin
 * (simd/scalar/gemm_iq2.c), on every level the host has.
 *
 * Oracle chain (STYLE section 11): the scalar IQ2_XXS kernel against quant/'s
 * dequantizer + a double dot (IQ2_XXS has no quantizer: weights are random
 * block bytes plus adversarial ones); every other level against scalar with
 * memcmp (these kernels follow kernels.h's canonical order lane for lane), on
 * row edges (1, MR +- 1, primes), token edges (1-9, 31-33, 63-65, 127-129)
 * and odd block counts; any row / token split of one call is memcmp-equal.
 * Outputs are NaN-poisoned: the 3 floats past each output row must stay NaN.
 * test_kernels.c covers the same types through its generic type list.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "levels.h"
#include "test.h"
#include "tolerances.h"
#include "../quant/quant.h"
#include "../simd/kernels.h"

static const uint32_t more_types[] = {TS_QTYPE_Q5_0, TS_QTYPE_Q4_1, TS_QTYPE_Q5_1,
                                      TS_QTYPE_Q2_K, TS_QTYPE_Q3_K, TS_QTYPE_Q5_K,
                                      TS_QTYPE_IQ2_XXS};
#define N_MORE (sizeof(more_types) / sizeof(more_types[0]))

enum { D_RANDOM, D_MAX, D_ZERO, D_ALT, D_TINY, N_D };

static void *xalloc(size_t n)
{
    void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    if (!p)
        abort();
    return p;
}

static void fill(float *v, int64_t n, int kind, uint64_t *rng)
{
    for (int64_t i = 0; i < n; i++) {
        switch (kind) {
        case D_RANDOM: v[i] = ts_test_randf(rng); break;
        case D_MAX: v[i] = (ts_test_rand(rng) & 1) ? 1000.0f : -1000.0f; break;
        case D_ZERO: v[i] = 0.0f; break;
        case D_ALT: v[i] = (i & 1) ? -0.75f : 0.75f + 0.001f * (float)(i % 7); break;
        default: v[i] = ts_test_randf(rng) * 1e-5f; break;
        }
    }
}

/* IQ2_XXS block bytes by kind: random; max (scale 15, d = 1, grid indices
 * random); zero (d = 0); alt (every sign set: all elements negative, d < 0);
 * tiny (d an f16 subnormal). */
static void iq2_fill(ts_block_iq2_xxs *b, int64_t n_blk, int kind, uint64_t *rng)
{
    for (int64_t i = 0; i < n_blk; i++) {
        for (int j = 0; j < TS_QK_K / 8; j++)
            b[i].qs[j] = (uint16_t)ts_test_rand(rng);
        switch (kind) {
        case D_RANDOM: b[i].d = ts_f32_to_f16(ts_test_randf(rng) * 0.02f); break;
        case D_MAX: b[i].d = ts_f32_to_f16(1.0f); break;
        case D_ZERO: b[i].d = 0; break;
        case D_ALT: b[i].d = ts_f32_to_f16(-0.5f); break;
        default: b[i].d = 0x0003; break;
        }
        for (int ib = 0; ib < 8; ib++) {
            uint16_t *hi = &b[i].qs[4 * ib + 3]; /* a1 bits 16..31 */
            if (kind == D_MAX)
                *hi |= 0xf000;
            if (kind == D_ALT) {
                b[i].qs[4 * ib + 2] = 0xffff;
                *hi |= 0x0fff;
            }
        }
    }
}

typedef struct {
    uint32_t type;
    int64_t rows, k, n_tok;
    size_t w_stride, a_stride;
    void *w, *a;
} prob;

static void prob_make(prob *p, const ts_kernels *kt, uint32_t type, int64_t rows, int64_t nb,
                      int64_t n_tok, int wkind, int akind, uint64_t *rng)
{
    const ts_qtraits *tr = ts_qtype_traits(type);
    p->type = type;
    p->rows = rows;
    p->k = nb * (int64_t)tr->blck;
    p->n_tok = n_tok;
    p->w_stride = ts_qtype_row_bytes(type, (uint64_t)p->k);
    p->w = xalloc(p->w_stride * (size_t)rows);
    float *x = xalloc((size_t)p->k * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        void *wr = (char *)p->w + (size_t)r * p->w_stride;
        if (type == TS_QTYPE_IQ2_XXS) {
            iq2_fill(wr, nb, wkind, rng);
        } else {
            fill(x, p->k, wkind, rng);
            ts_quantize_row(type, x, wr, p->k);
        }
    }
    const int act = kt->gemm[type].act;
    static const uint32_t act_qt[TS_ACT_COUNT] = {TS_QTYPE_F32, TS_QTYPE_Q8_0, TS_QTYPE_Q8_1,
                                                  TS_QTYPE_Q8_K};
    p->a_stride = ts_qtype_row_bytes(act_qt[act], (uint64_t)p->k);
    p->a = xalloc(p->a_stride * (size_t)n_tok);
    for (int64_t t = 0; t < n_tok; t++) {
        fill(x, p->k, akind, rng);
        kt->quant_act[act](x, (char *)p->a + (size_t)t * p->a_stride, p->k);
    }
    free(x);
}

static void prob_free(prob *p)
{
    free(p->w);
    free(p->a);
}

static float *y_poisoned(const prob *p, size_t *stride)
{
    *stride = (size_t)(p->rows + 3) * sizeof(float);
    float *y = xalloc(*stride * (size_t)p->n_tok);
    for (size_t i = 0; i < *stride * (size_t)p->n_tok / sizeof(float); i++)
        y[i] = NAN;
    return y;
}

static float yat(const float *y, size_t stride, int64_t t, int64_t r)
{
    return ((const float *)((const char *)y + (size_t)t * stride))[r];
}

static int poison_bad(const prob *p, const float *y, size_t stride)
{
    int bad = 0;
    for (int64_t t = 0; t < p->n_tok; t++)
        for (int64_t r = 0; r < p->rows + 3; r++) {
            float v = yat(y, stride, t, r);
            bad += (r < p->rows) ? !isfinite(v) : !isnan(v);
        }
    return bad;
}

static void run(const ts_gemm_slot *s, const prob *p, float *y, size_t ys)
{
    s->fn(p->k, p->rows, p->n_tok, p->w, p->w_stride, p->a, p->a_stride, y, ys);
}

/* Scalar IQ2_XXS vs quant/ dequantize + double dot of the dequantized Q8_K rows. */
TS_TEST(test_kernels_iq2_xxs_scalar_vs_reference)
{
    ts_kernels kt;
    ts_kernels_init(&kt, TS_ISA_SCALAR);
    const ts_gemm_slot *s = &kt.gemm[TS_QTYPE_IQ2_XXS];
    TS_REQUIRE(s->fn && s->act == TS_ACT_Q8_K, "no scalar IQ2_XXS slot");
    uint64_t rng = 2024;
    const int64_t nbs[] = {1, 2, 3, 7};
    for (int wkind = 0; wkind < N_D; wkind++)
        for (int bi = 0; bi < 4; bi++) {
            prob p;
            prob_make(&p, &kt, TS_QTYPE_IQ2_XXS, 1 + 2 * bi, nbs[bi], 1 + bi, wkind,
                      (wkind + bi) % N_D, &rng);
            size_t ys;
            float *y = y_poisoned(&p, &ys);
            run(s, &p, y, ys);
            TS_CHECK(poison_bad(&p, y, ys) == 0, "scalar iq2_xxs: outputs written wrong");
            float *wd = xalloc((size_t)p.k * 4), *ad = xalloc((size_t)p.k * 4);
            const double rtol = ts_tol_rtol(TS_TOL_IQ2_XXS_RTOL, nbs[bi]);
            int bad = 0;
            for (int64_t r = 0; r < p.rows; r++) {
                ts_dequantize_row(TS_QTYPE_IQ2_XXS, (char *)p.w + (size_t)r * p.w_stride, wd,
                                  p.k);
                for (int64_t t = 0; t < p.n_tok; t++) {
                    ts_dequantize_row(TS_QTYPE_Q8_K, (char *)p.a + (size_t)t * p.a_stride, ad,
                                      p.k);
                    double dot = 0, abs_sum = 0;
                    for (int64_t i = 0; i < p.k; i++) {
                        dot += (double)wd[i] * ad[i];
                        abs_sum += fabs((double)wd[i] * ad[i]);
                    }
                    const float got = yat(y, ys, t, r);
                    if (!(fabs(got - dot) <= TS_TOL_ATOL + rtol * abs_sum) && bad++ < 3)
                        TS_CHECK(0, "iq2_xxs k=%lld w=%d r=%lld t=%lld: %.9g vs %.9g (abs %g)",
                                 (long long)p.k, wkind, (long long)r, (long long)t, got, dot,
                                 abs_sum);
                }
            }
            free(wd);
            free(ad);
            free(y);
            prob_free(&p);
        }
}

/* Every level vs scalar, memcmp, on the edge shapes; poison intact. */
TS_TEST(test_kernels_more_levels_vs_scalar)
{
    ts_isa lv[8];
    const int n_lv = ts_test_levels(lv);
    ts_kernels ref;
    ts_kernels_init(&ref, TS_ISA_SCALAR);
    const int64_t toks[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 31, 32, 33, 63, 64, 65, 127, 128, 129};
    const int64_t rows_set[] = {1, 3, 4, 5, 7, 11, 13};
    const int64_t nbs[] = {1, 3, 5, 2, 7};
    uint64_t rng = 31337;
    int n_tested = 0;
    for (int l = 1; l < n_lv; l++) {
        ts_kernels kt;
        ts_kernels_init(&kt, lv[l]);
        for (size_t ti = 0; ti < N_MORE; ti++) {
            const uint32_t type = more_types[ti];
            const ts_gemm_slot *s = &kt.gemm[type];
            if (s->fn == ref.gemm[type].fn)
                continue; /* inherited from scalar */
            n_tested++;
            for (size_t si = 0; si < sizeof(toks) / sizeof(toks[0]); si++) {
                const int64_t nb = toks[si] > 33 ? 1 + 2 * (int64_t)(si % 2) : nbs[si % 5];
                const int kind = (int)(si % N_D);
                prob p;
                prob_make(&p, &ref, type, rows_set[si % 7], nb, toks[si], kind,
                          (kind + 2) % N_D, &rng);
                size_t ys;
                float *y0 = y_poisoned(&p, &ys), *y1 = y_poisoned(&p, &ys);
                run(&ref.gemm[type], &p, y0, ys);
                run(s, &p, y1, ys);
                TS_CHECK(poison_bad(&p, y1, ys) == 0, "%s rows=%lld toks=%lld: poison",
                         s->name, (long long)p.rows, (long long)p.n_tok);
                int diff = 0;
                for (int64_t t = 0; t < p.n_tok; t++)
                    diff += memcmp((char *)y0 + (size_t)t * ys, (char *)y1 + (size_t)t * ys,
                                   (size_t)p.rows * 4) != 0;
                TS_CHECK(diff == 0, "%s rows=%lld k=%lld toks=%lld data=%d: %d token rows "
                         "differ from scalar", s->name, (long long)p.rows, (long long)p.k,
                         (long long)p.n_tok, kind, diff);
                free(y0);
                free(y1);
                prob_free(&p);
            }
        }
    }
    /* x86: every level above scalar has its own kernel for every type here
     * (the arm levels inherit the scalar ones). */
    if (ts_isa_detect() < TS_ISA_NEON)
        TS_CHECK(n_tested == (int)N_MORE * (n_lv - 1), "only %d (level, type) kernels tested",
                 n_tested);
}

/* Within each level: any split of rows and tokens of one call is memcmp-equal. */
TS_TEST(test_kernels_more_tiling_deterministic)
{
    ts_isa lv[8];
    const int n_lv = ts_test_levels(lv);
    uint64_t rng = 4242;
    for (int l = 0; l < n_lv; l++) {
        ts_kernels kt;
        ts_kernels_init(&kt, lv[l]);
        for (size_t ti = 0; ti < N_MORE; ti++) {
            const uint32_t type = more_types[ti];
            const ts_gemm_slot *s = &kt.gemm[type];
            prob p;
            prob_make(&p, &kt, type, 13, 3, 11, D_RANDOM, D_RANDOM, &rng);
            size_t ys;
            float *y0 = y_poisoned(&p, &ys), *y1 = y_poisoned(&p, &ys);
            run(s, &p, y0, ys);
            const int64_t rsplit[] = {1, 2, 3, 5, 7}, tsplit[] = {1, 2, 3, 4, 6};
            for (int sp = 0; sp < 5; sp++) {
                const int64_t rs = rsplit[sp], ts_ = tsplit[(sp + 2) % 5];
                for (int64_t r0 = 0; r0 < p.rows; r0 += rs)
                    for (int64_t t0 = 0; t0 < p.n_tok; t0 += ts_) {
                        const int64_t rn = p.rows - r0 < rs ? p.rows - r0 : rs;
                        const int64_t tn = p.n_tok - t0 < ts_ ? p.n_tok - t0 : ts_;
                        s->fn(p.k, rn, tn, (char *)p.w + (size_t)r0 * p.w_stride, p.w_stride,
                              (char *)p.a + (size_t)t0 * p.a_stride, p.a_stride,
                              (float *)((char *)y1 + (size_t)t0 * ys) + r0, ys);
                    }
                TS_CHECK(memcmp(y0, y1, ys * (size_t)p.n_tok) == 0,
                         "%s: split rows by %lld toks by %lld differs", s->name, (long long)rs,
                         (long long)ts_);
            }
            free(y0);
            free(y1);
            prob_free(&p);
        }
    }
}
