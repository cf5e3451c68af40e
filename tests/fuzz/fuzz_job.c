// SPDX-License-Identifier: MIT
// fuzz_job.c — libFuzzer target for the job-file parser (src/job/job.c): the
// input is job.yaml. A failed parse must say why; a successful one must
// survive validation, write itself back as YAML and read back equal (the
// resolved-job round trip). The first line of the input is also tried as a
// `--set` override.
#include "fuzz_common.h"
#include "job/job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    keel_job a, b;
    keel_err e;
    if (keel_job_init(&a, &e) != KEEL_OK) return 0;
    keel_status st = keel_job_parse(&a, "fuzz.yaml", (const char *)data, size, &e);
    fuzz_check_err(st, &e);
    if (st == KEEL_OK) {
        fuzz_check_err(keel_job_validate(&a, &e), &e);
        char *text = NULL;
        size_t len = 0;
        if (keel_job_to_yaml(&a, &text, &len, &e) != KEEL_OK) abort();
        if (keel_job_init(&b, &e) != KEEL_OK) abort();
        if (keel_job_parse(&b, "resolved.yaml", text, len, &e) != KEEL_OK) {
            fprintf(stderr, "fuzz_job: resolved job does not parse: %s\n%s\n", e.msg, text);
            abort();
        }
        if (!keel_job_equal(&a, &b)) {
            fprintf(stderr, "fuzz_job: round trip changed the job:\n%s\n", text);
            abort();
        }
        keel_job_free(&b);
        free(text);
    }
    // the first line as an override (NUL-free, bounded)
    char set[256];
    size_t n = 0;
    while (n < size && n < sizeof set - 1 && data[n] != '\n' && data[n] != 0) {
        set[n] = (char)data[n];
        n++;
    }
    set[n] = 0;
    fuzz_check_err(keel_job_set(&a, set, &e), &e);
    keel_job_free(&a);
    return 0;
}
