/*
 * sched/sched.h: topology, the pinned worker pool, and the tile grid.
 *
 * The pool never knows what a tile means; kernels never see a thread.
 * ts_grid_run(pool, grid, fn, ctx) runs every tile of the grid exactly once
 * and returns when all are done. Tiles write disjoint outputs, so results do
 * not depend on which worker ran which tile. The calling thread is worker 0.
 * Depends on libc, pthreads and hwloc only (hwloc only in sched/topo.c).
 */
#ifndef TS_SCHED_H
#define TS_SCHED_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "../core/tessera.h"

/* ---- topology ---- */
typedef struct {
    uint32_t n_nodes;      /* NUMA nodes (>= 1) */
    uint32_t n_cores;      /* physical cores chosen (SMT siblings skipped) */
    uint32_t n_pus;        /* logical CPUs seen */
    uint32_t core_os[1024];   /* OS cpu index to pin core i on (first PU of the core) */
    uint16_t core_node[1024]; /* node of core i */
    bool fake;             /* came from TESSERA_TOPO */
    char desc[128];        /* e.g. "1 package, 1 node, 2 cores, 2 PUs" */
} ts_topo;

/* Detects the machine with hwloc; TESSERA_TOPO="<nodes>x<cores>" fakes it
 * (fake cores map onto the real CPUs round-robin for pinning). */
ts_status ts_topo_detect(ts_topo *out, ts_err *err);

/* ---- tiles ---- */
typedef struct {
    uint32_t expert;      /* weight matrix; 0 for dense layers */
    uint32_t row0, rows;  /* output features [row0, row0 + rows) */
    uint32_t tok0, toks;  /* token slice */
    uint16_t node;        /* NUMA node that owns these weight rows */
} ts_tile;

typedef struct {
    void *buf;            /* 64-byte aligned, node-local, `bytes` long */
    size_t bytes;
    uint32_t worker;      /* 0 = calling thread */
    uint16_t node;
} ts_scratch;

typedef void (*ts_tile_fn)(void *ctx, const ts_tile *t, ts_scratch *s);

typedef struct {
    ts_tile *tiles;       /* storage owned by the caller (sized at plan time) */
    uint32_t n_tiles;
    uint32_t cap;
} ts_grid;

/* ---- pool ---- */
typedef struct ts_pool ts_pool;

typedef struct {
    int n_threads;         /* 0 = one per core of the topology */
    const char *cpu_range; /* "A-B" or NULL */
    size_t scratch_bytes;  /* per-worker scratch; 0 = 1 MiB */
} ts_pool_opts;

ts_status ts_pool_create(ts_pool **out, const ts_pool_opts *opts, ts_err *err);
void ts_pool_destroy(ts_pool *p);
uint32_t ts_pool_n_workers(const ts_pool *p);
const ts_topo *ts_pool_topo(const ts_pool *p);
/* Grows every worker's scratch to at least bytes (plan time, not hot path). */
ts_status ts_pool_reserve_scratch(ts_pool *p, size_t bytes, ts_err *err);

void ts_grid_run(ts_pool *p, const ts_grid *g, ts_tile_fn fn, void *ctx);

#endif
