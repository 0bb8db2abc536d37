/*
 * simd/x86/amx/gemm_r16.c: AMX-INT8 GEMM tiles for the repacked layouts
 * (simd/repack.h): Q8_0_R16, Q4_0_R16, Q5_0_R16 x Q8_0 and Q4_K_R16, Q5_K_R16,
 * Q6_K_R16, Q3_K_R16 x Q8_K. Every kernel gives the scalar twin's bits (kernels.h's
 * canonical order: exact integer block or super-block sums, then the float
 * steps in K order), tested with memcmp where AMX exists and under tile.h's
 * emulation elsewhere. The two families are described above their code:
 * "Block-32 types" and "Q4_K_R16 / Q5_K_R16 / Q6_K_R16".
 */
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "../../kernels.h"
#include "../../repack.h"
#include "../prefetch.h"
#include "../r16_unpack.h"
#include "tile.h"

#define INLINE static inline __attribute__((always_inline))
#define UNROLL_KQ _Pragma("GCC unroll 8")
#define UNROLL _Pragma("GCC unroll 16")
#define YROW(t) ((float *)((char *)y + (size_t)(t) * y_stride))
#define NT 16  /* tokens per A / C tile */

#define GEMM_DECL(name)                                                                       \
    void name(int64_t k, int64_t n_rows, int64_t n_tok, const void *restrict w,               \
              size_t w_stride, const void *restrict a, size_t a_stride, float *restrict y,     \
              size_t y_stride)
GEMM_DECL(ts_gemm_q8_0_r16_q8_0_amx);
GEMM_DECL(ts_gemm_q4_0_r16_q8_0_amx);
GEMM_DECL(ts_gemm_q5_0_r16_q8_0_amx);
GEMM_DECL(ts_gemm_q8_0_r16_q8_0_avx512); /* simd/x86/avx512/gemm_r16.c */
GEMM_DECL(ts_gemm_q4_0_r16_q8_0_avx512);
GEMM_DECL(ts_gemm_q5_0_r16_q8_0_avx512);
void ts_simd_register_gemm_r16_amx(ts_kernels *k);

/* ---- Block-32 types: Q8_0_R16, Q4_0_R16, Q5_0_R16 x Q8_0 ----
 *
 * The canonical order (kernels.h) has one float step per 32-element block,
 * so each TDPBSSD covers one block (K = 32) and its C tile is read out every
 * block: these kernels are bound by that readout and float work, not by the
 * tile unit. Weights are expanded per row group and K chunk into signed bytes
 * q (Q8_0: the stored q + 128 ^ 0x80; Q4_0: nibble - 8; Q5_0: (nibble | hb <<
 * 4) - 16), laid out as the block's B tile: 8 rows (4-element steps) x 64
 * bytes (16 weight rows x 4 bytes), row kk = elements 4kk..4kk+3 (Q4_0/Q5_0:
 * rows 0..3 the low nibbles of R16 step kk, rows 4..7 the high nibbles of step
 * kk - 4). TDPBSSD (s8 x s8) of a token tile's 32 activation bytes gives the
 * exact block dots with no correction term, and per token (lanes = rows):
 *   acc = fma(dw * da, (float)dot, acc)
 * block by block: the scalar twin's bits. Loop order: token group of <=
 * B32_TG, K chunk of B32_NBK blocks (the group's activations packed into
 * aligned A tiles, 64 KiB, and da), row group (expand the chunk), token tile:
 * its 16 accumulators stay in zmm registers across the chunk's blocks (a first
 * version kept them in y, storing every block, and ran slower than avx512 on
 * the Xeon device), and block i + B32_AHEAD's product is issued before block
 * i's float work (C tiles 0..3 in turn, A and B double-buffered: 4/5, 6/7). */
#define B32_TG 128 /* tokens per group */
#define B32_NBK 16 /* blocks per K chunk: 64 KiB of packed A tiles */

static const ts_tile_cfg g_cfg_b32 __attribute__((aligned(64))) = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 32, 32, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 8, 8}};

/* Expands blocks [b0, b0 + n) of row group g (wt 0 Q8_0, 1 Q4_0, 2 Q5_0; qb
 * bytes per block's quant region) into ex[block][8 x 64 B]. Q5_0's 5th bit:
 * bit 2s (low nibble) or 2s + 1 (high) of the block's high-bit vector moved
 * to bit 4 of each byte, as the avx512 kernel does. */
INLINE void b32_expand(int wt, const uint8_t *g, int64_t b0, int64_t n, uint8_t *ex)
{
    const size_t qb = wt == 1 ? 256 : wt == 2 ? 320 : 512;
    const __m512i x80 = _mm512_set1_epi8((char)0x80);
    const __m512i bias = _mm512_set1_epi8(wt == 2 ? 16 : 8);
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *q = g + (size_t)(b0 + i) * qb;
        uint8_t *o = ex + (size_t)i * 512;
        if (wt == 0) {
            for (int s = 0; s < 8; s++)
                _mm512_store_si512(o + 64 * s,
                                   _mm512_xor_si512(_mm512_loadu_si512(q + 64 * s), x80));
            continue;
        }
        const __m512i hv = wt == 2 ? _mm512_loadu_si512(q + 256) : _mm512_setzero_si512();
        for (int s = 0; s < 4; s++) {
            const __m512i wv = _mm512_loadu_si512(q + 64 * s);
            __m512i lo, hi;
            ts_r16_q32_step(wv, hv, wt == 2, s, &lo, &hi);
            _mm512_store_si512(o + 64 * s, _mm512_sub_epi8(lo, bias));
            _mm512_store_si512(o + 64 * (4 + s), _mm512_sub_epi8(hi, bias));
        }
    }
}

