/*
 * simd/scalar/elementwise.c: reference per-token kernels (RMSNorm with fused
 * residual add, RoPE, SwiGLU) and the definition of their canonical order
 * (simd/ops.h). Each output element is one fixed sequence of correctly
 * rounded operations, so the SIMD levels reproduce these bits; RMSNorm's sum
 * of squares uses 16 double lanes (i % 16) and the halving tree, which is
 * exactly two zmm (four ymm) of doubles and the usual horizontal sum.
 * Does not own: the rope cos/sin table (core/forward.c builds it per token).
 */
#include <math.h>

#include "../kernels.h"
#include "exp_canon.h"

void ts_rmsnorm_scalar(float *x, const float *add, const float *w, float *y, int64_t n,
                       float eps);
void ts_rope_scalar(float *x, const float *cs, int64_t n_head, int64_t head_dim, int64_t n_rot,
                    int neox);
void ts_swiglu_scalar(float *a, const float *b, int64_t n);

/* Contract: ts_rmsnorm_fn (simd/ops.h). */
void ts_rmsnorm_scalar(float *x, const float *add, const float *w, float *y, int64_t n, float eps)
{
    double s[16] = {0};
    for (int64_t i = 0; i < n; i++) {
        float xi = add ? x[i] + add[i] : x[i];
        if (add)
            x[i] = xi;
        s[i % 16] += (double)(xi * xi);
    }
    for (int j = 0; j < 8; j++)
        s[j] += s[j + 8];
    for (int j = 0; j < 4; j++)
        s[j] += s[j + 4];
    for (int j = 0; j < 2; j++)
        s[j] += s[j + 2];
    float mean = (float)((s[0] + s[1]) / (double)n);
    float sc = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++)
        y[i] = (x[i] * sc) * w[i];
}

/* Contract: ts_rope_fn (simd/ops.h). */
void ts_rope_scalar(float *x, const float *cs, int64_t n_head, int64_t head_dim, int64_t n_rot,
                    int neox)
{
    int64_t half = n_rot / 2;
    const float *cv = cs, *sv = cs + half;
    for (int64_t h = 0; h < n_head; h++) {
        float *v = x + h * head_dim;
        for (int64_t i = 0; i < half; i++) {
            int64_t ia = neox ? i : 2 * i, ib = neox ? i + half : 2 * i + 1;
            float x0 = v[ia], x1 = v[ib];
            v[ia] = x0 * cv[i] - x1 * sv[i];
            v[ib] = x0 * sv[i] + x1 * cv[i];
        }
    }
}

/* Contract: ts_swiglu_fn (simd/ops.h). */
void ts_swiglu_scalar(float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        a[i] = (a[i] / (1.0f + s_exp_canon(-a[i]))) * b[i];
}

void ts_gdn_scan_scalar(float *S, int64_t ds, int64_t n, const float *q, const float *k,
                     const float *v, size_t x_stride, const float *decay, const float *beta,
                     size_t g_stride, float scale, float *o, size_t o_stride);
void ts_simd_register_ops_scalar(ts_kernels *k);
void ts_attn_scalar(const ts_attn_args *a);

/* Fills every ts_ops slot (the complete reference level). */
void ts_simd_register_ops_scalar(ts_kernels *k)
{
    k->ops = (ts_ops){.attn = ts_attn_scalar, .rmsnorm = ts_rmsnorm_scalar, .rope = ts_rope_scalar,
                      .swiglu = ts_swiglu_scalar, .attn_name = "ts_attn_scalar",
                      .rmsnorm_name = "ts_rmsnorm_scalar", .rope_name = "ts_rope_scalar",
                      .swiglu_name = "ts_swiglu_scalar", .gdn_scan = ts_gdn_scan_scalar,
                      .gdn_scan_name = "ts_gdn_scan_scalar"};
}
