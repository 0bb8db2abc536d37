/*
 * core/gdn.c: the gated delta-net (GDN) token mixer of the hybrid models
 * (llama.cpp's qwen35, qwen35moe, qwen3next; the maths as llama.cpp v0.5.0's
 * src/models/qwen35.cpp and its ggml_gated_delta_net op compute it).
 *
 * Per token t of a sequence, for a layer with n_k key heads, n_v value heads
 * (value head h reads key head kh(h): h % n_k for qwen35, h / (n_v / n_k)
 * for qwen3next) of head dim ds:
 *   [q | k | v] = W_qkv a_t (2 n_k + n_v heads of ds: the conv channels),
 *   z = W_z a_t, b, alpha = W_beta a_t, W_alpha a_t (or split from W_ba a_t);
 *   u_t[c] = sum_{tau < K} conv[c][tau] * x_{t-K+1+tau}[c] (causal, tap K-1 is
 *   token t, earlier tokens from the state), y = silu(u);
 *   q, k <- y's heads, each / sqrt(sum of squares + eps); v <- y's heads;
 *   beta = sigmoid(b), g = softplus(alpha + dt) * A (A = -exp(A_log) < 0);
 *   per value head, S (ds x ds, key i x value j):
 *     S <- e^g S;  d_j = (v_j - sum_i S_ij k_i) beta;  S_ij += k_i d_j;
 *     o_j = (sum_i S_ij q_i) / sqrt(ds);
 *   out = rmsnorm(o; ssm_norm) * silu(z) per value head; W_out out.
 * SiLU is the SwiGLU kernel's (simd/ops.h: the canonical exp of every level),
 * the delta rule the ts_gdn_scan kernel (its scalar twin defines the order;
 * the SIMD levels run blocks of value columns, which evolve independently,
 * through the tokens: the same bits).
 *
 * Canonical order (bit-identity across chunk sizes, threads, batches and
 * prefill vs decode): the recurrence is the sequential one, token after
 * token in position order, and every sum runs in one fixed order: the conv
 * over tau ascending, the key sums over i ascending (for each value j one
 * float accumulator, lanes across j never mixing), the squares of a norm in
 * double over the head in index order. A token's output is therefore the
 * same function of its inputs and of the state left by the token before it
 * whether the tokens come in one chunk of 300, chunks of 1, 2, 3 or 7, or
 * one at a time as decodes: so `--chunk 1` is exact, no chunk floor exists.
 * The conv state holds the raw (pre-conv) channels of the last K - 1 tokens
 * and the recurrent state S per value head; both live per sequence (the
 * span's rs) and carry across chunks and steps. Tiles are (span, key head):
 * a tile owns the q and k channel heads of one sequence and every value head
 * that reads them, over all the span's tokens, so no reduction is ever split
 * across tiles and the thread count cannot change a bit.
 * Cost: per token and value head about 4 ds^2 flops (ds 128: 65 k), next to
 * the projections' 2 x (params of the layer): the matmuls dominate, and
 * the heads x sequences of a step keep the workers busy.
 */
#include <math.h>
#include <string.h>

#include "gdn.h"
#include "prof.h"
#include "session.h"

static float *row(float *base, size_t stride, int64_t i)
{
    return (float *)((char *)base + (size_t)i * stride);
}

size_t ts_gdn_layer_floats(const ts_hparams *hp)
{
    const int64_t ch = (2 * hp->ssm_n_k + hp->ssm_n_v) * hp->ssm_state;
    return (size_t)((hp->ssm_conv - 1) * ch + hp->ssm_n_v * hp->ssm_state * hp->ssm_state);
}

/* The state of rs layer r of a sequence: conv (channels x (K - 1), oldest
 * first) then S (n_v x ds x ds, [h][i][j]). */
static float *layer_state(const ts_hparams *hp, float *rs, int64_t r)
{
    return rs + (size_t)r * ts_gdn_layer_floats(hp);
}

/* 1.0f x TS_GDN_MAX_DS: SiLU alone as the SwiGLU kernel with b = 1 */
static const float k_ones[TS_GDN_MAX_DS] = {[0 ... TS_GDN_MAX_DS - 1] = 1.0f};
static float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
static float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

typedef struct {
    ts_session *s;
    const ts_layer *L;
} gdn_ctx;

/* The conv of channel head `head` (of 2 n_k + n_v) over every token of span
 * sp, then the L2 norm if it is a q or k head. In place in gdn_qkv:
 * outputs are written from the last token back, so each token's inputs are
 * still raw when read; the head's ds channels are contiguous in a row. */
