/*
 * simd/x86/avx2/gemm_f.c: the AVX2 level (AVX2+FMA+F16C) of the float-weight
 * GEMM tiles (F32, F16, BF16 weights x f32 activations).
 *
 * Per output two ymm hold the 16 lane sums of kernels.h's float order (lo:
 * lanes 0-7, hi: lanes 8-15), each updated with one fused multiply-add per
 * 16-element step; the K tail is copied into zeroed stack buffers (w = x = 0
 * in the padding lanes), and the end is the halving tree lo + hi -> 128 -> 64
 * -> 32. Same bits as the scalar level for every MR x NY block, tail and split.
 * Register block: MR = 2 rows x NY = 3 tokens: 12 accumulators + 2 converted
 * weight vectors (the lo half of a step is done for all outputs, then the hi
 * half, so only one half's weights are live). Row/token tails use smaller
 * compile-time blocks. BF16 is widened exactly (zero-extend, shift left 16).
 * Does not own: dispatch over threads, weight repacking.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "../../kernels.h"

#define MR 2
#define NY 3
#define INLINE static inline __attribute__((always_inline))

void ts_simd_register_gemm_f_avx2(ts_kernels *k);

/* 8 weights from element i of row w (elem 0 = f32, 1 = f16, 2 = bf16), f32 exact. */
INLINE __m256 ldw(int elem, const char *w, int64_t i)
{
    if (elem == 0)
        return _mm256_loadu_ps((const float *)w + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    if (elem == 1)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* The fixed tree: s[j] + s[j+8] (lo + hi), then + [j+4], + [j+2], + [j+1]. */
INLINE float hsum16(__m256 lo, __m256 hi)
{
    __m256 v8 = _mm256_add_ps(lo, hi);
    __m128 v4 = _mm_add_ps(_mm256_castps256_ps128(v8), _mm256_extractf128_ps(v8, 1));
    __m128 v2 = _mm_add_ps(v4, _mm_movehl_ps(v4, v4));
    __m128 v1 = _mm_add_ss(v2, _mm_movehdup_ps(v2));
    return _mm_cvtss_f32(v1);
}

/* One 16-element step for an mr x ny block: w rows ws apart, x rows xs apart. */
INLINE void step(int elem, int mr, int ny, const char *w, size_t ws, const float *x, size_t xs,
                 int64_t i, __m256 lo[MR][NY], __m256 hi[MR][NY])
{
    __m256 wv[MR];
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++)
        wv[r] = ldw(elem, w + (size_t)r * ws, i);
#pragma GCC unroll 4
    for (int t = 0; t < ny; t++) {
        __m256 xv = _mm256_loadu_ps((const float *)((const char *)x + (size_t)t * xs) + i);
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++)
            lo[r][t] = _mm256_fmadd_ps(wv[r], xv, lo[r][t]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++)
        wv[r] = ldw(elem, w + (size_t)r * ws, i + 8);
#pragma GCC unroll 4
    for (int t = 0; t < ny; t++) {
        __m256 xv = _mm256_loadu_ps((const float *)((const char *)x + (size_t)t * xs) + i + 8);
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++)
            hi[r][t] = _mm256_fmadd_ps(wv[r], xv, hi[r][t]);
    }
}

/* One mr x ny block over all of k (mr, ny, elem are compile-time after inlining). */
INLINE void block(int elem, int mr, int ny, int64_t k, const char *restrict w, size_t ws,
                  const char *restrict a, size_t as, float *restrict y, size_t ys)
{
    __m256 lo[MR][NY], hi[MR][NY];
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int t = 0; t < ny; t++)
            lo[r][t] = hi[r][t] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= k; i += 16)
        step(elem, mr, ny, w, ws, (const float *)a, as, i, lo, hi);
    if (i < k) {
        /* Tail: zero-padded copies (the canonical padding), then one step. */
        const size_t esz = elem == 0 ? 4 : 2, n = (size_t)(k - i);
        _Alignas(32) char wt[MR][64];
        _Alignas(32) float xt[NY][16];
        memset(wt, 0, sizeof(wt));
        memset(xt, 0, sizeof(xt));
        for (int r = 0; r < mr; r++)
            memcpy(wt[r], w + (size_t)r * ws + (size_t)i * esz, n * esz);
        for (int t = 0; t < ny; t++)
            memcpy(xt[t], (const float *)(a + (size_t)t * as) + i, n * sizeof(float));
        step(elem, mr, ny, &wt[0][0], 64, &xt[0][0], sizeof(xt[0]), 0, lo, hi);
    }
