// SPDX-License-Identifier: MIT
// cmd_train.c — `keel train JOB.yaml [--set KEY=VALUE]... [--resume RUN_DIR]`:
// runs a training job through keel_train_run and prints its events: one
// progress line per step on stderr (step/total, loss, lr, grad norm,
// tokens/s, ETA), validation losses, checkpoints, and a summary. Ctrl-C asks
// the library to finish the current step, save a checkpoint and return; the
// exit status is then 130. Ledger measurements and decisions are printed as
// they happen; a run that ended on a violation exits with 3. Keys:
// docs/job.md; run directory: docs/train.md; registry: docs/registry.md.
#include "cli.h"

#include <math.h>
#include <signal.h>

static volatile sig_atomic_t g_stop;

static void on_sigint(int sig) {
    (void)sig;
    if (g_stop) signal(SIGINT, SIG_DFL); // a second Ctrl-C kills at once
    g_stop = 1;
}

static bool should_stop(void *ud) {
    (void)ud;
    return g_stop != 0;
}

static void fmt_dur(double s, char *buf, size_t cap) {
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, cap, "%.1fs", s);
}

static void on_event(const keel_train_event *ev, void *ud) {
    bool quiet = *(bool *)ud;
    char eta[32], el[32];
    switch (ev->kind) {
    case KEEL_TRAIN_EV_START:
        if (ev->step > 0) fprintf(stderr, "keel train: resuming at step %lld of %lld\n", (long long)ev->step, (long long)ev->total_steps);
        else fprintf(stderr, "keel train: %lld steps\n", (long long)ev->total_steps);
        break;
    case KEEL_TRAIN_EV_STEP:
        if (quiet) break;
        fmt_dur(ev->eta_s, eta, sizeof eta);
        fmt_dur(ev->elapsed_s, el, sizeof el);
        fprintf(stderr, "step %lld/%lld  loss %.4f  lr %.3e  grad %.3f  %.0f tok/s  elapsed %s  eta %s\n",
                (long long)ev->step, (long long)ev->total_steps, ev->loss, ev->lr, ev->grad_norm, ev->tokens_per_s,
                el, eta);
        break;
    case KEEL_TRAIN_EV_EVAL:
        fprintf(stderr, "step %lld/%lld  val_loss %.4f\n", (long long)ev->step, (long long)ev->total_steps, ev->val_loss);
        break;
    case KEEL_TRAIN_EV_CHECKPOINT:
        fprintf(stderr, "checkpoint %s\n", ev->path);
        break;
    case KEEL_TRAIN_EV_LEDGER:
        // one line: every capability now, its change from the base on the same items
        fprintf(stderr, "ledger %s step %lld%s:", ev->phase, (long long)ev->step, ev->sampled ? " (sample)" : "");
        for (int32_t i = 0; i < ev->n_caps; i++) {
            const keel_cap_result *r = &ev->caps[i], *b = &ev->caps_base[i];
            fprintf(stderr, "  %s %s %.4g [%.4g, %.4g]", r->name, r->metric, r->value, r->lo, r->hi);
            if (strcmp(ev->phase, "base")) fprintf(stderr, " (%+.4g)", r->value - b->value);
        }
        fprintf(stderr, "  %s\n", ev->ok ? "within bounds" : "BOUND BROKEN");
        if (!ev->ok && ev->reason) fprintf(stderr, "  violation: %s\n", ev->reason);
        break;
    case KEEL_TRAIN_EV_DECISION:
        fprintf(stderr, "ledger decision at step %lld: %s — %s\n", (long long)ev->step, ev->action, ev->reason);
        break;
    }
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: keel train JOB.yaml [--set KEY=VALUE]... [options]\n"
            "       keel train --resume RUN_DIR [--set KEY=VALUE]... [options]\n\n"
            "Run a training job (YAML; every key: docs/job.md). The run directory (output.dir)\n"
            "gets the resolved job.yaml, metrics.jsonl (one JSON object per step) and\n"
            "checkpoints/step-N/ (every output.save_every steps and at the end). Ctrl-C finishes\n"
            "the current step, saves a checkpoint and exits with status 130.\n"
            "With `capabilities:` in the job the capability ledger runs: every capability is\n"
            "measured on the base model, every monitor.every steps and at the end (ledger.jsonl);\n"
            "a broken bound stops, rolls back or adapts the run (monitor.on_violation). Exit\n"
            "status 3 when the run ended on a violation (stopped or rolled back).\n\n"
            "  --set KEY=VALUE   override one job key, e.g. --set train.lr=1e-4 (repeatable)\n"
            "  --resume RUN_DIR  continue RUN_DIR from its latest complete checkpoint (its\n"
            "                    job.yaml unless JOB.yaml is given); same losses as an\n"
            "                    uninterrupted run\n"
            "  --eval-every N    validation loss every N steps (default: at each checkpoint\n"
            "                    and at the end; needs data.validation or validation_split)\n"
            "  --stop-after N    stop after N steps of this run, with a checkpoint (resumable)\n"
            "  --registry PATH   record the run, its checkpoints, measurements and decisions in\n"
            "                    this SQLite registry (default $KEEL_REGISTRY, else ./keel.db;\n"
            "                    docs/registry.md)\n"
            "  --no-registry     do not record the run\n"
            "  -q, --quiet       no per-step progress lines\n");
}

