/*
 * quant/legacy.c: scalar quantize/dequantize for the 32-element block
 * formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q8_1.
 *
 * Owns: the reference rounding of these formats. Each quantizer reproduces
 * llama.cpp's quantize_row_*_ref bit for bit: the scale is computed in
 * float exactly as ggml does (max / -8, (max - min) / 15, amax / 127, ...),
 * multiplied by its float reciprocal, and rounded the same way (truncation
 * after +x.5 for the 4/5-bit formats, roundf for the 8-bit ones), then
 * stored through ts_f32_to_f16. Does not own any SIMD variant.
 *
 * Non-finite input (the rule in quant.h): a block holding NaN or +-Inf is
 * written as d = TS_F16_NAN and zeros; where ggml's float -> int casts would
 * overflow on finite input (1/d = inf for tiny blocks; (max - min) = inf in
 * Q4_1/Q5_1) the inverse is taken as 0 and the casts saturate (trunc_clamp),
 * which for every input ggml handles gives ggml's result.
 *
 * Layout reminder: in the 4/5-bit formats byte j holds element j in its low
 * nibble and element j + 16 in its high nibble; bit j of qh is element j's
 * fifth bit.
 */
#include "quant.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Signed value with the largest magnitude (first one on ties), 0 if none. */
static float block_absmax_signed(const float *x, int n, float *amax_out)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    *amax_out = amax;
    return max;
}

static void block_min_max(const float *x, int n, float *min_out, float *max_out)
{
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < min)
            min = x[j];
        if (x[j] > max)
            max = x[j];
    }
    *min_out = min;
    *max_out = max;
}

/* 1/d, or 0 when d is 0 or so small (|d| < 2^-128) that 1/d overflows: the
 * quants of such a block are 0, as its f16 d is. */
static float inverse(float d)
{
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    return isinf(id) ? 0.0f : id;
}

/* ggml's (int)v then clamp to hi, for v that may be out of int range or NaN
 * (NaN gives 0). Equal to the plain cast wherever that one is defined and v
 * > -1, which holds for every finite block (v >= 0.5 - rounding). */
static int trunc_clamp(float v, int hi)
{
    return v >= (float)hi ? hi : v > 0.0f ? (int)v : 0;
}

/* Q4_0: d = signed absmax / -8, so the largest value maps to -8 exactly;
 * q = trunc(x/d + 8.5) clamped to 15. */
