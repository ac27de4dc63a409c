import Foundation
import NN

/// Deterministic mode's step: fixed chunks of the global batch, each computed with batched kernels
/// and summed exactly.
///
/// A global batch of B samples is cut into chunks of `chunkSize` samples (`DistributedSampler.chunks`)
/// that do not depend on the number of ranks P; rank r computes a contiguous run of whole chunks.
/// The rank runs its chunks layer by layer (each chunk with its own copy of the layers, so its own
/// activations), and after each layer's backward turns that chunk's parameter gradient into
/// integers added into the exact accumulators (`ExactGradientReducer`), clearing the arena for the
/// next chunk. So every chunk's gradient is the same float tensor on any P, and their integer sum is
/// the same whatever the order; the accumulators of the last micro-batch's layers start reducing
/// as soon as backward leaves them, as in fast mode.
///
/// Batch statistics: an unsynchronized batch norm normalizes each chunk by the chunk's statistics
/// (the chunk plays the part of a rank's slice, but does not depend on P). A synchronized one
/// normalizes by the global batch's: every rank gathers each chunk's count, sum and sum of squares
/// (one slot per chunk, so nothing is added across ranks) and adds them in chunk order, the same
/// bits on every rank; backward's two sums likewise. Running statistics move once per chunk
/// (unsynchronized) or once per micro-batch (synchronized), in chunk order, on every rank.
extension DataParallelTrainer {
    /// The part of a deterministic step that a redo needs, and its batch statistics.
    struct ExactStep {
        /// The step's micro-batches, in order.
        var micro: [(batch: [Int], epoch: Int, dataset: Dataset)] = []
        /// The most chunks an element's sum receives this step (fixes the exact scales).
        var terms = 1
        /// Each rank's chunk count, and the chunks (sample ranges of the batch), when the step is
        /// one micro-batch.
        var termsByRank: [Int]?
        var chunks: [Range<Int>]?
        /// The running statistics before the step (restored before the ordered updates or a redo).
        var running: [Float] = []
        /// Per micro-batch: this rank's chunks' unsynchronized statistics, by chunk index.
        var chunkStatistics: [[Int: [Double]]] = []
        /// Per micro-batch and synchronized layer: the global batch's count, sum and sum of squares.
        var globalStatistics: [[Int: [Double]]] = []
    }

    /// Deterministic mode's batch-norm layers: index, channels, synchronized.
    var batchNormLayers: [(index: Int, channels: Int, synchronized: Bool)] {
        model.layers.enumerated().compactMap { i, layer in
            (layer as? BatchNorm2D).map { (i, model.outputShapes[i][0], $0.synchronized) }
        }
    }

    /// Runs forward, the loss and backward on this rank's part of a global batch, leaving the sum of
    /// its gradients where the reduction takes it (a collective in deterministic mode when the model
    /// has synchronized layers; every rank calls it with the same batch).
    ///
    /// Fast mode: the rank's slice (`DistributedSampler.slice`) as one batch, as
    /// `computeGradients(indices:…)`. Deterministic mode: the rank's chunks
    /// (`DistributedSampler.chunkShard`), summed exactly; `reduceGradients` may compute the step's
    /// micro-batches again (once, when the agreed scales did not fit).
    /// - Parameters:
    ///   - globalBatch: dataset indices of the whole global batch (every rank passes the same).
    ///   - epoch: the epoch, for the per-sample keys.
    ///   - dataset: where the samples come from.
    ///   - accumulating: a later micro-batch of the same optimizer step.
    ///   - final: the step's last micro-batch (reductions may start during its backward).
    /// - Returns: this rank's loss sum, correct count and sample count.
    public func computeGradients<C: Collection>(globalBatch: C, epoch: Int, dataset: Dataset,
                                                accumulating: Bool = false, final: Bool = true) -> BatchTotals where C.Element == Int {
        let batch = Array(globalBatch)
        guard let exact = exactReducer else {
            let mine = DistributedSampler.slice(count: batch.count, rank: communicator.rank, size: communicator.size)
            if configuration.denseFactors && !accumulating && final {
                reducer.expectFactors(rowsByRank: (0 ..< communicator.size).map {
                    DistributedSampler.slice(count: batch.count, rank: $0, size: communicator.size).count
                })
            }
            return computeGradients(indices: batch[mine], epoch: epoch, dataset: dataset, accumulating: accumulating, final: final)
        }
        if !accumulating || exactStep.micro.isEmpty {
            exactStep = ExactStep()
            exactStep.running = runningStatistics()
            let perBatch = (max(configuration.globalBatchSize, batch.count) + configuration.chunkSize - 1) / configuration.chunkSize
            exactStep.terms = max(configuration.accumulationSteps, 1) * perBatch
            // One micro-batch: every rank's chunk count is known now (a rank with one sends it as floats).
            if max(configuration.accumulationSteps, 1) == 1 {
                let chunks = DistributedSampler.chunks(count: batch.count, chunkSize: configuration.chunkSize)
                exactStep.chunks = chunks
                exactStep.termsByRank = (0 ..< communicator.size).map {
                    DistributedSampler.slice(count: chunks.count, rank: $0, size: communicator.size).count
                }
            }
            model.arena.zeroGradients()
            exact.begin(terms: exactStep.terms, termsByRank: exactStep.termsByRank, chunks: exactStep.chunks)
        }
        exactStep.micro.append((batch, epoch, dataset))
        return runChunks(micro: exactStep.micro.count - 1, final: final)
    }

