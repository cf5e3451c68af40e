// SPDX-License-Identifier: MIT
// test_cap_run.c — capability scoring on the training forward (src/cap/run.c:
// keel_cap_score_train, keel_cap_loglik; the reference of the fast path) on real weights,
// checked against numbers computed independently on the INFERENCE path
// (keel_eval with every position's logits, KV cache, no batching): per-
// request multiple-choice log-likelihoods (also a request longer than the
// model's context, left-truncated as lm-eval does), acc/acc_norm of a tiny
// handmade set, perplexity windows, greedy exact_match and probe outcomes,
// and bit-identical results for 1 and 2 threads. stories260K always;
// SmolLM2-135M-Instruct (ARC-Easy items) when the cache holds it.
// KEEL_SANITIZE set: fewer SmolLM2 items.
#include "test.h"
#include "test_fs.h"
#include "test_model.h"
#include "cap/cap.h"
#include "model/model.h"
#include "model/train.h"
#include "adapters/lora.h"
#include "keel.h"

#include <unistd.h>

static char tmpdir[] = "/tmp/keel-test-caprun-XXXXXX";

static const char *tmp_file(const char *name, const char *text) { return test_tmp_file(tmpdir, name, text); }

// A suite of one capability from YAML text.
static bool one_spec(const char *yaml, keel_cap_suite *s) {
    keel_err err = {0};
    const char *p = tmp_file("suite.yaml", yaml);
    if (keel_cap_suite_load_file(s, p, &err)) {
        fprintf(stderr, "  suite: %s\n", err.msg);
        return false;
    }
    return true;
}

// Reference: log p(cont | ctx) on the inference path, left-truncated like lm-eval.
static double ref_loglik(keel_context *ctx, const keel_model *m, const keel_cap_request *q, float *lg) {
    const keel_model_desc *d = keel_model_describe(m);
    int32_t V = d->n_vocab, n = q->n_ctx + q->n_cont;
    int32_t *full = malloc((size_t)n * sizeof *full);
    memcpy(full, q->ctx, (size_t)q->n_ctx * sizeof *full);
    memcpy(full + q->n_ctx, q->cont, (size_t)q->n_cont * sizeof *full);
    int32_t skip = n > d->n_ctx_train + 1 ? n - (d->n_ctx_train + 1) : 0;
    int32_t T = n - skip - 1;
    keel_err err = {0};
    double s = NAN;
    if (keel_eval(ctx, full + skip, T, 0, lg, KEEL_LOGITS_ALL, &err) == KEEL_OK) {
        s = 0;
        int32_t n_sc = q->n_cont < T ? q->n_cont : T;
        for (int32_t i = 0; i < n_sc; i++) {
            int32_t pos = T - n_sc + i;
            const float *l = lg + (size_t)pos * V;
            double mx = -INFINITY, z = 0;
            for (int32_t j = 0; j < V; j++) mx = l[j] > mx ? l[j] : mx;
            for (int32_t j = 0; j < V; j++) z += exp(l[j] - mx);
            s += l[full[n - n_sc + i]] - mx - log(z);
        }
    } else fprintf(stderr, "  keel_eval: %s\n", err.msg);
    free(full);
    return s;
}

// Greedy text on the inference path.
static char *ref_greedy(keel_context *ctx, const keel_model *m, const int32_t *prompt, int32_t n, int32_t max_new,
                        float *lg) {
    const keel_tokenizer *tok = keel_model_tokenizer(m);
    int32_t V = keel_model_describe(m)->n_vocab;
    int32_t out[64];
    int32_t no = 0;
    keel_err err = {0};
    if (keel_eval(ctx, prompt, n, 0, lg, KEEL_LOGITS_LAST, &err)) return NULL;
    for (int32_t k = 0; k < max_new; k++) {
        int32_t best = 0;
        for (int32_t j = 1; j < V; j++)
            if (lg[j] > lg[best]) best = j;
        if (keel_token_is_eog(tok, best)) break;
        out[no++] = best;
        if (keel_eval(ctx, &best, 1, n + k, lg, KEEL_LOGITS_LAST, &err)) return NULL;
    }
    char *text = NULL;
    keel_detokenize(tok, out, (size_t)no, false, &text, &err);
    return text;
}

