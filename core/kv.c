/*
 * core/kv.c: the KV cache.
 *
 * Owns: storage for keys and values of every layer, [layer][kv_head] blocks
 * of n_ctx_pad positions in the attention kernels' layout (simd/ops.h): K
 * transposed in groups of 16 positions, (head_dim, 16) each, so one vector
 * load gives one dim of 16 keys; V as rows of vstride (head_dim rounded up
 * to 16) with a zero pad; or, quantized (q8_0, q4_0), the block layouts of
 * simd/ops.h. The element type is set per cache for K and for V (f16 by
 * default; f32, bf16, q8_0, q4_0 as llama.cpp's -ctk / -ctv); the writers are
 * simd's (round to nearest even, llama.cpp's reference quantizers). Allocated once for n_ctx positions (padded to a
 * whole key block: the kernels read keys in blocks of 64) without touching
 * the pages, so resident memory grows with the positions written.
 * A pool (ts_kv_init_pool) holds the same blocks page-major instead: page p
 * is one 64-position block of every layer and head, handed to sequences by
 * core/batch.c through page tables; the kernels follow the table.
 * Does not own: attention math (core/attn.c) or positions (the session).
 * Invariant: a row's bits depend only on the token's K/V values, never on
 * how the prompt was chunked.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "session.h"
#include "../quant/quant.h"

static ts_status set_geometry(ts_kv *kv, const ts_hparams *hp, int kt, int vt, ts_err *err)
{
    kv->k_type = kt;
    kv->v_type = vt;
    kv->n_layer = hp->n_layer_kv; /* the layers with attention */
    kv->n_head_kv = hp->n_head_kv;
    kv->head_dim = hp->head_k;
    kv->vstride = ts_attn_vstride(hp->head_k);
    for (int w = 0; w < 2; w++) {
        const int t = w ? vt : kt;
        if (t < 0 || t >= TS_ATTN_NTYPES)
            return ts_err_set(err, TS_E_ARG, "KV cache type %d unknown", t);
        if (!ts_attn_type_ok(t, hp->head_k))
            return ts_err_set(err, TS_E_UNSUPPORTED,
                              "a %s %c cache needs head_dim a multiple of 32 (the model's is %lld)",
                              ts_kv_type_name(t), w ? 'V' : 'K', (long long)hp->head_k);
    }
    /* llama.cpp (src/llama-kv-cache.cpp, attn_rot_k / attn_rot_v): a
     * quantized K or V cache with head_dim % 64 == 0 is rotated first. */
    if (ts_attn_type_quant(kt) && hp->head_k % 64 == 0)
        for (kv->rot_k = 64; hp->head_k % (2 * kv->rot_k) == 0;)
            kv->rot_k *= 2;
    if (ts_attn_type_quant(vt) && hp->head_k % 64 == 0)
        kv->rot_v = 64;
    kv->k_blk = ts_attn_kblock_bytes(kt, hp->head_k);
    kv->v_blk = ts_attn_vblock_bytes(vt, hp->head_k);
    return TS_OK;
}

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

ts_status ts_kv_init(ts_kv *kv, const ts_hparams *hp, int64_t n_ctx, int kt, int vt, ts_err *err)
{
    memset(kv, 0, sizeof(*kv));
    ts_status st = set_geometry(kv, hp, kt, vt, err);
    if (st != TS_OK)
        return st;
    kv->n_ctx = n_ctx;
    kv->n_ctx_pad = (n_ctx + TS_ATTN_KBLK - 1) / TS_ATTN_KBLK * TS_ATTN_KBLK;
    kv->n_pages = kv->n_ctx_pad / TS_ATTN_KBLK;
    kv->k_page_stride = kv->k_blk;
    kv->v_page_stride = kv->v_blk;
    kv->k_head_stride = kv->k_page_stride * (size_t)kv->n_pages;
    kv->v_head_stride = kv->v_page_stride * (size_t)kv->n_pages;
    const double heads = (double)hp->n_layer_kv * (double)hp->n_head_kv;
    char what[64];
    snprintf(what, sizeof(what), "n_ctx %lld", (long long)n_ctx);
    return alloc_kv(kv, heads * (double)kv->k_head_stride, heads * (double)kv->v_head_stride,
                    what, err);
}

