/*
 * core/tokenizer.c: vocabulary loading and validation, special-token partitioning, the SPM and
 * byte-level BPE merge loops, and detokenization.
 *
 * Owns: copies of the token texts, scores, attributes and merges (the GGUF may be closed after
 * load). Does not own the pre-tokenizer regexes (tok_pre.c).
 * Invariants after ts_vocab_load: every id stored anywhere (bos, eos, special list, byte tables)
 * is in [0, n_vocab); token texts are at most TOK_MAX_BYTES; lookups never read outside the
 * copied blobs. Behaviour mirrors llama.cpp's tokenizer (the test vectors are its output):
 *  - special tokens (control/unknown only when parse_special; user-defined always) are cut out
 *    of the text first, longest text first, honouring rstrip/lstrip attributes;
 *  - SPM: ' ' -> U+2581, a space is prefixed to each text fragment that starts the input or
 *    follows a special token, characters merge by best score, leftovers fall back to <0xNN>;
 *  - BPE: pre-tokenize, map bytes to the GPT-2 printable alphabet, merge by lowest rank.
 */
#include "tokenizer.h"
#include "err.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define TOK_MAX_BYTES (1u << 20)   /* a real vocab's longest token is well under 1 KiB */
#define TOK_MAX_VOCAB (1u << 28)   /* ids are int32; this bounds the tables' memory */

enum { KIND_SPM, KIND_BPE };
enum {
    A_NORMAL = 1, A_UNKNOWN = 2, A_CONTROL = 4, A_USER = 8, A_UNUSED = 16, A_BYTE = 32,
    A_LSTRIP = 64, A_RSTRIP = 128
};

/* Strings in one blob, with an open-addressing hash index over them. */
typedef struct {
    char *blob;
    size_t *off;
    uint32_t *len;
    uint32_t *split; /* merges only: length of the left half */
    int32_t n;
    int32_t *slot; /* entry index or -1; size mask + 1 */
    size_t mask;
    uint64_t key; /* random per table: see slot_of */
} str_table;

struct ts_vocab {
    int kind;
    int32_t n_vocab;
    str_table tok;
    float *score;
    uint8_t *attr;
    uint8_t *eog;
    str_table merge;
    int32_t bos, eos, unk, eot, eom, pad;
    bool add_bos, add_eos, add_space_prefix, ignore_merges;
    int32_t *special; /* control/user-defined/unknown ids, longest text first */
    size_t n_special;
    int32_t byte_tok[256]; /* SPM: <0xNN> (or the raw byte); BPE: the one-byte text; -1 none */
    ts_tok_pre *pre;
    char pre_name[64];
};

static uint64_t hash_bytes(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull; /* FNV-1a */
    return h;
}
#define HASH_SEED 0xcbf29ce484222325ull

static const char *tab_str(const str_table *t, int32_t i) { return t->blob + t->off[i]; }

/* The first slot of a hash: FNV-1a's value mixed with the table's random key
 * (splitmix64's finaliser), so a vocabulary crafted to collide in the low
 * bits cannot turn the linear-probing index quadratic (hash flooding). Which
 * slot an entry lands in never changes a result: lookups compare the bytes. */
static size_t slot_of(const str_table *t, uint64_t h)
{
    uint64_t z = h ^ t->key;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (size_t)(z ^ (z >> 31)) & t->mask;
}

static uint64_t random_key(const void *salt)
{
    uint64_t k = 0;
    if (getrandom(&k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        k = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)salt;
    }
    return k;
}

/* Index of key a (+ ' ' + b when b != NULL, for merges), or -1. */
static int32_t tab_find2(const str_table *t, const char *a, size_t na, const char *b, size_t nb)
{
    uint64_t h = hash_bytes(HASH_SEED, a, na);
    size_t total = na;
    if (b) {
        h = hash_bytes(hash_bytes(h, " ", 1), b, nb);
        total += 1 + nb;
    }
    for (size_t s = slot_of(t, h);; s = (s + 1) & t->mask) {
        int32_t e = t->slot[s];
        if (e < 0)
            return -1;
        if (t->len[e] != total)
            continue;
        const char *k = tab_str(t, e);
        if (!b) {
            if (!memcmp(k, a, na))
                return e;
        } else if (t->split[e] == na && !memcmp(k, a, na) && !memcmp(k + na + 1, b, nb)) {
            return e;
        }
    }
}

static int32_t tok_find(const ts_vocab *v, const char *s, size_t n)
{
    return tab_find2(&v->tok, s, n, NULL, 0);
}

