/*
 * tests/test_attn.c: the attention and per-token kernels (simd/ops.h), every
 * level the host has.
 *
 * Oracle chain (STYLE §11): a double-precision softmax(qK^T)V, norm, rope and
 * SwiGLU are the truth for the scalar level (tolerance); every other level
 * must give the scalar level's bits (memcmp: the kernels follow one canonical
 * order with the same roundings, ops.h). Within a level, a query's output is
 * the same whether it runs alone or inside a block of queries (determinism
 * across chunks and tiles). Outputs and row padding are NaN-poisoned.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "../quant/quant.h"
#include "../simd/kernels.h"
#include "levels.h"
#include "../simd/scalar/exp_canon.h"

/* One attention case: a KV head's cache of n_pos positions in the kernel
 * layout (K of type kt, V of type vt) plus the same values, decoded, as f32
 * rows for the reference. */
typedef struct {
    int64_t hd, n_pos, grp, n_q, pos0;
    int kt, vt;
    void *k, *v;         /* kernel layout, n_pos padded to 64 */
    float *kr, *vr;      /* (n_pos, hd) values as stored (rounded / quantized) */
    float *q;            /* (n_q, q_stride) */
    size_t q_stride;     /* bytes; > grp * hd floats: a padded row */
} acase;

static const char *tname(int t)
{
    static const char *const n[] = {"f16", "f32", "bf16", "q8_0", "q4_0"};
    return n[t];
}

/* Position p of the case's cache from hd floats of K and of V. */
static void case_store(acase *c, int64_t p, const float *kf, const float *vf)
{
    const size_t kbb = ts_attn_kblock_bytes(c->kt, c->hd), vbb = ts_attn_vblock_bytes(c->vt, c->hd);
    ts_attn_store_k(c->kt, (uint8_t *)c->k + (size_t)(p / 64) * kbb, c->hd, p % 64, kf);
    ts_attn_store_v(c->vt, (uint8_t *)c->v + (size_t)(p / 64) * vbb, c->hd, p % 64, vf);
}

static void case_init(acase *c, int64_t hd, int64_t n_pos, int64_t grp, int64_t n_q, int kt,
                      int vt, uint64_t seed)
{
    memset(c, 0, sizeof(*c));
    c->hd = hd, c->n_pos = n_pos, c->grp = grp, c->n_q = n_q, c->kt = kt, c->vt = vt;
    c->pos0 = n_pos - n_q;
    const int64_t nblk = (n_pos + 63) / 64;
    const size_t kbb = ts_attn_kblock_bytes(kt, hd), vbb = ts_attn_vblock_bytes(vt, hd);
    c->k = calloc((size_t)nblk, kbb);
    c->v = calloc((size_t)nblk, vbb);
    c->kr = malloc((size_t)(n_pos * hd) * sizeof(float));
    c->vr = malloc((size_t)(n_pos * hd) * sizeof(float));
    c->q_stride = (size_t)(grp * hd + 5) * sizeof(float);
    c->q = malloc((size_t)n_q * c->q_stride);
    float kf[TS_ATTN_MAX_HD], vf[TS_ATTN_MAX_HD];
    uint64_t rng = seed;
    for (int64_t p = 0; p < n_pos; p++) {
        for (int64_t d = 0; d < hd; d++) {
            kf[d] = 2.0f * ts_test_randf(&rng);
            vf[d] = ts_test_randf(&rng);
        }
        case_store(c, p, kf, vf);
        const uint8_t *kb = (const uint8_t *)c->k + (size_t)(p / 64) * kbb;
        const uint8_t *vb = (const uint8_t *)c->v + (size_t)(p / 64) * vbb;
        for (int64_t d = 0; d < hd; d++) {
            c->kr[p * hd + d] = ts_attn_load_k(kt, kb, hd, p % 64, d);
            c->vr[p * hd + d] = ts_attn_load_v(vt, vb, hd, p % 64, d);
        }
    }
    for (size_t i = 0; i < (size_t)n_q * c->q_stride / sizeof(float); i++)
        c->q[i] = ts_test_randf(&rng);
}

static void case_free(acase *c)
{
    free(c->k), free(c->v), free(c->kr), free(c->vr), free(c->q);
}

