/*
 * tests/fuzz/fuzz_request.c: libFuzzer harness for the server's request parser
 * (server/request.c): each input is an HTTP body, parsed as each of the four kinds
 * (completion, chat, tokenize, detokenize), so one input reaches every field's checks.
 * Checked (abort = finding), only what server/request.h promises:
 *  - a rejection is a 4xx/5xx with a message and an error.type, *out is all zero, and
 *    srv_error_json writes an object that parses back with the same code;
 *  - an accepted request holds NUL-terminated strings of valid UTF-8 whose lengths are as
 *    stated (no NUL inside), token ids >= 0, at most the limits of stop strings, messages
 *    and ids, and sampling values in their documented ranges (finite, no wrapped casts);
 *  - srv_request_free leaves it zeroed. ASan/LSan catch the leaks and overruns.
 */
#include "../../server/request.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_request: %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Strict UTF-8: shortest forms only, no surrogates, at most U+10FFFF. */
static bool valid_utf8(const unsigned char *s, size_t n)
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

static void check_text(const char *what, const char *s, size_t want_len)
{
    CHECK(s, "%s is NULL", what);
    size_t n = strlen(s);
    CHECK(want_len == (size_t)-1 || n == want_len, "%s: strlen %zu, stated %zu", what, n,
          want_len);
    CHECK(valid_utf8((const unsigned char *)s, n), "%s is not valid UTF-8", what);
}

static void check_sampling(const srv_request *r)
{
    const ts_sampling *s = &r->samp;
    CHECK(r->max_tokens >= -1, "max_tokens %lld", r->max_tokens);
    CHECK(isfinite(s->temp) && s->temp >= 0, "temp %g", (double)s->temp);
    CHECK(s->top_k >= 0 && s->repeat_last_n > 0, "top_k %d last_n %d", s->top_k,
          s->repeat_last_n);
    CHECK(s->top_p >= 0 && s->top_p <= 1 && s->min_p >= 0 && s->min_p <= 1, "top_p %g min_p %g",
          (double)s->top_p, (double)s->min_p);
    CHECK(isfinite(s->repeat_penalty) && s->repeat_penalty > 0, "repeat_penalty %g",
          (double)s->repeat_penalty);
    CHECK(r->seed_set || s->seed == 0, "seed %llu without seed_set", (unsigned long long)s->seed);
    CHECK(r->n_stop >= 0 && r->n_stop <= SRV_MAX_STOP, "n_stop %d", r->n_stop);
    for (int i = 0; i < r->n_stop; i++) {
        check_text("stop", r->stop[i], (size_t)-1);
        size_t n = strlen(r->stop[i]);
        CHECK(n > 0 && n <= SRV_MAX_STOP_LEN, "stop %d: %zu bytes", i, n);
    }
    if (r->model)
        check_text("model", r->model, (size_t)-1);
}

static void check_accepted(const srv_request *r, srv_req_kind kind)
{
    CHECK(r->kind == kind, "kind %d, asked %d", (int)r->kind, (int)kind);
    if (r->prompt)
        check_text("prompt", r->prompt, r->prompt_len);
    CHECK(r->n_prompt_ids <= SRV_MAX_PROMPT_TOKENS, "%zu ids", r->n_prompt_ids);
    CHECK(r->prompt_ids || r->n_prompt_ids == 0, "ids NULL with n %zu", r->n_prompt_ids);
    for (size_t i = 0; r->prompt_ids && i < r->n_prompt_ids; i++)
        CHECK(r->prompt_ids[i] >= 0, "id %zu is %d", i, r->prompt_ids[i]);
    CHECK(r->n_msgs >= 0 && r->n_msgs <= SRV_MAX_MESSAGES, "n_msgs %d", r->n_msgs);
    for (int m = 0; m < r->n_msgs; m++) {
        check_text("role", r->msgs[m].role, (size_t)-1);
        check_text("content", r->msgs[m].content, (size_t)-1);
    }
    switch (kind) {
    case SRV_REQ_COMPLETION:
        CHECK(!r->prompt != !r->prompt_ids, "completion: text %p ids %p", (void *)r->prompt,
              (void *)r->prompt_ids);
        break;
    case SRV_REQ_CHAT:
        CHECK(r->n_msgs >= 1 && r->msgs, "chat: %d messages", r->n_msgs);
        break;
    case SRV_REQ_TOKENIZE:
        CHECK(r->prompt, "tokenize without content");
        break;
    case SRV_REQ_DETOKENIZE:
        CHECK(r->prompt_ids, "detokenize without tokens");
        break;
    }
    check_sampling(r);
}

static void check_rejected(const srv_request *r, const srv_error *err)
{
    static const srv_request zero;
    CHECK(!memcmp(r, &zero, sizeof(zero)), "*out not zeroed on failure");
    CHECK(err->http >= 400 && err->http < 600, "http %d", err->http);
    CHECK(memchr(err->msg, 0, sizeof(err->msg)) && err->msg[0], "message empty or unterminated");
    CHECK(memchr(err->type, 0, sizeof(err->type)) && err->type[0], "type empty or unterminated");
    char *json = srv_error_json(err);
    CHECK(json, "srv_error_json returned NULL");
    cJSON *root = cJSON_Parse(json);
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "error"), "code");
    CHECK(cJSON_IsNumber(code) && code->valuedouble == err->http, "error JSON %s", json);
    cJSON_Delete(root);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int kind = SRV_REQ_COMPLETION; kind <= SRV_REQ_DETOKENIZE; kind++) {
        srv_request r;
        srv_error err;
        memset(&r, 0xA5, sizeof(r));
        if (srv_request_parse((const char *)data, size, (srv_req_kind)kind, &r, &err) == 0) {
            check_accepted(&r, (srv_req_kind)kind);
            srv_request_free(&r);
            static const srv_request zero;
            CHECK(!memcmp(&r, &zero, sizeof(zero)), "not zeroed after free");
        } else {
            check_rejected(&r, &err);
        }
    }
    return 0;
}
