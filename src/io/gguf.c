// SPDX-License-Identifier: MIT
// gguf.c — GGUF reader (versions 2 and 3; v1's 32-bit counts are rejected).
// Maps the file read-only, validates every byte it will later hand out, and
// indexes keys and tensors. Nothing is copied except names.
// Format (little-endian; ggml docs/gguf.md):
//   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv × { string key | u32 type | value }         string = u64 len + bytes
//   n_tensors × { string name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset }
//   pad to general.alignment (default 32) | data (tensor offsets relative to here)
// array value = u32 elem_type | u64 n | n elements (elements may be arrays).
#include "io/io.h"

#include <inttypes.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c reads little-endian fields with memcpy: port it before building on a big-endian host"
#endif

#define GGUF_MAGIC 0x46554747u   // "GGUF" read as a little-endian u32
#define GGUF_DEFAULT_ALIGN 32
#define GGUF_MAX_DEPTH 8         // nesting of arrays of arrays
#define GGUF_MIN_KV_BYTES 13     // u64 key len + u32 type + 1-byte value
#define GGUF_MIN_TI_BYTES 32     // u64 name len + u32 n_dims + u64 ne + u32 type + u64 offset

typedef struct gguf_kv {
    const char *key;       // NUL-terminated, in g->names
    size_t key_off;        // offset in g->names while parsing
    keel_gguf_type type;
    keel_gguf_type arr_type;
    uint64_t arr_n;
    size_t val;            // mapping offset: scalar value / string bytes / first array element
    uint64_t str_len;      // STRING values
    size_t *str_at;        // string arrays: mapping offset of element j's u64 length prefix
} gguf_kv;

struct keel_gguf {
    keel_map map;
    uint32_t version;
    size_t alignment;
    uint64_t data_offset;  // absolute offset of the data section
    int64_t n_kv;
    gguf_kv *kvs;          // (n_kv)
    int64_t n_tensors;
    keel_tensor_info *tensors; // (n_tensors)
    keel_buf names;        // all keys and tensor names, NUL-separated
    int64_t *kv_hash;      // open addressing, index + 1 (0 = empty); (kv_cap)
    size_t kv_cap;
    int64_t *t_hash;       // same for tensors; (t_cap)
    size_t t_cap;
};

// ---- reading ------------------------------------------------------------------

typedef struct reader {
    const uint8_t *p;
    size_t size, pos;
    const char *path;
    keel_err *err;
    char what[160]; // what is being read, for messages
} reader;

static keel_status truncated(reader *r, size_t need) {
    return KEEL_FAIL(r->err, KEEL_ERR_FORMAT,
                     "%s: truncated in %s (need %zu bytes at offset %zu, file is %zu bytes)", r->path,
                     r->what, need, r->pos, r->size);
}

static size_t remaining(const reader *r) { return r->size - r->pos; }

static keel_status too_many(reader *r, uint64_t n) {
    return KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: array of %" PRIu64 " elements in %s does not fit in the "
                     "%zu bytes left", r->path, n, r->what, remaining(r));
}

static keel_status rd_bytes(reader *r, void *out, size_t n) {
    if (remaining(r) < n) return truncated(r, n);
    memcpy(out, r->p + r->pos, n);
    r->pos += n;
    return KEEL_OK;
}
static keel_status rd_u32(reader *r, uint32_t *v) { return rd_bytes(r, v, 4); } // host is little-endian
static keel_status rd_u64(reader *r, uint64_t *v) { return rd_bytes(r, v, 8); }

static keel_status skip(reader *r, uint64_t n) {
    if ((uint64_t)remaining(r) < n) return truncated(r, n > SIZE_MAX ? SIZE_MAX : (size_t)n);
    r->pos += (size_t)n;
    return KEEL_OK;
}

// A string: on success *at is the mapping offset of its bytes.
static keel_status rd_str(reader *r, size_t *at, uint64_t *len) {
    keel_status st = rd_u64(r, len);
    if (st) return st;
    *at = r->pos;
    return skip(r, *len);
}

