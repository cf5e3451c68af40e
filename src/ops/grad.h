// SPDX-License-Identifier: MIT
// grad.h — training kernels: the forward of each op in the form that keeps
// what its backward needs, and the backward (vector-Jacobian product) of every
// op of the Llama forward pass. fp32 throughout; batch dims (B, T) are
// flattened to N = B*T rows except where positions matter (RoPE, attention).
// Conventions: gradients of weights ACCUMULATE (+=) so micro-batches add up
// (the caller zeroes them once per step); gradients of activations are
// written (=) unless the name says _acc. Kernels never allocate: temporaries
// come from a keel_ops_scratch (ops.h) the caller sized once with
// keel_grad_scratch_floats. Sits beside ops.h, below model/train.h.
// Derivations: each function's comment; reference for the whole set:
// https://arxiv.org/abs/1502.05767 (reverse-mode AD), and the op papers in ops.h.
#ifndef KEEL_GRAD_H
#define KEEL_GRAD_H

#include "ops/ops.h"

// Rows of a frozen weight dequantized at a time by keel_op_linear_bwd_dx_q.
#define KEEL_GRAD_PANEL 256 // = gemm_train.c's inner block: one pass over C per block

// Floats per thread the kernels below need for inner dims up to max_in and
// sequences up to T (attention backward keeps one (T, T) block of dS).
KEEL_INTERNAL size_t keel_grad_scratch_floats(int64_t max_in, int64_t T);

// ---- dense fp32 matmul ------------------------------------------------------------

// C (M, N) = beta*C + op(A) · op(B), row-major, op = transpose when the flag is
// set; rows of C are split over s->n_threads OpenMP threads (sgemm of
// OpenBLAS inside each when built with it, else blocked loops).
KEEL_INTERNAL void keel_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A,
                             int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                             int64_t ldc, int n_threads);

// One thread's C = beta*C + op(A)·op(B) with the AVX-512 12x32 kernel of
// gemm_train.c (sums in k order, independent of how rows are split over
// threads). Returns false, touching nothing, when the CPU lacks AVX-512.
KEEL_INTERNAL bool keel_sgemm_avx512(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A,
                                     int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                                     int64_t ldc);

// ---- linear layer y = x · W^T -------------------------------------------------------
// Shapes: x (N, n_in), W (n_out, n_in), y (N, n_out).
// Backward (y_tj = sum_i x_ti W_ji):  dx = dy · W  (N, n_in),  dW += dy^T · x  (n_out, n_in).
// A LoRA branch is a second linear pair beside W, so the model calls these
// for the base and adds the branch's contribution to y / dx (see model/train.h).

KEEL_INTERNAL void keel_op_linear_fwd_f32(float *y, const float *x, const float *W, int64_t N,
                                          int64_t n_in, int64_t n_out, int n_threads);
// The same forward with W in its stored type (any type, F32 too): through
// keel_matmul when s has a shared buffer of keel_matmul_shared_floats(N, n_in)
// floats (in s->prec: AMX when a caller sets it, fp32 by default), else panels of KEEL_GRAD_PANEL rows
// dequantized per thread (scratch as below).
KEEL_INTERNAL void keel_op_linear_fwd_q(float *y, const float *x, const keel_wmat *w, int64_t N,
                                        const keel_ops_scratch *s);
// dx (= or += when dx_acc) and dW (+=); either may be NULL (a frozen weight
// has no dW; the first linear of a chain may not need dx).
KEEL_INTERNAL void keel_op_linear_bwd_f32(float *dx, float *dW, const float *dy, const float *x,
                                          const float *W, int64_t N, int64_t n_in, int64_t n_out,
                                          bool dx_acc, int n_threads);
// dx only, W frozen in its stored type (F32/F16/BF16/Q8_0/Q4_0/Q4_1): each
// thread owns a column range of dx (whole quant blocks) and dequantizes
// KEEL_GRAD_PANEL rows of that range at a time into its scratch, so W is
// never expanded whole. Scratch: keel_grad_scratch_floats(n_in, ...).
KEEL_INTERNAL void keel_op_linear_bwd_dx_q(float *dx, const float *dy, const keel_wmat *w, int64_t N,
                                           bool dx_acc, const keel_ops_scratch *s);

// ---- embedding ---------------------------------------------------------------------
// x (N, C) = E[tok[n]] (E (V, C) in its stored type). Backward: the rows of dx
// scatter-add into dE (V, C) (dE[tok[n]] += dx[n]; repeated tokens add up).
KEEL_INTERNAL void keel_op_embed_fwd(float *x, const keel_wmat *E, const int32_t *tok, int64_t N);
KEEL_INTERNAL void keel_op_embed_bwd(float *dE, const float *dx, const int32_t *tok, int64_t N,
                                     int64_t C);

// ---- RMSNorm -----------------------------------------------------------------------
// y (N, C) = x * r * w, r (N) = 1/sqrt(mean(x^2) + eps) kept for the backward.
// With g = dy * w:  dx_j = r * (g_j - x_j * r^2 * (sum_i g_i x_i) / C)   (+= into dx),
//                   dw_j += sum_n dy_nj * x_nj * r_n.
// (d r / d x_j = -r^3 x_j / C.)  dw may be NULL (frozen).
KEEL_INTERNAL void keel_op_rmsnorm_train_fwd(float *y, float *r, const float *x, const float *w,
                                             int64_t N, int64_t C, float eps);