/* Runs queries [i0, i0 + n) of the case into out (rows q_stride apart,
 * NaN-poisoned first by the caller). */
static void run(const ts_kernels *kt, const acase *c, int64_t i0, int64_t n, float *out)
{
    ts_attn_args a = {
        .q = (const float *)((const char *)c->q + (size_t)i0 * c->q_stride),
        .out = (float *)((char *)out + (size_t)i0 * c->q_stride),
        .k = c->k, .v = c->v, .q_stride = c->q_stride, .out_stride = c->q_stride,
        .head_dim = c->hd, .n_q = n, .n_grp = c->grp, .pos0 = c->pos0 + i0,
        .scale = 1.0f / sqrtf((float)c->hd), .k_type = c->kt, .v_type = c->vt,
    };
    kt->ops.attn(&a);
}

static float *poisoned(const acase *c)
{
    size_t n = (size_t)c->n_q * c->q_stride / sizeof(float);
    float *o = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        o[i] = NAN;
    return o;
}

/* Written rows finite, row padding still NaN; scalar against double softmax. */
static void check_ref(const acase *c, const float *o, bool vs_double)
{
    const float scale = 1.0f / sqrtf((float)c->hd);
    double *sc = malloc((size_t)c->n_pos * sizeof(double));
    for (int64_t i = 0; i < c->n_q; i++) {
        const float *orow = (const float *)((const char *)o + (size_t)i * c->q_stride);
        const float *qrow = (const float *)((const char *)c->q + (size_t)i * c->q_stride);
        TS_CHECK(isnan(orow[c->grp * c->hd]), "row %lld padding overwritten", (long long)i);
        for (int64_t g = 0; g < c->grp; g++) {
            const float *qv = qrow + g * c->hd, *ov = orow + g * c->hd;
            /* a q8_0 K cache scores the query as q8_0 (ops.h): the truth uses it too */
            float qd[TS_ATTN_MAX_HD];
            if (ts_attn_type_quant(c->kt)) {
                ts_block_q8_0 qq[TS_ATTN_MAX_HD / 32];
                ts_attn_quant_q8_0(qv, qq, c->hd);
                ts_dequant_q8_0_scalar(qq, qd, c->hd);
                qv = qd;
            }
            int64_t p = c->pos0 + i;
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j <= p; j++) {
                double s = 0;
                for (int64_t d = 0; d < c->hd; d++)
                    s += (double)qv[d] * c->kr[j * c->hd + d];
                sc[j] = s * scale;
                mx = sc[j] > mx ? sc[j] : mx;
            }
            for (int64_t j = 0; j <= p; j++)
                sum += (sc[j] = exp(sc[j] - mx));
            for (int64_t d = 0; d < c->hd; d++) {
                double y = 0, ya = 0;
                for (int64_t j = 0; j <= p; j++) {
                    y += sc[j] * c->vr[j * c->hd + d];
                    ya += sc[j] * fabs(c->vr[j * c->hd + d]);
                }
                y /= sum, ya /= sum;
                if (!isfinite(ov[d])) {
                    TS_CHECK(0, "hd %lld pos %lld: out[%lld] not finite", (long long)c->hd,
                             (long long)p, (long long)d);
                    break;
                }
                /* Float scores err by ~hd ulp * |q||k|; exp / sums a few ulp. */
                double tol = 1e-6 + 2e-5 * ya;
                /* q8_0 V: the weights rounded to int16 per chunk (2^-16 of the
                 * largest), a further ~1e-4 relative (ops.h) */
                if (c->vt == TS_ATTN_Q8_0)
                    tol += 1e-4 * (ya + 0.1);
                if (vs_double && fabs(ov[d] - y) > tol) {
                    TS_CHECK(0, "hd %lld n_pos %lld grp %lld pos %lld d %lld: %g vs %g",
                             (long long)c->hd, (long long)c->n_pos, (long long)c->grp,
                             (long long)p, (long long)d, ov[d], y);
                    break;
                }
            }
        }
    }
    free(sc);
}

