/*
 * core/moe.c: mixture-of-experts FFN (llama/Mixtral, qwen2moe, qwen3moe) on
 * the emulated GPU-tile dispatch (STYLE §4).
 *
 * Owns: routing (softmax over the router logits, top-k with ties to the lower
 * expert id, optional renormalisation of the chosen weights), the counting
 * sort of (token, slot) pairs by expert, the routed matmul grids (expert-major
 * token tiles of 32/64/128 x output-row blocks, see moe.h), the fused
 * gate/up + SwiGLU tiles, qwen2moe's sigmoid-gated shared expert (a stack of
 * one expert routed to every token), the weighted combination, and the
 * first-use repack of lazily repacked expert stacks (ts_moe_lazy: an expert
 * is repacked when a chunk first routes to it, before any tile reads it).
 * Does not own: GEMM kernels and SwiGLU (simd/, read through our own copy of
 * the table filled at the same ISA cap as ts_mm's and the session's ops, so
 * the same functions as the dense FFN), threads (sched/), the router matmul
 * (ts_mm_run).
 * Invariant: a token's output depends only on its own input row. Routing is
 * per token; each routed output value is one kernel call's canonical-order dot
 * of the expert's row with the token's quantized row (same bits as ts_mm_run,
 * whatever the tile); the mixture is summed per token in slot order in double
 * and rounded once, so experts that agree give back their common output bit
 * for bit (stories260K-moe-ident-4x2 == stories260K). Tile cap, chunk size and
 * thread count never change a bit.
 */
#include "moe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"
#include "session.h"
#include "../quant/quant.h"
#include "../simd/repack.h"

/* Rows per kernel call of a projection tile (a fused gate/up tile keeps the
 * up rows of one call in scratch). The repacked kernels pack a call's
 * activations once per K chunk, so narrow calls repeat that work, while wide
 * ones push the call's outputs (re-read per K chunk) out of L2: Q8_0_R16 and
 * Q4_K_R16 at 64 tokens x K 2048, AMX, one thread, GOP/s, three rounds on the
 * Xeon device (2026-11-22): Q8_0 64 rows 221 / 230 / 248, 256 rows 283 / 281 /
 * 283, 1024 rows 269 / 264 / 250; Q4_K 64 rows 539 / 277 / 279, 256 rows 619
 * / 321 / 315, 1024 rows 368 / 296 / 302. avx512 on Zen 4: level. */
#define SUB_ROWS 256

struct ts_moe {
    ts_pool *pool;
    const ts_kernels *kern; /* the process table (ts_mm_kernels) */
    uint32_t n_workers;
    int tile_max;
    ts_moe_dims d;
    void *xq[TS_ACT_COUNT];    /* (max_tok, xq_stride) activation rows per format */
    size_t xq_stride[TS_ACT_COUNT];
    void *hq[TS_ACT_COUNT];    /* (max_pairs, hq_stride) fused outputs per format */
    size_t hq_stride[TS_ACT_COUNT];
    float *h;                  /* (max_pairs, h_stride) gate/up + SwiGLU, pair order */
    size_t h_stride;
    int32_t *off;              /* (n_expert + 1) */
    int32_t *cur;              /* (n_expert) counting-sort cursors */
    int32_t *tok;              /* (max_pairs) token of each sorted pair */
    int32_t *inv;              /* (max_pairs) sorted position of pair t * n_used + k */
    int32_t *ident;            /* (max_tok) 0, 1, 2, ... (the shared expert's list) */
    uint32_t *pending;         /* (3 * n_expert) stack * n_expert + expert to repack */
    ts_tile *tiles;
    uint32_t tile_cap;
};

static size_t pad64(size_t n) { return (n + 63) & ~(size_t)63; }

static float *row(float *base, size_t stride, int64_t i)
{
    return (float *)((char *)base + (size_t)i * stride);
}

static const ts_gemm_slot *slot_of(const ts_kernels *k, uint32_t qtype)
{
    return qtype < TS_GEMM_SLOTS && k->gemm[qtype].fn ? &k->gemm[qtype] : NULL;
}

int ts_moe_act_of(const ts_kernels *k, uint32_t qtype)
{
    const ts_gemm_slot *sl = slot_of(k, qtype);
    return sl ? sl->act : TS_ACT_F32;
}

/* Bytes of one activation row of k values in format f. */
static size_t act_row_bytes(int f, int64_t k)
{
    return f == TS_ACT_F32 ? (size_t)k * sizeof(float)
                           : ts_qtype_row_bytes(ts_act_qtype(f), (uint64_t)k);
}

