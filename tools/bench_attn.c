/*
 * tools/bench_attn.c: `tessera bench --attn`: the attention kernel alone
 * against the peak of the instructions it runs on.
 *
 * One KV head of Llama-3.2-1B's shape (head_dim 64, a GQA group of 4 query
 * heads), n_q queries ending at position n_kv - 1, one thread, the kernel
 * level of TESSERA_ISA (the one inference uses), for n_q in {1, 64, 512} x
 * n_kv in {4096, 16384, 32768} (or -p / -d lists). Flops: 4 * head_dim per
 * (row, key) pair (QK^T and P.V, a multiply-add counting 2). Peak: the
 * level's f32 FMA probe for the plain K types; a quantized K cache does QK^T
 * as int8 dot products (ops.h), so its peak is the harmonic blend of the int8
 * probe (VNNI level: AMX tiles are not what this kernel uses) for the QK half
 * and the FMA probe for the P.V half. Median of -r runs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_attn.h"
#include "cmds.h"
#include "peak.h"
#include "../simd/kernels.h"

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int ts_bench_attn(const ts_bench_attn_opts *o)
{
    const int64_t hd = 64, grp = 4;
    static const long long dq[] = {1, 64, 512}, dkv[] = {4096, 16384, 32768};
    const long long *nqs = o->n_q_n ? o->n_q : dq, *nkvs = o->n_kv_n ? o->n_kv : dkv;
    const int nq_n = o->n_q_n ? o->n_q_n : 3, nkv_n = o->n_kv_n ? o->n_kv_n : 3;
    for (int t = 0; t < 2; t++)
        if (!ts_attn_type_ok(t ? o->vt : o->kt, hd)) {
            ts_cli_error("bench", "--attn: KV type %d", t ? o->vt : o->kt);
            return 1;
        }
    ts_kernels k;
    const ts_isa isa = ts_isa_from_env();
    ts_kernels_init(&k, isa);
    const char *pf = "", *pi = "";
    const double peak_f = ts_peak_probe((int)isa, true, &pf);
    const int vnni = (int)isa < (int)TS_ISA_AVX512 ? (int)isa : (int)TS_ISA_AVX512;
    const bool qk_int = ts_attn_type_quant(o->kt); /* integer scores (ops.h) */
    const double peak_i = qk_int ? ts_peak_probe(vnni, false, &pi) : 0.0;
    const double peak = qk_int ? 1.0 / (0.5 / peak_i + 0.5 / peak_f) : peak_f;
    char kvd[16];
    ts_cli_kv_desc(o->kt, o->vt, kvd, sizeof(kvd));
    printf("attention kernel %s, KV %s, head_dim %lld, GQA %lld, 1 thread\n", k.ops.attn_name, kvd,
           (long long)hd, (long long)grp);
    printf("peak per core: f32 FMA %.1f GFLOP/s (%s)", peak_f, pf);
    if (peak_i > 0)
        printf(", int8 %.1f GOP/s (%s); blend for QK int8 + PV f32: %.1f", peak_i, pi, peak);
    printf("\n\n| n_q | n_kv | ms | GFLOP/s | %% of peak |\n| ---: | ---: | ---: | ---: | ---: |\n");
    long long max_kv = 0, max_q = 0;
    for (int i = 0; i < nkv_n; i++)
        max_kv = nkvs[i] > max_kv ? nkvs[i] : max_kv;
    for (int i = 0; i < nq_n; i++)
        max_q = nqs[i] > max_q ? nqs[i] : max_q;
    const int64_t nblk = (max_kv + 63) / 64;
    const size_t kbb = ts_attn_kblock_bytes(o->kt, hd), vbb = ts_attn_vblock_bytes(o->vt, hd);
    uint8_t *kc = malloc((size_t)nblk * kbb), *vc = malloc((size_t)nblk * vbb);
    const size_t qs = (size_t)(grp * hd) * sizeof(float);
    float *q = malloc((size_t)max_q * qs), *out = malloc((size_t)max_q * qs);
    if (!kc || !vc || !q || !out) {
        free(kc), free(vc), free(q), free(out);
        ts_cli_error("bench", "--attn: out of memory");
        return 1;
    }
    uint64_t rng = 0x5eedull;
    float row[64];
    for (int64_t p = 0; p < nblk * 64; p++) {
        for (int w = 0; w < 2; w++) {
            for (int64_t d = 0; d < hd; d++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                row[d] = (float)((double)(rng >> 40) / (double)(1 << 24) - 0.5);
            }
            if (w == 0)
                ts_attn_store_k(o->kt, kc + (size_t)(p / 64) * kbb, hd, p % 64, row);
            else
                ts_attn_store_v(o->vt, vc + (size_t)(p / 64) * vbb, hd, p % 64, row);
        }
    }
    for (size_t i = 0; i < (size_t)max_q * (size_t)(grp * hd); i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        q[i] = (float)((double)(rng >> 40) / (double)(1 << 24) - 0.5);
    }
    double t_ms[TS_BENCH_ATTN_REPS];
    for (int a = 0; a < nkv_n; a++)
        for (int b = 0; b < nq_n; b++) {
            const long long nkv = nkvs[a], nq = nqs[b] < nkv ? nqs[b] : nkv;
            ts_attn_args args = {.q = q, .out = out, .k = kc, .v = vc, .q_stride = qs,
                                 .out_stride = qs, .head_dim = hd, .n_q = nq, .n_grp = grp,
                                 .pos0 = nkv - nq, .scale = 0.125f, .k_type = o->kt,
                                 .v_type = o->vt};
            k.ops.attn(&args); /* warm-up */
            for (long long r = 0; r < o->reps; r++) {
                double t0 = ts_cli_now_s();
                k.ops.attn(&args);
                t_ms[r] = 1e3 * (ts_cli_now_s() - t0);
            }
            qsort(t_ms, (size_t)o->reps, sizeof(double), cmp_d);
            const double ms = o->reps % 2 ? t_ms[o->reps / 2]
                                          : 0.5 * (t_ms[o->reps / 2 - 1] + t_ms[o->reps / 2]);
            /* rows of keys: query i attends pos0 + i + 1 keys */
            const double pairs = (double)grp * ((double)nq * (double)(nkv - nq) +
                                                (double)nq * (double)(nq + 1) / 2.0);
            const double gf = 4.0 * (double)hd * pairs / (ms * 1e-3) / 1e9;
            printf("| %lld | %lld | %.3f | %.1f | %.0f%% |\n", nq, nkv, ms, gf,
                   peak > 0 ? 100.0 * gf / peak : 0.0);
            fflush(stdout);
        }
    free(kc), free(vc), free(q), free(out);
    return 0;
}
