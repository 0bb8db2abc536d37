/*
 * tests/test_numa.c: NUMA placement on fake topologies (STYLE §4, §5).
 *
 * The 2-core, 1-node CI box runs the multi-node code through TESSERA_TOPO:
 * topologies {1x2, 2x1, 2x2, 4x2, 2x3} x modes {distribute, replicate,
 * isolate, none}, with thread counts that leave nodes unevenly staffed (2x3
 * with 5 workers: 3 + 2; 4x2 with 3 workers: node 3 has none). The fake
 * syntax gives every node the same core count, so unequal nodes come from the
 * thread count. Each run's logits of every position must be byte-identical
 * (memcmp) to the plain run (no TESSERA_TOPO, 1 thread, no placement), and
 * the bytes placed per node must match the mode. Models: a generated tiny
 * Q4_K_M model always; synth-llama-Q4_K_M and stories260K with ../shared.
 * Also: partition row blocks never straddle a node (ts_qplace_row_block),
 * stealing from a node without workers, and the CLI (info plan, bench sweep).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "../core/place.h"
#include "../core/session.h"
#include "../core/tessera.h"

/* Saves TESSERA_TOPO once and restores it (or its absence). */
static char g_saved_topo[64];
static bool g_had_topo;

static void topo_save(void)
{
    const char *v = getenv("TESSERA_TOPO");
    g_had_topo = v != NULL;
    snprintf(g_saved_topo, sizeof(g_saved_topo), "%s", v ? v : "");
}

static void topo_restore(void)
{
    if (g_had_topo)
        setenv("TESSERA_TOPO", g_saved_topo, 1);
    else
        unsetenv("TESSERA_TOPO");
}

typedef struct {
    ts_engine_info info;
    uint64_t node_bytes[8];
    uint64_t stolen;
} run_stats;

/* Every position's logits under topo (NULL = real machine), or NULL. */
static float *numa_logits(const char *model, const int32_t *toks, int n, const char *topo,
                          int numa, int threads, int chunk, run_stats *rs)
{
    if (topo)
        setenv("TESSERA_TOPO", topo, 1);
    else
        unsetenv("TESSERA_TOPO");
    ts_engine_opts eo = {.model_path = model, .n_threads = threads, .numa = numa};
    ts_engine *eng = NULL;
    ts_session *s = NULL;
    ts_err err = {0};
    float *out = NULL;
    ts_status st = ts_engine_create(&eng, &eo, &err);
    topo_restore(); /* the engine read it at create */
    ts_session_opts so = {.n_ctx = n + 8, .chunk = chunk};
    if (st == TS_OK)
        st = ts_session_create(&s, eng, &so, &err);
    if (st == TS_OK) {
        ts_engine_get_info(eng, &rs->info);
        for (uint32_t nd = 0; nd < 8; nd++)
            rs->node_bytes[nd] = ts_engine_node_bytes(eng, nd);
        out = malloc((size_t)n * (size_t)rs->info.n_vocab * sizeof(float));
        st = out ? ts_session_prefill(s, toks, n, out, &err) : TS_E_NOMEM;
        rs->stolen = ts_pool_n_stolen(eng->pool);
    }
    TS_CHECK(st == TS_OK, "%s topo %s numa %s: %s", model, topo ? topo : "-", ts_numa_name(numa),
             err.msg);
    if (st != TS_OK) {
        free(out);
        out = NULL;
    }
    ts_session_destroy(s);
    ts_engine_destroy(eng);
    return out;
}

typedef struct {
    const char *topo;
    int threads;
    uint32_t nodes, cores_per_node;
} topo_case;

static const topo_case k_topos[] = {
    {"1x2", 2, 1, 2}, {"2x1", 2, 2, 1}, {"2x2", 4, 2, 2}, {"4x2", 3, 4, 2}, {"2x3", 5, 2, 3},
};
static const int k_modes[] = {TS_NUMA_DISTRIBUTE, TS_NUMA_REPLICATE, TS_NUMA_ISOLATE,
                              TS_NUMA_NONE, TS_NUMA_DEFAULT};

/* Workers of each fake node for t->threads (placement interleaves nodes). */
static void staffing(const topo_case *t, uint32_t *on_node)
{
    memset(on_node, 0, 8 * sizeof(uint32_t));
    for (int w = 0; w < t->threads; w++)
        on_node[(uint32_t)w % t->nodes]++;
}

