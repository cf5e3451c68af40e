// SPDX-License-Identifier: MIT
// matmul_amx.c — y (T, N) = x (T, K) · W^T on Intel AMX tiles (TDPBF16PS:
// a 16x16 fp32 tile += a 16x32 bf16 tile · a 32x16 bf16 tile, about four to
// eight times the fp32 FMA rate of a core here). Called by matmul.c for
// T > 1 when the CPU has AMX-BF16 and the precision asks for it.
//   A tiles: weight rows, dequantized to fp32 then rounded to bf16, kept in
//     their natural row order (16 rows x 32 k per tile) in the thread's scratch;
//   B tiles: x, packed once per call into the shared scratch, 32 k x 16 tokens
//     in the "VNNI" pair layout: tile row kp holds (x[t][2kp], x[t][2kp+1])
//     for the 16 tokens t (a 16x16 transpose of 32-bit pairs);
//   C tiles: 16 weight rows x 16 tokens, transposed into y on the way out.
// Precision: KEEL_PREC_BF16 rounds both sides to bf16 once (8 significant
// bits; fp32 sums). KEEL_PREC_BF16X3 splits each value v into hi = bf16(v)
// and lo = bf16(v - hi) and sums hi·hi + lo·hi + hi·lo (the lo·lo term,
// ~2^-16 relative, is dropped): 16 significant bits per product, three tile
// products instead of one. The same kernel runs both: a "segment" is one
// (A part, B part) pair walked over all of K. Intel SDM vol. 1 ch. 18 (AMX);
// the split is the bf16x3 scheme of Henry, Tang & Heinecke, "Leveraging the
// bfloat16 Artificial Intelligence Datatype For Higher-Precision
// Computations", ARITH 2019 (https://arxiv.org/abs/1904.06376).
#include "ops/ops.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define AMX_NP 32 // weight rows per panel (two A tiles)
#define AMX_TP 32 // tokens per step (two B tiles)

#define AMX                                                                                            \
    __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c")))

typedef struct tile_config {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

// All eight tiles 16 rows x 64 bytes; partial tiles are zero-padded instead.
AMX static void tiles_on(void) {
    tile_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 8; i++) {
        c.colsb[i] = 64;
        c.rows[i] = 16;
    }
    _tile_loadconfig(&c);
}

// In-place 16x16 transpose of 32-bit elements: r[i] is row i.
AMX static void transpose16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // u[4g + c], 128-bit lane L: column 4L + c of rows 4g .. 4g+3
    for (int g = 0; g < 4; g++) {
        u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g + 0], t[4 * g + 2]);
        u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g + 0], t[4 * g + 2]);
        u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    for (int c = 0; c < 4; c++) {
        __m512i v0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88);
        __m512i v1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xdd);
        __m512i v2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88);
        __m512i v3 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xdd);
        r[c] = _mm512_shuffle_i32x4(v0, v2, 0x88);
        r[c + 8] = _mm512_shuffle_i32x4(v0, v2, 0xdd);
        r[c + 4] = _mm512_shuffle_i32x4(v1, v3, 0x88);
        r[c + 12] = _mm512_shuffle_i32x4(v1, v3, 0xdd);
    }
}

// bf16 of 16 floats (round to nearest even) and that value back as floats.
AMX static inline __m256i bf16_round(__m512 v, __m512 *back) {
    __m256i h = (__m256i)_mm512_cvtneps_pbh(v);
    *back = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return h;
}

// 32 floats as 32 bf16 hi parts, and (when lo) the 32 bf16 remainders.
AMX static inline void split32(const float *v, __m512i *hi, __m512i *lo) {
    __m512 a = _mm512_loadu_ps(v), b = _mm512_loadu_ps(v + 16), ab, bb;
    __m256i ha = bf16_round(a, &ab), hb = bf16_round(b, &bb);
    *hi = _mm512_inserti64x4(_mm512_castsi256_si512(ha), hb, 1);
    if (lo) {
        __m256i la = (__m256i)_mm512_cvtneps_pbh(_mm512_sub_ps(a, ab));
        __m256i lb = (__m256i)_mm512_cvtneps_pbh(_mm512_sub_ps(b, bb));
        *lo = _mm512_inserti64x4(_mm512_castsi256_si512(la), lb, 1);
    }
}

