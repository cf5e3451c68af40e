// SPDX-License-Identifier: MIT
// vocab.c — the tokenizer's vocabulary: token table, text -> id hash, merge
// table, pre-tokenizer regexes (PCRE2), special-token index, end-of-generation
// set, and the decoding side (keel_token_to_piece, keel_detokenize) plus the
// small public getters and keel_tokenizer_load. Encoding is in encode.c.
// References: GGUF tokenizer.ggml.* keys (ggml docs/gguf.md), the GPT-2
// bytes<->unicode table (openai/gpt-2 encoder.py), llama.cpp's per-model
// pre-tokenizer regex lists (src/llama-vocab.cpp), SentencePiece decoding.
#include "tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

// ---------------------------------------------------------------- GPT-2 byte map
//
// Printable bytes (33..126, 161..172, 174..255) stand for themselves; the
// other 68 bytes are mapped, in increasing order, to U+0100, U+0101, ... so
// that every byte is a visible, non-space character ("Ġ" = U+0120 = space).

static bool byte_is_printable(unsigned b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
}

uint32_t keel_tok_byte_to_cp(uint8_t b) {
    if (byte_is_printable(b)) return b;
    unsigned n = 0; // how many non-printable bytes come before b
    for (unsigned i = 0; i < b; i++) n += !byte_is_printable(i);
    return 256 + n;
}

int keel_tok_cp_to_byte(uint32_t cp) {
    if (cp < 256) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    unsigned n = cp - 256;
    for (unsigned b = 0; b < 256; b++) {
        if (byte_is_printable(b)) continue;
        if (n == 0) return (int)b;
        n--;
    }
    return -1;
}

// ---------------------------------------------------------------- building

keel_tokenizer *keel_tok_alloc(int32_t n_vocab) {
    if (n_vocab <= 0) return NULL;
    keel_tokenizer *t = keel_calloc(1, sizeof *t);
    if (!t) return NULL;
    t->tok = keel_calloc((size_t)n_vocab, sizeof *t->tok);
    t->eog = keel_calloc((size_t)n_vocab, 1);
    if (!t->tok || !t->eog) {
        keel_tokenizer_free(t);
        return NULL;
    }
    t->n_vocab = n_vocab;
    t->bos = t->eos = t->unk = t->pad = t->eot = t->eom = -1;
    for (int i = 0; i < 256; i++) t->byte_tok[i] = -1;
    return t;
}

void keel_tokenizer_free(keel_tokenizer *t) {
    if (!t) return;
    free(t->tok);
    free(t->pool);
    free(t->hash);
    free(t->mkey);
    free(t->mrank);
    free(t->mres);
    for (int i = 0; i < t->n_pre; i++) pcre2_code_free((pcre2_code *)t->pre_re[i]);
    free(t->pre_name);
    free(t->special);
    free(t->eog);
    free(t->post_pre);
    free(t->post_suf);
    free(t->chat_template);
    free(t->chat_default_system);
    free(t);
}

bool keel_tok_set(keel_tokenizer *t, int32_t id, const char *text, size_t len, float score,
                  int type) {
    if (id < 0 || id >= t->n_vocab || len > UINT32_MAX / 2) return false;
    size_t need = t->pool_len + len + 1;
    if (need > UINT32_MAX) return false; // offsets are 32-bit
    if (need > t->pool_cap) {
        size_t cap = t->pool_cap ? t->pool_cap : 1 << 16;
        while (cap < need) cap *= 2;
        char *p = keel_realloc(t->pool, cap);
        if (!p) return false;
        t->pool = p;
        t->pool_cap = cap;
    }
    memcpy(t->pool + t->pool_len, text, len);
    t->pool[t->pool_len + len] = 0;
    t->tok[id].off = (uint32_t)t->pool_len;
    t->tok[id].len = (uint32_t)len;
    t->tok[id].score = score;
    t->tok[id].type = (uint8_t)type;
    t->pool_len = need;
    return true;
}

const char *keel_tok_text(const keel_tokenizer *t, int32_t id) {
    return t->pool + t->tok[id].off;
}

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; // FNV-1a
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

