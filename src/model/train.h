// SPDX-License-Identifier: MIT
// train.h — the Llama model in training mode: which tensors train and where
// their values, gradients and optimizer moments live (keel_train_params), the
// view of the model the training forward/backward runs on (keel_train_model),
// the activations kept for the backward (keel_train_acts, one arena sized for
// (B, T) once), and the two calls of a step: keel_train_forward (loss) and
// keel_train_backward (gradients). train.c implements them on the kernels of
// ops/grad.h. Sits above ops/ and model.h, below train/ (optimizer, loop),
// adapters/ (LoRA) and io/ export. Layout rules from DESIGN.md "Memory".
//
// Memory layout (the contract the next layers plug into):
//   params.w  (n_floats)  every TRAINABLE tensor, fp32, one after another in
//                         HF order (embed_tokens, per layer: input_layernorm,
//                         q,k,v,o_proj, post_attention_layernorm, gate,up,
//                         down_proj; model.norm, lm_head), each starting on a
//                         64-byte boundary (offsets are multiples of 16 floats).
//   params.g  (n_floats)  their gradients, same offsets: one allreduce / one
//                         norm for clipping / one memset per step.
//   AdamW moments: src/train/train.h's keel_adamw owns m and v, n_floats
//                         each, same offsets: keel_adamw_init(&opt, p.n_floats),
//                         keel_adamw_no_decay(off, off + cols) for the (1, C)
//                         norm tensors, keel_adamw_step(&opt, p.w, p.g, lr).
//                         Padding floats stay 0 in w, g, m, v (no effect on
//                         norms or updates).
//   Frozen tensors are not copied: they stay where the model file put them
//   (mmap, stored type: F32/F16/BF16/Q8_0/Q4_0/Q4_1) and only their dx runs
//   (keel_op_linear_bwd_dx_q dequantizes panels) — that is QLoRA's base.
//   acts: one 64-byte-aligned arena, carved in keel_train_acts_init for
//   (B, T); keel_train_forward/backward never allocate.
//
// Activation memory (measured, SmolLM2-135M, B = 1, T = 256: 371 MiB arena):
// per token and layer the arena keeps x, xn1, q, att, xm, xn2 (C or Q each),
// k, v (K), g, u, h (F) and P (NH * T) — 10,752 floats for SmolLM2 — plus
// logits (V) per token. Cheapest cuts when memory matters, in order: P ->
// row log-sum-exp and blockwise recompute (-21%), h recomputed from g, u in
// the backward (-14%), xn1/xn2 recomputed from x/xm and r1/r2 (-11%), and
// logits chunked over rows with the xent backward fused into the head matmul.
//
// LoRA hook: every linear layer is a keel_tlinear; train.c calls
// keel_tlinear_fwd / keel_tlinear_bwd, which run the base weight and then,
// when `adapter` is set, the adapter's branch (y += s * (x A^T) B^T; dx +=
// s * (dy B) A; dA, dB into params). The LoRA session adds the adapter struct
// and its two calls there; nothing else in the forward/backward changes.
// Its A (r, n_in) and B (n_out, r) should become keel_tparam entries of the
// same buffer (PEFT names ...<hf module>.lora_A.weight), with the selection
// returning false for every base tensor — so clipping, AdamW, allreduce and
// checkpoints see one buffer whatever the method.
//
// Names and rows: tensors carry HF names whatever the file. From a GGUF
// (m->rope == KEEL_ROPE_NORM) the q_proj/k_proj rows are in Meta order (row
// h*hd + 2i + j is HF row h*hd + j*hd/2 + i): an HF/PEFT exporter must map them
// back (test_model_grad.c does, to compare). Tied models have no lm_head entry;
// the head reuses embed_tokens' slice and adds into its gradient.
#ifndef KEEL_MODEL_TRAIN_H // (src/train/train.h is KEEL_TRAIN_H)
#define KEEL_MODEL_TRAIN_H

#include "model/model.h"
#include "ops/grad.h"

// One trainable tensor: a slice of params.w/g (and of the optimizer's m/v).
typedef struct keel_tparam {
    char name[96];     // Hugging Face name, e.g. "model.layers.0.self_attn.q_proj.weight"
    int64_t rows, cols;// (rows, cols) row-major; vectors are (1, cols)
    size_t off;        // first float in the buffers (multiple of 16)
} keel_tparam;

