/*
 * simd/scalar/peak.c: the scalar level's int8 peak probe: eight independent
 * int32 multiply-add chains, the shape of the scalar GEMMs' inner loop.
 */
#include "../kernels.h"

uint64_t ts_peak_int8_scalar(uint64_t n_iter);

uint64_t ts_peak_int8_scalar(uint64_t n_iter)
{
    int32_t acc[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int32_t a = 3, b = -5;
    for (uint64_t i = 0; i < n_iter; i++) {
        for (int j = 0; j < 8; j++)
            acc[j] = (int32_t)((uint32_t)acc[j] + (uint32_t)(a * b)); /* wraps, no UB */
        a ^= (int32_t)(i & 1);
        __asm__ __volatile__("" : "+m"(acc)); /* keep every chain live */
    }
    volatile int32_t sink = acc[0] ^ acc[7];
    (void)sink;
    return n_iter * 8 * 2;
}

uint64_t ts_peak_f32_scalar(uint64_t n_iter);

uint64_t ts_peak_f32_scalar(uint64_t n_iter)
{
    float acc[8] = {1, 2, 3, 4, 5, 6, 7, 8}, a = 0.999f, b = 1e-3f;
    for (uint64_t i = 0; i < n_iter; i++) {
        for (int j = 0; j < 8; j++)
            acc[j] = acc[j] * a + b;
        __asm__ __volatile__("" : "+m"(acc));
    }
    volatile float sink = acc[0] + acc[7];
    (void)sink;
    return n_iter * 8 * 2;
}
