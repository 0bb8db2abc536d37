/*
 * tools/cmd_info.c: `tessera info M`: what a GGUF holds and what this
 * machine will do with it: architecture, hyper-parameters, vocabulary,
 * tensor table with types and sizes, file size, the ISA level this CPU gets
 * and the topology with the worker plan (-t N, --numa MODE, --cpu-range A-B:
 * which worker on which core of which node, and about how many weight bytes
 * each node would hold). Loading validates the whole file (GGUF structure,
 * tokenizer arrays and special ids): a bad file is one line and exit 1.
 */
#include "cmds.h"
#include "../core/dense.h"
#include "../core/gguf.h"
#include "../core/matmul.h"
#include "../core/tokenizer.h"
#include "../quant/quant.h"
#include "../sched/sched.h"
#include "../simd/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_scalar(const ts_gguf_kv *kv)
{
    char buf[128];
    switch (kv->type) {
    case TS_GGUF_STR:
        printf("%s", ts_str_copy(kv->str, buf, sizeof(buf)));
        if (kv->str.len >= sizeof(buf))
            printf("... (%llu bytes)", (unsigned long long)kv->str.len);
        break;
    case TS_GGUF_F32: {
        float f;
        memcpy(&f, kv->val, 4);
        printf("%g", f);
        break;
    }
    case TS_GGUF_F64: {
        double d;
        memcpy(&d, kv->val, 8);
        printf("%g", d);
        break;
    }
    case TS_GGUF_BOOL: printf("%s", kv->val[0] ? "true" : "false"); break;
    case TS_GGUF_ARR: printf("[%llu items]", (unsigned long long)kv->arr_n); break;
    default: {
        int64_t v = 0;
        switch (kv->type) {
        case TS_GGUF_U8: v = kv->val[0]; break;
        case TS_GGUF_I8: v = (int8_t)kv->val[0]; break;
        case TS_GGUF_U16: { uint16_t x; memcpy(&x, kv->val, 2); v = x; break; }
        case TS_GGUF_I16: { int16_t x; memcpy(&x, kv->val, 2); v = x; break; }
        case TS_GGUF_U32: { uint32_t x; memcpy(&x, kv->val, 4); v = x; break; }
        case TS_GGUF_I32: { int32_t x; memcpy(&x, kv->val, 4); v = x; break; }
        case TS_GGUF_U64: {
            uint64_t x;
            memcpy(&x, kv->val, 8);
            printf("%llu", (unsigned long long)x);
            return;
        }
        default: memcpy(&v, kv->val, 8); break;
        }
        printf("%lld", (long long)v);
    }
    }
}

static void human(double bytes, char *buf, size_t cap)
{
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, cap, u ? "%.2f %s" : "%.0f %s", bytes, unit[u]);
}

static void print_tensors(const ts_gguf *g, bool all)
{
    uint64_t n = ts_gguf_n_tensors(g), params = 0, bytes = 0;
    uint64_t per_type[TS_QTYPE_COUNT] = {0};
    for (uint64_t i = 0; i < n; i++) {
        const ts_gguf_tensor *t = ts_gguf_tensor_at(g, i);
        params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        bytes += t->n_bytes;
        if (t->type < TS_QTYPE_COUNT)
            per_type[t->type]++;
    }
    char hb[32];
    human((double)bytes, hb, sizeof(hb));
    printf("tensors: %llu, %.2fM parameters, %s (%.2f bits/weight)\n", (unsigned long long)n,
           params / 1e6, hb, params ? 8.0 * bytes / params : 0.0);
    printf("  types:");
    for (uint32_t t = 0; t < TS_QTYPE_COUNT; t++)
        if (per_type[t])
            printf(" %s=%llu", ts_qtype_name(t), (unsigned long long)per_type[t]);
    printf("\n");
    uint64_t shown = all ? n : (n < 40 ? n : 40);
    for (uint64_t i = 0; i < shown; i++) {
        const ts_gguf_tensor *t = ts_gguf_tensor_at(g, i);
        char name[80], shape[96];
        int len = 0;
        for (uint32_t d = 0; d < t->n_dims; d++)
            len += snprintf(shape + len, sizeof(shape) - (size_t)len, "%s%llu", d ? " x " : "",
                            (unsigned long long)t->ne[d]);
        human((double)t->n_bytes, hb, sizeof(hb));
        printf("  %-34s %-8s %-24s %s\n", ts_str_copy(t->name, name, sizeof(name)),
               ts_qtype_name(t->type), shape, hb);
    }
    if (shown < n)
        printf("  ... %llu more (--all lists every tensor)\n", (unsigned long long)(n - shown));
}

