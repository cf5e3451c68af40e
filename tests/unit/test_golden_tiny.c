// SPDX-License-Identifier: MIT
// test_golden_tiny.c — the tiny random Llamas against transformers
// (tests/golden/tiny_hf_logits.json, made by tools/make_tiny_hf.py; see
// tests/golden/README.md section 3). Four models: the fp32 untied HF
// directory, the bf16 tied HF directory, and their GGUF twins written by
// llama.cpp's convert_hf_to_gguf.py (Q/K rows permuted for interleaved RoPE).
// For each: the tokenizer gives the golden ids, every position's logits match,
// and the 16-token greedy continuation (KV cache, one token at a time) is
// identical. Each HF directory and its GGUF twin must also agree with each
// other to ~1e-5 (3e-6 of the logit scale), which is what proves the rotate-half (HF) vs interleaved
// (GGUF) Q/K handling.
#include "keel.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <math.h>

#define N_GREEDY 16

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) { free(s); s = NULL; }
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

// A JSON array of numbers into out[0..n); false when the length or a type differs.
static bool json_floats(const cJSON *a, float *out, int n) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) return false;
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a) {
        if (!cJSON_IsNumber(x)) return false;
        out[i++] = (float)x->valuedouble;
    }
    return true;
}

static bool json_ints(const cJSON *a, int32_t *out, int n) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) return false;
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a) {
        if (!cJSON_IsNumber(x)) return false;
        out[i++] = (int32_t)x->valueint;
    }
    return true;
}

typedef struct model_case {
    const char *path;   // what keel_model_load opens
    const char *golden; // key under "models" in the golden file
    double tol;         // |keel - transformers| on every logit
} model_case;

// Runs one model: tokenizer ids, all-position logits, greedy continuation.
// Fills logits_out (n * V) for the HF-vs-GGUF comparison; returns false when
// the model did not load or run.
static bool run_case(const model_case *mc, const cJSON *golden, const char *text, const int32_t *ids, int n,
                     int V, float *logits_out) {
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(golden, "models"), mc->golden);
    char what[256];
    snprintf(what, sizeof what, "%s: golden entry %s", mc->path, mc->golden);
    CHECK(what, g != NULL);
    if (!g) return false;

    keel_err err;
    keel_model *m = NULL;
    keel_model_params mp = keel_model_default_params();
    mp.n_threads = 1;
    if (keel_model_load(mc->path, &mp, &m, &err) != KEEL_OK) {
        fprintf(stderr, "%s\n", err.msg);
        snprintf(what, sizeof what, "load %s", mc->path);
        CHECK(what, 0);
        return false;
    }
    const keel_model_desc *d = keel_model_describe(m);
    snprintf(what, sizeof what, "%s: vocab %d == %d", mc->path, d->n_vocab, V);
    CHECK(what, d->n_vocab == V);
    bool tied = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g, "tie_word_embeddings"));
    snprintf(what, sizeof what, "%s: tied head == golden (%d)", mc->path, (int)tied);
    CHECK(what, d->tied_output == tied);
    if (d->n_vocab != V) {
        keel_model_free(m);
        return false;
    }

    // tokenizer: add_special as transformers' tokenizer(text) does (no BOS for this one)
    const keel_tokenizer *tok = keel_model_tokenizer(m);
    int32_t *kid = NULL;
    size_t kn = 0;
    bool tok_ok = keel_tokenize(tok, text, strlen(text), true, false, &kid, &kn, &err) == KEEL_OK;
    if (!tok_ok) fprintf(stderr, "%s\n", err.msg);
    snprintf(what, sizeof what, "%s: tokenizer gives the golden %d ids (got %zu)", mc->path, n, kn);
    CHECK(what, tok_ok && kn == (size_t)n && !memcmp(kid, ids, sizeof(int32_t) * (size_t)n));
    keel_free(kid);

    // logits of every position vs transformers
    keel_context *c = NULL;
    bool ok = keel_context_init(m, n + N_GREEDY + 1, &c, &err) == KEEL_OK &&
              keel_eval(c, ids, n, 0, logits_out, KEEL_LOGITS_ALL, &err) == KEEL_OK;
    if (!ok) fprintf(stderr, "%s\n", err.msg);
    snprintf(what, sizeof what, "%s: eval", mc->path);
    CHECK(what, ok);
    const cJSON *gl = cJSON_GetObjectItemCaseSensitive(g, "logits");
    float *ref = malloc(sizeof(float) * (size_t)V);
    double worst = 0.0;
    int worst_t = -1, worst_v = -1, n_bad = 0, rows_ok = 0;
    for (int t = 0; ok && t < n; t++) {
        if (!json_floats(cJSON_GetArrayItem(gl, t), ref, V)) break;
        rows_ok++;
        const float *kl = logits_out + (size_t)t * (size_t)V;
        int ka = 0, ra = 0;
        for (int v = 0; v < V; v++) {
            double e = fabs((double)kl[v] - (double)ref[v]);
            if (!(e <= worst) && !isnan(worst)) { worst = e; worst_t = t; worst_v = v; }
            if (!(e <= mc->tol)) n_bad++;
            if (kl[v] > kl[ka]) ka = v;
            if (ref[v] > ref[ra]) ra = v;
        }
        snprintf(what, sizeof what, "%s: argmax at position %d (keel %d, transformers %d)", mc->path, t, ka, ra);
        CHECK(what, ka == ra);
    }
    snprintf(what, sizeof what, "%s: golden logits are [%d][%d]", mc->path, n, V);
    CHECK(what, !ok || (cJSON_GetArraySize(gl) == n && rows_ok == n));
    printf("%-34s logits vs transformers: max |err| %.3g (position %d, token %d), tol %g\n", mc->path, worst,
           worst_t, worst_v, mc->tol);
    snprintf(what, sizeof what, "%s: every logit within %g of transformers (%d outside)", mc->path, mc->tol, n_bad);
    CHECK(what, ok && n_bad == 0);

    // greedy continuation: the prompt batch, then one token at a time, EOS not honoured
    int32_t want[N_GREEDY], got[N_GREEDY];
    bool have_want = json_ints(cJSON_GetObjectItemCaseSensitive(g, "greedy_ids"), want, N_GREEDY);
    snprintf(what, sizeof what, "%s: golden greedy_ids has %d ids", mc->path, N_GREEDY);
    CHECK(what, have_want);
    int ng = 0;
    if (ok) {
        const float *last = logits_out + (size_t)(n - 1) * (size_t)V;
        memcpy(ref, last, sizeof(float) * (size_t)V);
        keel_status st = KEEL_OK;
        while (st == KEEL_OK && ng < N_GREEDY) {
            int b = 0;
            for (int v = 1; v < V; v++) b = ref[v] > ref[b] ? v : b;
            got[ng] = b;
            st = keel_eval(c, &got[ng], 1, n + ng, ref, KEEL_LOGITS_LAST, &err);
            ng++;
        }
        if (st != KEEL_OK) fprintf(stderr, "%s\n", err.msg);
    }
    bool same = have_want && ng == N_GREEDY && !memcmp(got, want, sizeof want);
    if (!same && ng) {
        fprintf(stderr, "%s greedy:", mc->path);
        for (int i = 0; i < ng; i++) fprintf(stderr, " %d", got[i]);
        fprintf(stderr, "\n");
    }
    snprintf(what, sizeof what, "%s: %d-token greedy continuation == transformers", mc->path, N_GREEDY);
    CHECK(what, same);

    free(ref);
    keel_context_free(c);
    keel_model_free(m);
    return ok;
}

