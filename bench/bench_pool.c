/*
 * bench/bench_pool.c: the cost of one ts_grid_run dispatch + join.
 *
 * Times grids of empty tiles (default 2 workers, 4 tiles: the smallest grid
 * that is not run inline) and prints the median per-dispatch time as a CSV row
 * (STYLE §12 columns; op=grid_dispatch, m=tiles). Each dispatch is timed on
 * its own, after a warm-up, so the median is the spinning-worker path; the
 * p90 column in the trailing comment shows the block/wake tail.
 * Usage: bench_pool [--threads N] [--tiles N] [--iters N]
 * Environment: TESSERA_TOPO, TESSERA_SPIN_US as for the engine;
 * TESSERA_COMMIT names the commit in the row.
 */
#include "../sched/sched.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void empty_tile(void *ctx, const ts_tile *t, ts_scratch *s)
{
    (void)ctx;
    (void)t;
    (void)s;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int n_threads = 2;
    uint32_t n_tiles = 4, iters = 20000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            n_threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tiles"))
            n_tiles = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--iters"))
            iters = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--threads N] [--tiles N] [--iters N]\n", argv[0]);
            return 2;
        }
    }
    if (iters < 10)
        iters = 10;
    ts_pool *pool = NULL;
    ts_err err = {0};
    ts_pool_opts opts = {.n_threads = n_threads};
    if (ts_pool_create(&pool, &opts, &err) != TS_OK) {
        fprintf(stderr, "bench_pool: %s\n", err.msg);
        return 1;
    }
    ts_tile *tiles = calloc(n_tiles ? n_tiles : 1, sizeof(ts_tile));
    uint64_t *ns = malloc(iters * sizeof(uint64_t));
    if (!tiles || !ns) {
        fprintf(stderr, "bench_pool: out of memory\n");
        return 1;
    }
    for (uint32_t t = 0; t < n_tiles; t++)
        tiles[t] = (ts_tile){.row0 = t, .rows = 1, .node = (uint16_t)(t % 2)};
    ts_grid g = {.tiles = tiles, .n_tiles = n_tiles, .cap = n_tiles};
    for (uint32_t i = 0; i < iters / 4 + 100; i++)
        ts_grid_run(pool, &g, empty_tile, NULL);
    for (uint32_t i = 0; i < iters; i++) {
        uint64_t t0 = now_ns();
        ts_grid_run(pool, &g, empty_tile, NULL);
        ns[i] = now_ns() - t0;
    }
    qsort(ns, iters, sizeof(uint64_t), cmp_u64);
    const ts_topo *topo = ts_pool_topo(pool);
    char host[64] = "unknown";
    gethostname(host, sizeof(host) - 1);
    const char *commit = getenv("TESSERA_COMMIT");
    printf("commit,machine,isa,threads,nodes,op,qtype,m,n,k,ns_median,gflops,weight_gbps\n");
    printf("%s,%s,-,%u,%u,grid_dispatch,-,%u,0,0,%llu,0,0\n", commit ? commit : "unknown", host,
           ts_pool_n_workers(pool), topo->n_nodes, n_tiles,
           (unsigned long long)ns[iters / 2]);
    printf("# p10 %llu ns, p90 %llu ns, p99 %llu ns, spin %llu us, %s\n",
           (unsigned long long)ns[iters / 10], (unsigned long long)ns[iters * 9 / 10],
           (unsigned long long)ns[iters * 99 / 100],
           (unsigned long long)(ts_pool_spin_ns(pool) / 1000), topo->desc);
    free(ns);
    free(tiles);
    ts_pool_destroy(pool);
    return 0;
}
