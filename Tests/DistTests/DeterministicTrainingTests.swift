import Foundation
import XCTest

@testable import Dist
@testable import NN

/// Deterministic mode's contract: P ranks give one rank's parameters bit for bit, for every
/// built-in model and the features that draw randomness or batch statistics.
final class DeterministicTrainingTests: XCTestCase {
    let data = SyntheticPatterns.make(count: 90, shape: [1, 12, 12], classes: 4, seed: 5)

    /// The usual options of these tests: global batch 20 in chunks of 4 (five chunks: P = 3 gives
    /// 2, 2, 1 and P = 4 gives 2, 1, 1, 1), two micro-batches a step, random shifts and flips, a
    /// short last batch kept (90 = 2·(2·20) + 10: the third step has one micro-batch of 10).
    func options(_ config: inout TrainingConfiguration) throws {
        config.reduction = .deterministic
        config.globalBatchSize = 20
        config.chunkSize = 4
        config.accumulationSteps = 2
        config.lastBatch = .split
        config.seed = 9
        config.logInterval = 0
        config.augmentation = try Augmentation(horizontalFlip: true, maxShift: 2)
    }

    /// Trains on `ranks` in-process ranks and returns rank 0's parameters (failing unless every
    /// rank holds the same).
    func train(
        _ spec: ModelSpec, ranks: Int, epochs: Int = 1, file: StaticString = #filePath, line: UInt = #line,
        configure: @escaping (inout TrainingConfiguration) -> Void = { _ in }
    ) -> [Float]? {
        guard
            let all = fit(
                spec, ranks: ranks, epochs: epochs, file: file, line: line, configure: configure,
                result: { $0.model.arena.parameterSnapshot() })
        else { return nil }
        for (rank, p) in all.enumerated() { XCTAssertEqual(p, all[0], "rank \(rank) of \(ranks) differs", file: file, line: line) }
        return all[0]
    }

    /// Trains with this suite's options (then `configure`'s changes) on `ranks` in-process ranks
    /// and returns what `result` reads from each rank's trainer afterwards.
    func fit<R>(
        _ spec: ModelSpec, ranks: Int, epochs: Int = 1, file: StaticString = #filePath, line: UInt = #line,
        configure: @escaping (inout TrainingConfiguration) -> Void = { _ in },
        result: @escaping (DataParallelTrainer) -> R
    ) -> [R]? {
        let data = self.data
        let results = runRanks(ranks, timeout: 120) { c -> R in
            var config = TrainingConfiguration()
            try self.options(&config)
            config.epochs = epochs
            configure(&config)
            let trainer = try DataParallelTrainer(
                spec: spec, optimizer: SGD(learningRate: 0.05, momentum: 0.9),
                loss: SoftmaxCrossEntropy(), communicator: c, configuration: config)
            try trainer.fit(training: data)
            return result(trainer)
        }
        return values(results, file: file, line: line)
    }

    func spec(_ name: String) throws -> ModelSpec {
        try ModelSpec.builtin(name, inputShape: data.sampleShape, classes: data.classCount)
    }

    /// Every built-in model (dropout in the CNNs, synchronized batch norm in fmnist-cnn-bn) with
    /// augmentation and accumulation: P = 2, 3, 4 give P = 1's parameters bit for bit.
    func testEveryBuiltinModelIsBitForBitOnOneToFourRanks() throws {
        for name in ModelSpec.builtinNames {
            guard let one = train(try spec(name), ranks: 1) else { return }
            for p in [2, 3, 4] {
                guard let all = train(try spec(name), ranks: p) else { return }
                XCTAssertEqual(all, one, "\(name), P=\(p)")
            }
        }
    }

