/*
 * server/chat.c: the built-in chat templates, rendered byte-equal to
 * llama_chat_apply_template of llama.cpp v0.5.0 (src/llama-chat.cpp), with
 * its names (detection from a template's text: server/chat_detect.c).
 * Written from a reading of that logic;
 * tests/data/chat-templates.txt holds llama.cpp's own output to hold us to it.
 *
 * Most templates are data: either "tagged" (open + role + mid + content +
 * close per message) or "mapped" (a per-role prefix and suffix, roles not
 * listed skipped or sent to a default entry). The rest are small functions.
 * Trimming is C-locale isspace on bytes, as llama.cpp's trim() does.
 *
 * Deliberately not here: Jinja, tool calls, reasoning formats. Output is
 * snprintf-style (llama.cpp strncpy's and may leave the buffer unterminated;
 * we always terminate). NULL role or content reads as "" (llama.cpp would
 * crash). Pure: no allocation, no I/O, no global state beyond const tables.
 */
#include "chat.h"

#include <string.h>

#include "chat_ids.h"


/* The output cursor: len counts every byte the text needs, the buffer takes
 * what fits below cap - 1 (the last byte is kept for the NUL). */
typedef struct {
    char *buf;
    size_t cap, len;
} out;

static void put_n(out *o, const char *s, size_t n)
{
    size_t room = o->cap ? o->cap - 1 : 0;
    if (o->len < room)
        memcpy(o->buf + o->len, s, n < room - o->len ? n : room - o->len);
    o->len += n;
}

static void put(out *o, const char *s) { put_n(o, s, strlen(s)); }

static const char *str(const char *s) { return s ? s : ""; }

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static void put_trim(out *o, const char *s)
{
    size_t end = strlen(s), start = 0;
    while (start < end && is_space(s[start]))
        start++;
    while (end > start && is_space(s[end - 1]))
        end--;
    put_n(o, s + start, end - start);
}

static void put_content(out *o, const char *s, bool trim)
{
    if (trim)
        put_trim(o, str(s));
    else
        put(o, str(s));
}

static bool role_is(const srv_chat_msg *m, const char *role) { return !strcmp(str(m->role), role); }

/* ASCII upper case, as toupper() in the C locale. */
static void put_upper(out *o, const char *s)
{
    for (; *s; s++) {
        char c = (*s >= 'a' && *s <= 'z') ? (char)(*s - 'a' + 'A') : *s;
        put_n(o, &c, 1);
    }
}

/* ---- data-driven families ---- */

enum { TRIM_NONE, TRIM_ALL, TRIM_ASSISTANT };

typedef struct {
    const char *start, *open, *mid, *close, *gen;
    int trim;
} tagged_spec;

typedef struct {
    const char *role; /* NULL with pre set: every other role; NULL with pre NULL: end */
    const char *pre, *post;
    bool trim;
} role_rule;

typedef struct {
    const char *start;
    const char *first_not_system; /* emitted when msgs[0] is not a system message */
    const char *gen;
    role_rule rules[7];
} mapped_spec;

typedef void (*render_fn)(out *o, const void *spec, const srv_chat_msg *m, size_t n, bool ass);

static void render_tagged(out *o, const void *spec, const srv_chat_msg *m, size_t n, bool ass)
{
    const tagged_spec *t = spec;
    put(o, t->start);
    for (size_t i = 0; i < n; i++) {
        bool trim = t->trim == TRIM_ALL ||
                    (t->trim == TRIM_ASSISTANT && role_is(&m[i], "assistant"));
        put(o, t->open);
        put(o, str(m[i].role));
        put(o, t->mid);
        put_content(o, m[i].content, trim);
        put(o, t->close);
    }
    if (ass)
        put(o, t->gen);
}

static const role_rule *find_rule(const mapped_spec *s, const srv_chat_msg *m)
{
    for (const role_rule *r = s->rules; r->pre; r++)
        if (!r->role || role_is(m, r->role))
            return r;
    return NULL;
}

