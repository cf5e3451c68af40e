// SPDX-License-Identifier: MIT
// tokenizer.h — internal tokenizer API: the constructors the model loader calls
// (from an open GGUF, or from a Hugging Face tokenizer.json +
// tokenizer_config.json), and the vocabulary structure shared by the files of
// src/tokenizer/ (vocab.c, encode.c, gguf_vocab.c, hf_json.c, chat.c). The
// public functions (keel_tokenize, keel_detokenize, keel_chat_apply, ...) are
// declared in include/keel.h. Sits above core/ and io/, below model/.
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

// Write tokenizer.json + tokenizer_config.json (atomically) into dir for a
// byte-level BPE tokenizer (hf_write.c); KEEL_ERR_UNSUPPORTED for
// SentencePiece vocabularies and pre-tokenizers it cannot express.
KEEL_INTERNAL keel_status keel_tokenizer_write_hf(const keel_tokenizer *t, const char *dir, keel_err *err);

// ---- module-private below: only src/tokenizer/*.c use these ----------------

// Token types, numbered as GGUF tokenizer.ggml.token_type (= llama.cpp's).
enum {
    KEEL_TOK_NORMAL = 1,
    KEEL_TOK_UNKNOWN = 2,
    KEEL_TOK_CONTROL = 3,      // special: matched in text only with parse_special
    KEEL_TOK_USER_DEFINED = 4, // added token: always matched in text
    KEEL_TOK_UNUSED = 5,
    KEEL_TOK_BYTE = 6,         // "<0xNN>" byte-fallback piece
};

// How a text segment becomes symbols and merges.
typedef enum keel_tok_algo {
    KEEL_TOK_ALGO_SCORE = 0, // SentencePiece BPE: merge the pair whose joined text has the best score
    KEEL_TOK_ALGO_RANK = 1,  // merges list: merge the pair with the lowest merge rank
} keel_tok_algo;

#define KEEL_TOK_MAX_PRE 8 // pre-tokenizer regex steps

typedef struct keel_tok_entry {
    uint32_t off, len;  // text in keel_tokenizer.pool (NUL-terminated there)
    float score;
    uint8_t type;       // KEEL_TOK_*
    uint8_t lstrip, rstrip; // HF added-token flags: absorb whitespace on that side
} keel_tok_entry;

struct keel_tokenizer {
    keel_tokenizer_kind kind;
    keel_tok_algo algo;
    int32_t n_vocab;
    keel_tok_entry *tok;     // (n_vocab)
    char *pool;              // all token texts, NUL-separated
    size_t pool_len, pool_cap;

    // text -> id, open addressing (capacity a power of two, -1 = empty)
    int32_t *hash;
    size_t hash_cap;

    // merge table (ALGO_RANK): key (left id, right id) -> rank, merged id
    uint64_t *mkey;          // (mcap) left << 32 | right; UINT64_MAX = empty
    int32_t *mrank, *mres;
    size_t mcap;
    int32_t n_merges;

    int32_t bos, eos, unk, pad, eot, eom; // -1 when none
    bool add_bos, add_eos;
    // SentencePiece whitespace: spaces become U+2581 and each text segment is
    // prefixed with one (when add_space_prefix); decoding maps U+2581 back and
    // drops the leading space of the decoded text.
    bool spm_space, add_space_prefix;
    bool spm_prefix_first;   // HF Metaspace prepend_scheme "first": only a segment at offset 0
    bool spm_split;          // HF Metaspace split: every "▁" starts a new word
    bool spm_metaspace;      // HF Metaspace: no prefix when the segment already starts with a space
    bool byte_level;         // GPT-2 byte <-> unicode mapping around the merges
    bool byte_fallback;      // unknown characters become <0xNN> tokens
    bool fuse_unk;           // consecutive unknowns collapse into one UNK
    bool ignore_merges;      // a whole pre-token found in the vocab is emitted as is
    int32_t byte_tok[256];   // id of "<0xNN>", -1 when absent

    // pre-tokenizer: each regex splits every current fragment, keeping the
    // matches and the text between them (HF Split, behavior "isolated")
    void *pre_re[KEEL_TOK_MAX_PRE]; // pcre2_code_8 *
    int n_pre;
    char *pre_name;          // for messages ("gpt-2", "smollm", "tokenizer.json")

    // tokens matched in raw text before the merges (CONTROL and UNKNOWN with
    // parse_special, USER_DEFINED always), longest first per leading byte
    int32_t *special;        // ids, sorted by (first byte, length desc)
    int32_t n_special;
    int32_t special_first[257]; // special[special_first[b] .. special_first[b+1]) start with byte b

    uint8_t *eog;            // (n_vocab) 1 = end of generation

    // HF post-processor TemplateProcessing: ids added around a single sequence
    int32_t *post_pre, *post_suf;
    int32_t n_post_pre, n_post_suf;
    bool has_post;           // use post_pre/post_suf instead of add_bos/add_eos

    char *chat_template;     // NULL when none
    keel_chat_format chat_fmt;
    char *chat_default_system; // ChatML templates that inject a system turn when none is given
};

// vocab.c: building
KEEL_INTERNAL keel_tokenizer *keel_tok_alloc(int32_t n_vocab);
// Set token id's text/score/type (text not NUL-terminated).
KEEL_INTERNAL bool keel_tok_set(keel_tokenizer *t, int32_t id, const char *text, size_t len,
                                float score, int type);
// After all tokens are set: build the text hash (first id wins for duplicates).
KEEL_INTERNAL bool keel_tok_build_hash(keel_tokenizer *t);
KEEL_INTERNAL int32_t keel_tok_find(const keel_tokenizer *t, const char *text, size_t len);
// Add merge (a, b) with the given rank; result = id of the text a+b. Returns
// false on OOM; *skipped when a, b or a+b is not in the vocab.
KEEL_INTERNAL bool keel_tok_add_merge(keel_tokenizer *t, int32_t a, int32_t b, int32_t rank,
                                      bool *skipped);
KEEL_INTERNAL bool keel_tok_merges_reserve(keel_tokenizer *t, size_t n);
// Compile a pre-tokenizer regex step; errors name `what`.
KEEL_INTERNAL keel_status keel_tok_add_pre(keel_tokenizer *t, const char *pattern, const char *what,
                                           keel_err *err);
// Set up the named llama.cpp pre-tokenizer (tokenizer.ggml.pre) regex list.
KEEL_INTERNAL keel_status keel_tok_set_pre_named(keel_tokenizer *t, const char *name, keel_err *err);
// Final step of every constructor: byte tokens, special-token index, EOG set,
// chat-template detection.
KEEL_INTERNAL keel_status keel_tok_finish(keel_tokenizer *t, const char *what, keel_err *err);
KEEL_INTERNAL const char *keel_tok_text(const keel_tokenizer *t, int32_t id);

// byte-level (GPT-2) mapping
KEEL_INTERNAL uint32_t keel_tok_byte_to_cp(uint8_t b);
KEEL_INTERNAL int keel_tok_cp_to_byte(uint32_t cp); // -1 if cp is not a mapped byte

// chat.c: pick the format (and default system message) from t->chat_template.
KEEL_INTERNAL keel_status keel_tok_detect_chat(keel_tokenizer *t, keel_err *err);

#endif // KEEL_TOKENIZER_H
