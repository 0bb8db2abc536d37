/*
 * simd/scalar/repack.c: the _R16 layouts of simd/repack.h: repack, per-block
 * inverse. Plain C (no intrinsics): core/ calls the repack at load.
 * Invariant: get_block(repack(x)) == x byte for byte for every block of every
 * real row (tested), so a repacked matrix carries exactly the plain values.
 */
#include <stdbool.h>
#include <string.h>

#include "../repack.h"

typedef struct {
    uint32_t base;
    size_t blk_bytes;  /* plain block */
    int64_t blk_elems;
    size_t qb, mb;     /* per 16-row group and block: quant, metadata bytes */
} r16_info;

static const r16_info *info(uint32_t rtype)
{
    static const r16_info tab[] = {
        {TS_QTYPE_Q8_0, sizeof(ts_block_q8_0), TS_QK8_0, 512, 32},
        {TS_QTYPE_Q4_0, sizeof(ts_block_q4_0), TS_QK4_0, 256, 32},
        {TS_QTYPE_Q4_K, sizeof(ts_block_q4_k), TS_QK_K, 2048, 320},
        {TS_QTYPE_Q6_K, sizeof(ts_block_q6_k), TS_QK_K, 3072, 288},
        {TS_QTYPE_Q5_0, sizeof(ts_block_q5_0), TS_QK5_0, 320, 32},
        {TS_QTYPE_Q5_K, sizeof(ts_block_q5_k), TS_QK_K, 2560, 320},
        {TS_QTYPE_Q3_K, sizeof(ts_block_q3_k), TS_QK_K, 1536, 288},
        {TS_QTYPE_Q2_K, sizeof(ts_block_q2_k), TS_QK_K, 1024, 320},
        {TS_QTYPE_Q4_1, sizeof(ts_block_q4_1), TS_QK4_1, 256, 64},
        {TS_QTYPE_Q5_1, sizeof(ts_block_q5_1), TS_QK5_1, 320, 64},
    };
    if (rtype < TS_QTYPE_COUNT || rtype >= TS_GEMM_SLOTS)
        return NULL;
    return &tab[rtype - TS_QTYPE_COUNT];
}

uint32_t ts_repack_type(uint32_t qtype)
{
    switch (qtype) {
    case TS_QTYPE_Q8_0: return TS_QTYPE_Q8_0_R16;
    case TS_QTYPE_Q4_0: return TS_QTYPE_Q4_0_R16;
    case TS_QTYPE_Q4_K: return TS_QTYPE_Q4_K_R16;
    case TS_QTYPE_Q6_K: return TS_QTYPE_Q6_K_R16;
    case TS_QTYPE_Q5_0: return TS_QTYPE_Q5_0_R16;
    case TS_QTYPE_Q5_K: return TS_QTYPE_Q5_K_R16;
    case TS_QTYPE_Q3_K: return TS_QTYPE_Q3_K_R16;
    case TS_QTYPE_Q2_K: return TS_QTYPE_Q2_K_R16;
    case TS_QTYPE_Q4_1: return TS_QTYPE_Q4_1_R16;
    case TS_QTYPE_Q5_1: return TS_QTYPE_Q5_1_R16;
    default: return 0;
    }
}

uint32_t ts_repack_base(uint32_t qtype)
{
    const r16_info *in = info(qtype);
    return in ? in->base : qtype;
}

size_t ts_repack_row_stride(uint32_t rtype, int64_t k)
{
    const r16_info *in = info(rtype);
    return (size_t)(k / in->blk_elems) * (in->qb + in->mb) / TS_R16_ROWS;
}

size_t ts_repack_bytes(uint32_t rtype, int64_t rows, int64_t k)
{
    int64_t groups = (rows + TS_R16_ROWS - 1) / TS_R16_ROWS;
    return (size_t)groups * TS_R16_ROWS * ts_repack_row_stride(rtype, k);
}

