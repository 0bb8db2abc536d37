/*
 * tests/test_moe.c: the MoE tile dispatch (core/moe.c).
 *
 * 1. The routed-matmul audit (core/moe_audit.c), like a GPU kernel test:
 *    tokens per expert in {1, 2, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255,
 *    1000} x tile caps {32, 64, 128} x threads {1, 2, 3}; the output is
 *    poisoned with NaN, every value is checked against dequantize + double
 *    dot within tests/tolerances.h, every configuration byte for byte against
 *    the first; types with an _R16 layout at this level run every
 *    configuration again on the stack repacked per expert (as at load),
 *    byte for byte against the plain one. Small K and row counts keep it
 *    quick under ASan.
 * 2. Model level: logits of every position byte-identical across
 *    TESSERA_MOE_TILE_MAX in {32, 64, 128} x chunk sizes x threads (shared
 *    MoE models when ../shared exists, generated qwen3moe / qwen2moe
 *    always), the same logits with TESSERA_NO_REPACK (plain expert stacks),
 *    and stories260K-moe-ident-4x2 == stories260K for every cap.
 * 3. Stacks repacked per expert on first use (ts_moe_lazy): none at load,
 *    exactly the routed experts after one token, and a partly repacked
 *    engine gives a fresh engine's logits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "tolerances.h"
#include "../core/moe.h"
#include "../core/session.h"
#include "../core/tessera.h"
#include "../quant/quant.h"

static const int k_counts[] = {1, 2, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 1000};
static const int k_caps[] = {32, 64, 128};
static const int k_threads[] = {1, 2, 3};

static void audit_type(uint32_t qtype, int64_t k, int64_t rows, double rtol)
{
    ts_moe_audit_opts o = {.qtype = qtype, .k = k, .rows = rows, .n_expert = 3,
                           .counts = k_counts, .n_counts = 13, .caps = k_caps, .n_caps = 3,
                           .threads = k_threads, .n_threads = 3, .atol = TS_TOL_ATOL,
                           .rtol = rtol, .seed = 0x4d6f45 + qtype};
    ts_moe_audit_result r;
    ts_err err = {0};
    ts_status st = ts_moe_audit(&o, &r, &err);
    TS_REQUIRE(st == TS_OK, "%s: %s", ts_qtype_name(qtype), err.msg);
    /* Types the level repacks (core/place.c) run every configuration again on
     * the per-expert repacked stack, byte for byte against the plain one. */
    ts_kernels kt;
    ts_kernels_init(&kt, ts_isa_from_env());
    int rep = ts_kernels_repack_type(&kt, qtype) ? 13 * 9 : 0;
    TS_CHECK(r.n_problems == 13 && r.n_configs == 13 * 9 + rep && r.n_repacked_configs == rep,
             "%s: %d problems, %d configs (%d repacked, %d expected)", ts_qtype_name(qtype),
             r.n_problems, r.n_configs, r.n_repacked_configs, rep);
    TS_CHECK(r.n_unwritten == 0, "%s: %d output values never written", ts_qtype_name(qtype),
             r.n_unwritten);
    TS_CHECK(r.n_out_of_tol == 0, "%s: %d values out of tolerance (worst err/bound %.3f)",
             ts_qtype_name(qtype), r.n_out_of_tol, r.worst);
    TS_CHECK(r.n_mismatch == 0, "%s: %d configurations differ from cap 32 / 1 thread",
             ts_qtype_name(qtype), r.n_mismatch);
}

/* Rows not a multiple of a register block, the gather out of order, every
 * other expert empty (core/moe_audit.c). */
TS_TEST(test_moe_audit_routed_matmul)
{
    audit_type(TS_QTYPE_Q4_K, 256, 37, TS_TOL_QDOT_RTOL);  /* Q8_K activations */
    audit_type(TS_QTYPE_Q8_0, 64, 21, TS_TOL_QDOT_RTOL);   /* Q8_0 activations */
    /* The rest of the _R16 set: whole 16-row groups, and a padded last group. */
    audit_type(TS_QTYPE_Q6_K, 256, 48, TS_TOL_QDOT_RTOL);
    audit_type(TS_QTYPE_Q4_0, 96, 35, TS_TOL_QDOT_RTOL);
    audit_type(TS_QTYPE_F16, 32, 19, TS_TOL_FDOT_RTOL);    /* f32 activations */
}

typedef struct {
    int cap, chunk; /* cap 0: TESSERA_MOE_TILE_MAX unset; chunk 0: whole prompt */
} config;

/* Every position's logits from a fresh session of eng, or NULL (failure
 * recorded). The tile cap is read at session create. */
