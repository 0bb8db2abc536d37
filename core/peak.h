/*
 * core/peak.h: instruction peaks per core for the benches (core/peak.c).
 */
#ifndef TS_PEAK_H
#define TS_PEAK_H

#include <stdbool.h>

/* The peak probe of kernel level min(cap, host) (a ts_isa): int8 GOP/s of its
 * dot-product chains, or with f32 its FMA GFLOP/s; *probe names the probe. */
double ts_peak_probe(int cap, bool f32, const char **probe);

#endif
