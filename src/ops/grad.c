// SPDX-License-Identifier: MIT
// grad.c — training kernels (grad.h): forwards that keep what the backward
// needs, and the backward of embedding, RMSNorm, linear (fp32 weights, and
// dx-only through frozen quantized weights), RoPE, causal GQA attention,
// SwiGLU and masked softmax cross-entropy. fp32 storage; reductions that
// decide the loss (log-sum-exp, the loss sum) run in double. Parallel with
// OpenMP over independent rows / heads so results do not depend on the
// thread count except through sgemm's own summation order. Derivations sit
// beside each declaration in grad.h.
#include "ops/grad.h"

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef KEEL_USE_OPENBLAS
#include <cblas.h>
#endif

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

size_t keel_grad_scratch_floats(int64_t max_in, int64_t T) {
    size_t a = (size_t)KEEL_GRAD_PANEL * (size_t)max_in, b = (size_t)T * (size_t)T;
    return (a > b ? a : b) + 16;
}

// ---- gemm -------------------------------------------------------------------------------

// One thread's C (M, N) = beta*C + op(A)·op(B).
static void gemm_serial(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                        const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (keel_sgemm_avx512(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc)) return;
#ifdef KEEL_USE_OPENBLAS
    if (K > 0) {
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    (blasint)M, (blasint)N, (blasint)K, 1.0f, A, (blasint)lda, B, (blasint)ldb, beta, C,
                    (blasint)ldc);
        return;
    }
#endif
    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f) memset(c, 0, (size_t)N * sizeof(float));
        else if (beta != 1.0f)
            for (int64_t j = 0; j < N; j++) c[j] *= beta;
    }
    if (!tb) {
        // B (K, N): C row i += a_ik * B row k (unit-stride inner loop)
        for (int64_t i = 0; i < M; i++) {
            float *c = C + i * ldc;
            for (int64_t k = 0; k < K; k++) {
                float a = ta ? A[k * lda + i] : A[i * lda + k];
                const float *b = B + k * ldb;
                for (int64_t j = 0; j < N; j++) c[j] += a * b[j];
            }
        }
    } else {
        // B (N, K): dot products
        for (int64_t i = 0; i < M; i++) {
            float *c = C + i * ldc;
            for (int64_t j = 0; j < N; j++) {
                const float *b = B + j * ldb;
                float s = 0;
                if (!ta) {
                    const float *a = A + i * lda;
                    for (int64_t k = 0; k < K; k++) s += a[k] * b[k];
                } else {
                    for (int64_t k = 0; k < K; k++) s += A[k * lda + i] * b[k];
                }
                c[j] += s;
            }
        }
    }
}

void keel_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
               const float *B, int64_t ldb, float beta, float *C, int64_t ldc, int n_threads) {
    int nt = n_threads < 1 ? 1 : n_threads;
    // Rows of C in about four chunks per thread (a multiple of the 12-row
    // tile), handed out dynamically: on a shared machine a thread that loses
    // its core for a time slice no longer holds the whole team at the
    // barrier. Every element of C is computed the same way whatever the
    // split, so the thread count and the schedule change no bit.
    int64_t chunk = (M + 4 * nt - 1) / (4 * nt);
    chunk = (chunk + 11) / 12 * 12;
    if (chunk < 24) chunk = 24;
    int64_t n_chunks = (M + chunk - 1) / chunk;
    if ((double)M * (double)N * (double)K < 2e5 || nt == 1) n_chunks = 1, chunk = M;
KEEL_OMP(parallel for num_threads(nt) schedule(dynamic, 1) if (n_chunks > 1))
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t i0 = c * chunk, m = M - i0 < chunk ? M - i0 : chunk;
        const float *a = ta ? A + i0 : A + i0 * lda;
        gemm_serial(ta, tb, m, N, K, a, lda, B, ldb, beta, C + i0 * ldc, ldc);
    }
}

// ---- linear ------------------------------------------------------------------------------

