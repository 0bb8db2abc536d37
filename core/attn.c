/*
 * core/attn.c: grouped-query causal attention over the KV cache.
 *
 * Owns: the (KV head, query block) tile grid. Each tile hands one KV head,
 * its whole GQA group of query heads and a block of consecutive queries to
 * the attention kernel of the session's table (simd/ops.h), which does the
 * math: QK^T, online softmax over absolute 64-key blocks, P.V.
 * Each tile also quantizes its output columns for the output projection
 * when they are whole activation blocks (ts_attn_run's wo), so that matmul
 * skips its own quantization grid, and, for a rotated (quantized) cache
 * (core/kv.c), rotates its query rows before the kernel and its output rows
 * after it.
 * Does not own: Q/K/V projection, RoPE, cache writes (core/forward.c), or
 * the kernels (simd/).
 * Invariant (bit-identity): the kernel contract makes each (head, query)
 * output a function of that query row and cache rows 0..pos only, in an order
 * fixed by the position; tiles write disjoint rows and no reduction is split
 * across tiles, so the chunking, the tiling and the thread count never change
 * a bit.
 */
#include <math.h>

#include "session.h"

typedef struct {
    ts_session *s;
    int64_t layer;
    float scale;
    const ts_qview *pq; /* quantize the tile's output columns for this matrix */
} attn_ctx;

static void attn_tile(void *vctx, const ts_tile *t, ts_scratch *scr)
{
    const attn_ctx *c = vctx;
    const ts_session *s = c->s;
    const ts_hparams *hp = &s->m->hp;
    const int64_t hd = hp->head_k, group = hp->n_head / hp->n_head_kv, kvh = t->row0;
    const ts_span *sp = &s->spans[t->expert]; /* tiles carry their span in .expert */
    const ts_kv *kv = sp->kv;
    (void)scr;
    ts_attn_args a = {
        .q = (const float *)((const char *)s->q + (size_t)t->tok0 * s->q_stride) + kvh * group * hd,
        .out = (float *)((char *)s->att + (size_t)t->tok0 * s->att_stride) + kvh * group * hd,
        .k = ts_kv_k_head(kv, c->layer, kvh),
        .v = ts_kv_v_head(kv, c->layer, kvh),
        .q_stride = s->q_stride,
        .out_stride = s->att_stride,
        .head_dim = hd,
        .n_q = t->toks,
        .n_grp = group,
        .pos0 = sp->pos0 + (t->tok0 - sp->tok0),
        .scale = c->scale,
        .pages = sp->pages,
        .k_page_stride = kv->k_page_stride,
        .v_page_stride = kv->v_page_stride,
        .k_type = kv->k_type,
        .v_type = kv->v_type,
    };
    /* A rotated cache (core/kv.c): the tile's queries by the K rotation
     * first (its own rows: the group's heads at its tokens), its outputs by
     * the V rotation after (its own inverse). */
    if (kv->rot_k)
        for (int64_t i = 0; i < a.n_q; i++)
            ts_kv_hadamard((float *)((char *)a.q + (size_t)i * a.q_stride), group * hd,
                           kv->rot_k);
    s->ops->attn(&a);
    if (kv->rot_v)
        for (int64_t i = 0; i < a.n_q; i++)
            ts_kv_hadamard((float *)((char *)a.out + (size_t)i * a.out_stride), group * hd,
                           kv->rot_v);
    if (c->pq) /* the tile's columns: the whole GQA group, whole blocks */
        ts_mm_quantize_cols(s->mm, c->pq, s->att, s->att_stride, t->tok0, t->toks,
                            kvh * group * hd, group * hd);
}

bool ts_attn_run(ts_session *s, int64_t layer, int64_t n_tok, const ts_qview *wo)
{
    const ts_hparams *hp = &s->m->hp;
    const int64_t blk = wo ? ts_mm_act_block(s->mm, wo, n_tok) : 0;
    const int64_t width = hp->n_head / hp->n_head_kv * hp->head_k;
    const ts_qview *pq = blk > 0 && width % blk == 0 && wo->cols == hp->n_head * hp->head_k
                             ? wo : NULL;
    /* About 8 tiles per worker over (span, KV head, query block), the query
     * blocks shared out by the spans' token counts (at least one per span);
     * within a span they go from the last (most keys, causal) to the first,
     * so the pool's dynamic cursor hands out the long tiles first and the
     * short ones fill the gaps. A tile never crosses a span: a query row's
     * bits depend on its own sequence only. */
    const int64_t target = 8 * (int64_t)s->eng->n_workers;
    const int64_t per_head = (target + hp->n_head_kv - 1) / hp->n_head_kv;
    uint32_t n = 0;
    for (uint32_t si = 0; si < s->n_spans; si++) {
        const ts_span *sp = &s->spans[si];
        int64_t n_blk = (per_head * sp->n_tok + n_tok - 1) / n_tok;
        if (n_blk > sp->n_tok)
            n_blk = sp->n_tok;
        for (int64_t b = n_blk - 1; b >= 0; b--) {
            int64_t t0 = sp->tok0 + sp->n_tok * b / n_blk;
            int64_t t1 = sp->tok0 + sp->n_tok * (b + 1) / n_blk;
            for (int64_t h = 0; h < hp->n_head_kv && n < s->tile_cap; h++)
                s->tiles[n++] = (ts_tile){si, (uint32_t)h, 1, (uint32_t)t0, (uint32_t)(t1 - t0),
                                          0};
        }
    }
    /* n <= n_head_kv * (per_head + n_spans): within tile_cap (ts_session_alloc). */
    ts_grid g = {s->tiles, n, s->tile_cap};
    attn_ctx c = {s, layer, 1.0f / sqrtf((float)hp->head_k), pq};
    ts_grid_run(s->eng->pool, &g, attn_tile, &c);
    return pq != NULL;
}