KEEL_INTERNAL void keel_op_rmsnorm_bwd_acc(float *dx, float *dw, const float *dy, const float *x,
                                           const float *w, const float *r, int64_t N, int64_t C);

// ---- RoPE --------------------------------------------------------------------------
// x (B, T, n_head, hd) rotated in place by the table cs (T, n_rot/2, 2) of
// keel_rope_table (position t of every sequence is t). Each pair is a 2-D
// rotation R(a); its Jacobian is R(a) and R(a)^T = R(-a), so the backward is
// the same call with inverse = true applied to the gradient.
KEEL_INTERNAL void keel_op_rope_train(float *x, const float *cs, int64_t B, int64_t T, int n_head,
                                      int hd, int n_rot, keel_rope_style style, bool inverse);
// Packed rows: seg0 (B, T) is, for each position t of a row, the position
// where its segment (example) starts (0 <= seg0 <= t); the rotation uses
// position t - seg0, so RoPE restarts at 0 in every segment. seg0 NULL is
// keel_op_rope_train.
KEEL_INTERNAL void keel_op_rope_train_seg(float *x, const float *cs, const int32_t *seg0, int64_t B,
                                          int64_t T, int n_head, int hd, int n_rot,
                                          keel_rope_style style, bool inverse);

// ---- causal GQA attention over whole sequences (no KV cache) -----------------------
// q (B, T, NH*hd), k, v (B, T, NKV*hd), out (B, T, NH*hd); query head h reads
// kv head h / (NH/NKV); S = q·k^T / sqrt(hd), causal; P = softmax(S) rows.
// P (B, NH, T, T) is KEPT (entries j > i are 0): the backward then costs two
// matmuls less than recomputing it. Memory B*NH*T^2 floats per layer (SmolLM2,
// T = 256: 2.4 MB/layer); for long sequences switch to keeping only the row
// log-sum-exp (B, NH, T) and recomputing P blockwise (FlashAttention-2,
// https://arxiv.org/abs/2307.08691) behind the same call.
// Backward: dP = dout·v^T; dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik) (softmax
// VJP); dq = dS·k/sqrt(hd); dk = dS^T·q/sqrt(hd); dv = P^T·dout, summed over
// the query heads that share a kv head. dq, dk, dv are written (=).
// Scratch: keel_grad_scratch_floats(.., T).
KEEL_INTERNAL void keel_op_attention_train_fwd(float *out, float *P, const float *q, const float *k,
                                               const float *v, int64_t B, int64_t T, int NH, int NKV,
                                               int hd, int n_threads);
KEEL_INTERNAL void keel_op_attention_bwd(float *dq, float *dk, float *dv, const float *dout,
                                         const float *P, const float *q, const float *k,
                                         const float *v, int64_t B, int64_t T, int NH, int NKV,
                                         int hd, const keel_ops_scratch *s);
// The same with a block-diagonal causal mask for packed rows: seg0 (B, T) as
// for keel_op_rope_train_seg; query i attends to key j only when
// seg0[i] <= j <= i (j in i's segment), so examples packed in one row never
// see each other. P_ij = 0 outside (dS_ij too), so every product runs on the
// segments' diagonal blocks only: a row of short examples costs the sum of
// their squared lengths, not T^2. seg0 NULL is the plain causal call, bit for bit.
KEEL_INTERNAL void keel_op_attention_train_fwd_seg(float *out, float *P, const float *q, const float *k,
                                                   const float *v, const int32_t *seg0, int64_t B,
                                                   int64_t T, int NH, int NKV, int hd, int n_threads);
KEEL_INTERNAL void keel_op_attention_bwd_seg(float *dq, float *dk, float *dv, const float *dout,
                                             const float *P, const float *q, const float *k,
                                             const float *v, const int32_t *seg0, int64_t B, int64_t T,
                                             int NH, int NKV, int hd, const keel_ops_scratch *s);

// ---- SwiGLU ------------------------------------------------------------------------
// y (n) = silu(g) * u; silu(g) = g*sig(g), silu'(g) = sig(g) * (1 + g*(1 - sig(g))).
// dg = dy * u * silu'(g), du = dy * silu(g) (=).
KEEL_INTERNAL void keel_op_swiglu_train_fwd(float *y, const float *g, const float *u, int64_t n);
KEEL_INTERNAL void keel_op_swiglu_bwd(float *dg, float *du, const float *dy, const float *g,
                                      const float *u, int64_t n);

// ---- softmax cross-entropy with a loss mask ----------------------------------------
// logits (N, V), targets (N) in [0, V) where counted, mask (N) 1 = counted
// (NULL: all). loss = sum_n mask_n * (lse_n - logits[n, target_n]) / n_valid,
// computed in double; lse (N) kept. Returns 0 when no row counts.
// Backward: dlogits_n = dloss * mask_n / n_valid * (softmax(logits_n) - onehot(target_n));
// dlogits may equal logits (in place: the (N, V) buffer is the largest one).
KEEL_INTERNAL float keel_op_xent_fwd(float *lse, const float *logits, const int32_t *targets,
                                     const uint8_t *mask, int64_t N, int64_t V, int n_threads);
KEEL_INTERNAL void keel_op_xent_bwd(float *dlogits, const float *logits, const float *lse,
                                    const int32_t *targets, const uint8_t *mask, int64_t N,
                                    int64_t V, float dloss, int n_threads);

#endif // KEEL_GRAD_H
