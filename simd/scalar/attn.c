/*
 * simd/scalar/attn.c: the reference attention kernel (every KV type), the
 * writers and readers of the KV block layouts (simd/ops.h), and the
 * definition of the canonical order every level follows.
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
 * k_j[d] and v_j[d] are the cache elements decoded to f32, exactly (f16 and
 * bf16 widened; q8_0 d * q and q4_0 d * (q - 8), one rounding-free product).
 * A SIMD level holds 16 keys in the lanes of one vector (the K cache is
 * stored transposed in groups of 16 keys for that), so this is what its
 * lane-wise FMAs and its halving horizontal sum compute: same bits.
 * Does not own: speed (this is the oracle; fmaf is a libm call at the
 * baseline -march).
 */
#include <math.h>
#include <string.h>

#include "../kernels.h"
#include "../../quant/quant.h"
#include "exp_canon.h"
#include "util.h"

void ts_attn_scalar(const ts_attn_args *a);

/* The integer of dim r (0..31) of lane (position) in a quantized K chunk. */
static inline int kint(int t, const uint8_t *c, int64_t lane, int64_t r)
{
    if (t == TS_ATTN_Q8_0)
        return (int)c[32 + (r / 4) * 64 + lane * 4 + r % 4] - 128;
    const uint8_t byte = c[32 + (r / 8) * 64 + lane * 4 + r % 4];
    return (r % 8 < 4 ? byte & 15 : byte >> 4) - 8;
}

/* K chunk of 32 dims for position j of a quantized key block. */
static const uint8_t *kchunk(int t, const void *kb, int64_t hd, int64_t j, int64_t d)
{
    return (const uint8_t *)kb +
           ((size_t)(j / TS_ATTN_KGRP) * (size_t)(hd / 32) + (size_t)(d / 32)) *
               ts_attn_kchunk_bytes(t);
}

static inline float k_elem(int t, const void *kb, int64_t hd, int64_t j, int64_t d)
{
    const int64_t lane = j % TS_ATTN_KGRP;
    if (!ts_attn_type_quant(t)) {
        const size_t i = (size_t)((j / TS_ATTN_KGRP) * hd * TS_ATTN_KGRP + d * TS_ATTN_KGRP + lane);
        if (t == TS_ATTN_F32)
            return ((const float *)kb)[i];
        uint16_t h = ((const uint16_t *)kb)[i];
        return t == TS_ATTN_F16 ? s_f16_to_f32(h) : s_bf16_to_f32(h);
    }
    const uint8_t *c = kchunk(t, kb, hd, j, d);
    uint16_t dh;
    memcpy(&dh, c + 2 * lane, 2);
    const float sc = s_f16_to_f32(dh);
    const int64_t r = d % 32;
    return sc * (float)kint(t, c, lane, r);
}

static inline float v_elem(int t, const void *vb, int64_t hd, int64_t j, int64_t d)
{
    const uint8_t *row = (const uint8_t *)vb + (size_t)j * ts_attn_vrow_bytes(t, hd);
    if (!ts_attn_type_quant(t)) {
        if (t == TS_ATTN_F32)
            return ((const float *)row)[d];
        uint16_t h = ((const uint16_t *)row)[d];
        return t == TS_ATTN_F16 ? s_f16_to_f32(h) : s_bf16_to_f32(h);
    }
    if (t == TS_ATTN_Q8_0) {
        const uint8_t *ch = (const uint8_t *)vb + (size_t)(d / 32) * 2176;
        uint16_t dh;
        memcpy(&dh, ch + 2 * j, 2);
        return s_f16_to_f32(dh) * (float)(int8_t)ch[128 + (j / 2) * 64 + (d % 32) * 2 + j % 2];
    }
    const uint8_t *blk = row + (size_t)(d / 32) * 18;
    uint16_t dh;
    memcpy(&dh, blk, 2);
    const float sc = s_f16_to_f32(dh);
    const int64_t r = d % 32;
    if (t == TS_ATTN_Q8_0)
        return sc * (float)(int8_t)blk[2 + r];
    const uint8_t byte = blk[2 + r % 16];
    return sc * (float)((r < 16 ? byte & 15 : byte >> 4) - 8);
}

float ts_attn_load_k(int t, const void *kb, int64_t hd, int64_t j, int64_t d)
{
    return k_elem(t, kb, hd, j, d);
}

float ts_attn_load_v(int t, const void *vb, int64_t hd, int64_t j, int64_t d)
{
    return v_elem(t, vb, hd, j, d);
}

