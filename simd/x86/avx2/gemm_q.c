/*
 * simd/x86/avx2/gemm_q.c: the AVX2 level (AVX2+FMA+F16C) of the quantized
 * GEMM tiles and activation quantizers: simd/x86/gemm_x86.inc compiled with
 * this directory's flags, u8 x s8 dots via maddubs + madd.
 */
#define ISA_SFX avx2
#define TS_X86_SFX_STR "avx2"
#define TS_X86_VNNI 0
#include "../gemm_x86.inc"

void ts_simd_register_gemm_q_avx2(ts_kernels *k);
void ts_simd_register_gemm_q_avx2(ts_kernels *k)
{
    register_x86(k);
}
