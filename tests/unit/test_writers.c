// SPDX-License-Identifier: MIT
// test_writers.c — file writers in src/io/: atomic replacement (atomic.c),
// the safetensors writer (byte-identical to safetensors.torch.save_file:
// tests/golden/st_write.safetensors; round trip through keel's reader) and the
// PEFT adapter layout (adapter_config.json keys/values against PEFT's own,
// tensor keys against a saved PEFT adapter: tests/golden/peft.json). Goldens
// from tools/golden_optim.py. With KEEL_WRITERS_KEEP=DIR the files are also
// left in DIR for `tools/golden_optim.py --check-keel DIR` (PEFT loads them).
#include "test.h"
#include "io/io.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[64];

static char *path_in(const char *dir, const char *name) { return keel_path_join(dir, name); }

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static bool file_equals(const char *path, const void *data, size_t len) {
    char *got = NULL;
    size_t n = 0;
    if (keel_read_file(path, &got, &n, NULL) != KEEL_OK) return false;
    bool eq = n == len && memcmp(got, data, len) == 0;
    free(got);
    return eq;
}

// ---- atomic -----------------------------------------------------------------------

static keel_status fail_midway(keel_afile *f, void *ctx, keel_err *err) {
    keel_status st = keel_afile_write(f, "partial", 7, err);
    if (st != KEEL_OK) return st;
    return KEEL_FAIL(err, KEEL_ERR_INVALID, "callback gave up after %llu bytes",
                     (unsigned long long)f->written);
}

static void test_atomic(void) {
    char *p = path_in(g_dir, "a.txt");
    keel_err err = {0};
    keel_iobuf b[3] = {{"hello ", 6}, {"", 0}, {"world", 5}};
    CHECK("atomic write of a buffer list", keel_atomic_write_bufs(p, b, 3, &err) == KEEL_OK);
    CHECK("contents", file_equals(p, "hello world", 11));
    keel_iobuf b2 = {"second", 6};
    CHECK("overwrite", keel_atomic_write_bufs(p, &b2, 1, &err) == KEEL_OK);
    CHECK("overwritten contents", file_equals(p, "second", 6));
    CHECK("no temporary left behind", count_entries(g_dir) == 1);
    struct stat st;
    CHECK("file mode 0644 under the umask", stat(p, &st) == 0 && (st.st_mode & 0777) == (0644 & ~(unsigned)umask(022)));

    // A failing callback: the old file stays, the temporary is removed, the
    // callback's status and message come back unchanged.
    CHECK("callback failure returned", keel_atomic_write(p, fail_midway, NULL, &err) == KEEL_ERR_INVALID);
    CHECK("callback message kept", strstr(err.msg, "gave up after 7 bytes") != NULL);
    CHECK("old contents survive a failed write", file_equals(p, "second", 6));
    CHECK("failed write leaves no temporary", count_entries(g_dir) == 1);

    // A directory that does not exist: KEEL_ERR_IO naming the path and the reason.
    char *bad = path_in(g_dir, "missing/sub/x.bin");
    CHECK("missing directory is an I/O error", keel_atomic_write_bufs(bad, &b2, 1, &err) == KEEL_ERR_IO);
    CHECK("message names the path", strstr(err.msg, "missing/sub/x.bin") != NULL);
    CHECK("message has strerror", strstr(err.msg, strerror(ENOENT)) != NULL);
    // Renaming over a directory fails after the temporary was written: it is removed.
    char *sub = path_in(g_dir, "adir");
    mkdir(sub, 0755);
    char *inner = path_in(sub, "f");
    keel_atomic_write_bufs(inner, &b2, 1, NULL);
    CHECK("rename over a non-empty directory fails", keel_atomic_write_bufs(sub, &b2, 1, &err) == KEEL_ERR_IO);
    CHECK("rename message", strstr(err.msg, "rename") != NULL);
    CHECK("temporary removed after a failed rename", count_entries(g_dir) == 2);
    CHECK("empty path rejected", keel_atomic_write_bufs("", &b2, 1, &err) == KEEL_ERR_INVALID);
    // A bare file name (directory ".") works too: run from inside the temp dir.
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) && chdir(g_dir) == 0) {
        CHECK("bare file name", keel_atomic_write_bufs("bare.txt", &b2, 1, &err) == KEEL_OK);
        CHECK("bare file contents", file_equals("bare.txt", "second", 6));
        unlink("bare.txt");
        CHECK("back to the old cwd", chdir(cwd) == 0);
    }
    unlink(inner);
    rmdir(sub);
    unlink(p);
    free(inner);
    free(sub);
    free(bad);
    free(p);
}

