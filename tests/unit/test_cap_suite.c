// SPDX-License-Identifier: MIT
// test_cap_suite.c — the `capabilities:` list (src/cap/suite.c): defaults,
// every kind, errors with FILE:LINE:COL and the key (unknown key with
// did-you-mean, wrong type, key of another type, bad percentage, duplicate
// names and keys, bad regex, missing required keys), suite files, and the
// round trip to_yaml -> parse -> equal (also through copy). The shipped
// example suite parses.
#include "test.h"
#include "cap/cap.h"

#include <unistd.h>

static char tmpdir[] = "/tmp/keel-test-capsuite-XXXXXX";

static const char *write_tmp(const char *text) {
    static char path[300];
    snprintf(path, sizeof path, "%s/s.yaml", tmpdir);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return path;
}

static keel_status load(const char *text, keel_cap_suite *s, keel_err *err) {
    return keel_cap_suite_load_file(s, write_tmp(text), err);
}

// Expect a failure whose message, after the temp directory, starts with want.
static void expect_err(const char *descr, const char *text, const char *want) {
    keel_cap_suite s;
    keel_err err = {0};
    keel_status st = load(text, &s, &err);
    CHECK(descr, st == KEEL_ERR_INVALID);
    const char *m = strstr(err.msg, "s.yaml");
    bool ok = m && !strncmp(m, want, strlen(want));
    if (!ok) fprintf(stderr, "  %s: got '%s'\n  want '%s'\n", descr, err.msg, want);
    CHECK(descr, ok);
    CHECK("nothing kept on failure", s.n == 0 && s.v == NULL);
    if (!st) keel_cap_suite_free(&s);
}

static void roundtrip(const char *descr, const keel_cap_suite *a) {
    keel_buf b = {0};
    keel_err err = {0};
    CHECK(descr, keel_cap_suite_to_yaml(a, &b, &err) == KEEL_OK && keel_buf_append(&b, "", 1));
    keel_cap_suite c = {0};
    keel_status st = b.data ? load(b.data, &c, &err) : KEEL_ERR_NOMEM;
    if (st) fprintf(stderr, "  %s: %s\n%s", descr, err.msg, b.data ? b.data : "");
    CHECK(descr, st == KEEL_OK && keel_cap_suite_equal(a, &c));
    // the second write is the same text
    keel_buf b2 = {0};
    CHECK("to_yaml again", keel_cap_suite_to_yaml(&c, &b2, &err) == KEEL_OK && keel_buf_append(&b2, "", 1));
    CHECK("same text", b.data && b2.data && !strcmp(b.data, b2.data));
    free(b.data);
    free(b2.data);
    keel_cap_suite_free(&c);
}

static const char *full_suite =
    "# every kind, every key\n"
    "capabilities:\n"
    "  - name: arc_easy\n"
    "    type: multiple_choice\n"
    "    task: arc_easy\n"
    "    data: ../shared/datasets/arc_easy_test.jsonl\n"
    "    limit: 200\n"
    "    metric: acc_norm\n"
    "    max_drop: 0.03\n"
    "    decide: ci\n"
    "  - name: prose\n"
    "    type: perplexity\n"
    "    data: examples/data/general_ppl.txt\n"
    "    window: 256\n"
    "    max_drop: 5%\n"
    "    max: 40\n"
    "  - name: math.v2\n"
    "    type: exact_match\n"
    "    data: \"math \\\"x\\\".jsonl\"\n"
    "    max_new_tokens: 16\n"
    "    chat: false\n"
    "    normalize: [punctuation, case]\n"
    "    extract: 'answer: (\\d+)'\n"
    "    min: 0.25\n"
    "  - name: refuse-harm\n"
    "    type: probe\n"
    "    data: ~/probes.jsonl\n"
    "    pattern: \"(?i)^i (can't|cannot)\"\n"
    "    expect: no_match\n"
    "    max_drop: 12.5%\n"
    "    min: 0\n"
    "    max: 0.1\n"
    "    decide: point\n";

