import XCTest

@testable import Dist
@testable import NN

final class DataParallelTrainerTests: XCTestCase {
    let data = SyntheticPatterns.make(count: 120, shape: [1, 8, 8], classes: 3, seed: 3)

    func train(
        ranks: Int, model: String = "tiny", lastBatch: LastBatchPolicy = .split, reduction: ReductionMode = .fast,
        bucketCapacity: Int = 1 << 20
    ) -> [([Float], [EpochMetrics])]? {
        fit(
            ranks: ranks, model: model,
            configure: {
                $0.lastBatch = lastBatch
                $0.reduction = reduction
                $0.bucketCapacity = bucketCapacity
            }
        ) { trainer, result in (trainer.model.arena.parameterSnapshot(), result.epochs) }
    }

    /// Trains `model` for 2 epochs of global batch 25 on `ranks` in-process ranks (then
    /// `configure`'s changes to the options) and returns what `result` reads from each rank's
    /// trainer after `fit`.
    func fit<R>(
        ranks: Int, model: String, configure: @escaping (inout TrainingConfiguration) -> Void,
        result: @escaping (DataParallelTrainer, TrainingResult) -> R
    ) -> [R]? {
        let data = self.data
        let results = runRanks(ranks) { c -> R in
            var config = TrainingConfiguration()
            config.epochs = 2
            config.globalBatchSize = 25  // 120 = 4·25 + 20: uneven slices and a short last batch
            config.seed = 11
            config.lastBatch = .split
            config.logInterval = 2
            configure(&config)
            let spec = try ModelSpec.builtin(model, inputShape: data.sampleShape, classes: data.classCount)
            let trainer = try DataParallelTrainer(
                spec: spec, optimizer: SGD(learningRate: 0.1, momentum: 0.9),
                loss: SoftmaxCrossEntropy(), communicator: c, configuration: config)
            return result(trainer, try trainer.fit(training: data, validation: data.subset(Array(0 ..< 37))))
        }
        return values(results)
    }

    /// P ranks on global batch B end with the parameters one rank reaches on B: the ranks differ
    /// only in float32 summation order (tolerance 1e-5 relative after 10 momentum steps).
    func testSeveralRanksMatchOneRank() throws {
        guard let one = train(ranks: 1)?[0] else { return }
        for p in [2, 3, 4] {
            guard let all = train(ranks: p) else { return }
            for (rank, (params, history)) in all.enumerated() {
                XCTAssertEqual(params, all[0].0, "replicas must stay identical (P=\(p), rank \(rank))")
                XCTAssertLessThanOrEqual(maxRelativeDifference(params, one.0), 1e-5, "P=\(p)")
                XCTAssertEqual(history.map(\.trainSamples), [120, 120])
                XCTAssertEqual(history.map(\.validationSamples), [37, 37], "evaluation counts each sample once")
                for (h, o) in zip(history, one.1) {
                    XCTAssertEqual(h.trainLoss, o.trainLoss, accuracy: 1e-4)
                    XCTAssertEqual(h.validationAccuracy ?? -1, o.validationAccuracy ?? -1, accuracy: 1.0 / 37 + 1e-9)
                }
            }
        }
    }

    /// `denseFactors`: dense weights alone in their buckets (a small bucket capacity) travel as
    /// their factors and every rank forms their gradient; P = 2, 3 (uneven slices of 25) end where
    /// one rank ends, within float32 summation order, with identical replicas, and each step
    /// formed both of mlp's dense weights from factors (fp32 and fp16 wires).
    func testDenseFactorsMatchOneRank() throws {
        guard let one = train(ranks: 1, model: "mlp")?[0] else { return }
        for compression in GradientCompression.allCases {
            for p in [2, 3] {
                let run = fit(
                    ranks: p, model: "mlp",
                    configure: {
                        $0.bucketCapacity = 64
                        $0.denseFactors = true
                        $0.compression = compression
                    }
                ) { trainer, _ in (trainer.model.arena.parameterSnapshot(), trainer.ddp.reducer.lastStep.factorBuckets) }
                guard let all = run else { return }
                let dense = try ModelSpec.builtin("mlp", inputShape: data.sampleShape, classes: data.classCount).build().layers.filter { $0 is Dense }.count
                for (rank, (params, factored)) in all.enumerated() {
                    XCTAssertEqual(params, all[0].0, "replicas must stay identical (P=\(p), rank \(rank), \(compression))")
                    XCTAssertLessThanOrEqual(maxRelativeDifference(params, one.0), compression == .fp16 ? 2e-2 : 1e-5, "P=\(p), \(compression)")
                    XCTAssertEqual(factored, dense, "every dense weight came from factors (P=\(p), \(compression))")
                }
            }
        }
    }

    /// Dense factors need the fast reduction, one thread and one micro-batch: refused by name.
    func testDenseFactorsRefuseWhatTheyCannotServe() {
        for (reduction, threads, accumulate) in [(ReductionMode.deterministic, 1, 1), (.fast, 2, 1), (.fast, 1, 2)] {
            var config = TrainingConfiguration()
            config.denseFactors = true
            config.reduction = reduction
            config.threads = threads
            config.accumulationSteps = accumulate
            XCTAssertThrowsError(try config.validate(ranks: 2, trainingSamples: 1000)) { error in
                XCTAssertTrue("\(error)".contains("dense-factors"), "\(error)")
            }
        }
    }

