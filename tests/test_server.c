/*
 * tests/test_server.c: `tessera serve` over real HTTP on 127.0.0.1, a free
 * port each (--port 0), stopped by PID with SIGTERM (exit status 0 checked:
 * under ASan that also means no leak). Ports the assertions of llama.cpp's
 * tools/server/tests/unit that apply (health, completion and chat in both
 * modes, stream == non-stream, context overflow, cancel, parallel slots,
 * tokenize round trip, metrics), plus determinism across --parallel,
 * --batch-tokens and --schedule, and the malformed-request corpus.
 * The model: ../shared's stories260K when present, else a generated one.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "server_corpus.h"
#include "srv_client.h"
#include "test.h"

#define T_MS 60000

static const char *model(void)
{
    static char path[512];
    if (path[0])
        return path;
    const char *sh = ts_test_shared();
    if (sh) {
        snprintf(path, sizeof(path), "%s/models/stories260K.gguf", sh);
        if (!access(path, R_OK))
            return path;
    }
    char out[1024];
    snprintf(path, sizeof(path), "%s/serve-tiny.gguf", ts_test_tmpdir());
    if (ts_test_sh(out, sizeof(out), 120, "%s gen --shape tiny -o %s", ts_test_bin(), path)) {
        ts_test_fail(__FILE__, __LINE__, "gen: %s", out);
        path[0] = 0;
        return NULL;
    }
    return path;
}

static bool start(srv_proc *p, const char *args)
{
    char why[512];
    const char *m = model();
    if (!m)
        return false;
    if (srv_start(p, m, args, why, sizeof(why))) {
        ts_test_fail(__FILE__, __LINE__, "serve %s did not start: %s", args, why);
        return false;
    }
    return true;
}

static void stop(srv_proc *p)
{
    int rc = srv_stop(p);
    TS_CHECK(rc == 0, "serve exited %d after SIGTERM (log %s)", rc, p->log);
}

static cJSON *post_json(int port, const char *path, const char *body, int *status)
{
    http_resp r;
    *status = -1;
    if (http_do(port, "POST", path, NULL, body, strlen(body), &r, T_MS))
        return NULL;
    *status = r.status;
    cJSON *j = cJSON_ParseWithLength(r.body, r.len);
    http_free(&r);
    return j;
}

static const char *jstr(const cJSON *o, const char *path)
{
    /* "a.b.0.c": objects by key, arrays by index */
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    const cJSON *cur = o;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && cur;
         k = strtok_r(NULL, ".", &save))
        cur = (*k >= '0' && *k <= '9') ? cJSON_GetArrayItem(cur, atoi(k))
                                       : cJSON_GetObjectItem(cur, k);
    return cJSON_IsString(cur) ? cur->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    const cJSON *cur = o;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && cur;
         k = strtok_r(NULL, ".", &save))
        cur = (*k >= '0' && *k <= '9') ? cJSON_GetArrayItem(cur, atoi(k))
                                       : cJSON_GetObjectItem(cur, k);
    return cJSON_IsNumber(cur) ? cur->valuedouble : -1e300;
}

/* The non-stream text of a completion or chat request (malloc'ed), or NULL. */
static char *text_of(int port, bool chat, const char *body, char *finish, size_t fcap)
{
    int st;
    cJSON *j = post_json(port, chat ? "/v1/chat/completions" : "/v1/completions", body, &st);
    const char *t = j ? jstr(j, chat ? "choices.0.message.content" : "choices.0.text") : NULL;
    char *out = st == 200 && t ? strdup(t) : NULL;
    const char *f = j ? jstr(j, "choices.0.finish_reason") : NULL;
    if (finish)
        snprintf(finish, fcap, "%s", f ? f : "");
    cJSON_Delete(j);
    return out;
}

