/*
 * tests/test_gguf.c: the GGUF reader against valid and hostile files.
 *
 * The hostile corpus is generated here, not committed: a small valid llama
 * model (with an SPM tokenizer) is serialised by a tiny independent writer
 * whose every field can be overridden, then each case corrupts one field.
 * Every case must fail in-process with TS_E_FORMAT/UNSUPPORTED and a message,
 * and through every CLI command that loads a model with a non-zero exit, one
 * line on stderr and no crash, hang or sanitizer report.
 */
#include "test.h"
#include "../core/gguf.h"
#include "../quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *p;
    size_t n, cap;
    size_t data_off; /* where tensor data starts: before it all is header/metadata */
} buf;

static void put(buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void str(buf *b, const char *s) { u64(b, strlen(s)), put(b, s, strlen(s)); }

/* Overrides for one hostile case; zero/NULL fields mean "as the valid model". */
typedef struct {
    int set_n_tensors, set_n_kv;
    uint64_t n_tensors, n_kv;
    uint32_t version;
    int key_len_case;      /* 1: key length SIZE_MAX, 2: past end */
    int str_len_case;      /* 1: string value length SIZE_MAX, 2: past end */
    int arr_case;          /* 1: u32 array count overflowing count*4, 2: 2^61 count */
    int n_dims;            /* for tensor 0 */
    int dim_case;          /* 1: dim 0, 2: dim 2^63, 3: product overflows */
    int type_case;         /* 1: unknown type 4 (hole), 2: out of range 1000 */
    int off_case;          /* 1: not aligned, 2: past end, 3: overlapping */
    int align_case;        /* 1: 0, 2: 13, 3: stored as i32 */
    int tok_case;          /* 1: scores shorter than tokens, 2: bos id >= vocab,
                              3: token text claims > 2^31 bytes, 4: token_type short,
                              5: eos negative (i32) */
} hostile;

#define N_VOCAB 300
#define EMBD 32

/* A valid tiny llama: 1 layer, dim 32, 2 heads, 300-token SPM vocab. */
static buf build(const hostile *h)
{
    buf b = {0};
    const char *arch = "llama";
    put(&b, "GGUF", 4);
    u32(&b, h->version ? h->version : 3);
    struct { const char *name; uint32_t nd; uint64_t ne[2]; } ts[] = {
        {"token_embd.weight", 2, {EMBD, N_VOCAB}}, {"output_norm.weight", 1, {EMBD, 1}},
        {"blk.0.attn_norm.weight", 1, {EMBD, 1}},  {"blk.0.attn_q.weight", 2, {EMBD, EMBD}},
        {"blk.0.attn_k.weight", 2, {EMBD, EMBD}},  {"blk.0.attn_v.weight", 2, {EMBD, EMBD}},
        {"blk.0.attn_output.weight", 2, {EMBD, EMBD}}, {"blk.0.ffn_norm.weight", 1, {EMBD, 1}},
        {"blk.0.ffn_gate.weight", 2, {EMBD, 64}},  {"blk.0.ffn_up.weight", 2, {EMBD, 64}},
        {"blk.0.ffn_down.weight", 2, {64, EMBD}},
    };
    const uint64_t n_t = sizeof(ts) / sizeof(ts[0]);
    const uint64_t n_kv = 17;
    u64(&b, h->set_n_tensors ? h->n_tensors : n_t);
    u64(&b, h->set_n_kv ? h->n_kv : n_kv);
    /* 1 */
    if (h->key_len_case == 1)
        u64(&b, UINT64_MAX);
    else if (h->key_len_case == 2)
        u64(&b, 1u << 30);
    else
        str(&b, "general.architecture");
    u32(&b, TS_GGUF_STR);
    if (h->str_len_case == 1)
        u64(&b, UINT64_MAX);
    else if (h->str_len_case == 2)
        u64(&b, 1u << 30);
    else
        str(&b, arch);
    /* 2 */
    str(&b, "general.alignment");
    if (h->align_case == 3) {
        u32(&b, TS_GGUF_I32);
        u32(&b, 32);
    } else {
        u32(&b, TS_GGUF_U32);
        u32(&b, h->align_case == 1 ? 0 : h->align_case == 2 ? 13 : 32);
    }
    /* 3..11 hyper-parameters */
    const char *hp[] = {"context_length", "embedding_length", "block_count",
                        "feed_forward_length", "attention.head_count",
                        "attention.head_count_kv", "rope.dimension_count"};
    const uint32_t hv[] = {256, EMBD, 1, 64, 2, 2, 16};
    for (int i = 0; i < 7; i++) {
        char k[96];
        snprintf(k, sizeof(k), "%s.%s", arch, hp[i]);
        str(&b, k);
        u32(&b, TS_GGUF_U32);
        u32(&b, hv[i]);
    }
    str(&b, "llama.attention.layer_norm_rms_epsilon");
    u32(&b, TS_GGUF_F32);
    float eps = 1e-5f;
    put(&b, &eps, 4);
    /* 11: an array whose count overflows */
    str(&b, "general.test_array");
    u32(&b, TS_GGUF_ARR);
    u32(&b, TS_GGUF_U32);
    u64(&b, h->arr_case == 1 ? (UINT64_MAX / 4 + 2) : h->arr_case == 2 ? (1ULL << 61) : 2);
    u32(&b, 7);
    u32(&b, 9);
    /* 12..17 tokenizer */
    str(&b, "tokenizer.ggml.model");
    u32(&b, TS_GGUF_STR);
    str(&b, "llama");
    str(&b, "tokenizer.ggml.tokens");
    u32(&b, TS_GGUF_ARR);
    u32(&b, TS_GGUF_STR);
    u64(&b, N_VOCAB);
    for (int i = 0; i < N_VOCAB; i++) {
        char t[32];
        if (i == 0)
            snprintf(t, sizeof(t), "<unk>");
        else if (i == 1)
            snprintf(t, sizeof(t), "<s>");
        else if (i == 2)
            snprintf(t, sizeof(t), "</s>");
        else if (i < 259)
            snprintf(t, sizeof(t), "<0x%02X>", i - 3);
        else
            snprintf(t, sizeof(t), "\xe2\x96\x81%c%c", 'a' + (i - 259) % 26, 'a' + (i - 259) / 26);
        if (h->tok_case == 3 && i == N_VOCAB - 1) {
            u64(&b, (1ULL << 31) + 5); /* claims a 2 GiB token text */
            put(&b, t, strlen(t));
        } else {
            str(&b, t);
        }
    }
    uint64_t n_scores = h->tok_case == 1 ? N_VOCAB - 7 : N_VOCAB;
    str(&b, "tokenizer.ggml.scores");
    u32(&b, TS_GGUF_ARR);
    u32(&b, TS_GGUF_F32);
    u64(&b, n_scores);
    for (uint64_t i = 0; i < n_scores; i++) {
        float s = -(float)i;
        put(&b, &s, 4);
    }
    uint64_t n_types = h->tok_case == 4 ? 3 : N_VOCAB;
    str(&b, "tokenizer.ggml.token_type");
    u32(&b, TS_GGUF_ARR);
    u32(&b, TS_GGUF_I32);
    u64(&b, n_types);
    for (uint64_t i = 0; i < n_types; i++)
        u32(&b, i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1);
    str(&b, "tokenizer.ggml.bos_token_id");
    u32(&b, TS_GGUF_U32);
    u32(&b, h->tok_case == 2 ? N_VOCAB + 5 : 1);
    str(&b, "tokenizer.ggml.eos_token_id");
    if (h->tok_case == 5) {
        u32(&b, TS_GGUF_I32);
        u32(&b, (uint32_t)-3);
    } else {
        u32(&b, TS_GGUF_U32);
        u32(&b, 2);
    }
    /* tensor infos: F32 everywhere */
    uint64_t off = 0;
    for (uint64_t i = 0; i < n_t; i++) {
        str(&b, ts[i].name);
        uint32_t nd = (i == 0 && h->n_dims) ? (uint32_t)h->n_dims : ts[i].nd;
        u32(&b, nd);
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t ne = d < ts[i].nd ? ts[i].ne[d] : 1;
            if (i == 0 && d == 0 && h->dim_case == 1)
                ne = 0;
            if (i == 0 && d == 1 && h->dim_case == 2)
                ne = 1ULL << 63;
            if (i == 0 && h->dim_case == 3)
                ne = d == 0 ? (1ULL << 32) : (1ULL << 33);
            u64(&b, ne);
        }
        uint32_t type = TS_QTYPE_F32;
        if (i == 1 && h->type_case == 1)
            type = 4;
        if (i == 1 && h->type_case == 2)
            type = 1000;
        u32(&b, type);
        uint64_t o = off;
        if (i == 2 && h->off_case == 1)
            o += 4;
        if (i == 2 && h->off_case == 2)
            o = 1ULL << 40;
        if (i == 3 && h->off_case == 3)
            o = 0; /* overlaps token_embd */
        u64(&b, o);
        uint64_t bytes = ts[i].ne[0] * ts[i].ne[1] * 4;
        off += (bytes + 31) / 32 * 32;
    }
    while (b.n % 32)
        put(&b, "", 1);
    b.data_off = b.n;
    /* data: small deterministic values */
    uint64_t st = 7;
    for (uint64_t i = 0; i < off / 4; i++) {
        float v = ts_test_randf(&st) * 0.1f;
        put(&b, &v, 4);
    }
    return b;
}

