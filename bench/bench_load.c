/*
 * bench/bench_load.c: a streaming load driver for OpenAI-compatible HTTP servers
 * (tessera serve and llama.cpp's llama-server). Needs only libc, libcurl and cJSON.
 *
 * Every request is POST /v1/completions (or /v1/chat/completions with --chat) with
 * "stream": true and stream_options.include_usage; the SSE stream is parsed as it
 * arrives. Per request it records the send time, the first content-bearing event
 * (TTFT), every later content event (inter-token latency = gap between consecutive
 * content events), finish_reason, usage/timings token counts, HTTP status and errors.
 * Completion prompts are token-id arrays from a seeded PRNG, so their length is exact
 * on both servers; chat prompts are pseudo-words, so theirs is only approximate.
 *
 * Scenarios:
 *   load  (default): --clients N in flight; closed loop (next request as soon as one
 *         ends) or --rate R open-loop Poisson arrivals; --disconnect-frac F aborts
 *         that share of requests mid-stream (counted apart, not errors).
 *   stall: "a short request arriving while a long prompt prefills": K co-tenant streams
 *         decode, one long prompt is sent, a short probe follows --probe-delay-ms later;
 *         /health and /metrics are polled throughout. Reports the long TTFT (its prefill),
 *         the probe TTFT, and the co-tenants' worst inter-token gap during the prefill.
 *
 * Examples:
 *   bench_load --url http://127.0.0.1:8080 --clients 8 --requests 200
 *   bench_load --url http://127.0.0.1:8080 --rate 20 --requests 100 --disconnect-frac 0.2
 *   bench_load --url http://127.0.0.1:8080 --scenario stall --clients 4 --long-tokens 8192
 *   bench_load --url ... --duration 3600 --rate 2 --server-pid 1234 --scrape-metrics
 * Output: a human-readable block, then one line "RESULT key=value ..." (--json FILE: the
 * same keys as a JSON object). Exit 0 if it ran, 1 if every request failed, 2 on usage.
 * Not here: tokenizers (chat lengths are approximate), TLS options, request replay.
 */
#include <cjson/cJSON.h>
#include <curl/curl.h>

#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_ERRS 8   /* distinct error messages kept for the report */
#define MAX_KV 80    /* keys of the RESULT line */
#define POLL_TMO_S 5 /* /health and /metrics polls: a stuck one is a finding, not a hang */

enum { SC_LOAD, SC_STALL };
enum { K_LOAD, K_COT, K_LONG, K_PROBE, K_HEALTH, K_METRICS };
enum { OUT_OK, OUT_ERR, OUT_DISC, OUT_CUT };

typedef struct {
    const char *url, *model, *api_key, *json_path;
    bool chat, ignore_eos, has_seed, scrape, verbose, poll;
    int tok_lo, tok_hi, short_lo, short_hi, long_lo, long_hi;
    int max_tokens, cot_tokens, clients, scenario, probe_delay_ms, metrics_interval_ms;
    long long requests, seed, server_pid;
    unsigned long long prompt_seed;
    double long_frac, temperature, rate, duration, disconnect_frac, timeout_s;
} opts;

/* ---- small utilities ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die_oom(void)
{
    fprintf(stderr, "bench_load: out of memory\n");
    exit(1);
}

typedef struct {
    double *v;
    size_t n, cap;
} dvec;

static void dv_push(dvec *d, double x)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 64;
        double *p = realloc(d->v, cap * sizeof(*p));
        if (!p)
            die_oom();
        d->v = p;
        d->cap = cap;
    }
    d->v[d->n++] = x;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of v (sorted in place); NAN when empty. */
static double pctl(dvec *d, double p)
{
    if (!d->n)
        return NAN;
    qsort(d->v, d->n, sizeof(double), cmp_dbl);
    size_t rank = (size_t)ceil(p / 100.0 * (double)d->n);
    if (rank < 1)
        rank = 1;
    return d->v[(rank > d->n ? d->n : rank) - 1];
}

static double dv_max(const dvec *d)
{
    double m = NAN;
    for (size_t i = 0; i < d->n; i++)
        if (isnan(m) || d->v[i] > m)
            m = d->v[i];
    return m;
}

/* Bytes appended to a growable buffer, kept NUL-terminated. */
static void buf_add(char **b, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 1024;
        while (c < *len + n + 1)
            c *= 2;
        char *q = realloc(*b, c);
        if (!q)
            die_oom();
        *b = q;
        *cap = c;
    }
    memcpy(*b + *len, p, n);
    *len += n;
    (*b)[*len] = 0;
}

/* splitmix64: small, seedable, and good enough for prompt ids and arrival times. */
typedef struct {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *g)
{
    uint64_t z = (g->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_unit(rng *g) /* [0, 1) */
{
    return (double)(rng_next(g) >> 11) * 0x1.0p-53;
}

static int rng_int(rng *g, int lo, int hi) /* [lo, hi] */
{
    return lo + (int)(rng_next(g) % (uint64_t)(hi - lo + 1));
}

/* ---- one request (or poll) in flight ---- */

typedef struct {
    int kind, id, prompt_n;
    CURL *h;
    struct curl_slist *hdr;
    char *body;
    char errbuf[CURL_ERROR_SIZE];
    double t_send, t_end, t_fin_ev; /* t_fin_ev: the event with finish_reason */
    dvec ev;                                 /* times of the content events */
    long status, usage_ct, usage_pt, timing_pn; /* -1: not given */
    char finish[24], err[320];
    bool got_done, stream_err, abort_now;
    double abort_at; /* time-based disconnect (0: none) */
    int abort_after; /* event-based disconnect (0: none) */
    int outcome;
    char *buf, *data; /* undelivered stream bytes; the current event's data field */
    size_t len, cap, dlen, dcap;
    bool has_data;
} req;

static bool nonempty_str(const cJSON *o, const char *key)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(s) && s->valuestring[0];
}

static long num_field(const cJSON *o, const char *key)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(n) ? (long)n->valuedouble : -1;
}

/* One SSE event's data. A content event is a choice with non-empty text (completions)
 * or delta.content / delta.reasoning_content (chat); the role chunk and the finish
 * chunk carry none. usage and timings, when present, give the true token count. */
