/*
 * core/matmul.c: ts_mm, quantized matmul orchestration over the kernel table.
 *
 * Owns: the activation buffers (one per activation format, sized for
 * max_tok x max_k at create, plus a spare set for the fused GLU grid), the
 * tile storage, and the grids of a call: (1) quantize x once, tiles over
 * tokens (skipped where the caller's own tiles quantized it); (2) GEMM,
 * tiles of row blocks x token blocks, each calling the weight type's tile
 * kernel, optionally followed by an epilogue on the tile's outputs, or by
 * SwiGLU and the next matmul's quantization (ts_mm_run_glu_quantized). Does
 * not own: kernels (simd/), threads (sched/).
 * Invariants: the kernel table is filled once (first create) and read through
 * a const pointer captured at create. Tiles write disjoint outputs; every tile
 * kernel follows its type's canonical per-output order, so y's bits do not
 * depend on n_tok, the tiling, the thread count or which worker ran a tile.
 * Every type ts_mm_supports() accepts has a kernel slot at every level
 * (simd/ ts_kernels_required(), IQ2_XXS included), so there is no fallback.
 */
#include "matmul.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "dense.h"
#include "ktune.h"
#include "err.h"
#include "place.h"
#include "../quant/quant.h"
#include "../simd/kernels.h"
#include "../simd/repack.h"

#define MM_TILE_CAP 8192u
#define MM_TOK_BLOCK 64   /* max tokens per tile: a token block's act rows stay in L2 */
#define MM_ROW_BLOCK 64   /* rows per tile before splitting for more parallelism */
/* GEMM tiles wanted per worker at least: slack for the dynamic cursor to even
 * out workers of unequal speed at a grid's end. More tiles raise the workers'
 * busy share but add per-tile work (activation passes, AMX expansions) that
 * cancels it: llama-1b Q4_K_M pp512, 16 threads, Xeon VM, 2026-11-22, three
 * alternated rounds, t/s (busy): 4 per worker 1770 / 1813 / 2022 (90.3%),
 * 8: 1678 / 1832 / 2086 (92.3%), 16: 1680 / 1890 / 1787 (94.8%). */
#define MM_GEMM_TILES_PER_WORKER 4

static ts_kernels g_kernels;
static pthread_once_t g_kernels_once = PTHREAD_ONCE_INIT;

static char g_tune_report[512];

static void kernels_init_once(void)
{
    ts_kernels_init(&g_kernels, ts_isa_from_env());
    /* AMX and avx512 kernels give the same bits, and which is faster varies
     * between the lent Xeon VMs (core/ktune.c). */
    if (g_kernels.isa == TS_ISA_AMX && ts_ktune_parse(getenv("TESSERA_KTUNE")) == 1) {
        ts_kernels alt;
        ts_kernels_init(&alt, TS_ISA_AVX512);
        ts_kernels_tune(&g_kernels, &alt, g_tune_report, sizeof(g_tune_report));
    }
}

const char *ts_mm_tune_report(void)
{
    pthread_once(&g_kernels_once, kernels_init_once);
    return g_tune_report;
}

const ts_kernels *ts_mm_kernels(void)
{
    pthread_once(&g_kernels_once, kernels_init_once);
    return &g_kernels;
}

struct ts_mm {
    ts_pool *pool;
    const ts_kernels *kern;
    int64_t max_tok, max_k;
    void *act[TS_ACT_COUNT];        /* (max_tok, act_stride[f]) quantized rows */
    void *act_next[TS_ACT_COUNT];   /* the same, written by fused GLU tiles while
                                     * act is still read; swapped in after */
    size_t act_stride[TS_ACT_COUNT];
    ts_tile *tiles;                 /* (MM_TILE_CAP) */
    ts_dense_blas_mode blas;        /* OFF unless TESSERA_BLAS / ts_mm_set_blas */
};

static size_t pad64(size_t n) { return (n + 63) & ~(size_t)63; }

