// SPDX-License-Identifier: MIT
// cmd_eval.c — `keel eval -m MODEL [--adapter DIR] SUITE.yaml`: score a
// capability suite (docs/eval.md) on a model, print the table (value, 95%
// CI, n per capability) and optionally the JSON (--json FILE, written
// atomically, or - for stdout). Progress goes to stderr. Bad input: one
// "keel: FILE:LINE:COL: key '...': ..." line, exit 1, nothing written.
#include "cli.h"

#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: keel eval -m MODEL [options] SUITE.yaml\n\n"
            "Score every capability of a suite file (a YAML 'capabilities:' list: perplexity,\n"
            "exact_match, multiple_choice scored as lm-evaluation-harness 0-shot, probe; see\n"
            "docs/eval.md) on a model. Prints one row per capability: metric, value, 95%%\n"
            "confidence interval (Wilson for rates, bootstrap for perplexity) and n.\n\n"
            "  -m, --model PATH   .gguf file or Hugging Face model directory\n"
            "  --adapter DIR      apply a PEFT LoRA adapter (e.g. a keel LoRA checkpoint)\n"
            "  --json FILE        also write the results as JSON (FILE written atomically; - = stdout)\n"
            "  --limit N          at most N items per capability (smaller of this and the suite's limit)\n"
            "  --seed N           bootstrap seed for perplexity CIs (default 0)\n"
            "  -t, --threads N    threads (default: all cores)\n"
            "  -q, --quiet        no progress on stderr\n");
}

typedef struct prog {
    const keel_suite *s;
    bool tty, quiet;
    double t0;
} prog;

static void progress(int32_t cap, int64_t done, int64_t total, void *ud) {
    prog *p = ud;
    if (p->quiet) return;
    const char *name = keel_suite_name(p->s, cap);
    if (done == 0) p->t0 = keel_cli_now_s();
    if (p->tty) {
        fprintf(stderr, "\r[%d/%d] %s: %lld/%lld items", (int)cap + 1, (int)keel_suite_count(p->s), name,
                (long long)done, (long long)total);
        if (done == total) fputc('\n', stderr);
    } else if (done == total) {
        fprintf(stderr, "[%d/%d] %s: %lld items in %.1f s\n", (int)cap + 1, (int)keel_suite_count(p->s), name,
                (long long)total, keel_cli_now_s() - p->t0);
    }
    fflush(stderr);
}

// Write text to path atomically: a temp file beside it, fsync, rename.
static bool write_atomic(const char *path, const char *text) {
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) return false;
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fputs(text, f) >= 0;
    if (f) ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok, ok = fclose(f) == 0 && ok;
    if (ok) ok = rename(tmp, path) == 0;
    if (!ok) {
        fprintf(stderr, "keel: cannot write %s\n", path);
        unlink(tmp);
    }
    free(tmp);
    return ok;
}

int keel_cmd_eval(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *json = NULL, *suite_path = NULL;
    long threads = 0, limit = 0, seed = 0;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v) { model = v; i++; }
        else if (!strcmp(a, "--adapter") && v) { adapter = v; i++; }
        else if (!strcmp(a, "--json") && v) { json = v; i++; }
        else if (!strcmp(a, "--limit")) { if (!keel_cli_int(a, v, 1, 1L << 40, &limit)) return 2; i++; }
        else if (!strcmp(a, "--seed")) { if (!keel_cli_int(a, v, 0, 1L << 62, &seed)) return 2; i++; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { if (!keel_cli_int(a, v, 0, 1024, &threads)) return 2; i++; }
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = true;
        else if (a[0] != '-' && !suite_path) suite_path = a;
        else { fprintf(stderr, "keel eval: unknown option or missing value: %s\n", a); usage(stderr); return 2; }
    }
    if (!model || !suite_path) { usage(stderr); return 2; }
    keel_err err = {0};
    keel_suite *s = NULL;
    if (keel_suite_load(suite_path, &s, &err) != KEEL_OK) return keel_cli_fail(&err, NULL);
    int32_t n = keel_suite_count(s);
    keel_cap_result *r = calloc((size_t)n, sizeof *r);
    char *table = NULL, *js = NULL;
    int rc = 1;
    if (!r) {
        fprintf(stderr, "keel: out of memory\n");
        goto done;
    }
    prog p = {s, isatty(2) != 0, quiet, 0};
    keel_eval_opts o = keel_eval_default_opts();
    o.adapter = adapter;
    o.limit = limit;
    o.n_threads = (int32_t)threads;
    o.seed = (uint64_t)seed;
    o.progress = progress;
    o.ud = &p;
    double t0 = keel_cli_now_s();
    if (keel_suite_eval(model, s, &o, r, &err) != KEEL_OK) {
        if (p.tty && !quiet) fputc('\n', stderr);
        keel_cli_fail(&err, NULL);
        goto done;
    }
    if (keel_cap_results_table(r, n, &table, &err) != KEEL_OK ||
        (json && keel_cap_results_json(r, n, &js, &err) != KEEL_OK)) {
        keel_cli_fail(&err, NULL);
        goto done;
    }
    if (json && strcmp(json, "-") && !write_atomic(json, js)) goto done;
    if (json && !strcmp(json, "-")) fputs(js, stdout);
    else fputs(table, stdout);
    if (!quiet) fprintf(stderr, "%d capabilities scored in %.1f s\n", (int)n, keel_cli_now_s() - t0);
    rc = 0;
done:
    keel_free(table);
    keel_free(js);
    free(r);
    keel_suite_free(s);
    return rc;
}
