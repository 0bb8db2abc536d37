/*
 * core/prof.h: the forward pass's stage profile (TESSERA_PROFILE=1); see
 * core/prof.c.
 */
#ifndef TS_PROF_H
#define TS_PROF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../sched/sched.h"

typedef enum {
    TS_PROF_EMBED,
    TS_PROF_QKV,
    TS_PROF_ATTN,
    TS_PROF_WO,
    TS_PROF_NORM,
    TS_PROF_FFN_UP,
    TS_PROF_FFN_DOWN,
    TS_PROF_MOE,
    TS_PROF_OUTPUT,
    TS_PROF_GDN_REC,  /* core/gdn.c: conv, norms, the delta rule, the gated norm */
    TS_PROF_COUNT
} ts_prof_stage;

/* Where a stage started: the clock and the pool's grid counters. */
typedef struct {
    uint64_t t0;
    ts_sched_prof sched;
} ts_prof_mark;

/* True when TESSERA_PROFILE is set (read once); the first true also turns on
 * the pool's grid counters (ts_sched_prof_enable). */
bool ts_prof_on(void);
uint64_t ts_prof_now_ns(void);
void ts_prof_begin(ts_prof_mark *m);
/* Adds the wall time and the grid counters since m to stage st. */
void ts_prof_end(ts_prof_stage st, const ts_prof_mark *m);
/* Zeroes the stage table and the pool's grid counters. */
void ts_prof_reset(void);
/* Prints the table to f when profiling is on; nothing otherwise. */
void ts_prof_report(FILE *f);

/* Runs stmt, adding its wall time and its grids to stage st when profiling is
 * on. Stages must not nest: a grid would count in both. */
#define TS_PROF(st, stmt)                                                                     \
    do {                                                                                      \
        if (ts_prof_on()) {                                                                   \
            ts_prof_mark ts_prof_m_;                                                          \
            ts_prof_begin(&ts_prof_m_);                                                       \
            stmt;                                                                             \
            ts_prof_end((st), &ts_prof_m_);                                                   \
        } else {                                                                              \
            stmt;                                                                             \
        }                                                                                     \
    } while (0)

#endif
