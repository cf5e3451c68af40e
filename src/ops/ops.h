// SPDX-License-Identifier: MIT
// ops.h — numeric kernels of the transformer, forward passes (the backward of
// each op will sit beside its forward as keel_op_<name>_bwd, same argument
// order, gradients first). Kernels never allocate: every temporary comes from
// a keel_ops_scratch the caller sized once. Sits above core/ and io/ (for
// dtype sizes), below model/. Files: quant.c (block formats, fused dots),
// matmul.c (the fast matmul: dequantized panels + sgemm, fused matvec),
// ops.c (norm, RoPE, attention, activations), ops_ref.c (naive references
// kept for the tests).
#ifndef KEEL_OPS_H
#define KEEL_OPS_H

#include "core/core.h"
#include "io/io.h"

// OpenMP pragmas that vanish (without -Wunknown-pragmas noise) when keel is
// built without OpenMP: KEEL_OMP(parallel for num_threads(n)).
#ifdef _OPENMP
#define KEEL_OMP(x) _Pragma(KEEL_OMP_STR(omp x))
#define KEEL_OMP_STR(x) #x
#else
#define KEEL_OMP(x)
#endif

// ---- CPU features (cpu.c) -----------------------------------------------------

// What the running CPU and OS support, detected once with CPUID (works the
// same under gcc and clang). Empty when KEEL_NO_SIMD is set (not "0").
enum {
    KEEL_CPU_AVX2 = 1u << 0,        // AVX2 + FMA + F16C
    KEEL_CPU_AVX512 = 1u << 1,      // AVX-512 F + BW + VL (with the OS saving ZMM state)
    KEEL_CPU_AVX512_VNNI = 1u << 2, // vpdpbusd
    KEEL_CPU_AVX512_BF16 = 1u << 3, // vdpbf16ps, vcvtne2ps2bf16
    KEEL_CPU_AMX_BF16 = 1u << 4,    // AMX tiles + tdpbf16ps, and the OS granted the tile state
};
KEEL_INTERNAL unsigned keel_cpu_features(void);
// Test hook: later keel_cpu_features() calls return only the bits in mask
// (~0u restores). Returns the previous mask. Not for use while kernels run.
KEEL_INTERNAL unsigned keel_cpu_restrict(unsigned mask);

// ---- stored weight matrices ------------------------------------------------

// A (n_out, n_in) weight as stored in a model file: n_out rows of n_in
// elements of `type` (row r starts at data + r * row_bytes). Read-only, may be
// the mmap of a file, so rows may be unaligned: kernels read them bytewise.
typedef struct keel_wmat {
    keel_dtype type;
    int64_t n_in;      // ne[0]: elements per row (a multiple of the block size)
    int64_t n_out;     // ne[1]: rows
    size_t row_bytes;
    const uint8_t *data;
} keel_wmat;

// Fill w from a tensor with ne = {n_in, n_out}; false if the type is unknown
// or n_in is not a multiple of the type's block.
KEEL_INTERNAL bool keel_wmat_init(keel_wmat *w, keel_dtype type, int64_t n_in, int64_t n_out,
                                  const void *data);

// ---- scratch ----------------------------------------------------------------

// Per-thread float buffers, allocated once (by the context) and reused by
// every call. n_threads is also the OpenMP team size the kernels ask for.
// How batched matmuls (T > 1) multiply. Decode (T == 1) is always fp32.
typedef enum keel_prec {
    KEEL_PREC_FP32 = 0,   // fp32 products and sums (FMA)
    KEEL_PREC_BF16X3 = 1, // AMX: hi/lo bf16 split, three tile products (~16-bit products, fp32 sums)
    KEEL_PREC_BF16 = 2,   // AMX: weights and x rounded to bf16 (8-bit products, fp32 sums)
} keel_prec;

