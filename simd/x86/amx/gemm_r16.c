/*
 * simd/x86/amx/gemm_r16.c: AMX-INT8 GEMM tile for the Q8_0_R16 layout
 * (simd/repack.h) x Q8_0 activations.
 *
 * The _R16 quant region of one block is already AMX's VNNI "B" layout: 8
 * rows (4-byte steps) of 64 bytes (16 weight rows x 4 bytes), so it loads as
 * a B tile as it lies. The A tile is 16 tokens x 32 activation bytes, packed
 * per K chunk into a stack buffer (zero rows for missing tokens, so tile
 * loads never read past the caller's activations). One TDPBSUD per block
 * (s8 activations x u8 weights = q + 128) into a zeroed C tile gives the 16 x
 * 16 exact int32 block dots, C[tok][row] = dot + 128 * sum(a); after a
 * tilestored, per token on AVX-512 (lanes = rows):
 *   acc = fma(dw * da, (float)(C - 128 * sum(a)), acc)
 * block by block in K order: kernels.h's canonical order, so the same bits as
 * the scalar and avx512 levels (tested with memcmp where AMX exists).
 * Tiles: 0 = C (16 x 64 B), 1 = A (16 x 32 B), 2 = B (8 x 64 B). The palette
 * is loaded once per thread (thread-local flag) from static storage: GCC 12's
 * _tile_loadconfig tells the compiler it reads only 8 bytes, so a local
 * config's other stores could be dropped. _tile_loadd has no memory operand
 * either, hence the compiler barrier before tile loads of our stores.
 * Loop order: sweep of RB rows, token group of 16, K chunk (activation pack),
 * row group; the running acc crosses K chunks through y (exact).
 */
#include <immintrin.h>
#include <string.h>

#include "../../kernels.h"
#include "../../repack.h"

#define INLINE static inline __attribute__((always_inline))
#define NT 16  /* tokens per A / C tile */
#define NBC 64 /* blocks per K chunk: 32 KiB of packed activations */
#define RB 128 /* rows per sweep (weights stay in L2 across token groups) */

#define GEMM_DECL(name)                                                                       \
    void name(int64_t k, int64_t n_rows, int64_t n_tok, const void *restrict w,               \
              size_t w_stride, const void *restrict a, size_t a_stride, float *restrict y,     \
              size_t y_stride)
GEMM_DECL(ts_gemm_q8_0_r16_q8_0_amx);
GEMM_DECL(ts_gemm_q8_0_r16_q8_0_avx512); /* simd/x86/avx512/gemm_r16.c */
void ts_simd_register_gemm_r16_amx(ts_kernels *k);

typedef struct {
    uint8_t palette, start_row, rsvd[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

static const tilecfg g_cfg __attribute__((aligned(64))) = {
    .palette = 1, .colsb = {64, 32, 64}, .rows = {NT, NT, 8}};
static _Thread_local int t_tiles_ready;

static void tiles_config(void)
{
    if (!t_tiles_ready) {
        _tile_loadconfig(&g_cfg);
        t_tiles_ready = 1;
    }
}

#define BARRIER() __asm__ volatile("" ::: "memory")
#define YROW(t) ((float *)((char *)y + (size_t)(t) * y_stride))

/* Packs blocks [b0, b0 + n) of ny tokens: ab[(b * 16 + t) * 32] = qs, da, and
 * corr = 128 * sum(qs); tokens ny..15 get zeros. */
static void pack_q8_0(const void *a, size_t a_stride, int ny, int64_t b0, int64_t n, int8_t *ab,
                      float *da, int32_t *corr)
{
    const __m256i ones = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < n; b++)
        for (int t = 0; t < NT; t++) {
            const size_t i = (size_t)b * NT + (size_t)t;
            if (t >= ny) {
                memset(ab + 32 * i, 0, 32);
                da[i] = 0.0f;
                corr[i] = 0;
                continue;
            }
            const ts_block_q8_0 *blk =
                (const ts_block_q8_0 *)((const char *)a + (size_t)t * a_stride) + b0 + b;
            const __m256i v = _mm256_loadu_si256((const __m256i *)blk->qs);
            _mm256_storeu_si256((__m256i *)(ab + 32 * i), v);
            const __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, v);
            corr[i] = _mm512_reduce_add_epi32(_mm512_zextsi256_si512(s)) * 128;
            da[i] = _cvtsh_ss(blk->d);
        }
}

