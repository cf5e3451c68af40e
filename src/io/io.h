// SPDX-License-Identifier: MIT
// io.h — model-file readers: GGUF (v2, v3) and safetensors (+ HF config.json
// via cJSON in model/). Readers only parse and bounds-check; they never
// compute. Tensor data stays in the read-only mapping.
#ifndef KEEL_IO_H
#define KEEL_IO_H

#include "core/core.h"

// A tensor inside a mapped file. ne[0] innermost (GGUF order).
typedef struct keel_tensor_info {
    char *name;
    keel_dtype type;
    int32_t n_dims;
    int64_t ne[4];      // unused dims are 1
    size_t nbytes;
    uint64_t offset;    // byte offset of the data from the start of the file
    const void *data;   // points into the mapping. Aligned only as the file is:
                        // GGUF to min(general.alignment, page); safetensors as the
                        // writer padded its header (the reference writer pads to 8).
} keel_tensor_info;

// Bytes a tensor of type t with ne elements needs; false if t is unknown,
// ne[0] is not a multiple of the block size, or the size overflows.
KEEL_INTERNAL bool keel_dtype_nbytes(keel_dtype t, const int64_t ne[4], size_t *out);
// Elements per block (32 for Q4_0/Q4_1/Q8_0, 1 otherwise); 0 for unknown types.
KEEL_INTERNAL int keel_dtype_block(keel_dtype t);
KEEL_INTERNAL bool keel_dtype_known(uint32_t t);

// ---- GGUF -----------------------------------------------------------------
//
// Layout (all little-endian):
//   u32 magic "GGUF" | u32 version (2, 3; v1 is rejected) | u64 n_tensors | u64 n_kv
//   n_kv × { string key | u32 value_type | value }
//   n_tensors × { string name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset }
//   padding to general.alignment (default 32) | tensor data (offsets relative to here)
//   string = u64 len + bytes (no NUL). array = u32 elem_type + u64 n + elements.

typedef enum keel_gguf_type {
    KEEL_GGUF_UINT8 = 0, KEEL_GGUF_INT8 = 1, KEEL_GGUF_UINT16 = 2, KEEL_GGUF_INT16 = 3,
    KEEL_GGUF_UINT32 = 4, KEEL_GGUF_INT32 = 5, KEEL_GGUF_FLOAT32 = 6, KEEL_GGUF_BOOL = 7,
    KEEL_GGUF_STRING = 8, KEEL_GGUF_ARRAY = 9, KEEL_GGUF_UINT64 = 10, KEEL_GGUF_INT64 = 11,
    KEEL_GGUF_FLOAT64 = 12,
    KEEL_GGUF_TYPE_COUNT = 13, // not a value type: returned for an out-of-range index / non-array kv
} keel_gguf_type;

typedef struct keel_gguf keel_gguf;

// Open, map and validate a GGUF file (header, every KV, every tensor info,
// alignment, offsets/sizes inside the file, no overlaps). Unsupported tensor
// types are an error naming the tensor and the type.
KEEL_INTERNAL keel_status keel_gguf_open(const char *path, keel_gguf **out, keel_err *err);
KEEL_INTERNAL void keel_gguf_close(keel_gguf *g);
KEEL_INTERNAL const char *keel_gguf_path(const keel_gguf *g);
KEEL_INTERNAL uint32_t keel_gguf_version(const keel_gguf *g);
KEEL_INTERNAL size_t keel_gguf_alignment(const keel_gguf *g);

KEEL_INTERNAL int64_t keel_gguf_n_kv(const keel_gguf *g);
KEEL_INTERNAL int64_t keel_gguf_find_key(const keel_gguf *g, const char *key); // -1 if absent
KEEL_INTERNAL const char *keel_gguf_key(const keel_gguf *g, int64_t i);
KEEL_INTERNAL keel_gguf_type keel_gguf_kv_type(const keel_gguf *g, int64_t i);
KEEL_INTERNAL keel_gguf_type keel_gguf_arr_type(const keel_gguf *g, int64_t i); // for ARRAY kvs
KEEL_INTERNAL uint64_t keel_gguf_arr_n(const keel_gguf *g, int64_t i);

// Typed getters by key. Missing key: returns KEEL_ERR_FORMAT unless the key is
// optional (then *out keeps its default and KEEL_OK is returned when
// `optional`). Integer getters accept any integer type whose value fits;
// float getters accept FLOAT32/FLOAT64. A wrong type is KEEL_ERR_FORMAT
// naming the key and both types.
KEEL_INTERNAL keel_status keel_gguf_get_u32(const keel_gguf *g, const char *key, bool optional, uint32_t *out, keel_err *err);
KEEL_INTERNAL keel_status keel_gguf_get_i64(const keel_gguf *g, const char *key, bool optional, int64_t *out, keel_err *err);
KEEL_INTERNAL keel_status keel_gguf_get_f32(const keel_gguf *g, const char *key, bool optional, float *out, keel_err *err);
KEEL_INTERNAL keel_status keel_gguf_get_bool(const keel_gguf *g, const char *key, bool optional, bool *out, keel_err *err);
// String values: *out points into the mapping, NOT NUL-terminated; *len its length.
KEEL_INTERNAL keel_status keel_gguf_get_str(const keel_gguf *g, const char *key, bool optional, const char **out, size_t *len, keel_err *err);