typedef struct keel_train_params {
    int n;             // number of trainable tensors
    keel_tparam *t;    // (n)
    size_t n_floats;   // buffer length including alignment padding
    float *w, *g;      // (n_floats) values, gradients (64-byte aligned)
} keel_train_params;

// An adapter branch beside a linear layer (adapters/: LoRA). fwd adds its
// contribution to y (N, n_out); bwd adds its parameters' gradients into
// params.g and, when dx is not NULL, its contribution to dx (N, n_in) (+=:
// the base has already written or accumulated dx). Implementations embed
// this as their first member.
typedef struct keel_tadapter keel_tadapter;
struct keel_tadapter {
    void (*fwd)(const keel_tadapter *ad, float *y, const float *x, int64_t N,
                const keel_ops_scratch *s);
    void (*bwd)(const keel_tadapter *ad, float *dx, const float *dy, const float *x, int64_t N,
                const keel_ops_scratch *s);
};

// Linear layer y (N, n_out) = x (N, n_in) · W^T (+ adapter branch).
typedef struct keel_tlinear {
    keel_wmat base;    // the weight in the forward: F32 view of params.w when trainable,
                       // else the frozen matrix of the model file
    float *w, *dw;     // (n_out, n_in) in params.w / params.g when trainable, else NULL
    int param;         // index in params.t, or -1 (frozen)
    const keel_tadapter *adapter; // LoRA branch (NULL: none) — see the hook note above
} keel_tlinear;

// Norm weight (C): trainable -> w/dw in params; frozen -> w is the model's copy, dw NULL.
typedef struct keel_tvec {
    const float *w;
    float *dw;
    int param;
} keel_tvec;

typedef struct keel_tlayer {
    keel_tvec attn_norm, ffn_norm;
    keel_tlinear wq, wk, wv, wo, w_gate, w_up, w_down;
} keel_tlayer;

typedef struct keel_train_model {
    const keel_model *m;     // the loaded model (not owned)
    keel_train_params p;
    keel_tlinear tok_embd;   // (V, C) rows looked up (base), dw = embedding grad
    keel_tlinear output;     // (V, C); when tied: the same w/dw as tok_embd
    keel_tvec output_norm;
    keel_tlayer *layers;     // (n_layer)
    bool tied;
    int n_threads;
} keel_train_model;

// Which tensors train: return true for a trainable HF name. NULL = all
// (full fine-tuning). Name patterns and layer ranges (job file) are built on this.
typedef bool (*keel_train_select_fn)(const char *hf_name, void *ud);

// Copy the selected tensors of m into a fresh params buffer (fp32, dequantized
// from the stored type) and bind everything else frozen. m must outlive tm.
KEEL_INTERNAL keel_status keel_train_model_init(keel_train_model *tm, const keel_model *m,
                                                keel_train_select_fn sel, void *ud, keel_err *err);
KEEL_INTERNAL void keel_train_model_free(keel_train_model *tm);
// Index of the tensor named name, or -1.
KEEL_INTERNAL int keel_train_params_find(const keel_train_params *p, const char *name);
KEEL_INTERNAL void keel_train_zero_grad(keel_train_model *tm);
// Append n tensors (name, rows, cols of add[i]; off is ignored) to tm->p:
// w and g are reallocated (new slices 0, old values kept, offsets of old
// entries unchanged) and every view of tm into them rebound. Adapters
// (LoRA's A and B) use this; their entries are not bound to any linear.
// KEEL_ERR_NOMEM leaves tm unchanged.
KEEL_INTERNAL keel_status keel_train_params_append(keel_train_model *tm, const keel_tparam *add, int n,
                                                   keel_err *err);

// Per-layer saved activations. N = B*T; C, Q = NH*hd, K = NKV*hd, F.
typedef struct keel_tacts_layer {
    float *x;      // (N, C) residual stream entering the layer
    float *xn1;    // (N, C) attn-norm output, r1 (N) its 1/rms
    float *r1;
    float *q;      // (N, Q) after RoPE
    float *k, *v;  // (N, K) k after RoPE
    float *P;      // (B, NH, T, T) attention probabilities
    float *att;    // (N, Q) attention output (input of o_proj)
    float *xm;     // (N, C) residual after attention
    float *xn2;    // (N, C) ffn-norm output, r2 (N)
    float *r2;
    float *g, *u;  // (N, F) gate and up projections
    float *h;      // (N, F) silu(g) * u (input of down_proj)
} keel_tacts_layer;