/* The streamed text of the same request with "stream": true added. */
static char *stream_of(int port, bool chat, const char *body, char *finish, size_t fcap,
                       bool *role_first)
{
    char b[8192];
    snprintf(b, sizeof(b), "{\"stream\":true,%s", body + 1);
    http_resp r;
    if (http_do(port, "POST", chat ? "/v1/chat/completions" : "/v1/completions", NULL, b,
                strlen(b), &r, T_MS))
        return NULL;
    char *out = malloc(r.len + 1);
    int n_ev = 0;
    bool done_last = false;
    if (!out || r.status != 200 || !strstr(r.ctype, "text/event-stream") ||
        sse_collect(r.body, out, r.len + 1, &n_ev, &done_last, finish, fcap) || !done_last) {
        ts_test_fail(__FILE__, __LINE__, "stream: status %d, %d events, [DONE] last %d: %.200s",
                     r.status, n_ev, done_last, r.body ? r.body : "");
        free(out);
        out = NULL;
    }
    if (role_first && r.body) {
        const char *first = strstr(r.body, "data: ");
        const char *end = first ? strstr(first, "\n\n") : NULL;
        cJSON *j = end ? cJSON_ParseWithLength(first + 6, (size_t)(end - first - 6)) : NULL;
        const char *role = j ? jstr(j, "choices.0.delta.role") : NULL;
        *role_first = role && !strcmp(role, "assistant");
        cJSON_Delete(j);
    }
    http_free(&r);
    return out;
}

TS_TEST(test_server_endpoints)
{
    srv_proc p;
    if (!start(&p, "-np 2 -c 256"))
        return;
    http_resp r;
    TS_REQUIRE(!http_do(p.port, "GET", "/health", NULL, NULL, 0, &r, T_MS), "health");
    TS_CHECK(r.status == 200 && strstr(r.body, "\"status\":\"ok\""), "health: %d %s", r.status,
             r.body);
    http_free(&r);
    TS_REQUIRE(!http_do(p.port, "GET", "/v1/models", NULL, NULL, 0, &r, T_MS), "models");
    cJSON *j = cJSON_Parse(r.body);
    TS_CHECK(r.status == 200 && j && jstr(j, "data.0.id") && !strcmp(jstr(j, "object"), "list"),
             "models: %s", r.body);
    cJSON_Delete(j);
    http_free(&r);
    TS_REQUIRE(!http_do(p.port, "GET", "/nope", NULL, NULL, 0, &r, T_MS), "404");
    TS_CHECK(r.status == 404 && strstr(r.body, "not_found_error"), "404: %d", r.status);
    http_free(&r);
    TS_REQUIRE(!http_do(p.port, "GET", "/v1/completions", NULL, NULL, 0, &r, T_MS), "405");
    TS_CHECK(r.status == 405, "GET completions: %d", r.status);
    http_free(&r);
    TS_REQUIRE(!http_do(p.port, "GET", "/slots", NULL, NULL, 0, &r, T_MS), "slots");
    j = cJSON_Parse(r.body);
    TS_CHECK(cJSON_GetArraySize(j) == 2 && !cJSON_IsTrue(cJSON_GetObjectItem(
                                                cJSON_GetArrayItem(j, 0), "is_processing")),
             "slots idle: %s", r.body);
    cJSON_Delete(j);
    http_free(&r);
    /* tokenize / detokenize round trip */
    int st;
    const char *text = "Once upon a time, there was a little dog.";
    char body[512];
    snprintf(body, sizeof(body), "{\"content\":\"%s\"}", text);
    j = post_json(p.port, "/tokenize", body, &st);
    cJSON *toks = cJSON_GetObjectItem(j, "tokens");
    TS_CHECK(st == 200 && cJSON_GetArraySize(toks) > 5, "tokenize: %d", st);
    char *arr = cJSON_PrintUnformatted(toks);
    snprintf(body, sizeof(body), "{\"tokens\":%s}", arr ? arr : "[]");
    free(arr);
    cJSON_Delete(j);
    j = post_json(p.port, "/detokenize", body, &st);
    const char *back = jstr(j, "content");
    /* SentencePiece vocabularies give the text a leading space. */
    TS_CHECK(st == 200 && back && strstr(back, text), "detokenize: '%s'", back ? back : "");
    cJSON_Delete(j);
    j = post_json(p.port, "/tokenize", "{\"content\":\"dog\",\"with_pieces\":true}", &st);
    TS_CHECK(st == 200 && jstr(j, "tokens.0.piece"), "with_pieces");
    cJSON_Delete(j);
    stop(&p);
}

