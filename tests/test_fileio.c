/*
 * tests/test_fileio.c: nothing lost, nothing hung (issue #13).
 *
 * Writers: quantize onto its input (same path, a symbolic link, a hard link)
 * is refused with the input intact; a writer that fails (RLIMIT_FSIZE, a
 * failing fill callback) leaves its target as it was and no temporary; a
 * device node or FIFO given as the output is refused and still there; an
 * interrupted gen leaves no partial file. Loaders: a FIFO model, a directory,
 * /dev/zero or a FIFO as the prompt, and an oversized prompt file are refused
 * quickly. GGUF: 100k keys and 50k tensors open in well under a second, and
 * duplicates are still found. OpenBLAS: no library and no thread of it in a
 * process that runs a model with BLAS off. TESSERA_NO_REPACK is strict.
 */
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../core/dense.h"
#include "../core/err.h"
#include "../core/fileio.h"
#include "../core/gguf.h"
#include "../core/session.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A fresh subdirectory of the run's tmpdir, so "no temporary left" can be
 * checked by listing it. */
static void fresh_dir(char *dir, size_t cap, const char *name)
{
    snprintf(dir, cap, "%s/%s", ts_test_tmpdir(), name);
    mkdir(dir, 0755);
}

/* Entries of dir whose name ends in ".tmp" (the writer's temporaries). */
static int count_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        n += len > 4 && !strcmp(e->d_name + len - 4, ".tmp");
    }
    closedir(d);
    return n;
}

static bool same_bytes(const char *a, const char *b)
{
    return ts_test_sh(NULL, 0, 30, "cmp -s '%s' '%s'", a, b) == 0;
}

static bool file_holds(const char *path, const char *text)
{
    char buf[256] = "";
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    return !strcmp(buf, text);
}

static int gen_model(const char *path, const char *type)
{
    char out[1024];
    int rc = ts_test_sh(out, sizeof(out), 120, "%s gen --shape tiny --type %s -o '%s'",
                        ts_test_bin(), type, path);
    if (rc)
        ts_test_fail(__FILE__, __LINE__, "gen: rc %d: %s", rc, out);
    return rc;
}

TS_TEST(test_fileio_quantize_refuses_its_input)
{
    char dir[512], in[600], keep[600], out[2048];
    fresh_dir(dir, sizeof(dir), "inplace");
    snprintf(in, sizeof(in), "%s/m.gguf", dir);
    snprintf(keep, sizeof(keep), "%s/keep.bin", dir);
    if (gen_model(in, "f32"))
        return;
    TS_REQUIRE(ts_test_sh(NULL, 0, 30, "cp '%s' '%s' && cd '%s' && ln -s m.gguf sym.gguf && "
                          "ln m.gguf hard.gguf", in, keep, dir) == 0, "setup");
    const char *outs[] = {"m.gguf", "sym.gguf", "hard.gguf", "./../inplace/m.gguf"};
    for (size_t i = 0; i < sizeof(outs) / sizeof(outs[0]); i++) {
        int rc = ts_test_sh(out, sizeof(out), 60, "cd '%s' && %s quantize m.gguf %s q8_0", dir,
                            ts_test_bin(), outs[i]);
        TS_CHECK(rc == 1 && strstr(out, "same file"), "quantize m.gguf %s: rc %d: %s", outs[i],
                 rc, out);
        TS_CHECK(same_bytes(in, keep), "quantize onto %s changed the input", outs[i]);
    }
    TS_CHECK(count_tmp(dir) == 0, "a temporary was left in %s", dir);
    /* A different output still works, and the input is untouched. */
    int rc = ts_test_sh(out, sizeof(out), 60, "cd '%s' && %s quantize m.gguf q.gguf q8_0", dir,
                        ts_test_bin());
    TS_CHECK(rc == 0, "quantize to a new file: rc %d: %s", rc, out);
    TS_CHECK(same_bytes(in, keep), "the input changed");
}

