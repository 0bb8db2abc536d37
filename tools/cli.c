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
