/*
 * core/fileio.c: safe writers (temporary file + fsync + rename) and bounded,
 * non-blocking readers of regular files (contracts in core/fileio.h).
 *
 * Owns: target resolution (links followed, non-regular targets and
 * output == input refused), the temporary's name and mode, the commit order
 * (flush, fsync, close, rename, fsync of the directory), and the registry of
 * open temporaries a signal handler may unlink. Does not own: what is written
 * (core/gguf_write.c, tools/) or installing signal handlers (tools/tessera.c).
 *
 * The registry is this library's one mutable global besides the kernel table
 * and the log callback: a signal handler can reach nothing else. Slots are
 * claimed under a mutex and published with a signal fence, so a handler sees
 * either no path or a whole one.
 */
#include "fileio.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REG_SLOTS 8         /* temporaries open at once that a signal cleans up */
#define TMP_BASE_MAX 200    /* bytes of the target's name kept in the temporary's */
#define TMP_TRIES 100

static char g_reg_path[REG_SLOTS][TS_PATH_CAP];
static volatile sig_atomic_t g_reg_used[REG_SLOTS];
static pthread_mutex_t g_reg_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint g_tmp_counter;

static int reg_claim(const char *path)
{
    int slot = -1;
    pthread_mutex_lock(&g_reg_lock);
    for (int i = 0; i < REG_SLOTS && slot < 0; i++)
        if (!g_reg_used[i])
            slot = i;
    if (slot >= 0) {
        snprintf(g_reg_path[slot], TS_PATH_CAP, "%s", path);
        atomic_signal_fence(memory_order_seq_cst); /* the path before the flag */
        g_reg_used[slot] = 1;
    }
    pthread_mutex_unlock(&g_reg_lock);
    return slot;
}

static void reg_release(int slot)
{
    if (slot < 0)
        return;
    pthread_mutex_lock(&g_reg_lock);
    g_reg_used[slot] = 0;
    pthread_mutex_unlock(&g_reg_lock);
}

void ts_safefile_signal_cleanup(void)
{
    for (int i = 0; i < REG_SLOTS; i++)
        if (g_reg_used[i]) {
            atomic_signal_fence(memory_order_seq_cst);
            unlink(g_reg_path[i]);
        }
}

static const char *kind_name(mode_t m)
{
    return S_ISDIR(m)    ? "a directory"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISSOCK(m) ? "a socket"
                         : "not a regular file";
}

/* dir (with the trailing '/', or "" for the current directory) and base of p. */
static void split_path(const char *p, char *dir, size_t dir_cap, const char **base)
{
    const char *slash = strrchr(p, '/');
    *base = slash ? slash + 1 : p;
    size_t n = slash ? (size_t)(slash - p) + 1 : 0;
    if (n >= dir_cap)
        n = dir_cap - 1;
    memcpy(dir, p, n);
    dir[n] = 0;
}

/* Resolves the target: *exists and *st describe it (links followed). */
static ts_status resolve_target(ts_safefile *sf, const char *path, bool *exists,
                                struct stat *st, ts_err *err)
{
    struct stat lst;
    *exists = false;
    if (!*path)
        return ts_err_set(err, TS_E_ARG, "empty output path");
    if (strlen(path) >= TS_PATH_CAP - 64)
        return ts_err_set(err, TS_E_ARG, "%.64s...: output path too long", path);
    snprintf(sf->target, sizeof(sf->target), "%s", path);
    if (lstat(path, &lst) != 0) {
        if (errno == ENOENT)
            return TS_OK;
        return ts_err_set(err, TS_E_IO, "%s: %s", path, strerror(errno));
    }
    if (stat(path, st) != 0)
        return ts_err_set(err, TS_E_IO, "%s: a symbolic link to nothing (%s); not written",
                          path, strerror(errno));
    if (!S_ISREG(st->st_mode))
        return ts_err_set(err, TS_E_IO, "%s: %s, not a regular file; not written", path,
                          kind_name(st->st_mode));
    if (S_ISLNK(lst.st_mode)) {
        char real[PATH_MAX];
        if (!realpath(path, real) || strlen(real) >= TS_PATH_CAP - 64)
            return ts_err_set(err, TS_E_IO, "%s: cannot resolve the link", path);
        snprintf(sf->target, sizeof(sf->target), "%s", real);
    }
    *exists = true;
    return TS_OK;
}

static ts_status check_inputs(const char *path, const struct stat *st,
                              const char *const *inputs, ts_err *err)
{
    for (size_t i = 0; inputs && inputs[i]; i++) {
        struct stat in;
        if (stat(inputs[i], &in) == 0 && in.st_dev == st->st_dev && in.st_ino == st->st_ino)
            return ts_err_set(err, TS_E_ARG,
                              "%s: is the input file %s (same file); write to another path",
                              path, inputs[i]);
    }
    return TS_OK;
}

