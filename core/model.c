/*
 * core/model.c: GGUF -> ts_model: architecture, hyper-parameters, tensor
 * binding and validation.
 *
 * Owns: reading `<arch>.*` metadata, checking every tensor the forward pass
 * uses against the hyper-parameters (dims, type support, presence), and the
 * f32 copies of small vectors (norms, biases, rope factors).
 * Does not own: GGUF parsing (core/gguf.c validated the container: offsets,
 * sizes and type ids are already safe), tokenization, any compute.
 * Invariants: a hostile file yields TS_E_FORMAT / TS_E_UNSUPPORTED naming the
 * key or tensor, never a crash; unknown architectures and fused or per-expert
 * tensor layouts are refused by name.
 */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "gdn.h"
#include "place.h"
#include "../quant/quant.h"

/* Upper bounds that keep every derived size far from overflow; real models
 * sit orders of magnitude below them. */
#define MAX_DIM (1 << 20)
#define MAX_LAYERS 4096
#define MAX_HEADS 4096

static ts_status own_vec(ts_model *m, float **out, int64_t n, ts_err *err)
{
    if (m->n_owned == m->cap_owned) {
        size_t cap = m->cap_owned ? m->cap_owned * 2 : 64;
        float **p = realloc(m->owned, cap * sizeof(*p));
        if (!p)
            return ts_err_set(err, TS_E_NOMEM, "model: out of memory");
        m->owned = p;
        m->cap_owned = cap;
    }
    float *v = malloc((size_t)n * sizeof(float));
    if (!v)
        return ts_err_set(err, TS_E_NOMEM, "model: out of memory");
    m->owned[m->n_owned++] = v;
    *out = v;
    return TS_OK;
}

static ts_status u32_key(ts_model *m, const char *suffix, bool required, int64_t dflt,
                         int64_t lo, int64_t hi, int64_t *out, ts_err *err)
{
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", m->hp.arch_name, suffix);
    const ts_gguf_kv *kv = ts_gguf_kv_find(m->gguf, key);
    int64_t v = dflt;
    if (kv && kv->type == TS_GGUF_ARR) {
        /* Per-layer arrays are accepted only when uniform. */
        if (kv->arr_n == 0 || kv->arr_type == TS_GGUF_STR || kv->arr_type == TS_GGUF_ARR)
            return ts_err_set(err, TS_E_FORMAT, "key '%s': bad array", key);
        v = ts_gguf_arr_i64(kv, 0);
        for (uint64_t i = 1; i < kv->arr_n; i++)
            if (ts_gguf_arr_i64(kv, i) != v)
                return ts_err_set(err, TS_E_UNSUPPORTED, "key '%s': per-layer values", key);
    } else if (kv) {
        ts_status st = ts_gguf_get_i64(m->gguf, key, &v, NULL, err);
        if (st != TS_OK)
            return st;
    } else if (required) {
        return ts_err_set(err, TS_E_FORMAT, "missing key '%s'", key);
    }
    if (v < lo || v > hi)
        return ts_err_set(err, TS_E_FORMAT, "key '%s' = %lld out of range [%lld, %lld]", key,
                          (long long)v, (long long)lo, (long long)hi);
    *out = v;
    return TS_OK;
}

static ts_status f32_key(ts_model *m, const char *suffix, float dflt, float *out, ts_err *err)
{
    char key[128];
    bool found = false;
    snprintf(key, sizeof(key), "%s.%s", m->hp.arch_name, suffix);
    float v = dflt;
    ts_status st = ts_gguf_get_f32(m->gguf, key, &v, &found, err);
    if (st != TS_OK)
        return st;
    if (!(v == v) || v > 1e30f || v < -1e30f)
        return ts_err_set(err, TS_E_FORMAT, "key '%s' is not finite", key);
    *out = v;
    return TS_OK;
}

static ts_status read_arch(ts_model *m, ts_err *err)
{
    ts_str s;
    bool found = false;
    ts_status st = ts_gguf_get_str(m->gguf, "general.architecture", &s, &found, err);
    if (st != TS_OK)
        return st;
    if (!found)
        return ts_err_set(err, TS_E_FORMAT, "missing key 'general.architecture'");
    ts_str_copy(s, m->hp.arch_name, sizeof(m->hp.arch_name));
    static const struct { const char *name; ts_arch arch; } archs[] = {
        {"llama", TS_ARCH_LLAMA}, {"qwen2", TS_ARCH_QWEN2}, {"qwen3", TS_ARCH_QWEN3},
        {"qwen2moe", TS_ARCH_QWEN2MOE}, {"qwen3moe", TS_ARCH_QWEN3MOE}, {"olmoe", TS_ARCH_OLMOE},
        {"qwen35", TS_ARCH_QWEN35}, {"qwen35moe", TS_ARCH_QWEN35MOE},
        {"qwen3next", TS_ARCH_QWEN3NEXT},
    };
    for (size_t i = 0; i < sizeof(archs) / sizeof(archs[0]); i++) {
        if (ts_str_eq(s, archs[i].name) && s.len < sizeof(m->hp.arch_name)) {
            m->hp.arch = archs[i].arch;
            return TS_OK;
        }
    }
    return ts_err_set(err, TS_E_UNSUPPORTED, "unsupported architecture '%s'", m->hp.arch_name);
}