int ts_moe_tile_max_parse(const char *s)
{
    if (!s || !*s)
        return TS_MOE_TILE_MAX_DEFAULT;
    return !strcmp(s, "32") ? 32 : !strcmp(s, "64") ? 64 : !strcmp(s, "128") ? 128 : -1;
}

static int tile_max_env(void)
{
    const int v = ts_moe_tile_max_parse(getenv("TESSERA_MOE_TILE_MAX"));
    return v < 0 ? TS_MOE_TILE_MAX_DEFAULT : v;
}

void ts_moe_set_tile_max(ts_moe *mo, int tile_max)
{
    mo->tile_max = tile_max >= 128 ? 128 : tile_max >= 64 ? 64 : 32;
}

int ts_moe_get_tile_max(const ts_moe *mo) { return mo->tile_max; }

const ts_kernels *ts_moe_kernels(const ts_moe *mo) { return mo->kern; }

/* Scratch of one tile: two gathered activation blocks (gate and up may read
 * different formats), the up rows of a fused sub-block, one dequantized row. */
static size_t scratch_bytes(const ts_moe_dims *d, int tile_max)
{
    size_t a = 0;
    for (int f = 0; f < TS_ACT_COUNT; f++)
        if (d->x_acts & (1u << f) || d->h_acts & (1u << f))
            a = act_row_bytes(f, d->max_k) > a ? act_row_bytes(f, d->max_k) : a;
    a = pad64(a > (size_t)d->max_k * 4 ? a : (size_t)d->max_k * 4);
    return 2 * (size_t)tile_max * a + (size_t)tile_max * SUB_ROWS * sizeof(float) + a;
}

void ts_moe_destroy(ts_moe *mo)
{
    if (!mo)
        return;
    for (int f = 0; f < TS_ACT_COUNT; f++) {
        free(mo->xq[f]);
        free(mo->hq[f]);
    }
    void *bufs[] = {mo->h, mo->off, mo->cur, mo->tok, mo->inv, mo->ident, mo->pending, mo->tiles};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        free(bufs[i]);
    free(mo);
}

static void *alloc64(size_t n, bool *ok)
{
    void *p = aligned_alloc(64, pad64(n ? n : 1));
    if (!p)
        *ok = false;
    return p;
}

ts_status ts_moe_create(ts_moe **out, ts_pool *pool, const ts_moe_dims *d, ts_err *err)
{
    *out = NULL;
    if (!pool || d->max_tok <= 0 || d->max_pairs <= 0 || d->n_expert <= 0 || d->max_k <= 0)
        return ts_err_set(err, TS_E_ARG, "ts_moe_create: bad dims");
    ts_moe *mo = calloc(1, sizeof(*mo));
    if (!mo)
        return ts_err_set(err, TS_E_NOMEM, "ts_moe_create: out of memory");
    mo->pool = pool;
    mo->n_workers = ts_pool_n_workers(pool);
    mo->d = *d;
    mo->tile_max = tile_max_env();
    mo->kern = ts_mm_kernels();
    bool ok = true;
    for (int f = TS_ACT_Q8_0; f < TS_ACT_COUNT; f++) {
        if (d->x_acts & (1u << f)) {
            mo->xq_stride[f] = pad64(act_row_bytes(f, d->max_k));
            mo->xq[f] = alloc64(mo->xq_stride[f] * (size_t)d->max_tok, &ok);
        }
        if (d->h_acts & (1u << f)) {
            mo->hq_stride[f] = pad64(act_row_bytes(f, d->max_k));
            mo->hq[f] = alloc64(mo->hq_stride[f] * (size_t)d->max_pairs, &ok);
        }
    }
    if (d->max_ff > 0) {
        mo->h_stride = pad64((size_t)d->max_ff * sizeof(float));
        mo->h = alloc64(mo->h_stride * (size_t)d->max_pairs, &ok);
    }
    mo->off = alloc64((size_t)(d->n_expert + 1) * sizeof(int32_t), &ok);
    mo->cur = alloc64((size_t)d->n_expert * sizeof(int32_t), &ok);
    mo->tok = alloc64((size_t)d->max_pairs * sizeof(int32_t), &ok);
    mo->inv = alloc64((size_t)d->max_pairs * sizeof(int32_t), &ok);
    mo->ident = alloc64((size_t)d->max_tok * sizeof(int32_t), &ok);
    mo->pending = alloc64(3 * (size_t)d->n_expert * sizeof(uint32_t), &ok);
    /* Worst case: every expert's tiles hold >= 32 tokens but one per expert,
     * and small grids get at most 2x the 4-per-worker target (see build_grid). */
    int64_t act = d->n_expert < d->max_pairs ? d->n_expert : d->max_pairs;
    int64_t cap = d->max_pairs / 32 + act + 8 * (int64_t)mo->n_workers + 8;
    mo->tile_cap = (uint32_t)cap;
    mo->tiles = alloc64((size_t)cap * sizeof(ts_tile), &ok);
    if (!ok) {
        ts_moe_destroy(mo);
        return ts_err_set(err, TS_E_NOMEM, "ts_moe_create: out of memory (%lld pairs)",
                          (long long)d->max_pairs);
    }
    for (int64_t i = 0; i < d->max_tok; i++)
        mo->ident[i] = (int32_t)i;
    ts_status st = ts_pool_reserve_scratch(pool, scratch_bytes(d, 128), err);
    if (st == TS_OK)
        st = ts_pool_reserve_tiles(pool, mo->tile_cap, err);
    if (st != TS_OK) {
        ts_moe_destroy(mo);
        return st;
    }
    *out = mo;
    return TS_OK;
}

