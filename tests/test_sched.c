/*
 * tests/test_sched.c: topology parsing, the pool, the barrier and the grid.
 *
 * Pool/barrier/grid tests are named test_sched_pool_* so `make tsan` runs
 * them. Every test restores TESSERA_TOPO / TESSERA_SPIN_US before returning.
 * The box may have 2 cores shared with others: thread counts above the core
 * count are the point (round-robin pinning, oversubscription), and sizes are
 * kept small so the whole file runs in a few seconds.
 */
#include "test.h"
#include "../sched/sched.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const uint32_t k_threads[] = {1, 2, 3, 5, 7};
static const uint32_t k_sizes[] = {0, 1, 2, 3, 7, 64, 1000};
static const char *const k_topos[] = {NULL, "2x2", "2x3", "4x2"};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* The suite may run under TESSERA_TOPO=2x2 (STYLE §11 determinism runs):
 * tests change the environment only around a create and restore it after. */
static const char *const k_env_names[] = {"TESSERA_TOPO", "TESSERA_SPIN_US", "HWLOC_SYNTHETIC"};
static char *g_env_orig[3];

__attribute__((constructor)) static void env_capture(void)
{
    for (size_t i = 0; i < 3; i++) {
        const char *v = getenv(k_env_names[i]);
        g_env_orig[i] = v ? strdup(v) : NULL;
    }
}

static void env_restore(void)
{
    for (size_t i = 0; i < 3; i++) {
        if (g_env_orig[i])
            setenv(k_env_names[i], g_env_orig[i], 1);
        else
            unsetenv(k_env_names[i]);
    }
}

static void set_topo(const char *spec)
{
    if (spec)
        setenv("TESSERA_TOPO", spec, 1);
    else
        unsetenv("TESSERA_TOPO");
}

static ts_pool *make_pool(uint32_t n_threads, const char *topo)
{
    ts_pool *p = NULL;
    ts_err err = {0};
    set_topo(topo);
    ts_pool_opts o = {.n_threads = (int)n_threads, .scratch_bytes = 4096};
    ts_status st = ts_pool_create(&p, &o, &err);
    env_restore();
    TS_CHECK(st == TS_OK, "pool create threads=%u topo=%s: %s", n_threads, topo ? topo : "-",
             err.msg);
    return st == TS_OK ? p : NULL;
}

typedef struct {
    _Atomic uint32_t *count;     /* (n_tiles) times each tile ran */
    _Atomic uint32_t bad_scratch;
    uint32_t n_workers;
} count_ctx;

static void count_tile(void *ctx, const ts_tile *t, ts_scratch *s)
{
    count_ctx *c = ctx;
    atomic_fetch_add_explicit(&c->count[t->row0], 1, memory_order_relaxed);
    if (!s || !s->buf || ((uintptr_t)s->buf & 63) || s->worker >= c->n_workers)
        atomic_fetch_add_explicit(&c->bad_scratch, 1, memory_order_relaxed);
}

/* Runs a grid of n tiles (tile t has row0 = t, nodes cycling 0..3) and checks
 * each tile ran exactly once. */
static void check_grid(ts_pool *p, uint32_t n, ts_tile *tiles, _Atomic uint32_t *count,
                       const char *what)
{
    for (uint32_t t = 0; t < n; t++) {
        tiles[t] = (ts_tile){.row0 = t, .rows = 1, .node = (uint16_t)(t % 4)};
        atomic_init(&count[t], 0);
    }
    count_ctx c = {.count = count, .n_workers = ts_pool_n_workers(p)};
    atomic_init(&c.bad_scratch, 0);
    ts_grid g = {.tiles = tiles, .n_tiles = n, .cap = n};
    ts_grid_run(p, &g, count_tile, &c);
    uint32_t wrong = 0;
    for (uint32_t t = 0; t < n; t++)
        wrong += atomic_load(&count[t]) != 1;
    TS_CHECK(wrong == 0, "%s n=%u: %u tiles not run exactly once", what, n, wrong);
    TS_CHECK(atomic_load(&c.bad_scratch) == 0, "%s n=%u: bad scratch", what, n);
}

