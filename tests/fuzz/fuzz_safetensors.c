// SPDX-License-Identifier: MIT
// fuzz_safetensors.c — libFuzzer target for the safetensors reader
// (src/io/safetensors.c): open the input, look every tensor up by name, read
// every byte of its data, and query the metadata.
#include "fuzz_common.h"
#include "io/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    if (fd < 0) return 0;
    keel_safetensors *s = NULL;
    keel_err e = {0};
    keel_status st = keel_st_open(path, &s, &e);
    fuzz_check_err(st, &e);
    if (st == KEEL_OK) {
        uint64_t sink = 0;
        int64_t n = keel_st_n_tensors(s);
        for (int64_t i = 0; i < n; i++) {
            const keel_tensor_info *t = keel_st_tensor(s, i);
            if (!t || keel_st_find_tensor(s, t->name) != t) abort();
            if (t->n_dims < 1 || t->n_dims > 4) abort();
            sink += fuzz_touch(t->data, t->nbytes);
        }
        // a missing name finds nothing (the input may well define this one)
        const keel_tensor_info *x = keel_st_find_tensor(s, "\x01 not a tensor");
        if (keel_st_tensor(s, n) || (x && strcmp(x->name, "\x01 not a tensor") != 0)) abort();
        const char *m = keel_st_metadata(s, "format");
        if (m) sink += fuzz_touch(m, strlen(m));
        (void)sink;
        keel_st_close(s);
    } else if (s) {
        abort();
    }
    close(fd);
    return 0;
}
