/*
 * tests/test_nonfinite_engine.c: models whose weights hold NaN or Inf, end to
 * end (the kernel-level rule is tests/test_nonfinite.c).
 *
 * Generated tiny models (tessera gen, no downloads) are patched through the
 * GGUF reader/writer: the f16 scale of one token's embedding row set to NaN
 * or +Inf, or one f32 norm weight set to +Inf. `tessera logits` runs them at
 * every ISA level the host has (TESSERA_ISA caps the engine's kernel table,
 * which is filled once per process, hence one process per level). The logits
 * must be bit-identical across levels; positions before the patched token
 * equal the unpatched model's bits, the patched position and every later one
 * (they attend to it) are all the canonical NaN 0x7fc00000. `tessera run`
 * reports such logits in one line and exits 1; `tessera quantize` refuses a
 * NaN tensor naming it and its row; the sampler's non-finite contract.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "levels.h"
#include "test.h"
#include "../core/gguf.h"
#include "../core/tessera.h"
#include "../quant/quant.h"

enum {
    PATCH_NONE, PATCH_SCALE_NAN, PATCH_SCALE_INF, PATCH_ELEM_INF, PATCH_ELEM_NAN, PATCH_ELEM_INF2
};

/* Byte offset of the f16 d of a row's first block (the value of element 5
 * for f32/f16 tensors is patched instead). */
static size_t d_offset(uint32_t type)
{
    switch (type) {
    case TS_QTYPE_Q2_K: return offsetof(ts_block_q2_k, d);
    case TS_QTYPE_Q3_K: return offsetof(ts_block_q3_k, d);
    case TS_QTYPE_Q6_K: return offsetof(ts_block_q6_k, d);
    default: return 0; /* d leads every other block struct */
    }
}

/* Copies src to dst (metadata and tensors in order) with row `row` of tensor
 * `name` patched: SCALE_*: its first block's d = NaN / +Inf (f32/f16: element
 * 5); ELEM_*: element 5 = +Inf / NaN, ELEM_INF2: elements 5 and 6 = +Inf (f32
 * tensors). Returns 0 on success. */
static int patch_model(const char *src, const char *dst, const char *name, uint64_t row, int how)
{
    ts_gguf *g = NULL;
    ts_gguf_writer *w = NULL;
    ts_err err = {0};
    uint8_t *copy = NULL;
    int rc = -1;
    if (ts_gguf_open(&g, src, &err) != TS_OK || ts_gguf_writer_create(&w, &err) != TS_OK)
        goto out;
    for (uint64_t i = 0; i < ts_gguf_n_kv(g); i++)
        ts_gguf_w_kv(w, ts_gguf_kv_at(g, i));
    for (uint64_t i = 0; i < ts_gguf_n_tensors(g); i++) {
        const ts_gguf_tensor *t = ts_gguf_tensor_at(g, i);
        char tn[256];
        ts_str_copy(t->name, tn, sizeof(tn));
        const void *data = t->data;
        if (!strcmp(tn, name) && how != PATCH_NONE) {
            copy = malloc(t->n_bytes);
            if (!copy)
                goto out;
            memcpy(copy, t->data, t->n_bytes);
            uint8_t *r = copy + row * ts_qtype_row_bytes(t->type, t->ne[0]);
            const bool nan = how == PATCH_SCALE_NAN || how == PATCH_ELEM_NAN;
            if (t->type == TS_QTYPE_F32) {
                const float v = nan ? NAN : INFINITY;
                memcpy(r + 5 * sizeof(float), &v, sizeof(v));
                if (how == PATCH_ELEM_INF2)
                    memcpy(r + 6 * sizeof(float), &v, sizeof(v));
            } else {
                const ts_f16 h = nan ? TS_F16_NAN : 0x7c00u; /* +Inf */
                memcpy(r + (t->type == TS_QTYPE_F16 ? 5 * 2 : d_offset(t->type)), &h, 2);
            }
            data = copy;
        }
        ts_gguf_w_tensor(w, tn, t->type, t->n_dims, t->ne, data, t->n_bytes);
    }
    rc = ts_gguf_writer_write(w, dst, &err) == TS_OK ? 0 : -1;
out:
    TS_CHECK(rc == 0, "patching %s -> %s: %s", src, dst, err.msg);
    ts_gguf_writer_destroy(w);
    free(copy);
    ts_gguf_close(g);
    return rc;
}

