// SPDX-License-Identifier: MIT
// test_cap_tasks.c — capability data loading (src/cap/tasks.c): lm-eval
// 0-shot request construction on the real task files in ../shared/datasets
// (ARC, PIQA, BoolQ, WinoGrande, HellaSwag; each skipped when absent) with
// SmolLM2's byte-level BPE tokenizer (binary skipped when the cached GGUF is
// absent): item counts, gold indices, context strings, the whitespace-moving
// rule, choice lengths in code points; generic JSONL of every kind; bad files
// named by line and field.
#include "cap/cap.h"
#include "test.h"

#include <cjson/cJSON.h>

#include <unistd.h>

static keel_tokenizer *smol;
static char tmpdir[] = "/tmp/keel-test-cap-XXXXXX";

static keel_cap_spec spec_of(keel_cap_kind kind, keel_cap_task task, const char *data) {
    keel_cap_spec s;
    memset(&s, 0, sizeof s);
    s.name = (char *)"t";
    s.kind = kind;
    s.task = task;
    s.data = (char *)data;
    s.chat = 0;
    s.decide = -1;
    s.max_new_tokens = 32;
    s.window = 512;
    return s;
}

static char *write_tmp(const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return path;
}

static char *detok(const int32_t *ids, int32_t n) {
    char *s = NULL;
    keel_err e;
    if (keel_detokenize(smol, ids, (size_t)n, true, &s, &e) != KEEL_OK) return NULL;
    return s;
}

// ctx + cont decode to exactly context + continuation; ctx == tok(context)
// and cont == tok(context + continuation)[len(ctx):].
static bool request_is(const keel_cap_request *r, const char *context, const char *continuation) {
    char *a = detok(r->ctx, r->n_ctx), *b = detok(r->cont, r->n_cont);
    bool ok = a && b && strcmp(a, context) == 0 && strcmp(b, continuation) == 0;
    if (!ok) fprintf(stderr, "  request: ctx '%s' cont '%s'\n", a ? a : "?", b ? b : "?");
    keel_free(a);
    keel_free(b);
    return ok;
}

static bool rule_holds(const keel_cap_request *r, const char *context_rstripped, const char *whole) {
    int32_t *c = NULL, *w = NULL;
    size_t nc = 0, nw = 0;
    keel_err e;
    bool ok = keel_tokenize(smol, context_rstripped, strlen(context_rstripped), true, false, &c, &nc, &e) == KEEL_OK &&
              keel_tokenize(smol, whole, strlen(whole), true, false, &w, &nw, &e) == KEEL_OK;
    ok = ok && (size_t)r->n_ctx == nc && (size_t)(r->n_ctx + r->n_cont) == nw &&
         memcmp(r->ctx, c, nc * sizeof *c) == 0 && memcmp(r->cont, w + nc, (nw - nc) * sizeof *w) == 0;
    keel_free(c);
    keel_free(w);
    return ok;
}

static bool load(keel_cap_data *d, const keel_cap_spec *s, keel_err *e) {
    keel_status st = keel_cap_data_load(d, s, smol, e);
    if (st) fprintf(stderr, "  load %s: %s\n", s->data, e->msg);
    return st == KEEL_OK;
}

static const char *shared(char *buf, size_t cap, const char *rel) { return test_shared_path(buf, cap, rel); }

// ---------------------------------------------------------------- real files

