// SPDX-License-Identifier: MIT
// fuzz_common.h — shared by the fuzz targets: hand the input bytes to a reader
// that wants a path (a memfd, so nothing touches the disk), and a check that a
// failed open filled in its error record, and the tokenizers the text-file
// targets run with.
#ifndef KEEL_FUZZ_COMMON_H
#define KEEL_FUZZ_COMMON_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE // memfd_create
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/core.h"
#include "keel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// Write data to a fresh memfd; *path becomes "/proc/self/fd/N". Returns the fd or -1.
static inline int fuzz_memfd(const uint8_t *data, size_t size, char *path, size_t cap) {
    int fd = memfd_create("keel-fuzz", 0);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)w;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

// A failed open must say why, and the code must match the status.
static inline void fuzz_check_err(keel_status st, const keel_err *e) {
    if (st == KEEL_OK) return;
    if (e->code != st || e->msg[0] == 0) {
        fprintf(stderr, "fuzz: status %d with err code %d, message '%s'\n", (int)st, (int)e->code, e->msg);
        abort();
    }
}

// The input as a file, run through one(path, tok) with the tiny test
// tokenizer and, when the cache holds it, SmolLM2's (both loaded once; a
// missing one is left out). For the targets that read text files.
static inline int fuzz_run_tokenizers(const uint8_t *data, size_t size,
                                      void (*one)(const char *path, const keel_tokenizer *tok)) {
    static keel_tokenizer *tiny, *smol;
    static bool init;
    if (!init) {
        init = true;
        keel_err e;
        keel_tokenizer_load("tests/data/tiny-llama.gguf", &tiny, &e);
        const char *c = getenv("KEEL_CACHE"), *h = getenv("HOME");
        char p[512];
        if (c && *c) snprintf(p, sizeof p, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", c);
        else snprintf(p, sizeof p, "%s/.cache/keel/SmolLM2-135M-Instruct.Q4_1.gguf", h ? h : ".");
        keel_tokenizer_load(p, &smol, &e);
    }
    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    if (fd < 0) return 0;
    if (tiny) one(path, tiny);
    if (smol) one(path, smol);
    close(fd);
    return 0;
}

// Read every byte of a range so ASan sees any stray pointer.
static inline uint64_t fuzz_touch(const void *p, size_t n) {
    const volatile uint8_t *b = p;
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) s += b[i];
    return s;
}
#endif
