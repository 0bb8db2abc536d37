/*
 * core/tessera.h: Tessera's only public header.
 *
 * Includes only <stddef.h> <stdint.h> <stdbool.h> and exposes no SIMD,
 * pthread or hwloc types. Resource owners are opaque handles created with
 * ts_x_create(&out, &opts, &err) and freed with ts_x_destroy(x) (NULL ok).
 * Every fallible call returns ts_status; 0 (TS_OK) means success everywhere.
 */
#ifndef TESSERA_H
#define TESSERA_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef enum {
    TS_OK = 0,
    TS_E_IO,
    TS_E_FORMAT,
    TS_E_NOMEM,
    TS_E_UNSUPPORTED,
    TS_E_ARG,
    TS_E_STATE
} ts_status;

/* Optional error context: a one-line message naming the field and value. */
typedef struct {
    ts_status status;
    char msg[256];
} ts_err;

const char *ts_status_str(ts_status st);

/* ---- engine: a loaded model, its tokenizer and the worker pool ---- */
typedef struct ts_engine ts_engine;
typedef struct ts_session ts_session;

/* NUMA placement of the weights (see core/place.h). */
typedef enum {
    TS_NUMA_DEFAULT = 0, /* distribute on a multi-node machine, else none */
    TS_NUMA_DISTRIBUTE,  /* matrices split by output rows across nodes */
    TS_NUMA_REPLICATE,   /* a full copy of the matrices on every node */
    TS_NUMA_ISOLATE,     /* node 0 only: its cores, its memory */
    TS_NUMA_NONE         /* weights stay in the file mapping */
} ts_numa_mode;

typedef struct {
    const char *model_path;
    int n_threads;         /* 0 = one per core */
    int numa;              /* ts_numa_mode; 0 = default */
    const char *cpu_range; /* "A-B": only these CPUs; NULL = all */
} ts_engine_opts;

/* "distribute" "replicate" "isolate" "none" (and "default") -> mode; -1 if unknown. */
int ts_numa_parse(const char *name);
const char *ts_numa_name(int mode);

typedef struct {
    char arch[32];        /* general.architecture */
    int64_t n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_expert;
    int64_t n_ctx_train;
    uint64_t n_params, n_bytes; /* elements and bytes of all tensors */
    uint32_t n_threads;
    int numa;                   /* the resolved ts_numa_mode */
    uint32_t n_nodes;           /* NUMA nodes of the pool */
    uint64_t placed_bytes;      /* weight bytes copied onto nodes, all nodes */
    uint64_t weight_bytes;      /* bytes of one copy of the placed matrices */
    uint64_t mm_params;         /* weights multiplied per token (active experts only) */
} ts_engine_info;

ts_status ts_engine_create(ts_engine **out, const ts_engine_opts *opts, ts_err *err);
/* Int8 GOP/s one core reaches with the dot-product instruction of the kernel
 * level in use (a ~50 ms probe; TESSERA_ISA caps it); *probe names it. */
double ts_peak_int8_gops(const char **probe);
void ts_engine_destroy(ts_engine *eng);
void ts_engine_get_info(const ts_engine *eng, ts_engine_info *out);
/* Loads the model at path (every check of ts_engine_create's load, no
 * engine) and writes its layer count and sequence to buf, e.g. "4, (gdn,
 * gated-attn) x 2" or "16, attn x 16"; each entry is the token mixer (attn,
 * gated-attn, gdn) and, for MoE models, "+moe". */
ts_status ts_model_layer_pattern(const char *path, char *buf, size_t cap, ts_err *err);
/* Text -> ids; add_bos prepends BOS when the vocabulary asks for it. Writes
 * min(cap, total) ids and the total to *n_out (call again when it exceeds cap). */
ts_status ts_engine_tokenize(const ts_engine *eng, const char *text, size_t len, bool add_bos,
                             int32_t *out, size_t cap, size_t *n_out, ts_err *err);
