/*
 * server/infer.c: the inference thread. One loop: take the clients' cancels,
 * admit queued requests onto free sequences, run one scheduled step
 * (ts_batch_run: the planner picks decodes and prompt chunks under the
 * budget and policy), then sample every ready sequence and publish its text.
 *
 * Admission reserves a request's whole run in KV pages (prompt + max_tokens,
 * at most the context), as `tessera run --parallel` does, so a running
 * sequence never waits for another's pages; a request waits in the queue
 * until its reservation fits. mu is held only around queue and publication
 * work, never across ts_batch_run.
 *
 * Shutdown (stopping set): queued requests get 503; running ones keep
 * stepping for up to SHUTDOWN_GRACE_S, then end with 503 too.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "state.h"

#define SHUTDOWN_GRACE_S 3.0

double srv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void srv_task_unref(srv_state *st, srv_task *t)
{
    (void)st;
    if (--t->refs > 0)
        return;
    free(t->ids);
    for (int i = 0; i < t->n_stop; i++)
        free(t->stop[i]);
    free(t->out);
    free(t->marks);
    ts_sampler_destroy(t->smp);
    srv_text_free(&t->text);
    pthread_cond_destroy(&t->cv);
    free(t);
}

bool srv_task_publish(srv_task *t, const char *s, size_t n)
{
    if (t->n_marks == t->cap_marks) {
        int cap = t->cap_marks ? 2 * t->cap_marks : 64;
        size_t *m = realloc(t->marks, (size_t)cap * sizeof(size_t));
        if (!m)
            return false;
        t->marks = m;
        t->cap_marks = cap;
    }
    if (t->out_len + n + 1 > t->out_cap) {
        size_t cap = t->out_cap ? 2 * t->out_cap : 256;
        while (cap < t->out_len + n + 1)
            cap *= 2;
        char *p = realloc(t->out, cap);
        if (!p)
            return false;
        t->out = p;
        t->out_cap = cap;
    }
    memcpy(t->out + t->out_len, s, n);
    t->out_len += n;
    t->out[t->out_len] = 0;
    t->marks[t->n_marks++] = t->out_len;
    return true;
}

void srv_task_fail(srv_task *t, int http, const char *type, const char *msg)
{
    if (t->state == TASK_DONE)
        return;
    t->failed = true;
    t->err.http = http;
    snprintf(t->err.type, sizeof(t->err.type), "%s", type);
    snprintf(t->err.msg, sizeof(t->err.msg), "%s", msg);
    t->state = TASK_DONE;
    pthread_cond_broadcast(&t->cv);
}

void srv_task_finish(srv_task *t, const char *reason)
{
    if (t->state == TASK_DONE)
        return;
    t->finish = reason;
    t->state = TASK_DONE;
    pthread_cond_broadcast(&t->cv);
}

/* Frees task t's sequence (inference thread, mu held). */
static void release(srv_state *st, srv_task *t, long long *reserved)
{
    if (t->seq < 0)
        return;
    ts_batch_seq_close(st->b, t->seq);
    st->slot[t->seq] = NULL;
    *reserved -= t->pages;
    t->seq = -1;
    st->n_running--;
}

/* Ends the running task t (mu held): its text flushed and published. */
static void end_task(srv_state *st, srv_task *t, const char *reason, long long *reserved)
{
    if (reason) {
        srv_text_flush(&t->text);
        const size_t have = t->out_len;
        if (t->text.len > have && !srv_task_publish(t, t->text.s + have, t->text.len - have))
            srv_task_fail(t, 500, "server_error", "out of memory");
        srv_task_finish(t, reason);
        st->m.requests_ok++;
        srv_hist_add(&st->m.req_time, srv_now() - t->t_arrive);
    }
    release(st, t, reserved);
    srv_task_unref(st, t);
}

/* Admits queued tasks while a sequence and their reservation are free (mu held). */
static void admit(srv_state *st, long long *reserved)
{
    while (st->q_head) {
        srv_task *t = st->q_head;
        if (*reserved + t->pages > st->pages_total)
            return; /* FIFO: the head waits, the rest behind it */
        int seq;
        if (ts_batch_seq_open(st->b, &seq, NULL) != TS_OK)
            return;
        st->q_head = t->next;
        if (!st->q_head)
            st->q_tail = NULL;
        st->n_waiting--;
        ts_err err = {0};
        ts_batch_info b0, b1;
        ts_batch_get_info(st->b, &b0);
        if (ts_batch_seq_prompt(st->b, seq, t->ids, t->n_ids, NULL, &err) != TS_OK) {
            ts_batch_seq_close(st->b, seq);
            srv_task_fail(t, 400, "invalid_request_error", err.msg);
            st->m.requests_failed++;
            srv_task_unref(st, t);
            continue;
        }
        ts_batch_get_info(st->b, &b1);
        t->n_cached = (int)(b1.prefix_hit_tokens - b0.prefix_hit_tokens);
        int total;
        ts_batch_seq_progress(st->b, seq, &t->prompt_done, &total); /* cached ones count done */
        t->seq = seq;
        t->state = TASK_RUNNING;
        st->slot[seq] = t;
        st->n_running++;
        *reserved += t->pages;
    }
}

