/*
 * core/session.c: the public engine and session API (core/tessera.h).
 *
 * Owns: engine creation (model + tokenizer + pool), session sizing and
 * allocation (everything the forward pass touches is allocated here, once,
 * from the chunk and n_ctx), argument checks, and cutting a prompt into
 * chunks. Does not own: any math (core/forward.c, core/attn.c, core/moe.c).
 * Invariant: a session's bits are a function of its token history only: the
 * chunk size and the thread count never change a logit.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"
#include "err.h"
#include "gdn.h"
#include "ktune.h"
#include "moe.h"
#include "place.h"
#include "session.h"
#include "../simd/kernels.h"

#define DEFAULT_CHUNK 512
#define DEFAULT_CTX_CAP 4096

/* TESSERA_PREFILL_CHUNK: NULL or "": DEFAULT_CHUNK; else a token count in
 * [0, 2^30] (0 = one shot), or -1 when it is not one. */
static long long chunk_env_parse(const char *s)
{
    if (!s || !*s)
        return DEFAULT_CHUNK;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    return *end || v < 0 || v > (1ll << 30) ? -1 : v;
}

/* The tuning variables an engine reads, through the parsers their users call
 * (TESSERA_TOPO and TESSERA_SPIN_US are checked where sched/ parses them): a
 * value they cannot use is a clear error, like a bad flag, not a silent
 * default. */
static ts_status check_env(ts_err *err)
{
    const char *e = getenv("TESSERA_ISA");
    if (e && *e && ts_isa_from_name(e) < 0)
        return ts_err_set(err, TS_E_ARG,
                          "TESSERA_ISA='%s': expected scalar, avx2, avx512, amx, neon or neon_dot",
                          e);
    if (chunk_env_parse(e = getenv("TESSERA_PREFILL_CHUNK")) < 0)
        return ts_err_set(err, TS_E_ARG,
                          "TESSERA_PREFILL_CHUNK='%s': expected a token count (0 = one shot)", e);
    if (ts_moe_tile_max_parse(e = getenv("TESSERA_MOE_TILE_MAX")) < 0)
        return ts_err_set(err, TS_E_ARG, "TESSERA_MOE_TILE_MAX='%s': expected 32, 64 or 128", e);
    const int blas = ts_dense_blas_parse(e = getenv("TESSERA_BLAS"));
    if (blas < 0)
        return ts_err_set(err, TS_E_ARG, "TESSERA_BLAS='%s': expected 0, 1, threaded or tile", e);
    const char *why = blas != TS_DENSE_BLAS_OFF ? ts_dense_blas_load() : NULL;
    if (why)
        return ts_err_set(err, TS_E_UNSUPPORTED, "TESSERA_BLAS='%s': OpenBLAS: %s", e, why);
    if (ts_env_flag_parse(e = getenv("TESSERA_NO_REPACK")) < 0)
        return ts_err_set(err, TS_E_ARG, "TESSERA_NO_REPACK='%s': expected 0 or 1", e);
    if (ts_env_flag_parse(e = getenv("TESSERA_PROFILE")) < 0)
        return ts_err_set(err, TS_E_ARG, "TESSERA_PROFILE='%s': expected 0 or 1", e);
    if (ts_ktune_parse(e = getenv("TESSERA_KTUNE")) < 0)
        return ts_err_set(err, TS_E_ARG, "TESSERA_KTUNE='%s': expected 0 or 1", e);
    return TS_OK;
}

