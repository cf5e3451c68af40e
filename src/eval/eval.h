// SPDX-License-Identifier: MIT
// eval.h — internal helpers shared by the files of src/eval/ (inference
// context, sampling, perplexity). The public API is in include/keel.h.
#ifndef KEEL_EVAL_H
#define KEEL_EVAL_H

#include "model/model.h"

// The model a context was made for.
KEEL_INTERNAL const keel_model *keel_context_model(const keel_context *c);

// The model an adapter was loaded for, and its weights as the forward
// applies them (adapter.c).
KEEL_INTERNAL const keel_model *keel_adapter_model(const keel_adapter *a);
KEEL_INTERNAL const keel_fwd_lora *keel_adapter_fwd(const keel_adapter *a);

struct keel_train_model;
struct keel_lora;

// Greedy decoding with the training forward (adapter_eval.c): for each of the
// n_rows prompts (token ids, n_prompt[i] >= 1, special tokens already in them),
// append the argmax token until an end-of-generation token (not stored) or
// max_new tokens; out[i] (capacity max_new) receives the tokens, n_out[i] their
// count. lo: a LoRA adapter attached to tm (run without dropout), or NULL.
// keep (may be NULL) is asked after every stored token of row i (toks, n of
// them so far): false ends that row early (e.g. its text already differs from
// the expected answer). No KV cache (each token re-runs the sequence): for
// short answers.
typedef bool (*keel_greedy_keep_fn)(int32_t row, const int32_t *toks, int32_t n, void *ud);
KEEL_INTERNAL keel_status keel_train_greedy(const struct keel_train_model *tm, struct keel_lora *lo,
                                            const int32_t *const *prompts, const int32_t *n_prompt,
                                            int32_t n_rows, int32_t max_new, int32_t **out, int32_t *n_out,
                                            keel_greedy_keep_fn keep, void *ud, keel_err *err);

#endif // KEEL_EVAL_H
