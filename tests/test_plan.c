/*
 * tests/test_plan.c: the step planner (sched/plan.c). Scripted scenarios check exact plans for
 * each policy, the page rules, the edge cases and bad inputs; the worked-example tables of
 * sched/plan.c's comment are replayed step by step. Property tests drive a small simulator
 * (prompts advance, finished prompts decode after an optional idle step, decoders end after
 * k tokens and free their pages, sequences arrive at random steps) over random scenarios and
 * check every plan: budget, pages, item validity, order independence, determinism, each
 * policy's promise, the decoders' bounded wait and that every sequence finishes in bounded
 * steps. One simulator mode admits by worst-case page reservation (pages never block), the
 * other overcommits the pool and preempts the youngest sequence when nothing can get pages.
 */
#include "../sched/plan.h"
#include "test.h"

#include <stdio.h>
#include <string.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static ts_plan_seq prompt(int32_t id, uint64_t arrival, int32_t n_prompt, int32_t n_done)
{
    return (ts_plan_seq){
        .id = id, .n_prompt = n_prompt, .n_done = n_done, .n_pos = n_done, .arrival = arrival};
}

static ts_plan_seq decoder(int32_t id, uint64_t arrival, int32_t n_pos)
{
    return (ts_plan_seq){
        .id = id, .n_prompt = 1, .n_done = 1, .decoding = true, .n_pos = n_pos, .arrival = arrival};
}

static ts_plan_opts opts(ts_plan_policy policy, int32_t budget, int32_t chunk)
{
    return (ts_plan_opts){.policy = policy,
                          .budget = budget,
                          .chunk = chunk,
                          .page_tokens = 64,
                          .free_pages = 1 << 20};
}

/* Whether prompt a comes before prompt b in the planner's prompt order (sched/plan.c):
 * prefill-first FIFO; the others urgent (waited >= max_wait, most-waited) first, then fewest
 * tokens left; ties by arrival, then id. */
static bool prompt_before(const ts_plan_seq *a, const ts_plan_seq *b, ts_plan_policy policy,
                          uint32_t max_wait)
{
    if (policy != TS_PLAN_PREFILL_FIRST) {
        bool ua = a->waited >= max_wait, ub = b->waited >= max_wait;
        if (ua != ub)
            return ua;
        if (ua && a->waited != b->waited)
            return a->waited > b->waited;
        int32_t la = a->n_prompt - a->n_done, lb = b->n_prompt - b->n_done;
        if (!ua && la != lb)
            return la < lb;
    }
    if (a->arrival != b->arrival)
        return a->arrival < b->arrival;
    return a->id < b->id;
}

/* Plans and formats the step as "id:n_tok id:n_tok ..." for exact comparisons. */
static int plan_str(const ts_plan_seq *seqs, int n, const ts_plan_opts *o, char *buf, size_t cap)
{
    ts_plan_item items[64];
    int m = ts_plan_step(seqs, n, o, items, (int)N_OF(items));
    size_t len = 0;
    buf[0] = 0;
    for (int it = 0; it < m && len < cap; it++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%d:%d", it ? " " : "", items[it].id,
                                items[it].n_tok);
    return m;
}

#define CHECK_PLAN(seqs, n, o, want)                                                               \
    do {                                                                                           \
        char got_[512];                                                                            \
        plan_str(seqs, n, o, got_, sizeof(got_));                                                  \
        TS_CHECK(strcmp(got_, want) == 0, "plan '%s', want '%s'", got_, want);                     \
    } while (0)

TS_TEST(test_plan_policy_names)
{
    for (int p = 0; p < TS_PLAN_N_POLICIES; p++) {
        const char *name = ts_plan_policy_name(p);
        TS_REQUIRE(name != NULL, "policy %d has no name", p);
        TS_CHECK(ts_plan_policy_parse(name) == p, "%s does not parse back", name);
    }
    TS_CHECK(ts_plan_policy_parse("interleaved") == TS_PLAN_INTERLEAVED, "interleaved");
    TS_CHECK(ts_plan_policy_parse("prefill-first") == TS_PLAN_PREFILL_FIRST, "prefill-first");
    TS_CHECK(ts_plan_policy_parse("decode-priority") == TS_PLAN_DECODE_PRIORITY, "d-p");
    const char *bad[] = {"", "fifo", "Interleaved", "prefill_first", "decode-priority "};
    for (size_t b = 0; b < N_OF(bad); b++)
        TS_CHECK(ts_plan_policy_parse(bad[b]) == -1, "'%s' parsed", bad[b]);
    TS_CHECK(ts_plan_policy_parse(NULL) == -1, "NULL parsed");
    TS_CHECK(ts_plan_policy_name(-1) == NULL && ts_plan_policy_name(3) == NULL, "names range");
}

TS_TEST(test_plan_pages_needed)
{
    static const int64_t cases[][4] = {
        /* n_pos, n_tok, page_tokens, pages */
        {0, 0, 64, 0},  {0, 1, 64, 1},  {0, 64, 64, 1},        {0, 65, 64, 2},
        {63, 1, 64, 0}, {64, 1, 64, 1}, {10, 118, 64, 1},      {10, 119, 64, 2},
        {5, 3, 1, 3},   {7, 0, 4, 0},   {INT32_MAX, 1, 64, 0}, {1LL << 31, 1, 64, 1},
        {-1, 1, 64, 0}, {0, -1, 64, 0}, {0, 1, 0, 0},
    };
    for (size_t c = 0; c < N_OF(cases); c++) {
        int64_t got = ts_plan_pages_needed(cases[c][0], cases[c][1], (int32_t)cases[c][2]);
        TS_CHECK(got == cases[c][3], "pages(%lld, %lld, %lld) = %lld, want %lld",
                 (long long)cases[c][0], (long long)cases[c][1], (long long)cases[c][2],
                 (long long)got, (long long)cases[c][3]);
    }
}