/* ---- grids ---- */

/* Splits n into parts nearly equal blocks (multiples of align but the last). */
static void split(int64_t n, int64_t parts, int64_t b, int64_t align, int64_t *b0, int64_t *bn)
{
    int64_t units = (n + align - 1) / align;
    int64_t lo = units * b / parts, hi = units * (b + 1) / parts;
    *b0 = lo * align;
    *bn = (hi * align < n ? hi * align : n) - *b0;
}

/* Token block for an expert with n tokens: the narrowest of 32/64/128 that
 * holds them, at most the cap; n is cut into ceil(n / B) nearly equal tiles. */
static int64_t tok_block(int64_t n, int cap)
{
    int64_t b = n <= 32 ? 32 : n <= 64 ? 64 : 128;
    return b < cap ? b : cap;
}

/* Plain 1-D grid over [0, n): up to 4 tiles per worker. */
static ts_grid row_grid(ts_moe *mo, int64_t n)
{
    int64_t parts = 4 * (int64_t)mo->n_workers;
    parts = parts < n ? parts : n;
    parts = parts < (int64_t)mo->tile_cap ? parts : (int64_t)mo->tile_cap;
    for (int64_t b = 0; b < parts; b++) {
        int64_t t0, tn;
        split(n, parts, b, 1, &t0, &tn);
        mo->tiles[b] = (ts_tile){.tok0 = (uint32_t)t0, .toks = (uint32_t)tn, .rows = 1};
    }
    return (ts_grid){mo->tiles, (uint32_t)parts, mo->tile_cap};
}

/* The projection grid: for each expert in order, its token tiles in order,
 * each with the row blocks in order (expert-major: an expert's rows stream
 * once per token tile). Row blocks (multiples of mr) are split further only
 * while the grid has fewer than 4 tiles per worker. */
static ts_grid proj_grid(ts_moe *mo, const int32_t *off, int64_t n_expert, int64_t rows,
                         int64_t mr, int64_t ny)
{
    int64_t n_tt = 0;
    for (int64_t e = 0; e < n_expert; e++) {
        int64_t n = off[e + 1] - off[e];
        if (n > 0)
            n_tt += (n + tok_block(n, mo->tile_max) - 1) / tok_block(n, mo->tile_max);
    }
    if (n_tt == 0)
        return (ts_grid){mo->tiles, 0, mo->tile_cap};
    int64_t target = 4 * (int64_t)mo->n_workers, row_units = (rows + mr - 1) / mr;
    int64_t row_parts = n_tt >= target ? 1 : (target + n_tt - 1) / n_tt;
    row_parts = row_parts < row_units ? row_parts : row_units;
    if (n_tt * row_parts > (int64_t)mo->tile_cap) /* not reached with the planned dims */
        row_parts = (int64_t)mo->tile_cap / n_tt > 0 ? (int64_t)mo->tile_cap / n_tt : 1;
    if (32 % ny)
        ny = 1;
    uint32_t nt = 0;
    for (int64_t e = 0; e < n_expert && nt < mo->tile_cap; e++) {
        int64_t n = off[e + 1] - off[e];
        if (n <= 0)
            continue;
        int64_t nb = (n + tok_block(n, mo->tile_max) - 1) / tok_block(n, mo->tile_max);
        for (int64_t tb = 0; tb < nb; tb++) {
            int64_t t0, tn;
            split(n, nb, tb, n >= ny * nb ? ny : 1, &t0, &tn);
            for (int64_t rb = 0; rb < row_parts && nt < mo->tile_cap; rb++) {
                int64_t r0, rn;
                split(rows, row_parts, rb, mr, &r0, &rn);
                if (rn <= 0 || tn <= 0)
                    continue;
                mo->tiles[nt++] = (ts_tile){.expert = (uint32_t)e, .row0 = (uint32_t)r0,
                                            .rows = (uint32_t)rn, .tok0 = (uint32_t)t0,
                                            .toks = (uint32_t)tn};
            }
        }
    }
    return (ts_grid){mo->tiles, nt, mo->tile_cap};
}

