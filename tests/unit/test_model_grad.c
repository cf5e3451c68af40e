// SPDX-License-Identifier: MIT
// test_model_grad.c — whole-model training forward and backward of the tiny
// Llama (tests/data/tiny-llama-hf: 2 layers, C 64, 4 heads / 2 kv heads, F 160,
// V 320) against PyTorch autograd in float64 (tests/golden/tiny_grads.*, made
// by tools/golden_grads.py; tests/golden/README.md "tiny_grads"): the masked
// mean cross-entropy to 1e-5 relative and every parameter's gradient to a
// relative Frobenius error < 1e-4 (fp32 keel vs an exact reference; measured
// errors are printed). Also: the same weights from the GGUF conversion (NORM
// RoPE, q/k rows permuted) give the same loss and gradients (q/k rows mapped
// back); frozen matrices (dx through the stored weight) leave the trainable
// norms' gradients unchanged; the tied bf16 model (tests/golden/tiny_grads_tied.*)
// matches with its embedding gradient holding both uses, also as the GGUF with
// every matrix frozen in BF16; gradients accumulate; runs are deterministic.
#include "keel.h"
#include "model/train.h"
#include "test.h"
#include "test_fs.h"
#include "test_model.h"
#include "train/train.h"

#include <cjson/cJSON.h>
#include <math.h>


typedef struct gold {
    cJSON *j;
    float *g;
    size_t n_floats;
    int B, T;
    int32_t *tokens, *targets; // (B, T)
    uint8_t *mask;             // (B, T)
    double loss;
} gold;

// base: "tests/golden/tiny_grads" -> .json + .f32
static bool gold_load(gold *G, const char *base) {
    memset(G, 0, sizeof *G);
    char p[256];
    snprintf(p, sizeof p, "%s.json", base);
    char *js = test_read_file(p, NULL);
    size_t nb = 0;
    snprintf(p, sizeof p, "%s.f32", base);
    char *bin = test_read_file(p, &nb);
    if (!js || !bin) {
        free(js);
        free(bin);
        return false;
    }
    G->j = cJSON_Parse(js);
    free(js);
    G->g = (float *)bin; // malloc'ed: aligned for float
    G->n_floats = nb / 4;
    if (!G->j) return false;
    G->B = cJSON_GetObjectItem(G->j, "B")->valueint;
    G->T = cJSON_GetObjectItem(G->j, "T")->valueint;
    G->loss = cJSON_GetObjectItem(G->j, "loss")->valuedouble;
    int N = G->B * G->T;
    G->tokens = calloc((size_t)N, sizeof(int32_t));
    G->targets = calloc((size_t)N, sizeof(int32_t));
    G->mask = calloc((size_t)N, 1);
    cJSON *ids = cJSON_GetObjectItem(G->j, "ids"), *mk = cJSON_GetObjectItem(G->j, "mask");
    for (int b = 0; b < G->B; b++)
        for (int t = 0; t < G->T; t++) {
            G->tokens[b * G->T + t] = cJSON_GetArrayItem(cJSON_GetArrayItem(ids, b), t)->valueint;
            if (t + 1 < G->T) {
                G->targets[b * G->T + t] = cJSON_GetArrayItem(cJSON_GetArrayItem(ids, b), t + 1)->valueint;
                G->mask[b * G->T + t] = (uint8_t)cJSON_GetArrayItem(cJSON_GetArrayItem(mk, b), t)->valueint;
            } // the last position has no target: mask 0
        }
    return cJSON_GetObjectItem(G->j, "n_floats")->valuedouble == (double)G->n_floats;
}

static void gold_free(gold *G) {
    cJSON_Delete(G->j);
    free(G->g);
    free(G->tokens);
    free(G->targets);
    free(G->mask);
}

// The golden gradient of name (n floats), or NULL.
static const float *gold_find(const gold *G, const char *name, size_t *n) {
    cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(G->j, "tensors")) {
        if (strcmp(cJSON_GetObjectItem(t, "name")->valuestring, name)) continue;
        size_t cnt = 1;
        cJSON *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItem(t, "shape")) cnt *= (size_t)d->valueint;
        size_t off = (size_t)cJSON_GetObjectItem(t, "offset")->valuedouble;
        if (off + cnt > G->n_floats) return NULL;
        *n = cnt;
        return G->g + off;
    }
    return NULL;
}