TS_TEST(test_sched_topo_detect)
{
    ts_topo t;
    ts_err err = {0};
    set_topo(NULL);
    TS_REQUIRE(ts_topo_detect(&t, &err) == TS_OK, "detect: %s", err.msg);
    TS_CHECK(t.n_nodes >= 1 && t.n_cores >= 1 && !t.fake, "real topology: %s", t.desc);
    TS_CHECK(strstr(t.desc, "core") != NULL, "desc: %s", t.desc);
    setenv("TESSERA_TOPO", "2x3", 1);
    ts_status st = ts_topo_detect(&t, &err);
    set_topo(NULL);
    TS_REQUIRE(st == TS_OK, "fake detect: %s", err.msg);
    TS_CHECK(t.fake && t.n_nodes == 2 && t.n_cores == 6, "fake 2x3: %s", t.desc);
    TS_CHECK(t.core_node[0] == 0 && t.core_node[5] == 1, "fake nodes");
    /* Placement interleaves nodes: the first two workers sit on different nodes
     * and, when the box has 2+ CPUs, on different CPUs. */
    uint32_t c0 = ts_topo_worker_core(&t, 0), c1 = ts_topo_worker_core(&t, 1);
    TS_CHECK(t.core_node[c0] != t.core_node[c1], "placement does not interleave nodes");
    ts_topo real;
    TS_REQUIRE(ts_topo_detect(&real, &err) == TS_OK, "detect: %s", err.msg);
    if (real.n_cores >= 2)
        TS_CHECK(t.core_os[c0] != t.core_os[c1], "first two fake workers share a CPU");
    char buf[4096];
    size_t len = ts_topo_format_plan(&t, 3, buf, sizeof(buf));
    TS_CHECK(len == strlen(buf) && strstr(buf, "worker 2: node") != NULL, "plan: %s", buf);
    char small[16];
    TS_CHECK(ts_topo_format_plan(&t, 3, small, sizeof(small)) == len && strlen(small) == 15,
             "truncated plan");
    env_restore();
}

/* hwloc's synthetic backend gives the real detection path a 2-package,
 * 2-node, SMT-2 machine: one core per physical core, nodes from hwloc. */
TS_TEST(test_sched_topo_synthetic)
{
    ts_topo t;
    ts_err err = {0};
    set_topo(NULL);
    setenv("HWLOC_SYNTHETIC", "pack:2 numa:1 l3:1 core:2 pu:2", 1);
    ts_status st = ts_topo_detect(&t, &err);
    ts_topo r;
    ts_status st_r = ts_topo_detect_range(&r, "2-5", &err);
    env_restore();
    TS_REQUIRE(st == TS_OK && st_r == TS_OK, "synthetic detect: %s", err.msg);
    TS_CHECK(t.n_packages == 2 && t.n_nodes == 2 && t.n_cores == 4 && t.n_pus == 8 &&
                 t.n_l3 == 2,
             "synthetic: %s", t.desc);
    TS_CHECK(!strcmp(t.desc, "2 packages, 2 NUMA nodes, 4 cores, 8 PUs"), "desc: %s", t.desc);
    for (uint32_t c = 0; c < 4 && c < t.n_cores; c++) {
        TS_CHECK(t.core_os[c] == 2 * c, "core %u on cpu %u: SMT sibling kept", c, t.core_os[c]);
        TS_CHECK(t.core_node[c] == c / 2 && t.core_l3[c] == c / 2, "core %u node", c);
    }
    TS_CHECK(t.place[0] == 0 && t.place[1] == 2 && t.place[2] == 1 && t.place[3] == 3,
             "placement %u %u %u %u", t.place[0], t.place[1], t.place[2], t.place[3]);
    TS_CHECK(r.n_cores == 2 && r.core_os[0] == 2 && r.core_os[1] == 4 && r.core_node[0] == 0 &&
                 r.core_node[1] == 1,
             "range 2-5: %u cores", r.n_cores);
}

TS_TEST(test_sched_topo_bad_env)
{
    static const char *const bad[] = {"", "x", "2", "2x", "x2", "0x2", "2x0", "2x3x",
                                      "a x b", "-1x2", "2x-2", " 2x2", "2X2", "65x1",
                                      "2x1000", "99999999999x1"};
    ts_topo t;
    for (size_t i = 0; i < N_OF(bad); i++) {
        ts_err err = {0};
        setenv("TESSERA_TOPO", bad[i], 1);
        ts_status st = ts_topo_detect(&t, &err);
        if (bad[i][0] == 0) {
            TS_CHECK(st == TS_OK, "empty TESSERA_TOPO means unset");
            continue;
        }
        TS_CHECK(st == TS_E_ARG, "TESSERA_TOPO='%s' accepted", bad[i]);
        TS_CHECK(strstr(err.msg, "TESSERA_TOPO") != NULL, "message: %s", err.msg);
    }
    ts_pool *p = NULL;
    ts_err err = {0};
    setenv("TESSERA_TOPO", "2y2", 1);
    TS_CHECK(ts_pool_create(&p, NULL, &err) == TS_E_ARG && p == NULL, "pool took bad topo");
    env_restore();
}

