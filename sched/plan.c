/*
 * sched/plan.c: the step planner (issue #14 item 3): which sequences run how many tokens in
 * the next forward pass, under a token budget, a per-sequence prompt chunk and the KV pages
 * left. Owns: the three policies, their serving orders and the starvation guards. Does not:
 * run anything, keep state between calls (waited lives in the caller's array, ts_plan_age
 * updates it), or free and preempt KV pages (the caller's: the planner only refuses what
 * cannot get pages). Invariants of every plan: tokens <= budget, new pages <= free_pages,
 * each sequence at most once, a decode runs exactly 1 token, a prompt 1..min(chunk, left);
 * the plan depends on the sequences' fields only, not on their order in the array.
 */

/*
 * Wants and orders. A decoding sequence wants 1 token; a prompt wants min(chunk, n_prompt -
 * n_done). Prompts: FIFO (arrival, then id) under prefill-first; under the other two,
 * shortest remaining first (then arrival, id), after urgent prompts (waited >= max_wait,
 * most-waited first), so that a short prompt arriving while a long one prefills runs at the
 * next step instead of after the whole long prompt (llama-server's slots, and FIFO chunked
 * prefill, hold it there), and a stream of short prompts still cannot starve a long one: a
 * prompt that got nothing for max_wait steps goes first. Decoders: urgent ones first
 * (waited >= max_wait, most-waited first), then oldest first. Serving gives a sequence what
 * it wants, cut to the budget left and to the tokens its last held page plus the free pages
 * hold: a decode that needs a page when none is free is skipped, a prompt chunk shrinks, maybe
 * to nothing.
 * So the serving order decides who gets scarce budget and pages first:
 *   prefill-first:   urgent decodes, prompts, other decodes. Best time to first token;
 *                    decoders stall while prompts fill the budget, but at most max_wait steps.
 *   interleaved:     decodes (every one of them when budget >= decoders), then prompts.
 *                    Stall-free decode as Sarathi-Serve / vLLM chunked prefill; prompts get
 *                    nothing while decoders fill the whole budget.
 *   decode-priority: interleaved, but the decodes may use only budget - grant tokens, where
 *                    grant = min(min_grant, the first prompt's want, budget - 1 if any decoder
 *                    wants a token, else budget): the same step as interleaved until decoders
 *                    need more than budget - grant; then the first prompt still gets its grant
 *                    (pages allowing), so it cannot starve behind decoders, and they keep >= 1
 *                    token. The grant holds budget, not pages: decodes take pages first.
 * Default min_grant = max(1, budget / 8), 64 at the default --batch-tokens 512: it acts only
 * when decoders fill more than 7/8 of the step and costs them at most 1/8 of it, yet bounds a
 * waiting prompt's prefill by ceil(L / grant) steps (4096 tokens: 64 steps at budget 512);
 * and at 64 tokens a chunk re-reads its prefix's KV once per 64 queries, so chunking overhead
 * stays small. Default max_wait = 4: rescuing a stalled decoder costs 1 token of one step
 * (16 decoders: 3 % of a 512-token step, once per 5 steps), so a short bound is cheap.
 *
 * Starvation. While budget and pages allow, a decoder waits at most max_wait + n - 1 steps
 * under every policy: each step the most-waited urgent decoder is served first (under
 * decode-priority the grant leaves >= 1 token), and each decoder ahead of it that is served
 * drops behind it. Prompts: the first in their order is served whenever the decodes leave
 * budget (every step under decode-priority once budget >= 2); under prefill-first a younger
 * one waits behind older prompts and the decodes, all finite; under the others a prompt
 * passed over for max_wait steps becomes urgent and sorts ahead of every non-urgent prompt,
 * so it waits at most for the urgent ones ahead of it, each of which is then served. When pages come back the same order takes them: under
 * prefill-first an urgent decoder before any prompt, under the others every decoder before
 * any prompt. A caller that preempts the youngest holder when nothing can get pages finishes
 * every sequence in test_plan_random_overcommit's random scenarios (a grant that took pages
 * ahead of the decodes livelocked that simulator: the preempted prompt, again the oldest
 * prompt, took the freed page again).
 */