static void on_event(req *r, const char *d, size_t n, double t)
{
    if (n == 6 && !memcmp(d, "[DONE]", 6)) {
        r->got_done = true;
        return;
    }
    cJSON *j = cJSON_ParseWithLength(d, n);
    if (!j) {
        r->stream_err = true;
        snprintf(r->err, sizeof(r->err), "unparsable event: %.60s", d);
        return;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (e) {
        const cJSON *m = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "message") : e;
        r->stream_err = true;
        snprintf(r->err, sizeof(r->err), "stream error: %.150s",
                 cJSON_IsString(m) ? m->valuestring : "(no message)");
    }
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(j, "choices");
    const cJSON *c0 = cJSON_IsArray(ch) ? cJSON_GetArrayItem(ch, 0) : NULL;
    if (cJSON_IsObject(c0)) {
        const cJSON *delta = cJSON_GetObjectItemCaseSensitive(c0, "delta");
        const bool content = nonempty_str(c0, "text") ||
                             (cJSON_IsObject(delta) && (nonempty_str(delta, "content") ||
                                                        nonempty_str(delta, "reasoning_content")));
        if (content && !r->abort_now) { /* past a planned disconnect only the end is read */
            dv_push(&r->ev, t);
            if (r->abort_after > 0 && (int)r->ev.n >= r->abort_after)
                r->abort_now = true;
        }
        const cJSON *fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
        if (cJSON_IsString(fr)) {
            snprintf(r->finish, sizeof(r->finish), "%s", fr->valuestring);
            r->t_fin_ev = t;
        }
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
    if (cJSON_IsObject(u)) {
        r->usage_ct = num_field(u, "completion_tokens");
        r->usage_pt = num_field(u, "prompt_tokens");
    }
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(j, "timings");
    if (cJSON_IsObject(tm))
        r->timing_pn = num_field(tm, "predicted_n");
    cJSON_Delete(j);
}

/* One SSE line (without its newline). A blank line dispatches the event; data lines
 * accumulate (joined by '\n'); llama-server's older "error:" field is an error. */
static void sse_line(req *r, const char *l, size_t n, double t)
{
    if (n == 0) {
        if (r->has_data)
            on_event(r, r->data, r->dlen, t);
        r->dlen = 0;
        r->has_data = false;
        return;
    }
    if (l[0] == ':')
        return;
    const char *colon = memchr(l, ':', n);
    size_t klen = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    if (v < l + n && *v == ' ')
        v++;
    size_t vlen = (size_t)(l + n - v);
    if (klen == 4 && !memcmp(l, "data", 4)) {
        if (r->has_data)
            buf_add(&r->data, &r->dlen, &r->dcap, "\n", 1);
        buf_add(&r->data, &r->dlen, &r->dcap, v, vlen);
        r->has_data = true;
    } else if (klen == 5 && !memcmp(l, "error", 5)) {
        r->stream_err = true;
        snprintf(r->err, sizeof(r->err), "stream error: %.*s", (int)(vlen < 150 ? vlen : 150), v);
    }
}

/* Stream bytes as curl hands them over: an event may be split across calls, so only
 * complete lines are consumed and the tail waits for the next call. */
static void sse_feed(req *r, const char *p, size_t n, double t)
{
    buf_add(&r->buf, &r->len, &r->cap, p, n);
    size_t start = 0;
    for (;;) {
        const char *nl = memchr(r->buf + start, '\n', r->len - start);
        if (!nl)
            break;
        size_t end = (size_t)(nl - r->buf), ll = end - start;
        if (ll && r->buf[end - 1] == '\r')
            ll--;
        sse_line(r, r->buf + start, ll, t);
        start = end + 1;
    }
    memmove(r->buf, r->buf + start, r->len - start);
    r->len -= start;
}

static size_t on_write(char *p, size_t sz, size_t nm, void *ud)
{
    req *r = ud;
    const size_t n = sz * nm;
    if (n == 0)
        return n;
    if (!r->status)
        curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->kind == K_HEALTH || r->kind == K_METRICS)
        return n;
    if (r->status != 200) { /* an error body: keep its start for the report */
        if (r->len < 400)
            buf_add(&r->buf, &r->len, &r->cap, p, n < 400 ? n : 400);
        return n;
    }
    sse_feed(r, p, n, now_s());
    return n;
}

/* ---- the run ---- */

typedef struct {
    char msg[320];
    long long n;
} err_count;

typedef struct {
    const opts *o;
    CURLM *m;
    rng prompt_rng, plan_rng;
    double t0, t_stop;
    req **act;
    int n_act, cap_act, inflight; /* inflight: requests (not polls) */
    bool kick, stopping;
    long long total, sent, ended, n_ok, n_err, n_disc, n_cut, n_planned, n_late;
    long long tok_sum, usage_n, ptok_sum, fin_stop, fin_len, fin_other, next_id;
    double late_max, next_arrival, e2e_sum_s;
    double last_block; /* when a due open-loop arrival last found no client free */
    dvec ttft, itl, e2e;
    err_count errs[MAX_ERRS];
    int n_errs;
    /* pollers: [0] /health, [1] /metrics */
    req *poller[2];
    double poll_next[2];
    dvec poll_lat[2];
    long long poll_bad[2];
    long poll_bad_status[2];
    /* stall */
    int phase;
    req **cots, *longr, *probe;
    double long_send, probe_send;
    /* server RSS in kB (-1: not sampled) */
    long rss_early, rss_end;
} run;

static const char *const WORDS[] = {
    "the",   "little", "dog",   "ran",   "to",    "house", "and",   "saw",  "a",     "big",
    "red",   "ball",   "she",   "was",   "happy", "sun",   "tree",  "cat",  "played", "with",
    "her",   "friend", "one",   "day",   "park",  "bird",  "sang",  "blue", "sky",   "mom",
    "said",  "time",   "girl",  "boy",   "went",  "home",  "they",  "had",  "fun",   "water",
    "good",  "small",  "box",   "look",  "found", "toy",   "car",   "not",  "very",  "warm",
    "green", "grass",  "jump",  "high",  "smile", "wind",  "door",  "book", "read",  "night"};

/* The request body: n prompt tokens (ids, or about n words for chat). */
static char *make_body(run *R, int n, int max_tokens, bool ignore_eos)
{
    const opts *o = R->o;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", o->model);
    if (o->chat) {
        char *txt = NULL;
        size_t len = 0, cap = 0;
        for (int i = 0; i < n; i++) {
            const char *w = WORDS[rng_next(&R->prompt_rng) % (sizeof(WORDS) / sizeof(WORDS[0]))];
            if (i)
                buf_add(&txt, &len, &cap, " ", 1);
            buf_add(&txt, &len, &cap, w, strlen(w));
        }
        cJSON *msgs = cJSON_AddArrayToObject(j, "messages"), *m = cJSON_CreateObject();
        cJSON_AddItemToArray(msgs, m);
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", txt ? txt : "");
        free(txt);
    } else {
        int *ids = malloc((size_t)n * sizeof(int));
        if (!ids)
            die_oom();
        for (int i = 0; i < n; i++)
            ids[i] = rng_int(&R->prompt_rng, o->tok_lo, o->tok_hi);
        cJSON_AddItemToObject(j, "prompt", cJSON_CreateIntArray(ids, n));
        free(ids);
    }
    cJSON_AddNumberToObject(j, "max_tokens", max_tokens);
    cJSON_AddNumberToObject(j, "temperature", o->temperature);
    cJSON_AddBoolToObject(j, "stream", true);
    cJSON *so = cJSON_AddObjectToObject(j, "stream_options");
    cJSON_AddBoolToObject(so, "include_usage", true);
    if (o->has_seed)
        cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    if (ignore_eos)
        cJSON_AddBoolToObject(j, "ignore_eos", true);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s)
        die_oom();
    return s;
}