static const char *write_file(const char *name, const buf *b)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", ts_test_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    fwrite(b->p, 1, b->n, f);
    fclose(f);
    return path;
}

/* Opens in-process; returns the status and leaves the message in err. */
static ts_status try_open(const char *path, ts_err *err)
{
    ts_gguf *g = NULL;
    ts_status st = ts_gguf_open(&g, path, err);
    ts_gguf_close(g);
    return st;
}

TS_TEST(test_gguf_valid_model_opens)
{
    hostile h = {0};
    buf b = build(&h);
    const char *p = write_file("valid.gguf", &b);
    ts_err err = {0};
    ts_gguf *g = NULL;
    TS_REQUIRE(ts_gguf_open(&g, p, &err) == TS_OK, "valid file refused: %s", err.msg);
    TS_CHECK(ts_gguf_n_tensors(g) == 11, "n_tensors %llu", (unsigned long long)ts_gguf_n_tensors(g));
    uint32_t v = 0;
    bool found = false;
    TS_CHECK(ts_gguf_get_u32(g, "llama.embedding_length", &v, &found, &err) == TS_OK && found &&
                 v == EMBD, "embedding_length");
    ts_str s;
    TS_CHECK(ts_gguf_get_str(g, "general.architecture", &s, &found, &err) == TS_OK &&
                 ts_str_eq(s, "llama"), "architecture");
    const ts_gguf_kv *kv = NULL;
    TS_CHECK(ts_gguf_get_arr(g, "tokenizer.ggml.tokens", TS_GGUF_STR, &kv, &err) == TS_OK && kv &&
                 kv->arr_n == N_VOCAB, "tokens array");
    TS_CHECK(ts_gguf_get_u32(g, "general.architecture", &v, &found, &err) == TS_E_FORMAT,
             "string read as u32 must fail");
    const ts_gguf_tensor *t = ts_gguf_tensor_find(g, "blk.0.ffn_down.weight");
    TS_CHECK(t && t->ne[0] == 64 && t->ne[1] == EMBD && t->n_bytes == 64 * EMBD * 4, "tensor");
    ts_gguf_close(g);
    free(b.p);
}

