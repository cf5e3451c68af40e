// SPDX-License-Identifier: MIT
// quant.c — the stored weight formats: dequantize a row to float and the fused
// dot of a stored row with a float vector (the decode matvec's inner loop).
// Block layouts are those of ggml (ggml/src/ggml-common.h, block_q4_0/q4_1/q8_0)
// and are checked against the gguf Python package in tests/golden/quant.json.
// Portable C versions plus AVX2/FMA/F16C versions compiled with per-function
// target attributes and picked at run time, so the default build runs on any
// x86-64. Rows live in read-only mmaps and may be unaligned: read bytewise.
#include "ops/ops.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define KEEL_X86 1
#endif

static inline float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return keel_fp16_to_fp32(h);
}
static inline float bf16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return keel_bf16_to_fp32(h);
}

// ---- portable C ---------------------------------------------------------------

static void dequant_c(keel_dtype t, const uint8_t *s, float *y, int64_t n) {
    switch (t) {
    case KEEL_DTYPE_F32:
        memcpy(y, s, (size_t)n * sizeof(float));
        return;
    case KEEL_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) y[i] = f16_at(s + 2 * i);
        return;
    case KEEL_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) y[i] = bf16_at(s + 2 * i);
        return;
    case KEEL_DTYPE_Q8_0:
        for (int64_t b = 0; b < n / 32; b++, s += 34, y += 32) {
            float d = f16_at(s);
            for (int i = 0; i < 32; i++) y[i] = d * (float)(int8_t)s[2 + i];
        }
        return;
    case KEEL_DTYPE_Q4_0:
        for (int64_t b = 0; b < n / 32; b++, s += 18, y += 32) {
            float d = f16_at(s);
            for (int i = 0; i < 16; i++) {
                y[i] = d * (float)((s[2 + i] & 15) - 8);
                y[i + 16] = d * (float)((s[2 + i] >> 4) - 8);
            }
        }
        return;
    case KEEL_DTYPE_Q4_1:
        for (int64_t b = 0; b < n / 32; b++, s += 20, y += 32) {
            float d = f16_at(s), m = f16_at(s + 2);
            for (int i = 0; i < 16; i++) {
                y[i] = d * (float)(s[4 + i] & 15) + m;
                y[i + 16] = d * (float)(s[4 + i] >> 4) + m;
            }
        }
        return;
    }
    KEEL_ASSERT(!"dequant: unknown dtype");
}

static float dot_c(keel_dtype t, const uint8_t *s, const float *x, int64_t n) {
    float acc = 0.0f;
    switch (t) {
    case KEEL_DTYPE_F32:
        for (int64_t i = 0; i < n; i++) {
            float w;
            memcpy(&w, s + 4 * i, 4);
            acc += w * x[i];
        }
        return acc;
    case KEEL_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) acc += f16_at(s + 2 * i) * x[i];
        return acc;
    case KEEL_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) acc += bf16_at(s + 2 * i) * x[i];
        return acc;
    case KEEL_DTYPE_Q8_0:
        for (int64_t b = 0; b < n / 32; b++, s += 34, x += 32) {
            float sq = 0.0f;
            for (int i = 0; i < 32; i++) sq += (float)(int8_t)s[2 + i] * x[i];
            acc += f16_at(s) * sq;
        }
        return acc;
    case KEEL_DTYPE_Q4_0:
        for (int64_t b = 0; b < n / 32; b++, s += 18, x += 32) {
            float sq = 0.0f;
            for (int i = 0; i < 16; i++)
                sq += (float)((s[2 + i] & 15) - 8) * x[i] + (float)((s[2 + i] >> 4) - 8) * x[i + 16];
            acc += f16_at(s) * sq;
        }
        return acc;
    case KEEL_DTYPE_Q4_1:
        for (int64_t b = 0; b < n / 32; b++, s += 20, x += 32) {
            float sq = 0.0f, sx = 0.0f;
            for (int i = 0; i < 16; i++) {
                sq += (float)(s[4 + i] & 15) * x[i] + (float)(s[4 + i] >> 4) * x[i + 16];
                sx += x[i] + x[i + 16];
            }
            acc += f16_at(s) * sq + f16_at(s + 2) * sx;
        }
        return acc;
    }
    KEEL_ASSERT(!"dot: unknown dtype");
    return 0.0f;
}

// ---- AVX2 + FMA + F16C ------------------------------------------------------------

