// test_core.c — half-precision conversion, RNG determinism, UTF-8 rules, buffers.
#include "core/core.h"
#include "test.h"

static void test_half(void) {
    // every finite fp16 value round-trips exactly through fp32
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00) continue; // inf/nan
        float f = keel_fp16_to_fp32((uint16_t)h);
        if (keel_fp32_to_fp16(f) != h) bad++;
    }
    CHECK("fp16 round trip", bad == 0);
    CHECK_CLOSE("fp16 1.0", keel_fp16_to_fp32(0x3c00), 1.0, 0);
    CHECK_CLOSE("fp16 -2.5", keel_fp16_to_fp32(0xc100), -2.5, 0);
    CHECK_CLOSE("fp16 min subnormal", keel_fp16_to_fp32(0x0001), 5.960464477539063e-08, 0);
    CHECK("fp16 65504", keel_fp32_to_fp16(65504.0f) == 0x7bff);
    CHECK("fp16 overflow -> inf", keel_fp32_to_fp16(70000.0f) == 0x7c00);
    CHECK("fp16 ties to even", keel_fp32_to_fp16(1.0f + 1.0f / 2048) == 0x3c00);
    CHECK("bf16 1.0", keel_fp32_to_bf16(1.0f) == 0x3f80);
    CHECK_CLOSE("bf16 back", keel_bf16_to_fp32(0x4049), 3.140625, 0);
    CHECK("bf16 rounds to nearest even", keel_fp32_to_bf16(1.00390625f) == 0x3f80);
}

static void test_rng(void) {
    keel_rng a, b;
    keel_rng_seed(&a, 42);
    keel_rng_seed(&b, 42);
    int same = 1;
    for (int i = 0; i < 1000; i++) same &= keel_rng_u64(&a) == keel_rng_u64(&b);
    CHECK("rng deterministic", same);
    double s = 0, s2 = 0;
    for (int i = 0; i < 100000; i++) {
        double x = keel_rng_normal(&a);
        s += x;
        s2 += x * x;
    }
    CHECK_CLOSE("normal mean", s / 1e5, 0.0, 0.02);
    CHECK_CLOSE("normal var", s2 / 1e5, 1.0, 0.02);
}

static void test_utf8(void) {
    size_t at = 99;
    CHECK("ascii valid", keel_utf8_valid("hello", 5, NULL));
    CHECK("2-byte valid", keel_utf8_valid("\xc3\xa9", 2, NULL));
    CHECK("4-byte valid", keel_utf8_valid("\xf0\x9f\x98\x80", 4, NULL));
    CHECK("overlong rejected", !keel_utf8_valid("a\xc0\x80", 3, &at) && at == 1);
    CHECK("surrogate rejected", !keel_utf8_valid("\xed\xa0\x80", 3, NULL));
    CHECK("truncated rejected", !keel_utf8_valid("\xe2\x82", 2, NULL));
    CHECK("lone continuation rejected", !keel_utf8_valid("\x80", 1, NULL));
    char out[4];
    uint32_t cp;
    size_t n = keel_utf8_encode(0x1F600, out);
    CHECK("encode/decode", n == 4 && keel_utf8_decode(out, &cp) == 4 && cp == 0x1F600);
}

static void test_buf(void) {
    keel_buf b = {0};
    CHECK("printf", keel_buf_printf(&b, "%d-%s", 7, "x") && strcmp(b.data, "7-x") == 0);
    for (int i = 0; i < 1000; i++) keel_buf_appends(&b, "ab");
    CHECK("grow", b.len == 2003 && b.data[b.len] == 0);
    free(b.data);
    keel_mem_fail_after(1);
    CHECK("injected OOM", keel_malloc(10) == NULL);
    void *p = keel_malloc(10);
    CHECK("then fine", p != NULL);
    free(p);
}

int main(void) {
    test_half();
    test_rng();
    test_utf8();
    test_buf();
    return test_report();
}
