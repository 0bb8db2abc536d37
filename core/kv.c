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
 * A pool (ts_kv_init_pool) holds the same blocks page-major instead: page p
 * is one 64-position block of every layer and head, handed to sequences by
 * core/batch.c through page tables; the kernels follow the table.
 * Does not own: attention math (core/attn.c) or positions (the session).
 * Invariant: a row's bits depend only on the token's K/V values, never on
 * how the prompt was chunked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "session.h"
#include "../quant/quant.h"

static void set_geometry(ts_kv *kv, const ts_hparams *hp, bool f16)
{
    kv->f16 = f16;
    kv->n_layer = hp->n_layer_kv; /* the layers with attention */
    kv->n_head_kv = hp->n_head_kv;
    kv->head_dim = hp->head_k;
    kv->vstride = ts_attn_vstride(hp->head_k);
}

static size_t elem_bytes(const ts_kv *kv) { return kv->f16 ? sizeof(ts_f16) : sizeof(float); }

static ts_status alloc_kv(ts_kv *kv, double k_total, double v_total, const char *what,
                          ts_err *err)
{
    if (k_total + v_total > (double)(1ull << 46))
        return ts_err_set(err, TS_E_NOMEM, "KV cache of %.0f bytes for %s is too large",
                          k_total + v_total, what);
    size_t kb = ((size_t)k_total + 63) & ~(size_t)63, vb = ((size_t)v_total + 63) & ~(size_t)63;
    /* Untouched pages stay unmapped: peak RSS grows with the cache in use. */
    kv->k = aligned_alloc(64, kb ? kb : 64);
    kv->v = aligned_alloc(64, vb ? vb : 64);
    if (!kv->k || !kv->v) {
        ts_kv_fini(kv);
        return ts_err_set(err, TS_E_NOMEM, "KV cache: out of memory (%zu + %zu bytes)", kb, vb);
    }
    return TS_OK;
}

ts_status ts_kv_init(ts_kv *kv, const ts_hparams *hp, int64_t n_ctx, bool f16, ts_err *err)
{
    memset(kv, 0, sizeof(*kv));
    set_geometry(kv, hp, f16);
    kv->n_ctx = n_ctx;
    kv->n_ctx_pad = (n_ctx + TS_ATTN_KBLK - 1) / TS_ATTN_KBLK * TS_ATTN_KBLK;
    kv->n_pages = kv->n_ctx_pad / TS_ATTN_KBLK;
    const size_t elem = elem_bytes(kv);
    kv->k_page_stride = (size_t)(TS_ATTN_KBLK * kv->head_dim) * elem;
    kv->v_page_stride = (size_t)(TS_ATTN_KBLK * kv->vstride) * elem;
    kv->k_head_stride = kv->k_page_stride * (size_t)kv->n_pages;
    kv->v_head_stride = kv->v_page_stride * (size_t)kv->n_pages;
    const double heads = (double)hp->n_layer_kv * (double)hp->n_head_kv;
    char what[64];
    snprintf(what, sizeof(what), "n_ctx %lld", (long long)n_ctx);
    return alloc_kv(kv, heads * (double)kv->k_head_stride, heads * (double)kv->v_head_stride,
                    what, err);
}

ts_status ts_kv_init_pool(ts_kv *kv, const ts_hparams *hp, int64_t n_pages, bool f16,
                          ts_err *err)
{
    memset(kv, 0, sizeof(*kv));
    set_geometry(kv, hp, f16);
    kv->n_pages = n_pages;
    kv->n_ctx = kv->n_ctx_pad = n_pages * TS_ATTN_KBLK;
    const size_t elem = elem_bytes(kv);
    const size_t heads = (size_t)(hp->n_layer_kv * hp->n_head_kv);
    kv->k_head_stride = (size_t)(TS_ATTN_KBLK * kv->head_dim) * elem;
    kv->v_head_stride = (size_t)(TS_ATTN_KBLK * kv->vstride) * elem;
    kv->k_page_stride = kv->k_head_stride * heads;
    kv->v_page_stride = kv->v_head_stride * heads;
    char what[64];
    snprintf(what, sizeof(what), "%lld pages", (long long)n_pages);
    return alloc_kv(kv, (double)n_pages * (double)kv->k_page_stride,
                    (double)n_pages * (double)kv->v_page_stride, what, err);
}