    /// Deterministic mode's reduction (a collective): the exact sums, a redo of the step when the
    /// scales did not fit, then the batch statistics' ordered updates. With `writingMean` false the
    /// mean may stay in the sums for the optimizer (`ExactGradientReducer.gradients`).
    func reduceExactly(globalBatchSize: Int, writingMean: Bool) throws {
        guard let exact = exactReducer else { return }
        if exactStep.micro.isEmpty { exact.begin(terms: 1) }
        while !(try exact.finish(globalBatchSize: globalBatchSize, writingMean: writingMean)) {
            setRunningStatistics(exactStep.running)
            model.arena.zeroGradients()
            exact.begin(terms: exactStep.terms, termsByRank: exactStep.termsByRank, chunks: exactStep.chunks)
            exactStep.chunkStatistics = []
            exactStep.globalStatistics = []
            for m in exactStep.micro.indices { _ = runChunks(micro: m, final: m == exactStep.micro.count - 1) }
            if let error = deferredError ?? statisticsReducer.takeError() {
                deferredError = nil
                throw error
            }
        }
        try applyBatchStatistics()
        exactStep = ExactStep()
    }

    /// Forward, loss and backward of this rank's chunks of micro-batch `m`, layer by layer.
    private func runChunks(micro m: Int, final: Bool) -> BatchTotals {
        let (batch, epoch, dataset) = exactStep.micro[m]
        let ranges = DistributedSampler.chunks(count: batch.count, chunkSize: configuration.chunkSize)
        let mine = DistributedSampler.slice(count: ranges.count, rank: communicator.rank, size: communicator.size)
        while chunkLayers.count < mine.count { chunkLayers.append(model.layers) }
        var xs: [Tensor] = [], labels: [[Int32]] = [], keys: [[UInt64]] = []
        for j in mine {
            let (x, y, k) = trainingBatch(Array(batch[ranges[j]]), epoch: epoch, dataset: dataset)
            xs.append(x); labels.append(y); keys.append(k)
        }
        let arena = model.arena, order = model.executionOrder
        let normLayers = Dictionary(uniqueKeysWithValues: batchNormLayers.map { ($0.index, $0) })
        let preset = PresetStatistics()
        exactStep.chunkStatistics.append([:])
        exactStep.globalStatistics.append([:])

        // Dense layers run the rank's chunks as one batch (their rows do not depend on one another, so
        // each row has the bits it would have alone) and sum their parameter gradients chunk by chunk
        // inside the exact reducer; every other layer runs chunk by chunk with its own copy.
        let rows = xs.map(\.batchSize)
        let chunkRows = rows.indices.map { rows[..<$0].reduce(0, +) ..< rows[...$0].reduce(0, +) }

        // Several threads a rank (`threads`): the chunks of each layer other than the dense ones in
        // parallel. Each chunk is computed as it is alone and its integers added exactly, so the
        // bits do not depend on the threads either.
        let threads = min(configuration.threads, xs.count)
        while chunkGradientArenas.count < threads { chunkGradientArenas.append(ParameterArena(sharingParametersOf: arena)) }
        let forwardStart = Timeline.now()
        for i in order {
            // The copy is kept across steps, so its output and gradient buffers are reused.
            if !xs.isEmpty, var dense = batchedDense[i] ?? model.layers[i] as? Dense {
                xs = Tensor.splittingRows(dense.forward(Tensor(joiningRows: xs), arena: arena, context: ForwardContext(training: true)),
                                          counts: rows)
                batchedDense[i] = dense
                continue
            }
            var context = ForwardContext(training: true)
            if let norm = normLayers[i], norm.synchronized {
                let local = xs.indices.map { (chunkLayers[$0][i] as! BatchNorm2D).batchStatistics(of: xs[$0]) }
                preset.values = sumInChunkOrder(local, mine: mine, chunks: ranges.count, width: 3 * norm.channels)
                exactStep.globalStatistics[m][i] = preset.values
                context.statisticsReducer = preset
            }
            if threads > 1 {
                // Each thread a contiguous run of chunks, each chunk its own layers (no batch norm:
                // refused with threads).
                xs.withUnsafeMutableBufferPointer { xp in
                    chunkLayers.withUnsafeMutableBufferPointer { lp in
                        DispatchQueue.concurrentPerform(iterations: threads) { t in
                            var c = context
                            for j in DistributedSampler.slice(count: xp.count, rank: t, size: threads) {
                                c.sampleKeys = keys[j]
                                xp[j] = lp[j][i].forward(xp[j], arena: arena, context: c)
                            }
                        }
                    }
                }
                continue
            }
            for j in xs.indices {
                context.sampleKeys = keys[j]
                xs[j] = chunkLayers[j][i].forward(xs[j], arena: arena, context: context)
                if let norm = normLayers[i], !norm.synchronized, let s = (chunkLayers[j][i] as! BatchNorm2D).lastBatchStatistics {
                    exactStep.chunkStatistics[m][mine.lowerBound + j, default: []] += s.mean + s.variance + [Double(s.count)]
                }
            }
        }
        var totals = BatchTotals()
        var grads: [Tensor] = []
        let stepSamples = exactStep.micro.reduce(0) { $0 + $1.batch.count }
        for j in xs.indices {
            let (lossSum, gradLogits) = loss.evaluate(logits: xs[j], labels: labels[j])
            // The chunk's loss sum on a grid of 2^-24, so the ranks' sums of chunks add exactly in
            // Double whatever their grouping (up to 2^29): the reported losses do not depend on P.
            let onGrid = (lossSum * 0x1p24).rounded() / 0x1p24
            totals += BatchTotals(lossSum: onGrid, correct: Metrics.correctPredictions(logits: xs[j], labels: labels[j]), count: labels[j].count)
            grads.append(gradLogits)
        }
        timeline?.record("forward", lane: .compute, from: forwardStart, to: Timeline.now())

        // Long layers poll the reductions in flight between samples, as in fast mode, so the
        // buckets started after the dense layers advance during the convolutions' backward.
        let backwardContext = final && communicator.size > 1 ? pollingContext : BackwardContext()
        for i in order.reversed() {
            let layerStart = Timeline.now()
            if let norm = normLayers[i], norm.synchronized {
                let local = grads.indices.map { (chunkLayers[$0][i] as! BatchNorm2D).backwardSums(of: grads[$0]) }
                preset.values = sumInChunkOrder(local, mine: mine, chunks: ranges.count, width: 2 * norm.channels)
            }
            if !grads.isEmpty, var dense = batchedDense[i] {
                let gradOutput = Tensor(joiningRows: grads)
                if let slots = layerSlots[i] {
                    gradOutput.storage.withUnsafeBufferPointer { gy in
                        dense.lastInput.storage.withUnsafeBufferPointer { x in
                            exactReducer!.accumulateDense(weight: slots.lowerBound, bias: dense.useBias ? slots.lowerBound + 1 : nil,
                                                          gradOutput: gy.baseAddress!, input: x.baseAddress!, chunks: chunkRows,
                                                          meanOver: final ? stepSamples : nil)
                        }
                    }
                }
                grads = Tensor.splittingRows(dense.inputGradient(gradOutput, arena: arena), counts: rows)
                batchedDense[i] = dense
            } else if threads > 1 {
                // Each thread's chunks add into its own gradients, which the reducer turns into
                // integers (in turn) and clears; no MPI call leaves this thread.
                let slots = layerSlots[i], reducer = exactReducer!, arenas = chunkGradientArenas
                grads.withUnsafeMutableBufferPointer { gp in
                    chunkLayers.withUnsafeMutableBufferPointer { lp in
                        DispatchQueue.concurrentPerform(iterations: threads) { t in
                            for j in DistributedSampler.slice(count: gp.count, rank: t, size: threads) {
                                gp[j] = lp[j][i].backward(gp[j], arena: arenas[t], context: BackwardContext())
                                if let slots { reducer.accumulate(slots: slots, from: arenas[t].gradients) }
                            }
                        }
                    }
                }
            } else {
                for j in grads.indices {
                    grads[j] = chunkLayers[j][i].backward(grads[j], arena: arena, context: backwardContext)
                    if let slots = layerSlots[i] { exactReducer!.accumulate(slots: slots, clearing: !final || j < grads.count - 1) }
                }
            }
            timeline?.record("backward \(i) \(layerNames[i])", lane: .compute, from: layerStart, to: Timeline.now())
            if final, let offset = layerOffsets[i] {
                do { try exactReducer!.sumsFinal(from: offset, meanOver: stepSamples) } catch { deferredError = deferredError ?? error }
            } else {
                backwardContext.progress?()
            }
        }
        return totals
    }

