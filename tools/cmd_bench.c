/*
 * tools/cmd_bench.c: `tessera bench`: llama-bench's tests and columns.
 *   -m M [-p 512,2048] [-n 128] [-t 1,2] [-r 5] [-o md|csv|json] [--chunk C]
 * pp<N>: prefill N random tokens into an empty cache (one timed ts_session_prefill).
 * tg<N>: decode N random tokens one at a time from an empty cache.
 * Each test runs once untimed (warm-up), then -r times; t/s is mean +- sd.
 * Peak RSS of the process is reported with each row.
 * --numa MODE / --cpu-range A-B: weight placement and CPUs (tessera.h); the
 * bytes placed per node go to stderr, one line per engine.
 * --sweep 1,2,4,... [--sweep-csv F] [--sweep-svg F]: thread scaling of the
 * first -p and -n test: a table of t/s and parallel efficiency (relative to
 * the first thread count) on stdout, the same as CSV, and an SVG plot
 * (tools/bench_sweep.c).
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

#include "bench_sweep.h"
#include "cmds.h"
#include "moe.h"
#include "prof.h"
#include "tessera.h"
#include "../quant/quant.h"
#include "../tests/tolerances.h"

#define CMD "bench"
#define MAX_LIST 16
#define MAX_REPS 1000 /* -r limit */

typedef struct {
    long long v[MAX_LIST];
    int n;
} list;

static int usage(const char *msg)
{
    ts_cli_error(CMD, "%s (usage: tessera bench -m MODEL [-p 512,2048] [-n 128] [-t 1,2] [-r 5] "
                 "[-o md|csv|json] [--chunk C] [--numa MODE] [--cpu-range A-B] "
                 "[--sweep 1,2,4 [--sweep-csv F] [--sweep-svg F]] | tessera bench --moe-audit [-t 1,2,3])", msg);
    return 2;
}

static bool parse_list(const char *s, long long lo, long long hi, list *out)
{
    char buf[256];
    if (!s || strlen(s) >= sizeof(buf))
        return false;
    strcpy(buf, s);
    out->n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (out->n == MAX_LIST || !ts_cli_parse_i64(tok, lo, hi, &out->v[out->n]))
            return false;
        out->n++;
    }
    return out->n > 0;
}

/* One timed run; returns seconds or < 0 on error. */
static double run_once(ts_session *s, const int32_t *toks, long long n, bool pp, ts_err *err)
{
    ts_session_reset(s);
    double t0 = ts_cli_now_s();
    if (pp) {
        if (ts_session_prefill(s, toks, (int)n, NULL, err) != TS_OK)
            return -1.0;
    } else {
        for (long long i = 0; i < n; i++)
            if (ts_session_decode(s, toks[i], err) != TS_OK)
                return -1.0;
    }
    return ts_cli_now_s() - t0;
}

