// SPDX-License-Identifier: MIT
// keel.h — the one public header of libkeel, a fine-tuning engine for LLMs.
//
// Usage (error handling trimmed):
//
//   keel_err err;
//   keel_model *m = NULL;
//   keel_model_params mp = keel_model_default_params();
//   if (keel_model_load("model.gguf", &mp, &m, &err) != KEEL_OK) {
//       fprintf(stderr, "%s\n", err.msg);   // names the file and the problem
//       return 1;
//   }
//   const keel_tokenizer *tok = keel_model_tokenizer(m);
//   int32_t *ids = NULL; size_t n = 0;
//   keel_tokenize(tok, "Hello", 5, true, false, &ids, &n, &err);
//   keel_context *ctx = NULL;
//   keel_context_init(m, 512, &ctx, &err);
//   float *logits = malloc(sizeof(float) * keel_model_describe(m)->n_vocab);
//   keel_eval(ctx, ids, (int32_t)n, 0, logits, KEEL_LOGITS_LAST, &err);
//   ...
//   keel_free(ids); keel_context_free(ctx); keel_model_free(m);
//
// Conventions: every fallible call returns keel_status and, when err is not
// NULL, fills it with a message that names the file/field and the problem.
// Destructors accept NULL. Memory returned through `T **out` parameters is
// owned by the caller and released with keel_free() unless said otherwise.
#ifndef KEEL_H
#define KEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KEEL_API __attribute__((visibility("default")))
#else
#define KEEL_API
#endif

#define KEEL_VERSION "0.1.0"

// ---------------------------------------------------------------- errors

typedef enum keel_status {
    KEEL_OK = 0,
    KEEL_ERR_NOMEM,       // an allocation failed
    KEEL_ERR_IO,          // open/read/write/mmap failed (message has strerror)
    KEEL_ERR_FORMAT,      // a file is malformed (truncated, bad magic, bad offset, ...)
    KEEL_ERR_UNSUPPORTED, // well-formed but not supported (tensor type, architecture, version)
    KEEL_ERR_INVALID,     // a caller or user argument is invalid
} keel_status;

typedef struct keel_err {
    keel_status code;
    char msg[512];     // human-readable, names the file/key/line where it can
    const char *file;  // source location that raised it (for bug reports)
    int line;
} keel_err;

// Static string for a status code ("ok", "out of memory", ...).
KEEL_API const char *keel_status_str(keel_status s);

// Release memory that keel handed to the caller (token arrays, strings).
KEEL_API void keel_free(void *p);

// ---------------------------------------------------------------- tensors

// Storage types. Values equal GGML's type ids so GGUF files map directly.
// Add values at the end only.
typedef enum keel_dtype {
    KEEL_DTYPE_F32 = 0,
    KEEL_DTYPE_F16 = 1,
    KEEL_DTYPE_Q4_0 = 2,
    KEEL_DTYPE_Q4_1 = 3,
    KEEL_DTYPE_Q8_0 = 8,
    KEEL_DTYPE_BF16 = 30,
} keel_dtype;

// "F32", "Q4_1", ...; "?" for an unknown value.
KEEL_API const char *keel_dtype_name(keel_dtype t);

// A tensor as stored in a model file. ne[0] is the innermost (contiguous)
// dimension, GGUF order: a (out, in) PyTorch weight has ne = {in, out}.
typedef struct keel_tensor_desc {
    const char *name; // valid while the model lives
    keel_dtype type;
    int32_t n_dims;
    int64_t ne[4];    // unused dims are 1
    size_t nbytes;
} keel_tensor_desc;

// ---------------------------------------------------------------- model

typedef struct keel_model keel_model;

// How the batched matmuls (prompt processing and perplexity: more than one
// token per keel_eval) multiply; decoding one token is always fp32. The bf16
// modes need AMX-BF16 (Intel Xeon 4th gen and later, Linux 5.16+); without it
// they run as FP32. Measured on SmolLM2-135M (bench/README.md): BF16X3 logits
// within 4e-5 of FP32 (max |diff| / max |logit|), same perplexity; BF16
// within 2e-2, perplexity +0.1%. Decoding and batched evaluation then differ
// by that much, where in FP32 they agree to float rounding.
typedef enum keel_matmul_precision {
    KEEL_MATMUL_FP32 = 0,   // the default: fp32 products and sums (FMA)
    KEEL_MATMUL_BF16X3 = 1, // AMX: each value split into two bf16 (hi + lo), three tile
                            // products: ~16 significant bits per product, fp32 sums
    KEEL_MATMUL_BF16 = 2,   // AMX: weights and activations rounded to bf16 (8 bits),
                            // fp32 sums; fastest, least accurate
} keel_matmul_precision;

