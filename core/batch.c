/*
 * core/batch.c: many sequences on one engine (the ts_batch API of
 * core/tessera.h): sequence slots, the KV page pool, and the step executor.
 *
 * Owns: opening and closing sequences, their page tables (pages of
 * TS_BATCH_PAGE = TS_ATTN_KBLK positions, so a key block of the attention
 * kernels never straddles two pages; core/prefix.c allocates and caches
 * them), the scheduled queues fed to sched/plan.c, checking a
 * step before anything runs (plan, then compute: a refused step changes
 * nothing), laying the step's spans out as rows of one workspace session and
 * running the forward pass once over all of them, and the output head only on
 * the rows asked for. Does not own: the math (core/forward.c, attn.c, moe.c),
 * which sees spans and page tables, nor which sequences run in a step (the
 * caller, or the planner in sched/plan.c).
 * Invariant (batch invariance): every op of the forward pass computes a row
 * from that row's own inputs in a fixed order, attention tiles never cross a
 * span, and a page holds the same bits whichever page it is, so a sequence's
 * logits depend on its own tokens only: not on co-tenants, their arrival, the
 * step's token count or how its prompt was split into steps.
 */
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "err.h"
#include "prefix.h"
#include "session.h"
#include "../sched/plan.h"

#define DEFAULT_MAX_TOKENS 512
#define DEFAULT_CHUNK 512

int ts_schedule_parse(const char *name)
{
    switch (ts_plan_policy_parse(name)) {
    case TS_PLAN_PREFILL_FIRST: return TS_SCHED_PREFILL_FIRST;
    case TS_PLAN_INTERLEAVED: return TS_SCHED_INTERLEAVED;
    case TS_PLAN_DECODE_PRIORITY: return TS_SCHED_DECODE_PRIORITY;
    default: return -1;
    }
}

static ts_plan_policy policy_of(int schedule)
{
    return schedule == TS_SCHED_PREFILL_FIRST      ? TS_PLAN_PREFILL_FIRST
           : schedule == TS_SCHED_DECODE_PRIORITY ? TS_PLAN_DECODE_PRIORITY
                                                  : TS_PLAN_INTERLEAVED;
}

const char *ts_schedule_name(int schedule)
{
    if (schedule < TS_SCHED_DEFAULT || schedule > TS_SCHED_DECODE_PRIORITY)
        return NULL;
    return ts_plan_policy_name(policy_of(schedule));
}

typedef struct {
    bool open;
    int64_t pos;
    int32_t *pages;  /* (max_pages) page of each key block */
    int32_t n_pages; /* blocks that have a page */
    float *logits;   /* (n_vocab) */
    float *rs;       /* recurrent state (hybrid models; zeroed at open), else NULL */
    bool has_logits;
    /* Scheduled use (ts_batch_run): queue[p] is the token for position p, for
     * p < n_queued; positions [pos, n_queued) are still to run. */
    int32_t *queue;         /* (n_ctx) */
    int64_t n_queued;
    int64_t prompt_total;   /* tokens queued by ts_batch_seq_prompt since open */
    int64_t prompt_done;    /* of them, run */
    bool decoding;          /* the queued token was pushed: a decode */
    float *logits_all;      /* prompt logits destination, row 0 = position la_base */
    int64_t la_base, la_end;
    uint64_t arrival;
    uint32_t waited;
} bseq;

struct ts_batch {
    ts_engine *eng;
    ts_session *ws; /* activations for max_tokens rows; no cache of its own */
    ts_kv pool;
    int n_seq;
    int64_t n_ctx, max_tokens, n_vocab;
    int32_t max_pages; /* per sequence: ceil(n_ctx / page) */
    ts_prefix *pages;  /* the pool's page allocator and prefix cache */
    bool prefix_on;
    int64_t prefix_hits; /* prompt positions served from cached pages */
    bseq *seqs;
    ts_span *spans;    /* (n_seq) */
    int32_t *tok_buf;  /* (max_tokens) */
    int32_t *rows;     /* (n_seq) last rows whose logits are kept */
    int *row_seq;      /* (n_seq) their sequences */
    float *head_out;   /* (n_seq, n_vocab) */
    bool poison;
    /* ts_batch_run */
    ts_plan_opts plan;
    ts_plan_seq *pseq; /* (n_seq) */
    int *pseq_of;      /* (n_seq) sequence of each planner entry */
    ts_plan_item *items;
    ts_batch_span *run_spans;
    uint64_t arrivals;
};