static req *req_new(run *R, int kind)
{
    req *r = calloc(1, sizeof(*r));
    if (!r)
        die_oom();
    r->kind = kind;
    r->id = (int)R->next_id++;
    r->usage_ct = r->usage_pt = r->timing_pn = -1;
    return r;
}

/* Starts r: a GET of path, or a POST of r->body to the completion endpoint. */
static void launch(run *R, req *r, const char *path)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", R->o->url, path);
    CURL *h = curl_easy_init();
    if (!h)
        die_oom();
    r->h = h;
    const double tmo = r->kind >= K_HEALTH && R->o->timeout_s > POLL_TMO_S ? POLL_TMO_S
                                                                          : R->o->timeout_s;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* never through an http_proxy of the env */
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(tmo * 1000));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(tmo < 10 ? tmo * 1000 : 10000));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_PRIVATE, r);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->errbuf);
    /* "Expect:" off: curl waits up to 1 s for a 100-continue on bodies over 1 KiB. */
    r->hdr = curl_slist_append(r->hdr, "Expect:");
    if (r->body) {
        r->hdr = curl_slist_append(r->hdr, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body));
    }
    if (R->o->api_key) {
        char a[600];
        snprintf(a, sizeof(a), "Authorization: Bearer %s", R->o->api_key);
        r->hdr = curl_slist_append(r->hdr, a);
    }
    if (!r->hdr)
        die_oom();
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->hdr);
    if (R->n_act == R->cap_act) {
        R->cap_act = R->cap_act ? 2 * R->cap_act : 32;
        R->act = realloc(R->act, (size_t)R->cap_act * sizeof(req *));
        if (!R->act)
            die_oom();
    }
    R->act[R->n_act++] = r;
    r->t_send = now_s();
    if (r->kind < K_HEALTH)
        R->inflight++;
    curl_multi_add_handle(R->m, h);
    R->kick = true;
}

static void launch_completion(run *R, req *r, int n_prompt, int max_tokens, bool ignore_eos)
{
    r->prompt_n = n_prompt;
    r->body = make_body(R, n_prompt, max_tokens, ignore_eos);
    launch(R, r, R->o->chat ? "/v1/chat/completions" : "/v1/completions");
}

/* Equal but for the digits ("after 50 ms with 33268 bytes"): one line in the report. */
static bool same_shape(const char *a, const char *b)
{
    for (;;) {
        const bool da = *a >= '0' && *a <= '9', db = *b >= '0' && *b <= '9';
        if (da != db)
            return false;
        if (da) {
            while (*a >= '0' && *a <= '9')
                a++;
            while (*b >= '0' && *b <= '9')
                b++;
            continue;
        }
        if (*a != *b)
            return false;
        if (!*a)
            return true;
        a++, b++;
    }
}

static void note_error(run *R, const char *msg)
{
    for (int i = 0; i < R->n_errs; i++)
        if (same_shape(R->errs[i].msg, msg)) {
            R->errs[i].n++;
            return;
        }
    if (R->n_errs < MAX_ERRS) {
        snprintf(R->errs[R->n_errs].msg, sizeof(R->errs[0].msg), "%s", msg);
        R->errs[R->n_errs++].n = 1;
    }
}

/* The first token's time: the first content event, else (max_tokens 1 whose token
 * printed as nothing, or text held back) the finish event if a token was generated. */
static double first_token_time(const req *r)
{
    if (r->ev.n)
        return r->ev.v[0];
    long tok = r->usage_ct >= 0 ? r->usage_ct : r->timing_pn;
    return tok > 0 && r->t_fin_ev > 0 ? r->t_fin_ev : NAN;
}

static long tokens_of(const req *r)
{
    if (r->outcome == OUT_OK && r->usage_ct >= 0)
        return r->usage_ct;
    if (r->outcome == OUT_OK && r->timing_pn >= 0)
        return r->timing_pn;
    return (long)r->ev.n;
}

static void classify(req *r, CURLcode rc)
{
    if (r->outcome != OUT_OK)
        return; /* disconnected or cut: decided by the caller */
    if (rc != CURLE_OK)
        snprintf(r->err, sizeof(r->err), "curl: %.80s%s%.200s", curl_easy_strerror(rc),
                 r->errbuf[0] ? ": " : "", r->errbuf);
    else if (r->status != 200)
        snprintf(r->err, sizeof(r->err), "HTTP %ld: %.150s", r->status, r->buf ? r->buf : "");
    else if (!r->stream_err && !r->got_done && !r->finish[0])
        snprintf(r->err, sizeof(r->err), "stream ended without finish_reason or [DONE]");
    else if (!r->stream_err)
        return;
    r->outcome = OUT_ERR;
}

/* A request's numbers into the totals (every kind but the polls). */
static void fold(run *R, req *r)
{
    const opts *o = R->o;
    R->ended++;
    if (r->outcome == OUT_ERR) {
        R->n_err++;
        note_error(R, r->err);
    } else {
        R->n_ok += r->outcome == OUT_OK;
        R->n_disc += r->outcome == OUT_DISC;
        R->n_cut += r->outcome == OUT_CUT;
        double tf = first_token_time(r);
        if (!isnan(tf))
            dv_push(&R->ttft, (tf - r->t_send) * 1e3);
        for (size_t i = 1; i < r->ev.n; i++)
            dv_push(&R->itl, (r->ev.v[i] - r->ev.v[i - 1]) * 1e3);
        R->tok_sum += tokens_of(r);
        if (r->outcome == OUT_OK) {
            dv_push(&R->e2e, (r->t_end - r->t_send) * 1e3);
            R->e2e_sum_s += r->t_end - r->t_send;
            R->usage_n += r->usage_ct >= 0;
            R->ptok_sum += r->usage_pt >= 0 ? r->usage_pt : r->prompt_n;
            if (!strcmp(r->finish, "stop"))
                R->fin_stop++;
            else if (!strcmp(r->finish, "length"))
                R->fin_len++;
            else
                R->fin_other++;
        }
    }
    if (o->verbose) {
        static const char *const OUT[] = {"ok", "error", "disconnected", "cut"};
        double tf = first_token_time(r);
        fprintf(stderr, "req %d kind %d: %s http %ld prompt %d ttft %.1f ms events %zu "
                "tokens %ld finish %s%s%s\n", r->id, r->kind, OUT[r->outcome], r->status,
                r->prompt_n, (tf - r->t_send) * 1e3, r->ev.n, tokens_of(r),
                r->finish[0] ? r->finish : "-", r->outcome == OUT_ERR ? " : " : "",
                r->outcome == OUT_ERR ? r->err : "");
    }
}

