/*
 * tests/test_dense.c: float-weight tile kernels (F32/F16/BF16 x f32) on every
 * level the host has, and the opt-in OpenBLAS path of core/dense.c.
 *
 * Oracle chain (STYLE §11): the scalar level against a double dot (tolerance),
 * every other level against scalar (memcmp: the 16-lane canonical order is the
 * same on every level), every tiling of a level against its one-call result
 * (memcmp). Odd shapes: k not a multiple of 16 (the zero-padded tail), rows 1,
 * MR-1..MR+1 and primes, tokens 1-9, 31-33, 63-65, 127-129. Outputs are
 * NaN-poisoned, with 3 unwritten columns per row that must keep the poison.
 * The BLAS path is not bit-deterministic; it is held to NMSE <= 1e-10.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "tolerances.h"
#include "../core/dense.h"
#include "../core/matmul.h"
#include "../quant/quant.h"
#include "../simd/kernels.h"
#include "levels.h"

static const uint32_t ftypes[] = {TS_QTYPE_F32, TS_QTYPE_F16, TS_QTYPE_BF16};

static void *xalloc(size_t n)
{
    void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    if (!p)
        abort();
    return p;
}

typedef struct {
    uint32_t type;
    int64_t rows, k, n_tok;
    size_t w_stride, x_stride, y_stride;
    char *w;  /* rows x w_stride; rows start at odd offsets (no alignment) */
    float *x; /* n_tok x x_stride */
} fprob;

/* kind 0: random, 1: +-1000 magnitudes, 2: alternating signs (cancellation). */
static float val(int kind, int64_t i, uint64_t *rng)
{
    if (kind == 1)
        return (ts_test_rand(rng) & 1) ? 1000.0f : -1000.0f;
    if (kind == 2)
        return (i & 1) ? -0.75f : 0.75f + 0.001f * (float)(i % 7);
    return ts_test_randf(rng);
}

static void fprob_make(fprob *p, uint32_t type, int64_t rows, int64_t k, int64_t n_tok, int kind,
                       uint64_t *rng)
{
    p->type = type;
    p->rows = rows;
    p->k = k;
    p->n_tok = n_tok;
    /* Strides padded by an odd element count: nothing is 16- or 64-aligned. */
    p->w_stride = ts_qtype_row_bytes(type, (uint64_t)k + 3);
    p->x_stride = (size_t)(k + 5) * sizeof(float);
    p->y_stride = (size_t)(rows + 3) * sizeof(float);
    p->w = xalloc(p->w_stride * (size_t)rows);
    p->x = xalloc(p->x_stride * (size_t)n_tok);
    float *tmp = xalloc((size_t)(k + 3) * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < k + 3; i++)
            tmp[i] = val(kind, i, rng);
        ts_quantize_row(type, tmp, p->w + (size_t)r * p->w_stride, k + 3);
    }
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t i = 0; i < k + 5; i++)
            ((float *)((char *)p->x + (size_t)t * p->x_stride))[i] = val(kind, i, rng);
    free(tmp);
}

static void fprob_free(fprob *p)
{
    free(p->w);
    free(p->x);
}

static float *y_poisoned(const fprob *p)
{
    float *y = xalloc(p->y_stride * (size_t)p->n_tok);
    for (size_t i = 0; i < p->y_stride * (size_t)p->n_tok / sizeof(float); i++)
        y[i] = NAN;
    return y;
}

static float yat(const fprob *p, const float *y, int64_t t, int64_t r)
{
    return ((const float *)((const char *)y + (size_t)t * p->y_stride))[r];
}

static void check_poison(const fprob *p, const float *y, const char *what)
{
    int bad = 0;
    for (int64_t t = 0; t < p->n_tok; t++)
        for (int64_t r = 0; r < p->rows + 3; r++) {
            float v = yat(p, y, t, r);
            if ((r < p->rows) ? !isfinite(v) : !isnan(v))
                bad++;
        }
    TS_CHECK(bad == 0, "%s %s rows=%lld toks=%lld k=%lld: %d outputs written wrong (poison)",
             what, ts_qtype_name(p->type), (long long)p->rows, (long long)p->n_tok,
             (long long)p->k, bad);
}

