/*
 * tools/bench_sweep.c: the --sweep report of `tessera bench`: a markdown table,
 * a CSV file and a hand-written SVG (three panels: prefill t/s, decode t/s,
 * parallel efficiency, each against threads, with the ideal linear scaling
 * dashed). No library; the SVG is plain text any browser renders.
 */
#include "bench_sweep.h"

#include <stdio.h>
#include <string.h>

#include "cmds.h"
#include "fileio.h"

static double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

/* The report files go through ts_safefile: an old report is replaced whole or
 * not at all, and the model is never overwritten by a misplaced path. */
FILE *ts_bench_open_out(ts_safefile *sf, const char *path, const char *model)
{
    const char *const inputs[] = {model, NULL};
    ts_err err = {0};
    if (ts_safefile_open(sf, path, inputs, &err) != TS_OK) {
        ts_cli_error("bench", "%s", err.msg);
        return NULL;
    }
    return sf->f;
}

int ts_bench_commit_out(ts_safefile *sf)
{
    ts_err err = {0};
    if (ts_safefile_commit(sf, &err) != TS_OK) {
        ts_cli_error("bench", "%s", err.msg);
        return 1;
    }
    return 0;
}

/* Speedup and efficiency of point i for metric m (0 = pp, 1 = tg). */
static void scale(const ts_sweep_point *pts, int i, int m, double *speedup, double *eff)
{
    double v = m ? pts[i].tg : pts[i].pp, v0 = m ? pts[0].tg : pts[0].pp;
    *speedup = ratio(v, v0);
    *eff = ratio(*speedup, ratio(pts[i].threads, pts[0].threads));
}

static int write_csv(const ts_sweep_point *pts, int n, const char *model, long long pp_n,
                     long long tg_n, const char *path)
{
    ts_safefile sf;
    FILE *f = ts_bench_open_out(&sf, path, model);
    if (!f)
        return 1;
    fprintf(f, "model,threads,numa,nodes,pp_n,pp_t_s,pp_t_s_sd,pp_speedup,pp_efficiency,"
               "tg_n,tg_t_s,tg_t_s_sd,tg_speedup,tg_efficiency\n");
    for (int i = 0; i < n; i++) {
        double ps, pe, ts, te;
        scale(pts, i, 0, &ps, &pe);
        scale(pts, i, 1, &ts, &te);
        fprintf(f, "%s,%u,%s,%u,%lld,%.3f,%.3f,%.4f,%.4f,%lld,%.3f,%.3f,%.4f,%.4f\n", model,
                pts[i].threads, ts_numa_name(pts[i].numa), pts[i].n_nodes, pp_n, pts[i].pp,
                pts[i].pp_sd, ps, pe, tg_n, pts[i].tg, pts[i].tg_sd, ts, te);
    }
    return ts_bench_commit_out(&sf);
}

double ts_bench_nice_max(double v)
{
    double p = 1e-6;
    while (p * 10 <= v)
        p *= 10;
    for (int k = 0; k < 3; k++) {
        double c = p * (k == 0 ? 1 : k == 1 ? 2 : 5);
        if (c >= v)
            return c;
    }
    return p * 10;
}

enum { PW = 320, PH = 240, ML = 56, MT = 36, MB = 44, MR = 16 };

