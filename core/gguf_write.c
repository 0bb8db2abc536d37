/*
 * core/gguf_write.c: GGUF v3 writer.
 *
 * Owns: serialising metadata and tensor infos in the order they were added,
 * aligning tensor data (general.alignment if the caller set it, else 32) and
 * streaming tensor bytes, either from caller memory or from a fill callback
 * so a multi-GB model never has to be resident. Output is deterministic:
 * the same calls give the same bytes. The bytes go through ts_safefile
 * (core/fileio.h): a failed or interrupted write leaves the target as it was.
 */
#include "gguf.h"
#include "err.h"
#include "fileio.h"
#include "../quant/quant.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name;
    uint32_t type, n_dims;
    uint64_t ne[4];
    const void *data;
    ts_gguf_fill_fn fill;
    void *ctx;
    uint64_t n_bytes, offset;
} wtensor;

struct ts_gguf_writer {
    uint8_t *kv;   /* serialised key/values */
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    wtensor *t;
    uint64_t n_t, cap_t;
    uint32_t alignment;
    bool oom;
};

ts_status ts_gguf_writer_create(ts_gguf_writer **out, ts_err *err)
{
    *out = calloc(1, sizeof(**out));
    if (!*out)
        return ts_err_set(err, TS_E_NOMEM, "out of memory");
    (*out)->alignment = 32;
    return TS_OK;
}