static void req_free(req *r)
{
    free(r->ev.v);
    free(r);
}

/* r has ended (outcome preset to OUT_DISC / OUT_CUT when the client ended it). */
static void finish(run *R, req *r, CURLcode rc)
{
    r->t_end = now_s();
    if (r->has_data && r->outcome == OUT_OK) /* a last event without its blank line */
        on_event(r, r->data, r->dlen, r->t_end);
    if (!r->status)
        curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_multi_remove_handle(R->m, r->h);
    curl_easy_cleanup(r->h);
    curl_slist_free_all(r->hdr);
    free(r->body);
    r->h = NULL;
    r->hdr = NULL;
    r->body = NULL;
    for (int i = 0; i < R->n_act; i++)
        if (R->act[i] == r) {
            R->act[i] = R->act[--R->n_act];
            break;
        }
    if (r->kind >= K_HEALTH) {
        const int k = r->kind - K_HEALTH;
        dv_push(&R->poll_lat[k], (r->t_end - r->t_send) * 1e3);
        if (rc != CURLE_OK || r->status != 200) {
            R->poll_bad[k]++;
            R->poll_bad_status[k] = rc != CURLE_OK ? -(long)rc : r->status;
        }
        R->poller[k] = NULL;
        R->poll_next[k] = r->t_send + R->o->metrics_interval_ms * 1e-3;
        free(r->buf);
        free(r->data);
        req_free(r);
        return;
    }
    R->inflight--;
    R->kick = true; /* a client is free: schedule before waiting */
    classify(r, rc);
    free(r->buf);
    free(r->data);
    r->buf = r->data = NULL;
    fold(R, r);
    if (r->kind == K_LOAD)
        req_free(r); /* the stall kinds stay for the report */
}

/* ---- scheduling ---- */

/* One load request: short or long prompt, maybe planned to be disconnected. */
static void launch_load(run *R, double sched)
{
    const opts *o = R->o;
    req *r = req_new(R, K_LOAD);
    const bool lng = o->long_frac > 0 && rng_unit(&R->plan_rng) < o->long_frac;
    const int n = lng ? rng_int(&R->plan_rng, o->long_lo, o->long_hi)
                      : rng_int(&R->plan_rng, o->short_lo, o->short_hi);
    if (o->disconnect_frac > 0 && rng_unit(&R->plan_rng) < o->disconnect_frac) {
        /* Time-based (uniform over twice the mean request time seen so far) or, before
         * any request has finished or by a coin flip, after 1..max_tokens/2 events. */
        R->n_planned++;
        const double mean = R->e2e.n ? R->e2e_sum_s / (double)R->e2e.n : 0;
        if (mean > 0 && rng_unit(&R->plan_rng) < 0.5)
            r->abort_at = now_s() + 2 * mean * rng_unit(&R->plan_rng);
        else
            r->abort_after = rng_int(&R->plan_rng, 1, o->max_tokens > 1 ? o->max_tokens / 2 : 1);
    }
    launch_completion(R, r, n, o->max_tokens, o->ignore_eos);
    const double late = r->t_send - sched;
    if (sched <= R->last_block) { /* it was due while every client was busy */
        R->n_late++;
        if (late > R->late_max)
            R->late_max = late;
    }
    R->sent++;
}

static void schedule_load(run *R, double t)
{
    const opts *o = R->o;
    while (!R->stopping && R->sent < R->total) {
        if (o->rate > 0 && R->next_arrival > t)
            break;
        if (R->inflight >= o->clients) {
            if (o->rate > 0)
                R->last_block = t;
            break;
        }
        if (o->rate <= 0) {
            launch_load(R, t);
            continue;
        }
        const double sched = R->next_arrival;
        R->next_arrival += -log(1 - rng_unit(&R->plan_rng)) / o->rate;
        launch_load(R, sched);
    }
}

static long read_rss_kb(long long pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%lld/status", pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmRSS:", 6)) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* stall: co-tenants -> (all decoding) long prompt -> (probe delay) probe -> drain. */
static void schedule_stall(run *R, double t)
{
    const opts *o = R->o;
    if (R->stopping)
        return;
    if (R->phase == 0) {
        for (int i = 0; i < o->clients; i++) {
            R->cots[i] = req_new(R, K_COT);
            launch_completion(R, R->cots[i], rng_int(&R->plan_rng, o->short_lo, o->short_hi),
                              o->cot_tokens, true);
        }
        R->phase = 1;
    }
    if (R->phase == 1) {
        for (int i = 0; i < o->clients; i++)
            if (!R->cots[i]->ev.n && !R->cots[i]->t_end)
                return; /* not decoding yet */
        for (int i = 0; i < o->clients; i++)
            if (R->cots[i]->t_end)
                fprintf(stderr, "bench_load: co-tenant %d ended before the long prompt was sent"
                        " (raise --cotenant-tokens)\n", i);
        if (o->server_pid > 0)
            R->rss_early = read_rss_kb(o->server_pid);
        R->longr = req_new(R, K_LONG);
        launch_completion(R, R->longr, o->long_hi, 1, true);
        R->long_send = R->longr->t_send;
        R->phase = 2;
    }
    if (R->phase == 2 && t >= R->long_send + o->probe_delay_ms * 1e-3) {
        R->probe = req_new(R, K_PROBE);
        launch_completion(R, R->probe, rng_int(&R->plan_rng, o->short_lo, o->short_hi), 8, true);
        R->probe_send = R->probe->t_send;
        R->phase = 3;
    }
}

static void schedule_polls(run *R, double t)
{
    static const char *const PATHS[] = {"/health", "/metrics"};
    if (!R->o->poll || R->stopping)
        return;
    for (int k = 0; k < 2; k++)
        if (!R->poller[k] && t >= R->poll_next[k]) {
            R->poller[k] = req_new(R, K_HEALTH + k);
            launch(R, R->poller[k], PATHS[k]);
        }
}

static bool work_done(const run *R)
{
    if (R->inflight > 0)
        return false;
    if (R->stopping)
        return true;
    return R->o->scenario == SC_STALL ? R->phase == 3 : R->sent >= R->total;
}

