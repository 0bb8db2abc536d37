/*
 * tools/cmd_run.c: `tessera run`: tokenize a prompt, prefill it in chunks, then
 * sample and stream up to -n tokens to stdout. Ends with one stderr line:
 * prompt tokens, prefill t/s, decode t/s, peak RSS.
 * Exit 0 ok, 1 runtime error (model, file, context, NaN/Inf logits), 2 usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cmds.h"
#include "fileio.h"
#include "run_args.h"
#include "tessera.h"

#define CMD "run"

static int usage(const char *msg)
{
    ts_cli_error(CMD, "%s (usage: tessera run -m MODEL (-p TEXT | -f FILE | --prompts FILE "
                 "--parallel N [--batch-tokens B] [--schedule S] [--kv-size T]) -n N [-t T] "
                 "[--chunk C] [-c CTX] [--temp X] [--top-k K] [--top-p P] [--min-p P] "
                 "[--repeat-penalty X] [--seed S] [--kv-type|-ctk|-ctv " TS_CLI_KV_TYPES "] [--dry-run] "
                 "[--numa distribute|replicate|isolate|none] [--cpu-range A-B])", msg);
    return 2;
}

static bool parse_f(const char *s, float lo, float hi, float *out)
{
    char *end;
    if (!s || !*s)
        return false;
    double v = strtod(s, &end);
    if (*end || !(v >= lo && v <= hi))
        return false;
    *out = (float)v;
    return true;
}

/* Returns 0 on success, else the exit status (usage message printed). */
static int parse(int argc, char **argv, run_args *a)
{
    *a = (run_args){.n_predict = 128, .chunk = -2, .n_ctx = 0, .batch_tokens = 512,
                    .samp = {.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                             .repeat_penalty = 1.0f, .repeat_last_n = 64,
                             .seed = (uint64_t)time(NULL)}};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long iv;
        bool ok = v != NULL;
        const int kvo = ts_cli_kv_option(o, v, &a->kv_k, &a->kv_v);
        if (kvo > 0) {
            i++;
            continue;
        }
        if (kvo < 0) {
            char msg[160];
            snprintf(msg, sizeof(msg), "bad or missing value for %s (one of " TS_CLI_KV_TYPES ")", o);
            return usage(msg);
        }
        if (!strcmp(o, "--dry-run")) {
            a->dry_run = true;
            continue;
        }
        if (!strcmp(o, "-m")) a->model = v;
        else if (!strcmp(o, "-p")) a->prompt = v;
        else if (!strcmp(o, "-f")) a->file = v;
        else if (!strcmp(o, "--prompts")) a->prompts = v;
        else if (!strcmp(o, "--parallel") || !strcmp(o, "-np"))
            ok = ok && ts_cli_parse_i64(v, 1, 256, &a->parallel);
        else if (!strcmp(o, "--kv-size"))
            ok = ok && ts_cli_parse_i64(v, 1, 1 << 30, &a->kv_size);
        else if (!strcmp(o, "--batch-tokens"))
            ok = ok && ts_cli_parse_i64(v, 1, 1 << 20, &a->batch_tokens);
        else if (!strcmp(o, "--schedule")) ok = ok && (a->schedule = ts_schedule_parse(v)) >= 0;
        else if (!strcmp(o, "--cpu-range")) a->cpu_range = v;
        else if (!strcmp(o, "--numa")) ok = ok && (a->numa = ts_numa_parse(v)) >= 0;
        else if (!strcmp(o, "-n")) ok = ok && ts_cli_parse_i64(v, 0, 1 << 24, &a->n_predict);
        else if (!strcmp(o, "-t")) ok = ok && ts_cli_parse_i64(v, 1, 1024, &a->threads);
        else if (!strcmp(o, "--chunk")) ok = ok && ts_cli_parse_i64(v, 0, 1 << 24, &a->chunk);
        else if (!strcmp(o, "-c")) ok = ok && ts_cli_parse_i64(v, 1, 1 << 24, &a->n_ctx);
        else if (!strcmp(o, "--temp")) ok = ok && parse_f(v, 0.0f, 1e6f, &a->samp.temp);
        else if (!strcmp(o, "--top-p")) ok = ok && parse_f(v, 0.0f, 1.0f, &a->samp.top_p);
        else if (!strcmp(o, "--min-p")) ok = ok && parse_f(v, 0.0f, 1.0f, &a->samp.min_p);
        else if (!strcmp(o, "--repeat-penalty"))
            ok = ok && parse_f(v, 0.0f, 1e6f, &a->samp.repeat_penalty);
        else if (!strcmp(o, "--top-k")) {
            ok = ok && ts_cli_parse_i64(v, 0, 1 << 30, &iv);
            a->samp.top_k = ok ? (int)iv : 0;
        } else if (!strcmp(o, "--seed")) {
            ok = ok && ts_cli_parse_i64(v, 0, INT64_MAX, &iv);
            a->samp.seed = ok ? (uint64_t)iv : 0;
        } else {
            char msg[160];
            snprintf(msg, sizeof(msg), "unknown option '%s'", o);
            return usage(msg);
        }
        if (!ok) {
            char msg[160];
            snprintf(msg, sizeof(msg), "bad or missing value for %s%s%s", o, v ? ": " : "",
                     v ? v : "");
            return usage(msg);
        }
        i++;
    }
    if (!a->model)
        return usage("-m MODEL is required");
    if ((a->prompt != NULL) + (a->file != NULL) + (a->prompts != NULL) != 1)
        return usage("give exactly one of -p TEXT, -f FILE or --prompts FILE");
    if (a->prompts && !a->parallel)
        a->parallel = 1;
    if (a->parallel && !a->prompts)
        return usage("--parallel runs the prompts of --prompts FILE (one a line)");
    return 0;
}

