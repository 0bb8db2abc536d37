/*
 * server/chat_detect.c: which built-in template a GGUF's
 * tokenizer.chat_template text is, by llama.cpp v0.5.0's substring tests in
 * its order (llm_chat_detect_template, src/llama-chat.cpp), an exact
 * template name winning first. Split from server/chat.c, which renders them.
 * Pure: no allocation, no I/O.
 */
#include "chat.h"

#include <stdbool.h>
#include <string.h>

#include "chat_ids.h"

/* ---- detection from a template's text ---- */

typedef struct {
    const char *s;
    size_t n;
} text;

static bool has(text t, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k <= t.n && i <= t.n - k; i++)
        if (!memcmp(t.s + i, needle, k))
            return true;
    return false;
}

#define HAS2(a, b) (has(t, a) && has(t, b))
#define HAS3(a, b, c) (has(t, a) && has(t, b) && has(t, c))

static int detect_mistral_llama2(text t)
{
    if (has(t, "[SYSTEM_PROMPT]"))
        return T_MISTRAL_V7;
    if (has(t, "' [INST] ' + system_message") || has(t, "[AVAILABLE_TOOLS]")) {
        if (has(t, " [INST]"))
            return T_MISTRAL_V1;
        return has(t, "\"[INST]\"") ? T_MISTRAL_V3_TEKKEN : T_MISTRAL_V3;
    }
    if (has(t, "content.strip()"))
        return T_LLAMA2_SYS_STRIP;
    if (has(t, "bos_token + '[INST]"))
        return T_LLAMA2_SYS_BOS;
    return has(t, "<<SYS>>") ? T_LLAMA2_SYS : T_LLAMA2;
}

/* The first half of llama.cpp's chain, up to Llama 3. */
static int detect_early(text t)
{
    if (has(t, "<|im_start|>"))
        return has(t, "<|im_sep|>") ? T_PHI4
               : has(t, "<end_of_utterance>") ? T_SMOLVLM : T_CHATML;
    if ((t.n >= 7 && !memcmp(t.s, "mistral", 7)) || has(t, "[INST]"))
        return detect_mistral_llama2(t);
    if (HAS2("<|assistant|>", "<|end|>"))
        return T_PHI3;
    if (has(t, "[gMASK]<sop>"))
        return T_CHATGLM4;
    if (HAS2("<|assistant|>", "<|user|>"))
        return has(t, "<|tool_declare|>") ? T_EXAONE_MOE
               : has(t, "</s>") ? T_FALCON3 : T_GLMEDGE;
    if (HAS2("<|{{ item['role'] }}|>", "<|begin_of_image|>"))
        return T_GLMEDGE;
    if (HAS2("<|user|>", "<|endoftext|>"))
        return T_ZEPHYR;
    if (has(t, "bos_token + message['role']"))
        return T_MONARCH;
    if (has(t, "<start_of_turn>"))
        return T_GEMMA;
    if (has(t, "'\\n\\nAssistant: ' + eos_token"))
        return T_ORION;
    if (has(t, "GPT4 Correct "))
        return T_OPENCHAT;
    if (HAS2("USER: ", "ASSISTANT: "))
        return has(t, "SYSTEM: ") ? T_VICUNA_ORCA : T_VICUNA;
    if (HAS2("### Instruction:", "<|EOT|>"))
        return T_DEEPSEEK;
    if (HAS2("<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>"))
        return T_COMMAND_R;
    if (HAS2("<|start_header_id|>", "<|end_header_id|>"))
        return T_LLAMA3;
    return -1;
}

static int detect_late(text t)
{
    if (has(t, "[gMASK]sop"))
        return T_CHATGLM3;
    if (has(t, "<\xe7\x94\xa8\xe6\x88\xb7>"))
        return T_MINICPM;
    if (has(t, "'Assistant: ' + message['content'] + eos_token"))
        return T_DEEPSEEK2;
    if (HAS3("<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>", "<\xef\xbd\x9cUser\xef\xbd\x9c>", DS_EOS))
        return T_DEEPSEEK3;
    if (HAS3("[|system|]", "[|assistant|]", "[|endofturn|]"))
        return has(t, "[|tool|]") ? T_EXAONE4 : T_EXAONE3;
    if (has(t, "rwkv-world") || has(t, "{{- 'User: ' + message['content']|trim + '\\n\\n' -}}"))
        return T_RWKV_WORLD;
    if (has(t, "<|start_of_role|>")) {
        if (!has(t, "<tool_call>") && !has(t, "<tools>"))
            return T_GRANITE;
        return has(t, "g4_default_system_message") ? T_GRANITE_40 : T_GRANITE_41;
    }
    if (has(t, "message['role'] + additional_special_tokens[0] + message['content'] + "
               "additional_special_tokens[1]"))
        return T_GIGACHAT;
    if (has(t, "<|role_start|>"))
        return T_MEGREZ;
    if (has(t, " \xd0\x90\xd1\x81\xd1\x81\xd0\xb8\xd1\x81\xd1\x82\xd0\xb5\xd0\xbd\xd1\x82:"))
        return T_YANDEX;
    if (HAS2("<role>ASSISTANT</role>", "'HUMAN'"))
        return T_BAILING;
    if (HAS3("<role>ASSISTANT</role>", "\"HUMAN\"", "<think>"))
        return T_BAILING_THINK;
    if (HAS3("<role>ASSISTANT</role>", "<role>HUMAN</role>", "<|role_end|>"))
        return T_BAILING2;
    if (HAS2("<|header_start|>", "<|header_end|>"))
        return T_LLAMA4;
    if (has(t, "<|endofuserprompt|>"))
        return T_DOTS1;
    if (HAS2("<|extra_0|>", "<|extra_4|>"))
        return T_HUNYUAN_MOE;
    if (HAS2("<|start|>", "<|channel|>"))
        return T_GPT_OSS;
    if (HAS2(HY_ASSISTANT, "<\xef\xbd\x9chy_begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"))
        return T_HUNYUAN_VL;
    if (HAS2(HY_ASSISTANT, HY_SYS_END))
        return T_HUNYUAN_DENSE;
    if (has(t, "<|im_assistant|>assistant<|im_middle|>"))
        return T_KIMI_K2;
    if (has(t, "<seed:bos>"))
        return T_SEED_OSS;
    if (has(t, "'Assistant: '  + message['content'] + '<|separator|>"))
        return T_GROK2;
    if (has(t, PANGU("\xe7\xb3\xbb\xe7\xbb\x9f") "[unused10]"))
        return T_PANGU_EMBED;
    if (HAS3("<|begin|>", "<|end|>", "<|content|>"))
        return T_SOLAR_OPEN;
    return -1;
}

int srv_chat_detect(const char *tmpl, size_t len)
{
    char name[32];
    text t = {tmpl, tmpl ? strnlen(tmpl, len) : 0}; // llama.cpp sees up to the first NUL
    if (tmpl && t.n < sizeof(name)) { // an exact template name wins, as in llama.cpp
        memcpy(name, t.s, t.n);
        name[t.n] = 0;
        int id = srv_chat_from_name(name);
        if (id >= 0)
            return id;
    }
    int id = detect_early(t);
    return id >= 0 ? id : detect_late(t);
}

