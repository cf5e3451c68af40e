// test_safetensors.c — the safetensors reader (src/io/safetensors.c): the
// handcrafted corpus of tests/fuzz/corpus/safetensors (valid_* open with the
// right dtypes, GGUF-order shapes, offsets and values; bad_* fail with the
// right status and a message naming the file), a file written by the reference
// library (valid_reference_torch.safetensors: safetensors 0.8.0 save_file from
// torch tensors), and OOM on our own allocations.
#include "io/io.h"
#include "test.h"
#include "corpus_check.h"

#include <dirent.h>

#define CORPUS "tests/fuzz/corpus/safetensors"

static bool has(const char *msg, const char *sub) { return strstr(msg, sub) != NULL; }

static float f16_at(const void *p, int i) {
    uint16_t h;
    memcpy(&h, (const char *)p + 2 * i, 2);
    return keel_fp16_to_fp32(h);
}
static float bf16_at(const void *p, int i) {
    uint16_t h;
    memcpy(&h, (const char *)p + 2 * i, 2);
    return keel_bf16_to_fp32(h);
}
static float f32_at(const void *p, int i) {
    float f;
    memcpy(&f, (const char *)p + 4 * i, 4);
    return f;
}

static bool ne_is(const keel_tensor_info *t, int n_dims, int64_t a, int64_t b, int64_t c, int64_t d) {
    return t && t->n_dims == n_dims && t->ne[0] == a && t->ne[1] == b && t->ne[2] == c && t->ne[3] == d;
}

static void test_small(void) {
    keel_safetensors *s = NULL;
    keel_err e = {0};
    const char *path = CORPUS "/valid_small.safetensors";
    CHECK("valid_small opens", keel_st_open(path, &s, &e) == KEEL_OK);
    if (!s) {
        fprintf(stderr, "  %s\n", e.msg);
        return;
    }
    CHECK("path", strcmp(keel_st_path(s), path) == 0);
    CHECK("3 tensors", keel_st_n_tensors(s) == 3);
    const keel_tensor_info *t = keel_st_tensor(s, 0);
    CHECK("header order kept", t && strcmp(t->name, "w.f32") == 0);
    // shape [2, 3] -> ne {3, 2}
    CHECK("f32 ne reversed", ne_is(t, 2, 3, 2, 1, 1) && t->type == KEEL_DTYPE_F32 && t->nbytes == 24);
    CHECK("f32 values", t && f32_at(t->data, 0) == 0.0f && f32_at(t->data, 1) == 0.5f && f32_at(t->data, 5) == 2.5f);
    const keel_tensor_info *t0 = t;
    t = keel_st_find_tensor(s, "w.f16");
    CHECK("f16", ne_is(t, 1, 4, 1, 1, 1) && t->type == KEEL_DTYPE_F16 && t->nbytes == 8 && t->offset == t0->offset + 24);
    CHECK("f16 values", t && f16_at(t->data, 1) == -2.0f && f16_at(t->data, 3) == 65504.0f);
    t = keel_st_find_tensor(s, "w.scalar");
    CHECK("scalar is n_dims 1, ne all 1", ne_is(t, 1, 1, 1, 1, 1) && t->type == KEEL_DTYPE_BF16 && t->nbytes == 2);
    CHECK("scalar value", t && bf16_at(t->data, 0) == 1.0f);
    CHECK("absolute offset", t0->offset % 8 == 0 && (const uint8_t *)t0->data - t0->offset ==
                                                        (const uint8_t *)t->data - t->offset);
    CHECK("metadata", keel_st_metadata(s, "format") && strcmp(keel_st_metadata(s, "format"), "pt") == 0 &&
                          strcmp(keel_st_metadata(s, "note"), "keel test") == 0);
    CHECK("metadata missing", keel_st_metadata(s, "nope") == NULL);
    CHECK("__metadata__ is not a tensor", keel_st_find_tensor(s, "__metadata__") == NULL);
    CHECK("lookups miss", keel_st_find_tensor(s, "w") == NULL && keel_st_find_tensor(s, "w.f32x") == NULL &&
                              keel_st_tensor(s, 3) == NULL && keel_st_tensor(s, -1) == NULL);
    keel_st_close(s);
}