typedef struct keel_ops_scratch {
    int n_threads;
    keel_prec prec;       // without AMX every precision runs as FP32
    size_t per_thread;    // floats per thread
    float *buf;           // (n_threads, per_thread), 64-byte aligned
    size_t shared_floats;
    float *shared;        // (shared_floats) one buffer for the whole team (packed x)
} keel_ops_scratch;

// Floats per thread that keel_matmul needs for weights with at most
// max_in inputs, and keel_op_attention_fwd needs for max_kv cached positions;
// shared floats keel_matmul needs for up to max_T rows of x. With a smaller
// shared buffer keel_matmul still works, through the slower generic path.
KEEL_INTERNAL size_t keel_matmul_scratch_floats(int64_t max_in);
KEEL_INTERNAL size_t keel_matmul_shared_floats(int64_t max_T, int64_t max_in);
KEEL_INTERNAL size_t keel_attention_scratch_floats(int64_t max_kv);
KEEL_INTERNAL keel_status keel_ops_scratch_init(keel_ops_scratch *s, int n_threads,
                                                size_t per_thread, size_t shared, keel_err *err);
KEEL_INTERNAL void keel_ops_scratch_free(keel_ops_scratch *s);

// ---- quantized blocks (quant.c) -----------------------------------------------

// Dequantize n elements (a multiple of the block size) of a row of type t.
// Block layouts (ggml-common.h; all little-endian, scales IEEE f16):
//   Q8_0 (34 B): d, int8 q[32]                    x[i] = d * q[i]
//   Q4_0 (18 B): d, u8 qs[16]                     x[i] = d * (nib[i] - 8)
//   Q4_1 (20 B): d, m, u8 qs[16]                  x[i] = d * nib[i] + m
//   nib[i] = qs[i] & 15 for i < 16, qs[i-16] >> 4 for i >= 16.
KEEL_INTERNAL void keel_dequant_row(keel_dtype t, const void *src, float *dst, int64_t n);
// dot(row of type t, x) over n elements, accumulated in float.
KEEL_INTERNAL float keel_dot_row(keel_dtype t, const void *row, const float *x, int64_t n);

// ---- matmul (matmul.c) ------------------------------------------------------

// y (T, n_out) = x (T, n_in) · W^T. T == 1 runs a fused dequantize-dot over
// output rows; T > 1 dequantizes panels of W into the scratch and calls sgemm
// (OpenBLAS when built with it, else a blocked loop); on AVX-512 CPUs x is
// packed and a register-tiled kernel of ours runs instead. Threads: s->n_threads.
KEEL_INTERNAL void keel_matmul(float *y, const float *x, const keel_wmat *w, int64_t T,
                               const keel_ops_scratch *s);

// Several weights with the same n_in applied to the same x (q/k/v, gate/up):
// x is prepared once and all rows are shared out in one parallel region.
typedef struct keel_mm {
    const keel_wmat *w;
    float *y; // (T, w->n_out)
} keel_mm;
KEEL_INTERNAL void keel_matmul_multi(const float *x, int64_t T, const keel_mm *mm, int n,
                                     const keel_ops_scratch *s);

// AMX tile matmul (matmul_amx.c), used by keel_matmul_multi for T > 1 when
// s->prec is BF16 or BF16X3. _ok: the CPU has AMX-BF16, K is a multiple of
// 32 and the scratch is large enough.
KEEL_INTERNAL bool keel_matmul_amx_ok(const keel_mm *mm, int n, int64_t T, const keel_ops_scratch *s);
KEEL_INTERNAL void keel_matmul_amx(const float *x, int64_t T, const keel_mm *mm, int n,
                                   const keel_ops_scratch *s, int nt, bool x3);

// ---- elementwise and attention (ops.c) ----------------------------------------

// y (T, C) = x / sqrt(mean(x^2) + eps) * w (C). y may equal x.
// reference: https://arxiv.org/abs/1910.07467
KEEL_INTERNAL void keel_op_rmsnorm_fwd(float *y, const float *x, const float *w, int64_t T,
                                       int64_t C, float eps);

