/*
 * core/moe.h: the MoE FFN's emulated GPU-tile dispatch (STYLE §4), internal
 * to core/ (plus the audit, which tools/ and tests/ drive).
 *
 * A routed matmul multiplies each pair's activation row by its expert's
 * weights: the pairs are sorted by expert (expert e owns pairs
 * [off[e], off[e + 1])); pair j reads row tok[j] of the activations and
 * writes row j of the output. One grid per projection: for each active
 * expert, its pair list cut into token tiles of 32/64/128 (nearly equal
 * ceil(N/B) blocks, B capped by TESSERA_MOE_TILE_MAX) x output-row blocks,
 * expert-major. A tile gathers its quantized activation rows into the
 * worker's scratch and calls the weight type's GEMM tile kernel on its
 * expert's rows. The kernel contract makes every output bit independent of
 * the tiling, so results do not depend on the tile cap, the chunk size or
 * the thread count.
 */
#ifndef TS_MOE_H
#define TS_MOE_H

#include "matmul.h"
#include "../simd/kernels.h"

#define TS_MOE_TILE_MAX_DEFAULT 128

typedef struct ts_moe ts_moe;

typedef struct {
    int64_t max_tok;   /* activation rows per call */
    int64_t max_pairs; /* routed pairs per call */
    int64_t n_expert;  /* experts per stack */
    int64_t max_k;     /* longest input row */
    int64_t max_ff;    /* longest fused gate/up output row (0: no fused projection) */
    uint32_t x_acts;   /* bit per ts_act: formats the activation rows are quantized to */
    uint32_t h_acts;   /* bit per ts_act: formats the fused outputs are quantized to */
} ts_moe_dims;

/* Plan time: buffers, tile storage (worst case) and worker scratch; reads
 * TESSERA_MOE_TILE_MAX (32|64|128; anything else: 128) and fills its own
 * kernel table at the TESSERA_ISA cap (the same table ts_mm uses). */
ts_status ts_moe_create(ts_moe **out, ts_pool *pool, const ts_moe_dims *d, ts_err *err);
void ts_moe_destroy(ts_moe *mo);
const ts_kernels *ts_moe_kernels(const ts_moe *mo);
/* Token-tile cap: 32, 64 or 128 (other values are rounded down to one). */
/* A TESSERA_MOE_TILE_MAX value: NULL or "": the default cap; "32", "64" or
 * "128"; anything else -1 (the engine refuses it at creation). */
int ts_moe_tile_max_parse(const char *s);
void ts_moe_set_tile_max(ts_moe *mo, int tile_max);
int ts_moe_get_tile_max(const ts_moe *mo);
/* The activation format of qtype's kernel (TS_ACT_F32 for types without one). */
int ts_moe_act_of(const ts_kernels *k, uint32_t qtype);

/* ---- repacked expert stacks (core/place.c at load, ts_moe_run per expert; the audit) ----
 * A stack may be repacked per expert into an _R16 layout (simd/repack.h):
 * expert e's rows are repacked on their own (rows padded to whole 16-row
 * groups) at e * ts_moe_expert_bytes(view) in one buffer, and the view's
 * qtype / row_stride are the _R16 ones. The R16 kernels give the plain
 * kernels' bits, so the repack never changes an output bit. */

/* Bytes from one expert of the stack w (plain or repacked) to the next. */
size_t ts_moe_expert_bytes(const ts_qview *w);
/* The repacked view of the plain stack src (rt from ts_kernels_repack_type),
 * stored at buf (n_expert * ts_moe_expert_bytes(result) bytes). */
ts_qview ts_moe_repacked_view(const ts_qview *src, uint32_t rt, void *buf);
/* Repacks experts [e0, e1) of the plain stack src into dst (the data of the
 * view ts_moe_repacked_view gave). Disjoint ranges may run concurrently. */
void ts_moe_repack_experts(const ts_qview *src, const ts_qview *dst, int64_t e0, int64_t e1);

/* A model's stack repacked per expert on first use (ts_model.lazy_exps): the
 * layer's view is already the repacked one (its buffer allocated, untouched),
 * and ts_moe_run repacks expert e from src the first time a token routes to
 * it, so only routed experts ever take memory, as in the plain mapping. */
typedef struct ts_moe_lazy {
    ts_qview src;   /* the plain stack as loaded; data NULL: not repacked */
    uint8_t *ready; /* (n_expert) 1 once expert e is in the repacked view */
    bool drop;      /* src lies in the read-only file mapping: drop its pages */
} ts_moe_lazy;

/* y row j = W_{e(j)} x row tok[j] for every pair j < off[n_expert].
 * stack: rows x cols per expert, expert e at data + e * ts_moe_expert_bytes
 * (e * rows * row_stride for a plain stack).
 * x: n_x rows (stack->cols f32 each), x_stride bytes apart; y: rows, y_stride
 * apart. n_x <= max_tok, off[n_expert] <= max_pairs, cols <= max_k. */
void ts_moe_matmul(ts_moe *mo, const ts_qview *stack, int64_t n_expert, const int32_t *off,
                   const int32_t *tok, const float *x, size_t x_stride, int64_t n_x, float *y,
                   size_t y_stride);

/* Session glue (core/session.c): plans s->moe for the model's MoE layers. */
struct ts_session;
ts_status ts_moe_plan(struct ts_session *s, ts_err *err);

/* ---- audit (core/moe_audit.c): the routed matmul against the reference ---- */
typedef struct {
    uint32_t qtype;         /* weight type (its kernel must read Q8_0, Q8_K or f32 rows) */
    int64_t k, rows;        /* input and output row lengths */
    int64_t n_expert;       /* experts in the stack; odd ones stay inactive */
    const int *counts;      /* tokens per active expert, one problem each */
    int n_counts;
    const int *caps;        /* tile caps (32|64|128) */
    int n_caps;
    const int *threads;     /* pool sizes */
    int n_threads;
    double atol, rtol;      /* |y - ref| <= atol + rtol * sqrt(blocks + 1) * sum|w x| */
    uint64_t seed;
    bool no_repack;         /* skip the repacked-stack pass (see ts_moe_audit) */
    void (*log)(void *ctx, const char *line); /* one line per problem, or NULL */
    void *log_ctx;
} ts_moe_audit_opts;

typedef struct {
    int n_problems, n_configs;
    int n_unwritten;        /* output values still NaN */
    int n_out_of_tol;       /* values outside the tolerance */
    int n_mismatch;         /* configurations not byte-identical to the first */
    int n_repacked_configs; /* configurations run on the repacked stack (0: no layout) */
    double worst;           /* max |y - ref| / bound over every checked value */
} ts_moe_audit_result;

/* Runs every (count, cap, threads) configuration: the output is poisoned with
 * NaN before each run, every value of the first configuration of a count is
 * checked against dequantize + double dot, and every other configuration is
 * compared byte for byte with it. When the kernel level repacks stacks of
 * the type (ts_kernels_repack_type), the stack is then repacked per expert as
 * core/place.c does at load (in two expert ranges) and every configuration
 * runs again on it, compared byte for byte with the plain first. Errors (memory, pool, type): TS_E_*. */
ts_status ts_moe_audit(const ts_moe_audit_opts *o, ts_moe_audit_result *r, ts_err *err);

#endif
