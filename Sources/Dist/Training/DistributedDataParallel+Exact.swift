import Foundation
import NN

/// Deterministic mode's part of the reduction: the exact sums of a step, a redo when their agreed
/// scales did not fit, and the batch-norm running statistics updated in chunk order.
///
/// The trainer computes the chunks (`DataParallelTrainer+Chunks.swift`: forward, loss and backward
/// of fixed chunks of the global batch, each chunk's gradient handed to the exact reducer); this
/// part holds what the replicas must agree on: the step's exact scales (`beginExactStep`), the
/// chunks' batch statistics gathered in chunk order, and the finish (`finishExactStep`), which
/// asks the trainer to compute the step again when the sums must be redone.
extension DistributedDataParallel {
    /// The batch statistics of a deterministic step, and what a redo restores. Kept from step to
    /// step (`reset` keeps the arrays' storage), so a steady step allocates nothing here.
    struct ExactStep {
        /// Whether a micro-batch of this step has been computed (else the reduction begins an empty one).
        var begun = false
        /// The most chunks an element's sum receives this step (fixes the exact scales).
        var terms = 1
        /// Whether the step is one micro-batch: then `termsByRank` holds each rank's chunk count,
        /// and `chunks` the chunks (sample ranges of the batch).
        var oneMicroBatch = false
        var termsByRank: [Int] = []
        var chunks: [Range<Int>] = []
        /// The running statistics before the step (restored before the ordered updates or a redo).
        var running: [Float] = []
        /// Per micro-batch: its number of chunks (over every rank).
        var chunkCounts: [Int] = []
        /// Per micro-batch: this rank's chunks' unsynchronized statistics, by chunk index.
        var chunkStatistics: [[Int: [Double]]] = []
        /// Per micro-batch and synchronized layer: the global batch's count, sum and sum of squares.
        var globalStatistics: [[Int: [Double]]] = []

        /// Back to a step not begun, keeping the arrays' storage (`running` is rewritten by the
        /// next `beginExactStep`).
        mutating func reset() {
            begun = false
            terms = 1
            oneMicroBatch = false
            termsByRank.removeAll(keepingCapacity: true)
            chunks.removeAll(keepingCapacity: true)
            clearBatchStatistics()
        }

        /// Forgets the micro-batches' batch statistics (a redo records them again).
        mutating func clearBatchStatistics() {
            chunkCounts.removeAll(keepingCapacity: true)
            chunkStatistics.removeAll(keepingCapacity: true)
            globalStatistics.removeAll(keepingCapacity: true)
        }

        /// Each rank's chunk count and the chunks, for `ExactGradientReducer.begin` (nil unless the
        /// step is one micro-batch).
        var plan: (termsByRank: [Int]?, chunks: [Range<Int>]?) {
            oneMicroBatch ? (termsByRank, chunks) : (nil, nil)
        }
    }

    /// Deterministic mode's batch-norm layers: index, channels, synchronized.
    static func batchNormLayers(of model: Sequential) -> [(index: Int, channels: Int, synchronized: Bool)] {
        model.layers.enumerated().compactMap { i, layer in
            (layer as? BatchNorm2D).map { (i, model.outputShapes[i][0], $0.synchronized) }
        }
    }

    /// The batch-norm layer at index `i` (`batchNormLayers`), or nil.
    func batchNormLayer(at i: Int) -> (index: Int, channels: Int, synchronized: Bool)? {
        batchNormLayers.first { $0.index == i }
    }

    /// Starts a deterministic step whose micro-batches have `batchCount` samples (the first one's):
    /// records the running statistics, fixes the exact scales and clears the gradients.
    func beginExactStep(batchCount: Int) {
        guard let exact = exactReducer else { return }
        exactStep.reset()
        exactStep.begun = true
        recordRunningStatistics(into: &exactStep.running)
        let perBatch = (max(configuration.globalBatchSize, batchCount) + configuration.chunkSize - 1) / configuration.chunkSize
        exactStep.terms = max(configuration.accumulationSteps, 1) * perBatch
        // One micro-batch: every rank's chunk count is known now (a rank with one sends it as floats).
        if max(configuration.accumulationSteps, 1) == 1 {
            exactStep.oneMicroBatch = true
            DistributedSampler.chunks(count: batchCount, chunkSize: configuration.chunkSize, into: &exactStep.chunks)
            for r in 0 ..< communicator.size {
                exactStep.termsByRank.append(DistributedSampler.slice(count: exactStep.chunks.count, rank: r, size: communicator.size).count)
            }
        }
        model.arena.zeroGradients()
        let plan = exactStep.plan
        exact.begin(terms: exactStep.terms, termsByRank: plan.termsByRank, chunks: plan.chunks)
    }

    /// Makes room for the batch statistics of the step's next micro-batch, of `chunks` chunks.
    func beginMicroBatch(chunks: Int) {
        exactStep.chunkCounts.append(chunks)
        exactStep.chunkStatistics.append([:])
        exactStep.globalStatistics.append([:])
    }

    /// Records a synchronized layer's global statistics (count, sums) for micro-batch `m`; the
    /// finish moves the layer's running statistics by them, in micro-batch order.
    func recordGlobalStatistics(_ values: [Double], micro m: Int, layer: Int) {
        exactStep.globalStatistics[m][layer] = values
    }

    /// Appends an unsynchronized layer's statistics of one chunk (mean, variance, count; the layers
    /// in execution order) to the chunk's record for micro-batch `m`; the finish gathers every
    /// rank's records and applies them in chunk order.
    func recordChunkStatistics(_ values: [Double], micro m: Int, chunk: Int) {
        exactStep.chunkStatistics[m][chunk, default: []] += values
    }

