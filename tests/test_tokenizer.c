/*
 * tests/test_tokenizer.c: the tokenizers against llama.cpp's vocab test vectors
 * (../shared/vocab/ *.gguf + .inp/.out), the CLI once, model round trips, load-time validation
 * on hostile vocabs built with the GGUF writer, and the pre-tokenizer regexes on known strings.
 */
#include "test.h"
#include "gguf.h"
#include "tokenizer.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        *len = (size_t)n;
    }
    return buf;
}

static ts_vocab *load_vocab(const char *path)
{
    ts_gguf *g = NULL;
    ts_vocab *v = NULL;
    ts_err err = {0};
    if (ts_gguf_open(&g, path, &err) != TS_OK) {
        ts_test_fail(__FILE__, __LINE__, "%s: %s", path, err.msg);
        return NULL;
    }
    if (ts_vocab_load(&v, g, &err) != TS_OK)
        ts_test_fail(__FILE__, __LINE__, "%s: %s", path, err.msg);
    ts_gguf_close(g);
    return v;
}

/* Tokenizes into a malloc'd array. */
static int32_t *tokenize(const ts_vocab *v, const char *s, size_t len, bool add_special,
                         size_t *n)
{
    size_t cap = len + 8;
    int32_t *ids = malloc(cap * sizeof(int32_t));
    ts_err err = {0};
    if (!ids || ts_vocab_tokenize(v, s, len, add_special, true, ids, cap, n, &err) != TS_OK ||
        *n > cap) {
        free(ids);
        return NULL;
    }
    return ids;
}

/* One vocab's vectors: inputs split on "\n__ggml_vocab_test__\n" exactly as llama.cpp's
 * test-tokenizer-0 does (no trailing empty input after the final separator), outputs one line
 * each, ids without BOS. Returns the number of inputs matched; *n_total gets the count. */
static int run_vectors(const ts_vocab *v, const char *inp, size_t inp_len, char *out,
                       const char *name, int *n_total)
{
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const size_t sep_len = sizeof(sep) - 1;
    int pass = 0, idx = 0;
    char *line = out;
    for (size_t pos = 0; pos < inp_len; idx++) {
        const char *hit = memmem(inp + pos, inp_len - pos, sep, sep_len);
        size_t end = hit ? (size_t)(hit - inp) : inp_len;
        char *nl = line ? strchr(line, '\n') : NULL;
        if (nl)
            *nl = 0;
        size_t n = 0;
        int32_t *ids = tokenize(v, inp + pos, end - pos, false, &n);
        bool ok = ids && line;
        char *p = line;
        for (size_t i = 0; ok && i < n; i++) {
            char *e;
            long want = strtol(p, &e, 10);
            ok = e != p && want == ids[i];
            p = e;
        }
        while (ok && p && *p == ' ')
            p++;
        ok = ok && p && *p == 0;
        if (ok)
            pass++;
        else
            ts_test_fail(__FILE__, __LINE__, "%s: input %d '%.*s' mismatch (got %zu ids)",
                         name, idx, (int)(end - pos > 40 ? 40 : end - pos), inp + pos, n);
        free(ids);
        line = nl ? nl + 1 : NULL;
        pos = hit ? end + sep_len : inp_len;
    }
    *n_total = idx;
    return pass;
}

