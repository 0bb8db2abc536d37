/*
 * core/gguf.c: GGUF v2/v3 reader over an mmap'd file.
 *
 * Owns: parsing and validating the header, the metadata key/values, the
 * tensor table, alignment and the data section. Does not own: what the keys
 * mean (model.c, tokenizer.c) or writing (gguf_write.c).
 *
 * Invariant: nothing read from the file is used, and nothing sized by the
 * file is allocated, before it has been checked against the bytes that
 * remain. All arithmetic on file values is overflow-checked. After
 * ts_gguf_open succeeds every view handed out points inside the mapping.
 * Errors are one line naming the field and the value.
 */
#include "gguf.h"
#include "err.h"
#include "../quant/quant.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Limits on what a sane file holds; larger values are refused by name. */
#define MAX_KEY_BYTES 65535u     /* GGUF spec: keys are at most 65535 bytes */
#define MAX_NAME_BYTES 256u      /* tensor names (ggml uses 64) */
#define MAX_STR_BYTES (1u << 30) /* any single string value */
#define MAX_DIMS 4u

struct ts_gguf {
    const uint8_t *map;
    uint64_t size;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_off; /* start of the data section */
    uint64_t n_kv, n_tensors;
    ts_gguf_kv *kv;
    ts_gguf_tensor *tensors;
    /* The kvs by key and the tensors by name, in str_cmp order: duplicates
     * are adjacent (found in O(n log n)) and lookups are binary searches, so
     * opening a file is never quadratic in its counts (100k keys: ~10 ms). */
    const ts_gguf_kv **kv_by_key;
    const ts_gguf_tensor **t_by_name;
};

typedef struct {
    const uint8_t *base;
    uint64_t size, off;
    ts_err *err;
} cursor;

static const uint32_t type_size[TS_GGUF_NTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
static const char *const type_name[TS_GGUF_NTYPES] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};

static const char *gtype_name(uint32_t t) { return t < TS_GGUF_NTYPES ? type_name[t] : "?"; }

/* Prints a file-controlled string safely: printable ASCII only, truncated. */
static const char *safe(ts_str s, char *buf, size_t cap)
{
    size_t n = 0;
    for (uint64_t i = 0; i < s.len && n + 4 < cap; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        buf[n++] = (c >= 32 && c < 127) ? (char)c : '?';
    }
    if (s.len > n && n + 4 <= cap) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = 0;
    return buf;
}

static uint64_t remaining(const cursor *c) { return c->size - c->off; }

static ts_status need(cursor *c, uint64_t n, const char *what)
{
    if (n > remaining(c))
        return ts_err_set(c->err, TS_E_FORMAT,
                          "%s: needs %llu bytes at offset %llu, past end of file (%llu)", what,
                          (unsigned long long)n, (unsigned long long)c->off,
                          (unsigned long long)c->size);
    return TS_OK;
}

static ts_status rd(cursor *c, void *dst, uint64_t n, const char *what)
{
    ts_status st = need(c, n, what);
    if (st != TS_OK)
        return st;
    memcpy(dst, c->base + c->off, n);
    c->off += n;
    return TS_OK;
}

static ts_status rd_str(cursor *c, ts_str *out, uint64_t max, const char *what)
{
    uint64_t len;
    ts_status st = rd(c, &len, 8, what);
    if (st != TS_OK)
        return st;
    if (len > max)
        return ts_err_set(c->err, TS_E_FORMAT, "%s: length %llu exceeds the limit %llu", what,
                          (unsigned long long)len, (unsigned long long)max);
    st = need(c, len, what);
    if (st != TS_OK)
        return st;
    out->ptr = (const char *)c->base + c->off;
    out->len = len;
    c->off += len;
    return TS_OK;
}

static bool mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

