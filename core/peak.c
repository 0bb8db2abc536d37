/*
 * core/peak.c: the machine's int8 ceiling for bench reports. Runs the kernel
 * level's peak probe (simd/: independent chains of the dot-product
 * instruction the GEMMs use) on the calling thread for about 50 ms and turns
 * the count into GOP/s per core. Bench reports achieved GOP/s against
 * threads x this number. Not used on any inference path.
 */
#include <time.h>

#include "tessera.h"
#include "../simd/kernels.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double ts_peak_int8_gops(const char **probe)
{
    ts_kernels k;
    ts_kernels_init(&k, ts_isa_from_env());
    if (probe)
        *probe = k.peak_name;
    /* Grow one run to about 10 ms, then keep the best of 5 such runs: the
     * ceiling, not the average, is what a peak means. */
    uint64_t iters = 1024;
    for (;;) {
        double t0 = now_s();
        k.peak_int8(iters);
        if (now_s() - t0 >= 0.01 || iters >= (1ull << 40))
            break;
        iters *= 2;
    }
    double best = 0.0;
    for (int r = 0; r < 5; r++) {
        double t0 = now_s();
        uint64_t ops = k.peak_int8(iters);
        double g = (double)ops / (now_s() - t0) / 1e9;
        best = g > best ? g : best;
    }
    return best;
}
