/*
 * core/dense.c: OpenBLAS for dense float layers; the only file that includes
 * cblas.h (STYLE §2, §6).
 *
 * Owns: the TESSERA_BLAS switch, OpenBLAS's thread count, the two calling
 * modes (THREADED: one cblas_sgemm from the orchestrating thread while our
 * workers are blocked; TILE: single-threaded cblas_sgemm per row tile on our
 * workers), the info string. Does not own: the deterministic tile path
 * (core/matmul.c, which calls in here only when a ts_mm has BLAS enabled).
 * Invariants: never called from inside a tile; OpenBLAS's thread count is set
 * only at plan time (ts_dense_blas_setup); results are not bit-deterministic
 * across chunk sizes (tests bound them by NMSE against the tile path).
 *
 * OpenBLAS is dlopen'ed at the first plan that enables it, not linked: a
 * linked OpenBLAS starts its thread pool in a load-time constructor, so every
 * process had its threads (and, under a memory limit, an exit handler that
 * spun on a failed allocation) even with BLAS off, which is the default.
 * cblas.h is included for its types and constants only; every call goes
 * through the pointers below.
 */
#include "dense.h"

#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shared object Debian's libopenblas0-pthread installs (through
 * alternatives), then the development link name. */
static const char *const blas_sonames[] = {"libopenblas.so.0", "libopenblas.so"};

static struct {
    void (*sgemm)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, blasint, blasint,
                  blasint, float, const float *, blasint, const float *, blasint, float, float *,
                  blasint);
    void (*set_num_threads)(int);
    int (*get_num_threads)(void);
    char *(*get_config)(void);
    int (*get_parallel)(void);
    bool ok;
    char why[200];
} g_blas;
static pthread_once_t g_blas_once = PTHREAD_ONCE_INIT;

/* Casting dlsym's void * to a function pointer is POSIX-sanctioned; the
 * memcpy keeps -Wpedantic quiet about it. */
static bool sym(void *h, const char *name, void *fn_ptr, size_t size)
{
    void *p = dlsym(h, name);
    if (!p) {
        snprintf(g_blas.why, sizeof(g_blas.why), "%s: no symbol %s", blas_sonames[0], name);
        return false;
    }
    memcpy(fn_ptr, &p, size);
    return true;
}

static void blas_load_once(void)
{
    void *h = NULL;
    for (size_t i = 0; !h && i < sizeof(blas_sonames) / sizeof(blas_sonames[0]); i++)
        h = dlopen(blas_sonames[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(g_blas.why, sizeof(g_blas.why), "%s", e ? e : "dlopen failed");
        return;
    }
    g_blas.ok = sym(h, "cblas_sgemm", &g_blas.sgemm, sizeof(g_blas.sgemm)) &&
                sym(h, "openblas_set_num_threads", &g_blas.set_num_threads,
                    sizeof(g_blas.set_num_threads)) &&
                sym(h, "openblas_get_num_threads", &g_blas.get_num_threads,
                    sizeof(g_blas.get_num_threads)) &&
                sym(h, "openblas_get_config", &g_blas.get_config, sizeof(g_blas.get_config)) &&
                sym(h, "openblas_get_parallel", &g_blas.get_parallel,
                    sizeof(g_blas.get_parallel));
}

const char *ts_dense_blas_load(void)
{
    pthread_once(&g_blas_once, blas_load_once);
    return g_blas.ok ? NULL : g_blas.why;
}


#include "../quant/quant.h"

/* Below this many tokens the tile path runs: at n = 1 it is 4-6x faster than
 * cblas_sgemm (Xeon 16 cores, 2026-11-22, bench/RESULTS.md "Dense float
 * layers"); values between 1 and 512 were not swept. */
#define DENSE_MIN_TOK 16
#define DENSE_ROW_ALIGN 16 /* TILE mode: row tiles in multiples of 16 rows */

int ts_dense_blas_parse(const char *s)
{
    if (!s || !*s || strcmp(s, "0") == 0)
        return TS_DENSE_BLAS_OFF;
    if (strcmp(s, "1") == 0 || strcmp(s, "threaded") == 0)
        return TS_DENSE_BLAS_THREADED;
    if (strcmp(s, "tile") == 0)
        return TS_DENSE_BLAS_TILE;
    return -1;
}

ts_dense_blas_mode ts_dense_blas_env(void)
{
    const int m = ts_dense_blas_parse(getenv("TESSERA_BLAS"));
    return m < 0 ? TS_DENSE_BLAS_OFF : (ts_dense_blas_mode)m;
}

void ts_dense_blas_setup(ts_dense_blas_mode mode, uint32_t n_threads)
{
    if (mode == TS_DENSE_BLAS_OFF || ts_dense_blas_load())
        return;
    int want = mode == TS_DENSE_BLAS_TILE ? 1 : (int)(n_threads ? n_threads : 1);
    if (g_blas.get_num_threads() != want)
        g_blas.set_num_threads(want);
}

bool ts_dense_accepts(ts_dense_blas_mode mode, const ts_qview *w, int64_t n_tok)
{
    /* Without the library (refused at engine creation) every product stays
     * on the exact tile path. */
    return mode != TS_DENSE_BLAS_OFF && g_blas.ok && w->qtype == TS_QTYPE_F32 &&
           n_tok >= DENSE_MIN_TOK &&
           w->row_stride % sizeof(float) == 0 && w->rows > 0 && w->cols > 0;
}

void ts_dense_sgemm(int64_t m, int64_t n, int64_t k, const float *w, size_t w_stride,
                    const float *x, size_t x_stride, float *y, size_t y_stride)
{
    if (ts_dense_blas_load()) /* callers went through accepts or load: not reached */
        return;
    g_blas.sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)n, (blasint)m, (blasint)k,
                 1.0f, x, (blasint)(x_stride / sizeof(float)), w,
                (blasint)(w_stride / sizeof(float)), 0.0f, y, (blasint)(y_stride / sizeof(float)));
}

