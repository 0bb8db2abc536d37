/*
 * quant/kquant.c: scalar quantizers for the 256-element super-block formats
 * Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and the Q8_K activation format.
 *
 * Owns: the scale search of each format, written to reproduce llama.cpp's
 * quantize_row_*_ref (no importance matrix) bit for bit. That fixes more than
 * the algorithm: every float expression keeps ggml's association order (e.g.
 * w*x*l is (w*x)*l), sums run in the same element order, and rounding goes
 * through nearest_int below. Any "cleanup" of the arithmetic changes output
 * bytes; the golden checksums in tests/test_quant.c catch that. It also
 * requires no FMA contraction: ggml-quants.c built with -march=x86-64-v3 in
 * GNU mode (-ffp-contract=fast) gives different bytes (checked 2026-11);
 * -std=c11 implies -ffp-contract=off in GCC, keep it that way for quant/.
 * Non-finite input (the rule in quant.h): a super-block holding NaN or +-Inf
 * is written as d = NaN and zeros before any search runs; Q8_K's tiny blocks
 * (|max| < 127 / FLT_MAX, where -127 / max overflows) are written as zero.
 * nearest_int never converts a float to int, so the searches have no
 * undefined cast even on huge or tiny finite input (its result is garbage
 * out of range, as ggml's, but an int that is clamped or masked).
 * Does not own dequantization (kdequant.c) or any SIMD.
 *
 * Shared shape: each super-block is cut into sub-blocks (16 or 32 values);
 * a per-sub-block scale (and min) is searched in float, the scales are then
 * quantized to 4/6/8 bits against one f16 super-scale, and finally every
 * value is re-quantized against its *stored* (rounded) scale.
 */
#include "quant.h"

#include <math.h>
#include <string.h>

/* Groups whose largest magnitude is below this are treated as all zero. */
#define GROUP_MAX_EPS 1e-15f

/* Round to nearest, ties to even, for |v| <= 2^22 - 1: adding 1.5 * 2^23
 * puts the integer part in the low mantissa bits, which the FPU rounds in
 * the current (nearest-even) mode. Same trick, same results as ggml. */
static inline int nearest_int(float v)
{
    const float biased = v + 12582912.f;
    int32_t bits;
    memcpy(&bits, &biased, sizeof(bits));
    return (bits & 0x007fffff) - 0x00400000;
}

static inline int clamp_int(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Symmetric scale for n values onto [-nmax, nmax - 1] weighted by x^2
 * (ggml's make_qx_quants with rmse_type 1 and no importance weights): start
 * from -nmax / signed absmax, then try 18 nearby scales and keep the one
 * maximising (sum w*x*l)^2 / sum w*l^2. Writes L[i] = l + nmax. */
static float make_qx_quants_rmse1(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Symmetric 3-bit scale (ggml's make_q3_quants with do_rmse): start from
 * -nmax / signed absmax, then up to 5 passes of coordinate descent, moving
 * one L[i] at a time when that improves the x^2-weighted fit. */
static float make_q3_quants_rmse(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx <= 0)
                continue;
            float sl2 = suml2 - w * L[i] * L[i];
            const int new_l = clamp_int(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (new_l == L[i])
                continue;
            slx += w * x[i] * new_l;
            sl2 += w * new_l * new_l;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)new_l;
                sumlx = slx;
                suml2 = sl2;
                n_changed++;
            }
        }
        if (!n_changed)
            break;
    }
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Asymmetric scale + min for n values onto [0, nmax] (ggml's
 * make_qkx2_quants): weighted least squares of x ~ scale*l + min over
 * nstep+1 candidate scales around nmax / (max - min), keeping the one with
 * the smallest weighted error (|diff| if use_mad, diff^2 otherwise). The
 * min is clamped to <= 0 and returned negated in *the_min. Laux: n bytes. */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights,
                              uint8_t *L, float *the_min, uint8_t *Laux, float rmin,
                              float rdelta, int nstep, bool use_mad)
{
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0)
        min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clamp_int(nearest_int(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = clamp_int(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (!(D > 0))
            continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float cur_error = 0;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * Laux[i] + this_min - x[i];
            diff = use_mad ? fabsf(diff) : diff * diff;
            cur_error += weights[i] * diff;
        }
        if (cur_error < best_error) {
            memcpy(L, Laux, (size_t)n);
            best_error = cur_error;
            scale = this_scale;
            min = this_min;
        }
    }
    *the_min = -min;
    return scale;
}

