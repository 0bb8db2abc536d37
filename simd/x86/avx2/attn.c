/*
 * simd/x86/avx2/attn.c: the AVX2 level of the attention kernel (every KV type
 * of simd/ops.h), in the canonical order of simd/scalar/attn.c: same bits.
 *
 * Register block: MR = 4 rows (query x GQA head) share every K and V load.
 * QK^T, per group of 16 keys (two ymm: the cache stores K transposed in such
 * groups): per dim d, 2 loads, 4 broadcasts of q[r][d], 8 FMAs into 8
 * accumulators (the lane-wise fma chain over d; no horizontal sums); scores
 * are scaled, masked past each row's position and kept in a stack buffer.
 * Softmax per row and block: exact max, canonical exp, lane sums, halving
 * tree. P.V per chunk of 16 dims: 4 rows x 2 ymm accumulators, one V load per
 * key and a broadcast of p[r][j]. The output accumulator lives on the stack,
 * head_dim padded to 16 like the zero-padded V rows, so no dim tails. A row
 * whose position ends inside the block takes the one-row path for P.V.
 * Decoding is exact, as on the scalar level (f16 by vcvtph2ps, bf16 by a
 * shift, q8_0 / q4_0 widened to f32 times the f16 scale); quantized K
 * scores and q8_0 V's P.V are integer sums (ops.h). QK^T and P.V are
 * instantiated per type and row count and called per key block through a
 * table. Does not own: tiling.
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

void ts_attn_avx2(const ts_attn_args *a);

/* 8 elements of a plain (f32 / f16 / bf16) cache from element index i. */
INLINE __m256 ld8(int t, const void *base, int64_t i)
{
    if (t == TS_ATTN_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + i)));
    if (t == TS_ATTN_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + i))),
            16));
    return _mm256_loadu_ps((const float *)base + i);
}

/* 8 nibbles at p (low, or high when hi) minus 8 as f32, times sc. */
INLINE __m256 q4x8(const uint8_t *p, int hi, __m256 sc)
{
    __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
    b = hi ? _mm256_srli_epi32(b, 4) : _mm256_and_si256(b, _mm256_set1_epi32(15));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(b, _mm256_set1_epi32(8))), sc);
}

/* An f16 scale at p, broadcast. */
INLINE __m256 scale1(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _mm256_cvtph_ps(_mm_set1_epi16((short)h));
}

/* 8 decoded V elements of row j, dims [d, d + 8) (d a multiple of 8);
 * plain types and q4_0 (a q8_0 V takes pv_q8). */
INLINE __m256 ldv(int t, const void *vb, int64_t hd, int64_t j, int64_t d)
{
    if (!ts_attn_type_quant(t))
        return ld8(t, vb, j * ts_attn_vstride(hd) + d);
    const uint8_t *row = (const uint8_t *)vb + (size_t)j * ts_attn_vrow_bytes(t, hd);
    const uint8_t *blk = row + (size_t)(d / 32) * 18;
    return q4x8(blk + 2 + d % 16, (d % 32) >= 16, scale1(blk));
}

/* o[r][dc .. dc + 16) = o * al[r], then += p[r][j] * v_j for j < nj. */
INLINE void pv_chunk(int t, int nr, const ts_attn_args *a, const void *vb, int64_t nj,
                     int64_t dc, float *const *o, const float *const *p, const float *al)
{
    __m256 acc[MR][2];
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int u = 0; u < 2; u++)
            acc[r][u] = _mm256_mul_ps(_mm256_loadu_ps(o[r] + dc + 8 * u), _mm256_set1_ps(al[r]));
    for (int64_t j = 0; j < nj; j++) {
        __m256 v0 = ldv(t, vb, a->head_dim, j, dc), v1 = ldv(t, vb, a->head_dim, j, dc + 8);
        UNROLL
        for (int r = 0; r < nr; r++) {
            __m256 pj = _mm256_set1_ps(p[r][j]);
            acc[r][0] = _mm256_fmadd_ps(pj, v0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(pj, v1, acc[r][1]);
        }
    }
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int u = 0; u < 2; u++)
            _mm256_storeu_ps(o[r] + dc + 8 * u, acc[r][u]);
}

