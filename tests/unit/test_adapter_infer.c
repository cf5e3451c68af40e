// SPDX-License-Identifier: MIT
// test_adapter_infer.c — LoRA adapters on the inference path (keel_adapter_load,
// keel_context_set_adapter, keel_eval with the KV cache; src/eval/adapter.c,
// src/model/forward.c): the PEFT adapter tests/data/tiny-lora-peft on the tiny
// Llama (HF directory and its GGUF twin, q/k rows in Meta order) gives
// PyTorch+PEFT's logits (tests/golden/tiny_lora.*, tools/golden_lora.py), batched,
// token by token and in two chunks; a random adapter written with keel_lora_save
// gives the training forward's logits (keel_train_forward with the same
// directory loaded by keel_lora_load) on stories260K and, when cached, SmolLM2-135M
// Q4_1; a zero-B adapter gives exactly the base logits, and removing an adapter
// restores them; bad adapter directories and mismatched bases give errors that
// name the file and tensor; keel_checkpoint_model tells models from adapters
// and finds an adapter's base; allocation failures. With KEEL_SANITIZE set (make asan) the SmolLM2 sequence is shorter.
#include "adapters/lora.h"
#include "core/core.h"
#include "keel.h"
#include "test.h"
#include "test_fs.h"
#include "test_model.h"

#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_tmp[128];

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= mx)) mx = d; // NaN sticks
    }
    return mx;
}

static double max_abs(const float *a, size_t n) {
    double mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs((double)a[i]));
    return mx;
}

// Logits of tokens[0..T) through keel_eval on c: batched (KEEL_LOGITS_ALL), token by
// token (KEEL_LOGITS_LAST, one position per call) and in two chunks split at `cut`.
typedef struct three {
    float *batched, *stepwise, *chunked;
} three;

static bool eval_three(keel_context *c, const int32_t *tokens, int T, int V, int cut, three *o) {
    keel_err err;
    size_t n = (size_t)T * (size_t)V;
    o->batched = malloc(n * sizeof(float));
    o->stepwise = malloc(n * sizeof(float));
    o->chunked = malloc(n * sizeof(float));
    if (keel_eval(c, tokens, T, 0, o->batched, KEEL_LOGITS_ALL, &err)) goto fail;
    for (int t = 0; t < T; t++)
        if (keel_eval(c, tokens + t, 1, t, o->stepwise + (size_t)t * V, KEEL_LOGITS_LAST, &err)) goto fail;
    if (keel_eval(c, tokens, cut, 0, o->chunked, KEEL_LOGITS_ALL, &err)) goto fail;
    if (keel_eval(c, tokens + cut, T - cut, cut, o->chunked + (size_t)cut * V, KEEL_LOGITS_ALL, &err)) goto fail;
    return true;
fail:
    fprintf(stderr, "keel_eval: %s\n", err.msg);
    return false;
}

static void three_free(three *o) {
    free(o->batched), free(o->stepwise), free(o->chunked);
    memset(o, 0, sizeof *o);
}

// ---- 1. the PEFT adapter against PyTorch + PEFT (tests/golden/tiny_lora.*) ----------------

typedef struct gold {
    cJSON *j;
    float *f;
    size_t n_floats;
    int B, T;
    int32_t *tokens; // (B, T)
    const float *logits; // (B*T, V)
} gold;

static bool gold_load(gold *G) {
    memset(G, 0, sizeof *G);
    char *js = test_read_file("tests/golden/tiny_lora.json", NULL);
    size_t nb = 0;
    G->f = (float *)test_read_file("tests/golden/tiny_lora.f32", &nb);
    G->n_floats = nb / 4;
    G->j = js ? cJSON_Parse(js) : NULL;
    free(js);
    if (!G->j || !G->f) return false;
    G->B = cJSON_GetObjectItem(G->j, "B")->valueint;
    G->T = cJSON_GetObjectItem(G->j, "T")->valueint;
    G->tokens = calloc((size_t)(G->B * G->T), sizeof(int32_t));
    cJSON *ids = cJSON_GetObjectItem(G->j, "ids");
    for (int b = 0; b < G->B; b++)
        for (int t = 0; t < G->T; t++)
            G->tokens[b * G->T + t] = cJSON_GetArrayItem(cJSON_GetArrayItem(ids, b), t)->valueint;
    cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(G->j, "tensors")) {
        if (strcmp(cJSON_GetObjectItem(t, "name")->valuestring, "logits")) continue;
        size_t off = (size_t)cJSON_GetObjectItem(t, "offset")->valuedouble;
        if (off + (size_t)(G->B * G->T) * 320 <= G->n_floats) G->logits = G->f + off;
    }
    return G->logits != NULL;
}

