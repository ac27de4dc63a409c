import Foundation
import NN

/// One rank's replica and the reduction that keeps it equal to the others', as PyTorch's
/// `DistributedDataParallel` wraps a module: the model, the bucketed gradient reducer (or, in
/// deterministic mode, the exact one), the statistics reducer of synchronized layers, and the
/// per-layer hook that starts a bucket's reduction as soon as backward has made its gradients final.
///
/// The trainer (`DataParallelTrainer`) owns what surrounds a step (batches, the loss, the
/// optimizer, evaluation, checkpoints, the loop) and calls in here for backward and the
/// reduction; `reduceGradients` hands back where the optimizer reads the mean gradient.
/// Deterministic mode's step state (exact sums, batch statistics in chunk order, the redo) is in
/// `DistributedDataParallel+Exact.swift`.
///
/// Errors: a bucket that fails to start is thrown from `backward` (the hook throws through
/// `Sequential.backward(_:context:afterLayer:)`). A poll from inside a long layer
/// (`BackwardContext.progress`, between the samples of a convolution) cannot throw, since the
/// kernels' loops do not; its error waits in `deferredError` and `reduceGradients` throws it.
public final class DistributedDataParallel {
    /// The ranks.
    public let communicator: Communicator
    /// This rank's replica (parameters and gradients in its arena).
    public internal(set) var model: Sequential
    /// Averages the gradient arena across ranks (fast mode; also plans the buckets the exact
    /// reducer follows).
    public let reducer: GradientReducer
    /// Deterministic mode: sums each chunk's gradient exactly (nil in fast mode).
    public let exactReducer: ExactGradientReducer?
    /// Sums synchronized layers' statistics across ranks during forward and backward.
    public let statisticsReducer: CommunicatorStatisticsReducer
    /// Records backward per layer and bucket reductions, when set.
    public var timeline: Timeline? {
        get { reducer.timeline }
        set { reducer.timeline = newValue }
    }
    /// The run's options (reduction mode, buckets, chunks).
    let configuration: TrainingConfiguration
    /// The lowest arena offset of each layer's parameters (nil for layers without any).
    let layerOffsets: [Int?]
    /// Each layer's summary (for the timeline; read while backward holds the model).
    let layerNames: [String]
    /// The arena slot indices of each layer's parameters (nil for layers without).
    let layerSlots: [Range<Int>?]
    /// An MPI error raised by a poll inside a long layer's backward, thrown by `reduceGradients`.
    var deferredError: Error?
    /// Deterministic mode: the step in progress (its batch statistics, what a redo restores).
    var exactStep = ExactStep()
    /// The model's batch-norm layers: index, channels, synchronized (deterministic mode orders
    /// their statistics).
    let batchNormLayers: [(index: Int, channels: Int, synchronized: Bool)]
    /// On several ranks, backward polls the reductions in flight between samples of long layers:
    /// the fast reducer's buckets, or in deterministic mode the exact reducer's (made once;
    /// `unowned`, as this object owns it).
    lazy var pollingContext = BackwardContext(progress: { [unowned self] in
        do {
            if let exact = self.exactReducer { try exact.progress() } else { try self.reducer.progress() }
        } catch {
            self.deferredError = self.deferredError ?? error
        }
    })

    /// Wraps `model` (built and initialized the same on every rank) with the reducers the
    /// configuration asks for.
    ///
    /// - Parameters:
    ///   - model: the replica.
    ///   - communicator: the ranks.
    ///   - configuration: the reduction mode, bucket capacity, compression, dense factors and chunks.
    public init(model: Sequential, communicator: Communicator, configuration: TrainingConfiguration) {
        self.model = model
        self.communicator = communicator
        self.configuration = configuration
        // The arena lays out the slots layer by layer, each at a higher offset than the last.
        let slotRanges = model.slotIndices.map { $0.isEmpty ? nil : $0 }
        layerSlots = slotRanges
        let slots = model.arena.slots
        layerOffsets = slotRanges.map { $0.map { slots[$0.lowerBound].offset } }
        layerNames = model.layerSummaries
        batchNormLayers = DistributedDataParallel.batchNormLayers(of: model)
        let denseWeights = zip(model.layers, slotRanges).compactMap { $0 is Dense ? $1?.lowerBound : nil }
        reducer = GradientReducer(
            arena: model.arena, communicator: communicator,
            bucketCapacity: configuration.bucketCapacity, mode: configuration.reduction,
            compression: configuration.compression, denseFactors: configuration.denseFactors ? denseWeights : [])
        statisticsReducer = CommunicatorStatisticsReducer(communicator: communicator)
        exactReducer =
            configuration.reduction == .deterministic
            ? ExactGradientReducer(arena: model.arena, communicator: communicator, buckets: reducer.buckets, denseWeights: denseWeights)
            : nil
        // `--dense-factors`: on a step where the reducer gathers a dense weight's factors, the
        // layer hands them over instead of adding its weight's gradient.
        for (i, range) in slotRanges.enumerated() where configuration.denseFactors {
            guard var dense = self.model.layers[i] as? Dense, let slot = range?.lowerBound else { continue }
            dense.weightGradientTaker = { [reducer] gy, x, _ in
                guard reducer.sendsFactors(slot: slot) else { return false }
                reducer.storeFactors(slot: slot, gradOutput: gy, input: x)
                return true
            }
            self.model.layers[i] = dense
        }
    }

