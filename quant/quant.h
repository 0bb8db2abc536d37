/*
 * quant/quant.h: GGUF/ggml block formats, their traits, and the scalar
 * quantize/dequantize reference for each.
 *
 * Owns: the bit layout of every supported block type (each struct carries a
 * size static-assert so it stays bit-compatible with ggml's files), the type
 * id numbering (ggml's enum values, as stored in GGUF tensor infos), and the
 * per-type traits table (block elements, block bytes, name).
 * Does not own: any SIMD, threading or I/O. quant/ depends on libc only.
 *
 * Invariants: quantizers round exactly as llama.cpp's reference quantizers
 * (quantize_row_*_ref) do, so files we write are byte-identical to theirs;
 * dequantizers are the oracle every kernel is tested against.
 */
#ifndef TS_QUANT_H
#define TS_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Type ids are ggml's (ggml.h enum ggml_type); GGUF files store them. */
typedef enum {
    TS_QTYPE_F32 = 0,
    TS_QTYPE_F16 = 1,
    TS_QTYPE_Q4_0 = 2,
    TS_QTYPE_Q4_1 = 3,
    TS_QTYPE_Q5_0 = 6,
    TS_QTYPE_Q5_1 = 7,
    TS_QTYPE_Q8_0 = 8,
    TS_QTYPE_Q8_1 = 9,
    TS_QTYPE_Q2_K = 10,
    TS_QTYPE_Q3_K = 11,
    TS_QTYPE_Q4_K = 12,
    TS_QTYPE_Q5_K = 13,
    TS_QTYPE_Q6_K = 14,
    TS_QTYPE_Q8_K = 15,
    TS_QTYPE_IQ2_XXS = 16,
    TS_QTYPE_BF16 = 30,
    TS_QTYPE_COUNT = 43 /* one past ggml's largest id known when written */
} ts_qtype;

typedef uint16_t ts_f16;  /* IEEE binary16 bits */
typedef uint16_t ts_bf16; /* bfloat16 bits */

#define TS_QK4_0 32
#define TS_QK4_1 32
#define TS_QK5_0 32
#define TS_QK5_1 32
#define TS_QK8_0 32
#define TS_QK8_1 32
#define TS_QK_K 256
#define TS_K_SCALE_SIZE 12

typedef struct { ts_f16 d; uint8_t qs[TS_QK4_0 / 2]; } ts_block_q4_0;
typedef struct { ts_f16 d, m; uint8_t qs[TS_QK4_1 / 2]; } ts_block_q4_1;
typedef struct { ts_f16 d; uint8_t qh[4]; uint8_t qs[TS_QK5_0 / 2]; } ts_block_q5_0;
typedef struct { ts_f16 d, m; uint8_t qh[4]; uint8_t qs[TS_QK5_1 / 2]; } ts_block_q5_1;
typedef struct { ts_f16 d; int8_t qs[TS_QK8_0]; } ts_block_q8_0;
typedef struct { ts_f16 d, s; int8_t qs[TS_QK8_1]; } ts_block_q8_1; /* s = d * sum(qs) */
typedef struct {
    uint8_t scales[TS_QK_K / 16]; /* 4-bit scale | 4-bit min per 16 */
    uint8_t qs[TS_QK_K / 4];
    ts_f16 d, dmin;
} ts_block_q2_k;
typedef struct {
    uint8_t hmask[TS_QK_K / 8];
    uint8_t qs[TS_QK_K / 4];
    uint8_t scales[12]; /* 16 6-bit scales */
    ts_f16 d;
} ts_block_q3_k;
typedef struct {
    ts_f16 d, dmin;
    uint8_t scales[TS_K_SCALE_SIZE]; /* 8 6-bit scales + 8 6-bit mins */
    uint8_t qs[TS_QK_K / 2];
} ts_block_q4_k;
typedef struct {
    ts_f16 d, dmin;
    uint8_t scales[TS_K_SCALE_SIZE];
    uint8_t qh[TS_QK_K / 8];
    uint8_t qs[TS_QK_K / 2];
} ts_block_q5_k;
typedef struct {
    uint8_t ql[TS_QK_K / 2];
    uint8_t qh[TS_QK_K / 4];
    int8_t scales[TS_QK_K / 16];
    ts_f16 d;
} ts_block_q6_k;
typedef struct {
    float d;
    int8_t qs[TS_QK_K];
    int16_t bsums[TS_QK_K / 16]; /* sum of qs in each group of 16 */
} ts_block_q8_k;
typedef struct {
    ts_f16 d;
    uint16_t qs[TS_QK_K / 8];
} ts_block_iq2_xxs;

