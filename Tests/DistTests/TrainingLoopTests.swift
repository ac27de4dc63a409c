import XCTest

@testable import Dist
@testable import NN

/// The loop's own features on in-process ranks: gradient accumulation, the non-finite loss stop,
/// batch-norm statistics, early stopping and resuming.
final class TrainingLoopTests: XCTestCase {
    let data = SyntheticPatterns.make(count: 96, shape: [1, 8, 8], classes: 3, seed: 5)

    /// Trains `steps` SGD steps and returns rank 0's parameters and the result.
    func train(
        ranks: Int, batch: Int, accumulate: Int, steps: Int, model: String = "mlp", lr: Float = 0.1,
        configure: @escaping (inout TrainingConfiguration) -> Void = { _ in }
    ) -> [([Float], TrainingResult)]? {
        let data = self.data
        return values(
            runRanks(ranks) { c -> ([Float], TrainingResult) in
                var config = TrainingConfiguration()
                config.globalBatchSize = batch
                config.accumulationSteps = accumulate
                config.maxStepsPerEpoch = steps
                config.seed = 4
                config.logInterval = 1
                configure(&config)
                let spec = try ModelSpec.builtin(model, inputShape: data.sampleShape, classes: data.classCount)
                let trainer = try DataParallelTrainer(
                    spec: spec, optimizer: SGD(learningRate: lr, momentum: 0.9),
                    loss: SoftmaxCrossEntropy(), communicator: c, configuration: config)
                let result = try trainer.fit(training: data)
                return (trainer.model.arena.parameterSnapshot(), result)
            })
    }

    /// N micro-batches of b reduced once are one step on N·b: the same samples (the sampler's
    /// batches N·s ..< N·(s+1) are the big batch s), summed in another order (1e-5 relative).
    func testAccumulatedMicroBatchesEqualOneLargeBatch() {
        guard let large = train(ranks: 1, batch: 24, accumulate: 1, steps: 3)?[0] else { return }
        for (ranks, micro, n) in [(1, 12, 2), (2, 8, 3), (3, 6, 4)] {
            guard let accumulated = train(ranks: ranks, batch: micro, accumulate: n, steps: 3) else { return }
            XCTAssertEqual(accumulated[0].1.epochs[0].trainSamples, 72, "3 steps of 24 samples")
            XCTAssertLessThanOrEqual(maxRelativeDifference(accumulated[0].0, large.0), 1e-5, "P=\(ranks) \(n)x\(micro)")
            XCTAssertEqual(accumulated.last!.0, accumulated[0].0, "replicas stay identical")
        }
    }

    /// Deterministic mode runs a step's micro-batches as one exact sum: P ranks = one rank, bit for bit.
    func testAccumulationInDeterministicModeIsExact() {
        let exact: (inout TrainingConfiguration) -> Void = { $0.reduction = .deterministic }
        guard let one = train(ranks: 1, batch: 10, accumulate: 2, steps: 2, configure: exact)?[0],
            let three = train(ranks: 3, batch: 10, accumulate: 2, steps: 2, configure: exact)
        else { return }
        XCTAssertEqual(three[0].0, one.0)
    }

    func testNonFiniteLossStopsEveryRankAtTheSameStep() {
        let data = self.data
        let results = runRanks(2) { c -> Void in
            var config = TrainingConfiguration()
            config.globalBatchSize = 16
            config.epochs = 3
            let spec = try ModelSpec.builtin("mlp", inputShape: data.sampleShape, classes: data.classCount)
            try DataParallelTrainer(
                spec: spec, optimizer: SGD(learningRate: 1e9), loss: SoftmaxCrossEntropy(),
                communicator: c, configuration: config
            ).fit(training: data)
        }
        var steps: [Int] = []
        for r in results {
            guard case let .failure(e) = r, case let .nonFiniteLoss(_, step, _)? = e as? DistError else {
                XCTFail("expected a non-finite loss error, got \(r)")
                continue
            }
            steps.append(step)
            XCTAssertTrue("\(e)".contains("hint: lower --lr"), "\(e)")
        }
        XCTAssertEqual(Set(steps).count, 1, "every rank stops at the same step: \(steps)")
    }

    /// Unsynchronized batch norm: each rank's running statistics come from its own slices; before
    /// evaluation they are averaged, so every replica holds the same state.
    func testUnsynchronizedBatchNormStatisticsAreAveragedAcrossRanks() throws {
        let data = self.data
        let spec = ModelSpec(
            name: "bn", inputShape: data.sampleShape,
            layers: [
                .conv2d(filters: 4, kernel: [3, 3], stride: [1, 1], padding: .same, bias: false),
                .batchNorm2d(momentum: 0.1, epsilon: 1e-5, synchronized: false), .relu, .flatten, .dense(units: 3, bias: true)
            ])
        guard
            let results = values(
                runRanks(3) { c -> [Float] in
                    var config = TrainingConfiguration()
                    config.globalBatchSize = 12
                    config.maxStepsPerEpoch = 3
                    let trainer = try DataParallelTrainer(
                        spec: spec, optimizer: SGD(learningRate: 0.05), loss: SoftmaxCrossEntropy(),
                        communicator: c, configuration: config)
                    try trainer.fit(training: data, validation: data.subset(Array(0 ..< 10)))
                    return trainer.model.arena.parameterSnapshot()
                })
        else { return }
        XCTAssertEqual(results[1], results[0])
        XCTAssertEqual(results[2], results[0])
    }

    func testEarlyStoppingEndsTheRunAndReportsIt() {
        let validation = data.subset(Array(0 ..< 20))
        let data = self.data
        guard
            let result = values(
                runRanks(2) { c -> TrainingResult in
                    var config = TrainingConfiguration()
                    config.globalBatchSize = 16
                    config.epochs = 10
                    config.maxStepsPerEpoch = 1
                    config.earlyStoppingPatience = 2
                    config.earlyStoppingMinDelta = 1000
                    let spec = try ModelSpec.builtin("tiny", inputShape: data.sampleShape, classes: data.classCount)
                    return try DataParallelTrainer(
                        spec: spec, optimizer: SGD(learningRate: 0.01), loss: SoftmaxCrossEntropy(),
                        communicator: c, configuration: config
                    ).fit(training: data, validation: validation)
                })?[0]
        else { return }
        XCTAssertTrue(result.stoppedEarly)
        XCTAssertEqual(result.epochs.count, 3)
        XCTAssertEqual(result.position.epochsWithoutImprovement, 2)
    }

    func testOptimizerStepsPerEpochGroupMicroBatches() {
        var config = TrainingConfiguration()
        config.globalBatchSize = 10
        config.accumulationSteps = 3
        config.lastBatch = .drop
        XCTAssertEqual(config.optimizerStepsPerEpoch(trainingSamples: 75), 2, "7 micro-batches: 2 full groups")
        config.lastBatch = .split
        XCTAssertEqual(config.optimizerStepsPerEpoch(trainingSamples: 75), 3, "8 micro-batches with the short one: 3 groups")
        config.accumulationSteps = 10
        config.lastBatch = .drop
        XCTAssertThrowsError(try config.validate(ranks: 1, trainingSamples: 75))
    }
}
