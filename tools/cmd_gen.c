/*
 * tools/cmd_gen.c: `tessera gen`: writes a valid GGUF v3 model with
 * deterministic random weights at a named shape, quantized with any
 * supported type or a llama.cpp mix name (q4_k_m, ...). This is the
 * embedded default model and the source of large test models: nothing is
 * downloaded.
 *
 * Determinism: every tensor row draws from its own generator seeded by
 * (seed, tensor name, row), so the bytes do not depend on the thread count.
 * Tensors are produced at write time through the writer's fill callback,
 * so a 7B-parameter model never sits in memory whole.
 */
#include "cmds.h"
#include "../core/err.h"
#include "../core/gguf.h"
#include "../quant/mix.h"
#include "../quant/quant.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Gated-DeltaNet hybrids (qwen35, qwen35moe, qwen3next): the GDN ("ssm")
 * dimensions and the layer pattern. interval == 0: not a hybrid. */
typedef struct {
    uint32_t interval;    /* full_attention_interval: layer i attends iff (i+1) % interval == 0 */
    uint32_t n_rot;       /* rope.dimension_count (partial rotary) */
    int32_t sections[4];  /* rope.dimension_sections (qwen35, qwen35moe) */
    uint32_t conv_kernel; /* ssm.conv_kernel */
    uint32_t state_size;  /* ssm.state_size: the GDN key and value head dim */
    uint32_t n_k_heads;   /* ssm.group_count */
    uint32_t n_v_heads;   /* ssm.time_step_rank; ssm.inner_size = state_size * n_v_heads */
    float eps;            /* attention.layer_norm_rms_epsilon */
} hybrid;

typedef struct {
    const char *name, *arch;
    uint32_t n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx;
    bool tied;
    uint32_t n_expert, n_expert_used, n_ff_exp, n_ff_shexp;
    float rope_base;
    hybrid hy;
} shape;

/* Shapes of the models the benchmarks are about (see the issue text). */
static const shape shapes[] = {
    {"tiny", "llama", 256, 2, 4, 2, 64, 512, 512, 2048, false, 0, 0, 0, 0, 10000.0f, {0}},
    /* A few KB at q4_0: the fuzzers' seed models (tests/fuzz/make-seeds.sh). Its 32 tokens
     * hold the specials and byte tokens 0x00-0x1C only: ids, not text. */
    {"micro", "llama", 32, 1, 2, 1, 16, 32, 32, 64, true, 0, 0, 0, 0, 10000.0f, {0}},
    {"llama-1b", "llama", 2048, 16, 32, 8, 64, 8192, 128256, 131072, true, 0, 0, 0, 0, 500000.0f,
     {0}},
    {"qwen-0.5b", "qwen2", 896, 24, 14, 2, 64, 4864, 151936, 32768, true, 0, 0, 0, 0, 1e6f, {0}},
    /* 16 x 64 x 3 x 2048 x 1024 expert weights + attention + tied embeddings = 6.9B */
    {"qwen3-moe-small", "qwen3moe", 2048, 16, 16, 4, 128, 6144, 151936, 40960, true, 64, 8, 1024,
     0, 1e6f, {0}},
    /* Qwen3.5-0.8B's text model (HF config text_config: hidden 1024, 24 layers, 8 heads / 2 KV
     * heads of 256, intermediate 3584, GDN 16 key / 16 value heads of 128, conv 4, partial
     * rotary 0.25, mrope_section [11,11,10], rope_theta 1e7, rms eps 1e-6, vocab 248320, tied,
     * full_attention_interval 4). Its one MTP block is not written (llama.cpp never runs it). */
    {.name = "qwen35-0.8b", .arch = "qwen35", .n_embd = 1024, .n_layer = 24, .n_head = 8,
     .n_head_kv = 2, .head_dim = 256, .n_ff = 3584, .n_vocab = 248320, .n_ctx = 262144,
     .tied = true, .rope_base = 1e7f,
     .hy = {.interval = 4, .n_rot = 64, .sections = {11, 11, 10, 0}, .conv_kernel = 4,
            .state_size = 128, .n_k_heads = 16, .n_v_heads = 16, .eps = 1e-6f}},
    /* Qwen3.5-35B-A3B / Qwen3.6-35B-A3B's text model at its real per-layer proportions (hidden
     * 2048, 16 heads / 2 KV heads of 256, GDN 16 key / 32 value heads of 128, 256 experts, 8
     * used, moe_intermediate 512, shared expert 512, vocab 248320, untied, rope_theta 1e7,
     * partial rotary 0.25, mrope_section [11,11,10], rms eps 1e-6, full_attention_interval 4),
     * but 6 of its 40 layers (GDN x3, attention, GDN x2) so that q4_k_m stays under 4 GB (3.8
     * GB; 8 layers: 4.8 GB, 40 layers: ~20 GB). --layers 40 gives the full depth.
     * feed_forward_length is not in the HF config; 512 (= the shared expert) is written. */
    {.name = "qwen35moe-a3b", .arch = "qwen35moe", .n_embd = 2048, .n_layer = 6, .n_head = 16,
     .n_head_kv = 2, .head_dim = 256, .n_ff = 512, .n_vocab = 248320, .n_ctx = 262144,
     .tied = false, .n_expert = 256, .n_expert_used = 8, .n_ff_exp = 512, .n_ff_shexp = 512,
     .rope_base = 1e7f,
     .hy = {.interval = 4, .n_rot = 64, .sections = {11, 11, 10, 0}, .conv_kernel = 4,
            .state_size = 128, .n_k_heads = 16, .n_v_heads = 32, .eps = 1e-6f}},
};

/* --shape tiny with a hybrid --arch: GDN, attention, GDN, attention, with fewer key heads than
 * value heads (2 < 4) so the value-head -> key-head map is exercised. Every one of the 8 rotary
 * pairs maps to a text position under IMRoPE sections [3,3,2,0] (llama.cpp's rule: pair i,
 * sec = i % 8, t if sec%3==0 && sec<9, h if sec%3==1 && sec<9, w if sec%3==2 && sec<6), so
 * none is left unrotated. */