#ifdef KEEL_X86
#define AVX2 __attribute__((target("avx2,fma,f16c")))

// f16 scale via the F16C instruction (the portable keel_fp16_to_fp32 is a call)
AVX2 static inline float f16c_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// The 32 4-bit codes of a Q4 block as four vectors of 8 floats, in element order.
AVX2 static inline void nibbles8x4(const uint8_t *qs, __m256 out[4]) {
    __m128i raw = _mm_loadu_si128((const __m128i *)(const void *)qs);
    __m128i m4 = _mm_set1_epi8(15);
    __m128i lo = _mm_and_si128(raw, m4);
    __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), m4);
    out[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo));
    out[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)));
    out[2] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi));
    out[3] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)));
}

AVX2 static inline void q8x4(const uint8_t *qs, __m256 out[4]) {
    for (int k = 0; k < 4; k++) {
        __m128i b = _mm_loadl_epi64((const __m128i *)(const void *)(qs + 8 * k));
        out[k] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
    }
}

AVX2 static void dequant_avx2(keel_dtype t, const uint8_t *s, float *y, int64_t n) {
    int64_t i = 0;
    __m256 v[4];
    switch (t) {
    case KEEL_DTYPE_F16:
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(s + 2 * i))));
        for (; i < n; i++) y[i] = f16c_at(s + 2 * i);
        return;
    case KEEL_DTYPE_BF16:
        for (; i + 8 <= n; i += 8) {
            __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(s + 2 * i)));
            _mm256_storeu_ps(y + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
        }
        for (; i < n; i++) y[i] = bf16_at(s + 2 * i);
        return;
    case KEEL_DTYPE_Q8_0:
        for (int64_t b = 0; b < n / 32; b++, s += 34, y += 32) {
            __m256 d = _mm256_set1_ps(f16c_at(s));
            q8x4(s + 2, v);
            for (int k = 0; k < 4; k++) _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(d, v[k]));
        }
        return;
    case KEEL_DTYPE_Q4_0:
        for (int64_t b = 0; b < n / 32; b++, s += 18, y += 32) {
            float df = f16c_at(s);
            __m256 d = _mm256_set1_ps(df), m = _mm256_set1_ps(-8.0f * df);
            nibbles8x4(s + 2, v);
            for (int k = 0; k < 4; k++) _mm256_storeu_ps(y + 8 * k, _mm256_fmadd_ps(d, v[k], m));
        }
        return;
    case KEEL_DTYPE_Q4_1:
        for (int64_t b = 0; b < n / 32; b++, s += 20, y += 32) {
            __m256 d = _mm256_set1_ps(f16c_at(s)), m = _mm256_set1_ps(f16c_at(s + 2));
            nibbles8x4(s + 4, v);
            for (int k = 0; k < 4; k++) _mm256_storeu_ps(y + 8 * k, _mm256_fmadd_ps(d, v[k], m));
        }
        return;
    default:
        dequant_c(t, s, y, n);
        return;
    }
}

