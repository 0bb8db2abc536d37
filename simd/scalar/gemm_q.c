/*
 * simd/scalar/gemm_q.c: scalar GEMM tile kernels for the quantized types:
 * the oracle twin of every SIMD kernel.
 *
 * Each weight block is decoded once per row into integers (quants as the
 * format defines their signed value, integer scale and min per group of 16),
 * then dotted with every token's activation block. Per output the canonical
 * order of kernels.h is followed exactly:
 *   acc = fmaf(dw * da, (float)isum, acc)
 *   acc = fmaf(second scale, (float)second integer, acc)   (Q4_1/Q5_1: mw * sa;
 *                                                          Q2_K/Q4_K/Q5_K: -(dmin*da) * msum)
 * The running acc lives in y itself (a float store/load is exact), so the loop
 * order row -> block -> token keeps one decode per block.
 * Does not own: IQ2_XXS (simd/scalar/gemm_iq2.c, with the grid of quant/).
 */
#include <math.h>
#include <string.h>

#include "../kernels.h"
#include "../repack.h"
#include "util.h"

#define N_GEMM_Q_DECL(name)                                                                   \
    void name(int64_t k, int64_t n_rows, int64_t n_tok, const void *restrict w,               \
              size_t w_stride, const void *restrict a, size_t a_stride, float *restrict y,     \
              size_t y_stride)
N_GEMM_Q_DECL(ts_gemm_q4_0_q8_0_scalar);
N_GEMM_Q_DECL(ts_gemm_q5_0_q8_0_scalar);
N_GEMM_Q_DECL(ts_gemm_q8_0_q8_0_scalar);
N_GEMM_Q_DECL(ts_gemm_q4_1_q8_1_scalar);
N_GEMM_Q_DECL(ts_gemm_q5_1_q8_1_scalar);
N_GEMM_Q_DECL(ts_gemm_q2_k_q8_k_scalar);
N_GEMM_Q_DECL(ts_gemm_q3_k_q8_k_scalar);
N_GEMM_Q_DECL(ts_gemm_q4_k_q8_k_scalar);
N_GEMM_Q_DECL(ts_gemm_q5_k_q8_k_scalar);
N_GEMM_Q_DECL(ts_gemm_q6_k_q8_k_scalar);

/* One decoded weight block. For 32-element blocks only q[0..31] is used. */
typedef struct {
    int8_t q[TS_QK_K];
    int16_t sc[TS_QK_K / 16]; /* integer scale per group of 16 (K types) */
    int16_t mn[TS_QK_K / 16]; /* integer min per group of 16 (types with mins) */
    float d, m;               /* block scale; Q4_1/Q5_1: the min m, K types: dmin */
} dec_blk;

typedef void (*decode_fn)(const void *blk, dec_blk *out);

/* ---- 32-element blocks ---- */

static void dec_q4_0(const void *p, dec_blk *o)
{
    const ts_block_q4_0 *b = p;
    o->d = s_f16_to_f32(b->d);
    for (int i = 0; i < 16; i++) {
        o->q[i] = (int8_t)((b->qs[i] & 0xf) - 8);
        o->q[i + 16] = (int8_t)((b->qs[i] >> 4) - 8);
    }
}

static void dec_q4_1(const void *p, dec_blk *o)
{
    const ts_block_q4_1 *b = p;
    o->d = s_f16_to_f32(b->d);
    o->m = s_f16_to_f32(b->m);
    for (int i = 0; i < 16; i++) {
        o->q[i] = (int8_t)(b->qs[i] & 0xf);
        o->q[i + 16] = (int8_t)(b->qs[i] >> 4);
    }
}

/* Q5: bit i of qh is the 5th bit of element i (element i+16 for i >= 16). */
static void dec_q5(const uint8_t *qs, const uint8_t *qh4, int bias, dec_blk *o)
{
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    for (int i = 0; i < 16; i++) {
        o->q[i] = (int8_t)(((qs[i] & 0xf) | (((qh >> i) & 1u) << 4)) - bias);
        o->q[i + 16] = (int8_t)(((qs[i] >> 4) | (((qh >> (i + 16)) & 1u) << 4)) - bias);
    }
}

