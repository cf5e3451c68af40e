// SPDX-License-Identifier: MIT
// sample.c — token sampling from logits: greedy (temp <= 0), else temperature,
// then top-k, then top-p (nucleus: the smallest set of the most likely tokens
// whose probability reaches p, https://arxiv.org/abs/1904.09751), then one
// draw from the renormalised distribution with the sampler's own seeded
// keel_rng. Ties sort by token id, so a seed always gives the same tokens.
#include "core/core.h"
#include "ops/ops.h"

#include <math.h>

typedef struct cand {
    float logit;
    int32_t id;
} cand;

struct keel_sampler {
    keel_sampler_params p;
    keel_rng rng;
    cand *c;      // (cap) candidates, grown once to n_vocab
    int32_t cap;
};

keel_sampler_params keel_sampler_default_params(void) {
    keel_sampler_params p;
    p.temp = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.seed = 42;
    return p;
}

keel_sampler *keel_sampler_init(const keel_sampler_params *p) {
    keel_sampler *s = keel_calloc(1, sizeof *s);
    if (!s) return NULL;
    s->p = p ? *p : keel_sampler_default_params();
    keel_rng_seed(&s->rng, s->p.seed);
    return s;
}

void keel_sampler_free(keel_sampler *s) {
    if (!s) return;
    keel_free(s->c);
    keel_free(s);
}

// Descending logit, then ascending id: a total order, so qsort is deterministic.
static int cmp_cand(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

int32_t keel_sampler_sample(keel_sampler *s, const float *logits, int32_t n_vocab) {
    if (!s || !logits || n_vocab <= 0) return -1;
    const keel_sampler_params *p = &s->p;
    if (p->temp <= 0.0f || p->top_k == 1) return (int32_t)keel_op_argmax(logits, n_vocab);
    if (s->cap < n_vocab) {
        cand *c = keel_realloc(s->c, sizeof(cand) * (size_t)n_vocab);
        if (!c) return (int32_t)keel_op_argmax(logits, n_vocab); // out of memory: degrade to greedy
        s->c = c;
        s->cap = n_vocab;
    }
    cand *c = s->c;
    int32_t n = n_vocab;
    for (int32_t i = 0; i < n; i++) {
        c[i].id = i;
        c[i].logit = isnan(logits[i]) ? -INFINITY : logits[i];
    }
    bool use_k = p->top_k > 0 && p->top_k < n, use_p = p->top_p < 1.0f;
    if (use_k || use_p) {
        qsort(c, (size_t)n, sizeof *c, cmp_cand);
        if (use_k) n = p->top_k;
    }
    // softmax(logit / temp) over the kept candidates, in double
    float mx = c[0].logit;
    for (int32_t i = 1; i < n; i++)
        if (c[i].logit > mx) mx = c[i].logit;
    if (mx == -INFINITY) return c[0].id;
    double total = 0.0;
    double inv_t = 1.0 / (double)p->temp;
    // the weights are recomputed below instead of stored: c holds floats only
    for (int32_t i = 0; i < n; i++) total += exp(((double)c[i].logit - mx) * inv_t);
    if (use_p) {
        double want = (double)p->top_p * total, cum = 0.0;
        int32_t keep = 0;
        while (keep < n) {
            cum += exp(((double)c[keep].logit - mx) * inv_t);
            keep++;
            if (cum >= want) break;
        }
        n = keep;
        total = cum;
    }
    double u = keel_rng_uniform_d(&s->rng) * total, cum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        cum += exp(((double)c[i].logit - mx) * inv_t);
        if (u < cum) return c[i].id;
    }
    return c[n - 1].id; // rounding at the very end of the range
}
