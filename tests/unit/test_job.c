// SPDX-License-Identifier: MIT
// test_job.c — the job file (src/job/job.c): every default, a job that sets
// every key, each error class with its exact "FILE:LINE:COL: key 'a.b'"
// message, `--set` overrides, the resolved-YAML round trip (parse → write →
// parse gives an equal job, written atomically), and the shipped examples.
#include "job/job.h"
#include "test.h"

#include <sys/stat.h>
#include <unistd.h>

// Parse text into a fresh job; returns the status, message in err.
static keel_status parse(const char *text, keel_job *job, keel_err *err) {
    keel_status st = keel_job_init(job, err);
    if (st) return st;
    return keel_job_parse(job, "t.yaml", text, strlen(text), err);
}

// The parse must fail with code and a message starting with want.
static void expect_err(const char *descr, const char *text, keel_status code, const char *want) {
    keel_job job;
    keel_err err = {0};
    keel_status st = parse(text, &job, &err);
    if (st == KEEL_OK) st = keel_job_validate(&job, &err);
    CHECK(descr, st == code);
    bool ok = strncmp(err.msg, want, strlen(want)) == 0;
    if (!ok) fprintf(stderr, "  %s: got message '%s'\n  want prefix    '%s'\n", descr, err.msg, want);
    CHECK(descr, ok);
    keel_job_free(&job);
}

static void test_defaults(void) {
    keel_job j;
    keel_err err = {0};
    CHECK("init", keel_job_init(&j, &err) == KEEL_OK);
    CHECK("model empty", j.model && !*j.model);
    CHECK("method lora", j.method == KEEL_JOB_LORA);
    CHECK("r", j.lora.r == 8);
    CHECK("alpha", j.lora.alpha == 16.0);
    CHECK("dropout", j.lora.dropout == 0.0);
    CHECK("targets 7", j.lora.target_modules.n == 7);
    CHECK("targets first/last", j.lora.target_modules.n == 7 && !strcmp(j.lora.target_modules.v[0], "q_proj") &&
                                    !strcmp(j.lora.target_modules.v[6], "down_proj"));
    CHECK("rslora", !j.lora.use_rslora);
    CHECK("init", j.lora.init == KEEL_LORA_INIT_KAIMING);
    CHECK("trainable *", j.full.trainable.n == 1 && !strcmp(j.full.trainable.v[0], "*"));
    CHECK("freeze []", j.full.freeze.n == 0);
    CHECK("freeze_layers", !strcmp(j.full.freeze_layers, ""));
    CHECK("train path", !strcmp(j.data.train, ""));
    CHECK("format", j.data.format == KEEL_DATA_AUTO);
    CHECK("validation", !strcmp(j.data.validation, ""));
    CHECK("split", j.data.validation_split == 0.0);
    CHECK("max_seq_len", j.data.max_seq_len == 512);
    CHECK("packing", !j.data.packing);
    CHECK("shuffle", j.data.shuffle);
    CHECK("lr", j.train.lr == 1e-4);
    CHECK("wd", j.train.weight_decay == 0.0);
    CHECK("betas", j.train.betas[0] == 0.9 && j.train.betas[1] == 0.999);
    CHECK("eps", j.train.eps == 1e-8);
    CHECK("batch", j.train.batch_size == 4);
    CHECK("accum", j.train.grad_accum == 1);
    CHECK("max_steps", j.train.max_steps == 0);
    CHECK("epochs", j.train.epochs == 1);
    CHECK("schedule", j.train.schedule == KEEL_SCHED_COSINE);
    CHECK("warmup", j.train.warmup_steps == 0);
    CHECK("clip", j.train.clip_grad_norm == 1.0);
    CHECK("seed", j.train.seed == 42);
    CHECK("threads", j.train.threads == 0);
    CHECK("out dir", !strcmp(j.output.dir, "runs/keel"));
    CHECK("save_every", j.output.save_every == 0);
    // defaults alone are not a valid job: model and data.train are required
    CHECK("model required", keel_job_validate(&j, &err) == KEEL_ERR_INVALID && strstr(err.msg, "key 'model': required"));
    keel_job_free(&j);
    keel_job_free(NULL);

    keel_job m;
    CHECK("minimal loads", keel_job_load(&m, "tests/data/jobs/minimal.yaml", NULL, 0, &err) == KEEL_OK);
    CHECK("minimal model", m.model && !strcmp(m.model, "../shared/models/stories260K/stories260K.gguf"));
    CHECK("minimal train", m.data.train && !strcmp(m.data.train, "tests/data/jsonl/text.jsonl"));
    CHECK("minimal keeps defaults", m.train.lr == 1e-4 && m.lora.r == 8 && m.data.max_seq_len == 512);
    keel_job_free(&m);
}