static int gen(const char *path, const char *arch, const char *type)
{
    char out[1024];
    int rc = ts_test_sh(out, sizeof(out), 120, "%s gen --shape tiny --arch %s --type %s -o %s",
                        ts_test_bin(), arch, type, path);
    TS_CHECK(rc == 0, "tessera gen --arch %s --type %s: exit %d: %s", arch, type, rc, out);
    return rc;
}

#define N_TOK 7
#define BAD_POS 4 /* toks[BAD_POS] is the patched token */
#define BAD_TOK 7
static const int32_t k_toks[N_TOK] = {1, 20, 33, 44, BAD_TOK, 50, 60};

/* All positions' logits of k_toks from `tessera logits` at level isa (extra:
 * more options), or NULL (failure recorded). *n_vocab is set. */
static float *cli_logits(const char *model, const char *isa, const char *extra, int64_t *n_vocab)
{
    char tok_path[512], out_path[512], out[2048];
    snprintf(tok_path, sizeof(tok_path), "%s/nonfinite.tokens", ts_test_tmpdir());
    snprintf(out_path, sizeof(out_path), "%s/nonfinite.logits", ts_test_tmpdir());
    FILE *f = fopen(tok_path, "w");
    if (!f)
        return NULL;
    for (int i = 0; i < N_TOK; i++)
        fprintf(f, "%d ", (int)k_toks[i]);
    fclose(f);
    int rc = ts_test_sh(out, sizeof(out), 120,
                        "TESSERA_ISA=%s %s logits -m %s --tokens %s --out %s -t 2 %s", isa,
                        ts_test_bin(), model, tok_path, out_path, extra);
    TS_CHECK(rc == 0, "logits at %s on %s: exit %d: %s", isa, model, rc, out);
    f = rc == 0 ? fopen(out_path, "rb") : NULL;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    const long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *v = malloc((size_t)bytes);
    const size_t got = v ? fread(v, 1, (size_t)bytes, f) : 0;
    fclose(f);
    *n_vocab = bytes / (long)sizeof(float) / N_TOK;
    if (got != (size_t)bytes || *n_vocab * N_TOK * (long)sizeof(float) != bytes) {
        TS_CHECK(0, "logits file of %ld bytes", bytes);
        free(v);
        return NULL;
    }
    return v;
}

/* Counts logits at positions [p0, N_TOK) that are not the canonical NaN (nor
 * +-Inf when inf_ok); *n_nan gets the canonical NaNs among them. */
static int64_t not_canon_nan(const float *v, int64_t nv, int p0, bool inf_ok, int64_t *n_nan)
{
    int64_t n = 0;
    *n_nan = 0;
    for (int64_t i = (int64_t)p0 * nv; i < (int64_t)N_TOK * nv; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        *n_nan += u == TS_F32_NAN_BITS;
        n += u != TS_F32_NAN_BITS && !(inf_ok && isinf(v[i]));
    }
    return n;
}

typedef struct {
    const char *arch, *type;
    const char *tensor; /* patched tensor */
    uint64_t row;
    int how;
    int first_bad; /* first position whose logits must be NaN */
    bool inf_ok;   /* logits may be +-Inf too (f16 head on Inf activations) */
} nan_case;

