// SPDX-License-Identifier: MIT
// atomic.c — crash-safe file replacement for checkpoints and records
// (declared in io.h). Write "PATH.tmp.<pid>" beside PATH, fsync it, rename(2)
// it over PATH (atomic within one file system), fsync the directory so the
// rename itself is durable. Any failure removes the temporary and leaves PATH
// as it was. Reference: rename(2), fsync(2); the same recipe as SQLite's and
// git's lock-file writes.
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

keel_status keel_afile_write(keel_afile *f, const void *buf, size_t n, keel_err *err) {
    const char *p = buf;
    while (n > 0) {
        // Linux writes at most ~2 GiB per call; keep each call well below.
        size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        ssize_t w = write(f->fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return KEEL_FAIL(err, KEEL_ERR_IO, "%s: write failed: %s", f->path, strerror(errno));
        }
        if (w == 0) return KEEL_FAIL(err, KEEL_ERR_IO, "%s: write made no progress", f->path);
        p += w;
        n -= (size_t)w;
        f->written += (uint64_t)w;
    }
    return KEEL_OK;
}

// fsync directory dir (holding path), so the rename survives a power cut.
static keel_status sync_dir(const char *path, const char *dir, keel_err *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return KEEL_FAIL(err, KEEL_ERR_IO, "%s: cannot open directory %s: %s", path, dir,
                         strerror(errno));
    keel_status st = KEEL_OK;
    // Some file systems refuse fsync on a directory (EINVAL): nothing to make durable there.
    if (fsync(fd) != 0 && errno != EINVAL)
        st = KEEL_FAIL(err, KEEL_ERR_IO, "%s: fsync of directory %s failed: %s", path, dir,
                       strerror(errno));
    close(fd);
    return st;
}

keel_status keel_atomic_write(const char *path, keel_afile_fn fn, void *ctx, keel_err *err) {
    if (!path || !*path) return KEEL_FAIL(err, KEEL_ERR_INVALID, "atomic write: empty path");
    // Everything that allocates happens before the file is touched.
    keel_buf tmp = {0};
    const char *slash = strrchr(path, '/');
    char *dir = slash ? keel_strndup(path, slash == path ? 1 : (size_t)(slash - path))
                      : keel_strdup(".");
    if (!dir || !keel_buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid())) {
        free(dir);
        free(tmp.data);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    }
    keel_afile f = {.fd = -1, .path = path, .tmp = tmp.data};
    keel_status st = KEEL_OK;
    // A stale temporary of ours (an earlier failed run with the same pid) is replaced.
    f.fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f.fd < 0) {
        st = KEEL_FAIL(err, KEEL_ERR_IO, "%s: cannot create %s: %s", path, tmp.data, strerror(errno));
        free(tmp.data);
        free(dir);
        return st;
    }
    st = fn(&f, ctx, err);
    if (st == KEEL_OK && fsync(f.fd) != 0)
        st = KEEL_FAIL(err, KEEL_ERR_IO, "%s: fsync of %s failed: %s", path, tmp.data,
                       strerror(errno));
    // close can report a deferred write error (NFS): it counts.
    if (close(f.fd) != 0 && st == KEEL_OK)
        st = KEEL_FAIL(err, KEEL_ERR_IO, "%s: close of %s failed: %s", path, tmp.data,
                       strerror(errno));
    if (st == KEEL_OK && rename(tmp.data, path) != 0)
        st = KEEL_FAIL(err, KEEL_ERR_IO, "%s: cannot rename %s over it: %s", path, tmp.data,
                       strerror(errno));
    if (st != KEEL_OK) unlink(tmp.data);
    else st = sync_dir(path, dir, err);
    free(tmp.data);
    free(dir);
    return st;
}

typedef struct bufs_ctx {
    const keel_iobuf *bufs;
    size_t n;
} bufs_ctx;

static keel_status write_bufs(keel_afile *f, void *ctx, keel_err *err) {
    const bufs_ctx *c = ctx;
    for (size_t i = 0; i < c->n; i++) {
        keel_status st = keel_afile_write(f, c->bufs[i].data, c->bufs[i].len, err);
        if (st != KEEL_OK) return st;
    }
    return KEEL_OK;
}

keel_status keel_atomic_write_bufs(const char *path, const keel_iobuf *bufs, size_t n_bufs,
                                   keel_err *err) {
    bufs_ctx c = {bufs, n_bufs};
    return keel_atomic_write(path, write_bufs, &c, err);
}