static const hybrid tiny_hybrid = {.interval = 2, .n_rot = 16, .sections = {3, 3, 2, 0},
                                   .conv_kernel = 4, .state_size = 32, .n_k_heads = 2,
                                   .n_v_heads = 4, .eps = 1e-6f};

/* --shape micro with a hybrid --arch (the fuzzers' seeds, a few KB): GDN then gated attention,
 * 1 key head < 2 value heads of 16, 4 rotary pairs all on text positions under sections
 * [2,1,1,0] (pair i, sec = i % 4: 0 t, 1 h, 2 w, 3 t). Every row length is a multiple of 32. */
static const hybrid micro_hybrid = {.interval = 2, .n_rot = 8, .sections = {2, 1, 1, 0},
                                    .conv_kernel = 4, .state_size = 16, .n_k_heads = 1,
                                    .n_v_heads = 2, .eps = 1e-6f};

typedef struct {
    char name[96];
    uint32_t type, n_dims;
    uint64_t ne[4];
    uint64_t seed;
    float lo, hi; /* uniform range */
    /* How values are drawn (the hybrids only; every other tensor is G_UNIFORM, whose bytes
     * are what they always were): */
    uint8_t kind;
    bool grid;       /* snap each 32-value block to 16 levels (see snap_grid) */
    uint64_t split;  /* G_QK_TIED: key rows start here; G_ROWS2: rows per part */
    float lo2, hi2;  /* second range: G_CONV last tap, G_QK_TIED noise, G_ROWS2 odd parts */
    /* G_ROUTER (layer's router) and G_EMBD_ROUTE (token_embd): see route_dim */
    uint32_t layer, n_layer, n_expert, n_used;
    float boost;
    uint64_t zero_rows; /* rows r with r % ne[1] < zero_rows are 0 (the routing dims) */
} gtensor;

enum {
    G_UNIFORM, /* U[lo, hi] */
    G_NEG_EXP, /* -exp(U[lo, hi]) (ssm_a = -exp(A_log)) */
    G_CONV,    /* conv taps: U[lo, hi], the last (current-token) tap U[lo2, hi2] */
    G_QK_TIED, /* rows [split, 2 split) = rows [0, split) + U[lo2, hi2]; others U[lo, hi] */
    G_ROWS2,   /* rows alternate in runs of split: U[lo, hi], U[lo2, hi2], ... */
    G_ROUTER,  /* U[lo, hi], plus boost at expert row e's routing dim */
    G_EMBD_ROUTE, /* U[lo, hi]; the routing dims: boost * U[0.75, 1.25] where the token picks
                   * the expert, boost * U[-1/8, 1/8] elsewhere */
};

/* Token-picked routing: expert e of layer l reads (mostly) embedding dim route_dim(l, e), and
 * each token's embedding is large at the dims of n_used experts per layer (picked by hash) and
 * small at the others; no layer writes those dims (plan_hybrid zeroes the output projections'
 * rows there), so the residual stream carries them to every router unchanged. The router
 * logits then separate the picked experts from the others by a margin that rounding cannot
 * close, and a correct engine picks llama.cpp's experts (a near tie at the top-k boundary
 * flips an expert: an error no bound on the logits can absorb). */
static uint64_t route_dim(uint32_t layer, uint32_t n_expert, uint32_t e, uint64_t n_embd)
{
    return ((uint64_t)layer * n_expert + e) % n_embd;
}

typedef struct {
    gtensor *t;
    size_t n, cap;
    int n_threads;
} model_plan;

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t hash_str(const char *s, uint64_t seed)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
    return mix64(h);
}

typedef struct {
    const gtensor *t;
    uint8_t *dst;
    uint64_t row0, row1, row_bytes;
    float *tmp;
    double *scratch; /* ne[0] doubles, for the non-uniform kinds */
} fill_job;

/* The uniform draws of row r, in [0, 1): the same stream for every kind. */
static void row_uniforms(const gtensor *t, uint64_t r, double *u)
{
    uint64_t s = mix64(t->seed + r * 0x9e3779b97f4a7c15ULL);
    for (uint64_t c = 0; c < t->ne[0]; c++) {
        s += 0x9e3779b97f4a7c15ULL;
        u[c] = (double)(mix64(s) >> 11) / (double)(1ULL << 53);
    }
}

/* Row r of a tensor whose kind is not G_UNIFORM; u is scratch of ne[0] doubles. */
static void kind_row(const gtensor *t, uint64_t r, float *dst, double *u)
{
    const uint64_t n = t->ne[0];
    row_uniforms(t, r, u);
    switch (t->kind) {
    case G_NEG_EXP:
        for (uint64_t c = 0; c < n; c++)
            dst[c] = -expf((float)(t->lo + (t->hi - t->lo) * u[c]));
        break;
    case G_CONV:
        for (uint64_t c = 0; c < n; c++)
            dst[c] = c + 1 == n ? (float)(t->lo2 + (t->hi2 - t->lo2) * u[c])
                                : (float)(t->lo + (t->hi - t->lo) * u[c]);
        break;
    case G_QK_TIED:
        if (r >= t->split && r < 2 * t->split) {
            /* a key row: its query row's values plus this row's own noise */
            for (uint64_t c = 0; c < n; c++)
                dst[c] = (float)(t->lo2 + (t->hi2 - t->lo2) * u[c]);
            row_uniforms(t, r - t->split, u);
            for (uint64_t c = 0; c < n; c++)
                dst[c] += (float)(t->lo + (t->hi - t->lo) * u[c]);
        } else {
            for (uint64_t c = 0; c < n; c++)
                dst[c] = (float)(t->lo + (t->hi - t->lo) * u[c]);
        }
        break;
    case G_ROWS2: {
        const bool second = (r / t->split) % 2 == 1;
        const float lo = second ? t->lo2 : t->lo, hi = second ? t->hi2 : t->hi;
        for (uint64_t c = 0; c < n; c++)
            dst[c] = (float)(lo + (hi - lo) * u[c]);
        break;
    }
    case G_ROUTER:
        for (uint64_t c = 0; c < n; c++)
            dst[c] = (float)(t->lo + (t->hi - t->lo) * u[c]);
        dst[route_dim(t->layer, t->n_expert, (uint32_t)r, n)] += t->boost;
        break;
    case G_EMBD_ROUTE:
        /* routing dims: boost * U[-1/8, 1/8], or boost * U[0.75, 1.25] at the picked experts' */
        for (uint64_t c = 0; c < n; c++)
            dst[c] = c < (uint64_t)t->n_layer * t->n_expert
                         ? t->boost * (float)(u[c] - 0.5) / 4.0f
                         : (float)(t->lo + (t->hi - t->lo) * u[c]);
        for (uint32_t l = 0; l < t->n_layer; l++) {
            uint32_t picked[64];
            uint32_t k = 0;
            for (uint64_t a = 0; k < t->n_used && k < t->n_expert && k < 64; a++) {
                uint64_t h = mix64(t->seed ^ mix64((r << 20) ^ ((uint64_t)l << 8) ^ (a << 40)));
                uint32_t e = (uint32_t)(h % t->n_expert);
                bool dup = false;
                for (uint32_t i = 0; i < k; i++)
                    dup |= picked[i] == e;
                if (dup)
                    continue;
                picked[k++] = e;
                const uint64_t d = route_dim(l, t->n_expert, e, n);
                dst[d] = t->boost * (float)(0.75 + 0.5 * u[d]);
            }
        }
        break;
    default:
        for (uint64_t c = 0; c < n; c++)
            dst[c] = (float)(t->lo + (t->hi - t->lo) * u[c]);
    }
}

