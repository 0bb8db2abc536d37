/*
 * core/moe.c: mixture-of-experts FFN (llama/Mixtral, qwen2moe, qwen3moe).
 *
 * Owns: routing (softmax over the router logits, top-k with ties to the lower
 * expert id, optional renormalisation of the chosen weights), expert-major
 * token lists (each active expert's rows stream once per chunk), the weighted
 * combination in slot order, and qwen2moe's sigmoid-gated shared expert.
 * Does not own: matmul kernels (ts_mm_run on per-expert views).
 * Invariant: a token's output depends only on its own input row: routing is
 * per token, each expert row goes through ts_mm_run (row-independent bits),
 * and the mixture is summed in slot order, so chunking never changes a bit.
 */
#include <math.h>
#include <string.h>

#include "session.h"

static float *row(float *base, size_t stride, int64_t i)
{
    return (float *)((char *)base + (size_t)i * stride);
}

static ts_qview expert_view(const ts_qview *stack, int64_t e)
{
    ts_qview v = *stack;
    v.data = (const char *)stack->data + (size_t)e * (size_t)stack->rows * stack->row_stride;
    return v;
}

static void swiglu_rows(float *a, const float *b, size_t stride, int64_t n_rows, int64_t width)
{
    for (int64_t r = 0; r < n_rows; r++) {
        float *ar = row(a, stride, r);
        const float *br = (const float *)((const char *)b + (size_t)r * stride);
        for (int64_t d = 0; d < width; d++)
            ar[d] = ar[d] / (1.0f + expf(-ar[d])) * br[d];
    }
}

/* Softmax over one token's router logits, then its top n_used experts. */
static void route_token(const ts_hparams *hp, float *probs, int32_t *sel, double *w)
{
    int64_t ne = hp->n_expert, nu = hp->n_expert_used;
    float mx = probs[0];
    for (int64_t e = 1; e < ne; e++)
        mx = probs[e] > mx ? probs[e] : mx;
    double sum = 0.0;
    for (int64_t e = 0; e < ne; e++) {
        probs[e] = expf(probs[e] - mx);
        sum += probs[e];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t e = 0; e < ne; e++)
        probs[e] *= inv;
    for (int64_t k = 0; k < nu; k++) {
        int64_t best = -1;
        for (int64_t e = 0; e < ne; e++) {
            bool taken = false;
            for (int64_t j = 0; j < k; j++)
                taken |= sel[j] == e;
            if (!taken && (best < 0 || probs[e] > probs[best]))
                best = e;
        }
        sel[k] = (int32_t)best;
        w[k] = probs[best];
    }
    if (hp->moe_norm_topk) {
        double s = 0.0;
        for (int64_t k = 0; k < nu; k++)
            s += w[k];
        for (int64_t k = 0; k < nu; k++)
            w[k] /= s;
    }
}

static void shared_expert(ts_session *s, const ts_layer *L, int64_t n_tok, float *out)
{
    const ts_hparams *hp = &s->m->hp;
    ts_mm_run(s->mm, &L->gate_shexp, s->xn, s->x_stride, n_tok, s->ffn_a, s->ffn_stride);
    ts_mm_run(s->mm, &L->up_shexp, s->xn, s->x_stride, n_tok, s->ffn_b, s->ffn_stride);
    swiglu_rows(s->ffn_a, s->ffn_b, s->ffn_stride, n_tok, L->gate_shexp.rows);
    ts_mm_run(s->mm, &L->down_shexp, s->ffn_a, s->ffn_stride, n_tok, out, s->x_stride);
    for (int64_t t = 0; t < n_tok; t++) {
        const float *x = row(s->xn, s->x_stride, t);
        double g = 0.0;
        for (int64_t d = 0; d < hp->n_embd; d++)
            g += (double)L->gate_inp_shexp[d] * x[d];
        s->shexp_gate[t] = 1.0f / (1.0f + expf(-(float)g));
    }
}

static void run_expert(ts_session *s, const ts_layer *L, int64_t e, int64_t n_tok)
{
    const ts_hparams *hp = &s->m->hp;
    int64_t nu = hp->n_expert_used, n = 0;
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t k = 0; k < nu; k++)
            if (s->sel[t * nu + k] == e)
                s->ex_tok[n++] = (int32_t)(t * nu + k);
    if (!n)
        return;
    for (int64_t j = 0; j < n; j++)
        memcpy(row(s->ex_x, s->x_stride, j), row(s->xn, s->x_stride, s->ex_tok[j] / nu),
               (size_t)hp->n_embd * sizeof(float));
    ts_qview g = expert_view(&L->gate_exps, e), u = expert_view(&L->up_exps, e);
    ts_qview dn = expert_view(&L->down_exps, e);
    ts_mm_run(s->mm, &g, s->ex_x, s->x_stride, n, s->ffn_a, s->ffn_stride);
    ts_mm_run(s->mm, &u, s->ex_x, s->x_stride, n, s->ffn_b, s->ffn_stride);
    swiglu_rows(s->ffn_a, s->ffn_b, s->ffn_stride, n, hp->n_ff_exp);
    ts_mm_run(s->mm, &dn, s->ffn_a, s->ffn_stride, n, s->ex_x, s->x_stride);
    for (int64_t j = 0; j < n; j++)
        memcpy(row(s->ex_out, s->x_stride, s->ex_tok[j]), row(s->ex_x, s->x_stride, j),
               (size_t)hp->n_embd * sizeof(float));
}

void ts_moe_run(ts_session *s, int64_t layer, int64_t n_tok)
{
    const ts_hparams *hp = &s->m->hp;
    const ts_layer *L = &s->m->layers[layer];
    int64_t ne = hp->n_expert, nu = hp->n_expert_used;
    ts_mm_run(s->mm, &L->gate_inp, s->xn, s->x_stride, n_tok, s->router,
              (size_t)ne * sizeof(float));
    for (int64_t t = 0; t < n_tok; t++)
        route_token(hp, s->router + t * ne, s->sel + t * nu, s->sel_w + t * nu);
    float *sh = L->gate_inp_shexp ? row(s->ex_out, s->x_stride, s->chunk * nu) : NULL;
    if (sh)
        shared_expert(s, L, n_tok, sh);
    for (int64_t e = 0; e < ne; e++)
        run_expert(s, L, e, n_tok);
    /* xn is free now: it receives the mixture, added to x by the caller. The
     * weights and the sum are in double, rounded once: experts that agree give
     * back their common output bit for bit (weights summing to 1). */
    double *acc = s->mix_acc;
    for (int64_t t = 0; t < n_tok; t++) {
        float *out = row(s->xn, s->x_stride, t);
        for (int64_t k = 0; k < nu; k++) {
            const float *y = row(s->ex_out, s->x_stride, t * nu + k);
            double w = s->sel_w[t * nu + k];
            for (int64_t d = 0; d < hp->n_embd; d++)
                acc[d] = k ? acc[d] + w * y[d] : w * y[d];
        }
        for (int64_t d = 0; d < hp->n_embd; d++)
            out[d] = (float)acc[d];
        if (sh) {
            const float *y = row(sh, s->x_stride, t);
            for (int64_t d = 0; d < hp->n_embd; d++)
                out[d] += y[d] * s->shexp_gate[t];
        }
    }
}