ts_status ts_mm_create(ts_mm **out, ts_pool *pool, int64_t max_tok, int64_t max_k, ts_err *err)
{
    *out = NULL;
    if (max_tok <= 0 || max_k <= 0)
        return ts_err_set(err, TS_E_ARG, "ts_mm_create: max_tok=%lld max_k=%lld",
                          (long long)max_tok, (long long)max_k);
    pthread_once(&g_kernels_once, kernels_init_once);
    ts_mm *mm = calloc(1, sizeof(*mm));
    if (!mm)
        return ts_err_set(err, TS_E_NOMEM, "ts_mm_create: out of memory");
    mm->pool = pool;
    mm->kern = &g_kernels;
    mm->max_tok = max_tok;
    mm->max_k = max_k;
    bool ok = true;
    for (int f = TS_ACT_Q8_0; f < TS_ACT_COUNT; f++) {
        const ts_qtraits *tr = ts_qtype_traits(ts_act_qtype(f));
        /* Row bytes for max_k rounded up to whole blocks (smaller k fit too). */
        uint64_t n_blk = ((uint64_t)max_k + tr->blck - 1) / tr->blck;
        mm->act_stride[f] = pad64((size_t)n_blk * tr->size);
        mm->act[f] = aligned_alloc(64, mm->act_stride[f] * (size_t)max_tok);
        mm->act_next[f] = aligned_alloc(64, mm->act_stride[f] * (size_t)max_tok);
        ok = ok && mm->act[f] && mm->act_next[f];
    }
    mm->tiles = calloc(MM_TILE_CAP, sizeof(ts_tile));
    ok = ok && mm->tiles;
    if (!ok) {
        ts_mm_destroy(mm);
        return ts_err_set(err, TS_E_NOMEM, "ts_mm_create: out of memory (max_tok=%lld max_k=%lld)",
                          (long long)max_tok, (long long)max_k);
    }
    ts_mm_set_blas(mm, (int)ts_dense_blas_env());
    *out = mm;
    return TS_OK;
}

void ts_mm_set_blas(ts_mm *mm, int mode)
{
    mm->blas = (ts_dense_blas_mode)mode;
    ts_dense_blas_setup(mm->blas, mm->pool ? ts_pool_n_workers(mm->pool) : 1);
}

void ts_mm_destroy(ts_mm *mm)
{
    if (!mm)
        return;
    for (int f = 0; f < TS_ACT_COUNT; f++) {
        free(mm->act[f]);
        free(mm->act_next[f]);
    }
    free(mm->tiles);
    free(mm);
}

bool ts_mm_supports(uint32_t qtype)
{
    const ts_qtraits *tr = ts_qtype_traits(qtype);
    /* Activation formats (Q8_K, Q8_1) are not required slots: excluded. */
    return tr && tr->supported && ts_kernels_required(qtype);
}

typedef struct {
    const ts_mm *mm;
    const ts_qview *w;
    const ts_gemm_slot *slot;
    const float *x;
    size_t x_stride;
    const void *act; /* quantized rows, or x for f32 */
    size_t act_stride;
    float *y;
    size_t y_stride;
} run_ctx;

static void quant_tile(void *vctx, const ts_tile *t, ts_scratch *s)
{
    const run_ctx *c = vctx;
    (void)s;
    ts_quant_act_fn q = c->mm->kern->quant_act[c->slot->act];
    for (uint32_t tok = t->tok0; tok < t->tok0 + t->toks; tok++)
        q((const float *)((const char *)c->x + (size_t)tok * c->x_stride),
          (char *)c->act + (size_t)tok * c->act_stride, c->w->cols);
}

static void gemm_tile(void *vctx, const ts_tile *t, ts_scratch *s)
{
    const run_ctx *c = vctx;
    (void)s;
    c->slot->fn(c->w->cols, t->rows, t->toks,
                ts_qplace_rows(c->w, t, s), c->w->row_stride, /* its node's copy */
                (const char *)c->act + (size_t)t->tok0 * c->act_stride, c->act_stride,
                (float *)((char *)c->y + (size_t)t->tok0 * c->y_stride) + t->row0, c->y_stride);
}

