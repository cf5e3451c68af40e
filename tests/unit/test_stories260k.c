// SPDX-License-Identifier: MIT
// test_stories260k.c — end to end on real trained weights: Karpathy's
// stories260K (shared/models/stories260K/stories260K.gguf, README section 1).
// Reproduces expected_vectors.json: the 256-token greedy story from BOS (ids
// exactly, text exactly), the first logits (1e-4), two greedy prompt
// continuations, and the teacher-forced NLL of two sentences. Also checks that
// batched evaluation, split batches and token-by-token KV-cache decoding give
// the same logits, and keel_perplexity against the method computed by hand.
#include "keel.h"
#include "test.h"

#include <cjson/cJSON.h>

static keel_model *model;
static keel_context *ctx;
static int V;

static cJSON *load_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return cJSON_Parse(buf);
}

static int ids_of(const cJSON *arr, int32_t *out, int cap) {
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) if (n < cap) out[n++] = (int32_t)e->valueint;
    return n;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

// Greedy: eval the prompt as one batch, then n_new tokens one by one.
static void greedy(const int32_t *prompt, int n_prompt, int n_new, int32_t *out) {
    float *lg = malloc(sizeof(float) * V);
    keel_err err;
    keel_status st = keel_eval(ctx, prompt, n_prompt, 0, lg, KEEL_LOGITS_LAST, &err);
    CHECK("prompt eval", st == KEEL_OK);
    for (int i = 0; i < n_new && st == KEEL_OK; i++) {
        out[i] = argmax(lg, V);
        st = keel_eval(ctx, &out[i], 1, n_prompt + i, lg, KEEL_LOGITS_LAST, &err);
    }
    free(lg);
}

static void test_describe(void) {
    const keel_model_desc *d = keel_model_describe(model);
    CHECK("arch llama", strcmp(d->arch, "llama") == 0);
    CHECK("format GGUF v3", strcmp(d->format, "GGUF v3") == 0);
    CHECK("dims", d->n_embd == 64 && d->n_layer == 5 && d->n_head == 8 && d->n_head_kv == 4 && d->n_ff == 172);
    CHECK("vocab 512, rope 8, ctx 2048", d->n_vocab == 512 && d->n_rot == 8 && d->n_ctx_train == 2048);
    CHECK_CLOSE("eps", d->norm_eps, 1e-5, 1e-9);
    CHECK_CLOSE("theta", d->rope_theta, 10000.0, 0);
    CHECK("separate output.weight", !d->tied_output);
    CHECK("48 tensors", keel_model_n_tensors(model) == 48);
    // 260,032 parameters + the duplicated 64x512 output matrix
    CHECK("parameter count", d->n_params == 260032 + 64 * 512);
    keel_tensor_desc t;
    CHECK("tensor 0", keel_model_tensor(model, 0, &t) && t.name && t.n_dims >= 1);
    CHECK("tensor out of range", !keel_model_tensor(model, 48, &t) && !keel_model_tensor(model, -1, &t));
}