/* Client-side ends: planned disconnects, and everything at the --duration cap. */
static void client_aborts(run *R, double t)
{
    if (R->o->duration > 0 && t >= R->t_stop && !R->stopping) {
        R->stopping = true;
        fprintf(stderr, "bench_load: --duration reached, cutting %d in flight\n", R->inflight);
    }
    for (int i = R->n_act - 1; i >= 0; i--) {
        req *r = R->act[i];
        if (i >= R->n_act || r->kind >= K_HEALTH)
            continue;
        if (R->stopping)
            r->outcome = OUT_CUT;
        else if (r->abort_now || (r->abort_at > 0 && t >= r->abort_at))
            r->outcome = OUT_DISC;
        else
            continue;
        finish(R, r, CURLE_OK);
    }
}

static long wait_ms(run *R, double t)
{
    if (R->kick) {
        R->kick = false;
        return 0;
    }
    double until = t + 0.1;
    const opts *o = R->o;
    if (o->rate > 0 && R->sent < R->total && R->next_arrival < until)
        until = R->next_arrival;
    if (o->duration > 0 && R->t_stop < until)
        until = R->t_stop;
    if (R->phase == 2 && R->long_send + o->probe_delay_ms * 1e-3 < until)
        until = R->long_send + o->probe_delay_ms * 1e-3;
    for (int k = 0; o->poll && k < 2; k++)
        if (!R->poller[k] && R->poll_next[k] < until)
            until = R->poll_next[k];
    for (int i = 0; i < R->n_act; i++)
        if (R->act[i]->abort_at > 0 && R->act[i]->abort_at < until)
            until = R->act[i]->abort_at;
    const double w = until - t;
    return w <= 0 ? 0 : (long)ceil(w * 1e3);
}

static void drain_done(run *R)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(R->m, &left)))
        if (msg->msg == CURLMSG_DONE) {
            req *r = NULL;
            CURLcode rc = msg->data.result;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            finish(R, r, rc);
        }
}

/* The one multi loop: schedule, transfer, collect, end client-side aborts, wait. */
static void run_loop(run *R)
{
    const opts *o = R->o;
    const long long rss_mark = R->total / 10 > 0 ? R->total / 10 : 1;
    int running = 0;
    for (;;) {
        double t = now_s();
        if (o->scenario == SC_STALL)
            schedule_stall(R, t);
        else
            schedule_load(R, t);
        schedule_polls(R, t);
        curl_multi_perform(R->m, &running);
        drain_done(R);
        client_aborts(R, now_s());
        if (o->server_pid > 0 && o->scenario == SC_LOAD && R->rss_early < 0 &&
            (o->duration > 0 && R->total == LLONG_MAX ? now_s() - R->t0 >= o->duration / 10
                                                      : R->ended >= rss_mark))
            R->rss_early = read_rss_kb(o->server_pid);
        if (work_done(R))
            break;
        curl_multi_poll(R->m, NULL, 0, (int)wait_ms(R, now_s()), NULL);
    }
    for (int i = R->n_act - 1; i >= 0; i--) /* polls still out: not waited for */
        if (i < R->n_act) {
            req *r = R->act[i];
            curl_multi_remove_handle(R->m, r->h);
            curl_easy_cleanup(r->h);
            curl_slist_free_all(r->hdr);
            free(r->buf);
            free(r->data);
            req_free(r);
        }
    R->n_act = 0;
}

/* ---- results: the RESULT line and --json share one key list ---- */

typedef struct {
    const char *key, *s; /* s: a string value (else v) */
    double v;
    bool integer;
} kv_item;

typedef struct {
    kv_item a[MAX_KV];
    int n;
} kvs;

static void kv_add(kvs *k, const char *key, double v, bool integer, const char *s)
{
    if (k->n < MAX_KV)
        k->a[k->n++] = (kv_item){.key = key, .s = s, .v = v, .integer = integer};
}

static void kv_num(kvs *k, const char *key, double v) { kv_add(k, key, v, false, NULL); }
static void kv_int(kvs *k, const char *key, long long v) { kv_add(k, key, (double)v, true, NULL); }
static void kv_str(kvs *k, const char *key, const char *s) { kv_add(k, key, 0, false, s); }

static void kv_print(const kvs *k)
{
    printf("RESULT");
    for (int i = 0; i < k->n; i++) {
        const kv_item *e = &k->a[i];
        if (e->s)
            printf(" %s=%s", e->key, e->s);
        else if (isnan(e->v))
            printf(" %s=nan", e->key);
        else if (e->integer)
            printf(" %s=%lld", e->key, (long long)e->v);
        else
            printf(" %s=%.3f", e->key, e->v);
    }
    printf("\n");
}

static int kv_json(const kvs *k, const char *path)
{
    cJSON *j = cJSON_CreateObject();
    for (int i = 0; i < k->n; i++) {
        const kv_item *e = &k->a[i];
        if (e->s)
            cJSON_AddStringToObject(j, e->key, e->s);
        else if (isnan(e->v))
            cJSON_AddNullToObject(j, e->key); /* JSON has no NaN */
        else
            cJSON_AddNumberToObject(j, e->key, e->integer ? e->v : round(e->v * 1e3) / 1e3);
    }
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    FILE *f = s ? fopen(path, "w") : NULL;
    int rc = f && fprintf(f, "%s\n", s) > 0 ? 0 : -1;
    if (f && fclose(f))
        rc = -1;
    free(s);
    if (rc)
        fprintf(stderr, "bench_load: cannot write %s\n", path);
    return rc;
}

static void print_dist(const char *name, dvec *d)
{
    printf("  %-16s n %-7zu p50 %8.2f  p90 %8.2f  p99 %8.2f  max %8.2f ms\n", name, d->n,
           pctl(d, 50), pctl(d, 90), pctl(d, 99), dv_max(d));
}

static void report_polls(run *R, kvs *kv)
{
    static const char *const NAME[] = {"/health", "/metrics"};
    static const char *const KEYS[2][5] = {
        {"health_n", "health_p50_ms", "health_p99_ms", "health_max_ms", "health_bad"},
        {"metrics_n", "metrics_p50_ms", "metrics_p99_ms", "metrics_max_ms", "metrics_bad"}};
    for (int k = 0; k < 2; k++) {
        dvec *d = &R->poll_lat[k];
        print_dist(NAME[k], d);
        if (R->poll_bad[k])
            printf("  %-16s %lld not 200 (last: %s %ld)\n", "", R->poll_bad[k],
                   R->poll_bad_status[k] < 0 ? "curl error" : "HTTP",
                   labs(R->poll_bad_status[k]));
        kv_int(kv, KEYS[k][0], (long long)d->n);
        kv_num(kv, KEYS[k][1], pctl(d, 50));
        kv_num(kv, KEYS[k][2], pctl(d, 99));
        kv_num(kv, KEYS[k][3], dv_max(d));
        kv_int(kv, KEYS[k][4], R->poll_bad[k]);
    }
}