/* Packs the group's tokens [t0, t0 + nt), blocks [b0, b0 + n), as A tiles
 * ap[tile][block][16 rows][32 B] and da[block][token] (rows past nt zero). */
static void b32_pack(const void *a, size_t a_stride, int64_t t0, int64_t nt, int64_t b0,
                     int64_t n, int8_t *ap, float *da)
{
    const int64_t end = (nt + 15) / 16 * 16;
    for (int64_t t = 0; t < end; t++) {
        const ts_block_q8_0 *ab =
            t < nt ? (const ts_block_q8_0 *)((const char *)a + (size_t)(t0 + t) * a_stride) + b0
                   : NULL;
        for (int64_t i = 0; i < n; i++) {
            int8_t *dst = ap + ((size_t)(t / 16) * B32_NBK + (size_t)i) * 512 + (size_t)(t % 16) * 32;
            if (ab) {
                _mm256_store_si256((__m256i *)dst, _mm256_loadu_si256((const __m256i *)ab[i].qs));
                da[i * B32_TG + t] = _cvtsh_ss(ab[i].d);
            } else {
                _mm256_store_si256((__m256i *)dst, _mm256_setzero_si256());
                da[i * B32_TG + t] = 0.0f;
            }
        }
    }
}

/* Step j's product, block i of one token tile (A tiles at at, B at ex): C
 * tile j % 4, A tile 4 + j % 2, B tile 6 + j % 2 (tile numbers are
 * immediates, hence the cases); b32_store reads C tile j % 4 back into cb. */
#define B32_TDP(C_, A_, B_)                                                                   \
    do {                                                                                      \
        TILE_ZERO(C_);                                                                        \
        TILE_LOAD(A_, at + (size_t)i * 512, 32);                                              \
        TILE_LOAD(B_, ex + (size_t)i * 512, 64);                                              \
        TILE_DPBSSD(C_, A_, B_);                                                              \
    } while (0)
INLINE void b32_tdp(const uint8_t *ex, const int8_t *at, int64_t i, int64_t j)
{
    switch (j & 3) {
    case 0: B32_TDP(0, 4, 6); break;
    case 1: B32_TDP(1, 5, 7); break;
    case 2: B32_TDP(2, 4, 6); break;
    default: B32_TDP(3, 5, 7); break;
    }
}
#undef B32_TDP

INLINE void b32_store(int64_t j, int32_t (*cb)[16])
{
    switch (j & 3) {
    case 0: TILE_STORE(0, cb, 64); break;
    case 1: TILE_STORE(1, cb, 64); break;
    case 2: TILE_STORE(2, cb, 64); break;
    default: TILE_STORE(3, cb, 64); break;
    }
}

/* Blocks whose products are in flight ahead of the float work (B32_AHEAD),
 * and how far ahead of it each C tile is stored (B32_LAG <= B32_AHEAD): the C
 * readout (tile store, then vector loads of it) has a long latency, and one
 * block's float work is short. A store issued right behind its own TDPBSSD
 * (LAG == AHEAD) makes the tile unit wait out that product's latency. */
#define B32_AHEAD 3
#define B32_LAG 2

/* One row group (metadata meta) over the chunk's n blocks from matrix block
 * b0, all ntt token tiles of the group (nt valid tokens, the rest padding
 * with da 0) as one stream of steps j = (token tile j / n, block j % n), so
 * the tile pipeline never drains between token tiles. acc in registers for
 * the current token tile, from y (or 0 at b0 == 0), back to y after its last
 * block. */