static void render_mapped(out *o, const void *spec, const srv_chat_msg *m, size_t n, bool ass)
{
    const mapped_spec *s = spec;
    put(o, s->start);
    for (size_t i = 0; i < n; i++) {
        const role_rule *r = find_rule(s, &m[i]);
        if (i == 0 && s->first_not_system && !role_is(&m[0], "system"))
            put(o, s->first_not_system);
        if (!r)
            continue;
        put(o, r->pre);
        put_content(o, m[i].content, r->trim);
        put(o, r->post);
    }
    if (ass)
        put(o, s->gen);
}

/* ---- families with their own control flow ---- */

typedef struct {
    bool sys, bos_inside, strip;
} llama2_spec;

/* One [INST] turn stays open until an assistant message closes it; the
 * first turn's BOS is the tokenizer's, later ones may carry their own. */
static void render_llama2(out *o, const void *spec, const srv_chat_msg *m, size_t n, bool ass)
{
    const llama2_spec *s = spec;
    bool inside = true;
    (void)ass;
    put(o, "[INST] ");
    for (size_t i = 0; i < n; i++) {
        if (!inside) {
            inside = true;
            put(o, s->bos_inside ? "<s>[INST] " : "[INST] ");
        }
        if (role_is(&m[i], "system")) {
            put(o, s->sys ? "<<SYS>>\n" : "");
            put_content(o, m[i].content, s->strip);
            put(o, s->sys ? "\n<</SYS>>\n\n" : "\n");
        } else if (role_is(&m[i], "user")) {
            put_content(o, m[i].content, s->strip);
            put(o, " [/INST]");
        } else {
            put_content(o, m[i].content, s->strip);
            put(o, "</s>");
            inside = false;
        }
    }
}

typedef struct {
    const char *lead, *trail;
    bool trim_assistant;
} mistral_spec;

static void render_mistral(out *o, const void *spec, const srv_chat_msg *m, size_t n, bool ass)
{
    const mistral_spec *s = spec;
    bool inside = false;
    (void)ass;
    for (size_t i = 0; i < n; i++) {
        if (!inside) {
            put(o, s->lead);
            put(o, "[INST]");
            put(o, s->trail);
            inside = true;
        }
        if (role_is(&m[i], "system")) {
            put(o, str(m[i].content));
            put(o, "\n\n");
        } else if (role_is(&m[i], "user")) {
            put(o, str(m[i].content));
            put(o, s->lead);
            put(o, "[/INST]");
        } else {
            put(o, s->trail);
            put_content(o, m[i].content, s->trim_assistant);
            put(o, "</s>");
            inside = false;
        }
    }
}

static void render_monarch(out *o, const void *spec, const srv_chat_msg *m, size_t n, bool ass)
{
    (void)spec;
    for (size_t i = 0; i < n; i++) {
        put(o, i ? "<s>" : ""); // the first BOS is the tokenizer's
        put(o, str(m[i].role));
        put(o, "\n");
        put(o, str(m[i].content));
        put(o, "</s>\n");
    }
    if (ass)
        put(o, "<s>assistant\n");
}

/* Gemma has no system turn: system texts (trimmed, concatenated) are held
 * and put at the head of the next non-model turn. */
static void render_gemma(out *o, const void *spec, const srv_chat_msg *m, size_t n, bool ass)
{
    size_t sys_from = n, sys_to = n; // held system messages [sys_from, sys_to)
    (void)spec;
    for (size_t i = 0; i < n; i++) {
        if (role_is(&m[i], "system")) {
            if (sys_from == n)
                sys_from = i;
            sys_to = i + 1;
            continue;
        }
        const char *role = role_is(&m[i], "assistant") ? "model" : str(m[i].role);
        put(o, "<start_of_turn>");
        put(o, role);
        put(o, "\n");
        if (strcmp(role, "model") != 0 && sys_from < n) {
            size_t before = o->len;
            for (size_t s = sys_from; s < sys_to; s++)
                if (role_is(&m[s], "system"))
                    put_trim(o, str(m[s].content));
            if (o->len != before) // an all-blank system prompt counts as none
                put(o, "\n\n");
            sys_from = sys_to = n;
        }
        put_trim(o, str(m[i].content));
        put(o, "<end_of_turn>\n");
    }
    if (ass)
        put(o, "<start_of_turn>model\n");
}