void ts_attn_quant_q8_0(const float *x, void *blocks, int64_t n)
{
    ts_block_q8_0 *y = blocks;
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        if (ts_first_nonfinite(x, 32) >= 0) {
            TS_NAN_BLOCK(y[b]);
            continue;
        }
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        id = isinf(id) ? 0.0f : id;
        y[b].d = ts_f32_to_f16(amax / 127.0f);
        for (int j = 0; j < 32; j++)
            y[b].qs[j] = (int8_t)nearbyintf(x[j] * id);
    }
}

static uint16_t half_bits(int t, float f)
{
    return t == TS_ATTN_F16 ? ts_f32_to_f16(f) : ts_f32_to_bf16(f);
}

void ts_attn_store_k(int t, void *kb, int64_t hd, int64_t j, const float *src)
{
    const int64_t lane = j % TS_ATTN_KGRP;
    if (!ts_attn_type_quant(t)) {
        const size_t i0 = (size_t)((j / TS_ATTN_KGRP) * hd * TS_ATTN_KGRP + lane);
        for (int64_t d = 0; d < hd; d++) {
            if (t == TS_ATTN_F32)
                ((float *)kb)[i0 + (size_t)d * TS_ATTN_KGRP] = src[d];
            else
                ((uint16_t *)kb)[i0 + (size_t)d * TS_ATTN_KGRP] = half_bits(t, src[d]);
        }
        return;
    }
    for (int64_t d0 = 0; d0 < hd; d0 += 32) {
        uint8_t *c = (uint8_t *)kchunk(t, kb, hd, j, d0);
        if (t == TS_ATTN_Q8_0) {
            ts_block_q8_0 q;
            ts_attn_quant_q8_0(src + d0, &q, 32);
            memcpy(c + 2 * lane, &q.d, 2);
            for (int r = 0; r < 32; r++)
                c[32 + (r / 4) * 64 + lane * 4 + r % 4] = (uint8_t)(q.qs[r] + 128);
        } else {
            ts_block_q4_0 q;
            ts_quant_q4_0_scalar(src + d0, &q, 32);
            memcpy(c + 2 * lane, &q.d, 2);
            uint8_t nib[32]; /* q + 8 of dim r: q4_0 holds dim r < 16 low, r + 16 high */
            for (int r = 0; r < 16; r++) {
                nib[r] = q.qs[r] & 15;
                nib[r + 16] = q.qs[r] >> 4;
            }
            for (int p = 0; p < 4; p++)
                for (int m = 0; m < 4; m++)
                    c[32 + p * 64 + lane * 4 + m] = (uint8_t)(nib[8 * p + m] | nib[8 * p + 4 + m] << 4);
        }
    }
}

