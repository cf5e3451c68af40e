// SPDX-License-Identifier: MIT
// corpus_check.h — the handcrafted-file checks shared by the file-reader
// tests (test_gguf.c, test_safetensors.c): every file in an expectations
// table fails with its status and a message "PATH: ...<substring>", and every
// file of a corpus folder behaves by its name (valid_* opens, bad_* fails
// naming the file and is in the table; others, fuzzer finds, only must not
// crash). A reader is given as an open function returning a handle (NULL on
// failure) and a close function.
#ifndef KEEL_CORPUS_CHECK_H
#define KEEL_CORPUS_CHECK_H
#include "keel.h"
#include "test.h"

#include <dirent.h>
#include <stdbool.h>

typedef struct expect {
    const char *file;
    keel_status code;
    const char *msg; // a substring of the message (after "PATH: ")
} expect;

typedef keel_status (*corpus_open_fn)(const char *path, void **handle, keel_err *err);
typedef void (*corpus_close_fn)(void *handle);

// Counts the table entries whose file fails exactly as expected; prints each miss.
static inline int corpus_check_table(const char *dir, const expect *tab, size_t n, corpus_open_fn open_fn) {
    int right = 0;
    for (size_t k = 0; k < n; k++) {
        char path[512], want[600];
        snprintf(path, sizeof path, "%s/%s", dir, tab[k].file);
        snprintf(want, sizeof want, "%s: ", path);
        void *h = (void *)1;
        keel_err e = {0};
        keel_status st = open_fn(path, &h, &e);
        bool ok = st == tab[k].code && e.code == st && h == NULL && strncmp(e.msg, want, strlen(want)) == 0 &&
                  strstr(e.msg, tab[k].msg) != NULL;
        if (!ok)
            fprintf(stderr, "FAIL %s: status %d (want %d), message '%s' (want '%s')\n", tab[k].file, (int)st,
                    (int)tab[k].code, e.msg, tab[k].msg);
        right += ok;
    }
    return right;
}

// Walks the corpus folder and CHECKs it: at least min_valid valid_* files, all
// open; at least min_bad bad_* files, all fail naming the file, all tabled.
static inline void corpus_check_dir(const char *dir, const expect *tab, size_t n, corpus_open_fn open_fn,
                                    corpus_close_fn close_fn, int min_valid, int min_bad) {
    DIR *d = opendir(dir);
    CHECK("corpus folder present (run from the repository root)", d != NULL);
    if (!d) return;
    int n_valid = 0, n_bad = 0, valid_ok = 0, bad_ok = 0, untabled = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        if (name[0] == '.') continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        void *h = NULL;
        keel_err e = {0};
        keel_status st = open_fn(path, &h, &e);
        if (strncmp(name, "valid_", 6) == 0) {
            n_valid++;
            valid_ok += st == KEEL_OK;
            if (st) fprintf(stderr, "FAIL %s: %s\n", name, e.msg);
        } else if (strncmp(name, "bad_", 4) == 0) {
            n_bad++;
            bad_ok += st != KEEL_OK && h == NULL && strstr(e.msg, path) != NULL;
            bool tabled = false;
            for (size_t k = 0; k < n; k++) tabled |= strcmp(tab[k].file, name) == 0;
            if (!tabled) {
                fprintf(stderr, "note: %s is not in the expectations table\n", name);
                untabled++;
            }
        }
        if (h) close_fn(h);
    }
    closedir(d);
    CHECK("valid corpus files open", n_valid >= min_valid && valid_ok == n_valid);
    CHECK("bad corpus files fail naming the file", n_bad >= min_bad && bad_ok == n_bad);
    CHECK("every bad corpus file has an expectation", untabled == 0);
}
#endif
