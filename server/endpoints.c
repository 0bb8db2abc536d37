/*
 * server/endpoints.c: the small endpoints: /v1/models, /slots, /metrics,
 * /tokenize (llama-server's shape: {"tokens": [...]}, or with with_pieces
 * [{"id": n, "piece": "..."}]) and /detokenize ({"content": "..."}; pieces
 * joined, any invalid UTF-8 replaced so the JSON stays valid).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "route.h"

static char *err_json(int *code, int http, const char *type, const char *msg)
{
    srv_error e = {.http = http};
    snprintf(e.type, sizeof(e.type), "%s", type);
    snprintf(e.msg, sizeof(e.msg), "%s", msg);
    *code = http;
    return srv_error_json(&e);
}

static char *tokenize(srv_state *st, const srv_request *r, int *code)
{
    size_t n = 0;
    ts_err err = {0};
    if (ts_engine_tokenize_special(st->eng, r->prompt, r->prompt_len, r->add_special, NULL, 0,
                                   &n, &err) != TS_OK)
        return err_json(code, 400, "invalid_request_error", err.msg);
    if (n > SRV_MAX_PROMPT_TOKENS)
        return err_json(code, 400, "invalid_request_error", "more than 2^20 tokens");
    int32_t *ids = malloc((n + 1) * sizeof(int32_t));
    if (!ids || ts_engine_tokenize_special(st->eng, r->prompt, r->prompt_len, r->add_special,
                                           ids, n, &n, &err) != TS_OK) {
        free(ids);
        return err_json(code, ids ? 400 : 500, ids ? "invalid_request_error" : "server_error",
                        ids ? err.msg : "out of memory");
    }
    cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "tokens");
    for (size_t i = 0; i < n; i++) {
        if (!r->with_pieces) {
            cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
            continue;
        }
        char piece[256];
        size_t pl = ts_engine_piece(st->eng, ids[i], piece, sizeof(piece) - 1);
        srv_text t = {0};
        srv_text_push(&t, piece, pl);
        srv_text_flush(&t);
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "id", ids[i]);
        cJSON_AddStringToObject(p, "piece", t.s ? t.s : "");
        cJSON_AddItemToArray(a, p);
        srv_text_free(&t);
    }
    free(ids);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static char *detokenize(srv_state *st, const srv_request *r, int *code)
{
    srv_text t = {0};
    for (size_t i = 0; i < r->n_prompt_ids; i++) {
        if (r->prompt_ids[i] < 0 || r->prompt_ids[i] >= st->info.n_vocab) {
            srv_text_free(&t);
            char m[128];
            snprintf(m, sizeof(m), "token %d at index %zu is outside the vocabulary (%lld)",
                     (int)r->prompt_ids[i], i, (long long)st->info.n_vocab);
            return err_json(code, 400, "invalid_request_error", m);
        }
        char piece[256];
        size_t pl = ts_engine_piece(st->eng, r->prompt_ids[i], piece, sizeof(piece));
        if (!srv_text_push(&t, piece, pl)) {
            srv_text_free(&t);
            return err_json(code, 500, "server_error", "out of memory");
        }
    }
    srv_text_flush(&t);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "content", t.s ? t.s : "");
    srv_text_free(&t);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

char *srv_route_simple(srv_state *st, int route, const char *body, size_t len, int *code)
{
    *code = 200;
    if (route == SRV_ROUTE_MODELS)
        return srv_json_models(st);
    if (route == SRV_ROUTE_SLOTS) {
        pthread_mutex_lock(&st->mu);
        char *s = srv_json_slots(st);
        pthread_mutex_unlock(&st->mu);
        return s;
    }
    srv_request r;
    srv_error e = {0};
    const srv_req_kind kind = route == SRV_ROUTE_TOKENIZE ? SRV_REQ_TOKENIZE : SRV_REQ_DETOKENIZE;
    if (srv_request_parse(body, len, kind, &r, &e)) {
        *code = e.http;
        return srv_error_json(&e);
    }
    char *s = kind == SRV_REQ_TOKENIZE ? tokenize(st, &r, code) : detokenize(st, &r, code);
    srv_request_free(&r);
    return s;
}

char *srv_route_metrics(srv_state *st)
{
    pthread_mutex_lock(&st->mu);
    srv_metrics m = st->m;
    srv_gauges g = {.running = st->n_running, .waiting = st->n_waiting, .n_seq = st->n_seq,
                    .pages_used = st->pages_used, .pages_total = st->pages_total,
                    .uptime = difftime(time(NULL), st->t_start),
                    .ready = atomic_load(&st->ready)};
    pthread_mutex_unlock(&st->mu);
    return srv_metrics_format(&m, &g);
}