TS_TEST(test_plan_defaults)
{
    ts_plan_opts o = opts(TS_PLAN_DECODE_PRIORITY, 512, 512);
    TS_CHECK(ts_plan_min_grant(&o) == 64, "grant at 512: %d", ts_plan_min_grant(&o));
    TS_CHECK(ts_plan_max_wait(&o) == TS_PLAN_DEFAULT_MAX_WAIT, "max_wait default");
    o.budget = 7;
    TS_CHECK(ts_plan_min_grant(&o) == 1, "grant at 7: %d", ts_plan_min_grant(&o));
    o.min_grant = 3, o.max_wait = 9;
    TS_CHECK(ts_plan_min_grant(&o) == 3 && ts_plan_max_wait(&o) == 9, "explicit values");
    TS_CHECK(ts_plan_min_grant(NULL) == -1 && ts_plan_max_wait(NULL) == -1, "NULL");
}

TS_TEST(test_plan_prefill_first)
{
    /* D arrived first; prompts A B C fill the budget FIFO, chunk-capped; D gets what is left. */
    ts_plan_seq s[] = {prompt(10, 1, 100, 0), decoder(7, 0, 50), prompt(11, 2, 30, 0),
                       prompt(12, 3, 80, 30)};
    ts_plan_opts o = opts(TS_PLAN_PREFILL_FIRST, 100, 40);
    CHECK_PLAN(s, 4, &o, "10:40 11:30 12:30");
    o.budget = 200;
    CHECK_PLAN(s, 4, &o, "10:40 11:30 12:40 7:1");
    /* Stalled max_wait steps, D is urgent: served ahead of the prompts. */
    o.budget = 100;
    s[1].waited = TS_PLAN_DEFAULT_MAX_WAIT - 1;
    CHECK_PLAN(s, 4, &o, "10:40 11:30 12:30");
    s[1].waited = TS_PLAN_DEFAULT_MAX_WAIT;
    CHECK_PLAN(s, 4, &o, "7:1 10:40 11:30 12:29");
    o.max_wait = 9;
    CHECK_PLAN(s, 4, &o, "10:40 11:30 12:30");
}

TS_TEST(test_plan_interleaved)
{
    /* Decoders first (oldest first), then prompts, fewest tokens left first; chunk larger
     * than the budget. */
    ts_plan_seq s[] = {decoder(0, 5, 9), decoder(1, 4, 9),     decoder(2, 3, 9),   decoder(3, 2, 9),
                       decoder(4, 1, 9), prompt(5, 6, 500, 0), prompt(6, 7, 10, 0)};
    ts_plan_opts o = opts(TS_PLAN_INTERLEAVED, 10, 1000);
    CHECK_PLAN(s, 7, &o, "4:1 3:1 2:1 1:1 0:1 6:5");
    o.chunk = 3;
    CHECK_PLAN(s, 7, &o, "4:1 3:1 2:1 1:1 0:1 6:3 5:2");
    /* The long one passed over max_wait steps is urgent: ahead of the short one. */
    s[5].waited = TS_PLAN_DEFAULT_MAX_WAIT;
    CHECK_PLAN(s, 7, &o, "4:1 3:1 2:1 1:1 0:1 5:3 6:2");
    s[5].waited = 0;
    o.chunk = 1000;
    /* Budget below the decoders: the oldest 3; the prompts get nothing. */
    o.budget = 3;
    CHECK_PLAN(s, 7, &o, "4:1 3:1 2:1");
    /* An urgent decoder goes first; among urgent ones the most-waited. */
    s[0].waited = 6, s[1].waited = 4;
    CHECK_PLAN(s, 7, &o, "0:1 1:1 4:1");
    s[1].waited = 6;
    CHECK_PLAN(s, 7, &o, "1:1 0:1 4:1"); /* tie on waited: earlier arrival (id 1) first */
}

TS_TEST(test_plan_short_behind_long)
{
    /* An 8192-token prompt L prefilling at budget 512 beside 4 decoders; a 32-token prompt S
     * arrives: interleaved and decode-priority run all of S at the next step (L takes the
     * rest), prefill-first keeps arrival order. Equal lengths tie by arrival. */
    ts_plan_seq s[] = {decoder(0, 0, 40), decoder(1, 1, 40), decoder(2, 2, 40), decoder(3, 3, 40),
                       prompt(4, 4, 8192, 1024), prompt(5, 5, 32, 0)};
    ts_plan_opts o = opts(TS_PLAN_INTERLEAVED, 512, 512);
    CHECK_PLAN(s, 6, &o, "0:1 1:1 2:1 3:1 5:32 4:476");
    o.policy = TS_PLAN_DECODE_PRIORITY;
    CHECK_PLAN(s, 6, &o, "0:1 1:1 2:1 3:1 5:32 4:476");
    o.policy = TS_PLAN_PREFILL_FIRST;
    CHECK_PLAN(s, 6, &o, "4:512");
    ts_plan_seq t[] = {prompt(7, 9, 100, 0), prompt(8, 8, 100, 0), prompt(9, 7, 300, 250)};
    o = opts(TS_PLAN_INTERLEAVED, 120, 100);
    CHECK_PLAN(t, 3, &o, "9:50 8:70");
    /* A long prompt cannot starve behind a stream of short ones: replay steps where a new
     * 20-token prompt arrives each step and budget 20 would go to it; L must be served
     * within max_wait + 1 steps. */
    ts_plan_seq u[2] = {prompt(1, 0, 1000, 0), prompt(2, 1, 20, 0)};
    o = opts(TS_PLAN_INTERLEAVED, 20, 512);
    int served_at = -1;
    for (int step = 0; step < 10 && served_at < 0; step++) {
        ts_plan_item it[2];
        int m = ts_plan_step(u, 2, &o, it, 2);
        TS_REQUIRE(m >= 1, "step %d: nothing planned", step);
        for (int j = 0; j < m; j++)
            if (it[j].id == 1)
                served_at = step;
        TS_REQUIRE(ts_plan_age(u, 2, it, m) == 0, "age");
        u[1] = prompt(2 + step + 1, 2 + (uint64_t)step, 20, 0); /* a fresh short one */
    }
    TS_CHECK(served_at == TS_PLAN_DEFAULT_MAX_WAIT, "long prompt first served at step %d",
             served_at);
}

