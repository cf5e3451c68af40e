// SPDX-License-Identifier: MIT
// test_data.c — training data (src/data/): tokens and loss masks of each
// format on stories260K's SentencePiece tokenizer, chat masks on SmolLM2's
// ChatML tokenizer (skipped when the cached GGUF is absent), malformed lines
// named by line number, truncation, packing boundaries, seeded shuffles and
// validation splits, the data-check report, and the shipped example data.
#include "core/core.h"
#include "data/data.h"
#include "test.h"

#include <unistd.h>

static keel_tokenizer *stories, *smol;

static keel_dataset *load(const char *path, const keel_tokenizer *tok, keel_data_format fmt, int32_t max_len,
                          bool skip, keel_status *st_out, keel_err *err) {
    keel_data_params p = keel_data_default_params();
    p.format = fmt;
    p.max_seq_len = max_len;
    p.skip_malformed = skip;
    keel_dataset *d = NULL;
    keel_status st = keel_dataset_load(path, tok, &p, &d, err);
    if (st_out) *st_out = st;
    if (st && !st_out) fprintf(stderr, "  load %s: %s\n", path, err->msg);
    return d;
}

static bool eq_tokens(const keel_example *x, const int32_t *t, const uint8_t *m, int32_t n) {
    if (x->n_tokens != n) return false;
    for (int32_t i = 0; i < n; i++)
        if (x->tokens[i] != t[i] || x->loss_mask[i] != m[i]) return false;
    return true;
}

// Text of the trained targets: tokens[i + 1] for every i with loss_mask[i].
static char *targets_text(const keel_tokenizer *tok, const keel_example *x) {
    int32_t *t = malloc(sizeof(int32_t) * (size_t)(x->n_tokens + 1));
    size_t n = 0;
    for (int32_t i = 0; i + 1 < x->n_tokens; i++)
        if (x->loss_mask[i]) t[n++] = x->tokens[i + 1];
    char *s = NULL;
    keel_err err;
    if (keel_detokenize(tok, t, n, true, &s, &err) != KEEL_OK) s = NULL;
    free(t);
    return s;
}

static int32_t n_mask(const keel_example *x) {
    int32_t c = 0;
    for (int32_t i = 0; i < x->n_tokens; i++) c += x->loss_mask[i];
    return c;
}

// ---------------------------------------------------------------- formats

static void test_text(void) {
    keel_err err = {0};
    keel_dataset *d = load("tests/data/jsonl/text.jsonl", stories, KEEL_DATA_AUTO, 512, false, NULL, &err);
    CHECK("text loads", d != NULL);
    if (!d) return;
    CHECK("text detected", keel_dataset_format(d) == KEEL_DATA_TEXT);
    CHECK("8 examples (blank line skipped)", keel_dataset_count(d) == 8);
    keel_example x;
    CHECK("get 0", keel_dataset_get(d, 0, &x));
    // "Hi. Bye": <s> ▁H i . ▁B y e </s>; every next token trained
    static const int32_t t[] = {1, 320, 417, 426, 368, 422, 411, 2};
    static const uint8_t m[] = {1, 1, 1, 1, 1, 1, 1, 0};
    CHECK("text tokens + mask", eq_tokens(&x, t, m, 8));
    CHECK("one segment", x.n_segments == 1 && x.segments[0] == 0 && x.segments[1] == 8);
    CHECK("line 1", x.line == 1 && x.n_tokens_full == 8);
    CHECK("get 3 is line 5 (blank line counted)", keel_dataset_get(d, 3, &x) && x.line == 5);
    CHECK("get out of range", !keel_dataset_get(d, 8, &x) && !keel_dataset_get(d, -1, &x));
    keel_dataset_free(d);
    keel_dataset_free(NULL);

    // truncation: cut to max_seq_len, last position never trained
    d = load("tests/data/jsonl/text.jsonl", stories, KEEL_DATA_TEXT, 5, false, NULL, &err);
    CHECK("trunc loads", d && keel_dataset_get(d, 0, &x));
    if (d) {
        static const uint8_t mt[] = {1, 1, 1, 1, 0};
        CHECK("truncated tokens + mask", eq_tokens(&x, t, mt, 5));
        CHECK("full length kept", x.n_tokens_full == 8);
        bool all = true;
        for (int64_t i = 0; i < keel_dataset_count(d); i++) {
            keel_dataset_get(d, i, &x);
            all = all && x.n_tokens <= 5 && x.loss_mask[x.n_tokens - 1] == 0;
        }
        CHECK("every example cut to 5", all);
    }
    keel_dataset_free(d);
}