    /// The reported training losses too: each epoch's mean loss (every chunk's loss sum added across
    /// ranks) is the same Double on P = 1..4, as are the accuracies and sample counts.
    func testEpochMetricsAreBitForBitOnOneToFourRanks() throws {
        let spec = try spec("mlp"), data = self.data
        var reference: [[Double]]?
        for p in 1 ... 4 {
            let results = runRanks(p, timeout: 120) { c -> [[Double]] in
                var config = TrainingConfiguration()
                try self.options(&config)
                config.epochs = 2
                let trainer = try DataParallelTrainer(
                    spec: spec, optimizer: SGD(learningRate: 0.05, momentum: 0.9),
                    loss: SoftmaxCrossEntropy(), communicator: c, configuration: config)
                return try trainer.fit(training: data).epochs.map { [$0.trainLoss, $0.trainAccuracy, Double($0.trainSamples)] }
            }
            guard let all = values(results) else { return }
            for (rank, metrics) in all.enumerated() {
                XCTAssertEqual(
                    metrics.flatMap { $0.map(\.bitPattern) }, (reference ?? all[0]).flatMap { $0.map(\.bitPattern) },
                    "P=\(p), rank \(rank)")
            }
            reference = reference ?? all[0]
        }
    }

    /// Unsynchronized batch norm normalizes each chunk by its own statistics and moves the running
    /// statistics once per chunk, in chunk order: also independent of P (running statistics included).
    func testUnsynchronizedBatchNormIsBitForBit() throws {
        let spec = ModelSpec(
            name: "bn-local", inputShape: data.sampleShape,
            layers: [
                .conv2d(filters: 4, kernel: [3, 3], stride: [1, 1], padding: .same, bias: false),
                .batchNorm2d(momentum: 0.1, epsilon: 1e-5, synchronized: false), .relu,
                .maxPool2d(pool: [2, 2], stride: [2, 2], padding: .valid), .flatten, .dense(units: data.classCount, bias: true)
            ])
        guard let one = train(spec, ranks: 1, epochs: 2) else { return }
        for p in [2, 3, 4] {
            guard let all = train(spec, ranks: p, epochs: 2) else { return }
            XCTAssertEqual(all, one, "P=\(p)")
        }
    }

    /// More ranks than chunks: the idle ranks take part in every collective (synchronized batch
    /// statistics included) and end with the same parameters.
    func testRanksWithoutChunksTakePart() throws {
        let large: (inout TrainingConfiguration) -> Void = {
            $0.chunkSize = 16
            $0.accumulationSteps = 1
        }
        guard let one = train(try spec("fmnist-cnn-bn"), ranks: 1, configure: large),
            let four = train(try spec("fmnist-cnn-bn"), ranks: 4, configure: large)
        else { return }
        XCTAssertEqual(four, one)
    }

    /// One micro-batch a step: a rank with a single chunk sends its float gradient, a rank with
    /// more its Double sums (P = 3: 2, 2, 1 chunks; P = 4: 2, 1, 1, 1; P = 5: one each), and each
    /// rank steps its parts of the parameters (and of SGD's momentum); P = 1's parameters bit for bit.
    func testOneMicroBatchMixesFloatAndSumTermsBitForBit() throws {
        let single: (inout TrainingConfiguration) -> Void = { $0.accumulationSteps = 1 }
        let spec = try spec("fmnist-cnn")
        guard let one = train(spec, ranks: 1, configure: single) else { return }
        for p in [2, 3, 4, 5] {
            guard let all = train(spec, ranks: p, configure: single) else { return }
            XCTAssertEqual(all, one, "P=\(p)")
        }
    }

    /// Dense weights alone in their buckets (a small bucket capacity) are summed from gathered
    /// factors on several ranks: P = 2..5 (ranks with two chunks, one, none) give P = 1's parameters
    /// bit for bit, and so does a rank count whose ranks hold uneven rows.
    func testDenseWeightsFromGatheredFactorsAreBitForBit() throws {
        let spec = try spec("fmnist-cnn")
        guard let one = train(spec, ranks: 1, configure: { $0.accumulationSteps = 1 }) else { return }
        for p in [2, 3, 5] {
            let run = fit(
                spec, ranks: p,
                configure: {
                    $0.accumulationSteps = 1
                    $0.bucketCapacity = 1 << 12
                }
            ) {
                ($0.model.arena.parameterSnapshot(), $0.ddp.exactReducer!.lastStep.factorBuckets)
            }
            guard let all = run else { return }
            for (rank, r) in all.enumerated() {
                XCTAssertEqual(r.0, one, "P=\(p), rank \(rank)")
                XCTAssertEqual(r.1, 2, "P=\(p): fc1's and fc2's weights, each alone in a bucket, came from gathered factors")
            }
        }
    }