bool keel_tok_build_hash(keel_tokenizer *t) {
    size_t cap = 16;
    while (cap < (size_t)t->n_vocab * 2) cap *= 2;
    free(t->hash);
    t->hash = keel_malloc(cap * sizeof *t->hash);
    if (!t->hash) return false;
    memset(t->hash, 0xff, cap * sizeof *t->hash); // -1
    t->hash_cap = cap;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *s = keel_tok_text(t, id);
        size_t n = t->tok[id].len;
        size_t h = (size_t)hash_bytes(s, n) & (cap - 1);
        for (;;) {
            int32_t o = t->hash[h];
            if (o < 0) { t->hash[h] = id; break; }
            // duplicate text: the first (lowest) id keeps it
            if (t->tok[o].len == n && memcmp(keel_tok_text(t, o), s, n) == 0) break;
            h = (h + 1) & (cap - 1);
        }
    }
    return true;
}

int32_t keel_tok_find(const keel_tokenizer *t, const char *text, size_t len) {
    if (!t->hash) return -1;
    size_t h = (size_t)hash_bytes(text, len) & (t->hash_cap - 1);
    for (;;) {
        int32_t o = t->hash[h];
        if (o < 0) return -1;
        if (t->tok[o].len == len && memcmp(keel_tok_text(t, o), text, len) == 0) return o;
        h = (h + 1) & (t->hash_cap - 1);
    }
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

bool keel_tok_merges_reserve(keel_tokenizer *t, size_t n) {
    size_t cap = 16;
    while (cap < n * 2 + 16) cap *= 2;
    if (cap <= t->mcap) return true;
    uint64_t *k = keel_malloc(cap * sizeof *k);
    int32_t *r = keel_malloc(cap * sizeof *r);
    int32_t *s = keel_malloc(cap * sizeof *s);
    if (!k || !r || !s) {
        free(k); free(r); free(s);
        return false;
    }
    memset(k, 0xff, cap * sizeof *k);
    for (size_t i = 0; i < t->mcap; i++) { // rehash the old entries
        if (t->mkey[i] == UINT64_MAX) continue;
        size_t h = (size_t)mix64(t->mkey[i]) & (cap - 1);
        while (k[h] != UINT64_MAX) h = (h + 1) & (cap - 1);
        k[h] = t->mkey[i];
        r[h] = t->mrank[i];
        s[h] = t->mres[i];
    }
    free(t->mkey); free(t->mrank); free(t->mres);
    t->mkey = k; t->mrank = r; t->mres = s;
    t->mcap = cap;
    return true;
}

bool keel_tok_add_merge(keel_tokenizer *t, int32_t a, int32_t b, int32_t rank, bool *skipped) {
    *skipped = true;
    if (a < 0 || b < 0) return true;
    size_t la = t->tok[a].len, lb = t->tok[b].len;
    char small[256], *buf = small;
    if (la + lb > sizeof small) {
        buf = keel_malloc(la + lb);
        if (!buf) return false;
    }
    memcpy(buf, keel_tok_text(t, a), la);
    memcpy(buf + la, keel_tok_text(t, b), lb);
    int32_t res = keel_tok_find(t, buf, la + lb);
    if (buf != small) free(buf);
    if (res < 0) return true;
    if ((size_t)t->n_merges + 1 > t->mcap / 2 && !keel_tok_merges_reserve(t, t->mcap ? t->mcap : 1024))
        return false;
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t h = (size_t)mix64(key) & (t->mcap - 1);
    while (t->mkey[h] != UINT64_MAX) {
        if (t->mkey[h] == key) return true; // duplicate merge: the first (best) rank stays
        h = (h + 1) & (t->mcap - 1);
    }
    t->mkey[h] = key;
    t->mrank[h] = rank;
    t->mres[h] = res;
    t->n_merges++;
    *skipped = false;
    return true;
}

// ---------------------------------------------------------------- pre-tokenizers

keel_status keel_tok_add_pre(keel_tokenizer *t, const char *pattern, const char *what, keel_err *err) {
    if (t->n_pre >= KEEL_TOK_MAX_PRE)
        return KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED, "%s: more than %d pre-tokenizer steps", what,
                         KEEL_TOK_MAX_PRE);
    int ec;
    PCRE2_SIZE eoff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                                   &ec, &eoff, NULL);
    if (!re) {
        char msg[160];
        pcre2_get_error_message(ec, (PCRE2_UCHAR *)msg, sizeof msg);
        return KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED,
                         "%s: pre-tokenizer regex does not compile at offset %zu: %s", what,
                         (size_t)eoff, msg);
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); // optional speed-up; the interpreter is the fallback
    t->pre_re[t->n_pre++] = re;
    return KEEL_OK;
}

