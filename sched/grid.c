/*
 * sched/grid.c: tile distribution (STYLE §4) and the parallel-for helper.
 *
 * Owns: ts_grid_run and ts_pool_for. Does not: know what a tile computes, or
 * allocate (the per-node index arrays are the pool's, sized at plan time).
 * Distribution: tiles are counting-sorted by .node into per-node queues,
 * stable, so each queue keeps grid order (expert-major stays expert-major).
 * Worker of rank r on its node first takes tile r of that queue, then
 * fetch_adds the node's cursor (which starts past the rank-claimed tiles);
 * once its own queue is empty it steals through the other nodes' cursors.
 * Rank-claimed tiles are never stolen: every worker joins every grid, so each
 * is run by its owner. Every tile is run exactly once: it is either claimed by
 * rank (one owner) or by a unique cursor value.
 * Memory order: cursors are relaxed; queue contents are published by the
 * pool's gen release and tile outputs are published by the pending join.
 * Profile: inline grids are timed here, parallel ones in ts_pool_dispatch.
 */
#include "internal.h"

#include <stdlib.h>

static inline uint32_t queue_tile(const ts_pool *p, uint32_t nd, uint32_t i)
{
    return p->single_queue ? i : p->idx[p->q_start[nd] + i];
}

static void drain(ts_pool *p, ts_worker *w, uint32_t nd, bool steal)
{
    _Atomic uint32_t *cur = &p->cursors[nd].cursor;
    uint32_t len = p->q_len[nd];
    const ts_tile *tiles = p->grid->tiles;
    uint64_t stolen = 0;
    /* A plain load first: stealers skip an empty queue without dirtying its line. */
    if (atomic_load_explicit(cur, memory_order_relaxed) >= len)
        return;
    for (;;) {
        uint32_t i = atomic_fetch_add_explicit(cur, 1, memory_order_relaxed);
        if (i >= len)
            break;
        p->tile_fn(p->ctx, &tiles[queue_tile(p, nd, i)], &w->scratch);
        stolen += steal;
    }
    if (stolen)
        atomic_fetch_add_explicit(&p->n_stolen, stolen, memory_order_relaxed);
}

static void job_grid(ts_pool *p, ts_worker *w)
{
    uint32_t home = p->single_queue ? 0 : w->node;
    uint32_t rank = p->single_queue ? w->index : w->node_rank;
    if (rank < p->q_static[home])
        p->tile_fn(p->ctx, &p->grid->tiles[queue_tile(p, home, rank)], &w->scratch);
    drain(p, w, home, false);
    if (p->single_queue)
        return;
    uint32_t nn = p->topo.n_nodes;
    for (uint32_t k = 1; k < nn; k++)
        drain(p, w, (home + k) % nn, true);
}

static void set_queue(ts_pool *p, uint32_t nd, uint32_t len, uint32_t n_owner)
{
    p->q_len[nd] = len;
    p->q_static[nd] = n_owner < len ? n_owner : len;
    atomic_store_explicit(&p->cursors[nd].cursor, p->q_static[nd], memory_order_relaxed);
}

/* Stable counting sort of tile indices by node into p->idx. */
static void build_queues(ts_pool *p, const ts_grid *g)
{
    uint32_t nn = p->topo.n_nodes;
    for (uint32_t nd = 0; nd < nn; nd++)
        p->q_len[nd] = 0;
    for (uint32_t t = 0; t < g->n_tiles; t++)
        p->q_len[g->tiles[t].node % nn]++;
    uint32_t start = 0;
    for (uint32_t nd = 0; nd < nn; nd++) {
        p->q_start[nd] = start;
        p->q_static[nd] = start; /* fill position during the scatter */
        start += p->q_len[nd];
    }
    for (uint32_t t = 0; t < g->n_tiles; t++)
        p->idx[p->q_static[g->tiles[t].node % nn]++] = t;
    for (uint32_t nd = 0; nd < nn; nd++)
        set_queue(p, nd, p->q_len[nd], p->node_workers[nd]);
}

