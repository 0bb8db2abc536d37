/*
 * simd/x86/avx512/gemm_r16.c: AVX-512 VNNI zmm GEMM tiles for the load-time
 * repacked layouts (simd/repack.h): Q8_0_R16, Q4_0_R16, Q5_0_R16 (x Q8_0), Q4_1_R16,
 * Q5_1_R16 (x Q8_1), Q4_K_R16,
 * Q5_K_R16, Q6_K_R16, Q3_K_R16 and Q2_K_R16 (x Q8_K).
 *
 * Register block: 16 rows (one row group, one zmm lane per row) x NY <= 8
 * tokens. Per 4-byte step one zmm load (or nibble unpack) of the 16 rows'
 * weights is reused by NY vpdpbusd, each with the token's 4 activation bytes
 * as a {1to16} broadcast, so the 16 int32 lanes are the rows' exact block
 * dots: no horizontal reduction. Per block and token the float step is then
 *   acc = fma(dw * da, (float)isum, acc)   (+ fma(-(dmin * da), (float)msum, acc))
 * lane for lane: kernels.h's canonical order, so every tiling, NY (1 included)
 * and the scalar level give the same bits.
 * u8 x s8 operands: Q8_0 weights are stored + 128 (isum = dot - 128 * sum(a));
 * Q4_0 nibbles are 0..15 (isum = dot - 8 * sum(a)); Q4_K nibbles are 0..15 with
 * integer sub-block scales (vpmulld) and the min term from Q8_K's bsums; Q6_K
 * values are stored u = q + 32 (0..63), so per group of 16
 * isum += sc * (dot_u - 32 * bsum): all in int32, exact. The Q6_K bias starts
 * isum as sum over pairs of vpdpwssd((-32 sc 2j, -32 sc 2j+1), bsum pair j)
 * (|32 sc| <= 4096 fits int16); the Q4_K min sum is vpdpwssd over the 4 pairs.
 * Token loops are fully unrolled (UNROLL: GCC unroll pragma) so the NY
 * accumulators stay in zmm registers (without it GCC -O2 kept them on the
 * stack: 2.5-2.7x slower on Zen 4).
 * Per token group an activation pass (per K chunk, on the stack) converts da
 * to f32 and builds sum(a) per block or the Q4_K min pair sums, once for all
 * row groups of a sweep. Loop order: sweep of RB rows, token group, K chunk,
 * row group; the running acc crosses K chunks through y (a float store/load
 * is exact).
 */
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "../../kernels.h"
#include "../../repack.h"
#include "../prefetch.h"
#include "../r16_unpack.h"

#define INLINE static inline __attribute__((always_inline))
#define NYMAX 8
#define UNROLL _Pragma("GCC unroll 16")
#define NBC32 256 /* 32-element blocks per K chunk of the activation pass */
#define NBCK 64   /* 256-element super-blocks per K chunk */
/* Rows per sweep: the sweep's weights are re-read once per token group, so
 * they should stay in L2 (128 rows x 2048 Q8_0: 272 KiB). */
#define RB 128

#define GEMM_DECL(name)                                                                       \
    void name(int64_t k, int64_t n_rows, int64_t n_tok, const void *restrict w,               \
              size_t w_stride, const void *restrict a, size_t a_stride, float *restrict y,     \
              size_t y_stride)
GEMM_DECL(ts_gemm_q8_0_r16_q8_0_avx512);
GEMM_DECL(ts_gemm_q4_0_r16_q8_0_avx512);
GEMM_DECL(ts_gemm_q5_0_r16_q8_0_avx512);
GEMM_DECL(ts_gemm_q4_k_r16_q8_k_avx512);
GEMM_DECL(ts_gemm_q5_k_r16_q8_k_avx512);
GEMM_DECL(ts_gemm_q3_k_r16_q8_k_avx512);
GEMM_DECL(ts_gemm_q2_k_r16_q8_k_avx512);
GEMM_DECL(ts_gemm_q4_1_r16_q8_1_avx512);
GEMM_DECL(ts_gemm_q5_1_r16_q8_1_avx512);
GEMM_DECL(ts_gemm_q6_k_r16_q8_k_avx512);
void ts_simd_register_gemm_r16_avx512(ts_kernels *k);

INLINE __m512i bcast32(const void *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* 8 vectors of 8 int32 -> their 8 sums, in order (integer adds: exact). */
INLINE __m256i reduce8(const __m256i *v)
{
    const __m256i h01 = _mm256_hadd_epi32(v[0], v[1]), h23 = _mm256_hadd_epi32(v[2], v[3]);
    const __m256i h45 = _mm256_hadd_epi32(v[4], v[5]), h67 = _mm256_hadd_epi32(v[6], v[7]);
    const __m256i lo = _mm256_hadd_epi32(h01, h23), hi = _mm256_hadd_epi32(h45, h67);
    return _mm256_add_epi32(_mm256_permute2x128_si256(lo, hi, 0x20),
                            _mm256_permute2x128_si256(lo, hi, 0x31));
}

/* Q8_0 activation pass for one token: da[b] = f32(d), corr[b] = -(sum(qs) << shift)
 * for blocks [b0, b0 + n): the kernel starts each block's dot at corr, so the
 * offset costs no vector op per block (integer: the same isum as dot - (sum << shift)). */
static void pass_q8_0(const ts_block_q8_0 *ab, int64_t b0, int64_t n, int shift, float *da,
                      int32_t *corr)
{
    const __m256i ones = _mm256_set1_epi8(1);
    int64_t b = 0;
    for (; b + 8 <= n; b += 8) {
        __m256i v[8];
        for (int i = 0; i < 8; i++)
            v[i] = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones,
                                       _mm256_loadu_si256((const __m256i *)ab[b0 + b + i].qs));
        _mm256_storeu_si256((__m256i *)(corr + b),
                            _mm256_sub_epi32(_mm256_setzero_si256(),
                                             _mm256_slli_epi32(reduce8(v), shift)));
    }
    for (; b < n; b++) {
        int32_t s = 0;
        for (int i = 0; i < 32; i++)
            s += ab[b0 + b].qs[i];
        corr[b] = -s * (1 << shift);
    }
    for (b = 0; b < n; b++)
        da[b] = _cvtsh_ss(ab[b0 + b].d);
}

