// SPDX-License-Identifier: MIT
// test_model.c — the model loader and forward pass beyond stories260K's
// vectors: the F16 tiny random Llama GGUF runs (finite logits, KV-cache
// decoding == batch); stories260K rewritten as Hugging Face directories
// (single and sharded safetensors, untied and tied head, q/k rows un-permuted
// as in transformers) gives the GGUF's logits through the other RoPE
// convention; bad inputs fail with the right code and a message naming the
// tensor or key: swapped tensor shapes, an unsupported architecture, bad
// config.json fields, paths that are not models.
#include "keel.h"
#include "model/model.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static bool write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static char *tmp_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", tmpdir, name);
    return buf;
}

static bool all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

// ---- F16 tiny random model ----------------------------------------------------------

static void test_tiny_random(void) {
    char path[512];
    test_shared_path(path, sizeof path, "models/random/llama-2-tiny-random.gguf");
    keel_model *m = NULL;
    keel_err err;
    if (keel_model_load(path, NULL, &m, &err) != KEEL_OK) {
        fprintf(stderr, "%s\n", err.msg);
        CHECK("load llama-2-tiny-random.gguf", 0);
        return;
    }
    const keel_model_desc *d = keel_model_describe(m);
    CHECK("tiny: dims", d->n_embd == 8 && d->n_layer == 1 && d->n_head == 2 && d->n_head_kv == 2 && d->n_ff == 32);
    CHECK("tiny: vocab 32000, rope 4", d->n_vocab == 32000 && d->n_rot == 4);
    CHECK("tiny: separate output", !d->tied_output && keel_model_n_tensors(m) == 12);
    keel_context *c = NULL;
    CHECK("tiny: context", keel_context_init(m, 64, &c, &err) == KEEL_OK);
    int32_t toks[6] = {1, 100, 200, 31999, 5, 7};
    float *lg = malloc(sizeof(float) * 6 * 32000), *l1 = malloc(sizeof(float) * 32000);
    CHECK("tiny: eval", keel_eval(c, toks, 6, 0, lg, KEEL_LOGITS_ALL, &err) == KEEL_OK);
    CHECK("tiny: finite logits", all_finite(lg, 6 * 32000));
    double worst = 0.0;
    for (int t = 0; t < 6; t++) {
        keel_eval(c, &toks[t], 1, t, l1, KEEL_LOGITS_LAST, &err);
        for (int v = 0; v < 32000; v++) worst = fmax(worst, fabs(l1[v] - lg[t * 32000 + v]));
    }
    CHECK_CLOSE("tiny: KV-cache decoding == batch", worst, 0.0, 1e-4);
    free(lg), free(l1);
    keel_context_free(c);
    keel_model_free(m);
}

// ---- stories260K as a Hugging Face directory -----------------------------------------

typedef struct st_entry {
    char name[96];
    int64_t rows, cols; // safetensors shape [rows, cols]; cols 0 = vector
    float *data;
} st_entry;

static bool write_safetensors(const char *path, st_entry *e, int n) {
    cJSON *h = cJSON_CreateObject();
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        cJSON *t = cJSON_AddObjectToObject(h, e[i].name);
        cJSON_AddStringToObject(t, "dtype", "F32");
        cJSON *shape = cJSON_AddArrayToObject(t, "shape");
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e[i].rows));
        if (e[i].cols) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e[i].cols));
        size_t nb = sizeof(float) * (size_t)e[i].rows * (size_t)(e[i].cols ? e[i].cols : 1);
        cJSON *offs = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + nb)));
        off += nb;
    }
    char *js = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    size_t hl = strlen(js), padded = (hl + 7) / 8 * 8;
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    uint64_t n64 = padded;
    fwrite(&n64, 8, 1, f);
    fwrite(js, 1, hl, f);
    for (size_t i = hl; i < padded; i++) fputc(' ', f);
    for (int i = 0; i < n; i++)
        fwrite(e[i].data, sizeof(float), (size_t)e[i].rows * (size_t)(e[i].cols ? e[i].cols : 1), f);
    cJSON_free(js);
    return fclose(f) == 0;
}

