import XCTest

@testable import Dist
@testable import NN

final class HalfPrecisionTests: XCTestCase {
    func compress(_ values: [Float]) -> [UInt16] {
        var out = [UInt16](repeating: 0, count: values.count)
        HalfPrecision.compress(&out, values, values.count)
        return out
    }

    func decompress(_ halves: [UInt16], scale: Float = 1) -> [Float] {
        var out = [Float](repeating: 0, count: halves.count)
        HalfPrecision.decompress(&out, halves, scale: scale, halves.count)
        return out
    }

    /// Every finite half widens to a float that converts back to the same bits (±0 included).
    func testEveryRepresentableValueRoundTripsExactly() {
        let patterns = (0 ... UInt16.max).filter { (($0 >> 10) & 0x1F) != 0x1F }  // drop inf and NaN
        let back = compress(decompress(Array(patterns)))
        XCTAssertEqual(back, Array(patterns))
        XCTAssertEqual(decompress([0x3C00, 0x7BFF, 0x0001, 0xC000]), [1, 65504, 0x1p-24, -2])
    }

    /// Values between halves round to the nearest, ties to the even significand; beyond the range
    /// they become inf, below half the smallest subnormal zero.
    func testOtherValuesRoundToNearestEven() {
        let ulp: Float = 0x1p-10  // at 1
        let cases: [(Float, Float)] = [
            (1 + ulp / 2, 1),  // tie: even (1.0) wins
            (1 + 3 * ulp / 2, 1 + 2 * ulp),  // tie: even (1 + 2 ulp) wins
            (1 + ulp / 2 + 0x1p-20, 1 + ulp),  // just above the tie
            (1 + ulp / 4, 1),
            (65519, 65504), (65520, .infinity), (1e6, .infinity), (-1e6, -.infinity),
            (0x1p-25, 0), (0x1.8p-25, 0x1p-24), (0x1p-26, 0),
            (0.1, 0.0999755859375)
        ]
        for (input, expected) in cases {
            XCTAssertEqual(decompress(compress([input]))[0], expected, "\(input)")
        }
        // Relative error of at most 2^-11 over the normal range (2^-14 ... 2^15).
        var g = SplitMix64(seed: 3, keys: [1])
        for _ in 0 ..< 10_000 {
            let x = Float(1 + Double(g.next() % 1_000_000) / 1_000_000) * Float(sign: .plus, exponent: Int(g.next() % 29) - 14, significand: 1)
            let y = decompress(compress([x]))[0]
            XCTAssertLessThanOrEqual(abs(y - x) / x, 0x1p-11, "\(x)")
        }
    }

    /// The routines convert eight at a time and the ragged end one by one: both paths round alike
    /// (ties, overflow to inf, subnormals, underflow to zero), and the sum too.
    func testEightWideAndOneByOnePathsAgree() {
        var g = SplitMix64(seed: 5, keys: [2])
        var values: [Float] = [1 + 0x1p-11, 1 + 3 * 0x1p-11, 65519, 65520, -1e6, 0x1p-25, 0x1.8p-25, 0x1p-26, 0.1, -0.0]
        for _ in 0 ..< 1013 {
            values.append(
                Float(
                    sign: g.next() % 2 == 0 ? .plus : .minus, exponent: Int(g.next() % 44) - 28,
                    significand: 1 + Float(g.next() % 1024) / 1024))
        }
        let halves = compress(values)
        let one = values.map { Float16($0).bitPattern }
        XCTAssertEqual(halves, one)
        XCTAssertEqual(decompress(halves, scale: 0.25), one.map { Float(Float16(bitPattern: $0)) * 0.25 })
        var acc = halves
        let other = compress(values.reversed())
        HalfPrecision.add(&acc, other, acc.count)
        let expected = zip(halves, other).map {
            Float16(Float(Float16(bitPattern: $0)) + Float(Float16(bitPattern: $1))).bitPattern
        }
        XCTAssertEqual(acc, expected)
    }

    func testAddRoundsTheFloatSumToHalfAndDecompressScales() {
        var acc = compress([1, 2048, 0.5, -3])
        HalfPrecision.add(&acc, compress([0x1p-11, 1, 0.25, 3]), 4)
        // 1 + 2^-11 ties to 1; 2049 ties to 2048 (half's spacing is 2 there); the rest are exact.
        XCTAssertEqual(decompress(acc), [1, 2048, 0.75, 0])
        XCTAssertEqual(decompress(compress([3, -6]), scale: 0.5), [1.5, -3])
    }
}