/* As ts_engine_tokenize, but text spelling a special token ("<|im_start|>",
 * "</s>") becomes its id, as llama.cpp's parse_special (chat prompts, the server). */
ts_status ts_engine_tokenize_special(const ts_engine *eng, const char *text, size_t len,
                                     bool add_bos, int32_t *out, size_t cap, size_t *n_out,
                                     ts_err *err);
/* Bytes of token id's text (at most cap, not NUL-terminated); 0 if out of range. */
size_t ts_engine_piece(const ts_engine *eng, int32_t id, char *buf, size_t cap);
int32_t ts_engine_bos(const ts_engine *eng); /* -1 if none */
bool ts_engine_is_eog(const ts_engine *eng, int32_t id);
/* A string of the model file's metadata ("tokenizer.chat_template", "general.name"):
 * *len bytes, not NUL-terminated, valid while eng lives; NULL if absent or not a string. */
const char *ts_engine_meta_str(const ts_engine *eng, const char *key, size_t *len);
/* Weight bytes placed on pool node `node` (0 when out of range). */
uint64_t ts_engine_node_bytes(const ts_engine *eng, uint32_t node);
/* The worker plan (which worker on which core of which node) and the weight
 * placement per node, as text lines; snprintf-style, returns the length needed. */
size_t ts_engine_format_plan(const ts_engine *eng, char *buf, size_t cap);

/* ---- KV cache element types, as llama.cpp's -ctk / -ctv ---- */
/* f16 is the default (llama.cpp's, whose logits are the reference). q8_0 and
 * q4_0 are llama.cpp's blocks of 32 along a head (head_dim a multiple of 32;
 * otherwise creating the session or batch fails with TS_E_UNSUPPORTED); each
 * element is quantized once, when its token is written. Logits stay
 * byte-identical across chunks, threads and batches for every type. */
typedef enum { TS_KV_F16 = 0, TS_KV_F32, TS_KV_BF16, TS_KV_Q8_0, TS_KV_Q4_0 } ts_kv_type;
/* "f16" "f32" "bf16" "q8_0" "q4_0" (any case) -> ts_kv_type; -1 if unknown. */
int ts_kv_type_parse(const char *name);
const char *ts_kv_type_name(int type); /* "?" when out of range */

/* ---- session: KV cache and activations for one sequence ---- */
typedef struct {
    int n_ctx;   /* positions in the KV cache; 0 = min(model context, 4096) */
    int chunk;   /* prefill chunk in tokens: 0 = $TESSERA_PREFILL_CHUNK or 512, <0 = n_ctx */
    bool kv_f32; /* both caches in f32 (kept from before kv_type_k / kv_type_v) */
    int kv_type_k, kv_type_v; /* ts_kv_type of the K and V caches; 0 = f16 */
} ts_session_opts;

/* Scratch is sized by the chunk here, once; later calls never allocate. */
ts_status ts_session_create(ts_session **out, ts_engine *eng, const ts_session_opts *opts,
                            ts_err *err);
void ts_session_destroy(ts_session *s);
/* Appends n_tok tokens (any n_tok >= 1, cut into chunks). logits_all: NULL, or
 * (n_tok, n_vocab) floats receiving every position's logits. Afterwards
 * ts_session_logits() holds the last token's. Bits are identical for any
 * chunk size, thread count and ISA level. TS_E_ARG: id out of range or context
 * full. Weights that overflow or hold NaN/Inf give NaN logits from the first
 * position they reach on (earlier positions are unaffected); every NaN is the
 * quiet NaN 0x7fc00000, so even those bits match across levels. */
ts_status ts_session_prefill(ts_session *s, const int32_t *tokens, int n_tok, float *logits_all,
                             ts_err *err);
