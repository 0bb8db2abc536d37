/*
 * simd/x86/amx/register.c: overwrites the kernel-table slots the amx level
 * implements (the Q8_0_R16 GEMM tile on AMX-INT8); every other slot keeps
 * the avx512 level's kernel. Registered only when simd/dispatch.c found AMX
 * usable (CPUID, XCR0 and the arch_prctl XTILEDATA permission).
 */
#include "../../kernels.h"

void ts_simd_register_gemm_r16_amx(ts_kernels *k);

void ts_simd_register_amx(ts_kernels *k)
{
    ts_simd_register_gemm_r16_amx(k);
}