    /// The deterministic mode's contract: P ranks give one rank's parameters bit for bit.
    func testDeterministicModeMatchesOneRankBitForBit() {
        guard let one = train(ranks: 1, reduction: .deterministic)?[0] else { return }
        for p in [2, 3] {
            guard let all = train(ranks: p, reduction: .deterministic, bucketCapacity: 100) else { return }
            XCTAssertEqual(all[0].0, one.0, "P=\(p)")
            XCTAssertEqual(all[p - 1].0, one.0, "P=\(p)")
        }
        // And it stays close to the fast mode (both are the mean gradient, rounded differently).
        guard let fast = train(ranks: 1)?[0] else { return }
        XCTAssertLessThanOrEqual(maxRelativeDifference(one.0, fast.0), 1e-5)
    }

    /// Leaving the 1/B to the optimizer (what the training loop does) is the same update, bit for
    /// bit, as scaling the reduced gradients first, for SGD with momentum and for AdamW, on one
    /// rank and on two.
    func testScalingInTheUpdateMatchesScalingTheGradients() throws {
        let data = self.data
        for ranks in [1, 2] {
            for adam in [false, true] {
                func run(scalingInUpdate: Bool) -> [Float]? {
                    values(
                        runRanks(ranks) { c -> [Float] in
                            var config = TrainingConfiguration()
                            config.globalBatchSize = 20
                            let optimizer: any Optimizer =
                                adam
                                ? try AdamW(learningRate: 0.01, weightDecay: 0.1)
                                : try SGD(learningRate: 0.1, momentum: 0.9)
                            let trainer = try DataParallelTrainer(
                                spec: try ModelSpec.builtin(
                                    "tiny", inputShape: data.sampleShape,
                                    classes: data.classCount),
                                optimizer: optimizer, loss: SoftmaxCrossEntropy(),
                                communicator: c, configuration: config)
                            let sampler = DistributedSampler(datasetCount: data.count, globalBatchSize: 20, seed: 2)
                            let order = sampler.permutation(epoch: 0)
                            for step in 0 ..< 3 {
                                let mine = sampler.shard(step: step, order: order, rank: c.rank, size: c.size)
                                _ = try trainer.computeGradients(indices: mine, epoch: 0, dataset: data)
                                try trainer.reduceGradients(globalBatchSize: 20, scalingInUpdate: scalingInUpdate)
                                try trainer.applyUpdate()
                            }
                            return trainer.model.arena.parameterSnapshot()
                        })?[0]
                }
                guard let scaled = run(scalingInUpdate: false), let left = run(scalingInUpdate: true) else { return }
                XCTAssertEqual(left, scaled, "ranks \(ranks), \(adam ? "adamw" : "sgd")")
            }
        }
    }

    /// Small buckets start reducing during backward, layer by layer; the result must not change.
    func testOverlappedBucketsMatchOneBucket() {
        guard let whole = train(ranks: 3), let bucketed = train(ranks: 3, bucketCapacity: 100) else { return }
        XCTAssertEqual(bucketed[0].0, whole[0].0)
    }

    func testDropLastBatchTrainsOnFullBatchesOnly() {
        guard let all = train(ranks: 3, lastBatch: .drop) else { return }
        XCTAssertEqual(all[0].1.map(\.trainSamples), [100, 100])
    }

    func testTrainingReducesTheLoss() {
        guard let all = train(ranks: 2, model: "mlp") else { return }
        let history = all[0].1
        XCTAssertLessThan(history[1].trainLoss, history[0].trainLoss)
    }

    func testBatchSmallerThanTheRanksIsRejectedOnEveryRank() {
        let data = self.data
        let results = runRanks(3) { c -> Void in
            var config = TrainingConfiguration()
            config.globalBatchSize = 2
            let spec = try ModelSpec.builtin("tiny", inputShape: data.sampleShape, classes: data.classCount)
            try DataParallelTrainer(
                spec: spec, optimizer: SGD(learningRate: 0.1), loss: SoftmaxCrossEntropy(),
                communicator: c, configuration: config
            ).fit(training: data)
        }
        for r in results {
            guard case let .failure(e) = r, case .invalidConfiguration(option: "global batch size", _)? = e as? DistError else {
                XCTFail("expected a global batch size error, got \(r)")
                continue
            }
        }
    }
}

