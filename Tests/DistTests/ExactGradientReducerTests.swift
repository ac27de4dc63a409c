import XCTest

@testable import Dist
@testable import NN

final class ExactSumTests: XCTestCase {
    /// The fast kernel, on every kernel path this machine runs, adds the same integers and reports
    /// the same largest magnitude as its plain Int64 twin, for a first term and for a later one, and
    /// clears the gradients. 203 elements: the sixteen-lane loop and its scalar tail.
    func testAccumulateMatchesTheReference() {
        var g = SplitMix64(seed: 3, keys: [1])
        let n = 203
        let values: [Float] = (0 ..< n).map { i in Float(bitPattern: UInt32(truncatingIfNeeded: g.next()) & 0xBFFF_FFFF) * (i % 2 == 0 ? 1 : -1) }
        for path in KernelPath.runnable {
            KernelPath.with(path) {
                for first in [true, false] {
                    var fast = [Double](repeating: 7, count: n), plain = fast
                    var a = values, b = values
                    let scale = Double(sign: .plus, exponent: 20, significand: 1)
                    let mostFast = ExactSum.accumulate(&fast, clearing: &a, scale: scale, n, first: first)
                    let mostPlain = ExactSum.accumulateReference(&plain, clearing: &b, scale: scale, n, first: first)
                    XCTAssertEqual(fast, plain, "\(path), first: \(first)")
                    XCTAssertEqual(mostFast, mostPlain, "\(path)")
                    XCTAssertEqual(a, [Float](repeating: 0, count: n), "\(path)")
                }
            }
        }
    }

    /// A scale too large for a Float (tiny gradients: 2^130 here) takes the Double loop; the same
    /// integers as the reference on every path.
    func testAccumulateBeyondAFloatScaleMatchesTheReference() {
        var g = SplitMix64(seed: 7, keys: [5])
        let n = 37
        let values: [Float] = (0 ..< n).map { _ in Float(Int64(bitPattern: g.next()) % 1_000_000) * 0x1p-120 }
        for path in KernelPath.runnable {
            KernelPath.with(path) {
                var fast = [Double](repeating: 3, count: n), plain = fast
                var a = values, b = values
                let scale = Double(sign: .plus, exponent: 130, significand: 1)
                XCTAssertEqual(
                    ExactSum.accumulate(&fast, clearing: &a, scale: scale, n),
                    ExactSum.accumulateReference(&plain, clearing: &b, scale: scale, n), "\(path)")
                XCTAssertEqual(fast, plain, "\(path)")
                XCTAssertTrue(fast.contains { $0 != 3 }, "the terms were added")
            }
        }
    }

    /// The fused dense kernel (`denseChunkProducts`: each chunk's product converted in register
    /// tiles) gives, on every path, the integers of `GEMM.multiply` per chunk followed by the plain
    /// conversion: chunks of different depths, a ragged m and n, a first term and a later one,
    /// sums or the mean as output, and a window that starts and ends inside rows (nothing outside
    /// it is written).
    func testDenseChunkProductsMatchTheProductThenTheConversion() {
        let (m, n) = (13, 45), chunks = [0 ..< 5, 5 ..< 16, 16 ..< 19], rows = 19
        var g = SplitMix64(seed: 8, keys: [6])
        func random(_ count: Int) -> [Float] { (0 ..< count).map { _ in Float(Int64(bitPattern: g.next()) % 1_000_003) * 1e-6 } }
        let gy = random(rows * m), x = random(rows * n)
        let scale = Double(sign: .plus, exponent: 30, significand: 1), count = 19
        let start: [Double] = (0 ..< m * n).map { Double($0 % 11) - 5 }
        for path in KernelPath.runnable {
            KernelPath.with(path) {
                for first in [true, false] {
                    var expected = start, product = [Float](repeating: 0, count: m * n)
                    var expectedMost: Float = 0
                    for (j, chunk) in chunks.enumerated() {
                        GEMM.multiply(
                            &product, ldc: n, Array(gy[(chunk.lowerBound * m)...]), lda: m, transA: true,
                            Array(x[(chunk.lowerBound * n)...]), ldb: n, transB: false, m: m, n: n, k: chunk.count)
                        expectedMost = max(
                            expectedMost,
                            ExactSum.accumulateReference(
                                &expected, clearing: &product, scale: scale, m * n,
                                first: first && j == 0))
                    }
                    for window in [0 ..< m * n, 7 ..< 500] {
                        var sums = start
                        let most = ExactSum.denseChunkProducts(
                            sums: &sums, first: first, mean: nil, count: count, gy: gy, ldGy: m, x: x, ldX: n,
                            units: m, features: n, window: window, chunks: chunks, scale: scale)
                        ExactSum.fenceStores()
                        for i in 0 ..< m * n {
                            XCTAssertEqual(sums[i], window.contains(i) ? expected[i] : start[i], "\(path), first \(first), window \(window), element \(i)")
                        }
                        if window.count == m * n { XCTAssertEqual(most, expectedMost, "\(path)") }
                        guard first else { continue }
                        var mean = [Float](repeating: .nan, count: m * n)
                        _ = ExactSum.denseChunkProducts(
                            sums: &sums, first: true, mean: &mean, count: count, gy: gy, ldGy: m, x: x, ldX: n,
                            units: m, features: n, window: window, chunks: chunks, scale: scale)
                        let factor = ExactSum.meanFactor(scale: scale, count: count)
                        for i in 0 ..< m * n {
                            let want = window.contains(i) ? Float(expected[i] * factor) : .nan
                            XCTAssertEqual(mean[i].bitPattern, want.bitPattern, "\(path), mean, window \(window), element \(i)")
                        }
                    }
                }
            }
        }
    }

