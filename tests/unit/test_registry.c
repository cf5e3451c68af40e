// SPDX-License-Identifier: MIT
// test_registry.c — the run registry (src/registry/): SHA-256 of files and
// checkpoint directories against the sha256sum binary; writers and readers on
// a temporary keel.db with small fake checkpoints (a LoRA adapter layout);
// references; rollback (last ok, --to, another run's checkpoint refused);
// diff significance on made-up numbers; fsck finding a modified file, a
// deleted checkpoint, a dangling active pointer, and telling crash leftovers
// (unregistered / .tmp directories, a dead "running" process) apart from
// problems; and a crash loop: a forked writer SIGKILLed at random moments 20
// times, after each of which the registry opens and fsck finds 0 problems.
#include "registry/registry.h"
#include "io/io.h"
#include "test.h"

#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmp[200];

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    fputs(text, f);
    fclose(f);
}

// Run a shell command and read its first line of output.
static void shell_line(const char *cmd, char *out, size_t cap) {
    out[0] = '\0';
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (!fgets(out, (int)cap, p)) out[0] = '\0';
    pclose(p);
    out[strcspn(out, " \n")] = '\0';
}

static bool has(const char *text, const char *needle) { return text && strstr(text, needle) != NULL; }

// KEEL_TEST_VERBOSE=1 prints the reports the checks read.
static void show_report(const char *what, const char *text) {
    if (getenv("KEEL_TEST_VERBOSE")) printf("---- %s\n%s", what, text ? text : "(none)\n");
}

// A complete LoRA-style checkpoint directory written as the trainer writes
// one: into DIR.tmp, files fsynced (keel_st_write is atomic), renamed.
static void make_ckpt(const char *dir, float value) {
    char t[1024], p[1100];
    snprintf(t, sizeof t, "%s.tmp", dir);
    mkdir(t, 0755);
    float w[4] = {value, value + 1, value + 2, value + 3};
    keel_st_entry e = {.name = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", .type = KEEL_DTYPE_F32,
                       .n_dims = 2, .shape = {2, 2}, .data = w};
    keel_err err = {0};
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", t);
    if (keel_st_write(p, &e, 1, NULL, 0, &err) != KEEL_OK) { fprintf(stderr, "%s\n", err.msg); exit(2); }
    snprintf(p, sizeof p, "%s/adapter_config.json", t);
    write_text(p, "{\"r\": 2, \"lora_alpha\": 4, \"peft_type\": \"LORA\"}\n");
    snprintf(p, sizeof p, "%s/trainer_state.json", t);
    char js[128];
    snprintf(js, sizeof js, "{\"step\": %g}\n", (double)value);
    write_text(p, js);
    if (rename(t, dir) != 0) { perror(dir); exit(2); }
}

static int64_t add_ckpt(keel_registry *r, int64_t run, const char *dir, int64_t step, int64_t parent, int ok) {
    char hex[65];
    keel_err err = {0};
    if (keel_dir_sha256(dir, hex, &err) != KEEL_OK) { fprintf(stderr, "%s\n", err.msg); return -1; }
    int64_t id = -1;
    if (keel_registry_add_checkpoint(r, run, "step", step, dir, hex, parent, ok, &id, &err) != KEEL_OK)
        fprintf(stderr, "add_checkpoint: %s\n", err.msg);
    return id;
}

static keel_cap_result res(const char *name, const char *metric, double v, double se, bool hib) {
    keel_cap_result m;
    memset(&m, 0, sizeof m);
    snprintf(m.name, sizeof m.name, "%s", name);
    snprintf(m.kind, sizeof m.kind, "%s", hib ? "multiple_choice" : "perplexity");
    snprintf(m.metric, sizeof m.metric, "%s", metric);
    m.value = v;
    m.se = se;
    m.lo = v - 1.96 * se;
    m.hi = v + 1.96 * se;
    m.n = 500;
    m.higher_is_better = hib;
    m.value2 = m.lo2 = m.hi2 = NAN;
    m.seconds = 1.5;
    return m;
}

// Raw SQL on the db (tampering, as a crash or a bug might).
static void raw_sql(const char *db, const char *sql) {
    sqlite3 *h = NULL;
    sqlite3_open(db, &h);
    char *msg = NULL;
    if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK) fprintf(stderr, "raw_sql %s: %s\n", sql, msg);
    sqlite3_free(msg);
    sqlite3_close(h);
}