static void test_reference(void) {
    keel_safetensors *s = NULL;
    keel_err e = {0};
    CHECK("reference file opens", keel_st_open(CORPUS "/valid_reference_torch.safetensors", &s, &e) == KEEL_OK);
    if (!s) {
        fprintf(stderr, "  %s\n", e.msg);
        return;
    }
    CHECK("3 tensors", keel_st_n_tensors(s) == 3);
    const keel_tensor_info *t = keel_st_find_tensor(s, "model.layers.0.mlp.down_proj.weight");
    // torch (3, 4) = (out, in) -> ne {4, 3}; row r col c = (4r + c) / 4
    CHECK("down_proj (3,4) -> ne {4,3}", ne_is(t, 2, 4, 3, 1, 1) && t->type == KEEL_DTYPE_F32);
    CHECK("row-major values", t && f32_at(t->data, 4 * 2 + 1) == 9.0f / 4 && f32_at(t->data, 11) == 11.0f / 4);
    t = keel_st_find_tensor(s, "model.norm.weight");
    CHECK("norm f16", ne_is(t, 1, 5, 1, 1, 1) && t->type == KEEL_DTYPE_F16 && f16_at(t->data, 4) == 65504.0f);
    t = keel_st_find_tensor(s, "lm_head.weight");
    CHECK("lm_head bf16", ne_is(t, 2, 2, 2, 1, 1) && t->type == KEEL_DTYPE_BF16 && bf16_at(t->data, 2) == -0.5f &&
                              bf16_at(t->data, 3) == 0.25f);
    CHECK("metadata", keel_st_metadata(s, "format") && strcmp(keel_st_metadata(s, "format"), "pt") == 0);
    keel_st_close(s);
}

static void test_other_valid(void) {
    keel_safetensors *s = NULL;
    keel_err e = {0};
    CHECK("empty header", keel_st_open(CORPUS "/valid_empty.safetensors", &s, &e) == KEEL_OK && s &&
                              keel_st_n_tensors(s) == 0 && keel_st_metadata(s, "format") == NULL &&
                              keel_st_find_tensor(s, "a") == NULL);
    keel_st_close(s);
    s = NULL;
    CHECK("4-d", keel_st_open(CORPUS "/valid_4d.safetensors", &s, &e) == KEEL_OK && s &&
                     ne_is(keel_st_tensor(s, 0), 4, 2, 3, 1, 2) && keel_st_tensor(s, 0)->nbytes == 24);
    keel_st_close(s);
    s = NULL;
    CHECK("unpadded header", keel_st_open(CORPUS "/valid_no_padding.safetensors", &s, &e) == KEEL_OK && s &&
                                 f32_at(keel_st_tensor(s, 0)->data, 0) == 3.0f);
    keel_st_close(s);
}

static const expect bad_files[] = {
    {"bad_empty.safetensors", KEEL_ERR_FORMAT, "truncated: 0 bytes"},
    {"bad_truncated_length.safetensors", KEEL_ERR_FORMAT, "truncated: 3 bytes"},
    {"bad_header_len_past_end.safetensors", KEEL_ERR_FORMAT, "header length 1000 runs past the end of the file"},
    {"bad_header_len_huge.safetensors", KEEL_ERR_FORMAT, "header length 9223372036854775808 is over the 100 MB limit"},
    {"bad_header_len_over_limit.safetensors", KEEL_ERR_FORMAT, "header length 104857601 is over the 100 MB limit"},
    {"bad_header_not_json.safetensors", KEEL_ERR_FORMAT, "header is not valid JSON"},
    {"bad_header_truncated_json.safetensors", KEEL_ERR_FORMAT, "header is not valid JSON"},
    {"bad_header_not_object.safetensors", KEEL_ERR_FORMAT, "header is not a JSON object"},
    {"bad_header_trailing_garbage.safetensors", KEEL_ERR_FORMAT, "trailing bytes after the JSON"},
    {"bad_header_zero_length.safetensors", KEEL_ERR_FORMAT, "header is not valid JSON"},
    {"bad_header_nul.safetensors", KEEL_ERR_FORMAT, "header is not valid JSON"},
    {"bad_tensor_not_object.safetensors", KEEL_ERR_FORMAT, "tensor 'a' is not a JSON object"},
    {"bad_missing_dtype.safetensors", KEEL_ERR_FORMAT, "tensor 'a' has no \"dtype\" string"},
    {"bad_missing_shape.safetensors", KEEL_ERR_FORMAT, "tensor 'a' has no \"shape\" array"},
    {"bad_missing_offsets.safetensors", KEEL_ERR_FORMAT, "tensor 'a' has no \"data_offsets\""},
    {"bad_dtype_i64.safetensors", KEEL_ERR_UNSUPPORTED, "tensor 'ids' has dtype I64, which keel does not support"},
    {"bad_dtype_unknown.safetensors", KEEL_ERR_UNSUPPORTED, "tensor 'a' has dtype Q4"},
    {"bad_dtype_not_string.safetensors", KEEL_ERR_FORMAT, "tensor 'a' has no \"dtype\" string"},
    {"bad_shape_negative.safetensors", KEEL_ERR_FORMAT, "tensor 'a': shape entries must be non-negative integers"},
    {"bad_shape_fraction.safetensors", KEEL_ERR_FORMAT, "shape entries must be non-negative integers"},
    {"bad_shape_string.safetensors", KEEL_ERR_FORMAT, "shape entries must be non-negative integers"},
    {"bad_shape_5d.safetensors", KEEL_ERR_UNSUPPORTED, "tensor 'a' has 5 dimensions"},
    {"bad_shape_zero.safetensors", KEEL_ERR_UNSUPPORTED, "tensor 'a' has an empty (size 0) dimension"},
    {"bad_shape_overflow.safetensors", KEEL_ERR_FORMAT, "tensor 'a': byte size overflows"},
    {"bad_size_mismatch.safetensors", KEEL_ERR_FORMAT, "tensor 'a': shape and dtype need 12 bytes but data_offsets span 8"},
    {"bad_offsets_past_end.safetensors", KEEL_ERR_FORMAT, "data_offsets [0, 16] are not inside the 8-byte data section"},
    {"bad_offsets_reversed.safetensors", KEEL_ERR_FORMAT, "data_offsets [8, 0] are not inside"},
    {"bad_offsets_negative.safetensors", KEEL_ERR_FORMAT, "data_offsets must be non-negative integers"},
    {"bad_offsets_three.safetensors", KEEL_ERR_FORMAT, "no \"data_offsets\" [begin, end] pair"},
    {"bad_overlap.safetensors", KEEL_ERR_FORMAT, "tensors 'a' and 'b' overlap"},
    {"bad_duplicate_name.safetensors", KEEL_ERR_FORMAT, "duplicate tensor name 'a'"},
    {"bad_metadata_not_object.safetensors", KEEL_ERR_FORMAT, "\"__metadata__\" is not an object"},
    {"bad_metadata_not_string.safetensors", KEEL_ERR_FORMAT, "\"__metadata__\" value of 'n' is not a string"},
    {"bad_metadata_duplicate.safetensors", KEEL_ERR_FORMAT, "duplicate \"__metadata__\""},
};

