// SPDX-License-Identifier: MIT
// test_fs.h — file helpers shared by the tests that run whole jobs in a
// temporary directory: remove a tree, write a string, read a whole file.
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

// The whole file as a NUL-terminated heap string (free()), or NULL.
static inline char *test_read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *d = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (d && fread(d, 1, (size_t)n, f) != (size_t)n) {
        free(d);
        d = NULL;
    }
    if (d) d[n] = 0;
    fclose(f);
    return d;
}

// Occurrences of needle in hay.
static inline int test_count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}
#endif