static ts_status read_rope_scaling(ts_model *m, ts_err *err)
{
    char key[128];
    ts_str type = {0};
    bool found = false;
    snprintf(key, sizeof(key), "%s.rope.scaling.type", m->hp.arch_name);
    ts_status st = ts_gguf_get_str(m->gguf, key, &type, &found, err);
    if (st != TS_OK)
        return st;
    float factor = 0.0f;
    st = f32_key(m, "rope.scaling.factor", 0.0f, &factor, err);
    if (st == TS_OK && factor == 0.0f)
        st = f32_key(m, "rope.scale_linear", 0.0f, &factor, err);
    if (st != TS_OK)
        return st;
    if (found && !ts_str_eq(type, "linear") && !ts_str_eq(type, "none")) {
        char buf[32];
        /* YaRN / LongRoPE change more than the position scale. */
        if (factor != 0.0f && factor != 1.0f)
            return ts_err_set(err, TS_E_UNSUPPORTED, "rope scaling type '%s'",
                              ts_str_copy(type, buf, sizeof(buf)));
    }
    if (factor < 0.0f)
        return ts_err_set(err, TS_E_FORMAT, "rope scaling factor %g", (double)factor);
    m->hp.rope_scale = factor == 0.0f ? 1.0f : 1.0f / factor;
    return TS_OK;
}

/* What an architecture's layers are made of: the table core/forward.c's layer
 * sequence follows (a new architecture is a row here, plus a file in core/
 * where it brings a new kind of layer). */
typedef struct {
    ts_arch arch;
    bool moe;        /* routed experts (expert_count required) */
    bool shexp;      /* a sigmoid-gated shared expert beside them */
    bool norm_topk;  /* renormalise the chosen experts' softmax weights */
    bool qkv_bias;   /* attn_q/k/v.bias */
    bool qk_norm;    /* attn_q_norm / attn_k_norm per head */
    bool neox;       /* NeoX RoPE pairing (i, i + n_rot / 2) */
    bool hybrid;     /* GDN layers, gated attention every full_attention_interval */
    bool gdn_ba;     /* GDN beta/alpha fused in ssm_ba (qwen3next), else ssm_beta / ssm_alpha */
    bool kh_mod;     /* GDN value head h reads key head h % n_k */
    bool mrope;      /* rope.dimension_sections (text positions: NeoX, checked at load) */
    const char *ffn_norm; /* the pre-FFN norm's tensor name */
} arch_desc;

static const arch_desc k_archs[] = {
    {.arch = TS_ARCH_LLAMA, .norm_topk = true, .ffn_norm = "ffn_norm.weight"},
    {.arch = TS_ARCH_QWEN2, .norm_topk = true, .qkv_bias = true, .neox = true,
     .ffn_norm = "ffn_norm.weight"},
    {.arch = TS_ARCH_QWEN3, .norm_topk = true, .qk_norm = true, .neox = true,
     .ffn_norm = "ffn_norm.weight"},
    /* llama.cpp's graphs: qwen2moe and olmoe keep the softmax weights of the
     * chosen experts as they are; llama (Mixtral) and qwen3moe renormalise. */
    {.arch = TS_ARCH_QWEN2MOE, .moe = true, .shexp = true, .qkv_bias = true, .neox = true,
     .ffn_norm = "ffn_norm.weight"},
    {.arch = TS_ARCH_QWEN3MOE, .moe = true, .norm_topk = true, .qk_norm = true, .neox = true,
     .ffn_norm = "ffn_norm.weight"},
    {.arch = TS_ARCH_OLMOE, .moe = true, .qk_norm = true, .neox = true,
     .ffn_norm = "ffn_norm.weight"},
    /* llama.cpp src/models/qwen35.cpp, qwen35moe.cpp, qwen3next.cpp (v0.5.0):
     * the pre-FFN norm is post_attention_norm, routing always renormalised. */
    {.arch = TS_ARCH_QWEN35, .norm_topk = true, .qk_norm = true, .neox = true, .hybrid = true,
     .kh_mod = true, .mrope = true, .ffn_norm = "post_attention_norm.weight"},
    {.arch = TS_ARCH_QWEN35MOE, .moe = true, .shexp = true, .norm_topk = true, .qk_norm = true,
     .neox = true, .hybrid = true, .kh_mod = true, .mrope = true,
     .ffn_norm = "post_attention_norm.weight"},
    {.arch = TS_ARCH_QWEN3NEXT, .moe = true, .shexp = true, .norm_topk = true, .qk_norm = true,
     .neox = true, .hybrid = true, .gdn_ba = true, .ffn_norm = "post_attention_norm.weight"},
};

static const arch_desc *desc_of(ts_arch a)
{
    for (size_t i = 0; i < sizeof(k_archs) / sizeof(k_archs[0]); i++)
        if (k_archs[i].arch == a)
            return &k_archs[i];
    return &k_archs[0];
}

