/*
 * tests/test_batch.c: the batch engine (core/batch.c).
 *
 * Batch invariance by memcmp: sequences of random lengths arrive at random
 * steps, are fed in random slices under random step budgets (1, 7, 64, 512)
 * beside random co-tenants, finish and give their pages to newcomers (freed
 * pages poisoned with NaN); every position's logits must equal a lone
 * ts_session run of the same tokens, on 1, 2 and 3 threads, f16 and f32 KV,
 * dense and MoE models. Also: all-or-nothing step checks (a full pool is
 * TS_E_NOMEM with nothing changed), misuse errors, and the engine's
 * one-pass-at-a-time rule (TS_E_STATE, no abort).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "../core/batch.h"
#include "../core/session.h"
#include "../core/tessera.h"

static int gen(char *path, size_t cap, const char *name, const char *args)
{
    char out[1024];
    snprintf(path, cap, "%s/%s", ts_test_tmpdir(), name);
    int rc = ts_test_sh(out, sizeof(out), 120, "%s gen --shape tiny %s -o %s", ts_test_bin(),
                        args, path);
    if (rc)
        ts_test_fail(__FILE__, __LINE__, "gen %s: rc %d: %s", args, rc, out);
    return rc;
}

/* KV cache (K, V) types the invariance runs cover, by index: f16 (the
 * default), f32, and quantized pairs (rotated: head_dim 64 in the tiny shapes). */
static const int k_kv[][2] = {{TS_KV_F16, TS_KV_F16},
                              {TS_KV_F32, TS_KV_F32},
                              {TS_KV_Q8_0, TS_KV_Q4_0},
                              {TS_KV_Q4_0, TS_KV_BF16}};

/* Every position's logits of a lone session (chunk 0: one shot). */
static float *lone(ts_engine *eng, const int32_t *toks, int n, int kv, int64_t n_vocab)
{
    ts_session *s = NULL;
    ts_err err = {0};
    float *out = malloc((size_t)n * (size_t)n_vocab * sizeof(float));
    ts_status st = ts_session_create(&s, eng, &(ts_session_opts){.n_ctx = n, .chunk = -1,
                                                                 .kv_type_k = k_kv[kv][0],
                                                                 .kv_type_v = k_kv[kv][1]},
                                     &err);
    if (st == TS_OK)
        st = ts_session_prefill(s, toks, n, out, &err);
    TS_CHECK(st == TS_OK, "lone session: %s", err.msg);
    ts_session_destroy(s);
    return out;
}

typedef struct {
    int32_t *toks;
    int n, fed, seq, arrive;
    float *ref, *got; /* (n, n_vocab) */
    bool *checked;    /* positions whose logits were returned */
} job;

