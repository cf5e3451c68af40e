// SPDX-License-Identifier: MIT
// file.c — read-only file mapping, small-file reads and path helpers.
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

keel_status keel_map_open(const char *path, keel_map *m, keel_err *err) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return KEEL_FAIL(err, KEEL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return KEEL_FAIL(err, KEEL_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return KEEL_FAIL(err, KEEL_ERR_IO, "%s: not a regular file", path);
    }
    m->path = keel_strdup(path);
    if (!m->path) {
        close(fd);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    }
    m->size = (size_t)st.st_size;
    if (m->size > 0) {
        void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            free(m->path);
            m->path = NULL;
            return KEEL_FAIL(err, KEEL_ERR_IO, "%s: cannot mmap: %s", path, strerror(e));
        }
        m->data = p;
    }
    close(fd);
    return KEEL_OK;
}

void keel_map_close(keel_map *m) {
    if (!m) return;
    if (m->data && m->size) munmap((void *)m->data, m->size);
    free(m->path);
    memset(m, 0, sizeof *m);
}

keel_status keel_read_file(const char *path, char **out, size_t *len, keel_err *err) {
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return KEEL_FAIL(err, KEEL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    keel_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (!keel_buf_append(&b, chunk, n)) {
            fclose(f);
            free(b.data);
            return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b.data);
        return KEEL_FAIL(err, KEEL_ERR_IO, "%s: read error", path);
    }
    if (!b.data && !keel_buf_reserve(&b, 0)) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    b.data[b.len] = 0;
    *out = b.data;
    if (len) *len = b.len;
    return KEEL_OK;
}

bool keel_path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool keel_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

char *keel_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    bool slash = a > 0 && dir[a - 1] != '/';
    char *p = keel_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    if (slash) p[a++] = '/';
    memcpy(p + a, name, b + 1);
    return p;
}