// ---- names and types ------------------------------------------------------------

static const char *gguf_type_name(uint32_t t) {
    static const char *const names[] = {"UINT8", "INT8",   "UINT16", "INT16", "UINT32",
                                        "INT32", "FLOAT32", "BOOL",  "STRING", "ARRAY",
                                        "UINT64", "INT64", "FLOAT64"};
    return t < sizeof names / sizeof names[0] ? names[t] : "?";
}

// ggml's names for type ids we do not load, so the error says what the file holds.
static const char *ggml_type_name(uint32_t t) {
    static const char *const names[] = {
        "F32",     "F16",    "Q4_0",   "Q4_1",  "Q4_2",  "Q4_3",   "Q5_0",   "Q5_1",
        "Q8_0",    "Q8_1",   "Q2_K",   "Q3_K",  "Q4_K",  "Q5_K",   "Q6_K",   "Q8_K",
        "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S",  "IQ4_XS",
        "I8",      "I16",    "I32",    "I64",   "F64",   "IQ1_M",  "BF16",   "Q4_0_4_4",
        "Q4_0_4_8", "Q4_0_8_8", "TQ1_0", "TQ2_0", "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8",
        "MXFP4"};
    return t < sizeof names / sizeof names[0] ? names[t] : NULL;
}

// Bytes of one scalar of a fixed-size type; 0 for STRING/ARRAY/invalid.
static size_t scalar_size(uint32_t t) {
    switch (t) {
    case KEEL_GGUF_UINT8: case KEEL_GGUF_INT8: case KEEL_GGUF_BOOL: return 1;
    case KEEL_GGUF_UINT16: case KEEL_GGUF_INT16: return 2;
    case KEEL_GGUF_UINT32: case KEEL_GGUF_INT32: case KEEL_GGUF_FLOAT32: return 4;
    case KEEL_GGUF_UINT64: case KEEL_GGUF_INT64: case KEEL_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static bool valid_type(uint32_t t) { return t <= KEEL_GGUF_FLOAT64; }

// FNV-1a over a NUL-terminated string.
static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static size_t hash_cap(int64_t n) {
    size_t cap = 8;
    while (cap < (size_t)n * 2) cap *= 2;
    return cap;
}

// Insert index i (whose name is name_of(i)) or return the index already there.
static int64_t hash_insert(int64_t *tab, size_t cap, const char *name, int64_t i,
                           const char *(*name_of)(const keel_gguf *, int64_t), const keel_gguf *g) {
    size_t h = (size_t)hash_str(name) & (cap - 1);
    while (tab[h]) {
        int64_t j = tab[h] - 1;
        if (strcmp(name_of(g, j), name) == 0) return j;
        h = (h + 1) & (cap - 1);
    }
    tab[h] = i + 1;
    return -1;
}

static int64_t hash_find(const int64_t *tab, size_t cap, const char *name,
                         const char *(*name_of)(const keel_gguf *, int64_t), const keel_gguf *g) {
    if (!tab || !name) return -1;
    size_t h = (size_t)hash_str(name) & (cap - 1);
    while (tab[h]) {
        int64_t j = tab[h] - 1;
        if (strcmp(name_of(g, j), name) == 0) return j;
        h = (h + 1) & (cap - 1);
    }
    return -1;
}

// During parsing names live at offsets in g->names (the buffer may still move).
static const char *kv_name_parsing(const keel_gguf *g, int64_t i) { return g->names.data + g->kvs[i].key_off; }
static const char *kv_name(const keel_gguf *g, int64_t i) { return g->kvs[i].key; }
static const char *t_name(const keel_gguf *g, int64_t i) { return g->tensors[i].name; }

// Copy a name from the mapping into the pool; rejects empty names and NULs.
static keel_status add_name(keel_gguf *g, reader *r, size_t at, uint64_t len, size_t *off) {
    const char *s = (const char *)r->p + at;
    if (len == 0) return KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: empty name in %s", r->path, r->what);
    if (memchr(s, 0, (size_t)len))
        return KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: name contains a NUL byte in %s", r->path, r->what);
    *off = g->names.len;
    if (!keel_buf_append(&g->names, s, (size_t)len) || !keel_buf_append(&g->names, "", 1))
        return KEEL_FAIL(r->err, KEEL_ERR_NOMEM, "%s: out of memory", r->path);
    return KEEL_OK;
}

// ---- values -----------------------------------------------------------------------

// Skip an array body (after its type was read) with nesting depth checks.
static keel_status skip_array(reader *r, int depth) {
    if (depth > GGUF_MAX_DEPTH)
        return KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: arrays nested deeper than %d in %s", r->path,
                         GGUF_MAX_DEPTH, r->what);
    uint32_t et;
    uint64_t n;
    keel_status st;
    if ((st = rd_u32(r, &et)) || (st = rd_u64(r, &n))) return st;
    if (!valid_type(et))
        return KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: invalid array element type %" PRIu32 " in %s",
                         r->path, et, r->what);
    size_t es = scalar_size(et);
    if (es) {
        if (n > remaining(r) / es) return too_many(r, n);
        return skip(r, n * es);
    }
    // strings need >= 8 bytes, arrays >= 12: bound n before looping
    if (n > remaining(r) / (et == KEEL_GGUF_STRING ? 8 : 12)) return too_many(r, n);
    for (uint64_t j = 0; j < n; j++) {
        if (et == KEEL_GGUF_STRING) {
            size_t at;
            uint64_t len;
            if ((st = rd_str(r, &at, &len))) return st;
        } else if ((st = skip_array(r, depth + 1))) {
            return st;
        }
    }
    return KEEL_OK;
}

