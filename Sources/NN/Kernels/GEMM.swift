import KernelsAVX2

#if canImport(KernelsAVX512)
    import KernelsAVX512
#endif

/// Single-precision matrix multiplication on row-major matrices.
///
/// `C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C`, where `op(X)` is `X` or its transpose.
/// `lda`, `ldb`, `ldc` are the row strides (leading dimensions) of the matrices as stored:
/// A is stored `m×k` (or `k×m` when `transA`), B is stored `k×n` (or `n×k` when `transB`).
/// With `beta == 0`, C is written without being read (it may hold garbage or NaN).
///
/// The fast path is the packed, cache-blocked GEMM of the instruction-set target that
/// `KernelPath.current` names (KernelsAVX512: 8×32 tiles of SIMD16; KernelsAVX2: 6×16 tiles of
/// SIMD8; see Sources/PackedGEMM); this type checks the arguments and dispatches.
public enum GEMM {
    /// The fast path on the kernels of `KernelPath.current`.
    ///
    /// Uses a per-thread packing scratch (allocated on a thread's first call, reused afterwards),
    /// so threads may multiply concurrently.
    ///
    /// - Parameters:
    ///   - c: the output, `m×n` with row stride `ldc` (written; also read when `beta != 0`).
    ///   - a: `op(A)`, stored `m×k` (or `k×m` when `transA`) with row stride `lda` (read).
    ///   - b: `op(B)`, stored `k×n` (or `n×k` when `transB`) with row stride `ldb` (read).
    ///   - m, n, k: the sizes of `op(A)` (m×k) and `op(B)` (k×n); any may be zero.
    ///   - alpha: the product's scale.
    ///   - beta: C's scale; zero means C is not read.
    public static func multiply(
        _ c: UnsafeMutablePointer<Float>, ldc: Int,
        _ a: UnsafePointer<Float>, lda: Int, transA: Bool,
        _ b: UnsafePointer<Float>, ldb: Int, transB: Bool,
        m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0
    ) {
        checkArguments(ldc: ldc, lda: lda, transA: transA, ldb: ldb, transB: transB, m: m, n: n, k: k)
        switch KernelPath.current {
        case .avx512:
            #if canImport(KernelsAVX512)
                KernelsAVX512.PackedGEMM.multiply(
                    c, ldc: ldc, a, lda: lda, transA: transA, b, ldb: ldb, transB: transB,
                    m: m, n: n, k: k, alpha: alpha, beta: beta)
            #else
                unavailableAVX512()
            #endif
        case .avx2, .portable:
            KernelsAVX2.PackedGEMM.multiply(
                c, ldc: ldc, a, lda: lda, transA: transA, b, ldb: ldb, transB: transB,
                m: m, n: n, k: k, alpha: alpha, beta: beta)
        }
    }

    /// The floats of scratch that `pack(_:_:lda:transA:m:k:)` needs for an `m×k` op(A), on every
    /// compiled path (the panel height differs between paths), so a buffer sized once serves any
    /// `KernelPath.current`.
    public static func packedCount(m: Int, k: Int) -> Int {
        precondition(m >= 0 && k >= 0, "GEMM packed sizes must be non-negative, got m \(m), k \(k).")
        var count = KernelsAVX2.PackedGEMM.packedCount(m: m, k: k)
        #if canImport(KernelsAVX512)
            count = max(count, KernelsAVX512.PackedGEMM.packedCount(m: m, k: k))
        #endif
        return count
    }