typedef enum keel_rope_style {
    KEEL_ROPE_NORM = 0, // rotate adjacent pairs (x[2i], x[2i+1]): GGUF/Meta layout
    KEEL_ROPE_NEOX = 1, // rotate halves (x[i], x[i + n_rot/2]): HF layout
} keel_rope_style;

// cs (T, n_rot/2, 2): cos and sin of angle (pos0 + t) * theta^(-2i/n_rot),
// computed in double. reference: https://arxiv.org/abs/2104.09864
KEEL_INTERNAL void keel_rope_table(float *cs, int32_t pos0, int64_t T, int n_rot, float theta);
// Rotate the first n_rot dims of every head of x (T, n_head, head_dim) in place
// with the table cs (T, n_rot/2, 2); dims >= n_rot pass through.
KEEL_INTERNAL void keel_op_rope_fwd(float *x, const float *cs, int64_t T, int n_head,
                                    int head_dim, int n_rot, keel_rope_style style);

// Causal grouped-query attention over a KV cache.
//   out (T, n_head*hd), q (T, n_head*hd) for positions pos0 .. pos0+T-1,
//   kt (n_head_kv, hd, ldk): keys transposed, dim i of kv head g at position
//     j is kt[(g*hd + i)*ldk + j]; vc (n_cache, n_head_kv*hd): values.
//   Positions [0, pos0+T) of both already hold this layer's keys and values
//   (including the T new ones).
// Query head h reads kv head h / (n_head / n_head_kv). Scale 1/sqrt(hd),
// softmax in float with the max subtracted. Scratch: keel_attention_scratch_floats(pos0+T).
KEEL_INTERNAL void keel_op_attention_fwd(float *out, const float *q, const float *kt, int64_t ldk,
                                         const float *vc, int64_t T, int32_t pos0, int n_head,
                                         int n_head_kv, int hd, const keel_ops_scratch *s);
// Row stride of transposed keys for n_ctx positions (padded off powers of two).
KEEL_INTERNAL int64_t keel_kt_stride(int64_t n_ctx);
// Store k (T, n_head_kv*hd) for positions pos0.. into kt (n_head_kv*hd, ldk).
KEEL_INTERNAL void keel_kt_store(float *kt, int64_t ldk, const float *k, int64_t T, int32_t pos0,
                                 int n_head_kv, int hd);

// y (n) = silu(gate) * up, silu(g) = g / (1 + exp(-g)). y may alias gate.
// reference: https://arxiv.org/abs/2002.05202
KEEL_INTERNAL void keel_op_swiglu_fwd(float *y, const float *gate, const float *up, int64_t n);
// y (n) = softmax(x), max subtracted; y may equal x.
KEEL_INTERNAL void keel_op_softmax_fwd(float *y, const float *x, int64_t n);
// Index of the largest value (the first on ties); -1 if n <= 0.
KEEL_INTERNAL int64_t keel_op_argmax(const float *x, int64_t n);
// y (n) += x (n)
KEEL_INTERNAL void keel_op_add(float *y, const float *x, int64_t n);

// ---- naive references (ops_ref.c), for tests ----------------------------------

// y (T, n_out) = x · W^T, each row dequantized then dotted in double.
KEEL_INTERNAL void keel_matmul_ref(float *y, const float *x, const keel_wmat *w, int64_t T);
KEEL_INTERNAL void keel_op_rmsnorm_ref(float *y, const float *x, const float *w, int64_t T,
                                       int64_t C, float eps);
KEEL_INTERNAL void keel_op_rope_ref(float *x, int32_t pos0, int64_t T, int n_head, int head_dim,
                                    int n_rot, float theta, keel_rope_style style);
KEEL_INTERNAL void keel_op_attention_ref(float *out, const float *q, const float *kc,
                                         const float *vc, int64_t T, int32_t pos0, int n_head,
                                         int n_head_kv, int hd);

#endif // KEEL_OPS_H