// ---- safetensors --------------------------------------------------------------------

// The tensors of tools/golden_optim.py ST_TENSORS: element i of tensor k is
// ((i*37 + k*11) % 101 - 50) / 8, exact in F32, F16 and BF16.
typedef struct st_spec {
    const char *name;
    keel_dtype type;
    int n_dims;
    int64_t shape[3];
} st_spec;
static const st_spec SPECS[] = {
    {"b.weight", KEEL_DTYPE_F32, 3, {2, 3, 4}},
    {"a", KEEL_DTYPE_F16, 1, {5}},
    {"Z_bf16", KEEL_DTYPE_BF16, 2, {3, 2}},
    {"model.layers.0.self_attn.q_proj.lora_A.weight", KEEL_DTYPE_F32, 2, {4, 6}},
    {"scalar", KEEL_DTYPE_F32, 0, {0}},
    {"\xc3\xa9t\xc3\xa9", KEEL_DTYPE_F32, 1, {3}},
    {"a.bias", KEEL_DTYPE_BF16, 1, {7}},
    {"z.half", KEEL_DTYPE_F16, 3, {1, 1, 3}},
};
#define N_SPECS (sizeof SPECS / sizeof SPECS[0])

static size_t spec_count(const st_spec *s) {
    size_t n = 1;
    for (int d = 0; d < s->n_dims; d++) n *= (size_t)s->shape[d];
    return n;
}

// Build the entries: as_f32 keeps every tensor as floats (from_f32 conversion).
static void build_entries(keel_st_entry *e, float **f32, uint16_t **h16, bool as_f32) {
    for (size_t k = 0; k < N_SPECS; k++) {
        const st_spec *s = &SPECS[k];
        size_t n = spec_count(s);
        f32[k] = malloc(n * sizeof(float));
        h16[k] = malloc(n * sizeof(uint16_t));
        for (size_t i = 0; i < n; i++) {
            f32[k][i] = (float)((long)((i * 37 + k * 11) % 101) - 50) / 8.0f;
            h16[k][i] = s->type == KEEL_DTYPE_F16 ? keel_fp32_to_fp16(f32[k][i]) : keel_fp32_to_bf16(f32[k][i]);
        }
        memset(&e[k], 0, sizeof e[k]);
        e[k].name = s->name;
        e[k].type = s->type;
        e[k].n_dims = s->n_dims;
        for (int d = 0; d < s->n_dims; d++) e[k].shape[d] = s->shape[d];
        bool half = s->type != KEEL_DTYPE_F32;
        e[k].from_f32 = as_f32 && half;
        e[k].data = half && !as_f32 ? (const void *)h16[k] : (const void *)f32[k];
    }
}