static void render_orion(out *o, const void *spec, const srv_chat_msg *m, size_t n, bool ass)
{
    size_t sys_from = n, sys_to = n;
    (void)spec;
    (void)ass;
    for (size_t i = 0; i < n; i++) {
        if (role_is(&m[i], "system")) {
            if (sys_from == n)
                sys_from = i;
            sys_to = i + 1;
        } else if (role_is(&m[i], "user")) {
            put(o, "Human: ");
            size_t before = o->len;
            for (size_t s = sys_from; s < sys_to; s++)
                if (role_is(&m[s], "system"))
                    put(o, str(m[s].content));
            if (o->len != before)
                put(o, "\n\n");
            sys_from = sys_to = n;
            put(o, str(m[i].content));
            put(o, "\n\nAssistant: </s>");
        } else {
            put(o, str(m[i].content));
            put(o, "</s>");
        }
    }
}

static void render_openchat(out *o, const void *spec, const srv_chat_msg *m, size_t n, bool ass)
{
    (void)spec;
    for (size_t i = 0; i < n; i++) {
        const char *role = str(m[i].role);
        if (!strcmp(role, "system")) {
            put(o, str(m[i].content));
        } else {
            put(o, "GPT4 Correct ");
            if (*role) {
                put_upper(o, (char[2]){role[0], 0});
                put(o, role + 1);
            }
            put(o, ": ");
            put(o, str(m[i].content));
        }
        put(o, "<|end_of_turn|>");
    }
    if (ass)
        put(o, "GPT4 Correct Assistant:");
}

/* RWKV's end of turn is "\n\n"; the assistant prefix follows a final user
 * message whatever add_ass says. */
static void render_rwkv(out *o, const void *spec, const srv_chat_msg *m, size_t n, bool ass)
{
    (void)spec;
    (void)ass;
    for (size_t i = 0; i < n; i++) {
        const char *pre = role_is(&m[i], "system") ? "System: "
                          : role_is(&m[i], "user") ? "User: "
                          : role_is(&m[i], "assistant") ? "Assistant: " : NULL;
        if (!pre)
            continue;
        put(o, pre);
        put_trim(o, str(m[i].content));
        put(o, "\n\n");
        if (role_is(&m[i], "user") && i == n - 1)
            put(o, "Assistant:");
    }
}

typedef struct {
    bool v4; /* 4.x: a tool call is an assistant turn; 3.x keeps the role name */
} granite_spec;

static void render_granite(out *o, const void *spec, const srv_chat_msg *m, size_t n, bool ass)
{
    const granite_spec *s = spec;
    for (size_t i = 0; i < n; i++) {
        bool call = role_is(&m[i], "assistant_tool_call");
        put(o, "<|start_of_role|>");
        put(o, call && s->v4 ? "assistant" : str(m[i].role));
        put(o, "<|end_of_role|>");
        put(o, call ? "<|tool_call|>" : "");
        put(o, str(m[i].content));
        put(o, "<|end_of_text|>\n");
    }
    if (ass)
        put(o, "<|start_of_role|>assistant<|end_of_role|>");
}

static void render_gigachat(out *o, const void *spec, const srv_chat_msg *m, size_t n, bool ass)
{
    bool sys = n > 0 && role_is(&m[0], "system");
    (void)spec;
    put(o, "<s>");
    if (sys) {
        put(o, str(m[0].content));
        put(o, "<|message_sep|>");
    }
    for (size_t i = sys ? 1 : 0; i < n; i++) {
        if (role_is(&m[i], "user")) {
            put(o, "user<|role_sep|>");
            put(o, str(m[i].content));
            put(o, "<|message_sep|>available functions<|role_sep|>[]<|message_sep|>");
        } else if (role_is(&m[i], "assistant")) {
            put(o, "assistant<|role_sep|>");
            put(o, str(m[i].content));
            put(o, "<|message_sep|>");
        }
    }
    if (ass)
        put(o, "assistant<|role_sep|>");
}