ts_status ts_session_decode(ts_session *s, int32_t token, ts_err *err);
const float *ts_session_logits(const ts_session *s); /* (n_vocab); NULL before any token */
int ts_session_pos(const ts_session *s);
int ts_session_n_ctx(const ts_session *s);
int ts_session_chunk(const ts_session *s);
/* Bytes of KV cache that n_pos positions of this session occupy (whole key
 * blocks of 64 positions, every attention layer and KV head, K and V); the
 * recurrent state of a hybrid model not included. */
uint64_t ts_session_kv_bytes(const ts_session *s, int64_t n_pos);
void ts_session_reset(ts_session *s); /* forget every position */
/* Forgets positions >= pos (pos <= ts_session_pos): the next token goes to
 * pos, and every later logit is byte-identical to a session that never held
 * the forgotten tokens. TS_E_ARG past the end; TS_E_UNSUPPORTED on a hybrid
 * model (its recurrent state has no history) unless pos is the current one.
 * The last logits are gone (ts_session_logits NULL) until the next token. */
ts_status ts_session_truncate(ts_session *s, int pos, ts_err *err);

/* ---- batch: many sequences on one engine, one forward pass per step ----
 * Each sequence has its own positions; their KV cache comes from one pool of
 * pages (TS_BATCH_PAGE positions of every layer), taken as a sequence grows
 * and returned when it closes. A sequence's logits are byte-identical to a
 * lone ts_session's for the same tokens, whatever else shares its steps and
 * however its tokens are split into steps (no reduction spans two rows).
 * Threads: one forward pass runs on an engine at a time. A ts_session or
 * ts_batch is used by one thread at a time; a step or prefill that finds the
 * engine busy with another returns TS_E_STATE. */
#define TS_BATCH_PAGE 64
typedef struct ts_batch ts_batch;
/* Who gets a step's tokens under ts_batch_run (sched/plan.c has worked examples):
 * PREFILL_FIRST: waiting prompts' chunks first, decodes the rest (time to first token);
 * INTERLEAVED: every decode each step, prompt chunks fill the rest (no decode stalls);
 * DECODE_PRIORITY: decodes first, but the first prompt keeps max(1, budget / 8) tokens.
 * Any policy serves a decode that waited 4 steps first. Prompts: in arrival order under
 * PREFILL_FIRST; under the others the one with fewest tokens left first (a short prompt is
 * not held behind a long one), except that a prompt passed over for 4 steps goes first. */
typedef enum {
    TS_SCHED_DEFAULT = 0, /* interleaved */
    TS_SCHED_PREFILL_FIRST,
    TS_SCHED_INTERLEAVED,
    TS_SCHED_DECODE_PRIORITY
} ts_schedule;
/* "prefill-first" "interleaved" "decode-priority" -> ts_schedule; -1 if unknown. */
int ts_schedule_parse(const char *name);
const char *ts_schedule_name(int schedule);
typedef struct {
    int n_seq;      /* sequences open at once; 0 = 1 */
    int n_ctx;      /* positions per sequence; 0 = min(model context, 4096) */
    int kv_size;    /* pool positions, all sequences together; 0 = n_seq full contexts */
    int max_tokens; /* tokens one step may carry (the budget); 0 = 512 */
    int chunk;      /* ts_batch_run: prompt tokens of one sequence per step; 0 = 512 */
    int schedule;   /* ts_batch_run: a ts_schedule */
    bool kv_f32;    /* pool in f32 (both caches); as kv_type_k = kv_type_v = TS_KV_F32 */
    int kv_type_k, kv_type_v; /* ts_kv_type of the pool's K and V; 0 = f16 */
    bool no_prefix_cache; /* default: prompts share cached pages of an equal prefix */
} ts_batch_opts;
/* One sequence's part of a step: n_tok tokens at its next positions. */
typedef struct {
    int seq;
    const int32_t *tokens;
    int n_tok;
    float *logits_all; /* NULL or (n_tok, n_vocab): every position's logits */
    bool logits;       /* keep the last token's logits for ts_batch_logits */
} ts_batch_span;
typedef struct {
    int n_seq, n_open;
    int64_t n_ctx, max_tokens;
    int64_t pages_total, pages_free; /* of TS_BATCH_PAGE positions (free: or evictable) */
    int64_t prefix_hit_tokens;       /* prompt positions taken from cached pages */
    int64_t prefix_cached_pages;
} ts_batch_info;