/* Scaled, masked scores of nr rows for key block b (its K at kblk) into sc[r][0 .. 64). */
INLINE void fma_rows(int nr, const float *const *q, int64_t d, __m256 k0, __m256 k1,
                     __m256 acc[MR][2])
{
    UNROLL
    for (int r = 0; r < nr; r++) {
        __m256 qb = _mm256_set1_ps(q[r][d]);
        acc[r][0] = _mm256_fmadd_ps(qb, k0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(qb, k1, acc[r][1]);
    }
}

/* The rows' queries quantized for a q8_0 K cache (ts_attn_quant_q8_0). */
typedef struct {
    int8_t qs[MR][TS_ATTN_MAX_HD];
    float dq[MR][TS_ATTN_MAX_HD / 32];
} qx8;

static void quant_row(const float *q, int64_t hd, qx8 *x, int r)
{
    ts_block_q8_0 qq[TS_ATTN_MAX_HD / 32];
    ts_attn_quant_q8_0(q, qq, hd);
    for (int64_t b = 0; b < hd / 32; b++) {
        memcpy(x->qs[r] + 32 * b, qq[b].qs, 32);
        x->dq[r][b] = ts_f16_to_f32(qq[b].d);
    }
}

INLINE void qk(int t, int nr, const ts_attn_args *a, const float *const *q, const qx8 *x,
               int64_t b, const void *kblk, const int64_t *pos, float (*sc)[KB])
{
    const int64_t hd = a->head_dim;
    const __m256 scale = _mm256_set1_ps(a->scale), ninf = _mm256_set1_ps(-INFINITY);
    for (int64_t g = 0; g < KB; g += 16) {
        __m256 acc[MR][2];
        UNROLL
        for (int r = 0; r < nr; r++)
            acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        if (!ts_attn_type_quant(t)) {
            const int64_t kb = g * hd;
            for (int64_t d = 0; d < hd; d++)
                fma_rows(nr, q, d, ld8(t, kblk, kb + d * 16), ld8(t, kblk, kb + d * 16 + 8), acc);
        } else {
            const size_t cb = ts_attn_kchunk_bytes(t), nc = (size_t)(hd / 32);
            for (int64_t c = 0; c < hd / 32; c++) {
                const uint8_t *ch = (const uint8_t *)kblk + ((size_t)(g / 16) * nc + (size_t)c) * cb;
                __m256 s0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)ch));
                __m256 s1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(ch + 16)));
                {
                    /* integer scores (ops.h): exact sums of 4-dim quads */
                    __m256i ia[MR][2];
                    UNROLL
                    for (int r = 0; r < nr; r++)
                        ia[r][0] = ia[r][1] = _mm256_setzero_si256();
                    const __m256i flip = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
                    for (int i = 0; i < 8; i++) {
                        __m256i k0, k1;
                        if (t == TS_ATTN_Q8_0) {
                            const uint8_t *quad = ch + 32 + 64 * i;
                            k0 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)quad), flip);
                            k1 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(quad + 32)),
                                                  flip);
                        } else { /* quad i: low (even i) or high nibbles of pair i / 2, minus 8 */
                            const uint8_t *pair = ch + 32 + 64 * (i / 2);
                            const __m256i m4 = _mm256_set1_epi8(15), e8 = _mm256_set1_epi8(8);
                            __m256i v0 = _mm256_loadu_si256((const __m256i *)pair);
                            __m256i v1 = _mm256_loadu_si256((const __m256i *)(pair + 32));
                            if (i % 2) {
                                v0 = _mm256_srli_epi16(v0, 4);
                                v1 = _mm256_srli_epi16(v1, 4);
                            }
                            k0 = _mm256_sub_epi8(_mm256_and_si256(v0, m4), e8);
                            k1 = _mm256_sub_epi8(_mm256_and_si256(v1, m4), e8);
                        }
                        UNROLL
                        for (int r = 0; r < nr; r++) {
                            int32_t q4;
                            memcpy(&q4, x->qs[r] + 32 * c + 4 * i, 4);
                            __m256i qb = _mm256_set1_epi32(q4), aq = _mm256_abs_epi8(qb);
                            ia[r][0] = _mm256_add_epi32(ia[r][0], _mm256_madd_epi16(
                                _mm256_maddubs_epi16(aq, _mm256_sign_epi8(k0, qb)), ones));
                            ia[r][1] = _mm256_add_epi32(ia[r][1], _mm256_madd_epi16(
                                _mm256_maddubs_epi16(aq, _mm256_sign_epi8(k1, qb)), ones));
                        }
                    }
                    UNROLL
                    for (int r = 0; r < nr; r++) {
                        __m256 dq = _mm256_set1_ps(x->dq[r][c]);
                        acc[r][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ia[r][0]),
                                                    _mm256_mul_ps(dq, s0), acc[r][0]);
                        acc[r][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ia[r][1]),
                                                    _mm256_mul_ps(dq, s1), acc[r][1]);
                    }
                }
            }
        }
        UNROLL
        for (int r = 0; r < nr; r++) {
            int64_t cnt = pos[r] - b - g + 1; /* valid keys from this group on */
            __m256 s0 = _mm256_mul_ps(acc[r][0], scale), s1 = _mm256_mul_ps(acc[r][1], scale);
            s0 = _mm256_blendv_ps(ninf, s0, _mm256_castsi256_ps(tail8(cnt)));
            s1 = _mm256_blendv_ps(ninf, s1, _mm256_castsi256_ps(tail8(cnt - 8)));
            _mm256_storeu_ps(sc[r] + g, s0);
            _mm256_storeu_ps(sc[r] + g + 8, s1);
        }
    }
}

