/*
 * simd/x86/avx512/attn.c: the AVX-512 level of the attention kernel (every KV
 * type of simd/ops.h), in the canonical order of simd/scalar/attn.c: same bits.
 *
 * Register block: MR = 4 rows (query x GQA head) share every K and V load.
 * QK^T: the cache stores K transposed in groups of 16 keys, so one zmm holds
 * dim d of 16 keys and a key block is 4 zmm; per d, 4 decoded loads, 4
 * broadcasts of q[r][d] and 16 FMAs into 16 accumulators (the lane-wise fma
 * chain over d of the canonical order; no horizontal sums). Softmax per row
 * and block: masked scale, exact max, canonical exp, lane sums and the
 * halving tree. P.V: per chunk of 64 dims, 4 rows x 4 zmm accumulators, one
 * decoded V row load per key and a broadcast of p[r][j]. The running output o
 * lives on the stack with head_dim padded to 16, so there are no dim tails.
 * A row whose position ends inside the block takes the one-row path for P.V
 * (values past a row's position are never read for it).
 * Decoding (exact, as the scalar level): f16 by vcvtph2ps, bf16 by a 16-bit
 * shift, q8_0 / q4_0 by widening the int8 / nibbles to f32 times the f16
 * scale (one product that never rounds). A q8_0 K cache takes integer
 * scores instead (ops.h): the rows' queries are quantized once per call
 * (ts_attn_quant_q8_0: same ints on every level), and per 32-dim chunk
 * vpdpbusd sums 4 dims of 16 keys at a time (keys stored q + 128 unsigned,
 * the query's 4 ints broadcast signed; the 128 * sum(q) bias taken off),
 * then s = fma(float(isum), dq * dk, s). A q8_0 V cache takes integer P.V
 * (pv_q8: weights as int16, vpdpwssd against position pairs). QK^T and P.V
 * are instantiated per
 * type and row count and called per key block through a table (a block is
 * thousands of FMAs; the call is noise). Does not own: tiling.
 */
#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../../kernels.h"
#include "../../../quant/quant.h"
#include "exp_canon.h"

#define MR 4
#define KB TS_ATTN_KBLK
/* Full unrolling of the row / vector loops keeps the accumulators in registers. */
#define UNROLL _Pragma("GCC unroll 8")

void ts_attn_avx512(const ts_attn_args *a);

/* 16 elements of a plain (f32 / f16 / bf16) cache from element index i. */
INLINE __m512 ld16(int t, const void *base, int64_t i)
{
    if (t == TS_ATTN_F16)
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)base + i)));
    if (t == TS_ATTN_BF16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)base + i))),
            16));
    return _mm512_loadu_ps((const float *)base + i);
}

/* 16 nibbles at p (low, or high when hi) minus 8 as f32, times sc. */
INLINE __m512 q4x16(const uint8_t *p, int hi, __m512 sc)
{
    __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
    b = hi ? _mm512_srli_epi32(b, 4) : _mm512_and_si512(b, _mm512_set1_epi32(15));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(b, _mm512_set1_epi32(8))), sc);
}

/* An f16 scale at p, broadcast. */
INLINE __m512 scale1(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _mm512_cvtph_ps(_mm256_set1_epi16((short)h));
}

/* 16 decoded V elements of row j, dims [d, d + 16) (d a multiple of 16);
 * plain types and q4_0 (a q8_0 V takes pv_q8). */
INLINE __m512 ldv(int t, const void *vb, int64_t hd, int64_t j, int64_t d)
{
    if (!ts_attn_type_quant(t))
        return ld16(t, vb, j * ts_attn_vstride(hd) + d);
    const uint8_t *row = (const uint8_t *)vb + (size_t)j * ts_attn_vrow_bytes(t, hd);
    const uint8_t *blk = row + (size_t)(d / 32) * 18;
    return q4x16(blk + 2, (d % 32) >= 16, scale1(blk));
}

/* o[r][dc .. dc + 16 NV) = o * al[r], then += p[r][j] * v_j for j < nj keys
 * of the block (rows are fully valid up to nj). */
