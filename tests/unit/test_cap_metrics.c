// SPDX-License-Identifier: MIT
// test_cap_metrics.c — capability metrics (src/cap/metrics.c): Wilson score
// intervals against independently computed values, the perplexity bootstrap
// (deterministic per seed, covering the point), aggregation of each kind,
// answer normalisation, regex extraction and probes (PCRE2, bad regexes), and
// the bound check in both directions, both decide modes, absolute and
// relative max_drop, min and max.
#include "cap/cap.h"
#include "test.h"

static keel_cap_spec spec_of(keel_cap_kind kind) {
    keel_cap_spec s;
    memset(&s, 0, sizeof s);
    s.name = (char *)"cap";
    s.kind = kind;
    s.chat = -1;
    s.decide = -1;
    s.expect_match = true;
    return s;
}

static void test_wilson(void) {
    // python3: z=1.959964; p=k/n; d=1+z*z/n; c=(p+z*z/(2*n))/d;
    //          h=z*math.sqrt(p*(1-p)/n+z*z/(4*n*n))/d; print(max(0,c-h), min(1,c+h))
    static const struct { int64_t k, n; double lo, hi; } v[] = {
        {0, 10, 0.000000000000, 0.277532803026},
        {5, 10, 0.236593089011, 0.763406910989},
        {10, 10, 0.722467196974, 1.000000000000},
        {412, 1000, 0.381887311046, 0.442786198458},
        {1, 1, 0.206549311792, 1.000000000000},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        double lo, hi;
        keel_wilson(v[i].k, v[i].n, &lo, &hi);
        CHECK_CLOSE("wilson lo", lo, v[i].lo, 1e-9);
        CHECK_CLOSE("wilson hi", hi, v[i].hi, 1e-9);
    }
    double lo, hi;
    keel_wilson(0, 0, &lo, &hi);
    CHECK("n = 0: [0, 1]", lo == 0 && hi == 1);
}

static void test_rates(void) {
    keel_cap_spec s = spec_of(KEEL_CAP_MULTIPLE_CHOICE);
    keel_cap_outcome o[10];
    memset(o, 0, sizeof o);
    for (int i = 0; i < 10; i++) {
        o[i].a = i < 5;   // acc 5/10
        o[i].b = i == 0; // acc_norm 1/10
    }
    keel_cap_result r;
    keel_cap_aggregate(&s, o, 10, 0, &r);
    CHECK("mc names", strcmp(r.name, "cap") == 0 && strcmp(r.kind, "multiple_choice") == 0 &&
                          strcmp(r.metric, "acc") == 0 && strcmp(r.metric2, "acc_norm") == 0);
    CHECK_CLOSE("acc", r.value, 0.5, 1e-12);
    CHECK_CLOSE("acc lo", r.lo, 0.236593089011, 1e-9);
    CHECK_CLOSE("acc hi", r.hi, 0.763406910989, 1e-9);
    CHECK_CLOSE("acc se", r.se, sqrt(0.25 / 10), 1e-12);
    CHECK_CLOSE("acc_norm as metric2", r.value2, 0.1, 1e-12);
    CHECK("n, higher is better", r.n == 10 && r.higher_is_better && r.n_tokens == 0);
    s.acc_norm = true;
    keel_cap_aggregate(&s, o, 10, 0, &r);
    CHECK("acc_norm headline", strcmp(r.metric, "acc_norm") == 0 && strcmp(r.metric2, "acc") == 0);
    CHECK_CLOSE("acc_norm", r.value, 0.1, 1e-12);
    CHECK_CLOSE("acc metric2", r.value2, 0.5, 1e-12);

    s = spec_of(KEEL_CAP_PROBE);
    keel_cap_aggregate(&s, o, 10, 0, &r);
    CHECK("probe pass_rate", strcmp(r.metric, "pass_rate") == 0 && r.value == 0.5 && r.metric2[0] == 0);
    s = spec_of(KEEL_CAP_EXACT_MATCH);
    keel_cap_aggregate(&s, o, 0, 0, &r);
    CHECK("no items: 0 in [0, 1]", strcmp(r.metric, "exact_match") == 0 && r.n == 0 && r.value == 0 && r.lo == 0 &&
                                      r.hi == 1);
}