_Static_assert(sizeof(ts_block_q4_0) == 18, "q4_0 block size");
_Static_assert(sizeof(ts_block_q4_1) == 20, "q4_1 block size");
_Static_assert(sizeof(ts_block_q5_0) == 22, "q5_0 block size");
_Static_assert(sizeof(ts_block_q5_1) == 24, "q5_1 block size");
_Static_assert(sizeof(ts_block_q8_0) == 34, "q8_0 block size");
_Static_assert(sizeof(ts_block_q8_1) == 36, "q8_1 block size");
_Static_assert(sizeof(ts_block_q2_k) == 84, "q2_k block size");
_Static_assert(sizeof(ts_block_q3_k) == 110, "q3_k block size");
_Static_assert(sizeof(ts_block_q4_k) == 144, "q4_k block size");
_Static_assert(sizeof(ts_block_q5_k) == 176, "q5_k block size");
_Static_assert(sizeof(ts_block_q6_k) == 210, "q6_k block size");
_Static_assert(sizeof(ts_block_q8_k) == 292, "q8_k block size");
_Static_assert(sizeof(ts_block_iq2_xxs) == 66, "iq2_xxs block size");

/*
 * Non-finite input (the same rule in every quantizer, quant/ and simd/ alike):
 * a block whose input holds any NaN or +-Inf is written as its scale d set to
 * the canonical quiet NaN below and every other byte zero (quants, mins, the
 * Q8_1 s, the Q8_K bsums). It dequantizes to all NaN and every dot product
 * with it is NaN, so a NaN reaches the outputs that depend on it and no float
 * -> int conversion ever sees a non-finite value. One fixed bit pattern, so
 * the bytes never depend on the ISA or on which NaN came first. A block whose
 * scale is too small for its reciprocal to be a float (values below about
 * 1e-37, where ggml's reference converts Inf or NaN to int) gets all-zero
 * quants, as if its scale were 0 (its f16 scale is 0 anyway; Q8_K's f32 one
 * is stored as 0 too).
 */
#define TS_F16_NAN ((ts_f16)0x7e00u)  /* canonical quiet NaN, binary16 */
#define TS_F32_NAN_BITS 0x7fc00000u  /* canonical quiet NaN, binary32 */
/* Writes that block over b, a block struct with an f16 d (needs <string.h>). */
#define TS_NAN_BLOCK(b)                                                                        \
    do {                                                                                       \
        memset(&(b), 0, sizeof(b));                                                            \
        (b).d = TS_F16_NAN;                                                                    \
    } while (0)

/* Traits of one type id. blck == 0 marks an id that is unknown to ggml
 * (a hole in its enum); a known type has blck and size set even when
 * Tessera cannot compute with it (supported == false), so the GGUF reader
 * can still validate and print such tensors. */
typedef struct {
    const char *name;  /* ggml's name, e.g. "q4_K" */
    uint32_t blck;     /* elements per block */
    uint32_t size;     /* bytes per block */
    bool supported;    /* has scalar dequantize here */
    bool can_quantize; /* has a scalar quantizer here */
} ts_qtraits;

