// SPDX-License-Identifier: MIT
// cmd_registry.c — the registry commands over include/keel.h's keel_registry_*:
// `keel runs`, `keel show RUN|CHECKPOINT`, `keel diff A B`, `keel rollback RUN
// [--to CHECKPOINT]`, `keel fsck`. Each reads --registry PATH, else
// $KEEL_REGISTRY, else ./keel.db (the default `keel train` records into).
// Tables, references and the fsck checks: docs/registry.md.
#include "cli.h"

#include <unistd.h>

#define REGISTRY_HELP                                                                               \
    "  --registry PATH   the registry database (default $KEEL_REGISTRY, else ./keel.db)\n"         \
    "\nReferences: a run is its number, its directory or its name (the directory's last\n"          \
    "component); a checkpoint is RUN@step-N, RUN@base, RUN@active or its directory.\n"           \
    "Tables and commands: docs/registry.md.\n"

typedef struct reg_args {
    const char *registry;
    const char *pos[2];
    int n_pos;
    const char *to;
} reg_args;

// Parse [--registry PATH] [--to REF] and up to max_pos positionals.
// Returns -1 to go on, else the exit code (0 after --help).
static int parse(const char *cmd, int argc, char **argv, int max_pos, bool allow_to, void (*usage)(FILE *),
                 reg_args *a) {
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(s, "--registry") || (allow_to && !strcmp(s, "--to"))) {
            if (i + 1 >= argc || !*argv[i + 1]) {
                fprintf(stderr, "keel %s: option %s needs a value\n", cmd, s);
                return 2;
            }
            if (!strcmp(s, "--to")) a->to = argv[++i];
            else a->registry = argv[++i];
        } else if (!strncmp(s, "--registry=", 11)) {
            a->registry = s + 11;
        } else if (allow_to && !strncmp(s, "--to=", 5)) {
            a->to = s + 5;
        } else if (s[0] == '-' && s[1]) {
            fprintf(stderr, "keel %s: unknown option %s\n", cmd, s);
            usage(stderr);
            return 2;
        } else if (a->n_pos < max_pos) {
            a->pos[a->n_pos++] = s;
        } else {
            fprintf(stderr, "keel %s: unexpected argument '%s'\n", cmd, s);
            usage(stderr);
            return 2;
        }
    }
    if (!a->registry) {
        const char *env = getenv("KEEL_REGISTRY");
        a->registry = env && *env ? env : "keel.db";
    }
    return -1;
}

// Open an existing registry (these commands never create one).
static keel_registry *open_existing(const char *path) {
    if (access(path, F_OK) != 0) {
        fprintf(stderr, "keel: no registry at %s\nHINT: `keel train` records runs there; --registry PATH (or "
                        "$KEEL_REGISTRY) names another\n", path);
        return NULL;
    }
    keel_err err = {0};
    keel_registry *r = NULL;
    if (keel_registry_open(path, &r, &err) != KEEL_OK) {
        keel_cli_fail(&err, NULL);
        return NULL;
    }
    return r;
}

static int finish(keel_registry *r, keel_status st, char *out, const keel_err *err) {
    if (st == KEEL_OK && out) fputs(out, stdout);
    keel_free(out);
    keel_registry_close(r);
    return st == KEEL_OK ? 0 : keel_cli_fail(err, NULL);
}

// ---------------------------------------------------------------- runs

static void runs_usage(FILE *f) {
    fprintf(f, "usage: keel runs [--registry PATH]\n\n"
               "List the recorded runs: number, name, method, status (crashed: left running by a\n"
               "process that is gone), steps, active checkpoint, start time and model.\n\n" REGISTRY_HELP);
}

int keel_cmd_runs(int argc, char **argv) {
    reg_args a;
    int rc = parse("runs", argc, argv, 0, false, runs_usage, &a);
    if (rc >= 0) return rc;
    keel_registry *r = open_existing(a.registry);
    if (!r) return 1;
    keel_err err = {0};
    char *out = NULL;
    keel_status st = keel_registry_runs(r, &out, &err);
    return finish(r, st, out, &err);
}

// ---------------------------------------------------------------- show