/* Snaps row r to a grid that the block formats hold (almost) exactly, so a q4_k_m model
 * differs from its f32 twin by activation rounding, not by 4-bit weight noise that would swamp
 * what the comparison is for. Per block of 32 the values are scaled so that the largest |value|
 * is s = R * m / 63, R the largest |value| of its 256 (Q4_K's super-block), m = 63 for the block
 * holding R and random in 44..63 otherwise (sub-block scales differ, their 6-bit ratios are
 * exact). Oriented so that the largest sits at level -8, every value becomes o * s * j / 8,
 * j = round(8 o v / s) in [-8, 7]; the smallest j of the other half block is lowered to -8 and
 * the largest j of the block raised to 7 (small moves: those are -7 and 6..7 nearly always).
 * Q4_K / Q5_K (min -s, step s / 8), Q5_0 (d = s / 16) and Q6_K (s / 32 per half block, up to
 * its 8-bit sub-scales) then hold the row; Q8_0 does not (its error is small anyway). The
 * orientation follows the data, so the moved values add no bias. In token_embd's routing dims
 * the largest |value| is a picked expert's (positive), so the raised value lands on a dim not
 * picked, as a large negative: never a fake pick. */
static void snap_grid(const gtensor *t, uint64_t r, float *v)
{
    const uint64_t n = t->ne[0], nb = (n + 31) / 32;
    for (uint64_t sb0 = 0; sb0 < nb; sb0 += 8) {
        const uint64_t sb1 = sb0 + 8 < nb ? sb0 + 8 : nb;
        float R = 0.0f;
        uint64_t bR = sb0;
        for (uint64_t b = sb0; b < sb1; b++)
            for (uint64_t c = b * 32; c < b * 32 + 32 && c < n; c++)
                if (fabsf(v[c]) > R) {
                    R = fabsf(v[c]);
                    bR = b;
                }
        if (!(R > 0.0f))
            continue;
        for (uint64_t b = sb0; b < sb1; b++) {
            float *x = v + b * 32;
            const uint64_t len = b * 32 + 32 < n ? 32 : n - b * 32;
            const uint64_t h = mix64(t->seed + 0x5851f42d4c957f2dULL * (r * nb + b + 1));
            const uint32_t m = b == bR ? 63 : 44 + (uint32_t)(h % 20);
            uint64_t am = 0;
            for (uint64_t c = 1; c < len; c++)
                if (fabsf(x[c]) > fabsf(x[am]))
                    am = c;
            if (!(fabsf(x[am]) > 0.0f))
                continue;
            const float s = R * (float)m / 63.0f, o = x[am] > 0.0f ? -1.0f : 1.0f;
            const float k8 = 8.0f * o / fabsf(x[am]); /* the largest maps to -8 */
            int8_t jj[32];
            for (uint64_t c = 0; c < len; c++) {
                const float q = roundf(k8 * x[c]);
                jj[c] = (int8_t)(q < -8.0f ? -8 : q > 7.0f ? 7 : q);
            }
            const uint64_t g0 = am < 16 ? 16 : 0; /* the half block without the largest */
            uint64_t lo = g0, hi = 0;
            for (uint64_t c = g0; c < g0 + 16 && c < len; c++)
                if (jj[c] < jj[lo])
                    lo = c;
            if (lo < len)
                jj[lo] = -8;
            for (uint64_t c = 1; c < len; c++)
                if (jj[c] > jj[hi])
                    hi = c;
            jj[hi] = 7;
            for (uint64_t c = 0; c < len; c++)
                x[c] = o * s * (float)jj[c] / 8.0f;
        }
    }
}

static void *fill_rows(void *arg)
{
    fill_job *j = arg;
    const gtensor *t = j->t;
    for (uint64_t r = j->row0; r < j->row1; r++) {
        if (t->kind != G_UNIFORM || t->grid) {
            kind_row(t, r, j->tmp, j->scratch);
            if (t->grid)
                snap_grid(t, r, j->tmp);
            if (r % t->ne[1] < t->zero_rows)
                memset(j->tmp, 0, sizeof(float) * t->ne[0]);
            ts_quantize_row(t->type, j->tmp, j->dst + (r - j->row0) * j->row_bytes,
                            (int64_t)t->ne[0]);
            continue;
        }
        uint64_t s = mix64(t->seed + r * 0x9e3779b97f4a7c15ULL);
        for (uint64_t c = 0; c < t->ne[0]; c++) {
            s += 0x9e3779b97f4a7c15ULL;
            double u = (double)(mix64(s) >> 11) / (double)(1ULL << 53);
            j->tmp[c] = (float)(t->lo + (t->hi - t->lo) * u);
        }
        ts_quantize_row(t->type, j->tmp, j->dst + (r - j->row0) * j->row_bytes,
                        (int64_t)t->ne[0]);
    }
    return NULL;
}