TS_TEST(test_tokenizer_vocab_vectors)
{
    const char *shared = ts_test_shared();
    if (!shared) {
        ts_test_skip("no ../shared");
        return;
    }
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/vocab", shared);
    DIR *d = opendir(dir);
    TS_REQUIRE(d, "cannot open %s", dir);
    int n_vocabs = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t nl = strlen(e->d_name);
        if (nl < 5 || strcmp(e->d_name + nl - 5, ".gguf"))
            continue;
        char path[1400], ip[1500], op[1500];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        snprintf(ip, sizeof(ip), "%s.inp", path);
        snprintf(op, sizeof(op), "%s.out", path);
        size_t inp_len = 0, out_len = 0;
        char *inp = slurp(ip, &inp_len), *out = slurp(op, &out_len);
        ts_vocab *v = inp && out ? load_vocab(path) : NULL;
        if (v) {
            int total = 0;
            int pass = run_vectors(v, inp, inp_len, out, e->d_name, &total);
            printf("  %-32s %-6s %-16s %d/%d\n", e->d_name, ts_vocab_model_name(v),
                   ts_vocab_pre_name(v), pass, total);
            n_vocabs++;
        }
        ts_vocab_destroy(v);
        free(inp);
        free(out);
    }
    closedir(d);
    TS_CHECK(n_vocabs > 0, "no vocab vectors found in %s", dir);
}

TS_TEST(test_tokenizer_cli)
{
    const char *shared = ts_test_shared();
    if (!shared) {
        ts_test_skip("no ../shared");
        return;
    }
    char out[4096];
    const char *bin = ts_test_bin();
    int rc = ts_test_sh(out, sizeof(out), 60, "%s tokenize -m %s/vocab/ggml-vocab-llama-spm.gguf"
                        " -p 'Hello world'", bin, shared);
    TS_CHECK(rc == 0 && !strcmp(out, "1 15043 3186\n"), "rc %d out '%s'", rc, out);
    rc = ts_test_sh(out, sizeof(out), 60, "%s tokenize -m %s/vocab/ggml-vocab-llama-spm.gguf"
                    " -p 'Hello world' --no-bos", bin, shared);
    TS_CHECK(rc == 0 && !strcmp(out, "15043 3186\n"), "--no-bos: rc %d out '%s'", rc, out);
    rc = ts_test_sh(out, sizeof(out), 60, "printf '<s>Hi' > %s/t.txt && %s tokenize -m "
                    "%s/vocab/ggml-vocab-llama-spm.gguf --file %s/t.txt", ts_test_tmpdir(), bin,
                    shared, ts_test_tmpdir());
    TS_CHECK(rc == 0 && !strcmp(out, "1 1 6324\n"), "--file with a special: rc %d out '%s'",
             rc, out);
    rc = ts_test_sh(out, sizeof(out), 60, "%s tokenize -m x --bogus", bin);
    TS_CHECK(rc == 2, "bad flag: rc %d, want 2: %s", rc, out);
    rc = ts_test_sh(out, sizeof(out), 60, "%s tokenize -p hi", bin);
    TS_CHECK(rc == 2, "no model: rc %d, want 2: %s", rc, out);
    rc = ts_test_sh(out, sizeof(out), 60, "%s tokenize -m /nonexistent.gguf -p hi", bin);
    TS_CHECK(rc == 1 && strchr(out, '\n') == strrchr(out, '\n'), "missing model: rc %d: %s", rc,
             out);
    rc = ts_test_sh(out, sizeof(out), 60, "%s tokenize -m %s/vocab/ggml-vocab-gpt-2.gguf "
                    "--file /nonexistent.txt", bin, shared);
    TS_CHECK(rc == 1, "missing file: rc %d: %s", rc, out);
}

/* Detokenizing a tokenization gives the text back (SPM adds one leading space). */
static void check_round_trip(const char *path)
{
    ts_vocab *v = load_vocab(path);
    if (!v)
        return;
    static const char *const texts[] = {
        "Hello world", "Once upon a time, there was a little girl named Lily.",
        "  two  spaces\tand a tab\nnew line 12345 !?", "x", ""};
    for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
        size_t n = 0, len = strlen(texts[t]);
        int32_t *ids = tokenize(v, texts[t], len, true, &n);
        TS_CHECK(ids, "%s: tokenize failed", path);
        char buf[512];
        size_t o = 0;
        for (size_t i = 0; ids && i < n; i++)
            o += ts_vocab_piece(v, ids[i], buf + o, sizeof(buf) - 1 - o);
        buf[o] = 0;
        const char *got = buf;
        if (!strcmp(ts_vocab_model_name(v), "llama") && *got == ' ')
            got++;
        TS_CHECK(ids && (!ts_vocab_add_bos(v) || (n > 0 && ids[0] == ts_vocab_bos(v))),
                 "%s: no BOS first", path);
        TS_CHECK(!strcmp(got, texts[t]), "%s: round trip '%s' -> '%s'", path, texts[t], got);
        free(ids);
    }
    TS_CHECK(ts_vocab_is_eog(v, ts_vocab_eos(v)), "%s: eos is not eog", path);
    TS_CHECK(!ts_vocab_is_eog(v, ts_vocab_n(v)) && !ts_vocab_is_eog(v, -1), "%s: eog range", path);
    ts_vocab_destroy(v);
}