/* Parses one value of type t (arrays included) at the cursor into kv. */
static ts_status parse_value(cursor *c, ts_gguf_kv *kv, const char *key)
{
    char what[160];
    ts_status st;
    kv->raw = c->base + c->off;
    if (kv->type == TS_GGUF_STR) {
        snprintf(what, sizeof(what), "kv '%s': string value", key);
        st = rd_str(c, &kv->str, MAX_STR_BYTES, what);
        if (st == TS_OK)
            kv->val = (const uint8_t *)kv->str.ptr;
    } else if (kv->type == TS_GGUF_ARR) {
        uint32_t et;
        uint64_t n;
        snprintf(what, sizeof(what), "kv '%s': array header", key);
        if ((st = rd(c, &et, 4, what)) != TS_OK || (st = rd(c, &n, 8, what)) != TS_OK)
            return st;
        if (et >= TS_GGUF_NTYPES || et == TS_GGUF_ARR)
            return ts_err_set(c->err, TS_E_FORMAT, "kv '%s': invalid array element type %u", key,
                              et);
        kv->arr_type = (ts_gguf_type)et;
        kv->arr_n = n;
        kv->val = c->base + c->off;
        if (et == TS_GGUF_STR) {
            /* Each element is at least its 8-byte length: bound n first. */
            if (n > remaining(c) / 8)
                return ts_err_set(c->err, TS_E_FORMAT,
                                  "kv '%s': array count %llu exceeds what the file can hold", key,
                                  (unsigned long long)n);
            for (uint64_t i = 0; i < n; i++) {
                ts_str s;
                snprintf(what, sizeof(what), "kv '%s': string %llu of %llu", key,
                         (unsigned long long)i, (unsigned long long)n);
                if ((st = rd_str(c, &s, MAX_STR_BYTES, what)) != TS_OK)
                    return st;
            }
        } else {
            uint64_t bytes;
            if (!mul_ok(n, type_size[et], &bytes) || bytes > remaining(c))
                return ts_err_set(c->err, TS_E_FORMAT,
                                  "kv '%s': array of %llu %s needs more bytes than the file has "
                                  "left (%llu)",
                                  key, (unsigned long long)n, gtype_name(et),
                                  (unsigned long long)remaining(c));
            c->off += bytes;
        }
        st = TS_OK;
    } else {
        snprintf(what, sizeof(what), "kv '%s': %s value", key, gtype_name(kv->type));
        st = need(c, type_size[kv->type], what);
        if (st == TS_OK) {
            kv->val = c->base + c->off;
            if (kv->type == TS_GGUF_BOOL && kv->val[0] > 1)
                return ts_err_set(c->err, TS_E_FORMAT, "kv '%s': bool value %u is not 0 or 1",
                                  key, kv->val[0]);
            c->off += type_size[kv->type];
        }
    }
    kv->raw_bytes = (uint64_t)(c->base + c->off - kv->raw);
    return st;
}

static ts_status parse_kvs(ts_gguf *g, cursor *c)
{
    char kbuf[96];
    for (uint64_t i = 0; i < g->n_kv; i++) {
        ts_gguf_kv *kv = &g->kv[i];
        char what[64];
        uint32_t t;
        snprintf(what, sizeof(what), "kv %llu: key", (unsigned long long)i);
        ts_status st = rd_str(c, &kv->key, MAX_KEY_BYTES, what);
        if (st != TS_OK)
            return st;
        safe(kv->key, kbuf, sizeof(kbuf));
        snprintf(what, sizeof(what), "kv '%.40s': type", kbuf);
        if ((st = rd(c, &t, 4, what)) != TS_OK)
            return st;
        if (t >= TS_GGUF_NTYPES)
            return ts_err_set(c->err, TS_E_FORMAT, "kv '%s': invalid value type %u", kbuf, t);
        kv->type = (ts_gguf_type)t;
        if ((st = parse_value(c, kv, kbuf)) != TS_OK)
            return st;
    }
    return TS_OK;
}