/* Q4_K/Q5_K 12-byte scale packing: sub-blocks 0-3 keep 6-bit scale and min
 * in bytes 0-3 and 4-7; sub-blocks 4-7 put their low nibbles in bytes 8-11
 * and their top 2 bits in the spare top bits of bytes 0-7. */
static void get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Packs 2-bit values L[256] as ggml does: byte l of each 32-byte group
 * holds elements l, l+32, l+64, l+96 of the 128-element half. */
static void pack_2bit(const uint8_t *L, uint8_t *qs)
{
    for (int half = 0; half < TS_QK_K; half += 128)
        for (int l = 0; l < 32; l++)
            qs[half / 4 + l] = (uint8_t)(L[half + l] | (L[half + l + 32] << 2) |
                                         (L[half + l + 64] << 4) | (L[half + l + 96] << 6));
}

void ts_quant_q2_k_scalar(const float *x, ts_block_q2_k *y, int64_t n)
{
    uint8_t L[TS_QK_K], Laux[16];
    float weights[16], mins[TS_QK_K / 16], scales[TS_QK_K / 16];
    const float q4scale = 15.f;

    for (int64_t blk = 0; blk < n / TS_QK_K; blk++, x += TS_QK_K) {
        ts_block_q2_k *b = &y[blk];
        if (ts_first_nonfinite(x, TS_QK_K) >= 0) {
            TS_NAN_BLOCK(*b);
            continue;
        }
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < TS_QK_K / 16; j++) {
            for (int l = 0; l < 16; l++)
                weights[l] = fabsf(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux,
                                         -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale)
                max_scale = scales[j];
            if (mins[j] > max_min)
                max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < TS_QK_K / 16; j++)
                b->scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            b->d = ts_f32_to_f16(max_scale / q4scale);
        } else {
            memset(b->scales, 0, sizeof(b->scales));
            b->d = ts_f32_to_f16(0.f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < TS_QK_K / 16; j++)
                /* Shifted as unsigned: the same low byte as ggml's int shift
                 * for every l >= 0, and defined for the garbage l of a
                 * tiny block (iscale = inf; ggml shifts a negative int). */
                b->scales[j] |= (uint8_t)((unsigned)nearest_int(iscale * mins[j]) << 4);
            b->dmin = ts_f32_to_f16(max_min / q4scale);
        } else {
            b->dmin = ts_f32_to_f16(0.f);
        }
        for (int j = 0; j < TS_QK_K / 16; j++) {
            const float d = ts_f16_to_f32(b->d) * (b->scales[j] & 0xF);
            if (!d)
                continue;
            const float dm = ts_f16_to_f32(b->dmin) * (b->scales[j] >> 4);
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] = (uint8_t)clamp_int(nearest_int((x[16 * j + ii] + dm) / d), 0, 3);
        }
        pack_2bit(L, b->qs);
    }
}

/* Q3_K scales: 16 6-bit values (stored +32). Low nibbles: scales[0..7]
 * (sub-blocks 0-7 low nibble, 8-15 high nibble); top 2 bits: scales[8..11],
 * sub-block j at byte 8 + j%4, bit 2*(j/4). */