TS_TEST(test_attn_levels_vs_scalar)
{
    static const int64_t n_pos[] = {1, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000};
    static const int64_t hds[] = {64, 128, 8, 80, 96};
    static const int64_t grps[] = {1, 4, 7};
    /* (K, V) type pairs: every type on both sides, mixed pairs as llama.cpp allows */
    static const int kv[][2] = {{TS_ATTN_F32, TS_ATTN_F32},   {TS_ATTN_F16, TS_ATTN_F16},
                                {TS_ATTN_BF16, TS_ATTN_BF16}, {TS_ATTN_Q8_0, TS_ATTN_Q8_0},
                                {TS_ATTN_Q4_0, TS_ATTN_Q4_0}, {TS_ATTN_Q8_0, TS_ATTN_F16},
                                {TS_ATTN_F16, TS_ATTN_Q4_0},  {TS_ATTN_BF16, TS_ATTN_Q8_0}};
    ts_isa lv[4];
    int n_lv = ts_test_levels(lv);
    ts_kernels ref, kt;
    ts_kernels_init(&ref, TS_ISA_SCALAR);
    for (size_t a = 0; a < sizeof(n_pos) / sizeof(n_pos[0]); a++)
        for (size_t b = 0; b < sizeof(hds) / sizeof(hds[0]); b++)
            for (size_t g = 0; g < sizeof(grps) / sizeof(grps[0]); g++)
                for (size_t t = 0; t < sizeof(kv) / sizeof(kv[0]); t++) {
                    const int kty = kv[t][0], vty = kv[t][1];
                    if (hds[b] != 64 && (n_pos[a] == 1000 || n_pos[a] % 32 == 0))
                        continue; /* keep the ASan run short: odd dims on a subset */
                    if (!ts_attn_type_ok(kty, hds[b]) || !ts_attn_type_ok(vty, hds[b]))
                        continue;
                    if (t >= 2 && (n_pos[a] == 1000 || g == 2) && hds[b] != 64)
                        continue; /* the other types: long / odd-group cases at hd 64 */
                    int64_t nq = n_pos[a] < 6 ? n_pos[a] : 6;
                    acase c;
                    case_init(&c, hds[b], n_pos[a], grps[g], nq, kty, vty,
                              0xa77 + 131 * a + 17 * b + 3 * g + 5 * (uint64_t)t);
                    float *want = poisoned(&c);
                    run(&ref, &c, 0, nq, want);
                    check_ref(&c, want, true);
                    for (int l = 1; l < n_lv; l++) {
                        ts_kernels_init(&kt, lv[l]);
                        float *got = poisoned(&c);
                        run(&kt, &c, 0, nq, got);
                        check_ref(&c, got, false);
                        size_t bytes = (size_t)nq * c.q_stride;
                        /* NaN padding compares equal bitwise (same poison). */
                        TS_CHECK(!memcmp(want, got, bytes),
                                 "%s: hd %lld n_pos %lld grp %lld K %s V %s differs from scalar",
                                 ts_isa_name(lv[l]), (long long)c.hd, (long long)c.n_pos,
                                 (long long)c.grp, tname(kty), tname(vty));
                        free(got);
                    }
                    free(want);
                    case_free(&c);
                }
}

/* A query gives the same bits alone (n_q = 1) as inside a block of queries
 * at any offset, on every level: what chunked prefill and tiling rely on. */
TS_TEST(test_attn_query_alone_vs_block)
{
    static const int64_t grps[] = {1, 4, 7};
    ts_isa lv[4];
    int n_lv = ts_test_levels(lv);
    for (int l = 0; l < n_lv; l++) {
        ts_kernels kt;
        ts_kernels_init(&kt, lv[l]);
        for (size_t g = 0; g < 3; g++)
            for (int t = 0; t < TS_ATTN_NTYPES; t++) {
                const int f16 = t; /* the type, for the messages */
                acase c;
                case_init(&c, 64, 200, grps[g], 37, t, (t + 3) % TS_ATTN_NTYPES, 99 + g);
                float *blk = poisoned(&c), *one = poisoned(&c);
                run(&kt, &c, 0, c.n_q, blk);
                for (int64_t i = 0; i < c.n_q; i++)
                    run(&kt, &c, i, 1, one);
                TS_CHECK(!memcmp(blk, one, (size_t)c.n_q * c.q_stride),
                         "%s grp %lld K type %d: block != one query at a time",
                         ts_isa_name(lv[l]), (long long)grps[g], f16);
                /* Odd split: [0, 5), [5, 18), [18, 37). */
                float *spl = poisoned(&c);
                run(&kt, &c, 0, 5, spl);
                run(&kt, &c, 5, 13, spl);
                run(&kt, &c, 18, 19, spl);
                TS_CHECK(!memcmp(blk, spl, (size_t)c.n_q * c.q_stride),
                         "%s grp %lld K type %d: split block differs", ts_isa_name(lv[l]),
                         (long long)grps[g], f16);
                free(blk), free(one), free(spl);
                case_free(&c);
            }
    }
}