static void test_mc(keel_model *m, keel_train_model *tm, keel_context *ctx, float *lg, const char *tag) {
    char y[1024];
    const char *data = tmp_file("mc.jsonl",
        "{\"question\": \"Once upon a time there was a little girl. She liked to play in the\", \"choices\": [\"park\", \"xq zzv\", \"table of numbers\"], \"answer\": 0}\n"
        "{\"question\": \"The dog said\", \"choices\": [\"woof\", \"meow meow meow\"], \"answer\": 1}\n"
        "{\"question\": \"Lily was happy because\", \"choices\": [\"she had a new toy\", \"the\", \"zzzz\", \"a big red ball\"], \"answer\": 3}\n");
    snprintf(y, sizeof y, "capabilities:\n  - {name: mc, type: multiple_choice, data: \"%s\"}\n", data);
    keel_cap_suite s = {0};
    keel_err err = {0};
    if (!one_spec(y, &s)) {
        CHECK("mc suite", false);
        return;
    }
    keel_cap_data d;
    keel_status st = keel_cap_data_load(&d, &s.v[0], keel_model_tokenizer(m), &err);
    CHECK("mc data", st == KEEL_OK && d.n_items == 3 && d.n_req == 9);
    if (st) {
        fprintf(stderr, "  %s\n", err.msg);
        keel_cap_suite_free(&s);
        return;
    }
    double ll[9], ref[9];
    CHECK("loglik", keel_cap_loglik(tm, NULL, d.req, d.n_req, ll, &err) == KEEL_OK);
    for (int64_t r = 0; r < d.n_req; r++) {
        ref[r] = ref_loglik(ctx, m, &d.req[r], lg);
        char what[96];
        snprintf(what, sizeof what, "%s: request %lld ll = inference path", tag, (long long)r);
        CHECK_CLOSE(what, ll[r], ref[r], 1e-4 * (1 + fabs(ref[r])));
    }
    // expected acc / acc_norm from the independent numbers
    keel_cap_outcome out[3];
    CHECK("mc score", keel_cap_score_train(&d, tm, NULL, NULL, 3, out, &err) == KEEL_OK);
    int n_acc = 0;
    for (int64_t k = 0; k < 3; k++) {
        const keel_cap_item *it = &d.items[k];
        int best = 0, bestn = 0;
        for (int j = 1; j < it->n_req; j++) {
            if (ref[it->req0 + j] > ref[it->req0 + best]) best = j;
            if (ref[it->req0 + j] / d.choice_len[it->req0 + j] > ref[it->req0 + bestn] / d.choice_len[it->req0 + bestn]) bestn = j;
        }
        CHECK("acc = argmax ll", out[k].a == (best == it->gold));
        CHECK("acc_norm = argmax ll/len", out[k].b == (bestn == it->gold));
        CHECK("n = 1", out[k].n == 1);
        n_acc += out[k].a == 1;
    }
    // a subset, in a chosen order, scores the same items the same way
    int64_t pick[2] = {2, 0};
    keel_cap_outcome o2[2];
    CHECK("subset score", keel_cap_score_train(&d, tm, NULL, pick, 2, o2, &err) == KEEL_OK);
    CHECK("subset = full", o2[0].a == out[2].a && o2[0].b == out[2].b && o2[1].a == out[0].a && o2[1].b == out[0].b);
    int64_t badpick = 3;
    CHECK("item out of range", keel_cap_score_train(&d, tm, NULL, &badpick, 1, o2, &err) == KEEL_ERR_INVALID);
    // determinism: 1 and 2 threads give the same bits
    int nt = tm->n_threads;
    double ll1[9], ll2[9];
    tm->n_threads = 1;
    keel_cap_loglik(tm, NULL, d.req, d.n_req, ll1, &err);
    tm->n_threads = 2;
    keel_cap_loglik(tm, NULL, d.req, d.n_req, ll2, &err);
    tm->n_threads = nt;
    CHECK("same bits for 1 and 2 threads", !memcmp(ll1, ll2, sizeof ll1) && !memcmp(ll1, ll, sizeof ll1));
    printf("%s: multiple choice acc %d/3, ll[0] %.6f (inference path %.6f)\n", tag, n_acc, ll[0], ref[0]);
    keel_cap_data_free(&d);
    keel_cap_suite_free(&s);
}