// Relative Frobenius error ||a - b|| / ||b|| and the max |a - b|.
static double rel_frob(const float *a, const float *b, size_t n, double *max_abs) {
    double num = 0, den = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
        if (fabs(d) > mx) mx = fabs(d);
    }
    *max_abs = mx;
    return sqrt(num / (den > 0 ? den : 1e-300));
}

static int n_threads = 2;

// One step on m with the golden batch; fills tm (caller frees) and returns the loss.
static float step(keel_model *m, const gold *G, keel_train_model *tm, keel_train_select_fn sel, void *ud) {
    keel_err err;
    keel_train_acts a;
    if (keel_train_model_init(tm, m, sel, ud, &err) || keel_train_acts_init(&a, tm, G->B, G->T, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return NAN;
    }
    float loss = NAN;
    if (keel_train_forward(tm, &a, G->tokens, G->targets, G->mask, &loss, &err)) fprintf(stderr, "%s\n", err.msg);
    keel_train_backward(tm, &a);
    keel_train_acts_free(&a);
    return loss;
}

static double worst_rel, worst_abs;

static void test_hf(const gold *G, keel_train_model *full) {
    keel_model *m = test_load_model("tests/data/tiny-llama-hf", n_threads);
    CHECK("load tiny-llama-hf", m != NULL);
    if (!m) return;
    float loss = step(m, G, full, NULL, NULL);
    printf("loss keel %.9f torch(f64) %.9f rel %.2e\n", loss, G->loss, fabs(loss - G->loss) / G->loss);
    CHECK_CLOSE("loss vs torch (1e-5 rel)", loss, G->loss, 1e-5 * G->loss);
    CHECK("21 trainable tensors", full->p.n == 21);
    int n_gold = cJSON_GetArraySize(cJSON_GetObjectItem(G->j, "tensors"));
    CHECK("as many tensors as the golden file", full->p.n == n_gold);
    for (int i = 0; i < full->p.n; i++) {
        const keel_tparam *p = &full->p.t[i];
        size_t n = 0;
        const float *ref = gold_find(G, p->name, &n);
        CHECK(p->name, ref && n == (size_t)(p->rows * p->cols));
        if (!ref || n != (size_t)(p->rows * p->cols)) continue;
        double mabs, rel = rel_frob(full->p.g + p->off, ref, n, &mabs);
        if (rel > worst_rel) worst_rel = rel;
        if (mabs > worst_abs) worst_abs = mabs;
        if (!(rel < 1e-4)) fprintf(stderr, "  %s: rel %.3e max abs %.3e\n", p->name, rel, mabs);
        CHECK("gradient rel Frobenius < 1e-4", rel < 1e-4);
    }
    printf("vs torch: worst rel Frobenius %.3e, worst max abs %.3e over %d tensors\n", worst_rel, worst_abs,
           full->p.n);

    // Same step again: bit-identical (fixed thread count, static schedules).
    keel_train_model tm2;
    float loss2 = step(m, G, &tm2, NULL, NULL);
    CHECK("deterministic loss", loss2 == loss);
    CHECK("deterministic gradients", tm2.p.n_floats == full->p.n_floats &&
                                         !memcmp(tm2.p.g, full->p.g, full->p.n_floats * sizeof(float)));
    // Accumulation: a second backward on a fresh forward adds the same again.
    keel_err err;
    keel_train_acts a;
    CHECK("acts", keel_train_acts_init(&a, &tm2, G->B, G->T, &err) == KEEL_OK);
    float l3 = 0;
    CHECK("forward ok", keel_train_forward(&tm2, &a, G->tokens, G->targets, G->mask, &l3, &err) == KEEL_OK && l3 == loss);
    keel_train_backward(&tm2, &a);
    bool twice = true;
    for (size_t i = 0; i < tm2.p.n_floats; i++)
        if (fabsf(tm2.p.g[i] - 2.0f * full->p.g[i]) > 1e-6f * (1.0f + fabsf(full->p.g[i]))) twice = false;
    CHECK("gradients accumulate (+=)", twice);
    keel_train_zero_grad(&tm2);
    bool zero = true;
    for (size_t i = 0; i < tm2.p.n_floats; i++) zero &= tm2.p.g[i] == 0.0f;
    CHECK("zero_grad", zero);
    CHECK("offsets 64-byte aligned", tm2.p.t[1].off % 16 == 0 && tm2.p.t[20].off % 16 == 0);
    CHECK("find", keel_train_params_find(&tm2.p, "lm_head.weight") == 20 &&
                      keel_train_params_find(&tm2.p, "nope") == -1);
    // Bad ids fail with a message naming the position; a masked target is not looked at.
    int N = G->B * G->T;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)N), *tg = malloc(sizeof(int32_t) * (size_t)N);
    memcpy(tok, G->tokens, sizeof(int32_t) * (size_t)N);
    memcpy(tg, G->targets, sizeof(int32_t) * (size_t)N);
    tg[0] = -1; // row 0 position 0 is masked in the golden batch
    CHECK("masked bad target ignored", G->mask[0] == 0 &&
                                           keel_train_forward(&tm2, &a, tok, tg, G->mask, &l3, &err) == KEEL_OK &&
                                           l3 == loss);
    tok[G->T + 5] = 320;
    CHECK("bad token id", keel_train_forward(&tm2, &a, tok, tg, G->mask, &l3, &err) == KEEL_ERR_INVALID &&
                              strstr(err.msg, "token id 320 at row 1, position 5"));
    tok[G->T + 5] = 1;
    CHECK("bad target without mask", keel_train_forward(&tm2, &a, tok, tg, NULL, &l3, &err) == KEEL_ERR_INVALID &&
                                         strstr(err.msg, "target id -1 at row 0, position 0"));
    free(tok), free(tg);
    keel_train_acts_free(&a);
    keel_train_model_free(&tm2);

    // Every allocation of the setup failing in turn: a clean NOMEM, nothing leaked (ASan).
    int fails = 0, oks = 0;
    for (long k = 1; k <= 12; k++) {
        keel_train_model t3;
        keel_train_acts a3;
        keel_mem_fail_after(k);
        keel_status st = keel_train_model_init(&t3, m, NULL, NULL, &err);
        if (!st) {
            st = keel_train_acts_init(&a3, &t3, 2, 8, &err);
            if (!st) keel_train_acts_free(&a3);
            keel_train_model_free(&t3);
        }
        keel_mem_fail_after(0);
        if (st == KEEL_ERR_NOMEM) fails++;
        else if (st == KEEL_OK) oks++;
    }
    CHECK("allocation failures are clean NOMEMs", fails >= 6 && fails + oks == 12);
    CHECK("huge batch refused", keel_train_acts_init(&a, full, 1, 1 << 22, &err) == KEEL_ERR_NOMEM);
    keel_model_free(m);
}

