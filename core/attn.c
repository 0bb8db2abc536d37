/*
 * core/attn.c: grouped-query causal attention over the KV cache.
 *
 * Owns: the (head, token-block) tile grid and the per-query computation:
 * scores q.k_j * scale for keys j = 0..pos, a max-subtracted softmax and the
 * weighted sum of values.
 * Does not own: Q/K/V projection, RoPE, or cache writes (core/forward.c).
 * Invariant (bit-identity): each (head, query) output is computed by one
 * tile, in a fixed order over keys 0..pos and over head dims, from the query
 * row and cache rows only; so it does not depend on the chunking of the
 * prompt, the tiling, or the thread count. No reduction is split across tiles.
 */
#include <math.h>
#include <string.h>

#include "session.h"
#include "../quant/quant.h"

typedef struct {
    ts_session *s;
    int64_t layer;
    float scale;
} attn_ctx;

/* Dot product with 8 fixed partial sums combined pairwise: a fixed order that
 * does not depend on the caller, and one the compiler may vectorize. */
static float dot8(const float *a, const float *b, int64_t n)
{
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[i + l] * b[i + l];
    for (int l = 0; i < n; i++, l++)
        acc[l] += a[i] * b[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static const float *row_f32(const ts_kv *kv, const void *row, float *tmp)
{
    if (!kv->f16)
        return row;
    const ts_f16 *h = row;
    for (int64_t d = 0; d < kv->head_dim; d++)
        tmp[d] = ts_f16_to_f32(h[d]);
    return tmp;
}

/* One query of one head: out (head_dim) = softmax(q.K^T * scale) V. */
static void attend(const ts_kv *kv, int64_t layer, int64_t kvh, int64_t pos, const float *q,
                   float scale, float *out, float *scores, float *tmp)
{
    int64_t hd = kv->head_dim;
    float mx = -INFINITY;
    for (int64_t j = 0; j <= pos; j++) {
        const float *kr = row_f32(kv, ts_kv_k_row(kv, layer, kvh, j), tmp);
        float sc = dot8(q, kr, hd) * scale;
        scores[j] = sc;
        mx = sc > mx ? sc : mx;
    }
    double sum = 0.0;
    for (int64_t j = 0; j <= pos; j++) {
        float e = expf(scores[j] - mx);
        scores[j] = e;
        sum += e;
    }
    memset(out, 0, (size_t)hd * sizeof(float));
    for (int64_t j = 0; j <= pos; j++) {
        const float *vr = row_f32(kv, ts_kv_v_row(kv, layer, kvh, j), tmp);
        float p = scores[j];
        for (int64_t d = 0; d < hd; d++)
            out[d] += p * vr[d];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t d = 0; d < hd; d++)
        out[d] *= inv;
}

static void attn_tile(void *vctx, const ts_tile *t, ts_scratch *scr)
{
    const attn_ctx *c = vctx;
    ts_session *s = c->s;
    const ts_hparams *hp = &s->m->hp;
    int64_t hd = hp->head_k, group = hp->n_head / hp->n_head_kv;
    float *scores = scr->buf;
    float *tmp = scores + ((s->n_ctx + 15) & ~(int64_t)15);
    for (uint32_t h = t->row0; h < t->row0 + t->rows; h++) {
        for (uint32_t i = t->tok0; i < t->tok0 + t->toks; i++) {
            const float *q = (const float *)((const char *)s->q + i * s->q_stride) + h * hd;
            float *out = (float *)((char *)s->att + i * s->att_stride) + h * hd;
            attend(&s->kv, c->layer, h / group, s->pos + i, q, c->scale, out, scores, tmp);
        }
    }
}

void ts_attn_run(ts_session *s, int64_t layer, int64_t n_tok)
{
    const ts_hparams *hp = &s->m->hp;
    /* About 8 tiles per worker; later queries cost more (causal), and the
     * pool's dynamic cursor evens that out. */
    int64_t target = 8 * (int64_t)s->eng->n_workers;
    int64_t n_blk = (target + hp->n_head - 1) / hp->n_head;
    if (n_blk > n_tok)
        n_blk = n_tok;
    int64_t blk = (n_tok + n_blk - 1) / n_blk;
    uint32_t n = 0;
    for (int64_t h = 0; h < hp->n_head; h++) {
        for (int64_t t0 = 0; t0 < n_tok; t0 += blk) {
            int64_t toks = n_tok - t0 < blk ? n_tok - t0 : blk;
            s->tiles[n++] = (ts_tile){0, (uint32_t)h, 1, (uint32_t)t0, (uint32_t)toks, 0};
        }
    }
    ts_grid g = {s->tiles, n, s->tile_cap};
    attn_ctx c = {s, layer, 1.0f / sqrtf((float)hp->head_k)};
    ts_grid_run(s->eng->pool, &g, attn_tile, &c);
}