static void run_grid(ts_mm *mm, const ts_grid *g, ts_tile_fn fn, void *c)
{
    if (mm->pool) {
        ts_grid_run(mm->pool, g, fn, c);
        return;
    }
    for (uint32_t i = 0; i < g->n_tiles; i++)
        fn(c, &g->tiles[i], NULL);
}

/* Splits n into parts nearly equal blocks; block b is [*b0, *b0 + *bn). */
static void split(int64_t n, int64_t parts, int64_t b, int64_t align, int64_t *b0, int64_t *bn)
{
    int64_t units = (n + align - 1) / align;
    int64_t lo = units * b / parts, hi = units * (b + 1) / parts;
    *b0 = lo * align;
    *bn = (hi * align < n ? hi * align : n) - *b0;
}

/* Appends w's GEMM tiles (matrix index e in ts_tile.expert) to g: token
 * blocks of <= MM_TOK_BLOCK or the slot's gemm_tok_block (nearly equal,
 * multiples of the kernel's NY where possible), row blocks in multiples of
 * lcm(MR, align); min_parts: the row blocks wanted at least (for every
 * worker to have tiles when the matrices allow). Token-block-major order, or
 * row-block-major (rb_major: consecutive tiles, taken by different workers
 * at once, share their weight rows). */
static void add_gemm_tiles(ts_mm *mm, ts_grid *g, const ts_qview *w, const ts_gemm_slot *slot,
                           uint32_t e, int64_t n_tok, int64_t min_parts, int64_t align,
                           bool rb_major)
{
    const int64_t kmr = slot && slot->fn ? slot->mr : 1;
    int64_t mr = kmr;
    if (align > 1) { /* row blocks in multiples of lcm(MR, align) */
        mr = align;
        while (mr % kmr)
            mr += align;
    }
    const int64_t ny = slot && slot->fn ? slot->ny : 1;
    const uint16_t want = slot && slot->fn && w->qtype < TS_GEMM_SLOTS
                              ? mm->kern->gemm_tok_block[w->qtype] : 0;
    const int64_t tok_block = want ? want : MM_TOK_BLOCK;
    int64_t tok_parts = (n_tok + tok_block - 1) / tok_block;
    int64_t row_units = (w->rows + mr - 1) / mr;
    /* Wide-MR kernels (_R16: 16 rows) get >= 8 row groups per tile, so their
     * per-tile activation pass is amortized. */
    int64_t row_block = MM_ROW_BLOCK > 8 * kmr ? MM_ROW_BLOCK : 8 * kmr;
    row_block = (row_block + mr - 1) / mr * mr;
    int64_t row_parts = (w->rows + row_block - 1) / row_block;
    if (row_parts * tok_parts < min_parts)
        row_parts = (min_parts + tok_parts - 1) / tok_parts;
    if (row_parts > row_units)
        row_parts = row_units;
    const int64_t room = (int64_t)MM_TILE_CAP - g->n_tiles;
    if (ts_qplace_n_blocks(w, row_parts) * tok_parts > room)
        row_parts = room / tok_parts - ts_qplace_n_blocks(w, 0);
    const int64_t n_rb = ts_qplace_n_blocks(w, row_parts);
    for (int64_t i = 0; i < tok_parts * n_rb; i++) {
        const int64_t tb = rb_major ? i % tok_parts : i / n_rb;
        const int64_t rb = rb_major ? i / tok_parts : i % n_rb;
        int64_t t0, tn, r0, rn;
        uint16_t node; /* NUMA placement: blocks cut inside each node's rows */
        split(n_tok, tok_parts, tb, n_tok >= ny * tok_parts ? ny : 1, &t0, &tn);
        ts_qplace_row_block(w, row_parts, rb, mr, &r0, &rn, &node);
        if (rn <= 0 || tn <= 0)
            continue;
        mm->tiles[g->n_tiles++] = (ts_tile){.expert = e, .row0 = (uint32_t)r0,
                                            .rows = (uint32_t)rn, .tok0 = (uint32_t)t0,
                                            .toks = (uint32_t)tn, .node = node};
    }
}

