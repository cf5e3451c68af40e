// SPDX-License-Identifier: MIT
// test_smollm2.c — a real quantized model end to end: SmolLM2-135M-Instruct
// Q4_1 (Q8_0 tied embedding) from the cache folder (skipped when absent).
// Its hyper-parameters read right, a ChatML question gets a sensible greedy
// answer, and the decode path (fused quantized dots) agrees with the batched
// path (dequantized panels) on the same tokens. Numeric comparisons against
// transformers / llama.cpp goldens live elsewhere (tests/golden/).
#include "keel.h"
#include "ops/ops.h" // keel_cpu_features: whether the AMX paths can run here
#include "test.h"

#include <math.h>

int main(void) {
    char path[512];
    test_cache_path(path, sizeof path, "SmolLM2-135M-Instruct.Q4_1.gguf");
    FILE *f = fopen(path, "rb");
    if (!f) TEST_SKIP("SmolLM2-135M-Instruct.Q4_1.gguf not in the cache folder");
    fclose(f);

    keel_err err;
    keel_model *m = NULL;
    keel_model_params mp = keel_model_default_params();
    mp.n_threads = 1; // the threaded paths are covered by test_ops; keeps this quick under ASan
    if (keel_model_load(path, &mp, &m, &err) != KEEL_OK) {
        fprintf(stderr, "%s\n", err.msg);
        CHECK("load SmolLM2", 0);
        return test_report();
    }
    const keel_model_desc *d = keel_model_describe(m);
    CHECK("dims", d->n_embd == 576 && d->n_layer == 30 && d->n_head == 9 && d->n_head_kv == 3 && d->n_ff == 1536);
    CHECK("vocab, rope, ctx", d->n_vocab == 49152 && d->n_rot == 64 && d->n_ctx_train == 8192);
    CHECK_CLOSE("rope theta", d->rope_theta, 100000.0, 0);
    CHECK("tied head", d->tied_output);
    CHECK("272 tensors", keel_model_n_tensors(m) == 272);

    const keel_tokenizer *tok = keel_model_tokenizer(m);
    keel_context *c = NULL;
    CHECK("context", keel_context_init(m, 256, &c, &err) == KEEL_OK);
    keel_chat_msg msg = {"user", "What is the capital of France?"};
    char *prompt = NULL, *text = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    const int V = d->n_vocab;
    float *lg = malloc(sizeof(float) * V * 32), *l1 = malloc(sizeof(float) * V);
    if (keel_chat_apply(tok, &msg, 1, true, &prompt, &err) == KEEL_OK &&
        keel_tokenize(tok, prompt, strlen(prompt), true, true, &ids, &n, &err) == KEEL_OK && n > 8 && n < 200) {
        int32_t out[8];
        int no = 0;
        keel_status st = keel_eval(c, ids, (int32_t)n, 0, l1, KEEL_LOGITS_LAST, &err);
        while (st == KEEL_OK && no < 8) {
            int b = 0;
            for (int v = 1; v < V; v++) b = l1[v] > l1[b] ? v : b;
            if (keel_token_is_eog(tok, b)) break;
            out[no] = b;
            st = keel_eval(c, &out[no], 1, (int32_t)n + no, l1, KEEL_LOGITS_LAST, &err);
            no++;
        }
        CHECK("greedy answer", st == KEEL_OK && no > 0);
        if (keel_detokenize(tok, out, (size_t)no, false, &text, &err) == KEEL_OK) {
            printf("answer: %s\n", text);
            CHECK("the answer names Paris", strstr(text, "Paris") != NULL);
        }
        // batched logits of the first 12 prompt tokens == one token at a time
        int nb = n < 12 ? (int)n : 12;
        CHECK("batched eval", keel_eval(c, ids, nb, 0, lg, KEEL_LOGITS_ALL, &err) == KEEL_OK);
        double worst = 0.0, scale = 0.0;
        for (int t = 0; t < nb; t++) {
            keel_eval(c, &ids[t], 1, t, l1, KEEL_LOGITS_LAST, &err);
            for (int v = 0; v < V; v++) {
                worst = fmax(worst, fabs(l1[v] - lg[(size_t)t * V + v]));
                scale = fmax(scale, fabs(l1[v]));
            }
        }
        printf("decode vs batch: max |diff| %.3g (max |logit| %.3g)\n", worst, scale);
        CHECK_CLOSE("decode path == batched path", worst, 0.0, 1e-4 * scale + 1e-4);

        // The AMX precisions (keel_model_params.matmul_precision) against the
        // fp32 batch above: bf16x3 within the 1e-3 relative agreement,
        // bf16 looser; both must really differ from fp32 where AMX exists.
        static const struct {
            keel_matmul_precision p;
            const char *name;
            double tol;
        } precs[] = {{KEEL_MATMUL_BF16X3, "bf16x3", 1e-3}, {KEEL_MATMUL_BF16, "bf16", 0.1}};
        float *lp = malloc(sizeof(float) * V * 32);
        for (size_t pi = 0; pi < sizeof precs / sizeof *precs && lp; pi++) {
            keel_model_params pp = mp;
            pp.matmul_precision = precs[pi].p;
            keel_model *mq = NULL;
            keel_context *cq = NULL;
            double w2 = -1.0;
            if (keel_model_load(path, &pp, &mq, &err) == KEEL_OK && keel_context_init(mq, 64, &cq, &err) == KEEL_OK &&
                keel_eval(cq, ids, nb, 0, lp, KEEL_LOGITS_ALL, &err) == KEEL_OK) {
                w2 = 0.0;
                for (size_t i = 0; i < (size_t)nb * V; i++) w2 = fmax(w2, fabs(lp[i] - lg[i]));
            }
            printf("%s vs fp32 batch: max |diff| / max |logit| = %.3g\n", precs[pi].name, w2 / scale);
            char what[96];
            snprintf(what, sizeof what, "%s logits within %g of fp32 (relative to the largest)", precs[pi].name,
                     precs[pi].tol);
            CHECK(what, w2 >= 0.0 && w2 <= precs[pi].tol * scale);
            if (keel_cpu_features() & KEEL_CPU_AMX_BF16) {
                snprintf(what, sizeof what, "%s really ran (differs from fp32)", precs[pi].name);
                CHECK(what, w2 > 0.0);
            } else if (pi == 0) {
                printf("note: no AMX-BF16 here, the bf16 precisions ran as fp32\n");
            }
            keel_context_free(cq);
            keel_model_free(mq);
        }
        free(lp);
    } else {
        fprintf(stderr, "%s\n", err.msg);
        CHECK("chat prompt", 0);
    }
    free(lg), free(l1);
    keel_free(prompt), keel_free(text), keel_free(ids);
    keel_context_free(c);
    keel_model_free(m);
    return test_report();
}
