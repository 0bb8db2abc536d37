/*
 * tests/levels.h: the kernel ISA levels this host can run, lowest first, for
 * tests that check every level against the scalar twin (STYLE section 11).
 * One list for every test file, so a new level (amx, neon_dot) is tested
 * everywhere at once.
 */
#ifndef TS_TEST_LEVELS_H
#define TS_TEST_LEVELS_H

#include "../simd/kernels.h"

static inline int ts_test_levels(ts_isa *out)
{
    ts_isa det = ts_isa_detect();
    int n = 0;
    out[n++] = TS_ISA_SCALAR;
    if (det >= TS_ISA_AVX2 && det < TS_ISA_NEON)
        out[n++] = TS_ISA_AVX2;
    if (det >= TS_ISA_AVX512 && det < TS_ISA_NEON)
        out[n++] = TS_ISA_AVX512;
    if (det == TS_ISA_AMX) /* only where CPUID, XCR0 and arch_prctl allow it */
        out[n++] = TS_ISA_AMX;
    if (det >= TS_ISA_NEON) /* aarch64 ladder */
        out[n++] = TS_ISA_NEON;
    if (det >= TS_ISA_NEON_DOT)
        out[n++] = TS_ISA_NEON_DOT;
    return n;
}

#endif
