import XCTest

@testable import Dist
@testable import NN

/// The replica-and-reducer core alone: the per-layer hook starts buckets during backward (on the
/// step's last micro-batch only), and a bucket that cannot start fails backward where it happens.
final class DistributedDataParallelTests: XCTestCase {
    /// Forwards to an in-process rank, counting the reductions started and failing them on request.
    final class CountingCommunicator: Communicator {
        let inner: InProcessCommunicator
        let failsStarts: Bool
        private(set) var starts = 0

        init(_ inner: InProcessCommunicator, failsStarts: Bool) {
            self.inner = inner
            self.failsStarts = failsStarts
        }

        var rank: Int { inner.rank }
        var size: Int { inner.size }

        private func start() throws {
            starts += 1
            if failsStarts { throw DistError.mpi(function: "MPI_Iallreduce", code: 1, message: "refused by the test") }
        }

        func allreduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReductionOp) throws { try inner.allreduce(buffer, op: op) }
        func allreduce(_ buffer: UnsafeMutableBufferPointer<Double>, op: ReductionOp) throws { try inner.allreduce(buffer, op: op) }
        func startAllreduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReductionOp) throws -> PendingReduction {
            try start()
            return try inner.startAllreduce(buffer, op: op)
        }
        func startAllreduce(_ buffer: UnsafeMutableBufferPointer<Double>, op: ReductionOp) throws -> PendingReduction {
            try start()
            return try inner.startAllreduce(buffer, op: op)
        }
        func startHalfSum(_ buffer: UnsafeMutableBufferPointer<UInt16>) throws -> PendingReduction {
            try start()
            return try inner.startHalfSum(buffer)
        }
        func startExchange(
            sending send: UnsafeRawPointer, counts sendCounts: [Int], offsets sendOffsets: [Int],
            receiving receive: UnsafeMutableRawPointer, counts receiveCounts: [Int], offsets receiveOffsets: [Int]
        ) throws -> PendingReduction {
            try start()
            return try inner.startExchange(
                sending: send, counts: sendCounts, offsets: sendOffsets,
                receiving: receive, counts: receiveCounts, offsets: receiveOffsets)
        }
        func startAllgather(_ buffer: UnsafeMutableBufferPointer<Float>, parts: [Range<Int>]) throws -> PendingReduction {
            try start()
            return try inner.startAllgather(buffer, parts: parts)
        }
        func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, from root: Int) throws { try inner.broadcast(buffer, from: root) }
        func broadcast(_ buffer: UnsafeMutableBufferPointer<Double>, from root: Int) throws { try inner.broadcast(buffer, from: root) }
        func broadcast(_ buffer: UnsafeMutableRawBufferPointer, from root: Int) throws { try inner.broadcast(buffer, from: root) }
        func barrier() throws { try inner.barrier() }
        func abort(code: Int32) -> Never { inner.abort(code: code) }
    }

    /// A trainer on two in-process ranks with small buckets (several start during backward).
    func trainer(_ c: InProcessCommunicator, failsStarts: Bool) throws -> (DataParallelTrainer, CountingCommunicator, Dataset) {
        let data = SyntheticPatterns.make(count: 16, shape: [1, 8, 8], classes: 3, seed: 5)
        var config = TrainingConfiguration()
        config.globalBatchSize = 8
        config.bucketCapacity = 64
        let counting = CountingCommunicator(c, failsStarts: failsStarts)
        let trainer = try DataParallelTrainer(
            spec: ModelSpec.builtin("mlp", inputShape: data.sampleShape, classes: data.classCount),
            optimizer: SGD(learningRate: 0.1), loss: SoftmaxCrossEntropy(), communicator: counting,
            configuration: config)
        return (trainer, counting, data)
    }

    /// Buckets start inside backward on the last micro-batch, none on an earlier one, and the
    /// reduction starts the rest.
    func testBucketsStartDuringTheLastMicroBatchsBackward() throws {
        let counts = values(
            runRanks(2) { c -> [Int] in
                let (trainer, counting, data) = try self.trainer(c, failsStarts: false)
                XCTAssertGreaterThan(trainer.ddp.reducer.buckets.count, 2, "the test needs several buckets")
                let mine = DistributedSampler.slice(count: 8, rank: c.rank, size: 2)
                _ = try trainer.computeGradients(indices: mine, epoch: 0, dataset: data, accumulating: false, final: false)
                let afterFirst = counting.starts
                _ = try trainer.computeGradients(indices: mine, epoch: 0, dataset: data, accumulating: true, final: true)
                let afterLast = counting.starts
                try trainer.reduceGradients(globalBatchSize: 16)
                return [afterFirst, afterLast, counting.starts, trainer.ddp.reducer.buckets.count]
            })
        for c in counts ?? [] {
            XCTAssertEqual(c[0], 0, "no bucket starts before the step's last micro-batch")
            XCTAssertGreaterThan(c[1], 0, "buckets start during the last backward")
            XCTAssertEqual(c[2], c[3], "every bucket starts once")
        }
    }

    /// A bucket that cannot start is thrown by `computeGradients` (from the backward hook), not
    /// kept for the reduction; the pass stops at the first failure.
    func testAFailedBucketStartIsThrownFromBackward() throws {
        let results = runRanks(2) { c -> Int in
            let (trainer, counting, data) = try self.trainer(c, failsStarts: true)
            do {
                _ = try trainer.computeGradients(indices: DistributedSampler.slice(count: 8, rank: c.rank, size: 2), epoch: 0, dataset: data)
            } catch let error as DistError {
                XCTAssertEqual(error, .mpi(function: "MPI_Iallreduce", code: 1, message: "refused by the test"))
                return counting.starts
            }
            XCTFail("computeGradients returned although a bucket could not start")
            return -1
        }
        XCTAssertEqual(values(results), [1, 1], "backward stopped at the first failed start")
    }
}
