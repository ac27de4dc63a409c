import XCTest

@testable import Dist
@testable import NN

/// A rank computing its slice on several threads (`TrainingConfiguration.threads`).
final class SubBatchThreadTests: XCTestCase {
    let data = SyntheticPatterns.make(count: 120, shape: [1, 8, 8], classes: 3, seed: 3)

    /// Trains 2 epochs (global batch 25: uneven slices and sub-batches, a short last batch) on
    /// `ranks` in-process ranks of `threads` threads; rank 0's parameters and the epochs' metrics.
    func train(ranks: Int, threads: Int, model: String = "tiny") -> ([Float], [EpochMetrics])? {
        let data = self.data
        let results = runRanks(ranks) { c -> ([Float], [EpochMetrics]) in
            var config = TrainingConfiguration()
            config.epochs = 2
            config.globalBatchSize = 25
            config.seed = 11
            config.lastBatch = .split
            config.logInterval = 0
            config.threads = threads
            config.augmentation = try Augmentation(horizontalFlip: true, maxShift: 1)
            let spec = try ModelSpec.builtin(model, inputShape: data.sampleShape, classes: data.classCount)
            let trainer = try DataParallelTrainer(
                spec: spec, optimizer: SGD(learningRate: 0.1, momentum: 0.9),
                loss: SoftmaxCrossEntropy(), communicator: c, configuration: config)
            let result = try trainer.fit(training: data)
            return (trainer.model.arena.parameterSnapshot(), result.epochs)
        }
        guard let all = values(results) else { return nil }
        for (rank, r) in all.enumerated() { XCTAssertEqual(r.0, all[0].0, "replicas must stay identical (rank \(rank))") }
        return all[0]
    }

    /// T threads compute what one thread computes, up to float32 rounding of the sub-batches'
    /// sum (1e-5 relative after 10 momentum steps), on one rank and on two; every sample is
    /// counted once.
    func testThreadsMatchOneThread() throws {
        guard let one = train(ranks: 1, threads: 1) else { return }
        for (ranks, threads) in [(1, 2), (1, 3), (2, 2)] {
            guard let r = train(ranks: ranks, threads: threads) else { return }
            XCTAssertLessThanOrEqual(maxRelativeDifference(r.0, one.0), 1e-5, "\(ranks) ranks × \(threads) threads")
            XCTAssertNotEqual(r.0, one.0, "the sub-batches' sum rounds differently: were the threads used?")
            XCTAssertEqual(r.1.map(\.trainSamples), [120, 120])
            for (e, o) in zip(r.1, one.1) { XCTAssertEqual(e.trainAccuracy, o.trainAccuracy, accuracy: 0.05) }
        }
    }

    /// For a given T the sum is taken in sub-batch order, so two runs give the same bits whatever
    /// the threads' schedule.
    func testThreadsAreReproducible() throws {
        guard let a = train(ranks: 1, threads: 3), let b = train(ranks: 1, threads: 3) else { return }
        XCTAssertEqual(a.0, b.0)
    }

    /// Batch norm (its statistics would need summing across threads) is refused with the
    /// option's name, not run wrongly; so is a thread count out of range.
    func testUnsupportedCombinationsAreRefused() throws {
        var config = TrainingConfiguration()
        config.threads = 2
        let bn = try ModelSpec.builtin("fmnist-cnn-bn", inputShape: [1, 28, 28], classes: 10)
        XCTAssertThrowsError(
            try DataParallelTrainer(
                spec: bn, optimizer: SGD(learningRate: 0.1), loss: SoftmaxCrossEntropy(),
                communicator: InProcessCommunicator(), configuration: config)
        ) { error in
            XCTAssertTrue("\(error)".contains("threads"), "\(error)")
        }
        config.threads = 0
        XCTAssertThrowsError(try config.validate(ranks: 1, trainingSamples: 120))
    }
}
