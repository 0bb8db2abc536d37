/*
 * simd/scalar/gemm_f.c: scalar GEMM tiles for float weights (F32, F16, BF16)
 * against f32 activations.
 *
 * Canonical order (scalar level): per output, acc += w[i] * x[i] for i in K
 * order, plain f32 multiply then add (C11 keeps them unfused). Weights are
 * converted in chunks of 256 into a stack buffer and the running sum is kept
 * in y between chunks, so the order does not depend on the chunking.
 */
#include <string.h>

#include "../kernels.h"
#include "util.h"

#define F_CHUNK 256

void ts_gemm_f32_f32_scalar(int64_t k, int64_t n_rows, int64_t n_tok, const void *restrict w,
                            size_t w_stride, const void *restrict a, size_t a_stride,
                            float *restrict y, size_t y_stride);
void ts_gemm_f16_f32_scalar(int64_t k, int64_t n_rows, int64_t n_tok, const void *restrict w,
                            size_t w_stride, const void *restrict a, size_t a_stride,
                            float *restrict y, size_t y_stride);
void ts_gemm_bf16_f32_scalar(int64_t k, int64_t n_rows, int64_t n_tok, const void *restrict w,
                             size_t w_stride, const void *restrict a, size_t a_stride,
                             float *restrict y, size_t y_stride);

/* elem: 0 = f32, 1 = f16, 2 = bf16 */
static void tile_f(int elem, int64_t k, int64_t n_rows, int64_t n_tok, const void *w,
                   size_t w_stride, const void *a, size_t a_stride, float *y, size_t y_stride)
{
    float buf[F_CHUNK];
    for (int64_t row = 0; row < n_rows; row++) {
        const char *wr = (const char *)w + (size_t)row * w_stride;
        for (int64_t tok = 0; tok < n_tok; tok++)
            ((float *)((char *)y + (size_t)tok * y_stride))[row] = 0.0f;
        for (int64_t k0 = 0; k0 < k; k0 += F_CHUNK) {
            int64_t n = k - k0 < F_CHUNK ? k - k0 : F_CHUNK;
            if (elem == 0) {
                memcpy(buf, (const float *)wr + k0, (size_t)n * sizeof(float));
            } else {
                const uint16_t *h = (const uint16_t *)wr + k0;
                for (int64_t i = 0; i < n; i++)
                    buf[i] = elem == 1 ? s_f16_to_f32(h[i]) : s_bf16_to_f32(h[i]);
            }
            for (int64_t tok = 0; tok < n_tok; tok++) {
                const float *x = (const float *)((const char *)a + (size_t)tok * a_stride) + k0;
                float *yp = (float *)((char *)y + (size_t)tok * y_stride) + row;
                float acc = *yp;
                for (int64_t i = 0; i < n; i++)
                    acc += buf[i] * x[i];
                *yp = acc;
            }
        }
    }
}

/* Contract: ts_gemm_fn; any k >= 1, n_rows, n_tok >= 1; a holds f32 rows. */
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
