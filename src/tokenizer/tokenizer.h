// SPDX-License-Identifier: MIT
// tokenizer.h — internal tokenizer API: constructors the model loader calls
// (from an open GGUF, or from a Hugging Face tokenizer.json +
// tokenizer_config.json). The public functions (keel_tokenize, keel_detokenize,
// keel_chat_apply, ...) are declared in include/keel.h. Sits above core/ and
// io/, below model/.
#ifndef KEEL_TOKENIZER_H
#define KEEL_TOKENIZER_H

#include "core/core.h"
#include "io/io.h"

// Build a tokenizer from the tokenizer.ggml.* keys (and tokenizer.chat_template)
// of an open GGUF. g may be closed afterwards: everything is copied.
KEEL_INTERNAL keel_status keel_tokenizer_from_gguf(const keel_gguf *g, keel_tokenizer **out,
                                                   keel_err *err);

// Build a tokenizer from a Hugging Face tokenizer.json; tokenizer_config_json_path
// (may be NULL) supplies chat_template, add_bos_token / add_eos_token and the
// bos/eos token names.
KEEL_INTERNAL keel_status keel_tokenizer_from_hf(const char *tokenizer_json_path,
                                                 const char *tokenizer_config_json_path,
                                                 keel_tokenizer **out, keel_err *err);

#endif // KEEL_TOKENIZER_H
