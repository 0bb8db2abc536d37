/*
 * tools/cmd_run_dry.c: `tessera run ... --dry-run`: tokenizes the prompt (or
 * every line of --prompts), sizes the context as the run would, prints the
 * predicted peak resident memory term by term (core/estimate.c) and exits
 * without placing the weights or running anything.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmds.h"
#include "estimate.h"
#include "fileio.h"
#include "model.h"
#include "run_args.h"
#include "tokenizer.h"

#define CMD "run"
#define MIB (1024.0 * 1024.0)

/* Positions a run of a prompt of n_ids tokens holds: its context, capped by
 * prompt + -n. */
static int64_t run_positions(const run_args *a, int64_t n_ctx_train, int64_t n_ids)
{
    const long long ctx = ts_run_ctx(a, n_ctx_train, n_ids);
    return n_ids + a->n_predict < ctx ? n_ids + a->n_predict : ctx;
}

static int count_tokens(const ts_vocab *v, const char *text, size_t len, size_t *n, ts_err *err)
{
    return ts_vocab_tokenize(v, text, len, true, false, NULL, 0, n, err) != TS_OK;
}

int ts_run_dry(const run_args *a)
{
    ts_err err = {0};
    ts_model *m = NULL;
    ts_vocab *v = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = 1;
    if (ts_model_load(&m, a->model, &err) != TS_OK ||
        ts_vocab_load(&v, m->gguf, &err) != TS_OK)
        goto done;
    const int64_t train = m->hp.n_ctx_train;
    int64_t n_pos = 0, max_ids = 0;
    int n_prompts = 0;
    const char *file = a->file ? a->file : a->prompts;
    if (file && ts_file_read(file, "prompt file", (size_t)64 << 20, &text, &len, &err) != TS_OK)
        goto done;
    const char *src = file ? text : a->prompt;
    const size_t src_len = file ? len : strlen(a->prompt);
    for (size_t off = 0; off <= src_len;) { /* one prompt, or one a line for --prompts */
        size_t l = src_len - off;
        const char *nl = a->prompts ? memchr(src + off, '\n', l) : NULL;
        if (nl)
            l = (size_t)(nl - (src + off));
        size_t n = 0;
        if ((l || !a->prompts) && count_tokens(v, src + off, l, &n, &err))
            goto done;
        if (l || !a->prompts) {
            const int64_t p = run_positions(a, train, (int64_t)n);
            n_pos = p > n_pos ? p : n_pos;
            max_ids = (int64_t)n > max_ids ? (int64_t)n : max_ids;
            n_prompts++;
        }
        off += l + 1;
        if (!a->prompts)
            break;
    }
    if (!n_prompts) {
        snprintf(err.msg, sizeof(err.msg), "no prompts");
        goto done;
    }
    const long long chunk = a->chunk == -2 ? 512 : a->chunk == 0 ? max_ids : a->chunk;
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    ts_mem_query q = {
        .n_pos = n_pos,
        .n_seq = a->prompts ? (int)(a->parallel < n_prompts ? a->parallel : n_prompts) : 1,
        .chunk_rows = a->prompts ? a->batch_tokens : (chunk < max_ids ? chunk : max_ids),
        .n_workers = (uint32_t)(a->threads ? a->threads : n_cpu > 0 ? n_cpu : 1),
        .kv_type_k = a->kv_k,
        .kv_type_v = a->kv_v,
    };
    if (q.chunk_rows < 1)
        q.chunk_rows = 1;
    ts_mem_estimate e;
    if (ts_estimate_memory(a->model, &q, &e, &err) != TS_OK)
        goto done;
    char kvd[16];
    printf("dry run: predicted peak RSS %.1f MiB = weights %.1f + KV %.1f + activations %.1f + "
           "base %.1f (MiB)\n",
           e.total_bytes / MIB, e.weight_bytes / MIB, e.kv_bytes / MIB, e.scratch_bytes / MIB,
           e.base_bytes / MIB);
    printf("  %d prompt(s), longest %lld tokens, %lld positions per sequence, %d sequence(s), "
           "%lld rows per pass, %u threads, KV %s\n",
           n_prompts, (long long)max_ids, (long long)n_pos, q.n_seq, (long long)q.chunk_rows,
           q.n_workers, ts_cli_kv_desc(a->kv_k, a->kv_v, kvd, sizeof(kvd)));
    rc = 0;
done:
    if (rc)
        ts_cli_error(CMD, "%s", err.msg);
    free(text);
    ts_vocab_destroy(v);
    ts_model_destroy(m);
    return rc;
}