void ts_attn_store_v(int t, void *vb, int64_t hd, int64_t j, const float *src)
{
    uint8_t *row = (uint8_t *)vb + (size_t)j * ts_attn_vrow_bytes(t, hd);
    const int64_t vs = ts_attn_vstride(hd);
    switch (t) {
    case TS_ATTN_F32:
        memcpy(row, src, (size_t)hd * sizeof(float));
        memset(row + hd * 4, 0, (size_t)(vs - hd) * 4);
        break;
    case TS_ATTN_F16:
    case TS_ATTN_BF16:
        for (int64_t d = 0; d < hd; d++)
            ((uint16_t *)row)[d] = half_bits(t, src[d]);
        memset(row + hd * 2, 0, (size_t)(vs - hd) * 2);
        break;
    case TS_ATTN_Q8_0: {
        ts_block_q8_0 q[TS_ATTN_MAX_HD / 32];
        ts_attn_quant_q8_0(src, q, hd);
        for (int64_t c = 0; c < hd / 32; c++) {
            uint8_t *ch = (uint8_t *)vb + (size_t)c * 2176;
            memcpy(ch + 2 * j, &q[c].d, 2);
            for (int d = 0; d < 32; d++)
                ch[128 + (j / 2) * 64 + d * 2 + j % 2] = (uint8_t)q[c].qs[d];
        }
        break;
    }
    default: ts_quant_q4_0_scalar(src, (ts_block_q4_0 *)row, hd); break;
    }
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

/* Score of key jj of a quantized key block for the q8_0 query qq (the
 * integer canonical order of simd/ops.h), before the scale. */
static float score_int(int t, const ts_block_q8_0 *qq, const void *kb, int64_t hd, int64_t jj)
{
    const int64_t lane = jj % TS_ATTN_KGRP;
    float s = 0.0f;
    for (int64_t b = 0; b < hd / 32; b++) {
        const uint8_t *c = kchunk(t, kb, hd, jj, 32 * b);
        uint16_t dh;
        memcpy(&dh, c + 2 * lane, 2);
        int32_t isum = 0;
        for (int r = 0; r < 32; r++)
            isum += (int32_t)qq[b].qs[r] * kint(t, c, lane, r);
        s = fmaf((float)isum, s_f16_to_f32(qq[b].d) * s_f16_to_f32(dh), s);
    }
    return s;
}

/* P.V of a q8_0 V chunk c (the integer order of simd/ops.h) into o[0 .. 32):
 * p[0 .. cnt) the block's weights. */
static void pv_q8_chunk(const float *p, int64_t cnt, const uint8_t *ch, float *o)
{
    float w[TS_ATTN_KBLK], wmax = 0.0f;
    bool bad = false;
    for (int64_t j = 0; j < cnt; j++) {
        uint16_t dh;
        memcpy(&dh, ch + 2 * j, 2);
        w[j] = p[j] * s_f16_to_f32(dh);
        bad = bad || isnan(w[j]);
        wmax = fabsf(w[j]) > wmax ? fabsf(w[j]) : wmax;
    }
    if (bad || isinf(wmax)) {
        for (int d = 0; d < 32; d++)
            o[d] = o[d] + NAN;
        return;
    }
    if (wmax < 0x1p-100f)
        return;
    const float iw = 32767.0f / wmax, sw = wmax / 32767.0f;
    int32_t wq[TS_ATTN_KBLK];
    for (int64_t j = 0; j < cnt; j++)
        wq[j] = (int32_t)nearbyintf(w[j] * iw);
    for (int d = 0; d < 32; d++) {
        int32_t isum = 0;
        for (int64_t j = 0; j < cnt; j++)
            isum += wq[j] * (int32_t)(int8_t)ch[128 + (j / 2) * 64 + d * 2 + j % 2];
        o[d] = fmaf((float)isum, sw, o[d]);
    }
}

static void attn_row(const ts_attn_args *a, const float *q, float *out, int64_t pos)
{
    const int64_t hd = a->head_dim, kt = a->k_type, vt = a->v_type;
    const size_t kbb = ts_attn_kblock_bytes(a->k_type, hd);
    const size_t vbb = ts_attn_vblock_bytes(a->v_type, hd);
    float o[TS_ATTN_MAX_HD], sc[TS_ATTN_KBLK];
    float m = -INFINITY, l = 0.0f;
    for (int64_t d = 0; d < hd; d++)
        o[d] = 0.0f;
    ts_block_q8_0 qq[TS_ATTN_MAX_HD / 32];
    if (ts_attn_type_quant((int)kt))
        ts_attn_quant_q8_0(q, qq, hd);
    for (int64_t b = 0; b <= pos; b += TS_ATTN_KBLK) {
        const int64_t blk = b / TS_ATTN_KBLK;
        const void *kb = ts_attn_block(a->k, a->pages, a->k_page_stride, kbb, blk);
        const void *vb = ts_attn_block(a->v, a->pages, a->v_page_stride, vbb, blk);
        float mb = -INFINITY;
        for (int64_t jj = 0; jj < TS_ATTN_KBLK; jj++) {
            int64_t j = b + jj;
            sc[jj] = -INFINITY;
            if (j > pos)
                continue;
            float acc = 0.0f;
            if (ts_attn_type_quant((int)kt))
                acc = score_int((int)kt, qq, kb, hd, jj);
            else
                for (int64_t d = 0; d < hd; d++)
                    acc = fmaf(q[d], k_elem((int)kt, kb, hd, jj, d), acc);
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
        const int64_t cnt = pos - b + 1 < TS_ATTN_KBLK ? pos - b + 1 : TS_ATTN_KBLK;
        if (vt == TS_ATTN_Q8_0)
            for (int64_t c = 0; c < hd / 32; c++)
                pv_q8_chunk(sc, cnt, (const uint8_t *)vb + (size_t)c * 2176, o + 32 * c);
        else
            for (int64_t jj = 0; jj < cnt; jj++)
                for (int64_t d = 0; d < hd; d++)
                    o[d] = fmaf(sc[jj], v_elem((int)vt, vb, hd, jj, d), o[d]);
        m = mn;
    }
    float inv = 1.0f / l;
    for (int64_t d = 0; d < hd; d++)
        out[d] = o[d] * inv;
}

/* Contract: ts_attn_fn (simd/ops.h), canonical order above. */
void ts_attn_scalar(const ts_attn_args *a)
{
    for (int64_t i = 0; i < a->n_q; i++)
        for (int64_t g = 0; g < a->n_grp; g++) {
            const float *q = (const float *)((const char *)a->q + i * a->q_stride) + g * a->head_dim;
            float *out = (float *)((char *)a->out + i * a->out_stride) + g * a->head_dim;
            attn_row(a, q, out, a->pos0 + i);
        }
}
