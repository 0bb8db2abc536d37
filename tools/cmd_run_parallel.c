/*
 * tools/cmd_run_parallel.c: `tessera run --prompts FILE --parallel N`: every
 * non-empty line of FILE is a prompt; up to N run at once on one batch
 * (core/tessera.h ts_batch_run, --batch-tokens budget, --schedule, --chunk),
 * each with its own sampler seeded as a lone `tessera run` would be, so each
 * completion is the one `tessera run -p LINE` gives (batch invariance). The
 * completions print in input order once all are done, "[i] text" each, then
 * one summary line on stderr: prompts, steps, aggregate prefill and decode
 * t/s (each step's time shared out by its prompt and decode tokens), time to
 * first token p50 / max (from the start, so queued prompts include their
 * wait), inter-token latency p50 / p99 / max over every sequence's decode
 * tokens, peak RSS. --kv-size T: the KV pool in positions (default: every
 * sequence's whole context); a prompt that cannot fit the pool is an error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "fileio.h"
#include "run_args.h"

#define CMD "run"
#define MAX_PROMPTS 4096
#define PROMPTS_FILE_MAX ((size_t)64 << 20)

typedef struct {
    const char *text; /* inside the file buffer */
    size_t len;
    int32_t *ids;
    size_t n_ids;
    long long ctx;    /* the context a lone run would size for it */
    long long pages;  /* KV pages its whole run can use: min(ctx, prompt + -n) positions */
    ts_sampler *smp;
    char *out;        /* the completion */
    size_t out_len, out_cap;
    int n_gen, seq;
    bool bare, done;
    double ttft, t_last; /* time to first token; time of the last token */
} prompt_job;

/* Inter-token latencies of every sequence (seconds), for the summary. */
typedef struct {
    double *v;
    size_t n, cap;
} lat_list;

static void lat_add(lat_list *l, double x)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 1024;
        double *p = realloc(l->v, cap * sizeof(double));
        if (!p)
            return; /* a lost sample only thins the statistic */
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = x;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static bool append(prompt_job *j, const char *s, size_t n)
{
    if (j->out_len + n + 1 > j->out_cap) {
        size_t cap = j->out_cap ? 2 * j->out_cap : 256;
        while (cap < j->out_len + n + 1)
            cap *= 2;
        char *p = realloc(j->out, cap);
        if (!p)
            return false;
        j->out = p;
        j->out_cap = cap;
    }
    memcpy(j->out + j->out_len, s, n);
    j->out_len += n;
    j->out[j->out_len] = 0;
    return true;
}

/* Splits the file into prompts (lines; empty ones skipped) and tokenizes them. */
static int load_prompts(ts_engine *eng, const run_args *a, const ts_engine_info *info,
                        char *text, size_t len, prompt_job *jobs, int *n_jobs, ts_err *err)
{
    int n = 0;
    for (char *p = text, *end = text + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (l && p[l - 1] == '\r')
            l--;
        if (l) {
            if (n == MAX_PROMPTS) {
                snprintf(err->msg, sizeof(err->msg), "%s: more than %d prompts", a->prompts,
                         MAX_PROMPTS);
                return 1;
            }
            jobs[n++] = (prompt_job){.text = p, .len = l, .seq = -1};
        }
        p += (nl ? (size_t)(nl - p) + 1 : l);
    }
    if (!n) {
        snprintf(err->msg, sizeof(err->msg), "%s: no prompts (one a line)", a->prompts);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        prompt_job *j = &jobs[i];
        if (ts_engine_tokenize(eng, j->text, j->len, true, NULL, 0, &j->n_ids, err) != TS_OK)
            return 1;
        j->ids = malloc((j->n_ids + 1) * sizeof(int32_t));
        if (!j->ids || ts_engine_tokenize(eng, j->text, j->len, true, j->ids, j->n_ids,
                                          &j->n_ids, err) != TS_OK)
            return 1;
        /* The context a lone run sizes, so both stop alike. */
        const long long ctx = ts_run_ctx(a, info->n_ctx_train, (long long)j->n_ids);
        if (j->n_ids == 0 || (long long)j->n_ids > ctx) {
            snprintf(err->msg, sizeof(err->msg),
                     "prompt %d (line text '%.40s'): %zu tokens, context %lld", i, j->text,
                     j->n_ids, ctx);
            return 1;
        }
        j->ctx = ctx;
        const long long use = (long long)j->n_ids + a->n_predict < ctx
                                  ? (long long)j->n_ids + a->n_predict : ctx;
        j->pages = (use + TS_BATCH_PAGE - 1) / TS_BATCH_PAGE;
        j->bare = j->n_ids == 1 && j->ids[0] == ts_engine_bos(eng);
        if (ts_sampler_create(&j->smp, &a->samp, info->n_vocab, err) != TS_OK)
            return 1;
        for (size_t t = 0; t < j->n_ids; t++)
            ts_sampler_accept(j->smp, j->ids[t]);
    }
    *n_jobs = n;
    return 0;
}