static void dec_q5_0(const void *p, dec_blk *o)
{
    const ts_block_q5_0 *b = p;
    o->d = s_f16_to_f32(b->d);
    dec_q5(b->qs, b->qh, 16, o);
}

static void dec_q5_1(const void *p, dec_blk *o)
{
    const ts_block_q5_1 *b = p;
    o->d = s_f16_to_f32(b->d);
    o->m = s_f16_to_f32(b->m);
    dec_q5(b->qs, b->qh, 0, o);
}

static void dec_q8_0(const void *p, dec_blk *o)
{
    const ts_block_q8_0 *b = p;
    o->d = s_f16_to_f32(b->d);
    memcpy(o->q, b->qs, 32);
}

/* ---- 256-element super-blocks ---- */

/* Q2_K/Q3_K 2-bit position: element e lives in byte 32*(e/128) + e%32 at bit
 * 2*((e%128)/32). */
static void dec_q2_k(const void *p, dec_blk *o)
{
    const ts_block_q2_k *b = p;
    o->d = s_f16_to_f32(b->d);
    o->m = s_f16_to_f32(b->dmin);
    for (int e = 0; e < TS_QK_K; e++)
        o->q[e] = (int8_t)((b->qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3);
    for (int g = 0; g < 16; g++) {
        o->sc[g] = b->scales[g] & 0xf;
        o->mn[g] = b->scales[g] >> 4;
    }
}

static void dec_q3_k(const void *p, dec_blk *o)
{
    const ts_block_q3_k *b = p;
    o->d = s_f16_to_f32(b->d);
    for (int e = 0; e < TS_QK_K; e++) {
        int q = (b->qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        int hbit = (b->hmask[e % 32] >> (e / 32)) & 1;
        o->q[e] = (int8_t)(q - (hbit ? 0 : 4));
    }
    /* 16 6-bit scales: low nibbles in bytes 0..7 (two per byte), high 2 bits
     * in bytes 8..11; stored with a +32 bias. */
    for (int g = 0; g < 16; g++) {
        int lo = g < 8 ? (b->scales[g] & 0xf) : (b->scales[g - 8] >> 4);
        int hi = (b->scales[8 + g % 4] >> (2 * (g / 4))) & 3;
        o->sc[g] = (int16_t)((lo | (hi << 4)) - 32);
    }
}

/* 6-bit scale and min j (0..7) of Q4_K/Q5_K. */
static void k4_scale_min(const uint8_t *s, int j, int *sc, int *mn)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Q4_K/Q5_K: chunk c of 64 elements: low nibbles of qs[32c..] (sub-block 2c),
 * then high nibbles (sub-block 2c+1); Q5_K's qh[l] bit 2c / 2c+1 adds 16. */
static void dec_q45_k(const uint8_t *scales, const uint8_t *qs, const uint8_t *qh, dec_blk *o)
{
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            int lo = qs[32 * c + l] & 0xf, hi = qs[32 * c + l] >> 4;
            if (qh) {
                lo |= ((qh[l] >> (2 * c)) & 1) << 4;
                hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
            }
            o->q[64 * c + l] = (int8_t)lo;
            o->q[64 * c + 32 + l] = (int8_t)hi;
        }
    for (int j = 0; j < 8; j++) {
        int sc, mn;
        k4_scale_min(scales, j, &sc, &mn);
        o->sc[2 * j] = o->sc[2 * j + 1] = (int16_t)sc;
        o->mn[2 * j] = o->mn[2 * j + 1] = (int16_t)mn;
    }
}

static void dec_q4_k(const void *p, dec_blk *o)
{
    const ts_block_q4_k *b = p;
    o->d = s_f16_to_f32(b->d);
    o->m = s_f16_to_f32(b->dmin);
    dec_q45_k(b->scales, b->qs, NULL, o);
}

static void dec_q5_k(const void *p, dec_blk *o)
{
    const ts_block_q5_k *b = p;
    o->d = s_f16_to_f32(b->d);
    o->m = s_f16_to_f32(b->dmin);
    dec_q45_k(b->scales, b->qs, b->qh, o);
}

/* Q6_K: per half h of 128: ql[64h + l] low/high nibbles and qh[32h + l]
 * 2-bit pairs give elements l, l+32, l+64, l+96; value q - 32. */
static void dec_q6_k(const void *p, dec_blk *o)
{
    const ts_block_q6_k *b = p;
    o->d = s_f16_to_f32(b->d);
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *ql = b->ql + 64 * h, qh = b->qh[32 * h + l];
            int8_t *q = o->q + 128 * h;
            q[l] = (int8_t)(((ql[l] & 0xf) | (((qh >> 0) & 3) << 4)) - 32);
            q[l + 32] = (int8_t)(((ql[l + 32] & 0xf) | (((qh >> 2) & 3) << 4)) - 32);
            q[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh >> 4) & 3) << 4)) - 32);
            q[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh >> 6) & 3) << 4)) - 32);
        }
    for (int g = 0; g < 16; g++)
        o->sc[g] = b->scales[g];
}

