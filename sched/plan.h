/*
 * sched/plan.h: the step planner. Pure: request states + token budget + KV pages + policy in,
 * the next step's (sequence, token count) list out. No threads, no I/O, no allocation, no
 * engine types, no hidden state: what must persist between steps (the waited counters) lives
 * in the caller's ts_plan_seq array and is updated by ts_plan_age. Policies, ordering and the
 * starvation guarantees are described in sched/plan.c's header, with a worked example.
 *
 * Calling pattern, once per step (core/batch.c):
 *     n_items = ts_plan_step(seqs, n, &opts, items, cap);   // -1: a bad input, nothing written
 *     run the items as one forward pass; apply each item's progress to its sequence;
 *     ts_plan_age(seqs, n, items, n_items);                 // served -> 0, unserved -> +1
 * 0 items while some sequence wants work means none could get its KV pages. The planner never
 * frees pages: unless a holder is about to run (a finished prompt not yet decoding), the
 * caller must end or preempt a sequence, or nothing will ever run again.
 */
#ifndef TS_PLAN_H
#define TS_PLAN_H

#include <stdbool.h>
#include <stdint.h>

/* Most sequences one call takes (n above it is a bad input): the planner's scratch is on the
 * stack, about 32 bytes per sequence. */
#define TS_PLAN_MAX_SEQS 1024
/* Defaults for the zero-means-default options (sched/plan.c says why these values). */
#define TS_PLAN_DEFAULT_MAX_WAIT 4
#define TS_PLAN_GRANT_DIV 8 /* default min_grant = max(1, budget / 8) */

typedef enum {
    TS_PLAN_PREFILL_FIRST = 0, /* prompt chunks fill the step first, decodes get the rest */
    TS_PLAN_INTERLEAVED,       /* every decode each step, prompt chunks fill the rest */
    TS_PLAN_DECODE_PRIORITY,   /* decodes first, the first prompt keeps a minimum grant */
} ts_plan_policy;
#define TS_PLAN_N_POLICIES 3

/* "prefill-first" | "interleaved" | "decode-priority" -> the policy; -1 if unknown or NULL. */
int ts_plan_policy_parse(const char *name);
/* The policy's name as ts_plan_policy_parse spells it; NULL if out of range. */
const char *ts_plan_policy_name(int policy);

/* One sequence as the planner sees it. A sequence wants work when it is decoding (1 token)
 * or has prompt left (n_done < n_prompt: up to `chunk` tokens); one with its prompt done and
 * not yet decoding (decoding == false, n_done == n_prompt) wants nothing and is left out. */
typedef struct {
    int32_t id;       /* caller's sequence id; unique within one call */
    int32_t n_prompt; /* prompt tokens in total (>= 0) */
    int32_t n_done;   /* prompt tokens already in the KV cache (0 <= n_done <= n_prompt) */
    bool decoding;    /* the prompt is done (n_done == n_prompt): wants 1 token this step */
    int32_t n_pos;    /* positions this sequence holds in the KV cache now (>= 0) */
    uint64_t arrival; /* arrival order, smaller = earlier: prompt order ties, then by id */
    uint32_t waited;  /* steps it wanted work and got none; kept by ts_plan_age, 0 when new */
} ts_plan_seq;

/* Zero means default where said. */
typedef struct {
    ts_plan_policy policy;
    int32_t budget;      /* max tokens in one step (>= 1) */
    int32_t chunk;       /* max prompt tokens one sequence gets in one step (>= 1) */
    int32_t page_tokens; /* KV page size in positions (>= 1), e.g. 64 */
    int32_t free_pages;  /* pages the KV pool can still hand out (>= 0) */
    int32_t min_grant;   /* decode-priority: prompt tokens kept for the first prompt each
                            step (>= 0; 0 = max(1, budget / TS_PLAN_GRANT_DIV)) */
    int32_t max_wait;    /* steps a decoding sequence may go without a token before it is
                            served ahead of the policy's order (>= 0; 0 = the default 4) */
} ts_plan_opts;

typedef struct {
    int32_t id;    /* the sequence's id */
    int32_t n_tok; /* tokens it runs this step: 1 for a decode, 1..chunk prompt tokens */
    int32_t seq;   /* its index in the seqs array passed to ts_plan_step */
} ts_plan_item;

/* Plans the next step. Writes up to cap items to out, in the order they were granted (each
 * sequence at most once, n_tok >= 1) and returns their count, 0 if nothing wants work or
 * nothing fits. Never exceeds opts->budget tokens; never needs more new KV pages than
 * opts->free_pages (a sequence holding n_pos positions that runs n_tok tokens needs
 * ts_plan_pages_needed(n_pos, n_tok, page_tokens) new pages). Deterministic, and independent
 * of the order of seqs (priority ties break by arrival, then id).
 * Returns -1 and writes nothing on a bad input: seqs NULL with n > 0, n < 0 or above
 * TS_PLAN_MAX_SEQS, opts NULL, out NULL with cap > 0, cap < 0, an unknown policy, an option
 * out of its range, a sequence field out of its range, decoding with n_done != n_prompt, or
 * a repeated id. */
int ts_plan_step(const ts_plan_seq *seqs, int n, const ts_plan_opts *opts, ts_plan_item *out,
                 int cap);

/* After a step ran: waited = 0 for each sequence in items (it made progress), waited + 1
 * (saturating) for each other sequence that wanted work. Items refer to seqs by .seq, so
 * seqs must be the array the step was planned from (the same order; states may already
 * carry the step's progress: an unserved sequence did not change). Returns 0, or -1 and
 * changes nothing on a bad input (n out of range, an item's seq out of range or repeated). */
int ts_plan_age(ts_plan_seq *seqs, int n, const ts_plan_item *items, int n_items);

/* New KV pages a sequence holding n_pos positions needs to run n_tok more tokens:
 * ceil((n_pos + n_tok) / page_tokens) - ceil(n_pos / page_tokens); 0 on a bad input. */
int64_t ts_plan_pages_needed(int64_t n_pos, int64_t n_tok, int32_t page_tokens);

/* The effective min_grant and max_wait for opts (their defaults applied); -1 if opts is NULL. */
int32_t ts_plan_min_grant(const ts_plan_opts *opts);
int32_t ts_plan_max_wait(const ts_plan_opts *opts);

#endif