static int q3k_scale(const uint8_t *sc, int j)
{
    const int lo = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
    const int hi = (sc[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

void ts_quant_q3_k_scalar(const float *x, ts_block_q3_k *y, int64_t n)
{
    int8_t L[TS_QK_K];
    float scales[TS_QK_K / 16];

    for (int64_t blk = 0; blk < n / TS_QK_K; blk++, x += TS_QK_K) {
        ts_block_q3_k *b = &y[blk];
        if (ts_first_nonfinite(x, TS_QK_K) >= 0) {
            TS_NAN_BLOCK(*b);
            continue;
        }
        float max_scale = 0, amax = 0;
        for (int j = 0; j < TS_QK_K / 16; j++) {
            scales[j] = make_q3_quants_rmse(16, 4, x + 16 * j, L + 16 * j);
            const float scale = fabsf(scales[j]);
            if (scale > amax) {
                amax = scale;
                max_scale = scales[j];
            }
        }
        memset(b->scales, 0, sizeof(b->scales));
        if (max_scale) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < TS_QK_K / 16; j++) {
                const int l = clamp_int((int8_t)nearest_int(iscale * scales[j]), -32, 31) + 32;
                if (j < 8)
                    b->scales[j] = (uint8_t)(l & 0xF);
                else
                    b->scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                b->scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            b->d = ts_f32_to_f16(1 / iscale);
        } else {
            b->d = ts_f32_to_f16(0.f);
        }
        for (int j = 0; j < TS_QK_K / 16; j++) {
            const float d = ts_f16_to_f32(b->d) * q3k_scale(b->scales, j);
            if (!d)
                continue;
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] = (int8_t)(clamp_int(nearest_int(x[16 * j + ii] / d), -4, 3) + 4);
        }
        /* High bit of element e goes to hmask[e % 32], bit e / 32. */
        memset(b->hmask, 0, sizeof(b->hmask));
        uint8_t L2[TS_QK_K];
        for (int e = 0; e < TS_QK_K; e++) {
            if (L[e] > 3) {
                b->hmask[e % 32] |= (uint8_t)(1u << (e / 32));
                L2[e] = (uint8_t)(L[e] - 4);
            } else {
                L2[e] = (uint8_t)L[e];
            }
        }
        pack_2bit(L2, b->qs);
    }
}

/* Shared by Q4_K (nmax 15) and Q5_K (nmax 31): per 32-value sub-block a
 * weighted scale/min search, then 6-bit scales and mins against f16 d/dmin,
 * then each value re-quantized against the stored scale. Fills L[256]. */
static void qk_scales_mins(const float *x, int nmax, float rmin, int nstep, uint8_t *sc_out,
                           ts_f16 *d_out, ts_f16 *dmin_out, uint8_t *L)
{
    uint8_t Laux[32];
    float weights[32], mins[TS_QK_K / 32], scales[TS_QK_K / 32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < TS_QK_K / 32; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                     rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < TS_QK_K / 32; j++) {
        /* ggml stores through uint8_t before clamping: keep the wrap. */
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            sc_out[j] = ls;
            sc_out[j + 4] = lm;
        } else {
            sc_out[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            sc_out[j - 4] |= (uint8_t)((ls >> 4) << 6);
            sc_out[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *d_out = ts_f32_to_f16(max_scale / 63.f);
    *dmin_out = ts_f32_to_f16(max_min / 63.f);
    for (int j = 0; j < TS_QK_K / 32; j++) {
        uint8_t sc, m;
        get_scale_min_k4(j, sc_out, &sc, &m);
        const float d = ts_f16_to_f32(*d_out) * sc;
        if (!d)
            continue;
        const float dm = ts_f16_to_f32(*dmin_out) * m;
        for (int ii = 0; ii < 32; ii++)
            L[32 * j + ii] = (uint8_t)clamp_int(nearest_int((x[32 * j + ii] + dm) / d), 0, nmax);
    }
}

void ts_quant_q4_k_scalar(const float *x, ts_block_q4_k *y, int64_t n)
{
    uint8_t L[TS_QK_K];
    for (int64_t blk = 0; blk < n / TS_QK_K; blk++, x += TS_QK_K) {
        ts_block_q4_k *b = &y[blk];
        if (ts_first_nonfinite(x, TS_QK_K) >= 0) {
            TS_NAN_BLOCK(*b);
            continue;
        }
        qk_scales_mins(x, 15, -1.f, 20, b->scales, &b->d, &b->dmin, L);
        /* Byte l of each 32-byte group: element l low, element l+32 high. */
        for (int j = 0; j < TS_QK_K; j += 64)
            for (int l = 0; l < 32; l++)
                b->qs[j / 2 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}

void ts_quant_q5_k_scalar(const float *x, ts_block_q5_k *y, int64_t n)
{
    uint8_t L[TS_QK_K];
    for (int64_t blk = 0; blk < n / TS_QK_K; blk++, x += TS_QK_K) {
        ts_block_q5_k *b = &y[blk];
        if (ts_first_nonfinite(x, TS_QK_K) >= 0) {
            TS_NAN_BLOCK(*b);
            continue;
        }
        qk_scales_mins(x, 31, -0.5f, 15, b->scales, &b->d, &b->dmin, L);
        /* Low nibbles as in Q4_K; the fifth bit of element 64*g + l goes to
         * qh[l] bit 2g, of element 64*g + 32 + l to qh[l] bit 2g+1. */
        memset(b->qh, 0, sizeof(b->qh));
        for (int g = 0; g < TS_QK_K / 64; g++) {
            for (int l = 0; l < 32; l++) {
                const int l1 = L[64 * g + l], l2 = L[64 * g + l + 32];
                b->qh[l] |= (uint8_t)(((l1 >> 4) << (2 * g)) | ((l2 >> 4) << (2 * g + 1)));
                b->qs[32 * g + l] = (uint8_t)((l1 & 0xF) | ((l2 & 0xF) << 4));
            }
        }
    }
}

void ts_quant_q6_k_scalar(const float *x, ts_block_q6_k *y, int64_t n)
{
    int8_t L[TS_QK_K];
    float scales[TS_QK_K / 16];

    for (int64_t blk = 0; blk < n / TS_QK_K; blk++, x += TS_QK_K) {
        ts_block_q6_k *b = &y[blk];
        if (ts_first_nonfinite(x, TS_QK_K) >= 0) {
            TS_NAN_BLOCK(*b);
            continue;
        }
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < TS_QK_K / 16; ib++) {
            scales[ib] = make_qx_quants_rmse1(16, 32, x + 16 * ib, L + 16 * ib);
            if (fabsf(scales[ib]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(b, 0, sizeof(*b));
            continue;
        }
        const float iscale = -128.f / max_scale;
        b->d = ts_f32_to_f16(1 / iscale);
        for (int ib = 0; ib < TS_QK_K / 16; ib++) {
            const int s = nearest_int(iscale * scales[ib]);
            b->scales[ib] = (int8_t)(s < 127 ? s : 127);
        }
        for (int j = 0; j < TS_QK_K / 16; j++) {
            const float d = ts_f16_to_f32(b->d) * b->scales[j];
            if (!d)
                continue;
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] = (int8_t)(clamp_int(nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
        }
        /* Per 128-element half: ql byte l holds elements l (low) and l+64
         * (high), byte l+32 holds l+32 and l+96; qh byte l holds the top 2
         * bits of l, l+32, l+64, l+96 at bits 0, 2, 4, 6. */
        for (int half = 0; half < 2; half++) {
            const uint8_t *Lh = (const uint8_t *)L + 128 * half;
            uint8_t *ql = b->ql + 64 * half;
            uint8_t *qh = b->qh + 32 * half;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
                ql[l + 32] = (uint8_t)((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
                qh[l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) |
                                  ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
            }
        }
    }
}

/* Q8_K: d = signed absmax / -127 kept as a float (not f16); bsums hold the
 * sum of each 16 quants so dot kernels can apply the K-quant mins cheaply. */
void ts_quant_q8_k_scalar(const float *x, ts_block_q8_k *y, int64_t n)
{
    for (int64_t blk = 0; blk < n / TS_QK_K; blk++, x += TS_QK_K) {
        ts_block_q8_k *b = &y[blk];
        if (ts_first_nonfinite(x, TS_QK_K) >= 0) {
            const uint32_t nan_bits = TS_F32_NAN_BITS; /* d = NaN, qs and bsums 0 */
            memset(b, 0, sizeof(*b));
            memcpy(&b->d, &nan_bits, sizeof(b->d));
            continue;
        }
        float max = 0, amax = 0;
        for (int j = 0; j < TS_QK_K; j++) {
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float iscale = amax ? -127.f / max : 0.f;
        if (!amax || isinf(iscale)) {
            /* ggml leaves bsums untouched here; we zero them (dot products
             * multiply them by d = 0, so the result is the same). A tiny
             * block (-127 / max overflows) is zero too: ggml's qs would be
             * nearest_int(inf) garbage. */
            memset(b, 0, sizeof(*b));
            continue;
        }
        for (int j = 0; j < TS_QK_K; j++) {
            const int v = nearest_int(iscale * x[j]);
            b->qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < TS_QK_K / 16; j++) {
            int sum = 0;
            for (int ii = 0; ii < 16; ii++)
                sum += b->qs[16 * j + ii];
            b->bsums[j] = (int16_t)sum;
        }
        b->d = 1 / iscale;
    }
}