static void test_arc(void) {
    char p[512];
    if (!keel_path_exists(shared(p, sizeof p, "datasets/arc_easy_test.jsonl"))) {
        printf("  (arc_easy absent)\n");
        return;
    }
    keel_cap_spec s = spec_of(KEEL_CAP_MULTIPLE_CHOICE, KEEL_CAP_TASK_ARC_EASY, p);
    keel_cap_data d;
    keel_err e;
    CHECK("arc_easy loads", load(&d, &s, &e));
    if (!d.items) return;
    CHECK("arc_easy 2376 items", d.n_items == 2376);
    const keel_cap_item *it = &d.items[0];
    CHECK("first item: 4 choices, gold 0, line 1", it->n_req == 4 && it->gold == 0 && it->line == 1 && it->req0 == 0);
    const char *ctx = "Question: Which statement best explains why photosynthesis is the foundation of most food "
                      "webs?\nAnswer:";
    CHECK("first item context/continuation",
          request_is(&d.req[0], ctx, " Sunlight is the source of energy for nearly all ecosystems."));
    CHECK("tokenization rule", rule_holds(&d.req[0], ctx,
                                          "Question: Which statement best explains why photosynthesis is the foundation "
                                          "of most food webs?\nAnswer: Sunlight is the source of energy for nearly all "
                                          "ecosystems."));
    CHECK("choice_len excludes the delimiter", d.choice_len[0] == (int32_t)strlen("Sunlight is the source of energy for nearly all ecosystems."));
    CHECK("no BOS for SmolLM2", keel_token_bos(smol) < 0 || d.req[0].ctx[0] != keel_token_bos(smol));
    // numeric labels: every gold in range, requests contiguous; a 1-4 labelled item
    int64_t numeric = 0, nreq = 0;
    bool contiguous = true, gold_ok = true;
    for (int64_t i = 0; i < d.n_items; i++) {
        contiguous &= d.items[i].req0 == nreq;
        nreq += d.items[i].n_req;
        gold_ok &= d.items[i].gold >= 0 && d.items[i].gold < d.items[i].n_req;
    }
    CHECK("requests contiguous", contiguous && nreq == d.n_req);
    CHECK("gold indices in range", gold_ok);
    // find numeric-label items in the file and compare gold with answerKey - '1'
    FILE *f = fopen(p, "rb");
    char *line = NULL;
    size_t cap = 0;
    int64_t ln = 0;
    bool num_ok = true;
    while (f && getline(&line, &cap, f) > 0) {
        const char *k = strstr(line, "\"answerKey\": \"");
        if (k && k[14] >= '1' && k[14] <= '5' && k[15] == '"') {
            numeric++;
            num_ok &= d.items[ln].gold == k[14] - '1';
        }
        ln++;
    }
    free(line);
    if (f) fclose(f);
    CHECK("97 numeric-label items", numeric == 97);
    CHECK("numeric-label gold = labels.index(answerKey)", num_ok);
    // a non-ASCII choice: choice_len counts code points
    bool found = false, cp_ok = true;
    for (int64_t i = 0; i < d.n_req && !found; i++) {
        char *t = detok(d.req[i].cont, d.req[i].n_cont);
        if (!t) continue;
        size_t bytes = strlen(t) - 1, cps = 0;
        for (const char *q = t + 1; *q; q++) cps += ((unsigned char)*q & 0xC0) != 0x80;
        if (cps != bytes) {
            found = true;
            cp_ok = d.choice_len[i] == (int32_t)cps;
        }
        keel_free(t);
    }
    CHECK("a non-ASCII ARC choice exists", found);
    CHECK("choice_len in code points", cp_ok);
    keel_cap_data_free(&d);

    s.limit = 5;
    CHECK("limit loads", load(&d, &s, &e));
    CHECK("limit 5", d.n_items == 5 && d.n_req == 20);
    keel_cap_data_free(&d);

    if (keel_path_exists(shared(p, sizeof p, "datasets/arc_challenge_test.jsonl"))) {
        s = spec_of(KEEL_CAP_MULTIPLE_CHOICE, KEEL_CAP_TASK_ARC_CHALLENGE, p);
        CHECK("arc_challenge loads", load(&d, &s, &e));
        CHECK("arc_challenge 1172 items, first gold C", d.n_items == 1172 && d.items[0].gold == 2);
        keel_cap_data_free(&d);
    }
}

static void test_piqa(void) {
    char p[512];
    if (!keel_path_exists(shared(p, sizeof p, "datasets/piqa_validation.jsonl"))) {
        printf("  (piqa absent)\n");
        return;
    }
    keel_cap_spec s = spec_of(KEEL_CAP_MULTIPLE_CHOICE, KEEL_CAP_TASK_PIQA, p);
    keel_cap_data d;
    keel_err e;
    CHECK("piqa loads", load(&d, &s, &e));
    if (!d.items) return;
    CHECK("piqa 1838 items", d.n_items == 1838);
    const keel_cap_item *it = &d.items[1]; // {"goal": "dresser", "sol1": "replace drawer with bobby pin ", ...}
    CHECK("piqa item 2: 2 choices, gold 1", it->n_req == 2 && it->gold == 1 && it->line == 2);
    CHECK("trailing space kept", request_is(&d.req[it->req0], "Question: dresser\nAnswer:", " replace drawer with bobby pin "));
    CHECK("inner double space kept",
          request_is(&d.req[it->req0 + 1], "Question: dresser\nAnswer:", " finish, woodgrain with  bobby pin "));
    CHECK("choice_len counts the trailing space", d.choice_len[it->req0] == (int32_t)strlen("replace drawer with bobby pin "));
    int64_t g1 = 0;
    for (int64_t i = 0; i < d.n_items; i++) g1 += d.items[i].gold;
    CHECK("928 items with label 1", g1 == 928);
    keel_cap_data_free(&d);
}

