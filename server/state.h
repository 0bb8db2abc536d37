/*
 * server/state.h: what the HTTP threads and the one inference thread share.
 *
 * Threads: libmicrohttpd runs a thread per connection (server/http.c); they
 * parse, tokenize, enqueue a srv_task and then wait on the task's condition
 * variable, streaming what it publishes. The inference thread (server/infer.c)
 * alone touches the engine's batch and the tasks' samplers. Everything marked
 * "under mu" is read or written only with srv_state.mu held, and the
 * inference thread never holds mu across a step, so /health, /metrics and
 * /slots never wait for a forward pass.
 */
#ifndef TS_SERVER_STATE_H
#define TS_SERVER_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../core/tessera.h"
#include "metrics.h"
#include "request.h"
#include "serve.h"
#include "text.h"

typedef enum { TASK_QUEUED = 0, TASK_RUNNING, TASK_DONE } srv_task_state;

typedef struct srv_task {
    /* Set by the HTTP thread before enqueue, read-only afterwards. */
    uint64_t id;
    bool chat, stream, include_usage;
    int32_t *ids;
    int n_ids;
    ts_sampling samp;
    long long max_tokens; /* -1: the context */
    char *stop[SRV_MAX_STOP];
    int n_stop;
    double t_arrive;
    long long created; /* Unix time of arrival (the response's "created") */
    /* Inference thread only. */
    int seq;
    long long pages; /* reserved KV pages: its whole run */
    ts_sampler *smp;
    srv_text text;   /* generated text: UTF-8 checked, stop strings held back */
    int n_tok;       /* tokens generated (n_gen is its copy under mu) */
    int tok_before;  /* n_tok before this step's sample */
    const char *fin; /* this step's outcome: NULL (go on), a finish reason, "error" */
    ts_err ferr;
    bool ignore_eos; /* end-of-generation tokens are never sampled (llama-server's) */
    double t_last;
    /* Under mu. */
    srv_task_state state;
    char *out;       /* published text (never retracted) */
    size_t out_len, out_cap;
    size_t *marks;   /* out_len after each publication: a stream sends one event each */
    int n_marks, cap_marks;
    int n_gen;       /* tokens generated */
    int prompt_done; /* prompt progress, copied after each step */
    int n_cached;    /* prompt tokens taken from the prefix cache */
    const char *finish; /* "stop" | "length" once done */
    bool failed;     /* done with err instead of a result */
    srv_error err;
    bool cancel;     /* the client left: the inference thread frees its sequence */
    int refs;        /* holders: the HTTP thread, the inference thread / queue */
    pthread_cond_t cv;
    struct srv_task *next; /* queue link */
} srv_task;

typedef struct {
    const srv_opts *o;
    ts_engine *eng;
    ts_batch *b;
    ts_engine_info info;
    char model_id[256];
    int chat_tmpl;        /* server/chat.h id; -1 unknown */
    int32_t *eog;         /* the vocabulary's end-of-generation ids */
    int n_eog;
    char chat_why[160];   /* why chat requests are refused when chat_tmpl < 0 */
    int n_ctx, n_seq;
    int64_t pages_total;
    long long n_predict;
    int max_queue;
    size_t max_body;
    time_t t_start;
    atomic_int ready;     /* 1 once the model is loaded */
    atomic_int stopping;  /* SIGINT/SIGTERM seen */
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* the inference thread waits here when idle */
    /* Under mu. */
    srv_task *q_head, *q_tail;
    int n_waiting, n_running;
    srv_task **slot;      /* (n_seq) the task on each sequence, NULL = idle */
    uint64_t next_id, rng;
    int64_t pages_used;   /* copied after each step */
    srv_metrics m;
} srv_state;

/* Drops one reference (under mu); frees the task at zero. */
void srv_task_unref(srv_state *st, srv_task *t);
/* Appends published text (under mu); false when out of memory. */
bool srv_task_publish(srv_task *t, const char *s, size_t n);
/* Ends a task with an error or a finish reason (under mu), waking its waiter. */
void srv_task_fail(srv_task *t, int http, const char *type, const char *msg);
void srv_task_finish(srv_task *t, const char *reason);

/* JSON bodies (server/respond.c); malloc'ed strings, NULL when out of memory.
 * srv_json_result: the non-stream response of a finished task (under mu).
 * srv_json_chunk: one stream event's JSON for text (n bytes) or, when finish
 * is set, the last chunk; role adds the chat delta's role. */
char *srv_json_result(const srv_state *st, const srv_task *t);
char *srv_json_chunk(const srv_state *st, const srv_task *t, const char *text, size_t n,
                     bool role, const char *finish);
char *srv_json_usage_chunk(const srv_state *st, const srv_task *t);
char *srv_json_slots(const srv_state *st); /* under mu */
char *srv_json_models(const srv_state *st);

/* The inference loop: returns once stopping is set and every task has ended. */
void srv_infer_loop(srv_state *st);

/* Starts / stops libmicrohttpd (server/http.c). */
typedef struct srv_http srv_http;
int srv_http_start(srv_state *st, srv_http **out, char *msg, size_t cap);
void srv_http_quiesce(srv_http *h);
void srv_http_stop(srv_http *h);
int srv_http_port(const srv_http *h);

double srv_now(void);

#endif