TS_TEST(test_plan_decode_priority)
{
    ts_plan_seq s[24];
    int n = 0;
    for (int d = 0; d < 20; d++)
        s[n++] = decoder(d, (uint64_t)d, 30);
    s[n++] = prompt(100, 100, 50, 0);
    s[n++] = prompt(101, 101, 50, 0);
    ts_plan_opts o = opts(TS_PLAN_DECODE_PRIORITY, 16, 8);
    /* Decoders fill the budget: the oldest prompt keeps the default grant, 16 / 8 = 2. */
    CHECK_PLAN(s, n, &o, "0:1 1:1 2:1 3:1 4:1 5:1 6:1 7:1 8:1 9:1 10:1 11:1 12:1 13:1 100:2");
    o.min_grant = 5;
    CHECK_PLAN(s, n, &o, "0:1 1:1 2:1 3:1 4:1 5:1 6:1 7:1 8:1 9:1 10:1 100:5");
    /* The grant never exceeds the chunk, and leaves decoders 1 token of the step. */
    o.min_grant = 100;
    CHECK_PLAN(s, n, &o, "0:1 1:1 2:1 3:1 4:1 5:1 6:1 7:1 100:8");
    o.budget = 1, o.min_grant = 0;
    CHECK_PLAN(s, n, &o, "0:1");
    CHECK_PLAN(s + 20, 2, &o, "100:1"); /* no decoders: the grant may take the whole step */
    /* Few decoders: as interleaved, the oldest prompt grows past its grant to the chunk. */
    o.budget = 16;
    CHECK_PLAN(s + 18, 4, &o, "18:1 19:1 100:8 101:6");
    o.policy = TS_PLAN_INTERLEAVED;
    CHECK_PLAN(s + 18, 4, &o, "18:1 19:1 100:8 101:6");
    /* The grant holds budget, not pages: a decoder needing the one free page gets it. */
    ts_plan_seq race[] = {decoder(1, 0, 64), prompt(2, 1, 100, 0)};
    o.policy = TS_PLAN_DECODE_PRIORITY, o.budget = 2, o.free_pages = 1;
    CHECK_PLAN(race, 2, &o, "1:1");
    o.free_pages = 2;
    CHECK_PLAN(race, 2, &o, "1:1 2:1");
}

TS_TEST(test_plan_pages)
{
    ts_plan_opts o = opts(TS_PLAN_INTERLEAVED, 64, 50);
    o.page_tokens = 4, o.free_pages = 0;
    /* A decode that needs a page (n_pos a page multiple) is skipped; one with room runs. */
    ts_plan_seq d = decoder(1, 0, 8);
    CHECK_PLAN(&d, 1, &o, "");
    d.n_pos = 7;
    CHECK_PLAN(&d, 1, &o, "1:1");
    /* A prompt chunk shrinks to the rest of its page plus the free pages. */
    ts_plan_seq p = prompt(2, 0, 100, 6);
    CHECK_PLAN(&p, 1, &o, "2:2");
    o.free_pages = 2;
    CHECK_PLAN(&p, 1, &o, "2:10");
    p.n_pos = p.n_done = 8, o.free_pages = 0;
    CHECK_PLAN(&p, 1, &o, "");
    /* Two decoders needing a page, one free: the older one gets it. */
    ts_plan_seq two[] = {decoder(5, 9, 12), decoder(6, 8, 16)};
    o.free_pages = 1;
    CHECK_PLAN(two, 2, &o, "6:1");
    /* One page, a decoder and a prompt both needing it: the order decides. */
    ts_plan_seq race[] = {decoder(1, 0, 8), prompt(2, 1, 100, 0)};
    CHECK_PLAN(race, 2, &o, "1:1"); /* interleaved: the decode (its page is not the prompt's) */
    o.policy = TS_PLAN_PREFILL_FIRST;
    CHECK_PLAN(race, 2, &o, "2:4");
    race[0].waited = TS_PLAN_DEFAULT_MAX_WAIT; /* urgent: before the prompt, page included */
    CHECK_PLAN(race, 2, &o, "1:1");
    race[0].waited = 0, o.policy = TS_PLAN_DECODE_PRIORITY;
    CHECK_PLAN(race, 2, &o, "1:1"); /* the grant holds budget, not pages */
    /* Near INT32_MAX positions: no overflow, the page arithmetic still holds. */
    ts_plan_seq big = decoder(3, 0, INT32_MAX - 1);
    o.page_tokens = 64, o.free_pages = 0;
    CHECK_PLAN(&big, 1, &o, "3:1");
}

TS_TEST(test_plan_edge_cases)
{
    ts_plan_opts o = opts(TS_PLAN_INTERLEAVED, 8, 4);
    ts_plan_item items[8];
    TS_CHECK(ts_plan_step(NULL, 0, &o, items, 8) == 0, "n = 0");
    TS_CHECK(ts_plan_step(NULL, 0, &o, NULL, 0) == 0, "n = 0, no out");
    /* A finished prompt not yet decoding, and an empty prompt: nothing to do. */
    ts_plan_seq idle[] = {prompt(1, 0, 5, 5), prompt(2, 1, 0, 0)};
    for (int p = 0; p < TS_PLAN_N_POLICIES; p++) {
        o.policy = (ts_plan_policy)p;
        CHECK_PLAN(idle, 2, &o, "");
    }
    /* The item capacity caps the count; cap 0 plans nothing. */
    ts_plan_seq d[] = {decoder(1, 2, 0), decoder(2, 1, 0), decoder(3, 0, 0)};
    o.policy = TS_PLAN_INTERLEAVED;
    int m = ts_plan_step(d, 3, &o, items, 2);
    TS_CHECK(m == 2 && items[0].id == 3 && items[1].id == 2, "cap 2: m=%d", m);
    TS_CHECK(ts_plan_step(d, 3, &o, NULL, 0) == 0, "cap 0");
    /* Items name their index in seqs. */
    m = ts_plan_step(d, 3, &o, items, 8);
    for (int it = 0; it < m; it++)
        TS_CHECK(d[items[it].seq].id == items[it].id, "item %d seq index", it);
    /* A 1-token budget under each policy. */
    ts_plan_seq mix[] = {decoder(1, 0, 3), prompt(2, 1, 9, 0)};
    o.budget = 1;
    o.policy = TS_PLAN_PREFILL_FIRST;
    CHECK_PLAN(mix, 2, &o, "2:1");
    o.policy = TS_PLAN_INTERLEAVED;
    CHECK_PLAN(mix, 2, &o, "1:1");
    o.policy = TS_PLAN_DECODE_PRIORITY;
    CHECK_PLAN(mix, 2, &o, "1:1");
}