ts_status ts_engine_create(ts_engine **out, const ts_engine_opts *opts, ts_err *err)
{
    *out = NULL;
    ts_status est = check_env(err);
    if (est != TS_OK)
        return est;
    if (!opts || !opts->model_path)
        return ts_err_set(err, TS_E_ARG, "ts_engine_create: no model path");
    if (opts->n_threads < 0 || opts->n_threads > 1024)
        return ts_err_set(err, TS_E_ARG, "ts_engine_create: n_threads %d", opts->n_threads);
    ts_engine *eng = calloc(1, sizeof(*eng));
    if (!eng)
        return ts_err_set(err, TS_E_NOMEM, "engine: out of memory");
    ts_status st = ts_model_load(&eng->model, opts->model_path, err);
    if (st == TS_OK) {
        /* A model without a usable vocabulary still runs from token ids
         * (tessera logits); tokenizing then reports the vocab's error. */
        ts_err verr = {0};
        if (ts_vocab_load(&eng->vocab, eng->model->gguf, &verr) != TS_OK) {
            eng->vocab = NULL;
            /* ...but tokenizer metadata that is present and invalid (short
             * arrays, special ids past the vocabulary) refuses the file. */
            if (ts_gguf_kv_find(eng->model->gguf, "tokenizer.ggml.model"))
                st = ts_err_set(err, verr.status, "%s: %s", opts->model_path, verr.msg);
        }
        ts_pool_opts po = {.n_threads = opts->n_threads, .cpu_range = opts->cpu_range,
                           .node0_only = opts->numa == TS_NUMA_ISOLATE};
        if (st == TS_OK && (opts->numa < TS_NUMA_DEFAULT || opts->numa > TS_NUMA_NONE))
            st = ts_err_set(err, TS_E_ARG, "ts_engine_create: numa mode %d", opts->numa);
        if (st == TS_OK)
            st = ts_pool_create(&eng->pool, &po, err);
        if (st == TS_OK && ts_env_flag_parse(getenv("TESSERA_NO_REPACK")) != 1)
            st = ts_place_prepare(eng->model, eng->pool, err);
        if (st == TS_OK) /* after the pool: its workers first-touch their node's copies */
            st = ts_place_model(eng->model, eng->pool, opts->numa, err);
    }
    if (st != TS_OK) {
        ts_engine_destroy(eng);
        return st;
    }
    eng->n_workers = ts_pool_n_workers(eng->pool);
    *out = eng;
    return TS_OK;
}

ts_status ts_engine_enter(ts_engine *eng, ts_err *err)
{
    if (atomic_exchange_explicit(&eng->busy, true, memory_order_acquire))
        return ts_err_set(err, TS_E_STATE,
                          "engine busy: another thread is running a forward pass on it (one "
                          "engine runs one pass at a time: see core/tessera.h)");
    return TS_OK;
}

void ts_engine_leave(ts_engine *eng) { atomic_store_explicit(&eng->busy, false, memory_order_release); }

void ts_engine_destroy(ts_engine *eng)
{
    if (!eng)
        return;
    ts_pool_destroy(eng->pool);
    ts_vocab_destroy(eng->vocab);
    ts_model_destroy(eng->model);
    free(eng);
}

static uint64_t mat(const ts_qview *w) { return w->data ? (uint64_t)(w->rows * w->cols) : 0; }

/* Weights one token multiplies by: every matrix, the output head, and of an
 * MoE stack only the n_expert_used experts routed to (expert stacks' rows
 * are one expert's). The token-embedding lookup is not a matmul. */
static uint64_t mm_params(const ts_model *m)
{
    uint64_t n = mat(&m->output);
    for (int64_t il = 0; il < m->hp.n_layer; il++) {
        ts_layer *L = &m->layers[il];
        ts_qview *v[TS_LAYER_MATS];
        const int k = ts_layer_mats(L, v);
        for (int i = 0; i < k; i++)
            n += mat(v[i]);
        n += (uint64_t)m->hp.n_expert_used *
             (mat(&L->gate_exps) + mat(&L->up_exps) + mat(&L->down_exps));
    }
    return n;
}

void ts_engine_get_info(const ts_engine *eng, ts_engine_info *out)
{
    const ts_hparams *hp = &eng->model->hp;
    memset(out, 0, sizeof(*out));
    snprintf(out->arch, sizeof(out->arch), "%s", hp->arch_name);
    out->n_vocab = hp->n_vocab;
    out->n_embd = hp->n_embd;
    out->n_layer = hp->n_layer;
    out->n_head = hp->n_head;
    out->n_head_kv = hp->n_head_kv;
    out->n_ff = hp->n_expert ? hp->n_ff_exp : hp->n_ff;
    out->n_expert = hp->n_expert;
    out->n_ctx_train = hp->n_ctx_train;
    out->n_params = eng->model->n_params;
    out->n_bytes = eng->model->n_bytes;
    out->n_threads = eng->n_workers;
    const ts_placement *pl = eng->model->place;
    out->numa = pl ? pl->mode : TS_NUMA_NONE;
    out->n_nodes = ts_pool_topo(eng->pool)->n_nodes;
    for (uint32_t p = 0; pl && p < pl->n_nodes; p++)
        out->placed_bytes += pl->node_bytes[p];
    out->weight_bytes = pl ? pl->src_bytes : 0;
    out->mm_params = mm_params(eng->model);
}

