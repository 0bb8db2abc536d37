/*
 * core/forward.c: the layer sequence for one prefill chunk (decode is the
 * same path with one token).
 *
 * Owns: the order of the per-token ops (embedding lookup, RMSNorm, RoPE
 * normal and NeoX with its cos/sin table, QKV bias and per-head Q/K norm, KV
 * cache writes, SwiGLU, residuals, output norm and head). Their math runs in
 * the session's kernels (simd/ops.h: RMSNorm with the residual add fused,
 * RoPE, SwiGLU). Matmuls go through core/matmul.h; attention through
 * core/attn.c; MoE FFN through core/moe.c. Each grid join costs every
 * worker, so per-token ops ride in the grids next to them where they can:
 * bias/norm/RoPE/KV store in the QKV tiles (qkv_epi), SwiGLU in the gate/up
 * tiles, each op's quantization for the next matmul in the tiles that write
 * its input; the embedding and the residual+norms (which need whole rows)
 * run as token grids. A dense layer is 7 grids: QKV, attention, wo,
 * residual+norm, gate/up, down, residual+norm. olmoe's Q/K norm spans all
 * heads of a token, so there it runs with RoPE and the K store in one more
 * token grid after QKV.
 * Invariant (bit-identity across chunk sizes and threads): every per-token op
 * computes a token's output from that token's inputs only, in a fixed order,
 * and the matmul contract gives the same guarantee for projections.
 * NaN (weights that overflow or hold NaN): the quantizers turn a non-finite
 * activation block into a NaN scale (quant/quant.h), so NaN propagates to
 * that token's outputs and, through attention, to every later position; the
 * earlier positions never read it. Which NaN (sign, payload) an op returns
 * depends on operand order, which the levels do not share, so the logits
 * leave here with every NaN rewritten to one pattern (canon_nan): then they
 * are bit-identical on every level, NaN or not.
 */
#include <math.h>
#include <string.h>

#include "gdn.h"
#include "prof.h"
#include "session.h"
#include "../quant/quant.h"

typedef enum { OP_EMBED, OP_RESID_NORM, OP_QK_NORM_FULL, OP_ATTN_GATE } tok_op;

typedef struct {
    ts_session *s;
    tok_op op;
    const int32_t *tokens; /* OP_EMBED */
    const float *norm_w;   /* OP_RESID_NORM: weights of the norm that follows */
    bool add;              /* OP_RESID_NORM: add s->xn into s->x first */
    int64_t layer;         /* OP_QK_NORM_FULL */
    /* The matrices the op's output rows feed next (0 to 4): each tile also
     * quantizes its rows for them (ts_mm_quantize_rows), so that matmul
     * skips its own quantization grid. OP_ATTN_GATE quantizes att, the
     * others xn. */
    const ts_qview *pq[4];
    int n_pq;
} tok_ctx;

/* The matrices a layer's mixer reads its normed input with (what the norm
 * before it quantizes for): QKV, or the GDN projections. */
static int mixer_inputs(const ts_layer *L, const ts_qview **pq)
{
    if (L->mixer == TS_MIX_GDN)
        return ts_gdn_inputs(L, pq);
    pq[0] = &L->wq;
    pq[1] = &L->wk;
    pq[2] = &L->wv;
    return 3;
}

static float *row(float *base, size_t stride, int64_t i)
{
    return (float *)((char *)base + (size_t)i * stride);
}

/* cos/sin of every rotated pair at position pos: theta_i = pos * base^(-2i/n_rot)
 * (by repeated multiplication, as ggml builds its cache), divided by the
 * optional rope_freqs factor, times the linear position scale. Planar, as the
 * rope kernel reads it: cs[0 .. n_rot/2) cosines, then the sines. */
static void rope_table(const ts_model *m, int64_t pos, float *cs)
{
    const ts_hparams *hp = &m->hp;
    float theta_scale = powf(hp->rope_base, -2.0f / (float)hp->n_rot);
    float theta = (float)pos;
    for (int64_t i = 0; i < hp->n_rot / 2; i++) {
        float ff = m->rope_freqs ? m->rope_freqs[i] : 1.0f;
        float th = hp->rope_scale * (theta / ff);
        cs[i] = cosf(th);
        cs[hp->n_rot / 2 + i] = sinf(th);
        theta *= theta_scale;
    }
}