TS_TEST(test_fileio_failing_writer_keeps_target)
{
    char dir[512], in[600], tgt[600], out[2048];
    fresh_dir(dir, sizeof(dir), "failing");
    snprintf(in, sizeof(in), "%s/m.gguf", dir);
    snprintf(tgt, sizeof(tgt), "%s/out.gguf", dir);
    if (gen_model(in, "f32"))
        return;
    FILE *f = fopen(tgt, "wb");
    TS_REQUIRE(f && fputs("precious", f) >= 0 && fclose(f) == 0, "target");
    /* A file-size limit of 8 blocks (4-8 KiB): every write past it fails with EFBIG. */
    const char *cmds[] = {"quantize m.gguf out.gguf q8_0", "gen --shape tiny -o out.gguf",
                          "logits -m m.gguf --tokens tok.txt --out out.gguf"};
    TS_REQUIRE(ts_test_sh(NULL, 0, 10, "echo 1 2 3 4 5 6 7 8 > '%s/tok.txt'", dir) == 0, "tok");
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        int rc = ts_test_sh(out, sizeof(out), 60, "cd '%s' && ulimit -f 8 && %s %s", dir,
                            ts_test_bin(), cmds[i]);
        TS_CHECK(rc == 1 && strstr(out, "not changed"), "%s: rc %d: %s", cmds[i], rc, out);
        TS_CHECK(file_holds(tgt, "precious"), "%s: the target changed", cmds[i]);
        TS_CHECK(count_tmp(dir) == 0, "%s: a temporary was left", cmds[i]);
    }
    /* Non-regular outputs are refused and left in place. */
    char node[600];
    snprintf(node, sizeof(node), "%s/fifo", dir);
    TS_REQUIRE(mkfifo(node, 0644) == 0, "mkfifo: %s", strerror(errno));
    int rc = ts_test_sh(out, sizeof(out), 30, "cd '%s' && %s quantize m.gguf fifo q8_0", dir,
                        ts_test_bin());
    struct stat st;
    TS_CHECK(rc == 1 && strstr(out, "FIFO"), "FIFO output: rc %d: %s", rc, out);
    TS_CHECK(stat(node, &st) == 0 && S_ISFIFO(st.st_mode), "the FIFO is gone");
    snprintf(node, sizeof(node), "%s/full", dir);
    if (mknod(node, S_IFCHR | 0644, makedev(1, 7)) == 0) { /* a /dev/full of our own */
        rc = ts_test_sh(out, sizeof(out), 30, "cd '%s' && %s gen --shape tiny -o full", dir,
                        ts_test_bin());
        TS_CHECK(rc == 1 && strstr(out, "character device"), "device output: rc %d: %s", rc,
                 out);
        TS_CHECK(stat(node, &st) == 0 && S_ISCHR(st.st_mode), "the device node is gone");
    }
    rc = ts_test_sh(out, sizeof(out), 30, "cd '%s' && %s gen --shape tiny -o .", dir,
                    ts_test_bin());
    TS_CHECK(rc == 1 && strstr(out, "directory"), "directory output: rc %d: %s", rc, out);
    TS_CHECK(count_tmp(dir) == 0, "a temporary was left");
}

static ts_status failing_fill(void *ctx, void *dst, uint64_t n_bytes, ts_err *err)
{
    (void)ctx;
    memset(dst, 0, n_bytes);
    return ts_err_set(err, TS_E_IO, "fill failed on purpose");
}

/* In-process: a fill callback failing mid-file keeps the target; a writer
 * that succeeds replaces it and keeps its permission bits. */
TS_TEST(test_fileio_writer_commit_or_nothing)
{
    char dir[512], tgt[600];
    fresh_dir(dir, sizeof(dir), "commit");
    snprintf(tgt, sizeof(tgt), "%s/t.gguf", dir);
    FILE *f = fopen(tgt, "wb");
    TS_REQUIRE(f && fputs("precious", f) >= 0 && fclose(f) == 0, "target");
    TS_REQUIRE(chmod(tgt, 0640) == 0, "chmod");
    ts_err err = {0};
    ts_gguf_writer *w = NULL;
    TS_REQUIRE(ts_gguf_writer_create(&w, &err) == TS_OK, "%s", err.msg);
    ts_gguf_w_u32(w, "a", 1);
    const uint64_t ne[1] = {64};
    float ok_data[64] = {0};
    ts_gguf_w_tensor(w, "ok", 0, 1, ne, ok_data, sizeof(ok_data));
    ts_gguf_w_tensor_fn(w, "bad", 0, 1, ne, failing_fill, NULL);
    ts_status st = ts_gguf_writer_write(w, tgt, &err);
    TS_CHECK(st == TS_E_IO && strstr(err.msg, "on purpose"), "fill error: %d %s", st, err.msg);
    TS_CHECK(file_holds(tgt, "precious"), "the target changed");
    TS_CHECK(count_tmp(dir) == 0, "a temporary was left");
    ts_gguf_writer_destroy(w);
    TS_REQUIRE(ts_gguf_writer_create(&w, &err) == TS_OK, "%s", err.msg);
    ts_gguf_w_u32(w, "a", 1);
    TS_CHECK(ts_gguf_writer_write(w, tgt, &err) == TS_OK, "write: %s", err.msg);
    ts_gguf_writer_destroy(w);
    struct stat sb;
    TS_CHECK(stat(tgt, &sb) == 0 && (sb.st_mode & 0777) == 0640 && sb.st_size > 8,
             "replaced file: mode %o size %lld", (unsigned)(sb.st_mode & 0777),
             (long long)sb.st_size);
    ts_gguf *g = NULL;
    TS_CHECK(ts_gguf_open(&g, tgt, &err) == TS_OK && ts_gguf_kv_find(g, "a"), "reopen: %s",
             err.msg);
    ts_gguf_close(g);
    /* Inputs named to the checked form are refused. */
    TS_REQUIRE(ts_gguf_writer_create(&w, &err) == TS_OK, "%s", err.msg);
    const char *const inputs[] = {"/nonexistent-input", tgt, NULL};
    st = ts_gguf_writer_write_checked(w, tgt, inputs, &err);
    TS_CHECK(st == TS_E_ARG && strstr(err.msg, "same file"), "checked: %d %s", st, err.msg);
    ts_gguf_writer_destroy(w);
    TS_CHECK(count_tmp(dir) == 0, "a temporary was left");
}