AVX2 static float dot_avx2(keel_dtype t, const uint8_t *s, const float *x, int64_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 v[4];
    int64_t i = 0;
    float tail = 0.0f;
    switch (t) {
    case KEEL_DTYPE_F32:
        for (; i + 16 <= n; i += 16) {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(const void *)(s + 4 * i)), _mm256_loadu_ps(x + i), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(const void *)(s + 4 * i + 32)), _mm256_loadu_ps(x + i + 8), acc1);
        }
        if (i < n) tail = dot_c(t, s + 4 * i, x + i, n - i);
        break;
    case KEEL_DTYPE_F16:
        for (; i + 16 <= n; i += 16) {
            __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(s + 2 * i)));
            __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(s + 2 * i + 16)));
            acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), acc0);
            acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), acc1);
        }
        if (i < n) tail = dot_c(t, s + 2 * i, x + i, n - i);
        break;
    case KEEL_DTYPE_BF16:
        for (; i + 8 <= n; i += 8) {
            __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(s + 2 * i)));
            acc0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(w, 16)), _mm256_loadu_ps(x + i), acc0);
        }
        if (i < n) tail = dot_c(t, s + 2 * i, x + i, n - i);
        break;
    case KEEL_DTYPE_Q8_0:
        for (int64_t b = 0; b < n / 32; b++, s += 34, x += 32) {
            q8x4(s + 2, v);
            __m256 p = _mm256_mul_ps(v[0], _mm256_loadu_ps(x));
            p = _mm256_fmadd_ps(v[1], _mm256_loadu_ps(x + 8), p);
            p = _mm256_fmadd_ps(v[2], _mm256_loadu_ps(x + 16), p);
            p = _mm256_fmadd_ps(v[3], _mm256_loadu_ps(x + 24), p);
            acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16c_at(s)), p, acc0);
        }
        break;
    case KEEL_DTYPE_Q4_0:
    case KEEL_DTYPE_Q4_1: {
        bool q41 = t == KEEL_DTYPE_Q4_1;
        size_t bs = q41 ? 20 : 18;
        for (int64_t b = 0; b < n / 32; b++, s += bs, x += 32) {
            __m256 x0 = _mm256_loadu_ps(x), x1 = _mm256_loadu_ps(x + 8);
            __m256 x2 = _mm256_loadu_ps(x + 16), x3 = _mm256_loadu_ps(x + 24);
            nibbles8x4(s + (q41 ? 4 : 2), v);
            __m256 p = _mm256_mul_ps(v[0], x0);
            p = _mm256_fmadd_ps(v[1], x1, p);
            p = _mm256_fmadd_ps(v[2], x2, p);
            p = _mm256_fmadd_ps(v[3], x3, p);
            __m256 sx = _mm256_add_ps(_mm256_add_ps(x0, x1), _mm256_add_ps(x2, x3));
            float d = f16c_at(s);
            // Q4_0: d * sum((q - 8) x) = d * sum(q x) - 8 d * sum(x); Q4_1: d * sum(q x) + m * sum(x)
            float m = q41 ? f16c_at(s + 2) : -8.0f * d;
            acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d), p, acc0);
            acc1 = _mm256_fmadd_ps(_mm256_set1_ps(m), sx, acc1);
        }
        break;
    }
    }
    return hsum8(_mm256_add_ps(acc0, acc1)) + tail;
}

// ---- AVX-512 (dots only: the decode matvec's inner loop) ---------------------------

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

// The 32 codes of a Q4 block as two vectors of 16 floats, in element order.
AVX512 static inline void nibbles16x2(const uint8_t *qs, __m512 *v0, __m512 *v1) {
    __m128i raw = _mm_loadu_si128((const __m128i *)(const void *)qs);
    __m128i m4 = _mm_set1_epi8(15);
    *v0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(raw, m4)));
    *v1 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(raw, 4), m4)));
}

AVX512 static void dequant_avx512(keel_dtype t, const uint8_t *s, float *y, int64_t n) {
    __m512 v0, v1;
    switch (t) {
    case KEEL_DTYPE_Q8_0:
        for (int64_t b = 0; b < n / 32; b++, s += 34, y += 32) {
            __m512 d = _mm512_set1_ps(f16c_at(s));
            v0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(s + 2))));
            v1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(s + 18))));
            _mm512_storeu_ps(y, _mm512_mul_ps(d, v0));
            _mm512_storeu_ps(y + 16, _mm512_mul_ps(d, v1));
        }
        return;
    case KEEL_DTYPE_Q4_0:
        for (int64_t b = 0; b < n / 32; b++, s += 18, y += 32) {
            float df = f16c_at(s);
            __m512 d = _mm512_set1_ps(df), m = _mm512_set1_ps(-8.0f * df);
            nibbles16x2(s + 2, &v0, &v1);
            _mm512_storeu_ps(y, _mm512_fmadd_ps(d, v0, m));
            _mm512_storeu_ps(y + 16, _mm512_fmadd_ps(d, v1, m));
        }
        return;
    case KEEL_DTYPE_Q4_1:
        for (int64_t b = 0; b < n / 32; b++, s += 20, y += 32) {
            __m512 d = _mm512_set1_ps(f16c_at(s)), m = _mm512_set1_ps(f16c_at(s + 2));
            nibbles16x2(s + 4, &v0, &v1);
            _mm512_storeu_ps(y, _mm512_fmadd_ps(d, v0, m));
            _mm512_storeu_ps(y + 16, _mm512_fmadd_ps(d, v1, m));
        }
        return;
    default:
        dequant_avx2(t, s, y, n);
        return;
    }
}