/* The QKV grid's epilogue (ts_mm_run_multi_quantized_epi, row blocks of
 * whole heads): for tokens [t0, t0 + tn) and rows [r0, r0 + rn) of matrix e
 * (0 q, 1 k, 2 v): bias, per-head norm, RoPE and the cache store of those
 * heads. Per element and per head these are the operations a per-token pass
 * would do, so no bit depends on the tiling. */
typedef struct {
    ts_session *s;
    int64_t layer, kv_layer;
} qkv_epi_ctx;

static void qkv_epi(void *vctx, int e, int64_t r0, int64_t rn, int64_t t0, int64_t tn)
{
    const qkv_epi_ctx *c = vctx;
    ts_session *s = c->s;
    const ts_hparams *hp = &s->m->hp;
    const ts_layer *L = &s->m->layers[c->layer];
    const ts_ops *ops = s->ops;
    const int64_t hd = hp->head_k, h0 = r0 / hd, nh = rn / hd;
    const float *bias = e == 0 ? L->bq : e == 1 ? L->bk : L->bv;
    const float *norm = e == 0 ? L->q_norm : e == 1 ? L->k_norm : NULL;
    if (e == 0 && L->mixer == TS_MIX_GATED_ATTN) {
        /* rows [r0, r0 + rn) of qg hold (q_h, gate_h) pairs (blocks of 2 hd,
         * align): q_h is normed, rotated and stored compact in s->q; the
         * gate stays in qg for OP_ATTN_GATE. */
        for (int64_t i = t0; i < t0 + tn; i++) {
            float *x = row(s->qg, s->qg_stride, i), *q = row(s->q, s->q_stride, i);
            if (bias)
                for (int64_t d = r0; d < r0 + rn; d++)
                    x[d] += bias[d];
            for (int64_t p = r0 / (2 * hd); p < (r0 + rn) / (2 * hd); p++) {
                float *qh = q + p * hd;
                if (norm)
                    ops->rmsnorm(x + 2 * p * hd, NULL, norm, qh, hd, hp->rms_eps);
                else
                    memcpy(qh, x + 2 * p * hd, (size_t)hd * sizeof(float));
                ops->rope(qh, s->rope_cs + i * hp->n_rot, 1, hd, hp->n_rot, hp->rope_neox);
            }
        }
        return;
    }
    for (int64_t i = t0; i < t0 + tn; i++) {
        float *x = e == 0 ? row(s->q, s->q_stride, i)
                          : row(e == 1 ? s->k : s->v, s->kv_stride, i);
        if (bias)
            for (int64_t d = r0; d < r0 + rn; d++)
                x[d] += bias[d];
        const ts_span *sp = &s->spans[s->tok_span[i]];
        const int64_t pos = sp->pos0 + i - sp->tok0;
        if (e == 2) {
            ts_kv_store_heads(sp->kv, sp->pages, c->kv_layer, pos, 1, x, h0, nh);
            continue;
        }
        if (hp->qk_norm_full) /* a norm over all heads: OP_QK_NORM_FULL after the grid */
            continue;
        if (norm)
            for (int64_t h = h0; h < h0 + nh; h++)
                ops->rmsnorm(x + h * hd, NULL, norm, x + h * hd, hd, hp->rms_eps);
        ops->rope(x + h0 * hd, s->rope_cs + i * hp->n_rot, nh, hd, hp->n_rot, hp->rope_neox);
        if (e == 1)
            ts_kv_store_heads(sp->kv, sp->pages, c->kv_layer, pos, 0, x, h0, nh);
    }
}