// Pack tokens [t0, t0+16) of x (T, K) as B tiles, one per 32 k:
// hi[kb * 512 + kp * 32 + 2 * t + j] = bf16(x[t0 + t][32 kb + 2 kp + j]),
// tokens past T are zero; lo likewise with the remainders (when not NULL).
AMX static void pack_b(uint16_t *hi, uint16_t *lo, const float *x, int64_t T, int64_t K, int64_t t0) {
    const int64_t KB = K / 32;
    for (int64_t kb = 0; kb < KB; kb++) {
        __m512i rh[16], rl[16];
        for (int t = 0; t < 16; t++) {
            if (t0 + t < T) {
                split32(x + (t0 + t) * K + 32 * kb, &rh[t], lo ? &rl[t] : NULL);
            } else {
                rh[t] = _mm512_setzero_si512();
                rl[t] = rh[t];
            }
        }
        transpose16(rh);
        for (int i = 0; i < 16; i++) _mm512_store_si512((void *)(hi + kb * 512 + i * 32), rh[i]);
        if (lo) {
            transpose16(rl);
            for (int i = 0; i < 16; i++) _mm512_store_si512((void *)(lo + kb * 512 + i * 32), rl[i]);
        }
    }
}

// Rows r0 .. r0+nr of w as bf16 rows of K (hi, and lo when not NULL) in
// ahi/alo, (AMX_NP, K) each; rows past nr are zero. f: (K) float scratch.
AMX static void pack_a(uint16_t *ahi, uint16_t *alo, const keel_wmat *w, int64_t r0, int nr, float *f) {
    const int64_t K = w->n_in;
    for (int r = 0; r < AMX_NP; r++) {
        uint16_t *h = ahi + r * K, *l = alo ? alo + r * K : NULL;
        if (r >= nr) {
            memset(h, 0, sizeof(uint16_t) * (size_t)K);
            if (l) memset(l, 0, sizeof(uint16_t) * (size_t)K);
            continue;
        }
        keel_dequant_row(w->type, w->data + (size_t)(r0 + r) * w->row_bytes, f, K);
        for (int64_t k = 0; k < K; k += 32) {
            __m512i vh, vl;
            split32(f + k, &vh, l ? &vl : NULL);
            _mm512_storeu_si512((void *)(h + k), vh);
            if (l) _mm512_storeu_si512((void *)(l + k), vl);
        }
    }
}

