// test_gguf.c — the GGUF reader (src/io/gguf.c) and dtype sizes (src/io/dtype.c):
// real files (stories260K with its weights checked against stories260K.bin, the
// F16 random Llama, vocab-only files, SmolLM2 Q4_1 when cached), the handcrafted
// corpus of tests/fuzz/corpus/gguf (valid_* open, bad_* fail with the right
// status and a message naming the file; written by tools/make_bad_files.py),
// typed getters, and OOM: failing allocation N = 1, 2, ... until open succeeds.
#include "io/io.h"
#include "test.h"
#include "corpus_check.h"

#include <dirent.h>
#include <inttypes.h>

#define CORPUS "tests/fuzz/corpus/gguf"

static bool has(const char *msg, const char *sub) { return strstr(msg, sub) != NULL; }

static bool str_eq(const char *s, size_t len, const char *want) {
    return s && len == strlen(want) && memcmp(s, want, len) == 0;
}

// ---- dtype ------------------------------------------------------------------------

static void test_dtype(void) {
    size_t n = 0;
    CHECK("name F32", strcmp(keel_dtype_name(KEEL_DTYPE_F32), "F32") == 0);
    CHECK("name Q4_1", strcmp(keel_dtype_name(KEEL_DTYPE_Q4_1), "Q4_1") == 0);
    CHECK("name BF16", strcmp(keel_dtype_name(KEEL_DTYPE_BF16), "BF16") == 0);
    CHECK("name unknown", strcmp(keel_dtype_name((keel_dtype)12), "?") == 0);
    CHECK("known", keel_dtype_known(0) && keel_dtype_known(8) && keel_dtype_known(30));
    CHECK("unknown", !keel_dtype_known(12) && !keel_dtype_known(4) && !keel_dtype_known(31));
    CHECK("block", keel_dtype_block(KEEL_DTYPE_Q8_0) == 32 && keel_dtype_block(KEEL_DTYPE_F16) == 1 &&
                       keel_dtype_block((keel_dtype)99) == 0);
    int64_t ne[4] = {64, 3, 2, 1};
    CHECK("nbytes F32", keel_dtype_nbytes(KEEL_DTYPE_F32, ne, &n) && n == 64 * 3 * 2 * 4);
    CHECK("nbytes BF16", keel_dtype_nbytes(KEEL_DTYPE_BF16, ne, &n) && n == 64 * 3 * 2 * 2);
    CHECK("nbytes Q4_0", keel_dtype_nbytes(KEEL_DTYPE_Q4_0, ne, &n) && n == 2 * 18 * 6);
    CHECK("nbytes Q4_1", keel_dtype_nbytes(KEEL_DTYPE_Q4_1, ne, &n) && n == 2 * 20 * 6);
    CHECK("nbytes Q8_0", keel_dtype_nbytes(KEEL_DTYPE_Q8_0, ne, &n) && n == 2 * 34 * 6);
    int64_t odd[4] = {33, 1, 1, 1};
    CHECK("block multiple", !keel_dtype_nbytes(KEEL_DTYPE_Q8_0, odd, &n));
    int64_t zero[4] = {32, 0, 1, 1};
    CHECK("zero dim", !keel_dtype_nbytes(KEEL_DTYPE_F32, zero, &n));
    int64_t big[4] = {INT64_MAX, 4, 1, 1};
    CHECK("overflow", !keel_dtype_nbytes(KEEL_DTYPE_F32, big, &n));
    CHECK("unknown type", !keel_dtype_nbytes((keel_dtype)12, ne, &n));
}

// ---- stories260K -------------------------------------------------------------------