/* Q8_1 activation pass for one token: da[b] = f32(d), sa[b] = f32(s) (s = d *
 * sum(qs)), corr[b] = 0 (Q4_1 / Q5_1 values carry no offset; their min is
 * the float term m * sa). */
static void pass_q8_1(const ts_block_q8_1 *ab, int64_t b0, int64_t n, float *da, float *sa,
                      int32_t *corr)
{
    for (int64_t b = 0; b < n; b++) {
        da[b] = _cvtsh_ss(ab[b0 + b].d);
        sa[b] = _cvtsh_ss(ab[b0 + b].s);
        corr[b] = 0;
    }
}

INLINE __m512 acc_load(int first, const float *y, __mmask16 m)
{
    return first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, y);
}

#define YROW(t) ((float *)((char *)y + (size_t)(t) * y_stride))
#define AROW(type, t) ((const type *)((const char *)a + (size_t)(t) * a_stride))

/* Decode software prefetch (NY = 1 only: there a row group's weights are read
 * once and the kernel is memory-bound; the hardware prefetcher alone left the
 * Q6_K_R16 sweep at about 60% of the Q4_K_R16 one's GB/s on Zen 4). The
 * kernels read a group's blocks [b0, b0 + n) in order (qb quant bytes at
 * g + blk * qb, mb metadata bytes at g + nb * qb + blk * mb), then the next
 * group's (gn, NULL past the call's last group). PF_DIST blocks ahead in that
 * order is (group, block) *pg, *pb, or *pg = NULL. Prefetches never fault and
 * change no value. Into L2 (T1), 4 blocks (9-13 KiB) ahead: llama-1b Q4_K_M
 * tg128, 2 threads, Zen 4, 2026-11-22, t/s of alternated -r 3 runs: none
 * 23.1 / 23.7, T0 dist 3 24.9 / 25.9, T0 6 22.9 / 26.0, NTA 3 23.6 / 23.1,
 * T1 2 28.1 / 31.8, T1 3 31.0 / 28.9 / 34.8 / 30.3, T1 4 34.6 / 32.1,
 * T1 12 27.0 / 25.1 (shared, noisy box). */
#define PF_DIST 4
INLINE void pf_target(const uint8_t *g, const uint8_t *gn, int64_t b0, int64_t n, int64_t blk,
                      const uint8_t **pg, int64_t *pb)
{
    int64_t b = blk + PF_DIST;
    *pg = g;
    if (b >= b0 + n) {
        b -= n;
        *pg = gn && b < b0 + n ? gn : NULL;
    }
    *pb = b;
}

/* Block blk's prefetch at the start of its step: decode (ny == 1) returns
 * the pf_line target PF_DIST blocks ahead in its own stream (*pb); token
 * groups issue step blk - b0 of the sweep's plan pf (NULL: the caller steps
 * it at a finer grain) and return NULL. */
INLINE const uint8_t *pf_block(int ny, const uint8_t *g, const uint8_t *gn, int64_t b0,
                               int64_t n, int64_t blk, const ts_pf_plan *pf, int64_t *pb)
{
    const uint8_t *pg = NULL;
    *pb = 0;
    if (ny == 1)
        pf_target(g, gn, b0, n, blk, &pg, pb);
    else if (pf)
        ts_pf_step(pf, blk - b0);
    return pg;
}

/* Prefetch line i (one per kernel step) of block pb's qb + mb bytes: quant
 * lines first, then the metadata's (one more line: mb blocks need not be
 * line-aligned). */
INLINE void pf_line(const uint8_t *pg, int64_t pb, int64_t nb, size_t qb, size_t mb, int i)
{
    if (!pg)
        return;
    const int nq = (int)(qb / 64);
    if (i < nq)
        _mm_prefetch((const char *)(pg + (size_t)pb * qb + 64 * (size_t)i), _MM_HINT_T1);
    else if ((size_t)(i - nq) * 64 <= mb + 63)
        _mm_prefetch((const char *)(pg + (size_t)nb * qb + (size_t)pb * mb +
                                    ((size_t)(i - nq) * 64 < mb ? (size_t)(i - nq) * 64 : mb - 1)),
                     _MM_HINT_T1);
}

/* Prefetch plan of one row-group call in a token-grouped sweep (ny >= 2;
 * simd/x86/prefetch.h says why): row group `row` of the sweep [r0, r1), token
 * group tg of n_tg, K chunk ci of nc (blocks [b0, b0 + n) of nb; qb quant and
 * mb metadata bytes per block), spread over `steps` kernel steps.
 * (a) A pass that reads its rows first (the sweep's first token group, when
 *     no earlier pass fetched them): the next row group's chunk.
 * (b) With n_tg >= 2 the later passes read from L2, so every pass of the
 *     sweep also fetches a slice of the next sweep (when it fits L2 easily).
 * ny == 1 (decode) keeps its own prefetch (pf_target). */
