/*
 * tests/tolerances.h: named tolerances per (format, op). A float output y is
 * accepted against y_ref when |y - y_ref| <= atol + rtol * sum|w_i x_i|
 * (the absolute sum, so cancellation cannot make the bound vanish); rtol grows
 * about as sqrt(number of blocks), see ts_tol_rtol().
 */
#ifndef TS_TOLERANCES_H
#define TS_TOLERANCES_H

#include <math.h>
#include <stdint.h>

/* Absolute floor: outputs of all-zero data are exactly 0; this only absorbs
 * denormal-level noise. */
#define TS_TOL_ATOL 1e-6

/* Integer-exact block dots (Q4_0 Q5_0 Q8_0 x Q8_0, K-quants x Q8_K): per block
 * one rounding of dw*da, one of (float)isum (only above 2^24), one fma; the
 * reference uses the same dequantized values in double. A few ulps per block. */
#define TS_TOL_QDOT_RTOL 4e-7

/* Q4_1/Q5_1 x Q8_1: the reference uses the stored s = f16(d * sum(q)) for the
 * min term, as the format defines; the kernel adds one more rounding (m * s)
 * per block than the integer-only types. */
#define TS_TOL_Q8_1_RTOL 6e-7

/* IQ2_XXS x Q8_K (scalar kernel vs quant/'s dequantizer): the kernel's
 * integer sum is exact and scaled once per super-block by d/8 (exact), while
 * the dequantizer rounds d * (0.5 + ls) and then * mag: two roundings per
 * weight on top of the integer types' per-block ones. */
#define TS_TOL_IQ2_XXS_RTOL 5e-7

/* F32/F16/BF16 x F32: 16 lane-partial fmaf sums over k mod 16, combined in a fixed
 * halving tree (simd/kernels.h); the bound is that of a sequential sum. */
#define TS_TOL_FDOT_RTOL 1.2e-7

/* Across ISA levels (vs the scalar level): the x86 kernels follow the same
 * canonical order and are bit-identical in practice; the bound is still the
 * documented one so that a future level with another order passes. */
static inline double ts_tol_rtol(double base, int64_t n_blocks)
{
    return base * sqrt((double)n_blocks + 1.0);
}

#endif
