/*
 * tests/test_sampling.c: the sampler's fast paths against a plain oracle.
 *
 * core/sampling.c scans the logits in place for greedy without a penalty and
 * keeps the top k in a heap instead of sorting the vocabulary. The oracle
 * here is the chain written the obvious way (every candidate sorted, then
 * top-k, top-p, min-p, temperature, the same splitmix64 draw): the sampler
 * must pick the same token on every draw, with ties in the logits (coarse
 * values), banned tokens, penalties and -Inf logits, for many seeds.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tessera.h"
#include "test.h"

typedef struct {
    int32_t id;
    float logit, p;
} ocand;

static int ocmp(const void *a, const void *b)
{
    const ocand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static uint64_t osplit(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void osoftmax(ocand *c, int64_t n, float t)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        c[i].p = c[i].logit == -INFINITY ? 0.0f : expf((c[i].logit - c[0].logit) / t);
        sum += c[i].p;
    }
    for (int64_t i = 0; i < n; i++)
        c[i].p = (float)(c[i].p / sum);
}

/* The oracle: one draw, rng advanced as the sampler does (only when temp > 0). */
static int32_t oracle(const ts_sampling *p, const float *logits, int64_t nv, const uint8_t *ban,
                      const int32_t *hist, int n_hist, uint64_t *rng)
{
    ocand *c = malloc((size_t)nv * sizeof(*c));
    uint8_t *seen = calloc((size_t)nv, 1);
    for (int64_t i = 0; i < nv; i++)
        c[i] = (ocand){(int32_t)i, ban[i] ? -INFINITY : logits[i], 0.0f};
    if (p->repeat_penalty != 0.0f && p->repeat_penalty != 1.0f)
        for (int i = 0; i < n_hist; i++)
            if (!seen[hist[i]]) {
                seen[hist[i]] = 1;
                float *l = &c[hist[i]].logit;
                *l = *l > 0.0f ? *l / p->repeat_penalty : *l * p->repeat_penalty;
            }
    int32_t tok = -1;
    bool finite = false, bad = false;
    for (int64_t i = 0; i < nv; i++) {
        bad = bad || c[i].logit != c[i].logit || c[i].logit == INFINITY;
        finite = finite || c[i].logit != -INFINITY;
    }
    if (bad || !finite)
        goto out;
    qsort(c, (size_t)nv, sizeof(*c), ocmp);
    if (!(p->temp > 0.0f)) {
        tok = c[0].id;
        goto out;
    }
    int64_t n = p->top_k > 0 && p->top_k < nv ? p->top_k : nv;
    osoftmax(c, n, 1.0f);
    if (p->top_p > 0.0f && p->top_p < 1.0f) {
        double cum = 0.0;
        for (int64_t i = 0; i < n; i++) {
            cum += c[i].p;
            if (cum >= p->top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0.0f) {
        float floor_p = p->min_p * c[0].p;
        int64_t keep = 1;
        while (keep < n && c[keep].p >= floor_p)
            keep++;
        n = keep;
    }
    osoftmax(c, n, p->temp);
    double u = (double)(osplit(rng) >> 11) * (1.0 / 9007199254740992.0), cum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        cum += c[i].p;
        if (u < cum) {
            tok = c[i].id;
            goto out;
        }
    }
    while (n > 1 && c[n - 1].p == 0.0f)
        n--;
    tok = c[n - 1].id;
out:
    free(c);
    free(seen);
    return tok;
}

TS_TEST(test_sampling_matches_oracle)
{
    enum { NV = 3001, DRAWS = 40 };
    const ts_sampling cfgs[] = {
        {.temp = 0.0f},
        {.temp = 0.0f, .repeat_penalty = 1.3f},
        {.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f},
        {.temp = 1.0f, .top_k = 1},
        {.temp = 1.5f, .top_k = 7, .repeat_penalty = 1.1f, .repeat_last_n = 16},
        {.temp = 0.7f, .top_k = NV - 1, .top_p = 0.5f},
        {.temp = 0.9f, .top_k = 0, .top_p = 0.9f},
        {.temp = 2.0f, .top_k = NV + 5, .min_p = 0.01f},
    };
    uint64_t r = 77;
    float *l = malloc(NV * sizeof(float));
    uint8_t *ban = calloc(NV, 1);
    TS_REQUIRE(l && ban, "alloc");
    for (size_t ci = 0; ci < sizeof(cfgs) / sizeof(cfgs[0]); ci++) {
        for (int seed = 0; seed < 3; seed++) {
            ts_sampling p = cfgs[ci];
            p.seed = 1000 * ci + (uint64_t)seed;
            ts_sampler *s = NULL;
            TS_REQUIRE(ts_sampler_create(&s, &p, NV, NULL) == TS_OK, "create %zu", ci);
            memset(ban, 0, NV);
            const int32_t banned[] = {5, 17, NV - 1, -3, NV + 9}; /* the last two: ignored */
            if (seed == 1) {
                TS_REQUIRE(ts_sampler_ban(s, banned, 5, NULL) == TS_OK, "ban");
                ban[5] = ban[17] = ban[NV - 1] = 1;
            }
            int32_t hist[256];
            int n_hist = 0, hist_cap = p.repeat_last_n ? p.repeat_last_n : 64, hist_at = 0;
            uint64_t rng = p.seed;
            int mism = 0;
            for (int d = 0; d < DRAWS; d++) {
                /* coarse values: many exact ties; some -Inf; the banned ones the largest */
                for (int i = 0; i < NV; i++)
                    l[i] = (float)((int)(ts_test_randf(&r) * 8.0f)) * 0.5f;
                for (int i = 0; i < NV; i += 97)
                    l[i] = -INFINITY;
                l[5] = l[17] = l[NV - 1] = 100.0f;
                const int32_t got = ts_sampler_sample(s, l);
                const int32_t want = oracle(&p, l, NV, ban, hist, n_hist, &rng);
                mism += got != want;
                if (got >= 0) {
                    ts_sampler_accept(s, got);
                    hist[hist_at] = got;
                    hist_at = (hist_at + 1) % hist_cap;
                    n_hist += n_hist < hist_cap;
                }
            }
            TS_CHECK(mism == 0, "config %zu seed %d: %d of %d draws differ from the oracle", ci,
                     seed, mism, DRAWS);
            ts_sampler_destroy(s);
        }
    }
    free(l);
    free(ban);
}

/* Greedy fast path: non-finite logits and bans as the full chain treats them. */
TS_TEST(test_sampling_greedy_edges)
{
    enum { NV = 6 };
    const ts_sampling g = {.temp = 0.0f};
    ts_sampler *s = NULL;
    TS_REQUIRE(ts_sampler_create(&s, &g, NV, NULL) == TS_OK, "create");
    float l[NV] = {1, 3, 3, 2, -INFINITY, 0};
    TS_CHECK(ts_sampler_sample(s, l) == 1, "tie: the lower id");
    const int32_t b1 = 1;
    TS_REQUIRE(ts_sampler_ban(s, &b1, 1, NULL) == TS_OK, "ban");
    TS_CHECK(ts_sampler_sample(s, l) == 2, "banned 1: the next of the tie");
    l[1] = NAN; /* a banned token's NaN does not count */
    TS_CHECK(ts_sampler_sample(s, l) == 2, "NaN on a banned token");
    l[3] = NAN;
    TS_CHECK(ts_sampler_sample(s, l) == -1, "NaN elsewhere: -1");
    for (int i = 0; i < NV; i++)
        l[i] = -INFINITY;
    l[1] = 5.0f; /* only the banned one is finite */
    TS_CHECK(ts_sampler_sample(s, l) == -1, "all -Inf but a banned one: -1");
    ts_sampler_destroy(s);
}
