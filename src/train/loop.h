// SPDX-License-Identifier: MIT
// loop.h — the training loop behind `keel train` (loop.c) and the bridge
// from the YAML job to it (loop_job.c). keel_train_cfg is the job as the
// loop needs it: a plain struct, so loop.c does not include job/job.h (whose
// schedule enum clashes with train/train.h's). keel_trainer is one run: run
// directory, model, data, training state, optimizer, position in the data;
// keel_train_run (include/keel.h) drives it. Tests use the handle directly.
// Run-directory layout and resume rules: docs/train.md.
#ifndef KEEL_TRAIN_LOOP_H
#define KEEL_TRAIN_LOOP_H

#include "core/core.h"

typedef struct keel_train_cfg {
    void *job;                   // the keel_job (owned); the pointers below borrow from it
    char *yaml;                  // resolved job as YAML (owned)
    const char *model;           // already ~-expanded (owned copies)
    int method;                  // 0 full, 1 lora, 2 qlora (job.h's keel_job_method)
    // lora
    int32_t lora_r;
    double lora_alpha, lora_dropout;
    const char *const *lora_targets;
    int32_t n_lora_targets;
    bool lora_rslora;
    int lora_init;               // 0 kaiming, 1 gaussian
    // full
    const char *const *trainable;
    int32_t n_trainable;
    const char *const *freeze;
    int32_t n_freeze;
    const char *freeze_layers;
    // data
    const char *train_path, *val_path; // val_path NULL when none (owned copies)
    int data_format;             // keel_data_format
    double val_split;
    int32_t max_seq_len;
    bool packing, shuffle;
    // train
    double lr, weight_decay, beta1, beta2, eps, clip;
    int32_t batch_size, grad_accum, epochs, threads;
    int64_t max_steps, warmup_steps;
    int schedule;                // 0 constant, 1 linear, 2 cosine (both enums agree)
    uint64_t seed;
    // output
    const char *out_dir;         // owned copy
    int64_t save_every;
    // capability ledger (job.h "monitor"); caps borrows the job's list
    const struct keel_cap_suite *caps; // n == 0: no ledger
    int64_t monitor_every, monitor_sample;
    uint64_t monitor_seed;
    int on_violation;            // keel_job_violation: 0 stop, 1 rollback, 2 adapt, 3 warn
    int decide;                  // keel_cap_decide
    int32_t max_retries;
    double lr_factor, weight_factor;
} keel_train_cfg;

// Read, override and check the job (keel_job_load), then fill cfg. When
// out_dir is not NULL it replaces output.dir (resume). Errors as keel_job_load.
KEEL_INTERNAL keel_status keel_train_cfg_load(keel_train_cfg *cfg, const char *path,
                                              const char *const *sets, int32_t n_sets,
                                              const char *out_dir, keel_err *err);
KEEL_INTERNAL void keel_train_cfg_free(keel_train_cfg *cfg);

typedef struct keel_trainer keel_trainer;

// Set up a run: resolve the job, check the run directory (a fresh run needs
// output.dir absent or empty; opts->resume_dir resumes from its latest complete
// checkpoint), load model and data, build the training state. Nothing is
// written until keel_trainer_start. On failure *out is NULL.
KEEL_INTERNAL keel_status keel_trainer_open(const char *job_path, const keel_train_opts *o,
                                            keel_trainer **out, keel_err *err);
// Create the run directory, write job.yaml, open metrics.jsonl (truncated to
// the resumed step when resuming).
KEEL_INTERNAL keel_status keel_trainer_start(keel_trainer *t, keel_err *err);
// One optimizer step (grad_accum micro-batches); fills *ev (KEEL_TRAIN_EV_STEP)
// and appends the metrics line. Returns KEEL_OK with ev->step == 0 when done.
KEEL_INTERNAL keel_status keel_trainer_step(keel_trainer *t, keel_train_event *ev, keel_err *err);
// Mean masked cross-entropy over the validation set; false when there is none.
KEEL_INTERNAL keel_status keel_trainer_eval(keel_trainer *t, bool *has_val, double *loss,
                                            keel_err *err);
// Write RUN_DIR/checkpoints/step-N (atomically) for the current step.
KEEL_INTERNAL keel_status keel_trainer_save(keel_trainer *t, char *dir_out, size_t cap,
                                            keel_err *err);
KEEL_INTERNAL int64_t keel_trainer_step_count(const keel_trainer *t);  // steps done
KEEL_INTERNAL int64_t keel_trainer_total_steps(const keel_trainer *t);
KEEL_INTERNAL void *keel_trainer_train_model(keel_trainer *t); // keel_train_model * (tests)
KEEL_INTERNAL void keel_trainer_free(keel_trainer *t);

#endif // KEEL_TRAIN_LOOP_H
