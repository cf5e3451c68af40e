// SPDX-License-Identifier: MIT
// ledger.h — the capability ledger of a training run (ledger.c): the job's
// capabilities loaded once, measured on the base model before step 0, on a
// fixed seeded subset (monitor.sample) every monitor.every steps and on all
// items at the end; each measurement compared with the base on the SAME
// items and checked against the capability's bounds. The trainer
// (loop.c) decides what to do with a violation (stop / rollback / adapt /
// warn); the ledger measures, checks, and writes ledger.jsonl lines.
// Base per-item outcomes are saved in the run directory (ledger_base.json)
// so a resumed run compares against the same base without rescoring it.
#ifndef KEEL_TRAIN_LEDGER_H
#define KEEL_TRAIN_LEDGER_H

#include "cap/cap.h"

#include <stdio.h>

struct keel_train_model;
struct keel_lora;

typedef struct keel_ledger {
    const keel_cap_suite *suite;   // not owned (the job's)
    int32_t n;                     // capabilities
    keel_cap_decide decide;        // monitor.decide (default for capabilities)
    uint64_t seed;
    keel_cap_data *data;           // (n)
    int64_t **sample;              // (n) item indices of the monitor subset (NULL: all)
    int64_t *n_sample;             // (n)
    keel_cap_outcome **base_out;   // (n) per-item outcomes of the base model (all items)
    bool have_base;
    keel_cap_result *base_full;    // (n) base on all items
    keel_cap_result *base_sample;  // (n) base on the monitor subset (== base_full without sampling)
    keel_cap_result *now;          // (n) the last measurement
    const keel_cap_result *now_base; // base on the same items as `now` (base_full or base_sample)
    bool now_sampled;
    double seconds;                // wall time spent measuring
    FILE *jsonl;                   // RUN_DIR/ledger.jsonl (appended)
} keel_ledger;

// Load every capability's data with tok and pick the monitor subsets
// (sample > 0: that many items per capability, seeded with seed and the
// capability's name). Fails naming the capability, file and line.
KEEL_INTERNAL keel_status keel_ledger_init(keel_ledger *L, const keel_cap_suite *suite, int64_t sample,
                                           uint64_t seed, keel_cap_decide decide, const keel_tokenizer *tok,
                                           keel_err *err);
KEEL_INTERNAL void keel_ledger_free(keel_ledger *L);

// Score the base model (tm as it is before any step) on all items.
KEEL_INTERNAL keel_status keel_ledger_measure_base(keel_ledger *L, const struct keel_train_model *tm,
                                                   struct keel_lora *lo, keel_err *err);
// ledger_base.json: the base outcomes, written atomically / read back on resume.
KEEL_INTERNAL keel_status keel_ledger_save_base(const keel_ledger *L, const char *path, keel_err *err);
KEEL_INTERNAL keel_status keel_ledger_load_base(keel_ledger *L, const char *path, keel_err *err);

// Measure the current model: on the monitor subsets when sampled, else on
// all items. Results in L->now, the base on the same items in L->now_base.
KEEL_INTERNAL keel_status keel_ledger_measure(keel_ledger *L, const struct keel_train_model *tm,
                                              struct keel_lora *lo, bool sampled, keel_err *err);
// Check L->now against L->now_base: the number of capabilities whose bounds
// fail; their reasons joined with "; " into why.
KEEL_INTERNAL int32_t keel_ledger_check(const keel_ledger *L, char *why, size_t cap);

// Append the last measurement (one line per capability: step, phase,
// sampled, value, CI, n, base on the same items, change, bounds ok) and a
// decision line to ledger.jsonl (flushed).
KEEL_INTERNAL void keel_ledger_log_measure(keel_ledger *L, int64_t step, const char *phase);
KEEL_INTERNAL void keel_ledger_log_decision(keel_ledger *L, int64_t step, const char *action, const char *reason,
                                            const char *checkpoint);

#endif // KEEL_TRAIN_LEDGER_H