/* A total order on strings: by length, then bytes (cheap: most pairs differ in length). */
static int str_cmp(ts_str a, const char *b, uint64_t b_len)
{
    if (a.len != b_len)
        return a.len < b_len ? -1 : 1;
    return a.len ? memcmp(a.ptr, b, a.len) : 0;
}

static int cmp_kv_key(const void *x, const void *y)
{
    const ts_gguf_kv *a = *(const ts_gguf_kv *const *)x, *b = *(const ts_gguf_kv *const *)y;
    return str_cmp(a->key, b->key.ptr, b->key.len);
}

static int cmp_tensor_name(const void *x, const void *y)
{
    const ts_gguf_tensor *a = *(const ts_gguf_tensor *const *)x;
    const ts_gguf_tensor *b = *(const ts_gguf_tensor *const *)y;
    return str_cmp(a->name, b->name.ptr, b->name.len);
}

/* Sorts the kvs by key and refuses a key that appears twice. */
static ts_status index_kvs(ts_gguf *g, ts_err *err)
{
    char kbuf[96];
    g->kv_by_key = malloc((g->n_kv ? g->n_kv : 1) * sizeof(*g->kv_by_key));
    if (!g->kv_by_key)
        return ts_err_set(err, TS_E_NOMEM, "out of memory indexing %llu keys",
                          (unsigned long long)g->n_kv);
    for (uint64_t i = 0; i < g->n_kv; i++)
        g->kv_by_key[i] = &g->kv[i];
    qsort(g->kv_by_key, g->n_kv, sizeof(*g->kv_by_key), cmp_kv_key);
    for (uint64_t i = 1; i < g->n_kv; i++)
        if (cmp_kv_key(&g->kv_by_key[i - 1], &g->kv_by_key[i]) == 0)
            return ts_err_set(err, TS_E_FORMAT, "kv '%s': duplicate key",
                              safe(g->kv_by_key[i]->key, kbuf, sizeof(kbuf)));
    return TS_OK;
}

/* Sorts the tensors by name and refuses a name that appears twice. */
static ts_status index_tensors(ts_gguf *g, ts_err *err)
{
    char nbuf[96];
    g->t_by_name = malloc((g->n_tensors ? g->n_tensors : 1) * sizeof(*g->t_by_name));
    if (!g->t_by_name)
        return ts_err_set(err, TS_E_NOMEM, "out of memory indexing %llu tensors",
                          (unsigned long long)g->n_tensors);
    for (uint64_t i = 0; i < g->n_tensors; i++)
        g->t_by_name[i] = &g->tensors[i];
    qsort(g->t_by_name, g->n_tensors, sizeof(*g->t_by_name), cmp_tensor_name);
    for (uint64_t i = 1; i < g->n_tensors; i++)
        if (cmp_tensor_name(&g->t_by_name[i - 1], &g->t_by_name[i]) == 0)
            return ts_err_set(err, TS_E_FORMAT, "tensor '%s': duplicate name",
                              safe(g->t_by_name[i]->name, nbuf, sizeof(nbuf)));
    return TS_OK;
}