/* One randomized schedule of n_jobs sequences over a batch of n_seq slots. */
static void run_schedule(ts_engine *eng, int64_t n_vocab, int n_jobs, int n_seq, int kv,
                         uint64_t seed)
{
    static const int budgets[] = {1, 7, 64, 512};
    const uint64_t seed0 = seed;
    job *jobs = calloc((size_t)n_jobs, sizeof(job));
    int max_len = 0;
    for (int j = 0; j < n_jobs; j++) {
        job *jb = &jobs[j];
        jb->n = 1 + (int)(ts_test_rand(&seed) % 140);
        jb->toks = malloc((size_t)jb->n * sizeof(int32_t));
        for (int t = 0; t < jb->n; t++)
            jb->toks[t] = t == 0 ? 1 : (int32_t)(ts_test_rand(&seed) % (uint64_t)n_vocab);
        jb->ref = lone(eng, jb->toks, jb->n, kv, n_vocab);
        jb->got = calloc((size_t)jb->n * (size_t)n_vocab, sizeof(float));
        jb->checked = calloc((size_t)jb->n, sizeof(bool));
        jb->seq = -1;
        jb->arrive = (int)(ts_test_rand(&seed) % 12);
        max_len = jb->n > max_len ? jb->n : max_len;
    }
    ts_batch *b = NULL;
    ts_err err = {0};
    /* A pool of half the worst case: sequences wait for pages sometimes. */
    ts_batch_opts bo = {.n_seq = n_seq, .n_ctx = max_len, .max_tokens = 512, .kv_type_k = k_kv[kv][0], .kv_type_v = k_kv[kv][1],
                        .kv_size = (max_len * n_seq) / 2 + 64};
    TS_REQUIRE(ts_batch_create(&b, eng, &bo, &err) == TS_OK, "batch: %s", err.msg);
    ts_batch_debug_poison(b, true);
    ts_batch_span sp[64];
    int done = 0;
    for (int step = 0; done < n_jobs && step < 5000; step++) {
        int budget = budgets[ts_test_rand(&seed) % 4], n_sp = 0;
        for (int j = 0; j < n_jobs; j++) { /* arrivals */
            job *jb = &jobs[j];
            if (jb->seq < 0 && jb->fed == 0 && step >= jb->arrive &&
                ts_batch_seq_open(b, &jb->seq, &err) != TS_OK)
                jb->seq = -1; /* every slot busy: it waits */
        }
        ts_batch_info info;
        ts_batch_get_info(b, &info);
        int64_t pages_left = info.pages_free;
        for (int j = 0; j < n_jobs && budget > 0; j++) {
            job *jb = &jobs[j];
            if (jb->seq < 0 || jb->fed == jb->n || ts_test_rand(&seed) % 4 == 0)
                continue; /* not here, finished, or sits this step out */
            int n = 1 + (int)(ts_test_rand(&seed) % 40);
            n = n > budget ? budget : n;
            n = n > jb->n - jb->fed ? jb->n - jb->fed : n;
            int64_t need = ts_batch_pages_needed(b, jb->seq, n);
            if (need > pages_left)
                continue;
            pages_left -= need;
            bool all = ts_test_rand(&seed) % 2;
            sp[n_sp++] = (ts_batch_span){jb->seq, jb->toks + jb->fed, n,
                                         all ? jb->got + (size_t)jb->fed * n_vocab : NULL, true};
            budget -= n;
        }
        if (n_sp == 0)
            continue;
        ts_status st = ts_batch_step(b, sp, n_sp, &err);
        TS_REQUIRE(st == TS_OK, "step %d: %s", step, err.msg);
        for (int k = 0; k < n_sp; k++) {
            job *jb = NULL;
            for (int j = 0; j < n_jobs && !jb; j++)
                if (jobs[j].seq == sp[k].seq)
                    jb = &jobs[j];
            const float *last = ts_batch_logits(b, jb->seq);
            int lp = jb->fed + sp[k].n_tok - 1;
            if (!sp[k].logits_all && last)
                memcpy(jb->got + (size_t)lp * n_vocab, last, (size_t)n_vocab * sizeof(float));
            for (int t = sp[k].logits_all ? jb->fed : lp; t <= lp; t++)
                jb->checked[t] = true;
            jb->fed += sp[k].n_tok;
            if (jb->fed == jb->n) { /* finished: its pages go to the next arrivals */
                ts_batch_seq_close(b, jb->seq);
                jb->seq = -1;
                done++;
            }
        }
    }
    TS_CHECK(done == n_jobs, "only %d of %d sequences finished", done, n_jobs);
    for (int j = 0; j < n_jobs; j++) {
        job *jb = &jobs[j];
        for (int t = 0; t < jb->n; t++)
            if (jb->checked[t] && memcmp(jb->got + (size_t)t * n_vocab,
                                         jb->ref + (size_t)t * n_vocab,
                                         (size_t)n_vocab * sizeof(float))) {
                TS_CHECK(0, "seed %llu KV %s/%s: sequence %d (%d tokens) position %d differs "
                         "from a lone session", (unsigned long long)seed0,
                         ts_kv_type_name(k_kv[kv][0]), ts_kv_type_name(k_kv[kv][1]), j, jb->n, t);
                break;
            }
        free(jb->toks), free(jb->ref), free(jb->got), free(jb->checked);
    }
    free(jobs);
    ts_batch_destroy(b);
}

