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
#include <stdatomic.h>
#include "../core/tessera.h"

#define TS_TOPO_MAX_CORES 1024
#define TS_TOPO_MAX_NODES 64

/* ---- topology ---- */
typedef struct {
    uint32_t n_nodes;      /* NUMA nodes (>= 1) */
    uint32_t n_cores;      /* physical cores chosen (SMT siblings skipped) */
    uint32_t n_pus;        /* logical CPUs seen */
    uint32_t core_os[1024];   /* OS cpu index to pin core i on (first PU of the core) */
    uint16_t core_node[1024]; /* node of core i */
    bool fake;             /* came from TESSERA_TOPO */
    char desc[128];        /* e.g. "1 package, 1 NUMA node, 2 cores, 2 PUs" */
    /* Extensions (sched/topo.c). */
    uint32_t n_packages;   /* real packages (fake: the real machine's) */
    uint32_t n_l3;         /* real L3 groups (0 if hwloc reports none) */
    uint16_t core_l3[1024];   /* L3 group of core i (fake: node index) */
    uint32_t node_os[TS_TOPO_MAX_NODES]; /* OS NUMA node number of node i */
    uint16_t place[1024];  /* worker slot j runs on core place[j]: cores interleaved
                              across nodes, so n_threads < n_cores still uses every node */
} ts_topo;

/* Detects the machine with hwloc; TESSERA_TOPO="<nodes>x<cores>" fakes it
 * (fake cores map onto the real CPUs round-robin for pinning). Re-reads the
 * environment on every call. Malformed TESSERA_TOPO: TS_E_ARG. */
ts_status ts_topo_detect(ts_topo *out, ts_err *err);
/* As ts_topo_detect, keeping only real CPUs in cpu_range ("A-B" or "A"; NULL or
 * "" = all). A fake topology maps onto the CPUs left. Empty/malformed: TS_E_ARG. */
ts_status ts_topo_detect_range(ts_topo *out, const char *cpu_range, ts_err *err);
/* Core index that worker w is pinned to (round-robin over place[]). */
uint32_t ts_topo_worker_core(const ts_topo *t, uint32_t worker);
/* Writes the plan ("worker W: node N, core C, cpu P" lines after a topology
 * line) for n_workers (0 = one per core) into buf, snprintf-style: always
 * NUL-terminated when cap > 0; returns the length it needed. */
size_t ts_topo_format_plan(const ts_topo *t, uint32_t n_workers, char *buf, size_t cap);
/* Keeps only the cores of node `node` (the isolate NUMA mode): the result is a
 * 1-node topology whose node 0 is that node (node_os kept). Out of range or coreless: no-op. */
void ts_topo_keep_node(ts_topo *t, uint32_t node);

/* ---- waiting: spin for a bounded time, then block on a futex ---- */
typedef struct {
    _Atomic uint32_t val;
    _Atomic uint32_t sleepers; /* waiters inside futex wait; lets stores skip the syscall */
} ts_waitword;

/* Returns once w->val != old (acquire). Spins up to spin_ns, then blocks. */
void ts_waitword_wait(ts_waitword *w, uint32_t old, uint64_t spin_ns);
/* Stores v (release, and seq_cst against sleepers) and wakes blocked waiters. */
void ts_waitword_store(ts_waitword *w, uint32_t v);
/* Decrements val (seq_cst); the decrement that reaches 0 wakes blocked waiters.
 * Returns the new value. */
uint32_t ts_waitword_dec(ts_waitword *w);

/* Generation-counter barrier for n threads with the same spin-then-block policy. */
typedef struct {
    _Alignas(64) _Atomic uint32_t arrived;
    _Alignas(64) ts_waitword gen;
    uint32_t n;
    uint64_t spin_ns;
} ts_barrier;
void ts_barrier_init(ts_barrier *b, uint32_t n, uint64_t spin_ns);
void ts_barrier_wait(ts_barrier *b);

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
    bool no_pin_caller;    /* leave the calling thread's affinity alone */
    bool node0_only;       /* keep only node 0's cores (ts_topo_keep_node) */
} ts_pool_opts;

/* Detects the topology (re-reading TESSERA_TOPO and TESSERA_SPIN_US), starts
 * n_threads - 1 pinned workers (round-robin over the cores when n_threads
 * exceeds them) and waits until each has pinned itself and first-touched its
 * scratch. The calling thread becomes worker 0 and, unless no_pin_caller, is
 * pinned to worker 0's CPU until ts_pool_destroy restores its old mask. Note:
 * threads it creates meanwhile (e.g. a lazily started OpenBLAS) inherit that
 * single-CPU mask. Errors: TS_E_ARG (n_threads, cpu_range, TESSERA_TOPO,
 * TESSERA_SPIN_US), TS_E_NOMEM (memory, threads). */
