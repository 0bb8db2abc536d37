/*
 * core/matmul.h: quantized matrix multiplication as the engine sees it.
 *
 * y[tok][row] = sum_k W[row][k] * x[tok][k] for a weight matrix W stored in
 * its GGUF type. The implementation quantizes activations once per call into
 * the weight type's activation format (Q8_0/Q8_1/Q8_K, or keeps f32 for
 * float weights), builds a tile grid (row blocks x token blocks) and runs it
 * on the pool through the ts_kernels table.
 *
 * Determinism contract: the value written for (tok, row) depends only on
 * W's row and x's row tok: not on n_tok, the tiling, the thread count or the
 * ISA-independent blocking. Every kernel of a weight type (NY = 1 included)
 * uses the same per-output reduction order.
 */
#ifndef TS_MATMUL_H
#define TS_MATMUL_H

#include "tessera.h"
#include "../sched/sched.h"
#include "../simd/kernels.h"

struct ts_qplace; /* core/place.h */

/* A view of a 2-D weight matrix (rows x cols) in a GGUF type. */
typedef struct {
    const void *data;
    uint32_t qtype;
    int64_t rows, cols;
    size_t row_stride; /* bytes */
    const struct ts_qplace *place; /* per-node copies (core/place.h); NULL = data only */
} ts_qview;

typedef struct ts_mm ts_mm;

/* The process's kernel table: filled once (TESSERA_ISA caps the level),
 * read-only afterwards. Every core/ user captures this pointer at plan time. */
const ts_kernels *ts_mm_kernels(void);
/* What the table's tuning chose (core/ktune.c), "" when nothing was timed. */
const char *ts_mm_tune_report(void);

/* Workspace for activations of up to max_tok tokens of up to max_k inputs. */
ts_status ts_mm_create(ts_mm **out, ts_pool *pool, int64_t max_tok, int64_t max_k, ts_err *err);
void ts_mm_destroy(ts_mm *mm);
/* True when this build has kernels for weights of qtype. */
bool ts_mm_supports(uint32_t qtype);
/* Plan time: mode is a ts_dense_blas_mode (core/dense.h). Non-zero sends F32
 * weights with enough tokens to OpenBLAS (not bit-deterministic across chunk
 * sizes); 0, the default unless TESSERA_BLAS is set, keeps the tile path. */
void ts_mm_set_blas(ts_mm *mm, int mode);
/* Optional, at load: when this process's kernel level has an interleaved
 * layout for w->qtype (x86 avx512/amx: Q8_0, Q4_0, Q4_K, Q6_K, simd/repack.h), repacks
 * w into a new buffer and sets *out to a view of it (qtype an id >=
 * TS_QTYPE_COUNT, same rows/cols, row_stride = the row's share of its 16-row
 * group) and *owned to the buffer, freed with ts_mm_release. Otherwise *out =
 * *w and *owned = NULL. Either view goes to ts_mm_run and gives the same bits.
 * The view is for ts_mm_run only (not ts_dequantize_row / row lookups). */
ts_status ts_mm_prepare(const ts_qview *w, ts_qview *out, void **owned, ts_err *err);
void ts_mm_release(void *owned);
/* ts_mm_prepare in two steps, so one matrix's repack can be split across
 * threads: _alloc sets *out and *owned as ts_mm_prepare (buffer not filled);
 * _fill repacks rows [row0, row0 + rows) (row0 a multiple of 16; disjoint
 * ranges may run concurrently); a no-op when out is w's own layout. */
ts_status ts_mm_prepare_alloc(const ts_qview *w, ts_qview *out, void **owned, ts_err *err);
void ts_mm_prepare_fill(const ts_qview *w, const ts_qview *out, int64_t row0, int64_t rows);
/* x: (n_tok, w->cols) f32 rows, x_stride bytes apart; y: (n_tok, w->rows),
 * y_stride bytes apart. n_tok <= max_tok, w->cols <= max_k (checked at plan
 * time by the caller). */
void ts_mm_run(ts_mm *mm, const ts_qview *w, const float *x, size_t x_stride, int64_t n_tok,
               float *y, size_t y_stride);
/* n_w (<= TS_MM_MULTI_MAX) matrices that share the input x (same cols): x is
 * quantized once per activation format and one grid runs every matrix's
 * tiles; y[i] (y_stride[i]) gets w[i]'s output. Same bits as n_w ts_mm_run
 * calls (a BLAS-routed matrix makes it fall back to exactly those calls). */