INLINE void b32_rowgroup(const uint8_t *ex, const int8_t *ap, const float *da, int64_t ntt,
                         int64_t nt, int64_t b0, int64_t n, const uint8_t *meta,
                         const ts_pf_plan *pf, float *y, size_t y_stride, __mmask16 mask)
{
    int32_t cb[4][16][16] __attribute__((aligned(64)));
    __m512 acc[16];
    const int64_t steps = ntt * n;
    /* Step j's TDPBSSD is issued at iteration j - AHEAD and its store at
     * j - LAG (negative: before the loop), its float work at j. */
#define B32_AT(j) (ap + (size_t)((j) / n) * B32_NBK * 512)
#define B32_I(j) ((j) % n)
    for (int64_t j = 0; j < steps && j < B32_AHEAD; j++)
        b32_tdp(ex, B32_AT(j), B32_I(j), j);
    for (int64_t j = 0; j < steps && j < B32_LAG; j++)
        b32_store(j, cb[j & 3]);
    for (int64_t tt = 0, j = 0; tt < ntt; tt++) {
        const int ntok = nt - 16 * tt < 16 ? (int)(nt - 16 * tt) : 16;
        UNROLL for (int t = 0; t < 16; t++)
            acc[t] = b0 == 0 || t >= ntok ? _mm512_setzero_ps()
                                          : _mm512_maskz_loadu_ps(mask, YROW(16 * tt + t));
        for (int64_t i = 0; i < n; i++, j++) {
            ts_pf_step(pf, j);
            if (j + B32_AHEAD < steps)
                b32_tdp(ex, B32_AT(j + B32_AHEAD), B32_I(j + B32_AHEAD), j + B32_AHEAD);
            if (j + B32_LAG < steps)
                b32_store(j + B32_LAG, cb[(j + B32_LAG) & 3]);
            TILE_BARRIER(); /* cb is written by tile stores */
            const __m512 dw = _mm512_cvtph_ps(
                _mm256_loadu_si256((const __m256i *)(meta + (size_t)(b0 + i) * 32)));
            const float *dai = da + i * B32_TG + 16 * tt;
            /* A token tile's padding rows are never stored, so a partial
             * tile (an expert's last 1-15 tokens) skips their readout: the
             * readout, not the tile product, bounds this kernel. */
#define B32_ROW(t)                                                                            \
    acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(dai[t])),                       \
                             _mm512_cvtepi32_ps(_mm512_load_si512(cb[j & 3][t])), acc[t])
            if (ntok == 16) {
                UNROLL for (int t = 0; t < 16; t++)
                    B32_ROW(t);
            } else {
                UNROLL for (int t = 0; t < 16; t++)
                    if (t < ntok)
                        B32_ROW(t);
            }
#undef B32_ROW
        }
        for (int t = 0; t < ntok; t++)
            _mm512_mask_storeu_ps(YROW(16 * tt + t), mask, acc[t]);
    }
#undef B32_AT
#undef B32_I
}

/* Contract: ts_gemm_fn over a Q8_0_R16 / Q4_0_R16 / Q5_0_R16 matrix
 * (simd/repack.h); w at a row group start (tile row0 % 16 == 0); k % 32 == 0;
 * any n_rows, n_tok >= 1; row tails compute the group's padding lanes and
 * store only the valid rows; only the calling thread's tile state is used
 * (configured on first call). Below AMX_MIN_TOK tokens (decode) a 16-token
 * tile is mostly padding: the avx512 kernel runs instead (same canonical
 * order, same bits). */
INLINE void b32_gemm(int wt, int64_t k, int64_t n_rows, int64_t n_tok, const void *w,
                     size_t w_stride, const void *a, size_t a_stride, float *y, size_t y_stride)
{
    const int64_t nb = k / 32;
    const size_t qb = wt == 1 ? 256 : wt == 2 ? 320 : 512;
    uint8_t ex[B32_NBK * 512] __attribute__((aligned(64)));
    int8_t ap[B32_TG / 16 * B32_NBK * 512] __attribute__((aligned(64)));
    float da[B32_NBK * B32_TG];
    tile_config(&g_cfg_b32);
    for (int64_t t0 = 0; t0 < n_tok; t0 += B32_TG) {
        const int64_t nt = n_tok - t0 < B32_TG ? n_tok - t0 : B32_TG;
        const int64_t ntt = (nt + 15) / 16;
        float *yg = (float *)((char *)y + (size_t)t0 * y_stride);
        for (int64_t b0 = 0; b0 < nb; b0 += B32_NBK) {
            const int64_t n = nb - b0 < B32_NBK ? nb - b0 : B32_NBK;
            b32_pack(a, a_stride, t0, nt, b0, n, ap, da);
            for (int64_t row = 0; row < n_rows; row += 16) {
                const int nv = n_rows - row < 16 ? (int)(n_rows - row) : 16;
                const uint8_t *g = (const uint8_t *)w + (size_t)row * w_stride;
                /* The next row group's chunk (or the first one's next chunk)
                 * streams in during this one's steps (simd/x86/prefetch.h). */
                ts_pf_plan pf = {0};
                const int64_t nrow = row + 16 < n_rows ? row + 16 : 0;
                const int64_t nb0 = row + 16 < n_rows ? b0 : b0 + B32_NBK;
                if (nb0 < nb) {
                    const int64_t nn = nb - nb0 < B32_NBK ? nb - nb0 : B32_NBK;
                    const uint8_t *gn = (const uint8_t *)w + (size_t)nrow * w_stride;
                    ts_pf_add(&pf, gn + (size_t)nb0 * qb, (size_t)nn * qb, ntt * n);
                    ts_pf_add(&pf, gn + (size_t)nb * qb + (size_t)nb0 * 32, (size_t)nn * 32,
                              ntt * n);
                }
                b32_expand(wt, g, b0, n, ex);
                TILE_BARRIER(); /* the packed and expanded bytes are read by tile loads */
                b32_rowgroup(ex, ap, da, ntt, nt, b0, n, g + (size_t)nb * qb, &pf, yg + row,
                             y_stride, (__mmask16)((1u << nv) - 1u));
            }
        }
    }
}

#define AMX_MIN_TOK 8
GEMM_DECL(ts_gemm_q8_0_r16_q8_0_amx)
{
    if (n_tok < AMX_MIN_TOK)
        ts_gemm_q8_0_r16_q8_0_avx512(k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);
    else
        b32_gemm(0, k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);
}