TS_TEST(test_plan_bad_input)
{
    ts_plan_seq s[] = {decoder(1, 0, 3), prompt(2, 1, 9, 0)};
    const ts_plan_opts good = opts(TS_PLAN_INTERLEAVED, 8, 4);
    ts_plan_item items[4];
    ts_plan_opts o = good;
    TS_REQUIRE(ts_plan_step(s, 2, &o, items, 4) == 2, "the good case plans");
    ts_plan_opts bad_opts[9];
    for (size_t b = 0; b < N_OF(bad_opts); b++)
        bad_opts[b] = good;
    bad_opts[0].policy = (ts_plan_policy)3;
    bad_opts[1].policy = (ts_plan_policy)-1;
    bad_opts[2].budget = 0;
    bad_opts[3].chunk = 0;
    bad_opts[4].page_tokens = 0;
    bad_opts[5].free_pages = -1;
    bad_opts[6].min_grant = -1;
    bad_opts[7].max_wait = -1;
    bad_opts[8].budget = -5;
    for (size_t b = 0; b < N_OF(bad_opts); b++) {
        memset(items, 0xA5, sizeof(items));
        TS_CHECK(ts_plan_step(s, 2, &bad_opts[b], items, 4) == -1, "bad opts %zu", b);
        TS_CHECK(((const unsigned char *)items)[0] == 0xA5, "bad opts %zu wrote out", b);
    }
    TS_CHECK(ts_plan_step(s, 2, NULL, items, 4) == -1, "opts NULL");
    TS_CHECK(ts_plan_step(NULL, 2, &o, items, 4) == -1, "seqs NULL");
    TS_CHECK(ts_plan_step(s, -1, &o, items, 4) == -1, "n < 0");
    TS_CHECK(ts_plan_step(s, TS_PLAN_MAX_SEQS + 1, &o, items, 4) == -1, "n too large");
    TS_CHECK(ts_plan_step(s, 2, &o, NULL, 4) == -1, "out NULL");
    TS_CHECK(ts_plan_step(s, 2, &o, items, -1) == -1, "cap < 0");
    for (int b = 0; b < 7; b++) {
        ts_plan_seq t[2] = {s[0], s[1]};
        switch (b) {
        case 0:
            t[1].n_prompt = -1;
            break;
        case 1:
            t[1].n_done = -1;
            break;
        case 2:
            t[1].n_done = 10;
            break; /* past the prompt */
        case 3:
            t[1].n_pos = -1;
            break;
        case 4:
            t[1].decoding = true;
            break; /* decoding with prompt left */
        case 5:
            t[1].id = t[0].id;
            break; /* a repeated id */
        default:
            t[0].n_done = 0;
            break; /* decoding, n_done != n_prompt */
        }
        memset(items, 0xA5, sizeof(items));
        TS_CHECK(ts_plan_step(t, 2, &o, items, 4) == -1, "bad seq %d", b);
        TS_CHECK(((const unsigned char *)items)[0] == 0xA5, "bad seq %d wrote out", b);
    }
}

TS_TEST(test_plan_age)
{
    ts_plan_seq s[] = {decoder(1, 0, 3), prompt(2, 1, 9, 0), prompt(3, 2, 4, 4), decoder(4, 3, 3)};
    s[0].waited = 5, s[1].waited = 2, s[2].waited = 7, s[3].waited = UINT32_MAX;
    ts_plan_item items[] = {{.id = 1, .n_tok = 1, .seq = 0}};
    TS_REQUIRE(ts_plan_age(s, 4, items, 1) == 0, "age");
    TS_CHECK(s[0].waited == 0, "served: reset, got %u", s[0].waited);
    TS_CHECK(s[1].waited == 3, "unserved prompt: +1, got %u", s[1].waited);
    TS_CHECK(s[2].waited == 7, "wants nothing: unchanged, got %u", s[2].waited);
    TS_CHECK(s[3].waited == UINT32_MAX, "saturates, got %u", s[3].waited);
    ts_plan_item bad[][2] = {
        {{.seq = 4}, {.seq = 0}}, {{.seq = -1}, {.seq = 0}}, {{.seq = 1}, {.seq = 1}}};
    for (size_t b = 0; b < N_OF(bad); b++) {
        TS_CHECK(ts_plan_age(s, 4, bad[b], 2) == -1, "bad items %zu", b);
        TS_CHECK(s[1].waited == 3, "bad items %zu changed waited", b);
    }
    TS_CHECK(ts_plan_age(s, -1, items, 0) == -1 && ts_plan_age(NULL, 1, items, 0) == -1 &&
                 ts_plan_age(s, 4, NULL, 1) == -1 && ts_plan_age(NULL, 0, NULL, 0) == 0,
             "argument checks");
}

/* ---- the worked examples of sched/plan.c ---- */

typedef struct {
    const char *name;
    int32_t n_prompt; /* 0: decoding from the start */
} ex_seq;

/* Replays `steps` steps of a scenario (names are the ids' labels, arrival = index) and checks
 * each step's plan against want[step] (items "name:n_tok", in granted order). Every sequence
 * decodes forever once its prompt is done. */
