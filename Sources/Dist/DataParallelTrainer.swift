import Foundation
import NN

/// Trains one replica of a model on this rank's shard of every global batch, keeping all
/// replicas identical by averaging gradients across ranks before each optimizer step.
///
/// Use `fit(training:test:onEvent:)` for the whole loop, or the step functions
/// (`computeGradients`, `reduceGradients`, `applyUpdate`) for finer control (the gradient check).
/// Every public method except `computeGradients` is a collective: all ranks call it together.
public final class DataParallelTrainer {
    /// The ranks.
    public let communicator: Communicator
    /// The run's options.
    public let configuration: TrainingConfiguration
    /// The model description every rank built.
    public let spec: ModelSpec
    /// This rank's replica.
    public private(set) var model: Sequential
    /// The optimizer (state broadcast from rank 0 by `synchronize`).
    public let optimizer: Optimizer
    /// The loss (sum over a batch).
    public let loss: Loss
    /// Averages the gradient arena across ranks.
    public let reducer: GradientReducer
    /// Sums synchronized layers' statistics across ranks during forward and backward.
    public let statisticsReducer: CommunicatorStatisticsReducer
    /// Records forward, backward per layer, bucket reductions and optimizer steps, when set.
    public var timeline: Timeline? { get { reducer.timeline } set { reducer.timeline = newValue } }
    /// The lowest arena offset of each layer's parameters (nil for layers without any).
    private let layerOffsets: [Int?]
    /// An MPI error raised while starting a bucket during backward, thrown by `reduceGradients`.
    private var deferredError: Error?
    /// Deterministic mode: the slice scanned by `computeGradients`, summed by `reduceGradients`.
    private var exactSlice: (indices: [Int], epoch: Int, dataset: Dataset?, maxima: [Double])?

    /// Builds the replica and initializes its parameters from the seed.
    ///
    /// - Parameters:
    ///   - spec: the model.
    ///   - optimizer: the optimizer (fresh).
    ///   - loss: the loss.
    ///   - communicator: the ranks.
    ///   - configuration: the run's options.
    /// - Throws: `ModelError` when the model cannot be built.
    public init(spec: ModelSpec, optimizer: Optimizer, loss: Loss, communicator: Communicator,
                configuration: TrainingConfiguration) throws {
        self.spec = spec
        self.optimizer = optimizer
        self.loss = loss
        self.communicator = communicator
        self.configuration = configuration
        model = try spec.build()
        model.initializeParameters(seed: configuration.seed)
        reducer = GradientReducer(arena: model.arena, communicator: communicator,
                                  bucketCapacity: configuration.bucketCapacity, mode: configuration.reduction,
                                  compression: configuration.compression)
        statisticsReducer = CommunicatorStatisticsReducer(communicator: communicator)
        // Slot names start with the layer's index ("3.dense.weight").
        var offsets = [Int?](repeating: nil, count: model.layers.count)
        for slot in model.arena.slots {
            if let i = Int(slot.name.prefix { $0 != "." }), i < offsets.count { offsets[i] = min(offsets[i] ?? .max, slot.offset) }
        }
        layerOffsets = offsets
    }

    /// The fingerprint this rank compares with rank 0's.
    public func fingerprint(dataset: Dataset?) -> ReplicaFingerprint {
        ReplicaFingerprint(spec: spec, model: model, optimizer: optimizer, loss: loss, dataset: dataset,
                           options: configuration.fingerprintOptions)
    }

    /// Verifies that every rank built the same replica and options, then copies rank 0's
    /// parameters and optimizer state to every rank.
    ///
    /// - Parameter dataset: the training set (its shape and size must agree too).
    /// - Returns: the fingerprint's digest.
    /// - Throws: `DistError.replicaMismatch` on every rank when any rank differs.
    @discardableResult
    public func synchronize(dataset: Dataset?) throws -> UInt64 {
        let print = fingerprint(dataset: dataset)
        try print.verify(across: communicator)
        try ReplicaBroadcast.broadcastParameters(model.arena, communicator: communicator)
        try ReplicaBroadcast.broadcastOptimizerState(optimizer, communicator: communicator)
        return print.digest
    }

