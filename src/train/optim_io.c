// SPDX-License-Identifier: MIT
// optim_io.c — AdamW state to and from disk for checkpoints and exact resume
// (declared in train.h): the moments as two F32 safetensors tensors, the step
// count and hyper-parameters as string metadata, written atomically through
// io/safetensors_write.c and read back with io/safetensors.c. The moments
// round-trip bit for bit, so a resumed run continues the same float sequence.
#include "train/train.h"

#include <errno.h>
#include <inttypes.h>

keel_status keel_adamw_save(keel_adamw *opt, const char *path, const keel_st_kv *extra,
                            size_t n_extra, keel_err *err) {
    // Before the first step the moments are zero: write them as such.
    keel_status st = keel_adamw_alloc_state(opt, err);
    if (st != KEEL_OK) return st;
    char num[8][40];
    snprintf(num[0], sizeof num[0], "%zu", opt->n);
    snprintf(num[1], sizeof num[1], "%" PRId64, opt->t);
    snprintf(num[2], sizeof num[2], "%.17g", opt->p.beta1);
    snprintf(num[3], sizeof num[3], "%.17g", opt->p.beta2);
    snprintf(num[4], sizeof num[4], "%.17g", opt->p.eps);
    snprintf(num[5], sizeof num[5], "%.17g", opt->p.weight_decay);
    keel_st_kv own[] = {{"format", "keel-adamw"}, {"version", "1"}, {"n", num[0]},
                        {"step", num[1]},         {"beta1", num[2]}, {"beta2", num[3]},
                        {"eps", num[4]},          {"weight_decay", num[5]}};
    size_t n_own = sizeof own / sizeof own[0];
    if (n_extra > SIZE_MAX / sizeof(keel_st_kv) - n_own)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: too many metadata entries", path);
    keel_st_kv *meta = keel_malloc((n_own + n_extra) * sizeof *meta);
    if (!meta) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    memcpy(meta, own, sizeof own);
    if (n_extra) memcpy(meta + n_own, extra, n_extra * sizeof *meta);
    keel_st_entry t[2] = {
        {.name = "adamw.m", .type = KEEL_DTYPE_F32, .n_dims = 1, .shape = {(int64_t)opt->n}, .data = opt->m},
        {.name = "adamw.v", .type = KEEL_DTYPE_F32, .n_dims = 1, .shape = {(int64_t)opt->n}, .data = opt->v},
    };
    // A duplicate of one of our keys in extra is reported by keel_st_write.
    st = keel_st_write(path, t, 2, meta, n_own + n_extra, err);
    free(meta);
    return st;
}

// Parse a decimal metadata value into a non-negative integer.
static bool meta_u64(const keel_safetensors *s, const char *key, uint64_t *out) {
    const char *v = keel_st_metadata(s, key);
    if (!v || !*v || *v == '-') return false;
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end) return false;
    *out = x;
    return true;
}

keel_status keel_adamw_load(keel_adamw *opt, const char *path, keel_err *err) {
    keel_safetensors *s = NULL;
    keel_status st = keel_st_open(path, &s, err);
    if (st != KEEL_OK) return st;
    const char *fmt = keel_st_metadata(s, "format");
    const char *ver = keel_st_metadata(s, "version");
    uint64_t n = 0, step = 0;
    const keel_tensor_info *m = keel_st_find_tensor(s, "adamw.m");
    const keel_tensor_info *v = keel_st_find_tensor(s, "adamw.v");
    if (!fmt || strcmp(fmt, "keel-adamw") != 0 || !ver || strcmp(ver, "1") != 0) {
        st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: not a keel AdamW state file (format %s, version %s)",
                       path, fmt ? fmt : "missing", ver ? ver : "missing");
    } else if (!meta_u64(s, "n", &n) || !meta_u64(s, "step", &step) || step > INT64_MAX) {
        st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: metadata n or step missing or not a number", path);
    } else if (n != opt->n) {
        st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: state for %" PRIu64 " parameters, the run has %zu",
                       path, n, opt->n);
    } else if (!m || !v) {
        st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: tensor %s missing", path, m ? "adamw.v" : "adamw.m");
    } else if (m->type != KEEL_DTYPE_F32 || v->type != KEEL_DTYPE_F32 ||
               m->nbytes != opt->n * sizeof(float) || v->nbytes != opt->n * sizeof(float)) {
        st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s: adamw.m / adamw.v must be F32 of %zu elements",
                       path, opt->n);
    } else {
        st = keel_adamw_alloc_state(opt, err);
        if (st == KEEL_OK) {
            memcpy(opt->m, m->data, m->nbytes); // data may be unaligned in the mapping: memcpy
            memcpy(opt->v, v->data, v->nbytes);
            opt->t = (int64_t)step;
        }
    }
    keel_st_close(s);
    return st;
}
