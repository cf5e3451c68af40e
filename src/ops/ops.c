// SPDX-License-Identifier: MIT
// ops.c — the non-matmul kernels of a Llama block, forward: RMSNorm, RoPE
// (both pair conventions), causal grouped-query attention over a KV cache,
// SwiGLU, softmax, argmax. Plain C with `omp simd` reductions so the compiler
// may vectorise without -ffast-math; attention is split over OpenMP threads.
// Naive double-precision versions for the tests live in ops_ref.c.
#include "ops/ops.h"

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// ---- rmsnorm ---------------------------------------------------------------------

void keel_op_rmsnorm_fwd(float *y, const float *x, const float *w, int64_t T, int64_t C, float eps) {
    for (int64_t t = 0; t < T; t++) {
        const float *xt = x + t * C;
        float *yt = y + t * C;
        double ss = 0.0;
#pragma omp simd reduction(+ : ss)
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

size_t keel_attention_scratch_floats(int64_t max_kv) { return (size_t)max_kv + 16; }

void keel_op_attention_fwd(float *out, const float *q, const float *kc, const float *vc, int64_t T,
                           int32_t pos0, int n_head, int n_head_kv, int hd,
                           const keel_ops_scratch *s) {
    KEEL_ASSERT(n_head_kv > 0 && n_head % n_head_kv == 0);
    KEEL_ASSERT(s && s->buf && s->per_thread >= keel_attention_scratch_floats((int64_t)pos0 + T));
    const int group = n_head / n_head_kv;
    const int64_t qs = (int64_t)n_head * hd, kvs = (int64_t)n_head_kv * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    int nt = s->n_threads > 0 ? s->n_threads : 1;
    if ((double)T * n_head * ((double)pos0 + T) * hd < 65536.0) nt = 1;
    (void)nt;

#pragma omp parallel for num_threads(nt) schedule(dynamic, 4)
    for (int64_t th = 0; th < T * n_head; th++) {
        int64_t t = th / n_head;
        int h = (int)(th % n_head), kvh = h / group;
        int64_t n_kv = (int64_t)pos0 + t + 1; // causal: positions 0 .. pos0+t
#ifdef _OPENMP
        float *sc = s->buf + (size_t)omp_get_thread_num() * s->per_thread;
#else
        float *sc = s->buf;
#endif
        const float *qh = q + t * qs + (int64_t)h * hd;
        float mx = -INFINITY;
        for (int64_t j = 0; j < n_kv; j++) {
            const float *kj = kc + j * kvs + (int64_t)kvh * hd;
            float d = 0.0f;
#pragma omp simd reduction(+ : d)
            for (int i = 0; i < hd; i++) d += qh[i] * kj[i];
            d *= scale;
            sc[j] = d;
            if (d > mx) mx = d;
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < n_kv; j++) {
            sc[j] = expf(sc[j] - mx);
            sum += sc[j];
        }
        float inv = 1.0f / sum;
        float *oh = out + t * qs + (int64_t)h * hd;
        for (int i = 0; i < hd; i++) oh[i] = 0.0f;
        for (int64_t j = 0; j < n_kv; j++) {
            const float *vj = vc + j * kvs + (int64_t)kvh * hd;
            float a = sc[j] * inv;
#pragma omp simd
            for (int i = 0; i < hd; i++) oh[i] += a * vj[i];
        }
    }
}

// ---- activations -------------------------------------------------------------------

void keel_op_swiglu_fwd(float *y, const float *gate, const float *up, int64_t n) {
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
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}