GEMM_DECL(ts_gemm_q4_0_r16_q8_0_amx)
{
    if (n_tok < AMX_MIN_TOK)
        ts_gemm_q4_0_r16_q8_0_avx512(k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);
    else
        b32_gemm(1, k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);
}

GEMM_DECL(ts_gemm_q5_0_r16_q8_0_amx)
{
    if (n_tok < AMX_MIN_TOK)
        ts_gemm_q5_0_r16_q8_0_avx512(k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);
    else
        b32_gemm(2, k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);
}

/* ---- Q4_K_R16 / Q5_K_R16 / Q6_K_R16 x Q8_K ----
 *
 * The K-quants carry an integer scale per 32 (Q4_K) or 16 (Q6_K) weights
 * inside a 256-weight super-block, and the canonical order (kernels.h) wants
 * the super-block's exact integer sum before its one float step. AMX cannot
 * scale inside a tile product, so each row group's weights are expanded, per
 * K chunk into a stack buffer, to w' = sc * q + off and split into bytes,
 * w' = 256 * hi + lo:
 *   Q4_K: w' = sc * q (q 0..15, sc 0..63: 0..945), off 0;
 *   Q5_K: the same with q 0..31 (0..1953), and Q4_K's float steps below;
 *   Q3_K: w' = sc * (u - 4) + 128 (u = stored 0..7, sc -32..31: 0..256), and
 *         Q6_K's float step below with 128 for 4096;
 *   Q6_K: w' = sc * (u - 32) + 4096 (u = stored 0..63, sc -128..127: 128..8192),
 *         computed as sc * u + (4096 - 32 sc).
 * Two u8 B tiles per 64 weights (lo, hi) against one s8 A tile of 16 tokens'
 * activations, loaded straight from the Q8_K rows, give
 *   C_lo = sum lo * a,  C_hi = sum hi * a,  sum w' * a = 256 * C_hi + C_lo,
 * so per super-block and token (lanes = the 16 rows):
 *   Q4_K: isum = 256 C_hi + C_lo (= sum_j sc_j dot_j), then as avx512:
 *         acc = fma(dw * da, (float)isum, acc); acc = fma(-dm * da, (float)msum, acc)
 *   Q6_K: isum = 256 C_hi + C_lo - 4096 sum(a) (= sum_g sc_g (dot_g - 32 bsum_g)),
 *         acc = fma(dw * da, (float)isum, acc)
 * The integers are the scalar twin's, exactly (int32 wraps are modular and
 * the final sum fits), so the bits are the same at every level.
 * The B tile rows follow the R16 steps: K tile c (elements 64c..64c+63) is
 * R16 chunk c, whose step s gives B row s (low nibbles, elements 64c + 4s..)
 * and row 8 + s (high nibbles, elements 64c + 32 + 4s..), so A loads a token's
 * 64 activation bytes as they lie. Tiles: 0..3 = C (lo, hi) x 2 token tiles,
 * 4, 5 = A (16 tokens x 64 B) of the two token tiles, 6, 7 = B (lo, hi).
 * Loop order: token group of <= KQ_TG, super-block (per-token da, min pairs
 * or sum(a), and the group's activations packed into aligned 1 KiB A tiles:
 * 32 KiB that stay in L1 across every row group), then steps (row group,
 * token tile pair). Measured on the Xeon device: with A tiles loaded from
 * the Q8_K rows themselves (strided, unaligned, from L2) the tile loads, not
 * TDPBSUD, bounded the kernel. The steps are software-pipelined: step s + 1's
 * tile products (and, at a row group change, the next group's expansion into
 * the other buffer) are issued before step s's float work, so the AMX unit
 * and the vector ports overlap. acc goes through y between super-blocks (a
 * float store/load is exact). The expansion costs about as much as a few
 * token tiles of products, so the slot asks the engine for KQ_TG-token blocks. */
#define KQ_TG 128 /* tokens per group: 32 KiB of packed A tiles per super-block */

static const ts_tile_cfg g_cfg_kq __attribute__((aligned(64))) = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16}};

GEMM_DECL(ts_gemm_q4_k_r16_q8_k_amx);
GEMM_DECL(ts_gemm_q5_k_r16_q8_k_amx);
GEMM_DECL(ts_gemm_q6_k_r16_q8_k_amx);
GEMM_DECL(ts_gemm_q3_k_r16_q8_k_amx);
GEMM_DECL(ts_gemm_q3_k_r16_q8_k_avx512);
GEMM_DECL(ts_gemm_q4_k_r16_q8_k_avx512); /* simd/x86/avx512/gemm_r16.c */
GEMM_DECL(ts_gemm_q5_k_r16_q8_k_avx512);
GEMM_DECL(ts_gemm_q6_k_r16_q8_k_avx512);

/* One row group's super-block as B tiles: [lo, hi][K tile][16 x 64 B]. */
typedef uint8_t kq_expanded[2][4][1024];

/* Per token of the group, for the current super-block. */
typedef struct {
    float da[KQ_TG];
    int32_t mp[KQ_TG][4]; /* Q4_K: (S_2i, S_2i+1) int16 pairs */
    int32_t nas[KQ_TG];   /* Q6_K: -4096 * sum(a) */
} kq_tokens;