void ts_gguf_writer_destroy(ts_gguf_writer *w)
{
    if (!w)
        return;
    for (uint64_t i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    free(w->t);
    free(w->kv);
    free(w);
}

static void put(ts_gguf_writer *w, const void *p, size_t n)
{
    if (w->oom)
        return;
    if (w->kv_len + n > w->kv_cap) {
        size_t cap = w->kv_cap ? w->kv_cap : 4096;
        while (cap < w->kv_len + n)
            cap *= 2;
        uint8_t *nk = realloc(w->kv, cap);
        if (!nk) {
            w->oom = true;
            return;
        }
        w->kv = nk;
        w->kv_cap = cap;
    }
    memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
}

static void put_str(ts_gguf_writer *w, const char *s, uint64_t len)
{
    put(w, &len, 8);
    put(w, s, len);
}

static void put_key(ts_gguf_writer *w, const char *key, uint32_t type)
{
    put_str(w, key, strlen(key));
    put(w, &type, 4);
    w->n_kv++;
}

void ts_gguf_w_u32(ts_gguf_writer *w, const char *key, uint32_t v)
{
    put_key(w, key, TS_GGUF_U32);
    put(w, &v, 4);
    if (!strcmp(key, "general.alignment") && v && !(v & (v - 1)))
        w->alignment = v;
}

void ts_gguf_w_i32(ts_gguf_writer *w, const char *key, int32_t v)
{
    put_key(w, key, TS_GGUF_I32);
    put(w, &v, 4);
}

void ts_gguf_w_f32(ts_gguf_writer *w, const char *key, float v)
{
    put_key(w, key, TS_GGUF_F32);
    put(w, &v, 4);
}

void ts_gguf_w_bool(ts_gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v;
    put_key(w, key, TS_GGUF_BOOL);
    put(w, &b, 1);
}

void ts_gguf_w_str(ts_gguf_writer *w, const char *key, const char *v)
{
    put_key(w, key, TS_GGUF_STR);
    put_str(w, v, strlen(v));
}

void ts_gguf_w_kv(ts_gguf_writer *w, const ts_gguf_kv *kv)
{
    put_str(w, kv->key.ptr, kv->key.len);
    uint32_t t = kv->type;
    put(w, &t, 4);
    put(w, kv->raw, kv->raw_bytes);
    w->n_kv++;
    if (ts_str_eq(kv->key, "general.alignment") && kv->type == TS_GGUF_U32) {
        uint32_t a;
        memcpy(&a, kv->val, 4);
        if (a && !(a & (a - 1)))
            w->alignment = a;
    }
}

void ts_gguf_w_arr(ts_gguf_writer *w, const char *key, ts_gguf_type elem, const void *data,
                   uint64_t n)
{
    static const uint32_t sz[TS_GGUF_NTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    uint32_t et = elem;
    put_key(w, key, TS_GGUF_ARR);
    put(w, &et, 4);
    put(w, &n, 8);
    put(w, data, (size_t)(n * sz[elem]));
}

void ts_gguf_w_arr_str(ts_gguf_writer *w, const char *key, const char *const *strs, uint64_t n)
{
    uint32_t et = TS_GGUF_STR;
    put_key(w, key, TS_GGUF_ARR);
    put(w, &et, 4);
    put(w, &n, 8);
    for (uint64_t i = 0; i < n; i++)
        put_str(w, strs[i], strlen(strs[i]));
}

static wtensor *add_tensor(ts_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                           const uint64_t *ne)
{
    if (w->oom || n_dims == 0 || n_dims > 4)
        return w->oom = true, NULL;
    if (w->n_t == w->cap_t) {
        uint64_t cap = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *nt = realloc(w->t, cap * sizeof(*nt));
        if (!nt)
            return w->oom = true, NULL;
        w->t = nt;
        w->cap_t = cap;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof(*t));
    t->name = strdup(name);
    if (!t->name)
        return w->oom = true, NULL;
    t->type = type;
    t->n_dims = n_dims;
    uint64_t n_el = 1;
    for (uint32_t d = 0; d < 4; d++) {
        t->ne[d] = d < n_dims ? ne[d] : 1;
        n_el *= t->ne[d];
    }
    t->n_bytes = ts_qtype_row_bytes(type, t->ne[0]) * (n_el / t->ne[0]);
    w->n_t++;
    return t;
}

void ts_gguf_w_tensor(ts_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                      const uint64_t *ne, const void *data, uint64_t n_bytes)
{
    wtensor *t = add_tensor(w, name, type, n_dims, ne);
    if (!t)
        return;
    if (t->n_bytes != n_bytes)
        w->oom = true; /* reported at write time as a caller error */
    t->data = data;
}

void ts_gguf_w_tensor_fn(ts_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                         const uint64_t *ne, ts_gguf_fill_fn fill, void *ctx)
{
    wtensor *t = add_tensor(w, name, type, n_dims, ne);
    if (t) {
        t->fill = fill;
        t->ctx = ctx;
    }
}

static bool write_pad(FILE *f, uint64_t pos, uint32_t align)
{
    static const uint8_t zeros[64];
    uint64_t pad = (align - pos % align) % align;
    while (pad) {
        size_t n = pad < sizeof(zeros) ? (size_t)pad : sizeof(zeros);
        if (fwrite(zeros, 1, n, f) != n)
            return false;
        pad -= n;
    }
    return true;
}

ts_status ts_gguf_writer_write(ts_gguf_writer *w, const char *path, ts_err *err)
{
    return ts_gguf_writer_write_checked(w, path, NULL, err);
}

static bool write_header(const ts_gguf_writer *w, FILE *f)
{
    uint32_t version = 3;
    bool ok = fwrite("GGUF", 1, 4, f) == 4 && fwrite(&version, 4, 1, f) == 1 &&
              fwrite(&w->n_t, 8, 1, f) == 1 && fwrite(&w->n_kv, 8, 1, f) == 1 &&
              (w->kv_len == 0 || fwrite(w->kv, 1, w->kv_len, f) == w->kv_len);
    uint64_t pos = 24 + w->kv_len;
    for (uint64_t i = 0; ok && i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        uint64_t len = strlen(t->name);
        ok = fwrite(&len, 8, 1, f) == 1 && fwrite(t->name, 1, len, f) == len &&
             fwrite(&t->n_dims, 4, 1, f) == 1 && fwrite(t->ne, 8, t->n_dims, f) == t->n_dims &&
             fwrite(&t->type, 4, 1, f) == 1 && fwrite(&t->offset, 8, 1, f) == 1;
        pos += 8 + len + 4 + 8 * t->n_dims + 4 + 8;
    }
    return ok && write_pad(f, pos, w->alignment);
}

ts_status ts_gguf_writer_write_checked(ts_gguf_writer *w, const char *path,
                                       const char *const *inputs, ts_err *err)
{
    if (w->oom)
        return ts_err_set(err, TS_E_NOMEM, "%s: out of memory or bad tensor while building",
                          path);
    uint64_t off = 0, max_fill = 0;
    for (uint64_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        off += w->t[i].n_bytes;
        off += (w->alignment - off % w->alignment) % w->alignment;
        if (w->t[i].fill && w->t[i].n_bytes > max_fill)
            max_fill = w->t[i].n_bytes;
    }
    uint8_t *buf = max_fill ? malloc(max_fill) : NULL;
    if (max_fill && !buf)
        return ts_err_set(err, TS_E_NOMEM, "out of memory (%llu bytes)",
                          (unsigned long long)max_fill);
    ts_safefile sf;
    ts_status st = ts_safefile_open(&sf, path, inputs, err);
    if (st != TS_OK) {
        free(buf);
        return st;
    }
    bool ok = write_header(w, sf.f);
    for (uint64_t i = 0; ok && st == TS_OK && i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        const void *src = t->data;
        if (t->fill) {
            st = t->fill(t->ctx, buf, t->n_bytes, err);
            src = buf;
        }
        ok = st == TS_OK && fwrite(src, 1, t->n_bytes, sf.f) == t->n_bytes &&
             write_pad(sf.f, t->n_bytes, w->alignment);
    }
    if (st == TS_OK && !ok)
        st = ts_err_set(err, TS_E_IO, "%s: write failed: %s; the file was not changed", path,
                        strerror(errno ? errno : EIO));
    free(buf);
    if (st != TS_OK) {
        ts_safefile_abort(&sf); /* removes only our temporary; the target is untouched */
        return st;
    }
    return ts_safefile_commit(&sf, err);
}