// A request longer than n_ctx_train + 1 tokens is cut from the left. The
// GGUF says 2048; the test pretends 96 so the rows stay short.
static void test_truncation(keel_model *m, keel_train_model *tm, keel_context *ctx, float *lg) {
    const int32_t saved = m->desc.n_ctx_train;
    m->desc.n_ctx_train = 96;
    int32_t nct = keel_model_describe(m)->n_ctx_train;
    int32_t n = nct + 40;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    for (int32_t i = 0; i < n; i++) ids[i] = 3 + (i * 37) % 200;
    keel_cap_request q = {ids, n - 3, ids + n - 3, 3};
    double ll = 0;
    keel_err err = {0};
    CHECK("long request", keel_cap_loglik(tm, NULL, &q, 1, &ll, &err) == KEEL_OK);
    double ref = ref_loglik(ctx, m, &q, lg);
    CHECK_CLOSE("left-truncated ll = inference path", ll, ref, 1e-4 * (1 + fabs(ref)));
    // rows whose input is a prefix of another row's (shared context, one-token
    // continuations, duplicates) are scored from the longer row's forward
    int32_t seven = 7;
    keel_cap_request qs[5] = {{ids, 20, ids + 20, 1}, {ids, 20, &seven, 1}, {ids, 10, ids + 10, 3},
                              {ids, 20, ids + 20, 1}, {ids, 30, ids + 30, 2}};
    double lls[5];
    CHECK("shared prefixes", keel_cap_loglik(tm, NULL, qs, 5, lls, &err) == KEEL_OK);
    for (int i = 0; i < 5; i++) CHECK_CLOSE("prefix-shared ll = inference path", lls[i], ref_loglik(ctx, m, &qs[i], lg), 1e-4 * (1 + fabs(lls[i])));
    CHECK("duplicate requests, same bits", lls[0] == lls[3]);
    keel_cap_request empty = {ids, 0, ids, 1};
    CHECK("no context fails", keel_cap_loglik(tm, NULL, &empty, 1, &ll, &err) == KEEL_ERR_INVALID);
    m->desc.n_ctx_train = saved;
    free(ids);
}

