/*
 * core/tokenizer.h: text <-> token ids from a GGUF vocabulary (internal to core/ and tools/).
 *
 * Two models, chosen by tokenizer.ggml.model: "llama" (SentencePiece-style merges by score with
 * byte fallback) and "gpt2" (byte-level BPE by merge rank, after a pre-tokenizer chosen by
 * tokenizer.ggml.pre). The behaviour follows llama.cpp's tokenizer exactly where it is defined by
 * the test vectors (../shared/vocab/ *.inp/.out), including its special-token partitioning.
 * Everything is validated at ts_vocab_load; a vocab that loaded never fails on any input text
 * (invalid UTF-8 included) except for out-of-memory.
 */
#ifndef TS_TOKENIZER_H
#define TS_TOKENIZER_H

#include "gguf.h"

typedef struct ts_vocab ts_vocab;

/* Builds the tokenizer from g's tokenizer.* metadata. The vocab copies what it needs: g may be
 * closed afterwards. Malformed metadata: TS_E_FORMAT naming the field and value; an unknown
 * tokenizer.ggml.model or tokenizer.ggml.pre: TS_E_UNSUPPORTED naming it. */
ts_status ts_vocab_load(ts_vocab **out, const ts_gguf *g, ts_err *err);
void ts_vocab_destroy(ts_vocab *v); /* NULL ok */

int32_t ts_vocab_n(const ts_vocab *v);
int32_t ts_vocab_bos(const ts_vocab *v); /* -1 if none */
int32_t ts_vocab_eos(const ts_vocab *v); /* -1 if none */
/* End of generation: eos, eot, eom and the end-of-turn tokens known by text. */
bool ts_vocab_is_eog(const ts_vocab *v, int32_t id);
bool ts_vocab_add_bos(const ts_vocab *v);

/* add_special: prepend BOS (and append EOS) when the vocab says so. parse_special: match the
 * texts of control/unknown tokens in text (user-defined tokens are always matched, as in
 * llama.cpp). Writes min(cap, total) ids to out (out may be NULL when cap is 0) and the total to
 * *n_out; call again with a larger buffer when *n_out > cap. Fails only with TS_E_NOMEM / TS_E_ARG. */
ts_status ts_vocab_tokenize(const ts_vocab *v, const char *text, size_t len, bool add_special,
                            bool parse_special, int32_t *out, size_t cap, size_t *n_out,
                            ts_err *err);

/* The bytes one token contributes to output text: SPM "▁" -> ' ', <0xNN> -> the byte, byte-level
 * BPE characters -> their bytes, user-defined tokens verbatim, control/unknown tokens nothing.
 * Writes at most cap bytes (truncating) and returns the number written; an id out of range gives 0. */
size_t ts_vocab_piece(const ts_vocab *v, int32_t id, char *buf, size_t cap);

const char *ts_vocab_model_name(const ts_vocab *v); /* "llama" / "gpt2" */
const char *ts_vocab_pre_name(const ts_vocab *v);   /* tokenizer.ggml.pre, "default" if absent */

/* ---- shared by core/tokenizer.c and core/tok_*.c only ---- */

/* A pre-tokenizer: the ordered regex list named by tokenizer.ggml.pre. */
typedef struct ts_tok_pre ts_tok_pre;
typedef struct {
    bool ignore_merges; /* a whole pre-token that is a vocab entry is emitted as is */
    bool add_bos;       /* default for add_bos_token when the key is absent */
} ts_tok_pre_info;

/* Unknown name: TS_E_UNSUPPORTED naming it. */
ts_status ts_tok_pre_create(ts_tok_pre **out, const char *name, ts_tok_pre_info *info,
                            ts_err *err);
void ts_tok_pre_destroy(ts_tok_pre *p);

/* A span of a text in bytes. */
typedef struct {
    size_t off, len;
} ts_tok_span;

/* Rewrites text as valid UTF-8 the way llama.cpp decodes it: a malformed sequence becomes
 * U+FFFD (one per bad lead byte), overlong forms are re-encoded canonically. dst needs
 * 3 * len bytes; returns the bytes written. */
size_t ts_tok_utf8_sanitize(const char *text, size_t len, char *dst);

/* Splits valid UTF-8 text into pre-tokens: each regex of the list splits every span left by the
 * previous one into matches and the gaps between them. *spans (malloc'd, caller frees) covers
 * text exactly, in order. */
ts_status ts_tok_pre_split(const ts_tok_pre *p, const char *text, size_t len, ts_tok_span **spans,
                           size_t *n_spans, ts_err *err);

#endif
