/*
 * tools/cmd_bench.c: `tessera bench`: llama-bench's tests, options and columns.
 *   -m M[,M2] [-p 512,2048] [-n 128] [-pg 512,128] [-d 0,4096] [-t 1,2] [-r 5]
 *   [-ub 512] [-o md|csv|json|jsonl] [--chunk C]
 * pp<N>: prefill N random tokens (one timed ts_session_prefill).
 * tg<N>: decode N random tokens one at a time.
 * pp<N>+tg<M> (-pg N,M, repeatable): prefill N, then decode M; t/s counts
 * both, as llama-bench does.
 * -d D (list): each test starts after D untimed tokens of context (the name
 * gets " @ dD"); 0 = an empty cache.
 * -ub C (list): the prefill chunk (llama.cpp's micro-batch); --chunk C is the
 * same with one value. -ngl, -b and -fa are accepted for llama-bench command
 * lines and have no effect here (a note says so on stderr).
 * Each test runs once untimed (warm-up), then -r times; t/s is mean +- sd,
 * plus the median. json / jsonl rows also carry llama-bench's field names
 * (n_prompt, n_gen, n_depth, avg_ts, stddev_ts, samples_ts, samples_ns, ...).
 * Peak RSS of the process is reported with each row.
 * --numa MODE / --cpu-range A-B: weight placement and CPUs (tessera.h); the
 * bytes placed per node go to stderr, one line per engine.
 * --sweep 1,2,4,... [--sweep-csv F] [--sweep-svg F]: thread scaling of the
 * first -p and -n test: a table of t/s and parallel efficiency (relative to
 * the first thread count) on stdout, the same as CSV, and an SVG plot
 * (tools/bench_sweep.c).
 * -ctk T / -ctv T / --kv-type T: the KV cache types (llama-bench's -ctk / -ctv,
 * one value each); json and csv rows carry type_k and type_v.
 * --sweep-ctx A:B:S [-p N] [-n M] [--sweep-csv F] [--sweep-svg F]: ppN and
 * tgM at context depths A, A + S, .. <= B with memory per depth
 * (tools/bench_ctx.c).
 * --attn [-ctk T -ctv T] [-p NQ,..] [-d NKV,..] [-r R]: the attention kernel
 * alone, one thread, against its instructions' peak (tools/bench_attn.c).
 * --moe-audit [-t 1,2,3]: the MoE routed-matmul audit (core/moe_audit.c) at
 * K = 2048: tokens per expert {1 .. 1000} x tile caps {32, 64, 128} x
 * threads, every value against dequantize + double dot, every configuration
 * byte-identical; exit 1 on any failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_attn.h"
#include "bench_ctx.h"
#include "bench_sweep.h"
#include "cmds.h"
#include "matmul.h"
#include "moe.h"
#include "prof.h"
#include "tessera.h"
#include "../quant/quant.h"
#include "../tests/tolerances.h"

#define CMD "bench"
#define MAX_LIST TS_CLI_MAX_LIST
#define MAX_REPS 1000 /* -r limit */

static int usage(const char *msg)
{
    ts_cli_error(CMD, "%s (usage: tessera bench -m MODEL[,MODEL] [-p 512,2048] [-n 128] "
                 "[-pg PP,TG] [-d 0,4096] [-t 1,2] [-r 5] [-ub 512] [-o md|csv|json|jsonl] "
                 "[--chunk C] [-ctk T] [-ctv T] [--numa MODE] [--cpu-range A-B] "
                 "[--sweep 1,2,4 | --sweep-ctx A:B:S] [--sweep-csv F] [--sweep-svg F] "
                 "| tessera bench --moe-audit [-t 1,2,3]; T: " TS_CLI_KV_TYPES ")", msg);
    return 2;
}

/* One test: depth tokens of context (untimed), then pp prefilled and tg
 * decoded (timed). */
typedef struct {
    long long pp, tg, depth;
} test_def;

static void test_name(const test_def *t, char *buf, size_t cap)
{
    int n = t->pp && t->tg ? snprintf(buf, cap, "pp%lld+tg%lld", t->pp, t->tg)
            : t->pp        ? snprintf(buf, cap, "pp%lld", t->pp)
                           : snprintf(buf, cap, "tg%lld", t->tg);
    if (t->depth && n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, " @ d%lld", t->depth);
}