static void test_empty_prompt(const cJSON *g) {
    int32_t want[256], got[256] = {0};
    int n = ids_of(cJSON_GetObjectItem(g, "generated_ids"), want, 256);
    CHECK("256 expected ids", n == 256);
    int32_t bos = 1;
    float *lg = malloc(sizeof(float) * V);
    keel_err err;
    CHECK("eval BOS", keel_eval(ctx, &bos, 1, 0, lg, KEEL_LOGITS_LAST, &err) == KEEL_OK);
    const cJSON *first8 = cJSON_GetObjectItem(g, "logits_pos0_first8");
    for (int i = 0; i < 8; i++) CHECK_CLOSE("logits at pos 0", lg[i], cJSON_GetArrayItem(first8, i)->valuedouble, 1e-4);
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(g, "first_step_top5")) {
        int id = cJSON_GetArrayItem(e, 0)->valueint;
        CHECK_CLOSE("top-5 logit at pos 0", lg[id], cJSON_GetArrayItem(e, 2)->valuedouble, 1e-4);
    }
    free(lg);
    greedy(&bos, 1, 256, got);
    int first_bad = -1;
    for (int i = 0; i < 256 && first_bad < 0; i++)
        if (got[i] != want[i]) first_bad = i;
    if (first_bad >= 0) fprintf(stderr, "greedy story differs first at step %d: %d vs %d\n", first_bad, got[first_bad], want[first_bad]);
    CHECK("greedy story from BOS: 256 ids exactly", first_bad < 0);
    char *text = NULL;
    const keel_tokenizer *tok = keel_model_tokenizer(model);
    if (keel_detokenize(tok, got, 256, false, &text, &err) == KEEL_OK) {
        const char *want_text = cJSON_GetObjectItem(g, "text")->valuestring;
        CHECK("greedy story text exactly", strcmp(text, want_text) == 0);
        if (strcmp(text, want_text)) fprintf(stderr, "got:  %s\nwant: %s\n", text, want_text);
    } else {
        CHECK("detokenize", 0);
    }
    keel_free(text);
}

static void test_prompt(const cJSON *g) {
    const char *prompt = cJSON_GetObjectItem(g, "prompt")->valuestring;
    int32_t pids[64], want[32], got[32] = {0};
    int np = ids_of(cJSON_GetObjectItem(g, "prompt_ids"), pids, 64);
    int nw = ids_of(cJSON_GetObjectItem(g, "generated_ids"), want, 32);
    int32_t *ids = NULL;
    size_t n = 0;
    keel_err err;
    char what[128];
    if (keel_tokenize(keel_model_tokenizer(model), prompt, strlen(prompt), true, false, &ids, &n, &err) == KEEL_OK) {
        snprintf(what, sizeof what, "tokenize \"%s\" with BOS", prompt);
        CHECK(what, n == (size_t)np && memcmp(ids, pids, sizeof(int32_t) * n) == 0);
    } else {
        CHECK("tokenize", 0);
    }
    keel_free(ids);
    greedy(pids, np, nw, got);
    snprintf(what, sizeof what, "greedy continuation of \"%s\": %d ids", prompt, nw);
    CHECK(what, nw == 32 && memcmp(got, want, sizeof want) == 0);
    char *text = NULL;
    if (keel_detokenize(keel_model_tokenizer(model), got, 32, false, &text, &err) == KEEL_OK) {
        // the continuation text keeps its leading space: compare after the first byte
        const char *wt = cJSON_GetObjectItem(g, "text_continuation")->valuestring;
        snprintf(what, sizeof what, "continuation text of \"%s\"", prompt);
        CHECK(what, strcmp(text, wt) == 0 || (wt[0] == ' ' && strcmp(text, wt + 1) == 0));
    }
    keel_free(text);
}

// Sum of -log softmax(logits[t])[ids[t+1]] over t, in double.
static double nll_sum(const float *lg, const int32_t *ids, int n) {
    double s = 0.0;
    for (int t = 0; t + 1 < n; t++) {
        const float *l = lg + (size_t)t * V;
        double mx = l[0], z = 0.0;
        for (int v = 1; v < V; v++) mx = l[v] > mx ? l[v] : mx;
        for (int v = 0; v < V; v++) z += exp(l[v] - mx);
        s += mx + log(z) - l[ids[t + 1]];
    }
    return s;
}

