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
#include "tokenizer/tokenizer.h" // keel_tokenizer_from_hf

#include <cJSON.h>
#include <stdlib.h>
#include <unistd.h>

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

// ---------------------------------------------------------------- helpers

static keel_tokenizer *load_shared(const char *rel) {
    char path[512];
    test_shared_path(path, sizeof path, rel);
    keel_err err;
    keel_tokenizer *t = NULL;
    if (keel_tokenizer_load(path, &t, &err) != KEEL_OK) {
        fprintf(stderr, "load %s: %s\n", path, err.msg);
        return NULL;
    }
    return t;
}

static cJSON *load_json(const char *path) {
    char *s = read_all(path, NULL);
    if (!s) return NULL;
    cJSON *j = cJSON_Parse(s);
    free(s);
    return j;
}

// ids of a JSON array
static int json_ids(const cJSON *a, int32_t *v, int cap) {
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, a) if (n < cap) v[n++] = (int32_t)it->valuedouble;
    return n;
}

static bool encode_is(const keel_tokenizer *t, const char *s, size_t len, bool add_special, bool parse_special,
                      const int32_t *want, size_t n_want, const char *what) {
    int32_t *ids = NULL;
    size_t n = 0;
    keel_err err;
    keel_status st = keel_tokenize(t, s, len, add_special, parse_special, &ids, &n, &err);
    bool ok = st == KEEL_OK && same_ids(ids, n, want, n_want);
    if (!ok) {
        fprintf(stderr, "  %s \"%.60s\" (add_special %d, parse_special %d): %s\n", what, s, add_special,
                parse_special, st ? err.msg : "ids differ");
        print_ids("want", want, n_want);
        if (!st) print_ids("got ", ids, n);
    }
    keel_free(ids);
    return ok;
}

// ---------------------------------------------------------------- HF json vs GGUF

// tokenizer.json and its GGUF twin give the same ids on llama.cpp's strings
// (all four add_special/parse_special settings), and both match HF
// tokenizers on tests/golden/hf_tokenizers_extra.json.
static void test_hf_twins(const char *json_rel, const char *gguf_rel, const char *golden_key) {
    keel_tokenizer *tj = load_shared(json_rel), *tg = load_shared(gguf_rel);
    if (!tj || !tg) {
        CHECK("tokenizer.json and GGUF twin load", false);
        keel_tokenizer_free(tj);
        keel_tokenizer_free(tg);
        return;
    }
    CHECK("same vocab size", keel_tokenizer_n_vocab(tj) == keel_tokenizer_n_vocab(tg));
    CHECK("same kind", keel_tokenizer_get_kind(tj) == keel_tokenizer_get_kind(tg));
    CHECK("same bos", keel_token_bos(tj) == keel_token_bos(tg));
    CHECK("same eos", keel_token_eos(tj) == keel_token_eos(tg));
    char path[512];
    test_shared_path(path, sizeof path, gguf_rel);
    static vcase cases[MAX_CASES];
    int n = load_vectors(path, cases), agree = 0;
    for (int i = 0; i < n; i++) {
        bool all = true;
        for (int mode = 0; mode < 4; mode++) {
            bool as = mode & 1, ps = mode & 2;
            int32_t *a = NULL, *b = NULL;
            size_t na = 0, nb = 0;
            keel_err err;
            bool ok = keel_tokenize(tj, cases[i].text, cases[i].len, as, ps, &a, &na, &err) == KEEL_OK &&
                      keel_tokenize(tg, cases[i].text, cases[i].len, as, ps, &b, &nb, &err) == KEEL_OK &&
                      same_ids(a, na, b, nb);
            if (!ok) fprintf(stderr, "  %s vs GGUF #%d mode %d differ\n", json_rel, i, mode);
            all = all && ok;
            keel_free(a);
            keel_free(b);
        }
        agree += all;
        CHECK("tokenizer.json == GGUF", all);
        free(cases[i].text);
    }
    printf("%-40s agrees with its GGUF twin on %d/%d strings x 4 modes\n", json_rel, agree, n);

    cJSON *g = load_json("tests/golden/hf_tokenizers_extra.json");
    CHECK("tests/golden/hf_tokenizers_extra.json readable", g != NULL);
    int gp = 0, gn = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(g, golden_key)) {
        const char *text = cJSON_GetObjectItem(it, "text")->valuestring;
        static int32_t want[1024];
        int nw = json_ids(cJSON_GetObjectItem(it, "ids"), want, 1024);
        bool ok = encode_is(tj, text, strlen(text), false, true, want, (size_t)nw, json_rel) &&
                  encode_is(tg, text, strlen(text), false, true, want, (size_t)nw, gguf_rel);
        nw = json_ids(cJSON_GetObjectItem(it, "ids_add_special"), want, 1024);
        ok = encode_is(tj, text, strlen(text), true, true, want, (size_t)nw, json_rel) &&
             encode_is(tg, text, strlen(text), true, true, want, (size_t)nw, gguf_rel) && ok;
        CHECK("matches HF tokenizers", ok);
        gp += ok;
        gn++;
    }
    printf("%-40s matches HF tokenizers on %d/%d extra texts (json and GGUF)\n", json_rel, gp, gn);
    cJSON_Delete(g);
    keel_tokenizer_free(tj);
    keel_tokenizer_free(tg);
}

