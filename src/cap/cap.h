// SPDX-License-Identifier: MIT
// cap.h — capabilities: what a model must keep knowing, declared as data +
// metric (the `capabilities:` list of a job or of a suite file, docs/eval.md),
// loaded into scoring requests, scored on a model and aggregated with a 95%
// confidence interval. Layering: above eval/, model/ and model/train.h
// (scoring applies an attached LoRA adapter and trainable fp32 tensors as the
// trainer has them), below job/ (which parses the list through
// keel_cap_suite_parse_node), train/ (the ledger) and cli/.
//
//   suite.c    the YAML list: parse, validate, write back, compare
//   tasks.c    data files -> items -> requests (lm-evaluation-harness 0-shot
//              rules for multiple choice), tokenized once
//   score_ctx.c  score requests on a keel_train_model (+ LoRA) on the
//              inference forward with a KV cache (keel_cap_score): log-
//              likelihoods, greedy generations, perplexity windows -> one
//              outcome per item
//   run.c      the same on the training forward (keel_cap_score_train, the
//              reference the fast path is tested against)
//   score_common.c  what both scorers share: requests, truncation, windows,
//              acc/acc_norm, judging, argument checks (keel_cap_scorer)
//   metrics.c  outcomes of a chosen item subset -> value, CI, standard error;
//              answer normalisation, regex extraction, probe matching
//   suite_eval.c  the public keel_suite_* API (include/keel.h) over the above
//
// Per-item outcomes are kept so a measurement on a seeded subset (the
// ledger's monitor.sample) can be compared with the base model's value on the
// SAME items without scoring the base twice.
#ifndef KEEL_CAP_H
#define KEEL_CAP_H

#include "core/core.h"

#include <yaml.h>

struct keel_train_model;
struct keel_lora;

typedef enum keel_cap_kind {
    KEEL_CAP_PERPLEXITY = 0,      // mean NLL of text -> ppl (lower is better)
    KEEL_CAP_EXACT_MATCH = 1,     // greedy answer == reference after normalisation
    KEEL_CAP_MULTIPLE_CHOICE = 2, // argmax log-likelihood over choices (lm-eval 0-shot)
    KEEL_CAP_PROBE = 3,           // greedy generation matches (or not) a regex
} keel_cap_kind;

// Input format of a capability's data file (`task:` key).
typedef enum keel_cap_task {
    KEEL_CAP_TASK_JSONL = 0,   // generic JSONL of the kind (see below)
    KEEL_CAP_TASK_TEXT,        // perplexity only: a plain UTF-8 text file
    KEEL_CAP_TASK_ARC_EASY,    // ../shared/datasets/arc_easy_test.jsonl form
    KEEL_CAP_TASK_ARC_CHALLENGE,
    KEEL_CAP_TASK_PIQA,
    KEEL_CAP_TASK_BOOLQ,
    KEEL_CAP_TASK_WINOGRANDE,  // lm-eval request form (context_options, continuation)
    KEEL_CAP_TASK_HELLASWAG,   // klosax preprocessed form (text, endings, label)
} keel_cap_task;
// Generic JSONL fields per kind:
//   perplexity       {"text": "..."}                       one document per line
//   exact_match      {"prompt": "...", "answer": "..."}    ("answers": [...] also accepted)
//   multiple_choice  {"question": "...", "choices": [...], "answer": <index>}
//                    context "Question: <q>\nAnswer:", continuations " <choice>" (as ARC)
//   probe            {"prompt": "..."}

typedef enum keel_cap_decide {
    KEEL_CAP_DECIDE_POINT = 0, // the point estimate decides a bound
    KEEL_CAP_DECIDE_CI = 1,    // only a violation the whole 95% CI agrees with counts
} keel_cap_decide;

