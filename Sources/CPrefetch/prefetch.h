// Memory hints Swift cannot express: software prefetch for the GEMM packing routines, and the
// store fence after streaming stores. Swift has no intrinsic for them, and a
// `static inline` C function is compiled with the Swift code that calls it and inlined there
// (one prefetch instruction, no call).
#ifndef SWIFTDDP_CPREFETCH_H
#define SWIFTDDP_CPREFETCH_H

/// Asks the CPU to bring the cache line holding `address` into L2 (and the cache levels beyond)
/// for a read that comes soon; never faults, whatever the address.
static inline void ddp_prefetch_l2(const void *address) {
    __builtin_prefetch(address, 0, 2);
}

/// Asks the CPU to bring the cache line holding `address` into L1 for a write that comes soon
/// (and a read before it); never faults, whatever the address.
static inline void ddp_prefetch_for_write(const void *address) {
    __builtin_prefetch(address, 1, 3);
}

/// Orders earlier streaming (non-temporal) stores before later memory operations, so another
/// thread or process that is told about the data afterwards sees it (`sfence` on x86-64).
static inline void ddp_store_fence(void) {
#if defined(__x86_64__)
    __builtin_ia32_sfence();
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

#endif
