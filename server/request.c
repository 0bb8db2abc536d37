/*
 * server/request.c: srv_request_parse, the one gate between an HTTP body and the engine.
 * Owns: the checks on the raw bytes (no NUL, strict UTF-8, no \u0000 escape, one JSON
 * object and nothing after it but whitespace), then every known field's type and range.
 * Does not own: size limits on the body (the HTTP layer answers 413 first), token ids
 * against the vocabulary, chat templates.
 * Invariants: on failure *out is zeroed and nothing is held; every message is ASCII text of
 * ours that names the field and never quotes the request's bytes, so srv_error_json always
 * writes valid JSON; numbers are range-checked as doubles before any cast (UBSan's
 * float-cast-overflow sees none out of range).
 * cJSON (1.7.15) writes its global error slot on every parse, even a good one, so concurrent
 * HTTP threads would race on it: parses are serialized by g_parse_lock. Parsing a body of
 * the HTTP layer's largest size takes milliseconds; the engine thread never takes the lock.
 */
#include "request.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seeds are JSON numbers, read as doubles: above 2^53 they are no longer exact. */
#define SEED_MAX 9007199254740992.0

static pthread_mutex_t g_parse_lock = PTHREAD_MUTEX_INITIALIZER;

__attribute__((format(printf, 3, 4))) static int fail(srv_error *err, int http,
                                                      const char *fmt, ...)
{
    va_list ap;
    err->http = http;
    snprintf(err->type, sizeof(err->type), "%s",
             http >= 500 ? "server_error" : "invalid_request_error");
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return -1;
}

#define BAD(...) fail(err, 400, __VA_ARGS__)
#define NOMEM() fail(err, 500, "out of memory")

/* Strict UTF-8 (RFC 3629): shortest forms only, no surrogates, at most U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                                  : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!len || len > n - i)
            return false;
        uint32_t cp = len == 1 ? c : (uint32_t)(c & (0x7F >> len));
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

/* True if the text holds the escape \u0000 (an odd run of backslashes before "u0000").
 * cJSON would end the C string there and silently drop the rest of the value. Outside a
 * string a backslash is a syntax error anyway, so scanning the whole body is exact. */
static bool has_nul_escape(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\')
            continue;
        size_t run = 0;
        while (i < n && s[i] == '\\')
            run++, i++;
        if ((run & 1) && n - i >= 5 && !memcmp(s + i, "u0000", 5))
            return true;
    }
    return false;
}

/* The body as one JSON object in *root, or -1. A UTF-8 BOM is skipped (cJSON does, as
 * llama-server's nlohmann::json does); anything but whitespace after the value is a 400. */
static int parse_root(const char *body, size_t len, cJSON **root, srv_error *err)
{
    if (!body || len == 0)
        return BAD("the request body is empty");
    if (memchr(body, 0, len))
        return BAD("the request body contains a NUL byte");
    if (!utf8_valid((const unsigned char *)body, len))
        return BAD("the request body is not valid UTF-8");
    if (has_nul_escape(body, len))
        return BAD("strings must not contain \\u0000");
    char *buf = malloc(len + 1);
    if (!buf)
        return NOMEM();
    memcpy(buf, body, len);
    buf[len] = 0;
    const char *end = NULL;
    pthread_mutex_lock(&g_parse_lock);
    /* len + 1: the NUL is in the buffer, so require_null_terminated means "nothing after
     * the value but whitespace". */
    *root = cJSON_ParseWithLengthOpts(buf, len + 1, &end, 1);
    pthread_mutex_unlock(&g_parse_lock);
    size_t at = end && end >= buf && end <= buf + len ? (size_t)(end - buf) : len;
    free(buf);
    if (!*root)
        return BAD("invalid JSON at byte %zu (or nested deeper than %d)", at,
                   CJSON_NESTING_LIMIT);
    if (!cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        return BAD("the request body must be a JSON object");
    }
    return 0;
}

/* The field, or NULL when absent or null (null means the default everywhere). */
static const cJSON *field(const cJSON *obj, const char *name)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNull(j) ? NULL : j;
}

