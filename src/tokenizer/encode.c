// SPDX-License-Identifier: MIT
// encode.c — keel_tokenize: UTF-8 text -> token ids.
//
//   text ──► split out special/added tokens (leftmost, longest first)
//        ──► per plain segment:
//              SentencePiece whitespace: "▁" prefix, ' ' -> "▁", one word
//              or byte-level: regex pre-tokenizer, bytes -> GPT-2 unicode
//        ──► per word: merge adjacent symbols, best pair first
//              (SPM: highest score of the joined piece; merges list: lowest rank;
//               ties: leftmost), then unknown symbols -> <0xNN> bytes or UNK
//
// Special tokens: user-defined (added) tokens are always cut out of the text,
// control/unknown ones only with parse_special; at each position the longest
// one wins (HF's leftmost-longest; llama.cpp instead carves out the longest
// token everywhere first, which differs only for overlapping specials).
// add_special adds what the tokenizer says: HF TemplateProcessing's ids, else
// BOS/EOS by add_bos/add_eos. keel_tokenize only reads the tokenizer, so one
// tokenizer can serve several threads.
//
// The merge loop keeps the symbols in a doubly linked list and the candidate
// pairs in a binary heap; a popped pair is used only if both symbols are still
// what they were when it was pushed, so the whole word is O(n log n).
// References: Sennrich et al. 2016 (BPE), SentencePiece's bpe_model.cc
// semantics, llama.cpp's llm_tokenizer_spm/bpe and HF tokenizers' BPE model.
#include "tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

// ---------------------------------------------------------------- output ids

typedef struct ids_out {
    int32_t *v;
    size_t n, cap;
} ids_out;

static bool push(ids_out *o, int32_t id) {
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        int32_t *v = keel_realloc(o->v, cap * sizeof *v);
        if (!v) return false;
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = id;
    return true;
}

// ---------------------------------------------------------------- merge engine

typedef struct cand {
    double key;          // lower is better: rank, or -score
    int32_t left, right; // symbol indices (left < right in text order)
    uint32_t llen, rlen; // symbol lengths when pushed (stale check)
    int32_t res;         // merged token id
} cand;

typedef struct word_state {
    // symbols (one per UTF-8 character at the start)
    uint32_t *start, *len;
    int32_t *id, *prev, *next;
    size_t cap;
    cand *heap;
    size_t nheap, capheap;
} word_state;

static void word_state_free(word_state *w) {
    free(w->start); free(w->len); free(w->id); free(w->prev); free(w->next); free(w->heap);
}

static bool word_state_reserve(word_state *w, size_t n) {
    if (n <= w->cap) return true;
    size_t cap = w->cap ? w->cap : 64;
    while (cap < n) cap *= 2;
    uint32_t *s = keel_realloc(w->start, cap * sizeof *s);
    if (!s) return false;
    w->start = s;
    uint32_t *l = keel_realloc(w->len, cap * sizeof *l);
    if (!l) return false;
    w->len = l;
    int32_t *a = keel_realloc(w->id, cap * sizeof *a);
    if (!a) return false;
    w->id = a;
    a = keel_realloc(w->prev, cap * sizeof *a);
    if (!a) return false;
    w->prev = a;
    a = keel_realloc(w->next, cap * sizeof *a);
    if (!a) return false;
    w->next = a;
    w->cap = cap;
    return true;
}

static bool cand_less(const cand *a, const cand *b) {
    if (a->key != b->key) return a->key < b->key;
    return a->left < b->left;
}

static bool heap_push(word_state *w, cand c) {
    if (w->nheap == w->capheap) {
        size_t cap = w->capheap ? w->capheap * 2 : 64;
        cand *h = keel_realloc(w->heap, cap * sizeof *h);
        if (!h) return false;
        w->heap = h;
        w->capheap = cap;
    }
    size_t i = w->nheap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = c;
    return true;
}

static cand heap_pop(word_state *w) {
    cand top = w->heap[0];
    cand last = w->heap[--w->nheap];
    size_t i = 0, n = w->nheap;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand *best = &last;
        if (l < n && cand_less(&w->heap[l], best)) { m = l; best = &w->heap[l]; }
        if (r < n && cand_less(&w->heap[r], best)) { m = r; }
        if (m == i) break;
        w->heap[i] = w->heap[m];
        i = m;
    }
    if (n) w->heap[i] = last;
    return top;
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static bool merge_lookup(const keel_tokenizer *t, int32_t a, int32_t b, int32_t *rank, int32_t *res) {
    if (!t->mcap) return false;
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t h = (size_t)mix64(key) & (t->mcap - 1);
    while (t->mkey[h] != UINT64_MAX) {
        if (t->mkey[h] == key) {
            *rank = t->mrank[h];
            *res = t->mres[h];
            return true;
        }
        h = (h + 1) & (t->mcap - 1);
    }
    return false;
}