static ts_status fill_tensor(void *ctx, void *dst, uint64_t n_bytes, ts_err *err)
{
    const gtensor *t = ((void **)ctx)[0];
    int n_threads = *(int *)((void **)ctx)[1];
    uint64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    uint64_t row_bytes = ts_qtype_row_bytes(t->type, t->ne[0]);
    if (rows * row_bytes != n_bytes)
        return ts_err_set(err, TS_E_STATE, "tensor %s: size mismatch", t->name);
    if ((uint64_t)n_threads > rows)
        n_threads = (int)rows;
    pthread_t th[64];
    fill_job jobs[64];
    float *tmp = malloc(sizeof(float) * t->ne[0] * (size_t)n_threads);
    const bool special = t->kind != G_UNIFORM || t->grid;
    double *scratch = special ? malloc(sizeof(double) * t->ne[0] * (size_t)n_threads) : NULL;
    if (!tmp || (special && !scratch)) {
        free(tmp);
        free(scratch);
        return ts_err_set(err, TS_E_NOMEM, "out of memory");
    }
    int started = 0;
    for (int i = 0; i < n_threads; i++) {
        uint64_t r0 = rows * (uint64_t)i / (uint64_t)n_threads;
        uint64_t r1 = rows * (uint64_t)(i + 1) / (uint64_t)n_threads;
        jobs[i] = (fill_job){t, (uint8_t *)dst + r0 * row_bytes, r0, r1, row_bytes,
                             tmp + t->ne[0] * (size_t)i,
                             scratch ? scratch + t->ne[0] * (size_t)i : NULL};
        if (i == 0 || pthread_create(&th[i], NULL, fill_rows, &jobs[i]) != 0)
            continue;
        started |= 1 << (i & 31);
    }
    for (int i = 0; i < n_threads; i++)
        if (i == 0 || !(started & (1 << (i & 31))))
            fill_rows(&jobs[i]);
    for (int i = 1; i < n_threads; i++)
        if (started & (1 << (i & 31)))
            pthread_join(th[i], NULL);
    free(tmp);
    free(scratch);
    return TS_OK;
}

static int add(model_plan *p, const char *name, uint32_t n_dims, uint64_t ne0, uint64_t ne1,
               uint64_t ne2, float lo, float hi)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        gtensor *nt = realloc(p->t, cap * sizeof(*nt));
        if (!nt)
            return -1;
        p->t = nt;
        p->cap = cap;
    }
    gtensor *t = &p->t[p->n++];
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = ne2;
    t->ne[3] = 1;
    t->lo = lo;
    t->hi = hi;
    return 0;
}

/* A uniform range with variance 1/fan_in keeps activations O(1) layer to layer. */
static float lim(uint64_t fan_in) { return sqrtf(3.0f / (float)fan_in); }

static int plan_tensors(model_plan *p, const shape *s)
{
    char nm[96];
    uint32_t q = s->n_head * s->head_dim, kv = s->n_head_kv * s->head_dim;
    bool qwen2 = !strcmp(s->arch, "qwen2") || !strcmp(s->arch, "qwen2moe");
    bool qwen3 = !strcmp(s->arch, "qwen3") || !strcmp(s->arch, "qwen3moe");
    bool olmoe = !strcmp(s->arch, "olmoe");
    int rc = add(p, "token_embd.weight", 2, s->n_embd, s->n_vocab, 1, -1.0f, 1.0f);
    rc |= add(p, "output_norm.weight", 1, s->n_embd, 1, 1, 0.9f, 1.1f);
    if (!s->tied)
        rc |= add(p, "output.weight", 2, s->n_embd, s->n_vocab, 1, -lim(s->n_embd),
                  lim(s->n_embd));
    for (uint32_t l = 0; l < s->n_layer; l++) {
#define T(suffix, nd, a, b, c, lo, hi)                                                         \
    (snprintf(nm, sizeof(nm), "blk.%u." suffix, l), rc |= add(p, nm, nd, a, b, c, lo, hi))
        T("attn_norm.weight", 1, s->n_embd, 1, 1, 0.9f, 1.1f);
        T("attn_q.weight", 2, s->n_embd, q, 1, -lim(s->n_embd), lim(s->n_embd));
        T("attn_k.weight", 2, s->n_embd, kv, 1, -lim(s->n_embd), lim(s->n_embd));
        T("attn_v.weight", 2, s->n_embd, kv, 1, -lim(s->n_embd), lim(s->n_embd));
        T("attn_output.weight", 2, q, s->n_embd, 1, -lim(q), lim(q));
        if (qwen2) {
            T("attn_q.bias", 1, q, 1, 1, -0.1f, 0.1f);
            T("attn_k.bias", 1, kv, 1, 1, -0.1f, 0.1f);
            T("attn_v.bias", 1, kv, 1, 1, -0.1f, 0.1f);
        }
        if (qwen3 || olmoe) { /* olmoe: one norm over all heads */
            T("attn_q_norm.weight", 1, olmoe ? q : s->head_dim, 1, 1, 0.9f, 1.1f);
            T("attn_k_norm.weight", 1, olmoe ? kv : s->head_dim, 1, 1, 0.9f, 1.1f);
        }
        T("ffn_norm.weight", 1, s->n_embd, 1, 1, 0.9f, 1.1f);
        if (s->n_expert) {
            uint32_t f = s->n_ff_exp;
            T("ffn_gate_inp.weight", 2, s->n_embd, s->n_expert, 1, -lim(s->n_embd),
              lim(s->n_embd));
            T("ffn_gate_exps.weight", 3, s->n_embd, f, s->n_expert, -lim(s->n_embd),
              lim(s->n_embd));
            T("ffn_up_exps.weight", 3, s->n_embd, f, s->n_expert, -lim(s->n_embd),
              lim(s->n_embd));
            T("ffn_down_exps.weight", 3, f, s->n_embd, s->n_expert, -lim(f), lim(f));
            if (s->n_ff_shexp) {
                uint32_t g = s->n_ff_shexp;
                T("ffn_gate_inp_shexp.weight", 1, s->n_embd, 1, 1, -lim(s->n_embd),
                  lim(s->n_embd));
                T("ffn_gate_shexp.weight", 2, s->n_embd, g, 1, -lim(s->n_embd), lim(s->n_embd));
                T("ffn_up_shexp.weight", 2, s->n_embd, g, 1, -lim(s->n_embd), lim(s->n_embd));
                T("ffn_down_shexp.weight", 2, g, s->n_embd, 1, -lim(g), lim(g));
            }
        } else {
            T("ffn_gate.weight", 2, s->n_embd, s->n_ff, 1, -lim(s->n_embd), lim(s->n_embd));
            T("ffn_up.weight", 2, s->n_embd, s->n_ff, 1, -lim(s->n_embd), lim(s->n_embd));
            T("ffn_down.weight", 2, s->n_ff, s->n_embd, 1, -lim(s->n_ff), lim(s->n_ff));
        }
#undef T
    }
    return rc;
}

