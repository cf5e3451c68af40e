// SPDX-License-Identifier: MIT
// bench_cap_fast.c — capability scoring speed, fast path (src/cap/score_ctx.c,
// keel_cap_score) vs the training-forward reference (run.c,
// keel_cap_score_train) in the same process on the same items: request
// tokens (every request's ctx + continuation - 1, what the reference runs)
// per wall and per CPU second, and the ratio; outcomes must agree. Usage:
//   bench_cap_fast MODEL TASK DATA [LIMIT] [THREADS] [fast]   (fast: skip the reference)
//   bench_cap_fast ~/.cache/keel/SmolLM2-135M-Instruct.Q4_1.gguf arc_easy ../shared/datasets/arc_easy_test.jsonl 100 2
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
        fprintf(stderr, "usage: bench_cap_fast MODEL TASK DATA [LIMIT] [THREADS]\n");
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
    keel_cap_outcome *out = calloc((size_t)d.n_items, sizeof *out), *ref = calloc((size_t)d.n_items, sizeof *ref);
    double w[2], c[2], acc[2] = {0, 0};
    const int first = argc > 6 && !strcmp(argv[6], "fast"); // profile the fast path alone
    for (int pass = first; pass < 2; pass++) { // 0: reference (training forward), 1: fast
        keel_cap_outcome *o = pass ? out : ref;
        double w0 = keel_time_s(), c0 = cpu_s();
        st = pass ? keel_cap_score(&d, &tm, NULL, NULL, d.n_items, o, &err)
                  : keel_cap_score_train(&d, &tm, NULL, NULL, d.n_items, o, &err);
        w[pass] = keel_time_s() - w0, c[pass] = cpu_s() - c0;
        if (st) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        for (int64_t k = 0; k < d.n_items; k++) acc[pass] += o[k].a;
    }
    int64_t diff = 0;
    for (int64_t k = 0; k < d.n_items; k++) diff += out[k].a != ref[k].a || out[k].b != ref[k].b;
    for (int pass = 0; pass < 2; pass++)
        printf("%s %s: %lld items, %lld requests, %lld request tokens; wall %.2f s (%.0f tok/s, %.1f items/s), "
               "CPU %.2f s (%.0f tok/CPU-s), threads %d, acc %.4f\n",
               argv[2], pass ? "fast     " : "reference", (long long)d.n_items, (long long)d.n_req, (long long)tokens,
               w[pass], tokens / w[pass], d.n_items / w[pass], c[pass], tokens / c[pass], tm.n_threads,
               acc[pass] / (double)d.n_items);
    printf("%s: fast / reference = %.2fx wall, %.2fx CPU; items whose acc or acc_norm differ: %lld\n", argv[2],
           w[0] / w[1], c[0] / c[1], (long long)diff);
    free(ref);
    free(out);
    keel_cap_data_free(&d);
    keel_train_model_free(&tm);
    keel_model_free(m);
    keel_cap_suite_free(&s);
    return 0;
}