static void invariance_on(const char *model, int n_jobs)
{
    static const int threads[] = {1, 2, 3};
    for (int ti = 0; ti < 3; ti++)
        for (int kv = 0; kv < 4; kv++) {
            if (kv >= 2 && ti != kv - 1)
                continue; /* the quantized pairs at 2 and 3 threads */
            ts_engine *eng = NULL;
            ts_err err = {0};
            ts_engine_opts eo = {.model_path = model, .n_threads = threads[ti]};
            TS_REQUIRE(ts_engine_create(&eng, &eo, &err) == TS_OK, "%s: %s", model, err.msg);
            ts_engine_info info;
            ts_engine_get_info(eng, &info);
            run_schedule(eng, info.n_vocab, n_jobs, 4, kv, 0xba7c + 31 * ti + kv);
            ts_engine_destroy(eng);
        }
}

TS_TEST(test_batch_invariance_dense)
{
    char path[512];
    if (gen(path, sizeof(path), "batch-q8.gguf", "--type q8_0") == 0)
        invariance_on(path, 7);
}

TS_TEST(test_batch_invariance_moe)
{
    char path[512];
    if (gen(path, sizeof(path), "batch-moe.gguf", "--arch qwen3moe --type q4_k --layers 1") == 0)
        invariance_on(path, 5);
}

TS_TEST(test_batch_invariance_shared_models)
{
    const char *sh = ts_test_shared();
    if (!sh) {
        ts_test_skip("no ../shared");
        return;
    }
    static const char *names[] = {"stories260K.gguf", "stories260K-moe.gguf"};
    int ran = 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[600];
        snprintf(path, sizeof(path), "%s/models/%s", sh, names[i]);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        fclose(f);
        ts_engine *eng = NULL;
        ts_err err = {0};
        TS_REQUIRE(ts_engine_create(&eng, &(ts_engine_opts){.model_path = path, .n_threads = 2},
                                    &err) == TS_OK, "%s: %s", path, err.msg);
        ts_engine_info info;
        ts_engine_get_info(eng, &info);
        run_schedule(eng, info.n_vocab, 6, 3, 0, 0x5eed + i);
        ts_engine_destroy(eng);
        ran++;
    }
    if (!ran)
        ts_test_skip("no stories260K models in ../shared/models");
}