// Array access by kv index (check keel_gguf_arr_type first).
// Numeric arrays: pointer to the packed little-endian elements in the mapping
// (may be unaligned: read with memcpy). NULL for string arrays, arrays of
// arrays (validated but not decoded) and non-array kvs.
KEEL_INTERNAL const void *keel_gguf_arr_data(const keel_gguf *g, int64_t i);
// String arrays: element j (pointer into the mapping, not NUL-terminated).
KEEL_INTERNAL const char *keel_gguf_arr_str(const keel_gguf *g, int64_t i, uint64_t j, size_t *len);

KEEL_INTERNAL int64_t keel_gguf_n_tensors(const keel_gguf *g);
KEEL_INTERNAL const keel_tensor_info *keel_gguf_tensor(const keel_gguf *g, int64_t i);
KEEL_INTERNAL const keel_tensor_info *keel_gguf_find_tensor(const keel_gguf *g, const char *name);

// ---- safetensors --------------------------------------------------------------
//
// Layout: u64 header_len | JSON header {"name": {"dtype","shape","data_offsets":[b,e]},
// "__metadata__": {...}} | data. Offsets relative to the data start.
// F32, F16 and BF16 are supported; others are rejected naming the tensor.

typedef struct keel_safetensors keel_safetensors;

KEEL_INTERNAL keel_status keel_st_open(const char *path, keel_safetensors **out, keel_err *err);
KEEL_INTERNAL void keel_st_close(keel_safetensors *s);
KEEL_INTERNAL const char *keel_st_path(const keel_safetensors *s);
KEEL_INTERNAL int64_t keel_st_n_tensors(const keel_safetensors *s);
// ne is in GGUF order: safetensors shape [out, in] becomes ne = {in, out}.
// A scalar (shape []) has n_dims = 1 and ne = {1, 1, 1, 1}. Tensors keep the
// header's order; names are unique (duplicates are rejected).
KEEL_INTERNAL const keel_tensor_info *keel_st_tensor(const keel_safetensors *s, int64_t i);
KEEL_INTERNAL const keel_tensor_info *keel_st_find_tensor(const keel_safetensors *s, const char *name);
// "__metadata__" string value for key, or NULL.
KEEL_INTERNAL const char *keel_st_metadata(const keel_safetensors *s, const char *key);

// ---- atomic file writing (atomic.c) ---------------------------------------------
//
// The file is written to "PATH.tmp.<pid>" in the same directory, fsynced,
// renamed over PATH and the directory fsynced: a reader (or a crash) sees the
// old file or the new one, never a torn one. On any error the temporary is
// removed, PATH is untouched, and KEEL_ERR_IO names the path and strerror.

typedef struct keel_afile {
    int fd;
    const char *path; // the final path (for messages)
    const char *tmp;  // the temporary being written
    uint64_t written; // bytes so far
} keel_afile;

// Write all n bytes (loops over partial writes and EINTR).
KEEL_INTERNAL keel_status keel_afile_write(keel_afile *f, const void *buf, size_t n, keel_err *err);
// fn writes the contents through keel_afile_write; its non-OK status aborts
// the write (temporary removed) and is returned unchanged.
typedef keel_status (*keel_afile_fn)(keel_afile *f, void *ctx, keel_err *err);
KEEL_INTERNAL keel_status keel_atomic_write(const char *path, keel_afile_fn fn, void *ctx,
                                            keel_err *err);
// A list of buffers written back to back.
typedef struct keel_iobuf {
    const void *data;
    size_t len;
} keel_iobuf;
KEEL_INTERNAL keel_status keel_atomic_write_bufs(const char *path, const keel_iobuf *bufs,
                                                 size_t n_bufs, keel_err *err);

// ---- safetensors writer (safetensors_write.c) --------------------------------------
//
// Writes what safetensors.torch.save_file writes, byte for byte: tensors
// ordered by dtype (F32, then BF16, then F16: the library's dtype order,
// descending) and then by name (bytewise), the JSON header compact with
// "__metadata__" first and then the tensors in data order, padded with spaces
// to a multiple of 8, then the data back to back. Metadata keys are sorted.

#define KEEL_ST_MAX_DIMS 8

