/*
 * simd/scalar/util.h: scalar helpers shared by the scalar kernels.
 * Half-precision conversions here are bit-exact with ggml's scalar ones
 * (f32 -> f16 rounds to nearest even); simd/ may not link quant/'s functions
 * (STYLE §2: simd -> quant is layout headers only), hence this copy.
 */
#ifndef TS_SIMD_SCALAR_UTIL_H
#define TS_SIMD_SCALAR_UTIL_H

#include <stdint.h>
#include <string.h>

static inline float s_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    float f;
    if (exp == 0) {
        f = (float)man * 0x1p-24f; /* zero or subnormal: exact */
        memcpy(&bits, &f, 4);
        bits |= sign;
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    }
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t s_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu)); /* NaN stays NaN */
    if (ax >= 0x477ff000u)
        return sign | 0x7c00u; /* >= 65520 rounds to infinity */
    if (ax < 0x38800000u) {
        /* Below 2^-14: a half subnormal. |f| * 2^24 is exact; adding and
         * subtracting 2^23 rounds it to an integer, to nearest even. */
        float v = (ax == 0) ? 0.0f : (f < 0 ? -f : f) * 0x1p24f;
        float r = (v + 0x1p23f) - 0x1p23f;
        return (uint16_t)(sign | (uint16_t)r);
    }
    /* Normal: rebias, round the 13 dropped bits to nearest even (a carry
     * into the exponent is the correct result). */
    uint32_t h = (ax - (112u << 23) + 0xfffu + ((ax >> 13) & 1u)) >> 13;
    return (uint16_t)(sign | h);
}

static inline float s_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

#endif