static int64_t pages_for(int64_t n_pos) { return (n_pos + TS_BATCH_PAGE - 1) / TS_BATCH_PAGE; }

ts_status ts_batch_create(ts_batch **out, ts_engine *eng, const ts_batch_opts *opts,
                          ts_err *err)
{
    *out = NULL;
    ts_batch_opts o = opts ? *opts : (ts_batch_opts){0};
    if (o.n_seq < 0 || o.n_seq > 4096 || o.n_ctx < 0 || o.n_ctx > (1 << 24) || o.kv_size < 0 ||
        o.max_tokens < 0 || o.max_tokens > (1 << 20) || o.chunk < 0 ||
        o.schedule < TS_SCHED_DEFAULT || o.schedule > TS_SCHED_DECODE_PRIORITY)
        return ts_err_set(err, TS_E_ARG,
                          "ts_batch_create: n_seq %d, n_ctx %d, kv_size %d, max_tokens %d, "
                          "chunk %d, schedule %d (want n_seq 0..4096, n_ctx 0..2^24, "
                          "max_tokens 0..2^20, chunk >= 0, a ts_schedule)",
                          o.n_seq, o.n_ctx, o.kv_size, o.max_tokens, o.chunk, o.schedule);
    ts_batch *b = calloc(1, sizeof(*b));
    if (!b)
        return ts_err_set(err, TS_E_NOMEM, "batch: out of memory");
    b->eng = eng;
    b->n_seq = o.n_seq ? o.n_seq : 1;
    b->n_ctx = o.n_ctx ? o.n_ctx : ts_session_default_ctx(eng);
    b->max_tokens = o.max_tokens ? o.max_tokens : DEFAULT_MAX_TOKENS;
    b->n_vocab = eng->model->hp.n_vocab;
    b->max_pages = (int32_t)pages_for(b->n_ctx);
    /* The default pool holds every sequence at full context: n_seq whole
     * page tables (a sequence's last page is partly unused). */
    const int64_t n_pages = o.kv_size ? pages_for(o.kv_size) : b->n_seq * (int64_t)b->max_pages;
    const ts_hparams *hp = &eng->model->hp;
    int kt = 0, vt = 0;
    ts_status st = ts_kv_types(o.kv_f32, o.kv_type_k, o.kv_type_v, &kt, &vt, err);
    if (st == TS_OK)
        st = n_pages > INT32_MAX
                       ? ts_err_set(err, TS_E_ARG, "KV pool of %lld pages: too many",
                                    (long long)n_pages)
                       : ts_session_alloc(&b->ws, eng, b->n_ctx, b->max_tokens, kt, vt, false,
                                          (uint32_t)(b->n_seq * hp->n_head_kv), err);
    if (st == TS_OK)
        st = ts_kv_init_pool(&b->pool, hp, n_pages, kt, vt, err);
    if (st == TS_OK) {
        st = ts_prefix_create(&b->pages, (int32_t)n_pages, err);
    }
    if (st == TS_OK) {
        b->seqs = calloc((size_t)b->n_seq, sizeof(bseq));
        b->spans = calloc((size_t)b->n_seq, sizeof(ts_span));
        b->tok_buf = malloc((size_t)b->max_tokens * sizeof(int32_t));
        b->rows = malloc((size_t)b->n_seq * sizeof(int32_t));
        b->row_seq = malloc((size_t)b->n_seq * sizeof(int));
        b->head_out = malloc((size_t)b->n_seq * (size_t)b->n_vocab * sizeof(float));
        bool ok = b->seqs && b->spans && b->tok_buf && b->rows && b->row_seq &&
                  b->head_out;
        b->pseq = calloc((size_t)b->n_seq, sizeof(*b->pseq));
        b->pseq_of = calloc((size_t)b->n_seq, sizeof(int));
        b->items = calloc((size_t)b->n_seq, sizeof(*b->items));
        b->run_spans = calloc((size_t)b->n_seq, sizeof(*b->run_spans));
        ok = ok && b->pseq && b->pseq_of && b->items && b->run_spans;
        for (int i = 0; ok && i < b->n_seq; i++) {
            b->seqs[i].pages = malloc((size_t)b->max_pages * sizeof(int32_t));
            b->seqs[i].logits = malloc((size_t)b->n_vocab * sizeof(float));
            b->seqs[i].queue = malloc((size_t)b->n_ctx * sizeof(int32_t));
            ok = b->seqs[i].pages && b->seqs[i].logits && b->seqs[i].queue;
            if (ok && b->ws->rs_floats)
                ok = (b->seqs[i].rs = calloc(b->ws->rs_floats, sizeof(float))) != NULL;
        }
        if (!ok)
            st = ts_err_set(err, TS_E_NOMEM, "batch: out of memory (%d sequences)", b->n_seq);
    }
    if (st != TS_OK) {
        ts_batch_destroy(b);
        return st;
    }
    const int64_t chunk = o.chunk ? o.chunk : DEFAULT_CHUNK;
    b->plan = (ts_plan_opts){.policy = policy_of(o.schedule), .budget = (int32_t)b->max_tokens,
                             .chunk = (int32_t)(chunk < b->max_tokens ? chunk : b->max_tokens),
                             .page_tokens = TS_BATCH_PAGE};
    /* A cached page holds keys, not the recurrent state after them: hybrid
     * models run every prompt token (a prefix cache for them would need
     * state snapshots at page boundaries). */
    b->prefix_on = !o.no_prefix_cache && hp->n_layer_rs == 0;
    *out = b;
    return TS_OK;
}

