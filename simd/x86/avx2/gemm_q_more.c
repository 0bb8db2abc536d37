/*
 * simd/x86/avx2/gemm_q_more.c: the AVX2 level (AVX2+FMA+F16C) of the GEMM
 * tiles for Q5_0, Q4_1, Q5_1, Q2_K, Q3_K, Q5_K and IQ2_XXS:
 * simd/x86/gemm_x86_more.inc compiled with this directory's flags, u8 x s8
 * dots via maddubs + madd.
 */
#define ISA_SFX avx2
#define TS_X86_SFX_STR "avx2"
#define TS_X86_VNNI 0
#include "../gemm_x86_more.inc"

void ts_simd_register_gemm_q_more_avx2(ts_kernels *k);
void ts_simd_register_gemm_q_more_avx2(ts_kernels *k)
{
    register_x86_more(k);
}
