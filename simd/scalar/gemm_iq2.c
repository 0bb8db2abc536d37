/*
 * simd/scalar/gemm_iq2.c: the scalar GEMM tile for IQ2_XXS weights x Q8_K
 * activations: the oracle twin of the x86 kernels (simd/x86/gemm_x86_more.inc).
 *
 * The format (quant/kdequant.c, ts_dequant_iq2_xxs_scalar) gives element j of
 * 32-element sub-block ib the value d * (0.5 + ls) * 0.25 * mag * sign, with
 * mag a grid byte (8, 25 or 43), sign from 7 stored bits plus an even-parity
 * 8th and ls the sub-block's 4-bit scale. That is d/8 * (2*ls + 1) * mag *
 * sign, so the canonical order of kernels.h is, per super-block:
 *   isum = sum_ib (2*ls_ib + 1) * sum_j (mag * sign)_j * a_j      (exact int32)
 *   acc  = fmaf((d * 0.125f) * da, (float)isum, acc)
 * (d * 0.125f is exact: a power-of-two scaling of an f16 value in f32).
 * |isum| <= 8 * 31 * 32 * 43 * 127 < 2^31. The result differs from
 * dequantize + f32 dot only by the dequantizer's own roundings (db, db * mag).
 * The grid is format data shared with quant/ (quant/iq2_grid.h).
 */
#include <math.h>
#include <string.h>

#include "../../quant/iq2_grid.h"
#include "../kernels.h"
#include "util.h"

void ts_gemm_iq2_xxs_q8_k_scalar(int64_t k, int64_t n_rows, int64_t n_tok,
                                 const void *restrict w, size_t w_stride, const void *restrict a,
                                 size_t a_stride, float *restrict y, size_t y_stride);

/* Decodes one super-block: q[e] signed values (-43..43), sc[ib] = 2*ls + 1. */
static void dec_iq2_xxs(const ts_block_iq2_xxs *b, int8_t *q, int32_t *sc)
{
    for (int ib = 0; ib < TS_QK_K / 32; ib++) {
        const uint16_t *w = b->qs + 4 * ib;
        const uint32_t a0 = (uint32_t)w[0] | (uint32_t)w[1] << 16;
        const uint32_t a1 = (uint32_t)w[2] | (uint32_t)w[3] << 16;
        sc[ib] = 2 * (int32_t)(a1 >> 28) + 1;
        for (int l = 0; l < 4; l++) {
            const uint64_t g = ts_iq2xxs_grid[(a0 >> (8 * l)) & 0xff];
            uint32_t signs = (a1 >> (7 * l)) & 127;
            signs |= (uint32_t)__builtin_parity(signs) << 7;
            for (int j = 0; j < 8; j++) {
                const int mag = (int)((g >> (8 * j)) & 0xff);
                q[32 * ib + 8 * l + j] = (int8_t)((signs >> j) & 1 ? -mag : mag);
            }
        }
    }
}

/* Contract: see ts_gemm_fn in kernels.h; k % 256 == 0; any n_rows, n_tok >= 1;
 * no alignment beyond the block structs'. Loop order row -> block -> token
 * (one decode per block); the running acc lives in y (exact store/load). */
void ts_gemm_iq2_xxs_q8_k_scalar(int64_t k, int64_t n_rows, int64_t n_tok,
                                 const void *restrict w, size_t w_stride, const void *restrict a,
                                 size_t a_stride, float *restrict y, size_t y_stride)
{
    const int64_t nb = k / TS_QK_K;
    int8_t q[TS_QK_K];
    int32_t sc[TS_QK_K / 32];
    for (int64_t tok = 0; tok < n_tok; tok++)
        memset((char *)y + (size_t)tok * y_stride, 0, (size_t)n_rows * sizeof(float));
    for (int64_t row = 0; row < n_rows; row++) {
        const ts_block_iq2_xxs *wr =
            (const ts_block_iq2_xxs *)((const char *)w + (size_t)row * w_stride);
        for (int64_t blk = 0; blk < nb; blk++) {
            dec_iq2_xxs(&wr[blk], q, sc);
            const float dw = s_f16_to_f32(wr[blk].d) * 0.125f;
            for (int64_t tok = 0; tok < n_tok; tok++) {
                const ts_block_q8_k *ab =
                    (const ts_block_q8_k *)((const char *)a + (size_t)tok * a_stride) + blk;
                int32_t isum = 0;
                for (int ib = 0; ib < TS_QK_K / 32; ib++) {
                    int32_t s = 0;
                    for (int i = 0; i < 32; i++)
                        s += q[32 * ib + i] * ab->qs[32 * ib + i];
                    isum += sc[ib] * s;
                }
                float *yr = (float *)((char *)y + (size_t)tok * y_stride) + row;
                *yr = fmaf(dw * ab->d, (float)isum, *yr);
            }
        }
    }
}
