/*
 * core/place.c: NUMA placement of weight matrices (see core/place.h).
 *
 * Owns: the per-node partition plan, the per-node arenas (core/mem.c), the
 * parallel first-touch copy, and the two lookups the matmul uses.
 * Does not own: threads (the copy is one ts_pool_run job), libnuma (core/mem.c),
 * the tile grid (core/matmul.c asks ts_qplace_row_block for its row blocks).
 * Invariants: partition boundaries are multiples of TS_PLACE_ROW_ALIGN rows;
 * a node without workers owns no rows and holds no copy; every placed byte is
 * a copy of the mapping, written by a worker of its node, which then drops its
 * pages of the file mapping (MADV_DONTNEED; only inside the read-only mapping,
 * never a buffer made at load), so RSS holds one copy; a tile that does not
 * fit its partition (a grid cut elsewhere) reads the mapping instead, so a
 * mismatch can cost speed, never bits.
 */
#include "place.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "model.h"
#include "moe.h"
#include "../simd/repack.h"

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static size_t pad64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Bytes of rows [r0, r1) of w (r0 a multiple of TS_PLACE_ROW_ALIGN). A
 * repacked (_R16) matrix stores whole 16-row groups: its last part ends at the
 * last group's end. */
static size_t rows_bytes(const ts_qview *w, int64_t r0, int64_t r1)
{
    int64_t g = ts_repack_base(w->qtype) != w->qtype ? TS_R16_ROWS : 1;
    int64_t end = r1 == w->rows ? ceil_div(r1, g) * g : r1;
    return r1 > r0 ? (size_t)(end - r0) * w->row_stride : 0;
}

/* Every 2-D matrix the forward pass multiplies by (expert stacks excluded). */
static uint32_t list_mats(ts_model *m, ts_qview **out)
{
    uint32_t n = 0;
    for (int64_t il = 0; il < m->hp.n_layer; il++) {
        ts_qview *v[TS_LAYER_MATS];
        const int k = ts_layer_mats(&m->layers[il], v);
        for (int i = 0; i < k; i++) {
            if (out)
                out[n] = v[i];
            n++;
        }
    }
    if (m->output.data && m->output.rows > 0) {
        if (out)
            out[n] = &m->output;
        n++;
    }
    return n;
}

/* True when [p, p + len) lies inside the model file's tensor data (the
 * read-only mapping), not in a buffer made at load (e.g. a repacked copy). */
static bool in_file(const ts_model *m, const char *p, size_t len)
{
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (uint64_t i = 0; i < ts_gguf_n_tensors(m->gguf); i++) {
        const ts_gguf_tensor *t = ts_gguf_tensor_at(m->gguf, i);
        uintptr_t a = (uintptr_t)t->data, b = a + t->n_bytes;
        lo = a < lo ? a : lo;
        hi = b > hi ? b : hi;
    }
    return (uintptr_t)p >= lo && (uintptr_t)p + len <= hi;
}

/* One byte range to copy: written by the workers of `node`. */
typedef struct {
    char *dst;
    const char *src;
    size_t len;
    uint32_t node;
    bool drop;      /* src lies in the read-only file mapping */
} copy_seg;

typedef struct {
    copy_seg *segs;
    size_t n_segs;
    const uint32_t *rank;       /* (n_workers) rank of worker w on its node */
    const uint32_t *n_on_node;  /* (n_nodes) workers per node */
} copy_job;

static void copy_worker(void *vctx, ts_scratch *s)
{
    const copy_job *j = vctx;
    uint32_t nd = s->node, r = j->rank[s->worker], n = j->n_on_node[nd];
    for (size_t i = 0; i < j->n_segs; i++) {
        const copy_seg *c = &j->segs[i];
        if (c->node != nd)
            continue;
        size_t a = c->len * r / n, b = c->len * (r + 1) / n;
        memcpy(c->dst + a, c->src + a, b - a);
        /* The copy serves every tile now: give back the mapping's pages at
         * once, so RSS never holds the weights twice (a later read of the
         * mapping, e.g. another node's replica or the tied embedding's
         * lookups, faults them back in from the file). */
        if (c->drop)
            ts_mem_drop_mapped(c->src + a, b - a);
    }
}

