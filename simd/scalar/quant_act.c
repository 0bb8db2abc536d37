/*
 * simd/scalar/quant_act.c: scalar activation quantizers (Q8_0, Q8_1, Q8_K).
 *
 * The oracle for every level's quantizer: each one must produce the same
 * bytes. Rounding follows llama.cpp's quantize_row_*_ref: Q8_0/Q8_1 use
 * roundf (half away from zero) of x * (1/d), d = amax / 127 stored as f16;
 * Q8_K uses round-half-even of x * (-127 / max), max being the first element
 * of largest magnitude, with d = 1 / iscale stored as f32.
 *
 * Non-finite activations (the rule of quant/quant.h, which ggml leaves
 * undefined): a block holding any NaN or +-Inf is written as d = the
 * canonical quiet NaN (f16 0x7e00; f32 0x7fc00000 for Q8_K) with all quants,
 * Q8_1's s and Q8_K's bsums zero, so every dot product with the block is NaN
 * and the NaN reaches exactly the outputs that read that token's row. A block
 * too small for 1/scale to be a float (amax below about 3.7e-37) gets zero
 * quants. So no float -> int conversion ever sees Inf or NaN, and the bytes
 * are the same on every level whatever the NaN's payload or position.
 */
#include <math.h>
#include <string.h>

#include "../kernels.h"
#include "util.h"

void ts_quant_act_q8_0_scalar(const float *restrict x, void *restrict y, int64_t k);
void ts_quant_act_q8_1_scalar(const float *restrict x, void *restrict y, int64_t k);
void ts_quant_act_q8_k_scalar(const float *restrict x, void *restrict y, int64_t k);

/* True when x[0 .. n) holds a NaN or +-Inf (exponent bits all ones). */
static int has_nonfinite(const float *x, int n)
{
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        if ((u & 0x7f800000u) == 0x7f800000u)
            return 1;
    }
    return 0;
}

/* 1/d, or 0 when d is 0 or 1/d overflows (a block below ~3.7e-37: its f16 d
 * is 0 too, so zero quants lose nothing). */
static float inverse(float d)
{
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    return isinf(id) ? 0.0f : id;
}

/* x: k floats (k % 32 == 0) -> k/32 ts_block_q8_0. */
void ts_quant_act_q8_0_scalar(const float *restrict x, void *restrict y, int64_t k)
{
    ts_block_q8_0 *out = y;
    for (int64_t blk = 0; blk < k / TS_QK8_0; blk++, x += TS_QK8_0) {
        if (has_nonfinite(x, TS_QK8_0)) {
            TS_NAN_BLOCK(out[blk]);
            continue;
        }
        float amax = 0.0f;
        for (int i = 0; i < TS_QK8_0; i++)
            amax = fmaxf(amax, fabsf(x[i]));
        const float d = amax / 127.0f;
        const float id = inverse(d);
        out[blk].d = s_f32_to_f16(d);
        for (int i = 0; i < TS_QK8_0; i++)
            out[blk].qs[i] = (int8_t)roundf(x[i] * id);
    }
}

/* x: k floats (k % 32 == 0) -> k/32 ts_block_q8_1 (s = f16(d * sum(qs))). */
void ts_quant_act_q8_1_scalar(const float *restrict x, void *restrict y, int64_t k)
{
    ts_block_q8_1 *out = y;
    for (int64_t blk = 0; blk < k / TS_QK8_1; blk++, x += TS_QK8_1) {
        if (has_nonfinite(x, TS_QK8_1)) {
            TS_NAN_BLOCK(out[blk]); /* s = 0: the NaN comes from d alone */
            continue;
        }
        float amax = 0.0f;
        for (int i = 0; i < TS_QK8_1; i++)
            amax = fmaxf(amax, fabsf(x[i]));
        const float d = amax / 127.0f;
        const float id = inverse(d);
        int sum = 0;
        out[blk].d = s_f32_to_f16(d);
        for (int i = 0; i < TS_QK8_1; i++) {
            out[blk].qs[i] = (int8_t)roundf(x[i] * id);
            sum += out[blk].qs[i];
        }
        out[blk].s = s_f32_to_f16((float)sum * d);
    }
}

/* x: k floats (k % 256 == 0) -> k/256 ts_block_q8_k with bsums per 16. */
void ts_quant_act_q8_k_scalar(const float *restrict x, void *restrict y, int64_t k)
{
    ts_block_q8_k *out = y;
    for (int64_t blk = 0; blk < k / TS_QK_K; blk++, x += TS_QK_K) {
        if (has_nonfinite(x, TS_QK_K)) {
            const uint32_t nan_bits = TS_F32_NAN_BITS;
            memset(&out[blk], 0, sizeof(out[blk]));
            memcpy(&out[blk].d, &nan_bits, 4);
            continue;
        }
        float amax = 0.0f, max = 0.0f;
        for (int i = 0; i < TS_QK_K; i++)
            if (fabsf(x[i]) > amax) {
                amax = fabsf(x[i]);
                max = x[i];
            }
        const float iscale = amax != 0.0f ? -127.0f / max : 0.0f;
        if (amax == 0.0f || isinf(iscale)) { /* all zero, or too small for -127 / max */
            memset(&out[blk], 0, sizeof(out[blk]));
            continue;
        }
        for (int i = 0; i < TS_QK_K; i++) {
            /* Round half to even via the 1.5 * 2^23 trick (|v| <= 127). */
            float v = iscale * x[i] + 12582912.0f;
            int32_t bits;
            memcpy(&bits, &v, 4);
            int q = (bits & 0x007fffff) - 0x00400000;
            out[blk].qs[i] = (int8_t)(q < 127 ? q : 127);
        }
        for (int g = 0; g < TS_QK_K / 16; g++) {
            int sum = 0;
            for (int i = 0; i < 16; i++)
                sum += out[blk].qs[g * 16 + i];
            out[blk].bsums[g] = (int16_t)sum;
        }
        out[blk].d = 1.0f / iscale;
    }
}