/* Canonical exp: close to exp() over the range, edges as documented. */
TS_TEST(test_attn_exp_canon)
{
    double worst = 0;
    for (float x = -87.0f; x < 88.0f; x += 0.01371f) {
        double e = exp((double)x), r = fabs(s_exp_canon(x) - e) / e;
        worst = r > worst ? r : worst;
    }
    TS_CHECK(worst < 4e-7, "exp_canon max rel error %g", worst);
    TS_CHECK(s_exp_canon(-INFINITY) == 0.0f && s_exp_canon(-100.0f) == 0.0f, "underflow");
    TS_CHECK(isinf(s_exp_canon(89.0f)) && isnan(s_exp_canon(NAN)), "overflow / NaN");
    TS_CHECK(s_exp_canon(0.0f) == 1.0f, "exp(0) = %g", s_exp_canon(0.0f));
}

static float *nan_buf(int64_t n)
{
    float *b = malloc((size_t)(n + 8) * sizeof(float));
    for (int64_t i = 0; i < n + 8; i++)
        b[i] = NAN;
    return b;
}

/* RMSNorm (with and without the fused add), RoPE, SwiGLU: scalar against a
 * double reference, every level against scalar with memcmp; tails poisoned. */
TS_TEST(test_attn_elementwise_levels)
{
    static const int64_t ns[] = {1, 7, 15, 16, 17, 64, 100, 2048};
    ts_isa lv[4];
    int n_lv = ts_test_levels(lv);
    ts_kernels ref, kt;
    ts_kernels_init(&ref, TS_ISA_SCALAR);
    uint64_t rng = 5;
    for (size_t t = 0; t < sizeof(ns) / sizeof(ns[0]); t++) {
        int64_t n = ns[t];
        float *x = nan_buf(n), *ad = nan_buf(n), *w = nan_buf(n);
        for (int64_t i = 0; i < n; i++) {
            x[i] = 4.0f * ts_test_randf(&rng);
            ad[i] = ts_test_randf(&rng);
            w[i] = 1.0f + 0.5f * ts_test_randf(&rng);
        }
        if (n == 100) /* adversarial: large magnitudes for SwiGLU's exp */
            for (int64_t i = 0; i < n; i++)
                x[i] = (i & 1 ? -1.0f : 1.0f) * (float)(i * 2);
        for (int l = 0; l < n_lv; l++) {
            ts_kernels_init(&kt, lv[l]);
            for (int use_add = 0; use_add < 2; use_add++) {
                float *x0 = nan_buf(n), *x1 = nan_buf(n), *y0 = nan_buf(n), *y1 = nan_buf(n);
                memcpy(x0, x, (size_t)n * 4), memcpy(x1, x, (size_t)n * 4);
                ref.ops.rmsnorm(x0, use_add ? ad : NULL, w, y0, n, 1e-5f);
                kt.ops.rmsnorm(x1, use_add ? ad : NULL, w, y1, n, 1e-5f);
                TS_CHECK(!memcmp(y0, y1, (size_t)(n + 8) * 4) && !memcmp(x0, x1, (size_t)(n + 8) * 4),
                         "%s rmsnorm n %lld add %d", ts_isa_name(lv[l]), (long long)n, use_add);
                double ss = 0;
                for (int64_t i = 0; i < n; i++) {
                    double xi = (double)x[i] + (use_add ? ad[i] : 0.0);
                    ss += xi * xi;
                }
                double sc = 1.0 / sqrt(ss / (double)n + 1e-5);
                for (int64_t i = 0; l == 0 && i < n; i++) {
                    double xi = (double)x[i] + (use_add ? ad[i] : 0.0);
                    if (fabs(y0[i] - xi * sc * w[i]) > 1e-6 + 1e-6 * fabs(xi * sc * w[i])) {
                        TS_CHECK(0, "rmsnorm ref n %lld i %lld", (long long)n, (long long)i);
                        break;
                    }
                }
                TS_CHECK(isnan(y1[n]) && isnan(x1[n]), "rmsnorm wrote past n");
                free(x0), free(x1), free(y0), free(y1);
            }
            float *a0 = nan_buf(n), *a1 = nan_buf(n);
            memcpy(a0, x, (size_t)n * 4), memcpy(a1, x, (size_t)n * 4);
            ref.ops.swiglu(a0, w, n);
            kt.ops.swiglu(a1, w, n);
            TS_CHECK(!memcmp(a0, a1, (size_t)(n + 8) * 4), "%s swiglu n %lld", ts_isa_name(lv[l]),
                     (long long)n);
            for (int64_t i = 0; l == 0 && i < n; i++) {
                double r = (double)x[i] / (1.0 + exp(-(double)x[i])) * w[i];
                if (fabs(a0[i] - r) > 1e-30 + 1e-6 * fabs(r)) {
                    TS_CHECK(0, "swiglu ref x %g: %g vs %g", x[i], a0[i], r);
                    break;
                }
            }
            TS_CHECK(isnan(a1[n]), "swiglu wrote past n");
            free(a0), free(a1);
        }
        free(x), free(ad), free(w);
    }
}

