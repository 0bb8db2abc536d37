/*
 * tests/fuzz/fuzz_gguf.c: libFuzzer harness for what a model file reaches: the GGUF reader
 * (core/gguf.c), the vocabulary (core/tokenizer.c), the model loader (core/model.c) through
 * ts_engine_create and, when the model loads and is small, a session prefilling two tokens.
 *
 * An input is a whole file. It goes to a memfd opened by its /proc/self/fd path, so the loaders
 * run unchanged (open, fstat, mmap) without touching the disk. A failed check aborts, which
 * libFuzzer records as a finding: after ts_gguf_open succeeds every accessor is safe and each kv
 * and tensor is found by its own name; a vocabulary that loads tokenizes any text with ids in
 * range; an engine that loads creates a session and prefills with TS_OK (STYLE §1: the hot path
 * does not fail once load and plan time said yes).
 * Work per input is bounded: the file is at most -max_len bytes, and a model over the caps
 * below is refused before a session is made, so a legitimately large shape costs no time while
 * a slow input under the caps is a finding (make fuzz runs with -timeout).
 */
#include "gguf.h"
#include "tessera.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Caps on a model that runs a forward step (elements, and any one dimension). The seeds
 * (tessera gen --shape micro) have 8-20k parameters and dims of at most 32. */
#define CAP_PARAMS (1u << 20)
#define CAP_DIM 4096
#define CAP_LAYERS 16
/* Positions in the session: the two prefilled tokens and some room. */
#define SESSION_CTX 8

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int g_fd = -1;
static char g_path[64];

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_gguf: %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);    \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g_fd = memfd_create("fuzz_gguf", MFD_CLOEXEC);
    if (g_fd < 0) {
        perror("fuzz_gguf: memfd_create");
        abort();
    }
    snprintf(g_path, sizeof(g_path), "/proc/self/fd/%d", g_fd);
    return 0;
}

/* Reading a byte of every view is what makes the "every accessor is safe" promise checkable:
 * a view past the mapping faults here rather than in some later consumer. */
static uint8_t touch(const void *p, uint64_t n)
{
    const volatile uint8_t *b = p;
    return n ? (uint8_t)(b[0] ^ b[n - 1]) : 0;
}

static void check_kv(const ts_gguf *g, const ts_gguf_kv *kv, uint8_t *sink)
{
    char key[256];
    ts_err err = {0};
    *sink ^= touch(kv->key.ptr, kv->key.len) ^ touch(kv->raw, kv->raw_bytes);
    /* Keys are unique after open; one with a NUL inside (or longer than key) cannot be
     * looked up by a C string, so the by-name checks skip it. */
    if (kv->key.len >= sizeof(key) || memchr(kv->key.ptr, 0, kv->key.len))
        return;
    ts_str_copy(kv->key, key, sizeof(key));
    CHECK(ts_gguf_kv_find(g, key) == kv, "kv '%s' not found by its name", key);
    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    float f32;
    bool b, found = false;
    ts_str s;
    const ts_gguf_kv *arr = NULL;
    (void)ts_gguf_get_u32(g, key, &u32, NULL, &err);
    (void)ts_gguf_get_u64(g, key, &u64, NULL, &err);
    (void)ts_gguf_get_i64(g, key, &i64, NULL, &err);
    (void)ts_gguf_get_f32(g, key, &f32, NULL, &err);
    (void)ts_gguf_get_bool(g, key, &b, NULL, &err);
    ts_status st = ts_gguf_get_str(g, key, &s, &found, &err);
    CHECK(found, "kv '%s' found by kv_find, not by get_str", key);
    CHECK((st == TS_OK) == (kv->type == TS_GGUF_STR), "get_str on a %d kv: status %d", kv->type,
          st);
    if (st == TS_OK)
        *sink ^= touch(s.ptr, s.len);
    if (kv->type != TS_GGUF_ARR)
        return;
    if (kv->arr_type == TS_GGUF_STR) {
        /* arr_n <= file bytes / 8 (each string has a u64 length), so this is bounded. */
        ts_str *strs = malloc((kv->arr_n ? kv->arr_n : 1) * sizeof(*strs));
        CHECK(strs, "out of memory for %llu strings", (unsigned long long)kv->arr_n);
        ts_gguf_arr_strs(kv, strs);
        for (uint64_t i = 0; i < kv->arr_n; i++)
            *sink ^= touch(strs[i].ptr, strs[i].len);
        free(strs);
    } else if (kv->arr_type != TS_GGUF_ARR && kv->arr_n) {
        st = ts_gguf_get_arr(g, key, kv->arr_type, &arr, &err);
        CHECK(st == TS_OK && arr == kv, "get_arr of its own element type: status %d", st);
        double d = ts_gguf_arr_f64(kv, 0) + ts_gguf_arr_f64(kv, kv->arr_n - 1);
        int64_t x = ts_gguf_arr_i64(kv, 0) ^ ts_gguf_arr_i64(kv, kv->arr_n - 1);
        *sink ^= (uint8_t)(d == d) ^ (uint8_t)x;
    }
}

