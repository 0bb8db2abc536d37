/*
 * tests/test_nonfinite.c: NaN and +-Inf in activations and weights, at the
 * kernel level (the rule of quant/quant.h: a block holding any non-finite
 * value becomes d = the canonical NaN with every other byte zero; a block too
 * small for 1/scale gets zero quants).
 *
 * Oracle chain (STYLE section 11): the scalar activation quantizers against
 * quant/'s reference quantizers, then every level against scalar with memcmp,
 * on rows mixing finite blocks with NaN (several signs and payloads), +Inf,
 * -Inf, tiny and huge blocks. Each bad block must be the canonical bytes and
 * each untouched finite block the control row's bytes (a bad neighbour never
 * leaks); outputs are poisoned (0xA5) with guard bytes past the row. Every
 * weight quantizer of quant/ follows the same rule. Every GEMM slot (plain and
 * _R16) at every level: a NaN activation block makes that token's outputs NaN,
 * a NaN weight block that row's, and every other output has the scalar
 * level's bits. Also in check-arm's simd-only binary (neon levels).
 */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "levels.h"
#include "test.h"
#include "../quant/quant.h"
#include "../simd/kernels.h"
#include "../simd/repack.h"

#define K_ROW 768 /* 3 Q8_K / super-blocks, 24 blocks of 32 */
#define GUARD 64  /* poisoned bytes past each quantized row */

static void *xalloc(size_t n)
{
    void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    if (!p)
        abort();
    return p;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

enum { ROW_CONTROL, ROW_SPOTS, ROW_PAYLOADS, ROW_TINY, ROW_HUGE, ROW_ALL_NAN, N_ROWS };

/* Row kinds, each a copy of the random control row with some blocks changed:
 *   spots: one NaN / +Inf / -Inf at block edges (first and last elements);
 *   payloads: one block with -NaN, signalling NaNs and both infinities;
 *   tiny: 32-blocks of amax 2e-38, 2e-40, 2^-148 (d underflows), 3.6e-37
 *         (1/scale overflows): zero quants; 8e-37 and 3.8e-37 (1/scale just
 *         representable), -0.0, and a whole 256-block of 1e-39;
 *   huge: +-FLT_MAX and 3e38 (f16 scales overflow to Inf, still no UB);
 *   all NaN. */
static void make_row(float *x, int kind, const float *control)
{
    memcpy(x, control, K_ROW * sizeof(float));
    switch (kind) {
    case ROW_SPOTS:
        x[0] = NAN;
        x[63] = NAN;
        x[300] = INFINITY;
        x[K_ROW - 1] = -INFINITY;
        break;
    case ROW_PAYLOADS: {
        static const uint32_t odd[] = {0xffc00000u, 0x7f800001u, 0xff812345u, 0x7fbfffffu,
                                       0x7f800000u, 0xff800000u};
        for (int i = 0; i < 6; i++)
            x[160 + 3 * i] = from_bits(odd[i]); /* 32-block 5 */
        x[600] = from_bits(0x7fffffffu);      /* 256-block 2 */
        break;
    }
    case ROW_TINY: {
        static const float mag[] = {1e-38f, 1e-40f, 0x1p-149f, 1.8e-37f, 4e-37f, 1.9e-37f};
        for (int b = 0; b < 6; b++)
            for (int i = 0; i < 32; i++)
                x[32 * b + i] = mag[b] * (float)((i % 5) - 2);
        for (int i = 192; i < 224; i++)
            x[i] = -0.0f;
        for (int i = 512; i < K_ROW; i++)
            x[i] = 1e-39f * (float)((i % 3) - 1);
        break;
    }
    case ROW_HUGE:
        x[40] = 3.4028235e38f;
        x[41] = -3.4028235e38f;
        x[100] = 3e38f;
        x[300] = -3e38f;
        break;
    case ROW_ALL_NAN:
        for (int i = 0; i < K_ROW; i++)
            x[i] = NAN;
        break;
    default:
        break;
    }
}

static void control_row(float *x, uint64_t seed)
{
    for (int i = 0; i < K_ROW; i++)
        x[i] = ts_test_randf(&seed) * (1.0f + (float)(i % 7));
}

static const uint32_t act_qtype[TS_ACT_COUNT] = {
    [TS_ACT_F32] = TS_QTYPE_F32, [TS_ACT_Q8_0] = TS_QTYPE_Q8_0, [TS_ACT_Q8_1] = TS_QTYPE_Q8_1,
    [TS_ACT_Q8_K] = TS_QTYPE_Q8_K};

/* Checks a quantized row q of x (type t) against the rule, block by block;
 * qc: the control row's bytes. Block types whose d is not the first field
 * (Q2_K, Q3_K, Q6_K, Q8_K) are located through their structs. */
static void check_rule(uint32_t t, int kind, const float *x, const uint8_t *q,
                       const uint8_t *qc, const char *who)
{
    const ts_qtraits *tr = ts_qtype_traits(t);
    const int64_t nb = K_ROW / tr->blck;
    size_t d_off = 0;
    if (t == TS_QTYPE_Q2_K)
        d_off = offsetof(ts_block_q2_k, d);
    else if (t == TS_QTYPE_Q3_K)
        d_off = offsetof(ts_block_q3_k, d);
    else if (t == TS_QTYPE_Q6_K)
        d_off = offsetof(ts_block_q6_k, d);
    uint8_t want[512];
    memset(want, 0, tr->size);
    if (t == TS_QTYPE_Q8_K) {
        const uint32_t nan_bits = TS_F32_NAN_BITS;
        memcpy(want + offsetof(ts_block_q8_k, d), &nan_bits, 4);
    } else {
        const ts_f16 h = TS_F16_NAN;
        memcpy(want + d_off, &h, 2);
    }
    int bad_blocks = 0, leaked = 0;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *got = q + (size_t)b * tr->size;
        if (ts_first_nonfinite(x + b * tr->blck, tr->blck) >= 0)
            bad_blocks += memcmp(got, want, tr->size) != 0;
        else if (kind == ROW_SPOTS || kind == ROW_PAYLOADS)
            leaked += memcmp(got, qc + (size_t)b * tr->size, tr->size) != 0;
    }
    TS_CHECK(bad_blocks == 0, "%s row kind %d: %d non-finite blocks are not the NaN block", who,
             kind, bad_blocks);
    TS_CHECK(leaked == 0, "%s row kind %d: %d finite blocks changed", who, kind, leaked);
    if (kind != ROW_TINY)
        return;
    /* 32-blocks 0 to 3 (d underflows or 1/scale overflows): zero quants. */
    int nz = 0;
    for (int b = 0; b < 4 && (t == TS_QTYPE_Q8_0 || t == TS_QTYPE_Q8_1); b++) {
        const int8_t *qs = t == TS_QTYPE_Q8_0 ? ((const ts_block_q8_0 *)q)[b].qs
                                              : ((const ts_block_q8_1 *)q)[b].qs;
        for (int i = 0; i < 32; i++)
            nz += qs[i] != 0;
    }
    if (t == TS_QTYPE_Q8_K) /* the 256-block of 1e-39: all bytes zero */
        for (size_t i = 0; i < sizeof(ts_block_q8_k); i++)
            nz += q[2 * sizeof(ts_block_q8_k) + i] != 0;
    TS_CHECK(nz == 0, "%s: %d non-zero bytes in tiny blocks", who, nz);
}

