/*
 * core/estimate.c: the peak resident memory a run will need, predicted from
 * the model file's metadata before anything is placed (tessera run --dry-run).
 *
 * Owns the formula, term by term, each mirroring what the engine allocates
 * and touches: weights (every tensor's bytes: repacked copies replace the
 * file's pages as they are made, so one copy is resident; an untied
 * embedding is touched only on the rows of the tokens seen), the KV cache
 * (positions used x layers x KV heads x (K + padded V) elements, touched as
 * it fills), the activations of one chunk (core/session.c's buffers, the
 * matmul's quantized rows for every activation format the weights use, and
 * the MoE buffers of core/moe.c), the pool's per-worker scratch, and a fixed
 * base (program, libraries, tokenizer tables). Does not own the allocations;
 * a buffer the engine adds must be added here too (test_estimate_* checks
 * the total against the measured peak).
 */
#include <string.h>

#include "estimate.h"
#include "err.h"
#include "gdn.h"
#include "matmul.h"
#include "model.h"
#include "moe.h"
#include "session.h"
#include "tokenizer.h"
#include "../simd/ops.h"
#include "../quant/quant.h"

/* Program text, shared libraries, libc arenas and the runtime's own: the
 * peak RSS of a stories260K run less its model terms (8.5 MiB measured,
 * 2026-12-03). */
#define BASE_BYTES (8ull << 20)
#define WORKER_SCRATCH (1ull << 20) /* sched/pool.c DEFAULT_SCRATCH */
#define PAGE 4096ull

static uint64_t pad64(uint64_t n) { return (n + 63) & ~63ull; }
static uint64_t round_page(uint64_t n) { return (n + PAGE - 1) & ~(PAGE - 1); }

static uint64_t act_row(int act, int64_t k)
{
    return pad64(ts_qtype_row_bytes(ts_act_qtype(act), (uint64_t)k));
}

/* Bit per activation format that some matrix of m reads. */
static uint32_t acts_used(const ts_model *m)
{
    const ts_kernels *kt = ts_mm_kernels();
    uint32_t acts = 0;
    const uint64_t n_t = ts_gguf_n_tensors(m->gguf);
    for (uint64_t i = 0; i < n_t; i++) {
        const ts_gguf_tensor *t = ts_gguf_tensor_at(m->gguf, i);
        if (t->n_dims >= 2) {
            const int a = ts_moe_act_of(kt, t->type);
            if (a >= 0)
                acts |= 1u << a;
        }
    }
    return acts;
}

static uint64_t scratch_bytes(const ts_model *m, int64_t c, uint32_t n_workers)
{
    const ts_hparams *hp = &m->hp;
    int64_t ff = hp->n_ff;
    ff = hp->n_ff_exp > ff ? hp->n_ff_exp : ff;
    ff = hp->n_ff_shexp > ff ? hp->n_ff_shexp : ff;
    const uint64_t xs = pad64((uint64_t)hp->n_embd * 4);
    const uint64_t qs = pad64((uint64_t)(hp->n_head * hp->head_k) * 4);
    const uint64_t kvs = pad64((uint64_t)(hp->n_head_kv * hp->head_k) * 4);
    const uint64_t fs = pad64((uint64_t)ff * 4);
    /* core/session.c: x xn q att k v ffn_a ffn_b rope, and the logits row */
    uint64_t b = (uint64_t)c * (2 * xs + 2 * qs + 2 * kvs + 2 * fs + (uint64_t)(hp->n_rot + 1) * 4);
    b += (uint64_t)hp->n_vocab * 4;
    int64_t max_k = hp->n_embd;
    const int64_t dims[4] = {hp->n_head * hp->head_k, hp->n_ff, hp->n_ff_exp, hp->n_ff_shexp};
    for (int i = 0; i < 4; i++)
        max_k = dims[i] > max_k ? dims[i] : max_k;
    const uint32_t acts = acts_used(m);
    for (int f = TS_ACT_Q8_0; f < TS_ACT_COUNT; f++) /* core/matmul.c: act, act_next */
        if (acts & (1u << f))
            b += 2 * (uint64_t)c * act_row(f, max_k);
    if (hp->n_expert) { /* core/session.c MoE scratch and core/moe.c buffers */
        const uint64_t nu = (uint64_t)hp->n_expert_used, pairs = (uint64_t)c * nu;
        b += (uint64_t)c * (uint64_t)hp->n_expert * 4 + pairs * 12 + (uint64_t)c * (nu + 1) * xs;
        for (int f = TS_ACT_Q8_0; f < TS_ACT_COUNT; f++)
            if (acts & (1u << f))
                b += (uint64_t)c * act_row(f, max_k) + pairs * act_row(f, max_k);
        b += pairs * pad64((uint64_t)hp->n_ff_exp * 4);
    }
    return b + (uint64_t)n_workers * WORKER_SCRATCH;
}

