/*
 * tests/server_corpus.c: the request corpus of tests/server_corpus.h. Bad bodies cover the
 * raw bytes (empty, truncated, trailing garbage, NUL, invalid UTF-8, \u0000, nesting beyond
 * cJSON's 1000 levels), the top level (not an object) and every field of every endpoint
 * (wrong type, out of range, non-integer, beyond int or float range, over a limit). Good
 * bodies cover what must be let through: unknown fields, null for defaults, aliases, stop
 * as a string and a list, content parts, token-array prompts, a BOM, duplicate keys.
 * Decisions recorded here: duplicate keys keep the first (cJSON's lookup, as nlohmann::json
 * in llama-server keeps one); a leading UTF-8 BOM is skipped; trailing whitespace is fine but
 * anything else after the object is a 400; an integral float (5.0) is an integer.
 * Long bodies are built from literals by the X* macros, not written out.
 */
#include "server_corpus.h"

#define X10(s) s s s s s s s s s s
#define X100(s) X10(X10(s))
#define X1000(s) X10(X100(s))

#define CMPL "/v1/completions"
#define CHAT "/v1/chat/completions"
#define TOKZ "/tokenize"
#define DETK "/detokenize"

/* strlen-measured bodies, and bodies with a NUL inside (measured by sizeof). */
#define BC(n, b) {n, CMPL, 0, b, 0, 400}
#define BCL(n, b) {n, CMPL, 0, b, sizeof(b) - 1, 400}
#define BH(n, b) {n, CHAT, 1, b, 0, 400}
#define BT(n, b) {n, TOKZ, 2, b, 0, 400}
#define BD(n, b) {n, DETK, 3, b, 0, 400}
/* a completion body with one more field after the prompt */
#define BF(n, f) BC(n, "{\"prompt\":\"hi\"," f "}")
#define CHAT1 "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