/* Refused steps change nothing; misuse is an error, never a crash. */
TS_TEST(test_batch_step_checks)
{
    char path[512];
    if (gen(path, sizeof(path), "batch-chk.gguf", "--type q8_0"))
        return;
    ts_engine *eng = NULL;
    ts_batch *b = NULL;
    ts_err err = {0};
    TS_REQUIRE(ts_engine_create(&eng, &(ts_engine_opts){.model_path = path, .n_threads = 2},
                                &err) == TS_OK, "%s", err.msg);
    /* 2 pages of 64 positions, 2 sequences of up to 100 positions. */
    ts_batch_opts bo = {.n_seq = 2, .n_ctx = 100, .kv_size = 128, .max_tokens = 96};
    TS_REQUIRE(ts_batch_create(&b, eng, &bo, &err) == TS_OK, "%s", err.msg);
    int32_t toks[100];
    for (int i = 0; i < 100; i++)
        toks[i] = 1 + i % 7;
    int s0 = -1, s1 = -1, s2 = -1;
    TS_REQUIRE(ts_batch_seq_open(b, &s0, &err) == TS_OK && ts_batch_seq_open(b, &s1, &err) ==
               TS_OK, "open: %s", err.msg);
    TS_CHECK(ts_batch_seq_open(b, &s2, &err) == TS_E_STATE, "a third sequence opened");
    ts_batch_span a = {s0, toks, 70, NULL, true}, c = {s1, toks, 60, NULL, true};
    TS_CHECK(ts_batch_step(b, &a, 1, &err) == TS_OK, "70 tokens: %s", err.msg);
    ts_batch_span two[2] = {{s0, toks, 10, NULL, true}, c};
    /* s0 holds 2 pages, s1 needs 1: the pool is empty. */
    ts_status st = ts_batch_step(b, two, 2, &err);
    TS_CHECK(st == TS_E_NOMEM && strstr(err.msg, "KV pool full"), "full pool: %d %s", st,
             err.msg);
    TS_CHECK(ts_batch_seq_pos(b, s0) == 70 && ts_batch_seq_pos(b, s1) == 0,
             "a refused step moved positions: %d %d", ts_batch_seq_pos(b, s0),
             ts_batch_seq_pos(b, s1));
    ts_batch_span dup[2] = {a, a};
    TS_CHECK(ts_batch_step(b, dup, 2, &err) == TS_E_ARG, "a sequence twice in one step");
    ts_batch_span big = {s0, toks, 31, NULL, true};
    TS_CHECK(ts_batch_step(b, &big, 1, &err) == TS_E_ARG && strstr(err.msg, "context full"),
             "past n_ctx: %s", err.msg);
    int32_t bad = 1 << 30;
    ts_batch_span badt = {s0, &bad, 1, NULL, true};
    TS_CHECK(ts_batch_step(b, &badt, 1, &err) == TS_E_ARG, "token out of range");
    ts_batch_span closed = {5, toks, 1, NULL, true};
    TS_CHECK(ts_batch_step(b, &closed, 1, &err) == TS_E_ARG, "sequence 5");
    TS_CHECK(ts_batch_step(b, NULL, 0, &err) == TS_E_ARG, "no spans");
    ts_batch_seq_close(b, s0);
    ts_batch_seq_close(b, s0); /* twice: a no-op */
    TS_CHECK(ts_batch_logits(b, s0) == NULL && ts_batch_seq_pos(b, s0) == -1, "closed seq");
    TS_CHECK(ts_batch_step(b, &c, 1, &err) == TS_OK, "after close: %s", err.msg);
    ts_batch_info info;
    ts_batch_get_info(b, &info);
    TS_CHECK(info.pages_total == 2 && info.pages_free == 1 && info.n_open == 1,
             "info: %lld total %lld free %d open", (long long)info.pages_total,
             (long long)info.pages_free, info.n_open);
    /* Scheduled-use misuse: a second prompt while one is queued, a push to a
     * busy sequence, a prompt no pool could hold. */
    int n_ready = -1, ready[4];
    TS_CHECK(ts_batch_run(b, ready, 4, &n_ready, &err) == TS_OK && n_ready == 0, "idle run");
    TS_CHECK(ts_batch_seq_prompt(b, s1, toks, 10, NULL, &err) == TS_OK, "prompt: %s", err.msg);
    TS_CHECK(ts_batch_seq_prompt(b, s1, toks, 10, NULL, &err) == TS_E_STATE, "second prompt");
    TS_CHECK(ts_batch_seq_push(b, s1, 3, &err) == TS_E_STATE, "push while queued");
    TS_CHECK(ts_batch_run(b, ready, 4, &n_ready, &err) == TS_OK && n_ready == 1 &&
                 ready[0] == s1, "run: %d ready, %s", n_ready, err.msg);
    TS_CHECK(ts_batch_seq_push(b, s1, -4, &err) == TS_E_ARG, "bad token pushed");
    int s3 = -1;
    TS_REQUIRE(ts_batch_seq_open(b, &s3, &err) == TS_OK, "reopen: %s", err.msg);
    TS_CHECK(ts_batch_seq_prompt(b, s3, toks, 0, NULL, &err) == TS_E_ARG, "empty prompt");
    ts_batch_seq_close(b, s3);
    /* One forward pass per engine: a second caller is refused, not aborted. */
    ts_session *s = NULL;
    TS_REQUIRE(ts_session_create(&s, eng, &(ts_session_opts){.n_ctx = 16}, &err) == TS_OK, "%s",
               err.msg);
    TS_REQUIRE(ts_engine_enter(eng, &err) == TS_OK, "enter");
    st = ts_session_prefill(s, toks, 3, NULL, &err);
    TS_CHECK(st == TS_E_STATE && strstr(err.msg, "busy"), "busy engine: %d %s", st, err.msg);
    ts_batch_span one = {s1, toks, 1, NULL, true};
    TS_CHECK(ts_batch_step(b, &one, 1, &err) == TS_E_STATE, "busy engine: batch step");
    ts_engine_leave(eng);
    TS_CHECK(ts_session_prefill(s, toks, 3, NULL, &err) == TS_OK, "after leave: %s", err.msg);
    ts_session_destroy(s);
    ts_batch_destroy(b);
    ts_batch_opts badopts = {.n_seq = -1};
    TS_CHECK(ts_batch_create(&b, eng, &badopts, &err) == TS_E_ARG && !b, "n_seq -1");
    ts_engine_destroy(eng);
}