/* Builds the index; on duplicate keys the last entry wins when last_wins, else the first. */
static bool tab_index(str_table *t, bool last_wins)
{
    size_t cap = 16;
    while (cap < 2 * (size_t)t->n)
        cap *= 2;
    t->slot = malloc(cap * sizeof(int32_t));
    if (!t->slot)
        return false;
    memset(t->slot, 0xff, cap * sizeof(int32_t));
    t->mask = cap - 1;
    t->key = random_key(t);
    for (int32_t i = 0; i < t->n; i++) {
        if (t->len[i] == 0)
            continue; /* an empty text is never looked up */
        uint64_t h = hash_bytes(HASH_SEED, tab_str(t, i), t->len[i]);
        size_t s = slot_of(t, h);
        for (;; s = (s + 1) & t->mask) {
            int32_t e = t->slot[s];
            if (e < 0 || (t->len[e] == t->len[i] &&
                          !memcmp(tab_str(t, e), tab_str(t, i), t->len[i])))
                break;
        }
        if (t->slot[s] < 0 || last_wins)
            t->slot[s] = i;
    }
    return true;
}

static void tab_free(str_table *t)
{
    free(t->blob);
    free(t->off);
    free(t->len);
    free(t->split);
    free(t->slot);
}

/* Copies a GGUF string array into t. */
static ts_status tab_load(str_table *t, const ts_gguf_kv *kv, const char *key, ts_err *err)
{
    uint64_t n = kv->arr_n;
    ts_str *s = malloc((n ? n : 1) * sizeof(ts_str));
    t->off = malloc((n ? n : 1) * sizeof(size_t));
    t->len = malloc((n ? n : 1) * sizeof(uint32_t));
    if (!s || !t->off || !t->len) {
        free(s);
        return ts_err_set(err, TS_E_NOMEM, "%s: out of memory for %llu strings", key,
                          (unsigned long long)n);
    }
    ts_gguf_arr_strs(kv, s);
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (s[i].len > TOK_MAX_BYTES) {
            unsigned long long bad = s[i].len;
            free(s);
            return ts_err_set(err, TS_E_FORMAT, "%s[%llu]: length %llu exceeds %u bytes", key,
                              (unsigned long long)i, bad, TOK_MAX_BYTES);
        }
        t->off[i] = total;
        t->len[i] = (uint32_t)s[i].len;
        total += s[i].len;
    }
    t->blob = malloc(total ? total : 1);
    if (!t->blob) {
        free(s);
        return ts_err_set(err, TS_E_NOMEM, "%s: out of memory for %zu bytes", key, total);
    }
    for (uint64_t i = 0; i < n; i++)
        if (s[i].len)
            memcpy(t->blob + t->off[i], s[i].ptr, s[i].len);
    free(s);
    t->n = (int32_t)n;
    return TS_OK;
}

/* ---------------------------------------------------------------- load */

static ts_status load_tokens(ts_vocab *v, const ts_gguf *g, ts_err *err)
{
    const ts_gguf_kv *kv;
    ts_status st = ts_gguf_get_arr(g, "tokenizer.ggml.tokens", TS_GGUF_STR, &kv, err);
    if (st != TS_OK)
        return st;
    if (!kv)
        return ts_err_set(err, TS_E_FORMAT, "tokenizer.ggml.tokens: missing");
    if (kv->arr_n == 0 || kv->arr_n > TOK_MAX_VOCAB)
        return ts_err_set(err, TS_E_FORMAT, "tokenizer.ggml.tokens: %llu entries (want 1..%u)",
                          (unsigned long long)kv->arr_n, TOK_MAX_VOCAB);
    st = tab_load(&v->tok, kv, "tokenizer.ggml.tokens", err);
    if (st != TS_OK)
        return st;
    v->n_vocab = v->tok.n;
    size_t n = (size_t)v->n_vocab;

    /* <arch>.vocab_size, when present, must agree with the token list. */
    ts_str arch;
    bool found = false;
    st = ts_gguf_get_str(g, "general.architecture", &arch, &found, err);
    if (st != TS_OK)
        return st;
    if (found && arch.len < 64) {
        char key[96], a[64];
        snprintf(key, sizeof(key), "%s.vocab_size", ts_str_copy(arch, a, sizeof(a)));
        uint64_t want = 0;
        bool has = false;
        st = ts_gguf_get_u64(g, key, &want, &has, err);
        if (st != TS_OK)
            return st;
        if (has && want != n)
            return ts_err_set(err, TS_E_FORMAT, "tokenizer.ggml.tokens: %zu entries but %s = %llu",
                              n, key, (unsigned long long)want);
    }

    v->score = calloc(n, sizeof(float));
    v->attr = malloc(n);
    v->eog = calloc(n, 1);
    if (!v->score || !v->attr || !v->eog)
        return ts_err_set(err, TS_E_NOMEM, "tokenizer: out of memory for %zu tokens", n);
    memset(v->attr, A_NORMAL, n);

    const ts_gguf_kv *sc = ts_gguf_kv_find(g, "tokenizer.ggml.scores");
    if (sc) {
        if (sc->type != TS_GGUF_ARR || (sc->arr_type != TS_GGUF_F32 && sc->arr_type != TS_GGUF_I32))
            return ts_err_set(err, TS_E_FORMAT, "tokenizer.ggml.scores: not an f32/i32 array");
        if (sc->arr_n != n)
            return ts_err_set(err, TS_E_FORMAT, "tokenizer.ggml.scores: %llu entries, tokens %zu",
                              (unsigned long long)sc->arr_n, n);
        for (size_t i = 0; i < n; i++) {
            double x = ts_gguf_arr_f64(sc, i);
            if (isnan(x))
                return ts_err_set(err, TS_E_FORMAT, "tokenizer.ggml.scores[%zu]: NaN", i);
            v->score[i] = (float)x;
        }
    }
    const ts_gguf_kv *tt;
    st = ts_gguf_get_arr(g, "tokenizer.ggml.token_type", TS_GGUF_I32, &tt, err);
    if (st != TS_OK)
        return st;
    if (tt) {
        if (tt->arr_n != n)
            return ts_err_set(err, TS_E_FORMAT,
                              "tokenizer.ggml.token_type: %llu entries, tokens %zu",
                              (unsigned long long)tt->arr_n, n);
        static const uint8_t map[7] = {0, A_NORMAL, A_UNKNOWN, A_CONTROL, A_USER, A_UNUSED, A_BYTE};
        for (size_t i = 0; i < n; i++) {
            int64_t t = ts_gguf_arr_i64(tt, i);
            v->attr[i] = (t >= 0 && t < 7) ? map[t] : 0;
        }
    }
    return tab_index(&v->tok, true)
               ? TS_OK
               : ts_err_set(err, TS_E_NOMEM, "tokenizer: out of memory indexing tokens");
}