typedef struct keel_model_params {
    int32_t n_threads; // 0 = all cores
    keel_matmul_precision matmul_precision; // KEEL_MATMUL_FP32 by default
} keel_model_params;

KEEL_API keel_model_params keel_model_default_params(void);

// Load a model: a .gguf file, or a Hugging Face directory holding
// config.json, *.safetensors (single or sharded) and tokenizer.json.
// Weights are mmap'd read-only and never copied. On failure *out is NULL.
KEEL_API keel_status keel_model_load(const char *path, const keel_model_params *p,
                                     keel_model **out, keel_err *err);
KEEL_API void keel_model_free(keel_model *m);

typedef struct keel_model_desc {
    const char *arch;     // "llama"
    const char *name;     // general.name or the directory name
    const char *format;   // "GGUF v3", "safetensors"
    int32_t n_vocab;
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t n_ff;
    int32_t n_ctx_train;
    int32_t n_rot;        // rotary dims per head
    float rope_theta;
    float norm_eps;
    bool tied_output;     // lm head shares the token embedding
    int64_t n_params;     // total elements over all tensors
    size_t n_bytes;       // total stored bytes over all tensors
} keel_model_desc;

// Valid while m lives.
KEEL_API const keel_model_desc *keel_model_describe(const keel_model *m);
KEEL_API int64_t keel_model_n_tensors(const keel_model *m);
// i in [0, n_tensors). Returns false when out of range.
KEEL_API bool keel_model_tensor(const keel_model *m, int64_t i, keel_tensor_desc *out);

// ---------------------------------------------------------------- tokenizer

typedef struct keel_tokenizer keel_tokenizer;

typedef enum keel_tokenizer_kind {
    KEEL_TOKENIZER_SPM = 0, // SentencePiece-style BPE with scores (GGUF "llama")
    KEEL_TOKENIZER_BPE = 1, // byte-level BPE with merges (GGUF "gpt2", HF ByteLevel)
} keel_tokenizer_kind;

// The model's tokenizer; valid while the model lives.
KEEL_API const keel_tokenizer *keel_model_tokenizer(const keel_model *m);

// Load a tokenizer without weights: a (vocab-only) .gguf or a tokenizer.json.
KEEL_API keel_status keel_tokenizer_load(const char *path, keel_tokenizer **out, keel_err *err);
KEEL_API void keel_tokenizer_free(keel_tokenizer *t);

KEEL_API keel_tokenizer_kind keel_tokenizer_get_kind(const keel_tokenizer *t);
KEEL_API int32_t keel_tokenizer_n_vocab(const keel_tokenizer *t);
KEEL_API int32_t keel_token_bos(const keel_tokenizer *t); // -1 when none
KEEL_API int32_t keel_token_eos(const keel_tokenizer *t); // -1 when none
// End-of-generation: EOS, or a turn terminator such as <|im_end|> / <|eot_id|>.
KEEL_API bool keel_token_is_eog(const keel_tokenizer *t, int32_t id);
// The stored piece text of a token (e.g. "▁the", "<0x0A>", "Ġthe"); NULL if out of range.
KEEL_API const char *keel_token_text(const keel_tokenizer *t, int32_t id);

// Encode UTF-8 text. add_special: add BOS/EOS as the tokenizer's rules say.
// parse_special: recognise special/added tokens written in the text.
// Invalid UTF-8 is an error. *ids is allocated (keel_free).
KEEL_API keel_status keel_tokenize(const keel_tokenizer *t, const char *text, size_t len,
                                   bool add_special, bool parse_special,
                                   int32_t **ids, size_t *n_ids, keel_err *err);

// Decode one token to bytes as it appears in text (byte tokens become raw
// bytes, "▁" becomes a space, byte-level BPE is unmapped). Control tokens
// decode to "" unless render_special. Returns the byte length; writes at most
// cap bytes (no NUL). A return > cap means buf was too small.
KEEL_API size_t keel_token_to_piece(const keel_tokenizer *t, int32_t id, bool render_special,
                                    char *buf, size_t cap);