typedef struct {
    const ts_qview *w;
    const float *x;
    size_t x_stride;
    int64_t n_tok;
    float *y;
    size_t y_stride;
} dense_ctx;

/* TILE mode: rows [row0, row0 + rows) for every token, OpenBLAS single-threaded. */
static void dense_tile(void *vctx, const ts_tile *t, ts_scratch *s)
{
    const dense_ctx *c = vctx;
    (void)s;
    ts_dense_sgemm(t->rows, c->n_tok, c->w->cols,
                   (const float *)((const char *)c->w->data + (size_t)t->row0 * c->w->row_stride),
                   c->w->row_stride, c->x, c->x_stride, c->y + t->row0, c->y_stride);
}

void ts_dense_run(ts_dense_blas_mode mode, ts_pool *pool, ts_tile *tiles, uint32_t cap,
                  const ts_qview *w, const float *x, size_t x_stride, int64_t n_tok, float *y,
                  size_t y_stride)
{
    if (mode != TS_DENSE_BLAS_TILE || !pool) {
        ts_dense_sgemm(w->rows, n_tok, w->cols, w->data, w->row_stride, x, x_stride, y,
                       y_stride);
        return;
    }
    /* Two row tiles per worker (ts_grid_run runs smaller grids inline). */
    dense_ctx c = {w, x, x_stride, n_tok, y, y_stride};
    int64_t units = (w->rows + DENSE_ROW_ALIGN - 1) / DENSE_ROW_ALIGN;
    int64_t parts = 2 * (int64_t)ts_pool_n_workers(pool);
    if (parts > units)
        parts = units;
    if (parts > (int64_t)cap)
        parts = cap;
    ts_grid g = {.tiles = tiles, .n_tiles = 0, .cap = cap};
    for (int64_t p = 0; p < parts; p++) {
        int64_t r0 = units * p / parts * DENSE_ROW_ALIGN;
        int64_t r1 = units * (p + 1) / parts * DENSE_ROW_ALIGN;
        if (r1 > w->rows)
            r1 = w->rows;
        if (r1 > r0)
            tiles[g.n_tiles++] = (ts_tile){.row0 = (uint32_t)r0, .rows = (uint32_t)(r1 - r0),
                                           .toks = (uint32_t)n_tok};
    }
    ts_grid_run(pool, &g, dense_tile, &c);
}

const char *ts_dense_blas_info(void)
{
    static char buf[320];
    const char *why = ts_dense_blas_load();
    if (why) {
        snprintf(buf, sizeof(buf), "unavailable (%s)", why);
        return buf;
    }
    int par = g_blas.get_parallel();
    const char *pname = par == 0 ? "serial" : par == 1 ? "pthreads" : par == 2 ? "openmp" : "?";
    snprintf(buf, sizeof(buf), "%s | parallel=%s threads=%d", g_blas.get_config(), pname,
             g_blas.get_num_threads());
    return buf;
}
