// SPDX-License-Identifier: MIT
// job.h — the declarative training job (job.yaml): schema, defaults,
// parsing with libyaml, `--set key.path=value` overrides, validation and
// writing the resolved job back as YAML. Sits above core/ (and uses the data
// format enum of include/keel.h); the trainer and the CLI read keel_job.
// Every key, its type, default and constraints: docs/job.md. One table in
// job.c drives parsing, overrides, defaults, validation and the writer, so
// they cannot disagree.
#ifndef KEEL_JOB_H
#define KEEL_JOB_H

#include "core/core.h"
#include "cap/cap.h"

typedef enum keel_job_method {
    KEEL_JOB_FULL = 0,  // full fine-tuning of the selected tensors
    KEEL_JOB_LORA = 1,  // LoRA adapters on fp32/f16 copies of the base
    KEEL_JOB_QLORA = 2, // LoRA over the base kept in its stored (quantized) type
} keel_job_method;

typedef enum keel_job_schedule {
    KEEL_SCHED_CONSTANT = 0,
    KEEL_SCHED_LINEAR = 1, // linear decay to 0 after warmup
    KEEL_SCHED_COSINE = 2, // cosine decay to 0 after warmup
} keel_job_schedule;

typedef enum keel_job_violation {
    KEEL_VIOLATION_STOP = 0,     // save a checkpoint and stop
    KEEL_VIOLATION_ROLLBACK = 1, // restore the last checkpoint that satisfied every bound, stop
    KEEL_VIOLATION_ADAPT = 2,    // rollback, lower the learning rate, continue (max_retries)
    KEEL_VIOLATION_WARN = 3,     // record the violation and go on
} keel_job_violation;

typedef enum keel_job_lora_init {
    KEEL_LORA_INIT_KAIMING = 0,  // PEFT default: A Kaiming-uniform(a=sqrt(5)), B zero
    KEEL_LORA_INIT_GAUSSIAN = 1, // A ~ N(0, 1/r), B zero
} keel_job_lora_init;

// A list of strings (module names, patterns). Owned by the job.
typedef struct keel_strlist {
    char **v;
    int32_t n;
} keel_strlist;

#define KEEL_JOB_MAX_KEYS 48

typedef struct keel_job {
    char *model;                 // required: .gguf file or HF directory
    keel_job_method method;      // lora
    struct {
        int32_t r;               // 8
        double alpha;            // 16
        double dropout;          // 0, in [0, 1)
        keel_strlist target_modules; // the seven Llama projections
        bool use_rslora;         // false: scale alpha/r; true: alpha/sqrt(r)
        keel_job_lora_init init; // kaiming
    } lora;
    struct {
        keel_strlist trainable;  // ["*"]: name patterns of trainable tensors
        keel_strlist freeze;     // []: name patterns frozen even if trainable matches
        char *freeze_layers;     // "": layer ranges "0-3,7" kept frozen
    } full;
    struct {
        char *train;             // required: JSONL path
        keel_data_format format; // auto
        char *validation;        // "": separate JSONL file
        double validation_split; // 0: fraction of train held out, [0, 1)
        int32_t max_seq_len;     // 512
        bool packing;            // false
        bool shuffle;            // true
    } data;
    struct {
        double lr;               // 1e-4
        double weight_decay;     // 0
        double betas[2];         // [0.9, 0.999]
        double eps;              // 1e-8
        int32_t batch_size;      // 4
        int32_t grad_accum;      // 1
        int64_t max_steps;       // 0: run `epochs` epochs
        int32_t epochs;          // 1
        keel_job_schedule schedule; // cosine
        int64_t warmup_steps;    // 0
        double clip_grad_norm;   // 1.0 (0 = off)
        uint64_t seed;           // 42
        int32_t threads;         // 0 = all cores
    } train;
    struct {
        char *dir;               // "runs/keel"
        int64_t save_every;      // 0 = only at the end
    } output;
    // The capability ledger (docs/job.md "capabilities", "monitor").
    keel_cap_suite caps;         // `capabilities:` (empty: no ledger)
    struct {
        int64_t every;           // 0: measure only before step 0 and at the end
        int64_t sample;          // 0: all items; N: a fixed seeded subset of N items per capability
        uint64_t seed;           // 0: the subset and bootstrap seed
        int on_violation;        // keel_job_violation: stop
        keel_cap_decide decide;  // point: default for capabilities without `decide:`
        int32_t max_retries;     // 2: adapt retries before giving up (then as rollback)
        double lr_factor;        // 0.5: adapt multiplies the learning rate by this
        double weight_factor;    // 2: adapt multiplies a preservation weight by this (when one is configured)
    } monitor;

    // Where each key was set, for messages (index = key table row; line 0 =
    // the default, -1 = a --set override).
    int32_t src_line[KEEL_JOB_MAX_KEYS], src_col[KEEL_JOB_MAX_KEYS];
    char *path;                  // the job file, for messages (NULL before parsing)
} keel_job;