// Decode a sequence to a NUL-terminated string (keel_free). Follows the
// tokenizer's rules for the leading space of SentencePiece vocabularies.
KEEL_API keel_status keel_detokenize(const keel_tokenizer *t, const int32_t *ids, size_t n,
                                     bool render_special, char **out, keel_err *err);

// ---------------------------------------------------------------- chat

typedef enum keel_chat_format {
    KEEL_CHAT_NONE = 0,  // the model has no known template
    KEEL_CHAT_CHATML,    // <|im_start|>role\n...<|im_end|>\n (SmolLM2, Qwen)
    KEEL_CHAT_LLAMA2,    // <s>[INST] <<SYS>>...<</SYS>> ... [/INST]
} keel_chat_format;

typedef struct keel_chat_msg {
    const char *role;    // "system", "user", "assistant"
    const char *content;
} keel_chat_msg;

// Chosen from the model's chat template metadata.
KEEL_API keel_chat_format keel_tokenizer_chat_format(const keel_tokenizer *t);
KEEL_API bool keel_tokenizer_has_chat_template(const keel_tokenizer *t);
KEEL_API const char *keel_chat_format_name(keel_chat_format f);

// Render messages as the template does; add_assistant appends the opening of
// an assistant turn. *out is a NUL-terminated string (keel_free); it contains
// special tokens as text, to be tokenized with parse_special = true.
KEEL_API keel_status keel_chat_apply(const keel_tokenizer *t, const keel_chat_msg *msgs, size_t n,
                                     bool add_assistant, char **out, keel_err *err);

// ---------------------------------------------------------------- inference

typedef struct keel_context keel_context; // a KV cache + scratch for one sequence

// n_ctx: positions the KV cache holds (0 = the model's training context).
KEEL_API keel_status keel_context_init(const keel_model *m, int32_t n_ctx, keel_context **out,
                                       keel_err *err);
KEEL_API void keel_context_free(keel_context *c);
KEEL_API int32_t keel_context_n_ctx(const keel_context *c);

typedef enum keel_logits_mode {
    KEEL_LOGITS_LAST = 0, // logits of the last token only: (n_vocab)
    KEEL_LOGITS_ALL = 1,  // logits of every token: (n, n_vocab)
} keel_logits_mode;

// Run tokens[0..n) at positions pos..pos+n-1, attending to the cached
// positions [0, pos). Entries at >= pos are overwritten. logits may be NULL.
KEEL_API keel_status keel_eval(keel_context *c, const int32_t *tokens, int32_t n, int32_t pos,
                               float *logits, keel_logits_mode mode, keel_err *err);

// A LoRA adapter applied by the inference path (keel_eval, perplexity,
// generation): every adapted linear computes y = x W^T + s (x A^T) B^T in
// fp32, s = lora_alpha / r (or / sqrt(r) with use_rslora), the same function
// PEFT computes and keel's trainer trains.
typedef struct keel_adapter keel_adapter;

// Load a PEFT LoRA directory (adapter_config.json + adapter_model.safetensors,
// as keel's trainer and PEFT's save_pretrained write it; tensors F32/F16/BF16)
// for model m, which must outlive it. B's q/k rows are permuted to GGUF's row
// order for a GGUF base, so one adapter serves the HF and the GGUF file of a
// model. Errors name the file and the key/tensor: KEEL_ERR_IO (missing
// directory or file), KEEL_ERR_FORMAT (bad JSON, a tensor that is not a
// projection of this model, shapes that do not match the model and r, options
// keel does not implement). On failure *out is NULL.
KEEL_API keel_status keel_adapter_load(const keel_model *m, const char *dir, keel_adapter **out,
                                       keel_err *err);
KEEL_API void keel_adapter_free(keel_adapter *a);

// Apply a (loaded for this context's model) to every following keel_eval /
// keel_perplexity on c; NULL removes it. a must outlive its use by c. The
// keys and values already cached were computed with the previous setting, so
// call this before evaluating: the next keel_eval should start at pos 0.
// KEEL_ERR_INVALID when a belongs to another model; KEEL_ERR_NOMEM.
KEEL_API keel_status keel_context_set_adapter(keel_context *c, const keel_adapter *a, keel_err *err);