final class CompressedReductionTests: XCTestCase {
    /// fp16 on the wire gives the float32 mean within the half-precision bound: each rank's value
    /// rounds once (relative 2^-11) and each of the P − 1 additions once more, relative to partial
    /// sums no larger than Σ|g_r|. Here |g_r| ≤ 5.6, so Σ|g_r| ≤ 16.8, about the largest |sum|:
    /// the error stays below P · 2^-11 of the tensor's scale; 1.6 is margin for that estimate.
    func testFp16ReductionIsWithinHalfPrecisionOfFloat32() {
        let p = 3, count = 5000
        func gradients(_ rank: Int) -> [Float] {
            var g = SplitMix64(seed: 11, keys: [UInt64(rank)])
            return (0 ..< count).map { _ in Float(Double(g.next() % 2_000_001) / 1_000_000 - 0.6) * 4 }
        }
        let results = runRanks(p) { c -> [[Float]] in
            try GradientCompression.allCases.map { compression in
                let arena = ParameterArena(tensors: [("0.dense.weight", [count - 40], true), ("0.dense.bias", [40], true)])
                for (i, v) in gradients(c.rank).enumerated() { arena.gradients[i] = v }
                let reducer = GradientReducer(arena: arena, communicator: c, bucketCapacity: 1000, compression: compression)
                try reducer.reduce(globalBatchSize: 12)
                XCTAssertEqual(reducer.lastStep.wireBytes, (compression == .fp16 ? 2 : 4) * arena.count)
                XCTAssertEqual(reducer.lastStep.buckets, reducer.buckets.count)
                return Array(arena.gradientSnapshot().prefix(count))
            }
        }
        guard let all = values(results) else { return }
        let exact = (0 ..< count).map { i in Float((0 ..< p).reduce(0.0) { $0 + Double(gradients($1)[i]) } / 12) }
        let scale = exact.map(abs).max()!
        var worst: Float = 0
        for i in 0 ..< count { worst = max(worst, abs(all[0][1][i] - exact[i]) / scale) }
        XCTAssertLessThanOrEqual(maxRelativeDifference(all[0][0], exact), 1e-6, "float32 wire")
        XCTAssertGreaterThan(worst, 0, "fp16 must actually round")
        XCTAssertLessThanOrEqual(worst, Float(p) * 0x1p-11 * 1.6)
        for r in all { XCTAssertEqual(r[1], all[0][1], "every rank holds the same fp16 result") }
    }

    /// Polling between layers only observes completions: the result is the same with any number
    /// of polls, and a reducer with nothing in flight ignores them. Starting and polling count as
    /// time inside MPI.
    func testProgressPollingDoesNotChangeTheResult() {
        let results = runRanks(2) { c -> [[Float]] in
            try [0, 1, 5].map { polls in
                let arena = ParameterArena(tensors: [("0.dense.weight", [64], true), ("1.dense.weight", [64], true)])
                for i in 0 ..< arena.count { arena.gradients[i] = Float(i % 7) + Float(c.rank) / 3 }
                let reducer = GradientReducer(arena: arena, communicator: c, bucketCapacity: 16)
                try reducer.progress()
                try reducer.gradientsFinal(from: arena.slots[1].offset)
                // The in-process group completes a reduction on its 2nd to 4th test at the earliest.
                XCTAssertGreaterThan(c.reductionsInFlight, 0, "the buckets started during backward are in flight after one poll")
                for _ in 0 ..< polls { try reducer.progress() }
                try reducer.reduce(globalBatchSize: 4)
                XCTAssertEqual(c.reductionsInFlight, 0, "reduce completes every bucket")
                // The bucket started during "backward" counts as time inside MPI calls.
                XCTAssertGreaterThan(reducer.lastStep.mpiCallSeconds, 0)
                XCTAssertLessThan(reducer.lastStep.mpiCallSeconds, 10)
                return arena.gradientSnapshot()
            }
        }
        guard let all = values(results) else { return }
        XCTAssertEqual(all[0][0], all[0][1])
        XCTAssertEqual(all[0][0], all[0][2])
        XCTAssertEqual(all[0][0], all[1][0])
    }

    func testGradientCheckPassesWithFp16AtItsTolerance() {
        let data = SyntheticPatterns.make(count: 48, shape: [1, 8, 8], classes: 3, seed: 2)
        for p in [2, 3] {
            let results = runRanks(p) { c -> GradientCheckReport in
                var config = GradientCheckConfiguration()
                config.globalBatchSize = 12
                config.compression = .fp16
                config.bucketCapacity = 32
                config.tolerance = GradientCheckConfiguration.tolerance(for: .fp16)
                let spec = try ModelSpec.builtin("tiny", inputShape: data.sampleShape, classes: data.classCount)
                return try GradientCheck.run(
                    spec: spec, dataset: data, loss: SoftmaxCrossEntropy(),
                    makeOptimizer: { try SGD(learningRate: 0.1, momentum: 0.9) },
                    communicator: c, configuration: config)
            }
            guard let reports = values(results) else { return }
            XCTAssertTrue(reports.allSatisfy(\.passed), reports[0].table)
            XCTAssertGreaterThan(reports[0].worst.value, 0, "fp16 rounds, so P=\(p) cannot match bit for bit")
        }
    }
}