static void tok_tile(void *vctx, const ts_tile *t, ts_scratch *scr)
{
    const tok_ctx *c = vctx;
    ts_session *s = c->s;
    const ts_model *m = s->m;
    const ts_hparams *hp = &m->hp;
    (void)scr;
    if (c->op == OP_ATTN_GATE) { /* gated attention: att *= sigmoid(gate), per head */
        const int64_t hd = hp->head_k;
        for (int64_t i = t->tok0; i < (int64_t)t->tok0 + t->toks; i++) {
            float *a = row(s->att, s->att_stride, i);
            const float *qg = row(s->qg, s->qg_stride, i);
            for (int64_t h = 0; h < hp->n_head; h++)
                for (int64_t d = 0; d < hd; d++)
                    a[h * hd + d] *= 1.0f / (1.0f + expf(-qg[(2 * h + 1) * hd + d]));
        }
        if (c->n_pq)
            ts_mm_quantize_rows(s->mm, c->pq, c->n_pq, s->att, s->att_stride, t->tok0, t->toks);
        return;
    }
    for (int64_t i = t->tok0; i < (int64_t)t->tok0 + t->toks; i++) {
        float *x = row(s->x, s->x_stride, i), *xn = row(s->xn, s->x_stride, i);
        switch (c->op) {
        case OP_EMBED:
            ts_dequantize_row(m->tok_embd.qtype,
                              (const char *)m->tok_embd.data +
                                  (size_t)c->tokens[i] * m->tok_embd.row_stride,
                              x, hp->n_embd);
            rope_table(m, ts_session_row_pos(s, i), s->rope_cs + i * hp->n_rot);
            s->ops->rmsnorm(x, NULL, m->layers[0].attn_norm, xn, hp->n_embd, hp->rms_eps);
            break;
        case OP_RESID_NORM:
            /* x += xn, then xn = norm(x): one fused pass pair */
            s->ops->rmsnorm(x, c->add ? xn : NULL, c->norm_w, xn, hp->n_embd, hp->rms_eps);
            break;
        case OP_QK_NORM_FULL: { /* olmoe: RMSNorm of the whole q and k rows, RoPE, k store */
            const ts_layer *L = &m->layers[c->layer];
            const int64_t hd = hp->head_k;
            float *q = row(s->q, s->q_stride, i), *k = row(s->k, s->kv_stride, i);
            const float *cs = s->rope_cs + i * hp->n_rot;
            s->ops->rmsnorm(q, NULL, L->q_norm, q, hp->n_head * hd, hp->rms_eps);
            s->ops->rmsnorm(k, NULL, L->k_norm, k, hp->n_head_kv * hd, hp->rms_eps);
            s->ops->rope(q, cs, hp->n_head, hd, hp->n_rot, hp->rope_neox);
            s->ops->rope(k, cs, hp->n_head_kv, hd, hp->n_rot, hp->rope_neox);
            const ts_span *sp = &s->spans[s->tok_span[i]];
            ts_kv_store_heads(sp->kv, sp->pages, L->kv_layer, sp->pos0 + i - sp->tok0, 0, k,
                              0, hp->n_head_kv);
            break;
        }
        case OP_ATTN_GATE:
            break;
        }
    }
    if (c->n_pq)
        ts_mm_quantize_rows(s->mm, c->pq, c->n_pq, s->xn, s->x_stride, t->tok0, t->toks);
}

ts_grid ts_session_token_grid(ts_session *s, int64_t n_tok)
{
    int64_t n = 4 * (int64_t)s->eng->n_workers;
    if (n > n_tok)
        n = n_tok;
    /* ceil(n_tok / n)-sized tiles, nearly equal, never an almost-empty tail */
    int64_t t0 = 0;
    for (int64_t j = 0; j < n; j++) {
        int64_t t1 = n_tok * (j + 1) / n;
        s->tiles[j] = (ts_tile){0, 0, 1, (uint32_t)t0, (uint32_t)(t1 - t0), 0};
        t0 = t1;
    }
    return (ts_grid){s->tiles, (uint32_t)n, s->tile_cap};
}

static void run_tok(ts_session *s, tok_ctx *c, int64_t n_tok)
{
    ts_grid g = ts_session_token_grid(s, n_tok);
    ts_grid_run(s->eng->pool, &g, tok_tile, c);
}

