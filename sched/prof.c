/*
 * sched/prof.c: the pool's grid profile (ts_sched_prof, TESSERA_PROFILE).
 *
 * Owns: the on/off flag and the process-wide counters that pool.c (parallel
 * jobs) and grid.c (inline grids) add to, and their snapshot and reset. Does
 * not: read TESSERA_PROFILE (core/prof.c decides and enables), name stages, or
 * print. Why process-wide: core's stage profile is process-wide too, and a
 * stage is attributed by the difference of two snapshots on the thread that
 * runs its grids. Counters are relaxed atomics added by each pool's caller
 * once per grid, never by workers: a worker writes its timestamps into its
 * own ts_worker and the caller sums them after the join.
 */
#include "internal.h"

#include <time.h>

_Atomic bool ts_sched_prof_flag;

static struct {
    _Atomic uint64_t grids, inline_grids, wall_ns, inline_wall_ns, cap_ns, busy_ns, late_ns,
        late_n;
} g_prof;

uint64_t ts_sched_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

/* a - b, or 0 if the clock reads came out of order. Why it could: the reads
 * are ordered by the gen/pending handshake, and CLOCK_MONOTONIC is one clock
 * for every CPU, so it should not; a saturating difference costs nothing. */
static uint64_t since(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

void ts_sched_prof_add_job(const ts_pool *p, uint64_t t0, uint64_t t1)
{
    uint64_t wall = since(t1, t0), busy = 0, late = 0;
    for (uint32_t i = 0; i < p->n_workers; i++) {
        const ts_worker *w = &p->workers[i];
        busy += since(w->prof_t1, w->prof_t0);
        if (i) /* the caller starts at once; the others had to see gen */
            late += since(w->prof_t0, t0);
    }
    add(&g_prof.grids, 1);
    add(&g_prof.wall_ns, wall);
    add(&g_prof.cap_ns, wall * p->n_workers);
    add(&g_prof.busy_ns, busy);
    add(&g_prof.late_ns, late);
    add(&g_prof.late_n, p->n_workers - 1);
}

void ts_sched_prof_add_inline(const ts_pool *p, uint64_t t0, uint64_t t1)
{
    uint64_t wall = since(t1, t0);
    add(&g_prof.grids, 1);
    add(&g_prof.inline_grids, 1);
    add(&g_prof.wall_ns, wall);
    add(&g_prof.inline_wall_ns, wall);
    add(&g_prof.cap_ns, wall * p->n_workers);
    add(&g_prof.busy_ns, wall); /* worker 0 alone */
}

void ts_sched_prof_enable(bool on)
{
    atomic_store_explicit(&ts_sched_prof_flag, on, memory_order_relaxed);
}

void ts_sched_prof_get(ts_sched_prof *out)
{
    *out = (ts_sched_prof){
        .grids = atomic_load_explicit(&g_prof.grids, memory_order_relaxed),
        .inline_grids = atomic_load_explicit(&g_prof.inline_grids, memory_order_relaxed),
        .wall_ns = atomic_load_explicit(&g_prof.wall_ns, memory_order_relaxed),
        .inline_wall_ns = atomic_load_explicit(&g_prof.inline_wall_ns, memory_order_relaxed),
        .cap_ns = atomic_load_explicit(&g_prof.cap_ns, memory_order_relaxed),
        .busy_ns = atomic_load_explicit(&g_prof.busy_ns, memory_order_relaxed),
        .late_ns = atomic_load_explicit(&g_prof.late_ns, memory_order_relaxed),
        .late_n = atomic_load_explicit(&g_prof.late_n, memory_order_relaxed),
    };
}

void ts_sched_prof_reset(void)
{
    _Atomic uint64_t *all[] = {&g_prof.grids,  &g_prof.inline_grids, &g_prof.wall_ns,
                               &g_prof.inline_wall_ns, &g_prof.cap_ns, &g_prof.busy_ns,
                               &g_prof.late_ns, &g_prof.late_n};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        atomic_store_explicit(all[i], 0, memory_order_relaxed);
}