void ts_batch_destroy(ts_batch *b)
{
    if (!b)
        return;
    for (int i = 0; b->seqs && i < b->n_seq; i++) {
        free(b->seqs[i].pages);
        free(b->seqs[i].logits);
        free(b->seqs[i].queue);
        free(b->seqs[i].rs);
    }
    free(b->pseq);
    free(b->pseq_of);
    free(b->items);
    free(b->run_spans);
    free(b->seqs);
    free(b->spans);
    free(b->tok_buf);
    free(b->rows);
    free(b->row_seq);
    free(b->head_out);
    ts_prefix_destroy(b->pages);
    ts_kv_fini(&b->pool);
    ts_session_destroy(b->ws);
    free(b);
}

ts_status ts_batch_seq_open(ts_batch *b, int *seq, ts_err *err)
{
    for (int i = 0; i < b->n_seq; i++)
        if (!b->seqs[i].open) {
            bseq *q = &b->seqs[i];
            int32_t *pages = q->pages, *queue = q->queue;
            float *logits = q->logits, *rs = q->rs;
            *q = (bseq){.open = true, .pages = pages, .logits = logits, .queue = queue, .rs = rs};
            if (rs) /* a new sequence starts from zero conv and delta-rule states */
                memset(rs, 0, b->ws->rs_floats * sizeof(float));
            *seq = i;
            return TS_OK;
        }
    return ts_err_set(err, TS_E_STATE, "batch: all %d sequences are open", b->n_seq);
}

void ts_batch_seq_close(ts_batch *b, int seq)
{
    if (seq < 0 || seq >= b->n_seq || !b->seqs[seq].open)
        return;
    bseq *q = &b->seqs[seq];
    for (int32_t i = q->n_pages - 1; i >= 0; i--)
        if (ts_prefix_unref(b->pages, q->pages[i]) && b->poison)
            ts_kv_poison_page(&b->pool, q->pages[i]);
    q->n_pages = 0;
    q->open = false;
    q->has_logits = false;
}

int ts_batch_seq_pos(const ts_batch *b, int seq)
{
    return seq >= 0 && seq < b->n_seq && b->seqs[seq].open ? (int)b->seqs[seq].pos : -1;
}

const float *ts_batch_logits(const ts_batch *b, int seq)
{
    if (seq < 0 || seq >= b->n_seq || !b->seqs[seq].open || !b->seqs[seq].has_logits)
        return NULL;
    return b->seqs[seq].logits;
}

void ts_batch_get_info(const ts_batch *b, ts_batch_info *out)
{
    memset(out, 0, sizeof(*out));
    out->n_seq = b->n_seq;
    for (int i = 0; i < b->n_seq; i++)
        out->n_open += b->seqs[i].open;
    out->n_ctx = b->n_ctx;
    out->max_tokens = b->max_tokens;
    out->pages_total = b->pool.n_pages;
    out->pages_free = ts_prefix_available(b->pages);
    out->prefix_hit_tokens = b->prefix_hits;
    out->prefix_cached_pages = ts_prefix_cached(b->pages);
}

void ts_batch_debug_poison(ts_batch *b, bool on) { b->poison = on; }