static keel_status parse_value(keel_gguf *g, reader *r, gguf_kv *kv) {
    keel_status st;
    uint32_t t;
    if ((st = rd_u32(r, &t))) return st;
    if (!valid_type(t))
        return KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: invalid value type %" PRIu32 " in %s", r->path, t,
                         r->what);
    kv->type = (keel_gguf_type)t;
    if (t == KEEL_GGUF_STRING) return rd_str(r, &kv->val, &kv->str_len);
    if (t != KEEL_GGUF_ARRAY) {
        kv->val = r->pos;
        return skip(r, scalar_size(t));
    }
    // array: remember the element type and count, then index or skip the elements
    size_t start = r->pos;
    uint32_t et;
    uint64_t n;
    if ((st = rd_u32(r, &et)) || (st = rd_u64(r, &n))) return st;
    if (!valid_type(et))
        return KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: invalid array element type %" PRIu32 " in %s",
                         r->path, et, r->what);
    kv->arr_type = (keel_gguf_type)et;
    kv->arr_n = n;
    kv->val = r->pos;
    if (et != KEEL_GGUF_STRING) {
        r->pos = start;
        return skip_array(r, 1);
    }
    if (n > remaining(r) / 8) return too_many(r, n);
    kv->str_at = keel_malloc((size_t)(n ? n : 1) * sizeof *kv->str_at);
    if (!kv->str_at) return KEEL_FAIL(r->err, KEEL_ERR_NOMEM, "%s: out of memory", r->path);
    for (uint64_t j = 0; j < n; j++) {
        size_t at;
        uint64_t len;
        kv->str_at[j] = r->pos;
        if ((st = rd_str(r, &at, &len))) return st;
    }
    return KEEL_OK;
}

