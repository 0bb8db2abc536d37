/*
 * core/ktune.c: per weight layout, the faster of two bit-identical kernels
 * on this host (TESSERA_KTUNE, default on).
 *
 * Why: every level's kernel of a layout gives the same bits (simd/kernels.h),
 * so which one runs is a speed choice only. On the lent Xeon VMs the AMX
 * block-32 kernel (Q8_0_R16) ran at about 440 GOP/s on some VMs and at
 * 144-180 on others, where the avx512 one ran at 203-207 in the same call
 * (bench/RESULTS.md, session 5): no fixed choice is right on both. So at
 * the first kernel-table use the engine times the level's kernel against the
 * level below on a small synthetic problem of each repacked layout (an
 * expert-sized tile: 128 rows x 64 tokens x 1024) and keeps the faster; the
 * level's own kernel keeps the slot unless the other is clearly faster.
 *
 * Owns: ts_kernels_tune and its report. Does not: change any slot's bits (a
 * slot is only ever replaced by another level's kernel of the same layout
 * and activation format), or run anything when the two tables agree.
 */
#include "ktune.h"
#include "prof.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../quant/quant.h"
#include "../simd/repack.h"

#define TUNE_M 128
#define TUNE_N 64
#define TUNE_K 1024
#define TUNE_REPS 3
/* The level's kernel is kept unless the other is this much faster. */
#define TUNE_MARGIN 0.95

int ts_ktune_parse(const char *s)
{
    if (!s || !*s)
        return 1;
    if (!strcmp(s, "0"))
        return 0;
    if (!strcmp(s, "1"))
        return 1;
    return -1;
}

static uint64_t time_once(ts_gemm_fn fn, const void *w, size_t ws, const void *a, size_t as,
                          float *y)
{
    uint64_t t0 = ts_prof_now_ns();
    fn(TUNE_K, TUNE_M, TUNE_N, w, ws, a, as, y, TUNE_M * sizeof(float));
    return ts_prof_now_ns() - t0;
}

/* Times slot hi against slot lo (same layout rt) on a synthetic problem, the
 * two alternated TUNE_REPS times after a warm-up each; the minimum of each. */
static bool time_pair(uint32_t rt, const ts_kernels *k, const ts_gemm_slot *hi,
                      const ts_gemm_slot *lo, const float *x, uint64_t *t_hi, uint64_t *t_lo)
{
    const uint32_t bt = ts_repack_base(rt);
    const size_t prs = ts_qtype_row_bytes(bt, TUNE_K);
    const size_t ws = ts_repack_row_stride(rt, TUNE_K);
    const size_t as = ts_qtype_row_bytes(ts_act_qtype(hi->act), TUNE_K);
    char *plain = malloc(TUNE_M * prs);
    char *w = aligned_alloc(64, (ts_repack_bytes(rt, TUNE_M, TUNE_K) + 63) & ~(size_t)63);
    char *a = malloc(TUNE_N * as);
    float *y = malloc(TUNE_N * TUNE_M * sizeof(float));
    bool ok = plain && w && a && y && k->quant_act[hi->act];
    if (ok) {
        for (int r = 0; r < TUNE_M; r++)
            ts_quantize_row(bt, x + (size_t)r * TUNE_K, plain + (size_t)r * prs, TUNE_K);
        ts_repack_rows(rt, plain, prs, TUNE_M, TUNE_K, w);
        for (int t = 0; t < TUNE_N; t++)
            k->quant_act[hi->act](x + (size_t)(TUNE_M + t) * TUNE_K, a + (size_t)t * as, TUNE_K);
        time_once(hi->fn, w, ws, a, as, y);
        time_once(lo->fn, w, ws, a, as, y);
        *t_hi = *t_lo = UINT64_MAX;
        for (int i = 0; i < TUNE_REPS; i++) {
            uint64_t th = time_once(hi->fn, w, ws, a, as, y);
            uint64_t tl = time_once(lo->fn, w, ws, a, as, y);
            *t_hi = th < *t_hi ? th : *t_hi;
            *t_lo = tl < *t_lo ? tl : *t_lo;
        }
    }
    free(plain);
    free(w);
    free(a);
    free(y);
    return ok;
}

void ts_kernels_tune(ts_kernels *k, const ts_kernels *alt, char *report, size_t cap)
{
    size_t len = 0;
    if (report && cap)
        report[0] = '\0';
    float *x = malloc((size_t)(TUNE_M + TUNE_N) * TUNE_K * sizeof(float));
    if (!x)
        return;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < (size_t)(TUNE_M + TUNE_N) * TUNE_K; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((int64_t)(rng >> 40) - (1 << 23)) / (float)(1 << 23);
    }
    for (uint32_t rt = TS_QTYPE_COUNT; rt < TS_GEMM_SLOTS; rt++) {
        const ts_gemm_slot *hi = &k->gemm[rt], *lo = &alt->gemm[rt];
        uint64_t th, tl;
        if (!hi->fn || !lo->fn || hi->fn == lo->fn || hi->act != lo->act ||
            !time_pair(rt, k, hi, lo, x, &th, &tl))
            continue;
        const bool swap = (double)tl < TUNE_MARGIN * (double)th;
        if (report && len < cap)
            len += (size_t)snprintf(report + len, cap - len, "%s%s %s (%.0f vs %.0f us)",
                                    len ? ", " : "", ts_qtype_name(ts_repack_base(rt)),
                                    swap ? ts_isa_name(alt->isa) : ts_isa_name(k->isa),
                                    (double)(swap ? tl : th) / 1e3,
                                    (double)(swap ? th : tl) / 1e3);
        if (swap) {
            k->gemm[rt] = *lo;
            k->gemm_tok_block[rt] = alt->gemm_tok_block[rt];
        }
    }
    free(x);
}
