/*
 * simd/arm/neon/util.h: inline helpers of the neon level (ARMv8-A Advanced
 * SIMD, no dot product). Included only by files in this directory, which are
 * compiled with -march=armv8-a; never by a baseline file.
 */
#ifndef TS_SIMD_ARM_NEON_UTIL_H
#define TS_SIMD_ARM_NEON_UTIL_H

#include <arm_neon.h>

/* acc + exact s8 x s8 products of 16 lanes, folded into 4 int32 lanes.
 * vmull_s8 widens each product to int16 (|p| <= 16384: no sum in int16, so no
 * overflow for any input bytes), vpadalq_s16 adds pairs into int32. Which
 * lane gets which product differs from neon_dot's vdotq; the lane total (what
 * every caller reduces) is the same integer. */
static inline __attribute__((always_inline)) int32x4_t dot_s8x16(int32x4_t acc, int8x16_t a,
                                                                 int8x16_t b)
{
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
}

#endif