INLINE void pv_chunk(int t, int nr, int nv, const ts_attn_args *a, const void *vb, int64_t nj,
                     int64_t dc, float *const *o, const float *const *p, const float *al)
{
    __m512 acc[MR][4];
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int u = 0; u < nv; u++)
            acc[r][u] = _mm512_mul_ps(_mm512_loadu_ps(o[r] + dc + 16 * u), _mm512_set1_ps(al[r]));
    for (int64_t j = 0; j < nj; j++) {
        __m512 vv[4];
        UNROLL
        for (int u = 0; u < nv; u++)
            vv[u] = ldv(t, vb, a->head_dim, j, dc + 16 * u);
        UNROLL
        for (int r = 0; r < nr; r++) {
            __m512 pj = _mm512_set1_ps(p[r][j]);
            UNROLL
            for (int u = 0; u < nv; u++)
                acc[r][u] = _mm512_fmadd_ps(pj, vv[u], acc[r][u]);
        }
    }
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int u = 0; u < nv; u++)
            _mm512_storeu_ps(o[r] + dc + 16 * u, acc[r][u]);
}

/* P.V of a q8_0 V cache (the integer order of ops.h): per 32-dim chunk, each
 * row's weights p_j * dv_j as int16 (vpmovdw of the rounded products), then
 * vpdpwssd of the broadcast weight pair of positions 2i, 2i + 1 against 16
 * dims x those 2 positions (int8 widened), for 2 x 16 dims. */
INLINE void pv_q8(int nr, const ts_attn_args *a, const void *vb, int64_t nj, float *const *o,
                  const float *const *p, const float *al)
{
    const int64_t hd = a->head_dim;
    const __mmask16 full = 0xffff;
    for (int r = 0; r < nr; r++)
        for (int64_t d = 0; d < hd; d += 16)
            _mm512_storeu_ps(o[r] + d, _mm512_mul_ps(_mm512_loadu_ps(o[r] + d),
                                                     _mm512_set1_ps(al[r])));
    for (int64_t c = 0; c < hd / 32; c++) {
        const uint8_t *ch = (const uint8_t *)vb + (size_t)c * 2176;
        _Alignas(64) int16_t wq[MR][KB];
        float sw[MR];
        int mode[MR]; /* 0 integer sums, 1 nothing (tiny), 2 NaN */
        for (int r = 0; r < nr; r++) {
            __m512 w[4];
            __m512 amax = _mm512_setzero_ps();
            __mmask16 nan = 0;
            UNROLL
            for (int u = 0; u < 4; u++) {
                int64_t left = nj - 16 * u;
                __mmask16 mk = left >= 16 ? full : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
                __m512 dv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(ch + 32 * u)));
                w[u] = _mm512_maskz_mul_ps(mk, _mm512_loadu_ps(p[r] + 16 * u), dv);
                nan |= _mm512_cmp_ps_mask(w[u], w[u], _CMP_UNORD_Q);
                amax = _mm512_max_ps(amax, _mm512_abs_ps(w[u]));
            }
            const float wmax = _mm512_reduce_max_ps(amax);
            mode[r] = nan || isinf(wmax) ? 2 : wmax < 0x1p-100f ? 1 : 0;
            if (mode[r])
                continue;
            const __m512 iw = _mm512_set1_ps(32767.0f / wmax);
            sw[r] = wmax / 32767.0f;
            UNROLL
            for (int u = 0; u < 4; u++)
                _mm256_store_si256((__m256i *)(wq[r] + 16 * u),
                                   _mm512_cvtepi32_epi16(
                                       _mm512_cvtps_epi32(_mm512_mul_ps(w[u], iw))));
        }
        __m512i acc[MR][2];
        UNROLL
        for (int r = 0; r < nr; r++)
            acc[r][0] = acc[r][1] = _mm512_setzero_si512();
        const int64_t pairs = (nj + 1) / 2;
        for (int64_t i = 0; i < pairs; i++) {
            const uint8_t *pv8 = ch + 128 + 64 * i;
            __m512i v0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)pv8));
            __m512i v1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(pv8 + 32)));
            UNROLL
            for (int r = 0; r < nr; r++) {
                int32_t w2;
                memcpy(&w2, wq[r] + 2 * i, 4);
                __m512i wb = _mm512_set1_epi32(w2);
                acc[r][0] = _mm512_dpwssd_epi32(acc[r][0], v0, wb);
                acc[r][1] = _mm512_dpwssd_epi32(acc[r][1], v1, wb);
            }
        }
        for (int r = 0; r < nr; r++) {
            float *oc = o[r] + 32 * c;
            if (mode[r] == 1)
                continue;
            for (int h = 0; h < 2; h++) {
                __m512 ov = _mm512_loadu_ps(oc + 16 * h);
                ov = mode[r] == 2 ? _mm512_add_ps(ov, _mm512_set1_ps(NAN))
                                  : _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][h]),
                                                    _mm512_set1_ps(sw[r]), ov);
                _mm512_storeu_ps(oc + 16 * h, ov);
            }
        }
    }
}