// Queue the pair (l, r) if it can merge.
static bool try_pair(const keel_tokenizer *t, word_state *w, const char *s, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return true;
    cand c = {.left = l, .right = r, .llen = w->len[l], .rlen = w->len[r]};
    if (t->algo == KEEL_TOK_ALGO_RANK) {
        int32_t rank;
        if (w->id[l] < 0 || w->id[r] < 0 || !merge_lookup(t, w->id[l], w->id[r], &rank, &c.res)) return true;
        c.key = rank;
    } else {
        int32_t id = keel_tok_find(t, s + w->start[l], (size_t)w->len[l] + w->len[r]);
        if (id < 0) return true;
        int ty = t->tok[id].type;
        // SentencePiece never produces control, unused or byte pieces by merging
        if (ty != KEEL_TOK_NORMAL && ty != KEEL_TOK_USER_DEFINED) return true;
        c.res = id;
        c.key = -(double)t->tok[id].score;
    }
    return heap_push(w, c);
}

// Emit the fallback for an unknown symbol: its bytes as <0xNN> tokens when
// the vocabulary has them all, else one UNK (consecutive UNKs fused if asked).
static bool emit_unknown(const keel_tokenizer *t, const char *s, size_t n, ids_out *o, bool *last_unk) {
    if (t->byte_fallback) {
        bool all = true;
        for (size_t i = 0; i < n; i++) all = all && t->byte_tok[(unsigned char)s[i]] >= 0;
        if (all) {
            for (size_t i = 0; i < n; i++)
                if (!push(o, t->byte_tok[(unsigned char)s[i]])) return false;
            *last_unk = false;
            return true;
        }
    }
    if (t->unk < 0) return true; // nothing to stand for it: dropped (as HF does without an unk token)
    if (t->fuse_unk && *last_unk) return true;
    *last_unk = true;
    return push(o, t->unk);
}

// Tokenize one word s[0..n) (already normalized / byte-mapped).
static bool encode_word(const keel_tokenizer *t, word_state *w, const char *s, size_t n, ids_out *o) {
    if (n == 0) return true;
    if (t->ignore_merges) {
        int32_t id = keel_tok_find(t, s, n);
        if (id >= 0) return push(o, id);
    }
    // one symbol per UTF-8 character (s is valid UTF-8)
    size_t ns = 0;
    if (!word_state_reserve(w, n)) return false;
    for (size_t i = 0; i < n;) {
        size_t l = keel_utf8_len(s + i, n - i);
        if (!l) l = 1; // cannot happen on validated input; keep going byte-wise
        w->start[ns] = (uint32_t)i;
        w->len[ns] = (uint32_t)l;
        w->id[ns] = keel_tok_find(t, s + i, l);
        w->prev[ns] = (int32_t)ns - 1;
        w->next[ns] = (int32_t)ns + 1;
        ns++;
        i += l;
    }
    w->next[ns - 1] = -1;
    w->nheap = 0;
    for (size_t i = 0; i + 1 < ns; i++)
        if (!try_pair(t, w, s, (int32_t)i, (int32_t)i + 1)) return false;
    while (w->nheap) {
        cand c = heap_pop(w);
        int32_t l = c.left, r = c.right;
        // stale: one side merged since (its length changed or it is gone)
        if (w->len[l] != c.llen || w->len[r] != c.rlen || w->next[l] != r) continue;
        w->len[l] += w->len[r];
        w->id[l] = c.res;
        w->next[l] = w->next[r];
        if (w->next[r] >= 0) w->prev[w->next[r]] = l;
        w->len[r] = 0;
        w->next[r] = -1;
        if (!try_pair(t, w, s, w->prev[l], l) || !try_pair(t, w, s, l, w->next[l])) return false;
    }
    bool last_unk = false;
    for (int32_t i = 0; i >= 0; i = w->next[i]) {
        if (w->id[i] >= 0) {
            if (!push(o, w->id[i])) return false;
            last_unk = false;
        } else if (!emit_unknown(t, s + w->start[i], w->len[i], o, &last_unk)) {
            return false;
        }
    }
    return true;
}