/* ---- tile drivers ---- */

/* Plain block (row, blk): in place, or (rtype != 0, a _R16 matrix) copied
 * out of its row group into tmp, so the twins decode the very same bytes. */
static const void *wblock(uint32_t rtype, const void *w, size_t w_stride, size_t wblk, int64_t k,
                          int64_t row, int64_t blk, void *tmp)
{
    if (!rtype)
        return (const char *)w + (size_t)row * w_stride + (size_t)blk * wblk;
    ts_repack_get_block(rtype, w, w_stride, k, row, blk, tmp);
    return tmp;
}

#define YAT(tok, row) ((float *)((char *)y + (size_t)(tok) * y_stride))[row]

static void zero_outputs(int64_t n_rows, int64_t n_tok, float *y, size_t y_stride)
{
    for (int64_t tok = 0; tok < n_tok; tok++)
        memset((char *)y + (size_t)tok * y_stride, 0, (size_t)n_rows * sizeof(float));
}

/* 32-element types x Q8_0 (with_min = 0) or Q8_1 (with_min = 1). */
static void tile_q32(decode_fn dec, size_t wblk, int with_min, uint32_t rtype, int64_t k, int64_t n_rows,
                     int64_t n_tok, const void *w, size_t w_stride, const void *a,
                     size_t a_stride, float *y, size_t y_stride)
{
    const int64_t nb = k / 32;
    dec_blk db;
    zero_outputs(n_rows, n_tok, y, y_stride);
    ts_block_q6_k tmp; /* the largest block a _R16 type has */
    for (int64_t row = 0; row < n_rows; row++) {
        for (int64_t blk = 0; blk < nb; blk++) {
            dec(wblock(rtype, w, w_stride, wblk, k, row, blk, &tmp), &db);
            for (int64_t tok = 0; tok < n_tok; tok++) {
                const char *ar = (const char *)a + (size_t)tok * a_stride;
                const int8_t *aq;
                float da, sa = 0.0f;
                if (with_min) {
                    const ts_block_q8_1 *ab = (const ts_block_q8_1 *)ar + blk;
                    aq = ab->qs;
                    da = s_f16_to_f32(ab->d);
                    sa = s_f16_to_f32(ab->s);
                } else {
                    const ts_block_q8_0 *ab = (const ts_block_q8_0 *)ar + blk;
                    aq = ab->qs;
                    da = s_f16_to_f32(ab->d);
                }
                int32_t isum = 0;
                for (int i = 0; i < 32; i++)
                    isum += db.q[i] * aq[i];
                float acc = fmaf(db.d * da, (float)isum, YAT(tok, row));
                if (with_min)
                    acc = fmaf(db.m, sa, acc);
                YAT(tok, row) = acc;
            }
        }
    }
}

/* K types x Q8_K; with_min: subtract dmin * da * sum(mn_g * bsum_g). */
static void tile_k(decode_fn dec, size_t wblk, int with_min, uint32_t rtype, int64_t k, int64_t n_rows,
                   int64_t n_tok, const void *w, size_t w_stride, const void *a,
                   size_t a_stride, float *y, size_t y_stride)
{
    const int64_t nb = k / TS_QK_K;
    dec_blk db;
    zero_outputs(n_rows, n_tok, y, y_stride);
    ts_block_q6_k tmp; /* the largest block a _R16 type has */
    for (int64_t row = 0; row < n_rows; row++) {
        for (int64_t blk = 0; blk < nb; blk++) {
            dec(wblock(rtype, w, w_stride, wblk, k, row, blk, &tmp), &db);
            for (int64_t tok = 0; tok < n_tok; tok++) {
                const ts_block_q8_k *ab =
                    (const ts_block_q8_k *)((const char *)a + (size_t)tok * a_stride) + blk;
                int32_t isum = 0, msum = 0;
                for (int g = 0; g < 16; g++) {
                    int32_t gs = 0;
                    for (int i = 0; i < 16; i++)
                        gs += db.q[16 * g + i] * ab->qs[16 * g + i];
                    isum += db.sc[g] * gs;
                    msum += db.mn[g] * ab->bsums[g];
                }
                float acc = fmaf(db.d * ab->d, (float)isum, YAT(tok, row));
                if (with_min)
                    acc = fmaf(-(db.m * ab->d), (float)msum, acc);
                YAT(tok, row) = acc;
            }
        }
    }
}