static void test_nll(const cJSON *arr) {
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        int32_t ids[64];
        int n = ids_of(cJSON_GetObjectItem(e, "ids_with_bos"), ids, 64);
        double want = cJSON_GetObjectItem(e, "nll_sum")->valuedouble;
        float *lg = malloc(sizeof(float) * V * n), *lg1 = malloc(sizeof(float) * V * n);
        keel_err err;
        CHECK("eval all logits", keel_eval(ctx, ids, n, 0, lg, KEEL_LOGITS_ALL, &err) == KEEL_OK);
        double got = nll_sum(lg, ids, n);
        char what[96];
        snprintf(what, sizeof what, "teacher-forced NLL sum, %d tokens", n);
        CHECK_CLOSE(what, got, want, 2e-4 * want + 1e-4);

        // the same logits token by token through the KV cache
        for (int t = 0; t < n; t++) keel_eval(ctx, &ids[t], 1, t, lg1 + (size_t)t * V, KEEL_LOGITS_LAST, &err);
        double worst = 0.0;
        for (size_t i = 0; i < (size_t)V * n; i++) worst = fmax(worst, fabs(lg[i] - lg1[i]));
        CHECK_CLOSE("KV-cache decoding == one batch", worst, 0.0, 1e-4);
        // and in two batches, the second attending to the first through the cache
        int a = n / 3;
        keel_eval(ctx, ids, a, 0, lg1, KEEL_LOGITS_ALL, &err);
        keel_eval(ctx, ids + a, n - a, a, lg1 + (size_t)a * V, KEEL_LOGITS_ALL, &err);
        worst = 0.0;
        for (size_t i = 0; i < (size_t)V * n; i++) worst = fmax(worst, fabs(lg[i] - lg1[i]));
        CHECK_CLOSE("two batches == one batch", worst, 0.0, 1e-4);
        free(lg), free(lg1);
    }
}

static void test_eval_errors(void) {
    keel_err err;
    int32_t bad = 512, ok = 1;
    float lg[512];
    CHECK("token out of vocab", keel_eval(ctx, &bad, 1, 0, lg, KEEL_LOGITS_LAST, &err) == KEEL_ERR_INVALID);
    CHECK("message names the token", strstr(err.msg, "512") != NULL);
    CHECK("negative position", keel_eval(ctx, &ok, 1, -1, lg, KEEL_LOGITS_LAST, &err) == KEEL_ERR_INVALID);
    CHECK("past the context", keel_eval(ctx, &ok, 1, keel_context_n_ctx(ctx), lg, KEEL_LOGITS_LAST, &err) == KEEL_ERR_INVALID);
    CHECK("zero tokens", keel_eval(ctx, &ok, 0, 0, lg, KEEL_LOGITS_LAST, &err) == KEEL_ERR_INVALID);
    CHECK("NULL logits is fine", keel_eval(ctx, &ok, 1, 0, NULL, KEEL_LOGITS_ALL, &err) == KEEL_OK);
}

static void test_perplexity(const cJSON *g) {
    // BOS + the 256-token story: 257 tokens, windows of 64 -> 4 chunks
    int32_t toks[257];
    toks[0] = 1;
    ids_of(cJSON_GetObjectItem(g, "generated_ids"), toks + 1, 256);
    keel_ppl_result r;
    keel_err err;
    CHECK("perplexity runs", keel_perplexity(ctx, toks, 257, 64, NULL, NULL, &r, &err) == KEEL_OK);
    CHECK("4 chunks, 31 scored each", r.n_chunks == 4 && r.n_scored == 4 * 31);
    // by hand: window i, first token -> BOS, score positions 32..62
    double s = 0.0, s2 = 0.0;
    float *lg = malloc(sizeof(float) * V * 64);
    for (int c = 0; c < 4; c++) {
        int32_t w[64];
        memcpy(w, toks + 64 * c, sizeof w);
        w[0] = 1;
        keel_eval(ctx, w, 64, 0, lg, KEEL_LOGITS_ALL, &err);
        for (int j = 32; j < 63; j++) {
            double x = nll_sum(lg + (size_t)j * V, w + j, 2);
            s += x, s2 += x * x;
        }
    }
    free(lg);
    double mean = s / 124, se = sqrt((s2 / 124 - mean * mean) / 123);
    CHECK_CLOSE("mean NLL", r.nll_mean, mean, 1e-5);
    CHECK_CLOSE("ppl", r.ppl, exp(mean), 1e-4);
    CHECK_CLOSE("stderr", r.nll_stderr, se, 1e-5);
    CHECK("a greedy story is very predictable", r.ppl > 1.0 && r.ppl < 2.0);
    CHECK("window too large", keel_perplexity(ctx, toks, 257, 1024, NULL, NULL, &r, &err) == KEEL_ERR_INVALID);
    CHECK("too few tokens", keel_perplexity(ctx, toks, 50, 64, NULL, NULL, &r, &err) == KEEL_ERR_INVALID);
}

