/*
 * server/route.c: see route.h. Prompts are tokenized here, on the HTTP
 * thread (the tokenizer is read-only and reentrant), as llama-server does:
 * special-token text parsed, BOS added when the vocabulary asks for it; a
 * token-array prompt is taken as given. A prompt longer than a sequence's
 * context (or than the whole KV pool) is refused before anything is queued,
 * with llama-server's exceed_context_size_error fields.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "chat.h"
#include "route.h"

static const struct {
    const char *path;
    const char *method;
    int route;
} ROUTES[] = {
    {"/health", "GET", SRV_ROUTE_HEALTH},
    {"/v1/health", "GET", SRV_ROUTE_HEALTH},
    {"/v1/models", "GET", SRV_ROUTE_MODELS},
    {"/models", "GET", SRV_ROUTE_MODELS},
    {"/metrics", "GET", SRV_ROUTE_METRICS},
    {"/slots", "GET", SRV_ROUTE_SLOTS},
    {"/v1/completions", "POST", SRV_ROUTE_COMPLETIONS},
    {"/completions", "POST", SRV_ROUTE_COMPLETIONS},
    {"/v1/chat/completions", "POST", SRV_ROUTE_CHAT},
    {"/chat/completions", "POST", SRV_ROUTE_CHAT},
    {"/tokenize", "POST", SRV_ROUTE_TOKENIZE},
    {"/detokenize", "POST", SRV_ROUTE_DETOKENIZE},
};
#define N_ROUTES (sizeof(ROUTES) / sizeof(ROUTES[0]))

int srv_route_find(const char *url, const char *method, int *allowed)
{
    *allowed = 0;
    for (size_t i = 0; i < N_ROUTES; i++)
        if (!strcmp(url, ROUTES[i].path)) {
            if (!strcmp(method, ROUTES[i].method) ||
                (!strcmp(method, "HEAD") && !strcmp(ROUTES[i].method, "GET")))
                return ROUTES[i].route;
            *allowed = 1;
        }
    return -1;
}

int srv_route_public(int route) { return route == SRV_ROUTE_HEALTH || route == SRV_ROUTE_MODELS; }

static int fail(srv_error *e, int http, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(srv_error *e, int http, const char *type, const char *fmt, ...)
{
    e->http = http;
    snprintf(e->type, sizeof(e->type), "%s", type);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return -1;
}

/* Text -> ids (special tokens parsed, BOS as the vocabulary asks). */
static int tokenize(const srv_state *st, const char *text, size_t len, bool bos, bool special,
                    int32_t **ids, int *n_ids, srv_error *e)
{
    size_t n = 0;
    ts_err err = {0};
    ts_status s = special ? ts_engine_tokenize_special(st->eng, text, len, bos, NULL, 0, &n, &err)
                          : ts_engine_tokenize(st->eng, text, len, bos, NULL, 0, &n, &err);
    if (s != TS_OK)
        return fail(e, 400, "invalid_request_error", "cannot tokenize the prompt: %s", err.msg);
    if (n > SRV_MAX_PROMPT_TOKENS)
        return fail(e, 400, "invalid_request_error", "the prompt has %zu tokens, more than %d",
                    n, SRV_MAX_PROMPT_TOKENS);
    *ids = malloc((n + 1) * sizeof(int32_t));
    if (!*ids)
        return fail(e, 500, "server_error", "out of memory");
    s = special ? ts_engine_tokenize_special(st->eng, text, len, bos, *ids, n, &n, &err)
                : ts_engine_tokenize(st->eng, text, len, bos, *ids, n, &n, &err);
    if (s != TS_OK) {
        free(*ids);
        *ids = NULL;
        return fail(e, 400, "invalid_request_error", "cannot tokenize the prompt: %s", err.msg);
    }
    *n_ids = (int)n;
    return 0;
}

