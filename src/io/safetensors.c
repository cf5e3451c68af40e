// SPDX-License-Identifier: MIT
// safetensors.c — safetensors reader (Hugging Face, github.com/huggingface/safetensors
// README "Format"). Maps the file, parses the JSON header with cJSON, checks every
// tensor's dtype, shape and byte range, and exposes the tensors in GGUF order
// (shape [out, in] -> ne = {in, out}). Layout:
//   u64 header_len (little-endian) | header_len bytes of JSON (may end in spaces) | data
//   JSON: {"__metadata__": {"k": "v", ...}, "name": {"dtype": "F32", "shape": [..],
//          "data_offsets": [begin, end]}, ...}, offsets relative to the data start.
// A scalar (shape []) is exposed as n_dims = 1, ne = {1, 1, 1, 1}.
#include "io/io.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>

#define ST_MAX_HEADER (100u * 1024 * 1024) // the reference implementation's limit

typedef struct st_meta {
    char *key, *value;
} st_meta;

typedef struct st_name {
    const char *name; // the tensor's name (owned by the tensor)
    int64_t i;        // its index
} st_name;

struct keel_safetensors {
    keel_map map;
    int64_t n_tensors;
    keel_tensor_info *tensors; // (n_tensors), names owned (one allocation each)
    st_name *by_name;          // (n_tensors) sorted by name, for lookups
    int64_t n_meta;
    st_meta *meta;             // (n_meta)
};

// ---- helpers ----------------------------------------------------------------------

// A JSON number that is an exact non-negative integer below 2^53.
static bool json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double d = j->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d) return false;
    *out = (uint64_t)d;
    return true;
}

static bool dtype_from_name(const char *s, keel_dtype *t) {
    if (strcmp(s, "F32") == 0) *t = KEEL_DTYPE_F32;
    else if (strcmp(s, "F16") == 0) *t = KEEL_DTYPE_F16;
    else if (strcmp(s, "BF16") == 0) *t = KEEL_DTYPE_BF16;
    else return false;
    return true;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const st_name *)a)->name, ((const st_name *)b)->name);
}

typedef struct st_span {
    uint64_t begin;
    int64_t i;
} st_span;

static int cmp_span(const void *a, const void *b) {
    uint64_t x = ((const st_span *)a)->begin, y = ((const st_span *)b)->begin;
    return x < y ? -1 : x > y;
}

// ---- one tensor ---------------------------------------------------------------------

static keel_status parse_tensor(const char *path, const cJSON *j, uint64_t data_size, keel_tensor_info *t,
                                keel_err *err) {
    const char *name = j->string;
    if (!cJSON_IsObject(j))
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: tensor '%s' is not a JSON object", path, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    if (!cJSON_IsString(jd))
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: tensor '%s' has no \"dtype\" string", path, name);
    if (!cJSON_IsArray(js))
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: tensor '%s' has no \"shape\" array", path, name);
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: tensor '%s' has no \"data_offsets\" [begin, end] pair", path,
                         name);
    uint64_t begin, end;
    if (!json_uint(jo->child, &begin) || !json_uint(jo->child->next, &end))
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: tensor '%s': data_offsets must be non-negative integers",
                         path, name);
    if (begin > end || end > data_size)
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                         "] are not inside the %" PRIu64 "-byte data section", path, name, begin, end, data_size);
    if (!dtype_from_name(jd->valuestring, &t->type))
        return KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED,
                         "%s: tensor '%s' has dtype %.40s, which keel does not support (F32, F16, BF16)", path,
                         name, jd->valuestring);
    int n = cJSON_GetArraySize(js);
    if (n > 4)
        return KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED, "%s: tensor '%s' has %d dimensions (at most 4 supported)",
                         path, name, n);
    t->n_dims = n ? n : 1;
    for (int d = 0; d < 4; d++) t->ne[d] = 1;
    int d = n - 1; // safetensors lists the outermost dimension first
    for (const cJSON *e = js->child; e; e = e->next, d--) {
        uint64_t v;
        if (!json_uint(e, &v))
            return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: tensor '%s': shape entries must be non-negative integers",
                             path, name);
        if (v == 0)
            return KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED, "%s: tensor '%s' has an empty (size 0) dimension", path,
                             name);
        t->ne[d] = (int64_t)v;
    }
    if (!keel_dtype_nbytes(t->type, t->ne, &t->nbytes))
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: tensor '%s': byte size overflows", path, name);
    if ((uint64_t)t->nbytes != end - begin)
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: tensor '%s': shape and dtype need %zu bytes but data_offsets "
                         "span %" PRIu64, path, name, t->nbytes, end - begin);
    t->offset = begin; // relative until the caller adds the data start
    return KEEL_OK;
}

static keel_status parse_metadata(keel_safetensors *s, const cJSON *j, keel_err *err) {
    const char *path = s->map.path;
    if (!cJSON_IsObject(j)) return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: \"__metadata__\" is not an object", path);
    int n = cJSON_GetArraySize(j);
    s->meta = keel_calloc((size_t)n, sizeof *s->meta);
    if (!s->meta) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    for (const cJSON *e = j->child; e; e = e->next) {
        if (!cJSON_IsString(e))
            return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: \"__metadata__\" value of '%.100s' is not a string", path,
                             e->string);
        st_meta *m = &s->meta[s->n_meta];
        m->key = keel_strdup(e->string);
        m->value = m->key ? keel_strdup(e->valuestring) : NULL;
        if (m->key) s->n_meta++; // a key without its value is still freed by close
        if (!m->value) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    }
    return KEEL_OK;
}

// ---- open -----------------------------------------------------------------------------

