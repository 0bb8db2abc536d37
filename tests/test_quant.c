/*
 * tests/test_quant.c: quant/ (traits, half conversions, the scalar reference
 * quantizers and dequantizers, the mix policy) and `tessera quantize`.
 *
 * The quantizers must match llama.cpp's quantize_row_*_ref bit for bit. That
 * was checked outside the repo (a throwaway harness linking llama.cpp
 * v0.5.0's ggml-quants.c, comparing bytes on 4M values of 8 distributions,
 * plus every dequantizer on random blocks and the half conversions on 1/7
 * of all f32 bit patterns). What stays here are golden FNV-1a 64 checksums
 * of llama.cpp's own output on golden_input(), so our oracle cannot drift.
 * Error limits and the error metric are those of llama.cpp's
 * tests/test-quantize-fns.cpp.
 */
#include "test.h"
#include "../quant/mix.h"
#include "../quant/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_TEST 4096 /* test-quantize-fns' test_size: 32 * 128 */

static uint64_t fnv1a64(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Deterministic input for the golden checksums, built from exact integer
 * and power-of-two float arithmetic only (no libm), so it is the same on
 * every platform: a 64-bit LCG gives u in [-1, 1); group g of 32 values has
 * amplitude 2^(g%12 - 6), every third group an offset, every seventh zeros. */
static void golden_input(float *x, int n)
{
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        const int g = i / 32;
        const float u = (float)((int32_t)(s >> 40) - (1 << 23)) * 0x1.0p-23f;
        const float amp = (float)(1u << (g % 12)) * 0x1.0p-6f;
        x[i] = g % 7 == 5 ? 0.0f : u * amp + (g % 3 == 0 ? 0.5f * amp : 0.0f);
    }
}

/* FNV-1a 64 of quantize_row_<type>_ref(golden_input(4096)) and of ggml's
 * dequantize_row_<type> of those bytes (float bits), produced by llama.cpp
 * v0.5.0 (ggml/src/ggml-quants.c, gcc -O2 -march=x86-64-v2). Q8_1 has no
 * dequantizer in ggml. */
static const struct {
    uint32_t type;
    uint64_t q_hash, dq_hash;
} goldens[] = {
    {TS_QTYPE_Q4_0, 0xd9ba651140b62229ull, 0x632680c6ad07f6edull},
    {TS_QTYPE_Q4_1, 0xc3e60bd261f77f88ull, 0xb8badca965353e6full},
    {TS_QTYPE_Q5_0, 0x070561abbc4d2801ull, 0x413d57bf79474d2dull},
    {TS_QTYPE_Q5_1, 0x377a9997cb6e964bull, 0x28a1cfa5925f7771ull},
    {TS_QTYPE_Q8_0, 0x0ee18e090d2fcd74ull, 0xc14b630123eee52dull},
    {TS_QTYPE_Q8_1, 0x3b31eaa5730cccc3ull, 0},
    {TS_QTYPE_Q2_K, 0x0f3b04277cb9e50bull, 0xafddb04bb5d76732ull},
    {TS_QTYPE_Q3_K, 0xd76a16c0d16e0987ull, 0x15874f5a5fb3bfd5ull},
    {TS_QTYPE_Q4_K, 0x160c0d00d2001683ull, 0x5d01586e56fcb5e9ull},
    {TS_QTYPE_Q5_K, 0x0d1f47d19277e423ull, 0xeaf07bd5c001687dull},
    {TS_QTYPE_Q6_K, 0xb9aea291b8fee969ull, 0x427601ca9fe2fdafull},
    {TS_QTYPE_Q8_K, 0xb013edd09fb838c4ull, 0xddd3d3d1e39e544dull},
};
/* ggml_compute_fp32_to_fp16 of golden_input, and ggml_compute_fp32_to_bf16
 * of golden_input * 3.3f (so the bf16 rounding has work to do). */
#define GOLDEN_F16 0x7b5644e42d862bd7ull
#define GOLDEN_BF16 0x7f7568893bb9904eull

static const uint32_t quantizable[] = {
    TS_QTYPE_Q4_0, TS_QTYPE_Q4_1, TS_QTYPE_Q5_0, TS_QTYPE_Q5_1, TS_QTYPE_Q8_0,
    TS_QTYPE_Q2_K, TS_QTYPE_Q3_K, TS_QTYPE_Q4_K, TS_QTYPE_Q5_K, TS_QTYPE_Q6_K,
    TS_QTYPE_Q8_K, TS_QTYPE_F16, TS_QTYPE_BF16, TS_QTYPE_F32,
};
#define N_QUANTIZABLE (sizeof(quantizable) / sizeof(quantizable[0]))