// The GPT-2 split: contractions, letters, digits, other symbols (each with an
// optional leading space), and whitespace runs that leave one space to the
// next word.
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RE_CJK "[\\x{4e00}-\\x{9fa5}\\x{800}-\\x{4e00}\\x{ac00}-\\x{d7ff}]+" // CJK ideographs, U+0800..U+4E00, Hangul

// llama.cpp's regex lists per tokenizer.ggml.pre (the HF pre_tokenizer of
// each family, rewritten as isolating splits). Each family is checked by
// tests/unit/test_tokenizer.c: gpt-2, mpt, starcoder, refact, deepseek-coder,
// deepseek-llm, falcon with llama.cpp's vectors, smollm with SmolLM2 golden
// ids, llama-bpe with a tiny trained tokenizer. "gpt2" and "olmo" are aliases
// of gpt-2; "default" (what llama.cpp uses when a gpt2-type vocabulary names
// no pre-tokenizer) has no reference vectors.
// Llama-3's split: case-insensitive contractions, letters with one leading
// non-letter, numbers in groups of up to three, symbols with trailing
// newlines, newline runs, whitespace.
#define RE_LLAMA3                                                                                  \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

static const struct {
    const char *name;
    bool ignore_merges; // a pre-token that is itself in the vocabulary is not merged (HF ignore_merges)
    const char *re[6];
} pre_table[] = {
    // llama.cpp's choice for a "gpt2" vocabulary that names no pre-tokenizer
    {"default", false, {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
    {"gpt-2", false, {RE_GPT2}},
    {"gpt2", false, {RE_GPT2}},
    {"mpt", false, {RE_GPT2}},
    {"olmo", false, {RE_GPT2}},
    // digits split one by one, then GPT-2
    {"starcoder", false, {"\\p{N}", RE_GPT2}},
    {"refact", false, {"\\p{N}", RE_GPT2}},
    {"smollm", false, {"\\p{N}", RE_GPT2}},
    {"deepseek-coder", false, {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}"}},
    {"deepseek-llm", false, {"[\r\n]",
      // cased letters (Unicode L&); escapes, so that no Unicode normalization
      // of this file can change a code point
      "\\s?[A-Za-z\\x{b5}\\x{c0}-\\x{d6}\\x{d8}-\\x{f6}\\x{f8}-\\x{1ba}\\x{1bc}-\\x{1bf}\\x{1c4}-"
      "\\x{293}\\x{295}-\\x{2af}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37b}-\\x{37d}\\x{37f}"
      "\\x{386}\\x{388}-\\x{38a}\\x{38c}\\x{38e}-\\x{3a1}\\x{3a3}-\\x{3f5}\\x{3f7}-\\x{481}"
      "\\x{48a}-\\x{52f}\\x{531}-\\x{556}\\x{10a0}-\\x{10c5}\\x{13a0}-\\x{13f5}\\x{13f8}-"
      "\\x{13fd}\\x{1c90}-\\x{1cba}\\x{1cbd}-\\x{1cbf}\\x{1d00}-\\x{1d2b}\\x{1d6b}-\\x{1d77}"
      "\\x{1d79}-\\x{1d9a}\\x{1e00}-\\x{1f15}\\x{1f18}-\\x{1f1d}\\x{1f20}-\\x{1f45}\\x{1f48}-"
      "\\x{1f4d}\\x{1f50}-\\x{1f57}\\x{1f59}\\x{1f5b}\\x{1f5d}\\x{1f5f}-\\x{1f7d}\\x{1f80}-"
      "\\x{1fb4}\\x{1fb6}-\\x{1fbc}\\x{1fbe}\\x{1fc2}-\\x{1fc4}\\x{1fc6}-\\x{1fcc}\\x{1fd0}-"
      "\\x{1fd3}\\x{1fd6}-\\x{1fdb}\\x{1fe0}-\\x{1fec}\\x{1ff2}-\\x{1ff4}\\x{1ff6}-\\x{1ffc}"
      "\\x{2102}\\x{2107}\\x{210a}-\\x{2113}\\x{2115}\\x{2119}-\\x{211d}\\x{2124}\\x{2126}"
      "\\x{2128}\\x{212a}-\\x{212d}\\x{212f}-\\x{2134}\\x{2139}\\x{213c}-\\x{213f}\\x{2145}-"
      "\\x{2149}\\x{214e}\\x{2183}\\x{2184}\\x{2c00}-\\x{2c7b}\\x{2c7e}-\\x{2ce4}\\x{2ceb}-"
      "\\x{2cee}\\x{2cf2}\\x{2cf3}\\x{a640}-\\x{a66d}\\x{a680}-\\x{a69b}\\x{a722}-\\x{a76f}"
      "\\x{a771}-\\x{a787}\\x{a78b}-\\x{a78e}\\x{ab70}-\\x{abbf}\\x{fb00}-\\x{fb06}\\x{fb13}-"
      "\\x{fb17}\\x{ff21}-\\x{ff3a}\\x{ff41}-\\x{ff5a}\\x{10400}-\\x{1044f}\\x{104b0}-\\x{104d3}"
      "\\x{104d8}-\\x{104fb}\\x{10c80}-\\x{10cb2}\\x{10cc0}-\\x{10cf2}\\x{118a0}-\\x{118df}"
      "\\x{1e900}-\\x{1e943}]+",
      "\\s?[!-/:-~\\x{ff01}-\\x{ff0f}\\x{ff1a}-\\x{ff5e}\\x{2018}-\\x{201f}\\x{3000}-\\x{3002}]+", "\\s+$", RE_CJK, "\\p{N}+"}},
    // Llama-3 (tokenizer.ggml.pre "llama-bpe"); checked with a tiny tokenizer
    // trained with HF tokenizers on this pre-tokenizer (tests/data/tiny_llama3*)
    {"llama-bpe", true, {RE_LLAMA3}},
    {"llama3", true, {RE_LLAMA3}},
    {"falcon", false, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}},
};

keel_status keel_tok_set_pre_named(keel_tokenizer *t, const char *name, keel_err *err) {
    for (size_t i = 0; i < sizeof pre_table / sizeof pre_table[0]; i++) {
        if (strcmp(pre_table[i].name, name) != 0) continue;
        if (pre_table[i].ignore_merges) t->ignore_merges = true;
        for (int j = 0; j < 6 && pre_table[i].re[j]; j++) {
            keel_status st = keel_tok_add_pre(t, pre_table[i].re[j], name, err);
            if (st) return st;
        }
        free(t->pre_name);
        t->pre_name = keel_strdup(name);
        if (!t->pre_name) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "tokenizer: out of memory");
        return KEEL_OK;
    }
    return KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED,
                     "tokenizer.ggml.pre = \"%s\": unsupported pre-tokenizer (known: default, gpt-2, mpt, olmo, "
                     "starcoder, refact, smollm, deepseek-coder, deepseek-llm, llama-bpe, falcon)",
                     name);
}