/* Rows of w owned by each node: proportional to its workers, in aligned units. */
static void plan_rows(struct ts_qplace *q, const ts_qview *w, const uint32_t *n_on_node,
                      uint32_t n_nodes, uint32_t n_workers)
{
    int64_t units = ceil_div(w->rows, TS_PLACE_ROW_ALIGN);
    uint64_t cum = 0;
    q->n_parts = n_nodes;
    for (uint32_t p = 0; p <= n_nodes; p++) {
        int64_t r = (int64_t)((uint64_t)units * cum / n_workers) * TS_PLACE_ROW_ALIGN;
        q->row0[p] = r < w->rows ? r : w->rows;
        if (p < n_nodes)
            cum += n_on_node[p];
    }
}

void ts_place_destroy(ts_placement *pl)
{
    if (!pl)
        return;
    for (uint32_t p = 0; p < TS_PLACE_MAX_NODES; p++)
        if (pl->arena[p].p)
            ts_mem_free_node(&pl->arena[p]);
    free(pl->places);
    free(pl);
}

static int resolve_mode(int mode, uint32_t n_nodes)
{
    if (mode == TS_NUMA_DEFAULT)
        return n_nodes > 1 ? TS_NUMA_DISTRIBUTE : TS_NUMA_NONE;
    return mode;
}

/* Sizes, allocates and fills every node's arena; sets each matrix's place. */
static ts_status place_all(ts_placement *pl, const ts_model *m, ts_qview **mats, ts_pool *pool,
                           ts_err *err)
{
    const ts_topo *t = ts_pool_topo(pool);
    uint32_t nn = pl->n_nodes, nw = ts_pool_n_workers(pool);
    uint32_t n_on_node[TS_PLACE_MAX_NODES] = {0};
    uint32_t *rank = calloc(nw, sizeof(uint32_t));
    size_t cap_segs = (size_t)pl->n_mats * nn;
    copy_seg *segs = calloc(cap_segs ? cap_segs : 1, sizeof(copy_seg));
    size_t need[TS_PLACE_MAX_NODES] = {0}, used[TS_PLACE_MAX_NODES] = {0}, n_segs = 0;
    bool repl = pl->mode == TS_NUMA_REPLICATE;
    ts_status st = TS_OK;
    if (!rank || !segs) {
        st = ts_err_set(err, TS_E_NOMEM, "numa: out of memory");
        goto out;
    }
    for (uint32_t w = 0; w < nw; w++) {
        uint32_t nd = t->core_node[ts_topo_worker_core(t, w)];
        rank[w] = n_on_node[nd]++;
    }
    for (uint32_t i = 0; i < pl->n_mats; i++) {
        struct ts_qplace *q = &pl->places[i];
        plan_rows(q, mats[i], n_on_node, nn, nw);
        q->replicated = repl;
        for (uint32_t p = 0; p < nn; p++) {
            size_t len = repl ? (n_on_node[p] ? rows_bytes(mats[i], 0, mats[i]->rows) : 0)
                              : rows_bytes(mats[i], q->row0[p], q->row0[p + 1]);
            need[p] += pad64(len);
        }
    }
    for (uint32_t p = 0; p < nn; p++) {
        pl->node_os[p] = (int)t->node_os[p];
        if (need[p]) {
            st = ts_mem_alloc_node(&pl->arena[p], need[p], pl->node_os[p], err);
            if (st != TS_OK)
                goto out;
            pl->node_bound[p] = pl->arena[p].bound;
        }
    }
    for (uint32_t i = 0; i < pl->n_mats; i++) {
        struct ts_qplace *q = &pl->places[i];
        const ts_qview *w = mats[i];
        for (uint32_t p = 0; p < nn; p++) {
            int64_t r0 = repl ? 0 : q->row0[p];
            size_t len = repl ? (n_on_node[p] ? rows_bytes(w, 0, w->rows) : 0)
                              : rows_bytes(w, r0, q->row0[p + 1]);
            if (!len)
                continue;
            char *dst = (char *)pl->arena[p].p + used[p];
            used[p] += pad64(len);
            q->data[p] = dst;
            const char *src = (const char *)w->data + (size_t)r0 * w->row_stride;
            segs[n_segs++] = (copy_seg){dst, src, len, p, in_file(m, src, len)};
            pl->node_bytes[p] += len;
        }
        pl->src_bytes += rows_bytes(w, 0, w->rows);
    }
    copy_job job = {segs, n_segs, rank, n_on_node};
    ts_pool_run(pool, copy_worker, &job);
    for (uint32_t i = 0; i < pl->n_mats; i++)
        mats[i]->place = &pl->places[i];
out:
    free(rank);
    free(segs);
    return st;
}

