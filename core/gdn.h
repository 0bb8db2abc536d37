/*
 * core/gdn.h: the gated delta-net token mixer (core/gdn.c), internal to core/.
 */
#ifndef TS_GDN_H
#define TS_GDN_H

#include <stddef.h>

#include "model.h"
#include "../simd/ops.h"

/* Largest GDN head dim (ssm.state_size): the scan kernel's bound (simd/ops.h). */
#define TS_GDN_MAX_DS TS_GDN_SCAN_MAX_DS
/* Largest conv kernel (ssm.conv_kernel; the real models: 4). */
#define TS_GDN_MAX_CONV 16

struct ts_session;

/* Floats of one GDN layer's recurrent state for one sequence: the conv state
 * ((K - 1) x channels) and S (value heads x ds x ds). */
size_t ts_gdn_layer_floats(const ts_hparams *hp);
/* The matrices the GDN mixer multiplies its normed input by, in the order
 * ts_gdn_run runs them (the norm before it quantizes xn for exactly these):
 * conv channels, z, then beta and alpha (or qwen3next's fused ba); count. */
int ts_gdn_inputs(const ts_layer *L, const ts_qview **w);
/* The GDN mixer on s->xn (rows quantized for its projections by the norm
 * grid before it): writes the layer's output into s->xn, advances each
 * span's recurrent state (s->spans[i].rs) by its tokens. */
void ts_gdn_run(struct ts_session *s, const ts_layer *L, int64_t n_tok);

#endif