void keel_op_linear_fwd_f32(float *y, const float *x, const float *W, int64_t N, int64_t n_in,
                            int64_t n_out, int n_threads) {
    keel_gemm(false, true, N, n_out, n_in, x, n_in, W, n_in, 0.0f, y, n_out, n_threads);
}

void keel_op_linear_bwd_f32(float *dx, float *dW, const float *dy, const float *x, const float *W,
                            int64_t N, int64_t n_in, int64_t n_out, bool dx_acc, int n_threads) {
    if (dx) // dx (N, n_in) = dy (N, n_out) · W (n_out, n_in)
        keel_gemm(false, false, N, n_in, n_out, dy, n_out, W, n_in, dx_acc ? 1.0f : 0.0f, dx, n_in,
                  n_threads);
    if (dW) // dW (n_out, n_in) += dy^T (n_out, N) · x (N, n_in)
        keel_gemm(true, false, n_out, n_in, N, dy, n_out, x, n_in, 1.0f, dW, n_in, n_threads);
}

void keel_op_linear_bwd_dx_q(float *dx, const float *dy, const keel_wmat *w, int64_t N, bool dx_acc,
                             const keel_ops_scratch *s) {
    const int64_t n_in = w->n_in, n_out = w->n_out;
    const int64_t blk = keel_dtype_block(w->type);
    const size_t blk_bytes = w->row_bytes / (size_t)(n_in / blk);
    int nt = s->n_threads < 1 ? 1 : s->n_threads;
    KEEL_ASSERT(s->per_thread >= (size_t)KEEL_GRAD_PANEL * (size_t)n_in);
    // Column ranges of whole blocks, two per thread, handed out dynamically
    // (a thread that loses its core on a shared machine does not stall the
    // team); each column of dx sums its panels in row order whatever the split.
    int nr = nt == 1 ? 1 : 2 * nt;
    int64_t n_blk = n_in / blk, per = (n_blk + nr - 1) / nr;
KEEL_OMP(parallel for num_threads(nt) schedule(dynamic, 1))
    for (int th = 0; th < nr; th++) {
        int64_t b0 = th * per, b1 = b0 + per < n_blk ? b0 + per : n_blk;
        if (b0 >= b1) continue;
        int64_t c0 = b0 * blk, cw = (b1 - b0) * blk;
        float *panel = s->buf + (size_t)thread_id() * s->per_thread; // (KEEL_GRAD_PANEL, cw)
        for (int64_t r0 = 0; r0 < n_out; r0 += KEEL_GRAD_PANEL) {
            int64_t np = n_out - r0 < KEEL_GRAD_PANEL ? n_out - r0 : KEEL_GRAD_PANEL;
            for (int64_t r = 0; r < np; r++)
                keel_dequant_row(w->type, w->data + (size_t)(r0 + r) * w->row_bytes + (size_t)b0 * blk_bytes,
                                 panel + r * cw, cw);
            // dx[:, c0:c0+cw] (+)= dy[:, r0:r0+np] · panel (np, cw)
            float beta = (r0 == 0 && !dx_acc) ? 0.0f : 1.0f;
            gemm_serial(false, false, N, cw, np, dy + r0, n_out, panel, cw, beta, dx + c0, n_in);
        }
    }
}

// ---- embedding -----------------------------------------------------------------------------

void keel_op_embed_fwd(float *x, const keel_wmat *E, const int32_t *tok, int64_t N) {
    for (int64_t n = 0; n < N; n++) {
        KEEL_ASSERT(tok[n] >= 0 && tok[n] < E->n_out);
        keel_dequant_row(E->type, E->data + (size_t)tok[n] * E->row_bytes, x + n * E->n_in, E->n_in);
    }
}