static void run_fn(ts_gemm_fn fn, const fprob *p, int64_t r0, int64_t rn, int64_t t0, int64_t tn,
                   float *y)
{
    fn(p->k, rn, tn, p->w + (size_t)r0 * p->w_stride, p->w_stride,
       (const char *)p->x + (size_t)t0 * p->x_stride, p->x_stride,
       (float *)((char *)y + (size_t)t0 * p->y_stride) + r0, p->y_stride);
}

/* Scalar level vs a double dot of the exactly widened weights. */
TS_TEST(test_dense_scalar_vs_reference)
{
    ts_kernels kt;
    ts_kernels_init(&kt, TS_ISA_SCALAR);
    uint64_t rng = 3;
    const int64_t ks[] = {1, 15, 16, 17, 33, 100, 259};
    float *wd = xalloc(300 * sizeof(float));
    for (size_t ti = 0; ti < 3; ti++)
        for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++)
            for (int kind = 0; kind < 3; kind++) {
                fprob p;
                fprob_make(&p, ftypes[ti], 3, ks[ki], 4, kind, &rng);
                float *y = y_poisoned(&p);
                run_fn(kt.gemm[p.type].fn, &p, 0, p.rows, 0, p.n_tok, y);
                check_poison(&p, y, "scalar");
                double rtol = ts_tol_rtol(TS_TOL_FDOT_RTOL, p.k);
                for (int64_t r = 0; r < p.rows; r++) {
                    ts_dequantize_row(p.type, p.w + (size_t)r * p.w_stride, wd, p.k);
                    for (int64_t t = 0; t < p.n_tok; t++) {
                        const float *x = (const float *)((char *)p.x + (size_t)t * p.x_stride);
                        double dot = 0, abs_sum = 0;
                        for (int64_t i = 0; i < p.k; i++) {
                            dot += (double)wd[i] * x[i];
                            abs_sum += fabs((double)wd[i] * x[i]);
                        }
                        float got = yat(&p, y, t, r);
                        TS_CHECK(fabs(got - dot) <= TS_TOL_ATOL + rtol * abs_sum,
                                 "%s k=%lld kind=%d r=%lld t=%lld: %.9g vs %.9g",
                                 ts_qtype_name(p.type), (long long)p.k, kind, (long long)r,
                                 (long long)t, got, dot);
                    }
                }
                free(y);
                fprob_free(&p);
            }
    free(wd);
}

/* Every level vs scalar: bit-identical (same canonical order), poison intact. */
TS_TEST(test_dense_levels_vs_scalar)
{
    ts_isa lv[4];
    int n_lv = ts_test_levels(lv);
    if (n_lv == 1) {
        ts_test_skip("host has only the scalar level");
        return;
    }
    ts_kernels ref;
    ts_kernels_init(&ref, TS_ISA_SCALAR);
    uint64_t rng = 17;
    const int64_t toks[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 31, 32, 33, 63, 64, 65, 127, 128, 129};
    const int64_t ks[] = {1, 7, 16, 17, 31, 48, 100, 259};
    for (int l = 1; l < n_lv; l++) {
        ts_kernels kt;
        ts_kernels_init(&kt, lv[l]);
        for (size_t ti = 0; ti < 3; ti++) {
            const ts_gemm_slot *s = &kt.gemm[ftypes[ti]];
            TS_CHECK(s->fn != ref.gemm[ftypes[ti]].fn, "%s: level %s has no float kernel",
                     ts_qtype_name(ftypes[ti]), ts_isa_name(lv[l]));
            const int64_t rows_set[] = {1, s->mr > 1 ? s->mr - 1 : 2, s->mr, s->mr + 1, 7, 13};
            for (size_t si = 0; si < sizeof(toks) / sizeof(toks[0]); si++) {
                fprob p;
                int64_t k = toks[si] > 64 ? ks[si % 4] : ks[si % 8];
                fprob_make(&p, ftypes[ti], rows_set[si % 6], k, toks[si], (int)(si % 3), &rng);
                float *y0 = y_poisoned(&p), *y1 = y_poisoned(&p);
                run_fn(ref.gemm[p.type].fn, &p, 0, p.rows, 0, p.n_tok, y0);
                run_fn(s->fn, &p, 0, p.rows, 0, p.n_tok, y1);
                check_poison(&p, y1, s->name);
                int diff = 0;
                for (int64_t t = 0; t < p.n_tok; t++)
                    diff += memcmp((char *)y0 + (size_t)t * p.y_stride,
                                   (char *)y1 + (size_t)t * p.y_stride, (size_t)p.rows * 4) != 0;
                TS_CHECK(diff == 0, "%s rows=%lld toks=%lld k=%lld: %d token rows differ",
                         s->name, (long long)p.rows, (long long)p.n_tok, (long long)k, diff);
                free(y0);
                free(y1);
                fprob_free(&p);
            }
        }
    }
}