int64_t ts_batch_pages_needed(const ts_batch *b, int seq, int64_t n_tok)
{
    const bseq *q = &b->seqs[seq];
    return pages_for(q->pos + n_tok) - q->n_pages;
}

/* Every check of a step, before anything changes. */
static ts_status check_step(const ts_batch *b, const ts_batch_span *sp, int n, ts_err *err)
{
    if (!sp || n < 1 || n > b->n_seq)
        return ts_err_set(err, TS_E_ARG, "batch step: %d spans (want 1..%d)", n, b->n_seq);
    int64_t total = 0, pages = 0;
    for (int i = 0; i < n; i++) {
        const int s = sp[i].seq;
        if (s < 0 || s >= b->n_seq || !b->seqs[s].open)
            return ts_err_set(err, TS_E_ARG, "batch step: span %d: sequence %d is not open", i,
                              s);
        for (int j = 0; j < i; j++)
            if (sp[j].seq == s)
                return ts_err_set(err, TS_E_ARG,
                                  "batch step: sequence %d appears in spans %d and %d", s, j, i);
        if (sp[i].n_tok < 1 || !sp[i].tokens)
            return ts_err_set(err, TS_E_ARG, "batch step: span %d has %d tokens", i,
                              sp[i].n_tok);
        if (b->seqs[s].pos + sp[i].n_tok > b->n_ctx)
            return ts_err_set(err, TS_E_ARG,
                              "batch step: sequence %d: context full (%lld + %d > n_ctx %lld)",
                              s, (long long)b->seqs[s].pos, sp[i].n_tok, (long long)b->n_ctx);
        for (int t = 0; t < sp[i].n_tok; t++)
            if (sp[i].tokens[t] < 0 || sp[i].tokens[t] >= b->n_vocab)
                return ts_err_set(err, TS_E_ARG,
                                  "batch step: sequence %d: token %d at index %d out of range "
                                  "[0, %lld)",
                                  s, (int)sp[i].tokens[t], t, (long long)b->n_vocab);
        total += sp[i].n_tok;
        pages += ts_batch_pages_needed(b, s, sp[i].n_tok);
    }
    if (total > b->max_tokens)
        return ts_err_set(err, TS_E_ARG, "batch step: %lld tokens, more than max_tokens %lld",
                          (long long)total, (long long)b->max_tokens);
    const int32_t avail = ts_prefix_available(b->pages);
    if (pages > avail)
        return ts_err_set(err, TS_E_NOMEM,
                          "KV pool full: the step needs %lld new pages, %d of %lld are free "
                          "(pages of %d positions; a larger kv_size or fewer sequences helps)",
                          (long long)pages, avail, (long long)b->pool.n_pages, TS_BATCH_PAGE);
    return TS_OK;
}

