/*
 * sched/topo.c: the machine's shape, for pinning and NUMA-aware tile queues.
 *
 * Owns: hwloc (the only file that includes hwloc.h), TESSERA_TOPO parsing, the
 * --cpu-range filter, the worker placement order and the printable plan.
 * Does not: pin, allocate memory on nodes (core/mem.c) or create threads.
 * Invariants: one core per physical core (SMT siblings skipped: the core's first
 * PU); node indices are dense 0..n_nodes-1 (hwloc logical order); every core's
 * core_os is a CPU the process may run on; place[] lists every core exactly
 * once, interleaved across nodes. A fake topology ("2x4") keeps the real CPU
 * list and maps fake cores onto it round-robin in placement order, so the first
 * n_real workers land on distinct real CPUs.
 */
#include "sched.h"

#include <hwloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint32_t n;
    uint32_t os[TS_TOPO_MAX_CORES];
    uint16_t node[TS_TOPO_MAX_CORES];
    uint16_t l3[TS_TOPO_MAX_CORES];
    uint16_t fake_node[TS_TOPO_MAX_CORES]; /* real node under fake core i */
    uint32_t n_nodes, n_pus, n_packages, n_l3;
    uint32_t node_os[TS_TOPO_MAX_NODES];
} real_cpus;

static ts_status set_err(ts_err *err, ts_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ts_status set_err(ts_err *err, ts_status st, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        err->status = st;
    }
    return st;
}

/* Parses a decimal uint32 that spans [s, end) exactly; false on anything else. */
static bool parse_u32(const char *s, const char *end, uint32_t *out)
{
    uint64_t v = 0;
    if (s >= end || end - s > 9)
        return false;
    for (const char *c = s; c < end; c++) {
        if (*c < '0' || *c > '9')
            return false;
        v = v * 10 + (uint64_t)(*c - '0');
    }
    *out = (uint32_t)v;
    return true;
}

static uint32_t index_of_obj(hwloc_topology_t topo, hwloc_obj_type_t type, hwloc_cpuset_t set)
{
    int n = hwloc_get_nbobjs_by_type(topo, type);
    for (int i = 0; i < n; i++) {
        hwloc_obj_t o = hwloc_get_obj_by_type(topo, type, (unsigned)i);
        if (o && o->cpuset && hwloc_bitmap_intersects(o->cpuset, set))
            return (uint32_t)i;
    }
    return 0;
}

/* Reads the real machine; keeps cores whose first PU lies in [lo, hi]. */
static ts_status read_hwloc(real_cpus *r, uint32_t lo, uint32_t hi, ts_err *err)
{
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0)
        return set_err(err, TS_E_UNSUPPORTED, "topology: hwloc_topology_init failed");
    if (hwloc_topology_load(topo) != 0) {
        hwloc_topology_destroy(topo);
        return set_err(err, TS_E_UNSUPPORTED, "topology: hwloc_topology_load failed");
    }
    int n_nodes = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    int n_pkg = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE);
    int n_l3 = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_L3CACHE);
    int n_pus = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    int n_core = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    /* Some VMs expose no Core objects: treat each PU as a core then. */
    hwloc_obj_type_t core_type = n_core > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
    if (n_core <= 0)
        n_core = n_pus;
    r->n_nodes = n_nodes > 0 ? (uint32_t)n_nodes : 1;
    if (r->n_nodes > TS_TOPO_MAX_NODES)
        r->n_nodes = TS_TOPO_MAX_NODES;
    r->n_packages = n_pkg > 0 ? (uint32_t)n_pkg : 1;
    r->n_l3 = n_l3 > 0 ? (uint32_t)n_l3 : 0;
    r->n_pus = n_pus > 0 ? (uint32_t)n_pus : 0;
    for (uint32_t nd = 0; nd < r->n_nodes; nd++) {
        hwloc_obj_t o = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, nd);
        r->node_os[nd] = o ? o->os_index : 0;
    }
    r->n = 0;
    for (int c = 0; c < n_core && r->n < TS_TOPO_MAX_CORES; c++) {
        hwloc_obj_t core = hwloc_get_obj_by_type(topo, core_type, (unsigned)c);
        if (!core || !core->cpuset)
            continue;
        hwloc_obj_t pu = hwloc_get_next_obj_inside_cpuset_by_type(topo, core->cpuset,
                                                                  HWLOC_OBJ_PU, NULL);
        if (!pu || pu->os_index < lo || pu->os_index > hi)
            continue;
        uint32_t nd = n_nodes > 0 ? index_of_obj(topo, HWLOC_OBJ_NUMANODE, core->cpuset) : 0;
        r->os[r->n] = pu->os_index;
        r->node[r->n] = (uint16_t)(nd < r->n_nodes ? nd : 0);
        uint32_t l3 = n_l3 > 0 ? index_of_obj(topo, HWLOC_OBJ_L3CACHE, core->cpuset) : 0;
        r->l3[r->n] = (uint16_t)l3;
        r->n++;
    }
    hwloc_topology_destroy(topo);
    if (r->n == 0)
        return set_err(err, TS_E_ARG, "cpu range %u-%u: no usable CPU in it", lo, hi);
    return TS_OK;
}

