/*
 * simd/x86/avx512/exp_canon.h: avx512-local helpers of the attention and
 * per-token kernels: the canonical exp (the steps of simd/scalar/exp_canon.h,
 * lane-wise, hence the same bits) and the fixed halving horizontal sum.
 * Included only by files of this directory (compiled with the avx512 flags).
 */
#ifndef TS_SIMD_AVX512_EXP_CANON_H
#define TS_SIMD_AVX512_EXP_CANON_H

#include <immintrin.h>
#include <math.h>

#include "../../scalar/exp_canon.h"

#define INLINE static inline __attribute__((always_inline))

INLINE __m512 exp_canon16(__m512 x)
{
    __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(TS_EXP_LOG2E), _mm512_set1_ps(TS_EXP_MAGIC));
    __m512 n = _mm512_sub_ps(t, _mm512_set1_ps(TS_EXP_MAGIC));
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(TS_EXP_C1), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(TS_EXP_C2), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(TS_EXP_P0), r, _mm512_set1_ps(TS_EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TS_EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TS_EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TS_EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TS_EXP_P5));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
    p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
    __m512i sb = _mm512_add_epi32(_mm512_castps_si512(t), _mm512_set1_epi32((int)TS_EXP_BIAS));
    __m512 y = _mm512_mul_ps(p, _mm512_castsi512_ps(_mm512_slli_epi32(sb, 23)));
    __mmask16 lo = _mm512_cmp_ps_mask(x, _mm512_set1_ps(TS_EXP_LO), _CMP_LT_OQ);
    __mmask16 hi = _mm512_cmp_ps_mask(x, _mm512_set1_ps(TS_EXP_HI), _CMP_GT_OQ);
    y = _mm512_mask_blend_ps(lo, y, _mm512_setzero_ps());
    return _mm512_mask_blend_ps(hi, y, _mm512_set1_ps(INFINITY));
}

/* The fixed tree: s[j] + s[j+8], then + [j+4], + [j+2], + [j+1]. */
INLINE float hsum16(__m512 v)
{
    __m256 v8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 v4 = _mm_add_ps(_mm256_castps256_ps128(v8), _mm256_extractf128_ps(v8, 1));
    __m128 v2 = _mm_add_ps(v4, _mm_movehl_ps(v4, v4));
    __m128 v1 = _mm_add_ss(v2, _mm_movehdup_ps(v2));
    return _mm_cvtss_f32(v1);
}

/* The same tree over 16 double lanes held in two zmm (lanes 0-7, 8-15). */
INLINE double hsum16d(__m512d lo, __m512d hi)
{
    __m512d s8 = _mm512_add_pd(lo, hi);
    __m256d s4 = _mm256_add_pd(_mm512_castpd512_pd256(s8), _mm512_extractf64x4_pd(s8, 1));
    __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
}

#endif
