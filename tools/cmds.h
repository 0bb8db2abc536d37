/*
 * tools/cmds.h: the tessera subcommands. Each lives in tools/cmd_<name>.c and
 * returns the process exit status (0 ok, 1 runtime error, 2 usage error).
 * Declarations are weak so a subcommand not yet built reports so cleanly.
 */
#ifndef TS_CMDS_H
#define TS_CMDS_H

#include <stdbool.h>
#include <stdio.h>

#include "tessera.h"

#define TS_CMD(name) int cmd_##name(int argc, char **argv) __attribute__((weak))
TS_CMD(info);
TS_CMD(gen);
TS_CMD(quantize);
TS_CMD(tokenize);
TS_CMD(run);
TS_CMD(logits);
TS_CMD(bench);
TS_CMD(batched_bench);
TS_CMD(serve);
#undef TS_CMD

/* Monotonic seconds, and this process's peak RSS in MiB (getrusage), for the
 * timing lines of run and bench. */
double ts_cli_now_s(void);
double ts_cli_peak_rss_mib(void);
/* Prints "tessera <cmd>: <msg>" to stderr. */
void ts_cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One line on the weight placement (mode, nodes, MiB per node; the total
 * memory cost for replicate) when the engine placed anything (tools/numa_cli.c). */
void ts_cli_print_numa(FILE *f, const ts_engine *eng, const ts_engine_info *info);

/* The KV cache type options of every command that makes a cache: --kv-type T
 * (K and V), -ctk / --cache-type-k T and -ctv / --cache-type-v T (llama.cpp's
 * names), T one of f16 f32 bf16 q8_0 q4_0. Returns 1 when o is one of them and
 * v parsed into *kt and / or *vt, -1 when o is one of them and v is bad or
 * missing, 0 when o is none of them. */
int ts_cli_kv_option(const char *o, const char *v, int *kt, int *vt);
#define TS_CLI_KV_TYPES "f16|f32|bf16|q8_0|q4_0"
/* "f16", or "q8_0/f16" when K and V differ (for summaries); buf of >= 16. */
const char *ts_cli_kv_desc(int kt, int vt, char *buf, size_t cap);

/* The benches' n token ids: a fixed LCG stream over [0, n_vocab), the same in
 * every bench (so tests at one depth see the same context). */
void ts_cli_bench_tokens(int32_t *toks, long long n, int64_t n_vocab);

/* Strict integer parse of a whole string; false on junk/overflow/out of [lo, hi]. */
int ts_cli_parse_i64(const char *s, long long lo, long long hi, long long *out);

/* A comma-separated list of integers in [lo, hi] (llama-bench's "-p 128,512"). */
#define TS_CLI_MAX_LIST 16
typedef struct {
    long long v[TS_CLI_MAX_LIST];
    int n;
} ts_cli_list;
bool ts_cli_parse_list(const char *s, long long lo, long long hi, ts_cli_list *out);

#endif
