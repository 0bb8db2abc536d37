/*
 * simd/kernels.h: kernel signatures, the ISA levels and the ts_kernels table.
 *
 * Owns: the function-pointer table that core/ reads (one activation quantizer
 * per activation format, one GEMM tile kernel per weight type), the ISA enum,
 * detection and the TESSERA_ISA cap. Does not own: threads, allocation, I/O.
 *
 * Registration (STYLE §3): ts_kernels_init() lets the scalar level fill every
 * slot, then each enabled level overwrites the slots it implements, then a
 * completeness check aborts on a NULL slot. The table is filled once before any
 * worker starts and is read-only afterwards (callers keep a const pointer).
 *
 * Canonical reduction order (the determinism invariant): for every weight
 * type and every level, the value of output (tok, row) is produced by
 *   acc = 0; for each block b in K order:
 *       acc = fmaf(dw_b * da_b, (float)isum_b, acc)          (all types)
 *       acc = fmaf(term2 scale, (float)term2 integer, acc)  (types with mins)
 * where isum_b is the exact int32 dot of the block (sub-block integer scales
 * applied in the integer domain). Integer sums are exact in any order, so every
 * register blocking (MR, NY, tails) gives identical bits; the x86 levels even
 * match the scalar level bit for bit. Float weights (F32/F16/BF16; weights
 * widened to f32 exactly) use 16 lane sums: K zero-padded to a multiple of 16,
 *   s[j] = fmaf(w[k0 + j], x[k0 + j], s[j])   for each 16-step k0, lane j
 * then the fixed halving tree s[j] += s[j+8], += s[j+4], += s[j+2], y = s0 + s1
 * (simd/scalar/gemm_f.c), i.e. one zmm / two ymm accumulators and the usual
 * hsum: every level gives the scalar level's bits.
 */
#ifndef TS_SIMD_KERNELS_H
#define TS_SIMD_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "../quant/quant.h"
#include "ops.h"

/* ISA levels. x86 and arm are separate ladders; a cap compares within one. */
typedef enum {
    TS_ISA_SCALAR = 0,
    TS_ISA_AVX2 = 1,     /* AVX2 + FMA + F16C (+BMI2) */
    TS_ISA_AVX512 = 2,   /* AVX-512 F+BW+VL+DQ+VNNI */
    TS_ISA_AMX = 3,      /* avx512 + AMX-TILE/INT8/BF16, OS-enabled (XCR0) and
                          * permitted (arch_prctl XTILEDATA); "amx" */
    TS_ISA_NEON = 16,    /* aarch64 Advanced SIMD (ARMv8-A) */
    TS_ISA_NEON_DOT = 17 /* + dot product (ARMv8.2-A dotprod) */
} ts_isa;

/* Activation formats the weight types pair with (as llama.cpp pairs them). */
typedef enum {
    TS_ACT_F32 = 0, /* f32 rows used as they are (F32/F16/BF16 weights) */
    TS_ACT_Q8_0,    /* ts_block_q8_0 rows: Q4_0 Q5_0 Q8_0 */
    TS_ACT_Q8_1,    /* ts_block_q8_1 rows: Q4_1 Q5_1 */
    TS_ACT_Q8_K,    /* ts_block_q8_k rows: Q2_K..Q6_K */
    TS_ACT_COUNT
} ts_act;

/* The quant type of an activation format's rows (TS_QTYPE_F32 for TS_ACT_F32):
 * ts_qtype_row_bytes / ts_qtype_traits of it size the rows. */
static inline uint32_t ts_act_qtype(int act)
{
    static const uint32_t q[TS_ACT_COUNT] = {
        [TS_ACT_F32] = TS_QTYPE_F32, [TS_ACT_Q8_0] = TS_QTYPE_Q8_0,
        [TS_ACT_Q8_1] = TS_QTYPE_Q8_1, [TS_ACT_Q8_K] = TS_QTYPE_Q8_K};
    return q[act];
}

/* Quantizes one activation row: k floats (a multiple of the format's block)
 * into k / block blocks at y. Bit-identical to llama.cpp's quantize_row_*_ref
 * on every level wherever that is defined; a block holding NaN or +-Inf gets
 * d = canonical NaN and zeros, a block too small for 1/scale zero quants
 * (quant/quant.h), identically on every level. No alignment assumed. */
typedef void (*ts_quant_act_fn)(const float *restrict x, void *restrict y, int64_t k);

