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
        /// The unsynchronized layers' statistics of every chunk of the step, a record of
        /// `chunkRecordWidth` values a chunk (micro-batch by micro-batch, in chunk order): each
        /// layer's mean, variance and count, in the order forward recorded them. This rank's chunks
        /// are written as forward records them (`chunkRecordFill` values so far), the others stay
        /// −inf for the max-allreduce that gathers them.
        var chunkRecords: [Double] = []
        var chunkRecordFill: [Int] = []
        /// Per micro-batch and synchronized layer: the global batch's count, sum and sum of squares
        /// (`globalValues[range]`).
        var globalRecords: [(micro: Int, layer: Int, range: Range<Int>)] = []
        var globalValues: [Double] = []
        /// Buffers kept from step to step.
        var scratch = Scratch()

        /// The chunk slots `sumInChunkOrder` gathers; a synchronized layer's global statistics, and
        /// their mean and variance per channel (`applyBatchStatistics`).
        struct Scratch {
            var slots: [Double] = []
            var statistics: [Double] = []
            var mean: [Double] = []
            var variance: [Double] = []
        }

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
            chunkRecords.removeAll(keepingCapacity: true)
            chunkRecordFill.removeAll(keepingCapacity: true)
            globalRecords.removeAll(keepingCapacity: true)
            globalValues.removeAll(keepingCapacity: true)
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
        exactStep.chunkRecords.append(contentsOf: repeatElement(-.infinity, count: chunks * chunkRecordWidth))
        exactStep.chunkRecordFill.append(contentsOf: repeatElement(0, count: chunks))
    }

    /// Records a synchronized layer's global statistics (count, sums) for micro-batch `m`; the
    /// finish moves the layer's running statistics by them, in micro-batch order.
    func recordGlobalStatistics(_ values: [Double], micro m: Int, layer: Int) {
        let start = exactStep.globalValues.count
        exactStep.globalValues.append(contentsOf: values)
        exactStep.globalRecords.append((m, layer, start ..< exactStep.globalValues.count))
    }

    /// Appends an unsynchronized layer's statistics of one chunk (mean, variance, count; the layers
    /// in execution order) to the chunk's record for micro-batch `m`; the finish gathers every
    /// rank's records and applies them in chunk order.
    func recordChunkStatistics(mean: [Double], variance: [Double], count: Int, micro m: Int, chunk: Int) {
        let slot = exactStep.chunkCounts[..<m].reduce(0, +) + chunk
        let at = exactStep.chunkRecordFill[slot]
        precondition(
            at + mean.count + variance.count + 1 <= chunkRecordWidth,
            "Chunk \(chunk) of micro-batch \(m) recorded more batch statistics than its unsynchronized layers have (\(chunkRecordWidth) values).")
        var i = slot * chunkRecordWidth + at
        for v in mean {
            exactStep.chunkRecords[i] = v
            i += 1
        }
        for v in variance {
            exactStep.chunkRecords[i] = v
            i += 1
        }
        exactStep.chunkRecords[i] = Double(count)
        exactStep.chunkRecordFill[slot] = at + mean.count + variance.count + 1
    }

    /// Values a chunk's record of unsynchronized statistics holds: mean, variance (C each) and the
    /// count of every unsynchronized batch norm.
    var chunkRecordWidth: Int {
        var width = 0
        for norm in batchNormLayers where !norm.synchronized { width += 2 * norm.channels + 1 }
        return width
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
    ///
    /// - Parameters:
    ///   - local: this rank's chunks' values, `width` a chunk, in chunk order (`mine.count` chunks).
    ///   - total: overwritten with the `width` sums.
    func sumInChunkOrder(_ local: [Double], mine: Range<Int>, chunks: Int, width: Int, into total: inout [Double]) throws {
        precondition(local.count >= mine.count * width, "\(mine.count) chunks of \(width) values need \(mine.count * width), got \(local.count).")
        // Taken out while it is written, so that it is written in place.
        var scratch = exactStep.scratch
        exactStep.scratch = ExactStep.Scratch()
        defer { exactStep.scratch = scratch }
        scratch.slots.removeAll(keepingCapacity: true)
        scratch.slots.append(contentsOf: repeatElement(-.infinity, count: chunks * width))
        for j in 0 ..< mine.count {
            for k in 0 ..< width { scratch.slots[(mine.lowerBound + j) * width + k] = local[j * width + k] }
        }
        if communicator.size > 1 { try communicator.allreduce(&scratch.slots, op: .max) }
        total.removeAll(keepingCapacity: true)
        total.append(contentsOf: repeatElement(0, count: width))
        for c in 0 ..< chunks { for k in 0 ..< width { total[k] += scratch.slots[c * width + k] } }
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
        var scratch = exactStep.scratch
        exactStep.scratch = ExactStep.Scratch()
        defer { exactStep.scratch = scratch }
        let width = chunkRecordWidth
        // Every micro-batch's chunks in one gather: chunk slots laid out micro-batch by micro-batch.
        if width > 0 && communicator.size > 1 { try communicator.allreduce(&exactStep.chunkRecords, op: .max) }
        var first = 0
        for (m, chunks) in exactStep.chunkCounts.enumerated() {
            defer { first += chunks }
            for norm in norms {
                let layer = model.layers[norm.index] as! BatchNorm2D
                if norm.synchronized {
                    guard let record = exactStep.globalRecords.last(where: { $0.micro == m && $0.layer == norm.index }) else { continue }
                    scratch.statistics.removeAll(keepingCapacity: true)
                    scratch.statistics.append(contentsOf: exactStep.globalValues[record.range])
                    let c = scratch.statistics.count / 3
                    if scratch.mean.count != c {
                        scratch.mean = [Double](repeating: 0, count: c)
                        scratch.variance = [Double](repeating: 0, count: c)
                    }
                    BatchNorm2D.meanAndVariance(statistics: scratch.statistics, mean: &scratch.mean, variance: &scratch.variance)
                    layer.updateRunningStatistics(
                        mean: scratch.mean, variance: scratch.variance, count: Int(scratch.statistics[0].rounded()), arena: model.arena)
                    continue
                }
                // This layer's place within a chunk's record.
                var at = 0
                for other in norms where !other.synchronized && other.index < norm.index { at += 2 * other.channels + 1 }
                let c = norm.channels
                exactStep.chunkRecords.withUnsafeBufferPointer { gathered in
                    for chunk in 0 ..< chunks {
                        let base = (first + chunk) * width + at
                        layer.updateRunningStatistics(
                            mean: UnsafeBufferPointer(rebasing: gathered[base ..< base + c]),
                            variance: UnsafeBufferPointer(rebasing: gathered[base + c ..< base + 2 * c]),
                            count: Int(gathered[base + 2 * c]), arena: model.arena)
                    }
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