// What a checkpoint path (e.g. from keel_registry_resolve) holds, as a command
// loads it: a model (a .gguf file, or a directory with config.json: a full
// fine-tuning checkpoint or a base) -> *model = path, *adapter = NULL; a LoRA
// adapter (a directory with adapter_config.json) -> *adapter = path and
// *model = its base: `base` when not NULL (the caller's choice, e.g. -m), else
// adapter_config.json's base_model_name_or_path when that path exists, else
// the model of the run's job.yaml (path/../../job.yaml, a keel run's
// RUN/checkpoints/step-N). *model, *adapter: keel_free. Errors: KEEL_ERR_IO
// (path or base missing), KEEL_ERR_FORMAT (neither kind), KEEL_ERR_INVALID
// (an adapter whose base cannot be found: pass base).
KEEL_API keel_status keel_checkpoint_model(const char *path, const char *base, char **model, char **adapter,
                                           keel_err *err);

// ---------------------------------------------------------------- sampling

typedef struct keel_sampler keel_sampler;

typedef struct keel_sampler_params {
    float temp;     // <= 0: greedy (argmax)
    int32_t top_k;  // <= 0: off
    float top_p;    // >= 1: off
    uint64_t seed;
} keel_sampler_params;

KEEL_API keel_sampler_params keel_sampler_default_params(void);
KEEL_API keel_sampler *keel_sampler_init(const keel_sampler_params *p); // NULL on OOM
KEEL_API void keel_sampler_free(keel_sampler *s);
// Pick a token from logits (n_vocab). Deterministic for a given seed.
KEEL_API int32_t keel_sampler_sample(keel_sampler *s, const float *logits, int32_t n_vocab);

// ---------------------------------------------------------------- perplexity

typedef struct keel_ppl_result {
    double ppl;       // exp(mean NLL)
    double nll_mean;  // nats per scored token
    double nll_stderr;// standard error of the mean NLL
    int64_t n_scored; // tokens scored
    int32_t n_chunks; // windows evaluated
} keel_ppl_result;

typedef void (*keel_ppl_progress)(int32_t chunk, int32_t n_chunks, double ppl_so_far, void *ud);

// llama.cpp's llama-perplexity method: the tokens are cut into
// floor(n / n_ctx) windows of n_ctx tokens, the first token of each window is
// replaced by BOS when the tokenizer adds one, and only the second half of
// each window is scored. Needs a context with n_ctx >= the window.
KEEL_API keel_status keel_perplexity(keel_context *c, const int32_t *tokens, size_t n,
                                     int32_t n_window, keel_ppl_progress cb, void *ud,
                                     keel_ppl_result *out, keel_err *err);

// ---------------------------------------------------------------- training data
//
// JSONL training data (one JSON object per line; blank lines skipped), one
// of four formats:
//   text               {"text": "..."}                        loss on every token
//   prompt_completion  {"prompt": "...", "completion": "..."} loss on the completion + EOS
//   chat               {"messages": [{"role", "content"}...]} rendered with the model's
//                      chat template; loss on assistant turns (through their end-of-turn token)
//   alpaca             {"instruction", "input"?, "output"}    Stanford Alpaca prompt; loss on
//                      the output + EOS
// Every example becomes token ids and a loss mask: loss_mask[i] = 1 when the
// prediction made at position i (of tokens[i + 1]) counts; loss_mask[n - 1]
// is always 0. Details and the chat masking method: docs/job.md.

typedef enum keel_data_format {
    KEEL_DATA_AUTO = 0,              // decided by the first valid line's keys
    KEEL_DATA_TEXT = 1,
    KEEL_DATA_PROMPT_COMPLETION = 2,
    KEEL_DATA_CHAT = 3,
    KEEL_DATA_ALPACA = 4,
} keel_data_format;

typedef struct keel_data_params {
    keel_data_format format; // KEEL_DATA_AUTO
    int32_t max_seq_len;     // 512; longer examples are cut to this many tokens
    bool skip_malformed;     // false: the first malformed line fails the load;
                             // true: malformed lines are recorded as issues and skipped
} keel_data_params;

KEEL_API keel_data_params keel_data_default_params(void);
// "auto", "text", "prompt_completion", "chat", "alpaca"; "?" when out of range.
KEEL_API const char *keel_data_format_name(keel_data_format f);

