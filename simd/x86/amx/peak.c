/*
 * simd/x86/amx/peak.c: the amx level's int8 peak probe: TDPBSUD (16 x 16
 * int32 outputs, K = 64: 16384 int8 multiply-adds each) into 4 independent C
 * tiles from one A and one B tile, no memory traffic in the loop: the tile
 * unit's ceiling, which the amx GEMMs' expansion, tile loads and float steps
 * keep them below.
 */
#include <immintrin.h>

#include "../../kernels.h"
#include "tile.h"

uint64_t ts_peak_int8_amx(uint64_t n_iter);

static const ts_tile_cfg g_cfg_peak __attribute__((aligned(64))) = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16}};

uint64_t ts_peak_int8_amx(uint64_t n_iter)
{
    static const int8_t src[16 * 64] __attribute__((aligned(64))) = {1, 2, 3, 4};
    tile_config(&g_cfg_peak);
    TILE_ZERO(0);
    TILE_ZERO(1);
    TILE_ZERO(2);
    TILE_ZERO(3);
    TILE_LOAD(4, src, 64);
    TILE_LOAD(5, src, 64);
    for (uint64_t i = 0; i < n_iter; i++) {
        TILE_DPBSUD(0, 4, 5);
        TILE_DPBSUD(1, 4, 5);
        TILE_DPBSUD(2, 4, 5);
        TILE_DPBSUD(3, 4, 5);
    }
    int32_t out[16 * 16] __attribute__((aligned(64)));
    TILE_STORE(0, out, 64);
    TILE_BARRIER();
    volatile int32_t sink = out[0];
    (void)sink;
    return n_iter * 4 * 16 * 16 * 64 * 2;
}