static void check_gguf(const ts_gguf *g)
{
    uint8_t sink = 0;
    CHECK(ts_gguf_file_bytes(g) > 0, "empty file opened");
    for (uint64_t i = 0; i < ts_gguf_n_kv(g); i++)
        check_kv(g, ts_gguf_kv_at(g, i), &sink);
    char name[256];
    for (uint64_t i = 0; i < ts_gguf_n_tensors(g); i++) {
        const ts_gguf_tensor *t = ts_gguf_tensor_at(g, i);
        CHECK(t->n_dims >= 1 && t->n_dims <= 4, "tensor %llu: %u dims", (unsigned long long)i,
              t->n_dims);
        CHECK(t->n_bytes <= ts_gguf_file_bytes(g), "tensor %llu: %llu bytes in a %llu-byte file",
              (unsigned long long)i, (unsigned long long)t->n_bytes,
              (unsigned long long)ts_gguf_file_bytes(g));
        sink ^= touch(t->name.ptr, t->name.len) ^ touch(t->data, t->n_bytes);
        ts_str_copy(t->name, name, sizeof(name));
        if (t->name.len < sizeof(name) && !memchr(t->name.ptr, 0, t->name.len))
            CHECK(ts_gguf_tensor_find(g, name) == t, "tensor '%s' not found by its name", name);
    }
    (void)sink;
}

static void check_vocab(const ts_gguf *g)
{
    ts_vocab *v = NULL;
    ts_err err = {0};
    if (ts_vocab_load(&v, g, &err) != TS_OK)
        return;
    static const char text[] = "Hello world, 123 <s>\n\xe4\xbd\xa0\xff";
    int32_t ids[64];
    size_t n = 0;
    ts_status st = ts_vocab_tokenize(v, text, sizeof(text) - 1, true, true, ids, 64, &n, &err);
    CHECK(st == TS_OK, "tokenize on a loaded vocab: %s", err.msg);
    char piece[64];
    for (size_t i = 0; i < n && i < 64; i++) {
        CHECK(ids[i] >= 0 && ids[i] < ts_vocab_n(v), "id %d of %d", ids[i], ts_vocab_n(v));
        (void)ts_vocab_piece(v, ids[i], piece, sizeof(piece));
    }
    ts_vocab_destroy(v);
}

static bool within_caps(const ts_engine_info *in)
{
    const int64_t dims[] = {in->n_vocab,   in->n_embd, in->n_head,
                            in->n_head_kv, in->n_ff,   in->n_expert};
    for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++)
        if (dims[i] > CAP_DIM)
            return false;
    return in->n_params <= CAP_PARAMS && in->n_layer <= CAP_LAYERS;
}

static void check_engine(void)
{
    ts_engine_opts eo = {.model_path = g_path, .n_threads = 1, .numa = TS_NUMA_NONE};
    ts_engine *eng = NULL;
    ts_err err = {0};
    if (ts_engine_create(&eng, &eo, &err) != TS_OK)
        return;
    ts_engine_info info;
    ts_engine_get_info(eng, &info);
    ts_session *s = NULL;
    ts_session_opts so = {.n_ctx = SESSION_CTX};
    if (within_caps(&info) && ts_session_create(&s, eng, &so, &err) == TS_OK) {
        int32_t bos = ts_engine_bos(eng);
        int32_t toks[2] = {bos >= 0 ? bos : 0, (int32_t)(info.n_vocab - 1)};
        ts_status st = ts_session_prefill(s, toks, 2, NULL, &err);
        CHECK(st == TS_OK, "prefill on a loaded model: %s", err.msg);
        CHECK(ts_session_logits(s) && ts_session_pos(s) == 2, "no logits after prefill");
    }
    ts_session_destroy(s);
    ts_engine_destroy(eng);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ftruncate(g_fd, 0) != 0 || pwrite(g_fd, data, size, 0) != (ssize_t)size) {
        perror("fuzz_gguf: memfd write");
        abort();
    }
    ts_gguf *g = NULL;
    ts_err err = {0};
    if (ts_gguf_open(&g, g_path, &err) != TS_OK)
        return 0;
    CHECK(ts_gguf_file_bytes(g) == size, "file bytes %llu, input %zu",
          (unsigned long long)ts_gguf_file_bytes(g), size);
    check_gguf(g);
    check_vocab(g);
    ts_gguf_close(g);
    check_engine();
    return 0;
}
