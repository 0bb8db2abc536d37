/*
 * core/estimate.h: predicted peak resident memory of a run (core/estimate.c),
 * for `tessera run --dry-run`.
 */
#ifndef TS_ESTIMATE_H
#define TS_ESTIMATE_H

#include "tessera.h"

typedef struct {
    int64_t n_pos;      /* positions one sequence will hold (prompt + generated) */
    int n_seq;          /* sequences held at once */
    int64_t chunk_rows; /* rows of one forward pass (the prefill chunk, or the step budget) */
    uint32_t n_workers;
    bool kv_f32;
    int kv_type_k, kv_type_v; /* ts_kv_type; as ts_session_opts */
} ts_mem_query;

typedef struct {
    uint64_t weight_bytes, kv_bytes, scratch_bytes, base_bytes, total_bytes;
} ts_mem_estimate;

/* Reads the model's metadata (nothing is repacked or placed) and predicts. */
ts_status ts_estimate_memory(const char *model_path, const ts_mem_query *q, ts_mem_estimate *out,
                             ts_err *err);

#endif