static keel_status open_any(const char *path, void **h, keel_err *e) {
    keel_safetensors *x = (keel_safetensors *)1;
    keel_status st = keel_st_open(path, &x, e);
    *h = x;
    return st;
}
static void close_any(void *h) { keel_st_close(h); }

static void test_bad_files(void) {
    size_t n = sizeof bad_files / sizeof bad_files[0];
    CHECK("every named bad file fails as expected", corpus_check_table(CORPUS, bad_files, n, open_any) == (int)n);
}

// Every corpus file: valid_* opens, bad_* fails naming the file, anything else
// (fuzzer finds) must simply not crash. Also every bad_* file is in the table.
static void test_corpus(void) {
    corpus_check_dir(CORPUS, bad_files, sizeof bad_files / sizeof bad_files[0], open_any, close_any, 5, 30);
}

static void test_io_errors(void) {
    keel_safetensors *s = (keel_safetensors *)1;
    keel_err e = {0};
    CHECK("missing file", keel_st_open("tests/no/such.safetensors", &s, &e) == KEEL_ERR_IO && s == NULL &&
                              has(e.msg, "tests/no/such.safetensors"));
    CHECK("directory", keel_st_open("tests", &s, &e) == KEEL_ERR_IO);
    CHECK("GGUF given to the safetensors reader", keel_st_open("tests/fuzz/corpus/gguf/valid_v2.gguf", &s, &e) ==
                                                      KEEL_ERR_FORMAT && s == NULL);
}

// Our allocations only: cJSON allocates with the C library's malloc.
static void test_oom(void) {
    int fails = 0, wrong = 0;
    for (long n = 1; n < 1000; n++) {
        keel_safetensors *s = NULL;
        keel_err e = {0};
        keel_mem_fail_after(n);
        keel_status st = keel_st_open(CORPUS "/valid_small.safetensors", &s, &e);
        keel_mem_fail_after(0);
        if (st == KEEL_OK) {
            keel_st_close(s);
            break;
        }
        fails++;
        if (st != KEEL_ERR_NOMEM || s != NULL) {
            wrong++;
            fprintf(stderr, "FAIL oom n=%ld: status %d '%s'\n", n, (int)st, e.msg);
        }
    }
    CHECK("OOM: every failing allocation gives KEEL_ERR_NOMEM", fails >= 5 && wrong == 0);
}

int main(void) {
    test_small();
    test_reference();
    test_other_valid();
    test_bad_files();
    test_corpus();
    test_io_errors();
    test_oom();
    return test_report();
}