// Integer value of a scalar kv: is_neg/mag describe it exactly.
static bool kv_int(const keel_gguf *g, const gguf_kv *kv, bool *neg, uint64_t *mag) {
    const uint8_t *p = g->map.data + kv->val;
    int64_t s;
    *neg = false;
    switch (kv->type) {
    case KEEL_GGUF_UINT8: *mag = p[0]; return true;
    case KEEL_GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); *mag = v; return true; }
    case KEEL_GGUF_UINT32: { uint32_t v; memcpy(&v, p, 4); *mag = v; return true; }
    case KEEL_GGUF_UINT64: { uint64_t v; memcpy(&v, p, 8); *mag = v; return true; }
    case KEEL_GGUF_INT8: { int8_t v; memcpy(&v, p, 1); s = v; break; }
    case KEEL_GGUF_INT16: { int16_t v; memcpy(&v, p, 2); s = v; break; }
    case KEEL_GGUF_INT32: { int32_t v; memcpy(&v, p, 4); s = v; break; }
    case KEEL_GGUF_INT64: { int64_t v; memcpy(&v, p, 8); s = v; break; }
    default: return false;
    }
    *neg = s < 0;
    *mag = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
    return true;
}

// ---- open -------------------------------------------------------------------------

typedef struct span {
    uint64_t begin; // relative offset
    int64_t i;      // tensor index
} span;

static int cmp_span(const void *a, const void *b) {
    uint64_t x = ((const span *)a)->begin, y = ((const span *)b)->begin;
    return x < y ? -1 : x > y;
}

static keel_status parse_header(keel_gguf *g, reader *r) {
    keel_status st;
    uint32_t magic, version;
    uint64_t n_tensors, n_kv;
    snprintf(r->what, sizeof r->what, "the header");
    if (r->size < 4) return truncated(r, 4);
    memcpy(&magic, r->p, 4);
    if (magic != GGUF_MAGIC)
        return KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: not a GGUF file (magic %02x %02x %02x %02x, expected \"GGUF\")",
                         r->path, r->p[0], r->p[1], r->p[2], r->p[3]);
    r->pos = 4;
    if ((st = rd_u32(r, &version))) return st;
    if (version == 1)
        return KEEL_FAIL(r->err, KEEL_ERR_UNSUPPORTED,
                         "%s: GGUF version 1 is not supported (re-convert with a current llama.cpp)", r->path);
    uint32_t swapped = __builtin_bswap32(version);
    if (swapped == 2 || swapped == 3)
        return KEEL_FAIL(r->err, KEEL_ERR_UNSUPPORTED, "%s: big-endian GGUF (version %" PRIu32 ") is not supported",
                         r->path, swapped);
    if (version != 2 && version != 3)
        return KEEL_FAIL(r->err, KEEL_ERR_UNSUPPORTED,
                         "%s: GGUF version %" PRIu32 " is not supported (expected 2 or 3)", r->path, version);
    g->version = version;
    if ((st = rd_u64(r, &n_tensors)) || (st = rd_u64(r, &n_kv))) return st;
    // bound counts by the bytes left before allocating anything for them
    if (n_kv > remaining(r) / GGUF_MIN_KV_BYTES)
        return KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: n_kv %" PRIu64 " is too large for a %zu-byte file",
                         r->path, n_kv, r->size);
    if (n_tensors > remaining(r) / GGUF_MIN_TI_BYTES)
        return KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: n_tensors %" PRIu64 " is too large for a %zu-byte file",
                         r->path, n_tensors, r->size);
    g->n_kv = (int64_t)n_kv;
    g->n_tensors = (int64_t)n_tensors;
    return KEEL_OK;
}

