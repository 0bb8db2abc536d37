/*
 * simd/scalar/register.c: fills every slot of the kernel table with the
 * scalar kernels (the complete reference level; other levels overwrite).
 */
#include "../kernels.h"
#include "../repack.h"

#define GEMM_DECL(name)                                                                       \
    void name(int64_t k, int64_t n_rows, int64_t n_tok, const void *restrict w,               \
              size_t w_stride, const void *restrict a, size_t a_stride, float *restrict y,     \
              size_t y_stride)
GEMM_DECL(ts_gemm_f32_f32_scalar);
GEMM_DECL(ts_gemm_f16_f32_scalar);
GEMM_DECL(ts_gemm_bf16_f32_scalar);
GEMM_DECL(ts_gemm_q4_0_q8_0_scalar);
GEMM_DECL(ts_gemm_q5_0_q8_0_scalar);
GEMM_DECL(ts_gemm_q8_0_q8_0_scalar);
GEMM_DECL(ts_gemm_q4_1_q8_1_scalar);
GEMM_DECL(ts_gemm_q5_1_q8_1_scalar);
GEMM_DECL(ts_gemm_q2_k_q8_k_scalar);
GEMM_DECL(ts_gemm_q3_k_q8_k_scalar);
GEMM_DECL(ts_gemm_q4_k_q8_k_scalar);
GEMM_DECL(ts_gemm_q5_k_q8_k_scalar);
GEMM_DECL(ts_gemm_q6_k_q8_k_scalar);
GEMM_DECL(ts_gemm_iq2_xxs_q8_k_scalar); /* gemm_iq2.c */
void ts_quant_act_q8_0_scalar(const float *restrict x, void *restrict y, int64_t k);
void ts_quant_act_q8_1_scalar(const float *restrict x, void *restrict y, int64_t k);
void ts_quant_act_q8_k_scalar(const float *restrict x, void *restrict y, int64_t k);

#define SET(qt, fn_, act_) k->gemm[qt] = (ts_gemm_slot){fn_, act_, 1, 1, #fn_}

void ts_simd_register_ops_scalar(ts_kernels *k); /* attention, per-token ops */

uint64_t ts_peak_int8_scalar(uint64_t n_iter);
uint64_t ts_peak_f32_scalar(uint64_t n_iter);

void ts_simd_register_scalar(ts_kernels *k)
{
    k->peak_int8 = ts_peak_int8_scalar;
    k->peak_name = "ts_peak_int8_scalar";
    k->peak_f32 = ts_peak_f32_scalar;
    k->peak_f32_name = "ts_peak_f32_scalar";
    ts_simd_register_ops_scalar(k);
    k->quant_act[TS_ACT_Q8_0] = ts_quant_act_q8_0_scalar;
    k->quant_act[TS_ACT_Q8_1] = ts_quant_act_q8_1_scalar;
    k->quant_act[TS_ACT_Q8_K] = ts_quant_act_q8_k_scalar;
    k->quant_act_name[TS_ACT_Q8_0] = "ts_quant_act_q8_0_scalar";
    k->quant_act_name[TS_ACT_Q8_1] = "ts_quant_act_q8_1_scalar";
    k->quant_act_name[TS_ACT_Q8_K] = "ts_quant_act_q8_k_scalar";
    SET(TS_QTYPE_F32, ts_gemm_f32_f32_scalar, TS_ACT_F32);
    SET(TS_QTYPE_F16, ts_gemm_f16_f32_scalar, TS_ACT_F32);
    SET(TS_QTYPE_BF16, ts_gemm_bf16_f32_scalar, TS_ACT_F32);
    SET(TS_QTYPE_Q4_0, ts_gemm_q4_0_q8_0_scalar, TS_ACT_Q8_0);
    SET(TS_QTYPE_Q5_0, ts_gemm_q5_0_q8_0_scalar, TS_ACT_Q8_0);
    SET(TS_QTYPE_Q8_0, ts_gemm_q8_0_q8_0_scalar, TS_ACT_Q8_0);
    SET(TS_QTYPE_Q4_1, ts_gemm_q4_1_q8_1_scalar, TS_ACT_Q8_1);
    SET(TS_QTYPE_Q5_1, ts_gemm_q5_1_q8_1_scalar, TS_ACT_Q8_1);
    SET(TS_QTYPE_Q2_K, ts_gemm_q2_k_q8_k_scalar, TS_ACT_Q8_K);
    SET(TS_QTYPE_Q3_K, ts_gemm_q3_k_q8_k_scalar, TS_ACT_Q8_K);
    SET(TS_QTYPE_Q4_K, ts_gemm_q4_k_q8_k_scalar, TS_ACT_Q8_K);
    SET(TS_QTYPE_Q5_K, ts_gemm_q5_k_q8_k_scalar, TS_ACT_Q8_K);
    SET(TS_QTYPE_Q6_K, ts_gemm_q6_k_q8_k_scalar, TS_ACT_Q8_K);
    SET(TS_QTYPE_IQ2_XXS, ts_gemm_iq2_xxs_q8_k_scalar, TS_ACT_Q8_K);
    /* _R16 twins: row tiles must start at multiples of 16 (mr = 16). */
#define R16(rt, fn, act) k->gemm[rt] = (ts_gemm_slot){fn, act, 16, 1, #fn}
    R16(TS_QTYPE_Q8_0_R16, ts_gemm_q8_0_r16_q8_0_scalar, TS_ACT_Q8_0);
    R16(TS_QTYPE_Q4_0_R16, ts_gemm_q4_0_r16_q8_0_scalar, TS_ACT_Q8_0);
    R16(TS_QTYPE_Q4_K_R16, ts_gemm_q4_k_r16_q8_k_scalar, TS_ACT_Q8_K);
    R16(TS_QTYPE_Q6_K_R16, ts_gemm_q6_k_r16_q8_k_scalar, TS_ACT_Q8_K);
    R16(TS_QTYPE_Q5_0_R16, ts_gemm_q5_0_r16_q8_0_scalar, TS_ACT_Q8_0);
    R16(TS_QTYPE_Q5_K_R16, ts_gemm_q5_k_r16_q8_k_scalar, TS_ACT_Q8_K);
    R16(TS_QTYPE_Q3_K_R16, ts_gemm_q3_k_r16_q8_k_scalar, TS_ACT_Q8_K);
    R16(TS_QTYPE_Q2_K_R16, ts_gemm_q2_k_r16_q8_k_scalar, TS_ACT_Q8_K);
    R16(TS_QTYPE_Q4_1_R16, ts_gemm_q4_1_r16_q8_1_scalar, TS_ACT_Q8_1);
    R16(TS_QTYPE_Q5_1_R16, ts_gemm_q5_1_r16_q8_1_scalar, TS_ACT_Q8_1);
#undef R16
}
