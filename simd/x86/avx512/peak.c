/*
 * simd/x86/avx512/peak.c: the avx512 level's int8 peak probe: 12 independent
 * vpdpbusd (AVX-512 VNNI, 64 int8 multiply-adds each) chains, the
 * instruction the R16 GEMMs are built on.
 */
#include <immintrin.h>

#include "../../kernels.h"

uint64_t ts_peak_int8_avx512(uint64_t n_iter);
uint64_t ts_peak_f32_avx512(uint64_t n_iter);

/* 12 independent FMA chains of 16 floats. */
uint64_t ts_peak_f32_avx512(uint64_t n_iter)
{
    __m512 acc[12];
    __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-3f);
    for (int j = 0; j < 12; j++)
        acc[j] = _mm512_set1_ps((float)j);
    for (uint64_t i = 0; i < n_iter; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++)
            acc[j] = _mm512_fmadd_ps(acc[j], a, b);
        __asm__ __volatile__("" : "+v"(a));
    }
    __m512 s = acc[0];
    for (int j = 1; j < 12; j++)
        s = _mm512_add_ps(s, acc[j]);
    volatile float sink = _mm512_reduce_add_ps(s);
    (void)sink;
    return n_iter * 12 * 16 * 2;
}

uint64_t ts_peak_int8_avx512(uint64_t n_iter)
{
    __m512i acc[12];
    __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-5);
    for (int j = 0; j < 12; j++)
        acc[j] = _mm512_set1_epi32(j);
    for (uint64_t i = 0; i < n_iter; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++)
            acc[j] = _mm512_dpbusd_epi32(acc[j], a, b);
        __asm__ __volatile__("" : "+v"(a));
    }
    __m512i s = acc[0];
    for (int j = 1; j < 12; j++)
        s = _mm512_xor_si512(s, acc[j]);
    volatile int sink = _mm512_reduce_add_epi32(s);
    (void)sink;
    return n_iter * 12 * 64 * 2;
}