/* `tessera batched-bench`: llama-batched-bench's table, json rows, skips
 * above -c, and usage errors exit 2. */
TS_TEST(test_batch_batched_bench_cli)
{
    char path[512], out[8192];
    if (gen(path, sizeof(path), "bb.gguf", "--type q8_0"))
        return;
    int rc = ts_test_sh(out, sizeof(out), 120,
                        "%s batched-bench -m %s -npp 16,40 -ntg 3 -npl 1,3 -ub 32 -c 100 -t 2",
                        ts_test_bin(), path);
    TS_CHECK(rc == 0, "rc %d: %s", rc, out);
    TS_CHECK(strstr(out, "|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |"),
             "no header: %s", out);
    TS_CHECK(strstr(out, "|    16 |      3 |    1 |     19 |") &&
                 strstr(out, "|    16 |      3 |    3 |     57 |") &&
                 strstr(out, "|    40 |      3 |    1 |     43 |") &&
                 !strstr(out, "|    40 |      3 |    3 |"),
             "rows (40x3x3 = 129 > -c 100 must be skipped): %s", out);
    rc = ts_test_sh(out, sizeof(out), 120, "%s batched-bench -m %s -npp 8 -ntg 2 -npl 2 -o json",
                    ts_test_bin(), path);
    TS_CHECK(rc == 0 && strstr(out, "\"pl\": 2") && strstr(out, "\"speed_tg\""), "json: %s",
             out);
    const char *bad[] = {"-npl 0", "-npp x", "-pps", "--bogus 1", "-o xml"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rc = ts_test_sh(out, sizeof(out), 30, "%s batched-bench -m %s %s", ts_test_bin(), path,
                        bad[i]);
        TS_CHECK(rc == 2, "%s: rc %d: %s", bad[i], rc, out);
    }
}

/* The scheduled path (ts_batch_seq_prompt / _push / ts_batch_run) under every
 * policy, budget and chunk: prompts arrive at random steps, each sequence
 * decodes a fixed continuation (as if sampled), and every prompt position's
 * logits and every decode's logits equal a lone session's. */
