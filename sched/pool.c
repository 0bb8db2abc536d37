/*
 * sched/pool.c: the persistent pinned worker pool.
 *
 * Owns: worker threads (one per worker beyond the caller, created once at
 * ts_pool_create, joined at destroy), pinning, per-worker scratch, job
 * dispatch/join (timed when profiling, sched/prof.c) and ts_pool_run/
 * ts_pool_barrier. Does not: decide what a tile means or how tiles are
 * distributed (sched/grid.c).
 * Invariants: the thread that creates the pool is worker 0 and (unless
 * no_pin_caller) is pinned to worker 0's CPU until destroy, which restores its
 * old mask; worker w is
 * pinned to core ts_topo_worker_core(topo, w), round-robin when n_threads
 * exceeds the cores; each worker allocates and first-touches its own scratch
 * after pinning, so the pages land on its node; one job at a time, issued by
 * worker 0 while every other worker is idle (see internal.h).
 */
#include "internal.h"

#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SCRATCH (1u << 20)
/* Spin before blocking: covers back-to-back grids of one forward pass, short
 * enough that blocked workers free the cores for OpenBLAS within 0.1 ms. */
/* 1 ms: a forward pass dispatches a grid every few hundred microseconds and a
 * worker that falls asleep costs a futex wake. llama-1b Q4_K_M pp512 at 16
 * threads, 32-core Xeon VM, 2026-11-22: 50 us 553 t/s, 300 us 672, 1000 us 706,
 * 2000 us 637, 5000 us 674 (tg32: 86 -> 102 t/s at 1000 us). Noisy host. */
#define DEFAULT_SPIN_US 1000u
#define MAX_THREADS TS_TOPO_MAX_CORES
#define INITIAL_TILE_CAP 4096u

static ts_status set_err(ts_err *err, ts_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ts_status set_err(ts_err *err, ts_status st, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        err->status = st;
    }
    return st;
}

static size_t round64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