/* One timed run; returns seconds or < 0 on error. */
static double run_once(ts_session *s, const int32_t *toks, const test_def *t, ts_err *err)
{
    ts_session_reset(s);
    if (t->depth > 0 && ts_session_prefill(s, toks, (int)t->depth, NULL, err) != TS_OK)
        return -1.0;
    const int32_t *x = toks + t->depth;
    double t0 = ts_cli_now_s();
    if (t->pp > 0 && ts_session_prefill(s, x, (int)t->pp, NULL, err) != TS_OK)
        return -1.0;
    for (long long i = 0; i < t->tg; i++)
        if (ts_session_decode(s, x[t->pp + i], err) != TS_OK)
            return -1.0;
    return ts_cli_now_s() - t0;
}

typedef struct {
    const char *models[MAX_LIST];
    int n_models;
    const char *fmt;
    ts_cli_list pp, tg, th, depth, ub;
    long long pg[MAX_LIST][2];
    int n_pg;
    bool ub_set; /* -ub / --chunk given: the md table shows the chunk */
    long long reps;
    bool moe_audit, attn;
    int numa;
    const char *cpu_range, *sweep_csv, *sweep_svg;
    ts_cli_list sweep;
    int kt, vt;     /* KV cache types */
    bool pp_given, depth_given; /* -p / -d given (--attn: the n_q / n_kv lists) */
    bool kv_set;    /* -ctk / -ctv given: the md table shows them */
    bool sweep_ctx; /* --sweep-ctx from:to:step */
    long long ctx_from, ctx_to, ctx_step;
} bench_args;

/* int8 GOP/s of one core, probed once, after the first model loaded (so a bad
 * file still fails with exactly one line). */
static double peak_core(void)
{
    static double peak = -1.0;
    if (peak < 0) {
        const char *probe = "";
        peak = ts_peak_int8_gops(&probe);
        fprintf(stderr, "peak: %.1f int8 GOP/s per core (%s)\n", peak, probe);
        if (*ts_mm_tune_report())
            fprintf(stderr, "kernels timed (TESSERA_KTUNE): %s\n", ts_mm_tune_report());
    }
    return peak;
}

/* Achieved int8 GOP/s of a test (2 ops per weight per token, matmuls only:
 * attention is left out, so long prompts understate it) and its share of the
 * probe's ceiling times the thread count. */