static void replay(const ex_seq *spec, int n, const ts_plan_opts *o, const char *const *want,
                   int steps)
{
    ts_plan_seq s[8];
    for (int i = 0; i < n; i++) {
        s[i] = spec[i].n_prompt ? prompt(i, (uint64_t)i, spec[i].n_prompt, 0)
                                : decoder(i, (uint64_t)i, 100);
    }
    for (int step = 0; step < steps; step++) {
        ts_plan_item items[8];
        int m = ts_plan_step(s, n, o, items, 8);
        char got[256];
        size_t len = 0;
        got[0] = 0;
        for (int it = 0; it < m; it++)
            len += (size_t)snprintf(got + len, sizeof(got) - len, "%s%s:%d", it ? " " : "",
                                    spec[items[it].seq].name, items[it].n_tok);
        TS_CHECK(strcmp(got, want[step]) == 0, "%s step %d: '%s', want '%s'",
                 ts_plan_policy_name(o->policy), step + 1, got, want[step]);
        TS_REQUIRE(ts_plan_age(s, n, items, m) == 0, "age");
        for (int it = 0; it < m; it++) {
            ts_plan_seq *q = &s[items[it].seq];
            q->n_pos += items[it].n_tok;
            if (!q->decoding) {
                q->n_done += items[it].n_tok;
                q->decoding = q->n_done == q->n_prompt;
            }
        }
    }
}

TS_TEST(test_plan_example_budget256)
{
    const ex_seq spec[] = {{"D1", 0}, {"D2", 0}, {"D3", 0}, {"P", 1000}};
    static const char *const want[3][5] = {
        {"P:256", "P:256", "P:256", "P:232 D1:1 D2:1 D3:1", "D1:1 D2:1 D3:1 P:1"},
        {"D1:1 D2:1 D3:1 P:253", "D1:1 D2:1 D3:1 P:253", "D1:1 D2:1 D3:1 P:253",
         "D1:1 D2:1 D3:1 P:241", "D1:1 D2:1 D3:1 P:1"},
        {"D1:1 D2:1 D3:1 P:253", "D1:1 D2:1 D3:1 P:253", "D1:1 D2:1 D3:1 P:253",
         "D1:1 D2:1 D3:1 P:241", "D1:1 D2:1 D3:1 P:1"},
    };
    for (int p = 0; p < TS_PLAN_N_POLICIES; p++) {
        ts_plan_opts o = opts((ts_plan_policy)p, 256, 256);
        replay(spec, 4, &o, want[p], 5);
    }
    /* Chunk 128: one prompt never fills the step, so the policies agree. */
    static const char *const want128[3][8] = {
        {"P:128 D1:1 D2:1 D3:1", "P:128 D1:1 D2:1 D3:1", "P:128 D1:1 D2:1 D3:1",
         "P:128 D1:1 D2:1 D3:1", "P:128 D1:1 D2:1 D3:1", "P:128 D1:1 D2:1 D3:1",
         "P:128 D1:1 D2:1 D3:1", "P:104 D1:1 D2:1 D3:1"},
        {"D1:1 D2:1 D3:1 P:128", "D1:1 D2:1 D3:1 P:128", "D1:1 D2:1 D3:1 P:128",
         "D1:1 D2:1 D3:1 P:128", "D1:1 D2:1 D3:1 P:128", "D1:1 D2:1 D3:1 P:128",
         "D1:1 D2:1 D3:1 P:128", "D1:1 D2:1 D3:1 P:104"},
    };
    for (int p = 0; p < TS_PLAN_N_POLICIES; p++) {
        ts_plan_opts o = opts((ts_plan_policy)p, 256, 128);
        replay(spec, 4, &o, want128[p != TS_PLAN_PREFILL_FIRST], 8);
    }
}

TS_TEST(test_plan_example_saturated)
{
    const ex_seq spec[] = {{"D1", 0}, {"D2", 0}, {"D3", 0}, {"D4", 0}, {"D5", 0}, {"P", 8}};
    static const char *const want[3][6] = {
        {"P:4", "P:4", "D1:1 D2:1 D3:1 D4:1", "D1:1 D2:1 D3:1 D4:1", "D5:1 D1:1 D2:1 D3:1",
         "D1:1 D2:1 D3:1 D4:1"},
        {"D1:1 D2:1 D3:1 D4:1", "D1:1 D2:1 D3:1 D4:1", "D1:1 D2:1 D3:1 D4:1", "D1:1 D2:1 D3:1 D4:1",
         "D5:1 D1:1 D2:1 D3:1", "D1:1 D2:1 D3:1 D4:1"},
        {"D1:1 D2:1 P:2", "D1:1 D2:1 P:2", "D1:1 D2:1 P:2", "D1:1 D2:1 P:2", "D3:1 D4:1 D5:1 D1:1",
         "D1:1 D2:1 D3:1 D4:1"},
    };
    for (int p = 0; p < TS_PLAN_N_POLICIES; p++) {
        ts_plan_opts o = opts((ts_plan_policy)p, 4, 8);
        o.min_grant = 2;
        replay(spec, 6, &o, want[p], 6);
    }
}

/* ---- property tests: a simulator that applies each planned step ---- */

#define SIM_MAX 24

enum { ST_ARRIVING, ST_PROMPT, ST_IDLE, ST_DECODE, ST_DONE };

typedef struct {
    int32_t id, n_prompt, n_gen; /* its prompt, and the decode tokens after which it ends */
    int arrive;                  /* the step it arrives */
    bool idles;                  /* one step neither prefilling nor decoding after its prompt */
    int state, idle_step, finish;
    int32_t n_done, n_gen_done, n_pos;
    uint32_t waited;  /* the planner's counter, kept by ts_plan_age */
    uint32_t stall;   /* the same, counted here independently */
    int64_t reserved; /* worst-case pages held back for it at admission (reservation mode) */
} sim_seq;