// A job holding every default (model and data.train empty). Free with
// keel_job_free. Returns KEEL_ERR_NOMEM on allocation failure.
KEEL_INTERNAL keel_status keel_job_init(keel_job *job, keel_err *err);
KEEL_INTERNAL void keel_job_free(keel_job *job);

// Apply the keys of a YAML document to job (parsed from memory; name is used
// in messages). Unknown keys, wrong types and out-of-range values fail with
// KEEL_ERR_INVALID and "NAME:LINE:COL: key 'a.b': ..."; `capabilities:` is
// parsed by keel_cap_suite_parse_node into job->caps (replacing any before),
// `monitor:` is a section of keys like the others.
KEEL_INTERNAL keel_status keel_job_parse(keel_job *job, const char *name, const char *text,
                                         size_t len, keel_err *err);
KEEL_INTERNAL keel_status keel_job_parse_file(keel_job *job, const char *path, keel_err *err);

// One override "key.path=value"; value is read as a YAML flow value
// ("1e-4", "[q_proj, v_proj]", "true") and checked like the file's.
KEEL_INTERNAL keel_status keel_job_set(keel_job *job, const char *assignment, keel_err *err);

// Cross-key checks after parsing and overrides: required keys present,
// validation file vs split, max_steps/epochs, monitor.every > 0 or an
// on_violation other than stop without capabilities. Names the key and its line.
KEEL_INTERNAL keel_status keel_job_validate(const keel_job *job, keel_err *err);

// init + parse_file + each override + validate.
KEEL_INTERNAL keel_status keel_job_load(keel_job *job, const char *path, const char *const *sets,
                                        int n_sets, keel_err *err);

// The resolved job as YAML text (every key, defaults filled); *out heap (free()).
KEEL_INTERNAL keel_status keel_job_to_yaml(const keel_job *job, char **out, size_t *len,
                                           keel_err *err);
// Write it to path atomically: PATH.tmp.PID in the same directory, fsync,
// rename, fsync of the directory.
KEEL_INTERNAL keel_status keel_job_write(const keel_job *job, const char *path, keel_err *err);

// True when every key of a and b holds the same value (source lines ignored).
KEEL_INTERNAL bool keel_job_equal(const keel_job *a, const keel_job *b);

// Names for enum values ("lora", "cosine"); data formats: keel_data_format_name.
KEEL_INTERNAL const char *keel_job_method_name(keel_job_method m);
KEEL_INTERNAL const char *keel_job_schedule_name(keel_job_schedule s);

// A path from the job as the filesystem needs it: a leading "~/" becomes
// $HOME/ (when HOME is set); anything else is copied. Heap string (free()),
// NULL on allocation failure.
KEEL_INTERNAL char *keel_job_expand_path(const char *path);

// Atomic small-file write: one buffer through io/atomic.c (temp + fsync +
// rename + dir fsync).
KEEL_INTERNAL keel_status keel_write_file_atomic(const char *path, const void *data, size_t len,
                                                 keel_err *err);

#endif // KEEL_JOB_H
