/*
 * simd/arm/neon/register.c: overwrites the kernel-table slots the neon level
 * implements (quantized GEMM tiles for Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K..Q6_K,
 * Q8_0/Q8_1/Q8_K activation quantizers); every other slot (F32/F16/BF16, the
 * _R16 layouts) keeps the scalar kernel.
 */
#include "../../kernels.h"

void ts_simd_register_gemm_q_neon(ts_kernels *k);
void ts_quant_act_q8_0_neon(const float *restrict x, void *restrict y, int64_t k);
void ts_quant_act_q8_1_neon(const float *restrict x, void *restrict y, int64_t k);
void ts_quant_act_q8_k_neon(const float *restrict x, void *restrict y, int64_t k);

void ts_simd_register_neon(ts_kernels *k)
{
    ts_simd_register_gemm_q_neon(k);
    k->quant_act[TS_ACT_Q8_0] = ts_quant_act_q8_0_neon;
    k->quant_act[TS_ACT_Q8_1] = ts_quant_act_q8_1_neon;
    k->quant_act[TS_ACT_Q8_K] = ts_quant_act_q8_k_neon;
    k->quant_act_name[TS_ACT_Q8_0] = "ts_quant_act_q8_0_neon";
    k->quant_act_name[TS_ACT_Q8_1] = "ts_quant_act_q8_1_neon";
    k->quant_act_name[TS_ACT_Q8_K] = "ts_quant_act_q8_k_neon";
}
