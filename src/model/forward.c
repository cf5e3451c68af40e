// SPDX-License-Identifier: MIT
// forward.c — the Llama forward pass over a batch of T tokens with a KV cache
// (llama2.c run.c `forward`, batched): embedding -> n_layer x [RMSNorm ->
// q,k,v -> RoPE -> causal GQA attention -> output proj -> residual -> RMSNorm
// -> SwiGLU FFN -> residual] -> RMSNorm -> lm head. fp32 activations; the
// weights stay in their stored type (ops/matmul.c dequantizes panels). Keys
// and values are written straight into the cache rows of their positions.
// With a LoRA adapter (keel_fwd_lora) each adapted linear adds its fp32
// branch s * (x A^T) B^T right after the base matmul, as the training
// forward (adapters/lora.c) does; without one nothing else changes.
#include "model/model.h"
#include "ops/grad.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static size_t max3(size_t a, size_t b, size_t c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

keel_status keel_kv_cache_init(const keel_model *m, int32_t n_ctx, keel_kv_cache *kv, keel_err *err) {
    memset(kv, 0, sizeof *kv);
    const keel_model_desc *d = &m->desc;
    if (n_ctx < 1) return KEEL_FAIL(err, KEEL_ERR_INVALID, "context of %d positions", (int)n_ctx);
    int64_t ldk = keel_kt_stride(n_ctx);
    size_t n = (size_t)d->n_layer * (size_t)ldk * (size_t)d->n_head_kv * (size_t)m->head_dim;
    if (n > SIZE_MAX / sizeof(float) / 2)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "context of %d positions is too large", (int)n_ctx);
    kv->k = keel_malloc_aligned(n * sizeof(float));
    kv->v = keel_malloc_aligned(n * sizeof(float)); // (only n_ctx of the ldk rows are used)
    if (!kv->k || !kv->v) {
        keel_kv_cache_free(kv);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "KV cache: out of memory (%d positions, %.1f MiB)", (int)n_ctx,
                         2.0 * (double)n * sizeof(float) / 1048576.0);
    }
    kv->n_ctx = n_ctx;
    kv->ldk = ldk;
    return KEEL_OK;
}

void keel_kv_cache_free(keel_kv_cache *kv) {
    if (!kv) return;
    keel_free_aligned(kv->k);
    keel_free_aligned(kv->v);
    memset(kv, 0, sizeof *kv);
}

keel_status keel_fwd_buf_init(const keel_model *m, int32_t max_T, int32_t n_ctx, keel_fwd_buf *b,
                              keel_err *err) {
    memset(b, 0, sizeof *b);
    const keel_model_desc *d = &m->desc;
    size_t T = (size_t)max_T, C = (size_t)d->n_embd, Q = (size_t)d->n_head * (size_t)m->head_dim;
    size_t F = (size_t)d->n_ff;
    size_t K = (size_t)d->n_head_kv * (size_t)m->head_dim;
    float **bufs[] = {&b->x, &b->xb, &b->q, &b->kb, &b->att, &b->hb, &b->hb2, &b->cs};
    size_t sizes[] = {T * C, T * C, T * Q, T * K, T * Q, T * F, T * F, T * (size_t)d->n_rot};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        *bufs[i] = keel_malloc_aligned(sizes[i] * sizeof(float));
        if (!*bufs[i]) {
            keel_fwd_buf_free(b);
            return KEEL_FAIL(err, KEEL_ERR_NOMEM, "activation buffers: out of memory (%d tokens)", (int)max_T);
        }
    }
    b->slot = keel_malloc((size_t)(max_T > 0 ? max_T : 1) * 2 * sizeof *b->slot);
    if (!b->slot) {
        keel_fwd_buf_free(b);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "activation buffers: out of memory (%d tokens)", (int)max_T);
    }
    size_t max_in = max3(C, Q, F);
    size_t per = max3(keel_matmul_scratch_floats((int64_t)max_in), keel_attention_scratch_floats(n_ctx), 0);
    keel_status st = keel_ops_scratch_init(&b->ops, m->n_threads, per,
                                           keel_matmul_shared_floats(max_T, (int64_t)max_in), err);
    if (st) {
        keel_fwd_buf_free(b);
        return st;
    }
    b->ops.prec = m->prec;
    b->max_T = max_T;
    return KEEL_OK;
}