/* A number field as a double in [lo, hi] (lo excluded when lo_open), an integer when
 * integer. 1 and *v set, 0 when absent (or null), -1 with err. */
typedef struct {
    const char *name;
    double lo, hi;
    bool lo_open, integer;
} num_rule;

static int get_num(const cJSON *obj, const num_rule *r, double *v, srv_error *err)
{
    const cJSON *j = field(obj, r->name);
    if (!j)
        return 0;
    const char *what = r->integer ? "an integer" : "a number";
    if (!cJSON_IsNumber(j))
        return BAD("'%s' must be %s", r->name, what);
    double d = j->valuedouble;
    if (!isfinite(d))
        return BAD("'%s' is out of range", r->name);
    if (r->integer && d != floor(d))
        return BAD("'%s' must be %s", r->name, what);
    if (d < r->lo || d > r->hi || (r->lo_open && d == r->lo)) {
        if (r->hi == HUGE_VAL)
            return BAD("'%s' must be %s %.16g", r->name, r->lo_open ? ">" : ">=", r->lo);
        return BAD("'%s' must be between %.16g and %.16g", r->name, r->lo, r->hi);
    }
    *v = d;
    return 1;
}

static int get_float(const cJSON *obj, const num_rule *r, float *v, srv_error *err)
{
    double d = 0;
    int rc = get_num(obj, r, &d, err);
    if (rc == 1 && fabs(d) > FLT_MAX)
        return BAD("'%s' is out of range", r->name);
    if (rc == 1)
        *v = (float)d;
    return rc;
}

static int get_int(const cJSON *obj, const char *name, int *v, srv_error *err)
{
    num_rule r = {name, 0, INT_MAX, false, true};
    double d = 0;
    int rc = get_num(obj, &r, &d, err);
    if (rc == 1)
        *v = (int)d;
    return rc;
}

static int get_bool(const cJSON *obj, const char *name, bool *v, srv_error *err)
{
    const cJSON *j = field(obj, name);
    if (!j)
        return 0;
    if (!cJSON_IsBool(j))
        return BAD("'%s' must be a boolean", name);
    *v = cJSON_IsTrue(j);
    return 1;
}

/* A malloc'ed copy of a cJSON string (no NUL inside: \u0000 was refused). */
static char *dup_str(const char *s, size_t *len)
{
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p)
        memcpy(p, s, n + 1);
    if (len)
        *len = n;
    return p;
}

/* max_tokens and its aliases: n_predict (llama-server's own, which wins, as there),
 * max_tokens, max_completion_tokens (OpenAI's newer name). Every one given is checked. */
static int parse_max_tokens(const cJSON *root, srv_request *out, srv_error *err)
{
    static const char *const names[] = {"n_predict", "max_tokens", "max_completion_tokens"};
    bool set = false;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        num_rule r = {names[i], -1, INT_MAX, false, true};
        double d = 0;
        int rc = get_num(root, &r, &d, err);
        if (rc < 0)
            return BAD("'%s' must be an integer, -1 (no limit) or between 0 and %d", names[i],
                       INT_MAX);
        if (rc == 1 && !set)
            out->max_tokens = (long long)d, set = true;
    }
    return 0;
}

static int parse_seed(const cJSON *root, srv_request *out, srv_error *err)
{
    num_rule r = {"seed", -1, SEED_MAX, false, true};
    double d = 0;
    int rc = get_num(root, &r, &d, err);
    if (rc < 0)
        return BAD("'seed' must be an integer, -1 (random) or between 0 and %.16g", SEED_MAX);
    if (rc == 1 && d >= 0) {
        out->samp.seed = (uint64_t)d;
        out->seed_set = true;
    }
    return 0;
}

static int add_stop(srv_request *out, const char *s, srv_error *err)
{
    size_t n = strlen(s);
    if (n == 0)
        return 0;
    if (out->n_stop == SRV_MAX_STOP)
        return BAD("'stop' holds more than %d strings", SRV_MAX_STOP);
    if (n > SRV_MAX_STOP_LEN)
        return BAD("a 'stop' string is longer than %d bytes", SRV_MAX_STOP_LEN);
    out->stop[out->n_stop] = dup_str(s, NULL);
    if (!out->stop[out->n_stop])
        return NOMEM();
    out->n_stop++;
    return 0;
}