static void dense_ffn(ts_session *s, const ts_layer *L, int64_t n_tok)
{
    /* xn was quantized for gate/up by the residual+norm grid; one grid runs
     * gate, up, SwiGLU and down's quantization (core/matmul.h). */
    TS_PROF(TS_PROF_FFN_UP,
            ts_mm_run_glu_quantized(s->mm, &L->ffn_gate, &L->ffn_up, s->xn, s->x_stride, n_tok,
                                    s->ffn_a, s->ffn_b, s->ffn_stride, s->ops->swiglu,
                                    &L->ffn_down));
    const ts_qview *down = &L->ffn_down;
    float *const yd = s->xn;
    TS_PROF(TS_PROF_FFN_DOWN, ts_mm_run_multi_quantized(s->mm, &down, &yd, &s->x_stride, 1,
                                                        s->ffn_a, s->ffn_stride, n_tok));
}

/* Every NaN in y[0 .. n) becomes TS_F32_NAN_BITS (one pass over the logits of
 * a chunk, next to an n_vocab x n_embd matmul per row: noise). */
static void canon_nan(float *y, int64_t n)
{
    const uint32_t canon = TS_F32_NAN_BITS;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &y[i], 4);
        if ((u & 0x7fffffffu) > 0x7f800000u)
            memcpy(&y[i], &canon, 4);
    }
}

/* An attention mixer (plain or gated): QKV with its per-head epilogue, the
 * attention, the gate, the output projection into xn. */
static void attn_mixer(ts_session *s, int64_t il, int64_t n_tok)
{
    const ts_model *m = s->m;
    const ts_hparams *hp = &m->hp;
    const ts_layer *L = &m->layers[il];
    const bool gated = L->mixer == TS_MIX_GATED_ATTN;
    const ts_qview *wqkv[3] = {&L->wq, &L->wk, &L->wv};
    float *const yqkv[3] = {gated ? s->qg : s->q, s->k, s->v};
    const size_t sqkv[3] = {gated ? s->qg_stride : s->q_stride, s->kv_stride, s->kv_stride};
    /* QKV, then per head bias, norm, RoPE and the cache store, in one grid
     * (gated: row blocks of whole (q, gate) pairs). */
    qkv_epi_ctx qc = {s, il, L->kv_layer};
    TS_PROF(TS_PROF_QKV, ts_mm_run_multi_quantized_epi(s->mm, wqkv, yqkv, sqkv, 3, s->xn,
                                                       s->x_stride, n_tok,
                                                       gated ? 2 * hp->head_k : hp->head_k,
                                                       qkv_epi, &qc));
    tok_ctx c;
    if (hp->qk_norm_full) {
        c = (tok_ctx){.s = s, .op = OP_QK_NORM_FULL, .layer = il};
        TS_PROF(TS_PROF_QKV, run_tok(s, &c, n_tok));
    }
    bool att_q = false; /* the attention tiles (or the gate grid) quantized att for wo */
    TS_PROF(TS_PROF_ATTN, att_q = ts_attn_run(s, L->kv_layer, n_tok, gated ? NULL : &L->wo));
    if (gated) {
        c = (tok_ctx){.s = s, .op = OP_ATTN_GATE, .pq = {&L->wo}, .n_pq = 1};
        TS_PROF(TS_PROF_ATTN, run_tok(s, &c, n_tok));
        att_q = true;
    }
    const ts_qview *wo = &L->wo;
    float *const ywo = s->xn;
    if (att_q)
        TS_PROF(TS_PROF_WO, ts_mm_run_multi_quantized(s->mm, &wo, &ywo, &s->x_stride, 1,
                                                      s->att, s->att_stride, n_tok));
    else
        TS_PROF(TS_PROF_WO, ts_mm_run(s->mm, wo, s->att, s->att_stride, n_tok, s->xn,
                                      s->x_stride));
}

