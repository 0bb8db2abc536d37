/*
 * tools/cmd_quantize.c: `tessera quantize IN OUT TYPE`, re-quantizes a GGUF
 * model with one of llama.cpp's mixes (quant/mix.h).
 *
 * Owns: the file-level flow: copy every metadata kv in order (then
 * general.quantization_version and general.file_type, as llama-quantize
 * orders them; split.* keys dropped), pick each tensor's type with the mix, and
 * stream the tensors out. A tensor whose type does not change is copied byte
 * for byte; any other is dequantized row by row to f32 and re-quantized with
 * the scalar reference quantizers, at write time (a fill callback), so only
 * one tensor's worth of output is in memory. Single-threaded on purpose:
 * output is byte-identical run to run. For ../shared/models/synth-llama-f32
 * the output file equals llama-quantize's (no imatrix) byte for byte for
 * all 12 mixes in ../shared (checked 2026-11 by cmp). A tensor to be converted
 * that holds NaN or +-Inf is refused (first bad row named) before any write;
 * a tensor copied byte for byte is not inspected.
 * Does not own: GGUF parsing/writing (core/gguf.h) or the quantizers.
 */
#include "cmds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tokenizer.h"
#include "../quant/mix.h"
#include "../quant/quant.h"

#define GGML_QNT_VERSION 2 /* ggml.h: bumped when block formats change */

typedef struct {
    const ts_gguf_tensor *src;
    uint32_t dst_type;
    uint64_t n_rows;
} requant_job;

/* Fill callback: dequantize each source row to f32, quantize into dst. */
static ts_status requant_fill(void *ctx, void *dst, uint64_t n_bytes, ts_err *err)
{
    const requant_job *job = ctx;
    const ts_gguf_tensor *t = job->src;
    const uint64_t ne0 = t->ne[0];
    const size_t src_row = ts_qtype_row_bytes(t->type, ne0);
    const size_t dst_row = ts_qtype_row_bytes(job->dst_type, ne0);
    if (dst_row * job->n_rows != n_bytes || src_row * job->n_rows != t->n_bytes) {
        if (err) {
            err->status = TS_E_STATE;
            snprintf(err->msg, sizeof(err->msg), "tensor size mismatch while requantizing");
        }
        return TS_E_STATE;
    }
    float *row = malloc(ne0 * sizeof(float));
    if (!row) {
        if (err) {
            err->status = TS_E_NOMEM;
            snprintf(err->msg, sizeof(err->msg), "out of memory for a row of %llu floats",
                     (unsigned long long)ne0);
        }
        return TS_E_NOMEM;
    }
    for (uint64_t r = 0; r < job->n_rows; r++) {
        ts_dequantize_row(t->type, (const uint8_t *)t->data + r * src_row, row, (int64_t)ne0);
        ts_quantize_row(job->dst_type, row, (uint8_t *)dst + r * dst_row, (int64_t)ne0);
    }
    free(row);
    return TS_OK;
}

/* Refuses a tensor about to be converted when a value of it (dequantized) is
 * NaN or +-Inf, naming the first bad row, before anything is written: the
 * quantizers would store such blocks as NaN (quant/quant.h), a model that can
 * only produce NaN logits. llama.cpp validates rows too. Returns 0 or 1. */
static int check_finite(const ts_gguf_tensor *t, const char *name, uint64_t n_rows,
                        const char *in)
{
    const uint64_t ne0 = t->ne[0];
    const size_t src_row = ts_qtype_row_bytes(t->type, ne0);
    if (src_row * n_rows != t->n_bytes)
        return 0; /* requant_fill reports the mismatch */
    float *row = malloc(ne0 * sizeof(float));
    if (!row) {
        ts_cli_error("quantize", "out of memory");
        return 1;
    }
    int rc = 0;
    for (uint64_t r = 0; r < n_rows && !rc; r++) {
        ts_dequantize_row(t->type, (const uint8_t *)t->data + r * src_row, row, (int64_t)ne0);
        const int64_t e = ts_first_nonfinite(row, (int64_t)ne0);
        if (e >= 0) {
            ts_cli_error("quantize", "%s: tensor %s row %llu holds NaN or Inf (element %lld): "
                         "refusing to quantize it", in, name, (unsigned long long)r, (long long)e);
            rc = 1;
        }
    }
    free(row);
    return rc;
}