/* stop: a string or an array of strings; empty strings are dropped (they would match
 * everywhere). */
static int parse_stop(const cJSON *root, srv_request *out, srv_error *err)
{
    const cJSON *j = field(root, "stop");
    if (!j)
        return 0;
    if (cJSON_IsString(j))
        return add_stop(out, j->valuestring, err);
    if (!cJSON_IsArray(j))
        return BAD("'stop' must be a string or an array of strings");
    for (const cJSON *s = j->child; s; s = s->next) {
        if (!cJSON_IsString(s))
            return BAD("'stop' must be a string or an array of strings");
        if (add_stop(out, s->valuestring, err))
            return -1;
    }
    return 0;
}

static int parse_stream(const cJSON *root, srv_request *out, srv_error *err)
{
    if (get_bool(root, "stream", &out->stream, err) < 0 ||
        get_bool(root, "ignore_eos", &out->ignore_eos, err) < 0)
        return -1;
    const cJSON *opts = field(root, "stream_options");
    if (!opts)
        return 0;
    if (!cJSON_IsObject(opts))
        return BAD("'stream_options' must be an object");
    if (get_bool(opts, "include_usage", &out->include_usage, err) < 0)
        return BAD("'stream_options.include_usage' must be a boolean");
    return 0;
}

/* The sampling fields shared by completions and chat. repeat_last_n 0 is llama-server's
 * "no window": ts_sampling reads 0 as 64, so it turns the penalty off instead. */
static int parse_sampling(const cJSON *root, srv_request *out, srv_error *err)
{
    static const num_rule temp = {"temperature", 0, HUGE_VAL, false, false};
    static const num_rule top_p = {"top_p", 0, 1, false, false};
    static const num_rule min_p = {"min_p", 0, 1, false, false};
    static const num_rule pen = {"repeat_penalty", 0, HUGE_VAL, true, false};
    ts_sampling *s = &out->samp;
    int last_n = s->repeat_last_n;
    if (parse_max_tokens(root, out, err) || get_float(root, &temp, &s->temp, err) < 0 ||
        get_int(root, "top_k", &s->top_k, err) < 0 ||
        get_float(root, &top_p, &s->top_p, err) < 0 ||
        get_float(root, &min_p, &s->min_p, err) < 0 ||
        get_float(root, &pen, &s->repeat_penalty, err) < 0 ||
        get_int(root, "repeat_last_n", &last_n, err) < 0 || parse_seed(root, out, err) ||
        parse_stop(root, out, err) || parse_stream(root, out, err))
        return -1;
    if (last_n == 0)
        s->repeat_penalty = 1.0f;
    else
        s->repeat_last_n = last_n;
    const cJSON *model = field(root, "model");
    if (model && !cJSON_IsString(model))
        return BAD("'model' must be a string");
    if (model && !(out->model = dup_str(model->valuestring, NULL)))
        return NOMEM();
    return 0;
}

/* An array of token ids (integers in [0, INT32_MAX]) into a malloc'ed array of at least
 * one element, so *ids is non-NULL even for an empty array. */
static int parse_ids(const cJSON *arr, const char *name, int32_t **ids, size_t *n,
                     srv_error *err)
{
    size_t count = 0;
    for (const cJSON *t = arr->child; t; t = t->next)
        if (++count > SRV_MAX_PROMPT_TOKENS)
            return BAD("'%s' holds more than %d tokens", name, SRV_MAX_PROMPT_TOKENS);
    int32_t *v = malloc((count ? count : 1) * sizeof(*v));
    if (!v)
        return NOMEM();
    size_t i = 0;
    for (const cJSON *t = arr->child; t; t = t->next, i++) {
        double d = cJSON_IsNumber(t) ? t->valuedouble : -1;
        if (!isfinite(d) || d != floor(d) || d < 0 || d > INT32_MAX) {
            free(v);
            return BAD("'%s' must be an array of token ids (integers from 0 to %d)", name,
                       INT32_MAX);
        }
        v[i] = (int32_t)d;
    }
    *ids = v;
    *n = count;
    return 0;
}

