// SPDX-License-Identifier: MIT
// bench_precision.c — what the reduced-precision batched matmuls
// (keel_model_params.matmul_precision) cost in accuracy on a real model:
// logits of every position of one text window against the FP32 path
// (max |diff| / max |logit| per position, the worst position; top-1
// agreement), and perplexity (llama.cpp's method, keel_perplexity) and its
// time per precision. Not a test: prints a table.
//   bench_precision MODEL TEXT_FILE [n_ctx=512] [threads=0] [max_chunks=10]
#include "keel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = sz >= 0 ? malloc((size_t)sz + 1) : NULL;
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[sz] = 0, *n = (size_t)sz;
    return b;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_precision MODEL TEXT_FILE [n_ctx=512] [threads=0] [max_chunks=10]\n");
        return 2;
    }
    int n_ctx = argc > 3 ? atoi(argv[3]) : 512, threads = argc > 4 ? atoi(argv[4]) : 0;
    int max_chunks = argc > 5 ? atoi(argv[5]) : 10;
    static const struct {
        const char *name;
        keel_matmul_precision p;
    } precs[] = {{"fp32", KEEL_MATMUL_FP32}, {"bf16x3", KEEL_MATMUL_BF16X3}, {"bf16", KEEL_MATMUL_BF16}};
    size_t text_n = 0;
    char *text = read_all(argv[2], &text_n);
    if (!text || n_ctx < 2) {
        fprintf(stderr, "bench_precision: cannot read %s\n", argv[2]);
        return 1;
    }
    keel_err err = {0};
    float *ref = NULL, *lg = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    int V = 0;
    printf("%-8s %14s %10s %10s %12s %10s\n", "matmul", "max rel err", "top-1 agr", "ppl", "ppl - fp32", "ppl s");
    double ppl0 = 0.0;
    for (size_t pi = 0; pi < sizeof precs / sizeof *precs; pi++) {
        keel_model_params mp = keel_model_default_params();
        mp.n_threads = threads;
        mp.matmul_precision = precs[pi].p;
        keel_model *m = NULL;
        keel_context *c = NULL;
        if (keel_model_load(argv[1], &mp, &m, &err) != KEEL_OK || keel_context_init(m, n_ctx, &c, &err) != KEEL_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        if (!ids) {
            if (keel_tokenize(keel_model_tokenizer(m), text, text_n, true, false, &ids, &n_ids, &err) != KEEL_OK) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            V = keel_model_describe(m)->n_vocab;
            if (n_ids < (size_t)n_ctx) {
                fprintf(stderr, "bench_precision: %s has %zu tokens, fewer than n_ctx %d\n", argv[2], n_ids, n_ctx);
                return 1;
            }
            ref = malloc(sizeof(float) * (size_t)n_ctx * (size_t)V);
            lg = malloc(sizeof(float) * (size_t)n_ctx * (size_t)V);
            if (!ref || !lg) return 1;
        }
        // logits of one full window, all positions
        float *out = pi == 0 ? ref : lg;
        if (keel_eval(c, ids, n_ctx, 0, out, KEEL_LOGITS_ALL, &err) != KEEL_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        double worst = 0.0;
        int agree = 0;
        for (int t = 0; t < n_ctx; t++) {
            const float *a = out + (size_t)t * V, *b = ref + (size_t)t * V;
            double md = 0.0, mb = 0.0;
            int ia = 0, ib = 0;
            for (int i = 0; i < V; i++) {
                double d = fabs((double)a[i] - b[i]);
                if (d > md) md = d;
                if (fabs(b[i]) > mb) mb = fabs(b[i]);
                if (a[i] > a[ia]) ia = i;
                if (b[i] > b[ib]) ib = i;
            }
            if (md / mb > worst) worst = md / mb;
            agree += ia == ib;
        }
        size_t n_use = n_ids;
        if (max_chunks > 0 && n_use > (size_t)max_chunks * (size_t)n_ctx) n_use = (size_t)max_chunks * (size_t)n_ctx;
        keel_ppl_result r;
        double t0 = now_s();
        if (keel_perplexity(c, ids, n_use, n_ctx, NULL, NULL, &r, &err) != KEEL_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        double dt = now_s() - t0;
        if (pi == 0) ppl0 = r.ppl;
        printf("%-8s %14.3g %9.1f%% %10.4f %+12.4f %10.2f\n", precs[pi].name, worst, 100.0 * agree / n_ctx, r.ppl,
               r.ppl - ppl0, dt);
        fflush(stdout);
        keel_context_free(c);
        keel_model_free(m);
    }
    printf("(%d-token window for the logits; perplexity over %d windows of %d, %s)\n", n_ctx,
           (int)((max_chunks > 0 && n_ids > (size_t)max_chunks * (size_t)n_ctx ? (size_t)max_chunks * (size_t)n_ctx
                                                                               : n_ids) /
                 (size_t)n_ctx),
           n_ctx, argv[2]);
    keel_free(ids);
    free(ref);
    free(lg);
    free(text);
    return 0;
}