/* w' = x * scw + off (words) split into its low and high bytes, byte
 * positions kept: x holds u8 values, scw the row's scale and off the row's
 * offset, each in both words of each dword lane. */
INLINE void kq_split(__m512i x, __m512i scw, __m512i off, int has_off, __m512i *lo,
                     __m512i *hi)
{
    const __m512i m_lo = _mm512_set1_epi16(0x00ff), m_hi = _mm512_set1_epi16((short)0xff00);
    __m512i pe = _mm512_mullo_epi16(_mm512_and_si512(x, m_lo), scw);
    __m512i po = _mm512_mullo_epi16(_mm512_srli_epi16(x, 8), scw);
    if (has_off) {
        pe = _mm512_add_epi16(pe, off);
        po = _mm512_add_epi16(po, off);
    }
    /* (a & b) | c = ternlog 0xEA */
    *lo = _mm512_ternarylogic_epi32(pe, m_lo, _mm512_slli_epi16(po, 8), 0xEA);
    *hi = _mm512_ternarylogic_epi32(po, m_hi, _mm512_srli_epi16(pe, 8), 0xEA);
}

/* An int32 lane value v (a small scale) in both words of the lane. */
INLINE __m512i kq_words(__m512i v)
{
    return _mm512_or_si512(_mm512_and_si512(v, _mm512_set1_epi32(0xffff)),
                           _mm512_slli_epi32(v, 16));
}

/* Expands super-block blk of the Q4_K_R16 (q5 0) or Q5_K_R16 (q5 1) row
 * group g. Q5_K: q = nibble | 5th bit << 4 (0..31; sc * q <= 1953, so the
 * high byte stays <= 7), the bit moved as the avx512 kernel moves it. */
INLINE void kq_expand_q45k(int q5, const uint8_t *g, int64_t nb, int64_t blk, kq_expanded ex)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f), m10 = _mm512_set1_epi8(0x10);
    const __m512i zero = _mm512_setzero_si512();
    const size_t qb = q5 ? 2560 : 2048;
    const uint8_t *q = g + (size_t)blk * qb;
    const uint8_t *meta = g + (size_t)nb * qb + (size_t)blk * 320;
    for (int c = 0; c < 4; c++) {
        const __m512i sc0 = kq_words(
            _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(meta + 32 * c))));
        const __m512i sc1 = kq_words(
            _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(meta + 32 * c + 16))));
        uint8_t *lo = ex[0][c], *hi = ex[1][c];
        UNROLL_KQ for (int s = 0; s < 8; s++) {
            const __m512i v = _mm512_loadu_si512(q + 512 * c + 64 * s);
            __m512i x0 = _mm512_and_si512(v, m4);
            __m512i x1 = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            if (q5) { /* sub-blocks 2c and 2c + 1: bits 2c, 2c + 1 of the step's qh bytes */
                const __m512i hv = _mm512_loadu_si512(q + 2048 + 64 * s);
                const __m512i h0 = c < 2 ? _mm512_slli_epi16(hv, 4 - 2 * c)
                                         : _mm512_srli_epi16(hv, 2 * c - 4);
                const __m512i h1 = c < 2 ? _mm512_slli_epi16(hv, 3 - 2 * c)
                                         : _mm512_srli_epi16(hv, 2 * c - 3);
                x0 = _mm512_ternarylogic_epi32(x0, h0, m10, 0xF8);
                x1 = _mm512_ternarylogic_epi32(x1, h1, m10, 0xF8);
            }
            __m512i l, h;
            kq_split(x0, sc0, zero, 0, &l, &h);
            _mm512_store_si512(lo + 64 * s, l);
            _mm512_store_si512(hi + 64 * s, h);
            kq_split(x1, sc1, zero, 0, &l, &h);
            _mm512_store_si512(lo + 64 * (8 + s), l);
            _mm512_store_si512(hi + 64 * (8 + s), h);
        }
    }
}

/* Expands super-block blk of the Q6_K_R16 (q3 0) or Q3_K_R16 (q3 1) row
 * group g (layouts in simd/repack.h; the same bit assembly as the avx512
 * kernel). Q3_K: w' = sc * (u - 4) + 128 (0..256), as sc * u + (128 - 4 sc). */
