// SPDX-License-Identifier: MIT
// rng.c — xoshiro256** seeded by splitmix64: fast, seedable, and
// bit-identical across platforms and thread counts.
#include "core.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void keel_rng_seed(keel_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t keel_rng_u64(keel_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

float keel_rng_uniform(keel_rng *r) { return (float)(keel_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }
double keel_rng_uniform_d(keel_rng *r) { return (double)(keel_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

float keel_rng_normal(keel_rng *r) {
    double u1 = keel_rng_uniform_d(r), u2 = keel_rng_uniform_d(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