static void conv_head(const gdn_ctx *c, const ts_span *sp, int64_t head)
{
    ts_session *s = c->s;
    const ts_hparams *hp = &s->m->hp;
    const int64_t ds = hp->ssm_state, K = hp->ssm_conv, km = K - 1;
    const int64_t c0 = head * ds, n = sp->n_tok;
    float *cst = layer_state(hp, sp->rs, c->L->rs_layer) + c0 * km; /* (ds, K - 1) */
    const float *w = c->L->ssm_conv1d + c0 * K;                    /* (ds, K) */
    float nst[TS_GDN_MAX_DS * (TS_GDN_MAX_CONV - 1)];
    float acc[TS_GDN_MAX_DS];
    /* the new state: the last K - 1 raw inputs of (old state, this span) */
    for (int64_t j = 0; j < km; j++) {
        const int64_t src = n - km + j;
        for (int64_t d = 0; d < ds; d++)
            nst[d * km + j] = src >= 0 ? row(s->gdn_qkv, s->gdn_qkv_stride, sp->tok0 + src)[c0 + d]
                                       : cst[d * km + km + src];
    }
    for (int64_t i = n - 1; i >= 0; i--) {
        for (int64_t d = 0; d < ds; d++)
            acc[d] = 0.0f;
        for (int64_t tau = 0; tau < K; tau++) { /* tau ascending: the canonical order */
            const int64_t src = i - km + tau;
            if (src >= 0) {
                const float *x = row(s->gdn_qkv, s->gdn_qkv_stride, sp->tok0 + src) + c0;
                for (int64_t d = 0; d < ds; d++)
                    acc[d] += w[d * K + tau] * x[d];
            } else {
                for (int64_t d = 0; d < ds; d++)
                    acc[d] += w[d * K + tau] * cst[d * km + km + src];
            }
        }
        float *y = row(s->gdn_qkv, s->gdn_qkv_stride, sp->tok0 + i) + c0;
        memcpy(y, acc, (size_t)ds * sizeof(float));
        s->ops->swiglu(y, k_ones, ds); /* silu(u) * 1: the level's SIMD SiLU, exact */
    }
    memcpy(cst, nst, (size_t)(ds * km) * sizeof(float));
    if (head >= 2 * hp->ssm_n_k) /* v heads: not normalised */
        return;
    for (int64_t i = 0; i < n; i++) {
        float *x = row(s->gdn_qkv, s->gdn_qkv_stride, sp->tok0 + i) + c0;
        double ss = 0.0;
        for (int64_t d = 0; d < ds; d++)
            ss += (double)x[d] * (double)x[d];
        const float sc = 1.0f / sqrtf((float)ss + hp->rms_eps);
        for (int64_t d = 0; d < ds; d++)
            x[d] *= sc;
    }
}

/* The recurrence of value head h over span sp's tokens in order (its conv
 * already run), then the gated norm: silu(z) * rmsnorm(o) into z's row. */
static void rec_head(const gdn_ctx *c, const ts_span *sp, int64_t h)
{
    ts_session *s = c->s;
    const ts_hparams *hp = &s->m->hp;
    const ts_layer *L = c->L;
    const int64_t ds = hp->ssm_state, nk = hp->ssm_n_k, nv = hp->ssm_n_v;
    const int64_t kh = hp->gdn_kh_mod ? h % nk : h / (nv / nk);
    const int64_t ch = (2 * nk + nv) * ds;
    float *S = layer_state(hp, sp->rs, L->rs_layer) + (hp->ssm_conv - 1) * ch + h * ds * ds;
    const float scale = 1.0f / sqrtf((float)ds);
    /* the gates of this head for the span's tokens: decay at column h, beta at nv + h */
    for (int64_t i0 = 0; i0 < sp->n_tok; i0++) {
        const int64_t r = sp->tok0 + i0;
        float b, a;
        if (L->ssm_ba.data) { /* qwen3next: per key head group [b (rf) | a (rf)] */
            const int64_t rf = nv / nk, g = h / rf, j = h % rf;
            const float *ba = row(s->gdn_b, s->gdn_ba_stride, r);
            b = ba[g * 2 * rf + j];
            a = ba[g * 2 * rf + rf + j];
        } else {
            b = row(s->gdn_b, s->gdn_ba_stride, r)[h];
            a = row(s->gdn_a, s->gdn_ba_stride, r)[h];
        }
        float *gt = row(s->gdn_g, s->gdn_ba_stride, r);
        gt[h] = expf(softplus(a + L->ssm_dt[h]) * L->ssm_a[h]);
        gt[nv + h] = sigmoid(b);
    }
    const float *y0 = row(s->gdn_qkv, s->gdn_qkv_stride, sp->tok0);
    const float *g0 = row(s->gdn_g, s->gdn_ba_stride, sp->tok0);
    float *o0 = row(s->gdn_out, s->gdn_out_stride, sp->tok0) + h * ds;
    /* the delta rule, token after token (simd/ops.h's order) */
    s->ops->gdn_scan(S, ds, sp->n_tok, y0 + kh * ds, y0 + (nk + kh) * ds, y0 + (2 * nk + h) * ds,
                     s->gdn_qkv_stride, g0 + h, g0 + nv + h, s->gdn_ba_stride, scale, o0,
                     s->gdn_out_stride);
    for (int64_t i0 = 0; i0 < sp->n_tok; i0++) {
        const int64_t r = sp->tok0 + i0;
        float *o = row(s->gdn_out, s->gdn_out_stride, r) + h * ds;
        s->ops->rmsnorm(o, NULL, L->ssm_norm, o, ds, hp->rms_eps);
        /* z <- silu(z) * o in place: z's row is the output projection's input */
        s->ops->swiglu(row(s->gdn_z, s->gdn_z_stride, r) + h * ds, o, ds);
    }
}