/* Repack work: item i covers rows [row0, row0 + rows) of matrix mat, about
 * PREP_ITEM_BYTES each (multiples of 16 rows), so a large matrix (the output
 * head) is spread over the pool instead of landing on one thread. */
#define PREP_ITEM_BYTES ((size_t)2 << 20)

typedef struct {
    uint32_t mat;
    int64_t row0, rows;
} prep_item;

typedef struct {
    ts_qview **mats;
    const ts_qview *nv;
    const prep_item *items;
} prep_ctx;

static void prep_range(void *ctx, uint32_t i0, uint32_t i1, ts_scratch *s)
{
    prep_ctx *c = ctx;
    (void)s;
    for (uint32_t i = i0; i < i1; i++) {
        const prep_item *it = &c->items[i];
        const ts_qview *w = c->mats[it->mat];
        ts_mm_prepare_fill(w, &c->nv[it->mat], it->row0, it->rows);
        /* Its source rows' pages go now, not after the whole pass: that held
         * every matrix twice at its peak (a dense model's load peaked at twice
         * its weights). Only whole pages inside these rows go here; a page
         * shared with the next item's rows goes with the matrix after the pass. */
        ts_mem_drop_mapped((const char *)w->data + (size_t)it->row0 * w->row_stride,
                           (size_t)it->rows * w->row_stride);
    }
}

static ts_status prepare_stacks(ts_model *m, ts_err *err); /* below */

/* Allocates every matrix's repacked buffer, fills them in row ranges on the
 * pool, then switches each view and drops its source pages. A tied output
 * shares token_embd's bytes: repacked, but the mapping stays readable for
 * embedding lookups (dropped pages fault back in). */
static ts_status prepare_split(ts_qview **mats, void **owned, uint32_t n, ts_pool *pool,
                               ts_err *err)
{
    ts_qview *nv = calloc(n ? n : 1, sizeof(*nv));
    size_t n_items = 0, cap = 0;
    prep_item *items = NULL;
    ts_status rc = nv ? TS_OK : ts_err_set(err, TS_E_NOMEM, "repack: out of memory");
    for (uint32_t i = 0; i < n && rc == TS_OK; i++) {
        rc = ts_mm_prepare_alloc(mats[i], &nv[i], &owned[i], err);
        if (rc != TS_OK || !owned[i])
            continue;
        const size_t row_bytes = nv[i].row_stride ? nv[i].row_stride : 1;
        int64_t step = (int64_t)(PREP_ITEM_BYTES / row_bytes) / 16 * 16;
        step = step < 16 ? 16 : step;
        for (int64_t r0 = 0; r0 < mats[i]->rows && rc == TS_OK; r0 += step) {
            if (n_items == cap) {
                cap = cap ? 2 * cap : 256;
                prep_item *ni = realloc(items, cap * sizeof(*items));
                if (!ni) {
                    rc = ts_err_set(err, TS_E_NOMEM, "repack: out of memory");
                    break;
                }
                items = ni;
            }
            int64_t rn = mats[i]->rows - r0 < step ? mats[i]->rows - r0 : step;
            items[n_items++] = (prep_item){i, r0, rn};
        }
    }
    if (rc == TS_OK) {
        prep_ctx c = {mats, nv, items};
        ts_pool_for(pool, (uint32_t)n_items, prep_range, &c); /* disjoint row ranges */
        for (uint32_t i = 0; i < n; i++) {
            if (!owned[i])
                continue;
            ts_mem_drop_mapped(mats[i]->data, (size_t)mats[i]->rows * mats[i]->row_stride);
            *mats[i] = nv[i];
        }
    }
    free(items);
    free(nv);
    return rc;
}

