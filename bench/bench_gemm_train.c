// SPDX-License-Identifier: MIT
// bench_gemm_train.c — GFLOP/s of keel_gemm (ops/grad.h; the AVX-512 kernel
// of ops/gemm_train.c where the CPU has it) on the three GEMMs of a linear
// layer in training, SmolLM2-135M's shapes at B*T = 1024 rows:
//   fwd  y (N, n_out)  = x · W^T            (B transposed)
//   dx   dx (N, n_in)  = dy · W             (plain)
//   dW   dW (n_out, n_in) += dy^T · x       (A transposed)
// Best of 3 per shape. Uses the internal ops API (links libkeel.a). Not a test.
//   bench_gemm_train [threads=1]
#include "ops/grad.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    int nt = argc > 1 ? atoi(argv[1]) : 1;
    if (nt < 1) return 2;
    const int64_t N = 1024;
    static const struct {
        const char *name;
        int64_t n_in, n_out;
    } shapes[] = {{"o_proj", 576, 576}, {"gate/up", 576, 1536}, {"down", 1536, 576}, {"lm_head", 576, 49152}};
    float *x = malloc(sizeof(float) * (size_t)(N * 1536)), *W = malloc(sizeof(float) * (size_t)(49152 * 576));
    float *dx = malloc(sizeof(float) * (size_t)(N * 1536));
    float *y = malloc(sizeof(float) * (size_t)(N * 49152)), *dW = calloc((size_t)(49152 * 576), sizeof(float));
    if (!x || !dx || !W || !y || !dW) return 1;
    for (int64_t i = 0; i < N * 1536; i++) x[i] = 0.001f * (float)(i % 97);
    for (int64_t i = 0; i < 49152 * 576; i++) W[i] = 0.001f * (float)(i % 89);
    memset(y, 0, sizeof(float) * (size_t)(N * 49152));
    printf("%-8s %6s %6s %8s %8s %8s   (GFLOP/s, %d thread%s, N = %lld)\n", "shape", "n_in", "n_out", "fwd", "dx",
           "dW", nt, nt > 1 ? "s" : "", (long long)N);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t ni = shapes[s].n_in, no = shapes[s].n_out;
        double fl = 2.0 * (double)N * (double)ni * (double)no, g[3];
        for (int c = 0; c < 3; c++) {
            double best = 1e30;
            for (int r = 0; r < 3; r++) {
                double t0 = now();
                if (c == 0) keel_gemm(false, true, N, no, ni, x, ni, W, ni, 0.0f, y, no, nt);
                if (c == 1) keel_gemm(false, false, N, ni, no, y, no, W, ni, 0.0f, dx, ni, nt);
                if (c == 2) keel_gemm(true, false, no, ni, N, y, no, x, ni, 1.0f, dW, ni, nt);
                double t = now() - t0;
                if (t < best) best = t;
            }
            g[c] = fl / best * 1e-9;
        }
        printf("%-8s %6lld %6lld %8.1f %8.1f %8.1f\n", shapes[s].name, (long long)ni, (long long)no, g[0], g[1], g[2]);
    }
    free(x), free(dx), free(W), free(y), free(dW);
    return 0;
}