TS_TEST(test_server_stream_equals_nonstream)
{
    srv_proc p;
    if (!start(&p, "-np 2 -c 512"))
        return;
    const char *bodies[] = {
        "{\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0}",
        "{\"prompt\":\"The cat\",\"max_tokens\":32,\"temperature\":0.9,\"seed\":5,\"top_k\":0}",
        "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\","
        "\"content\":\"Tell a story\"}],\"max_tokens\":20,\"temperature\":0}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":16,"
        "\"temperature\":1.2,\"seed\":11,\"min_p\":0,\"top_p\":1}",
    };
    for (int i = 0; i < 4; i++) {
        const bool chat = i >= 2;
        char f1[32], f2[32];
        bool role = false;
        char *a = text_of(p.port, chat, bodies[i], f1, sizeof(f1));
        char *b = stream_of(p.port, chat, bodies[i], f2, sizeof(f2), &role);
        TS_CHECK(a && b && !strcmp(a, b), "case %d: non-stream '%s' vs stream '%s'", i,
                 a ? a : "(null)", b ? b : "(null)");
        TS_CHECK(!strcmp(f1, f2) && (!strcmp(f1, "length") || !strcmp(f1, "stop")),
                 "case %d: finish %s / %s", i, f1, f2);
        if (chat)
            TS_CHECK(role, "case %d: the first chat chunk carries delta.role", i);
        /* A stop string taken from the middle of the text cuts it there. */
        if (a && strlen(a) > 8) {
            char stop_s[8], body[1024];
            memcpy(stop_s, a + 4, 3);
            stop_s[3] = 0;
            const bool plain = !strpbrk(stop_s, "\"\\\n\t\r");
            if (plain) {
                snprintf(body, sizeof(body), "{\"stop\":[\"zzzq\",\"%s\"],%s", stop_s,
                         bodies[i] + 1);
                char *c = text_of(p.port, chat, body, f1, sizeof(f1));
                char *d = stream_of(p.port, chat, body, f2, sizeof(f2), NULL);
                const char *hit = strstr(a, stop_s);
                const size_t want = hit ? (size_t)(hit - a) : strlen(a);
                TS_CHECK(c && strlen(c) == want && !strncmp(c, a, want) && !strcmp(f1, "stop"),
                         "case %d: stop '%s': '%s' (finish %s), want %zu bytes of '%s'", i,
                         stop_s, c ? c : "(null)", f1, want, a);
                TS_CHECK(c && d && !strcmp(c, d) && !strcmp(f2, "stop"),
                         "case %d: stop stream '%s' vs '%s'", i, d ? d : "", c ? c : "");
                free(c);
                free(d);
            }
        }
        free(a);
        free(b);
    }
    /* usage counts */
    int st;
    cJSON *j = post_json(p.port, "/v1/completions",
                         "{\"prompt\":\"Hello\",\"max_tokens\":7,\"temperature\":0}", &st);
    TS_CHECK(st == 200 && jnum(j, "usage.completion_tokens") <= 7 &&
                 jnum(j, "usage.prompt_tokens") >= 1 &&
                 jnum(j, "usage.total_tokens") ==
                     jnum(j, "usage.prompt_tokens") + jnum(j, "usage.completion_tokens") &&
                 !strcmp(jstr(j, "object"), "text_completion") && jstr(j, "id"),
             "usage / shape");
    cJSON_Delete(j);
    j = post_json(p.port, "/v1/completions", "{\"prompt\":\"Hello\",\"max_tokens\":0}", &st);
    TS_CHECK(st == 200 && jnum(j, "usage.completion_tokens") == 0 &&
                 !strcmp(jstr(j, "choices.0.finish_reason"), "length"), "max_tokens 0");
    cJSON_Delete(j);
    stop(&p);
}