#define PF_SWEEP_MAX (512u << 10)
INLINE void pf_plan_group(ts_pf_plan *pf, const uint8_t *w, size_t w_stride, int64_t n_rows,
                          int64_t r0, int64_t r1, int64_t row, int64_t tg, int64_t n_tg,
                          int64_t ci, int64_t nc, int64_t b0, int64_t n, int64_t nb, size_t qb,
                          size_t mb, int64_t steps)
{
    pf->n = 0;
    if (tg == 0 && (r0 == 0 || n_tg == 1) && row + 16 < (n_tg == 1 ? n_rows : r1)) {
        const uint8_t *gn = w + (size_t)(row + 16) * w_stride;
        ts_pf_add(pf, gn + (size_t)b0 * qb, (size_t)n * qb, steps);
        ts_pf_add(pf, gn + (size_t)nb * qb + (size_t)b0 * mb, (size_t)n * mb, steps);
    }
    if (n_tg >= 2 && r1 < n_rows) {
        const int64_t rows = n_rows - r1 < RB ? n_rows - r1 : RB;
        const size_t bytes = (size_t)((rows + 15) / 16) * 16 * w_stride;
        const int64_t calls = (r1 - r0 + 15) / 16 * nc;
        if (bytes <= PF_SWEEP_MAX) {
            const char *sp;
            size_t sb;
            ts_pf_slice(w + (size_t)r1 * w_stride, bytes,
                        tg * calls + ci * ((r1 - r0 + 15) / 16) + (row - r0) / 16, n_tg * calls,
                        &sp, &sb);
            ts_pf_add(pf, sp, sb, steps);
        }
    }
}

/* One row group (16 rows at g) x ny tokens over blocks [b0, b0 + n) of nb.
 * Q8_0 (wt 0), Q4_0 (wt 1), Q5_0 (wt 2), Q4_1 (wt 3) or Q5_1 (wt 4) weights;
 * y: the group's first row. Q5_0 / Q5_1: u = nibble | hb << 4 (0..31) per
 * step, ts_r16_q32_step (r16_unpack.h). Q4_1 / Q5_1 (x Q8_1) add the min
 * term per block and token, acc = fma(m, sa, acc), as the scalar twin. */
INLINE void q32_group(int ny, int wt, const uint8_t *g, int64_t nb, int64_t b0, int64_t n,
                      const void *a, size_t a_stride, const float *da, const float *sa,
                      const int32_t *corr, const ts_pf_plan *pf, float *y, size_t y_stride,
                      __mmask16 mask)
{
    const int q1 = wt >= 3, q5 = wt == 2 || wt == 4;
    const size_t qb = wt == 1 || wt == 3 ? 256 : q5 ? 320 : 512, mb = q1 ? 64 : 32;
    const size_t as = q1 ? sizeof(ts_block_q8_1) : sizeof(ts_block_q8_0);
    const size_t aqo = q1 ? offsetof(ts_block_q8_1, qs) : offsetof(ts_block_q8_0, qs);
    const uint8_t *meta = g + (size_t)nb * qb;
    __m512 acc[NYMAX];
    UNROLL for (int t = 0; t < ny; t++)
        acc[t] = acc_load(b0 == 0, YROW(t), mask);
    for (int64_t blk = b0; blk < b0 + n; blk++) {
        const uint8_t *q = g + (size_t)blk * qb;
        ts_pf_step(pf, blk - b0);
        __m512i d[NYMAX];
        UNROLL for (int t = 0; t < ny; t++)
            d[t] = _mm512_set1_epi32(corr[t * NBC32 + (blk - b0)]);
        if (wt) {
            const __m512i hv = q5 ? _mm512_loadu_si512(q + 256) : _mm512_setzero_si512();
            UNROLL for (int s = 0; s < 4; s++) {
                const __m512i wv = _mm512_loadu_si512(q + 64 * s);
                __m512i lo, hi;
                ts_r16_q32_step(wv, hv, q5, s, &lo, &hi);
                UNROLL for (int t = 0; t < ny; t++) {
                    const int8_t *aq =
                        (const int8_t *)((const char *)a + (size_t)t * a_stride +
                                         (size_t)blk * as + aqo);
                    d[t] = _mm512_dpbusd_epi32(d[t], lo, bcast32(aq + 4 * s));
                    d[t] = _mm512_dpbusd_epi32(d[t], hi, bcast32(aq + 16 + 4 * s));
                }
            }
        } else {
            UNROLL for (int s = 0; s < 8; s++) {
                const __m512i wv = _mm512_loadu_si512(q + 64 * s);
                UNROLL for (int t = 0; t < ny; t++)
                    d[t] = _mm512_dpbusd_epi32(d[t], wv,
                                               bcast32(AROW(ts_block_q8_0, t)[blk].qs + 4 * s));
            }
        }
        const __m512 dw =
            _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(meta + (size_t)blk * mb)));
        const __m512 mw = q1 ? _mm512_cvtph_ps(_mm256_loadu_si256(
                                   (const __m256i *)(meta + (size_t)blk * mb + 32)))
                             : _mm512_setzero_ps();
        UNROLL for (int t = 0; t < ny; t++) {
            const __m512 sc = _mm512_mul_ps(dw, _mm512_set1_ps(da[t * NBC32 + (blk - b0)]));
            acc[t] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(d[t]), acc[t]);
            if (q1)
                acc[t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(sa[t * NBC32 + (blk - b0)]), acc[t]);
        }
    }
    UNROLL for (int t = 0; t < ny; t++)
        _mm512_mask_storeu_ps(YROW(t), mask, acc[t]);
}

