/*
 * simd/ops.h: signatures of the attention and per-token kernels (the ts_ops
 * part of the ts_kernels table, simd/kernels.h).
 *
 * Owns: the argument layouts and the canonical order of every op, which
 * simd/scalar/attn.c and simd/scalar/elementwise.c define as plain loops.
 * Every level (scalar, avx2, avx512) follows the same order with the same
 * roundings (fused multiply-add exactly where the scalar level calls fmaf,
 * and the same exp polynomial, simd/scalar/exp_canon.h), so the levels agree bit
 * for bit; tests/test_attn.c checks that with memcmp. Does not own: threads,
 * tiling or KV-cache writes (core/attn.c, core/kv.c).
 *
 * Determinism: an output element depends only on its own inputs (one query
 * row and cache rows 0..pos; one token row), never on how many rows a call
 * gets or which register block a row lands in.
 */
#ifndef TS_SIMD_OPS_H
#define TS_SIMD_OPS_H

#include <stddef.h>
#include <stdint.h>

/* Attention key blocks: online softmax runs over keys [0, 64), [64, 128), ...
 * aligned to the absolute key index, so the block boundaries a query sees
 * depend only on its position. */
#define TS_ATTN_KBLK 64
/* Keys per transposed K group in the cache (one zmm / two ymm of keys). */
#define TS_ATTN_KGRP 16
/* Largest head_dim the kernels accept (checked at session create). */
#define TS_ATTN_MAX_HD 256

/* V rows are padded to a multiple of 16 elements (pad zero-filled). */
static inline int64_t ts_attn_vstride(int64_t head_dim) { return (head_dim + 15) & ~(int64_t)15; }

/*
 * KV element types (the same order as ts_kv_type in core/tessera.h). The
 * quantized ones are llama.cpp's q8_0 and q4_0 blocks of 32 along head_dim
 * (head_dim a multiple of 32), a block's values being d * q (q8_0) or
 * d * (q - 8) (q4_0) with d an f16: every element, whatever its type, decodes
 * to an f32 exactly (an f16 or bf16 widened, d * q with at most 19 significant
 * bits), so the canonical order below is one for every type: only the decoding
 * of an element differs.
 */
enum { TS_ATTN_F16, TS_ATTN_F32, TS_ATTN_BF16, TS_ATTN_Q8_0, TS_ATTN_Q4_0, TS_ATTN_NTYPES };
static inline int ts_attn_type_quant(int t) { return t == TS_ATTN_Q8_0 || t == TS_ATTN_Q4_0; }

/*
 * Layout of one key block (64 positions) of one KV head, by type, in bytes:
 * K, f32/f16/bf16: 4 groups of 16 positions; element (j, d) at
 *   (j / 16) * head_dim * 16 + d * 16 + j % 16 elements.
 * K, q8_0: 4 groups of 16 positions of head_dim / 32 chunks of 544 bytes:
 *   the 16 positions' f16 scales, then 8 quads of dims, each 16 positions x
 *   4 bytes (dims 4i .. 4i+3 of a position together), a byte being q + 128
 *   (q in -127..127; unsigned for the int8 dot products of VNNI / AMX).
 * K, q4_0: 4 groups, chunks of 288 bytes: the 16 f16 scales, then 4 pairs of
 *   quads, each 16 positions x 4 bytes; pair p, position t, byte m: low
 *   nibble dim 8p + m, high nibble dim 8p + 4 + m, a nibble being q + 8 (so a
 *   mask gives quad 2p and a shift quad 2p + 1, both in the q8_0 order).
 * V, f32/f16/bf16: 64 rows of ts_attn_vstride(head_dim) elements, pad zero.
 * V, q4_0: 64 rows of head_dim / 32 llama.cpp blocks (18 bytes).
 * V, q8_0: head_dim / 32 chunks of 2176 bytes (32 dims of the 64 positions):
 *   the 64 positions' f16 scales, then 32 pairs of positions, each 32 dims x
 *   2 int8 (dim d of positions 2i and 2i + 1 together, for int16 pair dots).
 */
static inline size_t ts_attn_elem_bytes(int t) { return t == TS_ATTN_F32 ? 4 : 2; }
static inline size_t ts_attn_kchunk_bytes(int t) { return t == TS_ATTN_Q8_0 ? 544 : 288; }
static inline size_t ts_attn_kblock_bytes(int t, int64_t hd)
{
    if (ts_attn_type_quant(t))
        return 4 * (size_t)(hd / 32) * ts_attn_kchunk_bytes(t);
    return (size_t)(TS_ATTN_KBLK * hd) * ts_attn_elem_bytes(t);
}
/* Bytes of one position's V row (plain, q4_0); for q8_0, whose chunks
 * interleave positions, its share of the block (1/64), 34 per 32 dims. */
