// SPDX-License-Identifier: MIT
// safetensors_write.c — write .safetensors files byte-identical to what the
// Python library (safetensors 0.8, safetensors.torch.save_file) writes for the
// same tensors and metadata (declared in io.h; the reader is safetensors.c).
// Format: u64 little-endian header length N | N bytes of JSON | data.
// The library sorts tensors by dtype, largest alignment first (F32 before
// BF16 before F16, its Dtype enum order reversed), then by name bytewise;
// serialises the header compactly with "__metadata__" first and then the
// tensors in that order; pads the JSON with spaces to a multiple of 8 so the
// data starts 8-aligned; and stores the data back to back in the same order.
// Checked against the library by tests/unit/test_writers.c (golden file from
// tools/golden_optim.py). Assumes a little-endian host, as the reader does.
#include "io/io.h"

#include <inttypes.h>

static int dtype_rank(keel_dtype t) {
    switch (t) {
    case KEEL_DTYPE_F16: return 0;
    case KEEL_DTYPE_BF16: return 1;
    case KEEL_DTYPE_F32: return 2;
    default: return -1;
    }
}

static const char *dtype_str(keel_dtype t) {
    return t == KEEL_DTYPE_F32 ? "F32" : t == KEEL_DTYPE_F16 ? "F16" : "BF16";
}

static size_t dtype_size(keel_dtype t) { return t == KEEL_DTYPE_F32 ? 4 : 2; }

// Write order: insertion sort (n is at most a few hundred tensors; qsort
// would need the entries in a static to compare indices).
static bool before(const keel_st_entry *a, const keel_st_entry *b) {
    int ra = dtype_rank(a->type), rb = dtype_rank(b->type);
    if (ra != rb) return ra > rb;
    return strcmp(a->name, b->name) < 0; // strcmp compares as unsigned char: bytewise
}

// JSON string as serde_json writes it: \" \\ \b \f \n \r \t, other control
// characters as \u00xx (lowercase hex), everything else (UTF-8 included) raw.
static bool json_str(keel_buf *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    if (!keel_buf_append(b, "\"", 1)) return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        const char *esc = NULL;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default: break;
        }
        bool ok;
        if (esc) ok = keel_buf_appends(b, esc);
        else if (c < 0x20) {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            ok = keel_buf_append(b, u, 6);
        } else ok = keel_buf_append(b, &c, 1);
        if (!ok) return false;
    }
    return keel_buf_append(b, "\"", 1);
}

typedef struct st_job {
    const keel_st_entry *t;
    const size_t *order; // (n) write order
    const size_t *nbytes; // (n) bytes in the file, by entry index
    size_t n;
    const keel_buf *header; // JSON, padded
} st_job;

static keel_status st_emit(keel_afile *f, void *ctx, keel_err *err) {
    const st_job *j = ctx;
    uint8_t len8[8];
    uint64_t hl = (uint64_t)j->header->len;
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(hl >> (8 * i));
    keel_status st = keel_afile_write(f, len8, 8, err);
    if (st == KEEL_OK) st = keel_afile_write(f, j->header->data, j->header->len, err);
    for (size_t k = 0; st == KEEL_OK && k < j->n; k++) {
        const keel_st_entry *e = &j->t[j->order[k]];
        size_t nb = j->nbytes[j->order[k]];
        if (!e->from_f32 || e->type == KEEL_DTYPE_F32) {
            st = keel_afile_write(f, e->data, nb, err);
            continue;
        }
        // Convert fp32 -> F16/BF16 through a small buffer.
        uint16_t tmp[8192];
        const float *src = e->data;
        size_t cnt = nb / 2;
        for (size_t i = 0; st == KEEL_OK && i < cnt; i += 8192) {
            size_t m = cnt - i < 8192 ? cnt - i : 8192;
            for (size_t q = 0; q < m; q++)
                tmp[q] = e->type == KEEL_DTYPE_F16 ? keel_fp32_to_fp16(src[i + q])
                                                   : keel_fp32_to_bf16(src[i + q]);
            st = keel_afile_write(f, tmp, m * 2, err);
        }
    }
    return st;
}