TS_TEST(test_tokenizer_model_round_trip)
{
    const char *shared = ts_test_shared();
    if (!shared) {
        ts_test_skip("no ../shared");
        return;
    }
    static const char *const files[] = {
        "models/stories260K.gguf", "models/llama-2-tiny-random.gguf",
        "vocab/ggml-vocab-gpt-2.gguf", "vocab/ggml-vocab-deepseek-llm.gguf",
        "vocab/ggml-vocab-phi-3.gguf"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", shared, files[i]);
        check_round_trip(path);
    }
}

/* ---- pre-tokenizer regexes on known strings (stands alone) ---- */

static void check_split(const char *pre, const char *text, const char *want)
{
    ts_tok_pre *p = NULL;
    ts_tok_pre_info info;
    ts_err err = {0};
    TS_REQUIRE(ts_tok_pre_create(&p, pre, &info, &err) == TS_OK, "%s: %s", pre, err.msg);
    ts_tok_span *sp = NULL;
    size_t n = 0;
    TS_REQUIRE(ts_tok_pre_split(p, text, strlen(text), &sp, &n, &err) == TS_OK, "%s", err.msg);
    char got[512];
    size_t o = 0;
    for (size_t i = 0; i < n && o + sp[i].len + 2 < sizeof(got); i++) {
        if (i)
            got[o++] = '|';
        memcpy(got + o, text + sp[i].off, sp[i].len);
        o += sp[i].len;
    }
    got[o] = 0;
    TS_CHECK(!strcmp(got, want), "%s: '%s' split '%s', want '%s'", pre, text, got, want);
    free(sp);
    ts_tok_pre_destroy(p);
}

TS_TEST(test_tokenizer_pre_split)
{
    check_split("gpt-2", "Hello world's  end 123!!", "Hello| world|'s| | end| 123|!!");
    check_split("gpt-2", "a   b\n", "a|  | b|\n");
    check_split("llama-bpe", "I'VE 12345 x\n\n y", "I|'VE| |123|45| x|\n\n| y");
    check_split("qwen2", "ab 123", "ab| |1|2|3");
    check_split("starcoder", "x 42", "x| |4|2");
    check_split("deepseek-llm", "Hi 3.5\n  ", "Hi| |3|.|5|\n|  ");
    check_split("default", "hi, 1234", "hi|,| |123|4");
    /* U+0085 counts as whitespace, as in llama.cpp. */
    check_split("gpt-2", "a\xc2\x85\xc2\x85" "b", "a|\xc2\x85|\xc2\x85|b");
    ts_tok_pre *p = NULL;
    ts_tok_pre_info info;
    ts_err err = {0};
    TS_CHECK(ts_tok_pre_create(&p, "no-such-pre", &info, &err) == TS_E_UNSUPPORTED &&
                 strstr(err.msg, "no-such-pre"),
             "unknown pre: '%s'", err.msg);
    char out[16];
    size_t n = ts_tok_utf8_sanitize("a\xff\xc3\xa9\xe2\x82", 6, out);
    TS_CHECK(n == 12 && !memcmp(out, "a\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd", 12),
             "sanitize: %zu bytes", n);
}

