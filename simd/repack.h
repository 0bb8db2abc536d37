/*
 * simd/repack.h: the load-time interleaved weight layouts (TS_QTYPE_*_R16).
 *
 * Owns: the byte layout of each repacked type, the repack (plain rows -> row
 * groups) and its exact inverse per block, used by the scalar twins and the
 * tests. Does not own: when to repack (core/matmul.c decides) or kernels.
 *
 * A matrix of R rows is stored as ceil(R / 16) groups of 16 rows (missing rows
 * zero). Group g starts at g * 16 * row_stride; row_stride (bytes) is the
 * row's share, so a tile whose row0 is a multiple of 16 starts at
 * w + row0 * row_stride, as for plain rows. Inside a group: the quant region
 * (nb blocks of QB bytes) then the metadata region (nb blocks of MB bytes).
 * A "step" is 4 consecutive bytes of one row: a zmm holds one step of all 16
 * rows, so one vpdpbusd with a broadcast activation dword yields 16 row dots.
 *   Q8_0_R16 QB 512: step s (0..7) of row r at 64s + 4r: qs[4s..4s+3] ^ 0x80
 *            (u8 = q + 128); MB 32: d[r] f16.
 *   Q4_0_R16 QB 256: step s (0..3) at 64s + 4r: qs[4s..4s+3] (low nibbles:
 *            elements 4s.., high: 16 + 4s..); MB 32: d[r] f16.
 *   Q4_K_R16 QB 2048: chunk c (0..3), step s (0..7) at 512c + 64s + 4r:
 *            qs[32c + 4s..] (low nibbles: sub-block 2c, high: 2c + 1);
 *            MB 320: sc[j][r] u8 (128), mn[i][r][2] u8 = (min 2i, min 2i+1)
 *            (128), d[r] f16 (32), dmin[r] f16 (32).
 *   Q6_K_R16 QB 3072 (same bytes per row as plain Q6_K: 210 per block):
 *            u = q + 32 (0..63, the stored 6-bit value) per element e.
 *            Low nibbles (2048): chunk c (0..3), step s (0..7) at
 *            512c + 64s + 4r: byte i = lo4(u[64c + 4s + i]) |
 *            lo4(u[64c + 32 + 4s + i]) << 4 (as Q4_K: 32-sub-block j = 2c + nibble).
 *            High 2 bits (1024): half h (0..1), step s (0..7) at
 *            2048 + 512h + 64s + 4r: byte i bits 2m..2m+1 = hi2(u[128h + 32m + 4s + i])
 *            (m = 0..3: 32-sub-block j = 4h + m).
 *            MB 288: sc[g][r] i8 as pairs: (sc 2i, sc 2i+1) of row r at 32i + 2r
 *            (256), d[r] f16 (32).
 *   Q5_0_R16 QB 320 (22 bytes per row and block, as plain Q5_0): low nibbles
 *            as Q4_0_R16 (256: step s at 64s + 4r: qs[4s..4s+3]); high bits
 *            (64) at 256 + 4r: byte i bit 2s = hb(4s + i), bit 2s + 1 =
 *            hb(16 + 4s + i) (s = 0..3; hb(e) = bit e of qh); MB 32: d[r] f16.
 *            Stored value u = nibble | hb << 4 (0..31), q = u - 16.
 *   Q5_K_R16 QB 2560: low nibbles as Q4_K_R16 (2048: chunk c, step s at
 *            512c + 64s + 4r: qs[32c + 4s..]); high bits (512): step s (0..7)
 *            at 2048 + 64s + 4r: qh[4s..4s+3] as they are (bit j of qh[l] is
 *            the 5th bit of element 32j + l, sub-block j); MB 320 as Q4_K_R16.
 *            Value q = nibble | bit << 4 (0..31).
 *   Q3_K_R16 QB 1536 (114 bytes per row and block, plain 110): low 2 bits
 *            (1024): half h (0..1), step s at 512h + 64s + 4r: qs[32h + 4s..]
 *            as they are (bits 2m..2m+1: 32-sub-block 4h + m); high bits
 *            (512): step s at 1024 + 64s + 4r: hmask[4s..] as they are (bit
 *            j: sub-block j). Stored u = low2 | hbit << 2 (0..7), q = u - 4.
 *            MB 288 as Q6_K_R16: the 16 scales (6-bit stored - 32) as int8
 *            pairs at 32i + 2r, d[r] f16 at 256.
 *   Q2_K_R16 QB 1024 (84 bytes per row and block, as plain): the 2-bit
 *            values as Q3_K_R16's low region (qs[32h + 4s..] at 512h + 64s +
 *            4r); MB 320: scales[g] of row r at 16g + r (low nibble the
 *            scale, high nibble the min), d[r] f16 at 256, dmin[r] at 288.
 *   Q4_1_R16 / Q5_1_R16: quant bytes as Q4_0_R16 / Q5_0_R16 (QB 256 / 320);
 *            MB 64: d[r] f16 at 2r, m[r] f16 at 32 + 2r. Values q = 0..15 /
 *            0..31 (no offset: the min is m).
 */
#ifndef TS_SIMD_REPACK_H
#define TS_SIMD_REPACK_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

#define TS_R16_ROWS 16

/* The _R16 id for a plain qtype, or 0 when it has no repacked layout. */
uint32_t ts_repack_type(uint32_t qtype);
/* The plain qtype of an _R16 id (or qtype itself). */
uint32_t ts_repack_base(uint32_t qtype);
/* Bytes per row share (k a multiple of the block) and for a whole matrix. */
size_t ts_repack_row_stride(uint32_t rtype, int64_t k);
size_t ts_repack_bytes(uint32_t rtype, int64_t rows, int64_t k);
/* Repacks rows plain rows (w_stride apart, k elements) into out
 * (ts_repack_bytes). */
void ts_repack_rows(uint32_t rtype, const void *w, size_t w_stride, int64_t rows, int64_t k,
                    void *out);
/* Copies block blk of row `row` back into its plain block format at out.
 * w: the repacked matrix (row 0), row_stride as above. */
void ts_repack_get_block(uint32_t rtype, const void *w, size_t row_stride, int64_t k,
                         int64_t row, int64_t blk, void *out);

/* Scalar twins of the repacked GEMM slots (registered by the scalar level). */
#define TS_R16_TWIN(name)                                                                      \
    void name(int64_t k, int64_t n_rows, int64_t n_tok, const void *restrict w, size_t w_stride, \
              const void *restrict a, size_t a_stride, float *restrict y, size_t y_stride)
TS_R16_TWIN(ts_gemm_q8_0_r16_q8_0_scalar);
TS_R16_TWIN(ts_gemm_q4_0_r16_q8_0_scalar);
TS_R16_TWIN(ts_gemm_q4_k_r16_q8_k_scalar);
TS_R16_TWIN(ts_gemm_q5_k_r16_q8_k_scalar);
TS_R16_TWIN(ts_gemm_q3_k_r16_q8_k_scalar);
TS_R16_TWIN(ts_gemm_q2_k_r16_q8_k_scalar);
TS_R16_TWIN(ts_gemm_q4_1_r16_q8_1_scalar);
TS_R16_TWIN(ts_gemm_q5_1_r16_q8_1_scalar);
TS_R16_TWIN(ts_gemm_q6_k_r16_q8_k_scalar);
TS_R16_TWIN(ts_gemm_q5_0_r16_q8_0_scalar);

#endif
