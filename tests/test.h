/*
 * tests/test.h: the test runner's registration and check macros.
 *
 * TS_TEST(name) { ... } defines and registers a test (constructor-time
 * registration builds run.c's {name, fn} table, so test files never collide
 * on one list). TS_CHECK records a failure and continues; TS_REQUIRE returns
 * from the test. ts_test_skip() marks the test skipped (e.g. no ../shared).
 */
#ifndef TS_TEST_H
#define TS_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void (*ts_test_fn)(void);
void ts_test_register(const char *name, ts_test_fn fn);
void ts_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ts_test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool ts_test_failed(void);

#define TS_TEST(name)                                                          \
    static void name(void);                                                    \
    __attribute__((constructor)) static void name##_reg(void)                  \
    {                                                                          \
        ts_test_register(#name, name);                                         \
    }                                                                          \
    static void name(void)

#define TS_CHECK(cond, ...)                                                    \
    do {                                                                       \
        if (!(cond))                                                           \
            ts_test_fail(__FILE__, __LINE__, __VA_ARGS__);                     \
    } while (0)
#define TS_REQUIRE(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            ts_test_fail(__FILE__, __LINE__, __VA_ARGS__);                     \
            return;                                                            \
        }                                                                      \
    } while (0)

/* Path of ../shared (or $TESSERA_SHARED) if it exists, else NULL. */
const char *ts_test_shared(void);
/* Path of the tessera binary under test ($TESSERA_BIN, default build/<mode>/tessera). */
const char *ts_test_bin(void);
/* A fresh directory for this test run's files (removed at exit). */
const char *ts_test_tmpdir(void);
/* Runs a shell command; captures up to cap-1 bytes of stdout+stderr into out
 * (may be NULL). Returns the exit status, 128+sig if killed, -1 on error.
 * Commands time out after timeout_s seconds (exit 124). */
int ts_test_sh(char *out, size_t cap, int timeout_s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Deterministic PRNG for test data. */
uint64_t ts_test_rand(uint64_t *state);
float ts_test_randf(uint64_t *state); /* uniform in [-1, 1) */

#endif