/* One tile: key head t->row0 of span t->expert with every value head that
 * reads it (h % n_k == kh, or h / (n_v / n_k) == kh): the conv of the q, k
 * and those v heads, then their recurrences. No tile reads another's
 * channels, so the mixer is one grid. */
static void gdn_tile(void *vctx, const ts_tile *t, ts_scratch *scr)
{
    const gdn_ctx *c = vctx;
    const ts_hparams *hp = &c->s->m->hp;
    const ts_span *sp = &c->s->spans[t->expert];
    const int64_t nk = hp->ssm_n_k, nv = hp->ssm_n_v, kh = t->row0, rf = nv / nk;
    (void)scr;
    conv_head(c, sp, kh);      /* q */
    conv_head(c, sp, nk + kh); /* k */
    for (int64_t r = 0; r < rf; r++) {
        const int64_t h = hp->gdn_kh_mod ? r * nk + kh : kh * rf + r;
        conv_head(c, sp, 2 * nk + h);
        rec_head(c, sp, h);
    }
}

int ts_gdn_inputs(const ts_layer *L, const ts_qview **w)
{
    w[0] = &L->ssm_qkv;
    w[1] = &L->ssm_z;
    if (L->ssm_ba.data) { /* qwen3next: beta and alpha in one matrix */
        w[2] = &L->ssm_ba;
        return 3;
    }
    w[2] = &L->ssm_beta;
    w[3] = &L->ssm_alpha;
    return 4;
}

void ts_gdn_run(ts_session *s, const ts_layer *L, int64_t n_tok)
{
    const ts_hparams *hp = &s->m->hp;
    /* 1. the projections, one grid (xn was quantized for them by the norm) */
    const ts_qview *w[4];
    const int n_w = ts_gdn_inputs(L, w);
    float *const y[4] = {s->gdn_qkv, s->gdn_z, s->gdn_b, s->gdn_a};
    const size_t ys[4] = {s->gdn_qkv_stride, s->gdn_z_stride, s->gdn_ba_stride,
                          s->gdn_ba_stride};
    TS_PROF(TS_PROF_QKV, ts_mm_run_multi_quantized(s->mm, w, y, ys, n_w, s->xn, s->x_stride,
                                                   n_tok));
    /* 2. conv + SiLU + q/k norms, the delta rule and the gated norm: one grid
     * of (span, key head) tiles */
    gdn_ctx c = {s, L};
    uint32_t n = 0;
    for (uint32_t si = 0; si < s->n_spans; si++)
        for (int64_t kh = 0; kh < hp->ssm_n_k && n < s->tile_cap; kh++)
            s->tiles[n++] = (ts_tile){si, (uint32_t)kh, 1, 0, 0, 0};
    ts_grid g = {s->tiles, n, s->tile_cap};
    TS_PROF(TS_PROF_GDN_REC, ts_grid_run(s->eng->pool, &g, gdn_tile, &c));
    /* 3. the output projection into xn (the residual grid adds it) */
    TS_PROF(TS_PROF_WO, ts_mm_run(s->mm, &L->ssm_out, s->gdn_z, s->gdn_z_stride, n_tok,
                                  s->xn, s->x_stride));
}