typedef struct {
    ts_plan_opts o;
    bool overcommit; /* admit on arrival; preempt the youngest when nothing can get pages */
    int n, max_arrive, n_preempt;
    /* Steps that had an urgent decoder, more decoders than budget, an idle sequence, and (in
     * overcommit) a plan that pages cut short: the generator must produce each. */
    long n_urgent, n_over_budget, n_idle, n_page_cut;
    int64_t pool, total_work; /* KV pages in all; prompt + decode tokens of every sequence */
    sim_seq s[SIM_MAX];
    int order[SIM_MAX]; /* admission order: by arrival, then index */
} sim;

static uint32_t rnd(uint64_t *rng, uint32_t n)
{
    return (uint32_t)(ts_test_rand(rng) % n);
}

static void sim_init(sim *m, uint64_t *rng, ts_plan_policy policy, bool overcommit)
{
    static const int32_t budgets[] = {1, 2, 3, 4, 7, 16, 33, 64};
    static const int32_t page_sizes[] = {1, 4, 16, 64};
    memset(m, 0, sizeof(*m));
    m->overcommit = overcommit;
    m->o = (ts_plan_opts){.policy = policy,
                          .budget = budgets[rnd(rng, N_OF(budgets))],
                          .chunk = 1 + (int32_t)rnd(rng, 80),
                          .page_tokens = page_sizes[rnd(rng, N_OF(page_sizes))],
                          .min_grant = rnd(rng, 3) ? 0 : 1 + (int32_t)rnd(rng, 10),
                          .max_wait = rnd(rng, 3) ? 0 : 1 + (int32_t)rnd(rng, 6)};
    m->n = 1 + (int)rnd(rng, SIM_MAX);
    int64_t max_worst = 0, sum_worst = 0;
    for (int i = 0; i < m->n; i++) {
        sim_seq *q = &m->s[i];
        /* Ids unrelated to the index; arrival steps collide, so ties break by id. */
        *q = (sim_seq){.id = 1000 - 7 * i,
                       .n_prompt = 1 + (int32_t)rnd(rng, 150),
                       .n_gen = 1 + (int32_t)rnd(rng, 12),
                       .arrive = (int)rnd(rng, 30),
                       .idles = rnd(rng, 4) == 0};
        int64_t worst = ts_plan_pages_needed(0, q->n_prompt + q->n_gen, m->o.page_tokens);
        max_worst = worst > max_worst ? worst : max_worst;
        sum_worst += worst;
        m->total_work += q->n_prompt + q->n_gen;
        m->max_arrive = q->arrive > m->max_arrive ? q->arrive : m->max_arrive;
        int at = i;
        while (at > 0 && m->s[m->order[at - 1]].arrive > q->arrive) {
            m->order[at] = m->order[at - 1];
            at--;
        }
        m->order[at] = i;
    }
    /* At least the largest sequence's worst case, so one sequence alone always fits. */
    int64_t spread = overcommit ? max_worst : sum_worst - max_worst;
    m->pool = max_worst + (int64_t)rnd(rng, (uint32_t)spread + 1);
}

static bool wants(const ts_plan_seq *s)
{
    return s->decoding || s->n_done < s->n_prompt;
}

static int32_t want_tokens(const ts_plan_seq *s, int32_t chunk)
{
    if (s->decoding)
        return 1;
    int32_t left = s->n_prompt - s->n_done;
    return left < chunk ? left : chunk;
}

/* Every plan's invariants, and each policy's promise. `plenty`: pages cannot block (the
 * reservation mode), so the plan must also be the one with unlimited pages. */
static void check_plan(const sim *m, const ts_plan_seq *in, int k, const ts_plan_item *items,
                       int n_items, bool plenty)
{
    const ts_plan_opts *o = &m->o;
    bool seen[SIM_MAX] = {0};
    int64_t tokens = 0, pages = 0, want_sum = 0;
    TS_REQUIRE(n_items >= 0 && n_items <= k, "n_items %d of %d", n_items, k);
    for (int it = 0; it < n_items; it++) {
        const ts_plan_item *x = &items[it];
        TS_REQUIRE(x->seq >= 0 && x->seq < k && !seen[x->seq], "item %d seq %d", it, x->seq);
        seen[x->seq] = true;
        const ts_plan_seq *s = &in[x->seq];
        TS_CHECK(x->id == s->id && wants(s), "item %d: id %d, wants %d", it, x->id, wants(s));
        TS_CHECK(x->n_tok >= 1 && x->n_tok <= want_tokens(s, o->chunk),
                 "item %d: n_tok %d, want %d (decoding %d)", it, x->n_tok, want_tokens(s, o->chunk),
                 s->decoding);
        tokens += x->n_tok;
        pages += ts_plan_pages_needed(s->n_pos, x->n_tok, o->page_tokens);
    }
    TS_CHECK(tokens <= o->budget, "%lld tokens, budget %d", (long long)tokens, o->budget);
    TS_CHECK(pages <= o->free_pages, "%lld new pages, %d free", (long long)pages, o->free_pages);

    /* What each policy promises, from the inputs alone. */
    int n_dec = 0, head = -1, n_urgent = 0;
    int64_t dec_pages = 0, prompt_want = 0, prompt_got = 0;
    uint32_t max_wait = (uint32_t)ts_plan_max_wait(o);
    for (int j = 0; j < k; j++) {
        const ts_plan_seq *s = &in[j];
        if (!wants(s))
            continue;
        want_sum += want_tokens(s, o->chunk);
        if (s->decoding) {
            n_dec++;
            n_urgent += s->waited >= max_wait;
            dec_pages += ts_plan_pages_needed(s->n_pos, 1, o->page_tokens);
            continue;
        }
        prompt_want += want_tokens(s, o->chunk);
        if (head < 0 || prompt_before(s, &in[head], o->policy, max_wait))
            head = j;
    }
    for (int it = 0; it < n_items; it++)
        if (!in[items[it].seq].decoding)
            prompt_got += items[it].n_tok;
    if (o->policy == TS_PLAN_INTERLEAVED && n_dec <= o->budget && dec_pages <= o->free_pages)
        for (int j = 0; j < k; j++)
            TS_CHECK(!in[j].decoding || seen[j], "interleaved: decoder %d got no token", in[j].id);
    if (!plenty)
        return;
    /* Pages cannot block: every policy fills the budget or every want. */
    int64_t full = want_sum < o->budget ? want_sum : o->budget;
    TS_CHECK(tokens == full, "%s: %lld tokens, want %lld", ts_plan_policy_name(o->policy),
             (long long)tokens, (long long)full);
    if (o->policy == TS_PLAN_PREFILL_FIRST && n_urgent == 0) {
        int64_t p_full = prompt_want < o->budget ? prompt_want : o->budget;
        TS_CHECK(prompt_got == p_full, "prefill-first: prompts got %lld, want %lld",
                 (long long)prompt_got, (long long)p_full);
    }
    if (o->policy == TS_PLAN_DECODE_PRIORITY && head >= 0) {
        int64_t g = ts_plan_min_grant(o), w = want_tokens(&in[head], o->chunk);
        int64_t keep = o->budget - (n_dec > 0);
        g = g < w ? g : w;
        g = g < keep ? g : keep;
        int64_t got = 0;
        for (int it = 0; it < n_items; it++)
            if (items[it].seq == head)
                got = items[it].n_tok;
        TS_CHECK(got >= g, "decode-priority: first prompt got %lld, grant %lld", (long long)got,
                 (long long)g);
    }
    ts_plan_opts unlimited = *o;
    unlimited.free_pages = INT32_MAX;
    ts_plan_item again[SIM_MAX];
    int n_again = ts_plan_step(in, k, &unlimited, again, k);
    TS_CHECK(n_again == n_items && memcmp(again, items, (size_t)n_items * sizeof(items[0])) == 0,
             "plenty of pages, yet the plan differs from the unlimited one");
}

