/*
 * tools/bench_ctx.c: `tessera bench --sweep-ctx A:B:S`: prefill and decode
 * speed and memory against the depth of the context (ik_llama.cpp's
 * sweep-bench and ds4-bench shape): for each depth d = A, A + S, .. <= B, the
 * cache is filled to d (untimed, carried on from the previous depth), then
 * ppN (one prefill of N tokens) and tgM (M decode steps) are timed -r times,
 * each rep starting again at depth d (ts_session_truncate: the measured
 * tokens are forgotten, so every rep sees exactly d positions). A hybrid
 * model's recurrent state cannot be rolled back: there each depth gets one
 * rep, tgM starting after the ppN at d + N, and the next depth must lie past
 * d + N + M. Memory per depth: the KV bytes the deepest state holds
 * (ts_session_kv_bytes of d + max(N, M) positions) and the process's resident
 * set right then. Report: a markdown table on stdout, the same rows as CSV,
 * an SVG of three panels (prefill t/s, decode t/s, memory) against depth.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_ctx.h"
#include "bench_sweep.h"
#include "cmds.h"
#include "fileio.h"

#define MIB (1024.0 * 1024.0)

typedef struct {
    long long depth, tg_depth; /* tg's start depth (d, or d + N on a hybrid) */
    double pp, pp_sd, tg, tg_sd;
    double kv_mib, rss_mib;
} ctx_point;

bool ts_ctx_sweep_parse(const char *s, long long *a, long long *b, long long *step)
{
    char buf[96];
    if (!s || strlen(s) >= sizeof(buf))
        return false;
    snprintf(buf, sizeof(buf), "%s", s);
    char *c1 = strchr(buf, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || !c2)
        return false;
    *c1 = *c2 = '\0';
    return ts_cli_parse_i64(buf, 0, 1 << 22, a) && ts_cli_parse_i64(c1 + 1, *a, 1 << 22, b) &&
           ts_cli_parse_i64(c2 + 1, 1, 1 << 22, step) && (*b - *a) / *step < TS_CTX_SWEEP_MAX;
}

/* The resident set now (statm's second field), MiB; 0 when unreadable. */
static double rss_now_mib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lld %lld", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (double)res * 4096.0 / MIB;
}

static void mean_sd(const double *v, long long n, double *mean, double *sd)
{
    double s = 0, s2 = 0;
    for (long long i = 0; i < n; i++)
        s += v[i], s2 += v[i] * v[i];
    *mean = s / (double)n;
    double var = n > 1 ? (s2 - s * *mean) / (double)(n - 1) : 0.0;
    *sd = var > 0 ? __builtin_sqrt(var) : 0.0;
}

/* Prefill toks[from, to) in chunks (untimed). */
static ts_status fill(ts_session *s, const int32_t *toks, long long from, long long to,
                      ts_err *err)
{
    return to > from ? ts_session_prefill(s, toks + from, (int)(to - from), NULL, err) : TS_OK;
}

static int write_csv(const ctx_point *p, int n, const ts_ctx_sweep_opts *o, const char *kvd)
{
    ts_safefile sf;
    FILE *f = ts_bench_open_out(&sf, o->csv, o->model);
    if (!f)
        return 1;
    fprintf(f, "model,threads,kv_type,depth,pp_n,pp_t_s,pp_t_s_sd,tg_n,tg_depth,tg_t_s,tg_t_s_sd,"
               "kv_mib,rss_mib\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "%s,%d,%s,%lld,%lld,%.3f,%.3f,%lld,%lld,%.3f,%.3f,%.2f,%.1f\n", o->name,
                o->threads_used, kvd, p[i].depth, o->pp, p[i].pp, p[i].pp_sd, o->tg,
                p[i].tg_depth, p[i].tg, p[i].tg_sd, p[i].kv_mib, p[i].rss_mib);
    return ts_bench_commit_out(&sf);
}

enum { PW = 340, PH = 240, ML = 56, MT = 36, MB = 44, MR = 16 };

