import XCTest

@testable import Dist
@testable import NN

final class GradientReducerTests: XCTestCase {
    func makeArena() -> ParameterArena {
        ParameterArena(tensors: [
            ("0.dense.weight", [3, 5], true), ("0.dense.bias", [3], true),
            ("2.dense.weight", [2, 3], true), ("2.dense.bias", [2], true)
        ])
    }

    func testBucketsTileTheArenaLastLayersFirst() {
        let arena = makeArena()
        let reducer = GradientReducer(arena: arena, communicator: InProcessCommunicator(), bucketCapacity: 20)
        XCTAssertEqual(reducer.buckets.first?.upperBound, arena.count)
        XCTAssertEqual(reducer.buckets.last?.lowerBound, 0)
        for i in 1 ..< reducer.buckets.count { XCTAssertEqual(reducer.buckets[i].upperBound, reducer.buckets[i - 1].lowerBound) }
        XCTAssertGreaterThan(reducer.buckets.count, 1)
        XCTAssertEqual(GradientReducer(arena: arena, communicator: InProcessCommunicator()).buckets, [0 ..< arena.count])
    }

    /// Rank r's gradient is the sum over its slice; the reduction must give the mean over the global
    /// batch even when slices are uneven (here 3, 3, 2, 2 samples of B = 10).
    func testUnevenSlicesGiveTheGlobalMean() {
        for mode in ReductionMode.allCases {
            let results = runRanks(4) { c -> [Float] in
                let arena = self.makeArena()
                let samples = DistributedSampler.slice(count: 10, rank: c.rank, size: 4)
                // Sample s contributes (s + 1) · (i + 1) to element i.
                for i in 0 ..< arena.count { arena.gradients[i] = samples.reduce(0) { $0 + Float(($1 + 1) * (i + 1)) } }
                try GradientReducer(arena: arena, communicator: c, bucketCapacity: 8, mode: mode).reduce(globalBatchSize: 10)
                return arena.gradientSnapshot()
            }
            guard let all = values(results) else { return }
            // Mean over s of (s + 1)(i + 1) = 5.5 (i + 1).
            let expected = (0 ..< all[0].count).map { Float(5.5 * Double($0 + 1)) }
            for g in all {
                XCTAssertEqual(g, all[0], "every rank holds the same mean (\(mode))")
                // Sums of small integers are exact; only the 1/B scaling rounds.
                XCTAssertLessThanOrEqual(maxRelativeDifference(g, expected), 1e-6, "\(mode)")
            }
        }
    }

    /// Exact mode sums integers, so the order of ranks cannot change a bit; float sums can.
    func testDeterministicReductionDoesNotDependOnRankOrder() {
        func reduce(_ contributions: [[Float]]) -> [Float] {
            let results = runRanks(contributions.count) { c -> [Float] in
                let arena = ParameterArena(tensors: [("w", [contributions[0].count], true)])
                for (i, v) in contributions[c.rank].enumerated() { arena.gradients[i] = v }
                try GradientReducer(arena: arena, communicator: c, mode: .deterministic).reduce(globalBatchSize: 1)
                return Array(arena.gradientSnapshot().prefix(contributions[0].count))
            }
            return values(results)?[0] ?? []
        }
        let a: [Float] = [1e-3, 1, -0.3, 7e-5], b: [Float] = [3.3e-4, -0.7, 0.1, 1e-8], d: [Float] = [0.123, 1e-3, 2, -3]
        XCTAssertEqual(reduce([a, b, d]), reduce([d, a, b]))
        XCTAssertEqual(reduce([a, b, d]), reduce([b, d, a]))
        let exact = (0 ..< 4).map { Float(Double(a[$0]) + Double(b[$0]) + Double(d[$0])) }
        XCTAssertLessThanOrEqual(maxRelativeDifference(reduce([a, b, d]), exact), 1e-7)
    }

    /// Buckets started early (as backward finishes layers) and late (in reduce) give the same sums,
    /// whatever point each rank had reached.
    func testBucketsStartedDuringBackwardReduceLikeTheRest() {
        let results = runRanks(3) { c -> [Float] in
            let arena = self.makeArena()
            for i in 0 ..< arena.count { arena.gradients[i] = Float(c.rank + 1) }
            let reducer = GradientReducer(arena: arena, communicator: c, bucketCapacity: 8)
            // Rank 2 had an empty slice: it starts everything in reduce.
            if c.rank < 2 { for slot in arena.slots.reversed() { try reducer.gradientsFinal(from: slot.offset) } }
            try reducer.reduce(globalBatchSize: 6)
            return arena.gradientSnapshot()
        }
        for g in values(results) ?? [] { XCTAssertTrue(g.allSatisfy { $0 == 1 }, "\(g)") }
    }
}
