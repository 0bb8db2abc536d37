/*
 * server/respond.c: the JSON bodies of completion and chat responses, stream
 * chunks, /slots and /v1/models, in the shapes OpenAI defines and
 * llama-server serves (ids "cmpl-N" / "chatcmpl-N", object "text_completion"
 * / "chat.completion" / "chat.completion.chunk", usage with prompt,
 * completion and total tokens plus prompt_tokens_details.cached_tokens).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "state.h"

static char *print(cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

/* A cJSON string of n bytes of text (which need not be NUL-terminated). */
static cJSON *str_n(const char *text, size_t n)
{
    char *c = malloc(n + 1);
    if (!c)
        return NULL;
    memcpy(c, text, n);
    c[n] = 0;
    cJSON *s = cJSON_CreateString(c);
    free(c);
    return s;
}

static cJSON *head(const srv_state *st, const srv_task *t, const char *object)
{
    cJSON *o = cJSON_CreateObject();
    char id[48];
    snprintf(id, sizeof(id), "%s-%llu", t->chat ? "chatcmpl" : "cmpl", (unsigned long long)t->id);
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)t->created);
    cJSON_AddStringToObject(o, "model", st->model_id);
    cJSON_AddStringToObject(o, "system_fingerprint", "tessera");
    return o;
}

static cJSON *usage(const srv_task *t)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", t->n_ids);
    cJSON_AddNumberToObject(u, "completion_tokens", t->n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", t->n_ids + t->n_gen);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", t->n_cached);
    return u;
}

char *srv_json_result(const srv_state *st, const srv_task *t)
{
    cJSON *o = head(st, t, t->chat ? "chat.completion" : "text_completion");
    cJSON *ch = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c);
    cJSON_AddNumberToObject(c, "index", 0);
    cJSON *text = str_n(t->out ? t->out : "", t->out_len);
    if (t->chat) {
        cJSON *m = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddItemToObject(m, "content", text);
    } else {
        cJSON_AddItemToObject(c, "text", text);
        cJSON_AddNullToObject(c, "logprobs");
    }
    cJSON_AddStringToObject(c, "finish_reason", t->finish ? t->finish : "stop");
    cJSON_AddItemToObject(o, "usage", usage(t));
    return print(o);
}

char *srv_json_chunk(const srv_state *st, const srv_task *t, const char *text, size_t n,
                     bool role, const char *finish)
{
    cJSON *o = head(st, t, t->chat ? "chat.completion.chunk" : "text_completion");
    cJSON *ch = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c);
    cJSON_AddNumberToObject(c, "index", 0);
    if (t->chat) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (role) {
            cJSON_AddStringToObject(d, "role", "assistant");
            cJSON_AddNullToObject(d, "content");
        } else if (!finish)
            cJSON_AddItemToObject(d, "content", str_n(text, n));
    } else {
        cJSON_AddItemToObject(c, "text", str_n(finish ? "" : text, finish ? 0 : n));
        cJSON_AddNullToObject(c, "logprobs");
    }
    if (finish)
        cJSON_AddStringToObject(c, "finish_reason", finish);
    else
        cJSON_AddNullToObject(c, "finish_reason");
    if (finish && !t->include_usage)
        cJSON_AddItemToObject(o, "usage", usage(t)); /* llama-server puts it on the last */
    return print(o);
}

char *srv_json_usage_chunk(const srv_state *st, const srv_task *t)
{
    cJSON *o = head(st, t, t->chat ? "chat.completion.chunk" : "text_completion");
    cJSON_AddArrayToObject(o, "choices");
    cJSON_AddItemToObject(o, "usage", usage(t));
    return print(o);
}

char *srv_json_slots(const srv_state *st)
{
    cJSON *a = cJSON_CreateArray();
    for (int s = 0; s < st->n_seq; s++) {
        const srv_task *t = st->slot[s];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(a, o);
        cJSON_AddNumberToObject(o, "id", s);
        cJSON_AddNumberToObject(o, "n_ctx", st->n_ctx);
        cJSON_AddBoolToObject(o, "is_processing", t != NULL);
        const char *state = !t ? "idle" : t->prompt_done < t->n_ids ? "prefill" : "decode";
        cJSON_AddStringToObject(o, "state", state);
        cJSON_AddNumberToObject(o, "id_task", t ? (double)t->id : -1);
        cJSON_AddNumberToObject(o, "n_prompt_tokens", t ? t->n_ids : 0);
        cJSON_AddNumberToObject(o, "n_prompt_tokens_processed", t ? t->prompt_done : 0);
        cJSON_AddNumberToObject(o, "n_prompt_tokens_cached", t ? t->n_cached : 0);
        cJSON_AddNumberToObject(o, "n_decoded", t ? t->n_gen : 0);
        cJSON_AddBoolToObject(o, "stream", t && t->stream);
    }
    return print(a);
}

char *srv_json_models(const srv_state *st)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *d = cJSON_AddArrayToObject(o, "data"), *m = cJSON_CreateObject();
    cJSON_AddItemToArray(d, m);
    cJSON_AddStringToObject(m, "id", st->model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)st->t_start);
    cJSON_AddStringToObject(m, "owned_by", "tessera");
    cJSON *meta = cJSON_AddObjectToObject(m, "meta");
    cJSON_AddStringToObject(meta, "arch", st->info.arch);
    cJSON_AddNumberToObject(meta, "n_vocab", (double)st->info.n_vocab);
    cJSON_AddNumberToObject(meta, "n_ctx_train", (double)st->info.n_ctx_train);
    cJSON_AddNumberToObject(meta, "n_embd", (double)st->info.n_embd);
    cJSON_AddNumberToObject(meta, "n_params", (double)st->info.n_params);
    cJSON_AddNumberToObject(meta, "size", (double)st->info.n_bytes);
    cJSON_AddNumberToObject(meta, "n_ctx", st->n_ctx);
    cJSON_AddNumberToObject(meta, "n_seq", st->n_seq);
    return print(o);
}