// A set of tokenized examples, or of packed sequences. Read-only once built
// (load, split, pack): count/get/issue may be called from several threads at
// once; shuffle changes the order and must not run alongside them.
typedef struct keel_dataset keel_dataset;

// One example or packed sequence; pointers are valid while the dataset lives.
// A packed sequence holds n_segments examples back to back; segment s covers
// tokens [segments[s], segments[s + 1]) and must not attend outside itself:
// position ids restart at 0 at every segment start (block-diagonal causal
// mask). An unpacked example has n_segments = 1, segments = {0, n_tokens}.
typedef struct keel_example {
    const int32_t *tokens;
    const uint8_t *loss_mask;  // see above; 0 at the last position of every segment
    int32_t n_tokens;
    int32_t n_segments;
    const int32_t *segments;   // n_segments + 1 offsets
    int64_t line;              // 1-based JSONL line (of the first segment when packed)
    int32_t n_tokens_full;     // length before truncation (sum over segments)
} keel_example;

// Read and tokenize a JSONL file with tok (not owned; must outlive the call
// only). A malformed line (bad JSON, missing field, wrong type, invalid
// UTF-8, no assistant turn) fails with KEEL_ERR_FORMAT "FILE:LINE: reason"
// unless p->skip_malformed. On failure *out is NULL.
KEEL_API keel_status keel_dataset_load(const char *path, const keel_tokenizer *tok,
                                       const keel_data_params *p, keel_dataset **out,
                                       keel_err *err);
KEEL_API void keel_dataset_free(keel_dataset *d);
KEEL_API int64_t keel_dataset_count(const keel_dataset *d);
// The i-th example in the current order; false when i is out of range.
KEEL_API bool keel_dataset_get(const keel_dataset *d, int64_t i, keel_example *out);
// The format used (the detected one for KEEL_DATA_AUTO).
KEEL_API keel_data_format keel_dataset_format(const keel_dataset *d);
// Malformed lines recorded with skip_malformed: i-th issue's line and
// message (valid while d lives); false when out of range.
KEEL_API int64_t keel_dataset_n_issues(const keel_dataset *d);
KEEL_API bool keel_dataset_issue(const keel_dataset *d, int64_t i, int64_t *line, const char **msg);

// Permute the example order with a seeded Fisher-Yates shuffle (keel's
// xoshiro256** generator): the same seed gives the same order everywhere.
KEEL_API void keel_dataset_shuffle(keel_dataset *d, uint64_t seed);
// Split off a validation set: round(fraction * n) examples (at least 1 when
// fraction > 0 and n >= 2, never all) picked by a seeded shuffle. Both
// outputs keep file order; d is not changed. fraction in [0, 1).
KEEL_API keel_status keel_dataset_split(const keel_dataset *d, double fraction, uint64_t seed,
                                        keel_dataset **train, keel_dataset **val, keel_err *err);
// Pack the examples of d, in its current order, greedily into sequences of
// at most seq_len tokens (an example never straddles two sequences; one
// longer than seq_len is cut to it). The segments of an already packed d are
// packed as separate examples. On failure *out is NULL.
KEEL_API keel_status keel_dataset_pack(const keel_dataset *d, int32_t seq_len, keel_dataset **out,
                                       keel_err *err);

#define KEEL_DATA_HIST_BINS 12

// What `keel data check` reports. Arrays are owned by the report.
typedef struct keel_data_report {
    keel_data_format format;
    int64_t n_lines;          // non-blank lines
    int64_t n_examples;       // well-formed examples
    int64_t n_tokens;         // after truncation
    int64_t n_trained;        // positions whose loss counts
    int32_t min_len, max_len; // before truncation
    double mean_len;
    int32_t hist_lo[KEEL_DATA_HIST_BINS], hist_hi[KEEL_DATA_HIST_BINS]; // inclusive bounds
    int64_t hist_count[KEEL_DATA_HIST_BINS];
    int32_t n_bins;
    int64_t n_over;           // examples longer than max_seq_len (truncated)
    int64_t *over_lines;      // their lines, in file order (all n_over of them)
    // Exact duplicates: groups of >= 2 lines with equal normalized content
    // (fields trimmed, whitespace runs collapsed, 64-bit FNV-1a hash).
    int64_t n_dup_groups;
    int64_t *dup_off;         // n_dup_groups + 1 offsets into dup_lines
    int64_t *dup_lines;
    int64_t n_malformed;
    int64_t *bad_lines;       // n_malformed lines and their reasons
    char **bad_msgs;
} keel_data_report;