TS_TEST(test_gguf_truncated_everywhere)
{
    hostile h = {0};
    buf b = build(&h);
    /* Grow one file a byte at a time through the header and metadata: each
     * prefix must be refused with a message. */
    char path[512];
    snprintf(path, sizeof(path), "%s/trunc.gguf", ts_test_tmpdir());
    FILE *f = fopen(path, "wb");
    TS_REQUIRE(f != NULL, "cannot write %s", path);
    int bad = 0;
    for (size_t cut = 0; cut <= b.data_off; cut++) {
        if (cut)
            fwrite(b.p + cut - 1, 1, 1, f);
        fflush(f);
        ts_err err = {0};
        ts_status st = try_open(path, &err);
        if ((st == TS_OK || !err.msg[0]) && bad++ < 5)
            TS_CHECK(0, "truncated at %zu of %zu: accepted", cut, b.n);
    }
    fclose(f);
    TS_CHECK(bad == 0, "%d truncations accepted", bad);
    free(b.p);
}

typedef struct {
    const char *name;
    hostile h;
    const char *want; /* substring of the error message */
} hcase;

static const hcase cases[] = {
    {"n_tensors_2^64-1", {.set_n_tensors = 1, .n_tensors = UINT64_MAX}, "n_tensors"},
    {"n_tensors_2^63", {.set_n_tensors = 1, .n_tensors = 1ULL << 63}, "n_tensors"},
    {"n_tensors_2^32", {.set_n_tensors = 1, .n_tensors = 1ULL << 32}, "n_tensors"},
    {"n_tensors_2^31", {.set_n_tensors = 1, .n_tensors = 1ULL << 31}, "n_tensors"},
    {"n_kv_2^64-1", {.set_n_kv = 1, .n_kv = UINT64_MAX}, "n_kv"},
    {"n_kv_2^63", {.set_n_kv = 1, .n_kv = 1ULL << 63}, "n_kv"},
    {"n_kv_2^32", {.set_n_kv = 1, .n_kv = 1ULL << 32}, "n_kv"},
    {"n_kv_2^31", {.set_n_kv = 1, .n_kv = 1ULL << 31}, "n_kv"},
    {"version_1", {.version = 1}, "version 1"},
    {"version_99", {.version = 99}, "version"},
    {"key_len_SIZE_MAX", {.key_len_case = 1}, "key"},
    {"key_len_past_end", {.key_len_case = 2}, "key"},
    {"str_len_SIZE_MAX", {.str_len_case = 1}, "string"},
    {"str_len_past_end", {.str_len_case = 2}, "string"},
    {"array_count_overflow", {.arr_case = 1}, "array"},
    {"array_count_2^61", {.arr_case = 2}, "array"},
    {"n_dims_0", {.n_dims = 0 + 100}, "n_dims"},
    {"n_dims_5", {.n_dims = 5}, "n_dims"},
    {"dim_0", {.dim_case = 1}, "dim"},
    {"dim_2^63", {.dim_case = 2}, "dim"},
    {"dims_product_overflow", {.dim_case = 3}, "overflow"},
    {"type_unknown", {.type_case = 1}, "type"},
    {"type_out_of_range", {.type_case = 2}, "type"},
    {"offset_unaligned", {.off_case = 1}, "alignment"},
    {"offset_past_end", {.off_case = 2}, "past end"},
    {"offset_overlapping", {.off_case = 3}, "overlaps"},
    {"alignment_0", {.align_case = 1}, "alignment"},
    {"alignment_13", {.align_case = 2}, "alignment"},
    {"alignment_i32", {.align_case = 3}, "alignment"},
};

