/*
 * simd/arm/neon/quant_act.c: the neon activation quantizers (Q8_0, Q8_1,
 * Q8_K), byte-identical to simd/scalar/quant_act.c (the oracle). The neon_dot
 * level inherits them (no dot products here).
 *
 * Why they match bit for bit: vmaxnm ignores NaN as fmaxf does and max is
 * order-free; d, 1/d and the f16 stores (fcvt, round to nearest even under the
 * default FPCR) are the scalar's operations; vcvtaq rounds half away from zero
 * like roundf (Q8_0, Q8_1) and vcvtnq half to even like the scalar's
 * 1.5 * 2^23 trick (Q8_K); every product is one f32 multiply as in the scalar;
 * Q8_1's s = f16((float)sum * d) uses the exact integer sum. Non-finite
 * input as the scalar's: a block with NaN or +-Inf (|x| <= FLT_MAX false in
 * some lane) becomes the canonical NaN block before any conversion, and a
 * block too small for 1/scale gets zero quants.
 */
#include <arm_neon.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "../../kernels.h"

void ts_quant_act_q8_0_neon(const float *restrict x, void *restrict y, int64_t k);
void ts_quant_act_q8_1_neon(const float *restrict x, void *restrict y, int64_t k);
void ts_quant_act_q8_k_neon(const float *restrict x, void *restrict y, int64_t k);

/* 4 x 4 int32 (each in [-127, 127]) -> 16 int8 in order. */
static inline int8x16_t narrow16(int32x4_t i0, int32x4_t i1, int32x4_t i2, int32x4_t i3)
{
    const int16x8_t lo = vcombine_s16(vmovn_s32(i0), vmovn_s32(i1));
    const int16x8_t hi = vcombine_s16(vmovn_s32(i2), vmovn_s32(i3));
    return vcombine_s8(vmovn_s16(lo), vmovn_s16(hi));
}

static inline uint16_t f32_to_f16_bits(float f)
{
    return vget_lane_u16(vreinterpret_u16_f16(vcvt_f16_f32(vdupq_n_f32(f))), 0);
}

/* All-ones lanes where |v| is finite: <= FLT_MAX is false for Inf and NaN. */
static inline uint32x4_t finite4(float32x4_t absv)
{
    return vcleq_f32(absv, vdupq_n_f32(FLT_MAX));
}

/* 1/d, or 0 when d is 0 or 1/d overflows (as the scalar's inverse()). */
static inline float inverse(float d)
{
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    return isinf(id) ? 0.0f : id;
}

/* One block of 32: qs = roundf(x / d) and *d = amax / 127 (f32); returns 0,
 * writing nothing, when the block holds a NaN or +-Inf. */
static inline int q8_32(const float *x, int8_t *qs, float *d_out)
{
    float32x4_t v[8];
    float32x4_t mx = vdupq_n_f32(0.0f);
    uint32x4_t ok = vdupq_n_u32(~0u);
    for (int i = 0; i < 8; i++) {
        v[i] = vld1q_f32(x + 4 * i);
        const float32x4_t a = vabsq_f32(v[i]);
        mx = vmaxnmq_f32(mx, a);
        ok = vandq_u32(ok, finite4(a));
    }
    if (vminvq_u32(ok) == 0)
        return 0;
    const float amax = vmaxnmvq_f32(mx);
    const float d = amax / 127.0f;
    const float id = inverse(d);
    for (int i = 0; i < 8; i += 4)
        vst1q_s8(qs + 4 * i, narrow16(vcvtaq_s32_f32(vmulq_n_f32(v[i], id)),
                                      vcvtaq_s32_f32(vmulq_n_f32(v[i + 1], id)),
                                      vcvtaq_s32_f32(vmulq_n_f32(v[i + 2], id)),
                                      vcvtaq_s32_f32(vmulq_n_f32(v[i + 3], id))));
    *d_out = d;
    return 1;
}