/* Same input -> the same plan; the input reversed -> the same (id, n_tok) list. */
static void check_deterministic(const ts_plan_seq *in, int k, const ts_plan_opts *o,
                                const ts_plan_item *items, int n_items)
{
    ts_plan_seq rev[SIM_MAX];
    ts_plan_item again[SIM_MAX];
    int m = ts_plan_step(in, k, o, again, k);
    TS_CHECK(m == n_items && memcmp(again, items, (size_t)m * sizeof(items[0])) == 0,
             "same input, another plan");
    for (int j = 0; j < k; j++)
        rev[j] = in[k - 1 - j];
    m = ts_plan_step(rev, k, o, again, k);
    TS_REQUIRE(m == n_items, "reversed input: %d items, want %d", m, n_items);
    for (int it = 0; it < m; it++)
        TS_CHECK(again[it].id == items[it].id && again[it].n_tok == items[it].n_tok &&
                     again[it].seq == k - 1 - items[it].seq,
                 "reversed input: item %d differs", it);
}

static void count_coverage(sim *m, const ts_plan_seq *in, int k, const ts_plan_item *items,
                           int n_items)
{
    int n_dec = 0, n_urgent = 0, n_idle = 0;
    for (int j = 0; j < k; j++) {
        n_dec += in[j].decoding;
        n_urgent += in[j].decoding && in[j].waited >= (uint32_t)ts_plan_max_wait(&m->o);
        n_idle += !wants(&in[j]);
    }
    m->n_urgent += n_urgent > 0;
    m->n_over_budget += n_dec > m->o.budget;
    m->n_idle += n_idle > 0;
    ts_plan_opts unlimited = m->o;
    unlimited.free_pages = INT32_MAX;
    ts_plan_item again[SIM_MAX];
    int n_again = ts_plan_step(in, k, &unlimited, again, k);
    m->n_page_cut +=
        n_again != n_items || memcmp(again, items, (size_t)n_items * sizeof(items[0])) != 0;
}

/* Overcommit's way out when nothing can get pages: restart the youngest holder's prompt. */
static bool preempt_youngest(sim *m)
{
    sim_seq *young = NULL;
    for (int i = 0; i < m->n; i++) {
        sim_seq *q = &m->s[i];
        if (q->state == ST_ARRIVING || q->state == ST_DONE || q->n_pos == 0)
            continue;
        if (!young || q->arrive > young->arrive ||
            (q->arrive == young->arrive && q->id > young->id))
            young = q;
    }
    if (!young)
        return false;
    young->state = ST_PROMPT;
    young->n_done = young->n_gen_done = young->n_pos = 0;
    young->waited = young->stall = 0;
    m->n_preempt++;
    return true;
}

/* The end of step `step`: each item's progress, then the state changes it causes. */
static void sim_apply(sim *m, const int *map, const ts_plan_item *items, int n_items, int step,
                      int64_t *reserved)
{
    for (int i = 0; i < m->n; i++)
        if (m->s[i].state == ST_IDLE && m->s[i].idle_step < step)
            m->s[i].state = ST_DECODE;
    for (int it = 0; it < n_items; it++) {
        sim_seq *q = &m->s[map[items[it].seq]];
        q->n_pos += items[it].n_tok;
        if (q->state == ST_DECODE) {
            if (++q->n_gen_done == q->n_gen) {
                q->state = ST_DONE, q->finish = step, q->n_pos = 0; /* its pages come back */
                *reserved -= q->reserved;
            }
        } else if ((q->n_done += items[it].n_tok) == q->n_prompt) {
            q->state = q->idles ? ST_IDLE : ST_DECODE;
            q->idle_step = step;
        }
    }
}

