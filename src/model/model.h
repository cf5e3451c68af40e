// SPDX-License-Identifier: MIT
// model.h — the Llama-family model inside keel: hyper-parameters, weights
// bound by name from a GGUF file or a Hugging Face directory (load.c), and the
// forward pass over a batch of tokens with a KV cache (forward.c). The public
// handle keel_model (include/keel.h) is this struct. Sits above ops/, io/ and
// tokenizer/, below eval/ and train/.
#ifndef KEEL_MODEL_H
#define KEEL_MODEL_H

#include "core/core.h"
#include "io/io.h"
#include "ops/ops.h"

// One transformer block. C = n_embd, Q = n_head*head_dim, K = n_head_kv*head_dim, F = n_ff.
typedef struct keel_layer {
    const float *attn_norm; // (C) float copy
    const float *ffn_norm;  // (C) float copy
    keel_wmat wq;           // (Q, C)
    keel_wmat wk;           // (K, C)
    keel_wmat wv;           // (K, C)
    keel_wmat wo;           // (C, Q)
    keel_wmat w_gate;       // (F, C)
    keel_wmat w_up;         // (F, C)
    keel_wmat w_down;       // (C, F)
} keel_layer;

struct keel_model {
    keel_model_desc desc;    // public description (strings below)
    int32_t head_dim;
    keel_rope_style rope;    // NORM for GGUF (Meta row order), NEOX for HF
    int n_threads;
    keel_prec prec;          // batched matmul precision (keel_model_params.matmul_precision)

    keel_wmat tok_embd;      // (V, C)
    keel_wmat output;        // (V, C); the same rows as tok_embd when tied
    const float *output_norm;// (C)
    keel_layer *layers;      // (n_layer)
    float *norms;            // owns every norm vector: ((2 * n_layer + 1), C)

    // where the weights live (mapped read-only for the model's lifetime)
    keel_gguf *gguf;
    keel_safetensors **shards;
    int n_shards;
    const keel_tensor_info **tensors; // every tensor of the file(s), for keel_model_tensor
    int64_t n_tensors;

    keel_tokenizer *tok;
    char *arch, *name, *format;
};

// ---- forward (forward.c) ----------------------------------------------------------

// KV cache for one sequence. Keys are stored transposed (see
// keel_op_attention_fwd): k (n_layer, n_head_kv * head_dim, ldk); values
// v (n_layer, n_ctx, n_head_kv * head_dim).
typedef struct keel_kv_cache {
    int32_t n_ctx;
    int64_t ldk;  // = keel_kt_stride(n_ctx)
    float *k, *v;
} keel_kv_cache;

// Activations for up to max_T tokens per forward call, allocated once.
typedef struct keel_fwd_buf {
    int32_t max_T;
    float *x;    // (max_T, C) residual stream
    float *xb;   // (max_T, max(C, Q)) normed input / projection output
    float *q;    // (max_T, Q)
    float *kb;   // (max_T, K) new keys before they go into the cache
    float *att;  // (max_T, Q)
    float *hb;   // (max_T, F)
    float *hb2;  // (max_T, F)
    float *cs;   // (max_T, n_rot/2, 2) rope cos/sin
    keel_ops_scratch ops;
    float *lora_xa;  // (max_T, r) x · A^T of a LoRA branch (keel_fwd_buf_lora_reserve), or NULL
    int64_t lora_cap;// floats in lora_xa
    int32_t *slot;   // (2 max_T) keel_model_forward_segs: each token's cache slot, then each segment's first token
} keel_fwd_buf;

// A LoRA adapter as the inference forward applies it (eval/adapter.c builds
// it from a PEFT directory through adapters/lora.c's loader): every adapted
// linear computes y = x W^T + scale * (x A^T) B^T in fp32. Slot l * 7 + p is
// projection p of layer l in HF order (q k v o gate up down, lora.h's
// keel_lora_proj); A (r, n_in) and B (n_out, r) are in the model's row order
// (Meta order for q/k of a GGUF base), both NULL when that linear has none.
typedef struct keel_fwd_lora {
    int32_t r;
    float scale;           // alpha / r, or alpha / sqrt(r) with rsLoRA
    const float *const *A; // (n_layer * 7)
    const float *const *B; // (n_layer * 7)
    const float *const *Bt;// (n_layer * 7) B transposed, (r, n_out): the one-token path's axpy
} keel_fwd_lora;

KEEL_INTERNAL keel_status keel_kv_cache_init(const keel_model *m, int32_t n_ctx, keel_kv_cache *kv,
                                             keel_err *err);
KEEL_INTERNAL void keel_kv_cache_free(keel_kv_cache *kv);
KEEL_INTERNAL keel_status keel_fwd_buf_init(const keel_model *m, int32_t max_T, int32_t n_ctx,
                                            keel_fwd_buf *b, keel_err *err);
KEEL_INTERNAL void keel_fwd_buf_free(keel_fwd_buf *b);
// Size b->lora_xa for rank r (grows only; KEEL_ERR_NOMEM leaves b unchanged).
KEEL_INTERNAL keel_status keel_fwd_buf_lora_reserve(keel_fwd_buf *b, int32_t r, keel_err *err);

// Run T (1..b->max_T) valid token ids at positions pos..pos+T-1 (pos+T <=
// kv->n_ctx), writing their keys/values into the cache. logits: NULL, or
// (T, V) when all_logits, else (V) for the last token. lora: an adapter on
// the linears (b->lora_xa reserved for its r), or NULL (the plain model, the
// same code path and results as before adapters existed). The caller validates.
KEEL_INTERNAL void keel_model_forward(const keel_model *m, keel_kv_cache *kv, keel_fwd_buf *b,
                                      const keel_fwd_lora *lora, const int32_t *tokens, int32_t T,
                                      int32_t pos, float *logits, bool all_logits);

// Several independent sequences in one forward call (batched scoring,
// cap/score_ctx.c). The cache's slots are split into regions, one per
// sequence: position p of a sequence whose region starts at slot0 lives in
// slot slot0 + p. Segment i runs its n tokens at positions pos..pos+n-1 of
// its sequence and attends causally to positions 0..pos+t of its own region
// only (earlier calls, or copies of another region's slots, fill 0..pos-1).
typedef struct keel_fwd_seg {
    int32_t n;     // tokens of this call (>= 1)
    int32_t pos;   // position of the first
    int32_t slot0; // first slot of the sequence's region (slot0 + pos + n <= kv->n_ctx)
} keel_fwd_seg;

// tokens: the segments' tokens one after another (T = sum of n <= b->max_T;
// every pos + n within the attention scratch b was made for). logits: NULL,
// or (n_rows, V) for the tokens rows[0..n_rows) (indices into the call's T
// tokens, any order); rows NULL = the last n_rows tokens. One segment at
// slot0 0 with rows NULL is keel_model_forward, bit for bit.
KEEL_INTERNAL void keel_model_forward_segs(const keel_model *m, keel_kv_cache *kv, keel_fwd_buf *b,
                                           const keel_fwd_lora *lora, const int32_t *tokens,
                                           const keel_fwd_seg *seg, int32_t n_seg, const int32_t *rows,
                                           int32_t n_rows, float *logits);

#endif // KEEL_MODEL_H