/* llama.cpp's interleaved M-RoPE (qwen35) gives rotary pair i the position
 * component of section (i mod S): t, h, w for text tokens all equal the
 * position, e is 0 (the pair is not rotated). So it is NeoX RoPE exactly
 * when no pair lands on e; files where one does are refused. */
static ts_status check_mrope(ts_model *m, ts_err *err)
{
    char key[128];
    snprintf(key, sizeof(key), "%s.rope.dimension_sections", m->hp.arch_name);
    const ts_gguf_kv *kv = ts_gguf_kv_find(m->gguf, key);
    if (!kv)
        return ts_err_set(err, TS_E_FORMAT, "missing key '%s'", key);
    if (kv->type != TS_GGUF_ARR || kv->arr_n != 4 || kv->arr_type == TS_GGUF_STR ||
        kv->arr_type == TS_GGUF_ARR)
        return ts_err_set(err, TS_E_FORMAT, "key '%s': not an array of 4 integers", key);
    int64_t sec[4], sum = 0;
    for (int i = 0; i < 4; i++) {
        sec[i] = ts_gguf_arr_i64(kv, (uint64_t)i);
        if (sec[i] < 0 || sec[i] > 65536)
            return ts_err_set(err, TS_E_FORMAT, "key '%s': section %d = %lld", key, i,
                              (long long)sec[i]);
        sum += sec[i];
    }
    if (sum < 1 || sec[0] + sec[1] + sec[2] == 0 || sum > m->hp.head_k)
        return ts_err_set(err, TS_E_FORMAT, "key '%s': sections sum to %lld (head %lld)", key,
                          (long long)sum, (long long)m->hp.head_k);
    for (int64_t i = 0; i < m->hp.n_rot / 2; i++) {
        const int64_t c = i % sum;
        const bool thw = (c % 3 == 1 && c < 3 * sec[1]) || (c % 3 == 2 && c < 3 * sec[2]) ||
                         (c % 3 == 0 && c < 3 * sec[0]);
        if (!thw)
            return ts_err_set(err, TS_E_UNSUPPORTED,
                              "key '%s': rotary pair %lld takes the 4th section (not text RoPE)",
                              key, (long long)i);
    }
    return TS_OK;
}

/* The GDN shape and which layers are recurrent (hybrid architectures). */
static ts_status read_hybrid(ts_model *m, ts_err *err)
{
    ts_hparams *hp = &m->hp;
    int64_t inner = 0, nextn = 0, interval = 4;
    ts_status st = u32_key(m, "ssm.conv_kernel", true, 0, 1, TS_GDN_MAX_CONV, &hp->ssm_conv, err);
    if (st == TS_OK)
        st = u32_key(m, "ssm.state_size", true, 0, 1, TS_GDN_MAX_DS, &hp->ssm_state, err);
    if (st == TS_OK) st = u32_key(m, "ssm.group_count", true, 0, 1, MAX_HEADS, &hp->ssm_n_k, err);
    if (st == TS_OK) st = u32_key(m, "ssm.time_step_rank", true, 0, 1, MAX_HEADS, &hp->ssm_n_v, err);
    if (st == TS_OK) st = u32_key(m, "ssm.inner_size", true, 0, 1, MAX_DIM, &inner, err);
    if (st == TS_OK)
        st = u32_key(m, "nextn_predict_layers", false, 0, 0, hp->n_layer - 1, &nextn, err);
    if (st == TS_OK)
        st = u32_key(m, "full_attention_interval", false, 4, 1, MAX_LAYERS, &interval, err);
    if (st != TS_OK)
        return st;
    if (hp->ssm_n_v % hp->ssm_n_k)
        return ts_err_set(err, TS_E_FORMAT,
                          "ssm.time_step_rank (value heads) %lld is not a multiple of "
                          "ssm.group_count (key heads) %lld",
                          (long long)hp->ssm_n_v, (long long)hp->ssm_n_k);
    if (inner != hp->ssm_state * hp->ssm_n_v)
        return ts_err_set(err, TS_E_FORMAT, "ssm.inner_size %lld != state_size %lld x %lld heads",
                          (long long)inner, (long long)hp->ssm_state, (long long)hp->ssm_n_v);
    /* Multi-token-prediction blocks follow the trunk; the forward pass does
     * not run them (as llama.cpp), so they are not bound either. */
    const int64_t n_all = hp->n_layer;
    hp->n_layer -= nextn;
    char key[128];
    snprintf(key, sizeof(key), "%s.attention.recurrent_layers", hp->arch_name);
    const ts_gguf_kv *kv = ts_gguf_kv_find(m->gguf, key);
    if (kv && (kv->type != TS_GGUF_ARR || kv->arr_n != (uint64_t)n_all ||
               kv->arr_type == TS_GGUF_STR || kv->arr_type == TS_GGUF_ARR))
        return ts_err_set(err, TS_E_FORMAT, "key '%s': not an array of %lld flags (block_count)",
                          key, (long long)n_all);
    m->layers = calloc((size_t)hp->n_layer, sizeof(*m->layers));
    if (!m->layers)
        return ts_err_set(err, TS_E_NOMEM, "model: out of memory");
    for (int64_t il = 0; il < hp->n_layer; il++) {
        const bool gdn = kv ? ts_gguf_arr_i64(kv, (uint64_t)il) != 0 : (il + 1) % interval != 0;
        ts_layer *L = &m->layers[il];
        L->mixer = gdn ? TS_MIX_GDN : TS_MIX_GATED_ATTN;
        L->kv_layer = gdn ? -1 : hp->n_layer_kv++;
        L->rs_layer = gdn ? hp->n_layer_rs++ : -1;
    }
    return TS_OK;
}