void ts_quant_q4_0_scalar(const float *x, ts_block_q4_0 *y, int64_t n)
{
    for (int64_t blk = 0; blk < n / TS_QK4_0; blk++, x += TS_QK4_0) {
        if (ts_first_nonfinite(x, TS_QK4_0) >= 0) {
            TS_NAN_BLOCK(y[blk]);
            continue;
        }
        float amax;
        const float max = block_absmax_signed(x, TS_QK4_0, &amax);
        const float d = max / -8;
        const float id = inverse(d);
        y[blk].d = ts_f32_to_f16(d);
        for (int j = 0; j < TS_QK4_0 / 2; j++) {
            const int q0 = trunc_clamp(x[j] * id + 8.5f, 15);
            const int q1 = trunc_clamp(x[j + TS_QK4_0 / 2] * id + 8.5f, 15);
            y[blk].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void ts_quant_q4_1_scalar(const float *x, ts_block_q4_1 *y, int64_t n)
{
    for (int64_t blk = 0; blk < n / TS_QK4_1; blk++, x += TS_QK4_1) {
        if (ts_first_nonfinite(x, TS_QK4_1) >= 0) {
            TS_NAN_BLOCK(y[blk]);
            continue;
        }
        float min, max;
        block_min_max(x, TS_QK4_1, &min, &max);
        const float d = (max - min) / 15;
        const float id = inverse(d);
        y[blk].d = ts_f32_to_f16(d);
        y[blk].m = ts_f32_to_f16(min);
        for (int j = 0; j < TS_QK4_1 / 2; j++) {
            const int q0 = trunc_clamp((x[j] - min) * id + 0.5f, 15);
            const int q1 = trunc_clamp((x[j + TS_QK4_1 / 2] - min) * id + 0.5f, 15);
            y[blk].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void ts_quant_q5_0_scalar(const float *x, ts_block_q5_0 *y, int64_t n)
{
    for (int64_t blk = 0; blk < n / TS_QK5_0; blk++, x += TS_QK5_0) {
        if (ts_first_nonfinite(x, TS_QK5_0) >= 0) {
            TS_NAN_BLOCK(y[blk]);
            continue;
        }
        float amax;
        const float max = block_absmax_signed(x, TS_QK5_0, &amax);
        const float d = max / -16;
        const float id = inverse(d);
        y[blk].d = ts_f32_to_f16(d);
        uint32_t qh = 0;
        for (int j = 0; j < TS_QK5_0 / 2; j++) {
            const int q0 = trunc_clamp(x[j] * id + 16.5f, 31);
            const int q1 = trunc_clamp(x[j + TS_QK5_0 / 2] * id + 16.5f, 31);
            y[blk].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= (uint32_t)((q0 >> 4) & 1) << j;
            qh |= (uint32_t)((q1 >> 4) & 1) << (j + TS_QK5_0 / 2);
        }
        for (int b = 0; b < 4; b++)
            y[blk].qh[b] = (uint8_t)(qh >> (8 * b));
    }
}

/* Q5_1 has no clamp in ggml: (max - min) * (1/d) rounds to at most 31.5, so
 * trunc_clamp's bound never binds on a finite block. */
void ts_quant_q5_1_scalar(const float *x, ts_block_q5_1 *y, int64_t n)
{
    for (int64_t blk = 0; blk < n / TS_QK5_1; blk++, x += TS_QK5_1) {
        if (ts_first_nonfinite(x, TS_QK5_1) >= 0) {
            TS_NAN_BLOCK(y[blk]);
            continue;
        }
        float min, max;
        block_min_max(x, TS_QK5_1, &min, &max);
        const float d = (max - min) / 31;
        const float id = inverse(d);
        y[blk].d = ts_f32_to_f16(d);
        y[blk].m = ts_f32_to_f16(min);
        uint32_t qh = 0;
        for (int j = 0; j < TS_QK5_1 / 2; j++) {
            const int q0 = trunc_clamp((x[j] - min) * id + 0.5f, 31);
            const int q1 = trunc_clamp((x[j + TS_QK5_1 / 2] - min) * id + 0.5f, 31);
            y[blk].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= (uint32_t)((q0 >> 4) & 1) << j;
            qh |= (uint32_t)((q1 >> 4) & 1) << (j + TS_QK5_1 / 2);
        }
        for (int b = 0; b < 4; b++)
            y[blk].qh[b] = (uint8_t)(qh >> (8 * b));
    }
}

void ts_quant_q8_0_scalar(const float *x, ts_block_q8_0 *y, int64_t n)
{
    for (int64_t blk = 0; blk < n / TS_QK8_0; blk++, x += TS_QK8_0) {
        if (ts_first_nonfinite(x, TS_QK8_0) >= 0) {
            TS_NAN_BLOCK(y[blk]);
            continue;
        }
        float amax = 0.0f;
        for (int j = 0; j < TS_QK8_0; j++)
            amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
        const float d = amax / 127;
        const float id = inverse(d);
        y[blk].d = ts_f32_to_f16(d);
        for (int j = 0; j < TS_QK8_0; j++)
            y[blk].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

/* Q8_1 additionally stores s = d * sum(q), with d the unrounded float scale
 * (not the f16 one), as ggml does. */
void ts_quant_q8_1_scalar(const float *x, ts_block_q8_1 *y, int64_t n)
{
    for (int64_t blk = 0; blk < n / TS_QK8_1; blk++, x += TS_QK8_1) {
        if (ts_first_nonfinite(x, TS_QK8_1) >= 0) {
            TS_NAN_BLOCK(y[blk]); /* s = 0 too: the NaN comes from d alone */
            continue;
        }
        float amax = 0.0f;
        for (int j = 0; j < TS_QK8_1; j++)
            amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
        const float d = amax / 127;
        const float id = inverse(d);
        y[blk].d = ts_f32_to_f16(d);
        int sum = 0;
        for (int j = 0; j < TS_QK8_1; j++) {
            y[blk].qs[j] = (int8_t)roundf(x[j] * id);
            sum += y[blk].qs[j];
        }
        y[blk].s = ts_f32_to_f16((float)sum * d);
    }
}

void ts_dequant_q4_0_scalar(const ts_block_q4_0 *x, float *y, int64_t n)
{
    for (int64_t blk = 0; blk < n / TS_QK4_0; blk++, y += TS_QK4_0) {
        const float d = ts_f16_to_f32(x[blk].d);
        for (int j = 0; j < TS_QK4_0 / 2; j++) {
            y[j] = (float)((x[blk].qs[j] & 0x0F) - 8) * d;
            y[j + TS_QK4_0 / 2] = (float)((x[blk].qs[j] >> 4) - 8) * d;
        }
    }
}

void ts_dequant_q4_1_scalar(const ts_block_q4_1 *x, float *y, int64_t n)
{
    for (int64_t blk = 0; blk < n / TS_QK4_1; blk++, y += TS_QK4_1) {
        const float d = ts_f16_to_f32(x[blk].d);
        const float m = ts_f16_to_f32(x[blk].m);
        for (int j = 0; j < TS_QK4_1 / 2; j++) {
            y[j] = (float)(x[blk].qs[j] & 0x0F) * d + m;
            y[j + TS_QK4_1 / 2] = (float)(x[blk].qs[j] >> 4) * d + m;
        }
    }
}

static uint32_t load_qh(const uint8_t qh[4])
{
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 |
           (uint32_t)qh[3] << 24;
}

void ts_dequant_q5_0_scalar(const ts_block_q5_0 *x, float *y, int64_t n)
{
    for (int64_t blk = 0; blk < n / TS_QK5_0; blk++, y += TS_QK5_0) {
        const float d = ts_f16_to_f32(x[blk].d);
        const uint32_t qh = load_qh(x[blk].qh);
        for (int j = 0; j < TS_QK5_0 / 2; j++) {
            const int h0 = (int)((qh >> j) & 1) << 4;
            const int h1 = (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = (float)(((x[blk].qs[j] & 0x0F) | h0) - 16) * d;
            y[j + TS_QK5_0 / 2] = (float)(((x[blk].qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

void ts_dequant_q5_1_scalar(const ts_block_q5_1 *x, float *y, int64_t n)
{
    for (int64_t blk = 0; blk < n / TS_QK5_1; blk++, y += TS_QK5_1) {
        const float d = ts_f16_to_f32(x[blk].d);
        const float m = ts_f16_to_f32(x[blk].m);
        const uint32_t qh = load_qh(x[blk].qh);
        for (int j = 0; j < TS_QK5_1 / 2; j++) {
            const int h0 = (int)((qh >> j) & 1) << 4;
            const int h1 = (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = (float)((x[blk].qs[j] & 0x0F) | h0) * d + m;
            y[j + TS_QK5_1 / 2] = (float)((x[blk].qs[j] >> 4) | h1) * d + m;
        }
    }
}

void ts_dequant_q8_0_scalar(const ts_block_q8_0 *x, float *y, int64_t n)
{
    for (int64_t blk = 0; blk < n / TS_QK8_0; blk++, y += TS_QK8_0) {
        const float d = ts_f16_to_f32(x[blk].d);
        for (int j = 0; j < TS_QK8_0; j++)
            y[j] = (float)x[blk].qs[j] * d;
    }
}
