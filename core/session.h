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

#include <stdatomic.h>

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
    /* Set while a forward pass runs on the pool: a second caller (another
     * thread, another session or batch) gets TS_E_STATE, not a grid abort. */
    atomic_bool busy;
};

/* Claims the engine for one forward pass; TS_E_STATE when another is running. */
ts_status ts_engine_enter(ts_engine *eng, ts_err *err);
void ts_engine_leave(ts_engine *eng);

/* KV cache: per layer, per KV head, n_ctx_pad positions of one element type, in the
 * layout of the attention kernels (simd/ops.h): K transposed in groups of 16
 * positions, (head_dim, 16) each; V rows of vstride elements, pad zero.
 * Head-major so one head's keys are contiguous for the attention scan. */
typedef struct {
    int k_type, v_type;  /* TS_ATTN_* (= ts_kv_type) */
    /* Hadamard rotation before quantizing (as llama.cpp does for a quantized
     * cache, head_dim a multiple of 64): K and every query in chunks of rot_k
     * dims (the largest power of two >= 64 dividing head_dim), V and the
     * attention output in chunks of rot_v = 64; 0 = none. */
    int64_t rot_k, rot_v;
    size_t k_blk, v_blk; /* bytes of one (layer, head) key block of K, of V */
    int64_t n_ctx, n_layer, n_head_kv, head_dim;
    int64_t n_ctx_pad; /* n_ctx rounded up to a key block (64): kernels read whole blocks */
    int64_t vstride;   /* V row length in elements: head_dim rounded up to 16 */
    void *k, *v;
    /* Where key block b of (layer, head) lives: page p = pages[b] (or b) at
     * k + p * k_page_stride + (layer * n_head_kv + head) * k_head_stride
     * (bytes; V alike). A session's cache is [layer][head][positions] (pages
     * are its blocks); a pool (ts_kv_init_pool) is [page][layer][head][64
     * positions], so one page holds a 64-position block of every layer. */
    size_t k_page_stride, v_page_stride, k_head_stride, v_head_stride;
    int64_t n_pages; /* pool: pages; session: n_ctx_pad / 64 */
} ts_kv;

/* The K and V types of the options (kv_f32: both f32 where the types are
 * left 0); TS_E_ARG for a type out of range. */
ts_status ts_kv_types(bool kv_f32, int k, int v, int *kt, int *vt, ts_err *err);
/* kt, vt: the K and V element types (TS_ATTN_*); TS_E_UNSUPPORTED for a
 * quantized type the model's head_dim does not take. */
ts_status ts_kv_init(ts_kv *kv, const ts_hparams *hp, int64_t n_ctx, int kt, int vt, ts_err *err);
/* A pool of n_pages pages of TS_ATTN_KBLK positions for every layer and KV head. */
ts_status ts_kv_init_pool(ts_kv *kv, const ts_hparams *hp, int64_t n_pages, int kt, int vt,
                          ts_err *err);
/* x[0 .. len) by the orthonormal Walsh-Hadamard matrix of order n (a power
 * of two), chunk by chunk: butterflies (a + b, a - b) over strides 1, 2, ..
 * n/2, then times 1/sqrt(n). Its own inverse. Row-local, one fixed order. */
void ts_kv_hadamard(float *x, int64_t len, int64_t n);
/* Fills page p (every layer and head, K and V) with NaN: a freed page must
 * never leak into a sequence that did not write it (tests poison them). */
void ts_kv_poison_page(ts_kv *kv, int64_t page);
void ts_kv_fini(ts_kv *kv);
/* Writes K/V rows of tokens [0, n_tok) at positions pos0.. for one layer.
 * k, v: (n_tok, n_head_kv * head_dim), rows stride bytes apart. */
/* Heads [h0, h0 + nh) of one token's K (which 0) or V (which 1) row src (all
 * heads, head h at src + h * head_dim) at position pos: K transposed into its
 * 16-position group, V as a zero-padded row. Disjoint (head, position) sets
 * may be stored concurrently. */
/* pages: the sequence's page table (NULL: block b is page b). */
void ts_kv_store_heads(ts_kv *kv, const int32_t *pages, int64_t layer, int64_t pos, int which,
                       const float *src, int64_t h0, int64_t nh);