static void check_placement(const char *model, const topo_case *t, int mode, const run_stats *rs)
{
    const ts_engine_info *in = &rs->info;
    uint32_t on_node[8];
    staffing(t, on_node);
    int want = mode == TS_NUMA_DEFAULT ? (t->nodes > 1 ? TS_NUMA_DISTRIBUTE : TS_NUMA_NONE) : mode;
    TS_CHECK(in->numa == want, "%s %s: mode %s resolved to %s", model, t->topo,
             ts_numa_name(mode), ts_numa_name(in->numa));
    uint32_t nodes = want == TS_NUMA_ISOLATE ? 1 : t->nodes;
    TS_CHECK(in->n_nodes == nodes, "%s %s %s: %u nodes", model, t->topo, ts_numa_name(mode),
             in->n_nodes);
    if (want == TS_NUMA_NONE) {
        TS_CHECK(in->placed_bytes == 0, "%s %s none: %llu bytes placed", model, t->topo,
                 (unsigned long long)in->placed_bytes);
        return;
    }
    TS_CHECK(in->weight_bytes > 0, "%s %s %s: nothing placed", model, t->topo, ts_numa_name(mode));
    uint64_t sum = 0;
    uint32_t staffed = 0;
    for (uint32_t nd = 0; nd < nodes; nd++) {
        bool has = want == TS_NUMA_ISOLATE ? true : on_node[nd] > 0;
        staffed += has;
        sum += rs->node_bytes[nd];
        if (want == TS_NUMA_REPLICATE)
            TS_CHECK(rs->node_bytes[nd] == (has ? in->weight_bytes : 0),
                     "%s %s replicate: node %u holds %llu of %llu bytes", model, t->topo, nd,
                     (unsigned long long)rs->node_bytes[nd],
                     (unsigned long long)in->weight_bytes);
        else
            TS_CHECK(has ? rs->node_bytes[nd] > 0 : rs->node_bytes[nd] == 0,
                     "%s %s %s: node %u (%u workers) holds %llu bytes", model, t->topo,
                     ts_numa_name(mode), nd, on_node[nd], (unsigned long long)rs->node_bytes[nd]);
    }
    uint64_t want_sum = want == TS_NUMA_REPLICATE ? in->weight_bytes * staffed : in->weight_bytes;
    TS_CHECK(sum == want_sum && in->placed_bytes == sum,
             "%s %s %s: %llu bytes placed, expected %llu", model, t->topo, ts_numa_name(mode),
             (unsigned long long)sum, (unsigned long long)want_sum);
}

static uint64_t g_stolen;

static void check_model(const char *model, int n_tok)
{
    int32_t toks[64];
    uint64_t seed = 0x9a11 + (uint64_t)n_tok;
    toks[0] = 1;
    for (int i = 1; i < n_tok; i++)
        toks[i] = (int32_t)(ts_test_rand(&seed) % 256);
    run_stats rs = {0};
    float *ref = numa_logits(model, toks, n_tok, NULL, TS_NUMA_NONE, 1, -1, &rs);
    if (!ref)
        return;
    size_t bytes = (size_t)n_tok * (size_t)rs.info.n_vocab * sizeof(float);
    for (size_t t = 0; t < sizeof(k_topos) / sizeof(k_topos[0]); t++) {
        for (size_t m = 0; m < sizeof(k_modes) / sizeof(k_modes[0]); m++) {
            if (k_modes[m] == TS_NUMA_DEFAULT && t % 2) /* default: every other topology */
                continue;
            int chunk = (int)(t + m) % 3 == 0 ? -1 : 7 + (int)m; /* several chunk cuts */
            run_stats r = {0};
            float *got = numa_logits(model, toks, n_tok, k_topos[t].topo, k_modes[m],
                                     k_topos[t].threads, chunk, &r);
            TS_CHECK(got && !memcmp(ref, got, bytes),
                     "%s: TESSERA_TOPO=%s -t %d --numa %s chunk %d: logits differ from the "
                     "1-node run", model, k_topos[t].topo, k_topos[t].threads,
                     ts_numa_name(k_modes[m]), chunk);
            if (got)
                check_placement(model, &k_topos[t], k_modes[m], &r);
            g_stolen += r.stolen;
            free(got);
        }
    }
    free(ref);
}