TS_TEST(test_quant_traits)
{
    static const uint32_t holes[] = {4, 5, 31, 32, 33, 36, 37, 38, 43, 1000};
    for (size_t i = 0; i < sizeof(holes) / sizeof(holes[0]); i++) {
        TS_CHECK(ts_qtype_traits(holes[i]) == NULL, "type %u should be a hole", holes[i]);
        TS_CHECK(strcmp(ts_qtype_name(holes[i]), "?") == 0, "name of hole %u", holes[i]);
    }
    for (uint32_t t = 0; t < TS_QTYPE_COUNT; t++) {
        const ts_qtraits *tr = ts_qtype_traits(t);
        if (!tr)
            continue;
        TS_CHECK(tr->blck > 0 && tr->size > 0, "type %u has blck/size", t);
        TS_CHECK(ts_qtype_from_name(tr->name) == (int)t, "from_name(%s)", tr->name);
        TS_CHECK(!tr->can_quantize || t == TS_QTYPE_Q8_1 || tr->supported,
                 "%s: quantizable but not dequantizable", tr->name);
    }
    TS_CHECK(ts_qtype_from_name("Q4_K") == TS_QTYPE_Q4_K, "Q4_K");
    TS_CHECK(ts_qtype_from_name("q4_k") == TS_QTYPE_Q4_K, "q4_k");
    TS_CHECK(ts_qtype_from_name("BF16") == TS_QTYPE_BF16, "BF16");
    TS_CHECK(ts_qtype_from_name("IQ2_XXS") == TS_QTYPE_IQ2_XXS, "IQ2_XXS");
    TS_CHECK(ts_qtype_from_name("q4_k_m") == -1, "mix name is not a type");
    TS_CHECK(ts_qtype_from_name("") == -1 && ts_qtype_from_name(NULL) == -1, "empty");
    TS_CHECK(ts_qtype_traits(TS_QTYPE_IQ2_XXS)->supported &&
                 !ts_qtype_traits(TS_QTYPE_IQ2_XXS)->can_quantize,
             "iq2_xxs: dequantize only");
    TS_CHECK(ts_qtype_row_bytes(TS_QTYPE_Q4_K, 4096) == 16 * 144, "q4_K row");
    TS_CHECK(ts_qtype_row_bytes(TS_QTYPE_Q4_K, 896) == 0, "q4_K 896 not a multiple");
    TS_CHECK(ts_qtype_row_bytes(TS_QTYPE_Q8_0, 896) == 28 * 34, "q8_0 row 896");
    TS_CHECK(ts_qtype_row_bytes(TS_QTYPE_F16, 7) == 14, "f16 row");
    TS_CHECK(ts_qtype_row_bytes(4, 32) == 0, "hole row");
    TS_CHECK(ts_qtype_row_bytes(TS_QTYPE_Q8_0, UINT64_MAX - 31) == 0 || sizeof(size_t) > 8,
             "overflow");
}