static keel_status parse_kvs(keel_gguf *g, reader *r) {
    keel_status st;
    g->kvs = keel_calloc((size_t)g->n_kv, sizeof *g->kvs);
    g->kv_cap = hash_cap(g->n_kv);
    g->kv_hash = keel_calloc(g->kv_cap, sizeof *g->kv_hash);
    if (!g->kvs || !g->kv_hash) return KEEL_FAIL(r->err, KEEL_ERR_NOMEM, "%s: out of memory", r->path);
    g->alignment = GGUF_DEFAULT_ALIGN;
    for (int64_t i = 0; i < g->n_kv; i++) {
        gguf_kv *kv = &g->kvs[i];
        size_t at;
        uint64_t len;
        snprintf(r->what, sizeof r->what, "kv %" PRId64 " (key)", i);
        if ((st = rd_str(r, &at, &len)) || (st = add_name(g, r, at, len, &kv->key_off))) return st;
        const char *key = g->names.data + kv->key_off;
        snprintf(r->what, sizeof r->what, "kv %" PRId64 " '%.100s'", i, key);
        if (hash_insert(g->kv_hash, g->kv_cap, key, i, kv_name_parsing, g) >= 0)
            return KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: duplicate key '%s'", r->path, key);
        if ((st = parse_value(g, r, kv))) return st;
        if (strcmp(key, "general.alignment") == 0) {
            bool neg;
            uint64_t v;
            if (!kv_int(g, kv, &neg, &v))
                return KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: general.alignment has type %s, expected an integer",
                                 r->path, gguf_type_name(kv->type));
            if (neg || v == 0 || v > (1u << 30) || (v & (v - 1)))
                return KEEL_FAIL(r->err, KEEL_ERR_FORMAT,
                                 "%s: general.alignment %s%" PRIu64 " is not a power of two (1 .. 2^30)", r->path,
                                 neg ? "-" : "", v);
            g->alignment = (size_t)v;
        }
    }
    return KEEL_OK;
}

static keel_status parse_tensor_infos(keel_gguf *g, reader *r) {
    keel_status st;
    if (g->n_tensors > (int64_t)(remaining(r) / GGUF_MIN_TI_BYTES))
        return KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: n_tensors %" PRId64 " is too large for a %zu-byte file",
                         r->path, g->n_tensors, r->size);
    g->tensors = keel_calloc((size_t)g->n_tensors, sizeof *g->tensors);
    size_t *name_off = keel_calloc((size_t)g->n_tensors, sizeof *name_off);
    if (!g->tensors || !name_off) {
        keel_free(name_off);
        return KEEL_FAIL(r->err, KEEL_ERR_NOMEM, "%s: out of memory", r->path);
    }
    for (int64_t i = 0; i < g->n_tensors; i++) {
        keel_tensor_info *t = &g->tensors[i];
        size_t at;
        uint64_t len;
        uint32_t n_dims, type;
        snprintf(r->what, sizeof r->what, "tensor info %" PRId64 " (name)", i);
        if ((st = rd_str(r, &at, &len)) || (st = add_name(g, r, at, len, &name_off[i]))) goto out;
        const char *name = g->names.data + name_off[i];
        snprintf(r->what, sizeof r->what, "tensor info %" PRId64 " '%.100s'", i, name);
        if ((st = rd_u32(r, &n_dims))) goto out;
        if (n_dims < 1 || n_dims > 4) {
            st = KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: tensor '%s' has n_dims %" PRIu32 " (expected 1..4)",
                           r->path, name, n_dims);
            goto out;
        }
        t->n_dims = (int32_t)n_dims;
        int64_t prod = 1;
        for (int d = 0; d < 4; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < n_dims; d++) {
            uint64_t ne;
            if ((st = rd_u64(r, &ne))) goto out;
            if (ne == 0 || ne > (uint64_t)INT64_MAX) {
                st = KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: tensor '%s' has ne[%" PRIu32 "] = %" PRIu64
                               " (expected 1 .. 2^63-1)", r->path, name, d, ne);
                goto out;
            }
            if ((int64_t)ne > INT64_MAX / prod) {
                st = KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: tensor '%s': element count overflows", r->path, name);
                goto out;
            }
            prod *= (int64_t)ne;
            t->ne[d] = (int64_t)ne;
        }
        if ((st = rd_u32(r, &type))) goto out;
        if (!keel_dtype_known(type)) {
            const char *tn = ggml_type_name(type);
            if (tn)
                st = KEEL_FAIL(r->err, KEEL_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s (%" PRIu32
                               "), which keel does not support (F32, F16, BF16, Q8_0, Q4_0, Q4_1)",
                               r->path, name, tn, type);
            else
                st = KEEL_FAIL(r->err, KEEL_ERR_UNSUPPORTED, "%s: tensor '%s' has unknown type %" PRIu32, r->path,
                               name, type);
            goto out;
        }
        t->type = (keel_dtype)type;
        int blk = keel_dtype_block(t->type);
        if (t->ne[0] % blk != 0) {
            st = KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: tensor '%s': ne[0] = %" PRId64
                           " is not a multiple of the %s block size %d", r->path, name, t->ne[0],
                           keel_dtype_name(t->type), blk);
            goto out;
        }
        if (!keel_dtype_nbytes(t->type, t->ne, &t->nbytes)) {
            st = KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: tensor '%s': byte size overflows", r->path, name);
            goto out;
        }
        if ((st = rd_u64(r, &t->offset))) goto out; // relative for now
    }
    // names are final now: point into the pool and index them
    g->t_cap = hash_cap(g->n_tensors);
    g->t_hash = keel_calloc(g->t_cap, sizeof *g->t_hash);
    if (!g->t_hash) {
        st = KEEL_FAIL(r->err, KEEL_ERR_NOMEM, "%s: out of memory", r->path);
        goto out;
    }
    for (int64_t i = 0; i < g->n_tensors; i++) g->tensors[i].name = g->names.data + name_off[i];
    for (int64_t i = 0; i < g->n_kv; i++) g->kvs[i].key = g->names.data + g->kvs[i].key_off;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        if (hash_insert(g->t_hash, g->t_cap, g->tensors[i].name, i, t_name, g) >= 0) {
            st = KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: duplicate tensor name '%s'", r->path, g->tensors[i].name);
            goto out;
        }
    }
    st = KEEL_OK;