TS_TEST(test_attn_rope_levels)
{
    static const struct { int64_t n_head, hd, n_rot; } sh[] = {
        {1, 64, 64}, {3, 128, 128}, {2, 80, 80}, {4, 64, 32}, {1, 8, 6}, {5, 128, 100}};
    ts_isa lv[4];
    int n_lv = ts_test_levels(lv);
    ts_kernels ref, kt;
    ts_kernels_init(&ref, TS_ISA_SCALAR);
    uint64_t rng = 11;
    for (size_t t = 0; t < sizeof(sh) / sizeof(sh[0]); t++) {
        int64_t n = sh[t].n_head * sh[t].hd, half = sh[t].n_rot / 2;
        float *x = nan_buf(n), *cs = nan_buf(sh[t].n_rot);
        for (int64_t i = 0; i < n; i++)
            x[i] = ts_test_randf(&rng);
        for (int64_t i = 0; i < half; i++) {
            float th = 37.0f * powf(10000.0f, -2.0f * (float)i / (float)sh[t].n_rot);
            cs[i] = cosf(th), cs[half + i] = sinf(th);
        }
        for (int neox = 0; neox < 2; neox++) {
            float *x0 = nan_buf(n);
            memcpy(x0, x, (size_t)n * 4);
            ref.ops.rope(x0, cs, sh[t].n_head, sh[t].hd, sh[t].n_rot, neox);
            for (int64_t h = 0; h < sh[t].n_head; h++)
                for (int64_t i = 0; i < half; i++) {
                    int64_t ia = neox ? i : 2 * i, ib = neox ? i + half : 2 * i + 1;
                    const float *v = x + h * sh[t].hd;
                    double r0 = (double)v[ia] * cs[i] - (double)v[ib] * cs[half + i];
                    TS_CHECK(fabs(x0[h * sh[t].hd + ia] - r0) < 1e-6, "rope ref");
                }
            for (int64_t i = sh[t].n_rot; i < sh[t].hd; i++)
                TS_CHECK(x0[i] == x[i], "rope touched dim %lld >= n_rot", (long long)i);
            for (int l = 1; l < n_lv; l++) {
                ts_kernels_init(&kt, lv[l]);
                float *x1 = nan_buf(n);
                memcpy(x1, x, (size_t)n * 4);
                kt.ops.rope(x1, cs, sh[t].n_head, sh[t].hd, sh[t].n_rot, neox);
                TS_CHECK(!memcmp(x0, x1, (size_t)(n + 8) * 4), "%s rope shape %zu neox %d",
                         ts_isa_name(lv[l]), t, neox);
                free(x1);
            }
            free(x0);
        }
        free(x), free(cs);
    }
}