typedef struct {
    const char *start_no_system, *turn_end, *gen;
} bailing_spec;

static void render_bailing(out *o, const void *spec, const srv_chat_msg *m, size_t n, bool ass)
{
    const bailing_spec *s = spec;
    if (!(n > 0 && role_is(&m[0], "system")))
        put(o, s->start_no_system);
    for (size_t i = 0; i < n; i++) {
        put(o, "<role>");
        if (role_is(&m[i], "user"))
            put(o, "HUMAN");
        else
            put_upper(o, str(m[i].role));
        put(o, "</role>");
        put(o, str(m[i].content));
        put(o, s->turn_end);
    }
    if (ass)
        put(o, s->gen);
}

static void render_gpt_oss(out *o, const void *spec, const srv_chat_msg *m, size_t n, bool ass)
{
    (void)spec;
    for (size_t i = 0; i < n; i++) {
        put(o, "<|start|>");
        put(o, str(m[i].role));
        put(o, "<|message|>");
        put(o, str(m[i].content));
        put(o, role_is(&m[i], "assistant") ? "<|return|>" : "<|end|>");
    }
    if (ass)
        put(o, "<|start|>assistant");
}


/* Hunyuan: only a system message in first place is kept. The dense models
 * wrap turns; the VL models put the role mark after the text. */
static void render_hunyuan(out *o, const void *spec, const srv_chat_msg *m, size_t n, bool ass)
{
    bool vl = spec != NULL;
    (void)ass;
    if (vl)
        put(o, "<\xef\xbd\x9chy_begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>");
    for (size_t i = 0; i < n; i++) {
        bool user = role_is(&m[i], "user"), assistant = role_is(&m[i], "assistant");
        if (i == 0 && role_is(&m[i], "system")) {
            put(o, str(m[i].content));
            put(o, HY_SYS_END);
        } else if (vl && (user || assistant)) {
            put(o, str(m[i].content));
            put(o, user ? HY_USER : HY_ASSISTANT);
        } else if (user || assistant) {
            put(o, user ? HY_USER : HY_ASSISTANT);
            put(o, str(m[i].content));
            put(o, user ? HY_ASSISTANT : "<\xef\xbd\x9chy_place\xe2\x96\x81holder\xe2\x96\x81no"
                                         "\xe2\x96\x81" "2\xef\xbd\x9c>");
        }
    }
}

/* ---- the table ---- */


static const tagged_spec chatml = {"", "<|im_start|>", "\n", "<|im_end|>\n",
                                   "<|im_start|>assistant\n", TRIM_NONE};
static const tagged_spec phi3 = {"", "<|", "|>\n", "<|end|>\n", "<|assistant|>\n", TRIM_NONE};
static const tagged_spec phi4 = {"", "<|im_start|>", "<|im_sep|>", "<|im_end|>",
                                 "<|im_start|>assistant<|im_sep|>", TRIM_NONE};
static const tagged_spec falcon3 = {"", "<|", "|>\n", "\n", "<|assistant|>\n", TRIM_NONE};
static const tagged_spec zephyr = {"", "<|", "|>\n", "<|endoftext|>\n", "<|assistant|>\n",
                                   TRIM_NONE};
static const tagged_spec llama3 = {"", "<|start_header_id|>", "<|end_header_id|>\n\n",
                                   "<|eot_id|>",
                                   "<|start_header_id|>assistant<|end_header_id|>\n\n",
                                   TRIM_ALL};
static const tagged_spec chatglm3 = {"[gMASK]sop", "<|", "|>\n ", "", "<|assistant|>", TRIM_NONE};
static const tagged_spec chatglm4 = {"[gMASK]<sop>", "<|", "|>\n", "", "<|assistant|>\n",
                                     TRIM_NONE};
