/*
 * tests/srv_client.h: what the server tests need: start `tessera serve` on a
 * free port of 127.0.0.1 (--port 0, --port-file), stop it by its PID, and a
 * small blocking HTTP/1.1 client over raw sockets (chunked bodies decoded),
 * every call bounded in time.
 */
#ifndef TS_TEST_SRV_CLIENT_H
#define TS_TEST_SRV_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;
    int port;
    char log[512]; /* the server's stderr */
} srv_proc;

/* Starts `tessera serve -m model ARGS --port 0 --port-file ...` and waits up to
 * 60 s for /health 200. 0 ok; -1 with the log's tail in why. */
int srv_start(srv_proc *p, const char *model, const char *args, char *why, size_t cap);
/* SIGTERM, then waits up to 20 s (SIGKILL after): the exit status, or -1 if killed. */
int srv_stop(srv_proc *p);

typedef struct {
    int status;
    char *body; /* NUL-terminated, decoded, malloc'ed */
    size_t len;
    char ctype[128];
} http_resp;

/* One request on a fresh connection ("Connection: close"). headers: extra
 * lines each ending "\r\n", or NULL. 0 ok, -1 on a socket error or timeout. */
int http_do(int port, const char *method, const char *path, const char *headers,
            const char *body, size_t len, http_resp *r, int timeout_ms);
void http_free(http_resp *r);

/* A request whose response is read by the caller (streams, disconnects):
 * the connected socket, the request sent; -1 on error. */
int http_send(int port, const char *method, const char *path, const char *body, size_t len);
int http_send_h(int port, const char *method, const char *path, const char *headers,
                const char *body, size_t len);
/* Reads what arrives within timeout_ms into buf (at most cap-1, NUL-terminated);
 * the count, 0 at the end of the stream, -1 on timeout or error. */
ssize_t http_read(int fd, char *buf, size_t cap, int timeout_ms);

/* The SSE "data:" payloads of a raw stream body, concatenating a field:
 * the text of each completion chunk (choices[0].text or .delta.content) into out. */
int sse_collect(const char *raw, char *out, size_t cap, int *n_events, bool *done_last,
                char *finish, size_t fcap);

#endif