/* Within each level: any row/token split (NY = 1, MR tails) is memcmp-equal. */
TS_TEST(test_dense_tiling_deterministic)
{
    ts_isa lv[4];
    int n_lv = ts_test_levels(lv);
    uint64_t rng = 23;
    for (int l = 0; l < n_lv; l++) {
        ts_kernels kt;
        ts_kernels_init(&kt, lv[l]);
        for (size_t ti = 0; ti < 3; ti++) {
            fprob p;
            fprob_make(&p, ftypes[ti], 11, 83, 10, 0, &rng);
            ts_gemm_fn fn = kt.gemm[p.type].fn;
            float *y0 = y_poisoned(&p), *y1 = y_poisoned(&p);
            run_fn(fn, &p, 0, p.rows, 0, p.n_tok, y0);
            const int64_t rs[] = {1, 2, 3, 4, 5, 6, 7}, ts[] = {1, 2, 3, 4, 5, 7, 9};
            for (int s = 0; s < 7; s++) {
                int64_t rb = rs[s], tb = ts[(s + 3) % 7];
                for (int64_t r0 = 0; r0 < p.rows; r0 += rb)
                    for (int64_t t0 = 0; t0 < p.n_tok; t0 += tb)
                        run_fn(fn, &p, r0, p.rows - r0 < rb ? p.rows - r0 : rb, t0,
                               p.n_tok - t0 < tb ? p.n_tok - t0 : tb, y1);
                TS_CHECK(memcmp(y0, y1, p.y_stride * (size_t)p.n_tok) == 0,
                         "%s: rows by %lld, tokens by %lld differs", kt.gemm[p.type].name,
                         (long long)rb, (long long)tb);
            }
            free(y0);
            free(y1);
            fprob_free(&p);
        }
    }
}

static double nmse(const float *a, const float *ref, int64_t n_tok, int64_t rows, size_t stride)
{
    double num = 0, den = 0;
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t r = 0; r < rows; r++) {
            double x = ((const float *)((const char *)a + (size_t)t * stride))[r];
            double y = ((const float *)((const char *)ref + (size_t)t * stride))[r];
            num += (x - y) * (x - y);
            den += y * y;
        }
    return den > 0 ? num / den : num;
}

