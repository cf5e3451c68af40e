// SPDX-License-Identifier: MIT
// bench_infer.c — inference throughput of keel on one model: prompt
// processing (fresh 256-token sequences evaluated as one batch, like
// llama-bench's pp256) and decode (one token at a time with the KV cache,
// like tg). Prints one JSON line; bench/run.sh compares it with llama.cpp.
// pp_tok_per_cpu_s divides by the process's CPU time instead of wall time:
// with one thread it is the rate the code would reach on an idle core, a
// steadier figure for tuning kernels on a busy machine.
#include "keel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// CPU seconds used by the whole process (all threads, spinning included).
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_infer MODEL [n_prompt=256] [n_gen=64] [reps=5] [threads=0] "
                        "[fp32|bf16x3|bf16]\n");
        return 2;
    }
    int n_prompt = argc > 2 ? atoi(argv[2]) : 256;
    int n_gen = argc > 3 ? atoi(argv[3]) : 64;
    int reps = argc > 4 ? atoi(argv[4]) : 5;
    int threads = argc > 5 ? atoi(argv[5]) : 0;
    const char *prec = argc > 6 ? argv[6] : "fp32";
    if (n_prompt < 1 || n_gen < 1 || reps < 1 || reps > 100) return 2;
    keel_err err = {0};
    keel_model *m = NULL;
    keel_model_params mp = keel_model_default_params();
    mp.n_threads = threads;
    if (!strcmp(prec, "bf16x3")) mp.matmul_precision = KEEL_MATMUL_BF16X3;
    else if (!strcmp(prec, "bf16")) mp.matmul_precision = KEEL_MATMUL_BF16;
    else if (strcmp(prec, "fp32")) return 2;
    if (keel_model_load(argv[1], &mp, &m, &err) != KEEL_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const keel_model_desc *d = keel_model_describe(m);
    keel_context *ctx = NULL;
    if (keel_context_init(m, n_prompt + n_gen, &ctx, &err) != KEEL_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int32_t *tok = malloc(sizeof *tok * (size_t)(n_prompt + n_gen));
    float *logits = malloc(sizeof *logits * (size_t)d->n_vocab);
    if (!tok || !logits) return 1;
    // random tokens, like llama-bench
    uint64_t s = 12345;
    for (int i = 0; i < n_prompt + n_gen; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)((s >> 33) % (uint64_t)d->n_vocab);
    }
    double pp[100], tg[100], ppc[100];
    // warm-up: touches every buffer once
    keel_eval(ctx, tok, n_prompt, 0, logits, KEEL_LOGITS_LAST, &err);
    for (int r = 0; r < reps; r++) {
        double t0 = now_s(), c0 = cpu_s();
        if (keel_eval(ctx, tok, n_prompt, 0, logits, KEEL_LOGITS_LAST, &err) != KEEL_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        pp[r] = (double)n_prompt / (now_s() - t0);
        ppc[r] = (double)n_prompt / (cpu_s() - c0);
    }
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        for (int i = 0; i < n_gen; i++)
            if (keel_eval(ctx, &tok[n_prompt + i], 1, i, logits, KEEL_LOGITS_LAST, &err) != KEEL_OK) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
        tg[r] = (double)n_gen / (now_s() - t0);
    }
    qsort(pp, (size_t)reps, sizeof pp[0], cmp_d);
    qsort(tg, (size_t)reps, sizeof tg[0], cmp_d);
    qsort(ppc, (size_t)reps, sizeof ppc[0], cmp_d);
    printf("{\"system\":\"keel\",\"precision\":\"%s\",\"pp\":%d,\"pp_tok_s\":%.2f,\"tg\":%d,\"tg_tok_s\":%.2f,"
           "\"pp_tok_per_cpu_s\":%.2f}\n",
           prec, n_prompt, pp[reps / 2], n_gen, tg[reps / 2], ppc[reps / 2]);
    free(tok);
    free(logits);
    keel_context_free(ctx);
    keel_model_free(m);
    return 0;
}