TS_TEST(test_sched_topo_cpu_range)
{
    ts_topo t;
    ts_err err = {0};
    set_topo(NULL);
    TS_REQUIRE(ts_topo_detect_range(&t, "0-0", &err) == TS_OK, "range 0-0: %s", err.msg);
    TS_CHECK(t.n_cores == 1 && t.core_os[0] == 0, "range 0-0 kept %u cores", t.n_cores);
    TS_CHECK(ts_topo_detect_range(&t, "1-0", &err) == TS_E_ARG, "1-0 accepted");
    TS_CHECK(ts_topo_detect_range(&t, "a-b", &err) == TS_E_ARG, "a-b accepted");
    TS_CHECK(ts_topo_detect_range(&t, "5000-6000", &err) == TS_E_ARG, "empty range accepted");
    setenv("TESSERA_TOPO", "2x2", 1);
    ts_status st = ts_topo_detect_range(&t, "0-0", &err);
    env_restore();
    TS_REQUIRE(st == TS_OK, "fake + range: %s", err.msg);
    for (uint32_t c = 0; c < t.n_cores; c++)
        TS_CHECK(t.core_os[c] == 0, "fake core %u on cpu %u outside range", c, t.core_os[c]);
}

TS_TEST(test_sched_pool_grid_exactly_once)
{
    ts_tile *tiles = calloc(1000, sizeof(ts_tile));
    _Atomic uint32_t *count = calloc(1000, sizeof(*count));
    TS_REQUIRE(tiles && count, "alloc");
    char what[64];
    for (size_t ti = 0; ti < N_OF(k_topos); ti++) {
        for (size_t th = 0; th < N_OF(k_threads); th++) {
            ts_pool *p = make_pool(k_threads[th], k_topos[ti]);
            if (!p)
                continue;
            TS_CHECK(ts_pool_n_workers(p) == k_threads[th], "n_workers");
            TS_CHECK(ts_pool_topo(p)->fake == (k_topos[ti] != NULL), "topology re-read");
            snprintf(what, sizeof(what), "threads=%u topo=%s", k_threads[th],
                     k_topos[ti] ? k_topos[ti] : "-");
            for (size_t si = 0; si < N_OF(k_sizes); si++)
                check_grid(p, k_sizes[si], tiles, count, what);
            ts_pool_destroy(p);
        }
    }
    free(tiles);
    free(count);
}

/* Grids larger than the reserved index capacity fall back to one queue. */
TS_TEST(test_sched_pool_grid_reserve_tiles)
{
    uint32_t n = 5000;
    ts_tile *tiles = calloc(n, sizeof(ts_tile));
    _Atomic uint32_t *count = calloc(n, sizeof(*count));
    TS_REQUIRE(tiles && count, "alloc");
    ts_pool *p = make_pool(3, "2x2");
    if (p) {
        check_grid(p, n, tiles, count, "over cap");
        ts_err err = {0};
        TS_CHECK(ts_pool_reserve_tiles(p, n, &err) == TS_OK, "reserve: %s", err.msg);
        check_grid(p, n, tiles, count, "reserved");
        ts_pool_destroy(p);
    }
    free(tiles);
    free(count);
}

TS_TEST(test_sched_pool_grid_repeated)
{
    ts_tile tiles[16];
    _Atomic uint32_t count[16];
    ts_pool *p = make_pool(2, NULL);
    if (p) {
        for (int r = 0; r < 1000 && !ts_test_failed(); r++)
            check_grid(p, 4 + (uint32_t)r % 13, tiles, count, "repeat");
        ts_pool_destroy(p);
    }
    p = make_pool(3, "2x2");
    if (p) {
        for (int r = 0; r < 300 && !ts_test_failed(); r++)
            check_grid(p, 6 + (uint32_t)r % 11, tiles, count, "repeat 2x2");
        ts_pool_destroy(p);
    }
}

