/*
 * core/prefix.c: reference-counted KV pages, a free list, and the prefix
 * cache over them (contract in core/prefix.h).
 *
 * Owns: page metadata (refcount, generation, published key), the hash index
 * of published keys (buckets chained through the pages), the LRU list of
 * cached pages nobody references. Does not own: the pages' bytes (core/kv.c)
 * or which sequence holds what (core/batch.c).
 * Keys are exact: (parent page, parent generation, 64 tokens); the hash only
 * picks a bucket, every candidate is compared field by field and token by
 * token, so a collision can cost time but never a wrong hit. The hash takes a
 * random key per cache, so crafted prompts cannot pile into one bucket.
 */
#include "prefix.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "err.h"

typedef struct {
    int32_t ref;
    uint32_t gen;          /* bumped at every alloc: old keys naming this page go stale */
    bool cached;           /* published and in the index */
    int32_t parent;        /* key: the page before (-1 for a first block) */
    uint32_t parent_gen;   /* key: its generation when this page was published */
    int32_t bucket_next;   /* index chain */
    int32_t lru_prev, lru_next; /* when cached and ref == 0 */
    int32_t tokens[TS_BATCH_PAGE];
} page_meta;

struct ts_prefix {
    page_meta *pg;
    int32_t n_pages;
    int32_t *free_list, n_free;
    int32_t *buckets; /* n_buckets heads, -1 empty */
    uint32_t n_buckets;
    int32_t lru_head, lru_tail, n_lru, n_cached;
    uint64_t key;
};

ts_status ts_prefix_create(ts_prefix **out, int32_t n_pages, ts_err *err)
{
    *out = NULL;
    ts_prefix *p = calloc(1, sizeof(*p));
    if (!p)
        return ts_err_set(err, TS_E_NOMEM, "prefix cache: out of memory");
    p->n_pages = n_pages;
    p->n_buckets = 16;
    while (p->n_buckets < 2u * (uint32_t)n_pages && p->n_buckets < (1u << 30))
        p->n_buckets *= 2;
    p->pg = calloc((size_t)n_pages ? (size_t)n_pages : 1, sizeof(*p->pg));
    p->free_list = malloc(((size_t)n_pages ? (size_t)n_pages : 1) * sizeof(int32_t));
    p->buckets = malloc(p->n_buckets * sizeof(int32_t));
    if (!p->pg || !p->free_list || !p->buckets) {
        ts_prefix_destroy(p);
        return ts_err_set(err, TS_E_NOMEM, "prefix cache: out of memory (%d pages)", n_pages);
    }
    memset(p->buckets, 0xff, p->n_buckets * sizeof(int32_t));
    /* Page 0 on top of the stack: a fresh pool hands out pages in order. */
    for (int32_t i = 0; i < n_pages; i++)
        p->free_list[i] = n_pages - 1 - i;
    p->n_free = n_pages;
    p->lru_head = p->lru_tail = -1;
    if (getrandom(&p->key, sizeof(p->key), GRND_NONBLOCK) != (ssize_t)sizeof(p->key))
        p->key = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull;
    *out = p;
    return TS_OK;
}

void ts_prefix_destroy(ts_prefix *p)
{
    if (!p)
        return;
    free(p->pg);
    free(p->free_list);
    free(p->buckets);
    free(p);
}

static uint32_t bucket_of(const ts_prefix *p, int32_t parent, uint32_t parent_gen,
                          const int32_t *tokens)
{
    uint64_t h = p->key ^ ((uint64_t)(uint32_t)parent << 32 | parent_gen);
    for (int i = 0; i < TS_BATCH_PAGE; i++) {
        h ^= (uint32_t)tokens[i];
        h *= 0x100000001b3ull;
        h ^= h >> 29;
    }
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    return (uint32_t)(h ^ (h >> 32)) & (p->n_buckets - 1);
}

static void lru_remove(ts_prefix *p, int32_t i)
{
    page_meta *m = &p->pg[i];
    if (m->lru_prev >= 0)
        p->pg[m->lru_prev].lru_next = m->lru_next;
    else
        p->lru_head = m->lru_next;
    if (m->lru_next >= 0)
        p->pg[m->lru_next].lru_prev = m->lru_prev;
    else
        p->lru_tail = m->lru_prev;
    m->lru_prev = m->lru_next = -1;
    p->n_lru--;
}

static void lru_push(ts_prefix *p, int32_t i)
{
    page_meta *m = &p->pg[i];
    m->lru_prev = p->lru_tail;
    m->lru_next = -1;
    if (p->lru_tail >= 0)
        p->pg[p->lru_tail].lru_next = i;
    else
        p->lru_head = i;
    p->lru_tail = i;
    p->n_lru++;
}

static void unpublish(ts_prefix *p, int32_t i)
{
    page_meta *m = &p->pg[i];
    int32_t *link = &p->buckets[bucket_of(p, m->parent, m->parent_gen, m->tokens)];
    while (*link >= 0 && *link != i)
        link = &p->pg[*link].bucket_next;
    if (*link == i)
        *link = m->bucket_next;
    m->cached = false;
    p->n_cached--;
}

int32_t ts_prefix_alloc(ts_prefix *p)
{
    int32_t i;
    if (p->n_free > 0) {
        i = p->free_list[--p->n_free];
    } else if (p->lru_head >= 0) { /* evict the least recently used cached page */
        i = p->lru_head;
        lru_remove(p, i);
        unpublish(p, i);
    } else {
        return -1;
    }
    p->pg[i].ref = 1;
    p->pg[i].gen++;
    return i;
}

int32_t ts_prefix_available(const ts_prefix *p) { return p->n_free + p->n_lru; }
int32_t ts_prefix_cached(const ts_prefix *p) { return p->n_cached; }

void ts_prefix_ref(ts_prefix *p, int32_t page)
{
    page_meta *m = &p->pg[page];
    if (m->ref++ == 0 && m->cached)
        lru_remove(p, page);
}

bool ts_prefix_unref(ts_prefix *p, int32_t page)
{
    page_meta *m = &p->pg[page];
    if (--m->ref > 0)
        return false;
    if (m->cached) {
        lru_push(p, page);
        return false;
    }
    p->free_list[p->n_free++] = page;
    return true;
}

int32_t ts_prefix_find(ts_prefix *p, int32_t parent, const int32_t *tokens)
{
    const uint32_t pgen = parent >= 0 ? p->pg[parent].gen : 0;
    for (int32_t i = p->buckets[bucket_of(p, parent, pgen, tokens)]; i >= 0;
         i = p->pg[i].bucket_next) {
        const page_meta *m = &p->pg[i];
        if (m->parent == parent && m->parent_gen == pgen &&
            !memcmp(m->tokens, tokens, sizeof(m->tokens)))
            return i;
    }
    return -1;
}

void ts_prefix_publish(ts_prefix *p, int32_t page, int32_t parent, const int32_t *tokens)
{
    page_meta *m = &p->pg[page];
    if (m->cached || ts_prefix_find(p, parent, tokens) >= 0)
        return;
    m->parent = parent;
    m->parent_gen = parent >= 0 ? p->pg[parent].gen : 0;
    memcpy(m->tokens, tokens, sizeof(m->tokens));
    const uint32_t b = bucket_of(p, parent, m->parent_gen, tokens);
    m->bucket_next = p->buckets[b];
    p->buckets[b] = page;
    m->cached = true;
    p->n_cached++;
}
