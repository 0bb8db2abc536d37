/*
 * quant/mix.h: quantization mixes ("q4_k_m", "q8_0", ...) and the per-tensor
 * type each one picks, following llama.cpp v0.5.0's llama-quant.cpp.
 *
 * A mix is a default type plus rules: which tensors stay as they are (1-D
 * tensors, norms, MoE routers, ...), which get more bits (output.weight,
 * some attn_v / ffn_down layers), and a fallback when a row length is not a
 * multiple of the chosen type's block (e.g. Qwen2.5-0.5B's 896 columns).
 * Not covered (Tessera has no such models or types): Falcon and 70B
 * special cases, imatrix-dependent choices, IQ mixes, --tensor-type
 * overrides. The n_expert == 8 rules are covered. Layer position is read from the "blk.N." prefix, which equals
 * llama.cpp's running tensor counters for dense models stored in order.
 */
#ifndef TS_QUANT_MIX_H
#define TS_QUANT_MIX_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *name;     /* canonical lower-case name, e.g. "q4_k_m" */
    uint32_t ftype;       /* llama_ftype value, for general.file_type */
    uint32_t base;        /* default ts_qtype of quantized tensors */
    int variant;          /* internal: which rule set (s/m/l, ...) */
    /* Model facts some rules need; ts_qmix_parse zeroes them, the caller sets
     * them when it knows (cmd_quantize does). */
    bool tied_embeddings; /* no output.weight: token_embd is treated as the output */
    uint32_t n_gqa;       /* n_head / n_head_kv; 0 = unknown (treated as 1) */
    uint32_t n_expert;    /* experts per MoE layer; 0 = dense */
} ts_qmix;

#define TS_QMIX_OK 0
#define TS_QMIX_UNKNOWN (-1)     /* no mix of that name */
#define TS_QMIX_UNSUPPORTED (-2) /* a llama.cpp mix Tessera cannot produce (e.g. iq2_xxs) */

/* Parses a mix name, case-insensitive (llama-quantize's names: "Q4_K_M",
 * "q8_0", "f16"; "q4_k" means q4_k_m as in llama-quantize). Fills *out and
 * returns TS_QMIX_OK, or one of the error codes above. */
int ts_qmix_parse(const char *name, ts_qmix *out);

/* Name of the i-th mix ts_qmix_parse accepts (for usage messages); NULL
 * past the end. */
const char *ts_qmix_name_at(int i);

/* Type for one tensor whose source type is src_type. ne[0] is the row length
 * (elements), n_dims the tensor's dims, n_layers the model's block count.
 * Tensors the mix leaves alone (1-D, norms, routers, not named *weight, ...)
 * return src_type. */
uint32_t ts_qmix_tensor_type_src(const ts_qmix *m, const char *tensor_name, uint32_t n_dims,
                                 const uint64_t *ne, int n_layers, uint32_t src_type);

/* Same, for an F32 source (what `tessera gen` holds): tensors the mix
 * leaves alone stay TS_QTYPE_F32. */
uint32_t ts_qmix_tensor_type(const ts_qmix *m, const char *tensor_name, uint32_t n_dims,
                             const uint64_t *ne, int n_layers);

#endif
