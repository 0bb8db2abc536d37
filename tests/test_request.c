/*
 * tests/test_request.c: server/request.c against tests/server_corpus.c. Every bad body is a
 * 400 with a message, an error.type and an error object that parses back; every good body
 * parses to the values its expect string lists, checked through describe(), which writes a
 * parsed request as "key=value;..." (bytes outside printable ASCII, ';' and '\' as \xNN).
 * Also: the defaults in full, messages that name the field, every truncation of every good
 * body, bodies near the size limits built at run time, and each body under every kind (no
 * leak, no crash, *out zeroed on failure). make test runs this under ASan, so leaks fail.
 */
#include "../server/request.h"
#include "server_corpus.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DESC_CAP 8192

typedef struct {
    char *buf;
    size_t cap, len;
} desc_buf;

static void put(desc_buf *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(desc_buf *d, const char *fmt, ...)
{
    va_list ap;
    if (d->len + 1 >= d->cap)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(d->buf + d->len, d->cap - d->len, fmt, ap);
    va_end(ap);
    d->len = n < 0 ? d->len : d->len + (size_t)n < d->cap ? d->len + (size_t)n : d->cap - 1;
}

/* key=text with the escaping of the header; NULL is "-". */
static void put_text(desc_buf *d, const char *key, const char *s)
{
    put(d, "%s=", key);
    if (!s) {
        put(d, "-;");
        return;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p >= 0x7f || *p == ';' || *p == '\\')
            put(d, "\\x%02x", *p);
        else
            put(d, "%c", *p);
    }
    put(d, ";");
}

static void describe(const srv_request *r, char *buf, size_t cap)
{
    desc_buf d = {buf, cap, 0};
    char key[32];
    buf[0] = 0;
    put(&d, "kind=%d;", (int)r->kind);
    put_text(&d, "prompt", r->prompt);
    put(&d, "prompt_len=%zu;ids=", r->prompt_len);
    if (!r->prompt_ids)
        put(&d, "-");
    for (size_t i = 0; r->prompt_ids && i < r->n_prompt_ids && i < 8; i++)
        put(&d, "%s%d", i ? "," : "", r->prompt_ids[i]);
    put(&d, ";n_ids=%zu;n_msgs=%d;", r->n_prompt_ids, r->n_msgs);
    for (int m = 0; m < r->n_msgs; m++) {
        snprintf(key, sizeof(key), "msg%d.role", m);
        put_text(&d, key, r->msgs[m].role);
        snprintf(key, sizeof(key), "msg%d.content", m);
        put_text(&d, key, r->msgs[m].content);
    }
    const ts_sampling *s = &r->samp;
    put(&d, "max_tokens=%lld;temp=%g;top_k=%d;top_p=%g;min_p=%g;repeat_penalty=%g;", r->max_tokens,
        (double)s->temp, s->top_k, (double)s->top_p, (double)s->min_p, (double)s->repeat_penalty);
    put(&d, "repeat_last_n=%d;", s->repeat_last_n);
    if (r->seed_set)
        put(&d, "seed=%llu;", (unsigned long long)s->seed);
    else
        put(&d, "seed=-;");
    put(&d, "n_stop=%d;", r->n_stop);
    for (int i = 0; i < r->n_stop; i++) {
        snprintf(key, sizeof(key), "stop%d", i);
        put_text(&d, key, r->stop[i]);
    }
    put(&d, "stream=%d;include_usage=%d;add_special=%d;with_pieces=%d;", r->stream,
        r->include_usage, r->add_special, r->with_pieces);
    put_text(&d, "model", r->model);
}

/* Each ';'-separated item of expect must be a whole item of desc. */
static void check_expect(const char *name, const char *desc, const char *expect)
{
    size_t dn = strlen(desc);
    char *hay = malloc(dn + 2);
    TS_REQUIRE(hay, "out of memory");
    hay[0] = ';';
    memcpy(hay + 1, desc, dn + 1);
    for (const char *p = expect; *p;) {
        const char *end = strchr(p, ';');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char item[600];
        snprintf(item, sizeof(item), ";%.*s;", (int)n, p);
        TS_CHECK(strstr(hay, item), "%s: expected %s in %s", name, item, desc);
        p += n + (end ? 1 : 0);
    }
    free(hay);
}

static bool is_zeroed(const srv_request *r)
{
    static const srv_request zero;
    return !memcmp(r, &zero, sizeof(zero));
}