/* ---- activation quantization ---- */

typedef struct {
    ts_quant_act_fn q;
    const float *src;
    size_t src_stride;
    void *dst;
    size_t dst_stride;
    int64_t k;
} quant_ctx;

static void quant_tile(void *vc, const ts_tile *t, ts_scratch *s)
{
    const quant_ctx *c = vc;
    (void)s;
    for (uint32_t i = t->tok0; i < t->tok0 + t->toks; i++)
        c->q((const float *)((const char *)c->src + (size_t)i * c->src_stride),
             (char *)c->dst + (size_t)i * c->dst_stride, c->k);
}

/* Quantizes n rows of k floats into format f (once per call and format). */
static void quantize_rows(ts_moe *mo, int f, const float *src, size_t src_stride, int64_t n,
                          int64_t k, void *dst, size_t dst_stride)
{
    quant_ctx c = {mo->kern->quant_act[f], src, src_stride, dst, dst_stride, k};
    ts_grid g = row_grid(mo, n);
    ts_grid_run(mo->pool, &g, quant_tile, &c);
}

/* ---- projection tiles ---- */

typedef struct {
    const ts_qview *w;
    const ts_gemm_slot *slot; /* NULL: reference path (f32 activations) */
    const void *act;          /* activation rows: by token (gather) or by pair */
    size_t act_stride, act_row;
} operand;

typedef struct {
    operand a, b;        /* b.w: up projection of a fused gate/up tile, else NULL */
    const int32_t *off;  /* (n_expert + 1) */
    const int32_t *tok;  /* gather list (token of each pair), NULL: rows in pair order */
    float *y;
    size_t y_stride;
    int64_t k;
    int64_t mr;          /* row blocks are multiples of it (run_proj) */
    ts_swiglu_fn swiglu; /* fused tiles: elementwise, so sub-blocks give the row's bits */
} proj_ctx;

/* ---- repacked stacks ---- */

static bool is_r16(uint32_t qtype) { return ts_repack_base(qtype) != qtype; }

size_t ts_moe_expert_bytes(const ts_qview *w)
{
    int64_t g = is_r16(w->qtype) ? TS_R16_ROWS : 1;
    return (size_t)((w->rows + g - 1) / g * g) * w->row_stride;
}

ts_qview ts_moe_repacked_view(const ts_qview *src, uint32_t rt, void *buf)
{
    ts_qview v = *src;
    v.data = buf;
    v.qtype = rt;
    v.row_stride = ts_repack_row_stride(rt, src->cols);
    v.place = NULL;
    return v;
}

void ts_moe_repack_experts(const ts_qview *src, const ts_qview *dst, int64_t e0, int64_t e1)
{
    size_t sb = ts_moe_expert_bytes(src), db = ts_moe_expert_bytes(dst);
    for (int64_t e = e0; e < e1; e++)
        ts_repack_rows(dst->qtype, (const char *)src->data + (size_t)e * sb, src->row_stride,
                       src->rows, src->cols, (char *)dst->data + (size_t)e * db);
}

static const char *expert_rows(const ts_qview *w, uint32_t e, int64_t r0)
{
    return (const char *)w->data + (size_t)e * ts_moe_expert_bytes(w) + (size_t)r0 * w->row_stride;
}

/* y[t][r] for rows [r0, r0 + rn) of expert e and toks activation rows. */
static void gemm(const operand *o, uint32_t e, int64_t r0, int64_t rn, int64_t toks,
                 const void *a, size_t a_stride, int64_t k, float *y, size_t y_stride,
                 float *wrow)
{
    const char *w = expert_rows(o->w, e, r0);
    if (o->slot) {
        o->slot->fn(k, rn, toks, w, o->w->row_stride, a, a_stride, y, y_stride);
        return;
    }
    for (int64_t r = 0; r < rn; r++) { /* no kernel (IQ2_XXS): f32 dot in K order */
        ts_dequantize_row(o->w->qtype, w + (size_t)r * o->w->row_stride, wrow, k);
        for (int64_t t = 0; t < toks; t++) {
            const float *x = (const float *)((const char *)a + (size_t)t * a_stride);
            float acc = 0.0f;
            for (int64_t i = 0; i < k; i++)
                acc += wrow[i] * x[i];
            row(y, y_stride, t)[r] = acc;
        }
    }
}