static void scheduled_on(ts_engine *eng, int64_t n_vocab, int schedule, int budget, int chunk,
                         uint64_t seed, int prefix, int kv_size, int64_t *hits)
{
    enum { N_JOBS = 6, N_DEC = 5 };
    job jobs[N_JOBS];
    int n_pre[N_JOBS], dec_done[N_JOBS], max_len = 0;
    memset(jobs, 0, sizeof(jobs));
    for (int j = 0; j < N_JOBS; j++) {
        job *jb = &jobs[j];
        n_pre[j] = prefix + 1 + (int)(ts_test_rand(&seed) % 90);
        jb->n = n_pre[j] + N_DEC;
        jb->toks = malloc((size_t)jb->n * sizeof(int32_t));
        /* The shared prefix: two groups (job parity) differ in their first page
         * only, so a page of the second block must never serve the other
         * group (its key names the page before it). */
        uint64_t head = 0xc0ffee + (uint64_t)(j & 1), common = 0xbeef;
        for (int t = 0; t < jb->n; t++)
            jb->toks[t] = t == 0 ? 1
                          : t < TS_BATCH_PAGE && t < prefix
                              ? (int32_t)(ts_test_rand(&head) % (uint64_t)n_vocab)
                          : t < prefix ? (int32_t)(ts_test_rand(&common) % (uint64_t)n_vocab)
                                       : (int32_t)(ts_test_rand(&seed) % (uint64_t)n_vocab);
        jb->checked = calloc((size_t)jb->n, sizeof(bool));
        jb->ref = lone(eng, jb->toks, jb->n, false, n_vocab);
        jb->got = calloc((size_t)jb->n * (size_t)n_vocab, sizeof(float));
        jb->seq = -1;
        jb->arrive = (int)(ts_test_rand(&seed) % 6);
        if (prefix && j >= 2) /* after jobs 0 and 1 (one per group) have filled the cache */
            jb->arrive += 300;
        dec_done[j] = 0;
        max_len = jb->n > max_len ? jb->n : max_len;
    }
    ts_batch *b = NULL;
    ts_err err = {0};
    ts_batch_opts bo = {.n_seq = 4, .n_ctx = max_len, .max_tokens = budget, .chunk = chunk,
                        .schedule = schedule, .kv_size = kv_size};
    TS_REQUIRE(ts_batch_create(&b, eng, &bo, &err) == TS_OK, "batch: %s", err.msg);
    ts_batch_debug_poison(b, true);
    int finished = 0, ready[8], n_ready = 0;
    for (int step = 0; finished < N_JOBS && step < 4000; step++) {
        for (int j = 0; j < N_JOBS; j++) {
            job *jb = &jobs[j];
            if (jb->seq < 0 && !jb->fed && step >= jb->arrive &&
                ts_batch_seq_open(b, &jb->seq, &err) == TS_OK) {
                /* With a shared prefix the prompt logits are not asked for (the
                 * prefix cache serves it); without, every position's are. */
                TS_REQUIRE(ts_batch_seq_prompt(b, jb->seq, jb->toks, n_pre[j],
                                               prefix ? NULL : jb->got, &err) == TS_OK,
                           "prompt: %s", err.msg);
                for (int t = 0; !prefix && t < n_pre[j]; t++)
                    jb->checked[t] = true;
                jb->fed = 1; /* submitted */
            }
        }
        ts_status st = ts_batch_run(b, ready, 8, &n_ready, &err);
        TS_REQUIRE(st == TS_OK, "%s budget %d chunk %d step %d: %s", ts_schedule_name(schedule),
                   budget, chunk, step, err.msg);
        for (int r = 0; r < n_ready; r++) {
            job *jb = NULL;
            int j = 0;
            for (; j < N_JOBS && !jb; j++)
                if (jobs[j].seq == ready[r])
                    jb = &jobs[j];
            j--;
            int pos = ts_batch_seq_pos(b, jb->seq);
            if (pos > n_pre[j] || prefix) { /* the row of position pos - 1 */
                memcpy(jb->got + (size_t)(pos - 1) * n_vocab, ts_batch_logits(b, jb->seq),
                       (size_t)n_vocab * sizeof(float));
                jb->checked[pos - 1] = true;
            }
            if (dec_done[j] == N_DEC) {
                ts_batch_seq_close(b, jb->seq);
                jb->seq = -1;
                finished++;
                continue;
            }
            TS_REQUIRE(ts_batch_seq_push(b, jb->seq, jb->toks[n_pre[j] + dec_done[j]], &err) ==
                       TS_OK, "push: %s", err.msg);
            dec_done[j]++;
        }
    }
    TS_CHECK(finished == N_JOBS, "%s: %d of %d finished", ts_schedule_name(schedule), finished,
             N_JOBS);
    for (int j = 0; j < N_JOBS; j++) {
        int n_checked = 0;
        for (int t = 0; t < jobs[j].n; t++) {
            n_checked += jobs[j].checked[t];
            if (jobs[j].checked[t] &&
                memcmp(jobs[j].got + (size_t)t * n_vocab, jobs[j].ref + (size_t)t * n_vocab,
                       (size_t)n_vocab * sizeof(float))) {
                TS_CHECK(0, "%s budget %d chunk %d prefix %d: job %d position %d differs",
                         ts_schedule_name(schedule), budget, chunk, prefix, j, t);
                break;
            }
        }
        TS_CHECK(n_checked >= N_DEC, "job %d: %d positions checked", j, n_checked);
        free(jobs[j].toks), free(jobs[j].ref), free(jobs[j].got), free(jobs[j].checked);
    }
    if (hits) {
        ts_batch_info info;
        ts_batch_get_info(b, &info);
        *hits = info.prefix_hit_tokens;
    }
    ts_batch_destroy(b);
}

