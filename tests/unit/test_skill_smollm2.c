// SPDX-License-Identifier: MIT
// test_skill_smollm2.c — end to end (issue 3, item 8): a LoRA run on
// SmolLM2-135M-Instruct teaches a skill the base lacks and reaches >= 90%
// exact match on held-out items. The skill is a fixed word cipher (24 words,
// 3-5 per item: "Encode: apple river stone" -> "lamp blue seven"); the data
// is examples/data/skill-{train,test}.jsonl from tools/make_skill_data.py
// (seeded), the job examples/smollm2-skill.yaml. Evaluation: greedy decoding
// through the training forward with the PEFT checkpoint loaded
// (eval/adapter_eval.c), base model first (must be far below), then adapted.
//
// Minutes of CPU: skipped unless KEEL_LONG_TESTS=1 (`make test-long`).
// KEEL_SKILL_CHECKPOINT=DIR evaluates an existing checkpoint instead of
// training; KEEL_SKILL_KEEP=1 keeps the run directory; KEEL_SKILL_DATA=DIR
// takes skill-{train,test}.jsonl from DIR (another --task of the generator).
// Run from the repo root.
#include "test.h"
#include "test_fs.h"
#include "adapters/lora.h"
#include "eval/eval.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define JOB "examples/smollm2-skill.yaml"
#define DATA_DIR "examples/data" // skill-train.jsonl, skill-test.jsonl
#define MAX_ITEMS 512
#define MAX_NEW 16 // cap on the generated tokens (answers are ~5 tokens)

typedef struct item {
    char user[256];
    char answer[256];
} item;

// Read the user and assistant contents of a chat JSONL file; returns the count (-1: error).
static int read_items(const char *path, item *it, int cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char line[4096];
    int n = 0;
    while (n < cap && fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *ms = o ? cJSON_GetObjectItemCaseSensitive(o, "messages") : NULL;
        const cJSON *u = cJSON_GetArrayItem(ms, 0), *a = cJSON_GetArrayItem(ms, 1);
        const cJSON *uc = cJSON_GetObjectItemCaseSensitive(u, "content");
        const cJSON *ac = cJSON_GetObjectItemCaseSensitive(a, "content");
        if (cJSON_IsString(uc) && cJSON_IsString(ac)) {
            snprintf(it[n].user, sizeof it[n].user, "%s", uc->valuestring);
            snprintf(it[n].answer, sizeof it[n].answer, "%s", ac->valuestring);
            n++;
        }
        cJSON_Delete(o);
    }
    fclose(f);
    return n;
}