static void test_prompt_completion(void) {
    keel_err err = {0};
    keel_dataset *d = load("tests/data/jsonl/pc.jsonl", stories, KEEL_DATA_AUTO, 512, false, NULL, &err);
    CHECK("pc loads", d != NULL);
    if (!d) return;
    CHECK("pc detected", keel_dataset_format(d) == KEEL_DATA_PROMPT_COMPLETION);
    keel_example x;
    keel_dataset_get(d, 0, &x);
    // "Hi." + " Bye": loss from the prediction of ▁B (made at '.') through </s>
    static const int32_t t[] = {1, 320, 417, 426, 368, 422, 411, 2};
    static const uint8_t m[] = {0, 0, 0, 1, 1, 1, 1, 0};
    CHECK("pc tokens + mask", eq_tokens(&x, t, m, 8));
    keel_dataset_get(d, 1, &x);
    char *s = targets_text(stories, &x);
    CHECK("pc targets are the completion + EOS", s && strstr(s, ", there was a cat.") && !strstr(s, "upon"));
    CHECK("pc ends with EOS", x.tokens[x.n_tokens - 1] == keel_token_eos(stories));
    keel_free(s);
    keel_dataset_free(d);
}

static void test_alpaca(void) {
    char *p = keel_data_alpaca_prompt("Say hi.", "");
    CHECK("alpaca no-input prompt",
          p && !strcmp(p, "Below is an instruction that describes a task. Write a response that appropriately "
                          "completes the request.\n\n### Instruction:\nSay hi.\n\n### Response:\n"));
    free(p);
    p = keel_data_alpaca_prompt("Add.", "2 and 3");
    CHECK("alpaca input prompt",
          p && !strcmp(p, "Below is an instruction that describes a task, paired with an input that provides further "
                          "context. Write a response that appropriately completes the request.\n\n### Instruction:\n"
                          "Add.\n\n### Input:\n2 and 3\n\n### Response:\n"));
    free(p);
    keel_err err = {0};
    keel_dataset *d = load("tests/data/jsonl/alpaca.jsonl", stories, KEEL_DATA_AUTO, 512, false, NULL, &err);
    CHECK("alpaca loads", d && keel_dataset_count(d) == 3 && keel_dataset_format(d) == KEEL_DATA_ALPACA);
    for (int64_t i = 0; d && i < 3; i++) {
        keel_example x;
        keel_dataset_get(d, i, &x);
        char *s = targets_text(stories, &x);
        static const char *want[] = {"Hi.", "5", "Red."};
        // the targets are the output (its first piece may carry the newline's merge) + EOS
        CHECK("alpaca targets = output", s && strstr(s, want[i]) && !strstr(s, "Response"));
        CHECK("alpaca EOS last", x.tokens[x.n_tokens - 1] == keel_token_eos(stories));
        keel_free(s);
    }
    keel_dataset_free(d);
}

static void test_chat_needs_template(void) {
    keel_err err = {0};
    keel_status st;
    keel_dataset *d = load("tests/data/jsonl/chat.jsonl", stories, KEEL_DATA_AUTO, 512, true, &st, &err);
    CHECK("chat on a template-less tokenizer", d == NULL && st == KEEL_ERR_UNSUPPORTED && strstr(err.msg, "chat template"));
}