INLINE void kq_expand_q36k(int q3, const uint8_t *g, int64_t nb, int64_t blk, kq_expanded ex)
{
    const __m512i kbias = _mm512_set1_epi16(q3 ? 128 : 4096);
    const size_t qb = q3 ? 1536 : 3072;
    const uint8_t *q = g + (size_t)blk * qb;
    const uint8_t *meta = g + (size_t)nb * qb + (size_t)blk * 288;
    for (int c = 0; c < 4; c++) {
        uint8_t *lo = ex[0][c], *hi = ex[1][c];
        for (int nib = 0; nib < 2; nib++) { /* sub-block j = 2c + nib */
            const int j = 2 * c + nib;
            const uint8_t *ql = q3 ? q + 512 * (j / 4) : q + 512 * c;
            const uint8_t *qh = q3 ? q + 1024 : q + 2048 + 512 * (c / 2);
            /* (sc 2j, sc 2j+1) of row r: groups 2j (steps 0..3), 2j+1 (4..7). */
            const __m512i scp =
                _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(meta + 32 * j)));
            const __m512i scw[2] = {
                kq_words(_mm512_srai_epi32(_mm512_slli_epi32(scp, 16), 16)),
                kq_words(_mm512_srai_epi32(scp, 16))};
            const int sh = q3 ? 2 : 5; /* the bias 4 or 32 */
            const __m512i off[2] = {
                _mm512_sub_epi16(kbias, _mm512_slli_epi16(scw[0], sh)),
                _mm512_sub_epi16(kbias, _mm512_slli_epi16(scw[1], sh))};
            UNROLL_KQ for (int s = 0; s < 8; s++) {
                const __m512i lv = _mm512_loadu_si512(ql + 64 * s);
                const __m512i hv = _mm512_loadu_si512(qh + 64 * s);
                const __m512i u = q3 ? ts_r16_q3_k_step(lv, hv, j) : ts_r16_q6_k_step(lv, hv, j);
                __m512i l, h;
                kq_split(u, scw[s / 4], off[s / 4], 1, &l, &h);
                _mm512_store_si512(lo + 64 * (8 * nib + s), l);
                _mm512_store_si512(hi + 64 * (8 * nib + s), h);
            }
        }
    }
}

/* Per-token data of the group's tokens [t0, t0 + nt) for super-block blk,
 * and their activation bytes packed as A tiles: ap[tile][K tile c][row][64]
 * (rows past nt zero, so tile loads never read past the caller's rows). da;
 * Q4_K: the min pairs (S_2i, S_2i+1), S_j = bsums[2j] + bsums[2j+1], as
 * pass_q8_k in the avx512 level; Q6_K: -4096 * sum(a). */
static void kq_token_pass(int is_q6, int32_t kbias, const void *a, size_t a_stride, int64_t t0,
                          int64_t nt, int64_t blk, kq_tokens *td, int8_t *ap)
{
    for (int64_t t = 0; t < nt; t++) {
        const ts_block_q8_k *ab =
            (const ts_block_q8_k *)((const char *)a + (size_t)(t0 + t) * a_stride) + blk;
        td->da[t] = ab->d;
        const __m256i bs = _mm256_loadu_si256((const __m256i *)ab->bsums);
        const __m256i s32 = _mm256_madd_epi16(bs, _mm256_set1_epi16(1));
        if (is_q6) {
            const __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s32),
                                            _mm256_extracti128_si256(s32, 1));
            const __m128i h2 = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
            const __m128i h1 = _mm_add_epi32(h2, _mm_shuffle_epi32(h2, 0xb1));
            td->nas[t] = -kbias * _mm_cvtsi128_si32(h1);
        } else {
            _mm_storeu_si128((__m128i *)td->mp[t],
                             _mm_packs_epi32(_mm256_castsi256_si128(s32),
                                             _mm256_extracti128_si256(s32, 1)));
        }
        int8_t *dst = ap + (size_t)(t / 16) * 4096 + (size_t)(t % 16) * 64;
        for (int c = 0; c < 4; c++)
            _mm512_store_si512(dst + 1024 * c, _mm512_loadu_si512(ab->qs + 64 * c));
    }
    const int64_t end = (nt + 15) / 16 * 16;
    for (int64_t t = nt; t < end; t++) {
        int8_t *dst = ap + (size_t)(t / 16) * 4096 + (size_t)(t % 16) * 64;
        for (int c = 0; c < 4; c++)
            _mm512_store_si512(dst + 1024 * c, _mm512_setzero_si512());
    }
}

/* One step's tile products: the expanded super-block ex of one row group x
 * token tiles tt and tt + 1 (when two) of the packed group ap, into cb. */
INLINE void kq_tiles(const kq_expanded ex, const int8_t *ap, int64_t tt, int two,
                     int32_t (*cb)[16][16])
{
    TILE_ZERO(0);
    TILE_ZERO(1);
    if (two) {
        TILE_ZERO(2);
        TILE_ZERO(3);
    }
    for (int c = 0; c < 4; c++) {
        /* Tile numbers are immediates: each load spelled out. */
        TILE_LOAD(6, ex[0][c], 64);
        TILE_LOAD(7, ex[1][c], 64);
        TILE_LOAD(4, ap + (size_t)tt * 4096 + 1024 * (size_t)c, 64);
        TILE_DPBSUD(0, 4, 6);
        TILE_DPBSUD(1, 4, 7);
        if (two) {
            TILE_LOAD(5, ap + (size_t)(tt + 1) * 4096 + 1024 * (size_t)c, 64);
            TILE_DPBSUD(2, 5, 6);
            TILE_DPBSUD(3, 5, 7);
        }
    }
    TILE_STORE(0, cb[0], 64);
    TILE_STORE(1, cb[1], 64);
    if (two) {
        TILE_STORE(2, cb[2], 64);
        TILE_STORE(3, cb[3], 64);
    }
}

/* One step's float work: tokens [tok0, tok1) of the group, super-block blk
 * (meta: its row group's metadata), from cb; acc in y (zero at blk 0). */