/* Where block blk of lane r lives: quant region q, metadata region m. */
static void locate(const r16_info *in, const void *w, size_t row_stride, int64_t k, int64_t row,
                   int64_t blk, const uint8_t **q, const uint8_t **m)
{
    const int64_t nb = k / in->blk_elems;
    const uint8_t *g = (const uint8_t *)w + (size_t)(row / TS_R16_ROWS) * TS_R16_ROWS * row_stride;
    *q = g + (size_t)blk * in->qb;
    *m = g + (size_t)nb * in->qb + (size_t)blk * in->mb;
}

/* Q6_K element e's stored 6-bit value u (0..63) into plain block b. */
static void q6_set(ts_block_q6_k *b, int e, int u)
{
    const int h = e / 128, l = e % 32, m = (e % 128) / 32;
    uint8_t *ql = &b->ql[64 * h + l + 32 * (m & 1)];
    if (m < 2)
        *ql = (uint8_t)((*ql & 0xf0) | (u & 0xf));
    else
        *ql = (uint8_t)((*ql & 0x0f) | ((u & 0xf) << 4));
    uint8_t *qh = &b->qh[32 * h + l];
    *qh = (uint8_t)((*qh & ~(3u << (2 * m))) | (((unsigned)u >> 4) << (2 * m)));
}

/* Q5_0 / Q5_1 quant bytes of lane r: the nibbles as Q4_0_R16, the 32 high
 * bits regrouped per step (simd/repack.h). */
static void put_q5(const uint8_t *qs, const uint8_t *qh4, int r, uint8_t *q)
{
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    for (int s = 0; s < 4; s++)
        memcpy(q + 64 * s + 4 * r, qs + 4 * s, 4);
    for (int i = 0; i < 4; i++) {
        uint8_t hb = 0;
        for (int s = 0; s < 4; s++)
            hb |= (uint8_t)((((qh >> (4 * s + i)) & 1u) << (2 * s)) |
                            (((qh >> (16 + 4 * s + i)) & 1u) << (2 * s + 1)));
        q[256 + 4 * r + i] = hb;
    }
}

/* The inverse of put_q5. */
static void get_q5(const uint8_t *q, int r, uint8_t *qs, uint8_t *qh4)
{
    uint32_t qh = 0;
    for (int s = 0; s < 4; s++)
        memcpy(qs + 4 * s, q + 64 * s + 4 * r, 4);
    for (int i = 0; i < 4; i++) {
        const uint32_t hb = q[256 + 4 * r + i];
        for (int s = 0; s < 4; s++)
            qh |= (((hb >> (2 * s)) & 1u) << (4 * s + i)) |
                  (((hb >> (2 * s + 1)) & 1u) << (16 + 4 * s + i));
    }
    memcpy(qh4, &qh, 4);
}