// Llama-2's vocabulary behind a Metaspace pre-tokenizer instead of the
// Prepend/Replace normalizer: the json is rewritten here, the ids come from HF
// tokenizers (tools/golden_tokenizer_hf.py does the same rewrite).
static void test_metaspace(const char *scheme, bool split, const char *golden_key) {
    char src[512];
    test_shared_path(src, sizeof src, "models/tokenizers/llama2/tokenizer.json");
    cJSON *j = load_json(src), *g = load_json("tests/golden/hf_tokenizers_extra.json");
    if (!j || !g) {
        CHECK("llama2 tokenizer.json and golden readable", false);
        cJSON_Delete(j);
        cJSON_Delete(g);
        return;
    }
    cJSON_ReplaceItemInObject(j, "normalizer", cJSON_CreateNull());
    cJSON *pre = cJSON_CreateObject();
    cJSON_AddStringToObject(pre, "type", "Metaspace");
    cJSON_AddStringToObject(pre, "replacement", "\xe2\x96\x81");
    cJSON_AddStringToObject(pre, "prepend_scheme", scheme);
    cJSON_AddBoolToObject(pre, "split", split);
    cJSON_ReplaceItemInObject(j, "pre_tokenizer", pre);
    char path[] = "/tmp/keel-test-metaspace-XXXXXX";
    int fd = mkstemp(path);
    char *text = cJSON_PrintUnformatted(j);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    bool wrote = f && text && fwrite(text, 1, strlen(text), f) == strlen(text);
    if (f) fclose(f);
    free(text);
    cJSON_Delete(j);
    keel_err err;
    keel_tokenizer *t = NULL;
    CHECK("metaspace json written", wrote);
    CHECK("metaspace json loads", wrote && keel_tokenizer_from_hf(path, NULL, &t, &err) == KEEL_OK);
    unlink(path);
    int ok_n = 0, all_n = 0;
    const cJSON *it, *list = t ? cJSON_GetObjectItem(g, golden_key) : NULL;
    cJSON_ArrayForEach(it, list) {
        const char *s = cJSON_GetObjectItem(it, "text")->valuestring;
        int32_t want[1024];
        int nw = json_ids(cJSON_GetObjectItem(it, "ids"), want, 1024);
        bool ok = encode_is(t, s, strlen(s), false, true, want, (size_t)nw, golden_key);
        nw = json_ids(cJSON_GetObjectItem(it, "ids_add_special"), want, 1024);
        ok = encode_is(t, s, strlen(s), true, true, want, (size_t)nw, golden_key) && ok;
        CHECK("metaspace matches HF tokenizers", ok);
        ok_n += ok;
        all_n++;
    }
    CHECK("metaspace golden present", all_n > 10);
    printf("llama2 vocab, Metaspace(%s, split=%d)   matches HF tokenizers on %d/%d texts\n", scheme, split, ok_n, all_n);
    keel_tokenizer_free(t);
    cJSON_Delete(g);
}

