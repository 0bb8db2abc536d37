/*
 * core/session.h: engine and session internals shared by core/session.c,
 * core/forward.c, core/attn.c, core/moe.c and core/kv.c (internal to core/).
 *
 * The session owns the KV cache, every activation buffer and the tile
 * storage, all sized once at create from (chunk, n_ctx); the forward pass
 * never allocates. Activations are row-major (n_tok, width) f32 with rows
 * padded to 64 bytes; strides are in bytes.
 */
#ifndef TS_SESSION_H
#define TS_SESSION_H

#include "matmul.h"
#include "model.h"
#include "tessera.h"
#include "tokenizer.h"
#include "../simd/ops.h"

struct ts_engine {
    ts_model *model;
    ts_vocab *vocab;
    ts_pool *pool;
    uint32_t n_workers;
};

/* KV cache: per layer, per KV head, n_ctx_pad positions of f32 or f16, in the
 * layout of the attention kernels (simd/ops.h): K transposed in groups of 16
 * positions, (head_dim, 16) each; V rows of vstride elements, pad zero.
 * Head-major so one head's keys are contiguous for the attention scan. */
typedef struct {
    bool f16;
    int64_t n_ctx, n_layer, n_head_kv, head_dim;
    int64_t n_ctx_pad; /* n_ctx rounded up to a key block (64): kernels read whole blocks */
    int64_t vstride;   /* V row length in elements: head_dim rounded up to 16 */
    void *k, *v;
} ts_kv;

ts_status ts_kv_init(ts_kv *kv, const ts_hparams *hp, int64_t n_ctx, bool f16, ts_err *err);
void ts_kv_fini(ts_kv *kv);
/* Writes K/V rows of tokens [0, n_tok) at positions pos0.. for one layer.
 * k, v: (n_tok, n_head_kv * head_dim), rows stride bytes apart. */
/* Heads [h0, h0 + nh) of one token's K (which 0) or V (which 1) row src (all
 * heads, head h at src + h * head_dim) at position pos: K transposed into its
 * 16-position group, V as a zero-padded row. Disjoint (head, position) sets
 * may be stored concurrently. */
void ts_kv_store_heads(ts_kv *kv, int64_t layer, int64_t pos, int which, const float *src,
                       int64_t h0, int64_t nh);
/* The K / V storage of (layer, kv head) in the kernels' layout (f32 or f16). */
const void *ts_kv_k_head(const ts_kv *kv, int64_t layer, int64_t head);
const void *ts_kv_v_head(const ts_kv *kv, int64_t layer, int64_t head);

struct ts_session {
    ts_engine *eng;
    const ts_model *m;
    int64_t n_ctx, chunk, pos;
    ts_kv kv;
    ts_mm *mm;
    const ts_ops *ops;     /* attention and per-token kernels, fixed at create */
    /* (chunk, width) activations; *_stride in bytes */
    float *x, *xn, *q, *k, *v, *att, *ffn_a, *ffn_b;
    size_t x_stride, q_stride, kv_stride, att_stride, ffn_stride;
    float *rope_cs;        /* (chunk, n_rot) interleaved cos, sin */
    float *logits;         /* (n_vocab) logits of the last token */
    /* MoE scratch (NULL for dense models) */
    float *router;         /* (chunk, n_expert) probabilities */
    int32_t *sel;          /* (chunk, n_used) selected experts */
    double *sel_w;         /* (chunk, n_used) their weights */
    double *mix_acc;       /* (n_embd) mixture accumulator */
    float *ex_out;         /* (chunk * n_used) expert outputs in expert-sorted pair
                              order, then (chunk) shared-expert rows */
    float *shexp_gate;     /* (chunk) qwen2moe shared-expert gate */
    struct ts_moe *moe;    /* routed-matmul plan and buffers (core/moe.c) */
    ts_tile *tiles;
    uint32_t tile_cap;
    bool has_logits;
};

/* Runs one chunk of n_tok tokens at positions s->pos.. through every layer
 * and advances s->pos. logits_out: (n_tok, n_vocab) or NULL (then only the
 * last token's logits are computed, into s->logits). */
void ts_forward_chunk(ts_session *s, const int32_t *tokens, int64_t n_tok, float *logits_out);
/* Grouped-query causal attention for the chunk of one layer: reads s->q and
 * the cache rows 0..pos of each query, writes s->att. */
/* Attention of the chunk's n_tok queries into s->att. With wo (may be NULL),
 * the tiles also quantize att for it where its activation blocks tile each
 * GQA group's columns: returns true when they did (run wo through
 * ts_mm_run_multi_quantized), false otherwise (ts_mm_run). */
bool ts_attn_run(ts_session *s, int64_t layer, int64_t n_tok, const ts_qview *wo);
/* MoE FFN: reads s->xn, adds the expert mixture into s->x. */
void ts_moe_run(ts_session *s, int64_t layer, int64_t n_tok);

/* Splits n items into tiles of about the size that gives each worker a few
 * tiles; fills s->tiles (row0/rows unused = 0/1) and returns the grid. */
ts_grid ts_session_token_grid(ts_session *s, int64_t n_tok);

#endif
