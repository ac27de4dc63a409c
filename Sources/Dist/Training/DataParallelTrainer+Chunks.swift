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
    public func computeGradients<C: Collection>(
        globalBatch: C, epoch: Int, dataset: Dataset,
        accumulating: Bool = false, final: Bool = true
    ) throws -> BatchTotals where C.Element == Int {
        let batch = Array(globalBatch)
        guard ddp.exactReducer != nil else {
            let mine = DistributedSampler.slice(count: batch.count, rank: communicator.rank, size: communicator.size)
            if !accumulating && final { ddp.expectFactors(globalBatchCount: batch.count) }
            return try computeGradients(indices: batch[mine], epoch: epoch, dataset: dataset, accumulating: accumulating, final: final)
        }
        if !accumulating || exactMicroBatches.isEmpty {
            exactMicroBatches = []
            ddp.beginExactStep(batchCount: batch.count)
        }
        exactMicroBatches.append((batch, epoch, dataset))
        return try runChunks(micro: exactMicroBatches.count - 1, final: final)
    }

    /// Deterministic mode's redo (`DistributedDataParallel.finishExactStep` asks for it when the
    /// agreed scales did not fit): the step's micro-batches computed again, in order.
    func recomputeExactStep() throws {
        for m in exactMicroBatches.indices { _ = try runChunks(micro: m, final: m == exactMicroBatches.count - 1) }
    }

    /// Forward, loss and backward of this rank's chunks of micro-batch `m`, layer by layer.
    ///
    /// - Throws: `DistError.mpi` when a synchronized layer's statistics or a finished layer's sums
    ///   cannot be reduced.
    private func runChunks(micro m: Int, final: Bool) throws -> BatchTotals {
        let (batch, epoch, dataset) = exactMicroBatches[m]
        let ranges = DistributedSampler.chunks(count: batch.count, chunkSize: configuration.chunkSize)
        let mine = DistributedSampler.slice(count: ranges.count, rank: communicator.rank, size: communicator.size)
        while chunkLayers.count < mine.count { chunkLayers.append(ddp.model.layers) }
        var xs: [Tensor] = [], labels: [[Int32]] = [], keys: [[UInt64]] = []
        for j in mine {
            let (x, y, k) = trainingBatch(Array(batch[ranges[j]]), epoch: epoch, dataset: dataset)
            xs.append(x)
            labels.append(y)
            keys.append(k)
        }
        let arena = ddp.model.arena, order = ddp.model.executionOrder, exactReducer = ddp.exactReducer!
        let normLayers = Dictionary(uniqueKeysWithValues: ddp.batchNormLayers.map { ($0.index, $0) })
        let preset = PresetStatistics()
        ddp.beginMicroBatch(chunks: ranges.count)

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
            if !xs.isEmpty, var dense = batchedDense[i] ?? ddp.model.layers[i] as? Dense {
                xs = Tensor.splittingRows(
                    dense.forward(Tensor(joiningRows: xs), arena: arena, context: ForwardContext(training: true)),
                    counts: rows)
                batchedDense[i] = dense
                continue
            }
            var context = ForwardContext(training: true)
            if let norm = normLayers[i], norm.synchronized {
                let local = xs.indices.map { (chunkLayers[$0][i] as! BatchNorm2D).batchStatistics(of: xs[$0]) }
                preset.values = try ddp.sumInChunkOrder(local, mine: mine, chunks: ranges.count, width: 3 * norm.channels)
                ddp.recordGlobalStatistics(preset.values, micro: m, layer: i)
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
                    ddp.recordChunkStatistics(s.mean + s.variance + [Double(s.count)], micro: m, chunk: mine.lowerBound + j)
                }
            }
        }
        var totals = BatchTotals()
        var grads: [Tensor] = []
        let stepSamples = exactMicroBatches.reduce(0) { $0 + $1.batch.count }
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
        let backwardContext = final && communicator.size > 1 ? ddp.pollingContext : BackwardContext()
        for i in order.reversed() {
            let layerStart = Timeline.now()
            if let norm = normLayers[i], norm.synchronized {
                let local = grads.indices.map { (chunkLayers[$0][i] as! BatchNorm2D).backwardSums(of: grads[$0]) }
                preset.values = try ddp.sumInChunkOrder(local, mine: mine, chunks: ranges.count, width: 2 * norm.channels)
            }
            if !grads.isEmpty, var dense = batchedDense[i] {
                let gradOutput = Tensor(joiningRows: grads)
                if let slots = ddp.layerSlots[i] {
                    gradOutput.storage.withUnsafeBufferPointer { gy in
                        dense.lastInput.storage.withUnsafeBufferPointer { x in
                            exactReducer.accumulateDense(
                                weight: slots.lowerBound, bias: dense.useBias ? slots.lowerBound + 1 : nil,
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
                let slots = ddp.layerSlots[i], reducer = exactReducer, arenas = chunkGradientArenas
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
                    if let slots = ddp.layerSlots[i] { exactReducer.accumulate(slots: slots, clearing: !final || j < grads.count - 1) }
                }
            }
            timeline?.record("backward \(i) \(ddp.layerNames[i])", lane: .compute, from: layerStart, to: Timeline.now())
            if final, let offset = ddp.layerOffsets[i] {
                try exactReducer.sumsFinal(from: offset, meanOver: stepSamples)
            } else {
                backwardContext.progress?()
            }
        }
        return totals
    }
}