static void gold_free(gold *G) {
    cJSON_Delete(G->j);
    free(G->f);
    free(G->tokens);
}

static void test_golden(const gold *G, const char *model) {
    keel_err err;
    keel_model *m = test_load_model(model, 2);
    CHECK("load tiny model", m != NULL);
    if (!m) return;
    const int V = keel_model_describe(m)->n_vocab, T = G->T;
    CHECK("tiny vocab 320", V == 320);
    keel_adapter *ad = NULL;
    keel_context *c = NULL;
    CHECK("keel_adapter_load tiny-lora-peft", keel_adapter_load(m, "tests/data/tiny-lora-peft", &ad, &err) == KEEL_OK);
    CHECK("context", keel_context_init(m, T, &c, &err) == KEEL_OK);
    if (!ad || !c) goto out;
    CHECK("set adapter", keel_context_set_adapter(c, ad, &err) == KEEL_OK);
    double worst = 0, scale = 0;
    for (int b = 0; b < G->B; b++) {
        three o;
        bool ok = eval_three(c, G->tokens + b * T, T, V, 5, &o);
        CHECK("eval with adapter", ok);
        if (ok) {
            const float *ref = G->logits + (size_t)b * T * V;
            size_t n = (size_t)T * V;
            worst = fmax(worst, max_abs_diff(o.batched, ref, n));
            worst = fmax(worst, max_abs_diff(o.stepwise, ref, n));
            worst = fmax(worst, max_abs_diff(o.chunked, ref, n));
            scale = fmax(scale, max_abs(ref, n));
        }
        three_free(&o);
    }
    printf("%s + tiny-lora-peft via keel_eval (batched, token by token, 2 chunks) vs PyTorch+PEFT (f64): "
           "logits max abs %.2e (|logit| <= %.2f)\n", model, worst, scale);
    CHECK("adapter logits = PEFT's (1e-5)", worst <= 1e-5 && scale > 0.5);

    // the adapter matters, and removing it gives the base back bit for bit
    float *base = malloc(sizeof(float) * (size_t)T * V), *again = malloc(sizeof(float) * (size_t)T * V);
    keel_context *c0 = NULL;
    CHECK("plain context", keel_context_init(m, T, &c0, &err) == KEEL_OK);
    CHECK("plain eval", c0 && keel_eval(c0, G->tokens, T, 0, base, KEEL_LOGITS_ALL, &err) == KEEL_OK);
    CHECK("remove adapter", keel_context_set_adapter(c, NULL, &err) == KEEL_OK);
    CHECK("eval after removal", keel_eval(c, G->tokens, T, 0, again, KEEL_LOGITS_ALL, &err) == KEEL_OK);
    CHECK("removed adapter: base logits bit for bit", !memcmp(base, again, sizeof(float) * (size_t)T * V));
    double moved = max_abs_diff(base, G->logits, (size_t)T * V);
    CHECK("the adapter moves the logits", moved > 0.05);
    free(base), free(again);
    keel_context_free(c0);
out:
    keel_context_free(c);
    keel_adapter_free(ad);
    keel_model_free(m);
}

// ---- 2. keel_eval = the training forward, with a random adapter -----------------------------