/* stall: the long prompt's prefill window is [long send, long first token]; a co-tenant
 * gap counts for the window when it overlaps it (a stream stalled across the whole
 * prefill shows one gap starting before and ending after). */
static void report_stall(run *R, kvs *kv)
{
    const opts *o = R->o;
    const req *lr = R->longr, *pr = R->probe;
    double w1 = lr ? first_token_time(lr) : NAN;
    if (lr && isnan(w1))
        w1 = lr->t_end;
    const double w0 = R->long_send;
    dvec gaps = {0};
    double win_max = NAN;
    int decoding = 0;
    for (int i = 0; i < o->clients; i++) {
        const req *c = R->cots[i];
        for (size_t e = 1; e < c->ev.n; e++) {
            const double g = (c->ev.v[e] - c->ev.v[e - 1]) * 1e3;
            dv_push(&gaps, g);
            if (lr && c->ev.v[e] > w0 && c->ev.v[e - 1] < w1 && (isnan(win_max) || g > win_max))
                win_max = g;
        }
        decoding += lr && c->ev.n && c->ev.v[0] < w0 && c->t_end > w1;
    }
    const bool long_ok = lr && lr->outcome == OUT_OK, probe_ok = pr && pr->outcome == OUT_OK;
    const double long_ttft = long_ok ? (w1 - lr->t_send) * 1e3 : NAN;
    const double probe_tf = probe_ok ? first_token_time(pr) : NAN;
    const double probe_ttft = (probe_tf - (pr ? pr->t_send : 0)) * 1e3;
    const bool in_prefill = pr && lr && pr->t_send < w1;
    printf("stall: %d co-tenants decoding (%d still at the long's first token), long prompt "
           "%d tokens, probe %d ms after it\n", o->clients, decoding, o->long_hi,
           o->probe_delay_ms);
    printf("  long TTFT (prefill)  %10.2f ms%s\n", long_ttft, long_ok ? "" : "  (failed)");
    printf("  probe TTFT           %10.2f ms%s (sent %s the long prompt's prefill)\n",
           probe_ttft, probe_ok ? "" : "  (failed)", in_prefill ? "during" : "AFTER");
    printf("  co-tenant ITL max in the prefill window %10.2f ms\n", win_max);
    print_dist("co-tenant ITL", &gaps);
    kv_int(kv, "long_tokens", o->long_hi);
    kv_num(kv, "long_ttft_ms", long_ttft);
    kv_num(kv, "probe_ttft_ms", probe_ttft);
    kv_int(kv, "probe_in_prefill", in_prefill);
    kv_int(kv, "cotenants", o->clients);
    kv_int(kv, "cot_decoding", decoding);
    kv_num(kv, "cot_itl_max_prefill_ms", win_max);
    kv_num(kv, "cot_itl_p50_ms", pctl(&gaps, 50));
    kv_num(kv, "cot_itl_p99_ms", pctl(&gaps, 99));
    kv_num(kv, "cot_itl_max_ms", dv_max(&gaps));
    free(gaps.v);
}

static void report(run *R, double wall, kvs *kv)
{
    const opts *o = R->o;
    const bool stall = o->scenario == SC_STALL;
    printf("bench_load: %s%s, %s, clients %d\n", o->url,
           o->chat ? "/v1/chat/completions" : "/v1/completions",
           stall ? "scenario stall" : o->rate > 0 ? "open loop (Poisson)" : "closed loop",
           o->clients);
    printf("  requests  %lld ok, %lld errors, %lld disconnected (of %lld planned), %lld cut "
           "(of %lld sent) in %.2f s: %.2f req/s\n", R->n_ok, R->n_err, R->n_disc, R->n_planned,
           R->n_cut, R->ended, wall, (double)R->n_ok / wall);
    printf("  tokens    %lld generated (usage on %lld of %lld ok), %.1f tok/s; %lld prompt "
           "tokens\n", R->tok_sum, R->usage_n, R->n_ok, (double)R->tok_sum / wall, R->ptok_sum);
    printf("  finish    stop %lld, length %lld, other %lld\n", R->fin_stop, R->fin_len,
           R->fin_other);
    if (R->n_late)
        printf("  late      %lld arrivals waited for a free client (max %.1f ms): raise "
               "--clients for a true open loop\n", R->n_late, R->late_max * 1e3);
    for (int i = 0; i < R->n_errs; i++)
        printf("  error x%-5lld %s\n", R->errs[i].n, R->errs[i].msg); /* the first of its shape */
    print_dist("TTFT", &R->ttft);
    print_dist("ITL", &R->itl);
    print_dist("end-to-end", &R->e2e);
    kv_str(kv, "scenario", stall ? "stall" : "load");
    kv_str(kv, "api", o->chat ? "chat" : "completions");
    kv_int(kv, "clients", o->clients);
    kv_num(kv, "rate", o->rate);
    kv_int(kv, "sent", R->ended);
    kv_int(kv, "ok", R->n_ok);
    kv_int(kv, "err", R->n_err);
    kv_int(kv, "disconnected", R->n_disc);
    kv_int(kv, "cut", R->n_cut);
    kv_num(kv, "duration_s", wall);
    kv_num(kv, "req_per_s", (double)R->n_ok / wall);
    kv_int(kv, "gen_tokens", R->tok_sum);
    kv_num(kv, "gen_tok_per_s", (double)R->tok_sum / wall);
    kv_int(kv, "usage_n", R->usage_n);
    kv_num(kv, "ttft_p50_ms", pctl(&R->ttft, 50));
    kv_num(kv, "ttft_p99_ms", pctl(&R->ttft, 99));
    kv_num(kv, "itl_p50_ms", pctl(&R->itl, 50));
    kv_num(kv, "itl_p99_ms", pctl(&R->itl, 99));
    kv_num(kv, "itl_max_ms", dv_max(&R->itl));
    kv_num(kv, "e2e_p50_ms", pctl(&R->e2e, 50));
    kv_num(kv, "e2e_p99_ms", pctl(&R->e2e, 99));
    kv_int(kv, "late", R->n_late);
    if (stall)
        report_stall(R, kv);
    if (o->poll)
        report_polls(R, kv);
    if (o->server_pid > 0) {
        printf("  server RSS  %ld kB early, %ld kB at the end: x%.3f\n", R->rss_early, R->rss_end,
               R->rss_early > 0 ? (double)R->rss_end / (double)R->rss_early : NAN);
        kv_int(kv, "rss_early_kb", R->rss_early);
        kv_int(kv, "rss_end_kb", R->rss_end);
        kv_num(kv, "rss_ratio",
               R->rss_early > 0 ? (double)R->rss_end / (double)R->rss_early : NAN);
    }
}

