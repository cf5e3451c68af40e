// SPDX-License-Identifier: MIT
// sched.c — learning-rate schedules with linear warmup, the formulas of HF
// transformers' optimization.py (get_constant_schedule_with_warmup,
// get_linear_schedule_with_warmup, get_cosine_schedule_with_warmup and, for
// lr_min > 0, get_cosine_with_min_lr_schedule_with_warmup), evaluated in
// double. lr(step) = lr * f(step), step 0-based (PyTorch's LambdaLR: the first
// optimizer step runs with f(0)). With W = warmup_steps, T = total_steps:
//   warmup (all kinds), step < W:  f = step / max(1, W)
//   constant:                      f = 1
//   linear:                        f = max(0, (T - step) / max(1, T - W))
//   cosine:   p = (step - W) / max(1, T - W)
//             c = 0.5 * (1 + cos(pi * 0.5 * 2 * p))         (num_cycles = 0.5)
//             f = max(0, c * (1 - r) + r),  r = lr_min / lr  (r = 0: plain cosine)
// As in HF, p is not clamped: past T the cosine rises again, the linear stays 0.
#include "train/train.h"

#include <math.h>

keel_status keel_sched_check(const keel_sched *s, keel_err *err) {
    if (s->kind != KEEL_SCHED_CONSTANT && s->kind != KEEL_SCHED_LINEAR &&
        s->kind != KEEL_SCHED_COSINE)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "schedule: unknown kind %d", (int)s->kind);
    if (!(s->lr >= 0) || !isfinite(s->lr))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "schedule: lr %g must be a finite value >= 0", s->lr);
    if (!(s->lr_min >= 0) || s->lr_min > s->lr)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "schedule: lr_min %g must be in [0, lr = %g]",
                         s->lr_min, s->lr);
    if (s->warmup_steps < 0)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "schedule: warmup_steps %lld < 0",
                         (long long)s->warmup_steps);
    if (s->total_steps < 0)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "schedule: total_steps %lld < 0",
                         (long long)s->total_steps);
    return KEEL_OK;
}

static double max1(int64_t x) { return x > 1 ? (double)x : 1.0; }

double keel_sched_lr(const keel_sched *s, int64_t step) {
    int64_t W = s->warmup_steps, T = s->total_steps;
    if (step < W) return s->lr * ((double)step / max1(W));
    double f = 1.0;
    switch (s->kind) {
    case KEEL_SCHED_CONSTANT:
        f = 1.0;
        break;
    case KEEL_SCHED_LINEAR:
        f = fmax(0.0, (double)(T - step) / max1(T - W));
        break;
    case KEEL_SCHED_COSINE: {
        double p = (double)(step - W) / max1(T - W);
        double c = 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * p));
        double r = s->lr > 0 ? s->lr_min / s->lr : 0.0;
        if (r > 0) c = c * (1.0 - r) + r;
        f = fmax(0.0, c);
        break;
    }
    }
    return s->lr * f;
}

bool keel_sched_parse(const char *name, keel_sched_kind *out) {
    static const char *names[] = {"constant", "linear", "cosine"};
    for (int i = 0; i < 3; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (keel_sched_kind)i;
            return true;
        }
    return false;
}

const char *keel_sched_name(keel_sched_kind k) {
    switch (k) {
    case KEEL_SCHED_CONSTANT: return "constant";
    case KEEL_SCHED_LINEAR: return "linear";
    case KEEL_SCHED_COSINE: return "cosine";
    }
    return "?";
}
