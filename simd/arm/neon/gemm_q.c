/*
 * simd/arm/neon/gemm_q.c: the neon level (ARMv8-A Advanced SIMD) of the
 * quantized GEMM tiles: simd/arm/gemm_arm.inc compiled with this directory's
 * -march=armv8-a, s8 x s8 dots via vmull + vpadal (util.h). Bit-identical to
 * the scalar level.
 */
#define ISA_SFX neon
#include "util.h"
#include "../gemm_arm.inc"

void ts_simd_register_gemm_q_neon(ts_kernels *k);
void ts_simd_register_gemm_q_neon(ts_kernels *k)
{
    register_arm_gemm_q(k);
}