// Load path with p->skip_malformed forced on and fill *out. Fails only on
// I/O, memory or arguments (malformed lines are part of the report).
KEEL_API keel_status keel_data_check(const char *path, const keel_tokenizer *tok,
                                     const keel_data_params *p, keel_data_report *out,
                                     keel_err *err);
KEEL_API void keel_data_report_free(keel_data_report *r);

// ---------------------------------------------------------------- jobs

// Read a training job (YAML; every key, default and constraint: docs/job.md),
// apply the overrides sets[0..n_sets) ("train.lr=1e-4", each read as a YAML
// value of the key's type) in order, check it, and return the resolved job
// as YAML (every key, defaults filled) in *yaml (keel_free). Errors:
// KEEL_ERR_INVALID "FILE:LINE:COL: key 'train.lr': ..." (or "--set K=V: key
// 'K': ...") for unknown keys, wrong types and impossible values (including
// the `capabilities:` list and the `monitor:` section of the capability
// ledger, docs/eval.md); KEEL_ERR_IO when the file cannot be read. On
// failure *yaml is NULL.
KEEL_API keel_status keel_job_resolve(const char *path, const char *const *sets, int32_t n_sets,
                                      char **yaml, keel_err *err);

// ---------------------------------------------------------------- capabilities
//
// A capability is data + metric: perplexity on text, exact match of greedy
// answers, multiple choice by log-likelihood (scored as lm-evaluation-harness
// scores its 0-shot tasks: acc and acc_norm), or a probe (pass rate of
// generations against a pattern). A suite is a list of them: the
// `capabilities:` list of a job, or a suite file holding only that list.
// Every score comes with n and a 95% confidence interval (Wilson for rates,
// bootstrap over documents for perplexity). Keys and data formats: docs/eval.md.

typedef struct keel_suite keel_suite;

// Read a suite file (YAML with one `capabilities:` list). Errors name
// FILE:LINE:COL and the key, as job files do. On failure *out is NULL.
KEEL_API keel_status keel_suite_load(const char *path, keel_suite **out, keel_err *err);
KEEL_API void keel_suite_free(keel_suite *s);
KEEL_API int32_t keel_suite_count(const keel_suite *s);
// The name of capability i (0 <= i < count), NULL when out of range.
KEEL_API const char *keel_suite_name(const keel_suite *s, int32_t i);

typedef struct keel_cap_result {
    char name[64];        // the capability's name
    char kind[24];        // "perplexity", "exact_match", "multiple_choice", "probe"
    char metric[24];      // the metric bounds apply to: "ppl", "acc", "acc_norm",
                          // "exact_match", "pass_rate"
    double value;         // point estimate (rates in [0, 1])
    double lo, hi;        // 95% confidence interval
    double se;            // standard error of value (rates: sqrt(p(1-p)/n); ppl: bootstrap sd)
    int64_t n;            // items scored (documents for perplexity)
    int64_t n_tokens;     // perplexity: tokens scored; else 0
    bool higher_is_better;// false for ppl
    char metric2[24];     // multiple_choice: the other of acc / acc_norm; else ""
    double value2, lo2, hi2;
    double seconds;       // wall time spent scoring it
} keel_cap_result;

typedef struct keel_eval_opts {
    const char *adapter;  // a PEFT adapter directory applied on the model (NULL: none)
    int64_t limit;        // > 0: at most this many items per capability (0: as the suite says)
    int32_t n_threads;    // 0: all cores
    uint64_t seed;        // bootstrap seed (0 by default)
    // Called after each batch (may be NULL): capability index, items done, items total.
    void (*progress)(int32_t cap, int64_t done, int64_t total, void *ud);
    void *ud;
} keel_eval_opts;

KEEL_API keel_eval_opts keel_eval_default_opts(void);

// Score every capability of s on model (a .gguf file or HF directory, e.g. a
// full fine-tuning checkpoint), with o->adapter applied when set. out holds
// keel_suite_count(s) results in suite order.
KEEL_API keel_status keel_suite_eval(const char *model, const keel_suite *s, const keel_eval_opts *o,
                                     keel_cap_result *out, keel_err *err);

