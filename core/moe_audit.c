/*
 * core/moe_audit.c: the routed matmul's audit, like a GPU kernel test
 * (driven by `tessera bench --moe-audit` and tests/test_moe.c).
 *
 * Owns: problem generation (an expert stack of random quantized rows, token
 * lists that gather rows out of order, every other expert left empty), the
 * reference (dequantized weights x dequantized activation rows in double),
 * NaN poisoning and the byte comparison across tile caps and thread counts.
 * Does not own: the routed matmul (core/moe.c), the tolerances (the caller's).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "moe.h"
#include "../quant/quant.h"

typedef struct {
    int64_t n_expert, k, rows, n_x, n_pairs;
    void *w;           /* (n_expert * rows) quantized rows */
    size_t w_stride;
    float *x;          /* (n_x, k) */
    int32_t *off, *tok;
    double *ref, *bound; /* (n_pairs, rows) */
} problem;

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float rng_f(uint64_t *s) { return (float)((double)(rng_next(s) >> 11) * 0x1p-53 * 2.0 - 1.0); }

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static void problem_free(problem *p)
{
    free(p->w);
    free(p->x);
    free(p->off);
    free(p->tok);
    free(p->ref);
    free(p->bound);
}

/* Even experts get n tokens each (odd ones none); expert e's list walks the
 * n_x = n + 3 rows with a stride coprime to n_x, so every gather is out of
 * order and no row repeats within an expert. */
static ts_status problem_make(problem *p, const ts_moe_audit_opts *o, const ts_kernels *kt, int n,
                              uint64_t *rng, ts_err *err)
{
    memset(p, 0, sizeof(*p));
    p->n_expert = o->n_expert;
    p->k = o->k;
    p->rows = o->rows;
    p->n_x = n + 3;
    int64_t active = (o->n_expert + 1) / 2;
    p->n_pairs = active * n;
    p->w_stride = ts_qtype_row_bytes(o->qtype, (uint64_t)o->k);
    size_t nw = (size_t)(o->n_expert * o->rows);
    p->w = malloc(p->w_stride * nw);
    p->x = malloc((size_t)(p->n_x * o->k) * sizeof(float));
    p->off = malloc((size_t)(o->n_expert + 1) * sizeof(int32_t));
    p->tok = malloc((size_t)(p->n_pairs ? p->n_pairs : 1) * sizeof(int32_t));
    p->ref = malloc((size_t)(p->n_pairs * o->rows + 1) * sizeof(double));
    p->bound = malloc((size_t)(p->n_pairs * o->rows + 1) * sizeof(double));
    float *tmp = malloc((size_t)o->k * sizeof(float)), *wd = malloc((size_t)o->k * sizeof(float));
    float *xd = malloc((size_t)(p->n_x * o->k) * sizeof(float));
    int act = ts_moe_act_of(kt, o->qtype);
    void *qrow = malloc(p->w_stride + (size_t)o->k * 4 + 64);
    if (!p->w || !p->x || !p->off || !p->tok || !p->ref || !p->bound || !tmp || !wd || !xd ||
        !qrow) {
        free(tmp);
        free(wd);
        free(xd);
        free(qrow);
        problem_free(p);
        return ts_err_set(err, TS_E_NOMEM, "moe audit: out of memory");
    }
    for (size_t r = 0; r < nw; r++) {
        float scale = 0.25f + (float)(r % 7) * 0.125f;
        for (int64_t i = 0; i < o->k; i++)
            tmp[i] = rng_f(rng) * scale;
        ts_quantize_row(o->qtype, tmp, (char *)p->w + r * p->w_stride, o->k);
    }
    for (int64_t i = 0; i < p->n_x * o->k; i++)
        p->x[i] = rng_f(rng) * 2.0f;
    /* The activation rows as the kernel sees them: quantized, then dequantized. */
    for (int64_t t = 0; t < p->n_x; t++) {
        float *src = p->x + t * o->k, *dst = xd + t * o->k;
        if (act == TS_ACT_F32) {
            memcpy(dst, src, (size_t)o->k * sizeof(float));
        } else {
            kt->quant_act[act](src, qrow, o->k);
            ts_dequantize_row(act == TS_ACT_Q8_0 ? TS_QTYPE_Q8_0 : TS_QTYPE_Q8_K, qrow, dst, o->k);
        }
    }
    int64_t stride = 7;
    while (gcd64(stride, p->n_x) != 1)
        stride += 2;
    int64_t j = 0;
    for (int64_t e = 0; e < o->n_expert; e++) {
        p->off[e] = (int32_t)j;
        if (e % 2 == 0)
            for (int64_t i = 0; i < n; i++)
                p->tok[j++] = (int32_t)((i * stride + e * 5) % p->n_x);
    }
    p->off[o->n_expert] = (int32_t)j;
    const ts_qtraits *tr = ts_qtype_traits(o->qtype);
    double rtol = o->rtol * sqrt((double)(o->k / tr->blck) + 1.0);
    for (int64_t e = 0; e < o->n_expert; e++)
        for (int64_t r = 0; r < o->rows; r++) {
            if (p->off[e + 1] == p->off[e])
                continue;
            ts_dequantize_row(o->qtype, (char *)p->w + (size_t)(e * o->rows + r) * p->w_stride, wd,
                              o->k);
            for (int64_t q = p->off[e]; q < p->off[e + 1]; q++) {
                const float *xr = xd + (int64_t)p->tok[q] * o->k;
                double dot = 0.0, abs_sum = 0.0;
                for (int64_t i = 0; i < o->k; i++) {
                    dot += (double)wd[i] * xr[i];
                    abs_sum += fabs((double)wd[i] * xr[i]);
                }
                p->ref[q * o->rows + r] = dot;
                p->bound[q * o->rows + r] = o->atol + rtol * abs_sum;
            }
        }
    free(tmp);
    free(wd);
    free(xd);
    free(qrow);
    return TS_OK;
}

