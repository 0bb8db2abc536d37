/*
 * quant/traits.c: the per-type traits table, type names, row sizes, the
 * f16/bf16 <-> f32 conversions and the generic quantize/dequantize dispatch.
 *
 * Owns: one ts_qtraits entry per ggml type id (0..TS_QTYPE_COUNT-1), so the
 * GGUF reader can size and name every tensor ggml knows, even those Tessera
 * cannot compute with. Ids ggml retired (4, 5, 31-33, 36-38) are holes: their
 * traits are NULL. Does not own any block layout (quant.h) or kernel.
 *
 * Invariant: the half conversions produce the same bits as ggml's scalar
 * ggml_compute_fp32_to_fp16 / ggml_compute_fp32_to_bf16, because quantizers
 * store their scales through them and files must be byte-identical.
 */
#include "quant.h"

#include <string.h>
#include <strings.h>

/* Byte sizes of blocks Tessera has no struct for, from ggml-common.h's
 * static asserts (llama.cpp v0.5.0). */
static const ts_qtraits traits[TS_QTYPE_COUNT] = {
    [TS_QTYPE_F32] = {"f32", 1, 4, true, true},
    [TS_QTYPE_F16] = {"f16", 1, 2, true, true},
    [TS_QTYPE_Q4_0] = {"q4_0", 32, sizeof(ts_block_q4_0), true, true},
    [TS_QTYPE_Q4_1] = {"q4_1", 32, sizeof(ts_block_q4_1), true, true},
    [TS_QTYPE_Q5_0] = {"q5_0", 32, sizeof(ts_block_q5_0), true, true},
    [TS_QTYPE_Q5_1] = {"q5_1", 32, sizeof(ts_block_q5_1), true, true},
    [TS_QTYPE_Q8_0] = {"q8_0", 32, sizeof(ts_block_q8_0), true, true},
    [TS_QTYPE_Q8_1] = {"q8_1", 32, sizeof(ts_block_q8_1), false, true},
    [TS_QTYPE_Q2_K] = {"q2_K", 256, sizeof(ts_block_q2_k), true, true},
    [TS_QTYPE_Q3_K] = {"q3_K", 256, sizeof(ts_block_q3_k), true, true},
    [TS_QTYPE_Q4_K] = {"q4_K", 256, sizeof(ts_block_q4_k), true, true},
    [TS_QTYPE_Q5_K] = {"q5_K", 256, sizeof(ts_block_q5_k), true, true},
    [TS_QTYPE_Q6_K] = {"q6_K", 256, sizeof(ts_block_q6_k), true, true},
    [TS_QTYPE_Q8_K] = {"q8_K", 256, sizeof(ts_block_q8_k), true, true},
    [TS_QTYPE_IQ2_XXS] = {"iq2_xxs", 256, sizeof(ts_block_iq2_xxs), true, false},
    [17] = {"iq2_xs", 256, 74, false, false},
    [18] = {"iq3_xxs", 256, 98, false, false},
    [19] = {"iq1_s", 256, 50, false, false},
    [20] = {"iq4_nl", 32, 18, false, false},
    [21] = {"iq3_s", 256, 110, false, false},
    [22] = {"iq2_s", 256, 82, false, false},
    [23] = {"iq4_xs", 256, 136, false, false},
    [24] = {"i8", 1, 1, false, false},
    [25] = {"i16", 1, 2, false, false},
    [26] = {"i32", 1, 4, false, false},
    [27] = {"i64", 1, 8, false, false},
    [28] = {"f64", 1, 8, false, false},
    [29] = {"iq1_m", 256, 56, false, false},
    [TS_QTYPE_BF16] = {"bf16", 1, 2, true, true},
    [34] = {"tq1_0", 256, 54, false, false},
    [35] = {"tq2_0", 256, 66, false, false},
    [39] = {"mxfp4", 32, 17, false, false},
    [40] = {"nvfp4", 64, 36, false, false},
    [41] = {"q1_0", 128, 18, false, false},
    [42] = {"q2_0", 64, 18, false, false},
};

const ts_qtraits *ts_qtype_traits(uint32_t type)
{
    if (type >= TS_QTYPE_COUNT || traits[type].blck == 0)
        return NULL;
    return &traits[type];
}

const char *ts_qtype_name(uint32_t type)
{
    const ts_qtraits *t = ts_qtype_traits(type);
    return t ? t->name : "?";
}

int ts_qtype_from_name(const char *name)
{
    if (!name)
        return -1;
    for (uint32_t type = 0; type < TS_QTYPE_COUNT; type++) {
        if (traits[type].blck && strcasecmp(traits[type].name, name) == 0)
            return (int)type;
    }
    return -1;
}