// A call longer than the context's batch (512) is split inside keel_eval;
// the result must equal evaluating the same tokens in calls of 100.
static void test_long_batch(const cJSON *g) {
    enum { N = 560 };
    keel_context *c = NULL;
    keel_err err;
    if (keel_context_init(model, 600, &c, &err) != KEEL_OK) {
        CHECK("context of 600", 0);
        return;
    }
    int32_t toks[N], story[256];
    ids_of(cJSON_GetObjectItem(g, "generated_ids"), story, 256);
    toks[0] = 1;
    for (int i = 1; i < N; i++) toks[i] = story[(i - 1) % 256];
    float *a = malloc(sizeof(float) * V * N), *b = malloc(sizeof(float) * V * N);
    CHECK("one call of 560 tokens", keel_eval(c, toks, N, 0, a, KEEL_LOGITS_ALL, &err) == KEEL_OK);
    for (int i = 0; i < N; i += 100)
        keel_eval(c, toks + i, N - i < 100 ? N - i : 100, i, b + (size_t)i * V, KEEL_LOGITS_ALL, &err);
    double worst = 0.0;
    for (size_t i = 0; i < (size_t)V * N; i++) worst = fmax(worst, fabs(a[i] - b[i]));
    CHECK_CLOSE("split inside keel_eval == calls of 100", worst, 0.0, 1e-4);
    float last[512];
    keel_eval(c, toks, N, 0, last, KEEL_LOGITS_LAST, &err);
    worst = 0.0;
    for (int v = 0; v < V; v++) worst = fmax(worst, fabs(last[v] - a[(size_t)(N - 1) * V + v]));
    CHECK_CLOSE("LAST == the last row of ALL", worst, 0.0, 1e-5);
    free(a), free(b);
    keel_context_free(c);
}

int main(void) {
    char path[512], jpath[512];
    test_shared_path(path, sizeof path, "models/stories260K/stories260K.gguf");
    test_shared_path(jpath, sizeof jpath, "models/stories260K/expected_vectors.json");
    keel_err err;
    keel_model_params mp = keel_model_default_params();
    mp.n_threads = 2;
    if (keel_model_load(path, &mp, &model, &err) != KEEL_OK) {
        fprintf(stderr, "load %s: %s\n", path, err.msg);
        CHECK("load stories260K.gguf", 0);
        return test_report();
    }
    V = keel_model_describe(model)->n_vocab;
    if (keel_context_init(model, 512, &ctx, &err) != KEEL_OK) {
        fprintf(stderr, "%s\n", err.msg);
        CHECK("context", 0);
        return test_report();
    }
    CHECK("n_ctx", keel_context_n_ctx(ctx) == 512);
    cJSON *j = load_json(jpath);
    CHECK("expected_vectors.json", j != NULL);
    if (j) {
        test_describe();
        test_empty_prompt(cJSON_GetObjectItem(j, "empty_prompt_greedy"));
        test_prompt(cJSON_GetObjectItem(j, "prompt_greedy:Once upon a time"));
        test_prompt(cJSON_GetObjectItem(j, "prompt_greedy:Lily is a cat"));
        test_nll(cJSON_GetObjectItem(j, "teacher_forced_nll"));
        test_eval_errors();
        test_perplexity(cJSON_GetObjectItem(j, "empty_prompt_greedy"));
        test_long_batch(cJSON_GetObjectItem(j, "empty_prompt_greedy"));
    }
    cJSON_Delete(j);
    keel_context_free(ctx);
    keel_model_free(model);
    return test_report();
}
