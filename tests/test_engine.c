/*
 * tests/test_engine.c: engine invariants.
 *
 * Bit-identity: logits of every position are compared with memcmp against a
 * reference run (whole prompt in one chunk, 1 thread) across chunk sizes
 * {1,2,3,7,16,31,32,33,64,100,512,0} and threads {1,2,3,5}, on prompts of
 * 1, 2, 31, 33, 130 and 600 tokens. The full chunk matrix runs on the smallest
 * model (stories260K); other architectures / types / the KV f16 option / MoE
 * get a subset, so the whole file stays within a few minutes under ASan.
 * Also: decode == prefill, load-time refusals, and CLI errors (one line,
 * non-zero exit).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "../core/gguf.h"
#include "../core/tessera.h"

/* Every position's logits of tokens, or NULL (failure recorded). */
static float *run_logits(const char *model, const int32_t *toks, int n, int chunk, int threads,
                         int kt, int vt, int64_t *n_vocab)
{
    ts_engine_opts eo = {.model_path = model, .n_threads = threads};
    ts_engine *eng = NULL;
    ts_session *s = NULL;
    ts_err err = {0};
    float *out = NULL;
    ts_status st = ts_engine_create(&eng, &eo, &err);
    ts_session_opts so = {.n_ctx = n + 8, .chunk = chunk ? chunk : -1, .kv_type_k = kt,
                          .kv_type_v = vt};
    if (st == TS_OK)
        st = ts_session_create(&s, eng, &so, &err);
    if (st == TS_OK) {
        ts_engine_info info;
        ts_engine_get_info(eng, &info);
        *n_vocab = info.n_vocab;
        out = malloc((size_t)n * (size_t)info.n_vocab * sizeof(float));
        st = out ? ts_session_prefill(s, toks, n, out, &err) : TS_E_NOMEM;
    }
    TS_CHECK(st == TS_OK, "%s chunk %d threads %d: %s", model, chunk, threads, err.msg);
    if (st != TS_OK) {
        free(out);
        out = NULL;
    }
    ts_session_destroy(s);
    ts_engine_destroy(eng);
    return out;
}

static int32_t *rand_tokens(int n, int64_t n_vocab, uint64_t seed)
{
    int32_t *t = malloc((size_t)n * sizeof(*t));
    t[0] = 1; /* BOS of the stories/synth vocabularies */
    for (int i = 1; i < n; i++)
        t[i] = (int32_t)(ts_test_rand(&seed) % (uint64_t)n_vocab);
    return t;
}

typedef struct {
    const char *model;
    int n_tok;
    const int *chunks;
    int n_chunks;
    int kt, vt; /* KV cache types (ts_kv_type) */
} matrix;

static const int k_threads[] = {1, 2, 3, 5};

/* Reference: chunk 0 (whole prompt), 1 thread; each listed chunk size runs
 * with a thread count cycling through {1, 2, 3, 5}. */
static void check_matrix(const char *shared, const matrix *mx, int thread_phase)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/models/%s", shared, mx->model);
    int64_t nv = 512;
    int32_t *toks = rand_tokens(mx->n_tok, 512, 0x5eed + (uint64_t)mx->n_tok);
    float *ref = run_logits(path, toks, mx->n_tok, 0, 1, mx->kt, mx->vt, &nv);
    for (int i = 0; ref && i < mx->n_chunks; i++) {
        int th = k_threads[(i + thread_phase) % 4];
        float *got = run_logits(path, toks, mx->n_tok, mx->chunks[i], th, mx->kt, mx->vt, &nv);
        TS_CHECK(got && !memcmp(ref, got, (size_t)mx->n_tok * (size_t)nv * sizeof(float)),
                 "%s: %d tokens, chunk %d, %d threads, KV %s/%s: logits differ from chunk 0 / "
                 "1 thread",
                 mx->model, mx->n_tok, mx->chunks[i], th, ts_kv_type_name(mx->kt),
                 ts_kv_type_name(mx->vt));
        free(got);
    }
    free(ref);
    free(toks);
}