/* Appends parts nearly equal token tiles of matrix e (all rows) to g. */
static void add_tok_tiles(ts_mm *mm, ts_grid *g, uint32_t e, int64_t n_tok, int64_t parts)
{
    if (parts > n_tok)
        parts = n_tok;
    for (int64_t p = 0; p < parts; p++) {
        int64_t t0, tn;
        split(n_tok, parts, p, 1, &t0, &tn);
        mm->tiles[g->n_tiles++] = (ts_tile){.expert = e, .tok0 = (uint32_t)t0,
                                            .toks = (uint32_t)tn};
    }
}

/* Quantizes x's n_tok rows into c->act (tiles over tokens). */
static void quantize_act(ts_mm *mm, ts_grid *g, run_ctx *c, int64_t n_tok)
{
    const uint32_t n_workers = mm->pool ? ts_pool_n_workers(mm->pool) : 1;
    /* 4 tiles per worker once there are 2 tokens per worker: the grid then
     * runs on the pool instead of inline (sched runs < 2 per worker inline). */
    g->n_tiles = 0;
    add_tok_tiles(mm, g, 0, n_tok,
                  n_tok >= 2 * (int64_t)n_workers ? 4 * (int64_t)n_workers : n_workers);
    run_grid(mm, g, quant_tile, c);
}

void ts_mm_run(ts_mm *mm, const ts_qview *w, const float *x, size_t x_stride, int64_t n_tok,
               float *y, size_t y_stride)
{
    if (n_tok <= 0 || w->rows <= 0)
        return;
    if (ts_dense_accepts(mm->blas, w, n_tok)) { /* opt-in OpenBLAS path (core/dense.c) */
        ts_dense_run(mm->blas, mm->pool, mm->tiles, MM_TILE_CAP, w, x, x_stride, n_tok, y,
                     y_stride);
        return;
    }
    const ts_gemm_slot *slot = w->qtype < TS_GEMM_SLOTS ? &mm->kern->gemm[w->qtype] : NULL;
    run_ctx c = {.mm = mm, .w = w, .slot = slot, .x = x, .x_stride = x_stride,
                 .y = y, .y_stride = y_stride};
    ts_grid g = {.tiles = mm->tiles, .n_tiles = 0, .cap = MM_TILE_CAP};
    const uint32_t n_workers = mm->pool ? ts_pool_n_workers(mm->pool) : 1;

    /* 1. Activations: quantize each token row once (tiles over tokens). */
    if (slot && slot->fn && slot->act != TS_ACT_F32) {
        c.act = mm->act[slot->act];
        c.act_stride = mm->act_stride[slot->act];
        quantize_act(mm, &g, &c, n_tok);
    } else {
        c.act = x;
        c.act_stride = x_stride;
    }
    /* 2. GEMM: row blocks x token blocks. */
    g.n_tiles = 0;
    add_gemm_tiles(mm, &g, w, slot, 0, n_tok, MM_GEMM_TILES_PER_WORKER * (int64_t)n_workers, 1,
                   false);
    run_grid(mm, &g, gemm_tile, &c);
}

typedef struct {
    run_ctx c[TS_MM_MULTI_MAX];
    ts_mm_epi_fn epi; /* optional: runs on each tile's outputs */
    void *epi_ctx;
} multi_ctx;

static void gemm_tile_multi(void *vctx, const ts_tile *t, ts_scratch *s)
{
    const multi_ctx *m = vctx;
    gemm_tile((void *)&m->c[t->expert], t, s);
    if (m->epi)
        m->epi(m->epi_ctx, (int)t->expert, t->row0, t->rows, t->tok0, t->toks);
}

/* The epilogue over whole rows, tiles over tokens (the unfused fallback). */
static void epi_tok_tile(void *vctx, const ts_tile *t, ts_scratch *s)
{
    const multi_ctx *m = vctx;
    (void)s;
    m->epi(m->epi_ctx, (int)t->expert, 0, m->c[t->expert].w->rows, t->tok0, t->toks);
}