static ts_status load_merges(ts_vocab *v, const ts_gguf *g, ts_err *err)
{
    const ts_gguf_kv *kv;
    ts_status st = ts_gguf_get_arr(g, "tokenizer.ggml.merges", TS_GGUF_STR, &kv, err);
    if (st != TS_OK)
        return st;
    if (!kv)
        return ts_err_set(err, TS_E_FORMAT, "tokenizer.ggml.merges: missing for a gpt2 vocab");
    if (kv->arr_n > INT32_MAX)
        return ts_err_set(err, TS_E_FORMAT, "tokenizer.ggml.merges: %llu entries",
                          (unsigned long long)kv->arr_n);
    st = tab_load(&v->merge, kv, "tokenizer.ggml.merges", err);
    if (st != TS_OK)
        return st;
    str_table *m = &v->merge;
    m->split = malloc((m->n ? (size_t)m->n : 1) * sizeof(uint32_t));
    if (!m->split)
        return ts_err_set(err, TS_E_NOMEM, "tokenizer: out of memory for merges");
    for (int32_t i = 0; i < m->n; i++) {
        /* "left right": the first space after position 0 separates the halves. */
        const char *s = tab_str(m, i);
        const char *sp = m->len[i] > 1 ? memchr(s + 1, ' ', m->len[i] - 1) : NULL;
        if (!sp || sp + 1 == s + m->len[i])
            return ts_err_set(err, TS_E_FORMAT,
                              "tokenizer.ggml.merges[%d]: '%.*s' is not 'left right'", i,
                              (int)(m->len[i] < 40 ? m->len[i] : 40), s);
        m->split[i] = (uint32_t)(sp - s);
    }
    /* A pair listed twice keeps its first (best) rank. */
    if (!tab_index(m, false))
        return ts_err_set(err, TS_E_NOMEM, "tokenizer: out of memory indexing merges");
    return TS_OK;
}

/* Reads an optional special-token id: -1 / 0xFFFFFFFF mean none, other values must be ids. */
static ts_status load_id(const ts_gguf *g, const char *key, int32_t n_vocab, int32_t *id,
                         ts_err *err)
{
    int64_t x = 0;
    bool found = false;
    ts_status st = ts_gguf_get_i64(g, key, &x, &found, err);
    if (st != TS_OK || !found)
        return st;
    if (x == -1 || x == (int64_t)UINT32_MAX) {
        *id = -1;
        return TS_OK;
    }
    if (x < 0 || x >= n_vocab)
        return ts_err_set(err, TS_E_FORMAT, "%s: %lld out of range for %d tokens", key,
                          (long long)x, n_vocab);
    *id = (int32_t)x;
    return TS_OK;
}

static ts_status load_bool(const ts_gguf *g, const char *key, bool *out, ts_err *err)
{
    return ts_gguf_get_bool(g, key, out, NULL, err);
}