/* Placement order: round-robin over nodes, cores of a node in index order. */
static void build_place(ts_topo *t)
{
    uint32_t next[TS_TOPO_MAX_NODES] = {0};
    uint32_t j = 0;
    while (j < t->n_cores) {
        for (uint32_t nd = 0; nd < t->n_nodes && j < t->n_cores; nd++) {
            uint32_t c = next[nd];
            while (c < t->n_cores && t->core_node[c] != nd)
                c++;
            next[nd] = c + 1;
            if (c < t->n_cores)
                t->place[j++] = (uint16_t)c;
        }
    }
}

static const char *plural(uint32_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

static ts_status parse_range(const char *range, uint32_t *lo, uint32_t *hi, ts_err *err)
{
    *lo = 0;
    *hi = UINT32_MAX;
    if (!range || !*range)
        return TS_OK;
    const char *end = range + strlen(range);
    const char *dash = strchr(range, '-');
    bool ok = dash ? parse_u32(range, dash, lo) && parse_u32(dash + 1, end, hi)
                   : parse_u32(range, end, lo);
    if (!dash)
        *hi = *lo;
    if (!ok || *lo > *hi)
        return set_err(err, TS_E_ARG, "cpu range '%s': expected A-B with A <= B", range);
    return TS_OK;
}

static ts_status parse_fake(const char *spec, uint32_t *nodes, uint32_t *cores, ts_err *err)
{
    const char *x = strchr(spec, 'x');
    const char *end = spec + strlen(spec);
    if (!x || !parse_u32(spec, x, nodes) || !parse_u32(x + 1, end, cores) || *nodes == 0 ||
        *cores == 0 || *nodes > TS_TOPO_MAX_NODES ||
        (uint64_t)*nodes * *cores > TS_TOPO_MAX_CORES)
        return set_err(err, TS_E_ARG,
                       "TESSERA_TOPO='%s': expected <nodes>x<cores>, e.g. 2x4 "
                       "(nodes 1..%d, nodes*cores <= %d)",
                       spec, TS_TOPO_MAX_NODES, TS_TOPO_MAX_CORES);
    return TS_OK;
}

ts_status ts_topo_detect_range(ts_topo *out, const char *cpu_range, ts_err *err)
{
    uint32_t lo, hi, f_nodes = 0, f_cores = 0;
    ts_status st;
    memset(out, 0, sizeof(*out));
    const char *spec = getenv("TESSERA_TOPO");
    if (spec && *spec) {
        st = parse_fake(spec, &f_nodes, &f_cores, err);
        if (st != TS_OK)
            return st;
    }
    st = parse_range(cpu_range, &lo, &hi, err);
    if (st != TS_OK)
        return st;
    real_cpus *r = malloc(sizeof(*r));
    if (!r)
        return set_err(err, TS_E_NOMEM, "topology: out of memory");
    st = read_hwloc(r, lo, hi, err);
    if (st != TS_OK) {
        free(r);
        return st;
    }
    out->n_pus = r->n_pus;
    out->n_packages = r->n_packages;
    out->n_l3 = r->n_l3;
    if (f_nodes) {
        out->fake = true;
        out->n_nodes = f_nodes;
        out->n_cores = f_nodes * f_cores;
        for (uint32_t c = 0; c < out->n_cores; c++) {
            out->core_node[c] = (uint16_t)(c / f_cores);
            out->core_l3[c] = (uint16_t)(c / f_cores);
        }
        build_place(out);
        /* Real CPU j % n_real for the j-th placed core: distinct CPUs first.
         * A fake node's memory node is the real node of its first core. */
        for (uint32_t j = 0; j < out->n_cores; j++) {
            out->core_os[out->place[j]] = r->os[j % r->n];
            r->fake_node[out->place[j]] = r->node[j % r->n];
        }
        for (uint32_t nd = 0; nd < f_nodes; nd++)
            out->node_os[nd] = r->node_os[r->fake_node[nd * f_cores]];
        snprintf(out->desc, sizeof(out->desc), "fake %u %s x %u %s (TESSERA_TOPO) on %u %s",
                 f_nodes, plural(f_nodes, "NUMA node", "NUMA nodes"), f_cores,
                 plural(f_cores, "core", "cores"), r->n, plural(r->n, "CPU", "CPUs"));
    } else {
        out->n_nodes = r->n_nodes;
        out->n_cores = r->n;
        memcpy(out->core_os, r->os, r->n * sizeof(r->os[0]));
        memcpy(out->core_node, r->node, r->n * sizeof(r->node[0]));
        memcpy(out->core_l3, r->l3, r->n * sizeof(r->l3[0]));
        memcpy(out->node_os, r->node_os, sizeof(out->node_os));
        build_place(out);
        snprintf(out->desc, sizeof(out->desc), "%u %s, %u %s, %u %s, %u %s", r->n_packages,
                 plural(r->n_packages, "package", "packages"), r->n_nodes,
                 plural(r->n_nodes, "NUMA node", "NUMA nodes"), r->n,
                 plural(r->n, "core", "cores"), r->n_pus, plural(r->n_pus, "PU", "PUs"));
    }
    free(r);
    return TS_OK;
}

ts_status ts_topo_detect(ts_topo *out, ts_err *err)
{
    return ts_topo_detect_range(out, NULL, err);
}

uint32_t ts_topo_worker_core(const ts_topo *t, uint32_t worker)
{
    return t->place[worker % t->n_cores];
}

size_t ts_topo_format_plan(const ts_topo *t, uint32_t n_workers, char *buf, size_t cap)
{
    size_t len = 0;
    char line[160];
    if (n_workers == 0)
        n_workers = t->n_cores;
    if (cap)
        buf[0] = 0;
    for (uint32_t w = 0; w <= n_workers; w++) {
        int n;
        if (w == 0) {
            n = snprintf(line, sizeof(line), "topology: %s; %u %s\n", t->desc, n_workers,
                         plural(n_workers, "worker", "workers"));
        } else {
            uint32_t c = ts_topo_worker_core(t, w - 1);
            n = snprintf(line, sizeof(line), "worker %u: node %u, core %u, cpu %u%s\n", w - 1,
                         t->core_node[c], c, t->core_os[c], w == 1 ? " (caller)" : "");
        }
        if (n < 0)
            continue;
        if (cap && len + 1 < cap) {
            size_t room = cap - 1 - len;
            size_t take = (size_t)n < room ? (size_t)n : room;
            memcpy(buf + len, line, take);
            buf[len + take] = 0;
        }
        len += (size_t)n;
    }
    return len;
}

void ts_topo_keep_node(ts_topo *t, uint32_t node)
{
    uint32_t n = 0, have = 0;
    for (uint32_t c = 0; c < t->n_cores; c++)
        have += t->core_node[c] == node;
    if (node >= t->n_nodes || have == 0) /* e.g. a memory-only node: keep everything */
        return;
    for (uint32_t c = 0; c < t->n_cores; c++) {
        if (t->core_node[c] != node)
            continue;
        t->core_os[n] = t->core_os[c];
        t->core_l3[n] = t->core_l3[c];
        t->core_node[n] = 0;
        n++;
    }
    uint32_t os = t->node_os[node];
    memset(t->node_os, 0, sizeof(t->node_os));
    t->node_os[0] = os;
    t->n_cores = n;
    t->n_nodes = 1;
    build_place(t);
    size_t len = strlen(t->desc);
    snprintf(t->desc + len, sizeof(t->desc) - len, "; only node %u (%u %s)", node, n,
             plural(n, "core", "cores"));
}
