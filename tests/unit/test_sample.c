// SPDX-License-Identifier: MIT
// test_sample.c — keel_sampler: greedy is argmax, top-k 1 is argmax at any
// temperature, a seed reproduces its draws, and the empirical frequencies of
// many draws match softmax(logits / temp) after top-k / top-p truncation.
#include "keel.h"
#include "test.h"

#include <math.h>

enum { N_DRAWS = 40000 };

// Draw N_DRAWS tokens and compare the frequencies with want (n entries).
static void check_freq(const char *what, keel_sampler_params p, const float *lg, int n, const double *want) {
    keel_sampler *s = keel_sampler_init(&p);
    int count[16] = {0};
    for (int i = 0; i < N_DRAWS; i++) {
        int32_t id = keel_sampler_sample(s, lg, n);
        if (id >= 0 && id < n) count[id]++;
    }
    double worst = 0.0;
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs((double)count[i] / N_DRAWS - want[i]));
    CHECK_CLOSE(what, worst, 0.0, 0.012); // ~5 sigma at p = 0.5
    keel_sampler_free(s);
}

static void softmax_d(const float *lg, int n, double temp, double *out) {
    double mx = lg[0], z = 0.0;
    for (int i = 1; i < n; i++) mx = fmax(mx, lg[i]);
    for (int i = 0; i < n; i++) z += out[i] = exp((lg[i] - mx) / temp);
    for (int i = 0; i < n; i++) out[i] /= z;
}

int main(void) {
    const float lg[5] = {1.0f, 2.0f, 0.5f, -1.0f, 3.0f};
    keel_sampler_params p = keel_sampler_default_params();
    CHECK("defaults sample", p.temp > 0 && p.top_k > 0 && p.top_p <= 1.0f);

    p.temp = 0.0f;
    keel_sampler *s = keel_sampler_init(&p);
    CHECK("greedy is argmax", keel_sampler_sample(s, lg, 5) == 4);
    keel_sampler_free(s);
    p.temp = 5.0f;
    p.top_k = 1;
    s = keel_sampler_init(&p);
    int ok = 1;
    for (int i = 0; i < 100; i++) ok &= keel_sampler_sample(s, lg, 5) == 4;
    CHECK("top_k 1 at temp 5 is argmax", ok);
    keel_sampler_free(s);

    // reproducible draws
    p.temp = 1.0f, p.top_k = 0, p.top_p = 1.0f, p.seed = 7;
    keel_sampler *a = keel_sampler_init(&p), *b = keel_sampler_init(&p);
    p.seed = 8;
    keel_sampler *c = keel_sampler_init(&p);
    int same = 1, differ = 0;
    for (int i = 0; i < 200; i++) {
        int32_t x = keel_sampler_sample(a, lg, 5), y = keel_sampler_sample(b, lg, 5), z = keel_sampler_sample(c, lg, 5);
        same &= x == y;
        differ |= x != z;
    }
    CHECK("same seed, same draws", same);
    CHECK("another seed, other draws", differ);
    keel_sampler_free(a), keel_sampler_free(b), keel_sampler_free(c);

    double want[5];
    p.seed = 123;
    softmax_d(lg, 5, 1.0, want);
    check_freq("frequencies at temp 1", p, lg, 5, want);
    p.temp = 0.5f;
    softmax_d(lg, 5, 0.5, want);
    check_freq("frequencies at temp 0.5", p, lg, 5, want);
    p.temp = 2.0f;
    softmax_d(lg, 5, 2.0, want);
    check_freq("frequencies at temp 2", p, lg, 5, want);

    // top-k 2: only ids 4 and 1, in the ratio e^3 : e^2
    p.temp = 1.0f, p.top_k = 2;
    double w2[5] = {0, 1.0 / (1.0 + exp(1.0)), 0, 0, exp(1.0) / (1.0 + exp(1.0))};
    check_freq("top-k 2", p, lg, 5, w2);

    // top-p: probabilities 0.5, 0.3, 0.15, 0.05; p = 0.7 keeps the first two
    const float lp[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    p.top_k = 0, p.top_p = 0.7f;
    double w3[4] = {0.625, 0.375, 0, 0};
    check_freq("top-p 0.7", p, lp, 4, w3);
    p.top_p = 0.85f; // 0.8 < 0.85: the third joins
    double w4[4] = {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0};
    check_freq("top-p 0.85", p, lp, 4, w4);
    p.top_p = 0.01f; // always at least one token
    double w5[4] = {1, 0, 0, 0};
    check_freq("top-p tiny keeps the best", p, lp, 4, w5);

    // NaN logits are never drawn; bad arguments give -1
    const float ln[3] = {NAN, 0.0f, NAN};
    p.top_p = 1.0f;
    s = keel_sampler_init(&p);
    ok = 1;
    for (int i = 0; i < 100; i++) ok &= keel_sampler_sample(s, ln, 3) == 1;
    CHECK("NaN never drawn", ok);
    CHECK("bad arguments", keel_sampler_sample(s, NULL, 3) == -1 && keel_sampler_sample(s, ln, 0) == -1 &&
                               keel_sampler_sample(NULL, ln, 3) == -1);
    keel_sampler_free(s);
    keel_sampler_free(NULL);
    return test_report();
}