static void test_boolq_wino_hellaswag(void) {
    char p[512];
    keel_cap_data d;
    keel_err e;
    keel_cap_spec s;
    if (keel_path_exists(shared(p, sizeof p, "datasets/boolq_validation.jsonl"))) {
        s = spec_of(KEEL_CAP_MULTIPLE_CHOICE, KEEL_CAP_TASK_BOOLQ, p);
        s.limit = 50;
        CHECK("boolq loads", load(&d, &s, &e));
        if (d.items) {
            CHECK("boolq limit 50", d.n_items == 50 && d.n_req == 100);
            char *c = detok(d.req[0].ctx, d.req[0].n_ctx), *k0 = detok(d.req[0].cont, d.req[0].n_cont),
                 *k1 = detok(d.req[1].cont, d.req[1].n_cont);
            CHECK("boolq context", c && strncmp(c, "Ethanol fuel -- ", 16) == 0 &&
                                        strstr(c, "\nQuestion: does ethanol take more energy make that produces?\nAnswer:") &&
                                        c[strlen(c) - 1] == ':');
            CHECK("boolq choices", k0 && k1 && strcmp(k0, " no") == 0 && strcmp(k1, " yes") == 0);
            CHECK("boolq gold 0 (false)", d.items[0].gold == 0);
            keel_free(c);
            keel_free(k0);
            keel_free(k1);
            keel_cap_data_free(&d);
        }
    }
    if (keel_path_exists(shared(p, sizeof p, "datasets/winogrande_validation_lmeval_form.jsonl"))) {
        s = spec_of(KEEL_CAP_MULTIPLE_CHOICE, KEEL_CAP_TASK_WINOGRANDE, p);
        CHECK("winogrande loads", load(&d, &s, &e));
        if (d.items) {
            CHECK("winogrande 1267 items", d.n_items == 1267 && d.n_req == 2534);
            CHECK("winogrande gold = label", d.items[0].gold == 1 && d.items[1].gold == 0);
            CHECK("winogrande option 1", request_is(&d.req[0], "Sarah was a much better surgeon than Maria so Sarah",
                                                    " always got the easier cases."));
            CHECK("winogrande option 2", request_is(&d.req[1], "Sarah was a much better surgeon than Maria so Maria",
                                                    " always got the easier cases."));
            keel_cap_data_free(&d);
        }
    }
    if (keel_path_exists(shared(p, sizeof p, "datasets/hellaswag_validation_klosax_preprocessed.jsonl"))) {
        s = spec_of(KEEL_CAP_MULTIPLE_CHOICE, KEEL_CAP_TASK_HELLASWAG, p);
        s.limit = 200;
        CHECK("hellaswag loads", load(&d, &s, &e));
        if (d.items) {
            CHECK("hellaswag limit 200", d.n_items == 200 && d.n_req == 800);
            CHECK("hellaswag gold", d.items[0].gold == 3 && d.items[1].gold == 3);
            // klosax text with lm-eval's preprocess (lm-eval proper would say "... roof. He")
            CHECK("hellaswag query",
                  request_is(&d.req[0], "Roof shingle removal: A man is sitting on a roof. he",
                             " is using wrap to wrap a pair of skis."));
            CHECK("hellaswag item 2", request_is(&d.req[4],
                                                 "Clean and jerk: A lady walks to a barbell. She bends down and grabs the "
                                                 "pole. the lady",
                                                 " swings and lands in her arms."));
            keel_cap_data_free(&d);
        }
    }
}