static bool str_in(const char *s, size_t n, const char *const *list)
{
    for (; *list; list++)
        if (strlen(*list) == n && !memcmp(*list, s, n))
            return true;
    return false;
}

static const char *const eot_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    NULL};
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|eom_id|>", "<end_of_utterance>", "<eos>",
    "<|return|>", "<|call|>", NULL};

static int cmp_special(const void *a, const void *b, void *ctx)
{
    const ts_vocab *v = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (v->tok.len[x] != v->tok.len[y])
        return v->tok.len[x] > v->tok.len[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* End-of-generation set, the special-token list and model-specific attributes. */
static ts_status load_specials(ts_vocab *v, const ts_gguf *g, ts_err *err)
{
    const str_table *t = &v->tok;
    if (v->eot < 0) {
        for (int32_t i = 0; i < v->n_vocab && v->eot < 0; i++)
            if (str_in(tab_str(t, i), t->len[i], eot_texts)) {
                v->eot = i;
                v->attr[i] |= A_CONTROL;
            }
    }
    for (int32_t i = 0; i < v->n_vocab; i++)
        if (str_in(tab_str(t, i), t->len[i], eog_texts))
            v->eog[i] = 1;
    if (v->eos >= 0)
        v->eog[v->eos] = 1;
    if (v->eot >= 0)
        v->eog[v->eot] = 1;
    if (v->eom >= 0)
        v->eog[v->eom] = 1;

    v->special = malloc((size_t)v->n_vocab * sizeof(int32_t));
    if (!v->special)
        return ts_err_set(err, TS_E_NOMEM, "tokenizer: out of memory");
    for (int32_t i = 0; i < v->n_vocab; i++)
        if ((v->attr[i] & (A_CONTROL | A_USER | A_UNKNOWN)) && t->len[i] > 0)
            v->special[v->n_special++] = i;
    qsort_r(v->special, v->n_special, sizeof(int32_t), cmp_special, v);

    /* Phi-3's converted vocab lacks its rstrip flags; llama.cpp restores them by model name. */
    ts_str name;
    bool found = false;
    ts_status st = ts_gguf_get_str(g, "general.name", &name, &found, err);
    if (st != TS_OK)
        return st;
    char lower[256];
    ts_str_copy(found ? name : (ts_str){"", 0}, lower, sizeof(lower));
    for (char *p = lower; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (strstr(lower, "phi-3") || strstr(lower, "phi3")) {
        for (size_t k = 0; k < v->n_special; k++)
            v->attr[v->special[k]] |= A_RSTRIP;
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        int32_t id = tok_find(v, "</s>", 4);
        if (id >= 0)
            v->attr[id] |= A_RSTRIP;
        for (size_t k = 0; k < 3; k++)
            if ((id = tok_find(v, keep[k], strlen(keep[k]))) >= 0)
                v->attr[id] &= (uint8_t)~A_RSTRIP;
    }
    return TS_OK;
}

/* GPT-2's byte -> printable code point table: printable Latin-1 bytes map to themselves, the
 * rest to U+0100 upwards in byte order. */
static uint32_t byte_cpt(uint8_t b)
{
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)
        return b;
    uint32_t k = 0;
    for (uint32_t c = 0; c < b; c++)
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE))
            k++;
    return 0x100 + k;
}

static ts_status load_kind(ts_vocab *v, const ts_gguf *g, ts_tok_pre_info *info, ts_err *err)
{
    ts_str model, pre;
    bool found = false;
    char buf[64];
    ts_status st = ts_gguf_get_str(g, "tokenizer.ggml.model", &model, &found, err);
    if (st != TS_OK)
        return st;
    if (!found)
        return ts_err_set(err, TS_E_FORMAT, "tokenizer.ggml.model: missing");
    if (ts_str_eq(model, "llama")) {
        v->kind = KIND_SPM;
        info->add_bos = true;
        snprintf(v->pre_name, sizeof(v->pre_name), "default");
        return TS_OK;
    }
    if (!ts_str_eq(model, "gpt2"))
        return ts_err_set(err, TS_E_UNSUPPORTED, "tokenizer.ggml.model: unsupported '%s'",
                          ts_str_copy(model, buf, sizeof(buf)));
    v->kind = KIND_BPE;
    st = ts_gguf_get_str(g, "tokenizer.ggml.pre", &pre, &found, err);
    if (st != TS_OK)
        return st;
    if (found && pre.len >= sizeof(v->pre_name))
        return ts_err_set(err, TS_E_UNSUPPORTED, "tokenizer.ggml.pre: unknown '%s...'",
                          ts_str_copy(pre, buf, sizeof(buf)));
    ts_str_copy(found ? pre : (ts_str){"default", 7}, v->pre_name, sizeof(v->pre_name));
    if (strlen(v->pre_name) != (found ? pre.len : 7))
        return ts_err_set(err, TS_E_FORMAT, "tokenizer.ggml.pre: contains a NUL byte");
    return ts_tok_pre_create(&v->pre, v->pre_name, info, err);
}