/* The chat messages rendered by the template (malloc'ed). */
static char *render_chat(const srv_state *st, const srv_request *r, size_t *len, srv_error *e)
{
    if (st->chat_tmpl < 0) {
        fail(e, 400, "invalid_request_error", "%s", st->chat_why);
        return NULL;
    }
    srv_chat_msg *m = malloc((size_t)(r->n_msgs ? r->n_msgs : 1) * sizeof(*m));
    if (!m) {
        fail(e, 500, "server_error", "out of memory");
        return NULL;
    }
    for (int i = 0; i < r->n_msgs; i++)
        m[i] = (srv_chat_msg){.role = r->msgs[i].role, .content = r->msgs[i].content};
    long need = srv_chat_apply(st->chat_tmpl, m, (size_t)r->n_msgs, true, NULL, 0);
    char *text = need >= 0 ? malloc((size_t)need + 1) : NULL;
    if (need < 0)
        fail(e, 400, "invalid_request_error",
             "the chat template '%s' cannot render these messages (roles or order)",
             srv_chat_name(st->chat_tmpl));
    else if (!text)
        fail(e, 500, "server_error", "out of memory");
    else {
        srv_chat_apply(st->chat_tmpl, m, (size_t)r->n_msgs, true, text, (size_t)need + 1);
        *len = (size_t)need;
    }
    free(m);
    return text;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The prompt ids of a parsed request. */
static int prompt_ids(srv_state *st, srv_request *r, int32_t **ids, int *n, srv_error *e)
{
    if (r->kind == SRV_REQ_CHAT) {
        size_t len = 0;
        char *text = render_chat(st, r, &len, e);
        if (!text)
            return -1;
        int rc = tokenize(st, text, len, true, true, ids, n, e);
        free(text);
        return rc;
    }
    if (r->prompt)
        return tokenize(st, r->prompt, r->prompt_len, true, true, ids, n, e);
    for (size_t i = 0; i < r->n_prompt_ids; i++)
        if (r->prompt_ids[i] < 0 || r->prompt_ids[i] >= st->info.n_vocab)
            return fail(e, 400, "invalid_request_error",
                        "prompt token %d at index %zu is outside the vocabulary (%lld)",
                        (int)r->prompt_ids[i], i, (long long)st->info.n_vocab);
    *ids = r->prompt_ids;
    *n = (int)r->n_prompt_ids;
    r->prompt_ids = NULL;
    r->n_prompt_ids = 0;
    return 0;
}

static int check_context(const srv_state *st, int n_ids, srv_error *e)
{
    if (n_ids == 0)
        return fail(e, 400, "invalid_request_error", "the prompt is empty");
    const long long pool = st->pages_total * TS_BATCH_PAGE;
    const long long ctx = st->n_ctx < pool ? st->n_ctx : pool;
    if (n_ids <= ctx)
        return 0;
    fail(e, 400, "exceed_context_size_error",
         "the request exceeds the available context size: %d prompt tokens, context %lld",
         n_ids, ctx);
    e->n_prompt_tokens = n_ids;
    e->n_ctx = ctx;
    return -1;
}

/* A task from a parsed request (ids owned by the task from here). */
static srv_task *new_task(srv_state *st, srv_request *r, int32_t *ids, int n_ids, srv_error *e)
{
    srv_task *t = calloc(1, sizeof(*t));
    if (!t) {
        free(ids);
        fail(e, 500, "server_error", "out of memory");
        return NULL;
    }
    pthread_cond_init(&t->cv, NULL);
    t->refs = 1;
    t->ids = ids;
    t->n_ids = n_ids;
    t->seq = -1;
    t->chat = r->kind == SRV_REQ_CHAT;
    t->stream = r->stream;
    t->ignore_eos = r->ignore_eos;
    t->include_usage = r->include_usage;
    t->samp = r->samp;
    t->max_tokens = r->max_tokens >= 0 ? r->max_tokens : st->n_predict;
    for (int i = 0; i < r->n_stop; i++) {
        t->stop[i] = r->stop[i];
        r->stop[i] = NULL;
    }
    t->n_stop = r->n_stop;
    r->n_stop = 0;
    t->t_arrive = srv_now();
    t->created = (long long)time(NULL);
    const long long use = t->max_tokens < 0 || n_ids + t->max_tokens > st->n_ctx
                              ? st->n_ctx : n_ids + t->max_tokens;
    t->pages = (use + TS_BATCH_PAGE - 1) / TS_BATCH_PAGE;
    if (t->pages > st->pages_total)
        t->pages = st->pages_total;
    return t;
}

int srv_route_make_task(srv_state *st, int route, const char *body, size_t len,
                        srv_task **out, srv_error *e)
{
    srv_request r;
    *out = NULL;
    if (srv_request_parse(body, len, route == SRV_ROUTE_CHAT ? SRV_REQ_CHAT : SRV_REQ_COMPLETION,
                          &r, e))
        return -1;
    int32_t *ids = NULL;
    int n_ids = 0;
    if (prompt_ids(st, &r, &ids, &n_ids, e) || check_context(st, n_ids, e)) {
        free(ids);
        srv_request_free(&r);
        return -1;
    }
    srv_task *t = new_task(st, &r, ids, n_ids, e);
    const bool seed_set = r.seed_set;
    srv_request_free(&r);
    if (!t)
        return -1;
    if (!seed_set) {
        pthread_mutex_lock(&st->mu);
        t->samp.seed = splitmix(&st->rng);
        pthread_mutex_unlock(&st->mu);
    }
    ts_err err = {0};
    if (ts_sampler_create(&t->smp, &t->samp, st->info.n_vocab, &err) != TS_OK ||
        (t->ignore_eos && ts_sampler_ban(t->smp, st->eog, st->n_eog, &err) != TS_OK)) {
        fail(e, 400, "invalid_request_error", "sampling: %s", err.msg);
        srv_task_unref(st, t);
        return -1;
    }
    for (int i = 0; i < n_ids; i++)
        ts_sampler_accept(t->smp, ids[i]);
    pthread_mutex_lock(&st->mu);
    int rc = 0;
    if (atomic_load(&st->stopping))
        rc = fail(e, 503, "unavailable_error", "the server is shutting down");
    else if (st->n_waiting >= st->max_queue)
        rc = fail(e, 503, "unavailable_error", "the queue is full (%d requests waiting)",
                  st->n_waiting);
    if (rc) {
        srv_task_unref(st, t);
        pthread_mutex_unlock(&st->mu);
        return -1;
    }
    t->id = ++st->next_id;
    t->refs = 2; /* this thread's and the queue's */
    if (st->q_tail)
        st->q_tail->next = t;
    else
        st->q_head = t;
    st->q_tail = t;
    st->n_waiting++;
    st->m.requests_total++;
    pthread_cond_signal(&st->work_cv);
    pthread_mutex_unlock(&st->mu);
    *out = t;
    return 0;
}
