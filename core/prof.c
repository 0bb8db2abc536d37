/*
 * core/prof.c: a stage profile of the forward pass (TESSERA_PROFILE=1), for
 * hosts without perf (the lent many-core machines have none).
 *
 * Owns: per-stage wall-time counters and their report. The forward pass is a
 * sequence of pool grids run by one orchestrating thread, so the wall time of
 * a stage on that thread is the stage's time on every worker (each grid ends
 * with a join). Why parallel efficiency is lost comes from the pool's grid
 * counters (ts_sched_prof), snapshotted around each stage: how much of the
 * stage ran inside grids (the rest is serial), how busy the workers were
 * inside them, how much ran inline on the caller, how late workers started.
 * Off by default: one getenv at first use, then a branch. Counters are
 * process-wide atomics (sessions may run on different threads; the grid
 * counters are exact when one session runs at a time).
 */
#include "prof.h"
#include "err.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const char *const g_names[TS_PROF_COUNT] = {
    "embed", "qkv matmul+rope+kv", "attention", "attn out matmul", "residual+norm",
    "ffn gate/up+swiglu", "ffn down matmul", "moe ffn", "output matmul",
    "gdn conv+delta rule"};

/* A stage's share of the pool's grid counters (ts_sched_prof, as an array). */
enum { SF_GRIDS, SF_INLINE, SF_WALL, SF_INLINE_WALL, SF_CAP, SF_BUSY, SF_LATE, SF_LATE_N,
       SF_COUNT };

static _Atomic uint64_t g_ns[TS_PROF_COUNT];
static _Atomic uint64_t g_calls[TS_PROF_COUNT];
static _Atomic uint64_t g_sched[TS_PROF_COUNT][SF_COUNT];
static atomic_int g_state; /* 0 unknown, 1 off, 2 on */

bool ts_prof_on(void)
{
    int st = atomic_load_explicit(&g_state, memory_order_relaxed);
    if (st == 0) {
        /* Strict (err.h): "yes" or "2" is refused at engine creation, never on. */
        st = ts_env_flag_parse(getenv("TESSERA_PROFILE")) == 1 ? 2 : 1;
        if (st == 2) /* before the first stage's grids run */
            ts_sched_prof_enable(true);
        atomic_store_explicit(&g_state, st, memory_order_relaxed);
    }
    return st == 2;
}

uint64_t ts_prof_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void sched_fields(const ts_sched_prof *s, uint64_t v[SF_COUNT])
{
    v[SF_GRIDS] = s->grids;
    v[SF_INLINE] = s->inline_grids;
    v[SF_WALL] = s->wall_ns;
    v[SF_INLINE_WALL] = s->inline_wall_ns;
    v[SF_CAP] = s->cap_ns;
    v[SF_BUSY] = s->busy_ns;
    v[SF_LATE] = s->late_ns;
    v[SF_LATE_N] = s->late_n;
}

void ts_prof_begin(ts_prof_mark *m)
{
    ts_sched_prof_get(&m->sched);
    m->t0 = ts_prof_now_ns();
}

void ts_prof_end(ts_prof_stage st, const ts_prof_mark *m)
{
    uint64_t t1 = ts_prof_now_ns();
    ts_sched_prof now;
    ts_sched_prof_get(&now);
    uint64_t a[SF_COUNT], b[SF_COUNT];
    sched_fields(&m->sched, a);
    sched_fields(&now, b);
    /* A reset inside the stage (another thread's) would make b < a: skip it. */
    for (int f = 0; f < SF_COUNT; f++)
        if (b[f] >= a[f])
            atomic_fetch_add_explicit(&g_sched[st][f], b[f] - a[f], memory_order_relaxed);
    atomic_fetch_add_explicit(&g_ns[st], t1 - m->t0, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_calls[st], 1, memory_order_relaxed);
}