    /// Tells the reducer how many rows each rank's slice of a global batch of `count` samples
    /// has, when dense weights travel as their factors (before the step's only micro-batch).
    func expectFactors(globalBatchCount count: Int) {
        guard configuration.denseFactors else { return }
        reducer.expectFactors(
            rowsByRank: (0 ..< communicator.size).map {
                DistributedSampler.slice(count: count, rank: $0, size: communicator.size).count
            })
    }

    /// Runs the replica's backward from the loss gradient; as each layer's is done
    /// (`Sequential.backward(_:context:afterLayer:)`, PyTorch DDP's gradient hooks) the hook
    /// `gradientsFinal` starts the buckets that are now final, unless more micro-batches are
    /// still to add into them. A dense weight sent as its factors hands them to the reducer from
    /// the layer itself (`Dense.weightGradientTaker`, set at init).
    ///
    /// - Parameters:
    ///   - gradLogits: the loss gradient with respect to the model's output.
    ///   - startBuckets: the step's last micro-batch (its buckets may start during backward).
    /// - Throws: `DistError.mpi` when a bucket's reduction cannot start (the pass stops there).
    func backward(_ gradLogits: Tensor, startBuckets: Bool) throws {
        // Long layers (convolutions) poll too, between samples, so that a bucket started before
        // them advances during them rather than only in the wait after backward.
        let context = communicator.size > 1 && exactReducer == nil ? pollingContext : BackwardContext()
        let timeline = self.timeline, names = layerNames, offsets = layerOffsets, reducer = self.reducer
        var layerStart = Timeline.now()
        try model.backward(gradLogits, context: context) { i in
            timeline?.record("backward \(i) \(names[i])", lane: .compute, from: layerStart, to: Timeline.now())
            try DistributedDataParallel.gradientsFinal(layer: i, offset: offsets[i], startBuckets: startBuckets, reducer: reducer)
            layerStart = Timeline.now()
        }
    }

    /// The hook after layer `layer`'s backward: its parameters' gradients (from `offset` up) are
    /// final, so the buckets they complete start reducing; after a layer without parameters, or
    /// on a micro-batch that is not the last, MPI progresses the reductions in flight.
    private static func gradientsFinal(layer: Int, offset: Int?, startBuckets: Bool, reducer: GradientReducer) throws {
        if startBuckets, let offset { try reducer.gradientsFinal(from: offset) } else { try reducer.progress() }
    }

    /// Replaces the gradients with their mean over the global batch (a collective). Waits for the
    /// buckets started during backward and starts the others; in deterministic mode finishes the
    /// exact sums (`finishExactStep`).
    ///
    /// With `scalingInUpdate`, the reduction leaves the mean in the form it has it, and the
    /// returned source says how the optimizer reads it: the float32 path the summed gradients in
    /// the arena (scaled by 1/B as they are read), the exact path its Double sums (turned into the
    /// mean as they are read). The same update, one pass over the gradients fewer. Without it the
    /// arena holds the mean and the source is `.arena(scale: 1)`.
    /// - Parameters:
    ///   - globalBatchSize: B, the samples of the step over every rank.
    ///   - scalingInUpdate: leave the mean in the reduction's form for the optimizer.
    ///   - optimizer: deterministic mode gathers its moments before a full (unsharded) step.
    ///   - recompute: deterministic mode: computes the step's micro-batches again (a redo, when
    ///     the agreed scales did not fit).
    /// - Returns: where the next optimizer step reads the mean gradient.
    /// - Throws: `DistError.mpi` when a reduction failed (during backward or now).
    func reduceGradients(
        globalBatchSize: Int, scalingInUpdate: Bool, optimizer: Optimizer,
        recompute: () throws -> Void
    ) throws -> GradientSource {
        try throwDeferredError()
        guard let exactReducer else {
            return .arena(scale: try reducer.reduce(globalBatchSize: globalBatchSize, leavingScale: scalingInUpdate))
        }
        // A full step after sharded ones needs every rank's moments first.
        if !scalingInUpdate { try exactReducer.shareOptimizerState(optimizer) }
        try finishExactStep(globalBatchSize: globalBatchSize, writingMean: !scalingInUpdate, recompute: recompute)
        return exactReducer.gradients
    }

    /// Throws (once) what a poll inside backward or a synchronized layer's statistics reduction
    /// failed with.
    func throwDeferredError() throws {
        if let error = deferredError ?? statisticsReducer.takeError() {
            deferredError = nil
            throw error
        }
    }
}