// lm-eval's own requests and token ids (tests/golden/lmeval_requests_smollm2.json,
// written by tools/lmeval_parity.py requests with lm-eval's HFLM._encode_pair):
// every listed doc must give the same requests, ids and gold here.
static void test_lmeval_golden(void) {
    char *txt = NULL;
    size_t len = 0;
    keel_err e;
    // KEEL_LMEVAL_REQUESTS: another copy (e.g. a fresh run of the tool into /tmp)
    const char *gp = getenv("KEEL_LMEVAL_REQUESTS");
    if (!gp || !*gp) gp = "tests/golden/lmeval_requests_smollm2.json";
    if (!keel_path_exists(gp) || keel_read_file(gp, &txt, &len, &e) != KEEL_OK) {
        printf("  (lmeval_requests_smollm2.json absent)\n");
        return;
    }
    cJSON *root = cJSON_Parse(txt);
    keel_free(txt);
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(root, "tasks");
    CHECK("golden parses", cJSON_IsObject(tasks));
    static const struct { const char *name; keel_cap_task task; } map[] = {
        {"arc_easy", KEEL_CAP_TASK_ARC_EASY}, {"arc_challenge", KEEL_CAP_TASK_ARC_CHALLENGE},
        {"piqa", KEEL_CAP_TASK_PIQA},         {"boolq", KEEL_CAP_TASK_BOOLQ},
        {"winogrande", KEEL_CAP_TASK_WINOGRANDE}, {"hellaswag", KEEL_CAP_TASK_HELLASWAG},
    };
    int n_tasks = 0;
    for (const cJSON *t = tasks ? tasks->child : NULL; t; t = t->next) {
        int m = -1;
        for (int k = 0; k < 6; k++)
            if (strcmp(t->string, map[k].name) == 0) m = k;
        CHECK("golden task known", m >= 0);
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(t, "data");
        const cJSON *docs = cJSON_GetObjectItemCaseSensitive(t, "docs");
        if (m < 0 || !cJSON_IsString(data) || !cJSON_IsArray(docs)) continue;
        const char *base = strrchr(data->valuestring, '/');
        char p[512], rel[300];
        snprintf(rel, sizeof rel, "datasets/%s", base ? base + 1 : data->valuestring);
        if (!keel_path_exists(test_shared_path(p, sizeof p, rel))) continue;
        keel_cap_spec s = spec_of(KEEL_CAP_MULTIPLE_CHOICE, map[m].task, p);
        s.limit = cJSON_GetArraySize(docs);
        keel_cap_data d;
        if (!load(&d, &s, &e)) {
            CHECK("golden task loads", false);
            continue;
        }
        n_tasks++;
        bool same = d.n_items == s.limit;
        int64_t i = 0, n_req = 0;
        for (const cJSON *doc = docs->child; doc && same; doc = doc->next, i++) {
            const keel_cap_item *it = &d.items[i];
            const cJSON *reqs = cJSON_GetObjectItemCaseSensitive(doc, "requests");
            const cJSON *gold = cJSON_GetObjectItemCaseSensitive(doc, "gold");
            int64_t g = cJSON_IsNumber(gold) ? (int64_t)gold->valuedouble
                        : cJSON_IsString(gold) ? atoll(gold->valuestring) : -1;
            same = cJSON_GetArraySize(reqs) == it->n_req && g == it->gold;
            int32_t r = it->req0;
            for (const cJSON *q = reqs ? reqs->child : NULL; q && same; q = q->next, r++) {
                const cJSON *ci = cJSON_GetObjectItemCaseSensitive(q, "ctx_ids");
                const cJSON *ki = cJSON_GetObjectItemCaseSensitive(q, "cont_ids");
                same = cJSON_GetArraySize(ci) == d.req[r].n_ctx && cJSON_GetArraySize(ki) == d.req[r].n_cont;
                int k = 0;
                for (const cJSON *x = ci ? ci->child : NULL; x && same; x = x->next, k++)
                    same = (int32_t)x->valuedouble == d.req[r].ctx[k];
                k = 0;
                for (const cJSON *x = ki ? ki->child : NULL; x && same; x = x->next, k++)
                    same = (int32_t)x->valuedouble == d.req[r].cont[k];
                n_req++;
            }
            if (!same) fprintf(stderr, "  golden %s doc %lld differs\n", t->string, (long long)i);
        }
        CHECK("requests and ids equal lm-eval's", same && n_req == d.n_req);
        keel_cap_data_free(&d);
    }
    CHECK("golden covers the staged tasks", n_tasks > 0);
    cJSON_Delete(root);
}

// ---------------------------------------------------------------- generic files