static bool is_hybrid_arch(const char *a)
{
    return !strcmp(a, "qwen35") || !strcmp(a, "qwen35moe") || !strcmp(a, "qwen3next");
}

/* Adds a tensor drawn with one of the non-uniform kinds. */
static int add_kind(model_plan *p, const char *name, uint32_t n_dims, uint64_t ne0, uint64_t ne1,
                    float lo, float hi, uint8_t kind, uint64_t split, float lo2, float hi2)
{
    if (add(p, name, n_dims, ne0, ne1, 1, lo, hi) != 0)
        return -1;
    gtensor *t = &p->t[p->n - 1];
    t->kind = kind;
    t->split = split;
    t->lo2 = lo2;
    t->hi2 = hi2;
    return 0;
}

/* The hybrids' tensors, exactly the set llama.cpp's qwen35 / qwen35moe / qwen3next loaders
 * create (it rejects a file with any other tensor): no ffn_norm (the pre-FFN norm is
 * post_attention_norm), no rope_freqs, no MTP blocks.
 *
 * The weights are conditioned so that rounding is not amplified (with independent uniform
 * weights it is: q.k of unrelated unit vectors is ~0, a GDN head's output is then a
 * cancellation of small terms that the gated RMSNorm scales back up, MoE routers sit near
 * ties, and a correctly computed quantized model lands far from llama.cpp's). Measured with
 * llama.cpp in tests/data/README-gdn.md:
 * - the key rows of attn_qkv are the query rows plus noise of the same size (cos(q,k) ~0.67);
 * - conv1d: the current-token tap ~1, the three older ones small;
 * - decay exp(softplus(alpha + dt_bias) * ssm_a) mostly in 0.45 .. 0.97: ssm_a =
 *   -exp(U[log 0.1, 0]), dt_bias U[-1, 0], alpha = W_alpha x with half the usual weight scale;
 * - beta = sigmoid(W_beta x), W_beta at the usual scale: beta mostly 0.2 .. 0.8;
 * - embeddings of unit RMS (untied), an output head giving logits of std ~2.5;
 * - token-picked routing (route_dim) where the routing dims fit in a quarter of E;
 * - matmul weights on the grid of snap_grid. */