    /// Gathered factors with row strides wider than the matrices (`[gy | x]` rows, as the reducer
    /// gathers them) give the same sums as separate gy and x.
    func testDenseChunkProductsReadStridedFactors() {
        let (m, n) = (10, 37), chunks = [0 ..< 16, 16 ..< 20], rows = 20
        var g = SplitMix64(seed: 9, keys: [7])
        func random(_ count: Int) -> [Float] { (0 ..< count).map { _ in Float(Int64(bitPattern: g.next()) % 1_000_003) * 1e-6 } }
        let gy = random(rows * m), x = random(rows * n)
        var joined: [Float] = []
        for r in 0 ..< rows {
            joined += gy[(r * m) ..< (r + 1) * m]
            joined += x[(r * n) ..< (r + 1) * n]
        }
        let scale = Double(sign: .plus, exponent: 28, significand: 1)
        for path in KernelPath.runnable {
            KernelPath.with(path) {
                var apart = [Double](repeating: 0, count: m * n), together = apart
                _ = ExactSum.denseChunkProducts(
                    sums: &apart, first: true, mean: nil, count: rows, gy: gy, ldGy: m, x: x, ldX: n,
                    units: m, features: n, window: 0 ..< m * n, chunks: chunks, scale: scale)
                joined.withUnsafeBufferPointer { j in
                    _ = ExactSum.denseChunkProducts(
                        sums: &together, first: true, mean: nil, count: rows, gy: j.baseAddress!, ldGy: m + n,
                        x: j.baseAddress! + m, ldX: m + n, units: m, features: n, window: 0 ..< m * n,
                        chunks: chunks, scale: scale)
                }
                ExactSum.fenceStores()
                XCTAssertEqual(apart, together, "\(path)")
                XCTAssertTrue(apart.contains { $0 != 0 })
            }
        }
    }

    /// The mean is one Double product rounded to Float, element by element, on every path.
    func testWriteMeanIsOneRoundedProductOnEveryPath() {
        var g = SplitMix64(seed: 4, keys: [2])
        let n = 77, scale = Double(sign: .plus, exponent: 33, significand: 1), count = 48
        let sums: [Double] = (0 ..< n).map { _ in (Double(g.next() % 4_000_001) - 2_000_000) * 1024 }
        let expected = sums.map { Float($0 * (1 / (scale * Double(count)))) }
        for path in KernelPath.runnable {
            var out = [Float](repeating: .nan, count: n)
            KernelPath.with(path) { ExactSum.writeMean(&out, sums, scale: scale, count: count, n) }
            XCTAssertEqual(out.map(\.bitPattern), expected.map(\.bitPattern), "\(path)")
        }
    }

    /// Without clearing (a rank's last chunk), the gradients are left as they were.
    func testAccumulateWithoutClearingLeavesTheGradients() {
        var sums = [Double](repeating: 1, count: 3)
        var g: [Float] = [0.5, -1.5, 2]
        _ = ExactSum.accumulate(&sums, clearing: &g, scale: 2, 3, clear: false)
        XCTAssertEqual(g, [0.5, -1.5, 2])
        XCTAssertEqual(sums, [2, -2, 5], "1 + round(2g), ties to even")
    }

    /// NaN and infinity show in the returned magnitude (so the reducer never mistakes them for a fit).
    func testNonFiniteValuesShowInTheMagnitude() {
        var sums = [Double](repeating: 0, count: 3)
        var withNaN: [Float] = [1, .nan, -2]
        XCTAssertTrue(ExactSum.accumulate(&sums, clearing: &withNaN, scale: 1, 3).isNaN)
        var withInf: [Float] = [1, -.infinity, 2]
        XCTAssertEqual(ExactSum.accumulate(&sums, clearing: &withInf, scale: 1, 3), .infinity)
    }
}