ts_status ts_batch_create(ts_batch **out, ts_engine *eng, const ts_batch_opts *opts,
                          ts_err *err);
void ts_batch_destroy(ts_batch *b);
/* A free sequence id in [0, n_seq) at position 0; TS_E_STATE when all are open. */
ts_status ts_batch_seq_open(ts_batch *b, int *seq, ts_err *err);
void ts_batch_seq_close(ts_batch *b, int seq); /* returns its pages; the id is free again */
int ts_batch_seq_pos(const ts_batch *b, int seq);
/* Runs every span in one forward pass (each sequence at most once). Checked
 * first, all or nothing: TS_E_ARG (bad span, context full), TS_E_NOMEM (the
 * pool lacks the pages: nothing changed, retry after a sequence closes). */
ts_status ts_batch_step(ts_batch *b, const ts_batch_span *spans, int n_spans, ts_err *err);
/* Scheduled use: queue a prompt (copied; logits_all NULL or (n_tok, n_vocab)
 * for every position's logits) or, once seq is ready, its next token; then
 * ts_batch_run plans one step under the schedule and runs it. ready gets the
 * sequences whose queued tokens are all done (fresh logits: sample, push).
 * TS_E_NOMEM: work is queued but no sequence can get a KV page (close one).
 * Prefix cache: a fresh sequence's prompt shares the cached pages of an
 * equal prefix (whole pages before its last token; not with logits_all), and
 * its logits are the bits a cold run gives. */
ts_status ts_batch_seq_prompt(ts_batch *b, int seq, const int32_t *tokens, int n_tok,
                              float *logits_all, ts_err *err);
ts_status ts_batch_seq_push(ts_batch *b, int seq, int32_t token, ts_err *err);
ts_status ts_batch_run(ts_batch *b, int *ready, int cap, int *n_ready, ts_err *err);
/* Prompt tokens queued in total and done so far (prefill progress). */
void ts_batch_seq_progress(const ts_batch *b, int seq, int *done, int *total);
/* The last logits kept for seq (n_vocab); NULL if none since it opened. */
const float *ts_batch_logits(const ts_batch *b, int seq);
void ts_batch_get_info(const ts_batch *b, ts_batch_info *out);

/* ---- sampling ---- */
typedef struct {
    float temp;           /* <= 0: greedy (argmax after penalties) */
    int top_k;            /* 0 = off */
    float top_p;          /* 0 or >= 1: off */
    float min_p;          /* 0 = off */
    float repeat_penalty; /* 0 or 1: off */
    int repeat_last_n;    /* 0 = 64 */
    uint64_t seed;
} ts_sampling;

typedef struct ts_sampler ts_sampler;
ts_status ts_sampler_create(ts_sampler **out, const ts_sampling *p, int64_t n_vocab, ts_err *err);
void ts_sampler_destroy(ts_sampler *smp);
/* Records a token (prompt or generated) for the repetition penalty. */
void ts_sampler_accept(ts_sampler *smp, int32_t token);
/* Picks the next token from logits (n_vocab); the logits are not modified.
 * -Inf excludes a token. Returns -1 when nothing can be sampled: a logit is
 * NaN or +Inf (before or after the repetition penalty) or all are -Inf. */
int32_t ts_sampler_sample(ts_sampler *smp, const float *logits);
/* Tokens never to draw from now on, as if their logits were -Inf (e.g. the
 * end-of-generation ids for ignore_eos); ids outside the vocabulary are
 * ignored. TS_E_NOMEM if the map cannot be allocated (first call only). */
ts_status ts_sampler_ban(ts_sampler *smp, const int32_t *ids, int n, ts_err *err);

#endif