static void gemm_q32(int wt, int64_t k, int64_t n_rows, int64_t n_tok, const void *w,
                     size_t w_stride, const void *a, size_t a_stride, float *y, size_t y_stride)
{
    const int64_t nb = k / 32;
    const size_t qb = wt == 1 || wt == 3 ? 256 : wt == 2 || wt == 4 ? 320 : 512;
    const size_t mb = wt >= 3 ? 64 : 32;
    float da[NYMAX * NBC32], sa[NYMAX * NBC32];
    int32_t corr[NYMAX * NBC32];
    const int64_t n_tg = (n_tok + NYMAX - 1) / NYMAX;
    for (int64_t sw = 0; sw < (n_rows + RB - 1) / RB * n_tg; sw++) {
        const int64_t r0 = sw / n_tg * RB, tok = sw % n_tg * NYMAX;
        const int64_t r1 = n_rows - r0 < RB ? n_rows : r0 + RB;
        const int ny = n_tok - tok < NYMAX ? (int)(n_tok - tok) : NYMAX;
        const char *at = (const char *)a + (size_t)tok * a_stride;
        float *yt = (float *)((char *)y + (size_t)tok * y_stride);
        for (int64_t b0 = 0; b0 < nb; b0 += NBC32) {
            const int64_t n = nb - b0 < NBC32 ? nb - b0 : NBC32;
            for (int t = 0; t < ny; t++) {
                if (wt >= 3)
                    pass_q8_1((const ts_block_q8_1 *)(at + (size_t)t * a_stride), b0, n,
                              da + t * NBC32, sa + t * NBC32, corr + t * NBC32);
                else
                    pass_q8_0((const ts_block_q8_0 *)(at + (size_t)t * a_stride), b0, n,
                              wt == 1 ? 3 : wt == 2 ? 4 : 7, da + t * NBC32, corr + t * NBC32);
            }
            for (int64_t row = r0; row < r1; row += 16) {
                const int nv = r1 - row < 16 ? (int)(r1 - row) : 16;
                const __mmask16 mask = (__mmask16)((1u << nv) - 1u);
                const uint8_t *g = (const uint8_t *)w + (size_t)row * w_stride;
                ts_pf_plan pf = {0};
                if (ny >= 2)
                    pf_plan_group(&pf, w, w_stride, n_rows, r0, r1, row, sw % n_tg, n_tg,
                                  b0 / NBC32, (nb + NBC32 - 1) / NBC32, b0, n, nb, qb, mb, n);
#define Q32_WT(NY_, WT_)                                                                       \
    q32_group(NY_, WT_, g, nb, b0, n, at, a_stride, da, sa, corr, &pf, yt + row, y_stride, mask)
#define Q32_CASE(NY_)                                                                          \
    case NY_:                                                                                  \
        switch (wt) {                                                                          \
        case 1: Q32_WT(NY_, 1); break;                                                         \
        case 2: Q32_WT(NY_, 2); break;                                                         \
        case 3: Q32_WT(NY_, 3); break;                                                         \
        case 4: Q32_WT(NY_, 4); break;                                                         \
        default: Q32_WT(NY_, 0); break;                                                        \
        }                                                                                      \
        break;
                switch (ny) {
                    Q32_CASE(1) Q32_CASE(2) Q32_CASE(3) Q32_CASE(4)
                    Q32_CASE(5) Q32_CASE(6) Q32_CASE(7) default: Q32_CASE(8)
                }
#undef Q32_CASE
#undef Q32_WT
            }
        }
    }
}

/* Contract (both): ts_gemm_fn over a _R16 matrix (simd/repack.h); w at a row
 * group start (tile row0 % 16 == 0); k % 32 == 0; any n_rows, n_tok >= 1; row
 * tails compute the group's padding lanes and store only the valid rows. */
GEMM_DECL(ts_gemm_q8_0_r16_q8_0_avx512)
{
    gemm_q32(0, k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);
}

GEMM_DECL(ts_gemm_q4_0_r16_q8_0_avx512)
{
    gemm_q32(1, k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);
}

/* Contract: as above; Q5_0_R16 (isum = dot(u, a) - 16 * sum(a)). */
GEMM_DECL(ts_gemm_q5_0_r16_q8_0_avx512)
{
    gemm_q32(2, k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);
}

/* Contract: as above, x Q8_1 activations: Q4_1_R16, Q5_1_R16. */
GEMM_DECL(ts_gemm_q4_1_r16_q8_1_avx512)
{
    gemm_q32(3, k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);
}

GEMM_DECL(ts_gemm_q5_1_r16_q8_1_avx512)
{
    gemm_q32(4, k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);
}

/* ---- Q4_K_R16 x Q8_K ---- */

/* Q8_K pass for one token: mpair[4 b + i] = (S_2i, S_2i+1) as two int16, where
 * S_j = bsums[2j] + bsums[2j+1] (|S_j| <= 4064) is sub-block j's activation sum. */
static void pass_q8_k(const ts_block_q8_k *ab, int64_t b0, int64_t n, int32_t *mpair)
{
    for (int64_t b = 0; b < n; b++) {
        const __m256i bs = _mm256_loadu_si256((const __m256i *)ab[b0 + b].bsums);
        const __m256i s32 = _mm256_madd_epi16(bs, _mm256_set1_epi16(1));
        const __m128i s16 = _mm_packs_epi32(_mm256_castsi256_si128(s32),
                                            _mm256_extracti128_si256(s32, 1));
        /* 128-bit packs: S0..S3 then S4..S7, in order. */
        _mm_storeu_si128((__m128i *)(mpair + 4 * b), s16);
    }
}