ts_status ts_kv_init_pool(ts_kv *kv, const ts_hparams *hp, int64_t n_pages, int kt, int vt,
                          ts_err *err)
{
    memset(kv, 0, sizeof(*kv));
    ts_status st = set_geometry(kv, hp, kt, vt, err);
    if (st != TS_OK)
        return st;
    kv->n_pages = n_pages;
    kv->n_ctx = kv->n_ctx_pad = n_pages * TS_ATTN_KBLK;
    const size_t heads = (size_t)(hp->n_layer_kv * hp->n_head_kv);
    kv->k_head_stride = kv->k_blk;
    kv->v_head_stride = kv->v_blk;
    kv->k_page_stride = kv->k_head_stride * heads;
    kv->v_page_stride = kv->v_head_stride * heads;
    char what[64];
    snprintf(what, sizeof(what), "%lld pages", (long long)n_pages);
    return alloc_kv(kv, (double)n_pages * (double)kv->k_page_stride,
                    (double)n_pages * (double)kv->v_page_stride, what, err);
}

static const char *const k_kv_names[] = {"f16", "f32", "bf16", "q8_0", "q4_0"};
_Static_assert((int)TS_KV_F16 == (int)TS_ATTN_F16 && (int)TS_KV_F32 == (int)TS_ATTN_F32 &&
                   (int)TS_KV_BF16 == (int)TS_ATTN_BF16 && (int)TS_KV_Q8_0 == (int)TS_ATTN_Q8_0 &&
                   (int)TS_KV_Q4_0 == (int)TS_ATTN_Q4_0 && TS_ATTN_NTYPES == 5,
               "ts_kv_type is the kernels' type numbering");

int ts_kv_type_parse(const char *name)
{
    for (int t = 0; name && t < TS_ATTN_NTYPES; t++)
        if (!strcasecmp(name, k_kv_names[t]))
            return t;
    return -1;
}

const char *ts_kv_type_name(int type)
{
    return type >= 0 && type < TS_ATTN_NTYPES ? k_kv_names[type] : "?";
}

ts_status ts_kv_types(bool kv_f32, int k, int v, int *kt, int *vt, ts_err *err)
{
    if (k < 0 || k >= TS_ATTN_NTYPES || v < 0 || v >= TS_ATTN_NTYPES)
        return ts_err_set(err, TS_E_ARG, "KV cache type %d unknown (K) or %d (V)", k, v);
    *kt = kv_f32 && k == TS_KV_F16 ? TS_KV_F32 : k;
    *vt = kv_f32 && v == TS_KV_F16 ? TS_KV_F32 : v;
    return TS_OK;
}

void ts_kv_poison_page(ts_kv *kv, int64_t page)
{
    const size_t heads = (size_t)(kv->n_layer * kv->n_head_kv);
    const size_t kblk = kv->k_blk, vblk = kv->v_blk;
    /* all-ones bytes: NaN in f32, f16 and bf16, and a NaN scale in q8_0 / q4_0 */
    for (size_t h = 0; h < heads; h++) {
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

void ts_kv_hadamard(float *x, int64_t len, int64_t n)
{
    const float sc = 1.0f / sqrtf((float)n);
    for (int64_t c = 0; c + n <= len; c += n) {
        float *y = x + c;
        for (int64_t h = 1; h < n; h *= 2)
            for (int64_t i = 0; i < n; i += 2 * h)
                for (int64_t j = i; j < i + h; j++) {
                    const float a = y[j], b = y[j + h];
                    y[j] = a + b;
                    y[j + h] = a - b;
                }
        for (int64_t i = 0; i < n; i++)
            y[i] *= sc;
    }
}

void ts_kv_store_heads(ts_kv *kv, const int32_t *pages, int64_t layer, int64_t pos, int which,
                       const float *src, int64_t h0, int64_t nh)
{
    const int64_t hd = kv->head_dim, blk = pos / TS_ATTN_KBLK;
    const int64_t page = pages ? pages[blk] : blk, j = pos % TS_ATTN_KBLK;
    const int64_t rot = which == 0 ? kv->rot_k : kv->rot_v;
    float tmp[TS_ATTN_MAX_HD];
    for (int64_t h = h0; h < h0 + nh; h++) {
        const float *x = src + h * hd;
        if (rot) {
            memcpy(tmp, x, (size_t)hd * sizeof(float));
            ts_kv_hadamard(tmp, hd, rot);
            x = tmp;
        }
        if (which == 0)
            ts_attn_store_k(kv->k_type,
                            (char *)kv->k + block_at(kv->k_page_stride, kv->k_head_stride, kv,
                                                     layer, h, page),
                            hd, j, x);
        else
            ts_attn_store_v(kv->v_type,
                            (char *)kv->v + block_at(kv->v_page_stride, kv->v_head_stride, kv,
                                                     layer, h, page),
                            hd, j, x);
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