// Only the norm vectors train; every matrix is frozen (dx through the stored weight).
static bool norms_only(const char *name, void *ud) {
    (void)ud;
    return strstr(name, "norm") != NULL;
}

static void test_frozen(const gold *G, const keel_train_model *full) {
    keel_model *m = test_load_model("tests/data/tiny-llama-hf", n_threads);
    if (!m) return;
    keel_train_model tm;
    float loss = step(m, G, &tm, norms_only, NULL);
    CHECK("frozen: 5 norm tensors train", tm.p.n == 5);
    CHECK_CLOSE("frozen: same loss", loss, G->loss, 1e-5 * G->loss);
    for (int i = 0; i < tm.p.n; i++) {
        int j = keel_train_params_find(&full->p, tm.p.t[i].name);
        CHECK("frozen: name in full set", j >= 0);
        if (j < 0) continue;
        double mabs, rel = rel_frob(tm.p.g + tm.p.t[i].off, full->p.g + full->p.t[j].off,
                                    (size_t)tm.p.t[i].cols, &mabs);
        if (!(rel < 1e-5)) fprintf(stderr, "  frozen %s: rel %.3e\n", tm.p.t[i].name, rel);
        CHECK("frozen: norm gradient == full fine-tuning's", rel < 1e-5);
    }
    keel_train_model_free(&tm);
    keel_model_free(m);
}