/* Page 0's K / V block of (layer, kv head) in the kernels' layout: with the page strides and a page table, what ts_attn_args takes. */
const void *ts_kv_k_head(const ts_kv *kv, int64_t layer, int64_t head);
const void *ts_kv_v_head(const ts_kv *kv, int64_t layer, int64_t head);

/* A run of consecutive tokens of one sequence inside a forward step: rows
 * [tok0, tok0 + n_tok) of the step's activations, at positions pos0.. of the
 * cache kv addressed through pages. */
typedef struct {
    ts_kv *kv;
    const int32_t *pages;
    int64_t pos0, tok0, n_tok;
    float *rs; /* the sequence's recurrent state (core/gdn.h), NULL without GDN layers */
} ts_span;

struct ts_session {
    ts_engine *eng;
    const ts_model *m;
    int64_t n_ctx, chunk, pos;
    ts_kv kv;
    /* The step's spans (one, over kv, for a plain session; a batch's
     * sequences for its workspace) and each row's span index. */
    const ts_span *spans;
    uint32_t n_spans;
    uint32_t *tok_span;    /* (chunk) */
    int32_t *out_rows;     /* (chunk) 0, 1, 2, ..: "every row" for the output head */
    ts_span own_span;
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
    /* Hybrid models (NULL otherwise): the gated attention's [q | gate] rows,
     * GDN projections (conv channels, z, beta / alpha or qwen3next's fused
     * ba) and the GDN output; the session's own recurrent state. */
    float *qg, *gdn_qkv, *gdn_z, *gdn_b, *gdn_a, *gdn_g, *gdn_out; /* gdn_g: decay | beta */
    size_t qg_stride, gdn_qkv_stride, gdn_z_stride, gdn_ba_stride, gdn_out_stride;
    float *rs;
    size_t rs_floats; /* per sequence: n_layer_rs x ts_gdn_layer_floats */
    ts_tile *tiles;
    uint32_t tile_cap;
    bool has_logits;
};

/* Runs one chunk of n_tok tokens at positions s->pos.. through every layer
 * and advances s->pos. logits_out: (n_tok, n_vocab) or NULL (then only the
 * last token's logits are computed, into s->logits). */
void ts_forward_chunk(ts_session *s, const int32_t *tokens, int64_t n_tok, float *logits_out);
/* Runs n_tok tokens (rows of s->spans, which the caller set, tok_span
 * filled) through every layer, leaving the final norm's rows in s->xn.
 * Positions are not advanced. */
void ts_forward_step(ts_session *s, const int32_t *tokens, int64_t n_tok);
/* The output head on rows rows[0 .. n_out) of s->xn (ascending) into logits
 * (n_out, n_vocab). Scattered rows are packed in xn first: call it last. */
void ts_forward_head(ts_session *s, const int32_t *rows, int64_t n_out, float *logits);
/* Position of step row i. */
static inline int64_t ts_session_row_pos(const ts_session *s, int64_t i)
{
    const ts_span *sp = &s->spans[s->tok_span[i]];
    return sp->pos0 + i - sp->tok0;
}
/* Grouped-query causal attention for the chunk of one layer: reads s->q and
 * the cache rows 0..pos of each query, writes s->att. */
/* Attention of the chunk's n_tok queries into s->att. With wo (may be NULL),
 * the tiles also quantize att for it where its activation blocks tile each
 * GQA group's columns: returns true when they did (run wo through
 * ts_mm_run_multi_quantized), false otherwise (ts_mm_run). */
bool ts_attn_run(ts_session *s, int64_t layer, int64_t n_tok, const ts_qview *wo);
/* MoE FFN: reads s->xn, adds the expert mixture into s->x. */
void ts_moe_run(ts_session *s, int64_t layer, int64_t n_tok);

/* A session with n_ctx positions and chunk-row activations; own_kv false:
 * no cache of its own (a batch's workspace, whose spans point into a pool).
 * extra_tiles: room for more attention tiles (one per span per KV head). */
ts_status ts_session_alloc(ts_session **out, ts_engine *eng, int64_t n_ctx, int64_t chunk,
                           int kt, int vt, bool own_kv, uint32_t extra_tiles, ts_err *err);
/* min(model context, 4096): the default n_ctx. */
int64_t ts_session_default_ctx(const ts_engine *eng);

/* Splits n items into tiles of about the size that gives each worker a few
 * tiles; fills s->tiles (row0/rows unused = 0/1) and returns the grid. */
ts_grid ts_session_token_grid(ts_session *s, int64_t n_tok);

#endif