void keel_op_embed_bwd(float *dE, const float *dx, const int32_t *tok, int64_t N, int64_t C) {
    // Serial over rows: two rows with the same token add into the same dE row.
    for (int64_t n = 0; n < N; n++) {
        float *d = dE + (size_t)tok[n] * (size_t)C;
        const float *g = dx + n * C;
        for (int64_t c = 0; c < C; c++) d[c] += g[c];
    }
}

// ---- RMSNorm -------------------------------------------------------------------------------

void keel_op_rmsnorm_train_fwd(float *y, float *r, const float *x, const float *w, int64_t N, int64_t C,
                               float eps) {
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C;
        double ss = 0;
        for (int64_t c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
        float rn = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
        r[n] = rn;
        float *yr = y + n * C;
        for (int64_t c = 0; c < C; c++) yr[c] = xr[c] * rn * w[c];
    }
}

void keel_op_rmsnorm_bwd_acc(float *dx, float *dw, const float *dy, const float *x, const float *w,
                             const float *r, int64_t N, int64_t C) {
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C, *gr = dy + n * C;
        float rn = r[n];
        double dot = 0; // sum_i (dy_i w_i) x_i
        for (int64_t c = 0; c < C; c++) dot += (double)gr[c] * w[c] * xr[c];
        float k = (float)(dot / (double)C) * rn * rn;
        float *dr = dx + n * C;
        for (int64_t c = 0; c < C; c++) dr[c] += rn * (gr[c] * w[c] - xr[c] * k);
        if (dw)
            for (int64_t c = 0; c < C; c++) dw[c] += gr[c] * xr[c] * rn;
    }
}

// ---- RoPE ----------------------------------------------------------------------------------

void keel_op_rope_train(float *x, const float *cs, int64_t B, int64_t T, int n_head, int hd, int n_rot,
                        keel_rope_style style, bool inverse) {
    keel_op_rope_train_seg(x, cs, NULL, B, T, n_head, hd, n_rot, style, inverse);
}

void keel_op_rope_train_seg(float *x, const float *cs, const int32_t *seg0, int64_t B, int64_t T, int n_head,
                            int hd, int n_rot, keel_rope_style style, bool inverse) {
    int half = n_rot / 2;
    int step = style == KEEL_ROPE_NORM ? 2 : 1, off = style == KEEL_ROPE_NORM ? 1 : half;
    float sg = inverse ? -1.0f : 1.0f;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            int64_t pos = seg0 ? t - seg0[b * T + t] : t; // position inside its segment
            const float *ct = cs + pos * half * 2;
            for (int h = 0; h < n_head; h++) {
                float *v = x + ((b * T + t) * n_head + h) * hd;
                for (int i = 0; i < half; i++) {
                    float c = ct[2 * i], s = sg * ct[2 * i + 1];
                    float *p = v + i * step;
                    float x0 = p[0], x1 = p[off];
                    p[0] = x0 * c - x1 * s;
                    p[off] = x0 * s + x1 * c;
                }
            }
        }
}

// ---- attention -----------------------------------------------------------------------------

// Per (sequence, head) everything is a dense (T, T) or (T, hd) product with
// strided rows (row stride Qd or Kd), so it runs as gemm on one thread; the
// causal upper triangle is computed and then zeroed (P_ij = 0 for j > i makes
// every later product causal without special cases).
void keel_op_attention_train_fwd(float *out, float *P, const float *q, const float *k, const float *v,
                                 int64_t B, int64_t T, int NH, int NKV, int hd, int n_threads) {
    keel_op_attention_train_fwd_seg(out, P, q, k, v, NULL, B, T, NH, NKV, hd, n_threads);
}

// End of the segment that starts at a in a row with segment starts sb
// (NULL: one segment, the whole row).
static int64_t seg_end(const int32_t *sb, int64_t a, int64_t T) {
    if (!sb) return T;
    int64_t e = a + 1;
    while (e < T && sb[e] == sb[a]) e++;
    return e;
}