/* Samples ready task t's next token (no lock: inference-thread state only);
 * returns the finish reason, "error" (t->ferr), or NULL to go on. */
static const char *advance(srv_state *st, srv_task *t)
{
    ts_err *err = &t->ferr;
    const int pos = ts_batch_seq_pos(st->b, t->seq);
    if (t->max_tokens >= 0 && t->n_tok >= t->max_tokens)
        return "length";
    if (pos >= st->n_ctx)
        return "length";
    /* ignore_eos: the sampler bans the end-of-generation ids (route.c) */
    const float *logits = ts_batch_logits(st->b, t->seq);
    const int32_t tok = logits ? ts_sampler_sample(t->smp, logits) : -1;
    if (tok < 0) {
        snprintf(err->msg, sizeof(err->msg), "the logits at position %d are not finite", pos - 1);
        return "error";
    }
    if (ts_engine_is_eog(st->eng, tok))
        return "stop";
    ts_sampler_accept(t->smp, tok);
    char piece[256];
    const size_t n = ts_engine_piece(st->eng, tok, piece, sizeof(piece));
    if (!srv_text_push(&t->text, piece, n)) {
        snprintf(err->msg, sizeof(err->msg), "out of memory");
        return "error";
    }
    t->n_tok++;
    if (srv_text_stop(&t->text, t->stop, t->n_stop))
        return "stop";
    if (t->max_tokens >= 0 && t->n_tok >= t->max_tokens)
        return "length";
    if (pos + 1 > st->n_ctx)
        return "length";
    if (ts_batch_seq_push(st->b, t->seq, tok, err) != TS_OK)
        return "error";
    return NULL;
}

/* After a step: sample the ready ones without the lock, then publish and
 * end the finished under it. */
static void after_step(srv_state *st, const int *ready, int n_ready, long long *reserved)
{
    const double now = srv_now();
    for (int r = 0; r < n_ready; r++) {
        srv_task *t = st->slot[ready[r]]; /* slot[] changes only on this thread */
        if (t) {
            t->tok_before = t->n_tok;
            t->fin = advance(st, t);
        }
    }
    pthread_mutex_lock(&st->mu);
    for (int s = 0; s < st->n_seq; s++) {
        srv_task *t = st->slot[s];
        if (t) {
            int done, total;
            ts_batch_seq_progress(st->b, s, &done, &total);
            st->m.prompt_tokens += (uint64_t)(done - t->prompt_done);
            t->prompt_done = done;
        }
    }
    for (int r = 0; r < n_ready; r++) {
        srv_task *t = st->slot[ready[r]];
        if (!t || t->cancel) /* the next loop frees a cancelled one */
            continue;
        t->n_gen = t->n_tok;
        if (t->n_tok > t->tok_before) {
            st->m.generated_tokens++;
            if (t->tok_before == 0)
                srv_hist_add(&st->m.ttft, now - t->t_arrive);
            else
                srv_hist_add(&st->m.itl, now - t->t_last);
            t->t_last = now;
        }
        const char *fin = t->fin;
        if (fin && !strcmp(fin, "error")) {
            srv_task_fail(t, 500, "server_error", t->ferr.msg);
            st->m.requests_failed++;
            end_task(st, t, NULL, reserved);
            continue;
        }
        if (fin) {
            end_task(st, t, fin, reserved);
            continue;
        }
        const size_t safe = srv_text_safe(&t->text, t->stop, t->n_stop);
        if (safe > t->out_len &&
            !srv_task_publish(t, t->text.s + t->out_len, safe - t->out_len)) {
            srv_task_fail(t, 500, "server_error", "out of memory");
            end_task(st, t, NULL, reserved);
            continue;
        }
        pthread_cond_broadcast(&t->cv);
    }
    ts_batch_info bi;
    ts_batch_get_info(st->b, &bi);
    st->pages_used = bi.pages_total - bi.pages_free;
    st->m.prefix_hit_tokens = (uint64_t)bi.prefix_hit_tokens;
    pthread_mutex_unlock(&st->mu);
}

