// SPDX-License-Identifier: MIT
// bench_train.c — training throughput and peak memory of keel on a real model
// (SmolLM2-135M-Instruct): one configuration per process, so ru_maxrss is that
// configuration's peak. A step is forward + backward + AdamW over a (B, T)
// batch of fixed pseudo-random tokens; the figure is the median of the timed
// steps after warm-up steps. Uses the internal training API directly (like
// tests/unit/test_model_grad.c and test_lora.c), not the training loop.
// The peer is tools/bench_pytorch_train.py; bench/run_train.sh runs both.
//   bench_train MODEL MODE [threads=2] [B=4] [T=256] [steps=3] [warmup=1]
//   MODE: lora      LoRA r=16 (alpha 32) on all seven projections, base frozen
//                   in its stored type (QLoRA-style for a Q4_1 file)
//         lora-f32  the same with the frozen base dequantized to fp32 once
//         full      full fine-tuning, every tensor trainable in fp32
//         MODE+bf16x3 / MODE+bf16: opt-in AMX precision for the forward
//                   linears (keel_prec; the backward stays fp32)
// Prints one line of key=value pairs (tok_s, step_s, peak_rss_mib, loss ...).
#include "adapters/lora.h"
#include "model/train.h"
#include "train/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static bool sel_none(const char *name, void *ud) {
    (void)name, (void)ud;
    return false;
}

// Replace a frozen linear's stored weight by an fp32 copy (lora-f32); the
// copies are kept in f32_copies and freed at the end.
static float *f32_copies[256];
static int n_f32_copies;