// The words of a prompt ("Encode: a b c") sorted and joined: the combination key.
static void combo_key(const char *user, char *key, size_t cap) {
    const char *p = strchr(user, ':');
    p = p ? p + 1 : user;
    char words[8][64];
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", p);
    for (char *save = NULL, *w = strtok_r(buf, " ", &save); w && n < 8; w = strtok_r(NULL, " ", &save))
        snprintf(words[n++], sizeof words[0], "%s", w);
    for (int i = 1; i < n; i++) // insertion sort
        for (int j = i; j > 0 && strcmp(words[j - 1], words[j]) > 0; j--) {
            char t[64];
            memcpy(t, words[j], sizeof t);
            memcpy(words[j], words[j - 1], sizeof t);
            memcpy(words[j - 1], t, sizeof t);
        }
    key[0] = 0;
    for (int i = 0; i < n; i++) {
        strncat(key, words[i], cap - strlen(key) - 1);
        strncat(key, " ", cap - strlen(key) - 1);
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void on_event(const keel_train_event *ev, void *ud) {
    (void)ud;
    if (ev->kind == KEEL_TRAIN_EV_STEP && (ev->step % 10 == 0 || ev->step == ev->total_steps))
        printf("  step %lld/%lld  loss %.4f  %.0f tok/s  %.0fs\n", (long long)ev->step,
               (long long)ev->total_steps, ev->loss, ev->tokens_per_s, ev->elapsed_s);
    fflush(stdout);
}

// Decoding of a row stops as soon as its text is no longer a prefix of the answer.
typedef struct keep_ctx {
    const keel_tokenizer *tok;
    const item *it;
} keep_ctx;

static bool keep_prefix(int32_t row, const int32_t *toks, int32_t n, void *ud) {
    const keep_ctx *k = ud;
    char *s = NULL;
    keel_err err = {0};
    if (keel_detokenize(k->tok, toks, (size_t)n, false, &s, &err) != KEEL_OK) return true;
    const bool prefix = strncmp(k->it[row].answer, s, strlen(s)) == 0;
    keel_free(s);
    return prefix;
}

// Greedy answers to every item; returns the number that match exactly (-1: error).
static int exact_match(const keel_train_model *tm, keel_lora *lo, const item *it, int n, const char *tag) {
    const keel_tokenizer *tok = keel_model_tokenizer(tm->m);
    int32_t **prompts = calloc((size_t)n, sizeof *prompts), **out = calloc((size_t)n, sizeof *out);
    int32_t *np = calloc((size_t)n, sizeof *np), *no = calloc((size_t)n, sizeof *no);
    int ok = -1;
    int32_t max_new = 1;
    keel_err err = {0};
    if (!prompts || !out || !np || !no) goto done;
    for (int i = 0; i < n; i++) {
        keel_chat_msg msg = {"user", it[i].user};
        char *text = NULL;
        size_t cnt = 0;
        if (keel_chat_apply(tok, &msg, 1, true, &text, &err) != KEEL_OK ||
            keel_tokenize(tok, text, strlen(text), false, true, &prompts[i], &cnt, &err) != KEEL_OK) {
            keel_free(text);
            printf("  prompt %d: %s\n", i, err.msg);
            goto done;
        }
        keel_free(text);
        np[i] = (int32_t)cnt;
        if (!(out[i] = calloc(MAX_NEW, sizeof(int32_t)))) goto done;
        // an answer can only match if the end token comes right after its
        // tokens, so decoding one token past the longest answer decides every item
        int32_t *ans = NULL;
        if (keel_tokenize(tok, it[i].answer, strlen(it[i].answer), false, false, &ans, &cnt, &err) != KEEL_OK) {
            printf("  answer %d: %s\n", i, err.msg);
            goto done;
        }
        keel_free(ans);
        if ((int32_t)cnt + 1 > max_new) max_new = (int32_t)cnt + 1;
    }
    if (max_new > MAX_NEW) max_new = MAX_NEW;
    const double t0 = now_s();
    if (keel_train_greedy(tm, lo, (const int32_t *const *)prompts, np, n, max_new, out, no, keep_prefix,
                          &(keep_ctx){tok, it}, &err) != KEEL_OK) {
        printf("  greedy: %s\n", err.msg);
        goto done;
    }
    ok = 0;
    for (int i = 0; i < n; i++) {
        char *s = NULL;
        if (keel_detokenize(tok, out[i], (size_t)no[i], false, &s, &err) != KEEL_OK) {
            ok = -1;
            break;
        }
        const bool hit = strcmp(s, it[i].answer) == 0;
        ok += hit;
        if (i < 3 || (!hit && i < 8))
            printf("  [%s] %-40s -> \"%s\" (want \"%s\")%s\n", tag, it[i].user, s, it[i].answer,
                   hit ? "" : "  MISS (decoding stops where the text leaves the answer)");
        keel_free(s);
    }
    printf("  [%s] exact match %d/%d (%.1f%%), %.1f s\n", tag, ok, n, 100.0 * ok / n,
           now_s() - t0);
done:
    for (int i = 0; prompts && out && i < n; i++) {
        keel_free(prompts[i]);
        free(out[i]);
    }
    free(prompts);
    free(out);
    free(np);
    free(no);
    return ok;
}

static bool select_none(const char *hf_name, void *ud) {
    (void)hf_name, (void)ud;
    return false;
}

static item g_train[MAX_ITEMS], g_test[MAX_ITEMS];

int main(void) {
    const char *long_tests = getenv("KEEL_LONG_TESTS");
    if (!(long_tests && !strcmp(long_tests, "1")))
        TEST_SKIP("a minutes-long LoRA training run; set KEEL_LONG_TESTS=1 or run `make test-long`");
    char model_path[1024];
    test_cache_path(model_path, sizeof model_path, "SmolLM2-135M-Instruct.Q4_1.gguf");
    if (access(model_path, R_OK) != 0) TEST_SKIP("SmolLM2-135M-Instruct.Q4_1.gguf not in the cache (scripts/fetch-models.sh)");

    // ---- data: held-out combinations never occur in training
    const char *data_dir = getenv("KEEL_SKILL_DATA");
    if (!(data_dir && *data_dir)) data_dir = DATA_DIR;
    char train_file[1100], test_file[1100];
    snprintf(train_file, sizeof train_file, "%s/skill-train.jsonl", data_dir);
    snprintf(test_file, sizeof test_file, "%s/skill-test.jsonl", data_dir);
    const int n_train = read_items(train_file, g_train, MAX_ITEMS);
    const int n_test = read_items(test_file, g_test, MAX_ITEMS);
    CHECK("training items read", n_train >= 100);
    CHECK("at least 50 held-out items", n_test >= 50);
    if (n_train < 100 || n_test < 50) return test_report();
    int leaks = 0;
    for (int i = 0; i < n_test; i++) {
        char kt[512], kr[512];
        combo_key(g_test[i].user, kt, sizeof kt);
        for (int j = 0; j < n_train; j++) {
            combo_key(g_train[j].user, kr, sizeof kr);
            leaks += strcmp(kt, kr) == 0;
        }
    }
    CHECK("no held-out word combination occurs in training", leaks == 0);

    // ---- train (or take a given checkpoint)
    char run_dir[] = "/tmp/keel_skill_XXXXXX";
    char ckpt[1200] = "";
    const char *given = getenv("KEEL_SKILL_CHECKPOINT");
    const bool trained_here = !(given && *given);
    if (!trained_here) {
        snprintf(ckpt, sizeof ckpt, "%s", given);
        printf("  evaluating the given checkpoint %s\n", ckpt);
    } else {
        if (!mkdtemp(run_dir)) {
            CHECK("mkdtemp", false);
            return test_report();
        }
        char set_dir[1100], set_train[1200];
        snprintf(set_dir, sizeof set_dir, "output.dir=%s", run_dir);
        snprintf(set_train, sizeof set_train, "data.train=%s", train_file);
        const char *sets[] = {set_dir, set_train};
        keel_train_opts o = keel_train_default_opts();
        o.sets = sets;
        o.n_sets = 2;
        keel_train_callbacks cb = {.on_event = on_event};
        keel_train_summary sum;
        keel_err err = {0};
        printf("  training %s into %s\n", JOB, run_dir);
        fflush(stdout);
        const keel_status st = keel_train_run(JOB, &o, &cb, &sum, &err);
        CHECK("keel_train_run", st == KEEL_OK);
        if (st != KEEL_OK) {
            printf("  %s\n", err.msg);
            test_rm_rf(run_dir);
            return test_report();
        }
        printf("  trained: %lld steps, %lld tokens, %.1f s, %.1f tok/s, final loss %.4f, peak RSS %.0f MiB\n",
               (long long)sum.steps, (long long)sum.tokens, sum.wall_s, sum.tokens_per_s, sum.final_loss,
               (double)sum.peak_rss_bytes / (1 << 20));
        CHECK("final training loss below 0.1", sum.final_loss < 0.1);
        snprintf(ckpt, sizeof ckpt, "%s", sum.checkpoint);
    }

    // ---- evaluate: base, then with the adapter
    keel_model *m = NULL;
    keel_model_params mp = keel_model_default_params();
    mp.n_threads = 1; // as the job: the machine is shared
    keel_err err = {0};
    keel_status st = keel_model_load(model_path, &mp, &m, &err);
    CHECK("load SmolLM2", st == KEEL_OK);
    keel_train_model tm;
    bool tm_ok = false;
    if (st == KEEL_OK) {
        st = keel_train_model_init(&tm, m, select_none, NULL, &err);
        CHECK("training model (nothing trainable)", st == KEEL_OK);
        tm_ok = st == KEEL_OK;
    }
    if (tm_ok) {
        const int base = exact_match(&tm, NULL, g_test, n_test, "base");
        CHECK("base model evaluated", base >= 0);
        CHECK("base model is far below the bar (<= 20% exact match)", base >= 0 && base * 5 <= n_test);
        keel_lora lo;
        st = keel_lora_load(&lo, &tm, ckpt, 0, &err);
        CHECK("load the PEFT adapter", st == KEEL_OK);
        if (st != KEEL_OK) printf("  %s\n", err.msg);
        else {
            const int hit = exact_match(&tm, &lo, g_test, n_test, "lora");
            CHECK("adapted model reaches >= 90% exact match on held-out items", hit >= 0 && hit * 10 >= n_test * 9);
            keel_lora_free(&lo);
        }
        keel_train_model_free(&tm);
    }
    if (st != KEEL_OK) printf("  %s\n", err.msg);
    keel_model_free(m);
    const char *keep = getenv("KEEL_SKILL_KEEP");
    if (trained_here) {
        if (keep && *keep) printf("  kept %s\n", run_dir);
        else test_rm_rf(run_dir);
    }
    return test_report();
}