void keel_fwd_buf_free(keel_fwd_buf *b) {
    if (!b) return;
    keel_free_aligned(b->x);
    keel_free_aligned(b->xb);
    keel_free_aligned(b->q);
    keel_free_aligned(b->kb);
    keel_free_aligned(b->att);
    keel_free_aligned(b->hb);
    keel_free_aligned(b->hb2);
    keel_free_aligned(b->cs);
    keel_ops_scratch_free(&b->ops);
    keel_free_aligned(b->lora_xa);
    keel_free(b->slot);
    memset(b, 0, sizeof *b);
}

keel_status keel_fwd_buf_lora_reserve(keel_fwd_buf *b, int32_t r, keel_err *err) {
    if (r < 1 || r > (1 << 20)) return KEEL_FAIL(err, KEEL_ERR_INVALID, "LoRA rank %d", (int)r);
    int64_t need = (int64_t)b->max_T * r;
    if (need <= b->lora_cap) return KEEL_OK;
    float *xa = keel_malloc_aligned((size_t)need * sizeof(float));
    if (!xa)
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "LoRA activations: out of memory (%d tokens x rank %d)",
                         (int)b->max_T, (int)r);
    keel_free_aligned(b->lora_xa);
    b->lora_xa = xa;
    b->lora_cap = need;
    return KEEL_OK;
}

// y (T, n_out) += s * (x (T, n_in) A^T) B^T for linear `slot` when it is
// adapted. One token: on the calling thread (about 4% of the base's work
// for r = 16 on every projection; waking the team would cost more): r SIMD
// dot products for x A^T, then r axpys over the rows of B^T, which the
// compiler vectorizes. More: keel_gemm, the same two products the training
// forward runs. xa: (T, r) scratch.
static void lora_branch(const keel_fwd_lora *lo, int slot, float *y, const float *x, int64_t T, int64_t n_in,
                        int64_t n_out, float *xa, int n_threads) {
    const float *A = lo->A[slot], *B = lo->B[slot];
    if (!A || !B) return;
    const int64_t r = lo->r;
    if (T == 1) {
        const float *Bt = lo->Bt[slot];
        for (int64_t k = 0; k < r; k++) xa[k] = lo->scale * keel_dot_row(KEEL_DTYPE_F32, A + k * n_in, x, n_in);
        for (int64_t k = 0; k < r; k++) {
            const float c = xa[k], *bk = Bt + k * n_out;
            for (int64_t o = 0; o < n_out; o++) y[o] += c * bk[o];
        }
        return;
    }
    keel_gemm(false, true, T, r, n_in, x, n_in, A, n_in, 0.0f, xa, r, n_threads);
    for (int64_t k = 0; k < T * r; k++) xa[k] *= lo->scale;
    keel_gemm(false, true, T, n_out, r, xa, r, B, r, 1.0f, y, n_out, n_threads);
}

void keel_model_forward(const keel_model *m, keel_kv_cache *kv, keel_fwd_buf *b, const keel_fwd_lora *lora,
                        const int32_t *tokens, int32_t T, int32_t pos, float *logits, bool all_logits) {
    const keel_fwd_seg one = {T, pos, 0};
    keel_model_forward_segs(m, kv, b, lora, tokens, &one, 1, NULL, all_logits ? T : 1, logits);
}

