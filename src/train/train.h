// SPDX-License-Identifier: MIT
// train.h — optimisation pieces of the training loop: AdamW over one
// contiguous fp32 parameter buffer (optim.c), gradient clipping and
// accumulation helpers (optim.c), learning-rate schedules with warmup
// (sched.c), optimizer state files (optim_io.c). The trainer owns the
// parameter and gradient buffers; these functions only update them. Everything here is deterministic: the same
// inputs give bit-identical results for any OpenMP thread count.
// References: PyTorch torch.optim.AdamW (single-tensor path) and
// torch.nn.utils.clip_grad_norm_; HF transformers optimization.py schedules.
#ifndef KEEL_TRAIN_H
#define KEEL_TRAIN_H

#include "core/core.h"
#include "io/io.h"

// ---- AdamW (optim.c) ----------------------------------------------------------

typedef struct keel_adamw_params {
    double beta1;        // 0.9
    double beta2;        // 0.999
    double eps;          // 1e-8
    double weight_decay; // 0.01 (PyTorch's AdamW default)
} keel_adamw_params;

KEEL_INTERNAL keel_adamw_params keel_adamw_default_params(void);

// [begin, end) element range of the parameter buffer.
typedef struct keel_range {
    size_t begin, end;
} keel_range;

// One optimizer over a parameter buffer of n floats. m and v are allocated on
// the first step (n floats each, 64-byte aligned) and zeroed; t counts the
// steps taken (PyTorch's state["step"]). The fields are plain so the trainer
// can save and restore the state (m, v, t) in a checkpoint.
typedef struct keel_adamw {
    keel_adamw_params p;
    size_t n;
    float *m;            // (n) first moment, NULL before the first step
    float *v;            // (n) second moment, NULL before the first step
    int64_t t;           // steps taken
    keel_range *no_decay; // sorted, non-overlapping, merged ranges with weight decay 0
    size_t n_no_decay;
} keel_adamw;

// Set up for a buffer of n parameters. Nothing is allocated until the first
// step or keel_adamw_no_decay. KEEL_ERR_INVALID for n == 0 or parameters out
// of range (betas in [0, 1), eps >= 0, weight_decay >= 0).
KEEL_INTERNAL keel_status keel_adamw_init(keel_adamw *opt, size_t n, const keel_adamw_params *p,
                                          keel_err *err);
// Exclude the elements [begin, end) from weight decay (norm gains, biases):
// the trainer calls this once per such tensor. Ranges may come in any order
// and may touch or overlap; they are kept sorted and merged.
KEEL_INTERNAL keel_status keel_adamw_no_decay(keel_adamw *opt, size_t begin, size_t end,
                                              keel_err *err);
// Allocate (zeroed) m and v now if they are not yet; a resume calls this and
// then copies the saved moments in. The first step calls it itself.
KEEL_INTERNAL keel_status keel_adamw_alloc_state(keel_adamw *opt, keel_err *err);
// One update with learning rate lr (from the schedule), PyTorch semantics:
//   t += 1
//   p *= 1 - lr*wd                           (decoupled decay; wd = 0 in no-decay ranges)
//   m  = m + (1-beta1)*(g - m)
//   v  = beta2*v + (1-beta2)*g*g
//   p -= (lr / (1-beta1^t)) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)
// param (n) is updated in place, grad (n) is read only.
KEEL_INTERNAL keel_status keel_adamw_step(keel_adamw *opt, float *param, const float *grad,
                                          double lr, keel_err *err);
KEEL_INTERNAL void keel_adamw_free(keel_adamw *opt); // frees m, v, ranges; NULL-safe

// ---- gradients (optim.c) ----------------------------------------------------------

// L2 norm of g (n), accumulated in double over fixed 4096-element chunks whose
// partial sums are added in chunk order: the same bits for any thread count.
KEEL_INTERNAL double keel_grad_norm(const float *g, size_t n);
// Global-norm clipping as torch.nn.utils.clip_grad_norm_: with N the norm,
// if max_norm/(N + 1e-6) < 1 every element is multiplied by that factor.
// Returns the norm before clipping. max_norm <= 0 only measures. A non-finite
// norm leaves g alone (PyTorch would scale by NaN): the trainer should check
// isfinite() on the result and skip the step.
KEEL_INTERNAL double keel_grad_clip(float *g, size_t n, double max_norm);
// g *= s (e.g. s = 1/accum_steps before the optimizer step).
KEEL_INTERNAL void keel_grad_scale(float *g, size_t n, float s);
// dst += src (accumulating a micro-batch's gradient into the running one).
KEEL_INTERNAL void keel_grad_accumulate(float *dst, const float *src, size_t n);
KEEL_INTERNAL void keel_grad_zero(float *g, size_t n);

// ---- learning-rate schedules (sched.c) ---------------------------------------------

typedef enum keel_sched_kind {
    KEEL_SCHED_CONSTANT = 0,
    KEEL_SCHED_LINEAR = 1,
    KEEL_SCHED_COSINE = 2,
} keel_sched_kind;

typedef struct keel_sched {
    keel_sched_kind kind;
    double lr;            // peak learning rate
    double lr_min;        // cosine only: floor reached at total_steps (0 = plain cosine)
    int64_t warmup_steps; // linear warmup from 0
    int64_t total_steps;  // optimizer steps of the whole run (linear, cosine)
} keel_sched;

// KEEL_ERR_INVALID (naming the field) for lr < 0, lr_min < 0 or > lr,
// warmup_steps < 0, total_steps < 0, or an unknown kind.
KEEL_INTERNAL keel_status keel_sched_check(const keel_sched *s, keel_err *err);
// Learning rate for optimizer step `step` (0-based: the first update uses
// step 0, so with warmup it has lr 0, as HF's LambdaLR gives). Formulas in sched.c.
KEEL_INTERNAL double keel_sched_lr(const keel_sched *s, int64_t step);
// "constant", "linear", "cosine" -> kind; false if unknown.
KEEL_INTERNAL bool keel_sched_parse(const char *name, keel_sched_kind *out);
KEEL_INTERNAL const char *keel_sched_name(keel_sched_kind k);

// ---- optimizer state on disk (optim_io.c) ------------------------------------------------
//
// A safetensors file with two F32 tensors "adamw.m" and "adamw.v" of shape
// (n) and string metadata: format "keel-adamw", version "1", n, step, beta1,
// beta2, eps, weight_decay (%.17g), plus the caller's extra keys (data
// position, RNG state, ... as strings). Written atomically.
KEEL_INTERNAL keel_status keel_adamw_save(keel_adamw *opt, const char *path,
                                          const keel_st_kv *extra, size_t n_extra, keel_err *err);
// Restore m, v and the step count into opt, set up by keel_adamw_init with
// the same n (the hyper-parameters stay those of opt: a resumed job may
// change them). KEEL_ERR_FORMAT naming the file for a wrong format, size or
// missing tensor; opt is unchanged on failure. Extra keys: open the file with
// keel_st_open and read keel_st_metadata.
KEEL_INTERNAL keel_status keel_adamw_load(keel_adamw *opt, const char *path, keel_err *err);

#endif // KEEL_TRAIN_H