/* The context a run may use: -c, else what the default sizing below may grow
 * to (the trained context, at least 4096). */
long long ts_run_ctx_limit(const run_args *a, int64_t n_ctx_train)
{
    if (a->n_ctx)
        return a->n_ctx;
    return n_ctx_train > 4096 ? n_ctx_train : 4096;
}

long long ts_run_ctx(const run_args *a, int64_t n_ctx_train, long long n_ids)
{
    if (a->n_ctx)
        return a->n_ctx;
    long long ctx = n_ctx_train < 4096 ? n_ctx_train : 4096;
    if (ctx < n_ids + a->n_predict)
        ctx = n_ids + a->n_predict;
    const long long limit = ts_run_ctx_limit(a, n_ctx_train);
    return ctx > limit ? limit : ctx;
}

/* A prompt file longer than the context limit times the vocabulary's longest
 * token cannot fit (every token covers at most that many bytes of text), so
 * it is refused before it is read, whatever its size (/dev/zero, a 50 GB
 * log). */
size_t ts_run_prompt_byte_limit(const ts_engine *eng, const ts_engine_info *info,
                                long long ctx)
{
    char piece[1024];
    size_t longest = 1;
    for (int64_t id = 0; id < info->n_vocab; id++) {
        size_t n = ts_engine_piece(eng, (int32_t)id, piece, sizeof(piece));
        if (n > longest)
            longest = n;
    }
    return (size_t)ctx * longest + 64;
}

/* Prefills in the session's chunks; on a terminal, a progress line on stderr
 * ("prompt 1536/4096 tokens (37%)"), erased when done. Chunk by chunk is the
 * same bits as one call (chunking never changes a logit). */
static ts_status prefill(ts_session *s, const int32_t *ids, int n, ts_err *err)
{
    const bool tty = isatty(STDERR_FILENO) && n > ts_session_chunk(s);
    const int step = ts_session_chunk(s) > 0 ? ts_session_chunk(s) : n;
    for (int done = 0; done < n;) {
        int len = n - done < step ? n - done : step;
        ts_status st = ts_session_prefill(s, ids + done, len, NULL, err);
        if (st != TS_OK)
            return st;
        done += len;
        if (tty)
            fprintf(stderr, "\rprompt %d/%d tokens (%d%%)", done, n, (int)(100LL * done / n));
    }
    if (tty)
        fprintf(stderr, "\r\033[K");
    return TS_OK;
}

/* Streams up to a->n_predict tokens; returns how many, or -1 on error. */
static int generate(ts_engine *eng, ts_session *s, ts_sampler *smp, const run_args *a, bool bare,
                    ts_err *err)
{
    char piece[256];
    int n_gen = 0;
    for (; n_gen < a->n_predict && ts_session_pos(s) < ts_session_n_ctx(s); n_gen++) {
        int32_t tok = ts_sampler_sample(smp, ts_session_logits(s));
        if (tok < 0) { /* NaN or +Inf logits: nothing to sample (core/tessera.h) */
            snprintf(err->msg, sizeof(err->msg),
                     "the logits at position %d are not finite (NaN/Inf): the model's weights "
                     "or activations overflow", ts_session_pos(s) - 1);
            return -1;
        }
        if (ts_engine_is_eog(eng, tok))
            break;
        ts_sampler_accept(smp, tok);
        size_t n = ts_engine_piece(eng, tok, piece, sizeof(piece));
        /* SentencePiece's word marker gives a leading space after a bare BOS. */
        size_t skip = (bare && n_gen == 0 && n && piece[0] == ' ') ? 1 : 0;
        fwrite(piece + skip, 1, n - skip, stdout);
        fflush(stdout);
        if (n_gen + 1 < a->n_predict && ts_session_decode(s, tok, err) != TS_OK)
            return -1;
    }
    return n_gen;
}

