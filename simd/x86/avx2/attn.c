/*
 * simd/x86/avx2/attn.c: the AVX2 level of the attention kernels (f32 and f16
 * KV cache), in the canonical order of simd/scalar/attn.c: same bits.
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
 * Does not own: tiling.
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

void ts_attn_f32kv_avx2(const ts_attn_args *a);
void ts_attn_f16kv_avx2(const ts_attn_args *a);

/* 8 cache elements from element index i as f32 (f16 widened exactly). */
INLINE __m256 ld8(int f16, const void *base, int64_t i)
{
    if (f16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + i)));
    return _mm256_loadu_ps((const float *)base + i);
}

/* o[r][dc .. dc + 16) = o * al[r], then += p[r][j] * v_j for j < nj. */
INLINE void pv_chunk(int f16, int nr, const ts_attn_args *a, const void *vb, int64_t nj,
                     int64_t dc, float *const *o, const float *const *p, const float *al)
{
    const int64_t vs = ts_attn_vstride(a->head_dim);
    __m256 acc[MR][2];
    UNROLL
    for (int r = 0; r < nr; r++)
        UNROLL
        for (int u = 0; u < 2; u++)
            acc[r][u] = _mm256_mul_ps(_mm256_loadu_ps(o[r] + dc + 8 * u), _mm256_set1_ps(al[r]));
    for (int64_t j = 0; j < nj; j++) {
        __m256 v0 = ld8(f16, vb, j * vs + dc), v1 = ld8(f16, vb, j * vs + dc + 8);
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
INLINE void qk(int f16, int nr, const ts_attn_args *a, const float *const *q, int64_t b,
               const void *kblk, const int64_t *pos, float (*sc)[KB])
{
    const int64_t hd = a->head_dim;
    const __m256 scale = _mm256_set1_ps(a->scale), ninf = _mm256_set1_ps(-INFINITY);
    for (int64_t g = 0; g < KB; g += 16) {
        __m256 acc[MR][2];
        UNROLL
        for (int r = 0; r < nr; r++)
            acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        const int64_t kb = g * hd;
        for (int64_t d = 0; d < hd; d++) {
            __m256 k0 = ld8(f16, kblk, kb + d * 16), k1 = ld8(f16, kblk, kb + d * 16 + 8);
            UNROLL
            for (int r = 0; r < nr; r++) {
                __m256 qb = _mm256_set1_ps(q[r][d]);
                acc[r][0] = _mm256_fmadd_ps(qb, k0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(qb, k1, acc[r][1]);
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

INLINE void rowblock(int f16, int nr, const ts_attn_args *a, int64_t r0)
{
    const int64_t hd = a->head_dim, vs = ts_attn_vstride(hd);
    _Alignas(32) float ob[MR][TS_ATTN_MAX_HD];
    _Alignas(32) float pbuf[MR][KB];
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
        qk(f16, nr, a, q, b, kb, pos, pbuf);
        bool full = true;
        UNROLL
        for (int r = 0; r < nr; r++) {
            int64_t cnt = pos[r] - b + 1;
            if (cnt < KB)
                full = false;
            if (cnt > 0)
                softmax_row(pbuf[r], &m[r], &l[r], &al[r]);
        }
        if (full) {
            for (int64_t dc = 0; dc < vs; dc += 16)
                pv_chunk(f16, nr, a, vb, KB, dc, o, p, al);
            continue;
        }
        UNROLL
        for (int r = 0; r < nr; r++) {
            int64_t cnt = pos[r] - b + 1;
            for (int64_t dc = 0; cnt > 0 && dc < vs; dc += 16)
                pv_chunk(f16, 1, a, vb, cnt < KB ? cnt : KB, dc, &o[r], &p[r], &al[r]);
        }
    }
    UNROLL
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
void ts_attn_f32kv_avx2(const ts_attn_args *a) { attn(0, a); }
void ts_attn_f16kv_avx2(const ts_attn_args *a) { attn(1, a); }
