// SPDX-License-Identifier: MIT
// gemm_train.c — one thread's fp32 C (M, N) = beta*C + op(A)·op(B) on
// AVX-512, for the training kernels (grad.c's keel_gemm and the panels of
// frozen weights) in all three shapes of a linear layer: y = x·W^T (B
// transposed), dx = dy·W (plain), dW += dy^T·x (A transposed), and the
// attention products. Each 32-column strip of op(B) is packed per block of
// KC inner indices into a (KC, 32) buffer on the stack (a transpose for B
// transposed), blocks of MC rows of op(A) into panels of 12 rows, (KC, 12)
// each, in a per-thread buffer; a 12x32 register tile (24 zmm accumulators,
// the BLIS micro-kernel idea, https://github.com/flame/blis) then broadcasts
// from one contiguous A stream against the L1-resident B strip. Every element of C sums its
// products in k order, blocks of KC in turn, whatever M and the thread split:
// results do not depend on the thread count. Declared in ops/grad.h.
#include "ops/grad.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <stdatomic.h>

#define KC 256 // inner indices per packed strip: (KC, 32) floats = 32 KiB, L1-resident
#define GN 32  // columns per strip (two zmm)
#define GM 12  // rows per register tile
#define MC 192 // rows of op(A) packed at a time: (MC, KC) floats = 192 KiB, L2-resident

#define AVX512 __attribute__((target("avx512f,avx2,fma")))

// bp (kc, GN) = op(B)[k0 .. k0+kc, j0 .. j0+nr), zero past nr.
AVX512 static void pack_b(float *bp, bool tb, const float *B, int64_t ldb, int64_t k0, int64_t kc, int64_t j0,
                          int nr) {
    if (!tb) { // op(B) = B (K, N): rows are contiguous
        __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
        __mmask16 m1 = nr >= 32 ? 0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
        for (int64_t k = 0; k < kc; k++) {
            const float *b = B + (k0 + k) * ldb + j0;
            _mm512_store_ps(bp + k * GN, _mm512_maskz_loadu_ps(m0, b));
            _mm512_store_ps(bp + k * GN + 16, _mm512_maskz_loadu_ps(m1, b + 16));
        }
        return;
    }
    // op(B) = B^T, B (N, K): column t of the strip is row j0+t of B
    if (ldb > INT32_MAX / GN) { // gather offsets are 32-bit
        if (nr < GN) memset(bp, 0, (size_t)kc * GN * sizeof(float));
        for (int t = 0; t < nr; t++) {
            const float *b = B + (j0 + t) * ldb + k0;
            for (int64_t k = 0; k < kc; k++) bp[k * GN + t] = b[k];
        }
        return;
    }
    __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
    __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    __m512i idx0 = _mm512_mullo_epi32(lane, _mm512_set1_epi32((int)ldb));
    __m512i idx1 = _mm512_add_epi32(idx0, _mm512_set1_epi32((int)(16 * ldb)));
    __m512 z = _mm512_setzero_ps();
    const float *b = B + j0 * ldb + k0;
    for (int64_t k = 0; k < kc; k++) {
        _mm512_store_ps(bp + k * GN, _mm512_mask_i32gather_ps(z, m0, idx0, b + k, 4));
        _mm512_store_ps(bp + k * GN + 16, _mm512_mask_i32gather_ps(z, m1, idx1, b + k, 4));
    }
}