// A tiny trained tokenizer.json with the less common features: [a, b] merges,
// Split(String), Digits, added tokens with lstrip/rstrip, a non-special added
// token, TemplateProcessing with BOS and EOS, ignore_merges.
static void test_tiny_json(const char *path, const char *golden_key) {
    keel_err err;
    keel_tokenizer *t = NULL;
    if (keel_tokenizer_load(path, &t, &err) != KEEL_OK) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        CHECK("tiny tokenizer.json loads", false);
        return;
    }
    cJSON *g = load_json("tests/golden/hf_tokenizers_extra.json");
    int ok_n = 0, all_n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(g, golden_key)) {
        const char *text = cJSON_GetObjectItem(it, "text")->valuestring;
        int32_t want[256];
        int nw = json_ids(cJSON_GetObjectItem(it, "ids"), want, 256);
        bool ok = encode_is(t, text, strlen(text), false, true, want, (size_t)nw, path);
        nw = json_ids(cJSON_GetObjectItem(it, "ids_add_special"), want, 256);
        ok = encode_is(t, text, strlen(text), true, true, want, (size_t)nw, path) && ok;
        CHECK("tiny tokenizer matches HF tokenizers", ok);
        ok_n += ok;
        all_n++;
    }
    CHECK("tiny golden present", all_n >= 8);
    printf("%-40s matches HF tokenizers on %d/%d texts\n", path, ok_n, all_n);
    // without parse_special: the special <|user|> is text, the added [[x]] is still matched
    int32_t *ids = NULL;
    size_t n = 0;
    int32_t user = -1, x = -1;
    for (int32_t i = 0; i < keel_tokenizer_n_vocab(t); i++) {
        if (strcmp(keel_token_text(t, i), "<|user|>") == 0) user = i;
        if (strcmp(keel_token_text(t, i), "[[x]]") == 0) x = i;
    }
    CHECK("tiny: added tokens present", user >= 0 && x >= 0);
    CHECK("tiny: plain text", keel_tokenize(t, "<|user|>[[x]]", 13, false, false, &ids, &n, &err) == KEEL_OK && n > 2 &&
                                  ids[0] != user && ids[n - 1] == x);
    keel_free(ids);
    CHECK("tiny: eos ends generation", keel_token_eos(t) >= 0 && keel_token_is_eog(t, keel_token_eos(t)));
    char *back = NULL;
    const char *text = "state-of-the-art 2024-01-02! naïve";
    CHECK("tiny: round trip", keel_tokenize(t, text, strlen(text), true, false, &ids, &n, &err) == KEEL_OK &&
                                  keel_detokenize(t, ids, n, false, &back, &err) == KEEL_OK && strcmp(back, text) == 0);
    keel_free(ids);
    keel_free(back);
    cJSON_Delete(g);
    keel_tokenizer_free(t);
}

// Llama-3's pre-tokenizer: a tiny tokenizer trained with it, as
// tokenizer.json (HF path) and as a GGUF with pre "llama-bpe" (GGUF path),
// on llama.cpp's 46 strings and the extra texts.
static void test_tiny_llama3(void) {
    const char *paths[] = {"tests/data/tiny_llama3_tokenizer.json", "tests/data/tiny_llama3.gguf"};
    cJSON *g = load_json("tests/golden/hf_tokenizers_extra.json");
    for (int k = 0; k < 2; k++) {
        keel_err err;
        keel_tokenizer *t = NULL;
        if (keel_tokenizer_load(paths[k], &t, &err) != KEEL_OK) {
            fprintf(stderr, "%s: %s\n", paths[k], err.msg);
            CHECK("tiny llama3 loads", false);
            continue;
        }
        int ok_n = 0, all_n = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(g, "tiny_llama3")) {
            const char *s = cJSON_GetObjectItem(it, "text")->valuestring;
            int32_t want[1024];
            int nw = json_ids(cJSON_GetObjectItem(it, "ids"), want, 1024);
            bool ok = encode_is(t, s, strlen(s), false, true, want, (size_t)nw, paths[k]);
            CHECK("tiny llama3 matches HF tokenizers", ok);
            ok_n += ok;
            all_n++;
        }
        CHECK("tiny llama3 golden present", all_n >= 46);
        printf("%-40s matches HF tokenizers on %d/%d texts\n", paths[k], ok_n, all_n);
        keel_tokenizer_free(t);
    }
    cJSON_Delete(g);
}

// ---------------------------------------------------------------- stories260K