static void list_types(void)
{
    fprintf(stderr, "valid types:");
    for (int i = 0; ts_qmix_name_at(i); i++)
        fprintf(stderr, " %s", ts_qmix_name_at(i));
    fputc('\n', stderr);
}

/* Reads <arch>.<suffix> as u32; 0 when absent or not a scalar integer. */
static uint32_t arch_u32(const ts_gguf *g, const char *arch, const char *suffix)
{
    char key[160];
    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    uint32_t v = 0;
    bool found = false;
    if (ts_gguf_get_u32(g, key, &v, &found, NULL) != TS_OK || !found)
        return 0;
    return v;
}

/* Copies metadata in order, then appends general.quantization_version and
 * general.file_type (replacing any old values) and drops split.* keys: the
 * key order llama-quantize produces (its gguf_set_val_* remove, then append). */
static void copy_metadata(ts_gguf_writer *w, const ts_gguf *g, uint32_t ftype)
{
    static const char *const dropped[] = {
        "general.file_type", "general.quantization_version", "split.no", "split.count",
        "split.tensors.count",
    };
    for (uint64_t i = 0; i < ts_gguf_n_kv(g); i++) {
        const ts_gguf_kv *kv = ts_gguf_kv_at(g, i);
        bool drop = false;
        for (size_t k = 0; k < sizeof(dropped) / sizeof(dropped[0]); k++)
            drop = drop || ts_str_eq(kv->key, dropped[k]);
        if (!drop)
            ts_gguf_w_kv(w, kv);
    }
    ts_gguf_w_u32(w, "general.quantization_version", GGML_QNT_VERSION);
    ts_gguf_w_u32(w, "general.file_type", ftype);
}

typedef struct {
    int layer; /* N of "blk.N.", -1 for other tensors */
    uint64_t index;
    char name[256];
} tensor_key;

/* llama-quantize writes tensors in its loader's map order: by layer (non-
 * layer tensors first), then by name. We do the same so files match. */
static int cmp_tensor_key(const void *pa, const void *pb)
{
    const tensor_key *a = pa, *b = pb;
    if (a->layer != b->layer)
        return a->layer < b->layer ? -1 : 1;
    return strcmp(a->name, b->name);
}

/* Picks every tensor's type and queues it on the writer. Returns 0 or 1. */
static int plan_tensors(ts_gguf_writer *w, const ts_gguf *g, const ts_qmix *mix, int n_layers,
                        requant_job *jobs, const char *in)
{
    const uint64_t n_t = ts_gguf_n_tensors(g);
    tensor_key *keys = calloc(n_t + 1, sizeof(*keys));
    if (!keys) {
        ts_cli_error("quantize", "out of memory");
        return 1;
    }
    for (uint64_t i = 0; i < n_t; i++) {
        keys[i].index = i;
        ts_str_copy(ts_gguf_tensor_at(g, i)->name, keys[i].name, sizeof(keys[i].name));
        if (sscanf(keys[i].name, "blk.%d.", &keys[i].layer) != 1)
            keys[i].layer = -1;
    }
    qsort(keys, n_t, sizeof(*keys), cmp_tensor_key);
    for (uint64_t k = 0; k < n_t; k++) {
        const uint64_t i = keys[k].index;
        const char *name = keys[k].name;
        const ts_gguf_tensor *t = ts_gguf_tensor_at(g, i);
        const uint32_t dst = ts_qmix_tensor_type_src(mix, name, t->n_dims, t->ne, n_layers, t->type);
        uint64_t n_rows = 1;
        for (uint32_t d = 1; d < t->n_dims; d++)
            n_rows *= t->ne[d];
        if (dst == t->type) {
            ts_gguf_w_tensor(w, name, t->type, t->n_dims, t->ne, t->data, t->n_bytes);
            continue;
        }
        const ts_qtraits *st = ts_qtype_traits(t->type);
        if (!st || !st->supported) {
            ts_cli_error("quantize", "%s: tensor %s has type %s, which Tessera cannot dequantize",
                         in, name, ts_qtype_name(t->type));
            free(keys);
            return 1;
        }
        if (check_finite(t, name, n_rows, in)) {
            free(keys);
            return 1;
        }
        jobs[i] = (requant_job){.src = t, .dst_type = dst, .n_rows = n_rows};
        ts_gguf_w_tensor_fn(w, name, dst, t->n_dims, t->ne, requant_fill, &jobs[i]);
    }
    free(keys);
    return 0;
}