// c (mr, nr) (row stride ldc) = sum_k ap[k][r] * bp[k][*] + (load ? cs*c : 0);
// ap (kc, GM) is a packed panel of op(A) (rows >= mr are zero), bp (kc, GN).
AVX512 static void kernel_12x32(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc, int mr,
                                int nr, bool load, float cs) {
    __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
    __m512 a00, a01, a10, a11, a20, a21, a30, a31, a40, a41, a50, a51;
    __m512 a60, a61, a70, a71, a80, a81, a90, a91, aA0, aA1, aB0, aB1;
    __m512 vcs = _mm512_set1_ps(cs), z = _mm512_setzero_ps();
    a00 = a01 = a10 = a11 = a20 = a21 = a30 = a31 = a40 = a41 = a50 = a51 = z;
    a60 = a61 = a70 = a71 = a80 = a81 = a90 = a91 = aA0 = aA1 = aB0 = aB1 = z;
    for (int64_t k = 0; k < kc; k++, ap += GM) {
        __m512 b0 = _mm512_load_ps(bp + k * GN), b1 = _mm512_load_ps(bp + k * GN + 16), v;
#define ROW(i, n)                                  \
    v = _mm512_set1_ps(ap[n]);                     \
    a##i##0 = _mm512_fmadd_ps(v, b0, a##i##0);     \
    a##i##1 = _mm512_fmadd_ps(v, b1, a##i##1);
        ROW(0, 0) ROW(1, 1) ROW(2, 2) ROW(3, 3) ROW(4, 4) ROW(5, 5)
        ROW(6, 6) ROW(7, 7) ROW(8, 8) ROW(9, 9) ROW(A, 10) ROW(B, 11)
#undef ROW
    }
    // c = products + cs * c (BLAS's order: the sum first, then the old C)
#define STORE(i, n)                                                                                   \
    if (n < mr) {                                                                                     \
        if (load) {                                                                                   \
            a##i##0 = _mm512_fmadd_ps(vcs, _mm512_maskz_loadu_ps(m0, c + n * ldc), a##i##0);          \
            a##i##1 = _mm512_fmadd_ps(vcs, _mm512_maskz_loadu_ps(m1, c + n * ldc + 16), a##i##1);     \
        }                                                                                             \
        _mm512_mask_storeu_ps(c + n * ldc, m0, a##i##0);                                              \
        _mm512_mask_storeu_ps(c + n * ldc + 16, m1, a##i##1);                                         \
    }
    STORE(0, 0) STORE(1, 1) STORE(2, 2) STORE(3, 3) STORE(4, 4) STORE(5, 5)
    STORE(6, 6) STORE(7, 7) STORE(8, 8) STORE(9, 9) STORE(A, 10) STORE(B, 11)
#undef STORE
}

// ap: the panels of op(A)[i0 .. i0+mc, k0 .. k0+kc), each (kc, GM), rows past
// mc zero: the kernel's broadcasts then read one contiguous stream.
AVX512 static void pack_a(float *ap, bool ta, const float *A, int64_t lda, int64_t i0, int64_t mc, int64_t k0,
                          int64_t kc) {
    __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                     _mm512_set1_epi32(lda <= INT32_MAX / GM ? (int)lda : 0));
    for (int64_t p0 = 0; p0 < mc; p0 += GM, ap += kc * GM) {
        int mr = (int)(mc - p0 < GM ? mc - p0 : GM);
        if (mr < GM) memset(ap, 0, (size_t)(kc * GM) * sizeof(float));
        if (ta) { // op(A) = A^T, A (K, M): GM consecutive floats per k
            for (int64_t k = 0; k < kc; k++)
                memcpy(ap + k * GM, A + (k0 + k) * lda + i0 + p0, (size_t)mr * sizeof(float));
        } else if (lda <= INT32_MAX / GM) { // one 12-lane gather per k (rows i0+p0 .. +mr)
            __mmask16 m = (__mmask16)((1u << mr) - 1);
            const float *a = A + (i0 + p0) * lda + k0;
            for (int64_t k = 0; k < kc; k++)
                _mm512_mask_storeu_ps(ap + k * GM, m, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, a + k, 4));
        } else {
            for (int r = 0; r < mr; r++) {
                const float *a = A + (i0 + p0 + r) * lda + k0;
                for (int64_t k = 0; k < kc; k++) ap[k * GM + r] = a[k];
            }
        }
    }
}

// The packed-A buffer of the calling thread, (MC, KC) floats: allocated on its
// first call and kept (the training loop calls this thousands of times a
// step; PERF-NOTES: fresh memory is slow to touch). Every buffer is also
// recorded in a global table, so it stays reachable (LeakSanitizer) for the
// life of the process; threads beyond the table's size allocate per call.
#define POOL_MAX 1024
static _Thread_local float *tl_apack;
static float *pool[POOL_MAX];
static atomic_int pool_n;

static float *apack_buffer(bool *temp) {
    *temp = false;
    if (tl_apack) return tl_apack;
    float *b = keel_malloc_aligned((size_t)MC * KC * sizeof(float));
    if (!b) return NULL;
    int slot = atomic_fetch_add(&pool_n, 1);
    if (slot >= POOL_MAX) {
        *temp = true;
        return b;
    }
    pool[slot] = b;
    return tl_apack = b;
}

bool keel_sgemm_avx512(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                       const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (!(keel_cpu_features() & KEEL_CPU_AVX512)) return false;
    if (M <= 0 || N <= 0) return true;
    bool temp;
    float *ap = apack_buffer(&temp);
    if (!ap) return false; // out of memory: the caller's other paths
    if (K <= 0) {
        for (int64_t i = 0; i < M; i++) {
            float *c = C + i * ldc;
            if (beta == 0.0f) memset(c, 0, (size_t)N * sizeof(float));
            else if (beta != 1.0f)
                for (int64_t j = 0; j < N; j++) c[j] *= beta;
        }
        if (temp) keel_free_aligned(ap);
        return true;
    }
    float bp[KC * GN] __attribute__((aligned(64)));
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
        int64_t kc = K - k0 < KC ? K - k0 : KC;
        bool load = k0 > 0 || beta != 0.0f;
        float cs = k0 > 0 ? 1.0f : beta;
        for (int64_t i0 = 0; i0 < M; i0 += MC) {
            int64_t mc = M - i0 < MC ? M - i0 : MC;
            pack_a(ap, ta, A, lda, i0, mc, k0, kc);
            for (int64_t j0 = 0; j0 < N; j0 += GN) {
                int nr = (int)(N - j0 < GN ? N - j0 : GN);
                pack_b(bp, tb, B, ldb, k0, kc, j0, nr);
                for (int64_t p0 = 0; p0 < mc; p0 += GM) {
                    int mr = (int)(mc - p0 < GM ? mc - p0 : GM);
                    kernel_12x32(kc, ap + (p0 / GM) * kc * GM, bp, C + (i0 + p0) * ldc + j0, ldc, mr, nr, load, cs);
                }
            }
        }
    }
    if (temp) keel_free_aligned(ap);
    return true;
}

#else

bool keel_sgemm_avx512(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                       const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    (void)ta, (void)tb, (void)M, (void)N, (void)K, (void)A, (void)lda, (void)B, (void)ldb, (void)beta, (void)C,
        (void)ldc;
    return false;
}

#endif
