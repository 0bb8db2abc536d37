/*
 * tools/cmd_batched_bench.c: `tessera batched-bench`: llama-batched-bench's
 * test on the batch engine (core/tessera.h ts_batch).
 *   -m MODEL [-c N_KV_MAX] [-npp 128,256] [-ntg 128] [-npl 1,2,4,8,16] [-ub 512]
 *   [-t T] [--kv-type|-ctk|-ctv T] [-o md|json]
 * For each (PP, TG, B): B sequences get PP random prompt tokens each, packed
 * into steps of at most -ub tokens (prompts split across steps as needed:
 * T_PP, S_PP = B * PP / T_PP), then TG steps decode one token for every
 * sequence in one forward pass each (T_TG, S_TG = B * TG / T_TG); T and S
 * are the totals. N_KV = B * (PP + TG); a combination above -c is skipped, as
 * llama-batched-bench does. One untimed warm-up step runs first. -b, -ngl,
 * -fa and -pps (a shared prompt: not supported, refused) follow llama.cpp's
 * spelling. TESSERA_PROFILE=1 prints the stage profile of each row's decode
 * steps on stderr. Exit 0 ok, 1 runtime error, 2 usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "prof.h"
#include "tessera.h"

#define CMD "batched-bench"
#define MAX_LIST TS_CLI_MAX_LIST

typedef struct {
    const char *model;
    long long n_kv_max, ub, threads;
    ts_cli_list pp, tg, pl;
    int kv_k, kv_v;
    bool json;
} bb_args;

static int usage(const char *msg)
{
    ts_cli_error(CMD, "%s (usage: tessera batched-bench -m MODEL [-c N_KV_MAX] [-npp 128,256] "
                 "[-ntg 128] [-npl 1,2,4] [-ub 512] [-t T] [--kv-type|-ctk|-ctv " TS_CLI_KV_TYPES "] [-o md|json])",
                 msg);
    return 2;
}

static int parse(int argc, char **argv, bb_args *a)
{
    *a = (bb_args){.n_kv_max = 2048, .ub = 512, .pp = {{128, 256, 512}, 3},
                   .tg = {{128, 256}, 2}, .pl = {{1, 2, 4, 8, 16, 32}, 6}};
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = v != NULL;
        if (!strcmp(o, "-m")) a->model = v;
        else if (!strcmp(o, "-c")) ok = ok && ts_cli_parse_i64(v, 1, 1 << 26, &a->n_kv_max);
        else if (!strcmp(o, "-ub")) ok = ok && ts_cli_parse_i64(v, 1, 1 << 20, &a->ub);
        else if (!strcmp(o, "-t")) ok = ok && ts_cli_parse_i64(v, 1, 1024, &a->threads);
        else if (!strcmp(o, "-npp")) ok = ok && ts_cli_parse_list(v, 1, 1 << 20, &a->pp);
        else if (!strcmp(o, "-ntg")) ok = ok && ts_cli_parse_list(v, 0, 1 << 20, &a->tg);
        else if (!strcmp(o, "-npl")) ok = ok && ts_cli_parse_list(v, 1, 4096, &a->pl);
        else if (!strcmp(o, "-b") || !strcmp(o, "-ngl") || !strcmp(o, "-fa")) {
            long long ignored;
            ok = ok && ts_cli_parse_i64(v, 0, 1 << 26, &ignored);
        } else if (ts_cli_kv_option(o, "", &a->kv_k, &a->kv_v) != 0)
            ok = ok && ts_cli_kv_option(o, v, &a->kv_k, &a->kv_v) > 0;
        else if (!strcmp(o, "-o"))
            ok = ok && ((a->json = !strcmp(v, "json")) || !strcmp(v, "md"));
        else if (!strcmp(o, "-pps"))
            return usage("-pps (one prompt shared by all sequences) is not supported yet");
        else {
            char msg[160];
            snprintf(msg, sizeof(msg), "unknown option '%s'", o);
            return usage(msg);
        }
        if (!ok) {
            char msg[160];
            snprintf(msg, sizeof(msg), "bad or missing value for %s%s%s", o, v ? ": " : "",
                     v ? v : "");
            return usage(msg);
        }
    }
    return a->model ? 0 : usage("-m MODEL is required");
}

typedef struct {
    double t_pp, t_tg;
} bb_time;

/* One (pp, tg, pl) run on a fresh batch. */
static ts_status run_one(ts_engine *eng, const bb_args *a, int pp, int tg, int pl,
                         int64_t n_vocab, bb_time *t, ts_err *err)
{
    ts_batch *b = NULL;
    ts_batch_opts bo = {.n_seq = pl, .n_ctx = pp + tg, .max_tokens = (int)a->ub,
                        .kv_type_k = a->kv_k, .kv_type_v = a->kv_v}; /* the default pool: every sequence whole */
    ts_status st = ts_batch_create(&b, eng, &bo, err);
    int32_t *toks = st == TS_OK ? malloc((size_t)pl * (size_t)pp * sizeof(int32_t)) : NULL;
    ts_batch_span *sp = st == TS_OK ? calloc((size_t)pl, sizeof(*sp)) : NULL;
    int *seq = st == TS_OK ? calloc((size_t)pl, sizeof(int)) : NULL;
    if (st == TS_OK && (!toks || !sp || !seq))
        st = TS_E_NOMEM;
    uint64_t rng = 0x6a7c4ed5ull;
    for (size_t i = 0; st == TS_OK && i < (size_t)pl * (size_t)pp; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((rng >> 33) % (uint64_t)n_vocab);
    }
    for (int s = 0; st == TS_OK && s < pl; s++)
        st = ts_batch_seq_open(b, &seq[s], err);
    /* Prefill: steps of up to -ub tokens, sequences in order, prompts split. */
    double t0 = ts_cli_now_s();
    int cur = 0, fed = 0;
    while (st == TS_OK && cur < pl) {
        int n_sp = 0, room = (int)a->ub;
        for (int s = cur; s < pl && room > 0; s++) {
            int off = s == cur ? fed : 0, n = pp - off < room ? pp - off : room;
            sp[n_sp++] = (ts_batch_span){seq[s], toks + (size_t)s * pp + off, n, NULL,
                                         off + n == pp};
            room -= n;
        }
        st = ts_batch_step(b, sp, n_sp, err);
        for (int k = 0; k < n_sp && st == TS_OK; k++) {
            fed += sp[k].n_tok;
            if (fed == pp)
                cur++, fed = 0;
        }
    }
    t->t_pp = ts_cli_now_s() - t0;
    /* Decode: every sequence one token per step (TESSERA_PROFILE: these steps). */
    ts_prof_reset();
    t0 = ts_cli_now_s();
    int32_t *next = st == TS_OK ? malloc((size_t)pl * sizeof(int32_t)) : NULL;
    for (int g = 0; st == TS_OK && next && g < tg; g++) {
        for (int s = 0; s < pl; s++) {
            next[s] = (int32_t)((g * 31 + s * 7 + 1) % n_vocab);
            sp[s] = (ts_batch_span){seq[s], &next[s], 1, NULL, true};
        }
        st = ts_batch_step(b, sp, pl, err);
    }
    t->t_tg = ts_cli_now_s() - t0;
    free(next);
    free(toks);
    free(sp);
    free(seq);
    ts_batch_destroy(b);
    return st;
}