static void test_generic_mc(void) {
    keel_cap_data d;
    keel_err e;
    // a context ending in whitespace: the space moves to the continuation
    const char *p = write_tmp("mc.jsonl", "{\"question\": \"2+2?\", \"choices\": [\"4\", \"5\", \"caf\xc3\xa9\"], \"answer\": 2}\n"
                                          "\n"
                                          "{\"question\": \"Q2 \", \"choices\": [\"a\", \"b\"], \"answer\": 0}\n");
    keel_cap_spec s = spec_of(KEEL_CAP_MULTIPLE_CHOICE, KEEL_CAP_TASK_JSONL, p);
    CHECK("generic mc loads", load(&d, &s, &e));
    if (!d.items) return;
    CHECK("2 items (blank line skipped)", d.n_items == 2 && d.n_req == 5);
    CHECK("gold 2, line 1", d.items[0].gold == 2 && d.items[0].line == 1);
    CHECK("line 3", d.items[1].line == 3);
    CHECK("choice_len cafe = 4 code points", d.choice_len[2] == 4);
    CHECK("choice 0", request_is(&d.req[0], "Question: 2+2?\nAnswer:", " 4"));
    keel_cap_data_free(&d);

    // trailing whitespace of a context: "Question: Q\nAnswer: " would not occur
    // with the template, so test it through WinoGrande contexts
    p = write_tmp("wino.jsonl", "{\"context_options\": [\"A went \", \"B went \"], \"continuation\": \"home.\", \"label\": 0}\n");
    s = spec_of(KEEL_CAP_MULTIPLE_CHOICE, KEEL_CAP_TASK_WINOGRANDE, p);
    CHECK("wino generic loads", load(&d, &s, &e));
    if (d.items) {
        // context "A went " + " home." -> context "A went", continuation "  home."
        CHECK("whitespace moved to the continuation", request_is(&d.req[0], "A went", "  home."));
        CHECK("rule: tok(whole)[len(tok(ctx)):]", rule_holds(&d.req[0], "A went", "A went  home."));
        keel_cap_data_free(&d);
    }
    // an empty context: lm-eval conditions on the prefix token (BOS, else EOS)
    p = write_tmp("wino0.jsonl", "{\"context_options\": [\"\", \"B\"], \"continuation\": \"home.\", \"label\": 1}\n");
    s = spec_of(KEEL_CAP_MULTIPLE_CHOICE, KEEL_CAP_TASK_WINOGRANDE, p);
    CHECK("empty context loads", load(&d, &s, &e));
    if (d.items) {
        int32_t pre = keel_token_bos(smol) >= 0 ? keel_token_bos(smol) : keel_token_eos(smol);
        char *t = detok(d.req[0].cont, d.req[0].n_cont);
        CHECK("empty context = [prefix token]", d.req[0].n_ctx == 1 && d.req[0].ctx[0] == pre);
        CHECK("continuation encoded alone", t && strcmp(t, " home.") == 0);
        keel_free(t);
        keel_cap_data_free(&d);
    }
}

// lm-eval's hellaswag preprocess on synthetic text; expected strings from
// python3: t = t.strip().replace(" [title]", ". "); t = re.sub("\\[.*?\\]", "", t); t.replace("  ", " ")
static void test_hellaswag_preprocess(void) {
    keel_cap_data d;
    keel_err e;
    const char *p = write_tmp("hs.jsonl", "{\"text\": \"Baking: A man  mixes [title] flour   [step]\", \"label\": \"1\", "
                                          "\"endings\": [\"x [substeps]\", \"  a   b [header]c \"]}\n");
    keel_cap_spec s = spec_of(KEEL_CAP_MULTIPLE_CHOICE, KEEL_CAP_TASK_HELLASWAG, p);
    CHECK("hellaswag synthetic loads", load(&d, &s, &e));
    if (!d.items) return;
    CHECK("string label", d.items[0].gold == 1 && d.items[0].n_req == 2);
    // query 'Baking: A man mixes. flour  ': its trailing spaces move to the continuation
    CHECK("ending with a trailing tag", request_is(&d.req[0], "Baking: A man mixes. flour", "   x "));
    CHECK("choice_len keeps the trailing space", d.choice_len[0] == 2);
    CHECK("one pass of double spaces", request_is(&d.req[1], "Baking: A man mixes. flour", "   a  b c"));
    CHECK("choice_len 'a  b c'", d.choice_len[1] == 6);
    keel_cap_data_free(&d);
}