static void test_parse(void) {
    keel_cap_suite s;
    keel_err err = {0};
    keel_status st = load(full_suite, &s, &err);
    CHECK("full suite parses", st == KEEL_OK);
    if (st) {
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    CHECK("4 entries", s.n == 4);
    const keel_cap_spec *a = &s.v[0], *p = &s.v[1], *e = &s.v[2], *q = &s.v[3];
    CHECK("mc", a->kind == KEEL_CAP_MULTIPLE_CHOICE && a->task == KEEL_CAP_TASK_ARC_EASY && a->limit == 200 &&
                    a->acc_norm && a->has_max_drop && !a->max_drop_rel && a->max_drop == 0.03 &&
                    a->decide == KEEL_CAP_DECIDE_CI && !a->has_min && !a->has_max);
    CHECK("mc position", a->line == 3 && a->col == 5);
    CHECK("mc metric name", !strcmp(keel_cap_metric_name(a), "acc_norm") && keel_cap_higher_is_better(a));
    CHECK("ppl", p->kind == KEEL_CAP_PERPLEXITY && p->task == KEEL_CAP_TASK_TEXT && p->window == 256 &&
                     p->max_drop_rel && p->max_drop == 0.05 && p->has_max && p->max == 40 && p->decide == -1);
    CHECK("ppl metric", !strcmp(keel_cap_metric_name(p), "ppl") && !keel_cap_higher_is_better(p));
    CHECK("em", e->kind == KEEL_CAP_EXACT_MATCH && e->task == KEEL_CAP_TASK_JSONL && !strcmp(e->data, "math \"x\".jsonl") &&
                    e->max_new_tokens == 16 && e->chat == 0 && e->norm_case && e->norm_punct && !e->norm_space &&
                    e->extract && !strcmp(e->extract, "answer: (\\d+)") && e->has_min && e->min == 0.25);
    CHECK("probe", q->kind == KEEL_CAP_PROBE && q->pattern && !strcmp(q->pattern, "(?i)^i (can't|cannot)") &&
                       !q->expect_match && q->max_drop_rel && q->max_drop == 0.125 && q->decide == KEEL_CAP_DECIDE_POINT &&
                       q->max_new_tokens == 32 && q->chat == -1);
    CHECK("names", !strcmp(keel_cap_kind_name(KEEL_CAP_PROBE), "probe") && !strcmp(keel_cap_task_name(KEEL_CAP_TASK_HELLASWAG), "hellaswag"));
    roundtrip("round trip full suite", &s);
    keel_cap_suite c;
    CHECK("copy", keel_cap_suite_copy(&c, &s, &err) == KEEL_OK && keel_cap_suite_equal(&s, &c));
    // any field changed makes them unequal
    c.v[1].max_drop = 0.06;
    CHECK("unequal max_drop", !keel_cap_suite_equal(&s, &c));
    c.v[1].max_drop = 0.05;
    c.v[2].norm_space = true;
    CHECK("unequal normalize", !keel_cap_suite_equal(&s, &c));
    c.v[2].norm_space = false;
    CHECK("equal again", keel_cap_suite_equal(&s, &c));
    roundtrip("round trip copy", &c);
    keel_cap_suite_free(&c);
    keel_cap_suite_free(&s);

    // defaults; a null value is the default
    st = load("capabilities:\n  - name: x\n    type: exact_match\n    data: d.jsonl\n    max_new_tokens:\n    chat: ~\n", &s, &err);
    CHECK("defaults parse", st == KEEL_OK);
    if (!st) {
        const keel_cap_spec *d = &s.v[0];
        CHECK("defaults", d->task == KEEL_CAP_TASK_JSONL && d->limit == 0 && d->max_new_tokens == 32 && d->chat == -1 &&
                              !d->norm_case && !d->norm_space && !d->norm_punct && !d->extract && !d->has_max_drop &&
                              !d->has_min && !d->has_max && d->decide == -1);
        roundtrip("round trip defaults", &s);
        keel_cap_suite_free(&s);
    }
    // perplexity: .txt means task text, .jsonl stays jsonl, window 512 by default
    st = load("capabilities:\n  - {name: a, type: perplexity, data: a.txt}\n  - {name: b, type: perplexity, data: b.jsonl}\n", &s, &err);
    CHECK("flow mappings", st == KEEL_OK && s.n == 2 && s.v[0].task == KEEL_CAP_TASK_TEXT && s.v[1].task == KEEL_CAP_TASK_JSONL &&
                               s.v[0].window == 512);
    if (!st) keel_cap_suite_free(&s);
    // relative max_drop values that do not survive naive *100 still read back equal
    st = load("capabilities:\n  - {name: a, type: probe, data: a, pattern: x, max_drop: 0.7%}\n"
              "  - {name: b, type: probe, data: a, pattern: x, max_drop: 29%}\n"
              "  - {name: c, type: probe, data: a, pattern: x, max_drop: 0.3333333333333333%}\n", &s, &err);
    CHECK("percent parse", st == KEEL_OK);
    if (!st) {
        roundtrip("round trip percentages", &s);
        keel_cap_suite_free(&s);
    }
    // a job-style list of zero capabilities writes as []
    keel_cap_suite empty = {0};
    keel_buf b = {0};
    CHECK("empty to_yaml", keel_cap_suite_to_yaml(&empty, &b, &err) == KEEL_OK && keel_buf_append(&b, "", 1) &&
                               !strcmp(b.data, "capabilities: []\n"));
    free(b.data);
}

static void test_errors(void) {
    const char *h = "capabilities:\n  - name: a\n    type: multiple_choice\n    data: d.jsonl\n";
    char buf[1024];
    snprintf(buf, sizeof buf, "%s    metrc: acc\n", h);
    expect_err("unknown key", buf, "s.yaml:5:5: key 'capabilities[0].metrc': unknown key (did you mean 'metric'?)");
    snprintf(buf, sizeof buf, "%s    colour: red\n", h);
    expect_err("unknown key, no suggestion", buf, "s.yaml:5:5: key 'capabilities[0].colour': unknown key\0");
    snprintf(buf, sizeof buf, "%s    limit: many\n", h);
    expect_err("wrong type", buf, "s.yaml:5:12: key 'capabilities[0].limit': expected an integer, got 'many'");
    snprintf(buf, sizeof buf, "%s    limit: -1\n", h);
    expect_err("negative limit", buf, "s.yaml:5:12: key 'capabilities[0].limit': must be in [0,");
    snprintf(buf, sizeof buf, "%s    max_drop: 5%%%%\n", h);
    expect_err("bad percent", buf, "s.yaml:5:15: key 'capabilities[0].max_drop': expected a percentage like 5%, got '5%%'");
    snprintf(buf, sizeof buf, "%s    max_drop: -2%%\n", h);
    expect_err("negative percent", buf, "s.yaml:5:15: key 'capabilities[0].max_drop': percentage must be in [0, 1e6]");
    snprintf(buf, sizeof buf, "%s    max_drop: lots\n", h);
    expect_err("max_drop word", buf, "s.yaml:5:15: key 'capabilities[0].max_drop': expected a number or a percentage like 5%, got 'lots'");
    snprintf(buf, sizeof buf, "%s    max_drop: [1]\n", h);
    expect_err("max_drop list", buf, "s.yaml:5:15: key 'capabilities[0].max_drop': expected a number or a percentage like 5%, got a list");
    snprintf(buf, sizeof buf, "%s    metric: accnorm\n", h);
    expect_err("bad enum", buf, "s.yaml:5:13: key 'capabilities[0].metric': unknown value 'accnorm' (did you mean 'acc_norm'?)");
    snprintf(buf, sizeof buf, "%s    pattern: x\n", h);
    expect_err("key of another type", buf, "s.yaml:5:5: key 'capabilities[0].pattern': only for type probe (this capability is multiple_choice)");
    snprintf(buf, sizeof buf, "%s    window: 64\n", h);
    expect_err("window on mc", buf, "s.yaml:5:5: key 'capabilities[0].window': only for type perplexity");
    snprintf(buf, sizeof buf, "%s    limit: 3\n    limit: 4\n", h);
    expect_err("duplicate key", buf, "s.yaml:6:5: key 'capabilities[0].limit': duplicate key (first set on line 5)");
    snprintf(buf, sizeof buf, "%s    min: 0.5\n    max: 0.2\n", h);
    expect_err("min > max", buf, "s.yaml:6:10: key 'capabilities[0].max': 0.2 is below min (0.5)");
    snprintf(buf, sizeof buf, "%s  - name: a\n    type: perplexity\n    data: p.txt\n", h);
    expect_err("duplicate names", buf, "s.yaml:5:5: key 'capabilities[1].name': duplicate name 'a' (capabilities[0], line 2)");
    expect_err("name charset", "capabilities:\n  - {name: \"a b\", type: probe, data: x, pattern: y}\n",
               "s.yaml:2:12: key 'capabilities[0].name': 'a b': use 1 to 63 of");
    expect_err("type required", "capabilities:\n  - {name: a, data: x}\n", "s.yaml:2:5: key 'capabilities[0].type': required");
    expect_err("type unknown", "capabilities:\n  - {name: a, type: perplexaty, data: x}\n",
               "s.yaml:2:21: key 'capabilities[0].type': unknown value 'perplexaty' (did you mean 'perplexity'?)");
    expect_err("data required", "capabilities:\n  - {name: a, type: perplexity}\n", "s.yaml:2:5: key 'capabilities[0].data': required");
    expect_err("name required", "capabilities:\n  - {type: perplexity, data: x}\n", "s.yaml:2:5: key 'capabilities[0].name': required");
    expect_err("pattern required", "capabilities:\n  - {name: a, type: probe, data: x}\n", "s.yaml:2:5: key 'capabilities[0].pattern': required for a probe");
    expect_err("bad regex", "capabilities:\n  - {name: a, type: probe, data: x, pattern: \"(ab\"}\n",
               "s.yaml:2:46: key 'capabilities[0].pattern': bad regular expression at offset 3");
    expect_err("builtin task on em", "capabilities:\n  - {name: a, type: exact_match, data: x, task: piqa}\n",
               "s.yaml:2:49: key 'capabilities[0].task': piqa is a multiple_choice task (this capability is exact_match)");
    expect_err("text task on mc", "capabilities:\n  - {name: a, type: multiple_choice, data: x, task: text}\n",
               "s.yaml:2:53: key 'capabilities[0].task': text is only for type perplexity");
    expect_err("normalize name", "capabilities:\n  - {name: a, type: exact_match, data: x, normalize: [case, spaces]}\n",
               "s.yaml:2:61: key 'capabilities[0].normalize': unknown value 'spaces'");
    expect_err("max_new_tokens 0", "capabilities:\n  - {name: a, type: exact_match, data: x, max_new_tokens: 0}\n",
               "s.yaml:2:59: key 'capabilities[0].max_new_tokens': must be in [1, 4096], got 0");
    expect_err("entry not a mapping", "capabilities:\n  - arc\n", "s.yaml:2:5: key 'capabilities[0]': expected a mapping");
    expect_err("not a list", "capabilities: 3\n", "s.yaml:1:15: key 'capabilities': expected a list");
    expect_err("empty list", "capabilities: []\n", "s.yaml:1:15: key 'capabilities': the list is empty");
    expect_err("other top key", "capabilites:\n  - {name: a}\n", "s.yaml:1:1: key 'capabilites': unknown key (did you mean 'capabilities'?)");
    expect_err("top duplicate", "capabilities: [{name: a, type: probe, data: x, pattern: y}]\ncapabilities: []\n",
               "s.yaml:2:1: key 'capabilities': duplicate key");
    expect_err("syntax", "capabilities:\n  - {name: a\n", "s.yaml:3:1: YAML syntax error");
    expect_err("empty file", "", "s.yaml: the suite file is empty");
    keel_cap_suite s;
    keel_err err = {0};
    CHECK("missing file", keel_cap_suite_load_file(&s, "/nonexistent/suite.yaml", &err) == KEEL_ERR_IO);
}

static void test_example(void) {
    keel_cap_suite s;
    keel_err err = {0};
    keel_status st = keel_cap_suite_load_file(&s, "examples/suites/general.yaml", &err);
    CHECK("examples/suites/general.yaml parses", st == KEEL_OK);
    if (st) {
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    CHECK("example has 5 capabilities", s.n == 5);
    roundtrip("round trip example", &s);
    keel_cap_suite_free(&s);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        CHECK("mkdtemp", false);
        return test_report();
    }
    test_parse();
    test_errors();
    test_example();
    char p[300];
    snprintf(p, sizeof p, "%s/s.yaml", tmpdir);
    unlink(p);
    rmdir(tmpdir);
    return test_report();
}
