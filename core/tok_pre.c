/*
 * core/tok_pre.c: byte-level BPE pre-tokenizers (tokenizer.ggml.pre) through PCRE2.
 *
 * Owns the name -> regex-list table and the splitting; not the merges (tokenizer.c).
 * Semantics match llama.cpp's pre-tokenizer: the regexes run in order, each one splitting every
 * span left by the previous one into its matches and the unmatched gaps; a regex sees one span
 * as its whole subject, so lookaheads and `$` stop at the span's end.
 * Whitespace is Unicode White_Space: PCRE2's \s under UCP lacks U+0085 only, so every class here
 * spells it [\s\x{85}] (WS below). llama.cpp matches its non-\p regexes on text where non-ASCII
 * whitespace was replaced by VT, so a character class that contains a whitespace code point
 * (U+3000 in the CJK ranges) must not match it: those classes are guarded with NOT_WS.
 * Invalid UTF-8 is sanitized before splitting (ts_tok_utf8_sanitize), as llama.cpp decodes it.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer.h"
#include "err.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#define WS "\\s\\x{85}"
#define NOT_WS "(?![" WS "])"
/* \s+(?!\S)|\s+ : runs of whitespace, leaving the last one to a following word. */
#define WS_RUNS "|[" WS "]+(?![^" WS "])|[" WS "]+"
#define CONTRACTIONS_ANYCASE "'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])"

/* GPT-2's split, also a member of other lists: a macro, since C11 does not take an element
 * of another const array as a constant initializer (GCC accepts that as an extension). */
#define GPT2_SPLIT "'(?:s|t|re|ve|m|ll|d)| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+" WS_RUNS
static const char *const re_gpt2[] = {GPT2_SPLIT, NULL};

#define LLAMA3_TAIL(digits)                                                                     \
    "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}" digits "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*"          \
    "|[" WS "]*[\\r\\n]+" WS_RUNS
static const char *const re_llama3[] = {CONTRACTIONS_ANYCASE LLAMA3_TAIL("{1,3}"), NULL};
static const char *const re_qwen2[] = {CONTRACTIONS_ANYCASE LLAMA3_TAIL(""), NULL};
/* qwen35: qwen2's split, but combining marks (\p{M}) stay inside words. */
static const char *const re_qwen35[] = {
    CONTRACTIONS_ANYCASE "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}"
                         "| ?[^" WS "\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|[" WS "]*[\\r\\n]+" WS_RUNS,
    NULL};

/* Cased letters as listed by DeepSeek's tokenizer.json (a fixed set, not \p{L&} of today). */
#define DS_LETTERS                                                                              \
    "A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"             \
    "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}"     \
    "\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}"              \
    "\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}"                   \
    "\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"             \
    "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}"             \
    "\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}"    \
    "\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}"     \
    "\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}"             \
    "\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"              \
    "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}"               \
    "\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}"    \
    "\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}"     \
    "\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}"              \
    "\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}"             \
    "\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"           \
    "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"     \
    "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}"
/* CJK ideographs, U+0800..U+4E00 and Hangul, minus the whitespace inside those ranges. */
#define DS_CJK "(?:" NOT_WS "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}])+"

static const char *const re_deepseek_llm[] = {
    "[\\r\\n]",
    "[" WS "]?[" DS_LETTERS "]+",
    "[" WS "]?(?:" NOT_WS "[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}"
    "\\x{3000}-\\x{3002}])+",
    "[" WS "]+$",
    DS_CJK,
    "\\p{N}+",
    NULL};
static const char *const re_deepseek_coder[] = {
    "[\\r\\n]", "[" WS "]?\\p{L}+", "[" WS "]?\\p{P}+", DS_CJK, "\\p{N}", NULL};
static const char *const re_falcon[] = {"[\\p{P}$+<=>^~|`]+", GPT2_SPLIT, "[0-9][0-9][0-9]", NULL};
static const char *const re_default[] = {
    "[\\p{P}$+<=>^~|]+", GPT2_SPLIT, "\\p{N}+", "[0-9][0-9][0-9]", NULL};