static ts_status read_hparams(ts_model *m, ts_err *err)
{
    ts_hparams *hp = &m->hp;
    ts_status st = read_arch(m, err);
    if (st == TS_OK) st = u32_key(m, "embedding_length", true, 0, 1, MAX_DIM, &hp->n_embd, err);
    if (st == TS_OK) st = u32_key(m, "block_count", true, 0, 1, MAX_LAYERS, &hp->n_layer, err);
    if (st == TS_OK) st = u32_key(m, "attention.head_count", true, 0, 1, MAX_HEADS, &hp->n_head, err);
    if (st != TS_OK)
        return st;
    st = u32_key(m, "attention.head_count_kv", false, hp->n_head, 1, hp->n_head, &hp->n_head_kv, err);
    if (st == TS_OK) st = u32_key(m, "feed_forward_length", false, 0, 0, MAX_DIM, &hp->n_ff, err);
    if (st == TS_OK) st = u32_key(m, "context_length", false, 2048, 1, 1 << 24, &hp->n_ctx_train, err);
    if (st == TS_OK)
        st = u32_key(m, "attention.key_length", false, hp->n_embd / hp->n_head, 1, 65536,
                     &hp->head_k, err);
    if (st == TS_OK)
        st = u32_key(m, "attention.value_length", false, hp->n_embd / hp->n_head, 1, 65536,
                     &hp->head_v, err);
    if (st == TS_OK)
        st = u32_key(m, "rope.dimension_count", false, hp->head_k, 0, hp->head_k, &hp->n_rot, err);
    if (st == TS_OK) st = u32_key(m, "expert_count", false, 0, 0, 4096, &hp->n_expert, err);
    if (st == TS_OK)
        st = u32_key(m, "expert_used_count", false, 0, 0, hp->n_expert, &hp->n_expert_used, err);
    if (st == TS_OK)
        st = u32_key(m, "expert_feed_forward_length", false, hp->n_ff, 0, MAX_DIM, &hp->n_ff_exp, err);
    if (st == TS_OK)
        st = u32_key(m, "expert_shared_feed_forward_length", false, 0, 0, MAX_DIM, &hp->n_ff_shexp,
                     err);
    if (st == TS_OK) st = f32_key(m, "rope.freq_base", 10000.0f, &hp->rope_base, err);
    if (st == TS_OK)
        st = f32_key(m, "attention.layer_norm_rms_epsilon", 1e-5f, &hp->rms_eps, err);
    if (st == TS_OK) st = read_rope_scaling(m, err);
    if (st != TS_OK)
        return st;
    if (hp->n_head % hp->n_head_kv)
        return ts_err_set(err, TS_E_FORMAT, "head_count %lld not a multiple of head_count_kv %lld",
                          (long long)hp->n_head, (long long)hp->n_head_kv);
    if (hp->n_rot % 2)
        return ts_err_set(err, TS_E_FORMAT, "rope.dimension_count %lld is odd", (long long)hp->n_rot);
    if (hp->head_k != hp->head_v)
        return ts_err_set(err, TS_E_UNSUPPORTED, "key_length %lld != value_length %lld",
                          (long long)hp->head_k, (long long)hp->head_v);
    if (hp->rope_base <= 0.0f || hp->rms_eps < 0.0f)
        return ts_err_set(err, TS_E_FORMAT, "bad rope.freq_base %g or rms epsilon %g",
                          (double)hp->rope_base, (double)hp->rms_eps);
    const arch_desc *ad = desc_of(hp->arch);
    bool moe_arch = ad->moe;
    if (moe_arch && hp->n_expert == 0)
        return ts_err_set(err, TS_E_FORMAT, "%s model without expert_count", hp->arch_name);
    if (!moe_arch && hp->arch != TS_ARCH_LLAMA && hp->n_expert)
        return ts_err_set(err, TS_E_UNSUPPORTED, "%s with experts", hp->arch_name);
    if (hp->n_expert && (hp->n_expert_used < 1 || hp->n_ff_exp < 1))
        return ts_err_set(err, TS_E_FORMAT, "expert_used_count %lld / expert FFN %lld",
                          (long long)hp->n_expert_used, (long long)hp->n_ff_exp);
    if (!hp->n_expert && hp->n_ff < 1)
        return ts_err_set(err, TS_E_FORMAT, "missing or zero feed_forward_length");
    hp->rope_neox = ad->neox;
    hp->moe_norm_topk = ad->norm_topk;
    hp->qk_norm_full = hp->arch == TS_ARCH_OLMOE;
    /* llama.cpp sizes olmoe's experts by feed_forward_length. */
    if (hp->arch == TS_ARCH_OLMOE && hp->n_ff > 0)
        hp->n_ff_exp = hp->n_ff;
    hp->gdn_kh_mod = ad->kh_mod;
    if (ad->mrope) {
        ts_status st2 = check_mrope(m, err);
        if (st2 != TS_OK)
            return st2;
    }
    if (!ad->hybrid) {
        hp->n_layer_kv = hp->n_layer;
        return TS_OK;
    }
    return read_hybrid(m, err);
}