    /// Deterministic mode's reduction (a collective): the exact sums, a redo of the step when the
    /// scales did not fit (`recompute` computes every micro-batch again), then the batch
    /// statistics' ordered updates. With `writingMean` false the mean may stay in the sums for the
    /// optimizer (`ExactGradientReducer.gradients`).
    func finishExactStep(globalBatchSize: Int, writingMean: Bool, recompute: () throws -> Void) throws {
        guard let exact = exactReducer else { return }
        if !exactStep.begun { exact.begin(terms: 1) }
        while !(try exact.finish(globalBatchSize: globalBatchSize, writingMean: writingMean)) {
            setRunningStatistics(exactStep.running)
            model.arena.zeroGradients()
            let plan = exactStep.plan
            exact.begin(terms: exactStep.terms, termsByRank: plan.termsByRank, chunks: plan.chunks)
            exactStep.clearBatchStatistics()
            try recompute()
            try throwDeferredError()
        }
        try applyBatchStatistics()
        exactStep.reset()
    }

    /// Every chunk's values summed in chunk order, the same bits on every rank: each rank puts its
    /// chunks' values in their chunk's slot (−inf elsewhere) and a max-allreduce gathers them
    /// (nothing is added across ranks). A collective.
    ///
    /// - Throws: `DistError.mpi` when the gather fails.
    func sumInChunkOrder(_ local: [[Double]], mine: Range<Int>, chunks: Int, width: Int) throws -> [Double] {
        var slots = [Double](repeating: -.infinity, count: chunks * width)
        for (j, values) in local.enumerated() {
            for k in 0 ..< width { slots[(mine.lowerBound + j) * width + k] = values[k] }
        }
        if communicator.size > 1 { try communicator.allreduce(&slots, op: .max) }
        var total = [Double](repeating: 0, count: width)
        for c in 0 ..< chunks { for k in 0 ..< width { total[k] += slots[c * width + k] } }
        return total
    }

    /// Writes the arena values of every non-trainable slot (batch-norm running statistics), in slot
    /// order, over `values`.
    private func recordRunningStatistics(into values: inout [Float]) {
        let arena = model.arena
        values.removeAll(keepingCapacity: true)
        for slot in arena.slots where !slot.trainable {
            values.append(contentsOf: UnsafeBufferPointer(start: arena.parameters + slot.offset, count: slot.count))
        }
    }

    private func setRunningStatistics(_ values: [Float]) {
        let arena = model.arena
        var at = 0
        for slot in arena.slots where !slot.trainable {
            for k in 0 ..< slot.count { arena.parameters[slot.offset + k] = values[at + k] }
            at += slot.count
        }
    }

    /// Replaces what the chunks' forward passes did to the running statistics by the updates of the
    /// step's chunks in chunk order (unsynchronized layers: gathered from every rank, a collective)
    /// or of each micro-batch's global statistics (synchronized layers), the same on every rank.
    private func applyBatchStatistics() throws {
        let norms = batchNormLayers
        guard !norms.isEmpty else { return }
        setRunningStatistics(exactStep.running)
        let unsynchronized = norms.filter { !$0.synchronized }
        let width = unsynchronized.reduce(0) { $0 + 2 * $1.channels + 1 }
        // Every micro-batch's chunks in one gather: chunk slots laid out micro-batch by micro-batch.
        let counts = exactStep.chunkCounts
        let firsts = counts.indices.map { counts[..<$0].reduce(0, +) }
        var gathered: [Double] = []
        if width > 0 {
            gathered = [Double](repeating: -.infinity, count: counts.reduce(0, +) * width)
            for (m, chunks) in exactStep.chunkStatistics.enumerated() {
                for (c, values) in chunks { for k in 0 ..< width { gathered[(firsts[m] + c) * width + k] = values[k] } }
            }
            if communicator.size > 1 { try communicator.allreduce(&gathered, op: .max) }
        }
        for m in counts.indices {
            for norm in norms {
                let layer = model.layers[norm.index] as! BatchNorm2D
                if norm.synchronized {
                    guard let stats = exactStep.globalStatistics[m][norm.index] else { continue }
                    let (mean, variance) = BatchNorm2D.meanAndVariance(statistics: stats)
                    layer.updateRunningStatistics(mean: mean, variance: variance, count: Int(stats[0].rounded()), arena: model.arena)
                    continue
                }
                // This layer's place within a chunk's record.
                let at = unsynchronized.prefix { $0.index != norm.index }.reduce(0) { $0 + 2 * $1.channels + 1 }
                let c = norm.channels
                for chunk in 0 ..< counts[m] {
                    let base = (firsts[m] + chunk) * width + at
                    layer.updateRunningStatistics(
                        mean: Array(gathered[base ..< base + c]), variance: Array(gathered[base + c ..< base + 2 * c]),
                        count: Int(gathered[base + 2 * c]), arena: model.arena)
                }
            }
        }
    }
}

/// Hands a synchronized batch norm the global statistics computed beforehand (chunk by chunk, in
/// chunk order), in place of its own sum across replicas.
final class PresetStatistics: StatisticsReducer {
    var values: [Double] = []

    func sumAcrossReplicas(_ buffer: UnsafeMutableBufferPointer<Double>) {
        precondition(buffer.count == values.count, "Preset statistics hold \(values.count) values, the layer asks for \(buffer.count).")
        for i in buffer.indices { buffer[i] = values[i] }
    }
}
