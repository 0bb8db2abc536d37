/*
 * server/chat.h: chat templates, rendered in C the way llama.cpp v0.5.0's
 * llama_chat_apply_template does for its built-in table (src/llama-chat.cpp):
 * a template is recognised by name (--chat-template NAME, llama.cpp's names)
 * or detected from the GGUF's tokenizer.chat_template text by the same
 * substring tests, and renders byte-equal to llama.cpp for the same messages
 * (tests/data/chat-templates.txt holds llama.cpp's output, with its commit).
 * No Jinja: a template outside the table is "unknown", and the server says so.
 * Pure: no engine, no I/O.
 */
#ifndef TS_SERVER_CHAT_H
#define TS_SERVER_CHAT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *role;    /* "system" "user" "assistant" (others as llama.cpp treats them) */
    const char *content;
} srv_chat_msg;

/* Template ids are small non-negative ints; -1 = unknown. */
int srv_chat_from_name(const char *name);      /* llama.cpp's names: "chatml", "llama2", ... */
int srv_chat_detect(const char *tmpl, size_t len); /* from a Jinja template's text */
/* srv_chat_detect, as llama.cpp does: an exact name wins, then the substring tests; the
 * text ends at len or at a NUL. A template llama.cpp only detects (dots.llm1) has an id
 * and a name, but srv_chat_from_name does not take it. */
const char *srv_chat_name(int id);             /* NULL if out of range */
/* Every known name, for --help and error messages: "chatml, llama2, ..." */
const char *srv_chat_names(void);

/* Renders msgs under template id, with the assistant prefix when add_ass.
 * snprintf-style: writes at most cap bytes (NUL-terminated when cap > 0) and
 * returns the length the whole text needs, or -1 when the template cannot
 * render these messages (llama.cpp returns -1 alike, e.g. a role it refuses). */
long srv_chat_apply(int id, const srv_chat_msg *msgs, size_t n, bool add_ass, char *buf,
                    size_t cap);

#endif
