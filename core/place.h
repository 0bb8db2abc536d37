/*
 * core/place.h: NUMA placement of the model's weight matrices (internal to core/).
 *
 * Modes (ts_numa_mode, core/tessera.h):
 *   distribute  each 2-D matrix is cut by output rows into one partition per
 *               node, sized by the node's worker count in units of
 *               TS_PLACE_ROW_ALIGN rows; partition p lives on node p.
 *   replicate   every node holding workers gets a full copy; rows are still
 *               assigned to nodes as in distribute (which node's queue a tile
 *               joins), and a tile reads the copy of the node that runs it, so
 *               a stolen tile reads local memory too.
 *   isolate     the pool keeps node 0's cores only (ts_pool_opts.node0_only);
 *               weights are then distributed over that one node.
 *   none        weights stay in the file mapping; tiles carry node 0.
 * A matrix's placement is its ts_qplace (ts_qview.place; NULL = unplaced).
 * Copies are bytes of the mapping, so bits never depend on the mode. Expert
 * stacks (3-D) and the token embedding stay unplaced.
 *
 * The matmul hook (core/matmul.c) is two calls: ts_qplace_row_block cuts the
 * row blocks of a grid inside partitions and names each tile's node, and
 * ts_qplace_rows gives the first weight row of a tile.
 */
#ifndef TS_PLACE_H
#define TS_PLACE_H

#include "matmul.h"
#include "mem.h"

/* Partition boundaries are multiples of this many rows: a multiple of every
 * kernel's MR and of the 16-row repacked groups, so no tile straddles nodes. */
#define TS_PLACE_ROW_ALIGN 64
#define TS_PLACE_MAX_NODES TS_TOPO_MAX_NODES

struct ts_model;

struct ts_qplace {
    uint32_t n_parts;   /* the pool's nodes */
    bool replicated;    /* data[p]: all rows (NULL: node p has no copy) */
    const void *data[TS_PLACE_MAX_NODES]; /* distribute: row row0[p] of part p */
    int64_t row0[TS_PLACE_MAX_NODES + 1]; /* node p owns rows [row0[p], row0[p+1]) */
};

typedef struct ts_placement {
    int mode;                  /* resolved ts_numa_mode */
    uint32_t n_nodes;          /* nodes of the pool */
    uint32_t n_mats;           /* matrices placed */
    uint64_t src_bytes;        /* bytes of one copy of the placed matrices */
    uint64_t node_bytes[TS_PLACE_MAX_NODES];  /* bytes placed on pool node p */
    bool node_bound[TS_PLACE_MAX_NODES];      /* libnuma policy applied on node p */
    int node_os[TS_PLACE_MAX_NODES];          /* OS node number of pool node p */
    ts_node_buf arena[TS_PLACE_MAX_NODES];    /* one allocation per node */
    struct ts_qplace *places;  /* (n_mats) */
} ts_placement;

/* Resolves mode (TS_NUMA_DEFAULT: distribute on a multi-node pool, else none)
 * and places every 2-D weight matrix of m for pool's topology and workers;
 * the copy runs on the pool, each node's workers writing (first-touching)
 * their node's bytes. Sets m->place (also for none: the resolved mode). */
ts_status ts_place_model(struct ts_model *m, ts_pool *pool, int mode, ts_err *err);
/* Repacks every matrix the forward pass multiplies by into the layout this
 * CPU's kernels stream best (ts_mm_prepare), in parallel on the pool, and
 * drops the source pages from the file mapping. Expert stacks only get their
 * repacked views and buffers here: ts_moe_run repacks each expert the first
 * time it is routed to (m->lazy_exps), so unrouted experts take no memory.
 * Call before ts_place_model. Output bits do not change: repacked kernels
 * equal the plain ones. */
ts_status ts_place_prepare(struct ts_model *m, ts_pool *pool, ts_err *err);
void ts_place_destroy(ts_placement *pl);

/* Row block rb of a grid with row_parts blocks over w (mr-aligned): sets
 * [*r0, *r0 + *rn) and the owning *node. Unplaced: the plain split,
 * rb < row_parts. Placed: blocks are cut inside each node's rows, up to
 * row_parts + n_parts of them; *rn = 0 marks an unused rb. */
void ts_qplace_row_block(const ts_qview *w, int64_t row_parts, int64_t rb, int64_t mr,
                         int64_t *r0, int64_t *rn, uint16_t *node);
/* Upper bound of rb for ts_qplace_row_block. */
int64_t ts_qplace_n_blocks(const ts_qview *w, int64_t row_parts);
/* First weight row of tile t (row t->row0) as worker scratch s (NULL = none)
 * should read it. */
const char *ts_qplace_rows(const ts_qview *w, const ts_tile *t, const ts_scratch *s);

#endif
