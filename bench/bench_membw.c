/*
 * bench/bench_membw.c: the box's streaming read bandwidth, the bound for
 * decode (bandwidth-bound: every weight byte is read once per token).
 * Usage: bench_membw [threads] [MiB] [reps] [prefetch]. Each thread sums its
 * own slice of one buffer (much larger than the LLC) with 64-bit loads, 4
 * independent accumulators; prints the median GB/s of reps passes (1 GB = 1e9
 * bytes). prefetch (bytes, default 0 = none) adds one software prefetch per
 * 64-byte line that far ahead, as the decode kernels do: on hosts where one
 * core's outstanding misses limit it (the Xeon VMs), the plain loop
 * understates the bandwidth decode can reach, and the higher figure is the
 * stricter bound.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const uint64_t *p;
    size_t n, pf; /* pf: prefetch distance in uint64_t, 0 = none */
    uint64_t sum;
    pthread_barrier_t *bar;
} job;

static void *reader(void *v)
{
    job *j = v;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    pthread_barrier_wait(j->bar);
    size_t i = 0;
    if (j->pf)
        for (; i + 8 + j->pf <= j->n; i += 8) {
            __builtin_prefetch(j->p + i + j->pf);
            s0 += j->p[i] + j->p[i + 4];
            s1 += j->p[i + 1] + j->p[i + 5];
            s2 += j->p[i + 2] + j->p[i + 6];
            s3 += j->p[i + 3] + j->p[i + 7];
        }
    for (; i + 4 <= j->n; i += 4) {
        s0 += j->p[i];
        s1 += j->p[i + 1];
        s2 += j->p[i + 2];
        s3 += j->p[i + 3];
    }
    j->sum = s0 + s1 + s2 + s3;
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int nt = argc > 1 ? atoi(argv[1]) : 2;
    size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 1024;
    int reps = argc > 3 ? atoi(argv[3]) : 9;
    long pf = argc > 4 ? atol(argv[4]) : 0;
    if (nt < 1 || nt > 256 || reps < 1 || reps > 64 || mib < 1 || pf < 0 || pf > (1l << 20)) {
        fprintf(stderr, "usage: bench_membw [THREADS 1..256] [MIB] [REPS 1..64] "
                        "[PREFETCH_BYTES 0..1048576]\n");
        return 2;
    }
    size_t n = mib * (1u << 20) / 8;
    uint64_t *buf = aligned_alloc(64, n * 8);
    if (!buf)
        return 1;
    memset(buf, 1, n * 8); /* fault every page in before timing */
    double gbs[64];
    uint64_t check = 0;
    for (int r = 0; r < reps; r++) {
        pthread_t th[256];
        job jobs[256];
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)nt + 1);
        for (int t = 0; t < nt; t++) {
            size_t a = n * (size_t)t / (size_t)nt, b = n * (size_t)(t + 1) / (size_t)nt;
            jobs[t] = (job){buf + a, b - a, (size_t)pf / 8, 0, &bar};
            pthread_create(&th[t], NULL, reader, &jobs[t]);
        }
        double t0 = now_s();
        pthread_barrier_wait(&bar);
        for (int t = 0; t < nt; t++) {
            pthread_join(th[t], NULL);
            check += jobs[t].sum;
        }
        gbs[r] = (double)(n * 8) / (now_s() - t0) / 1e9;
        pthread_barrier_destroy(&bar);
    }
    qsort(gbs, (size_t)reps, sizeof(double), cmp_d);
    printf("threads=%d buffer=%zu MiB reps=%d prefetch=%ld read GB/s median %.2f (min %.2f max "
           "%.2f) [%llu]\n",
           nt, mib, reps, pf, gbs[reps / 2], gbs[0], gbs[reps - 1],
           (unsigned long long)(check & 1));
    free(buf);
    return 0;
}
