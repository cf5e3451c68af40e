// SPDX-License-Identifier: MIT
// test_fs.h — file helpers shared by the tests that run whole jobs in a
// temporary directory: remove a tree, write a string or bytes, read a whole
// file, write a named file into a temporary directory.
#ifndef KEEL_TEST_FS_H
#define KEEL_TEST_FS_H
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline void test_rm_rf(const char *path) {
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    char p[2048];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (snprintf(p, sizeof p, "%s/%s", path, e->d_name) >= (int)sizeof p) continue;
        test_rm_rf(p);
    }
    closedir(d);
    rmdir(path);
}

static inline bool test_write_str(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    if (!f) return false;
    fputs(s, f);
    return fclose(f) == 0;
}

static inline bool test_write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

// The whole file as a NUL-terminated heap buffer (free()) and its size in *n
// (n may be NULL), or NULL.
static inline char *test_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *d = sz >= 0 ? malloc((size_t)sz + 1) : NULL;
    if (d && fread(d, 1, (size_t)sz, f) != (size_t)sz) {
        free(d);
        d = NULL;
    }
    if (d) {
        d[sz] = 0;
        if (n) *n = (size_t)sz;
    }
    fclose(f);
    return d;
}

// The whole file as a NUL-terminated heap string (free()), or NULL.
static inline char *test_read_text(const char *path) { return test_read_file(path, NULL); }

// Write text to dir/name and return the path (one of 8 rotating buffers, so
// a few paths stay valid together).
static inline const char *test_tmp_file(const char *dir, const char *name, const char *text) {
    static char path[8][256];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 256, "%s/%s", dir, name);
    test_write_str(p, text);
    return p;
}

// Occurrences of needle in hay.
static inline int test_count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}
#endif