const ts_qtraits *ts_qtype_traits(uint32_t type); /* NULL when type is out of range or a hole */
const char *ts_qtype_name(uint32_t type);         /* "?" when unknown */
/* Parses a type name, case-insensitive ("q4_k", "Q8_0", "f16", "bf16"); -1 if unknown. */
int ts_qtype_from_name(const char *name);
/* Bytes of a row of n elements; 0 if n is not a multiple of the block size. */
size_t ts_qtype_row_bytes(uint32_t type, uint64_t n);

/* Half-precision conversions (bit-exact with ggml's scalar ones: round to nearest even). */
float ts_f16_to_f32(ts_f16 h);
ts_f16 ts_f32_to_f16(float f);
float ts_bf16_to_f32(ts_bf16 h);
ts_bf16 ts_f32_to_bf16(float f);

/* Scalar dequantize n elements (a multiple of the type's block) from src into dst.
 * Works for every type with supported == true, including F32/F16/BF16. */
void ts_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n);
/* Scalar quantize n elements (multiple of block) from src into dst, matching
 * llama.cpp's quantize_row_*_ref bit for bit. Types with can_quantize only.
 * Q8_K is supported here too (activations). Where llama.cpp's result is
 * undefined, ours is defined (see "Non-finite input" above): a block holding
 * NaN or +-Inf, and a block so tiny that its scale's reciprocal overflows. */
void ts_quantize_row(uint32_t type, const float *src, void *dst, int64_t n);
/* Index of the first element of x[0 .. n) that is NaN or +-Inf; -1 if none. */
int64_t ts_first_nonfinite(const float *x, int64_t n);

/* Per-type entry points (the same functions the generic ones dispatch to). */
void ts_dequant_q4_0_scalar(const ts_block_q4_0 *x, float *y, int64_t n);
void ts_dequant_q4_1_scalar(const ts_block_q4_1 *x, float *y, int64_t n);
void ts_dequant_q5_0_scalar(const ts_block_q5_0 *x, float *y, int64_t n);
void ts_dequant_q5_1_scalar(const ts_block_q5_1 *x, float *y, int64_t n);
void ts_dequant_q8_0_scalar(const ts_block_q8_0 *x, float *y, int64_t n);
void ts_dequant_q2_k_scalar(const ts_block_q2_k *x, float *y, int64_t n);
void ts_dequant_q3_k_scalar(const ts_block_q3_k *x, float *y, int64_t n);
void ts_dequant_q4_k_scalar(const ts_block_q4_k *x, float *y, int64_t n);
void ts_dequant_q5_k_scalar(const ts_block_q5_k *x, float *y, int64_t n);
void ts_dequant_q6_k_scalar(const ts_block_q6_k *x, float *y, int64_t n);
void ts_dequant_q8_k_scalar(const ts_block_q8_k *x, float *y, int64_t n);
void ts_dequant_iq2_xxs_scalar(const ts_block_iq2_xxs *x, float *y, int64_t n);

void ts_quant_q4_0_scalar(const float *x, ts_block_q4_0 *y, int64_t n);
void ts_quant_q4_1_scalar(const float *x, ts_block_q4_1 *y, int64_t n);
void ts_quant_q5_0_scalar(const float *x, ts_block_q5_0 *y, int64_t n);
void ts_quant_q5_1_scalar(const float *x, ts_block_q5_1 *y, int64_t n);
void ts_quant_q8_0_scalar(const float *x, ts_block_q8_0 *y, int64_t n);
void ts_quant_q8_1_scalar(const float *x, ts_block_q8_1 *y, int64_t n);
void ts_quant_q2_k_scalar(const float *x, ts_block_q2_k *y, int64_t n);
void ts_quant_q3_k_scalar(const float *x, ts_block_q3_k *y, int64_t n);
void ts_quant_q4_k_scalar(const float *x, ts_block_q4_k *y, int64_t n);
void ts_quant_q5_k_scalar(const float *x, ts_block_q5_k *y, int64_t n);
void ts_quant_q6_k_scalar(const float *x, ts_block_q6_k *y, int64_t n);
void ts_quant_q8_k_scalar(const float *x, ts_block_q8_k *y, int64_t n);

#endif