/* One row group x ny tokens over super-blocks [b0, b0 + n): Q4_K_R16 (q5 0)
 * or Q5_K_R16 (q5 1: each step's 5th bits from the 512-byte high-bit region,
 * bit j of a byte moved to bit 4 for sub-block j, as r16_unpack.h does for
 * Q5_0: 16-bit shifts by <= 4 never carry a neighbouring byte's bit there). */
INLINE void q4k_group(int ny, int q5, const uint8_t *g, const uint8_t *gn, int64_t nb,
                      int64_t b0, int64_t n, const void *a, size_t a_stride,
                      const int32_t *mpair, const ts_pf_plan *pf, float *y, size_t y_stride,
                      __mmask16 mask)
{
    const size_t qb = q5 ? 2560 : 2048;
    const uint8_t *meta0 = g + (size_t)nb * qb;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512 neg = _mm512_set1_ps(-0.0f);
    const ts_block_q8_k *ab[NYMAX];
    __m512 acc[NYMAX];
    UNROLL for (int t = 0; t < ny; t++) {
        ab[t] = AROW(ts_block_q8_k, t);
        acc[t] = acc_load(b0 == 0, YROW(t), mask);
    }
    for (int64_t blk = b0; blk < b0 + n; blk++) {
        const uint8_t *q = g + (size_t)blk * qb, *meta = meta0 + (size_t)blk * 320;
        int64_t pb;
        const uint8_t *pg = pf_block(ny, g, gn, b0, n, blk, NULL, &pb);
        __m512i isum[NYMAX];
        UNROLL for (int t = 0; t < ny; t++)
            isum[t] = _mm512_setzero_si512();
        UNROLL for (int j = 0; j < 8; j++) { /* sub-block j: chunk j / 2, nibble j % 2 */
            const uint8_t *qc = q + 512 * (j / 2);
            if (ny > 1)
                ts_pf_step(pf, 8 * (blk - b0) + j);
            __m512i d[NYMAX];
            UNROLL for (int s = 0; s < 8; s++) {
                __m512i wv = _mm512_loadu_si512(qc + 64 * s);
                wv = _mm512_and_si512(j & 1 ? _mm512_srli_epi16(wv, 4) : wv, m4);
                if (q5) { /* nibble | (bit j << 4) */
                    __m512i hv = _mm512_loadu_si512(q + 2048 + 64 * s);
                    hv = j < 4 ? _mm512_slli_epi16(hv, 4 - j) : _mm512_srli_epi16(hv, j - 4);
                    wv = _mm512_ternarylogic_epi32(wv, hv, _mm512_set1_epi8(0x10), 0xF8);
                }
                if (ny == 1)
                    pf_line(pg, pb, nb, qb, 320, 8 * j + s);
                UNROLL for (int t = 0; t < ny; t++) {
                    const __m512i av = bcast32(ab[t][blk].qs + 32 * j + 4 * s);
                    d[t] = s ? _mm512_dpbusd_epi32(d[t], wv, av)
                             : _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, av);
                }
            }
            const __m512i sc =
                _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(meta + 16 * j)));
            UNROLL for (int t = 0; t < ny; t++)
                isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(d[t], sc));
        }
        __m512i mn[4];
        UNROLL for (int i = 0; i < 4; i++)
            mn[i] = _mm512_cvtepu8_epi16(
                _mm256_loadu_si256((const __m256i *)(meta + 128 + 32 * i)));
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(meta + 256)));
        /* -(dm * da) == (-dm) * da exactly (IEEE multiply is sign-symmetric). */
        const __m512 ndm = _mm512_xor_ps(
            _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(meta + 288))), neg);
        UNROLL for (int t = 0; t < ny; t++) {
            const int32_t *mp = mpair + t * 4 * NBCK + 4 * (blk - b0);
            __m512i msum = _mm512_madd_epi16(mn[0], _mm512_set1_epi32(mp[0]));
            UNROLL for (int i = 1; i < 4; i++)
                msum = _mm512_dpwssd_epi32(msum, mn[i], _mm512_set1_epi32(mp[i]));
            const __m512 da = _mm512_set1_ps(ab[t][blk].d);
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, da), _mm512_cvtepi32_ps(isum[t]), acc[t]);
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(ndm, da), _mm512_cvtepi32_ps(msum), acc[t]);
        }
    }
    UNROLL for (int t = 0; t < ny; t++)
        _mm512_mask_storeu_ps(YROW(t), mask, acc[t]);
}