TS_TEST(test_numa_topo_mode_identity)
{
    topo_save();
    char gen[512], out[2048];
    snprintf(gen, sizeof(gen), "%s/numa-tiny-q4_k_m.gguf", ts_test_tmpdir());
    int rc = ts_test_sh(out, sizeof(out), 120, "%s gen --shape tiny --type q4_k_m -o %s",
                        ts_test_bin(), gen);
    TS_CHECK(rc == 0, "tessera gen: exit %d: %s", rc, out);
    g_stolen = 0;
    if (rc == 0)
        check_model(gen, 24);
    const char *shared = ts_test_shared();
    if (shared) {
        static const char *models[] = {"synth-llama-Q4_K_M.gguf", "stories260K.gguf"};
        for (size_t i = 0; i < 2; i++) {
            char path[512];
            snprintf(path, sizeof(path), "%s/models/%s", shared, models[i]);
            check_model(path, 20);
        }
    }
    /* Multi-node grids put token tiles on node 0: other nodes' workers steal. */
    TS_CHECK(g_stolen > 0, "no tile was ever stolen across the multi-node runs");
    const char *now = getenv("TESSERA_TOPO");
    TS_CHECK(g_had_topo ? now && !strcmp(now, g_saved_topo) : !now, "TESSERA_TOPO not restored");
}

/* Row blocks of placed matrices: in order, covering every row once, each
 * inside one node's partition and carrying that node. */
TS_TEST(test_numa_row_blocks_never_straddle)
{
    static const int64_t rows_list[] = {1, 63, 64, 65, 200, 512, 1000, 4096};
    static const int64_t mrs[] = {1, 2, 4, 8, 16};
    for (size_t ri = 0; ri < sizeof(rows_list) / sizeof(rows_list[0]); ri++) {
        for (uint32_t nodes = 1; nodes <= 5; nodes++) {
            struct ts_qplace q = {.n_parts = nodes};
            ts_qview w = {.rows = rows_list[ri], .cols = 32, .row_stride = 32, .place = &q};
            int64_t units = (w.rows + TS_PLACE_ROW_ALIGN - 1) / TS_PLACE_ROW_ALIGN;
            for (uint32_t p = 0; p <= nodes; p++) { /* uneven: node p weighs p + 1 */
                int64_t cum = (int64_t)p * (p + 1) / 2, tot = (int64_t)nodes * (nodes + 1) / 2;
                int64_t r = units * cum / tot * TS_PLACE_ROW_ALIGN;
                q.row0[p] = r < w.rows ? r : w.rows;
            }
            for (size_t mi = 0; mi < sizeof(mrs) / sizeof(mrs[0]); mi++) {
                for (int64_t parts = 1; parts <= 40; parts += 13) {
                    int64_t next = 0;
                    for (int64_t rb = 0; rb < ts_qplace_n_blocks(&w, parts); rb++) {
                        int64_t r0, rn;
                        uint16_t nd;
                        ts_qplace_row_block(&w, parts, rb, mrs[mi], &r0, &rn, &nd);
                        if (rn <= 0)
                            continue;
                        TS_REQUIRE(r0 == next && r0 % mrs[mi] == 0,
                                   "rows %lld nodes %u mr %lld parts %lld: block at %lld, "
                                   "expected %lld", (long long)w.rows, nodes,
                                   (long long)mrs[mi], (long long)parts, (long long)r0,
                                   (long long)next);
                        TS_REQUIRE(nd < nodes && r0 >= q.row0[nd] && r0 + rn <= q.row0[nd + 1],
                                   "rows %lld: block [%lld, %lld) straddles node %u", 
                                   (long long)w.rows, (long long)r0, (long long)(r0 + rn), nd);
                        next = r0 + rn;
                    }
                    TS_CHECK(next == w.rows, "rows %lld nodes %u: blocks end at %lld",
                             (long long)w.rows, nodes, (long long)next);
                }
            }
        }
    }
}

typedef struct {
    _Atomic uint32_t *hits;
} steal_ctx;

static void count_tile(void *ctx, const ts_tile *t, ts_scratch *s)
{
    (void)s;
    steal_ctx *c = ctx;
    atomic_fetch_add_explicit(&c->hits[t->row0], 1, memory_order_relaxed);
}

