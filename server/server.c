/*
 * server/server.c: srv_run: listen first (so /health answers 503 while the
 * model loads), load the engine and open the batch, pick the chat template,
 * then run the inference loop on this thread until SIGINT/SIGTERM.
 *
 * Signals: SIGINT and SIGTERM are blocked in every thread (the pool's and
 * libmicrohttpd's inherit the mask) and taken by one thread in sigwait, which
 * sets stopping, stops accepting connections and wakes the loop; the loop
 * answers queued requests 503, gives running ones a grace period, and
 * returns. SIGPIPE is ignored: a closed client is an error on its socket.
 */
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat.h"
#include "state.h"

typedef struct {
    srv_state *st;
    srv_http *http;
    sigset_t set;
    atomic_int done;
} sig_ctx;

static void *sig_thread(void *arg)
{
    sig_ctx *c = arg;
    int sig = 0;
    for (;;) {
        if (sigwait(&c->set, &sig))
            continue;
        if (sig == SIGUSR1) /* srv_run is done: no signal came */
            break;
        fprintf(stderr, "tessera serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
        atomic_store(&c->st->stopping, 1);
        srv_http_quiesce(c->http);
        pthread_mutex_lock(&c->st->mu);
        pthread_cond_broadcast(&c->st->work_cv);
        pthread_mutex_unlock(&c->st->mu);
        break;
    }
    atomic_store(&c->done, 1);
    return NULL;
}

static void model_id(srv_state *st, const char *path)
{
    if (st->o->alias) {
        snprintf(st->model_id, sizeof(st->model_id), "%s", st->o->alias);
        return;
    }
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s", path);
    snprintf(st->model_id, sizeof(st->model_id), "%s", basename(tmp));
}

/* The template: --chat-template NAME (or a template text), else the GGUF's,
 * else chatml as llama.cpp falls back to. 0, or 1 when NAME is unknown. */
static int pick_template(srv_state *st)
{
    const char *name = st->o->chat_template;
    if (name) {
        st->chat_tmpl = srv_chat_from_name(name);
        if (st->chat_tmpl < 0)
            st->chat_tmpl = srv_chat_detect(name, strlen(name));
        if (st->chat_tmpl < 0) {
            fprintf(stderr, "tessera serve: --chat-template '%s' is not a known template; "
                            "known: %s\n", name, srv_chat_names());
            return 1;
        }
        return 0;
    }
    size_t len = 0;
    const char *tmpl = ts_engine_meta_str(st->eng, "tokenizer.chat_template", &len);
    if (!tmpl) {
        st->chat_tmpl = srv_chat_from_name("chatml");
        fprintf(stderr, "tessera serve: the model has no tokenizer.chat_template; chat uses "
                        "chatml (as llama.cpp); --chat-template NAME picks another\n");
        return 0;
    }
    st->chat_tmpl = srv_chat_detect(tmpl, len);
    if (st->chat_tmpl < 0) {
        snprintf(st->chat_why, sizeof(st->chat_why),
                 "the model's chat template is not one tessera knows; start the server with "
                 "--chat-template NAME");
        fprintf(stderr, "tessera serve: the model's tokenizer.chat_template (%zu bytes) matches "
                        "none of the known templates: chat requests will get 400. Pass "
                        "--chat-template NAME, one of: %s\n", len, srv_chat_names());
    }
    return 0;
}

static int load(srv_state *st)
{
    const srv_opts *o = st->o;
    ts_err err = {0};
    ts_engine_opts eo = {.model_path = o->model_path, .n_threads = o->threads, .numa = o->numa,
                         .cpu_range = o->cpu_range};
    if (ts_engine_create(&st->eng, &eo, &err) != TS_OK) {
        fprintf(stderr, "tessera serve: %s\n", err.msg);
        return 1;
    }
    ts_engine_get_info(st->eng, &st->info);
    const int bt = o->batch_tokens > 0 ? o->batch_tokens : 512;
    ts_batch_opts bo = {.n_seq = o->parallel > 0 ? o->parallel : 1, .n_ctx = o->n_ctx,
                        .kv_size = o->kv_size, .max_tokens = bt,
                        .chunk = o->chunk > 0 ? o->chunk : bt, .schedule = o->schedule,
                        .kv_type_k = o->kv_k, .kv_type_v = o->kv_v, .no_prefix_cache = o->no_prefix_cache};
    if (ts_batch_create(&st->b, st->eng, &bo, &err) != TS_OK) {
        fprintf(stderr, "tessera serve: %s\n", err.msg);
        return 1;
    }
    ts_batch_info bi;
    ts_batch_get_info(st->b, &bi);
    st->n_seq = bi.n_seq;
    st->n_ctx = (int)bi.n_ctx;
    st->pages_total = bi.pages_total;
    st->slot = calloc((size_t)st->n_seq, sizeof(*st->slot));
    st->eog = malloc((size_t)st->info.n_vocab * sizeof(int32_t));
    if (!st->eog)
        return 1;
    for (int32_t i = 0; i < (int32_t)st->info.n_vocab; i++)
        if (ts_engine_is_eog(st->eng, i))
            st->eog[st->n_eog++] = i;
    if (!st->slot || pick_template(st))
        return 1;
    srv_metrics_init(&st->m, bt);
    model_id(st, o->model_path);
    fprintf(stderr,
            "tessera serve: %s (%s, %.1f M params), %d sequences x %d positions, KV pool %lld "
            "pages of %d, budget %d tokens a step, %s, chat template %s\n",
            st->model_id, st->info.arch, (double)st->info.n_params / 1e6, st->n_seq, st->n_ctx,
            (long long)st->pages_total, TS_BATCH_PAGE, bt, ts_schedule_name(o->schedule),
            st->chat_tmpl >= 0 ? srv_chat_name(st->chat_tmpl) : "none");
    return 0;
}

static int write_port(const char *path, int port)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return 1;
    fprintf(f, "%d\n", port);
    return fclose(f) != 0;
}