// The GGUF conversion of the same weights: NORM RoPE with q/k rows permuted
// (Meta order), so the loss and every gradient (q/k rows mapped back) equal the HF run's.
static void test_gguf(const gold *G) {
    keel_model *m = test_load_model("tests/data/tiny-llama.gguf", n_threads);
    CHECK("load tiny-llama.gguf", m != NULL);
    if (!m) return;
    keel_train_model tm;
    float loss = step(m, G, &tm, NULL, NULL);
    CHECK_CLOSE("gguf (NORM rope): loss vs torch", loss, G->loss, 1e-5 * G->loss);
    int checked = 0;
    double worst = 0;
    const int hd = m->head_dim;
    for (int i = 0; i < tm.p.n; i++) {
        const keel_tparam *p = &tm.p.t[i];
        size_t n = 0;
        const float *ref = gold_find(G, p->name, &n);
        if (!ref || n != (size_t)(p->rows * p->cols)) {
            CHECK(p->name, 0);
            continue;
        }
        // q/k rows in GGUF (Meta) order: row h*hd + 2i + j holds HF row h*hd + j*hd/2 + i.
        float *perm = NULL;
        if (strstr(p->name, "q_proj") || strstr(p->name, "k_proj")) {
            perm = malloc(n * sizeof(float));
            for (int64_t r = 0; r < p->rows; r++) {
                int64_t h = r / hd, i2 = (r % hd) / 2, j = r % 2;
                memcpy(perm + (h * hd + j * (hd / 2) + i2) * p->cols, tm.p.g + p->off + r * p->cols,
                       (size_t)p->cols * sizeof(float));
            }
        }
        double mabs, rel = rel_frob(perm ? perm : tm.p.g + p->off, ref, n, &mabs);
        free(perm);
        worst = rel > worst ? rel : worst;
        CHECK("gguf: gradient rel Frobenius < 1e-4", rel < 1e-4);
        checked++;
    }
    printf("gguf: %d tensors, worst rel Frobenius %.3e\n", checked, worst);
    CHECK("gguf: 21 tensors compared", checked == 21);
    keel_train_model_free(&tm);
    keel_model_free(m);
}

// The layout plugs into the optimizer (src/train): AdamW over p.w/p.g, norms
// without decay, on the fixed batch; the loss must fall every step.
static void test_adamw_steps(const gold *G) {
    keel_model *m = test_load_model("tests/data/tiny-llama-hf", n_threads);
    if (!m) return;
    keel_err err;
    keel_train_model tm;
    keel_train_acts a;
    keel_adamw opt;
    keel_adamw_params ap = keel_adamw_default_params();
    bool ok = keel_train_model_init(&tm, m, NULL, NULL, &err) == KEEL_OK &&
              keel_train_acts_init(&a, &tm, G->B, G->T, &err) == KEEL_OK &&
              keel_adamw_init(&opt, tm.p.n_floats, &ap, &err) == KEEL_OK;
    CHECK("adamw: setup", ok);
    if (!ok) return;
    for (int i = 0; i < tm.p.n; i++)
        if (tm.p.t[i].rows == 1) keel_adamw_no_decay(&opt, tm.p.t[i].off, tm.p.t[i].off + (size_t)tm.p.t[i].cols, &err);
    float prev = INFINITY, first = 0, loss = 0;
    bool falls = true;
    for (int step = 0; step < 5; step++) {
        keel_train_zero_grad(&tm);
        CHECK("adamw: forward", keel_train_forward(&tm, &a, G->tokens, G->targets, G->mask, &loss, &err) == KEEL_OK);
        keel_train_backward(&tm, &a);
        keel_grad_clip(tm.p.g, tm.p.n_floats, 1.0);
        CHECK("adamw: step", keel_adamw_step(&opt, tm.p.w, tm.p.g, 1e-2, &err) == KEEL_OK);
        if (step == 0) first = loss;
        falls &= loss < prev;
        prev = loss;
    }
    printf("adamw lr 1e-2, 5 steps on one batch: loss %.4f -> %.4f\n", first, loss);
    CHECK("adamw: loss falls every step", falls && loss < 0.8f * first);
    keel_adamw_free(&opt);
    keel_train_acts_free(&a);
    keel_train_model_free(&tm);
    keel_model_free(m);
}

// Compare every trainable tensor of tm that the golden file has; returns how many.
static int compare_all(const gold *G, const keel_train_model *tm, const char *what, double tol) {
    int checked = 0;
    double worst = 0, wabs = 0;
    for (int i = 0; i < tm->p.n; i++) {
        const keel_tparam *p = &tm->p.t[i];
        size_t n = 0;
        const float *ref = gold_find(G, p->name, &n);
        if (!ref || n != (size_t)(p->rows * p->cols)) {
            CHECK(p->name, 0);
            continue;
        }
        double mabs, rel = rel_frob(tm->p.g + p->off, ref, n, &mabs);
        if (!(rel < tol)) fprintf(stderr, "  %s %s: rel %.3e max abs %.3e\n", what, p->name, rel, mabs);
        CHECK(what, rel < tol);
        worst = rel > worst ? rel : worst;
        wabs = mabs > wabs ? mabs : wabs;
        checked++;
    }
    printf("%s: %d tensors, worst rel Frobenius %.3e, max abs %.3e\n", what, checked, worst, wabs);
    return checked;
}

