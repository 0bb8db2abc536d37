/*
 * simd/scalar/exp_canon.h: the canonical exp of the attention and SwiGLU
 * kernels (scalar reference; every SIMD level repeats these exact steps).
 *
 * Why our own exp: libm's expf differs between libraries and cannot be
 * vectorised bit for bit; this one is a fixed sequence of correctly rounded
 * operations (fmaf, *, +, -), so any ISA that performs the same sequence gets
 * the same bits. Cephes-style: n = rint(x * log2 e) by the 1.5 * 2^23 trick,
 * r = x - n * ln2 (two-part constant), a degree-5 minimax polynomial, times
 * 2^n built in the exponent field. About 2 ulp on [-87.3, 88]; x < -87.33654
 * (-inf included) gives +0, x > 88 gives +inf, NaN gives NaN.
 */
#ifndef TS_SIMD_SCALAR_EXP_CANON_H
#define TS_SIMD_SCALAR_EXP_CANON_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define TS_EXP_LO (-87.33654f)
#define TS_EXP_HI 88.0f
#define TS_EXP_MAGIC 12582912.0f /* 1.5 * 2^23: adding it rounds to an integer */
#define TS_EXP_LOG2E 1.44269504088896341f
#define TS_EXP_C1 (-0.693359375f)  /* -ln2, high part (exact in 9 bits) */
#define TS_EXP_C2 2.12194440e-4f   /* -ln2 - C1, low part, negated */
#define TS_EXP_P0 1.9875691500e-4f
#define TS_EXP_P1 1.3981999507e-3f
#define TS_EXP_P2 8.3334519073e-3f
#define TS_EXP_P3 4.1665795894e-2f
#define TS_EXP_P4 1.6666665459e-1f
#define TS_EXP_P5 5.0000001201e-1f
/* bits(t) - bits(MAGIC) = n; + 127 is the exponent bias. */
#define TS_EXP_BIAS (127u - 0x4b400000u)

static inline float s_exp_canon(float x)
{
    float t = fmaf(x, TS_EXP_LOG2E, TS_EXP_MAGIC);
    float n = t - TS_EXP_MAGIC;
    float r = fmaf(n, TS_EXP_C1, x);
    r = fmaf(n, TS_EXP_C2, r);
    float p = fmaf(TS_EXP_P0, r, TS_EXP_P1);
    p = fmaf(p, r, TS_EXP_P2);
    p = fmaf(p, r, TS_EXP_P3);
    p = fmaf(p, r, TS_EXP_P4);
    p = fmaf(p, r, TS_EXP_P5);
    float r2 = r * r;
    p = fmaf(p, r2, r);
    p = p + 1.0f;
    uint32_t tb, sb;
    memcpy(&tb, &t, 4);
    sb = (tb + TS_EXP_BIAS) << 23;
    float sc;
    memcpy(&sc, &sb, 4);
    float y = p * sc;
    if (x < TS_EXP_LO)
        y = 0.0f;
    if (x > TS_EXP_HI)
        y = INFINITY;
    return y;
}

#endif
