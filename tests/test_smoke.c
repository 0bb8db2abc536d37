/* tests/test_smoke.c: the CLI exists and rejects nonsense cleanly. */
#include <stdio.h>
#include <string.h>

#include "test.h"

TS_TEST(test_cli_unknown_command)
{
    char out[1024];
    int rc = ts_test_sh(out, sizeof(out), 30, "%s no-such-command", ts_test_bin());
    TS_CHECK(rc == 2, "exit %d, want 2: %s", rc, out);
}

/* bench --sweep-ctx: one row per depth in the table and the CSV, the SVG's
 * three panels, a quantized cache; a hybrid model (no rollback) still
 * sweeps; malformed ranges are usage errors. */
TS_TEST(test_smoke_bench_sweep_ctx)
{
    char model[512], hyb[512], csv[512], svg[512], out[8192];
    snprintf(model, sizeof(model), "%s/sweepctx.gguf", ts_test_tmpdir());
    snprintf(hyb, sizeof(hyb), "%s/sweepctx-q35.gguf", ts_test_tmpdir());
    snprintf(csv, sizeof(csv), "%s/sweepctx.csv", ts_test_tmpdir());
    snprintf(svg, sizeof(svg), "%s/sweepctx.svg", ts_test_tmpdir());
    int rc = ts_test_sh(out, sizeof(out), 120,
                        "%s gen --shape tiny --type q8_0 -o %s && "
                        "%s gen --shape micro --arch qwen35 --type q4_0 -o %s",
                        ts_test_bin(), model, ts_test_bin(), hyb);
    TS_REQUIRE(rc == 0, "gen: exit %d: %s", rc, out);
    rc = ts_test_sh(out, sizeof(out), 120,
                    "%s bench -m %s --sweep-ctx 0:130:65 -p 16 -n 3 -r 2 -t 2 -ctk q8_0 "
                    "-ctv q4_0 --sweep-csv %s --sweep-svg %s && cat %s && grep -c '<polyline' %s",
                    ts_test_bin(), model, csv, svg, csv, svg);
    TS_CHECK(rc == 0 && strstr(out, "| 130 |") && strstr(out, "q8_0/q4_0") &&
                 strstr(out, "model,threads,kv_type,depth") && strstr(out, ",q8_0/q4_0,65,16,") &&
                 strstr(out, "\n4\n"),
             "sweep-ctx: exit %d: %s", rc, out);
    rc = ts_test_sh(out, sizeof(out), 120, "%s bench -m %s --sweep-ctx 0:40:20 -p 8 -n 2 -t 1",
                    ts_test_bin(), hyb);
    TS_CHECK(rc == 0 && strstr(out, "one rep per depth") && strstr(out, "| 40 |"),
             "sweep-ctx on a hybrid: exit %d: %s", rc, out);
    rc = ts_test_sh(out, sizeof(out), 60, "%s bench -m %s --sweep-ctx 0:40:5 -p 8 -n 2 -t 1",
                    ts_test_bin(), hyb);
    TS_CHECK(rc == 1 && strstr(out, "already held"), "hybrid step too small: exit %d: %s", rc,
             out);
    static const char *bad[] = {"5:1:1", "0:10", "0:10:0", "a:b:c", "0:100000:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rc = ts_test_sh(out, sizeof(out), 30, "%s bench -m %s --sweep-ctx %s", ts_test_bin(),
                        model, bad[i]);
        TS_CHECK(rc == 2 && strstr(out, "--sweep-ctx"), "--sweep-ctx %s: exit %d: %s", bad[i],
                 rc, out);
    }
    rc = ts_test_sh(out, sizeof(out), 30, "%s bench -m %s --sweep-ctx 0:64:32 -t 1,2",
                    ts_test_bin(), model);
    TS_CHECK(rc == 2, "--sweep-ctx with two thread counts: exit %d: %s", rc, out);
}

/* bench --attn: the kernel table with its peak line, for a plain and a q8_0
 * K cache; bad lists are usage errors. */
TS_TEST(test_smoke_bench_attn)
{
    char out[8192];
    int rc = ts_test_sh(out, sizeof(out), 60, "%s bench --attn -p 3,65 -d 100,130 -r 1",
                        ts_test_bin());
    TS_CHECK(rc == 0 && strstr(out, "f32 FMA") && strstr(out, "| 65 | 130 |") &&
                 strstr(out, "% of peak"),
             "bench --attn: exit %d: %s", rc, out);
    rc = ts_test_sh(out, sizeof(out), 60, "%s bench --attn -p 1 -d 70 -r 1 -ctk q8_0 -ctv bf16",
                    ts_test_bin());
    TS_CHECK(rc == 0 && strstr(out, "int8") && strstr(out, "q8_0/bf16") && strstr(out, "| 1 | 70 |"),
             "bench --attn q8_0: exit %d: %s", rc, out);
    rc = ts_test_sh(out, sizeof(out), 30, "%s bench --attn -d 0", ts_test_bin());
    TS_CHECK(rc == 2 && strstr(out, "--attn"), "bench --attn -d 0: exit %d: %s", rc, out);
}