static void test_full(void) {
    keel_job j;
    keel_err err = {0};
    keel_status st = keel_job_load(&j, "tests/data/jobs/full.yaml", NULL, 0, &err);
    CHECK("full loads", st == KEEL_OK);
    if (st) {
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    CHECK("model", !strcmp(j.model, "/models/My Model.gguf"));
    CHECK("method", j.method == KEEL_JOB_QLORA);
    CHECK("r", j.lora.r == 16);
    CHECK("alpha", j.lora.alpha == 32.5);
    CHECK("dropout", j.lora.dropout == 0.05);
    CHECK("targets", j.lora.target_modules.n == 3 && !strcmp(j.lora.target_modules.v[2], "model.layers.*.mlp.down_proj"));
    CHECK("rslora", j.lora.use_rslora);
    CHECK("init", j.lora.init == KEEL_LORA_INIT_GAUSSIAN);
    CHECK("trainable", j.full.trainable.n == 2 && !strcmp(j.full.trainable.v[1], "*mlp*"));
    CHECK("freeze", j.full.freeze.n == 1 && !strcmp(j.full.freeze.v[0], "token_embd.weight"));
    CHECK("freeze_layers", !strcmp(j.full.freeze_layers, "0-3, 7"));
    CHECK("format", j.data.format == KEEL_DATA_CHAT);
    CHECK("split", j.data.validation_split == 0.1);
    CHECK("seq", j.data.max_seq_len == 1024);
    CHECK("packing", j.data.packing && !j.data.shuffle);
    CHECK("lr", j.train.lr == 3e-5);
    CHECK("betas", j.train.betas[0] == 0.8 && j.train.betas[1] == 0.95);
    CHECK("eps", j.train.eps == 1e-6);
    CHECK("batch/accum", j.train.batch_size == 8 && j.train.grad_accum == 4);
    CHECK("steps/epochs", j.train.max_steps == 1000 && j.train.epochs == 3);
    CHECK("schedule", j.train.schedule == KEEL_SCHED_LINEAR);
    CHECK("warmup", j.train.warmup_steps == 50);
    CHECK("clip", j.train.clip_grad_norm == 0.5);
    CHECK("seed u64 max", j.train.seed == UINT64_MAX);
    CHECK("threads", j.train.threads == 2);
    CHECK("dir escapes", !strcmp(j.output.dir, "runs/my run \"quoted\"\tand tab"));
    CHECK("save_every", j.output.save_every == 100);
    keel_job_free(&j);
}

static void test_errors(void) {
    const char *head = "model: m.gguf\ndata:\n  train: t.jsonl\n";
    char buf[1024];
    // impossible values
    expect_err("lr <= 0", "model: m\ndata:\n  train: t\ntrain:\n  batch_size: 2\n  lr: -0.001\n",
               KEEL_ERR_INVALID, "t.yaml:6:7: key 'train.lr': must be in (0, 10], got -0.001");
    {
        keel_job j;
        keel_err err = {0};
        CHECK("bad_lr.yaml fails", keel_job_load(&j, "tests/data/jobs/bad_lr.yaml", NULL, 0, &err) == KEEL_ERR_INVALID);
        CHECK("bad_lr.yaml names file:line:col and key",
              !strcmp(err.msg, "tests/data/jobs/bad_lr.yaml:6:7: key 'train.lr': must be in (0, 10], got -0.001"));
        CHECK("typo.yaml fails", keel_job_load(&j, "tests/data/jobs/typo.yaml", NULL, 0, &err) == KEEL_ERR_INVALID);
        CHECK("typo.yaml did you mean",
              !strcmp(err.msg, "tests/data/jobs/typo.yaml:4:3: key 'data.max_seq_length': unknown key (did you mean 'max_seq_len'?)"));
        CHECK("ledger.yaml incomplete", keel_job_load(&j, "tests/data/jobs/ledger.yaml", NULL, 0, &err) == KEEL_ERR_INVALID);
        CHECK("ledger.yaml message", !strcmp(err.msg, "tests/data/jobs/ledger.yaml:5:5: key 'capabilities[0].type': required: "
                                                      "one of perplexity, exact_match, multiple_choice, probe"));
        CHECK("missing file", keel_job_load(&j, "tests/data/jobs/nope.yaml", NULL, 0, &err) == KEEL_ERR_IO);
    }
    snprintf(buf, sizeof buf, "%slora:\n  r: 0\n", head);
    expect_err("r < 1", buf, KEEL_ERR_INVALID, "t.yaml:5:6: key 'lora.r': must be in [1, 65536], got 0");
    snprintf(buf, sizeof buf, "%slora:\n  dropout: 1.0\n", head);
    expect_err("dropout 1", buf, KEEL_ERR_INVALID, "t.yaml:5:12: key 'lora.dropout': must be in [0, 1), got 1");
    snprintf(buf, sizeof buf, "%slora:\n  dropout: -0.1\n", head);
    expect_err("dropout < 0", buf, KEEL_ERR_INVALID, "t.yaml:5:12: key 'lora.dropout': must be in [0, 1), got -0.1");
    snprintf(buf, sizeof buf, "%slora:\n  alpha: 0\n", head);
    expect_err("alpha 0", buf, KEEL_ERR_INVALID, "t.yaml:5:10: key 'lora.alpha': must be > 0, got 0");
    snprintf(buf, sizeof buf, "%strain:\n  betas: [0.9, 1.0]\n", head);
    expect_err("beta2 1", buf, KEEL_ERR_INVALID, "t.yaml:5:10: key 'train.betas': each value must be in [0, 1), got 1");
    snprintf(buf, sizeof buf, "%strain:\n  betas: [0.9]\n", head);
    expect_err("betas one", buf, KEEL_ERR_INVALID, "t.yaml:5:10: key 'train.betas': expected a list of two numbers");
    snprintf(buf, sizeof buf, "%strain:\n  eps: 0\n", head);
    expect_err("eps 0", buf, KEEL_ERR_INVALID, "t.yaml:5:8: key 'train.eps': must be in (0, 1], got 0");
    snprintf(buf, sizeof buf, "%strain:\n  clip_grad_norm: -1\n", head);
    expect_err("clip < 0", buf, KEEL_ERR_INVALID, "t.yaml:5:19: key 'train.clip_grad_norm': must be >= 0, got -1");
    snprintf(buf, sizeof buf, "%strain:\n  batch_size: 0\n", head);
    expect_err("batch 0", buf, KEEL_ERR_INVALID, "t.yaml:5:15: key 'train.batch_size': must be in [1, 1048576], got 0");
    snprintf(buf, sizeof buf, "%strain:\n  seed: -1\n", head);
    expect_err("seed < 0", buf, KEEL_ERR_INVALID, "t.yaml:5:9: key 'train.seed': expected an unsigned integer, got '-1'");
    snprintf(buf, sizeof buf, "%s  max_seq_len: 1\n", head);
    expect_err("seq 1", buf, KEEL_ERR_INVALID, "t.yaml:4:16: key 'data.max_seq_len': must be in [2, 1048576], got 1");
    snprintf(buf, sizeof buf, "%s  validation_split: 1\n", head);
    expect_err("split 1", buf, KEEL_ERR_INVALID, "t.yaml:4:21: key 'data.validation_split': must be in [0, 1), got 1");
    // unknown enum values
    snprintf(buf, sizeof buf, "%smethod: lorra\n", head);
    expect_err("unknown method", buf, KEEL_ERR_INVALID,
               "t.yaml:4:9: key 'method': unknown value 'lorra' (did you mean 'lora'?); expected one of: full, lora, qlora");
    snprintf(buf, sizeof buf, "%strain:\n  schedule: exponential\n", head);
    expect_err("unknown schedule", buf, KEEL_ERR_INVALID,
               "t.yaml:5:13: key 'train.schedule': unknown value 'exponential'; expected one of: constant, linear, cosine");
    snprintf(buf, sizeof buf, "%s  format: jsonl\n", head);
    expect_err("unknown format", buf, KEEL_ERR_INVALID, "t.yaml:4:11: key 'data.format': unknown value 'jsonl'");
    // wrong types
    snprintf(buf, sizeof buf, "%strain:\n  lr: fast\n", head);
    expect_err("lr string", buf, KEEL_ERR_INVALID, "t.yaml:5:7: key 'train.lr': expected a number, got 'fast'");
    snprintf(buf, sizeof buf, "%strain:\n  lr: \"1e-4\"\n", head);
    expect_err("lr quoted", buf, KEEL_ERR_INVALID, "t.yaml:5:7: key 'train.lr': expected a number, got '1e-4'");
    snprintf(buf, sizeof buf, "%strain:\n  lr: .inf\n", head);
    expect_err("lr inf", buf, KEEL_ERR_INVALID, "t.yaml:5:7: key 'train.lr': expected a number, got '.inf'");
    snprintf(buf, sizeof buf, "%strain:\n  lr: [1]\n", head);
    expect_err("lr list", buf, KEEL_ERR_INVALID, "t.yaml:5:7: key 'train.lr': expected a number, got a list");
    snprintf(buf, sizeof buf, "%strain:\n  batch_size: 2.5\n", head);
    expect_err("batch float", buf, KEEL_ERR_INVALID, "t.yaml:5:15: key 'train.batch_size': expected an integer, got '2.5'");
    snprintf(buf, sizeof buf, "%s  packing: yes\n", head);
    expect_err("bool yes", buf, KEEL_ERR_INVALID, "t.yaml:4:12: key 'data.packing': expected true or false, got 'yes'");
    snprintf(buf, sizeof buf, "%slora: 5\n", head);
    expect_err("section scalar", buf, KEEL_ERR_INVALID, "t.yaml:4:7: key 'lora': expected a mapping of keys, got a plain scalar");
    snprintf(buf, sizeof buf, "%slora:\n  target_modules: q_proj\n", head);
    expect_err("modules scalar", buf, KEEL_ERR_INVALID, "t.yaml:5:19: key 'lora.target_modules': expected a list like [a, b]");
    snprintf(buf, sizeof buf, "%slora:\n  target_modules:\n    - q_proj\n    - qproj\n", head);
    expect_err("module typo", buf, KEEL_ERR_INVALID,
               "t.yaml:7:7: key 'lora.target_modules': unknown module 'qproj' (did you mean 'q_proj'?)");
    snprintf(buf, sizeof buf, "%slora:\n  target_modules: []\n", head);
    expect_err("modules empty", buf, KEEL_ERR_INVALID, "t.yaml:5:19: key 'lora.target_modules': must not be empty");
    snprintf(buf, sizeof buf, "%smodel: [a]\n", "data:\n  train: t\n");
    expect_err("model list", buf, KEEL_ERR_INVALID, "t.yaml:3:8: key 'model': expected a string, got a list");
    snprintf(buf, sizeof buf, "%sfull:\n  freeze_layers: \"3-1\"\n", head);
    expect_err("ranges backwards", buf, KEEL_ERR_INVALID, "t.yaml:5:18: key 'full.freeze_layers': range 3-1 runs backwards");
    snprintf(buf, sizeof buf, "%sfull:\n  freeze_layers: \"a-b\"\n", head);
    expect_err("ranges syntax", buf, KEEL_ERR_INVALID, "t.yaml:5:18: key 'full.freeze_layers': expected layer ranges");
    // unknown keys, did you mean
    snprintf(buf, sizeof buf, "%strain:\n  learning_rate: 1\n", head);
    expect_err("unknown no suggestion", buf, KEEL_ERR_INVALID, "t.yaml:5:3: key 'train.learning_rate': unknown key\0");
    snprintf(buf, sizeof buf, "%strain:\n  wamup_steps: 1\n", head);
    expect_err("unknown suggestion", buf, KEEL_ERR_INVALID,
               "t.yaml:5:3: key 'train.wamup_steps': unknown key (did you mean 'warmup_steps'?)");
    snprintf(buf, sizeof buf, "%strain:\n  max_seq_len: 256\n", head);
    expect_err("key in the wrong section", buf, KEEL_ERR_INVALID,
               "t.yaml:5:3: key 'train.max_seq_len': unknown key (it belongs in 'data.max_seq_len')");
    snprintf(buf, sizeof buf, "%sr: 4\n", head);
    expect_err("section key at top level", buf, KEEL_ERR_INVALID, "t.yaml:4:1: key 'r': unknown key (it belongs in 'lora.r')");
    snprintf(buf, sizeof buf, "%strian:\n  lr: 1\n", head);
    expect_err("unknown section", buf, KEEL_ERR_INVALID, "t.yaml:4:1: key 'trian': unknown key (did you mean 'train'?)");
    // the ledger: monitor without capabilities, capability errors
    snprintf(buf, sizeof buf, "%smonitor:\n  every: 10\n", head);
    expect_err("monitor without caps", buf, KEEL_ERR_INVALID, "t.yaml:5:10: key 'monitor.every': there is nothing to monitor");
    snprintf(buf, sizeof buf, "%smonitor:\n  on_violation: rollback\n", head);
    expect_err("rollback without caps", buf, KEEL_ERR_INVALID, "t.yaml:5:17: key 'monitor.on_violation': rollback needs bounds");
    snprintf(buf, sizeof buf, "%smonitor:\n  on_violation: rolback\n", head);
    expect_err("violation typo", buf, KEEL_ERR_INVALID, "t.yaml:5:17: key 'monitor.on_violation': unknown value 'rolback' (did you mean 'rollback'?)");
    snprintf(buf, sizeof buf, "%smonitor:\n  lr_factor: 1\n", head);
    expect_err("lr_factor 1", buf, KEEL_ERR_INVALID, "t.yaml:5:14: key 'monitor.lr_factor': must be in (0, 1), got 1");
    snprintf(buf, sizeof buf, "%smonitor:\n  weight_factor: 0.5\n", head);
    expect_err("weight_factor < 1", buf, KEEL_ERR_INVALID, "t.yaml:5:18: key 'monitor.weight_factor': must be in [1, 1000000], got 0.5");
    snprintf(buf, sizeof buf, "%scapabilities:\n  - name: a\n    type: perplexity\n    data: x.txt\n    max_drop: 5%%\n    windw: 3\n", head);
    expect_err("cap unknown key", buf, KEEL_ERR_INVALID, "t.yaml:9:5: key 'capabilities[0].windw': unknown key (did you mean 'window'?)");
    snprintf(buf, sizeof buf, "%scapabilities:\n  - {name: a, type: perplexity, data: x.txt}\ncapabilities: []\n", head);
    expect_err("caps twice", buf, KEEL_ERR_INVALID, "t.yaml:6:1: key 'capabilities': duplicate key (first set on line 4)");
    snprintf(buf, sizeof buf, "%scapabilities: 3\n", head);
    expect_err("caps not a list", buf, KEEL_ERR_INVALID, "t.yaml:4:15: key 'capabilities': cannot read the suite file '3' (expected a list");
    {
        // a bound without monitor is fine; the capability lands in job->caps
        keel_job j;
        keel_err err = {0};
        snprintf(buf, sizeof buf, "%scapabilities:\n  - {name: a, type: perplexity, data: x.txt, max_drop: 5%%}\n", head);
        CHECK("caps parse", parse(buf, &j, &err) == KEEL_OK && keel_job_validate(&j, &err) == KEEL_OK);
        CHECK("caps content", j.caps.n == 1 && j.caps.v[0].task == KEEL_CAP_TASK_TEXT && j.caps.v[0].max_drop_rel &&
                                  j.caps.v[0].max_drop == 0.05 && j.monitor.every == 0 && j.monitor.lr_factor == 0.5 &&
                                  j.monitor.weight_factor == 2 && j.monitor.max_retries == 2);
        keel_job_free(&j);
    }
    // structure
    snprintf(buf, sizeof buf, "%strain:\n  lr: 1e-3\n  lr: 2e-3\n", head);
    expect_err("duplicate", buf, KEEL_ERR_INVALID, "t.yaml:6:3: key 'train.lr': duplicate key (first set on line 5)");
    expect_err("syntax", "model: m\ndata: [\n", KEEL_ERR_INVALID, "t.yaml:3:1: YAML syntax error:");
    expect_err("empty", "", KEEL_ERR_INVALID, "t.yaml: the job file is empty");
    expect_err("not a mapping", "- a\n- b\n", KEEL_ERR_INVALID, "t.yaml:1:1: the job must be a mapping of keys, got a list");
    expect_err("two docs", "model: m\n---\nmodel: n\n", KEEL_ERR_INVALID, "t.yaml:3:1: a second YAML document");
    expect_err("complex key", "? [a]\n: b\n", KEEL_ERR_INVALID, "t.yaml:1:3: at the top level: keys must be plain names");
    // cross-key checks
    expect_err("train required", "model: m\n", KEEL_ERR_INVALID, "t.yaml: key 'data.train': required");
    snprintf(buf, sizeof buf, "%s  validation: v.jsonl\n  validation_split: 0.1\n", head);
    expect_err("both validations", buf, KEEL_ERR_INVALID,
               "t.yaml:5:21: key 'data.validation_split': set either data.validation (a file) or data.validation_split");
    snprintf(buf, sizeof buf, "%strain:\n  max_steps: 10\n  warmup_steps: 20\n", head);
    expect_err("warmup > steps", buf, KEEL_ERR_INVALID, "t.yaml:6:17: key 'train.warmup_steps': 20 is more than train.max_steps (10)");
    // null means the default
    {
        keel_job j;
        keel_err err = {0};
        snprintf(buf, sizeof buf, "%strain:\n  lr:\n  seed: ~\nlora:\n", head);
        CHECK("nulls parse", parse(buf, &j, &err) == KEEL_OK && keel_job_validate(&j, &err) == KEEL_OK);
        CHECK("null = default", j.train.lr == 1e-4 && j.train.seed == 42 && j.lora.r == 8);
        keel_job_free(&j);
    }
}

static void test_overrides(void) {
    keel_job j;
    keel_err err = {0};
    const char *sets[] = {"train.lr=3e-4", "lora.target_modules=[q_proj, v_proj]", "data.packing=true",
                          "method=full", "output.dir=out dir", "train.seed=7"};
    keel_status st = keel_job_load(&j, "tests/data/jobs/minimal.yaml", sets, 6, &err);
    CHECK("overrides load", st == KEEL_OK);
    if (!st) {
        CHECK("lr set", j.train.lr == 3e-4);
        CHECK("list set", j.lora.target_modules.n == 2 && !strcmp(j.lora.target_modules.v[1], "v_proj"));
        CHECK("bool set", j.data.packing);
        CHECK("enum set", j.method == KEEL_JOB_FULL);
        CHECK("string with space", !strcmp(j.output.dir, "out dir"));
        CHECK("seed", j.train.seed == 7);
        CHECK("set again", keel_job_set(&j, "train.lr=1e-3", &err) == KEEL_OK && j.train.lr == 1e-3);
        CHECK("empty = default", keel_job_set(&j, "train.lr=", &err) == KEEL_OK && j.train.lr == 1e-4);
        // errors name the override and the key
        CHECK("bad value", keel_job_set(&j, "train.lr=0", &err) == KEEL_ERR_INVALID);
        CHECK("bad value msg", !strcmp(err.msg, "--set train.lr=0: key 'train.lr': must be in (0, 10], got 0"));
        CHECK("bad type", keel_job_set(&j, "train.lr=abc", &err) == KEEL_ERR_INVALID);
        CHECK("bad type msg", !strcmp(err.msg, "--set train.lr=abc: key 'train.lr': expected a number, got 'abc'"));
        CHECK("unknown key", keel_job_set(&j, "train.lrr=1", &err) == KEEL_ERR_INVALID);
        CHECK("unknown key msg", !strcmp(err.msg, "--set train.lrr=1: key 'train.lrr': unknown key (did you mean 'train.lr'?)"));
        CHECK("no =", keel_job_set(&j, "train.lr", &err) == KEEL_ERR_INVALID && strstr(err.msg, "KEY=VALUE"));
        CHECK("section", keel_job_set(&j, "train=1", &err) == KEEL_ERR_INVALID && strstr(err.msg, "is a section"));
        CHECK("bad yaml", keel_job_set(&j, "lora.target_modules=[a", &err) == KEEL_ERR_INVALID &&
                              strstr(err.msg, "--set lora.target_modules=[a: key 'lora.target_modules': value is not valid YAML"));
        CHECK("monitor set", keel_job_set(&j, "monitor.every=5", &err) == KEEL_OK && j.monitor.every == 5);
        CHECK("monitor set needs caps", keel_job_validate(&j, &err) == KEEL_ERR_INVALID &&
                                            strstr(err.msg, "--set monitor.every=...: key 'monitor.every'"));
        CHECK("monitor reset", keel_job_set(&j, "monitor.every=0", &err) == KEEL_OK);
        CHECK("monitor enum set", keel_job_set(&j, "monitor.decide=ci", &err) == KEEL_OK && j.monitor.decide == KEEL_CAP_DECIDE_CI);
        CHECK("caps not settable", keel_job_set(&j, "capabilities=[]", &err) == KEEL_ERR_INVALID &&
                                       strstr(err.msg, "cannot be set with --set"));
        CHECK("value unchanged after errors", j.train.lr == 1e-4);
        // a cross-key error caused by an override names the override
        CHECK("validate ok", keel_job_validate(&j, &err) == KEEL_OK);
        CHECK("split via set", keel_job_set(&j, "data.validation=v.jsonl", &err) == KEEL_OK &&
                                   keel_job_set(&j, "data.validation_split=0.2", &err) == KEEL_OK);
        CHECK("cross-key from set", keel_job_validate(&j, &err) == KEEL_ERR_INVALID &&
                                        strstr(err.msg, "--set data.validation_split=...: key 'data.validation_split'"));
        keel_job_free(&j);
    } else fprintf(stderr, "  %s\n", err.msg);
    // a failing override in keel_job_load frees the job and reports
    CHECK("load with bad set", keel_job_load(&j, "tests/data/jobs/minimal.yaml", (const char *[]){"lora.r=0"}, 1, &err) ==
                                   KEEL_ERR_INVALID && strstr(err.msg, "--set lora.r=0: key 'lora.r'"));
}

static void roundtrip(const char *path) {
    keel_job a, b;
    keel_err err = {0};
    char descr[256];
    snprintf(descr, sizeof descr, "round trip %s", path);
    if (keel_job_load(&a, path, NULL, 0, &err) != KEEL_OK) {
        CHECK(descr, false);
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    char dir[] = "/tmp/keel-test-job-XXXXXX";
    CHECK("mkdtemp", mkdtemp(dir) != NULL);
    char out[300];
    snprintf(out, sizeof out, "%s/job.yaml", dir);
    CHECK(descr, keel_job_write(&a, out, &err) == KEEL_OK);
    CHECK(descr, keel_job_load(&b, out, NULL, 0, &err) == KEEL_OK);
    CHECK(descr, keel_job_equal(&a, &b));
    // nothing but job.yaml is left in the directory (the temp file was renamed)
    char tmp[340];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    CHECK("no temp file left", access(tmp, F_OK) != 0);
    // writing b again gives the same bytes
    char *ta = NULL, *tb = NULL;
    size_t la = 0, lb = 0;
    CHECK("to_yaml", keel_job_to_yaml(&a, &ta, &la, &err) == KEEL_OK && keel_job_to_yaml(&b, &tb, &lb, &err) == KEEL_OK);
    CHECK("same text", ta && tb && la == lb && !memcmp(ta, tb, la));
    CHECK("every key written", ta && strstr(ta, "  save_every: ") && strstr(ta, "  use_rslora: ") && strstr(ta, "  betas: ["));
    free(ta);
    free(tb);
    unlink(out);
    rmdir(dir);
    keel_job_free(&a);
    keel_job_free(&b);
}

static void test_roundtrip(void) {
    roundtrip("tests/data/jobs/minimal.yaml");
    roundtrip("tests/data/jobs/full.yaml");
    roundtrip("examples/stories260k-full.yaml");
    roundtrip("examples/smollm2-lora.yaml");
    roundtrip("tests/data/jobs/ledger_full.yaml");
    {
        keel_job j;
        keel_err err = {0};
        if (keel_job_load(&j, "tests/data/jobs/ledger_full.yaml", NULL, 0, &err) == KEEL_OK) {
            CHECK("ledger_full caps", j.caps.n == 4 && j.caps.v[1].max_drop_rel && j.caps.v[1].max_drop == 0.05 &&
                                          j.caps.v[0].acc_norm && j.caps.v[0].decide == KEEL_CAP_DECIDE_CI &&
                                          j.caps.v[3].pattern && !j.caps.v[3].expect_match);
            CHECK("ledger_full monitor", j.monitor.every == 20 && j.monitor.sample == 50 && j.monitor.seed == 3 &&
                                             j.monitor.on_violation == KEEL_VIOLATION_ADAPT && j.monitor.max_retries == 3 &&
                                             j.monitor.lr_factor == 0.25 && j.monitor.weight_factor == 4);
            keel_job k;
            keel_job_init(&k, &err);
            CHECK("caps differ", !keel_job_equal(&j, &k));
            keel_job_free(&k);
            keel_job_free(&j);
        } else {
            CHECK("ledger_full loads", false);
            fprintf(stderr, "  %s\n", err.msg);
        }
    }
    // unequal jobs compare unequal
    keel_job a, b;
    keel_err err = {0};
    keel_job_init(&a, &err);
    keel_job_init(&b, &err);
    CHECK("equal defaults", keel_job_equal(&a, &b));
    keel_job_set(&b, "lora.target_modules=[q_proj]", &err);
    CHECK("unequal list", !keel_job_equal(&a, &b));
    keel_job_free(&b);
    keel_job_init(&b, &err);
    keel_job_set(&b, "train.betas=[0.9, 0.99]", &err);
    CHECK("unequal pair", !keel_job_equal(&a, &b));
    keel_job_free(&a);
    keel_job_free(&b);
    // a write into a missing directory fails with an I/O error naming the path
    keel_job_init(&a, &err);
    CHECK("write to missing dir", keel_job_write(&a, "/nonexistent-dir/job.yaml", &err) == KEEL_ERR_IO &&
                                      strstr(err.msg, "/nonexistent-dir/job.yaml"));
    keel_job_free(&a);
}

// docs/job.md has a table row for every key the writer emits.
static void test_docs(void) {
    char *doc = NULL, *yaml = NULL;
    size_t dl = 0, yl = 0;
    keel_err err = {0};
    keel_job j;
    CHECK("docs/job.md readable", keel_read_file("docs/job.md", &doc, &dl, &err) == KEEL_OK);
    keel_job_init(&j, &err);
    CHECK("defaults to yaml", keel_job_to_yaml(&j, &yaml, &yl, &err) == KEEL_OK);
    char sec[32] = "";
    int n_keys = 0;
    for (char *line = yaml ? strtok(yaml, "\n") : NULL; doc && line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char *colon = strchr(line, ':');
        if (!colon) continue;
        char key[96], row[128];
        if (line[0] != ' ' && colon[1] == 0) { // a section header
            snprintf(sec, sizeof sec, "%.*s", (int)(colon - line), line);
            continue;
        }
        if (line[0] == ' ') snprintf(key, sizeof key, "%s.%.*s", sec, (int)(colon - line - 2), line + 2);
        else snprintf(key, sizeof key, "%.*s", (int)(colon - line), line);
        snprintf(row, sizeof row, "| `%s` |", key);
        n_keys++;
        if (!strstr(doc, row)) fprintf(stderr, "  docs/job.md lacks a row for %s\n", key);
        CHECK("key documented", strstr(doc, row) != NULL);
    }
    CHECK("every key seen", n_keys == 42); // 41 table keys + capabilities
    free(doc);
    free(yaml);
    keel_job_free(&j);
}

static void test_expand(void) {
    setenv("HOME", "/home/u", 1);
    char *p = keel_job_expand_path("~/.cache/keel/m.gguf");
    CHECK("~/ expands", p && !strcmp(p, "/home/u/.cache/keel/m.gguf"));
    free(p);
    p = keel_job_expand_path("a/~/b");
    CHECK("other paths kept", p && !strcmp(p, "a/~/b"));
    free(p);
    p = keel_job_expand_path("~user/x");
    CHECK("~user kept", p && !strcmp(p, "~user/x"));
    free(p);
}

static void test_examples(void) {
    const char *ex[] = {"examples/stories260k-full.yaml", "examples/smollm2-lora.yaml"};
    for (int i = 0; i < 2; i++) {
        keel_job j;
        keel_err err = {0};
        keel_status st = keel_job_load(&j, ex[i], NULL, 0, &err);
        CHECK(ex[i], st == KEEL_OK);
        if (st) {
            fprintf(stderr, "  %s\n", err.msg);
            continue;
        }
        struct stat sb;
        CHECK("example train data exists", stat(j.data.train, &sb) == 0);
        CHECK("example validation exists", !*j.data.validation || stat(j.data.validation, &sb) == 0);
        keel_job_free(&j);
    }
}

// `capabilities: FILE` takes the list of a suite file; the resolved job holds it inline.
static void test_caps_file(void) {
    keel_job j;
    keel_err err = {0};
    const char *y = "model: m.gguf\ndata:\n  train: t.jsonl\ncapabilities: examples/suites/general.yaml\n";
    CHECK("init", keel_job_init(&j, &err) == KEEL_OK);
    keel_status st = keel_job_parse(&j, "t.yaml", y, strlen(y), &err);
    CHECK("capabilities from a suite file", st == KEEL_OK && j.caps.n == 5 && !strcmp(j.caps.v[0].name, "arc_easy"));
    char *out = NULL;
    size_t len = 0;
    CHECK("written inline", keel_job_to_yaml(&j, &out, &len, &err) == KEEL_OK && out && strstr(out, "- name: \"arc_easy\""));
    free(out);
    keel_job_free(&j);
    CHECK("init", keel_job_init(&j, &err) == KEEL_OK);
    y = "model: m.gguf\ndata:\n  train: t.jsonl\ncapabilities: no/such/suite.yaml\n";
    st = keel_job_parse(&j, "t.yaml", y, strlen(y), &err);
    CHECK("missing suite file", st == KEEL_ERR_INVALID && strstr(err.msg, "t.yaml:4:15: key 'capabilities'") &&
                                    strstr(err.msg, "no/such/suite.yaml"));
    keel_job_free(&j);
}

int main(void) {
    test_caps_file();
    test_defaults();
    test_full();
    test_errors();
    test_overrides();
    test_roundtrip();
    test_examples();
    test_docs();
    test_expand();
    return test_report();
}