static void show_usage(FILE *f) {
    fprintf(f, "usage: keel show RUN|CHECKPOINT [--registry PATH]\n\n"
               "A run: its header, the ledger (each capability's base and latest value with 95%%\n"
               "CIs, the change, its bounds and whether they hold), the decisions taken and the\n"
               "checkpoints with their lineage (* marks the active one).\n"
               "A checkpoint: its scores, SHA-256 and parent chain back to the base.\n\n" REGISTRY_HELP);
}

int keel_cmd_show(int argc, char **argv) {
    reg_args a;
    int rc = parse("show", argc, argv, 1, false, show_usage, &a);
    if (rc >= 0) return rc;
    if (a.n_pos != 1) {
        show_usage(stderr);
        return 2;
    }
    keel_registry *r = open_existing(a.registry);
    if (!r) return 1;
    keel_err err = {0};
    char *out = NULL;
    keel_status st = keel_registry_show(r, a.pos[0], &out, &err);
    return finish(r, st, out, &err);
}

// ---------------------------------------------------------------- diff

static void diff_usage(FILE *f) {
    fprintf(f, "usage: keel diff A B [--registry PATH]\n\n"
               "The capabilities of two checkpoints (a run stands for its active checkpoint) side\n"
               "by side: values with 95%% CIs, B - A, and whether the difference is significant\n"
               "(|B - A| > 1.96 sqrt(se_A^2 + se_B^2), an unpaired test).\n\n" REGISTRY_HELP);
}

int keel_cmd_diff(int argc, char **argv) {
    reg_args a;
    int rc = parse("diff", argc, argv, 2, false, diff_usage, &a);
    if (rc >= 0) return rc;
    if (a.n_pos != 2) {
        diff_usage(stderr);
        return 2;
    }
    keel_registry *r = open_existing(a.registry);
    if (!r) return 1;
    keel_err err = {0};
    char *out = NULL;
    keel_status st = keel_registry_diff(r, a.pos[0], a.pos[1], &out, &err);
    return finish(r, st, out, &err);
}

// ---------------------------------------------------------------- rollback

static void rollback_usage(FILE *f) {
    fprintf(f, "usage: keel rollback RUN [--to CHECKPOINT] [--registry PATH]\n\n"
               "Make a checkpoint of RUN its active version (what `keel show RUN` marks and what a\n"
               "run reference resolves to). Without --to: the last checkpoint that satisfied every\n"
               "bound (the base counts as one). --to takes RUN@step-N, step-N, base or a checkpoint\n"
               "directory of the same run. The decision is recorded. Files are not touched.\n\n" REGISTRY_HELP);
}

int keel_cmd_rollback(int argc, char **argv) {
    reg_args a;
    int rc = parse("rollback", argc, argv, 1, true, rollback_usage, &a);
    if (rc >= 0) return rc;
    if (a.n_pos != 1) {
        rollback_usage(stderr);
        return 2;
    }
    keel_registry *r = open_existing(a.registry);
    if (!r) return 1;
    keel_err err = {0};
    char path[4096];
    keel_status st = keel_registry_rollback(r, a.pos[0], a.to, path, sizeof path, &err);
    if (st == KEEL_OK) printf("run %s: active checkpoint is now %s\n", a.pos[0], path);
    return finish(r, st, NULL, &err);
}

// ---------------------------------------------------------------- fsck

static void fsck_usage(FILE *f) {
    fprintf(f, "usage: keel fsck [--registry PATH]\n\n"
               "Verify the registry against the files: SQLite integrity and foreign keys; every\n"
               "listed checkpoint present, loadable (safetensors/GGUF headers and JSON parse, weights\n"
               "with their config) and matching its recorded SHA-256; parents and active pointers\n"
               "valid. Leftovers of a crash (a run left running, a checkpoint written but not yet\n"
               "recorded, a .tmp directory) are notes, not problems.\n"
               "Exit status: 0 no problems, 1 problems found (or the registry cannot be read).\n\n" REGISTRY_HELP);
}

int keel_cmd_fsck(int argc, char **argv) {
    reg_args a;
    int rc = parse("fsck", argc, argv, 0, false, fsck_usage, &a);
    if (rc >= 0) return rc;
    keel_registry *r = open_existing(a.registry);
    if (!r) return 1;
    keel_err err = {0};
    char *out = NULL;
    int64_t problems = 0;
    keel_status st = keel_registry_fsck(r, &out, &problems, &err);
    rc = finish(r, st, out, &err);
    return rc ? rc : problems ? 1 : 0;
}