typedef struct keel_train_acts {
    int32_t B, T;
    void *arena;            // the one allocation; everything below points into it
    size_t arena_bytes;
    keel_tacts_layer *L;    // (n_layer)
    float *xf;              // (N, C) final residual stream
    float *xnf, *rf;        // (N, C), (N) final norm output and 1/rms
    float *logits;          // (N, V); becomes dlogits in the backward
    float *lse;             // (N)
    float *cs;              // (T, n_rot/2, 2) RoPE table for positions 0..T-1
    int32_t *tokens, *targets; // (N) copies of the step's batch
    uint8_t *mask;          // (N)
    int32_t *seg0;          // (N) packed rows: where each position's segment starts in its row
    bool packed;            // the last forward had segments (seg0 valid); false: one per row
    // Scoring without a loss (cap/run.c): when head_rows is set, the forward
    // computes logits only for the n_head_rows positions head_rows[k] (row-
    // major indices into (B, T)), into logits rows k = 0.., and no loss (0);
    // the backward must not follow. NULL (the default): every position, loss.
    const int32_t *head_rows;
    int64_t n_head_rows;
    float loss;
    // backward temporaries (reused by every layer)
    float *dres, *dxn;      // (N, C)
    float *dq, *datt;       // (N, Q)
    float *dk, *dv;         // (N, K)
    float *dg, *du, *dh;    // (N, F)
    keel_ops_scratch ops;   // per-thread scratch for keel_matmul and grad.h kernels
} keel_train_acts;

KEEL_INTERNAL keel_status keel_train_acts_init(keel_train_acts *a, const keel_train_model *tm, int32_t B,
                                               int32_t T, keel_err *err);
KEEL_INTERNAL void keel_train_acts_free(keel_train_acts *a);

// Forward over tokens (B, T) with next-token targets (B, T) and mask (B, T)
// (1 = this position's target counts; NULL = all): *loss = the mean
// cross-entropy over counted positions. Positions of every row start at 0.
// Fails (KEEL_ERR_INVALID, naming the row and column) on a token id outside
// [0, n_vocab) or a counted target outside it; nothing is computed then.
KEEL_INTERNAL keel_status keel_train_forward(const keel_train_model *tm, keel_train_acts *a,
                                             const int32_t *tokens, const int32_t *targets,
                                             const uint8_t *mask, float *loss, keel_err *err);
// The same for packed rows: seg (B, T) holds, for every position t of a
// row, the position where t's segment (example) starts, 0 <= seg[t] <= t,
// with seg[t] == seg[t - 1] or seg[t] == t (segments are contiguous). Each
// segment is then a sequence of its own: RoPE positions restart at 0 and
// attention is block-diagonal causal (keel_op_attention_train_fwd_seg). The
// caller masks the target of a segment's last position (the next segment's
// first token is not its continuation). seg NULL = keel_train_forward, bit
// for bit. Fails (KEEL_ERR_INVALID) on a seg that breaks those rules.
KEEL_INTERNAL keel_status keel_train_forward_seg(const keel_train_model *tm, keel_train_acts *a,
                                                 const int32_t *tokens, const int32_t *targets,
                                                 const uint8_t *mask, const int32_t *seg, float *loss,
                                                 keel_err *err);
// Backward of the last forward with d loss = 1: adds every trainable
// tensor's gradient into tm->p.g. Consumes a->logits.
KEEL_INTERNAL void keel_train_backward(keel_train_model *tm, keel_train_acts *a);

// The linear-layer pair the LoRA hook lives in. x (N, n_in) -> y (N, n_out);
// bwd: dx (=, or += when dx_acc; may be NULL) and the weight gradient (+=).
KEEL_INTERNAL void keel_tlinear_fwd(const keel_tlinear *l, float *y, const float *x, int64_t N,
                                    const keel_ops_scratch *s);
KEEL_INTERNAL void keel_tlinear_bwd(const keel_tlinear *l, float *dx, const float *dy, const float *x,
                                    int64_t N, bool dx_acc, const keel_ops_scratch *s);

// Copy the (n_rows, cols) rows of a q_proj/k_proj-shaped matrix between
// GGUF's Meta order and HF's order (heads of hd rows; to_hf: src is Meta
// order). dst and src must not overlap. qk_order.c.
KEEL_INTERNAL void keel_qk_rows_permute(float *dst, const float *src, int64_t n_rows, int64_t hd,
                                        int64_t cols, bool to_hf);

#endif // KEEL_MODEL_TRAIN_H
