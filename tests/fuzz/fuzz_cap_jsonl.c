// SPDX-License-Identifier: MIT
// fuzz_cap_jsonl.c — libFuzzer target for capability data loading
// (src/cap/tasks.c): the input is a capability's data file, read as generic
// multiple_choice JSONL, ARC, WinoGrande and HellaSwag forms, exact_match
// JSONL and plain perplexity text, with the byte-level BPE tokenizer of
// tests/data/tiny-llama.gguf and, when the cache has it, SmolLM2's. A load
// either fails with a filled-in error and nothing kept, or gives contiguous
// requests with >= 1 continuation token, in-range ids and gold indices.
// Run from the repository root (tests/run.sh does).
#include "fuzz_common.h"

#include "cap/cap.h"

static void check(const keel_cap_data *d, int32_t nv) {
    int64_t nreq = 0;
    for (int64_t i = 0; i < d->n_items; i++) {
        const keel_cap_item *it = &d->items[i];
        if (d->spec->kind == KEEL_CAP_MULTIPLE_CHOICE) {
            if (it->req0 != nreq || it->n_req < 1 || it->gold < 0 || it->gold >= it->n_req) abort();
            nreq += it->n_req;
        }
        for (int32_t k = 0; k < it->n_prompt; k++)
            if (it->prompt[k] < 0 || it->prompt[k] >= nv) abort();
        for (int32_t k = 0; k < it->n_tokens; k++)
            if (it->tokens[k] < 0 || it->tokens[k] >= nv) abort();
        for (int32_t k = 0; k < it->n_answers; k++) fuzz_touch(it->answers[k], strlen(it->answers[k]));
    }
    if (nreq != d->n_req) abort();
    for (int64_t r = 0; r < d->n_req; r++) {
        const keel_cap_request *q = &d->req[r];
        if (q->n_ctx < 1 || q->n_cont < 1 || d->choice_len[r] < 0) abort();
        for (int32_t k = 0; k < q->n_ctx; k++)
            if (q->ctx[k] < 0 || q->ctx[k] >= nv) abort();
        for (int32_t k = 0; k < q->n_cont; k++)
            if (q->cont[k] < 0 || q->cont[k] >= nv) abort();
    }
}

static void run_one(const char *path, const keel_tokenizer *tok) {
    static const struct { keel_cap_kind kind; keel_cap_task task; } forms[] = {
        {KEEL_CAP_MULTIPLE_CHOICE, KEEL_CAP_TASK_JSONL},      {KEEL_CAP_MULTIPLE_CHOICE, KEEL_CAP_TASK_ARC_EASY},
        {KEEL_CAP_MULTIPLE_CHOICE, KEEL_CAP_TASK_WINOGRANDE}, {KEEL_CAP_MULTIPLE_CHOICE, KEEL_CAP_TASK_HELLASWAG},
        {KEEL_CAP_EXACT_MATCH, KEEL_CAP_TASK_JSONL},          {KEEL_CAP_PERPLEXITY, KEEL_CAP_TASK_TEXT},
    };
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        keel_cap_spec s;
        memset(&s, 0, sizeof s);
        s.name = (char *)"fuzz";
        s.kind = forms[f].kind;
        s.task = forms[f].task;
        s.data = (char *)path;
        s.chat = -1;
        s.decide = -1;
        s.norm_case = s.norm_space = s.norm_punct = true;
        s.limit = f & 1 ? 3 : 0;
        keel_cap_data d;
        keel_err e;
        keel_status st = keel_cap_data_load(&d, &s, tok, &e);
        fuzz_check_err(st, &e);
        if (st) {
            if (d.items || d.req || d.choice_len || d.n_items || d.n_req) abort();
            continue;
        }
        if (d.n_items < 1 || (s.limit && d.n_items > s.limit)) abort();
        check(&d, keel_tokenizer_n_vocab(tok));
        keel_cap_data_free(&d);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_run_tokenizers(data, size, run_one); }
