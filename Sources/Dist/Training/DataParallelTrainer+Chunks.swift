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
        guard ddp.exactReducer != nil else {
            let count = globalBatch.count
            let mine = DistributedSampler.slice(count: count, rank: communicator.rank, size: communicator.size)
            if !accumulating && final { ddp.expectFactors(globalBatchCount: count) }
            return try computeGradients(
                indices: globalBatch.dropFirst(mine.lowerBound).prefix(mine.count), epoch: epoch, dataset: dataset,
                accumulating: accumulating, final: final)
        }
        if !accumulating || exactMicroBatches.isEmpty {
            exactMicroBatches.removeAll(keepingCapacity: true)
            exactIndices.removeAll(keepingCapacity: true)
            ddp.beginExactStep(batchCount: globalBatch.count)
        }
        let first = exactIndices.count
        exactIndices.append(contentsOf: globalBatch)
        exactMicroBatches.append((first ..< exactIndices.count, epoch, dataset))
        return try runChunks(micro: exactMicroBatches.count - 1, final: final)
    }

    /// Deterministic mode's redo (`DistributedDataParallel.finishExactStep` asks for it when the
    /// agreed scales did not fit): the step's micro-batches computed again, in order.
    func recomputeExactStep() throws {
        for m in exactMicroBatches.indices { _ = try runChunks(micro: m, final: m == exactMicroBatches.count - 1) }
    }

    /// A synchronized batch norm's per-chunk values (`width` for each of this rank's chunks, written
    /// by `fill`) summed over every chunk of the micro-batch in chunk order into
    /// `presetStatistics.values`, the same bits on every rank (a collective).
    ///
    /// - Throws: `DistError.mpi` when the gather fails.
    private func sumOverChunks(
        _ b: inout ChunkBuffers, mine: Range<Int>, width: Int, _ fill: (Int, UnsafeMutableBufferPointer<Double>) -> Void
    ) throws {
        b.fillStatistics(chunks: mine.count, width: width, fill)
        try ddp.sumInChunkOrder(b.statistics, mine: mine, chunks: b.ranges.count, width: width, into: &presetStatistics.values)
    }

    /// Forward, loss and backward of this rank's chunks of micro-batch `m`, layer by layer.
    ///
    /// Every buffer is kept from the step before (`ChunkBuffers`, the chunks' and the batched dense
    /// layers' copies), so a steady step allocates nothing.
    /// - Throws: `DistError.mpi` when a synchronized layer's statistics or a finished layer's sums
    ///   cannot be reduced.
    private func runChunks(micro m: Int, final: Bool) throws -> BatchTotals {
        let (batch, epoch, dataset) = exactMicroBatches[m]
        // Taken out for the pass (and put back however it ends), so its arrays are this function's
        // alone: written in place, not copied.
        var b = chunkBuffers
        chunkBuffers = ChunkBuffers()
        defer { chunkBuffers = b }
        DistributedSampler.chunks(count: batch.count, chunkSize: configuration.chunkSize, into: &b.ranges)
        let mine = DistributedSampler.slice(count: b.ranges.count, rank: communicator.rank, size: communicator.size)
        let n = mine.count, layerCount = ddp.model.layers.count
        while chunkLayers.count < n { chunkLayers.append(ddp.model.layers) }
        if batchedDense.count < layerCount { batchedDense = [Dense?](repeating: nil, count: layerCount) }
        // The layers let go of the inputs they kept from the last pass, so that the batches and the
        // joined rows below are refilled in place.
        for j in chunkLayers.indices { for i in chunkLayers[j].indices { chunkLayers[j][i].releaseInput() } }
        for i in batchedDense.indices { batchedDense[i]?.releaseInput() }
        b.prepare(chunks: n, layers: layerCount)
        for j in 0 ..< n {
            let chunk = b.ranges[mine.lowerBound + j]
            b.indices[j].removeAll(keepingCapacity: true)
            b.indices[j].append(contentsOf: exactIndices[batch.lowerBound + chunk.lowerBound ..< batch.lowerBound + chunk.upperBound])
            fillTrainingBatch(
                b.indices[j], epoch: epoch, dataset: dataset, into: &b.inputs[j], labels: &b.labels[j], keys: &b.keys[j],
                scratch: &b.scratch)
            b.xs[j] = b.inputs[j]
        }
        let arena = ddp.model.arena, order = ddp.model.executionOrder, exactReducer = ddp.exactReducer!
        let preset = presetStatistics
        ddp.beginMicroBatch(chunks: b.ranges.count)

        // Dense layers run the rank's chunks as one batch (their rows do not depend on one another, so
        // each row has the bits it would have alone) and sum their parameter gradients chunk by chunk
        // inside the exact reducer; every other layer runs chunk by chunk with its own copy.
        var row = 0
        for j in 0 ..< n {
            b.rows[j] = b.xs[j].batchSize
            b.chunkRows[j] = row ..< row + b.rows[j]
            row += b.rows[j]
        }

        // Several threads a rank (`threads`): the chunks of each layer other than the dense ones in
        // parallel. Each chunk is computed as it is alone and its integers added exactly, so the
        // bits do not depend on the threads either.
        let threads = min(configuration.threads, n)
        while chunkGradientArenas.count < threads { chunkGradientArenas.append(ParameterArena(sharingParametersOf: arena)) }
        let forwardStart = Timeline.now()
        for i in order {
            // The batched copy is kept across steps, so its output and gradient buffers are reused.
            if n > 0, batchedDense[i] != nil || ddp.model.layers[i] is Dense {
                if batchedDense[i] == nil { batchedDense[i] = ddp.model.layers[i] as? Dense }
                Tensor.joinRows(b.xs, into: &b.denseInputs[i])
                let output = batchedDense[i]!.forward(b.denseInputs[i], arena: arena, context: ForwardContext(training: true))
                Tensor.splitRows(output, counts: b.rows, into: &b.denseOutputs[i])
                for j in 0 ..< n { b.xs[j] = b.denseOutputs[i][j] }
                continue
            }
            var context = ForwardContext(training: true)
            let norm = ddp.batchNormLayer(at: i)
            if let norm, norm.synchronized {
                let xs = b.xs
                try sumOverChunks(&b, mine: mine, width: 3 * norm.channels) { j, chunk in
                    (chunkLayers[j][i] as! BatchNorm2D).batchStatistics(of: xs[j], into: chunk)
                }
                ddp.recordGlobalStatistics(preset.values, micro: m, layer: i)
                context.statisticsReducer = preset
            }
            if threads > 1 {
                // Each thread a contiguous run of chunks, each chunk its own layers (no batch norm:
                // refused with threads).
                let keys = b.keys
                b.xs.withUnsafeMutableBufferPointer { xp in
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
            for j in 0 ..< n {
                context.sampleKeys = b.keys[j]
                b.xs[j] = chunkLayers[j][i].forward(b.xs[j], arena: arena, context: context)
                if let norm, !norm.synchronized, let s = (chunkLayers[j][i] as! BatchNorm2D).lastBatchStatistics {
                    ddp.recordChunkStatistics(mean: s.mean, variance: s.variance, count: s.count, micro: m, chunk: mine.lowerBound + j)
                }
            }
        }
        var totals = BatchTotals()
        let stepSamples = exactIndices.count
        for j in 0 ..< n {
            let lossSum = loss.evaluate(logits: b.xs[j], labels: b.labels[j], gradient: &b.gradLogits[j])
            // The chunk's loss sum on a grid of 2^-24, so the ranks' sums of chunks add exactly in
            // Double whatever their grouping (up to 2^29): the reported losses do not depend on P.
            let onGrid = (lossSum * 0x1p24).rounded() / 0x1p24
            totals += BatchTotals(lossSum: onGrid, correct: Metrics.correctPredictions(logits: b.xs[j], labels: b.labels[j]), count: b.labels[j].count)
            b.grads[j] = b.gradLogits[j]
        }
        timeline?.record("forward", lane: .compute, from: forwardStart, to: Timeline.now())

        // Long layers poll the reductions in flight between samples, as in fast mode, so the
        // buckets started after the dense layers advance during the convolutions' backward.
        let backwardContext = final && communicator.size > 1 ? ddp.pollingContext : BackwardContext()
        for i in order.reversed() {
            let layerStart = Timeline.now()
            let norm = ddp.batchNormLayer(at: i)
            if let norm, norm.synchronized {
                let grads = b.grads
                try sumOverChunks(&b, mine: mine, width: 2 * norm.channels) { j, chunk in
                    (chunkLayers[j][i] as! BatchNorm2D).backwardSums(of: grads[j], into: chunk)
                }
            }
            if n > 0, batchedDense[i] != nil {
                Tensor.joinRows(b.grads, into: &b.denseGradOutputs[i])
                if let slots = ddp.layerSlots[i] {
                    let input = batchedDense[i]!.lastInput, useBias = batchedDense[i]!.useBias
                    b.denseGradOutputs[i].storage.withUnsafeBufferPointer { gy in
                        input.storage.withUnsafeBufferPointer { x in
                            exactReducer.accumulateDense(
                                weight: slots.lowerBound, bias: useBias ? slots.lowerBound + 1 : nil,
                                gradOutput: gy.baseAddress!, input: x.baseAddress!, chunks: b.chunkRows,
                                meanOver: final ? stepSamples : nil)
                        }
                    }
                }
                let gradInput = batchedDense[i]!.inputGradient(b.denseGradOutputs[i], arena: arena)
                Tensor.splitRows(gradInput, counts: b.rows, into: &b.denseGradInputs[i])
                for j in 0 ..< n { b.grads[j] = b.denseGradInputs[i][j] }
            } else if threads > 1 {
                // Each thread's chunks add into its own gradients, which the reducer turns into
                // integers (in turn) and clears; no MPI call leaves this thread.
                let slots = ddp.layerSlots[i], reducer = exactReducer, arenas = chunkGradientArenas
                b.grads.withUnsafeMutableBufferPointer { gp in
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
                for j in 0 ..< n {
                    b.grads[j] = chunkLayers[j][i].backward(b.grads[j], arena: arena, context: backwardContext)
                    if let slots = ddp.layerSlots[i] { exactReducer.accumulate(slots: slots, clearing: !final || j < n - 1) }
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
