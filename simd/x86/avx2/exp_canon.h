/*
 * simd/x86/avx2/exp_canon.h: avx2-local helpers of the attention and
 * per-token kernels: the canonical exp (the steps of simd/scalar/exp_canon.h,
 * lane-wise, hence the same bits), the fixed halving horizontal sums and tail
 * masks. Included only by files of this directory (compiled with avx2 flags).
 */
#ifndef TS_SIMD_AVX2_EXP_CANON_H
#define TS_SIMD_AVX2_EXP_CANON_H

#include <immintrin.h>
#include <math.h>

#include "../../scalar/exp_canon.h"

#define INLINE static inline __attribute__((always_inline))

INLINE __m256 exp_canon8(__m256 x)
{
    __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(TS_EXP_LOG2E), _mm256_set1_ps(TS_EXP_MAGIC));
    __m256 n = _mm256_sub_ps(t, _mm256_set1_ps(TS_EXP_MAGIC));
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(TS_EXP_C1), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(TS_EXP_C2), r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(TS_EXP_P0), r, _mm256_set1_ps(TS_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TS_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TS_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TS_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TS_EXP_P5));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    __m256i sb = _mm256_add_epi32(_mm256_castps_si256(t), _mm256_set1_epi32((int)TS_EXP_BIAS));
    __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(sb, 23)));
    __m256 lo = _mm256_cmp_ps(x, _mm256_set1_ps(TS_EXP_LO), _CMP_LT_OQ);
    __m256 hi = _mm256_cmp_ps(x, _mm256_set1_ps(TS_EXP_HI), _CMP_GT_OQ);
    y = _mm256_blendv_ps(y, _mm256_setzero_ps(), lo);
    return _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), hi);
}

/* The fixed tree over 16 lanes held as lo (0-7) and hi (8-15):
 * s[j] + s[j+8], then + [j+4], + [j+2], + [j+1]. */
INLINE float hsum16x2(__m256 lo, __m256 hi)
{
    __m256 v8 = _mm256_add_ps(lo, hi);
    __m128 v4 = _mm_add_ps(_mm256_castps256_ps128(v8), _mm256_extractf128_ps(v8, 1));
    __m128 v2 = _mm_add_ps(v4, _mm_movehl_ps(v4, v4));
    __m128 v1 = _mm_add_ss(v2, _mm_movehdup_ps(v2));
    return _mm_cvtss_f32(v1);
}

/* The same tree over 16 double lanes in four ymm (lanes 0-3, 4-7, 8-11, 12-15). */
INLINE double hsum16d4(__m256d a, __m256d b, __m256d c, __m256d d)
{
    __m256d s0 = _mm256_add_pd(a, c), s1 = _mm256_add_pd(b, d); /* lanes j, j + 8 */
    __m256d s4 = _mm256_add_pd(s0, s1);                          /* + j + 4 */
    __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
}

/* Lanes i < left (of 8) set: a mask for maskload/maskstore and blendv. */
INLINE __m256i tail8(int64_t left)
{
    int n = left >= 8 ? 8 : left <= 0 ? 0 : (int)left;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#endif