/* One panel at x offset ox: metric m (0 pp, 1 tg) in t/s, or efficiency (m = 2). */
static void panel(FILE *f, const ts_sweep_point *pts, int n, int ox, int m, const char *title,
                  bool with_tg)
{
    unsigned tmax = 1;
    double ymax = 0;
    for (int i = 0; i < n; i++) {
        tmax = pts[i].threads > tmax ? pts[i].threads : tmax;
        double sp, e;
        scale(pts, i, m == 2 ? 0 : m, &sp, &e);
        double v = m == 2 ? e : (m ? pts[i].tg : pts[i].pp);
        if (m == 2 && with_tg) {
            scale(pts, i, 1, &sp, &e);
            v = e > v ? e : v;
        }
        ymax = v > ymax ? v : ymax;
    }
    /* ideal line: linear from the first point (t/s) or 1.0 (efficiency) */
    double ideal_end = m == 2 ? 1.0
                              : ratio((m ? pts[0].tg : pts[0].pp) * tmax, pts[0].threads);
    ymax = ts_bench_nice_max(ideal_end > ymax ? ideal_end : (ymax > 0 ? ymax : 1));
    const int x0 = ox + ML, y0 = MT + PH, w = PW - ML - MR, h = PH;
#define X(t) (x0 + (double)(t) / tmax * w)
#define Y(v) (y0 - (v) / ymax * h)
    fprintf(f, "<text x='%d' y='%d' font-size='14' text-anchor='middle'>%s</text>\n",
            x0 + w / 2, MT - 14, title);
    fprintf(f, "<rect x='%d' y='%d' width='%d' height='%d' fill='none' stroke='#999'/>\n", x0,
            MT, w, h);
    for (int k = 0; k <= 4; k++) {
        double v = ymax * k / 4;
        fprintf(f, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#eee'/>\n", x0, Y(v),
                x0 + w, Y(v));
        fprintf(f, "<text x='%d' y='%.1f' font-size='10' text-anchor='end'>%g</text>\n", x0 - 4,
                Y(v) + 3, v);
    }
    for (int i = 0; i < n; i++)
        fprintf(f, "<text x='%.1f' y='%d' font-size='10' text-anchor='middle'>%u</text>\n",
                X(pts[i].threads), y0 + 14, pts[i].threads);
    fprintf(f, "<text x='%d' y='%d' font-size='11' text-anchor='middle'>threads</text>\n",
            x0 + w / 2, y0 + 32);
    fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#888' "
               "stroke-dasharray='4 3'/>\n",
            m == 2 ? X(0) : X(pts[0].threads),
            m == 2 ? Y(1.0) : Y(m ? pts[0].tg : pts[0].pp), X(tmax), Y(ideal_end));
    static const char *color[2] = {"#1f77b4", "#d62728"};
    for (int s = 0; s < 2; s++) {
        int metric = m == 2 ? s : m;
        if ((m != 2 || !with_tg) && s == 1)
            break; /* one series, or no decode test (-n 0) */
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='2' points='",
                color[metric]);
        for (int i = 0; i < n; i++) {
            double sp, e;
            scale(pts, i, metric, &sp, &e);
            double v = m == 2 ? e : (metric ? pts[i].tg : pts[i].pp);
            fprintf(f, "%.1f,%.1f ", X(pts[i].threads), Y(v));
        }
        fprintf(f, "'/>\n");
        for (int i = 0; i < n; i++) {
            double sp, e;
            scale(pts, i, metric, &sp, &e);
            double v = m == 2 ? e : (metric ? pts[i].tg : pts[i].pp);
            fprintf(f, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'><title>%u threads: %.3g"
                       "</title></circle>\n",
                    X(pts[i].threads), Y(v), color[metric], pts[i].threads, v);
        }
    }
#undef X
#undef Y
}

static int write_svg(const ts_sweep_point *pts, int n, const char *model, long long pp_n,
                     long long tg_n, const char *path)
{
    ts_safefile sf;
    FILE *f = ts_bench_open_out(&sf, path, model);
    if (!f)
        return 1;
    const bool with_tg = tg_n > 0;
    const int n_panels = with_tg ? 3 : 2;
    int width = n_panels * PW + 20, height = MT + PH + MB + 30;
    char t_pp[64], t_tg[64];
    snprintf(t_pp, sizeof(t_pp), "prefill pp%lld (t/s)", pp_n);
    snprintf(t_tg, sizeof(t_tg), "decode tg%lld (t/s)", tg_n);
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
               "font-family='sans-serif'>\n<rect width='100%%' height='100%%' fill='white'/>\n",
            width, height);
    panel(f, pts, n, 0, 0, t_pp, with_tg);
    if (with_tg)
        panel(f, pts, n, PW, 1, t_tg, with_tg);
    panel(f, pts, n, (n_panels - 1) * PW, 2, "parallel efficiency", with_tg);
    fprintf(f, "<text x='10' y='%d' font-size='11'>%s, numa %s, %u node(s); dashed: linear "
               "scaling from %u thread(s); blue: prefill%s</text>\n",
            height - 8, model, ts_numa_name(pts[0].numa), pts[0].n_nodes, pts[0].threads,
            with_tg ? ", red: decode" : "");
    fprintf(f, "</svg>\n");
    return ts_bench_commit_out(&sf);
}

int ts_sweep_report(const ts_sweep_point *pts, int n, const char *model, long long pp_n,
                    long long tg_n, const char *csv, const char *svg)
{
    printf("\nthread scaling (%s, numa %s, %u node(s); efficiency vs %u thread(s))\n\n", model,
           ts_numa_name(pts[0].numa), pts[0].n_nodes, pts[0].threads);
    if (tg_n > 0)
        printf("| threads | pp%lld t/s | speedup | efficiency | tg%lld t/s | speedup | "
               "efficiency |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
               pp_n, tg_n);
    else
        printf("| threads | pp%lld t/s | speedup | efficiency |\n| ---: | ---: | ---: | ---: |\n",
               pp_n);
    for (int i = 0; i < n; i++) {
        double ps, pe, ts, te;
        scale(pts, i, 0, &ps, &pe);
        scale(pts, i, 1, &ts, &te);
        printf("| %u | %.2f ± %.2f | %.2f | %.0f%% |", pts[i].threads, pts[i].pp, pts[i].pp_sd, ps,
               100 * pe);
        if (tg_n > 0)
            printf(" %.2f ± %.2f | %.2f | %.0f%% |", pts[i].tg, pts[i].tg_sd, ts, 100 * te);
        printf("\n");
    }
    fflush(stdout);
    if (csv && write_csv(pts, n, model, pp_n, tg_n, csv))
        return 1;
    if (svg && write_svg(pts, n, model, pp_n, tg_n, svg))
        return 1;
    return 0;
}
