#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// OpenBLAS's `cblas_sgemm`, loaded at run time for benchmark comparisons only.
///
/// Nothing links against OpenBLAS: `load()` returns nil where the library is absent, and the
/// benchmark then reports our kernels alone. The library is pinned to one thread, like our GEMM.
public final class OpenBLAS {
    private typealias SgemmFunction =
        @convention(c) (
            Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32,
            UnsafePointer<Float>?, Int32, Float, UnsafeMutablePointer<Float>?, Int32
        ) -> Void
    private typealias SetThreadsFunction = @convention(c) (Int32) -> Void

    // CBLAS enumeration values (cblas.h).
    private static let rowMajor: Int32 = 101, noTrans: Int32 = 111, trans: Int32 = 112

    private let handle: UnsafeMutableRawPointer
    private let sgemm: SgemmFunction
    /// The file name the library was loaded from.
    public let path: String

    private init(handle: UnsafeMutableRawPointer, sgemm: SgemmFunction, path: String) {
        self.handle = handle
        self.sgemm = sgemm
        self.path = path
    }

    deinit { dlclose(handle) }

    /// Loads OpenBLAS and sets it to one thread.
    ///
    /// - Parameter path: the library to open (the dynamic loader's search rules apply).
    /// - Returns: nil when the library or its `cblas_sgemm` cannot be found.
    public static func load(path: String = "libopenblas.so.0") -> OpenBLAS? {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else { return nil }
        guard let sgemmSymbol = dlsym(handle, "cblas_sgemm") else {
            dlclose(handle)
            return nil
        }
        if let setThreads = dlsym(handle, "openblas_set_num_threads") {
            unsafeBitCast(setThreads, to: SetThreadsFunction.self)(1)
        }
        return OpenBLAS(handle: handle, sgemm: unsafeBitCast(sgemmSymbol, to: SgemmFunction.self), path: path)
    }

    /// `C = alpha · op(A) · op(B) + beta · C`, with the same arguments as `GEMM.multiply`.
    public func multiply(
        _ c: UnsafeMutablePointer<Float>, ldc: Int,
        _ a: UnsafePointer<Float>, lda: Int, transA: Bool,
        _ b: UnsafePointer<Float>, ldb: Int, transB: Bool,
        m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0
    ) {
        sgemm(
            OpenBLAS.rowMajor, transA ? OpenBLAS.trans : OpenBLAS.noTrans, transB ? OpenBLAS.trans : OpenBLAS.noTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