static float *logits(ts_engine *eng, const char *model, const int32_t *toks, int n, config c,
                     int threads)
{
    char capv[16];
    snprintf(capv, sizeof(capv), "%d", c.cap);
    if (c.cap)
        setenv("TESSERA_MOE_TILE_MAX", capv, 1);
    ts_session *s = NULL;
    ts_err err = {0};
    float *out = NULL;
    ts_status st = ts_session_create(&s, eng, &(ts_session_opts){.n_ctx = n + 4,
                                                                 .chunk = c.chunk ? c.chunk : -1},
                                     &err);
    unsetenv("TESSERA_MOE_TILE_MAX");
    if (st == TS_OK) {
        ts_engine_info in;
        ts_engine_get_info(eng, &in);
        out = malloc((size_t)n * (size_t)in.n_vocab * sizeof(float));
        st = out ? ts_session_prefill(s, toks, n, out, &err) : TS_E_NOMEM;
    }
    TS_CHECK(st == TS_OK, "%s cap %d chunk %d threads %d: %s", model, c.cap, c.chunk, threads,
             err.msg);
    if (st != TS_OK) {
        free(out);
        out = NULL;
    }
    ts_session_destroy(s);
    return out;
}

static ts_engine *engine(const char *model, int threads)
{
    ts_engine *eng = NULL;
    ts_err err = {0};
    ts_status st = ts_engine_create(&eng, &(ts_engine_opts){.model_path = model,
                                                           .n_threads = threads}, &err);
    TS_CHECK(st == TS_OK, "%s threads %d: %s", model, threads, err.msg);
    return st == TS_OK ? eng : NULL;
}

static int64_t vocab(ts_engine *eng)
{
    ts_engine_info in;
    ts_engine_get_info(eng, &in);
    return in.n_vocab;
}

static int32_t *tokens(int n, uint64_t seed)
{
    int32_t *t = malloc((size_t)n * sizeof(*t));
    t[0] = 1;
    for (int i = 1; i < n; i++)
        t[i] = (int32_t)(ts_test_rand(&seed) % 512u);
    return t;
}

/* Reference: whole prompt in one chunk, 1 thread, cap 128. Then every cap
 * with chunk sizes (1 = the decode path) on 1, 2 and 3 threads. */
static void model_matrix(const char *path, int n_tok)
{
    static const config per_threads[3][3] = {
        {{32, 7}, {64, 33}, {32, 0}},
        {{64, 0}, {128, 7}, {32, 33}},
        {{128, 0}, {32, 1}, {64, 16}},
    };
    int32_t *toks = tokens(n_tok, 0x3e0 + (uint64_t)n_tok);
    float *ref = NULL;
    for (int t = 0; t < 3; t++) {
        ts_engine *eng = engine(path, k_threads[t]);
        if (!eng)
            break;
        size_t bytes = (size_t)n_tok * (size_t)vocab(eng) * sizeof(float);
        if (!ref)
            ref = logits(eng, path, toks, n_tok, (config){128, 0}, 1);
        for (int i = 0; ref && i < 3; i++) {
            config c = per_threads[t][i];
            float *got = logits(eng, path, toks, n_tok, c, k_threads[t]);
            TS_CHECK(got && !memcmp(ref, got, bytes),
                     "%s: cap %d chunk %d threads %d: logits differ from cap 128 / whole "
                     "prompt / 1 thread", path, c.cap, c.chunk, k_threads[t]);
            free(got);
        }
        ts_engine_destroy(eng);
    }
    /* The plain layout (no load-time repack of expert stacks or matrices):
     * the R16 tiles give the plain kernels' bits. */
    setenv("TESSERA_NO_REPACK", "1", 1);
    ts_engine *plain = ref ? engine(path, 2) : NULL;
    unsetenv("TESSERA_NO_REPACK");
    if (plain) {
        float *got = logits(plain, path, toks, n_tok, (config){64, 33}, 2);
        TS_CHECK(got && !memcmp(ref, got, (size_t)n_tok * (size_t)vocab(plain) * sizeof(float)),
                 "%s: TESSERA_NO_REPACK logits differ from the repacked stacks", path);
        free(got);
        ts_engine_destroy(plain);
    }
    free(ref);
    free(toks);
}

TS_TEST(test_moe_tile_identity_shared_models)
{
    const char *shared = ts_test_shared();
    if (!shared) {
        ts_test_skip("no ../shared");
        return;
    }
    static const char *models[] = {"synth-qwen3moe-Q4_K_M.gguf", "synth-qwen2moe-Q4_K_M.gguf",
                                   "stories260K-moe-perturb-4x2.gguf"};
    for (int m = 0; m < 3; m++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/models/%s", shared, models[m]);
        model_matrix(path, 160);
    }
}