ts_status ts_pool_create(ts_pool **out, const ts_pool_opts *opts, ts_err *err);
/* Joins the workers and frees everything; call from the creating thread. NULL ok. */
void ts_pool_destroy(ts_pool *p);
uint32_t ts_pool_n_workers(const ts_pool *p);
const ts_topo *ts_pool_topo(const ts_pool *p);
/* Grows every worker's scratch to at least bytes (plan time, not hot path).
 * Each worker reallocates and first-touches its own buffer. */
ts_status ts_pool_reserve_scratch(ts_pool *p, size_t bytes, ts_err *err);
/* Grows the per-node tile index storage so grids up to max_tiles keep NUMA
 * affinity (plan time). Larger grids still run correctly, from one queue. */
ts_status ts_pool_reserve_tiles(ts_pool *p, uint32_t max_tiles, ts_err *err);
/* The plan of this pool (see ts_topo_format_plan). */
size_t ts_pool_format_plan(const ts_pool *p, char *buf, size_t cap);
/* Tiles run by a worker of another node than the tile's (stolen), since
 * create; relaxed counter for tests and benches. */
uint64_t ts_pool_n_stolen(const ts_pool *p);
/* Spin budget in ns (TESSERA_SPIN_US, default 50 us; 0 when oversubscribed). */
uint64_t ts_pool_spin_ns(const ts_pool *p);

/* Runs every tile of g exactly once and returns when all are done. Grids with
 * fewer than 2 tiles per worker (or a 1-worker pool) run inline on the caller,
 * in tile order. Never allocates, fails or prints. A call from inside a tile
 * runs inline. One caller at a time per pool. */
void ts_grid_run(ts_pool *p, const ts_grid *g, ts_tile_fn fn, void *ctx);

/* Parallel for over [0, n): calls fn on disjoint contiguous ranges covering it
 * exactly once (up to 4 ranges per worker, each at least `grain` indices when
 * n allows; n <= grain runs inline as one range). Each index must be
 * independent, so the split cannot change results. No allocation.
 * ts_pool_for is grain 1: parallel from n = 2, for heavy per-index work
 * (attention heads); pass a grain for cheap elementwise ops, where one
 * dispatch (~1 us) must be amortized. */
typedef void (*ts_for_fn)(void *ctx, uint32_t i0, uint32_t i1, ts_scratch *s);
void ts_pool_for(ts_pool *p, uint32_t n, ts_for_fn fn, void *ctx);
void ts_pool_for_grain(ts_pool *p, uint32_t n, uint32_t grain, ts_for_fn fn, void *ctx);

/* Runs fn once on every worker (worker 0 = caller) and joins; inside fn,
 * ts_pool_barrier(p) synchronizes all workers. */
typedef void (*ts_worker_fn)(void *ctx, ts_scratch *s);
void ts_pool_run(ts_pool *p, ts_worker_fn fn, void *ctx);
void ts_pool_barrier(ts_pool *p);

/* ---- profile (TESSERA_PROFILE; sched/prof.c) ---- */
/* Process-wide totals over every pool since the last reset, counted only while
 * enabled (core/prof.c enables it; off, a grid reads no clock). A parallel
 * grid is every ts_pool_dispatch (ts_grid_run, ts_pool_for, ts_pool_run): its
 * wall runs on the caller from just before the job is published to just after
 * the join; a worker's busy time is its own job call (tiles and claiming, the
 * caller's included); its start latency is its job start minus the publish.
 * A grid run inline on the caller (1-worker pool, too few tiles) counts its
 * wall as busy once and n_workers x wall as capacity: the other workers idle.
 * So cap_ns - busy_ns is idle worker time: late starts, waiting for the
 * slowest worker, and inline grids. The caller's time outside any grid
 * (serial work) is its wall time minus wall_ns. */
typedef struct {
    uint64_t grids;          /* parallel + inline grids */
    uint64_t inline_grids;
    uint64_t wall_ns;        /* grid wall time on the caller */
    uint64_t inline_wall_ns; /* the part of wall_ns spent in inline grids */
    uint64_t cap_ns;         /* n_workers x wall, per grid */
    uint64_t busy_ns;        /* worker time inside the grid's job */
    uint64_t late_ns;        /* start latency summed over workers 1.. of parallel grids */
    uint64_t late_n;         /* worker starts summed in late_ns */
} ts_sched_prof;

/* Turns counting on or off for grids that start afterwards. */
void ts_sched_prof_enable(bool on);
/* A snapshot of the totals (relaxed: exact when read by the thread that ran
 * the grids, or after joining it). */
void ts_sched_prof_get(ts_sched_prof *out);
void ts_sched_prof_reset(void);

#endif