/* SIGINT during gen: no file under the final name unless it is complete, and
 * no temporary either way. */
TS_TEST(test_fileio_interrupted_gen_leaves_nothing)
{
    char dir[512], tgt[600], out[1024];
    fresh_dir(dir, sizeof(dir), "interrupt");
    snprintf(tgt, sizeof(tgt), "%s/big.gguf", dir);
    for (int delay_ms = 100; delay_ms <= 400; delay_ms += 300) {
        int rc = ts_test_sh(out, sizeof(out), 120,
                            "%s gen --shape qwen-0.5b --type q8_0 --layers 2 -o '%s' & p=$!; "
                            "sleep %d.%03d; kill -INT $p; wait $p",
                            ts_test_bin(), tgt, delay_ms / 1000, delay_ms % 1000);
        TS_CHECK(rc == 130 || rc == 0, "gen: rc %d: %s", rc, out);
        TS_CHECK(count_tmp(dir) == 0, "a temporary was left after SIGINT at %d ms", delay_ms);
        struct stat st;
        if (stat(tgt, &st) == 0) { /* finished before the signal: must be whole */
            ts_gguf *g = NULL;
            ts_err err = {0};
            TS_CHECK(ts_gguf_open(&g, tgt, &err) == TS_OK, "partial file: %s", err.msg);
            ts_gguf_close(g);
            unlink(tgt);
        }
    }
}

/* Non-regular inputs are refused at once (the FIFO would block open(), /dev/zero
 * would be read until memory runs out), and so is an oversized prompt file. */
