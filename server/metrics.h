/*
 * server/metrics.h: the counters and histograms behind GET /metrics, in the
 * Prometheus text exposition format (version 0.0.4). Names are tessera_*
 * with the unit in the name; the README lists them. The caller serialises
 * access (srv_state.mu); nothing here blocks or allocates but the output.
 */
#ifndef TS_SERVER_METRICS_H
#define TS_SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define SRV_HIST_MAX 24

typedef struct {
    int n;                     /* buckets, excluding +Inf */
    double le[SRV_HIST_MAX];   /* upper bounds, increasing */
    uint64_t count[SRV_HIST_MAX + 1]; /* per bucket (not cumulative); last = +Inf */
    uint64_t total;
    double sum;
} srv_hist;

typedef struct {
    uint64_t requests_total, requests_ok, requests_failed, requests_cancelled;
    uint64_t prompt_tokens, generated_tokens, prefix_hit_tokens;
    uint64_t steps, step_tokens;
    double step_seconds, step_max_seconds; /* all steps; the longest one */
    srv_hist ttft, itl, step_tok, step_time, req_time;
} srv_metrics;

/* Live values read when /metrics is asked for. */
typedef struct {
    int running, waiting, n_seq;
    int64_t pages_used, pages_total;
    double uptime;
    int ready;
} srv_gauges;

void srv_metrics_init(srv_metrics *m, int batch_tokens);
void srv_hist_add(srv_hist *h, double v);
/* The exposition text; malloc'ed, NUL-terminated, or NULL when out of memory. */
char *srv_metrics_format(const srv_metrics *m, const srv_gauges *g);

#endif