// Packed rows: every product runs per segment [a, e) on its diagonal block
// of P (rows and columns a..e-1), so a row of many short examples costs the
// sum of their squares, not T^2; row i's softmax runs over [a, i] and the
// rest of the row is zeroed. Unpacked (seg0 NULL) there is one block, the
// whole (T, T) matrix: the same calls as before segments existed.
void keel_op_attention_train_fwd_seg(float *out, float *P, const float *q, const float *k, const float *v,
                                     const int32_t *seg0, int64_t B, int64_t T, int NH, int NKV, int hd,
                                     int n_threads) {
    const int64_t Qd = (int64_t)NH * hd, Kd = (int64_t)NKV * hd;
    const int grp = NH / NKV;
    const float scale = 1.0f / sqrtf((float)hd);
    int nt = n_threads < 1 ? 1 : n_threads;
    (void)nt; // unused without OpenMP
KEEL_OMP(parallel for num_threads(nt) schedule(dynamic, 1))
    for (int64_t bh = 0; bh < B * NH; bh++) {
        int64_t b = bh / NH;
        int h = (int)(bh % NH), g = h / grp;
        float *Pb = P + bh * T * T;
        const float *qh = q + b * T * Qd + h * hd, *kg = k + b * T * Kd + g * hd, *vg = v + b * T * Kd + g * hd;
        float *oh = out + b * T * Qd + h * hd;
        const int32_t *sb = seg0 ? seg0 + b * T : NULL;
        for (int64_t a = 0, e; a < T; a = e) {
            e = seg_end(sb, a, T);
            const int64_t L = e - a;
            float *Pa = Pb + a * T + a; // the segment's (L, L) block, row stride T
            gemm_serial(false, true, L, L, hd, qh + a * Qd, Qd, kg + a * Kd, Kd, 0.0f, Pa, T); // S = q k^T
            for (int64_t i = a; i < e; i++) {
                float *pr = Pb + i * T;
                float mx = -INFINITY;
                for (int64_t j = a; j <= i; j++) {
                    pr[j] *= scale;
                    if (pr[j] > mx) mx = pr[j];
                }
                double sum = 0;
                for (int64_t j = a; j <= i; j++) {
                    pr[j] = expf(pr[j] - mx);
                    sum += pr[j];
                }
                float inv = (float)(1.0 / sum);
                for (int64_t j = 0; j < a; j++) pr[j] = 0.0f;
                for (int64_t j = a; j <= i; j++) pr[j] *= inv;
                for (int64_t j = i + 1; j < T; j++) pr[j] = 0.0f;
            }
            gemm_serial(false, false, L, hd, L, Pa, T, vg + a * Kd, Kd, 0.0f, oh + a * Qd, Qd); // P v
        }
    }
}

void keel_op_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *P,
                           const float *q, const float *k, const float *v, int64_t B, int64_t T, int NH,
                           int NKV, int hd, const keel_ops_scratch *s) {
    keel_op_attention_bwd_seg(dq, dk, dv, dout, P, q, k, v, NULL, B, T, NH, NKV, hd, s);
}

