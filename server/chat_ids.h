/*
 * server/chat_ids.h: the built-in template ids shared by server/chat.c (the
 * renderers, the name table) and server/chat_detect.c (detection from a
 * template's text), internal to server/.
 */
#ifndef TS_SERVER_CHAT_IDS_H
#define TS_SERVER_CHAT_IDS_H

enum {
    T_CHATML, T_LLAMA2, T_LLAMA2_SYS, T_LLAMA2_SYS_BOS, T_LLAMA2_SYS_STRIP, T_MISTRAL_V1,
    T_MISTRAL_V3, T_MISTRAL_V3_TEKKEN, T_MISTRAL_V7, T_MISTRAL_V7_TEKKEN, T_PHI3, T_PHI4,
    T_FALCON3, T_ZEPHYR, T_MONARCH, T_GEMMA, T_ORION, T_OPENCHAT, T_VICUNA, T_VICUNA_ORCA,
    T_DEEPSEEK, T_DEEPSEEK2, T_DEEPSEEK3, T_DEEPSEEK_OCR, T_COMMAND_R, T_LLAMA3, T_CHATGLM3,
    T_CHATGLM4, T_GLMEDGE, T_MINICPM, T_EXAONE3, T_EXAONE4, T_EXAONE_MOE, T_RWKV_WORLD,
    T_GRANITE, T_GRANITE_40, T_GRANITE_41, T_GIGACHAT, T_MEGREZ, T_YANDEX, T_BAILING,
    T_BAILING_THINK, T_BAILING2, T_LLAMA4, T_SMOLVLM, T_HUNYUAN_MOE, T_GPT_OSS,
    T_HUNYUAN_DENSE, T_HUNYUAN_VL, T_KIMI_K2, T_SEED_OSS, T_GROK2, T_PANGU_EMBED,
    T_SOLAR_OPEN, T_DOTS1, T_COUNT
};

/* Markers with full-width bars and U+2581 that renderers and detection share
 * (Hunyuan, DeepSeek). */
#define HY_SYS_END                                                                        \
    "<\xef\xbd\x9chy_place\xe2\x96\x81holder\xe2\x96\x81no\xe2\x96\x81" "3\xef\xbd\x9c>"
#define HY_ASSISTANT "<\xef\xbd\x9chy_Assistant\xef\xbd\x9c>"
#define HY_USER "<\xef\xbd\x9chy_User\xef\xbd\x9c>"
#define DS_EOS "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"

/* openPangu's role markers: "[unused9]" role, then a full-width colon. */
#define PANGU(x) "[unused9]" x "\xef\xbc\x9a"

#endif
