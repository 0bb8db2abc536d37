/*
 * tools/cmd_logits.c: `tessera logits -m M --tokens FILE --out FILE [--chunk C] [-t T]
 * [--kv-type|-ctk|-ctv T] [--numa MODE] [--cpu-range A-B]`: decodes the token ids of FILE
 * (whitespace separated) and writes float32 little-endian logits for every position,
 * (n_tokens, n_vocab) row-major.
 * `--tokens A,B,C --out-dir DIR [--parallel N] [--batch-tokens B] [--schedule S]`: the files
 * run together as one batch (core/tessera.h ts_batch_run; --chunk is the prompt chunk) and
 * each gives DIR/<basename of its file>.logits, byte-identical to a lone run on that file.
 * Non-finite logits are written as they are: +-Inf, and every NaN as the one
 * quiet NaN 0x7fc00000 the engine hands out (core/tessera.h), so the file's
 * bytes are the same on every ISA level even for a model that overflows.
 * Exit 0 ok, 1 runtime error (I/O, model, ids out of range), 2 usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "fileio.h"
#include "tessera.h"

static int usage(const char *msg)
{
    ts_cli_error("logits", "%s (usage: tessera logits -m MODEL (--tokens FILE --out FILE | "
                 "--tokens A,B,.. --out-dir DIR [--parallel N] [--batch-tokens B] "
                 "[--schedule S]) [--chunk C] [-t T] [--kv-type|-ctk|-ctv " TS_CLI_KV_TYPES "] "
                 "[--numa distribute|replicate|isolate|none] [--cpu-range A-B])", msg);
    return 2;
}

/* Positions one call may ask for, and so the token file's size: an id takes
 * at most 10 digits plus a separator. (2^20 positions of a 32k vocabulary
 * are already 128 GiB of logits.) */
#define MAX_POSITIONS (1 << 20)
#define MAX_ID_BYTES 16

/* Reads whitespace-separated integer ids; *out is malloc'd. */
static int read_ids(const char *path, int32_t **out, int *n_out)
{
    char *text = NULL;
    size_t len = 0;
    ts_err err = {0};
    if (ts_file_read(path, "token file", (size_t)MAX_POSITIONS * MAX_ID_BYTES, &text, &len,
                     &err) != TS_OK) {
        ts_cli_error("logits", "%s", err.msg);
        return 1;
    }
    int cap = 256, n = 0, rc = 0;
    if (memchr(text, 0, len)) {
        ts_cli_error("logits", "%s holds a NUL byte: not a text file of token ids", path);
        free(text);
        return 1;
    }
    int32_t *ids = malloc((size_t)cap * sizeof(*ids));
    static const char seps[] = " \t\r\n\v\f";
    char *save = NULL;
    for (char *word = strtok_r(text, seps, &save); ids && word;
         word = strtok_r(NULL, seps, &save)) {
        long long v;
        if (!ts_cli_parse_i64(word, 0, INT32_MAX, &v)) {
            ts_cli_error("logits", "'%.32s' in %s is not a token id", word, path);
            rc = 1;
            break;
        }
        if (n == MAX_POSITIONS) {
            ts_cli_error("logits", "%s: more than %d token ids", path, MAX_POSITIONS);
            rc = 1;
            break;
        }
        if (n == cap) {
            cap *= 2;
            int32_t *q = realloc(ids, (size_t)cap * sizeof(*ids));
            if (!q) {
                free(ids);
                ids = NULL;
                break;
            }
            ids = q;
        }
        ids[n++] = (int32_t)v;
    }
    free(text);
    if (!ids) {
        ts_cli_error("logits", "out of memory");
        return 1;
    }
    if (!rc && n == 0) {
        ts_cli_error("logits", "no token ids in %s", path);
        rc = 1;
    }
    if (rc) {
        free(ids);
        return rc;
    }
    *out = ids;
    *n_out = n;
    return 0;
}