int cmd_run(int argc, char **argv)
{
    run_args a;
    int rc = parse(argc, argv, &a);
    if (rc)
        return rc;
    if (a.dry_run)
        return ts_run_dry(&a);
    if (a.prompts)
        return ts_run_parallel(&a);
    size_t plen = a.prompt ? strlen(a.prompt) : 0;
    char *text = NULL;
    const char *prompt = a.prompt;
    ts_err err = {0};
    ts_engine *eng = NULL;
    ts_session *s = NULL;
    ts_sampler *smp = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    rc = 1;
    ts_engine_opts eo = {.model_path = a.model, .n_threads = (int)a.threads, .numa = a.numa,
                         .cpu_range = a.cpu_range};
    double t_load = ts_cli_now_s();
    if (ts_engine_create(&eng, &eo, &err) != TS_OK)
        goto done;
    t_load = ts_cli_now_s() - t_load; /* printed on success only (errors stay one line) */
    ts_engine_info info;
    ts_engine_get_info(eng, &info);
    const long long limit = ts_run_ctx_limit(&a, info.n_ctx_train);
    if (a.file) {
        const size_t max_bytes = ts_run_prompt_byte_limit(eng, &info, limit);
        if (ts_file_read(a.file, "prompt file", max_bytes, &text, &plen, &err) != TS_OK)
            goto done;
        prompt = text;
    }
    if (ts_engine_tokenize(eng, prompt, plen, true, NULL, 0, &n_ids, &err) != TS_OK)
        goto done;
    ids = malloc((n_ids + 1) * sizeof(*ids));
    if (!ids || ts_engine_tokenize(eng, prompt, plen, true, ids, n_ids, &n_ids, &err) != TS_OK)
        goto done;
    if (n_ids == 0) {
        snprintf(err.msg, sizeof(err.msg), "empty prompt and the model has no BOS token");
        goto done;
    }
    ts_cli_print_numa(stderr, eng, &info);
    const long long ctx = ts_run_ctx(&a, info.n_ctx_train, (long long)n_ids);
    if ((long long)n_ids > ctx) {
        snprintf(err.msg, sizeof(err.msg),
                 "prompt of %zu tokens is longer than the context (%lld)%s", n_ids, ctx,
                 a.n_ctx ? "" : "; a larger -c allows more");
        goto done;
    }
    ts_session_opts so = {.n_ctx = (int)ctx, .kv_type_k = a.kv_k, .kv_type_v = a.kv_v,
                          .chunk = a.chunk == -2 ? 0 : (a.chunk == 0 ? -1 : (int)a.chunk)};
    if (ts_session_create(&s, eng, &so, &err) != TS_OK ||
        ts_sampler_create(&smp, &a.samp, info.n_vocab, &err) != TS_OK)
        goto done;
    for (size_t i = 0; i < n_ids; i++)
        ts_sampler_accept(smp, ids[i]);
    double t0 = ts_cli_now_s();
    if (prefill(s, ids, (int)n_ids, &err) != TS_OK)
        goto done;
    double t_pp = ts_cli_now_s() - t0;
    bool bare = n_ids == 1 && ids[0] == ts_engine_bos(eng);
    t0 = ts_cli_now_s();
    int n_tg = generate(eng, s, smp, &a, bare, &err);
    if (n_tg < 0)
        goto done;
    double t_tg = ts_cli_now_s() - t0;
    fputc('\n', stdout);
    fflush(stdout);
    fprintf(stderr, "prompt %zu tokens, prefill %.1f t/s, decode %.1f t/s (%d tokens), "
            "chunk %d, threads %u, peak RSS %.1f MiB\n",
            n_ids, t_pp > 0 ? (double)n_ids / t_pp : 0.0, t_tg > 0 ? n_tg / t_tg : 0.0, n_tg,
            ts_session_chunk(s), info.n_threads, ts_cli_peak_rss_mib());
    rc = 0;
done:
    if (rc)
        ts_cli_error(CMD, "%s", err.msg);
    else
        fprintf(stderr, "load: %.0f ms (open + repack + placement)\n", 1e3 * t_load);
    free(ids);
    free(text);
    ts_sampler_destroy(smp);
    ts_session_destroy(s);
    ts_engine_destroy(eng);
    return rc;
}