/* The error object srv_error_json writes must parse back to the same code/message/type. */
static void check_error_json(const char *name, const srv_error *err)
{
    char *s = srv_error_json(err);
    TS_REQUIRE(s, "%s: srv_error_json returned NULL", name);
    cJSON *root = cJSON_Parse(s);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(e, "type");
    TS_CHECK(cJSON_IsNumber(code) && code->valuedouble == err->http, "%s: code in %s", name, s);
    TS_CHECK(cJSON_IsString(msg) && !strcmp(msg->valuestring, err->msg), "%s: message in %s",
             name, s);
    TS_CHECK(cJSON_IsString(type) && !strcmp(type->valuestring, err->type), "%s: type in %s",
             name, s);
    cJSON_Delete(root);
    free(s);
}

static size_t body_len(const char *body, size_t len)
{
    return len ? len : strlen(body);
}

TS_TEST(test_request_bad_corpus)
{
    TS_CHECK(SRV_N_BAD_CASES >= 60, "only %zu bad cases", SRV_N_BAD_CASES);
    for (size_t i = 0; i < SRV_N_BAD_CASES; i++) {
        const srv_bad_case *c = &SRV_BAD_CASES[i];
        srv_request r;
        srv_error err;
        memset(&r, 0xA5, sizeof(r));
        int rc = srv_request_parse(c->body, body_len(c->body, c->len), c->kind, &r, &err);
        TS_CHECK(rc == -1, "%s: parsed (rc %d)", c->name, rc);
        if (rc == 0) {
            srv_request_free(&r);
            continue;
        }
        TS_CHECK(err.http == c->http, "%s: http %d, expected %d", c->name, err.http, c->http);
        TS_CHECK(err.msg[0], "%s: empty message", c->name);
        TS_CHECK(!strcmp(err.type, "invalid_request_error"), "%s: type %s", c->name, err.type);
        TS_CHECK(is_zeroed(&r), "%s: *out not zeroed", c->name);
        check_error_json(c->name, &err);
        srv_request_free(&r); /* safe on the zeroed struct */
    }
}

TS_TEST(test_request_good_corpus)
{
    TS_CHECK(SRV_N_GOOD_CASES >= 10, "only %zu good cases", SRV_N_GOOD_CASES);
    char *desc = malloc(DESC_CAP);
    TS_REQUIRE(desc, "out of memory");
    for (size_t i = 0; i < SRV_N_GOOD_CASES; i++) {
        const srv_good_case *c = &SRV_GOOD_CASES[i];
        srv_request r;
        srv_error err;
        int rc = srv_request_parse(c->body, body_len(c->body, c->len), c->kind, &r, &err);
        TS_CHECK(rc == 0, "%s: rejected: %d %s", c->name, err.http, err.msg);
        if (rc)
            continue;
        TS_CHECK(r.kind == (srv_req_kind)c->kind, "%s: kind %d", c->name, (int)r.kind);
        describe(&r, desc, DESC_CAP);
        check_expect(c->name, desc, c->expect);
        srv_request_free(&r);
        TS_CHECK(is_zeroed(&r), "%s: not zeroed after free", c->name);
    }
    free(desc);
}

static void check_full(const char *body, srv_req_kind kind, const char *want)
{
    srv_request r;
    srv_error err;
    char desc[1024];
    TS_REQUIRE(srv_request_parse(body, strlen(body), kind, &r, &err) == 0, "%s: %s", body,
               err.msg);
    describe(&r, desc, sizeof(desc));
    TS_CHECK(!strcmp(desc, want), "%s:\n  got  %s\n  want %s", body, desc, want);
    srv_request_free(&r);
}