INLINE void kq_float(int is_q6, const kq_tokens *td, int64_t blk, const uint8_t *meta,
                     int64_t tok0, int64_t tok1, int32_t (*cb)[16][16], float *y,
                     size_t y_stride, __mmask16 mask)
{
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(meta + 256)));
    __m512 ndm = _mm512_setzero_ps();
    __m512i mn[4];
    if (!is_q6) {
        /* -(dm * da) == (-dm) * da exactly (IEEE multiply is sign-symmetric). */
        ndm = _mm512_xor_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(meta + 288))),
                            _mm512_set1_ps(-0.0f));
        for (int m = 0; m < 4; m++)
            mn[m] = _mm512_cvtepu8_epi16(
                _mm256_loadu_si256((const __m256i *)(meta + 128 + 32 * m)));
    }
    for (int64_t t = tok0; t < tok1; t++) {
        const int h = (int)((t - tok0) / 16), r = (int)((t - tok0) % 16);
        __m512i isum = _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512(cb[2 * h + 1][r]), 8),
                                        _mm512_load_si512(cb[2 * h][r]));
        if (is_q6)
            isum = _mm512_add_epi32(isum, _mm512_set1_epi32(td->nas[t]));
        float *yr = (float *)((char *)y + (size_t)t * y_stride);
        __m512 acc = blk == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, yr);
        const __m512 da = _mm512_set1_ps(td->da[t]);
        acc = _mm512_fmadd_ps(_mm512_mul_ps(dw, da), _mm512_cvtepi32_ps(isum), acc);
        if (!is_q6) {
            const int32_t *mp = td->mp[t];
            __m512i msum = _mm512_madd_epi16(mn[0], _mm512_set1_epi32(mp[0]));
            for (int m = 1; m < 4; m++)
                msum = _mm512_dpwssd_epi32(msum, mn[m], _mm512_set1_epi32(mp[m]));
            acc = _mm512_fmadd_ps(_mm512_mul_ps(ndm, da), _mm512_cvtepi32_ps(msum), acc);
        }
        _mm512_mask_storeu_ps(yr, mask, acc);
    }
}

/* kt: KQ_Q4K, KQ_Q6K or KQ_Q5K (Q5_K is Q4_K with a 5th bit: same metadata,
 * min term and float step). */
enum { KQ_Q4K, KQ_Q6K, KQ_Q5K, KQ_Q3K };

INLINE void kq_expand(int kt, const uint8_t *g, int64_t nb, int64_t blk, kq_expanded ex)
{
    if (kt == KQ_Q6K)
        kq_expand_q36k(0, g, nb, blk, ex);
    else if (kt == KQ_Q3K)
        kq_expand_q36k(1, g, nb, blk, ex);
    else if (kt == KQ_Q5K)
        kq_expand_q45k(1, g, nb, blk, ex);
    else
        kq_expand_q45k(0, g, nb, blk, ex);
}

/* The K-quant kernels: contract as the Q8_0_R16 one, k % 256 == 0. */
INLINE void kq_gemm(int kt, int64_t k, int64_t n_rows, int64_t n_tok, const void *w,
                    size_t w_stride, const void *a, size_t a_stride, float *y, size_t y_stride)
{
    /* is_q6: the Q6_K-like float step (sum(a) bias, no min term), Q3_K too. */
    const int is_q6 = kt == KQ_Q6K || kt == KQ_Q3K;
    const int64_t nb = k / TS_QK_K, n_rg = (n_rows + 15) / 16;
    const size_t qb = kt == KQ_Q6K ? 3072 : kt == KQ_Q3K ? 1536 : kt == KQ_Q5K ? 2560 : 2048;
    const size_t mb = is_q6 ? 288 : 320;
    kq_expanded ex[2] __attribute__((aligned(64)));
    kq_tokens td;
    int8_t ap[KQ_TG / 16 * 4096] __attribute__((aligned(64)));
    int32_t cb[2][4][16][16] __attribute__((aligned(64)));
    ts_pf_plan pf = {0};
    tile_config(&g_cfg_kq);
    for (int64_t t0 = 0; t0 < n_tok; t0 += KQ_TG) {
        const int64_t nt = n_tok - t0 < KQ_TG ? n_tok - t0 : KQ_TG;
        const int64_t ntt = (nt + 15) / 16, n_pairs = (ntt + 1) / 2, n_steps = n_rg * n_pairs;
        float *yg = (float *)((char *)y + (size_t)t0 * y_stride);
        for (int64_t blk = 0; blk < nb; blk++) {
            kq_token_pass(is_q6, kt == KQ_Q3K ? 128 : 4096, a, a_stride, t0, nt, blk, &td, ap);
            kq_expand(kt, (const uint8_t *)w, nb, blk, ex[0]);
            TILE_BARRIER(); /* the packed and expanded bytes are read by tile loads */
            kq_tiles(ex[0], ap, 0, ntt > 1, cb[0]);
            for (int64_t st = 0; st < n_steps; st++) {
                const int64_t rg = st / n_pairs, tt = 2 * (st % n_pairs);
                if (st % n_pairs == 0) {
                    /* Row group rg + 2's super-block (rg + 1's is expanded
                     * during this group's last step), or the next
                     * super-block's first groups: in flight over this
                     * group's steps (simd/x86/prefetch.h). */
                    const int64_t prg = rg + 2 < n_rg ? rg + 2 : rg + 2 - n_rg;
                    const int64_t pblk = rg + 2 < n_rg ? blk : blk + 1;
                    pf.n = 0;
                    if (pblk < nb && prg < n_rg) {
                        const uint8_t *gp = (const uint8_t *)w + (size_t)(16 * prg) * w_stride;
                        ts_pf_add(&pf, gp + (size_t)pblk * qb, qb, n_pairs);
                        ts_pf_add(&pf, gp + (size_t)nb * qb + (size_t)pblk * mb, mb, n_pairs);
                    }
                }
                ts_pf_step(&pf, st % n_pairs);
                if (st + 1 < n_steps) {
                    const int64_t rg1 = (st + 1) / n_pairs, tt1 = 2 * ((st + 1) % n_pairs);
                    if (rg1 != rg) {
                        kq_expand(kt, (const uint8_t *)w + (size_t)(16 * rg1) * w_stride, nb,
                                  blk, ex[rg1 & 1]);
                        TILE_BARRIER();
                    }
                    kq_tiles(ex[rg1 & 1], ap, tt1, tt1 + 1 < ntt, cb[(st + 1) & 1]);
                }
                TILE_BARRIER(); /* cb is written by tile stores */
                const int nv = n_rows - 16 * rg < 16 ? (int)(n_rows - 16 * rg) : 16;
                const uint8_t *g = (const uint8_t *)w + (size_t)(16 * rg) * w_stride;
                kq_float(is_q6, &td, blk, g + (size_t)nb * qb + (size_t)blk * mb, 16 * tt,
                         16 * tt + 32 < nt ? 16 * tt + 32 : nt, cb[st & 1], yg + 16 * rg,
                         y_stride, (__mmask16)((1u << nv) - 1u));
            }
        }
    }
}