// ---------------------------------------------------------------- finishing

typedef struct special_key {
    unsigned char first; // leading byte
    uint32_t len;
    int32_t id;
} special_key;

// by leading byte, then longest first, then id
static int special_cmp(const void *pa, const void *pb) {
    const special_key *a = pa, *b = pb;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

// End of generation (keel_token_is_eog) is, as in llama.cpp:
//   * the EOS id, and tokenizer.ggml.eot_token_id / eom_token_id when given;
//   * any of these texts when the vocabulary has it as a CONTROL token
//     (HF: an added token with special=true), because chat models end a turn
//     with their own marker while EOS stays the document end (SmolLM2:
//     eos = <|im_end|> already; Llama-3: <|eot_id|>; Phi-3: <|end|>).
// A plain-text token with one of these spellings is never EOG.
static const char *const eog_texts[] = {
    "<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|end_of_text|>", "</s>", "<|end|>",
    "<end_of_turn>", "<|eom_id|>", "<EOT>", "<|END_OF_TURN_TOKEN|>", "<｜end▁of▁sentence｜>",
};

// Tokens found in raw text before the merges run: user-defined (added)
// tokens always, control and unknown tokens with parse_special (llama.cpp and
// HF agree on this split).
static bool is_matchable(int type) {
    return type == KEEL_TOK_CONTROL || type == KEEL_TOK_USER_DEFINED || type == KEEL_TOK_UNKNOWN;
}

static keel_status finish_special(keel_tokenizer *t, keel_err *err) {
    int32_t n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        int ty = t->tok[id].type;
        if (is_matchable(ty) && t->tok[id].len > 0) n++;
    }
    free(t->special);
    t->special = NULL;
    t->n_special = 0;
    if (n) {
        special_key *k = keel_malloc((size_t)n * sizeof *k);
        t->special = keel_malloc((size_t)n * sizeof *t->special);
        if (!k || !t->special) {
            free(k);
            return KEEL_FAIL(err, KEEL_ERR_NOMEM, "tokenizer: out of memory");
        }
        for (int32_t id = 0; id < t->n_vocab; id++) {
            int ty = t->tok[id].type;
            if (is_matchable(ty) && t->tok[id].len > 0)
                k[t->n_special++] = (special_key){(unsigned char)keel_tok_text(t, id)[0], t->tok[id].len, id};
        }
        qsort(k, (size_t)n, sizeof *k, special_cmp);
        for (int32_t i = 0; i < n; i++) t->special[i] = k[i].id;
        free(k);
    }
    int32_t j = 0;
    for (int b = 0; b <= 256; b++) {
        while (j < t->n_special && (unsigned char)keel_tok_text(t, t->special[j])[0] < b) j++;
        t->special_first[b] = j;
    }
    t->special_first[256] = t->n_special;
    return KEEL_OK;
}