/* One plain block (or zeros, for a padding row) -> lane r of a group block. */
static void put(uint32_t rtype, const void *src, int r, uint8_t *q, uint8_t *m)
{
    switch (rtype) {
    case TS_QTYPE_Q8_0_R16: {
        const ts_block_q8_0 *b = src;
        for (int s = 0; s < 8; s++)
            for (int i = 0; i < 4; i++)
                q[64 * s + 4 * r + i] = (uint8_t)b->qs[4 * s + i] ^ 0x80u;
        memcpy(m + 2 * r, &b->d, 2);
        break;
    }
    case TS_QTYPE_Q4_0_R16: {
        const ts_block_q4_0 *b = src;
        for (int s = 0; s < 4; s++)
            memcpy(q + 64 * s + 4 * r, b->qs + 4 * s, 4);
        memcpy(m + 2 * r, &b->d, 2);
        break;
    }
    case TS_QTYPE_Q5_0_R16: {
        const ts_block_q5_0 *b = src;
        put_q5(b->qs, b->qh, r, q);
        memcpy(m + 2 * r, &b->d, 2);
        break;
    }
    case TS_QTYPE_Q4_1_R16: {
        const ts_block_q4_1 *b = src;
        for (int s = 0; s < 4; s++)
            memcpy(q + 64 * s + 4 * r, b->qs + 4 * s, 4);
        memcpy(m + 2 * r, &b->d, 2);
        memcpy(m + 32 + 2 * r, &b->m, 2);
        break;
    }
    case TS_QTYPE_Q5_1_R16: {
        const ts_block_q5_1 *b = src;
        put_q5(b->qs, b->qh, r, q);
        memcpy(m + 2 * r, &b->d, 2);
        memcpy(m + 32 + 2 * r, &b->m, 2);
        break;
    }
    case TS_QTYPE_Q2_K_R16: {
        const ts_block_q2_k *b = src;
        for (int h = 0; h < 2; h++)
            for (int s = 0; s < 8; s++)
                memcpy(q + 512 * h + 64 * s + 4 * r, b->qs + 32 * h + 4 * s, 4);
        for (int g = 0; g < 16; g++)
            m[16 * g + r] = b->scales[g];
        memcpy(m + 256 + 2 * r, &b->d, 2);
        memcpy(m + 288 + 2 * r, &b->dmin, 2);
        break;
    }
    case TS_QTYPE_Q3_K_R16: {
        const ts_block_q3_k *b = src;
        for (int h = 0; h < 2; h++)
            for (int s = 0; s < 8; s++)
                memcpy(q + 512 * h + 64 * s + 4 * r, b->qs + 32 * h + 4 * s, 4);
        for (int s = 0; s < 8; s++)
            memcpy(q + 1024 + 64 * s + 4 * r, b->hmask + 4 * s, 4);
        /* 16 6-bit scales: low nibble in byte g % 8 (nibble g / 8), high 2
         * bits in byte 8 + g % 4 (bits 2 (g / 4)); stored + 32. */
        for (int g = 0; g < 16; g++) {
            const int lo = (b->scales[g % 8] >> (4 * (g / 8))) & 0xf;
            const int hi = (b->scales[8 + g % 4] >> (2 * (g / 4))) & 3;
            m[32 * (g / 2) + 2 * r + (g & 1)] = (uint8_t)(int8_t)((lo | hi << 4) - 32);
        }
        memcpy(m + 256 + 2 * r, &b->d, 2);
        break;
    }
    case TS_QTYPE_Q6_K_R16: {
        const ts_block_q6_k *b = src;
        uint8_t u[TS_QK_K]; /* element e's stored 6-bit value (0..63), decoded once */
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++) {
                const uint8_t ql0 = b->ql[64 * h + l], ql1 = b->ql[64 * h + 32 + l];
                const uint8_t qh = b->qh[32 * h + l];
                u[128 * h + l] = (uint8_t)((ql0 & 0xf) | ((qh & 3) << 4));
                u[128 * h + 32 + l] = (uint8_t)((ql1 & 0xf) | (((qh >> 2) & 3) << 4));
                u[128 * h + 64 + l] = (uint8_t)((ql0 >> 4) | (((qh >> 4) & 3) << 4));
                u[128 * h + 96 + l] = (uint8_t)((ql1 >> 4) | (((qh >> 6) & 3) << 4));
            }
        for (int c = 0; c < 4; c++)
            for (int s = 0; s < 8; s++)
                for (int i = 0; i < 4; i++)
                    q[512 * c + 64 * s + 4 * r + i] =
                        (uint8_t)((u[64 * c + 4 * s + i] & 0xf) |
                                  ((u[64 * c + 32 + 4 * s + i] & 0xf) << 4));
        for (int h = 0; h < 2; h++)
            for (int s = 0; s < 8; s++)
                for (int i = 0; i < 4; i++) {
                    const uint8_t *uh = u + 128 * h + 4 * s + i;
                    q[2048 + 512 * h + 64 * s + 4 * r + i] =
                        (uint8_t)((uh[0] >> 4) | ((uh[32] >> 4) << 2) | ((uh[64] >> 4) << 4) |
                                  ((uh[96] >> 4) << 6));
                }
        for (int g = 0; g < 16; g++)
            m[32 * (g / 2) + 2 * r + (g & 1)] = (uint8_t)b->scales[g];
        memcpy(m + 256 + 2 * r, &b->d, 2);
        break;
    }
    default: { /* Q4_K, Q5_K (same scales, nibbles and metadata; Q5_K's qh after) */
        const bool q5 = rtype == TS_QTYPE_Q5_K_R16;
        const ts_block_q4_k *b4 = src;
        const ts_block_q5_k *b5 = src;
        const uint8_t *s6 = q5 ? b5->scales : b4->scales, *qs = q5 ? b5->qs : b4->qs;
        for (int c = 0; c < 4; c++)
            for (int s = 0; s < 8; s++)
                memcpy(q + 512 * c + 64 * s + 4 * r, qs + 32 * c + 4 * s, 4);
        if (q5)
            for (int s = 0; s < 8; s++)
                memcpy(q + 2048 + 64 * s + 4 * r, b5->qh + 4 * s, 4);
        for (int j = 0; j < 8; j++) {
            int sc, mn;
            if (j < 4) {
                sc = s6[j] & 63;
                mn = s6[j + 4] & 63;
            } else {
                sc = (s6[j + 4] & 0xf) | ((s6[j - 4] >> 6) << 4);
                mn = (s6[j + 4] >> 4) | ((s6[j] >> 6) << 4);
            }
            m[16 * j + r] = (uint8_t)sc;
            m[128 + 32 * (j / 2) + 2 * r + (j & 1)] = (uint8_t)mn;
        }
        memcpy(m + 256 + 2 * r, q5 ? &b5->d : &b4->d, 2);
        memcpy(m + 288 + 2 * r, q5 ? &b5->dmin : &b4->dmin, 2);
        break;
    }
    }
}