static void gops(const ts_engine_info *in, double tps, double peak_core, double *g, double *pct)
{
    *g = 2.0 * (double)in->mm_params * tps / 1e9;
    *pct = peak_core > 0 ? 100.0 * *g / (peak_core * in->n_threads) : 0.0;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Median of n samples (sorted in place). */
static double median(double *v, long long n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct {
    const char *path, *name; /* as given, and its file name */
    const ts_engine_info *in;
    const test_def *t;
    int chunk;               /* the session's prefill chunk */
    double mean, sd, med;
    const double *samples;   /* t/s per run, in run order */
    long long n;
} row_data;

/* s as a JSON string body (quotes, backslashes and control bytes escaped). */
static void json_str(const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
}

static void json_row(const bench_args *a, const row_data *r, const char *test, double g,
                     double pct, int first)
{
    const ts_engine_info *in = r->in;
    const long long tok = r->t->pp + r->t->tg;
    double ns_sum = 0.0, ns_sum2 = 0.0;
    for (long long i = 0; i < r->n; i++) {
        double ns = 1e9 * (double)tok / r->samples[i];
        ns_sum += ns;
        ns_sum2 += ns * ns;
    }
    double ns_mean = ns_sum / (double)r->n;
    double ns_var = r->n > 1 ? (ns_sum2 - ns_sum * ns_mean) / (double)(r->n - 1) : 0.0;
    bool lines = !strcmp(a->fmt, "jsonl");
    printf("%s{\"model\": \"", lines ? "" : first ? "[\n  " : ",\n  ");
    json_str(r->name);
    printf("\", \"size_mib\": %.2f, \"params_m\": %.2f, \"backend\": \"CPU\", "
           "\"threads\": %u, \"test\": \"%s\", \"t_s\": %.2f, \"t_s_sd\": %.2f, "
           "\"gops\": %.1f, \"pct_peak\": %.1f, \"peak_rss_mib\": %.1f, \"t_s_median\": %.2f, ",
           (double)in->n_bytes / (1024.0 * 1024.0), (double)in->n_params / 1e6, in->n_threads,
           test, r->mean, r->sd, g, pct, ts_cli_peak_rss_mib(), r->med);
    /* llama-bench's names for the same run */
    printf("\"model_filename\": \"");
    json_str(r->path);
    printf("\", \"model_type\": \"");
    json_str(in->arch);
    printf("\", \"model_size\": %llu, "
           "\"model_n_params\": %llu, \"n_threads\": %u, \"n_ubatch\": %d, \"n_prompt\": %lld, "
           "\"n_gen\": %lld, \"n_depth\": %lld, \"type_k\": \"%s\", \"type_v\": \"%s\", "
           "\"avg_ns\": %.0f, \"stddev_ns\": %.0f, "
           "\"avg_ts\": %.6f, \"stddev_ts\": %.6f, \"samples_ns\": [",
           (unsigned long long)in->n_bytes, (unsigned long long)in->n_params,
           in->n_threads, r->chunk, r->t->pp, r->t->tg, r->t->depth, ts_kv_type_name(a->kt),
           ts_kv_type_name(a->vt), ns_mean,
           ns_var > 0 ? sqrt(ns_var) : 0.0, r->mean, r->sd);
    for (long long i = 0; i < r->n; i++)
        printf("%s%.0f", i ? ", " : "", 1e9 * (double)tok / r->samples[i]);
    printf("], \"samples_ts\": [");
    for (long long i = 0; i < r->n; i++)
        printf("%s%.2f", i ? ", " : "", r->samples[i]);
    printf("]}%s", lines ? "\n" : "");
}

static void print_row(const bench_args *a, const row_data *r, double peak_core, int first)
{
    const ts_engine_info *in = r->in;
    double size_mib = (double)in->n_bytes / (1024.0 * 1024.0);
    double params_m = (double)in->n_params / 1e6;
    double g, pct;
    char test[64];
    test_name(r->t, test, sizeof(test));
    gops(in, r->mean, peak_core, &g, &pct);
    if (!strcmp(a->fmt, "csv")) {
        if (first)
            printf("model,size_mib,params_m,backend,threads,test,t_s,t_s_sd,gops,pct_peak,"
                   "peak_rss_mib,t_s_median,n_prompt,n_gen,n_depth,n_ubatch,type_k,type_v\n");
        printf("%s,%.2f,%.2f,CPU,%u,%s,%.2f,%.2f,%.1f,%.1f,%.1f,%.2f,%lld,%lld,%lld,%d,%s,%s\n",
               r->name, size_mib, params_m, in->n_threads, test, r->mean, r->sd, g, pct,
               ts_cli_peak_rss_mib(), r->med, r->t->pp, r->t->tg, r->t->depth, r->chunk,
               ts_kv_type_name(a->kt), ts_kv_type_name(a->vt));
    } else if (!strncmp(a->fmt, "json", 4)) {
        json_row(a, r, test, g, pct, first);
    } else {
        if (first) {
            printf("| model | size | params | backend | threads |%s%s test | t/s | median t/s "
                   "| GOP/s | %% peak | peak RSS |\n", a->ub_set ? " chunk |" : "",
                   a->kv_set ? " type_k | type_v |" : "");
            printf("| --- | ---: | ---: | --- | ---: |%s%s ---: | ---: | ---: | ---: | ---: | ---: "
                   "|\n", a->ub_set ? " ---: |" : "", a->kv_set ? " --- | --- |" : "");
        }
        char chunk[48] = "";
        int cn = 0;
        if (a->ub_set)
            cn = snprintf(chunk, sizeof(chunk), " %d |", r->chunk);
        if (a->kv_set)
            snprintf(chunk + cn, sizeof(chunk) - (size_t)cn, " %s | %s |", ts_kv_type_name(a->kt),
                     ts_kv_type_name(a->vt));
        printf("| %s %s | %.2f MiB | %.2f M | CPU | %u |%s %s | %.2f ± %.2f | %.2f | %.1f | "
               "%.1f%% | %.1f MiB |\n",
               in->arch, r->name, size_mib, params_m, in->n_threads, chunk, test, r->mean, r->sd,
               r->med, g, pct, ts_cli_peak_rss_mib());
    }
    fflush(stdout);
}

/* Appends the comma-separated items of s to out (at most MAX_LIST in all). */
static bool parse_models(const char *s, bench_args *a)
{
    if (!s || !*s)
        return false;
    const char *p = s;
    while (*p) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n == 0 || a->n_models == MAX_LIST)
            return false;
        char *m = strndup(p, n); /* freed by cmd_bench */
        if (!m)
            return false;
        a->models[a->n_models++] = m;
        p += n + (c ? 1 : 0);
        if (c && !*p)
            return false;
    }
    return true;
}