/* Activation rows of the tile's pairs: gathered into scratch when the rows
 * are indexed by token, else a pointer into the pair-ordered rows. */
static const void *tile_act(const proj_ctx *c, const operand *o, int64_t j0, int64_t toks,
                            char *buf, size_t *stride)
{
    if (!c->tok) {
        *stride = o->act_stride;
        return (const char *)o->act + (size_t)j0 * o->act_stride;
    }
    size_t st = pad64(o->act_row);
    for (int64_t i = 0; i < toks; i++)
        memcpy(buf + (size_t)i * st, (const char *)o->act + (size_t)c->tok[j0 + i] * o->act_stride,
               o->act_row);
    *stride = st;
    return buf;
}

static void proj_tile(void *vc, const ts_tile *t, ts_scratch *s)
{
    const proj_ctx *c = vc;
    const int64_t j0 = c->off[t->expert] + t->tok0, toks = t->toks;
    char *buf = s->buf;
    size_t blk = pad64((size_t)c->k * 4 > c->a.act_row ? (size_t)c->k * 4 : c->a.act_row);
    size_t blk_b = c->b.w ? pad64((size_t)c->k * 4 > c->b.act_row ? (size_t)c->k * 4 : c->b.act_row)
                          : 0;
    size_t sa, sb = 0;
    const void *a = tile_act(c, &c->a, j0, toks, buf, &sa);
    char *rest = buf + (size_t)toks * blk;
    const void *b = NULL;
    if (c->b.w) {
        bool same = c->b.act == c->a.act && c->b.act_row == c->a.act_row;
        b = same ? a : tile_act(c, &c->b, j0, toks, rest, &sb);
        sb = same ? sa : sb;
        rest += same ? 0 : (size_t)toks * blk_b;
    }
    float *tmp = (float *)rest; /* (toks, SUB_ROWS) up rows of a fused sub-block */
    float *wrow = (float *)(rest + pad64((size_t)toks * SUB_ROWS * sizeof(float)));
    float *y = row(c->y, c->y_stride, j0);
    int64_t sub = SUB_ROWS / c->mr * c->mr; /* mr <= 64 */
    for (int64_t r0 = t->row0; r0 < (int64_t)t->row0 + t->rows; r0 += sub) {
        int64_t rn = (int64_t)t->row0 + t->rows - r0 < sub ? (int64_t)t->row0 + t->rows - r0 : sub;
        gemm(&c->a, t->expert, r0, rn, toks, a, sa, c->k, y + r0, c->y_stride, wrow);
        if (!c->b.w)
            continue;
        gemm(&c->b, t->expert, r0, rn, toks, b, sb, c->k, tmp, (size_t)sub * sizeof(float), wrow);
        for (int64_t i = 0; i < toks; i++) /* the dense FFN's SwiGLU: the same bits */
            c->swiglu(row(y, c->y_stride, i) + r0, tmp + i * sub, rn);
    }
}

/* Operand for weights w reading rows src (f32, src_stride apart, n of them)
 * of k values: quantized into buf[f] unless done[f] says this call already did. */
static operand make_operand(ts_moe *mo, const ts_qview *w, const float *src, size_t src_stride,
                            int64_t n, void *const *buf, const size_t *buf_stride, bool *done)
{
    operand o = {.w = w, .slot = slot_of(mo->kern, w->qtype)};
    int f = o.slot ? o.slot->act : TS_ACT_F32;
    o.act_row = act_row_bytes(f, w->cols);
    if (f == TS_ACT_F32) {
        o.act = src;
        o.act_stride = src_stride;
        return o;
    }
    o.act = buf[f];
    o.act_stride = buf_stride[f];
    if (!done || !done[f])
        quantize_rows(mo, f, src, src_stride, n, w->cols, buf[f], buf_stride[f]);
    if (done)
        done[f] = true;
    return o;
}