INLINE void pv(int t, int nr, const ts_attn_args *a, const void *vb, int64_t nj,
               float *const *o, const float *const *p, const float *al)
{
    if (t == TS_ATTN_Q8_0) {
        pv_q8(nr, a, vb, nj, o, p, al);
        return;
    }
    const int64_t vs = ts_attn_vstride(a->head_dim);
    int64_t dc = 0;
    for (; dc + 64 <= vs; dc += 64)
        pv_chunk(t, nr, 4, a, vb, nj, dc, o, p, al);
    for (; dc < vs; dc += 16)
        pv_chunk(t, nr, 1, a, vb, nj, dc, o, p, al);
}

INLINE void fma_rows(int nr, const float *const *q, int64_t d, const __m512 *kv,
                     __m512 acc[MR][4])
{
    UNROLL
    for (int r = 0; r < nr; r++) {
        __m512 qb = _mm512_set1_ps(q[r][d]);
        UNROLL
        for (int u = 0; u < 4; u++)
            acc[r][u] = _mm512_fmadd_ps(qb, kv[u], acc[r][u]);
    }
}

/* Raw scores of nr rows for the key block at kb into sc (lane-wise fma chain
 * over d). */
INLINE void qk(int t, int nr, const ts_attn_args *a, const float *const *q, const void *kb,
               float (*sc)[KB])
{
    const int64_t hd = a->head_dim;
    __m512 acc[MR][4];
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int u = 0; u < 4; u++)
            acc[r][u] = _mm512_setzero_ps();
    /* plain types only (quantized K: qk_int) */
    for (int64_t d = 0; d < hd; d++) {
        __m512 kv[4];
        UNROLL
        for (int u = 0; u < 4; u++)
            kv[u] = ld16(t, kb, 16 * u * hd + d * 16);
        fma_rows(nr, q, d, kv, acc);
    }
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int u = 0; u < 4; u++)
            _mm512_storeu_ps(sc[r] + 16 * u, acc[r][u]);
}

/* The rows' queries quantized for a q8_0 K cache. */
typedef struct {
    int8_t qs[MR][TS_ATTN_MAX_HD];
    float dq[MR][TS_ATTN_MAX_HD / 32];
    int32_t bias[MR][TS_ATTN_MAX_HD / 32]; /* 128 * sum of the block's ints */
} qx8;

/* Integer scores (q8_0 / q4_0 K) of nr rows for the key block at kb into sc. */
INLINE void qk_int(int t, int nr, const ts_attn_args *a, const qx8 *x, const void *kb,
                   float (*sc)[KB])
{
    const int64_t hd = a->head_dim, nc = hd / 32;
    const size_t cb = ts_attn_kchunk_bytes(t);
    const int32_t bias_mul = t == TS_ATTN_Q8_0 ? 1 : 16; /* bias holds 128 * sum; q4_0: 8 * sum */
    const __m512i lo4 = _mm512_set1_epi8(15);
    __m512 s[MR][4];
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int u = 0; u < 4; u++)
            s[r][u] = _mm512_setzero_ps();
    for (int64_t c = 0; c < nc; c++) {
        const uint8_t *ch[4];
        UNROLL
        for (int u = 0; u < 4; u++)
            ch[u] = (const uint8_t *)kb + ((size_t)u * (size_t)nc + (size_t)c) * cb;
        __m512i acc[MR][4];
        UNROLL
        for (int r = 0; r < nr; r++)
            UNROLL
            for (int u = 0; u < 4; u++)
                acc[r][u] = _mm512_setzero_si512();
        for (int i = 0; i < 8; i++) {
            __m512i kv[4];
            UNROLL
            for (int u = 0; u < 4; u++) {
                if (t == TS_ATTN_Q8_0) {
                    kv[u] = _mm512_loadu_si512((const void *)(ch[u] + 32 + 64 * i));
                } else { /* quad i: the low (even i) or high (odd) nibbles of pair i / 2 */
                    __m512i v = _mm512_loadu_si512((const void *)(ch[u] + 32 + 64 * (i / 2)));
                    kv[u] = _mm512_and_si512(i % 2 ? _mm512_srli_epi16(v, 4) : v, lo4);
                }
            }
            UNROLL
            for (int r = 0; r < nr; r++) {
                int32_t q4;
                memcpy(&q4, x->qs[r] + 32 * c + 4 * i, 4);
                __m512i qb = _mm512_set1_epi32(q4);
                UNROLL
                for (int u = 0; u < 4; u++)
                    acc[r][u] = _mm512_dpbusd_epi32(acc[r][u], kv[u], qb);
            }
        }
        __m512 dk[4];
        UNROLL
        for (int u = 0; u < 4; u++)
            dk[u] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)ch[u]));
        UNROLL
        for (int r = 0; r < nr; r++) {
            __m512i bias = _mm512_set1_epi32(x->bias[r][c] / bias_mul);
            __m512 dq = _mm512_set1_ps(x->dq[r][c]);
            UNROLL
            for (int u = 0; u < 4; u++)
                s[r][u] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][u], bias)),
                                          _mm512_mul_ps(dq, dk[u]), s[r][u]);
        }
    }
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int u = 0; u < 4; u++)
            _mm512_storeu_ps(sc[r] + 16 * u, s[r][u]);
}