    /// Every chunk's values summed in chunk order, the same bits on every rank: each rank puts its
    /// chunks' values in their chunk's slot (−inf elsewhere) and a max-allreduce gathers them
    /// (nothing is added across ranks). A collective; an MPI failure gives NaN and is thrown later.
    private func sumInChunkOrder(_ local: [[Double]], mine: Range<Int>, chunks: Int, width: Int) -> [Double] {
        var slots = [Double](repeating: -.infinity, count: chunks * width)
        for (j, values) in local.enumerated() {
            for k in 0 ..< width { slots[(mine.lowerBound + j) * width + k] = values[k] }
        }
        if communicator.size > 1 {
            do { try communicator.allreduce(&slots, op: .max) } catch {
                deferredError = deferredError ?? error
                return [Double](repeating: .nan, count: width)
            }
        }
        var total = [Double](repeating: 0, count: width)
        for c in 0 ..< chunks { for k in 0 ..< width { total[k] += slots[c * width + k] } }
        return total
    }

    /// The arena values of every non-trainable slot (batch-norm running statistics), in slot order.
    private func runningStatistics() -> [Float] {
        let arena = model.arena
        return arena.slots.filter { !$0.trainable }.flatMap { UnsafeBufferPointer(start: arena.parameters + $0.offset, count: $0.count) }
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
        let counts = exactStep.micro.map { DistributedSampler.chunks(count: $0.batch.count, chunkSize: configuration.chunkSize).count }
        let firsts = counts.indices.map { counts[..<$0].reduce(0, +) }
        var gathered: [Double] = []
        if width > 0 {
            gathered = [Double](repeating: -.infinity, count: counts.reduce(0, +) * width)
            for (m, chunks) in exactStep.chunkStatistics.enumerated() {
                for (c, values) in chunks { for k in 0 ..< width { gathered[(firsts[m] + c) * width + k] = values[k] } }
            }
            if communicator.size > 1 { try communicator.allreduce(&gathered, op: .max) }
        }
        for m in exactStep.micro.indices {
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
                    layer.updateRunningStatistics(mean: Array(gathered[base ..< base + c]), variance: Array(gathered[base + c ..< base + 2 * c]),
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