#define HY_OUT_GAIN 2.5f
#define HY_ROUTE_BOOST 1.6f  /* token_embd: ~1.6 at the token's routing dims ... */
#define HY_ROUTER_GAIN 2.0f  /* router: 2 x (normalised) routing dim ... */
#define HY_ROUTER_NOISE 0.2f /* ... plus 0.2 x the usual uniform weights */
#define HY_ALPHA_GAIN 0.5f
#define HY_KEY_NOISE 1.0f
static int plan_hybrid(model_plan *p, const shape *s)
{
    char nm[96];
    const hybrid *h = &s->hy;
    const uint64_t E = s->n_embd, dS = h->state_size, Hk = h->n_k_heads, Hv = h->n_v_heads;
    const uint64_t KD = dS * Hk, VD = dS * Hv, C = 2 * KD + VD, rf = Hv / Hk;
    const uint64_t q = (uint64_t)s->n_head * s->head_dim, kv = (uint64_t)s->n_head_kv * s->head_dim;
    const bool next = !strcmp(s->arch, "qwen3next");
    const float le = lim(E);
    /* Tied: token_embd is also the LM head; keep its logits at std ~3 too. */
    const float emb = sqrtf(3.0f) * (s->tied ? fminf(1.0f, 3.0f / sqrtf((float)E)) : 1.0f);
    /* Token-picked routing (see route_dim) where the routing dims are a small part of E;
     * the big MoE shape (benchmarks only) gets a plain router. */
    const uint64_t n_route = (uint64_t)s->n_layer * s->n_expert;
    const bool route = s->n_expert && n_route <= E / 4;
    int rc = add_kind(p, "token_embd.weight", 2, E, s->n_vocab, -emb, emb,
                      route ? G_EMBD_ROUTE : G_UNIFORM, 0, 0, 0);
    if (rc == 0 && route) {
        gtensor *t = &p->t[p->n - 1];
        t->n_layer = s->n_layer;
        t->n_expert = s->n_expert;
        t->n_used = s->n_expert_used;
        t->boost = HY_ROUTE_BOOST;
    }
    rc |= add(p, "output_norm.weight", 1, E, 1, 1, 0.9f, 1.1f);
    if (!s->tied)
        rc |= add(p, "output.weight", 2, E, s->n_vocab, 1, -HY_OUT_GAIN * le, HY_OUT_GAIN * le);
    for (uint32_t l = 0; l < s->n_layer; l++) {
#define N(suffix) (snprintf(nm, sizeof(nm), "blk.%u." suffix, l), nm)
        const bool gdn = (l + 1) % h->interval != 0;
        rc |= add(p, N("attn_norm.weight"), 1, E, 1, 1, 0.9f, 1.1f);
        if (gdn) {
            rc |= add_kind(p, N("attn_qkv.weight"), 2, E, C, -le, le, G_QK_TIED, KD,
                           -HY_KEY_NOISE * le, HY_KEY_NOISE * le);
            rc |= add(p, N("attn_gate.weight"), 2, E, VD, 1, -le, le);
            rc |= add_kind(p, N("ssm_conv1d.weight"), 2, h->conv_kernel, C, -0.15f, 0.15f,
                           G_CONV, 0, 0.8f, 1.2f);
            rc |= add(p, N("ssm_dt.bias"), 1, Hv, 1, 1, -1.0f, 0.0f);
            rc |= add_kind(p, N("ssm_a"), 1, Hv, 1, logf(0.1f), 0.0f, G_NEG_EXP, 0, 0, 0);
            if (next) /* per key head: rf beta rows, then rf alpha rows */
                rc |= add_kind(p, N("ssm_ba.weight"), 2, E, 2 * Hv, -le, le, G_ROWS2, rf,
                               -HY_ALPHA_GAIN * le, HY_ALPHA_GAIN * le);
            else {
                rc |= add(p, N("ssm_beta.weight"), 2, E, Hv, 1, -le, le);
                rc |= add(p, N("ssm_alpha.weight"), 2, E, Hv, 1, -HY_ALPHA_GAIN * le,
                          HY_ALPHA_GAIN * le);
            }
            rc |= add(p, N("ssm_norm.weight"), 1, dS, 1, 1, 0.9f, 1.1f);
            rc |= add(p, N("ssm_out.weight"), 2, VD, E, 1, -lim(VD), lim(VD));
        } else {
            /* attn_q rows per head: hd query rows, then hd output-gate rows */
            rc |= add(p, N("attn_q.weight"), 2, E, 2 * q, 1, -le, le);
            rc |= add(p, N("attn_k.weight"), 2, E, kv, 1, -le, le);
            rc |= add(p, N("attn_v.weight"), 2, E, kv, 1, -le, le);
            rc |= add(p, N("attn_output.weight"), 2, q, E, 1, -lim(q), lim(q));
            rc |= add(p, N("attn_q_norm.weight"), 1, s->head_dim, 1, 1, 0.9f, 1.1f);
            rc |= add(p, N("attn_k_norm.weight"), 1, s->head_dim, 1, 1, 0.9f, 1.1f);
        }
        rc |= add(p, N("post_attention_norm.weight"), 1, E, 1, 1, 0.9f, 1.1f);
        if (s->n_expert) {
            const uint64_t f = s->n_ff_exp, g = s->n_ff_shexp;
            const float rn = route ? HY_ROUTER_NOISE : 1.0f;
            rc |= add_kind(p, N("ffn_gate_inp.weight"), 2, E, s->n_expert, -rn * le, rn * le,
                           route ? G_ROUTER : G_UNIFORM, 0, 0, 0);
            if (rc == 0 && route) {
                gtensor *t = &p->t[p->n - 1];
                t->layer = l;
                t->n_expert = s->n_expert;
                t->boost = HY_ROUTER_GAIN;
            }
            rc |= add(p, N("ffn_gate_exps.weight"), 3, E, f, s->n_expert, -le, le);
            rc |= add(p, N("ffn_up_exps.weight"), 3, E, f, s->n_expert, -le, le);
            rc |= add(p, N("ffn_down_exps.weight"), 3, f, E, s->n_expert, -lim(f), lim(f));
            rc |= add(p, N("ffn_gate_inp_shexp.weight"), 1, E, 1, 1, -le, le);
            rc |= add(p, N("ffn_gate_shexp.weight"), 2, E, g, 1, -le, le);
            rc |= add(p, N("ffn_up_shexp.weight"), 2, E, g, 1, -le, le);
            rc |= add(p, N("ffn_down_shexp.weight"), 2, g, E, 1, -lim(g), lim(g));
        } else {
            rc |= add(p, N("ffn_gate.weight"), 2, E, s->n_ff, 1, -le, le);
            rc |= add(p, N("ffn_up.weight"), 2, E, s->n_ff, 1, -le, le);
            rc |= add(p, N("ffn_down.weight"), 2, s->n_ff, E, 1, -lim(s->n_ff), lim(s->n_ff));
        }
#undef N
    }
    /* Matmul weights on the 16-level grid; the f32-only ones (conv taps, routers) as drawn.
     * With token-picked routing no layer writes the routing dims (the output projections'
     * rows there are 0), so the residual stream carries them from token_embd unchanged. */
    for (size_t i = 0; i < p->n; i++) {
        gtensor *t = &p->t[i];
        t->grid = t->n_dims >= 2 && !strstr(t->name, "ssm_conv1d") &&
                  !strstr(t->name, "ffn_gate_inp");
        if (route && (strstr(t->name, "attn_output.") || strstr(t->name, "ssm_out.") ||
                      strstr(t->name, "ffn_down")))
            t->zero_rows = n_route;
    }
    return rc;
}

/* An SPM vocabulary of n tokens: <unk> <s> </s>, the 256 byte tokens, then
 * letter strings ("▁a", "a", "▁ab", ...) in order of length, scored so
 * shorter pieces merge first. Enough for the tokenizer and the engine. */
static char **make_vocab(uint32_t n, float **scores, int32_t **types)
{
    char **tok = calloc(n, sizeof(*tok));
    *scores = calloc(n, sizeof(float));
    *types = calloc(n, sizeof(int32_t));
    if (!tok || !*scores || !*types)
        return NULL;
    const char *special[] = {"<unk>", "<s>", "</s>"};
    const int32_t special_type[] = {2, 3, 3};
    uint32_t i = 0;
    for (; i < 3 && i < n; i++) {
        tok[i] = strdup(special[i]);
        (*types)[i] = special_type[i];
    }
    for (uint32_t b = 0; b < 256 && i < n; b++, i++) {
        char buf[8];
        snprintf(buf, sizeof(buf), "<0x%02X>", b);
        tok[i] = strdup(buf);
        (*types)[i] = 6;
    }
    /* Enumerate letter strings of length 1, 2, 3, ... each with and without
     * the SPM word-start marker U+2581. */
    for (uint32_t len = 1; i < n && len <= 6; len++) {
        uint64_t count = 1;
        for (uint32_t k = 0; k < len; k++)
            count *= 26;
        for (int pfx = 1; pfx >= 0 && i < n; pfx--)
            for (uint64_t c = 0; c < count && i < n; c++, i++) {
                char buf[16];
                int o = 0;
                if (pfx) {
                    memcpy(buf, "\xe2\x96\x81", 3);
                    o = 3;
                }
                uint64_t x = c;
                for (uint32_t k = 0; k < len; k++, x /= 26)
                    buf[o + (int)(len - 1 - k)] = (char)('a' + x % 26);
                buf[o + (int)len] = 0;
                tok[i] = strdup(buf);
                (*types)[i] = 1;
                (*scores)[i] = -(float)i;
            }
    }
    for (uint32_t k = 0; k < n; k++)
        if (!tok[k])
            return NULL;
    return tok;
}