/* Contract: as the Q8_0_R16 one, k % 256 == 0. */
INLINE void gemm_q45k(int q5, int64_t k, int64_t n_rows, int64_t n_tok, const void *w,
                      size_t w_stride, const void *a, size_t a_stride, float *y, size_t y_stride)
{
    const int64_t nb = k / TS_QK_K;
    const size_t qb = q5 ? 2560 : 2048;
    int32_t mpair[NYMAX * 4 * NBCK];
    const int64_t n_tg = (n_tok + NYMAX - 1) / NYMAX;
    for (int64_t sw = 0; sw < (n_rows + RB - 1) / RB * n_tg; sw++) {
        const int64_t r0 = sw / n_tg * RB, tok = sw % n_tg * NYMAX;
        const int64_t r1 = n_rows - r0 < RB ? n_rows : r0 + RB;
        const int ny = n_tok - tok < NYMAX ? (int)(n_tok - tok) : NYMAX;
        const char *at = (const char *)a + (size_t)tok * a_stride;
        float *yt = (float *)((char *)y + (size_t)tok * y_stride);
        for (int64_t b0 = 0; b0 < nb; b0 += NBCK) {
            const int64_t n = nb - b0 < NBCK ? nb - b0 : NBCK;
            for (int t = 0; t < ny; t++)
                pass_q8_k((const ts_block_q8_k *)(at + (size_t)t * a_stride), b0, n,
                          mpair + t * 4 * NBCK);
            for (int64_t row = r0; row < r1; row += 16) {
                const int nv = r1 - row < 16 ? (int)(r1 - row) : 16;
                const __mmask16 mask = (__mmask16)((1u << nv) - 1u);
                const uint8_t *g = (const uint8_t *)w + (size_t)row * w_stride;
                /* One K chunk and token group: the next sweep follows on. */
                const uint8_t *gn =
                    row + 16 < (n == nb && n_tg == 1 ? n_rows : r1) ? g + 16 * w_stride : NULL;
                ts_pf_plan pf = {0};
                if (ny >= 2)
                    pf_plan_group(&pf, w, w_stride, n_rows, r0, r1, row, sw % n_tg, n_tg,
                                  b0 / NBCK, (nb + NBCK - 1) / NBCK, b0, n, nb, qb, 320, 8 * n);
#define QK_CASE(NY_)                                                                           \
    case NY_:                                                                                  \
        q4k_group(NY_, q5, g, gn, nb, b0, n, at, a_stride, mpair, &pf, yt + row, y_stride,     \
                  mask);                                                                       \
        break;
                switch (ny) {
                    QK_CASE(1) QK_CASE(2) QK_CASE(3) QK_CASE(4)
                    QK_CASE(5) QK_CASE(6) QK_CASE(7) default: QK_CASE(8)
                }
#undef QK_CASE
            }
        }
    }
}

GEMM_DECL(ts_gemm_q4_k_r16_q8_k_avx512)
{
    gemm_q45k(0, k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);
}

GEMM_DECL(ts_gemm_q5_k_r16_q8_k_avx512)
{
    gemm_q45k(1, k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);
}

/* ---- Q6_K_R16 x Q8_K ---- */

/* One row group x ny tokens over all nb super-blocks. Per 32-sub-block j the
 * 6-bit values are the low nibble (chunk j / 2, nibble j % 2) | the 2 high
 * bits (half j / 4, bit pair j % 4) << 4; per group of 16 (4 steps) one
 * vpmulld by the sign-extended scale; the bias term -32 * sum(sc * bsum) comes
 * from the same scale pairs (vpmaddwd with a bsum pair). */
INLINE void q6k_group(int ny, int q3, const uint8_t *g, const uint8_t *gn, int64_t nb,
                      const void *a, size_t a_stride, const ts_pf_plan *pf, float *y,
                      size_t y_stride, __mmask16 mask)
{
    /* Q3_K_R16 (q3): the same with u = q + 4 (0..7, ts_r16_q3_k_step), so the
     * bias is -4 * sum(sc * bsum) and |4 sc| <= 128 fits the int16 pairs. */
    const size_t qb = q3 ? 1536 : 3072;
    const uint8_t *meta0 = g + (size_t)nb * qb;
    const ts_block_q8_k *ab[NYMAX];
    __m512 acc[NYMAX];
    UNROLL for (int t = 0; t < ny; t++) {
        ab[t] = AROW(ts_block_q8_k, t);
        acc[t] = _mm512_setzero_ps();
    }
    for (int64_t blk = 0; blk < nb; blk++) {
        const uint8_t *q = g + (size_t)blk * qb, *meta = meta0 + (size_t)blk * 288;
        int64_t pb;
        const uint8_t *pg = pf_block(ny, g, gn, 0, nb, blk, pf, &pb);
        __m512i isum[NYMAX];
        /* Bias -32 * sum_g sc_g * bsum_g: (sc 2j, sc 2j+1) * -32 fit int16
         * (|.| <= 4096), so one vpdpwssd per pair j and token, exact. */
        __m512i scn[8];
        UNROLL for (int j = 0; j < 8; j++)
            scn[j] = _mm512_slli_epi16(
                _mm512_sub_epi16(_mm512_setzero_si512(),
                                 _mm512_cvtepi8_epi16(
                                     _mm256_loadu_si256((const __m256i *)(meta + 32 * j)))),
                q3 ? 2 : 5);
        UNROLL for (int t = 0; t < ny; t++) {
            isum[t] = _mm512_madd_epi16(scn[0], bcast32(ab[t][blk].bsums));
            UNROLL for (int j = 1; j < 8; j++)
                isum[t] = _mm512_dpwssd_epi32(isum[t], scn[j], bcast32(ab[t][blk].bsums + 2 * j));
        }
        UNROLL for (int j = 0; j < 8; j++) {
            const uint8_t *qc = q3 ? q + 512 * (j / 4) : q + 512 * (j / 2);
            const uint8_t *qh = q3 ? q + 1024 : q + 2048 + 512 * (j / 4);
            /* (sc 2j, sc 2j+1) per row as two int16 in one dword lane. */
            const __m512i scp =
                _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(meta + 32 * j)));
            UNROLL for (int half = 0; half < 2; half++) { /* group 2j + half */
                __m512i d[NYMAX];
                UNROLL for (int s = 4 * half; s < 4 * half + 4; s++) {
                    const __m512i lv = _mm512_loadu_si512(qc + 64 * s);
                    const __m512i hv = _mm512_loadu_si512(qh + 64 * s);
                    const __m512i wv = q3 ? ts_r16_q3_k_step(lv, hv, j)
                                          : ts_r16_q6_k_step(lv, hv, j);
                    if (ny == 1)
                        pf_line(pg, pb, nb, qb, 288, 8 * j + s);
                    UNROLL for (int t = 0; t < ny; t++) {
                        const __m512i av = bcast32(ab[t][blk].qs + 32 * j + 4 * s);
                        d[t] = s & 3 ? _mm512_dpbusd_epi32(d[t], wv, av)
                                     : _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, av);
                    }
                }
                const __m512i sc = half ? _mm512_srai_epi32(scp, 16)
                                        : _mm512_srai_epi32(_mm512_slli_epi32(scp, 16), 16);
                UNROLL for (int t = 0; t < ny; t++)
                    isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(d[t], sc));
            }
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(meta + 256)));
        UNROLL for (int t = 0; t < ny; t++) {
            const __m512 da = _mm512_set1_ps(ab[t][blk].d);
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, da), _mm512_cvtepi32_ps(isum[t]), acc[t]);
        }
    }
    UNROLL for (int t = 0; t < ny; t++)
        _mm512_mask_storeu_ps(YROW(t), mask, acc[t]);
}