static ts_status parse_tensor_info(ts_gguf *g, cursor *c, uint64_t i)
{
    ts_gguf_tensor *t = &g->tensors[i];
    char what[96], nbuf[96];
    snprintf(what, sizeof(what), "tensor %llu: name", (unsigned long long)i);
    ts_status st = rd_str(c, &t->name, MAX_NAME_BYTES, what);
    if (st != TS_OK)
        return st;
    safe(t->name, nbuf, sizeof(nbuf));
    snprintf(what, sizeof(what), "tensor '%.60s': header", nbuf);
    if ((st = rd(c, &t->n_dims, 4, what)) != TS_OK)
        return st;
    if (t->n_dims == 0 || t->n_dims > MAX_DIMS)
        return ts_err_set(c->err, TS_E_FORMAT, "tensor '%s': n_dims = %u, want 1..%u", nbuf,
                          t->n_dims, MAX_DIMS);
    uint64_t n_el = 1;
    for (uint32_t d = 0; d < MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= t->n_dims)
            continue;
        if ((st = rd(c, &t->ne[d], 8, what)) != TS_OK)
            return st;
        if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX)
            return ts_err_set(c->err, TS_E_FORMAT, "tensor '%s': dim %u = %llu is out of range",
                              nbuf, d, (unsigned long long)t->ne[d]);
        if (!mul_ok(n_el, t->ne[d], &n_el) || n_el > (uint64_t)INT64_MAX)
            return ts_err_set(c->err, TS_E_FORMAT,
                              "tensor '%s': element count overflows at dim %u (= %llu)", nbuf, d,
                              (unsigned long long)t->ne[d]);
    }
    if ((st = rd(c, &t->type, 4, what)) != TS_OK || (st = rd(c, &t->offset, 8, what)) != TS_OK)
        return st;
    const ts_qtraits *tr = ts_qtype_traits(t->type);
    if (!tr)
        return ts_err_set(c->err, TS_E_FORMAT, "tensor '%s': unknown tensor type %u", nbuf,
                          t->type);
    if (t->ne[0] % tr->blck)
        return ts_err_set(c->err, TS_E_FORMAT,
                          "tensor '%s': row length %llu is not a multiple of %s's block (%u)",
                          nbuf, (unsigned long long)t->ne[0], tr->name, tr->blck);
    uint64_t rows = n_el / t->ne[0], row_bytes = t->ne[0] / tr->blck * tr->size;
    if (!mul_ok(rows, row_bytes, &t->n_bytes))
        return ts_err_set(c->err, TS_E_FORMAT, "tensor '%s': byte size overflows", nbuf);
    return TS_OK;
}

static ts_status read_alignment(ts_gguf *g, ts_err *err)
{
    const ts_gguf_kv *kv = ts_gguf_kv_find(g, "general.alignment");
    g->alignment = 32;
    if (!kv)
        return TS_OK;
    if (kv->type != TS_GGUF_U32)
        return ts_err_set(err, TS_E_FORMAT, "general.alignment has type %s, want u32",
                          gtype_name(kv->type));
    uint32_t a;
    memcpy(&a, kv->val, 4);
    if (a == 0 || (a & (a - 1)))
        return ts_err_set(err, TS_E_FORMAT, "general.alignment = %u is not a power of two", a);
    g->alignment = a;
    return TS_OK;
}