/* One panel at x offset ox: up to two series against depth. */
static void panel(FILE *f, const ctx_point *p, int n, int ox, const char *title, const char *unit,
                  const double *y0s, const double *y1s, const char *c0, const char *c1)
{
    double xmax = (double)p[n - 1].depth, ymax = 0;
    for (int i = 0; i < n; i++) {
        ymax = y0s[i] > ymax ? y0s[i] : ymax;
        if (y1s)
            ymax = y1s[i] > ymax ? y1s[i] : ymax;
    }
    xmax = ts_bench_nice_max(xmax > 0 ? xmax : 1);
    ymax = ts_bench_nice_max(ymax > 0 ? ymax : 1);
    const int x0 = ox + ML, yb = MT + PH, w = PW - ML - MR, h = PH;
#define X(t) (x0 + (double)(t) / xmax * w)
#define Y(v) (yb - (v) / ymax * h)
    fprintf(f, "<text x='%d' y='%d' font-size='14' text-anchor='middle'>%s</text>\n",
            x0 + w / 2, MT - 14, title);
    fprintf(f, "<rect x='%d' y='%d' width='%d' height='%d' fill='none' stroke='#999'/>\n", x0,
            MT, w, h);
    for (int k = 0; k <= 4; k++) {
        double v = ymax * k / 4, t = xmax * k / 4;
        fprintf(f, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#eee'/>\n", x0, Y(v),
                x0 + w, Y(v));
        fprintf(f, "<text x='%d' y='%.1f' font-size='10' text-anchor='end'>%g</text>\n", x0 - 4,
                Y(v) + 3, v);
        fprintf(f, "<text x='%.1f' y='%d' font-size='10' text-anchor='middle'>%g</text>\n", X(t),
                yb + 14, t);
    }
    fprintf(f, "<text x='%d' y='%d' font-size='11' text-anchor='middle'>context depth "
               "(tokens); %s</text>\n", x0 + w / 2, yb + 32, unit);
    for (int s = 0; s < 2; s++) {
        const double *ys = s ? y1s : y0s;
        if (!ys)
            break;
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='2' points='", s ? c1 : c0);
        for (int i = 0; i < n; i++)
            fprintf(f, "%.1f,%.1f ", X(p[i].depth), Y(ys[i]));
        fprintf(f, "'/>\n");
        for (int i = 0; i < n; i++)
            fprintf(f, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'><title>depth %lld: %.4g"
                       "</title></circle>\n",
                    X(p[i].depth), Y(ys[i]), s ? c1 : c0, p[i].depth, ys[i]);
    }
#undef X
#undef Y
}

static int write_svg(const ctx_point *p, int n, const ts_ctx_sweep_opts *o, const char *kvd)
{
    ts_safefile sf;
    FILE *f = ts_bench_open_out(&sf, o->svg, o->model);
    if (!f)
        return 1;
    double pp[TS_CTX_SWEEP_MAX], tg[TS_CTX_SWEEP_MAX], kv[TS_CTX_SWEEP_MAX], rss[TS_CTX_SWEEP_MAX];
    for (int i = 0; i < n; i++)
        pp[i] = p[i].pp, tg[i] = p[i].tg, kv[i] = p[i].kv_mib, rss[i] = p[i].rss_mib;
    const int width = 3 * PW + 20, height = MT + PH + MB + 30;
    char t_pp[64], t_tg[64];
    snprintf(t_pp, sizeof(t_pp), "prefill pp%lld (t/s)", o->pp);
    snprintf(t_tg, sizeof(t_tg), "decode tg%lld (t/s)", o->tg);
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
               "font-family='sans-serif'>\n<rect width='100%%' height='100%%' fill='white'/>\n",
            width, height);
    panel(f, p, n, 0, t_pp, "t/s", pp, NULL, "#1f77b4", NULL);
    panel(f, p, n, PW, t_tg, "t/s", tg, NULL, "#d62728", NULL);
    panel(f, p, n, 2 * PW, "memory (MiB)", "KV green, RSS grey", kv, rss, "#2ca02c", "#7f7f7f");
    fprintf(f, "<text x='10' y='%d' font-size='11'>%s, %d thread(s), KV %s; each point the "
               "mean of %lld rep(s)</text>\n",
            height - 8, o->name, o->threads_used, kvd, o->reps);
    fprintf(f, "</svg>\n");
    return ts_bench_commit_out(&sf);
}