static buf build_case(const hcase *c)
{
    hostile h = c->h;
    if (h.n_dims == 100)
        h.n_dims = -1; /* marker for "0": written as 0 below */
    buf b;
    if (h.n_dims == -1) {
        h.n_dims = 0;
        /* n_dims 0: handled by a dedicated path since 0 means "unset" */
        hostile z = h;
        b = build(&z);
        /* Patch tensor 0's n_dims: search for its name and overwrite. */
        const char *nm = "token_embd.weight";
        for (size_t i = 0; i + strlen(nm) + 4 < b.n; i++)
            if (!memcmp(b.p + i, nm, strlen(nm))) {
                uint32_t zero = 0;
                memcpy(b.p + i + strlen(nm), &zero, 4);
                break;
            }
        return b;
    }
    return build(&h);
}

TS_TEST(test_gguf_hostile_in_process)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        buf b = build_case(&cases[i]);
        const char *p = write_file("hostile.gguf", &b);
        ts_err err = {0};
        ts_status st = try_open(p, &err);
        TS_CHECK(st != TS_OK, "%s: accepted", cases[i].name);
        TS_CHECK(strstr(err.msg, cases[i].want) != NULL, "%s: message '%s' lacks '%s'",
                 cases[i].name, err.msg, cases[i].want);
        TS_CHECK(strchr(err.msg, '\n') == NULL, "%s: multi-line message", cases[i].name);
        free(b.p);
    }
}