// ---------------------------------------------------------------- pre-tokenizer

typedef struct span {
    size_t off, len;
} span;

typedef struct spans {
    span *v;
    size_t n, cap;
} spans;

static bool spans_push(spans *s, size_t off, size_t len) {
    if (len == 0) return true;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 32;
        span *v = keel_realloc(s->v, cap * sizeof *v);
        if (!v) return false;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (span){off, len};
    return true;
}

// Split every span of *cur with regex re, keeping matches and the gaps
// between them, into *next.
static keel_status split_spans(const keel_tokenizer *t, int step, const char *text, const spans *cur,
                               spans *next, pcre2_match_data *md, keel_err *err) {
    const pcre2_code *re = t->pre_re[step];
    next->n = 0;
    for (size_t k = 0; k < cur->n; k++) {
        const char *sub = text + cur->v[k].off;
        size_t n = cur->v[k].len, pos = 0, gap = 0;
        while (pos < n) {
            int rc = pcre2_match(re, (PCRE2_SPTR)sub, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                char msg[120];
                pcre2_get_error_message(rc, (PCRE2_UCHAR *)msg, sizeof msg);
                return KEEL_FAIL(err, KEEL_ERR_INVALID,
                                 "tokenize: pre-tokenizer %s step %d failed at byte %zu: %s",
                                 t->pre_name ? t->pre_name : "?", step, cur->v[k].off + pos, msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t a = ov[0], b = ov[1];
            if (b <= a) { // empty match: step one character on
                size_t l = keel_utf8_len(sub + pos, n - pos);
                pos += l ? l : 1;
                continue;
            }
            if (!spans_push(next, cur->v[k].off + gap, a - gap) || !spans_push(next, cur->v[k].off + a, b - a))
                return KEEL_FAIL(err, KEEL_ERR_NOMEM, "tokenize: out of memory");
            gap = pos = b;
        }
        if (!spans_push(next, cur->v[k].off + gap, n - gap))
            return KEEL_FAIL(err, KEEL_ERR_NOMEM, "tokenize: out of memory");
    }
    return KEEL_OK;
}

// ---------------------------------------------------------------- segments

typedef struct enc_ctx {
    const keel_tokenizer *t;
    word_state w;
    keel_buf tmp;       // normalized / byte-mapped word
    spans a, b;         // pre-tokenizer fragments (ping-pong)
    pcre2_match_data *md;
    ids_out out;
} enc_ctx;

// A plain-text segment (no special tokens inside); at_start: it begins the text.
static keel_status encode_segment(enc_ctx *c, const char *s, size_t n, bool at_start, keel_err *err) {
    const keel_tokenizer *t = c->t;
    if (n == 0) return KEEL_OK;
    if (t->spm_space) {
        // SentencePiece: "▁" prefix and every space as "▁"; the segment is one
        // word, or (Metaspace split) one word per "▁"
        c->tmp.len = 0;
        bool prefix = t->add_space_prefix && (!t->spm_prefix_first || at_start) && !(t->spm_metaspace && s[0] == ' ');
        bool ok = !prefix || keel_buf_append(&c->tmp, "\xe2\x96\x81", 3);
        for (size_t i = 0; ok && i < n; i++)
            ok = s[i] == ' ' ? keel_buf_append(&c->tmp, "\xe2\x96\x81", 3) : keel_buf_append(&c->tmp, s + i, 1);
        if (!ok) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "tokenize: out of memory");
        const char *w = c->tmp.data, *end = c->tmp.data + c->tmp.len;
        while (w < end) {
            const char *next = end;
            if (t->spm_split) // the next "▁" after the first character
                for (const char *q = w + 1; q + 3 <= end; q++)
                    if (memcmp(q, "\xe2\x96\x81", 3) == 0) { next = q; break; }
            if (!encode_word(t, &c->w, w, (size_t)(next - w), &c->out))
                return KEEL_FAIL(err, KEEL_ERR_NOMEM, "tokenize: out of memory");
            w = next;
        }
        return KEEL_OK;
    }
    // regex pre-tokenizer
    c->a.n = 0;
    if (!spans_push(&c->a, (size_t)(0), n)) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "tokenize: out of memory");
    spans *cur = &c->a, *nxt = &c->b;
    for (int k = 0; k < t->n_pre; k++) {
        keel_status st = split_spans(t, k, s, cur, nxt, c->md, err);
        if (st) return st;
        spans *x = cur; cur = nxt; nxt = x;
    }
    for (size_t k = 0; k < cur->n; k++) {
        const char *p = s + cur->v[k].off;
        size_t len = cur->v[k].len;
        if (t->byte_level) {
            c->tmp.len = 0;
            for (size_t i = 0; i < len; i++) {
                char u[4];
                size_t l = keel_utf8_encode(keel_tok_byte_to_cp((uint8_t)p[i]), u);
                if (!keel_buf_append(&c->tmp, u, l)) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "tokenize: out of memory");
            }
            p = c->tmp.data;
            len = c->tmp.len;
        }
        if (!encode_word(t, &c->w, p, len, &c->out)) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "tokenize: out of memory");
    }
    return KEEL_OK;
}