int ts_ctx_sweep_run(ts_ctx_sweep_opts *o)
{
    ts_err err = {0};
    ts_engine *eng = NULL;
    ts_session *s = NULL;
    int32_t *toks = NULL;
    int rc = 1;
    ctx_point pts[TS_CTX_SWEEP_MAX];
    int n = 0;
    const long long n_ctx = o->to + o->pp + o->tg;
    char kvd[16];
    ts_cli_kv_desc(o->kt, o->vt, kvd, sizeof(kvd));
    if (ts_engine_create(&eng, &(ts_engine_opts){.model_path = o->model, .n_threads = o->threads,
                                                 .numa = o->numa, .cpu_range = o->cpu_range},
                         &err) != TS_OK)
        goto done;
    ts_engine_info in;
    ts_engine_get_info(eng, &in);
    o->threads_used = (int)in.n_threads;
    ts_session_opts so = {.n_ctx = (int)n_ctx, .chunk = o->chunk, .kv_type_k = o->kt,
                          .kv_type_v = o->vt};
    if (ts_session_create(&s, eng, &so, &err) != TS_OK)
        goto done;
    toks = malloc((size_t)n_ctx * sizeof(*toks));
    if (!toks) {
        snprintf(err.msg, sizeof(err.msg), "out of memory");
        goto done;
    }
    ts_cli_bench_tokens(toks, n_ctx, in.n_vocab);
    /* Rolling back works on attention-only models; a hybrid gets one rep. */
    if (ts_session_prefill(s, toks, 1, NULL, &err) != TS_OK)
        goto done;
    const bool rollback = ts_session_truncate(s, 0, &err) == TS_OK;
    if (!rollback) {
        ts_session_reset(s);
        fprintf(stderr, "tessera bench: the recurrent state of this model cannot be rolled back: "
                        "one rep per depth, tg%lld after the pp%lld\n", o->tg, o->pp);
    }
    const long long reps = rollback ? o->reps : 1;
    double samples[TS_CTX_SWEEP_REPS];
    printf("| model | threads | KV | depth | pp%lld t/s | tg%lld t/s | KV MiB | RSS MiB |\n"
           "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |\n", o->pp, o->tg);
    fflush(stdout);
    for (long long d = o->from; d <= o->to; d += o->step) {
        const long long pos = ts_session_pos(s);
        if (pos > d) {
            snprintf(err.msg, sizeof(err.msg),
                     "depth %lld: %lld positions are already held (a hybrid model's step must "
                     "exceed pp + tg = %lld)", d, pos, o->pp + o->tg);
            goto done;
        }
        if (fill(s, toks, pos, d, &err) != TS_OK)
            goto done;
        ctx_point *pt = &pts[n];
        *pt = (ctx_point){.depth = d, .tg_depth = rollback ? d : d + o->pp};
        double held = 0;
        if (o->pp) {
            if (rollback && n == 0) { /* warm-up */
                if (fill(s, toks, d, d + o->pp, &err) != TS_OK ||
                    ts_session_truncate(s, (int)d, &err) != TS_OK)
                    goto done;
            }
            for (long long r = 0; r < reps; r++) {
                double t0 = ts_cli_now_s();
                if (fill(s, toks, d, d + o->pp, &err) != TS_OK)
                    goto done;
                samples[r] = (double)o->pp / (ts_cli_now_s() - t0);
                held = rss_now_mib();
                if (rollback && ts_session_truncate(s, (int)d, &err) != TS_OK)
                    goto done;
            }
            mean_sd(samples, reps, &pt->pp, &pt->pp_sd);
        }
        if (o->tg) {
            const long long t_at = ts_session_pos(s);
            for (long long r = 0; r < reps; r++) {
                double t0 = ts_cli_now_s();
                for (long long i = 0; i < o->tg; i++)
                    if (ts_session_decode(s, toks[t_at + i], &err) != TS_OK)
                        goto done;
                samples[r] = (double)o->tg / (ts_cli_now_s() - t0);
                double now = rss_now_mib();
                held = now > held ? now : held;
                if (rollback && ts_session_truncate(s, (int)t_at, &err) != TS_OK)
                    goto done;
            }
            mean_sd(samples, reps, &pt->tg, &pt->tg_sd);
        }
        const long long deepest = rollback ? d + (o->pp > o->tg ? o->pp : o->tg)
                                           : d + o->pp + o->tg;
        pt->kv_mib = (double)ts_session_kv_bytes(s, deepest) / MIB;
        pt->rss_mib = held;
        printf("| %s | %d | %s | %lld | %.2f ± %.2f | %.2f ± %.2f | %.1f | %.1f |\n", o->name,
               o->threads_used, kvd, d, pt->pp, pt->pp_sd, pt->tg, pt->tg_sd, pt->kv_mib,
               pt->rss_mib);
        fflush(stdout);
        n++;
    }
    rc = 0;
    if (o->csv && write_csv(pts, n, o, kvd))
        rc = 1;
    if (o->svg && write_svg(pts, n, o, kvd))
        rc = 1;
    if (pts[0].pp > 0 && n > 1)
        printf("\npp%lld at depth %lld: %.0f%% of depth %lld; tg%lld: %.0f%%\n", o->pp,
               pts[n - 1].depth, 100.0 * pts[n - 1].pp / pts[0].pp, pts[0].depth, o->tg,
               pts[0].tg > 0 ? 100.0 * pts[n - 1].tg / pts[0].tg : 0.0);
done:
    if (rc && err.msg[0])
        ts_cli_error("bench", "%s", err.msg);
    free(toks);
    ts_session_destroy(s);
    ts_engine_destroy(eng);
    return rc;
}