TS_TEST(test_request_defaults)
{
    check_full("{\"prompt\":\"x\"}", SRV_REQ_COMPLETION,
               "kind=0;prompt=x;prompt_len=1;ids=-;n_ids=0;n_msgs=0;max_tokens=-1;temp=0.8;"
               "top_k=40;top_p=0.95;min_p=0.05;repeat_penalty=1;repeat_last_n=64;seed=-;n_stop=0;"
               "stream=0;include_usage=0;add_special=0;with_pieces=0;model=-;");
    check_full("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", SRV_REQ_CHAT,
               "kind=1;prompt=-;prompt_len=0;ids=-;n_ids=0;n_msgs=1;msg0.role=user;"
               "msg0.content=hi;max_tokens=-1;temp=0.8;top_k=40;top_p=0.95;min_p=0.05;"
               "repeat_penalty=1;repeat_last_n=64;seed=-;n_stop=0;stream=0;include_usage=0;"
               "add_special=0;with_pieces=0;model=-;");
    check_full("{\"tokens\":[7]}", SRV_REQ_DETOKENIZE,
               "kind=3;prompt=-;prompt_len=0;ids=7;n_ids=1;n_msgs=0;max_tokens=-1;temp=0.8;"
               "top_k=40;top_p=0.95;min_p=0.05;repeat_penalty=1;repeat_last_n=64;seed=-;n_stop=0;"
               "stream=0;include_usage=0;add_special=0;with_pieces=0;model=-;");
}