uint64_t ts_engine_node_bytes(const ts_engine *eng, uint32_t node)
{
    const ts_placement *pl = eng->model->place;
    return pl && node < pl->n_nodes ? pl->node_bytes[node] : 0;
}

size_t ts_engine_format_plan(const ts_engine *eng, char *buf, size_t cap)
{
    size_t len = ts_pool_format_plan(eng->pool, buf, cap);
    const ts_placement *pl = eng->model->place;
    if (!pl)
        return len;
    char line[256];
    for (uint32_t p = 0; p <= pl->n_nodes; p++) {
        int n;
        if (p == 0)
            n = snprintf(line, sizeof(line), "numa: %s, %u matrices, %.2f MiB per copy\n",
                         ts_numa_name(pl->mode), pl->n_mats, (double)pl->src_bytes / 1048576.0);
        else
            n = snprintf(line, sizeof(line), "numa: node %u (os node %d): %.2f MiB of weights%s\n",
                         p - 1, pl->node_os[p - 1],
                         (double)pl->node_bytes[p - 1] / 1048576.0,
                         !pl->node_bytes[p - 1] ? ""
                         : pl->node_bound[p - 1] ? ", bound" : ", unbound (no such node / no libnuma)");
        if (pl->mode == TS_NUMA_NONE && p)
            break;
        if (n < 0)
            continue;
        if (cap && len + 1 < cap) {
            size_t room = cap - 1 - len, take = (size_t)n < room ? (size_t)n : room;
            memcpy(buf + len, line, take);
            buf[len + take] = 0;
        }
        len += (size_t)n;
    }
    return len;
}

static ts_status tokenize(const ts_engine *eng, const char *text, size_t len, bool add_bos,
                          bool special, int32_t *out, size_t cap, size_t *n_out, ts_err *err)
{
    *n_out = 0;
    if (!eng->vocab)
        return ts_err_set(err, TS_E_UNSUPPORTED, "model has no usable tokenizer vocabulary");
    ts_status st = ts_vocab_tokenize(eng->vocab, text, len, add_bos, special, out, cap, n_out, err);
    if (st != TS_OK)
        return st;
    for (size_t i = 0; i < *n_out && i < cap; i++)
        if (out[i] < 0 || out[i] >= eng->model->hp.n_vocab)
            return ts_err_set(err, TS_E_FORMAT, "token id %d beyond the model's %lld rows",
                              (int)out[i], (long long)eng->model->hp.n_vocab);
    return TS_OK;
}

ts_status ts_engine_tokenize(const ts_engine *eng, const char *text, size_t len, bool add_bos,
                             int32_t *out, size_t cap, size_t *n_out, ts_err *err)
{
    return tokenize(eng, text, len, add_bos, false, out, cap, n_out, err);
}

ts_status ts_engine_tokenize_special(const ts_engine *eng, const char *text, size_t len,
                                     bool add_bos, int32_t *out, size_t cap, size_t *n_out,
                                     ts_err *err)
{
    return tokenize(eng, text, len, add_bos, true, out, cap, n_out, err);
}

size_t ts_engine_piece(const ts_engine *eng, int32_t id, char *buf, size_t cap)
{
    return eng->vocab ? ts_vocab_piece(eng->vocab, id, buf, cap) : 0;
}

int32_t ts_engine_bos(const ts_engine *eng) { return eng->vocab ? ts_vocab_bos(eng->vocab) : -1; }

bool ts_engine_is_eog(const ts_engine *eng, int32_t id)
{
    return eng->vocab && ts_vocab_is_eog(eng->vocab, id);
}