/* The hybrids' keys, with the types llama.cpp's loader insists on (u32 counts, f32 eps and
 * base, the sections an int32 array of exactly 4). */
static void write_meta_hybrid(ts_gguf_writer *w, const shape *s)
{
    char k[128];
    const char *a = s->arch;
    const hybrid *h = &s->hy;
#define K(suffix) (snprintf(k, sizeof(k), "%s." suffix, a), k)
    /* after write_meta's shared keys (context_length .. attention.value_length) */
    ts_gguf_w_u32(w, K("rope.dimension_count"), h->n_rot);
    if (strcmp(a, "qwen3next") != 0) /* NeoX rope there; IMRoPE sections here */
        ts_gguf_w_arr(w, K("rope.dimension_sections"), TS_GGUF_I32, h->sections, 4);
    ts_gguf_w_f32(w, K("rope.freq_base"), s->rope_base);
    ts_gguf_w_f32(w, K("attention.layer_norm_rms_epsilon"), h->eps);
    ts_gguf_w_u32(w, K("ssm.conv_kernel"), h->conv_kernel);
    ts_gguf_w_u32(w, K("ssm.state_size"), h->state_size);
    ts_gguf_w_u32(w, K("ssm.group_count"), h->n_k_heads);
    ts_gguf_w_u32(w, K("ssm.time_step_rank"), h->n_v_heads);
    ts_gguf_w_u32(w, K("ssm.inner_size"), h->state_size * h->n_v_heads);
    ts_gguf_w_u32(w, K("full_attention_interval"), h->interval);
    if (s->n_expert) {
        ts_gguf_w_u32(w, K("expert_count"), s->n_expert);
        ts_gguf_w_u32(w, K("expert_used_count"), s->n_expert_used);
        ts_gguf_w_u32(w, K("expert_feed_forward_length"), s->n_ff_exp);
        ts_gguf_w_u32(w, K("expert_shared_feed_forward_length"), s->n_ff_shexp);
    }
#undef K
}

static void write_meta(ts_gguf_writer *w, const shape *s, const ts_qmix *mix)
{
    char k[128];
    const char *a = s->arch;
    ts_gguf_w_str(w, "general.architecture", a);
    ts_gguf_w_str(w, "general.name", s->name);
    ts_gguf_w_u32(w, "general.file_type", mix->ftype);
    ts_gguf_w_u32(w, "general.quantization_version", 2);
#define K(suffix) (snprintf(k, sizeof(k), "%s." suffix, a), k)
    ts_gguf_w_u32(w, K("context_length"), s->n_ctx);
    ts_gguf_w_u32(w, K("embedding_length"), s->n_embd);
    ts_gguf_w_u32(w, K("block_count"), s->n_layer);
    ts_gguf_w_u32(w, K("feed_forward_length"), s->n_ff);
    ts_gguf_w_u32(w, K("attention.head_count"), s->n_head);
    ts_gguf_w_u32(w, K("attention.head_count_kv"), s->n_head_kv);
    ts_gguf_w_u32(w, K("attention.key_length"), s->head_dim);
    ts_gguf_w_u32(w, K("attention.value_length"), s->head_dim);
    if (s->hy.interval) {
        write_meta_hybrid(w, s);
        return;
    }
    ts_gguf_w_u32(w, K("rope.dimension_count"), s->head_dim);
    ts_gguf_w_f32(w, K("rope.freq_base"), s->rope_base);
    ts_gguf_w_f32(w, K("attention.layer_norm_rms_epsilon"), 1e-5f);
    if (s->n_expert) {
        ts_gguf_w_u32(w, K("expert_count"), s->n_expert);
        ts_gguf_w_u32(w, K("expert_used_count"), s->n_expert_used);
        ts_gguf_w_u32(w, K("expert_feed_forward_length"), s->n_ff_exp);
        if (s->n_ff_shexp)
            ts_gguf_w_u32(w, K("expert_shared_feed_forward_length"), s->n_ff_shexp);
        if (!strcmp(a, "qwen3moe"))
            ts_gguf_w_bool(w, K("expert_weights_norm"), true);
    }
#undef K
}

static int usage(void)
{
    ts_cli_error("gen", "usage: tessera gen --shape tiny|micro|llama-1b|qwen-0.5b|qwen3-moe-small|"
                        "qwen35-0.8b|qwen35moe-a3b "
                        "[--arch llama|qwen2|qwen3|qwen3moe|qwen2moe|olmoe|qwen35|qwen35moe|"
                        "qwen3next] [--type TYPE|MIX] "
                        "[--seed N] [--layers N] [-t THREADS] -o OUT.gguf");
    return 2;
}

