/*
 * core/model.h: the loaded model as the engine sees it (internal to core/).
 *
 * Owns: hyper-parameters read from GGUF metadata, and per-layer weight views
 * bound to the mmap'd tensors (weights stay in their GGUF types; small vectors
 * such as norms and biases are dequantized once to owned f32 copies).
 * Does not own: the GGUF mapping lifetime (the model holds the ts_gguf and
 * closes it), the KV cache or activations (core/session.c, core/kv.c).
 * Invariant: after ts_model_load returns TS_OK every shape used by the forward
 * pass has been checked against the hyper-parameters, so forward code never
 * re-validates.
 */
#ifndef TS_MODEL_H
#define TS_MODEL_H

#include "gguf.h"
#include "matmul.h"
#include "tessera.h"

typedef enum {
    TS_ARCH_LLAMA,
    TS_ARCH_QWEN2,
    TS_ARCH_QWEN3,
    TS_ARCH_QWEN2MOE,
    TS_ARCH_QWEN3MOE,
    TS_ARCH_OLMOE,
    TS_ARCH_QWEN35,
    TS_ARCH_QWEN35MOE,
    TS_ARCH_QWEN3NEXT,
} ts_arch;

/* What a layer's token mixer is (the per-architecture table in core/model.c
 * assigns one to each layer; core/forward.c runs each kind through its own
 * function, core/gdn.c the gated delta-net):
 *   ATTN        causal softmax attention (RoPE, optional bias / Q-K norms)
 *   GATED_ATTN  the same, attn_q holding [q | gate] per head, the output
 *               multiplied by sigmoid(gate) before attn_output (qwen35)
 *   GDN         gated delta-net linear attention with a causal conv1d and a
 *               recurrent state per sequence (qwen35, qwen3next) */
typedef enum { TS_MIX_ATTN = 0, TS_MIX_GATED_ATTN, TS_MIX_GDN } ts_mixer;

typedef struct {
    ts_arch arch;
    char arch_name[32];
    int64_t n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff;
    int64_t head_k, head_v; /* per-head key / value length */
    int64_t n_rot;          /* rotated dims per head (even, <= head_k) */
    int64_t n_ctx_train;
    float rms_eps, rope_base, rope_scale; /* rope_scale multiplies positions */
    bool rope_neox;
    /* Q/K RMSNorm: qk_norm_full normalises each token's whole q (n_head x
     * head_k) and k (n_head_kv x head_k) rows (olmoe); otherwise, where
     * q_norm is present, each head on its own (qwen3). */
    bool qk_norm_full;
    /* MoE (n_expert == 0 for dense models) */
    int64_t n_expert, n_expert_used, n_ff_exp, n_ff_shexp;
    bool moe_norm_topk; /* renormalise the selected top-k weights */
    /* Hybrid models: layers with a KV cache (attention) and with a recurrent
     * state (GDN); the rest of the GDN shape (ssm.* keys). gdn_kh_mod: value
     * head h reads key head h % n_k (qwen35, its converter reorders the heads);
     * else h / (n_v / n_k) (qwen3next). */
    int64_t n_layer_kv, n_layer_rs;
    int64_t ssm_conv, ssm_state, ssm_n_k, ssm_n_v; /* d_conv, head dim, key / value heads */
    bool gdn_kh_mod;
} ts_hparams;

/* An f32 vector owned by the model (norm weights, biases, rope factors). */
typedef const float *ts_vecf;

typedef struct {
    ts_mixer mixer;
    int64_t kv_layer; /* this layer's index in the KV cache (-1: none) */
    int64_t rs_layer; /* and in the recurrent state (-1: none) */
    ts_vecf attn_norm, ffn_norm; /* ffn_norm: qwen35's post_attention_norm */
    ts_qview wq, wk, wv, wo;
    ts_vecf bq, bk, bv;           /* NULL when absent */
    ts_vecf q_norm, k_norm; /* qwen3: (head_k); olmoe: (q rows), (k rows); else NULL */
    ts_qview ffn_gate, ffn_up, ffn_down; /* dense FFN */
    /* MoE: router (n_expert x n_embd) and expert stacks; expert e of a stack
     * starts at data + e * rows * row_stride. */
    ts_qview gate_inp, gate_exps, up_exps, down_exps;
    ts_qview gate_shexp, up_shexp, down_shexp;
    ts_vecf gate_inp_shexp; /* qwen2moe shared-expert gate (n_embd), NULL if none */
    /* GDN: projections of the normed input to the conv channels [q | k | v]
     * (2 n_k + n_v heads of ssm_state), the output gate z, beta and alpha
     * (one per value head; qwen3next's fused ssm_ba is split at load into
     * row views, see core/model.c), the output projection; conv taps
     * (channels x ssm_conv), dt bias, A (= -exp(A_log)), the per-head norm. */
    ts_qview ssm_qkv, ssm_z, ssm_beta, ssm_alpha, ssm_ba, ssm_out;
    ts_vecf ssm_conv1d, ssm_dt, ssm_a, ssm_norm;
} ts_layer;

/* The layer's matrices (2-D, expert stacks excluded) that are present, into
 * out (room for TS_LAYER_MATS); their count. */
#define TS_LAYER_MATS 17
int ts_layer_mats(ts_layer *L, ts_qview **out);

typedef struct ts_model {
    ts_gguf *gguf;
    ts_hparams hp;
    ts_qview tok_embd;  /* (n_vocab, n_embd), any dequantizable type */
    ts_qview output;    /* (n_vocab, n_embd): output.weight or tok_embd when tied */
    ts_vecf output_norm;
    ts_vecf rope_freqs; /* (n_rot / 2) divisors of the rotation angle, or NULL */
    ts_layer *layers;
    float **owned;      /* every ts_vecf allocation, freed at destroy */
    size_t n_owned, cap_owned;
    uint64_t n_params, n_bytes;
    struct ts_placement *place; /* NUMA copies of the matrices (core/place.c), or NULL */
    void **repacked;    /* ts_mm_prepare buffers, one per matrix (NULL = kept as mapped) */
    uint32_t n_repacked;
    /* (n_layer x 3: gate, up, down) expert stacks repacked per expert on first
     * use (core/place.c sets them up, ts_moe_run fills them), or NULL. One
     * allocation with their ready flags. */
    struct ts_moe_lazy *lazy_exps;
} ts_model;

/* Opens and validates a GGUF model. Unsupported architecture, tensor type or
 * layout: TS_E_UNSUPPORTED naming it; inconsistent shapes: TS_E_FORMAT. */
ts_status ts_model_load(ts_model **out, const char *path, ts_err *err);
void ts_model_destroy(ts_model *m);

#endif