TS_TEST(test_fileio_loaders_refuse_nonregular)
{
    char dir[512], model[600], out[2048];
    fresh_dir(dir, sizeof(dir), "loaders");
    snprintf(model, sizeof(model), "%s/m.gguf", dir);
    if (gen_model(model, "q8_0"))
        return;
    TS_REQUIRE(ts_test_sh(NULL, 0, 10, "cd '%s' && mkfifo ff && mkdir d && "
                          "truncate -s 4G huge.txt", dir) == 0, "setup");
    static const struct {
        const char *args, *want;
    } cases[] = {
        {"run -m ff -p hi -n 2", "not a regular file"},
        {"info ff", "not a regular file"},
        {"run -m m.gguf -f ff -n 2", "FIFO"},
        {"run -m m.gguf -f d -n 2", "directory"},
        {"run -m m.gguf -f /dev/zero -n 2", "character device"},
        {"run -m m.gguf -f huge.txt -n 2", "more than"},
        {"run -m m.gguf -f huge.txt -n 2 -c 64", "more than"},
        {"logits -m m.gguf --tokens ff --out o.bin", "FIFO"},
        {"logits -m m.gguf --tokens huge.txt --out o.bin", "more than"},
        {"tokenize -m m.gguf --file d", "directory"},
        {"tokenize -m ff -p hi", "not a regular file"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double t0 = now_s();
        int rc = ts_test_sh(out, sizeof(out), 20, "cd '%s' && %s %s", dir, ts_test_bin(),
                            cases[i].args);
        double dt = now_s() - t0;
        TS_CHECK(rc == 1 && strstr(out, cases[i].want), "%s: rc %d (want 1, '%s'): %s",
                 cases[i].args, rc, cases[i].want, out);
        TS_CHECK(dt < 10.0, "%s took %.1f s", cases[i].args, dt);
    }
    /* A prompt file that fits is read. */
    int rc = ts_test_sh(out, sizeof(out), 60,
                        "cd '%s' && printf 'hello world' > p.txt && %s run -m m.gguf -f p.txt "
                        "-n 2 --temp 0", dir, ts_test_bin());
    TS_CHECK(rc == 0, "a small prompt file: rc %d: %s", rc, out);
}

/* A GGUF of n_kv u32 keys and n_t one-element f32 tensors; dup_key/dup_t
 * repeat the first key / tensor name at the end. */
static ts_status write_many(const char *path, int n_kv, int n_t, bool dup_key, bool dup_t,
                            ts_err *err)
{
    ts_gguf_writer *w = NULL;
    ts_status st = ts_gguf_writer_create(&w, err);
    if (st != TS_OK)
        return st;
    char name[64];
    for (int i = 0; i < n_kv; i++) {
        snprintf(name, sizeof(name), "test.key.%07d", (i * 7919) % n_kv);
        ts_gguf_w_u32(w, name, (uint32_t)i);
    }
    if (dup_key)
        ts_gguf_w_u32(w, "test.key.0000000", 0);
    static const float one = 1.0f;
    const uint64_t ne[1] = {1};
    for (int i = 0; i < n_t; i++) {
        snprintf(name, sizeof(name), "blk.%d.t", i);
        ts_gguf_w_tensor(w, name, 0, 1, ne, &one, sizeof(one));
    }
    if (dup_t)
        ts_gguf_w_tensor(w, "blk.0.t", 0, 1, ne, &one, sizeof(one));
    st = ts_gguf_writer_write(w, path, err);
    ts_gguf_writer_destroy(w);
    return st;
}

TS_TEST(test_gguf_open_many_keys_fast)
{
    char path[600];
    ts_err err = {0};
    snprintf(path, sizeof(path), "%s/many.gguf", ts_test_tmpdir());
    TS_REQUIRE(write_many(path, 100000, 50000, false, false, &err) == TS_OK, "%s", err.msg);
    double t0 = now_s();
    ts_gguf *g = NULL;
    ts_status st = ts_gguf_open(&g, path, &err);
    double dt = now_s() - t0;
    TS_CHECK(st == TS_OK, "open: %s", err.msg);
    /* Quadratic checks took 17 s for 100k keys; sorted ones take ~50 ms here
     * under ASan. A second is the bound, with room for a slow CI box. */
    TS_CHECK(dt < 1.0, "100k keys + 50k tensors opened in %.2f s", dt);
    if (g) {
        const ts_gguf_kv *kv = ts_gguf_kv_find(g, "test.key.0012345");
        uint32_t v = 0;
        if (kv)
            memcpy(&v, kv->val, 4);
        TS_CHECK(kv && ts_gguf_kv_find(g, "test.key.0012345") == kv, "find key");
        TS_CHECK(!ts_gguf_kv_find(g, "test.key.1000000") && !ts_gguf_kv_find(g, ""),
                 "absent keys found");
        TS_CHECK(ts_gguf_tensor_find(g, "blk.49999.t") && !ts_gguf_tensor_find(g, "blk.50000.t"),
                 "tensor lookups");
        /* Keys keep their file order for iteration. */
        const ts_gguf_kv *first = ts_gguf_kv_at(g, 0);
        TS_CHECK(first && ts_str_eq(first->key, "test.key.0000000"), "file order");
        (void)v;
    }
    ts_gguf_close(g);
    TS_REQUIRE(write_many(path, 5000, 10, true, false, &err) == TS_OK, "%s", err.msg);
    st = ts_gguf_open(&g, path, &err);
    TS_CHECK(st == TS_E_FORMAT && strstr(err.msg, "duplicate key") &&
                 strstr(err.msg, "test.key.0000000"), "dup key: %d %s", st, err.msg);
    ts_gguf_close(g);
    g = NULL;
    TS_REQUIRE(write_many(path, 10, 5000, false, true, &err) == TS_OK, "%s", err.msg);
    st = ts_gguf_open(&g, path, &err);
    TS_CHECK(st == TS_E_FORMAT && strstr(err.msg, "duplicate name") && strstr(err.msg, "blk.0.t"),
             "dup tensor: %d %s", st, err.msg);
    ts_gguf_close(g);
}

/* The child half of test_dense_no_openblas_threads (run in a fresh process:
 * the suite's own tests load OpenBLAS). Prints "threads N workers W blas B". */
static int blas_child(const char *model)
{
    ts_err err = {0};
    ts_engine *eng = NULL;
    ts_session *s = NULL;
    if (ts_engine_create(&eng, &(ts_engine_opts){.model_path = model, .n_threads = 2}, &err) ||
        ts_session_create(&s, eng, &(ts_session_opts){.n_ctx = 64}, &err)) {
        printf("error %s\n", err.msg);
        return 1;
    }
    const int32_t toks[4] = {1, 5, 9, 13};
    ts_status st = ts_session_prefill(s, toks, 4, NULL, &err);
    int n_threads = 0;
    DIR *d = opendir("/proc/self/task");
    for (struct dirent *e; d && (e = readdir(d));)
        n_threads += e->d_name[0] != '.';
    if (d)
        closedir(d);
    char maps[256];
    bool mapped = false;
    FILE *f = fopen("/proc/self/maps", "r");
    while (f && fgets(maps, sizeof(maps), f))
        mapped = mapped || strstr(maps, "libopenblas");
    if (f)
        fclose(f);
    printf("threads %d workers %u blas %d prefill %d\n", n_threads, eng->n_workers, (int)mapped,
           (int)st);
    ts_session_destroy(s);
    ts_engine_destroy(eng);
    return 0;
}

TS_TEST(test_dense_no_openblas_threads)
{
    const char *child = getenv("TS_TEST_BLAS_CHILD");
    if (child) { /* we are the child: report and let the parent judge */
        fflush(stdout);
        _exit(blas_child(child));
    }
    char model[600], out[4096], self[512];
    snprintf(model, sizeof(model), "%s/blas.gguf", ts_test_tmpdir());
    if (gen_model(model, "f32"))
        return;
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    TS_REQUIRE(n > 0, "readlink /proc/self/exe");
    self[n] = 0;
    for (int on = 0; on < 2; on++) {
        int rc = ts_test_sh(out, sizeof(out), 120,
                            "TESSERA_BLAS=%d TS_TEST_BLAS_CHILD='%s' '%s' "
                            "test_dense_no_openblas_threads",
                            on, model, self);
        int threads = -1, blas = -1, pst = -1;
        unsigned workers = 0;
        const char *line = strstr(out, "threads ");
        if (line)
            sscanf(line, "threads %d workers %u blas %d prefill %d", &threads, &workers, &blas,
                   &pst);
        TS_CHECK(rc == 0 && pst == 0, "child (BLAS %d): rc %d: %s", on, rc, out);
        if (!on) /* our pool only: the caller is worker 0 */
            TS_CHECK(blas == 0 && threads == (int)workers,
                     "BLAS off: %d threads for %u workers, libopenblas mapped %d", threads,
                     workers, blas);
        else /* asked for, it loads (and brings its own threads) */
            TS_CHECK(blas == 1, "TESSERA_BLAS=1 did not load OpenBLAS: %s", out);
    }
}

/* TESSERA_NO_REPACK: unset, "" and "0" keep the repack; "1" drops it; other
 * values are refused naming the variable. */
TS_TEST(test_engine_no_repack_strict)
{
    char model[600];
    snprintf(model, sizeof(model), "%s/repack.gguf", ts_test_tmpdir());
    if (gen_model(model, "q8_0"))
        return;
    const char *keep = getenv("TESSERA_NO_REPACK");
    char saved[64] = "";
    if (keep)
        snprintf(saved, sizeof(saved), "%s", keep);
    static const struct {
        const char *val;
        int want; /* 1 repacked, 0 not, -1 refused */
    } cases[] = {{NULL, 1}, {"", 1}, {"0", 1}, {"1", 0}, {"abc", -1}, {"2", -1}, {"yes", -1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].val)
            setenv("TESSERA_NO_REPACK", cases[i].val, 1);
        else
            unsetenv("TESSERA_NO_REPACK");
        ts_err err = {0};
        ts_engine *eng = NULL;
        ts_status st = ts_engine_create(&eng, &(ts_engine_opts){.model_path = model}, &err);
        const char *v = cases[i].val ? cases[i].val : "(unset)";
        if (cases[i].want < 0) {
            TS_CHECK(st == TS_E_ARG && strstr(err.msg, "TESSERA_NO_REPACK"), "%s: %d %s", v, st,
                     err.msg);
        } else {
            TS_CHECK(st == TS_OK, "%s: %s", v, err.msg);
            if (eng)
                TS_CHECK((eng->model->n_repacked > 0) == (cases[i].want == 1),
                         "%s: %u matrices repacked", v, eng->model->n_repacked);
        }
        ts_engine_destroy(eng);
    }
    if (keep)
        setenv("TESSERA_NO_REPACK", saved, 1);
    else
        unsetenv("TESSERA_NO_REPACK");
}