static void print_meta(const ts_gguf *g, const char *arch)
{
    size_t alen = strlen(arch);
    printf("hyper-parameters:\n");
    for (uint64_t i = 0; i < ts_gguf_n_kv(g); i++) {
        const ts_gguf_kv *kv = ts_gguf_kv_at(g, i);
        char key[128];
        ts_str_copy(kv->key, key, sizeof(key));
        if (!alen || strncmp(key, arch, alen) || key[alen] != '.')
            continue;
        printf("  %-40s ", key + alen + 1);
        print_scalar(kv);
        printf("\n");
    }
}

static void print_vocab(const ts_gguf *g, const ts_vocab *v)
{
    if (!v) {
        printf("vocabulary: none\n");
        return;
    }
    printf("vocabulary: %s (pre-tokenizer %s), %d tokens, bos %d, eos %d, add_bos %s\n",
           ts_vocab_model_name(v), ts_vocab_pre_name(v), ts_vocab_n(v), ts_vocab_bos(v),
           ts_vocab_eos(v), ts_vocab_add_bos(v) ? "yes" : "no");
    (void)g;
}

/* The worker plan and where the weights would go (the engine's placement:
 * 2-D matrices split by output rows in proportion to each node's workers). */
static void print_plan(const ts_gguf *g, uint32_t threads, int numa, const char *cpu_range)
{
    ts_err err = {0};
    ts_topo *topo = malloc(sizeof(*topo));
    if (!topo || ts_topo_detect_range(topo, cpu_range, &err) != TS_OK) {
        printf("topology: unavailable (%s)\n", topo ? err.msg : "out of memory");
        free(topo);
        return;
    }
    if (numa == TS_NUMA_ISOLATE)
        ts_topo_keep_node(topo, 0);
    uint32_t nw = threads ? threads : topo->n_cores;
    size_t len = ts_topo_format_plan(topo, nw, NULL, 0);
    char *buf = malloc(len + 1);
    if (buf) {
        ts_topo_format_plan(topo, nw, buf, len + 1);
        fputs(buf, stdout);
        free(buf);
    }
    if (topo->fake)
        printf("  (fake topology from TESSERA_TOPO)\n");
    int mode = numa == TS_NUMA_DEFAULT ? (topo->n_nodes > 1 ? TS_NUMA_DISTRIBUTE : TS_NUMA_NONE)
                                       : numa;
    uint64_t mats = 0;
    for (uint64_t i = 0; i < ts_gguf_n_tensors(g); i++) {
        const ts_gguf_tensor *t = ts_gguf_tensor_at(g, i);
        char name[80];
        ts_str_copy(t->name, name, sizeof(name));
        if (t->n_dims == 2 && strcmp(name, "token_embd.weight"))
            mats += t->n_bytes;
    }
    uint32_t on_node[TS_TOPO_MAX_NODES] = {0};
    for (uint32_t w = 0; w < nw; w++)
        on_node[topo->core_node[ts_topo_worker_core(topo, w)]]++;
    printf("numa: %s", ts_numa_name(mode));
    if (mode != TS_NUMA_NONE) {
        printf(", about:");
        for (uint32_t n = 0; n < topo->n_nodes; n++) {
            double share = mode == TS_NUMA_REPLICATE ? (on_node[n] ? 1.0 : 0.0)
                                                     : (double)on_node[n] / nw;
            char hb[32];
            human((double)mats * share, hb, sizeof(hb));
            printf(" node %u (os %u) %s;", n, topo->node_os[n], hb);
        }
    }
    printf("\n");
    free(topo);
}

