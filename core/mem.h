/*
 * core/mem.h: node-placed memory (internal to core/).
 *
 * A ts_node_buf is one allocation meant to live on one NUMA node. With libnuma
 * usable and the node present, it is an anonymous mapping whose policy prefers
 * that node (mbind MPOL_PREFERRED: a full node spills over instead of failing)
 * and whose pages are not touched here: whoever writes them first (the node's
 * own workers, core/place.c) faults them in on the node. Otherwise (no libnuma
 * support, a kernel without NUMA, a node number that does not exist, as on fake
 * topologies) it is a plain 64-byte-aligned allocation, and callers run the very
 * same code path on it.
 */
#ifndef TS_MEM_H
#define TS_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tessera.h"

typedef struct {
    void *p;        /* 64-byte aligned (page aligned when mapped) */
    size_t bytes;   /* usable length */
    size_t mapped;  /* mapping length, 0 for the plain fallback */
    int os_node;    /* the OS node asked for */
    bool bound;     /* the node policy was applied */
} ts_node_buf;

/* Allocates bytes (> 0) for OS node os_node (< 0: no node). Pages are left
 * untouched. TS_E_NOMEM on failure. */
ts_status ts_mem_alloc_node(ts_node_buf *b, size_t bytes, int os_node, ts_err *err);
/* Frees b (zeroed afterwards); a zeroed buf is ok. */
void ts_mem_free_node(ts_node_buf *b);
/* True when node policies can be applied on this machine (libnuma + kernel). */
bool ts_mem_numa_usable(void);
/* Drops this process's pages of the read-only file mapping over [p, p + bytes)
 * (whole pages inside it only): they are copied elsewhere now, and a later read
 * faults them back in from the file. Never for writable memory. */
void ts_mem_drop_mapped(const void *p, size_t bytes);
/* OS node of the (touched) page holding p, or -1 when unknown. */
int ts_mem_node_of(const void *p);

#endif