/* ---- --scrape-metrics: the server's own gauges after the run ---- */

typedef struct {
    char *p;
    size_t len, cap;
} body_buf;

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    body_buf *b = ud;
    buf_add(&b->p, &b->len, &b->cap, p, sz * nm);
    return sz * nm;
}

static char *http_get(const opts *o, const char *path, long *status)
{
    char url[1024], a[600];
    body_buf body = {0};
    snprintf(url, sizeof(url), "%s%s", o->url, path);
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    if (!h)
        return NULL;
    if (o->api_key) {
        snprintf(a, sizeof(a), "Authorization: Bearer %s", o->api_key);
        hdr = curl_slist_append(hdr, a);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)POLL_TMO_S * 1000);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    CURLcode rc = curl_easy_perform(h);
    *status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    if (rc != CURLE_OK) {
        fprintf(stderr, "bench_load: GET %s: %s\n", url, curl_easy_strerror(rc));
        free(body.p);
        return NULL;
    }
    return body.p ? body.p : calloc(1, 1);
}

/* The value of an unlabelled sample "name value" in Prometheus text; NAN when absent. */
static double metric_value(const char *text, const char *name)
{
    const size_t n = strlen(name);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, name, n) && l[n] == ' ')
            return strtod(l + n + 1, NULL);
    return NAN;
}

/* The named gauges summed, the absent ones as 0. */
static double metric_sum(const char *text, const char *const *names, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) {
        const double v = metric_value(text, names[i]);
        s += isnan(v) ? 0 : v;
    }
    return s;
}

/* Requests still running or queued at the server; re-read for up to 5 s, as the server
 * may notice the last disconnects only at its next step. */
static void scrape(const opts *o, kvs *kv)
{
    const double until = now_s() + 5;
    char *body = NULL;
    double busy = 0;
    long status = 0;
    for (;;) {
        free(body);
        body = http_get(o, "/metrics", &status);
        if (!body || status != 200) {
            printf("scrape: /metrics gave %s %ld\n", body ? "HTTP" : "no answer", status);
            free(body);
            return;
        }
        static const char *const BUSY[] = {"tessera_requests_running", "tessera_requests_waiting",
                                           "llamacpp:requests_processing",
                                           "llamacpp:requests_deferred"};
        busy = metric_sum(body, BUSY, 4);
        if (busy == 0 || now_s() > until)
            break;
        usleep(100 * 1000);
    }
    printf("scrape: /metrics (histogram buckets left out)\n");
    for (char *l = body; *l;) {
        char *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l) : strlen(l);
        if ((!strncmp(l, "tessera_", 8) || !strncmp(l, "llamacpp:", 9)) &&
            !memmem(l, n, "_bucket{", 8))
            printf("  %.*s\n", (int)n, l);
        l += n + (nl != NULL);
    }
    printf("  server idle: %s\n", busy == 0 ? "yes (0 running, 0 waiting)" : "NO");
    kv_int(kv, "idle", busy == 0);
    const double pages = metric_value(body, "tessera_kv_pages_used");
    if (!isnan(pages))
        kv_int(kv, "kv_pages_used", (long long)pages);
    free(body);
}

/* ---- command line ---- */

static void usage(FILE *f)
{
    fprintf(f,
"usage: bench_load --url http://HOST:PORT [options]\n"
"  target     --url U (base URL; /v1/completions is appended)  --chat (/v1/chat/completions)\n"
"             --model NAME (default)  --api-key K (Authorization: Bearer)  --timeout S (600)\n"
"  prompts    --token-range LO-HI (100-30000: the ids drawn; e.g. 10-500 for a small vocab)\n"
"             --short-tokens A-B (16-64)  --long-tokens A-B (4096-8192)  --long-frac F (0)\n"
"             --prompt-seed N (prompt PRNG; default from the clock, printed, so a rerun\n"
"             does not hit the server's prefix cache). Completion prompts are token-id\n"
"             arrays of exact length; --chat prompts are N pseudo-words: APPROXIMATE length\n"
"  sampling   --max-tokens N (64)  --temperature T (0)  --seed N (sent)  --ignore-eos\n"
"  load       --clients N (8: most in flight)  --requests N (default: clients; unbounded\n"
"             with --duration)  --rate R (req/s, Poisson arrivals; 0: closed loop)\n"
"             --duration S (wall cap; in-flight requests are then cut)\n"
"             --disconnect-frac F (abort that share mid-stream: after 1..max_tokens/2\n"
"             events, or at a uniform time within twice the mean request time)\n"
"  stall      --scenario stall: --clients K co-tenants (--cotenant-tokens N, 256, with\n"
"             ignore_eos) decode; then one prompt of the --long-tokens upper bound\n"
"             (max_tokens 1); --probe-delay-ms D (200) later one short probe (max_tokens 8)\n"
"  polling    --metrics-interval MS (50): GET /health and /metrics throughout (always in\n"
"             stall; in load only when this option is given)\n"
"  after      --scrape-metrics (print the server's tessera_/llamacpp: gauges; idle?)\n"
"             --server-pid PID (VmRSS at 10%% of the run and at the end)\n"
"  output     --json FILE (the RESULT keys as JSON)  -v (one stderr line per request)\n"
"Exit: 0 ran, 1 every request failed, 2 usage error.\n");
}