static bool is_ws(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f'; }

// Longest special/added token starting at s[0..avail) that may be matched, or -1.
static int32_t match_special(const keel_tokenizer *t, const char *s, size_t avail, bool parse_special) {
    unsigned char b = (unsigned char)s[0];
    for (int32_t j = t->special_first[b]; j < t->special_first[b + 1]; j++) {
        int32_t id = t->special[j];
        const keel_tok_entry *e = &t->tok[id];
        if (e->type != KEEL_TOK_USER_DEFINED && !parse_special) continue; // control, unknown
        if (e->len <= avail && memcmp(keel_tok_text(t, id), s, e->len) == 0) return id;
    }
    return -1;
}

keel_status keel_tokenize(const keel_tokenizer *t, const char *text, size_t len, bool add_special,
                          bool parse_special, int32_t **ids, size_t *n_ids, keel_err *err) {
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (!t || !ids || !n_ids || (len && !text))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_tokenize: NULL argument");
    size_t bad;
    if (len && !keel_utf8_valid(text, len, &bad))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_tokenize: invalid UTF-8 at byte offset %zu (0x%02x)", bad,
                         (unsigned char)text[bad]);
    enc_ctx c = {.t = t};
    keel_status st = KEEL_OK;
    if (t->n_pre) {
        c.md = pcre2_match_data_create(1, NULL);
        if (!c.md) { st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "tokenize: out of memory"); goto done; }
    }
    if (add_special) {
        if (t->has_post) {
            for (int32_t i = 0; i < t->n_post_pre; i++)
                if (!push(&c.out, t->post_pre[i])) goto oom;
        } else if (t->add_bos && t->bos >= 0 && !push(&c.out, t->bos)) {
            goto oom;
        }
    }
    // split out special tokens; plain text between them is encoded segment by segment
    size_t seg = 0, i = 0;
    while (i < len) {
        int32_t id = t->n_special ? match_special(t, text + i, len - i, parse_special) : -1;
        if (id < 0) {
            size_t l = keel_utf8_len(text + i, len - i);
            i += l ? l : 1;
            continue;
        }
        size_t seg_end = i;
        if (t->tok[id].lstrip)
            while (seg_end > seg && is_ws(text[seg_end - 1])) seg_end--;
        st = encode_segment(&c, text + seg, seg_end - seg, seg == 0, err);
        if (st) goto done;
        if (!push(&c.out, id)) goto oom;
        i += t->tok[id].len;
        if (t->tok[id].rstrip)
            while (i < len && is_ws(text[i])) i++;
        seg = i;
    }
    st = encode_segment(&c, text + seg, len - seg, seg == 0, err);
    if (st) goto done;
    if (add_special) {
        if (t->has_post) {
            for (int32_t k = 0; k < t->n_post_suf; k++)
                if (!push(&c.out, t->post_suf[k])) goto oom;
        } else if (t->add_eos && t->eos >= 0 && !push(&c.out, t->eos)) {
            goto oom;
        }
    }
    if (!c.out.v && !(c.out.v = keel_malloc(sizeof(int32_t)))) goto oom; // never hand back NULL on success
    *ids = c.out.v;
    *n_ids = c.out.n;
    c.out.v = NULL;
    goto done;
oom:
    st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "keel_tokenize: out of memory");
done:
    free(c.out.v);
    word_state_free(&c.w);
    free(c.tmp.data);
    free(c.a.v);
    free(c.b.v);
    if (c.md) pcre2_match_data_free(c.md);
    return st;
}