/* Every position of every token file, run together on one batch. */
static int logits_batch(ts_engine *eng, const char *model, const char *list, const char *dir,
                        long long parallel, long long budget, long long chunk, int schedule,
                        int kv_k, int kv_v)
{
    enum { MAX_FILES = 256 };
    char buf[8192];
    const char *files[MAX_FILES];
    int n_files = 0;
    if (strlen(list) >= sizeof(buf)) {
        ts_cli_error("logits", "--tokens: list too long");
        return 2;
    }
    strcpy(buf, list);
    char *save = NULL;
    for (char *f = strtok_r(buf, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
        if (n_files == MAX_FILES) {
            ts_cli_error("logits", "--tokens: more than %d files", MAX_FILES);
            return 2;
        }
        files[n_files++] = f;
    }
    if (!n_files)
        return usage("--tokens wants at least one file");
    for (int i = 0; i < n_files; i++)
        for (int j = 0; j < i; j++) {
            const char *bi = strrchr(files[i], '/'), *bj = strrchr(files[j], '/');
            if (!strcmp(bi ? bi + 1 : files[i], bj ? bj + 1 : files[j])) {
                ts_cli_error("logits", "%s and %s have the same name: their outputs in %s "
                             "would collide", files[j], files[i], dir);
                return 2;
            }
        }
    ts_engine_info info;
    ts_engine_get_info(eng, &info);
    int32_t *ids[MAX_FILES] = {0};
    int n_ids[MAX_FILES] = {0}, seq_file[MAX_FILES], max_n = 0, rc = 0;
    float *out[MAX_FILES] = {0};
    for (int i = 0; i < n_files && !rc; i++) {
        rc = read_ids(files[i], &ids[i], &n_ids[i]);
        max_n = n_ids[i] > max_n ? n_ids[i] : max_n;
    }
    const int n_seq = (int)(parallel > 0 && parallel < n_files ? parallel : n_files);
    ts_batch_opts bo = {.n_seq = n_seq, .n_ctx = max_n, .max_tokens = (int)budget,
                        .chunk = chunk == -2 ? 0 : chunk == 0 ? (int)budget : (int)chunk,
                        .schedule = schedule, .kv_type_k = kv_k, .kv_type_v = kv_v};
    ts_batch *b = NULL;
    ts_err err = {0};
    if (!rc && ts_batch_create(&b, eng, &bo, &err) != TS_OK)
        rc = 1;
    int next = 0, done = 0;
    for (int i = 0; i < n_seq; i++)
        seq_file[i] = -1;
    while (!rc && done < n_files) {
        int seq;
        while (next < n_files && ts_batch_seq_open(b, &seq, NULL) == TS_OK) {
            out[next] = malloc((size_t)n_ids[next] * (size_t)info.n_vocab * sizeof(float));
            if (!out[next] || ts_batch_seq_prompt(b, seq, ids[next], n_ids[next], out[next],
                                                  &err) != TS_OK) {
                rc = 1;
                break;
            }
            seq_file[seq] = next++;
        }
        int ready[MAX_FILES], n_ready = 0;
        if (rc || ts_batch_run(b, ready, MAX_FILES, &n_ready, &err) != TS_OK) {
            rc = 1;
            break;
        }
        for (int r = 0; r < n_ready && !rc; r++) {
            const int f = seq_file[ready[r]];
            const char *base = strrchr(files[f], '/');
            char path[TS_PATH_CAP];
            snprintf(path, sizeof(path), "%s/%s.logits", dir, base ? base + 1 : files[f]);
            const char *const inputs[] = {model, files[f], NULL};
            ts_safefile sf = {.slot = -1};
            if (ts_safefile_open(&sf, path, inputs, &err) != TS_OK ||
                fwrite(out[f], sizeof(float) * (size_t)info.n_vocab, (size_t)n_ids[f], sf.f) !=
                    (size_t)n_ids[f] ||
                ts_safefile_commit(&sf, &err) != TS_OK) {
                if (!err.msg[0])
                    snprintf(err.msg, sizeof(err.msg), "%.200s: write failed", path);
                rc = 1;
            }
            ts_safefile_abort(&sf);
            free(out[f]);
            out[f] = NULL;
            ts_batch_seq_close(b, ready[r]);
            seq_file[ready[r]] = -1;
            done++;
        }
    }
    if (rc == 1 && err.msg[0])
        ts_cli_error("logits", "%s", err.msg);
    for (int i = 0; i < n_files; i++)
        free(ids[i]), free(out[i]);
    ts_batch_destroy(b);
    return rc;
}

int cmd_logits(int argc, char **argv)
{
    const char *model = NULL, *tok_path = NULL, *out_path = NULL, *out_dir = NULL;
    long long chunk = -2, threads = 0, parallel = 0, budget = 512;
    int schedule = 0;
    int kv_k = 0, kv_v = 0;
    int numa = 0;
    const char *cpu_range = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (ts_cli_kv_option(a, "", &kv_k, &kv_v) != 0) {
            if (ts_cli_kv_option(a, has ? argv[i + 1] : NULL, &kv_k, &kv_v) < 0)
                return usage("--kv-type, -ctk and -ctv want one of " TS_CLI_KV_TYPES);
            i++;
        } else if (!strcmp(a, "-m") && has) {
            model = argv[++i];
        } else if (!strcmp(a, "--tokens") && has) {
            tok_path = argv[++i];
        } else if (!strcmp(a, "--out") && has) {
            out_path = argv[++i];
        } else if (!strcmp(a, "--out-dir") && has) {
            out_dir = argv[++i];
        } else if ((!strcmp(a, "--parallel") || !strcmp(a, "-np")) && has) {
            if (!ts_cli_parse_i64(argv[++i], 1, 256, &parallel))
                return usage("--parallel wants an integer in [1, 256]");
        } else if (!strcmp(a, "--batch-tokens") && has) {
            if (!ts_cli_parse_i64(argv[++i], 1, 1 << 20, &budget))
                return usage("--batch-tokens wants an integer in [1, 2^20]");
        } else if (!strcmp(a, "--schedule") && has) {
            if ((schedule = ts_schedule_parse(argv[++i])) < 0)
                return usage("--schedule wants prefill-first, interleaved or decode-priority");
        } else if (!strcmp(a, "--chunk") && has) {
            if (!ts_cli_parse_i64(argv[++i], 0, 1 << 24, &chunk))
                return usage("--chunk wants an integer >= 0");
        } else if (!strcmp(a, "--numa") && has) {
            if ((numa = ts_numa_parse(argv[++i])) < 0)
                return usage("--numa wants distribute, replicate, isolate or none");
        } else if (!strcmp(a, "--cpu-range") && has) {
            cpu_range = argv[++i];
        } else if (!strcmp(a, "-t") && has) {
            if (!ts_cli_parse_i64(argv[++i], 1, 1024, &threads))
                return usage("-t wants an integer in [1, 1024]");
        } else {
            char msg[128];
            snprintf(msg, sizeof(msg), "unknown or incomplete option '%s'", a);
            return usage(msg);
        }
    }
    if (!model || !tok_path || !out_path == !out_dir)
        return usage("-m, --tokens and one of --out FILE / --out-dir DIR are required");
    if (out_dir) {
        ts_err berr = {0};
        ts_engine *beng = NULL;
        ts_engine_opts beo = {.model_path = model, .n_threads = (int)threads, .numa = numa,
                              .cpu_range = cpu_range};
        if (ts_engine_create(&beng, &beo, &berr) != TS_OK) {
            ts_cli_error("logits", "%s", berr.msg);
            return 1;
        }
        int brc = logits_batch(beng, model, tok_path, out_dir, parallel, budget, chunk,
                               schedule, kv_k, kv_v);
        ts_engine_destroy(beng);
        return brc;
    }
    int32_t *ids = NULL;
    int n = 0;
    if (read_ids(tok_path, &ids, &n))
        return 1;
    ts_err err = {0};
    ts_engine *eng = NULL;
    ts_session *s = NULL;
    float *logits = NULL;
    ts_safefile out = {.slot = -1};
    int rc = 1;
    ts_engine_opts eo = {.model_path = model, .n_threads = (int)threads, .numa = numa,
                         .cpu_range = cpu_range};
    if (ts_engine_create(&eng, &eo, &err) != TS_OK)
        goto done;
    ts_engine_info info;
    ts_engine_get_info(eng, &info);
    ts_session_opts so = {.n_ctx = n, .chunk = chunk == -2 ? 0 : (chunk == 0 ? -1 : (int)chunk),
                          .kv_type_k = kv_k, .kv_type_v = kv_v};
    if (ts_session_create(&s, eng, &so, &err) != TS_OK)
        goto done;
    logits = malloc((size_t)n * (size_t)info.n_vocab * sizeof(float));
    if (!logits) {
        snprintf(err.msg, sizeof(err.msg), "out of memory for %d x %lld logits", n,
                 (long long)info.n_vocab);
        goto done;
    }
    if (ts_session_prefill(s, ids, n, logits, &err) != TS_OK)
        goto done;
    const char *const inputs[] = {model, tok_path, NULL};
    if (ts_safefile_open(&out, out_path, inputs, &err) != TS_OK)
        goto done;
    if (fwrite(logits, sizeof(float) * (size_t)info.n_vocab, (size_t)n, out.f) != (size_t)n) {
        snprintf(err.msg, sizeof(err.msg), "%s: write failed; the file was not changed",
                 out_path);
        goto done;
    }
    if (ts_safefile_commit(&out, &err) != TS_OK)
        goto done;
    rc = 0;
done:
    ts_safefile_abort(&out);
    if (rc)
        ts_cli_error("logits", "%s", err.msg);
    free(logits);
    free(ids);
    ts_session_destroy(s);
    ts_engine_destroy(eng);
    return rc;
}