int keel_cmd_train(int argc, char **argv) {
    const char *file = NULL;
    const char **sets = calloc((size_t)argc, sizeof *sets);
    if (!sets) return 1;
    keel_train_opts o = keel_train_default_opts();
    bool quiet = false, no_registry = false;
    int n_sets = 0, rc = 0;
    long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); free(sets); return 0; }
        else if (!strcmp(a, "--set") && i + 1 < argc) sets[n_sets++] = argv[++i];
        else if (!strncmp(a, "--set=", 6)) sets[n_sets++] = a + 6;
        else if (!strcmp(a, "--resume") && i + 1 < argc) o.resume_dir = argv[++i];
        else if (!strcmp(a, "--registry") && i + 1 < argc) o.registry = argv[++i];
        else if (!strcmp(a, "--no-registry")) no_registry = true;
        else if (!strcmp(a, "--eval-every") && i + 1 < argc) {
            if (!keel_cli_int(a, argv[++i], 1, 1000000000L, &v)) { free(sets); return 2; }
            o.eval_every = v;
        } else if (!strcmp(a, "--stop-after") && i + 1 < argc) {
            if (!keel_cli_int(a, argv[++i], 1, 1000000000L, &v)) { free(sets); return 2; }
            o.stop_after = v;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = true;
        else if (a[0] == '-' && a[1]) { fprintf(stderr, "keel train: unknown option %s\n", a); usage(stderr); free(sets); return 2; }
        else if (!file) file = a;
        else { usage(stderr); free(sets); return 2; }
    }
    if (!file && !o.resume_dir) { usage(stderr); free(sets); return 2; }
    o.sets = sets;
    o.n_sets = n_sets;
    if (no_registry) o.registry = NULL;
    else if (!o.registry) o.registry = getenv("KEEL_REGISTRY") && *getenv("KEEL_REGISTRY") ? getenv("KEEL_REGISTRY") : "keel.db";
    keel_train_callbacks cb = {on_event, should_stop, &quiet};
    signal(SIGINT, on_sigint);
    keel_err err = {0};
    keel_train_summary s;
    if (keel_train_run(file, &o, &cb, &s, &err) != KEEL_OK) {
        rc = keel_cli_fail(&err, NULL);
    } else {
        fprintf(stderr, "%s: at step %lld (%lld steps this run) in %.1fs, %.0f tok/s, peak RSS %.1f MiB, final loss %.4f",
                s.status, (long long)s.steps, (long long)s.steps_run, s.wall_s,
                s.tokens_per_s, (double)s.peak_rss_bytes / 1048576.0, s.final_loss);
        if (isfinite(s.val_loss)) fprintf(stderr, ", val_loss %.4f", s.val_loss);
        fprintf(stderr, "\nrun directory: %s\n", s.run_dir);
        if (s.checkpoint[0]) fprintf(stderr, "last checkpoint: %s\n", s.checkpoint);
        if (s.ledger_s > 0)
            fprintf(stderr, "ledger: %.1fs of %.1fs wall (%.1f%%), %d violation(s), %d retr%s; status %s\n", s.ledger_s,
                    s.wall_s, s.wall_s > 0 ? 100.0 * s.ledger_s / s.wall_s : 0.0, (int)s.n_violations,
                    (int)s.n_retries, s.n_retries == 1 ? "y" : "ies", s.status);
        if (s.active[0]) fprintf(stderr, "active checkpoint: %s\n", s.active);
        if (s.run_id > 0) fprintf(stderr, "registry: run %lld in %s (keel show %lld)\n", (long long)s.run_id, o.registry, (long long)s.run_id);
        if (s.interrupted) fprintf(stderr, "resume with: keel train --resume %s\n", s.run_dir);
        if (!strcmp(s.status, "stopped") || !strcmp(s.status, "rolled_back")) rc = 3;
        if (g_stop) rc = 130;
    }
    signal(SIGINT, SIG_DFL);
    free(sets);
    return rc;
}
