// SPDX-License-Identifier: MIT
// eval.h — internal helpers shared by the files of src/eval/ (inference
// context, sampling, perplexity). The public API is in include/keel.h.
#ifndef KEEL_EVAL_H
#define KEEL_EVAL_H

#include "model/model.h"

// The model a context was made for.
KEEL_INTERNAL const keel_model *keel_context_model(const keel_context *c);

#endif // KEEL_EVAL_H