int cmd_gen(int argc, char **argv)
{
    const char *shape_name = "tiny", *arch = NULL, *type = "f32", *out = NULL;
    long long seed = 42, layers = 0, threads = sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--shape") && v)
            shape_name = argv[++i];
        else if (!strcmp(a, "--arch") && v)
            arch = argv[++i];
        else if (!strcmp(a, "--type") && v)
            type = argv[++i];
        else if ((!strcmp(a, "-o") || !strcmp(a, "--out")) && v)
            out = argv[++i];
        else if (!strcmp(a, "--seed") && v) {
            if (!ts_cli_parse_i64(argv[++i], 0, INT64_MAX, &seed))
                return ts_cli_error("gen", "bad --seed '%s'", v), 2;
        } else if (!strcmp(a, "--layers") && v) {
            if (!ts_cli_parse_i64(argv[++i], 1, 1024, &layers))
                return ts_cli_error("gen", "bad --layers '%s'", v), 2;
        } else if (!strcmp(a, "-t") && v) {
            if (!ts_cli_parse_i64(argv[++i], 1, 64, &threads))
                return ts_cli_error("gen", "bad -t '%s'", v), 2;
        } else {
            ts_cli_error("gen", "unknown option '%s'", a);
            return usage();
        }
    }
    if (!out)
        return usage();
    shape s;
    const shape *found = NULL;
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        if (!strcmp(shapes[i].name, shape_name))
            found = &shapes[i];
    if (!found) {
        ts_cli_error("gen", "unknown shape '%s'", shape_name);
        return usage();
    }
    s = *found;
    if (arch && is_hybrid_arch(arch)) {
        bool moe = strcmp(arch, "qwen35") != 0;
        const bool micro = !strcmp(s.name, "micro");
        if (!s.hy.interval) {
            if (strcmp(s.name, "tiny") != 0 && !micro) {
                ts_cli_error("gen", "--arch %s: shape '%s' has no GDN dimensions (use tiny, "
                             "micro, qwen35-0.8b or qwen35moe-a3b)", arch, s.name);
                return 2;
            }
            s.hy = micro ? micro_hybrid : tiny_hybrid;
            s.n_layer = micro ? 2 : 4;
            if (moe) {
                s.n_expert = micro ? 4 : 8;
                s.n_expert_used = 2;
                s.n_ff_exp = micro ? 32 : 128;
                s.n_ff_shexp = micro ? 32 : 256;
            }
        } else if (moe && !s.n_expert) {
            ts_cli_error("gen", "--arch %s: shape '%s' has no experts", arch, s.name);
            return 2;
        }
        if (!moe)
            s.n_expert = s.n_expert_used = s.n_ff_exp = s.n_ff_shexp = 0;
        s.arch = arch;
    } else if (s.hy.interval && arch && strcmp(arch, s.arch) != 0) {
        ts_cli_error("gen", "shape '%s' is a GDN hybrid: --arch must be qwen35, qwen35moe or "
                     "qwen3next", s.name);
        return 2;
    } else if (arch) {
        static const char *archs[] = {"llama", "qwen2", "qwen3", "qwen3moe", "qwen2moe", "olmoe"};
        bool ok = false;
        for (size_t i = 0; i < sizeof(archs) / sizeof(archs[0]); i++)
            ok |= !strcmp(arch, archs[i]);
        if (!ok) {
            ts_cli_error("gen", "unknown --arch '%s'", arch);
            return usage();
        }
        s.arch = arch;
        bool moe = strstr(arch, "moe") != NULL; /* olmoe too */
        if (moe && !s.n_expert) {
            s.n_expert = 4;
            s.n_expert_used = 2;
            s.n_ff_exp = s.n_ff < 256 ? s.n_ff : 256; /* micro stays micro */
        }
        if (!moe)
            s.n_expert = 0;
        if (!strcmp(arch, "qwen2moe"))
            s.n_ff_shexp = s.n_ff_exp;
        /* OLMoE has no GQA (llama.cpp sizes attn_k_norm by n_embd), and its
         * experts are feed_forward_length wide. */
        if (!strcmp(arch, "olmoe")) {
            s.n_head_kv = s.n_head;
            s.n_ff = s.n_ff_exp;
        }
    }
    if (layers)
        s.n_layer = (uint32_t)layers;
    ts_qmix mix;
    int mrc = ts_qmix_parse(type, &mix);
    if (mrc != TS_QMIX_OK) {
        ts_cli_error("gen", "%s --type '%s'",
                     mrc == TS_QMIX_UNSUPPORTED ? "cannot produce" : "unknown", type);
        return 2;
    }
    mix.tied_embeddings = s.tied;
    mix.n_gqa = s.n_head / s.n_head_kv;
    mix.n_expert = s.n_expert;
    model_plan p = {0};
    p.n_threads = (int)threads;
    if ((s.hy.interval ? plan_hybrid(&p, &s) : plan_tensors(&p, &s)) != 0) {
        ts_cli_error("gen", "out of memory");
        return 1;
    }
    ts_gguf_writer *w = NULL;
    ts_err err = {0};
    float *scores = NULL;
    int32_t *types = NULL;
    char **vocab = make_vocab(s.n_vocab, &scores, &types);
    int rc = 1;
    void **ctxs = calloc(p.n, 2 * sizeof(void *));
    if (!vocab || !ctxs || ts_gguf_writer_create(&w, &err) != TS_OK) {
        ts_cli_error("gen", "out of memory");
        goto done;
    }
    write_meta(w, &s, &mix);
    ts_gguf_w_str(w, "tokenizer.ggml.model", "llama");
    ts_gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)vocab, s.n_vocab);
    ts_gguf_w_arr(w, "tokenizer.ggml.scores", TS_GGUF_F32, scores, s.n_vocab);
    ts_gguf_w_arr(w, "tokenizer.ggml.token_type", TS_GGUF_I32, types, s.n_vocab);
    ts_gguf_w_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    ts_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", 1);
    ts_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 2);
    ts_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", true);
    ts_gguf_w_bool(w, "tokenizer.ggml.add_eos_token", false);
    for (size_t i = 0; i < p.n; i++) {
        gtensor *t = &p.t[i];
        t->type = t->n_dims == 1 ? TS_QTYPE_F32
                                 : ts_qmix_tensor_type(&mix, t->name, t->n_dims, t->ne,
                                                       (int)s.n_layer);
        t->seed = hash_str(t->name, (uint64_t)seed);
        ctxs[2 * i] = t;
        ctxs[2 * i + 1] = &p.n_threads;
        ts_gguf_w_tensor_fn(w, t->name, t->type, t->n_dims, t->ne, fill_tensor, &ctxs[2 * i]);
    }
    if (ts_gguf_writer_write(w, out, &err) != TS_OK) {
        ts_cli_error("gen", "%s", err.msg);
        goto done;
    }
    rc = 0;
done:
    ts_gguf_writer_destroy(w);
    if (vocab)
        for (uint32_t i = 0; i < s.n_vocab; i++)
            free(vocab[i]);
    free(vocab);
    free(scores);
    free(types);
    free(ctxs);
    free(p.t);
    return rc;
}