static const char *const all7[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

// A random adapter on the seven projections of every layer of m (Kaiming A, B ~ N(0, sd^2);
// sd 0: B = 0), rank r, saved to dir.
static bool write_random_adapter(const keel_model *m, const char *dir, int r, float sd, uint64_t seed) {
    keel_err err;
    keel_train_model tm;
    keel_lora lo;
    if (keel_train_model_init(&tm, m, test_sel_none, NULL, &err)) goto fail0;
    keel_lora_config cfg = keel_lora_default_config();
    cfg.r = r, cfg.alpha = 2.0 * r, cfg.targets = all7, cfg.n_targets = 7, cfg.seed = seed;
    if (keel_lora_attach(&lo, &tm, &cfg, &err)) goto fail1;
    keel_rng rng;
    keel_rng_seed(&rng, seed + 1);
    for (int i = 0; i < lo.n; i++) {
        float *B = keel_lora_B(&lo, i);
        for (int64_t k = 0; k < lo.mods[i].n_out * lo.r; k++) B[k] = sd * keel_rng_normal(&rng);
    }
    keel_status st = keel_lora_save(&lo, dir, "test", &err);
    keel_lora_free(&lo);
    keel_train_model_free(&tm);
    if (st) fprintf(stderr, "save: %s\n", err.msg);
    return st == KEEL_OK;
fail1:
    keel_train_model_free(&tm);
fail0:
    fprintf(stderr, "random adapter: %s\n", err.msg);
    return false;
}

// Logits (T, V) of the training forward with dir loaded by keel_lora_load.
static bool train_logits(const keel_model *m, const char *dir, const int32_t *tokens, int T, float *out) {
    keel_err err;
    keel_train_model tm;
    keel_lora lo;
    keel_train_acts a;
    bool ok = false;
    if (keel_train_model_init(&tm, m, test_sel_none, NULL, &err)) goto fail0;
    if (keel_lora_load(&lo, &tm, dir, 0, &err)) goto fail1;
    if (keel_lora_reserve(&lo, T, &err) || keel_train_acts_init(&a, &tm, 1, T, &err)) goto fail2;
    int32_t *targets = calloc((size_t)T, sizeof(int32_t));
    for (int t = 0; t + 1 < T; t++) targets[t] = tokens[t + 1];
    float loss;
    if (!keel_train_forward(&tm, &a, tokens, targets, NULL, &loss, &err)) {
        memcpy(out, a.logits, sizeof(float) * (size_t)T * (size_t)m->desc.n_vocab);
        ok = true;
    }
    free(targets);
    keel_train_acts_free(&a);
fail2:
    keel_lora_free(&lo);
fail1:
    keel_train_model_free(&tm);
fail0:
    if (!ok) fprintf(stderr, "training forward: %s\n", err.msg);
    return ok;
}

static void test_vs_train(const char *label, const char *model, int T, int r, double tol) {
    keel_err err;
    keel_model *m = test_load_model(model, 2);
    CHECK("load model", m != NULL);
    if (!m) return;
    const int V = m->desc.n_vocab;
    char dir[256], zdir[256];
    snprintf(dir, sizeof dir, "%s/rand-%s", g_tmp, label);
    snprintf(zdir, sizeof zdir, "%s/zero-%s", g_tmp, label);
    CHECK("random adapter written", write_random_adapter(m, dir, r, 0.05f, 17));
    CHECK("zero-B adapter written", write_random_adapter(m, zdir, r, 0.0f, 18));
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)T);
    keel_rng rng;
    keel_rng_seed(&rng, 5);
    int32_t bos = keel_token_bos(keel_model_tokenizer(m));
    for (int t = 0; t < T; t++) tokens[t] = (int32_t)(keel_rng_u64(&rng) % (uint64_t)V);
    if (bos >= 0) tokens[0] = bos;
    size_t n = (size_t)T * V;
    float *ref = malloc(n * sizeof(float)), *base = malloc(n * sizeof(float)), *zl = malloc(n * sizeof(float));
    bool have_ref = train_logits(m, dir, tokens, T, ref);
    CHECK("training-forward logits", have_ref);

    keel_adapter *ad = NULL, *zad = NULL;
    keel_context *c = NULL;
    CHECK("keel_adapter_load random", keel_adapter_load(m, dir, &ad, &err) == KEEL_OK);
    CHECK("keel_adapter_load zero-B", keel_adapter_load(m, zdir, &zad, &err) == KEEL_OK);
    CHECK("context", keel_context_init(m, T, &c, &err) == KEEL_OK);
    if (!ad || !zad || !c || !have_ref) goto out;
    CHECK("plain eval", keel_eval(c, tokens, T, 0, base, KEEL_LOGITS_ALL, &err) == KEEL_OK);
    CHECK("set random adapter", keel_context_set_adapter(c, ad, &err) == KEEL_OK);
    three o;
    bool ok = eval_three(c, tokens, T, V, T / 3, &o);
    CHECK("eval with the random adapter", ok);
    if (ok) {
        double db = max_abs_diff(o.batched, ref, n), ds = max_abs_diff(o.stepwise, ref, n);
        double dc = max_abs_diff(o.chunked, ref, n), sc = max_abs(ref, n), moved = max_abs_diff(base, ref, n);
        printf("%s (T %d, r %d, 7 projections): keel_eval vs training forward: batched %.2e, token by token %.2e, "
               "chunked %.2e (|logit| <= %.2f; the adapter moves logits by %.3f)\n",
               label, T, r, db, ds, dc, sc, moved);
        CHECK("batched = training forward", db <= tol * fmax(sc, 1));
        CHECK("token by token = training forward", ds <= tol * fmax(sc, 1));
        CHECK("chunked = training forward", dc <= tol * fmax(sc, 1));
        CHECK("the random adapter moves the logits", moved > 100 * tol * fmax(sc, 1));
    }
    three_free(&o);
    // zero B: the base, exactly (the branch adds +0 to every output)
    CHECK("set zero-B adapter", keel_context_set_adapter(c, zad, &err) == KEEL_OK);
    CHECK("eval with zero-B", keel_eval(c, tokens, T, 0, zl, KEEL_LOGITS_ALL, &err) == KEEL_OK);
    CHECK("zero-B adapter: base logits bit for bit", !memcmp(zl, base, n * sizeof(float)));
    // one token (the decode path): against the plain model's decode step
    CHECK("remove adapter", keel_context_set_adapter(c, NULL, &err) == KEEL_OK);
    CHECK("plain step", keel_eval(c, tokens + T - 1, 1, T - 1, base, KEEL_LOGITS_LAST, &err) == KEEL_OK);
    CHECK("set zero-B adapter again", keel_context_set_adapter(c, zad, &err) == KEEL_OK);
    CHECK("step with zero-B", keel_eval(c, tokens + T - 1, 1, T - 1, zl, KEEL_LOGITS_LAST, &err) == KEEL_OK);
    CHECK("zero-B adapter, one token: base logits bit for bit", !memcmp(zl, base, (size_t)V * sizeof(float)));