/* Options llama-bench takes that change nothing on this engine (its GPU
 * layers, logical batch and flash-attention switches): 1 if o is one. */
static bool ignored_opt(const char *o)
{
    static const char *const names[] = {"-ngl", "--n-gpu-layers", "-b", "--batch-size", "-fa",
                                        "--flash-attn"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(o, names[i]))
            return true;
    return false;
}

static int parse(int argc, char **argv, bench_args *a)
{
    *a = (bench_args){.fmt = "md", .pp = {{512}, 1}, .tg = {{128}, 1}, .th = {{0}, 1},
                      .depth = {{0}, 1}, .ub = {{-2}, 1}, .reps = 5};
    bool pp_set = false, tg_set = false;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = v != NULL;
        long long c = 0;
        if (!strcmp(o, "--moe-audit")) {
            a->moe_audit = true;
            continue;
        }
        if (!strcmp(o, "--attn")) {
            a->attn = true;
            continue;
        }
        const int kvo = ts_cli_kv_option(o, v, &a->kt, &a->vt);
        if (kvo < 0)
            return usage("-ctk, -ctv and --kv-type want one of " TS_CLI_KV_TYPES);
        if (kvo > 0) {
            a->kv_set = true;
            i++;
            continue;
        }
        if (!strcmp(o, "-m") || !strcmp(o, "--model")) ok = ok && parse_models(v, a);
        else if (!strcmp(o, "--sweep-ctx")) {
            ok = ok && ts_ctx_sweep_parse(v, &a->ctx_from, &a->ctx_to, &a->ctx_step);
            a->sweep_ctx = true;
        }
        else if (!strcmp(o, "-p") || !strcmp(o, "--n-prompt")) {
            ok = ok && ts_cli_parse_list(v, 0, 1 << 20, &a->pp);
            pp_set = true;
        } else if (!strcmp(o, "-n") || !strcmp(o, "--n-gen")) {
            ok = ok && ts_cli_parse_list(v, 0, 1 << 20, &a->tg);
            tg_set = true;
        } else if (!strcmp(o, "-pg")) {
            ts_cli_list l;
            ok = ok && ts_cli_parse_list(v, 0, 1 << 20, &l) && l.n == 2 && a->n_pg < MAX_LIST;
            if (ok) {
                a->pg[a->n_pg][0] = l.v[0];
                a->pg[a->n_pg++][1] = l.v[1];
            }
        } else if (!strcmp(o, "-d") || !strcmp(o, "--n-depth")) {
            ok = ok && ts_cli_parse_list(v, 0, 1 << 20, &a->depth);
            a->depth_given = true;
        }
        else if (!strcmp(o, "-t") || !strcmp(o, "--threads"))
            ok = ok && ts_cli_parse_list(v, 1, 1024, &a->th);
        else if (!strcmp(o, "-ub") || !strcmp(o, "--ubatch-size")) {
            ok = ok && ts_cli_parse_list(v, 0, 1 << 24, &a->ub);
            a->ub_set = true;
        } else if (!strcmp(o, "--chunk")) {
            ok = ok && ts_cli_parse_i64(v, 0, 1 << 24, &c);
            a->ub = (ts_cli_list){{c}, 1};
            a->ub_set = true;
        } else if (!strcmp(o, "--sweep")) ok = ok && ts_cli_parse_list(v, 1, 1024, &a->sweep);
        else if (!strcmp(o, "--sweep-csv")) a->sweep_csv = v;
        else if (!strcmp(o, "--sweep-svg")) a->sweep_svg = v;
        else if (!strcmp(o, "--cpu-range")) a->cpu_range = v;
        else if (!strcmp(o, "--numa")) ok = ok && (a->numa = ts_numa_parse(v)) >= 0;
        else if (!strcmp(o, "-r") || !strcmp(o, "--repetitions"))
            ok = ok && ts_cli_parse_i64(v, 1, MAX_REPS, &a->reps);
        else if (!strcmp(o, "-o") || !strcmp(o, "--output")) {
            ok = ok && (!strcmp(v, "md") || !strcmp(v, "csv") || !strcmp(v, "json") ||
                        !strcmp(v, "jsonl"));
            a->fmt = v;
        } else if (ignored_opt(o)) {
            ts_cli_list l;
            ok = ok && ts_cli_parse_list(v, 0, 1 << 24, &l);
            if (ok)
                fprintf(stderr, "tessera bench: %s has no effect on this CPU engine\n", o);
        } else {
            char msg[160];
            snprintf(msg, sizeof(msg), "unknown option '%s'", o);
            return usage(msg);
        }
        if (!ok) {
            char msg[160];
            snprintf(msg, sizeof(msg), "bad or missing value for %s", o);
            return usage(msg);
        }
        i++;
    }
    a->pp_given = pp_set;
    if (a->attn) {
        for (int i = 0; i < a->pp.n; i++)
            if (a->pp_given && a->pp.v[i] < 1)
                return usage("--attn: -p lists query counts >= 1");
        for (int i = 0; i < a->depth.n; i++)
            if (a->depth_given && (a->depth.v[i] < 1 || a->depth.v[i] > (1 << 20)))
                return usage("--attn: -d lists key counts in [1, 2^20]");
    }
    /* llama-bench: a -pg alone does not also run the default pp512 / tg128. */
    if (a->n_pg && !pp_set)
        a->pp = (ts_cli_list){{0}, 1};
    if (a->n_pg && !tg_set)
        a->tg = (ts_cli_list){{0}, 1};
    if (a->sweep.n && (a->n_models > 1 || a->ub.n > 1 || a->depth.n > 1 || a->depth.v[0]))
        return usage("--sweep takes one model, one chunk and depth 0");
    if (a->sweep_ctx && (a->sweep.n || a->n_models > 1 || a->ub.n > 1 || a->th.n > 1 ||
                         a->depth.n > 1 || a->depth.v[0] || a->pp.n > 1 || a->tg.n > 1 ||
                         a->n_pg))
        return usage("--sweep-ctx takes one model, thread count, chunk, -p and -n (no -d, -pg "
                     "or --sweep)");
    return a->n_models || a->moe_audit || a->attn ? 0 : usage("-m MODEL is required");
}