/* Softmax step of one row: scores sc (64, masked) become p; updates m, l. */
INLINE void softmax_row(float *sc, float *m, float *l, float *al)
{
    __m256 mx = _mm256_loadu_ps(sc);
    UNROLL
    for (int u = 1; u < 8; u++)
        mx = _mm256_max_ps(mx, _mm256_loadu_ps(sc + 8 * u));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float mb = _mm_cvtss_f32(m4);
    float mn = *m > mb ? *m : mb;
    float a1 = _mm_cvtss_f32(_mm256_castps256_ps128(exp_canon8(_mm256_set1_ps(*m - mn))));
    __m256 mv = _mm256_set1_ps(mn), lo = _mm256_setzero_ps(), hi = lo;
    UNROLL
    for (int u = 0; u < 8; u++) {
        __m256 e = exp_canon8(_mm256_sub_ps(_mm256_loadu_ps(sc + 8 * u), mv));
        _mm256_storeu_ps(sc + 8 * u, e);
        if (u < 2)
            u ? (hi = e) : (lo = e);
        else
            (u & 1) ? (hi = _mm256_add_ps(hi, e)) : (lo = _mm256_add_ps(lo, e));
    }
    *l = *l * a1 + hsum16x2(lo, hi);
    *al = a1;
    *m = mn;
}

typedef void (*qk_fn)(const ts_attn_args *a, const float *const *q, const qx8 *x, int64_t b,
                      const void *kblk, const int64_t *pos, float (*sc)[KB]);
typedef void (*pv_fn)(const ts_attn_args *a, const void *vb, int64_t nj, float *const *o,
                      const float *const *p, const float *al);

#define QK_INST(T, N)                                                                         \
    static void qk_##T##_##N(const ts_attn_args *a, const float *const *q, const qx8 *x,      \
                             int64_t b, const void *kblk, const int64_t *pos,                 \
                             float (*sc)[KB])                                                 \
    {                                                                                         \
        qk(T, N, a, q, x, b, kblk, pos, sc);                                                  \
    }
/* P.V of a q8_0 V cache (the integer order of ops.h), row by row: per 32-dim
 * chunk, the row's weights p_j * dv_j rounded to int16, then vpmaddwd of the
 * broadcast weight pair of positions 2i, 2i + 1 against 8 dims x those 2
 * positions (int8 widened), 4 x 8 dims. */
