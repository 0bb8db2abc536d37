/*
 * simd/x86/avx512/gemm_q.c: the AVX-512 level (F+BW+VL+DQ+VNNI) of the
 * quantized GEMM tiles and activation quantizers: simd/x86/gemm_x86.inc
 * compiled with this directory's flags; u8 x s8 dots of Q8_0/Q4_0 use
 * vpdpbusd on ymm (K-quants keep maddubs + madd: the 16-bit scales fold into
 * the madd for free). Results are bit-identical to the avx2 level.
 */
#define ISA_SFX avx512
#define TS_X86_SFX_STR "avx512"
#define TS_X86_VNNI 1
#include "../gemm_x86.inc"

void ts_simd_register_gemm_q_avx512(ts_kernels *k);
void ts_simd_register_gemm_q_avx512(ts_kernels *k)
{
    register_x86(k);
}