static void test_bootstrap(void) {
    keel_cap_spec s = spec_of(KEEL_CAP_PERPLEXITY);
    enum { N = 40 };
    keel_cap_outcome o[N];
    memset(o, 0, sizeof o);
    double sa = 0;
    int64_t sn = 0;
    for (int i = 0; i < N; i++) {
        o[i].n = 50 + (i * 37) % 90;
        o[i].a = o[i].n * (2.0 + 0.8 * sin(i * 1.3)); // per-document NLL/token 1.2..2.8
        sa += o[i].a;
        sn += o[i].n;
    }
    keel_cap_result r1, r2, r3;
    keel_cap_aggregate(&s, o, N, 7, &r1);
    keel_cap_aggregate(&s, o, N, 7, &r2);
    keel_cap_aggregate(&s, o, N, 8, &r3);
    CHECK("ppl names", strcmp(r1.metric, "ppl") == 0 && strcmp(r1.kind, "perplexity") == 0 && !r1.higher_is_better);
    CHECK_CLOSE("ppl = exp(sum nll / sum n)", r1.value, exp(sa / (double)sn), 1e-9);
    CHECK("n docs, n tokens", r1.n == N && r1.n_tokens == sn);
    CHECK("bootstrap deterministic per seed", r1.lo == r2.lo && r1.hi == r2.hi && r1.se == r2.se);
    CHECK("another seed, another interval", r1.lo != r3.lo || r1.hi != r3.hi);
    CHECK("CI covers the point", r1.lo < r1.value && r1.value < r1.hi);
    CHECK("CI width plausible", r1.hi - r1.lo > 0.05 && r1.hi - r1.lo < 3);
    CHECK("se > 0 and about a quarter of the CI width", r1.se > 0 && r1.se < (r1.hi - r1.lo) / 2.5 &&
                                                        r1.se > (r1.hi - r1.lo) / 6);
    // one document: no spread
    keel_cap_aggregate(&s, o, 1, 7, &r1);
    CHECK_CLOSE("one doc value", r1.value, exp(o[0].a / (double)o[0].n), 1e-9);
    CHECK("one doc: degenerate CI", r1.lo == r1.value && r1.hi == r1.value && r1.se < 1e-9);
}

static void test_normalize(void) {
    keel_cap_spec s = spec_of(KEEL_CAP_EXACT_MATCH);
    char a[64];
    strcpy(a, "  The  ANSWER:\tis\n 42.  ");
    CHECK("nothing set: unchanged", strcmp(keel_cap_normalize(&s, a), "  The  ANSWER:\tis\n 42.  ") == 0);
    s.norm_case = true;
    CHECK("case", strcmp(keel_cap_normalize(&s, a), "  the  answer:\tis\n 42.  ") == 0);
    s.norm_space = true;
    CHECK("case + space", strcmp(keel_cap_normalize(&s, a), "the answer: is 42.") == 0);
    strcpy(a, "  The  ANSWER:\tis\n 42.  ");
    s.norm_case = false;
    CHECK("space only", strcmp(keel_cap_normalize(&s, a), "The ANSWER: is 42.") == 0);
    strcpy(a, "  The  ANSWER:\tis\n 42.  ");
    s.norm_case = s.norm_punct = true;
    CHECK("all three", strcmp(keel_cap_normalize(&s, a), "the answer is 42") == 0);
    strcpy(a, "Caf\xc3\xa9 , \xc3\x89t\xc3\xa9 !");
    CHECK("non-ASCII kept, punctuation-only word gone", strcmp(keel_cap_normalize(&s, a), "caf\xc3\xa9 \xc3\x89t\xc3\xa9") == 0);
    s.norm_space = false;
    strcpy(a, "a-b c");
    CHECK("punct only", strcmp(keel_cap_normalize(&s, a), "ab c") == 0);
}