void ts_forward_step(ts_session *s, const int32_t *tokens, int64_t n_tok)
{
    const ts_model *m = s->m;
    const ts_hparams *hp = &m->hp;
    /* Each token grid that writes xn also quantizes it for the matmul that
     * reads it next (tok_ctx.pq): embedding -> layer 0's mixer inputs,
     * residual+norm -> gate/up (dense FFN), the router (MoE) or the next
     * layer's mixer inputs; the fused gate/up/SwiGLU tiles quantize for down. */
    tok_ctx c = {.s = s, .op = OP_EMBED, .tokens = tokens};
    c.n_pq = mixer_inputs(&m->layers[0], c.pq);
    TS_PROF(TS_PROF_EMBED, run_tok(s, &c, n_tok));
    for (int64_t il = 0; il < hp->n_layer; il++) {
        const ts_layer *L = &m->layers[il];
        /* the layer's kind, from the architecture's table (core/model.c) */
        if (L->mixer == TS_MIX_GDN)
            ts_gdn_run(s, L, n_tok);
        else
            attn_mixer(s, il, n_tok);
        c = (tok_ctx){.s = s, .op = OP_RESID_NORM, .norm_w = L->ffn_norm, .add = true};
        if (hp->n_expert) { /* the router; MoE quantizes its routed rows itself */
            c.pq[0] = &L->gate_inp;
            c.n_pq = 1;
        } else {
            c.pq[0] = &L->ffn_gate;
            c.pq[1] = &L->ffn_up;
            c.n_pq = 2;
        }
        TS_PROF(TS_PROF_NORM, run_tok(s, &c, n_tok));
        if (hp->n_expert)
            TS_PROF(TS_PROF_MOE, ts_moe_run(s, il, n_tok));
        else
            dense_ffn(s, L, n_tok);
        const float *next = il + 1 < hp->n_layer ? m->layers[il + 1].attn_norm : m->output_norm;
        c = (tok_ctx){.s = s, .op = OP_RESID_NORM, .norm_w = next, .add = true};
        if (il + 1 < hp->n_layer)
            c.n_pq = mixer_inputs(&m->layers[il + 1], c.pq);
        TS_PROF(TS_PROF_NORM, run_tok(s, &c, n_tok));
    }
}

void ts_forward_head(ts_session *s, const int32_t *rows, int64_t n_out, float *logits)
{
    const ts_model *m = s->m;
    if (n_out < 1)
        return;
    bool consecutive = true;
    for (int64_t j = 1; j < n_out && consecutive; j++)
        consecutive = rows[j] == rows[0] + j;
    /* Scattered rows are packed to the front of xn first (they ascend, so row
     * j <= rows[j]: a move never overwrites a row still to move). A row's
     * logits do not depend on which rows share the matmul (the matmul
     * contract), so neither packing nor the row count changes a bit. */
    if (!consecutive)
        for (int64_t j = 0; j < n_out; j++)
            if (rows[j] != j)
                memcpy(row(s->xn, s->x_stride, j), row(s->xn, s->x_stride, rows[j]),
                       s->x_stride);
    const float *x = row(s->xn, s->x_stride, consecutive ? rows[0] : 0);
    TS_PROF(TS_PROF_OUTPUT, ts_mm_run(s->mm, &m->output, x, s->x_stride, n_out, logits,
                                      (size_t)m->hp.n_vocab * sizeof(float)));
    canon_nan(logits, n_out * m->hp.n_vocab);
}

void ts_forward_chunk(ts_session *s, const int32_t *tokens, int64_t n_tok, float *logits_out)
{
    const int64_t n_vocab = s->m->hp.n_vocab;
    s->own_span = (ts_span){&s->kv, NULL, s->pos, 0, n_tok, s->rs};
    s->spans = &s->own_span;
    s->n_spans = 1; /* tok_span stays all zero for a plain session */
    ts_forward_step(s, tokens, n_tok);
    if (logits_out) {
        ts_forward_head(s, s->out_rows, n_tok, logits_out);
        memcpy(s->logits, logits_out + (n_tok - 1) * n_vocab, (size_t)n_vocab * sizeof(float));
    } else {
        ts_forward_head(s, s->out_rows + n_tok - 1, 1, s->logits);
    }
    s->pos += n_tok;
}
