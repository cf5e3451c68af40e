// SPDX-License-Identifier: MIT
// test_gemm_train.c — the AVX-512 training GEMM (src/ops/gemm_train.c) in all
// four transpose cases against a double-precision reference, with shapes that
// hit every edge: rows not a multiple of the 12-row tile, columns not a
// multiple of the 32-column strip, K over several 256-long inner blocks,
// leading dimensions larger than the rows, beta 0 / 0.5 / 1; and keel_gemm
// giving bit-identical results for 1, 2 and 3 threads. Skips (says so) on a
// CPU without AVX-512, where keel_sgemm_avx512 must refuse.
#include "ops/grad.h"
#include "test.h"

static uint32_t rng_state = 12345u;
static float frand(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void one(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float beta) {
    int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 7;
    int64_t arows = ta ? K : M, brows = tb ? N : K;
    float *A = malloc(sizeof(float) * (size_t)(arows * lda)), *B = malloc(sizeof(float) * (size_t)(brows * ldb));
    float *C = malloc(sizeof(float) * (size_t)(M * ldc));
    double *R = malloc(sizeof(double) * (size_t)(M * N));
    for (int64_t i = 0; i < arows * lda; i++) A[i] = frand();
    for (int64_t i = 0; i < brows * ldb; i++) B[i] = frand();
    for (int64_t i = 0; i < M * ldc; i++) C[i] = frand();
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = beta == 0.0f ? 0.0 : (double)beta * C[i * ldc + j];
            for (int64_t k = 0; k < K; k++)
                s += (double)(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
            R[i * N + j] = s;
        }
    float pad = C[N]; // a padding element of row 0 must stay as it was
    CHECK("avx512 path taken", keel_sgemm_avx512(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc));
    double worst = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double e = fabs((double)C[i * ldc + j] - R[i * N + j]) / (1.0 + fabs(R[i * N + j]));
            if (e > worst) worst = e;
        }
    char d[96];
    snprintf(d, sizeof d, "ta %d tb %d M %lld N %lld K %lld beta %.1f", ta, tb, (long long)M, (long long)N,
             (long long)K, (double)beta);
    if (!(worst < 1e-5 * sqrt((double)K))) fprintf(stderr, "%s: worst rel %.3g\n", d, worst);
    CHECK(d, worst < 1e-5 * sqrt((double)K));
    CHECK("padding of C untouched", C[N] == pad);
    free(A), free(B), free(C), free(R);
}

int main(void) {
    if (!(keel_cpu_features() & KEEL_CPU_AVX512)) {
        float a = 1, b = 1, c = 0;
        CHECK("refuses without AVX-512", !keel_sgemm_avx512(false, false, 1, 1, 1, &a, 1, &b, 1, 0.0f, &c, 1));
        TEST_SKIP("no AVX-512 on this CPU (keel_gemm uses its other paths)");
    }
    const float betas[] = {0.0f, 0.5f, 1.0f};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int b = 0; b < 3; b++) {
                one(ta, tb, 29, 45, 600, betas[b]); // 3 inner blocks, row and column edges
                one(ta, tb, 12, 32, 256, betas[b]); // exactly one tile, one block
                one(ta, tb, 5, 7, 3, betas[b]);     // smaller than a tile
            }
    // keel_gemm: the thread split must not change a bit.
    const int64_t M = 100, N = 70, K = 300;
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
    float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
    for (int64_t i = 0; i < M * K; i++) A[i] = frand();
    for (int64_t i = 0; i < K * N; i++) B[i] = frand();
    for (int nt = 2; nt <= 3; nt++) {
        memset(C1, 0, sizeof(float) * M * N);
        memset(C2, 0, sizeof(float) * M * N);
        keel_gemm(false, false, M, N, K, A, K, B, N, 0.0f, C1, N, 1);
        keel_gemm(false, false, M, N, K, A, K, B, N, 0.0f, C2, N, nt);
        CHECK("keel_gemm: same bits for 1 and n threads", !memcmp(C1, C2, sizeof(float) * M * N));
    }
    free(A), free(B), free(C1), free(C2);
    return test_report();
}
