/*
 * tools/cmd_serve.c: `tessera serve`: flags (spelled as llama-server spells
 * them where it has them: -m -c -np -t -b --host --port --api-key
 * --chat-template --timeout -a/--alias -n) into srv_opts, then server/serve.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/serve.h"
#include "cmds.h"

#define CMD "serve"

static int usage(const char *msg)
{
    ts_cli_error(CMD, "%s (usage: tessera serve -m MODEL [--host 127.0.0.1] [--port 8080] "
                 "[--parallel N] [-c CTX] [--kv-size T] [--batch-tokens B] [--chunk C] "
                 "[--schedule prefill-first|interleaved|decode-priority] [-t T] [--api-key KEY] "
                 "[--chat-template NAME] [--timeout S] [-a ALIAS] [-n N] [--queue N] "
                 "[--max-body BYTES] [--kv-type|-ctk|-ctv " TS_CLI_KV_TYPES "] [--no-prefix-cache] [--numa M] "
                 "[--cpu-range A-B] [--port-file F])", msg);
    return 2;
}

static const char *const KNOWN[] = {
    "-m", "--model", "--host", "--port", "--parallel", "-np", "-c", "--ctx-size", "--kv-size",
    "--batch-tokens", "-b", "--chunk", "--schedule", "-t", "--threads", "--api-key",
    "--chat-template", "-a", "--alias", "--timeout", "-n", "--n-predict", "--queue",
    "--max-body", "--kv-type", "-ctk", "--cache-type-k", "-ctv", "--cache-type-v", "--numa", "--cpu-range", "--port-file"};

static bool known(const char *k)
{
    for (size_t i = 0; i < sizeof(KNOWN) / sizeof(KNOWN[0]); i++)
        if (!strcmp(k, KNOWN[i]))
            return true;
    return false;
}

/* One known option with its value; 1 parsed, 0 bad value. */
static int option(srv_opts *o, const char *k, const char *v)
{
    long long iv = 0;
    if (!strcmp(k, "-m") || !strcmp(k, "--model")) o->model_path = v;
    else if (!strcmp(k, "--host")) o->host = v;
    else if (!strcmp(k, "--port") && ts_cli_parse_i64(v, 0, 65535, &iv)) o->port = (int)iv;
    else if ((!strcmp(k, "--parallel") || !strcmp(k, "-np")) && ts_cli_parse_i64(v, 1, 256, &iv))
        o->parallel = (int)iv;
    else if ((!strcmp(k, "-c") || !strcmp(k, "--ctx-size")) && ts_cli_parse_i64(v, 1, 1 << 24, &iv))
        o->n_ctx = (int)iv;
    else if (!strcmp(k, "--kv-size") && ts_cli_parse_i64(v, 1, 1 << 30, &iv)) o->kv_size = (int)iv;
    else if ((!strcmp(k, "--batch-tokens") || !strcmp(k, "-b")) &&
             ts_cli_parse_i64(v, 1, 1 << 20, &iv))
        o->batch_tokens = (int)iv;
    else if (!strcmp(k, "--chunk") && ts_cli_parse_i64(v, 1, 1 << 24, &iv)) o->chunk = (int)iv;
    else if (!strcmp(k, "--schedule") && ts_schedule_parse(v) >= 0)
        o->schedule = ts_schedule_parse(v);
    else if ((!strcmp(k, "-t") || !strcmp(k, "--threads")) && ts_cli_parse_i64(v, 1, 1024, &iv))
        o->threads = (int)iv;
    else if (!strcmp(k, "--api-key")) o->api_key = v;
    else if (!strcmp(k, "--chat-template")) o->chat_template = v;
    else if ((!strcmp(k, "-a") || !strcmp(k, "--alias"))) o->alias = v;
    else if (!strcmp(k, "--timeout") && ts_cli_parse_i64(v, 1, 86400, &iv)) o->timeout_s = (int)iv;
    else if ((!strcmp(k, "-n") || !strcmp(k, "--n-predict")) &&
             ts_cli_parse_i64(v, -1, 1 << 24, &iv))
        o->n_predict = iv;
    else if (!strcmp(k, "--queue") && ts_cli_parse_i64(v, 1, 1 << 20, &iv)) o->max_queue = (int)iv;
    else if (!strcmp(k, "--max-body") && ts_cli_parse_i64(v, 1024, 1LL << 32, &iv))
        o->max_body = (size_t)iv;
    else if (ts_cli_kv_option(k, v, &o->kv_k, &o->kv_v) > 0)
        ;
    else if (!strcmp(k, "--numa") && ts_numa_parse(v) >= 0) o->numa = ts_numa_parse(v);
    else if (!strcmp(k, "--cpu-range")) o->cpu_range = v;
    else if (!strcmp(k, "--port-file")) o->port_file = v;
    else
        return 0;
    return 1;
}

int cmd_serve(int argc, char **argv)
{
    srv_opts o = {.host = "127.0.0.1", .port = 8080, .parallel = 1, .timeout_s = 600,
                  .n_predict = -1};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "--no-prefix-cache")) {
            o.no_prefix_cache = true;
            continue;
        }
        if (!strcmp(k, "-h") || !strcmp(k, "--help"))
            return usage("help"), 0;
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char msg[200];
        int r = !known(k) ? -1 : v ? option(&o, k, v) : 0;
        if (r < 0) {
            snprintf(msg, sizeof(msg), "unknown option '%s'", k);
            return usage(msg);
        }
        if (r == 0) {
            snprintf(msg, sizeof(msg), "bad or missing value for %s%s%s", k, v ? ": " : "",
                     v ? v : "");
            return usage(msg);
        }
        i++;
    }
    if (!o.model_path)
        return usage("-m MODEL is required");
    return srv_run(&o);
}
