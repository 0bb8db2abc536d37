/*
 * tools/numa_cli.c: the placement line shared by run, bench and logits.
 */
#include "cmds.h"

void ts_cli_print_numa(FILE *f, const ts_engine *eng, const ts_engine_info *info)
{
    if (!info->placed_bytes)
        return;
    const double mib = 1048576.0;
    fprintf(f, "numa: %s over %u %s, %.2f MiB of weights", ts_numa_name(info->numa),
            info->n_nodes, info->n_nodes == 1 ? "node" : "nodes", (double)info->weight_bytes / mib);
    if (info->numa == TS_NUMA_REPLICATE)
        fprintf(f, " x %.0f copies = %.2f MiB placed (+%.2f MiB over one copy)",
                info->weight_bytes ? (double)info->placed_bytes / (double)info->weight_bytes : 0.0,
                (double)info->placed_bytes / mib,
                (double)(info->placed_bytes - info->weight_bytes) / mib);
    fprintf(f, "; per node:");
    for (uint32_t n = 0; n < info->n_nodes; n++)
        fprintf(f, " %u=%.2f MiB", n, (double)ts_engine_node_bytes(eng, n) / mib);
    fprintf(f, "\n");
}
