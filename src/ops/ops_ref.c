// SPDX-License-Identifier: MIT
// ops_ref.c — naive reference kernels: the textbook formula in double, one
// element at a time, no threads, no blocking (llm.c's matmul_forward_naive).
// The optimised kernels are tested against these; nothing else calls them.
#include "ops/ops.h"

#include <math.h>

void keel_matmul_ref(float *y, const float *x, const keel_wmat *w, int64_t T) {
    float *row = keel_malloc((size_t)w->n_in * sizeof(float));
    KEEL_ASSERT(row);
    for (int64_t r = 0; r < w->n_out; r++) {
        keel_dequant_row(w->type, w->data + (size_t)r * w->row_bytes, row, w->n_in);
        for (int64_t t = 0; t < T; t++) {
            double acc = 0.0;
            for (int64_t i = 0; i < w->n_in; i++) acc += (double)row[i] * (double)x[t * w->n_in + i];
            y[t * w->n_out + r] = (float)acc;
        }
    }
    keel_free(row);
}

void keel_op_rmsnorm_ref(float *y, const float *x, const float *w, int64_t T, int64_t C, float eps) {
    for (int64_t t = 0; t < T; t++) {
        double ss = 0.0;
        for (int64_t i = 0; i < C; i++) ss += (double)x[t * C + i] * x[t * C + i];
        double r = 1.0 / sqrt(ss / (double)C + eps);
        for (int64_t i = 0; i < C; i++) y[t * C + i] = (float)(x[t * C + i] * r * w[i]);
    }
}

void keel_op_rope_ref(float *x, int32_t pos0, int64_t T, int n_head, int head_dim, int n_rot,
                      float theta, keel_rope_style style) {
    for (int64_t t = 0; t < T; t++)
        for (int h = 0; h < n_head; h++) {
            float *v = x + (t * n_head + h) * head_dim;
            for (int i = 0; i < n_rot / 2; i++) {
                double a = (double)(pos0 + t) * pow(theta, -2.0 * i / n_rot);
                int i0 = style == KEEL_ROPE_NORM ? 2 * i : i;
                int i1 = style == KEEL_ROPE_NORM ? 2 * i + 1 : i + n_rot / 2;
                double x0 = v[i0], x1 = v[i1];
                v[i0] = (float)(x0 * cos(a) - x1 * sin(a));
                v[i1] = (float)(x0 * sin(a) + x1 * cos(a));
            }
        }
}

void keel_op_attention_ref(float *out, const float *q, const float *kc, const float *vc, int64_t T,
                           int32_t pos0, int n_head, int n_head_kv, int hd) {
    int64_t n_max = pos0 + T;
    double *p = keel_malloc((size_t)n_max * sizeof(double));
    KEEL_ASSERT(p);
    for (int64_t t = 0; t < T; t++)
        for (int h = 0; h < n_head; h++) {
            int kvh = h / (n_head / n_head_kv);
            int64_t n = pos0 + t + 1;
            double mx = -INFINITY, sum = 0.0;
            for (int64_t j = 0; j < n; j++) {
                double d = 0.0;
                for (int i = 0; i < hd; i++)
                    d += (double)q[(t * n_head + h) * hd + i] * kc[(j * n_head_kv + kvh) * hd + i];
                p[j] = d / sqrt((double)hd);
                if (p[j] > mx) mx = p[j];
            }
            for (int64_t j = 0; j < n; j++) sum += (p[j] = exp(p[j] - mx));
            for (int i = 0; i < hd; i++) {
                double o = 0.0;
                for (int64_t j = 0; j < n; j++) o += p[j] / sum * vc[(j * n_head_kv + kvh) * hd + i];
                out[(t * n_head + h) * hd + i] = (float)o;
            }
        }
    keel_free(p);
}