/* ---- hostile vocabs: every bad field fails the load with TS_E_FORMAT naming it ---- */

enum { H_OK, H_SHORT_SCORES, H_LONG_TYPES, H_BAD_BOS, H_NEG_EOS, H_BAD_MERGE, H_EMPTY,
       H_BAD_PRE, H_BAD_MODEL, H_VOCAB_SIZE, H_N };

static ts_status build_hostile(int kind, ts_err *err)
{
    static const char *const toks[] = {"a", "b", "ab", "<s>", "\xc4\xa0"};
    const float scores[5] = {0, 0, 1, 0, 0};
    const int32_t types[6] = {1, 1, 1, 3, 1, 1};
    char path[1024];
    snprintf(path, sizeof(path), "%s/h%d.gguf", ts_test_tmpdir(), kind);
    ts_gguf_writer *w = NULL;
    ts_status st = ts_gguf_writer_create(&w, err);
    if (st != TS_OK)
        return st;
    ts_gguf_w_str(w, "general.architecture", "llama");
    ts_gguf_w_str(w, "tokenizer.ggml.model", kind == H_BAD_MODEL ? "wordpiece9" : "gpt2");
    ts_gguf_w_str(w, "tokenizer.ggml.pre", kind == H_BAD_PRE ? "mystery" : "gpt-2");
    ts_gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, kind == H_EMPTY ? 0 : 5);
    ts_gguf_w_arr(w, "tokenizer.ggml.scores", TS_GGUF_F32, scores, kind == H_SHORT_SCORES ? 4 : 5);
    ts_gguf_w_arr(w, "tokenizer.ggml.token_type", TS_GGUF_I32, types, kind == H_LONG_TYPES ? 6 : 5);
    const char *merges[] = {"a b", kind == H_BAD_MERGE ? "ab" : "ab b"};
    ts_gguf_w_arr_str(w, "tokenizer.ggml.merges", merges, 2);
    ts_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", kind == H_BAD_BOS ? 5 : 3);
    ts_gguf_w_i32(w, "tokenizer.ggml.eos_token_id", kind == H_NEG_EOS ? -7 : 3);
    ts_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", true);
    if (kind == H_VOCAB_SIZE)
        ts_gguf_w_u32(w, "llama.vocab_size", 6);
    st = ts_gguf_writer_write(w, path, err);
    ts_gguf_writer_destroy(w);
    if (st != TS_OK)
        return st;
    ts_gguf *g = NULL;
    st = ts_gguf_open(&g, path, err);
    if (st != TS_OK)
        return st;
    ts_vocab *v = NULL;
    st = ts_vocab_load(&v, g, err);
    if (st == TS_OK) {
        size_t n = 0;
        int32_t ids[8];
        st = ts_vocab_tokenize(v, "ab a\xff", 5, true, true, ids, 8, &n, err);
        if (st == TS_OK && (n != 4 || ids[0] != 3 || ids[1] != 2 || ids[2] != 4 || ids[3] != 0))
            st = TS_E_STATE;
    }
    ts_vocab_destroy(v);
    ts_gguf_close(g);
    return st;
}

TS_TEST(test_tokenizer_hostile_vocab)
{
    static const char *const field[H_N] = {
        NULL, "scores", "token_type", "bos_token_id", "eos_token_id", "merges", "tokens",
        "mystery", "wordpiece9", "vocab_size"};
    for (int k = 0; k < H_N; k++) {
        ts_err err = {0};
        ts_status st = build_hostile(k, &err);
        if (k == H_OK) {
            TS_CHECK(st == TS_OK, "good vocab: %d %s", st, err.msg);
            continue;
        }
        ts_status want = (k == H_BAD_PRE || k == H_BAD_MODEL) ? TS_E_UNSUPPORTED : TS_E_FORMAT;
        TS_CHECK(st == want && strstr(err.msg, field[k]), "case %d: status %d msg '%s'", k, st,
                 err.msg);
    }
}