size_t ts_qtype_row_bytes(uint32_t type, uint64_t n)
{
    const ts_qtraits *t = ts_qtype_traits(type);
    if (!t || n % t->blck != 0)
        return 0;
    uint64_t n_blk = n / t->blck;
    if (n_blk > SIZE_MAX / t->size)
        return 0;
    return (size_t)(n_blk * t->size);
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* Exact for every half: normals are rebased by an exponent offset and a
 * multiply by 2^-112; subnormals are built as 0.5 + m*2^-24 in float's
 * [0.5, 1) binade and then 0.5 subtracted (both steps exact). */
float ts_f16_to_f32(ts_f16 h)
{
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    const float normal = bits_f32((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    const float subnormal = bits_f32((two_w >> 17) | (126u << 23)) - 0.5f;
    const uint32_t mag = two_w < (1u << 27) ? f32_bits(subnormal) : f32_bits(normal);
    return bits_f32(sign | mag);
}

/* Round to nearest even without branches on the value: scaling |f| up by
 * 2^112 then down by 2^-110 saturates overflow to inf and keeps the value;
 * adding a power of two whose ulp equals the half's ulp at f's exponent lets
 * the FPU do the rounding (bias floor 0x71000000 handles the subnormal
 * range). Any NaN becomes the quiet half NaN 0x7E00 with f's sign, as in ggml. */
ts_f16 ts_f32_to_f16(float f)
{
    float base = (__builtin_fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
    const uint32_t w = f32_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u)
        bias = 0x71000000u;
    base = bits_f32((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = f32_bits(base);
    const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
    const uint32_t mantissa_bits = bits & 0x00000FFFu;
    const uint32_t nonsign = exp_bits + mantissa_bits;
    return (ts_f16)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

float ts_bf16_to_f32(ts_bf16 h)
{
    return bits_f32((uint32_t)h << 16);
}

/* Round to nearest even by adding 0x7fff plus the kept lsb; a NaN keeps its
 * top bits and is forced quiet (bit 6 of the bf16), as ggml does. */
ts_bf16 ts_f32_to_bf16(float f)
{
    const uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (ts_bf16)((u >> 16) | 64u);
    return (ts_bf16)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

int64_t ts_first_nonfinite(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const uint32_t u = f32_bits(x[i]);
        if ((u & 0x7f800000u) == 0x7f800000u) /* exponent all ones: +-Inf or NaN */
            return i;
    }
    return -1;
}

void ts_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n)
{
    switch (type) {
    case TS_QTYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case TS_QTYPE_F16: {
        const ts_f16 *h = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = ts_f16_to_f32(h[i]);
        break;
    }
    case TS_QTYPE_BF16: {
        const ts_bf16 *h = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = ts_bf16_to_f32(h[i]);
        break;
    }
    case TS_QTYPE_Q4_0: ts_dequant_q4_0_scalar(src, dst, n); break;
    case TS_QTYPE_Q4_1: ts_dequant_q4_1_scalar(src, dst, n); break;
    case TS_QTYPE_Q5_0: ts_dequant_q5_0_scalar(src, dst, n); break;
    case TS_QTYPE_Q5_1: ts_dequant_q5_1_scalar(src, dst, n); break;
    case TS_QTYPE_Q8_0: ts_dequant_q8_0_scalar(src, dst, n); break;
    case TS_QTYPE_Q2_K: ts_dequant_q2_k_scalar(src, dst, n); break;
    case TS_QTYPE_Q3_K: ts_dequant_q3_k_scalar(src, dst, n); break;
    case TS_QTYPE_Q4_K: ts_dequant_q4_k_scalar(src, dst, n); break;
    case TS_QTYPE_Q5_K: ts_dequant_q5_k_scalar(src, dst, n); break;
    case TS_QTYPE_Q6_K: ts_dequant_q6_k_scalar(src, dst, n); break;
    case TS_QTYPE_Q8_K: ts_dequant_q8_k_scalar(src, dst, n); break;
    case TS_QTYPE_IQ2_XXS: ts_dequant_iq2_xxs_scalar(src, dst, n); break;
    default:
        /* Callers check traits->supported first; poison so misuse shows. */
        for (int64_t i = 0; i < n; i++)
            dst[i] = __builtin_nanf("");
        break;
    }
}

void ts_quantize_row(uint32_t type, const float *src, void *dst, int64_t n)
{
    switch (type) {
    case TS_QTYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case TS_QTYPE_F16: {
        ts_f16 *h = dst;
        for (int64_t i = 0; i < n; i++)
            h[i] = ts_f32_to_f16(src[i]);
        break;
    }
    case TS_QTYPE_BF16: {
        ts_bf16 *h = dst;
        for (int64_t i = 0; i < n; i++)
            h[i] = ts_f32_to_bf16(src[i]);
        break;
    }
    case TS_QTYPE_Q4_0: ts_quant_q4_0_scalar(src, dst, n); break;
    case TS_QTYPE_Q4_1: ts_quant_q4_1_scalar(src, dst, n); break;
    case TS_QTYPE_Q5_0: ts_quant_q5_0_scalar(src, dst, n); break;
    case TS_QTYPE_Q5_1: ts_quant_q5_1_scalar(src, dst, n); break;
    case TS_QTYPE_Q8_0: ts_quant_q8_0_scalar(src, dst, n); break;
    case TS_QTYPE_Q8_1: ts_quant_q8_1_scalar(src, dst, n); break;
    case TS_QTYPE_Q2_K: ts_quant_q2_k_scalar(src, dst, n); break;
    case TS_QTYPE_Q3_K: ts_quant_q3_k_scalar(src, dst, n); break;
    case TS_QTYPE_Q4_K: ts_quant_q4_k_scalar(src, dst, n); break;
    case TS_QTYPE_Q5_K: ts_quant_q5_k_scalar(src, dst, n); break;
    case TS_QTYPE_Q6_K: ts_quant_q6_k_scalar(src, dst, n); break;
    case TS_QTYPE_Q8_K: ts_quant_q8_k_scalar(src, dst, n); break;
    default:
        break; /* callers check traits->can_quantize first */
    }
}