static ts_status load_all(ts_vocab *v, const ts_gguf *g, ts_err *err)
{
    ts_tok_pre_info info = {0};
    ts_status st = load_kind(v, g, &info, err);
    if (st == TS_OK)
        st = load_tokens(v, g, err);
    if (st == TS_OK && v->kind == KIND_BPE)
        st = load_merges(v, g, err);
    if (st != TS_OK)
        return st;
    /* llama.cpp's defaults, dropped when out of range. */
    v->bos = v->kind == KIND_SPM ? 1 : 11;
    v->eos = v->kind == KIND_SPM ? 2 : 11;
    v->unk = v->kind == KIND_SPM ? 0 : -1;
    v->eot = v->eom = v->pad = -1;
    if (v->bos >= v->n_vocab)
        v->bos = v->eos = -1;
    if (v->eos >= v->n_vocab)
        v->eos = -1;
    if (v->unk >= v->n_vocab)
        v->unk = -1;
    int32_t sep = -1, mask = -1;
    const struct { const char *key; int32_t *id; } ids[] = {
        {"tokenizer.ggml.bos_token_id", &v->bos},     {"tokenizer.ggml.eos_token_id", &v->eos},
        {"tokenizer.ggml.unknown_token_id", &v->unk}, {"tokenizer.ggml.padding_token_id", &v->pad},
        {"tokenizer.ggml.eot_token_id", &v->eot},     {"tokenizer.ggml.eom_token_id", &v->eom},
        {"tokenizer.ggml.seperator_token_id", &sep},  {"tokenizer.ggml.mask_token_id", &mask},
    };
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]) && st == TS_OK; i++)
        st = load_id(g, ids[i].key, v->n_vocab, ids[i].id, err);
    v->add_bos = info.add_bos;
    v->add_eos = false;
    v->add_space_prefix = v->kind == KIND_SPM;
    v->ignore_merges = info.ignore_merges;
    if (st == TS_OK)
        st = load_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos, err);
    if (st == TS_OK)
        st = load_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos, err);
    if (st == TS_OK)
        st = load_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, err);
    if (st != TS_OK)
        return st;
    if (v->add_bos && v->bos < 0)
        return ts_err_set(err, TS_E_FORMAT, "tokenizer.ggml.add_bos_token: true but no BOS id");
    if (v->add_eos && v->eos < 0)
        return ts_err_set(err, TS_E_FORMAT, "tokenizer.ggml.add_eos_token: true but no EOS id");

    for (int b = 0; b < 256; b++) {
        char s[8];
        int32_t id = -1;
        if (v->kind == KIND_SPM) {
            snprintf(s, sizeof(s), "<0x%02X>", b);
            id = tok_find(v, s, 6);
            if (id < 0) {
                s[0] = (char)b;
                id = tok_find(v, s, 1);
            }
        } else {
            s[0] = (char)b;
            id = tok_find(v, s, 1);
        }
        v->byte_tok[b] = id;
    }
    return load_specials(v, g, err);
}

ts_status ts_vocab_load(ts_vocab **out, const ts_gguf *g, ts_err *err)
{
    *out = NULL;
    ts_vocab *v = calloc(1, sizeof(*v));
    if (!v)
        return ts_err_set(err, TS_E_NOMEM, "tokenizer: out of memory");
    ts_status st = load_all(v, g, err);
    if (st != TS_OK) {
        ts_vocab_destroy(v);
        return st;
    }
    *out = v;
    return TS_OK;
}

void ts_vocab_destroy(ts_vocab *v)
{
    if (!v)
        return;
    tab_free(&v->tok);
    tab_free(&v->merge);
    free(v->score);
    free(v->attr);
    free(v->eog);
    free(v->special);
    ts_tok_pre_destroy(v->pre);
    free(v);
}

int32_t ts_vocab_n(const ts_vocab *v) { return v->n_vocab; }
int32_t ts_vocab_bos(const ts_vocab *v) { return v->bos; }
int32_t ts_vocab_eos(const ts_vocab *v) { return v->eos; }
bool ts_vocab_add_bos(const ts_vocab *v) { return v->add_bos; }
const char *ts_vocab_model_name(const ts_vocab *v) { return v->kind == KIND_SPM ? "llama" : "gpt2"; }
const char *ts_vocab_pre_name(const ts_vocab *v) { return v->pre_name; }

