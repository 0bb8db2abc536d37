/*
 * simd/arm/neon_dot/register.c: overwrites the kernel-table slots the
 * neon_dot level implements (quantized GEMM tiles for Q4_0 Q4_1 Q5_0 Q5_1
 * Q8_0 Q2_K..Q6_K).
 * The activation quantizers have no dot products: the neon ones stay.
 */
#include "../../kernels.h"

void ts_simd_register_gemm_q_neon_dot(ts_kernels *k);

void ts_simd_register_neon_dot(ts_kernels *k)
{
    ts_simd_register_gemm_q_neon_dot(k);
}