/* Finds a tensor and checks its dims: ne[0..n) == want[0..n), the rest 1. */
static ts_status find_tensor(ts_model *m, const char *name, int n, const int64_t *want,
                             bool required, const ts_gguf_tensor **out, ts_err *err)
{
    *out = NULL;
    const ts_gguf_tensor *t = ts_gguf_tensor_find(m->gguf, name);
    if (!t) {
        if (required)
            return ts_err_set(err, TS_E_FORMAT, "missing tensor '%s'", name);
        return TS_OK;
    }
    for (int d = 0; d < 4; d++) {
        uint64_t w = d < n ? (uint64_t)want[d] : 1;
        if (t->ne[d] != w)
            return ts_err_set(err, TS_E_FORMAT,
                              "tensor '%s': dim %d is %llu, expected %llu", name, d,
                              (unsigned long long)t->ne[d], (unsigned long long)w);
    }
    *out = t;
    return TS_OK;
}

/* A matrix (rows x cols), or a stack of n_mat of them, usable by ts_mm_run. */
static ts_status get_mat(ts_model *m, const char *name, int64_t cols, int64_t rows,
                         int64_t n_mat, bool required, ts_qview *out, ts_err *err)
{
    const ts_gguf_tensor *t;
    int64_t want[3] = {cols, rows, n_mat};
    memset(out, 0, sizeof(*out));
    ts_status st = find_tensor(m, name, n_mat ? 3 : 2, want, required, &t, err);
    if (st != TS_OK || !t)
        return st;
    if (!ts_mm_supports(t->type))
        return ts_err_set(err, TS_E_UNSUPPORTED, "tensor '%s': type %s not supported", name,
                          ts_qtype_name(t->type));
    size_t row_bytes = ts_qtype_row_bytes(t->type, (uint64_t)cols);
    if (!row_bytes)
        return ts_err_set(err, TS_E_FORMAT, "tensor '%s': %lld columns not a multiple of %s blocks",
                          name, (long long)cols, ts_qtype_name(t->type));
    *out = (ts_qview){t->data, t->type, rows, cols, row_bytes, NULL};
    return TS_OK;
}

/* A tensor of ne (n0, n1) (n1 = 1: a vector), dequantized row by row to an
 * owned f32 copy of n0 x n1. */
static ts_status get_vec2(ts_model *m, const char *name, int64_t n0, int64_t n1, bool required,
                          ts_vecf *out, ts_err *err)
{
    const ts_gguf_tensor *t;
    int64_t want[2] = {n0, n1};
    *out = NULL;
    ts_status st = find_tensor(m, name, 2, want, required, &t, err);
    if (st != TS_OK || !t)
        return st;
    const ts_qtraits *tr = ts_qtype_traits(t->type);
    const size_t rb = ts_qtype_row_bytes(t->type, (uint64_t)n0);
    if (!tr || !tr->supported || !rb)
        return ts_err_set(err, TS_E_UNSUPPORTED, "tensor '%s': type %s not supported", name,
                          ts_qtype_name(t->type));
    float *v = NULL;
    st = own_vec(m, &v, n0 * n1, err);
    if (st != TS_OK)
        return st;
    for (int64_t r = 0; r < n1; r++)
        ts_dequantize_row(t->type, (const char *)t->data + (size_t)r * rb, v + r * n0, n0);
    *out = v;
    return TS_OK;
}

static ts_status get_vec(ts_model *m, const char *name, int64_t n, bool required, ts_vecf *out,
                         ts_err *err)
{
    return get_vec2(m, name, n, 1, required, out, err);
}

static const char *lname(char *buf, size_t cap, int64_t il, const char *what)
{
    snprintf(buf, cap, "blk.%lld.%s", (long long)il, what);
    return buf;
}

