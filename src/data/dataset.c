// SPDX-License-Identifier: MIT
// dataset.c — keel_dataset: every example's tokens and loss mask in two
// shared arrays, segment offsets in a third, plus an order array that
// shuffling permutes. Loading reads the JSONL file (mmap), renders each line
// (format.c), converts target flags to the position-wise loss mask, and
// truncates to max_seq_len. Splitting and packing build new datasets.
// Shuffles are Fisher-Yates driven by keel_rng (xoshiro256**), so a seed
// gives the same order on every machine.
#include "data/data.h"

keel_data_params keel_data_default_params(void) {
    keel_data_params p = {KEEL_DATA_AUTO, 512, false};
    return p;
}

const char *keel_data_format_name(keel_data_format f) {
    static const char *const names[] = {"auto", "text", "prompt_completion", "chat", "alpaca"};
    return (unsigned)f < 5 ? names[f] : "?";
}

keel_dataset *keel_dataset_new(keel_data_format fmt) {
    keel_dataset *d = keel_calloc(1, sizeof *d);
    if (d) d->format = fmt;
    return d;
}

void keel_dataset_free(keel_dataset *d) {
    if (!d) return;
    free(d->tok);
    free(d->mask);
    free(d->ex);
    free(d->seg);
    free(d->order);
    for (int64_t i = 0; i < d->n_iss; i++) free(d->iss[i].msg);
    free(d->iss);
    free(d);
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) {
        if (nc > SIZE_MAX / 2 / elem) return false;
        nc *= 2;
    }
    void *q = keel_realloc(*p, nc * elem);
    if (!q) return false;
    *p = q;
    *cap = nc;
    return true;
}

static bool reserve_tok(keel_dataset *d, size_t extra) {
    size_t cap = d->cap_tok;
    if (!grow((void **)&d->tok, &cap, d->n_tok + extra, sizeof *d->tok)) return false;
    size_t cap2 = d->cap_tok;
    if (!grow((void **)&d->mask, &cap2, d->n_tok + extra, 1)) return false;
    d->cap_tok = cap < cap2 ? cap : cap2;
    return true;
}

// A new example record (tokens appended by the caller); false on OOM.
static keel_data_ex *new_ex(keel_dataset *d) {
    size_t cap = (size_t)d->cap_ex;
    if (!grow((void **)&d->ex, &cap, (size_t)d->n_ex + 1, sizeof *d->ex)) return NULL;
    d->cap_ex = (int64_t)cap;
    // order grows with ex (same capacity)
    int64_t *o = keel_realloc(d->order, cap * sizeof *o);
    if (!o) return NULL;
    d->order = o;
    d->order[d->n_ex] = d->n_ex;
    keel_data_ex *e = &d->ex[d->n_ex++];
    memset(e, 0, sizeof *e);
    e->off = d->n_tok;
    e->seg_off = d->n_seg;
    return e;
}

static bool push_seg(keel_dataset *d, int32_t v) {
    if (!grow((void **)&d->seg, &d->cap_seg, d->n_seg + 1, sizeof *d->seg)) return false;
    d->seg[d->n_seg++] = v;
    return true;
}

bool keel_dataset_push(keel_dataset *d, const int32_t *tok, const uint8_t *mask, int32_t n, int32_t n_full,
                       int64_t line, uint64_t hash) {
    if (!reserve_tok(d, (size_t)n)) return false;
    keel_data_ex *e = new_ex(d);
    if (!e || !push_seg(d, 0) || !push_seg(d, n)) return false;
    memcpy(d->tok + d->n_tok, tok, (size_t)n * sizeof *tok);
    memcpy(d->mask + d->n_tok, mask, (size_t)n);
    d->n_tok += (size_t)n;
    e->n = n;
    e->n_full = n_full;
    e->n_seg = 1;
    e->line = line;
    e->hash = hash;
    return true;
}

bool keel_dataset_add_issue(keel_dataset *d, int64_t line, const char *msg) {
    size_t cap = (size_t)d->cap_iss;
    if (!grow((void **)&d->iss, &cap, (size_t)d->n_iss + 1, sizeof *d->iss)) return false;
    d->cap_iss = (int64_t)cap;
    char *m = keel_strdup(msg);
    if (!m) return false;
    d->iss[d->n_iss].line = line;
    d->iss[d->n_iss].msg = m;
    d->n_iss++;
    return true;
}

// ---------------------------------------------------------------- load