TS_TEST(test_quant_half)
{
    static const struct {
        float f;
        uint16_t h;
    } f16_cases[] = {
        {0.0f, 0x0000},      {-0.0f, 0x8000},         {1.0f, 0x3c00},
        {-2.0f, 0xc000},     {65504.0f, 0x7bff},      {65519.99f, 0x7bff},
        {65520.0f, 0x7c00},  {1e10f, 0x7c00},         {0x1.0p-24f, 0x0001},
        {0x1.0p-25f, 0x0000}, {0x1.8p-25f, 0x0001},   {0x1.0p-14f, 0x0400},
        {1.0f + 0x1.0p-11f, 0x3c00}, /* tie, even stays */
        {1.0f + 0x1.8p-10f, 0x3c02}, /* tie, odd rounds up */
        {INFINITY, 0x7c00},  {-INFINITY, 0xfc00},     {NAN, 0x7e00},
    };
    for (size_t i = 0; i < sizeof(f16_cases) / sizeof(f16_cases[0]); i++)
        TS_CHECK(ts_f32_to_f16(f16_cases[i].f) == f16_cases[i].h, "f16(%a) = %04x, want %04x",
                 (double)f16_cases[i].f, ts_f32_to_f16(f16_cases[i].f), f16_cases[i].h);
    TS_CHECK(ts_f32_to_f16(-NAN) == 0xfe00, "f16(-nan) keeps the sign");
    /* Every finite half survives f16 -> f32 -> f16; NaNs stay NaN. */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = ts_f16_to_f32((ts_f16)h);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
            bad += !isnan(f);
            continue;
        }
        bad += ts_f32_to_f16(f) != h;
    }
    TS_CHECK(bad == 0, "%d halves failed the round trip", bad);
    TS_CHECK(ts_f16_to_f32(0x0001) == 0x1.0p-24f, "smallest subnormal");
    TS_CHECK(ts_f16_to_f32(0x7bff) == 65504.0f, "max half");

    TS_CHECK(ts_f32_to_bf16(1.0f) == 0x3f80, "bf16(1)");
    TS_CHECK(ts_f32_to_bf16(1.0f + 0x1.0p-8f) == 0x3f80, "bf16 tie to even (down)");
    TS_CHECK(ts_f32_to_bf16(1.0f + 0x1.8p-7f) == 0x3f82, "bf16 tie to even (up)");
    TS_CHECK(ts_f32_to_bf16(-INFINITY) == 0xff80, "bf16(-inf)");
    uint32_t snan_bits = 0x7f800001u;
    float snan;
    memcpy(&snan, &snan_bits, sizeof(snan));
    TS_CHECK(ts_f32_to_bf16(snan) == 0x7fc0, "bf16(sNaN) forced quiet: %04x",
             ts_f32_to_bf16(snan));
    TS_CHECK(ts_bf16_to_f32(0x3f80) == 1.0f, "bf16 -> f32");
}

TS_TEST(test_quant_golden)
{
    float *x = malloc(N_TEST * sizeof(float)), *y = malloc(N_TEST * sizeof(float));
    uint8_t *q = malloc(N_TEST * 4);
    TS_REQUIRE(x && y && q, "alloc");
    golden_input(x, N_TEST);
    for (size_t i = 0; i < sizeof(goldens) / sizeof(goldens[0]); i++) {
        const uint32_t t = goldens[i].type;
        const size_t rb = ts_qtype_row_bytes(t, N_TEST);
        memset(q, 0xA5, N_TEST * 4);
        ts_quantize_row(t, x, q, N_TEST);
        TS_CHECK(fnv1a64(q, rb) == goldens[i].q_hash, "%s: quantized bytes differ from llama.cpp",
                 ts_qtype_name(t));
        TS_CHECK(q[rb] == 0xA5, "%s: wrote past the row", ts_qtype_name(t));
        if (!goldens[i].dq_hash)
            continue;
        ts_dequantize_row(t, q, y, N_TEST);
        TS_CHECK(fnv1a64(y, N_TEST * sizeof(float)) == goldens[i].dq_hash,
                 "%s: dequantized floats differ from llama.cpp", ts_qtype_name(t));
    }
    ts_quantize_row(TS_QTYPE_F16, x, q, N_TEST);
    TS_CHECK(fnv1a64(q, N_TEST * 2) == GOLDEN_F16, "f16 conversion differs from ggml");
    for (int i = 0; i < N_TEST; i++)
        y[i] = x[i] * 3.3f;
    ts_quantize_row(TS_QTYPE_BF16, y, q, N_TEST);
    TS_CHECK(fnv1a64(q, N_TEST * 2) == GOLDEN_BF16, "bf16 conversion differs from ggml");
    free(x);
    free(y);
    free(q);
}

/* test-quantize-fns' metric: sqrt(sum of squared errors) / n. */
static float total_error(uint32_t t, const float *x, float *y, uint8_t *q)
{
    ts_quantize_row(t, x, q, N_TEST);
    ts_dequantize_row(t, q, y, N_TEST);
    double sum = 0;
    for (int i = 0; i < N_TEST; i++) {
        const double d = (double)x[i] - (double)y[i];
        sum += d * d;
    }
    return sqrtf((float)sum) / N_TEST;
}

/* Limits from test-quantize-fns: 0.002 in general, 3-bit 0.004, 2-bit 0.0075. */
static float error_limit(uint32_t t)
{
    return t == TS_QTYPE_Q2_K ? 0.0075f : t == TS_QTYPE_Q3_K ? 0.0040f : 0.002f;
}