#define DEF_Q32(wt, at, withmin)                                                              \
    N_GEMM_Q_DECL(ts_gemm_##wt##_##at##_scalar)                                               \
    {                                                                                         \
        tile_q32(dec_##wt, sizeof(ts_block_##wt), withmin, 0, k, n_rows, n_tok, w, w_stride, a,  \
                 a_stride, y, y_stride);                                                      \
    }
#define DEF_K(wt, withmin)                                                                    \
    N_GEMM_Q_DECL(ts_gemm_##wt##_q8_k_scalar)                                                 \
    {                                                                                         \
        tile_k(dec_##wt, sizeof(ts_block_##wt), withmin, 0, k, n_rows, n_tok, w, w_stride, a,    \
               a_stride, y, y_stride);                                                        \
    }

/* Contract (all below): see ts_gemm_fn in kernels.h; k % block == 0; any
 * n_rows, n_tok >= 1; no alignment beyond the block structs'. */
DEF_Q32(q4_0, q8_0, 0)
DEF_Q32(q5_0, q8_0, 0)
DEF_Q32(q8_0, q8_0, 0)
DEF_Q32(q4_1, q8_1, 1)
DEF_Q32(q5_1, q8_1, 1)
DEF_K(q2_k, 1)
DEF_K(q3_k, 0)
DEF_K(q4_k, 1)
DEF_K(q5_k, 1)
DEF_K(q6_k, 0)

/* Scalar twins of the _R16 slots: the plain kernels' loops, blocks copied out
 * of the row groups (simd/repack.h). w points at a group start (row 0 of the
 * tile is a multiple of 16). Contract otherwise as above. */
#define DEF_Q32_R16(wt, at, withmin, rtype)                                                   \
    N_GEMM_Q_DECL(ts_gemm_##wt##_r16_##at##_scalar)                                           \
    {                                                                                         \
        tile_q32(dec_##wt, sizeof(ts_block_##wt), withmin, rtype, k, n_rows, n_tok, w,       \
                 w_stride, a, a_stride, y, y_stride);                                         \
    }
#define DEF_K_R16(wt, withmin, rtype)                                                         \
    N_GEMM_Q_DECL(ts_gemm_##wt##_r16_q8_k_scalar)                                             \
    {                                                                                         \
        tile_k(dec_##wt, sizeof(ts_block_##wt), withmin, rtype, k, n_rows, n_tok, w, w_stride,   \
               a, a_stride, y, y_stride);                                                     \
    }
DEF_Q32_R16(q8_0, q8_0, 0, TS_QTYPE_Q8_0_R16)
DEF_Q32_R16(q4_0, q8_0, 0, TS_QTYPE_Q4_0_R16)
DEF_Q32_R16(q5_0, q8_0, 0, TS_QTYPE_Q5_0_R16)
DEF_K_R16(q4_k, 1, TS_QTYPE_Q4_K_R16)
DEF_K_R16(q5_k, 1, TS_QTYPE_Q5_K_R16)
DEF_K_R16(q3_k, 0, TS_QTYPE_Q3_K_R16)
DEF_K_R16(q2_k, 1, TS_QTYPE_Q2_K_R16)
DEF_Q32_R16(q4_1, q8_1, 1, TS_QTYPE_Q4_1_R16)
DEF_Q32_R16(q5_1, q8_1, 1, TS_QTYPE_Q5_1_R16)
DEF_K_R16(q6_k, 0, TS_QTYPE_Q6_K_R16)