keel_status keel_tok_finish(keel_tokenizer *t, const char *what, keel_err *err) {
    if (!t->hash && !keel_tok_build_hash(t)) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", what);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_tok[b] = keel_tok_find(t, name, 6);
    }
    // ids out of range (e.g. 0xFFFFFFFF written for "none") mean none
    int32_t *ids[] = {&t->bos, &t->eos, &t->unk, &t->pad, &t->eot, &t->eom};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (*ids[i] >= t->n_vocab) *ids[i] = -1;
    keel_status st = finish_special(t, err);
    if (st) return st;
    memset(t->eog, 0, (size_t)t->n_vocab);
    if (t->eos >= 0) t->eog[t->eos] = 1;
    if (t->eot >= 0) t->eog[t->eot] = 1;
    if (t->eom >= 0) t->eog[t->eom] = 1;
    for (size_t i = 0; i < sizeof eog_texts / sizeof eog_texts[0]; i++) {
        int32_t id = keel_tok_find(t, eog_texts[i], strlen(eog_texts[i]));
        if (id >= 0 && t->tok[id].type == KEEL_TOK_CONTROL) t->eog[id] = 1;
    }
    if (t->chat_template) return keel_tok_detect_chat(t, err);
    t->chat_fmt = KEEL_CHAT_NONE;
    return KEEL_OK;
}

// ---------------------------------------------------------------- getters

