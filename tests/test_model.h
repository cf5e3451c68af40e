// SPDX-License-Identifier: MIT
// test_model.h — model helpers shared by the unit tests: load a model file
// (GGUF or an HF folder) with a thread count, printing why it failed, and the
// train-model selector that makes nothing trainable (scoring, LoRA-only runs).
#ifndef KEEL_TEST_MODEL_H
#define KEEL_TEST_MODEL_H
#include "keel.h"

#include <stdbool.h>
#include <stdio.h>

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

// keel_train_select_fn: no tensor trainable.
static inline bool test_sel_none(const char *name, void *ud) {
    (void)name, (void)ud;
    return false;
}
#endif