typedef struct {
    const char *model, *fmt;
    list pp, tg, th;
    long long reps, chunk;
    bool moe_audit;
    int numa;
    const char *cpu_range, *sweep_csv, *sweep_svg;
    list sweep;
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

/* samples: the n per-run t/s in run order (json lists them, as llama-bench's
 * samples_ts); med: their median. */
static void print_row(const bench_args *a, const char *name, const ts_engine_info *in,
                      const char *test, double mean, double sd, double med, const double *samples,
                      long long n, double peak_core, int first)
{
    double size_mib = (double)in->n_bytes / (1024.0 * 1024.0);
    double params_m = (double)in->n_params / 1e6;
    double g, pct;
    gops(in, mean, peak_core, &g, &pct);
    if (!strcmp(a->fmt, "csv")) {
        if (first)
            printf("model,size_mib,params_m,backend,threads,test,t_s,t_s_sd,gops,pct_peak,"
                   "peak_rss_mib,t_s_median\n");
        printf("%s,%.2f,%.2f,CPU,%u,%s,%.2f,%.2f,%.1f,%.1f,%.1f,%.2f\n", name, size_mib,
               params_m, in->n_threads, test, mean, sd, g, pct, ts_cli_peak_rss_mib(), med);
    } else if (!strcmp(a->fmt, "json")) {
        printf("%s{\"model\": \"%s\", \"size_mib\": %.2f, \"params_m\": %.2f, \"backend\": \"CPU\", "
               "\"threads\": %u, \"test\": \"%s\", \"t_s\": %.2f, \"t_s_sd\": %.2f, "
               "\"gops\": %.1f, \"pct_peak\": %.1f, \"peak_rss_mib\": %.1f, "
               "\"t_s_median\": %.2f, \"samples_ts\": [",
               first ? "[\n  " : ",\n  ", name, size_mib, params_m, in->n_threads, test, mean, sd,
               g, pct, ts_cli_peak_rss_mib(), med);
        for (long long i = 0; i < n; i++)
            printf("%s%.2f", i ? ", " : "", samples[i]);
        printf("]}");
    } else {
        if (first) {
            printf("| model | size | params | backend | threads | test | t/s | median t/s "
                   "| GOP/s | %% peak | peak RSS |\n");
            printf("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
                   "|\n");
        }
        printf("| %s %s | %.2f MiB | %.2f M | CPU | %u | %s | %.2f ± %.2f | %.2f | %.1f | "
               "%.1f%% | %.1f MiB |\n",
               in->arch, name, size_mib, params_m, in->n_threads, test, mean, sd, med, g, pct,
               ts_cli_peak_rss_mib());
    }
    fflush(stdout);
}

static int parse(int argc, char **argv, bench_args *a)
{
    *a = (bench_args){.fmt = "md", .pp = {{512}, 1}, .tg = {{128}, 1}, .th = {{0}, 1},
                      .reps = 5, .chunk = -2};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = v != NULL;
        if (!strcmp(o, "--moe-audit")) {
            a->moe_audit = true;
            continue;
        }
        if (!strcmp(o, "-m")) a->model = v;
        else if (!strcmp(o, "-p")) ok = ok && parse_list(v, 0, 1 << 20, &a->pp);
        else if (!strcmp(o, "-n")) ok = ok && parse_list(v, 0, 1 << 20, &a->tg);
        else if (!strcmp(o, "-t")) ok = ok && parse_list(v, 1, 1024, &a->th);
        else if (!strcmp(o, "--sweep")) ok = ok && parse_list(v, 1, 1024, &a->sweep);
        else if (!strcmp(o, "--sweep-csv")) a->sweep_csv = v;
        else if (!strcmp(o, "--sweep-svg")) a->sweep_svg = v;
        else if (!strcmp(o, "--cpu-range")) a->cpu_range = v;
        else if (!strcmp(o, "--numa")) ok = ok && (a->numa = ts_numa_parse(v)) >= 0;
        else if (!strcmp(o, "-r")) ok = ok && ts_cli_parse_i64(v, 1, MAX_REPS, &a->reps);
        else if (!strcmp(o, "--chunk")) ok = ok && ts_cli_parse_i64(v, 0, 1 << 24, &a->chunk);
        else if (!strcmp(o, "-o")) {
            ok = ok && (!strcmp(v, "md") || !strcmp(v, "csv") || !strcmp(v, "json"));
            a->fmt = v;
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
    return a->model || a->moe_audit ? 0 : usage("-m MODEL is required");
}

/* Runs every test at one thread count; returns 0 or 1 (error printed).
 * pt: NULL, or receives the first pp and tg results (--sweep). */
static int bench_threads(const bench_args *a, int threads, int *first, ts_sweep_point *pt)
{
    ts_err err = {0};
    ts_engine *eng = NULL;
    ts_session *s = NULL;
    int32_t *toks = NULL;
    int rc = 1;
    const char *name = strrchr(a->model, '/') ? strrchr(a->model, '/') + 1 : a->model;
    const double t_load = ts_cli_now_s();
    if (ts_engine_create(&eng, &(ts_engine_opts){.model_path = a->model, .n_threads = threads,
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
    for (int i = 0; i < a->pp.n; i++) max_n = a->pp.v[i] > max_n ? a->pp.v[i] : max_n;
    for (int i = 0; i < a->tg.n; i++) max_n = a->tg.v[i] > max_n ? a->tg.v[i] : max_n;
    ts_session_opts so = {.n_ctx = (int)max_n,
                          .chunk = a->chunk == -2 ? 0 : (a->chunk == 0 ? -1 : (int)a->chunk)};
    toks = malloc((size_t)max_n * sizeof(*toks));
    if (!toks || ts_session_create(&s, eng, &so, &err) != TS_OK)
        goto done;
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    for (long long i = 0; i < max_n; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((rng >> 33) % (uint64_t)in.n_vocab);
    }
    double samples[MAX_REPS];
    for (int pass = 0; pass < 2; pass++) {
        const list *l = pass ? &a->tg : &a->pp;
        for (int i = 0; i < l->n; i++) {
            long long n = l->v[i];
            if (n == 0)
                continue;
            double sum = 0.0, sum2 = 0.0;
            if (run_once(s, toks, n, !pass, &err) < 0) /* warm-up */
                goto done;
            ts_prof_reset(); /* TESSERA_PROFILE: the timed runs only */
            for (long long r = 0; r < a->reps; r++) {
                double dt = run_once(s, toks, n, !pass, &err);
                if (dt < 0)
                    goto done;
                double tps = (double)n / dt;
                samples[r] = tps;
                sum += tps;
                sum2 += tps * tps;
            }
            double mean = sum / (double)a->reps;
            double var = a->reps > 1 ? (sum2 - sum * mean) / (double)(a->reps - 1) : 0.0;
            double sorted[MAX_REPS];
            memcpy(sorted, samples, (size_t)a->reps * sizeof(*sorted));
            char test[32];
            snprintf(test, sizeof(test), "%s%lld", pass ? "tg" : "pp", n);
            print_row(a, name, &in, test, mean, var > 0 ? sqrt(var) : 0.0,
                      median(sorted, a->reps), samples, a->reps, peak_core(), *first);
            *first = 0;
            if (pt && i == 0) {
                double *m = pass ? &pt->tg : &pt->pp, *sd = pass ? &pt->tg_sd : &pt->pp_sd;
                *m = mean;
                *sd = var > 0 ? sqrt(var) : 0.0;
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

int cmd_bench(int argc, char **argv)
{
    bench_args a;
    int rc = parse(argc, argv, &a);
    if (rc)
        return rc;
    if (a.moe_audit)
        return moe_audit(&a);

    int first = 1;
    if (a.sweep.n) {
        ts_sweep_point pts[MAX_LIST];
        for (int t = 0; t < a.sweep.n; t++)
            if (bench_threads(&a, (int)a.sweep.v[t], &first, &pts[t]))
                return 1;
        if (!strcmp(a.fmt, "json") && !first)
            printf("\n]\n");
        const char *name = strrchr(a.model, '/') ? strrchr(a.model, '/') + 1 : a.model;
        return ts_sweep_report(pts, a.sweep.n, name, a.pp.v[0], a.tg.v[0], a.sweep_csv,
                               a.sweep_svg);
    }
    for (int t = 0; t < a.th.n; t++)
        if (bench_threads(&a, (int)a.th.v[t], &first, NULL))
            return 1;
    if (!strcmp(a.fmt, "json") && !first)
        printf("\n]\n");
    ts_prof_report(stderr); /* the last test's timed runs */
    return 0;
}