static void test_extract_probe(void) {
    keel_cap_spec s = spec_of(KEEL_CAP_EXACT_MATCH);
    keel_err e = {0};
    char *out = NULL;
    CHECK("no extract: the whole text", keel_cap_extract(&s, "hello", &out, &e) == KEEL_OK && out &&
                                            strcmp(out, "hello") == 0);
    keel_free(out);
    s.extract = (char *)"answer is (\\d+)";
    CHECK("group 1", keel_cap_extract(&s, "so the answer is 42.", &out, &e) == KEEL_OK && out && strcmp(out, "42") == 0);
    keel_free(out);
    CHECK("no match -> NULL", keel_cap_extract(&s, "no idea", &out, &e) == KEEL_OK && out == NULL);
    s.extract = (char *)"\\d+";
    CHECK("whole match without a group", keel_cap_extract(&s, "x 7 y 8", &out, &e) == KEEL_OK && out &&
                                             strcmp(out, "7") == 0);
    keel_free(out);
    s.extract = (char *)"(\\w)\\w*";
    CHECK("UTF mode: \\w matches one code point", keel_cap_extract(&s, "\xc3\xa9t\xc3\xa9", &out, &e) == KEEL_OK &&
                                                      out && strcmp(out, "\xc3\xa9") == 0);
    keel_free(out);
    s.extract = (char *)"x(?:(a)|b)";
    CHECK("unset group 1 -> empty", keel_cap_extract(&s, "xb", &out, &e) == KEEL_OK && out && out[0] == 0);
    keel_free(out);
    s.extract = (char *)"(\\d+";
    keel_status st = keel_cap_extract(&s, "1", &out, &e);
    CHECK("bad regex: INVALID naming the capability and offset",
          st == KEEL_ERR_INVALID && e.code == KEEL_ERR_INVALID && strstr(e.msg, "capability 'cap'") &&
              strstr(e.msg, "offset 4") && out == NULL);
    s.extract = (char *)"(\\d+)";
    CHECK("invalid UTF-8 subject tolerated", keel_cap_extract(&s, "a\xff 12", &out, &e) == KEEL_OK && out &&
                                                 strcmp(out, "12") == 0);
    keel_free(out);

    s = spec_of(KEEL_CAP_PROBE);
    bool m = true;
    s.pattern = (char *)"(?i)i cannot";
    CHECK("probe match", keel_cap_probe_match(&s, "Sorry, I CANNOT help.", &m, &e) == KEEL_OK && m);
    CHECK("probe no match", keel_cap_probe_match(&s, "Sure, here it is.", &m, &e) == KEEL_OK && !m);
    CHECK("probe NULL text", keel_cap_probe_match(&s, NULL, &m, &e) == KEEL_OK && !m);
    s.pattern = (char *)"[a-";
    CHECK("bad probe pattern", keel_cap_probe_match(&s, "x", &m, &e) == KEEL_ERR_INVALID && strstr(e.msg, "pattern") &&
                                   strstr(e.msg, "offset"));
    s.pattern = NULL;
    CHECK("probe without a pattern", keel_cap_probe_match(&s, "x", &m, &e) == KEEL_ERR_INVALID);
}

static keel_cap_result res(double v, double lo, double hi, bool hib) {
    keel_cap_result r;
    memset(&r, 0, sizeof r);
    r.value = v;
    r.lo = lo;
    r.hi = hi;
    r.higher_is_better = hib;
    return r;
}

