/*
 * tools/tessera.c: the `tessera` executable: subcommand dispatch only (the
 * helpers the subcommands share are in tools/cli.c). Only tools/ may exit();
 * the library reports through ts_status.
 */
#include "cmds.h"
#include "fileio.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} command;

/* SIGINT/SIGTERM/SIGHUP while a file is being written: remove the writer's
 * temporary (the target was never touched), then die of the same signal. */
static void on_fatal_signal(int sig)
{
    ts_safefile_signal_cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_signals(void)
{
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        struct sigaction sa = {.sa_handler = on_fatal_signal};
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
    /* Past RLIMIT_FSIZE a write fails with EFBIG and is reported, instead of
     * SIGXFSZ killing the process with its temporary left behind. */
    signal(SIGXFSZ, SIG_IGN);
}

static void usage(const command *cmds, size_t n)
{
    fprintf(stderr, "usage: tessera <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "  %-13s %s\n", cmds[i].name, cmds[i].help);
}

int main(int argc, char **argv)
{
    const command cmds[] = {
        {"run", cmd_run, "generate text from a prompt"},
        {"serve", cmd_serve, "OpenAI-compatible HTTP server (many requests at once)"},
        {"bench", cmd_bench, "prefill/decode benchmark (llama-bench conventions)"},
        {"batched-bench", cmd_batched_bench, "many sequences per step (llama-batched-bench)"},
        {"info", cmd_info, "summarise a GGUF model"},
        {"tokenize", cmd_tokenize, "print the token ids of a text"},
        {"logits", cmd_logits, "write float32 logits for every position"},
        {"gen", cmd_gen, "write a synthetic GGUF model at a named shape"},
        {"quantize", cmd_quantize, "re-quantize a GGUF model"},
    };
    const size_t n = sizeof(cmds) / sizeof(cmds[0]);
    install_signals();
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(cmds, n);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(argv[1], cmds[i].name))
            continue;
        if (!cmds[i].fn) {
            ts_cli_error(argv[1], "not built in this version");
            return 2;
        }
        return cmds[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "tessera: unknown command '%s'\n", argv[1]);
    usage(cmds, n);
    return 2;
}
