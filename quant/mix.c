/*
 * quant/mix.c: the quantization mix table and the per-tensor type rules.
 *
 * Owns: mix names -> (llama_ftype, default type, rule variant) and the
 * decision for each tensor, written from llama.cpp v0.5.0's llama-quant.cpp
 * (llama_tensor_get_type and tensor_type_fallback) for dense, non-Falcon
 * models without an importance matrix. Does not own any I/O or the
 * quantizers themselves. See mix.h for what is deliberately not covered.
 */
#include "mix.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "quant.h"

enum {
    V_PLAIN, /* default type everywhere, plus the output rule */
    V_Q2_K, V_Q2_K_S,
    V_Q3_K_S, V_Q3_K_M, V_Q3_K_L,
    V_Q4_K_S, V_Q4_K_M,
    V_Q5_K_S, V_Q5_K_M,
    V_UNSUPPORTED,
};

static const struct {
    const char *name;
    uint32_t ftype; /* llama.h enum llama_ftype */
    uint32_t base;
    int variant;
} mixes[] = {
    {"f32", 0, TS_QTYPE_F32, V_PLAIN},
    {"f16", 1, TS_QTYPE_F16, V_PLAIN},
    {"bf16", 32, TS_QTYPE_BF16, V_PLAIN},
    {"q4_0", 2, TS_QTYPE_Q4_0, V_PLAIN},
    {"q4_1", 3, TS_QTYPE_Q4_1, V_PLAIN},
    {"q5_0", 8, TS_QTYPE_Q5_0, V_PLAIN},
    {"q5_1", 9, TS_QTYPE_Q5_1, V_PLAIN},
    {"q8_0", 7, TS_QTYPE_Q8_0, V_PLAIN},
    {"q2_k", 10, TS_QTYPE_Q2_K, V_Q2_K},
    {"q2_k_s", 21, TS_QTYPE_Q2_K, V_Q2_K_S},
    {"q3_k_s", 11, TS_QTYPE_Q3_K, V_Q3_K_S},
    {"q3_k_m", 12, TS_QTYPE_Q3_K, V_Q3_K_M},
    {"q3_k_l", 13, TS_QTYPE_Q3_K, V_Q3_K_L},
    {"q4_k_s", 14, TS_QTYPE_Q4_K, V_Q4_K_S},
    {"q4_k_m", 15, TS_QTYPE_Q4_K, V_Q4_K_M},
    {"q5_k_s", 16, TS_QTYPE_Q5_K, V_Q5_K_S},
    {"q5_k_m", 17, TS_QTYPE_Q5_K, V_Q5_K_M},
    {"q6_k", 18, TS_QTYPE_Q6_K, V_PLAIN},
    /* llama-quantize aliases */
    {"q3_k", 12, TS_QTYPE_Q3_K, V_Q3_K_M},
    {"q4_k", 15, TS_QTYPE_Q4_K, V_Q4_K_M},
    {"q5_k", 17, TS_QTYPE_Q5_K, V_Q5_K_M},
    /* known to llama.cpp, not producible here (no IQ quantizers) */
    {"iq2_xxs", 19, TS_QTYPE_IQ2_XXS, V_UNSUPPORTED},
    {"iq2_xs", 20, 17, V_UNSUPPORTED},
    {"iq3_xxs", 23, 18, V_UNSUPPORTED},
    {"iq4_nl", 25, 20, V_UNSUPPORTED},
    {"iq4_xs", 30, 23, V_UNSUPPORTED},
};
#define N_MIXES (int)(sizeof(mixes) / sizeof(mixes[0]))

int ts_qmix_parse(const char *name, ts_qmix *out)
{
    for (int i = 0; name && i < N_MIXES; i++) {
        if (strcasecmp(name, mixes[i].name) != 0)
            continue;
        if (mixes[i].variant == V_UNSUPPORTED)
            return TS_QMIX_UNSUPPORTED;
        *out = (ts_qmix){.name = mixes[i].name, .ftype = mixes[i].ftype,
                         .base = mixes[i].base, .variant = mixes[i].variant};
        return TS_QMIX_OK;
    }
    return TS_QMIX_UNKNOWN;
}

const char *ts_qmix_name_at(int i)
{
    /* Only producible mixes are listed. */
    for (int k = 0; k < N_MIXES; k++) {
        if (mixes[k].variant == V_UNSUPPORTED)
            continue;
        if (i-- == 0)
            return mixes[k].name;
    }
    return NULL;
}

