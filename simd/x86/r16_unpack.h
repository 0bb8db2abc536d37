/*
 * simd/x86/r16_unpack.h: AVX-512 decoders of the _R16 layouts' packed bits
 * (simd/repack.h), shared by the avx512 and amx levels so the layout is read
 * in one place. Each zmm is one 4-byte step of 16 rows.
 */
#ifndef TS_SIMD_X86_R16_UNPACK_H
#define TS_SIMD_X86_R16_UNPACK_H

#include <immintrin.h>

/* Q4_0_R16 / Q5_0_R16 step s (0..3): wv the step's nibble bytes, hv the
 * block's high-bit vector (Q5_0 only, q5 != 0). *lo = elements 4s.., *hi =
 * elements 16 + 4s..: the nibbles (0..15), for Q5_0 with bit 2s / 2s + 1 of
 * hv as bit 4 (0..31). The bits move to bit 4 of each byte with 16-bit shifts
 * by <= 4, which never carry a bit of the neighbouring byte into bit 4. */
static inline __attribute__((always_inline)) void ts_r16_q32_step(__m512i wv, __m512i hv, int q5,
                                                                  int s, __m512i *lo, __m512i *hi)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f), m10 = _mm512_set1_epi8(0x10);
    *lo = _mm512_and_si512(wv, m4);
    *hi = _mm512_and_si512(_mm512_srli_epi16(wv, 4), m4);
    if (!q5)
        return;
    __m512i hl, hh; /* bit 2s, bit 2s + 1 -> bit 4 */
    switch (s) {
    case 0: hl = _mm512_slli_epi16(hv, 4); hh = _mm512_slli_epi16(hv, 3); break;
    case 1: hl = _mm512_slli_epi16(hv, 2); hh = _mm512_slli_epi16(hv, 1); break;
    case 2: hl = hv; hh = _mm512_srli_epi16(hv, 1); break;
    default: hl = _mm512_srli_epi16(hv, 2); hh = _mm512_srli_epi16(hv, 3); break;
    }
    /* nibble | (h & 0x10) */
    *lo = _mm512_ternarylogic_epi32(*lo, hl, m10, 0xF8);
    *hi = _mm512_ternarylogic_epi32(*hi, hh, m10, 0xF8);
}

/* Q6_K_R16 32-sub-block j, one step: v the step's low-nibble bytes (chunk
 * j / 2), hb its high-bit bytes (half j / 4). Returns u = nibble j % 2 | bit
 * pair j % 4 << 4: the stored 6-bit values 0..63. */
static inline __attribute__((always_inline)) __m512i ts_r16_q6_k_step(__m512i v, __m512i hb,
                                                                      int j)
{
    if (j & 1)
        v = _mm512_srli_epi16(v, 4);
    switch (j % 4) {
    case 0: hb = _mm512_slli_epi16(hb, 4); break;
    case 1: hb = _mm512_slli_epi16(hb, 2); break;
    case 2: break;
    default: hb = _mm512_srli_epi16(hb, 2); break;
    }
    /* (v & 0x0f) | (hb & 0x30) */
    return _mm512_ternarylogic_epi32(_mm512_and_si512(v, _mm512_set1_epi8(0x0f)), hb,
                                     _mm512_set1_epi8(0x30), 0xF8);
}

/* Q3_K_R16 32-sub-block j, one step: lo the step's low-2-bit bytes (half
 * j / 4), hb its high-bit bytes. Returns u = bits 2 (j % 4).. of lo | bit j
 * of hb << 2: the stored 3-bit values 0..7 (q = u - 4). 16-bit shifts by <=
 * 6 (lo, then masked to bits 0..1) and <= 5 (hb, masked to bit 2) never bring
 * a neighbouring byte's bit into the kept ones. */
static inline __attribute__((always_inline)) __m512i ts_r16_q3_k_step(__m512i lo, __m512i hb,
                                                                      int j)
{
    if (j % 4)
        lo = _mm512_srli_epi16(lo, 2 * (j % 4));
    if (j < 2)
        hb = _mm512_slli_epi16(hb, 2 - j);
    else if (j > 2)
        hb = _mm512_srli_epi16(hb, j - 2);
    /* (lo & 0x03) | (hb & 0x04) */
    return _mm512_ternarylogic_epi32(_mm512_and_si512(lo, _mm512_set1_epi8(0x03)), hb,
                                     _mm512_set1_epi8(0x04), 0xF8);
}

#endif