static int64_t fsck(keel_registry *r, char **report) {
    int64_t n = -1;
    keel_err err = {0};
    char *out = NULL;
    if (keel_registry_fsck(r, &out, &n, &err) != KEEL_OK) fprintf(stderr, "fsck: %s\n", err.msg);
    if (report) *report = out;
    else free(out);
    return n;
}

// ---------------------------------------------------------------- sha256

static void test_sha256(void) {
    char d[512], p[600], cmd[1200], want[100];
    snprintf(d, sizeof d, "%s/shadir", tmp);
    mkdir(d, 0755);
    const char *names[] = {"b.txt", "B.txt", "a.b", "a", "empty", "Z_upper", "z-lower.json"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", d, names[i]);
        char text[64];
        snprintf(text, sizeof text, i == 4 ? "" : "file %zu\n", i);
        write_text(p, text);
    }
    // A file larger than the 1 MiB read chunk.
    snprintf(p, sizeof p, "%s/big.bin", d);
    FILE *f = fopen(p, "wb");
    for (int i = 0; i < 3 * 1024 * 1024 + 17; i++) fputc((i * 131) & 255, f);
    fclose(f);
    snprintf(p, sizeof p, "%s/.hidden", d);
    write_text(p, "not part of `*`\n");

    char hex[65];
    keel_err err = {0};
    snprintf(p, sizeof p, "%s/big.bin", d);
    CHECK("file sha256", keel_file_sha256(p, hex, &err) == KEEL_OK);
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", p);
    shell_line(cmd, want, sizeof want);
    CHECK("file sha256 = sha256sum", strlen(want) == 64 && !strcmp(hex, want));

    CHECK("dir sha256", keel_dir_sha256(d, hex, &err) == KEEL_OK);
    snprintf(cmd, sizeof cmd, "cd '%s' && LC_ALL=C sha256sum * | sha256sum", d);
    shell_line(cmd, want, sizeof want);
    CHECK("dir sha256 = `sha256sum * | sha256sum`", strlen(want) == 64 && !strcmp(hex, want));

    // A changed byte changes the digest.
    snprintf(p, sizeof p, "%s/a", d);
    write_text(p, "file 3!\n");
    char hex2[65];
    CHECK("dir sha256 again", keel_dir_sha256(d, hex2, &err) == KEEL_OK && strcmp(hex, hex2));
    shell_line(cmd, want, sizeof want);
    CHECK("still = sha256sum", !strcmp(hex2, want));

    // Empty directory: the digest of the empty listing.
    snprintf(p, sizeof p, "%s/emptydir", tmp);
    mkdir(p, 0755);
    CHECK("empty dir", keel_dir_sha256(p, hex, &err) == KEEL_OK &&
                           !strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    // Subdirectories are refused; missing paths fail with IO naming the path.
    snprintf(p, sizeof p, "%s/sub", d);
    mkdir(p, 0755);
    CHECK("subdir refused", keel_dir_sha256(d, hex, &err) == KEEL_ERR_FORMAT && has(err.msg, "sub"));
    CHECK("missing dir", keel_dir_sha256("/nonexistent/x", hex, &err) == KEEL_ERR_IO && has(err.msg, "/nonexistent/x"));
    CHECK("missing file", keel_file_sha256("/nonexistent/y", hex, &err) == KEEL_ERR_IO && has(err.msg, "/nonexistent/y"));
    CHECK("dir as file refused", keel_file_sha256(d, hex, &err) != KEEL_OK);
}

// ---------------------------------------------------------------- open

static void test_open(void) {
    char db[512], p[600];
    keel_err err = {0};
    keel_registry *r = NULL;
    snprintf(db, sizeof db, "%s/open.db", tmp);
    CHECK("create", keel_registry_open(db, &r, &err) == KEEL_OK && r);
    keel_registry_close(r);
    CHECK("reopen", keel_registry_open(db, &r, &err) == KEEL_OK && r);
    char *out = NULL;
    CHECK("runs on empty", keel_registry_runs(r, &out, &err) == KEEL_OK && has(out, "no runs"));
    free(out);
    keel_registry_close(r);
    raw_sql(db, "UPDATE schema_version SET version=99");
    CHECK("newer schema refused", keel_registry_open(db, &r, &err) == KEEL_ERR_UNSUPPORTED && !r && has(err.msg, db));
    snprintf(p, sizeof p, "%s/garbage.db", tmp);
    write_text(p, "this is not a SQLite database, not at all, no header here......................\n");
    CHECK("not a database", keel_registry_open(p, &r, &err) != KEEL_OK && !r && has(err.msg, p));
    snprintf(p, sizeof p, "%s/no/such/dir/keel.db", tmp);
    CHECK("missing directory", keel_registry_open(p, &r, &err) == KEEL_ERR_IO && !r && has(err.msg, p));
    keel_registry_close(NULL);
}

// ---------------------------------------------------------------- writers, reports, rollback, fsck

static const char *JOB =
    "model: base.safetensors\n"
    "method: lora\n"
    "capabilities:\n"
    "  - name: arc\n"
    "    type: multiple_choice\n"
    "    data: arc.jsonl\n"
    "    max_drop: 0.03\n"
    "  - name: wiki\n"
    "    type: perplexity\n"
    "    data: wiki.txt\n"
    "    max_drop: 10%\n"
    "monitor:\n"
    "  decide: point\n";

static void test_registry(void) {
    char db[600], proj[256], run_dir[600], c10[700], c20[700], c30[700], base[600], p[800];
    keel_err err = {0};
    keel_registry *r = NULL;
    snprintf(proj, sizeof proj, "%s/proj", tmp);
    mkdir(proj, 0755);
    snprintf(db, sizeof db, "%s/keel.db", proj);
    snprintf(run_dir, sizeof run_dir, "%s/runs", proj);
    mkdir(run_dir, 0755);
    snprintf(run_dir, sizeof run_dir, "%s/runs/aggr", proj);
    mkdir(run_dir, 0755);
    snprintf(p, sizeof p, "%s/checkpoints", run_dir);
    mkdir(p, 0755);
    snprintf(c10, sizeof c10, "%s/checkpoints/step-10", run_dir);
    snprintf(c20, sizeof c20, "%s/checkpoints/step-20", run_dir);
    snprintf(c30, sizeof c30, "%s/checkpoints/step-30", run_dir);
    make_ckpt(c10, 10);
    make_ckpt(c20, 20);
    make_ckpt(c30, 30);
    // The base model: one safetensors file.
    snprintf(base, sizeof base, "%s/base.safetensors", proj);
    float w[2] = {1, 2};
    keel_st_entry e = {.name = "w", .type = KEEL_DTYPE_F32, .n_dims = 1, .shape = {2}, .data = w};
    CHECK("base written", keel_st_write(base, &e, 1, NULL, 0, &err) == KEEL_OK);

    CHECK("open", keel_registry_open(db, &r, &err) == KEEL_OK);
    if (!r) return;
    int64_t run = -1, run2 = -1, id = -1;
    // A relative run directory is recorded absolute.
    char cwd[512];
    if (!getcwd(cwd, sizeof cwd)) cwd[0] = '\0';
    if (chdir(proj) != 0) perror(proj);
    CHECK("run_begin", keel_registry_run_begin(r, "runs/aggr", JOB, base, "lora", &run, &err) == KEEL_OK && run > 0);
    int64_t found = -1;
    CHECK("run_find relative", keel_registry_run_find(r, "runs/aggr/", &found, &err) == KEEL_OK && found == run);
    CHECK("run_find absolute", keel_registry_run_find(r, run_dir, &found, &err) == KEEL_OK && found == run);
    CHECK("run_find none", keel_registry_run_find(r, "runs/none", &found, &err) == KEEL_OK && found == -1);
    if (chdir(cwd) != 0) perror(cwd);

    // Checkpoints: base (its file digest), step-10 ok, step-20 ok, step-30 broke a bound.
    char bhex[65];
    CHECK("base sha", keel_file_sha256(base, bhex, &err) == KEEL_OK);
    int64_t cb = -1;
    CHECK("base ckpt", keel_registry_add_checkpoint(r, run, "base", 0, base, bhex, -1, -1, &cb, &err) == KEEL_OK);
    int64_t k10 = add_ckpt(r, run, c10, 10, cb, 1);
    int64_t k20 = add_ckpt(r, run, c20, 20, k10, -1);
    int64_t k30 = add_ckpt(r, run, c30, 30, k20, 0);
    CHECK("ckpt ids", cb > 0 && k10 > cb && k20 > k10 && k30 > k20);
    CHECK("set ok", keel_registry_set_checkpoint_ok(r, k20, 1, &err) == KEEL_OK);
    CHECK("set ok bad id", keel_registry_set_checkpoint_ok(r, 999, 1, &err) == KEEL_ERR_INVALID);
    // Recording the same path again replaces the row and keeps its id.
    int64_t again = add_ckpt(r, run, c20, 20, k10, 1);
    CHECK("same path keeps id", again == k20);
    int64_t f20 = -1;
    CHECK("checkpoint_find", keel_registry_checkpoint_find(r, run, c20, &f20, &err) == KEEL_OK && f20 == k20);
    CHECK("checkpoint_find none", keel_registry_checkpoint_find(r, run, "/nowhere/step-1", &f20, &err) == KEEL_OK &&
                                      f20 == -1);
    CHECK("checkpoint_find other run", keel_registry_checkpoint_find(r, run + 100, c20, &f20, &err) == KEEL_OK && f20 == -1);

    // Measurements: base (all items), monitor at 10 and 20 (sampled), final at 30.
    keel_cap_result m[2], bm[2];
    m[0] = res("arc", "acc", 0.50, 0.02, true);
    m[1] = res("wiki", "ppl", 10.0, 0.2, false);
    CHECK("base measurements", keel_registry_add_measurements(r, run, cb, 0, "base", false, m, NULL, 2, &err) == KEEL_OK);
    m[0] = res("arc", "acc", 0.49, 0.03, true);
    m[1] = res("wiki", "ppl", 10.5, 0.3, false);
    bm[0] = res("arc", "acc", 0.51, 0.03, true);
    bm[1] = res("wiki", "ppl", 9.8, 0.3, false);
    CHECK("monitor 10", keel_registry_add_measurements(r, run, k10, 10, "monitor", true, m, bm, 2, &err) == KEEL_OK);
    CHECK("monitor 20", keel_registry_add_measurements(r, run, k20, 20, "monitor", true, m, bm, 2, &err) == KEEL_OK);
    m[0] = res("arc", "acc", 0.40, 0.02, true);
    m[1] = res("wiki", "ppl", 10.4, 0.2, false);
    m[1].value2 = NAN; // NaN round-trips as NULL
    CHECK("final 30", keel_registry_add_measurements(r, run, k30, 30, "final", false, m, NULL, 2, &err) == KEEL_OK);
    CHECK("bad phase", keel_registry_add_measurements(r, run, k30, 30, "later", false, m, NULL, 2, &err) == KEEL_ERR_INVALID &&
                           has(err.msg, db));
    // Decisions: "ok" is not recorded; unknown actions are refused.
    CHECK("decision ok skipped", keel_registry_add_decision(r, run, 10, "ok", "fine", -1, &err) == KEEL_OK);
    CHECK("decision", keel_registry_add_decision(r, run, 30, "stop",
                                                 "arc acc 0.400 [0.361, 0.439] dropped 0.100 from base 0.500 (max_drop 0.03, point)",
                                                 k30, &err) == KEEL_OK);
    CHECK("bad action", keel_registry_add_decision(r, run, 30, "panic", "x", -1, &err) == KEEL_ERR_INVALID);
    CHECK("bad status", keel_registry_run_end(r, run, "exploded", 30, &err) == KEEL_ERR_INVALID);
    CHECK("bad kind", keel_registry_add_checkpoint(r, run, "weird", 1, c10, bhex, -1, 1, &id, &err) == KEEL_ERR_INVALID);
    CHECK("bad sha", keel_registry_add_checkpoint(r, run, "step", 1, c10, "abc", -1, 1, &id, &err) == KEEL_ERR_INVALID);
    CHECK("run_end", keel_registry_run_end(r, run, "stopped", 30, &err) == KEEL_OK);
    CHECK("run_end bad run", keel_registry_run_end(r, 12345, "done", 30, &err) == KEEL_ERR_INVALID);

    // A second run, for cross-run refusals and diff.
    char run2_dir[700], d2[800];
    snprintf(run2_dir, sizeof run2_dir, "%s/runs/gentle", proj);
    mkdir(run2_dir, 0755);
    snprintf(d2, sizeof d2, "%s/checkpoints", run2_dir);
    mkdir(d2, 0755);
    snprintf(d2, sizeof d2, "%s/checkpoints/step-30", run2_dir);
    make_ckpt(d2, 31);
    CHECK("run 2", keel_registry_run_begin(r, run2_dir, JOB, base, "lora", &run2, &err) == KEEL_OK && run2 == run + 1);
    int64_t b2 = -1;
    CHECK("run 2 base", keel_registry_add_checkpoint(r, run2, "base", 0, base, bhex, -1, -1, &b2, &err) == KEEL_OK && b2 != cb);
    CHECK("step parent of another run refused",
          keel_registry_add_checkpoint(r, run2, "step", 30, d2, bhex, k20, 1, &id, &err) == KEEL_ERR_INVALID);
    int64_t g30 = add_ckpt(r, run2, d2, 30, b2, 1);
    CHECK("run 2 ckpt", g30 > 0);
    // An adapt retry at the same step: its own directory name tells them apart.
    char d2a[820];
    snprintf(d2a, sizeof d2a, "%s-a1", d2);
    make_ckpt(d2a, 32);
    int64_t g30a = add_ckpt(r, run2, d2a, 30, g30, 0);
    int64_t ref = -1;
    CHECK("RUN@step-N = the step-N directory", keel_reg_ckpt_ref(r, "gentle@step-30", -1, &ref, &err) == KEEL_OK && ref == g30);
    CHECK("RUN@step-N-aK", keel_reg_ckpt_ref(r, "gentle@step-30-a1", -1, &ref, &err) == KEEL_OK && ref == g30a);
    CHECK("RUN@N = latest at N", keel_reg_ckpt_ref(r, "gentle@30", -1, &ref, &err) == KEEL_OK && ref == g30a);
    CHECK("bare name with a run", keel_reg_ckpt_ref(r, "step-30-a1", run2, &ref, &err) == KEEL_OK && ref == g30a);
    CHECK("unknown dir name", keel_reg_ckpt_ref(r, "gentle@step-30-a9", -1, &ref, &err) == KEEL_ERR_INVALID &&
                                  has(err.msg, "step-30-a9"));
    CHECK("set active", keel_registry_set_active(r, run2, g30, &err) == KEEL_OK);
    m[0] = res("arc", "acc", 0.60, 0.02, true);  // +0.10 vs 0.40: > 1.96*sqrt(2)*0.02 = 0.055
    m[1] = res("wiki", "ppl", 10.5, 0.2, false); // +0.10: < 0.55, not significant
    CHECK("run 2 final", keel_registry_add_measurements(r, run2, g30, 30, "final", false, m, NULL, 2, &err) == KEEL_OK);
    CHECK("measurement on another run's checkpoint refused",
          keel_registry_add_measurements(r, run2, k30, 30, "final", false, m, NULL, 2, &err) == KEEL_ERR_INVALID);
    CHECK("set_active of another run refused", keel_registry_set_active(r, run2, k30, &err) == KEEL_ERR_INVALID);
    CHECK("run 2 done", keel_registry_run_end(r, run2, "done", 30, &err) == KEEL_OK);

    // run_begin on a recorded directory continues that run.
    int64_t again_run = -1;
    CHECK("resume keeps id", keel_registry_run_begin(r, run2_dir, JOB, base, "lora", &again_run, &err) == KEEL_OK &&
                                 again_run == run2);
    CHECK("run 2 done again", keel_registry_run_end(r, run2, "done", 30, &err) == KEEL_OK);

    // Reports.
    char *out = NULL;
    CHECK("runs", keel_registry_runs(r, &out, &err) == KEEL_OK);
    CHECK("runs lists both", has(out, "aggr") && has(out, "gentle") && has(out, "stopped") && has(out, "done"));
    CHECK("runs active = latest", has(out, "step-30"));
    show_report("line 331", out);
    free(out);
    out = NULL;
    CHECK("show run", keel_registry_show(r, "aggr", &out, &err) == KEEL_OK);
    CHECK("show header", has(out, "run 1: aggr") && has(out, "status     stopped") && has(out, "lora"));
    CHECK("show ledger arc", has(out, "0.500 [0.461, 0.539]") && has(out, "0.400 [0.361, 0.439] @30") && has(out, "-0.100"));
    CHECK("show bound + broken", has(out, "max_drop 0.03 (point)") && has(out, "BROKEN"));
    CHECK("show relative bound holds", has(out, "max_drop 10% (point)") && has(out, "yes"));
    CHECK("show decision", has(out, "stop") && has(out, "dropped 0.100"));
    CHECK("show checkpoints", has(out, "aggr@step-20") && has(out, "aggr@base"));
    if (test_failed) fprintf(stderr, "%s", out ? out : "");
    show_report("line 341", out);
    free(out);
    out = NULL;
    CHECK("show by number", keel_registry_show(r, "1", &out, &err) == KEEL_OK && has(out, "run 1: aggr"));
    show_report("line 344", out);
    free(out);
    out = NULL;
    CHECK("show checkpoint", keel_registry_show(r, "aggr@step-30", &out, &err) == KEEL_OK);
    CHECK("show checkpoint lineage", has(out, "aggr@step-30 <- aggr@step-20 <- aggr@step-10 <- aggr@base"));
    CHECK("show checkpoint scores", has(out, "0.400 [0.361, 0.439]") && has(out, "final"));
    show_report("line 349", out);
    free(out);
    out = NULL;
    CHECK("show checkpoint by path", keel_registry_show(r, c20, &out, &err) == KEEL_OK && has(out, "aggr@step-20 (id"));
    CHECK("sampled base shown", has(out, "0.510 ["));
    show_report("line 353", out);
    free(out);
    out = NULL;
    CHECK("show unknown", keel_registry_show(r, "nope", &out, &err) == KEEL_ERR_INVALID && !out && has(err.msg, "nope"));
    CHECK("show bad step", keel_registry_show(r, "aggr@step-99", &out, &err) == KEEL_ERR_INVALID && has(err.msg, "step-99"));

    // Diff: arc significant (B better), wiki not.
    CHECK("diff", keel_registry_diff(r, "aggr@step-30", "gentle", &out, &err) == KEEL_OK);
    CHECK("diff arc", has(out, "+0.200") && has(out, "yes (B better)"));
    CHECK("diff wiki", has(out, "+0.100") && has(out, " no"));
    if (test_failed) fprintf(stderr, "%s", out ? out : "");
    show_report("line 363", out);
    free(out);
    out = NULL;
    CHECK("diff reversed", keel_registry_diff(r, "gentle", "aggr@step-30", &out, &err) == KEEL_OK &&
                               has(out, "yes (B worse)") && has(out, "-0.200"));
    show_report("line 367", out);
    free(out);
    out = NULL;
    // Base vs step-30 of the same run: base measurements are found through the base checkpoint.
    CHECK("diff base", keel_registry_diff(r, "aggr@base", "aggr@step-30", &out, &err) == KEEL_OK &&
                           has(out, "-0.100") && has(out, "yes (B worse)"));
    show_report("line 372", out);
    free(out);
    out = NULL;

    // Rollback: no --to -> the last ok checkpoint (step-20); --to; another run's refused.
    char path[1024];
    CHECK("resolve run = latest", keel_registry_resolve(r, "aggr", path, sizeof path, &err) == KEEL_OK && !strcmp(path, c30));
    CHECK("rollback last ok", keel_registry_rollback(r, "aggr", NULL, path, sizeof path, &err) == KEEL_OK && !strcmp(path, c20));
    CHECK("resolve run = active", keel_registry_resolve(r, "1", path, sizeof path, &err) == KEEL_OK && !strcmp(path, c20));
    CHECK("resolve @active", keel_registry_resolve(r, "aggr@active", path, sizeof path, &err) == KEEL_OK && !strcmp(path, c20));
    CHECK("runs shows active", keel_registry_runs(r, &out, &err) == KEEL_OK && has(out, "step-20"));
    show_report("line 382", out);
    free(out);
    out = NULL;
    CHECK("show after rollback", keel_registry_show(r, "aggr", &out, &err) == KEEL_OK && has(out, "active     aggr@step-20 (set)") &&
                                     has(out, "manual rollback") && has(out, "at the active checkpoint aggr@step-20"));
    show_report("line 386", out);
    free(out);
    out = NULL;
    CHECK("rollback --to step-10", keel_registry_rollback(r, "aggr", "step-10", path, sizeof path, &err) == KEEL_OK &&
                                       !strcmp(path, c10));
    CHECK("rollback --to path", keel_registry_rollback(r, run_dir, c30, path, sizeof path, &err) == KEEL_OK && !strcmp(path, c30));
    CHECK("rollback --to base", keel_registry_rollback(r, "aggr", "aggr@base", path, sizeof path, &err) == KEEL_OK &&
                                    !strcmp(path, base));
    CHECK("rollback to another run's checkpoint refused",
          keel_registry_rollback(r, "aggr", "gentle@step-30", path, sizeof path, &err) == KEEL_ERR_INVALID &&
              has(err.msg, "belongs to run"));
    CHECK("rollback refused keeps active", keel_registry_resolve(r, "aggr", path, sizeof path, &err) == KEEL_OK &&
                                               !strcmp(path, base));
    CHECK("resolve small buffer", keel_registry_resolve(r, "aggr@step-10", path, 8, &err) == KEEL_ERR_INVALID);
    // No ok step checkpoint: the base counts as ok.
    CHECK("no ok", keel_registry_set_checkpoint_ok(r, k10, 0, &err) == KEEL_OK &&
                       keel_registry_set_checkpoint_ok(r, k20, -1, &err) == KEEL_OK);
    CHECK("rollback to base", keel_registry_rollback(r, "aggr", NULL, path, sizeof path, &err) == KEEL_OK && !strcmp(path, base));
    CHECK("restore ok", keel_registry_set_checkpoint_ok(r, k20, 1, &err) == KEEL_OK &&
                            keel_registry_rollback(r, "aggr", NULL, NULL, 0, &err) == KEEL_OK);

    // fsck: clean; then leftovers that are information; then real problems.
    char *rep = NULL;
    CHECK("fsck clean", fsck(r, &rep) == 0 && has(rep, "0 problems") && has(rep, "7 verified"));
    if (test_failed) fprintf(stderr, "%s", rep ? rep : "");
    show_report("line 410", rep);
    free(rep);
    snprintf(p, sizeof p, "%s/checkpoints/step-40", run_dir);
    make_ckpt(p, 40);
    snprintf(p, sizeof p, "%s/checkpoints/step-50.tmp", run_dir);
    mkdir(p, 0755);
    // A run left "running" by a process that is gone.
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    char sql[1024];
    snprintf(sql, sizeof sql, "UPDATE runs SET status='running', pid=%d WHERE id=%lld", (int)dead, (long long)run2);
    raw_sql(db, sql);
    CHECK("fsck leftovers are info", fsck(r, &rep) == 0 && has(rep, "unregistered (crash between write and record)") &&
                                          has(rep, "incomplete checkpoint") && has(rep, "interrupted (crashed)"));
    show_report("line 424", rep);
    free(rep);
    CHECK("runs shows crashed", keel_registry_runs(r, &out, &err) == KEEL_OK && has(out, "crashed"));
    show_report("line 426", out);
    free(out);
    out = NULL;

    // A modified file.
    snprintf(p, sizeof p, "%s/trainer_state.json", c10);
    write_text(p, "{\"step\": 11}\n");
    CHECK("fsck modified", fsck(r, &rep) == 1 && has(rep, "SHA-256 mismatch") && has(rep, "aggr@step-10"));
    show_report("line 433", rep);
    free(rep);
    // A checkpoint whose files hash right but do not load (recorded that way).
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", c10);
    write_text(p, "garbage");
    char hex[65];
    CHECK("rehash", keel_dir_sha256(c10, hex, &err) == KEEL_OK);
    snprintf(sql, sizeof sql, "UPDATE checkpoints SET sha256='%s' WHERE id=%lld", hex, (long long)k10);
    raw_sql(db, sql);
    CHECK("fsck unloadable", fsck(r, &rep) == 1 && has(rep, "does not load"));
    show_report("line 442", rep);
    free(rep);
    // A deleted checkpoint directory.
    snprintf(sql, sizeof sql, "rm -rf '%s'", c10);
    CHECK("rm", system(sql) == 0);
    CHECK("fsck deleted", fsck(r, &rep) == 1 && has(rep, "is missing"));
    show_report("line 447", rep);
    free(rep);
    // A dangling active pointer (foreign keys off, as a bug might write it).
    snprintf(sql, sizeof sql, "PRAGMA foreign_keys=OFF; UPDATE runs SET active_id=9999 WHERE id=%lld", (long long)run);
    raw_sql(db, sql);
    CHECK("fsck dangling active", fsck(r, &rep) >= 2 && has(rep, "active checkpoint 9999 does not exist") &&
                                      has(rep, "foreign_key_check"));
    show_report("line 453", rep);
    free(rep);
    // An active pointer at another run's checkpoint.
    snprintf(sql, sizeof sql, "UPDATE runs SET active_id=%lld WHERE id=%lld", (long long)g30, (long long)run);
    raw_sql(db, sql);
    CHECK("fsck foreign active", fsck(r, &rep) == 2 && has(rep, "belongs to run 2"));
    show_report("line 458", rep);
    free(rep);
    keel_registry_close(r);
}

// ---------------------------------------------------------------- crash loop

// The child: a training-like writer that never stops on its own.
static void crash_writer(const char *db, const char *run_dir, unsigned seed) {
    keel_err err = {0};
    keel_registry *r = NULL;
    if (keel_registry_open(db, &r, &err) != KEEL_OK) _exit(3);
    int64_t run, base, parent;
    char cdir[800], p[900];
    snprintf(cdir, sizeof cdir, "%s/checkpoints", run_dir);
    mkdir(run_dir, 0755);
    mkdir(cdir, 0755);
    if (keel_registry_run_begin(r, run_dir, JOB, "base.safetensors", "lora", &run, &err) != KEEL_OK) _exit(4);
    snprintf(p, sizeof p, "%s/base", run_dir);
    make_ckpt(p, 0);
    char hex[65];
    if (keel_dir_sha256(p, hex, &err) != KEEL_OK) _exit(5);
    if (keel_registry_add_checkpoint(r, run, "base", 0, p, hex, -1, 1, &base, &err) != KEEL_OK) _exit(6);
    parent = base;
    keel_cap_result m[3];
    for (int64_t step = 1;; step++) {
        snprintf(p, sizeof p, "%s/step-%lld", cdir, (long long)step);
        make_ckpt(p, (float)step + (float)(seed % 7));
        int64_t id = add_ckpt(r, run, p, step, parent, -1);
        if (id < 0) _exit(7);
        m[0] = res("arc", "acc", 0.5 - 0.001 * (double)step, 0.02, true);
        m[1] = res("wiki", "ppl", 10 + 0.01 * (double)step, 0.2, false);
        m[2] = res("probe", "pass_rate", 0.9, 0.01, true);
        if (keel_registry_add_measurements(r, run, id, step, "monitor", true, m, m, 3, &err) != KEEL_OK) _exit(8);
        int ok = step % 3 != 0;
        if (keel_registry_set_checkpoint_ok(r, id, ok, &err) != KEEL_OK) _exit(9);
        if (!ok && keel_registry_add_decision(r, run, step, "rollback", "made up", parent, &err) != KEEL_OK) _exit(10);
        if (keel_registry_set_active(r, run, ok ? id : parent, &err) != KEEL_OK) _exit(11);
        if (ok) parent = id;
    }
}

static void test_crash_loop(void) {
    char proj[512], db[600], run_dir[700];
    snprintf(proj, sizeof proj, "%s/crash", tmp);
    mkdir(proj, 0755);
    snprintf(db, sizeof db, "%s/keel.db", proj);
    unsigned seed = (unsigned)time(NULL);
    srand(seed);
    int clean = 0, progressed = 0;
    for (int it = 0; it < 20; it++) {
        snprintf(run_dir, sizeof run_dir, "%s/run-%02d", proj, it);
        pid_t pid = fork();
        if (pid == 0) crash_writer(db, run_dir, (unsigned)it);
        // 5..405 ms (a step of the writer takes ~30 ms of fsyncs): the kill lands
        // mid-checkpoint-write, mid-transaction or between the two.
        struct timespec ts = {0, (long)(5 + rand() % 400) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        if (!killed) fprintf(stderr, "crash loop %d: writer exited by itself (status %d)\n", it, status);
        keel_err err = {0};
        keel_registry *r = NULL;
        if (keel_registry_open(db, &r, &err) != KEEL_OK) {
            fprintf(stderr, "crash loop %d (seed %u): open: %s\n", it, seed, err.msg);
            continue;
        }
        char *rep = NULL;
        int64_t n = fsck(r, &rep);
        if (n == 0 && killed) clean++;
        else fprintf(stderr, "crash loop %d (seed %u): fsck:\n%s", it, seed, rep ? rep : "(none)");
        int64_t run = -1;
        if (keel_registry_run_find(r, run_dir, &run, &err) == KEEL_OK && run >= 0 &&
            keel_registry_resolve(r, run_dir, NULL, 0, &err) == KEEL_OK)
            progressed++;
        free(rep);
        keel_registry_close(r);
    }
    // How much was committed across the kills (the kills landed among many transactions).
    sqlite3 *h = NULL;
    long long rows = 0;
    if (sqlite3_open(db, &h) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(h, "SELECT (SELECT count(*) FROM checkpoints) + (SELECT count(*) FROM measurements)"
                                  " + (SELECT count(*) FROM decisions)", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            rows = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    printf("crash loop: %lld rows committed across the 20 killed writers\n", rows);
    CHECK("20 kills, fsck 0 problems each time", clean == 20);
    CHECK("the writer got somewhere in most iterations", progressed >= 10);
    printf("crash loop: %d/20 clean, %d with a recorded checkpoint (seed %u)\n", clean, progressed, seed);
}

int main(void) {
    snprintf(tmp, sizeof tmp, "%s/keel-registry-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp)) { perror("mkdtemp"); return 1; }
    test_sha256();
    test_open();
    test_registry();
    test_crash_loop();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (!test_failed && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return test_report();
}
