// SPDX-License-Identifier: MIT
// fuzz_main.c — replays fuzz inputs without libFuzzer (after stb's fuzz_main.c):
// `fuzz_X DIR_OR_FILE` feeds every regular file (one level deep) to
// LLVMFuzzerTestOneInput and prints "replayed N files". A crash or sanitizer
// report fails the run; tests/run.sh replays tests/fuzz/corpus/<target>/.
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_main: cannot open %s\n", path);
        return -1;
    }
    size_t cap = 4096, n = 0, r;
    uint8_t *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            uint8_t *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "fuzz_main: out of memory reading %s\n", path);
        return -1;
    }
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE\n", argv[0]);
        return 2;
    }
    struct stat st;
    if (stat(argv[1], &st) != 0) {
        fprintf(stderr, "fuzz_main: %s does not exist\n", argv[1]);
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (replay(argv[1]) != 0) return 1;
        printf("replayed 1 files\n");
        return 0;
    }
    DIR *d = opendir(argv[1]);
    if (!d) {
        fprintf(stderr, "fuzz_main: cannot read %s\n", argv[1]);
        return 1;
    }
    // sorted, so a failing run is reproducible file by file
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) return 1;
            names = nn;
        }
        size_t len = strlen(argv[1]) + strlen(de->d_name) + 2;
        if (!(names[n] = malloc(len))) return 1;
        snprintf(names[n], len, "%s/%s", argv[1], de->d_name);
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    size_t done = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat fs;
        if (stat(names[i], &fs) == 0 && S_ISREG(fs.st_mode)) {
            if (replay(names[i]) != 0) rc = 1;
            else done++;
        }
        free(names[i]);
    }
    free(names);
    printf("replayed %zu files\n", done);
    return rc;
}
