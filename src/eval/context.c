// SPDX-License-Identifier: MIT
// context.c — keel_context: one sequence's KV cache plus the activation
// buffers of the forward pass, both allocated once at init; keel_eval checks
// its arguments and runs the model in batches of at most KEEL_EVAL_BATCH
// tokens (so a long prompt needs no more scratch than a short one). An
// adapter set with keel_context_set_adapter (eval/adapter.c) rides along
// into every forward call.
#include "eval/eval.h"

// Tokens per forward call: large enough for sgemm to be efficient, small
// enough that the activations stay modest (SmolLM2: about 9 MB).
#define KEEL_EVAL_BATCH 512

struct keel_context {
    const keel_model *m;
    keel_kv_cache kv;
    keel_fwd_buf buf;
    const keel_adapter *ad; // NULL: the plain model
};

keel_status keel_context_init(const keel_model *m, int32_t n_ctx, keel_context **out, keel_err *err) {
    if (out) *out = NULL;
    if (!m || !out) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_context_init: model and out must not be NULL");
    if (n_ctx < 0) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_context_init: n_ctx %d is negative", (int)n_ctx);
    if (n_ctx == 0) n_ctx = m->desc.n_ctx_train;
    keel_context *c = keel_calloc(1, sizeof *c);
    if (!c) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "keel_context_init: out of memory");
    c->m = m;
    int32_t max_T = n_ctx < KEEL_EVAL_BATCH ? n_ctx : KEEL_EVAL_BATCH;
    keel_status st = keel_kv_cache_init(m, n_ctx, &c->kv, err);
    if (!st) st = keel_fwd_buf_init(m, max_T, n_ctx, &c->buf, err);
    if (st) {
        keel_context_free(c);
        return st;
    }
    *out = c;
    return KEEL_OK;
}

void keel_context_free(keel_context *c) {
    if (!c) return;
    keel_kv_cache_free(&c->kv);
    keel_fwd_buf_free(&c->buf);
    keel_free(c);
}

int32_t keel_context_n_ctx(const keel_context *c) { return c ? c->kv.n_ctx : 0; }

const keel_model *keel_context_model(const keel_context *c) { return c ? c->m : NULL; }

keel_status keel_context_set_adapter(keel_context *c, const keel_adapter *a, keel_err *err) {
    if (!c) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_context_set_adapter: context must not be NULL");
    if (a) {
        if (keel_adapter_model(a) != c->m)
            return KEEL_FAIL(err, KEEL_ERR_INVALID,
                             "keel_context_set_adapter: the adapter was loaded for another model than the context's");
        keel_status st = keel_fwd_buf_lora_reserve(&c->buf, keel_adapter_fwd(a)->r, err);
        if (st) return st;
    }
    c->ad = a;
    return KEEL_OK;
}

keel_status keel_eval(keel_context *c, const int32_t *tokens, int32_t n, int32_t pos, float *logits,
                      keel_logits_mode mode, keel_err *err) {
    if (!c || !tokens) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_eval: context and tokens must not be NULL");
    if (n < 1) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_eval: n = %d tokens (need at least 1)", (int)n);
    if (mode != KEEL_LOGITS_LAST && mode != KEEL_LOGITS_ALL)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_eval: unknown logits mode %d", (int)mode);
    if (pos < 0 || (int64_t)pos + n > c->kv.n_ctx)
        return KEEL_FAIL(err, KEEL_ERR_INVALID,
                         "keel_eval: positions %d..%lld do not fit the context of %d (make a larger context)",
                         (int)pos, (long long)pos + n - 1, (int)c->kv.n_ctx);
    const int32_t V = c->m->desc.n_vocab;
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_eval: token %d at index %d is outside the vocabulary [0, %d)",
                             (int)tokens[i], (int)i, (int)V);
    bool all = mode == KEEL_LOGITS_ALL;
    for (int32_t i = 0; i < n; i += c->buf.max_T) {
        int32_t T = n - i < c->buf.max_T ? n - i : c->buf.max_T;
        bool last = i + T == n;
        float *lg = NULL;
        if (logits && all) lg = logits + (size_t)i * (size_t)V;
        else if (logits && last) lg = logits;
        keel_model_forward(c->m, &c->kv, &c->buf, keel_adapter_fwd(c->ad), tokens + i, T, pos + i, lg, all);
    }
    return KEEL_OK;
}