// A tokenizer.json holding stories260K's pieces as a merge-less BPE: enough
// to load (this test is about weights, not tokenization).
static bool write_tokenizer_json(const char *path, const keel_tokenizer *tok) {
    cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (int i = 0; i < keel_tokenizer_n_vocab(tok); i++)
        cJSON_AddItemToObject(vocab, keel_token_text(tok, i), cJSON_CreateNumber(i));
    cJSON_AddArrayToObject(model, "merges");
    char *s = cJSON_PrintUnformatted(root);
    bool ok = write_file(path, s, strlen(s));
    cJSON_free(s);
    cJSON_Delete(root);
    return ok;
}

static float *tensor_f32(const keel_model *m, const char *name) {
    for (int64_t i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i]->name, name) == 0) return (float *)(uintptr_t)m->tensors[i]->data;
    return NULL;
}

// GGUF q/k rows are in Meta order; transformers' are the inverse of
// llama.cpp's permutation: HF row h*hd + j*hd/2 + i = GGUF row h*hd + 2i + j.
static float *unpermute(const float *w, int n_head, int hd, int in) {
    float *o = malloc(sizeof(float) * n_head * hd * in);
    for (int h = 0; h < n_head; h++)
        for (int i = 0; i < hd / 2; i++)
            for (int j = 0; j < 2; j++)
                memcpy(o + (size_t)(h * hd + j * (hd / 2) + i) * in, w + (size_t)(h * hd + 2 * i + j) * in,
                       sizeof(float) * in);
    return o;
}

static const char *config_fmt =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"%s\", \"hidden_size\": 64,"
    " \"intermediate_size\": 172, \"num_hidden_layers\": 5, \"num_attention_heads\": 8,"
    " \"num_key_value_heads\": 4, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0,"
    " \"max_position_embeddings\": 512, \"vocab_size\": 512, \"tie_word_embeddings\": %s,"
    " \"hidden_act\": \"silu\", \"rope_scaling\": %s, \"torch_dtype\": \"float32\"}";