#pragma GCC unroll 4
    for (int t = 0; t < ny; t++)
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++)
            ((float *)((char *)y + (size_t)t * ys))[r] = hsum16(lo[r][t], hi[r][t]);
}

#define BLOCK_CASE(e, r, t)                                                                   \
    case (r - 1) * NY + (t - 1):                                                              \
        block(e, r, t, k, w, ws, a, as, y, ys);                                               \
        break;
#define BLOCK_ROW(e, r) BLOCK_CASE(e, r, 1) BLOCK_CASE(e, r, 2) BLOCK_CASE(e, r, 3)

#define TILE_FN(name, e)                                                                      \
    static void name##_block(int mr, int ny, int64_t k, const char *w, size_t ws,            \
                             const char *a, size_t as, float *y, size_t ys)                   \
    {                                                                                         \
        switch ((mr - 1) * NY + (ny - 1)) {                                                   \
            BLOCK_ROW(e, 1) BLOCK_ROW(e, 2)                                                   \
        default:                                                                              \
            break;                                                                            \
        }                                                                                     \
    }                                                                                         \
    void name(int64_t k, int64_t n_rows, int64_t n_tok, const void *restrict w,               \
              size_t w_stride, const void *restrict a, size_t a_stride, float *restrict y,     \
              size_t y_stride);                                                               \
    void name(int64_t k, int64_t n_rows, int64_t n_tok, const void *restrict w,               \
              size_t w_stride, const void *restrict a, size_t a_stride, float *restrict y,     \
              size_t y_stride)                                                                \
    {                                                                                         \
        for (int64_t row = 0; row < n_rows; row += MR) {                                      \
            int mr = n_rows - row < MR ? (int)(n_rows - row) : MR;                            \
            const char *wb = (const char *)w + (size_t)row * w_stride;                        \
            for (int64_t tok = 0; tok < n_tok; tok += NY) {                                   \
                int ny = n_tok - tok < NY ? (int)(n_tok - tok) : NY;                          \
                name##_block(mr, ny, k, wb, w_stride,                                         \
                             (const char *)a + (size_t)tok * a_stride, a_stride,              \
                             (float *)((char *)y + (size_t)tok * y_stride) + row, y_stride);  \
            }                                                                                 \
        }                                                                                     \
    }

/* Contract (all three): ts_gemm_fn; any k >= 1, n_rows >= 1, n_tok >= 1; w rows of
 * k f32 / f16 / bf16, a rows of k f32, no alignment assumed; y_stride a multiple of
 * 4. Writes y[tok][0 .. n_rows) only, in kernels.h's canonical float order. */
TILE_FN(ts_gemm_f32_f32_avx2, 0)
TILE_FN(ts_gemm_f16_f32_avx2, 1)
TILE_FN(ts_gemm_bf16_f32_avx2, 2)

#define SET(qt, fn_) k->gemm[qt] = (ts_gemm_slot){fn_, TS_ACT_F32, MR, NY, #fn_}
void ts_simd_register_gemm_f_avx2(ts_kernels *k)
{
    SET(TS_QTYPE_F32, ts_gemm_f32_f32_avx2);
    SET(TS_QTYPE_F16, ts_gemm_f16_f32_avx2);
    SET(TS_QTYPE_BF16, ts_gemm_bf16_f32_avx2);
}
