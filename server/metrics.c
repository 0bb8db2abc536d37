/*
 * server/metrics.c: see metrics.h. Histogram buckets: latencies from 1 ms to
 * 60 s in roughly x2.5 steps (a CPU serves first tokens in tens of ms for
 * short prompts and in tens of seconds for 8k prompts on big models), step
 * sizes in powers of two up to the step budget.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double LAT_LE[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                0.5,   1,      2.5,   5,    10,    30,   60};

static void hist_init(srv_hist *h, const double *le, int n)
{
    memset(h, 0, sizeof(*h));
    h->n = n < SRV_HIST_MAX ? n : SRV_HIST_MAX;
    memcpy(h->le, le, (size_t)h->n * sizeof(double));
}

void srv_metrics_init(srv_metrics *m, int batch_tokens)
{
    memset(m, 0, sizeof(*m));
    const int nl = (int)(sizeof(LAT_LE) / sizeof(LAT_LE[0]));
    hist_init(&m->ttft, LAT_LE, nl);
    hist_init(&m->itl, LAT_LE, nl);
    hist_init(&m->step_time, LAT_LE, nl);
    static const double REQ_LE[] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
    hist_init(&m->req_time, REQ_LE, (int)(sizeof(REQ_LE) / sizeof(REQ_LE[0])));
    double tok[SRV_HIST_MAX];
    int n = 0;
    for (double v = 1; n < SRV_HIST_MAX - 1 && v < batch_tokens; v *= 2)
        tok[n++] = v;
    tok[n++] = batch_tokens > 0 ? batch_tokens : 1;
    hist_init(&m->step_tok, tok, n);
}

void srv_hist_add(srv_hist *h, double v)
{
    int i = 0;
    while (i < h->n && v > h->le[i])
        i++;
    h->count[i]++;
    h->total++;
    h->sum += v;
}

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void out(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(sbuf *b, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !b->oom; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = 2 * b->cap + (size_t)n + 1;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
}

static void metric(sbuf *b, const char *name, const char *type, const char *help, double v)
{
    out(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

static void hist(sbuf *b, const char *name, const char *help, const srv_hist *h)
{
    out(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < h->n; i++) {
        cum += h->count[i];
        out(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->le[i], (unsigned long long)cum);
    }
    cum += h->count[h->n];
    out(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.17g\n%s_count %llu\n", name,
        (unsigned long long)cum, name, h->sum, name, (unsigned long long)h->total);
}

char *srv_metrics_format(const srv_metrics *m, const srv_gauges *g)
{
    sbuf b = {.cap = 8192};
    b.s = malloc(b.cap);
    if (!b.s)
        return NULL;
    b.s[0] = 0;
    metric(&b, "tessera_ready", "gauge", "1 once the model is loaded", g->ready);
    metric(&b, "tessera_uptime_seconds", "gauge", "seconds since the server started", g->uptime);
    metric(&b, "tessera_requests_running", "gauge", "requests holding a sequence", g->running);
    metric(&b, "tessera_requests_waiting", "gauge", "requests queued for a sequence", g->waiting);
    metric(&b, "tessera_sequences", "gauge", "sequences of the batch (--parallel)", g->n_seq);
    metric(&b, "tessera_kv_pages_used", "gauge", "KV pool pages in use or cached",
           (double)g->pages_used);
    metric(&b, "tessera_kv_pages_total", "gauge", "KV pool pages (64 positions each)",
           (double)g->pages_total);
    metric(&b, "tessera_requests_total", "counter", "completion requests accepted",
           (double)m->requests_total);
    metric(&b, "tessera_requests_success_total", "counter", "completion requests finished",
           (double)m->requests_ok);
    metric(&b, "tessera_requests_failed_total", "counter", "requests ended by an error",
           (double)m->requests_failed);
    metric(&b, "tessera_requests_cancelled_total", "counter",
           "requests whose client disconnected", (double)m->requests_cancelled);
    metric(&b, "tessera_prompt_tokens_total", "counter", "prompt tokens processed",
           (double)m->prompt_tokens);
    metric(&b, "tessera_prefix_cache_hit_tokens_total", "counter",
           "prompt tokens served from cached KV pages", (double)m->prefix_hit_tokens);
    metric(&b, "tessera_generated_tokens_total", "counter", "tokens generated",
           (double)m->generated_tokens);
    metric(&b, "tessera_steps_total", "counter", "forward passes (steps) run", (double)m->steps);
    metric(&b, "tessera_step_tokens_total", "counter", "tokens run in all steps",
           (double)m->step_tokens);
    metric(&b, "tessera_step_seconds_total", "counter", "seconds spent in steps",
           m->step_seconds);
    metric(&b, "tessera_step_max_seconds", "gauge", "the longest step since start",
           m->step_max_seconds);
    hist(&b, "tessera_time_to_first_token_seconds", "arrival to first generated token",
         &m->ttft);
    hist(&b, "tessera_inter_token_latency_seconds", "gap between a request's tokens", &m->itl);
    hist(&b, "tessera_step_tokens", "tokens per step", &m->step_tok);
    hist(&b, "tessera_step_duration_seconds", "time of one step", &m->step_time);
    hist(&b, "tessera_request_duration_seconds", "arrival to the last token", &m->req_time);
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