/* Tokenizer-level cases: the GGUF structure is fine; loading the model
 * (tokenizer arrays, special ids) must refuse them. */
static const hcase tok_cases[] = {
    {"scores_shorter_than_vocab", {.tok_case = 1}, "scores"},
    {"bos_id_past_vocab", {.tok_case = 2}, "bos"},
    {"token_text_2^31", {.tok_case = 3}, "string"},
    {"token_type_short", {.tok_case = 4}, "token_type"},
    {"eos_negative", {.tok_case = 5}, "eos"},
};

/* Every command that loads a model, with arguments that are otherwise valid. */
static const char *const commands[] = {
    "info %s",
    "tokenize -m %s -p hello",
    "run -m %s -p hello -n 2",
    "logits -m %s --tokens %s.tok --out %s.out",
    "bench -m %s -p 8 -n 2 -r 1",
    "quantize %s %s.q8 q8_0",
};

static void check_cli(const char *label, const char *path)
{
    char out[4096], cmd[1024];
    for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++) {
        snprintf(cmd, sizeof(cmd), commands[c], path, path, path);
        int rc = ts_test_sh(out, sizeof(out), 60, "echo 1 2 3 > %s.tok; %s %s", path,
                            ts_test_bin(), cmd);
        TS_CHECK(rc == 1 || rc == 2, "%s: '%s' exit %d: %.300s", label, cmd, rc, out);
        TS_CHECK(strstr(out, "Sanitizer") == NULL && strstr(out, "runtime error") == NULL,
                 "%s: '%s' sanitizer report: %.600s", label, cmd, out);
        size_t lines = 0;
        for (char *q = out; *q; q++)
            lines += *q == '\n';
        TS_CHECK(lines == 1, "%s: '%s' printed %zu lines: %.300s", label, cmd, lines, out);
    }
}

TS_TEST(test_gguf_hostile_cli)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        buf b = build_case(&cases[i]);
        const char *p = write_file(cases[i].name, &b);
        check_cli(cases[i].name, p);
        free(b.p);
    }
    for (size_t i = 0; i < sizeof(tok_cases) / sizeof(tok_cases[0]); i++) {
        buf b = build_case(&tok_cases[i]);
        const char *p = write_file(tok_cases[i].name, &b);
        check_cli(tok_cases[i].name, p);
        free(b.p);
    }
    /* A sample of truncations through the CLI (all of them run in-process). */
    hostile h = {0};
    buf b = build(&h);
    for (size_t cut = 0; cut < b.data_off; cut += b.data_off / 7 + 1) {
        buf t = {b.p, cut, cut, 0};
        char nm[64];
        snprintf(nm, sizeof(nm), "trunc-%zu.gguf", cut);
        check_cli(nm, write_file(nm, &t));
    }
    free(b.p);
}

