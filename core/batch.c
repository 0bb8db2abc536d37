/*
 * core/batch.c: many sequences on one engine (the ts_batch API of
 * core/tessera.h): sequence slots, the KV page pool, and the step executor.
 *
 * Owns: opening and closing sequences, handing out and taking back KV pages
 * (a LIFO free list; pages of TS_BATCH_PAGE = TS_ATTN_KBLK positions, so a
 * key block of the attention kernels never straddles two pages), checking a
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
#include "session.h"

#define DEFAULT_MAX_TOKENS 512

typedef struct {
    bool open;
    int64_t pos;
    int32_t *pages;  /* (max_pages) page of each key block */
    int32_t n_pages; /* blocks that have a page */
    float *logits;   /* (n_vocab) */
    bool has_logits;
} bseq;

struct ts_batch {
    ts_engine *eng;
    ts_session *ws; /* activations for max_tokens rows; no cache of its own */
    ts_kv pool;
    int n_seq;
    int64_t n_ctx, max_tokens, n_vocab;
    int32_t max_pages; /* per sequence: ceil(n_ctx / page) */
    int32_t *free_pages, n_free;
    bseq *seqs;
    ts_span *spans;    /* (n_seq) */
    int32_t *tok_buf;  /* (max_tokens) */
    int32_t *rows;     /* (n_seq) last rows whose logits are kept */
    int *row_seq;      /* (n_seq) their sequences */
    float *head_out;   /* (n_seq, n_vocab) */
    bool poison;
};

static int64_t pages_for(int64_t n_pos) { return (n_pos + TS_BATCH_PAGE - 1) / TS_BATCH_PAGE; }

ts_status ts_batch_create(ts_batch **out, ts_engine *eng, const ts_batch_opts *opts,
                          ts_err *err)
{
    *out = NULL;
    ts_batch_opts o = opts ? *opts : (ts_batch_opts){0};
    if (o.n_seq < 0 || o.n_seq > 4096 || o.n_ctx < 0 || o.n_ctx > (1 << 24) || o.kv_size < 0 ||
        o.max_tokens < 0 || o.max_tokens > (1 << 20))
        return ts_err_set(err, TS_E_ARG,
                          "ts_batch_create: n_seq %d, n_ctx %d, kv_size %d, max_tokens %d "
                          "(want n_seq 0..4096, n_ctx 0..2^24, max_tokens 0..2^20)",
                          o.n_seq, o.n_ctx, o.kv_size, o.max_tokens);
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
    const int64_t kv_size = o.kv_size ? o.kv_size : b->n_ctx * b->n_seq;
    const int64_t n_pages = o.kv_size ? pages_for(kv_size) : b->n_seq * (int64_t)b->max_pages;
    const ts_hparams *hp = &eng->model->hp;
    ts_status st = n_pages > INT32_MAX
                       ? ts_err_set(err, TS_E_ARG, "kv_size %lld: too many pages",
                                    (long long)kv_size)
                       : ts_session_alloc(&b->ws, eng, b->n_ctx, b->max_tokens, o.kv_f32, false,
                                          (uint32_t)(b->n_seq * hp->n_head_kv), err);
    if (st == TS_OK)
        st = ts_kv_init_pool(&b->pool, hp, n_pages, !o.kv_f32, err);
    if (st == TS_OK) {
        b->free_pages = malloc((size_t)n_pages * sizeof(int32_t));
        b->seqs = calloc((size_t)b->n_seq, sizeof(bseq));
        b->spans = calloc((size_t)b->n_seq, sizeof(ts_span));
        b->tok_buf = malloc((size_t)b->max_tokens * sizeof(int32_t));
        b->rows = malloc((size_t)b->n_seq * sizeof(int32_t));
        b->row_seq = malloc((size_t)b->n_seq * sizeof(int));
        b->head_out = malloc((size_t)b->n_seq * (size_t)b->n_vocab * sizeof(float));
        bool ok = b->free_pages && b->seqs && b->spans && b->tok_buf && b->rows && b->row_seq &&
                  b->head_out;
        for (int i = 0; ok && i < b->n_seq; i++) {
            b->seqs[i].pages = malloc((size_t)b->max_pages * sizeof(int32_t));
            b->seqs[i].logits = malloc((size_t)b->n_vocab * sizeof(float));
            ok = b->seqs[i].pages && b->seqs[i].logits;
        }
        if (!ok)
            st = ts_err_set(err, TS_E_NOMEM, "batch: out of memory (%d sequences)", b->n_seq);
    }
    if (st != TS_OK) {
        ts_batch_destroy(b);
        return st;
    }
    /* Page 0 on top of the stack: a fresh batch hands out pages in order. */
    for (int64_t p = 0; p < n_pages; p++)
        b->free_pages[p] = (int32_t)(n_pages - 1 - p);
    b->n_free = (int32_t)n_pages;
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
    }
    free(b->seqs);
    free(b->spans);
    free(b->tok_buf);
    free(b->rows);
    free(b->row_seq);
    free(b->head_out);
    free(b->free_pages);
    ts_kv_fini(&b->pool);
    ts_session_destroy(b->ws);
    free(b);
}

ts_status ts_batch_seq_open(ts_batch *b, int *seq, ts_err *err)
{
    for (int i = 0; i < b->n_seq; i++)
        if (!b->seqs[i].open) {
            bseq *q = &b->seqs[i];
            q->open = true;
            q->pos = 0;
            q->n_pages = 0;
            q->has_logits = false;
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
    for (int32_t i = q->n_pages - 1; i >= 0; i--) {
        if (b->poison)
            ts_kv_poison_page(&b->pool, q->pages[i]);
        b->free_pages[b->n_free++] = q->pages[i];
    }
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
    out->pages_free = b->n_free;
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
    if (pages > b->n_free)
        return ts_err_set(err, TS_E_NOMEM,
                          "KV pool full: the step needs %lld new pages, %d of %lld are free "
                          "(pages of %d positions; a larger kv_size or fewer sequences helps)",
                          (long long)pages, b->n_free, (long long)b->pool.n_pages,
                          TS_BATCH_PAGE);
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
        while (q->n_pages < need)
            q->pages[q->n_pages++] = b->free_pages[--b->n_free];
        b->spans[i] = (ts_span){&b->pool, q->pages, q->pos, row, sp[i].n_tok};
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
    for (int i = 0; i < n; i++)
        b->seqs[sp[i].seq].pos += sp[i].n_tok;
    ts_engine_leave(b->eng);
    return TS_OK;
}