void ts_prof_reset(void)
{
    for (int i = 0; i < TS_PROF_COUNT; i++) {
        atomic_store(&g_ns[i], 0);
        atomic_store(&g_calls[i], 0);
        for (int f = 0; f < SF_COUNT; f++)
            atomic_store(&g_sched[i][f], 0);
    }
    ts_sched_prof_reset();
}

/* num / den as a percentage into buf, or "-" when there is nothing to divide. */
static const char *pct(char *buf, size_t cap, uint64_t num, uint64_t den)
{
    if (!den)
        return "-";
    snprintf(buf, cap, "%.1f%%", 100.0 * (double)num / (double)den);
    return buf;
}

/* One table row: the stage's wall ns, share and calls cells, and its grids. */
static void print_row(FILE *f, const char *name, uint64_t ns, const char *share,
                      const char *calls, const uint64_t v[SF_COUNT], uint64_t n_fwd)
{
    char gpf[32] = "-", late[32] = "-", in_grids[16], busy[16], inl[16];
    if (n_fwd)
        snprintf(gpf, sizeof(gpf), "%.1f", (double)v[SF_GRIDS] / (double)n_fwd);
    if (v[SF_LATE_N])
        snprintf(late, sizeof(late), "%.2f", (double)v[SF_LATE] / (double)v[SF_LATE_N] / 1e3);
    fprintf(f, "  %-20s %10.1f %7s %9s %9s %8s %6s %7s %7s\n", name, (double)ns / 1e6, share,
            calls, gpf, pct(in_grids, sizeof(in_grids), v[SF_WALL], ns),
            pct(busy, sizeof(busy), v[SF_BUSY], v[SF_CAP]),
            pct(inl, sizeof(inl), v[SF_INLINE_WALL], v[SF_WALL]), late);
}

void ts_prof_report(FILE *f)
{
    if (!ts_prof_on())
        return;
    uint64_t total = 0, tot[SF_COUNT] = {0};
    for (int i = 0; i < TS_PROF_COUNT; i++) {
        total += atomic_load(&g_ns[i]);
        for (int k = 0; k < SF_COUNT; k++)
            tot[k] += atomic_load(&g_sched[i][k]);
    }
    /* The embedding runs once per forward pass (prefill chunk or decode step). */
    uint64_t n_fwd = atomic_load(&g_calls[TS_PROF_EMBED]);
    fprintf(f, "profile (TESSERA_PROFILE, wall time of the orchestrating thread");
    if (tot[SF_WALL]) { /* capacity / wall: the pool's worker count */
        double n_workers = (double)tot[SF_CAP] / (double)tot[SF_WALL];
        fprintf(f, "; %.0f worker%s", n_workers, n_workers < 1.5 ? "" : "s");
    }
    fprintf(f, "; %llu forward passes):\n", (unsigned long long)n_fwd);
    fprintf(f, "  %-20s %10s %7s %9s %9s %8s %6s %7s %7s\n", "stage", "ms", "share", "calls",
            "grids/fwd", "in grids", "busy", "inline", "late us");
    for (int i = 0; i < TS_PROF_COUNT; i++) {
        uint64_t ns = atomic_load(&g_ns[i]), calls = atomic_load(&g_calls[i]), v[SF_COUNT];
        if (!calls)
            continue;
        for (int k = 0; k < SF_COUNT; k++)
            v[k] = atomic_load(&g_sched[i][k]);
        char share[16], n_calls[24];
        snprintf(n_calls, sizeof(n_calls), "%llu", (unsigned long long)calls);
        print_row(f, g_names[i], ns, pct(share, sizeof(share), ns, total), n_calls, v, n_fwd);
    }
    print_row(f, "total", total, "", "", tot, n_fwd);
    fprintf(f, "  in grids: stage wall inside pool grids (the rest is serial work on the caller);\n"
               "  busy: worker time in grids / (workers x grid wall); inline: grid wall run on the"
               " caller\n  alone; late: mean delay from a parallel grid's publish to a worker's"
               " start (caller excluded)\n");
}