int cmd_batched_bench(int argc, char **argv)
{
    bb_args a;
    int rc = parse(argc, argv, &a);
    if (rc)
        return rc;
    ts_err err = {0};
    ts_engine *eng = NULL;
    if (ts_engine_create(&eng, &(ts_engine_opts){.model_path = a.model,
                                                 .n_threads = (int)a.threads}, &err) != TS_OK) {
        ts_cli_error(CMD, "%s", err.msg);
        return 1;
    }
    ts_engine_info info;
    ts_engine_get_info(eng, &info);
    bb_time warm;
    if (run_one(eng, &a, 8, 2, 1, info.n_vocab, &warm, &err) != TS_OK) {
        ts_cli_error(CMD, "warm-up: %s", err.msg);
        ts_engine_destroy(eng);
        return 1;
    }
    if (!a.json) {
        char kvd[16];
        printf("\nmain: n_kv_max = %lld, ub = %lld, threads = %u, kv = %s\n\n", a.n_kv_max,
               a.ub, info.n_threads, ts_cli_kv_desc(a.kv_k, a.kv_v, kvd, sizeof(kvd)));
        printf("|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s "
               "|      T s |    S t/s |\n");
        printf("|-------|--------|------|--------|----------|----------|----------|----------"
               "|----------|----------|\n");
    } else {
        printf("[\n");
    }
    bool first = true;
    for (int i = 0; rc == 0 && i < a.pp.n; i++)
        for (int j = 0; rc == 0 && j < a.tg.n; j++)
            for (int k = 0; rc == 0 && k < a.pl.n; k++) {
                const long long pp = a.pp.v[i], tg = a.tg.v[j], pl = a.pl.v[k];
                const long long n_kv = pl * (pp + tg);
                if (n_kv > a.n_kv_max)
                    continue;
                bb_time t;
                if (run_one(eng, &a, (int)pp, (int)tg, (int)pl, info.n_vocab, &t, &err) !=
                    TS_OK) {
                    ts_cli_error(CMD, "PP %lld TG %lld B %lld: %s", pp, tg, pl, err.msg);
                    rc = 1;
                    break;
                }
                const double s_pp = t.t_pp > 0 ? pl * pp / t.t_pp : 0;
                const double s_tg = t.t_tg > 0 ? pl * tg / t.t_tg : 0;
                const double tt = t.t_pp + t.t_tg, s = tt > 0 ? n_kv / tt : 0;
                if (a.json)
                    printf("%s  {\"n_kv_max\": %lld, \"n_ubatch\": %lld, \"n_threads\": %u, "
                           "\"pp\": %lld, \"tg\": %lld, \"pl\": %lld, \"n_kv\": %lld, "
                           "\"t_pp\": %f, \"speed_pp\": %f, \"t_tg\": %f, \"speed_tg\": %f, "
                           "\"t\": %f, \"speed\": %f}",
                           first ? "" : ",\n", a.n_kv_max, a.ub, info.n_threads, pp, tg, pl,
                           n_kv, t.t_pp, s_pp, t.t_tg, s_tg, tt, s);
                else
                    printf("| %5lld | %6lld | %4lld | %6lld | %8.3f | %8.2f | %8.3f | %8.2f "
                           "| %8.3f | %8.2f |\n",
                           pp, tg, pl, n_kv, t.t_pp, s_pp, t.t_tg, s_tg, tt, s);
                fflush(stdout);
                if (ts_prof_on()) {
                    fprintf(stderr, "profile of the TG steps, PP %lld TG %lld B %lld:\n", pp, tg,
                            pl);
                    ts_prof_report(stderr);
                }
                first = false;
            }
    if (a.json)
        printf("\n]\n");
    ts_engine_destroy(eng);
    return rc;
}
