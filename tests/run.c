/*
 * tests/run.c: the test runner. Runs every registered test (or those whose
 * name contains any of the arguments), prints PASS/FAIL/SKIP per test and,
 * last, the line "N passed, N failed, N skipped" that CI parses; exits
 * non-zero on any failure. Tests run in registration order, in-process.
 */
#include "test.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *name;
    ts_test_fn fn;
} test_case;

static test_case g_tests[1024];
static int g_n_tests;
static int g_cur_failed, g_cur_skipped;
static char g_tmpdir[256];

void ts_test_register(const char *name, ts_test_fn fn)
{
    if (g_n_tests < (int)(sizeof(g_tests) / sizeof(g_tests[0])))
        g_tests[g_n_tests++] = (test_case){name, fn};
}

void ts_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    if (g_cur_failed < 20) {
        fprintf(stdout, "    %s:%d: ", file, line);
        va_start(ap, fmt);
        vfprintf(stdout, fmt, ap);
        va_end(ap);
        fputc('\n', stdout);
    }
    g_cur_failed++;
}

void ts_test_skip(const char *fmt, ...)
{
    va_list ap;
    fprintf(stdout, "    skip: ");
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    g_cur_skipped = 1;
}

bool ts_test_failed(void) { return g_cur_failed > 0; }

const char *ts_test_shared(void)
{
    static char path[512];
    static int done;
    if (!done) {
        const char *env = getenv("TESSERA_SHARED");
        struct stat st;
        snprintf(path, sizeof(path), "%s", env && *env ? env : "../shared");
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            path[0] = 0;
        done = 1;
    }
    return path[0] ? path : NULL;
}

const char *ts_test_bin(void)
{
    /* Absolute, so tests may cd into their own directory first. */
    static char abs[4096];
    const char *env = getenv("TESSERA_BIN");
    const char *bin = env && *env ? env : "build/release/tessera";
    return realpath(bin, abs) ? abs : bin;
}

const char *ts_test_tmpdir(void)
{
    if (!g_tmpdir[0]) {
        snprintf(g_tmpdir, sizeof(g_tmpdir), "/tmp/tessera-test-XXXXXX");
        if (!mkdtemp(g_tmpdir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return g_tmpdir;
}

int ts_test_sh(char *out, size_t cap, int timeout_s, const char *fmt, ...)
{
    char cmd[8192], full[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    /* The command travels in the environment so no quoting can break it. */
    setenv("TS_TEST_CMD", cmd, 1);
    snprintf(full, sizeof(full), "timeout -k 5 %d sh -c \"$TS_TEST_CMD\" 2>&1", timeout_s);
    FILE *p = popen(full, "r");
    if (!p)
        return -1;
    size_t n = 0;
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof(buf), p)) > 0) {
        if (out && n + 1 < cap) {
            size_t take = got < cap - 1 - n ? got : cap - 1 - n;
            memcpy(out + n, buf, take);
            n += take;
        }
    }
    if (out && cap)
        out[n] = 0;
    int st = pclose(p);
    if (st == -1)
        return -1;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

uint64_t ts_test_rand(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

float ts_test_randf(uint64_t *s)
{
    return (float)((double)(ts_test_rand(s) >> 11) / (double)(1ULL << 53) * 2.0 - 1.0);
}

static void cleanup(void)
{
    if (g_tmpdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", g_tmpdir);
    }
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0, skipped = 0;
    atexit(cleanup);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < g_n_tests; i++) {
        bool match = argc < 2; /* no filter: every test */
        for (int a = 1; a < argc && !match; a++)
            match = strstr(g_tests[i].name, argv[a]) != NULL;
        if (!match)
            continue;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        g_cur_failed = 0;
        g_cur_skipped = 0;
        g_tests[i].fn();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        const char *tag = g_cur_failed ? "FAIL" : g_cur_skipped ? "SKIP" : "PASS";
        printf("%s %s (%.0f ms)\n", tag, g_tests[i].name, ms);
        if (g_cur_failed)
            failed++;
        else if (g_cur_skipped)
            skipped++;
        else
            passed++;
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