final class GradientCheckTests: XCTestCase {
    func testGradientCheckPassesOnSeveralRanks() {
        let data = SyntheticPatterns.make(count: 48, shape: [1, 8, 8], classes: 3, seed: 2)
        for p in [1, 2, 3] {
            for mode in ReductionMode.allCases {
                let results = runRanks(p) { c -> GradientCheckReport in
                    var config = GradientCheckConfiguration()
                    config.globalBatchSize = 10
                    config.steps = 3
                    config.reduction = mode
                    let spec = try ModelSpec.builtin("tiny", inputShape: data.sampleShape, classes: data.classCount)
                    return try GradientCheck.run(
                        spec: spec, dataset: data, loss: SoftmaxCrossEntropy(),
                        makeOptimizer: { try SGD(learningRate: 0.1, momentum: 0.9) },
                        communicator: c, configuration: config)
                }
                guard let reports = values(results) else { return }
                XCTAssertTrue(reports.allSatisfy(\.passed), "P=\(p) \(mode): \(reports[0].table)")
                let expected = try! ModelSpec.builtin("tiny", inputShape: data.sampleShape, classes: data.classCount).build()
                XCTAssertEqual(reports[0].rows.map(\.name), expected.arena.slots.map(\.name), "one row per parameter tensor")
                if p == 1 || mode == .deterministic { XCTAssertEqual(reports[0].worst.value, 0, "bit for bit (P=\(p) \(mode))") }
            }
        }
    }

    func testRelativeErrorIsScaledByTheTensorsLargestMagnitude() {
        let a: [Float] = [1, 2.002, 0], b: [Float] = [1, 2, 0.001]
        let e = GradientCheck.relativeError(a, b, 3)
        XCTAssertEqual(e.absolute, 0.002, accuracy: 1e-6)
        XCTAssertEqual(e.relative, 0.001, accuracy: 1e-6)
    }
}

final class TrainingConfigurationTests: XCTestCase {
    /// Deterministic mode runs every rank through every layer (idle ranks too), so synchronized
    /// layers accept a split last batch smaller than the ranks there; fast mode rejects it.
    func testDeterministicModeAcceptsEmptySlicesWithSynchronizedLayers() {
        var config = TrainingConfiguration()
        config.globalBatchSize = 32
        config.lastBatch = .split
        config.reduction = .deterministic
        let layers: [any Layer] = [Conv2D(filters: 8, kernelSize: (3, 3), padding: .same), BatchNorm2D(synchronized: true)]
        XCTAssertNoThrow(try config.validate(layers: layers, ranks: 4, trainingSamples: 98))
        config.reduction = .fast
        XCTAssertThrowsError(try config.validate(layers: layers, ranks: 4, trainingSamples: 98))
    }

    func testSynchronizedLayersRejectEmptySlices() {
        var config = TrainingConfiguration()
        config.globalBatchSize = 32
        config.lastBatch = .split
        let layers: [any Layer] = [BatchNorm2D(synchronized: true)]
        // 98 = 3·32 + 2: a last batch of 2 leaves ranks 2 and 3 of 4 without a sample.
        XCTAssertThrowsError(try config.validate(layers: layers, ranks: 4, trainingSamples: 98))
        XCTAssertNoThrow(try config.validate(layers: layers, ranks: 2, trainingSamples: 98))
        config.lastBatch = .drop
        XCTAssertNoThrow(try config.validate(layers: layers, ranks: 4, trainingSamples: 98))
        config.lastBatch = .split
        XCTAssertNoThrow(try config.validate(layers: [BatchNorm2D()], ranks: 4, trainingSamples: 98), "a local batch norm runs alone")
    }

    /// The values alone, before any rank or data: each error names its option.
    func testOptionsAreCheckedAloneAndNamed() {
        func option(_ change: (inout TrainingConfiguration) -> Void) -> String? {
            var config = TrainingConfiguration()
            change(&config)
            do { try config.validateOptions() } catch let DistError.invalidConfiguration(option, _) { return option } catch { return "\(error)" }
            return nil
        }
        XCTAssertNil(option { _ in })
        XCTAssertEqual(option { $0.epochs = 0 }, "epochs")
        XCTAssertEqual(option { $0.globalBatchSize = 0 }, "global batch size")
        XCTAssertEqual(option { $0.threads = 257 }, "threads")
        XCTAssertEqual(
            option {
                $0.denseFactors = true
                $0.reduction = .deterministic
            }, "dense-factors")
        XCTAssertEqual(
            option {
                $0.denseFactors = true
                $0.accumulationSteps = 2
            }, "dense-factors")
        XCTAssertEqual(
            option {
                $0.compression = .fp16
                $0.reduction = .deterministic
            }, "compression")
        XCTAssertEqual(option { $0.earlyStoppingMinDelta = -1 }, "min delta")
        XCTAssertEqual(option { $0.checkpoints = CheckpointPolicy(directory: "/tmp", everySteps: -1, keepLast: 0) }, "checkpoint every")
    }

    func testStatisticsReducerSumsAcrossRanks() {
        let results = runRanks(3) { c -> [Double] in
            var stats = [Double(c.rank), 1, 0.5]
            let reducer = CommunicatorStatisticsReducer(communicator: c)
            stats.withUnsafeMutableBufferPointer { reducer.sumAcrossReplicas($0) }
            XCTAssertNil(reducer.takeError())
            return stats
        }
        for s in values(results) ?? [] { XCTAssertEqual(s, [3, 3, 1.5]) }
    }
}