static void write_config(const char *dir, const char *model_type, bool tied, const char *rope_scaling) {
    char path[512], buf[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    snprintf(buf, sizeof buf, config_fmt, model_type, tied ? "true" : "false", rope_scaling);
    write_file(path, buf, strlen(buf));
}

// Build HF directories from the loaded GGUF model g: dir "hf1" (one file,
// separate lm_head) and "hf2" (two shards + index, tied head).
static void make_hf_dirs(const keel_model *g) {
    enum { L = 5, C = 64, NH = 8, NKV = 4, HD = 8, F = 172, V = 512 };
    st_entry e[3 + 9 * L];
    float *owned[2 * L];
    int n = 0, no = 0;
#define ADD(nm, r, c, p) (snprintf(e[n].name, sizeof e[n].name, "%s", nm), e[n].rows = (r), e[n].cols = (c), e[n].data = (p), n++)
    ADD("model.embed_tokens.weight", V, C, tensor_f32(g, "token_embd.weight"));
    ADD("model.norm.weight", C, 0, tensor_f32(g, "output_norm.weight"));
    char a[96], b[96];
    for (int l = 0; l < L; l++) {
        static const struct { const char *gg, *hf; int rows, cols; } map[] = {
            {"attn_norm", "input_layernorm", C, 0}, {"ffn_norm", "post_attention_layernorm", C, 0},
            {"attn_v", "self_attn.v_proj", NKV * HD, C}, {"attn_output", "self_attn.o_proj", C, NH * HD},
            {"ffn_gate", "mlp.gate_proj", F, C}, {"ffn_up", "mlp.up_proj", F, C}, {"ffn_down", "mlp.down_proj", C, F},
        };
        for (size_t k = 0; k < sizeof map / sizeof *map; k++) {
            snprintf(a, sizeof a, "blk.%d.%s.weight", l, map[k].gg);
            snprintf(b, sizeof b, "model.layers.%d.%s.weight", l, map[k].hf);
            ADD(b, map[k].rows, map[k].cols, tensor_f32(g, a));
        }
        snprintf(a, sizeof a, "blk.%d.attn_q.weight", l);
        snprintf(b, sizeof b, "model.layers.%d.self_attn.q_proj.weight", l);
        owned[no] = unpermute(tensor_f32(g, a), NH, HD, C);
        ADD(b, NH * HD, C, owned[no++]);
        snprintf(a, sizeof a, "blk.%d.attn_k.weight", l);
        snprintf(b, sizeof b, "model.layers.%d.self_attn.k_proj.weight", l);
        owned[no] = unpermute(tensor_f32(g, a), NKV, HD, C);
        ADD(b, NKV * HD, C, owned[no++]);
    }
    int n_body = n;
    ADD("lm_head.weight", V, C, tensor_f32(g, "output.weight"));
#undef ADD
    char dir[512], path[600];
    // hf1: one file, untied
    snprintf(dir, sizeof dir, "%s/hf1", tmpdir);
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK("write hf1 safetensors", write_safetensors(path, e, n));
    write_config(dir, "llama", false, "null");
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    CHECK("write tokenizer.json", write_tokenizer_json(path, g->tok));
    // hf2: two shards, tied (no lm_head)
    snprintf(dir, sizeof dir, "%s/hf2", tmpdir);
    mkdir(dir, 0700);
    int half = n_body / 2;
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    write_safetensors(path, e, half);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    write_safetensors(path, e + half, n_body - half);
    cJSON *idx = cJSON_CreateObject(), *wm = cJSON_AddObjectToObject(idx, "weight_map");
    for (int i = 0; i < n_body; i++)
        cJSON_AddStringToObject(wm, e[i].name, i < half ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors");
    char *js = cJSON_PrintUnformatted(idx);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_file(path, js, strlen(js));
    cJSON_free(js);
    cJSON_Delete(idx);
    write_config(dir, "llama", true, "null");
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_tokenizer_json(path, g->tok);
    for (int i = 0; i < no; i++) free(owned[i]);
}

static void logits_of(const keel_model *m, const int32_t *toks, int n, float *out) {
    keel_context *c = NULL;
    keel_err err;
    if (keel_context_init(m, 64, &c, &err) != KEEL_OK) return;
    keel_eval(c, toks, n, 0, out, KEEL_LOGITS_ALL, &err);
    keel_context_free(c);
}

static void test_hf(void) {
    char path[640], dir[512];
    test_shared_path(path, sizeof path, "models/stories260K/stories260K.gguf");
    keel_model *g = NULL, *h = NULL;
    keel_err err;
    if (keel_model_load(path, NULL, &g, &err) != KEEL_OK) {
        CHECK("load stories260K.gguf", 0);
        return;
    }
    make_hf_dirs(g);
    const int32_t toks[12] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315};
    float *lg = calloc(12 * 512, sizeof(float)), *lh = calloc(12 * 512, sizeof(float));
    logits_of(g, toks, 12, lg);
    for (int k = 1; k <= 2; k++) {
        snprintf(dir, sizeof dir, "%s/hf%d", tmpdir, k);
        char what[96];
        snprintf(what, sizeof what, "load HF directory hf%d", k);
        keel_status st = keel_model_load(dir, NULL, &h, &err);
        if (st) fprintf(stderr, "%s\n", err.msg);
        CHECK(what, st == KEEL_OK);
        if (st) continue;
        const keel_model_desc *d = keel_model_describe(h);
        CHECK("HF: format and arch", strcmp(d->format, "safetensors") == 0 && strcmp(d->arch, "llama") == 0);
        CHECK("HF: name is the directory", strcmp(d->name, k == 1 ? "hf1" : "hf2") == 0);
        CHECK("HF: tied as configured", d->tied_output == (k == 2));
        CHECK("HF: dims", d->n_embd == 64 && d->n_layer == 5 && d->n_head_kv == 4 && d->n_ctx_train == 512);
        CHECK("HF: tensors listed", keel_model_n_tensors(h) == (k == 1 ? 48 : 47));
        memset(lh, 0, sizeof(float) * 12 * 512);
        logits_of(h, toks, 12, lh);
        double worst = 0.0;
        for (int i = 0; i < 12 * 512; i++) worst = fmax(worst, fabs(lg[i] - lh[i]));
        snprintf(what, sizeof what, "hf%d (NEOX on HF rows) logits == GGUF (NORM)", k);
        CHECK_CLOSE(what, worst, 0.0, 1e-4);
        keel_model_free(h);
        h = NULL;
    }
    free(lg), free(lh);

    // config errors
    snprintf(dir, sizeof dir, "%s/hf1", tmpdir);
    write_config(dir, "qwen2", false, "null");
    CHECK("model_type qwen2 is unsupported", keel_model_load(dir, NULL, &h, &err) == KEEL_ERR_UNSUPPORTED && !h);
    CHECK("message names qwen2", strstr(err.msg, "qwen2") != NULL);
    write_config(dir, "llama", false, "{\"type\": \"llama3\", \"factor\": 8.0}");
    CHECK("rope_scaling is unsupported", keel_model_load(dir, NULL, &h, &err) == KEEL_ERR_UNSUPPORTED);
    CHECK("message names rope_scaling", strstr(err.msg, "rope_scaling") != NULL);
    snprintf(path, sizeof path, "%s/config.json", dir);
    const char *c1 = "{\"model_type\": \"llama\", \"hidden_size\": 64}";
    write_file(path, c1, strlen(c1));
    CHECK("missing config field", keel_model_load(dir, NULL, &h, &err) == KEEL_ERR_FORMAT);
    CHECK("message names the field", strstr(err.msg, "intermediate_size") != NULL);
    const char *c2 = "{\"model_type\": \"llama\", \"hidden_size\": -64";
    write_file(path, c2, strlen(c2));
    CHECK("bad JSON", keel_model_load(dir, NULL, &h, &err) == KEEL_ERR_FORMAT);
    // a config whose sizes disagree with the tensors
    char buf[1024];
    snprintf(buf, sizeof buf, config_fmt, "llama", "false", "null");
    char *p = strstr(buf, "\"intermediate_size\": 172");
    memcpy(p, "\"intermediate_size\": 174", 24);
    write_file(path, buf, strlen(buf));
    CHECK("shape mismatch in safetensors", keel_model_load(dir, NULL, &h, &err) == KEEL_ERR_FORMAT);
    CHECK("message names the tensor and shapes",
          strstr(err.msg, "model.layers.0.mlp.gate_proj.weight") && strstr(err.msg, "expected [64, 174]"));
    keel_model_free(g);
}

// ---- GGUF errors -----------------------------------------------------------------------

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n);
    if (fread(b, 1, *n, f) != *n) *n = 0;
    fclose(f);
    return b;
}