// llama2.c legacy checkpoint: 7 int32 config, then f32 arrays in this order.
static void check_against_bin(const keel_gguf *g) {
    char path[512];
    char *bin = NULL;
    size_t len = 0;
    keel_err e;
    test_shared_path(path, sizeof path, "models/stories260K/stories260K.bin");
    if (keel_read_file(path, &bin, &len, &e) != KEEL_OK) {
        CHECK("read stories260K.bin", 0);
        return;
    }
    CHECK("bin size", len == 1056540);
    if (len != 1056540) {
        keel_free(bin);
        return;
    }
    const int dim = 64, hid = 172, L = 5, V = 512, kvd = 32;
    const float *w = (const float *)(void *)(bin + 28);
    size_t emb = 0, rms_att = emb + (size_t)V * dim, wq = rms_att + (size_t)L * dim;
    size_t wk = wq + (size_t)L * dim * dim, wv = wk + (size_t)L * dim * kvd, wo = wv + (size_t)L * dim * kvd;
    size_t rms_ffn = wo + (size_t)L * dim * dim, w1 = rms_ffn + (size_t)L * dim;
    size_t w2 = w1 + (size_t)L * hid * dim, w3 = w2 + (size_t)L * hid * dim, rms_final = w3 + (size_t)L * hid * dim;
    struct { const char *name; size_t at, n; } list[] = {
        {"token_embd.weight", emb, (size_t)V * dim},
        {"output.weight", emb, (size_t)V * dim},
        {"output_norm.weight", rms_final, (size_t)dim},
    };
    int same = 0, total = 0;
    for (size_t k = 0; k < sizeof list / sizeof list[0]; k++) {
        const keel_tensor_info *t = keel_gguf_find_tensor(g, list[k].name);
        total++;
        same += t && t->nbytes == list[k].n * 4 && memcmp(t->data, w + list[k].at, t->nbytes) == 0;
    }
    for (int l = 0; l < L; l++) {
        struct { const char *suffix; size_t at, n; } per[] = {
            {"attn_norm", rms_att + (size_t)l * dim, (size_t)dim},
            {"attn_q", wq + (size_t)l * dim * dim, (size_t)dim * dim},
            {"attn_k", wk + (size_t)l * dim * kvd, (size_t)dim * kvd},
            {"attn_v", wv + (size_t)l * dim * kvd, (size_t)dim * kvd},
            {"attn_output", wo + (size_t)l * dim * dim, (size_t)dim * dim},
            {"ffn_norm", rms_ffn + (size_t)l * dim, (size_t)dim},
            {"ffn_gate", w1 + (size_t)l * hid * dim, (size_t)hid * dim},
            {"ffn_down", w2 + (size_t)l * hid * dim, (size_t)hid * dim},
            {"ffn_up", w3 + (size_t)l * hid * dim, (size_t)hid * dim},
        };
        for (size_t k = 0; k < sizeof per / sizeof per[0]; k++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, per[k].suffix);
            const keel_tensor_info *t = keel_gguf_find_tensor(g, name);
            total++;
            same += t && t->type == KEEL_DTYPE_F32 && t->nbytes == per[k].n * 4 &&
                    memcmp(t->data, w + per[k].at, t->nbytes) == 0;
        }
    }
    CHECK("all 48 tensors bit-identical to stories260K.bin", same == 48 && total == 48);
    keel_free(bin);
}