static ts_status bind_ffn(ts_model *m, int64_t il, ts_layer *L, ts_err *err)
{
    const ts_hparams *hp = &m->hp;
    char nm[96];
    int64_t d = hp->n_embd;
    ts_status st = TS_OK;
    if (!hp->n_expert) {
        if (ts_gguf_tensor_find(m->gguf, lname(nm, sizeof(nm), il, "ffn_gate_inp.weight")))
            return ts_err_set(err, TS_E_UNSUPPORTED, "tensor '%s' in a dense model", nm);
        st = get_mat(m, lname(nm, sizeof(nm), il, "ffn_gate.weight"), d, hp->n_ff, 0, true, &L->ffn_gate, err);
        if (st == TS_OK) st = get_mat(m, lname(nm, sizeof(nm), il, "ffn_up.weight"), d, hp->n_ff, 0, true, &L->ffn_up, err);
        if (st == TS_OK) st = get_mat(m, lname(nm, sizeof(nm), il, "ffn_down.weight"), hp->n_ff, d, 0, true, &L->ffn_down, err);
        return st;
    }
    int64_t ne = hp->n_expert, fe = hp->n_ff_exp;
    if (!ts_gguf_tensor_find(m->gguf, lname(nm, sizeof(nm), il, "ffn_up_exps.weight")) &&
        ts_gguf_tensor_find(m->gguf, lname(nm, sizeof(nm), il, "ffn_up.0.weight")))
        return ts_err_set(err, TS_E_UNSUPPORTED, "per-expert tensor layout ('%s')", nm);
    st = get_mat(m, lname(nm, sizeof(nm), il, "ffn_gate_inp.weight"), d, ne, 0, true, &L->gate_inp, err);
    if (st == TS_OK) st = get_mat(m, lname(nm, sizeof(nm), il, "ffn_gate_exps.weight"), d, fe, ne, true, &L->gate_exps, err);
    if (st == TS_OK) st = get_mat(m, lname(nm, sizeof(nm), il, "ffn_up_exps.weight"), d, fe, ne, true, &L->up_exps, err);
    if (st == TS_OK) st = get_mat(m, lname(nm, sizeof(nm), il, "ffn_down_exps.weight"), fe, d, ne, true, &L->down_exps, err);
    if (st != TS_OK || !desc_of(hp->arch)->shexp)
        return st;
    int64_t fs = hp->n_ff_shexp ? hp->n_ff_shexp : hp->n_ff;
    if (fs < 1)
        return ts_err_set(err, TS_E_FORMAT, "%s without shared expert length", hp->arch_name);
    st = get_mat(m, lname(nm, sizeof(nm), il, "ffn_gate_shexp.weight"), d, fs, 0, true, &L->gate_shexp, err);
    if (st == TS_OK) st = get_mat(m, lname(nm, sizeof(nm), il, "ffn_up_shexp.weight"), d, fs, 0, true, &L->up_shexp, err);
    if (st == TS_OK) st = get_mat(m, lname(nm, sizeof(nm), il, "ffn_down_shexp.weight"), fs, d, 0, true, &L->down_shexp, err);
    if (st == TS_OK) st = get_vec(m, lname(nm, sizeof(nm), il, "ffn_gate_inp_shexp.weight"), d, true, &L->gate_inp_shexp, err);
    return st;
}

/* A GDN layer (spec: llama.cpp src/models/qwen35.cpp, qwen3next.cpp). */
static ts_status bind_gdn(ts_model *m, int64_t il, ts_layer *L, ts_err *err)
{
    const ts_hparams *hp = &m->hp;
    char nm[96];
    const int64_t d = hp->n_embd, ds = hp->ssm_state, kd = ds * hp->ssm_n_k;
    const int64_t vd = ds * hp->ssm_n_v, ch = 2 * kd + vd, nv = hp->ssm_n_v;
    if (!ts_gguf_tensor_find(m->gguf, lname(nm, sizeof(nm), il, "attn_qkv.weight")) &&
        ts_gguf_tensor_find(m->gguf, lname(nm, sizeof(nm), il, "ssm_in.weight")))
        return ts_err_set(err, TS_E_UNSUPPORTED, "legacy fused GDN input '%s' (reconvert the "
                          "model: attn_qkv + attn_gate)", nm);
    ts_status st = get_mat(m, lname(nm, sizeof(nm), il, "attn_qkv.weight"), d, ch, 0, true, &L->ssm_qkv, err);
    if (st == TS_OK) st = get_mat(m, lname(nm, sizeof(nm), il, "attn_gate.weight"), d, vd, 0, true, &L->ssm_z, err);
    if (st == TS_OK && desc_of(hp->arch)->gdn_ba)
        st = get_mat(m, lname(nm, sizeof(nm), il, "ssm_ba.weight"), d, 2 * nv, 0, true, &L->ssm_ba, err);
    else if (st == TS_OK) {
        st = get_mat(m, lname(nm, sizeof(nm), il, "ssm_beta.weight"), d, nv, 0, true, &L->ssm_beta, err);
        if (st == TS_OK) st = get_mat(m, lname(nm, sizeof(nm), il, "ssm_alpha.weight"), d, nv, 0, true, &L->ssm_alpha, err);
    }
    if (st == TS_OK) st = get_mat(m, lname(nm, sizeof(nm), il, "ssm_out.weight"), vd, d, 0, true, &L->ssm_out, err);
    if (st == TS_OK) st = get_vec2(m, lname(nm, sizeof(nm), il, "ssm_conv1d.weight"), hp->ssm_conv, ch, true, &L->ssm_conv1d, err);
    if (st == TS_OK) st = get_vec(m, lname(nm, sizeof(nm), il, "ssm_dt.bias"), nv, true, &L->ssm_dt, err);
    if (st == TS_OK) st = get_vec(m, lname(nm, sizeof(nm), il, "ssm_a"), nv, true, &L->ssm_a, err);
    if (st == TS_OK) st = get_vec(m, lname(nm, sizeof(nm), il, "ssm_norm.weight"), ds, true, &L->ssm_norm, err);
    return st;
}

