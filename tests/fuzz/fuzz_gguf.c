// SPDX-License-Identifier: MIT
// fuzz_gguf.c — libFuzzer target for the GGUF reader (src/io/gguf.c): open the
// input, then call every accessor and getter on every key and read every byte
// of every tensor, so a bounds bug anywhere shows up under ASan.
#include "fuzz_common.h"
#include "io/io.h"

static void exercise(const keel_gguf *g) {
    uint64_t sink = 0;
    keel_err e;
    int64_t n_kv = keel_gguf_n_kv(g);
    for (int64_t i = 0; i < n_kv; i++) {
        const char *key = keel_gguf_key(g, i);
        if (!key || keel_gguf_find_key(g, key) != i) abort();
        keel_gguf_type t = keel_gguf_kv_type(g, i);
        uint32_t u32;
        int64_t i64;
        float f;
        bool b;
        const char *s;
        size_t len;
        if (keel_gguf_get_u32(g, key, false, &u32, &e) == KEEL_OK) sink += u32;
        if (keel_gguf_get_i64(g, key, false, &i64, &e) == KEEL_OK) sink += (uint64_t)i64;
        if (keel_gguf_get_f32(g, key, false, &f, &e) == KEEL_OK) sink += f > 0;
        if (keel_gguf_get_bool(g, key, false, &b, &e) == KEEL_OK) sink += b;
        if (keel_gguf_get_str(g, key, false, &s, &len, &e) == KEEL_OK) sink += fuzz_touch(s, len);
        if (t == KEEL_GGUF_STRING && keel_gguf_get_str(g, key, false, &s, &len, &e) != KEEL_OK) abort();
        if (t != KEEL_GGUF_ARRAY) continue;
        keel_gguf_type at = keel_gguf_arr_type(g, i);
        uint64_t n = keel_gguf_arr_n(g, i);
        if (at == KEEL_GGUF_STRING) {
            for (uint64_t j = 0; j < n; j++) {
                s = keel_gguf_arr_str(g, i, j, &len);
                if (!s) abort();
                sink += fuzz_touch(s, len);
            }
            if (keel_gguf_arr_str(g, i, n, &len)) abort(); // one past the end
        } else if (at != KEEL_GGUF_ARRAY) {
            static const size_t es[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
            const void *d = keel_gguf_arr_data(g, i);
            if (!d) abort();
            sink += fuzz_touch(d, (size_t)n * es[at]);
        }
    }
    if (keel_gguf_key(g, n_kv) || keel_gguf_kv_type(g, -1) != KEEL_GGUF_TYPE_COUNT) abort();
    int64_t n_t = keel_gguf_n_tensors(g);
    for (int64_t i = 0; i < n_t; i++) {
        const keel_tensor_info *t = keel_gguf_tensor(g, i);
        if (!t || keel_gguf_find_tensor(g, t->name) != t) abort();
        // the mapping is page aligned, so data is aligned as the file says
        if (keel_gguf_alignment(g) <= 4096 && (uintptr_t)t->data % keel_gguf_alignment(g) != 0) abort();
        sink += fuzz_touch(t->data, t->nbytes);
    }
    // a missing name finds nothing (the input may well define this one)
    const keel_tensor_info *x = keel_gguf_find_tensor(g, "\x01 not a tensor");
    if (keel_gguf_tensor(g, n_t) || (x && strcmp(x->name, "\x01 not a tensor") != 0)) abort();
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    if (fd < 0) return 0;
    keel_gguf *g = NULL;
    keel_err e = {0};
    keel_status st = keel_gguf_open(path, &g, &e);
    fuzz_check_err(st, &e);
    if (st == KEEL_OK) {
        exercise(g);
        keel_gguf_close(g);
    } else if (g) {
        abort(); // *out must stay NULL on failure
    }
    close(fd);
    return 0;
}
