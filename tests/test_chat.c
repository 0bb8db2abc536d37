/*
 * tests/test_chat.c: server/chat.c against llama.cpp's own renderings.
 *
 * tests/data/chat-templates.txt (its header says how it was made) holds, per
 * record, a template name or a template text, the messages, add_ass and what
 * llama_chat_apply_template returned. Every record must render byte-equal,
 * and at every buffer size (snprintf contract: full length returned, output
 * NUL-terminated inside cap, nothing written past it). Detection records also
 * name the templates llama.cpp's choice rendered identically to; ours must be
 * one of them. The rest: the name table's round trip, unknown names and ids,
 * and n = 0 / NULL pointers, which llama.cpp leaves undefined and we define.
 */
#include "../server/chat.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DATA_PATH "tests/data/chat-templates.txt"
#define MAX_MSGS 16
#define MAX_MATCH 8

typedef struct {
    char kind[16], label[32];
    char *tmpl, *want;
    long want_len; /* -1: llama.cpp refused */
    bool add_ass;
    size_t n_msgs, n_match;
    srv_chat_msg msgs[MAX_MSGS];
    char match[MAX_MATCH][32];
    char *owned[2 * MAX_MSGS + 2]; /* every string above, freed per record */
    size_t n_owned;
} record;

static int hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Reads one quoted string at *p (escapes as the data file's header says)
 * into a fresh buffer; *len gets its length. NULL on a malformed string. */
static char *unquote(const char **p, size_t *len)
{
    const char *s = *p;
    while (*s == ' ')
        s++;
    if (*s++ != '"')
        return NULL;
    char *dst = malloc(strlen(s) + 1);
    size_t n = 0;
    for (; *s && *s != '"'; s++) {
        if (*s != '\\') {
            dst[n++] = *s;
            continue;
        }
        s++;
        if (*s == 'n' || *s == 't' || *s == 'r')
            dst[n++] = *s == 'n' ? '\n' : *s == 't' ? '\t' : '\r';
        else if (*s == '\\' || *s == '"')
            dst[n++] = *s;
        else if (*s == 'x' && hex(s[1]) >= 0 && hex(s[2]) >= 0) {
            dst[n++] = (char)(hex(s[1]) * 16 + hex(s[2]));
            s += 2;
        } else {
            free(dst);
            return NULL;
        }
    }
    if (*s != '"') {
        free(dst);
        return NULL;
    }
    dst[n] = 0;
    *p = s + 1;
    if (len)
        *len = n;
    return dst;
}

static char *own(record *r, char *s)
{
    if (s && r->n_owned < sizeof(r->owned) / sizeof(r->owned[0]))
        r->owned[r->n_owned++] = s;
    return s;
}

static void record_free(record *r)
{
    for (size_t i = 0; i < r->n_owned; i++)
        free(r->owned[i]);
    memset(r, 0, sizeof(*r));
}

/* Parses one line into r; returns false on a line it cannot read. */
static bool parse_line(record *r, const char *line)
{
    size_t len = 0;
    if (!strncmp(line, "record ", 7))
        return sscanf(line, "record %15s %31s", r->kind, r->label) == 2;
    if (!strncmp(line, "tmpl ", 5))
        return (r->tmpl = own(r, unquote(&(const char *){line + 5}, NULL))) != NULL;
    if (!strncmp(line, "add_ass ", 8)) {
        r->add_ass = line[8] == '1';
        return true;
    }
    if (!strncmp(line, "msg ", 4)) {
        const char *p = line + 4;
        if (r->n_msgs == MAX_MSGS)
            return false;
        srv_chat_msg *m = &r->msgs[r->n_msgs++];
        m->role = own(r, unquote(&p, NULL));
        m->content = m->role ? own(r, unquote(&p, NULL)) : NULL;
        return m->content != NULL;
    }
    if (!strncmp(line, "want -1", 7)) {
        r->want_len = -1;
        return true;
    }
    if (!strncmp(line, "want ", 5)) {
        r->want = own(r, unquote(&(const char *){line + 5}, &len));
        r->want_len = (long)len;
        return r->want != NULL;
    }
    if (!strncmp(line, "match", 5)) {
        int used = 0;
        for (const char *p = line + 5; r->n_match < MAX_MATCH; p += used)
            if (sscanf(p, " %31s%n", r->match[r->n_match], &used) == 1)
                r->n_match++;
            else
                break;
        return true;
    }
    return false;
}

static int record_id(const record *r)
{
    int id = srv_chat_detect(r->tmpl, strlen(r->tmpl));
    if (!strcmp(r->kind, "name")) {
        TS_CHECK(srv_chat_from_name(r->tmpl) == id, "%s: from_name and detect disagree", r->tmpl);
        TS_CHECK(id >= 0 && !strcmp(srv_chat_name(id), r->tmpl), "%s: name round trip", r->tmpl);
    } else if (id >= 0 && r->n_match > 0) {
        bool found = false;
        for (size_t i = 0; i < r->n_match; i++)
            found |= !strcmp(r->match[i], srv_chat_name(id));
        TS_CHECK(found, "detect %s: got %s, llama.cpp's renders as %s", r->label, srv_chat_name(id),
                 r->match[0]);
    }
    return id;
}

/* Renders at cap and checks the snprintf contract against the full text. */
static void check_cap(const record *r, int id, size_t cap)
{
    size_t size = (size_t)r->want_len + 8;
    char *buf = malloc(size);
    memset(buf, 0xA5, size);
    long got = srv_chat_apply(id, r->msgs, r->n_msgs, r->add_ass, cap ? buf : NULL, cap);
    TS_CHECK(got == r->want_len, "%s/%s cap %zu: length %ld, want %ld", r->tmpl, r->label, cap, got,
             r->want_len);
    size_t kept = cap == 0 ? 0 : cap - 1 < (size_t)r->want_len ? cap - 1 : (size_t)r->want_len;
    if (cap > 0) {
        TS_CHECK(!memcmp(buf, r->want, kept) && buf[kept] == 0, "%s/%s cap %zu: text differs",
                 r->tmpl, r->label, cap);
        for (size_t i = cap; i < size; i++)
            TS_CHECK((unsigned char)buf[i] == 0xA5, "%s/%s cap %zu: wrote byte %zu", r->tmpl,
                     r->label, cap, i);
    }
    free(buf);
}

static void check_record(const record *r, int *n_checked)
{
    int id = record_id(r);
    if (r->want_len < 0) {
        TS_CHECK(id < 0 || srv_chat_apply(id, r->msgs, r->n_msgs, r->add_ass, NULL, 0) == -1,
                 "%s/%s: llama.cpp refuses, we render", r->tmpl, r->label);
        (*n_checked)++;
        return;
    }
    if (id < 0) {
        TS_CHECK(0, "%s/%s: not recognised", r->tmpl, r->label);
        return;
    }
    size_t len = (size_t)r->want_len;
    size_t caps[] = {len + 1, 0, 1, 2, len / 2 + 1, len, len + 2};
    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++)
        check_cap(r, id, caps[c]);
    (*n_checked)++;
}