void ts_mm_quantize_rows(ts_mm *mm, const ts_qview *const *w, int n_w, const float *x,
                         size_t x_stride, int64_t tok0, int64_t n)
{
    bool done[TS_ACT_COUNT] = {false};
    for (int i = 0; i < n_w; i++) {
        const ts_gemm_slot *slot =
            w[i]->qtype < TS_GEMM_SLOTS ? &mm->kern->gemm[w[i]->qtype] : NULL;
        if (!slot || !slot->fn || slot->act == TS_ACT_F32 || done[slot->act])
            continue;
        done[slot->act] = true;
        const ts_quant_act_fn q = mm->kern->quant_act[slot->act];
        for (int64_t tok = tok0; tok < tok0 + n; tok++)
            q((const float *)((const char *)x + (size_t)tok * x_stride),
              (char *)mm->act[slot->act] + (size_t)tok * mm->act_stride[slot->act], w[i]->cols);
    }
}

int64_t ts_mm_act_block(const ts_mm *mm, const ts_qview *w, int64_t n_tok)
{
    if (w->qtype >= TS_GEMM_SLOTS || !mm->kern->gemm[w->qtype].fn ||
        ts_dense_accepts(mm->blas, w, n_tok))
        return 0;
    const int act = mm->kern->gemm[w->qtype].act;
    return act == TS_ACT_F32 ? 0 : (int64_t)ts_qtype_traits(ts_act_qtype(act))->blck;
}

void ts_mm_quantize_cols(ts_mm *mm, const ts_qview *w, const float *x, size_t x_stride,
                         int64_t tok0, int64_t toks, int64_t c0, int64_t n)
{
    const int act = mm->kern->gemm[w->qtype].act;
    const ts_qtraits *tr = ts_qtype_traits(ts_act_qtype(act));
    const ts_quant_act_fn q = mm->kern->quant_act[act];
    const size_t off = (size_t)(c0 / (int64_t)tr->blck) * tr->size;
    for (int64_t tok = tok0; tok < tok0 + toks; tok++)
        q((const float *)((const char *)x + (size_t)tok * x_stride) + c0,
          (char *)mm->act[act] + (size_t)tok * mm->act_stride[act] + off, n);
}

static void run_multi(ts_mm *mm, const ts_qview *const *w, float *const *y,
                      const size_t *y_stride, int n_w, const float *x, size_t x_stride,
                      int64_t n_tok, bool quantized, int64_t align, ts_mm_epi_fn epi,
                      void *epi_ctx)
{
    if (n_tok <= 0 || n_w <= 0)
        return;
    multi_ctx m = {.epi = epi, .epi_ctx = epi_ctx};
    /* Matrices the fused path does not cover (BLAS, too many) run one by
     * one: same bits either way. */
    bool fuse = n_w <= TS_MM_MULTI_MAX;
    for (int i = 0; fuse && i < n_w; i++) {
        const uint32_t qt = w[i]->qtype;
        fuse = qt < TS_GEMM_SLOTS && mm->kern->gemm[qt].fn && w[i]->rows > 0 &&
               !ts_dense_accepts(mm->blas, w[i], n_tok);
    }
    ts_grid g = {.tiles = mm->tiles, .n_tiles = 0, .cap = MM_TILE_CAP};
    const uint32_t n_workers = mm->pool ? ts_pool_n_workers(mm->pool) : 1;
    if (!fuse) {
        for (int i = 0; i < n_w; i++)
            ts_mm_run(mm, w[i], x, x_stride, n_tok, y[i], y_stride[i]);
        if (!epi)
            return;
        if (n_w > TS_MM_MULTI_MAX) { /* no context slots for a grid: inline */
            for (int i = 0; i < n_w; i++)
                epi(epi_ctx, i, 0, w[i]->rows, 0, n_tok);
            return;
        }
        for (int i = 0; i < n_w; i++) {
            m.c[i].w = w[i];
            add_tok_tiles(mm, &g, (uint32_t)i, n_tok, 4 * (int64_t)n_workers);
        }
        run_grid(mm, &g, epi_tok_tile, &m);
        return;
    }
    bool done[TS_ACT_COUNT] = {false};
    int64_t total_rows = 0;
    /* 1. Activations: each format x needs is quantized once. */
    for (int i = 0; i < n_w; i++) {
        const ts_gemm_slot *slot = &mm->kern->gemm[w[i]->qtype];
        m.c[i] = (run_ctx){.mm = mm, .w = w[i], .slot = slot, .x = x, .x_stride = x_stride,
                           .y = y[i], .y_stride = y_stride[i]};
        if (slot->act == TS_ACT_F32) {
            m.c[i].act = x;
            m.c[i].act_stride = x_stride;
        } else {
            m.c[i].act = mm->act[slot->act];
            m.c[i].act_stride = mm->act_stride[slot->act];
            if (!done[slot->act] && !quantized)
                quantize_act(mm, &g, &m.c[i], n_tok);
            done[slot->act] = true;
        }
        total_rows += w[i]->rows;
    }
    /* 2. One GEMM grid over every matrix's tiles; each matrix gets its share
     * of the minimum tile count by rows. */
    g.n_tiles = 0;
    for (int i = 0; i < n_w; i++) {
        int64_t want = MM_GEMM_TILES_PER_WORKER * (int64_t)n_workers * w[i]->rows / total_rows;
        add_gemm_tiles(mm, &g, w[i], m.c[i].slot, (uint32_t)i, n_tok, want > 1 ? want : 1,
                       align, false);
    }
    run_grid(mm, &g, gemm_tile_multi, &m);
}