static bool has(const char *s, const char *sub)
{
    return strstr(s, sub) != NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
    const size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* llama.cpp's tensor_allows_quantization, for the names that exist in the
 * architectures Tessera reads (plus the common multimodal/SSM exclusions). */
static bool allows_quantization(const char *name, uint32_t n_dims)
{
    static const char *const never[] = {
        "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
        "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "time_mix_first.weight",
        "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight",
        "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight",
        "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
        "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
        "attn_rel_b.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
        ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd",
        ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
    };
    if (n_dims < 2 || !ends_with(name, "weight"))
        return false;
    if (strcmp(name, "position_embd.weight") == 0 || strcmp(name, "token_types.weight") == 0)
        return false;
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
        if (has(name, never[i]))
            return false;
    return true;
}

/* "half" the layers: the first and last eighth, and every third in between. */
static bool use_more_bits(int i_layer, int n_layers)
{
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 ||
           (i_layer - n_layers / 8) % 3 == 2;
}

static bool is_block256(uint32_t type)
{
    const ts_qtraits *t = ts_qtype_traits(type);
    return t && t->blck == TS_QK_K;
}

/* The mix's rule for a quantizable tensor, before the shape fallback. */
static uint32_t mix_rule(const ts_qmix *m, const char *name, uint64_t nx, int n_layers)
{
    const int v = m->variant;
    uint32_t type = m->base;
    const bool is_output = strcmp(name, "output.weight") == 0;
    const bool is_embd = strcmp(name, "token_embd.weight") == 0 ||
                         strcmp(name, "per_layer_token_embd.weight") == 0;
    int layer = -1;
    if (sscanf(name, "blk.%d.", &layer) != 1)
        layer = -1;
    const int n = n_layers > 0 ? n_layers : 1;
    const int il = layer >= 0 ? layer : 0;
    const uint32_t gqa = m->n_gqa ? m->n_gqa : 1;

    if (is_output || (m->tied_embeddings && is_embd)) {
        const ts_qtraits *t = ts_qtype_traits(type);
        if (nx % t->blck != 0)
            return TS_QTYPE_Q8_0;
        return type != TS_QTYPE_Q8_0 ? TS_QTYPE_Q6_K : type;
    }
    if (is_embd)
        return type;
    /* attn_v-like: attn_v, fused attn_qkv, MLA's attn_kv_b */
    if (has(name, "attn_qkv.weight") || has(name, "attn_kv_b.weight") ||
        has(name, "attn_v.weight")) {
        if (v == V_Q2_K)
            type = gqa >= 4 ? TS_QTYPE_Q4_K : TS_QTYPE_Q3_K;
        else if (v == V_Q2_K_S && gqa >= 4)
            type = TS_QTYPE_Q4_K;
        else if (v == V_Q3_K_M)
            type = il < 2 ? TS_QTYPE_Q5_K : TS_QTYPE_Q4_K;
        else if (v == V_Q3_K_L)
            type = TS_QTYPE_Q5_K;
        else if ((v == V_Q4_K_M || v == V_Q5_K_M) && use_more_bits(il, n))
            type = TS_QTYPE_Q6_K;
        else if (v == V_Q4_K_S && il < 4)
            type = TS_QTYPE_Q5_K;
        /* 8-expert models: attn_v and attn_k are small next to the experts. */
        return m->n_expert == 8 ? TS_QTYPE_Q8_0 : type;
    }
    if (has(name, "attn_k.weight"))
        return m->n_expert == 8 ? TS_QTYPE_Q8_0 : type;
    if (has(name, "attn_q.weight"))
        return type;
    if (has(name, "attn_output.weight")) {
        if (m->n_expert == 8)
            return v == V_Q2_K || v == V_Q3_K_S || v == V_Q3_K_M || v == V_Q4_K_S ||
                           v == V_Q4_K_M
                       ? TS_QTYPE_Q5_K
                       : type;
        if (v == V_Q2_K)
            type = TS_QTYPE_Q3_K;
        else if (v == V_Q3_K_M)
            type = TS_QTYPE_Q4_K;
        else if (v == V_Q3_K_L)
            type = TS_QTYPE_Q5_K;
        return type;
    }
    if (has(name, "ffn_up") || has(name, "ffn_gate"))
        return type;
    if (has(name, "ffn_down")) {
        if (v == V_Q2_K)
            type = TS_QTYPE_Q3_K;
        else if (v == V_Q2_K_S && il < n / 8)
            type = TS_QTYPE_Q4_K;
        else if (v == V_Q3_K_M)
            type = il < n / 16 ? TS_QTYPE_Q5_K : TS_QTYPE_Q4_K;
        else if (v == V_Q3_K_L)
            type = TS_QTYPE_Q5_K;
        else if (v == V_Q4_K_M && use_more_bits(il, n))
            type = TS_QTYPE_Q6_K;
        else if (v == V_Q5_K_M && use_more_bits(il, n))
            type = TS_QTYPE_Q6_K;
        else if (v == V_Q4_K_S && il < n / 8)
            type = TS_QTYPE_Q5_K;
        return type;
    }
    return type;
}

/* Rows not a multiple of 256: K-quants drop to a 32-block type of similar
 * size; if even 32 does not divide the row, F16. */
static uint32_t shape_fallback(uint32_t type, uint64_t nx)
{
    const ts_qtraits *t = ts_qtype_traits(type);
    if (nx % t->blck == 0)
        return type;
    if (is_block256(type)) {
        switch (type) {
        case TS_QTYPE_Q2_K:
        case TS_QTYPE_Q3_K: type = TS_QTYPE_Q4_0; break;
        case TS_QTYPE_Q4_K: type = TS_QTYPE_Q5_0; break;
        case TS_QTYPE_Q5_K: type = TS_QTYPE_Q5_1; break;
        case TS_QTYPE_Q6_K: type = TS_QTYPE_Q8_0; break;
        default: return TS_QTYPE_F16;
        }
    }
    return nx % ts_qtype_traits(type)->blck == 0 ? type : TS_QTYPE_F16;
}

uint32_t ts_qmix_tensor_type_src(const ts_qmix *m, const char *tensor_name, uint32_t n_dims,
                                 const uint64_t *ne, int n_layers, uint32_t src_type)
{
    if (!allows_quantization(tensor_name, n_dims))
        return src_type;
    const ts_qtraits *bt = ts_qtype_traits(m->base);
    if (bt->blck == 1) /* f32 / f16 / bf16 mixes: no rules, no fallback */
        return m->base;
    return shape_fallback(mix_rule(m, tensor_name, ne[0], n_layers), ne[0]);
}

uint32_t ts_qmix_tensor_type(const ts_qmix *m, const char *tensor_name, uint32_t n_dims,
                             const uint64_t *ne, int n_layers)
{
    return ts_qmix_tensor_type_src(m, tensor_name, n_dims, ne, n_layers, TS_QTYPE_F32);
}