static void test_generic_other(void) {
    keel_cap_data d;
    keel_err e;
    const char *p = write_tmp("em.jsonl", "{\"prompt\": \"Capital of France?\", \"answer\": \"  Paris. \"}\n"
                                          "{\"prompt\": \"2+3\", \"answers\": [\"5\", \"Five\"]}\n"
                                          "{\"prompt\": \"n\", \"answer\": 42}\n"
                                          "{\"prompt\": \"m\", \"answers\": [0.1, \"x\"]}\n");
    keel_cap_spec s = spec_of(KEEL_CAP_EXACT_MATCH, KEEL_CAP_TASK_JSONL, p);
    s.norm_case = s.norm_space = s.norm_punct = true;
    CHECK("exact_match loads", load(&d, &s, &e));
    if (d.items) {
        CHECK("4 items", d.n_items == 4 && d.n_req == 0);
        CHECK("0.1 stays 0.1 (punctuation then dropped)", d.items[3].n_answers == 2 && strcmp(d.items[3].answers[0], "01") == 0);
        CHECK("answer normalised", d.items[0].n_answers == 1 && strcmp(d.items[0].answers[0], "paris") == 0);
        CHECK("answers list", d.items[1].n_answers == 2 && strcmp(d.items[1].answers[1], "five") == 0);
        CHECK("numeric answer", d.items[2].n_answers == 1 && strcmp(d.items[2].answers[0], "42") == 0);
        char *t = detok(d.items[0].prompt, d.items[0].n_prompt);
        CHECK("raw prompt without chat", t && strcmp(t, "Capital of France?") == 0);
        keel_free(t);
        keel_cap_data_free(&d);
    }
    s.chat = -1; // SmolLM2 has a ChatML template
    CHECK("exact_match chat loads", load(&d, &s, &e));
    if (d.items) {
        char *t = detok(d.items[0].prompt, d.items[0].n_prompt);
        CHECK("chat prompt rendered", t && strstr(t, "<|im_start|>user\nCapital of France?<|im_end|>") &&
                                          strstr(t, "<|im_start|>assistant\n"));
        keel_free(t);
        keel_cap_data_free(&d);
    }

    p = write_tmp("probe.jsonl", "{\"prompt\": \"Say hi\"}\n");
    s = spec_of(KEEL_CAP_PROBE, KEEL_CAP_TASK_JSONL, p);
    CHECK("probe loads", load(&d, &s, &e));
    if (d.items) {
        CHECK("probe item", d.n_items == 1 && d.items[0].n_prompt > 0 && d.items[0].n_answers == 0);
        keel_cap_data_free(&d);
    }

    p = write_tmp("doc.txt", "First document line one.\nline two.\n\n\n  \nSecond document.\n\nThird.");
    s = spec_of(KEEL_CAP_PERPLEXITY, KEEL_CAP_TASK_TEXT, p);
    CHECK("text loads", load(&d, &s, &e));
    if (d.items) {
        CHECK("3 documents at blank lines", d.n_items == 3);
        char *t = detok(d.items[0].tokens, d.items[0].n_tokens);
        char *t2 = detok(d.items[1].tokens, d.items[1].n_tokens);
        CHECK("document 2 text", t2 && strcmp(t2, "Second document.") == 0);
        keel_free(t2);
        CHECK("document 1 text", t && strcmp(t, "First document line one.\nline two.") == 0);
        keel_free(t);
        t = detok(d.items[2].tokens, d.items[2].n_tokens);
        CHECK("document 3 text", t && strcmp(t, "Third.") == 0);
        keel_free(t);
        CHECK("text items have line 0", d.items[1].line == 0);
        keel_cap_data_free(&d);
    }
    s.limit = 2;
    CHECK("text limit loads", load(&d, &s, &e));
    CHECK("text limit 2", d.n_items == 2);
    keel_cap_data_free(&d);

    p = write_tmp("ppl.jsonl", "{\"text\": \"one doc\"}\n{\"text\": \"two doc\"}\n");
    s = spec_of(KEEL_CAP_PERPLEXITY, KEEL_CAP_TASK_JSONL, p);
    CHECK("ppl jsonl loads", load(&d, &s, &e));
    CHECK("ppl jsonl 2 docs, line 2", d.n_items == 2 && d.items[1].line == 2 && d.items[1].n_tokens > 0);
    keel_cap_data_free(&d);
}

// ---------------------------------------------------------------- bad files