keel_tokenizer_kind keel_tokenizer_get_kind(const keel_tokenizer *t) { return t->kind; }
int32_t keel_tokenizer_n_vocab(const keel_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t keel_token_bos(const keel_tokenizer *t) { return t ? t->bos : -1; }
int32_t keel_token_eos(const keel_tokenizer *t) { return t ? t->eos : -1; }

bool keel_token_is_eog(const keel_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab && t->eog[id];
}

const char *keel_token_text(const keel_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return NULL;
    return keel_tok_text(t, id);
}

// ---------------------------------------------------------------- decoding

// Append the decoded bytes of token id to a (cap-limited) output; returns the
// full length the piece needs.
static size_t piece(const keel_tokenizer *t, int32_t id, bool render_special, char *buf, size_t cap) {
    if (id < 0 || id >= t->n_vocab) return 0;
    const keel_tok_entry *e = &t->tok[id];
    const char *s = keel_tok_text(t, id);
    size_t n = 0;
#define PUT(c)                                   \
    do {                                         \
        if (n < cap) buf[n] = (char)(c);         \
        n++;                                     \
    } while (0)
    switch (e->type) {
    case KEEL_TOK_CONTROL:
    case KEEL_TOK_UNKNOWN:
    case KEEL_TOK_UNUSED:
        if (!render_special) return 0;
        for (size_t i = 0; i < e->len; i++) PUT(s[i]);
        return n;
    case KEEL_TOK_USER_DEFINED:
        for (size_t i = 0; i < e->len; i++) PUT(s[i]);
        return n;
    case KEEL_TOK_BYTE:
        if (e->len == 6) {
            unsigned v = 0;
            bool ok = true;
            for (int i = 3; i < 5; i++) {
                char c = s[i];
                v <<= 4;
                if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
                else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
                else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
                else ok = false;
            }
            if (ok) {
                PUT(v);
                return n;
            }
        }
        break;
    default:
        break;
    }
    // normal text
    if (t->byte_level) {
        size_t i = 0;
        while (i < e->len) {
            size_t l = keel_utf8_len(s + i, e->len - i);
            if (!l) { PUT(s[i]); i++; continue; }
            uint32_t cp;
            keel_utf8_decode(s + i, &cp);
            int b = keel_tok_cp_to_byte(cp);
            if (b >= 0) PUT(b);
            else for (size_t k = 0; k < l; k++) PUT(s[i + k]); // not a mapped byte: as is
            i += l;
        }
    } else if (t->spm_space) {
        for (size_t i = 0; i < e->len;) {
            if (i + 3 <= e->len && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                PUT(' ');
                i += 3;
            } else {
                PUT(s[i]);
                i++;
            }
        }
    } else {
        for (size_t i = 0; i < e->len; i++) PUT(s[i]);
    }
#undef PUT
    return n;
}

size_t keel_token_to_piece(const keel_tokenizer *t, int32_t id, bool render_special, char *buf,
                           size_t cap) {
    if (!t) return 0;
    return piece(t, id, render_special, buf, buf ? cap : 0);
}

keel_status keel_detokenize(const keel_tokenizer *t, const int32_t *ids, size_t n, bool render_special,
                            char **out, keel_err *err) {
    if (out) *out = NULL;
    if (!t || !out || (n && !ids)) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_detokenize: NULL argument");
    keel_buf b = {0};
    char small[64];
    bool at_start = true;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) {
            free(b.data);
            return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_detokenize: token %zu: id %d out of range [0, %d)",
                             i, ids[i], t->n_vocab);
        }
        size_t need = piece(t, ids[i], render_special, small, sizeof small);
        const char *p = small;
        char *heap = NULL;
        if (need > sizeof small) {
            heap = keel_malloc(need);
            if (!heap) { free(b.data); return KEEL_FAIL(err, KEEL_ERR_NOMEM, "keel_detokenize: out of memory"); }
            piece(t, ids[i], render_special, heap, need);
            p = heap;
        }
        // SentencePiece: the space the encoder prefixed to the text is
        // dropped from the start of the decoded text (skipped control
        // tokens do not count as a start; rendered ones do, as in HF)
        if (at_start && need > 0 && t->spm_space && t->add_space_prefix && p[0] == ' ' &&
            t->tok[ids[i]].type == KEEL_TOK_NORMAL) {
            p++;
            need--;
        }
        if (need > 0 || t->tok[ids[i]].type == KEEL_TOK_NORMAL) at_start = false;
        bool ok = keel_buf_append(&b, p, need);
        free(heap);
        if (!ok) { free(b.data); return KEEL_FAIL(err, KEEL_ERR_NOMEM, "keel_detokenize: out of memory"); }
    }
    if (!keel_buf_append(&b, "", 1)) { free(b.data); return KEEL_FAIL(err, KEEL_ERR_NOMEM, "keel_detokenize: out of memory"); }
    *out = b.data;
    return KEEL_OK;
}

// ---------------------------------------------------------------- loading

static bool ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

keel_status keel_tokenizer_load(const char *path, keel_tokenizer **out, keel_err *err) {
    if (out) *out = NULL;
    if (!path || !out) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_tokenizer_load: NULL argument");
    if (keel_path_is_dir(path)) {
        char *tj = keel_path_join(path, "tokenizer.json");
        char *tc = keel_path_join(path, "tokenizer_config.json");
        if (!tj || !tc) { free(tj); free(tc); return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path); }
        keel_status st = keel_tokenizer_from_hf(tj, keel_path_exists(tc) ? tc : NULL, out, err);
        free(tj);
        free(tc);
        return st;
    }
    if (ends_with(path, ".json")) {
        // tokenizer_config.json beside it, when there is one
        const char *slash = strrchr(path, '/');
        size_t dirlen = slash ? (size_t)(slash - path) : 0;
        char *dir = slash ? keel_strndup(path, dirlen) : keel_strdup(".");
        char *tc = dir ? keel_path_join(dir, "tokenizer_config.json") : NULL;
        free(dir);
        if (!tc) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
        bool use = keel_path_exists(tc) && strcmp(tc, path) != 0;
        keel_status st = keel_tokenizer_from_hf(path, use ? tc : NULL, out, err);
        free(tc);
        return st;
    }
    keel_gguf *g = NULL;
    keel_status st = keel_gguf_open(path, &g, err);
    if (st) return st;
    st = keel_tokenizer_from_gguf(g, out, err);
    keel_gguf_close(g);
    return st;
}
