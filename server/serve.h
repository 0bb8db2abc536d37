/*
 * server/serve.h: `tessera serve`, an OpenAI-compatible HTTP server on the
 * batch engine (core/tessera.h ts_batch_run). tools/cmd_serve.c parses the
 * flags into srv_opts and calls srv_run, which returns the process's exit
 * status (0 after SIGINT/SIGTERM, 1 when it could not start).
 */
#ifndef TS_SERVER_SERVE_H
#define TS_SERVER_SERVE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *model_path;
    const char *host;          /* "127.0.0.1" (default), "::1", "0.0.0.0", "::" */
    int port;                  /* 8080; 0 = any free port (printed on stderr) */
    int parallel;              /* sequences decoding at once (-np) */
    int n_ctx;                 /* positions per sequence (-c); 0 = min(model, 4096) */
    int kv_size;               /* KV pool positions; 0 = n_ctx x parallel */
    int batch_tokens;          /* step token budget (-b); 0 = 512 */
    int chunk;                 /* prompt tokens of one sequence per step; 0 = budget */
    int schedule;              /* ts_schedule */
    int threads;               /* inference pool threads (-t); 0 = one per core */
    int http_threads;          /* unused: one thread per connection (libmicrohttpd) */
    int numa;                  /* ts_numa_mode */
    const char *cpu_range;     /* pool CPUs "A-B" */
    int kv_k, kv_v; /* ts_kv_type of the K and V caches */
    bool no_prefix_cache;
    const char *api_key;       /* NULL = no key */
    const char *chat_template; /* NULL = from the GGUF */
    const char *alias;         /* model id in responses; NULL = the file's basename */
    int timeout_s;             /* connection idle timeout (read/write); 600 */
    long long n_predict;       /* default max_tokens when a request gives none; -1 = context */
    int max_queue;             /* requests waiting for a sequence before 503; 0 = 256 */
    size_t max_body;           /* request body bytes before 413; 0 = 8 MiB */
    const char *port_file;     /* write the bound port here once listening (tests) */
} srv_opts;

int srv_run(const srv_opts *o);

#endif