int cmd_info(int argc, char **argv)
{
    const char *path = NULL, *cpu_range = NULL;
    bool all = false;
    long long threads = 0;
    int numa = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--all"))
            all = true;
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) {
            if (!ts_cli_parse_i64(argv[++i], 1, 1024, &threads)) {
                ts_cli_error("info", "-t wants an integer in [1, 1024]");
                return 2;
            }
        } else if (!strcmp(argv[i], "--numa") && i + 1 < argc) {
            if ((numa = ts_numa_parse(argv[++i])) < 0) {
                ts_cli_error("info", "--numa wants distribute, replicate, isolate or none");
                return 2;
            }
        } else if (!strcmp(argv[i], "--cpu-range") && i + 1 < argc)
            cpu_range = argv[++i];
        else if (!strcmp(argv[i], "-m") && i + 1 < argc)
            path = argv[++i];
        else if (argv[i][0] == '-') {
            ts_cli_error("info", "unknown option '%s' (usage: tessera info [-m] MODEL [--all] "
                         "[-t N] [--numa MODE] [--cpu-range A-B])", argv[i]);
            return 2;
        } else if (!path)
            path = argv[i];
        else {
            ts_cli_error("info", "unexpected argument '%s'", argv[i]);
            return 2;
        }
    }
    if (!path) {
        ts_cli_error("info", "usage: tessera info [-m] MODEL [--all]");
        return 2;
    }
    ts_err err = {0};
    ts_gguf *g = NULL;
    if (ts_gguf_open(&g, path, &err) != TS_OK) {
        ts_cli_error("info", "%s", err.msg);
        return 1;
    }
    ts_vocab *v = NULL;
    if (ts_gguf_kv_find(g, "tokenizer.ggml.model") && ts_vocab_load(&v, g, &err) != TS_OK) {
        ts_cli_error("info", "%s: %s", path, err.msg);
        ts_gguf_close(g);
        return 1;
    }
    ts_str arch_s = {"", 0};
    char arch[64] = "", name[128] = "", hb[32];
    if (ts_gguf_get_str(g, "general.architecture", &arch_s, NULL, &err) != TS_OK) {
        ts_cli_error("info", "%s: %s", path, err.msg);
        ts_vocab_destroy(v);
        ts_gguf_close(g);
        return 1;
    }
    ts_str_copy(arch_s, arch, sizeof(arch));
    ts_str nm = {"", 0};
    if (ts_gguf_get_str(g, "general.name", &nm, NULL, &err) == TS_OK)
        ts_str_copy(nm, name, sizeof(name));
    human((double)ts_gguf_file_bytes(g), hb, sizeof(hb));
    printf("file: %s (%s, GGUF v%u, %llu metadata keys, alignment %llu)\n", path, hb,
           ts_gguf_version(g), (unsigned long long)ts_gguf_n_kv(g),
           (unsigned long long)ts_gguf_alignment(g));
    printf("architecture: %s%s%s%s\n", arch[0] ? arch : "(none)", name[0] ? " (" : "", name,
           name[0] ? ")" : "");
    char pattern[512];
    ts_err merr = {0};
    if (ts_model_layer_pattern(path, pattern, sizeof(pattern), &merr) == TS_OK)
        printf("layers: %s\n", pattern);
    else
        printf("model: %s\n", merr.msg);
    print_meta(g, arch);
    print_vocab(g, v);
    print_tensors(g, all);

    ts_isa det = ts_isa_detect(), use = ts_isa_from_env();
    printf("isa: %s (cpu supports %s)\n", ts_isa_name(use), ts_isa_name(det));
    if (*ts_mm_tune_report()) /* AMX hosts: which level's kernel each layout runs */
        printf("kernels timed (TESSERA_KTUNE): %s\n", ts_mm_tune_report());
    printf("blas: %s\n", ts_dense_blas_info());
    print_plan(g, (uint32_t)threads, numa, cpu_range);
    ts_vocab_destroy(v);
    ts_gguf_close(g);
    return 0;
}