/* Paged cache: the case's key blocks scattered over shuffled pages of a pool
 * (page strides larger than a block, like core/kv.c's pool), with NaN in
 * every slot no row may read (past the last position, unused pages): each
 * level gives the contiguous scalar bits. */
TS_TEST(test_attn_paged_vs_contiguous)
{
    static const int64_t n_pos[] = {1, 63, 64, 65, 200};
    ts_isa lv[4];
    int n_lv = ts_test_levels(lv);
    ts_kernels ref, kt;
    ts_kernels_init(&ref, TS_ISA_SCALAR);
    float nanrow[TS_ATTN_MAX_HD];
    for (int d = 0; d < TS_ATTN_MAX_HD; d++)
        nanrow[d] = NAN;
    for (size_t a = 0; a < sizeof(n_pos) / sizeof(n_pos[0]); a++)
        for (int t = 0; t < TS_ATTN_NTYPES; t++) {
            /* hd 80 for the plain types, 96 (a multiple of 32) for the quantized */
            const int kty = t, vty = (t + 2) % TS_ATTN_NTYPES;
            const int64_t hd = ts_attn_type_quant(kty) || ts_attn_type_quant(vty) ? 96 : 80;
            const int64_t grp = 3, nq = n_pos[a] < 5 ? n_pos[a] : 5;
            acase c;
            case_init(&c, hd, n_pos[a], grp, nq, kty, vty, 0x9a6e + 7 * a + (uint64_t)t);
            float *want = poisoned(&c);
            run(&ref, &c, 0, nq, want);
            const int64_t n_blk = (n_pos[a] + 63) / 64;
            const int64_t n_pages = 2 * n_blk + 1;
            const size_t kblk = ts_attn_kblock_bytes(kty, hd), vblk = ts_attn_vblock_bytes(vty, hd);
            const size_t kps = kblk + 192, vps = vblk + 320; /* room for other heads */
            uint8_t *kp = malloc(kps * (size_t)n_pages), *vp = malloc(vps * (size_t)n_pages);
            memset(kp, 0xff, kps * (size_t)n_pages); /* all-ones: NaN (or a NaN scale) */
            memset(vp, 0xff, vps * (size_t)n_pages);
            int32_t pages[8];
            for (int64_t b = 0; b < n_blk; b++) {
                pages[b] = (int32_t)((n_pages - 1 - 2 * b) % n_pages); /* reversed, gapped */
                memcpy(kp + (size_t)pages[b] * kps, (const uint8_t *)c.k + (size_t)b * kblk, kblk);
                memcpy(vp + (size_t)pages[b] * vps, (const uint8_t *)c.v + (size_t)b * vblk, vblk);
            }
            /* Slots past the last position: poison them (NaN rows) in the paged copy. */
            for (int64_t p = n_pos[a]; p < n_blk * 64; p++) {
                ts_attn_store_k(kty, kp + (size_t)pages[p / 64] * kps, hd, p % 64, nanrow);
                ts_attn_store_v(vty, vp + (size_t)pages[p / 64] * vps, hd, p % 64, nanrow);
            }
            for (int l = 0; l < n_lv; l++) {
                ts_kernels_init(&kt, lv[l]);
                float *got = poisoned(&c);
                ts_attn_args args = {
                    .q = c.q, .out = got, .k = kp, .v = vp, .q_stride = c.q_stride,
                    .out_stride = c.q_stride, .head_dim = hd, .n_q = nq, .n_grp = grp,
                    .pos0 = c.pos0, .scale = 1.0f / sqrtf((float)hd), .pages = pages,
                    .k_page_stride = kps, .v_page_stride = vps, .k_type = kty, .v_type = vty,
                };
                kt.ops.attn(&args);
                TS_CHECK(!memcmp(want, got, (size_t)nq * c.q_stride),
                         "%s: paged n_pos %lld K %s V %s differs from contiguous scalar",
                         ts_isa_name(lv[l]), (long long)n_pos[a], tname(kty), tname(vty));
                free(got);
            }
            free(kp);
            free(vp);
            free(want);
            case_free(&c);
        }
}

/* The gated delta-rule scan (simd/ops.h ts_gdn_scan_fn): every level's o and
 * S bit-equal to the scalar twin's, odd head dims (masked / scalar tails),
 * spans of 1 to 9 tokens on one carried state, rows strided, nothing written
 * past ds; the scalar twin against a double evaluation of the formulas. */