static void test_ppl(keel_model *m, keel_train_model *tm, keel_context *ctx, float *lg) {
    const char *text =
        "Once upon a time, there was a little boy named Tim. Tim had a big red ball. He liked to play with it "
        "every day in the park near his house.\n\nOne day, Tim saw a small cat under a tree. The cat was sad "
        "because it could not find its mom. Tim wanted to help the cat, so he looked everywhere.\n\nAt last they "
        "found the mom cat next to the river. The little cat was very happy, and Tim smiled all the way home.\n";
    const char *data = tmp_file("ppl.txt", text);
    char y[512];
    snprintf(y, sizeof y, "capabilities:\n  - {name: p, type: perplexity, data: \"%s\", window: 24}\n", data);
    keel_cap_suite s = {0};
    keel_err err = {0};
    if (!one_spec(y, &s)) {
        CHECK("ppl suite", false);
        return;
    }
    CHECK("txt -> task text", s.v[0].task == KEEL_CAP_TASK_TEXT);
    keel_cap_data d;
    keel_status st = keel_cap_data_load(&d, &s.v[0], keel_model_tokenizer(m), &err);
    CHECK("ppl data", st == KEEL_OK && d.n_items >= 1);
    if (st) {
        fprintf(stderr, "  %s\n", err.msg);
        keel_cap_suite_free(&s);
        return;
    }
    keel_cap_outcome *out = calloc((size_t)d.n_items, sizeof *out);
    CHECK("ppl score", keel_cap_score_train(&d, tm, NULL, NULL, d.n_items, out, &err) == KEEL_OK);
    const int32_t W = 24;
    int32_t V = keel_model_describe(m)->n_vocab;
    double tot = 0, tot_ref = 0;
    int64_t cnt = 0, cnt_ref = 0;
    for (int64_t k = 0; k < d.n_items; k++) {
        const keel_cap_item *it = &d.items[k];
        double nll = 0;
        int64_t c = 0;
        for (int32_t s0 = 0; s0 < it->n_tokens; s0 += W) {
            int32_t len = it->n_tokens - s0 < W ? it->n_tokens - s0 : W;
            if (len < 2) continue;
            keel_eval(ctx, it->tokens + s0, len - 1, 0, lg, KEEL_LOGITS_ALL, &err);
            for (int32_t i = 0; i < len - 1; i++) {
                const float *l = lg + (size_t)i * V;
                double mx = -INFINITY, z = 0;
                for (int32_t j = 0; j < V; j++) mx = l[j] > mx ? l[j] : mx;
                for (int32_t j = 0; j < V; j++) z += exp(l[j] - mx);
                nll -= l[it->tokens[s0 + i + 1]] - mx - log(z);
                c++;
            }
        }
        CHECK_CLOSE("document NLL = inference path", out[k].a, nll, 1e-4 * (1 + nll));
        CHECK("document token count", out[k].n == c);
        tot += out[k].a, tot_ref += nll, cnt += out[k].n, cnt_ref += c;
    }
    CHECK("tokens scored", cnt > 50);
    printf("stories260K: perplexity %.4f over %lld tokens in %lld documents (inference path %.4f)\n", exp(tot / cnt),
           (long long)cnt, (long long)d.n_items, exp(tot_ref / cnt_ref));
    free(out);
    keel_cap_data_free(&d);
    keel_cap_suite_free(&s);
}

