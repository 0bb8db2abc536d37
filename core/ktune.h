/*
 * core/ktune.h: picks, per repacked weight layout, the faster of two
 * bit-identical kernel levels on this host (core/ktune.c says why).
 */
#ifndef TS_KTUNE_H
#define TS_KTUNE_H

#include <stddef.h>

#include "../simd/kernels.h"

/* TESSERA_KTUNE: unset/empty or "1" -> 1 (tune), "0" -> 0 (keep the level's
 * kernels), anything else -> -1. */
int ts_ktune_parse(const char *s);

/* For each _R16 slot where k and alt (a lower level) have different kernels
 * of the same activation format, times both on a synthetic problem and puts
 * alt's slot into k when it is clearly faster. report (cap bytes, may be
 * NULL): "q8_0 avx512 (98 vs 131 us), ..." per timed layout (the winner's
 * time first). */
void ts_kernels_tune(ts_kernels *k, const ts_kernels *alt, char *report, size_t cap);

#endif
