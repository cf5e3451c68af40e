// SPDX-License-Identifier: MIT
// adapter_eval.c — greedy decoding on the TRAINING forward (model/train.h),
// so whatever is attached to the training model — a LoRA adapter loaded from
// a PEFT checkpoint (adapters/lora.h), trainable fp32 tensors — is applied
// exactly as the trainer applies it. The inference path (forward.c, KV cache)
// knows no adapters yet; this is what evaluation of a fine-tuned adapter uses
// meanwhile (tests/unit/test_skill_smollm2.c). There is no KV cache: every
// new token re-runs the whole (short) sequence, so it is meant for short
// answers. Rows are decoded in batches; each row is padded after its end
// (attention is causal, so padding never changes a real position's logits).
#include "eval/eval.h"
#include "adapters/lora.h"

#include <stdlib.h>
#include <string.h>

// Rows decoded per forward: bounds the (rows * T, n_vocab) logits buffer.
#define GREEDY_ROWS 8

static int32_t argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (int32_t)best;
}

keel_status keel_train_greedy(const keel_train_model *tm, keel_lora *lo, const int32_t *const *prompts,
                              const int32_t *n_prompt, int32_t n_rows, int32_t max_new, int32_t **out,
                              int32_t *n_out, keel_greedy_keep_fn keep, void *ud, keel_err *err) {
    if (n_rows < 0 || max_new < 1)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "greedy decoding: n_rows %d, max_new %d (need >= 0 and >= 1)",
                         (int)n_rows, (int)max_new);
    if (n_rows == 0) return KEEL_OK;
    const keel_tokenizer *tok = tm->m->tok;
    const int64_t V = tm->m->desc.n_vocab;
    int32_t max_prompt = 1;
    for (int32_t i = 0; i < n_rows; i++) {
        if (n_prompt[i] < 1)
            return KEEL_FAIL(err, KEEL_ERR_INVALID, "greedy decoding: prompt %d is empty", (int)i);
        if (n_prompt[i] > max_prompt) max_prompt = n_prompt[i];
    }
    const int32_t T = max_prompt + max_new;
    const int32_t B = n_rows < GREEDY_ROWS ? n_rows : GREEDY_ROWS;

    keel_train_acts a;
    keel_status st = keel_train_acts_init(&a, tm, B, T, err);
    if (st != KEEL_OK) return st;
    if (lo) {
        st = keel_lora_reserve(lo, (int64_t)B * T, err);
        if (st != KEEL_OK) goto done;
        keel_lora_set_train(lo, false, 0); // no dropout
    }
    int32_t *tokens = calloc((size_t)B * T, sizeof(int32_t));
    int32_t *targets = calloc((size_t)B * T, sizeof(int32_t));
    uint8_t *mask = calloc((size_t)B * T, 1); // all 0: no position counts in the (unused) loss
    int32_t *seq = calloc((size_t)B * T, sizeof(int32_t));
    if (!tokens || !targets || !mask || !seq) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "greedy decoding: out of memory for %d x %d tokens", (int)B, (int)T);
        goto free_bufs;
    }
    for (int32_t r0 = 0; r0 < n_rows; r0 += B) {
        const int32_t nb = n_rows - r0 < B ? n_rows - r0 : B;
        int32_t len[GREEDY_ROWS];
        bool live[GREEDY_ROWS];
        for (int32_t r = 0; r < nb; r++) {
            memcpy(seq + (size_t)r * T, prompts[r0 + r], (size_t)n_prompt[r0 + r] * sizeof(int32_t));
            len[r] = n_prompt[r0 + r];
            live[r] = true;
            n_out[r0 + r] = 0;
        }
        for (int32_t k = 0; k < max_new; k++) {
            int32_t Tb = 2; // the longest live row; finished rows keep their length
            bool any = false;
            for (int32_t r = 0; r < nb; r++) {
                if (len[r] > Tb) Tb = len[r];
                any |= live[r];
            }
            if (!any) break;
            a.T = Tb; // the arena holds any (B, T' <= T) batch densely (see train/loop.c fill_batch)
            memset(tokens, 0, (size_t)B * Tb * sizeof(int32_t));
            for (int32_t r = 0; r < nb; r++)
                memcpy(tokens + (size_t)r * Tb, seq + (size_t)r * T, (size_t)len[r] * sizeof(int32_t));
            st = keel_train_forward(tm, &a, tokens, targets, mask, NULL, err);
            if (st != KEEL_OK) goto free_bufs;
            for (int32_t r = 0; r < nb; r++) {
                if (!live[r]) continue;
                const int32_t id = argmax(a.logits + ((size_t)r * Tb + (size_t)(len[r] - 1)) * (size_t)V, V);
                if (keel_token_is_eog(tok, id)) {
                    live[r] = false;
                    continue;
                }
                out[r0 + r][n_out[r0 + r]++] = id;
                seq[(size_t)r * T + len[r]++] = id;
                if (keep && !keep(r0 + r, out[r0 + r], n_out[r0 + r], ud)) live[r] = false;
            }
        }
    }
free_bufs:
    free(tokens);
    free(targets);
    free(mask);
    free(seq);
done:
    a.T = T;
    keel_train_acts_free(&a);
    return st;
}
