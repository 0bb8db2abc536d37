/*
 * sched/internal.h: the pool's private layout, shared by sched/pool.c and
 * sched/grid.c only. Nothing outside sched/ includes it.
 *
 * Publication protocol: the caller (worker 0) writes the job fields, then
 * bumps `gen` (release); a worker reads them after seeing the new `gen`
 * (acquire) and is done with them before it decrements `pending` (acq_rel).
 * The caller reads `pending == 0` (acquire) before touching the job again.
 * The same handshake carries the profile: the caller sets `prof` with the job,
 * a worker writes its own prof_t0/prof_t1 before decrementing `pending`, and
 * the caller reads them after the join (sched/prof.c).
 */
#ifndef TS_SCHED_INTERNAL_H
#define TS_SCHED_INTERNAL_H

#include "sched.h"

#include <pthread.h>

typedef struct ts_worker ts_worker;
typedef void (*ts_job_fn)(ts_pool *p, ts_worker *w);

/* 64-byte aligned (the array comes from aligned_alloc): the timestamps a
 * worker writes per profiled job stay off the lines its neighbours read. */
struct ts_worker {
    _Alignas(64) ts_pool *pool;
    pthread_t thread;
    uint32_t index;      /* 0 = the calling thread */
    uint32_t core, cpu;  /* topology core index, OS cpu pinned to */
    uint32_t node;       /* topology node */
    uint32_t node_rank;  /* index among the workers of this node: its first tile */
    bool pinned;
    ts_scratch scratch;
    uint64_t prof_t0, prof_t1; /* its last profiled job call (ns); see the top */
};

/* One per node: the fetch_add cursor alone in its cache line, so workers of
 * different nodes never share a line while claiming tiles. */
typedef struct {
    _Alignas(64) _Atomic uint32_t cursor;
} ts_node_cursor;
_Static_assert(sizeof(ts_node_cursor) == 64, "cursor must fill one cache line");

struct ts_pool {
    _Alignas(64) ts_waitword gen;      /* job generation; workers wait on it */
    _Alignas(64) ts_waitword pending;  /* workers still in the current job */
    _Alignas(64) ts_barrier barrier;   /* for ts_pool_barrier inside ts_pool_run */

    /* The current job (written by the caller only while workers are idle). */
    _Alignas(64) ts_job_fn job;
    const ts_grid *grid;
    ts_tile_fn tile_fn;
    ts_worker_fn worker_fn;
    void *ctx;
    size_t want_scratch;               /* reserve_scratch job */
    _Atomic uint32_t job_failed;
    bool stop;
    bool busy;                         /* a job or inline grid is running */
    bool prof;                         /* time this job (ts_sched_prof_flag at dispatch) */

    /* Per-node queues of the current grid: queue nd holds tile indices
     * idx[q_start[nd] .. q_start[nd] + q_len[nd]); idx == NULL means the
     * identity (one queue holding every tile, used when n_nodes == 1). */
    uint32_t *idx;
    uint32_t idx_cap;
    bool single_queue;                 /* identity queue 0; worker i's first tile is i */
    uint32_t *q_start, *q_len;         /* n_nodes */
    uint32_t *q_static;                /* tiles taken by rank, not cursor: min(workers, len) */
    uint32_t *node_workers;            /* workers pinned on each node */
    ts_node_cursor *cursors;           /* n_nodes */
    ts_tile *for_tiles;                /* ts_pool_for's chunks: 4 per worker */
    uint32_t for_cap;

    _Alignas(64) _Atomic uint64_t n_stolen; /* see ts_pool_n_stolen */
    ts_topo topo;
    uint32_t n_workers;
    uint64_t spin_ns;
    ts_worker *workers;
    uint32_t n_started;
    size_t scratch_bytes;              /* every worker's current scratch size */
    bool caller_pinned;
    void *caller_mask;                 /* cpu_set_t of the caller before pinning */
};

/* Runs job on every worker (worker 0 inline) and returns when all are done. */
void ts_pool_dispatch(ts_pool *p, ts_job_fn job);

/* ---- profile (sched/prof.c) ---- */
extern _Atomic bool ts_sched_prof_flag;
/* The one check on the default path: a relaxed load and a predictable branch. */
static inline bool ts_sched_prof_on(void)
{
    return atomic_load_explicit(&ts_sched_prof_flag, memory_order_relaxed);
}
uint64_t ts_sched_now_ns(void);
/* After the join of a job published at t0 and joined at t1 (caller only). */
void ts_sched_prof_add_job(const ts_pool *p, uint64_t t0, uint64_t t1);
/* After a grid the caller ran inline from t0 to t1. */
void ts_sched_prof_add_inline(const ts_pool *p, uint64_t t0, uint64_t t1);

#endif
