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
    /// This rank's replica and its gradient reduction (PyTorch's `DistributedDataParallel`).
    public let ddp: DistributedDataParallel
    /// This rank's replica (`ddp.model`).
    public var model: Sequential { ddp.model }
    /// The optimizer (state broadcast from rank 0 by `synchronize`).
    public let optimizer: Optimizer
    /// The loss (sum over a batch).
    public let loss: Loss
    /// Records forward, backward per layer, bucket reductions and optimizer steps, when set.
    public var timeline: Timeline? {
        get { ddp.timeline }
        set { ddp.timeline = newValue }
    }
    /// Where the next `applyUpdate` reads the mean gradient (what `reduceGradients` returned), back
    /// to the arena's values after the step.
    private var updateGradients = GradientSource.arena(scale: 1)
    /// Deterministic mode: one copy of the model's layers per chunk this rank computes at once
    /// (their own activations and caches; parameters stay in the one arena).
    var chunkLayers: [[any Layer]] = []
    /// Deterministic mode: one copy per dense layer (by layer index; nil for other layers) that runs
    /// all of this rank's chunks as one batch (a dense layer's rows do not depend on each other).
    var batchedDense: [Dense?] = []
    /// Deterministic mode: the step's micro-batches so far, in order (a redo computes them again),
    /// each a range of `exactIndices`, which holds the dataset indices of the step's micro-batches
    /// one after another.
    var exactMicroBatches: [(batch: Range<Int>, epoch: Int, dataset: Dataset)] = []
    var exactIndices: [Int] = []
    /// Deterministic mode: the buffers of this rank's chunks, kept from step to step.
    var chunkBuffers = ChunkBuffers()
    /// Deterministic mode: hands synchronized batch norms the global statistics gathered in chunk order.
    let presetStatistics = PresetStatistics()
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

    /// Builds the replica and initializes its parameters from the seed.
    ///
    /// - Parameters:
    ///   - spec: the model.
    ///   - optimizer: the optimizer (fresh).
    ///   - loss: the loss.
    ///   - communicator: the ranks.
    ///   - configuration: the run's options.
    /// - Throws: `ModelError` when the model cannot be built; `DataError` for a bad augmentation.
    public init(
        spec: ModelSpec, optimizer: Optimizer, loss: Loss, communicator: Communicator,
        configuration: TrainingConfiguration
    ) throws {
        self.spec = spec
        self.optimizer = optimizer
        self.loss = loss
        self.communicator = communicator
        self.configuration = configuration
        let model = try spec.build()
        let a = configuration.augmentation
        evaluationAugmentation = a.isRandom ? try Augmentation(rescale: a.rescale, mean: a.mean, std: a.std) : a
        model.initializeParameters(seed: configuration.seed)
        if configuration.threads > 1, let norm = model.layers.first(where: \.usesBatchStatistics) {
            throw DistError.invalidConfiguration(
                option: "threads",
                reason:
                    "\(configuration.threads) threads a rank cannot run \(norm.summary) yet (its batch statistics would need summing across the threads); hint: run more ranks instead (--np), or drop --threads"
            )
        }
        ddp = DistributedDataParallel(model: model, communicator: communicator, configuration: configuration)
    }

    /// The fingerprint this rank compares with rank 0's.
    public func fingerprint(dataset: Dataset?) -> ReplicaFingerprint {
        ReplicaFingerprint(
            spec: spec, model: model, optimizer: optimizer, loss: loss, dataset: dataset,
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
    /// - Throws: `DistError.mpi` when a bucket's reduction cannot start during backward.
    public func computeGradients<C: Collection>(
        indices: C, epoch: Int, dataset: Dataset,
        accumulating: Bool = false, final: Bool = true
    ) throws -> BatchTotals where C.Element == Int {
        precondition(
            configuration.reduction == .fast,
            "computeGradients(indices:) takes a rank's slice, which deterministic mode does not use; pass the global batch to computeGradients(globalBatch:).")
        if configuration.threads > 1 && indices.count > 1 {
            return try computeGradientsOnThreads(Array(indices), epoch: epoch, dataset: dataset, accumulating: accumulating, final: final)
        }
        if !accumulating { ddp.model.arena.zeroGradients() }
        guard !indices.isEmpty else { return BatchTotals() }
        // The first layer still holds the last batch: let go of it, so the batch is refilled in place.
        ddp.model.releaseInputs()
        batchIndices.removeAll(keepingCapacity: true)
        batchIndices.append(contentsOf: indices)
        fillTrainingBatch(
            batchIndices, epoch: epoch, dataset: dataset, into: &batch, labels: &batchLabels, keys: &batchKeys,
            scratch: &augmentationScratch)
        let forwardStart = Timeline.now()
        let logits = ddp.model.forward(batch, context: ForwardContext(training: true, sampleKeys: batchKeys, statisticsReducer: ddp.statisticsReducer))
        let lossSum = loss.evaluate(logits: logits, labels: batchLabels, gradient: &gradLogits)
        timeline?.record("forward", lane: .compute, from: forwardStart, to: Timeline.now())
        try ddp.backward(gradLogits, startBuckets: final)
        return BatchTotals(lossSum: lossSum, correct: Metrics.correctPredictions(logits: logits, labels: batchLabels), count: indices.count)
    }

    /// A training batch through the augmentation, with each sample's key (seed, epoch, index), into
    /// buffers the caller keeps (their storage is reused when the size is unchanged).
    func fillTrainingBatch(
        _ indices: [Int], epoch: Int, dataset: Dataset, into input: inout Tensor,
        labels: inout [Int32], keys: inout [UInt64], scratch: inout [Float]
    ) {
        keys.removeAll(keepingCapacity: true)
        for i in indices { keys.append(DistributedSampler.sampleKey(seed: configuration.seed, epoch: epoch, index: i)) }
        BatchLoader.makeBatch(
            into: &input, labels: &labels, scratch: &scratch, dataset: dataset, indices: indices, keys: keys,
            augmentation: configuration.augmentation)
    }

    /// Replaces the gradients with their mean over the global batch (a collective):
    /// `DistributedDataParallel.reduceGradients`, which in deterministic mode may have this
    /// trainer compute the step's micro-batches again.
    ///
    /// With `scalingInUpdate`, the reduction leaves the mean in the form it has it, and the next
    /// `applyUpdate` reads it from there (one pass over the gradients fewer). The training loop
    /// and `bench steps` do this; read the arena's gradients in between only without it.
    /// - Throws: `DistError.mpi` when a reduction failed (during backward or now).
    public func reduceGradients(globalBatchSize: Int, scalingInUpdate: Bool = false) throws {
        defer {
            exactMicroBatches.removeAll(keepingCapacity: true)
            exactIndices.removeAll(keepingCapacity: true)
        }
        updateGradients = try ddp.reduceGradients(
            globalBatchSize: globalBatchSize, scalingInUpdate: scalingInUpdate,
            optimizer: optimizer
        ) { try recomputeExactStep() }
    }

    /// Applies one optimizer step to this replica (identical on every rank), scaling the gradients
    /// if `reduceGradients(globalBatchSize:scalingInUpdate:)` left that to it. A sharded step
    /// (deterministic mode on several ranks) updates this rank's parts, then gathers the others'
    /// (a collective).
    /// - Throws: `DistError.mpi` when the gather of a sharded step fails.
    public func applyUpdate() throws {
        let stepStart = Timeline.now()
        optimizer.step(arena: ddp.model.arena, gradients: updateGradients)
        updateGradients = .arena(scale: 1)
        timeline?.record("optimizer step", lane: .compute, from: stepStart, to: Timeline.now())
        try ddp.exactReducer?.shareParameters()
    }

    /// Evaluates the model on a dataset split across ranks (each sample exactly once), with the
    /// augmentation's rescale and normalization but none of its random transformations.
    ///
    /// - Returns: loss sum, correct count and sample count over all ranks.
    public func evaluate(_ dataset: Dataset) throws -> BatchTotals {
        try Evaluation.run(
            model: &ddp.model, loss: loss, dataset: dataset, topK: nil, batchSize: configuration.evaluationBatchSize,
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
    public func fit(
        training: Dataset, validation: Dataset? = nil, test: Dataset? = nil,
        from start: TrainingPosition = TrainingPosition(), callbacks: [TrainingCallback] = [],
        onEvent: @escaping (TrainingEvent) -> Void = { _ in }
    ) throws -> TrainingResult {
        try TrainingLoop(
            trainer: self, training: training, validation: validation, test: test, from: start,
            callbacks: callbacks, onEvent: onEvent
        ).run()
    }
}