TS_TEST(test_chat_matches_llama_cpp)
{
    FILE *f = fopen(DATA_PATH, "r");
    if (!f) {
        ts_test_skip(DATA_PATH " not found (run from the repository root)");
        return;
    }
    static char line[1 << 16];
    record r = {0};
    int n_checked = 0, lineno = 0;
    bool ok = true;
    while (ok && fgets(line, sizeof(line), f)) {
        lineno++;
        line[strcspn(line, "\n")] = 0;
        if (line[0] == '#' || line[0] == 0)
            continue;
        if (!strcmp(line, "end")) {
            ok = r.tmpl && (r.want_len < 0 || r.want);
            if (ok)
                check_record(&r, &n_checked);
            record_free(&r);
        } else {
            ok = parse_line(&r, line);
        }
    }
    record_free(&r);
    fclose(f);
    TS_CHECK(ok, DATA_PATH ":%d: malformed", lineno);
    TS_CHECK(n_checked >= 300, "only %d records checked", n_checked);
}

TS_TEST(test_chat_names_round_trip)
{
    const char *list = srv_chat_names();
    int n_named = 0;
    for (int id = 0; srv_chat_name(id); id++) {
        const char *name = srv_chat_name(id);
        if (srv_chat_from_name(name) < 0)
            continue; // detect-only (llama.cpp has no name for it)
        TS_CHECK(srv_chat_from_name(name) == id, "%s: round trip", name);
        TS_CHECK(srv_chat_detect(name, strlen(name)) == id, "%s: detect by exact name", name);
        n_named++;
    }
    int n_listed = 0;
    for (const char *p = list; *p;) {
        size_t k = strcspn(p, ", ");
        char name[64] = {0};
        memcpy(name, p, k < sizeof(name) - 1 ? k : sizeof(name) - 1);
        TS_CHECK(srv_chat_from_name(name) >= 0, "listed name %s unknown", name);
        n_listed++;
        p += k;
        p += strspn(p, ", ");
    }
    TS_CHECK(n_listed == n_named, "srv_chat_names lists %d, table has %d", n_listed, n_named);
    TS_CHECK(srv_chat_from_name("chatml") >= 0, "chatml");
}

