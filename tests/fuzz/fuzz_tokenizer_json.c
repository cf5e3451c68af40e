// SPDX-License-Identifier: MIT
// fuzz_tokenizer_json.c — libFuzzer target for the tokenizer.json loader
// (src/tokenizer/hf_json.c): the input is the file. A failed load must say
// why; a successful one must encode and decode a fixed text (with specials)
// with every id in range.
#include "fuzz_common.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    if (fd < 0) return 0;
    keel_err e;
    keel_tokenizer *t = NULL;
    keel_status st = keel_tokenizer_from_hf(path, NULL, &t, &e);
    fuzz_check_err(st, &e);
    close(fd);
    if (st) {
        if (t) abort(); // *out stays NULL on failure
        return 0;
    }
    static const char text[] = "Hello, world! 123  <s>x</s> <|user|>[[x]] na\xc3\xafve \xf0\x9f\x98\x80\n";
    for (int mode = 0; mode < 4; mode++) {
        int32_t *ids = NULL;
        size_t n = 0;
        st = keel_tokenize(t, text, sizeof text - 1, mode & 1, mode & 2, &ids, &n, &e);
        fuzz_check_err(st, &e);
        for (size_t i = 0; !st && i < n; i++)
            if (ids[i] < 0 || ids[i] >= keel_tokenizer_n_vocab(t)) abort();
        char *back = NULL;
        if (!st && keel_detokenize(t, ids, n, true, &back, &e) != KEEL_OK) abort();
        keel_free(back);
        keel_free(ids);
    }
    for (int32_t i = 0; i < keel_tokenizer_n_vocab(t) && i < 4096; i++) {
        const char *s = keel_token_text(t, i);
        if (!s) abort();
        fuzz_touch(s, strlen(s));
    }
    keel_chat_msg m = {"user", "hi"};
    char *out = NULL;
    st = keel_chat_apply(t, &m, 1, true, &out, &e);
    fuzz_check_err(st, &e);
    keel_free(out);
    keel_tokenizer_free(t);
    return 0;
}