void ts_kv_poison_page(ts_kv *kv, int64_t page)
{
    const size_t elem = elem_bytes(kv), heads = (size_t)(kv->n_layer * kv->n_head_kv);
    const size_t kblk = (size_t)(TS_ATTN_KBLK * kv->head_dim) * elem;
    const size_t vblk = (size_t)(TS_ATTN_KBLK * kv->vstride) * elem;
    for (size_t h = 0; h < heads; h++) { /* all-ones bytes: NaN in f16 and in f32 */
        memset((char *)kv->k + (size_t)page * kv->k_page_stride + h * kv->k_head_stride, 0xff,
               kblk);
        memset((char *)kv->v + (size_t)page * kv->v_page_stride + h * kv->v_head_stride, 0xff,
               vblk);
    }
}

void ts_kv_fini(ts_kv *kv)
{
    free(kv->k);
    free(kv->v);
    kv->k = kv->v = NULL;
}

/* Byte offset of (layer, head)'s block in page page. */
static size_t block_at(size_t page_stride, size_t head_stride, const ts_kv *kv, int64_t layer,
                       int64_t head, int64_t page)
{
    return (size_t)page * page_stride + (size_t)(layer * kv->n_head_kv + head) * head_stride;
}

void ts_kv_store_heads(ts_kv *kv, const int32_t *pages, int64_t layer, int64_t pos, int which,
                       const float *src, int64_t h0, int64_t nh)
{
    const int64_t hd = kv->head_dim, vs = kv->vstride, blk = pos / TS_ATTN_KBLK;
    const int64_t page = pages ? pages[blk] : blk, j = pos % TS_ATTN_KBLK;
    const size_t elem = elem_bytes(kv);
    /* K element (j, d) of a block: group j / 16, row d, lane j % 16. */
    const size_t kat = (size_t)((j / TS_ATTN_KGRP) * hd * TS_ATTN_KGRP + j % TS_ATTN_KGRP);
    for (int64_t h = h0; h < h0 + nh; h++) {
        const float *hs = src + h * hd;
        if (which == 0) {
            char *kb = (char *)kv->k +
                       block_at(kv->k_page_stride, kv->k_head_stride, kv, layer, h, page) +
                       kat * elem;
            if (kv->f16) {
                ts_f16 *kd = (ts_f16 *)kb;
                for (int64_t d = 0; d < hd; d++)
                    kd[d * TS_ATTN_KGRP] = ts_f32_to_f16(hs[d]);
            } else {
                float *kd = (float *)kb;
                for (int64_t d = 0; d < hd; d++)
                    kd[d * TS_ATTN_KGRP] = hs[d];
            }
            continue;
        }
        char *vb = (char *)kv->v +
                   block_at(kv->v_page_stride, kv->v_head_stride, kv, layer, h, page) +
                   (size_t)(j * vs) * elem;
        if (kv->f16) {
            ts_f16 *vd = (ts_f16 *)vb;
            for (int64_t d = 0; d < hd; d++)
                vd[d] = ts_f32_to_f16(hs[d]);
            for (int64_t d = hd; d < vs; d++)
                vd[d] = 0;
        } else {
            float *vd = (float *)vb;
            memcpy(vd, hs, (size_t)hd * sizeof(float));
            for (int64_t d = hd; d < vs; d++)
                vd[d] = 0.0f;
        }
    }
}

const void *ts_kv_k_head(const ts_kv *kv, int64_t layer, int64_t head)
{
    return (const char *)kv->k + block_at(kv->k_page_stride, kv->k_head_stride, kv, layer, head, 0);
}

const void *ts_kv_v_head(const ts_kv *kv, int64_t layer, int64_t head)
{
    return (const char *)kv->v + block_at(kv->v_page_stride, kv->v_head_stride, kv, layer, head, 0);
}
