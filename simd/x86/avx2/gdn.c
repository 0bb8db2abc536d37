/*
 * simd/x86/avx2/gdn.c: the gated delta-rule scan (ts_gdn_scan_fn,
 * simd/ops.h): blocks of 8 value columns through every token (the block's
 * slice of S stays in L1), the last columns one by one; each lane is the
 * scalar twin's operations in its order (mul and add apart).
 */
#include <immintrin.h>

#include "../../kernels.h"

void ts_gdn_scan_avx2(float *S, int64_t ds, int64_t n, const float *q, const float *k,
                      const float *v, size_t x_stride, const float *decay, const float *beta,
                      size_t g_stride, float scale, float *o, size_t o_stride);

#define AT(p, t, stride) ((const float *)((const char *)(p) + (size_t)(t) * (stride)))

/* Contract: ts_gdn_scan_fn (simd/ops.h). */
void ts_gdn_scan_avx2(float *S, int64_t ds, int64_t n, const float *q, const float *k,
                      const float *v, size_t x_stride, const float *decay, const float *beta,
                      size_t g_stride, float scale, float *o, size_t o_stride)
{
    const int64_t d8 = ds / 8 * 8;
    const __m256 vs = _mm256_set1_ps(scale);
    for (int64_t j = 0; j < d8; j += 8)
        for (int64_t t = 0; t < n; t++) {
            const float *qt = AT(q, t, x_stride), *kt = AT(k, t, x_stride);
            const __m256 dec = _mm256_set1_ps(*AT(decay, t, g_stride));
            const __m256 bt = _mm256_set1_ps(*AT(beta, t, g_stride));
            __m256 a = _mm256_setzero_ps();
            for (int64_t i = 0; i < ds; i++) {
                float *Si = S + i * ds + j;
                __m256 s = _mm256_mul_ps(_mm256_loadu_ps(Si), dec); /* recomputed below */
                a = _mm256_add_ps(a, _mm256_mul_ps(s, _mm256_set1_ps(kt[i])));
            }
            const __m256 d =
                _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(AT(v, t, x_stride) + j), a), bt);
            __m256 b = _mm256_setzero_ps();
            for (int64_t i = 0; i < ds; i++) {
                float *Si = S + i * ds + j;
                __m256 s = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(Si), dec),
                                         _mm256_mul_ps(_mm256_set1_ps(kt[i]), d));
                _mm256_storeu_ps(Si, s);
                b = _mm256_add_ps(b, _mm256_mul_ps(s, _mm256_set1_ps(qt[i])));
            }
            _mm256_storeu_ps((float *)((char *)o + (size_t)t * o_stride) + j, _mm256_mul_ps(b, vs));
        }
    for (int64_t j = d8; j < ds; j++) /* one column at a time, the same operations */
        for (int64_t t = 0; t < n; t++) {
            const float *qt = AT(q, t, x_stride), *kt = AT(k, t, x_stride);
            const float dec = *AT(decay, t, g_stride), bt = *AT(beta, t, g_stride);
            float a = 0.0f, b = 0.0f;
            for (int64_t i = 0; i < ds; i++)
                a = a + (S[i * ds + j] * dec) * kt[i];
            const float d = (AT(v, t, x_stride)[j] - a) * bt;
            for (int64_t i = 0; i < ds; i++) {
                S[i * ds + j] = S[i * ds + j] * dec + kt[i] * d;
                b = b + S[i * ds + j] * qt[i];
            }
            ((float *)((char *)o + (size_t)t * o_stride))[j] = b * scale;
        }
}