TS_TEST(test_nonfinite_engine_levels)
{
    static const nan_case cases[] = {
        {"llama", "q8_0", "token_embd.weight", BAD_TOK, PATCH_SCALE_NAN, BAD_POS, false},
        {"llama", "q8_0", "token_embd.weight", BAD_TOK, PATCH_SCALE_INF, BAD_POS, false},
        {"llama", "q8_0", "blk.1.ffn_norm.weight", 0, PATCH_ELEM_INF, 0, false},
        {"llama", "q4_k", "token_embd.weight", BAD_TOK, PATCH_SCALE_NAN, BAD_POS, false},
        {"llama", "q4_1", "token_embd.weight", BAD_TOK, PATCH_SCALE_INF, BAD_POS, false},
        {"qwen3moe", "q8_0", "token_embd.weight", BAD_TOK, PATCH_SCALE_NAN, BAD_POS, false},
        /* f16 output head on f32 activations (no quantizer): two +Inf norm
         * weights give +-Inf logits and, where they meet with opposite
         * signs, a NaN made by the add (x86's default NaN is 0xffc00000):
         * the canonicalisation must rewrite those. */
        {"llama", "f16", "output_norm.weight", 0, PATCH_ELEM_INF2, 0, true},
    };
    ts_isa lv[6];
    const int n_lv = ts_test_levels(lv);
    char base[512] = "", path[512];
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const nan_case *k = &cases[c];
        char want_base[512];
        snprintf(want_base, sizeof(want_base), "%s/nf-%s-%s.gguf", ts_test_tmpdir(), k->arch,
                 k->type);
        if (strcmp(base, want_base)) {
            snprintf(base, sizeof(base), "%s", want_base);
            if (gen(base, k->arch, k->type))
                return;
        }
        snprintf(path, sizeof(path), "%s/nf-case%zu.gguf", ts_test_tmpdir(), c);
        if (patch_model(base, path, k->tensor, k->row, k->how))
            return;
        float *clean0 = NULL, *bad0 = NULL;
        int64_t nv = 0;
        for (int l = 0; l < n_lv; l++) {
            const char *isa = ts_isa_name(lv[l]);
            float *clean = cli_logits(base, isa, "", &nv);
            float *bad = cli_logits(path, isa, "", &nv);
            TS_REQUIRE(clean && bad, "case %zu at %s: no logits", c, isa);
            const size_t row = (size_t)nv * sizeof(float);
            int64_t nonfinite = 0;
            for (int64_t i = 0; i < N_TOK * nv; i++)
                nonfinite += !isfinite(clean[i]);
            TS_CHECK(nonfinite == 0, "%s %s at %s: %lld non-finite clean logits", k->arch,
                     k->type, isa, (long long)nonfinite);
            TS_CHECK(memcmp(clean, bad, row * (size_t)k->first_bad) == 0,
                     "case %zu (%s %s %s) at %s: positions before %d changed", c, k->arch,
                     k->type, k->tensor, isa, k->first_bad);
            int64_t n_nan = 0;
            const int64_t off = not_canon_nan(bad, nv, k->first_bad, k->inf_ok, &n_nan);
            TS_CHECK(off == 0 && n_nan > 0,
                     "case %zu (%s %s %s) at %s: %lld logits from position %d on are not the "
                     "canonical NaN (%lld are)", c, k->arch, k->type, k->tensor, isa,
                     (long long)off, k->first_bad, (long long)n_nan);
            if (l == 0) {
                clean0 = clean;
                bad0 = bad;
                continue;
            }
            TS_CHECK(memcmp(clean0, clean, row * N_TOK) == 0, "%s %s: clean logits at %s != %s",
                     k->arch, k->type, isa, ts_isa_name(lv[0]));
            TS_CHECK(memcmp(bad0, bad, row * N_TOK) == 0, "case %zu: logits at %s != %s", c, isa,
                     ts_isa_name(lv[0]));
            free(clean);
            free(bad);
        }
        if (c == 0) { /* chunk 1 (decode-like) and 1 thread: the same bits */
            float *ch = cli_logits(path, ts_isa_name(lv[n_lv - 1]), "--chunk 1 -t 1", &nv);
            TS_CHECK(ch && !memcmp(ch, bad0, (size_t)nv * sizeof(float) * N_TOK),
                     "case 0: chunk 1 differs");
            free(ch);
        }
        free(clean0);
        free(bad0);
    }
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* `tessera run` on a model whose logits are NaN: one stderr line naming the
 * position, exit 1, nothing sampled (greedy and sampling both). */
TS_TEST(test_nonfinite_engine_run_cli)
{
    char base[512], path[512], out[4096];
    snprintf(base, sizeof(base), "%s/nf-run-base.gguf", ts_test_tmpdir());
    snprintf(path, sizeof(path), "%s/nf-run-inf.gguf", ts_test_tmpdir());
    if (gen(base, "llama", "q8_0") ||
        patch_model(base, path, "output_norm.weight", 0, PATCH_ELEM_INF))
        return;
    static const char *const temps[] = {"0", "0.8"};
    for (int i = 0; i < 2; i++) {
        int rc = ts_test_sh(out, sizeof(out), 120, "%s run -m %s -p 'hello world' -n 4 "
                            "--temp %s --seed 3", ts_test_bin(), path, temps[i]);
        TS_CHECK(rc == 1, "run --temp %s on a NaN model: exit %d, want 1: %s", temps[i], rc, out);
        TS_CHECK(strstr(out, "tessera run: the logits at position ") &&
                     strstr(out, "are not finite (NaN/Inf)") && count_lines(out) == 1,
                 "run --temp %s on a NaN model printed: %s", temps[i], out);
    }
    int rc = ts_test_sh(out, sizeof(out), 120, "%s run -m %s -p 'hello world' -n 2 --seed 3",
                        ts_test_bin(), base);
    TS_CHECK(rc == 0, "run on the unpatched model: exit %d: %s", rc, out);
}

