// SPDX-License-Identifier: MIT
// test_model.h — model helpers shared by the unit tests: load a model file
// (GGUF or an HF folder) with a thread count, printing why it failed, and the
// train-model selector that makes nothing trainable (scoring, LoRA-only runs),
// and the capability tests' SmolLM2 + ARC-Easy inputs.
#ifndef KEEL_TEST_MODEL_H
#define KEEL_TEST_MODEL_H
#include "keel.h"
#include "test.h"

#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

static inline keel_model *test_load_model(const char *path, int n_threads) {
    keel_model_params mp = keel_model_default_params();
    mp.n_threads = n_threads;
    keel_model *m = NULL;
    keel_err err;
    if (keel_model_load(path, &mp, &m, &err) != KEEL_OK) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        return NULL;
    }
    return m;
}

// (n_threads 0: all cores.)

// keel_train_select_fn: no tensor trainable.
static inline bool test_sel_none(const char *name, void *ud) {
    (void)name, (void)ud;
    return false;
}

// SmolLM2-135M-Instruct from the cache (model) and the ARC-Easy test set from
// the shared datasets (arc), each cap bytes; false, with a note on stdout, when
// either is absent (the caller skips its SmolLM2 part).
static inline bool test_smollm2_arc(char *model, char *arc, size_t cap) {
    test_cache_path(model, cap, "SmolLM2-135M-Instruct.Q4_1.gguf");
    test_shared_path(arc, cap, "datasets/arc_easy_test.jsonl");
    if (access(model, R_OK) || access(arc, R_OK)) {
        printf("SmolLM2 or ARC-Easy absent: SmolLM2 part skipped\n");
        return false;
    }
    return true;
}

// A suite of one capability "arc": the first lim ARC-Easy items at arc.
static inline void test_arc_yaml(char *y, size_t cap, const char *arc, int lim) {
    snprintf(y, cap, "capabilities:\n  - {name: arc, type: multiple_choice, task: arc_easy, data: \"%s\", limit: %d}\n",
             arc, lim);
}
#endif