/* Cancels, shutdown and admission before a step (mu held). Returns whether
 * there is work to step. */
static bool before_step(srv_state *st, long long *reserved, double *deadline)
{
    if (atomic_load(&st->stopping)) {
        if (*deadline == 0)
            *deadline = srv_now() + SHUTDOWN_GRACE_S;
        while (st->q_head) {
            srv_task *t = st->q_head;
            st->q_head = t->next;
            st->n_waiting--;
            srv_task_fail(t, 503, "unavailable_error", "the server is shutting down");
            srv_task_unref(st, t);
        }
        st->q_tail = NULL;
    }
    /* Queued requests whose client left: out of the queue. */
    for (srv_task **pp = &st->q_head; *pp;) {
        srv_task *t = *pp;
        if (!t->cancel) {
            pp = &t->next;
            continue;
        }
        *pp = t->next;
        st->n_waiting--;
        st->m.requests_cancelled++;
        srv_task_fail(t, 499, "cancelled", "the client disconnected");
        srv_task_unref(st, t);
    }
    st->q_tail = NULL;
    for (srv_task *t = st->q_head; t; t = t->next)
        st->q_tail = t;
    const bool late = *deadline != 0 && srv_now() > *deadline;
    for (int s = 0; s < st->n_seq; s++) {
        srv_task *t = st->slot[s];
        if (t && t->cancel) {
            st->m.requests_cancelled++;
            srv_task_fail(t, 499, "cancelled", "the client disconnected");
            end_task(st, t, NULL, reserved);
        } else if (t && late) {
            srv_task_fail(t, 503, "unavailable_error", "the server shut down before it ended");
            st->m.requests_failed++;
            end_task(st, t, NULL, reserved);
        }
    }
    if (!atomic_load(&st->stopping))
        admit(st, reserved);
    return st->n_running > 0;
}

void srv_infer_loop(srv_state *st)
{
    int *ready = malloc((size_t)st->n_seq * sizeof(int));
    long long reserved = 0;
    double deadline = 0;
    for (;;) {
        pthread_mutex_lock(&st->mu);
        bool work = ready && before_step(st, &reserved, &deadline);
        if (!ready) { /* no memory for the loop: fail everything, wait for the stop */
            atomic_store(&st->stopping, 1);
            work = false;
        }
        if (!work) {
            if (atomic_load(&st->stopping) && !st->q_head && st->n_running == 0) {
                pthread_mutex_unlock(&st->mu);
                break;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&st->work_cv, &st->mu, &ts);
            pthread_mutex_unlock(&st->mu);
            continue;
        }
        pthread_mutex_unlock(&st->mu);
        int n_ready = 0;
        ts_err err = {0};
        const double t0 = srv_now();
        int tok_before = 0, tok_after = 0;
        for (int s = 0; s < st->n_seq; s++) {
            int d, tt;
            ts_batch_seq_progress(st->b, s, &d, &tt);
            tok_before += d;
        }
        ts_status rs = ts_batch_run(st->b, ready, st->n_seq, &n_ready, &err);
        const double dt = srv_now() - t0;
        for (int s = 0; s < st->n_seq; s++) {
            int d, tt;
            ts_batch_seq_progress(st->b, s, &d, &tt);
            tok_after += d;
        }
        pthread_mutex_lock(&st->mu);
        if (rs != TS_OK) {
            /* No page for anyone, or a failed step: end the running requests
             * with the reason rather than spin. */
            for (int s = 0; s < st->n_seq; s++)
                if (st->slot[s]) {
                    srv_task_fail(st->slot[s], rs == TS_E_NOMEM ? 503 : 500,
                                  rs == TS_E_NOMEM ? "unavailable_error" : "server_error",
                                  err.msg);
                    st->m.requests_failed++;
                    end_task(st, st->slot[s], NULL, &reserved);
                }
            pthread_mutex_unlock(&st->mu);
            continue;
        }
        /* Tokens this step: prompt progress plus the decodes among the ready. */
        int dec = 0;
        for (int r = 0; r < n_ready; r++)
            dec += st->slot[ready[r]] && st->slot[ready[r]]->n_tok > 0;
        const int step_tok = tok_after - tok_before + dec;
        st->m.steps++;
        st->m.step_tokens += (uint64_t)step_tok;
        st->m.step_seconds += dt;
        if (dt > st->m.step_max_seconds)
            st->m.step_max_seconds = dt;
        srv_hist_add(&st->m.step_tok, step_tok);
        srv_hist_add(&st->m.step_time, dt);
        pthread_mutex_unlock(&st->mu);
        after_step(st, ready, n_ready, &reserved);
    }
    free(ready);
}