const char *ts_engine_meta_str(const ts_engine *eng, const char *key, size_t *len)
{
    ts_str v;
    bool found = false;
    *len = 0;
    if (!key || ts_gguf_get_str(eng->model->gguf, key, &v, &found, NULL) != TS_OK || !found)
        return NULL;
    *len = (size_t)v.len;
    return v.ptr;
}

/* ---- session ---- */

static size_t pad_stride(int64_t n) { return ((size_t)n * sizeof(float) + 63) & ~(size_t)63; }

static void *alloc64(size_t bytes, bool *ok)
{
    void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!p)
        *ok = false;
    return p;
}

static int64_t pick_chunk(const ts_session_opts *o, int64_t n_ctx)
{
    int64_t chunk = o->chunk;
    if (chunk == 0) {
        const long long v = chunk_env_parse(getenv("TESSERA_PREFILL_CHUNK"));
        chunk = v < 0 ? DEFAULT_CHUNK : v == 0 ? -1 : v;
    }
    if (chunk < 0 || chunk > n_ctx)
        chunk = n_ctx;
    return chunk;
}

static bool alloc_buffers(ts_session *s, uint32_t extra_tiles)
{
    const ts_hparams *hp = &s->m->hp;
    size_t c = (size_t)s->chunk;
    int64_t ff = hp->n_ff;
    if (hp->n_ff_exp > ff) ff = hp->n_ff_exp;
    if (hp->n_ff_shexp > ff) ff = hp->n_ff_shexp;
    bool ok = true;
    s->x_stride = pad_stride(hp->n_embd);
    s->q_stride = pad_stride(hp->n_head * hp->head_k);
    s->kv_stride = pad_stride(hp->n_head_kv * hp->head_k);
    s->att_stride = s->q_stride;
    s->ffn_stride = pad_stride(ff);
    s->x = alloc64(c * s->x_stride, &ok);
    s->xn = alloc64(c * s->x_stride, &ok);
    s->q = alloc64(c * s->q_stride, &ok);
    s->k = alloc64(c * s->kv_stride, &ok);
    s->v = alloc64(c * s->kv_stride, &ok);
    s->att = alloc64(c * s->att_stride, &ok);
    s->ffn_a = alloc64(c * s->ffn_stride, &ok);
    s->ffn_b = alloc64(c * s->ffn_stride, &ok);
    s->rope_cs = alloc64(c * (size_t)(hp->n_rot + 1) * sizeof(float), &ok);
    s->logits = alloc64((size_t)hp->n_vocab * sizeof(float), &ok);
    if (hp->n_expert) {
        size_t nu = (size_t)hp->n_expert_used;
        s->router = alloc64(c * (size_t)hp->n_expert * sizeof(float), &ok);
        s->sel = alloc64(c * nu * sizeof(int32_t), &ok);
        s->sel_w = alloc64(c * nu * sizeof(double), &ok);
        s->mix_acc = alloc64((size_t)hp->n_embd * sizeof(double), &ok);
        s->ex_out = alloc64(c * (nu + 1) * s->x_stride, &ok); /* + shared expert */
        s->shexp_gate = alloc64(c * sizeof(float), &ok);
    }
    /* Attention takes at most n_head_kv * (8 per worker + one per span). */
    s->tile_cap = 16 * s->eng->n_workers + (uint32_t)hp->n_head + 64 + extra_tiles;
    if (hp->n_layer_rs) {
        const int64_t ds = hp->ssm_state, nk = hp->ssm_n_k, nv = hp->ssm_n_v;
        const int64_t q2 = 2 * hp->n_head * hp->head_k;
        s->qg_stride = pad_stride(q2);
        s->gdn_qkv_stride = pad_stride((2 * nk + nv) * ds);
        s->gdn_z_stride = s->gdn_out_stride = pad_stride(nv * ds);
        s->gdn_ba_stride = pad_stride(2 * nv);
        s->qg = alloc64(c * s->qg_stride, &ok);
        s->gdn_qkv = alloc64(c * s->gdn_qkv_stride, &ok);
        s->gdn_z = alloc64(c * s->gdn_z_stride, &ok);
        s->gdn_b = alloc64(c * s->gdn_ba_stride, &ok);
        s->gdn_a = alloc64(c * s->gdn_ba_stride, &ok);
        s->gdn_g = alloc64(c * s->gdn_ba_stride, &ok);
        s->gdn_out = alloc64(c * s->gdn_out_stride, &ok);
        /* the GDN grid: a tile per (span, key head); spans <= extra / n_head_kv + 1 */
        s->tile_cap += (uint32_t)((extra_tiles / (uint32_t)hp->n_head_kv + 1) * nk);
        s->rs_floats = (size_t)hp->n_layer_rs * ts_gdn_layer_floats(hp);
    }
    s->tiles = alloc64(s->tile_cap * sizeof(ts_tile), &ok);
    s->tok_span = calloc(c, sizeof(*s->tok_span));
    s->out_rows = malloc(c * sizeof(*s->out_rows));
    ok = ok && s->tok_span && s->out_rows;
    for (size_t i = 0; ok && i < c; i++)
        s->out_rows[i] = (int32_t)i;
    return ok;
}