TS_TEST(test_quant_error)
{
    float *x = malloc(N_TEST * sizeof(float)), *y = malloc(N_TEST * sizeof(float));
    uint8_t *q = malloc(N_TEST * 4);
    TS_REQUIRE(x && y && q, "alloc");
    for (int set = 0; set < 2; set++) {
        uint64_t rng = 0x5eed;
        for (int i = 0; i < N_TEST; i++) /* set 0: generate_data(0.0, n) */
            x[i] = set == 0 ? 0.1f + 2.0f * cosf((float)i + 0.0f) : ts_test_randf(&rng);
        for (size_t k = 0; k < N_QUANTIZABLE; k++) {
            const uint32_t t = quantizable[k];
            const float err = total_error(t, x, y, q);
            TS_CHECK(err < error_limit(t), "%s on %s data: error %g >= %g", ts_qtype_name(t),
                     set ? "random" : "cosine", (double)err, (double)error_limit(t));
        }
    }
    free(x);
    free(y);
    free(q);
}

static void fill_adversarial(float *x, int kind)
{
    for (int i = 0; i < N_TEST; i++) {
        switch (kind) {
        case 0: x[i] = 0.0f; break;
        case 1: x[i] = (i & 1 ? -1.0f : 1.0f) * 60000.0f; break; /* near f16 max, f16 scales */
        case 2: x[i] = (i % 3 - 1) * 1e-30f; break;               /* scales underflow f16 */
        case 3: x[i] = i & 1 ? -1.0f : 1.0f; break;
        case 4: x[i] = i % 256 == 5 ? 1000.0f : 1e-3f; break;       /* one spike per block */
        case 5: x[i] = 3.0f; break;                                 /* constant */
        default: x[i] = -(float)(i % 32) * 1e-8f; break;            /* all <= 0, tiny */
        }
    }
}

TS_TEST(test_quant_adversarial)
{
    float *x = malloc(N_TEST * sizeof(float)), *y = malloc(N_TEST * sizeof(float));
    uint8_t *q = malloc(N_TEST * 4);
    TS_REQUIRE(x && y && q, "alloc");
    for (int kind = 0; kind < 7; kind++) {
        fill_adversarial(x, kind);
        for (size_t k = 0; k < N_QUANTIZABLE; k++) {
            const uint32_t t = quantizable[k];
            for (int i = 0; i < N_TEST; i++)
                y[i] = NAN;
            ts_quantize_row(t, x, q, N_TEST);
            ts_dequantize_row(t, q, y, N_TEST);
            int bad = 0, nonzero = 0;
            for (int i = 0; i < N_TEST; i++) {
                bad += !isfinite(y[i]);
                nonzero += y[i] != 0.0f;
            }
            TS_CHECK(bad == 0, "%s, input set %d: %d non-finite outputs", ts_qtype_name(t), kind,
                     bad);
            if (kind == 0)
                TS_CHECK(nonzero == 0, "%s: zeros in, %d non-zeros out", ts_qtype_name(t),
                         nonzero);
        }
    }
    free(x);
    free(y);
    free(q);
}

/* IQ2_XXS has no quantizer here: check the decoder on hand-built blocks. */
TS_TEST(test_quant_iq2_xxs_decode)
{
    ts_block_iq2_xxs b;
    memset(&b, 0, sizeof(b));
    b.d = ts_f32_to_f16(1.0f);
    /* Group 0: grid entries 0 (all 8s) and 1 (0x080808080808082b: its
     * first element, the low byte, is 43, the rest 8), sign
     * field 1 for the first 8 (element 0 negative, parity makes element 7
     * negative too), scale 3 -> db = (0.5 + 3) * 0.25 = 0.875. */
    b.qs[0] = 0x0100; /* grid bytes 0, 1 */
    b.qs[1] = 0;
    const uint32_t a1 = 1u | (3u << 28);
    b.qs[2] = (uint16_t)a1;
    b.qs[3] = (uint16_t)(a1 >> 16);
    float y[256];
    ts_dequantize_row(TS_QTYPE_IQ2_XXS, &b, y, 256);
    TS_CHECK(y[0] == -0.875f * 8 && y[7] == -0.875f * 8, "signs: %g %g", (double)y[0],
             (double)y[7]);
    TS_CHECK(y[1] == 0.875f * 8 && y[6] == 0.875f * 8, "positive: %g", (double)y[1]);
    TS_CHECK(y[8] == 0.875f * 43, "grid entry 1 low byte: %g", (double)y[8]);
    TS_CHECK(y[15] == 0.875f * 8, "grid entry 1 high byte: %g", (double)y[15]);
    TS_CHECK(y[32] == 0.125f * 8, "group 1 with scale 0: %g", (double)y[32]);
}