keel_status keel_dataset_load(const char *path, const keel_tokenizer *tok, const keel_data_params *p,
                              keel_dataset **out, keel_err *err) {
    if (out) *out = NULL;
    if (!path || !tok || !out) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_dataset_load: NULL argument");
    keel_data_params dp = p ? *p : keel_data_default_params();
    if (dp.max_seq_len < 2)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: max_seq_len %d is below 2", path, (int)dp.max_seq_len);
    if ((unsigned)dp.format > KEEL_DATA_ALPACA)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: unknown data format %d", path, (int)dp.format);

    keel_map map;
    keel_status st = keel_map_open(path, &map, err);
    if (st) return st;
    keel_dataset *d = keel_dataset_new(dp.format);
    keel_data_seq s = {0};
    uint8_t *mask = NULL;
    size_t mask_cap = 0;
    if (!d) {
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    const char *base = map.size ? (const char *)map.data : ""; // an empty file maps nothing
    keel_jsonl_iter it = {base, base + map.size, 0};
    const char *line;
    size_t len;
    int64_t ln;
    bool checked_chat = false;
    while (keel_jsonl_next(&it, &line, &len, &ln)) {
        d->n_lines++;
        char why[400];
        keel_err le = {0};
        cJSON *obj = keel_jsonl_parse(line, len, why, sizeof why);
        keel_status ls = obj ? KEEL_OK : KEEL_ERR_FORMAT;
        if (obj && d->format == KEEL_DATA_AUTO) {
            keel_data_format f = keel_data_detect(obj);
            if (f == KEEL_DATA_AUTO) {
                snprintf(why, sizeof why,
                         "no known fields: expected \"text\", \"prompt\"/\"completion\", \"messages\" or "
                         "\"instruction\"/\"output\"");
                ls = KEEL_ERR_FORMAT;
            } else d->format = f;
        }
        if (!ls && d->format == KEEL_DATA_CHAT && !checked_chat) {
            checked_chat = true;
            if (!keel_tokenizer_has_chat_template(tok) || keel_tokenizer_chat_format(tok) == KEEL_CHAT_NONE) {
                cJSON_Delete(obj);
                st = KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED,
                               "%s: chat data needs a model with a known chat template; this tokenizer has none", path);
                goto done;
            }
        }
        if (!ls) {
            ls = keel_data_render(tok, d->format, obj, &s, &le);
            if (ls == KEEL_ERR_NOMEM) {
                cJSON_Delete(obj);
                st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
                goto done;
            }
            if (ls) snprintf(why, sizeof why, "%.390s", le.msg);
        }
        cJSON_Delete(obj);
        if (ls) {
            if (!dp.skip_malformed) {
                st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s:%lld: %s", path, (long long)ln, why);
                goto done;
            }
            if (!keel_dataset_add_issue(d, ln, why)) {
                st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
                goto done;
            }
            continue;
        }
        if (s.n > (size_t)INT32_MAX) {
            st = KEEL_FAIL(err, KEEL_ERR_FORMAT, "%s:%lld: example too long", path, (long long)ln);
            goto done;
        }
        // targets → position-wise loss mask, then truncation
        int32_t n_full = (int32_t)s.n, n = n_full < dp.max_seq_len ? n_full : dp.max_seq_len;
        if (!grow((void **)&mask, &mask_cap, (size_t)n + 1, 1)) {
            st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        for (int32_t i = 0; i + 1 < n; i++) mask[i] = s.tgt[i + 1];
        if (n) mask[n - 1] = 0;
        if (!keel_dataset_push(d, s.tok, mask, n, n_full, ln, s.hash)) {
            st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
    }
done:
    keel_data_seq_free(&s);
    free(mask);
    keel_map_close(&map);
    if (st) {
        keel_dataset_free(d);
        return st;
    }
    *out = d;
    return KEEL_OK;
}

// ---------------------------------------------------------------- access

int64_t keel_dataset_count(const keel_dataset *d) { return d ? d->n_ex : 0; }
keel_data_format keel_dataset_format(const keel_dataset *d) { return d ? d->format : KEEL_DATA_AUTO; }
int64_t keel_dataset_n_issues(const keel_dataset *d) { return d ? d->n_iss : 0; }

bool keel_dataset_issue(const keel_dataset *d, int64_t i, int64_t *line, const char **msg) {
    if (!d || i < 0 || i >= d->n_iss) return false;
    if (line) *line = d->iss[i].line;
    if (msg) *msg = d->iss[i].msg;
    return true;
}

bool keel_dataset_get(const keel_dataset *d, int64_t i, keel_example *out) {
    if (!d || !out || i < 0 || i >= d->n_ex) return false;
    const keel_data_ex *e = &d->ex[d->order[i]];
    out->tokens = d->tok + e->off;
    out->loss_mask = d->mask + e->off;
    out->n_tokens = e->n;
    out->n_segments = e->n_seg;
    out->segments = d->seg + e->seg_off;
    out->line = e->line;
    out->n_tokens_full = e->n_full;
    return true;
}

// ---------------------------------------------------------------- order

static void shuffle_idx(int64_t *v, int64_t n, uint64_t seed) {
    keel_rng r;
    keel_rng_seed(&r, seed);
    for (int64_t i = n - 1; i > 0; i--) {
        // modulo bias is below 2^-24 for any realistic n (< 2^40)
        int64_t j = (int64_t)(keel_rng_u64(&r) % (uint64_t)(i + 1));
        int64_t t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

void keel_dataset_shuffle(keel_dataset *d, uint64_t seed) {
    if (!d) return;
    for (int64_t i = 0; i < d->n_ex; i++) d->order[i] = i; // same seed → same order, whatever came before
    shuffle_idx(d->order, d->n_ex, seed);
}

// Copy example ex (all its segments) into d as one record; truncate to cut tokens.
static bool copy_ex(keel_dataset *d, const keel_dataset *s, const keel_data_ex *e) {
    if (!reserve_tok(d, (size_t)e->n)) return false;
    keel_data_ex *ne = new_ex(d);
    if (!ne) return false;
    for (int32_t k = 0; k <= e->n_seg; k++)
        if (!push_seg(d, s->seg[e->seg_off + (size_t)k])) return false;
    memcpy(d->tok + d->n_tok, s->tok + e->off, (size_t)e->n * sizeof *d->tok);
    memcpy(d->mask + d->n_tok, s->mask + e->off, (size_t)e->n);
    d->n_tok += (size_t)e->n;
    ne->n = e->n;
    ne->n_full = e->n_full;
    ne->n_seg = e->n_seg;
    ne->line = e->line;
    ne->hash = e->hash;
    return true;
}

keel_status keel_dataset_split(const keel_dataset *d, double fraction, uint64_t seed, keel_dataset **train,
                               keel_dataset **val, keel_err *err) {
    if (train) *train = NULL;
    if (val) *val = NULL;
    if (!d || !train || !val) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_dataset_split: NULL argument");
    if (!(fraction >= 0 && fraction < 1))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "validation split %g is outside [0, 1)", fraction);
    int64_t n = d->n_ex, nv = (int64_t)(fraction * (double)n + 0.5);
    if (fraction > 0 && nv == 0 && n >= 2) nv = 1;
    if (nv >= n) nv = n - 1;
    if (nv < 0) nv = 0;
    keel_status st = KEEL_OK;
    int64_t *idx = keel_malloc((size_t)(n ? n : 1) * sizeof *idx);
    uint8_t *is_val = keel_calloc((size_t)(n ? n : 1), 1);
    keel_dataset *t = keel_dataset_new(d->format), *v = keel_dataset_new(d->format);
    if (!idx || !is_val || !t || !v) goto oom;
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    shuffle_idx(idx, n, seed);
    for (int64_t i = 0; i < nv; i++) is_val[idx[i]] = 1;
    for (int64_t i = 0; i < n; i++)
        if (!copy_ex(is_val[i] ? v : t, d, &d->ex[i])) goto oom;
    free(idx);
    free(is_val);
    *train = t;
    *val = v;
    return KEEL_OK;
oom:
    st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "validation split: out of memory");
    free(idx);
    free(is_val);
    keel_dataset_free(t);
    keel_dataset_free(v);
    return st;
}

keel_status keel_dataset_pack(const keel_dataset *d, int32_t seq_len, keel_dataset **out, keel_err *err) {
    if (out) *out = NULL;
    if (!d || !out) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_dataset_pack: NULL argument");
    if (seq_len < 2) return KEEL_FAIL(err, KEEL_ERR_INVALID, "packing: sequence length %d is below 2", (int)seq_len);
    keel_dataset *p = keel_dataset_new(d->format);
    if (!p) goto oom;
    keel_data_ex *cur = NULL;
    for (int64_t i = 0; i < d->n_ex; i++) {
        keel_example x;
        keel_dataset_get(d, i, &x);
        // a packed input is unpacked first: its segments become examples again
        for (int32_t sg = 0; sg < x.n_segments; sg++) {
            int32_t a = x.segments[sg], n = x.segments[sg + 1] - a;
            if (n > seq_len) n = seq_len;
            if (n <= 0) continue;
            if (cur && cur->n + n > seq_len) cur = NULL;
            if (!reserve_tok(p, (size_t)n)) goto oom;
            if (!cur) {
                if (!(cur = new_ex(p)) || !push_seg(p, 0)) goto oom;
                cur->line = x.line;
            }
            memcpy(p->tok + p->n_tok, x.tokens + a, (size_t)n * sizeof *p->tok);
            memcpy(p->mask + p->n_tok, x.loss_mask + a, (size_t)n);
            p->mask[p->n_tok + (size_t)n - 1] = 0; // never predict across a boundary
            p->n_tok += (size_t)n;
            cur->n += n;
            cur->n_full += x.n_segments == 1 ? x.n_tokens_full : n;
            cur->n_seg++;
            if (!push_seg(p, cur->n)) goto oom;
            // p->ex may have moved: keep cur pointing at the last record
            cur = &p->ex[p->n_ex - 1];
        }
    }
    *out = p;
    return KEEL_OK;
oom:
    keel_dataset_free(p);
    return KEEL_FAIL(err, KEEL_ERR_NOMEM, "packing: out of memory");
}