typedef void (*qk_fn)(const ts_attn_args *a, const float *const *q, const qx8 *x,
                      const void *kb, float (*sc)[KB]);
typedef void (*pv_fn)(const ts_attn_args *a, const void *vb, int64_t nj, float *const *o,
                      const float *const *p, const float *al);

#define QK_INST(T, N)                                                                         \
    static void qk_##T##_##N(const ts_attn_args *a, const float *const *q, const qx8 *x,      \
                             const void *kb, float (*sc)[KB])                                 \
    {                                                                                         \
        if (ts_attn_type_quant(T))                                                            \
            qk_int(T, N, a, x, kb, sc);                                                       \
        else                                                                                  \
            qk(T, N, a, q, kb, sc);                                                           \
    }
#define PV_INST(T, N)                                                                         \
    static void pv_##T##_##N(const ts_attn_args *a, const void *vb, int64_t nj,               \
                             float *const *o, const float *const *p, const float *al)         \
    {                                                                                         \
        pv(T, N, a, vb, nj, o, p, al);                                                        \
    }
#define INST_T(T) QK_INST(T, 1) QK_INST(T, 2) QK_INST(T, 3) QK_INST(T, 4) \
                  PV_INST(T, 1) PV_INST(T, 4)
INST_T(0)
INST_T(1)
INST_T(2)
INST_T(3)
INST_T(4)
#define QK_ROW(T) {qk_##T##_1, qk_##T##_2, qk_##T##_3, qk_##T##_4}
static const qk_fn k_qk[TS_ATTN_NTYPES][MR] = {QK_ROW(0), QK_ROW(1), QK_ROW(2), QK_ROW(3),
                                               QK_ROW(4)};
static const pv_fn k_pv1[TS_ATTN_NTYPES] = {pv_0_1, pv_1_1, pv_2_1, pv_3_1, pv_4_1};
static const pv_fn k_pv4[TS_ATTN_NTYPES] = {pv_0_4, pv_1_4, pv_2_4, pv_3_4, pv_4_4};

/* Softmax step of one row for the block: returns the block's valid p_j in pb
 * and updates m, l; *al gets exp(m_old - m_new). cnt = valid keys (1..64). */
INLINE void softmax_row(const float *raw, float scale, int64_t cnt, float *m, float *l,
                        float *al, float *pb)
{
    __m512 s[4];
    UNROLL
    for (int u = 0; u < 4; u++) {
        int64_t nv = cnt - 16 * u;
        __mmask16 mk = nv >= 16 ? (__mmask16)0xffff : nv <= 0 ? 0 : (__mmask16)((1u << nv) - 1);
        s[u] = _mm512_mask_mul_ps(_mm512_set1_ps(-INFINITY), mk, _mm512_loadu_ps(raw + 16 * u),
                                  _mm512_set1_ps(scale));
    }
    float mb = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(s[0], s[1]),
                                                  _mm512_max_ps(s[2], s[3])));
    float mn = *m > mb ? *m : mb;
    float a1 = _mm_cvtss_f32(_mm512_castps512_ps128(exp_canon16(_mm512_set1_ps(*m - mn))));
    __m512 mv = _mm512_set1_ps(mn), lane = _mm512_setzero_ps();
    UNROLL
    for (int u = 0; u < 4; u++) {
        __m512 e = exp_canon16(_mm512_sub_ps(s[u], mv));
        _mm512_storeu_ps(pb + 16 * u, e);
        lane = u ? _mm512_add_ps(lane, e) : e;
    }
    *l = *l * a1 + hsum16(lane);
    *al = a1;
    *m = mn;
}

