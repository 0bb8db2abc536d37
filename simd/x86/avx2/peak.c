/*
 * simd/x86/avx2/peak.c: the avx2 level's int8 peak probe: 12 independent
 * vpmaddubsw -> vpmaddwd -> vpaddd chains (32 int8 multiply-adds each), the
 * avx2 GEMMs' inner sequence.
 */
#include <immintrin.h>

#include "../../kernels.h"

uint64_t ts_peak_int8_avx2(uint64_t n_iter);
uint64_t ts_peak_f32_avx2(uint64_t n_iter);

/* 12 independent FMA chains of 8 floats. */
uint64_t ts_peak_f32_avx2(uint64_t n_iter)
{
    __m256 acc[12];
    __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-3f);
    for (int j = 0; j < 12; j++)
        acc[j] = _mm256_set1_ps((float)j);
    for (uint64_t i = 0; i < n_iter; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++)
            acc[j] = _mm256_fmadd_ps(acc[j], a, b);
        __asm__ __volatile__("" : "+x"(a));
    }
    __m256 s = acc[0];
    for (int j = 1; j < 12; j++)
        s = _mm256_add_ps(s, acc[j]);
    volatile float sink = _mm256_cvtss_f32(s);
    (void)sink;
    return n_iter * 12 * 8 * 2;
}

uint64_t ts_peak_int8_avx2(uint64_t n_iter)
{
    __m256i acc[12];
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-5);
    for (int j = 0; j < 12; j++)
        acc[j] = _mm256_set1_epi32(j);
    for (uint64_t i = 0; i < n_iter; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++)
            acc[j] = _mm256_add_epi32(acc[j], _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones));
        __asm__ __volatile__("" : "+x"(a));
    }
    __m256i s = acc[0];
    for (int j = 1; j < 12; j++)
        s = _mm256_xor_si256(s, acc[j]);
    volatile int sink = _mm256_extract_epi32(s, 0);
    (void)sink;
    return n_iter * 12 * 32 * 2;
}