static void test_stories260k(void) {
    keel_tokenizer *t = load_shared("models/stories260K/stories260K.gguf");
    char path[512];
    cJSON *j = load_json(test_shared_path(path, sizeof path, "models/stories260K/expected_vectors.json"));
    if (!t || !j) {
        CHECK("stories260K tokenizer and vectors load", false);
        keel_tokenizer_free(t);
        cJSON_Delete(j);
        return;
    }
    CHECK("stories260K: 512 tokens", keel_tokenizer_n_vocab(t) == 512);
    CHECK("stories260K: SPM", keel_tokenizer_get_kind(t) == KEEL_TOKENIZER_SPM);
    CHECK("stories260K: bos 1", keel_token_bos(t) == 1);
    CHECK("stories260K: eos 2 is eog", keel_token_eos(t) == 2 && keel_token_is_eog(t, 2) && !keel_token_is_eog(t, 1));
    int32_t want[512];
    int n_ok = 0, n_all = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, j) { // "prompt_greedy:..." and the empty prompt: prompt_ids
        const cJSON *p = cJSON_GetObjectItem(it, "prompt"), *ids = cJSON_GetObjectItem(it, "prompt_ids");
        if (!cJSON_IsString(p) || !ids) continue;
        int nw = json_ids(ids, want, 512);
        bool ok = encode_is(t, p->valuestring, strlen(p->valuestring), true, false, want, (size_t)nw, "stories260K");
        CHECK("stories260K prompt_ids", ok);
        n_ok += ok;
        n_all++;
    }
    const char *lists[] = {"tokenize_with_bos_add_space_prefix", "teacher_forced_nll"};
    for (int l = 0; l < 2; l++) {
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, lists[l])) {
            const char *text = cJSON_GetObjectItem(it, "text")->valuestring;
            int nw = json_ids(cJSON_GetObjectItem(it, "ids_with_bos"), want, 512);
            bool ok = encode_is(t, text, strlen(text), true, false, want, (size_t)nw, "stories260K");
            CHECK("stories260K ids_with_bos", ok);
            n_ok += ok;
            n_all++;
            // round trip, BOS dropped
            char *back = NULL;
            keel_err err;
            CHECK("stories260K decode", keel_detokenize(t, want, (size_t)nw, false, &back, &err) == KEEL_OK &&
                                            strcmp(back, text) == 0);
            keel_free(back);
        }
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "tokenize_upstream_facts")) {
        const char *text = cJSON_GetObjectItem(it, "text")->valuestring;
        int32_t *ids = NULL;
        size_t n = 0;
        keel_err err;
        CHECK("stories260K upstream", keel_tokenize(t, text, strlen(text), true, false, &ids, &n, &err) == KEEL_OK);
        const cJSON *cnt = cJSON_GetObjectItem(it, "n_tokens_with_bos");
        const cJSON *bf = cJSON_GetObjectItem(it, "byte_fallback_ids");
        bool ok = true;
        if (cnt) ok = (int)n == cnt->valueint;
        if (bf) { // "á" -> <0xC3> <0xA1>, after BOS and the space-prefix token
            int nw = json_ids(bf, want, 512);
            ok = n >= (size_t)nw && memcmp(ids + n - nw, want, (size_t)nw * sizeof *want) == 0;
        }
        CHECK("stories260K upstream facts", ok);
        n_ok += ok;
        n_all++;
        keel_free(ids);
    }
    printf("stories260K: %d/%d expected encodings\n", n_ok, n_all);
    cJSON_Delete(j);
    keel_tokenizer_free(t);
}

// ---------------------------------------------------------------- SmolLM2

