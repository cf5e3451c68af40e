// SPDX-License-Identifier: MIT
// ops.c — the non-matmul kernels of a Llama block, forward: RMSNorm, RoPE
// (both pair conventions), causal grouped-query attention over a KV cache,
// SwiGLU, softmax, argmax. Plain C with `omp simd` so the compiler may
// vectorise without -ffast-math, plus AVX-512 attention rows and SwiGLU
// (picked at run time); attention is split over OpenMP threads. Keys are
// cached transposed, (n_head_kv, head_dim, positions), so one query's scores
// are straight FMAs over contiguous memory.
// Naive double-precision versions for the tests live in ops_ref.c.
#include "ops/ops.h"

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define KEEL_X86 1
#endif

// ---- rmsnorm ---------------------------------------------------------------------

void keel_op_rmsnorm_fwd(float *y, const float *x, const float *w, int64_t T, int64_t C, float eps) {
    for (int64_t t = 0; t < T; t++) {
        const float *xt = x + t * C;
        float *yt = y + t * C;
        double ss = 0.0;
KEEL_OMP(simd reduction(+ : ss))
        for (int64_t i = 0; i < C; i++) ss += (double)xt[i] * (double)xt[i];
        float r = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
        for (int64_t i = 0; i < C; i++) yt[i] = xt[i] * r * w[i];
    }
}

// ---- rope ------------------------------------------------------------------------

void keel_rope_table(float *cs, int32_t pos0, int64_t T, int n_rot, float theta) {
    int half = n_rot / 2;
    for (int64_t t = 0; t < T; t++) {
        double pos = (double)pos0 + (double)t;
        for (int i = 0; i < half; i++) {
            double a = pos * pow((double)theta, -2.0 * i / (double)n_rot);
            cs[(t * half + i) * 2] = (float)cos(a);
            cs[(t * half + i) * 2 + 1] = (float)sin(a);
        }
    }
}

void keel_op_rope_fwd(float *x, const float *cs, int64_t T, int n_head, int head_dim, int n_rot,
                      keel_rope_style style) {
    int half = n_rot / 2;
    // NORM pairs (2i, 2i+1); NEOX pairs (i, i + half)
    int step = style == KEEL_ROPE_NORM ? 2 : 1, off = style == KEEL_ROPE_NORM ? 1 : half;
    for (int64_t t = 0; t < T; t++) {
        const float *ct = cs + t * half * 2;
        for (int h = 0; h < n_head; h++) {
            float *v = x + (t * n_head + h) * head_dim;
            for (int i = 0; i < half; i++) {
                float c = ct[2 * i], s = ct[2 * i + 1];
                float *p = v + i * step;
                float x0 = p[0], x1 = p[off];
                p[0] = x0 * c - x1 * s;
                p[off] = x0 * s + x1 * c;
            }
        }
    }
}

// ---- attention -------------------------------------------------------------------

// Four query rows' scores at a time (attn_rows4_avx512), each padded by 64.
size_t keel_attention_scratch_floats(int64_t max_kv) { return 4 * ((size_t)max_kv + 64); }

int64_t keel_kt_stride(int64_t n_ctx) { return (n_ctx + 15) / 16 * 16 + 16; }

void keel_kt_store(float *kt, int64_t ldk, const float *k, int64_t T, int32_t pos0, int n_head_kv, int hd) {
    const int64_t kvs = (int64_t)n_head_kv * hd;
    for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < kvs; c++) kt[c * ldk + pos0 + t] = k[t * kvs + c];
}

