/*
 * simd/scalar/gemm_f.c: scalar GEMM tiles for float weights (F32, F16, BF16)
 * against f32 activations: the oracle twin of the x86 float kernels.
 *
 * Canonical order for float weights (kernels.h), per output (row, tok):
 *   s[0..15] = +0; K is zero-padded to a multiple of 16 (w = x = 0 there);
 *   for each 16-element step k0 in K order, for each lane j:
 *       s[j] = fmaf(w[k0 + j], x[k0 + j], s[j])          (one rounding: fused)
 *   then the fixed tree: s[j] += s[j + 8] (j < 8); s[j] += s[j + 4] (j < 4);
 *   s[j] += s[j + 2] (j < 2); y = s[0] + s[1].
 * That is exactly what a 16-lane (or 2 x 8-lane) FMA accumulator followed by
 * the usual halving horizontal sum computes, so the SIMD levels match this
 * level bit for bit. Weights convert exactly to f32 (f16 via exponent rebias,
 * bf16 by a 16-bit shift), so the conversion never changes the order.
 * Does not own: blocking for speed (this is the reference; fmaf is a libm
 * call at the baseline -march).
 */
#include <math.h>
#include <string.h>

#include "../kernels.h"
#include "util.h"

#define F_LANES 16

void ts_gemm_f32_f32_scalar(int64_t k, int64_t n_rows, int64_t n_tok, const void *restrict w,
                            size_t w_stride, const void *restrict a, size_t a_stride,
                            float *restrict y, size_t y_stride);
void ts_gemm_f16_f32_scalar(int64_t k, int64_t n_rows, int64_t n_tok, const void *restrict w,
                            size_t w_stride, const void *restrict a, size_t a_stride,
                            float *restrict y, size_t y_stride);
void ts_gemm_bf16_f32_scalar(int64_t k, int64_t n_rows, int64_t n_tok, const void *restrict w,
                             size_t w_stride, const void *restrict a, size_t a_stride,
                             float *restrict y, size_t y_stride);

/* Weight element i of a row as f32 (exact). elem: 0 = f32, 1 = f16, 2 = bf16. */
static float w_elem(int elem, const void *row, int64_t i)
{
    if (elem == 0)
        return ((const float *)row)[i];
    uint16_t h = ((const uint16_t *)row)[i];
    return elem == 1 ? s_f16_to_f32(h) : s_bf16_to_f32(h);
}

/* The fixed combine tree of the 16 lane sums (halving, as SIMD hsums do). */
static float lane_tree(float *s)
{
    for (int j = 0; j < 8; j++)
        s[j] += s[j + 8];
    for (int j = 0; j < 4; j++)
        s[j] += s[j + 4];
    for (int j = 0; j < 2; j++)
        s[j] += s[j + 2];
    return s[0] + s[1];
}

static void tile_f(int elem, int64_t k, int64_t n_rows, int64_t n_tok, const void *w,
                   size_t w_stride, const void *a, size_t a_stride, float *y, size_t y_stride)
{
    for (int64_t row = 0; row < n_rows; row++) {
        const char *wr = (const char *)w + (size_t)row * w_stride;
        for (int64_t tok = 0; tok < n_tok; tok++) {
            const float *x = (const float *)((const char *)a + (size_t)tok * a_stride);
            float s[F_LANES] = {0};
            for (int64_t k0 = 0; k0 < k; k0 += F_LANES)
                for (int j = 0; j < F_LANES; j++) {
                    int64_t i = k0 + j;
                    float wv = i < k ? w_elem(elem, wr, i) : 0.0f;
                    float xv = i < k ? x[i] : 0.0f;
                    s[j] = fmaf(wv, xv, s[j]);
                }
            ((float *)((char *)y + (size_t)tok * y_stride))[row] = lane_tree(s);
        }
    }
}

/* Contract (all three): ts_gemm_fn; any k >= 1, n_rows >= 1, n_tok >= 1; w rows
 * of k elements (f32 / f16 / bf16), a rows of k f32, no alignment assumed.
 * Writes y[tok][0 .. n_rows) only, in the canonical float order above. */
void ts_gemm_f32_f32_scalar(int64_t k, int64_t n_rows, int64_t n_tok, const void *restrict w,
                            size_t w_stride, const void *restrict a, size_t a_stride,
                            float *restrict y, size_t y_stride)
{
    tile_f(0, k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);
}

void ts_gemm_f16_f32_scalar(int64_t k, int64_t n_rows, int64_t n_tok, const void *restrict w,
                            size_t w_stride, const void *restrict a, size_t a_stride,
                            float *restrict y, size_t y_stride)
{
    tile_f(1, k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);
}

void ts_gemm_bf16_f32_scalar(int64_t k, int64_t n_rows, int64_t n_tok, const void *restrict w,
                             size_t w_stride, const void *restrict a, size_t a_stride,
                             float *restrict y, size_t y_stride)
{
    tile_f(2, k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);
}
