/*
 * simd/arm/neon_dot/gemm_q.c: the neon_dot level (ARMv8.2-A + dotprod) of
 * the quantized GEMM tiles: simd/arm/gemm_arm.inc compiled with this
 * directory's -march=armv8.2-a+dotprod, s8 x s8 dots via sdot (util.h).
 * Bit-identical to the neon and scalar levels.
 */
#define ISA_SFX neon_dot
#include "util.h"
#include "../gemm_arm.inc"

void ts_simd_register_gemm_q_neon_dot(ts_kernels *k);
void ts_simd_register_gemm_q_neon_dot(ts_kernels *k)
{
    register_arm_gemm_q(k);
}