static void run_proj(ts_moe *mo, proj_ctx *c, int64_t n_expert, int64_t rows)
{
    int64_t mr = c->a.slot ? c->a.slot->mr : 1, ny = c->a.slot ? c->a.slot->ny : 1;
    if (c->b.slot && c->b.slot->mr > mr)
        mr = c->b.slot->mr;
    /* A repacked stack's row blocks start on its 16-row groups. */
    if ((is_r16(c->a.w->qtype) || (c->b.w && is_r16(c->b.w->qtype))) && mr % TS_R16_ROWS)
        mr = mr < TS_R16_ROWS ? TS_R16_ROWS : (mr + TS_R16_ROWS - 1) / TS_R16_ROWS * TS_R16_ROWS;
    c->mr = mr;
    ts_grid g = proj_grid(mo, c->off, n_expert, rows, mr, ny);
    ts_grid_run(mo->pool, &g, proj_tile, c);
}

void ts_moe_matmul(ts_moe *mo, const ts_qview *stack, int64_t n_expert, const int32_t *off,
                   const int32_t *tok, const float *x, size_t x_stride, int64_t n_x, float *y,
                   size_t y_stride)
{
    if (off[n_expert] <= 0 || n_x <= 0)
        return;
    proj_ctx c = {.off = off, .tok = tok, .y = y, .y_stride = y_stride, .k = stack->cols};
    c.a = make_operand(mo, stack, x, x_stride, n_x, mo->xq, mo->xq_stride, NULL);
    run_proj(mo, &c, n_expert, stack->rows);
}

/* gate/up (+SwiGLU) into mo->h in pair order, then down into y (pair order).
 * x rows are read by token through tok; xq_done tracks this call's
 * quantized formats of x. */
static void expert_ffn(ts_moe *mo, const ts_qview *gate, const ts_qview *up, const ts_qview *down,
                       int64_t n_expert, const int32_t *off, const int32_t *tok, const float *x,
                       size_t x_stride, int64_t n_x, bool *xq_done, float *y, size_t y_stride)
{
    int64_t n_pairs = off[n_expert];
    if (n_pairs <= 0)
        return;
    proj_ctx c = {.off = off, .tok = tok, .y = mo->h, .y_stride = mo->h_stride, .k = gate->cols,
                  .swiglu = mo->kern->ops.swiglu};
    c.a = make_operand(mo, gate, x, x_stride, n_x, mo->xq, mo->xq_stride, xq_done);
    c.b = make_operand(mo, up, x, x_stride, n_x, mo->xq, mo->xq_stride, xq_done);
    run_proj(mo, &c, n_expert, gate->rows);
    proj_ctx d = {.off = off, .tok = NULL, .y = y, .y_stride = y_stride, .k = down->cols};
    d.a = make_operand(mo, down, mo->h, mo->h_stride, n_pairs, mo->hq, mo->hq_stride, NULL);
    run_proj(mo, &d, n_expert, down->rows);
}

/* ---- routing and the mixture ---- */

/* Softmax over one token's router logits, then its top n_used experts.
 * A token whose router logits hold NaN (its activations went non-finite):
 * every prob is NaN, every comparison false, so it takes the lowest free
 * experts with NaN weights; defined, the same on every level, and its output
 * is NaN whatever it picks. Other tokens never see its row. */
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

typedef struct {
    ts_session *s;
    const ts_layer *L;
    const int32_t *inv;
    const float *sh; /* shared expert rows (by token) or NULL */
} tok_ctx;

/* Routing of the tile's tokens, and the shared-expert gate (reads xn). */
static void route_tile(void *vc, const ts_tile *t, ts_scratch *scr)
{
    const tok_ctx *c = vc;
    ts_session *s = c->s;
    const ts_hparams *hp = &s->m->hp;
    int64_t ne = hp->n_expert, nu = hp->n_expert_used;
    (void)scr;
    for (int64_t i = t->tok0; i < (int64_t)t->tok0 + t->toks; i++) {
        route_token(hp, s->router + i * ne, s->sel + i * nu, s->sel_w + i * nu);
        if (c->L->gate_inp_shexp) {
            const float *x = row(s->xn, s->x_stride, i);
            double g = 0.0;
            for (int64_t d = 0; d < hp->n_embd; d++)
                g += (double)c->L->gate_inp_shexp[d] * x[d];
            s->shexp_gate[i] = 1.0f / (1.0f + expf(-(float)g));
        }
    }
}