// Tied head, bf16 weights (exact in fp32): the embedding gradient holds both
// the lookup's scatter-add and the head's dW. Then the GGUF conversion with
// every matrix frozen in BF16 (the QLoRA shape: dx through the stored type,
// NORM RoPE): the norms' gradients still match.
static void test_tied(void) {
    gold G;
    if (!gold_load(&G, "tests/golden/tiny_grads_tied")) {
        CHECK("read tests/golden/tiny_grads_tied.{json,f32}", 0);
        gold_free(&G);
        return;
    }
    keel_model *m = test_load_model("tests/data/tiny-llama-hf-bf16", n_threads);
    CHECK("load tiny-llama-hf-bf16", m != NULL);
    if (m) {
        keel_train_model tm;
        float loss = step(m, &G, &tm, NULL, NULL);
        CHECK("tied: flagged", tm.tied && tm.output.dw == tm.tok_embd.dw);
        printf("tied: loss keel %.9f torch(f64) %.9f\n", loss, G.loss);
        CHECK_CLOSE("tied: loss vs torch", loss, G.loss, 1e-5 * G.loss);
        CHECK("tied: 20 tensors (no lm_head)", tm.p.n == 20 && keel_train_params_find(&tm.p, "lm_head.weight") < 0);
        CHECK("tied: all compared", compare_all(&G, &tm, "tied bf16 vs torch", 1e-4) == 20);
        keel_train_model_free(&tm);
        keel_model_free(m);
    }
    m = test_load_model("tests/data/tiny-llama-bf16.gguf", n_threads);
    CHECK("load tiny-llama-bf16.gguf", m != NULL);
    if (m) {
        keel_train_model tm;
        float loss = step(m, &G, &tm, norms_only, NULL);
        CHECK_CLOSE("frozen BF16 gguf: loss vs torch", loss, G.loss, 1e-5 * G.loss);
        CHECK("frozen BF16 gguf: matrices stay in the file", tm.layers[0].wq.w == NULL &&
                                                                 tm.layers[0].wq.base.type == KEEL_DTYPE_BF16);
        CHECK("frozen BF16 gguf: 5 norms compared", compare_all(&G, &tm, "frozen BF16 gguf norms vs torch", 1e-4) == 5);
        keel_train_model_free(&tm);
        keel_model_free(m);
    }
    gold_free(&G);
}

int main(void) {
    gold G;
    if (!gold_load(&G, "tests/golden/tiny_grads")) {
        CHECK("read tests/golden/tiny_grads.{json,f32}", 0);
        gold_free(&G);
        return test_report();
    }
    keel_train_model full;
    memset(&full, 0, sizeof full);
    test_hf(&G, &full);
    if (full.p.n) test_frozen(&G, &full);
    test_gguf(&G);
    test_adamw_steps(&G);
    // One thread and three: the same gradients (row splits only; sums keep their order).
    for (n_threads = 1; n_threads <= 3; n_threads += 2) {
        keel_model *m = test_load_model("tests/data/tiny-llama-hf", n_threads);
        keel_train_model t1;
        if (!m) break;
        step(m, &G, &t1, NULL, NULL);
        double mabs, rel = rel_frob(t1.p.g, full.p.g, full.p.n_floats, &mabs);
        printf("%d thread(s) vs 2: rel %.3e, max abs %.3e, bit-identical %s\n", n_threads, rel, mabs,
               !memcmp(t1.p.g, full.p.g, full.p.n_floats * sizeof(float)) ? "yes" : "no");
        CHECK("thread count: same gradients (1e-6)", t1.p.n_floats == full.p.n_floats && rel < 1e-6);
        keel_train_model_free(&t1);
        keel_model_free(m);
    }
    n_threads = 2;
    keel_train_model_free(&full);
    gold_free(&G);
    test_tied();
    return test_report();
}