static int cmp_offset(const void *a, const void *b)
{
    const ts_gguf_tensor *x = *(ts_gguf_tensor *const *)a, *y = *(ts_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Checks every tensor's data lies in the file, aligned, and that no two overlap. */
static ts_status place_tensors(ts_gguf *g, ts_err *err)
{
    char nbuf[96];
    if (g->n_tensors == 0)
        return TS_OK;
    if (g->data_off > g->size)
        return ts_err_set(err, TS_E_FORMAT, "data section starts at %llu, past end of file (%llu)",
                          (unsigned long long)g->data_off, (unsigned long long)g->size);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        ts_gguf_tensor *t = &g->tensors[i];
        uint64_t start, end;
        safe(t->name, nbuf, sizeof(nbuf));
        if (t->offset % g->alignment)
            return ts_err_set(err, TS_E_FORMAT,
                              "tensor '%s': offset %llu is not a multiple of the alignment %llu",
                              nbuf, (unsigned long long)t->offset,
                              (unsigned long long)g->alignment);
        if (__builtin_add_overflow(g->data_off, t->offset, &start) ||
            __builtin_add_overflow(start, t->n_bytes, &end) || end > g->size)
            return ts_err_set(err, TS_E_FORMAT, "tensor '%s': data ends at %llu, past end of file "
                              "(%llu)", nbuf,
                              (unsigned long long)(start + t->n_bytes),
                              (unsigned long long)g->size);
        t->data = g->map + start;
    }
    ts_gguf_tensor **order = malloc(g->n_tensors * sizeof(*order));
    if (!order)
        return ts_err_set(err, TS_E_NOMEM, "out of memory sorting %llu tensors",
                          (unsigned long long)g->n_tensors);
    for (uint64_t i = 0; i < g->n_tensors; i++)
        order[i] = &g->tensors[i];
    qsort(order, g->n_tensors, sizeof(*order), cmp_offset);
    ts_status st = TS_OK;
    for (uint64_t i = 1; i < g->n_tensors && st == TS_OK; i++) {
        const ts_gguf_tensor *a = order[i - 1], *b = order[i];
        if (a->offset + a->n_bytes > b->offset) {
            char nb2[96];
            st = ts_err_set(err, TS_E_FORMAT, "tensor '%s': data at %llu overlaps tensor '%s'",
                            safe(b->name, nbuf, sizeof(nbuf)), (unsigned long long)b->offset,
                            safe(a->name, nb2, sizeof(nb2)));
        }
    }
    free(order);
    return st;
}

static ts_status parse(ts_gguf *g, ts_err *err)
{
    cursor c = {g->map, g->size, 0, err};
    char magic[4];
    ts_status st = rd(&c, magic, 4, "magic");
    if (st != TS_OK)
        return ts_err_set(err, TS_E_FORMAT, "not a GGUF file: %llu bytes, too short for a header",
                          (unsigned long long)g->size);
    if (memcmp(magic, "GGUF", 4))
        return ts_err_set(err, TS_E_FORMAT, "not a GGUF file (magic %02x %02x %02x %02x)",
                          (unsigned char)magic[0], (unsigned char)magic[1],
                          (unsigned char)magic[2], (unsigned char)magic[3]);
    if ((st = rd(&c, &g->version, 4, "version")) != TS_OK)
        return st;
    if (g->version == 1)
        return ts_err_set(err, TS_E_UNSUPPORTED,
                          "GGUF version 1 is not supported (only versions 2 and 3)");
    if (g->version != 2 && g->version != 3)
        return ts_err_set(err, TS_E_FORMAT, "GGUF version %u is not supported (only 2 and 3)",
                          g->version);
    if ((st = rd(&c, &g->n_tensors, 8, "n_tensors")) != TS_OK ||
        (st = rd(&c, &g->n_kv, 8, "n_kv")) != TS_OK)
        return st;
    /* A kv takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info
     * at least 8 + 4 + 8 + 4 + 8. Bound both before allocating. */
    if (g->n_kv > remaining(&c) / 13)
        return ts_err_set(err, TS_E_FORMAT, "n_kv = %llu exceeds what the file can hold",
                          (unsigned long long)g->n_kv);
    if (g->n_tensors > remaining(&c) / 32)
        return ts_err_set(err, TS_E_FORMAT, "n_tensors = %llu exceeds what the file can hold",
                          (unsigned long long)g->n_tensors);
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof(*g->kv));
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof(*g->tensors));
    if (!g->kv || !g->tensors)
        return ts_err_set(err, TS_E_NOMEM, "out of memory for the GGUF tables");
    if ((st = parse_kvs(g, &c)) != TS_OK || (st = index_kvs(g, err)) != TS_OK)
        return st;
    if ((st = read_alignment(g, err)) != TS_OK)
        return st;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if ((st = parse_tensor_info(g, &c, i)) != TS_OK)
            return st;
    if ((st = index_tensors(g, err)) != TS_OK)
        return st;
    uint64_t pad = (g->alignment - c.off % g->alignment) % g->alignment;
    g->data_off = c.off + pad;
    return place_tensors(g, err);
}