ts_status ts_place_prepare(ts_model *m, ts_pool *pool, ts_err *err)
{
    uint32_t n = list_mats(m, NULL);
    ts_qview **mats = calloc(n ? n : 1, sizeof(*mats));
    void **owned = calloc(n ? n : 1, sizeof(*owned));
    ts_status rc = TS_OK;
    if (!mats || !owned) {
        rc = ts_err_set(err, TS_E_NOMEM, "repack: out of memory");
    } else {
        list_mats(m, mats);
        rc = prepare_split(mats, owned, n, pool, err);
    }
    free(mats);
    m->repacked = owned;
    m->n_repacked = owned ? n : 0;
    if (rc == TS_OK)
        rc = prepare_stacks(m, err);
    return rc;
}

/* ---- MoE expert stacks: repacked per expert on first use (core/moe.h) ----
 * Each stack the MoE kernel level has an _R16 kernel for gets one buffer,
 * expert e at e * ts_moe_expert_bytes, and its view switches to it here; an
 * expert is repacked (and its source pages dropped) by ts_moe_run when a
 * token is first routed to it. Repacking all of them here made RSS hold every
 * expert, where the plain mapping only faults in the routed ones: on
 * qwen3-moe-small (64 experts, top-8) a pp8 bench routes to 1/3 of the expert
 * bytes, pp512 to 3/4, and the eager repack's peak RSS was 2.5 GiB (pp8) and
 * 0.9 GiB (pp512) above the plain stacks' (2-core box, 2026-11). The buffers
 * join m->repacked (freed with ts_mm_release, i.e. free); far above glibc's
 * mmap threshold, their untouched pages cost nothing. */
static ts_status prepare_stacks(ts_model *m, ts_err *err)
{
    int64_t ne = m->hp.n_expert, n_stacks = m->hp.n_layer * 3;
    if (ne <= 0 || n_stacks == 0)
        return TS_OK;
    if ((uint64_t)ne * 3 > UINT32_MAX)
        return ts_err_set(err, TS_E_UNSUPPORTED, "repack: %lld experts", (long long)ne);
    const ts_kernels *k = ts_mm_kernels();
    /* The stacks' records then their ready flags, in one block. */
    ts_moe_lazy *lz = calloc(1, (size_t)n_stacks * (sizeof(*lz) + (size_t)ne));
    void **owned = realloc(m->repacked, (m->n_repacked + (size_t)n_stacks) * sizeof(void *));
    if (owned)
        m->repacked = owned;
    if (!lz || !owned) {
        free(lz);
        return ts_err_set(err, TS_E_NOMEM, "repack: out of memory");
    }
    m->lazy_exps = lz;
    uint8_t *flags = (uint8_t *)(lz + n_stacks);
    for (int64_t il = 0; il < m->hp.n_layer; il++) {
        ts_layer *L = &m->layers[il];
        ts_qview *v[] = {&L->gate_exps, &L->up_exps, &L->down_exps};
        for (int i = 0; i < 3; i++) {
            uint32_t rt = v[i]->data && v[i]->rows > 0 ? ts_kernels_repack_type(k, v[i]->qtype) : 0;
            if (!rt)
                continue;
            ts_qview dst = ts_moe_repacked_view(v[i], rt, NULL);
            size_t bytes = ts_moe_expert_bytes(&dst) * (size_t)ne;
            void *buf = aligned_alloc(64, pad64(bytes));
            if (!buf)
                return ts_err_set(err, TS_E_NOMEM, "repack: out of memory (%zu bytes)", bytes);
            m->repacked[m->n_repacked++] = buf;
            dst.data = buf;
            size_t src_bytes = ts_moe_expert_bytes(v[i]) * (size_t)ne;
            lz[il * 3 + i] = (ts_moe_lazy){*v[i], flags + (size_t)(il * 3 + i) * (size_t)ne,
                                           in_file(m, v[i]->data, src_bytes)};
            *v[i] = dst;
        }
    }
    return TS_OK;
}