/* Spin 0: every wait blocks on the futex, which exercises the wake paths. */
TS_TEST(test_sched_pool_grid_no_spin)
{
    ts_tile tiles[16];
    _Atomic uint32_t count[16];
    setenv("TESSERA_SPIN_US", "0", 1);
    ts_pool *p = make_pool(2, NULL); /* restores the environment */
    if (!p)
        return;
    TS_CHECK(ts_pool_spin_ns(p) == 0, "spin env ignored");
    for (int r = 0; r < 300 && !ts_test_failed(); r++)
        check_grid(p, 4 + (uint32_t)r % 13, tiles, count, "no spin");
    ts_pool_destroy(p);
    ts_err err = {0};
    setenv("TESSERA_SPIN_US", "12us", 1);
    TS_CHECK(ts_pool_create(&p, NULL, &err) == TS_E_ARG, "bad TESSERA_SPIN_US accepted");
    env_restore();
}

typedef struct {
    ts_pool *pool;
    uint32_t n;
    uint32_t *slots;       /* (rounds, n): worker w writes slots[r * n + w] */
    _Atomic uint32_t errors;
    void *seen_buf[8];
    size_t seen_bytes[8];
} barrier_ctx;

enum { BARRIER_ROUNDS = 50 };

/* Round r: each worker writes its slot, barrier, then checks every slot of round
 * r. A missing barrier shows up as a stale slot (and as a race under tsan). */
static void barrier_worker(void *ctx, ts_scratch *s)
{
    barrier_ctx *c = ctx;
    uint32_t w = s->worker;
    c->seen_buf[w] = s->buf;
    c->seen_bytes[w] = s->bytes;
    for (uint32_t r = 0; r < BARRIER_ROUNDS; r++) {
        c->slots[r * c->n + w] = r * 100 + w + 1;
        ts_pool_barrier(c->pool);
        for (uint32_t o = 0; o < c->n; o++)
            if (c->slots[r * c->n + o] != r * 100 + o + 1)
                atomic_fetch_add(&c->errors, 1);
    }
}

TS_TEST(test_sched_pool_barrier)
{
    for (size_t th = 0; th < N_OF(k_threads); th++) {
        for (int spin = 0; spin < 2; spin++) {
            if (!spin)
                setenv("TESSERA_SPIN_US", "0", 1);
            else
                unsetenv("TESSERA_SPIN_US");
            ts_pool *p = make_pool(k_threads[th], th == 2 ? "2x2" : NULL);
            if (!p)
                continue;
            barrier_ctx c = {.pool = p, .n = k_threads[th]};
            c.slots = calloc((size_t)BARRIER_ROUNDS * c.n, sizeof(uint32_t));
            TS_REQUIRE(c.slots, "alloc");
            atomic_init(&c.errors, 0);
            ts_pool_run(p, barrier_worker, &c);
            TS_CHECK(atomic_load(&c.errors) == 0, "threads=%u: %u stale slots", c.n,
                     atomic_load(&c.errors));
            free(c.slots);
            ts_pool_destroy(p);
        }
    }
}

TS_TEST(test_sched_pool_scratch)
{
    ts_pool *p = make_pool(5, "2x3");
    if (!p)
        return;
    barrier_ctx c = {.pool = p, .n = 5};
    c.slots = calloc((size_t)BARRIER_ROUNDS * c.n, sizeof(uint32_t));
    TS_REQUIRE(c.slots, "alloc");
    atomic_init(&c.errors, 0);
    ts_err err = {0};
    TS_CHECK(ts_pool_reserve_scratch(p, 100000, &err) == TS_OK, "reserve: %s", err.msg);
    ts_pool_run(p, barrier_worker, &c);
    for (uint32_t w = 0; w < 5; w++) {
        TS_CHECK(c.seen_buf[w] && ((uintptr_t)c.seen_buf[w] & 63) == 0, "worker %u unaligned", w);
        TS_CHECK(c.seen_bytes[w] >= 100000, "worker %u scratch %zu bytes", w, c.seen_bytes[w]);
        for (uint32_t o = 0; o < w; o++)
            TS_CHECK(c.seen_buf[w] != c.seen_buf[o], "workers %u and %u share scratch", o, w);
    }
    TS_CHECK(ts_pool_reserve_scratch(p, 50000, &err) == TS_OK, "shrink is a no-op");
    free(c.slots);
    ts_pool_destroy(p);
}

