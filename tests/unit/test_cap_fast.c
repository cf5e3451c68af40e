// SPDX-License-Identifier: MIT
// test_cap_fast.c — the fast capability scorer (src/cap/score_ctx.c: the
// inference forward with a KV cache, shared contexts, batched sequences)
// against the training-forward reference (run.c's keel_cap_loglik and
// keel_cap_score_train): per-request log-likelihoods within 1e-3, equal
// acc/acc_norm, perplexity within 1e-4 relative, identical greedy
// generations, a live random LoRA and a modified full-fine-tuning tensor
// applied the same way. stories260K always (handmade sets, shared-prefix
// corner cases, left truncation); SmolLM2-135M-Instruct on the first ARC-Easy
// items when the cache holds it. KEEL_SANITIZE set: one SmolLM2 item, two
// stories260K repetitions left out.
#include "test.h"
#include "test_fs.h"
#include "test_model.h"
#include "adapters/lora.h"
#include "cap/cap.h"
#include "model/model.h"
#include "model/train.h"
#include "keel.h"

#include <unistd.h>

static char tmpdir[] = "/tmp/keel-test-capfast-XXXXXX";

static const char *tmp_file(const char *name, const char *text) { return test_tmp_file(tmpdir, name, text); }

static bool load_one(const char *yaml, const keel_tokenizer *tok, keel_cap_suite *s, keel_cap_data *d) {
    keel_err err = {0};
    memset(s, 0, sizeof *s);
    if (keel_cap_suite_load_file(s, tmp_file("suite.yaml", yaml), &err) ||
        keel_cap_data_load(d, &s->v[0], tok, &err)) {
        fprintf(stderr, "  load: %s\n", err.msg);
        keel_cap_suite_free(s);
        return false;
    }
    return true;
}

// Reference vs fast log-likelihoods of n requests; returns the largest difference.
// ref_out (may be NULL): the reference numbers.
static double cmp_ll(const keel_train_model *tm, keel_lora *lo, const keel_cap_request *q, int64_t n, double tol,
                     const char *tag, double *ref_out) {
    double *a = calloc((size_t)n, sizeof *a), *b = calloc((size_t)n, sizeof *b), worst = 0;
    keel_err err = {0};
    char what[128];
    snprintf(what, sizeof what, "%s: reference loglik", tag);
    CHECK(what, keel_cap_loglik(tm, lo, q, n, a, &err) == KEEL_OK);
    snprintf(what, sizeof what, "%s: fast loglik", tag);
    CHECK(what, keel_cap_loglik_ctx(tm, lo, q, n, b, &err) == KEEL_OK);
    for (int64_t i = 0; i < n; i++) {
        snprintf(what, sizeof what, "%s: request %lld ll fast = reference", tag, (long long)i);
        CHECK_CLOSE(what, b[i], a[i], tol);
        if (fabs(a[i] - b[i]) > worst) worst = fabs(a[i] - b[i]);
    }
    if (ref_out) memcpy(ref_out, a, (size_t)n * sizeof *a);
    free(a);
    free(b);
    return worst;
}

// The fast path with 1 and 2 threads: the same bits (batches depend on the
// data only; the kernels split work by rows).
static void same_bits_threads(keel_train_model *tm, keel_lora *lo, const keel_cap_request *q, int64_t n,
                              const char *tag) {
    double a[8], b[8];
    keel_err err = {0};
    int nt = tm->n_threads;
    tm->n_threads = 1;
    keel_status sa = keel_cap_loglik_ctx(tm, lo, q, n, a, &err);
    tm->n_threads = 2;
    keel_status sb = keel_cap_loglik_ctx(tm, lo, q, n, b, &err);
    tm->n_threads = nt;
    char what[128];
    snprintf(what, sizeof what, "%s: 1 and 2 threads, same bits", tag);
    CHECK(what, n <= 8 && !sa && !sb && !memcmp(a, b, (size_t)n * sizeof *a));
}

