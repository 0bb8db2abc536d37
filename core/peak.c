/*
 * core/peak.c: the machine's int8 ceiling for bench reports. Runs the kernel
 * level's peak probe (simd/: independent chains of the dot-product
 * instruction the GEMMs use) on the calling thread for about 50 ms and turns
 * the count into GOP/s per core. Bench reports achieved GOP/s against
 * threads x this number. ts_peak_probe (core/peak.h) also probes a capped
 * level and the f32 FMA chains (the attention bench). Not used on any
 * inference path.
 */
#include <time.h>

#include "peak.h"
#include "tessera.h"
#include "../simd/kernels.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Best of 5 runs of about 10 ms of a probe, in G per second. */
static double probe_rate(uint64_t (*fn)(uint64_t))
{
    /* Grow one run to about 10 ms, then keep the best of 5 such runs: the
     * ceiling, not the average, is what a peak means. */
    uint64_t iters = 1024;
    for (;;) {
        double t0 = now_s();
        fn(iters);
        if (now_s() - t0 >= 0.01 || iters >= (1ull << 40))
            break;
        iters *= 2;
    }
    double best = 0.0;
    for (int r = 0; r < 5; r++) {
        double t0 = now_s();
        uint64_t ops = fn(iters);
        double g = (double)ops / (now_s() - t0) / 1e9;
        best = g > best ? g : best;
    }
    return best;
}

double ts_peak_probe(int cap, bool f32, const char **probe)
{
    ts_kernels k;
    ts_kernels_init(&k, (ts_isa)cap);
    if (probe)
        *probe = f32 ? k.peak_f32_name : k.peak_name;
    return probe_rate(f32 ? k.peak_f32 : k.peak_int8);
}

double ts_peak_int8_gops(const char **probe)
{
    return ts_peak_probe((int)ts_isa_from_env(), false, probe);
}