static void expect_fail(const char *name, const char *text, keel_cap_kind kind, keel_cap_task task, keel_status code,
                        const char *needle) {
    const char *p = write_tmp("bad.jsonl", text);
    char path[512];
    snprintf(path, sizeof path, "%s", p);
    keel_cap_spec s = spec_of(kind, task, path);
    keel_cap_data d;
    keel_err e = {0};
    keel_status st = keel_cap_data_load(&d, &s, smol, &e);
    bool ok = st == code && e.code == code && strstr(e.msg, needle) != NULL && d.items == NULL && d.req == NULL;
    if (!ok) fprintf(stderr, "  %s: status %d, message '%s' (want '%s')\n", name, (int)st, e.msg, needle);
    CHECK(name, ok);
}

static void test_bad(void) {
    const keel_cap_kind MC = KEEL_CAP_MULTIPLE_CHOICE;
    const char *good = "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 1}\n";
    char buf[1024];
    snprintf(buf, sizeof buf, "%s%s{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 1\n", good, good);
    expect_fail("malformed json", buf, MC, KEEL_CAP_TASK_JSONL, KEEL_ERR_FORMAT, "bad.jsonl:3: not valid JSON");
    snprintf(buf, sizeof buf, "%s{\"question\": \"q\", \"answer\": 1}\n", good);
    expect_fail("missing field", buf, MC, KEEL_CAP_TASK_JSONL, KEEL_ERR_FORMAT, ":2: field 'choices': missing");
    snprintf(buf, sizeof buf, "%s%s{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 2}\n", good, good);
    expect_fail("bad answer index", buf, MC, KEEL_CAP_TASK_JSONL, KEEL_ERR_FORMAT,
                ":3: field 'answer': index 2 out of range for 2 choices");
    expect_fail("choices not an array", "{\"question\": \"q\", \"choices\": \"ab\", \"answer\": 0}\n", MC,
                KEEL_CAP_TASK_JSONL, KEEL_ERR_FORMAT, ":1: field 'choices': expected an array");
    expect_fail("answer negative", "{\"question\": \"q\", \"choices\": [\"a\"], \"answer\": -1}\n", MC,
                KEEL_CAP_TASK_JSONL, KEEL_ERR_FORMAT, ":1: field 'answer'");
    expect_fail("bad JSON column", "{\"question\": \"q\", \"choices\": [\"a\" \"b\"], \"answer\": 0}\n", MC,
                KEEL_CAP_TASK_JSONL, KEEL_ERR_FORMAT, "bad.jsonl:1: not valid JSON (at column 35)");
    expect_fail("not an object", "[1, 2]\n", MC, KEEL_CAP_TASK_JSONL, KEEL_ERR_FORMAT, ":1: expected a JSON object");
    expect_fail("invalid utf-8", "{\"question\": \"q\xff\", \"choices\": [\"a\"], \"answer\": 0}\n", MC,
                KEEL_CAP_TASK_JSONL, KEEL_ERR_FORMAT, ":1: invalid UTF-8");
    expect_fail("arc answerKey not a label",
                "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"labels\": [\"A\", \"B\"], \"answerKey\": \"C\"}\n", MC,
                KEEL_CAP_TASK_ARC_EASY, KEEL_ERR_FORMAT, ":1: field 'answerKey': not one of the labels");
    expect_fail("arc labels count",
                "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"labels\": [\"A\"], \"answerKey\": \"A\"}\n", MC,
                KEEL_CAP_TASK_ARC_EASY, KEEL_ERR_FORMAT, ":1: field 'labels'");
    expect_fail("piqa label 2", "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": 2}\n", MC,
                KEEL_CAP_TASK_PIQA, KEEL_ERR_FORMAT, ":1: field 'label': index 2 out of range");
    expect_fail("empty continuation", "{\"context_options\": [\"a\", \"b\"], \"continuation\": \"\", \"label\": 0}\n", MC,
                KEEL_CAP_TASK_WINOGRANDE, KEEL_ERR_FORMAT, "field 'continuation'");
    expect_fail("empty file", "\n\n", MC, KEEL_CAP_TASK_JSONL, KEEL_ERR_FORMAT, "no items");
    expect_fail("em without answer", "{\"prompt\": \"p\"}\n", KEEL_CAP_EXACT_MATCH, KEEL_CAP_TASK_JSONL, KEEL_ERR_FORMAT,
                ":1: field 'answer': missing");
    expect_fail("em answers not strings", "{\"prompt\": \"p\", \"answers\": [[1]]}\n", KEEL_CAP_EXACT_MATCH,
                KEEL_CAP_TASK_JSONL, KEEL_ERR_FORMAT, ":1: field 'answers'");
    expect_fail("ppl text not a string", "{\"text\": 3}\n", KEEL_CAP_PERPLEXITY, KEEL_CAP_TASK_JSONL, KEEL_ERR_FORMAT,
                ":1: field 'text': expected a string");
    expect_fail("task does not fit", "{}\n", KEEL_CAP_EXACT_MATCH, KEEL_CAP_TASK_ARC_EASY, KEEL_ERR_INVALID,
                "does not fit");

    keel_cap_spec s = spec_of(MC, KEEL_CAP_TASK_JSONL, "/nonexistent/keel/cap.jsonl");
    keel_cap_data d;
    keel_err e = {0};
    CHECK("missing file: IO naming it", keel_cap_data_load(&d, &s, smol, &e) == KEEL_ERR_IO &&
                                            strstr(e.msg, "/nonexistent/keel/cap.jsonl") && d.items == NULL);
    // ~/ expands to $HOME
    char *home = getenv("HOME") ? keel_strdup(getenv("HOME")) : NULL;
    setenv("HOME", tmpdir, 1);
    write_tmp("home.jsonl", good);
    s.data = (char *)"~/home.jsonl";
    CHECK("~/ expanded", keel_cap_data_load(&d, &s, smol, &e) == KEEL_OK && d.n_items == 1);
    keel_cap_data_free(&d);
    if (home) setenv("HOME", home, 1);
    keel_free(home);
}

