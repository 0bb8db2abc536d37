/*
 * tools/cli.c: helpers the tessera subcommands share (error lines, strict
 * integer parsing, timing and peak RSS), apart from tools/tessera.c's main()
 * so that other programs can link a subcommand: the fuzz harnesses call
 * cmd_gen to write the vocabulary they fall back to (tests/fuzz/).
 */
#include "cmds.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

void ts_cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "tessera %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

double ts_cli_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double ts_cli_peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
}

void ts_cli_bench_tokens(int32_t *toks, long long n, int64_t n_vocab)
{
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    for (long long i = 0; i < n; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((rng >> 33) % (uint64_t)n_vocab);
    }
}

int ts_cli_kv_option(const char *o, const char *v, int *kt, int *vt)
{
    const bool both = !strcmp(o, "--kv-type");
    const bool k = both || !strcmp(o, "-ctk") || !strcmp(o, "--cache-type-k");
    const bool vv = both || !strcmp(o, "-ctv") || !strcmp(o, "--cache-type-v");
    if (!k && !vv)
        return 0;
    const int t = v ? ts_kv_type_parse(v) : -1;
    if (t < 0)
        return -1;
    if (k)
        *kt = t;
    if (vv)
        *vt = t;
    return 1;
}

const char *ts_cli_kv_desc(int kt, int vt, char *buf, size_t cap)
{
    if (kt == vt)
        snprintf(buf, cap, "%s", ts_kv_type_name(kt));
    else
        snprintf(buf, cap, "%s/%s", ts_kv_type_name(kt), ts_kv_type_name(vt));
    return buf;
}

int ts_cli_parse_i64(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    if (!s || !*s)
        return 0;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

bool ts_cli_parse_list(const char *s, long long lo, long long hi, ts_cli_list *out)
{
    char buf[256];
    if (!s || strlen(s) >= sizeof(buf))
        return false;
    strcpy(buf, s);
    out->n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (out->n == TS_CLI_MAX_LIST || !ts_cli_parse_i64(tok, lo, hi, &out->v[out->n]))
            return false;
        out->n++;
    }
    return out->n > 0;
}