static uint32_t mix_type(const ts_qmix *m, const char *name, uint64_t ne0, int n_layers)
{
    const uint64_t ne[2] = {ne0, 1024};
    return ts_qmix_tensor_type(m, name, 2, ne, n_layers);
}

TS_TEST(test_quant_mix)
{
    ts_qmix m;
    TS_REQUIRE(ts_qmix_parse("Q4_K_M", &m) == TS_QMIX_OK, "parse Q4_K_M");
    TS_CHECK(m.ftype == 15 && m.base == TS_QTYPE_Q4_K, "q4_k_m ftype/base");
    TS_CHECK(ts_qmix_parse("iq2_xxs", &m) == TS_QMIX_UNSUPPORTED, "iq2_xxs not producible");
    TS_CHECK(ts_qmix_parse("q4_k_x", &m) == TS_QMIX_UNKNOWN, "unknown");
    TS_CHECK(ts_qmix_parse(NULL, &m) == TS_QMIX_UNKNOWN, "NULL");

    TS_REQUIRE(ts_qmix_parse("q4_k_m", &m) == TS_QMIX_OK, "parse");
    const uint64_t ne1[1] = {4096};
    TS_CHECK(ts_qmix_tensor_type(&m, "blk.0.attn_norm.weight", 1, ne1, 32) == TS_QTYPE_F32,
             "1-D stays f32");
    TS_CHECK(mix_type(&m, "output.weight", 4096, 32) == TS_QTYPE_Q6_K, "output q6_K");
    TS_CHECK(mix_type(&m, "token_embd.weight", 4096, 32) == TS_QTYPE_Q4_K, "untied embd");
    TS_CHECK(mix_type(&m, "blk.3.ffn_gate_inp.weight", 4096, 32) == TS_QTYPE_F32, "router");
    TS_CHECK(mix_type(&m, "blk.5.attn_q.weight", 4096, 32) == TS_QTYPE_Q4_K, "attn_q");
    /* use_more_bits(i, 32): i < 4, i >= 28, or (i - 4) % 3 == 2. */
    int n_more = 0;
    for (int layer = 0; layer < 32; layer++) {
        char name[64];
        snprintf(name, sizeof(name), "blk.%d.attn_v.weight", layer);
        const bool more = layer < 4 || layer >= 28 || (layer - 4) % 3 == 2;
        const uint32_t tv = mix_type(&m, name, 4096, 32);
        snprintf(name, sizeof(name), "blk.%d.ffn_down.weight", layer);
        const uint32_t td = mix_type(&m, name, 11008, 32); /* 11008 = 43 * 256 */
        TS_CHECK(tv == (more ? TS_QTYPE_Q6_K : TS_QTYPE_Q4_K), "attn_v layer %d", layer);
        TS_CHECK(td == (more ? TS_QTYPE_Q6_K : TS_QTYPE_Q4_K), "ffn_down layer %d", layer);
        n_more += more;
    }
    TS_CHECK(n_more == 16, "use_more_bits picks 16 of 32 layers, got %d", n_more);
    /* Qwen2.5-0.5B: 896 columns, 24 layers, tied embeddings. */
    m.tied_embeddings = true;
    TS_CHECK(mix_type(&m, "token_embd.weight", 896, 24) == TS_QTYPE_Q8_0, "tied 896 -> q8_0");
    TS_CHECK(mix_type(&m, "blk.10.attn_q.weight", 896, 24) == TS_QTYPE_Q5_0, "q4_K -> q5_0");
    TS_CHECK(mix_type(&m, "blk.0.attn_v.weight", 896, 24) == TS_QTYPE_Q8_0, "q6_K -> q8_0");
    TS_CHECK(mix_type(&m, "blk.0.ffn_down.weight", 4864, 24) == TS_QTYPE_Q6_K, "4864 = 19*256");
    TS_CHECK(mix_type(&m, "blk.4.ffn_down.weight", 4864, 24) == TS_QTYPE_Q4_K, "layer 4 of 24");
    TS_CHECK(mix_type(&m, "blk.0.ffn_down.weight", 100, 24) == TS_QTYPE_F16, "not /32 -> f16");
    m.tied_embeddings = false;

    TS_REQUIRE(ts_qmix_parse("q5_k_s", &m) == TS_QMIX_OK, "q5_k_s");
    TS_CHECK(mix_type(&m, "blk.0.attn_v.weight", 896, 24) == TS_QTYPE_Q5_1, "q5_K -> q5_1");
    TS_REQUIRE(ts_qmix_parse("q3_k_m", &m) == TS_QMIX_OK, "q3_k_m");
    TS_CHECK(mix_type(&m, "blk.1.attn_v.weight", 4096, 32) == TS_QTYPE_Q5_K, "q3_k_m v<2");
    TS_CHECK(mix_type(&m, "blk.2.attn_v.weight", 4096, 32) == TS_QTYPE_Q4_K, "q3_k_m v");
    TS_CHECK(mix_type(&m, "blk.1.ffn_down.weight", 4096, 32) == TS_QTYPE_Q5_K, "q3_k_m down<2");
    TS_CHECK(mix_type(&m, "blk.9.ffn_down.weight", 4096, 32) == TS_QTYPE_Q4_K, "q3_k_m down");
    TS_CHECK(mix_type(&m, "blk.9.attn_output.weight", 4096, 32) == TS_QTYPE_Q4_K, "q3_k_m o");
    TS_CHECK(mix_type(&m, "blk.9.ffn_up.weight", 4096, 32) == TS_QTYPE_Q3_K, "q3_k_m up");
    TS_REQUIRE(ts_qmix_parse("q2_k", &m) == TS_QMIX_OK, "q2_k");
    TS_CHECK(mix_type(&m, "blk.9.attn_v.weight", 4096, 32) == TS_QTYPE_Q3_K, "q2_k v");
    m.n_gqa = 4;
    TS_CHECK(mix_type(&m, "blk.9.attn_v.weight", 4096, 32) == TS_QTYPE_Q4_K, "q2_k v gqa4");
    TS_CHECK(mix_type(&m, "blk.9.ffn_down.weight", 4096, 32) == TS_QTYPE_Q3_K, "q2_k down");
    TS_REQUIRE(ts_qmix_parse("q4_k_m", &m) == TS_QMIX_OK, "q4_k_m");
    m.n_expert = 8; /* 8-expert MoE rules */
    TS_CHECK(mix_type(&m, "blk.3.attn_v.weight", 4096, 32) == TS_QTYPE_Q8_0, "moe8 attn_v");
    TS_CHECK(mix_type(&m, "blk.3.attn_k.weight", 4096, 32) == TS_QTYPE_Q8_0, "moe8 attn_k");
    TS_CHECK(mix_type(&m, "blk.9.attn_output.weight", 4096, 32) == TS_QTYPE_Q5_K, "moe8 o");
    TS_CHECK(mix_type(&m, "blk.9.ffn_up_exps.weight", 4096, 32) == TS_QTYPE_Q4_K, "moe8 up");
    TS_REQUIRE(ts_qmix_parse("q4_0", &m) == TS_QMIX_OK, "q4_0");
    TS_CHECK(mix_type(&m, "output.weight", 4096, 32) == TS_QTYPE_Q6_K, "q4_0 output q6_K");
    TS_CHECK(mix_type(&m, "output.weight", 896, 32) == TS_QTYPE_Q8_0, "q4_0 output 896");
    TS_CHECK(mix_type(&m, "blk.0.ffn_down.weight", 896, 32) == TS_QTYPE_Q4_0, "q4_0 896");
    TS_REQUIRE(ts_qmix_parse("q8_0", &m) == TS_QMIX_OK, "q8_0");
    TS_CHECK(mix_type(&m, "output.weight", 4096, 32) == TS_QTYPE_Q8_0, "q8_0 output");
    TS_REQUIRE(ts_qmix_parse("f16", &m) == TS_QMIX_OK, "f16");
    TS_CHECK(mix_type(&m, "output.weight", 100, 32) == TS_QTYPE_F16, "f16 everywhere");
    TS_CHECK(ts_qmix_tensor_type(&m, "output_norm.weight", 1, ne1, 32) == TS_QTYPE_F32, "norm");
    for (int i = 0; ts_qmix_name_at(i); i++)
        TS_CHECK(ts_qmix_parse(ts_qmix_name_at(i), &m) == TS_QMIX_OK, "listed %s parses",
                 ts_qmix_name_at(i));
}

