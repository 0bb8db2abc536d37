/*
 * core/prefix.h: the KV page allocator with a prefix cache (core/prefix.c),
 * for the batch engine (core/batch.c).
 *
 * Pages are reference-counted. A full page (TS_BATCH_PAGE positions) can be
 * published under its key: the page before it in its sequence (id and that
 * page's generation, so a reused id never matches) and its own tokens. A new
 * sequence whose prompt starts with the same tokens finds the whole chain page
 * by page, each level checked token by token, and shares the pages instead of
 * computing them. A page's bits depend only on the tokens before and in it,
 * so a hit gives the bits a cold run computes. Unreferenced published pages
 * stay cached and are evicted least recently used when the free list is empty.
 */
#ifndef TS_PREFIX_H
#define TS_PREFIX_H

#include <stdbool.h>
#include <stdint.h>

#include "tessera.h"

typedef struct ts_prefix ts_prefix;

ts_status ts_prefix_create(ts_prefix **out, int32_t n_pages, ts_err *err);
void ts_prefix_destroy(ts_prefix *p);
/* A page with refcount 1: a free one, else the least recently used cached one
 * (evicted); -1 when none is left. */
int32_t ts_prefix_alloc(ts_prefix *p);
/* Pages an alloc can still return: free plus cached-and-unreferenced. */
int32_t ts_prefix_available(const ts_prefix *p);
void ts_prefix_ref(ts_prefix *p, int32_t page);
/* Drops a reference; returns true when the page went to the free list (not
 * cached), so the caller may poison it. */
bool ts_prefix_unref(ts_prefix *p, int32_t page);
/* Publishes a full page: parent is the page of the block before (-1 for the
 * first block), tokens its TS_BATCH_PAGE tokens. A key already cached keeps
 * its page (this one stays private). */
void ts_prefix_publish(ts_prefix *p, int32_t page, int32_t parent, const int32_t *tokens);
/* The cached page after parent (-1: a first block) holding exactly tokens, or -1. */
int32_t ts_prefix_find(ts_prefix *p, int32_t parent, const int32_t *tokens);
int32_t ts_prefix_cached(const ts_prefix *p); /* published pages still cached */

#endif