ts_status ts_estimate_memory(const char *model_path, const ts_mem_query *q, ts_mem_estimate *out,
                             ts_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!q || q->n_pos < 1 || q->n_seq < 1 || q->chunk_rows < 1 || q->n_workers < 1)
        return ts_err_set(err, TS_E_ARG, "estimate: n_pos %lld, n_seq %d, chunk %lld",
                          q ? (long long)q->n_pos : 0, q ? q->n_seq : 0,
                          q ? (long long)q->chunk_rows : 0);
    ts_model *m = NULL;
    ts_status st = ts_model_load(&m, model_path, err);
    if (st != TS_OK)
        return st;
    const ts_hparams *hp = &m->hp;
    uint64_t w = m->n_bytes;
    if (m->output.data != m->tok_embd.data) { /* untied: embedding rows as tokens are seen */
        const int64_t rows = q->n_pos * q->n_seq < hp->n_vocab ? q->n_pos * q->n_seq : hp->n_vocab;
        const uint64_t emb = (uint64_t)m->tok_embd.row_stride * (uint64_t)hp->n_vocab;
        w = w - emb + round_page((uint64_t)m->tok_embd.row_stride * (uint64_t)rows);
    }
    out->weight_bytes = w;
    /* KV: per sequence its positions in whole key blocks, each (layer, head)
     * block of K and of V touched by the page. */
    int kt = 0, vt = 0;
    st = ts_kv_types(q->kv_f32, q->kv_type_k, q->kv_type_v, &kt, &vt, err);
    if (st != TS_OK) {
        ts_model_destroy(m);
        return st;
    }
    const uint64_t blocks = (uint64_t)((q->n_pos + TS_ATTN_KBLK - 1) / TS_ATTN_KBLK);
    const uint64_t heads = (uint64_t)(hp->n_layer_kv * hp->n_head_kv);
    const uint64_t per_seq = heads * (round_page(blocks * ts_attn_kblock_bytes(kt, hp->head_k)) +
                                      round_page(blocks * ts_attn_vblock_bytes(vt, hp->head_k)));
    /* hybrid models: the recurrent state of every GDN layer too (f32, per sequence) */
    const uint64_t rs = hp->n_layer_rs ? round_page((uint64_t)hp->n_layer_rs *
                                                    ts_gdn_layer_floats(hp) * sizeof(float))
                                       : 0;
    out->kv_bytes = (per_seq + rs) * (uint64_t)q->n_seq;
    out->scratch_bytes = scratch_bytes(m, q->chunk_rows, q->n_workers);
    out->base_bytes = BASE_BYTES + (m->gguf ? ts_gguf_file_bytes(m->gguf) - m->n_bytes : 0);
    out->total_bytes = out->weight_bytes + out->kv_bytes + out->scratch_bytes + out->base_bytes;
    ts_model_destroy(m);
    return TS_OK;
}