static bool pin_self(uint32_t cpu)
{
    cpu_set_t set;
    if (cpu >= CPU_SETSIZE)
        return false;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

/* Allocates and first-touches `bytes` for w on the calling (= w's) thread. */
static bool scratch_alloc(ts_worker *w, size_t bytes)
{
    void *buf = aligned_alloc(64, bytes);
    if (!buf)
        return false;
    memset(buf, 0, bytes);
    free(w->scratch.buf);
    w->scratch.buf = buf;
    w->scratch.bytes = bytes;
    return true;
}

static void job_done(ts_pool *p)
{
    ts_waitword_dec(&p->pending);
}

/* Runs the current job on w; when the job is profiled, brackets it with w's
 * own timestamps (summed by the caller after the join, sched/prof.c). */
static inline void run_job(ts_pool *p, ts_worker *w)
{
    if (p->prof) {
        w->prof_t0 = ts_sched_now_ns();
        p->job(p, w);
        w->prof_t1 = ts_sched_now_ns();
    } else {
        p->job(p, w);
    }
}

static void *worker_main(void *arg)
{
    ts_worker *w = arg;
    ts_pool *p = w->pool;
    w->pinned = pin_self(w->cpu);
    if (!scratch_alloc(w, p->scratch_bytes))
        atomic_store_explicit(&p->job_failed, 1, memory_order_relaxed);
    job_done(p); /* startup counts as a job */
    uint32_t seen = 0;
    for (;;) {
        ts_waitword_wait(&p->gen, seen, p->spin_ns);
        seen = atomic_load_explicit(&p->gen.val, memory_order_acquire);
        if (p->stop)
            break;
        run_job(p, w);
        job_done(p);
    }
    return NULL;
}

static void wait_idle(ts_pool *p)
{
    uint32_t v;
    while ((v = atomic_load_explicit(&p->pending.val, memory_order_acquire)) != 0)
        ts_waitword_wait(&p->pending, v, p->spin_ns);
}

void ts_pool_dispatch(ts_pool *p, ts_job_fn job)
{
    p->job = job;
    p->busy = true;
    /* Read once per job and published with it: a job is timed whole or not at all. */
    p->prof = ts_sched_prof_on();
    uint64_t t0 = p->prof ? ts_sched_now_ns() : 0;
    atomic_store_explicit(&p->pending.val, p->n_workers - 1, memory_order_relaxed);
    uint32_t gen = atomic_load_explicit(&p->gen.val, memory_order_relaxed);
    ts_waitword_store(&p->gen, gen + 1); /* publishes job, pending, grid queues */
    run_job(p, &p->workers[0]);
    wait_idle(p);
    if (p->prof)
        ts_sched_prof_add_job(p, t0, ts_sched_now_ns());
    p->busy = false;
}

static ts_status parse_spin(uint64_t *spin_ns, bool *set, ts_err *err)
{
    const char *env = getenv("TESSERA_SPIN_US");
    *set = false;
    *spin_ns = (uint64_t)DEFAULT_SPIN_US * 1000;
    if (!env || !*env)
        return TS_OK;
    char *end;
    unsigned long v = strtoul(env, &end, 10);
    if (*end || env[0] < '0' || env[0] > '9' || v > 1000000)
        return set_err(err, TS_E_ARG, "TESSERA_SPIN_US='%s': expected 0..1000000", env);
    *spin_ns = (uint64_t)v * 1000;
    *set = true;
    return TS_OK;
}

/* Worker placement and per-node counts; true when workers outnumber CPUs. */
static bool place_workers(ts_pool *p)
{
    const ts_topo *t = &p->topo;
    uint32_t distinct = 0;
    for (uint32_t c = 0; c < t->n_cores; c++) {
        bool seen = false;
        for (uint32_t d = 0; d < c && !seen; d++)
            seen = t->core_os[d] == t->core_os[c];
        distinct += !seen;
    }
    for (uint32_t i = 0; i < p->n_workers; i++) {
        ts_worker *w = &p->workers[i];
        w->pool = p;
        w->index = i;
        w->core = ts_topo_worker_core(t, i);
        w->cpu = t->core_os[w->core];
        w->node = t->core_node[w->core];
        w->node_rank = p->node_workers[w->node]++;
        w->scratch.worker = i;
        w->scratch.node = (uint16_t)w->node;
    }
    return p->n_workers > distinct;
}

static ts_status alloc_arrays(ts_pool *p)
{
    uint32_t nn = p->topo.n_nodes;
    /* Aligned: ts_worker is, so each worker has its own cache lines. */
    p->workers = aligned_alloc(64, p->n_workers * sizeof(*p->workers));
    if (p->workers)
        memset(p->workers, 0, p->n_workers * sizeof(*p->workers));
    p->q_start = calloc(nn, sizeof(uint32_t));
    p->q_len = calloc(nn, sizeof(uint32_t));
    p->q_static = calloc(nn, sizeof(uint32_t));
    p->node_workers = calloc(nn, sizeof(uint32_t));
    p->cursors = aligned_alloc(64, nn * sizeof(ts_node_cursor));
    p->idx_cap = INITIAL_TILE_CAP;
    p->idx = malloc(p->idx_cap * sizeof(uint32_t));
    p->for_cap = 4 * p->n_workers;
    p->for_tiles = calloc(p->for_cap, sizeof(ts_tile));
    if (!p->workers || !p->q_start || !p->q_len || !p->q_static || !p->node_workers ||
        !p->cursors || !p->idx || !p->for_tiles)
        return TS_E_NOMEM;
    for (uint32_t nd = 0; nd < nn; nd++)
        atomic_init(&p->cursors[nd].cursor, 0);
    return TS_OK;
}

static ts_status start_threads(ts_pool *p, bool pin_caller, ts_err *err)
{
    ts_worker *w0 = &p->workers[0];
    w0->thread = pthread_self();
    if (pin_caller) {
        cpu_set_t *mask = malloc(sizeof(cpu_set_t));
        if (mask && pthread_getaffinity_np(pthread_self(), sizeof(*mask), mask) == 0) {
            p->caller_mask = mask;
            w0->pinned = pin_self(w0->cpu);
            p->caller_pinned = w0->pinned;
        } else {
            free(mask); /* without the old mask we could not restore it: don't pin */
        }
    }
    if (!scratch_alloc(w0, p->scratch_bytes))
        return set_err(err, TS_E_NOMEM, "pool: scratch of %zu bytes", p->scratch_bytes);
    atomic_store_explicit(&p->pending.val, p->n_workers - 1, memory_order_relaxed);
    /* Workers start with every signal blocked, so asynchronous signals
     * (SIGINT for `tessera serve`) go to the application's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    ts_status st = TS_OK;
    for (uint32_t i = 1; i < p->n_workers; i++) {
        if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0) {
            for (uint32_t j = i; j < p->n_workers; j++)
                ts_waitword_dec(&p->pending); /* so destroy's wait_idle ends */
            st = set_err(err, TS_E_NOMEM, "pool: pthread_create failed for worker %u", i);
            break;
        }
        p->n_started = i;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (st != TS_OK)
        return st;
    wait_idle(p);
    if (atomic_load_explicit(&p->job_failed, memory_order_relaxed))
        return set_err(err, TS_E_NOMEM, "pool: scratch of %zu bytes", p->scratch_bytes);
    return TS_OK;
}

