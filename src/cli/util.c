// SPDX-License-Identifier: MIT
// util.c — small helpers shared by the CLI commands: error printing, option
// value parsing, reading a file or stdin, --run REF (a registry checkpoint)
// to a model path and adapter, monotonic time.
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

int keel_cli_fail(const keel_err *err, const char *hint) {
    fprintf(stderr, "keel: %s\n", err->msg[0] ? err->msg : keel_status_str(err->code));
    if (hint) fprintf(stderr, "HINT: %s\n", hint);
    return 1;
}

bool keel_cli_matmul(const char *opt, const char *val, keel_matmul_precision *out) {
    static const struct {
        const char *name;
        keel_matmul_precision p;
    } names[] = {{"fp32", KEEL_MATMUL_FP32}, {"bf16x3", KEEL_MATMUL_BF16X3}, {"bf16", KEEL_MATMUL_BF16}};
    for (size_t i = 0; val && i < sizeof names / sizeof *names; i++)
        if (!strcmp(val, names[i].name)) {
            *out = names[i].p;
            return true;
        }
    fprintf(stderr, "keel: option %s: '%s' is not one of fp32, bf16x3, bf16\n", opt, val ? val : "");
    return false;
}

bool keel_cli_int(const char *opt, const char *val, long lo, long hi, long *out) {
    if (!val) {
        fprintf(stderr, "keel: option %s needs a value\n", opt);
        return false;
    }
    char *end = NULL;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || *end || v < lo || v > hi) {
        fprintf(stderr, "keel: option %s: '%s' is not an integer in [%ld, %ld]\n", opt, val, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool keel_cli_float(const char *opt, const char *val, double lo, double hi, double *out) {
    if (!val) {
        fprintf(stderr, "keel: option %s needs a value\n", opt);
        return false;
    }
    char *end = NULL;
    errno = 0;
    double v = strtod(val, &end);
    if (errno || end == val || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "keel: option %s: '%s' is not a number in [%g, %g]\n", opt, val, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

char *keel_cli_slurp(const char *path, size_t *len) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "keel: %s: cannot open: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0) break;
        n += r;
    }
    bool bad = ferror(f);
    if (f != stdin) fclose(f);
    if (!buf || bad) {
        fprintf(stderr, "keel: %s: %s\n", path, buf ? "read error" : "out of memory");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int keel_cli_run_model(const char *cmd, const char *run, const char *registry, const char **model,
                       const char **adapter, char **own_model, char **own_adapter) {
    *own_model = *own_adapter = NULL;
    if (!registry) {
        const char *env = getenv("KEEL_REGISTRY");
        registry = env && *env ? env : "keel.db";
    }
    if (access(registry, F_OK) != 0) { // never create one here
        fprintf(stderr, "keel: no registry at %s (--registry PATH or $KEEL_REGISTRY names another)\n", registry);
        return 1;
    }
    keel_err err = {0};
    keel_registry *r = NULL;
    char dir[4096];
    if (keel_registry_open(registry, &r, &err) != KEEL_OK) return keel_cli_fail(&err, NULL);
    keel_status st = keel_registry_resolve(r, run, dir, sizeof dir, &err);
    keel_registry_close(r);
    char *m = NULL, *a = NULL;
    if (st == KEEL_OK) st = keel_checkpoint_model(dir, *model, &m, &a, &err);
    if (st != KEEL_OK) return keel_cli_fail(&err, NULL);
    if (a && *adapter) {
        fprintf(stderr, "keel %s: --adapter %s and --run %s (a LoRA checkpoint, %s) both name an adapter\n", cmd,
                *adapter, run, a);
        keel_free(m);
        keel_free(a);
        return 2;
    }
    if (!a && *model) {
        fprintf(stderr, "keel %s: -m %s and --run %s (a model checkpoint, %s) both name the model\n", cmd, *model,
                run, m);
        keel_free(m);
        return 2;
    }
    fprintf(stderr, "%s: %s%s%s\n", run, m, a ? " + adapter " : "", a ? a : "");
    *model = *own_model = m;
    if (a) *adapter = *own_adapter = a;
    return 0;
}

double keel_cli_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
