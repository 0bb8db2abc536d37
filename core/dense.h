/*
 * core/dense.h: OpenBLAS-backed dense float layers (the only cblas user).
 *
 * y[tok][row] = sum_k W[row][k] * x[tok][k] for F32 weights through
 * cblas_sgemm, as an opt-in alternative to the deterministic tile path of
 * core/matmul.c. OFF by default: OpenBLAS's blocking (and so its rounding)
 * depends on the shapes and thread count, so its bits change with the chunk
 * size; tests hold it to an NMSE bound against the tile path instead.
 * Modes (STYLE §6):
 *   THREADED  cblas_sgemm from the orchestrating thread with OpenBLAS's own
 *             threads (count = pool size, set once at setup) while the pool's
 *             workers are blocked (spin TESSERA_SPIN_US, then futex).
 *   TILE      OpenBLAS single-threaded, one cblas_sgemm per row tile on our
 *             pool's workers.
 * OpenBLAS (pthread build) starts its threads when the library loads, before
 * ts_pool_create pins the caller, so they keep the process's full CPU mask.
 */
#ifndef TS_DENSE_H
#define TS_DENSE_H

#include "matmul.h"

typedef enum {
    TS_DENSE_BLAS_OFF = 0,
    TS_DENSE_BLAS_THREADED = 1,
    TS_DENSE_BLAS_TILE = 2,
} ts_dense_blas_mode;

/* A TESSERA_BLAS value: NULL, "" or "0": OFF; "1": the default mode,
 * THREADED (as fast as TILE or faster on a 16-core Xeon, 2026-11-22, and the
 * only one STYLE §6 allows: bench/RESULTS.md "Dense float layers");
 * "threaded"; "tile" (kept to re-measure). Anything else: -1 (the engine
 * refuses it at creation). */
int ts_dense_blas_parse(const char *s);
/* The mode TESSERA_BLAS asks for (an unusable value: OFF). */
ts_dense_blas_mode ts_dense_blas_env(void);
/* Plan time: sets OpenBLAS's thread count for mode (n_threads for THREADED,
 * 1 for TILE). Process-wide (OpenBLAS has one count); call before running. */
void ts_dense_blas_setup(ts_dense_blas_mode mode, uint32_t n_threads);
/* True when ts_dense_run takes this product: F32 weights, n_tok >= the
 * measured minimum, 4-byte-multiple strides. */
bool ts_dense_accepts(ts_dense_blas_mode mode, const ts_qview *w, int64_t n_tok);
/* Runs the product (x: (n_tok, w->cols) f32, y: (n_tok, w->rows) f32; strides
 * in bytes). TILE mode builds its grid in tiles[0 .. cap). Call from the
 * thread that owns the pool, never from inside a tile. */
void ts_dense_run(ts_dense_blas_mode mode, ts_pool *pool, ts_tile *tiles, uint32_t cap,
                  const ts_qview *w, const float *x, size_t x_stride, int64_t n_tok, float *y,
                  size_t y_stride);
/* Row-major y (n, m) = x (n, k) * W (m, k)^T with float strides in bytes: the
 * bare cblas_sgemm, for benches (bench/ must not include cblas.h). */
void ts_dense_sgemm(int64_t m, int64_t n, int64_t k, const float *w, size_t w_stride,
                    const float *x, size_t x_stride, float *y, size_t y_stride);
/* Loads OpenBLAS (once; its threads start then, not before): NULL when it is
 * usable, else why not. Setup calls it for any mode but OFF. */
const char *ts_dense_blas_load(void);
/* "OpenBLAS 0.3.21 ... | parallel=pthreads threads=2" for `tessera info`
 * (loads the library). */
const char *ts_dense_blas_info(void);

#endif