static void test_safetensors(const char *keep) {
    keel_st_entry e[N_SPECS];
    float *f32[N_SPECS];
    uint16_t *h16[N_SPECS];
    keel_st_kv meta = {"format", "pt"};
    keel_err err = {0};
    char *gold = NULL;
    size_t gold_len = 0;
    CHECK("read tests/golden/st_write.safetensors",
          keel_read_file("tests/golden/st_write.safetensors", &gold, &gold_len, &err) == KEEL_OK);
    char *p = path_in(g_dir, "t.safetensors");
    for (int pass = 0; pass < 2; pass++) {
        build_entries(e, f32, h16, pass == 1);
        CHECK("keel_st_write", keel_st_write(p, e, N_SPECS, &meta, 1, &err) == KEEL_OK);
        if (gold) {
            bool same = file_equals(p, gold, gold_len);
            CHECK(pass ? "bytes identical to safetensors.torch.save_file (converted from f32)"
                       : "bytes identical to safetensors.torch.save_file",
                  same);
        }
        // Round trip through keel's reader.
        keel_safetensors *s = NULL;
        CHECK("keel_st_open reads it", keel_st_open(p, &s, &err) == KEEL_OK);
        if (!s) continue;
        CHECK("tensor count", keel_st_n_tensors(s) == (int64_t)N_SPECS);
        CHECK("metadata", keel_st_metadata(s, "format") && strcmp(keel_st_metadata(s, "format"), "pt") == 0);
        for (size_t k = 0; k < N_SPECS; k++) {
            const keel_tensor_info *ti = keel_st_find_tensor(s, SPECS[k].name);
            CHECK("tensor found by name", ti != NULL);
            if (!ti) continue;
            CHECK("type", ti->type == SPECS[k].type);
            bool shape_ok = true;
            if (SPECS[k].n_dims == 0) shape_ok = ti->ne[0] == 1 && ti->ne[1] == 1;
            else
                for (int d = 0; d < SPECS[k].n_dims; d++)
                    shape_ok &= ti->ne[d] == SPECS[k].shape[SPECS[k].n_dims - 1 - d];
            CHECK("shape (reversed into GGUF order)", shape_ok);
            size_t n = spec_count(&SPECS[k]);
            const void *want = SPECS[k].type == KEEL_DTYPE_F32 ? (const void *)f32[k] : (const void *)h16[k];
            size_t bytes = n * (SPECS[k].type == KEEL_DTYPE_F32 ? 4 : 2);
            CHECK("data round trip", ti->nbytes == bytes && memcmp(ti->data, want, bytes) == 0);
            CHECK("data 8-aligned in the file when F32", SPECS[k].type != KEEL_DTYPE_F32 || ti->offset % 4 == 0);
        }
        // The order in the file: F32 by name, then BF16 by name, then F16 by name.
        static const char *order[] = {"b.weight", "model.layers.0.self_attn.q_proj.lora_A.weight",
                                      "scalar", "\xc3\xa9t\xc3\xa9", "Z_bf16", "a.bias", "a", "z.half"};
        bool ord = true;
        for (int64_t i = 0; i < keel_st_n_tensors(s) && i < 8; i++)
            ord &= strcmp(keel_st_tensor(s, i)->name, order[i]) == 0;
        CHECK("header order: dtype (F32, BF16, F16) then name", ord);
        keel_st_close(s);
        for (size_t k = 0; k < N_SPECS; k++) {
            free(f32[k]);
            free(h16[k]);
        }
    }
    if (keep) {
        char *kp = path_in(keep, "st_write.safetensors");
        build_entries(e, f32, h16, false);
        CHECK("keep copy written", keel_st_write(kp, e, N_SPECS, &meta, 1, &err) == KEEL_OK);
        for (size_t k = 0; k < N_SPECS; k++) {
            free(f32[k]);
            free(h16[k]);
        }
        free(kp);
    }

    // Small exact cases: no tensors, no metadata; two metadata keys sorted.
    CHECK("empty file", keel_st_write(p, NULL, 0, NULL, 0, &err) == KEEL_OK);
    CHECK("empty file bytes", file_equals(p, "\x08\0\0\0\0\0\0\0{}      ", 16));
    keel_st_kv two[2] = {{"z", "1"}, {"a", "q\"\n\x01"}};
    CHECK("metadata only", keel_st_write(p, NULL, 0, two, 2, &err) == KEEL_OK);
    const char want_meta[] = "{\"__metadata__\":{\"a\":\"q\\\"\\n\\u0001\",\"z\":\"1\"}}";
    char buf[128] = {0};
    size_t hl = sizeof want_meta - 1, pad = (8 - hl % 8) % 8;
    buf[0] = (char)(hl + pad);
    memcpy(buf + 8, want_meta, hl);
    memset(buf + 8 + hl, ' ', pad);
    CHECK("metadata sorted and escaped as serde_json does", file_equals(p, buf, 8 + hl + pad));

    // Errors name the tensor; nothing is written.
    unlink(p);
    float one = 1;
    keel_st_entry bad[2] = {{.name = "x", .type = KEEL_DTYPE_F32, .n_dims = 1, .shape = {1}, .data = &one},
                            {.name = "x", .type = KEEL_DTYPE_F16, .n_dims = 1, .shape = {1}, .data = &one}};
    CHECK("duplicate name rejected", keel_st_write(p, bad, 2, NULL, 0, &err) == KEEL_ERR_INVALID);
    CHECK("duplicate message", strstr(err.msg, "duplicate tensor name x") != NULL);
    bad[1].name = "y";
    bad[1].type = KEEL_DTYPE_Q4_0;
    CHECK("Q4_0 rejected", keel_st_write(p, bad, 2, NULL, 0, &err) == KEEL_ERR_INVALID);
    CHECK("type message names the tensor", strstr(err.msg, "tensor y") != NULL);
    bad[1].type = KEEL_DTYPE_F32;
    bad[1].shape[0] = -3;
    CHECK("negative dimension rejected", keel_st_write(p, bad, 2, NULL, 0, &err) == KEEL_ERR_INVALID);
    bad[1].shape[0] = INT64_MAX;
    CHECK("huge dimension rejected", keel_st_write(p, bad, 2, NULL, 0, &err) == KEEL_ERR_INVALID);
    bad[1].n_dims = 3;
    bad[1].shape[0] = bad[1].shape[1] = bad[1].shape[2] = (int64_t)1 << 21; // 2^63 elements
    CHECK("overflowing product rejected", keel_st_write(p, bad, 2, NULL, 0, &err) == KEEL_ERR_INVALID);
    bad[1].n_dims = 1;
    bad[1].shape[0] = 1;
    bad[1].name = "__metadata__";
    CHECK("reserved name rejected", keel_st_write(p, bad, 2, NULL, 0, &err) == KEEL_ERR_INVALID);
    bad[1].name = "\xff";
    CHECK("invalid UTF-8 name rejected", keel_st_write(p, bad, 2, NULL, 0, &err) == KEEL_ERR_INVALID);
    bad[1].name = "y";
    bad[1].n_dims = 9;
    CHECK("too many dims rejected", keel_st_write(p, bad, 2, NULL, 0, &err) == KEEL_ERR_INVALID);
    keel_st_kv dupm[2] = {{"k", "1"}, {"k", "2"}};
    bad[1].n_dims = 1;
    CHECK("duplicate metadata key rejected", keel_st_write(p, bad, 2, dupm, 2, &err) == KEEL_ERR_INVALID);
    CHECK("no file after errors", !keel_path_exists(p));
    // Out of memory at each allocation: NOMEM, no file, no leak (ASan).
    build_entries(e, f32, h16, true);
    for (long k = 1; k < 64; k++) {
        keel_mem_fail_after(k);
        keel_status s = keel_st_write(p, e, N_SPECS, &meta, 1, &err);
        keel_mem_fail_after(0);
        if (s == KEEL_OK) {
            CHECK("succeeds once allocations do", gold && file_equals(p, gold, gold_len));
            break;
        }
        CHECK("allocation failure is NOMEM", s == KEEL_ERR_NOMEM);
        CHECK("no file after NOMEM", !keel_path_exists(p));
    }
    for (size_t k = 0; k < N_SPECS; k++) {
        free(f32[k]);
        free(h16[k]);
    }
    free(gold);
    unlink(p);
    free(p);
}

