/*
 * simd/x86/amx/register.c: overwrites the kernel-table slots the amx level
 * implements (the _R16 GEMM tiles on AMX-INT8, and
 * the int8 peak probe); every other slot keeps
 * the avx512 level's kernel. Registered only when simd/dispatch.c found AMX
 * usable (CPUID, XCR0 and the arch_prctl XTILEDATA permission).
 */
#include "../../kernels.h"
#include "tile.h"

_Thread_local const ts_tile_cfg *ts_tile_cfg_cur;

void ts_simd_register_gemm_r16_amx(ts_kernels *k);
uint64_t ts_peak_int8_amx(uint64_t n_iter);

void ts_simd_register_amx(ts_kernels *k)
{
    ts_simd_register_gemm_r16_amx(k);
    k->peak_int8 = ts_peak_int8_amx;
    k->peak_name = "ts_peak_int8_amx";
}