bool ts_vocab_is_eog(const ts_vocab *v, int32_t id)
{
    return id >= 0 && id < v->n_vocab && v->eog[id];
}

/* ---------------------------------------------------------------- encode */

typedef struct {
    int32_t *out;
    size_t cap, n;
} sink;

static void emit(sink *k, int32_t id)
{
    if (k->n < k->cap)
        k->out[k->n] = id;
    k->n++;
}

/* A symbol of the merge loop: bytes [off, off + len) of the word; len 0 once merged away. */
typedef struct {
    size_t off, len;
    int32_t prev, next;
} sym;

/* A candidate merge of symbols left and right; better = higher key, then lower left. */
typedef struct {
    double key;
    int32_t left, right;
    size_t size;
} bigram;

typedef struct {
    bigram *v;
    size_t n, cap;
} heap;

static bool bg_better(const bigram *a, const bigram *b)
{
    return a->key > b->key || (a->key == b->key && a->left < b->left);
}

static bool heap_push(heap *h, bigram b)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        bigram *v = realloc(h->v, cap * sizeof(*v));
        if (!v)
            return false;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0 && bg_better(&b, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = b;
    return true;
}

static bigram heap_pop(heap *h)
{
    bigram top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && bg_better(&h->v[c + 1], &h->v[c]))
            c++;
        if (!bg_better(&h->v[c], &last))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n)
        h->v[i] = last;
    return top;
}

typedef struct {
    const ts_vocab *v;
    const char *word;
    sym *syms;
    int32_t n_syms;
    heap q;
} merger;

/* Queues the merge of symbols l and r when the vocab allows it: SPM by the merged token's
 * score, BPE by the pair's merge rank (lower first). */
static bool try_pair(merger *m, int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return true;
    const sym *a = &m->syms[l], *b = &m->syms[r];
    double key;
    if (m->v->kind == KIND_SPM) {
        int32_t id = tok_find(m->v, m->word + a->off, a->len + b->len);
        if (id < 0)
            return true;
        key = m->v->score[id];
    } else {
        int32_t rank = tab_find2(&m->v->merge, m->word + a->off, a->len, m->word + b->off, b->len);
        if (rank < 0)
            return true;
        key = -(double)rank;
    }
    return heap_push(&m->q, (bigram){key, l, r, a->len + b->len});
}

/* Splits word into UTF-8 characters (lead-byte length, clipped) and merges them greedily. */
static bool merge_word(merger *m, const char *word, size_t n)
{
    static const uint8_t lead_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    m->word = word;
    m->n_syms = 0;
    m->q.n = 0;
    for (size_t off = 0; off < n;) {
        size_t len = lead_len[(uint8_t)word[off] >> 4];
        if (len > n - off)
            len = n - off;
        sym *s = &m->syms[m->n_syms];
        *s = (sym){off, len, m->n_syms - 1, off + len == n ? -1 : m->n_syms + 1};
        m->n_syms++;
        off += len;
    }
    for (int32_t i = 1; i < m->n_syms; i++)
        if (!try_pair(m, i - 1, i))
            return false;
    while (m->q.n) {
        bigram b = heap_pop(&m->q);
        sym *l = &m->syms[b.left], *r = &m->syms[b.right];
        /* Stale: a side was merged away, or the right side grew since this was queued. */
        if (l->len == 0 || r->len == 0 || l->len + r->len != b.size)
            continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            m->syms[r->next].prev = b.left;
        if (!try_pair(m, l->prev, b.left) || !try_pair(m, b.left, l->next))
            return false;
    }
    return true;
}

static void spm_emit(const merger *m, sink *k)
{
    const ts_vocab *v = m->v;
    for (int32_t i = 0; m->n_syms && i != -1; i = m->syms[i].next) {
        const sym *s = &m->syms[i];
        int32_t id = tok_find(v, m->word + s->off, s->len);
        if (id >= 0) {
            emit(k, id);
            continue;
        }
        for (size_t j = 0; j < s->len; j++) {
            int32_t b = v->byte_tok[(uint8_t)m->word[s->off + j]];
            if (b < 0)
                b = v->unk;
            if (b >= 0)
                emit(k, b);
        }
    }
}

static void bpe_emit(const merger *m, sink *k)
{
    const ts_vocab *v = m->v;
    for (int32_t i = 0; m->n_syms && i != -1; i = m->syms[i].next) {
        const sym *s = &m->syms[i];
        int32_t id = tok_find(v, m->word + s->off, s->len);
        if (id >= 0) {
            emit(k, id);
            continue;
        }
        for (size_t j = 0; j < s->len; j++) { /* llama.cpp: each byte as a one-byte text */
            int32_t b = v->byte_tok[(uint8_t)m->word[s->off + j]];
            if (b >= 0)
                emit(k, b);
        }
    }
}