void ts_mm_run_multi(ts_mm *mm, const ts_qview *const *w, float *const *y,
                     const size_t *y_stride, int n_w, const float *x, size_t x_stride,
                     int64_t n_tok)
{
    run_multi(mm, w, y, y_stride, n_w, x, x_stride, n_tok, false, 1, NULL, NULL);
}

void ts_mm_run_multi_quantized(ts_mm *mm, const ts_qview *const *w, float *const *y,
                               const size_t *y_stride, int n_w, const float *x,
                               size_t x_stride, int64_t n_tok)
{
    run_multi(mm, w, y, y_stride, n_w, x, x_stride, n_tok, true, 1, NULL, NULL);
}

void ts_mm_run_multi_quantized_epi(ts_mm *mm, const ts_qview *const *w, float *const *y,
                                   const size_t *y_stride, int n_w, const float *x,
                                   size_t x_stride, int64_t n_tok, int64_t align,
                                   ts_mm_epi_fn epi, void *epi_ctx)
{
    run_multi(mm, w, y, y_stride, n_w, x, x_stride, n_tok, true, align, epi, epi_ctx);
}

/* A repacked matrix's buffer (freed by ts_mm_release). From 2 MiB up it is
 * 2 MiB-aligned and its whole 2 MiB pages are advised MADV_HUGEPAGE before the
 * repack first-touches them: decode streams every weight byte once per token,
 * and with 4 KiB pages that is a TLB miss every 64 lines. The unaligned head
 * glibc keeps is virtual only (never touched); the advice is harmless where
 * transparent hugepages are off. */
#define HUGE_BYTES ((size_t)2 << 20)
static void *repack_buf_alloc(size_t bytes)
{
    if (bytes < HUGE_BYTES)
        return aligned_alloc(64, pad64(bytes));
    void *buf = aligned_alloc(HUGE_BYTES, pad64(bytes));
#ifdef MADV_HUGEPAGE
    if (buf)
        madvise(buf, bytes / HUGE_BYTES * HUGE_BYTES, MADV_HUGEPAGE); /* advisory */
#endif
    return buf;
}

