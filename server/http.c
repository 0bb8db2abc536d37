/*
 * server/http.c: libmicrohttpd glue and the routes. A thread per connection
 * (MHD_USE_THREAD_PER_CONNECTION): a handler may block on its task, and a
 * stream's content reader may block until the next token, which is what the
 * library documents for that mode. These threads are not pinned; the
 * inference pool's workers are, so with -t below the core count the kernel
 * keeps HTTP work on the free cores.
 *
 * The body is read whole before any reply (an early reply to a client still
 * sending can be lost to the TCP reset), at most max_body bytes kept; a
 * larger one is read and dropped up to DISCARD_MAX, then 413. A client that
 * goes away is seen by peeking its socket while waiting (recv MSG_PEEK: 0 =
 * closed), every WAIT_MS, so its sequence is freed within a step.
 */
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "chat.h"
#include "route.h"
#include "state.h"

#define WAIT_MS 50
#define DISCARD_MAX ((size_t)64 << 20)
#define CONN_LIMIT 512

struct srv_http {
    struct MHD_Daemon *d;
    srv_state *st;
    int port;
};

typedef struct {
    int route;
    char *body;
    size_t len, cap, seen;
    bool too_big, answered;
} conn_ctx;

static enum MHD_Result send_body(struct MHD_Connection *c, int code, char *body,
                                 const char *ctype)
{
    if (!body) {
        code = 500;
        body = strdup("{\"error\":{\"code\":500,\"message\":\"out of memory\","
                      "\"type\":\"server_error\"}}");
        if (!body)
            return MHD_NO;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Server", "tessera");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)code, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_json(struct MHD_Connection *c, int code, char *body)
{
    return send_body(c, code, body, "application/json; charset=utf-8");
}

static enum MHD_Result send_err(struct MHD_Connection *c, int code, const char *type,
                                const char *msg)
{
    srv_error e = {.http = code};
    snprintf(e.type, sizeof(e.type), "%s", type);
    snprintf(e.msg, sizeof(e.msg), "%s", msg);
    return send_json(c, code, srv_error_json(&e));
}

static int conn_fd(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? (int)ci->connect_fd : -1;
}

/* True when the peer closed or reset the connection. */
static bool peer_gone(int fd)
{
    if (fd < 0)
        return false;
    char ch;
    ssize_t n = recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return true;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_nsec += (long)ms * 1000000L;
    while (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* The client left (mu held): the inference thread frees its sequence. */
static void cancel(srv_state *st, srv_task *t)
{
    if (t->state != TASK_DONE) {
        t->cancel = true;
        pthread_cond_signal(&st->work_cv);
    }
}

/* ---- streaming ---- */

typedef struct {
    srv_state *st;
    srv_task *t;
    int fd;
    char *ev;
    size_t ev_len, ev_off;
    size_t sent; /* published text already in events */
    int mark;    /* publications already sent */
    int phase;   /* 0: chat role chunk due; 1: text; 2: [DONE] sent */
} stream_ctx;

static bool set_event(stream_ctx *s, char *json)
{
    if (!json)
        return false;
    const size_t n = strlen(json);
    s->ev = malloc(n + 9);
    if (!s->ev) {
        free(json);
        return false;
    }
    memcpy(s->ev, "data: ", 6);
    memcpy(s->ev + 6, json, n);
    memcpy(s->ev + 6 + n, "\n\n", 3);
    s->ev_len = n + 8;
    s->ev_off = 0;
    free(json);
    return true;
}

/* The next event (mu held): role, text, the end, or nothing yet (false). */
static bool next_event(stream_ctx *s, bool *fail)
{
    srv_task *t = s->t;
    if (s->phase == 0) {
        s->phase = 1;
        *fail = !set_event(s, srv_json_chunk(s->st, t, NULL, 0, true, NULL));
        return true;
    }
    while (s->mark < t->n_marks) {
        const size_t end = t->marks[s->mark++];
        if (end <= s->sent)
            continue;
        *fail = !set_event(s, srv_json_chunk(s->st, t, t->out + s->sent, end - s->sent, false,
                                             NULL));
        s->sent = end;
        return true;
    }
    if (t->state != TASK_DONE)
        return false;
    /* Done: the last chunk (or the error), the usage chunk if asked, [DONE]. */
    size_t cap = 64;
    char *parts[2] = {0};
    if (t->failed)
        parts[0] = srv_error_json(&t->err);
    else {
        parts[0] = srv_json_chunk(s->st, t, NULL, 0, false, t->finish);
        if (t->include_usage)
            parts[1] = srv_json_usage_chunk(s->st, t);
    }
    for (int i = 0; i < 2; i++)
        cap += parts[i] ? strlen(parts[i]) + 8 : 0;
    s->ev = malloc(cap);
    *fail = !s->ev || !parts[0];
    if (!*fail) {
        s->ev_len = 0;
        for (int i = 0; i < 2; i++)
            if (parts[i])
                s->ev_len += (size_t)sprintf(s->ev + s->ev_len, "data: %s\n\n", parts[i]);
        s->ev_len += (size_t)sprintf(s->ev + s->ev_len, "data: [DONE]\n\n");
        s->ev_off = 0;
    }
    free(parts[0]);
    free(parts[1]);
    s->phase = 2;
    return true;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream_ctx *s = cls;
    for (;;) {
        if (s->ev && s->ev_off < s->ev_len) {
            size_t n = s->ev_len - s->ev_off < max ? s->ev_len - s->ev_off : max;
            memcpy(buf, s->ev + s->ev_off, n);
            s->ev_off += n;
            return (ssize_t)n;
        }
        free(s->ev);
        s->ev = NULL;
        if (s->phase == 2)
            return MHD_CONTENT_READER_END_OF_STREAM;
        pthread_mutex_lock(&s->st->mu);
        bool fail = false;
        while (!next_event(s, &fail)) {
            struct timespec ts;
            deadline_in(&ts, WAIT_MS);
            pthread_cond_timedwait(&s->t->cv, &s->st->mu, &ts);
            if (s->t->state != TASK_DONE && peer_gone(s->fd)) {
                cancel(s->st, s->t);
                pthread_mutex_unlock(&s->st->mu);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
        }
        pthread_mutex_unlock(&s->st->mu);
        if (fail)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

static void stream_free(void *cls)
{
    stream_ctx *s = cls;
    pthread_mutex_lock(&s->st->mu);
    cancel(s->st, s->t); /* a no-op once it is done */
    srv_task_unref(s->st, s->t);
    pthread_mutex_unlock(&s->st->mu);
    free(s->ev);
    free(s);
}

static enum MHD_Result start_stream(struct MHD_Connection *c, srv_state *st, srv_task *t)
{
    stream_ctx *s = calloc(1, sizeof(*s));
    struct MHD_Response *r = NULL;
    if (s) {
        *s = (stream_ctx){.st = st, .t = t, .fd = conn_fd(c), .phase = t->chat ? 0 : 1};
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s,
                                              stream_free);
    }
    if (!r) {
        if (s)
            stream_free(s);
        else {
            pthread_mutex_lock(&st->mu);
            cancel(st, t);
            srv_task_unref(st, t);
            pthread_mutex_unlock(&st->mu);
        }
        return send_err(c, 500, "server_error", "out of memory");
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "Server", "tessera");
    enum MHD_Result ok = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ok;
}

/* A non-stream request: wait here (this connection's thread) for the end. */
static enum MHD_Result wait_result(struct MHD_Connection *c, srv_state *st, srv_task *t)
{
    const int fd = conn_fd(c);
    pthread_mutex_lock(&st->mu);
    while (t->state != TASK_DONE) {
        struct timespec ts;
        deadline_in(&ts, WAIT_MS);
        pthread_cond_timedwait(&t->cv, &st->mu, &ts);
        if (t->state != TASK_DONE && peer_gone(fd)) {
            cancel(st, t);
            srv_task_unref(st, t);
            pthread_mutex_unlock(&st->mu);
            return MHD_NO;
        }
    }
    int code = 200;
    char *body;
    if (t->failed) {
        code = t->err.http;
        body = srv_error_json(&t->err);
    } else
        body = srv_json_result(st, t);
    srv_task_unref(st, t);
    pthread_mutex_unlock(&st->mu);
    return send_json(c, code, body);
}

static enum MHD_Result completion(struct MHD_Connection *c, srv_state *st, conn_ctx *cc)
{
    srv_error e = {0};
    srv_task *t = NULL;
    if (srv_route_make_task(st, cc->route, cc->body, cc->len, &t, &e))
        return send_json(c, e.http, srv_error_json(&e));
    return t->stream ? start_stream(c, st, t) : wait_result(c, st, t);
}

/* ---- the handler ---- */

static bool authorized(const srv_state *st, struct MHD_Connection *c)
{
    const char *key = st->o->api_key;
    if (!key || !*key)
        return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (h && !strncmp(h, "Bearer ", 7) && !strcmp(h + 7, key))
        return true;
    h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Api-Key");
    return h && !strcmp(h, key);
}

static enum MHD_Result dispatch(struct MHD_Connection *c, srv_state *st, conn_ctx *cc)
{
    cc->answered = true;
    if (cc->route == SRV_ROUTE_HEALTH)
        return atomic_load(&st->ready)
                   ? send_json(c, 200, strdup("{\"status\":\"ok\"}"))
                   : send_err(c, 503, "unavailable_error", "Loading model");
    if (!srv_route_public(cc->route) && !authorized(st, c))
        return send_err(c, 401, "authentication_error", "Invalid API Key");
    if (!atomic_load(&st->ready))
        return send_err(c, 503, "unavailable_error", "Loading model");
    if (cc->too_big) {
        char m[128];
        snprintf(m, sizeof(m), "the request body is larger than %zu bytes", st->max_body);
        return send_err(c, 413, "invalid_request_error", m);
    }
    switch (cc->route) {
    case SRV_ROUTE_COMPLETIONS:
    case SRV_ROUTE_CHAT:
        return completion(c, st, cc);
    case SRV_ROUTE_METRICS:
        return send_body(c, 200, srv_route_metrics(st), "text/plain; version=0.0.4");
    default: {
        int code = 200;
        char *body = srv_route_simple(st, cc->route, cc->body, cc->len, &code);
        return send_json(c, code, body);
    }
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    srv_state *st = cls;
    conn_ctx *cc = *con_cls;
    if (!cc) {
        cc = calloc(1, sizeof(*cc));
        if (!cc)
            return MHD_NO;
        *con_cls = cc;
        int allowed;
        cc->route = srv_route_find(url, method, &allowed);
        if (cc->route < 0) {
            cc->answered = true;
            return allowed ? send_err(c, 405, "invalid_request_error", "method not allowed")
                           : send_err(c, 404, "not_found_error", "File Not Found");
        }
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > DISCARD_MAX) { /* not worth reading */
            cc->too_big = true;
            return dispatch(c, st, cc);
        }
        return MHD_YES;
    }
    if (cc->answered) { /* the rest of the body is dropped */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        const size_t n = *upload_size;
        cc->seen += n;
        *upload_size = 0;
        if (cc->too_big || cc->len + n > st->max_body) {
            cc->too_big = true;
            return cc->seen > DISCARD_MAX ? dispatch(c, st, cc) : MHD_YES;
        }
        if (cc->len + n + 1 > cc->cap) {
            size_t cap = cc->cap ? cc->cap : 4096;
            while (cap < cc->len + n + 1)
                cap *= 2;
            char *p = realloc(cc->body, cap);
            if (!p)
                return MHD_NO;
            cc->body = p;
            cc->cap = cap;
        }
        memcpy(cc->body + cc->len, upload, n);
        cc->len += n;
        cc->body[cc->len] = 0;
        return MHD_YES;
    }
    return dispatch(c, st, cc);
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)c;
    (void)why;
    conn_ctx *cc = *con_cls;
    if (cc) {
        free(cc->body);
        free(cc);
        *con_cls = NULL;
    }
}

/* libmicrohttpd's error log, with our prefix. The line it writes for every
 * stream that our content reader ends (a client that left, a cancelled
 * request: counted in tessera_requests_cancelled_total) is dropped: 10 % of
 * a soak's requests would each log one. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    if (strstr(line, "application error generating response"))
        return;
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        line[--n] = '\0';
    fprintf(stderr, "tessera serve: http: %s\n", line);
}

int srv_http_start(srv_state *st, srv_http **out, char *msg, size_t cap)
{
    srv_http *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(msg, cap, "out of memory");
        return 1;
    }
    h->st = st;
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)st->o->port)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)st->o->port)};
    const char *host = st->o->host ? st->o->host : "127.0.0.1";
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    const struct sockaddr *sa;
    if (inet_pton(AF_INET, host, &a4.sin_addr) == 1)
        sa = (const struct sockaddr *)&a4;
    else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
        sa = (const struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(msg, cap, "--host '%s' is not an IPv4 or IPv6 address", host);
        free(h);
        return 1;
    }
    h->d = MHD_start_daemon(flags, (uint16_t)st->o->port, NULL, NULL, on_request, st,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                            MHD_OPTION_SOCK_ADDR, sa,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONN_LIMIT,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)st->o->timeout_s,
                            MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, 1U,
                            MHD_OPTION_END);
    if (!h->d) {
        snprintf(msg, cap, "cannot listen on %s port %d: %s", host, st->o->port,
                 errno ? strerror(errno) : "libmicrohttpd refused");
        free(h);
        return 1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? (int)di->port : st->o->port;
    *out = h;
    return 0;
}

int srv_http_port(const srv_http *h) { return h->port; }

void srv_http_quiesce(srv_http *h)
{
    if (!h)
        return;
    MHD_socket s = MHD_quiesce_daemon(h->d);
    if (s != MHD_INVALID_SOCKET)
        close(s);
}

void srv_http_stop(srv_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}
