/*
 * core/mem.c: NUMA-placed allocations (see core/mem.h).
 *
 * Owns: libnuma (the only file that includes numa.h / numaif.h), node-policy
 * mappings and their plain fallback. Does not: decide what goes where
 * (core/place.c) or touch the pages it hands out.
 * Invariants: no output ever depends on which path was taken; nothing here
 * prints (libnuma's own warning printers are never reached: only
 * numa_available, numa_max_node, numa_bitmask_isbitset on numa_all_nodes_ptr
 * and the raw mbind / get_mempolicy wrappers are used).
 */
#include "mem.h"

#include <numa.h>
#include <numaif.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "err.h"

static pthread_once_t g_numa_once = PTHREAD_ONCE_INIT;
static bool g_numa_ok;
static int g_max_node;

static void numa_probe(void)
{
    g_numa_ok = numa_available() >= 0;
    g_max_node = g_numa_ok ? numa_max_node() : -1;
}

bool ts_mem_numa_usable(void)
{
    pthread_once(&g_numa_once, numa_probe);
    return g_numa_ok;
}

static bool node_present(int os_node)
{
    if (!ts_mem_numa_usable() || os_node < 0 || os_node > g_max_node || os_node >= 1024)
        return false;
    return numa_all_nodes_ptr && numa_bitmask_isbitset(numa_all_nodes_ptr, (unsigned)os_node);
}

ts_status ts_mem_alloc_node(ts_node_buf *b, size_t bytes, int os_node, ts_err *err)
{
    memset(b, 0, sizeof(*b));
    b->os_node = os_node;
    if (bytes == 0)
        return ts_err_set(err, TS_E_ARG, "mem: zero-byte node allocation");
    if (node_present(os_node)) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        size_t len = (bytes + page - 1) / page * page;
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
            unsigned long mask[1024 / (8 * sizeof(unsigned long))] = {0};
            mask[(unsigned)os_node / (8 * sizeof(unsigned long))] |=
                1ul << ((unsigned)os_node % (8 * sizeof(unsigned long)));
            b->bound = mbind(p, len, MPOL_PREFERRED, mask, 1024, 0) == 0;
#ifdef MADV_HUGEPAGE
            if (len >= (2u << 20))
                madvise(p, len, MADV_HUGEPAGE); /* advisory; failure is harmless */
#endif
            b->p = p;
            b->bytes = bytes;
            b->mapped = len;
            return TS_OK;
        }
    }
    b->p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!b->p)
        return ts_err_set(err, TS_E_NOMEM, "mem: %zu bytes for node %d", bytes, os_node);
    b->bytes = bytes;
    return TS_OK;
}

void ts_mem_free_node(ts_node_buf *b)
{
    if (b->mapped)
        munmap(b->p, b->mapped);
    else
        free(b->p);
    memset(b, 0, sizeof(*b));
}

void ts_mem_drop_mapped(const void *p, size_t bytes)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)p + page - 1) / page * page;
    uintptr_t hi = ((uintptr_t)p + bytes) / page * page;
    if (p && hi > lo)
        madvise((void *)lo, hi - lo, MADV_DONTNEED); /* advisory: failure only costs RSS */
}

int ts_mem_node_of(const void *p)
{
    if (!ts_mem_numa_usable() || !p)
        return -1;
    int node = -1;
    if (get_mempolicy(&node, NULL, 0, (void *)(uintptr_t)p, MPOL_F_NODE | MPOL_F_ADDR) != 0)
        return -1;
    return node;
}