static bool merger_reserve(merger *m, size_t n_bytes, sym **buf, size_t *cap)
{
    if (n_bytes > *cap) {
        sym *s = realloc(*buf, n_bytes * sizeof(sym));
        if (!s)
            return false;
        *buf = s;
        *cap = n_bytes;
    }
    m->syms = *buf;
    return true;
}

static ts_status nomem(ts_err *err)
{
    return ts_err_set(err, TS_E_NOMEM, "tokenizer: out of memory");
}

static ts_status spm_fragment(const ts_vocab *v, const char *s, size_t n, bool prefix, sink *k,
                              ts_err *err)
{
    /* ' ' -> U+2581 (3 bytes); an optional leading one. */
    char *w = malloc(3 * (n + 1));
    sym *syms = NULL;
    size_t cap = 0, wn = 0;
    merger m = {.v = v};
    if (!w)
        return nomem(err);
    for (size_t i = 0; i < n + prefix; i++) {
        char c = (prefix && i == 0) ? ' ' : s[i - prefix];
        if (c == ' ') {
            memcpy(w + wn, "\xe2\x96\x81", 3);
            wn += 3;
        } else {
            w[wn++] = c;
        }
    }
    bool ok = merger_reserve(&m, wn ? wn : 1, &syms, &cap) && merge_word(&m, w, wn);
    if (ok)
        spm_emit(&m, k);
    free(m.q.v);
    free(syms);
    free(w);
    return ok ? TS_OK : nomem(err);
}

static ts_status bpe_fragment(const ts_vocab *v, const char *s, size_t n, sink *k, ts_err *err)
{
    char *clean = malloc(3 * n + 1);
    char *enc = malloc(6 * n + 1); /* each byte maps to a code point below U+0144: 2 bytes */
    ts_tok_span *spans = NULL;
    size_t n_spans = 0, cap = 0;
    sym *syms = NULL;
    merger m = {.v = v};
    ts_status st = (clean && enc) ? TS_OK : nomem(err);
    size_t cn = st == TS_OK ? ts_tok_utf8_sanitize(s, n, clean) : 0;
    if (st == TS_OK)
        st = ts_tok_pre_split(v->pre, clean, cn, &spans, &n_spans, err);
    for (size_t i = 0; st == TS_OK && i < n_spans; i++) {
        size_t en = 0;
        for (size_t j = 0; j < spans[i].len; j++) {
            uint32_t c = byte_cpt((uint8_t)clean[spans[i].off + j]);
            if (c < 0x80) {
                enc[en++] = (char)c;
            } else {
                enc[en++] = (char)(0xC0 | (c >> 6));
                enc[en++] = (char)(0x80 | (c & 0x3F));
            }
        }
        int32_t whole = v->ignore_merges ? tok_find(v, enc, en) : -1;
        if (whole >= 0) {
            emit(k, whole);
            continue;
        }
        if (!merger_reserve(&m, en ? en : 1, &syms, &cap) || !merge_word(&m, enc, en)) {
            st = nomem(err);
            break;
        }
        bpe_emit(&m, k);
    }
    free(spans);
    free(m.q.v);
    free(syms);
    free(enc);
    free(clean);
    return st;
}

/* A piece of the input: text bytes [off, off + len) when tok < 0, else a special token. */
typedef struct {
    size_t off, len;
    int32_t tok;
} frag;

typedef struct {
    frag *v;
    size_t n, cap;
} frag_list;

static bool frag_push(frag_list *l, size_t off, size_t len, int32_t tok)
{
    if (tok < 0 && len == 0)
        return true;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        frag *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return false;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (frag){off, len, tok};
    return true;
}

static bool c_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Cuts one special token out of every text fragment of cur into nxt. */
static bool cut_special(const ts_vocab *v, int32_t id, const char *text, const frag_list *cur,
                        frag_list *nxt)
{
    const char *st = tab_str(&v->tok, id);
    size_t sl = v->tok.len[id];
    uint8_t attr = v->attr[id];
    nxt->n = 0;
    for (size_t f = 0; f < cur->n; f++) {
        frag fr = cur->v[f];
        if (fr.tok >= 0) {
            if (!frag_push(nxt, fr.off, fr.len, fr.tok))
                return false;
            continue;
        }
        size_t base = fr.off, blen = fr.len;
        for (;;) {
            const char *hit = blen >= sl ? memmem(text + base, blen, st, sl) : NULL;
            if (!hit) {
                if (!frag_push(nxt, base, blen, -1))
                    return false;
                break;
            }
            size_t at = (size_t)(hit - text), left = at - base;
            if (attr & A_LSTRIP)
                while (left > 0 && c_space(text[base + left - 1]))
                    left--;
            if (!frag_push(nxt, base, left, -1) || !frag_push(nxt, at, sl, id))
                return false;
            size_t roff = at + sl, rlen = base + blen - roff;
            if (attr & A_RSTRIP)
                while (rlen > 0 && c_space(text[roff])) {
                    roff++;
                    rlen--;
                }
            base = roff;
            blen = rlen;
        }
    }
    return true;
}