static void test_smollm2(void) {
    char path[512];
    test_cache_path(path, sizeof path, "SmolLM2-135M-Instruct.Q4_1.gguf");
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("smollm2: skipped (%s absent)\n", path);
        return;
    }
    fclose(f);
    keel_err err;
    keel_tokenizer *t = NULL;
    CHECK("smollm2 tokenizer loads", keel_tokenizer_load(path, &t, &err) == KEEL_OK);
    cJSON *g = load_json("tests/golden/smollm2_tokens.json");
    CHECK("tests/golden/smollm2_tokens.json readable", g != NULL);
    if (!t || !g) {
        keel_tokenizer_free(t);
        cJSON_Delete(g);
        return;
    }
    CHECK("smollm2: BPE", keel_tokenizer_get_kind(t) == KEEL_TOKENIZER_BPE);
    CHECK("smollm2: 49152 tokens", keel_tokenizer_n_vocab(t) == 49152);
    CHECK("smollm2: bos 1, eos 2", keel_token_bos(t) == 1 && keel_token_eos(t) == 2);
    CHECK("smollm2: <|im_end|> ends generation", keel_token_is_eog(t, 2));
    CHECK("smollm2: <|endoftext|> ends generation", keel_token_is_eog(t, 0));
    CHECK("smollm2: <|im_start|> does not", !keel_token_is_eog(t, 1));
    CHECK("smollm2: ChatML", keel_tokenizer_chat_format(t) == KEEL_CHAT_CHATML && keel_tokenizer_has_chat_template(t));
    int32_t want[1024];
    int ok_n = 0, all_n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(g, "encode")) {
        const char *text = cJSON_GetObjectItem(it, "text")->valuestring;
        int nw = json_ids(cJSON_GetObjectItem(it, "ids"), want, 1024);
        // the tokenizer adds no BOS, so add_special changes nothing
        bool ok = encode_is(t, text, strlen(text), false, true, want, (size_t)nw, "smollm2") &&
                  encode_is(t, text, strlen(text), true, true, want, (size_t)nw, "smollm2");
        CHECK("smollm2 golden ids", ok);
        char *back = NULL;
        CHECK("smollm2 decode (render_special)",
              keel_detokenize(t, want, (size_t)nw, true, &back, &err) == KEEL_OK && strcmp(back, text) == 0);
        keel_free(back);
        ok_n += ok;
        all_n++;
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(g, "chat")) {
        keel_chat_msg msgs[8];
        size_t n = 0;
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItem(it, "messages")) if (n < 8) {
            msgs[n].role = cJSON_GetObjectItem(m, "role")->valuestring;
            msgs[n].content = cJSON_GetObjectItem(m, "content")->valuestring;
            n++;
        }
        bool gen = cJSON_IsTrue(cJSON_GetObjectItem(it, "add_generation_prompt"));
        const char *want_text = cJSON_GetObjectItem(it, "text")->valuestring;
        char *text = NULL;
        bool ok = keel_chat_apply(t, msgs, n, gen, &text, &err) == KEEL_OK && strcmp(text, want_text) == 0;
        if (!ok) fprintf(stderr, "  chat: got \"%s\"\n  want \"%s\"\n", text ? text : err.msg, want_text);
        int nw = json_ids(cJSON_GetObjectItem(it, "ids"), want, 1024);
        ok = ok && encode_is(t, text, strlen(text), true, true, want, (size_t)nw, "smollm2 chat");
        CHECK("smollm2 chat prompt == apply_chat_template(tokenize=True)", ok);
        ok_n += ok;
        all_n++;
        keel_free(text);
    }
    // without parse_special the markers are plain text
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK("smollm2 plain", keel_tokenize(t, "<|im_end|>", 10, false, false, &ids, &n, &err) == KEEL_OK);
    CHECK("smollm2: <|im_end|> as text is several tokens", n > 1 && ids[0] != 2);
    keel_free(ids);
    printf("smollm2: %d/%d golden encodings and chat prompts\n", ok_n, all_n);
    cJSON_Delete(g);
    keel_tokenizer_free(t);
}

// ---------------------------------------------------------------- errors, pieces, chat

