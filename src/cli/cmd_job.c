// SPDX-License-Identifier: MIT
// cmd_job.c — `keel job check JOB.yaml [--set KEY=VALUE]...`: read and check
// a training job the way `keel train` will (keel_job_resolve) and print it
// resolved: every key with its value, defaults filled, overrides applied.
// Exit status 1 (one stderr line naming the file, line and key) when the job
// is invalid. Keys and defaults: docs/job.md.
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: keel job check JOB.yaml [--set KEY=VALUE]...\n\n"
               "Check a training job and print it resolved (every key, defaults filled in).\n"
               "Exit status: 0 when the job is valid, 1 otherwise. Keys: docs/job.md.\n\n"
               "  --set KEY=VALUE   override one key, e.g. --set train.lr=1e-4 (repeatable)\n");
}

static int job_check(int argc, char **argv) {
    const char *file = NULL;
    const char **sets = calloc((size_t)argc, sizeof *sets);
    int n_sets = 0, rc = 0;
    if (!sets) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); free(sets); return 0; }
        else if (!strcmp(a, "--set") && i + 1 < argc) sets[n_sets++] = argv[++i];
        else if (!strncmp(a, "--set=", 6)) sets[n_sets++] = a + 6;
        else if (a[0] == '-' && a[1]) { fprintf(stderr, "keel job check: unknown option %s\n", a); usage(stderr); free(sets); return 2; }
        else if (!file) file = a;
        else { usage(stderr); free(sets); return 2; }
    }
    if (!file) { usage(stderr); free(sets); return 2; }
    keel_err err = {0};
    char *yaml = NULL;
    if (keel_job_resolve(file, sets, n_sets, &yaml, &err) != KEEL_OK) rc = keel_cli_fail(&err, NULL);
    else fputs(yaml, stdout);
    keel_free(yaml);
    free(sets);
    return rc;
}

int keel_cmd_job(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "check")) return job_check(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "keel job: expected a subcommand: check\n\n");
    usage(stderr);
    return 2;
}