// keel_cap_score (fast) vs keel_cap_score_train on every item of d.
static void cmp_score(const keel_cap_data *d, const keel_train_model *tm, keel_lora *lo, const char *tag) {
    keel_cap_outcome *a = calloc((size_t)d->n_items, sizeof *a), *b = calloc((size_t)d->n_items, sizeof *b);
    keel_err err = {0};
    char what[128];
    keel_status sa = keel_cap_score_train(d, tm, lo, NULL, d->n_items, a, &err);
    if (sa) fprintf(stderr, "  %s\n", err.msg);
    keel_status sb = keel_cap_score(d, tm, lo, NULL, d->n_items, b, &err);
    if (sb) fprintf(stderr, "  %s\n", err.msg);
    snprintf(what, sizeof what, "%s: both scorers run", tag);
    CHECK(what, sa == KEEL_OK && sb == KEEL_OK);
    for (int64_t k = 0; !sa && !sb && k < d->n_items; k++) {
        snprintf(what, sizeof what, "%s: item %lld outcome", tag, (long long)k);
        if (d->spec->kind == KEEL_CAP_PERPLEXITY) {
            CHECK_CLOSE(what, b[k].a, a[k].a, 1e-4 * fabs(a[k].a));
            CHECK(what, a[k].n == b[k].n);
        } else {
            CHECK(what, a[k].a == b[k].a && a[k].b == b[k].b && a[k].n == b[k].n);
        }
        if (d->spec->kind == KEEL_CAP_EXACT_MATCH || d->spec->kind == KEEL_CAP_PROBE) {
            snprintf(what, sizeof what, "%s: item %lld generation identical", tag, (long long)k);
            CHECK(what, a[k].text && b[k].text && !strcmp(a[k].text, b[k].text));
        }
    }
    keel_cap_outcomes_free(a, d->n_items);
    keel_cap_outcomes_free(b, d->n_items);
    free(a);
    free(b);
}

static const char *MC =
    "{\"question\": \"Once upon a time there was a little girl. She liked to play in the\", \"choices\": [\"park\", \"xq zzv\", \"table of numbers\"], \"answer\": 0}\n"
    "{\"question\": \"The dog said\", \"choices\": [\"woof\", \"meow meow meow\"], \"answer\": 1}\n"
    "{\"question\": \"Lily was happy because\", \"choices\": [\"she had a new toy\", \"the\", \"zzzz\", \"a big red ball\"], \"answer\": 3}\n"
    "{\"question\": \"Is the sky blue?\", \"choices\": [\"no\", \"yes\"], \"answer\": 1}\n"
    "{\"question\": \"Tom had a cat\", \"choices\": [\"and a dog\", \"and a dog and a bird\", \"and a dog\"], \"answer\": 1}\n";

static void test_mc(const keel_model *m, keel_train_model *tm, keel_lora *lo, const char *tag) {
    char y[1024];
    snprintf(y, sizeof y, "capabilities:\n  - {name: mc, type: multiple_choice, data: \"%s\"}\n", tmp_file("mc.jsonl", MC));
    keel_cap_suite s;
    keel_cap_data d;
    if (!load_one(y, keel_model_tokenizer(m), &s, &d)) {
        CHECK("mc data", false);
        return;
    }
    char t[96];
    snprintf(t, sizeof t, "%s mc", tag);
    double w = cmp_ll(tm, lo, d.req, d.n_req, 1e-3, t, NULL);
    same_bits_threads(tm, lo, d.req, d.n_req < 8 ? d.n_req : 8, t);
    cmp_score(&d, tm, lo, t);
    printf("%s: %lld handmade requests, max |ll fast - ll reference| = %.2g\n", t, (long long)d.n_req, w);
    keel_cap_data_free(&d);
    keel_cap_suite_free(&s);
}

// Requests with different contexts (WinoGrande's shape: the shared part is
// the continuation), one-token continuations, duplicates, a request whose
// input is a prefix of another's, and left truncation (the GGUF says 512;
// the test pretends 40).
static void test_shapes(keel_model *m, keel_train_model *tm) {
    int32_t ids[120];
    for (int i = 0; i < 120; i++) ids[i] = 3 + (i * 37) % 200;
    int32_t other[30];
    for (int i = 0; i < 30; i++) other[i] = i < 12 ? ids[i] : 5 + (i * 11) % 150;
    int32_t seven = 7;
    keel_cap_request q[] = {
        {ids, 20, ids + 20, 1}, {ids, 20, &seven, 1}, {ids, 20, ids + 20, 1},  // one-token, duplicate
        {ids, 10, ids + 10, 3}, {ids, 30, ids + 30, 2},                        // prefixes of each other
        {ids, 25, ids + 60, 5}, {other, 25, ids + 60, 5},                      // contexts differ after 12
        {ids + 1, 5, ids + 6, 1},                                              // alone
    };
    cmp_ll(tm, NULL, q, (int64_t)(sizeof q / sizeof *q), 1e-3, "stories260K shapes", NULL);
    const int32_t saved = m->desc.n_ctx_train;
    m->desc.n_ctx_train = 40;
    keel_cap_request lq[] = {{ids, 70, ids + 70, 4}, {ids, 70, ids + 80, 4}, {ids, 30, ids + 30, 50}};
    cmp_ll(tm, NULL, lq, 3, 1e-3, "stories260K left truncation", NULL);
    m->desc.n_ctx_train = saved;
    keel_cap_request bad = {ids, 0, ids, 1};
    double ll;
    keel_err err = {0};
    CHECK("no context fails", keel_cap_loglik_ctx(tm, NULL, &bad, 1, &ll, &err) == KEEL_ERR_INVALID);
    int32_t oov = 1 << 20;
    keel_cap_request bad2 = {ids, 3, &oov, 1};
    CHECK("token outside the vocabulary fails", keel_cap_loglik_ctx(tm, NULL, &bad2, 1, &ll, &err) == KEEL_ERR_INVALID);
}

