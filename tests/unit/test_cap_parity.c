// SPDX-License-Identifier: MIT
// test_cap_parity.c — keel's multiple-choice scores against
// lm-evaluation-harness's own on the same SmolLM2-135M-Instruct weights
// (tests/golden/lmeval_smollm2.json, made by tools/lmeval_parity.py with
// lm-eval 0.4.13): for the first items of ARC-Easy and PIQA, every choice's
// summed log-likelihood within 2e-3 (lm-eval itself moves by 3e-5 between
// batch layouts; keel runs the Q4_1 weights the oracle dequantized), and the
// predicted choice (acc and acc_norm) equal to lm-eval's, item by item. The
// whole sets agree exactly (ARC-Easy 2376, PIQA 1838, WinoGrande 1267 items;
// tools/check_lmeval_parity.sh, bench/README.md); this is the quick check.
#include "cap/cap.h"
#include "model/train.h"
#include "test.h"
#include "test_fs.h"
#include "test_model.h"

#include <cjson/cJSON.h>

static void check_task(const keel_train_model *tm, const cJSON *golden, const char *task, keel_cap_task kind,
                       const char *data, int n_items) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(golden, "tasks"), task);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(t, "items");
    const cJSON *pred = cJSON_GetObjectItemCaseSensitive(t, "pred");
    const cJSON *pred_norm = cJSON_GetObjectItemCaseSensitive(t, "pred_norm");
    CHECK("golden task present", cJSON_IsArray(items) && cJSON_IsString(pred) && cJSON_IsString(pred_norm));
    if (!cJSON_IsArray(items) || !cJSON_IsString(pred) || !cJSON_IsString(pred_norm)) return;
    if (n_items > cJSON_GetArraySize(items)) n_items = cJSON_GetArraySize(items);
    keel_cap_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.name = (char *)task;
    spec.kind = KEEL_CAP_MULTIPLE_CHOICE;
    spec.task = kind;
    spec.data = (char *)data;
    spec.limit = n_items;
    spec.chat = -1;
    spec.decide = -1;
    keel_cap_data d;
    keel_err err = {0};
    keel_status st = keel_cap_data_load(&d, &spec, tm->m->tok, &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    CHECK("data loads", st == KEEL_OK && d.n_items == n_items);
    if (st) return;
    double *ll = calloc((size_t)d.n_req, sizeof *ll);
    st = keel_cap_loglik_ctx(tm, NULL, d.req, d.n_req, ll, &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    CHECK("scores", st == KEEL_OK);
    double worst = 0;
    int same_pred = 0, same_norm = 0;
    for (int i = 0; !st && i < n_items; i++) {
        const keel_cap_item *it = &d.items[i];
        const cJSON *gl = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(items, i), "ll");
        const cJSON *gch = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(items, i), "choice_chars");
        if (!cJSON_IsArray(gl) || cJSON_GetArraySize(gl) != it->n_req) {
            CHECK("golden choices match the item's", false);
            continue;
        }
        int best = 0, best_norm = 0;
        for (int k = 0; k < it->n_req; k++) {
            double g = cJSON_GetArrayItem(gl, k)->valuedouble, v = ll[it->req0 + k];
            double diff = fabs(g - v);
            if (diff > worst) worst = diff;
            if (cJSON_IsArray(gch))
                CHECK("choice length in characters", d.choice_len[it->req0 + k] == cJSON_GetArrayItem(gch, k)->valueint);
            if (v > ll[it->req0 + best]) best = k;
            if (v / d.choice_len[it->req0 + k] > ll[it->req0 + best_norm] / d.choice_len[it->req0 + best_norm]) best_norm = k;
        }
        same_pred += best == pred->valuestring[i] - '0';
        same_norm += best_norm == pred_norm->valuestring[i] - '0';
    }
    printf("%s: %d items, max |ll - lm-eval| %.2e, acc picks equal %d, acc_norm picks equal %d\n", task, n_items, worst,
           same_pred, same_norm);
    CHECK("log-likelihoods within 2e-3 of lm-eval's", worst <= 2e-3);
    CHECK("acc picks equal lm-eval's", same_pred == n_items);
    CHECK("acc_norm picks equal lm-eval's", same_norm == n_items);
    free(ll);
    keel_cap_data_free(&d);
}

int main(void) {
    char model[512], arc[512], piqa[512];
    if (!test_smollm2_arc(model, arc, sizeof model)) TEST_SKIP("SmolLM2 or ARC-Easy absent");
    test_shared_path(piqa, sizeof piqa, "datasets/piqa_validation.jsonl");
    char *text = test_read_text("tests/golden/lmeval_smollm2.json");
    cJSON *golden = text ? cJSON_Parse(text) : NULL;
    free(text);
    CHECK("golden file parses", golden != NULL);
    keel_model *m = test_load_model(model, 0);
    CHECK("model loads", m != NULL);
    keel_train_model tm;
    keel_err err;
    if (golden && m && keel_train_model_init(&tm, m, test_sel_none, NULL, &err) == KEEL_OK) {
        int n = getenv("KEEL_SANITIZE") ? 4 : 20; // the sanitizer build is ~10x slower
        check_task(&tm, golden, "arc_easy", KEEL_CAP_TASK_ARC_EASY, arc, n);
        if (access(piqa, R_OK) == 0) check_task(&tm, golden, "piqa", KEEL_CAP_TASK_PIQA, piqa, n);
        keel_train_model_free(&tm);
    }
    keel_model_free(m);
    cJSON_Delete(golden);
    return test_report();
}
