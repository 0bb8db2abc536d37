/*
 * tools/run_args.h: `tessera run`'s options, shared by tools/cmd_run.c (one
 * prompt on a session) and tools/cmd_run_parallel.c (--prompts on a batch).
 */
#ifndef TS_RUN_ARGS_H
#define TS_RUN_ARGS_H

#include "tessera.h"

typedef struct {
    const char *model, *prompt, *file, *prompts;
    long long n_predict, threads, chunk, n_ctx, parallel, batch_tokens, kv_size;
    int schedule;
    bool dry_run;
    int kv_k, kv_v; /* ts_kv_type of the K and V caches */
    int numa;
    const char *cpu_range;
    ts_sampling samp;
} run_args;

/* The context a run may use: -c, else the trained context (at least 4096). */
long long ts_run_ctx_limit(const run_args *a, int64_t n_ctx_train);
/* The context a run of a prompt of n_ids tokens sizes: -c, else min(trained,
 * 4096) grown to the prompt plus -n, within ts_run_ctx_limit. */
long long ts_run_ctx(const run_args *a, int64_t n_ctx_train, long long n_ids);
/* Bytes of prompt text that can fit ctx positions (ctx x the longest token + slack). */
size_t ts_run_prompt_byte_limit(const ts_engine *eng, const ts_engine_info *info, long long ctx);
/* --dry-run: the predicted peak resident memory, from the file's metadata. */
int ts_run_dry(const run_args *a);
/* --prompts FILE --parallel N: every line a prompt, all through one batch. */
int ts_run_parallel(const run_args *a);

#endif