TS_TEST(test_engine_chunk_thread_identity)
{
    const char *shared = ts_test_shared();
    if (!shared) {
        ts_test_skip("no ../shared");
        return;
    }
    static const int all[] = {1, 2, 3, 7, 16, 31, 32, 33, 64, 100, 512};
    static const int few[] = {1, 7, 32, 33};
    static const int one[] = {3};
    static const int mid[] = {2, 16, 31};
    const matrix m[] = {
        {"stories260K.gguf", 130, all, 11, 0, 0},   /* every chunk size, 130 tokens */
        {"stories260K.gguf", 600, few, 4, 0, 0},    /* long prompt */
        {"stories260K.gguf", 1, one, 1, 0, 0},
        {"stories260K.gguf", 2, few, 2, 0, 0},
        {"stories260K.gguf", 31, mid, 3, 0, 0},
        {"stories260K.gguf", 33, few, 4, TS_KV_F32, TS_KV_F32},   /* f32 KV cache */
        {"stories260K.gguf", 65, mid, 3, TS_KV_BF16, TS_KV_BF16}, /* bf16 (head_dim 8) */
        {"TinyStories-656K-f32.gguf", 33, mid, 3, 0, 0},
        {"synth-qwen3-Q8_0.gguf", 33, few, 2, 0, 0},  /* NeoX RoPE, Q/K norm */
        {"synth-qwen2-Q4_K_M.gguf", 31, mid, 2, 0, 0}, /* QKV bias */
        {"synth-llama-Q4_0.gguf", 33, one, 1, 0, 0},
        /* quantized caches (head_dim 64: rotated), across key blocks */
        {"synth-llama-Q4_0.gguf", 130, few, 4, TS_KV_Q8_0, TS_KV_Q8_0},
        {"synth-llama-Q4_0.gguf", 70, mid, 3, TS_KV_Q4_0, TS_KV_Q4_0},
        {"synth-qwen3-Q8_0.gguf", 65, few, 2, TS_KV_Q8_0, TS_KV_Q4_0},
        {"synth-qwen2-Q4_K_M.gguf", 33, mid, 2, TS_KV_BF16, TS_KV_Q8_0},
        {"stories260K-moe-perturb-4x2.gguf", 33, few, 3, 0, 0}, /* MoE routing */
    };
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        check_matrix(shared, &m[i], (int)i);
    /* Every thread count with one chunk size. */
    char path[512];
    snprintf(path, sizeof(path), "%s/models/stories260K.gguf", shared);
    int32_t *toks = rand_tokens(64, 512, 7);
    int64_t nv = 512;
    float *ref = run_logits(path, toks, 64, 0, 1, 0, 0, &nv);
    for (int t = 0; ref && t < 4; t++) {
        float *got = run_logits(path, toks, 64, 7, k_threads[t], 0, 0, &nv);
        TS_CHECK(got && !memcmp(ref, got, 64 * 512 * sizeof(float)), "threads %d differ",
                 k_threads[t]);
        free(got);
    }
    free(ref);
    free(toks);
}