/* The tests of one (model, threads, chunk): for each depth, every pp, tg and
 * pg test in that order. Returns how many were written to out. */
static int plan_tests(const bench_args *a, test_def *out, int cap)
{
    int n = 0;
    for (int d = 0; d < a->depth.n; d++) {
        for (int i = 0; i < a->pp.n && n < cap; i++)
            if (a->pp.v[i])
                out[n++] = (test_def){a->pp.v[i], 0, a->depth.v[d]};
        for (int i = 0; i < a->tg.n && n < cap; i++)
            if (a->tg.v[i])
                out[n++] = (test_def){0, a->tg.v[i], a->depth.v[d]};
        for (int i = 0; i < a->n_pg && n < cap; i++)
            if (a->pg[i][0] || a->pg[i][1])
                out[n++] = (test_def){a->pg[i][0], a->pg[i][1], a->depth.v[d]};
    }
    return n;
}

/* Runs every test of one model at one thread count (every chunk of -ub);
 * returns 0 or 1 (error printed). pt: NULL, or receives the first pp and tg
 * results (--sweep). */
static int bench_threads(const bench_args *a, const char *model, int threads, int *first,
                         ts_sweep_point *pt)
{
    ts_err err = {0};
    ts_engine *eng = NULL;
    ts_session *s = NULL;
    int32_t *toks = NULL;
    int rc = 1;
    test_def tests[3 * MAX_LIST * MAX_LIST];
    const int n_tests = plan_tests(a, tests, (int)(sizeof(tests) / sizeof(tests[0])));
    const char *name = strrchr(model, '/') ? strrchr(model, '/') + 1 : model;
    const double t_load = ts_cli_now_s();
    if (ts_engine_create(&eng, &(ts_engine_opts){.model_path = model, .n_threads = threads,
                                                 .numa = a->numa, .cpu_range = a->cpu_range},
                         &err) != TS_OK)
        goto done;
    fprintf(stderr, "load: %.0f ms (open + repack + placement)\n", 1e3 * (ts_cli_now_s() - t_load));
    ts_engine_info in;
    ts_engine_get_info(eng, &in);
    ts_cli_print_numa(stderr, eng, &in);
    if (pt)
        *pt = (ts_sweep_point){.threads = in.n_threads, .numa = in.numa, .n_nodes = in.n_nodes};
    long long max_n = 1;
    for (int i = 0; i < n_tests; i++) {
        long long n = tests[i].depth + tests[i].pp + tests[i].tg;
        max_n = n > max_n ? n : max_n;
    }
    if (max_n > (1 << 22)) {
        snprintf(err.msg, sizeof(err.msg), "depth + prompt + generated tokens = %lld: too many",
                 max_n);
        goto done;
    }
    toks = malloc((size_t)max_n * sizeof(*toks));
    if (!toks) {
        snprintf(err.msg, sizeof(err.msg), "out of memory");
        goto done;
    }
    ts_cli_bench_tokens(toks, max_n, in.n_vocab);
    double samples[MAX_REPS], sorted[MAX_REPS];
    bool got_pp = false, got_tg = false;
    for (int u = 0; u < a->ub.n; u++) {
        long long ub = a->ub.v[u];
        ts_session_opts so = {.n_ctx = (int)max_n, .chunk = ub == -2 ? 0 : ub == 0 ? -1 : (int)ub,
                              .kv_type_k = a->kt, .kv_type_v = a->vt};
        ts_session_destroy(s);
        s = NULL;
        if (ts_session_create(&s, eng, &so, &err) != TS_OK)
            goto done;
        for (int i = 0; i < n_tests; i++) {
            const test_def *t = &tests[i];
            double sum = 0.0, sum2 = 0.0;
            if (run_once(s, toks, t, &err) < 0) /* warm-up */
                goto done;
            ts_prof_reset(); /* TESSERA_PROFILE: the timed runs only */
            for (long long r = 0; r < a->reps; r++) {
                double dt = run_once(s, toks, t, &err);
                if (dt < 0)
                    goto done;
                double tps = (double)(t->pp + t->tg) / dt;
                samples[r] = tps;
                sum += tps;
                sum2 += tps * tps;
            }
            double mean = sum / (double)a->reps;
            double var = a->reps > 1 ? (sum2 - sum * mean) / (double)(a->reps - 1) : 0.0;
            memcpy(sorted, samples, (size_t)a->reps * sizeof(*sorted));
            row_data rd = {model, name, &in, t, ts_session_chunk(s), mean,
                           var > 0 ? sqrt(var) : 0.0, median(sorted, a->reps), samples, a->reps};
            print_row(a, &rd, peak_core(), *first);
            *first = 0;
            bool pp_only = t->pp && !t->tg, tg_only = t->tg && !t->pp;
            if (pt && ((pp_only && !got_pp) || (tg_only && !got_tg))) {
                double *m = tg_only ? &pt->tg : &pt->pp, *sd = tg_only ? &pt->tg_sd : &pt->pp_sd;
                *m = mean;
                *sd = rd.sd;
                got_pp |= pp_only;
                got_tg |= tg_only;
            }
        }
    }
    rc = 0;
done:
    if (rc)
        ts_cli_error(CMD, "%s", err.msg);
    free(toks);
    ts_session_destroy(s);
    ts_engine_destroy(eng);
    return rc;
}