int64_t ts_session_default_ctx(const ts_engine *eng)
{
    const int64_t train = eng->model->hp.n_ctx_train;
    return train > 0 && train < DEFAULT_CTX_CAP ? train : DEFAULT_CTX_CAP;
}

ts_status ts_session_create(ts_session **out, ts_engine *eng, const ts_session_opts *opts,
                            ts_err *err)
{
    *out = NULL;
    ts_session_opts dflt = {0};
    if (!opts)
        opts = &dflt;
    int64_t n_ctx = opts->n_ctx;
    if (n_ctx < 0 || n_ctx > (1 << 24))
        return ts_err_set(err, TS_E_ARG, "n_ctx %lld out of range", (long long)n_ctx);
    if (n_ctx == 0)
        n_ctx = ts_session_default_ctx(eng);
    int kt, vt;
    ts_status st = ts_kv_types(opts->kv_f32, opts->kv_type_k, opts->kv_type_v, &kt, &vt, err);
    if (st != TS_OK)
        return st;
    return ts_session_alloc(out, eng, n_ctx, pick_chunk(opts, n_ctx), kt, vt, true, 0, err);
}

ts_status ts_session_alloc(ts_session **out, ts_engine *eng, int64_t n_ctx, int64_t chunk,
                           int kt, int vt, bool own_kv, uint32_t extra_tiles, ts_err *err)
{
    *out = NULL;
    const ts_hparams *hp = &eng->model->hp;
    ts_session *s = calloc(1, sizeof(*s));
    if (!s)
        return ts_err_set(err, TS_E_NOMEM, "session: out of memory");
    s->eng = eng;
    s->m = eng->model;
    s->n_ctx = n_ctx;
    s->chunk = chunk;
    s->ops = &ts_mm_kernels()->ops;
    ts_status st = TS_OK;
    if (hp->head_k > TS_ATTN_MAX_HD)
        st = ts_err_set(err, TS_E_UNSUPPORTED, "head dim %lld > %d", (long long)hp->head_k,
                        TS_ATTN_MAX_HD);
    if (st == TS_OK && own_kv)
        st = ts_kv_init(&s->kv, hp, n_ctx, kt, vt, err);
    if (st == TS_OK && !alloc_buffers(s, extra_tiles))
        st = ts_err_set(err, TS_E_NOMEM, "session: out of memory (chunk %lld)", (long long)s->chunk);
    if (st == TS_OK && own_kv && s->rs_floats) {
        s->rs = calloc(s->rs_floats, sizeof(float));
        if (!s->rs)
            st = ts_err_set(err, TS_E_NOMEM, "session: out of memory (recurrent state)");
    }
    if (st == TS_OK) {
        int64_t max_k = hp->n_embd;
        int64_t dims[5] = {hp->n_head * hp->head_k, hp->n_ff, hp->n_ff_exp, hp->n_ff_shexp,
                           hp->ssm_n_v * hp->ssm_state};
        for (int i = 0; i < 5; i++)
            max_k = dims[i] > max_k ? dims[i] : max_k;
        st = ts_mm_create(&s->mm, eng->pool, s->chunk, max_k, err);
    }
    if (st == TS_OK && hp->n_expert)
        st = ts_moe_plan(s, err);
    if (st != TS_OK) {
        ts_session_destroy(s);
        return st;
    }
    *out = s;
    return TS_OK;
}