// One capability (one entry of `capabilities:`). Strings are owned.
typedef struct keel_cap_spec {
    char *name;                // unique in the suite; [A-Za-z0-9_.-]+
    keel_cap_kind kind;        // `type:`
    keel_cap_task task;        // `task:`; default jsonl (text for a .txt perplexity file)
    char *data;                // `data:` path as written (relative to the cwd; ~/ expanded on load)
    int64_t limit;             // `limit:` 0 = all items; N = the first N items of the file
    // multiple_choice
    bool acc_norm;             // `metric: acc_norm` (default acc); both are always computed
    // exact_match / probe: generation
    int32_t max_new_tokens;    // 32
    int chat;                  // `chat:` -1 auto (template when the model has one), 0 no, 1 yes
    bool norm_case, norm_space, norm_punct; // `normalize: [case, whitespace, punctuation]`
    char *extract;             // `extract:` regex (PCRE2); group 1 if any, else the whole match
    char *pattern;             // probe: `pattern:` regex (PCRE2)
    bool expect_match;         // probe: `expect: match` (default) | `no_match`
    // perplexity
    int32_t window;            // `window:` tokens per scored window (512)
    // bounds (all optional); the `decide:` of the capability, else monitor.decide
    bool has_max_drop, max_drop_rel; // `max_drop: 0.03` absolute, `max_drop: 5%` relative to base
    double max_drop;           // worsening allowed: base - now for higher-is-better metrics,
                               // now - base for perplexity (stored as a fraction when relative)
    bool has_min, has_max;
    double min, max;           // `min:` / `max:` on the metric's own scale
    int decide;                // -1 = not set (monitor.decide), else keel_cap_decide
    int32_t line, col;         // where the entry starts in its file (messages)
} keel_cap_spec;

typedef struct keel_cap_suite {
    keel_cap_spec *v;
    int32_t n;
} keel_cap_suite;

// ---- suite.c ------------------------------------------------------------------

// Parse a `capabilities:` sequence node. Errors (KEEL_ERR_INVALID) read
// "FILE:LINE:COL: key 'capabilities[2].max_drop': ..." with did-you-mean for
// unknown keys, like the job's. Appends to s (which may already hold entries).
KEEL_INTERNAL keel_status keel_cap_suite_parse_node(keel_cap_suite *s, const char *file,
                                                    yaml_document_t *doc, yaml_node_t *seq,
                                                    keel_err *err);
// A suite file: a YAML mapping with a `capabilities:` list (nothing else).
KEEL_INTERNAL keel_status keel_cap_suite_load_file(keel_cap_suite *s, const char *path, keel_err *err);
// Cross-entry checks: unique names, a data path on each, keys that do not
// belong to the kind (e.g. `pattern` on perplexity) rejected.
KEEL_INTERNAL keel_status keel_cap_suite_validate(const keel_cap_suite *s, const char *file, keel_err *err);
// Append the suite as YAML (a `capabilities:` block, every key resolved, at
// indentation 0) to b; reading it back gives an equal suite.
KEEL_INTERNAL keel_status keel_cap_suite_to_yaml(const keel_cap_suite *s, keel_buf *b, keel_err *err);
KEEL_INTERNAL bool keel_cap_suite_equal(const keel_cap_suite *a, const keel_cap_suite *b);
KEEL_INTERNAL keel_status keel_cap_suite_copy(keel_cap_suite *dst, const keel_cap_suite *src, keel_err *err);
KEEL_INTERNAL void keel_cap_suite_free(keel_cap_suite *s);
KEEL_INTERNAL const char *keel_cap_kind_name(keel_cap_kind k);   // "perplexity", ...
KEEL_INTERNAL const char *keel_cap_task_name(keel_cap_task t);   // "jsonl", "arc_easy", ...
// The metric a bound applies to: "ppl", "acc", "acc_norm", "exact_match", "pass_rate".
KEEL_INTERNAL const char *keel_cap_metric_name(const keel_cap_spec *c);
KEEL_INTERNAL bool keel_cap_higher_is_better(const keel_cap_spec *c);

// ---- tasks.c ------------------------------------------------------------------

// One log-likelihood request: the continuation tokens are scored given the
// context tokens (lm-eval: tok(context + continuation) minus the first
// len(tok(context)) tokens; trailing whitespace of the context moved to the
// continuation first).
typedef struct keel_cap_request {
    int32_t *ctx;   // (n_ctx) tokens (BOS first when the tokenizer adds one)
    int32_t n_ctx;
    int32_t *cont;  // (n_cont >= 1) continuation tokens
    int32_t n_cont;
} keel_cap_request;

typedef struct keel_cap_item {
    int64_t line;            // 1-based line of the data file (text files: 0)
    // multiple_choice: n_req requests (one per choice), gold index, choice
    // lengths in Unicode code points (acc_norm, without the delimiter space)
    int32_t req0, n_req;     // requests [req0, req0 + n_req) of the data
    int32_t gold;
    // exact_match / probe: prompt tokens (chat template applied when on) and
    // references (exact_match: one or more answers, already normalised)
    int32_t *prompt;
    int32_t n_prompt;
    char **answers;
    int32_t n_answers;
    // perplexity: the document's tokens
    int32_t *tokens;
    int32_t n_tokens;
} keel_cap_item;

typedef struct keel_cap_data {
    const keel_cap_spec *spec;   // not owned
    keel_cap_item *items;
    int64_t n_items;
    keel_cap_request *req;
    int64_t n_req;
    int32_t *choice_len;         // (n_req) code points of each choice (acc_norm)
} keel_cap_data;