static void test_ppl_gen(const keel_model *m, keel_train_model *tm, keel_lora *lo, const char *tag) {
    const char *text =
        "Once upon a time, there was a little boy named Tim. Tim had a big red ball. He liked to play with it "
        "every day in the park near his house.\n\nOne day, Tim saw a small cat under a tree. The cat was sad "
        "because it could not find its mom. Tim wanted to help the cat, so he looked everywhere.\n\nAt last they "
        "found the mom cat next to the river. The little cat was very happy, and Tim smiled all the way home.\n";
    char y[1024], t[96];
    keel_cap_suite s;
    keel_cap_data d;
    snprintf(y, sizeof y, "capabilities:\n  - {name: p, type: perplexity, data: \"%s\", window: 24}\n",
             tmp_file("ppl.txt", text));
    snprintf(t, sizeof t, "%s perplexity", tag);
    if (load_one(y, keel_model_tokenizer(m), &s, &d)) {
        cmp_score(&d, tm, lo, t);
        keel_cap_data_free(&d);
        keel_cap_suite_free(&s);
    } else {
        CHECK("ppl data", false);
    }
    const char *em = "{\"prompt\": \"Once upon a time\", \"answer\": \"x\"}\n"
                     "{\"prompt\": \"The cat sat on the\", \"answer\": \"mat\"}\n"
                     "{\"prompt\": \"Lily and Tom went to the park. They\", \"answer\": \"played\"}\n"
                     "{\"prompt\": \"One day\", \"answer\": \"\"}\n";
    snprintf(y, sizeof y, "capabilities:\n  - {name: em, type: exact_match, data: \"%s\", max_new_tokens: 12}\n",
             tmp_file("em.jsonl", em));
    snprintf(t, sizeof t, "%s exact_match", tag);
    if (load_one(y, keel_model_tokenizer(m), &s, &d)) {
        cmp_score(&d, tm, lo, t);
        keel_cap_data_free(&d);
        keel_cap_suite_free(&s);
    } else {
        CHECK("em data", false);
    }
}