/* `tessera quantize` refuses a float tensor holding NaN, naming it and the
 * row, and writes nothing. */
TS_TEST(test_nonfinite_engine_quantize_refuses)
{
    char base[512], path[512], dst[512], out[4096];
    snprintf(base, sizeof(base), "%s/nf-q-base.gguf", ts_test_tmpdir());
    snprintf(path, sizeof(path), "%s/nf-q-nan.gguf", ts_test_tmpdir());
    snprintf(dst, sizeof(dst), "%s/nf-q-out.gguf", ts_test_tmpdir());
    if (gen(base, "llama", "f32") ||
        patch_model(base, path, "blk.0.ffn_up.weight", 3, PATCH_ELEM_NAN))
        return;
    int rc = ts_test_sh(out, sizeof(out), 120, "%s quantize %s %s q8_0", ts_test_bin(), path, dst);
    TS_CHECK(rc == 1, "quantize of a NaN tensor: exit %d, want 1: %s", rc, out);
    TS_CHECK(strstr(out, "tensor blk.0.ffn_up.weight row 3 holds NaN or Inf (element 5)") &&
                 count_lines(out) == 1, "quantize of a NaN tensor printed: %s", out);
    TS_CHECK(access(dst, F_OK) != 0, "quantize left %s behind", dst);
    rc = ts_test_sh(out, sizeof(out), 120, "%s quantize %s %s q8_0", ts_test_bin(), base, dst);
    TS_CHECK(rc == 0, "quantize of the unpatched model: exit %d: %s", rc, out);
}

/* The sampler on non-finite logits: -1 for NaN, +Inf (also one made by the
 * repetition penalty) and all -Inf; never a -Inf token otherwise. */
TS_TEST(test_nonfinite_engine_sampler)
{
    enum { NV = 8 };
    const ts_sampling greedy = {.temp = 0.0f}, hot = {.temp = 0.8f, .seed = 1},
                      flat = {.temp = 1e30f, .top_p = 0.5f, .seed = 2},
                      pen = {.temp = 0.0f, .repeat_penalty = 1e-38f};
    const ts_sampling *cfg[] = {&greedy, &hot, &flat};
    for (int c = 0; c < 3; c++) {
        ts_sampler *s = NULL;
        TS_REQUIRE(ts_sampler_create(&s, cfg[c], NV, NULL) == TS_OK, "sampler %d", c);
        float l[NV];
        for (int i = 0; i < NV; i++)
            l[i] = (float)i * 0.25f;
        l[3] = NAN;
        TS_CHECK(ts_sampler_sample(s, l) == -1, "config %d: NaN logit sampled", c);
        l[3] = INFINITY;
        TS_CHECK(ts_sampler_sample(s, l) == -1, "config %d: +Inf logit sampled", c);
        for (int i = 0; i < NV; i++)
            l[i] = -INFINITY;
        TS_CHECK(ts_sampler_sample(s, l) == -1, "config %d: all -Inf sampled", c);
        l[2] = 1.0f;
        l[5] = 1.0f;
        int wrong = 0;
        for (int draw = 0; draw < 2000; draw++) {
            const int32_t t = ts_sampler_sample(s, l);
            wrong += t != 2 && t != 5;
        }
        TS_CHECK(wrong == 0, "config %d: %d draws of a -Inf token", c, wrong);
        ts_sampler_destroy(s);
    }
    ts_sampler *s = NULL;
    TS_REQUIRE(ts_sampler_create(&s, &pen, NV, NULL) == TS_OK, "penalty sampler");
    float l[NV] = {1e3f, 2.0f, 3.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    ts_sampler_accept(s, 0); /* 1e3 / 1e-38 overflows to +Inf */
    TS_CHECK(ts_sampler_sample(s, l) == -1, "penalty to +Inf: sampled");
    TS_CHECK(l[0] == 1e3f, "logits modified");
    ts_sampler_destroy(s);
}