out:
    keel_context_free(c);
    keel_adapter_free(ad);
    keel_adapter_free(zad);
    keel_model_free(m);
    free(tokens), free(ref), free(base), free(zl);
}

// ---- 3. errors --------------------------------------------------------------------------------

static bool copy_file(const char *from, const char *to) {
    size_t n = 0;
    char *b = test_read_file(from, &n);
    bool ok = b && test_write_bytes(to, b, n);
    free(b);
    return ok;
}

static void expect_fail(keel_model *m, const char *dir, keel_status code, const char *const *needles, int nn,
                        const char *descr) {
    keel_err err;
    memset(&err, 0, sizeof err);
    keel_adapter *ad = (keel_adapter *)&err; // must come back NULL
    keel_status st = keel_adapter_load(m, dir, &ad, &err);
    bool named = true;
    for (int i = 0; i < nn; i++) named &= strstr(err.msg, needles[i]) != NULL;
    if (st != code || !named) fprintf(stderr, "  %s: status %d, message: %s\n", descr, (int)st, err.msg);
    CHECK(descr, st == code && ad == NULL && named);
    keel_adapter_free(st == KEEL_OK ? ad : NULL);
}

static void test_errors(void) {
    keel_err err;
    keel_model *tiny = test_load_model("tests/data/tiny-llama-hf", 2);
    char sp[512];
    keel_model *stories = test_load_model(test_shared_path(sp, sizeof sp, "models/stories260K/stories260K.gguf"), 2);
    CHECK("models for the error tests", tiny && stories);
    if (!tiny || !stories) goto out;
    char d[256], p[512], q[512];

    // missing directory
    snprintf(d, sizeof d, "%s/nope", g_tmp);
    expect_fail(tiny, d, KEEL_ERR_IO, (const char *const[]){"nope", "not an adapter directory"}, 2, "missing directory");
    // a file, not a directory
    expect_fail(tiny, "tests/golden/tiny_lora.json", KEEL_ERR_IO, (const char *const[]){"tiny_lora.json"}, 1,
                "a file instead of a directory");
    // no adapter_model.safetensors
    snprintf(d, sizeof d, "%s/only-config", g_tmp);
    mkdir(d, 0755);
    snprintf(p, sizeof p, "%s/adapter_config.json", d);
    CHECK("copy config", copy_file("tests/data/tiny-lora-peft/adapter_config.json", p));
    expect_fail(tiny, d, KEEL_ERR_IO, (const char *const[]){"adapter_model.safetensors"}, 1,
                "missing adapter_model.safetensors");
    // no adapter_config.json
    snprintf(d, sizeof d, "%s/only-tensors", g_tmp);
    mkdir(d, 0755);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", d);
    CHECK("copy tensors", copy_file("tests/data/tiny-lora-peft/adapter_model.safetensors", p));
    expect_fail(tiny, d, KEEL_ERR_IO, (const char *const[]){"adapter_config.json"}, 1, "missing adapter_config.json");
    // wrong rank: the config says r = 8, the tensors have r = 4
    snprintf(d, sizeof d, "%s/wrong-rank", g_tmp);
    mkdir(d, 0755);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", d);
    CHECK("copy tensors", copy_file("tests/data/tiny-lora-peft/adapter_model.safetensors", p));
    {
        char *js = test_read_file("tests/data/tiny-lora-peft/adapter_config.json", NULL);
        cJSON *j = js ? cJSON_Parse(js) : NULL;
        free(js);
        CHECK("parse config", j != NULL);
        if (j) {
            cJSON_ReplaceItemInObject(j, "r", cJSON_CreateNumber(8));
            char *t = cJSON_Print(j);
            snprintf(q, sizeof q, "%s/adapter_config.json", d);
            CHECK("write config", t && test_write_bytes(q, t, strlen(t)));
            free(t);
            cJSON_Delete(j);
        }
    }
    expect_fail(tiny, d, KEEL_ERR_FORMAT, (const char *const[]){"adapter_model.safetensors", "lora_", "r = 8"}, 3,
                "wrong rank: error names the file, the tensor and r");
    // corrupt config
    snprintf(q, sizeof q, "%s/adapter_config.json", d);
    CHECK("write bad json", test_write_bytes(q, "{\"r\": ", 6));
    expect_fail(tiny, d, KEEL_ERR_FORMAT, (const char *const[]){"adapter_config.json"}, 1, "malformed adapter_config.json");
    // truncated safetensors
    {
        size_t n = 0;
        char *b = test_read_file("tests/data/tiny-lora-peft/adapter_model.safetensors", &n);
        snprintf(d, sizeof d, "%s/truncated", g_tmp);
        mkdir(d, 0755);
        snprintf(p, sizeof p, "%s/adapter_model.safetensors", d);
        snprintf(q, sizeof q, "%s/adapter_config.json", d);
        CHECK("write truncated", b && test_write_bytes(p, b, n / 2) && copy_file("tests/data/tiny-lora-peft/adapter_config.json", q));
        free(b);
        expect_fail(tiny, d, KEEL_ERR_FORMAT, (const char *const[]){"adapter_model.safetensors"}, 1,
                    "truncated adapter_model.safetensors");
    }
    // wrong base: the tiny Llama's adapter (2 layers, F 160) on stories260K (5 layers, F 172)
    expect_fail(stories, "tests/data/tiny-lora-peft", KEEL_ERR_FORMAT,
                (const char *const[]){"adapter_model.safetensors", "lora_"}, 2, "adapter of another base: shapes");
    // wrong base: stories260K's adapter on the tiny Llama (F 172 vs 160, 5 layers vs 2)
    snprintf(d, sizeof d, "%s/rand-stories-gguf", g_tmp); // written by test_vs_train
    expect_fail(tiny, d, KEEL_ERR_FORMAT, (const char *const[]){"rand-stories-gguf/adapter_model.safetensors", "lora_"},
                2, "adapter of a deeper base");
    // an adapter loaded for one model cannot go on another model's context
    {
        keel_adapter *ad = NULL;
        keel_context *c = NULL;
        CHECK("load tiny adapter", keel_adapter_load(tiny, "tests/data/tiny-lora-peft", &ad, &err) == KEEL_OK);
        CHECK("stories context", keel_context_init(stories, 8, &c, &err) == KEEL_OK);
        if (ad && c) {
            keel_status st = keel_context_set_adapter(c, ad, &err);
            CHECK("set_adapter on another model's context: KEEL_ERR_INVALID",
                  st == KEEL_ERR_INVALID && strstr(err.msg, "another model"));
        }
        CHECK("NULL context", keel_context_set_adapter(NULL, ad, &err) == KEEL_ERR_INVALID);
        keel_context_free(c);
        keel_adapter_free(ad);
    }
    {
        keel_adapter *ad = NULL;
        CHECK("NULL model", keel_adapter_load(NULL, "tests/data/tiny-lora-peft", &ad, &err) == KEEL_ERR_INVALID && !ad);
        CHECK("NULL dir", keel_adapter_load(tiny, NULL, &ad, &err) == KEEL_ERR_INVALID && !ad);
        keel_adapter_free(NULL);
    }
out:
    keel_model_free(tiny);
    keel_model_free(stories);
}