/* xn row t = sum_k w_k y_k (double, slot order, rounded once) + gate * shared. */
static void combine_tile(void *vc, const ts_tile *t, ts_scratch *scr)
{
    const tok_ctx *c = vc;
    ts_session *s = c->s;
    const ts_hparams *hp = &s->m->hp;
    int64_t nu = hp->n_expert_used;
    const int64_t n = hp->n_embd;
    double *restrict acc = scr->buf; /* (n_embd): scratch holds 2 * 128 rows of max_k floats */
    for (int64_t i = t->tok0; i < (int64_t)t->tok0 + t->toks; i++) {
        float *out = row(s->xn, s->x_stride, i);
        /* Slot by slot over the whole row (streams, vectorizes): each value
         * is still ((w0 y0 + w1 y1) + w2 y2) + ... in double, rounded once. */
        const float *y0 = row(s->ex_out, s->x_stride, c->inv[i * nu]);
        const double w0 = s->sel_w[i * nu];
        for (int64_t d = 0; d < n; d++)
            acc[d] = w0 * y0[d];
        for (int64_t k = 1; k < nu; k++) {
            const float *yk = row(s->ex_out, s->x_stride, c->inv[i * nu + k]);
            const double wk = s->sel_w[i * nu + k];
            for (int64_t d = 0; d < n; d++)
                acc[d] = acc[d] + wk * yk[d];
        }
        for (int64_t d = 0; d < n; d++)
            out[d] = (float)acc[d];
        if (c->sh) {
            const float *y = row((float *)c->sh, s->x_stride, i);
            for (int64_t d = 0; d < hp->n_embd; d++)
                out[d] += y[d] * s->shexp_gate[i];
        }
    }
}

/* Counting sort of the (token, slot) pairs by expert: off, tok (token of each
 * sorted pair, ascending within an expert) and inv (sorted position of pair
 * t * n_used + k). */
static void sort_pairs(ts_moe *mo, const int32_t *sel, int64_t n_tok, int64_t nu, int64_t ne)
{
    memset(mo->cur, 0, (size_t)ne * sizeof(int32_t));
    for (int64_t p = 0; p < n_tok * nu; p++)
        mo->cur[sel[p]]++;
    mo->off[0] = 0;
    for (int64_t e = 0; e < ne; e++) {
        mo->off[e + 1] = mo->off[e] + mo->cur[e];
        mo->cur[e] = mo->off[e];
    }
    for (int64_t p = 0; p < n_tok * nu; p++) {
        int32_t j = mo->cur[sel[p]]++;
        mo->tok[j] = (int32_t)(p / nu);
        mo->inv[p] = j;
    }
}

ts_status ts_moe_plan(ts_session *s, ts_err *err)
{
    const ts_hparams *hp = &s->m->hp;
    if (hp->n_expert_used > 64)
        return ts_err_set(err, TS_E_UNSUPPORTED, "moe: %lld experts per token (max 64)",
                          (long long)hp->n_expert_used);
    const ts_kernels *k = ts_mm_kernels();
    ts_moe_dims d = {.max_tok = s->chunk, .max_pairs = s->chunk * hp->n_expert_used,
                     .n_expert = hp->n_expert};
    int64_t dims[3] = {hp->n_embd, hp->n_ff_exp, hp->n_ff_shexp};
    for (int i = 0; i < 3; i++)
        d.max_k = dims[i] > d.max_k ? dims[i] : d.max_k;
    d.max_ff = hp->n_ff_exp > hp->n_ff_shexp ? hp->n_ff_exp : hp->n_ff_shexp;
    if (d.max_pairs < d.max_tok)
        d.max_pairs = d.max_tok;
    for (int64_t il = 0; il < hp->n_layer; il++) {
        const ts_layer *L = &s->m->layers[il];
        d.x_acts |= 1u << ts_moe_act_of(k, L->gate_exps.qtype);
        d.x_acts |= 1u << ts_moe_act_of(k, L->up_exps.qtype);
        d.h_acts |= 1u << ts_moe_act_of(k, L->down_exps.qtype);
        if (L->gate_inp_shexp) {
            d.x_acts |= 1u << ts_moe_act_of(k, L->gate_shexp.qtype);
            d.x_acts |= 1u << ts_moe_act_of(k, L->up_shexp.qtype);
            d.h_acts |= 1u << ts_moe_act_of(k, L->down_shexp.qtype);
        }
    }
    return ts_moe_create(&s->moe, s->eng->pool, &d, err);
}

/* ---- experts repacked on first use (ts_moe_lazy) ---- */

typedef struct {
    const ts_moe_lazy *lz;   /* the layer's stacks: gate, up, down */
    const ts_qview *dst[3];  /* their repacked views */
    const uint32_t *pending; /* stack * n_expert + expert */
    int64_t n_expert;
} lazy_ctx;