static const char *const re_starcoder[] = {"\\p{N}", GPT2_SPLIT, NULL};
/* " ?[^(\s|.,!?…。，、।۔،)]+": the parentheses and bar are literal inside the class. */
#define PORO "(?: ?[^(" WS "|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+)"
static const char *const re_poro[] = {PORO, NULL};
static const char *const re_viking[] = {PORO, "\\p{N}", NULL};

typedef struct {
    const char *names; /* aliases separated by '|' */
    const char *const *regexes;
    ts_tok_pre_info info;
} pre_def;

static const pre_def pre_table[] = {
    {"default", re_default, {false, false}},
    {"gpt-2|gpt2|phi-2|mpt|olmo|jais|jina-es|jina-de|jina-v2-es|jina-v2-de|jina-v1-en|"
     "jina-v2-code|roberta-bpe|gigachat|mellum|exaone4|trillion",
     re_gpt2, {false, false}},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2", re_llama3, {true, true}},
    {"dbrx|smaug-bpe|chatglm-bpe|glm4", re_llama3, {false, false}},
    {"qwen2|deepseek-r1-qwen|stablelm2|hunyuan|megrez", re_qwen2, {false, false}},
    {"qwen35", re_qwen35, {false, false}},
    {"deepseek-llm", re_deepseek_llm, {false, false}},
    {"deepseek-coder", re_deepseek_coder, {false, false}},
    {"falcon", re_falcon, {false, false}},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", re_starcoder, {false, false}},
    {"poro-chat|bloom|gpt3-finnish", re_poro, {false, false}},
    {"viking", re_viking, {false, false}},
};

struct ts_tok_pre {
    size_t n_re;
    pcre2_code *re[8]; /* the longest list (deepseek-llm) has 6 */
};

static bool name_in(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !memcmp(p, name, n))
            return true;
        if (!bar)
            return false;
        p = bar + 1;
    }
}

void ts_tok_pre_destroy(ts_tok_pre *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_re; i++)
        pcre2_code_free(p->re[i]);
    free(p);
}

ts_status ts_tok_pre_create(ts_tok_pre **out, const char *name, ts_tok_pre_info *info,
                            ts_err *err)
{
    *out = NULL;
    const pre_def *def = NULL;
    for (size_t i = 0; i < sizeof(pre_table) / sizeof(pre_table[0]) && !def; i++)
        if (name_in(pre_table[i].names, name))
            def = &pre_table[i];
    if (!def)
        return ts_err_set(err, TS_E_UNSUPPORTED,
                          "tokenizer.ggml.pre: unknown pre-tokenizer '%s'", name);
    ts_tok_pre *p = calloc(1, sizeof(*p));
    if (!p)
        return ts_err_set(err, TS_E_NOMEM, "tokenizer: out of memory");
    for (const char *const *re = def->regexes; *re; re++) {
        int code;
        PCRE2_SIZE at;
        p->re[p->n_re] = pcre2_compile((PCRE2_SPTR)*re, PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &code, &at,
                                       NULL);
        if (!p->re[p->n_re]) {
            char msg[128];
            pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof(msg));
            ts_tok_pre_destroy(p);
            return ts_err_set(err, TS_E_STATE, "pre-tokenizer '%s': regex error at %zu: %s",
                              name, (size_t)at, msg);
        }
        /* JIT is an optimisation only: without it pcre2_match interprets. */
        pcre2_jit_compile(p->re[p->n_re], PCRE2_JIT_COMPLETE);
        p->n_re++;
    }
    *info = def->info;
    *out = p;
    return TS_OK;
}

/* Lead-byte length as llama.cpp reads it: continuation or 0xF8+ bytes stand alone. */
static size_t utf8_need(uint8_t c)
{
    if (c < 0x80)
        return 1;
    if (c < 0xC0)
        return 0;
    if (c < 0xE0)
        return 2;
    if (c < 0xF0)
        return 3;
    if (c < 0xF8)
        return 4;
    return 0;
}

