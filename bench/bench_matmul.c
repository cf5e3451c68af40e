// SPDX-License-Identifier: MIT
// bench_matmul.c — GFLOP/s of keel_matmul on SmolLM2-135M's shapes (Q4_1
// weights with random codes, T = 256 tokens) for each precision path, by wall
// time and by process CPU time (the latter is steadier on a busy machine; with
// more than one thread it also counts the time threads spin at barriers).
// Uses the internal ops API (links libkeel.a). Not a test.
//   bench_matmul [threads=1] [T=256] [reps=5]
#include "ops/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double clk(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int64_t T = argc > 2 ? atoi(argv[2]) : 256;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    if (threads < 1 || T < 1 || reps < 1 || reps > 100) return 2;
    static const struct {
        const char *name;
        int64_t n_in, n_out;
    } shapes[] = {{"q+k+v", 576, 960}, {"o", 576, 576}, {"gate+up", 576, 3072}, {"down", 1536, 576}};
    static const struct {
        const char *name;
        keel_prec p;
    } precs[] = {{"fp32", KEEL_PREC_FP32}, {"bf16x3", KEEL_PREC_BF16X3}, {"bf16", KEEL_PREC_BF16}};
    keel_err err;
    keel_ops_scratch s;
    if (keel_ops_scratch_init(&s, threads, keel_matmul_scratch_floats(1536), keel_matmul_shared_floats(T, 1536),
                              &err) != KEEL_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    float *x = keel_malloc_aligned(sizeof(float) * (size_t)(T * 1536));
    float *y = keel_malloc_aligned(sizeof(float) * (size_t)(T * 3072));
    uint8_t *wb = keel_malloc_aligned((size_t)3072 * 1536 / 32 * 20);
    if (!x || !y || !wb) return 1;
    keel_rng r;
    keel_rng_seed(&r, 1);
    for (int64_t i = 0; i < T * 1536; i++) x[i] = (float)((double)(keel_rng_u64(&r) >> 11) / 9007199254740992.0 - 0.5);
    for (size_t i = 0; i < (size_t)3072 * 1536 / 32; i++) {
        uint8_t *b = wb + 20 * i;
        uint16_t d = keel_fp32_to_fp16(0.01f), m = keel_fp32_to_fp16(-0.08f);
        memcpy(b, &d, 2);
        memcpy(b + 2, &m, 2);
        for (int j = 0; j < 16; j++) b[4 + j] = (uint8_t)keel_rng_u64(&r);
    }
    printf("threads %d, T %lld; GFLOP/s by wall time (by CPU time)\n%-8s", threads, (long long)T, "");
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) printf("%20s", shapes[si].name);
    printf("\n");
    for (size_t pi = 0; pi < sizeof precs / sizeof *precs; pi++) {
        s.prec = precs[pi].p;
        printf("%-8s", precs[pi].name);
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            keel_wmat w;
            keel_wmat_init(&w, KEEL_DTYPE_Q4_1, shapes[si].n_in, shapes[si].n_out, wb);
            double wall[100], cpu[100], fl = 2.0 * (double)T * (double)w.n_in * (double)w.n_out;
            keel_matmul(y, x, &w, T, &s); // warm-up
            for (int k = 0; k < reps; k++) {
                double t0 = clk(CLOCK_MONOTONIC), c0 = clk(CLOCK_PROCESS_CPUTIME_ID);
                keel_matmul(y, x, &w, T, &s);
                wall[k] = fl / (clk(CLOCK_MONOTONIC) - t0) * 1e-9;
                cpu[k] = fl / (clk(CLOCK_PROCESS_CPUTIME_ID) - c0) * 1e-9 * threads;
            }
            qsort(wall, (size_t)reps, sizeof *wall, cmp_d);
            qsort(cpu, (size_t)reps, sizeof *cpu, cmp_d);
            printf("%12.0f (%5.0f)", wall[reps / 2], cpu[reps / 2]);
        }
        printf("\n");
    }
    printf("(by CPU time: x threads, i.e. the rate of the team if every thread had its own idle core)\n");
    keel_free_aligned(x);
    keel_free_aligned(y);
    keel_free_aligned(wb);
    keel_ops_scratch_free(&s);
    return 0;
}
