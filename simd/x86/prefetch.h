/*
 * simd/x86/prefetch.h: spread software prefetch for the token-grouped tile
 * kernels (avx512 and amx levels), for weights that come from DRAM.
 *
 * Why: a GEMM on n tokens streams each weight byte from memory once and then
 * reuses it from L2 for the other token groups (avx512: per sweep of RB rows;
 * amx: per 128-token group). The first pass over cold weights is latency
 * bound: on Zen 4 the Q8_0_R16 avx512 kernel at n = 64, k = 2048 ran at 223
 * GOP/s on a 71 MiB matrix against 344 on a 0.5 MiB one (bench_kernels,
 * 2026-11-22), and that is the MoE experts' regime (an expert's tile is 64
 * tokens on average at pp512, its weights always cold). The hardware
 * prefetchers do not run ahead across the 16-row groups' strides.
 *
 * A span is a byte range to bring into L2, issued a few lines per kernel step
 * over a known number of steps, so the range arrives while the current data
 * is computed on and no step issues a burst. Prefetches never fault and
 * change no value: bits do not depend on them.
 */
#ifndef TS_SIMD_X86_PREFETCH_H
#define TS_SIMD_X86_PREFETCH_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *p; /* first line (64-byte aligned) */
    uint32_t lines, per_step;
} ts_pf_span;

#define TS_PF_MAX 3
typedef struct {
    int n;
    ts_pf_span s[TS_PF_MAX];
} ts_pf_plan;

/* Adds [p, p + bytes) to plan, spread over steps steps (no-op when full or empty). */
static inline void ts_pf_add(ts_pf_plan *plan, const void *p, size_t bytes, int64_t steps)
{
    if (plan->n >= TS_PF_MAX || bytes == 0 || steps <= 0)
        return;
    const uintptr_t a = (uintptr_t)p & ~(uintptr_t)63;
    const uintptr_t e = ((uintptr_t)p + bytes + 63) & ~(uintptr_t)63;
    const uint32_t lines = (uint32_t)((e - a) / 64);
    plan->s[plan->n++] = (ts_pf_span){(const char *)a, lines,
                                      (uint32_t)((lines + steps - 1) / steps)};
}

/* Step j's lines of every span of plan (into L2). */
static inline __attribute__((always_inline)) void ts_pf_step(const ts_pf_plan *plan, int64_t j)
{
    for (int i = 0; i < plan->n; i++) {
        const ts_pf_span *s = &plan->s[i];
        uint32_t l = (uint32_t)j * s->per_step, end = l + s->per_step;
        end = end < s->lines ? end : s->lines;
        for (; l < end; l++)
            _mm_prefetch(s->p + 64 * (size_t)l, _MM_HINT_T1);
    }
}

/* Slice i of n of [p, p + bytes), line-aligned pieces (the last gets the rest). */
static inline void ts_pf_slice(const void *p, size_t bytes, int64_t i, int64_t n,
                               const char **sp, size_t *sbytes)
{
    const size_t lines = (bytes + 63) / 64;
    const size_t l0 = lines * (size_t)i / (size_t)n, l1 = lines * (size_t)(i + 1) / (size_t)n;
    *sp = (const char *)p + 64 * l0;
    *sbytes = 64 * (l1 - l0);
}

#endif