/* A ready sequence: sample its next token as a lone run's loop would. Returns
 * 1 when the job is finished, 0 when a token was pushed, -1 on error. */
static int advance(ts_engine *eng, ts_batch *b, const run_args *a, prompt_job *j, ts_err *err)
{
    const int pos = ts_batch_seq_pos(b, j->seq);
    if (j->n_gen >= a->n_predict || pos >= j->ctx)
        return 1;
    int32_t tok = ts_sampler_sample(j->smp, ts_batch_logits(b, j->seq));
    if (tok < 0) {
        snprintf(err->msg, sizeof(err->msg),
                 "the logits at position %d are not finite (NaN/Inf): the model's weights or "
                 "activations overflow", pos - 1);
        return -1;
    }
    if (ts_engine_is_eog(eng, tok))
        return 1;
    ts_sampler_accept(j->smp, tok);
    char piece[256];
    size_t n = ts_engine_piece(eng, tok, piece, sizeof(piece));
    size_t skip = (j->bare && j->n_gen == 0 && n && piece[0] == ' ') ? 1 : 0;
    if (!append(j, piece + skip, n - skip)) {
        snprintf(err->msg, sizeof(err->msg), "out of memory");
        return -1;
    }
    if (++j->n_gen >= a->n_predict)
        return 1;
    return ts_batch_seq_push(b, j->seq, tok, err) == TS_OK ? 0 : -1;
}

static void summary(const run_args *a, prompt_job *jobs, int n, long steps, double t_pp,
                    double t_tg, long long n_pp, long long n_tg, long long hits, lat_list *itl)
{
    double i50 = 0, i99 = 0, imax = 0;
    if (itl->n) {
        qsort(itl->v, itl->n, sizeof(double), cmp_double);
        i50 = itl->v[itl->n / 2];
        i99 = itl->v[(size_t)((double)(itl->n - 1) * 0.99)];
        imax = itl->v[itl->n - 1];
    }
    double *tt = malloc((size_t)n * sizeof(double));
    double p50 = 0, mx = 0;
    if (tt) {
        for (int i = 0; i < n; i++)
            tt[i] = jobs[i].ttft;
        qsort(tt, (size_t)n, sizeof(double), cmp_double);
        p50 = tt[n / 2];
        mx = tt[n - 1];
        free(tt);
    }
    fprintf(stderr,
            "prompts %d, parallel %lld, steps %ld, prefill %lld tokens %.1f t/s (+%lld from the "
            "prefix cache), decode %lld tokens %.1f t/s, ttft p50 %.1f ms max %.1f ms, itl p50 "
            "%.1f p99 %.1f max %.1f ms, peak RSS %.1f MiB\n",
            n, a->parallel, steps, n_pp, t_pp > 0 ? n_pp / t_pp : 0.0, hits, n_tg,
            t_tg > 0 ? n_tg / t_tg : 0.0, 1e3 * p50, 1e3 * mx, 1e3 * i50, 1e3 * i99, 1e3 * imax,
            ts_cli_peak_rss_mib());
}