/* The message names the field and says why. */
TS_TEST(test_request_messages_name_the_field)
{
    static const struct {
        int kind;
        const char *body, *msg;
    } cases[] = {
        {0, "{\"prompt\":\"a\",\"temperature\":\"hot\"}", "'temperature' must be a number"},
        {0, "{\"prompt\":\"a\",\"max_tokens\":3.5}", "'max_tokens' must be an integer"},
        {0, "{\"prompt\":\"a\",\"top_p\":2}", "'top_p' must be between 0 and 1"},
        {0, "{\"prompt\":\"a\",\"top_k\":-1}", "'top_k' must be between 0 and 2147483647"},
        {0, "{\"prompt\":\"a\",\"repeat_penalty\":0}", "'repeat_penalty' must be > 0"},
        {0, "{\"prompt\":\"a\",\"temperature\":1e999}", "'temperature' is out of range"},
        {0, "{\"prompt\":\"a\",\"stream\":\"yes\"}", "'stream' must be a boolean"},
        {0, "{}", "'prompt' is required"},
        {0, "[]", "must be a JSON object"},
        {0, "{\"prompt\":\"a\"} x", "invalid JSON at byte 15"},
        {1, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
         "only text content is supported"},
        {1, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":2,\"content\":\"\"}]}",
         "messages[1].role must be a string"},
        {3, "{\"tokens\":[-1]}", "'tokens' must be an array of token ids"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        srv_request r;
        srv_error err;
        int rc = srv_request_parse(cases[i].body, strlen(cases[i].body), cases[i].kind, &r, &err);
        TS_CHECK(rc == -1 && strstr(err.msg, cases[i].msg), "%s: got \"%s\", want \"%s\"",
                 cases[i].body, err.msg, cases[i].msg);
        if (rc == 0)
            srv_request_free(&r);
    }
}

TS_TEST(test_request_error_json)
{
    srv_error err = {.http = 413, .type = "invalid_request_error"};
    snprintf(err.msg, sizeof(err.msg), "quote \" backslash \\ newline \n tab \t ctl \x01 end");
    check_error_json("escapes", &err);
    char *s = srv_error_json(&err);
    TS_REQUIRE(s, "NULL");
    TS_CHECK(!strncmp(s, "{\"error\":{\"code\":413,\"message\":\"quote \\\" backslash \\\\", 40),
             "layout: %s", s);
    free(s);
    /* Full arrays, no NUL: the copies are bounded. */
    memset(err.msg, 'm', sizeof(err.msg));
    memset(err.type, 't', sizeof(err.type));
    s = srv_error_json(&err);
    TS_REQUIRE(s, "NULL");
    cJSON *root = cJSON_Parse(s);
    TS_CHECK(root, "unterminated fields: %s", s);
    cJSON_Delete(root);
    free(s);
}

/* Every proper prefix of a good body that ends before its closing brace is a 400. */
TS_TEST(test_request_truncations)
{
    for (size_t i = 0; i < SRV_N_GOOD_CASES; i++) {
        const srv_good_case *c = &SRV_GOOD_CASES[i];
        size_t n = body_len(c->body, c->len), last = n;
        while (last > 0 && c->body[last - 1] != '}')
            last--;
        for (size_t cut = 0; cut + 1 < last; cut++) {
            srv_request r;
            srv_error err;
            int rc = srv_request_parse(c->body, cut, c->kind, &r, &err);
            TS_CHECK(rc == -1 && err.http == 400 && is_zeroed(&r), "%s cut at %zu: rc %d",
                     c->name, cut, rc);
            if (rc == 0)
                srv_request_free(&r);
        }
    }
}

/* Any body under any kind: 0 and a request to free, or -1 and nothing held. */
TS_TEST(test_request_every_kind)
{
    for (int kind = 0; kind < 4; kind++) {
        for (size_t i = 0; i < SRV_N_BAD_CASES + SRV_N_GOOD_CASES; i++) {
            const char *body = i < SRV_N_BAD_CASES ? SRV_BAD_CASES[i].body
                                                   : SRV_GOOD_CASES[i - SRV_N_BAD_CASES].body;
            size_t len = i < SRV_N_BAD_CASES ? SRV_BAD_CASES[i].len
                                             : SRV_GOOD_CASES[i - SRV_N_BAD_CASES].len;
            srv_request r;
            srv_error err;
            int rc = srv_request_parse(body, body_len(body, len), kind, &r, &err);
            TS_CHECK(rc == 0 || (rc == -1 && err.http == 400 && err.msg[0] && is_zeroed(&r)),
                     "kind %d case %zu: rc %d", kind, i, rc);
            if (rc == 0)
                srv_request_free(&r);
        }
    }
    srv_request zero = {0};
    srv_request_free(&zero);
    srv_request_free(&zero);
    srv_request_free(NULL);
}

/* A body of prefix, n copies of item (the last one without its trailing comma when comma),
 * and suffix; malloc'ed, *len bytes. */
static char *repeat_body(const char *prefix, const char *item, size_t n, bool comma,
                         const char *suffix, size_t *len)
{
    size_t pn = strlen(prefix), in = strlen(item), sn = strlen(suffix);
    char *b = malloc(pn + in * n + sn + 1);
    if (!b)
        return NULL;
    memcpy(b, prefix, pn);
    for (size_t i = 0; i < n; i++)
        memcpy(b + pn + i * in, item, in);
    size_t at = pn + in * n - (comma && n ? 1 : 0);
    memcpy(b + at, suffix, sn + 1);
    *len = at + sn;
    return b;
}

static int parse_built(char *body, size_t len, srv_req_kind kind, srv_request *r,
                       srv_error *err)
{
    if (!body)
        return -2;
    int rc = srv_request_parse(body, len, kind, r, err);
    free(body);
    return rc;
}

/* Near the limits, built at run time: a 2 MB prompt, SRV_MAX_PROMPT_TOKENS ids (and one
 * more), 1024 messages. */
TS_TEST(test_request_long_bodies)
{
    srv_request r;
    srv_error err;
    size_t len = 0;
    char *b = repeat_body("{\"prompt\":\"", "abcdefgh", 2 << 17, false, "\"}", &len);
    TS_REQUIRE(parse_built(b, len, SRV_REQ_COMPLETION, &r, &err) == 0, "2 MB: %s", err.msg);
    TS_CHECK(r.prompt_len == 8u << 18 && r.prompt[r.prompt_len - 1] == 'h', "2 MB: %zu bytes",
             r.prompt_len);
    srv_request_free(&r);

    b = repeat_body("{\"prompt\":[", "7,", SRV_MAX_PROMPT_TOKENS, true, "]}", &len);
    TS_REQUIRE(parse_built(b, len, SRV_REQ_COMPLETION, &r, &err) == 0, "max ids: %s", err.msg);
    TS_CHECK(r.n_prompt_ids == SRV_MAX_PROMPT_TOKENS && r.prompt_ids[r.n_prompt_ids - 1] == 7,
             "max ids: %zu", r.n_prompt_ids);
    srv_request_free(&r);

    b = repeat_body("{\"tokens\":[", "7,", SRV_MAX_PROMPT_TOKENS + 1, true, "]}", &len);
    TS_CHECK(parse_built(b, len, SRV_REQ_DETOKENIZE, &r, &err) == -1 && err.http == 400,
             "max ids + 1 parsed");

    b = repeat_body("{\"messages\":[", "{\"role\":\"user\",\"content\":\"m\"},",
                    SRV_MAX_MESSAGES, true, "]}", &len);
    TS_REQUIRE(parse_built(b, len, SRV_REQ_CHAT, &r, &err) == 0, "max msgs: %s", err.msg);
    TS_CHECK(r.n_msgs == SRV_MAX_MESSAGES, "max msgs: %d", r.n_msgs);
    srv_request_free(&r);
}
