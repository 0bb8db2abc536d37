/*
 * core/sampling.c: next-token selection from logits.
 *
 * Owns: the sampler chain (in llama.cpp's default order): repetition penalty
 * -> top-k -> top-p -> min-p -> temperature -> draw; greedy when temp <= 0.
 * The RNG is splitmix64 seeded from ts_sampling.seed, so a seed fixes the
 * output. Candidate order is total (logit, then id), so ties never depend on
 * qsort's stability. Buffers are allocated at create; sampling never allocates.
 * Non-finite logits: -Inf is a token that cannot be drawn (probability 0 at
 * any temperature). A NaN or +Inf leaves no distribution (and would break the
 * sort's total order and the softmax), so sampling returns -1 then, as it
 * does when every logit is -Inf; callers report it (tessera run does).
 * Speed (a 128k vocabulary, a server sampling 16 sequences a step): greedy
 * without a penalty scans the logits in place; top-k keeps the k best in a
 * heap (n log k) instead of sorting the vocabulary. Both give exactly the
 * full sort's answer: the candidate order is total, so the k best are one set.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tessera.h"

typedef struct {
    int32_t id;
    float logit, p;
} cand;

struct ts_sampler {
    ts_sampling p;
    int64_t n_vocab;
    int32_t *hist; /* ring of the last repeat_last_n tokens */
    int n_hist, hist_at, hist_cap;
    uint8_t *seen;
    uint8_t *ban;  /* (n_vocab) or NULL: ts_sampler_ban's tokens */
    cand *c;
    uint64_t rng;
};

