/*
 * tests/amx_emul.c: the amx level's kernels compiled against tile.h's
 * emulated tiles (TS_AMX_EMULATE), so hosts without AMX (the CI box) check
 * their layouts, expansion and float steps against the scalar twins. Built
 * with the avx512 flags (the kernels' non-tile parts are AVX-512); callers run
 * it only where ts_isa_detect() reports avx512 or better.
 */
#define TS_AMX_EMULATE 1
#define ts_gemm_q8_0_r16_q8_0_amx ts_emu_gemm_q8_0_r16_q8_0_amx
#define ts_gemm_q4_0_r16_q8_0_amx ts_emu_gemm_q4_0_r16_q8_0_amx
#define ts_gemm_q5_0_r16_q8_0_amx ts_emu_gemm_q5_0_r16_q8_0_amx
#define ts_gemm_q4_k_r16_q8_k_amx ts_emu_gemm_q4_k_r16_q8_k_amx
#define ts_gemm_q5_k_r16_q8_k_amx ts_emu_gemm_q5_k_r16_q8_k_amx
#define ts_gemm_q3_k_r16_q8_k_amx ts_emu_gemm_q3_k_r16_q8_k_amx
#define ts_gemm_q6_k_r16_q8_k_amx ts_emu_gemm_q6_k_r16_q8_k_amx
#define ts_simd_register_gemm_r16_amx ts_test_amx_emul_register
#include "../simd/x86/amx/gemm_r16.c"