static int guard_intact(const uint8_t *p)
{
    for (int i = 0; i < GUARD; i++)
        if (p[i] != 0xA5)
            return 0;
    return 1;
}

/* Activation quantizers: scalar == quant/ reference == every level, bytes and
 * guard; the scalar output obeys the rule. */
TS_TEST(test_nonfinite_quant_act_levels)
{
    ts_isa lv[6];
    const int n_lv = ts_test_levels(lv);
    ts_kernels ref;
    ts_kernels_init(&ref, TS_ISA_SCALAR);
    float ctrl[K_ROW], x[K_ROW];
    control_row(ctrl, 5);
    uint8_t *qc = xalloc(K_ROW * 2);
    uint8_t *q0 = xalloc(K_ROW * 2 + GUARD), *q1 = xalloc(K_ROW * 2 + GUARD);
    for (int act = TS_ACT_Q8_0; act < TS_ACT_COUNT; act++) {
        const size_t bytes = ts_qtype_row_bytes(act_qtype[act], K_ROW);
        ref.quant_act[act](ctrl, qc, K_ROW);
        for (int kind = 0; kind < N_ROWS; kind++) {
            make_row(x, kind, ctrl);
            memset(q0, 0xA5, bytes + GUARD);
            ref.quant_act[act](x, q0, K_ROW);
            TS_CHECK(guard_intact(q0 + bytes), "%s wrote past the row", ref.quant_act_name[act]);
            check_rule(act_qtype[act], kind, x, q0, qc, ref.quant_act_name[act]);
            memset(q1, 0xA5, bytes + GUARD);
            ts_quantize_row(act_qtype[act], x, q1, K_ROW);
            TS_CHECK(memcmp(q0, q1, bytes + GUARD) == 0, "%s != quant/ reference (row kind %d)",
                     ref.quant_act_name[act], kind);
            for (int l = 1; l < n_lv; l++) {
                ts_kernels kt;
                ts_kernels_init(&kt, lv[l]);
                memset(q1, 0xA5, bytes + GUARD);
                kt.quant_act[act](x, q1, K_ROW);
                TS_CHECK(memcmp(q0, q1, bytes + GUARD) == 0, "%s != scalar (row kind %d)",
                         kt.quant_act_name[act], kind);
            }
        }
    }
    free(qc);
    free(q0);
    free(q1);
}