static void test_errors_and_pieces(void) {
    keel_tokenizer *t = load_shared("models/llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    keel_tokenizer *g = load_shared("models/llama.cpp-vocab/ggml-vocab-gpt-2.gguf");
    if (!t || !g) {
        CHECK("vocabs load", false);
        keel_tokenizer_free(t);
        keel_tokenizer_free(g);
        return;
    }
    keel_err err;
    int32_t *ids = NULL;
    size_t n = 7;
    // invalid UTF-8 names the byte offset
    CHECK("invalid utf-8 rejected", keel_tokenize(t, "ab\xff" "cd", 5, false, false, &ids, &n, &err) == KEEL_ERR_INVALID);
    CHECK("message names the offset", strstr(err.msg, "offset 2") != NULL);
    CHECK("outputs cleared", ids == NULL && n == 0);
    CHECK("truncated sequence rejected", keel_tokenize(g, "ok\xe2\x96", 4, false, false, &ids, &n, &err) == KEEL_ERR_INVALID &&
                                             strstr(err.msg, "offset 2") != NULL);
    CHECK("overlong rejected", keel_tokenize(g, "\xc0\xaf", 2, false, false, &ids, &n, &err) == KEEL_ERR_INVALID);
    CHECK("surrogate rejected", keel_tokenize(g, "\xed\xa0\x80", 3, false, false, &ids, &n, &err) == KEEL_ERR_INVALID);
    CHECK("NULL tokenizer", keel_tokenize(NULL, "a", 1, false, false, &ids, &n, &err) == KEEL_ERR_INVALID);
    // empty text
    CHECK("empty", keel_tokenize(t, "", 0, false, false, &ids, &n, &err) == KEEL_OK && n == 0);
    keel_free(ids);
    CHECK("empty + BOS", keel_tokenize(t, "", 0, true, false, &ids, &n, &err) == KEEL_OK && n == 1 && ids[0] == 1);
    keel_free(ids);
    // embedded NUL is text like any other
    CHECK("NUL byte", keel_tokenize(g, "a\0b", 3, false, false, &ids, &n, &err) == KEEL_OK && n == 3);
    keel_free(ids);
    // special tokens only with parse_special
    CHECK("</s> parsed", keel_tokenize(t, "</s>", 4, false, true, &ids, &n, &err) == KEEL_OK && n == 1 && ids[0] == 2);
    keel_free(ids);
    CHECK("</s> as text", keel_tokenize(t, "</s>", 4, false, false, &ids, &n, &err) == KEEL_OK && n > 1);
    keel_free(ids);
    CHECK("gpt-2 <|endoftext|> parsed",
          keel_tokenize(g, "a<|endoftext|>", 14, false, true, &ids, &n, &err) == KEEL_OK && n == 2 && ids[1] == 50256);
    keel_free(ids);
    // detokenize
    char *s = NULL;
    int32_t bad[] = {5, 32000};
    CHECK("detokenize out of range", keel_detokenize(t, bad, 2, false, &s, &err) == KEEL_ERR_INVALID && s == NULL);
    CHECK("message names the id", strstr(err.msg, "32000") != NULL);
    int32_t seq[] = {1, 15043, 2}; // <s> ▁Hello </s>
    CHECK("detokenize skips control", keel_detokenize(t, seq, 3, false, &s, &err) == KEEL_OK && strcmp(s, "Hello") == 0);
    keel_free(s);
    CHECK("detokenize renders control", keel_detokenize(t, seq, 3, true, &s, &err) == KEEL_OK &&
                                            strcmp(s, "<s> Hello</s>") == 0);
    keel_free(s);
    // pieces
    char buf[16];
    CHECK("piece ▁Hello", keel_token_to_piece(t, 15043, false, buf, sizeof buf) == 6 && memcmp(buf, " Hello", 6) == 0);
    CHECK("piece <0x0A>", keel_token_to_piece(t, 13, false, buf, sizeof buf) == 1 && buf[0] == '\n');
    CHECK("piece control hidden", keel_token_to_piece(t, 1, false, buf, sizeof buf) == 0);
    CHECK("piece control shown", keel_token_to_piece(t, 1, true, buf, sizeof buf) == 3 && memcmp(buf, "<s>", 3) == 0);
    memset(buf, 'x', sizeof buf);
    CHECK("piece small buffer: needed length", keel_token_to_piece(t, 15043, false, buf, 2) == 6);
    CHECK("piece small buffer: no overrun", buf[2] == 'x');
    CHECK("piece out of range", keel_token_to_piece(t, -1, true, buf, sizeof buf) == 0);
    CHECK("gpt-2 piece Ġthe", keel_token_to_piece(g, 262, false, buf, sizeof buf) == 4 && memcmp(buf, " the", 4) == 0);
    CHECK("token text", keel_token_text(t, 15043) && strcmp(keel_token_text(t, 15043), "\xe2\x96\x81Hello") == 0);
    CHECK("token text out of range", keel_token_text(t, 32000) == NULL && keel_token_text(t, -5) == NULL);
    CHECK("gpt-2 eog", keel_token_is_eog(g, 50256) && !keel_token_is_eog(g, 262) && !keel_token_is_eog(g, 99999));
    // chat without template
    char *out = NULL;
    keel_chat_msg m = {"user", "hi"};
    CHECK("no template: none", keel_tokenizer_chat_format(t) == KEEL_CHAT_NONE && !keel_tokenizer_has_chat_template(t));
    CHECK("no template: unsupported", keel_chat_apply(t, &m, 1, true, &out, &err) == KEEL_ERR_UNSUPPORTED && !out);
    CHECK("format names", strcmp(keel_chat_format_name(KEEL_CHAT_CHATML), "chatml") == 0 &&
                              strcmp(keel_chat_format_name(KEEL_CHAT_LLAMA2), "llama2") == 0 &&
                              strcmp(keel_chat_format_name(KEEL_CHAT_NONE), "none") == 0);
    keel_tokenizer_free(t);
    keel_tokenizer_free(g);

    // phi-3 has a template we do not know
    t = load_shared("models/llama.cpp-vocab/ggml-vocab-phi-3.gguf");
    CHECK("phi-3 template unknown", t && keel_tokenizer_has_chat_template(t) &&
                                        keel_tokenizer_chat_format(t) == KEEL_CHAT_NONE &&
                                        keel_chat_apply(t, &m, 1, true, &out, &err) == KEEL_ERR_UNSUPPORTED);
    CHECK("phi-3 <|end|> ends generation", t && keel_token_is_eog(t, 32007) && keel_token_is_eog(t, 32000));
    keel_tokenizer_free(t);

    // loading errors
    t = (keel_tokenizer *)&err; // must be reset to NULL on failure
    CHECK("missing file", keel_tokenizer_load("tests/data/no-such-file.gguf", &t, &err) == KEEL_ERR_IO && t == NULL);
    CHECK("missing json", keel_tokenizer_load("tests/data/no-such-tokenizer.json", &t, &err) == KEEL_ERR_IO);
    CHECK("not a tokenizer json",
          keel_tokenizer_load("tests/data/llama2_chat_tokenizer_config.json", &t, &err) == KEEL_ERR_FORMAT && t == NULL);
    keel_tokenizer_free(NULL);
}

// The fuzz seeds double as small hand-made vocabularies (made by
// tools/make_tokenizer_fuzz_seeds.py): good ones load and behave, bad ones
// fail with the right code and a message naming the problem.
static void test_seed_vocabs(void) {
    keel_err err;
    keel_tokenizer *t = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    char *out = NULL;
    keel_chat_msg m[2] = {{"user", "Hello world"}, {"assistant", "hi"}};
    // SPM: pieces by score, byte fallback, Llama-2 template
    CHECK("tiny_spm loads", keel_tokenizer_load("tests/fuzz/corpus/tokenizer_gguf/tiny_spm.gguf", &t, &err) == KEEL_OK);
    if (t) {
        // best-scored pairs first: "▁H" "el" "lo" (no "▁Hel" piece to go on),
        // "▁w" "or" "ld"; "?" is not a piece: <0x3F> = 3 + 0x3F
        int32_t want[] = {1, 260, 261, 262, 264, 265, 266, 3 + 0x3f};
        CHECK("tiny_spm encode", encode_is(t, "Hello world?", 12, true, false, want, 8, "tiny_spm"));
        CHECK("tiny_spm llama2", keel_tokenizer_chat_format(t) == KEEL_CHAT_LLAMA2);
        CHECK("tiny_spm chat", keel_chat_apply(t, m, 2, true, &out, &err) == KEEL_OK &&
                                   strcmp(out, "<s>[INST] Hello world [/INST] hi </s>") == 0);
        keel_free(out);
        CHECK("tiny_spm: 0xFFFFFFFF id means none", keel_token_bos(t) == 1);
        keel_tokenizer_free(t);
    }
    // byte-level BPE with merges, smollm pre-tokenizer, ChatML with a default system turn
    CHECK("tiny_bpe loads", keel_tokenizer_load("tests/fuzz/corpus/tokenizer_gguf/tiny_bpe_smollm.gguf", &t, &err) == KEEL_OK);
    if (t) {
        int32_t hello = 262, world = 267; // "Hello", "Ġworld"
        int32_t want[] = {1, hello, world, 2};
        CHECK("tiny_bpe encode", encode_is(t, "<|im_start|>Hello world<|im_end|>", 33, false, true, want, 4, "tiny_bpe"));
        CHECK("tiny_bpe chat", keel_chat_apply(t, m, 1, true, &out, &err) == KEEL_OK &&
                                   strcmp(out, "<|im_start|>system\nYou are a fuzzer<|im_end|>\n<|im_start|>user\nHello "
                                               "world<|im_end|>\n<|im_start|>assistant\n") == 0);
        keel_free(out);
        CHECK("tiny_bpe: digits one by one", keel_tokenize(t, "123", 3, false, false, &ids, &n, &err) == KEEL_OK && n == 3);
        keel_free(ids);
        keel_tokenizer_free(t);
    }
    t = (keel_tokenizer *)&err;
    CHECK("unknown pre-tokenizer", keel_tokenizer_load("tests/fuzz/corpus/tokenizer_gguf/tiny_bpe_bad_pre.gguf", &t, &err) ==
                                           KEEL_ERR_UNSUPPORTED && !t && strstr(err.msg, "no-such-pre"));
    CHECK("merge without a space", keel_tokenizer_load("tests/fuzz/corpus/tokenizer_gguf/tiny_bpe_bad_merge.gguf", &t, &err) ==
                                           KEEL_ERR_FORMAT && strstr(err.msg, "merges"));
    // tokenizer.json variants
    CHECK("bytelevel.json loads", keel_tokenizer_load("tests/fuzz/corpus/tokenizer_json/bytelevel.json", &t, &err) == KEEL_OK);
    if (t) {
        int32_t want[] = {1, 262, 267, 2}; // TemplateProcessing: <|im_start|> $A <|im_end|>
        CHECK("bytelevel.json encode", encode_is(t, "Hello world", 11, true, false, want, 4, "bytelevel.json"));
        keel_tokenizer_free(t);
    }
    CHECK("spm_as_bpe.json loads", keel_tokenizer_load("tests/fuzz/corpus/tokenizer_json/spm_as_bpe.json", &t, &err) == KEEL_OK);
    if (t) {
        int32_t want[] = {1, 260, 261, 262, 276}; // <s> ▁H el lo ! ("▁Hel" is not in the vocab)
        CHECK("spm_as_bpe.json encode", encode_is(t, "Hello!", 6, true, false, want, 5, "spm_as_bpe.json"));
        int32_t want2[] = {260, 3 + 0xc3, 3 + 0xa9}; // é is not a piece: bytes
        CHECK("spm_as_bpe.json byte fallback", encode_is(t, "H\xc3\xa9", 3, false, false, want2, 3, "spm_as_bpe.json"));
        CHECK("spm_as_bpe.json is SPM", keel_tokenizer_get_kind(t) == KEEL_TOKENIZER_SPM);
        keel_tokenizer_free(t);
    }
    CHECK("WordPiece unsupported", keel_tokenizer_load("tests/fuzz/corpus/tokenizer_json/bad_model_type.json", &t, &err) ==
                                           KEEL_ERR_UNSUPPORTED && strstr(err.msg, "WordPiece"));
    CHECK("bad id", keel_tokenizer_load("tests/fuzz/corpus/tokenizer_json/bad_id.json", &t, &err) == KEEL_ERR_FORMAT);
    CHECK("truncated json", keel_tokenizer_load("tests/fuzz/corpus/tokenizer_json/truncated.json", &t, &err) == KEEL_ERR_FORMAT &&
                                strstr(err.msg, "invalid JSON"));
}

// Llama-2 chat: tokenizer.json + a tokenizer_config.json with Meta's template.
static void test_llama2_chat(void) {
    char tj[512];
    test_shared_path(tj, sizeof tj, "models/tokenizers/llama2/tokenizer.json");
    keel_err err;
    keel_tokenizer *t = NULL;
    if (keel_tokenizer_from_hf(tj, "tests/data/llama2_chat_tokenizer_config.json", &t, &err) != KEEL_OK) {
        fprintf(stderr, "llama2 json + config: %s\n", err.msg);
        CHECK("llama2 tokenizer.json + config load", false);
        return;
    }
    CHECK("llama2 format", keel_tokenizer_chat_format(t) == KEEL_CHAT_LLAMA2);
    keel_chat_msg m[] = {{"system", "Be brief."}, {"user", " Hi "}, {"assistant", "Hello!\n"}, {"user", "Bye"}};
    char *out = NULL;
    // expected strings rendered by jinja2 from the template in the config
    CHECK("llama2 render", keel_chat_apply(t, m, 4, true, &out, &err) == KEEL_OK &&
                               strcmp(out, "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi [/INST] Hello! </s><s>[INST] Bye [/INST]") == 0);
    keel_free(out);
    CHECK("llama2 render, no system", keel_chat_apply(t, m + 1, 1, false, &out, &err) == KEEL_OK &&
                                          strcmp(out, "<s>[INST] Hi [/INST]") == 0);
    keel_free(out);
    keel_chat_msg badm[] = {{"user", "a"}, {"user", "b"}};
    CHECK("llama2 roles must alternate", keel_chat_apply(t, badm, 2, true, &out, &err) == KEEL_ERR_INVALID && !out);
    keel_chat_msg nullm = {"user", NULL};
    CHECK("NULL content", keel_chat_apply(t, &nullm, 1, true, &out, &err) == KEEL_ERR_INVALID);
    keel_tokenizer_free(t);
}

int main(void) {
    static const char *vocabs[] = {"gpt-2", "llama-spm", "phi-3", "deepseek-coder", "deepseek-llm",
                                   "falcon", "mpt", "refact", "starcoder"};
    for (size_t v = 0; v < sizeof vocabs / sizeof vocabs[0]; v++) {
        int total;
        int pass = run_vocab(vocabs[v], &total);
        CHECK("vocab vectors present", total == 46 && pass <= total);
    }
    test_hf_twins("models/tokenizers/gpt2/tokenizer.json", "models/llama.cpp-vocab/ggml-vocab-gpt-2.gguf", "gpt2");
    test_hf_twins("models/tokenizers/llama2/tokenizer.json", "models/llama.cpp-vocab/ggml-vocab-llama-spm.gguf",
                  "llama2");
    test_metaspace("first", false, "llama2_metaspace_first_nosplit");
    test_metaspace("always", true, "llama2_metaspace_always_split");
    test_tiny_json("tests/data/tiny_bpe_tokenizer.json", "tiny");
    test_tiny_json("tests/data/tiny_bpe_tokenizer_ignore_merges.json", "tiny_ignore_merges");
    test_tiny_llama3();
    test_stories260k();
    test_smollm2();
    test_errors_and_pieces();
    test_llama2_chat();
    test_seed_vocabs();
    return test_report();
}