final class ExactGradientReducerTests: XCTestCase {
    /// One attempt on `ranks` ranks: rank r adds terms r, r + P, … of `terms` (each an arena's
    /// worth of gradients); returns whether it fit and the gradients after.
    /// With `announcing`, `begin` is told each rank's term count (a rank with one sends floats).
    func attempt(
        _ reducers: [ExactGradientReducer], _ arenas: [ParameterArena], terms: [[Float]], communicators: [InProcessCommunicator],
        announcing: Bool = false
    ) -> [(Bool, [Float])]? {
        let p = reducers.count
        let results = runRanks(p) { c -> (Bool, [Float]) in
            let (reducer, arena) = (reducers[c.rank], arenas[c.rank])
            let counts = (0 ..< p).map { r in stride(from: r, to: terms.count, by: p).underestimatedCount }
            reducer.begin(terms: terms.count, termsByRank: announcing ? counts : nil)
            arena.zeroGradients()
            for t in stride(from: c.rank, to: terms.count, by: p) {
                for (i, v) in terms[t].enumerated() { arena.gradients[i] = v }
                reducer.accumulate(slots: 0 ..< arena.slots.count, clearing: counts[c.rank] > 1 || !announcing)
            }
            let fit = try reducer.finish(globalBatchSize: terms.count)
            return (fit, Array(arena.gradientSnapshot().prefix(terms[0].count)))
        }
        return values(results)
    }

    func makeRanks(_ p: Int, count: Int) -> ([ExactGradientReducer], [ParameterArena], [InProcessCommunicator]) {
        let communicators = InProcessCommunicator.group(size: p, timeout: 30)
        let arenas = (0 ..< p).map { _ in ParameterArena(tensors: [("w", [count], true)]) }
        let reducers = (0 ..< p).map { ExactGradientReducer(arena: arenas[$0], communicator: communicators[$0], buckets: [0 ..< arenas[$0].count]) }
        return (reducers, arenas, communicators)
    }

    /// The first step has no agreed scale: it asks for a redo, and the redo at the measured scale fits.
    func testFirstStepIsRedoneAtTheMeasuredScale() {
        let terms: [[Float]] = [[0.25, -3e-3, 1e-7], [0.5, 1e-3, 0]]
        let (reducers, arenas, communicators) = makeRanks(1, count: 3)
        guard let first = attempt(reducers, arenas, terms: terms, communicators: communicators),
            let second = attempt(reducers, arenas, terms: terms, communicators: communicators)
        else { return }
        XCTAssertFalse(first[0].0)
        XCTAssertTrue(second[0].0)
        let expected = (0 ..< 3).map { Float((Double(terms[0][$0]) + Double(terms[1][$0])) / 2) }
        XCTAssertEqual(second[0].1, expected)
    }

    /// Gradients that grow past the headroom are caught (a redo, never a silently wrong sum), and
    /// the redo gives the exact mean.
    func testGrowthBeyondTheHeadroomIsDetected() {
        let (reducers, arenas, communicators) = makeRanks(2, count: 2)
        let small: [[Float]] = [[1, 0.5], [0.75, -1]]
        _ = attempt(reducers, arenas, terms: small, communicators: communicators)
        guard let settled = attempt(reducers, arenas, terms: small, communicators: communicators) else { return }
        XCTAssertTrue(settled[0].0)
        // 2^40 times larger: far past the 2^4 of headroom, and past 2^53 if it were summed anyway.
        let large: [[Float]] = [[0x1p40, 3], [0x1p40, -0x1p39]]
        guard let overflow = attempt(reducers, arenas, terms: large, communicators: communicators),
            let redo = attempt(reducers, arenas, terms: large, communicators: communicators)
        else { return }
        XCTAssertEqual(overflow.map(\.0), [false, false], "every rank sees the overflow")
        XCTAssertEqual(redo.map(\.0), [true, true])
        XCTAssertEqual(redo[0].1, [0x1p40, Float((3.0 - 0x1p39) / 2)])
    }

    /// However the terms are split among ranks, the sums carry the same bits.
    func testSumsDoNotDependOnTheNumberOfRanks() {
        var g = SplitMix64(seed: 5, keys: [2])
        let terms: [[Float]] = (0 ..< 8).map { _ in (0 ..< 50).map { _ in Float(Int64(bitPattern: g.next()) % 1_000_000) * 1e-6 } }
        var results: [[Float]] = []
        for p in 1 ... 4 {
            let (reducers, arenas, communicators) = makeRanks(p, count: 50)
            _ = attempt(reducers, arenas, terms: terms, communicators: communicators)
            guard let r = attempt(reducers, arenas, terms: terms, communicators: communicators) else { return }
            XCTAssertTrue(r[0].0)
            results.append(r[0].1)
        }
        for (p, r) in results.enumerated() { XCTAssertEqual(r, results[0], "P=\(p + 1)") }
    }

