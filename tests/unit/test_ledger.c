// SPDX-License-Identifier: MIT
// test_ledger.c — the capability ledger end to end (keel_train_run with
// `capabilities:` and `monitor:`): stories260K full fine-tuning on scrambled
// stories (examples/data/noise-train.jsonl), a task that conflicts with
// telling stories, measured on a held-out story text (perplexity) and a
// story-ending multiple-choice set. An aggressive learning rate must break
// the perplexity bound and be rolled back to a checkpoint within bounds (its
// reloaded weights measure within bounds again); a gentle one must stay
// within bounds; stop, adapt and warn act as docs/ledger.md says; a resumed
// run compares against the same base; the registry records it all and fsck
// finds it consistent. Small and fast (a 260K-parameter model, 1 thread).
#include "keel.h"
#include "test.h"
#include "test_fs.h"

#include <sys/stat.h>

static char g_dir[512];
static char g_model[512];
static char g_db[600];

// A job: max_steps steps at lr on the scrambled stories, two capabilities,
// monitor every 4 steps; extra YAML is appended under `monitor:`.
static void write_job(const char *path, const char *out_dir, double lr, int steps, const char *monitor_extra,
                      const char *cap_extra, bool lora) {
    char y[4096];
    snprintf(y, sizeof y,
             "model: %s\n"
             "%s"
             "data:\n  train: examples/data/noise-train.jsonl\n  format: text\n  max_seq_len: 96\n"
             "train:\n  lr: %g\n  batch_size: 4\n  max_steps: %d\n  schedule: constant\n"
             "  clip_grad_norm: 1.0\n  seed: 7\n  threads: 1\n"
             "output:\n  dir: %s\n"
             "capabilities:\n"
             "  - name: stories_ppl\n    type: perplexity\n    task: text\n"
             "    data: examples/data/stories-heldout.txt\n    window: 64\n    max_drop: 15%%\n"
             "  - name: story_endings\n    type: multiple_choice\n    data: examples/data/stories-mc.jsonl\n%s"
             "monitor:\n  every: 4\n%s",
             g_model,
             lora ? "method: lora\nlora:\n  r: 8\n  alpha: 16\n"
                  : "method: full\nfull:\n  trainable: [\"*\"]\n  freeze: [token_embd.weight]\n",
             lr, steps, out_dir, cap_extra ? cap_extra : "", monitor_extra ? monitor_extra : "");
    test_write_str(path, y);
}

static keel_status run(const char *job, const char *resume, int64_t stop_after, const char *registry,
                       keel_train_summary *s, keel_err *err) {
    keel_train_opts o = keel_train_default_opts();
    o.resume_dir = resume;
    o.stop_after = stop_after;
    o.registry = registry;
    return keel_train_run(resume ? NULL : job, &o, NULL, s, err);
}

static char *ledger_text(const char *run_dir) {
    char p[1024];
    snprintf(p, sizeof p, "%s/ledger.jsonl", run_dir);
    return test_read_text(p);
}

// "bounds_ok": of a checkpoint's trainer_state.json: 1 true, 0 false, -1 null/absent.
static int ckpt_ok(const char *ckpt) {
    char p[1200];
    snprintf(p, sizeof p, "%s/trainer_state.json", ckpt);
    char *t = test_read_text(p);
    int r = -1;
    if (t && strstr(t, "\"bounds_ok\": true")) r = 1;
    else if (t && strstr(t, "\"bounds_ok\": false")) r = 0;
    free(t);
    return r;
}

// The perplexity suite alone, for re-measuring a LoRA checkpoint (adapter
// on the base model; adapter NULL: the base).
static double measure_ppl(const char *adapter, double *base_ppl) {
    char p[700];
    snprintf(p, sizeof p, "%s/ppl_suite.yaml", g_dir);
    test_write_str(p, "capabilities:\n  - name: stories_ppl\n    type: perplexity\n    task: text\n"
                      "    data: examples/data/stories-heldout.txt\n    window: 64\n");
    keel_suite *s = NULL;
    keel_err err;
    if (keel_suite_load(p, &s, &err) != KEEL_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return NAN;
    }
    keel_eval_opts o = keel_eval_default_opts();
    o.n_threads = 1;
    keel_cap_result r[1], b[1];
    double v = NAN;
    o.adapter = adapter;
    if (keel_suite_eval(g_model, s, &o, r, &err) == KEEL_OK) v = r[0].value;
    else fprintf(stderr, "%s\n", err.msg);
    o.adapter = NULL;
    if (base_ppl && keel_suite_eval(g_model, s, &o, b, &err) == KEEL_OK) *base_ppl = b[0].value;
    keel_suite_free(s);
    return v;
}