ts_status ts_vocab_tokenize(const ts_vocab *v, const char *text, size_t len, bool add_special,
                            bool parse_special, int32_t *out, size_t cap, size_t *n_out,
                            ts_err *err)
{
    *n_out = 0;
    if ((!text && len) || (!out && cap))
        return ts_err_set(err, TS_E_ARG, "ts_vocab_tokenize: NULL buffer");
    frag_list cur = {0}, nxt = {0};
    bool ok = frag_push(&cur, 0, len, -1);
    for (size_t k = 0; ok && k < v->n_special; k++) {
        int32_t id = v->special[k];
        if (!parse_special && (v->attr[id] & (A_CONTROL | A_UNKNOWN)))
            continue;
        ok = cut_special(v, id, text, &cur, &nxt);
        frag_list t = cur;
        cur = nxt;
        nxt = t;
    }
    free(nxt.v);
    if (!ok) {
        free(cur.v);
        return nomem(err);
    }
    sink k = {out, cap, 0};
    ts_status st = TS_OK;
    if (add_special && v->add_bos)
        emit(&k, v->bos);
    bool prev_special = true; /* SPM: the first fragment gets the space prefix too */
    for (size_t f = 0; st == TS_OK && f < cur.n; f++) {
        const frag *fr = &cur.v[f];
        if (fr->tok >= 0) {
            emit(&k, fr->tok);
            prev_special = true;
        } else if (v->kind == KIND_SPM) {
            st = spm_fragment(v, text + fr->off, fr->len, v->add_space_prefix && prev_special,
                              &k, err);
            prev_special = false;
        } else {
            st = bpe_fragment(v, text + fr->off, fr->len, &k, err);
        }
    }
    if (add_special && v->add_eos)
        emit(&k, v->eos);
    free(cur.v);
    *n_out = k.n;
    return st;
}

/* ---------------------------------------------------------------- decode */

static size_t put(char *buf, size_t cap, size_t at, const char *s, size_t n)
{
    if (at >= cap)
        return at;
    if (n > cap - at)
        n = cap - at;
    memcpy(buf + at, s, n);
    return at + n;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

size_t ts_vocab_piece(const ts_vocab *v, int32_t id, char *buf, size_t cap)
{
    if (!v || id < 0 || id >= v->n_vocab || (!buf && cap))
        return 0;
    const char *s = tab_str(&v->tok, id);
    size_t n = v->tok.len[id], o = 0;
    uint8_t attr = v->attr[id];
    if (attr & (A_UNKNOWN | A_CONTROL))
        return 0;
    if (attr & A_USER)
        return put(buf, cap, 0, s, n);
    if (attr & A_BYTE) {
        int hi = n == 6 ? hex_digit(s[3]) : -1, lo = n == 6 ? hex_digit(s[4]) : -1;
        if (hi >= 0 && lo >= 0 && !memcmp(s, "<0x", 3)) {
            char b = (char)(hi * 16 + lo);
            return put(buf, cap, 0, &b, 1);
        }
        return put(buf, cap, 0, s, n);
    }
    if (!(attr & A_NORMAL))
        return 0;
    if (v->kind == KIND_SPM) {
        for (size_t i = 0; i < n;) {
            if (n - i >= 3 && !memcmp(s + i, "\xe2\x96\x81", 3)) {
                o = put(buf, cap, o, " ", 1);
                i += 3;
            } else {
                o = put(buf, cap, o, s + i, 1);
                i++;
            }
        }
        return o;
    }
    /* Byte-level BPE: each code point of the text names one byte; others pass through. */
    for (size_t i = 0; i < n;) {
        uint8_t c = (uint8_t)s[i];
        uint32_t cpt = c;
        size_t len = 1;
        if (c >= 0xC0 && c < 0xE0 && i + 1 < n) {
            cpt = ((uint32_t)(c & 0x1F) << 6) | ((uint8_t)s[i + 1] & 0x3F);
            len = 2;
        }
        int byte = -1;
        if (cpt < 0x144)
            for (int b = 0; b < 256 && byte < 0; b++)
                if (byte_cpt((uint8_t)b) == cpt)
                    byte = b;
        if (byte >= 0) {
            char bb = (char)byte;
            o = put(buf, cap, o, &bb, 1);
        } else {
            o = put(buf, cap, o, s + i, len);
        }
        i += len;
    }
    return o;
}