static size_t utf8_put(uint32_t cpt, char *dst)
{
    uint8_t *d = (uint8_t *)dst;
    if (cpt < 0x80) {
        d[0] = (uint8_t)cpt;
        return 1;
    }
    if (cpt < 0x800) {
        d[0] = (uint8_t)(0xC0 | (cpt >> 6));
        d[1] = (uint8_t)(0x80 | (cpt & 0x3F));
        return 2;
    }
    if (cpt < 0x10000) {
        d[0] = (uint8_t)(0xE0 | (cpt >> 12));
        d[1] = (uint8_t)(0x80 | ((cpt >> 6) & 0x3F));
        d[2] = (uint8_t)(0x80 | (cpt & 0x3F));
        return 3;
    }
    d[0] = (uint8_t)(0xF0 | (cpt >> 18));
    d[1] = (uint8_t)(0x80 | ((cpt >> 12) & 0x3F));
    d[2] = (uint8_t)(0x80 | ((cpt >> 6) & 0x3F));
    d[3] = (uint8_t)(0x80 | (cpt & 0x3F));
    return 4;
}

size_t ts_tok_utf8_sanitize(const char *text, size_t len, char *dst)
{
    const uint8_t *s = (const uint8_t *)text;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t need = utf8_need(s[i]);
        bool ok = need > 0 && i + need <= len;
        for (size_t k = 1; ok && k < need; k++)
            ok = (s[i + k] & 0xC0) == 0x80;
        if (!ok) {
            o += utf8_put(0xFFFD, dst + o);
            i++;
            continue;
        }
        uint32_t cpt = need == 1 ? s[i] : (uint32_t)(s[i] & (0x7F >> need));
        for (size_t k = 1; k < need; k++)
            cpt = (cpt << 6) | (s[i + k] & 0x3F);
        /* Surrogates and > U+10FFFF cannot be encoded validly: the replacement character
         * stands in (llama.cpp would fail on them later). */
        if ((cpt >= 0xD800 && cpt <= 0xDFFF) || cpt > 0x10FFFF)
            cpt = 0xFFFD;
        o += utf8_put(cpt, dst + o);
        i += need;
    }
    return o;
}

typedef struct {
    ts_tok_span *v;
    size_t n, cap;
} span_list;

static bool span_push(span_list *l, size_t off, size_t len)
{
    if (len == 0)
        return true;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        ts_tok_span *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return false;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n].off = off;
    l->v[l->n].len = len;
    l->n++;
    return true;
}

/* One regex over one span: matches and the gaps between them, in order. */
static bool split_span(const pcre2_code *re, pcre2_match_data *md, const char *text,
                       ts_tok_span in, span_list *out)
{
    PCRE2_SPTR subj = (PCRE2_SPTR)(text + in.off);
    size_t pos = 0, gap = 0;
    while (pos < in.len) {
        /* The text is valid UTF-8 (sanitized by the caller): skip PCRE2's per-call check,
         * which would make long spans quadratic. */
        int rc = pcre2_match(re, subj, in.len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc < 0)
            break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t m0 = ov[0], m1 = ov[1];
        if (m1 <= m0) { /* an empty match: step one character and look again */
            pos = m0 + 1;
            while (pos < in.len && (subj[pos] & 0xC0) == 0x80)
                pos++;
            continue;
        }
        if (!span_push(out, in.off + gap, m0 - gap) || !span_push(out, in.off + m0, m1 - m0))
            return false;
        gap = pos = m1;
    }
    return span_push(out, in.off + gap, in.len - gap);
}

ts_status ts_tok_pre_split(const ts_tok_pre *p, const char *text, size_t len, ts_tok_span **spans,
                           size_t *n_spans, ts_err *err)
{
    span_list cur = {0}, next = {0};
    *spans = NULL;
    *n_spans = 0;
    pcre2_match_data *md = NULL;
    bool ok = span_push(&cur, 0, len);
    for (size_t r = 0; ok && r < p->n_re; r++) {
        pcre2_match_data_free(md);
        md = pcre2_match_data_create_from_pattern(p->re[r], NULL);
        ok = md != NULL;
        next.n = 0;
        for (size_t s = 0; ok && s < cur.n; s++)
            ok = split_span(p->re[r], md, text, cur.v[s], &next);
        span_list t = cur;
        cur = next;
        next = t;
    }
    pcre2_match_data_free(md);
    free(next.v);
    if (!ok) {
        free(cur.v);
        return ts_err_set(err, TS_E_NOMEM, "tokenizer: out of memory splitting %zu bytes", len);
    }
    *spans = cur.v;
    *n_spans = cur.n;
    return TS_OK;
}