static void test_rollback(void) {
    char job[600], rd[600];
    snprintf(job, sizeof job, "%s/agg.yaml", g_dir);
    snprintf(rd, sizeof rd, "%s/agg", g_dir);
    write_job(job, rd, 5e-4, 16, "  on_violation: rollback\n", NULL, true);
    keel_train_summary s;
    keel_err err = {0};
    keel_status st = run(job, NULL, 0, g_db, &s, &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    CHECK("aggressive run returns ok", st == KEEL_OK);
    CHECK("aggressive run breaks a bound", s.n_violations >= 1);
    CHECK("status rolled_back", !strcmp(s.status, "rolled_back"));
    CHECK("stopped before the end", s.steps < 16);
    CHECK("registry run id", s.run_id > 0);
    CHECK("active checkpoint set", s.active[0] != 0);
    CHECK("active checkpoint was within bounds", ckpt_ok(s.active) == 1);
    CHECK("last checkpoint broke the bound", ckpt_ok(s.checkpoint) == 0);
    CHECK("ledger share measured", s.ledger_s > 0 && s.ledger_s < s.wall_s);
    char *l = ledger_text(rd);
    CHECK("ledger.jsonl written", l != NULL);
    CHECK("base measured once per capability", test_count(l, "\"phase\":\"base\"") == 2);
    CHECK("a violation recorded", test_count(l, "\"bounds_ok\":false") >= 1);
    CHECK("one rollback decision", test_count(l, "\"decision\":\"rollback\"") == 1);
    CHECK("decision names the capability", l && strstr(l, "stories_ppl"));
    free(l);
    // The active (rolled-back-to) weights measure within the bound again, the
    // violating ones do not: a fresh evaluation of both checkpoints.
    double base = NAN;
    double good = measure_ppl(s.active, &base), bad = measure_ppl(s.checkpoint, NULL);
    CHECK("active checkpoint within 15% of base ppl", isfinite(good) && good <= base * 1.15 + 1e-9);
    CHECK("violating checkpoint beyond 15% of base ppl", isfinite(bad) && bad > base * 1.15);

    keel_registry *reg = NULL;
    CHECK("registry opens", keel_registry_open(g_db, &reg, &err) == KEEL_OK);
    char id[32], path[1200] = "";
    snprintf(id, sizeof id, "%lld", (long long)s.run_id);
    CHECK("resolve gives the active checkpoint", keel_registry_resolve(reg, id, path, sizeof path, &err) == KEEL_OK &&
                                                     strstr(path, strrchr(s.active, '/')) != NULL);
    char *show = NULL;
    CHECK("show works", keel_registry_show(reg, id, &show, &err) == KEEL_OK && show);
    CHECK("show lists the rollback", show && strstr(show, "rollback"));
    CHECK("show lists the capabilities", show && strstr(show, "stories_ppl") && strstr(show, "story_endings"));
    keel_free(show);
    char *rep = NULL;
    int64_t problems = -1;
    CHECK("fsck runs", keel_registry_fsck(reg, &rep, &problems, &err) == KEEL_OK);
    if (problems) fprintf(stderr, "%s\n", rep ? rep : "");
    CHECK("fsck: no problems", problems == 0);
    keel_free(rep);
    keel_registry_close(reg);

    // Resuming the rolled-back run continues from its rollback target (step-8),
    // not from the checkpoint that broke the bound, saving as a new attempt.
    keel_train_opts o = keel_train_default_opts();
    const char *sets[] = {"train.lr=1e-6"};
    o.resume_dir = rd;
    o.sets = sets;
    o.n_sets = 1;
    o.registry = g_db;
    st = keel_train_run(NULL, &o, NULL, &s, &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    CHECK("resumed rolled-back run ok", st == KEEL_OK && !strcmp(s.status, "done") && s.steps == 16);
    CHECK("resumed from the rollback target: 8 steps this run", s.steps_run == 8);
    CHECK("new attempt's checkpoints", strstr(s.checkpoint, "step-16-a1") != NULL && ckpt_ok(s.checkpoint) == 1);
}

static void test_gentle(void) {
    char job[600], rd[600];
    snprintf(job, sizeof job, "%s/gentle.yaml", g_dir);
    snprintf(rd, sizeof rd, "%s/gentle", g_dir);
    write_job(job, rd, 1e-5, 8, "  on_violation: rollback\n", NULL, false);
    keel_train_summary s;
    keel_err err = {0};
    keel_status st = run(job, NULL, 0, NULL, &s, &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    CHECK("gentle run ok", st == KEEL_OK);
    CHECK("gentle: no violation", s.n_violations == 0);
    CHECK("gentle: status done", !strcmp(s.status, "done"));
    CHECK("gentle: all steps", s.steps == 8);
    CHECK("gentle: active is the final checkpoint", !strcmp(s.active, s.checkpoint) && ckpt_ok(s.active) == 1);
    char *l = ledger_text(rd);
    CHECK("gentle: monitor at step 4", l && strstr(l, "\"step\":4,\"phase\":\"monitor\""));
    CHECK("gentle: final at step 8", l && strstr(l, "\"step\":8,\"phase\":\"final\""));
    CHECK("gentle: no decision", l && !strstr(l, "\"decision\""));
    free(l);
    // A fresh run into the same directory (emptied) is a new run in the
    // registry, not a continuation of the earlier one.
    test_rm_rf(rd);
    keel_train_summary s1, s2;
    st = run(job, NULL, 0, g_db, &s1, &err);
    test_rm_rf(rd);
    if (!st) st = run(job, NULL, 0, g_db, &s2, &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    CHECK("same directory twice: two registry runs", st == KEEL_OK && s1.run_id > 0 && s2.run_id > s1.run_id);
}

static void test_stop_warn_adapt(void) {
    char job[600], rd[600];
    keel_train_summary s;
    keel_err err = {0};
    // stop: the violating checkpoint is saved, the run ends, active stays the last good
    snprintf(job, sizeof job, "%s/stop.yaml", g_dir);
    snprintf(rd, sizeof rd, "%s/stop", g_dir);
    write_job(job, rd, 1e-4, 16, "  on_violation: stop\n", NULL, false);
    CHECK("stop run ok", run(job, NULL, 0, NULL, &s, &err) == KEEL_OK);
    CHECK("stop: status", !strcmp(s.status, "stopped") && s.n_violations == 1);
    CHECK("stop: last checkpoint broke the bound", ckpt_ok(s.checkpoint) == 0);
    CHECK("stop: active within bounds", ckpt_ok(s.active) == 1 && strcmp(s.active, s.checkpoint));
    // warn: records violations and runs to the end
    snprintf(job, sizeof job, "%s/warn.yaml", g_dir);
    snprintf(rd, sizeof rd, "%s/warn", g_dir);
    write_job(job, rd, 1e-4, 12, "  on_violation: warn\n", NULL, false);
    CHECK("warn run ok", run(job, NULL, 0, NULL, &s, &err) == KEEL_OK);
    CHECK("warn: all steps, violations counted", s.steps == 12 && s.n_violations >= 1 && !strcmp(s.status, "done"));
    char *l = ledger_text(rd);
    CHECK("warn: decisions logged", l && test_count(l, "\"decision\":\"warn\"") == s.n_violations);
    free(l);
    // adapt: roll back, continue with lr x 0.001 -> the retry stays within bounds
    snprintf(job, sizeof job, "%s/adapt.yaml", g_dir);
    snprintf(rd, sizeof rd, "%s/adapt", g_dir);
    write_job(job, rd, 1e-4, 12, "  on_violation: adapt\n  max_retries: 2\n  lr_factor: 0.001\n", NULL, false);
    keel_status st = run(job, NULL, 0, NULL, &s, &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    CHECK("adapt run ok", st == KEEL_OK);
    CHECK("adapt: one retry", s.n_retries == 1 && s.n_violations == 1);
    CHECK("adapt: reaches the end within bounds", s.steps == 12 && !strcmp(s.status, "done"));
    CHECK("adapt: retry checkpoints are step-N-a1", strstr(s.checkpoint, "step-12-a1") != NULL);
    CHECK("adapt: final checkpoint within bounds and active", ckpt_ok(s.checkpoint) == 1 && !strcmp(s.active, s.checkpoint));
    l = ledger_text(rd);
    CHECK("adapt: decision logged with the lr", l && strstr(l, "\"decision\":\"adapt\"") && strstr(l, "learning rate x0.001"));
    free(l);
    char mp[700];
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", rd);
    l = test_read_text(mp);
    CHECK("adapt: metrics mark the retry", l && strstr(l, "\"attempt\":1"));
    free(l);
}

// Sampled monitoring and resume: the monitor subset has monitor.sample items,
// the final measurement all; a resumed run loads the base, never rescoring it.
static void test_sample_resume(void) {
    char job[600], rd[600];
    snprintf(job, sizeof job, "%s/res.yaml", g_dir);
    snprintf(rd, sizeof rd, "%s/res", g_dir);
    write_job(job, rd, 1e-5, 8, "  sample: 5\n  seed: 3\n", NULL, false);
    keel_train_summary s;
    keel_err err = {0};
    keel_status st = run(job, NULL, 5, NULL, &s, &err);
    CHECK("interrupted run ok", st == KEEL_OK && s.interrupted && !strcmp(s.status, "interrupted"));
    st = run(NULL, rd, 0, NULL, &s, &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    CHECK("resumed run ok", st == KEEL_OK && s.steps == 8 && !strcmp(s.status, "done"));
    char *l = ledger_text(rd);
    CHECK("resume: base measured once", l && test_count(l, "\"phase\":\"base\"") == 2);
    CHECK("resume: sampled monitor on 5 items", l && strstr(l, "\"sampled\":true,\"capability\":\"story_endings\",\"metric\":\"acc\"") &&
                                                   strstr(l, "\"n\":5,"));
    CHECK("resume: final on all 12 items", l && strstr(l, "\"n\":12,"));
    CHECK("resume: final measured", l && test_count(l, "\"phase\":\"final\"") == 2);
    free(l);
}

static void test_bad_jobs(void) {
    char job[600], rd[600];
    snprintf(job, sizeof job, "%s/bad.yaml", g_dir);
    snprintf(rd, sizeof rd, "%s/bad", g_dir);
    keel_train_summary s;
    keel_err err = {0};
    // a capability whose data file is missing fails before anything is written
    write_job(job, rd, 1e-5, 4, NULL, "  - name: missing\n    type: perplexity\n    data: examples/data/nope.txt\n", false);
    CHECK("missing capability data fails", run(job, NULL, 0, NULL, &s, &err) != KEEL_OK);
    CHECK("message names the file", strstr(err.msg, "nope.txt") != NULL);
    struct stat sb;
    CHECK("nothing written", stat(rd, &sb) != 0);
    write_job(job, rd, 1e-5, 4, "  on_violation: explode\n", NULL, false);
    CHECK("bad on_violation fails", run(job, NULL, 0, NULL, &s, &err) == KEEL_ERR_INVALID);
    CHECK("message names the key", strstr(err.msg, "monitor.on_violation") != NULL);
}

int main(void) {
    test_shared_path(g_model, sizeof g_model, "models/stories260K/stories260K.gguf");
    if (access(g_model, R_OK) != 0) TEST_SKIP("stories260K.gguf not found");
    snprintf(g_dir, sizeof g_dir, "/tmp/keel-test-ledger-%d", (int)getpid());
    test_rm_rf(g_dir);
    mkdir(g_dir, 0777);
    snprintf(g_db, sizeof g_db, "%s/keel.db", g_dir);
    test_rollback();
    test_gentle();
    test_stop_warn_adapt();
    test_sample_resume();
    test_bad_jobs();
    if (!test_failed) test_rm_rf(g_dir);
    return test_report();
}