    /// Ranks × threads: each thread computes a run of its rank's chunks (own layers, own
    /// gradients) and the integers are added in whatever order the threads finish; P ranks × T
    /// threads give one rank's parameters bit for bit, with one micro-batch a step and with two,
    /// for the models without batch norm.
    func testThreadsAreBitForBit() throws {
        for name in ["fmnist-cnn", "lenet5", "mlp"] {
            let spec = try spec(name)
            guard let one = train(spec, ranks: 1) else { return }
            for (ranks, threads) in [(1, 2), (1, 3), (2, 2)] {
                guard let all = train(spec, ranks: ranks, configure: { $0.threads = threads }) else { return }
                XCTAssertEqual(all, one, "\(name), \(ranks) ranks × \(threads) threads")
            }
            guard let single = train(spec, ranks: 1, configure: { $0.accumulationSteps = 1 }),
                let threaded = train(
                    spec, ranks: 2,
                    configure: {
                        $0.accumulationSteps = 1
                        $0.threads = 2
                    })
            else { return }
            XCTAssertEqual(threaded, single, "\(name), one micro-batch, 2 ranks × 2 threads")
        }
    }

    /// A run stopped after 3 steps on 2 ranks and resumed on 3 ends where 6 uninterrupted steps
    /// on one rank end, bit for bit (the checkpoint carries the exact sums' scales).
    func testResumeOnAnotherNumberOfRanksIsBitForBit() throws {
        let directory = NSTemporaryDirectory() + "ddp-exact-resume-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let data = self.data
        let spec = try self.spec("fmnist-cnn-bn")
        func run(ranks: Int, stopAfter: Int?, resume: Bool) -> [Float]? {
            values(
                runRanks(ranks, timeout: 120) { c -> [Float] in
                    var config = TrainingConfiguration()
                    try self.options(&config)
                    config.epochs = 3
                    config.stopAfterSteps = stopAfter
                    config.checkpoints = CheckpointPolicy(directory: directory)
                    let trainer = try DataParallelTrainer(
                        spec: spec, optimizer: SGD(learningRate: 0.05, momentum: 0.9),
                        loss: SoftmaxCrossEntropy(), communicator: c, configuration: config)
                    var start = TrainingPosition()
                    if resume { start = try trainer.restore(from: directory, trainingSamples: data.count).position }
                    try trainer.fit(training: data, from: start)
                    return trainer.model.arena.parameterSnapshot()
                })?[0]
        }
        guard let whole = run(ranks: 1, stopAfter: 6, resume: false) else { return }
        try? FileManager.default.removeItem(atPath: directory)
        guard run(ranks: 2, stopAfter: 3, resume: false) != nil, let resumed = run(ranks: 3, stopAfter: 6, resume: true) else { return }
        XCTAssertEqual(resumed, whole)
    }

    /// Deterministic mode computes the mean gradient like the fast mode, rounded differently:
    /// after a few steps the parameters agree to float32 noise (1e-5 relative), which a wrong
    /// chunk, scale or 1/B would exceed by far.
    func testDeterministicModeStaysCloseToTheFastMode() throws {
        let noAugmentation: (inout TrainingConfiguration) -> Void = { $0.augmentation = .none }
        guard let exact = train(try spec("lenet5"), ranks: 2, configure: noAugmentation),
            let fast = train(
                try spec("lenet5"), ranks: 2,
                configure: {
                    noAugmentation(&$0)
                    $0.reduction = .fast
                })
        else { return }
        XCTAssertLessThanOrEqual(maxRelativeDifference(exact, fast), 1e-5)
    }
}