/* ---- --moe-audit ---- */

static void audit_line(void *ctx, const char *line)
{
    (void)ctx;
    printf("%s\n", line);
    fflush(stdout);
}

static int moe_audit(const bench_args *a)
{
    static const int counts[] = {1, 2, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 1000};
    static const int caps[] = {32, 64, 128};
    static const struct {
        uint32_t qtype;
        int64_t k, rows;
        double rtol;
    } types[] = {
        {TS_QTYPE_Q4_K, 2048, 96, TS_TOL_QDOT_RTOL}, {TS_QTYPE_Q6_K, 2048, 80, TS_TOL_QDOT_RTOL},
        {TS_QTYPE_Q8_0, 2048, 72, TS_TOL_QDOT_RTOL}, {TS_QTYPE_Q4_0, 1024, 65, TS_TOL_QDOT_RTOL},
        {TS_QTYPE_F16, 1024, 33, TS_TOL_FDOT_RTOL},
    };
    int threads[MAX_LIST] = {1, 2, 3}, n_threads = 3;
    if (a->th.n > 1 || a->th.v[0] != 0) {
        n_threads = a->th.n;
        for (int i = 0; i < a->th.n; i++)
            threads[i] = (int)a->th.v[i];
    }
    int bad = 0;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        ts_moe_audit_opts o = {.qtype = types[i].qtype, .k = types[i].k, .rows = types[i].rows,
                               .n_expert = 3, .counts = counts, .n_counts = 13, .caps = caps,
                               .n_caps = 3, .threads = threads, .n_threads = n_threads,
                               .atol = TS_TOL_ATOL, .rtol = types[i].rtol, .seed = 0xa0d1 + i,
                               .log = audit_line};
        ts_moe_audit_result r;
        ts_err err = {0};
        double t0 = ts_cli_now_s();
        if (ts_moe_audit(&o, &r, &err) != TS_OK) {
            ts_cli_error(CMD, "moe audit: %s", err.msg);
            return 1;
        }
        int fail = r.n_unwritten + r.n_out_of_tol + r.n_mismatch;
        printf("%s %s: %d problems x %d configs: unwritten %d, out of tol %d, not identical %d, "
               "worst err/bound %.3f (%.1f s)\n", fail ? "FAIL" : "ok",
               ts_qtype_name(types[i].qtype), r.n_problems, r.n_configs / (r.n_problems ? r.n_problems : 1),
               r.n_unwritten, r.n_out_of_tol, r.n_mismatch, r.worst, ts_cli_now_s() - t0);
        bad += fail != 0;
    }
    printf("moe audit: %s\n", bad ? "FAILED" : "all configurations pass");
    return bad ? 1 : 0;
}