AVX512 static float dot_avx512(keel_dtype t, const uint8_t *s, const float *x, int64_t n) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0, accm = acc0;
    __m512 v0, v1;
    int64_t i = 0;
    float tail = 0.0f;
    switch (t) {
    case KEEL_DTYPE_F16:
        for (; i + 32 <= n; i += 32) {
            __m512 w0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(s + 2 * i)));
            __m512 w1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(s + 2 * i + 32)));
            acc0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + i), acc0);
            acc1 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + i + 16), acc1);
        }
        if (i < n) tail = dot_avx2(t, s + 2 * i, x + i, n - i);
        break;
    case KEEL_DTYPE_Q8_0:
        for (int64_t b = 0; b < n / 32; b++, s += 34, x += 32) {
            v0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(s + 2))));
            v1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(s + 18))));
            __m512 d = _mm512_set1_ps(f16c_at(s));
            acc0 = _mm512_fmadd_ps(_mm512_mul_ps(d, v0), _mm512_loadu_ps(x), acc0);
            acc1 = _mm512_fmadd_ps(_mm512_mul_ps(d, v1), _mm512_loadu_ps(x + 16), acc1);
        }
        break;
    case KEEL_DTYPE_Q4_0:
        // d * sum((q - 8) x): the -8 goes in with the codes
        for (int64_t b = 0; b < n / 32; b++, s += 18, x += 32) {
            nibbles16x2(s + 2, &v0, &v1);
            __m512 d = _mm512_set1_ps(f16c_at(s)), eight = _mm512_set1_ps(8.0f);
            acc0 = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_sub_ps(v0, eight)), _mm512_loadu_ps(x), acc0);
            acc1 = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_sub_ps(v1, eight)), _mm512_loadu_ps(x + 16), acc1);
        }
        break;
    case KEEL_DTYPE_Q4_1:
        // (d q + m) x, dequantized in registers: two independent FMA chains
        for (int64_t b = 0; b < n / 32; b++, s += 20, x += 32) {
            nibbles16x2(s + 4, &v0, &v1);
            __m512 d = _mm512_set1_ps(f16c_at(s)), m = _mm512_set1_ps(f16c_at(s + 2));
            acc0 = _mm512_fmadd_ps(_mm512_fmadd_ps(d, v0, m), _mm512_loadu_ps(x), acc0);
            acc1 = _mm512_fmadd_ps(_mm512_fmadd_ps(d, v1, m), _mm512_loadu_ps(x + 16), acc1);
        }
        break;
    default:
        return dot_avx2(t, s, x, n);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), accm)) + tail;
}
#endif // KEEL_X86

// ---- dispatch --------------------------------------------------------------------

static inline bool use_avx512(void) { return keel_cpu_features() & KEEL_CPU_AVX512; }
static inline bool use_avx2(void) { return keel_cpu_features() & KEEL_CPU_AVX2; }

void keel_dequant_row(keel_dtype t, const void *src, float *dst, int64_t n) {
    KEEL_ASSERT(n % keel_dtype_block(t) == 0);
#ifdef KEEL_X86
    if (t != KEEL_DTYPE_F32 && use_avx512()) {
        dequant_avx512(t, (const uint8_t *)src, dst, n);
        return;
    }
    if (t != KEEL_DTYPE_F32 && use_avx2()) {
        dequant_avx2(t, (const uint8_t *)src, dst, n);
        return;
    }
#endif
    dequant_c(t, (const uint8_t *)src, dst, n);
}

float keel_dot_row(keel_dtype t, const void *row, const float *x, int64_t n) {
    KEEL_ASSERT(n % keel_dtype_block(t) == 0);
#ifdef KEEL_X86
    if (use_avx512()) return dot_avx512(t, (const uint8_t *)row, x, n);
    if (use_avx2()) return dot_avx2(t, (const uint8_t *)row, x, n);
#endif
    return dot_c(t, (const uint8_t *)row, x, n);
}

bool keel_wmat_init(keel_wmat *w, keel_dtype type, int64_t n_in, int64_t n_out, const void *data) {
    int blk = keel_dtype_block(type);
    int64_t ne[4] = {n_in, 1, 1, 1};
    size_t rb;
    if (blk <= 0 || n_in <= 0 || n_out <= 0 || n_in % blk || !keel_dtype_nbytes(type, ne, &rb))
        return false;
    w->type = type;
    w->n_in = n_in;
    w->n_out = n_out;
    w->row_bytes = rb;
    w->data = (const uint8_t *)data;
    return true;
}