typedef struct {
    uint32_t *hits;        /* (n) */
    _Atomic uint32_t calls;
} for_ctx;

static void for_body(void *ctx, uint32_t i0, uint32_t i1, ts_scratch *s)
{
    for_ctx *c = ctx;
    memset(s->buf, 0xA5, s->bytes); /* scratch is the worker's alone */
    for (uint32_t i = i0; i < i1; i++)
        c->hits[i]++;
    atomic_fetch_add(&c->calls, 1);
}

TS_TEST(test_sched_pool_for)
{
    static const uint32_t sizes[] = {0, 1, 5, 13, 100, 4097};
    uint32_t *hits = calloc(4097, sizeof(uint32_t));
    TS_REQUIRE(hits, "alloc");
    for (size_t th = 0; th < N_OF(k_threads); th++) {
        ts_pool *p = make_pool(k_threads[th], th % 2 ? "2x2" : NULL);
        if (!p)
            continue;
        for (size_t si = 0; si < N_OF(sizes); si++) {
            uint32_t n = sizes[si];
            for (uint32_t grain = 0; grain <= 64; grain = grain ? grain * 8 : 1) {
                memset(hits, 0, 4097 * sizeof(uint32_t));
                for_ctx c = {.hits = hits};
                atomic_init(&c.calls, 0);
                if (grain)
                    ts_pool_for_grain(p, n, grain, for_body, &c);
                else
                    ts_pool_for(p, n, for_body, &c);
                uint32_t wrong = 0;
                for (uint32_t i = 0; i < n; i++)
                    wrong += hits[i] != 1;
                TS_CHECK(wrong == 0, "threads=%u n=%u grain=%u: %u indices wrong",
                         k_threads[th], n, grain, wrong);
                uint32_t calls = atomic_load(&c.calls);
                TS_CHECK(n == 0 || calls >= 1, "no calls");
                TS_CHECK(grain <= 1 || calls <= (n + grain - 1) / grain,
                         "n=%u grain=%u: %u ranges", n, grain, calls);
            }
        }
        ts_pool_destroy(p);
    }
    free(hits);
}

typedef struct {
    uint32_t ran_by[8];    /* worker that ran tile t (tiles write disjoint slots) */
} owner_ctx;

static void owner_tile(void *ctx, const ts_tile *t, ts_scratch *s)
{
    owner_ctx *c = ctx;
    c->ran_by[t->row0] = s->worker;
}

/* STYLE §4: worker i first takes tile i of its node's queue, and those tiles
 * are never stolen. With TESSERA_TOPO=2x2 and 2 workers (worker 0 on node 0,
 * worker 1 on node 1) and tile nodes 1,1,0,0,1,1,0,0, tile 0 is node 1's
 * first (worker 1) and tile 2 is node 0's first (worker 0), every run. */
TS_TEST(test_sched_pool_grid_node_affinity)
{
    ts_pool *p = make_pool(2, "2x2");
    if (!p)
        return;
    ts_tile tiles[8];
    for (uint32_t t = 0; t < 8; t++)
        tiles[t] = (ts_tile){.row0 = t, .rows = 1, .node = (uint16_t)((t / 2 + 1) % 2)};
    ts_grid g = {.tiles = tiles, .n_tiles = 8, .cap = 8};
    for (int r = 0; r < 200 && !ts_test_failed(); r++) {
        owner_ctx c;
        memset(&c, 0xff, sizeof(c));
        ts_grid_run(p, &g, owner_tile, &c);
        TS_CHECK(c.ran_by[0] == 1 && c.ran_by[2] == 0, "first tiles ran on %u and %u",
                 c.ran_by[0], c.ran_by[2]);
        for (uint32_t t = 0; t < 8; t++)
            TS_CHECK(c.ran_by[t] < 2, "tile %u not run", t);
    }
    ts_pool_destroy(p);
}