static keel_status parse(keel_safetensors *s, keel_err *err) {
    const char *path = s->map.path;
    const uint8_t *p = s->map.data;
    size_t size = s->map.size;
    if (size < 8)
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: truncated: %zu bytes, a safetensors file starts with an "
                         "8-byte header length", path, size);
    uint64_t hlen;
    memcpy(&hlen, p, 8);
    if (hlen > ST_MAX_HEADER)
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: header length %" PRIu64 " is over the 100 MB limit (not a "
                         "safetensors file?)", path, hlen);
    if (hlen > size - 8)
        return KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: header length %" PRIu64 " runs past the end of the file (%zu "
                         "bytes)", path, hlen, size);
    uint64_t data_start = 8 + hlen, data_size = size - data_start;

    // cJSON gets a NUL-terminated copy (with slack) so no parse can read past it
    char *text = keel_calloc((size_t)hlen + 8, 1);
    if (!text) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    memcpy(text, p + 8, (size_t)hlen);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)hlen, &end, false);
    keel_status st = KEEL_OK;
    if (!root) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: header is not valid JSON (near byte %zu of %" PRIu64 ")", path,
                       at, hlen);
        goto out;
    }
    for (const char *q = end; q < text + hlen; q++) {
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: header has trailing bytes after the JSON (at byte %zu)", path,
                           (size_t)(q - text));
            goto out;
        }
    }
    if (!cJSON_IsObject(root)) {
        st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: header is not a JSON object", path);
        goto out;
    }

    int64_t n = 0;
    bool seen_meta = false;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") != 0) {
            n++;
            continue;
        }
        if (seen_meta) {
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: duplicate \"__metadata__\"", path);
            goto out;
        }
        seen_meta = true;
        if ((st = parse_metadata(s, e, err))) goto out;
    }
    s->tensors = keel_calloc((size_t)n, sizeof *s->tensors);
    s->by_name = keel_calloc((size_t)n, sizeof *s->by_name);
    if (!s->tensors || !s->by_name) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        keel_tensor_info *t = &s->tensors[s->n_tensors];
        if (!(t->name = keel_strdup(e->string))) {
            st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
            goto out;
        }
        s->by_name[s->n_tensors] = (st_name){t->name, s->n_tensors};
        s->n_tensors++;
        if ((st = parse_tensor(path, e, data_size, t, err))) goto out;
    }

    // duplicate names (JSON allows repeated keys; we don't) and overlapping ranges
    qsort(s->by_name, (size_t)n, sizeof *s->by_name, cmp_name);
    for (int64_t k = 1; k < n; k++) {
        const char *a = s->by_name[k - 1].name, *b = s->by_name[k].name;
        if (strcmp(a, b) == 0) {
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: duplicate tensor name '%s'", path, a);
            goto out;
        }
    }
    if (n > 1) {
        st_span *order = keel_malloc((size_t)n * sizeof *order);
        if (!order) {
            st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
            goto out;
        }
        for (int64_t i = 0; i < n; i++) order[i] = (st_span){s->tensors[i].offset, i};
        qsort(order, (size_t)n, sizeof *order, cmp_span);
        for (int64_t k = 1; k < n && !st; k++) {
            const keel_tensor_info *a = &s->tensors[order[k - 1].i], *b = &s->tensors[order[k].i];
            if (a->offset + a->nbytes > b->offset)
                st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", path, a->name, b->name);
        }
        keel_free(order);
        if (st) goto out;
    }
    for (int64_t i = 0; i < n; i++) {
        keel_tensor_info *t = &s->tensors[i];
        t->offset += data_start;
        t->data = p + t->offset;
    }
out:
    cJSON_Delete(root);
    keel_free(text);
    return st;
}

keel_status keel_st_open(const char *path, keel_safetensors **out, keel_err *err) {
    *out = NULL;
    keel_safetensors *s = keel_calloc(1, sizeof *s);
    if (!s) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    keel_status st = keel_map_open(path, &s->map, err);
    if (!st) st = parse(s, err);
    if (st) {
        keel_st_close(s);
        return st;
    }
    *out = s;
    return KEEL_OK;
}

void keel_st_close(keel_safetensors *s) {
    if (!s) return;
    for (int64_t i = 0; i < s->n_tensors; i++) keel_free(s->tensors[i].name);
    keel_free(s->tensors);
    keel_free(s->by_name);
    for (int64_t i = 0; i < s->n_meta; i++) {
        keel_free(s->meta[i].key);
        keel_free(s->meta[i].value);
    }
    keel_free(s->meta);
    keel_map_close(&s->map);
    keel_free(s);
}

// ---- accessors ----------------------------------------------------------------------------

const char *keel_st_path(const keel_safetensors *s) { return s->map.path; }
int64_t keel_st_n_tensors(const keel_safetensors *s) { return s->n_tensors; }

const keel_tensor_info *keel_st_tensor(const keel_safetensors *s, int64_t i) {
    return i >= 0 && i < s->n_tensors ? &s->tensors[i] : NULL;
}

const keel_tensor_info *keel_st_find_tensor(const keel_safetensors *s, const char *name) {
    if (!name) return NULL;
    int64_t lo = 0, hi = s->n_tensors; // binary search over the name-sorted index
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->by_name[mid].name, name);
        if (c == 0) return &s->tensors[s->by_name[mid].i];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const char *keel_st_metadata(const keel_safetensors *s, const char *key) {
    if (!key) return NULL;
    for (int64_t i = 0; i < s->n_meta; i++)
        if (strcmp(s->meta[i].key, key) == 0) return s->meta[i].value;
    return NULL;
}