const srv_bad_case SRV_BAD_CASES[] = {
    /* the raw bytes and the top level */
    BCL("empty body", ""),
    BC("whitespace only", " \r\n\t "),
    BC("null", "null"),
    BC("bare number", "42"),
    BC("bare string", "\"hello\""),
    BC("bare array", "[{\"prompt\":\"hi\"}]"),
    BC("bare true", "true"),
    BC("truncated after {", "{"),
    BC("truncated after key", "{\"prompt\""),
    BC("truncated after colon", "{\"prompt\":"),
    BC("truncated in string", "{\"prompt\":\"abc"),
    BC("truncated after value", "{\"prompt\":\"abc\""),
    BC("truncated after comma", "{\"prompt\":\"abc\","),
    BC("truncated in array", "{\"prompt\":[1,2"),
    BC("truncated in number", "{\"prompt\":\"a\",\"max_tokens\":1"),
    BC("truncated escape", "{\"prompt\":\"a\\u00"),
    BC("trailing garbage", "{\"prompt\":\"a\"} x"),
    BC("two objects", "{\"prompt\":\"a\"}{}"),
    BC("trailing comma", "{\"prompt\":\"a\",}"),
    BC("unquoted key", "{prompt:\"a\"}"),
    BC("single quotes", "{'prompt':'a'}"),
    BC("NaN literal", "{\"prompt\":\"a\",\"temperature\":NaN}"),
    BC("Infinity literal", "{\"prompt\":\"a\",\"temperature\":Infinity}"),
    BC("hex number", "{\"prompt\":\"a\",\"max_tokens\":0x10}"),
    BC("invalid escape", "{\"prompt\":\"a\\qb\"}"),
    BCL("NUL byte in a string", "{\"prompt\":\"a\0b\"}"),
    BCL("NUL byte after the object", "{\"prompt\":\"a\"}\0"),
    BC("invalid UTF-8 ff fe", "{\"prompt\":\"\xff\xfe\"}"),
    BC("overlong encoding c0 af", "{\"prompt\":\"\xc0\xaf\"}"),
    BC("overlong encoding e0 80 af", "{\"prompt\":\"\xe0\x80\xaf\"}"),
    BC("encoded surrogate ed a0 80", "{\"prompt\":\"\xed\xa0\x80\"}"),
    BC("truncated sequence e2 82", "{\"prompt\":\"\xe2\x82\"}"),
    BC("beyond U+10FFFF", "{\"prompt\":\"\xf4\x90\x80\x80\"}"),
    BC("lone continuation byte", "{\"prompt\":\"a\x80\"}"),
    BC("invalid UTF-8 in an unknown key", "{\"prompt\":\"a\",\"\xff\":1}"),
    BC("lone high surrogate escape", "{\"prompt\":\"\\ud800\"}"),
    BC("lone low surrogate escape", "{\"prompt\":\"\\udc00x\"}"),
    BC("reversed surrogate pair", "{\"prompt\":\"\\ude00\\ud83d\"}"),
    BC("\\u0000 escape", "{\"prompt\":\"a\\u0000b\"}"),
    BC("5000 nested arrays", X1000("[[[[[")),
    BC("2000 nested arrays in prompt", "{\"prompt\":" X1000("[[") "1" X1000("]]") "}"),
    BC("1100 nested objects", X100(X10("{\"a\":") "{\"a\":") "1" X100(X10("}") "}")),
    /* completion: prompt */
    BC("prompt missing", "{}"),
    BC("prompt null", "{\"prompt\":null}"),
    BC("prompt number", "{\"prompt\":42}"),
    BC("prompt object", "{\"prompt\":{\"text\":\"hi\"}}"),
    BC("prompt bool", "{\"prompt\":true}"),
    BC("prompt empty array", "{\"prompt\":[]}"),
    BC("prompt two strings", "{\"prompt\":[\"a\",\"b\"]}"),
    BC("prompt id then string", "{\"prompt\":[1,\"a\"]}"),
    BC("prompt string then id", "{\"prompt\":[\"a\",1]}"),
    BC("prompt negative id", "{\"prompt\":[1,-1]}"),
    BC("prompt float id", "{\"prompt\":[1.5]}"),
    BC("prompt id 3e10", "{\"prompt\":[3e10]}"),
    BC("prompt nested array", "{\"prompt\":[[1,2]]}"),
    BC("prompt null id", "{\"prompt\":[null]}"),
    /* shared sampling fields */
    BF("max_tokens string", "\"max_tokens\":\"5\""),
    BF("max_tokens 3.5", "\"max_tokens\":3.5"),
    BF("max_tokens -5", "\"max_tokens\":-5"),
    BF("max_tokens 1e30", "\"max_tokens\":1e30"),
    BF("max_tokens 99999999999999999999", "\"max_tokens\":99999999999999999999"),
    BF("max_tokens 2^31", "\"max_tokens\":2147483648"),
    BF("n_predict string", "\"n_predict\":\"x\""),
    BF("max_completion_tokens bool", "\"max_completion_tokens\":true"),
    BF("bad alias beside a good one", "\"n_predict\":5,\"max_tokens\":-2"),
    BF("temperature hot", "\"temperature\":\"hot\""),
    BF("temperature -1", "\"temperature\":-1"),
    BF("temperature 1e999", "\"temperature\":1e999"),
    BF("temperature beyond float", "\"temperature\":1e300"),
    BF("temperature array", "\"temperature\":[1]"),
    BF("top_p 2", "\"top_p\":2"),
    BF("top_p -0.1", "\"top_p\":-0.1"),
    BF("top_k -1", "\"top_k\":-1"),
    BF("top_k 2.5", "\"top_k\":2.5"),
    BF("top_k 1e10", "\"top_k\":1e10"),
    BF("top_k string", "\"top_k\":\"40\""),
    BF("min_p -0.5", "\"min_p\":-0.5"),
    BF("min_p 1.5", "\"min_p\":1.5"),
    BF("repeat_penalty 0", "\"repeat_penalty\":0"),
    BF("repeat_penalty -1", "\"repeat_penalty\":-1"),
    BF("repeat_last_n -1", "\"repeat_last_n\":-1"),
    BF("repeat_last_n 0.5", "\"repeat_last_n\":0.5"),
    BF("seed x", "\"seed\":\"x\""),
    BF("seed 1.5", "\"seed\":1.5"),
    BF("seed -2", "\"seed\":-2"),
    BF("seed 1e300", "\"seed\":1e300"),
    BF("stop number", "\"stop\":5"),
    BF("stop object", "\"stop\":{\"a\":1}"),
    BF("stop array with a number", "\"stop\":[\"a\",1]"),
    BF("stop array with null", "\"stop\":[\"a\",null]"),
    BF("stop nested array", "\"stop\":[[\"a\"]]"),
    BF("17 stop strings", "\"stop\":[" X10("\"s\",") "\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\"]"),
    BF("300-byte stop string", "\"stop\":\"" X100("abc") "\""),
    BF("257-byte stop string in a list", "\"stop\":[\"a\",\"" X100("ab") X10("abcde") "abcdefg\"]"),
    BF("stream yes", "\"stream\":\"yes\""),
    BF("stream 1", "\"stream\":1"),
    BF("stream_options string", "\"stream_options\":\"x\""),
    BF("stream_options array", "\"stream_options\":[true]"),
    BF("include_usage string", "\"stream_options\":{\"include_usage\":\"yes\"}"),
    BF("model number", "\"model\":5"),
    BF("model array", "\"model\":[\"m\"]"),
    /* chat */
    BH("messages missing", "{\"model\":\"m\"}"),
    BH("messages null", "{\"messages\":null}"),
    BH("messages string", "{\"messages\":\"hi\"}"),
    BH("messages object", "{\"messages\":{\"role\":\"user\",\"content\":\"hi\"}}"),
    BH("messages empty", "{\"messages\":[]}"),
    BH("message not an object", "{\"messages\":[\"hi\"]}"),
    BH("message without role", "{\"messages\":[{\"content\":\"hi\"}]}"),
    BH("role number", "{\"messages\":[{\"role\":1,\"content\":\"hi\"}]}"),
    BH("role null", "{\"messages\":[{\"role\":null,\"content\":\"hi\"}]}"),
    BH("content missing", "{\"messages\":[{\"role\":\"user\"}]}"),
    BH("content number", "{\"messages\":[{\"role\":\"user\",\"content\":5}]}"),
    BH("content object", "{\"messages\":[{\"role\":\"user\",\"content\":{\"text\":\"hi\"}}]}"),
    BH("content bool", "{\"messages\":[{\"role\":\"user\",\"content\":false}]}"),
    BH("content part without text",
       "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}"),
    BH("content part text number",
       "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":1}]}]}"),
    BH("content part without type", "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}]}"),
    BH("content part image",
       "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
       "{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]}"),
    BH("content part string", "{\"messages\":[{\"role\":\"user\",\"content\":[\"hi\"]}]}"),
    BH("second message bad",
       "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":2}]}"),
    BH("1025 messages", "{\"messages\":[" X1000("1,") X10("1,") X10("1,") "1,1,1,1,1]}"),
    BH("chat temperature hot", "{" CHAT1 ",\"temperature\":\"hot\"}"),
    BH("chat max_tokens -5", "{" CHAT1 ",\"max_tokens\":-5}"),
    BH("chat stop 17", "{" CHAT1 ",\"stop\":[" X10("\"s\",") "\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\"]}"),
    BH("chat bare array", "[{\"role\":\"user\",\"content\":\"hi\"}]"),
    /* tokenize and detokenize */
    BT("tokenize content missing", "{\"add_special\":true}"),
    BT("tokenize content number", "{\"content\":5}"),
    BT("tokenize content array", "{\"content\":[\"a\"]}"),
    BT("tokenize add_special string", "{\"content\":\"a\",\"add_special\":\"yes\"}"),
    BT("tokenize with_pieces number", "{\"content\":\"a\",\"with_pieces\":1}"),
    BT("tokenize bare string", "\"hello\""),
    BD("detokenize tokens missing", "{}"),
    BD("detokenize tokens string", "{\"tokens\":\"1 2\"}"),
    BD("detokenize tokens with a string", "{\"tokens\":[1,\"2\"]}"),
    BD("detokenize tokens negative", "{\"tokens\":[1,-1]}"),
    BD("detokenize tokens 3e10", "{\"tokens\":[3e10]}"),
    BD("detokenize tokens float", "{\"tokens\":[1.5]}"),
    BD("detokenize tokens null", "{\"tokens\":[null]}"),
    BD("detokenize tokens object", "{\"tokens\":{\"0\":1}}"),
};
const size_t SRV_N_BAD_CASES = sizeof(SRV_BAD_CASES) / sizeof(SRV_BAD_CASES[0]);