static void test_stories(void) {
    char path[512];
    keel_gguf *g = NULL;
    keel_err e = {0};
    test_shared_path(path, sizeof path, "models/stories260K/stories260K.gguf");
    keel_status st = keel_gguf_open(path, &g, &e);
    CHECK("stories260K opens", st == KEEL_OK);
    if (st) {
        fprintf(stderr, "  %s\n", e.msg);
        return;
    }
    CHECK("version 3", keel_gguf_version(g) == 3);
    CHECK("alignment 32", keel_gguf_alignment(g) == 32);
    CHECK("19 kv", keel_gguf_n_kv(g) == 19);
    CHECK("48 tensors", keel_gguf_n_tensors(g) == 48);
    CHECK("path kept", strcmp(keel_gguf_path(g), path) == 0);
    const char *s;
    size_t len;
    uint32_t u = 0;
    float f = 0;
    int64_t i64 = 0;
    CHECK("arch", keel_gguf_get_str(g, "general.architecture", false, &s, &len, &e) == KEEL_OK &&
                      str_eq(s, len, "llama"));
    CHECK("tokenizer model", keel_gguf_get_str(g, "tokenizer.ggml.model", false, &s, &len, &e) == KEEL_OK &&
                                 str_eq(s, len, "llama"));
    CHECK("context_length 2048", keel_gguf_get_u32(g, "llama.context_length", false, &u, &e) == KEEL_OK && u == 2048);
    CHECK("embedding 64", keel_gguf_get_u32(g, "llama.embedding_length", false, &u, &e) == KEEL_OK && u == 64);
    CHECK("ffn 172", keel_gguf_get_u32(g, "llama.feed_forward_length", false, &u, &e) == KEEL_OK && u == 172);
    CHECK("blocks 5", keel_gguf_get_u32(g, "llama.block_count", false, &u, &e) == KEEL_OK && u == 5);
    CHECK("heads 8", keel_gguf_get_u32(g, "llama.attention.head_count", false, &u, &e) == KEEL_OK && u == 8);
    CHECK("kv heads 4", keel_gguf_get_u32(g, "llama.attention.head_count_kv", false, &u, &e) == KEEL_OK && u == 4);
    CHECK("rope dims 8", keel_gguf_get_u32(g, "llama.rope.dimension_count", false, &u, &e) == KEEL_OK && u == 8);
    CHECK("eps", keel_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", false, &f, &e) == KEEL_OK);
    CHECK_CLOSE("eps 1e-5", f, 1e-5, 1e-12);
    CHECK("bos 1", keel_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", false, &u, &e) == KEEL_OK && u == 1);
    CHECK("eos 2", keel_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", false, &u, &e) == KEEL_OK && u == 2);
    CHECK("unk 0", keel_gguf_get_u32(g, "tokenizer.ggml.unknown_token_id", false, &u, &e) == KEEL_OK && u == 0);
    CHECK("sep unset", keel_gguf_get_i64(g, "tokenizer.ggml.seperator_token_id", false, &i64, &e) == KEEL_OK &&
                           i64 == 4294967295);
    // optional and missing keys
    u = 77;
    CHECK("optional missing ok", keel_gguf_get_u32(g, "general.alignment", true, &u, &e) == KEEL_OK && u == 77);
    CHECK("required missing fails", keel_gguf_get_u32(g, "tokenizer.ggml.pre", false, &u, &e) == KEEL_ERR_FORMAT &&
                                        has(e.msg, path) && has(e.msg, "missing key tokenizer.ggml.pre"));
    CHECK("find missing", keel_gguf_find_key(g, "nope") == -1);
    // wrong types name the key and both types
    CHECK("str as u32", keel_gguf_get_u32(g, "general.name", false, &u, &e) == KEEL_ERR_FORMAT &&
                            has(e.msg, "general.name") && has(e.msg, "STRING") && has(e.msg, "integer"));
    CHECK("u32 as str", keel_gguf_get_str(g, "llama.block_count", false, &s, &len, &e) == KEEL_ERR_FORMAT &&
                            has(e.msg, "UINT32") && has(e.msg, "expected STRING"));
    CHECK("u32 as f32", keel_gguf_get_f32(g, "llama.block_count", false, &f, &e) == KEEL_ERR_FORMAT);
    CHECK("f32 as u32", keel_gguf_get_u32(g, "llama.attention.layer_norm_rms_epsilon", false, &u, &e) ==
                            KEEL_ERR_FORMAT);
    bool b;
    CHECK("u32 as bool", keel_gguf_get_bool(g, "llama.block_count", false, &b, &e) == KEEL_ERR_FORMAT);
    // arrays
    int64_t ti = keel_gguf_find_key(g, "tokenizer.ggml.tokens");
    CHECK("tokens array", ti >= 0 && keel_gguf_kv_type(g, ti) == KEEL_GGUF_ARRAY &&
                              keel_gguf_arr_type(g, ti) == KEEL_GGUF_STRING && keel_gguf_arr_n(g, ti) == 512);
    CHECK("strings have no arr_data", keel_gguf_arr_data(g, ti) == NULL);
    s = keel_gguf_arr_str(g, ti, 3, &len);
    CHECK("token 3 <0x00>", str_eq(s, len, "<0x00>"));
    s = keel_gguf_arr_str(g, ti, 1, &len);
    CHECK("token 1 <s>", str_eq(s, len, "<s>"));
    CHECK("token 512 out of range", keel_gguf_arr_str(g, ti, 512, &len) == NULL && len == 0);
    int64_t tt = keel_gguf_find_key(g, "tokenizer.ggml.token_type");
    const void *types = keel_gguf_arr_data(g, tt);
    int32_t ty[4] = {0};
    if (types) {
        memcpy(&ty[0], (const char *)types + 0 * 4, 4);
        memcpy(&ty[1], (const char *)types + 1 * 4, 4);
        memcpy(&ty[2], (const char *)types + 3 * 4, 4);
        memcpy(&ty[3], (const char *)types + 259 * 4, 4);
    }
    CHECK("token types", keel_gguf_arr_type(g, tt) == KEEL_GGUF_INT32 && ty[0] == 2 && ty[1] == 3 && ty[2] == 6 &&
                             ty[3] == 1);
    int64_t sc = keel_gguf_find_key(g, "tokenizer.ggml.scores");
    CHECK("scores f32", keel_gguf_arr_type(g, sc) == KEEL_GGUF_FLOAT32 && keel_gguf_arr_n(g, sc) == 512);
    CHECK("scalar arr_n 0", keel_gguf_arr_n(g, keel_gguf_find_key(g, "llama.block_count")) == 0 &&
                                keel_gguf_arr_type(g, keel_gguf_find_key(g, "llama.block_count")) ==
                                    KEEL_GGUF_TYPE_COUNT);
    CHECK("kv index out of range", keel_gguf_key(g, 19) == NULL && keel_gguf_key(g, -1) == NULL &&
                                       keel_gguf_kv_type(g, 99) == KEEL_GGUF_TYPE_COUNT);
    // tensors
    const keel_tensor_info *t = keel_gguf_tensor(g, 0);
    CHECK("first tensor", t && strcmp(t->name, "token_embd.weight") == 0 && t->offset == 14176 &&
                              t->ne[0] == 64 && t->ne[1] == 512 && t->ne[2] == 1 && t->n_dims == 2 &&
                              t->type == KEEL_DTYPE_F32 && t->nbytes == 64 * 512 * 4);
    t = keel_gguf_find_tensor(g, "blk.4.ffn_down.weight");
    CHECK("ffn_down [172,64]", t && t->ne[0] == 172 && t->ne[1] == 64);
    t = keel_gguf_find_tensor(g, "output_norm.weight");
    CHECK("norm 1-d", t && t->n_dims == 1 && t->ne[0] == 64 && t->ne[1] == 1);
    t = keel_gguf_find_tensor(g, "blk.0.attn_k.weight");
    CHECK("attn_k [64,32]", t && t->ne[0] == 64 && t->ne[1] == 32);
    CHECK("missing tensor", keel_gguf_find_tensor(g, "blk.5.attn_q.weight") == NULL &&
                                keel_gguf_tensor(g, 48) == NULL && keel_gguf_tensor(g, -1) == NULL);
    int found = 0;
    for (int64_t i = 0; i < keel_gguf_n_tensors(g); i++)
        found += keel_gguf_find_tensor(g, keel_gguf_tensor(g, i)->name) == keel_gguf_tensor(g, i);
    CHECK("every tensor found by name", found == 48);
    check_against_bin(g);
    keel_gguf_close(g);
}

static void test_v1_rejected(void) {
    char path[512];
    keel_gguf *g = (keel_gguf *)1;
    keel_err e = {0};
    test_shared_path(path, sizeof path, "models/stories260K/legacy-gguf-v1/tinyllamas-stories-260k-f32.gguf");
    char want[600];
    snprintf(want, sizeof want, "%s: GGUF version 1 is not supported (re-convert with a current llama.cpp)", path);
    CHECK("v1 unsupported", keel_gguf_open(path, &g, &e) == KEEL_ERR_UNSUPPORTED && g == NULL &&
                                strcmp(e.msg, want) == 0 && e.code == KEEL_ERR_UNSUPPORTED);
}

static void test_random_f16(void) {
    char path[512];
    keel_gguf *g = NULL;
    keel_err e = {0};
    test_shared_path(path, sizeof path, "models/random/llama-2-tiny-random.gguf");
    CHECK("tiny random opens", keel_gguf_open(path, &g, &e) == KEEL_OK);
    if (!g) return;
    int n16 = 0, n32 = 0;
    for (int64_t i = 0; i < keel_gguf_n_tensors(g); i++) {
        const keel_tensor_info *t = keel_gguf_tensor(g, i);
        n16 += t->type == KEEL_DTYPE_F16;
        n32 += t->type == KEEL_DTYPE_F32;
    }
    CHECK("12 tensors: 9 F16 + 3 F32", keel_gguf_n_tensors(g) == 12 && n16 == 9 && n32 == 3);
    const keel_tensor_info *t = keel_gguf_find_tensor(g, "token_embd.weight");
    CHECK("embd F16 [8,32000]", t && t->type == KEEL_DTYPE_F16 && t->ne[0] == 8 && t->ne[1] == 32000 &&
                                    t->nbytes == 8 * 32000 * 2);
    uint32_t u = 0;
    CHECK("context 4096", keel_gguf_get_u32(g, "llama.context_length", false, &u, &e) == KEEL_OK && u == 4096);
    keel_gguf_close(g);
}

static void test_vocab_only(void) {
    static const struct { const char *file; uint64_t n_vocab; } files[] = {
        {"ggml-vocab-gpt-2.gguf", 50257},     {"ggml-vocab-llama-spm.gguf", 32000},
        {"ggml-vocab-phi-3.gguf", 32064},     {"ggml-vocab-bert-bge.gguf", 30522},
        {"ggml-vocab-deepseek-coder.gguf", 32256}, {"ggml-vocab-deepseek-llm.gguf", 102400},
        {"ggml-vocab-falcon.gguf", 65024},    {"ggml-vocab-mpt.gguf", 50432},
        {"ggml-vocab-refact.gguf", 49216},    {"ggml-vocab-starcoder.gguf", 49152},
    };
    int ok = 0;
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        char rel[256], path[512];
        snprintf(rel, sizeof rel, "models/llama.cpp-vocab/%s", files[k].file);
        test_shared_path(path, sizeof path, rel);
        keel_gguf *g = NULL;
        keel_err e = {0};
        if (keel_gguf_open(path, &g, &e) != KEEL_OK) {
            fprintf(stderr, "  %s\n", e.msg);
            continue;
        }
        int64_t ti = keel_gguf_find_key(g, "tokenizer.ggml.tokens");
        uint64_t n = keel_gguf_arr_n(g, ti);
        size_t total = 0, len;
        bool all = true;
        for (uint64_t j = 0; j < n; j++) {
            const char *s = keel_gguf_arr_str(g, ti, j, &len);
            all &= s != NULL;
            total += len;
        }
        ok += keel_gguf_n_tensors(g) == 0 && n == files[k].n_vocab && all && total > n;
        keel_gguf_close(g);
    }
    CHECK("10 vocab-only files: 0 tensors, right vocab sizes", ok == 10);
}

static void test_smollm2(void) {
    char path[512];
    test_cache_path(path, sizeof path, "SmolLM2-135M-Instruct.Q4_1.gguf");
    if (!keel_path_exists(path)) {
        printf("note: %s absent, SmolLM2 checks skipped\n", path);
        return;
    }
    keel_gguf *g = NULL;
    keel_err e = {0};
    CHECK("SmolLM2 opens", keel_gguf_open(path, &g, &e) == KEEL_OK);
    if (!g) {
        fprintf(stderr, "  %s\n", e.msg);
        return;
    }
    int n[32] = {0};
    for (int64_t i = 0; i < keel_gguf_n_tensors(g); i++) n[keel_gguf_tensor(g, i)->type]++;
    CHECK("272 tensors: 210 Q4_1, 61 F32, 1 Q8_0",
          keel_gguf_n_tensors(g) == 272 && n[KEEL_DTYPE_Q4_1] == 210 && n[KEEL_DTYPE_F32] == 61 &&
              n[KEEL_DTYPE_Q8_0] == 1);
    CHECK("33 kv", keel_gguf_n_kv(g) == 33);
    const keel_tensor_info *t = keel_gguf_find_tensor(g, "token_embd.weight");
    CHECK("embd Q8_0 [576,49152]", t && t->type == KEEL_DTYPE_Q8_0 && t->ne[0] == 576 && t->ne[1] == 49152 &&
                                       t->nbytes == (size_t)576 / 32 * 34 * 49152);
    t = keel_gguf_find_tensor(g, "blk.29.ffn_down.weight");
    CHECK("ffn_down Q4_1 [1536,576]", t && t->type == KEEL_DTYPE_Q4_1 && t->ne[0] == 1536 && t->ne[1] == 576 &&
                                          t->nbytes == (size_t)1536 / 32 * 20 * 576);
    CHECK("no output.weight (tied)", keel_gguf_find_tensor(g, "output.weight") == NULL);
    uint32_t u = 0;
    float f = 0;
    bool b = true;
    const char *s;
    size_t len;
    CHECK("heads 9/3", keel_gguf_get_u32(g, "llama.attention.head_count", false, &u, &e) == KEEL_OK && u == 9 &&
                           keel_gguf_get_u32(g, "llama.attention.head_count_kv", false, &u, &e) == KEEL_OK && u == 3);
    CHECK("rope base", keel_gguf_get_f32(g, "llama.rope.freq_base", false, &f, &e) == KEEL_OK && f == 100000.0f);
    CHECK("add_space_prefix false", keel_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", false, &b, &e) ==
                                        KEEL_OK && !b);
    CHECK("pre", keel_gguf_get_str(g, "tokenizer.ggml.pre", false, &s, &len, &e) == KEEL_OK && len > 0);
    CHECK("chat template", keel_gguf_get_str(g, "tokenizer.chat_template", false, &s, &len, &e) == KEEL_OK &&
                               len > 0 && memmem(s, len, "<|im_start|>", 12) != NULL);
    int64_t m = keel_gguf_find_key(g, "tokenizer.ggml.merges");
    CHECK("merges", keel_gguf_arr_type(g, m) == KEEL_GGUF_STRING && keel_gguf_arr_n(g, m) == 48900);
    keel_gguf_close(g);
}

// ---- handcrafted files -----------------------------------------------------------------

static void test_all_kv_types(void) {
    keel_gguf *g = NULL;
    keel_err e = {0};
    const char *path = CORPUS "/valid_all_kv_types.gguf";
    CHECK("all kv types opens", keel_gguf_open(path, &g, &e) == KEEL_OK);
    if (!g) {
        fprintf(stderr, "  %s\n", e.msg);
        return;
    }
    uint32_t u = 0;
    int64_t i = 0;
    float f = 0;
    bool b = false;
    const char *s;
    size_t len;
    CHECK("alignment 64", keel_gguf_alignment(g) == 64);
    CHECK("u8", keel_gguf_get_u32(g, "test.u8", false, &u, &e) == KEEL_OK && u == 200);
    CHECK("i8", keel_gguf_get_i64(g, "test.i8", false, &i, &e) == KEEL_OK && i == -100);
    CHECK("u16", keel_gguf_get_u32(g, "test.u16", false, &u, &e) == KEEL_OK && u == 60000);
    CHECK("i16", keel_gguf_get_i64(g, "test.i16", false, &i, &e) == KEEL_OK && i == -30000);
    CHECK("u32", keel_gguf_get_u32(g, "test.u32", false, &u, &e) == KEEL_OK && u == 4000000000u);
    CHECK("i32", keel_gguf_get_i64(g, "test.i32", false, &i, &e) == KEEL_OK && i == -7);
    CHECK("f32", keel_gguf_get_f32(g, "test.f32", false, &f, &e) == KEEL_OK && f == 0.5f);
    CHECK("bool", keel_gguf_get_bool(g, "test.bool", false, &b, &e) == KEEL_OK && b);
    CHECK("str utf-8", keel_gguf_get_str(g, "test.str", false, &s, &len, &e) == KEEL_OK &&
                           str_eq(s, len, "h\xc3\xa9llo"));
    CHECK("i64", keel_gguf_get_i64(g, "test.i64", false, &i, &e) == KEEL_OK && i == -(INT64_C(1) << 40));
    CHECK("f64 as f32", keel_gguf_get_f32(g, "test.f64", false, &f, &e) == KEEL_OK);
    CHECK_CLOSE("f64 value", f, 1e-5, 1e-12);
    CHECK("u64 as i64 out of range", keel_gguf_get_i64(g, "test.u64", false, &i, &e) == KEEL_ERR_FORMAT &&
                                         has(e.msg, "test.u64") && has(e.msg, "out of range"));
    CHECK("u64 as u32 out of range", keel_gguf_get_u32(g, "test.u64", false, &u, &e) == KEEL_ERR_FORMAT);
    CHECK("negative as u32", keel_gguf_get_u32(g, "test.i32", false, &u, &e) == KEEL_ERR_FORMAT &&
                                 has(e.msg, "-7"));
    CHECK("i8 fits i64, u16 fits i64", keel_gguf_get_i64(g, "test.u16", false, &i, &e) == KEEL_OK && i == 60000);
    CHECK("bool as int", keel_gguf_get_u32(g, "test.bool", false, &u, &e) == KEEL_ERR_FORMAT && has(e.msg, "BOOL"));
    CHECK("array as str", keel_gguf_get_str(g, "test.arr_i32", false, &s, &len, &e) == KEEL_ERR_FORMAT &&
                              has(e.msg, "ARRAY"));
    int64_t k = keel_gguf_find_key(g, "test.arr_i32");
    int32_t v[3] = {0};
    const void *d = keel_gguf_arr_data(g, k);
    if (d) memcpy(v, d, sizeof v);
    CHECK("arr_i32", keel_gguf_arr_type(g, k) == KEEL_GGUF_INT32 && keel_gguf_arr_n(g, k) == 3 && v[0] == 1 &&
                         v[1] == -2 && v[2] == 3);
    k = keel_gguf_find_key(g, "test.arr_str");
    const char *a0 = keel_gguf_arr_str(g, k, 0, &len);
    bool e0 = str_eq(a0, len, "a");
    const char *a1 = keel_gguf_arr_str(g, k, 1, &len);
    bool e1 = a1 && len == 0;
    const char *a2 = keel_gguf_arr_str(g, k, 2, &len);
    CHECK("arr_str", keel_gguf_arr_n(g, k) == 3 && e0 && e1 && str_eq(a2, len, "ccc"));
    k = keel_gguf_find_key(g, "test.arr_empty");
    CHECK("empty array", keel_gguf_arr_type(g, k) == KEEL_GGUF_FLOAT32 && keel_gguf_arr_n(g, k) == 0);
    k = keel_gguf_find_key(g, "test.arr_arr");
    CHECK("array of arrays", keel_gguf_arr_type(g, k) == KEEL_GGUF_ARRAY && keel_gguf_arr_n(g, k) == 3 &&
                                 keel_gguf_arr_data(g, k) == NULL && keel_gguf_arr_str(g, k, 0, &len) == NULL);
    CHECK("key after nested array", keel_gguf_get_u32(g, "general.alignment", false, &u, &e) == KEEL_OK && u == 64);
    // tensors: all six types, offsets aligned to 64, shapes as written
    static const struct { const char *name; keel_dtype type; int n_dims; int64_t ne[4]; size_t nbytes; } want[] = {
        {"t.f32", KEEL_DTYPE_F32, 2, {4, 3, 1, 1}, 48},    {"t.f16", KEEL_DTYPE_F16, 1, {8, 1, 1, 1}, 16},
        {"t.bf16", KEEL_DTYPE_BF16, 3, {2, 2, 2, 1}, 16},  {"t.q8_0", KEEL_DTYPE_Q8_0, 2, {32, 2, 1, 1}, 68},
        {"t.q4_0", KEEL_DTYPE_Q4_0, 1, {64, 1, 1, 1}, 36}, {"t.q4_1", KEEL_DTYPE_Q4_1, 4, {32, 1, 1, 2}, 40},
    };
    int good = 0;
    for (int j = 0; j < 6; j++) {
        const keel_tensor_info *t = keel_gguf_tensor(g, j);
        good += t && strcmp(t->name, want[j].name) == 0 && t->type == want[j].type && t->n_dims == want[j].n_dims &&
                memcmp(t->ne, want[j].ne, sizeof t->ne) == 0 && t->nbytes == want[j].nbytes &&
                t->offset % 64 == 0 && (const uint8_t *)t->data == (const uint8_t *)keel_gguf_tensor(g, 0)->data +
                                                                      (t->offset - keel_gguf_tensor(g, 0)->offset);
    }
    CHECK("six tensor types", good == 6);
    const keel_tensor_info *t = keel_gguf_find_tensor(g, "t.f32");
    float x[12] = {0};
    if (t) memcpy(x, t->data, sizeof x);
    CHECK("f32 data", x[0] == 0.0f && x[1] == 0.25f && x[11] == 2.75f);
    keel_gguf_close(g);
}

static const expect bad_files[] = {
    {"bad_empty.gguf", KEEL_ERR_FORMAT, "truncated in the header"},
    {"bad_truncated_magic.gguf", KEEL_ERR_FORMAT, "truncated in the header"},
    {"bad_magic.gguf", KEEL_ERR_FORMAT, "not a GGUF file"},
    {"bad_magic_ggml.gguf", KEEL_ERR_FORMAT, "not a GGUF file"},
    {"bad_version1.gguf", KEEL_ERR_UNSUPPORTED, "GGUF version 1 is not supported (re-convert with a current llama.cpp)"},
    {"bad_version0.gguf", KEEL_ERR_UNSUPPORTED, "GGUF version 0 is not supported"},
    {"bad_version4.gguf", KEEL_ERR_UNSUPPORTED, "GGUF version 4 is not supported (expected 2 or 3)"},
    {"bad_big_endian.gguf", KEEL_ERR_UNSUPPORTED, "big-endian GGUF"},
    {"bad_truncated_header.gguf", KEEL_ERR_FORMAT, "truncated in the header"},
    {"bad_truncated_in_kv_key.gguf", KEEL_ERR_FORMAT, "n_kv 1 is too large for a 34-byte file"},
    {"bad_truncated_in_kv_value.gguf", KEEL_ERR_FORMAT, "truncated in kv 0 'general.architecture'"},
    {"bad_truncated_in_tensor_info.gguf", KEEL_ERR_FORMAT, "n_tensors 1 is too large for a 89-byte file"},
    {"bad_truncated_in_tensor_ne.gguf", KEEL_ERR_FORMAT, "truncated in tensor info 0 'w' (need 8 bytes"},
    {"bad_truncated_data.gguf", KEEL_ERR_FORMAT, "tensor 'w' data [0, +64) runs past the end"},
    {"bad_huge_n_tensors.gguf", KEEL_ERR_FORMAT, "n_tensors 9223372036854775808 is too large"},
    {"bad_huge_n_tensors_u64max.gguf", KEEL_ERR_FORMAT, "n_tensors 18446744073709551615 is too large"},
    {"bad_huge_n_kv.gguf", KEEL_ERR_FORMAT, "n_kv 4611686018427387904 is too large"},
    {"bad_n_kv_too_many.gguf", KEEL_ERR_FORMAT, "truncated in kv 1"},
    {"bad_n_tensors_too_many.gguf", KEEL_ERR_FORMAT, "tensor info 1"},
    {"bad_huge_key_len.gguf", KEEL_ERR_FORMAT, "truncated in kv 0 (key)"},
    {"bad_huge_string_len.gguf", KEEL_ERR_FORMAT, "truncated in kv 0 'k'"},
    {"bad_huge_array_len.gguf", KEEL_ERR_FORMAT, "array of 2305843009213693952 elements in kv 0 'k' does not fit"},
    {"bad_huge_string_array_len.gguf", KEEL_ERR_FORMAT, "array of 1152921504606846976 elements"},
    {"bad_huge_nested_array_len.gguf", KEEL_ERR_FORMAT, "array of 4611686018427387904 elements"},
    {"bad_huge_tensor_name_len.gguf", KEEL_ERR_FORMAT, "truncated in tensor info 0 (name)"},
    {"bad_value_type.gguf", KEEL_ERR_FORMAT, "invalid value type 13 in kv 0 'k'"},
    {"bad_value_type_huge.gguf", KEEL_ERR_FORMAT, "invalid value type 4294967295"},
    {"bad_array_type.gguf", KEEL_ERR_FORMAT, "invalid array element type 99"},
    {"bad_nested_array_type.gguf", KEEL_ERR_FORMAT, "invalid array element type 42"},
    {"bad_nested_array_depth.gguf", KEEL_ERR_FORMAT, "arrays nested deeper than 8"},
    {"bad_duplicate_key.gguf", KEEL_ERR_FORMAT, "duplicate key 'general.architecture'"},
    {"bad_key_empty.gguf", KEEL_ERR_FORMAT, "empty name in kv 0"},
    {"bad_key_with_nul.gguf", KEEL_ERR_FORMAT, "NUL byte in kv 0"},
    {"bad_n_dims_0.gguf", KEEL_ERR_FORMAT, "tensor 'w' has n_dims 0 (expected 1..4)"},
    {"bad_n_dims_5.gguf", KEEL_ERR_FORMAT, "tensor 'w' has n_dims 5"},
    {"bad_n_dims_huge.gguf", KEEL_ERR_FORMAT, "n_dims 4294967295"},
    {"bad_ne_zero.gguf", KEEL_ERR_FORMAT, "tensor 'w' has ne[1] = 0"},
    {"bad_ne_negative.gguf", KEEL_ERR_FORMAT, "ne[1] = 18446744073709551614"},
    {"bad_ne_product_overflow.gguf", KEEL_ERR_FORMAT, "tensor 'w': element count overflows"},
    {"bad_nbytes_overflow.gguf", KEEL_ERR_FORMAT, "tensor 'w': byte size overflows"},
    {"bad_type_unknown.gguf", KEEL_ERR_UNSUPPORTED, "tensor 'w' has unknown type 1234"},
    {"bad_type_q4_k.gguf", KEEL_ERR_UNSUPPORTED, "tensor 'w' has type Q4_K (12)"},
    {"bad_type_removed_q4_2.gguf", KEEL_ERR_UNSUPPORTED, "tensor 'w' has type Q4_2 (4)"},
    {"bad_block_size.gguf", KEEL_ERR_FORMAT, "ne[0] = 31 is not a multiple of the Q8_0 block size 32"},
    {"bad_offset_unaligned.gguf", KEEL_ERR_FORMAT, "tensor 'w' offset 4 is not a multiple of the alignment 32"},
    {"bad_offset_past_end.gguf", KEEL_ERR_FORMAT, "tensor 'w' data [4096, +64) runs past the end"},
    {"bad_offset_huge.gguf", KEEL_ERR_FORMAT, "tensor 'w' data [18446744073709551584, +64) runs past the end"},
    {"bad_size_past_end.gguf", KEEL_ERR_FORMAT, "tensor 'w' data [0, +6400) runs past the end"},
    {"bad_overlap.gguf", KEEL_ERR_FORMAT, "tensors 'a' and 'b' overlap"},
    {"bad_same_offset.gguf", KEEL_ERR_FORMAT, "overlap"},
    {"bad_duplicate_tensor_name.gguf", KEEL_ERR_FORMAT, "duplicate tensor name 'w'"},
    {"bad_tensor_name_empty.gguf", KEEL_ERR_FORMAT, "empty name in tensor info 0"},
    {"bad_alignment_not_pow2.gguf", KEEL_ERR_FORMAT, "general.alignment 48 is not a power of two"},
    {"bad_alignment_zero.gguf", KEEL_ERR_FORMAT, "general.alignment 0 is not a power of two"},
    {"bad_alignment_string.gguf", KEEL_ERR_FORMAT, "general.alignment has type STRING, expected an integer"},
    {"bad_data_section_past_end.gguf", KEEL_ERR_FORMAT, "data section starts at 1048576, past the end"},
};

static keel_status open_any(const char *path, void **h, keel_err *e) {
    keel_gguf *x = (keel_gguf *)1;
    keel_status st = keel_gguf_open(path, &x, e);
    *h = x;
    return st;
}
static void close_any(void *h) { keel_gguf_close(h); }

static void test_bad_files(void) {
    size_t n = sizeof bad_files / sizeof bad_files[0];
    CHECK("every named bad file fails as expected", corpus_check_table(CORPUS, bad_files, n, open_any) == (int)n);
}

// Every corpus file: valid_* opens, bad_* fails naming the file, anything else
// (fuzzer finds) must simply not crash. Also every bad_* file is in the table.
static void test_corpus(void) {
    corpus_check_dir(CORPUS, bad_files, sizeof bad_files / sizeof bad_files[0], open_any, close_any, 6, 50);
}

static void test_io_errors(void) {
    keel_gguf *g = (keel_gguf *)1;
    keel_err e = {0};
    CHECK("missing file", keel_gguf_open("tests/no/such.gguf", &g, &e) == KEEL_ERR_IO && g == NULL &&
                              has(e.msg, "tests/no/such.gguf") && has(e.msg, "No such file"));
    CHECK("directory", keel_gguf_open("tests", &g, &e) == KEEL_ERR_IO && has(e.msg, "not a regular file"));
    CHECK("NULL err allowed", keel_gguf_open(CORPUS "/bad_magic.gguf", &g, NULL) == KEEL_ERR_FORMAT);
}

// OOM: the n-th allocation fails, for every n until open succeeds. Each failure
// must be a clean KEEL_ERR_NOMEM; ASan's leak checker covers "leaks nothing".
static void oom_loop(const char *label, const char *path) {
    int fails = 0, wrong = 0;
    for (long n = 1; n < 10000; n++) {
        keel_gguf *g = NULL;
        keel_err e = {0};
        keel_mem_fail_after(n);
        keel_status st = keel_gguf_open(path, &g, &e);
        keel_mem_fail_after(0);
        if (st == KEEL_OK) {
            keel_gguf_close(g);
            break;
        }
        fails++;
        if (st != KEEL_ERR_NOMEM || g != NULL || !has(e.msg, "out of memory")) {
            wrong++;
            fprintf(stderr, "FAIL oom %s n=%ld: status %d '%s'\n", label, n, (int)st, e.msg);
        }
    }
    char d[128];
    snprintf(d, sizeof d, "OOM %s: every failing allocation gives KEEL_ERR_NOMEM (%d runs)", label, fails);
    CHECK(d, fails >= 5 && wrong == 0);
}

static void test_oom(void) {
    char path[512];
    oom_loop("all kv types", CORPUS "/valid_all_kv_types.gguf");
    test_shared_path(path, sizeof path, "models/stories260K/stories260K.gguf");
    oom_loop("stories260K", path);
}

int main(void) {
    test_dtype();
    test_stories();
    test_v1_rejected();
    test_random_f16();
    test_vocab_only();
    test_smollm2();
    test_all_kv_types();
    test_bad_files();
    test_corpus();
    test_io_errors();
    test_oom();
    return test_report();
}
