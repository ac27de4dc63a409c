import Foundation
import NN

/// Trains one replica of a model on this rank's shard of every global batch, keeping all
/// replicas identical by averaging gradients across ranks before each optimizer step.
///
/// Use `fit(training:validation:test:from:callbacks:onEvent:)` for the whole loop (`TrainingLoop`;
/// `restore(from:trainingSamples:)` before it to resume), or the step functions
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
    let layerOffsets: [Int?]
    /// Each layer's summary (for the timeline; read while backward holds the model).
    let layerNames: [String]
    /// What the next optimizer step multiplies the arena's gradients by: set by every fast-mode
    /// `reduceGradients` (1/B when it left the float32 sums in place, else 1), back to 1 after the
    /// step.
    /// Where the next `applyUpdate` reads the mean gradient (the reduction's form of it).
    private var updateGradients = GradientSource.arena(scale: 1)
    /// An MPI error raised while starting a bucket during backward, thrown by `reduceGradients`.
    var deferredError: Error?
    /// Deterministic mode: sums each chunk's gradient exactly (nil in fast mode).
    public let exactReducer: ExactGradientReducer?
    /// Deterministic mode: the arena slot indices of each layer's parameters (nil for layers without).
    let layerSlots: [Range<Int>?]
    /// Deterministic mode: one copy of the model's layers per chunk this rank computes at once
    /// (their own activations and caches; parameters stay in the one arena).
    var chunkLayers: [[any Layer]] = []
    /// Deterministic mode: one copy per dense layer (by layer index) that runs all of this rank's
    /// chunks as one batch (a dense layer's rows do not depend on each other).
    var batchedDense: [Int: Dense] = [:]
    /// Deterministic mode: the step in progress (its micro-batches, for a redo, and batch statistics).
    var exactStep = ExactStep()
    /// The training augmentation's deterministic part (rescale, normalization) for evaluation.
    let evaluationAugmentation: Augmentation
    /// The training set's size, recorded in checkpoints.
    var trainingSamples = 0
    /// Fast mode's batch, its labels and sample keys, the augmentation's scratch sample and the
    /// loss gradient, reused from step to step (a steady step allocates nothing).
    private var batch = Tensor.empty, batchLabels: [Int32] = [], batchKeys: [UInt64] = [], augmentationScratch: [Float] = []
    private var batchIndices: [Int] = []
    /// Fast mode with several threads: one worker per sub-batch (made on first use).
    var subBatchWorkers: [SubBatchWorker] = []
    /// Deterministic mode on several threads: a gradient buffer per thread over the shared
    /// parameters, which its chunks' backward adds into.
    var chunkGradientArenas: [ParameterArena] = []
    private var gradLogits = Tensor.empty
    /// On several ranks, backward polls the reductions in flight between samples of long layers:
    /// the fast reducer's buckets, or in deterministic mode the exact reducer's (made once;
    /// `unowned`, as the trainer owns it).
    lazy var pollingContext = BackwardContext(progress: { [unowned self] in
        do {
            if let exact = self.exactReducer { try exact.progress() } else { try self.reducer.progress() }
        } catch {
            self.deferredError = self.deferredError ?? error
        }
    })

    /// Builds the replica and initializes its parameters from the seed.
    ///
    /// - Parameters:
    ///   - spec: the model.
    ///   - optimizer: the optimizer (fresh).
    ///   - loss: the loss.
    ///   - communicator: the ranks.
    ///   - configuration: the run's options.
    /// - Throws: `ModelError` when the model cannot be built; `DataError` for a bad augmentation.
    public init(spec: ModelSpec, optimizer: Optimizer, loss: Loss, communicator: Communicator,
                configuration: TrainingConfiguration) throws {
        self.spec = spec
        self.optimizer = optimizer
        self.loss = loss
        self.communicator = communicator
        self.configuration = configuration
        model = try spec.build()
        let a = configuration.augmentation
        evaluationAugmentation = a.isRandom ? try Augmentation(rescale: a.rescale, mean: a.mean, std: a.std) : a
        model.initializeParameters(seed: configuration.seed)
        // The arena lays out the slots layer by layer, each at a higher offset than the last.
        let slotRanges = model.slotIndices.map { $0.isEmpty ? nil : $0 }
        layerSlots = slotRanges
        let slots = model.arena.slots
        layerOffsets = slotRanges.map { $0.map { slots[$0.lowerBound].offset } }
        layerNames = model.layerSummaries
        let denseWeights = zip(model.layers, slotRanges).compactMap { $0 is Dense ? $1?.lowerBound : nil }
        reducer = GradientReducer(arena: model.arena, communicator: communicator,
                                  bucketCapacity: configuration.bucketCapacity, mode: configuration.reduction,
                                  compression: configuration.compression, denseFactors: configuration.denseFactors ? denseWeights : [])
        statisticsReducer = CommunicatorStatisticsReducer(communicator: communicator)
        exactReducer = configuration.reduction == .deterministic
            ? ExactGradientReducer(arena: model.arena, communicator: communicator, buckets: reducer.buckets, denseWeights: denseWeights)
            : nil
        if configuration.threads > 1, let norm = model.layers.first(where: \.usesBatchStatistics) {
            throw DistError.invalidConfiguration(option: "threads",
                                                 reason: "\(configuration.threads) threads a rank cannot run \(norm.summary) yet (its batch statistics would need summing across the threads); hint: run more ranks instead (--np), or drop --threads")
        }
        // `--dense-factors`: on a step where the reducer gathers a dense weight's factors, the
        // layer hands them over instead of adding its weight's gradient.
        for (i, range) in slotRanges.enumerated() where configuration.denseFactors {
            guard var dense = model.layers[i] as? Dense, let slot = range?.lowerBound else { continue }
            dense.weightGradientTaker = { [reducer] gy, x, _ in
                guard reducer.sendsFactors(slot: slot) else { return false }
                reducer.storeFactors(slot: slot, gradOutput: gy, input: x)
                return true
            }
            model.layers[i] = dense
        }
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

    /// Runs forward, the loss and backward on this rank's samples, leaving the *sum* of their
    /// gradients in the arena (zeroed first unless `accumulating`). Local: no communication.
    ///
    /// Gradient accumulation calls it once per micro-batch: the first with `accumulating: false`,
    /// the others with `true`, and only the last with `final: true`, so the reducer starts no
    /// bucket before every micro-batch has added into it.
    /// Fast mode only: deterministic mode computes whole chunks of the global batch
    /// (`computeGradients(globalBatch:epoch:dataset:accumulating:final:)`).
    /// - Parameters:
    ///   - indices: dataset indices of this rank's slice (may be empty).
    ///   - epoch: the epoch, for the per-sample keys.
    ///   - dataset: where the samples come from.
    ///   - accumulating: add into the gradients already in the arena.
    ///   - final: the last micro-batch of the step (buckets may start during its backward).
    /// - Returns: the slice's loss sum, correct count and size.
    public func computeGradients<C: Collection>(indices: C, epoch: Int, dataset: Dataset,
                                                accumulating: Bool = false, final: Bool = true) -> BatchTotals where C.Element == Int {
        precondition(configuration.reduction == .fast,
                     "computeGradients(indices:) takes a rank's slice, which deterministic mode does not use; pass the global batch to computeGradients(globalBatch:).")
        if configuration.threads > 1 && indices.count > 1 {
            return computeGradientsOnThreads(Array(indices), epoch: epoch, dataset: dataset, accumulating: accumulating, final: final)
        }
        if !accumulating { model.arena.zeroGradients() }
        guard !indices.isEmpty else { return BatchTotals() }
        // The first layer still holds the last batch: let go of it, so the batch is refilled in place.
        model.releaseInputs()
        batchIndices.removeAll(keepingCapacity: true)
        batchIndices.append(contentsOf: indices)
        fillTrainingBatch(batchIndices, epoch: epoch, dataset: dataset, into: &batch, labels: &batchLabels, keys: &batchKeys,
                          scratch: &augmentationScratch)
        let forwardStart = Timeline.now()
        let logits = model.forward(batch, context: ForwardContext(training: true, sampleKeys: batchKeys, statisticsReducer: statisticsReducer))
        let lossSum = loss.evaluate(logits: logits, labels: batchLabels, gradient: &gradLogits)
        timeline?.record("forward", lane: .compute, from: forwardStart, to: Timeline.now())
        backward(gradLogits, startBuckets: final)
        return BatchTotals(lossSum: lossSum, correct: Metrics.correctPredictions(logits: logits, labels: batchLabels), count: indices.count)
    }

    /// A training batch through the augmentation, with each sample's key (seed, epoch, index).
    func trainingBatch(_ indices: [Int], epoch: Int, dataset: Dataset) -> (Tensor, [Int32], [UInt64]) {
        var input = Tensor.empty, labels: [Int32] = [], keys: [UInt64] = [], scratch: [Float] = []
        fillTrainingBatch(indices, epoch: epoch, dataset: dataset, into: &input, labels: &labels, keys: &keys, scratch: &scratch)
        return (input, labels, keys)
    }

    /// `trainingBatch` into buffers the caller keeps (their storage is reused when the size is unchanged).
    func fillTrainingBatch(_ indices: [Int], epoch: Int, dataset: Dataset, into input: inout Tensor,
                                   labels: inout [Int32], keys: inout [UInt64], scratch: inout [Float]) {
        keys.removeAll(keepingCapacity: true)
        for i in indices { keys.append(DistributedSampler.sampleKey(seed: configuration.seed, epoch: epoch, index: i)) }
        BatchLoader.makeBatch(into: &input, labels: &labels, scratch: &scratch, dataset: dataset, indices: indices, keys: keys,
                              augmentation: configuration.augmentation)
    }

    /// Runs the model's backward, and as each layer's is done (`Sequential.backward(_:context:afterLayer:)`,
    /// PyTorch DDP's gradient hooks) lets the reducer start the buckets that are now final, unless
    /// more micro-batches are still to add into them; after layers without parameters it lets MPI
    /// progress the reductions in flight. A dense weight sent as its factors hands them to the
    /// reducer from the layer itself (`Dense.weightGradientTaker`, set at init).
    private func backward(_ gradLogits: Tensor, startBuckets: Bool) {
        // Long layers (convolutions) poll too, between samples, so that a bucket started before
        // them advances during them rather than only in the wait after backward.
        let context = communicator.size > 1 && configuration.reduction == .fast ? pollingContext : BackwardContext()
        let timeline = self.timeline, names = layerNames, offsets = layerOffsets, reducer = self.reducer
        var layerStart = Timeline.now()
        model.backward(gradLogits, context: context) { i in
            timeline?.record("backward \(i) \(names[i])", lane: .compute, from: layerStart, to: Timeline.now())
            do {
                if startBuckets, let offset = offsets[i] { try reducer.gradientsFinal(from: offset) } else { try reducer.progress() }
            } catch {
                deferredError = deferredError ?? error
            }
            layerStart = Timeline.now()
        }
    }

    /// Replaces the gradients with their mean over the global batch (a collective). Waits for the
    /// buckets started during backward and starts the others.
    ///
    /// With `scalingInUpdate`, the reduction leaves the mean in the form it has it, and the next
    /// `applyUpdate` reads it from there: the float32 path the summed gradients in the arena
    /// (scaled by 1/B as the optimizer reads them), the exact path its Double sums (turned into
    /// the mean as they are read). The same update, one pass over the gradients fewer. (The
    /// training loop and `bench steps` do this; read the arena's gradients in between only without it.)
    /// - Throws: `DistError.mpi` when a reduction failed (during backward or now).
    public func reduceGradients(globalBatchSize: Int, scalingInUpdate: Bool = false) throws {
        if let error = deferredError ?? statisticsReducer.takeError() {
            deferredError = nil
            throw error
        }
        guard let exactReducer else {
            updateGradients = .arena(scale: try reducer.reduce(globalBatchSize: globalBatchSize, leavingScale: scalingInUpdate))
            return
        }
        // A full step after sharded ones needs every rank's moments first.
        if !scalingInUpdate { try exactReducer.shareOptimizerState(optimizer) }
        try reduceExactly(globalBatchSize: globalBatchSize, writingMean: !scalingInUpdate)
        updateGradients = exactReducer.gradients
    }

    /// Applies one optimizer step to this replica (identical on every rank), scaling the gradients
    /// if `reduceGradients(globalBatchSize:scalingInUpdate:)` left that to it. A sharded step
    /// (deterministic mode on several ranks) updates this rank's parts, then gathers the others'
    /// (a collective).
    /// - Throws: `DistError.mpi` when the gather of a sharded step fails.
    public func applyUpdate() throws {
        let stepStart = Timeline.now()
        optimizer.step(arena: model.arena, gradients: updateGradients)
        updateGradients = .arena(scale: 1)
        timeline?.record("optimizer step", lane: .compute, from: stepStart, to: Timeline.now())
        try exactReducer?.shareParameters()
    }

    /// Evaluates the model on a dataset split across ranks (each sample exactly once), with the
    /// augmentation's rescale and normalization but none of its random transformations.
    ///
    /// - Returns: loss sum, correct count and sample count over all ranks.
    public func evaluate(_ dataset: Dataset) throws -> BatchTotals {
        try Evaluation.run(model: &model, loss: loss, dataset: dataset, topK: nil, batchSize: configuration.evaluationBatchSize,
                           communicator: communicator, preprocessing: evaluationAugmentation)
    }

    /// The whole run (`TrainingLoop`): verify replicas, broadcast, then for each epoch and step
    /// {batch, forward, loss, zero, backward, reduce, step}, a validation pass per epoch and the
    /// test set once at the end, with callbacks at fixed points: batch-norm averaging, progress,
    /// early stopping, checkpoints (from the configuration), then `callbacks`.
    ///
    /// - Parameters:
    ///   - training: the training set (same on every rank).
    ///   - validation: an optional validation set, evaluated after each epoch.
    ///   - test: an optional test set, evaluated once after the last step.
    ///   - start: where to begin (from `restore(from:)` when resuming).
    ///   - callbacks: more callbacks, called after the standard ones in this order (on every rank).
    ///   - onEvent: called on every rank (`.checkpoint` on rank 0 only); print on rank 0 only.
    /// - Returns: the figures of each epoch and of the test set (the same on every rank).
    /// - Throws: `DistError` for bad options, mismatched replicas, MPI failures or a non-finite
    ///   loss (on every rank at the same step, before that step's update); `CheckpointError` on
    ///   rank 0 when a checkpoint cannot be written; what a callback throws.
    @discardableResult
    public func fit(training: Dataset, validation: Dataset? = nil, test: Dataset? = nil,
                    from start: TrainingPosition = TrainingPosition(), callbacks: [TrainingCallback] = [],
                    onEvent: @escaping (TrainingEvent) -> Void = { _ in }) throws -> TrainingResult {
        try TrainingLoop(trainer: self, training: training, validation: validation, test: test, from: start,
                         callbacks: callbacks, onEvent: onEvent).run()
    }
}