static inline size_t ts_attn_vrow_bytes(int t, int64_t hd)
{
    if (ts_attn_type_quant(t))
        return (size_t)(hd / 32) * (t == TS_ATTN_Q8_0 ? 34 : 18);
    return (size_t)ts_attn_vstride(hd) * ts_attn_elem_bytes(t);
}
static inline size_t ts_attn_vblock_bytes(int t, int64_t hd)
{
    return TS_ATTN_KBLK * ts_attn_vrow_bytes(t, hd);
}
/* Whether the kernels take this type at this head_dim. */
static inline int ts_attn_type_ok(int t, int64_t hd)
{
    return t >= 0 && t < TS_ATTN_NTYPES && hd >= 1 && hd <= TS_ATTN_MAX_HD &&
           (!ts_attn_type_quant(t) || hd % 32 == 0);
}
/* Write position j (0..63) of a key block (K) or a value block (V) from
 * head_dim floats: rounded to nearest even (f16, bf16, as ggml converts) or
 * quantized by llama.cpp's reference q8_0 / q4_0 quantizer (quant/). The
 * other positions of the block are untouched. simd/scalar/attn.c. */
void ts_attn_store_k(int t, void *kblock, int64_t hd, int64_t j, const float *src);
void ts_attn_store_v(int t, void *vblock, int64_t hd, int64_t j, const float *src);
/* q8_0 as llama.cpp's CPU backend quantizes at run time on x86 (its
 * quantize_row_q8_0, the KV cache writes and the flash-attention query):
 * d = amax / 127, ints = round-to-nearest-even(x * (127 / amax)); a block
 * holding NaN or +-Inf gets a NaN scale and zero ints. n a multiple of 32.
 * The KV cache and the q8_0-K queries use it on every level. */
void ts_attn_quant_q8_0(const float *x, void *blocks, int64_t n);
/* Read back element (j, d) of a block as the kernels decode it (tests, tools). */
float ts_attn_load_k(int t, const void *kblock, int64_t hd, int64_t j, int64_t d);
float ts_attn_load_v(int t, const void *vblock, int64_t hd, int64_t j, int64_t d);

/*
 * Causal attention of one KV head over the cache, for n_q consecutive queries
 * times n_grp query heads (the GQA group that shares this KV head).
 * Row (i, g), i < n_q, g < n_grp: query q + i * q_stride bytes + g * head_dim
 * floats; it attends keys 0 .. pos0 + i and writes head_dim floats at the same
 * place under out / out_stride (nothing else).
 * Cache of this KV head: key blocks of 64 positions, K of type k_type and V
 * of type v_type in the block layouts above; block b is at k + b *
 * ts_attn_kblock_bytes (resp. v + b * ts_attn_vblock_bytes) or, paged, below.
 * Keys are read up to position pos0 + n_q - 1 rounded up to a multiple of 64
 * (the cache is allocated to that padding; key slots past a row's position
 * may hold anything, NaN included: they are masked, never mixed in); values
 * only up to each row's own position. Canonical order of one row at position
 * p (simd/scalar/attn.c), k_j[d] and v_j[d] the decoded elements:
 *   s_j = fma-chain over d = 0.. of q[d] * k_j[d], times scale;
 *   per key block b: m_b = max s_j; m' = max(m, m_b); a = exp(m - m');
 *   p_j = exp(s_j - m') (0 for j > p); l = l * a + tree(lane sums of p);
 *   o[d] = o[d] * a, then o[d] = fma(p_j, v_j[d], o[d]) for j in order;
 *   finally out[d] = o[d] * (1 / l).
 * Except for a quantized (q8_0, q4_0) K cache, whose scores are integer dot
 * products, as llama.cpp computes them (the query quantized as q8_0 too):
 *   qq = ts_attn_quant_q8_0(q) (per 32-dim block b: scale dq_b, ints q_b);
 *   s_j = fma-chain over b of (float)(sum_d q_b[d] * k_jb[d]) * (dq_b * dk_jb),
 *         then times scale (the integer sum is exact, dq_b * dk_jb too: two f16).
 * And for a q8_0 V cache, P.V in integers too, per key block and 32-dim chunk c
 * of V (after o = o * a): w_j = p_j * dv_jc for the block's keys j <= p;
 *   wmax = max |w_j|; a NaN w_j or a non-finite wmax: o[d] = o[d] + NaN;
 *   wmax < 2^-100: nothing (also for 0); else sw = wmax / 32767,
 *   wq_j = round-to-nearest-even(w_j * (32767 / wmax)) (an int16),
 *   o[d] = fma((float)(sum_j wq_j * v_j[d]), sw, o[d]) (the int sum exact).
 * ts_attn_type_ok(k_type, head_dim) and (v_type, head_dim); no alignment.
 */
