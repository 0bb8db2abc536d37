/*
 * tools/cmd_tokenize.c: `tessera tokenize -m MODEL (-p TEXT | --file F) [--no-bos]`.
 *
 * Prints the token ids space-separated on one line. Special-token texts in the input are parsed
 * (llama-tokenize's default); BOS/EOS are added as the vocabulary says unless --no-bos drops
 * BOS. Only the GGUF metadata is used, so tokenizer-only files (no tensors) work.
 * Exit: 0 ok, 1 runtime error (file, model), 2 usage.
 */
#include "cmds.h"
#include "fileio.h"
#include "gguf.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const usage_line =
    "usage: tessera tokenize -m MODEL (-p TEXT | --file F) [--no-bos]";

/* A text file to tokenize: no context bounds it, so a fixed cap does. */
#define MAX_TEXT_BYTES ((size_t)256 << 20)

static int tokenize_text(const char *model, const char *text, size_t len, bool no_bos)
{
    ts_err err = {0};
    ts_gguf *g = NULL;
    ts_vocab *v = NULL;
    int32_t *ids = NULL;
    int rc = 1;
    if (ts_gguf_open(&g, model, &err) != TS_OK) {
        ts_cli_error("tokenize", "%s", err.msg);
        return 1;
    }
    if (ts_vocab_load(&v, g, &err) != TS_OK) {
        ts_cli_error("tokenize", "%s: %s", model, err.msg);
        goto done;
    }
    size_t n = 0, cap = len + 16;
    ids = malloc(cap * sizeof(int32_t));
    if (!ids) {
        ts_cli_error("tokenize", "out of memory");
        goto done;
    }
    for (;;) {
        if (ts_vocab_tokenize(v, text, len, true, true, ids, cap, &n, &err) != TS_OK) {
            ts_cli_error("tokenize", "%s", err.msg);
            goto done;
        }
        if (n <= cap)
            break;
        cap = n + 1; /* an id per byte plus specials covers any text; kept for safety */
        int32_t *b = realloc(ids, cap * sizeof(int32_t));
        if (!b) {
            ts_cli_error("tokenize", "out of memory");
            goto done;
        }
        ids = b;
    }
    /* --no-bos drops the BOS the vocab prepends; an EOS it appends stays. */
    size_t first = (no_bos && ts_vocab_add_bos(v) && n > 0) ? 1 : 0;
    for (size_t i = first; i < n; i++)
        printf("%s%d", i > first ? " " : "", ids[i]);
    printf("\n");
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    free(ids);
    ts_vocab_destroy(v);
    ts_gguf_close(g);
    return rc;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL, *file = NULL;
    bool no_bos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has_val) {
            model = argv[++i];
        } else if ((!strcmp(a, "-p") || !strcmp(a, "--prompt")) && has_val) {
            prompt = argv[++i];
        } else if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && has_val) {
            file = argv[++i];
        } else if (!strcmp(a, "--no-bos")) {
            no_bos = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fprintf(stdout, "%s\n", usage_line);
            return 0;
        } else {
            ts_cli_error("tokenize", "bad argument '%s' (%s)", a, usage_line + 7);
            return 2;
        }
    }
    if (!model || (!prompt == !file)) {
        ts_cli_error("tokenize", "need -m and exactly one of -p / --file (%s)", usage_line + 7);
        return 2;
    }
    if (prompt)
        return tokenize_text(model, prompt, strlen(prompt), no_bos);
    size_t len = 0;
    char *text = NULL;
    ts_err err = {0};
    if (ts_file_read(file, "text file", MAX_TEXT_BYTES, &text, &len, &err) != TS_OK) {
        ts_cli_error("tokenize", "%s", err.msg);
        return 1;
    }
    int rc = tokenize_text(model, text, len, no_bos);
    free(text);
    return rc;
}