// ---- 4. keel_checkpoint_model ----------------------------------------------------------------------

static void expect_ckpt(const char *path, const char *base, keel_status code, const char *want_model,
                        const char *want_adapter, const char *descr) {
    keel_err err;
    memset(&err, 0, sizeof err);
    char *m = NULL, *a = NULL;
    keel_status st = keel_checkpoint_model(path, base, &m, &a, &err);
    bool ok = st == code;
    if (code == KEEL_OK) {
        ok &= m && !strcmp(m, want_model);
        ok &= want_adapter ? (a && !strcmp(a, want_adapter)) : a == NULL;
    } else {
        ok &= !m && !a && strstr(err.msg, path) != NULL;
    }
    if (!ok) fprintf(stderr, "  %s: status %d, model %s, adapter %s, message: %s\n", descr, (int)st, m ? m : "-",
                     a ? a : "-", err.msg);
    CHECK(descr, ok);
    keel_free(m);
    keel_free(a);
}

static void test_checkpoint_model(void) {
    char p[512], d[640], q[768], run[256];
    const char *gguf = "tests/data/tiny-llama.gguf", *hf = "tests/data/tiny-llama-hf", *peft = "tests/data/tiny-lora-peft";
    expect_ckpt(gguf, NULL, KEEL_OK, gguf, NULL, "a .gguf file is a model");
    expect_ckpt(hf, NULL, KEEL_OK, hf, NULL, "a directory with config.json is a model");
    expect_ckpt(peft, NULL, KEEL_OK, hf, peft, "an adapter: its base_model_name_or_path");
    expect_ckpt(peft, gguf, KEEL_OK, gguf, peft, "an adapter: the caller's base first");
    snprintf(p, sizeof p, "%s/nope.gguf", g_tmp);
    expect_ckpt(peft, p, KEEL_ERR_IO, NULL, NULL, "an adapter with a missing base");
    expect_ckpt(p, NULL, KEEL_ERR_IO, NULL, NULL, "a missing path");
    snprintf(d, sizeof d, "%s/empty", g_tmp);
    mkdir(d, 0755);
    expect_ckpt(d, NULL, KEEL_ERR_FORMAT, NULL, NULL, "a directory that is neither");
    // an adapter whose base_model_name_or_path is null (or gone): the run's job.yaml, two levels up
    snprintf(run, sizeof run, "%s/run", g_tmp);
    mkdir(run, 0755);
    snprintf(q, sizeof q, "%s/checkpoints", run);
    mkdir(q, 0755);
    snprintf(d, sizeof d, "%s/checkpoints/step-3", run);
    mkdir(d, 0755);
    {
        char *js = test_read_file("tests/data/tiny-lora-peft/adapter_config.json", NULL);
        cJSON *j = js ? cJSON_Parse(js) : NULL;
        free(js);
        if (j) cJSON_ReplaceItemInObject(j, "base_model_name_or_path", cJSON_CreateString("/nonexistent/base"));
        char *t = j ? cJSON_Print(j) : NULL;
        snprintf(q, sizeof q, "%s/adapter_config.json", d);
        CHECK("write adapter_config.json", t && test_write_bytes(q, t, strlen(t)));
        free(t);
        cJSON_Delete(j);
    }
    expect_ckpt(d, NULL, KEEL_ERR_INVALID, NULL, NULL, "an adapter whose base is nowhere");
    snprintf(q, sizeof q, "%s/job.yaml", run);
    const char *job = "model: tests/data/tiny-llama.gguf\nmethod: lora\n";
    CHECK("write job.yaml", test_write_bytes(q, job, strlen(job)));
    expect_ckpt(d, NULL, KEEL_OK, gguf, d, "an adapter: the run's job.yaml model");
    char *m = NULL, *a = NULL;
    keel_err err;
    CHECK("NULL arguments", keel_checkpoint_model(NULL, NULL, &m, &a, &err) == KEEL_ERR_INVALID && !m && !a);
}