ts_status ts_batch_step(ts_batch *b, const ts_batch_span *sp, int n, ts_err *err)
{
    ts_status st = check_step(b, sp, n, err);
    if (st != TS_OK)
        return st;
    if ((st = ts_engine_enter(b->eng, err)) != TS_OK)
        return st;
    ts_session *ws = b->ws;
    int64_t row = 0;
    for (int i = 0; i < n; i++) {
        bseq *q = &b->seqs[sp[i].seq];
        const int64_t need = pages_for(q->pos + sp[i].n_tok);
        while (q->n_pages < need) { /* checked: available >= every span's need */
            const int32_t pg = ts_prefix_alloc(b->pages);
            if (b->poison) /* whatever it held must never be read */
                ts_kv_poison_page(&b->pool, pg);
            q->pages[q->n_pages++] = pg;
        }
        /* The token history (the prefix cache's keys); queued tokens are there. */
        if (sp[i].tokens != q->queue + q->pos)
            memcpy(q->queue + q->pos, sp[i].tokens, (size_t)sp[i].n_tok * sizeof(int32_t));
        b->spans[i] = (ts_span){&b->pool, q->pages, q->pos, row, sp[i].n_tok, q->rs};
        memcpy(b->tok_buf + row, sp[i].tokens, (size_t)sp[i].n_tok * sizeof(int32_t));
        for (int t = 0; t < sp[i].n_tok; t++)
            ws->tok_span[row + t] = (uint32_t)i;
        row += sp[i].n_tok;
    }
    ws->spans = b->spans;
    ws->n_spans = (uint32_t)n;
    ts_forward_step(ws, b->tok_buf, row);
    /* Whole spans first (their rows are consecutive: no packing), then the
     * kept last rows of the others, packed, in one matmul. */
    const size_t vbytes = (size_t)b->n_vocab * sizeof(float);
    int n_rows = 0;
    for (int i = 0; i < n; i++) {
        bseq *q = &b->seqs[sp[i].seq];
        const int32_t last = (int32_t)(b->spans[i].tok0 + sp[i].n_tok - 1);
        if (sp[i].logits_all) {
            ts_forward_head(ws, ws->out_rows + b->spans[i].tok0, sp[i].n_tok, sp[i].logits_all);
            if (sp[i].logits) {
                memcpy(q->logits, sp[i].logits_all + (size_t)(sp[i].n_tok - 1) * b->n_vocab,
                       vbytes);
                q->has_logits = true;
            }
        } else if (sp[i].logits) {
            b->rows[n_rows] = last;
            b->row_seq[n_rows++] = sp[i].seq;
        }
    }
    ts_forward_head(ws, b->rows, n_rows, b->head_out);
    for (int r = 0; r < n_rows; r++) {
        bseq *q = &b->seqs[b->row_seq[r]];
        memcpy(q->logits, b->head_out + (size_t)r * b->n_vocab, vbytes);
        q->has_logits = true;
    }
    for (int i = 0; i < n; i++) {
        bseq *q = &b->seqs[sp[i].seq];
        const int64_t old = q->pos;
        q->pos += sp[i].n_tok;
        if (q->n_queued < q->pos) /* tokens given straight to a step, not queued */
            q->n_queued = q->pos;
        /* Publish the pages this step filled: their bits are final. */
        for (int64_t blk = old / TS_BATCH_PAGE; b->prefix_on && blk < q->pos / TS_BATCH_PAGE;
             blk++)
            ts_prefix_publish(b->pages, q->pages[blk], blk ? q->pages[blk - 1] : -1,
                              q->queue + blk * TS_BATCH_PAGE);
    }
    ts_engine_leave(b->eng);
    return TS_OK;
}

/* ---- scheduled use: queues, the planner, one step per ts_batch_run ---- */

static bool seq_ok(const ts_batch *b, int seq)
{
    return seq >= 0 && seq < b->n_seq && b->seqs[seq].open;
}

static ts_status queue_check(const ts_batch *b, int seq, int64_t n_tok, const char *what,
                             ts_err *err)
{
    if (!seq_ok(b, seq))
        return ts_err_set(err, TS_E_ARG, "%s: sequence %d is not open", what, seq);
    const bseq *q = &b->seqs[seq];
    if (q->n_queued != q->pos)
        return ts_err_set(err, TS_E_STATE, "%s: sequence %d still has %lld tokens to run", what,
                          seq, (long long)(q->n_queued - q->pos));
    if (q->pos + n_tok > b->n_ctx)
        return ts_err_set(err, TS_E_ARG,
                          "%s: sequence %d: %lld + %lld tokens do not fit its context (%lld)",
                          what, seq, (long long)q->pos, (long long)n_tok, (long long)b->n_ctx);
    const int64_t pages = pages_for(q->pos + n_tok);
    if (pages > b->pool.n_pages)
        return ts_err_set(err, TS_E_NOMEM,
                          "%s: sequence %d needs %lld KV pages, the pool has %lld in all",
                          what, seq, (long long)pages, (long long)b->pool.n_pages);
    return TS_OK;
}

ts_status ts_batch_seq_prompt(ts_batch *b, int seq, const int32_t *tokens, int n_tok,
                              float *logits_all, ts_err *err)
{
    if (n_tok < 1 || !tokens)
        return ts_err_set(err, TS_E_ARG, "prompt: %d tokens", n_tok);
    ts_status st = queue_check(b, seq, n_tok, "prompt", err);
    if (st != TS_OK)
        return st;
    bseq *q = &b->seqs[seq];
    for (int i = 0; i < n_tok; i++)
        if (tokens[i] < 0 || tokens[i] >= b->n_vocab)
            return ts_err_set(err, TS_E_ARG, "prompt: token %d at index %d out of range",
                              (int)tokens[i], i);
    memcpy(q->queue + q->pos, tokens, (size_t)n_tok * sizeof(int32_t));
    q->n_queued = q->pos + n_tok;
    /* Prefix cache: a fresh sequence takes the cached pages of its prompt's
     * leading whole blocks, but never the block of the last prompt token (its
     * logits must be computed) and not when every position's logits are
     * asked for (shared positions are not recomputed). */
    if (b->prefix_on && q->pos == 0 && !logits_all) {
        int64_t blk = 0;
        for (; (blk + 1) * TS_BATCH_PAGE <= n_tok - 1; blk++) {
            const int32_t pg = ts_prefix_find(b->pages, blk ? q->pages[blk - 1] : -1,
                                              tokens + blk * TS_BATCH_PAGE);
            if (pg < 0)
                break;
            ts_prefix_ref(b->pages, pg);
            q->pages[q->n_pages++] = pg;
        }
        q->pos = blk * TS_BATCH_PAGE;
        q->prompt_done += q->pos;
        b->prefix_hits += q->pos;
    }
    q->prompt_total += n_tok;
    q->logits_all = logits_all;
    q->la_base = q->pos;
    q->la_end = q->n_queued;
    q->arrival = ++b->arrivals;
    q->waited = 0;
    return TS_OK;
}

