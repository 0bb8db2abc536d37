/*
 * quant/kdequant.c: scalar dequantizers for the 256-element super-block
 * formats Q2_K..Q6_K, Q8_K and IQ2_XXS.
 *
 * Owns: the oracle every K-quant kernel is tested against. Each function
 * computes the same float expression per element as ggml's dequantize_row_*
 * (sub-block scale first, e.g. (d * sc) * q - (dmin * m)), so results are
 * bit-identical to ggml's, not merely close. Does not own quantization
 * (kquant.c) or SIMD. n must be a multiple of 256.
 */
#include "quant.h"

#include <string.h>

#include "iq2_grid.h"

/* Unpacks the 12-byte Q4_K/Q5_K scale field: see get_scale_min_k4 in
 * kquant.c for the layout. */
static void unpack_scales_k4(const uint8_t *q, uint8_t sc[8], uint8_t mn[8])
{
    for (int j = 0; j < 4; j++) {
        sc[j] = q[j] & 63;
        mn[j] = q[j + 4] & 63;
    }
    for (int j = 4; j < 8; j++) {
        sc[j] = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        mn[j] = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Q2_K: element 128*h + 32*s + l (s = shift index 0..3, l 0..31) is bits
 * 2s..2s+1 of qs[32*h + l]; its 16-element group is 8*h + 2*s + l/16. */
void ts_dequant_q2_k_scalar(const ts_block_q2_k *x, float *y, int64_t n)
{
    for (int64_t blk = 0; blk < n / TS_QK_K; blk++) {
        const float d = ts_f16_to_f32(x[blk].d);
        const float dmin = ts_f16_to_f32(x[blk].dmin);
        for (int e = 0; e < TS_QK_K; e++) {
            const int h = e / 128, s = (e % 128) / 32, l = e % 32;
            const uint8_t sc = x[blk].scales[8 * h + 2 * s + l / 16];
            const int q = (x[blk].qs[32 * h + l] >> (2 * s)) & 3;
            const float dl = d * (sc & 0xF), ml = dmin * (sc >> 4);
            *y++ = dl * q - ml;
        }
    }
}

/* Q3_K: 2 low bits as in Q2_K; the third bit of element e is hmask[e % 32]
 * bit e / 32, and a clear bit means "subtract 4". Scales: 6-bit, +32. */
void ts_dequant_q3_k_scalar(const ts_block_q3_k *x, float *y, int64_t n)
{
    for (int64_t blk = 0; blk < n / TS_QK_K; blk++) {
        const float d_all = ts_f16_to_f32(x[blk].d);
        const uint8_t *sc = x[blk].scales;
        float dl[16];
        for (int j = 0; j < 16; j++) {
            const int lo = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
            const int hi = (sc[8 + j % 4] >> (2 * (j / 4))) & 3;
            dl[j] = d_all * ((lo | (hi << 4)) - 32);
        }
        for (int e = 0; e < TS_QK_K; e++) {
            const int h = e / 128, s = (e % 128) / 32, l = e % 32;
            const int q = (x[blk].qs[32 * h + l] >> (2 * s)) & 3;
            const int high = (x[blk].hmask[l] >> (e / 32)) & 1;
            *y++ = dl[e / 16] * (q - (high ? 0 : 4));
        }
    }
}

/* Q4_K: per 64 elements g, 32 bytes: low nibbles are sub-block 2g, high
 * nibbles sub-block 2g+1. */
void ts_dequant_q4_k_scalar(const ts_block_q4_k *x, float *y, int64_t n)
{
    for (int64_t blk = 0; blk < n / TS_QK_K; blk++) {
        const float d = ts_f16_to_f32(x[blk].d);
        const float dmin = ts_f16_to_f32(x[blk].dmin);
        uint8_t sc[8], mn[8];
        unpack_scales_k4(x[blk].scales, sc, mn);
        for (int g = 0; g < 4; g++) {
            const uint8_t *q = x[blk].qs + 32 * g;
            const float d1 = d * sc[2 * g], m1 = dmin * mn[2 * g];
            const float d2 = d * sc[2 * g + 1], m2 = dmin * mn[2 * g + 1];
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

/* Q5_K: Q4_K plus a fifth bit: qh[l] bit 2g for element 64g + l, bit 2g+1
 * for element 64g + 32 + l. */
void ts_dequant_q5_k_scalar(const ts_block_q5_k *x, float *y, int64_t n)
{
    for (int64_t blk = 0; blk < n / TS_QK_K; blk++) {
        const float d = ts_f16_to_f32(x[blk].d);
        const float dmin = ts_f16_to_f32(x[blk].dmin);
        const uint8_t *qh = x[blk].qh;
        uint8_t sc[8], mn[8];
        unpack_scales_k4(x[blk].scales, sc, mn);
        for (int g = 0; g < 4; g++) {
            const uint8_t *ql = x[blk].qs + 32 * g;
            const float d1 = d * sc[2 * g], m1 = dmin * mn[2 * g];
            const float d2 = d * sc[2 * g + 1], m2 = dmin * mn[2 * g + 1];
            for (int l = 0; l < 32; l++)
                *y++ = d1 * ((ql[l] & 0xF) + (((qh[l] >> (2 * g)) & 1) << 4)) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * ((ql[l] >> 4) + (((qh[l] >> (2 * g + 1)) & 1) << 4)) - m2;
        }
    }
}

/* Q6_K: see ts_quant_q6_k_scalar for the ql/qh layout; values are stored
 * +32 and scaled by (d * scales[e / 16]). */
void ts_dequant_q6_k_scalar(const ts_block_q6_k *x, float *y, int64_t n)
{
    for (int64_t blk = 0; blk < n / TS_QK_K; blk++, y += TS_QK_K) {
        const float d = ts_f16_to_f32(x[blk].d);
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = x[blk].ql + 64 * half;
            const uint8_t *qh = x[blk].qh + 32 * half;
            const int8_t *sc = x[blk].scales + 8 * half;
            float *yh = y + 128 * half;
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                yh[l] = d * sc[is] * q1;
                yh[l + 32] = d * sc[is + 2] * q2;
                yh[l + 64] = d * sc[is + 4] * q3;
                yh[l + 96] = d * sc[is + 6] * q4;
            }
        }
    }
}

void ts_dequant_q8_k_scalar(const ts_block_q8_k *x, float *y, int64_t n)
{
    for (int64_t blk = 0; blk < n / TS_QK_K; blk++)
        for (int j = 0; j < TS_QK_K; j++)
            *y++ = x[blk].d * x[blk].qs[j];
}

/* IQ2_XXS: per 32 elements, 8 bytes read as two little-endian u32 words
 * a0, a1. Bytes 0-3 of a0 index the grid (8 magnitudes each); a1 holds four
 * 7-bit sign fields (bits 7l..7l+6) and a 4-bit scale s in bits 28-31. The
 * 8th sign bit is implied: the number of negative signs is even. Value:
 * d * (0.5 + s) * 0.25 * grid byte * sign. */
void ts_dequant_iq2_xxs_scalar(const ts_block_iq2_xxs *x, float *y, int64_t n)
{
    for (int64_t blk = 0; blk < n / TS_QK_K; blk++) {
        const float d = ts_f16_to_f32(x[blk].d);
        for (int ib = 0; ib < TS_QK_K / 32; ib++) {
            const uint16_t *q = x[blk].qs + 4 * ib;
            const uint32_t a0 = (uint32_t)q[0] | (uint32_t)q[1] << 16;
            const uint32_t a1 = (uint32_t)q[2] | (uint32_t)q[3] << 16;
            const float db = d * (0.5f + (float)(a1 >> 28)) * 0.25f;
            for (int l = 0; l < 4; l++) {
                const uint64_t g = ts_iq2xxs_grid[(a0 >> (8 * l)) & 0xFF];
                uint32_t signs = (a1 >> (7 * l)) & 127;
                signs |= (uint32_t)__builtin_parity(signs) << 7;
                for (int j = 0; j < 8; j++) {
                    const float mag = (float)((g >> (8 * j)) & 0xFF);
                    *y++ = db * mag * ((signs >> j) & 1 ? -1.f : 1.f);
                }
            }
        }
    }
}
