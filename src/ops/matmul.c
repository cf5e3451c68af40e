// SPDX-License-Identifier: MIT
// matmul.c — the fast y = x · W^T for stored (possibly quantized) weights,
// and the scratch buffers the kernels share. Several weights that read the
// same x (q/k/v, gate/up) go through one call: x is prepared once and all
// their rows are shared out in one OpenMP region.
//   T == 1 (decode): a fused dequantize-dot per output row (quant.c); each
//     weight byte is read once and nothing is written but y.
//   T > 1, AVX-512: x is packed once into strips of 32 tokens, (K, 32) each;
//     every thread takes tiles of 12 weight rows, dequantizes them into its
//     own L1-sized buffer and runs a 12x32 register-tiled FMA kernel over all
//     strips (the BLIS micro-kernel idea, https://github.com/flame/blis,
//     with the weight side kept in rows so dequantization needs no transpose).
//   T > 1 otherwise: panels of W are dequantized into the thread's buffer and
//     multiplied with sgemm (OpenBLAS, single-threaded inside our region), or
//     with a blocked loop of our own when built without OpenBLAS.
#include "ops/ops.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef KEEL_USE_OPENBLAS
#include <cblas.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define KEEL_X86 1
#endif

#define PANEL_MAX 128 // rows per sgemm panel (generic path)
#define MR 12         // weight rows per AVX-512 tile
#define NR 32         // tokens per packed strip (two zmm)

static inline int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static inline bool use_avx512(void) { return keel_cpu_features() & KEEL_CPU_AVX512; }

// ---- scratch --------------------------------------------------------------------

size_t keel_matmul_scratch_floats(int64_t max_in) { return (size_t)PANEL_MAX * (size_t)max_in; }

size_t keel_matmul_shared_floats(int64_t max_T, int64_t max_in) {
    return (size_t)((max_T + NR - 1) / NR * NR) * (size_t)max_in;
}

keel_status keel_ops_scratch_init(keel_ops_scratch *s, int n_threads, size_t per_thread,
                                  size_t shared, keel_err *err) {
    memset(s, 0, sizeof *s);
    if (n_threads < 1) n_threads = 1;
    per_thread = (per_thread + 15) & ~(size_t)15; // keep every thread's slice 64-byte aligned
    if (per_thread == 0) per_thread = 16;
    if (per_thread > SIZE_MAX / sizeof(float) / (size_t)n_threads - shared)
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "ops scratch: %d threads x %zu floats overflows",
                         n_threads, per_thread);
    s->buf = keel_malloc_aligned((size_t)n_threads * per_thread * sizeof(float));
    s->shared = shared ? keel_malloc_aligned(shared * sizeof(float)) : NULL;
    if (!s->buf || (shared && !s->shared)) {
        keel_ops_scratch_free(s);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "ops scratch: out of memory (%d x %zu + %zu floats)",
                         n_threads, per_thread, shared);
    }
    s->n_threads = n_threads;
    s->per_thread = per_thread;
    s->shared_floats = shared;
#ifdef KEEL_USE_OPENBLAS
    // We split every matmul over our own OpenMP team and call sgemm from
    // inside it; a team of one thread is not "in parallel" for OpenBLAS, which
    // would then start its own threads on top of ours.
    openblas_set_num_threads(1);
#endif
    return KEEL_OK;
}

void keel_ops_scratch_free(keel_ops_scratch *s) {
    if (!s) return;
    keel_free_aligned(s->buf);
    keel_free_aligned(s->shared);
    memset(s, 0, sizeof *s);
}

// ---- generic path: dequantized panels + sgemm ----------------------------------------

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
KEEL_OMP(simd reduction(+ : s0, s1, s2, s3))
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
KEEL_OMP(simd reduction(+ : s0))
            for (int64_t k = 0; k < K; k++) s0 += at[k] * br[k];
            c[t * ldc + r] = s0;
        }
    }
#endif
}

// Rows of all weights in the group as one list of panels of P rows.
typedef struct panel_plan {
    int64_t P;
    int64_t first[8]; // first panel index of each weight; first[n] = total
} panel_plan;

static void plan_panels(panel_plan *pl, const keel_mm *mm, int n, int64_t P) {
    pl->P = P;
    pl->first[0] = 0;
    for (int i = 0; i < n; i++) pl->first[i + 1] = pl->first[i] + (mm[i].w->n_out + P - 1) / P;
}