    /// Packs all of op(A) (`m×k`) once, for several `multiply(_:ldc:packedA:…)` calls with the
    /// same A (a convolution's weight against each sample's columns), on the kernels of
    /// `KernelPath.current`.
    ///
    /// The packed form belongs to the path that packed it: pack and multiply within one kernel
    /// call, without switching `KernelPath.current` in between.
    ///
    /// - dst: `packedCount(m:k:)` floats (written).
    /// - a: `op(A)`, stored `m×k` (or `k×m` when `transA`) with row stride `lda` (read).
    public static func pack(
        _ dst: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, lda: Int, transA: Bool,
        m: Int, k: Int
    ) {
        precondition(m >= 0 && k >= 0, "GEMM packed sizes must be non-negative, got m \(m), k \(k).")
        precondition(
            lda >= max(transA ? m : k, 1),
            "GEMM lda \(lda) is smaller than the stored row length \(transA ? m : k) of A (transA \(transA)).")
        switch KernelPath.current {
        case .avx512:
            #if canImport(KernelsAVX512)
                KernelsAVX512.PackedGEMM.pack(dst, a, lda: lda, transA: transA, m: m, k: k)
            #else
                unavailableAVX512()
            #endif
        case .avx2, .portable:
            KernelsAVX2.PackedGEMM.pack(dst, a, lda: lda, transA: transA, m: m, k: k)
        }
    }

    /// `multiply` with op(A) packed by `pack(_:_:lda:transA:m:k:)` for the same m and k on the
    /// same path: the same blocks in the same order, so the same bits as `multiply` from A itself.
    ///
    /// - packedA: the packed op(A) (read). Other arguments as in `multiply`.
    public static func multiply(
        _ c: UnsafeMutablePointer<Float>, ldc: Int, packedA: UnsafePointer<Float>,
        _ b: UnsafePointer<Float>, ldb: Int, transB: Bool,
        m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0
    ) {
        checkArguments(ldc: ldc, lda: max(k, 1), transA: false, ldb: ldb, transB: transB, m: m, n: n, k: k)
        switch KernelPath.current {
        case .avx512:
            #if canImport(KernelsAVX512)
                KernelsAVX512.PackedGEMM.multiply(
                    c, ldc: ldc, packedA: packedA, b, ldb: ldb, transB: transB,
                    m: m, n: n, k: k, alpha: alpha, beta: beta)
            #else
                unavailableAVX512()
            #endif
        case .avx2, .portable:
            KernelsAVX2.PackedGEMM.multiply(
                c, ldc: ldc, packedA: packedA, b, ldb: ldb, transB: transB,
                m: m, n: n, k: k, alpha: alpha, beta: beta)
        }
    }

    /// The plain triple loop, accumulating in Double: the algorithmic reference for tests and
    /// benchmarks, and a fallback.
    public static func multiplyReference(
        _ c: UnsafeMutablePointer<Float>, ldc: Int,
        _ a: UnsafePointer<Float>, lda: Int, transA: Bool,
        _ b: UnsafePointer<Float>, ldb: Int, transB: Bool,
        m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0
    ) {
        for i in 0 ..< m {
            for j in 0 ..< n {
                var sum = 0.0
                for p in 0 ..< k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    sum += Double(av) * Double(bv)
                }
                let prior = beta == 0 ? 0 : beta * c[i * ldc + j]
                c[i * ldc + j] = alpha * Float(sum) + prior
            }
        }
    }

    /// Stops on the AVX-512 path of a build compiled without its kernels (which `KernelPath` never
    /// chooses).
    private static func unavailableAVX512() -> Never {
        preconditionFailure("This build has no AVX-512 kernels; KernelPath.current cannot be avx512.")
    }

    /// Stops with a sentence when sizes or strides cannot describe the matrices.
    static func checkArguments(ldc: Int, lda: Int, transA: Bool, ldb: Int, transB: Bool, m: Int, n: Int, k: Int) {
        precondition(m >= 0 && n >= 0 && k >= 0, "GEMM sizes must be non-negative, got m \(m), n \(n), k \(k).")
        precondition(ldc >= max(n, 1), "GEMM ldc \(ldc) is smaller than n \(n).")
        precondition(
            lda >= max(transA ? m : k, 1),
            "GEMM lda \(lda) is smaller than the stored row length \(transA ? m : k) of A (transA \(transA)).")
        precondition(
            ldb >= max(transB ? k : n, 1),
            "GEMM ldb \(ldb) is smaller than the stored row length \(transB ? k : n) of B (transB \(transB)).")
    }
}