/* Every weight quantizer of quant/: a bad block is d = NaN and zeros and
 * dequantizes to all NaN; finite blocks are untouched; tiny and huge rows
 * quantize without undefined casts (the float-cast-overflow build checks). */
TS_TEST(test_nonfinite_quant_reference)
{
    static const uint32_t types[] = {TS_QTYPE_Q4_0, TS_QTYPE_Q4_1, TS_QTYPE_Q5_0, TS_QTYPE_Q5_1,
                                     TS_QTYPE_Q8_0, TS_QTYPE_Q8_1, TS_QTYPE_Q2_K, TS_QTYPE_Q3_K,
                                     TS_QTYPE_Q4_K, TS_QTYPE_Q5_K, TS_QTYPE_Q6_K, TS_QTYPE_Q8_K};
    float ctrl[K_ROW], x[K_ROW], y[K_ROW];
    control_row(ctrl, 9);
    uint8_t *qc = xalloc(K_ROW * 4), *q = xalloc(K_ROW * 4 + GUARD);
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        const uint32_t t = types[ti];
        const ts_qtraits *tr = ts_qtype_traits(t);
        const size_t bytes = ts_qtype_row_bytes(t, K_ROW);
        ts_quantize_row(t, ctrl, qc, K_ROW);
        for (int kind = 0; kind < N_ROWS; kind++) {
            make_row(x, kind, ctrl);
            memset(q, 0xA5, bytes + GUARD);
            ts_quantize_row(t, x, q, K_ROW);
            TS_CHECK(guard_intact(q + bytes), "%s wrote past the row", tr->name);
            check_rule(t, kind, x, q, qc, tr->name);
            if (!tr->supported) /* Q8_1 has no dequantizer */
                continue;
            ts_dequantize_row(t, q, y, K_ROW);
            int wrong = 0;
            for (int64_t b = 0; b < K_ROW / tr->blck; b++) {
                const int bad = ts_first_nonfinite(x + b * tr->blck, tr->blck) >= 0;
                for (uint32_t i = 0; i < tr->blck; i++) {
                    const float v = y[b * tr->blck + i];
                    wrong += bad ? !isnan(v) : (kind != ROW_HUGE && !isfinite(v));
                }
            }
            TS_CHECK(wrong == 0, "%s row kind %d: %d values decode wrong (NaN blocks must be "
                     "all NaN, the rest finite)", tr->name, kind, wrong);
        }
    }
    /* F16 / BF16 keep NaN a NaN and Inf an Inf. */
    TS_CHECK((ts_f32_to_f16(NAN) & 0x7fffu) > 0x7c00u && ts_f32_to_f16(INFINITY) == 0x7c00u,
             "f16 conversion of NaN / Inf");
    TS_CHECK((ts_f32_to_bf16(NAN) & 0x7fffu) > 0x7f80u && ts_f32_to_bf16(-INFINITY) == 0xff80u,
             "bf16 conversion of NaN / Inf");
    float probe[4] = {1.0f, -2.0f, 0.5f, 0.0f};
    TS_CHECK(ts_first_nonfinite(probe, 4) == -1, "finite row flagged");
    probe[2] = -INFINITY;
    TS_CHECK(ts_first_nonfinite(probe, 4) == 2, "first non-finite index");
    free(qc);
    free(q);
}

/* rows x k weights of plain type t from random floats; row bad_row holds a
 * NaN in its first block (the quantizer's NaN block; IQ2_XXS, which has no
 * quantizer: random bytes with a sane d, d = NaN in that block). */
static void *make_weights(uint32_t t, int64_t rows, int64_t k, int64_t bad_row, size_t *stride,
                          uint64_t *rng)
{
    const size_t rs = ts_qtype_row_bytes(t, (uint64_t)k);
    uint8_t *w = xalloc(rs * (size_t)rows);
    float *tmp = xalloc((size_t)k * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *wr = w + (size_t)r * rs;
        if (t == TS_QTYPE_IQ2_XXS) {
            ts_block_iq2_xxs *b = (ts_block_iq2_xxs *)wr;
            for (int64_t i = 0; i < k / TS_QK_K; i++) {
                for (int j = 0; j < TS_QK_K / 8; j++)
                    b[i].qs[j] = (uint16_t)ts_test_rand(rng);
                b[i].d = r == bad_row && i == 0 ? TS_F16_NAN : ts_f32_to_f16(0.01f);
            }
            continue;
        }
        for (int64_t i = 0; i < k; i++)
            tmp[i] = 0.5f * ts_test_randf(rng);
        if (r == bad_row)
            tmp[3] = NAN;
        ts_quantize_row(t, tmp, wr, k);
    }
    free(tmp);
    *stride = rs;
    return w;
}

