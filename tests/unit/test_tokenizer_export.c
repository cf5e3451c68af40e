// SPDX-License-Identifier: MIT
// test_tokenizer_export.c — keel_tokenizer_write_hf (src/tokenizer/hf_write.c):
// a GGUF byte-level BPE tokenizer written as tokenizer.json +
// tokenizer_config.json and read back with keel_tokenizer_load must encode
// exactly like the original: llama.cpp's 46 gpt-2 vectors
// (../shared/models/llama.cpp-vocab/ggml-vocab-gpt-2.gguf.inp) and SmolLM2's
// golden texts and ChatML prompts (tests/golden/smollm2_tokens.json; skipped
// when the SmolLM2 GGUF is not in the cache). SentencePiece: UNSUPPORTED.
// HF tokenizers' view of the same files: tools/check_tokenizer_export.py.
#include "test.h"
#include "keel.h"
#include "tokenizer/tokenizer.h"
#include <cJSON.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    if (b) b[n] = 0;
    fclose(f);
    return b;
}

// Same ids from both tokenizers, for add_special and parse_special on and off.
static bool same_encoding(const keel_tokenizer *a, const keel_tokenizer *b, const char *text, size_t len) {
    for (int m = 0; m < 4; m++) {
        int32_t *ia = NULL, *ib = NULL;
        size_t na = 0, nb = 0;
        keel_err err;
        bool ok = keel_tokenize(a, text, len, m & 1, m & 2, &ia, &na, &err) == KEEL_OK &&
                  keel_tokenize(b, text, len, m & 1, m & 2, &ib, &nb, &err) == KEEL_OK && na == nb &&
                  (na == 0 || memcmp(ia, ib, na * sizeof *ia) == 0);
        keel_free(ia);
        keel_free(ib);
        if (!ok) {
            fprintf(stderr, "  mismatch (mode %d) on \"%.60s\"\n", m, text);
            return false;
        }
    }
    return true;
}

// Write t into a fresh directory (KEEL_TOKEXPORT_KEEP/<name> when set, for
// tools/check_tokenizer_export.py), reload it; NULL on failure.
static keel_tokenizer *roundtrip(const keel_tokenizer *t, const char *name, char *dir, size_t cap) {
    const char *keep = getenv("KEEL_TOKEXPORT_KEEP");
    if (keep && *keep) {
        mkdir(keep, 0777);
        snprintf(dir, cap, "%s/%s", keep, name);
        mkdir(dir, 0777);
    } else {
        snprintf(dir, cap, "/tmp/keel-tokexport-XXXXXX");
        if (!mkdtemp(dir)) return NULL;
    }
    keel_err err;
    keel_status st = keel_tokenizer_write_hf(t, dir, &err);
    CHECK("write_hf ok", st == KEEL_OK);
    if (st) { fprintf(stderr, "  %s\n", err.msg); return NULL; }
    char p[600];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    keel_tokenizer *r = NULL;
    st = keel_tokenizer_load(p, &r, &err);
    CHECK("written tokenizer.json reloads", st == KEEL_OK && r);
    if (st) fprintf(stderr, "  %s\n", err.msg);
    return r;
}

static void rm_dir(const char *dir) {
    const char *keep = getenv("KEEL_TOKEXPORT_KEEP");
    if (keep && *keep) return;
    char p[600];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    unlink(p);
    rmdir(dir);
}

static void same_meta(const keel_tokenizer *t, const keel_tokenizer *r, const char *what) {
    bool ok = keel_tokenizer_n_vocab(t) == keel_tokenizer_n_vocab(r) && keel_token_bos(t) == keel_token_bos(r) &&
              keel_token_eos(t) == keel_token_eos(r) && keel_tokenizer_get_kind(r) == KEEL_TOKENIZER_BPE &&
              keel_tokenizer_chat_format(t) == keel_tokenizer_chat_format(r);
    if (!ok) fprintf(stderr, "  %s: n_vocab/bos/eos/kind/chat format differ\n", what);
    CHECK("n_vocab, bos, eos, chat format kept", ok);
}