/* ---- Q2_K_R16 x Q8_K ---- */

/* One row group x ny tokens over all nb super-blocks. Values q = 0..3 (the
 * 2-bit fields, no offset); per group of 16 (4 steps) one vpmulld by the
 * 4-bit scale; the min term msum = sum_g mn_g * bsum_g by vpdpwssd over the
 * 8 (mn 2i, mn 2i+1) x (bsum 2i, bsum 2i+1) pairs; then Q4_K's two float
 * steps. All integer sums exact, so the scalar twin's bits. */
INLINE void q2k_group(int ny, const uint8_t *g, const uint8_t *gn, int64_t nb, const void *a,
                      size_t a_stride, const ts_pf_plan *pf, float *y, size_t y_stride,
                      __mmask16 mask)
{
    const uint8_t *meta0 = g + (size_t)nb * 1024;
    const __m512i m3 = _mm512_set1_epi8(0x03), m4 = _mm512_set1_epi32(0x0f);
    const __m512 neg = _mm512_set1_ps(-0.0f);
    const ts_block_q8_k *ab[NYMAX];
    __m512 acc[NYMAX];
    UNROLL for (int t = 0; t < ny; t++) {
        ab[t] = AROW(ts_block_q8_k, t);
        acc[t] = _mm512_setzero_ps();
    }
    for (int64_t blk = 0; blk < nb; blk++) {
        const uint8_t *q = g + (size_t)blk * 1024, *meta = meta0 + (size_t)blk * 320;
        int64_t pb;
        const uint8_t *pg = pf_block(ny, g, gn, 0, nb, blk, pf, &pb);
        __m512i isum[NYMAX], msum[NYMAX];
        UNROLL for (int t = 0; t < ny; t++)
            isum[t] = _mm512_setzero_si512();
        UNROLL for (int j = 0; j < 8; j++) {
            const uint8_t *ql = q + 512 * (j / 4);
            UNROLL for (int half = 0; half < 2; half++) { /* group 2j + half */
                __m512i d[NYMAX];
                UNROLL for (int s = 4 * half; s < 4 * half + 4; s++) {
                    __m512i wv = _mm512_loadu_si512(ql + 64 * s);
                    if (j % 4)
                        wv = _mm512_srli_epi16(wv, 2 * (j % 4));
                    wv = _mm512_and_si512(wv, m3);
                    if (ny == 1)
                        pf_line(pg, pb, nb, 1024, 320, 8 * j + s);
                    UNROLL for (int t = 0; t < ny; t++) {
                        const __m512i av = bcast32(ab[t][blk].qs + 32 * j + 4 * s);
                        d[t] = s & 3 ? _mm512_dpbusd_epi32(d[t], wv, av)
                                     : _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, av);
                    }
                }
                const __m512i sc = _mm512_and_si512(
                    _mm512_cvtepu8_epi32(
                        _mm_loadu_si128((const __m128i *)(meta + 16 * (2 * j + half)))),
                    m4);
                UNROLL for (int t = 0; t < ny; t++)
                    isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(d[t], sc));
            }
        }
        /* (mn 2i, mn 2i+1) per row as two int16 in one dword lane. */
        __m512i mp[8];
        UNROLL for (int i = 0; i < 8; i++) {
            const __m512i m0 = _mm512_srli_epi32(
                _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(meta + 32 * i))), 4);
            const __m512i m1 = _mm512_srli_epi32(
                _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(meta + 32 * i + 16))), 4);
            mp[i] = _mm512_or_si512(m0, _mm512_slli_epi32(m1, 16));
        }
        UNROLL for (int t = 0; t < ny; t++) {
            msum[t] = _mm512_madd_epi16(mp[0], bcast32(ab[t][blk].bsums));
            UNROLL for (int i = 1; i < 8; i++)
                msum[t] = _mm512_dpwssd_epi32(msum[t], mp[i], bcast32(ab[t][blk].bsums + 2 * i));
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(meta + 256)));
        /* -(dm * da) == (-dm) * da exactly (IEEE multiply is sign-symmetric). */
        const __m512 ndm = _mm512_xor_ps(
            _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(meta + 288))), neg);
        UNROLL for (int t = 0; t < ny; t++) {
            const __m512 da = _mm512_set1_ps(ab[t][blk].d);
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, da), _mm512_cvtepi32_ps(isum[t]), acc[t]);
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(ndm, da), _mm512_cvtepi32_ps(msum[t]), acc[t]);
        }
    }
    UNROLL for (int t = 0; t < ny; t++)
        _mm512_mask_storeu_ps(YROW(t), mask, acc[t]);
}