void keel_op_attention_bwd_seg(float *dq, float *dk, float *dv, const float *dout, const float *P,
                               const float *q, const float *k, const float *v, const int32_t *seg0, int64_t B,
                               int64_t T, int NH, int NKV, int hd, const keel_ops_scratch *s) {
    const int64_t Qd = (int64_t)NH * hd, Kd = (int64_t)NKV * hd;
    const int grp = NH / NKV;
    const float scale = 1.0f / sqrtf((float)hd);
    int nt = s->n_threads < 1 ? 1 : s->n_threads;
    (void)nt;
    KEEL_ASSERT(s->per_thread >= (size_t)(T * T));
    // One task per (sequence, kv head): the query heads sharing a kv head add
    // into the same dk/dv rows, so they stay on one thread.
KEEL_OMP(parallel for num_threads(nt) schedule(dynamic, 1))
    for (int64_t bg = 0; bg < B * NKV; bg++) {
        int64_t b = bg / NKV;
        int g = (int)(bg % NKV);
        float *dS = s->buf + (size_t)thread_id() * s->per_thread; // (T, T) dP, then dS in place
        const float *kg = k + b * T * Kd + g * hd, *vg = v + b * T * Kd + g * hd;
        float *dkg = dk + b * T * Kd + g * hd, *dvg = dv + b * T * Kd + g * hd;
        for (int64_t j = 0; j < T; j++) {
            memset(dkg + j * Kd, 0, (size_t)hd * sizeof(float));
            memset(dvg + j * Kd, 0, (size_t)hd * sizeof(float));
        }
        const int32_t *sb = seg0 ? seg0 + b * T : NULL;
        for (int h = g * grp; h < (g + 1) * grp; h++) {
            const float *Pb = P + (b * NH + h) * T * T;
            const float *doh = dout + b * T * Qd + h * hd, *qh = q + b * T * Qd + h * hd;
            float *dqh = dq + b * T * Qd + h * hd;
            // per segment [a, e): its diagonal blocks of P and dS (outside them both are 0)
            for (int64_t a = 0, e; a < T; a = e) {
                e = seg_end(sb, a, T);
                const int64_t L = e - a;
                const float *Pa = Pb + a * T + a;
                float *dSa = dS + a * T + a;
                gemm_serial(false, true, L, L, hd, doh + a * Qd, Qd, vg + a * Kd, Kd, 0.0f, dSa, T); // dP = dout v^T
                for (int64_t i = a; i < e; i++) {
                    const float *pr = Pb + i * T;
                    float *dr = dS + i * T;
                    double dot = 0;
                    for (int64_t j = a; j <= i; j++) dot += (double)pr[j] * dr[j];
                    for (int64_t j = a; j <= i; j++) dr[j] = pr[j] * (dr[j] - (float)dot) * scale;
                    for (int64_t j = i + 1; j < e; j++) dr[j] = 0.0f;
                }
                gemm_serial(false, false, L, hd, L, dSa, T, kg + a * Kd, Kd, 0.0f, dqh + a * Qd, Qd); // dq = dS k
                gemm_serial(true, false, L, hd, L, dSa, T, qh + a * Qd, Qd, 1.0f, dkg + a * Kd, Kd);  // dk += dS^T q
                gemm_serial(true, false, L, hd, L, Pa, T, doh + a * Qd, Qd, 1.0f, dvg + a * Kd, Kd);  // dv += P^T dout
            }
        }
    }
}

// ---- SwiGLU --------------------------------------------------------------------------------

void keel_op_swiglu_train_fwd(float *y, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void keel_op_swiglu_bwd(float *dg, float *du, const float *dy, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float sg = 1.0f / (1.0f + expf(-g[i]));
        float d = dy[i];
        du[i] = d * g[i] * sg;
        dg[i] = d * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
    }
}

// ---- cross-entropy -------------------------------------------------------------------------

static double n_valid(const uint8_t *mask, int64_t N) {
    if (!mask) return (double)N;
    double c = 0;
    for (int64_t n = 0; n < N; n++) c += mask[n] != 0;
    return c;
}

float keel_op_xent_fwd(float *lse, const float *logits, const int32_t *targets, const uint8_t *mask,
                       int64_t N, int64_t V, int n_threads) {
    int nt = n_threads < 1 ? 1 : n_threads;
    (void)nt; // unused without OpenMP
KEEL_OMP(parallel for num_threads(nt) schedule(dynamic, 16))
    for (int64_t n = 0; n < N; n++) {
        const float *l = logits + n * V;
        float mx = -INFINITY;
        for (int64_t j = 0; j < V; j++) mx = l[j] > mx ? l[j] : mx;
        double s = 0;
        for (int64_t j = 0; j < V; j++) s += exp((double)(l[j] - mx));
        lse[n] = (float)((double)mx + log(s));
    }
    // Summed serially in row order: the loss does not depend on the thread count.
    double cnt = n_valid(mask, N), loss = 0;
    if (cnt == 0) return 0.0f;
    for (int64_t n = 0; n < N; n++) {
        if (mask && !mask[n]) continue;
        KEEL_ASSERT(targets[n] >= 0 && targets[n] < V);
        loss += (double)lse[n] - (double)logits[n * V + targets[n]];
    }
    return (float)(loss / cnt);
}