// One query row of one head, portable: scores as axpy over the transposed
// keys (vectorisable without reassociation), softmax, then the V mix.
static void attn_row_c(float *o, const float *qh, const float *kt, int64_t ldk, const float *vc, int64_t kvs,
                       int64_t n, int hd, float scale, float *sc) {
    for (int64_t j = 0; j < n; j++) sc[j] = 0.0f;
    for (int i = 0; i < hd; i++) {
        float qi = qh[i] * scale;
        const float *row = kt + (int64_t)i * ldk;
KEEL_OMP(simd)
        for (int64_t j = 0; j < n; j++) sc[j] += qi * row[j];
    }
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) mx = sc[j] > mx ? sc[j] : mx;
    float sum = 0.0f;
    for (int64_t j = 0; j < n; j++) {
        sc[j] = expf(sc[j] - mx);
        sum += sc[j];
    }
    float inv = 1.0f / sum;
    for (int i = 0; i < hd; i++) o[i] = 0.0f;
    for (int64_t j = 0; j < n; j++) {
        const float *vj = vc + j * kvs;
        float a = sc[j];
KEEL_OMP(simd)
        for (int i = 0; i < hd; i++) o[i] += a * vj[i];
    }
    for (int i = 0; i < hd; i++) o[i] *= inv;
}

#ifdef KEEL_X86
#define AVX512 __attribute__((target("avx512f,avx2,fma")))

// e^x, |rel err| < 2e-7: x = n ln2 + r, |r| <= ln2/2, degree-6 Taylor for e^r, times 2^n.
AVX512 static inline __m512 exp512(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.0f)), _mm512_set1_ps(-87.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static inline __mmask16 tail_mask(int64_t left) {
    return left >= 16 ? (__mmask16)0xffff : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
}

// Softmax numerator in place over sc[0..n): sc[j] = e^(sc[j] - max); returns
// 1 / sum so the caller scales once at the end.
AVX512 static inline float exp_row512(float *sc, int64_t n) {
    __m512 vmx = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < n; j += 16)
        vmx = _mm512_max_ps(vmx, _mm512_mask_loadu_ps(vmx, tail_mask(n - j), sc + j));
    __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmx));
    __m512 vs = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += 16) {
        __mmask16 m = tail_mask(n - j);
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, sc + j), mx));
        _mm512_mask_storeu_ps(sc + j, m, e);
        vs = _mm512_mask_add_ps(vs, m, vs, e);
    }
    return 1.0f / _mm512_reduce_add_ps(vs);
}

// As attn_row_c, for hd a multiple of 16 up to 128: 64 keys per step in
// four registers, masked at the end (never reading past position n).
AVX512 static void attn_row_avx512(float *o, const float *qh, const float *kt, int64_t ldk, const float *vc,
                                   int64_t kvs, int64_t n, int hd, float scale, float *sc) {
    for (int64_t j0 = 0; j0 < n; j0 += 64) {
        __mmask16 m0 = tail_mask(n - j0), m1 = tail_mask(n - j0 - 16), m2 = tail_mask(n - j0 - 32),
                  m3 = tail_mask(n - j0 - 48);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < hd; i++) {
            __m512 qv = _mm512_set1_ps(qh[i] * scale);
            const float *row = kt + (int64_t)i * ldk + j0;
            a0 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m0, row), a0);
            a1 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m1, row + 16), a1);
            a2 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m2, row + 32), a2);
            a3 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m3, row + 48), a3);
        }
        _mm512_mask_storeu_ps(sc + j0, m0, a0);
        _mm512_mask_storeu_ps(sc + j0 + 16, m1, a1);
        _mm512_mask_storeu_ps(sc + j0 + 32, m2, a2);
        _mm512_mask_storeu_ps(sc + j0 + 48, m3, a3);
    }
    float inv = exp_row512(sc, n);
    __m512 acc[8];
    int nv = hd / 16;
    for (int b = 0; b < nv; b++) acc[b] = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j++) {
        __m512 p = _mm512_set1_ps(sc[j]);
        const float *vj = vc + j * kvs;
        for (int b = 0; b < nv; b++) acc[b] = _mm512_fmadd_ps(p, _mm512_loadu_ps(vj + 16 * b), acc[b]);
    }
    for (int b = 0; b < nv; b++) _mm512_storeu_ps(o + 16 * b, _mm512_mul_ps(acc[b], _mm512_set1_ps(inv)));
}