static void test_gen(keel_model *m, keel_train_model *tm, keel_context *ctx, float *lg) {
    const keel_tokenizer *tok = keel_model_tokenizer(m);
    const char *prompts[2] = {"Once upon a time", "The cat sat on the"};
    char *ref[2] = {NULL, NULL};
    keel_err err = {0};
    for (int i = 0; i < 2; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        keel_tokenize(tok, prompts[i], strlen(prompts[i]), true, false, &ids, &n, &err);
        ref[i] = ids ? ref_greedy(ctx, m, ids, (int32_t)n, 8, lg) : NULL;
        keel_free(ids);
    }
    if (!ref[0] || !ref[1] || !strcmp(ref[0], ref[1]) || strchr(ref[0], '"') || strchr(ref[0], '\\')) {
        CHECK("reference generations", false);
        goto done;
    }
    // exact_match: item 0's answer is its own greedy text (spaces normalised), item 1's is wrong
    char jl[1024], y[1024];
    snprintf(jl, sizeof jl, "{\"prompt\": \"%s\", \"answer\": \"%s\"}\n{\"prompt\": \"%s\", \"answer\": \"no such answer\"}\n",
             prompts[0], ref[0], prompts[1]);
    const char *data = tmp_file("em.jsonl", jl);
    snprintf(y, sizeof y, "capabilities:\n  - {name: em, type: exact_match, data: \"%s\", max_new_tokens: 8, "
                          "normalize: [whitespace]}\n", data);
    keel_cap_suite s = {0};
    keel_cap_data d;
    if (one_spec(y, &s) && keel_cap_data_load(&d, &s.v[0], tok, &err) == KEEL_OK) {
        keel_cap_outcome out[2];
        CHECK("em score", keel_cap_score_train(&d, tm, NULL, NULL, 2, out, &err) == KEEL_OK);
        CHECK("em text = inference greedy", out[0].text && !strcmp(out[0].text, ref[0]));
        CHECK("em text 2 = inference greedy", out[1].text && !strcmp(out[1].text, ref[1]));
        CHECK("em pass / fail", out[0].a == 1 && out[1].a == 0);
        printf("stories260K: greedy '%s' -> '%s'\n", prompts[0], out[0].text ? out[0].text : "(null)");
        keel_cap_outcomes_free(out, 2);
        CHECK("texts freed", out[0].text == NULL);
        keel_cap_data_free(&d);
    } else {
        CHECK("em data", false);
        fprintf(stderr, "  %s\n", err.msg);
    }
    keel_cap_suite_free(&s);
    // probe: a pattern only item 0's generation matches; expect no_match flips it
    for (int flip = 0; flip < 2; flip++) {
        snprintf(jl, sizeof jl, "{\"prompt\": \"%s\"}\n{\"prompt\": \"%s\"}\n", prompts[0], prompts[1]);
        data = tmp_file("probe.jsonl", jl);
        char pat[300];
        size_t j = 0;
        pat[j++] = '^';
        for (const char *p = ref[0]; *p && j < 250; p++) { // escape regex metacharacters
            if (strchr(".^$*+?()[]{}|\\/", *p)) pat[j++] = '\\', pat[j++] = '\\';
            pat[j++] = *p;
        }
        pat[j++] = '$';
        pat[j] = 0;
        snprintf(y, sizeof y, "capabilities:\n  - {name: pr, type: probe, data: \"%s\", max_new_tokens: 8, pattern: \"%s\", "
                              "expect: %s}\n", data, pat, flip ? "no_match" : "match");
        keel_cap_suite_free(&s);
        if (one_spec(y, &s) && keel_cap_data_load(&d, &s.v[0], tok, &err) == KEEL_OK) {
            keel_cap_outcome out[2];
            CHECK("probe score", keel_cap_score_train(&d, tm, NULL, NULL, 2, out, &err) == KEEL_OK);
            CHECK("probe pass rate", out[0].a == (flip ? 0 : 1) && out[1].a == (flip ? 1 : 0));
            keel_cap_outcomes_free(out, 2);
            keel_cap_data_free(&d);
        } else {
            CHECK("probe data", false);
            fprintf(stderr, "  %s\n", err.msg);
        }
        keel_cap_suite_free(&s);
    }
done:
    free(ref[0]);
    free(ref[1]);
}