/* Row r's query as q8_0 (ts_attn_quant_q8_0), its ints, scales and biases. */
static void quant_row(const float *q, int64_t hd, qx8 *x, int r)
{
    ts_block_q8_0 qq[TS_ATTN_MAX_HD / 32];
    ts_attn_quant_q8_0(q, qq, hd);
    for (int64_t b = 0; b < hd / 32; b++) {
        int32_t sum = 0;
        for (int i = 0; i < 32; i++)
            sum += qq[b].qs[i];
        memcpy(x->qs[r] + 32 * b, qq[b].qs, 32);
        x->dq[r][b] = ts_f16_to_f32(qq[b].d);
        x->bias[r][b] = 128 * sum;
    }
}

static void rowblock(int nr, const ts_attn_args *a, int64_t r0)
{
    const int64_t hd = a->head_dim, vs = ts_attn_vstride(hd);
    const size_t kbb = ts_attn_kblock_bytes(a->k_type, hd);
    const size_t vbb = ts_attn_vblock_bytes(a->v_type, hd);
    const qk_fn qkf = k_qk[a->k_type][nr - 1];
    const pv_fn pvn = nr == MR ? k_pv4[a->v_type] : NULL, pv1 = k_pv1[a->v_type];
    _Alignas(64) float ob[MR][TS_ATTN_MAX_HD];
    _Alignas(64) float pbuf[MR][KB], raw[MR][KB];
    const float *q[MR];
    float *o[MR], *out[MR];
    const float *p[MR];
    float m[MR], l[MR], al[MR] = {0};
    int64_t pos[MR], pmax = 0;
    qx8 x;
    for (int r = 0; r < nr; r++) {
        int64_t i = (r0 + r) / a->n_grp, g = (r0 + r) % a->n_grp;
        q[r] = (const float *)((const char *)a->q + i * a->q_stride) + g * hd;
        out[r] = (float *)((char *)a->out + i * a->out_stride) + g * hd;
        pos[r] = a->pos0 + i;
        pmax = pos[r] > pmax ? pos[r] : pmax;
        o[r] = ob[r];
        p[r] = pbuf[r];
        m[r] = -INFINITY;
        l[r] = 0.0f;
        memset(ob[r], 0, (size_t)vs * sizeof(float));
        if (ts_attn_type_quant(a->k_type))
            quant_row(q[r], hd, &x, r);
    }
    for (int64_t b = 0; b <= pmax; b += KB) {
        const void *kb = ts_attn_block(a->k, a->pages, a->k_page_stride, kbb, b / KB);
        const void *vb = ts_attn_block(a->v, a->pages, a->v_page_stride, vbb, b / KB);
        qkf(a, q, &x, kb, raw);
        bool full = true;
        for (int r = 0; r < nr; r++) {
            int64_t cnt = pos[r] - b + 1;
            if (cnt < KB)
                full = false;
            if (cnt > 0)
                softmax_row(raw[r], a->scale, cnt, &m[r], &l[r], &al[r], pbuf[r]);
        }
        if (full && pvn) {
            pvn(a, vb, KB, o, p, al);
            continue;
        }
        for (int r = 0; r < nr; r++) {
            int64_t cnt = pos[r] - b + 1;
            if (cnt > 0)
                pv1(a, vb, cnt < KB ? cnt : KB, &o[r], &p[r], &al[r]);
        }
    }
    for (int r = 0; r < nr; r++) {
        __m512 inv = _mm512_set1_ps(1.0f / l[r]);
        for (int64_t d = 0; d < hd; d += 16) {
            __mmask16 mk = hd - d >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (hd - d)) - 1);
            _mm512_mask_storeu_ps(out[r] + d, mk, _mm512_mul_ps(_mm512_loadu_ps(o[r] + d), inv));
        }
    }
}

/* Contract: ts_attn_fn (simd/ops.h); bit-identical to the scalar level. */
void ts_attn_avx512(const ts_attn_args *a)
{
    const int64_t rows = a->n_q * a->n_grp;
    int64_t r0 = 0;
    for (; r0 + MR <= rows; r0 += MR)
        rowblock(MR, a, r0);
    if (rows > r0)
        rowblock((int)(rows - r0), a, r0);
}
