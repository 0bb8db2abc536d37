/*
 * simd/scalar/attn.c: the reference attention kernels (f32 and f16 KV cache)
 * and the definition of the canonical order every level follows.
 *
 * One row (query i, head g) at position p = pos0 + i, alone:
 *   m = -inf, l = 0, o[0 .. head_dim) = 0
 *   for each key block [b, b + 64), b = 0, 64, .. <= p (absolute key index):
 *     s_j = (fma chain d = 0 .. head_dim-1 of q[d] * k_j[d], from +0) * scale,
 *           for j <= p; j > p is -inf (masked)
 *     m' = max(m, max_j s_j); a = exp(m - m')          (exp = s_exp_canon)
 *     p_j = exp(s_j - m') for the 64 slots (masked slots give +0)
 *     lane[t] = ((p_{b+t} + p_{b+16+t}) + p_{b+32+t}) + p_{b+48+t}, t < 16
 *     l = l * a + tree(lane)   (tree: t += t + 8, += t + 4, += t + 2, += t + 1)
 *     o[d] = o[d] * a, then o[d] = fma(p_j, v_j[d], o[d]) for j = b .. min(b+63, p)
 *     m = m'
 *   out[d] = o[d] * (1 / l)
 * A SIMD level holds 16 keys in the lanes of one vector (the K cache is
 * stored transposed in groups of 16 keys for that), so this is what its
 * lane-wise FMAs and its halving horizontal sum compute: same bits.
 * Does not own: speed (this is the oracle; fmaf is a libm call at the
 * baseline -march).
 */
#include <math.h>
#include <string.h>

#include "../kernels.h"
#include "exp_canon.h"
#include "util.h"

void ts_attn_f32kv_scalar(const ts_attn_args *a);
void ts_attn_f16kv_scalar(const ts_attn_args *a);

static float kv_elem(int f16, const void *base, int64_t i)
{
    return f16 ? s_f16_to_f32(((const uint16_t *)base)[i]) : ((const float *)base)[i];
}

static float tree16(float *s)
{
    for (int j = 0; j < 8; j++)
        s[j] += s[j + 8];
    for (int j = 0; j < 4; j++)
        s[j] += s[j + 4];
    for (int j = 0; j < 2; j++)
        s[j] += s[j + 2];
    return s[0] + s[1];
}

static void attn_row(int f16, const ts_attn_args *a, const float *q, float *out, int64_t pos)
{
    int64_t hd = a->head_dim, vs = ts_attn_vstride(hd);
    float o[TS_ATTN_MAX_HD], sc[TS_ATTN_KBLK];
    float m = -INFINITY, l = 0.0f;
    for (int64_t d = 0; d < hd; d++)
        o[d] = 0.0f;
    const size_t elem = f16 ? sizeof(uint16_t) : sizeof(float);
    for (int64_t b = 0; b <= pos; b += TS_ATTN_KBLK) {
        const int64_t blk = b / TS_ATTN_KBLK;
        const void *kb = ts_attn_block(a->k, a->pages, a->k_page_stride, hd, elem, blk);
        const void *vb = ts_attn_block(a->v, a->pages, a->v_page_stride, vs, elem, blk);
        float mb = -INFINITY;
        for (int64_t jj = 0; jj < TS_ATTN_KBLK; jj++) {
            int64_t j = b + jj;
            sc[jj] = -INFINITY;
            if (j > pos)
                continue;
            const int64_t g0 = (jj / TS_ATTN_KGRP) * hd * TS_ATTN_KGRP, t = jj % TS_ATTN_KGRP;
            float acc = 0.0f;
            for (int64_t d = 0; d < hd; d++)
                acc = fmaf(q[d], kv_elem(f16, kb, g0 + d * TS_ATTN_KGRP + t), acc);
            sc[jj] = acc * a->scale;
            mb = sc[jj] > mb ? sc[jj] : mb;
        }
        float mn = m > mb ? m : mb;
        float al = s_exp_canon(m - mn);
        float lane[16] = {0};
        for (int64_t jj = 0; jj < TS_ATTN_KBLK; jj++) {
            sc[jj] = s_exp_canon(sc[jj] - mn);
            lane[jj % 16] += sc[jj];
        }
        l = l * al + tree16(lane);
        for (int64_t d = 0; d < hd; d++)
            o[d] = o[d] * al;
        for (int64_t jj = 0; jj < TS_ATTN_KBLK && b + jj <= pos; jj++) {
            const int64_t vr = jj * vs;
            for (int64_t d = 0; d < hd; d++)
                o[d] = fmaf(sc[jj], kv_elem(f16, vb, vr + d), o[d]);
        }
        m = mn;
    }
    float inv = 1.0f / l;
    for (int64_t d = 0; d < hd; d++)
        out[d] = o[d] * inv;
}

static void attn(int f16, const ts_attn_args *a)
{
    for (int64_t i = 0; i < a->n_q; i++)
        for (int64_t g = 0; g < a->n_grp; g++) {
            const float *q = (const float *)((const char *)a->q + i * a->q_stride) + g * a->head_dim;
            float *out = (float *)((char *)a->out + i * a->out_stride) + g * a->head_dim;
            attn_row(f16, a, q, out, a->pos0 + i);
        }
}

/* Contract: ts_attn_fn (simd/ops.h), canonical order above. */
void ts_attn_f32kv_scalar(const ts_attn_args *a) { attn(0, a); }
void ts_attn_f16kv_scalar(const ts_attn_args *a) { attn(1, a); }