#define TS_MM_MULTI_MAX 4
void ts_mm_run_multi(ts_mm *mm, const ts_qview *const *w, float *const *y,
                     const size_t *y_stride, int n_w, const float *x, size_t x_stride,
                     int64_t n_tok);
/* The quantization folded into the caller's own token grid, one grid join
 * fewer per matmul (the pool's per-grid cost is what bounds scaling):
 * ts_mm_quantize_rows writes rows [tok0, tok0 + n) of x into every
 * activation format w[0..n_w) reads, the same bytes ts_mm_run_multi's own pass
 * writes; disjoint row ranges may run concurrently (from token tiles). Then
 * ts_mm_run_multi_quantized, with the same w, x and x_stride and every row
 * below n_tok so quantized since the last ts_mm_* run, skips that pass. Same
 * bits as ts_mm_run_multi. */
void ts_mm_quantize_rows(ts_mm *mm, const ts_qview *const *w, int n_w, const float *x,
                         size_t x_stride, int64_t tok0, int64_t n);
void ts_mm_run_multi_quantized(ts_mm *mm, const ts_qview *const *w, float *const *y,
                               const size_t *y_stride, int n_w, const float *x,
                               size_t x_stride, int64_t n_tok);

/* For quantizing x in column slices from the tiles that write them: the
 * activation block of the format w reads (32 or 256), or 0 when w's n_tok
 * run reads f32 (float weights, BLAS) and needs no quantization.
 * ts_mm_quantize_cols writes columns [c0, c0 + n) (multiples of that block)
 * of rows [tok0, tok0 + toks): the bytes ts_mm_quantize_rows writes there.
 * Once every column of rows below n_tok is so written,
 * ts_mm_run_multi_quantized({w}) reads them. */
int64_t ts_mm_act_block(const ts_mm *mm, const ts_qview *w, int64_t n_tok);
void ts_mm_quantize_cols(ts_mm *mm, const ts_qview *w, const float *x, size_t x_stride,
                         int64_t tok0, int64_t toks, int64_t c0, int64_t n);
/* ts_mm_run_multi_quantized plus an epilogue: after a tile's kernel wrote
 * rows [row0, row0 + rows) of matrix i for tokens [tok0, tok0 + toks), the
 * same worker calls epi(epi_ctx, i, row0, rows, tok0, toks) on them (so
 * per-row work runs while the rows are in cache, without a grid of its own).
 * Row blocks are multiples of align (and of the kernel's MR). Tiles run
 * concurrently: epi may touch only its tile's rows and tokens (and data that
 * no other tile touches). Where the fused grid cannot serve, the matmuls run
 * as ts_mm_run_multi_quantized and then epi over whole rows. */
typedef void (*ts_mm_epi_fn)(void *epi_ctx, int i, int64_t row0, int64_t rows, int64_t tok0,
                             int64_t toks);
void ts_mm_run_multi_quantized_epi(ts_mm *mm, const ts_qview *const *w, float *const *y,
                                   const size_t *y_stride, int n_w, const float *x,
                                   size_t x_stride, int64_t n_tok, int64_t align,
                                   ts_mm_epi_fn epi, void *epi_ctx);
/* The dense FFN's first half in one grid: tiles of row block x token block
 * each run gate's and up's kernels on the same rows, then, while the two
 * outputs are in cache, a[tok][r] = swiglu(a, b) over the tile's rows and
 * the result quantized (block by block, the bytes ts_mm_quantize_rows writes)
 * for the matmul that reads a next (down), which then runs through
 * ts_mm_run_multi_quantized. Row blocks are multiples of down's activation
 * block, so every quantized block lies in one tile. x as for
 * ts_mm_run_multi_quantized (rows already quantized for gate and up). Same
 * bits as ts_mm_run_multi(gate, up), a swiglu pass and ts_mm_quantize_rows;
 * where the fused tiles cannot serve (a BLAS-routed or slot-less matrix,
 * shapes that differ) it runs exactly those steps. */
void ts_mm_run_glu_quantized(ts_mm *mm, const ts_qview *gate, const ts_qview *up,
                             const float *x, size_t x_stride, int64_t n_tok, float *a, float *b,
                             size_t ab_stride, ts_swiglu_fn swiglu, const ts_qview *down);

#endif
