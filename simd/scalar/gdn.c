/*
 * simd/scalar/gdn.c: the reference gated delta-rule scan (ts_gdn_scan_fn,
 * simd/ops.h): the canonical order every level reproduces, token by token.
 */
#include "../kernels.h"

void ts_gdn_scan_scalar(float *S, int64_t ds, int64_t n, const float *q, const float *k,
                        const float *v, size_t x_stride, const float *decay, const float *beta,
                        size_t g_stride, float scale, float *o, size_t o_stride);

#define AT(p, t, stride) ((const float *)((const char *)(p) + (size_t)(t) * (stride)))

/* Contract: ts_gdn_scan_fn (simd/ops.h). o holds a_j, then b_j. */
void ts_gdn_scan_scalar(float *S, int64_t ds, int64_t n, const float *q, const float *k,
                        const float *v, size_t x_stride, const float *decay, const float *beta,
                        size_t g_stride, float scale, float *o, size_t o_stride)
{
    float dlt[TS_GDN_SCAN_MAX_DS];
    for (int64_t t = 0; t < n; t++) {
        const float *qt = AT(q, t, x_stride), *kt = AT(k, t, x_stride), *vt = AT(v, t, x_stride);
        const float dec = *AT(decay, t, g_stride), bt = *AT(beta, t, g_stride);
        float *ot = (float *)((char *)o + (size_t)t * o_stride);
        for (int64_t j = 0; j < ds; j++)
            ot[j] = 0.0f;
        for (int64_t i = 0; i < ds; i++) {
            float *Si = S + i * ds;
            const float ki = kt[i];
            for (int64_t j = 0; j < ds; j++) {
                Si[j] = Si[j] * dec;
                ot[j] = ot[j] + Si[j] * ki;
            }
        }
        for (int64_t j = 0; j < ds; j++) {
            dlt[j] = (vt[j] - ot[j]) * bt;
            ot[j] = 0.0f;
        }
        for (int64_t i = 0; i < ds; i++) {
            float *Si = S + i * ds;
            const float ki = kt[i], qi = qt[i];
            for (int64_t j = 0; j < ds; j++) {
                Si[j] = Si[j] + ki * dlt[j];
                ot[j] = ot[j] + Si[j] * qi;
            }
        }
        for (int64_t j = 0; j < ds; j++)
            ot[j] = ot[j] * scale;
    }
}
