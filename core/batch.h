/*
 * core/batch.h: internals of the batch engine (core/batch.c) for tests and
 * the step scheduler; the API is in core/tessera.h.
 */
#ifndef TS_BATCH_H
#define TS_BATCH_H

#include "tessera.h"

/* Freed pages are filled with NaN from now on (tests: no cross-talk). */
void ts_batch_debug_poison(ts_batch *b, bool on);
/* New pages sequence seq needs to take n_tok more tokens. */
int64_t ts_batch_pages_needed(const ts_batch *b, int seq, int64_t n_tok);

#endif
