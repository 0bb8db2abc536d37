/*
 * simd/x86/avx512/gemm_q_more.c: the AVX-512 level (F+BW+VL+DQ+VNNI) of the
 * GEMM tiles for Q5_0, Q4_1, Q5_1, Q2_K, Q3_K, Q5_K and IQ2_XXS:
 * simd/x86/gemm_x86_more.inc compiled with this directory's flags; the
 * 32-element types' u8 x s8 dots use vpdpbusd on ymm (K-quants and IQ2_XXS
 * keep maddubs + madd: the 16-bit scales fold into the madd). Results are
 * bit-identical to the avx2 level and to scalar.
 */
#define ISA_SFX avx512
#define TS_X86_SFX_STR "avx512"
#define TS_X86_VNNI 1
#include "../gemm_x86_more.inc"

void ts_simd_register_gemm_q_more_avx512(ts_kernels *k);
void ts_simd_register_gemm_q_more_avx512(ts_kernels *k)
{
    register_x86_more(k);
}