ts_status ts_mm_prepare_alloc(const ts_qview *w, ts_qview *out, void **owned, ts_err *err)
{
    *out = *w;
    *owned = NULL;
    const uint32_t rt = ts_kernels_repack_type(ts_mm_kernels(), w->qtype);
    if (!rt || w->rows <= 0 || w->cols <= 0)
        return TS_OK;
    const size_t bytes = ts_repack_bytes(rt, w->rows, w->cols);
    void *buf = repack_buf_alloc(bytes);
    if (!buf)
        return ts_err_set(err, TS_E_NOMEM, "ts_mm_prepare: out of memory (%zu bytes)", bytes);
    out->data = buf;
    out->qtype = rt;
    out->row_stride = ts_repack_row_stride(rt, w->cols);
    out->place = NULL; /* per-node copies hold the plain layout: place after preparing */
    *owned = buf;
    return TS_OK;
}

void ts_mm_prepare_fill(const ts_qview *w, const ts_qview *out, int64_t row0, int64_t rows)
{
    if (out->qtype == w->qtype || rows <= 0)
        return;
    ts_repack_rows(out->qtype, (const char *)w->data + (size_t)row0 * w->row_stride,
                   w->row_stride, rows, w->cols,
                   (char *)(void *)(uintptr_t)out->data + (size_t)row0 * out->row_stride);
}

ts_status ts_mm_prepare(const ts_qview *w, ts_qview *out, void **owned, ts_err *err)
{
    ts_status st = ts_mm_prepare_alloc(w, out, owned, err);
    if (st == TS_OK)
        ts_mm_prepare_fill(w, out, 0, w->rows);
    return st;
}

void ts_mm_release(void *owned)
{
    free(owned);
}

/* ---- Gate/up + SwiGLU (+ down's quantization) in one grid ---- */

typedef struct {
    run_ctx c[2]; /* gate -> a, up -> b */
    float *a;
    const float *b;
    size_t ab_stride;
    ts_swiglu_fn swiglu;
    ts_quant_act_fn q; /* down's activation format; NULL when down reads f32 */
    char *dact;
    size_t dact_stride, blk_bytes;
    int64_t blk;
} glu_ctx;

/* SwiGLU and down's quantization of rows [tok0, tok0 + toks), columns
 * [c0, c0 + n) (c0 a multiple of the activation block). */
static void glu_rows(const glu_ctx *g, int64_t tok0, int64_t toks, int64_t c0, int64_t n)
{
    for (int64_t tok = tok0; tok < tok0 + toks; tok++) {
        float *ar = (float *)((char *)g->a + (size_t)tok * g->ab_stride) + c0;
        g->swiglu(ar, (const float *)((const char *)g->b + (size_t)tok * g->ab_stride) + c0, n);
        if (g->q)
            g->q(ar, g->dact + (size_t)tok * g->dact_stride + (size_t)(c0 / g->blk) * g->blk_bytes,
                 n);
    }
}

static void glu_tile(void *vctx, const ts_tile *t, ts_scratch *s)
{
    const glu_ctx *g = vctx;
    gemm_tile((void *)&g->c[0], t, s);
    gemm_tile((void *)&g->c[1], t, s);
    glu_rows(g, t->tok0, t->toks, t->row0, t->rows);
}

static void glu_tok_tile(void *vctx, const ts_tile *t, ts_scratch *s)
{
    const glu_ctx *g = vctx;
    (void)s;
    glu_rows(g, t->tok0, t->toks, 0, g->c[0].w->rows);
}