static void logf_(const ts_moe_audit_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void logf_(const ts_moe_audit_opts *o, const char *fmt, ...)
{
    if (!o->log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    o->log(o->log_ctx, line);
}

ts_status ts_moe_audit(const ts_moe_audit_opts *o, ts_moe_audit_result *r, ts_err *err)
{
    memset(r, 0, sizeof(*r));
    const ts_qtraits *tr = ts_qtype_traits(o->qtype);
    if (!tr || !tr->supported || o->k <= 0 || o->k % tr->blck || o->rows <= 0 ||
        o->n_expert <= 0 || o->n_threads <= 0 || o->n_caps <= 0 || o->n_threads > 16)
        return ts_err_set(err, TS_E_ARG, "moe audit: bad options (type %s, k %lld)",
                          ts_qtype_name(o->qtype), (long long)o->k);
    ts_kernels kt;
    ts_kernels_init(&kt, ts_isa_from_env());
    int act = ts_moe_act_of(&kt, o->qtype);
    if (act == TS_ACT_Q8_1 || (act == TS_ACT_F32 && !kt.gemm[o->qtype].fn))
        return ts_err_set(err, TS_E_UNSUPPORTED, "moe audit: %s (no Q8_0/Q8_K/f32 kernel)",
                          ts_qtype_name(o->qtype));
    int max_n = 1;
    for (int i = 0; i < o->n_counts; i++)
        max_n = o->counts[i] > max_n ? o->counts[i] : max_n;
    int64_t active = (o->n_expert + 1) / 2;
    ts_moe_dims d = {.max_tok = max_n + 3, .max_pairs = active * max_n, .n_expert = o->n_expert,
                     .max_k = o->k, .x_acts = 1u << act};
    ts_pool *pools[16] = {0};
    ts_moe *mos[16] = {0};
    ts_status st = TS_OK;
    for (int i = 0; i < o->n_threads && st == TS_OK; i++) {
        ts_pool_opts po = {.n_threads = o->threads[i], .no_pin_caller = true};
        st = ts_pool_create(&pools[i], &po, err);
        if (st == TS_OK)
            st = ts_moe_create(&mos[i], pools[i], &d, err);
    }
    uint64_t rng = o->seed | 1;
    size_t y_stride = (size_t)(o->rows + 3) * sizeof(float);
    float *y = malloc(y_stride * (size_t)d.max_pairs), *y0 = malloc(y_stride * (size_t)d.max_pairs);
    if (st == TS_OK && (!y || !y0))
        st = ts_err_set(err, TS_E_NOMEM, "moe audit: out of memory");
    ts_qview w = {.qtype = o->qtype, .rows = o->rows, .cols = o->k};
    for (int ci = 0; ci < o->n_counts && st == TS_OK; ci++) {
        problem p;
        st = problem_make(&p, o, &kt, o->counts[ci], &rng, err);
        if (st != TS_OK)
            break;
        w.data = p.w;
        w.row_stride = p.w_stride;
        size_t bytes = y_stride * (size_t)p.n_pairs;
        int unwritten = 0, out_tol = 0, mismatch = 0;
        double worst = 0.0;
        for (int ti = 0; ti < o->n_threads; ti++)
            for (int cp = 0; cp < o->n_caps; cp++) {
                bool first = ti == 0 && cp == 0;
                float *out = first ? y0 : y;
                for (size_t i = 0; i < bytes / sizeof(float); i++)
                    out[i] = NAN;
                ts_moe_set_tile_max(mos[ti], o->caps[cp]);
                ts_moe_matmul(mos[ti], &w, p.n_expert, p.off, p.tok, p.x, (size_t)o->k * 4, p.n_x,
                              out, y_stride);
                r->n_configs++;
                for (int64_t q = 0; q < p.n_pairs; q++)
                    for (int64_t c = 0; c < o->rows; c++) {
                        float v = ((float *)((char *)out + (size_t)q * y_stride))[c];
                        if (isnan(v)) {
                            unwritten++;
                            continue;
                        }
                        if (!first)
                            continue;
                        double e = fabs((double)v - p.ref[q * o->rows + c]);
                        double b = p.bound[q * o->rows + c];
                        worst = e / b > worst ? e / b : worst;
                        out_tol += !(e <= b);
                    }
                /* The rows only (the 3 pad floats stay NaN in both). */
                if (!first)
                    for (int64_t q = 0; q < p.n_pairs; q++)
                        if (memcmp((char *)out + (size_t)q * y_stride,
                                   (char *)y0 + (size_t)q * y_stride,
                                   (size_t)o->rows * sizeof(float))) {
                            mismatch++;
                            break;
                        }
            }
        /* The engine's load-time repack (core/place.c): per expert, in two
         * expert ranges; every configuration again, byte for byte vs y0. */
        uint32_t rt = o->no_repack ? 0 : ts_kernels_repack_type(&kt, o->qtype);
        int n_rep = 0;
        if (rt && st == TS_OK) {
            ts_qview rv = ts_moe_repacked_view(&w, rt, NULL);
            size_t rbytes = ts_moe_expert_bytes(&rv) * (size_t)p.n_expert;
            void *rbuf = aligned_alloc(64, (rbytes + 63) & ~(size_t)63);
            if (!rbuf) {
                st = ts_err_set(err, TS_E_NOMEM, "moe audit: out of memory (repack)");
            } else {
                rv.data = rbuf;
                ts_moe_repack_experts(&w, &rv, 0, p.n_expert / 2);
                ts_moe_repack_experts(&w, &rv, p.n_expert / 2, p.n_expert);
                for (int ti = 0; ti < o->n_threads; ti++)
                    for (int cp = 0; cp < o->n_caps; cp++) {
                        for (size_t i = 0; i < bytes / sizeof(float); i++)
                            y[i] = NAN;
                        ts_moe_set_tile_max(mos[ti], o->caps[cp]);
                        ts_moe_matmul(mos[ti], &rv, p.n_expert, p.off, p.tok, p.x,
                                      (size_t)o->k * 4, p.n_x, y, y_stride);
                        r->n_configs++;
                        n_rep++;
                        for (int64_t q = 0; q < p.n_pairs; q++) {
                            const float *v = (const float *)((char *)y + (size_t)q * y_stride);
                            for (int64_t c = 0; c < o->rows; c++)
                                unwritten += isnan(v[c]) != 0;
                            if (memcmp(v, (char *)y0 + (size_t)q * y_stride,
                                       (size_t)o->rows * sizeof(float))) {
                                mismatch++;
                                break;
                            }
                        }
                    }
                free(rbuf);
            }
        }
        r->n_repacked_configs += n_rep;
        logf_(o, "%-6s k=%lld rows=%lld experts=%lld tokens/expert=%4d pairs=%5lld: "
              "%d configs (%d on %s_R16), unwritten %d, out of tol %d, not identical %d, "
              "worst err/bound %.3f",
              ts_qtype_name(o->qtype), (long long)o->k, (long long)o->rows,
              (long long)o->n_expert, o->counts[ci], (long long)p.n_pairs,
              o->n_threads * o->n_caps + n_rep, n_rep, rt ? ts_qtype_name(o->qtype) : "-",
              unwritten, out_tol, mismatch, worst);
        r->n_problems++;
        r->n_unwritten += unwritten;
        r->n_out_of_tol += out_tol;
        r->n_mismatch += mismatch;
        r->worst = worst > r->worst ? worst : r->worst;
        problem_free(&p);
    }
    free(y);
    free(y0);
    for (int i = 0; i < o->n_threads; i++) {
        ts_moe_destroy(mos[i]);
        ts_pool_destroy(pools[i]);
    }
    return st;
}