// ---- PEFT ----------------------------------------------------------------------------

static const char *TARGETS[] = {"v_proj", "q_proj", "k_proj", "o_proj", "gate_proj",
                                "up_proj", "down_proj", "q_proj"};

static keel_peft_lora_config golden_config(void) {
    keel_peft_lora_config c = keel_peft_lora_default_config();
    c.r = 8;
    c.lora_alpha = 16;
    c.lora_dropout = 0.05;
    c.target_modules = TARGETS;
    c.n_target_modules = 8; // q_proj twice: written once
    c.use_rslora = true;
    c.base_model_name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct";
    return c;
}

// The tiny Llama of tools/golden_optim.py: hidden 16, intermediate 32,
// 2 heads of 8, 1 kv head; r = 8. Writes the adapter with keel's key names.
static keel_status write_adapter(const char *dir, float **bufs, keel_err *err) {
    static const char *projs[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    static const int in[] = {16, 16, 16, 16, 16, 16, 32}, out[] = {16, 8, 8, 16, 32, 32, 16};
    keel_st_entry e[28];
    static char names[28][96];
    int n = 0;
    for (int l = 0; l < 2; l++)
        for (int j = 0; j < 7; j++)
            for (int ab = 0; ab < 2; ab++) {
                int len = keel_peft_lora_key_llama(names[n], sizeof names[n], l, projs[j], ab ? 'B' : 'A');
                if (len < 0) return KEEL_FAIL(err, KEEL_ERR_INVALID, "key does not fit");
                int rows = ab ? out[j] : 8, cols = ab ? 8 : in[j]; // A (r, in), B (out, r)
                bufs[n] = malloc((size_t)rows * cols * sizeof(float));
                for (int i = 0; i < rows * cols; i++) bufs[n][i] = (float)((i * 7 + n * 3) % 19 - 9) / 16.0f;
                e[n] = (keel_st_entry){.name = names[n], .type = KEEL_DTYPE_F32, .n_dims = 2,
                                       .shape = {rows, cols}, .data = bufs[n]};
                n++;
            }
    char *sp = path_in(dir, "adapter_model.safetensors");
    char *cp = path_in(dir, "adapter_config.json");
    keel_st_kv meta = {"format", "pt"};
    keel_status st = keel_st_write(sp, e, (size_t)n, &meta, 1, err);
    keel_peft_lora_config c = golden_config();
    if (st == KEEL_OK) st = keel_peft_write_config(cp, &c, err);
    free(sp);
    free(cp);
    return st;
}

static void test_peft(const char *keep) {
    char *text = NULL, *gtext = NULL;
    keel_err err = {0};
    CHECK("read tests/golden/peft.json", keel_read_file("tests/golden/peft.json", &gtext, NULL, &err) == KEEL_OK);
    cJSON *gj = gtext ? cJSON_Parse(gtext) : NULL;
    free(gtext);
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(gj, "adapter_config");
    CHECK("golden has adapter_config", ref != NULL);
    keel_peft_lora_config c = golden_config();
    CHECK("config json", keel_peft_config_json(&c, &text, &err) == KEEL_OK);
    cJSON *kj = text ? cJSON_Parse(text) : NULL;
    CHECK("keel's config parses as JSON", kj != NULL);
    int n_keys = 0, n_same = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, kj) {
        n_keys++;
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(ref, it->string);
        bool same = r && cJSON_Compare(it, r, true);
        if (!same) fprintf(stderr, "  adapter_config key %s differs from PEFT's\n", it->string);
        n_same += same;
    }
    CHECK("every key keel writes has PEFT's value", n_keys > 0 && n_same == n_keys);
    static const char *needed[] = {"r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora",
                                   "base_model_name_or_path", "bias", "task_type", "peft_type",
                                   "fan_in_fan_out", "init_lora_weights", "inference_mode",
                                   "modules_to_save", "use_dora"};
    bool all = true;
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++)
        all &= cJSON_GetObjectItemCaseSensitive(kj, needed[i]) != NULL;
    CHECK("the essential keys are present", all);
    printf("adapter_config.json: %d keys, all equal to PEFT's (PEFT writes %d)\n", n_keys,
           cJSON_GetArraySize(ref));
    cJSON_Delete(kj);
    free(text);

    // Tensor keys for both layers and all seven projections == PEFT's saved keys.
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(gj, "adapter_keys");
    static const char *projs[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    int found = 0, total = 0;
    for (int l = 0; l < 2; l++)
        for (int j = 0; j < 7; j++)
            for (int ab = 0; ab < 2; ab++) {
                char k[128];
                total++;
                if (keel_peft_lora_key_llama(k, sizeof k, l, projs[j], ab ? 'B' : 'A') < 0) continue;
                const cJSON *g;
                cJSON_ArrayForEach(g, keys) if (strcmp(g->valuestring, k) == 0) found++;
            }
    CHECK("all 28 LoRA keys equal PEFT's", total == 28 && found == 28 && cJSON_GetArraySize(keys) == 28);
    char k[128];
    CHECK("HF module with .weight",
          keel_peft_lora_key(k, sizeof k, "model.layers.12.mlp.down_proj.weight", 'B') > 0 &&
              strcmp(k, "base_model.model.model.layers.12.mlp.down_proj.lora_B.weight") == 0);
    CHECK("HF module without .weight",
          keel_peft_lora_key(k, sizeof k, "model.layers.0.self_attn.q_proj", 'A') ==
              (int)strlen("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
    CHECK("bad A/B", keel_peft_lora_key(k, sizeof k, "model.layers.0.self_attn.q_proj", 'C') == -1);
    CHECK("too small buffer", keel_peft_lora_key(k, 20, "model.layers.0.self_attn.q_proj", 'A') == -1);
    CHECK("unknown projection", keel_peft_lora_key_llama(k, sizeof k, 0, "qkv_proj", 'A') == -1);
    cJSON_Delete(gj);

    // Invalid configs.
    c.r = 0;
    CHECK("r = 0 rejected", keel_peft_config_json(&c, &text, &err) == KEEL_ERR_INVALID && text == NULL);
    c = golden_config();
    c.lora_dropout = 1.0;
    CHECK("dropout 1 rejected", keel_peft_config_json(&c, &text, &err) == KEEL_ERR_INVALID);
    c = golden_config();
    c.n_target_modules = 0;
    CHECK("no targets rejected", keel_peft_config_json(&c, &text, &err) == KEEL_ERR_INVALID);

    // A whole adapter directory, written and read back.
    char *adir = path_in(g_dir, "peft");
    mkdir(adir, 0755);
    float *bufs[28] = {0};
    CHECK("adapter written", write_adapter(adir, bufs, &err) == KEEL_OK);
    char *sp = path_in(adir, "adapter_model.safetensors");
    keel_safetensors *s = NULL;
    CHECK("adapter reads back", keel_st_open(sp, &s, &err) == KEEL_OK && keel_st_n_tensors(s) == 28);
    const keel_tensor_info *ti = s ? keel_st_find_tensor(s, "base_model.model.model.layers.1.mlp.down_proj.lora_A.weight") : NULL;
    CHECK("down_proj A is (r=8, in=32)", ti && ti->ne[0] == 32 && ti->ne[1] == 8);
    keel_st_close(s);
    char *cp = path_in(adir, "adapter_config.json");
    char *ctext = NULL;
    CHECK("config file reads back", keel_read_file(cp, &ctext, NULL, &err) == KEEL_OK);
    cJSON *cj = ctext ? cJSON_Parse(ctext) : NULL;
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(cj, "target_modules");
    CHECK("target_modules sorted and unique", cJSON_GetArraySize(tm) == 7 &&
              strcmp(cJSON_GetArrayItem(tm, 0)->valuestring, "down_proj") == 0);
    cJSON_Delete(cj);
    free(ctext);
    unlink(sp);
    unlink(cp);
    rmdir(adir);
    for (int i = 0; i < 28; i++) free(bufs[i]);
    if (keep) {
        char *kd = path_in(keep, "peft");
        mkdir(kd, 0755);
        float *kb[28] = {0};
        CHECK("keep adapter written", write_adapter(kd, kb, &err) == KEEL_OK);
        for (int i = 0; i < 28; i++) free(kb[i]);
        free(kd);
    }
    free(sp);
    free(cp);
    free(adir);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/keel-writers-XXXXXX");
    if (!mkdtemp(g_dir)) {
        CHECK("mkdtemp", false);
        return test_report();
    }
    const char *keep = getenv("KEEL_WRITERS_KEEP");
    if (keep && *keep) mkdir(keep, 0755);
    else keep = NULL;
    test_atomic();
    test_safetensors(keep);
    test_peft(keep);
    CHECK("temp dir left empty", count_entries(g_dir) == 0);
    rmdir(g_dir);
    return test_report();
}