/* OpenBLAS path (both modes) vs the deterministic tile path through ts_mm_run. */
TS_TEST(test_dense_blas_nmse)
{
    ts_pool *pool = NULL;
    ts_err err;
    TS_REQUIRE(ts_pool_create(&pool, &(ts_pool_opts){.n_threads = 2}, &err) == TS_OK, "pool: %s",
               err.msg);
    uint64_t rng = 31;
    const int64_t shapes[][3] = {{37, 70, 512}, {64, 16, 300}, {129, 33, 97}};
    for (size_t si = 0; si < 3; si++)
        for (size_t ti = 0; ti < 3; ti++) {
            fprob p;
            fprob_make(&p, ftypes[ti], shapes[si][0], shapes[si][2], shapes[si][1], 0, &rng);
            ts_qview w = {p.w, p.type, p.rows, p.k, p.w_stride, NULL};
            ts_mm *mm = NULL;
            TS_REQUIRE(ts_mm_create(&mm, pool, p.n_tok, p.k, NULL) == TS_OK, "mm");
            float *y0 = y_poisoned(&p), *y1 = y_poisoned(&p);
            ts_mm_set_blas(mm, TS_DENSE_BLAS_OFF);
            ts_mm_run(mm, &w, p.x, p.x_stride, p.n_tok, y0, p.y_stride);
            const ts_dense_blas_mode modes[] = {TS_DENSE_BLAS_THREADED, TS_DENSE_BLAS_TILE};
            for (int mi = 0; mi < 2; mi++) {
                ts_mm_set_blas(mm, modes[mi]);
                ts_mm_run(mm, &w, p.x, p.x_stride, p.n_tok, y1, p.y_stride);
                check_poison(&p, y1, "blas");
                double e = nmse(y1, y0, p.n_tok, p.rows, p.y_stride);
                TS_CHECK(e <= 1e-10, "%s mode %d %lldx%lldx%lld: NMSE %g", ts_qtype_name(p.type),
                         (int)modes[mi], (long long)p.n_tok, (long long)p.rows, (long long)p.k, e);
                bool taken = ts_dense_accepts(modes[mi], &w, p.n_tok);
                TS_CHECK(taken == (p.type == TS_QTYPE_F32), "%s: BLAS taken=%d",
                         ts_qtype_name(p.type), (int)taken);
                /* Non-F32 weights (and decode-sized n) stay on the exact tile path. */
                if (!taken)
                    TS_CHECK(memcmp(y0, y1, p.y_stride * (size_t)p.n_tok) == 0,
                             "%s: tile path bits changed with BLAS on", ts_qtype_name(p.type));
                ts_mm_run(mm, &w, p.x, p.x_stride, 1, y1, p.y_stride);
                TS_CHECK(memcmp(y0, y1, (size_t)p.rows * 4) == 0, "%s n=1 not on the tile path",
                         ts_qtype_name(p.type));
            }
            ts_mm_set_blas(mm, TS_DENSE_BLAS_OFF);
            ts_mm_destroy(mm);
            free(y0);
            free(y1);
            fprob_free(&p);
        }
    ts_pool_destroy(pool);
}

TS_TEST(test_dense_blas_switch_and_info)
{
    const char *old = getenv("TESSERA_BLAS");
    char *saved = old ? strdup(old) : NULL;
    setenv("TESSERA_BLAS", "0", 1);
    TS_CHECK(ts_dense_blas_env() == TS_DENSE_BLAS_OFF, "TESSERA_BLAS=0");
    setenv("TESSERA_BLAS", "1", 1);
    TS_CHECK(ts_dense_blas_env() != TS_DENSE_BLAS_OFF, "TESSERA_BLAS=1");
    setenv("TESSERA_BLAS", "tile", 1);
    TS_CHECK(ts_dense_blas_env() == TS_DENSE_BLAS_TILE, "TESSERA_BLAS=tile");
    setenv("TESSERA_BLAS", "threaded", 1);
    TS_CHECK(ts_dense_blas_env() == TS_DENSE_BLAS_THREADED, "TESSERA_BLAS=threaded");
    setenv("TESSERA_BLAS", "bogus", 1);
    TS_CHECK(ts_dense_blas_env() == TS_DENSE_BLAS_OFF, "TESSERA_BLAS=bogus");
    if (saved) {
        setenv("TESSERA_BLAS", saved, 1);
        free(saved);
    } else {
        unsetenv("TESSERA_BLAS");
    }
    const char *info = ts_dense_blas_info();
    TS_CHECK(info && strstr(info, "OpenBLAS") && strstr(info, "parallel="), "info: %s",
             info ? info : "(null)");
}