TS_TEST(test_chat_unknown)
{
    const char *bad[] = {"", "ChatML", "chatml ", "nope", "llama", "dots1"};
    srv_chat_msg m = {"user", "hi"};
    char buf[8] = "xxxxxxx";
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        TS_CHECK(srv_chat_from_name(bad[i]) == -1, "'%s' accepted", bad[i]);
    TS_CHECK(srv_chat_from_name(NULL) == -1, "NULL name");
    TS_CHECK(!srv_chat_name(-1) && !srv_chat_name(100000), "name of a bad id");
    TS_CHECK(srv_chat_apply(-1, &m, 1, true, buf, sizeof(buf)) == -1, "id -1");
    TS_CHECK(srv_chat_apply(100000, &m, 1, true, buf, sizeof(buf)) == -1, "id out of range");
    TS_CHECK(!strcmp(buf, "xxxxxxx"), "refusal wrote to buf");
    TS_CHECK(srv_chat_detect(NULL, 0) == -1 && srv_chat_detect("", 0) == -1, "empty text");
    TS_CHECK(srv_chat_detect("{{ messages }}", 14) == -1, "plain Jinja");
    /* len bounds the text, and so does a NUL (llama.cpp sees a C string) */
    TS_CHECK(srv_chat_detect("<|im_start|>", 5) == -1, "read past len");
    TS_CHECK(srv_chat_detect("<|im_start|>", 12) == srv_chat_from_name("chatml"), "chatml");
    TS_CHECK(srv_chat_detect("x\0<|im_start|>", 14) == -1, "read past NUL");
}

TS_TEST(test_chat_null_and_empty)
{
    srv_chat_msg nul[2] = {{"user", NULL}, {NULL, "x"}};
    srv_chat_msg emp[2] = {{"user", ""}, {"", "x"}};
    char a[512], b[512];
    for (int id = 0; srv_chat_name(id); id++) {
        long n0 = srv_chat_apply(id, NULL, 0, true, a, sizeof(a));
        long n1 = srv_chat_apply(id, emp, 0, true, b, sizeof(b));
        TS_CHECK(n0 >= 0 && n0 == n1 && !strcmp(a, b), "%s: n = 0", srv_chat_name(id));
        n0 = srv_chat_apply(id, nul, 2, true, a, sizeof(a));
        n1 = srv_chat_apply(id, emp, 2, true, b, sizeof(b));
        TS_CHECK(n0 >= 0 && n0 == n1 && !strcmp(a, b), "%s: NULL reads as \"\"", srv_chat_name(id));
        TS_CHECK(srv_chat_apply(id, emp, 2, false, NULL, 0) >= 0, "%s: size query",
                 srv_chat_name(id));
        TS_CHECK(srv_chat_apply(id, emp, 2, false, NULL, 10) >= 0, "%s: NULL buf, cap 10",
                 srv_chat_name(id));
        TS_CHECK(srv_chat_apply(id, NULL, 1, false, a, sizeof(a)) == -1, "%s: NULL msgs, n 1",
                 srv_chat_name(id));
    }
}