TS_TEST(test_sched_pool_plan)
{
    ts_pool *p = make_pool(3, "2x2");
    if (!p)
        return;
    char buf[1024];
    ts_pool_format_plan(p, buf, sizeof(buf));
    TS_CHECK(strstr(buf, "fake 2 NUMA nodes") && strstr(buf, "worker 0: node 0") &&
                 strstr(buf, "worker 1: node 1") && strstr(buf, "worker 2: node 0"),
             "plan:\n%s", buf);
    ts_pool_destroy(p);
    /* Worker 0 is the caller: pinned while the pool lives, restored after. */
    cpu_set_t before, during, after;
    ts_err err = {0};
    ts_pool_opts o = {.n_threads = 2};
    TS_REQUIRE(pthread_getaffinity_np(pthread_self(), sizeof(before), &before) == 0, "mask");
    TS_REQUIRE(ts_pool_create(&p, &o, &err) == TS_OK, "create: %s", err.msg);
    pthread_getaffinity_np(pthread_self(), sizeof(during), &during);
    ts_pool_destroy(p);
    pthread_getaffinity_np(pthread_self(), sizeof(after), &after);
    TS_CHECK(CPU_COUNT(&during) == 1, "caller not pinned (%d CPUs)", CPU_COUNT(&during));
    TS_CHECK(CPU_EQUAL(&before, &after), "caller mask not restored");
    o = (ts_pool_opts){.n_threads = 2, .no_pin_caller = true};
    TS_REQUIRE(ts_pool_create(&p, &o, &err) == TS_OK, "create: %s", err.msg);
    pthread_getaffinity_np(pthread_self(), sizeof(during), &during);
    ts_pool_destroy(p);
    TS_CHECK(CPU_EQUAL(&before, &during), "no_pin_caller pinned the caller");
    o = (ts_pool_opts){.n_threads = -1};
    TS_CHECK(ts_pool_create(&p, &o, &err) == TS_E_ARG, "n_threads=-1 accepted");
    o = (ts_pool_opts){.n_threads = 1, .cpu_range = "9-3"};
    TS_CHECK(ts_pool_create(&p, &o, &err) == TS_E_ARG, "bad cpu_range accepted");
}

typedef struct {
    uint64_t spin_ns;      /* tile 0 spins this long; the others return at once */
    _Atomic uint32_t ran;
} prof_ctx;

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void prof_tile(void *ctx, const ts_tile *t, ts_scratch *s)
{
    prof_ctx *c = ctx;
    (void)s;
    if (t->row0 == 0) {
        uint64_t t0 = mono_ns();
        while (mono_ns() - t0 < c->spin_ns)
            sched_yield(); /* the box may have fewer cores than workers */
    }
    atomic_fetch_add_explicit(&c->ran, 1, memory_order_relaxed);
}

static void prof_worker(void *ctx, ts_scratch *s)
{
    (void)s;
    prof_ctx *c = ctx;
    atomic_fetch_add_explicit(&c->ran, 1, memory_order_relaxed);
}

static ts_sched_prof prof_delta(const ts_sched_prof *a, const ts_sched_prof *b)
{
    return (ts_sched_prof){b->grids - a->grids, b->inline_grids - a->inline_grids,
                           b->wall_ns - a->wall_ns, b->inline_wall_ns - a->inline_wall_ns,
                           b->cap_ns - a->cap_ns, b->busy_ns - a->busy_ns,
                           b->late_ns - a->late_ns, b->late_n - a->late_n};
}

/* Runs g on p and returns what it added to the counters. */
static ts_sched_prof prof_grid(ts_pool *p, const ts_grid *g, prof_ctx *c)
{
    ts_sched_prof a, b;
    ts_sched_prof_get(&a);
    ts_grid_run(p, g, prof_tile, c);
    ts_sched_prof_get(&b);
    return prof_delta(&a, &b);
}

/* The grid profile's structure, not its timings (the box is shared and
 * noisy): a parallel grid counts once with capacity n_workers x wall, busy
 * at most capacity and at least the spinning tile, late starts only for the
 * workers beyond the caller; an inline grid counts busy == wall and capacity
 * n_workers x wall; ts_pool_for and ts_pool_run count; off counts nothing.
 * Under tsan this checks that the workers' timestamps are published by the
 * join. */
