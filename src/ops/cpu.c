// SPDX-License-Identifier: MIT
// cpu.c — which SIMD instruction sets the kernels may use, read once with
// CPUID/XGETBV. One place for every ops/ file instead of
// __builtin_cpu_supports, whose accepted feature strings differ between
// compilers (clang 14 rejects "f16c" and "avx512bf16"). A feature counts only
// when the OS also saves its register state (XCR0: YMM for AVX*, opmask and
// ZMM for AVX-512). KEEL_NO_SIMD=1 in the environment turns everything off
// (portable C paths, for tests and bug hunts). Intel SDM vol. 2A, CPUID.
#include "ops/ops.h"

#include <stdatomic.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define KEEL_CPUID 1
#endif
#if defined(KEEL_CPUID) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#ifdef KEEL_CPUID
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static unsigned detect(void) {
    unsigned a, b, c, d, f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const bool osxsave = c & (1u << 27);
    const bool fma = c & (1u << 12), f16c = c & (1u << 29), avx = c & (1u << 28);
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    const bool ymm_os = (xcr0 & 0x6) == 0x6;          // SSE + AVX state
    const bool zmm_os = ymm_os && (xcr0 & 0xe0) == 0xe0; // opmask + ZMM_Hi256 + Hi16_ZMM
    if (!avx || !ymm_os) return 0;
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned leaf7_b = b, leaf7_c = c;
    if ((leaf7_b & (1u << 5)) && fma && f16c) f |= KEEL_CPU_AVX2; // AVX2 + FMA + F16C together
    if (zmm_os && (f & KEEL_CPU_AVX2) && (leaf7_b & (1u << 16)) && (leaf7_b & (1u << 30)) &&
        (leaf7_b & (1u << 31)))
        f |= KEEL_CPU_AVX512; // F + BW + VL
    if ((f & KEEL_CPU_AVX512) && (leaf7_c & (1u << 11))) f |= KEEL_CPU_AVX512_VNNI;
    const unsigned leaf7_d = d;
    __cpuid_count(7, 1, a, b, c, d);
    if ((f & KEEL_CPU_AVX512) && (a & (1u << 5))) f |= KEEL_CPU_AVX512_BF16;
    // AMX-TILE + AMX-BF16 with XTILECFG/XTILEDATA in XCR0. Linux hands out the
    // 8 KiB tile state only to processes that ask for it (arch_prctl
    // ARCH_REQ_XCOMP_PERM, kernel 5.16+, process-wide); without that the
    // first tile instruction raises SIGILL. Documentation/arch/x86/xstate.rst
#ifdef __linux__
    const bool amx_os = (xcr0 & 0x60000) == 0x60000;
    if ((f & KEEL_CPU_AVX512_BF16) && amx_os && (leaf7_d & (1u << 24)) && (leaf7_d & (1u << 22)) &&
        syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0)
        f |= KEEL_CPU_AMX_BF16;
#endif
    return f;
}
#endif

static atomic_int cached = -1;
static atomic_uint allowed = ~0u;

unsigned keel_cpu_features(void) {
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
        unsigned f = 0;
#ifdef KEEL_CPUID
        const char *e = getenv("KEEL_NO_SIMD");
        if (!e || !*e || !strcmp(e, "0")) f = detect();
#endif
        v = (int)f;
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return (unsigned)v & atomic_load_explicit(&allowed, memory_order_relaxed);
}

unsigned keel_cpu_restrict(unsigned mask) {
    return atomic_exchange_explicit(&allowed, mask, memory_order_relaxed);
}