// Read spec->data in its task format (after `limit`), build the items and
// requests and tokenize them with tok. Errors name the file, line and field
// ("FILE:LINE: field 'choices': expected an array"), KEEL_ERR_FORMAT; a
// missing file KEEL_ERR_IO. Nothing is kept on failure.
KEEL_INTERNAL keel_status keel_cap_data_load(keel_cap_data *d, const keel_cap_spec *spec,
                                             const keel_tokenizer *tok, keel_err *err);
KEEL_INTERNAL void keel_cap_data_free(keel_cap_data *d);

// ---- score_ctx.c, run.c -----------------------------------------------------------

// What one item scored. multiple_choice: a = acc (0/1), b = acc_norm (0/1);
// exact_match / probe: a = pass (0/1); perplexity: a = summed NLL (nats), n =
// tokens scored. text (exact_match/probe): the generation (owned; may be NULL).
typedef struct keel_cap_outcome {
    double a, b;
    int64_t n;
    char *text;
} keel_cap_outcome;

// Score items[0..n_items) (indices into d->items; NULL = all, in order) of d
// on tm (+ lo when not NULL, without dropout) and write out[i] for the i-th
// listed item. Deterministic: the same model and items give the same bits
// for any thread count. cancel (may be NULL) is polled between batches.
// keel_cap_score (score_ctx.c) runs the inference forward with a KV cache
// (the choices of an item share their context's computation; tm's trainable
// fp32 tensors and lo's current A/B are applied); keel_cap_score_train
// (run.c) runs the training forward and is the reference the fast path is
// tested against: the same outcomes up to float rounding (log-likelihoods
// within ~1e-4 on SmolLM2).
KEEL_INTERNAL keel_status keel_cap_score(const keel_cap_data *d, const struct keel_train_model *tm,
                                         struct keel_lora *lo, const int64_t *items, int64_t n_items,
                                         keel_cap_outcome *out, keel_err *err);
KEEL_INTERNAL keel_status keel_cap_score_train(const keel_cap_data *d, const struct keel_train_model *tm,
                                               struct keel_lora *lo, const int64_t *items, int64_t n_items,
                                               keel_cap_outcome *out, keel_err *err);
// keel_cap_loglik on the fast path (score_ctx.c); consecutive requests with
// the same context share its computation.
KEEL_INTERNAL keel_status keel_cap_loglik_ctx(const struct keel_train_model *tm, struct keel_lora *lo,
                                              const keel_cap_request *req, int64_t n, double *ll, keel_err *err);
// exact_match / probe verdict on a generation (score_common.c): *pass = 1 or 0.
KEEL_INTERNAL keel_status keel_cap_judge(const keel_cap_spec *spec, const keel_cap_item *it, const char *text,
                                         double *pass, keel_err *err);
KEEL_INTERNAL void keel_cap_outcomes_free(keel_cap_outcome *o, int64_t n); // frees text only
// The multiple-choice scorer's log-likelihoods for n requests: ll[i] = the
// sum over req[i].cont of log p(token | everything before it) in double,
// ctx + cont left-truncated to n_ctx_train + 1 tokens as lm-eval does. For
// tests and parity checks (per-request numbers to compare with other tools).
KEEL_INTERNAL keel_status keel_cap_loglik(const struct keel_train_model *tm, struct keel_lora *lo,
                                          const keel_cap_request *req, int64_t n, double *ll, keel_err *err);

// ---- score_common.c: the scorers' shared rules -------------------------------------

// A scored span: input tokens tok[0..T) (tok[T] exists: the last target);
// positions [T - n_sc, T) are scored against tok[pos + 1].
typedef struct keel_cap_span {
    const int32_t *tok;
    int32_t T, n_sc;
} keel_cap_span;

// How one scorer runs (score_ctx.c: inference forward; run.c: training forward).
typedef struct keel_cap_scorer {
    // res[i] = the summed log probability of s[i]'s scored tokens; group[i]
    // (consecutive; NULL: one group per span) marks spans of one item.
    keel_status (*spans)(const struct keel_train_model *tm, struct keel_lora *lo, const keel_cap_span *s,
                         const int64_t *group, int64_t n, double *res, keel_err *err);
    // exact_match / probe: generate and judge each listed item (out zeroed).
    keel_status (*gen)(const struct keel_cap_scorer *sc, const keel_cap_data *d, const struct keel_train_model *tm,
                       struct keel_lora *lo, const int64_t *items, int64_t n_items, keel_cap_outcome *out,
                       keel_err *err);
    // reject out-of-vocabulary tokens and an adapter attached to another
    // model up front (the inference forward reads them unchecked)
    bool check_inputs;
} keel_cap_scorer;