void ts_session_destroy(ts_session *s)
{
    if (!s)
        return;
    ts_mm_destroy(s->mm);
    ts_moe_destroy(s->moe);
    ts_kv_fini(&s->kv);
    void *bufs[] = {s->x, s->xn, s->q, s->k, s->v, s->att, s->ffn_a, s->ffn_b, s->rope_cs,
                    s->logits, s->router, s->sel, s->sel_w, s->ex_out,
                    s->shexp_gate, s->mix_acc, s->tiles, s->tok_span, s->out_rows,
                    s->qg, s->gdn_qkv, s->gdn_z, s->gdn_b, s->gdn_a, s->gdn_g, s->gdn_out,
                    s->rs};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        free(bufs[i]);
    free(s);
}

ts_status ts_session_prefill(ts_session *s, const int32_t *tokens, int n_tok, float *logits_all,
                             ts_err *err)
{
    int64_t n_vocab = s->m->hp.n_vocab;
    if (n_tok < 1 || !tokens)
        return ts_err_set(err, TS_E_ARG, "prefill: %d tokens", n_tok);
    if (s->pos + n_tok > s->n_ctx)
        return ts_err_set(err, TS_E_ARG, "context full: %lld + %d tokens > n_ctx %lld",
                          (long long)s->pos, n_tok, (long long)s->n_ctx);
    for (int i = 0; i < n_tok; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return ts_err_set(err, TS_E_ARG, "token %d at index %d out of range [0, %lld)",
                              (int)tokens[i], i, (long long)n_vocab);
    ts_status st = ts_engine_enter(s->eng, err);
    if (st != TS_OK)
        return st;
    for (int64_t t0 = 0; t0 < n_tok; t0 += s->chunk) {
        int64_t n = n_tok - t0 < s->chunk ? n_tok - t0 : s->chunk;
        ts_forward_chunk(s, tokens + t0, n, logits_all ? logits_all + t0 * n_vocab : NULL);
    }
    ts_engine_leave(s->eng);
    s->has_logits = true;
    return TS_OK;
}

ts_status ts_session_decode(ts_session *s, int32_t token, ts_err *err)
{
    return ts_session_prefill(s, &token, 1, NULL, err);
}

const float *ts_session_logits(const ts_session *s) { return s->has_logits ? s->logits : NULL; }
int ts_session_pos(const ts_session *s) { return (int)s->pos; }
int ts_session_n_ctx(const ts_session *s) { return (int)s->n_ctx; }
int ts_session_chunk(const ts_session *s) { return (int)s->chunk; }

uint64_t ts_session_kv_bytes(const ts_session *s, int64_t n_pos)
{
    const ts_kv *kv = &s->kv;
    const uint64_t blocks = n_pos > 0 ? (uint64_t)((n_pos + TS_ATTN_KBLK - 1) / TS_ATTN_KBLK) : 0;
    return blocks * (uint64_t)(kv->k_blk + kv->v_blk) * (uint64_t)kv->n_layer *
           (uint64_t)kv->n_head_kv;
}

ts_status ts_session_truncate(ts_session *s, int pos, ts_err *err)
{
    if (pos < 0 || pos > s->pos)
        return ts_err_set(err, TS_E_ARG, "truncate to %d: the session holds %lld positions", pos,
                          (long long)s->pos);
    if (pos == s->pos)
        return TS_OK;
    if (s->rs)
        return ts_err_set(err, TS_E_UNSUPPORTED,
                          "a hybrid model's recurrent state cannot be rolled back to position %d "
                          "(reset and prefill again)", pos);
    s->pos = pos; /* rows past pos are overwritten before any query reads them */
    s->has_logits = false;
    return TS_OK;
}

void ts_session_reset(ts_session *s)
{
    s->pos = 0;
    s->has_logits = false;
    if (s->rs) /* a new sequence: conv and delta-rule states from zero */
        memset(s->rs, 0, s->rs_floats * sizeof(float));
}