/* prompt: a string, an array of token ids, or an array of exactly one string. */
static int parse_prompt(const cJSON *root, srv_request *out, srv_error *err)
{
    const cJSON *j = field(root, "prompt");
    if (!j)
        return BAD("'prompt' is required");
    if (cJSON_IsArray(j) && j->child && cJSON_IsString(j->child)) {
        if (j->child->next)
            return BAD("'prompt' as an array holds token ids or exactly one string");
        j = j->child;
    }
    if (cJSON_IsString(j)) {
        out->prompt = dup_str(j->valuestring, &out->prompt_len);
        return out->prompt ? 0 : NOMEM();
    }
    if (!cJSON_IsArray(j))
        return BAD("'prompt' must be a string or an array of token ids");
    if (!j->child)
        return BAD("'prompt' must not be an empty array");
    return parse_ids(j, "prompt", &out->prompt_ids, &out->n_prompt_ids, err);
}

/* Text parts joined as llama.cpp does for templates without typed content
 * (common_chat_msgs_to_json_oaicompat): a '\n' before a part once the text is non-empty. */
static int join_parts(const cJSON *parts, int m, char **out, srv_error *err)
{
    size_t total = 1;
    int p = 0;
    for (const cJSON *part = parts->child; part; part = part->next, p++) {
        const cJSON *type = cJSON_IsObject(part) ? field(part, "type") : NULL;
        const cJSON *text = cJSON_IsObject(part) ? field(part, "text") : NULL;
        if (!cJSON_IsObject(part))
            return BAD("messages[%d].content[%d] must be an object", m, p);
        if (!cJSON_IsString(type))
            return BAD("messages[%d].content[%d].type must be a string", m, p);
        if (strcmp(type->valuestring, "text"))
            return BAD("only text content is supported (messages[%d].content[%d])", m, p);
        if (!cJSON_IsString(text))
            return BAD("messages[%d].content[%d].text must be a string", m, p);
        total += strlen(text->valuestring) + 1;
    }
    char *s = malloc(total);
    if (!s)
        return NOMEM();
    size_t len = 0;
    for (const cJSON *part = parts->child; part; part = part->next) {
        const char *text = field(part, "text")->valuestring;
        size_t n = strlen(text);
        if (len)
            s[len++] = '\n';
        memcpy(s + len, text, n);
        len += n;
    }
    s[len] = 0;
    *out = s;
    return 0;
}

static int parse_message(const cJSON *msg, int m, srv_msg *out, srv_error *err)
{
    if (!cJSON_IsObject(msg))
        return BAD("messages[%d] must be an object", m);
    const cJSON *role = field(msg, "role");
    if (!role)
        return BAD("messages[%d].role is required", m);
    if (!cJSON_IsString(role))
        return BAD("messages[%d].role must be a string", m);
    if (!(out->role = dup_str(role->valuestring, NULL)))
        return NOMEM();
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    if (!content)
        return BAD("messages[%d].content is required", m);
    if (cJSON_IsNull(content) || cJSON_IsString(content)) {
        out->content = dup_str(cJSON_IsNull(content) ? "" : content->valuestring, NULL);
        return out->content ? 0 : NOMEM();
    }
    if (!cJSON_IsArray(content))
        return BAD("messages[%d].content must be a string, an array of parts or null", m);
    return join_parts(content, m, &out->content, err);
}

static int parse_messages(const cJSON *root, srv_request *out, srv_error *err)
{
    const cJSON *j = field(root, "messages");
    if (!j)
        return BAD("'messages' is required");
    if (!cJSON_IsArray(j))
        return BAD("'messages' must be an array");
    int n = 0;
    for (const cJSON *m = j->child; m; m = m->next)
        if (++n > SRV_MAX_MESSAGES)
            return BAD("'messages' holds more than %d messages", SRV_MAX_MESSAGES);
    if (n == 0)
        return BAD("'messages' must not be empty");
    if (!(out->msgs = calloc((size_t)n, sizeof(*out->msgs))))
        return NOMEM();
    out->n_msgs = n;
    int i = 0;
    for (const cJSON *m = j->child; m; m = m->next, i++)
        if (parse_message(m, i, &out->msgs[i], err))
            return -1;
    return 0;
}