int main(void) {
    const char *gpath = "tests/golden/tiny_hf_logits.json";
    char *js = read_text(gpath);
    cJSON *golden = js ? cJSON_Parse(js) : NULL;
    free(js);
    CHECK("read and parse tests/golden/tiny_hf_logits.json", golden != NULL);
    if (!golden) return test_report();

    const cJSON *jt = cJSON_GetObjectItemCaseSensitive(golden, "text");
    const cJSON *jids = cJSON_GetObjectItemCaseSensitive(golden, "ids");
    const cJSON *jv = cJSON_GetObjectItemCaseSensitive(golden, "vocab_size");
    int n = cJSON_GetArraySize(jids), V = cJSON_IsNumber(jv) ? jv->valueint : 0;
    CHECK("golden text, ids, vocab_size", cJSON_IsString(jt) && n > 0 && n < 256 && V == 320);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    if (!cJSON_IsString(jt) || n <= 0 || n >= 256 || V != 320 || !json_ints(jids, ids, n)) {
        free(ids);
        cJSON_Delete(golden);
        return test_report();
    }

    // Tolerances (README section 3: 1e-4 absolute). fp32: the golden is an
    // fp32 forward; keel's differs only by summation order: measured max
    // |err| 8e-6 on logits up to 5.6. bf16: the golden is fp32 math on the
    // bf16-rounded weights, which is exactly what keel does after widening
    // bf16 to fp32, so the error is again rounding: measured 1.7e-5 on logits
    // up to 16.7 (~1e-6 of the scale, as for fp32). 1e-4 leaves 5x margin and
    // stays far below the smallest greedy top-1/top-2 gap of that model
    // (0.028) and below what keeping activations in bf16 would cost (~1e-2).
    const model_case cases[4] = {
        {"tests/data/tiny-llama-hf", "tiny-llama-hf", 1e-4},
        {"tests/data/tiny-llama.gguf", "tiny-llama-hf", 1e-4},
        {"tests/data/tiny-llama-hf-bf16", "tiny-llama-hf-bf16", 1e-4},
        {"tests/data/tiny-llama-bf16.gguf", "tiny-llama-hf-bf16", 1e-4},
    };
    float *lg[4];
    bool ran[4];
    for (int i = 0; i < 4; i++) {
        lg[i] = calloc((size_t)n * (size_t)V, sizeof(float));
        ran[i] = lg[i] && run_case(&cases[i], golden, jt->valuestring, ids, n, V, lg[i]);
    }
    // HF directory vs its GGUF twin (llama.cpp-permuted Q/K): same weights, so
    // only summation-order rounding may differ: ~1e-6 of the logit scale
    // (measured 5.3e-6 at scale 5.6, 1.5e-5 at scale 16.7). The bound is
    // 3e-6 of the largest |logit| (1.7e-5 and 5e-5); a Q/K layout mistake
    // moves logits by O(1).
    for (int i = 0; i < 4; i += 2) {
        double worst = 0.0, scale = 0.0;
        for (size_t k = 0; ran[i] && ran[i + 1] && k < (size_t)n * (size_t)V; k++) {
            double e = fabs((double)lg[i][k] - (double)lg[i + 1][k]);
            if (!(e <= worst)) worst = e;
            scale = fmax(scale, fabs((double)lg[i][k]));
        }
        double tol = 3e-6 * scale;
        printf("%s vs %s: max |diff| %.3g (max |logit| %.3g, tol %.3g)\n", cases[i].path, cases[i + 1].path, worst,
               scale, tol);
        char what[256];
        snprintf(what, sizeof what, "%s == %s (HF rotate-half vs GGUF interleaved Q/K) within %.3g", cases[i].path,
                 cases[i + 1].path, tol);
        CHECK(what, ran[i] && ran[i + 1] && worst <= tol);
    }
    for (int i = 0; i < 4; i++) free(lg[i]);
    free(ids);
    cJSON_Delete(golden);
    return test_report();
}
