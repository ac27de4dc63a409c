// Software prefetch for the GEMM packing routines: Swift has no prefetch intrinsic, and a
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

#endif