// Four consecutive query rows of one head (hd == 64), in batched evaluation:
// row r sees n0 + r keys. Every key and value vector loaded serves all four,
// so the loads per FMA drop fourfold. sc: 4 rows of stride scs.
AVX512 static void attn_rows4_avx512(float *o, int64_t qs, const float *q, const float *kt, int64_t ldk,
                                     const float *vc, int64_t kvs, int64_t n0, float scale, float *sc,
                                     int64_t scs) {
    const int64_t nmax = n0 + 3;
    float qsc[4][64];
    for (int r = 0; r < 4; r++)
        for (int i = 0; i < 64; i++) qsc[r][i] = q[r * qs + i] * scale;
    for (int64_t j0 = 0; j0 < nmax; j0 += 64) {
        __mmask16 m[4];
        __m512 a[4][4];
        for (int b = 0; b < 4; b++) {
            m[b] = tail_mask(nmax - j0 - 16 * b);
            for (int r = 0; r < 4; r++) a[r][b] = _mm512_setzero_ps();
        }
        for (int i = 0; i < 64; i++) {
            const float *row = kt + (int64_t)i * ldk + j0;
            __m512 k0 = _mm512_maskz_loadu_ps(m[0], row), k1 = _mm512_maskz_loadu_ps(m[1], row + 16);
            __m512 k2 = _mm512_maskz_loadu_ps(m[2], row + 32), k3 = _mm512_maskz_loadu_ps(m[3], row + 48);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                __m512 qv = _mm512_set1_ps(qsc[r][i]);
                a[r][0] = _mm512_fmadd_ps(qv, k0, a[r][0]);
                a[r][1] = _mm512_fmadd_ps(qv, k1, a[r][1]);
                a[r][2] = _mm512_fmadd_ps(qv, k2, a[r][2]);
                a[r][3] = _mm512_fmadd_ps(qv, k3, a[r][3]);
            }
        }
        for (int r = 0; r < 4; r++)
            for (int b = 0; b < 4; b++) _mm512_mask_storeu_ps(sc + r * scs + j0 + 16 * b, m[b], a[r][b]);
    }
    float inv[4];
    for (int r = 0; r < 4; r++) {
        float *sr = sc + r * scs;
        int64_t n = n0 + r;
        inv[r] = exp_row512(sr, n);
        for (int64_t j = n; j < nmax; j++) sr[j] = 0.0f; // keys this row must not see
    }
    __m512 acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int b = 0; b < 4; b++) acc[r][b] = _mm512_setzero_ps();
    for (int64_t j = 0; j < nmax; j++) {
        const float *vj = vc + j * kvs;
        __m512 v0 = _mm512_loadu_ps(vj), v1 = _mm512_loadu_ps(vj + 16);
        __m512 v2 = _mm512_loadu_ps(vj + 32), v3 = _mm512_loadu_ps(vj + 48);
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            __m512 p = _mm512_set1_ps(sc[r * scs + j]);
            acc[r][0] = _mm512_fmadd_ps(p, v0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(p, v1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(p, v2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(p, v3, acc[r][3]);
        }
    }
    for (int r = 0; r < 4; r++)
        for (int b = 0; b < 4; b++)
            _mm512_storeu_ps(o + r * qs + 16 * b, _mm512_mul_ps(acc[r][b], _mm512_set1_ps(inv[r])));
}

AVX512 static void swiglu_avx512(float *y, const float *gate, const float *up, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 g = _mm512_loadu_ps(gate + i);
        __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), exp512(_mm512_sub_ps(_mm512_setzero_ps(), g)));
        _mm512_storeu_ps(y + i, _mm512_div_ps(_mm512_mul_ps(g, _mm512_loadu_ps(up + i)), d));
    }
    for (; i < n; i++) y[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}
