/*
 * simd/arm/neon_dot/util.h: inline helpers of the neon_dot level (ARMv8.2-A
 * with the dot-product extension). Included only by files in this directory,
 * which are compiled with -march=armv8.2-a+dotprod (per-file flags: GCC 12
 * fails to inline vdotq_s32 under __attribute__((target("+dotprod")))).
 */
#ifndef TS_SIMD_ARM_NEON_DOT_UTIL_H
#define TS_SIMD_ARM_NEON_DOT_UTIL_H

#include <arm_neon.h>

/* acc + s8 x s8 dot of 16 lanes: lane i gets the sum of products 4i..4i+3
 * (sdot, exact in int32). */
static inline __attribute__((always_inline)) int32x4_t dot_s8x16(int32x4_t acc, int8x16_t a,
                                                                 int8x16_t b)
{
    return vdotq_s32(acc, a, b);
}

#endif