static ts_status bind_layer(ts_model *m, int64_t il, ts_layer *L, ts_err *err)
{
    const ts_hparams *hp = &m->hp;
    const arch_desc *ad = desc_of(hp->arch);
    char nm[96];
    int64_t d = hp->n_embd, q_dim = hp->n_head * hp->head_k, kv_dim = hp->n_head_kv * hp->head_k;
    if (L->mixer == TS_MIX_GDN) {
        ts_status st = get_vec(m, lname(nm, sizeof(nm), il, "attn_norm.weight"), d, true, &L->attn_norm, err);
        if (st == TS_OK) st = get_vec(m, lname(nm, sizeof(nm), il, ad->ffn_norm), d, true, &L->ffn_norm, err);
        if (st == TS_OK) st = bind_gdn(m, il, L, err);
        if (st == TS_OK) st = bind_ffn(m, il, L, err);
        return st;
    }
    /* gated attention: attn_q holds [q_h | gate_h] for each head h */
    const int64_t q_rows = L->mixer == TS_MIX_GATED_ATTN ? 2 * q_dim : q_dim;
    bool bias = ad->qkv_bias;
    bool qk_norm = ad->qk_norm || hp->qk_norm_full;
    int64_t qn = hp->qk_norm_full ? q_dim : hp->head_k, kn = hp->qk_norm_full ? kv_dim : hp->head_k;
    if (!ts_gguf_tensor_find(m->gguf, lname(nm, sizeof(nm), il, "attn_q.weight")) &&
        ts_gguf_tensor_find(m->gguf, lname(nm, sizeof(nm), il, "attn_qkv.weight")))
        return ts_err_set(err, TS_E_UNSUPPORTED, "fused QKV tensor layout ('%s')", nm);
    if (ts_gguf_tensor_find(m->gguf, lname(nm, sizeof(nm), il, "attn_output.bias")) ||
        ts_gguf_tensor_find(m->gguf, lname(nm, sizeof(nm), il, "ffn_up.bias")))
        return ts_err_set(err, TS_E_UNSUPPORTED, "tensor '%s'", nm);
    ts_status st = get_vec(m, lname(nm, sizeof(nm), il, "attn_norm.weight"), d, true, &L->attn_norm, err);
    if (st == TS_OK) st = get_vec(m, lname(nm, sizeof(nm), il, ad->ffn_norm), d, true, &L->ffn_norm, err);
    if (st == TS_OK) st = get_mat(m, lname(nm, sizeof(nm), il, "attn_q.weight"), d, q_rows, 0, true, &L->wq, err);
    if (st == TS_OK) st = get_mat(m, lname(nm, sizeof(nm), il, "attn_k.weight"), d, kv_dim, 0, true, &L->wk, err);
    if (st == TS_OK) st = get_mat(m, lname(nm, sizeof(nm), il, "attn_v.weight"), d, kv_dim, 0, true, &L->wv, err);
    if (st == TS_OK) st = get_mat(m, lname(nm, sizeof(nm), il, "attn_output.weight"), q_dim, d, 0, true, &L->wo, err);
    if (st == TS_OK) st = get_vec(m, lname(nm, sizeof(nm), il, "attn_q.bias"), q_rows, bias, &L->bq, err);
    if (st == TS_OK) st = get_vec(m, lname(nm, sizeof(nm), il, "attn_k.bias"), kv_dim, bias, &L->bk, err);
    if (st == TS_OK) st = get_vec(m, lname(nm, sizeof(nm), il, "attn_v.bias"), kv_dim, bias, &L->bv, err);
    if (st == TS_OK) st = get_vec(m, lname(nm, sizeof(nm), il, "attn_q_norm.weight"), qn, qk_norm, &L->q_norm, err);
    if (st == TS_OK) st = get_vec(m, lname(nm, sizeof(nm), il, "attn_k_norm.weight"), kn, qk_norm, &L->k_norm, err);
    if (st == TS_OK) st = bind_ffn(m, il, L, err);
    return st;
}

int ts_layer_mats(ts_layer *L, ts_qview **out)
{
    ts_qview *v[] = {&L->wq,        &L->wk,         &L->wv,        &L->wo,
                     &L->ffn_gate,  &L->ffn_up,     &L->ffn_down,  &L->gate_inp,
                     &L->gate_shexp, &L->up_shexp,  &L->down_shexp, &L->ssm_qkv,
                     &L->ssm_z,     &L->ssm_beta,   &L->ssm_alpha, &L->ssm_ba};
    int n = 0;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        if (v[i]->data && v[i]->rows > 0)
            out[n++] = v[i];
    if (L->ssm_out.data && L->ssm_out.rows > 0)
        out[n++] = &L->ssm_out;
    return n;
}