/* Contract: as ts_quant_act_q8_0_scalar; k % 32 == 0; no alignment assumed. */
void ts_quant_act_q8_0_neon(const float *restrict x, void *restrict y, int64_t k)
{
    ts_block_q8_0 *out = y;
    for (int64_t blk = 0; blk < k / TS_QK8_0; blk++, x += TS_QK8_0) {
        float d;
        if (!q8_32(x, out[blk].qs, &d)) {
            TS_NAN_BLOCK(out[blk]);
            continue;
        }
        out[blk].d = f32_to_f16_bits(d);
    }
}

/* Contract: as ts_quant_act_q8_1_scalar; k % 32 == 0; no alignment assumed. */
void ts_quant_act_q8_1_neon(const float *restrict x, void *restrict y, int64_t k)
{
    ts_block_q8_1 *out = y;
    for (int64_t blk = 0; blk < k / TS_QK8_1; blk++, x += TS_QK8_1) {
        float d;
        if (!q8_32(x, out[blk].qs, &d)) {
            TS_NAN_BLOCK(out[blk]); /* s = 0 as the scalar's */
            continue;
        }
        const int sum = vaddlvq_s8(vld1q_s8(out[blk].qs)) + vaddlvq_s8(vld1q_s8(out[blk].qs + 16));
        out[blk].d = f32_to_f16_bits(d);
        out[blk].s = f32_to_f16_bits((float)sum * d);
    }
}

/* Index of the first element of x[0..255] with |x| == amax (the scalar keeps
 * the first element of largest magnitude); amax is known to occur. */
static int first_amax(const float *x, float amax)
{
    const float32x4_t am = vdupq_n_f32(amax);
    for (int i = 0; i < TS_QK_K; i += 4)
        if (vmaxvq_u32(vceqq_f32(vabsq_f32(vld1q_f32(x + i)), am)))
            for (int j = i;; j++)
                if (x[j] == amax || x[j] == -amax)
                    return j;
    return 0;
}

/* Contract: as ts_quant_act_q8_k_scalar; k % 256 == 0; no alignment assumed. */
void ts_quant_act_q8_k_neon(const float *restrict x, void *restrict y, int64_t k)
{
    ts_block_q8_k *out = y;
    for (int64_t blk = 0; blk < k / TS_QK_K; blk++, x += TS_QK_K) {
        float32x4_t mx = vdupq_n_f32(0.0f);
        uint32x4_t ok = vdupq_n_u32(~0u);
        for (int i = 0; i < TS_QK_K; i += 4) {
            const float32x4_t a = vabsq_f32(vld1q_f32(x + i));
            mx = vmaxnmq_f32(mx, a);
            ok = vandq_u32(ok, finite4(a));
        }
        if (vminvq_u32(ok) == 0) { /* d = NaN, qs and bsums 0 */
            const uint32_t nan_bits = TS_F32_NAN_BITS;
            memset(&out[blk], 0, sizeof(out[blk]));
            memcpy(&out[blk].d, &nan_bits, 4);
            continue;
        }
        const float amax = vmaxnmvq_f32(mx);
        const float iscale = amax != 0.0f ? -127.0f / x[first_amax(x, amax)] : 0.0f;
        if (amax == 0.0f || isinf(iscale)) { /* all zero, or too small for -127 / max */
            memset(&out[blk], 0, sizeof(out[blk]));
            continue;
        }
        const int32x4_t cap = vdupq_n_s32(127);
        for (int i = 0; i < TS_QK_K; i += 16) {
            int32x4_t q[4];
            for (int j = 0; j < 4; j++)
                q[j] = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + i + 4 * j), iscale)),
                                 cap);
            vst1q_s8(out[blk].qs + i, narrow16(q[0], q[1], q[2], q[3]));
        }
        for (int g = 0; g < TS_QK_K / 16; g++)
            out[blk].bsums[g] = vaddlvq_s8(vld1q_s8(out[blk].qs + 16 * g));
        out[blk].d = 1.0f / iscale;
    }
}