// A LoRA adapter (random B, saved as PEFT): the training-forward scores with
// it attached equal the inference path's with the same directory loaded, and
// keel_suite_eval --adapter gives the acc those numbers imply.
static void test_adapter(keel_model *m, const char *model_path, keel_context *ctx, float *lg) {
    keel_err err = {0};
    keel_train_model tm;
    keel_lora lo;
    memset(&lo, 0, sizeof lo);
    keel_lora_config cfg = keel_lora_default_config();
    cfg.r = 4;
    const char *targets[] = {"q_proj", "v_proj", "down_proj"};
    cfg.targets = targets;
    cfg.n_targets = 3;
    if (keel_train_model_init(&tm, m, test_sel_none, NULL, &err) || keel_lora_attach(&lo, &tm, &cfg, &err)) {
        CHECK("lora attach", false);
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    keel_rng g;
    keel_rng_seed(&g, 7);
    for (int i = 0; i < lo.n; i++) {
        float *B = keel_lora_B(&lo, i);
        for (int64_t j = 0; j < lo.mods[i].n_out * lo.r; j++) B[j] = 0.2f * keel_rng_normal(&g);
    }
    char dir[300];
    snprintf(dir, sizeof dir, "%s/adapter", tmpdir);
    CHECK("lora save", keel_lora_save(&lo, dir, NULL, &err) == KEEL_OK);
    const char *data = tmp_file("mca.jsonl",
        "{\"question\": \"Once upon a time there was a\", \"choices\": [\"little girl\", \"big dog\", \"tree\"], \"answer\": 0}\n"
        "{\"question\": \"Tom and Lily went to the\", \"choices\": [\"park\", \"moon\"], \"answer\": 1}\n");
    char y[600];
    snprintf(y, sizeof y, "capabilities:\n  - {name: mca, type: multiple_choice, data: \"%s\"}\n", data);
    keel_cap_suite s = {0};
    keel_cap_data d;
    keel_adapter *ad = NULL;
    if (one_spec(y, &s) && keel_cap_data_load(&d, &s.v[0], keel_model_tokenizer(m), &err) == KEEL_OK) {
        double ll[5], ref[5], base[5];
        CHECK("adapter loglik", d.n_req == 5 && keel_cap_loglik(&tm, &lo, d.req, 5, ll, &err) == KEEL_OK);
        CHECK("inference adapter", keel_adapter_load(m, dir, &ad, &err) == KEEL_OK &&
                                       keel_context_set_adapter(ctx, ad, &err) == KEEL_OK);
        for (int r = 0; r < 5; r++) {
            ref[r] = ref_loglik(ctx, m, &d.req[r], lg);
            CHECK_CLOSE("ll with adapter = inference path with adapter", ll[r], ref[r], 1e-4 * (1 + fabs(ref[r])));
        }
        keel_context_set_adapter(ctx, NULL, &err);
        for (int r = 0; r < 5; r++) base[r] = ref_loglik(ctx, m, &d.req[r], lg);
        double moved = 0;
        for (int r = 0; r < 5; r++) moved += fabs(base[r] - ref[r]);
        CHECK("the adapter changes the scores", moved > 1e-2);
        // the public API with --adapter: acc implied by the reference numbers
        keel_suite *su = NULL;
        keel_cap_result res;
        keel_eval_opts o = keel_eval_default_opts();
        o.adapter = dir;
        o.n_threads = 1;
        CHECK("suite load", keel_suite_load(tmp_file("suite.yaml", y), &su, &err) == KEEL_OK && keel_suite_count(su) == 1 &&
                                !strcmp(keel_suite_name(su, 0), "mca") && keel_suite_name(su, 1) == NULL);
        CHECK("suite eval with adapter", su && keel_suite_eval(model_path, su, &o, &res, &err) == KEEL_OK);
        int k = 0;
        for (int64_t i = 0; i < d.n_items; i++) {
            const keel_cap_item *it = &d.items[i];
            int best = 0;
            for (int j = 1; j < it->n_req; j++)
                if (ref[it->req0 + j] > ref[it->req0 + best]) best = j;
            k += best == it->gold;
        }
        CHECK_CLOSE("suite acc with adapter", res.value, k / 2.0, 1e-12);
        CHECK("result fields", res.n == 2 && !strcmp(res.metric, "acc") && !strcmp(res.metric2, "acc_norm") &&
                                   !strcmp(res.kind, "multiple_choice") && res.lo <= res.value && res.value <= res.hi);
        char *js = NULL, *tab = NULL;
        CHECK("json", keel_cap_results_json(&res, 1, &js, &err) == KEEL_OK && strstr(js, "\"mca\"") && strstr(js, "\"name\"") &&
                          strstr(js, "\"metric2\""));
        CHECK("table", keel_cap_results_table(&res, 1, &tab, &err) == KEEL_OK && strstr(tab, "mca ") && strstr(tab, "acc_norm"));
        keel_free(js);
        keel_free(tab);
        o.adapter = "/nonexistent/adapter";
        CHECK("missing adapter", su && keel_suite_eval(model_path, su, &o, &res, &err) == KEEL_ERR_IO);
        keel_suite_free(su);
        keel_cap_data_free(&d);
    } else {
        CHECK("adapter data", false);
        fprintf(stderr, "  %s\n", err.msg);
    }
    keel_adapter_free(ad);
    keel_cap_suite_free(&s);
    keel_lora_free(&lo);
    keel_train_model_free(&tm);
    test_rm_rf(dir);
}

// SmolLM2: the first ARC-Easy items, every request's ll against the inference path.
static void test_smollm2(void) {
    char path[512], arc[512];
    if (!test_smollm2_arc(path, arc, sizeof path)) return;
    int lim = getenv("KEEL_SANITIZE") ? 1 : 3;
    keel_model *m = test_load_model(path, 0);
    keel_err err = {0};
    if (!m) {
        CHECK("SmolLM2 loads", false);
        return;
    }
    keel_train_model tm;
    keel_context *ctx = NULL;
    float *lg = malloc((size_t)128 * keel_model_describe(m)->n_vocab * sizeof(float));
    CHECK("smol tm", keel_train_model_init(&tm, m, test_sel_none, NULL, &err) == KEEL_OK);
    CHECK("smol ctx", keel_context_init(m, 256, &ctx, &err) == KEEL_OK);
    char y[700];
    test_arc_yaml(y, sizeof y, arc, lim);
    keel_cap_suite s = {0};
    keel_cap_data d;
    if (ctx && one_spec(y, &s) && keel_cap_data_load(&d, &s.v[0], keel_model_tokenizer(m), &err) == KEEL_OK) {
        int64_t n_req = getenv("KEEL_SANITIZE") ? 2 : d.n_req; // ASan: two requests are enough
        double *ll = calloc((size_t)d.n_req, sizeof *ll);
        CHECK("smol loglik", keel_cap_loglik(&tm, NULL, d.req, n_req, ll, &err) == KEEL_OK);
        double worst = 0;
        for (int64_t r = 0; r < n_req; r++) {
            double ref = ref_loglik(ctx, m, &d.req[r], lg);
            CHECK_CLOSE("SmolLM2 ARC request ll = inference path", ll[r], ref, 1e-3 * (1 + fabs(ref)));
            if (fabs(ll[r] - ref) > worst) worst = fabs(ll[r] - ref);
        }
        printf("SmolLM2: %lld ARC-Easy requests, max |ll - inference ll| = %.2g\n", (long long)n_req, worst);
        free(ll);
        keel_cap_data_free(&d);
    } else {
        CHECK("smol data", false);
        fprintf(stderr, "  %s\n", err.msg);
    }
    keel_cap_suite_free(&s);
    free(lg);
    keel_context_free(ctx);
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
    keel_model *m = test_load_model(path, 1); // tiny model: thread hand-offs cost more than they save
    keel_err err = {0};
    if (!m) {
        CHECK("stories260K loads", false);
        return test_report();
    }
    keel_train_model tm;
    keel_context *ctx = NULL;
    int32_t V = keel_model_describe(m)->n_vocab, nct = keel_model_describe(m)->n_ctx_train;
    float *lg = malloc((size_t)(nct + 1) * V * sizeof(float));
    CHECK("tm", keel_train_model_init(&tm, m, test_sel_none, NULL, &err) == KEEL_OK);
    CHECK("ctx", keel_context_init(m, 0, &ctx, &err) == KEEL_OK);
    if (ctx && lg) {
        test_mc(m, &tm, ctx, lg, "stories260K");
        test_truncation(m, &tm, ctx, lg);
        test_ppl(m, &tm, ctx, lg);
        test_gen(m, &tm, ctx, lg);
        test_adapter(m, path, ctx, lg);
    }
    free(lg);
    keel_context_free(ctx);
    keel_train_model_free(&tm);
    keel_model_free(m);
    test_smollm2();
    test_rm_rf(tmpdir);
    return test_report();
}