ts_status ts_place_model(ts_model *m, ts_pool *pool, int mode, ts_err *err)
{
    const ts_topo *t = ts_pool_topo(pool);
    if (mode < TS_NUMA_DEFAULT || mode > TS_NUMA_NONE)
        return ts_err_set(err, TS_E_ARG, "numa mode %d", mode);
    ts_placement *pl = calloc(1, sizeof(*pl));
    if (!pl)
        return ts_err_set(err, TS_E_NOMEM, "numa: out of memory");
    pl->n_nodes = t->n_nodes < TS_PLACE_MAX_NODES ? t->n_nodes : TS_PLACE_MAX_NODES;
    pl->mode = resolve_mode(mode, pl->n_nodes);
    for (uint32_t p = 0; p < pl->n_nodes; p++)
        pl->node_os[p] = (int)t->node_os[p];
    ts_status st = TS_OK;
    if (pl->mode != TS_NUMA_NONE) {
        pl->n_mats = list_mats(m, NULL);
        pl->places = calloc(pl->n_mats ? pl->n_mats : 1, sizeof(*pl->places));
        ts_qview **mats = calloc(pl->n_mats ? pl->n_mats : 1, sizeof(*mats));
        if (!pl->places || !mats)
            st = ts_err_set(err, TS_E_NOMEM, "numa: out of memory");
        else {
            list_mats(m, mats);
            st = place_all(pl, m, mats, pool, err);
        }
        free(mats);
    }
    if (st != TS_OK) {
        ts_place_destroy(pl);
        return st;
    }
    ts_place_destroy(m->place);
    m->place = pl;
    return TS_OK;
}

static void split(int64_t n, int64_t parts, int64_t b, int64_t align, int64_t *b0, int64_t *bn)
{
    int64_t units = ceil_div(n, align);
    int64_t lo = units * b / parts, hi = units * (b + 1) / parts;
    *b0 = lo * align;
    *bn = (hi * align < n ? hi * align : n) - *b0;
}

int64_t ts_qplace_n_blocks(const ts_qview *w, int64_t row_parts)
{
    return row_parts + (w->place ? (int64_t)w->place->n_parts : 0);
}

void ts_qplace_row_block(const ts_qview *w, int64_t row_parts, int64_t rb, int64_t mr,
                         int64_t *r0, int64_t *rn, uint16_t *node)
{
    const struct ts_qplace *q = w->place;
    *r0 = *rn = 0;
    *node = 0;
    if (!q || TS_PLACE_ROW_ALIGN % mr) { /* unplaced (or an MR that could straddle) */
        if (rb < row_parts)
            split(w->rows, row_parts, rb, mr, r0, rn);
        return;
    }
    for (uint32_t p = 0; p < q->n_parts; p++) {
        int64_t len = q->row0[p + 1] - q->row0[p];
        if (len <= 0)
            continue;
        /* This node's share of the blocks, at least one, at most one per MR. */
        int64_t bp = ceil_div(row_parts * len, w->rows), units = ceil_div(len, mr);
        bp = bp < 1 ? 1 : (bp > units ? units : bp);
        if (rb < bp) {
            split(len, bp, rb, mr, r0, rn);
            *r0 += q->row0[p];
            *node = (uint16_t)p;
            return;
        }
        rb -= bp;
    }
}

const char *ts_qplace_rows(const ts_qview *w, const ts_tile *t, const ts_scratch *s)
{
    const struct ts_qplace *q = w->place;
    size_t off = (size_t)t->row0 * w->row_stride;
    if (!q)
        return (const char *)w->data + off;
    if (q->replicated) {
        uint32_t p = s && s->node < q->n_parts && q->data[s->node] ? s->node : t->node;
        return p < q->n_parts && q->data[p] ? (const char *)q->data[p] + off
                                            : (const char *)w->data + off;
    }
    uint32_t p = t->node;
    if (p < q->n_parts && q->data[p] && (int64_t)t->row0 >= q->row0[p] &&
        (int64_t)t->row0 + t->rows <= q->row0[p + 1])
        return (const char *)q->data[p] + (size_t)(t->row0 - q->row0[p]) * w->row_stride;
    return (const char *)w->data + off;
}

static const char *const k_numa_names[] = {"default", "distribute", "replicate", "isolate",
                                           "none"};

int ts_numa_parse(const char *name)
{
    for (int i = 0; name && i < (int)(sizeof(k_numa_names) / sizeof(k_numa_names[0])); i++)
        if (!strcmp(name, k_numa_names[i]))
            return i;
    return -1;
}

const char *ts_numa_name(int mode)
{
    return mode >= 0 && mode <= TS_NUMA_NONE ? k_numa_names[mode] : "?";
}