static bool p_ll(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    if (!s || !*s)
        return false;
    long long v = strtoll(s, &end, 10);
    if (*end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool p_int(const char *s, int lo, int hi, int *out)
{
    long long v;
    if (!p_ll(s, lo, hi, &v))
        return false;
    *out = (int)v;
    return true;
}

static bool p_dbl(const char *s, double lo, double hi, double *out)
{
    char *end;
    if (!s || !*s)
        return false;
    double v = strtod(s, &end);
    if (*end || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

/* "A-B" or "A" (= "A-A"), A <= B, both in [lo, hi]. */
static bool p_range(const char *s, int lo, int hi, int *a, int *b)
{
    char tmp[64];
    if (!s || strlen(s) >= sizeof(tmp))
        return false;
    strcpy(tmp, s);
    char *dash = strchr(tmp, '-');
    if (dash)
        *dash = 0;
    return p_int(tmp, lo, hi, a) && p_int(dash ? dash + 1 : tmp, lo, hi, b) && *a <= *b;
}

/* One option with its value v; false: bad value or unknown option. */
static bool option(opts *o, const char *k, const char *v)
{
    long long ll = 0;
    if (!strcmp(k, "--url")) return (o->url = v) != NULL;
    if (!strcmp(k, "--model")) return (o->model = v) != NULL;
    if (!strcmp(k, "--api-key")) return (o->api_key = v) != NULL;
    if (!strcmp(k, "--json")) return (o->json_path = v) != NULL;
    if (!strcmp(k, "--token-range")) return p_range(v, 0, 1 << 30, &o->tok_lo, &o->tok_hi);
    if (!strcmp(k, "--short-tokens")) return p_range(v, 1, 1 << 24, &o->short_lo, &o->short_hi);
    if (!strcmp(k, "--long-tokens")) return p_range(v, 1, 1 << 24, &o->long_lo, &o->long_hi);
    if (!strcmp(k, "--long-frac")) return p_dbl(v, 0, 1, &o->long_frac);
    if (!strcmp(k, "--max-tokens")) return p_int(v, 1, 1 << 24, &o->max_tokens);
    if (!strcmp(k, "--cotenant-tokens")) return p_int(v, 1, 1 << 24, &o->cot_tokens);
    if (!strcmp(k, "--temperature")) return p_dbl(v, 0, 100, &o->temperature);
    if (!strcmp(k, "--seed")) return (o->has_seed = p_ll(v, 0, 1LL << 53, &o->seed));
    if (!strcmp(k, "--prompt-seed") && p_ll(v, 0, LLONG_MAX, &ll))
        return o->prompt_seed = (unsigned long long)ll, true;
    if (!strcmp(k, "--clients")) return p_int(v, 0, 100000, &o->clients);
    if (!strcmp(k, "--requests")) return p_ll(v, 0, LLONG_MAX / 2, &o->requests);
    if (!strcmp(k, "--rate")) return p_dbl(v, 0, 1e6, &o->rate);
    if (!strcmp(k, "--duration")) return p_dbl(v, 0.001, 1e7, &o->duration);
    if (!strcmp(k, "--disconnect-frac")) return p_dbl(v, 0, 1, &o->disconnect_frac);
    if (!strcmp(k, "--timeout")) return p_dbl(v, 0.001, 1e6, &o->timeout_s);
    if (!strcmp(k, "--probe-delay-ms")) return p_int(v, 0, 3600000, &o->probe_delay_ms);
    if (!strcmp(k, "--metrics-interval"))
        return (o->poll = p_int(v, 1, 3600000, &o->metrics_interval_ms));
    if (!strcmp(k, "--server-pid")) return p_ll(v, 1, 1LL << 31, &o->server_pid);
    if (!strcmp(k, "--scenario") && v && (!strcmp(v, "load") || !strcmp(v, "stall")))
        return o->scenario = !strcmp(v, "stall") ? SC_STALL : SC_LOAD, true;
    return false;
}

/* 0 parsed, 1 help shown, 2 usage error (reported). */
static int parse_args(int argc, char **argv, opts *o)
{
    *o = (opts){.model = "default", .tok_lo = 100, .tok_hi = 30000, .short_lo = 16,
                .short_hi = 64, .long_lo = 4096, .long_hi = 8192, .max_tokens = 64,
                .cot_tokens = 256, .clients = 8, .requests = -1, .timeout_s = 600,
                .probe_delay_ms = 200, .metrics_interval_ms = 50};
    o->prompt_seed = (unsigned long long)time(NULL) * 1000003ull ^ (unsigned long long)getpid();
    const char *bad = NULL;
    for (int i = 1; i < argc && !bad; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "-h") || !strcmp(k, "--help"))
            return usage(stdout), 1;
        if (!strcmp(k, "--chat")) o->chat = true;
        else if (!strcmp(k, "--ignore-eos")) o->ignore_eos = true;
        else if (!strcmp(k, "--scrape-metrics")) o->scrape = true;
        else if (!strcmp(k, "-v") || !strcmp(k, "--verbose")) o->verbose = true;
        else if (i + 1 < argc && option(o, k, argv[i + 1])) i++;
        else bad = k;
    }
    if (!bad && !o->url)
        bad = "--url is required";
    else if (!bad && strncmp(o->url, "http://", 7) && strncmp(o->url, "https://", 8))
        bad = "--url must start with http:// or https://";
    else if (!bad && o->clients < 1 && o->scenario == SC_LOAD)
        bad = "--clients must be at least 1";
    if (bad) {
        fprintf(stderr, "bench_load: bad, unknown or incomplete option: %s\n", bad);
        usage(stderr);
        return 2;
    }
    if (o->scenario == SC_STALL)
        o->poll = true;
    return 0;
}

int main(int argc, char **argv)
{
    opts o;
    int pa = parse_args(argc, argv, &o);
    if (pa)
        return pa == 1 ? 0 : 2;
    char *url = strdup(o.url);
    if (!url)
        die_oom();
    for (size_t n = strlen(url); n > 0 && url[n - 1] == '/'; n--)
        url[n - 1] = 0;
    o.url = url;
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "bench_load: curl_global_init failed\n");
        return 1;
    }
    run R = {.o = &o, .rss_early = -1, .rss_end = -1};
    R.prompt_rng.s = o.prompt_seed;
    R.plan_rng.s = o.prompt_seed ^ 0x5851f42d4c957f2dull;
    R.total = o.requests >= 0 ? o.requests : o.duration > 0 ? LLONG_MAX : o.clients;
    R.m = curl_multi_init();
    R.cots = o.scenario == SC_STALL ? calloc((size_t)o.clients + 1, sizeof(req *)) : NULL;
    if (!R.m || (o.scenario == SC_STALL && !R.cots))
        die_oom();
    fprintf(stderr, "bench_load: %s, prompt_seed %llu\n", o.url, o.prompt_seed);
    R.t0 = now_s();
    R.t_stop = R.t0 + o.duration;
    R.next_arrival = R.t0;
    run_loop(&R);
    const double wall = now_s() - R.t0;
    if (o.server_pid > 0)
        R.rss_end = read_rss_kb(o.server_pid);
    kvs kv = {.n = 0};
    report(&R, wall, &kv);
    if (o.scrape)
        scrape(&o, &kv);
    char seed[32];
    snprintf(seed, sizeof(seed), "%llu", o.prompt_seed);
    kv_str(&kv, "prompt_seed", seed);
    kv_print(&kv);
    fflush(stdout);
    int rc = R.n_ok + R.n_disc + R.n_cut == 0 && R.n_err > 0 ? 1 : 0;
    if (o.json_path && kv_json(&kv, o.json_path))
        rc = rc ? rc : 1;
    for (int i = 0; R.cots && i < o.clients; i++)
        if (R.cots[i])
            req_free(R.cots[i]);
    if (R.longr)
        req_free(R.longr);
    if (R.probe)
        req_free(R.probe);
    free(R.cots);
    free(R.act);
    free(R.ttft.v);
    free(R.itl.v);
    free(R.e2e.v);
    free(R.poll_lat[0].v);
    free(R.poll_lat[1].v);
    curl_multi_cleanup(R.m);
    curl_global_cleanup();
    free(url);
    return rc;
}
