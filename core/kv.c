/*
 * core/kv.c: the KV cache.
 *
 * Owns: storage for keys and values of every layer, [layer][kv_head] blocks
 * of n_ctx_pad positions in the attention kernels' layout (simd/ops.h): K
 * transposed in groups of 16 positions, (head_dim, 16) each, so one vector
 * load gives one dim of 16 keys; V as rows of vstride (head_dim rounded up
 * to 16) with a zero pad. f32 or f16 (round to nearest even, the same
 * conversion ggml uses). Allocated once for n_ctx positions (padded to a
 * whole key block: the kernels read keys in blocks of 64) without touching
 * the pages, so resident memory grows with the positions written.
 * Does not own: attention math (core/attn.c) or positions (the session).
 * Invariant: a row's bits depend only on the token's K/V values, never on
 * how the prompt was chunked.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "session.h"
#include "../quant/quant.h"

ts_status ts_kv_init(ts_kv *kv, const ts_hparams *hp, int64_t n_ctx, bool f16, ts_err *err)
{
    memset(kv, 0, sizeof(*kv));
    kv->f16 = f16;
    kv->n_ctx = n_ctx;
    kv->n_layer = hp->n_layer;
    kv->n_head_kv = hp->n_head_kv;
    kv->head_dim = hp->head_k;
    kv->n_ctx_pad = (n_ctx + TS_ATTN_KBLK - 1) / TS_ATTN_KBLK * TS_ATTN_KBLK;
    kv->vstride = ts_attn_vstride(hp->head_k);
    size_t elem = f16 ? sizeof(ts_f16) : sizeof(float);
    double total = (double)kv->n_ctx_pad * (double)hp->n_layer * (double)hp->n_head_kv *
                   (double)kv->vstride * (double)elem;
    if (total > (double)(1ull << 46))
        return ts_err_set(err, TS_E_NOMEM, "KV cache of %.0f bytes for n_ctx %lld is too large",
                          total, (long long)n_ctx);
    size_t bytes = ((size_t)total + 63) & ~(size_t)63;
    /* Untouched pages stay unmapped: peak RSS grows with the cache in use. */
    kv->k = aligned_alloc(64, bytes);
    kv->v = aligned_alloc(64, bytes);
    if (!kv->k || !kv->v) {
        ts_kv_fini(kv);
        return ts_err_set(err, TS_E_NOMEM, "KV cache: out of memory (%zu bytes x 2)", bytes);
    }
    return TS_OK;
}

void ts_kv_fini(ts_kv *kv)
{
    free(kv->k);
    free(kv->v);
    kv->k = kv->v = NULL;
}

/* Element offset of the (layer, head) block; K blocks use n_ctx_pad * head_dim
 * of it, V blocks n_ctx_pad * vstride. */
static size_t head_base(const ts_kv *kv, int64_t layer, int64_t head, int64_t width)
{
    return (size_t)((layer * kv->n_head_kv + head) * kv->n_ctx_pad * width);
}

void ts_kv_store_heads(ts_kv *kv, int64_t layer, int64_t pos, int which, const float *src,
                       int64_t h0, int64_t nh)
{
    const int64_t hd = kv->head_dim, vs = kv->vstride;
    /* K element (pos, d) of a head: group pos / 16, row d, lane pos % 16. */
    const size_t kat = (size_t)((pos / TS_ATTN_KGRP) * hd * TS_ATTN_KGRP + pos % TS_ATTN_KGRP);
    for (int64_t h = h0; h < h0 + nh; h++) {
        const float *hs = src + h * hd;
        if (which == 0) {
            size_t kb = head_base(kv, layer, h, hd) + kat;
            if (kv->f16) {
                ts_f16 *kd = (ts_f16 *)kv->k + kb;
                for (int64_t d = 0; d < hd; d++)
                    kd[d * TS_ATTN_KGRP] = ts_f32_to_f16(hs[d]);
            } else {
                float *kd = (float *)kv->k + kb;
                for (int64_t d = 0; d < hd; d++)
                    kd[d * TS_ATTN_KGRP] = hs[d];
            }
            continue;
        }
        size_t vb = head_base(kv, layer, h, vs) + (size_t)(pos * vs);
        if (kv->f16) {
            ts_f16 *vd = (ts_f16 *)kv->v + vb;
            for (int64_t d = 0; d < hd; d++)
                vd[d] = ts_f32_to_f16(hs[d]);
            for (int64_t d = hd; d < vs; d++)
                vd[d] = 0;
        } else {
            float *vd = (float *)kv->v + vb;
            memcpy(vd, hs, (size_t)hd * sizeof(float));
            for (int64_t d = hd; d < vs; d++)
                vd[d] = 0.0f;
        }
    }
}

static const void *at(const ts_kv *kv, const void *base, size_t elem)
{
    return kv->f16 ? (const void *)((const ts_f16 *)base + elem)
                   : (const void *)((const float *)base + elem);
}

const void *ts_kv_k_head(const ts_kv *kv, int64_t layer, int64_t head)
{
    return at(kv, kv->k, head_base(kv, layer, head, kv->head_dim));
}

const void *ts_kv_v_head(const ts_kv *kv, int64_t layer, int64_t head)
{
    return at(kv, kv->v, head_base(kv, layer, head, kv->vstride));
}