// Results as JSON (an array of objects with every field) or as a text table
// (one row per capability: name, metric, value, CI, n). *out: keel_free.
KEEL_API keel_status keel_cap_results_json(const keel_cap_result *r, int32_t n, char **out, keel_err *err);
KEEL_API keel_status keel_cap_results_table(const keel_cap_result *r, int32_t n, char **out, keel_err *err);

// ---------------------------------------------------------------- registry
//
// One SQLite database (keel.db in the project directory by default) records
// every run: its resolved job, its checkpoints (path, SHA-256 of the files,
// parent, step), every capability measurement, every ledger decision, and
// which checkpoint of a run is active. It stays consistent through kill -9
// (one transaction per record; a checkpoint is recorded only after its
// directory is complete on disk). References: a run is its number ("3"), its
// run directory, or its name (the run directory's last component); a
// checkpoint is "RUN@step-N" (or "RUN@base") or its directory path.
// Tables and commands: docs/registry.md.

typedef struct keel_registry keel_registry;

// Open (creating when absent) the registry at path.
KEEL_API keel_status keel_registry_open(const char *path, keel_registry **out, keel_err *err);
KEEL_API void keel_registry_close(keel_registry *r);

// Reports as text for the CLI (*out: keel_free).
// runs: one line per run (id, name, model, method, status, steps, active checkpoint, when).
KEEL_API keel_status keel_registry_runs(keel_registry *r, char **out, keel_err *err);
// show: a run (ledger table base -> latest with CIs, bounds, decisions, checkpoints
// with lineage) or one checkpoint (its scores, SHA-256, parent chain).
KEEL_API keel_status keel_registry_show(keel_registry *r, const char *ref, char **out, keel_err *err);
// diff: the capabilities of two checkpoints (or runs: their active checkpoints) side by
// side with deltas and whether each difference is significant at 95%.
KEEL_API keel_status keel_registry_diff(keel_registry *r, const char *a, const char *b, char **out,
                                        keel_err *err);
// Make a checkpoint of a run the active one (to NULL: the last checkpoint that
// satisfied every bound). path (may be NULL) receives its directory.
KEEL_API keel_status keel_registry_rollback(keel_registry *r, const char *run, const char *to, char *path,
                                            size_t cap, keel_err *err);
// The directory of a checkpoint reference, or of a run's active checkpoint.
KEEL_API keel_status keel_registry_resolve(keel_registry *r, const char *ref, char *path, size_t cap,
                                           keel_err *err);
// Verify the registry against the files: database integrity, every listed
// checkpoint present, loadable and matching its SHA-256, parents and active
// pointers valid. *n_problems = problems found; *out a report.
KEEL_API keel_status keel_registry_fsck(keel_registry *r, char **out, int64_t *n_problems, keel_err *err);

// ---------------------------------------------------------------- training
//
// `keel train`: run a job (YAML, docs/job.md) end to end. The run directory
// (output.dir) receives the resolved job.yaml, metrics.jsonl (one JSON
// object per optimizer step, appended and flushed) and checkpoints/step-N/
// (every output.save_every steps and at the end; each file and the directory
// itself appear atomically). Full fine-tuning writes model.safetensors in
// Hugging Face names and row order + config.json (+ the base's tokenizer
// files when it is an HF directory): transformers and keel_model_load read
// it. Every checkpoint also holds optimizer.safetensors (AdamW moments, data
// position, RNG state) and trainer_state.json, so a resumed run continues
// with exactly the losses of an uninterrupted one. Layout: docs/train.md.
// Same job + same seed + same thread count -> bit-identical loss curve.

typedef enum keel_train_event_kind {
    KEEL_TRAIN_EV_START = 0,  // before the first step: total_steps, step (resumed from)
    KEEL_TRAIN_EV_STEP = 1,   // after each optimizer step
    KEEL_TRAIN_EV_EVAL = 2,   // after a validation pass: val_loss
    KEEL_TRAIN_EV_CHECKPOINT = 3, // a checkpoint was written: path
    KEEL_TRAIN_EV_LEDGER = 4,     // capabilities measured: caps, caps_base, n_caps, phase, ok
    KEEL_TRAIN_EV_DECISION = 5,   // the ledger acted on a violation: action, reason, path
} keel_train_event_kind;

