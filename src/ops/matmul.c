// SPDX-License-Identifier: MIT
// matmul.c — the fast y = x · W^T for stored (possibly quantized) weights,
// and the scratch buffers the kernels share.
//   T > 1 (prompt batches, training): the output rows are cut into panels;
//     each OpenMP thread dequantizes a panel of W into its own scratch buffer
//     and multiplies it with sgemm (single-threaded inside the parallel region:
//     OpenBLAS's OpenMP build detects that), so dequantization is done once
//     per call and amortised over all T rows of x.
//   T == 1 (decode): a fused dequantize-dot per output row (quant.c), rows
//     split over threads: the weight is read once, nothing is written.
// Without OpenBLAS the sgemm is a blocked loop of our own (much slower).
#include "ops/ops.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef KEEL_USE_OPENBLAS
#include <cblas.h>
#endif

// Most rows a panel holds; the scratch per thread is PANEL_MAX * max_in floats.
#define PANEL_MAX 128

static inline int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

size_t keel_matmul_scratch_floats(int64_t max_in) { return (size_t)PANEL_MAX * (size_t)max_in; }

keel_status keel_ops_scratch_init(keel_ops_scratch *s, int n_threads, size_t per_thread,
                                  keel_err *err) {
    memset(s, 0, sizeof *s);
    if (n_threads < 1) n_threads = 1;
    per_thread = (per_thread + 15) & ~(size_t)15; // keep every thread's slice 64-byte aligned
    if (per_thread == 0) per_thread = 16;
    if (per_thread > SIZE_MAX / sizeof(float) / (size_t)n_threads)
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "ops scratch: %d threads x %zu floats overflows",
                         n_threads, per_thread);
    s->buf = keel_malloc_aligned((size_t)n_threads * per_thread * sizeof(float));
    if (!s->buf)
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "ops scratch: out of memory (%d x %zu floats)",
                         n_threads, per_thread);
    s->n_threads = n_threads;
    s->per_thread = per_thread;
    return KEEL_OK;
}

void keel_ops_scratch_free(keel_ops_scratch *s) {
    if (!s) return;
    keel_free_aligned(s->buf);
    memset(s, 0, sizeof *s);
}

// c (T, np) with row stride ldc = a (T, K) · b (np, K)^T
static void gemm_nt(int64_t T, int64_t np, int64_t K, const float *a, const float *b, float *c,
                    int64_t ldc) {
#ifdef KEEL_USE_OPENBLAS
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)T, (blasint)np, (blasint)K, 1.0f,
                a, (blasint)K, b, (blasint)K, 0.0f, c, (blasint)ldc);
#else
    // 4 rows of a against one row of b: each b row is loaded once per 4 x rows.
    int64_t t = 0;
    for (; t + 4 <= T; t += 4) {
        const float *a0 = a + t * K, *a1 = a0 + K, *a2 = a1 + K, *a3 = a2 + K;
        for (int64_t r = 0; r < np; r++) {
            const float *br = b + r * K;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
            for (int64_t k = 0; k < K; k++) {
                s0 += a0[k] * br[k];
                s1 += a1[k] * br[k];
                s2 += a2[k] * br[k];
                s3 += a3[k] * br[k];
            }
            c[t * ldc + r] = s0;
            c[(t + 1) * ldc + r] = s1;
            c[(t + 2) * ldc + r] = s2;
            c[(t + 3) * ldc + r] = s3;
        }
    }
    for (; t < T; t++) {
        const float *at = a + t * K;
        for (int64_t r = 0; r < np; r++) {
            const float *br = b + r * K;
            float s0 = 0;
#pragma omp simd reduction(+ : s0)
            for (int64_t k = 0; k < K; k++) s0 += at[k] * br[k];
            c[t * ldc + r] = s0;
        }
    }
#endif
}

void keel_matmul(float *y, const float *x, const keel_wmat *w, int64_t T, const keel_ops_scratch *s) {
    const int64_t n_in = w->n_in, n_out = w->n_out;
    const size_t rb = w->row_bytes;
    const keel_dtype type = w->type;
    const uint8_t *data = w->data;
    int nt = s && s->n_threads > 0 ? s->n_threads : 1;
    if (T <= 0) return;

    // Tiny problems are not worth waking the team.
    double work = (double)T * (double)n_in * (double)n_out;
    if (work < 32768.0) nt = 1;
    (void)nt;

    if (T == 1) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t r = 0; r < n_out; r++) y[r] = keel_dot_row(type, data + (size_t)r * rb, x, n_in);
        return;
    }

    KEEL_ASSERT(s && s->buf && s->per_thread >= keel_matmul_scratch_floats(n_in));
    // Panels: a multiple of the team size, each at most PANEL_MAX rows.
    int64_t n_panels = ((n_out + (int64_t)nt * PANEL_MAX - 1) / ((int64_t)nt * PANEL_MAX)) * nt;
    int64_t P = (n_out + n_panels - 1) / n_panels;
    P = (P + 7) & ~(int64_t)7;
    if (P > PANEL_MAX) P = PANEL_MAX;
    n_panels = (n_out + P - 1) / P;
    // F32 rows that are float-aligned are used in place.
    bool in_place = type == KEEL_DTYPE_F32 && ((uintptr_t)data % sizeof(float)) == 0;

#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int64_t p = 0; p < n_panels; p++) {
        int64_t r0 = p * P, np = n_out - r0 < P ? n_out - r0 : P;
        const float *panel;
        if (in_place) {
            panel = (const float *)(const void *)(data + (size_t)r0 * rb);
        } else {
            float *buf = s->buf + (size_t)thread_id() * s->per_thread;
            for (int64_t r = 0; r < np; r++)
                keel_dequant_row(type, data + (size_t)(r0 + r) * rb, buf + r * n_in, n_in);
            panel = buf;
        }
        gemm_nt(T, np, n_in, x, panel, y + r0, n_out);
    }
}