void ts_mm_run_glu_quantized(ts_mm *mm, const ts_qview *gate, const ts_qview *up,
                             const float *x, size_t x_stride, int64_t n_tok, float *a, float *b,
                             size_t ab_stride, ts_swiglu_fn swiglu, const ts_qview *down)
{
    if (n_tok <= 0 || gate->rows <= 0)
        return;
    glu_ctx g = {.a = a, .b = b, .ab_stride = ab_stride, .swiglu = swiglu, .blk = 1};
    const ts_gemm_slot *ds =
        down->qtype < TS_GEMM_SLOTS && mm->kern->gemm[down->qtype].fn ? &mm->kern->gemm[down->qtype]
                                                                      : NULL;
    /* down quantizes here unless it reads f32 or goes to BLAS (which then
     * quantizes nothing: ts_mm_run's own pass covers a BLAS fallback too). */
    const bool dq = ds && ds->act != TS_ACT_F32 && !ts_dense_accepts(mm->blas, down, n_tok);
    if (dq) {
        const ts_qtraits *tr = ts_qtype_traits(ts_act_qtype(ds->act));
        g.q = mm->kern->quant_act[ds->act];
        g.dact = mm->act[ds->act];
        g.dact_stride = mm->act_stride[ds->act];
        g.blk = tr->blck;
        g.blk_bytes = tr->size;
    }
    const ts_qview *w[2] = {gate, up};
    bool fuse = gate->rows == up->rows && gate->cols == up->cols && gate->rows % g.blk == 0;
    for (int i = 0; fuse && i < 2; i++) {
        const uint32_t qt = w[i]->qtype;
        fuse = qt < TS_GEMM_SLOTS && mm->kern->gemm[qt].fn &&
               !ts_dense_accepts(mm->blas, w[i], n_tok);
    }
    ts_grid grid = {.tiles = mm->tiles, .n_tiles = 0, .cap = MM_TILE_CAP};
    const uint32_t n_workers = mm->pool ? ts_pool_n_workers(mm->pool) : 1;
    /* Fused row blocks are whole activation blocks (256 rows for Q8_K): with
     * few tokens (decode) and many workers there may be too few of them to
     * keep every worker busy, and the unfused grids split finer. */
    if (fuse) {
        const int64_t ablk = g.blk > 16 ? g.blk : 16;
        const uint16_t tw = gate->qtype < TS_GEMM_SLOTS ? mm->kern->gemm_tok_block[gate->qtype] : 0;
        const int64_t tparts = (n_tok + (tw ? tw : MM_TOK_BLOCK) - 1) / (tw ? tw : MM_TOK_BLOCK);
        fuse = gate->rows / ablk * tparts >= 2 * (int64_t)n_workers;
    }
    if (!fuse) { /* the unfused steps: same bits */
        float *const y[2] = {a, b};
        const size_t ys[2] = {ab_stride, ab_stride};
        ts_mm_run_multi_quantized(mm, w, y, ys, 2, x, x_stride, n_tok);
        g.c[0].w = gate;
        add_tok_tiles(mm, &grid, 0, n_tok, 4 * (int64_t)n_workers);
        run_grid(mm, &grid, glu_tok_tile, &g);
        return;
    }
    for (int i = 0; i < 2; i++) {
        const ts_gemm_slot *slot = &mm->kern->gemm[w[i]->qtype];
        g.c[i] = (run_ctx){.mm = mm, .w = w[i], .slot = slot, .x = x, .x_stride = x_stride,
                           .y = i ? b : a, .y_stride = ab_stride};
        g.c[i].act = slot->act == TS_ACT_F32 ? (const void *)x : mm->act[slot->act];
        g.c[i].act_stride = slot->act == TS_ACT_F32 ? x_stride : mm->act_stride[slot->act];
    }
    /* Row blocks in multiples of both kernels' MR and of down's activation
     * block (MRs and blocks are powers of two), row-block-major: the workers
     * running one row block's token blocks share its gate+up weights, each
     * re-reading them from its own L2 rather than streaming every block's
     * weights per token block. */
    const int64_t up_mr = g.c[1].slot->mr;
    add_gemm_tiles(mm, &grid, gate, g.c[0].slot, 0, n_tok,
                   MM_GEMM_TILES_PER_WORKER * (int64_t)n_workers,
                   up_mr > g.blk ? up_mr : g.blk, true);
    /* gate/up may read the same activation format down's rows go to: the
     * tiles write the spare buffer, which becomes the current one after. */
    if (dq)
        g.dact = mm->act_next[ds->act];
    run_grid(mm, &grid, glu_tile, &g);
    if (dq) {
        void *t = mm->act[ds->act];
        mm->act[ds->act] = mm->act_next[ds->act];
        mm->act_next[ds->act] = t;
    }
}