out:
    keel_free(name_off);
    return st;
}

static keel_status place_tensors(keel_gguf *g, reader *r) {
    // data starts at the next multiple of the alignment after the infos
    uint64_t pos = r->pos, a = g->alignment;
    g->data_offset = (pos + a - 1) / a * a;
    if (g->n_tensors == 0) return KEEL_OK; // vocab-only files may end right after the infos
    if (g->data_offset > r->size)
        return KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: data section starts at %" PRIu64 ", past the end (%zu bytes)",
                         r->path, g->data_offset, r->size);
    uint64_t data_size = r->size - g->data_offset;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        keel_tensor_info *t = &g->tensors[i];
        if (t->offset % a != 0)
            return KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: tensor '%s' offset %" PRIu64
                             " is not a multiple of the alignment %zu", r->path, t->name, t->offset, g->alignment);
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: tensor '%s' data [%" PRIu64 ", +%zu) runs past the end "
                             "of the data section (%" PRIu64 " bytes)", r->path, t->name, t->offset, t->nbytes,
                             data_size);
    }
    // no overlaps: sort by start, then each range must end before the next begins
    span *order = keel_malloc((size_t)g->n_tensors * sizeof *order);
    if (!order) return KEEL_FAIL(r->err, KEEL_ERR_NOMEM, "%s: out of memory", r->path);
    for (int64_t i = 0; i < g->n_tensors; i++) order[i] = (span){g->tensors[i].offset, i};
    qsort(order, (size_t)g->n_tensors, sizeof *order, cmp_span);
    keel_status st = KEEL_OK;
    for (int64_t k = 1; k < g->n_tensors; k++) {
        const keel_tensor_info *p = &g->tensors[order[k - 1].i], *t = &g->tensors[order[k].i];
        if (p->offset + p->nbytes > t->offset) {
            st = KEEL_FAIL(r->err, KEEL_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", r->path, p->name, t->name);
            break;
        }
    }
    keel_free(order);
    if (st) return st;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        keel_tensor_info *t = &g->tensors[i];
        t->offset += g->data_offset;
        t->data = g->map.data + t->offset;
    }
    return KEEL_OK;
}