int cmd_quantize(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: tessera quantize IN.gguf OUT.gguf TYPE\n");
        list_types();
        return 2;
    }
    const char *in = argv[1], *out = argv[2], *type = argv[3];
    ts_qmix mix;
    const int pr = ts_qmix_parse(type, &mix);
    if (pr != TS_QMIX_OK) {
        ts_cli_error("quantize", pr == TS_QMIX_UNSUPPORTED
                                     ? "type '%s' is a llama.cpp mix Tessera cannot produce"
                                     : "unknown type '%s'",
                     type);
        list_types();
        return 2;
    }

    ts_err err = {0};
    ts_gguf *g = NULL;
    if (ts_gguf_open(&g, in, &err) != TS_OK) {
        ts_cli_error("quantize", "%s", err.msg); /* names the file already */
        return 1;
    }
    /* Validate the whole input, tokenizer included, before writing anything:
     * a file whose vocabulary would be refused at load must not be copied on. */
    if (ts_gguf_kv_find(g, "tokenizer.ggml.model")) {
        ts_vocab *v = NULL;
        if (ts_vocab_load(&v, g, &err) != TS_OK) {
            ts_cli_error("quantize", "%s: %s", in, err.msg);
            ts_gguf_close(g);
            return 1;
        }
        ts_vocab_destroy(v);
    }
    char arch[64] = "";
    ts_str arch_s = {0};
    bool found = false;
    if (ts_gguf_get_str(g, "general.architecture", &arch_s, &found, NULL) == TS_OK && found)
        ts_str_copy(arch_s, arch, sizeof(arch));
    const int n_layers = (int)arch_u32(g, arch, "block_count");
    const uint32_t n_head = arch_u32(g, arch, "attention.head_count");
    const uint32_t n_head_kv = arch_u32(g, arch, "attention.head_count_kv");
    mix.n_gqa = n_head && n_head_kv ? n_head / n_head_kv : 1;
    mix.n_expert = arch_u32(g, arch, "expert_count");
    mix.tied_embeddings = ts_gguf_tensor_find(g, "output.weight") == NULL;

    ts_gguf_writer *w = NULL;
    requant_job *jobs = calloc(ts_gguf_n_tensors(g) + 1, sizeof(*jobs));
    if (!jobs || ts_gguf_writer_create(&w, &err) != TS_OK) {
        ts_cli_error("quantize", "out of memory");
        free(jobs);
        ts_gguf_close(g);
        return 1;
    }
    copy_metadata(w, g, mix.ftype);
    int rc = plan_tensors(w, g, &mix, n_layers, jobs, in);
    const char *const inputs[] = {in, NULL}; /* requantizing in place would lose it */
    if (rc == 0 && ts_gguf_writer_write_checked(w, out, inputs, &err) != TS_OK) {
        ts_cli_error("quantize", "%s", err.msg); /* names the file already */
        rc = 1;
    }
    if (rc == 0)
        printf("quantized %s -> %s (%s, %llu tensors)\n", in, out, mix.name,
               (unsigned long long)ts_gguf_n_tensors(g));
    ts_gguf_writer_destroy(w);
    free(jobs);
    ts_gguf_close(g);
    return rc;
}