static const tagged_spec glmedge = {"", "<|", "|>\n", "", "<|assistant|>", TRIM_NONE};
static const tagged_spec megrez = {"", "<|role_start|>", "<|role_end|>", "<|turn_end|>",
                                   "<|role_start|>assistant<|role_end|>", TRIM_NONE};
static const tagged_spec llama4 = {"", "<|header_start|>", "<|header_end|>\n\n", "<|eot|>",
                                   "<|header_start|>assistant<|header_end|>\n\n", TRIM_ALL};
static const tagged_spec seed_oss = {"", "<seed:bos>", "\n", "<seed:eos>",
                                     "<seed:bos>assistant\n", TRIM_ASSISTANT};
static const tagged_spec solar_open = {"", "<|begin|>", "<|content|>", "<|end|>",
                                       "<|begin|>assistant", TRIM_NONE};

static const mapped_spec mistral_v7 = {"", NULL, "", {{"system", "[SYSTEM_PROMPT] ",
    "[/SYSTEM_PROMPT]", 0}, {"user", "[INST] ", "[/INST]", 0}, {NULL, " ", "</s>", 0}, {0}}};
static const mapped_spec mistral_v7t = {"", NULL, "", {{"system", "[SYSTEM_PROMPT]",
    "[/SYSTEM_PROMPT]", 0}, {"user", "[INST]", "[/INST]", 0}, {NULL, "", "</s>", 0}, {0}}};
static const mapped_spec vicuna = {"", NULL, "ASSISTANT:", {{"system", "", "\n\n", 0},
    {"user", "USER: ", "\n", 0}, {"assistant", "ASSISTANT: ", "</s>\n", 0}, {0}}};
static const mapped_spec vicuna_orca = {"", NULL, "ASSISTANT:", {{"system", "SYSTEM: ", "\n", 0},
    {"user", "USER: ", "\n", 0}, {"assistant", "ASSISTANT: ", "</s>\n", 0}, {0}}};
static const mapped_spec deepseek = {"", NULL, "### Response:\n", {{"system", "", "", 0},
    {"user", "### Instruction:\n", "\n", 0}, {"assistant", "### Response:\n", "\n<|EOT|>\n", 0},
    {0}}};
static const mapped_spec command_r = {"", NULL, "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", {
    {"system", "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>", "<|END_OF_TURN_TOKEN|>", 1},
    {"user", "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>", "<|END_OF_TURN_TOKEN|>", 1},
    {"assistant", "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", "<|END_OF_TURN_TOKEN|>", 1}, {0}}};
static const mapped_spec minicpm = {"", NULL, "", {
    {"user", "<\xe7\x94\xa8\xe6\x88\xb7>", "<AI>", 1},
    {NULL, "", "", 1}, {0}}};
static const mapped_spec deepseek2 = {"", NULL, "Assistant:", {{"system", "", "\n\n", 0},
    {"user", "User: ", "\n\n", 0}, {"assistant", "Assistant: ", DS_EOS, 0}, {0}}};
static const mapped_spec deepseek3 = {"", NULL, "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>", {
    {"system", "", "\n\n", 0}, {"user", "<\xef\xbd\x9cUser\xef\xbd\x9c>", "", 0},
    {"assistant", "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>", DS_EOS, 0}, {0}}};
static const mapped_spec deepseek_ocr = {"", NULL, "", {{NULL, "", "", 0}, {0}}};
static const mapped_spec exaone3 = {"", NULL, "[|assistant|]", {
    {"system", "[|system|]", "[|endofturn|]\n", 1}, {"user", "[|user|]", "\n", 1},
    {"assistant", "[|assistant|]", "[|endofturn|]\n", 1}, {0}}};
static const mapped_spec exaone4 = {"", NULL, "[|assistant|]", {
    {"system", "[|system|]", "[|endofturn|]\n", 1}, {"user", "[|user|]", "\n", 1},
    {"assistant", "[|assistant|]", "[|endofturn|]\n", 1},
    {"tool", "[|tool|]", "[|endofturn|]\n", 1}, {0}}};