static void test_bounds(void) {
    char why[256];
    keel_cap_spec s = spec_of(KEEL_CAP_MULTIPLE_CHOICE);
    s.name = (char *)"arc_easy";
    s.has_max_drop = true;
    s.max_drop = 0.03;
    keel_cap_result base = res(0.473, 0.44, 0.51, true);
    keel_cap_result now = res(0.412, 0.360, 0.466, true);
    CHECK("acc dropped 0.061 > 0.03 (point): violation", !keel_cap_bounds_ok(&s, KEEL_CAP_DECIDE_POINT, &base, &now, why, sizeof why));
    CHECK("why line", strcmp(why, "arc_easy acc 0.412 [0.360, 0.466] dropped 0.061 from base 0.473 (max_drop 0.03, point)") == 0);
    if (strcmp(why, "arc_easy acc 0.412 [0.360, 0.466] dropped 0.061 from base 0.473 (max_drop 0.03, point)"))
        fprintf(stderr, "  why: %s\n", why);
    CHECK("CI: hi 0.466 >= 0.443 -> holds", keel_cap_bounds_ok(&s, KEEL_CAP_DECIDE_CI, &base, &now, why, sizeof why));
    s.decide = KEEL_CAP_DECIDE_CI;
    CHECK("spec decide overrides the default", keel_cap_bounds_ok(&s, KEEL_CAP_DECIDE_POINT, &base, &now, why, sizeof why));
    now = res(0.40, 0.36, 0.43, true);
    CHECK("CI wholly below: violation", !keel_cap_bounds_ok(&s, KEEL_CAP_DECIDE_POINT, &base, &now, why, sizeof why) &&
                                            strstr(why, "(max_drop 0.03, ci)"));
    s.decide = -1;
    now = res(0.46, 0.40, 0.52, true);
    CHECK("small drop holds (point)", keel_cap_bounds_ok(&s, KEEL_CAP_DECIDE_POINT, &base, &now, why, sizeof why) &&
                                          why[0] == 0);
    CHECK("no base: max_drop not applied", keel_cap_bounds_ok(&s, KEEL_CAP_DECIDE_POINT, NULL, &now, why, sizeof why));
    // relative: 5% of 0.473 = 0.02365
    s.max_drop_rel = true;
    s.max_drop = 0.05;
    now = res(0.452, 0.40, 0.50, true);
    CHECK("rel: drop 0.021 < 0.0237 holds", keel_cap_bounds_ok(&s, KEEL_CAP_DECIDE_POINT, &base, &now, why, sizeof why));
    now = res(0.447, 0.40, 0.50, true);
    CHECK("rel: drop 0.026 > 0.0237 violates", !keel_cap_bounds_ok(&s, KEEL_CAP_DECIDE_POINT, &base, &now, why, sizeof why) &&
                                                   strstr(why, "(max_drop 5%, point)"));
    s.max_drop_rel = false;
    s.max_drop = 0.03;

    // perplexity: a drop is a rise
    keel_cap_spec p = spec_of(KEEL_CAP_PERPLEXITY);
    p.name = (char *)"wiki";
    p.has_max_drop = true;
    p.max_drop = 0.5;
    base = res(10.0, 9.5, 10.5, false);
    now = res(10.8, 10.2, 11.4, false);
    CHECK("ppl rose 0.8 > 0.5 (point)", !keel_cap_bounds_ok(&p, KEEL_CAP_DECIDE_POINT, &base, &now, why, sizeof why) &&
                                            strstr(why, "wiki ppl 10.800") && strstr(why, "rose 0.800 from base 10.000"));
    CHECK("ppl CI lo 10.2 <= 10.5 holds", keel_cap_bounds_ok(&p, KEEL_CAP_DECIDE_CI, &base, &now, why, sizeof why));
    now = res(9.0, 8.5, 9.6, false);
    CHECK("ppl fell: holds", keel_cap_bounds_ok(&p, KEEL_CAP_DECIDE_POINT, &base, &now, why, sizeof why));
    now = res(11.0, 10.6, 11.4, false);
    CHECK("ppl CI wholly above: violation", !keel_cap_bounds_ok(&p, KEEL_CAP_DECIDE_CI, &base, &now, why, sizeof why));
    p.max_drop_rel = true;
    p.max_drop = 0.1; // 10% of 10 = 1.0
    now = res(10.8, 10.2, 11.4, false);
    CHECK("ppl rel 10% holds", keel_cap_bounds_ok(&p, KEEL_CAP_DECIDE_POINT, &base, &now, why, sizeof why));
    p.has_max_drop = false;
    p.has_max = true;
    p.max = 10.5;
    CHECK("ppl max violated (point)", !keel_cap_bounds_ok(&p, KEEL_CAP_DECIDE_POINT, &base, &now, why, sizeof why) &&
                                          strstr(why, "above max 10.5 (point)"));
    CHECK("ppl max holds under CI (lo 10.2)", keel_cap_bounds_ok(&p, KEEL_CAP_DECIDE_CI, &base, &now, why, sizeof why));

    // min on a rate, and two violations in one line
    s.has_min = true;
    s.min = 0.45;
    base = res(0.473, 0.44, 0.51, true);
    now = res(0.40, 0.36, 0.44, true);
    CHECK("min and max_drop both violated", !keel_cap_bounds_ok(&s, KEEL_CAP_DECIDE_POINT, &base, &now, why, sizeof why) &&
                                                strstr(why, "dropped") && strstr(why, "; below min 0.45 (point)") &&
                                                !strchr(why, '\n'));
    s.has_max_drop = false;
    CHECK("min under CI: hi 0.44 < 0.45 violates", !keel_cap_bounds_ok(&s, KEEL_CAP_DECIDE_CI, &base, &now, why, sizeof why));
    now = res(0.40, 0.36, 0.46, true);
    CHECK("min under CI: hi 0.46 holds", keel_cap_bounds_ok(&s, KEEL_CAP_DECIDE_CI, &base, &now, why, sizeof why));
    char tiny[8];
    now = res(0.1, 0.05, 0.2, true);
    CHECK("short why buffer truncates safely", !keel_cap_bounds_ok(&s, KEEL_CAP_DECIDE_POINT, &base, &now, tiny, sizeof tiny) &&
                                                   strlen(tiny) < sizeof tiny);
    CHECK("NULL why", !keel_cap_bounds_ok(&s, KEEL_CAP_DECIDE_POINT, &base, &now, NULL, 0));
}

int main(void) {
    test_wilson();
    test_rates();
    test_bootstrap();
    test_normalize();
    test_extract_probe();
    test_bounds();
    return test_report();
}