static ts_status bind_tensors(ts_model *m, ts_err *err)
{
    ts_hparams *hp = &m->hp;
    const ts_gguf_tensor *emb = ts_gguf_tensor_find(m->gguf, "token_embd.weight");
    if (!emb)
        return ts_err_set(err, TS_E_FORMAT, "missing tensor 'token_embd.weight'");
    if (emb->ne[0] != (uint64_t)hp->n_embd || emb->ne[1] < 1 || emb->ne[1] > (1u << 24) ||
        emb->ne[2] != 1 || emb->ne[3] != 1)
        return ts_err_set(err, TS_E_FORMAT, "tensor 'token_embd.weight': bad shape %llux%llu",
                          (unsigned long long)emb->ne[0], (unsigned long long)emb->ne[1]);
    hp->n_vocab = (int64_t)emb->ne[1];
    const ts_qtraits *tr = ts_qtype_traits(emb->type);
    size_t rb = ts_qtype_row_bytes(emb->type, emb->ne[0]);
    if (!tr || !tr->supported || !rb)
        return ts_err_set(err, TS_E_UNSUPPORTED, "tensor 'token_embd.weight': type %s",
                          ts_qtype_name(emb->type));
    m->tok_embd = (ts_qview){emb->data, emb->type, hp->n_vocab, hp->n_embd, rb, NULL};
    ts_status st = get_vec(m, "output_norm.weight", hp->n_embd, true, &m->output_norm, err);
    if (st == TS_OK)
        st = get_mat(m, "output.weight", hp->n_embd, hp->n_vocab, 0, false, &m->output, err);
    if (st != TS_OK)
        return st;
    if (!m->output.data) { /* tied embeddings */
        if (!ts_mm_supports(emb->type))
            return ts_err_set(err, TS_E_UNSUPPORTED, "tied output: type %s not supported",
                              ts_qtype_name(emb->type));
        m->output = m->tok_embd;
    }
    st = get_vec(m, "rope_freqs.weight", hp->n_rot / 2, false, &m->rope_freqs, err);
    if (st != TS_OK)
        return st;
    if (!m->layers) { /* not hybrid: attention in every layer */
        m->layers = calloc((size_t)hp->n_layer, sizeof(*m->layers));
        if (!m->layers)
            return ts_err_set(err, TS_E_NOMEM, "model: out of memory");
        for (int64_t il = 0; il < hp->n_layer; il++)
            m->layers[il] = (ts_layer){.mixer = TS_MIX_ATTN, .kv_layer = il, .rs_layer = -1};
    }
    for (int64_t il = 0; il < hp->n_layer; il++) {
        st = bind_layer(m, il, &m->layers[il], err);
        if (st != TS_OK)
            return st;
    }
    return TS_OK;
}

ts_status ts_model_load(ts_model **out, const char *path, ts_err *err)
{
    *out = NULL;
    ts_model *m = calloc(1, sizeof(*m));
    if (!m)
        return ts_err_set(err, TS_E_NOMEM, "model: out of memory");
    ts_status st = ts_gguf_open(&m->gguf, path, err);
    if (st == TS_OK)
        st = read_hparams(m, err);
    if (st == TS_OK)
        st = bind_tensors(m, err);
    if (st != TS_OK) {
        ts_model_destroy(m);
        return st;
    }
    for (uint64_t i = 0; i < ts_gguf_n_tensors(m->gguf); i++) {
        const ts_gguf_tensor *t = ts_gguf_tensor_at(m->gguf, i);
        m->n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        m->n_bytes += t->n_bytes;
    }
    *out = m;
    return TS_OK;
}

void ts_model_destroy(ts_model *m)
{
    if (!m)
        return;
    ts_place_destroy(m->place);
    for (uint32_t i = 0; i < m->n_repacked; i++)
        ts_mm_release(m->repacked[i]);
    free(m->repacked);
    free(m->lazy_exps);
    for (size_t i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    ts_gguf_close(m->gguf);
    free(m);
}

ts_status ts_model_layer_pattern(const char *path, char *buf, size_t cap, ts_err *err)
{
    ts_model *m = NULL;
    if (cap)
        buf[0] = '\0';
    ts_status st = ts_model_load(&m, path, err);
    if (st != TS_OK)
        return st;
    static const char *const names[] = {"attn", "gated-attn", "gdn"};
    const int64_t n = m->hp.n_layer;
    int64_t p = 1; /* the shortest period the sequence repeats with */
    while (p < n) {
        bool rep = n % p == 0;
        for (int64_t i = p; rep && i < n; i++)
            rep = m->layers[i].mixer == m->layers[i - p].mixer;
        if (rep)
            break;
        p++;
    }
    const char *ffn = m->hp.n_expert ? "+moe" : "";
    size_t len = (size_t)snprintf(buf, cap, "%lld, %s", (long long)n, p > 1 ? "(" : "");
    for (int64_t i = 0; i < p && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s%s", i ? ", " : "",
                                names[m->layers[i].mixer], ffn);
    if (len < cap)
        snprintf(buf + len, cap - len, "%s x %lld", p > 1 ? ")" : "", (long long)(n / p));
    ts_model_destroy(m);
    return TS_OK;
}
