/*
 * core/gguf.h: GGUF v2/v3 reader (mmap) and writer.
 *
 * The reader validates the whole file at open: every count, length, type,
 * dimension, offset and size is checked with overflow-safe arithmetic before
 * use, and before any allocation sized by the file. After a successful open,
 * every accessor below is safe without further checks (string views point
 * inside the mapping and carry their lengths; they are NOT NUL-terminated).
 * Errors name the field and the value.
 */
#ifndef TS_GGUF_H
#define TS_GGUF_H

#include "tessera.h"

typedef enum {
    TS_GGUF_U8 = 0, TS_GGUF_I8 = 1, TS_GGUF_U16 = 2, TS_GGUF_I16 = 3,
    TS_GGUF_U32 = 4, TS_GGUF_I32 = 5, TS_GGUF_F32 = 6, TS_GGUF_BOOL = 7,
    TS_GGUF_STR = 8, TS_GGUF_ARR = 9, TS_GGUF_U64 = 10, TS_GGUF_I64 = 11,
    TS_GGUF_F64 = 12, TS_GGUF_NTYPES = 13
} ts_gguf_type;

typedef struct {
    const char *ptr; /* inside the mapping; not NUL-terminated */
    uint64_t len;
} ts_str;

typedef struct {
    ts_str key;
    ts_gguf_type type;
    /* Scalars: val points at the little-endian value. TS_GGUF_STR: str.
     * TS_GGUF_ARR: arr_type, arr_n, and val at the first element; for string
     * arrays use ts_gguf_arr_strs(). */
    const uint8_t *val;
    ts_str str;
    ts_gguf_type arr_type;
    uint64_t arr_n;
    /* The value exactly as encoded in the file (after the type field), for
     * copying a kv verbatim into a writer. */
    const uint8_t *raw;
    uint64_t raw_bytes;
} ts_gguf_kv;

typedef struct {
    ts_str name;
    uint32_t n_dims;   /* 1..4 */
    uint64_t ne[4];    /* elements per dim, ne[0] fastest; unused dims = 1 */
    uint32_t type;     /* ts_qtype id (validated: known to ggml) */
    uint64_t offset;   /* from the start of the data section */
    uint64_t n_bytes;  /* exact size of the tensor's data */
    const void *data;  /* inside the mapping */
} ts_gguf_tensor;

typedef struct ts_gguf ts_gguf;

ts_status ts_gguf_open(ts_gguf **out, const char *path, ts_err *err);
void ts_gguf_close(ts_gguf *g);

uint32_t ts_gguf_version(const ts_gguf *g);
uint64_t ts_gguf_file_bytes(const ts_gguf *g);
uint64_t ts_gguf_alignment(const ts_gguf *g);
uint64_t ts_gguf_n_kv(const ts_gguf *g);
const ts_gguf_kv *ts_gguf_kv_at(const ts_gguf *g, uint64_t i);
const ts_gguf_kv *ts_gguf_kv_find(const ts_gguf *g, const char *key); /* NULL if absent */
uint64_t ts_gguf_n_tensors(const ts_gguf *g);
const ts_gguf_tensor *ts_gguf_tensor_at(const ts_gguf *g, uint64_t i);
const ts_gguf_tensor *ts_gguf_tensor_find(const ts_gguf *g, const char *name);

/* Typed getters. A missing key gives TS_OK with *found = false (found may be
 * NULL when the caller does not care) and leaves *out unchanged; a key of the
 * wrong type or a value out of range gives TS_E_FORMAT with a message naming
 * the key. Integer getters accept any integer type whose value fits. */
ts_status ts_gguf_get_u32(const ts_gguf *g, const char *key, uint32_t *out, bool *found, ts_err *err);
ts_status ts_gguf_get_u64(const ts_gguf *g, const char *key, uint64_t *out, bool *found, ts_err *err);
ts_status ts_gguf_get_i64(const ts_gguf *g, const char *key, int64_t *out, bool *found, ts_err *err);
ts_status ts_gguf_get_f32(const ts_gguf *g, const char *key, float *out, bool *found, ts_err *err); /* f32/f64/int */
ts_status ts_gguf_get_bool(const ts_gguf *g, const char *key, bool *out, bool *found, ts_err *err);
ts_status ts_gguf_get_str(const ts_gguf *g, const char *key, ts_str *out, bool *found, ts_err *err);
/* Array of any element type: returns the kv (NULL if absent) after checking
 * it is an array of elem type (TS_E_FORMAT otherwise). */
ts_status ts_gguf_get_arr(const ts_gguf *g, const char *key, ts_gguf_type elem,
                          const ts_gguf_kv **out, ts_err *err);
/* Fills out[0..kv->arr_n) with views of a string array's elements. */
void ts_gguf_arr_strs(const ts_gguf_kv *kv, ts_str *out);
/* Reads element i of a numeric array as double / int64 (any numeric elem type). */
double ts_gguf_arr_f64(const ts_gguf_kv *kv, uint64_t i);
int64_t ts_gguf_arr_i64(const ts_gguf_kv *kv, uint64_t i);

bool ts_str_eq(ts_str s, const char *c);
/* Copies s into buf (cap bytes, always NUL-terminated, truncated); returns buf. */
char *ts_str_copy(ts_str s, char *buf, size_t cap);

/* ---- writer: builds a GGUF v3 file in memory order, then streams it ---- */
typedef struct ts_gguf_writer ts_gguf_writer;
ts_status ts_gguf_writer_create(ts_gguf_writer **out, ts_err *err);
void ts_gguf_writer_destroy(ts_gguf_writer *w);
/* Metadata setters copy their inputs. */
void ts_gguf_w_u32(ts_gguf_writer *w, const char *key, uint32_t v);
void ts_gguf_w_i32(ts_gguf_writer *w, const char *key, int32_t v);
void ts_gguf_w_f32(ts_gguf_writer *w, const char *key, float v);
void ts_gguf_w_bool(ts_gguf_writer *w, const char *key, bool v);
void ts_gguf_w_str(ts_gguf_writer *w, const char *key, const char *v);
/* Copies a raw kv (any type, arrays included) from a reader. */
void ts_gguf_w_kv(ts_gguf_writer *w, const ts_gguf_kv *kv);
void ts_gguf_w_arr(ts_gguf_writer *w, const char *key, ts_gguf_type elem, const void *data, uint64_t n);
void ts_gguf_w_arr_str(ts_gguf_writer *w, const char *key, const char *const *strs, uint64_t n);
/* Adds a tensor. data must stay valid until ts_gguf_writer_write; n_bytes must
 * equal the size implied by type and dims. */
void ts_gguf_w_tensor(ts_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                      const uint64_t *ne, const void *data, uint64_t n_bytes);
/* Adds a tensor whose bytes are produced at write time by fill (so a large
 * model never has to sit in memory whole); fill writes exactly n_bytes. */
typedef ts_status (*ts_gguf_fill_fn)(void *ctx, void *dst, uint64_t n_bytes, ts_err *err);
void ts_gguf_w_tensor_fn(ts_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                         const uint64_t *ne, ts_gguf_fill_fn fill, void *ctx);
/* Writes the file through a temporary and a rename (core/fileio.h): on any
 * error the target is unchanged. The _checked form also refuses a path that
 * is one of inputs (NULL-terminated; e.g. the file being requantized). */
ts_status ts_gguf_writer_write(ts_gguf_writer *w, const char *path, ts_err *err);
ts_status ts_gguf_writer_write_checked(ts_gguf_writer *w, const char *path,
                                       const char *const *inputs, ts_err *err);

#endif
