// The CPU's feature bits for choosing the kernels' instruction set at start-up: Swift has no
// CPUID or XGETBV intrinsic. Static inline one-liners, compiled into the Swift code that calls
// them; no library to link. On other architectures they report no features.
#ifndef SWIFTDDP_CCPUFEATURES_H
#define SWIFTDDP_CCPUFEATURES_H

#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/// CPUID leaf `leaf`, sub-leaf `subleaf`: writes EAX, EBX, ECX, EDX to `registers[0...3]`
/// (all zero when the leaf is past the highest one the CPU reports).
static inline void ddp_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t registers[4]) {
    if (!__get_cpuid_count(leaf, subleaf, &registers[0], &registers[1], &registers[2], &registers[3])) {
        registers[0] = registers[1] = registers[2] = registers[3] = 0;
    }
}

/// The extended control register `index` (0: XCR0, which register states the OS saves and
/// restores). Only valid when CPUID reports OSXSAVE (leaf 1, ECX bit 27).
static inline uint64_t ddp_xgetbv(uint32_t index) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(index));
    return ((uint64_t)edx << 32) | eax;
}
#else
static inline void ddp_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t registers[4]) {
    (void)leaf; (void)subleaf;
    registers[0] = registers[1] = registers[2] = registers[3] = 0;
}

static inline uint64_t ddp_xgetbv(uint32_t index) { (void)index; return 0; }
#endif

#endif