TS_TEST(test_server_context_overflow)
{
    srv_proc p;
    if (!start(&p, "-np 1 -c 64"))
        return;
    char body[8192] = "{\"prompt\":\"";
    for (int i = 0; i < 200; i++)
        strcat(body, "dog ");
    strcat(body, "\",\"max_tokens\":4}");
    for (int s = 0; s < 2; s++) {
        char b[8300];
        snprintf(b, sizeof(b), s ? "{\"stream\":true,%s" : "%s", s ? body + 1 : body);
        int st;
        cJSON *j = post_json(p.port, "/v1/completions", b, &st);
        const char *type = jstr(j, "error.type");
        TS_CHECK(st == 400 && type && !strcmp(type, "exceed_context_size_error") &&
                     jnum(j, "error.n_prompt_tokens") > 64 && jnum(j, "error.n_ctx") == 64,
                 "overflow (stream %d): %d %s", s, st, type ? type : "(none)");
        cJSON_Delete(j);
    }
    /* The server still serves. */
    char *t = text_of(p.port, false, "{\"prompt\":\"Hi\",\"max_tokens\":3}", NULL, 0);
    TS_CHECK(t != NULL, "after overflow");
    free(t);
    stop(&p);
}

static bool slots_idle(int port, int *busy)
{
    http_resp r;
    if (http_do(port, "GET", "/slots", NULL, NULL, 0, &r, T_MS))
        return false;
    cJSON *j = cJSON_Parse(r.body);
    int n = 0;
    for (int i = 0; i < cJSON_GetArraySize(j); i++)
        n += cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(j, i), "is_processing"));
    cJSON_Delete(j);
    http_free(&r);
    if (busy)
        *busy = n;
    return n == 0;
}

/* A metric's value from /metrics, or -1. */
static double metric(int port, const char *name)
{
    http_resp r;
    if (http_do(port, "GET", "/metrics", NULL, NULL, 0, &r, T_MS))
        return -1;
    double v = -1;
    char key[128];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *at = strstr(r.body, key);
    if (at)
        v = strtod(at + strlen(key), NULL);
    http_free(&r);
    return v;
}

TS_TEST(test_server_cancel_frees_the_sequence)
{
    srv_proc p;
    if (!start(&p, "-np 2 -c 4096"))
        return;
    for (int mode = 0; mode < 2; mode++) { /* 0: mid-stream, 1: waiting (non-stream) */
        const char *b = mode ? "{\"prompt\":\"Once\",\"max_tokens\":4000,\"ignore_eos\":true,\"temperature\":1,"
                               "\"top_k\":0,\"min_p\":0,\"top_p\":1,\"seed\":3}"
                             : "{\"prompt\":\"Once\",\"max_tokens\":4000,\"ignore_eos\":true,\"stream\":true,"
                               "\"temperature\":1,\"top_k\":0,\"min_p\":0,\"top_p\":1,"
                               "\"seed\":3}";
        const double before = metric(p.port, "tessera_requests_cancelled_total");
        int fd = http_send(p.port, "POST", "/v1/completions", b, strlen(b));
        TS_REQUIRE(fd >= 0, "send");
        int busy = 0;
        for (int i = 0; i < 200 && !busy; i++) { /* until it holds a sequence */
            slots_idle(p.port, &busy);
            if (!busy)
                usleep(5000);
        }
        if (mode == 0) {
            char buf[4096];
            TS_CHECK(http_read(fd, buf, sizeof(buf), 10000) > 0, "a first event");
        }
        close(fd);
        bool idle = false;
        for (int i = 0; i < 100 && !idle; i++) { /* 1 s */
            idle = slots_idle(p.port, NULL);
            if (!idle)
                usleep(10000);
        }
        const double after = metric(p.port, "tessera_requests_cancelled_total");
        /* A request that ended by itself first is not a cancel: say so, not fail. */
        TS_CHECK(idle, "mode %d: the sequence is still busy 1 s after the client left", mode);
        TS_CHECK(busy && after == before + 1, "mode %d: busy %d, cancelled %g -> %g", mode, busy,
                 before, after);
        TS_CHECK(metric(p.port, "tessera_requests_running") == 0, "running back to 0");
    }
    stop(&p);
}

