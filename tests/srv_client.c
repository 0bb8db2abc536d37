/*
 * tests/srv_client.c: see srv_client.h.
 */
#include "srv_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "test.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

static void log_tail(const char *path, char *why, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, cap, "(no log)");
        return;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, n > (long)cap - 1 ? n - (long)cap + 1 : 0, SEEK_SET);
    size_t got = fread(why, 1, cap - 1, f);
    why[got] = 0;
    fclose(f);
}

int srv_start(srv_proc *p, const char *model, const char *args, char *why, size_t cap)
{
    static int seq;
    char pf[512];
    snprintf(pf, sizeof(pf), "%s/port.%d.%d", ts_test_tmpdir(), (int)getpid(), ++seq);
    snprintf(p->log, sizeof(p->log), "%s/serve.%d.%d.log", ts_test_tmpdir(), (int)getpid(), seq);
    unlink(pf);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "exec %s serve -m %s %s --host 127.0.0.1 --port 0 --port-file %s "
             "2>%s", ts_test_bin(), model, args, pf, p->log);
    p->pid = fork();
    if (p->pid < 0)
        return snprintf(why, cap, "fork failed"), -1;
    if (p->pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    const double t0 = now_ms();
    p->port = 0;
    while (now_ms() - t0 < 60000) {
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            log_tail(p->log, why, cap);
            p->pid = 0;
            return -1;
        }
        FILE *f = p->port ? NULL : fopen(pf, "r");
        if (f) {
            if (fscanf(f, "%d", &p->port) != 1)
                p->port = 0;
            fclose(f);
        }
        if (p->port) {
            http_resp r;
            if (!http_do(p->port, "GET", "/health", NULL, NULL, 0, &r, 2000)) {
                int ok = r.status == 200;
                http_free(&r);
                if (ok)
                    return 0;
            }
        }
        usleep(20000);
    }
    log_tail(p->log, why, cap);
    srv_stop(p);
    return -1;
}

int srv_stop(srv_proc *p)
{
    if (p->pid <= 0)
        return -1;
    kill(p->pid, SIGTERM);
    const double t0 = now_ms();
    int st = 0;
    while (now_ms() - t0 < 20000) {
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        }
        usleep(10000);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &st, 0);
    p->pid = 0;
    return -1;
}

static int connect_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *b, size_t n)
{
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int http_send(int port, const char *method, const char *path, const char *body, size_t len)
{
    return http_send_h(port, method, path, NULL, body, len);
}

int http_send_h(int port, const char *method, const char *path, const char *headers,
                const char *body, size_t len)
{
    int fd = connect_local(port);
    if (fd < 0)
        return -1;
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     method, path, headers ? headers : "", body ? len : 0);
    /* A server that answers before the whole body (413) may close: ignore send errors. */
    if (send_all(fd, head, (size_t)n) < 0) {
        close(fd);
        return -1;
    }
    if (body && len)
        send_all(fd, body, len);
    return fd;
}

ssize_t http_read(int fd, char *buf, size_t cap, int timeout_ms)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    int r = poll(&pf, 1, timeout_ms);
    if (r <= 0)
        return -1;
    ssize_t n = recv(fd, buf, cap - 1, 0);
    if (n < 0)
        return errno == ECONNRESET ? 0 : -1;
    buf[n] = 0;
    return n;
}

/* Decodes a chunked body in place; its new length. */
static size_t dechunk(char *b, size_t n)
{
    size_t in = 0, out = 0;
    while (in < n) {
        char *end;
        unsigned long sz = strtoul(b + in, &end, 16);
        char *crlf = strstr(b + in, "\r\n");
        if (!crlf || end > crlf)
            break;
        in = (size_t)(crlf - b) + 2;
        if (sz == 0 || in + sz > n)
            break;
        memmove(b + out, b + in, sz);
        out += sz;
        in += sz + 2;
    }
    b[out] = 0;
    return out;
}

int http_do(int port, const char *method, const char *path, const char *headers,
            const char *body, size_t len, http_resp *r, int timeout_ms)
{
    memset(r, 0, sizeof(*r));
    int fd = http_send_h(port, method, path, headers, body, len);
    if (fd < 0)
        return -1;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    const double t0 = now_ms();
    for (;;) {
        const int left = timeout_ms - (int)(now_ms() - t0);
        if (left <= 0 || !buf)
            goto fail;
        if (n + 4096 > cap) {
            char *p = realloc(buf, cap *= 2);
            if (!p)
                goto fail;
            buf = p;
        }
        ssize_t got = http_read(fd, buf + n, cap - n, left);
        if (got < 0)
            goto fail;
        if (got == 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    buf[n] = 0;
    char *sep = strstr(buf, "\r\n\r\n");
    if (!sep || sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1) {
        free(buf);
        return -1;
    }
    *sep = 0;
    const char *ct = strcasestr(buf, "\r\nContent-Type: ");
    if (ct)
        sscanf(ct + 16, "%127[^\r]", r->ctype);
    const bool chunked = strcasestr(buf, "Transfer-Encoding: chunked") != NULL;
    const size_t off = (size_t)(sep + 4 - buf);
    memmove(buf, buf + off, n - off + 1);
    r->len = chunked ? dechunk(buf, n - off) : n - off;
    r->body = buf;
    return 0;
fail:
    free(buf);
    close(fd);
    return -1;
}

void http_free(http_resp *r)
{
    free(r->body);
    r->body = NULL;
}

int sse_collect(const char *raw, char *out, size_t cap, int *n_events, bool *done_last,
                char *finish, size_t fcap)
{
    size_t o = 0;
    *n_events = 0;
    *done_last = false;
    if (finish && fcap)
        finish[0] = 0;
    out[0] = 0;
    for (const char *p = strstr(raw, "data: "); p; p = strstr(p, "data: ")) {
        p += 6;
        const char *e = strstr(p, "\n\n");
        if (!e)
            return -1;
        (*n_events)++;
        *done_last = !strncmp(p, "[DONE]", 6);
        if (*done_last) {
            p = e;
            continue;
        }
        cJSON *j = cJSON_ParseWithLength(p, (size_t)(e - p));
        if (!j)
            return -1;
        cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
        cJSON *d = cJSON_GetObjectItem(c, "delta");
        cJSON *t = d ? cJSON_GetObjectItem(d, "content") : cJSON_GetObjectItem(c, "text");
        if (cJSON_IsString(t)) {
            size_t l = strlen(t->valuestring);
            if (o + l + 1 > cap) {
                cJSON_Delete(j);
                return -1;
            }
            memcpy(out + o, t->valuestring, l + 1);
            o += l;
        }
        cJSON *f = cJSON_GetObjectItem(c, "finish_reason");
        if (cJSON_IsString(f) && finish)
            snprintf(finish, fcap, "%s", f->valuestring);
        cJSON_Delete(j);
        p = e;
    }
    return 0;
}