    /// Zeroes the gradients, then runs forward, the loss and backward on this rank's samples,
    /// leaving the *sum* of their gradients in the arena. Local: no communication.
    ///
    /// In deterministic mode the samples run one by one and only their loss and the largest
    /// gradient magnitudes are kept; `reduceGradients` then adds their gradients exactly.
    /// - Parameters:
    ///   - indices: dataset indices of this rank's slice (may be empty).
    ///   - epoch: the epoch, for the per-sample keys.
    ///   - dataset: where the samples come from.
    /// - Returns: the slice's loss sum, correct count and size.
    public func computeGradients<C: Collection>(indices: C, epoch: Int, dataset: Dataset) -> BatchTotals where C.Element == Int {
        if configuration.reduction == .deterministic { return scanSamples(Array(indices), epoch: epoch, dataset: dataset) }
        model.arena.zeroGradients()
        guard !indices.isEmpty else { return BatchTotals() }
        let (input, labels) = Batches.make(dataset, indices: indices)
        let keys = indices.map { DistributedSampler.sampleKey(seed: configuration.seed, epoch: epoch, index: $0) }
        let forwardStart = Timeline.now()
        let logits = model.forward(input, context: ForwardContext(training: true, sampleKeys: keys, statisticsReducer: statisticsReducer))
        let (lossSum, gradLogits) = loss.evaluate(logits: logits, labels: labels)
        timeline?.record("forward", lane: .compute, from: forwardStart, to: Timeline.now())
        backward(gradLogits)
        return BatchTotals(lossSum: lossSum, correct: Batches.correct(logits, labels), count: indices.count)
    }

    /// Forward and backward of one sample alone (a batch of one), its gradient left in the arena.
    private func sampleGradient(_ index: Int, epoch: Int, dataset: Dataset) -> BatchTotals {
        model.arena.zeroGradients()
        let (input, labels) = Batches.make(dataset, indices: [index])
        let key = DistributedSampler.sampleKey(seed: configuration.seed, epoch: epoch, index: index)
        let logits = model.forward(input, context: ForwardContext(training: true, sampleKeys: [key], statisticsReducer: statisticsReducer))
        let (lossSum, gradLogits) = loss.evaluate(logits: logits, labels: labels)
        model.backward(gradLogits)
        return BatchTotals(lossSum: lossSum, correct: Batches.correct(logits, labels), count: 1)
    }

    /// Deterministic mode, first pass: each sample's loss and the largest gradient magnitude per
    /// bucket (the exact sum's scale must be agreed before any sample is added).
    private func scanSamples(_ indices: [Int], epoch: Int, dataset: Dataset) -> BatchTotals {
        var totals = BatchTotals()
        var maxima = [Double](repeating: 0, count: reducer.buckets.count)
        for index in indices {
            totals += sampleGradient(index, epoch: epoch, dataset: dataset)
            for (b, m) in reducer.bucketMaxima().enumerated() { maxima[b] = max(maxima[b], m) }
        }
        model.arena.zeroGradients()
        exactSlice = (indices, epoch, dataset, maxima)
        return totals
    }

    /// Runs backward layer by layer in reverse, like `Sequential.backward`, and after each layer
    /// with parameters lets the reducer start the buckets that are now final; after the others,
    /// it lets MPI progress the reductions in flight.
    private func backward(_ gradLogits: Tensor) {
        var g = gradLogits
        for i in model.layers.indices.reversed() {
            let layerStart = Timeline.now()
            g = model.layers[i].backward(g, arena: model.arena)
            timeline?.record("backward \(i) \(model.layers[i].summary)", lane: .compute, from: layerStart, to: Timeline.now())
            if let offset = layerOffsets[i] {
                do { try reducer.gradientsFinal(from: offset) } catch { deferredError = deferredError ?? error }
            } else {
                do { try reducer.progress() } catch { deferredError = deferredError ?? error }
            }
        }
    }

    /// Replaces the gradients with their mean over the global batch (a collective). Waits for the
    /// buckets started during backward and starts the others.
    ///
    /// - Throws: `DistError.mpi` when a reduction failed (during backward or now).
    public func reduceGradients(globalBatchSize: Int) throws {
        if let error = deferredError ?? statisticsReducer.takeError() {
            deferredError = nil
            throw error
        }
        guard configuration.reduction == .deterministic else { return try reducer.reduce(globalBatchSize: globalBatchSize) }
        // Second pass: recompute each sample's gradient and add it exactly at the agreed scale.
        let slice = exactSlice ?? ([], 0, nil, [Double](repeating: 0, count: reducer.buckets.count))
        exactSlice = nil
        try reducer.beginExact(localMaxima: slice.maxima, globalBatchSize: globalBatchSize)
        for index in slice.indices {
            _ = sampleGradient(index, epoch: slice.epoch, dataset: slice.dataset!)
            reducer.accumulateExact()
        }
        try reducer.finishExact(globalBatchSize: globalBatchSize)
    }

    /// Applies one optimizer step to this replica (identical on every rank).
    public func applyUpdate() {
        let stepStart = Timeline.now()
        optimizer.step(arena: model.arena)
        timeline?.record("optimizer step", lane: .compute, from: stepStart, to: Timeline.now())
    }