typedef struct {
    int port;
    const char *body;
    bool chat;
    char *text;
} req_job;

static void *run_job(void *arg)
{
    req_job *j = arg;
    j->text = text_of(j->port, j->chat, j->body, NULL, 0);
    return NULL;
}

/* n copies of body at once; every text into texts (malloc'ed). */
static void concurrent(int port, const char *body, bool chat, int n, char **texts, int *max_busy)
{
    pthread_t th[16];
    req_job jobs[16];
    for (int i = 0; i < n; i++) {
        jobs[i] = (req_job){.port = port, .body = body, .chat = chat};
        pthread_create(&th[i], NULL, run_job, &jobs[i]);
    }
    if (max_busy) {
        *max_busy = 0;
        for (int i = 0; i < 50; i++) {
            int b = 0;
            slots_idle(port, &b);
            *max_busy = b > *max_busy ? b : *max_busy;
            usleep(2000);
        }
    }
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        texts[i] = jobs[i].text;
    }
}

TS_TEST(test_server_same_seed_same_text)
{
    const char *body = "{\"prompt\":\"Once upon a time, there was\",\"max_tokens\":48,"
                       "\"temperature\":0.9,\"seed\":42,\"top_k\":0,\"min_p\":0}";
    const char *configs[] = {"-np 1 -c 512", "-np 4 -c 512 --batch-tokens 7",
                             "-np 4 -c 512 --batch-tokens 64 --schedule prefill-first",
                             "-np 4 -c 512 --schedule decode-priority --chunk 3"};
    char *ref = NULL;
    for (int c = 0; c < 4; c++) {
        srv_proc p;
        if (!start(&p, configs[c]))
            break;
        char *texts[8] = {0};
        int busy = 0;
        concurrent(p.port, body, false, c ? 8 : 1, texts, &busy);
        for (int i = 0; i < (c ? 8 : 1); i++) {
            TS_CHECK(texts[i] != NULL, "%s: request %d failed", configs[c], i);
            if (!ref && texts[i])
                ref = strdup(texts[i]);
            TS_CHECK(texts[i] && ref && !strcmp(texts[i], ref),
                     "%s: request %d: '%s' vs '%s'", configs[c], i, texts[i] ? texts[i] : "",
                     ref ? ref : "");
            free(texts[i]);
        }
        stop(&p);
    }
    TS_CHECK(ref && strlen(ref) > 0, "a text");
    free(ref);
}