void keel_op_xent_bwd(float *dlogits, const float *logits, const float *lse, const int32_t *targets,
                      const uint8_t *mask, int64_t N, int64_t V, float dloss, int n_threads) {
    double cnt = n_valid(mask, N);
    float scale = cnt > 0 ? (float)((double)dloss / cnt) : 0.0f;
    int nt = n_threads < 1 ? 1 : n_threads;
    (void)nt; // unused without OpenMP
KEEL_OMP(parallel for num_threads(nt) schedule(dynamic, 16))
    for (int64_t n = 0; n < N; n++) {
        float *d = dlogits + n * V;
        const float *l = logits + n * V;
        if ((mask && !mask[n]) || scale == 0.0f) {
            memset(d, 0, (size_t)V * sizeof(float));
            continue;
        }
        float ln = lse[n];
        for (int64_t j = 0; j < V; j++) d[j] = expf(l[j] - ln) * scale;
        d[targets[n]] -= scale;
    }
}

// ---- frozen-weight forward -------------------------------------------------------------------

void keel_op_linear_fwd_q(float *y, const float *x, const keel_wmat *w, int64_t N,
                          const keel_ops_scratch *s) {
    const int64_t n_in = w->n_in, n_out = w->n_out;
    int nt = s->n_threads < 1 ? 1 : s->n_threads;
    (void)nt;
    // With a shared buffer for x, the inference matmul (matmul.c: x packed
    // once, 12 weight rows dequantized into L1 per tile, fp32 sums in k
    // order per output whatever the thread count) is the faster path. It also
    // honours s->prec: the training scratch is FP32 unless a caller opts in
    // to AMX bf16x3/bf16 for the forward (bench/bench_train.c "+bf16x3").
    if (s->shared && s->shared_floats >= keel_matmul_shared_floats(N, n_in) &&
        s->per_thread >= keel_matmul_scratch_floats(n_in)) {
        keel_matmul(y, x, w, N, s);
        return;
    }
    KEEL_ASSERT(s->per_thread >= (size_t)KEEL_GRAD_PANEL * (size_t)n_in);
    // Panels of output rows are independent: each thread dequantizes its own.
    // Panel height: at most KEEL_GRAD_PANEL, a multiple of 16, and a panel
    // count that is a multiple of the thread count (576 rows on 2 threads:
    // 4 x 144, not 256 + 256 + 64).
    int64_t per = (n_out + (int64_t)nt * KEEL_GRAD_PANEL - 1) / ((int64_t)nt * KEEL_GRAD_PANEL) * nt;
    int64_t P = (n_out + per - 1) / per;
    P = (P + 15) / 16 * 16;
    if (P > KEEL_GRAD_PANEL) P = KEEL_GRAD_PANEL;
    int64_t n_panels = (n_out + P - 1) / P;
KEEL_OMP(parallel for num_threads(nt) schedule(static))
    for (int64_t p = 0; p < n_panels; p++) {
        int64_t r0 = p * P, np = n_out - r0 < P ? n_out - r0 : P;
        float *panel = s->buf + (size_t)thread_id() * s->per_thread; // (np, n_in)
        for (int64_t r = 0; r < np; r++)
            keel_dequant_row(w->type, w->data + (size_t)(r0 + r) * w->row_bytes, panel + r * n_in, n_in);
        // y[:, r0:r0+np] = x (N, n_in) · panel^T
        gemm_serial(false, true, N, np, n_in, x, n_in, panel, n_in, 0.0f, y + r0, n_out);
    }
}
