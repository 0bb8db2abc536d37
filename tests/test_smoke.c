/* tests/test_smoke.c: the CLI exists and rejects nonsense cleanly. */
#include "test.h"

TS_TEST(test_cli_unknown_command)
{
    char out[1024];
    int rc = ts_test_sh(out, sizeof(out), 30, "%s no-such-command", ts_test_bin());
    TS_CHECK(rc == 2, "exit %d, want 2: %s", rc, out);
}