static void test_chat_smollm2(void) {
    if (!smol) {
        printf("skipped: chat masks (SmolLM2-135M-Instruct.Q4_1.gguf not in the cache)\n");
        return;
    }
    keel_err err = {0};
    keel_status st;
    keel_dataset *d = load("tests/data/jsonl/chat.jsonl", smol, KEEL_DATA_AUTO, 512, true, &st, &err);
    CHECK("chat loads", d != NULL);
    if (!d) {
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    CHECK("chat detected", keel_dataset_format(d) == KEEL_DATA_CHAT);
    CHECK("3 chats", keel_dataset_count(d) == 3);
    keel_example x;
    keel_dataset_get(d, 0, &x);
    char *s = targets_text(smol, &x);
    CHECK("one turn: targets are the reply + <|im_end|>", s && !strcmp(s, "Hello there<|im_end|>"));
    if (s && strcmp(s, "Hello there<|im_end|>")) fprintf(stderr, "  got '%s'\n", s);
    keel_free(s);
    // the whole rendering is the template's
    char *full = NULL;
    keel_detokenize(smol, x.tokens, (size_t)x.n_tokens, true, &full, &err);
    CHECK("rendered with ChatML", full && strstr(full, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello there<|im_end|>\n"));
    keel_free(full);
    // the mask is one contiguous span ending at the prediction of <|im_end|>
    int spans = 0;
    for (int32_t i = 0; i < x.n_tokens; i++) spans += x.loss_mask[i] && (i == 0 || !x.loss_mask[i - 1]);
    CHECK("one span", spans == 1);

    keel_dataset_get(d, 1, &x);
    s = targets_text(smol, &x);
    CHECK("two turns: both replies, nothing else", s && !strcmp(s, "4<|im_end|>6<|im_end|>"));
    if (s && strcmp(s, "4<|im_end|>6<|im_end|>")) fprintf(stderr, "  got '%s'\n", s);
    keel_free(s);
    spans = 0;
    for (int32_t i = 0; i < x.n_tokens; i++) spans += x.loss_mask[i] && (i == 0 || !x.loss_mask[i - 1]);
    CHECK("two spans", spans == 2);
    CHECK("line 2", x.line == 2);

    // the assistant speaks first: SmolLM2's default system turn is in the
    // whole rendering but not in the empty prefix; still only the reply trains
    keel_dataset_get(d, 2, &x);
    s = targets_text(smol, &x);
    CHECK("assistant first: only its reply", s && !strcmp(s, "Hi first<|im_end|>"));
    if (s && strcmp(s, "Hi first<|im_end|>")) fprintf(stderr, "  got '%s'\n", s);
    keel_free(s);

    // malformed chats, each with its line and reason
    CHECK("4 issues", keel_dataset_n_issues(d) == 4);
    int64_t line;
    const char *msg;
    CHECK("no assistant", keel_dataset_issue(d, 0, &line, &msg) && line == 3 && strstr(msg, "no assistant message"));
    CHECK("bad role", keel_dataset_issue(d, 1, &line, &msg) && line == 4 && strstr(msg, "messages[0]: role \"robot\""));
    CHECK("no content", keel_dataset_issue(d, 2, &line, &msg) && line == 5 && strstr(msg, "messages[0]: missing field \"content\""));
    CHECK("not a list", keel_dataset_issue(d, 3, &line, &msg) && line == 6 && strstr(msg, "\"messages\" must be an array"));
    CHECK("issue out of range", !keel_dataset_issue(d, 4, &line, &msg));
    keel_dataset_free(d);

    // strict mode stops at the first malformed line and names it
    d = load("tests/data/jsonl/chat.jsonl", smol, KEEL_DATA_CHAT, 512, false, &st, &err);
    CHECK("strict chat fails", !d && st == KEEL_ERR_FORMAT &&
                                   !strcmp(err.msg, "tests/data/jsonl/chat.jsonl:3: no assistant message (nothing to train on)"));

    // the example data of examples/smollm2-lora.yaml
    const char *ex[] = {"examples/data/reverse-train.jsonl", "examples/data/reverse-valid.jsonl"};
    for (int i = 0; i < 2; i++) {
        d = load(ex[i], smol, KEEL_DATA_CHAT, 128, false, NULL, &err);
        CHECK(ex[i], d && keel_dataset_count(d) > 0);
        bool ok = true;
        for (int64_t k = 0; d && k < keel_dataset_count(d); k++) {
            keel_dataset_get(d, k, &x);
            ok = ok && n_mask(&x) > 0 && x.n_tokens_full <= 128;
        }
        CHECK("reverse examples fit and train", ok);
        keel_dataset_free(d);
    }
}

// Llama-2's [INST] template (tokenizer.json from shared/ + the chat
// tokenizer_config.json fixture, copied side by side into a temp directory).
static void test_chat_llama2(void) {
    char src[512], dir[] = "/tmp/keel-test-data-XXXXXX", dst[600];
    test_shared_path(src, sizeof src, "models/tokenizers/llama2/tokenizer.json");
    char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    keel_err err = {0};
    if (keel_read_file(src, &a, &na, &err) || !mkdtemp(dir)) {
        printf("skipped: Llama-2 chat masks (%s missing)\n", src);
        free(a);
        return;
    }
    CHECK("fixture", keel_read_file("tests/data/llama2_chat_tokenizer_config.json", &b, &nb, &err) == KEEL_OK);
    snprintf(dst, sizeof dst, "%s/tokenizer.json", dir);
    FILE *f = fopen(dst, "wb");
    CHECK("write tokenizer.json", f && fwrite(a, 1, na, f) == na);
    if (f) fclose(f);
    snprintf(dst, sizeof dst, "%s/tokenizer_config.json", dir);
    f = fopen(dst, "wb");
    CHECK("write tokenizer_config.json", f && b && fwrite(b, 1, nb, f) == nb);
    if (f) fclose(f);
    keel_tokenizer *l2 = NULL;
    snprintf(dst, sizeof dst, "%s/tokenizer.json", dir);
    CHECK("llama2 tokenizer", keel_tokenizer_load(dst, &l2, &err) == KEEL_OK &&
                                  keel_tokenizer_chat_format(l2) == KEEL_CHAT_LLAMA2);
    keel_status st;
    keel_dataset *d = l2 ? load("tests/data/jsonl/chat.jsonl", l2, KEEL_DATA_CHAT, 512, true, &st, &err) : NULL;
    CHECK("llama2 chat loads", d != NULL);
    if (d) {
        keel_example x;
        keel_dataset_get(d, 1, &x); // system, user, assistant "4", user, assistant "6"
        int spans = 0, eos = 0;
        for (int32_t i = 0; i + 1 < x.n_tokens; i++) {
            spans += x.loss_mask[i] && (i == 0 || !x.loss_mask[i - 1]);
            eos += x.loss_mask[i] && x.tokens[i + 1] == keel_token_eos(l2);
        }
        char *t = targets_text(l2, &x);
        CHECK("llama2: two answer spans, each ending with </s>", spans == 2 && eos == 2);
        CHECK("llama2: targets are the answers", t && strstr(t, "4") && strstr(t, "6") && !strstr(t, "INST") &&
                                                     !strstr(t, "2+2"));
        keel_free(t);
        // roles that do not alternate are a malformed line for this template
        int64_t line;
        const char *msg;
        bool found = false;
        for (int64_t i = 0; keel_dataset_issue(d, i, &line, &msg); i++) found = found || line == 7;
        CHECK("assistant-first chat is malformed for Llama-2", found);
    }
    keel_dataset_free(d);
    keel_tokenizer_free(l2);
    unlink(dst);
    snprintf(dst, sizeof dst, "%s/tokenizer_config.json", dir);
    unlink(dst);
    rmdir(dir);
    free(a);
    free(b);
}

// ---------------------------------------------------------------- malformed lines

static void test_malformed(void) {
    keel_err err = {0};
    keel_status st;
    keel_dataset *d = load("tests/data/jsonl/bad.jsonl", stories, KEEL_DATA_AUTO, 512, true, &st, &err);
    CHECK("bad loads with skip", d != NULL);
    if (!d) return;
    CHECK("2 good", keel_dataset_count(d) == 2);
    static const struct {
        int64_t line;
        const char *msg;
    } want[] = {
        {2, "invalid JSON at byte 11"},
        {4, "missing field \"text\""},
        {5, "field \"text\" must be a string, got a number"},
        {6, "invalid UTF-8 at byte 15"},
        {7, "expected a JSON object, got an array"},
        {8, "extra text after the JSON value at byte 16"},
        {9, "invalid JSON at byte 11"},
    };
    CHECK("7 issues", keel_dataset_n_issues(d) == 7);
    for (int i = 0; i < 7; i++) {
        int64_t line = 0;
        const char *msg = "";
        keel_dataset_issue(d, i, &line, &msg);
        CHECK("issue line", line == want[i].line);
        CHECK("issue reason", !strcmp(msg, want[i].msg));
        if (strcmp(msg, want[i].msg)) fprintf(stderr, "  line %lld: '%s'\n", (long long)line, msg);
    }
    keel_example x;
    CHECK("CRLF line parsed", keel_dataset_get(d, 1, &x) && x.line == 10);
    keel_dataset_free(d);

    d = load("tests/data/jsonl/bad.jsonl", stories, KEEL_DATA_AUTO, 512, false, &st, &err);
    CHECK("strict fails on line 2", !d && st == KEEL_ERR_FORMAT && !strcmp(err.msg, "tests/data/jsonl/bad.jsonl:2: invalid JSON at byte 11"));
    // a format given explicitly: text lines read as prompt/completion miss "prompt"
    d = load("tests/data/jsonl/text.jsonl", stories, KEEL_DATA_PROMPT_COMPLETION, 512, false, &st, &err);
    CHECK("wrong format names the field", !d && !strcmp(err.msg, "tests/data/jsonl/text.jsonl:1: missing field \"prompt\""));
    d = load("tests/data/jsonl/none.jsonl", stories, KEEL_DATA_AUTO, 512, false, &st, &err);
    CHECK("missing file", !d && st == KEEL_ERR_IO);
    d = load("tests/data/jsonl/text.jsonl", stories, KEEL_DATA_AUTO, 1, false, &st, &err);
    CHECK("max_seq_len 1 refused", !d && st == KEEL_ERR_INVALID);
}

// ---------------------------------------------------------------- order, split, pack

static void test_shuffle_split(void) {
    keel_err err = {0};
    keel_dataset *d = load("tests/data/jsonl/text.jsonl", stories, KEEL_DATA_AUTO, 512, false, NULL, &err);
    if (!d) return;
    int64_t n = keel_dataset_count(d), a[8], b[8], c[8];
    keel_example x;
    keel_dataset_shuffle(d, 1234);
    for (int64_t i = 0; i < n; i++) keel_dataset_get(d, i, &x), a[i] = x.line;
    keel_dataset_shuffle(d, 99);
    for (int64_t i = 0; i < n; i++) keel_dataset_get(d, i, &x), c[i] = x.line;
    keel_dataset_shuffle(d, 1234);
    for (int64_t i = 0; i < n; i++) keel_dataset_get(d, i, &x), b[i] = x.line;
    CHECK("same seed, same order", !memcmp(a, b, sizeof a));
    CHECK("other seed, other order", memcmp(a, c, sizeof a) != 0);
    int64_t sum = 0, ident = 0;
    for (int64_t i = 0; i < n; i++) sum += a[i], ident += a[i] == (i < 2 ? i + 1 : i + 2);
    CHECK("a permutation of the lines", sum == 1 + 2 + 4 + 5 + 6 + 7 + 8 + 9);
    CHECK("not the file order", ident < n);

    keel_dataset *tr = NULL, *va = NULL, *tr2 = NULL, *va2 = NULL;
    CHECK("split", keel_dataset_split(d, 0.25, 7, &tr, &va, &err) == KEEL_OK);
    CHECK("split sizes", keel_dataset_count(tr) == 6 && keel_dataset_count(va) == 2);
    CHECK("split again", keel_dataset_split(d, 0.25, 7, &tr2, &va2, &err) == KEEL_OK);
    bool same = keel_dataset_count(va2) == 2, disjoint = true;
    for (int64_t i = 0; i < keel_dataset_count(va); i++) {
        keel_example v, w;
        keel_dataset_get(va, i, &v);
        if (same) keel_dataset_get(va2, i, &w), same = v.line == w.line;
        for (int64_t k = 0; k < keel_dataset_count(tr); k++) {
            keel_dataset_get(tr, k, &w);
            disjoint = disjoint && w.line != v.line;
        }
    }
    CHECK("same seed, same split", same);
    CHECK("train and validation disjoint", disjoint);
    keel_example v0;
    keel_dataset_get(va, 0, &v0);
    CHECK("validation keeps its tokens", v0.n_tokens > 0 && v0.tokens[0] == 1 && v0.loss_mask[v0.n_tokens - 1] == 0);
    keel_dataset_free(tr2);
    keel_dataset_free(va2);
    CHECK("tiny fraction still takes one", keel_dataset_split(d, 0.01, 7, &tr2, &va2, &err) == KEEL_OK &&
                                               keel_dataset_count(va2) == 1 && keel_dataset_count(tr2) == 7);
    keel_dataset_free(tr2);
    keel_dataset_free(va2);
    CHECK("fraction 1 refused", keel_dataset_split(d, 1.0, 7, &tr2, &va2, &err) == KEEL_ERR_INVALID && !tr2 && !va2);
    keel_dataset_free(tr);
    keel_dataset_free(va);
    keel_dataset_free(d);
}

static void test_pack(void) {
    keel_err err = {0};
    keel_dataset *d = load("tests/data/jsonl/text.jsonl", stories, KEEL_DATA_AUTO, 512, false, NULL, &err);
    if (!d) return;
    keel_dataset *p = NULL;
    CHECK("pack", keel_dataset_pack(d, 40, &p, &err) == KEEL_OK);
    if (!p) return;
    int64_t n = keel_dataset_count(d), np = keel_dataset_count(p), k = 0;
    int64_t trained_d = 0, trained_p = 0, tok_d = 0, tok_p = 0;
    bool ok = true, bounds = true;
    for (int64_t i = 0; i < n; i++) {
        keel_example x;
        keel_dataset_get(d, i, &x);
        trained_d += n_mask(&x);
        tok_d += x.n_tokens;
    }
    for (int64_t s = 0; s < np; s++) {
        keel_example y;
        keel_dataset_get(p, s, &y);
        trained_p += n_mask(&y);
        tok_p += y.n_tokens;
        ok = ok && y.n_tokens <= 40 && y.segments[0] == 0 && y.segments[y.n_segments] == y.n_tokens;
        for (int32_t g = 0; g < y.n_segments; g++, k++) {
            keel_example x;
            keel_dataset_get(d, k, &x);
            int32_t a = y.segments[g], len = y.segments[g + 1] - a;
            // segment g is example k, unchanged, and its last position is not trained
            ok = ok && len == x.n_tokens && !memcmp(y.tokens + a, x.tokens, sizeof(int32_t) * (size_t)len) &&
                 !memcmp(y.loss_mask + a, x.loss_mask, (size_t)len);
            bounds = bounds && y.loss_mask[a + len - 1] == 0 && y.tokens[a] == 1;
        }
    }
    CHECK("fewer sequences", np < n && np > 0);
    CHECK("segments are the examples in order", ok && k == n);
    CHECK("no target across a boundary", bounds);
    CHECK("same tokens, same trained positions", tok_p == tok_d && trained_p == trained_d);
    // greedy: the next example would not have fit
    bool greedy = true;
    for (int64_t s = 0; s + 1 < np; s++) {
        keel_example y, z;
        keel_dataset_get(p, s, &y);
        keel_dataset_get(p, s + 1, &z);
        greedy = greedy && y.n_tokens + z.segments[1] > 40;
    }
    CHECK("greedy packing", greedy);
    keel_example first;
    keel_dataset_get(p, 0, &first);
    CHECK("packed line is the first segment's", first.line == 1);
    // packing a packed set with a shorter length re-packs its segments, cut to fit
    keel_dataset *q = NULL;
    CHECK("repack", keel_dataset_pack(p, 12, &q, &err) == KEEL_OK);
    bool fit = q != NULL;
    for (int64_t s = 0; q && s < keel_dataset_count(q); s++) {
        keel_example y;
        keel_dataset_get(q, s, &y);
        fit = fit && y.n_tokens <= 12 && y.loss_mask[y.n_tokens - 1] == 0;
    }
    CHECK("repacked fits", fit);
    keel_dataset_free(q);
    CHECK("pack 1 refused", keel_dataset_pack(d, 1, &q, &err) == KEEL_ERR_INVALID && !q);
    keel_dataset_free(p);
    keel_dataset_free(d);
}

// ---------------------------------------------------------------- data check

static void test_check(void) {
    keel_err err = {0};
    keel_data_report r;
    keel_data_params p = keel_data_default_params();
    p.max_seq_len = 12;
    CHECK("check dups", keel_data_check("tests/data/jsonl/dups.jsonl", stories, &p, &r, &err) == KEEL_OK);
    CHECK("6 examples", r.n_examples == 6 && r.n_lines == 6 && r.n_malformed == 0);
    CHECK("2 duplicate groups", r.n_dup_groups == 2);
    if (r.n_dup_groups == 2) {
        CHECK("cat group (whitespace normalized)", r.dup_off[1] - r.dup_off[0] == 3 && r.dup_lines[0] == 1 &&
                                                      r.dup_lines[1] == 3 && r.dup_lines[2] == 6);
        CHECK("dog group", r.dup_off[2] - r.dup_off[1] == 2 && r.dup_lines[3] == 2 && r.dup_lines[4] == 5);
    }
    int64_t hsum = 0;
    for (int32_t b = 0; b < r.n_bins; b++) hsum += r.hist_count[b];
    CHECK("histogram counts every example", hsum == 6 && r.n_bins >= 1 && r.hist_lo[0] == r.min_len &&
                                                r.hist_hi[r.n_bins - 1] == r.max_len);
    keel_data_report_free(&r);

    p.max_seq_len = 10;
    CHECK("check text", keel_data_check("tests/data/jsonl/text.jsonl", stories, &p, &r, &err) == KEEL_OK);
    keel_dataset *d = load("tests/data/jsonl/text.jsonl", stories, KEEL_DATA_AUTO, 10, false, NULL, &err);
    int64_t tok = 0, tr = 0, over = 0;
    for (int64_t i = 0; d && i < keel_dataset_count(d); i++) {
        keel_example x;
        keel_dataset_get(d, i, &x);
        tok += x.n_tokens;
        tr += n_mask(&x);
        over += x.n_tokens_full > 10;
    }
    CHECK("report tokens", r.n_tokens == tok && r.n_trained == tr);
    CHECK("report over-length", r.n_over == over && over > 0 && r.over_lines[0] == 2);
    CHECK("no dups", r.n_dup_groups == 0);
    keel_dataset_free(d);
    keel_data_report_free(&r);

    CHECK("check bad", keel_data_check("tests/data/jsonl/bad.jsonl", stories, &p, &r, &err) == KEEL_OK);
    CHECK("bad: 7 malformed with lines", r.n_malformed == 7 && r.bad_lines[0] == 2 && r.bad_lines[6] == 9 &&
                                             !strcmp(r.bad_msgs[3], "invalid UTF-8 at byte 15"));
    keel_data_report_free(&r);
    keel_data_report_free(NULL);
    CHECK("check missing file", keel_data_check("tests/data/jsonl/none.jsonl", stories, &p, &r, &err) == KEEL_ERR_IO);

    // the example data of examples/stories260k-full.yaml
    d = load("examples/data/stories-train.jsonl", stories, KEEL_DATA_TEXT, 256, false, NULL, &err);
    CHECK("stories example data loads", d && keel_dataset_count(d) == 48);
    keel_dataset_free(d);
}

int main(void) {
    char path[512];
    keel_err err = {0};
    if (keel_tokenizer_load(test_shared_path(path, sizeof path, "models/stories260K/stories260K.gguf"), &stories, &err)) {
        fprintf(stderr, "stories260K: %s\n", err.msg);
        CHECK("stories260K tokenizer", false);
        return test_report();
    }
    keel_tokenizer_load(test_cache_path(path, sizeof path, "SmolLM2-135M-Instruct.Q4_1.gguf"), &smol, &err);
    test_text();
    test_prompt_completion();
    test_alpaca();
    test_chat_needs_template();
    test_chat_smollm2();
    test_chat_llama2();
    test_malformed();
    test_shuffle_split();
    test_pack();
    test_check();
    keel_tokenizer_free(stories);
    keel_tokenizer_free(smol);
    return test_report();
}