#endif // KEEL_X86

static inline bool use_avx512(void) { return keel_cpu_features() & KEEL_CPU_AVX512; }

void keel_op_attention_fwd(float *out, const float *q, const float *kt, int64_t ldk, const float *vc, int64_t T,
                           int32_t pos0, int n_head, int n_head_kv, int hd, const keel_ops_scratch *s) {
    KEEL_ASSERT(n_head_kv > 0 && n_head % n_head_kv == 0);
    KEEL_ASSERT(s && s->buf && s->per_thread >= keel_attention_scratch_floats((int64_t)pos0 + T));
    KEEL_ASSERT(ldk >= (int64_t)pos0 + T);
    const int group = n_head / n_head_kv;
    const int64_t qs = (int64_t)n_head * hd, kvs = (int64_t)n_head_kv * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    bool fast = use_avx512() && hd % 16 == 0 && hd <= 128;
    int nt = s->n_threads > 0 ? s->n_threads : 1;
    if ((double)T * n_head * ((double)pos0 + T) * hd < 65536.0) nt = 1;
    (void)nt;

    // Work items: (block of rows, head). With hd == 64 on AVX-512 a block is
    // four consecutive query rows sharing their key/value loads, else one row.
    const int64_t rb = fast && hd == 64 ? 4 : 1;
    const int64_t n_blocks = (T + rb - 1) / rb;
KEEL_OMP(parallel for num_threads(nt) schedule(dynamic, 2))
    for (int64_t item = 0; item < n_blocks * n_head; item++) {
        int64_t t0 = item / n_head * rb;
        int h = (int)(item % n_head), kvh = h / group;
#ifdef _OPENMP
        float *sc = s->buf + (size_t)omp_get_thread_num() * s->per_thread;
#else
        float *sc = s->buf;
#endif
        const float *ktg = kt + (int64_t)kvh * hd * ldk;
        const float *vg = vc + (int64_t)kvh * hd;
#ifdef KEEL_X86
        if (rb == 4 && t0 + 4 <= T) {
            attn_rows4_avx512(out + t0 * qs + (int64_t)h * hd, qs, q + t0 * qs + (int64_t)h * hd, ktg, ldk, vg, kvs,
                              (int64_t)pos0 + t0 + 1, scale, sc, (int64_t)pos0 + T + 64);
            continue;
        }
#endif
        for (int64_t t = t0; t < t0 + rb && t < T; t++) {
            int64_t n = (int64_t)pos0 + t + 1; // causal: positions 0 .. pos0+t
            const float *qh = q + t * qs + (int64_t)h * hd;
            float *oh = out + t * qs + (int64_t)h * hd;
#ifdef KEEL_X86
            if (fast) {
                attn_row_avx512(oh, qh, ktg, ldk, vg, kvs, n, hd, scale, sc);
                continue;
            }
#endif
            attn_row_c(oh, qh, ktg, ldk, vg, kvs, n, hd, scale, sc);
        }
    }
}

// ---- activations -------------------------------------------------------------------

void keel_op_swiglu_fwd(float *y, const float *gate, const float *up, int64_t n) {
#ifdef KEEL_X86
    if (use_avx512()) {
        swiglu_avx512(y, gate, up, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        y[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void keel_op_softmax_fwd(float *y, const float *x, int64_t n) {
    if (n <= 0) return;
    float mx = x[0];
    for (int64_t i = 1; i < n; i++)
        if (x[i] > mx) mx = x[i];
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        y[i] = expf(x[i] - mx);
        sum += y[i];
    }
    float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; i++) y[i] *= inv;
}

int64_t keel_op_argmax(const float *x, int64_t n) {
    if (n <= 0) return -1;
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

void keel_op_add(float *y, const float *x, int64_t n) {
KEEL_OMP(simd)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}