typedef struct {
    const float *q;
    float *out;
    const void *k, *v;
    size_t q_stride, out_stride; /* bytes */
    int64_t head_dim;
    int64_t n_q, n_grp;
    int64_t pos0;
    float scale;
    /* Paged cache (core/kv.c): key block b (positions [64b, 64b + 64)) of K
     * lives at k + pages[b] * k_page_stride bytes, V likewise. pages NULL:
     * block b is page b. A stride of 0: the blocks are contiguous (one block
     * size apart). */
    const int32_t *pages;
    size_t k_page_stride, v_page_stride;
    int k_type, v_type; /* TS_ATTN_* */
} ts_attn_args;

/* The block of key block blk, blocks of block_bytes (the stride when
 * page_stride is 0). Pointer arithmetic only: every level calls it. */
static inline const void *ts_attn_block(const void *base, const int32_t *pages,
                                        size_t page_stride, size_t block_bytes, int64_t blk)
{
    const size_t stride = page_stride ? page_stride : block_bytes;
    return (const char *)base + (size_t)(pages ? pages[blk] : blk) * stride;
}
typedef void (*ts_attn_fn)(const ts_attn_args *a);

/* RMSNorm of one row of n floats, with an optional residual add first:
 *   if add: x[i] = x[i] + add[i] (written back to x);
 *   ss = sum of (double)(x[i] * x[i]) in 16 double lane sums (lane i % 16,
 *        i order) combined by the halving tree (lane j += lane j + 8, +4, +2, +1);
 *   sc = 1 / sqrtf((float)(ss / n) + eps); y[i] = (x[i] * sc) * w[i].
 * add is read in a first pass, so y may alias x or add. n >= 1, no alignment. */
typedef void (*ts_rmsnorm_fn)(float *x, const float *add, const float *w, float *y, int64_t n,
                              float eps);

/* RoPE in place on n_head heads of head_dim floats at x (contiguous heads).
 * cs: cos[0 .. n_rot/2) then sin[0 .. n_rot/2) (planar). Pair i rotates
 * (2i, 2i+1), or (i, i + n_rot/2) when neox:
 *   x0' = x0 * c - x1 * s;  x1' = x0 * s + x1 * c   (products rounded, no fma).
 * Dims >= n_rot are untouched. n_rot even, <= head_dim. */
typedef void (*ts_rope_fn)(float *x, const float *cs, int64_t n_head, int64_t head_dim,
                           int64_t n_rot, int neox);

/* SwiGLU in place: a[i] = (a[i] / (1 + exp_canon(-a[i]))) * b[i], i < n. */
typedef void (*ts_swiglu_fn)(float *a, const float *b, int64_t n);

/* The gated delta rule over n tokens of one value head (core/gdn.c), state
 * S (ds x ds, row i = key i, value j contiguous) in place. Token t's q, k, v
 * (ds floats each) start at q, k, v + t * x_stride bytes, its decay and beta
 * at decay, beta + t * g_stride bytes, its output at o + t * o_stride bytes:
 *   S_ij = S_ij * decay;  a_j = sum_i S_ij * k_i  (i ascending, a_j from 0);
 *   d_j = (v_j - a_j) * beta;
 *   S_ij = S_ij + k_i * d_j;  b_j = sum_i S_ij * q_i  (i ascending);
 *   o_j = b_j * scale.
 * Every product and sum rounded on its own (no fma; S_ij * decay may be
 * computed twice, the same product). Column j of S evolves on
 * its own, so a SIMD level may run blocks of columns through all n tokens
 * (the block stays in L1) with lanes across j: each o_j and S_ij is these
 * operations in this order on every level. 1 <= ds <= TS_GDN_SCAN_MAX_DS,
 * n >= 1, no alignment; o may not alias the inputs. */
#define TS_GDN_SCAN_MAX_DS 512
typedef void (*ts_gdn_scan_fn)(float *S, int64_t ds, int64_t n, const float *q, const float *k,
                               const float *v, size_t x_stride, const float *decay,
                               const float *beta, size_t g_stride, float scale, float *o,
                               size_t o_stride);

typedef struct {
    ts_attn_fn attn; /* every KV type (ts_attn_args.k_type, v_type) */
    ts_rmsnorm_fn rmsnorm;
    ts_rope_fn rope;
    ts_swiglu_fn swiglu;
    const char *attn_name, *rmsnorm_name, *rope_name, *swiglu_name;
    ts_gdn_scan_fn gdn_scan;
    const char *gdn_scan_name;
} ts_ops;

#endif
