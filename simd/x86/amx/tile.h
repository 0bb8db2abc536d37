/*
 * simd/x86/amx/tile.h: the AMX tile operations the amx level uses, as macros,
 * with a plain-C emulation for hosts without AMX.
 *
 * Owns: the tile palette of each kernel (tile_cfg), switching configs per
 * thread, and TILE_* wrappers. With TS_AMX_EMULATE defined the wrappers run
 * on per-thread byte arrays with the same semantics (rows x colsb from the
 * loaded config; TDPBSUD: C[m][n] += sum over 4-byte groups of s8 A x u8 B),
 * so tests/amx_emul.c can compile the amx kernels on an AVX-512 host without
 * AMX (the CI box, AMD Zen 4) and check them against the scalar twins there;
 * the real tiles are then only confirmed on an AMX host.
 *
 * The config is static storage, not a local: GCC 12's _tile_loadconfig tells
 * the compiler it reads only 8 bytes, so a local config's other stores can be
 * dropped (llama.cpp's AMX path crashes on exactly that). _tile_loadd has no
 * memory operand either, hence TILE_BARRIER before tile loads of our stores.
 */
#ifndef TS_SIMD_AMX_TILE_H
#define TS_SIMD_AMX_TILE_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    uint8_t palette, start_row, rsvd[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} ts_tile_cfg;

#define TILE_BARRIER() __asm__ volatile("" ::: "memory")

#ifndef TS_AMX_EMULATE

/* The palette this thread loaded last: one variable for every amx source
 * file (defined in register.c). A copy per file once let the peak probe's
 * palette replace the GEMMs' while their file still believed its own was
 * loaded: the next GEMM used an unconfigured tile and died with SIGILL. */
extern _Thread_local const ts_tile_cfg *ts_tile_cfg_cur;

/* Loads cfg as this thread's palette unless it is already the current one. */
static inline void tile_config(const ts_tile_cfg *cfg)
{
    if (ts_tile_cfg_cur != cfg) {
        _tile_loadconfig(cfg);
        ts_tile_cfg_cur = cfg;
    }
}

#define TILE_ZERO(t) _tile_zero(t)
#define TILE_LOAD(t, p, stride) _tile_loadd(t, p, stride)
#define TILE_STORE(t, p, stride) _tile_stored(t, p, stride)
#define TILE_DPBSUD(c, a, b) _tile_dpbsud(c, a, b)
#define TILE_DPBSSD(c, a, b) _tile_dpbssd(c, a, b)

#else /* TS_AMX_EMULATE */

static _Thread_local const ts_tile_cfg *t_tile_cfg;
static _Thread_local uint8_t t_tile[8][16][64];

static inline void tile_config(const ts_tile_cfg *cfg)
{
    t_tile_cfg = cfg;
    memset(t_tile, 0, sizeof t_tile);
}

static inline void emu_tile_zero(int t)
{
    memset(t_tile[t], 0, sizeof t_tile[t]);
}

static inline void emu_tile_load(int t, const void *p, size_t stride)
{
    for (int r = 0; r < t_tile_cfg->rows[t]; r++)
        memcpy(t_tile[t][r], (const char *)p + (size_t)r * stride, t_tile_cfg->colsb[t]);
}

static inline void emu_tile_store(int t, void *p, size_t stride)
{
    for (int r = 0; r < t_tile_cfg->rows[t]; r++)
        memcpy((char *)p + (size_t)r * stride, t_tile[t][r], t_tile_cfg->colsb[t]);
}

/* C (M x N int32) += A (M x K s8) . B (K/4 x N*4, VNNI layout), B bytes u8
 * (TDPBSUD) or s8 (TDPBSSD). */
static inline void emu_tile_dp(int c, int a, int b, int b_signed)
{
    const int m_rows = t_tile_cfg->rows[c], n_cols = t_tile_cfg->colsb[c] / 4;
    const int k4 = t_tile_cfg->colsb[a] / 4;
    for (int m = 0; m < m_rows; m++)
        for (int n = 0; n < n_cols; n++) {
            int32_t acc;
            memcpy(&acc, &t_tile[c][m][4 * n], 4);
            for (int kk = 0; kk < k4; kk++)
                for (int i = 0; i < 4; i++)
                    acc += (int32_t)(int8_t)t_tile[a][m][4 * kk + i] *
                           (b_signed ? (int32_t)(int8_t)t_tile[b][kk][4 * n + i]
                                     : (int32_t)t_tile[b][kk][4 * n + i]);
            memcpy(&t_tile[c][m][4 * n], &acc, 4);
        }
}

#define TILE_ZERO(t) emu_tile_zero(t)
#define TILE_LOAD(t, p, stride) emu_tile_load(t, p, stride)
#define TILE_STORE(t, p, stride) emu_tile_store(t, p, stride)
#define TILE_DPBSUD(c, a, b) emu_tile_dp(c, a, b, 0)
#define TILE_DPBSSD(c, a, b) emu_tile_dp(c, a, b, 1)

#endif /* TS_AMX_EMULATE */

#endif
