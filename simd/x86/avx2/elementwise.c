/*
 * simd/x86/avx2/elementwise.c: the AVX2 level of the per-token kernels
 * (RMSNorm with fused residual add, RoPE, SwiGLU), in the canonical orders of
 * simd/scalar/elementwise.c: same bits. RMSNorm accumulates (double)(x * x)
 * in four ymm of doubles (lanes i % 16) and ends with the halving tree; RoPE
 * uses separate multiplies and an add/sub (no fma); SwiGLU uses the canonical
 * exp. Tails of fewer than 16 (RMSNorm) or 8 elements run the scalar steps,
 * which are the same operations. Also registers this level's ts_ops slots.
 */
#include <immintrin.h>
#include <stdint.h>

#include "../../kernels.h"
#include "exp_canon.h"

void ts_rmsnorm_avx2(float *x, const float *add, const float *w, float *y, int64_t n, float eps);
void ts_rope_avx2(float *x, const float *cs, int64_t n_head, int64_t head_dim, int64_t n_rot,
                  int neox);
void ts_swiglu_avx2(float *a, const float *b, int64_t n);
void ts_attn_avx2(const ts_attn_args *a);
void ts_gdn_scan_avx2(float *S, int64_t ds, int64_t n, const float *q, const float *k,
                     const float *v, size_t x_stride, const float *decay, const float *beta,
                     size_t g_stride, float scale, float *o, size_t o_stride);
void ts_simd_register_ops_avx2(ts_kernels *k);

/* Contract: ts_rmsnorm_fn (simd/ops.h). */
void ts_rmsnorm_avx2(float *x, const float *add, const float *w, float *y, int64_t n, float eps)
{
    __m256d s[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(),
                    _mm256_setzero_pd()};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        for (int h = 0; h < 2; h++) {
            __m256 xv = _mm256_loadu_ps(x + i + 8 * h);
            if (add) {
                xv = _mm256_add_ps(xv, _mm256_loadu_ps(add + i + 8 * h));
                _mm256_storeu_ps(x + i + 8 * h, xv);
            }
            __m256 sq = _mm256_mul_ps(xv, xv);
            s[2 * h] = _mm256_add_pd(s[2 * h], _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
            s[2 * h + 1] = _mm256_add_pd(s[2 * h + 1], _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
        }
    }
    if (i < n) {
        _Alignas(32) double t[16];
        for (int h = 0; h < 4; h++)
            _mm256_store_pd(t + 4 * h, s[h]);
        for (int64_t j = i; j < n; j++) {
            float xi = add ? x[j] + add[j] : x[j];
            if (add)
                x[j] = xi;
            t[j - i] += (double)(xi * xi);
        }
        for (int h = 0; h < 4; h++)
            s[h] = _mm256_load_pd(t + 4 * h);
    }
    float mean = (float)(hsum16d4(s[0], s[1], s[2], s[3]) / (double)n);
    float scf = 1.0f / sqrtf(mean + eps);
    __m256 sc = _mm256_set1_ps(scf);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), sc),
                                              _mm256_loadu_ps(w + i)));
    for (; i < n; i++)
        y[i] = (x[i] * scf) * w[i];
}

/* Contract: ts_rope_fn (simd/ops.h). */
void ts_rope_avx2(float *x, const float *cs, int64_t n_head, int64_t head_dim, int64_t n_rot,
                  int neox)
{
    const int64_t half = n_rot / 2;
    const float *cv = cs, *sv = cs + half;
    const __m256i dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    const __m256 sgn = _mm256_setr_ps(-1, 1, -1, 1, -1, 1, -1, 1);
    for (int64_t h = 0; h < n_head; h++) {
        float *v = x + h * head_dim;
        int64_t i = 0;
        if (neox) {
            for (; i + 8 <= half; i += 8) {
                __m256 x0 = _mm256_loadu_ps(v + i), x1 = _mm256_loadu_ps(v + half + i);
                __m256 c = _mm256_loadu_ps(cv + i), s = _mm256_loadu_ps(sv + i);
                _mm256_storeu_ps(v + i, _mm256_sub_ps(_mm256_mul_ps(x0, c), _mm256_mul_ps(x1, s)));
                _mm256_storeu_ps(v + half + i,
                                 _mm256_add_ps(_mm256_mul_ps(x0, s), _mm256_mul_ps(x1, c)));
            }
        } else {
            /* y = x * (c, c) + swap(x) * (-s, s): the scalar bits (see avx512). */
            for (; i + 4 <= half; i += 4) {
                __m256 xv = _mm256_loadu_ps(v + 2 * i);
                __m256 c = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(cv + i)), dup);
                __m256 s = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(sv + i)), dup);
                __m256 xs = _mm256_permute_ps(xv, 0xb1);
                __m256 yv = _mm256_add_ps(_mm256_mul_ps(xv, c), _mm256_mul_ps(xs, _mm256_mul_ps(s, sgn)));
                _mm256_storeu_ps(v + 2 * i, yv);
            }
        }
        for (; i < half; i++) {
            int64_t ia = neox ? i : 2 * i, ib = neox ? i + half : 2 * i + 1;
            float x0 = v[ia], x1 = v[ib];
            v[ia] = x0 * cv[i] - x1 * sv[i];
            v[ib] = x0 * sv[i] + x1 * cv[i];
        }
    }
}

/* Contract: ts_swiglu_fn (simd/ops.h). */
void ts_swiglu_avx2(float *a, const float *b, int64_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f), neg = _mm256_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 av = _mm256_loadu_ps(a + i);
        __m256 e = exp_canon8(_mm256_xor_ps(av, neg));
        _mm256_storeu_ps(a + i, _mm256_mul_ps(_mm256_div_ps(av, _mm256_add_ps(one, e)),
                                              _mm256_loadu_ps(b + i)));
    }
    if (i < n) {
        __m256i mk = tail8(n - i);
        __m256 av = _mm256_maskload_ps(a + i, mk);
        __m256 e = exp_canon8(_mm256_xor_ps(av, neg));
        __m256 yv = _mm256_mul_ps(_mm256_div_ps(av, _mm256_add_ps(one, e)),
                                  _mm256_maskload_ps(b + i, mk));
        _mm256_maskstore_ps(a + i, mk, yv);
    }
}

void ts_simd_register_ops_avx2(ts_kernels *k)
{
    k->ops = (ts_ops){.attn = ts_attn_avx2, .rmsnorm = ts_rmsnorm_avx2, .rope = ts_rope_avx2,
                      .swiglu = ts_swiglu_avx2, .attn_name = "ts_attn_avx2",
                      .rmsnorm_name = "ts_rmsnorm_avx2", .rope_name = "ts_rope_avx2",
                      .swiglu_name = "ts_swiglu_avx2", .gdn_scan = ts_gdn_scan_avx2,
                      .gdn_scan_name = "ts_gdn_scan_avx2"};
}