static int parse_tokenize(const cJSON *root, srv_request *out, srv_error *err)
{
    const cJSON *j = field(root, "content");
    if (!j)
        return BAD("'content' is required");
    if (!cJSON_IsString(j))
        return BAD("'content' must be a string");
    if (get_bool(root, "add_special", &out->add_special, err) < 0 ||
        get_bool(root, "with_pieces", &out->with_pieces, err) < 0)
        return -1;
    out->prompt = dup_str(j->valuestring, &out->prompt_len);
    return out->prompt ? 0 : NOMEM();
}

static int parse_detokenize(const cJSON *root, srv_request *out, srv_error *err)
{
    const cJSON *j = field(root, "tokens");
    if (!j)
        return BAD("'tokens' is required");
    if (!cJSON_IsArray(j))
        return BAD("'tokens' must be an array of token ids");
    return parse_ids(j, "tokens", &out->prompt_ids, &out->n_prompt_ids, err);
}

/* llama-server's defaults (see request.h). */
static void set_defaults(srv_request *r, srv_req_kind kind)
{
    r->kind = kind;
    r->max_tokens = -1;
    r->samp = (ts_sampling){.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                            .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0};
}

static int parse_kind(const cJSON *root, srv_req_kind kind, srv_request *out, srv_error *err)
{
    switch (kind) {
    case SRV_REQ_COMPLETION:
        return parse_prompt(root, out, err) || parse_sampling(root, out, err) ? -1 : 0;
    case SRV_REQ_CHAT:
        return parse_messages(root, out, err) || parse_sampling(root, out, err) ? -1 : 0;
    case SRV_REQ_TOKENIZE:
        return parse_tokenize(root, out, err);
    case SRV_REQ_DETOKENIZE:
        return parse_detokenize(root, out, err);
    }
    return fail(err, 500, "unknown request kind %d", (int)kind);
}

int srv_request_parse(const char *body, size_t len, srv_req_kind kind, srv_request *out,
                      srv_error *err)
{
    srv_error local;
    if (!err)
        err = &local;
    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    cJSON *root = NULL;
    if (parse_root(body, len, &root, err))
        return -1;
    set_defaults(out, kind);
    int rc = parse_kind(root, kind, out, err);
    cJSON_Delete(root);
    if (rc)
        srv_request_free(out);
    return rc;
}

void srv_request_free(srv_request *r)
{
    if (!r)
        return;
    free(r->prompt);
    free(r->prompt_ids);
    for (int i = 0; i < r->n_msgs; i++) {
        free(r->msgs[i].role);
        free(r->msgs[i].content);
    }
    free(r->msgs);
    for (int i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    free(r->model);
    memset(r, 0, sizeof(*r));
}

char *srv_error_json(const srv_error *err)
{
    char msg[sizeof(err->msg) + 1], type[sizeof(err->type) + 1];
    /* Bounded copies: the struct's arrays need not be NUL-terminated. */
    snprintf(msg, sizeof(msg), "%.*s", (int)sizeof(err->msg), err->msg);
    snprintf(type, sizeof(type), "%.*s", (int)sizeof(err->type), err->type);
    if (!type[0])
        snprintf(type, sizeof(type), "%s",
                 err->http >= 500 ? "server_error" : "invalid_request_error");
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    char *s = NULL;
    if (e && cJSON_AddNumberToObject(e, "code", err->http) &&
        cJSON_AddStringToObject(e, "message", msg) && cJSON_AddStringToObject(e, "type", type)) {
        /* llama-server's context overflow carries the two sizes (clients read them). */
        if (!strcmp(type, "exceed_context_size_error")) {
            cJSON_AddNumberToObject(e, "n_prompt_tokens", (double)err->n_prompt_tokens);
            cJSON_AddNumberToObject(e, "n_ctx", (double)err->n_ctx);
        }
        s = cJSON_PrintUnformatted(root);
    }
    cJSON_Delete(root);
    return s;
}