keel_status keel_st_write(const char *path, const keel_st_entry *t, size_t n,
                          const keel_st_kv *meta, size_t n_meta, keel_err *err) {
    keel_status st = KEEL_OK;
    size_t *order = NULL, *nbytes = NULL, *morder = NULL;
    keel_buf h = {0};
    if (n > SIZE_MAX / sizeof(size_t) || n_meta > SIZE_MAX / sizeof(size_t))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: too many tensors", path);
    order = keel_malloc((n ? n : 1) * sizeof *order);
    nbytes = keel_malloc((n ? n : 1) * sizeof *nbytes);
    morder = keel_malloc((n_meta ? n_meta : 1) * sizeof *morder);
    if (!order || !nbytes || !morder) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    // Validate each entry and size it.
    for (size_t i = 0; i < n; i++) {
        const keel_st_entry *e = &t[i];
        if (!e->name || !*e->name) {
            st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: tensor %zu has an empty name", path, i);
            goto done;
        }
        size_t bad;
        if (!keel_utf8_valid(e->name, strlen(e->name), &bad)) {
            st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: tensor %zu name is not valid UTF-8 at byte %zu",
                           path, i, bad);
            goto done;
        }
        if (strcmp(e->name, "__metadata__") == 0) {
            st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: \"__metadata__\" is reserved, not a tensor name", path);
            goto done;
        }
        if (dtype_rank(e->type) < 0) {
            st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: tensor %s: type %s cannot be written (F32, F16, BF16 only)",
                           path, e->name, keel_dtype_name(e->type));
            goto done;
        }
        if (e->n_dims < 0 || e->n_dims > KEEL_ST_MAX_DIMS) {
            st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: tensor %s: %d dimensions (0..%d)", path,
                           e->name, (int)e->n_dims, KEEL_ST_MAX_DIMS);
            goto done;
        }
        size_t cnt = 1;
        for (int d = 0; d < e->n_dims; d++) {
            int64_t s = e->shape[d];
            if (s < 0 || (s > 0 && cnt > SIZE_MAX / 4 / (uint64_t)s)) {
                st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: tensor %s: dimension %d is %" PRId64
                               " (negative or too large)", path, e->name, d, s);
                goto done;
            }
            cnt *= (size_t)s;
        }
        nbytes[i] = cnt * dtype_size(e->type);
        if (nbytes[i] > 0 && !e->data) {
            st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: tensor %s has no data", path, e->name);
            goto done;
        }
        // Insertion sort into write order.
        size_t k = i;
        while (k > 0 && before(e, &t[order[k - 1]])) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = i;
    }
    // Duplicate names (any dtype). Pairwise: n is at most a few hundred.
    for (size_t a = 0; a < n; a++)
        for (size_t b = a + 1; b < n; b++)
            if (strcmp(t[a].name, t[b].name) == 0) {
                st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: duplicate tensor name %s", path, t[a].name);
                goto done;
            }
    for (size_t i = 0; i < n_meta; i++) {
        if (!meta[i].key || !meta[i].value) {
            st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: metadata entry %zu has a NULL key or value", path, i);
            goto done;
        }
        size_t bad;
        if (!keel_utf8_valid(meta[i].key, strlen(meta[i].key), &bad) ||
            !keel_utf8_valid(meta[i].value, strlen(meta[i].value), &bad)) {
            st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: metadata %s is not valid UTF-8", path, meta[i].key);
            goto done;
        }
        size_t k = i;
        while (k > 0 && strcmp(meta[i].key, meta[morder[k - 1]].key) < 0) {
            morder[k] = morder[k - 1];
            k--;
        }
        morder[k] = i;
    }
    for (size_t k = 1; k < n_meta; k++)
        if (strcmp(meta[morder[k]].key, meta[morder[k - 1]].key) == 0) {
            st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: duplicate metadata key %s", path,
                           meta[morder[k]].key);
            goto done;
        }

    // The header.
    bool ok = keel_buf_append(&h, "{", 1);
    if (n_meta) {
        ok = ok && keel_buf_appends(&h, "\"__metadata__\":{");
        for (size_t k = 0; k < n_meta; k++) {
            const keel_st_kv *kv = &meta[morder[k]];
            ok = ok && (k == 0 || keel_buf_append(&h, ",", 1)) && json_str(&h, kv->key) &&
                 keel_buf_append(&h, ":", 1) && json_str(&h, kv->value);
        }
        ok = ok && keel_buf_append(&h, "}", 1) && (n == 0 || keel_buf_append(&h, ",", 1));
    }
    uint64_t off = 0;
    for (size_t k = 0; k < n && ok; k++) {
        const keel_st_entry *e = &t[order[k]];
        ok = (k == 0 || keel_buf_append(&h, ",", 1)) && json_str(&h, e->name) &&
             keel_buf_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", dtype_str(e->type));
        for (int d = 0; d < e->n_dims && ok; d++)
            ok = keel_buf_printf(&h, d ? ",%" PRId64 : "%" PRId64, e->shape[d]);
        uint64_t end = off + nbytes[order[k]];
        ok = ok && keel_buf_printf(&h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, end);
        off = end;
    }
    ok = ok && keel_buf_append(&h, "}", 1);
    while (ok && h.len % 8 != 0) ok = keel_buf_append(&h, " ", 1);
    if (!ok) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory for the header", path);
        goto done;
    }
    st_job job = {t, order, nbytes, n, &h};
    st = keel_atomic_write(path, st_emit, &job, err);
done:
    free(order);
    free(nbytes);
    free(morder);
    free(h.data);
    return st;
}
