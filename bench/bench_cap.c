// SPDX-License-Identifier: MIT
// bench_cap.c — speed of multiple-choice capability scoring: the training
// forward (src/cap/run.c, keel_cap_score_train, the reference) and the
// inference forward with a KV cache (src/cap/score_ctx.c, keel_cap_score,
// what keel eval and the ledger run), in the same process on the same items.
// Tokens = every request's ctx + continuation - 1 (what the reference runs),
// per wall and per CPU second; with both, the ratio and the number of items
// whose acc or acc_norm differ (should be 0). Usage:
//   bench_cap MODEL TASK DATA [LIMIT] [THREADS] [train|fast|both]   (fast: profile the fast path alone)
//   bench_cap ~/.cache/keel/SmolLM2-135M-Instruct.Q4_1.gguf arc_easy ../shared/datasets/arc_easy_test.jsonl 50 1
// TASK is a multiple-choice task name of docs/eval.md (arc_easy, piqa, ...).
#include "cap/cap.h"
#include "model/train.h"
#include "keel.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

static bool sel_none(const char *hf, void *ud) {
    (void)hf, (void)ud;
    return false;
}

static double cpu_s(void) { return (double)clock() / CLOCKS_PER_SEC; }

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_cap MODEL TASK DATA [LIMIT] [THREADS] [train|fast|both]\n");
        return 2;
    }
    int limit = argc > 4 ? atoi(argv[4]) : 50, threads = argc > 5 ? atoi(argv[5]) : 0;
    char yaml[1200], path[] = "/tmp/keel-bench-cap-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 1;
    snprintf(yaml, sizeof yaml, "capabilities:\n  - {name: b, type: multiple_choice, task: %s, data: \"%s\", limit: %d}\n",
             argv[2], argv[3], limit);
    FILE *f = fdopen(fd, "w");
    fputs(yaml, f);
    fclose(f);
    keel_err err = {0};
    keel_cap_suite s;
    keel_status st = keel_cap_suite_load_file(&s, path, &err);
    unlink(path);
    if (st) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    keel_model_params mp = keel_model_default_params();
    mp.n_threads = threads;
    keel_model *m = NULL;
    if (keel_model_load(argv[1], &mp, &m, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    keel_train_model tm;
    keel_cap_data d;
    if (keel_train_model_init(&tm, m, sel_none, NULL, &err) || keel_cap_data_load(&d, &s.v[0], keel_model_tokenizer(m), &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int64_t tokens = 0;
    for (int64_t r = 0; r < d.n_req; r++) tokens += d.req[r].n_ctx + d.req[r].n_cont - 1;
    keel_cap_outcome *res[2] = {calloc((size_t)d.n_items, sizeof **res), calloc((size_t)d.n_items, sizeof **res)};
    double w[2], c[2];
    const char *which = argc > 6 ? argv[6] : "both";
    for (int fast = 0; fast < 2; fast++) {
        if (strcmp(which, "both") && strcmp(which, fast ? "fast" : "train")) continue;
        keel_cap_outcome *out = res[fast];
        double w0 = keel_time_s(), c0 = cpu_s();
        st = fast ? keel_cap_score(&d, &tm, NULL, NULL, d.n_items, out, &err)
                  : keel_cap_score_train(&d, &tm, NULL, NULL, d.n_items, out, &err);
        w[fast] = keel_time_s() - w0, c[fast] = cpu_s() - c0;
        if (st) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        double acc = 0, accn = 0;
        for (int64_t k = 0; k < d.n_items; k++) acc += out[k].a, accn += out[k].b;
        printf("%s %s: %lld items, %lld requests, %lld request tokens; wall %.2f s (%.0f tok/s, %.1f items/s), "
               "CPU %.2f s (%.0f tok/CPU-s), threads %d, acc %.4f, acc_norm %.4f\n",
               argv[2], fast ? "fast (inference forward)" : "train (training forward)", (long long)d.n_items,
               (long long)d.n_req, (long long)tokens, w[fast], tokens / w[fast], d.n_items / w[fast], c[fast],
               tokens / c[fast], tm.n_threads, acc / (double)d.n_items, accn / (double)d.n_items);
    }
    if (!strcmp(which, "both")) {
        int64_t diff = 0;
        for (int64_t k = 0; k < d.n_items; k++) diff += res[0][k].a != res[1][k].a || res[0][k].b != res[1][k].b;
        printf("%s: fast / train = %.2fx wall, %.2fx CPU; items whose acc or acc_norm differ: %lld\n", argv[2],
               w[0] / w[1], c[0] / c[1], (long long)diff);
    }
    free(res[0]);
    free(res[1]);
    keel_cap_data_free(&d);
    keel_train_model_free(&tm);
    keel_model_free(m);
    keel_cap_suite_free(&s);
    return 0;
}