TS_TEST(test_server_parallel_slots_busy)
{
    srv_proc p;
    if (!start(&p, "-np 4 -c 1024"))
        return;
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],"
                       "\"max_tokens\":400,\"temperature\":0}";
    char *texts[8];
    int busy = 0;
    concurrent(p.port, body, true, 8, texts, &busy);
    int distinct = 0;
    for (int i = 0; i < 8; i++) {
        TS_CHECK(texts[i] != NULL, "request %d", i);
        bool seen = false;
        for (int k = 0; k < i && !seen; k++)
            seen = texts[k] && texts[i] && !strcmp(texts[k], texts[i]);
        distinct += !seen;
    }
    TS_CHECK(distinct == 1, "8 identical requests gave %d distinct outputs", distinct);
    TS_CHECK(busy >= 2, "/slots showed at most %d busy", busy);
    for (int i = 0; i < 8; i++)
        free(texts[i]);
    TS_CHECK(metric(p.port, "tessera_requests_success_total") == 8, "8 successes");
    TS_CHECK(metric(p.port, "tessera_generated_tokens_total") > 8, "tokens counted");
    TS_CHECK(metric(p.port, "tessera_kv_pages_total") > 0, "pages total");
    http_resp r;
    TS_REQUIRE(!http_do(p.port, "GET", "/metrics", NULL, NULL, 0, &r, T_MS), "metrics");
    const char *names[] = {"tessera_requests_running", "tessera_requests_waiting",
                           "tessera_prompt_tokens_total", "tessera_generated_tokens_total",
                           "tessera_time_to_first_token_seconds_bucket",
                           "tessera_inter_token_latency_seconds_count", "tessera_kv_pages_used",
                           "tessera_kv_pages_total", "tessera_steps_total",
                           "tessera_step_tokens_bucket"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        TS_CHECK(strstr(r.body, names[i]) != NULL, "metrics lack %s", names[i]);
    TS_CHECK(strstr(r.ctype, "text/plain") != NULL, "metrics content type %s", r.ctype);
    http_free(&r);
    stop(&p);
}

TS_TEST(test_server_bad_requests)
{
    srv_proc p;
    if (!start(&p, "-np 2 -c 128 --max-body 1048576"))
        return;
    int n4xx = 0;
    for (size_t i = 0; i < SRV_N_BAD_CASES; i++) {
        const srv_bad_case *c = &SRV_BAD_CASES[i];
        const size_t len = c->len ? c->len : strlen(c->body);
        http_resp r;
        int rc = http_do(p.port, "POST", c->path, NULL, c->body, len, &r, T_MS);
        TS_CHECK(!rc && r.status >= 400 && r.status < 500, "case %s: rc %d status %d", c->name,
                 rc, rc ? 0 : r.status);
        if (!rc) {
            cJSON *j = cJSON_ParseWithLength(r.body, r.len);
            TS_CHECK(j && jstr(j, "error.message") && jstr(j, "error.type"),
                     "case %s: not an error object: %.200s", c->name, r.body);
            cJSON_Delete(j);
            n4xx += r.status >= 400 && r.status < 500;
            http_free(&r);
        }
    }
    TS_CHECK(n4xx >= 50, "%d 4xx cases", n4xx);
    /* Out-of-vocabulary token ids, a 10 MB body. */
    int st;
    cJSON *j = post_json(p.port, "/v1/completions", "{\"prompt\":[1,2,99999999]}", &st);
    TS_CHECK(st == 400, "token id out of range: %d", st);
    cJSON_Delete(j);
    size_t big = 10u << 20;
    char *b = malloc(big);
    TS_REQUIRE(b, "malloc");
    memset(b, ' ', big);
    memcpy(b, "{\"prompt\":\"", 11);
    b[big - 2] = '"';
    b[big - 1] = '}';
    http_resp r;
    TS_CHECK(!http_do(p.port, "POST", "/v1/completions", NULL, b, big, &r, T_MS) &&
                 r.status == 413, "10 MB body: %d", r.status);
    http_free(&r);
    free(b);
    TS_REQUIRE(!http_do(p.port, "GET", "/health", NULL, NULL, 0, &r, T_MS), "health after");
    TS_CHECK(r.status == 200, "health after the corpus: %d", r.status);
    http_free(&r);
    char *t = text_of(p.port, false, "{\"prompt\":\"Hi\",\"max_tokens\":2}", NULL, 0);
    TS_CHECK(t != NULL, "a completion after the corpus");
    free(t);
    stop(&p);
}