/* The CLI tests need the tessera binary, which `make check-arm`
 * (TS_TEST_SIMD_ONLY: simd/ + quant/ only) does not build. */
#ifndef TS_TEST_SIMD_ONLY
TS_TEST(test_quant_cli)
{
    char out[4096];
    const char *bin = ts_test_bin();
    int rc = ts_test_sh(out, sizeof(out), 30, "%s quantize a b", bin);
    TS_CHECK(rc == 2, "usage error exits 2, got %d: %s", rc, out);
    rc = ts_test_sh(out, sizeof(out), 30, "%s quantize in.gguf out.gguf q4_k_x", bin);
    TS_CHECK(rc == 2 && strstr(out, "q4_k_m"), "unknown type exits 2 and lists types: %d %s",
             rc, out);
    rc = ts_test_sh(out, sizeof(out), 30, "%s quantize in.gguf out.gguf iq2_xxs", bin);
    TS_CHECK(rc == 2, "iq2_xxs exits 2, got %d", rc);
    rc = ts_test_sh(out, sizeof(out), 30, "%s quantize %s/missing.gguf %s/o.gguf q8_0", bin,
                    ts_test_tmpdir(), ts_test_tmpdir());
    TS_CHECK(rc == 1 && strchr(out, '\n') == strrchr(out, '\n'), "missing input: exit 1, one line: %d %s",
             rc, out);

    const char *shared = ts_test_shared();
    if (!shared) {
        ts_test_skip("no ../shared: no model to quantize");
        return;
    }
    static const char *const types[] = {"q4_k_m", "q8_0"};
    for (size_t i = 0; i < 2; i++) {
        const char *dir = ts_test_tmpdir();
        rc = ts_test_sh(out, sizeof(out), 120,
                        "%s quantize %s/models/stories260K.gguf %s/a.gguf %s && "
                        "%s quantize %s/models/stories260K.gguf %s/b.gguf %s && "
                        "cmp %s/a.gguf %s/b.gguf",
                        bin, shared, dir, types[i], bin, shared, dir, types[i], dir, dir);
        TS_CHECK(rc == 0, "quantize %s twice: identical outputs expected (rc %d): %s", types[i],
                 rc, out);
    }
}