static const mapped_spec exaone_moe = {"", NULL, "<|assistant|>\n", {
    {"system", "<|system|>\n", "<|endofturn|>\n", 1}, {"user", "<|user|>\n", "<|endofturn|>\n", 1},
    {"assistant", "<|assistant|>\n", "<|endofturn|>\n", 1},
    {"tool", "<|tool|>\n", "<|endofturn|>\n", 1}, {0}}};
static const mapped_spec yandex = {"", NULL,
    " \xd0\x90\xd1\x81\xd1\x81\xd0\xb8\xd1\x81\xd1\x82\xd0\xb5\xd0\xbd\xd1\x82:[SEP]", {
    {"user", " \xd0\x9f\xd0\xbe\xd0\xbb\xd1\x8c\xd0\xb7\xd0\xbe\xd0\xb2\xd0\xb0\xd1\x82\xd0\xb5"
             "\xd0\xbb\xd1\x8c: ", "\n\n", 0},
    {"assistant", " \xd0\x90\xd1\x81\xd1\x81\xd0\xb8\xd1\x81\xd1\x82\xd0\xb5\xd0\xbd\xd1\x82: ",
     "\n\n", 0}, {0}}};
static const mapped_spec smolvlm = {"<|im_start|>", NULL, "Assistant:", {{"system", "", "\n\n", 0},
    {"user", "User: ", "<end_of_utterance>\n", 0}, {NULL, "Assistant: ", "<end_of_utterance>\n", 0},
    {0}}};
static const mapped_spec dots1 = {"", NULL, "<|response|>", {
    {"system", "<|system|>", "<|endofsystem|>", 0},
    {"user", "<|userprompt|>", "<|endofuserprompt|>", 0},
    {NULL, "<|response|>", "<|endofresponse|>", 0}, {0}}};
static const mapped_spec hunyuan_moe = {"", NULL, "", {
    {"system", "<|startoftext|>", "<|extra_4|>", 0}, {"assistant", "", "<|eos|>", 0},
    {NULL, "<|startoftext|>", "<|extra_0|>", 0}, {0}}};
static const mapped_spec kimi_k2 = {"", NULL, "<|im_assistant|>assistant<|im_middle|>", {
    {"system", "<|im_system|>system<|im_middle|>", "<|im_end|>", 0},
    {"user", "<|im_user|>user<|im_middle|>", "<|im_end|>", 0},
    {"assistant", "<|im_assistant|>assistant<|im_middle|>", "<|im_end|>", 0},
    {"tool", "<|im_system|>tool<|im_middle|>", "<|im_end|>", 0}, {NULL, "", "<|im_end|>", 0}, {0}}};
static const mapped_spec grok2 = {"", NULL, "Assistant:", {
    {"system", "System: ", "<|separator|>\n\n", 1}, {"user", "Human: ", "<|separator|>\n\n", 1},
    {"assistant", "Assistant: ", "<|separator|>\n\n", 0}, {0}}};
static const mapped_spec pangu = {"", PANGU("\xe7\xb3\xbb\xe7\xbb\x9f") "[unused10]",
    PANGU("\xe5\x8a\xa9\xe6\x89\x8b"), {
    {"system", PANGU("\xe7\xb3\xbb\xe7\xbb\x9f"), "[unused10]", 0},
    {"user", PANGU("\xe7\x94\xa8\xe6\x88\xb7"), "[unused10]", 0},
    {"assistant", PANGU("\xe5\x8a\xa9\xe6\x89\x8b"), "[unused10]", 0},
    {"tool", PANGU("\xe5\xb7\xa5\xe5\x85\xb7"), "[unused10]", 0},
    {"function", PANGU("\xe6\x96\xb9\xe6\xb3\x95"), "[unused10]", 0}, {0}}};