TS_TEST(test_sched_pool_prof)
{
    enum { SPIN_NS = 1000000 };
    ts_tile tiles[8];
    for (uint32_t t = 0; t < 8; t++)
        tiles[t] = (ts_tile){.row0 = t, .rows = 1};
    prof_ctx c = {.spin_ns = SPIN_NS};
    atomic_init(&c.ran, 0);
    ts_pool *p = make_pool(2, NULL);
    if (!p)
        return;
    ts_sched_prof_enable(true);
    ts_sched_prof_reset();
    ts_sched_prof z;
    ts_sched_prof_get(&z);
    TS_CHECK(z.grids == 0 && z.wall_ns == 0 && z.cap_ns == 0 && z.busy_ns == 0, "reset");

    ts_grid g = {.tiles = tiles, .n_tiles = 8, .cap = 8}; /* 2 tiles per worker: parallel */
    for (int r = 0; r < 20 && !ts_test_failed(); r++) {
        ts_sched_prof d = prof_grid(p, &g, &c);
        TS_CHECK(d.grids == 1 && d.inline_grids == 0 && d.inline_wall_ns == 0, "parallel: %llu",
                 (unsigned long long)d.grids);
        TS_CHECK(d.wall_ns >= SPIN_NS && d.cap_ns == 2 * d.wall_ns, "parallel wall %llu cap %llu",
                 (unsigned long long)d.wall_ns, (unsigned long long)d.cap_ns);
        TS_CHECK(d.busy_ns >= SPIN_NS && d.busy_ns <= d.cap_ns, "parallel busy %llu cap %llu",
                 (unsigned long long)d.busy_ns, (unsigned long long)d.cap_ns);
        /* Each worker starts after the publish and ends before the join. */
        TS_CHECK(d.late_n == 1 && d.busy_ns + d.late_ns <= d.cap_ns, "late %llu over %llu",
                 (unsigned long long)d.late_ns, (unsigned long long)d.late_n);
    }

    g.n_tiles = 3; /* fewer than 2 per worker: inline on the caller */
    ts_sched_prof d = prof_grid(p, &g, &c);
    TS_CHECK(d.grids == 1 && d.inline_grids == 1 && d.inline_wall_ns == d.wall_ns,
             "inline: %llu grids %llu inline", (unsigned long long)d.grids,
             (unsigned long long)d.inline_grids);
    TS_CHECK(d.wall_ns >= SPIN_NS && d.busy_ns == d.wall_ns && d.cap_ns == 2 * d.wall_ns &&
                 d.late_n == 0,
             "inline wall %llu busy %llu cap %llu", (unsigned long long)d.wall_ns,
             (unsigned long long)d.busy_ns, (unsigned long long)d.cap_ns);

    ts_sched_prof a, b;
    uint32_t hits[64] = {0};
    for_ctx fc = {.hits = hits};
    atomic_init(&fc.calls, 0);
    ts_sched_prof_get(&a);
    ts_pool_for(p, 64, for_body, &fc);       /* parallel */
    ts_pool_for_grain(p, 1, 1, for_body, &fc); /* inline */
    ts_pool_run(p, prof_worker, &c);
    ts_sched_prof_get(&b);
    d = prof_delta(&a, &b);
    TS_CHECK(d.grids == 3 && d.inline_grids == 1 && d.late_n == 2 && d.busy_ns <= d.cap_ns,
             "for/run: %llu grids %llu inline %llu late starts", (unsigned long long)d.grids,
             (unsigned long long)d.inline_grids, (unsigned long long)d.late_n);

    ts_sched_prof_enable(false);
    g.n_tiles = 8;
    d = prof_grid(p, &g, &c);
    TS_CHECK(d.grids == 0 && d.wall_ns == 0 && d.busy_ns == 0, "counted while off");
    ts_pool_destroy(p);

    /* One worker: every grid inline, busy == capacity == wall. */
    p = make_pool(1, NULL);
    if (!p)
        return;
    ts_sched_prof_enable(true);
    d = prof_grid(p, &g, &c);
    TS_CHECK(d.grids == 1 && d.inline_grids == 1 && d.busy_ns == d.cap_ns &&
                 d.cap_ns == d.wall_ns && d.wall_ns >= SPIN_NS,
             "1 worker: busy %llu cap %llu wall %llu", (unsigned long long)d.busy_ns,
             (unsigned long long)d.cap_ns, (unsigned long long)d.wall_ns);
    ts_sched_prof_enable(false);
    ts_sched_prof_reset();
    ts_pool_destroy(p);
    TS_CHECK(atomic_load(&c.ran) == 20 * 8 + 3 + 2 + 8 + 8, "tiles ran %u",
             atomic_load(&c.ran));
}