    /// Ranks with one term send it as floats, the others their Double sums, mixed in one step
    /// (P = 3: 2, 2, 1 terms; P = 4: 2, 2, 1, 1; P = 5..7: some ranks with none): the same bits as
    /// one rank, over a tensor whose parts do not fall on 16-element blocks of the whole.
    func testFloatAndSumTermsGiveTheSameBits() {
        var g = SplitMix64(seed: 6, keys: [3])
        let terms: [[Float]] = (0 ..< 5).map { _ in (0 ..< 203).map { _ in Float(Int64(bitPattern: g.next()) % 1_000_000) * 1e-6 } }
        var results: [[Float]] = []
        for p in 1 ... 7 {
            let (reducers, arenas, communicators) = makeRanks(p, count: 203)
            _ = attempt(reducers, arenas, terms: terms, communicators: communicators, announcing: true)
            guard let r = attempt(reducers, arenas, terms: terms, communicators: communicators, announcing: true) else { return }
            XCTAssertEqual(r.map(\.0), [Bool](repeating: true, count: p), "P=\(p)")
            for (rank, values) in r.map(\.1).enumerated() { XCTAssertEqual(values, results.first ?? r[0].1, "P=\(p), rank \(rank)") }
            results.append(r[0].1)
        }
        let mean = (0 ..< 203).map { i in Float(terms.reduce(0.0) { $0 + Double($1[i]) } / 5) }
        XCTAssertEqual(results[0], mean, "exact sums of these terms round to the Double mean")
    }

    /// A dense layer's gradients summed chunk by chunk inside the reducer (`accumulateDense`, the
    /// batched path) carry the bits of the layer's own backward run on each chunk followed by
    /// `accumulate`, over weights that take several row blocks and ragged chunks; so do the
    /// input gradients of the batch and of its chunks.
    func testDenseChunksMatchTheLayerChunkByChunk() throws {
        let (units, features) = (37, 3000)
        let chunks = [0 ..< 5, 5 ..< 10, 10 ..< 13]
        var g = SplitMix64(seed: 11, keys: [4])
        func random(_ n: Int) -> [Float] { (0 ..< n).map { _ in Float(Int64(bitPattern: g.next()) % 1_000_003) * 1e-6 } }
        let x = Tensor(shape: [13, features], values: random(13 * features))
        let gy = Tensor(shape: [13, units], values: random(13 * units))
        var reference: [Float] = [], batched: [Float] = []
        for path in 0 ..< 2 {
            let arena = ParameterArena(tensors: [("w", [units, features], true), ("b", [units], true)])
            for i in 0 ..< arena.count { arena.parameters[i] = Float(i % 7) * 0.01 }
            var dense = Dense(units: units)
            dense.bind(slots: arena.slots)
            let reducer = ExactGradientReducer(
                arena: arena, communicator: InProcessCommunicator.group(size: 1, timeout: 30)[0],
                buckets: [0 ..< arena.count])
            var gradInputs: [Tensor] = []
            for _ in 0 ..< 2 {  // the first attempt measures the scales
                arena.zeroGradients()
                reducer.begin(terms: chunks.count)
                gradInputs = []
                if path == 0 {
                    for (j, chunk) in chunks.enumerated() {
                        let xc = Tensor.splittingRows(x, counts: [chunk.lowerBound, chunk.count, 13 - chunk.upperBound])[1]
                        let gc = Tensor.splittingRows(gy, counts: [chunk.lowerBound, chunk.count, 13 - chunk.upperBound])[1]
                        _ = dense.forward(xc, arena: arena, context: ForwardContext(training: true))
                        gradInputs.append(dense.backward(gc, arena: arena))
                        reducer.accumulate(slots: 0 ..< 2, clearing: j < chunks.count - 1)
                    }
                } else {
                    _ = dense.forward(x, arena: arena, context: ForwardContext(training: true))
                    x.storage.withUnsafeBufferPointer { xp in
                        gy.storage.withUnsafeBufferPointer { gp in
                            reducer.accumulateDense(weight: 0, bias: 1, gradOutput: gp.baseAddress!, input: xp.baseAddress!, chunks: chunks)
                        }
                    }
                    gradInputs = Tensor.splittingRows(dense.inputGradient(gy, arena: arena), counts: chunks.map(\.count))
                }
                _ = try reducer.finish(globalBatchSize: 13)
            }
            XCTAssertEqual(reducer.lastStep.attempts, 2, "the first attempt measures the scales, the second fits")
            let result = arena.gradientSnapshot() + gradInputs.flatMap(\.storage)
            if path == 0 { reference = result } else { batched = result }
        }
        XCTAssertEqual(batched.count, reference.count)
        XCTAssertTrue(zip(batched, reference).allSatisfy { $0.bitPattern == $1.bitPattern }, "the batched path changed bits")
        XCTAssertTrue(reference.contains { $0 != 0 })
    }
}