static void test_gpt2(void) {
    char path[512], dir[600];
    test_shared_path(path, sizeof path, "models/llama.cpp-vocab/ggml-vocab-gpt-2.gguf");
    keel_tokenizer *t = NULL;
    keel_err err;
    if (keel_tokenizer_load(path, &t, &err) != KEEL_OK) {
        printf("gpt-2: skipped (%s)\n", err.msg);
        return;
    }
    keel_tokenizer *r = roundtrip(t, "gpt-2", dir, sizeof dir);
    char ip[600];
    snprintf(ip, sizeof ip, "%s.inp", path);
    char *inp = read_all(ip);
    CHECK("gpt-2 .inp readable", inp != NULL);
    if (r && inp) {
        same_meta(t, r, "gpt-2");
        static const char sep[] = "\n__ggml_vocab_test__\n";
        int n = 0, pass = 0;
        for (char *s = inp, *q; (q = strstr(s, sep)); s = q + strlen(sep)) {
            pass += same_encoding(t, r, s, (size_t)(q - s));
            n++;
        }
        CHECK("gpt-2: 46 strings", n == 46);
        CHECK("gpt-2: every string encodes the same after export", pass == n);
        CHECK("gpt-2: <|endoftext|> special", same_encoding(t, r, "a<|endoftext|>b", 15));
        printf("gpt-2: %d/%d strings identical after export\n", pass, n);
    }
    free(inp);
    keel_tokenizer_free(r);
    keel_tokenizer_free(t);
    rm_dir(dir);
}

static void test_smollm2(void) {
    char path[512], dir[600];
    test_cache_path(path, sizeof path, "SmolLM2-135M-Instruct.Q4_1.gguf");
    if (access(path, R_OK) != 0) {
        printf("smollm2: skipped (%s absent)\n", path);
        return;
    }
    keel_tokenizer *t = NULL;
    keel_err err;
    CHECK("smollm2 loads", keel_tokenizer_load(path, &t, &err) == KEEL_OK);
    if (!t) return;
    keel_tokenizer *r = roundtrip(t, "smollm2", dir, sizeof dir);
    char *gj = read_all("tests/golden/smollm2_tokens.json");
    cJSON *g = gj ? cJSON_Parse(gj) : NULL;
    free(gj);
    CHECK("golden readable", g != NULL);
    if (r && g) {
        same_meta(t, r, "smollm2");
        int n = 0, pass = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(g, "encode")) {
            const char *text = cJSON_GetObjectItem(it, "text")->valuestring;
            pass += same_encoding(t, r, text, strlen(text));
            n++;
        }
        CHECK("smollm2: golden texts encode the same after export", n > 0 && pass == n);
        int cn = 0, cpass = 0;
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(g, "chat")) {
            keel_chat_msg msgs[8];
            size_t nm = 0;
            const cJSON *m;
            cJSON_ArrayForEach(m, cJSON_GetObjectItem(it, "messages")) if (nm < 8) {
                msgs[nm].role = cJSON_GetObjectItem(m, "role")->valuestring;
                msgs[nm].content = cJSON_GetObjectItem(m, "content")->valuestring;
                nm++;
            }
            bool gen = cJSON_IsTrue(cJSON_GetObjectItem(it, "add_generation_prompt"));
            char *a = NULL, *b = NULL;
            bool ok = keel_chat_apply(t, msgs, nm, gen, &a, &err) == KEEL_OK &&
                      keel_chat_apply(r, msgs, nm, gen, &b, &err) == KEEL_OK && strcmp(a, b) == 0 &&
                      same_encoding(t, r, b, strlen(b));
            cpass += ok;
            cn++;
            keel_free(a);
            keel_free(b);
        }
        CHECK("smollm2: chat prompts render and encode the same", cn > 0 && cpass == cn);
        printf("smollm2: %d/%d texts, %d/%d chat prompts identical after export\n", pass, n, cpass, cn);
    }
    cJSON_Delete(g);
    keel_tokenizer_free(r);
    keel_tokenizer_free(t);
    rm_dir(dir);
}

static void test_spm(void) {
    char path[512];
    test_shared_path(path, sizeof path, "models/llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    keel_tokenizer *t = NULL;
    keel_err err;
    if (keel_tokenizer_load(path, &t, &err) != KEEL_OK) {
        printf("llama-spm: skipped (%s)\n", err.msg);
        return;
    }
    CHECK("SentencePiece export: UNSUPPORTED",
          keel_tokenizer_write_hf(t, "/nonexistent-keel-dir", &err) == KEEL_ERR_UNSUPPORTED &&
              strstr(err.msg, "SentencePiece"));
    keel_tokenizer_free(t);
}

int main(void) {
    test_gpt2();
    test_smollm2();
    test_spm();
    return test_report();
}
