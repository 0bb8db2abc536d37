/*
 * core/kv.c: the KV cache.
 *
 * Owns: storage for keys and values of every layer, layout
 * [layer][kv_head][pos][head_dim], f32 or f16 (round to nearest even, the
 * same conversion ggml uses). Allocated once for n_ctx positions without
 * touching the pages, so resident memory grows with the positions written.
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
    size_t elem = f16 ? sizeof(ts_f16) : sizeof(float);
    double total = (double)n_ctx * (double)hp->n_layer * (double)hp->n_head_kv *
                   (double)hp->head_k * (double)elem;
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

static size_t row_index(const ts_kv *kv, int64_t layer, int64_t head, int64_t pos)
{
    return (size_t)(((layer * kv->n_head_kv + head) * kv->n_ctx + pos) * kv->head_dim);
}

void ts_kv_store_token(ts_kv *kv, int64_t layer, int64_t pos, const float *k, const float *v)
{
    int64_t hd = kv->head_dim;
    for (int64_t h = 0; h < kv->n_head_kv; h++) {
        size_t at = row_index(kv, layer, h, pos);
        const float *ks = k + h * hd, *vs = v + h * hd;
        if (kv->f16) {
            ts_f16 *kd = (ts_f16 *)kv->k + at, *vd = (ts_f16 *)kv->v + at;
            for (int64_t d = 0; d < hd; d++) {
                kd[d] = ts_f32_to_f16(ks[d]);
                vd[d] = ts_f32_to_f16(vs[d]);
            }
        } else {
            memcpy((float *)kv->k + at, ks, (size_t)hd * sizeof(float));
            memcpy((float *)kv->v + at, vs, (size_t)hd * sizeof(float));
        }
    }
}

const void *ts_kv_k_row(const ts_kv *kv, int64_t layer, int64_t head, int64_t pos)
{
    size_t at = row_index(kv, layer, head, pos);
    return kv->f16 ? (const void *)((const ts_f16 *)kv->k + at) : (const void *)((const float *)kv->k + at);
}

const void *ts_kv_v_row(const ts_kv *kv, int64_t layer, int64_t head, int64_t pos)
{
    size_t at = row_index(kv, layer, head, pos);
    return kv->f16 ? (const void *)((const ts_f16 *)kv->v + at) : (const void *)((const float *)kv->v + at);
}
