/*
 * tests/fuzz/fuzz_tokenizer.c: libFuzzer harness for the tokenizers (core/tokenizer.c,
 * core/tok_pre.c): each input is a text, tokenized and detokenized with every vocabulary.
 *
 * Vocabularies: the paths in $TESSERA_FUZZ_VOCAB (colon-separated GGUF files) when set; else
 * every ../shared/vocab/ *.gguf ($TESSERA_SHARED moves ../shared), plus always the SPM
 * vocabulary of `tessera gen --shape tiny` (cmd_gen, written to a temporary file at start-up),
 * so the harness runs without ../shared too.
 * Checked (abort = finding), only what the tokenizer promises (core/tokenizer.h):
 *  - tokenizing never fails, with or without special-token parsing, ids are in range, and a
 *    call with no buffer reports the same count as the call that fills one;
 *  - byte-level BPE: for valid UTF-8 with special parsing off, the pieces concatenate to the
 *    input exactly (the byte mapping is a bijection and user-defined tokens come back verbatim);
 *  - SPM: the same up to whitespace, because a space is prefixed to the text and to each
 *    fragment after a user-defined token, U+2581 reads back as ' ', and rstrip tokens (Phi-3)
 *    eat the whitespace after them: whitespace and U+2581 are dropped from both sides first.
 */
#include "../../tools/cmds.h"
#include "gguf.h"
#include "tokenizer.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Longer inputs are skipped: they find nothing a 4 KiB one cannot, only slower. */
#define MAX_TEXT 4096
#define MAX_VOCABS 16

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ts_vocab *g_vocab[MAX_VOCABS];
static char g_name[MAX_VOCABS][64];
static int g_n_vocab;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_tokenizer: %s:%d: check failed: %s: ", __FILE__, __LINE__,       \
                    #cond);                                                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void add_vocab(const char *path)
{
    ts_gguf *g = NULL;
    ts_vocab *v = NULL;
    ts_err err = {0};
    if (g_n_vocab == MAX_VOCABS)
        return;
    if (ts_gguf_open(&g, path, &err) != TS_OK || ts_vocab_load(&v, g, &err) != TS_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
        abort();
    }
    ts_gguf_close(g);
    const char *base = strrchr(path, '/');
    snprintf(g_name[g_n_vocab], sizeof(g_name[0]), "%s", base ? base + 1 : path);
    g_vocab[g_n_vocab++] = v;
}

static void add_shared_vocabs(void)
{
    const char *shared = getenv("TESSERA_SHARED");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/vocab", shared && *shared ? shared : "../shared");
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        char path[1400];
        if (n < 5 || strcmp(e->d_name + n - 5, ".gguf"))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        add_vocab(path);
    }
    closedir(d);
}

/* The generator's SPM vocabulary (512 tokens: specials, all 256 bytes, letter strings); the
 * weights come along, one layer of them, and the file is removed once the vocab is copied. */
static void add_generated_vocab(void)
{
    char dir[] = "/tmp/fuzz_tokenizer.XXXXXX", path[64];
    if (!mkdtemp(dir)) {
        perror("fuzz_tokenizer: mkdtemp");
        abort();
    }
    snprintf(path, sizeof(path), "%s/tiny.gguf", dir);
    char *args[] = {"gen",  "--shape", "tiny", "--layers", "1",  "--type",
                    "q8_0", "-t",      "1",    "-o",       path, NULL};
    if (cmd_gen(11, args) != 0) {
        fprintf(stderr, "fuzz_tokenizer: tessera gen failed\n");
        abort();
    }
    add_vocab(path);
    snprintf(g_name[g_n_vocab - 1], sizeof(g_name[0]), "generated tiny");
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *list = getenv("TESSERA_FUZZ_VOCAB");
    if (list && *list) {
        char *copy = strdup(list), *save = NULL;
        for (char *p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save))
            add_vocab(p);
        free(copy);
    } else {
        add_shared_vocabs();
        add_generated_vocab();
    }
    for (int i = 0; i < g_n_vocab; i++)
        fprintf(stderr, "fuzz_tokenizer: vocab %s (%s, %d tokens)\n", g_name[i],
                ts_vocab_model_name(g_vocab[i]), ts_vocab_n(g_vocab[i]));
    return 0;
}

/* Strict UTF-8: shortest forms only, no surrogates, at most U+10FFFF. */
static bool valid_utf8(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xE0) == 0xC0 ? 2
                     : (c & 0xF0) == 0xE0 ? 3
                     : (c & 0xF8) == 0xF0 ? 4
                                          : 0;
        if (!len || i + len > n)
            return false;
        uint32_t cp = len == 1 ? c : (uint32_t)(c & (0x7F >> len));
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

/* SPM comparison form: drops ASCII whitespace and U+2581; returns the new length. */
static size_t squeeze(const uint8_t *s, size_t n, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (n - i >= 3 && !memcmp(s + i, "\xe2\x96\x81", 3)) {
            i += 2;
            continue;
        }
        if (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r'))
            continue;
        out[o++] = s[i];
    }
    return o;
}

/* Tokenizes text into a malloc'd array (*n ids), checking the counting call agrees. */
static int32_t *tokenize(const ts_vocab *v, const char *name, const char *text, size_t len,
                         bool special, size_t *n)
{
    ts_err err = {0};
    size_t total = 0;
    ts_status st = ts_vocab_tokenize(v, text, len, special, special, NULL, 0, &total, &err);
    CHECK(st == TS_OK, "%s: counting call: %s", name, err.msg);
    int32_t *ids = malloc((total ? total : 1) * sizeof(int32_t));
    CHECK(ids, "out of memory");
    st = ts_vocab_tokenize(v, text, len, special, special, ids, total, n, &err);
    CHECK(st == TS_OK && *n == total, "%s: %zu ids, counted %zu: %s", name, *n, total, err.msg);
    for (size_t i = 0; i < *n; i++)
        CHECK(ids[i] >= 0 && ids[i] < ts_vocab_n(v), "%s: id %d of %d", name, ids[i],
              ts_vocab_n(v));
    return ids;
}

static void check_vocab(const ts_vocab *v, const char *name, const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t n = 0;
    free(tokenize(v, name, text, size, true, &n));
    int32_t *ids = tokenize(v, name, text, size, false, &n);
    if (!valid_utf8(data, size)) {
        free(ids);
        return;
    }
    /* A piece is a token's text (at most a few hundred bytes in real vocabularies) or one
     * byte; TOK_PIECE bytes per id leaves room for any the vocab could hold here. */
    enum { TOK_PIECE = 1024 };
    size_t cap = n * TOK_PIECE + 1, o = 0;
    uint8_t *back = malloc(cap);
    CHECK(back, "out of memory");
    for (size_t i = 0; i < n; i++)
        o += ts_vocab_piece(v, ids[i], (char *)back + o, cap - o);
    bool spm = !strcmp(ts_vocab_model_name(v), "llama");
    if (spm) {
        uint8_t *a = malloc(size + 1);
        CHECK(a, "out of memory");
        size_t na = squeeze(data, size, a), nb = squeeze(back, o, back);
        CHECK(na == nb && !memcmp(a, back, na),
              "%s: SPM round trip of %zu bytes differs beyond whitespace (%zu vs %zu bytes)", name,
              size, na, nb);
        free(a);
    } else {
        CHECK(o == size && !memcmp(back, data, size),
              "%s: BPE round trip of %zu bytes gave %zu bytes", name, size, o);
    }
    free(back);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_TEXT)
        return 0;
    for (int i = 0; i < g_n_vocab; i++)
        check_vocab(g_vocab[i], g_name[i], data, size);
    return 0;
}