/* ../shared/models/synth-llama-<MIX>.gguf were made by llama.cpp's
 * llama-quantize (no imatrix) from synth-llama-f32.gguf: our whole output
 * file (metadata order, tensor order, types, bytes) must equal theirs. */
TS_TEST(test_quant_matches_llama_quantize)
{
    const char *shared = ts_test_shared();
    if (!shared) {
        ts_test_skip("no ../shared");
        return;
    }
    static const char *const mixes[] = {
        "Q2_K", "Q3_K_M", "Q4_0", "Q4_1", "Q4_K_M", "Q5_0",
        "Q5_1", "Q5_K_M", "Q6_K", "Q8_0", "F16", "BF16",
    };
    char out[2048];
    const char *dir = ts_test_tmpdir();
    int n_checked = 0;
    for (size_t i = 0; i < sizeof(mixes) / sizeof(mixes[0]); i++) {
        int rc = ts_test_sh(NULL, 0, 10, "test -f %s/models/synth-llama-f32.gguf && test -f "
                            "%s/models/synth-llama-%s.gguf", shared, shared, mixes[i]);
        if (rc != 0)
            continue;
        rc = ts_test_sh(out, sizeof(out), 120,
                        "%s quantize %s/models/synth-llama-f32.gguf %s/m.gguf %s && "
                        "cmp %s/m.gguf %s/models/synth-llama-%s.gguf",
                        ts_test_bin(), shared, dir, mixes[i], dir, shared, mixes[i]);
        TS_CHECK(rc == 0, "%s: output differs from llama-quantize's (rc %d): %s", mixes[i], rc,
                 out);
        n_checked++;
    }
    if (n_checked == 0)
        ts_test_skip("no synth-llama models in ../shared");
}
#endif /* TS_TEST_SIMD_ONLY */
