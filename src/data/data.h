// SPDX-License-Identifier: MIT
// data.h — internal side of the training-data layer (public API: the
// "training data" section of include/keel.h). jsonl.c splits a JSONL file into
// lines and parses each with cJSON; format.c turns one JSON object into token
// ids + targets for its format; dataset.c stores examples, shuffles, splits
// and packs them; check.c builds the `keel data check` report.
// Sits above core/ and the public tokenizer API; below train/ and cli/.
#ifndef KEEL_DATA_H
#define KEEL_DATA_H

#include "core/core.h"

#include <cjson/cJSON.h>

// One example (or packed sequence) inside a dataset's shared arrays.
typedef struct keel_data_ex {
    size_t off;        // first token in d->tok / d->mask
    int32_t n;         // tokens
    int32_t n_full;    // tokens before truncation
    size_t seg_off;    // first of its n_seg + 1 offsets in d->seg
    int32_t n_seg;
    int64_t line;      // 1-based source line
    uint64_t hash;     // FNV-1a of the normalized content (dedup)
} keel_data_ex;

typedef struct keel_data_issue {
    int64_t line;
    char *msg;
} keel_data_issue;

struct keel_dataset {
    keel_data_format format;
    int32_t *tok;
    uint8_t *mask;
    size_t n_tok, cap_tok;
    keel_data_ex *ex;
    int64_t n_ex, cap_ex;
    int32_t *seg;
    size_t n_seg, cap_seg;
    int64_t *order;        // current order: indices into ex
    keel_data_issue *iss;
    int64_t n_iss, cap_iss;
    int64_t n_lines;       // non-blank lines read
};

// ---- jsonl.c ----------------------------------------------------------------

// Iterate over the lines of a buffer. Returns false at the end; blank lines
// (only spaces, tabs, CR) are skipped but counted. *line is 1-based.
typedef struct keel_jsonl_iter {
    const char *p, *end;
    int64_t line;
} keel_jsonl_iter;
KEEL_INTERNAL bool keel_jsonl_next(keel_jsonl_iter *it, const char **s, size_t *n, int64_t *line);

// Parse one line into a JSON object. On failure returns NULL and writes the
// reason ("invalid UTF-8 at byte 7", "invalid JSON at byte 12", "not a JSON
// object") into why.
KEEL_INTERNAL cJSON *keel_jsonl_parse(const char *s, size_t n, char *why, size_t cap);

// ---- format.c ---------------------------------------------------------------

// An example being built: tokens and per-token target flags (tgt[j] = 1:
// token j is predicted and trained). Converted to the position-wise loss
// mask (mask[i] = tgt[i + 1]) when stored.
typedef struct keel_data_seq {
    int32_t *tok;
    uint8_t *tgt;
    size_t n, cap;
    uint64_t hash;
} keel_data_seq;
KEEL_INTERNAL void keel_data_seq_free(keel_data_seq *s);

// The format a JSON object's keys suggest; KEEL_DATA_AUTO when none.
KEEL_INTERNAL keel_data_format keel_data_detect(const cJSON *obj);

// Render obj in format fmt with tok into s (reset first). KEEL_ERR_FORMAT
// with a reason (no file/line) for a malformed example; KEEL_ERR_NOMEM.
KEEL_INTERNAL keel_status keel_data_render(const keel_tokenizer *tok, keel_data_format fmt,
                                           const cJSON *obj, keel_data_seq *s, keel_err *err);

// The Stanford Alpaca prompt for an instruction and an optional input
// (NULL or "" = the no-input variant); heap string.
KEEL_INTERNAL char *keel_data_alpaca_prompt(const char *instruction, const char *input);

// ---- dataset.c --------------------------------------------------------------

KEEL_INTERNAL keel_dataset *keel_dataset_new(keel_data_format fmt);
// Append one example (tokens, position-wise mask, segments {0, n}).
KEEL_INTERNAL bool keel_dataset_push(keel_dataset *d, const int32_t *tok, const uint8_t *mask, int32_t n,
                                     int32_t n_full, int64_t line, uint64_t hash);
KEEL_INTERNAL bool keel_dataset_add_issue(keel_dataset *d, int64_t line, const char *msg);

#endif // KEEL_DATA_H