/* A prompt fed as prefill(n - 1) + decode(1) gives the same last logits. */
TS_TEST(test_engine_decode_matches_prefill)
{
    const char *shared = ts_test_shared();
    if (!shared) {
        ts_test_skip("no ../shared");
        return;
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/models/stories260K.gguf", shared);
    int32_t *toks = rand_tokens(40, 512, 11);
    int64_t nv = 512;
    float *ref = run_logits(path, toks, 40, 0, 2, 0, 0, &nv);
    ts_engine *eng = NULL;
    ts_session *s = NULL;
    ts_err err = {0};
    ts_status st = ts_engine_create(&eng, &(ts_engine_opts){.model_path = path, .n_threads = 3}, &err);
    if (st == TS_OK)
        st = ts_session_create(&s, eng, &(ts_session_opts){.n_ctx = 40, .chunk = 16}, &err);
    if (st == TS_OK)
        st = ts_session_prefill(s, toks, 39, NULL, &err);
    if (st == TS_OK)
        st = ts_session_decode(s, toks[39], &err);
    TS_CHECK(st == TS_OK, "%s", err.msg);
    if (st == TS_OK && ref)
        TS_CHECK(!memcmp(ts_session_logits(s), ref + 39 * 512, 512 * sizeof(float)),
                 "decode logits differ from prefill");
    /* The context is full now: one more token is refused, not written. */
    if (st == TS_OK)
        TS_CHECK(ts_session_decode(s, 1, &err) == TS_E_ARG, "decode past n_ctx accepted");
    int32_t bad = 512;
    ts_session_reset(s);
    TS_CHECK(s && ts_session_prefill(s, &bad, 1, NULL, &err) == TS_E_ARG, "id 512 accepted");
    free(ref);
    free(toks);
    ts_session_destroy(s);
    ts_engine_destroy(eng);
}

/* A model of an unknown architecture and one missing tensors are refused. */
TS_TEST(test_engine_refuses_bad_models)
{
    char path[512];
    ts_err err = {0};
    ts_engine *eng = NULL;
    snprintf(path, sizeof(path), "%s/arch.gguf", ts_test_tmpdir());
    ts_gguf_writer *w = NULL;
    TS_REQUIRE(ts_gguf_writer_create(&w, &err) == TS_OK, "%s", err.msg);
    ts_gguf_w_str(w, "general.architecture", "gpt2");
    TS_REQUIRE(ts_gguf_writer_write(w, path, &err) == TS_OK, "%s", err.msg);
    ts_gguf_writer_destroy(w);
    ts_status st = ts_engine_create(&eng, &(ts_engine_opts){.model_path = path}, &err);
    TS_CHECK(st == TS_E_UNSUPPORTED && strstr(err.msg, "gpt2"), "gpt2: %d %s", st, err.msg);
    ts_engine_destroy(eng);
    eng = NULL;
    snprintf(path, sizeof(path), "%s/empty-llama.gguf", ts_test_tmpdir());
    TS_REQUIRE(ts_gguf_writer_create(&w, &err) == TS_OK, "%s", err.msg);
    ts_gguf_w_str(w, "general.architecture", "llama");
    ts_gguf_w_u32(w, "llama.embedding_length", 64);
    ts_gguf_w_u32(w, "llama.block_count", 2);
    ts_gguf_w_u32(w, "llama.attention.head_count", 8);
    ts_gguf_w_u32(w, "llama.feed_forward_length", 128);
    float emb[64 * 4] = {0};
    ts_gguf_w_tensor(w, "token_embd.weight", 0, 2, (const uint64_t[]){64, 4}, emb, sizeof(emb));
    TS_REQUIRE(ts_gguf_writer_write(w, path, &err) == TS_OK, "%s", err.msg);
    ts_gguf_writer_destroy(w);
    st = ts_engine_create(&eng, &(ts_engine_opts){.model_path = path}, &err);
    TS_CHECK(st == TS_E_FORMAT && strstr(err.msg, "output_norm"), "missing: %d %s", st, err.msg);
    ts_engine_destroy(eng);
}

/* Tuning variables with values the engine cannot use are refused before the
 * model is read, with the variable named; good values pass that check. */
TS_TEST(test_engine_refuses_bad_env)
{
    static const char *bad[][2] = {
        {"TESSERA_ISA", "bogus"},           {"TESSERA_PREFILL_CHUNK", "-5"},
        {"TESSERA_PREFILL_CHUNK", "12abc"}, {"TESSERA_MOE_TILE_MAX", "48"},
        {"TESSERA_BLAS", "yes"},            {"TESSERA_KTUNE", "2"},
        {"TESSERA_NO_REPACK", "abc"},       {"TESSERA_NO_REPACK", "2"},
        {"TESSERA_PROFILE", "yes"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *keep = getenv(bad[i][0]);
        char saved[64] = "";
        if (keep)
            snprintf(saved, sizeof(saved), "%s", keep);
        setenv(bad[i][0], bad[i][1], 1);
        ts_err err = {0};
        ts_engine *eng = NULL;
        ts_status st =
            ts_engine_create(&eng, &(ts_engine_opts){.model_path = "/nonexistent.gguf"}, &err);
        TS_CHECK(st == TS_E_ARG && strstr(err.msg, bad[i][0]), "%s=%s: %d %s", bad[i][0],
                 bad[i][1], st, err.msg);
        ts_engine_destroy(eng);
        /* A good value gets past the check to the missing file. */
        setenv(bad[i][0], strcmp(bad[i][0], "TESSERA_ISA") ? "0" : "scalar", 1);
        if (!strcmp(bad[i][0], "TESSERA_MOE_TILE_MAX"))
            setenv(bad[i][0], "64", 1);
        st = ts_engine_create(&eng, &(ts_engine_opts){.model_path = "/nonexistent.gguf"}, &err);
        TS_CHECK(st != TS_E_ARG && !strstr(err.msg, bad[i][0]), "%s good: %d %s", bad[i][0], st,
                 err.msg);
        ts_engine_destroy(eng);
        if (keep)
            setenv(bad[i][0], saved, 1);
        else
            unsetenv(bad[i][0]);
    }
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

TS_TEST(test_engine_cli_errors)
{
    const char *shared = ts_test_shared();
    if (!shared) {
        ts_test_skip("no ../shared");
        return;
    }
    const char *bin = ts_test_bin();
    char model[512], bad[512], out[4096];
    snprintf(model, sizeof(model), "%s/models/stories260K.gguf", shared);
    snprintf(bad, sizeof(bad), "%s/golden/stories260K.tokens", shared);
    const char *long_prompt = "Once upon a time there was a little girl who liked to play";
    struct {
        const char *what;
        char cmd[1400];
    } cases[6];
    snprintf(cases[0].cmd, sizeof(cases[0].cmd), "%s run -m %s -p '%s' -n 4 -c 4", bin, model,
             long_prompt);
    cases[0].what = "prompt longer than context";
    snprintf(cases[1].cmd, sizeof(cases[1].cmd), "%s run -m %s -p hi -n -1", bin, model);
    cases[1].what = "-n -1";
    snprintf(cases[2].cmd, sizeof(cases[2].cmd), "%s run -m %s -p hi --bogus", bin, model);
    cases[2].what = "unknown flag";
    snprintf(cases[3].cmd, sizeof(cases[3].cmd), "%s run -m /nonexistent.gguf -p hi -n 2", bin);
    cases[3].what = "missing file";
    snprintf(cases[4].cmd, sizeof(cases[4].cmd), "%s run -m %s -p hi -n 2", bin, bad);
    cases[4].what = "non-GGUF file";
    snprintf(cases[5].cmd, sizeof(cases[5].cmd), "echo 1 999999 > %s/ids && %s logits -m %s "
             "--tokens %s/ids --out %s/o.bin", ts_test_tmpdir(), bin, model, ts_test_tmpdir(),
             ts_test_tmpdir());
    cases[5].what = "token id out of range";
    for (int i = 0; i < 6; i++) {
        int rc = ts_test_sh(out, sizeof(out), 60, "%s", cases[i].cmd);
        TS_CHECK(rc != 0 && rc < 128, "%s: exit %d", cases[i].what, rc);
        TS_CHECK(count_lines(out) == 1, "%s: want one line, got: %s", cases[i].what, out);
    }
}

/* Generated tiny models (no ../shared needed): each arch / type once, with
 * chunk sizes and thread counts against the whole-prompt, 1-thread run. */
TS_TEST(test_engine_generated_identity)
{
    static const struct {
        const char *arch, *type;
        int chunk, threads;
    } g[] = {
        {"llama", "q8_0", 7, 3},  {"qwen2", "f16", 33, 2}, {"qwen3", "q4_k", 2, 5},
        {"qwen3moe", "q8_0", 3, 2}, {"qwen2moe", "q4_0", 16, 3}, {"olmoe", "q4_k", 5, 3},
    };
    for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
        char path[512], out[1024];
        snprintf(path, sizeof(path), "%s/gen-%s-%s.gguf", ts_test_tmpdir(), g[i].arch, g[i].type);
        int rc = ts_test_sh(out, sizeof(out), 120, "%s gen --shape tiny --arch %s --type %s -o %s",
                            ts_test_bin(), g[i].arch, g[i].type, path);
        if (rc != 0) {
            ts_test_skip("tessera gen --arch %s --type %s: exit %d", g[i].arch, g[i].type, rc);
            continue;
        }
        int64_t nv = 512;
        int32_t *toks = rand_tokens(40, 512, 99 + i);
        float *ref = run_logits(path, toks, 40, 0, 1, 0, 0, &nv);
        float *got = ref ? run_logits(path, toks, 40, g[i].chunk, g[i].threads, 0, 0, &nv) : NULL;
        TS_CHECK(got && !memcmp(ref, got, (size_t)40 * (size_t)nv * sizeof(float)),
                 "gen %s %s: chunk %d threads %d differ", g[i].arch, g[i].type, g[i].chunk,
                 g[i].threads);
        free(ref);
        free(got);
        free(toks);
    }
}

/* OLMoE (Q/K RMSNorm over all heads, softmax routing without renormalising
 * the top k, experts feed_forward_length wide) against llama.cpp: tests/data
 * holds llama.cpp v0.5.0's logits (CPU, f32) for the tokens there on
 * `tessera gen --shape tiny --arch olmoe --type f32`, whose bytes depend on
 * nothing but the generator's seed. F32 bound, as for ../shared/golden. */
TS_TEST(test_engine_olmoe_matches_llama_cpp)
{
    char path[512], out[1024];
    FILE *tf = fopen("tests/data/olmoe-tiny-f32.tokens", "r");
    FILE *lf = fopen("tests/data/olmoe-tiny-f32.logits", "rb");
    if (!tf || !lf) {
        if (tf) fclose(tf);
        if (lf) fclose(lf);
        ts_test_skip("tests/data/olmoe-tiny-f32.* not found (run from the repository root)");
        return;
    }
    int32_t toks[64];
    int n = 0;
    while (n < 64 && fscanf(tf, "%d", &toks[n]) == 1)
        n++;
    fclose(tf);
    const int64_t nv = 512;
    float *ref = malloc((size_t)n * nv * sizeof(float));
    size_t got_n = ref ? fread(ref, sizeof(float), (size_t)n * nv, lf) : 0;
    fclose(lf);
    TS_REQUIRE(n == 24 && got_n == (size_t)n * nv, "reference: %d tokens, %zu logits", n, got_n);
    snprintf(path, sizeof(path), "%s/gen-olmoe-f32.gguf", ts_test_tmpdir());
    int rc = ts_test_sh(out, sizeof(out), 120, "%s gen --shape tiny --arch olmoe --type f32 -o %s",
                        ts_test_bin(), path);
    TS_REQUIRE(rc == 0, "tessera gen --arch olmoe: exit %d: %s", rc, out);
    int64_t v = 0;
    float *got = run_logits(path, toks, n, 0, 2, 0, 0, &v);
    TS_REQUIRE(got && v == nv, "olmoe logits (vocab %lld)", (long long)v);
    double worst = 0.0;
    int top1 = 0;
    for (int i = 0; i < n; i++) {
        const float *a = got + (size_t)i * nv, *b = ref + (size_t)i * nv;
        double num = 0.0, den = 0.0;
        int ia = 0, ib = 0;
        for (int64_t j = 0; j < nv; j++) {
            num += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
            den += (double)b[j] * b[j];
            if (a[j] > a[ia]) ia = (int)j;
            if (b[j] > b[ib]) ib = (int)j;
        }
        if (num / den > worst)
            worst = num / den;
        top1 += ia == ib;
    }
    TS_CHECK(worst <= 1e-5 && top1 == n, "olmoe vs llama.cpp: max nmse %g, top-1 %d of %d", worst,
             top1, n);
    free(got);
    free(ref);
}

/* Writes `tessera gen --shape tiny --type q8_0` to the test dir as name;
 * path gets its path, out the command's output; returns its exit code. */
static int gen_tiny_q8(char *path, size_t cap, const char *name, char *out, size_t out_cap)
{
    snprintf(path, cap, "%s/%s", ts_test_tmpdir(), name);
    return ts_test_sh(out, out_cap, 120, "%s gen --shape tiny --type q8_0 -o %s", ts_test_bin(),
                      path);
}

/* `tessera bench` with llama-bench's test options on a generated model: -pg
 * and -d name their rows as llama-bench does, -ub lists chunks, jsonl rows
 * carry llama-bench's fields, and -ngl is accepted; bad values exit 2. */
TS_TEST(test_engine_bench_llama_bench_options)
{
    char path[512], out[8192];
    int rc = gen_tiny_q8(path, sizeof(path), "gen-bench.gguf", out, sizeof(out));
    TS_REQUIRE(rc == 0, "gen: exit %d: %s", rc, out);
    rc = ts_test_sh(out, sizeof(out), 120,
                    "%s bench -m %s -p 16 -n 4 -pg 8,2 -d 0,8 -ub 4,16 -r 2 -t 2 -ngl 99 2>/dev/null",
                    ts_test_bin(), path);
    TS_REQUIRE(rc == 0, "bench: exit %d: %s", rc, out);
    static const char *want[] = {"| pp16 |", "| tg4 |", "| pp8+tg2 |", "| pp16 @ d8 |",
                                 "| tg4 @ d8 |", "| pp8+tg2 @ d8 |", "| 4 | pp16 |",
                                 "| 16 | pp16 |"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        TS_CHECK(strstr(out, want[i]), "bench md: no '%s' in:\n%s", want[i], out);
    TS_CHECK(count_lines(out) == 2 + 2 * 6, "bench md: %d lines:\n%s", count_lines(out), out);
    rc = ts_test_sh(out, sizeof(out), 120,
                    "%s bench -m %s -pg 8,2 -d 4 -r 3 -o jsonl 2>/dev/null", ts_test_bin(), path);
    TS_REQUIRE(rc == 0, "bench jsonl: exit %d: %s", rc, out);
    static const char *fields[] = {"\"test\": \"pp8+tg2 @ d4\"", "\"n_prompt\": 8",
                                   "\"n_gen\": 2", "\"n_depth\": 4", "\"avg_ts\": ",
                                   "\"stddev_ts\": ", "\"samples_ns\": [", "\"model_filename\": "};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        TS_CHECK(strstr(out, fields[i]), "bench jsonl: no '%s' in:\n%s", fields[i], out);
    TS_CHECK(count_lines(out) == 1 && out[0] == '{', "jsonl: one object a line:\n%s", out);
    static const char *bad[] = {"-pg 8", "-pg 8,2,1", "-d -1", "-ub x", "-o yaml", "-ngl"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rc = ts_test_sh(out, sizeof(out), 60, "%s bench -m %s -r 1 %s", ts_test_bin(), path,
                        bad[i]);
        TS_CHECK(rc == 2 && count_lines(out) == 1, "bench %s: exit %d: %s", bad[i], rc, out);
    }
}

/* TESSERA_PROFILE=1 `tessera bench` prints the stage table with the pool's
 * grid columns (core/prof.c). At -t 1 every grid runs inline on the caller,
 * so the total line reads busy 100.0%, inline 100.0% and no late starts:
 * exact by construction, not a timing. At -t 2 the columns are present. */
TS_TEST(test_engine_bench_profile)
{
    char path[512], out[8192];
    int rc = gen_tiny_q8(path, sizeof(path), "gen-prof.gguf", out, sizeof(out));
    TS_REQUIRE(rc == 0, "gen: exit %d: %s", rc, out);
    for (int threads = 1; threads <= 2; threads++) {
        rc = ts_test_sh(out, sizeof(out), 120,
                        "TESSERA_PROFILE=1 %s bench -m %s -p 16 -n 2 -r 2 -t %d 2>&1 >/dev/null",
                        ts_test_bin(), path, threads);
        TS_REQUIRE(rc == 0, "bench -t %d: exit %d: %s", threads, rc, out);
        static const char *want[] = {"grids/fwd", "in grids", "busy", "inline", "late us",
                                     "ffn gate/up+swiglu", "\n  total "};
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
            TS_CHECK(strstr(out, want[i]), "-t %d: no '%s' in:\n%s", threads, want[i], out);
        const char *tot = strstr(out, "\n  total ");
        TS_REQUIRE(tot, "no total line");
        double ms, gpf, in_grids, busy, inl;
        char late[16];
        int n = sscanf(tot, " total %lf %lf %lf%% %lf%% %lf%% %15s", &ms, &gpf, &in_grids, &busy,
                       &inl, late);
        TS_REQUIRE(n == 6, "-t %d: total line: %.120s", threads, tot);
        TS_CHECK(gpf > 0 && in_grids > 0 && in_grids <= 100.05 && busy > 0 && busy <= 100.05,
                 "-t %d: total line: %.120s", threads, tot);
        if (threads == 1)
            TS_CHECK(busy == 100.0 && inl == 100.0 && !strcmp(late, "-"),
                     "-t 1: not all inline: %.120s", tot);
    }
}

/* KV cache types: a quantized cache on a head_dim that is not a multiple of
 * 32 (stories260K: 8) and an unknown type are clear errors from the API and
 * the CLI, never a crash; the CLI names llama.cpp's options. */
TS_TEST(test_engine_kv_type_errors)
{
    const char *shared = ts_test_shared();
    if (!shared) {
        ts_test_skip("no ../shared");
        return;
    }
    char path[512], out[4096];
    snprintf(path, sizeof(path), "%s/models/stories260K.gguf", shared);
    ts_engine *eng = NULL;
    ts_session *s = NULL;
    ts_batch *b = NULL;
    ts_err err = {0};
    TS_REQUIRE(ts_engine_create(&eng, &(ts_engine_opts){.model_path = path, .n_threads = 1},
                                &err) == TS_OK, "%s", err.msg);
    ts_status st = ts_session_create(&s, eng, &(ts_session_opts){.kv_type_k = TS_KV_Q8_0}, &err);
    TS_CHECK(st == TS_E_UNSUPPORTED && strstr(err.msg, "multiple of 32") && !s,
             "q8_0 K on head_dim 8: %d %s", st, err.msg);
    st = ts_session_create(&s, eng, &(ts_session_opts){.kv_type_v = 7}, &err);
    TS_CHECK(st == TS_E_ARG && !s, "V type 7: %d %s", st, err.msg);
    st = ts_batch_create(&b, eng, &(ts_batch_opts){.n_seq = 2, .kv_type_v = TS_KV_Q4_0}, &err);
    TS_CHECK(st == TS_E_UNSUPPORTED && !b, "batch q4_0 V on head_dim 8: %d %s", st, err.msg);
    st = ts_session_create(&s, eng, &(ts_session_opts){.kv_type_k = TS_KV_BF16}, &err);
    TS_CHECK(st == TS_OK, "bf16 K: %s", err.msg); /* plain types take any head_dim */
    ts_session_destroy(s);
    ts_engine_destroy(eng);
    TS_CHECK(ts_kv_type_parse("Q8_0") == TS_KV_Q8_0 && ts_kv_type_parse("q5_1") == -1 &&
                 ts_kv_type_parse(NULL) == -1 && !strcmp(ts_kv_type_name(TS_KV_BF16), "bf16") &&
                 !strcmp(ts_kv_type_name(99), "?"),
             "ts_kv_type_parse / name");
    int rc = ts_test_sh(out, sizeof(out), 60, "%s run -m %s -p hi -n 1 -ctk q5_1", ts_test_bin(),
                        path);
    TS_CHECK(rc == 2 && strstr(out, "-ctk"), "run -ctk q5_1: rc %d: %s", rc, out);
    rc = ts_test_sh(out, sizeof(out), 60, "%s run -m %s -p hi -n 1 -ctv q4_0", ts_test_bin(),
                    path);
    TS_CHECK(rc != 0 && strstr(out, "multiple of 32"), "run -ctv q4_0: rc %d: %s", rc, out);
}

/* ts_session_truncate: prefill 100 tokens, forget back to 37 (mid key block)
 * and feed other tokens: their logits are byte-identical to a session that
 * never saw the forgotten ones, f16 and a rotated q8_0 / q4_0 cache alike;
 * truncating past the end is refused. */
TS_TEST(test_engine_truncate)
{
    const char *shared = ts_test_shared();
    if (!shared) {
        ts_test_skip("no ../shared");
        return;
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/models/synth-llama-Q4_0.gguf", shared);
    ts_engine *eng = NULL;
    ts_err err = {0};
    TS_REQUIRE(ts_engine_create(&eng, &(ts_engine_opts){.model_path = path, .n_threads = 2},
                                &err) == TS_OK, "%s", err.msg);
    int32_t *a = rand_tokens(100, 512, 21), *b = rand_tokens(80, 512, 22);
    memcpy(b, a, 37 * sizeof(*b)); /* b shares a's first 37 tokens */
    static const int kv[][2] = {{0, 0}, {TS_KV_Q8_0, TS_KV_Q4_0}};
    for (int k = 0; k < 2; k++) {
        ts_session_opts so = {.n_ctx = 128, .chunk = 16, .kv_type_k = kv[k][0],
                              .kv_type_v = kv[k][1]};
        ts_session *s1 = NULL, *s2 = NULL;
        float *want = malloc(43 * 512 * sizeof(float)), *got = malloc(43 * 512 * sizeof(float));
        ts_status st = ts_session_create(&s1, eng, &so, &err);
        if (st == TS_OK)
            st = ts_session_create(&s2, eng, &so, &err);
        if (st == TS_OK)
            st = ts_session_prefill(s1, b, 37, NULL, &err);
        if (st == TS_OK)
            st = ts_session_prefill(s1, b + 37, 43, want, &err);
        if (st == TS_OK)
            st = ts_session_prefill(s2, a, 100, NULL, &err);
        if (st == TS_OK)
            TS_CHECK(ts_session_truncate(s2, 101, &err) == TS_E_ARG, "truncate past the end");
        if (st == TS_OK)
            st = ts_session_truncate(s2, 37, &err);
        if (st == TS_OK) {
            TS_CHECK(ts_session_pos(s2) == 37 && !ts_session_logits(s2), "pos / logits");
            st = ts_session_prefill(s2, b + 37, 43, got, &err);
        }
        TS_CHECK(st == TS_OK, "%s", err.msg);
        if (st == TS_OK)
            TS_CHECK(!memcmp(want, got, 43 * 512 * sizeof(float)),
                     "KV %d: logits after truncate differ from a fresh session", k);
        free(want), free(got);
        ts_session_destroy(s1);
        ts_session_destroy(s2);
    }
    free(a), free(b);
    ts_engine_destroy(eng);
}