ts_status ts_pool_create(ts_pool **out, const ts_pool_opts *opts, ts_err *err)
{
    ts_pool_opts o = opts ? *opts : (ts_pool_opts){0};
    bool spin_set;
    uint64_t spin_ns;
    ts_status st;
    *out = NULL;
    if (o.n_threads < 0 || o.n_threads > MAX_THREADS)
        return set_err(err, TS_E_ARG, "n_threads=%d: expected 0..%d", o.n_threads, MAX_THREADS);
    st = parse_spin(&spin_ns, &spin_set, err);
    if (st != TS_OK)
        return st;
    ts_pool *p = aligned_alloc(64, round64(sizeof(ts_pool)));
    if (!p)
        return set_err(err, TS_E_NOMEM, "pool: out of memory");
    memset(p, 0, sizeof(*p));
    st = ts_topo_detect_range(&p->topo, o.cpu_range, err);
    if (st != TS_OK) {
        free(p);
        return st;
    }
    if (o.node0_only)
        ts_topo_keep_node(&p->topo, 0);
    p->n_workers = o.n_threads ? (uint32_t)o.n_threads : p->topo.n_cores;
    p->scratch_bytes = round64(o.scratch_bytes ? o.scratch_bytes : DEFAULT_SCRATCH);
    if (alloc_arrays(p) != TS_OK) {
        ts_pool_destroy(p);
        return set_err(err, TS_E_NOMEM, "pool: out of memory");
    }
    bool oversubscribed = place_workers(p);
    /* Spinning on a CPU that another worker needs only delays it. */
    p->spin_ns = oversubscribed && !spin_set ? 0 : spin_ns;
    ts_barrier_init(&p->barrier, p->n_workers, p->spin_ns);
    st = start_threads(p, !o.no_pin_caller, err);
    if (st != TS_OK) {
        ts_pool_destroy(p);
        return st;
    }
    *out = p;
    return TS_OK;
}

void ts_pool_destroy(ts_pool *p)
{
    if (!p)
        return;
    if (p->n_started) {
        wait_idle(p);
        p->stop = true;
        ts_waitword_store(&p->gen, atomic_load_explicit(&p->gen.val, memory_order_relaxed) + 1);
        for (uint32_t i = 1; i <= p->n_started; i++)
            pthread_join(p->workers[i].thread, NULL);
    }
    if (p->caller_mask) {
        if (p->caller_pinned)
            pthread_setaffinity_np(pthread_self(), sizeof(cpu_set_t), p->caller_mask);
        free(p->caller_mask);
    }
    if (p->workers)
        for (uint32_t i = 0; i < p->n_workers; i++)
            free(p->workers[i].scratch.buf);
    free(p->workers);
    free(p->q_start);
    free(p->q_len);
    free(p->q_static);
    free(p->node_workers);
    free(p->cursors);
    free(p->idx);
    free(p->for_tiles);
    free(p);
}

uint32_t ts_pool_n_workers(const ts_pool *p)
{
    return p->n_workers;
}

const ts_topo *ts_pool_topo(const ts_pool *p)
{
    return &p->topo;
}

uint64_t ts_pool_n_stolen(const ts_pool *p)
{
    return atomic_load_explicit(&((ts_pool *)p)->n_stolen, memory_order_relaxed);
}

uint64_t ts_pool_spin_ns(const ts_pool *p)
{
    return p->spin_ns;
}

size_t ts_pool_format_plan(const ts_pool *p, char *buf, size_t cap)
{
    return ts_topo_format_plan(&p->topo, p->n_workers, buf, cap);
}

static void job_scratch(ts_pool *p, ts_worker *w)
{
    if (!scratch_alloc(w, p->want_scratch))
        atomic_store_explicit(&p->job_failed, 1, memory_order_relaxed);
}

ts_status ts_pool_reserve_scratch(ts_pool *p, size_t bytes, ts_err *err)
{
    if (p->busy)
        return set_err(err, TS_E_STATE, "pool: reserve_scratch called inside a job");
    if (bytes <= p->scratch_bytes)
        return TS_OK;
    p->want_scratch = round64(bytes);
    atomic_store_explicit(&p->job_failed, 0, memory_order_relaxed);
    ts_pool_dispatch(p, job_scratch);
    if (atomic_load_explicit(&p->job_failed, memory_order_relaxed)) {
        /* Some workers grew, some kept their old buffer: all remain valid. */
        size_t min = SIZE_MAX;
        for (uint32_t i = 0; i < p->n_workers; i++)
            min = p->workers[i].scratch.bytes < min ? p->workers[i].scratch.bytes : min;
        p->scratch_bytes = min;
        return set_err(err, TS_E_NOMEM, "pool: scratch of %zu bytes per worker", bytes);
    }
    p->scratch_bytes = p->want_scratch;
    return TS_OK;
}

ts_status ts_pool_reserve_tiles(ts_pool *p, uint32_t max_tiles, ts_err *err)
{
    if (p->busy)
        return set_err(err, TS_E_STATE, "pool: reserve_tiles called inside a job");
    if (max_tiles <= p->idx_cap)
        return TS_OK;
    uint32_t *idx = realloc(p->idx, (size_t)max_tiles * sizeof(uint32_t));
    if (!idx)
        return set_err(err, TS_E_NOMEM, "pool: tile index for %u tiles", max_tiles);
    p->idx = idx;
    p->idx_cap = max_tiles;
    return TS_OK;
}

static void job_run(ts_pool *p, ts_worker *w)
{
    p->worker_fn(p->ctx, &w->scratch);
}

void ts_pool_run(ts_pool *p, ts_worker_fn fn, void *ctx)
{
    if (p->busy)
        abort(); /* nested jobs would deadlock on the barrier */
    p->worker_fn = fn;
    p->ctx = ctx;
    ts_pool_dispatch(p, job_run);
}

void ts_pool_barrier(ts_pool *p)
{
    ts_barrier_wait(&p->barrier);
}