static void matmul_generic(const float *x, int64_t T, const keel_mm *mm, int n, const keel_ops_scratch *s,
                           int nt) {
    const int64_t K = mm[0].w->n_in;
    KEEL_ASSERT(s && s->buf && s->per_thread >= keel_matmul_scratch_floats(K));
    int64_t rows = 0;
    for (int i = 0; i < n; i++) rows += mm[i].w->n_out;
    // panels: about two per thread, at most PANEL_MAX rows, a multiple of 8
    int64_t P = (rows + 2 * nt - 1) / (2 * nt);
    P = (P + 7) & ~(int64_t)7;
    if (P > PANEL_MAX) P = PANEL_MAX;
    panel_plan pl;
    plan_panels(&pl, mm, n, P);

KEEL_OMP(parallel for num_threads(nt) schedule(dynamic, 1))
    for (int64_t p = 0; p < pl.first[n]; p++) {
        int i = 0;
        while (p >= pl.first[i + 1]) i++;
        const keel_wmat *w = mm[i].w;
        int64_t r0 = (p - pl.first[i]) * P, np = w->n_out - r0 < P ? w->n_out - r0 : P;
        const float *panel;
        if (w->type == KEEL_DTYPE_F32 && ((uintptr_t)w->data % sizeof(float)) == 0) {
            panel = (const float *)(const void *)(w->data + (size_t)r0 * w->row_bytes); // used in place
        } else {
            float *buf = s->buf + (size_t)thread_id() * s->per_thread;
            for (int64_t r = 0; r < np; r++)
                keel_dequant_row(w->type, w->data + (size_t)(r0 + r) * w->row_bytes, buf + r * K, K);
            panel = buf;
        }
        gemm_nt(T, np, K, x, panel, mm[i].y + r0, w->n_out);
    }
}

// ---- AVX-512 path: packed x strips + 12x32 register tiles -----------------------------

#ifdef KEEL_X86
#define AVX512 __attribute__((target("avx512f,avx2,fma,f16c")))

// xs (K, NR) = x[t0 .. t0+NR) transposed, zero past T. Two 16-lane gathers
// per k read one column of x; the stores are contiguous.
AVX512 static void pack_strip(float *xs, const float *x, int64_t T, int64_t K, int64_t t0) {
    int64_t nt = T - t0 < NR ? T - t0 : NR;
    const float *x0 = x + t0 * K;
    if (K > INT32_MAX / NR) { // gather offsets are 32-bit
        for (int64_t k = 0; k < K; k++)
            for (int64_t t = 0; t < NR; t++) xs[k * NR + t] = t < nt ? x0[t * K + k] : 0.0f;
        return;
    }
    __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    __m512i idx0 = _mm512_mullo_epi32(lane, _mm512_set1_epi32((int)K));
    __m512i idx1 = _mm512_add_epi32(idx0, _mm512_set1_epi32((int)(16 * K)));
    __mmask16 m0 = nt >= 16 ? 0xffff : (__mmask16)((1u << nt) - 1);
    __mmask16 m1 = nt >= 32 ? 0xffff : nt <= 16 ? 0 : (__mmask16)((1u << (nt - 16)) - 1);
    __m512 z = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        _mm512_store_ps(xs + k * NR, _mm512_mask_i32gather_ps(z, m0, idx0, x0 + k, 4));
        _mm512_store_ps(xs + k * NR + 16, _mm512_mask_i32gather_ps(z, m1, idx1, x0 + k, 4));
    }
}

// c[t][r] (row stride ldc) = sum_k w[r][k] * xs[k][t] for r < mr, t < nt.
// w: MR rows of K floats (rows >= mr are zero); xs: (K, NR).
AVX512 static void kernel_12x32(int64_t K, const float *w, const float *xs, float *c, int64_t ldc,
                                int mr, int nt) {
    __m512 a00 = _mm512_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00;
    __m512 a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
    __m512 a60 = a00, a61 = a00, a70 = a00, a71 = a00, a80 = a00, a81 = a00;
    __m512 a90 = a00, a91 = a00, aA0 = a00, aA1 = a00, aB0 = a00, aB1 = a00;
    const float *w0 = w, *w1 = w + K, *w2 = w + 2 * K, *w3 = w + 3 * K, *w4 = w + 4 * K, *w5 = w + 5 * K;
    const float *w6 = w + 6 * K, *w7 = w + 7 * K, *w8 = w + 8 * K, *w9 = w + 9 * K, *wA = w + 10 * K,
                *wB = w + 11 * K;
    for (int64_t k = 0; k < K; k++) {
        __m512 x0 = _mm512_load_ps(xs + k * NR), x1 = _mm512_load_ps(xs + k * NR + 16);
        __m512 b;
#define ROW(i, wi)                                     \
    b = _mm512_set1_ps(wi[k]);                         \
    a##i##0 = _mm512_fmadd_ps(b, x0, a##i##0);         \
    a##i##1 = _mm512_fmadd_ps(b, x1, a##i##1);
        ROW(0, w0) ROW(1, w1) ROW(2, w2) ROW(3, w3) ROW(4, w4) ROW(5, w5)
        ROW(6, w6) ROW(7, w7) ROW(8, w8) ROW(9, w9) ROW(A, wA) ROW(B, wB)
#undef ROW
    }
    // The accumulators hold c transposed (one weight row per register pair):
    // spill to a tile and write out with the row stride of c.
    float tile[MR][NR] __attribute__((aligned(64)));
#define ST(i, r)                                 \
    _mm512_store_ps(tile[r], a##i##0);           \
    _mm512_store_ps(tile[r] + 16, a##i##1);
    ST(0, 0) ST(1, 1) ST(2, 2) ST(3, 3) ST(4, 4) ST(5, 5)
    ST(6, 6) ST(7, 7) ST(8, 8) ST(9, 9) ST(A, 10) ST(B, 11)
#undef ST
    // column t of the tile (stride NR) is row t of c: one gather, one masked store
    __m512i col = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                     _mm512_set1_epi32(NR));
    __mmask16 m = (__mmask16)((1u << mr) - 1);
    for (int t = 0; t < nt; t++)
        _mm512_mask_storeu_ps(c + t * ldc, m, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, col, &tile[0][t], 4));
}