// Every allocation failing in turn: NOMEM (never a crash or a leak under
// ASan), nothing kept, and the load succeeds once allocations stop failing.
static void test_oom(void) {
    const char *p = write_tmp("oom.jsonl", "{\"question\": \"q\", \"choices\": [\"a\", \"b \"], \"answer\": 1}\n"
                                           "{\"question\": \"r\", \"choices\": [\"c\"], \"answer\": 0}\n");
    char path[512];
    snprintf(path, sizeof path, "%s", p);
    static const keel_cap_kind kinds[] = {KEEL_CAP_MULTIPLE_CHOICE, KEEL_CAP_EXACT_MATCH};
    const char *em = write_tmp("oom_em.jsonl", "{\"prompt\": \"p\", \"answers\": [\"A\", 3]}\n");
    char path_em[512];
    snprintf(path_em, sizeof path_em, "%s", em);
    for (int k = 0; k < 2; k++) {
        keel_cap_spec s = spec_of(kinds[k], KEEL_CAP_TASK_JSONL, k ? path_em : path);
        s.chat = k ? 1 : 0;
        bool all_ok = true, done = false;
        for (long n = 1; n < 2000 && !done; n++) {
            keel_cap_data d;
            keel_err e = {0};
            keel_mem_fail_after(n);
            keel_status st = keel_cap_data_load(&d, &s, smol, &e);
            keel_mem_fail_after(0);
            if (st == KEEL_OK) {
                done = true;
                keel_cap_data_free(&d);
            } else if (st != KEEL_ERR_NOMEM || d.items || d.req || d.choice_len) {
                fprintf(stderr, "  oom n=%ld: status %d '%s'\n", n, (int)st, e.msg);
                all_ok = false;
            }
        }
        CHECK("allocation failures give NOMEM and keep nothing", all_ok);
        CHECK("load succeeds after the sweep", done);
    }
}

int main(void) {
    char p[512];
    keel_err e;
    if (!keel_path_exists(test_cache_path(p, sizeof p, "SmolLM2-135M-Instruct.Q4_1.gguf")))
        TEST_SKIP("SmolLM2-135M-Instruct.Q4_1.gguf not in the cache");
    if (keel_tokenizer_load(p, &smol, &e) != KEEL_OK) {
        fprintf(stderr, "tokenizer: %s\n", e.msg);
        CHECK("tokenizer loads", false);
        return test_report();
    }
    if (!mkdtemp(tmpdir)) {
        CHECK("mkdtemp", false);
        return test_report();
    }
    test_arc();
    test_piqa();
    test_boolq_wino_hellaswag();
    test_lmeval_golden();
    test_generic_mc();
    test_hellaswag_preprocess();
    test_generic_other();
    test_bad();
    test_oom();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    keel_tokenizer_free(smol);
    return test_report();
}