static int run_bench(bench_args *a)
{
    if (a->moe_audit)
        return moe_audit(a);
    if (a->attn) {
        ts_bench_attn_opts o = {.kt = a->kt, .vt = a->vt, .reps = a->reps,
                                .n_q = a->pp_given ? a->pp.v : NULL,
                                .n_q_n = a->pp_given ? a->pp.n : 0,
                                .n_kv = a->depth_given ? a->depth.v : NULL,
                                .n_kv_n = a->depth_given ? a->depth.n : 0};
        return ts_bench_attn(&o);
    }
    if (a->sweep_ctx) {
        const char *name =
            strrchr(a->models[0], '/') ? strrchr(a->models[0], '/') + 1 : a->models[0];
        long long ub = a->ub.v[0];
        ts_ctx_sweep_opts o = {.model = a->models[0], .name = name, .from = a->ctx_from,
                               .to = a->ctx_to, .step = a->ctx_step, .pp = a->pp.v[0],
                               .tg = a->tg.v[0], .reps = a->reps, .threads = (int)a->th.v[0],
                               .chunk = ub == -2 ? 0 : ub == 0 ? -1 : (int)ub, .kt = a->kt,
                               .vt = a->vt, .numa = a->numa, .cpu_range = a->cpu_range,
                               .csv = a->sweep_csv, .svg = a->sweep_svg};
        return ts_ctx_sweep_run(&o);
    }
    int first = 1;
    if (a->sweep.n) {
        ts_sweep_point pts[MAX_LIST];
        for (int t = 0; t < a->sweep.n; t++)
            if (bench_threads(a, a->models[0], (int)a->sweep.v[t], &first, &pts[t]))
                return 1;
        if (!strcmp(a->fmt, "json") && !first)
            printf("\n]\n");
        const char *name =
            strrchr(a->models[0], '/') ? strrchr(a->models[0], '/') + 1 : a->models[0];
        return ts_sweep_report(pts, a->sweep.n, name, a->pp.v[0], a->tg.v[0], a->sweep_csv,
                               a->sweep_svg);
    }
    for (int m = 0; m < a->n_models; m++)
        for (int t = 0; t < a->th.n; t++)
            if (bench_threads(a, a->models[m], (int)a->th.v[t], &first, NULL))
                return 1;
    if (!strcmp(a->fmt, "json") && !first)
        printf("\n]\n");
    ts_prof_report(stderr); /* the last test's timed runs */
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    bench_args a;
    int rc = parse(argc, argv, &a);
    if (rc == 0)
        rc = run_bench(&a);
    for (int m = 0; m < a.n_models; m++) /* parse_models' copies */
        free((char *)a.models[m]);
    return rc;
}