// Four C tiles = (2 panels of 16 weight rows) x (2 tiles of 16 tokens),
// summed over the segments; each segment walks K in steps of 32.
// a[s]: (AMX_NP, K) bf16 rows; b0[s], b1[s]: packed B tiles of the two token tiles.
AMX static void kernel_2x2(int nseg, const uint16_t *const a[3], const uint16_t *const b0[3],
                           const uint16_t *const b1[3], int64_t K, float c[4][256]) {
    const int64_t KB = K / 32;
    const size_t lda = (size_t)K * sizeof(uint16_t);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int s = 0; s < nseg; s++) {
        const uint16_t *a0 = a[s], *a1 = a[s] + 16 * K;
        for (int64_t kb = 0; kb < KB; kb++) {
            _tile_loadd(4, a0 + 32 * kb, lda);
            _tile_loadd(5, a1 + 32 * kb, lda);
            _tile_loadd(6, b0[s] + 512 * kb, 64);
            _tile_loadd(7, b1[s] + 512 * kb, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
    }
    _tile_stored(0, c[0], 64);
    _tile_stored(1, c[1], 64);
    _tile_stored(2, c[2], 64);
    _tile_stored(3, c[3], 64);
}

// c (16 weight rows x 16 tokens) into y[t][n0 ..] for the nr rows and nt tokens that exist.
AMX static void store_c(float *y, int64_t ldy, const float c[256], int nr, int nt) {
    if (nr <= 0 || nt <= 0) return;
    __m512i r[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_load_si512((const void *)(c + 16 * i));
    transpose16(r);
    __mmask16 m = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1);
    for (int t = 0; t < nt && t < 16; t++) _mm512_mask_storeu_ps(y + t * ldy, m, _mm512_castsi512_ps(r[t]));
}

static inline int imin(int64_t a, int64_t b) { return (int)(a < b ? a : b); }

AMX static void amx_thread(const float *x, int64_t T, const keel_mm *mm, int n, const keel_ops_scratch *s,
                           const int64_t *first, bool x3, uint16_t *xh, uint16_t *xl) {
    const int64_t K = mm[0].w->n_in, n_tt = (T + AMX_TP - 1) / AMX_TP * 2, tile = 512 * (K / 32);
#ifdef _OPENMP
    const int tid = omp_get_thread_num();
#else
    const int tid = 0;
#endif
    float *f = s->buf + (size_t)tid * s->per_thread;                  // (K) floats
    float(*c)[256] = (float(*)[256])(void *)(f + ((K + 15) & ~(int64_t)15)); // 4 x 256 floats
    uint16_t *ah = (uint16_t *)(void *)(c + 4), *al = ah + AMX_NP * K;     // (AMX_NP, K) each
    tiles_on();
KEEL_OMP(for schedule(static))
    for (int64_t tt = 0; tt < n_tt; tt++) pack_b(xh + tt * tile, x3 ? xl + tt * tile : NULL, x, T, K, tt * 16);
    // (implicit barrier: all of x is packed before any panel reads it)
KEEL_OMP(for schedule(dynamic, 1))
    for (int64_t p = 0; p < first[n]; p++) {
        int i = 0;
        while (p >= first[i + 1]) i++;
        const keel_wmat *w = mm[i].w;
        const int64_t r0 = (p - first[i]) * AMX_NP;
        const int nr = imin(w->n_out - r0, AMX_NP);
        pack_a(ah, x3 ? al : NULL, w, r0, nr, f);
        // segments: hi·hi, then lo·hi and hi·lo for the split
        const uint16_t *a[3] = {ah, al, ah};
        for (int64_t tt = 0; tt < n_tt; tt += 2) {
            const uint16_t *b0[3] = {xh + tt * tile, xh + tt * tile, x3 ? xl + tt * tile : NULL};
            const uint16_t *b1[3] = {xh + (tt + 1) * tile, xh + (tt + 1) * tile, x3 ? xl + (tt + 1) * tile : NULL};
            kernel_2x2(x3 ? 3 : 1, a, b0, b1, K, c);
            const int64_t t0 = tt * 16;
            float *y = mm[i].y + t0 * w->n_out + r0;
            store_c(y, w->n_out, c[0], nr, imin(T - t0, 16));
            store_c(y + 16 * w->n_out, w->n_out, c[1], nr, imin(T - t0 - 16, 16));
            store_c(y + 16, w->n_out, c[2], nr - 16, imin(T - t0, 16));
            store_c(y + 16 * w->n_out + 16, w->n_out, c[3], nr - 16, imin(T - t0 - 16, 16));
        }
    }
    _tile_release();
}

bool keel_matmul_amx_ok(const keel_mm *mm, int n, int64_t T, const keel_ops_scratch *s) {
    if (!(keel_cpu_features() & KEEL_CPU_AMX_BF16) || !s || !s->buf || !s->shared) return false;
    const int64_t K = mm[0].w->n_in;
    if (K % 32 || n > 7) return false;
    // shared: (T rounded to 32, K) bf16 twice; per thread: K + 1024 floats, then 2 (AMX_NP, K) bf16
    if (s->shared_floats < keel_matmul_shared_floats(T, K)) return false;
    return s->per_thread >= (size_t)(((K + 15) & ~(int64_t)15) + 1024 + AMX_NP * K);
}

void keel_matmul_amx(const float *x, int64_t T, const keel_mm *mm, int n, const keel_ops_scratch *s, int nt,
                     bool x3) {
    KEEL_ASSERT(keel_matmul_amx_ok(mm, n, T, s));
    const int64_t K = mm[0].w->n_in;
    int64_t first[8];
    first[0] = 0;
    for (int i = 0; i < n; i++) first[i + 1] = first[i] + (mm[i].w->n_out + AMX_NP - 1) / AMX_NP;
    uint16_t *xh = (uint16_t *)(void *)s->shared;
    uint16_t *xl = xh + (T + AMX_TP - 1) / AMX_TP * AMX_TP * K;
KEEL_OMP(parallel num_threads(nt))
    amx_thread(x, T, mm, n, s, first, x3, xh, xl);
}

#else // no x86 AMX

bool keel_matmul_amx_ok(const keel_mm *mm, int n, int64_t T, const keel_ops_scratch *s) {
    (void)mm, (void)n, (void)T, (void)s;
    return false;
}

void keel_matmul_amx(const float *x, int64_t T, const keel_mm *mm, int n, const keel_ops_scratch *s, int nt,
                     bool x3) {
    (void)x, (void)T, (void)mm, (void)n, (void)s, (void)nt, (void)x3;
    KEEL_ASSERT(!"keel_matmul_amx without AMX");
}
#endif
