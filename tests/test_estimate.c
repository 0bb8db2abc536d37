/*
 * tests/test_estimate.c: tessera run --dry-run's prediction (core/estimate.c)
 * against the peak RSS the run then reports, within 10%, at a short and a
 * long prompt on a generated model whose weights dominate (the Qwen2.5-0.5B
 * shape cut to 2 layers). Peak RSS means nothing under a sanitizer (shadow
 * memory), so the test skips on a sanitized binary; `make check-rss` runs it
 * on the release build (CI does).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

static double field(const char *out, const char *key)
{
    const char *p = strstr(out, key);
    return p ? atof(p + strlen(key)) : -1.0;
}

TS_TEST(test_estimate_matches_peak_rss)
{
    char out[8192], path[512];
    if (ts_test_sh(NULL, 0, 10, "grep -q -a -e __asan_init -e __tsan_init %s", ts_test_bin()) ==
        0) {
        ts_test_skip("sanitized binary: peak RSS is not comparable (make check-rss runs this)");
        return;
    }
    snprintf(path, sizeof(path), "%s/est.gguf", ts_test_tmpdir());
    int rc = ts_test_sh(out, sizeof(out), 300,
                        "%s gen --shape qwen-0.5b --type q8_0 --layers 2 -o %s", ts_test_bin(),
                        path);
    TS_REQUIRE(rc == 0, "gen: %s", out);
    static const int words[] = {60, 900};
    for (int i = 0; i < 2; i++) {
        char prompt[600];
        snprintf(prompt, sizeof(prompt), "%s/est-%d.txt", ts_test_tmpdir(), words[i]);
        rc = ts_test_sh(NULL, 0, 10,
                        "awk 'BEGIN{for(i=0;i<%d;i++) printf \"word%%d \", i%%97}' > %s",
                        words[i], prompt);
        TS_REQUIRE(rc == 0, "prompt");
        rc = ts_test_sh(out, sizeof(out), 120, "%s run -m %s -f %s -n 8 --temp 0 -t 2 --dry-run",
                        ts_test_bin(), path, prompt);
        const double want = field(out, "predicted peak RSS ");
        TS_REQUIRE(rc == 0 && want > 0, "dry run: rc %d: %s", rc, out);
        rc = ts_test_sh(out, sizeof(out), 300, "%s run -m %s -f %s -n 8 --temp 0 -t 2 2>&1",
                        ts_test_bin(), path, prompt);
        const double got = field(out, "peak RSS ");
        TS_REQUIRE(rc == 0 && got > 0, "run: rc %d: %s", rc, out);
        TS_CHECK(got > 0.9 * want && got < 1.1 * want,
                 "%d words: predicted %.1f MiB, measured %.1f MiB", words[i], want, got);
    }
}