/* Tiles owned by a node without workers (4x2 with 3 workers: node 3) are
 * all stolen, each exactly once. */
TS_TEST(test_numa_steal_from_unstaffed_node)
{
    topo_save();
    setenv("TESSERA_TOPO", "4x2", 1);
    ts_pool *pool = NULL;
    ts_err err = {0};
    ts_pool_opts po = {.n_threads = 3};
    ts_status st = ts_pool_create(&pool, &po, &err);
    topo_restore();
    TS_REQUIRE(st == TS_OK, "pool: %s", err.msg);
    enum { N = 64 };
    ts_tile tiles[N];
    _Atomic uint32_t hits[N];
    for (uint32_t i = 0; i < N; i++) {
        tiles[i] = (ts_tile){.row0 = i, .rows = 1, .toks = 1, .node = (uint16_t)(i % 2 ? 3 : 0)};
        atomic_init(&hits[i], 0);
    }
    uint64_t before = ts_pool_n_stolen(pool);
    ts_grid g = {tiles, N, N};
    steal_ctx c = {hits};
    ts_grid_run(pool, &g, count_tile, &c);
    uint64_t stolen = ts_pool_n_stolen(pool) - before;
    for (uint32_t i = 0; i < N; i++)
        TS_CHECK(atomic_load(&hits[i]) == 1, "tile %u ran %u times", i, atomic_load(&hits[i]));
    TS_CHECK(stolen >= N / 2, "%llu tiles stolen, node 3's %d must all be",
             (unsigned long long)stolen, N / 2);
    ts_pool_destroy(pool);
}

TS_TEST(test_numa_cli_plan_and_sweep)
{
    topo_save();
    char gen[512], out[8192];
    snprintf(gen, sizeof(gen), "%s/numa-cli.gguf", ts_test_tmpdir());
    int rc = ts_test_sh(out, sizeof(out), 120, "%s gen --shape tiny --type q4_k_m -o %s",
                        ts_test_bin(), gen);
    TS_REQUIRE(rc == 0, "tessera gen: exit %d", rc);
    rc = ts_test_sh(out, sizeof(out), 60, "TESSERA_TOPO=2x2 %s info %s -t 3 --numa replicate",
                    ts_test_bin(), gen);
    TS_CHECK(rc == 0 && strstr(out, "worker 2: node 0, core 1") &&
                 strstr(out, "numa: replicate") && strstr(out, "node 1 (os"),
             "info plan: exit %d: %s", rc, out);
    rc = ts_test_sh(out, sizeof(out), 60, "TESSERA_TOPO=2x2 %s info %s --numa isolate",
                    ts_test_bin(), gen);
    TS_CHECK(rc == 0 && strstr(out, "only node 0") && strstr(out, "2 workers") &&
                 !strstr(out, "node 1"),
             "info isolate: exit %d: %s", rc, out);
    rc = ts_test_sh(out, sizeof(out), 30, "%s run -m %s -p hi -n 1 --numa sideways",
                    ts_test_bin(), gen);
    TS_CHECK(rc == 2 && strstr(out, "--numa"), "run --numa sideways: exit %d: %s", rc, out);
    char csv[512], svg[512];
    snprintf(csv, sizeof(csv), "%s/sweep.csv", ts_test_tmpdir());
    snprintf(svg, sizeof(svg), "%s/sweep.svg", ts_test_tmpdir());
    rc = ts_test_sh(out, sizeof(out), 120,
                    "TESSERA_TOPO=2x1 %s bench -m %s -p 8 -n 2 -r 1 --numa replicate "
                    "--sweep 1,2 --sweep-csv %s --sweep-svg %s && head -c 4096 %s && "
                    "grep -c '<polyline' %s",
                    ts_test_bin(), gen, csv, svg, csv, svg);
    TS_CHECK(rc == 0 && strstr(out, "thread scaling") &&
                 strstr(out, "numa: replicate over 2 nodes") &&
                 strstr(out, "model,threads,numa,nodes,pp_n") && strstr(out, ",2,replicate,2,8,") &&
                 strstr(out, "\n4\n"),
             "bench --sweep: exit %d: %s", rc, out);
}