static const llama2_spec llama2 = {0, 0, 0}, llama2_sys = {1, 0, 0}, llama2_bos = {1, 1, 0},
                         llama2_strip = {1, 0, 1};
static const mistral_spec mistral_v1 = {" ", " ", 0}, mistral_v3 = {"", " ", 1},
                          mistral_v3t = {"", "", 0};
static const granite_spec granite3 = {0}, granite4 = {1};
static const bool hunyuan_vl = true; // spec of hunyuan-vl; hunyuan-dense has none
static const bailing_spec bailing = {"", "", "<role>ASSISTANT</role>"},
                          bailing_think = {"", "", "<role>ASSISTANT</role><think>"},
                          bailing2 = {"<role>SYSTEM</role>detailed thinking off<|role_end|>",
                                      "<|role_end|>", "<role>ASSISTANT</role>"};

typedef struct {
    const char *name;
    render_fn fn;
    const void *spec;
    bool detect_only; /* llama.cpp detects it but has no name for it */
} tmpl_entry;

#define TAG(s) render_tagged, &(s)
#define MAP(s) render_mapped, &(s)
static const tmpl_entry g_tmpl[T_COUNT] = {
    [T_CHATML] = {"chatml", TAG(chatml), 0},
    [T_LLAMA2] = {"llama2", render_llama2, &llama2, 0},
    [T_LLAMA2_SYS] = {"llama2-sys", render_llama2, &llama2_sys, 0},
    [T_LLAMA2_SYS_BOS] = {"llama2-sys-bos", render_llama2, &llama2_bos, 0},
    [T_LLAMA2_SYS_STRIP] = {"llama2-sys-strip", render_llama2, &llama2_strip, 0},
    [T_MISTRAL_V1] = {"mistral-v1", render_mistral, &mistral_v1, 0},
    [T_MISTRAL_V3] = {"mistral-v3", render_mistral, &mistral_v3, 0},
    [T_MISTRAL_V3_TEKKEN] = {"mistral-v3-tekken", render_mistral, &mistral_v3t, 0},
    [T_MISTRAL_V7] = {"mistral-v7", MAP(mistral_v7), 0},
    [T_MISTRAL_V7_TEKKEN] = {"mistral-v7-tekken", MAP(mistral_v7t), 0},
    [T_PHI3] = {"phi3", TAG(phi3), 0},
    [T_PHI4] = {"phi4", TAG(phi4), 0},
    [T_FALCON3] = {"falcon3", TAG(falcon3), 0},
    [T_ZEPHYR] = {"zephyr", TAG(zephyr), 0},
    [T_MONARCH] = {"monarch", render_monarch, NULL, 0},
    [T_GEMMA] = {"gemma", render_gemma, NULL, 0},
    [T_ORION] = {"orion", render_orion, NULL, 0},
    [T_OPENCHAT] = {"openchat", render_openchat, NULL, 0},
    [T_VICUNA] = {"vicuna", MAP(vicuna), 0},
    [T_VICUNA_ORCA] = {"vicuna-orca", MAP(vicuna_orca), 0},
    [T_DEEPSEEK] = {"deepseek", MAP(deepseek), 0},
    [T_DEEPSEEK2] = {"deepseek2", MAP(deepseek2), 0},
    [T_DEEPSEEK3] = {"deepseek3", MAP(deepseek3), 0},
    [T_DEEPSEEK_OCR] = {"deepseek-ocr", MAP(deepseek_ocr), 0},
    [T_COMMAND_R] = {"command-r", MAP(command_r), 0},
    [T_LLAMA3] = {"llama3", TAG(llama3), 0},
    [T_CHATGLM3] = {"chatglm3", TAG(chatglm3), 0},
    [T_CHATGLM4] = {"chatglm4", TAG(chatglm4), 0},
    [T_GLMEDGE] = {"glmedge", TAG(glmedge), 0},
    [T_MINICPM] = {"minicpm", MAP(minicpm), 0},
    [T_EXAONE3] = {"exaone3", MAP(exaone3), 0},
    [T_EXAONE4] = {"exaone4", MAP(exaone4), 0},
    [T_EXAONE_MOE] = {"exaone-moe", MAP(exaone_moe), 0},
    [T_RWKV_WORLD] = {"rwkv-world", render_rwkv, NULL, 0},
    [T_GRANITE] = {"granite", render_granite, &granite3, 0},
    [T_GRANITE_40] = {"granite-4.0", render_granite, &granite4, 0},
    [T_GRANITE_41] = {"granite-4.1", render_granite, &granite4, 0},
    [T_GIGACHAT] = {"gigachat", render_gigachat, NULL, 0},
    [T_MEGREZ] = {"megrez", TAG(megrez), 0},
    [T_YANDEX] = {"yandex", MAP(yandex), 0},
    [T_BAILING] = {"bailing", render_bailing, &bailing, 0},
    [T_BAILING_THINK] = {"bailing-think", render_bailing, &bailing_think, 0},
    [T_BAILING2] = {"bailing2", render_bailing, &bailing2, 0},
    [T_LLAMA4] = {"llama4", TAG(llama4), 0},
    [T_SMOLVLM] = {"smolvlm", MAP(smolvlm), 0},
    [T_HUNYUAN_MOE] = {"hunyuan-moe", MAP(hunyuan_moe), 0},
    [T_GPT_OSS] = {"gpt-oss", render_gpt_oss, NULL, 0},
    [T_HUNYUAN_DENSE] = {"hunyuan-dense", render_hunyuan, NULL, 0},
    [T_HUNYUAN_VL] = {"hunyuan-vl", render_hunyuan, &hunyuan_vl, 0},
    [T_KIMI_K2] = {"kimi-k2", MAP(kimi_k2), 0},
    [T_SEED_OSS] = {"seed_oss", TAG(seed_oss), 0},
    [T_GROK2] = {"grok-2", MAP(grok2), 0},
    [T_PANGU_EMBED] = {"pangu-embedded", MAP(pangu), 0},
    [T_SOLAR_OPEN] = {"solar-open", TAG(solar_open), 0},
    [T_DOTS1] = {"dots1", MAP(dots1), 1},
};