ts_status ts_safefile_open(ts_safefile *sf, const char *path, const char *const *inputs,
                           ts_err *err)
{
    memset(sf, 0, sizeof(*sf));
    sf->slot = -1;
    bool exists;
    struct stat st;
    ts_status s = resolve_target(sf, path, &exists, &st, err);
    if (s == TS_OK && exists)
        s = check_inputs(path, &st, inputs, err);
    if (s != TS_OK)
        return s;
    char dir[TS_PATH_CAP];
    const char *base;
    split_path(sf->target, dir, sizeof(dir), &base);
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < TMP_TRIES; tries++) {
        int len = snprintf(sf->tmp, sizeof(sf->tmp), "%s.%.*s.%ld.%u.tmp", dir, TMP_BASE_MAX,
                           base, (long)getpid(), atomic_fetch_add(&g_tmp_counter, 1));
        if (len < 0 || (size_t)len >= sizeof(sf->tmp)) {
            errno = ENAMETOOLONG;
            break;
        }
        /* 0666 and the umask, as the target would get from fopen(path, "w"). */
        fd = open(sf->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        int e = errno;
        sf->tmp[0] = 0;
        return ts_err_set(err, TS_E_IO, "%s: cannot create a file in '%s': %s", path,
                          *dir ? dir : ".", strerror(e));
    }
    if (exists)
        (void)fchmod(fd, st.st_mode & 07777); /* the replaced file's permissions */
    sf->slot = reg_claim(sf->tmp);
    sf->f = fdopen(fd, "wb");
    if (!sf->f) {
        close(fd);
        ts_safefile_abort(sf);
        return ts_err_set(err, TS_E_NOMEM, "%s: out of memory", path);
    }
    return TS_OK;
}

void ts_safefile_abort(ts_safefile *sf)
{
    if (!sf)
        return;
    if (sf->f)
        fclose(sf->f);
    sf->f = NULL;
    if (sf->tmp[0])
        unlink(sf->tmp);
    sf->tmp[0] = 0;
    reg_release(sf->slot);
    sf->slot = -1;
}

static void sync_dir(const char *target)
{
    char dir[TS_PATH_CAP];
    const char *base;
    split_path(target, dir, sizeof(dir), &base);
    int fd = open(*dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd); /* best effort: the rename is already visible */
        close(fd);
    }
}

ts_status ts_safefile_commit(ts_safefile *sf, ts_err *err)
{
    if (!sf->f)
        return ts_err_set(err, TS_E_STATE, "ts_safefile_commit: not open");
    const char *what = NULL;
    int e = 0;
    if (fflush(sf->f) != 0 || ferror(sf->f))
        what = "write failed", e = errno;
    else if (fsync(fileno(sf->f)) != 0 && errno != EINVAL && errno != EROFS)
        what = "fsync failed", e = errno;
    FILE *f = sf->f;
    sf->f = NULL;
    if (fclose(f) != 0 && !what)
        what = "close failed", e = errno;
    if (!what && rename(sf->tmp, sf->target) != 0)
        what = "rename failed", e = errno;
    if (what) {
        ts_status st = ts_err_set(err, TS_E_IO, "%s: %s: %s; the file was not changed",
                                  sf->target, what, strerror(e ? e : EIO));
        ts_safefile_abort(sf);
        return st;
    }
    sf->tmp[0] = 0; /* renamed: nothing left to remove */
    reg_release(sf->slot);
    sf->slot = -1;
    sync_dir(sf->target);
    return TS_OK;
}

ts_status ts_file_read(const char *path, const char *what, size_t max_bytes, char **out,
                       size_t *len, ts_err *err)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return ts_err_set(err, TS_E_IO, "%s '%s': %s", what, path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ts_err_set(err, TS_E_IO, "%s '%s': %s", what, path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ts_err_set(err, TS_E_IO, "%s '%s': %s, not a regular file", what, path,
                          kind_name(st.st_mode));
    }
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return ts_err_set(err, TS_E_ARG, "%s '%s' is %lld bytes, more than the %zu it may hold",
                          what, path, (long long)st.st_size, max_bytes);
    }
    /* Read to EOF but never past max_bytes + 1: the file may grow meanwhile. */
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap + 1);
    ts_status s = buf ? TS_OK : ts_err_set(err, TS_E_NOMEM, "%s '%s': out of memory", what, path);
    while (s == TS_OK) {
        if (n == cap) {
            if (cap > max_bytes) {
                s = ts_err_set(err, TS_E_ARG, "%s '%s' grew past the %zu bytes it may hold",
                               what, path, max_bytes);
                break;
            }
            size_t ncap = cap * 2 > max_bytes + 1 ? max_bytes + 1 : cap * 2;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                s = ts_err_set(err, TS_E_NOMEM, "%s '%s': out of memory", what, path);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            s = ts_err_set(err, TS_E_IO, "%s '%s': %s", what, path, strerror(errno));
        else if (got == 0)
            break;
        else
            n += (size_t)got;
    }
    close(fd);
    if (s == TS_OK && n > max_bytes)
        s = ts_err_set(err, TS_E_ARG, "%s '%s' grew past the %zu bytes it may hold", what,
                       path, max_bytes);
    if (s != TS_OK) {
        free(buf);
        return s;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return TS_OK;
}
