/*
 * server/request.h: the JSON bodies of tessera serve's requests, parsed and
 * checked (cJSON) into plain structs before anything reaches the engine.
 * Pure: no engine, no HTTP, no global state (but the lock that serializes
 * cJSON's parser), so tests/fuzz/fuzz_request.c drives it with any bytes. Every rejection names the field and says why, in
 * an OpenAI error object's terms (HTTP status, error.type, message).
 *
 * Field names and defaults follow OpenAI and llama-server (tools/server in
 * llama.cpp v0.5.0): max_tokens (alias n_predict; -1 or absent = until the
 * context or an end-of-generation token), temperature 0.8, top_k 40,
 * top_p 0.95, min_p 0.05, repeat_penalty 1.0 (off), repeat_last_n 64, seed
 * (absent or -1 = random), stop (string or list of strings), stream. Unknown
 * fields are ignored (clients send many); a known field of the wrong type is
 * a 400.
 */
#ifndef TS_SERVER_REQUEST_H
#define TS_SERVER_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/tessera.h"

/* Limits of one request (a request beyond them is a 400, never an allocation). */
#define SRV_MAX_STOP 16          /* stop strings */
#define SRV_MAX_STOP_LEN 256     /* bytes of one stop string */
#define SRV_MAX_MESSAGES 1024    /* chat messages */
#define SRV_MAX_PROMPT_TOKENS (1 << 20) /* ids in a token-array prompt or /detokenize */

typedef enum {
    SRV_REQ_COMPLETION = 0, /* POST /v1/completions (and /completion) */
    SRV_REQ_CHAT,           /* POST /v1/chat/completions */
    SRV_REQ_TOKENIZE,       /* POST /tokenize: {"content": str, "add_special": bool} */
    SRV_REQ_DETOKENIZE      /* POST /detokenize: {"tokens": [int, ...]} */
} srv_req_kind;

typedef struct {
    char *role;    /* NUL-terminated, owned */
    char *content; /* NUL-terminated, owned; a content array's text parts joined */
} srv_msg;

typedef struct {
    srv_req_kind kind;
    /* completion: prompt as text (prompt != NULL) or as ids (prompt_ids != NULL);
     * tokenize: the content text. Owned, NUL-terminated, prompt_len bytes of valid
     * UTF-8 (invalid UTF-8 or an embedded \u0000 is a 400). */
    char *prompt;
    size_t prompt_len;
    int32_t *prompt_ids; /* completion with an array prompt; detokenize's tokens (non-NULL
                          * there even when empty) */
    size_t n_prompt_ids;
    srv_msg *msgs; /* chat */
    int n_msgs;
    long long max_tokens; /* -1 = no limit but the context */
    ts_sampling samp;     /* temp, top_k, top_p, min_p, repeat_penalty, repeat_last_n, seed;
                           * a request's repeat_last_n 0 (llama-server: no window) comes as
                           * repeat_penalty 1 (off), since ts_sampling reads 0 as 64 */
    bool seed_set;        /* false: the server picks a random seed */
    char *stop[SRV_MAX_STOP]; /* owned, NUL-terminated, each non-empty */
    int n_stop;
    bool stream;
    bool ignore_eos;     /* llama-server's: end-of-generation tokens are never sampled */
    bool include_usage;  /* stream_options.include_usage */
    bool add_special;    /* tokenize: add BOS as the vocabulary asks (default false) */
    bool with_pieces;    /* tokenize: answer [{"id":..,"piece":..}] */
    char *model;         /* the "model" field if given (ignored but echoed); owned */
} srv_request;

typedef struct {
    int http;        /* 400, 413, ... */
    char type[48];   /* OpenAI error.type: "invalid_request_error", ... */
    char msg[256];   /* error.message */
    long long n_prompt_tokens, n_ctx; /* exceed_context_size_error's extra fields */
} srv_error;

/* Parses body (len bytes, not necessarily NUL-terminated, any bytes at all)
 * as a request of the given kind. 0 and *out filled (free with
 * srv_request_free), or -1 and *err filled (*out left empty, nothing to free).
 * Safe to call from several threads (cJSON's parser is serialized inside). */
int srv_request_parse(const char *body, size_t len, srv_req_kind kind, srv_request *out,
                      srv_error *err);
void srv_request_free(srv_request *r);

/* The OpenAI error object as llama-server writes it:
 * {"error":{"code":http,"message":msg,"type":type}}; malloc'ed, NUL-terminated. */
char *srv_error_json(const srv_error *err);

#endif