int srv_run(const srv_opts *o)
{
    srv_state st = {.o = o, .chat_tmpl = -1, .n_predict = o->n_predict,
                    .max_queue = o->max_queue > 0 ? o->max_queue : 256,
                    .max_body = o->max_body ? o->max_body : ((size_t)8 << 20),
                    .t_start = time(NULL), .rng = (uint64_t)time(NULL) ^ (uint64_t)getpid()};
    pthread_mutex_init(&st.mu, NULL);
    pthread_cond_init(&st.work_cv, NULL);
    signal(SIGPIPE, SIG_IGN);
    sig_ctx sc = {.st = &st};
    sigemptyset(&sc.set);
    sigaddset(&sc.set, SIGINT);
    sigaddset(&sc.set, SIGTERM);
    sigaddset(&sc.set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sc.set, NULL);
    char msg[256];
    int rc = 1;
    pthread_t sig_tid;
    bool sig_started = false;
    if (srv_http_start(&st, &sc.http, msg, sizeof(msg))) {
        fprintf(stderr, "tessera serve: %s\n", msg);
        goto done;
    }
    const int port = srv_http_port(sc.http);
    fprintf(stderr, "tessera serve: listening on http://%s%s%s:%d\n",
            strchr(o->host, ':') ? "[" : "", o->host, strchr(o->host, ':') ? "]" : "", port);
    if (o->port_file && write_port(o->port_file, port)) {
        fprintf(stderr, "tessera serve: cannot write --port-file %s\n", o->port_file);
        goto done;
    }
    sig_started = pthread_create(&sig_tid, NULL, sig_thread, &sc) == 0;
    if (!sig_started || load(&st))
        goto done;
    atomic_store(&st.ready, 1);
    fprintf(stderr, "tessera serve: ready\n");
    srv_infer_loop(&st);
    rc = 0;
done:
    atomic_store(&st.stopping, 1);
    if (sig_started) {
        if (!atomic_load(&sc.done))
            pthread_kill(sig_tid, SIGUSR1);
        pthread_join(sig_tid, NULL);
    }
    srv_http_stop(sc.http);
    free(st.slot);
    free(st.eog);
    ts_batch_destroy(st.b);
    ts_engine_destroy(st.eng);
    pthread_cond_destroy(&st.work_cv);
    pthread_mutex_destroy(&st.mu);
    if (!rc)
        fprintf(stderr, "tessera serve: stopped\n");
    return rc;
}
