// SPDX-License-Identifier: MIT
// gemm_train.c — one thread's fp32 C (M, N) = beta*C + op(A)·op(B) on
// AVX-512, for the training kernels (grad.c's keel_gemm and the panels of
// frozen weights) in all three shapes of a linear layer: y = x·W^T (B
// transposed), dx = dy·W (plain), dW += dy^T·x (A transposed), and the
// attention products. Each 32-column strip of op(B) is packed per block of
// KC inner indices into a (KC, 32) buffer on the stack (a gather for B
// transposed); then a 12x32 register tile (24 zmm accumulators, the BLIS
// micro-kernel idea, https://github.com/flame/blis) walks all rows of C,
// reading op(A) in place by broadcasts: 12 row pointers for plain A, 12
// consecutive floats per k for transposed A. Every element of C sums its
// products in k order, blocks of KC in turn, whatever M and the thread split:
// results do not depend on the thread count. Declared in ops/grad.h.
#include "ops/grad.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define KC 256 // inner indices per packed strip: (KC, 32) floats = 32 KiB, L1-resident
#define GN 32  // columns per strip (two zmm)
#define GM 12  // rows per register tile

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
    if (nr < GN) memset(bp, 0, (size_t)kc * GN * sizeof(float));
    for (int t = 0; t < nr; t++) {
        const float *b = B + (j0 + t) * ldb + k0;
        for (int64_t k = 0; k < kc; k++) bp[k * GN + t] = b[k];
    }
}

// c (mr, nr) (row stride ldc) = sum_k ... + (load ? cs*c : 0): a(r, k) * bp[k][*],
// a(r, k) = a[r*rs + k*ks]; rows r >= mr read row mr-1 (valid memory) and are
// not stored.
AVX512 static void kernel_12x32(int64_t kc, const float *a, int64_t rs, int64_t ks, const float *bp, float *c,
                                int64_t ldc, int mr, int nr, bool load, float cs) {
    __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
    const float *p[GM];
    for (int r = 0; r < GM; r++) p[r] = a + (int64_t)(r < mr ? r : mr - 1) * rs;
    const float *p0 = p[0], *p1 = p[1], *p2 = p[2], *p3 = p[3], *p4 = p[4], *p5 = p[5];
    const float *p6 = p[6], *p7 = p[7], *p8 = p[8], *p9 = p[9], *pA = p[10], *pB = p[11];
    __m512 a00, a01, a10, a11, a20, a21, a30, a31, a40, a41, a50, a51;
    __m512 a60, a61, a70, a71, a80, a81, a90, a91, aA0, aA1, aB0, aB1;
    __m512 vcs = _mm512_set1_ps(cs), z = _mm512_setzero_ps();
    a00 = a01 = a10 = a11 = a20 = a21 = a30 = a31 = a40 = a41 = a50 = a51 = z;
    a60 = a61 = a70 = a71 = a80 = a81 = a90 = a91 = aA0 = aA1 = aB0 = aB1 = z;
    int64_t kk = 0;
    for (int64_t k = 0; k < kc; k++, kk += ks) {
        __m512 b0 = _mm512_load_ps(bp + k * GN), b1 = _mm512_load_ps(bp + k * GN + 16), v;
#define ROW(i, pi)                                 \
    v = _mm512_set1_ps(pi[kk]);                    \
    a##i##0 = _mm512_fmadd_ps(v, b0, a##i##0);     \
    a##i##1 = _mm512_fmadd_ps(v, b1, a##i##1);
        ROW(0, p0) ROW(1, p1) ROW(2, p2) ROW(3, p3) ROW(4, p4) ROW(5, p5)
        ROW(6, p6) ROW(7, p7) ROW(8, p8) ROW(9, p9) ROW(A, pA) ROW(B, pB)
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

bool keel_sgemm_avx512(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                       const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (!(keel_cpu_features() & KEEL_CPU_AVX512)) return false;
    if (M <= 0 || N <= 0) return true;
    if (K <= 0) {
        for (int64_t i = 0; i < M; i++) {
            float *c = C + i * ldc;
            if (beta == 0.0f) memset(c, 0, (size_t)N * sizeof(float));
            else if (beta != 1.0f)
                for (int64_t j = 0; j < N; j++) c[j] *= beta;
        }
        return true;
    }
    float bp[KC * GN] __attribute__((aligned(64)));
    // a(i, k) of op(A): row stride rs, inner stride ks
    const int64_t rs = ta ? 1 : lda, ks = ta ? lda : 1;
    for (int64_t j0 = 0; j0 < N; j0 += GN) {
        int nr = (int)(N - j0 < GN ? N - j0 : GN);
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            int64_t kc = K - k0 < KC ? K - k0 : KC;
            pack_b(bp, tb, B, ldb, k0, kc, j0, nr);
            bool load = k0 > 0 || beta != 0.0f;
            float cs = k0 > 0 ? 1.0f : beta;
            for (int64_t i0 = 0; i0 < M; i0 += GM) {
                int mr = (int)(M - i0 < GM ? M - i0 : GM);
                kernel_12x32(kc, A + i0 * rs + k0 * ks, rs, ks, bp, C + i0 * ldc + j0, ldc, mr, nr, load, cs);
            }
        }
    }
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