static void run_inline(ts_pool *p, const ts_grid *g, ts_tile_fn fn, void *ctx)
{
    ts_scratch *s = &p->workers[0].scratch;
    p->busy = true;
    bool prof = ts_sched_prof_on();
    uint64_t t0 = prof ? ts_sched_now_ns() : 0;
    for (uint32_t t = 0; t < g->n_tiles; t++)
        fn(ctx, &g->tiles[t], s);
    if (prof)
        ts_sched_prof_add_inline(p, t0, ts_sched_now_ns());
    p->busy = false;
}

/* Runs g on every worker, whatever its size (n_workers > 1, n_tiles >= 1). */
static void run_parallel(ts_pool *p, const ts_grid *g, ts_tile_fn fn, void *ctx)
{
    p->grid = g;
    p->tile_fn = fn;
    p->ctx = ctx;
    /* Beyond the reserved index capacity the grid still runs, from one queue. */
    p->single_queue = p->topo.n_nodes == 1 || g->n_tiles > p->idx_cap;
    if (p->single_queue)
        set_queue(p, 0, g->n_tiles, p->n_workers);
    else
        build_queues(p, g);
    ts_pool_dispatch(p, job_grid);
}

void ts_grid_run(ts_pool *p, const ts_grid *g, ts_tile_fn fn, void *ctx)
{
    if (!g || g->n_tiles == 0)
        return;
    if (p->busy)
        abort(); /* a grid from inside a tile would reuse the tile's scratch */
    if (p->n_workers == 1 || g->n_tiles < 2 * p->n_workers)
        run_inline(p, g, fn, ctx);
    else
        run_parallel(p, g, fn, ctx);
}

typedef struct {
    ts_for_fn fn;
    void *ctx;
} for_ctx;

static void for_tile(void *ctx, const ts_tile *t, ts_scratch *s)
{
    const for_ctx *fc = ctx;
    fc->fn(fc->ctx, t->row0, t->row0 + t->rows, s);
}

void ts_pool_for_grain(ts_pool *p, uint32_t n, uint32_t grain, ts_for_fn fn, void *ctx)
{
    if (n == 0)
        return;
    if (p->busy)
        abort();
    if (grain == 0)
        grain = 1;
    uint32_t n_chunks = (uint32_t)(((uint64_t)n + grain - 1) / grain);
    /* 4 chunks per worker: enough slack to balance uneven ranges, few enough
     * that the per-chunk call cost stays negligible. */
    if (n_chunks > p->for_cap)
        n_chunks = p->for_cap;
    if (p->n_workers == 1 || n_chunks < 2) {
        p->busy = true;
        bool prof = ts_sched_prof_on();
        uint64_t t0 = prof ? ts_sched_now_ns() : 0;
        fn(ctx, 0, n, &p->workers[0].scratch);
        if (prof)
            ts_sched_prof_add_inline(p, t0, ts_sched_now_ns());
        p->busy = false;
        return;
    }
    uint32_t nn = p->topo.n_nodes;
    for (uint32_t c = 0; c < n_chunks; c++) {
        uint32_t i0 = (uint32_t)((uint64_t)n * c / n_chunks);
        uint32_t i1 = (uint32_t)((uint64_t)n * (c + 1) / n_chunks);
        p->for_tiles[c] = (ts_tile){
            .row0 = i0, .rows = i1 - i0, .node = (uint16_t)((uint64_t)c * nn / n_chunks)};
    }
    ts_grid g = {.tiles = p->for_tiles, .n_tiles = n_chunks, .cap = p->for_cap};
    for_ctx fc = {fn, ctx};
    run_parallel(p, &g, for_tile, &fc);
}

void ts_pool_for(ts_pool *p, uint32_t n, ts_for_fn fn, void *ctx)
{
    ts_pool_for_grain(p, n, 1, fn, ctx);
}