TS_TEST(test_server_api_key_and_queue)
{
    srv_proc p;
    if (!start(&p, "-np 1 -c 4096 --api-key s3cret --queue 1"))
        return;
    http_resp r;
    const char *body = "{\"prompt\":\"Hi\",\"max_tokens\":2}";
    TS_REQUIRE(!http_do(p.port, "POST", "/v1/completions", NULL, body, strlen(body), &r, T_MS),
               "no key");
    TS_CHECK(r.status == 401 && strstr(r.body, "authentication_error"), "no key: %d", r.status);
    http_free(&r);
    TS_REQUIRE(!http_do(p.port, "POST", "/v1/completions", "Authorization: Bearer nope\r\n",
                        body, strlen(body), &r, T_MS), "wrong key");
    TS_CHECK(r.status == 401, "wrong key: %d", r.status);
    http_free(&r);
    TS_REQUIRE(!http_do(p.port, "POST", "/v1/completions", "Authorization: Bearer s3cret\r\n",
                        body, strlen(body), &r, T_MS), "key");
    TS_CHECK(r.status == 200, "right key: %d %s", r.status, r.body);
    http_free(&r);
    TS_REQUIRE(!http_do(p.port, "GET", "/health", NULL, NULL, 0, &r, T_MS), "health");
    TS_CHECK(r.status == 200, "/health is public: %d", r.status);
    http_free(&r);
    /* One sequence, a queue of one: the third of three long requests gets 503. */
    const char *lng = "{\"prompt\":\"Once\",\"max_tokens\":3000,\"ignore_eos\":true,\"stream\":true,"
                      "\"temperature\":1,\"top_k\":0,\"min_p\":0,\"seed\":1}";
    char hb[256];
    int fds[2];
    for (int i = 0; i < 2; i++) {
        fds[i] = http_send_h(p.port, "POST", "/v1/completions", "Authorization: Bearer s3cret\r\n",
                             lng, strlen(lng));
        usleep(100000);
    }
    snprintf(hb, sizeof(hb), "Authorization: Bearer s3cret\r\n");
    TS_REQUIRE(!http_do(p.port, "POST", "/v1/completions", hb, lng, strlen(lng), &r, T_MS),
               "third");
    TS_CHECK(r.status == 503 && strstr(r.body, "queue"), "queue full: %d %.100s", r.status,
             r.body);
    http_free(&r);
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    stop(&p);
}

TS_TEST(test_server_bad_flags)
{
    char out[2048];
    const char *m = model();
    if (!m)
        return;
    int rc = ts_test_sh(out, sizeof(out), 60, "%s serve", ts_test_bin());
    TS_CHECK(rc == 2 && strstr(out, "-m MODEL"), "no -m: %d %s", rc, out);
    rc = ts_test_sh(out, sizeof(out), 60, "%s serve -m %s --parallel 0", ts_test_bin(), m);
    TS_CHECK(rc == 2 && strstr(out, "--parallel"), "--parallel 0: %d %s", rc, out);
    rc = ts_test_sh(out, sizeof(out), 60, "%s serve -m %s --port 70000", ts_test_bin(), m);
    TS_CHECK(rc == 2, "--port 70000: %d", rc);
    rc = ts_test_sh(out, sizeof(out), 60, "%s serve -m %s --bogus 1", ts_test_bin(), m);
    TS_CHECK(rc == 2 && strstr(out, "unknown option"), "--bogus: %d", rc);
    rc = ts_test_sh(out, sizeof(out), 60, "%s serve -m %s --port 0 --chat-template nosuch",
                    ts_test_bin(), m);
    TS_CHECK(rc == 1 && strstr(out, "nosuch") && strstr(out, "chatml"), "template: %d %s", rc,
             out);
    rc = ts_test_sh(out, sizeof(out), 60, "%s serve -m %s --host not-an-ip", ts_test_bin(), m);
    TS_CHECK(rc == 1 && strstr(out, "not-an-ip"), "host: %d %s", rc, out);
    rc = ts_test_sh(out, sizeof(out), 60, "%s serve -m /nonexistent.gguf --port 0",
                    ts_test_bin());
    TS_CHECK(rc == 1 && strstr(out, "nonexistent"), "missing model: %d %s", rc, out);
}