TS_TEST(test_batch_scheduled_invariance)
{
    char path[512];
    if (gen(path, sizeof(path), "batch-sched.gguf", "--type q4_0"))
        return;
    static const int budgets[] = {1, 7, 64, 512}, chunks[] = {1, 13, 512};
    for (int ti = 1; ti <= 3; ti += 2) {
        ts_engine *eng = NULL;
        ts_err err = {0};
        TS_REQUIRE(ts_engine_create(&eng, &(ts_engine_opts){.model_path = path, .n_threads = ti},
                                    &err) == TS_OK, "%s", err.msg);
        ts_engine_info info;
        ts_engine_get_info(eng, &info);
        for (int sch = TS_SCHED_PREFILL_FIRST; sch <= TS_SCHED_DECODE_PRIORITY; sch++)
            for (int bi = 0; bi < 4; bi++)
                scheduled_on(eng, info.n_vocab, sch, budgets[bi], chunks[(bi + sch + ti) % 3],
                             0x5c4e + 100 * sch + bi, 0, 0, NULL);
        ts_engine_destroy(eng);
    }
    TS_CHECK(ts_schedule_parse("interleaved") == TS_SCHED_INTERLEAVED &&
                 ts_schedule_parse("prefill-first") == TS_SCHED_PREFILL_FIRST &&
                 ts_schedule_parse("decode-priority") == TS_SCHED_DECODE_PRIORITY &&
                 ts_schedule_parse("fifo") == -1 &&
                 !strcmp(ts_schedule_name(TS_SCHED_DEFAULT), "interleaved"),
             "schedule names");
}

/* `tessera run --prompts F --parallel N`: each completion equals a lone run's
 * with the same seed; `tessera logits --tokens A,B --out-dir D`: each file's
 * logits equal a lone `tessera logits`; bad input is a clear error. */
TS_TEST(test_batch_cli_parallel_equals_lone)
{
    char path[512], out[16384], one[4096], cmd_dir[600];
    if (gen(path, sizeof(path), "par.gguf", "--type q8_0"))
        return;
    const char *dir = ts_test_tmpdir();
    snprintf(cmd_dir, sizeof(cmd_dir), "%s/par-out", dir);
    static const char *lines[] = {"hello world", "a b c d e f g", "zz", "one two three four"};
    TS_REQUIRE(ts_test_sh(NULL, 0, 10, "printf '%s\\n%s\\n\\n%s\\n%s\\n' > %s/prompts.txt",
                          lines[0], lines[1], lines[2], lines[3], dir) == 0, "prompts");
    int rc = ts_test_sh(out, sizeof(out), 120,
                        "%s run -m %s --prompts %s/prompts.txt --parallel 3 -n 12 --seed 9 "
                        "--temp 0.9 --batch-tokens 5 --chunk 3 --schedule decode-priority "
                        "2>/dev/null", ts_test_bin(), path, dir);
    TS_CHECK(rc == 0, "parallel: rc %d: %s", rc, out);
    for (int i = 0; i < 4; i++) {
        rc = ts_test_sh(one, sizeof(one), 60, "%s run -m %s -p '%s' -n 12 --seed 9 --temp 0.9 "
                        "2>/dev/null", ts_test_bin(), path, lines[i]);
        one[strcspn(one, "\n")] = 0;
        char want[4200];
        snprintf(want, sizeof(want), "[%d] %s\n", i, one);
        TS_CHECK(rc == 0 && strstr(out, want), "prompt %d: lone '%s' not in:\n%s", i, one, out);
    }
    /* logits of three token files, together vs alone */
    rc = ts_test_sh(out, sizeof(out), 120,
                    "cd %s && echo 1 5 9 300 2 > a.txt && seq 1 90 > b.txt && echo 7 > c.txt && "
                    "mkdir -p par-out && for f in a b c; do %s logits -m %s --tokens $f.txt "
                    "--out $f.lone || exit 1; done && %s logits -m %s --tokens a.txt,b.txt,c.txt "
                    "--out-dir par-out --batch-tokens 7 --chunk 4 --parallel 2 -t 3 && "
                    "for f in a b c; do cmp $f.lone par-out/$f.txt.logits || exit 1; done",
                    dir, ts_test_bin(), path, ts_test_bin(), path);
    TS_CHECK(rc == 0, "logits --out-dir: rc %d: %s", rc, out);
    static const struct {
        const char *args;
        int rc;
        const char *want;
    } bad[] = {
        {"run -m M --prompts P --parallel 0", 2, "--parallel"},
        {"run -m M --prompts /dev/null --parallel 2", 1, "not a regular file"},
        {"run -m M --prompts E --parallel 2", 1, "no prompts"},
        {"run -m M --prompts P --parallel 2 -n 100 --kv-size 10", 1, "KV pool"},
        {"run -m M -p hi --parallel 2", 2, "--prompts"},
        {"logits -m M --tokens a.txt,x/a.txt --out-dir D", 2, "same name"},
        {"logits -m M --tokens a.txt --out-dir D --schedule lifo", 2, "--schedule"},
    };
    /* M, P, E, D: the model, the prompts, an empty file, the output dir. */
    TS_REQUIRE(ts_test_sh(NULL, 0, 10, "cd %s && : > E && mkdir -p x D && cp a.txt x/ && "
                          "ln -sf %s M && cp prompts.txt P", dir, path) == 0, "setup");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rc = ts_test_sh(out, sizeof(out), 60, "cd %s && %s %s", dir, ts_test_bin(), bad[i].args);
        TS_CHECK(rc == bad[i].rc && strstr(out, bad[i].want), "%s: rc %d (want %d, '%s'): %s",
                 bad[i].args, rc, bad[i].rc, bad[i].want, out);
    }
}