TS_TEST(test_attn_gdn_scan_levels)
{
    static const int64_t dss[] = {1, 7, 16, 17, 33, 128};
    enum { MAXN = 9, XS = 3 }; /* q, k, v of a token: rows of XS * ds (+ 5) floats */
    ts_isa lv[4];
    int n_lv = ts_test_levels(lv);
    ts_kernels ref, kt;
    ts_kernels_init(&ref, TS_ISA_SCALAR);
    for (size_t t = 0; t < sizeof(dss) / sizeof(dss[0]); t++) {
        const int64_t ds = dss[t], xw = XS * ds + 5, ow = ds + 3;
        float *x = nan_buf(MAXN * xw), *g = nan_buf(MAXN * 2);
        for (int l = 0; l < n_lv; l++) {
            ts_kernels_init(&kt, lv[l]);
            float *Sa = nan_buf(ds * ds), *Sb = nan_buf(ds * ds), *oa = nan_buf(MAXN * ow),
                  *ob = nan_buf(MAXN * ow);
            for (int64_t i = 0; i < ds * ds; i++)
                Sa[i] = Sb[i] = 0.0f;
            uint64_t r = 11 + (uint64_t)t;
            int bad = -1;
            for (int call = 0; call < 6; call++) {
                const int64_t n = 1 + call * 8 / 5; /* 1, 2, 4, 5, 7, 9 tokens */
                for (int64_t i = 0; i < n * xw; i++)
                    x[i] = ts_test_randf(&r) / sqrtf((float)ds);
                for (int64_t i = 0; i < n; i++) {
                    g[2 * i] = 0.5f + 0.5f * fabsf(ts_test_randf(&r));
                    g[2 * i + 1] = fabsf(ts_test_randf(&r));
                }
                double *Sd = malloc((size_t)(ds * ds) * sizeof(double));
                for (int64_t i = 0; i < ds * ds; i++)
                    Sd[i] = Sa[i];
                const float sc = 1.0f / sqrtf((float)ds);
                ref.ops.gdn_scan(Sa, ds, n, x, x + ds, x + 2 * ds, (size_t)xw * 4, g, g + 1, 8, sc,
                                 oa, (size_t)ow * 4);
                kt.ops.gdn_scan(Sb, ds, n, x, x + ds, x + 2 * ds, (size_t)xw * 4, g, g + 1, 8, sc,
                                ob, (size_t)ow * 4);
                for (int64_t tk = 0; tk < n; tk++) {
                    const float *q = x + tk * xw, *k = q + ds, *v = q + 2 * ds;
                    for (int64_t j = 0; j < ds; j++) {
                        double a = 0, b = 0;
                        for (int64_t i = 0; i < ds; i++)
                            a += (Sd[i * ds + j] *= g[2 * tk]) * k[i];
                        const double d = (v[j] - a) * g[2 * tk + 1];
                        for (int64_t i = 0; i < ds; i++)
                            b += (Sd[i * ds + j] += k[i] * d) * q[i];
                        const double want = b * sc, got = oa[tk * ow + j];
                        if (l == 0 && fabs(got - want) > 1e-4 + 1e-4 * fabs(want)) {
                            TS_CHECK(0, "gdn_scan scalar ds %lld token %lld j %lld: %g vs %g",
                                     (long long)ds, (long long)tk, (long long)j, got, want);
                            tk = n;
                            break;
                        }
                    }
                }
                free(Sd);
                if (bad < 0 && (memcmp(oa, ob, (size_t)(n * ow) * 4) ||
                                memcmp(Sa, Sb, (size_t)(ds * ds + 8) * 4)))
                    bad = call;
                for (int64_t tk = 0; tk < n; tk++)
                    TS_CHECK(isnan(ob[tk * ow + ds]), "%s gdn_scan wrote past ds", ts_isa_name(lv[l]));
            }
            TS_CHECK(bad < 0, "%s gdn_scan ds %lld: differs from scalar at call %d",
                     ts_isa_name(lv[l]), (long long)ds, bad);
            free(Sa), free(Sb), free(oa), free(ob);
        }
        free(x), free(g);
    }
}
