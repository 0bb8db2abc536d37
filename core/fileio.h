/*
 * core/fileio.h: file I/O that loses nothing and never blocks.
 *
 * Writers (ts_safefile): the bytes go to a new temporary file beside the
 * target (".<name>.<pid>.<n>.tmp" in the target's directory), are fsync'd,
 * and replace the target by rename() only when every write succeeded. So a
 * failing or interrupted writer leaves the target as it was, and the only
 * path ever unlinked is the temporary this process created. The target must
 * be a regular file or absent (a device node, FIFO or directory is refused,
 * never truncated or removed), and must not be one of the inputs (same device
 * and inode, links resolved). A symbolic link is followed: the file it names
 * is replaced and the link kept, as `sed -i --follow-symlinks` does.
 *
 * Readers (ts_file_read): regular files only, opened with O_NONBLOCK (a FIFO
 * or a terminal never blocks the open), refused above a byte limit the caller
 * ties to what it can use.
 */
#ifndef TS_FILEIO_H
#define TS_FILEIO_H

#include <stdio.h>

#include "tessera.h"

#define TS_PATH_CAP 4096

typedef struct {
    FILE *f;                  /* write through this between open and commit */
    char target[TS_PATH_CAP]; /* the resolved path the commit renames onto */
    char tmp[TS_PATH_CAP];    /* the temporary file, "" once gone */
    int slot;                 /* index in the signal-cleanup registry, -1 if none */
} ts_safefile;

/* Creates the temporary file for `path`. inputs: NULL or a NULL-terminated
 * list of paths the output must not be (missing ones are ignored). */
ts_status ts_safefile_open(ts_safefile *sf, const char *path, const char *const *inputs,
                           ts_err *err);
/* Flushes, fsyncs, closes and renames the temporary over the target (then
 * fsyncs the directory). On any failure the temporary is removed and the
 * target is untouched. Either way sf is finished afterwards. */
ts_status ts_safefile_commit(ts_safefile *sf, ts_err *err);
/* Closes and removes the temporary; the target is untouched. NULL-safe, and
 * safe after commit. */
void ts_safefile_abort(ts_safefile *sf);
/* Async-signal-safe: unlinks every temporary still open in this process.
 * A program's SIGINT/SIGTERM handler calls it before dying (tools/tessera.c);
 * the library installs no handler itself. */
void ts_safefile_signal_cleanup(void);

/* Reads a whole regular file of at most max_bytes into *out (malloc'd, with a
 * NUL after the *len bytes). what names the file in errors ("prompt file").
 * TS_E_IO: missing, unreadable, not a regular file; TS_E_ARG: too large. */
ts_status ts_file_read(const char *path, const char *what, size_t max_bytes, char **out,
                       size_t *len, ts_err *err);

#endif