static const char *const all7[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

// A live LoRA (random non-zero B) on a frozen model, then a full fine-tuning
// model with a few tensors moved off the base.
static void test_lora_full(const keel_model *m) {
    keel_err err = {0};
    keel_train_model tm;
    keel_lora lo;
    if (keel_train_model_init(&tm, m, test_sel_none, NULL, &err)) {
        CHECK("lora tm", false);
        return;
    }
    keel_lora_config cfg = keel_lora_default_config();
    cfg.r = 4, cfg.alpha = 8, cfg.targets = all7, cfg.n_targets = 7, cfg.seed = 5;
    if (keel_lora_attach(&lo, &tm, &cfg, &err)) {
        CHECK("lora attach", false);
        keel_train_model_free(&tm);
        return;
    }
    keel_rng rng;
    keel_rng_seed(&rng, 9);
    for (int i = 0; i < lo.n; i++) {
        float *B = keel_lora_B(&lo, i);
        for (int64_t k = 0; k < lo.mods[i].n_out * lo.r; k++) B[k] = 0.05f * keel_rng_normal(&rng);
    }
    test_mc(m, &tm, &lo, "stories260K + LoRA");
    test_ppl_gen(m, &tm, &lo, "stories260K + LoRA");
    // a second change to the live adapter shows up in the next call
    for (int64_t k = 0; k < lo.mods[0].n_out * lo.r; k++) keel_lora_B(&lo, 0)[k] += 0.1f;
    if (!getenv("KEEL_SANITIZE")) test_mc(m, &tm, &lo, "stories260K + LoRA (B changed)");
    keel_lora_free(&lo);
    keel_train_model_free(&tm);

    if (keel_train_model_init(&tm, m, NULL, NULL, &err)) {
        CHECK("full tm", false);
        return;
    }
    keel_rng_seed(&rng, 11);
    const char *moved[] = {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                           "model.layers.1.mlp.down_proj.weight", "model.layers.2.input_layernorm.weight",
                           "model.norm.weight"};
    int n_moved = 0;
    for (size_t i = 0; i < sizeof moved / sizeof *moved; i++) {
        int p = keel_train_params_find(&tm.p, moved[i]);
        if (p < 0) continue;
        float *w = tm.p.w + tm.p.t[p].off;
        for (int64_t k = 0; k < tm.p.t[p].rows * tm.p.t[p].cols; k++) w[k] += 0.05f * keel_rng_normal(&rng);
        n_moved++;
    }
    CHECK("full fine-tuning tensors moved", n_moved == 5);
    test_mc(m, &tm, NULL, "stories260K full fine-tuning");
    if (!getenv("KEEL_SANITIZE")) test_ppl_gen(m, &tm, NULL, "stories260K full fine-tuning");
    keel_train_model_free(&tm);
}

// SmolLM2: the first ARC-Easy items.
static void test_smollm2(void) {
    char path[512], arc[512];
    if (!test_smollm2_arc(path, arc, sizeof path)) return;
    int lim = getenv("KEEL_SANITIZE") ? 1 : 10; // 20 pass as well (max diff 6.7e-5) but take ~2x
    keel_model *m = test_load_model(path, 0);
    keel_err err = {0};
    if (!m) {
        CHECK("SmolLM2 loads", false);
        return;
    }
    keel_train_model tm;
    CHECK("smol tm", keel_train_model_init(&tm, m, test_sel_none, NULL, &err) == KEEL_OK);
    char y[700];
    test_arc_yaml(y, sizeof y, arc, lim);
    keel_cap_suite s;
    keel_cap_data d;
    if (load_one(y, keel_model_tokenizer(m), &s, &d)) {
        double *ref = calloc((size_t)d.n_req, sizeof *ref);
        double w = cmp_ll(&tm, NULL, d.req, d.n_req, 1e-3, "SmolLM2 ARC-Easy", ref);
        same_bits_threads(&tm, NULL, d.req, d.n_req < 8 ? d.n_req : 8, "SmolLM2 ARC-Easy");
        // acc / acc_norm of the fast scorer = those of the reference numbers
        // (run.c's rule; keel_cap_score_train itself is compared on stories260K)
        keel_cap_outcome *out = calloc((size_t)d.n_items, sizeof *out);
        CHECK("SmolLM2 fast score", keel_cap_score(&d, &tm, NULL, NULL, d.n_items, out, &err) == KEEL_OK);
        for (int64_t k = 0; k < d.n_items; k++) {
            const keel_cap_item *it = &d.items[k];
            int best = 0, bestn = 0;
            for (int j = 1; j < it->n_req; j++) {
                if (ref[it->req0 + j] > ref[it->req0 + best]) best = j;
                if (ref[it->req0 + j] / d.choice_len[it->req0 + j] > ref[it->req0 + bestn] / d.choice_len[it->req0 + bestn])
                    bestn = j;
            }
            CHECK("SmolLM2 acc = reference", out[k].a == (best == it->gold));
            CHECK("SmolLM2 acc_norm = reference", out[k].b == (bestn == it->gold));
        }
        free(out);
        free(ref);
        printf("SmolLM2: %d ARC-Easy items, %lld requests, max |ll fast - ll reference| = %.2g\n", lim,
               (long long)d.n_req, w);
        keel_cap_data_free(&d);
        keel_cap_suite_free(&s);
    } else {
        CHECK("smol data", false);
    }
    keel_train_model_free(&tm);
    keel_model_free(m);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        CHECK("mkdtemp", false);
        return test_report();
    }
    char path[512];
    test_shared_path(path, sizeof path, "models/stories260K/stories260K.gguf");
    if (access(path, R_OK)) TEST_SKIP("stories260K.gguf not found");
    keel_model *m = test_load_model(path, 1);
    keel_err err = {0};
    if (!m) {
        CHECK("stories260K loads", false);
        return test_report();
    }
    keel_train_model tm;
    CHECK("tm", keel_train_model_init(&tm, m, test_sel_none, NULL, &err) == KEEL_OK);
    test_mc(m, &tm, NULL, "stories260K");
    test_shapes(m, &tm);
    test_ppl_gen(m, &tm, NULL, "stories260K");
    // two threads: the same outcomes (batches never depend on the thread count)
    tm.n_threads = 2;
    test_mc(m, &tm, NULL, "stories260K 2 threads");
    tm.n_threads = 1;
    keel_train_model_free(&tm);
    test_lora_full(m);
    keel_model_free(m);
    test_smollm2();
    test_rm_rf(tmpdir);
    return test_report();
}