/*
 * Worked example (tests/test_plan.c test_plan_example_* checks these tables). Decoders D1 D2
 * D3 arrived first, then prompt P of 1000 tokens; budget 256, chunk 256, pages plentiful,
 * defaults (max_wait 4, min_grant 32). Items per step, in the order they are granted:
 *   step  prefill-first       interleaved          decode-priority
 *   1     P:256               D1 D2 D3:1, P:253    as interleaved (D + grant 32 < 256)
 *   2     P:256               D1 D2 D3:1, P:253    as interleaved
 *   3     P:256               D1 D2 D3:1, P:253    as interleaved
 *   4     P:232, D1 D2 D3:1   D1 D2 D3:1, P:241    as interleaved
 *   5     D1 D2 D3 P:1 (P decodes from here on, under every policy)
 * P's prompt is done after step 4 under all three; the decoders stall 3 steps under
 * prefill-first, none under the others. With chunk 128 every policy plans P:128 and D1 D2 D3
 * for steps 1-7 and P:104 in step 8: a prompt capped at half the budget never fills it.
 * Decoders filling the budget: budget 4, chunk 8, D1..D5 decoding, then P of 8 tokens;
 * min_grant 2, max_wait 4:
 *   step  prefill-first       interleaved          decode-priority
 *   1     P:4                 D1 D2 D3 D4          D1 D2, P:2
 *   2     P:4                 D1 D2 D3 D4          D1 D2, P:2
 *   3     D1 D2 D3 D4         D1 D2 D3 D4          D1 D2, P:2
 *   4     D1 D2 D3 D4         D1 D2 D3 D4          D1 D2, P:2
 *   5     D5 D1 D2 D3         D5 D1 D2 D3          D3 D4 D5 D1
 * (D5, and D3-D5 under decode-priority, waited 4 steps: urgent.) Interleaved gives P nothing
 * while five decoders share 4 tokens; decode-priority prefills it in 4 steps, prefill-first
 * in 2, at the cost of 2 steps of every decoder's stall.
 */
#include "plan.h"

#include <stdlib.h>
#include <string.h>

static const char *const k_policy_names[TS_PLAN_N_POLICIES] = {
    [TS_PLAN_PREFILL_FIRST] = "prefill-first",
    [TS_PLAN_INTERLEAVED] = "interleaved",
    [TS_PLAN_DECODE_PRIORITY] = "decode-priority",
};

int ts_plan_policy_parse(const char *name)
{
    if (!name)
        return -1;
    for (int p = 0; p < TS_PLAN_N_POLICIES; p++)
        if (strcmp(name, k_policy_names[p]) == 0)
            return p;
    return -1;
}

const char *ts_plan_policy_name(int policy)
{
    return policy >= 0 && policy < TS_PLAN_N_POLICIES ? k_policy_names[policy] : NULL;
}

int32_t ts_plan_min_grant(const ts_plan_opts *o)
{
    if (!o)
        return -1;
    if (o->min_grant > 0)
        return o->min_grant;
    int32_t g = o->budget / TS_PLAN_GRANT_DIV;
    return g > 1 ? g : 1;
}

int32_t ts_plan_max_wait(const ts_plan_opts *o)
{
    if (!o)
        return -1;
    return o->max_wait > 0 ? o->max_wait : TS_PLAN_DEFAULT_MAX_WAIT;
}

static int64_t pages_held(int64_t n_pos, int64_t page_tokens)
{
    return (n_pos + page_tokens - 1) / page_tokens;
}

int64_t ts_plan_pages_needed(int64_t n_pos, int64_t n_tok, int32_t page_tokens)
{
    /* The /4 bounds keep n_pos + n_tok + page_tokens - 1 from overflowing. */
    if (n_pos < 0 || n_tok < 0 || page_tokens < 1 || n_pos > INT64_MAX / 4 || n_tok > INT64_MAX / 4)
        return 0;
    return pages_held(n_pos + n_tok, page_tokens) - pages_held(n_pos, page_tokens);
}

/* Serving classes, in the order keys sort. Urgent decoders and urgent prompts sort by how long
 * they waited; other prompts by the tokens they have left (0 for all under prefill-first). */
enum { CLS_URGENT = 0, CLS_DECODE = 1, CLS_PROMPT_URGENT = 2, CLS_PROMPT = 3 };

typedef struct {
    uint32_t cls;
    uint32_t waited; /* sort key only for the urgent classes (most-waited first), else 0 */
    int32_t left;    /* sort key only for CLS_PROMPT (fewest left first), else 0 */
    uint64_t arrival;
    int32_t id;
    int32_t seq; /* index into seqs */
} key;