keel_status keel_gguf_open(const char *path, keel_gguf **out, keel_err *err) {
    *out = NULL;
    keel_gguf *g = keel_calloc(1, sizeof *g);
    if (!g) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    keel_status st = keel_map_open(path, &g->map, err);
    if (st) goto fail;
    reader r = {.p = g->map.data, .size = g->map.size, .path = g->map.path, .err = err};
    if ((st = parse_header(g, &r)) || (st = parse_kvs(g, &r)) || (st = parse_tensor_infos(g, &r)) ||
        (st = place_tensors(g, &r)))
        goto fail;
    *out = g;
    return KEEL_OK;
fail:
    keel_gguf_close(g);
    return st;
}

void keel_gguf_close(keel_gguf *g) {
    if (!g) return;
    if (g->kvs)
        for (int64_t i = 0; i < g->n_kv; i++) keel_free(g->kvs[i].str_at);
    keel_free(g->kvs);
    keel_free(g->tensors);
    keel_free(g->names.data);
    keel_free(g->kv_hash);
    keel_free(g->t_hash);
    keel_map_close(&g->map);
    keel_free(g);
}

// ---- accessors --------------------------------------------------------------------

const char *keel_gguf_path(const keel_gguf *g) { return g->map.path; }
uint32_t keel_gguf_version(const keel_gguf *g) { return g->version; }
size_t keel_gguf_alignment(const keel_gguf *g) { return g->alignment; }
int64_t keel_gguf_n_kv(const keel_gguf *g) { return g->n_kv; }

int64_t keel_gguf_find_key(const keel_gguf *g, const char *key) {
    return hash_find(g->kv_hash, g->kv_cap, key, kv_name, g);
}

static const gguf_kv *kv_at(const keel_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? &g->kvs[i] : NULL;
}

const char *keel_gguf_key(const keel_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv ? kv->key : NULL;
}
keel_gguf_type keel_gguf_kv_type(const keel_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv ? kv->type : KEEL_GGUF_TYPE_COUNT;
}
keel_gguf_type keel_gguf_arr_type(const keel_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv && kv->type == KEEL_GGUF_ARRAY ? kv->arr_type : KEEL_GGUF_TYPE_COUNT;
}
uint64_t keel_gguf_arr_n(const keel_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv && kv->type == KEEL_GGUF_ARRAY ? kv->arr_n : 0;
}

const void *keel_gguf_arr_data(const keel_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    if (!kv || kv->type != KEEL_GGUF_ARRAY || !scalar_size(kv->arr_type)) return NULL;
    return g->map.data + kv->val;
}

const char *keel_gguf_arr_str(const keel_gguf *g, int64_t i, uint64_t j, size_t *len) {
    const gguf_kv *kv = kv_at(g, i);
    if (len) *len = 0;
    if (!kv || kv->type != KEEL_GGUF_ARRAY || kv->arr_type != KEEL_GGUF_STRING || j >= kv->arr_n) return NULL;
    uint64_t n;
    memcpy(&n, g->map.data + kv->str_at[j], 8);
    if (len) *len = (size_t)n;
    return (const char *)g->map.data + kv->str_at[j] + 8;
}

int64_t keel_gguf_n_tensors(const keel_gguf *g) { return g->n_tensors; }