/* Prefix cache: prompts sharing a 150-token prefix take each other's pages
 * (hits counted), from live and from finished sequences, and every checked
 * logit equals a cold lone run; a small pool evicts cached pages and stays
 * exact. */
TS_TEST(test_batch_prefix_cache_identity)
{
    char path[512];
    if (gen(path, sizeof(path), "batch-prefix.gguf", "--type q8_0"))
        return;
    ts_engine *eng = NULL;
    ts_err err = {0};
    TS_REQUIRE(ts_engine_create(&eng, &(ts_engine_opts){.model_path = path, .n_threads = 2},
                                &err) == TS_OK, "%s", err.msg);
    ts_engine_info info;
    ts_engine_get_info(eng, &info);
    int64_t hits = 0;
    scheduled_on(eng, info.n_vocab, TS_SCHED_INTERLEAVED, 64, 32, 0x9f1, 150, 0, &hits);
    /* Jobs 2-5 arrive after 0 and 1 ran: two whole pages each from the cache. */
    TS_CHECK(hits >= 4 * 128, "only %lld prompt positions from the cache", (long long)hits);
    /* 4 sequences of up to 250 positions in a 10-page pool: eviction. */
    scheduled_on(eng, info.n_vocab, TS_SCHED_PREFILL_FIRST, 512, 512, 0x9f2, 150, 640, NULL);
    scheduled_on(eng, info.n_vocab, TS_SCHED_DECODE_PRIORITY, 7, 13, 0x9f3, 130, 0, &hits);
    TS_CHECK(hits >= 4 * 128, "budget 7: only %lld positions from the cache", (long long)hits);
    ts_engine_destroy(eng);
}

/* Every other architecture the engine runs, one thread count, both KV types. */
TS_TEST(test_batch_invariance_archs)
{
    static const char *archs[] = {"qwen2", "qwen3", "qwen2moe", "olmoe"};
    for (size_t i = 0; i < sizeof(archs) / sizeof(archs[0]); i++) {
        char path[512], name[64], args[128];
        snprintf(name, sizeof(name), "batch-%s.gguf", archs[i]);
        snprintf(args, sizeof(args), "--arch %s --type q8_0 --layers 1", archs[i]);
        if (gen(path, sizeof(path), name, args))
            continue;
        ts_engine *eng = NULL;
        ts_err err = {0};
        TS_REQUIRE(ts_engine_create(&eng, &(ts_engine_opts){.model_path = path, .n_threads = 2},
                                    &err) == TS_OK, "%s: %s", archs[i], err.msg);
        ts_engine_info info;
        ts_engine_get_info(eng, &info);
        for (int kv = 0; kv < 3; kv++)
            run_schedule(eng, info.n_vocab, 4, 3, kv, 0xa4c + 7 * i + (uint64_t)kv);
        ts_engine_destroy(eng);
    }
}