static void lazy_range(void *vc, uint32_t i0, uint32_t i1, ts_scratch *s)
{
    const lazy_ctx *c = vc;
    (void)s;
    for (uint32_t i = i0; i < i1; i++) {
        const ts_moe_lazy *z = &c->lz[c->pending[i] / c->n_expert];
        int64_t e = (int64_t)(c->pending[i] % c->n_expert);
        ts_moe_repack_experts(&z->src, c->dst[c->pending[i] / c->n_expert], e, e + 1);
        /* Its source pages go at once, so one pass over many new experts
         * (a layer's first prefill chunk) never holds them twice. */
        if (z->drop) {
            size_t eb = ts_moe_expert_bytes(&z->src);
            ts_mem_drop_mapped((const char *)z->src.data + (size_t)e * eb, eb);
        }
    }
}

/* Repacks, once, the experts of the layer's lazy stacks that the chunk routes
 * to (off: pairs per expert), on the pool, before any kernel reads them. */
static void repack_routed(ts_moe *mo, const ts_model *m, int64_t layer, const int32_t *off)
{
    if (!m->lazy_exps)
        return;
    /* The flags are the model's, shared by its sessions: written here by the
     * engine pool's caller, of which there is one at a time (sched.h), so
     * no two sessions ever repack at once. */
    ts_moe_lazy *lz = &m->lazy_exps[layer * 3];
    const ts_layer *L = &m->layers[layer];
    int64_t ne = m->hp.n_expert;
    uint32_t n = 0;
    bool touched[3] = {false};
    for (int i = 0; i < 3; i++)
        for (int64_t e = 0; lz[i].src.data && e < ne; e++)
            if (off[e + 1] > off[e] && !lz[i].ready[e]) {
                mo->pending[n++] = (uint32_t)(i * ne + e);
                touched[i] = true;
            }
    if (!n)
        return;
    lazy_ctx c = {lz, {&L->gate_exps, &L->up_exps, &L->down_exps}, mo->pending, ne};
    ts_pool_for(mo->pool, n, lazy_range, &c); /* independent experts */
    for (uint32_t i = 0; i < n; i++)
        lz[mo->pending[i] / ne].ready[mo->pending[i] % ne] = 1;
    /* Pages two experts share, and neighbours' pages the repack's faults
     * mapped around its own: only the repack reads a lazy stack's source,
     * and none runs now, so the whole stack's mapping can go (a later repack
     * faults back what it reads). */
    for (int i = 0; i < 3; i++)
        if (touched[i] && lz[i].drop)
            ts_mem_drop_mapped(lz[i].src.data, (size_t)ne * ts_moe_expert_bytes(&lz[i].src));
}

void ts_moe_run(ts_session *s, int64_t layer, int64_t n_tok)
{
    const ts_hparams *hp = &s->m->hp;
    const ts_layer *L = &s->m->layers[layer];
    ts_moe *mo = s->moe;
    int64_t ne = hp->n_expert, nu = hp->n_expert_used;
    /* The residual+norm grid before this quantized xn for the router
     * (core/forward.c), so this is one grid. */
    const ts_qview *router = &L->gate_inp;
    float *const ry = s->router;
    const size_t rys = (size_t)ne * sizeof(float);
    ts_mm_run_multi_quantized(s->mm, &router, &ry, &rys, 1, s->xn, s->x_stride, n_tok);
    float *sh = L->gate_inp_shexp ? row(s->ex_out, s->x_stride, s->chunk * nu) : NULL;
    tok_ctx tc = {.s = s, .L = L, .inv = mo->inv, .sh = sh};
    ts_grid g = row_grid(mo, n_tok);
    ts_grid_run(mo->pool, &g, route_tile, &tc);
    sort_pairs(mo, s->sel, n_tok, nu, ne);
    repack_routed(mo, s->m, layer, mo->off);
    bool xq_done[TS_ACT_COUNT] = {false};
    expert_ffn(mo, &L->gate_exps, &L->up_exps, &L->down_exps, ne, mo->off, mo->tok, s->xn,
               s->x_stride, n_tok, xq_done, s->ex_out, s->x_stride);
    if (sh) { /* the shared expert: a stack of one expert routed to every token */
        int32_t off1[2] = {0, (int32_t)n_tok};
        expert_ffn(mo, &L->gate_shexp, &L->up_shexp, &L->down_shexp, 1, off1, mo->ident, s->xn,
                   s->x_stride, n_tok, xq_done, sh, s->x_stride);
    }
    /* xn is free now: it receives the mixture, added to x by the caller. */
    g = row_grid(mo, n_tok);
    ts_grid_run(mo->pool, &g, combine_tile, &tc);
}