static uint8_t *find_bytes(uint8_t *hay, size_t n, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0) return hay + i;
    return NULL;
}

static void test_gguf_errors(void) {
    char path[512], bad[512];
    test_shared_path(path, sizeof path, "models/stories260K/stories260K.gguf");
    size_t n = 0;
    uint8_t *orig = read_all(path, &n), *b = malloc(n);
    keel_model *m = NULL;
    keel_err err;

    // blk.0.attn_k.weight [64, 32] -> [32, 64]: same size, so only the model layer notices
    memcpy(b, orig, n);
    uint8_t *at = find_bytes(b, n, "blk.0.attn_k.weight");
    CHECK("found attn_k in the header", at != NULL);
    if (at) {
        uint8_t *ne = at + strlen("blk.0.attn_k.weight") + 4; // after the name: u32 n_dims, u64 ne[]
        uint64_t ne0, ne1;
        memcpy(&ne0, ne, 8);
        memcpy(&ne1, ne + 8, 8);
        CHECK("attn_k is [64, 32]", ne0 == 64 && ne1 == 32);
        memcpy(ne, &ne1, 8);
        memcpy(ne + 8, &ne0, 8);
        write_file(tmp_path(bad, sizeof bad, "swapped.gguf"), b, n);
        CHECK("swapped shape -> KEEL_ERR_FORMAT", keel_model_load(bad, NULL, &m, &err) == KEEL_ERR_FORMAT && !m);
        CHECK("message names tensor, found and expected shapes",
              strstr(err.msg, "blk.0.attn_k.weight") && strstr(err.msg, "[32, 64, 1, 1]") && strstr(err.msg, "expected [64, 32]"));
    }

    // general.architecture "llama" -> "mamba"
    memcpy(b, orig, n);
    at = find_bytes(b, n, "general.architecture");
    if (at) {
        uint8_t *v = find_bytes(at, 64, "llama");
        if (v) memcpy(v, "mamba", 5);
        write_file(tmp_path(bad, sizeof bad, "mamba.gguf"), b, n);
        CHECK("other architecture -> KEEL_ERR_UNSUPPORTED", keel_model_load(bad, NULL, &m, &err) == KEEL_ERR_UNSUPPORTED);
        CHECK("message names it", strstr(err.msg, "\"mamba\"") != NULL);
    }

    // a missing tensor: rename blk.4.ffn_up.weight
    memcpy(b, orig, n);
    at = find_bytes(b, n, "blk.4.ffn_up.weight");
    if (at) {
        at[9] = 'U';
        write_file(tmp_path(bad, sizeof bad, "missing.gguf"), b, n);
        CHECK("missing tensor -> KEEL_ERR_FORMAT", keel_model_load(bad, NULL, &m, &err) == KEEL_ERR_FORMAT);
        CHECK("message names it", strstr(err.msg, "blk.4.ffn_up.weight") != NULL);
    }

    // head count not dividing the embedding
    memcpy(b, orig, n);
    at = find_bytes(b, n, "llama.attention.head_count");
    if (at) {
        uint8_t *val = at + strlen("llama.attention.head_count") + 4; // u32 type, then the value
        uint32_t seven = 7;
        memcpy(val, &seven, 4);
        write_file(tmp_path(bad, sizeof bad, "heads.gguf"), b, n);
        CHECK("7 heads -> KEEL_ERR_FORMAT", keel_model_load(bad, NULL, &m, &err) == KEEL_ERR_FORMAT);
    }

    // not a model at all
    write_file(tmp_path(bad, sizeof bad, "notes.txt"), "hello", 5);
    CHECK("text file -> KEEL_ERR_UNSUPPORTED", keel_model_load(bad, NULL, &m, &err) == KEEL_ERR_UNSUPPORTED && !m);
    CHECK("message says what a model is", strstr(err.msg, ".gguf") != NULL);
    CHECK("no such path -> KEEL_ERR_IO", keel_model_load("/nonexistent/x.gguf", NULL, &m, &err) == KEEL_ERR_IO);
    CHECK("NULL path -> KEEL_ERR_INVALID", keel_model_load(NULL, NULL, &m, &err) == KEEL_ERR_INVALID);
    CHECK("empty dir -> error", keel_model_load(tmpdir, NULL, &m, &err) != KEEL_OK && !m);
    write_file(tmp_path(bad, sizeof bad, "trunc.gguf"), orig, 5000);
    CHECK("truncated GGUF -> error", keel_model_load(bad, NULL, &m, &err) != KEEL_OK && !m);
    keel_model_free(NULL);
    keel_context_free(NULL);
    CHECK("describe(NULL)", keel_model_describe(NULL) == NULL && keel_model_n_tensors(NULL) == 0);
    free(orig), free(b);
}

// Remove what the test wrote (plain files in tmpdir and its hf* folders).
static void cleanup(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

int main(void) {
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/keel_test_model_XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_tiny_random();
    test_hf();
    test_gguf_errors();
    cleanup();
    return test_report();
}