typedef struct keel_st_entry {
    const char *name;   // UTF-8, unique, not "__metadata__"
    keel_dtype type;    // F32, F16 or BF16 in the file
    int32_t n_dims;     // 0 (scalar) .. KEEL_ST_MAX_DIMS
    int64_t shape[KEEL_ST_MAX_DIMS]; // PyTorch order: a (out, in) weight is {out, in}
    const void *data;   // little-endian elements of `type`, or floats if from_f32
    bool from_f32;      // data is fp32; converted to F16/BF16 (round to nearest even) on write
} keel_st_entry;

typedef struct keel_st_kv {
    const char *key, *value;
} keel_st_kv;

// Write n tensors and n_meta metadata strings to path, atomically.
// KEEL_ERR_INVALID (naming the tensor) for a duplicate or empty name, an
// unsupported type, a negative dimension or a size overflow.
KEEL_INTERNAL keel_status keel_st_write(const char *path, const keel_st_entry *t, size_t n,
                                        const keel_st_kv *meta, size_t n_meta, keel_err *err);

// ---- PEFT LoRA adapter layout (peft.c) ------------------------------------------------

typedef struct keel_peft_lora_config {
    int32_t r;
    double lora_alpha;
    double lora_dropout;
    const char *const *target_modules; // HF module names ("q_proj", ...)
    size_t n_target_modules;
    bool use_rslora;
    const char *base_model_name_or_path; // NULL: JSON null
    const char *bias;                    // NULL: "none"
    const char *task_type;               // NULL: "CAUSAL_LM"
    bool inference_mode;                 // PEFT saves adapters with true
} keel_peft_lora_config;

KEEL_INTERNAL keel_peft_lora_config keel_peft_lora_default_config(void);
// adapter_config.json as PEFT's LoraConfig.save_pretrained writes it (the keys
// every PEFT since 0.9 reads; target_modules sorted). Caller frees with free().
KEEL_INTERNAL keel_status keel_peft_config_json(const keel_peft_lora_config *c, char **out,
                                                keel_err *err);
// The same, written atomically to path.
KEEL_INTERNAL keel_status keel_peft_write_config(const char *path, const keel_peft_lora_config *c,
                                                 keel_err *err);
// PEFT's tensor key for the LoRA A or B matrix of an HF module:
//   ("model.layers.3.self_attn.q_proj", 'A') -> "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight"
// A trailing ".weight" on the module name is dropped. Returns the key length,
// or -1 if ab is not 'A'/'B' or the key does not fit in cap bytes (with NUL).
KEEL_INTERNAL int keel_peft_lora_key(char *out, size_t cap, const char *hf_module, char ab);
// The same for a Llama-family layer projection by index: proj is one of
// q_proj k_proj v_proj o_proj (self_attn) or gate_proj up_proj down_proj (mlp);
// -1 for another name.
KEEL_INTERNAL int keel_peft_lora_key_llama(char *out, size_t cap, int layer, const char *proj,
                                           char ab);

// ---- YAML helpers (yaml_util.c): shared by job/job.c and cap/suite.c ------------
struct yaml_node_s; // libyaml's yaml_node_t

// A plain scalar that YAML reads as null: empty, "~", "null", "Null", "NULL".
KEEL_INTERNAL bool keel_yaml_is_null(const struct yaml_node_s *n);
// "a mapping", "a list", "a plain scalar" or "a quoted string", for messages.
KEEL_INTERNAL const char *keel_yaml_kind(const struct yaml_node_s *n);
// A printable excerpt of a scalar in buf (control bytes as '?', "..." when
// cut to cap); returns buf.
KEEL_INTERNAL const char *keel_yaml_shown(const struct yaml_node_s *n, char *buf, size_t cap);
// A plain scalar holding a finite decimal number (no hex, inf, nan, spaces).
KEEL_INTERNAL bool keel_yaml_double(const struct yaml_node_s *n, double *out);
// A plain decimal integer: into *uout (non-negative, up to UINT64_MAX) when
// uout is not NULL, else into *out (int64; negative only when allow_neg).
KEEL_INTERNAL bool keel_yaml_int(const struct yaml_node_s *n, bool allow_neg, int64_t *out, uint64_t *uout);
// " (did you mean 'x'?)" for the candidate of cands[0..n) (NULL-terminated
// early is fine) closest to got, within edit distance max(2, len/3); else "".
KEEL_INTERNAL void keel_did_you_mean(const char *got, const char *const *cands, int n, char *out, size_t cap);
// Append s as a YAML double-quoted scalar (control bytes and the line
// separators YAML would fold escaped; UTF-8 passes through).
KEEL_INTERNAL bool keel_yaml_put_str(keel_buf *b, const char *s);
// Append v as the shorter of %.15g / %.17g that reads back exactly.
KEEL_INTERNAL bool keel_yaml_put_double(keel_buf *b, double v);

#endif // KEEL_IO_H
