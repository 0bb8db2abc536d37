/*
 * core/prof.c: a stage profile of the forward pass (TESSERA_PROFILE=1), for
 * hosts without perf (the lent many-core machines have none).
 *
 * Owns: per-stage wall-time counters and their report. The forward pass is a
 * sequence of pool grids run by one orchestrating thread, so the wall time of
 * a stage on that thread is the stage's time on every worker (each grid ends
 * with a join). Off by default: one getenv at first use, then a branch.
 * Counters are process-wide atomics (sessions may run on different threads).
 */
#include "prof.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const char *const g_names[TS_PROF_COUNT] = {
    "embed", "qkv matmul+rope+kv", "attention", "attn out matmul", "residual+norm",
    "ffn gate/up+swiglu", "ffn down matmul", "moe ffn", "output matmul"};

static _Atomic uint64_t g_ns[TS_PROF_COUNT];
static _Atomic uint64_t g_calls[TS_PROF_COUNT];
static atomic_int g_state; /* 0 unknown, 1 off, 2 on */

bool ts_prof_on(void)
{
    int st = atomic_load_explicit(&g_state, memory_order_relaxed);
    if (st == 0) {
        const char *e = getenv("TESSERA_PROFILE");
        st = e && *e && *e != '0' ? 2 : 1;
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

void ts_prof_add(ts_prof_stage st, uint64_t ns)
{
    atomic_fetch_add_explicit(&g_ns[st], ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_calls[st], 1, memory_order_relaxed);
}

void ts_prof_reset(void)
{
    for (int i = 0; i < TS_PROF_COUNT; i++) {
        atomic_store(&g_ns[i], 0);
        atomic_store(&g_calls[i], 0);
    }
}

void ts_prof_report(FILE *f)
{
    if (!ts_prof_on())
        return;
    uint64_t total = 0;
    for (int i = 0; i < TS_PROF_COUNT; i++)
        total += atomic_load(&g_ns[i]);
    fprintf(f, "profile (TESSERA_PROFILE, wall time of the orchestrating thread):\n");
    fprintf(f, "  %-20s %10s %7s %9s\n", "stage", "ms", "share", "calls");
    for (int i = 0; i < TS_PROF_COUNT; i++) {
        uint64_t ns = atomic_load(&g_ns[i]);
        if (!atomic_load(&g_calls[i]))
            continue;
        fprintf(f, "  %-20s %10.1f %6.1f%% %9llu\n", g_names[i], (double)ns / 1e6,
                total ? 100.0 * (double)ns / (double)total : 0.0,
                (unsigned long long)atomic_load(&g_calls[i]));
    }
    fprintf(f, "  %-20s %10.1f\n", "total", (double)total / 1e6);
}