TS_TEST(test_moe_tile_identity_generated)
{
    static const char *arch[] = {"qwen3moe", "qwen2moe"};
    for (int a = 0; a < 2; a++) {
        char path[512], out[1024];
        snprintf(path, sizeof(path), "%s/moe-%s.gguf", ts_test_tmpdir(), arch[a]);
        int rc = ts_test_sh(out, sizeof(out), 120,
                            "%s gen --shape tiny --arch %s --type q4_k_m -o %s", ts_test_bin(),
                            arch[a], path);
        TS_CHECK(rc == 0, "tessera gen --arch %s: exit %d: %s", arch[a], rc, out);
        if (rc == 0)
            model_matrix(path, 100);
    }
}

/* Identical experts give back the dense model bit for bit, for every cap. */
TS_TEST(test_moe_ident_equals_dense)
{
    const char *shared = ts_test_shared();
    if (!shared) {
        ts_test_skip("no ../shared");
        return;
    }
    char dense[512], moe[512];
    snprintf(dense, sizeof(dense), "%s/models/stories260K.gguf", shared);
    snprintf(moe, sizeof(moe), "%s/models/stories260K-moe-ident-4x2.gguf", shared);
    int32_t *toks = tokens(150, 77);
    ts_engine *eng = engine(dense, 2);
    float *ref = eng ? logits(eng, dense, toks, 150, (config){0, 0}, 2) : NULL;
    ts_engine_destroy(eng);
    eng = ref ? engine(moe, 2) : NULL;
    for (int c = 0; eng && c < 3; c++) {
        float *got = logits(eng, moe, toks, 150, (config){k_caps[c], c == 1 ? 16 : 0}, 2);
        TS_CHECK(got && !memcmp(ref, got, (size_t)150 * (size_t)vocab(eng) * sizeof(float)),
                 "ident-4x2 cap %d differs from dense stories260K", k_caps[c]);
        free(got);
    }
    ts_engine_destroy(eng);
    free(ref);
    free(toks);
}

/* Expert stacks are repacked per expert on first use (core/place.c, core/moe.c):
 * none at load, after one token exactly its top-k experts in every layer (the
 * same ones in gate, up and down), and a prompt on the partly repacked engine
 * gives a fresh engine's logits bit for bit. */
TS_TEST(test_moe_lazy_repack)
{
    char path[512], out[1024];
    snprintf(path, sizeof(path), "%s/moe-lazy-qwen3moe.gguf", ts_test_tmpdir());
    int rc = ts_test_sh(out, sizeof(out), 120,
                        "%s gen --shape tiny --arch qwen3moe --type q4_k_m -o %s", ts_test_bin(),
                        path);
    TS_CHECK(rc == 0, "tessera gen: exit %d: %s", rc, out);
    ts_engine *eng = rc == 0 ? engine(path, 2) : NULL;
    if (!eng)
        return;
    const ts_model *m = eng->model;
    const int64_t ne = m->hp.n_expert, nl = m->hp.n_layer;
    int n_lazy = 0, n_ready = 0;
    for (int64_t i = 0; m->lazy_exps && i < nl * 3; i++)
        for (int64_t e = 0; m->lazy_exps[i].src.data && e < ne; e++) {
            n_lazy += e == 0;
            n_ready += m->lazy_exps[i].ready[e];
        }
    TS_CHECK(n_ready == 0, "%d experts repacked at load", n_ready);
    int32_t *toks = tokens(40, 0x1a2);
    float *got = NULL, *ref = NULL;
    if (n_lazy)
        free(logits(eng, path, toks, 1, (config){0, 0}, 2));
    for (int64_t il = 0; n_lazy && il < nl; il++) {
        const ts_moe_lazy *lz = &m->lazy_exps[il * 3], *first = NULL;
        for (int i = 0; i < 3; i++) {
            if (!lz[i].src.data)
                continue;
            int n = 0;
            for (int64_t e = 0; e < ne; e++)
                n += lz[i].ready[e];
            TS_CHECK(n == m->hp.n_expert_used, "layer %lld stack %d: %d experts repacked after "
                     "one token (top-%lld)", (long long)il, i, n, (long long)m->hp.n_expert_used);
            TS_CHECK(!first || !memcmp(first->ready, lz[i].ready, (size_t)ne),
                     "layer %lld: stacks repacked different experts", (long long)il);
            first = first ? first : &lz[i];
        }
    }
    if (n_lazy)
        got = logits(eng, path, toks, 40, (config){0, 7}, 2);
    ts_engine_destroy(eng);
    eng = got ? engine(path, 2) : NULL;
    ref = eng ? logits(eng, path, toks, 40, (config){0, 7}, 2) : NULL;
    TS_CHECK(!got || (ref && !memcmp(ref, got, (size_t)40 * (size_t)vocab(eng) * sizeof(float))),
             "logits of a partly repacked engine differ from a fresh one's");
    if (!n_lazy)
        ts_test_skip("no _R16 expert kernel at this level");
    ts_engine_destroy(eng);
    free(got);
    free(ref);
    free(toks);
}