static void matmul_avx512(const float *x, int64_t T, const keel_mm *mm, int n, const keel_ops_scratch *s,
                          int nt) {
    const int64_t K = mm[0].w->n_in;
    const int64_t n_strips = (T + NR - 1) / NR;
    KEEL_ASSERT(s && s->shared && s->shared_floats >= (size_t)(n_strips * NR * K));
    KEEL_ASSERT(s->per_thread >= (size_t)(MR * K));
    panel_plan pl;
    plan_panels(&pl, mm, n, MR);
    float *xp = s->shared;

KEEL_OMP(parallel num_threads(nt))
    {
KEEL_OMP(for schedule(static))
        for (int64_t st = 0; st < n_strips; st++) pack_strip(xp + st * NR * K, x, T, K, st * NR);
        // (implicit barrier: every strip is packed before any tile reads it)
        float *wb = s->buf + (size_t)thread_id() * s->per_thread;
KEEL_OMP(for schedule(dynamic, 1))
        for (int64_t p = 0; p < pl.first[n]; p++) {
            int i = 0;
            while (p >= pl.first[i + 1]) i++;
            const keel_wmat *w = mm[i].w;
            int64_t r0 = (p - pl.first[i]) * MR;
            int mr = (int)(w->n_out - r0 < MR ? w->n_out - r0 : MR);
            for (int r = 0; r < mr; r++)
                keel_dequant_row(w->type, w->data + (size_t)(r0 + r) * w->row_bytes, wb + r * K, K);
            if (mr < MR) memset(wb + mr * K, 0, sizeof(float) * (size_t)((MR - mr) * K));
            for (int64_t st = 0; st < n_strips; st++) {
                int64_t t0 = st * NR;
                int ntk = (int)(T - t0 < NR ? T - t0 : NR);
                kernel_12x32(K, wb, xp + st * NR * K, mm[i].y + t0 * w->n_out + r0, w->n_out, mr, ntk);
            }
        }
    }
}
#endif // KEEL_X86

// ---- entry points ------------------------------------------------------------------------

void keel_matmul_multi(const float *x, int64_t T, const keel_mm *mm, int n, const keel_ops_scratch *s) {
    KEEL_ASSERT(n >= 1 && n <= 7);
    if (T <= 0) return;
    const int64_t K = mm[0].w->n_in;
    double work = 0.0;
    int64_t rows = 0;
    for (int i = 0; i < n; i++) {
        KEEL_ASSERT(mm[i].w->n_in == K);
        rows += mm[i].w->n_out;
    }
    work = (double)T * (double)K * (double)rows;
    int nt = s && s->n_threads > 0 ? s->n_threads : 1;
    if (work < 32768.0) nt = 1; // tiny problems are not worth waking the team
    (void)nt;

    if (T == 1) {
KEEL_OMP(parallel for num_threads(nt) schedule(static))
        for (int64_t r = 0; r < rows; r++) {
            int i = 0;
            int64_t rr = r;
            while (rr >= mm[i].w->n_out) rr -= mm[i++].w->n_out;
            const keel_wmat *w = mm[i].w;
            mm[i].y[rr] = keel_dot_row(w->type, w->data + (size_t)rr * w->row_bytes, x, K);
        }
        return;
    }
    if (s && s->prec != KEEL_PREC_FP32 && keel_matmul_amx_ok(mm, n, T, s)) {
        keel_matmul_amx(x, T, mm, n, s, nt, s->prec == KEEL_PREC_BF16X3);
        return;
    }
#ifdef KEEL_X86
    if (use_avx512() && s && s->shared && s->shared_floats >= keel_matmul_shared_floats(T, K)) {
        matmul_avx512(x, T, mm, n, s, nt);
        return;
    }
#endif
    matmul_generic(x, T, mm, n, s, nt);
}

void keel_matmul(float *y, const float *x, const keel_wmat *w, int64_t T, const keel_ops_scratch *s) {
    keel_mm mm = {w, y};
    keel_matmul_multi(x, T, &mm, 1, s);
}
