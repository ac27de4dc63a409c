import XCTest

@testable import NN

final class GEMMTests: XCTestCase {
    /// Runs fast and reference GEMM on the same random operands and compares them.
    ///
    /// Tolerance: the reference accumulates in Double, the fast kernel in Float with FMA over up to
    /// k terms of O(1) products; float32 summation error grows like k·2⁻²⁴ in the worst case, so
    /// 1e-6·k (plus 1e-5 of slack for the alpha/beta rounding) bounds it with margin while a real
    /// indexing bug gives errors of O(1).
    ///
    /// Runs on every kernel path this machine can execute (AVX-512 and AVX2 on an AVX-512 CPU).
    private func check(
        m: Int, n: Int, k: Int, transA: Bool, transB: Bool, alpha: Float = 1, beta: Float = 0,
        padding: Int = 0, file: StaticString = #filePath, line: UInt = #line
    ) {
        for path in KernelPath.runnable {
            KernelPath.with(path) {
                check(
                    m: m, n: n, k: k, transA: transA, transB: transB, alpha: alpha, beta: beta, padding: padding,
                    path: path, file: file, line: line)
            }
        }
    }

    private func check(
        m: Int, n: Int, k: Int, transA: Bool, transB: Bool, alpha: Float, beta: Float,
        padding: Int, path: KernelPath, file: StaticString, line: UInt
    ) {
        let lda = (transA ? m : k) + padding, ldb = (transB ? k : n) + padding, ldc = n + padding
        let a = randomValues(max((transA ? k : m) * lda, 1), seed: UInt64(m * 31 + k))
        let b = randomValues(max((transB ? n : k) * ldb, 1), seed: UInt64(n * 17 + k + 5))
        let c0 =
            beta == 0
            ? [Float](repeating: .nan, count: max(m * ldc, 1))
            : randomValues(max(m * ldc, 1), seed: UInt64(m + n))
        var fast = c0, reference = c0
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                fast.withUnsafeMutableBufferPointer { pc in
                    GEMM.multiply(
                        pc.baseAddress!, ldc: max(ldc, 1), pa.baseAddress!, lda: max(lda, 1), transA: transA,
                        pb.baseAddress!, ldb: max(ldb, 1), transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta)
                }
                reference.withUnsafeMutableBufferPointer { pc in
                    GEMM.multiplyReference(
                        pc.baseAddress!, ldc: max(ldc, 1), pa.baseAddress!, lda: max(lda, 1), transA: transA,
                        pb.baseAddress!, ldb: max(ldb, 1), transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta)
                }
            }
        }
        // Only the m×n window is defined; padding columns keep their initial values in both.
        var got: [Float] = [], want: [Float] = []
        for i in 0 ..< m {
            for j in 0 ..< n {
                got.append(fast[i * ldc + j])
                want.append(reference[i * ldc + j])
            }
        }
        assertClose(
            got, want, tolerance: 1e-6 * Float(max(k, 1)) + 1e-5,
            "\(path.rawValue): m \(m) n \(n) k \(k) transA \(transA) transB \(transB) alpha \(alpha) beta \(beta)",
            file: file, line: line)
        if padding > 0 {
            for i in 0 ..< m {
                for j in n ..< ldc where !(fast[i * ldc + j].isNaN && c0[i * ldc + j].isNaN) {
                    XCTAssertEqual(
                        fast[i * ldc + j], c0[i * ldc + j], "\(path.rawValue) GEMM wrote outside the m×n window at (\(i), \(j))",
                        file: file, line: line)
                }
            }
        }
    }

    func testEdgeSizesAllTransposes() {
        // Sizes around the register tiles (AVX2 6×16, AVX-512 8×32, and the half-width tiles for a
        // last panel of at most eight columns) and the depth block (256), including 1 and primes.
        let sizes = [1, 2, 5, 6, 7, 8, 15, 16, 17, 24, 31, 33]
        for transA in [false, true] {
            for transB in [false, true] {
                for m in sizes {
                    for n in sizes {
                        for k in [1, 3, 16, 37] {
                            check(m: m, n: n, k: k, transA: transA, transB: transB)
                        }
                    }
                }
            }
        }
    }

    func testBlockBoundaries() {
        // Crosses KC (256), MC (96) and NC (2048) with remainders in every direction.
        for transA in [false, true] {
            for transB in [false, true] {
                check(m: 97, n: 50, k: 257, transA: transA, transB: transB)
                check(m: 193, n: 33, k: 513, transA: transA, transB: transB, beta: 1)
            }
        }
        check(m: 7, n: 2049 + 16, k: 300, transA: false, transB: true, alpha: 0.5, beta: -1)
    }

    func testShallowAndDeepBlockPaths() {
        // k ≤ 128 takes the row-by-row shallow path, larger k the panel-by-panel deep path; both
        // across several row blocks (m > 96) and column blocks (n > 512), with ragged and narrow
        // (≤ 8 columns: 6×8 tile) column panels.
        for transA in [false, true] {
            for transB in [false, true] {
                check(m: 200, n: 1030, k: 100, transA: transA, transB: transB, beta: 1)
                check(m: 101, n: 524, k: 131, transA: transA, transB: transB, alpha: -1.5, beta: 0.25)
                check(m: 13, n: 8, k: 129, transA: transA, transB: transB)
                check(m: 13, n: 3, k: 12, transA: transA, transB: transB, beta: 2)
            }
        }
        // Untransposed B above 256 Ki floats is packed; smaller ones are read in place.
        for transA in [false, true] {
            check(m: 20, n: 700, k: 401, transA: transA, transB: false, beta: 1)
            check(m: 20, n: 2100, k: 127, transA: transA, transB: false)
        }
    }

    func testAlphaBetaAndStrides() {
        for (alpha, beta) in [(Float(1), Float(1)), (2, 0.5), (-0.75, 0), (1, -2)] {
            for transA in [false, true] {
                for transB in [false, true] {
                    // Last column panels of 9 and of exactly 8 live columns; the last row tile has 5 rows.
                    check(m: 23, n: 41, k: 29, transA: transA, transB: transB, alpha: alpha, beta: beta, padding: 3)
                    check(m: 23, n: 40, k: 29, transA: transA, transB: transB, alpha: alpha, beta: beta, padding: 3)
                }
            }
        }
    }

    func testConvShapedProductsAroundPanelEdges() {
        // Panels around 16 and 32 rows and the AVX-512 tile's 32-column panels (196 = 6·32 + 4: a
        // half tile for the last four columns), in every transpose.
        for transA in [false, true] {
            for transB in [false, true] {
                for m in [32, 47, 49, 64] {
                    check(m: m, n: 196, k: 203, transA: transA, transB: transB, beta: 1)
                }
            }
        }
    }

    func testEveryRunnablePathIsCompiledAndIncludesTheWidest() {
        // The tests above run each path in `runnable`; the widest the CPU can run must be one of them.
        let runnable = KernelPath.runnable
        XCTAssertFalse(runnable.isEmpty)
        XCTAssertEqual(try KernelPath.select(environment: [:]), runnable.first)
        XCTAssertTrue(runnable.allSatisfy(\.isCompiled))
    }

    func testEveryPathGivesTheSameBits() {
        // Each element of C is one FMA chain over k in order within a depth block, and every path
        // splits k into the same blocks (KC 256, balanced): tile shapes decide which elements are
        // computed together, never the order of an element's sum. So AVX2 and AVX-512 results are
        // identical, bit for bit, and ranks on different CPU kinds stay identical replicas.
        let paths = KernelPath.runnable
        guard paths.count > 1 else { return }
        for (m, n, k, transA, transB, beta) in [
            (64, 196, 200, false, false, Float(1)), (64, 200, 196, false, true, 1),
            (200, 196, 64, true, false, 0), (37, 1030, 700, false, true, 0),
            (101, 77, 13, true, true, 0.5)
        ] {
            let a = randomValues(m * k, seed: 7), b = randomValues(k * n, seed: 8), c0 = randomValues(m * n, seed: 9)
            let results = paths.map { path -> [Float] in
                var c = c0
                KernelPath.with(path) {
                    GEMM.multiply(
                        &c, ldc: n, a, lda: transA ? m : k, transA: transA, b, ldb: transB ? k : n, transB: transB,
                        m: m, n: n, k: k, alpha: 1, beta: beta)
                }
                return c
            }
            for i in 1 ..< paths.count {
                let differing = zip(results[0], results[i]).filter { $0.bitPattern != $1.bitPattern }.count
                XCTAssertEqual(differing, 0, "\(paths[0].rawValue) vs \(paths[i].rawValue): m \(m) n \(n) k \(k)")
            }
        }
    }

    func testPrepackedAGivesTheSameBitsAsPackingPerCall() {
        // A whole op(A) packed once holds the blocks that multiply packs per call (same depth and
        // row blocks, same packing), so every product from it has the same bits, on every path;
        // sizes cross the depth (256) and row blocks (96 / 192) and the tile heights, in both
        // transposes of A and B, and one packed A serves two different B.
        for path in KernelPath.runnable {
            KernelPath.with(path) {
                for (m, n, k) in [(97, 50, 257), (193, 33, 513), (5, 196, 75), (64, 196, 800), (200, 17, 64)] {
                    for transA in [false, true] {
                        for transB in [false, true] {
                            let a = randomValues(m * k, seed: 11), c0 = randomValues(m * n, seed: 12)
                            var packed = [Float](repeating: .nan, count: GEMM.packedCount(m: m, k: k))
                            GEMM.pack(&packed, a, lda: transA ? m : k, transA: transA, m: m, k: k)
                            for (seed, beta) in [(UInt64(13), Float(0)), (14, 1)] {
                                let b = randomValues(k * n, seed: seed)
                                var direct = c0, fromPacked = c0
                                GEMM.multiply(
                                    &direct, ldc: n, a, lda: transA ? m : k, transA: transA,
                                    b, ldb: transB ? k : n, transB: transB, m: m, n: n, k: k, beta: beta)
                                GEMM.multiply(
                                    &fromPacked, ldc: n, packedA: packed, b, ldb: transB ? k : n, transB: transB,
                                    m: m, n: n, k: k, beta: beta)
                                let differing = zip(direct, fromPacked).filter { $0.bitPattern != $1.bitPattern }.count
                                XCTAssertEqual(differing, 0, "\(path.rawValue): m \(m) n \(n) k \(k) transA \(transA) transB \(transB) beta \(beta)")
                            }
                        }
                    }
                }
            }
        }
    }

    func testBetaZeroIgnoresNaNInC() {
        // check(...) fills C with NaN whenever beta == 0: any read of C would poison the result.
        check(m: 12, n: 32, k: 8, transA: false, transB: false)
        check(m: 13, n: 35, k: 300, transA: true, transB: true, padding: 2)
    }

    func testZeroSizes() {
        var c: [Float] = [1, 2, 3, 4]
        let a: [Float] = [1, 2, 3, 4], b: [Float] = [1, 2, 3, 4]
        // k == 0: C = beta·C.
        GEMM.multiply(&c, ldc: 2, a, lda: 1, transA: false, b, ldb: 2, transB: false, m: 2, n: 2, k: 0, beta: 2)
        XCTAssertEqual(c, [2, 4, 6, 8])
        c = [.nan, .nan, .nan, .nan]
        GEMM.multiply(&c, ldc: 2, a, lda: 1, transA: false, b, ldb: 2, transB: false, m: 2, n: 2, k: 0)
        XCTAssertEqual(c, [0, 0, 0, 0])
        // m == 0 or n == 0: nothing is touched.
        c = [5, 5, 5, 5]
        GEMM.multiply(&c, ldc: 2, a, lda: 2, transA: false, b, ldb: 2, transB: false, m: 0, n: 2, k: 2)
        GEMM.multiply(&c, ldc: 2, a, lda: 2, transA: false, b, ldb: 1, transB: false, m: 2, n: 0, k: 2)
        XCTAssertEqual(c, [5, 5, 5, 5])
    }

    func testFixtureFromNumpy() {
        // Expected values computed independently with numpy in float64:
        //   A = np.arange(8).reshape(2,4)/4 - 1         # stored k×m = 2×4, used transposed
        //   B = np.arange(10).reshape(2,5)*0.3 - 0.7    # stored k×n = 2×5
        //   C = 1.5 * A.T @ B + 0.5 * np.ones((4,5))
        //   print(', '.join('%.6f' % v for v in C.ravel()))
        let a: [Float] = (0 ..< 8).map { Float($0) / 4 - 1 }
        let b: [Float] = (0 ..< 10).map { Float($0) * 0.3 - 0.7 }
        var c = [Float](repeating: 1, count: 20)
        GEMM.multiply(
            &c, ldc: 5, a, lda: 4, transA: true, b, ldb: 5, transB: false, m: 4, n: 5, k: 2,
            alpha: 1.5, beta: 0.5)
        let expected: [Float] = [
            1.550000, 1.100000, 0.650000, 0.200000, -0.250000,
            1.587500, 1.362500, 1.137500, 0.912500, 0.687500,
            1.625000, 1.625000, 1.625000, 1.625000, 1.625000,
            1.662500, 1.887500, 2.112500, 2.337500, 2.562500
        ]
        // 0.3 and 0.7 are not exact in float32 and the literals carry 6 decimals: 1e-6 relative covers both.
        assertClose(c, expected, tolerance: 1e-6)
    }
}
