/*
 * core/prof.h: the forward pass's stage profile (TESSERA_PROFILE=1); see
 * core/prof.c.
 */
#ifndef TS_PROF_H
#define TS_PROF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

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
    TS_PROF_COUNT
} ts_prof_stage;

bool ts_prof_on(void);
uint64_t ts_prof_now_ns(void);
void ts_prof_add(ts_prof_stage st, uint64_t ns);
void ts_prof_reset(void);
/* Prints the table to f when profiling is on; nothing otherwise. */
void ts_prof_report(FILE *f);

/* Runs stmt, adding its wall time to stage st when profiling is on. */
#define TS_PROF(st, stmt)                                                                     \
    do {                                                                                      \
        if (ts_prof_on()) {                                                                   \
            uint64_t ts_prof_t0_ = ts_prof_now_ns();                                          \
            stmt;                                                                             \
            ts_prof_add((st), ts_prof_now_ns() - ts_prof_t0_);                                \
        } else {                                                                              \
            stmt;                                                                             \
        }                                                                                     \
    } while (0)

#endif