TS_TEST(test_gguf_cli_missing_and_not_gguf)
{
    char out[1024];
    int rc = ts_test_sh(out, sizeof(out), 30, "%s info /nonexistent/model.gguf", ts_test_bin());
    TS_CHECK(rc == 1 && strstr(out, "No such file"), "missing file: exit %d: %s", rc, out);
    rc = ts_test_sh(out, sizeof(out), 30, "%s info Makefile", ts_test_bin());
    TS_CHECK(rc == 1 && strstr(out, "not a GGUF"), "non-GGUF: exit %d: %s", rc, out);
}

TS_TEST(test_gguf_writer_round_trip)
{
    ts_gguf_writer *w = NULL;
    ts_err err = {0};
    TS_REQUIRE(ts_gguf_writer_create(&w, &err) == TS_OK, "create");
    ts_gguf_w_str(w, "general.architecture", "llama");
    ts_gguf_w_u32(w, "a.u32", 7);
    ts_gguf_w_f32(w, "a.f32", 1.5f);
    ts_gguf_w_bool(w, "a.bool", true);
    const char *strs[] = {"x", "", "yz"};
    ts_gguf_w_arr_str(w, "a.strs", strs, 3);
    int32_t ints[] = {1, -2, 3};
    ts_gguf_w_arr(w, "a.ints", TS_GGUF_I32, ints, 3);
    float data[64];
    for (int i = 0; i < 64; i++)
        data[i] = (float)i;
    uint64_t ne[2] = {16, 4};
    ts_gguf_w_tensor(w, "t0", TS_QTYPE_F32, 2, ne, data, sizeof(data));
    ts_gguf_w_tensor(w, "t1", TS_QTYPE_F32, 1, ne, data, 64);
    char path[512];
    snprintf(path, sizeof(path), "%s/rt.gguf", ts_test_tmpdir());
    TS_REQUIRE(ts_gguf_writer_write(w, path, &err) == TS_OK, "write: %s", err.msg);
    ts_gguf_writer_destroy(w);
    ts_gguf *g = NULL;
    TS_REQUIRE(ts_gguf_open(&g, path, &err) == TS_OK, "reopen: %s", err.msg);
    uint32_t u = 0;
    float f = 0;
    bool bo = false;
    TS_CHECK(ts_gguf_get_u32(g, "a.u32", &u, NULL, &err) == TS_OK && u == 7, "u32");
    TS_CHECK(ts_gguf_get_f32(g, "a.f32", &f, NULL, &err) == TS_OK && f == 1.5f, "f32");
    TS_CHECK(ts_gguf_get_bool(g, "a.bool", &bo, NULL, &err) == TS_OK && bo, "bool");
    const ts_gguf_kv *kv;
    TS_REQUIRE(ts_gguf_get_arr(g, "a.strs", TS_GGUF_STR, &kv, &err) == TS_OK && kv, "strs");
    ts_str sv[3];
    ts_gguf_arr_strs(kv, sv);
    TS_CHECK(ts_str_eq(sv[0], "x") && ts_str_eq(sv[1], "") && ts_str_eq(sv[2], "yz"), "strs");
    TS_REQUIRE(ts_gguf_get_arr(g, "a.ints", TS_GGUF_I32, &kv, &err) == TS_OK && kv, "ints");
    TS_CHECK(ts_gguf_arr_i64(kv, 1) == -2, "ints[1]");
    const ts_gguf_tensor *t = ts_gguf_tensor_find(g, "t1");
    TS_CHECK(t && t->n_bytes == 64 && !memcmp(t->data, data, 64), "t1 data");
    TS_CHECK((uintptr_t)t->data % 32 == 0, "t1 aligned");
    ts_gguf_close(g);
}

TS_TEST(test_gguf_shared_models_info)
{
    const char *sh = ts_test_shared();
    if (!sh) {
        ts_test_skip("no ../shared");
        return;
    }
    char out[8192];
    int rc = ts_test_sh(out, sizeof(out), 120,
                        "for f in %s/models/*.gguf; do %s info $f >/dev/null || echo FAIL $f; "
                        "done", sh, ts_test_bin());
    TS_CHECK(rc == 0 && !strstr(out, "FAIL"), "info failed: %s", out);
}