    /// Evaluates the model on a dataset split across ranks (each sample exactly once).
    ///
    /// - Returns: loss sum, correct count and sample count over all ranks.
    public func evaluate(_ dataset: Dataset) throws -> BatchTotals {
        let shard = DistributedSampler.evaluationShard(count: dataset.count, rank: communicator.rank, size: communicator.size)
        var totals = BatchTotals()
        var start = shard.lowerBound
        while start < shard.upperBound {
            let end = min(start + configuration.evaluationBatchSize, shard.upperBound)
            let (input, labels) = Batches.make(dataset, indices: start ..< end)
            let logits = model.forward(input, context: ForwardContext(training: false))
            totals += BatchTotals(lossSum: loss.evaluate(logits: logits, labels: labels).sum,
                                  correct: Batches.correct(logits, labels), count: end - start)
            start = end
        }
        return try totals.reduced(across: communicator)
    }

    /// The whole run: verify replicas, broadcast, then for each epoch and step {batch, forward,
    /// loss, zero, backward, reduce, step, log}, and an evaluation per epoch.
    ///
    /// - Parameters:
    ///   - training: the training set (same on every rank).
    ///   - test: an optional test set, evaluated after each epoch.
    ///   - onEvent: called on every rank; print on rank 0 only.
    /// - Returns: the metrics of each epoch (the same on every rank).
    /// - Throws: `DistError` for bad options, mismatched replicas or MPI failures.
    @discardableResult
    public func fit(training: Dataset, test: Dataset? = nil, onEvent: (TrainingEvent) -> Void = { _ in }) throws -> [EpochMetrics] {
        let (rank, size) = (communicator.rank, communicator.size)
        let digest = try synchronize(dataset: training)
        try configuration.validate(ranks: size, trainingSamples: training.count)
        try configuration.validate(layerSummaries: model.layerSummaries, ranks: size, trainingSamples: training.count)
        let sampler = DistributedSampler(datasetCount: training.count, globalBatchSize: configuration.globalBatchSize,
                                         seed: configuration.seed, shuffle: configuration.shuffle, lastBatch: configuration.lastBatch)
        let steps = min(sampler.stepsPerEpoch, configuration.maxStepsPerEpoch ?? .max)
        onEvent(.ready(parameters: model.arena.parameterCount, fingerprint: digest, ranks: size, stepsPerEpoch: steps))

        var history: [EpochMetrics] = []
        for epoch in 0 ..< configuration.epochs {
            let started = Date()
            let order = sampler.permutation(epoch: epoch)
            var epochTotals = BatchTotals(), windowTotals = BatchTotals()
            for step in 0 ..< steps {
                let globalBatch = sampler.globalBatch(step: step, order: order)
                let mine = sampler.shard(step: step, order: order, rank: rank, size: size)
                let totals = computeGradients(indices: mine, epoch: epoch, dataset: training)
                try reduceGradients(globalBatchSize: globalBatch.count)
                applyUpdate()
                epochTotals += totals
                windowTotals += totals
                if configuration.logInterval > 0 && ((step + 1) % configuration.logInterval == 0 || step + 1 == steps) {
                    let window = try windowTotals.reduced(across: communicator)
                    onEvent(.progress(epoch: epoch, step: step + 1, steps: steps, loss: window.meanLoss, accuracy: window.accuracy))
                    windowTotals = BatchTotals()
                }
            }
            let train = try epochTotals.reduced(across: communicator)
            let evaluation = try test.map { try evaluate($0) }
            let metrics = EpochMetrics(epoch: epoch, trainLoss: train.meanLoss, trainAccuracy: train.accuracy,
                                       trainSamples: train.count, testLoss: evaluation?.meanLoss,
                                       testAccuracy: evaluation?.accuracy, testSamples: evaluation?.count,
                                       seconds: Date().timeIntervalSince(started))
            history.append(metrics)
            onEvent(.epoch(metrics))
        }
        return history
    }
}

/// Turning dataset indices into a batch.
enum Batches {
    /// The samples at `indices` as one `[N] + sampleShape` tensor, and their labels.
    static func make<C: Collection>(_ dataset: Dataset, indices: C) -> (Tensor, [Int32]) where C.Element == Int {
        let size = dataset.sampleShape.reduce(1, *)
        var input = Tensor(shape: [indices.count] + dataset.sampleShape)
        var labels: [Int32] = []
        labels.reserveCapacity(indices.count)
        input.storage.withUnsafeMutableBufferPointer { p in
            for (n, index) in indices.enumerated() {
                dataset.writeSample(at: index, into: p.baseAddress! + n * size)
                labels.append(dataset.label(at: index))
            }
        }
        return (input, labels)
    }

    /// How many rows of `logits` have their largest value at the label.
    static func correct(_ logits: Tensor, _ labels: [Int32]) -> Int {
        let n = logits.batchSize, classes = logits.count / max(n, 1)
        var hits = 0
        logits.storage.withUnsafeBufferPointer { z in
            for i in 0 ..< n {
                var best = 0
                for j in 1 ..< classes where z[i * classes + j] > z[i * classes + best] { best = j }
                if best == Int(labels[i]) { hits += 1 }
            }
        }
        return hits
    }
}