ts_status ts_gguf_open(ts_gguf **out, const char *path, ts_err *err)
{
    *out = NULL;
    /* O_NONBLOCK: opening a FIFO (or a device that waits for a peer) must not
     * block; anything but a regular file is refused right after. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return ts_err_set(err, TS_E_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ts_err_set(err, TS_E_IO, "%s: not a regular file", path);
    }
    if (st.st_size < 4) {
        close(fd);
        return ts_err_set(err, TS_E_FORMAT, "%s: not a GGUF file (%lld bytes)", path,
                          (long long)st.st_size);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return ts_err_set(err, TS_E_IO, "%s: mmap: %s", path, strerror(errno));
    ts_gguf *g = calloc(1, sizeof(*g));
    if (!g) {
        munmap(map, (size_t)st.st_size);
        return ts_err_set(err, TS_E_NOMEM, "out of memory");
    }
    g->map = map;
    g->size = (uint64_t)st.st_size;
    ts_err local;
    ts_status s = parse(g, &local);
    if (s != TS_OK) {
        ts_gguf_close(g);
        return ts_err_set(err, s, "%s: %s", path, local.msg);
    }
    *out = g;
    return TS_OK;
}

void ts_gguf_close(ts_gguf *g)
{
    if (!g)
        return;
    if (g->map)
        munmap((void *)g->map, g->size);
    free(g->kv_by_key);
    free(g->t_by_name);
    free(g->kv);
    free(g->tensors);
    free(g);
}

uint32_t ts_gguf_version(const ts_gguf *g) { return g->version; }
uint64_t ts_gguf_file_bytes(const ts_gguf *g) { return g->size; }
uint64_t ts_gguf_alignment(const ts_gguf *g) { return g->alignment; }
uint64_t ts_gguf_n_kv(const ts_gguf *g) { return g->n_kv; }
uint64_t ts_gguf_n_tensors(const ts_gguf *g) { return g->n_tensors; }

const ts_gguf_kv *ts_gguf_kv_at(const ts_gguf *g, uint64_t i)
{
    return i < g->n_kv ? &g->kv[i] : NULL;
}

const ts_gguf_tensor *ts_gguf_tensor_at(const ts_gguf *g, uint64_t i)
{
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

bool ts_str_eq(ts_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && !memcmp(s.ptr, c, n);
}

char *ts_str_copy(ts_str s, char *buf, size_t cap)
{
    if (!cap)
        return buf;
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    memcpy(buf, s.ptr, n);
    buf[n] = 0;
    return buf;
}

/* Binary search of a str_cmp-sorted array of n entries whose string is at
 * byte offset str_off inside each pointed-to struct. */
static const void *bsearch_str(const void *const *sorted, uint64_t n, size_t str_off,
                               const char *want)
{
    const uint64_t want_len = strlen(want);
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        const uint64_t mid = lo + (hi - lo) / 2;
        ts_str s;
        memcpy(&s, (const char *)sorted[mid] + str_off, sizeof(s));
        const int c = str_cmp(s, want, want_len);
        if (c == 0)
            return sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const ts_gguf_kv *ts_gguf_kv_find(const ts_gguf *g, const char *key)
{
    return bsearch_str((const void *const *)g->kv_by_key, g->n_kv, offsetof(ts_gguf_kv, key),
                       key);
}

const ts_gguf_tensor *ts_gguf_tensor_find(const ts_gguf *g, const char *name)
{
    return bsearch_str((const void *const *)g->t_by_name, g->n_tensors,
                       offsetof(ts_gguf_tensor, name), name);
}

/* ---- typed getters ---- */

static bool scalar_int(ts_gguf_type t, const uint8_t *v, int64_t *si, uint64_t *ui, bool *neg)
{
    *neg = false;
    switch (t) {
    case TS_GGUF_U8: *ui = v[0]; break;
    case TS_GGUF_U16: { uint16_t x; memcpy(&x, v, 2); *ui = x; break; }
    case TS_GGUF_U32: { uint32_t x; memcpy(&x, v, 4); *ui = x; break; }
    case TS_GGUF_U64: memcpy(ui, v, 8); break;
    case TS_GGUF_I8: *si = (int8_t)v[0]; goto sgn;
    case TS_GGUF_I16: { int16_t x; memcpy(&x, v, 2); *si = x; goto sgn; }
    case TS_GGUF_I32: { int32_t x; memcpy(&x, v, 4); *si = x; goto sgn; }
    case TS_GGUF_I64: memcpy(si, v, 8); goto sgn;
    default: return false;
    }
    *si = *ui > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)*ui;
    return true;
sgn:
    *neg = *si < 0;
    *ui = *neg ? 0 : (uint64_t)*si;
    return true;
}

static ts_status get_int(const ts_gguf *g, const char *key, int64_t *si, uint64_t *ui, bool *neg,
                         bool *found, ts_err *err)
{
    const ts_gguf_kv *kv = ts_gguf_kv_find(g, key);
    if (found)
        *found = kv != NULL;
    if (!kv)
        return TS_E_STATE; /* internal: "absent", mapped to TS_OK by callers */
    if (!scalar_int(kv->type, kv->val, si, ui, neg))
        return ts_err_set(err, TS_E_FORMAT, "%s has type %s, want an integer", key,
                          gtype_name(kv->type));
    return TS_OK;
}

ts_status ts_gguf_get_u64(const ts_gguf *g, const char *key, uint64_t *out, bool *found,
                          ts_err *err)
{
    int64_t si;
    uint64_t ui;
    bool neg;
    ts_status st = get_int(g, key, &si, &ui, &neg, found, err);
    if (st == TS_E_STATE)
        return TS_OK;
    if (st != TS_OK)
        return st;
    if (neg)
        return ts_err_set(err, TS_E_FORMAT, "%s = %lld is negative", key, (long long)si);
    *out = ui;
    return TS_OK;
}

ts_status ts_gguf_get_u32(const ts_gguf *g, const char *key, uint32_t *out, bool *found,
                          ts_err *err)
{
    uint64_t v = *out;
    ts_status st = ts_gguf_get_u64(g, key, &v, found, err);
    if (st != TS_OK)
        return st;
    if (v > UINT32_MAX)
        return ts_err_set(err, TS_E_FORMAT, "%s = %llu is out of range", key,
                          (unsigned long long)v);
    *out = (uint32_t)v;
    return TS_OK;
}

ts_status ts_gguf_get_i64(const ts_gguf *g, const char *key, int64_t *out, bool *found,
                          ts_err *err)
{
    int64_t si;
    uint64_t ui;
    bool neg;
    ts_status st = get_int(g, key, &si, &ui, &neg, found, err);
    if (st == TS_E_STATE)
        return TS_OK;
    if (st != TS_OK)
        return st;
    if (!neg && ui > (uint64_t)INT64_MAX)
        return ts_err_set(err, TS_E_FORMAT, "%s = %llu is out of range", key,
                          (unsigned long long)ui);
    *out = si;
    return TS_OK;
}

ts_status ts_gguf_get_f32(const ts_gguf *g, const char *key, float *out, bool *found,
                          ts_err *err)
{
    const ts_gguf_kv *kv = ts_gguf_kv_find(g, key);
    if (found)
        *found = kv != NULL;
    if (!kv)
        return TS_OK;
    if (kv->type == TS_GGUF_F32) {
        memcpy(out, kv->val, 4);
    } else if (kv->type == TS_GGUF_F64) {
        double d;
        memcpy(&d, kv->val, 8);
        *out = (float)d;
    } else {
        int64_t si;
        uint64_t ui;
        bool neg;
        if (!scalar_int(kv->type, kv->val, &si, &ui, &neg))
            return ts_err_set(err, TS_E_FORMAT, "%s has type %s, want a number", key,
                              gtype_name(kv->type));
        *out = neg ? (float)si : (float)ui;
    }
    return TS_OK;
}

/* Finds key and checks its type: *kv = NULL (and TS_OK) when absent. */
static ts_status find_typed(const ts_gguf *g, const char *key, ts_gguf_type want,
                            const ts_gguf_kv **kv, bool *found, ts_err *err)
{
    *kv = ts_gguf_kv_find(g, key);
    if (found)
        *found = *kv != NULL;
    if (*kv && (*kv)->type != want)
        return ts_err_set(err, TS_E_FORMAT, "%s has type %s, want %s", key,
                          gtype_name((*kv)->type), want == TS_GGUF_BOOL ? "bool" : "string");
    return TS_OK;
}

ts_status ts_gguf_get_bool(const ts_gguf *g, const char *key, bool *out, bool *found,
                           ts_err *err)
{
    const ts_gguf_kv *kv;
    ts_status st = find_typed(g, key, TS_GGUF_BOOL, &kv, found, err);
    if (st == TS_OK && kv)
        *out = kv->val[0] != 0;
    return st;
}

ts_status ts_gguf_get_str(const ts_gguf *g, const char *key, ts_str *out, bool *found,
                          ts_err *err)
{
    const ts_gguf_kv *kv;
    ts_status st = find_typed(g, key, TS_GGUF_STR, &kv, found, err);
    if (st == TS_OK && kv)
        *out = kv->str;
    return st;
}

ts_status ts_gguf_get_arr(const ts_gguf *g, const char *key, ts_gguf_type elem,
                          const ts_gguf_kv **out, ts_err *err)
{
    const ts_gguf_kv *kv = ts_gguf_kv_find(g, key);
    *out = NULL;
    if (!kv)
        return TS_OK;
    if (kv->type != TS_GGUF_ARR || kv->arr_type != elem)
        return ts_err_set(err, TS_E_FORMAT, "%s has type %s%s%s, want array of %s", key,
                          gtype_name(kv->type), kv->type == TS_GGUF_ARR ? " of " : "",
                          kv->type == TS_GGUF_ARR ? gtype_name(kv->arr_type) : "",
                          gtype_name(elem));
    *out = kv;
    return TS_OK;
}

void ts_gguf_arr_strs(const ts_gguf_kv *kv, ts_str *out)
{
    const uint8_t *p = kv->val;
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        uint64_t len;
        memcpy(&len, p, 8);
        out[i].ptr = (const char *)p + 8;
        out[i].len = len;
        p += 8 + len;
    }
}

