// SPDX-License-Identifier: MIT
// fuzz_data.c — libFuzzer target for the JSONL training-data reader
// (src/data/): the input is a JSONL file, read in every format with the
// byte-level BPE tokenizer of tests/data/tiny-llama.gguf and, when the cache
// has it, SmolLM2's ChatML tokenizer (chat masks). Every example must hold
// in-range ids, 0/1 masks with the last position untrained, and sane
// segments; splitting, packing and the data-check report must not crash.
// Run from the repository root (tests/run.sh does).
#include "fuzz_common.h"

static void check_set(const keel_dataset *d, int32_t n_vocab, int32_t max_len) {
    for (int64_t i = 0; i < keel_dataset_count(d); i++) {
        keel_example x;
        if (!keel_dataset_get(d, i, &x)) abort();
        if (x.n_tokens < 0 || x.n_tokens > max_len || x.n_segments < 1) abort();
        if (x.segments[0] != 0 || x.segments[x.n_segments] != x.n_tokens) abort();
        for (int32_t s = 0; s < x.n_segments; s++) {
            if (x.segments[s + 1] < x.segments[s]) abort();
            if (x.segments[s + 1] > x.segments[s] && x.loss_mask[x.segments[s + 1] - 1]) abort();
        }
        for (int32_t k = 0; k < x.n_tokens; k++)
            if (x.tokens[k] < 0 || x.tokens[k] >= n_vocab || x.loss_mask[k] > 1) abort();
    }
}

static void run_one(const char *path, const keel_tokenizer *tok) {
    int32_t nv = keel_tokenizer_n_vocab(tok);
    for (int f = 0; f <= KEEL_DATA_ALPACA; f++) {
        keel_data_params p = keel_data_default_params();
        p.format = (keel_data_format)f;
        p.max_seq_len = 24;
        p.skip_malformed = f & 1;
        keel_dataset *d = NULL;
        keel_err e;
        keel_status st = keel_dataset_load(path, tok, &p, &d, &e);
        fuzz_check_err(st, &e);
        if (st) {
            if (d) abort();
            continue;
        }
        check_set(d, nv, 24);
        for (int64_t i = 0; i < keel_dataset_n_issues(d); i++) {
            int64_t line;
            const char *msg;
            if (!keel_dataset_issue(d, i, &line, &msg) || line < 1 || !msg[0]) abort();
        }
        keel_dataset_shuffle(d, 5);
        keel_dataset *tr = NULL, *va = NULL, *pk = NULL;
        if (keel_dataset_split(d, 0.3, 9, &tr, &va, &e) == KEEL_OK) {
            if (keel_dataset_count(tr) + keel_dataset_count(va) != keel_dataset_count(d)) abort();
            check_set(va, nv, 24);
        }
        if (keel_dataset_pack(d, 16, &pk, &e) == KEEL_OK) check_set(pk, nv, 16);
        keel_dataset_free(tr);
        keel_dataset_free(va);
        keel_dataset_free(pk);
        keel_dataset_free(d);
        keel_data_report r;
        if (keel_data_check(path, tok, &p, &r, &e) == KEEL_OK) {
            int64_t h = 0;
            for (int32_t b = 0; b < r.n_bins; b++) h += r.hist_count[b];
            if (h != r.n_examples) abort();
            keel_data_report_free(&r);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_run_tokenizers(data, size, run_one); }