/* GEMM slot q at level kt on 17 weight rows (row 5 NaN) x 3 tokens (token 1
 * with a NaN in its second 32-block, token 2 with +Inf last): the outputs of
 * row 5 and tokens 1, 2 must be non-finite (NaN once quantized), every other
 * output finite and equal to *ref_y (filled by the first, scalar, call).
 * Returns the number of wrong outputs. */
enum { G_ROWS = 17, G_TOK = 3, G_K = 512, G_BAD_ROW = 5, G_PAD = 3 };
static int gemm_case(const ts_kernels *kt, int q, const void *w, size_t ws, float *ref_y,
                     int have_ref)
{
    const ts_gemm_slot *sl = &kt->gemm[q];
    float x[G_TOK][G_K];
    uint64_t rng = 31;
    for (int t = 0; t < G_TOK; t++)
        for (int i = 0; i < G_K; i++)
            x[t][i] = ts_test_randf(&rng);
    x[1][40] = NAN;
    x[2][G_K - 1] = INFINITY;
    const size_t as = sl->act == TS_ACT_F32 ? G_K * sizeof(float)
                                            : ts_qtype_row_bytes(act_qtype[sl->act], G_K);
    uint8_t *a = xalloc(as * G_TOK);
    for (int t = 0; t < G_TOK; t++) {
        if (sl->act == TS_ACT_F32)
            memcpy(a + (size_t)t * as, x[t], as);
        else
            kt->quant_act[sl->act](x[t], a + (size_t)t * as, G_K);
    }
    const size_t ys = (G_ROWS + G_PAD) * sizeof(float);
    float *y = xalloc(ys * G_TOK);
    memset(y, 0xA5, ys * G_TOK);
    sl->fn(G_K, G_ROWS, G_TOK, w, ws, a, as, y, ys);
    int wrong = 0;
    for (int t = 0; t < G_TOK; t++)
        for (int r = 0; r < G_ROWS + G_PAD; r++) {
            const float v = y[t * (G_ROWS + G_PAD) + r];
            float *rv = &ref_y[t * (G_ROWS + G_PAD) + r];
            if (r >= G_ROWS) { /* padding: still the poison */
                wrong += bits_of(v) != 0xA5A5A5A5u;
                continue;
            }
            const int bad = t > 0 || r == G_BAD_ROW;
            if (bad) /* quantized: the NaN scale; f32: IEEE (Inf * w stays Inf) */
                wrong += sl->act == TS_ACT_F32 ? isfinite(v) : !isnan(v);
            else if (!isfinite(v))
                wrong++;
            else if (have_ref)
                wrong += bits_of(v) != bits_of(*rv);
            else
                *rv = v;
        }
    free(a);
    free(y);
    return wrong;
}

TS_TEST(test_nonfinite_gemm_levels)
{
    ts_isa lv[6];
    const int n_lv = ts_test_levels(lv);
    ts_kernels ref;
    ts_kernels_init(&ref, TS_ISA_SCALAR);
    for (int q = 0; q < TS_GEMM_SLOTS; q++) {
        if (!ref.gemm[q].fn)
            continue;
        const uint32_t base = q >= TS_QTYPE_COUNT ? ts_repack_base((uint32_t)q) : (uint32_t)q;
        uint64_t rng = 100 + (uint64_t)q;
        size_t ws;
        void *w = make_weights(base, G_ROWS, G_K, G_BAD_ROW, &ws, &rng);
        void *wq = w;
        size_t wqs = ws;
        if (q >= TS_QTYPE_COUNT) { /* _R16: the repacked copy of the same rows */
            wqs = ts_repack_row_stride((uint32_t)q, G_K);
            wq = xalloc(ts_repack_bytes((uint32_t)q, G_ROWS, G_K));
            ts_repack_rows((uint32_t)q, w, ws, G_ROWS, G_K, wq);
        }
        float ref_y[G_TOK * (G_ROWS + G_PAD)];
        for (int l = 0; l < n_lv; l++) {
            ts_kernels kt;
            ts_kernels_init(&kt, lv[l]);
            if (!kt.gemm[q].fn)
                continue;
            const int wrong = gemm_case(&kt, q, wq, wqs, ref_y, l > 0);
            TS_CHECK(wrong == 0, "%s: %d outputs wrong (NaN must reach row %d and tokens 1, 2; "
                     "the rest scalar's bits)", kt.gemm[q].name, wrong, G_BAD_ROW);
        }
        if (wq != w)
            free(wq);
        free(w);
    }
}
