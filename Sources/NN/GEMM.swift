/// Single-precision matrix multiplication on row-major matrices.
///
/// `C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C`, where `op(X)` is `X` or its transpose.
/// `lda`, `ldb`, `ldc` are the row strides (leading dimensions) of the matrices as stored:
/// A is stored `m×k` (or `k×m` when `transA`), B is stored `k×n` (or `n×k` when `transB`).
/// With `beta == 0`, C is written without being read (it may hold garbage or NaN).
public enum GEMM {
    /// The fast path. Currently the reference; the packed SIMD kernel replaces it.
    ///
    /// - Parameters:
    ///   - c: the output (written, or read and written when `beta != 0`).
    ///   - a, b: the inputs (read).
    ///   - m, n, k: the sizes of `op(A)` (m×k) and `op(B)` (k×n).
    @inlinable
    public static func multiply(
        _ c: UnsafeMutablePointer<Float>, ldc: Int,
        _ a: UnsafePointer<Float>, lda: Int, transA: Bool,
        _ b: UnsafePointer<Float>, ldb: Int, transB: Bool,
        m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0
    ) {
        multiplyReference(c, ldc: ldc, a, lda: lda, transA: transA, b, ldb: ldb, transB: transB,
                          m: m, n: n, k: k, alpha: alpha, beta: beta)
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
}