int srv_chat_from_name(const char *name)
{
    for (int id = 0; name && id < T_COUNT; id++)
        if (!g_tmpl[id].detect_only && !strcmp(g_tmpl[id].name, name))
            return id;
    return -1;
}

const char *srv_chat_name(int id) { return id >= 0 && id < T_COUNT ? g_tmpl[id].name : NULL; }

const char *srv_chat_names(void)
{
    return "chatml, llama2, llama2-sys, llama2-sys-bos, llama2-sys-strip, mistral-v1, "
           "mistral-v3, mistral-v3-tekken, mistral-v7, mistral-v7-tekken, phi3, phi4, falcon3, "
           "zephyr, monarch, gemma, orion, openchat, vicuna, vicuna-orca, deepseek, deepseek2, "
           "deepseek3, deepseek-ocr, command-r, llama3, chatglm3, chatglm4, glmedge, minicpm, "
           "exaone3, exaone4, exaone-moe, rwkv-world, granite, granite-4.0, granite-4.1, "
           "gigachat, megrez, yandex, bailing, bailing-think, bailing2, llama4, smolvlm, "
           "hunyuan-moe, gpt-oss, hunyuan-dense, hunyuan-vl, kimi-k2, seed_oss, grok-2, "
           "pangu-embedded, solar-open";
}

long srv_chat_apply(int id, const srv_chat_msg *msgs, size_t n, bool add_ass, char *buf,
                    size_t cap)
{
    out o = {buf, buf ? cap : 0, 0};
    if (id < 0 || id >= T_COUNT || (n > 0 && !msgs))
        return -1;
    g_tmpl[id].fn(&o, g_tmpl[id].spec, msgs, n, add_ass);
    if (o.cap)
        o.buf[o.len < o.cap ? o.len : o.cap - 1] = 0;
    return (long)o.len;
}