static bool to_f32(keel_tlinear *l) {
    if (l->w || l->base.type == KEEL_DTYPE_F32) return true;
    int64_t n_in = l->base.n_in, n_out = l->base.n_out;
    if (n_f32_copies == (int)(sizeof f32_copies / sizeof f32_copies[0])) return false;
    float *f = keel_malloc_aligned((size_t)(n_in * n_out) * sizeof(float));
    if (!f) return false;
    f32_copies[n_f32_copies++] = f;
    for (int64_t r = 0; r < n_out; r++)
        keel_dequant_row(l->base.type, l->base.data + (size_t)r * l->base.row_bytes, f + r * n_in, n_in);
    l->base.type = KEEL_DTYPE_F32;
    l->base.row_bytes = (size_t)n_in * sizeof(float);
    l->base.data = (const uint8_t *)f;
    return true;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL lora|lora-f32|full[+bf16x3|+bf16] [threads=2] [B=4] [T=256] [steps=3] [warmup=1]\n",
                argv[0]);
        return 2;
    }
    const char *path = argv[1];
    char mode[32];
    snprintf(mode, sizeof mode, "%s", argv[2]);
    // "+bf16x3" / "+bf16": opt-in AMX precision for the forward linears (the
    // backward stays fp32); without AMX the forward runs fp32 anyway.
    keel_prec prec = KEEL_PREC_FP32;
    char *plus = strchr(mode, '+');
    if (plus) {
        if (!strcmp(plus, "+bf16x3")) prec = KEEL_PREC_BF16X3;
        else if (!strcmp(plus, "+bf16")) prec = KEEL_PREC_BF16;
        else {
            fprintf(stderr, "%s: unknown precision %s\n", argv[0], plus);
            return 2;
        }
        *plus = 0;
    }
    int threads = argc > 3 ? atoi(argv[3]) : 2;
    int B = argc > 4 ? atoi(argv[4]) : 4, T = argc > 5 ? atoi(argv[5]) : 256;
    int steps = argc > 6 ? atoi(argv[6]) : 3, warmup = argc > 7 ? atoi(argv[7]) : 1;
    bool full = strcmp(mode, "full") == 0, lora = strncmp(mode, "lora", 4) == 0;
    bool lora_f32 = strcmp(mode, "lora-f32") == 0;
    if ((!full && !lora) || (lora && !lora_f32 && strcmp(mode, "lora") != 0) || threads < 1 || B < 1 ||
        T < 2 || steps < 1 || steps > 100 || warmup < 0) {
        fprintf(stderr, "%s: bad arguments\n", argv[0]);
        return 2;
    }
    keel_threads_set(threads);
    keel_err err;
    keel_model_params mp = keel_model_default_params();
    mp.n_threads = threads;
    keel_model *m = NULL;
    if (keel_model_load(path, &mp, &m, &err) != KEEL_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const keel_model_desc *d = keel_model_describe(m);
    keel_train_model tm;
    keel_lora lo;
    keel_train_acts a;
    keel_adamw opt;
    bool has_lora = false;
    double lr = full ? 1e-5 : 1e-4;
    if (keel_train_model_init(&tm, m, full ? NULL : sel_none, NULL, &err)) goto fail;
    if (lora) {
        static const char *const targets[] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                              "gate_proj", "up_proj", "down_proj"};
        keel_lora_config cfg = keel_lora_default_config();
        cfg.r = 16;
        cfg.alpha = 32;
        cfg.targets = targets;
        cfg.n_targets = 7;
        if (keel_lora_attach(&lo, &tm, &cfg, &err)) goto fail;
        has_lora = true;
        if (keel_lora_reserve(&lo, (int64_t)B * T, &err)) goto fail;
        keel_lora_set_train(&lo, true, 0);
        if (lora_f32) {
            bool ok = to_f32(&tm.output);
            for (int l = 0; l < d->n_layer && ok; l++) {
                keel_tlayer *L = &tm.layers[l];
                keel_tlinear *lin[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
                for (int i = 0; i < 7 && ok; i++) ok = to_f32(lin[i]);
            }
            if (!ok) {
                fprintf(stderr, "out of memory (fp32 base) or more than 256 linears\n");
                return 1;
            }
        }
    }
    if (keel_train_acts_init(&a, &tm, B, T, &err)) goto fail;
    a.ops.prec = prec;
    keel_adamw_params ap = keel_adamw_default_params();
    if (keel_adamw_init(&opt, tm.p.n_floats, &ap, &err)) goto fail;
    for (int i = 0; i < tm.p.n; i++)
        if (tm.p.t[i].rows == 1 && keel_adamw_no_decay(&opt, tm.p.t[i].off, tm.p.t[i].off + (size_t)tm.p.t[i].cols, &err))
            goto fail;

    // Fixed pseudo-random batch (next-token targets of the same stream).
    size_t N = (size_t)B * (size_t)T;
    int32_t *tok = malloc((N + 1) * sizeof(int32_t));
    if (!tok) return 1;
    uint64_t st = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i <= N; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)((st >> 33) % (uint64_t)d->n_vocab);
    }
    double *dt = malloc((size_t)steps * sizeof(double)), fwd_s = 0, bwd_s = 0, opt_s = 0, cpu0 = 0, wall0 = 0;
    if (!dt) return 1;
    float loss = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) cpu0 = cpu_now(), wall0 = now();
        double t0 = now();
        keel_train_zero_grad(&tm);
        if (keel_train_forward(&tm, &a, tok, tok + 1, NULL, &loss, &err)) goto fail;
        double t1 = now();
        keel_train_backward(&tm, &a);
        double t2 = now();
        if (keel_adamw_step(&opt, tm.p.w, tm.p.g, lr, &err)) goto fail;
        double t3 = now();
        if (s >= warmup) {
            dt[s - warmup] = t3 - t0;
            fwd_s += t1 - t0, bwd_s += t2 - t1, opt_s += t3 - t2;
        }
    }
    double cpu = cpu_now() - cpu0, wall = now() - wall0;
    qsort(dt, (size_t)steps, sizeof(double), cmp_d);
    double med = steps % 2 ? dt[steps / 2] : 0.5 * (dt[steps / 2 - 1] + dt[steps / 2]);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("system=keel mode=%s%s threads=%d B=%d T=%d steps=%d tok_s=%.1f step_s=%.3f fwd_s=%.3f bwd_s=%.3f "
           "opt_s=%.3f cpu_per_wall=%.2f peak_rss_mib=%.0f trainable=%zu loss=%.4f\n",
           mode, prec == KEEL_PREC_BF16X3 ? "+bf16x3" : prec == KEEL_PREC_BF16 ? "+bf16" : "", threads, B, T, steps, (double)N / med, med, fwd_s / steps, bwd_s / steps, opt_s / steps,
           cpu / wall, (double)ru.ru_maxrss / 1024.0, tm.p.n_floats, (double)loss);
    free(dt);
    free(tok);
    keel_adamw_free(&opt);
    keel_train_acts_free(&a);
    if (has_lora) keel_lora_free(&lo);
    keel_train_model_free(&tm);
    keel_model_free(m);
    for (int i = 0; i < n_f32_copies; i++) keel_free_aligned(f32_copies[i]);
    return 0;
fail:
    fprintf(stderr, "bench_train: %s\n", err.msg);
    return 1;
}