/* The K-quant entries: below AMX_MIN_TOK tokens the avx512 kernel (same bits). */
#define KQ_ENTRY(T_, KT_)                                                                      \
    GEMM_DECL(ts_gemm_##T_##_r16_q8_k_amx)                                                     \
    {                                                                                          \
        if (n_tok < AMX_MIN_TOK)                                                               \
            ts_gemm_##T_##_r16_q8_k_avx512(k, n_rows, n_tok, w, w_stride, a, a_stride, y,      \
                                           y_stride);                                          \
        else                                                                                   \
            kq_gemm(KT_, k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);             \
    }
KQ_ENTRY(q4_k, KQ_Q4K)

KQ_ENTRY(q5_k, KQ_Q5K)

KQ_ENTRY(q3_k, KQ_Q3K)

KQ_ENTRY(q6_k, KQ_Q6K)

void ts_simd_register_gemm_r16_amx(ts_kernels *k)
{
    k->gemm[TS_QTYPE_Q8_0_R16] = (ts_gemm_slot){ts_gemm_q8_0_r16_q8_0_amx, TS_ACT_Q8_0, 16, NT,
                                                "ts_gemm_q8_0_r16_q8_0_amx"};
    k->gemm[TS_QTYPE_Q4_0_R16] = (ts_gemm_slot){ts_gemm_q4_0_r16_q8_0_amx, TS_ACT_Q8_0, 16, NT,
                                                "ts_gemm_q4_0_r16_q8_0_amx"};
    k->gemm[TS_QTYPE_Q5_0_R16] = (ts_gemm_slot){ts_gemm_q5_0_r16_q8_0_amx, TS_ACT_Q8_0, 16, NT,
                                                "ts_gemm_q5_0_r16_q8_0_amx"};
    k->gemm_tok_block[TS_QTYPE_Q8_0_R16] = B32_TG;
    k->gemm_tok_block[TS_QTYPE_Q4_0_R16] = B32_TG;
    k->gemm_tok_block[TS_QTYPE_Q5_0_R16] = B32_TG;
    /* Wide token blocks: each tile expands its rows' weights once (above). */
    k->gemm[TS_QTYPE_Q4_K_R16] = (ts_gemm_slot){ts_gemm_q4_k_r16_q8_k_amx, TS_ACT_Q8_K, 16, NT,
                                                "ts_gemm_q4_k_r16_q8_k_amx"};
    k->gemm[TS_QTYPE_Q6_K_R16] = (ts_gemm_slot){ts_gemm_q6_k_r16_q8_k_amx, TS_ACT_Q8_K, 16, NT,
                                                "ts_gemm_q6_k_r16_q8_k_amx"};
    k->gemm[TS_QTYPE_Q5_K_R16] = (ts_gemm_slot){ts_gemm_q5_k_r16_q8_k_amx, TS_ACT_Q8_K, 16, NT,
                                                "ts_gemm_q5_k_r16_q8_k_amx"};
    k->gemm_tok_block[TS_QTYPE_Q4_K_R16] = KQ_TG;
    k->gemm[TS_QTYPE_Q3_K_R16] = (ts_gemm_slot){ts_gemm_q3_k_r16_q8_k_amx, TS_ACT_Q8_K, 16, NT,
                                                "ts_gemm_q3_k_r16_q8_k_amx"};
    k->gemm_tok_block[TS_QTYPE_Q5_K_R16] = KQ_TG;
    k->gemm_tok_block[TS_QTYPE_Q3_K_R16] = KQ_TG;
    k->gemm_tok_block[TS_QTYPE_Q6_K_R16] = KQ_TG;
}
