/*
 * simd/x86/avx2/register.c: overwrites the kernel-table slots the avx2 level
 * implements (quantized GEMM tiles for Q8_0 Q4_0 Q4_K Q6_K, Q8_0/Q8_K
 * activation quantizers); every other slot keeps the previous level's kernel.
 */
#include "../../kernels.h"

void ts_simd_register_gemm_q_avx2(ts_kernels *k);
void ts_simd_register_gemm_q_more_avx2(ts_kernels *k); /* gemm_q_more.c */
void ts_simd_register_gemm_f_avx2(ts_kernels *k); /* F32 F16 BF16: gemm_f.c */

void ts_simd_register_ops_avx2(ts_kernels *k); /* attention, per-token: elementwise.c */

uint64_t ts_peak_int8_avx2(uint64_t n_iter);
uint64_t ts_peak_f32_avx2(uint64_t n_iter);

void ts_simd_register_avx2(ts_kernels *k)
{
    k->peak_int8 = ts_peak_int8_avx2;
    k->peak_name = "ts_peak_int8_avx2";
    k->peak_f32 = ts_peak_f32_avx2;
    k->peak_f32_name = "ts_peak_f32_avx2";
    ts_simd_register_ops_avx2(k);
    ts_simd_register_gemm_q_avx2(k);
    ts_simd_register_gemm_q_more_avx2(k);
    ts_simd_register_gemm_f_avx2(k);
}