/* GEMM tile: y[tok][row] = sum_k W[row][k] * A[tok][k] for row < n_rows and
 * tok < n_tok.
 *   w: n_rows weight rows, w_stride bytes apart, each k elements of the type.
 *   a: n_tok activation rows (the type's activation format), a_stride apart.
 *   y: y + tok * y_stride bytes is the output row of token tok; n_rows floats
 *      are written there (rows contiguous), nothing else.
 * k is a multiple of the weight block (checked at plan time). Any n_rows >= 1,
 * n_tok >= 1: kernels block registers internally (MR x NY) and handle tails,
 * all in the canonical order above, so results never depend on the tiling. */
typedef void (*ts_gemm_fn)(int64_t k, int64_t n_rows, int64_t n_tok, const void *restrict w,
                           size_t w_stride, const void *restrict a, size_t a_stride,
                           float *restrict y, size_t y_stride);

typedef struct {
    ts_gemm_fn fn;  /* NULL: no kernel for this weight type */
    uint8_t act;    /* ts_act the fn reads */
    uint8_t mr;     /* rows per register block (tiles use multiples of it) */
    uint8_t ny;     /* tokens per register block */
    const char *name; /* e.g. "ts_gemm_q4_0_q8_0_avx2" */
} ts_gemm_slot;

/* Load-time repacked weight layouts (simd/repack.h): ids above ggml's, so a
 * ts_qview can carry one. 16 rows interleaved per group; same values and the
 * same canonical per-output order as the plain type, so the same bits. */
enum {
    TS_QTYPE_Q8_0_R16 = TS_QTYPE_COUNT,
    TS_QTYPE_Q4_0_R16,
    TS_QTYPE_Q4_K_R16,
    TS_QTYPE_Q6_K_R16,
    TS_QTYPE_Q5_0_R16,
    TS_QTYPE_Q5_K_R16,
    TS_QTYPE_Q3_K_R16,
    TS_QTYPE_Q2_K_R16,
    TS_QTYPE_Q4_1_R16,
    TS_QTYPE_Q5_1_R16,
    TS_GEMM_SLOTS /* size of ts_kernels.gemm */
};

typedef struct {
    ts_isa isa;                               /* level the table was built for */
    ts_quant_act_fn quant_act[TS_ACT_COUNT];  /* [TS_ACT_F32] stays NULL */
    const char *quant_act_name[TS_ACT_COUNT];
    ts_gemm_slot gemm[TS_GEMM_SLOTS];           /* by qtype, then the _R16 ids */
    /* Tokens per tile a slot's kernel wants at most; 0: the engine's default
     * (the amx K-quant kernels amortize a per-tile weight expansion). */
    uint16_t gemm_tok_block[TS_GEMM_SLOTS];
    ts_ops ops;                               /* attention, per-token ops (ops.h) */
    /* Peak probe: n_iter iterations of an unrolled block of independent int8
     * dot-product instructions, the ones this level's GEMMs are built on.
     * Returns the int8 operations done (a multiply-add counts 2), so the
     * caller's timing gives this level's int8 GOP/s ceiling per core. */
    uint64_t (*peak_int8)(uint64_t n_iter);
    const char *peak_name;
    /* The same for f32 fused multiply-adds (the attention kernels' plain-type
     * inner loop; scalar: plain multiply-adds): returns the flops done. */
    uint64_t (*peak_f32)(uint64_t n_iter);
    const char *peak_f32_name;
} ts_kernels;

/* Fills k for levels <= cap (cap is clamped to what the host supports). */
void ts_kernels_init(ts_kernels *k, ts_isa cap);
/* Highest level this CPU (and OS state) supports. */
ts_isa ts_isa_detect(void);
/* ts_isa_detect() capped by TESSERA_ISA=scalar|avx2|avx512|amx|neon|neon_dot. */
ts_isa ts_isa_from_env(void);
const char *ts_isa_name(ts_isa isa);
/* Parses a level name; -1 if unknown. */
int ts_isa_from_name(const char *name);
/* Weight types that must have a kernel at every level (the completeness set). */
int ts_kernels_required(uint32_t qtype);
/* The repacked (_R16) layout of qtype that table k has a kernel of its own
 * for, or 0: the scalar twin of a repacked layout is an oracle, slower than
 * the plain scalar kernel, so only levels that overwrite the slot repack. */
uint32_t ts_kernels_repack_type(const ts_kernels *k, uint32_t qtype);

/* Per-level registration (each defined in its ISA dir's register.c). */
void ts_simd_register_scalar(ts_kernels *k);
void ts_simd_register_avx2(ts_kernels *k);
void ts_simd_register_avx512(ts_kernels *k);
void ts_simd_register_amx(ts_kernels *k);      /* x86 builds only */
void ts_simd_register_neon(ts_kernels *k);     /* aarch64 builds only */
void ts_simd_register_neon_dot(ts_kernels *k); /* aarch64 builds only */

#endif