static int cmp_key(const void *pa, const void *pb)
{
    const key *a = pa, *b = pb;
    if (a->cls != b->cls)
        return a->cls < b->cls ? -1 : 1;
    if (a->waited != b->waited)
        return a->waited > b->waited ? -1 : 1;
    if (a->left != b->left)
        return a->left < b->left ? -1 : 1;
    if (a->arrival != b->arrival)
        return a->arrival < b->arrival ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

static int cmp_i32(const void *pa, const void *pb)
{
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    return (a > b) - (a < b);
}

/* The step being built. slot[seq] is that sequence's item index, -1 if it has none yet. */
typedef struct {
    const ts_plan_seq *seqs;
    ts_plan_item *out;
    int cap, n_out;
    int64_t budget_left, pages_left, page_tokens;
    int32_t chunk;
    int32_t *slot;
} step;

static int32_t seq_want(const ts_plan_seq *s, int32_t chunk)
{
    if (s->decoding)
        return 1;
    int32_t left = s->n_prompt - s->n_done;
    return left < chunk ? left : chunk;
}

/* Raises sequence `seq`'s tokens this step towards `total`, as far as the budget, the pages
 * and the item capacity allow. A decode (total 1) either fits whole or is skipped. */
static void serve(step *st, int32_t seq, int64_t total)
{
    const ts_plan_seq *s = &st->seqs[seq];
    int32_t item = st->slot[seq];
    int64_t have = item >= 0 ? st->out[item].n_tok : 0;
    int64_t add = total - have;
    if (add > st->budget_left)
        add = st->budget_left;
    /* Tokens that fit: the rest of the last held page plus every free page. */
    int64_t pos = (int64_t)s->n_pos + have;
    int64_t room = (pages_held(pos, st->page_tokens) + st->pages_left) * st->page_tokens - pos;
    if (add > room)
        add = room;
    if (add < 1 || (item < 0 && st->n_out >= st->cap))
        return;
    st->budget_left -= add;
    st->pages_left -= ts_plan_pages_needed(pos, add, (int32_t)st->page_tokens);
    if (item < 0) {
        item = st->n_out++;
        st->slot[seq] = item;
        st->out[item] = (ts_plan_item){.id = s->id, .n_tok = 0, .seq = seq};
    }
    st->out[item].n_tok += (int32_t)add;
}

static void serve_class(step *st, const key *keys, int n_keys, uint32_t cls)
{
    for (int k = 0; k < n_keys && st->budget_left > 0; k++)
        if (keys[k].cls == cls)
            serve(st, keys[k].seq, seq_want(&st->seqs[keys[k].seq], st->chunk));
}

static bool opts_valid(const ts_plan_opts *o)
{
    return o && (int)o->policy >= 0 && (int)o->policy < TS_PLAN_N_POLICIES && o->budget >= 1 &&
           o->chunk >= 1 && o->page_tokens >= 1 && o->free_pages >= 0 && o->min_grant >= 0 &&
           o->max_wait >= 0;
}

static bool seq_valid(const ts_plan_seq *s)
{
    return s->n_prompt >= 0 && s->n_done >= 0 && s->n_done <= s->n_prompt && s->n_pos >= 0 &&
           (!s->decoding || s->n_done == s->n_prompt);
}

/* Validates seqs (ids unique: sorted into scratch, which the caller then reuses). */
static bool seqs_valid(const ts_plan_seq *seqs, int n, int32_t *scratch)
{
    for (int i = 0; i < n; i++) {
        if (!seq_valid(&seqs[i]))
            return false;
        scratch[i] = seqs[i].id;
    }
    if (n < 2)
        return true;
    qsort(scratch, (size_t)n, sizeof(*scratch), cmp_i32);
    for (int i = 1; i < n; i++)
        if (scratch[i] == scratch[i - 1])
            return false;
    return true;
}

int ts_plan_step(const ts_plan_seq *seqs, int n, const ts_plan_opts *o, ts_plan_item *out, int cap)
{
    int32_t slot[TS_PLAN_MAX_SEQS];
    key keys[TS_PLAN_MAX_SEQS];
    if (n < 0 || n > TS_PLAN_MAX_SEQS || (n > 0 && !seqs) || cap < 0 || (cap > 0 && !out) ||
        !opts_valid(o) || !seqs_valid(seqs, n, slot))
        return -1;

    uint32_t max_wait = (uint32_t)ts_plan_max_wait(o);
    int n_keys = 0, n_decoders = 0;
    for (int i = 0; i < n; i++) {
        const ts_plan_seq *s = &seqs[i];
        key k = {.arrival = s->arrival, .id = s->id, .seq = i};
        if (s->decoding) {
            k.cls = s->waited >= max_wait ? CLS_URGENT : CLS_DECODE;
            k.waited = k.cls == CLS_URGENT ? s->waited : 0;
            n_decoders++;
        } else if (s->n_done < s->n_prompt) {
            /* Prefill-first: FIFO. The others: shortest remaining first, so a short prompt
             * arriving behind a long one is not held for the whole long prefill, with the
             * urgent class (waited >= max_wait) so that short ones cannot starve a long one. */
            if (o->policy != TS_PLAN_PREFILL_FIRST && s->waited >= max_wait) {
                k.cls = CLS_PROMPT_URGENT;
                k.waited = s->waited;
            } else {
                k.cls = CLS_PROMPT;
                k.left = o->policy == TS_PLAN_PREFILL_FIRST ? 0 : s->n_prompt - s->n_done;
            }
        } else {
            continue; /* prompt done, not decoding yet: nothing to run */
        }
        keys[n_keys++] = k;
        slot[i] = -1;
    }
    /* The key order is total (ids are unique), so qsort's instability cannot show. */
    qsort(keys, (size_t)n_keys, sizeof(keys[0]), cmp_key);

    step st = {.seqs = seqs,
               .out = out,
               .cap = cap,
               .budget_left = o->budget,
               .pages_left = o->free_pages,
               .page_tokens = o->page_tokens,
               .chunk = o->chunk,
               .slot = slot};
    switch (o->policy) {
    case TS_PLAN_PREFILL_FIRST:
        serve_class(&st, keys, n_keys, CLS_URGENT);
        serve_class(&st, keys, n_keys, CLS_PROMPT);
        serve_class(&st, keys, n_keys, CLS_DECODE);
        break;
    case TS_PLAN_INTERLEAVED:
        serve_class(&st, keys, n_keys, CLS_URGENT);
        serve_class(&st, keys, n_keys, CLS_DECODE);
        serve_class(&st, keys, n_keys, CLS_PROMPT_URGENT);
        serve_class(&st, keys, n_keys, CLS_PROMPT);
        break;
    case TS_PLAN_DECODE_PRIORITY: {
        /* Interleaved with the grant held back from the decodes: it reserves budget, not
         * pages, so a decoder never waits for a page behind a younger prompt (with the
         * caller preempting the youngest, pages-first grants could livelock: the preempted
         * prompt is again the first prompt and again takes the page first). Prompts sort
         * last, so the first prompt key is the head of the prompts' order. */
        int head = 0;
        int64_t grant = 0;
        while (head < n_keys && keys[head].cls < CLS_PROMPT_URGENT)
            head++;
        if (head < n_keys) {
            int64_t want = seq_want(&seqs[keys[head].seq], o->chunk);
            int64_t keep = o->budget - (n_decoders > 0 ? 1 : 0); /* decoders keep >= 1 */
            grant = ts_plan_min_grant(o);
            grant = grant < want ? grant : want;
            grant = grant < keep ? grant : keep;
        }
        st.budget_left -= grant;
        serve_class(&st, keys, n_keys, CLS_URGENT);
        serve_class(&st, keys, n_keys, CLS_DECODE);
        st.budget_left += grant;
        serve_class(&st, keys, n_keys, CLS_PROMPT_URGENT);
        serve_class(&st, keys, n_keys, CLS_PROMPT);
        break;
    }
    }
    return st.n_out;
}

int ts_plan_age(ts_plan_seq *seqs, int n, const ts_plan_item *items, int n_items)
{
    bool served[TS_PLAN_MAX_SEQS] = {0};
    if (n < 0 || n > TS_PLAN_MAX_SEQS || (n > 0 && !seqs) || n_items < 0 || (n_items > 0 && !items))
        return -1;
    for (int it = 0; it < n_items; it++) {
        int32_t seq = items[it].seq;
        if (seq < 0 || seq >= n || served[seq])
            return -1;
        served[seq] = true;
    }
    for (int i = 0; i < n; i++) {
        ts_plan_seq *s = &seqs[i];
        if (served[i])
            s->waited = 0;
        else if ((s->decoding || s->n_done < s->n_prompt) && s->waited < UINT32_MAX)
            s->waited++;
    }
    return 0;
}