#define GC(n, b, e) {n, CMPL, 0, b, 0, e}
#define GH(n, b, e) {n, CHAT, 1, b, 0, e}
#define GT(n, b, e) {n, TOKZ, 2, b, 0, e}
#define GD(n, b, e) {n, DETK, 3, b, 0, e}

const srv_good_case SRV_GOOD_CASES[] = {
    GC("unknown fields ignored", "{\"prompt\":\"Hello\",\"n_probs\":5,\"x\":{\"y\":[1,{}]}}",
       "kind=0;prompt=Hello;prompt_len=5;ids=-;n_msgs=0"),
    GC("null optional fields",
       "{\"prompt\":\"x\",\"max_tokens\":null,\"temperature\":null,\"top_k\":null,\"stop\":null,"
       "\"seed\":null,\"stream\":null,\"stream_options\":null,\"model\":null}",
       "max_tokens=-1;temp=0.8;top_k=40;n_stop=0;seed=-;stream=0;model=-"),
    GC("every sampling field",
       "{\"prompt\":\"x\",\"max_tokens\":16,\"temperature\":0,\"top_k\":0,\"top_p\":1,"
       "\"min_p\":0,\"repeat_penalty\":1.5,\"repeat_last_n\":32,\"seed\":42,\"stream\":true,"
       "\"stream_options\":{\"include_usage\":true},\"model\":\"m1\"}",
       "max_tokens=16;temp=0;top_k=0;top_p=1;min_p=0;repeat_penalty=1.5;repeat_last_n=32;"
       "seed=42;stream=1;include_usage=1;model=m1"),
    GC("stop as a string", "{\"prompt\":\"x\",\"stop\":\"\\n\\n\"}", "n_stop=1;stop0=\\x0a\\x0a"),
    GC("stop list, empty string dropped", "{\"prompt\":\"x\",\"stop\":[\"a\",\"\",\"END\"]}",
       "n_stop=2;stop0=a;stop1=END"),
    GC("stop empty string", "{\"prompt\":\"x\",\"stop\":\"\"}", "n_stop=0"),
    GC("16 stop strings, 256 bytes each at most",
       "{\"prompt\":\"x\",\"stop\":[" X10("\"s\",") "\"1\",\"2\",\"3\",\"4\",\"5\",\""
       X100("ab") X10("abcde") "abcdef\"]}",
       "n_stop=16;stop0=s;stop10=1"),
    GC("prompt token array", "{\"prompt\":[1,2,3]}", "prompt=-;ids=1,2,3;n_ids=3"),
    GC("prompt ids at the int32 edges", "{\"prompt\":[0,2147483647]}", "ids=0,2147483647"),
    GC("prompt integral floats", "{\"prompt\":[5.0,1e2]}", "ids=5,100"),
    GC("prompt one string in an array", "{\"prompt\":[\"one string\"]}",
       "prompt=one string;ids=-"),
    GC("prompt empty string", "{\"prompt\":\"\"}", "prompt=;prompt_len=0;ids=-"),
    GC("n_predict wins over max_tokens", "{\"prompt\":\"x\",\"n_predict\":7,\"max_tokens\":9}",
       "max_tokens=7"),
    GC("max_completion_tokens 0", "{\"prompt\":\"x\",\"max_completion_tokens\":0}", "max_tokens=0"),
    GC("max_tokens -1", "{\"prompt\":\"x\",\"max_tokens\":-1}", "max_tokens=-1"),
    GC("seed -1 is random", "{\"prompt\":\"x\",\"seed\":-1}", "seed=-"),
    GC("seed 0 and 2^53", "{\"prompt\":\"x\",\"seed\":9007199254740992}", "seed=9007199254740992"),
    GC("repeat_last_n 0 turns the penalty off",
       "{\"prompt\":\"x\",\"repeat_penalty\":1.3,\"repeat_last_n\":0}",
       "repeat_penalty=1;repeat_last_n=64"),
    GC("temperature as an integer", "{\"prompt\":\"x\",\"temperature\":1}", "temp=1"),
    GC("duplicate keys keep the first", "{\"prompt\":\"first\",\"prompt\":\"second\"}",
       "prompt=first"),
    GC("UTF-8 BOM", "\xef\xbb\xbf{\"prompt\":\"bom\"}", "prompt=bom"),
    GC("whitespace around", " \r\n\t{ \"prompt\" : \"ws\" }\r\n ", "prompt=ws"),
    GC("unicode escapes", "{\"prompt\":\"caf\\u00e9 \\ud83d\\ude00\"}",
       "prompt=caf\\xc3\\xa9 \\xf0\\x9f\\x98\\x80;prompt_len=10"),
    GC("raw UTF-8", "{\"prompt\":\"\xe4\xbd\xa0\xe5\xa5\xbd\"}",
       "prompt=\\xe4\\xbd\\xa0\\xe5\\xa5\\xbd;prompt_len=6"),
    GC("escapes in stop", "{\"prompt\":\"x\",\"stop\":\"\\\"\\\\\\/\\t;\"}",
       "stop0=\"\\x5c/\\x09\\x3b"),
    GC("500 nested arrays in an unknown field",
       "{\"prompt\":\"deep\",\"x\":" X100("[[[[[") X100("]]]]]") "}", "prompt=deep"),
    GH("chat system and user",
       "{\"model\":\"gpt\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
       "{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":8,\"stream\":true}",
       "kind=1;n_msgs=2;msg0.role=system;msg0.content=Be brief.;msg1.role=user;"
       "msg1.content=Hi;max_tokens=8;stream=1;model=gpt;prompt=-"),
    GH("chat content null", "{\"messages\":[{\"role\":\"assistant\",\"content\":null}]}",
       "n_msgs=1;msg0.role=assistant;msg0.content="),
    GH("chat content parts joined",
       "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
       "{\"type\":\"text\",\"text\":\"b\",\"extra\":1}]}]}",
       "msg0.content=a\\x0ab"),
    GH("chat empty first part",
       "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"\"},"
       "{\"type\":\"text\",\"text\":\"b\"}]}]}",
       "msg0.content=b"),
    GH("chat empty parts array", "{\"messages\":[{\"role\":\"user\",\"content\":[]}]}",
       "msg0.content="),
    GH("chat custom role and sampling",
       "{\"messages\":[{\"role\":\"tool\",\"content\":\"42\",\"name\":\"calc\"}],"
       "\"temperature\":0.2,\"top_p\":0.5,\"stop\":[\"</s>\"],\"stream\":false}",
       "msg0.role=tool;msg0.content=42;temp=0.2;top_p=0.5;n_stop=1;stop0=</s>;stream=0"),
    GT("tokenize with flags", "{\"content\":\"hi there\",\"add_special\":true,\"with_pieces\":true}",
       "kind=2;prompt=hi there;prompt_len=8;add_special=1;with_pieces=1"),
    GT("tokenize defaults", "{\"content\":\"\"}", "prompt=;add_special=0;with_pieces=0"),
    GD("detokenize empty", "{\"tokens\":[]}", "kind=3;n_ids=0"),
    GD("detokenize ids", "{\"tokens\":[0,15043,2147483647]}", "ids=0,15043,2147483647;n_ids=3"),
};
const size_t SRV_N_GOOD_CASES = sizeof(SRV_GOOD_CASES) / sizeof(SRV_GOOD_CASES[0]);
