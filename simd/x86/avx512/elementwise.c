/*
 * simd/x86/avx512/elementwise.c: the AVX-512 level of the per-token kernels
 * (RMSNorm with fused residual add, RoPE, SwiGLU), in the canonical orders of
 * simd/scalar/elementwise.c: same bits. RMSNorm accumulates (double)(x * x)
 * in two zmm of doubles (lanes i % 16) and ends with the halving tree; RoPE
 * uses separate multiplies and an add/sub (no fma), as the scalar level does;
 * SwiGLU uses the canonical exp. Tails are masked loads/stores.
 * Also registers this level's ts_ops slots (attention included).
 */
#include <immintrin.h>
#include <stdint.h>

#include "../../kernels.h"
#include "exp_canon.h"

void ts_rmsnorm_avx512(float *x, const float *add, const float *w, float *y, int64_t n,
                       float eps);
void ts_rope_avx512(float *x, const float *cs, int64_t n_head, int64_t head_dim, int64_t n_rot,
                    int neox);
void ts_swiglu_avx512(float *a, const float *b, int64_t n);
void ts_attn_avx512(const ts_attn_args *a);
void ts_gdn_scan_avx512(float *S, int64_t ds, int64_t n, const float *q, const float *k,
                     const float *v, size_t x_stride, const float *decay, const float *beta,
                     size_t g_stride, float scale, float *o, size_t o_stride);
void ts_simd_register_ops_avx512(ts_kernels *k);

INLINE __mmask16 tail16(int64_t left) { return left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1); }

/* Contract: ts_rmsnorm_fn (simd/ops.h). */
void ts_rmsnorm_avx512(float *x, const float *add, const float *w, float *y, int64_t n, float eps)
{
    __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 mk = tail16(n - i);
        __m512 xv = _mm512_maskz_loadu_ps(mk, x + i);
        if (add) {
            xv = _mm512_add_ps(xv, _mm512_maskz_loadu_ps(mk, add + i));
            _mm512_mask_storeu_ps(x + i, mk, xv);
        }
        __m512 sq = _mm512_mul_ps(xv, xv);
        lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(sq)));
        hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(sq, 1)));
    }
    float mean = (float)(hsum16d(lo, hi) / (double)n);
    __m512 sc = _mm512_set1_ps(1.0f / sqrtf(mean + eps));
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 mk = tail16(n - i);
        __m512 xv = _mm512_maskz_loadu_ps(mk, x + i);
        __m512 yv = _mm512_mul_ps(_mm512_mul_ps(xv, sc), _mm512_maskz_loadu_ps(mk, w + i));
        _mm512_mask_storeu_ps(y + i, mk, yv);
    }
}

/* Contract: ts_rope_fn (simd/ops.h). */
void ts_rope_avx512(float *x, const float *cs, int64_t n_head, int64_t head_dim, int64_t n_rot,
                    int neox)
{
    const int64_t half = n_rot / 2;
    const float *cv = cs, *sv = cs + half;
    const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    const __m512 sgn = _mm512_set_ps(1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1);
    for (int64_t h = 0; h < n_head; h++) {
        float *v = x + h * head_dim;
        if (neox) {
            for (int64_t i = 0; i < half; i += 16) {
                __mmask16 mk = tail16(half - i);
                __m512 x0 = _mm512_maskz_loadu_ps(mk, v + i);
                __m512 x1 = _mm512_maskz_loadu_ps(mk, v + half + i);
                __m512 c = _mm512_maskz_loadu_ps(mk, cv + i), s = _mm512_maskz_loadu_ps(mk, sv + i);
                __m512 y0 = _mm512_sub_ps(_mm512_mul_ps(x0, c), _mm512_mul_ps(x1, s));
                __m512 y1 = _mm512_add_ps(_mm512_mul_ps(x0, s), _mm512_mul_ps(x1, c));
                _mm512_mask_storeu_ps(v + i, mk, y0);
                _mm512_mask_storeu_ps(v + half + i, mk, y1);
            }
            continue;
        }
        /* Pairs (2i, 2i+1): y = x * (c, c) + swap(x) * (-s, s); x1 * -s == -(x1 * s)
         * and a + -b == a - b exactly, and the add commutes: the scalar bits. */
        for (int64_t i = 0; i < half; i += 8) {
            int64_t left = half - i;
            __mmask16 mp = tail16(left >= 8 ? 16 : 2 * left);
            __mmask16 mh = tail16(left >= 8 ? 8 : left);
            __m512 xv = _mm512_maskz_loadu_ps(mp, v + 2 * i);
            __m512 c = _mm512_permutexvar_ps(dup, _mm512_maskz_loadu_ps(mh, cv + i));
            __m512 s = _mm512_permutexvar_ps(dup, _mm512_maskz_loadu_ps(mh, sv + i));
            __m512 xs = _mm512_permute_ps(xv, 0xb1);
            __m512 yv = _mm512_add_ps(_mm512_mul_ps(xv, c), _mm512_mul_ps(xs, _mm512_mul_ps(s, sgn)));
            _mm512_mask_storeu_ps(v + 2 * i, mp, yv);
        }
    }
}

/* Contract: ts_swiglu_fn (simd/ops.h). */
void ts_swiglu_avx512(float *a, const float *b, int64_t n)
{
    const __m512 one = _mm512_set1_ps(1.0f), neg = _mm512_set1_ps(-0.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 mk = tail16(n - i);
        __m512 av = _mm512_maskz_loadu_ps(mk, a + i);
        __m512 e = exp_canon16(_mm512_xor_ps(av, neg));
        __m512 yv = _mm512_mul_ps(_mm512_div_ps(av, _mm512_add_ps(one, e)),
                                  _mm512_maskz_loadu_ps(mk, b + i));
        _mm512_mask_storeu_ps(a + i, mk, yv);
    }
}

void ts_simd_register_ops_avx512(ts_kernels *k)
{
    k->ops = (ts_ops){.attn = ts_attn_avx512, .rmsnorm = ts_rmsnorm_avx512, .rope = ts_rope_avx512,
                      .swiglu = ts_swiglu_avx512, .attn_name = "ts_attn_avx512",
                      .rmsnorm_name = "ts_rmsnorm_avx512", .rope_name = "ts_rope_avx512",
                      .swiglu_name = "ts_swiglu_avx512", .gdn_scan = ts_gdn_scan_avx512,
                      .gdn_scan_name = "ts_gdn_scan_avx512"};
}