/* One row group (16 rows at g) x ny tokens over blocks [b0, b0 + n) of nb. */
INLINE void q8_group(int ny, const uint8_t *g, int64_t nb, int64_t b0, int64_t n, const int8_t *ab,
                     const float *da, const int32_t *corr, float *y, size_t y_stride,
                     __mmask16 mask)
{
    const uint8_t *meta = g + (size_t)nb * 512;
    int32_t cb[NT * 16] __attribute__((aligned(64)));
    __m512 acc[NT];
    for (int t = 0; t < ny; t++)
        acc[t] = b0 == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, YROW(t));
    for (int64_t blk = b0; blk < b0 + n; blk++) {
        const size_t i0 = (size_t)(blk - b0) * NT;
        _tile_zero(0);
        _tile_loadd(1, ab + 32 * i0, 32);
        _tile_loadd(2, g + (size_t)blk * 512, 64);
        _tile_dpbsud(0, 1, 2);
        _tile_stored(0, cb, 64);
        BARRIER();
        const __m512 dw =
            _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(meta + (size_t)blk * 32)));
        for (int t = 0; t < ny; t++) {
            const __m512i isum =
                _mm512_sub_epi32(_mm512_load_si512(cb + 16 * t), _mm512_set1_epi32(corr[i0 + t]));
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(da[i0 + t])),
                                     _mm512_cvtepi32_ps(isum), acc[t]);
        }
    }
    for (int t = 0; t < ny; t++)
        _mm512_mask_storeu_ps(YROW(t), mask, acc[t]);
}

/* Contract: ts_gemm_fn over a Q8_0_R16 matrix (simd/repack.h); w at a row
 * group start (tile row0 % 16 == 0); k % 32 == 0; any n_rows, n_tok >= 1; row
 * tails compute the group's padding lanes and store only the valid rows; only
 * the calling thread's tile state is used (configured on first call). Below
 * AMX_MIN_TOK tokens (decode) a 16-token tile is mostly padding: the avx512
 * kernel runs instead (same canonical order, same bits; measured on the
 * device box at n = 1: 51.6 vs 35.9 GOP/s). */
#define AMX_MIN_TOK 8
GEMM_DECL(ts_gemm_q8_0_r16_q8_0_amx)
{
    if (n_tok < AMX_MIN_TOK) {
        ts_gemm_q8_0_r16_q8_0_avx512(k, n_rows, n_tok, w, w_stride, a, a_stride, y, y_stride);
        return;
    }
    const int64_t nb = k / 32;
    int8_t ab[NBC * NT * 32] __attribute__((aligned(64)));
    float da[NBC * NT];
    int32_t corr[NBC * NT];
    tiles_config();
    const int64_t n_tg = (n_tok + NT - 1) / NT;
    for (int64_t sw = 0; sw < (n_rows + RB - 1) / RB * n_tg; sw++) {
        const int64_t r0 = sw / n_tg * RB, tok = sw % n_tg * NT;
        const int64_t r1 = n_rows - r0 < RB ? n_rows : r0 + RB;
        const int ny = n_tok - tok < NT ? (int)(n_tok - tok) : NT;
        const char *at = (const char *)a + (size_t)tok * a_stride;
        float *yt = (float *)((char *)y + (size_t)tok * y_stride);
        for (int64_t b0 = 0; b0 < nb; b0 += NBC) {
            const int64_t n = nb - b0 < NBC ? nb - b0 : NBC;
            pack_q8_0(at, a_stride, ny, b0, n, ab, da, corr);
            BARRIER(); /* the packed bytes are read by tile loads only */
            for (int64_t row = r0; row < r1; row += 16) {
                const int nv = r1 - row < 16 ? (int)(r1 - row) : 16;
                const __mmask16 mask = (__mmask16)((1u << nv) - 1u);
                const uint8_t *g = (const uint8_t *)w + (size_t)row * w_stride;
#define AMX_CASE(NY_)                                                                          \
    case NY_:                                                                                  \
        q8_group(NY_, g, nb, b0, n, ab, da, corr, yt + row, y_stride, mask);                   \
        break;
                switch (ny) {
                    AMX_CASE(1) AMX_CASE(2) AMX_CASE(3) AMX_CASE(4) AMX_CASE(5) AMX_CASE(6)
                    AMX_CASE(7) AMX_CASE(8) AMX_CASE(9) AMX_CASE(10) AMX_CASE(11)
                    AMX_CASE(12) AMX_CASE(13) AMX_CASE(14) AMX_CASE(15) default: AMX_CASE(16)
                }
#undef AMX_CASE
            }
        }
    }
}

void ts_simd_register_gemm_r16_amx(ts_kernels *k)
{
    k->gemm[TS_QTYPE_Q8_0_R16] = (ts_gemm_slot){ts_gemm_q8_0_r16_q8_0_amx, TS_ACT_Q8_0, 16, NT,
                                                "ts_gemm_q8_0_r16_q8_0_amx"};
}