const keel_tensor_info *keel_gguf_tensor(const keel_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const keel_tensor_info *keel_gguf_find_tensor(const keel_gguf *g, const char *name) {
    int64_t i = hash_find(g->t_hash, g->t_cap, name, t_name, g);
    return i >= 0 ? &g->tensors[i] : NULL;
}

// ---- typed getters -----------------------------------------------------------------

// The kv for key, or NULL with *st set (KEEL_OK when optional).
static const gguf_kv *lookup(const keel_gguf *g, const char *key, bool optional, keel_status *st, keel_err *err) {
    int64_t i = keel_gguf_find_key(g, key);
    if (i >= 0) {
        *st = KEEL_OK;
        return &g->kvs[i];
    }
    *st = optional ? KEEL_OK : KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: missing key %s", g->map.path, key);
    return NULL;
}

static keel_status wrong_type(const keel_gguf *g, const gguf_kv *kv, const char *want, keel_err *err) {
    return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: key %s has type %s, expected %s", g->map.path, kv->key,
                     gguf_type_name(kv->type), want);
}

static keel_status get_int(const keel_gguf *g, const char *key, bool optional, bool is_signed, uint64_t max,
                           const gguf_kv **kvp, bool *neg, uint64_t *mag, keel_err *err) {
    keel_status st;
    const gguf_kv *kv = lookup(g, key, optional, &st, err);
    *kvp = kv;
    if (!kv) return st;
    if (!kv_int(g, kv, neg, mag)) return wrong_type(g, kv, "an integer", err);
    // negative values are only asked of signed getters, whose minimum is -(max+1)
    if ((*neg && (!is_signed || *mag > max + 1)) || (!*neg && *mag > max))
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: key %s value %s%" PRIu64 " is out of range", g->map.path, key,
                         *neg ? "-" : "", *mag);
    return KEEL_OK;
}

keel_status keel_gguf_get_u32(const keel_gguf *g, const char *key, bool optional, uint32_t *out, keel_err *err) {
    const gguf_kv *kv;
    bool neg;
    uint64_t mag;
    keel_status st = get_int(g, key, optional, false, UINT32_MAX, &kv, &neg, &mag, err);
    if (st == KEEL_OK && kv) *out = (uint32_t)mag;
    return st;
}

keel_status keel_gguf_get_i64(const keel_gguf *g, const char *key, bool optional, int64_t *out, keel_err *err) {
    const gguf_kv *kv;
    bool neg;
    uint64_t mag;
    keel_status st = get_int(g, key, optional, true, (uint64_t)INT64_MAX, &kv, &neg, &mag, err);
    if (st == KEEL_OK && kv) *out = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
    return st;
}

keel_status keel_gguf_get_f32(const keel_gguf *g, const char *key, bool optional, float *out, keel_err *err) {
    keel_status st;
    const gguf_kv *kv = lookup(g, key, optional, &st, err);
    if (!kv) return st;
    const uint8_t *p = g->map.data + kv->val;
    if (kv->type == KEEL_GGUF_FLOAT32) {
        memcpy(out, p, 4);
    } else if (kv->type == KEEL_GGUF_FLOAT64) {
        double d;
        memcpy(&d, p, 8);
        *out = (float)d;
    } else {
        return wrong_type(g, kv, "FLOAT32 or FLOAT64", err);
    }
    return KEEL_OK;
}

keel_status keel_gguf_get_bool(const keel_gguf *g, const char *key, bool optional, bool *out, keel_err *err) {
    keel_status st;
    const gguf_kv *kv = lookup(g, key, optional, &st, err);
    if (!kv) return st;
    if (kv->type != KEEL_GGUF_BOOL) return wrong_type(g, kv, "BOOL", err);
    *out = g->map.data[kv->val] != 0;
    return KEEL_OK;
}

keel_status keel_gguf_get_str(const keel_gguf *g, const char *key, bool optional, const char **out, size_t *len,
                              keel_err *err) {
    keel_status st;
    const gguf_kv *kv = lookup(g, key, optional, &st, err);
    if (!kv) return st;
    if (kv->type != KEEL_GGUF_STRING) return wrong_type(g, kv, "STRING", err);
    *out = (const char *)g->map.data + kv->val;
    *len = (size_t)kv->str_len;
    return KEEL_OK;
}