double ts_gguf_arr_f64(const ts_gguf_kv *kv, uint64_t i)
{
    const uint8_t *v = kv->val + i * type_size[kv->arr_type];
    if (kv->arr_type == TS_GGUF_F32) {
        float f;
        memcpy(&f, v, 4);
        return f;
    }
    if (kv->arr_type == TS_GGUF_F64) {
        double d;
        memcpy(&d, v, 8);
        return d;
    }
    return (double)ts_gguf_arr_i64(kv, i);
}

int64_t ts_gguf_arr_i64(const ts_gguf_kv *kv, uint64_t i)
{
    const uint8_t *v = kv->val + i * type_size[kv->arr_type];
    int64_t si = 0;
    uint64_t ui = 0;
    bool neg;
    if (kv->arr_type == TS_GGUF_F32 || kv->arr_type == TS_GGUF_F64) {
        double d = ts_gguf_arr_f64(kv, i);
        /* Clamp before converting: a file may hold NaN or huge values. */
        if (!(d > -9.2e18 && d < 9.2e18))
            return d > 0 ? INT64_MAX : INT64_MIN;
        return (int64_t)d;
    }
    if (kv->arr_type == TS_GGUF_BOOL)
        return v[0];
    if (!scalar_int(kv->arr_type, v, &si, &ui, &neg))
        return 0;
    return si;
}
