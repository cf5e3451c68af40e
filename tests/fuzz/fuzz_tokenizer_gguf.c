// SPDX-License-Identifier: MIT
// fuzz_tokenizer_gguf.c — libFuzzer target for keel_tokenizer_from_gguf
// (src/tokenizer/gguf_vocab.c) on top of the GGUF reader: the input is a
// (vocab-only) GGUF file. A failed load must say why; a successful one must
// encode and decode a fixed text with every id in range.
#include "fuzz_common.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    if (fd < 0) return 0;
    keel_err e;
    keel_gguf *g = NULL;
    keel_status st = keel_gguf_open(path, &g, &e);
    fuzz_check_err(st, &e);
    close(fd);
    if (st) return 0;
    keel_tokenizer *t = NULL;
    st = keel_tokenizer_from_gguf(g, &t, &e);
    fuzz_check_err(st, &e);
    keel_gguf_close(g); // the tokenizer must not point into the file
    if (st) {
        if (t) abort();
        return 0;
    }
    static const char text[] = "Hello, world! 123  <s>x</s><|im_end|> na\xc3\xafve \xf0\x9f\x98\x80\n";
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
    keel_chat_msg m[2] = {{"user", "hi"}, {"assistant", "yo"}};
    char *out = NULL;
    st = keel_chat_apply(t, m, 2, true, &out, &e);
    fuzz_check_err(st, &e);
    keel_free(out);
    keel_tokenizer_free(t);
    return 0;
}