ts_status ts_sampler_create(ts_sampler **out, const ts_sampling *p, int64_t n_vocab, ts_err *err)
{
    *out = NULL;
    if (n_vocab < 1 || !p || p->top_k < 0 || p->repeat_last_n < 0 || !(p->top_p >= 0.0f) ||
        !(p->min_p >= 0.0f) || !(p->repeat_penalty >= 0.0f) || p->temp != p->temp)
        return ts_err_set(err, TS_E_ARG, "sampler: bad parameters");
    ts_sampler *s = calloc(1, sizeof(*s));
    if (!s)
        return ts_err_set(err, TS_E_NOMEM, "sampler: out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->hist_cap = p->repeat_last_n ? p->repeat_last_n : 64;
    s->hist = calloc((size_t)s->hist_cap, sizeof(int32_t));
    s->seen = calloc((size_t)n_vocab, 1);
    s->c = calloc((size_t)n_vocab, sizeof(cand));
    s->rng = p->seed;
    if (!s->hist || !s->seen || !s->c) {
        ts_sampler_destroy(s);
        return ts_err_set(err, TS_E_NOMEM, "sampler: out of memory");
    }
    *out = s;
    return TS_OK;
}

void ts_sampler_destroy(ts_sampler *s)
{
    if (!s)
        return;
    free(s->hist);
    free(s->seen);
    free(s->ban);
    free(s->c);
    free(s);
}

void ts_sampler_accept(ts_sampler *s, int32_t token)
{
    s->hist[s->hist_at] = token;
    s->hist_at = (s->hist_at + 1) % s->hist_cap;
    if (s->n_hist < s->hist_cap)
        s->n_hist++;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int cmp_cand(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

ts_status ts_sampler_ban(ts_sampler *s, const int32_t *ids, int n, ts_err *err)
{
    if (n <= 0)
        return TS_OK;
    if (!s->ban && !(s->ban = calloc((size_t)s->n_vocab, 1)))
        return ts_err_set(err, TS_E_NOMEM, "sampler: out of memory");
    for (int i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < s->n_vocab)
            s->ban[ids[i]] = 1;
    return TS_OK;
}

/* Greedy without a penalty, on the logits in place: the first (lowest id) of
 * the largest, as the candidate order gives; -1 as ts_sampler_sample. */
static int32_t greedy_plain(const ts_sampler *s, const float *logits)
{
    int64_t best = -1;
    float bl = -INFINITY;
    for (int64_t i = 0; i < s->n_vocab; i++) {
        const float l = logits[i];
        if (s->ban && s->ban[i])
            continue;
        if (l != l || l == INFINITY)
            return -1;
        if (l > bl) {
            bl = l;
            best = i;
        }
    }
    return (int32_t)best; /* -1 when every logit is -Inf */
}

/* a comes after b in the candidate order (a worse) */
static bool worse(const cand *a, const cand *b) { return cmp_cand(a, b) > 0; }

static void sift_down(cand *h, int64_t k, int64_t i)
{
    for (;;) {
        int64_t w = i, l = 2 * i + 1, r = l + 1;
        if (l < k && worse(&h[l], &h[w]))
            w = l;
        if (r < k && worse(&h[r], &h[w]))
            w = r;
        if (w == i)
            return;
        cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* Moves the k best of c[0..n) (candidate order) to c[0..k), sorted. */
static void top_k_select(cand *c, int64_t n, int64_t k)
{
    /* c[0..k) as a heap with the worst at the root; a better one replaces it */
    for (int64_t i = k / 2; i-- > 0;)
        sift_down(c, k, i);
    for (int64_t i = k; i < n; i++)
        if (worse(&c[0], &c[i])) {
            c[0] = c[i];
            sift_down(c, k, 0);
        }
    qsort(c, (size_t)k, sizeof(cand), cmp_cand);
}

/* Probabilities of c[0..n) (sorted, c[0] the largest) at temperature t. */
static void softmax(cand *c, int64_t n, float t)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        /* c[0] is finite (checked before); -inf / t is NaN when t = +inf */
        c[i].p = c[i].logit == -INFINITY ? 0.0f : expf((c[i].logit - c[0].logit) / t);
        sum += c[i].p;
    }
    for (int64_t i = 0; i < n; i++)
        c[i].p = (float)(c[i].p / sum);
}

static void penalize(ts_sampler *s)
{
    float pen = s->p.repeat_penalty;
    if (pen == 0.0f || pen == 1.0f)
        return;
    for (int i = 0; i < s->n_hist; i++) {
        int32_t id = s->hist[i];
        if (id < 0 || id >= s->n_vocab || s->seen[id])
            continue;
        s->seen[id] = 1;
        float *l = &s->c[id].logit;
        *l = *l > 0.0f ? *l / pen : *l * pen;
    }
    for (int i = 0; i < s->n_hist; i++)
        if (s->hist[i] >= 0 && s->hist[i] < s->n_vocab)
            s->seen[s->hist[i]] = 0;
}

/* True when some logit is finite and none is NaN or +Inf. */
static bool samplable(const cand *c, int64_t n)
{
    bool finite = false;
    for (int64_t i = 0; i < n; i++) {
        if (c[i].logit != c[i].logit || c[i].logit == INFINITY)
            return false;
        finite = finite || c[i].logit != -INFINITY;
    }
    return finite;
}

int32_t ts_sampler_sample(ts_sampler *s, const float *logits)
{
    int64_t n = s->n_vocab;
    const float pen = s->p.repeat_penalty;
    if (!(s->p.temp > 0.0f) && (pen == 0.0f || pen == 1.0f || s->n_hist == 0))
        return greedy_plain(s, logits);
    for (int64_t i = 0; i < n; i++)
        s->c[i] = (cand){(int32_t)i, s->ban && s->ban[i] ? -INFINITY : logits[i], 0.0f};
    penalize(s);
    if (!samplable(s->c, n))
        return -1;
    if (!(s->p.temp > 0.0f)) {
        int64_t best = 0;
        for (int64_t i = 1; i < n; i++)
            if (s->c[i].logit > s->c[best].logit)
                best = i;
        return (int32_t)best;
    }
    if (s->p.top_k > 0 && s->p.top_k < n) {
        top_k_select(s->c, n, s->p.top_k);
        n = s->p.top_k;
    } else {
        qsort(s->c, (size_t)n, sizeof(cand), cmp_cand);
    }
    softmax(s->c, n, 1.0f);
    if (s->p.top_p > 0.0f && s->p.top_p < 1.0f) {
        double cum = 0.0;
        int64_t keep = n;
        for (int64_t i = 0; i < n; i++) {
            cum += s->c[i].p;
            if (cum >= s->p.top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (s->p.min_p > 0.0f) {
        float floor_p = s->p.min_p * s->c[0].p;
        int64_t keep = 1;
        while (keep < n && s->c[keep].p >= floor_p)
            keep++;
        n = keep;
    }
    softmax(s->c, n, s->p.temp);
    double u = (double)(splitmix64(&s->rng) >> 11) * (1.0 / 9007199254740992.0);
    double cum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        cum += s->c[i].p;
        if (u < cum)
            return s->c[i].id;
    }
    while (n > 1 && s->c[n - 1].p == 0.0f) /* rounding left u above cum: never a -inf token */
        n--;
    return s->c[n - 1].id;
}
