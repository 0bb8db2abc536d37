/*
 * simd/x86/avx512/gdn.c: the gated delta-rule scan (ts_gdn_scan_fn,
 * simd/ops.h): groups of up to 4 blocks of 16 value columns, each group
 * through every token while its ds x 64 slice of S stays in L1 (a head's S
 * is ds^2 floats, 64 KB at ds 128). The 4 blocks' sums are independent
 * chains, so the adds' latency overlaps (one chain was latency-bound: 4
 * cycles a key row). Each lane is the scalar twin's operations in its order
 * (mul and add apart, never fused); the last block is masked. S * decay is
 * not stored by the first pass but recomputed by the second (the same
 * product, the same bits): one store a key row fewer.
 */
#include <immintrin.h>

#include "../../kernels.h"

void ts_gdn_scan_avx512(float *S, int64_t ds, int64_t n, const float *q, const float *k,
                        const float *v, size_t x_stride, const float *decay, const float *beta,
                        size_t g_stride, float scale, float *o, size_t o_stride);

#define AT(p, t, stride) ((const float *)((const char *)(p) + (size_t)(t) * (stride)))
#define NB 4

/* Contract: ts_gdn_scan_fn (simd/ops.h). */
void ts_gdn_scan_avx512(float *S, int64_t ds, int64_t n, const float *q, const float *k,
                        const float *v, size_t x_stride, const float *decay, const float *beta,
                        size_t g_stride, float scale, float *o, size_t o_stride)
{
    const __m512 vs = _mm512_set1_ps(scale);
    for (int64_t j0 = 0; j0 < ds; j0 += 16 * NB) {
        int nb = 0;
        __mmask16 m[NB];
        for (; nb < NB && j0 + 16 * nb < ds; nb++) {
            const int64_t left = ds - (j0 + 16 * nb);
            m[nb] = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
        }
        for (int b = nb; b < NB; b++)
            m[b] = 0; /* absent blocks: every load zero, every store none */
        for (int64_t t = 0; t < n; t++) {
            const float *qt = AT(q, t, x_stride), *kt = AT(k, t, x_stride);
            const float *vt = AT(v, t, x_stride) + j0;
            const __m512 dec = _mm512_set1_ps(*AT(decay, t, g_stride));
            const __m512 bt = _mm512_set1_ps(*AT(beta, t, g_stride));
            __m512 a[NB], d[NB];
            for (int b = 0; b < NB; b++)
                a[b] = _mm512_setzero_ps();
            for (int64_t i = 0; i < ds; i++) {
                float *Si = S + i * ds + j0;
                const __m512 ki = _mm512_set1_ps(kt[i]);
                for (int b = 0; b < NB; b++) { /* S * decay, not stored: recomputed below */
                    __m512 s = _mm512_mul_ps(_mm512_maskz_loadu_ps(m[b], Si + 16 * b), dec);
                    a[b] = _mm512_add_ps(a[b], _mm512_mul_ps(s, ki));
                }
            }
            for (int b = 0; b < NB; b++) {
                d[b] = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m[b], vt + 16 * b), a[b]),
                                     bt);
                a[b] = _mm512_setzero_ps();
            }
            for (int64_t i = 0; i < ds; i++) {
                float *Si = S + i * ds + j0;
                const __m512 ki = _mm512_set1_ps(kt[i]), qi = _mm512_set1_ps(qt[i]);
                for (int b = 0; b < NB; b++) {
                    __m512 s = _mm512_add_ps(
                        _mm512_mul_ps(_mm512_maskz_loadu_ps(m[b], Si + 16 * b), dec),
                        _mm512_mul_ps(ki, d[b]));
                    _mm512_mask_storeu_ps(Si + 16 * b, m[b], s);
                    a[b] = _mm512_add_ps(a[b], _mm512_mul_ps(s, qi));
                }
            }
            float *ot = (float *)((char *)o + (size_t)t * o_stride) + j0;
            for (int b = 0; b < NB; b++)
                _mm512_mask_storeu_ps(ot + 16 * b, m[b], _mm512_mul_ps(a[b], vs));
        }
    }
}
