/*
 * simd/x86/avx512/gemm_f.c: the AVX-512 level of the float-weight GEMM tiles
 * (F32, F16, BF16 weights x f32 activations).
 *
 * Per output one zmm holds the 16 lane sums of kernels.h's float order:
 * lane j accumulates k = j mod 16 with a fused multiply-add, the K tail is a
 * zero-masked load (w = x = 0 in the padding lanes), and the end is the
 * halving tree 512 -> 256 -> 128 -> 64 -> 32. Same bits as the scalar level
 * for every MR x NY block, tail and split.
 * Register block: MR = 4 rows x NY = 4 tokens (16 accumulators + 4 converted
 * weight vectors; row/token tails use smaller compile-time blocks).
 * BF16 is widened exactly (zero-extend, shift left 16) and fed to FMA.
 * vdpbf16ps is not used: it needs bf16 activations (rounding x to 8 bits of
 * mantissa) and sums pairs with its own rounding, so it would break both the
 * accuracy of f32 activations and bit-equality with the scalar level.
 * Does not own: dispatch over threads, weight repacking.
 */
#include <immintrin.h>
#include <stdint.h>

#include "../../kernels.h"

#define MR 4
#define NY 4
#define INLINE static inline __attribute__((always_inline))

void ts_simd_register_gemm_f_avx512(ts_kernels *k);

/* 16 weights from element i of row w (elem 0 = f32, 1 = f16, 2 = bf16), f32 exact. */
INLINE __m512 ldw(int elem, const char *w, int64_t i)
{
    if (elem == 0)
        return _mm512_loadu_ps((const float *)w + i);
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + i));
    if (elem == 1)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* As ldw for the first n < 16 elements, zeros in the other lanes. */
INLINE __m512 ldw_tail(int elem, const char *w, int64_t i, __mmask16 m)
{
    if (elem == 0)
        return _mm512_maskz_loadu_ps(m, (const float *)w + i);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w + i);
    if (elem == 1)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
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

/* One mr x ny block over all of k (mr, ny, elem are compile-time after inlining). */
INLINE void block(int elem, int mr, int ny, int64_t k, const char *restrict w, size_t ws,
                  const char *restrict a, size_t as, float *restrict y, size_t ys)
{
    __m512 acc[MR][NY], wv[MR];
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int t = 0; t < ny; t++)
            acc[r][t] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) {
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++)
            wv[r] = ldw(elem, w + (size_t)r * ws, i);
#pragma GCC unroll 4
        for (int t = 0; t < ny; t++) {
            __m512 x = _mm512_loadu_ps((const float *)(a + (size_t)t * as) + i);
#pragma GCC unroll 4
            for (int r = 0; r < mr; r++)
                acc[r][t] = _mm512_fmadd_ps(wv[r], x, acc[r][t]);
        }
    }
    if (i < k) {
        __mmask16 m = (__mmask16)((1u << (k - i)) - 1u);
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++)
            wv[r] = ldw_tail(elem, w + (size_t)r * ws, i, m);
#pragma GCC unroll 4
        for (int t = 0; t < ny; t++) {
            __m512 x = _mm512_maskz_loadu_ps(m, (const float *)(a + (size_t)t * as) + i);
#pragma GCC unroll 4
            for (int r = 0; r < mr; r++)
                acc[r][t] = _mm512_fmadd_ps(wv[r], x, acc[r][t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < ny; t++)
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++)
            ((float *)((char *)y + (size_t)t * ys))[r] = hsum16(acc[r][t]);
}

#define BLOCK_CASE(e, r, t)                                                                   \
    case (r - 1) * NY + (t - 1):                                                              \
        block(e, r, t, k, w, ws, a, as, y, ys);                                               \
        break;
#define BLOCK_ROW(e, r) BLOCK_CASE(e, r, 1) BLOCK_CASE(e, r, 2) BLOCK_CASE(e, r, 3) BLOCK_CASE(e, r, 4)

/* y rows are y_stride bytes apart; y_stride is a multiple of 4 (f32 rows). */
#define TILE_FN(name, e)                                                                      \
    static void name##_block(int mr, int ny, int64_t k, const char *w, size_t ws,            \
                             const char *a, size_t as, float *y, size_t ys)                   \
    {                                                                                         \
        switch ((mr - 1) * NY + (ny - 1)) {                                                   \
            BLOCK_ROW(e, 1) BLOCK_ROW(e, 2) BLOCK_ROW(e, 3) BLOCK_ROW(e, 4)                   \
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
TILE_FN(ts_gemm_f32_f32_avx512, 0)
TILE_FN(ts_gemm_f16_f32_avx512, 1)
TILE_FN(ts_gemm_bf16_f32_avx512, 2)

#define SET(qt, fn_) k->gemm[qt] = (ts_gemm_slot){fn_, TS_ACT_F32, MR, NY, #fn_}
void ts_simd_register_gemm_f_avx512(ts_kernels *k)
{
    SET(TS_QTYPE_F32, ts_gemm_f32_f32_avx512);
    SET(TS_QTYPE_F16, ts_gemm_f16_f32_avx512);
    SET(TS_QTYPE_BF16, ts_gemm_bf16_f32_avx512);
}
