/*
 * simd/x86/avx512/attn.c: the AVX-512 level of the attention kernels (f32 and
 * f16 KV cache), in the canonical order of simd/scalar/attn.c: same bits.
 *
 * Register block: MR = 4 rows (query x GQA head) share every K and V load.
 * QK^T: the cache stores K transposed in groups of 16 keys, so one zmm holds
 * dim d of 16 keys and a key block is 4 zmm; per d, 4 loads, 4 broadcasts of
 * q[r][d] and 16 FMAs into 16 accumulators (the lane-wise fma chain over d of
 * the canonical order; no horizontal sums). Softmax per row and block: masked
 * scale, exact max, canonical exp, lane sums and the halving tree. P.V: per
 * chunk of 64 dims, 4 rows x 4 zmm accumulators, one V row load per key and a
 * broadcast of p[r][j]. The running output o lives on the stack with head_dim
 * padded to 16 (V rows are zero-padded alike), so there are no dim tails.
 * A row whose position ends inside the block takes the one-row path for P.V
 * (values past a row's position are never read for it). Does not own: tiling.
 */
#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../../kernels.h"
#include "exp_canon.h"

#define MR 4
#define KB TS_ATTN_KBLK
/* Full unrolling of the row / vector loops keeps the accumulators in registers. */
#define UNROLL _Pragma("GCC unroll 8")

void ts_attn_f32kv_avx512(const ts_attn_args *a);
void ts_attn_f16kv_avx512(const ts_attn_args *a);

/* 16 cache elements from element index i as f32 (f16 widened exactly). */
INLINE __m512 ld16(int f16, const void *base, int64_t i)
{
    if (f16)
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)base + i)));
    return _mm512_loadu_ps((const float *)base + i);
}

/* o[r][dc .. dc + 16 NV) = o * al[r], then += p[r][j] * v_j for j < nj keys
 * of the block starting at key b (rows are fully valid up to nj). */
INLINE void pv_chunk(int f16, int nr, int nv, const ts_attn_args *a, const void *vb, int64_t nj,
                     int64_t dc, float *const *o, const float *const *p, const float *al)
{
    const int64_t vs = ts_attn_vstride(a->head_dim);
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
            vv[u] = ld16(f16, vb, j * vs + dc + 16 * u);
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

INLINE void pv(int f16, int nr, const ts_attn_args *a, const void *vb, int64_t nj,
               float *const *o, const float *const *p, const float *al)
{
    const int64_t vs = ts_attn_vstride(a->head_dim);
    int64_t dc = 0;
    for (; dc + 64 <= vs; dc += 64)
        pv_chunk(f16, nr, 4, a, vb, nj, dc, o, p, al);
    for (; dc < vs; dc += 16)
        pv_chunk(f16, nr, 1, a, vb, nj, dc, o, p, al);
}

/* Scores of nr rows for the key block at kb into acc (lane-wise fma chain over d). */
INLINE void qk(int f16, int nr, const ts_attn_args *a, const float *const *q, const void *kb,
               __m512 acc[MR][4])
{
    const int64_t hd = a->head_dim;
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int u = 0; u < 4; u++)
            acc[r][u] = _mm512_setzero_ps();
    for (int64_t d = 0; d < hd; d++) {
        __m512 kv[4];
        UNROLL
        for (int u = 0; u < 4; u++)
            kv[u] = ld16(f16, kb, 16 * u * hd + d * 16);
        UNROLL
        for (int r = 0; r < nr; r++) {
            __m512 qb = _mm512_set1_ps(q[r][d]);
            UNROLL
            for (int u = 0; u < 4; u++)
                acc[r][u] = _mm512_fmadd_ps(qb, kv[u], acc[r][u]);
        }
    }
}

/* Softmax step of one row for the block: returns the block's valid p_j in pb
 * and updates m, l; *al gets exp(m_old - m_new). cnt = valid keys (1..64). */
INLINE void softmax_row(const __m512 *acc, float scale, int64_t cnt, float *m, float *l,
                        float *al, float *pb)
{
    __m512 s[4];
    UNROLL
    for (int u = 0; u < 4; u++) {
        int64_t nv = cnt - 16 * u;
        __mmask16 mk = nv >= 16 ? (__mmask16)0xffff : nv <= 0 ? 0 : (__mmask16)((1u << nv) - 1);
        s[u] = _mm512_mask_mul_ps(_mm512_set1_ps(-INFINITY), mk, acc[u], _mm512_set1_ps(scale));
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

INLINE void rowblock(int f16, int nr, const ts_attn_args *a, int64_t r0)
{
    const int64_t hd = a->head_dim, vs = ts_attn_vstride(hd);
    _Alignas(64) float ob[MR][TS_ATTN_MAX_HD];
    _Alignas(64) float pbuf[MR][KB];
    const float *q[MR];
    float *o[MR], *out[MR];
    const float *p[MR];
    float m[MR], l[MR], al[MR] = {0};
    int64_t pos[MR], pmax = 0;
    UNROLL
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
    }
    const size_t elem = f16 ? sizeof(uint16_t) : sizeof(float);
    for (int64_t b = 0; b <= pmax; b += KB) {
        const void *kb = ts_attn_block(a->k, a->pages, a->k_page_stride, hd, elem, b / KB);
        const void *vb = ts_attn_block(a->v, a->pages, a->v_page_stride, vs, elem, b / KB);
        __m512 acc[MR][4];
        qk(f16, nr, a, q, kb, acc);
        bool full = true;
        UNROLL
        for (int r = 0; r < nr; r++) {
            int64_t cnt = pos[r] - b + 1;
            if (cnt < KB)
                full = false;
            if (cnt > 0)
                softmax_row(acc[r], a->scale, cnt, &m[r], &l[r], &al[r], pbuf[r]);
        }
        if (full) {
            pv(f16, nr, a, vb, KB, o, p, al);
            continue;
        }
        UNROLL
        for (int r = 0; r < nr; r++) {
            int64_t cnt = pos[r] - b + 1;
            if (cnt > 0)
                pv(f16, 1, a, vb, cnt < KB ? cnt : KB, &o[r], &p[r], &al[r]);
        }
    }
    UNROLL
    for (int r = 0; r < nr; r++) {
        __m512 inv = _mm512_set1_ps(1.0f / l[r]);
        for (int64_t d = 0; d < hd; d += 16) {
            __mmask16 mk = hd - d >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (hd - d)) - 1);
            _mm512_mask_storeu_ps(out[r] + d, mk, _mm512_mul_ps(_mm512_loadu_ps(o[r] + d), inv));
        }
    }
}

static void attn(int f16, const ts_attn_args *a)
{
    const int64_t rows = a->n_q * a->n_grp;
    int64_t r0 = 0;
    for (; r0 + MR <= rows; r0 += MR)
        f16 ? rowblock(1, MR, a, r0) : rowblock(0, MR, a, r0);
    switch (rows - r0) {
    case 3: f16 ? rowblock(1, 3, a, r0) : rowblock(0, 3, a, r0); break;
    case 2: f16 ? rowblock(1, 2, a, r0) : rowblock(0, 2, a, r0); break;
    case 1: f16 ? rowblock(1, 1, a, r0) : rowblock(0, 1, a, r0); break;
    default: break;
    }
}

/* Contract: ts_attn_fn (simd/ops.h); bit-identical to the scalar level. */
void ts_attn_f32kv_avx512(const ts_attn_args *a) { attn(0, a); }
void ts_attn_f16kv_avx512(const ts_attn_args *a) { attn(1, a); }