static void pv_q8(int nr, const ts_attn_args *a, const void *vb, int64_t nj, float *const *o,
                  const float *const *p, const float *al)
{
    const int64_t hd = a->head_dim;
    for (int r = 0; r < nr; r++) {
        for (int64_t d = 0; d < hd; d += 8)
            _mm256_storeu_ps(o[r] + d, _mm256_mul_ps(_mm256_loadu_ps(o[r] + d),
                                                     _mm256_set1_ps(al[r])));
        for (int64_t c = 0; c < hd / 32; c++) {
            const uint8_t *ch = (const uint8_t *)vb + (size_t)c * 2176;
            _Alignas(32) float w[KB];
            _Alignas(32) int32_t wi[KB];
            int16_t wq[KB];
            __m256 amax = _mm256_setzero_ps(), nanv = _mm256_setzero_ps();
            const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
            for (int u = 0; u < 8; u++) {
                __m256i mk = tail8(nj - 8 * u);
                __m256 dv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(ch + 16 * u)));
                __m256 wv = _mm256_and_ps(_mm256_mul_ps(_mm256_loadu_ps(p[r] + 8 * u), dv),
                                          _mm256_castsi256_ps(mk));
                nanv = _mm256_or_ps(nanv, _mm256_cmp_ps(wv, wv, _CMP_UNORD_Q));
                amax = _mm256_max_ps(amax, _mm256_and_ps(wv, absm));
                _mm256_store_ps(w + 8 * u, wv);
            }
            __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
            m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
            const float wmax = _mm_cvtss_f32(m4);
            float *oc = o[r] + 32 * c;
            if (_mm256_movemask_ps(nanv) || isinf(wmax)) {
                for (int h = 0; h < 4; h++)
                    _mm256_storeu_ps(oc + 8 * h, _mm256_add_ps(_mm256_loadu_ps(oc + 8 * h),
                                                               _mm256_set1_ps(NAN)));
                continue;
            }
            if (wmax < 0x1p-100f)
                continue;
            const __m256 iw = _mm256_set1_ps(32767.0f / wmax);
            const float sw = wmax / 32767.0f;
            for (int u = 0; u < 8; u++)
                _mm256_store_si256((__m256i *)(wi + 8 * u),
                                   _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_load_ps(w + 8 * u), iw)));
            for (int j = 0; j < KB; j++)
                wq[j] = (int16_t)wi[j];
            __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(),
                              _mm256_setzero_si256(), _mm256_setzero_si256()};
            for (int64_t i = 0; i < (nj + 1) / 2; i++) {
                int32_t w2;
                memcpy(&w2, wq + 2 * i, 4);
                const __m256i wb = _mm256_set1_epi32(w2);
                const uint8_t *pv8 = ch + 128 + 64 * i;
                for (int h = 0; h < 4; h++)
                    acc[h] = _mm256_add_epi32(acc[h], _mm256_madd_epi16(_mm256_cvtepi8_epi16(
                        _mm_loadu_si128((const __m128i *)(pv8 + 16 * h))), wb));
            }
            for (int h = 0; h < 4; h++)
                _mm256_storeu_ps(oc + 8 * h, _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[h]),
                                                             _mm256_set1_ps(sw),
                                                             _mm256_loadu_ps(oc + 8 * h)));
        }
    }
}

#define PV_INST(T, N)                                                                         \
    static void pv_##T##_##N(const ts_attn_args *a, const void *vb, int64_t nj,               \
                             float *const *o, const float *const *p, const float *al)         \
    {                                                                                         \
        if (T == TS_ATTN_Q8_0) {                                                              \
            pv_q8(N, a, vb, nj, o, p, al);                                                    \
            return;                                                                           \
        }                                                                                     \
        for (int64_t dc = 0; dc < ts_attn_vstride(a->head_dim); dc += 16)                     \
            pv_chunk(T, N, a, vb, nj, dc, o, p, al);                                          \
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

static void rowblock(int nr, const ts_attn_args *a, int64_t r0)
{
    const int64_t hd = a->head_dim, vs = ts_attn_vstride(hd);
    const size_t kbb = ts_attn_kblock_bytes(a->k_type, hd);
    const size_t vbb = ts_attn_vblock_bytes(a->v_type, hd);
    const qk_fn qkf = k_qk[a->k_type][nr - 1];
    const pv_fn pvn = nr == MR ? k_pv4[a->v_type] : NULL, pv1 = k_pv1[a->v_type];
    _Alignas(32) float ob[MR][TS_ATTN_MAX_HD];
    _Alignas(32) float pbuf[MR][KB];
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
        qkf(a, q, &x, b, kb, pos, pbuf);
        bool full = true;
        for (int r = 0; r < nr; r++) {
            int64_t cnt = pos[r] - b + 1;
            if (cnt < KB)
                full = false;
            if (cnt > 0)
                softmax_row(pbuf[r], &m[r], &l[r], &al[r]);
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
        __m256 inv = _mm256_set1_ps(1.0f / l[r]);
        for (int64_t d = 0; d < hd; d += 8) {
            __m256 y = _mm256_mul_ps(_mm256_loadu_ps(o[r] + d), inv);
            if (hd - d >= 8)
                _mm256_storeu_ps(out[r] + d, y);
            else
                _mm256_maskstore_ps(out[r] + d, tail8(hd - d), y);
        }
    }
}

/* Contract: ts_attn_fn (simd/ops.h); bit-identical to the scalar level. */
void ts_attn_avx2(const ts_attn_args *a)
{
    const int64_t rows = a->n_q * a->n_grp;
    int64_t r0 = 0;
    for (; r0 + MR <= rows; r0 += MR)
        rowblock(MR, a, r0);
    if (rows > r0)
        rowblock((int)(rows - r0), a, r0);
}