/* The row-group kernels without an activation pass: Q6_K, Q3_K, Q2_K. */
enum { KG_Q6K, KG_Q3K, KG_Q2K };

/* Contract: as the Q8_0_R16 one, k % 256 == 0. Loop order: sweep of RB rows,
 * token group, row group, all of K (no activation pass, no K chunks). */
INLINE void gemm_kg(int kind, int64_t k, int64_t n_rows, int64_t n_tok, const void *w,
                    size_t w_stride, const void *a, size_t a_stride, float *y, size_t y_stride)
{
    const int64_t nb = k / TS_QK_K;
    const size_t qb = kind == KG_Q6K ? 3072 : kind == KG_Q3K ? 1536 : 1024;
    const size_t mb = kind == KG_Q2K ? 320 : 288;
    const int64_t n_tg = (n_tok + NYMAX - 1) / NYMAX;
    for (int64_t sw = 0; sw < (n_rows + RB - 1) / RB * n_tg; sw++) {
        const int64_t r0 = sw / n_tg * RB, tok = sw % n_tg * NYMAX;
        const int64_t r1 = n_rows - r0 < RB ? n_rows : r0 + RB;
        const int ny = n_tok - tok < NYMAX ? (int)(n_tok - tok) : NYMAX;
        const char *at = (const char *)a + (size_t)tok * a_stride;
        float *yt = (float *)((char *)y + (size_t)tok * y_stride);
        for (int64_t row = r0; row < r1; row += 16) {
            const int nv = r1 - row < 16 ? (int)(r1 - row) : 16;
            const __mmask16 mask = (__mmask16)((1u << nv) - 1u);
            const uint8_t *g = (const uint8_t *)w + (size_t)row * w_stride;
            const uint8_t *gn = row + 16 < n_rows ? g + 16 * w_stride : NULL;
            ts_pf_plan pf = {0};
            if (ny >= 2)
                pf_plan_group(&pf, w, w_stride, n_rows, r0, r1, row, sw % n_tg, n_tg, 0, 1, 0,
                              nb, nb, qb, mb, nb);
#define Q6_CASE(NY_)                                                                           \
    case NY_:                                                                                  \
        if (kind == KG_Q2K)                                                                    \
            q2k_group(NY_, g, gn, nb, at, a_stride, &pf, yt + row, y_stride, mask);            \
        else if (kind == KG_Q3K)                                                               \
            q6k_group(NY_, 1, g, gn, nb, at, a_stride, &pf, yt + row, y_stride, mask);         \
        else                                                                                   \
            q6k_group(NY_, 0, g, gn, nb, at, a_stride, &pf, yt + row, y_stride, mask);         \
        break;
            switch (ny) {
                Q6_CASE(1) Q6_CASE(2) Q6_CASE(3) Q6_CASE(4)
                Q6_CASE(5) Q6_CASE(6) Q6_CASE(7) default: Q6_CASE(8)
            }
#undef Q6_CASE
        }
    }
}

GEMM_DECL(ts_gemm_q6_k_r16_q8_k_avx512)
{
    gemm_kg(KG_Q6K, k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);
}

GEMM_DECL(ts_gemm_q3_k_r16_q8_k_avx512)
{
    gemm_kg(KG_Q3K, k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);
}

GEMM_DECL(ts_gemm_q2_k_r16_q8_k_avx512)
{
    gemm_kg(KG_Q2K, k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);
}

void ts_simd_register_gemm_r16_avx512(ts_kernels *k)
{
#define SLOT(rt, fn, act) k->gemm[rt] = (ts_gemm_slot){fn, act, 16, NYMAX, #fn}
    SLOT(TS_QTYPE_Q8_0_R16, ts_gemm_q8_0_r16_q8_0_avx512, TS_ACT_Q8_0);
    SLOT(TS_QTYPE_Q4_0_R16, ts_gemm_q4_0_r16_q8_0_avx512, TS_ACT_Q8_0);
    SLOT(TS_QTYPE_Q4_K_R16, ts_gemm_q4_k_r16_q8_k_avx512, TS_ACT_Q8_K);
    SLOT(TS_QTYPE_Q6_K_R16, ts_gemm_q6_k_r16_q8_k_avx512, TS_ACT_Q8_K);
    SLOT(TS_QTYPE_Q5_0_R16, ts_gemm_q5_0_r16_q8_0_avx512, TS_ACT_Q8_0);
    SLOT(TS_QTYPE_Q5_K_R16, ts_gemm_q5_k_r16_q8_k_avx512, TS_ACT_Q8_K);
    SLOT(TS_QTYPE_Q3_K_R16, ts_gemm_q3_k_r16_q8_k_avx512, TS_ACT_Q8_K);
    SLOT(TS_QTYPE_Q2_K_R16, ts_gemm_q2_k_r16_q8_k_avx512, TS_ACT_Q8_K);
    SLOT(TS_QTYPE_Q4_1_R16, ts_gemm_q4_1_r16_q8_1_avx512, TS_ACT_Q8_1);
    SLOT(TS_QTYPE_Q5_1_R16, ts_gemm_q5_1_r16_q8_1_avx512, TS_ACT_Q8_1);
#undef SLOT
}
