// SPDX-License-Identifier: MIT
// fuzz_tokenizer.c — libFuzzer target for encoding and decoding
// (src/tokenizer/encode.c, vocab.c). Two fixed vocabularies are loaded once:
// stories260K.gguf (SentencePiece, byte fallback) and ggml-vocab-gpt-2.gguf
// (byte-level BPE), from ../shared/models (KEEL_SHARED overrides); if they are
// absent the target does nothing. Each input is encoded with every
// add_special/parse_special setting and decoded again. Checked invariants:
// invalid UTF-8 is an error with a message, valid UTF-8 always encodes, ids
// are in range, and without special parsing decode(encode(x)) == x (for the
// SPM vocabulary: when x holds no U+2581, which stands for a space there).
#include "fuzz_common.h"

static keel_tokenizer *vocab[2];
static int loaded; // 0 = not tried, 1 = ok, -1 = absent

static void load_once(void) {
    if (loaded) return;
    const char *s = getenv("KEEL_SHARED");
    const char *rel[2] = {"models/stories260K/stories260K.gguf", "models/llama.cpp-vocab/ggml-vocab-gpt-2.gguf"};
    loaded = 1;
    for (int i = 0; i < 2; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", s && *s ? s : "../shared", rel[i]);
        keel_err e;
        if (keel_tokenizer_load(path, &vocab[i], &e) != KEEL_OK) loaded = -1;
    }
}

static void one(const keel_tokenizer *t, bool spm, const uint8_t *data, size_t size, bool valid) {
    for (int mode = 0; mode < 4; mode++) {
        bool add_special = mode & 1, parse_special = mode & 2;
        int32_t *ids = NULL;
        size_t n = 0;
        keel_err e;
        keel_status st = keel_tokenize(t, (const char *)data, size, add_special, parse_special, &ids, &n, &e);
        fuzz_check_err(st, &e);
        if (valid != (st == KEEL_OK)) {
            fprintf(stderr, "fuzz_tokenizer: valid=%d but status %d (%s)\n", valid, (int)st, e.msg);
            abort();
        }
        if (st) continue;
        int32_t nv = keel_tokenizer_n_vocab(t);
        for (size_t i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] >= nv) abort();
            char piece[8];
            size_t need = keel_token_to_piece(t, ids[i], parse_special, piece, sizeof piece);
            fuzz_touch(piece, need < sizeof piece ? need : sizeof piece);
        }
        char *back = NULL;
        st = keel_detokenize(t, ids, n, parse_special, &back, &e);
        fuzz_check_err(st, &e);
        if (st) abort(); // only NOMEM could fail, and the replay does not inject it
        bool check = !add_special && !parse_special &&
                     (!spm || !memmem(data, size, "\xe2\x96\x81", 3));
        if (check && (strlen(back) != size || memcmp(back, data, size) != 0)) {
            // an embedded NUL ends the C string early: compare what is there
            if (memchr(data, 0, size) == NULL) {
                fprintf(stderr, "fuzz_tokenizer: round trip differs (%zu bytes in, %zu out)\n", size, strlen(back));
                abort();
            }
        }
        keel_free(back);
        keel_free(ids);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load_once();
    if (loaded < 0) return 0;
    size_t bad;
    bool valid = keel_utf8_valid((const char *)data, size, &bad);
    one(vocab[0], true, data, size, valid);
    one(vocab[1], false, data, size, valid);
    return 0;
}