// keel_cap_score / keel_cap_score_train: argument checks, out zeroed, then
// multiple choice and perplexity by the shared rules over sc->spans,
// generation by sc->gen.
KEEL_INTERNAL keel_status keel_cap_score_with(const keel_cap_scorer *sc, const keel_cap_data *d,
                                              const struct keel_train_model *tm, struct keel_lora *lo,
                                              const int64_t *items, int64_t n_items, keel_cap_outcome *out,
                                              keel_err *err);
// Log-likelihoods of req[0..n) (group as in spans): ctx + cont joined,
// left-truncated to n_ctx_train + 1 tokens, the last dropped (lm-eval).
KEEL_INTERNAL keel_status keel_cap_loglik_with(const keel_cap_scorer *sc, const struct keel_train_model *tm,
                                               struct keel_lora *lo, const keel_cap_request *const *req,
                                               const int64_t *group, int64_t n, double *ll, keel_err *err);
// Generation: check its prompt (empty; out-of-vocabulary when
// sc->check_inputs) and give the tokens kept (its last min(n_prompt, keep)).
KEEL_INTERNAL keel_status keel_cap_gen_prompt(const keel_cap_scorer *sc, const keel_cap_spec *spec,
                                              const struct keel_train_model *tm, const keel_cap_item *it,
                                              int32_t keep, int32_t *n_prompt, keel_err *err);
// Generation: detokenize gen[0..n_gen) into o->text, o->n = 1, o->a = verdict.
KEEL_INTERNAL keel_status keel_cap_gen_outcome(const keel_cap_spec *spec, const struct keel_train_model *tm,
                                               const keel_cap_item *it, const int32_t *gen, int32_t n_gen,
                                               keel_cap_outcome *o, keel_err *err);
// log sum_j exp(l[j] - max) over one row of V logits, in double; *mx = max.
KEEL_INTERNAL double keel_cap_log_sum_exp(const float *l, int64_t V, double *mx);
// KEEL_ERR_INVALID naming what when a token is outside tm's vocabulary.
KEEL_INTERNAL keel_status keel_cap_check_tokens(const struct keel_train_model *tm, const int32_t *t, int64_t n,
                                                const char *what, keel_err *err);
KEEL_INTERNAL keel_status keel_cap_check_lora(const struct keel_train_model *tm, const struct keel_lora *lo,
                                              keel_err *err);

// ---- metrics.c -----------------------------------------------------------------

// Aggregate outcomes out[0..n) into r: value, 95% CI (Wilson score interval
// for rates; percentile bootstrap over documents, 1000 resamples seeded with
// seed, for perplexity), standard error, n. Fills r's names from spec.
KEEL_INTERNAL void keel_cap_aggregate(const keel_cap_spec *spec, const keel_cap_outcome *out, int64_t n,
                                      uint64_t seed, keel_cap_result *r);
// Wilson score interval for k successes in n trials at z = 1.959964.
KEEL_INTERNAL void keel_wilson(int64_t k, int64_t n, double *lo, double *hi);
// Normalise an answer in place as spec says (case fold ASCII, collapse and
// trim whitespace, drop ASCII punctuation); returns s.
KEEL_INTERNAL char *keel_cap_normalize(const keel_cap_spec *spec, char *s);
// Apply spec->extract to text: *out = heap copy of group 1 (or the whole
// match), NULL when it does not match. KEEL_ERR_INVALID for a bad regex.
KEEL_INTERNAL keel_status keel_cap_extract(const keel_cap_spec *spec, const char *text, char **out,
                                           keel_err *err);
// Probe: does text match spec->pattern?
KEEL_INTERNAL keel_status keel_cap_probe_match(const keel_cap_spec *spec, const char *text, bool *match,
                                               keel_err *err);

// ---- bounds (metrics.c) ----------------------------------------------------------

// Check now against base under spec's bounds with decide (spec->decide when
// set, else the monitor default). Returns true when every bound holds; else
// writes a one-line reason with the numbers into why, e.g.
// "arc_easy acc 0.412 [0.360, 0.466] dropped 0.061 from base 0.473 (max_drop 0.03, point)".
KEEL_INTERNAL bool keel_cap_bounds_ok(const keel_cap_spec *spec, keel_cap_decide def_decide,
                                      const keel_cap_result *base, const keel_cap_result *now,
                                      char *why, size_t cap);

#endif // KEEL_CAP_H
