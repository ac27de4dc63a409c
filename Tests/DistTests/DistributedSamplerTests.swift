import XCTest

@testable import Dist

final class DistributedSamplerTests: XCTestCase {
    func testEpochCoversEverySampleExactlyOnceWhenSplit() {
        let sampler = DistributedSampler(datasetCount: 103, globalBatchSize: 10, seed: 5, lastBatch: .split)
        for size in [1, 2, 3, 4, 7] {
            var seen = [Int](repeating: 0, count: 103)
            for rank in 0 ..< size {
                for slice in sampler.shard(epoch: 2, rank: rank, size: size) { for i in slice { seen[i] += 1 } }
            }
            XCTAssertEqual(seen, [Int](repeating: 1, count: 103), "P=\(size)")
        }
    }

    func testDropSkipsOnlyTheShortLastBatch() {
        let sampler = DistributedSampler(datasetCount: 103, globalBatchSize: 10, seed: 5, lastBatch: .drop)
        XCTAssertEqual(sampler.stepsPerEpoch, 10)
        var seen = [Int](repeating: 0, count: 103)
        for rank in 0 ..< 3 { for slice in sampler.shard(epoch: 0, rank: rank, size: 3) { for i in slice { seen[i] += 1 } } }
        XCTAssertEqual(seen.filter { $0 == 1 }.count, 100)
        XCTAssertEqual(seen.filter { $0 == 0 }.count, 3)
        XCTAssertEqual(Set(sampler.permutation(epoch: 0).suffix(3)), Set(seen.indices.filter { seen[$0] == 0 }))
    }

    func testSplitLastBatchIsNeverPadded() {
        // 22 samples, B = 8: the last batch has 6 samples; over 4 ranks it splits 2,2,1,1.
        let sampler = DistributedSampler(datasetCount: 22, globalBatchSize: 8, seed: 1, lastBatch: .split)
        XCTAssertEqual(sampler.stepsPerEpoch, 3)
        let order = sampler.permutation(epoch: 0)
        XCTAssertEqual((0 ..< 4).map { sampler.shard(step: 2, order: order, rank: $0, size: 4).count }, [2, 2, 1, 1])
        // With fewer samples than ranks some ranks get nothing rather than a duplicate.
        let tiny = DistributedSampler(datasetCount: 10, globalBatchSize: 8, seed: 1, lastBatch: .split)
        XCTAssertEqual((0 ..< 4).map { tiny.shard(step: 1, order: tiny.permutation(epoch: 0), rank: $0, size: 4).count }, [1, 1, 0, 0])
    }

    func testPermutationsDifferByEpochAndAgreeAcrossInstances() {
        let a = DistributedSampler(datasetCount: 500, globalBatchSize: 32, seed: 9)
        let b = DistributedSampler(datasetCount: 500, globalBatchSize: 32, seed: 9)
        XCTAssertEqual(a.permutation(epoch: 3), b.permutation(epoch: 3), "every rank must see the same order")
        XCTAssertNotEqual(a.permutation(epoch: 0), a.permutation(epoch: 1))
        XCTAssertEqual(a.permutation(epoch: 1).sorted(), Array(0 ..< 500))
        XCTAssertNotEqual(a.permutation(epoch: 0), DistributedSampler(datasetCount: 500, globalBatchSize: 32, seed: 10).permutation(epoch: 0))
        XCTAssertEqual(DistributedSampler(datasetCount: 5, globalBatchSize: 2, seed: 9, shuffle: false).permutation(epoch: 4), [0, 1, 2, 3, 4])
    }

    /// Chunks depend on the batch and the chunk size only; the ranks' chunk runs tile them in order.
    func testChunksTileTheBatchAndRanksTakeWholeChunks() {
        XCTAssertEqual(DistributedSampler.chunks(count: 10, chunkSize: 4), [0 ..< 4, 4 ..< 8, 8 ..< 10])
        XCTAssertEqual(DistributedSampler.chunks(count: 0, chunkSize: 4), [])
        for size in 1 ... 8 {
            let runs = (0 ..< size).map { DistributedSampler.chunkShard(count: 20, chunkSize: 4, rank: $0, size: size) }
            XCTAssertEqual(runs.flatMap { Array($0) }, Array(0 ..< 5), "P=\(size)")
        }
        XCTAssertEqual(DistributedSampler.chunkShard(count: 20, chunkSize: 4, rank: 7, size: 8), 5 ..< 5, "more ranks than chunks: idle")
    }

    func testSliceSizesDifferByAtMostOneAndFirstRanksTakeTheExtra() {
        for count in [0, 1, 7, 64, 65, 99] {
            for size in 1 ... 8 {
                let ranges = (0 ..< size).map { DistributedSampler.slice(count: count, rank: $0, size: size) }
                let sizes = ranges.map(\.count)
                XCTAssertLessThanOrEqual(sizes.max()! - sizes.min()!, 1)
                XCTAssertEqual(sizes, (0 ..< size).map { count / size + ($0 < count % size ? 1 : 0) })
                // Contiguous and in rank order: the ranges tile 0..<count.
                XCTAssertEqual(ranges.first?.lowerBound, 0)
                XCTAssertEqual(ranges.last?.upperBound, count)
                for r in 1 ..< size { XCTAssertEqual(ranges[r].lowerBound, ranges[r - 1].upperBound) }
            }
        }
    }

    func testGlobalBatchIsTheConcatenationOfTheRanksSlices() {
        let sampler = DistributedSampler(datasetCount: 200, globalBatchSize: 30, seed: 3)
        let order = sampler.permutation(epoch: 1)
        for step in 0 ..< sampler.stepsPerEpoch {
            let joined = (0 ..< 4).flatMap { Array(sampler.shard(step: step, order: order, rank: $0, size: 4)) }
            XCTAssertEqual(joined, Array(sampler.globalBatch(step: step, order: order)))
        }
    }

    func testEvaluationShardsCountEachSampleOnce() {
        for count in [0, 5, 10_000, 10_001] {
            for size in [1, 2, 3, 4, 8] {
                var seen = [Int](repeating: 0, count: count)
                for rank in 0 ..< size { for i in DistributedSampler.evaluationShard(count: count, rank: rank, size: size) { seen[i] += 1 } }
                XCTAssertTrue(seen.allSatisfy { $0 == 1 }, "count \(count), P=\(size)")
            }
        }
    }

    func testSampleKeysDependOnSeedEpochAndIndexOnly() {
        let a = DistributedSampler(datasetCount: 100, globalBatchSize: 10, seed: 4)
        let k = a.sampleKeys(epoch: 2, indices: [5, 6, 7])
        XCTAssertEqual(k, [5, 6, 7].map { DistributedSampler.sampleKey(seed: 4, epoch: 2, index: $0) })
        XCTAssertEqual(Set(k).count, 3)
        XCTAssertNotEqual(k[0], DistributedSampler.sampleKey(seed: 4, epoch: 3, index: 5))
        XCTAssertNotEqual(k[0], DistributedSampler.sampleKey(seed: 5, epoch: 2, index: 5))
    }
}