void ts_repack_rows(uint32_t rtype, const void *w, size_t w_stride, int64_t rows, int64_t k,
                    void *out)
{
    const r16_info *in = info(rtype);
    const size_t rs = ts_repack_row_stride(rtype, k);
    const int64_t nb = k / in->blk_elems;
    const int64_t padded = (rows + TS_R16_ROWS - 1) / TS_R16_ROWS * TS_R16_ROWS;
    uint8_t zero[sizeof(ts_block_q6_k)]; /* the largest plain block */
    memset(zero, 0, sizeof(zero));
    for (int64_t row = 0; row < padded; row++)
        for (int64_t blk = 0; blk < nb; blk++) {
            const uint8_t *q, *m;
            locate(in, out, rs, k, row, blk, &q, &m);
            const void *src = row < rows ? (const uint8_t *)w + (size_t)row * w_stride +
                                               (size_t)blk * in->blk_bytes
                                         : zero;
            put(rtype, src, (int)(row % TS_R16_ROWS), (uint8_t *)q, (uint8_t *)m);
        }
}

void ts_repack_get_block(uint32_t rtype, const void *w, size_t row_stride, int64_t k,
                         int64_t row, int64_t blk, void *out)
{
    const r16_info *in = info(rtype);
    const uint8_t *q, *m;
    locate(in, w, row_stride, k, row, blk, &q, &m);
    const int r = (int)(row % TS_R16_ROWS);
    switch (rtype) {
    case TS_QTYPE_Q8_0_R16: {
        ts_block_q8_0 *b = out;
        for (int s = 0; s < 8; s++)
            for (int i = 0; i < 4; i++)
                b->qs[4 * s + i] = (int8_t)(q[64 * s + 4 * r + i] ^ 0x80u);
        memcpy(&b->d, m + 2 * r, 2);
        break;
    }
    case TS_QTYPE_Q4_0_R16: {
        ts_block_q4_0 *b = out;
        for (int s = 0; s < 4; s++)
            memcpy(b->qs + 4 * s, q + 64 * s + 4 * r, 4);
        memcpy(&b->d, m + 2 * r, 2);
        break;
    }
    case TS_QTYPE_Q5_0_R16: {
        ts_block_q5_0 *b = out;
        get_q5(q, r, b->qs, b->qh);
        memcpy(&b->d, m + 2 * r, 2);
        break;
    }
    case TS_QTYPE_Q4_1_R16: {
        ts_block_q4_1 *b = out;
        for (int s = 0; s < 4; s++)
            memcpy(b->qs + 4 * s, q + 64 * s + 4 * r, 4);
        memcpy(&b->d, m + 2 * r, 2);
        memcpy(&b->m, m + 32 + 2 * r, 2);
        break;
    }
    case TS_QTYPE_Q5_1_R16: {
        ts_block_q5_1 *b = out;
        get_q5(q, r, b->qs, b->qh);
        memcpy(&b->d, m + 2 * r, 2);
        memcpy(&b->m, m + 32 + 2 * r, 2);
        break;
    }
    case TS_QTYPE_Q2_K_R16: {
        ts_block_q2_k *b = out;
        for (int h = 0; h < 2; h++)
            for (int s = 0; s < 8; s++)
                memcpy(b->qs + 32 * h + 4 * s, q + 512 * h + 64 * s + 4 * r, 4);
        for (int g = 0; g < 16; g++)
            b->scales[g] = m[16 * g + r];
        memcpy(&b->d, m + 256 + 2 * r, 2);
        memcpy(&b->dmin, m + 288 + 2 * r, 2);
        break;
    }
    case TS_QTYPE_Q3_K_R16: {
        ts_block_q3_k *b = out;
        memset(b, 0, sizeof(*b));
        for (int h = 0; h < 2; h++)
            for (int s = 0; s < 8; s++)
                memcpy(b->qs + 32 * h + 4 * s, q + 512 * h + 64 * s + 4 * r, 4);
        for (int s = 0; s < 8; s++)
            memcpy(b->hmask + 4 * s, q + 1024 + 64 * s + 4 * r, 4);
        for (int g = 0; g < 16; g++) {
            const int v = (int8_t)m[32 * (g / 2) + 2 * r + (g & 1)] + 32; /* 0..63 */
            b->scales[g % 8] |= (uint8_t)((v & 0xf) << (4 * (g / 8)));
            b->scales[8 + g % 4] |= (uint8_t)((v >> 4) << (2 * (g / 4)));
        }
        memcpy(&b->d, m + 256 + 2 * r, 2);
        break;
    }
    case TS_QTYPE_Q6_K_R16: {
        ts_block_q6_k *b = out;
        memset(b, 0, sizeof(*b));
        for (int c = 0; c < 4; c++)
            for (int s = 0; s < 8; s++)
                for (int i = 0; i < 4; i++) {
                    const uint8_t lo = q[512 * c + 64 * s + 4 * r + i];
                    for (int nib = 0; nib < 2; nib++) {
                        const int j = 2 * c + nib, e = 32 * j + 4 * s + i; /* 32-sub-block j */
                        const uint8_t hb = q[2048 + 512 * (j / 4) + 64 * s + 4 * r + i];
                        q6_set(b, e, ((lo >> (4 * nib)) & 0xf) | (((hb >> (2 * (j % 4))) & 3) << 4));
                    }
                }
        for (int g = 0; g < 16; g++)
            b->scales[g] = (int8_t)m[32 * (g / 2) + 2 * r + (g & 1)];
        memcpy(&b->d, m + 256 + 2 * r, 2);
        break;
    }
    default: { /* Q4_K, Q5_K: re-encode the 12 packed 6-bit scale/min bytes */
        const bool q5 = rtype == TS_QTYPE_Q5_K_R16;
        ts_block_q4_k *b4 = out;
        ts_block_q5_k *b5 = out;
        uint8_t *scales = q5 ? b5->scales : b4->scales, *qs = q5 ? b5->qs : b4->qs;
        int sc[8], mn[8];
        for (int j = 0; j < 8; j++) {
            sc[j] = m[16 * j + r];
            mn[j] = m[128 + 32 * (j / 2) + 2 * r + (j & 1)];
        }
        for (int j = 0; j < 4; j++) {
            scales[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
            scales[j + 4] = (uint8_t)(mn[j] | ((mn[j + 4] >> 4) << 6));
            scales[j + 8] = (uint8_t)((sc[j + 4] & 0xf) | ((mn[j + 4] & 0xf) << 4));
        }
        for (int c = 0; c < 4; c++)
            for (int s = 0; s < 8; s++)
                memcpy(qs + 32 * c + 4 * s, q + 512 * c + 64 * s + 4 * r, 4);
        if (q5)
            for (int s = 0; s < 8; s++)
                memcpy(b5->qh + 4 * s, q + 2048 + 64 * s + 4 * r, 4);
        memcpy(q5 ? &b5->d : &b4->d, m + 256 + 2 * r, 2);
        memcpy(q5 ? &b5->dmin : &b4->dmin, m + 288 + 2 * r, 2);
        break;
    }
    }
}