void keel_model_forward_segs(const keel_model *m, keel_kv_cache *kv, keel_fwd_buf *b, const keel_fwd_lora *lora,
                             const int32_t *tokens, const keel_fwd_seg *seg, int32_t n_seg, const int32_t *rows,
                             int32_t n_rows, float *logits) {
    const keel_model_desc *d = &m->desc;
    const int64_t C = d->n_embd, hd = m->head_dim, K = d->n_head_kv * hd, Q = d->n_head * hd;
    const int64_t F = d->n_ff, V = d->n_vocab;
    const keel_ops_scratch *s = &b->ops;
    KEEL_ASSERT(n_seg >= 1);
    int32_t T = 0;
    for (int32_t i = 0; i < n_seg; i++) {
        KEEL_ASSERT(seg[i].n >= 1 && seg[i].pos >= 0 && seg[i].slot0 >= 0 &&
                    (int64_t)seg[i].slot0 + seg[i].pos + seg[i].n <= kv->n_ctx && T + seg[i].n <= b->max_T);
        // the rope table and the cache slot of every token
        keel_rope_table(b->cs + (size_t)T * (size_t)d->n_rot, seg[i].pos, seg[i].n, d->n_rot, d->rope_theta);
        for (int32_t t = 0; t < seg[i].n; t++) b->slot[T + t] = seg[i].slot0 + seg[i].pos + t;
        b->slot[b->max_T + i] = T; // the segment's first token in the call
        T += seg[i].n;
    }
    KEEL_ASSERT(!lora || (int64_t)T * lora->r <= b->lora_cap);
    KEEL_ASSERT(n_rows >= 0 && n_rows <= T);

    // x (T, C) = token embedding rows
    for (int32_t t = 0; t < T; t++) {
        KEEL_ASSERT(tokens[t] >= 0 && tokens[t] < V);
        keel_dequant_row(m->tok_embd.type, m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_bytes,
                         b->x + t * C, C);
    }

    // The elementwise steps between the matmuls run per token, split over the
    // threads when the batch is large enough to pay for waking them (decode
    // keeps them on the calling thread). Each step is one pass over a row:
    // the residual add of one block is fused with the norm of the next.
    const int nthr = s->n_threads > 0 ? s->n_threads : 1;
    const bool par = T >= 8 && nthr > 1;
    (void)par;
    // One sequence: values go straight into its cache rows; several: through
    // att (free until the attention, Q >= K), then row by row into their regions.
    const bool direct_v = n_seg == 1;
    for (int l = 0; l < d->n_layer; l++) {
        const keel_layer *L = &m->layers[l];
        float *kt = kv->k + (size_t)l * (size_t)K * (size_t)kv->ldk; // (K, ldk) of this layer
        float *vc = kv->v + (size_t)l * (size_t)kv->n_ctx * (size_t)K;   // (n_ctx, K)
        float *vnew = direct_v ? vc + (size_t)b->slot[0] * K : b->att;   // (T, K)

        // attention; x += the previous block's output (left in xb) first
KEEL_OMP(parallel for num_threads(nthr) schedule(static) if(par))
        for (int32_t t = 0; t < T; t++) {
            if (l > 0) keel_op_add(b->x + t * C, b->xb + t * C, C);
            keel_op_rmsnorm_fwd(b->xb + t * C, b->x + t * C, L->attn_norm, 1, C, d->norm_eps);
        }
        keel_mm qkv[3] = {
            {&L->wq, b->q},   // (T, Q)
            {&L->wk, b->kb},  // (T, K)
            {&L->wv, vnew},   // (T, K)
        };
        keel_matmul_multi(b->xb, T, qkv, 3, s);
        if (lora) { // before RoPE, as the q/k/v projections' outputs
            const int sl = l * 7;
            lora_branch(lora, sl + 0, b->q, b->xb, T, C, Q, b->lora_xa, nthr);
            lora_branch(lora, sl + 1, b->kb, b->xb, T, C, K, b->lora_xa, nthr);
            lora_branch(lora, sl + 2, vnew, b->xb, T, C, K, b->lora_xa, nthr);
        }
        const int n_half = d->n_rot / 2;
KEEL_OMP(parallel for num_threads(nthr) schedule(static) if(par))
        for (int32_t t = 0; t < T; t++) {
            const float *cs = b->cs + (size_t)t * (size_t)n_half * 2;
            keel_op_rope_fwd(b->q + t * Q, cs, 1, d->n_head, (int)hd, d->n_rot, m->rope);
            keel_op_rope_fwd(b->kb + t * K, cs, 1, d->n_head_kv, (int)hd, d->n_rot, m->rope);
            keel_kt_store(kt, kv->ldk, b->kb + t * K, 1, b->slot[t], d->n_head_kv, (int)hd);
            if (!direct_v) memcpy(vc + (size_t)b->slot[t] * K, vnew + t * K, (size_t)K * sizeof(float));
        }
        if (n_seg == 1) {
            keel_op_attention_fwd(b->att, b->q, kt + seg[0].slot0, kv->ldk, vc + (size_t)seg[0].slot0 * K, seg[0].n,
                                  seg[0].pos, d->n_head, d->n_head_kv, (int)hd, s);
        } else {
            // each sequence sees its own region; many short ones: one parallel
            // region over the sequences (one per thread, with that thread's
            // scratch) instead of a parallel region per sequence
KEEL_OMP(parallel for num_threads(nthr) schedule(dynamic, 1) if(nthr > 1))
            for (int32_t i = 0; i < n_seg; i++) {
                keel_ops_scratch one = *s;
                one.n_threads = 1;
#ifdef _OPENMP
                one.buf = s->buf + (size_t)omp_get_thread_num() * s->per_thread;
#endif
                const int64_t t0 = b->slot[b->max_T + i];
                keel_op_attention_fwd(b->att + t0 * Q, b->q + t0 * Q, kt + seg[i].slot0, kv->ldk,
                                      vc + (size_t)seg[i].slot0 * K, seg[i].n, seg[i].pos, d->n_head, d->n_head_kv,
                                      (int)hd, &one);
            }
        }
        keel_matmul(b->xb, b->att, &L->wo, T, s);          // (T, C)
        if (lora) lora_branch(lora, l * 7 + 3, b->xb, b->att, T, Q, C, b->lora_xa, nthr);

        // feed-forward
KEEL_OMP(parallel for num_threads(nthr) schedule(static) if(par))
        for (int32_t t = 0; t < T; t++) {
            keel_op_add(b->x + t * C, b->xb + t * C, C);
            keel_op_rmsnorm_fwd(b->xb + t * C, b->x + t * C, L->ffn_norm, 1, C, d->norm_eps);
        }
        keel_mm gate_up[2] = {{&L->w_gate, b->hb}, {&L->w_up, b->hb2}}; // (T, F) each
        keel_matmul_multi(b->xb, T, gate_up, 2, s);
        if (lora) {
            lora_branch(lora, l * 7 + 4, b->hb, b->xb, T, C, F, b->lora_xa, nthr);
            lora_branch(lora, l * 7 + 5, b->hb2, b->xb, T, C, F, b->lora_xa, nthr);
        }
KEEL_OMP(parallel for num_threads(nthr) schedule(static) if(par))
        for (int32_t t = 0; t < T; t++) keel_op_swiglu_fwd(b->hb + t * F, b->hb + t * F, b->hb2 + t * F, F);
        keel_matmul(b->xb, b->hb, &L->w_down, T, s);       // (T, C)
        if (lora) lora_branch(lora, l * 7 + 6, b->xb, b->hb, T, F, C, b->lora_xa, nthr);
    }
KEEL_OMP(parallel for num_threads(nthr) schedule(static) if(par))
    for (int32_t t = 0; t < T; t++) keel_op_add(b->x + t * C, b->xb + t * C, C);

    if (!logits || n_rows == 0) return;
    // Only the rows whose logits are wanted go through the final norm and the head.
    if (!rows) {
        keel_op_rmsnorm_fwd(b->xb, b->x + (int64_t)(T - n_rows) * C, m->output_norm, n_rows, C, d->norm_eps);
    } else {
        for (int32_t k = 0; k < n_rows; k++) {
            KEEL_ASSERT(rows[k] >= 0 && rows[k] < T);
            keel_op_rmsnorm_fwd(b->xb + (int64_t)k * C, b->x + (int64_t)rows[k] * C, m->output_norm, 1, C,
                                d->norm_eps);
        }
    }
    keel_matmul(logits, b->xb, &m->output, n_rows, s); // (n_rows, V)
}