typedef struct keel_train_event {
    keel_train_event_kind kind;
    int64_t step;          // optimizer steps done (1-based after the first step)
    int64_t total_steps;
    int32_t epoch;         // 0-based pass over the training set of the last example used
    double loss;           // mean masked cross-entropy of this step (mean over micro-batches)
    double lr;             // learning rate this step used
    double grad_norm;      // global gradient norm before clipping (non-finite: step skipped)
    int64_t tokens;        // non-padding tokens this step processed
    double tokens_per_s;   // tokens / this step's wall time
    double elapsed_s;      // wall time of the run so far (continues across resumes)
    double eta_s;          // estimated time to the last step
    double val_loss;       // EV_EVAL
    const char *path;      // EV_CHECKPOINT: the checkpoint directory (valid during the call);
                           // EV_DECISION: the checkpoint rolled back to (NULL: none)
    // EV_LEDGER (valid during the call): each capability now and the base model's
    // value on the same items (the monitor subset when sampled)
    const keel_cap_result *caps, *caps_base;
    int32_t n_caps;
    const char *phase;     // "base", "monitor", "final"
    bool sampled;          // measured on monitor.sample items
    bool ok;               // every bound holds
    const char *action;    // EV_DECISION: "stop", "rollback", "adapt", "warn", "give_up"
    const char *reason;    // EV_LEDGER (when !ok) / EV_DECISION: the violation with its numbers
} keel_train_event;

typedef struct keel_train_callbacks {
    // Called on every event from the training thread (may be NULL).
    void (*on_event)(const keel_train_event *ev, void *ud);
    // Polled after every step (may be NULL): true -> save a checkpoint and
    // return with keel_train_summary.interrupted set (how Ctrl-C stops a run).
    bool (*should_stop)(void *ud);
    void *ud;
} keel_train_callbacks;

typedef struct keel_train_opts {
    const char *const *sets;  // --set overrides ("train.lr=1e-4"), applied in order
    int32_t n_sets;
    const char *resume_dir;   // NULL: a fresh run into output.dir (absent or empty);
                              // else continue this run directory from its latest complete
                              // checkpoint (job: its job.yaml unless a job path is given)
    int64_t eval_every;       // validation every N steps (0: at each checkpoint and the end)
    int64_t stop_after;       // 0; N > 0: stop after N steps of this call, with a checkpoint
                              // (as should_stop would; summary.interrupted is set)
    const char *registry;     // NULL: no registry; else the keel.db to record the run in
                              // (created when absent; docs/registry.md)
} keel_train_opts;

typedef struct keel_train_summary {
    int64_t steps;            // steps done in total (including resumed ones)
    int64_t steps_run;        // steps this call ran
    int64_t tokens;           // tokens this call processed
    double wall_s;            // wall time of this call's steps
    double tokens_per_s;
    double final_loss;        // loss of the last step (NaN when none ran)
    double val_loss;          // last validation loss (NaN when none)
    int64_t peak_rss_bytes;   // getrusage maximum resident set size of the process
    bool interrupted;         // stopped early by should_stop / stop_after (resumable)
    char run_dir[1024];
    char checkpoint[1100];    // the last checkpoint written ("" when none)
    // the capability ledger (zero when the job declares no capabilities)
    double ledger_s;          // wall time spent measuring capabilities (share: ledger_s / wall_s)
    int32_t n_violations;     // measurements that broke a bound
    int32_t n_retries;        // adapt: rollbacks followed by a retry
    char status[16];          // "done", "stopped", "rolled_back", "interrupted"
    char active[1100];        // the active checkpoint: the last one that satisfied every
                              // bound (the last one written when there are no capabilities)
    int64_t run_id;           // the run's number in the registry (0 when none)
} keel_train_summary;

KEEL_API keel_train_opts keel_train_default_opts(void);

// Run a training job. job_path may be NULL when o->resume_dir is set. A bad
// job, a missing model or data file, or a non-empty output.dir fails before
// anything is written (KEEL_ERR_INVALID / KEEL_ERR_IO naming the file, key
// and line). Progress goes to cb (NULL: silent); the library never prints.
KEEL_API keel_status keel_train_run(const char *job_path, const keel_train_opts *o,
                                    const keel_train_callbacks *cb, keel_train_summary *out,
                                    keel_err *err);

#ifdef __cplusplus
}
#endif
#endif // KEEL_H