// ---- 5. allocation failures -----------------------------------------------------------------------

// Every allocation of keel_adapter_load and keel_context_set_adapter failing in turn: KEEL_ERR_NOMEM,
// *out NULL, nothing leaked (ASan), and a context whose set_adapter failed still evaluates.
static void test_alloc_failures(void) {
    keel_model *m = test_load_model("tests/data/tiny-llama-hf", 2);
    if (!m) return;
    keel_err err;
    int fails = 0, loaded = 0;
    bool clean = true;
    for (long n = 1; n < 2000 && !loaded; n++) {
        keel_adapter *ad = NULL;
        keel_mem_fail_after(n);
        keel_status st = keel_adapter_load(m, "tests/data/tiny-lora-peft", &ad, &err);
        keel_mem_fail_after(0);
        if (st == KEEL_OK) {
            loaded++;
            keel_context *c = NULL;
            float lg[320];
            int32_t tok = 1;
            CHECK("context", keel_context_init(m, 8, &c, &err) == KEEL_OK);
            keel_mem_fail_after(1);
            st = keel_context_set_adapter(c, ad, &err);
            keel_mem_fail_after(0);
            CHECK("set_adapter with its allocation failing: KEEL_ERR_NOMEM", st == KEEL_ERR_NOMEM);
            CHECK("the context still evaluates", keel_eval(c, &tok, 1, 0, lg, KEEL_LOGITS_LAST, &err) == KEEL_OK);
            CHECK("set_adapter afterwards", keel_context_set_adapter(c, ad, &err) == KEEL_OK);
            keel_context_free(c);
            keel_adapter_free(ad);
        } else {
            fails++;
            if (st != KEEL_ERR_NOMEM || ad) {
                fprintf(stderr, "  allocation %ld failing: status %d (%s)\n", n, (int)st, err.msg);
                clean = false;
            }
        }
    }
    printf("keel_adapter_load: %d allocation failures, each KEEL_ERR_NOMEM with nothing returned\n", fails);
    CHECK("allocation failures: KEEL_ERR_NOMEM, out NULL", clean && fails > 5);
    CHECK("the load succeeds once allocations do", loaded == 1);
    keel_model_free(m);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/keel_adapter_infer_%d", (int)getpid());
    if (mkdir(g_tmp, 0755) != 0) {
        fprintf(stderr, "mkdir %s failed\n", g_tmp);
        return 1;
    }
    gold G;
    bool have_gold = gold_load(&G);
    CHECK("golden tests/golden/tiny_lora.{json,f32}", have_gold);
    if (have_gold) {
        test_golden(&G, "tests/data/tiny-llama-hf");
        test_golden(&G, "tests/data/tiny-llama.gguf");
    }
    gold_free(&G);

    char p[512];
    test_vs_train("tiny-hf", "tests/data/tiny-llama-hf", 24, 4, 1e-5);
    test_vs_train("tiny-gguf", "tests/data/tiny-llama.gguf", 24, 4, 1e-5);
    test_vs_train("stories-gguf", test_shared_path(p, sizeof p, "models/stories260K/stories260K.gguf"), 40, 8, 1e-5);
    test_errors();
    test_checkpoint_model();
    test_alloc_failures();

    const char *smol = test_cache_path(p, sizeof p, "SmolLM2-135M-Instruct.Q4_1.gguf");
    // under the sanitizers (make asan sets KEEL_SANITIZE) a shorter SmolLM2 sequence
    if (access(smol, R_OK) == 0) test_vs_train("smollm2-q4_1", smol, getenv("KEEL_SANITIZE") ? 6 : 20, 8, 1e-5);
    else printf("skipped: SmolLM2 part (%s absent)\n", smol);
    test_rm_rf(g_tmp);
    return test_report();
}