/* Runs the scenario to its end; returns the steps taken, -1 on a failed check. */
static int sim_run(sim *m, uint64_t *rng)
{
    ts_plan_seq in[SIM_MAX];
    ts_plan_item items[SIM_MAX];
    int map[SIM_MAX];
    int64_t reserved = 0;
    /* Without page blocking each step runs >= 1 token unless nothing wants work (before an
     * arrival, or everyone idles): all must be done within this many steps. */
    const int bound = m->max_arrive + (int)m->total_work + m->n + 1;
    const int max_steps = m->overcommit ? 20000 : bound + 1;
    const uint32_t stall_max = (uint32_t)ts_plan_max_wait(&m->o) + (uint32_t)m->n - 1;
    for (int step = 0; step < max_steps; step++) {
        for (int a = 0; a < m->n; a++) {
            sim_seq *q = &m->s[m->order[a]];
            if (q->state != ST_ARRIVING)
                continue;
            int64_t worst = ts_plan_pages_needed(0, q->n_prompt + q->n_gen, m->o.page_tokens);
            if (q->arrive > step || (!m->overcommit && reserved + worst > m->pool))
                break; /* FIFO admission */
            q->state = ST_PROMPT;
            q->reserved = m->overcommit ? 0 : worst;
            reserved += q->reserved;
        }
        int k = 0, n_left = 0;
        int64_t held = 0;
        for (int i = 0; i < m->n; i++) {
            n_left += m->s[i].state != ST_DONE;
            if (m->s[i].state != ST_ARRIVING && m->s[i].state != ST_DONE)
                map[k++] = i;
        }
        if (n_left == 0)
            return step;
        for (int j = k - 1; j > 0; j--) { /* a new order every step: order must not matter */
            int r = (int)rnd(rng, (uint32_t)j + 1), t = map[j];
            map[j] = map[r], map[r] = t;
        }
        for (int j = 0; j < k; j++) {
            const sim_seq *q = &m->s[map[j]];
            in[j] = (ts_plan_seq){.id = q->id,
                                  .n_prompt = q->n_prompt,
                                  .n_done = q->n_done,
                                  .decoding = q->state == ST_DECODE,
                                  .n_pos = q->n_pos,
                                  .arrival = (uint64_t)q->arrive,
                                  .waited = q->waited};
            held += ts_plan_pages_needed(0, q->n_pos, m->o.page_tokens);
        }
        if (held > m->pool) {
            TS_CHECK(false, "pages over-allocated: %lld held of %lld", (long long)held,
                     (long long)m->pool);
            return -1;
        }
        m->o.free_pages = (int32_t)(m->pool - held);
        int n_items = ts_plan_step(in, k, &m->o, items, k);
        count_coverage(m, in, k, items, n_items);
        check_plan(m, in, k, items, n_items, !m->overcommit);
        check_deterministic(in, k, &m->o, items, n_items);
        if (ts_test_failed())
            return -1;
        /* Stuck: nothing ran, someone wants work, and nobody is about to (an idle sequence
         * decodes next step, and may then finish and free its pages). */
        bool any_want = false, any_idle = false;
        for (int j = 0; j < k; j++) {
            any_want |= wants(&in[j]);
            any_idle |= m->s[map[j]].state == ST_IDLE;
        }
        bool stuck = n_items == 0 && any_want && !any_idle;
        if (stuck) {
            if (!m->overcommit || !preempt_youngest(m)) {
                TS_CHECK(false, "stuck at step %d: %d sequences, %d free pages", step, k,
                         m->o.free_pages);
                return -1;
            }
            continue; /* preempted: nothing ran, so nobody waited a step */
        }
        if (ts_plan_age(in, k, items, n_items) != 0) {
            TS_CHECK(false, "ts_plan_age refused a plan's items");
            return -1;
        }
        for (int j = 0; j < k; j++) {
            sim_seq *q = &m->s[map[j]];
            bool served = false;
            for (int it = 0; it < n_items; it++)
                served |= items[it].seq == j;
            q->stall = served ? 0 : q->stall + wants(&in[j]);
            q->waited = in[j].waited;
            TS_CHECK(q->waited == q->stall, "waited %u, stalled %u", q->waited, q->stall);
            TS_CHECK(m->overcommit || !in[j].decoding || q->stall <= stall_max,
                     "%s: decoder %d stalled %u steps, bound %u", ts_plan_policy_name(m->o.policy),
                     q->id, q->stall, stall_max);
        }
        sim_apply(m, map, items, n_items, step, &reserved);
    }
    TS_CHECK(false, "%s: not done after %d steps (bound %d)", ts_plan_policy_name(m->o.policy),
             max_steps, bound);
    return -1;
}

static void run_scenarios(bool overcommit, int per_policy, uint64_t seed)
{
    uint64_t rng = seed;
    long steps = 0, preempts = 0, urgent = 0, over_budget = 0, idle = 0, page_cut = 0;
    for (int p = 0; p < TS_PLAN_N_POLICIES; p++) {
        for (int sc = 0; sc < per_policy; sc++) {
            sim m;
            sim_init(&m, &rng, (ts_plan_policy)p, overcommit);
            int ran = sim_run(&m, &rng);
            TS_REQUIRE(ran >= 0, "%s scenario %d (seed %llu) failed",
                       ts_plan_policy_name((ts_plan_policy)p), sc, (unsigned long long)seed);
            for (int i = 0; i < m.n; i++)
                TS_CHECK(m.s[i].state == ST_DONE, "sequence %d never finished", m.s[i].id);
            steps += ran;
            preempts += m.n_preempt;
            urgent += m.n_urgent, over_budget += m.n_over_budget;
            idle += m.n_idle, page_cut += m.n_page_cut;
        }
    }
    /* The scenarios must exercise what they claim to (a guard against a degenerate generator). */
    TS_CHECK(steps > 100L * per_policy, "only %ld steps in all", steps);
    TS_CHECK(urgent > 0 && over_budget > 0 && idle > 0,
             "coverage: %ld urgent, %ld over budget, "
             "%ld idle steps",
             urgent, over_budget, idle);
    TS_CHECK(!overcommit || (preempts > 0 && page_cut > 0),
             "overcommit: %ld preemptions, %ld "
             "plans cut by pages",
             preempts, page_cut);
}

TS_TEST(test_plan_random_reserved)
{
    run_scenarios(false, 60, 0x9e37a11ceULL);
}

TS_TEST(test_plan_random_overcommit)
{
    run_scenarios(true, 60, 0x5eed0f7a9eULL);
}