int ts_run_parallel(const run_args *a)
{
    ts_err err = {0};
    ts_engine *eng = NULL;
    ts_batch *b = NULL;
    char *text = NULL;
    size_t len = 0;
    int n_jobs = 0, rc = 1;
    prompt_job *jobs = calloc(MAX_PROMPTS, sizeof(*jobs));
    ts_engine_opts eo = {.model_path = a->model, .n_threads = (int)a->threads, .numa = a->numa,
                         .cpu_range = a->cpu_range};
    if (!jobs || ts_engine_create(&eng, &eo, &err) != TS_OK)
        goto done;
    ts_engine_info info;
    ts_engine_get_info(eng, &info);
    if (ts_file_read(a->prompts, "prompts file", PROMPTS_FILE_MAX, &text, &len, &err) != TS_OK ||
        load_prompts(eng, a, &info, text, len, jobs, &n_jobs, &err))
        goto done;
    long long max_ctx = 0;
    for (int i = 0; i < n_jobs; i++)
        max_ctx = jobs[i].ctx > max_ctx ? jobs[i].ctx : max_ctx;
    const int n_seq = (int)(a->parallel < n_jobs ? a->parallel : n_jobs);
    ts_batch_opts bo = {.n_seq = n_seq, .n_ctx = (int)max_ctx, .max_tokens = (int)a->batch_tokens,
                        .chunk = a->chunk == -2 ? 0 : a->chunk == 0 ? (int)a->batch_tokens
                                                                    : (int)a->chunk,
                        .schedule = a->schedule, .kv_type_k = a->kv_k, .kv_type_v = a->kv_v,
                        .kv_size = (int)a->kv_size};
    if (ts_batch_create(&b, eng, &bo, &err) != TS_OK)
        goto done;
    int *job_of = malloc((size_t)n_seq * sizeof(int)), *ready = malloc((size_t)n_seq * sizeof(int));
    if (!job_of || !ready) {
        free(job_of);
        free(ready);
        snprintf(err.msg, sizeof(err.msg), "out of memory");
        goto done;
    }
    /* Admission: a prompt starts only when the pool can hold its whole run
     * (prompt + -n, its context), so running sequences never wait for each
     * other's pages; one that could never fit is an error up front. */
    ts_batch_info bi;
    ts_batch_get_info(b, &bi);
    long long reserved = 0;
    for (int i = 0; i < n_jobs; i++)
        if (jobs[i].pages > bi.pages_total) {
            snprintf(err.msg, sizeof(err.msg),
                     "prompt %d needs up to %lld positions (prompt and -n), more than the "
                     "KV pool's %lld (--kv-size)", i, jobs[i].pages * TS_BATCH_PAGE,
                     (long long)bi.pages_total * TS_BATCH_PAGE);
            free(job_of);
            free(ready);
            goto done;
        }
    const double t0 = ts_cli_now_s();
    double t_pp = 0, t_tg = 0;
    long long n_pp = 0, n_tg = 0;
    long steps = 0;
    int next = 0, finished = 0, fail = 0;
    lat_list itl = {0};
    while (!fail && finished < n_jobs) {
        int seq;
        while (next < n_jobs &&
               reserved + jobs[next].pages <= bi.pages_total &&
               ts_batch_seq_open(b, &seq, NULL) == TS_OK) {
            reserved += jobs[next].pages;
            if (ts_batch_seq_prompt(b, seq, jobs[next].ids, (int)jobs[next].n_ids, NULL, &err) !=
                TS_OK) {
                fail = 1;
                break;
            }
            jobs[next].seq = seq;
            job_of[seq] = next++;
        }
        /* Prompt tokens this step: the sum of the progress deltas. */
        long long before = 0, after = 0, dec = 0;
        for (int s = 0; s < n_seq; s++) {
            int d, t;
            ts_batch_seq_progress(b, s, &d, &t);
            before += d;
        }
        int n_ready = 0;
        double ts = ts_cli_now_s();
        if (fail || ts_batch_run(b, ready, n_seq, &n_ready, &err) != TS_OK) {
            fail = 1;
            break;
        }
        double dt = ts_cli_now_s() - ts;
        steps++;
        for (int s = 0; s < n_seq; s++) {
            int d, t;
            ts_batch_seq_progress(b, s, &d, &t);
            after += d;
        }
        for (int r = 0; r < n_ready; r++)
            dec += jobs[job_of[ready[r]]].n_gen > 0; /* a decode token finished */
        const long long pp = after - before;
        if (pp + dec > 0) {
            t_pp += dt * (double)pp / (double)(pp + dec);
            t_tg += dt * (double)dec / (double)(pp + dec);
        }
        n_pp += pp;
        n_tg += dec;
        const double now = ts_cli_now_s();
        for (int r = 0; r < n_ready && !fail; r++) {
            prompt_job *j = &jobs[job_of[ready[r]]];
            if (j->n_gen == 0 && j->ttft == 0)
                j->ttft = now - t0;
            else
                lat_add(&itl, now - j->t_last);
            j->t_last = now;
            int st = advance(eng, b, a, j, &err);
            if (st < 0)
                fail = 1;
            else if (st == 1) {
                ts_batch_seq_close(b, j->seq);
                reserved -= j->pages;
                j->done = true;
                finished++;
            }
        }
    }
    free(job_of);
    free(ready);
    if (fail) {
        free(itl.v);
        goto done;
    }
    for (int i = 0; i < n_jobs; i++)
        printf("[%d] %s\n", i, jobs[i].out ? jobs[i].out : "");
    fflush(stdout);
    ts_batch_get_info(b, &bi);
    summary(a, jobs, n_jobs, steps, t_pp, t_tg, n_pp, n_tg, bi.prefix_hit_tokens, &itl);
    free(itl.v);
    rc = 0;
done:
    if (rc)
        ts_cli_error(CMD, "%s", err.msg);
    for (int i = 0; i < n_jobs; i++) {
        free(jobs[i].ids);
        free(jobs[i].out);
        ts_sampler_destroy(jobs[i].smp);
    }
    free(jobs);
    free(text);
    ts_batch_destroy(b);
    ts_engine_destroy(eng);
    return rc;
}