ts_status ts_batch_seq_push(ts_batch *b, int seq, int32_t token, ts_err *err)
{
    ts_status st = queue_check(b, seq, 1, "push", err);
    if (st != TS_OK)
        return st;
    if (token < 0 || token >= b->n_vocab)
        return ts_err_set(err, TS_E_ARG, "push: token %d out of range", (int)token);
    bseq *q = &b->seqs[seq];
    q->queue[q->pos] = token;
    q->n_queued = q->pos + 1;
    q->decoding = true;
    return TS_OK;
}

void ts_batch_seq_progress(const ts_batch *b, int seq, int *done, int *total)
{
    *done = *total = 0;
    if (seq_ok(b, seq)) {
        *done = (int)b->seqs[seq].prompt_done;
        *total = (int)b->seqs[seq].prompt_total;
    }
}

ts_status ts_batch_run(ts_batch *b, int *ready, int cap, int *n_ready, ts_err *err)
{
    *n_ready = 0;
    int n = 0;
    for (int i = 0; i < b->n_seq; i++) {
        const bseq *q = &b->seqs[i];
        if (!q->open || q->n_queued == q->pos)
            continue;
        b->pseq[n] = (ts_plan_seq){.id = i, .n_prompt = (int32_t)q->prompt_total,
                                   .n_done = (int32_t)q->prompt_done, .decoding = q->decoding,
                                   .n_pos = (int32_t)q->pos, .arrival = q->arrival,
                                   .waited = q->waited};
        b->pseq_of[n++] = i;
    }
    if (n == 0)
        return TS_OK;
    ts_plan_opts po = b->plan;
    po.free_pages = ts_prefix_available(b->pages);
    const int n_items = ts_plan_step(b->pseq, n, &po, b->items, b->n_seq);
    if (n_items < 0)
        return ts_err_set(err, TS_E_STATE, "batch run: the planner refused its input");
    if (n_items == 0)
        return ts_err_set(err, TS_E_NOMEM,
                          "KV pool full: %d sequences wait and none can get a page (%d of "
                          "%lld free); close one",
                          n, ts_prefix_available(b->pages), (long long)b->pool.n_pages);
    for (int k = 0; k < n_items; k++) {
        bseq *q = &b->seqs[b->items[k].id];
        const int n_tok = b->items[k].n_tok;
        float *la = NULL;
        if (!q->decoding && q->logits_all && q->pos >= q->la_base && q->pos < q->la_end)
            la = q->logits_all + (size_t)(q->pos - q->la_base) * (size_t)b->n_vocab;
        b->run_spans[k] = (ts_batch_span){b->items[k].id, q->queue + q->pos, n_tok, la,
                                          q->pos + n_tok == q->n_queued};
    }
    ts_status st = ts_batch_step(b, b->run_spans, n_items, err);
    if (st != TS_OK)
        return st;
    for (int k = 0; k < n_items; k++) {
        bseq *q = &b->seqs[b->items[k].id];
        if (q->decoding)
            q->decoding = false;
        else
            q->prompt_done += b->items[k].n_tok;
        if (q->pos == q->n_queued && *n_ready < cap)
            ready[(*n_ready)++] = b->items[k].id;
    }
    ts_plan_age(b->pseq, n, b->items, n_items);
    for (int j = 0; j < n; j++)
        b->seqs[b->pseq_of[j]].waited = b->pseq[j].waited;
    return TS_OK;
}
